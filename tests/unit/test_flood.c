/* SPDX-License-Identifier: MIT */
/*
 * Flood and abuse (issue 11, item 3): 100,000 junk and spoofed datagrams at
 * every socket a client owns, on loopback, while its mappings renew against
 * the fake PCP and NAT-PMP gateways on the injected clock. Nothing a flood
 * sends may change a mapping, make a renewal late, go uncounted, or make
 * the heap grow with the number of datagrams.
 *
 * The SSDP storm (10,000 replies with distinct LOCATIONs) is in
 * test_flood_ssdp.c.
 *
 * Addresses: the gateway is 127.0.0.81 (PCP on an ephemeral port, NAT-PMP
 * on 5351, nothing on the SSDP port) or 127.0.0.83 (NAT-PMP only); the
 * flood comes from 127.0.0.1, 127.0.0.82 (another host, also from its port
 * 5351), the gateway's own address on other ports, and, for junk that only
 * the gateway could send, the fakes' server sockets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <portmap/portmap.h>

#include "test_support.h"
#include "fake_natpmp.h"
#include "fake_pcp.h"
#include "heap_probe.h"
#include "pcp/wire.h"

#define GW "127.0.0.81"
#define GW_HOST 0x7F000051u
#define GW_NP "127.0.0.83"
#define GW_NP_HOST 0x7F000053u
#define OTHER_HOST 0x7F000052u /* 127.0.0.82: another host on the LAN */
#define N_MAP 4
#define LIFETIME_S 40u
#define DATAGRAMS 100000u
#define BATCH 100u /* per round: at most BATCH / targets queued on one socket */
#define STEP_MS 600u
#define MAX_EVENTS 512
#define HEAP_SLACK 16384 /* bytes the heap may grow by, whatever the datagram count */

enum target { T_LISTEN, T_LISTEN6, T_PCP, T_NATPMP, T_SSDP, T_MAX };
enum fate { F_SPOOFED, F_MALFORMED, F_UNMATCHED, F_FILTERED, F_MAX };
enum source { S_OTHER, S_PEER, S_PEER5351, S_GWPORT, S_V4_MAX, S_V6 = S_V4_MAX, S_MAX };
enum kind {
  K_JUNK,        /* random octets, 0..1100 of them */
  K_TRUNC,       /* a PCP MAP response for a live mapping, cut short */
  K_OVERSIZE,    /* the same, padded past 1100 octets */
  K_WRONG_NONCE, /* a well-formed PCP MAP response with another nonce */
  K_HIJACK,      /* the right nonce, another external port and address */
  K_ANNOUNCE,    /* PCP ANNOUNCE with epoch 0: "the gateway rebooted" */
  K_NP_ANNOUNCE, /* NAT-PMP public address, SSSoE 0, another address */
  K_NP_UNSUPP,   /* the 8-octet NAT-PMP UNSUPP_VERSION (F2 look-alike) */
  K_NP_MAP,      /* NAT-PMP TCP map response for a live port, another external port */
  K_NP_TRUNC,    /* NAT-PMP success response cut short */
  K_SSDP,        /* an SSDP reply for an IGD */
  K_MAX
};

typedef test_ev_t ev_t;

typedef struct h {
  uint64_t now;
  uint64_t rng;  /* the client's CSPRNG stand-in */
  uint64_t jrng; /* the flood's */
  uint32_t gw_host;
  fake_pcp_t *pcp; /* NULL in the NAT-PMP-only run */
  fake_natpmp_t *nat;
  portmap_client_t *c;
  portmap_config_t cfg;
  ev_t ev[MAX_EVENTS];
  size_t n_ev;
  unsigned client_ev[8];
  unsigned warnings;
  uint64_t traced_in;
  /* the client's sockets, and where a datagram reaches them */
  int tfd[T_MAX];
  struct sockaddr_storage taddr[T_MAX];
  int src[S_MAX];
  /* the mappings as first granted */
  portmap_mapping_t *m[N_MAP];
  uint16_t port[N_MAP];
  portmap_info_t first[N_MAP];
  /* renewals the fake saw */
  unsigned seen_requests;
  uint64_t last_req[N_MAP];
  unsigned n_req[N_MAP];
  uint64_t gap_min, gap_max;
  /* what the flood sent, by target and by the fate the client must give it */
  unsigned sent[T_MAX];
  unsigned fate[F_MAX];
  unsigned from_gateway; /* of them, sent from the fakes' own server sockets */
} h_t;

