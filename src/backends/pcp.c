/* SPDX-License-Identifier: MIT */
/*
 * The PCP session engine (RFC 6887), per mapping: requests and their
 * retransmission, nonces, result-code classes and error lifetimes, the
 * renewal schedule, delete with retransmission, and what epoch recovery,
 * a NAT-PMP answer or a closed port does to the mappings. The servers, the
 * probe and the routing of datagrams are in pcp_server.c; the wire format
 * in src/pcp/wire.c and the timing rules in src/pcp/timing.c; this file
 * only decides. It sees the core only through backends/backend.h.
 *
 * Per mapping, one phase at a time:
 *   REQUEST  creating or re-creating, retransmitted per section 8.1.1
 *   RENEW    mapped; the timer is the next renewal attempt (H5)
 *   BACKOFF  an error lifetime is running (G1)
 *   DEFER    no new mappings to this server yet (G2)
 *   DELETE   lifetime-0 request, retransmitted (H6)
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "backends/pcp_int.h"
#include "util/container.h"

static portmap_core_t *core_of(const pcp_map_t *pm) {
  return pm->srv->st->core;
}

/* ---------- paced requests ---------- *
 * A request takes a slot in its server's window before its first send and
 * gives it back with the answer (or when it gives up or ends): a slot is
 * held exactly while a response is outstanding. A request that gets no
 * slot waits in the FIFO with no timer but a new mapping's give-up time
 * (so it is never retransmitted before it was first sent); the pump starts
 * waiting requests as slots come back. */

static pcp_map_t *map_of_slot(portmap_pace_link_t *l) {
  return PORTMAP_CONTAINER_OF(l, pcp_map_t, slot);
}

/* A slot for the request pm is about to send first: 1, or 0 when it waits. */
static int take_slot(pcp_map_t *pm);

static void give_slot(pcp_map_t *pm) {
  portmap_pace_release(&pm->srv->pace, &pm->slot);
}

static void pm_free(pcp_map_t *pm) {
  portmap_core_t *core = core_of(pm);
  portmap_core_disarm(core, &pm->timer);
  portmap_core_disarm(core, &pm->expiry);
  give_slot(pm);
  pcp_state_t *st = pm->srv->st;
  portmap_hash_remove(&st->maps, pm);
  portmap_alloc_free(portmap_core_alloc(core), pm);
}

/* What the core is told: ours, and the internal address the mapping
 * points at (THIRD_PARTY, else our source address: A4, J1). */
static void result_of(const pcp_map_t *pm, portmap_result_t *out) {
  const uint8_t *tp = portmap_req_third_party(pm->req);
  memset(out, 0, sizeof *out);
  out->status = pm->res.status;
  out->gateway_result = pm->res.gateway_result;
  memcpy(out->internal_addr, tp != NULL ? tp : pm->srv->local, 16);
  memcpy(out->external_addr, pm->res.external_addr, 16);
  out->external_port = pm->res.external_port;
  out->lifetime = pm->res.lifetime;
  out->expiry_ms = pm->res.expiry_ms;
  out->renewing = pm->renewing;
}

static void update(pcp_map_t *pm) {
  portmap_result_t res;
  result_of(pm, &res);
  portmap_core_update(core_of(pm), pm->h, &res);
}

/* Tell the core; a success means the mapping has been mapped. */
static void emit(pcp_map_t *pm, portmap_event_t ev) {
  if (ev == PORTMAP_EVENT_MAPPED || ev == PORTMAP_EVENT_RENEWED || ev == PORTMAP_EVENT_CHANGED) {
    pm->ever_mapped = 1;
    pm->granted_here = 1;
  }
  portmap_result_t res;
  result_of(pm, &res);
  portmap_core_report(core_of(pm), pm->h, ev, &res);
}

/* End the mapping: free our state first, then report the final event. */
static void pm_finish(pcp_map_t *pm, portmap_event_t ev, portmap_status_t status) {
  portmap_core_t *core = core_of(pm);
  portmap_mapping_t *h = pm->h;
  portmap_result_t res;
  result_of(pm, &res);
  res.status = status;
  pm_free(pm);
  portmap_core_report(core, h, ev, &res);
}

