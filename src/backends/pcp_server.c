/* SPDX-License-Identifier: MIT */
/*
 * The PCP servers (RFC 6887), one per address family: the socket and our
 * source address (A4, A5), the probe (a solicited ANNOUNCE, K1), reading,
 * and where every datagram goes: source checks (B3, B5), decoding (A9-A12,
 * F2), the epoch (E1-E5, K2), and the table that finds a response's mapping
 * in O(1) by nonce, protocol and internal port (D3). What a response does
 * to a mapping is pcp.c's.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backends/pcp_int.h"
#include "platform/platform.h"
#include "util/netutil.h"

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

portmap_status_t portmap_pcp_server_open(pcp_state_t *st, int ipv6) {
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
  /* room for a window of answers and then some (unsolicited updates, an
   * application slow to call portmap_process()) */
  portmap_plat_rcvbuf(s->fd, PCP_RCVBUF);
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

void portmap_pcp_send(pcp_server_t *s, const uint8_t *pkt, size_t len) {
  portmap_core_t *core = s->st->core;
  struct sockaddr_storage ss;
  socklen_t sl = portmap_net_to_sockaddr(s->addr, s->port, s->scope, &ss);
  portmap_core_trace(core, 1, s->addr, s->port, pkt, len);
  if (sendto(s->fd, pkt, len, 0, (struct sockaddr *)&ss, sl) < 0) {
    /* it may have reported (and cleared) the error of an ICMP report,
     * which then waits in the error queue: read_fd() reads it */
    s->errqueue = 1;
    portmap_core_log(core, PORTMAP_LOG_DEBUG, "pcp: sendto failed: %s", strerror(errno));
  } else
    portmap_core_stats(core)->sent++;
}

/* ---------- the table of mappings ---------- */

/* The key a response is found by (D3: the nonce, protocol and internal
 * port every MAP and PEER response carries). */
static uint64_t key_hash(const pcp_state_t *st, const uint8_t nonce[PCP_NONCE_LEN],
                         uint8_t protocol, uint16_t internal_port) {
  uint8_t key[PCP_NONCE_LEN + 3];
  memcpy(key, nonce, PCP_NONCE_LEN);
  key[PCP_NONCE_LEN] = protocol;
  key[PCP_NONCE_LEN + 1] = (uint8_t)(internal_port >> 8);
  key[PCP_NONCE_LEN + 2] = (uint8_t)internal_port;
  return portmap_hash_bytes(st->seed, key, sizeof key);
}

uint64_t portmap_pcp_pm_hash(const void *elem, const void *user) {
  const pcp_map_t *pm = elem;
  return key_hash(user, pm->req->nonce, (uint8_t)pm->req->protocol, pm->req->internal_port);
}

static int map_matches(const pcp_map_t *pm, const pcp_msg_t *r) {
  const portmap_req_t *m = pm->req;
  /* D3: protocol, internal port, nonce; PEER also the remote peer */
  if (r->opcode != (m->is_peer ? PCP_OP_PEER : PCP_OP_MAP))
    return 0;
  if (memcmp(r->nonce, m->nonce, PCP_NONCE_LEN) != 0 || r->protocol != m->protocol ||
      r->internal_port != m->internal_port)
    return 0;
  if (m->is_peer && (r->peer_port != portmap_req_peer_port(m) ||
                     memcmp(r->peer_addr, portmap_req_peer_addr(m), 16) != 0))
    return 0;
  if (r->has_third_party &&
      (!m->has_third_party || memcmp(r->third_party, portmap_req_third_party(m), 16) != 0))
    return 0;
  return 1;
}

/* What a response is matched against: its server and its fields, and how
 * choosy this pass is. */
typedef struct response_key {
  const pcp_server_t *s;
  const pcp_msg_t *r;
  int pass;
} response_key_t;

static int response_matches(const void *elem, const void *key) {
  const pcp_map_t *pm = elem;
  const response_key_t *k = key;
  if (pm->srv != k->s || !map_matches(pm, k->r))
    return 0;
  if (k->pass == 0) /* the request it answers: a delete is answered with lifetime 0 */
    return pm->outstanding && (pm->phase == PH_DELETE) == (k->r->lifetime == 0);
  if (k->pass == 1)
    return pm->outstanding;
  return 1;
}

/* Several mappings can share nonce, protocol and port (a delete by a
 * persisted nonce beside the mapping it deletes, D2): the response goes to
 * the one whose request it answers, else to one with a request out, else
 * (an unsolicited update, H7) to any. */
static pcp_map_t *find_match(pcp_state_t *st, const pcp_server_t *s, const pcp_msg_t *r) {
  uint64_t hash = key_hash(st, r->nonce, r->protocol, r->internal_port);
  for (int pass = 0; pass < 3; pass++) {
    response_key_t key = {s, r, pass};
    pcp_map_t *pm = portmap_hash_find(&st->maps, hash, response_matches, &key);
    if (pm != NULL)
      return pm;
  }
  return NULL;
}

