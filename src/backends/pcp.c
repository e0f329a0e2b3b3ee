/* SPDX-License-Identifier: MIT */
/*
 * The PCP session engine (RFC 6887): one server per address family,
 * retransmission, nonces and response matching, epoch validation and
 * recovery, result-code classes and error lifetimes, the renewal schedule,
 * delete with retransmission, NAT-PMP detection, and the listener for
 * unsolicited ANNOUNCE and mapping updates. The wire format lives in
 * src/pcp/wire.c and the timing rules in src/pcp/timing.c; this file only
 * decides. It sees the core only through backends/backend.h.
 *
 * Per mapping, one phase at a time:
 *   REQUEST  creating or re-creating, retransmitted per section 8.1.1
 *   RENEW    mapped; the timer is the next renewal attempt (H5)
 *   BACKOFF  an error lifetime is running (G1)
 *   DEFER    no new mappings to this server yet (G2)
 *   DELETE   lifetime-0 request, retransmitted (H6)
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backends/backend.h"
#include "platform/platform.h"
#include "util/netutil.h"
#include "pcp/timing.h"
#include "pcp/wire.h"

#define PCP_DELETE_MRC 4             /* delete sends when MRC is unlimited */
#define PCP_SHORT_ERROR_MS 30000u    /* G1 recommended short error lifetime */
#define PCP_MAX_ERROR_S 1800u        /* an absurd error lifetime is taken as 30 min (cf. H4) */
#define PCP_RECOVERY_SPREAD_MS 5000u /* K2: random 0-5 s */
#define PCP_MAX_READS 64             /* datagrams per fd per process call */

enum pcp_phase { PH_REQUEST, PH_RENEW, PH_BACKOFF, PH_DEFER, PH_DELETE };

typedef struct pcp_state pcp_state_t;

typedef struct pcp_server {
  pcp_state_t *st;
  int open;
  int ipv6;
  uint8_t addr[16];
  unsigned scope;
  uint16_t port;
  uint8_t local[16]; /* our source address: the client IP field (A4) */
  int fd;
  pcp_epoch_t epoch;
  int answered;             /* any well-formed response seen */
  int natpmp;               /* answered with the NAT-PMP UNSUPP_VERSION (F2) */
  uint64_t no_new_until;    /* G2 */
  int no_description;       /* Q26: the server refuses our DESCRIPTION */
  int refusal_logged;       /* G4: log once */
  portmap_timer_t recovery; /* K2 */
  /* the probe: a solicited ANNOUNCE (K1) */
  int probe_outstanding;
  uint64_t probe_sent_ms;
  uint8_t probe_pkt[PCP_HEADER_LEN];
  size_t probe_len;
  portmap_timer_t probe_timer;
} pcp_server_t;

typedef struct pcp_map pcp_map_t;

struct pcp_state {
  portmap_core_t *core;
  pcp_server_t srv[2]; /* [0] IPv4, [1] IPv6 */
  pcp_map_t *maps;     /* every mapping this backend runs */
};

struct pcp_map {
  pcp_map_t *prev, *next; /* st->maps */
  portmap_mapping_t *h;   /* the core's handle */
  const portmap_req_t *req;
  portmap_result_t res; /* what we tell the core */
  unsigned ever_mapped : 1;
  unsigned outstanding : 1; /* a response to pkt is expected */
  unsigned sent_description : 1;
  unsigned omit_description : 1;
  unsigned have_assigned : 1; /* H2: suggest what we were given */
  unsigned granted_here : 1;  /* this server granted it over PCP (F2 spares it) */
  pcp_server_t *srv;
  enum pcp_phase phase;
  pcp_retx_t retx;
  uint8_t *pkt; /* kept for identical retransmissions (C4); pkt_cap octets */
  size_t pkt_cap;
  size_t pkt_len;
  unsigned renew_attempt;
  uint64_t granted_at;
  uint32_t granted_lifetime;
  uint8_t assigned_addr[16];
  uint16_t assigned_port;
  uint64_t first_request; /* request_timeout_ms counts from here */
  portmap_timer_t timer;
  portmap_timer_t expiry;
};

static portmap_core_t *core_of(pcp_map_t *pm) {
  return pm->srv->st->core;
}

/* ---------- sockets ---------- */

/* Towards a link-local router (the usual fe80::1) the kernel's source is
 * the host's fe80:: address: a MAP from it opens a pinhole for an address
 * nobody outside can reach. Bind instead to a global address (else a ULA)
 * of the router's interface, the address the request then maps, as Bitcoin
 * Core does (A4 holds: the client IP field is the packet's source). */
