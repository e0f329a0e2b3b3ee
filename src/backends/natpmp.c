/* SPDX-License-Identifier: MIT */
/*
 * The NAT-PMP backend (RFC 6886), on libnatpmp.
 *
 * libnatpmp builds the requests, owns the socket (connected to the
 * gateway's port 5351) and parses the responses. Everything else is ours,
 * because of how libnatpmp 20150609 behaves:
 * - It retransmits on its own gettimeofday() clock from inside
 *   readnatpmpresponseorretry() whenever nothing is readable. We call that
 *   function only after a MSG_PEEK has shown a datagram waiting, and
 *   retransmit on the client's scheduler and injected clock by calling the
 *   send function again (it rebuilds and re-sends identical octets).
 * - It holds one pending request. So one request is in flight per gateway;
 *   the others wait in a FIFO (the probe's public-address request too).
 * - It parses whatever arrives into a 16-octet buffer without checking the
 *   length (a 4-octet datagram "succeeds" with stale stack bytes), and does
 *   not match a response to the request. We check length, version, opcode
 *   and internal port first, and count what fails as malformed/unmatched.
 * - It reports ICMP port unreachable (ECONNREFUSED on its connected socket)
 *   as NATPMP_ERR_NOGATEWAYSUPPORT, the code of its own give-up. Our peek
 *   sees ECONNREFUSED first; the errno is checked after its call as well.
 * - It always talks to port 5351 (NATPMP_PORT): cfg.server_port is not used.
 *
 * Per mapping, one job (a request: create, renew, or delete) and two timers:
 * `timer` (next renewal attempt, or the end of an error back-off; both send
 * the create/renew request) and `expiry` (the granted lifetime ran out).
 * On NAT-PMP a renewal is the same request as a create (RFC 6886 §3.3).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <natpmp.h>

#include "backends/backend.h"
#include "natpmp/wire.h"
#include "platform/platform.h"
#include "util/netutil.h"

#define NP_VERSION 0
#define NP_OP_PUBLIC 0 /* N2: 0 public address, 1 map UDP, 2 map TCP */
#define NP_RESPONSE 128
#define NP_DELETE_TRIES 4u         /* a delete is bounded even with a large budget */
#define NP_ERROR_BACKOFF_MS 30000u /* result 3/4: wait, then ask again */
#define NP_MAX_LIFETIME 86400u     /* treat longer grants as 24 h (like checklist H4) */
#define NP_MIN_RETRY_MS 1000u      /* no renewal attempt closer than this to expiry */
#define NP_MAX_READS 64            /* datagrams per process call */
#define NP_MAX_SHIFT 16            /* cap on the doubling of the retransmission time */

/* RFC 6886 §3.5 result codes */
#define NP_RESULT_SUCCESS 0
#define NP_RESULT_UNSUPP_VERSION 1
#define NP_RESULT_REFUSED 2 /* not authorized / refused (Q16: NAT-PMP disabled) */
#define NP_RESULT_NETWORK_FAILURE 3
#define NP_RESULT_NO_RESOURCES 4
#define NP_RESULT_UNSUPP_OPCODE 5

typedef struct np_state np_state_t;
typedef struct np_map np_map_t;

enum np_job_kind { JOB_PUBLIC, JOB_MAP };

/* One request: what to send, and its retransmission count. */
typedef struct np_job {
  struct np_job *prev, *next; /* FIFO links: leaving the FIFO is O(1) */
  enum np_job_kind kind;
  np_map_t *nm; /* JOB_MAP */
  int queued;
  int proto; /* NATPMP_PROTOCOL_UDP / _TCP */
  uint16_t internal_port;
  uint16_t external_port; /* suggested */
  uint32_t lifetime;
  unsigned tries;
  unsigned max_tries;
  uint64_t deadline; /* give up at this time, 0 = only after max_tries */
  uint64_t first_sent;
} np_job_t;

struct np_map {
  np_map_t *prev, *next; /* st->maps */
  portmap_mapping_t *h;  /* the core's handle */
  const portmap_req_t *req;
  portmap_result_t res; /* what we tell the core */
  int ever_mapped;
  np_state_t *st;
  int deleting;
  int sent; /* something of this mapping went on the wire */
  np_job_t job;
  int have_assigned;
  uint16_t assigned_port;
  uint64_t request_started;
  portmap_timer_t timer;
  portmap_timer_t expiry;
};

struct np_state {
  portmap_core_t *core;
  np_map_t *maps; /* every mapping this backend runs */
  int open;
  natpmp_t nat;
  uint8_t gw[16];
  uint8_t local[16];
  /* the one request in flight, and the FIFO of those waiting */
  np_job_t *cur;
  np_job_t *head, *tail;
  portmap_timer_t retx;
  int answered;    /* any well-formed response seen */
  int unreachable; /* ECONNREFUSED seen: handled by settle() */
  /* the external address (public-address request, announcements) */
  int have_ext;
  uint8_t ext[16];
  np_job_t pub;
  int pub_for_maps; /* mappings wait for the answer, not only the probe */
  int pub_tried;    /* asked once for the mappings already */
  /* checklist N5 */
  int have_epoch;
  uint32_t epoch;
  uint64_t epoch_at;
  /* probe */
  int probing;
  portmap_timer_t probe_timer;
};