static void arm(pcp_map_t *pm, uint64_t deadline) {
  if (portmap_core_arm(core_of(pm), &pm->timer, deadline) != 0)
    portmap_core_log(core_of(pm), PORTMAP_LOG_ERROR, "pcp: out of memory for a timer");
}

static uint64_t error_ms(uint32_t lifetime_s, uint32_t default_ms) {
  if (lifetime_s == 0)
    return default_ms;
  return (uint64_t)(lifetime_s > PCP_MAX_ERROR_S ? PCP_MAX_ERROR_S : lifetime_s) * 1000u;
}

/* A new mapping gives up at request_timeout_ms, error lifetimes or not. */
static uint64_t clip_to_request_timeout(pcp_map_t *pm, uint64_t deadline) {
  uint32_t timeout = portmap_core_config(core_of(pm))->request_timeout_ms;
  if (timeout == 0 || pm->ever_mapped)
    return deadline;
  uint64_t end = pm->first_request + timeout;
  return deadline < end ? deadline : end;
}

static int request_timed_out(pcp_map_t *pm, uint64_t now) {
  uint32_t timeout = portmap_core_config(core_of(pm))->request_timeout_ms;
  return timeout > 0 && !pm->ever_mapped && now - pm->first_request >= timeout;
}

/* A request starts (not a retransmission): does it carry the description?
 * J3, Q26: yes unless this server refused it; never in a delete. */
static void choose_description(pcp_map_t *pm) {
  const portmap_req_t *m = pm->req;
  int required = (m->flags & PORTMAP_FLAG_DESCRIPTION_REQUIRED) != 0;
  pm->sent_description = pm->phase != PH_DELETE && portmap_req_description_len(m) > 0 &&
                         (required || (!pm->omit_description && !pm->srv->no_description));
}

/* Encode the mapping's request for its phase (a delete has lifetime 0) and
 * send it: INVALID when it does not encode. Nothing is kept between sends:
 * what the octets depend on does not change while a request is repeated
 * (the request, the server's address, the description chosen when it
 * started, and what was assigned, which only an answer changes), so every
 * retransmission is the identical request (C4). */
static portmap_status_t send_request(pcp_map_t *pm) {
  const portmap_req_t *m = pm->req;
  pcp_server_t *s = pm->srv;
  uint32_t lifetime = pm->phase == PH_DELETE ? 0 : m->lifetime;
  pcp_msg_t msg;
  pcp_msg_init(&msg);
  msg.opcode = m->is_peer ? PCP_OP_PEER : PCP_OP_MAP;
  msg.lifetime = lifetime;
  memcpy(msg.client_addr, s->local, 16);      /* A4 */
  memcpy(msg.nonce, m->nonce, PCP_NONCE_LEN); /* D2: one nonce for life */
  msg.protocol = (uint8_t)m->protocol;
  msg.internal_port = m->internal_port;
  if (pm->have_assigned) {
    /* H2, I2: suggest what the server gave us before */
    msg.external_port = pm->res.external_port;
    memcpy(msg.external_addr, pm->res.external_addr, 16);
  } else {
    const uint8_t *suggested = portmap_req_suggested_addr(m);
    msg.external_port = m->suggested_port;
    /* Q19: all-zeros unless the application insists (A7) */
    if (suggested != NULL)
      memcpy(msg.external_addr, suggested, 16);
    else
      pcp_addr_any(msg.external_addr, m->ipv6);
  }
  if (m->is_peer) {
    msg.peer_port = portmap_req_peer_port(m);
    memcpy(msg.peer_addr, portmap_req_peer_addr(m), 16);
  }
  /* J1: THIRD_PARTY on every request of the mapping, delete included */
  if (m->has_third_party) {
    msg.has_third_party = 1;
    memcpy(msg.third_party, portmap_req_third_party(m), 16);
  }
  if (lifetime > 0) {
    /* H8: PREFER_FAILURE is MAP-only (I1 rejected it on PEER already) */
    msg.prefer_failure = !m->is_peer && (m->flags & PORTMAP_FLAG_PREFER_FAILURE);
    /* J2: filters are re-sent with every renewal */
    const portmap_req_filter_t *filters = portmap_req_filters(m);
    msg.n_filters = portmap_req_n_filters(m);
    for (size_t i = 0; i < msg.n_filters; i++) {
      msg.filters[i].prefix_len = filters[i].prefix_len;
      msg.filters[i].port = filters[i].port;
      memcpy(msg.filters[i].addr, filters[i].addr, 16);
    }
    if (pm->sent_description) {
      msg.description_len = portmap_req_description_len(m);
      memcpy(msg.description, portmap_req_description(m), msg.description_len);
    }
  }
  uint8_t buf[PCP_MAX_REQUEST];
  size_t len = 0;
  if (pcp_encode_request(&msg, buf, sizeof buf, &len) != PCP_WIRE_OK)
    return PORTMAP_ERR_INVALID;
  portmap_pcp_send(s, buf, len);
  return PORTMAP_OK;
}