static void pick_mappable(pcp_server_t *s) {
  uint8_t cands[16][16];
  size_t n = portmap_plat_ipv6_addresses(s->scope, cands, 16);
  if (portmap_net_pick_mappable6((const uint8_t(*)[16])cands, n, s->local) != 0)
    portmap_core_log(s->st->core, PORTMAP_LOG_WARN,
                     "pcp: only a link-local IPv6 address towards the gateway: the mapping "
                     "will not be reachable from outside");
}

static portmap_status_t server_open(pcp_state_t *st, int ipv6) {
  pcp_server_t *s = &st->srv[ipv6];
  if (s->open)
    return PORTMAP_OK;
  if (!portmap_core_gateway(st->core, ipv6, s->addr, &s->scope))
    return PORTMAP_ERR_NO_GATEWAY;
  s->port = portmap_core_config(st->core)->server_port;
  s->ipv6 = ipv6;
  /* A4: learn the source address the kernel uses towards the server */
  uint8_t configured[16];
  if (portmap_core_local_address(st->core, configured) && portmap_net_is_v4(configured) == !ipv6)
    memcpy(s->local, configured, 16);
  else if (!portmap_core_source_address(st->core, ipv6, s->local))
    return PORTMAP_ERR_SYSTEM;
  else if (ipv6 && portmap_net_is_link_local6(s->local))
    pick_mappable(s);
  s->fd = portmap_plat_udp_icmp_socket(ipv6);
  if (s->fd < 0)
    return PORTMAP_ERR_SYSTEM;
  /* A5: a random source port, never 5350/5351 */
  struct sockaddr_storage ss;
  socklen_t sl = portmap_net_to_sockaddr(s->local, 0, s->scope, &ss);
  if (bind(s->fd, (struct sockaddr *)&ss, sl) != 0) {
    close(s->fd);
    s->fd = -1;
    return PORTMAP_ERR_SYSTEM;
  }
  s->open = 1;
  return PORTMAP_OK;
}

static void server_send(pcp_server_t *s, const uint8_t *pkt, size_t len) {
  portmap_core_t *core = s->st->core;
  struct sockaddr_storage ss;
  socklen_t sl = portmap_net_to_sockaddr(s->addr, s->port, s->scope, &ss);
  portmap_core_trace(core, 1, s->addr, s->port, pkt, len);
  if (sendto(s->fd, pkt, len, 0, (struct sockaddr *)&ss, sl) < 0)
    portmap_core_log(core, PORTMAP_LOG_DEBUG, "pcp: sendto failed: %s", strerror(errno));
  else
    portmap_core_stats(core)->sent++;
}

/* ---------- mapping helpers ---------- */

static void pm_free(pcp_map_t *pm) {
  portmap_core_t *core = core_of(pm);
  portmap_core_disarm(core, &pm->timer);
  portmap_core_disarm(core, &pm->expiry);
  pcp_state_t *st = pm->srv->st;
  if (pm->prev)
    pm->prev->next = pm->next;
  else
    st->maps = pm->next;
  if (pm->next)
    pm->next->prev = pm->prev;
  portmap_alloc_free(portmap_core_alloc(core), pm->pkt);
  portmap_alloc_free(portmap_core_alloc(core), pm);
}

/* Tell the core; a success means the mapping has been mapped. */
static void emit(pcp_map_t *pm, portmap_event_t ev) {
  if (ev == PORTMAP_EVENT_MAPPED || ev == PORTMAP_EVENT_RENEWED || ev == PORTMAP_EVENT_CHANGED) {
    pm->ever_mapped = 1;
    pm->granted_here = 1;
  }
  portmap_core_report(core_of(pm), pm->h, ev, &pm->res);
}