static void arm(np_state_t *st, portmap_timer_t *t, uint64_t deadline) {
  if (portmap_core_arm(st->core, t, deadline) != 0)
    portmap_core_log(st->core, PORTMAP_LOG_ERROR, "natpmp: out of memory for a timer");
}

/* ---------- the socket ---------- */

static portmap_status_t gateway_open(np_state_t *st) {
  if (st->open)
    return PORTMAP_OK;
  uint8_t gw4[16];
  if (!portmap_core_gateway(st->core, 0, gw4, NULL))
    return PORTMAP_ERR_NO_GATEWAY; /* N1: the IPv4 default gateway */
  in_addr_t gw;
  memcpy(&gw, gw4 + 12, 4);
  int r = initnatpmp(&st->nat, 1, gw);
  if (r != 0) {
    portmap_core_log(st->core, PORTMAP_LOG_WARN, "natpmp: initnatpmp failed (%d): %s", r,
                     strerror(errno));
    if (r != NATPMP_ERR_SOCKETERROR && st->nat.s >= 0)
      close(st->nat.s);
    st->nat.s = -1;
    return PORTMAP_ERR_SYSTEM;
  }
  int fl = fcntl(st->nat.s, F_GETFD);
  if (fl >= 0)
    (void)fcntl(st->nat.s, F_SETFD, fl | FD_CLOEXEC);
  memcpy(st->gw, gw4, 16);
  /* connect() bound a random source port; learn the address it chose */
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  uint16_t port = 0;
  if (getsockname(st->nat.s, (struct sockaddr *)&ss, &sl) != 0 ||
      portmap_net_from_sockaddr((struct sockaddr *)&ss, sl, st->local, &port) != 0)
    memset(st->local, 0, sizeof st->local);
  st->open = 1;
  return PORTMAP_OK;
}

/* Hand the job's request to libnatpmp, which sends it at once. Returns -1
 * when the socket reports the port closed (Q21). */
static int raw_send(np_state_t *st, const np_job_t *j) {
  portmap_core_t *core = st->core;
  errno = 0;
  int r = j->kind == JOB_PUBLIC ? sendpublicaddressrequest(&st->nat)
                                : sendnewportmappingrequest(&st->nat, j->proto, j->internal_port,
                                                            j->external_port, j->lifetime);
  int err = errno;
  if (st->nat.pending_request_len > 0)
    portmap_core_trace(core, 1, st->gw, NATPMP_PORT, st->nat.pending_request,
                       (size_t)st->nat.pending_request_len);
  if (r < 0) {
    portmap_core_log(core, PORTMAP_LOG_DEBUG, "natpmp: send failed (%d): %s", r, strerror(err));
    return err == ECONNREFUSED ? -1 : 0;
  }
  portmap_core_stats(core)->sent++;
  return 0;
}

/* ---------- the FIFO: one request in flight per gateway ---------- */

static int job_active(const np_state_t *st, const np_job_t *j) {
  return j->queued || st->cur == j;
}

static void enqueue(np_state_t *st, np_job_t *j) {
  if (job_active(st, j))
    return;
  j->next = NULL;
  j->prev = st->tail;
  j->queued = 1;
  if (st->tail != NULL)
    st->tail->next = j;
  else
    st->head = j;
  st->tail = j;
}

static void dequeue(np_state_t *st, np_job_t *j) {
  if (!j->queued)
    return;
  if (j->prev != NULL)
    j->prev->next = j->next;
  else
    st->head = j->next;
  if (j->next != NULL)
    j->next->prev = j->prev;
  else
    st->tail = j->prev;
  j->prev = j->next = NULL;
  j->queued = 0;
}

/* Stop a job whether it waits or is in flight. Leaves the FIFO to be
 * restarted by settle() or the retx timer. */
static void abandon(np_state_t *st, np_job_t *j) {
  if (st->cur == j) {
    st->cur = NULL;
    portmap_core_disarm(st->core, &st->retx);
  } else {
    dequeue(st, j);
  }
}

/* N1 (RFC 6886 §3.1): send (or re-send: the identical request) and wait
 * 250 ms, doubling after each send. */
static void job_send(np_state_t *st, np_job_t *j, uint64_t now) {
  if (j->tries == 0)
    j->first_sent = now;
  else
    portmap_core_stats(st->core)->retransmissions++;
  j->tries++;
  if (j->kind == JOB_MAP)
    j->nm->sent = 1;
  if (raw_send(st, j) != 0)
    st->unreachable = 1;
  unsigned shift = j->tries - 1 > NP_MAX_SHIFT ? NP_MAX_SHIFT : j->tries - 1;
  uint64_t wait = (uint64_t)portmap_core_config(st->core)->natpmp_irt_ms << shift;
  if (j->deadline != 0 && now + wait > j->deadline)
    wait = j->deadline > now ? j->deadline - now : 0;
  arm(st, &st->retx, now + wait);
}

static void job_give_up(np_state_t *st, np_job_t *j, uint64_t now);