static uint64_t h_clock(void *u) {
  return ((h_t *)u)->now;
}

static int h_random(void *buf, size_t len, void *u) {
  test_splitmix_fill(&((h_t *)u)->rng, buf, len);
  return 0;
}

static uint32_t jrand(h_t *h) {
  uint32_t v;
  test_splitmix_fill(&h->jrng, &v, sizeof v);
  return v;
}

static void h_cb(portmap_mapping_t *m, portmap_event_t e, const portmap_info_t *info, void *u) {
  h_t *h = u;
  test_ev_add(h->ev, MAX_EVENTS, &h->n_ev, m, e, info, h->now);
}

static void h_client_cb(portmap_client_t *c, portmap_client_event_t e,
                        const portmap_client_state_t *st, void *u) {
  (void)c;
  (void)st;
  h_t *h = u;
  if ((unsigned)e < 8)
    h->client_ev[e]++;
}

static void h_log(portmap_log_level_t level, const char *msg, void *u) {
  h_t *h = u;
  if (level <= PORTMAP_LOG_WARN) {
    h->warnings++;
    print_message("unexpected log: %s\n", msg);
  }
}

static void h_trace(int sent, const char *peer, uint16_t port, const uint8_t *data, size_t len,
                    void *u) {
  (void)peer;
  (void)port;
  (void)data;
  (void)len;
  if (!sent)
    ((h_t *)u)->traced_in++;
}

static struct sockaddr_in sin_of(uint32_t host, uint16_t port) {
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(host);
  sa.sin_port = htons(port);
  return sa;
}

static int bound_socket(uint32_t host, uint16_t port) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  struct sockaddr_in sa = sin_of(host, port);
  int one = 1;
  (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
    fail_msg("cannot bind %08x:%u", host, port);
  return fd;
}

static h_t *h_new(uint32_t gw_host, const char *gw, unsigned backends) {
  h_t *h = calloc(1, sizeof *h);
  assert_non_null(h);
  h->now = 7000000;
  h->rng = 11;
  h->jrng = 0xF100D;
  h->gw_host = gw_host;
  h->gap_min = UINT64_MAX;
  for (int i = 0; i < T_MAX; i++)
    h->tfd[i] = -1;
  if (backends & PORTMAP_BACKEND_PCP) {
    h->pcp = fake_pcp_new_v4(0, gw_host);
    assert_non_null(h->pcp);
    fake_pcp_set_time(h->pcp, h->now);
    fake_pcp_set_lifetime_limits(h->pcp, 30, 86400);
  }
  h->nat = fake_natpmp_new(gw);
  assert_non_null(h->nat);
  fake_natpmp_set_time(h->nat, h->now);
  fake_natpmp_set_epoch(h->nat, 4000);
  portmap_config_init(&h->cfg);
  h->cfg.gateway = gw;
  h->cfg.backends = backends;
  if (h->pcp != NULL)
    h->cfg.server_port = fake_pcp_port(h->pcp);
  h->cfg.announce_port = test_free_udp_port(INADDR_LOOPBACK);
  h->cfg.ssdp_port = test_free_udp_port(gw_host); /* nobody answers M-SEARCH */
  h->cfg.clock_cb = h_clock;
  h->cfg.clock_user = h;
  h->cfg.random_cb = h_random;
  h->cfg.random_user = h;
  h->cfg.client_cb = h_client_cb;
  h->cfg.client_user = h;
  h->cfg.log_cb = h_log;
  h->cfg.log_user = h;
  h->cfg.log_level = PORTMAP_LOG_WARN;
  h->cfg.trace_cb = h_trace;
  h->cfg.trace_user = h;
  h->cfg.destroy_timeout_ms = 200;
  h->src[S_OTHER] = bound_socket(INADDR_LOOPBACK, 0);
  h->src[S_PEER] = bound_socket(OTHER_HOST, 0);
  h->src[S_PEER5351] = bound_socket(OTHER_HOST, FAKE_NATPMP_PORT);
  h->src[S_GWPORT] = bound_socket(gw_host, 0);
  h->src[S_V6] = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in6 lo6;
  memset(&lo6, 0, sizeof lo6);
  lo6.sin6_family = AF_INET6;
  lo6.sin6_addr = in6addr_loopback;
  if (h->src[S_V6] >= 0 && bind(h->src[S_V6], (struct sockaddr *)&lo6, sizeof lo6) != 0) {
    close(h->src[S_V6]); /* no ::1: the IPv6 listener, if any, is left alone */
    h->src[S_V6] = -1;
  }
  return h;
}

