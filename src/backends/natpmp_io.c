/* SPDX-License-Identifier: MIT */
/*
 * NAT-PMP requests on the wire (RFC 6886): libnatpmp's socket, the window
 * of requests in flight to the gateway (PORTMAP_PACE_WINDOW, the public
 * address request among them) and the FIFO of those waiting, sending and
 * retransmitting each one (N1), and reading the answers and finding, by
 * opcode and internal port, the request each one answers. What an answer
 * means for a mapping is natpmp.c's.
 *
 * Two requests for the same opcode and internal port are never in flight
 * together (their answers could not be told apart): the second waits at
 * the head of the FIFO until the first is done. Mapping requests also wait
 * while the public address request they need is out (natpmp.c sets
 * pub_for_maps); that request starts ahead of everything waiting.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backends/natpmp_int.h"
#include "natpmp/wire.h"
#include "platform/platform.h"
#include "util/container.h"
#include "util/netutil.h"

/* ---------- the socket ---------- */

portmap_status_t portmap_np_gateway_open(np_state_t *st) {
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

/* ---------- what a request sends ---------- */

/* The opcode (N2: 0 public address, 1 UDP, 2 TCP) and internal port of a
 * request: what its answer carries back. */
static int job_op(const np_job_t *j) {
  if (j->kind == JOB_PUBLIC)
    return NP_OP_PUBLIC;
  return j->nm->req->protocol == PORTMAP_PROTO_TCP ? NATPMP_PROTOCOL_TCP : NATPMP_PROTOCOL_UDP;
}

static uint16_t job_port(const np_job_t *j) {
  return j->kind == JOB_PUBLIC ? 0 : j->nm->req->internal_port;
}

/* A mapping request: create/renew (the same on NAT-PMP, §3.3) or delete. */
static void job_fields(const np_job_t *j, uint16_t *external_port, uint32_t *lifetime) {
  const np_map_t *nm = j->nm;
  const portmap_req_t *m = nm->req;
  if (nm->deleting) {
    *external_port = 0; /* N4 (§3.4): lifetime 0 and suggested external port 0 */
    *lifetime = 0;
    return;
  }
  /* Renewals suggest what we were given (like H2). Q15: never suggest 0
   * (MikroTik refuses it): the internal port when the application gave none. */
  if (nm->have_assigned && nm->assigned_port != 0)
    *external_port = nm->assigned_port;
  else if (m->suggested_port != 0)
    *external_port = m->suggested_port;
  else
    *external_port = m->internal_port;
  /* N3: the requested lifetime (7200 s unless the application chose);
   * N7: never 0, which would delete */
  *lifetime = m->lifetime != 0 ? m->lifetime : 7200u;
}

unsigned portmap_np_max_tries(const np_state_t *st) {
  unsigned n = portmap_core_config(st->core)->natpmp_max_tries;
  return n == 0 ? 1 : n;
}

static unsigned job_max_tries(const np_state_t *st, const np_job_t *j) {
  unsigned n = portmap_np_max_tries(st);
  if (j->kind == JOB_MAP && j->nm->deleting && n > NP_DELETE_TRIES)
    n = NP_DELETE_TRIES; /* a delete is bounded even with a large budget */
  return n;
}

/* A new mapping gives up at request_timeout_ms; 0 = only after its tries. */
static uint64_t job_deadline(const np_state_t *st, const np_job_t *j) {
  uint32_t timeout = portmap_core_config(st->core)->request_timeout_ms;
  if (j->kind != JOB_MAP || j->nm->deleting || j->nm->ever_mapped || timeout == 0)
    return 0;
  return j->nm->request_started + timeout;
}

int portmap_np_raw_send(np_state_t *st, const np_job_t *j) {
  portmap_core_t *core = st->core;
  int r;
  errno = 0;
  if (j->kind == JOB_PUBLIC) {
    r = sendpublicaddressrequest(&st->nat);
  } else {
    uint16_t external_port;
    uint32_t lifetime;
    job_fields(j, &external_port, &lifetime);
    r = sendnewportmappingrequest(&st->nat, job_op(j), job_port(j), external_port, lifetime);
  }
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

/* ---------- requests in flight, found by opcode and internal port ---------- */

typedef struct job_key {
  int op;
  int port; /* -1: any (an error answer too short to carry it) */
} job_key_t;

static uint64_t key_hash(const np_state_t *st, int op, uint16_t port) {
  uint8_t key[3] = {(uint8_t)op, (uint8_t)(port >> 8), (uint8_t)port};
  return portmap_hash_bytes((uint64_t)(uintptr_t)st, key, sizeof key);
}

static uint64_t job_hash(const void *elem, const void *user) {
  const np_job_t *j = elem;
  return key_hash(user, job_op(j), job_port(j));
}

static int job_has_key(const void *elem, const void *key) {
  const np_job_t *j = elem;
  const job_key_t *k = key;
  return job_op(j) == k->op && (k->port < 0 || job_port(j) == k->port);
}

static np_job_t *find_inflight(np_state_t *st, int op, uint16_t port) {
  job_key_t key = {op, port};
  return portmap_hash_find(&st->inflight, key_hash(st, op, port), job_has_key, &key);
}

/* A walk for the one case with no port to look up by. */
typedef struct any_op {
  job_key_t key;
  np_job_t *found;
} any_op_t;

static void first_with_op(void *elem, void *ctx) {
  any_op_t *a = ctx;
  if (a->found == NULL && job_has_key(elem, &a->key))
    a->found = elem;
}

/* ---------- the window and the FIFO ---------- */

static void on_retx(portmap_timer_t *t, uint64_t now);

void portmap_np_job_init(np_state_t *st, np_job_t *j, enum np_job_kind kind, np_map_t *nm) {
  portmap_pace_link_init(&j->slot);
  portmap_timer_init(&j->retx, on_retx, j);
  j->st = st;
  j->nm = nm;
  j->kind = kind;
  j->tries = 0;
  j->first_sent = 0;
}

void portmap_np_enqueue(np_state_t *st, np_job_t *j) {
  if (portmap_np_job_active(j))
    return;
  portmap_pace_enqueue(&st->pace, &j->slot);
  uint64_t deadline = job_deadline(st, j);
  if (deadline != 0)
    portmap_np_arm(st, &j->retx, deadline); /* it gives up even while waiting */
}

void portmap_np_job_stop(np_state_t *st, np_job_t *j) {
  if (portmap_pace_held(&j->slot))
    portmap_hash_remove(&st->inflight, j);
  portmap_pace_release(&st->pace, &j->slot);
  portmap_core_disarm(st->core, &j->retx);
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
  if (portmap_np_raw_send(st, j) != 0)
    st->unreachable = 1;
  unsigned shift = j->tries - 1 > NP_MAX_SHIFT ? NP_MAX_SHIFT : j->tries - 1;
  uint64_t wait = (uint64_t)portmap_core_config(st->core)->natpmp_irt_ms << shift;
  uint64_t deadline = job_deadline(st, j);
  if (deadline != 0 && now + wait > deadline)
    wait = deadline > now ? deadline - now : 0;
  portmap_np_arm(st, &j->retx, now + wait);
}

/* Take a slot for the waiting j and send it. */
static void job_start(np_state_t *st, np_job_t *j, uint64_t now) {
  portmap_pace_start(&st->pace, &j->slot);
  (void)portmap_hash_insert(&st->inflight, j); /* room reserved for the window */
  portmap_core_disarm(st->core, &j->retx);
  j->tries = 0;
  uint64_t deadline = job_deadline(st, j);
  if (deadline != 0 && now >= deadline)
    portmap_np_job_give_up(st, j, now); /* waited in the FIFO past its time */
  else
    job_send(st, j, now);
}

void portmap_np_kick(np_state_t *st, uint64_t now) {
  np_job_t *pub = &st->pub;
  if (portmap_pace_queued(&pub->slot) && portmap_pace_ready(&st->pace) != NULL &&
      find_inflight(st, NP_OP_PUBLIC, 0) == NULL)
    job_start(st, pub, now); /* first: mappings may be waiting for its answer */
  portmap_pace_link_t *l;
  while ((l = portmap_pace_ready(&st->pace)) != NULL) {
    np_job_t *j = PORTMAP_CONTAINER_OF(l, np_job_t, slot);
    if (j->kind == JOB_MAP && st->pub_for_maps && portmap_np_job_active(pub))
      break; /* mappings wait for the external address */
    if (find_inflight(st, job_op(j), job_port(j)) != NULL)
      break; /* the same port's request is in flight: after it */
    job_start(st, j, now);
  }
}

static void on_retx(portmap_timer_t *t, uint64_t now) {
  np_job_t *j = t->ctx;
  np_state_t *st = j->st;
  uint64_t deadline = job_deadline(st, j);
  if (portmap_pace_queued(&j->slot) || j->tries >= job_max_tries(st, j) ||
      (deadline != 0 && now >= deadline))
    portmap_np_job_give_up(st, j, now); /* N1: after the last try and its wait */
  else
    job_send(st, j, now);
  portmap_np_settle(st, now);
}

static void on_kick(portmap_timer_t *t, uint64_t now) {
  portmap_np_settle(t->ctx, now);
}

portmap_status_t portmap_np_io_init(np_state_t *st) {
  portmap_pace_init(&st->pace, PORTMAP_PACE_WINDOW);
  portmap_hash_init(&st->inflight, job_hash, st, portmap_core_alloc(st->core));
  portmap_timer_init(&st->kick, on_kick, st);
  portmap_np_job_init(st, &st->pub, JOB_PUBLIC, NULL);
  /* the window never holds more: an insert never fails */
  return portmap_hash_reserve(&st->inflight, PORTMAP_PACE_WINDOW) == 0 ? PORTMAP_OK
                                                                       : PORTMAP_ERR_NOMEM;
}

void portmap_np_io_fini(np_state_t *st) {
  portmap_core_disarm(st->core, &st->kick);
  portmap_core_disarm(st->core, &st->pub.retx);
  portmap_hash_fini(&st->inflight);
}

/* ---------- answers ---------- */

static int job_matches(const np_job_t *j, int op, int result, const natpmpresp_t *r) {
  if (j->kind == JOB_PUBLIC)
    return op == NP_OP_PUBLIC;
  /* a delete is confirmed by lifetime 0; a late answer to the create is not */
  if (j->nm->deleting && result == NP_RESULT_SUCCESS && r->pnu.newportmapping.lifetime != 0)
    return 0;
  return 1;
}

static void on_response(np_state_t *st, int op, int result, const natpmpresp_t *r,
                        const uint8_t *raw, size_t len, uint64_t now) {
  st->answered = 1;
  portmap_np_epoch_check(st, r->epoch, now);
  /* N2: the answer to opcode 1 is 129, to 2 is 130; the internal port is
   * parsed by libnatpmp on success, in the octets of an error response when
   * it is long enough to carry it */
  np_job_t *j;
  if (op == NP_OP_PUBLIC) {
    j = find_inflight(st, op, 0);
  } else if (result == NP_RESULT_SUCCESS || len >= 10) {
    uint16_t port = result == NP_RESULT_SUCCESS ? r->pnu.newportmapping.privateport
                                                : portmap_natpmp_field16(raw, len, 8);
    j = find_inflight(st, op, port);
  } else {
    any_op_t a = {{op, -1}, NULL}; /* at most a window of them to look at */
    portmap_hash_walk(&st->inflight, first_with_op, &a);
    j = a.found;
  }
  if (j == NULL || !job_matches(j, op, result, r)) {
    portmap_core_stats(st->core)->unmatched++; /* a duplicate, or an answer to a request given up */
    return;
  }
  portmap_np_job_stop(st, j);
  if (j->kind == JOB_PUBLIC)
    portmap_np_on_public_answer(st, result, r, now);
  else
    portmap_np_on_map_answer(j->nm, result, r, now);
}

void portmap_np_readable(void *state, uint64_t now) {
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
    /* Our window, not libnatpmp, knows what is outstanding: let it parse
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
  portmap_np_settle(st, now);
}