/* One step of the retransmission state machine (C2-C4): send the request
 * now and arm the next timeout, or give up. */
static void retx_step(pcp_map_t *pm, uint64_t now);

/* The first send of a create, re-create or delete (it holds a slot). */
static void first_send(pcp_map_t *pm, uint64_t now) {
  choose_description(pm);
  retx_step(pm, now);
}

static void start_cycle(pcp_map_t *pm, enum pcp_phase phase, uint64_t now) {
  pm->phase = (uint8_t)phase;
  pm->sends = 0; /* a new request: RT1 from IRT (C2) */
  if (take_slot(pm))
    first_send(pm, now);
}

static void give_up(pcp_map_t *pm) {
  portmap_core_log(core_of(pm), PORTMAP_LOG_INFO, "pcp: no answer from the server, giving up");
  pm->res.gateway_result = -1;
  pm_finish(pm, PORTMAP_EVENT_FAILED, PORTMAP_ERR_TIMEOUT);
}

static void retx_step(pcp_map_t *pm, uint64_t now) {
  portmap_core_t *core = core_of(pm);
  if (pm->phase == PH_REQUEST && request_timed_out(pm, now)) {
    give_up(pm);
    return;
  }
  /* C1-C3 with the client's configuration; a delete is bounded even when
   * creates are not */
  const portmap_config_t *cfg = portmap_core_config(core);
  uint32_t mrc = cfg->pcp_mrc;
  if (pm->phase == PH_DELETE && (mrc == 0 || mrc > PCP_DELETE_MRC))
    mrc = PCP_DELETE_MRC;
  pcp_retx_t retx;
  pcp_retx_init(&retx, cfg->pcp_irt_ms, cfg->pcp_mrt_ms, mrc, cfg->pcp_mrd_ms);
  retx.rt_ms = pm->rt_ms;
  retx.sends = pm->sends;
  retx.start_ms = pm->retx_start;
  int first = pm->sends == 0;
  uint32_t wait = pcp_retx_next(&retx, now, portmap_core_random32(core));
  if (wait == 0) {
    give_up(pm); /* C3 */
    return;
  }
  pm->rt_ms = retx.rt_ms;
  pm->sends = retx.sends;
  pm->retx_start = retx.start_ms;
  if (!first)
    portmap_core_stats(core)->retransmissions++;
  portmap_status_t st = send_request(pm);
  if (st != PORTMAP_OK) {
    pm_finish(pm, PORTMAP_EVENT_FAILED, st);
    return;
  }
  pm->outstanding = 1;
  uint64_t next = now + wait;
  arm(pm, pm->phase == PH_REQUEST ? clip_to_request_timeout(pm, next) : next);
}

static void schedule_renewal(pcp_map_t *pm, uint64_t now) {
  portmap_core_t *core = core_of(pm);
  /* while it is held (the only time it renews) the grant was its expiry
   * less the granted lifetime */
  uint64_t life_ms = (uint64_t)pm->granted_lifetime * 1000u;
  uint64_t granted_at = pm->res.expiry_ms > life_ms ? pm->res.expiry_ms - life_ms : now;
  uint32_t d = pcp_renew_delay(pm->granted_lifetime, pm->renew_attempt, now - granted_at,
                               portmap_core_random32(core));
  pm->phase = PH_RENEW;
  if (d == 0)
    portmap_core_disarm(core, &pm->timer); /* only the expiry is left */
  else
    arm(pm, now + d);
}

