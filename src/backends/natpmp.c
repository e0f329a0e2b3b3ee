/* SPDX-License-Identifier: MIT */
/*
 * The NAT-PMP backend (RFC 6886), on libnatpmp: the mappings, the external
 * address, the epoch, the probe and the vtable. Requests on the wire (the
 * window of requests in flight, retransmission, reading and matching the
 * answers) are natpmp_io.c's.
 *
 * libnatpmp builds the requests, owns the socket (connected to the
 * gateway's port 5351) and parses the responses. Everything else is ours,
 * because of how libnatpmp 20150609 behaves:
 * - It retransmits on its own gettimeofday() clock from inside
 *   readnatpmpresponseorretry() whenever nothing is readable. We call that
 *   function only after a MSG_PEEK has shown a datagram waiting, and
 *   retransmit on the client's scheduler and injected clock by calling the
 *   send function again (it rebuilds and re-sends identical octets).
 * - It holds one pending request, and needs it for nothing but its own
 *   retransmission: we keep our own, up to PORTMAP_PACE_WINDOW in flight
 *   (each answer names its opcode and internal port), the others waiting
 *   in a FIFO.
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
#include <stdlib.h>
#include <string.h>

#include "backends/natpmp_int.h"
#include "natpmp/wire.h"
#include "util/netutil.h"

void portmap_np_arm(np_state_t *st, portmap_timer_t *t, uint64_t deadline) {
  if (portmap_core_arm(st->core, t, deadline) != 0)
    portmap_core_log(st->core, PORTMAP_LOG_ERROR, "natpmp: out of memory for a timer");
}

/* ---------- the external address ---------- */

static void ask_public(np_state_t *st, int for_maps) {
  if (for_maps)
    st->pub_for_maps = 1;
  portmap_np_enqueue(st, &st->pub);
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
  portmap_np_job_stop(st, &nm->job);
  portmap_core_disarm(st->core, &nm->timer);
  portmap_core_disarm(st->core, &nm->expiry);
  if (nm->prev)
    nm->prev->next = nm->next;
  else
    st->maps = nm->next;
  if (nm->next)
    nm->next->prev = nm->prev;
  portmap_alloc_free(portmap_core_alloc(st->core), nm);
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
  np_job_t *j = &nm->job;
  if (portmap_np_job_active(j))
    return;
  portmap_core_disarm(st->core, &nm->timer);
  if (nm->ever_mapped && nm->res.expiry_ms != 0) {
    nm->res.renewing = 1; /* what is held is being renewed */
    portmap_core_update(st->core, nm->h, &nm->res);
  }
  portmap_np_enqueue(st, j); /* what it sends: natpmp_io.c job_fields() */
}

/* N4 (RFC 6886 §3.4): delete = lifetime 0 and suggested external port 0. */
static void request_delete(np_map_t *nm) {
  np_state_t *st = nm->st;
  np_job_t *j = &nm->job;
  portmap_np_job_stop(st, j);
  portmap_core_disarm(st->core, &nm->timer);
  portmap_core_disarm(st->core, &nm->expiry);
  nm->deleting = 1;
  portmap_np_enqueue(st, j);
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
      portmap_np_arm(st, &nm->timer, now + half);
    return;
  }
  portmap_np_arm(st, &nm->timer, now + NP_ERROR_BACKOFF_MS); /* lost: keep re-creating */
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
    portmap_np_arm(st, &nm->timer, now + NP_ERROR_BACKOFF_MS);
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
  portmap_np_arm(st, &nm->expiry, res->expiry_ms);
  /* N3 (§3.3): renew halfway to expiry, scheduled from the GRANTED
   * lifetime however short (Q23, Q24) */
  if (nm->req->flags & PORTMAP_FLAG_ONCE)
    portmap_core_disarm(st->core, &nm->timer);
  else
    portmap_np_arm(st, &nm->timer, now + (uint64_t)lifetime * 500u);
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
    portmap_np_arm(st, &nm->timer, now + NP_ERROR_BACKOFF_MS);
    return;
  }
  /* 1 unsupported version, 2 not authorized / refused (Q16: NAT-PMP
   * disabled), 5 unsupported opcode, and codes RFC 6886 does not define */
  portmap_core_log(st->core, PORTMAP_LOG_WARN, "natpmp: gateway refused the mapping (result %d)%s",
                   result,
                   result == NP_RESULT_REFUSED ? ": NAT-PMP disabled or not authorized" : "");
  nm_finish(nm, PORTMAP_EVENT_FAILED, PORTMAP_ERR_REFUSED);
}