/* Send the next waiting request if none is in flight. */
static void kick(np_state_t *st, uint64_t now) {
  for (unsigned guard = 0; st->cur == NULL && st->head != NULL && guard < 1024; guard++) {
    np_job_t *j = st->head;
    dequeue(st, j);
    st->cur = j;
    j->tries = 0;
    if (j->deadline != 0 && now >= j->deadline) {
      job_give_up(st, j, now); /* waited in the FIFO past its time */
      continue;
    }
    job_send(st, j, now);
  }
}

static unsigned max_tries(const np_state_t *st) {
  unsigned n = portmap_core_config(st->core)->natpmp_max_tries;
  return n == 0 ? 1 : n;
}

/* ---------- the external address ---------- */

static void ask_public(np_state_t *st, int for_maps) {
  if (for_maps)
    st->pub_for_maps = 1;
  st->pub.kind = JOB_PUBLIC;
  st->pub.max_tries = max_tries(st);
  st->pub.deadline = 0;
  enqueue(st, &st->pub);
}

/* A new external address from the gateway: every mapping takes it (§3.2);
 * those currently mapped report CHANGED. */
static void set_external(np_state_t *st, const uint8_t v4[4], uint64_t now) {
  uint8_t a[16];
  portmap_net_v4_mapped(a, v4);
  int known = !portmap_net_is_unspecified(a);
  if (known == st->have_ext && (!known || memcmp(a, st->ext, 16) == 0))
    return;
  st->have_ext = known;
  memcpy(st->ext, a, 16);
  char text[PORTMAP_ADDRSTRLEN];
  portmap_addr_t pa;
  memcpy(pa.bytes, a, 16);
  portmap_core_log(st->core, PORTMAP_LOG_INFO, "natpmp: external address %s",
                   portmap_addr_format(&pa, text, sizeof text));
  for (np_map_t *nm = st->maps; nm != NULL; nm = nm->next) {
    if (nm->deleting)
      continue;
    memcpy(nm->res.external_addr, a, 16);
    if (nm->ever_mapped && nm->res.expiry_ms > now)
      portmap_core_report(st->core, nm->h, PORTMAP_EVENT_CHANGED, &nm->res);
    else
      portmap_core_update(st->core, nm->h, &nm->res);
  }
}

/* ---------- the probe ---------- */

static void probe_report(np_state_t *st, portmap_status_t error, int gateway_result, uint64_t rtt) {
  if (!st->probing)
    return;
  st->probing = 0;
  portmap_core_disarm(st->core, &st->probe_timer);
  portmap_probe_backend_t r;
  memset(&r, 0, sizeof r);
  r.available = error == PORTMAP_OK;
  r.error = error;
  r.gateway_result = gateway_result;
  r.rtt_ms = rtt > UINT32_MAX ? UINT32_MAX : (uint32_t)rtt;
  if (st->have_ext) {
    portmap_addr_t a;
    memcpy(a.bytes, st->ext, 16);
    portmap_addr_format(&a, r.external_address, sizeof r.external_address);
    r.external_is_private = portmap_net_is_private(st->ext); /* Q17 */
  }
  r.epoch = st->have_epoch ? st->epoch : 0;
  portmap_core_probe_result(st->core, PORTMAP_BACKEND_NATPMP, &r);
}

/* ---------- mappings ---------- */

static void nm_free(np_map_t *nm) {
  np_state_t *st = nm->st;
  abandon(st, &nm->job);
  portmap_core_disarm(st->core, &nm->timer);
  portmap_core_disarm(st->core, &nm->expiry);
  if (nm->prev)
    nm->prev->next = nm->next;
  else
    st->maps = nm->next;
  if (nm->next)
    nm->next->prev = nm->prev;
  free(nm);
}

/* Tell the core; a success means the mapping has been mapped. */
static void emit(np_map_t *nm, portmap_event_t ev) {
  if (ev == PORTMAP_EVENT_MAPPED || ev == PORTMAP_EVENT_RENEWED || ev == PORTMAP_EVENT_CHANGED)
    nm->ever_mapped = 1;
  portmap_core_report(nm->st->core, nm->h, ev, &nm->res);
}

/* End the mapping: free our state first, then report the final event. */
static void nm_finish(np_map_t *nm, portmap_event_t ev, portmap_status_t status) {
  portmap_core_t *core = nm->st->core;
  portmap_mapping_t *h = nm->h;
  portmap_result_t res = nm->res;
  res.status = status;
  nm_free(nm);
  portmap_core_report(core, h, ev, &res);
}