/* H5: one renewal per attempt point; the next point is the retry. */
static void renew_send(pcp_map_t *pm, uint64_t now) {
  choose_description(pm);
  portmap_status_t st = send_request(pm);
  if (st != PORTMAP_OK) {
    pm_finish(pm, PORTMAP_EVENT_FAILED, st);
    return;
  }
  pm->outstanding = 1;
  pm->renewing = 1;
  update(pm);
  if (pm->renew_attempt < 255)
    pm->renew_attempt++;
  schedule_renewal(pm, now);
}

static int take_slot(pcp_map_t *pm) {
  if (portmap_pace_acquire(&pm->srv->pace, &pm->slot))
    return 1;
  /* it waits its turn: nothing runs for it but a new mapping's give-up
   * time (request_timeout_ms) and the expiry of what it holds */
  portmap_core_disarm(core_of(pm), &pm->timer);
  uint64_t end = clip_to_request_timeout(pm, UINT64_MAX);
  if (pm->phase == PH_REQUEST && end != UINT64_MAX)
    arm(pm, end);
  return 0;
}

void portmap_pcp_pump(pcp_state_t *st, uint64_t now) {
  for (int i = 0; i < 2; i++) {
    portmap_pace_t *pace = &st->srv[i].pace;
    portmap_pace_link_t *l;
    while ((l = portmap_pace_ready(pace)) != NULL) {
      pcp_map_t *pm = map_of_slot(l);
      portmap_pace_start(pace, l);
      portmap_core_disarm(st->core, &pm->timer); /* its give-up time: sending re-arms */
      if (pm->phase == PH_RENEW)
        renew_send(pm, now);
      else
        first_send(pm, now);
    }
  }
}

void portmap_pcp_on_pump(portmap_timer_t *t, uint64_t now) {
  portmap_pcp_pump(t->ctx, now);
}

static void on_timer(portmap_timer_t *t, uint64_t now) {
  pcp_map_t *pm = t->ctx;
  pcp_state_t *st = pm->srv->st;
  if (portmap_pace_queued(&pm->slot)) {
    /* waiting for a slot: only a new mapping's give-up time runs */
    if (request_timed_out(pm, now))
      give_up(pm);
    portmap_pcp_pump(st, now);
    return;
  }
  switch (pm->phase) {
  case PH_REQUEST:
  case PH_DELETE:
    retx_step(pm, now);
    break;
  case PH_RENEW:
    if (take_slot(pm))
      renew_send(pm, now);
    break;
  case PH_BACKOFF:
  case PH_DEFER:
    if (request_timed_out(pm, now))
      give_up(pm);
    else
      start_cycle(pm, PH_REQUEST, now);
    break;
  }
  portmap_pcp_pump(st, now);
}

/* The granted lifetime ran out without a successful renewal. */
static void on_expiry(portmap_timer_t *t, uint64_t now) {
  pcp_map_t *pm = t->ctx;
  pcp_state_t *st = pm->srv->st;
  pm->res.lifetime = 0;
  pm->res.expiry_ms = 0;
  if (pm->req->flags & PORTMAP_FLAG_ONCE) {
    pm_finish(pm, PORTMAP_EVENT_DELETED, PORTMAP_OK);
  } else {
    pm->res.status = PORTMAP_ERR_TIMEOUT;
    emit(pm, PORTMAP_EVENT_LOST);
    if (pm->phase == PH_RENEW)
      start_cycle(pm, PH_REQUEST, now); /* re-create, suggesting the old (H2) */
  }
  portmap_pcp_pump(st, now);
}

/* A walk over one server's mappings (the epoch and the port-unreachable
 * rules concern them all: O(n) once per such event). */
typedef struct server_walk {
  pcp_server_t *s;
  pcp_map_t *except;
  uint64_t now;
  int any;
} server_walk_t;