static int setup_pcp(void **state) {
  *state = h_new(GW_HOST, GW, PORTMAP_BACKEND_ALL);
  return 0;
}

static int setup_natpmp(void **state) {
  *state = h_new(GW_NP_HOST, GW_NP, PORTMAP_BACKEND_NATPMP);
  return 0;
}

static void pump(h_t *h) {
  for (int i = 0; i < 16; i++) {
    portmap_process(h->c);
    int a = h->pcp != NULL ? fake_pcp_process_at(h->pcp, h->now) : 0;
    int b = fake_natpmp_process_at(h->nat, h->now);
    if (a <= 0 && b <= 0 && !test_client_readable(h->c, 0))
      break;
  }
  portmap_process(h->c);
}

static void pump_cb(void *h) {
  pump(h);
}

static void advance(h_t *h, uint64_t ms) {
  test_advance(h->c, &h->now, ms, pump_cb, h);
}

static int teardown(void **state) {
  h_t *h = *state;
  test_fake_runner_t r1, r2;
  if (h->pcp != NULL)
    test_fake_runner_start(&r1, &fake_pcp_ops, h->pcp);
  test_fake_runner_start(&r2, &fake_natpmp_ops, h->nat);
  portmap_client_free(h->c);
  if (h->pcp != NULL)
    test_fake_runner_stop(&r1);
  test_fake_runner_stop(&r2);
  for (int i = 0; i < S_MAX; i++)
    if (h->src[i] >= 0)
      close(h->src[i]);
  fake_pcp_free(h->pcp);
  fake_natpmp_free(h->nat);
  free(h);
  return 0;
}

/* ---- the client's sockets ---- */

/* Sort the client's fds: the listeners are bound to the announce port (an
 * IPv6 one too when the host has an IPv6 default route), the NAT-PMP
 * socket is connected to the gateway's 5351, the PCP socket is the source
 * the fake PCP server saw; any other UDP socket is SSDP. The wake pipe and
 * the UPnP worker's pipe are not sockets. */