void portmap_np_on_map_answer(np_map_t *nm, int result, const natpmpresp_t *r, uint64_t now) {
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

void portmap_np_on_public_answer(np_state_t *st, int result, const natpmpresp_t *r, uint64_t now) {
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

void portmap_np_job_give_up(np_state_t *st, np_job_t *j, uint64_t now) {
  portmap_np_job_stop(st, j);
  if (j->kind == JOB_PUBLIC) {
    /* N1 (§3.1): nine unanswered tries mean the gateway does not speak
     * NAT-PMP. New mappings still waiting behind this request learn it now
     * rather than after nine tries of their own. */
    st->pub_for_maps = 0;
    np_map_t *next;
    for (np_map_t *nm = st->maps; nm != NULL; nm = next) {
      next = nm->next;
      if (!portmap_pace_queued(&nm->job.slot) || nm->sent || nm->deleting || nm->ever_mapped)
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
    if (nm->deleting || !nm->ever_mapped || portmap_np_job_active(&nm->job))
      continue;
    request(nm);
  }
}

/* N5: expected = previous SSSoE + 7/8 of the client time elapsed since; a
 * new SSSoE more than 2 s below that means the gateway lost its mappings.
 * Recorded after every packet, whatever the verdict. */
void portmap_np_epoch_check(np_state_t *st, uint32_t sssoe, uint64_t now) {
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
  portmap_np_job_stop(st, &st->pub);
  st->pub_for_maps = 0;
  np_map_t *next;
  for (np_map_t *nm = st->maps; nm != NULL; nm = next) {
    next = nm->next;
    if (!portmap_np_job_active(&nm->job))
      continue;
    portmap_np_job_stop(st, &nm->job);
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

void portmap_np_settle(np_state_t *st, uint64_t now) {
  for (unsigned guard = 0; guard < 8; guard++) {
    if (st->unreachable) {
      st->unreachable = 0;
      on_unreachable(st, now);
    }
    portmap_np_kick(st, now);
    if (!st->unreachable)
      break;
  }
}

/* ---------- timers ---------- */

static void on_timer(portmap_timer_t *t, uint64_t now) {
  np_map_t *nm = t->ctx;
  np_state_t *st = nm->st;
  request(nm); /* renewal attempt, or the end of a back-off */
  portmap_np_settle(st, now);
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
  portmap_np_settle(st, now);
}

static void on_probe_timer(portmap_timer_t *t, uint64_t now) {
  np_state_t *st = t->ctx;
  /* the probe budget ran out (N1: a probe may stop earlier); a request no
   * mapping waits for must not hold up the FIFO */
  if (!st->pub_for_maps && portmap_np_job_active(&st->pub))
    portmap_np_job_stop(st, &st->pub);
  probe_report(st, PORTMAP_ERR_TIMEOUT, -1, 0);
  portmap_np_settle(st, now);
}

/* ---------- responses ---------- */

/* ---------- vtable ---------- */

static portmap_status_t np_create(portmap_core_t *core, void **state) {
  np_state_t *st = portmap_alloc_calloc(portmap_core_alloc(core), 1, sizeof *st);
  if (st == NULL)
    return PORTMAP_ERR_NOMEM;
  st->core = core;
  st->nat.s = -1;
  portmap_timer_init(&st->probe_timer, on_probe_timer, st);
  if (portmap_np_io_init(st) != PORTMAP_OK) {
    portmap_np_io_fini(st);
    portmap_alloc_free(portmap_core_alloc(core), st);
    return PORTMAP_ERR_NOMEM;
  }
  *state = st;
  return PORTMAP_OK;
}

static void np_destroy(void *state) {
  np_state_t *st = state;
  if (st == NULL)
    return;
  portmap_np_io_fini(st);
  portmap_core_disarm(st->core, &st->probe_timer);
  if (st->open)
    portmap_core_close_fd(st->core, st->nat.s); /* all closenatpmp() would do */
  portmap_alloc_free(portmap_core_alloc(st->core), st);
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
  portmap_status_t rc = portmap_np_gateway_open(st);
  if (rc != PORTMAP_OK)
    return rc;
  np_map_t *nm = portmap_alloc_calloc(portmap_core_alloc(st->core), 1, sizeof *nm);
  if (nm == NULL)
    return PORTMAP_ERR_NOMEM;
  nm->h = start->handle;
  nm->req = m;
  nm->res = start->result;
  nm->ever_mapped = start->ever_mapped;
  nm->st = st;
  portmap_np_job_init(st, &nm->job, JOB_MAP, nm);
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
    } else if (portmap_np_job_active(&st->pub)) {
      st->pub_for_maps = 1;
    }
    request(nm);
  }
  portmap_np_settle(st, now);
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
    portmap_np_job_stop(st, &nm->job);
    nm->deleting = 1; /* the job now sends the delete */
    if (portmap_np_raw_send(st, &nm->job) != 0)
      st->unreachable = 1;
    nm_finish(nm, PORTMAP_EVENT_DELETED, PORTMAP_OK);
  } else {
    request_delete(nm);
  }
  portmap_np_settle(st, now);
}

static void np_detach(void *state, void *mstate, int revoked) {
  np_state_t *st = state;
  np_map_t *nm = mstate;
  (void)revoked;
  if (nm == NULL)
    return;
  int held = portmap_pace_held(&nm->job.slot);
  nm_free(nm);
  /* a slot came back: the FIFO goes on from the scheduler (detach sends
   * nothing itself) */
  if (held && portmap_pace_waiting(&st->pace) > 0)
    portmap_np_arm(st, &st->kick, portmap_core_now(st->core));
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
  portmap_status_t rc = portmap_np_gateway_open(st);
  if (rc != PORTMAP_OK) {
    probe_report(st, rc, -1, 0);
    return;
  }
  if (budget > 0)
    portmap_np_arm(st, &st->probe_timer, now + budget);
  /* shares the public-address request with the mappings; it goes ahead
   * of any request waiting */
  ask_public(st, 0);
  portmap_np_settle(st, now);
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
  portmap_np_epoch_check(st, sssoe, now);
  set_external(st, v4, now);
  if (st->open)
    portmap_np_settle(st, now);
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
    .readable = portmap_np_readable,
    .probe = np_probe,
    .unsolicited = np_unsolicited,
    .list = NULL,
};