static void recover_one(void *elem, void *ctx) {
  pcp_map_t *pm = elem;
  server_walk_t *w = ctx;
  if (pm == w->except || pm->srv != w->s)
    return;
  if (pm->phase == PH_RENEW || pm->phase == PH_BACKOFF) {
    pm->renew_attempt = 0;
    start_cycle(pm, PH_REQUEST, w->now); /* may end it: the walk allows that */
  }
}

/* E5: the server lost its state; re-create every mapping there. */
void portmap_pcp_recover(pcp_server_t *s, pcp_map_t *except, uint64_t now) {
  server_walk_t w = {s, except, now, 0};
  portmap_hash_walk(&s->st->maps, recover_one, &w);
  /* what the gateway speaks may have changed too */
  portmap_core_epoch_changed(s->st->core, now);
}

void portmap_pcp_on_recovery(portmap_timer_t *t, uint64_t now) {
  pcp_server_t *s = t->ctx;
  portmap_pcp_recover(s, NULL, now);
  portmap_pcp_pump(s->st, now);
}

/* ---------- responses ---------- */

static void backoff(pcp_map_t *pm, uint32_t lifetime_s, uint32_t default_ms, uint64_t now) {
  pm->phase = PH_BACKOFF;
  pm->outstanding = 0;
  give_slot(pm);
  arm(pm, clip_to_request_timeout(pm, now + error_ms(lifetime_s, default_ms)));
}

/* A SUCCESS with lifetime 0: the server holds nothing for the mapping (any
 * more). LOST, with nothing held; the old lease end is then no news and is
 * not told a second time (a ONCE mapping keeps it: it ends there). */
static void lost_on_server(pcp_map_t *pm) {
  pm->res.lifetime = 0;
  pm->res.expiry_ms = 0;
  pm->res.status = PORTMAP_ERR_REFUSED;
  if (!(pm->req->flags & PORTMAP_FLAG_ONCE))
    portmap_core_disarm(core_of(pm), &pm->expiry);
  emit(pm, PORTMAP_EVENT_LOST);
}

static void on_success(pcp_map_t *pm, const pcp_msg_t *r, uint64_t now) {
  portmap_core_t *core = core_of(pm);
  pcp_res_t *res = &pm->res;
  uint32_t lifetime = r->lifetime > PCP_MAX_LIFETIME ? PCP_MAX_LIFETIME : r->lifetime; /* H4 */
  if (lifetime == 0) {
    /* a create or renewal answered with lifetime 0: the server would not keep it */
    lost_on_server(pm);
    backoff(pm, 0, PCP_SHORT_ERROR_MS, now);
    return;
  }
  int changed = pm->have_assigned && (res->external_port != r->external_port ||
                                      memcmp(res->external_addr, r->external_addr, 16) != 0);
  int first = !pm->ever_mapped;
  pm->have_assigned = 1; /* H3: report what was assigned */
  pm->granted_lifetime = lifetime;
  pm->renew_attempt = 0;
  pm->outstanding = 0;
  give_slot(pm); /* or leaves the FIFO: an update made a queued renewal moot */
  res->status = PORTMAP_OK;
  pm->renewing = 0;
  res->lifetime = lifetime;
  res->external_port = r->external_port;
  memcpy(res->external_addr, r->external_addr, 16);
  res->expiry_ms = now + (uint64_t)lifetime * 1000u;
  portmap_core_arm(core, &pm->expiry, res->expiry_ms);
  if (pm->req->flags & PORTMAP_FLAG_ONCE) {
    pm->phase = PH_RENEW;
    portmap_core_disarm(core, &pm->timer);
  } else {
    schedule_renewal(pm, now); /* H4: from the GRANTED lifetime */
  }
  emit(pm, first ? PORTMAP_EVENT_MAPPED : changed ? PORTMAP_EVENT_CHANGED : PORTMAP_EVENT_RENEWED);
}