/* End the mapping: free our state first, then report the final event. */
static void pm_finish(pcp_map_t *pm, portmap_event_t ev, portmap_status_t status) {
  portmap_core_t *core = core_of(pm);
  portmap_mapping_t *h = pm->h;
  portmap_result_t res = pm->res;
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

/* Build the request for the mapping with the given lifetime into pm->pkt,
 * which is only as large as the requests made so far (most are 60 octets,
 * the largest possible PCP_MAX_REQUEST): INVALID or NOMEM on failure. */
static portmap_status_t build_request(pcp_map_t *pm, uint32_t lifetime) {
  const portmap_req_t *m = pm->req;
  pcp_server_t *s = pm->srv;
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
    msg.external_port = pm->assigned_port;
    memcpy(msg.external_addr, pm->assigned_addr, 16);
  } else {
    msg.external_port = m->suggested_port;
    /* Q19: all-zeros unless the application insists (A7) */
    if (m->has_suggested_addr)
      memcpy(msg.external_addr, m->suggested_addr, 16);
    else
      pcp_addr_any(msg.external_addr, m->ipv6);
  }
  if (m->is_peer) {
    msg.peer_port = m->peer_port;
    memcpy(msg.peer_addr, m->peer_addr, 16);
  }
  /* J1: THIRD_PARTY on every request of the mapping, delete included */
  if (m->has_third_party) {
    msg.has_third_party = 1;
    memcpy(msg.third_party, m->third_party, 16);
  }
  if (lifetime > 0) {
    /* H8: PREFER_FAILURE is MAP-only (I1 rejected it on PEER already) */
    msg.prefer_failure = !m->is_peer && (m->flags & PORTMAP_FLAG_PREFER_FAILURE);
    /* J2: filters are re-sent with every renewal */
    msg.n_filters = m->n_filters;
    for (size_t i = 0; i < m->n_filters; i++) {
      msg.filters[i].prefix_len = m->filters[i].prefix_len;
      msg.filters[i].port = m->filters[i].port;
      memcpy(msg.filters[i].addr, m->filters[i].addr, 16);
    }
    /* J3, Q26: DESCRIPTION unless this server refused it */
    int required = (m->flags & PORTMAP_FLAG_DESCRIPTION_REQUIRED) != 0;
    if (m->description_len > 0 && (required || (!pm->omit_description && !s->no_description))) {
      memcpy(msg.description, m->description, m->description_len);
      msg.description_len = m->description_len;
    }
  }
  pm->sent_description = msg.description_len > 0;
  uint8_t buf[PCP_MAX_REQUEST];
  size_t len = 0;
  if (pcp_encode_request(&msg, buf, sizeof buf, &len) != PCP_WIRE_OK)
    return PORTMAP_ERR_INVALID;
  if (len > pm->pkt_cap) {
    uint8_t *p = portmap_alloc_realloc(portmap_core_alloc(core_of(pm)), pm->pkt, len);
    if (p == NULL)
      return PORTMAP_ERR_NOMEM;
    pm->pkt = p;
    pm->pkt_cap = len;
  }
  memcpy(pm->pkt, buf, len);
  pm->pkt_len = len;
  return PORTMAP_OK;
}

static void retx_init_for(pcp_map_t *pm, int deleting) {
  const portmap_config_t *cfg = portmap_core_config(core_of(pm));
  uint32_t mrc = cfg->pcp_mrc;
  if (deleting && (mrc == 0 || mrc > PCP_DELETE_MRC))
    mrc = PCP_DELETE_MRC; /* a delete is bounded even when creates are not */
  pcp_retx_init(&pm->retx, cfg->pcp_irt_ms, cfg->pcp_mrt_ms, mrc, cfg->pcp_mrd_ms);
}

/* One step of the retransmission state machine (C2-C4): send pm->pkt now
 * (identical bytes every time) and arm the next timeout, or give up. */
static void retx_step(pcp_map_t *pm, uint64_t now);

static void start_cycle(pcp_map_t *pm, enum pcp_phase phase, uint64_t now) {
  uint32_t lifetime = phase == PH_DELETE ? 0 : pm->req->lifetime;
  pm->phase = phase;
  portmap_status_t st = build_request(pm, lifetime);
  if (st != PORTMAP_OK) {
    pm_finish(pm, PORTMAP_EVENT_FAILED, st);
    return;
  }
  retx_init_for(pm, phase == PH_DELETE);
  retx_step(pm, now);
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
  int first = pm->retx.sends == 0;
  uint32_t wait = pcp_retx_next(&pm->retx, now, portmap_core_random32(core));
  if (wait == 0) {
    give_up(pm); /* C3 */
    return;
  }
  if (!first)
    portmap_core_stats(core)->retransmissions++;
  pm->outstanding = 1;
  server_send(pm->srv, pm->pkt, pm->pkt_len);
  uint64_t next = now + wait;
  arm(pm, pm->phase == PH_REQUEST ? clip_to_request_timeout(pm, next) : next);
}

static void schedule_renewal(pcp_map_t *pm, uint64_t now) {
  portmap_core_t *core = core_of(pm);
  uint32_t d = pcp_renew_delay(pm->granted_lifetime, pm->renew_attempt, now - pm->granted_at,
                               portmap_core_random32(core));
  pm->phase = PH_RENEW;
  if (d == 0)
    portmap_core_disarm(core, &pm->timer); /* only the expiry is left */
  else
    arm(pm, now + d);
}