/* Queue the create / renew request (the same request on NAT-PMP). */
static void request(np_map_t *nm) {
  np_state_t *st = nm->st;
  const portmap_req_t *m = nm->req;
  np_job_t *j = &nm->job;
  if (job_active(st, j))
    return;
  portmap_core_disarm(st->core, &nm->timer);
  if (nm->ever_mapped && nm->res.expiry_ms != 0) {
    nm->res.renewing = 1; /* what is held is being renewed */
    portmap_core_update(st->core, nm->h, &nm->res);
  }
  j->kind = JOB_MAP;
  j->nm = nm;
  j->proto = m->protocol == PORTMAP_PROTO_TCP ? NATPMP_PROTOCOL_TCP : NATPMP_PROTOCOL_UDP;
  j->internal_port = m->internal_port;
  /* Renewals suggest what we were given (like H2). Q15: never suggest 0
   * (MikroTik refuses it): the internal port when the application gave none. */
  if (nm->have_assigned && nm->assigned_port != 0)
    j->external_port = nm->assigned_port;
  else if (m->suggested_port != 0)
    j->external_port = m->suggested_port;
  else
    j->external_port = m->internal_port;
  /* N3: the requested lifetime (7200 s unless the application chose);
   * N7: never 0, which would delete */
  j->lifetime = m->lifetime != 0 ? m->lifetime : 7200u;
  j->max_tries = max_tries(st);
  uint32_t timeout = portmap_core_config(st->core)->request_timeout_ms;
  j->deadline = !nm->ever_mapped && timeout > 0 ? nm->request_started + timeout : 0;
  enqueue(st, j);
}

/* N4 (RFC 6886 §3.4): delete = lifetime 0 and suggested external port 0. */
static void request_delete(np_map_t *nm) {
  np_state_t *st = nm->st;
  np_job_t *j = &nm->job;
  abandon(st, j);
  portmap_core_disarm(st->core, &nm->timer);
  portmap_core_disarm(st->core, &nm->expiry);
  nm->deleting = 1;
  j->kind = JOB_MAP;
  j->nm = nm;
  j->proto = nm->req->protocol == PORTMAP_PROTO_TCP ? NATPMP_PROTOCOL_TCP : NATPMP_PROTOCOL_UDP;
  j->internal_port = nm->req->internal_port;
  j->external_port = 0;
  j->lifetime = 0;
  j->max_tries = max_tries(st) < NP_DELETE_TRIES ? max_tries(st) : NP_DELETE_TRIES;
  j->deadline = 0;
  enqueue(st, j);
}

/* No answer to a create/renew after every try. */
static void map_give_up(np_map_t *nm, uint64_t now) {
  np_state_t *st = nm->st;
  if (nm->deleting) {
    portmap_core_log(st->core, PORTMAP_LOG_INFO, "natpmp: delete never confirmed");
    nm_finish(nm, PORTMAP_EVENT_FAILED, PORTMAP_ERR_TIMEOUT);
    return;
  }
  if (!nm->ever_mapped) {
    portmap_core_log(st->core, PORTMAP_LOG_INFO, "natpmp: no answer from the gateway, giving up");
    nm->res.gateway_result = -1;
    nm_finish(nm, PORTMAP_EVENT_FAILED, PORTMAP_ERR_TIMEOUT);
    return;
  }
  if (nm->res.expiry_ms > now) {
    /* still mapped: try again halfway to expiry (§3.3, like DHCP); too
     * close to it, the expiry re-creates */
    uint64_t half = (nm->res.expiry_ms - now) / 2;
    if (half >= NP_MIN_RETRY_MS)
      arm(st, &nm->timer, now + half);
    return;
  }
  arm(st, &nm->timer, now + NP_ERROR_BACKOFF_MS); /* lost: keep re-creating */
}

static void on_map_success(np_map_t *nm, const natpmpresp_t *r, uint64_t now) {
  np_state_t *st = nm->st;
  portmap_result_t *res = &nm->res;
  uint32_t lifetime = r->pnu.newportmapping.lifetime;
  uint16_t port = r->pnu.newportmapping.mappedpublicport;
  if (lifetime > NP_MAX_LIFETIME)
    lifetime = NP_MAX_LIFETIME;
  if (lifetime == 0) {
    /* N7: a grant of 0 is a mapping that does not exist, never "permanent" */
    portmap_core_log(st->core, PORTMAP_LOG_INFO, "natpmp: the gateway granted lifetime 0");
    if (nm->req->flags & PORTMAP_FLAG_ONCE) {
      nm_finish(nm, PORTMAP_EVENT_FAILED, PORTMAP_ERR_REFUSED);
      return;
    }
    res->status = PORTMAP_ERR_REFUSED;
    emit(nm, PORTMAP_EVENT_LOST);
    arm(st, &nm->timer, now + NP_ERROR_BACKOFF_MS);
    return;
  }
  int first = !nm->ever_mapped;
  int changed = nm->have_assigned && nm->assigned_port != port;
  nm->have_assigned = 1;
  nm->assigned_port = port;
  res->status = PORTMAP_OK;
  res->renewing = 0;
  res->lifetime = lifetime;
  res->external_port = port;
  if (st->have_ext)
    memcpy(res->external_addr, st->ext, 16);
  res->expiry_ms = now + (uint64_t)lifetime * 1000u;
  arm(st, &nm->expiry, res->expiry_ms);
  /* N3 (§3.3): renew halfway to expiry, scheduled from the GRANTED
   * lifetime however short (Q23, Q24) */
  if (nm->req->flags & PORTMAP_FLAG_ONCE)
    portmap_core_disarm(st->core, &nm->timer);
  else
    arm(st, &nm->timer, now + (uint64_t)lifetime * 500u);
  emit(nm, first ? PORTMAP_EVENT_MAPPED : changed ? PORTMAP_EVENT_CHANGED : PORTMAP_EVENT_RENEWED);
}