/* ---------- the probe and datagrams ---------- */

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

/* F2: the 8-octet NAT-PMP UNSUPP_VERSION (see portmap_pcp_fail_natpmp()
 * for which mappings it ends). */
static void on_natpmp(pcp_server_t *s, uint64_t now) {
  portmap_core_t *core = s->st->core;
  int any = 0;
  if (s->probe_outstanding) {
    any = 1;
    probe_report(s, 0, PORTMAP_ERR_NATPMP_GATEWAY, PCP_UNSUPP_VERSION, now);
  }
  if (portmap_pcp_fail_natpmp(s, now))
    any = 1;
  if (!any) {
    portmap_core_stats(core)->unmatched++;
    return;
  }
  portmap_core_log(core, PORTMAP_LOG_INFO, "pcp: the gateway speaks NAT-PMP only (UNSUPP_VERSION)");
}

static void on_unreachable(pcp_server_t *s, uint64_t now) {
  if (s->probe_outstanding)
    probe_report(s, 0, PORTMAP_ERR_UNREACHABLE, -1, now);
  portmap_pcp_fail_unreachable(s, now);
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
    /* the hash finds the candidates with this nonce, protocol and port;
     * map_matches() makes every check of D3 */
    match = find_match(st, s, &r);
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
      portmap_pcp_recover(s, match, now); /* E5 */
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
    portmap_pcp_map_response(match, &r, now);
}

/* Every report is read; the requests it ends are ended once, after the
 * last (one walk of the mappings however many reports came). */
static void drain_errqueue(pcp_state_t *st, pcp_server_t *s, uint64_t now) {
  s->errqueue = 0;
  int closed = 0;
  for (int i = 0; i < PCP_MAX_READS; i++) {
    int r = portmap_plat_icmp_read(s->fd);
    if (r < 0)
      break;
    if (r == 1) {
      portmap_core_log(st->core, PORTMAP_LOG_INFO, "pcp: port %u closed on the gateway", s->port);
      closed = 1;
    }
  }
  if (closed)
    on_unreachable(s, now);
}

_Static_assert(PCP_READ_BATCH <= PORTMAP_PLAT_RECV_BATCH, "one receive call per batch");

/* Reads in batches (one system call for a burst of answers, and none more
 * to hear EAGAIN when a batch came short), at most PCP_MAX_READS datagrams
 * per call. A batch is sized to the answers expected, the requests in
 * flight and one more (at least 2, at most PCP_READ_BATCH; a full batch is
 * followed by another): each slot is set up before the call. The error
 * queue is read only when something said it holds a report: a receive that
 * returned a socket error instead of a datagram, or a send that failed (the
 * kernel sets the socket error with every ICMP report it queues, and the
 * first receive or send returns it). */
static void read_fd(pcp_state_t *st, pcp_server_t *srv, uint64_t now) {
  uint8_t bufs[PCP_READ_BATCH][PCP_MAX_PACKET + 4]; /* one more word: longer is malformed (A9) */
  portmap_plat_dgram_t d[PCP_READ_BATCH];
  size_t ready = 0; /* d[0 .. ready) point at their buffers */
  for (int reads = 0, calls = 0; reads < PCP_MAX_READS && calls < PCP_MAX_READS; calls++) {
    size_t want = srv->pace.held + 1;
    if (want < 2)
      want = 2;
    if (want > PCP_READ_BATCH)
      want = PCP_READ_BATCH;
    if (want > (size_t)(PCP_MAX_READS - reads))
      want = (size_t)(PCP_MAX_READS - reads);
    for (; ready < want; ready++) {
      d[ready].buf = bufs[ready];
      d[ready].cap = sizeof bufs[ready];
    }
    size_t got = 0;
    int r = portmap_plat_recv_many(srv->fd, d, want, &got);
    if (r == PORTMAP_PLAT_RECV_REFUSED) {
      drain_errqueue(st, srv, now);
      continue;
    }
    if (r == PORTMAP_PLAT_RECV_ERROR)
      srv->errqueue = 1;
    if (r != PORTMAP_PLAT_RECV_OK)
      break;
    for (size_t k = 0; k < got; k++) {
      if (!d[k].from_ok) {
        portmap_core_stats(st->core)->malformed++;
        continue;
      }
      on_datagram(st, d[k].from, d[k].port, d[k].buf, d[k].len > d[k].cap ? d[k].cap : d[k].len,
                  now);
    }
    reads += (int)got;
    if (got < want)
      break; /* nothing was left */
  }
  if (srv->errqueue)
    drain_errqueue(st, srv, now);
}

/* ---------- the vtable's server side ---------- */

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
  portmap_pcp_send(s, s->probe_pkt, s->probe_len); /* C4: identical */
  portmap_core_arm(core, &s->probe_timer, end);
}