static void on_timer(portmap_timer_t *t, uint64_t now) {
  pcp_map_t *pm = t->ctx;
  switch (pm->phase) {
  case PH_REQUEST:
  case PH_DELETE:
    retx_step(pm, now);
    break;
  case PH_RENEW: {
    /* H5: one renewal per attempt point; the next point is the retry */
    portmap_status_t st = build_request(pm, pm->req->lifetime);
    if (st != PORTMAP_OK) {
      pm_finish(pm, PORTMAP_EVENT_FAILED, st);
      return;
    }
    pm->outstanding = 1;
    server_send(pm->srv, pm->pkt, pm->pkt_len);
    pm->res.renewing = 1;
    portmap_core_update(core_of(pm), pm->h, &pm->res);
    pm->renew_attempt++;
    schedule_renewal(pm, now);
    break;
  }
  case PH_BACKOFF:
  case PH_DEFER:
    if (request_timed_out(pm, now)) {
      give_up(pm);
      return;
    }
    start_cycle(pm, PH_REQUEST, now);
    break;
  }
}

/* The granted lifetime ran out without a successful renewal. */
static void on_expiry(portmap_timer_t *t, uint64_t now) {
  pcp_map_t *pm = t->ctx;
  pm->res.lifetime = 0;
  pm->res.expiry_ms = 0;
  if (pm->req->flags & PORTMAP_FLAG_ONCE) {
    pm_finish(pm, PORTMAP_EVENT_DELETED, PORTMAP_OK);
    return;
  }
  pm->res.status = PORTMAP_ERR_TIMEOUT;
  emit(pm, PORTMAP_EVENT_LOST);
  if (pm->phase == PH_RENEW)
    start_cycle(pm, PH_REQUEST, now); /* re-create, suggesting the old (H2) */
}

/* E5: the server lost its state; re-create every mapping there. */
static void recover_server(pcp_server_t *s, pcp_map_t *except, uint64_t now) {
  pcp_map_t *next;
  for (pcp_map_t *pm = s->st->maps; pm != NULL; pm = next) {
    next = pm->next; /* start_cycle() may end it */
    if (pm == except || pm->srv != s)
      continue;
    if (pm->phase == PH_RENEW || pm->phase == PH_BACKOFF) {
      pm->renew_attempt = 0;
      start_cycle(pm, PH_REQUEST, now);
    }
  }
  /* what the gateway speaks may have changed too */
  portmap_core_epoch_changed(s->st->core, now);
}

static void on_recovery(portmap_timer_t *t, uint64_t now) {
  recover_server(t->ctx, NULL, now);
}

/* ---------- responses ---------- */

static int map_matches(const pcp_map_t *pm, const pcp_msg_t *r) {
  const portmap_req_t *m = pm->req;
  /* D3: protocol, internal port, nonce; PEER also the remote peer */
  if (r->opcode != (m->is_peer ? PCP_OP_PEER : PCP_OP_MAP))
    return 0;
  if (memcmp(r->nonce, m->nonce, PCP_NONCE_LEN) != 0 || r->protocol != m->protocol ||
      r->internal_port != m->internal_port)
    return 0;
  if (m->is_peer && (r->peer_port != m->peer_port || memcmp(r->peer_addr, m->peer_addr, 16) != 0))
    return 0;
  if (r->has_third_party &&
      (!m->has_third_party || memcmp(r->third_party, m->third_party, 16) != 0))
    return 0;
  return 1;
}

static void backoff(pcp_map_t *pm, uint32_t lifetime_s, uint32_t default_ms, uint64_t now) {
  pm->phase = PH_BACKOFF;
  pm->outstanding = 0;
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
  portmap_result_t *res = &pm->res;
  uint32_t lifetime = r->lifetime > PCP_MAX_LIFETIME ? PCP_MAX_LIFETIME : r->lifetime; /* H4 */
  if (lifetime == 0) {
    /* a create or renewal answered with lifetime 0: the server would not keep it */
    lost_on_server(pm);
    backoff(pm, 0, PCP_SHORT_ERROR_MS, now);
    return;
  }
  int changed = pm->have_assigned && (pm->assigned_port != r->external_port ||
                                      memcmp(pm->assigned_addr, r->external_addr, 16) != 0);
  int first = !pm->ever_mapped;
  pm->have_assigned = 1; /* H3: report what was assigned */
  pm->assigned_port = r->external_port;
  memcpy(pm->assigned_addr, r->external_addr, 16);
  pm->granted_at = now;
  pm->granted_lifetime = lifetime;
  pm->renew_attempt = 0;
  pm->outstanding = 0;
  res->status = PORTMAP_OK;
  res->renewing = 0;
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
      emit(pm, PORTMAP_EVENT_LOST);
    }
    backoff(pm, r->lifetime, PCP_SHORT_ERROR_MS, now);
    return;
  }
  /* Long errors (1-6, 9, 12, 13) and unknown codes (A12): give up. */
  pm_finish(pm, PORTMAP_EVENT_FAILED, PORTMAP_ERR_REFUSED);
}