static void find_sockets(h_t *h) {
  int fds[16];
  size_t n = portmap_fds(h->c, fds, 16);
  assert_true(n <= 16);
  struct sockaddr_storage ss;
  socklen_t sl = 0;
  uint16_t pcp_port = 0;
  if (h->pcp != NULL) {
    assert_int_equal(fake_pcp_last_source(h->pcp, &ss, &sl), 0);
    pcp_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  }
  for (size_t i = 0; i < n; i++) {
    int type = 0;
    socklen_t tl = sizeof type;
    if (getsockopt(fds[i], SOL_SOCKET, SO_TYPE, &type, &tl) != 0 || type != SOCK_DGRAM)
      continue;
    struct sockaddr_storage me, peer;
    socklen_t ml = sizeof me, pl = sizeof peer;
    assert_int_equal(getsockname(fds[i], (struct sockaddr *)&me, &ml), 0);
    struct sockaddr_in *me4 = (struct sockaddr_in *)&me;
    struct sockaddr_in6 *me6 = (struct sockaddr_in6 *)&me;
    int t;
    if (me.ss_family == AF_INET6) {
      assert_int_equal(ntohs(me6->sin6_port), (uint16_t)h->cfg.announce_port);
      t = T_LISTEN6;
      me6->sin6_addr = in6addr_loopback; /* bound to any */
    } else if (getpeername(fds[i], (struct sockaddr *)&peer, &pl) == 0) {
      struct sockaddr_in *p4 = (struct sockaddr_in *)&peer;
      assert_int_equal(ntohs(p4->sin_port), FAKE_NATPMP_PORT);
      assert_int_equal(ntohl(p4->sin_addr.s_addr), h->gw_host);
      t = T_NATPMP;
    } else if (ntohs(me4->sin_port) == (uint16_t)h->cfg.announce_port) {
      t = T_LISTEN;
      me4->sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* bound to any */
    } else if (ntohs(me4->sin_port) == pcp_port) {
      t = T_PCP;
    } else {
      t = T_SSDP;
    }
    assert_int_equal(h->tfd[t], -1);
    h->tfd[t] = fds[i];
    h->taddr[t] = me;
  }
  assert_true(h->tfd[T_LISTEN] >= 0);
  if (h->pcp != NULL) {
    /* PCP answered the first MAP (the MAP is the probe): NAT-PMP and SSDP
     * were never asked, so their sockets do not exist; the NAT-PMP-only
     * case floods the NAT-PMP socket, test_flood_ssdp the SSDP one. */
    assert_true(h->tfd[T_PCP] >= 0);
    assert_int_equal(h->tfd[T_NATPMP], -1);
    assert_int_equal(h->tfd[T_SSDP], -1);
  } else {
    assert_true(h->tfd[T_NATPMP] >= 0);
  }
}

/* ---- the mappings, and what the fakes saw of them ---- */

static int map_index(const h_t *h, uint16_t port) {
  for (int i = 0; i < N_MAP; i++)
    if (h->port[i] == port)
      return i;
  return -1;
}

static void note_request(h_t *h, uint16_t port, uint64_t at) {
  int i = map_index(h, port);
  assert_true(i >= 0);
  if (h->n_req[i] > 0) {
    uint64_t gap = at - h->last_req[i];
    if (gap < h->gap_min)
      h->gap_min = gap;
    if (gap > h->gap_max)
      h->gap_max = gap;
  }
  h->last_req[i] = at;
  h->n_req[i]++;
}

/* Every mapping request the fake logged since the last look (its log keeps
 * the latest 64 or 128; a round makes far fewer). */
static void collect_requests(h_t *h) {
  if (h->pcp != NULL) {
    unsigned total = fake_pcp_received(h->pcp);
    size_t count = fake_pcp_log_count(h->pcp);
    size_t fresh = total - h->seen_requests;
    assert_true(fresh <= count);
    for (size_t i = count - fresh; i < count; i++) {
      const fake_pcp_request_t *r = fake_pcp_log_get(h->pcp, i);
      if (r->decode_status == PCP_WIRE_OK && r->msg.opcode == PCP_OP_MAP && r->msg.lifetime > 0)
        note_request(h, r->msg.internal_port, r->time_ms);
    }
    h->seen_requests = total;
    return;
  }
  unsigned total = fake_natpmp_received(h->nat);
  size_t count = fake_natpmp_log_count(h->nat);
  size_t fresh = total - h->seen_requests;
  assert_true(fresh <= count);
  for (size_t i = count - fresh; i < count; i++) {
    const fake_natpmp_request_t *r = fake_natpmp_log_get(h->nat, i);
    if (r->opcode == 2 && r->stored >= 12 && (r->data[8] | r->data[9] | r->data[10] | r->data[11]))
      note_request(h, (uint16_t)(r->data[4] << 8 | r->data[5]), r->time_ms);
  }
  h->seen_requests = total;
}

static void map_all(h_t *h) {
  for (int i = 0; i < N_MAP; i++) {
    portmap_request_t req;
    portmap_request_init(&req);
    req.internal_port = (uint16_t)(9100 + i);
    req.lifetime = LIFETIME_S;
    h->port[i] = req.internal_port;
    assert_int_equal(portmap_map(h->c, &req, h_cb, h, &h->m[i]), PORTMAP_OK);
  }
  advance(h, 2000);
  for (int i = 0; i < N_MAP; i++) {
    const ev_t *e = NULL;
    for (size_t k = 0; k < h->n_ev && e == NULL; k++)
      if (h->ev[k].m == h->m[i])
        e = &h->ev[k];
    assert_non_null(e);
    assert_int_equal(e->event, PORTMAP_EVENT_MAPPED);
    h->first[i] = e->info;
  }
}