static void on_map_error(np_map_t *nm, int result, uint64_t now) {
  np_state_t *st = nm->st;
  if (result == NP_RESULT_NETWORK_FAILURE || result == NP_RESULT_NO_RESOURCES) {
    /* transient (§3.5): back off, then ask again */
    portmap_core_log(st->core, PORTMAP_LOG_INFO, "natpmp: gateway answered %d; retrying in %u s",
                     result, NP_ERROR_BACKOFF_MS / 1000u);
    if (nm->req->flags & PORTMAP_FLAG_ONCE) {
      nm_finish(nm, PORTMAP_EVENT_FAILED, PORTMAP_ERR_REFUSED);
      return;
    }
    if (!nm->ever_mapped || nm->res.expiry_ms <= now) {
      nm->res.status = PORTMAP_ERR_REFUSED;
      emit(nm, PORTMAP_EVENT_LOST);
    }
    arm(st, &nm->timer, now + NP_ERROR_BACKOFF_MS);
    return;
  }
  /* 1 unsupported version, 2 not authorized / refused (Q16: NAT-PMP
   * disabled), 5 unsupported opcode, and codes RFC 6886 does not define */
  portmap_core_log(st->core, PORTMAP_LOG_WARN, "natpmp: gateway refused the mapping (result %d)%s",
                   result,
                   result == NP_RESULT_REFUSED ? ": NAT-PMP disabled or not authorized" : "");
  nm_finish(nm, PORTMAP_EVENT_FAILED, PORTMAP_ERR_REFUSED);
}

static void on_map_answer(np_map_t *nm, int result, const natpmpresp_t *r, uint64_t now) {
  nm->res.gateway_result = result;
  if (nm->deleting) {
    if (result == NP_RESULT_SUCCESS)
      nm_finish(nm, PORTMAP_EVENT_DELETED, PORTMAP_OK);
    else
      nm_finish(nm, PORTMAP_EVENT_FAILED, PORTMAP_ERR_REFUSED);
    return;
  }
  if (result == NP_RESULT_SUCCESS)
    on_map_success(nm, r, now);
  else
    on_map_error(nm, result, now);
}

static void on_public_answer(np_state_t *st, int result, const natpmpresp_t *r, uint64_t now) {
  st->pub_for_maps = 0;
  if (result == NP_RESULT_SUCCESS) {
    uint8_t v4[4];
    memcpy(v4, &r->pnu.publicaddress.addr, 4);
    set_external(st, v4, now);
  } else {
    portmap_core_log(st->core, PORTMAP_LOG_INFO, "natpmp: public address request answered %d",
                     result);
  }
  probe_report(st, result == NP_RESULT_SUCCESS ? PORTMAP_OK : PORTMAP_ERR_REFUSED, result,
               now - st->pub.first_sent);
}

/* The current request got no answer after its last try. */
static void job_give_up(np_state_t *st, np_job_t *j, uint64_t now) {
  if (st->cur == j) {
    st->cur = NULL;
    portmap_core_disarm(st->core, &st->retx);
  }
  if (j->kind == JOB_PUBLIC) {
    /* N1 (§3.1): nine unanswered tries mean the gateway does not speak
     * NAT-PMP. New mappings still waiting behind this request learn it now
     * rather than after nine tries of their own. */
    st->pub_for_maps = 0;
    np_map_t *next;
    for (np_map_t *nm = st->maps; nm != NULL; nm = next) {
      next = nm->next;
      if (!nm->job.queued || nm->sent || nm->deleting || nm->ever_mapped)
        continue;
      nm->res.gateway_result = -1;
      nm_finish(nm, PORTMAP_EVENT_FAILED, PORTMAP_ERR_TIMEOUT);
    }
    probe_report(st, PORTMAP_ERR_TIMEOUT, -1, 0);
    return;
  }
  map_give_up(j->nm, now);
}

/* N5 (RFC 6886 §3.6): a gateway that lost its state renews every mapping. */
static void renew_all(np_state_t *st) {
  for (np_map_t *nm = st->maps; nm != NULL; nm = nm->next) {
    if (nm->deleting || !nm->ever_mapped || job_active(st, &nm->job))
      continue;
    request(nm);
  }
}

/* N5: expected = previous SSSoE + 7/8 of the client time elapsed since; a
 * new SSSoE more than 2 s below that means the gateway lost its mappings.
 * Recorded after every packet, whatever the verdict. */
static void epoch_check(np_state_t *st, uint32_t sssoe, uint64_t now) {
  int lost = st->have_epoch && portmap_natpmp_epoch_lost(st->epoch, st->epoch_at, sssoe, now);
  st->have_epoch = 1;
  st->epoch = sssoe;
  st->epoch_at = now;
  if (lost) {
    portmap_core_stats(st->core)->epoch_invalid++;
    portmap_core_log(st->core, PORTMAP_LOG_INFO,
                     "natpmp: gateway epoch went back: it lost its mappings");
    renew_all(st);
    portmap_core_epoch_changed(st->core, now);
  }
}

/* Q21: ICMP port unreachable: no NAT-PMP server on the gateway. Everything
 * waiting on an answer learns it at once. */