typedef struct first_out {
  const pcp_server_t *s;
  int any;
} first_out_t;

static void first_out_one(void *elem, void *ctx) {
  const pcp_map_t *pm = elem;
  first_out_t *f = ctx;
  if (pm->srv == f->s && pm->outstanding && !pm->granted_here)
    f->any = 1;
}

/* A first request of a mapping (not yet granted here) out to s: the probe
 * needs no ANNOUNCE of its own, that request asks (RFC 6887 permits a MAP
 * as the first message). A walk, once per probe round. */
static int first_request_out(pcp_state_t *st, const pcp_server_t *s) {
  first_out_t f = {s, 0};
  portmap_hash_walk(&st->maps, first_out_one, &f);
  return f.any;
}

void portmap_pcp_probe(void *state, uint64_t now) {
  pcp_state_t *st = state;
  uint8_t gw[16];
  int ipv6 =
      !portmap_core_gateway(st->core, 0, gw, NULL) && portmap_core_gateway(st->core, 1, gw, NULL);
  pcp_server_t *s = &st->srv[ipv6];
  portmap_status_t rc = portmap_pcp_server_open(st, ipv6);
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
    portmap_pcp_send(s, s->probe_pkt, s->probe_len);
  portmap_core_arm(st->core, &s->probe_timer,
                   now + portmap_core_config(st->core)->probe_timeout_ms / 2 + 1);
}

void portmap_pcp_unsolicited(void *state, const uint8_t from[16], uint16_t from_port,
                             const uint8_t *data, size_t len, uint64_t now) {
  on_datagram(state, from, from_port, data, len, now); /* B5 checks the source */
  portmap_pcp_pump(state, now);
}

/* A server's state before it is opened. */
static void server_init(pcp_state_t *st, pcp_server_t *s) {
  s->st = st;
  s->fd = -1;
  portmap_timer_init(&s->recovery, portmap_pcp_on_recovery, s);
  portmap_timer_init(&s->probe_timer, on_probe_timer, s);
  portmap_pace_init(&s->pace, PORTMAP_PACE_WINDOW);
}

portmap_status_t portmap_pcp_create(portmap_core_t *core, void **state) {
  pcp_state_t *st = portmap_alloc_calloc(portmap_core_alloc(core), 1, sizeof *st);
  if (st == NULL)
    return PORTMAP_ERR_NOMEM;
  st->core = core;
  /* Nonces come from the CSPRNG (D1) and responses only look keys up, so
   * no one outside can fill a cluster: the seed need not be secret, and
   * drawing none leaves the injected random source's sequence alone. */
  st->seed = (uint64_t)(uintptr_t)st;
  portmap_hash_init(&st->maps, portmap_pcp_pm_hash, st, portmap_core_alloc(core));
  portmap_timer_init(&st->pump, portmap_pcp_on_pump, st);
  for (int i = 0; i < 2; i++)
    server_init(st, &st->srv[i]);
  *state = st;
  return PORTMAP_OK;
}

void portmap_pcp_destroy(void *state) {
  pcp_state_t *st = state;
  if (st == NULL)
    return;
  for (int i = 0; i < 2; i++) {
    portmap_core_disarm(st->core, &st->srv[i].recovery);
    portmap_core_disarm(st->core, &st->srv[i].probe_timer);
    portmap_core_close_fd(st->core, st->srv[i].fd);
  }
  portmap_core_disarm(st->core, &st->pump);
  portmap_hash_fini(&st->maps);
  portmap_alloc_free(portmap_core_alloc(st->core), st);
}

/* B6 per family: the core detached this family's mappings (so nothing of
 * this server's is in flight or waiting); a probe in flight there is
 * dropped (the core forgets its probe when it asked this server). The other
 * family's server and mappings are untouched. */
void portmap_pcp_family_changed(void *state, int ipv6, uint64_t now) {
  pcp_state_t *st = state;
  pcp_server_t *s = &st->srv[ipv6 ? 1 : 0];
  (void)now;
  portmap_core_disarm(st->core, &s->recovery);
  portmap_core_disarm(st->core, &s->probe_timer);
  portmap_core_close_fd(st->core, s->fd);
  memset(s, 0, sizeof *s);
  server_init(st, s);
}

size_t portmap_pcp_fds(void *state, int *fds, size_t cap) {
  pcp_state_t *st = state;
  int all[2] = {st->srv[0].fd, st->srv[1].fd};
  return portmap_backend_put_fds(all, 2, fds, cap);
}

void portmap_pcp_readable(void *state, uint64_t now) {
  pcp_state_t *st = state;
  for (int i = 0; i < 2; i++) {
    if (st->srv[i].fd >= 0)
      read_fd(st, &st->srv[i], now);
  }
  portmap_pcp_pump(st, now); /* the answers gave slots back */
}