/* ---- the flood ---- */

static size_t pcp_map_response(h_t *h, const uint8_t nonce[12], uint16_t iport, uint16_t eport,
                               const uint8_t ext[16], uint32_t lifetime, uint8_t *buf, size_t cap) {
  pcp_msg_t r;
  pcp_msg_init(&r);
  r.opcode = PCP_OP_MAP;
  r.lifetime = lifetime;
  r.epoch = h->pcp != NULL ? fake_pcp_epoch(h->pcp) : jrand(h);
  memcpy(r.nonce, nonce, 12);
  r.protocol = PORTMAP_PROTO_TCP;
  r.internal_port = iport;
  r.external_port = eport;
  memcpy(r.external_addr, ext, 16);
  size_t len = 0;
  assert_int_equal(pcp_encode_response(&r, buf, cap, &len), PCP_WIRE_OK);
  return len;
}

static void put16(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v) {
  put16(p, v >> 16);
  put16(p + 2, v);
}

static const uint8_t ROGUE_EXT[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 66};

/* The octets of one datagram of a kind, about live mapping mi. */
static size_t build(h_t *h, int kind, int mi, uint8_t *buf, size_t cap) {
  const portmap_info_t *m = &h->first[mi];
  uint8_t nonce[12];
  size_t len;
  switch (kind) {
  case K_JUNK:
    len = jrand(h) % 1101u;
    test_splitmix_fill(&h->jrng, buf, len);
    return len;
  case K_TRUNC:
  case K_OVERSIZE:
    len = pcp_map_response(h, m->nonce, m->internal_port, m->external_port,
                           m->external_address.bytes, LIFETIME_S, buf, cap);
    if (kind == K_TRUNC)
      return jrand(h) % 2 ? jrand(h) % 24u : 24u + 1u + jrand(h) % 3u + 4u * (jrand(h) % 8u);
    memset(buf + len, 0, 1200 - len);
    return 1104u + 4u * (jrand(h) % 24u);
  case K_WRONG_NONCE:
    test_splitmix_fill(&h->jrng, nonce, sizeof nonce);
    return pcp_map_response(h, nonce, m->internal_port, m->external_port, m->external_address.bytes,
                            LIFETIME_S, buf, cap);
  case K_HIJACK:
    return pcp_map_response(h, m->nonce, m->internal_port, (uint16_t)(m->external_port + 1000u),
                            ROGUE_EXT, jrand(h) % 2 ? 0 : 7200, buf, cap);
  case K_ANNOUNCE: {
    pcp_msg_t r;
    pcp_msg_init(&r);
    r.opcode = PCP_OP_ANNOUNCE;
    assert_int_equal(pcp_encode_response(&r, buf, cap, &len), PCP_WIRE_OK);
    return len;
  }
  case K_NP_ANNOUNCE:
    memset(buf, 0, 12);
    buf[1] = 128;
    memcpy(buf + 8, ROGUE_EXT + 12, 4);
    return 12;
  case K_NP_UNSUPP:
    memset(buf, 0, 8);
    buf[1] = 128 + 1;
    put16(buf + 2, 1);
    put32(buf + 4, fake_natpmp_epoch(h->nat));
    return 8;
  case K_NP_MAP:
  case K_NP_TRUNC:
    memset(buf, 0, 16);
    buf[1] = 128 + 2;
    put32(buf + 4, fake_natpmp_epoch(h->nat));
    put16(buf + 8, m->internal_port);
    put16(buf + 10, (uint16_t)(m->external_port + 1000u));
    put32(buf + 12, 7200);
    return kind == K_NP_MAP ? 16 : jrand(h) % 16u;
  default:
    return (size_t)snprintf((char *)buf, cap,
                            "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\n"
                            "ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n"
                            "USN: uuid:flood-%u\r\nLOCATION: http://127.0.0.81:%u/d%u.xml\r\n\r\n",
                            jrand(h), 1024u + jrand(h) % 60000u, jrand(h));
  }
}