static void on_map_response(pcp_map_t *pm, const pcp_msg_t *r, uint64_t now) {
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
    int same = pm->assigned_port == r->external_port &&
               memcmp(pm->assigned_addr, r->external_addr, 16) == 0;
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
  portmap_core_disarm(core, &pm->timer);
  if (r->result == PCP_SUCCESS)
    on_success(pm, r, now);
  else
    on_error(pm, r, now);
}

static void probe_report(pcp_server_t *s, int available, portmap_status_t error, int result,
                         uint64_t now) {
  portmap_core_t *core = s->st->core;
  portmap_probe_backend_t r;
  memset(&r, 0, sizeof r);
  r.available = available;
  r.error = error;
  r.gateway_result = result;
  r.rtt_ms = (uint32_t)(now - s->probe_sent_ms);
  r.epoch = s->epoch.prev_server;
  s->probe_outstanding = 0;
  portmap_core_disarm(core, &s->probe_timer);
  portmap_core_probe_result(core, PORTMAP_BACKEND_PCP, &r);
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
static void on_natpmp(pcp_server_t *s, uint64_t now) {
  portmap_core_t *core = s->st->core;
  int any = 0;
  if (s->probe_outstanding) {
    any = 1;
    probe_report(s, 0, PORTMAP_ERR_NATPMP_GATEWAY, PCP_UNSUPP_VERSION, now);
  }
  pcp_map_t *next;
  for (pcp_map_t *pm = s->st->maps; pm != NULL; pm = next) {
    next = pm->next;
    if (pm->srv != s || !pm->outstanding || pm->granted_here)
      continue;
    any = 1;
    pm->res.gateway_result = PCP_UNSUPP_VERSION;
    pm_finish(pm, PORTMAP_EVENT_FAILED, PORTMAP_ERR_NATPMP_GATEWAY);
  }
  if (!any) {
    portmap_core_stats(core)->unmatched++;
    return;
  }
  s->natpmp = 1; /* F2: a NAT-PMP gateway */
  portmap_core_log(core, PORTMAP_LOG_INFO, "pcp: the gateway speaks NAT-PMP only (UNSUPP_VERSION)");
}

static void on_unreachable(pcp_server_t *s, uint64_t now) {
  pcp_map_t *next;
  if (s->probe_outstanding)
    probe_report(s, 0, PORTMAP_ERR_UNREACHABLE, -1, now);
  for (pcp_map_t *pm = s->st->maps; pm != NULL; pm = next) {
    next = pm->next;
    if (pm->srv != s || !pm->outstanding)
      continue;
    /* Q21: a closed port is an immediate "no PCP here". Nothing is mapped
     * there, so a pending delete is done. */
    if (pm->phase == PH_DELETE && !(pm->req->flags & PORTMAP_FLAG_DELETE))
      pm_finish(pm, PORTMAP_EVENT_DELETED, PORTMAP_OK);
    else if (!pm->ever_mapped)
      pm_finish(pm, PORTMAP_EVENT_FAILED, PORTMAP_ERR_UNREACHABLE); /* incl. an explicit delete */
  }
}

/* Every datagram from the network passes here; unsolicited says it came to
 * the 5350 listener. */
static void on_datagram(pcp_state_t *st, const uint8_t *from, uint16_t from_port,
                        const uint8_t *data, size_t len, uint64_t now) {
  portmap_core_t *core = st->core;
  portmap_stats_t *stats = portmap_core_stats(core);
  stats->received++;
  portmap_core_trace(core, 0, from, from_port, data, len);
  /* B3, B5: only the server's address and port */
  pcp_server_t *s = NULL;
  for (int i = 0; i < 2; i++)
    if (st->srv[i].open && memcmp(st->srv[i].addr, from, 16) == 0 && st->srv[i].port == from_port)
      s = &st->srv[i];
  if (s == NULL) {
    stats->spoofed++;
    return;
  }
  pcp_msg_t r;
  int w = pcp_decode_response(data, len, &r);
  if (w == PCP_WIRE_NATPMP) {
    on_natpmp(s, now);
    return;
  }
  if (w != PCP_WIRE_OK) {
    stats->malformed++;
    return;
  }
  /* E4: record the epoch of every response, valid or not */
  int valid = pcp_epoch_check(&s->epoch, r.epoch, now);
  s->answered = 1;
  pcp_map_t *match = NULL;
  if (r.opcode == PCP_OP_MAP || r.opcode == PCP_OP_PEER) {
    for (pcp_map_t *pm = st->maps; pm != NULL; pm = pm->next) {
      if (pm->srv == s && map_matches(pm, &r)) {
        match = pm;
        break;
      }
    }
    if (match == NULL)
      stats->unmatched++;
  }
  if (!valid) {
    stats->epoch_invalid++;
    portmap_core_log(core, PORTMAP_LOG_INFO, "pcp: server epoch invalid: it lost its mappings");
    if (r.opcode == PCP_OP_ANNOUNCE) {
      /* K2: after a random 0-5 s, once however many announcements come */
      if (!portmap_timer_pending(&s->recovery))
        portmap_core_arm(core, &s->recovery,
                         now + portmap_core_random32(core) % (PCP_RECOVERY_SPREAD_MS + 1));
    } else {
      recover_server(s, match, now); /* E5 */
    }
  }
  if (r.opcode == PCP_OP_ANNOUNCE && s->probe_outstanding) {
    /* K1: the answer to our ANNOUNCE: PCP works here, or says why not */
    if (r.result == PCP_SUCCESS)
      probe_report(s, 1, PORTMAP_OK, 0, now);
    else
      probe_report(s, 0, PORTMAP_ERR_REFUSED, r.result, now);
  } else if (match != NULL && s->probe_outstanding) {
    /* A MAP or PEER answer is the probe's answer too (its epoch is
     * recorded above): PCP works here, whatever it said of that mapping
     * (which follows its own rules: G4), unless it speaks another version
     * (F1, F3: we have no other to offer) or says "not now" (G1, G2: a
     * short-lifetime error), as an ANNOUNCE would have. */
    if (r.result == PCP_UNSUPP_VERSION || pcp_result_is_short(r.result))
      probe_report(s, 0, PORTMAP_ERR_REFUSED, r.result, now);
    else
      probe_report(s, 1, PORTMAP_OK, r.result, now);
  }
  if (match != NULL)
    on_map_response(match, &r, now);
}

static void drain_errqueue(pcp_state_t *st, pcp_server_t *s, uint64_t now) {
  for (int i = 0; i < PCP_MAX_READS; i++) {
    int r = portmap_plat_icmp_read(s->fd);
    if (r < 0)
      return;
    if (r == 1) {
      portmap_core_log(st->core, PORTMAP_LOG_INFO, "pcp: port %u closed on the gateway", s->port);
      on_unreachable(s, now);
    }
  }
}

static void read_fd(pcp_state_t *st, int fd, pcp_server_t *srv, uint64_t now) {
  for (int i = 0; i < PCP_MAX_READS; i++) {
    uint8_t buf[PCP_MAX_PACKET + 4]; /* one more word: longer is malformed (A9) */
    uint8_t from[16];
    uint16_t port;
    size_t len;
    int from_ok;
    int r = portmap_plat_recv(fd, PORTMAP_PLAT_RECV_TRUNC, buf, sizeof buf, &len, from, &port,
                              &from_ok);
    if (r == PORTMAP_PLAT_RECV_REFUSED && srv != NULL) {
      drain_errqueue(st, srv, now);
      continue;
    }
    if (r != PORTMAP_PLAT_RECV_OK)
      break;
    if (!from_ok) {
      portmap_core_stats(st->core)->malformed++;
      continue;
    }
    on_datagram(st, from, port, buf, len > sizeof buf ? sizeof buf : len, now);
  }
  if (srv != NULL)
    drain_errqueue(st, srv, now);
}

/* ---------- vtable ---------- */

/* The probe's ANNOUNCE is sent twice within the budget (C1 allows a LAN
 * probe a shorter schedule), the first time only when no mapping's first
 * request asks already; at the budget's end PCP says "no answer" itself,
 * so the core waits longer only for a backend that is mid-answer. */
static void on_probe_timer(portmap_timer_t *t, uint64_t now) {
  pcp_server_t *s = t->ctx;
  portmap_core_t *core = s->st->core;
  if (!s->probe_outstanding)
    return;
  uint64_t end = s->probe_sent_ms + portmap_core_config(core)->probe_timeout_ms;
  if (now >= end) {
    probe_report(s, 0, PORTMAP_ERR_TIMEOUT, -1, now); /* Q22: dropped silently */
    return;
  }
  server_send(s, s->probe_pkt, s->probe_len); /* C4: identical */
  portmap_core_arm(core, &s->probe_timer, end);
}

/* A first request of a mapping (not yet granted here) out to s: the probe
 * needs no ANNOUNCE of its own, that request asks (RFC 6887 permits a MAP
 * as the first message). */
static int first_request_out(const pcp_state_t *st, const pcp_server_t *s) {
  for (const pcp_map_t *pm = st->maps; pm != NULL; pm = pm->next)
    if (pm->srv == s && pm->outstanding && !pm->granted_here)
      return 1;
  return 0;
}

static void pcp_probe(void *state, uint64_t now) {
  pcp_state_t *st = state;
  uint8_t gw[16];
  int ipv6 =
      !portmap_core_gateway(st->core, 0, gw, NULL) && portmap_core_gateway(st->core, 1, gw, NULL);
  pcp_server_t *s = &st->srv[ipv6];
  portmap_status_t rc = server_open(st, ipv6);
  if (rc != PORTMAP_OK) {
    s->probe_sent_ms = now;
    s->probe_outstanding = 1;
    probe_report(s, 0, rc, -1, now);
    return;
  }
  pcp_msg_t msg;
  pcp_msg_init(&msg);
  msg.opcode = PCP_OP_ANNOUNCE; /* K1: no payload, lifetime 0 */
  memcpy(msg.client_addr, s->local, 16);
  size_t len = 0;
  if (pcp_encode_request(&msg, s->probe_pkt, sizeof s->probe_pkt, &len) != PCP_WIRE_OK)
    return;
  s->probe_len = len;
  s->probe_outstanding = 1;
  s->probe_sent_ms = now;
  /* a mapping's first request asks already: the ANNOUNCE goes only as the
   * retransmission (the mapping may be withdrawn meanwhile) */
  if (!first_request_out(st, s))
    server_send(s, s->probe_pkt, s->probe_len);
  portmap_core_arm(st->core, &s->probe_timer,
                   now + portmap_core_config(st->core)->probe_timeout_ms / 2 + 1);
}

static void pcp_unsolicited(void *state, const uint8_t from[16], uint16_t from_port,
                            const uint8_t *data, size_t len, uint64_t now) {
  on_datagram(state, from, from_port, data, len, now); /* B5 checks the source */
}

static portmap_status_t pcp_create(portmap_core_t *core, void **state) {
  pcp_state_t *st = portmap_alloc_calloc(portmap_core_alloc(core), 1, sizeof *st);
  if (st == NULL)
    return PORTMAP_ERR_NOMEM;
  st->core = core;
  for (int i = 0; i < 2; i++) {
    st->srv[i].st = st;
    st->srv[i].fd = -1;
    portmap_timer_init(&st->srv[i].recovery, on_recovery, &st->srv[i]);
    portmap_timer_init(&st->srv[i].probe_timer, on_probe_timer, &st->srv[i]);
  }
  *state = st;
  return PORTMAP_OK;
}

static void pcp_destroy(void *state) {
  pcp_state_t *st = state;
  if (st == NULL)
    return;
  for (int i = 0; i < 2; i++) {
    portmap_core_disarm(st->core, &st->srv[i].recovery);
    portmap_core_disarm(st->core, &st->srv[i].probe_timer);
    portmap_core_close_fd(st->core, st->srv[i].fd);
  }
  portmap_alloc_free(portmap_core_alloc(st->core), st);
}

/* B6 per family: the core detached this family's mappings; a probe in
 * flight there is dropped (the core forgets its probe when it asked this
 * server). The other family's server and mappings are untouched. */
static void pcp_family_changed(void *state, int ipv6, uint64_t now) {
  pcp_state_t *st = state;
  pcp_server_t *s = &st->srv[ipv6 ? 1 : 0];
  (void)now;
  portmap_core_disarm(st->core, &s->recovery);
  portmap_core_disarm(st->core, &s->probe_timer);
  portmap_core_close_fd(st->core, s->fd);
  memset(s, 0, sizeof *s);
  s->st = st;
  s->fd = -1;
  portmap_timer_init(&s->recovery, on_recovery, s);
  portmap_timer_init(&s->probe_timer, on_probe_timer, s);
}

static portmap_status_t pcp_check(void *state, const portmap_req_t *req) {
  (void)state;
  (void)req;
  return PORTMAP_OK; /* PCP expresses every request the API takes */
}

static portmap_status_t pcp_start(void *state, const portmap_be_start_t *start, void **mstate,
                                  uint64_t now) {
  pcp_state_t *st = state;
  const portmap_req_t *m = start->req;
  portmap_status_t rc = server_open(st, m->ipv6);
  if (rc != PORTMAP_OK)
    return rc;
  pcp_server_t *s = &st->srv[m->ipv6];
  /* J1: THIRD_PARTY must differ from the packet's source address */
  if (m->has_third_party && memcmp(m->third_party, s->local, 16) == 0)
    return PORTMAP_ERR_THIRD_PARTY;
  pcp_map_t *pm = portmap_alloc_calloc(portmap_core_alloc(st->core), 1, sizeof *pm);
  if (pm == NULL)
    return PORTMAP_ERR_NOMEM;
  pm->h = start->handle;
  pm->req = m;
  pm->res = start->result;
  pm->ever_mapped = start->ever_mapped != 0;
  pm->srv = s;
  portmap_timer_init(&pm->timer, on_timer, pm);
  portmap_timer_init(&pm->expiry, on_expiry, pm);
  pm->next = st->maps;
  if (st->maps)
    st->maps->prev = pm;
  st->maps = pm;
  *mstate = pm;
  pm->first_request = now;
  memcpy(pm->res.internal_addr, m->has_third_party ? m->third_party : s->local, 16);
  portmap_core_update(st->core, pm->h, &pm->res);
  if (m->flags & PORTMAP_FLAG_DELETE) {
    start_cycle(pm, PH_DELETE, now);
  } else if (now < s->no_new_until) {
    pm->phase = PH_DEFER; /* G2 */
    arm(pm, clip_to_request_timeout(pm, s->no_new_until));
  } else {
    start_cycle(pm, PH_REQUEST, now);
  }
  return PORTMAP_OK;
}

static void pcp_revoke(void *state, void *mstate, uint64_t now) {
  (void)state;
  pcp_map_t *pm = mstate;
  if (pm == NULL)
    return;
  if (pm->phase == PH_DELETE)
    return;
  if (pm->req->is_peer) {
    /* I1: PEER cannot delete; it lapses at its lifetime */
    pm_finish(pm, PORTMAP_EVENT_DELETED, PORTMAP_OK);
    return;
  }
  int sent = pm->have_assigned || pm->retx.sends > 0 || pm->outstanding;
  if (!sent) {
    pm_finish(pm, PORTMAP_EVENT_DELETED, PORTMAP_OK);
    return;
  }
  if (!pm->srv->answered) {
    /* This server never answered anything: one best-effort delete, no
     * wait for a confirmation that would not come. */
    if (build_request(pm, 0) == PORTMAP_OK)
      server_send(pm->srv, pm->pkt, pm->pkt_len);
    pm_finish(pm, PORTMAP_EVENT_DELETED, PORTMAP_OK);
    return;
  }
  portmap_core_disarm(core_of(pm), &pm->expiry);
  start_cycle(pm, PH_DELETE, now); /* H6 */
}

static void pcp_detach(void *state, void *mstate, int revoked) {
  (void)state;
  (void)revoked;
  if (mstate != NULL)
    pm_free(mstate);
}

static size_t pcp_fds(void *state, int *fds, size_t cap) {
  pcp_state_t *st = state;
  int all[2] = {st->srv[0].fd, st->srv[1].fd};
  return portmap_backend_put_fds(all, 2, fds, cap);
}

static void pcp_readable(void *state, uint64_t now) {
  pcp_state_t *st = state;
  for (int i = 0; i < 2; i++) {
    if (st->srv[i].fd >= 0)
      read_fd(st, st->srv[i].fd, &st->srv[i], now);
  }
}

const portmap_backend_ops_t portmap_pcp_backend = {
    .id = PORTMAP_BACKEND_PCP,
    .name = "pcp",
    .create = pcp_create,
    .destroy = pcp_destroy,
    .check = pcp_check,
    .start = pcp_start,
    .revoke = pcp_revoke,
    .detach = pcp_detach,
    .fds = pcp_fds,
    .readable = pcp_readable,
    .probe = pcp_probe,
    .unsolicited = pcp_unsolicited,
    .list = NULL,
    .family_changed = pcp_family_changed,
};