static void on_unreachable(np_state_t *st, uint64_t now) {
  portmap_core_log(st->core, PORTMAP_LOG_INFO, "natpmp: port %u closed on the gateway",
                   NATPMP_PORT);
  np_job_t *cur = st->cur;
  st->cur = NULL;
  portmap_core_disarm(st->core, &st->retx);
  dequeue(st, &st->pub);
  st->pub_for_maps = 0;
  np_map_t *next;
  for (np_map_t *nm = st->maps; nm != NULL; nm = next) {
    next = nm->next;
    if (cur != &nm->job && !nm->job.queued)
      continue;
    dequeue(st, &nm->job);
    if (nm->deleting && !(nm->req->flags & PORTMAP_FLAG_DELETE)) {
      nm_finish(nm, PORTMAP_EVENT_DELETED, PORTMAP_OK); /* nothing is mapped there */
    } else if (!nm->ever_mapped) {
      /* incl. an explicit delete: another backend may have made it */
      nm->res.gateway_result = -1;
      nm_finish(nm, PORTMAP_EVENT_FAILED, PORTMAP_ERR_UNREACHABLE);
    } else {
      map_give_up(nm, now); /* mapped: the renewal schedule tries again */
    }
  }
  probe_report(st, PORTMAP_ERR_UNREACHABLE, -1, 0);
}

/* Run the FIFO, and whatever an ICMP error left to do. */
static void settle(np_state_t *st, uint64_t now) {
  for (unsigned guard = 0; guard < 8; guard++) {
    if (st->unreachable) {
      st->unreachable = 0;
      on_unreachable(st, now);
    }
    kick(st, now);
    if (!st->unreachable)
      break;
  }
}

/* ---------- timers ---------- */

static void on_retx(portmap_timer_t *t, uint64_t now) {
  np_state_t *st = t->ctx;
  np_job_t *j = st->cur;
  if (j != NULL) {
    if (j->tries >= j->max_tries || (j->deadline != 0 && now >= j->deadline))
      job_give_up(st, j, now); /* N1: after the last try and its wait */
    else
      job_send(st, j, now);
  }
  settle(st, now);
}

static void on_timer(portmap_timer_t *t, uint64_t now) {
  np_map_t *nm = t->ctx;
  np_state_t *st = nm->st;
  request(nm); /* renewal attempt, or the end of a back-off */
  settle(st, now);
}

/* The granted lifetime ran out without a successful renewal. */
static void on_expiry(portmap_timer_t *t, uint64_t now) {
  np_map_t *nm = t->ctx;
  np_state_t *st = nm->st;
  nm->res.lifetime = 0;
  nm->res.expiry_ms = 0;
  if (nm->req->flags & PORTMAP_FLAG_ONCE) {
    nm_finish(nm, PORTMAP_EVENT_DELETED, PORTMAP_OK);
  } else {
    nm->res.status = PORTMAP_ERR_TIMEOUT;
    emit(nm, PORTMAP_EVENT_LOST);
    request(nm); /* re-create, suggesting the old port */
  }
  settle(st, now);
}

static void on_probe_timer(portmap_timer_t *t, uint64_t now) {
  np_state_t *st = t->ctx;
  /* the probe budget ran out (N1: a probe may stop earlier); a request no
   * mapping waits for must not hold up the FIFO */
  if (!st->pub_for_maps && job_active(st, &st->pub))
    abandon(st, &st->pub);
  probe_report(st, PORTMAP_ERR_TIMEOUT, -1, 0);
  settle(st, now);
}

/* ---------- responses ---------- */

static int job_matches(const np_job_t *j, int op, int result, const natpmpresp_t *r,
                       const uint8_t *raw, size_t len) {
  if (j->kind == JOB_PUBLIC)
    return op == NP_OP_PUBLIC;
  if (op != j->proto)
    return 0; /* N2: the answer to opcode 1 is 129, to 2 is 130 */
  /* the internal port: parsed by libnatpmp on success; in the octets of an
   * error response when it is long enough to carry it */
  uint16_t iport = result == NP_RESULT_SUCCESS ? r->pnu.newportmapping.privateport
                   : len >= 10                 ? portmap_natpmp_field16(raw, len, 8)
                                               : j->internal_port;
  if (iport != j->internal_port)
    return 0;
  /* a delete is confirmed by lifetime 0; a late answer to the create is not */
  if (j->lifetime == 0 && result == NP_RESULT_SUCCESS && r->pnu.newportmapping.lifetime != 0)
    return 0;
  return 1;
}

static void on_response(np_state_t *st, int op, int result, const natpmpresp_t *r,
                        const uint8_t *raw, size_t len, uint64_t now) {
  st->answered = 1;
  epoch_check(st, r->epoch, now);
  np_job_t *j = st->cur;
  if (j == NULL || !job_matches(j, op, result, r, raw, len)) {
    portmap_core_stats(st->core)->unmatched++; /* a duplicate, or an answer to a request given up */
    return;
  }
  st->cur = NULL;
  portmap_core_disarm(st->core, &st->retx);
  if (j->kind == JOB_PUBLIC)
    on_public_answer(st, result, r, now);
  else
    on_map_answer(j->nm, result, r, now);
}