/* What the client must make of a datagram from a host that is not the
 * gateway's server port (B3, B5, N6: source first, then content). */
static int fate_off_path(const h_t *h, int target, const uint8_t *buf, size_t len) {
  switch (target) {
  case T_PCP:
    return F_SPOOFED;
  case T_NATPMP:
    return F_FILTERED; /* connected to the gateway's 5351: the kernel drops it */
  case T_SSDP:
    return F_UNMATCHED; /* no discovery under way */
  default:
    if (len > 0 && buf[0] == 2 && h->pcp != NULL)
      return F_SPOOFED; /* handed to PCP, which checks the source */
    if (len > 0 && buf[0] == 0)
      return F_SPOOFED; /* handed to NAT-PMP, which checks the source */
    return F_MALFORMED;
  }
}

static void send_to(h_t *h, int via, int target, const uint8_t *buf, size_t len) {
  const struct sockaddr *to = (const struct sockaddr *)&h->taddr[target];
  socklen_t tl = h->taddr[target].ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                        : sizeof(struct sockaddr_in);
  ssize_t n;
  if (via == -1)
    n = fake_pcp_send_raw(h->pcp, to, tl, buf, len, 0) == 0 ? (ssize_t)len : -1;
  else if (via == -2)
    n = fake_natpmp_send_raw(h->nat, to, tl, buf, len, 0) == 0 ? (ssize_t)len : -1;
  else
    n = sendto(h->src[via], buf, len, 0, to, tl);
  if (n != (ssize_t)len)
    fail_msg("sendto target %d via %d: %zd", target, via, n);
  h->sent[target]++;
}

/* Junk only the gateway's own server port could send: it passes the source
 * checks, so its content decides. Kinds that a real gateway may send (a
 * valid announcement, an update for a live mapping) are left out: from
 * that source they would be news, not abuse. */
static void send_from_gateway(h_t *h, int target, int mi, uint8_t *buf, size_t cap) {
  size_t len;
  int fate = F_MALFORMED;
  uint32_t pick = jrand(h) % 3u;
  int natpmp = target == T_NATPMP || (target == T_LISTEN && h->pcp == NULL);
  if (natpmp && pick == 0) {
    /* version 1-255 at the NAT-PMP socket; at the listener version 0 with an
     * opcode below 128, never an announcement */
    len = build(h, K_JUNK, mi, buf, cap);
    if (len > 0 && target == T_NATPMP)
      buf[0] = (uint8_t)(1 + buf[0] % 255);
    if (len > 1 && target == T_LISTEN) {
      buf[0] = 0;
      buf[1] = (uint8_t)(buf[1] & 0x7f);
    }
  } else if (natpmp && (pick == 1 || target == T_LISTEN)) {
    len = build(h, K_NP_TRUNC, mi, buf, cap); /* a success response cut short */
    if (target == T_LISTEN && len > 11)
      len = 11;
  } else if (natpmp) {
    len = build(h, K_NP_MAP, mi, buf, cap);
    put16(buf + 8, 1); /* internal port 1: nobody's */
    fate = F_UNMATCHED;
  } else if (pick == 0) {
    len = build(h, jrand(h) % 2 ? K_TRUNC : K_OVERSIZE, mi, buf, cap);
  } else if (pick == 1) {
    len = build(h, K_JUNK, mi, buf, cap);
    if (len > 0)
      buf[0] = (uint8_t)(3 + buf[0] % 250); /* neither PCP nor NAT-PMP */
  } else {
    len = build(h, K_WRONG_NONCE, mi, buf, cap);
    fate = F_UNMATCHED;
  }
  send_to(h, natpmp ? -2 : -1, target, buf, len);
  h->fate[fate]++;
  h->from_gateway++;
}