static void on_error(pcp_map_t *pm, const pcp_msg_t *r, uint64_t now) {
  portmap_core_t *core = core_of(pm);
  const portmap_req_t *m = pm->req;
  pcp_server_t *s = pm->srv;
  int result = r->result;
  /* G3: the external fields of an error are copies of ours: ignore them */
  pm->outstanding = 0;
  give_slot(pm);
  if ((result == PCP_UNSUPP_OPTION || result == PCP_MALFORMED_OPTION) && pm->sent_description &&
      !(m->flags & PORTMAP_FLAG_DESCRIPTION_REQUIRED)) {
    /* Q26: never lose a mapping over an optional option */
    portmap_core_log(core, PORTMAP_LOG_INFO,
                     "pcp: server refused DESCRIPTION (%s); retrying without",
                     pcp_result_name(result));
    pm->omit_description = 1;
    s->no_description = 1;
    start_cycle(pm, PH_REQUEST, now);
    return;
  }
  if (result == PCP_NOT_AUTHORIZED || result == PCP_ADDRESS_MISMATCH) {
    /* G4, Q16: PCP is not usable here; log once per server */
    if (!s->refusal_logged)
      portmap_core_log(core, PORTMAP_LOG_WARN, "pcp: server answered %s: PCP not usable here",
                       pcp_result_name(result));
    s->refusal_logged = 1;
    pm_finish(pm, PORTMAP_EVENT_FAILED, PORTMAP_ERR_REFUSED);
    return;
  }
  if (result == PCP_UNSUPP_OPTION && m->has_third_party) {
    /* Q27: do not retry blindly */
    portmap_core_log(core, PORTMAP_LOG_WARN, "pcp: THIRD_PARTY not permitted by this gateway");
    pm_finish(pm, PORTMAP_EVENT_FAILED, PORTMAP_ERR_REFUSED);
    return;
  }
  if (result == PCP_CANNOT_PROVIDE_EXTERNAL && (m->flags & PORTMAP_FLAG_PREFER_FAILURE)) {
    pm_finish(pm, PORTMAP_EVENT_FAILED, PORTMAP_ERR_REFUSED); /* H8 */
    return;
  }
  if (pcp_result_is_short(result) || result == PCP_CANNOT_PROVIDE_EXTERNAL) {
    /* G1: honour the error lifetime before repeating the request */
    if (result == PCP_NO_RESOURCES || result == PCP_USER_EX_QUOTA) {
      /* G2: no new mappings to this server meanwhile */
      uint64_t until = now + error_ms(r->lifetime, PCP_SHORT_ERROR_MS);
      if (until > s->no_new_until)
        s->no_new_until = until;
    }
    if (m->flags & PORTMAP_FLAG_ONCE) {
      pm_finish(pm, PORTMAP_EVENT_FAILED, PORTMAP_ERR_REFUSED);
      return;
    }
    if (!pm->ever_mapped || pm->res.expiry_ms <= now) {
      pm->res.status = PORTMAP_ERR_REFUSED;
      if (pm->ever_mapped && pm->res.expiry_ms != 0) {
        /* the lease ended before its timer ran: the loss is told here, once */
        pm->res.lifetime = 0;
        pm->res.expiry_ms = 0;
        portmap_core_disarm(core, &pm->expiry);
      }
      emit(pm, PORTMAP_EVENT_LOST); /* told once: core.c drops a LOST after a LOST */
    }
    backoff(pm, r->lifetime, PCP_SHORT_ERROR_MS, now);
    return;
  }
  /* Long errors (1-6, 9, 12, 13) and unknown codes (A12): give up. */
  pm_finish(pm, PORTMAP_EVENT_FAILED, PORTMAP_ERR_REFUSED);
}

void portmap_pcp_map_response(pcp_map_t *pm, const pcp_msg_t *r, uint64_t now) {
  portmap_core_t *core = core_of(pm);
  pm->res.gateway_result = r->result;
  if (pm->phase == PH_DELETE) {
    /* H6: SUCCESS with lifetime 0 confirms; a late answer to the create
     * (lifetime > 0) is not a confirmation (B4) */
    if (r->result == PCP_SUCCESS && r->lifetime == 0)
      pm_finish(pm, PORTMAP_EVENT_DELETED, PORTMAP_OK);
    else if (r->result != PCP_SUCCESS)
      pm_finish(pm, PORTMAP_EVENT_FAILED, PORTMAP_ERR_REFUSED);
    return;
  }
  if (!pm->outstanding) {
    /* H7: an unsolicited mapping update (section 14.2) */
    if (r->result != PCP_SUCCESS || !pm->ever_mapped) {
      portmap_core_stats(core)->unmatched++;
      return;
    }
    int same = pm->res.external_port == r->external_port &&
               memcmp(pm->res.external_addr, r->external_addr, 16) == 0;
    if (same && r->lifetime != 0) {
      portmap_core_stats(core)->unmatched++; /* a duplicate (B4), not news */
      return;
    }
    if (r->lifetime == 0) {
      lost_on_server(pm);
      start_cycle(pm, PH_REQUEST, now);
      return;
    }
    on_success(pm, r, now);
    return;
  }
  if (r->result == PCP_SUCCESS) {
    on_success(pm, r, now); /* moves pm->timer (or disarms it): one heap fix, not two */
  } else {
    portmap_core_disarm(core, &pm->timer);
    on_error(pm, r, now);
  }
}