static void np_readable(void *state, uint64_t now) {
  np_state_t *st = state;
  portmap_stats_t *stats = portmap_core_stats(st->core);
  if (!st->open)
    return;
  for (int i = 0; i < NP_MAX_READS; i++) {
    uint8_t buf[64];
    uint8_t from[16];
    uint16_t port;
    size_t len;
    int from_ok;
    /* Peek first: libnatpmp must only see a datagram that is there, or it
     * retransmits on its own clock. */
    int got = portmap_plat_recv(st->nat.s, PORTMAP_PLAT_RECV_PEEK | PORTMAP_PLAT_RECV_TRUNC, buf,
                                sizeof buf, &len, from, &port, &from_ok);
    if (got == PORTMAP_PLAT_RECV_REFUSED) {
      st->unreachable = 1; /* Q21; reading it cleared the socket error */
      continue;
    }
    if (got != PORTMAP_PLAT_RECV_OK)
      break;
    stats->received++;
    size_t have = len < sizeof buf ? len : sizeof buf;
    portmap_core_trace(st->core, 0, from_ok ? from : st->gw, from_ok ? port : NATPMP_PORT, buf,
                       have);
    if (!from_ok || memcmp(from, st->gw, 16) != 0 || port != NATPMP_PORT) {
      (void)recv(st->nat.s, buf, sizeof buf, MSG_DONTWAIT);
      stats->spoofed++; /* the connected socket filters these already */
      continue;
    }
    if (!portmap_natpmp_response_ok(buf, have)) {
      (void)recv(st->nat.s, buf, sizeof buf, MSG_DONTWAIT);
      stats->malformed++;
      continue;
    }
    int op = buf[1] - NP_RESPONSE;
    natpmpresp_t r;
    memset(&r, 0, sizeof r);
    /* Our FIFO, not libnatpmp, knows what is outstanding: let it parse
     * every well-formed datagram (duplicates and late answers included). */
    st->nat.has_pending_request = 1;
    errno = 0;
    int rc = readnatpmpresponseorretry(&st->nat, &r);
    int err = errno;
    st->nat.has_pending_request = 0;
    if (rc == NATPMP_TRYAGAIN)
      break;
    if (err == ECONNREFUSED && (rc == NATPMP_ERR_NOGATEWAYSUPPORT || rc == NATPMP_ERR_RECVFROM)) {
      st->unreachable = 1;
      continue;
    }
    int result;
    switch (rc) {
    case 0:
      result = NP_RESULT_SUCCESS;
      break;
    case NATPMP_ERR_UNSUPPORTEDVERSION:
    case NATPMP_ERR_NOTAUTHORIZED:
    case NATPMP_ERR_NETWORKFAILURE:
    case NATPMP_ERR_OUTOFRESOURCES:
    case NATPMP_ERR_UNSUPPORTEDOPCODE:
    case NATPMP_ERR_UNDEFINEDERROR:
      result = r.resultcode; /* N2: the gateway's 16-bit result code */
      break;
    default:
      stats->malformed++;
      continue;
    }
    if (rc != 0 && r.resultcode != portmap_natpmp_field16(buf, have, 2)) {
      stats->malformed++; /* not the datagram we peeked at */
      continue;
    }
    on_response(st, op, result, &r, buf, have, now);
  }
  settle(st, now);
}

/* ---------- vtable ---------- */

static portmap_status_t np_create(portmap_core_t *core, void **state) {
  np_state_t *st = calloc(1, sizeof *st);
  if (st == NULL)
    return PORTMAP_ERR_NOMEM;
  st->core = core;
  st->nat.s = -1;
  st->pub.kind = JOB_PUBLIC;
  portmap_timer_init(&st->retx, on_retx, st);
  portmap_timer_init(&st->probe_timer, on_probe_timer, st);
  *state = st;
  return PORTMAP_OK;
}

static void np_destroy(void *state) {
  np_state_t *st = state;
  if (st == NULL)
    return;
  portmap_core_disarm(st->core, &st->retx);
  portmap_core_disarm(st->core, &st->probe_timer);
  if (st->open)
    portmap_core_close_fd(st->core, st->nat.s); /* all closenatpmp() would do */
  free(st);
}

static portmap_status_t np_check(void *state, const portmap_req_t *m) {
  (void)state;
  /* NAT-PMP maps one TCP or UDP port of our own IPv4 address: nothing else */
  if (m->ipv6 || m->is_peer || portmap_req_n_filters(m) > 0 || m->has_third_party ||
      (m->flags & PORTMAP_FLAG_PREFER_FAILURE) ||
      (m->protocol != PORTMAP_PROTO_TCP && m->protocol != PORTMAP_PROTO_UDP))
    return PORTMAP_ERR_UNSUPPORTED;
  return PORTMAP_OK;
}