static void send_one(h_t *h, int target) {
  uint8_t buf[1400];
  int mi = (int)(jrand(h) % N_MAP);
  if (target != T_SSDP && target != T_LISTEN6 && jrand(h) % 8u == 0) {
    send_from_gateway(h, target, mi, buf, sizeof buf);
    return;
  }
  int kind = target == T_SSDP && jrand(h) % 2 ? K_SSDP : (int)(jrand(h) % (K_MAX - 1));
  size_t len = build(h, kind, mi, buf, sizeof buf);
  int via = target == T_LISTEN6 ? S_V6 : (int)(jrand(h) % S_V4_MAX);
  send_to(h, via, target, buf, len);
  h->fate[fate_off_path(h, target, buf, len)]++;
}

/* Read whatever is still queued (each process reads at most 64 per fd). */
static void drain(h_t *h) {
  for (int i = 0; i < 64 && test_client_readable(h->c, 0); i++)
    pump(h);
}

static double real_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void assert_unchanged(h_t *h, uint64_t heap_before) {
  /* no event but MAPPED once and RENEWED, all with the first grant's
   * address and port */
  unsigned renewed = 0;
  for (size_t k = 0; k < h->n_ev; k++) {
    const ev_t *e = &h->ev[k];
    int i = map_index(h, e->info.internal_port);
    assert_true(i >= 0);
    if (e->event != PORTMAP_EVENT_MAPPED) {
      if (e->event != PORTMAP_EVENT_RENEWED)
        fail_msg("event %s on %u", portmap_event_name(e->event), e->info.internal_port);
      renewed++;
    }
    assert_int_equal(e->info.external_port, h->first[i].external_port);
    assert_memory_equal(e->info.external_address.bytes, h->first[i].external_address.bytes, 16);
  }
  assert_true(h->n_ev < MAX_EVENTS);
  for (int i = 0; i < N_MAP; i++) {
    portmap_info_t now;
    assert_int_equal(portmap_mapping_info(h->m[i], &now), PORTMAP_OK);
    assert_int_equal(now.external_port, h->first[i].external_port);
    assert_memory_equal(now.external_address.bytes, h->first[i].external_address.bytes, 16);
    assert_memory_equal(now.nonce, h->first[i].nonce, 12);
  }
  /* the client as a whole: the one backend and address it chose at the start */
  assert_true(h->client_ev[PORTMAP_CLIENT_BACKEND] <= 1);
  assert_true(h->client_ev[PORTMAP_CLIENT_EXTERNAL_ADDRESS] <= 1);
  assert_int_equal(h->client_ev[PORTMAP_CLIENT_GATEWAY_LOST], 0);
  assert_int_equal(h->warnings, 0);
  /* renewals on time: each request for a mapping came [1/2, 5/8] of the
   * granted lifetime after the previous grant (H5; NAT-PMP renews at 1/2, N3) */
  unsigned renewals = 0;
  for (int i = 0; i < N_MAP; i++)
    renewals += h->n_req[i] - 1;
  assert_int_equal(renewals, renewed);
  assert_true(renewals >= N_MAP * (DATAGRAMS / BATCH * STEP_MS / 1000u) / (LIFETIME_S * 5 / 8));
  assert_true(h->gap_min >= LIFETIME_S * 500u);
  assert_true(h->gap_max <= (h->pcp != NULL ? LIFETIME_S * 625u : LIFETIME_S * 500u));
  /* memory: flat, not proportional to the datagram count */
  uint64_t heap_after = 0;
  if (heap_before != HEAP_PROBE_NONE) {
    heap_after = heap_probe_in_use();
    print_message("heap in use: %llu before, %llu after (the measure's own noise: %llu)\n",
                  (unsigned long long)heap_before, (unsigned long long)heap_after,
                  (unsigned long long)heap_probe_noise());
    assert_true(heap_after <= heap_before + HEAP_SLACK + heap_probe_noise());
  }
}