/* RFC 6887 §9, checklist F2. The 8-octet NAT-PMP UNSUPP_VERSION carries no
 * nonce, opcode-specific fields or epoch of ours: it is matched on the
 * server's address and port alone. It therefore concerns only what has not
 * yet seen this server speak PCP for it: the probe, and the outstanding
 * requests of mappings this server never granted (first requests, and an
 * explicit delete by persisted nonce). A mapping the server granted over PCP
 * is spared: its renewal or delete keeps its own retransmission schedule and
 * ends the usual way (renewed, or expiry and LOST), so one stray or spoofed
 * datagram cannot fail established mappings. */
static void natpmp_one(void *elem, void *ctx) {
  pcp_map_t *pm = elem;
  server_walk_t *w = ctx;
  /* requests waiting for a slot would get the same answer: they end too */
  int waits = pm->outstanding || portmap_pace_queued(&pm->slot);
  if (pm->srv != w->s || !waits || pm->granted_here)
    return;
  w->any = 1;
  pm->res.gateway_result = PCP_UNSUPP_VERSION;
  pm_finish(pm, PORTMAP_EVENT_FAILED, PORTMAP_ERR_NATPMP_GATEWAY);
}

int portmap_pcp_fail_natpmp(pcp_server_t *s, uint64_t now) {
  server_walk_t w = {s, NULL, now, 0};
  portmap_hash_walk(&s->st->maps, natpmp_one, &w);
  return w.any;
}

static void unreachable_one(void *elem, void *ctx) {
  pcp_map_t *pm = elem;
  server_walk_t *w = ctx;
  if (pm->srv != w->s || !(pm->outstanding || portmap_pace_queued(&pm->slot)))
    return;
  /* Q21: a closed port is an immediate "no PCP here" (for the requests
   * waiting for a slot too). Nothing is mapped there, so a pending delete
   * is done. */
  if (pm->phase == PH_DELETE && !(pm->req->flags & PORTMAP_FLAG_DELETE))
    pm_finish(pm, PORTMAP_EVENT_DELETED, PORTMAP_OK);
  else if (!pm->ever_mapped)
    pm_finish(pm, PORTMAP_EVENT_FAILED, PORTMAP_ERR_UNREACHABLE); /* incl. an explicit delete */
}

void portmap_pcp_fail_unreachable(pcp_server_t *s, uint64_t now) {
  server_walk_t w = {s, NULL, now, 0};
  portmap_hash_walk(&s->st->maps, unreachable_one, &w);
}

/* ---------- vtable ---------- */

static portmap_status_t pcp_check(void *state, const portmap_req_t *req) {
  (void)state;
  (void)req;
  return PORTMAP_OK; /* PCP expresses every request the API takes */
}