static portmap_status_t np_start(void *state, const portmap_be_start_t *start, void **mstate,
                                 uint64_t now) {
  np_state_t *st = state;
  const portmap_req_t *m = start->req;
  portmap_status_t rc = gateway_open(st);
  if (rc != PORTMAP_OK)
    return rc;
  np_map_t *nm = calloc(1, sizeof *nm);
  if (nm == NULL)
    return PORTMAP_ERR_NOMEM;
  nm->h = start->handle;
  nm->req = m;
  nm->res = start->result;
  nm->ever_mapped = start->ever_mapped;
  nm->st = st;
  nm->job.kind = JOB_MAP;
  nm->job.nm = nm;
  nm->request_started = now;
  portmap_timer_init(&nm->timer, on_timer, nm);
  portmap_timer_init(&nm->expiry, on_expiry, nm);
  nm->next = st->maps;
  if (st->maps)
    st->maps->prev = nm;
  st->maps = nm;
  *mstate = nm;
  memcpy(nm->res.internal_addr, st->local, 16);
  if (st->have_ext)
    memcpy(nm->res.external_addr, st->ext, 16);
  portmap_core_update(st->core, nm->h, &nm->res);
  if (portmap_req_description_len(m) > 0)
    portmap_core_log(st->core, PORTMAP_LOG_DEBUG, "natpmp: NAT-PMP has no description; not sent");
  if (m->has_suggested_addr)
    portmap_core_log(st->core, PORTMAP_LOG_DEBUG,
                     "natpmp: NAT-PMP cannot suggest an external address");
  if (m->flags & PORTMAP_FLAG_DELETE) {
    request_delete(nm);
  } else {
    /* the external address: asked once per gateway, ahead of the first mapping */
    if (!st->have_ext && !st->pub_tried) {
      st->pub_tried = 1;
      ask_public(st, 1);
    } else if (job_active(st, &st->pub)) {
      st->pub_for_maps = 1;
    }
    request(nm);
  }
  settle(st, now);
  return PORTMAP_OK;
}

static void np_revoke(void *state, void *mstate, uint64_t now) {
  np_state_t *st = state;
  np_map_t *nm = mstate;
  if (nm == NULL || nm->deleting)
    return;
  if (!nm->sent) {
    nm_finish(nm, PORTMAP_EVENT_DELETED, PORTMAP_OK); /* nothing went out */
  } else if (!st->answered) {
    /* The gateway never answered anything: one best-effort delete, no wait
     * for a confirmation that would not come. */
    np_job_t del = nm->job;
    abandon(st, &nm->job);
    del.external_port = 0;
    del.lifetime = 0;
    if (raw_send(st, &del) != 0)
      st->unreachable = 1;
    nm_finish(nm, PORTMAP_EVENT_DELETED, PORTMAP_OK);
  } else {
    request_delete(nm);
  }
  settle(st, now);
}

static void np_detach(void *state, void *mstate, int revoked) {
  np_state_t *st = state;
  np_map_t *nm = mstate;
  (void)revoked;
  if (nm == NULL)
    return;
  int was_cur = st->cur == &nm->job;
  nm_free(nm);
  /* restart the FIFO from the scheduler: detach sends nothing itself */
  if (was_cur && st->head != NULL)
    arm(st, &st->retx, portmap_core_now(st->core));
}

static size_t np_fds(void *state, int *fds, size_t cap) {
  np_state_t *st = state;
  if (!st->open)
    return 0;
  if (cap > 0)
    fds[0] = st->nat.s;
  return 1;
}

static void np_probe(void *state, uint64_t now) {
  np_state_t *st = state;
  uint32_t budget = portmap_core_config(st->core)->probe_timeout_ms;
  if (st->probing)
    return;
  st->probing = 1;
  portmap_status_t rc = gateway_open(st);
  if (rc != PORTMAP_OK) {
    probe_report(st, rc, -1, 0);
    return;
  }
  if (budget > 0)
    arm(st, &st->probe_timer, now + budget);
  /* shares the public-address request with the mappings, in the FIFO
   * behind any request in flight */
  ask_public(st, 0);
  settle(st, now);
}

static void np_unsolicited(void *state, const uint8_t from[16], uint16_t from_port,
                           const uint8_t *data, size_t len, uint64_t now) {
  np_state_t *st = state;
  portmap_stats_t *stats = portmap_core_stats(st->core);
  if (len == 0 || data[0] != NP_VERSION)
    return; /* PCP (version 2) is not ours */
  stats->received++;
  portmap_core_trace(st->core, 0, from, from_port, data, len);
  /* N6 (RFC 6886 §3.2.1): only from the current gateway's port 5351 */
  uint8_t gw4[16];
  if (!portmap_core_gateway(st->core, 0, gw4, NULL) || memcmp(from, gw4, 16) != 0 ||
      from_port != NATPMP_PORT) {
    stats->spoofed++;
    return;
  }
  /* a gratuitous public address response */
  uint32_t sssoe;
  uint8_t v4[4];
  if (portmap_natpmp_parse_announce(data, len, &sssoe, v4) != 0) {
    stats->malformed++;
    return;
  }
  epoch_check(st, sssoe, now);
  set_external(st, v4, now);
  if (st->open)
    settle(st, now);
}

const portmap_backend_ops_t portmap_natpmp_backend = {
    .id = PORTMAP_BACKEND_NATPMP,
    .name = "natpmp",
    .create = np_create,
    .destroy = np_destroy,
    .check = np_check,
    .start = np_start,
    .revoke = np_revoke,
    .detach = np_detach,
    .fds = np_fds,
    .readable = np_readable,
    .probe = np_probe,
    .unsolicited = np_unsolicited,
    .list = NULL,
};