static void flood(h_t *h) {
  assert_int_equal(portmap_client_new(&h->cfg, &h->c), PORTMAP_OK);
  advance(h, 1000); /* the probe */
  map_all(h);
  collect_requests(h);
  find_sockets(h);
  int targets[T_MAX];
  int n_targets = 0;
  for (int t = 0; t < T_MAX; t++)
    if (h->tfd[t] >= 0 && (t != T_LISTEN6 || h->src[S_V6] >= 0))
      targets[n_targets++] = t;
  portmap_stats_t st0, st;
  assert_int_equal(portmap_client_stats(h->c, &st0), PORTMAP_OK);
  unsigned fakes_read0 =
      (h->pcp != NULL ? fake_pcp_received(h->pcp) : 0) + fake_natpmp_received(h->nat);
  uint64_t traced0 = h->traced_in;
  const char *why = NULL;
  uint64_t heap_before = HEAP_PROBE_NONE;
  double t0 = real_s();
  for (unsigned round = 0; round < DATAGRAMS / BATCH; round++) {
    for (unsigned k = 0; k < BATCH; k++)
      send_one(h, targets[k % (unsigned)n_targets]);
    advance(h, STEP_MS);
    drain(h);
    collect_requests(h);
    if (round == 9) /* warmed up: every path has run */
      heap_before = heap_probe_start(&why);
  }
  double took = real_s() - t0;
  if (why != NULL)
    print_message("heap not measured: %s\n", why);
  assert_int_equal(portmap_client_stats(h->c, &st), PORTMAP_OK);
  /* the fakes answer each request once; none was retransmitted (below) */
  uint64_t answers = st.sent - st0.sent;
  unsigned fakes_read =
      (h->pcp != NULL ? fake_pcp_received(h->pcp) : 0) + fake_natpmp_received(h->nat) - fakes_read0;
  unsigned total = 0;
  for (int t = 0; t < T_MAX; t++)
    total += h->sent[t];
  assert_int_equal(total, DATAGRAMS);
  print_message("sent %u (listener %u + %u, pcp %u, natpmp %u, ssdp %u; %u from the gateway's "
                "ports) in %.2f s; renewals %zu, gap %llu..%llu ms\n",
                total, h->sent[T_LISTEN], h->sent[T_LISTEN6], h->sent[T_PCP], h->sent[T_NATPMP],
                h->sent[T_SSDP], h->from_gateway, took, h->n_ev - N_MAP,
                (unsigned long long)h->gap_min, (unsigned long long)h->gap_max);
  print_message("requests sent %llu, read by the fakes %u\n", (unsigned long long)answers,
                fakes_read);
  print_message("expected: spoofed %u malformed %u unmatched %u filtered by the kernel %u; "
                "counted: received %llu spoofed %llu malformed %llu unmatched %llu\n",
                h->fate[F_SPOOFED], h->fate[F_MALFORMED], h->fate[F_UNMATCHED], h->fate[F_FILTERED],
                (unsigned long long)(st.received - st0.received),
                (unsigned long long)(st.spoofed - st0.spoofed),
                (unsigned long long)(st.malformed - st0.malformed),
                (unsigned long long)(st.unmatched - st0.unmatched));
  /* every datagram read is counted, each once, under the right heading */
  assert_int_equal(st.retransmissions, st0.retransmissions); /* no answer was lost */
  assert_int_equal(st.epoch_invalid, 0);
  assert_int_equal(st.spoofed - st0.spoofed, h->fate[F_SPOOFED]);
  assert_int_equal(st.malformed - st0.malformed, h->fate[F_MALFORMED]);
  assert_int_equal(st.unmatched - st0.unmatched, h->fate[F_UNMATCHED]);
  assert_int_equal(st.received - st0.received,
                   h->fate[F_SPOOFED] + h->fate[F_MALFORMED] + h->fate[F_UNMATCHED] + answers);
  assert_int_equal(h->traced_in - traced0, st.received - st0.received);
  assert_unchanged(h, heap_before);
}

/* PCP chosen; the NAT-PMP and SSDP sockets are open too (the probe). */
static void test_flood_pcp(void **state) {
  flood(*state);
}

/* NAT-PMP alone: a socket connected to the gateway, and the listener. */
static void test_flood_natpmp(void **state) {
  flood(*state);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_flood_pcp, setup_pcp, teardown),
      cmocka_unit_test_setup_teardown(test_flood_natpmp, setup_natpmp, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