static portmap_status_t pcp_start(void *state, const portmap_be_start_t *start, void **mstate,
                                  uint64_t now) {
  pcp_state_t *st = state;
  const portmap_req_t *m = start->req;
  portmap_status_t rc = portmap_pcp_server_open(st, m->ipv6);
  if (rc != PORTMAP_OK)
    return rc;
  pcp_server_t *s = &st->srv[m->ipv6];
  /* J1: THIRD_PARTY must differ from the packet's source address */
  if (m->has_third_party && memcmp(portmap_req_third_party(m), s->local, 16) == 0)
    return PORTMAP_ERR_THIRD_PARTY;
  pcp_map_t *pm = portmap_alloc_calloc(portmap_core_alloc(st->core), 1, sizeof *pm);
  if (pm == NULL)
    return PORTMAP_ERR_NOMEM;
  pm->h = start->handle;
  pm->req = m;
  pm->res.status = start->result.status;
  pm->res.gateway_result = start->result.gateway_result;
  memcpy(pm->res.external_addr, start->result.external_addr, 16);
  pm->res.external_port = start->result.external_port;
  pm->res.lifetime = start->result.lifetime;
  pm->res.expiry_ms = start->result.expiry_ms;
  pm->ever_mapped = start->ever_mapped != 0;
  pm->srv = s;
  portmap_pace_link_init(&pm->slot);
  portmap_timer_init(&pm->timer, on_timer, pm);
  portmap_timer_init(&pm->expiry, on_expiry, pm);
  if (portmap_hash_insert(&st->maps, pm) != 0) {
    portmap_alloc_free(portmap_core_alloc(st->core), pm);
    return PORTMAP_ERR_NOMEM;
  }
  *mstate = pm;
  pm->first_request = now;
  update(pm); /* the internal address it points at */
  if (m->flags & PORTMAP_FLAG_DELETE) {
    start_cycle(pm, PH_DELETE, now);
  } else if (now < s->no_new_until) {
    pm->phase = PH_DEFER; /* G2 */
    arm(pm, clip_to_request_timeout(pm, s->no_new_until));
  } else {
    start_cycle(pm, PH_REQUEST, now);
  }
  portmap_pcp_pump(st, now);
  return PORTMAP_OK;
}

static void revoke(pcp_map_t *pm, uint64_t now) {
  if (pm->phase == PH_DELETE)
    return;
  if (pm->req->is_peer) {
    /* I1: PEER cannot delete; it lapses at its lifetime */
    pm_finish(pm, PORTMAP_EVENT_DELETED, PORTMAP_OK);
    return;
  }
  int sent = pm->have_assigned || pm->sends > 0 || pm->outstanding;
  if (!sent) {
    pm_finish(pm, PORTMAP_EVENT_DELETED, PORTMAP_OK);
    return;
  }
  if (!pm->srv->answered) {
    /* This server never answered anything: one best-effort delete, no
     * wait for a confirmation that would not come (outside the window: at
     * most a window's worth of requests were ever sent there). */
    pm->phase = PH_DELETE;
    (void)send_request(pm);
    pm_finish(pm, PORTMAP_EVENT_DELETED, PORTMAP_OK);
    return;
  }
  portmap_core_disarm(core_of(pm), &pm->expiry);
  start_cycle(pm, PH_DELETE, now); /* H6, paced like any request */
}

static void pcp_revoke(void *state, void *mstate, uint64_t now) {
  if (mstate != NULL)
    revoke(mstate, now);
  portmap_pcp_pump(state, now);
}

static void pcp_detach(void *state, void *mstate, int revoked) {
  pcp_state_t *st = state;
  pcp_map_t *pm = mstate;
  (void)revoked;
  if (pm == NULL)
    return;
  int held = portmap_pace_held(&pm->slot);
  const portmap_pace_t *pace = &pm->srv->pace;
  pm_free(pm);
  /* a slot came back: the requests waiting for one go from the scheduler
   * (detach sends nothing itself) */
  if (held && portmap_pace_waiting(pace) > 0)
    (void)portmap_core_arm(st->core, &st->pump, portmap_core_now(st->core));
}

const portmap_backend_ops_t portmap_pcp_backend = {
    .id = PORTMAP_BACKEND_PCP,
    .name = "pcp",
    .create = portmap_pcp_create,
    .destroy = portmap_pcp_destroy,
    .check = pcp_check,
    .start = pcp_start,
    .revoke = pcp_revoke,
    .detach = pcp_detach,
    .fds = portmap_pcp_fds,
    .readable = portmap_pcp_readable,
    .probe = portmap_pcp_probe,
    .unsolicited = portmap_pcp_unsolicited,
    .list = NULL,
    .family_changed = portmap_pcp_family_changed,
};
