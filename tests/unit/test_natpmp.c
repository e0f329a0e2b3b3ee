/* SPDX-License-Identifier: MIT */
/*
 * The NAT-PMP backend (RFC 6886, on libnatpmp) end to end against the fake
 * NAT-PMP server on loopback, with the clock and the random source
 * injected: no sleep, a 2-hour lifetime renews in microseconds. Test names
 * carry the checklist (N1-N7) and quirk (Q15, Q16, Q21, Q23, Q24) IDs they
 * prove.
 *
 * libnatpmp always sends to port 5351, so the fake binds 127.0.0.61:5351
 * (an address of lo no other test binary uses); 127.0.0.62:5351 is kept
 * closed for Q21.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <portmap/portmap.h>

#include "test_support.h"
#include "fake_natpmp.h"

#define GW "127.0.0.61"
#define GW_CLOSED "127.0.0.62"
#define MAX_EVENTS 256
#define OP_UDP 1
#define OP_TCP 2

typedef test_ev_t ev_t;

typedef struct h {
  uint64_t now;
  uint64_t rng;
  fake_natpmp_t *f;
  portmap_client_t *c;
  portmap_config_t cfg;
  uint16_t announce_port;
  ev_t ev[MAX_EVENTS];
  size_t n_ev;
} h_t;

static uint64_t h_clock(void *u) {
  return ((h_t *)u)->now;
}

/* Deterministic stand-in for the CSPRNG. */
static int h_random(void *buf, size_t len, void *u) {
  test_splitmix_fill(&((h_t *)u)->rng, buf, len);
  return 0;
}

static void h_cb(portmap_mapping_t *m, portmap_event_t e, const portmap_info_t *info, void *u) {
  h_t *h = u;
  test_ev_add(h->ev, MAX_EVENTS, &h->n_ev, m, e, info, h->now);
}

static void client_up(h_t *h) {
  assert_int_equal(portmap_client_new(&h->cfg, &h->c), PORTMAP_OK);
}

static int setup(void **state) {
  h_t *h = calloc(1, sizeof *h);
  h->now = 1000000;
  h->rng = 42;
  h->f = fake_natpmp_new(GW);
  assert_non_null(h->f);
  fake_natpmp_set_time(h->f, h->now);
  fake_natpmp_set_epoch(h->f, 5000); /* up for a while */
  portmap_config_init(&h->cfg);
  h->cfg.gateway = GW;
  h->cfg.backends = PORTMAP_BACKEND_NATPMP;
  h->announce_port = test_free_udp_port(INADDR_LOOPBACK);
  h->cfg.announce_port = h->announce_port;
  h->cfg.clock_cb = h_clock;
  h->cfg.clock_user = h;
  h->cfg.random_cb = h_random;
  h->cfg.random_user = h;
  h->cfg.destroy_timeout_ms = 100;
  *state = h;
  return 0;
}

static int teardown(void **state) {
  h_t *h = *state;
  if (h->c != NULL)
    test_free_answered(h->c, &fake_natpmp_ops, h->f);
  fake_natpmp_free(h->f);
  free(h);
  return 0;
}

/* Let datagrams cross loopback: client sends, fake answers, client reads. */
static void pump(h_t *h) {
  test_pump(h->c, &fake_natpmp_ops, h->f, h->now, 16);
}

static void pump_cb(void *h) {
  pump(h);
}

/* Run every timer due up to now + ms, pumping at each step. */
static void advance(h_t *h, uint64_t ms) {
  test_advance(h->c, &h->now, ms, pump_cb, h);
}

static size_t count_events(h_t *h, portmap_event_t e) {
  return test_ev_count(h->ev, h->n_ev, e);
}

static const ev_t *last_event(h_t *h) {
  assert_true(h->n_ev > 0);
  return &h->ev[h->n_ev - 1];
}

static const ev_t *find_event(h_t *h, portmap_event_t e) {
  const ev_t *found = test_ev_find(h->ev, h->n_ev, e);
  if (found == NULL)
    fail_msg("no event %d", (int)e);
  return found;
}

static portmap_mapping_t *map_req(h_t *h, portmap_request_t *req) {
  portmap_mapping_t *m = NULL;
  assert_int_equal(portmap_map(h->c, req, h_cb, h, &m), PORTMAP_OK);
  return m;
}

static portmap_mapping_t *map_proto(h_t *h, int proto, uint16_t port, uint32_t lifetime) {
  portmap_request_t req;
  portmap_request_init(&req);
  req.protocol = proto;
  req.internal_port = port;
  req.lifetime = lifetime;
  return map_req(h, &req);
}

static portmap_mapping_t *map_tcp(h_t *h, uint16_t port, uint32_t lifetime) {
  return map_proto(h, PORTMAP_PROTO_TCP, port, lifetime);
}

static uint16_t rd16(const uint8_t *p) {
  return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t rd32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The i-th logged request with this opcode and (for mappings) internal
 * port (0 = any), or NULL. */
static const fake_natpmp_request_t *nth_request(h_t *h, int op, uint16_t iport, size_t i) {
  for (size_t k = 0; k < fake_natpmp_log_count(h->f); k++) {
    const fake_natpmp_request_t *r = fake_natpmp_log_get(h->f, k);
    if (r->opcode != op)
      continue;
    if (iport != 0 && (r->stored < 6 || rd16(r->data + 4) != iport))
      continue;
    if (i-- == 0)
      return r;
  }
  return NULL;
}

static size_t count_requests(h_t *h, int op, uint16_t iport) {
  size_t n = 0;
  while (nth_request(h, op, iport, n) != NULL)
    n++;
  return n;
}

static portmap_stats_t stats(h_t *h) {
  portmap_stats_t st;
  assert_int_equal(portmap_client_stats(h->c, &st), PORTMAP_OK);
  return st;
}

static socklen_t announce_to(h_t *h, struct sockaddr_in *sin) {
  memset(sin, 0, sizeof *sin);
  sin->sin_family = AF_INET;
  sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sin->sin_port = htons(h->announce_port);
  return sizeof *sin;
}

static void v4(uint8_t out[16], uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  memset(out, 0, 16);
  out[10] = out[11] = 0xff;
  out[12] = a;
  out[13] = b;
  out[14] = c;
  out[15] = d;
}

/* ---- N2, N3: the messages ---- */

static void test_N2_N3_opcodes_fields_tcp_udp(void **state) {
  h_t *h = *state;
  client_up(h);
  map_tcp(h, 8000, 0);
  pump(h);
  assert_int_equal(count_events(h, PORTMAP_EVENT_MAPPED), 1);
  const ev_t *e = last_event(h);
  assert_int_equal(e->info.backend, PORTMAP_BACKEND_NATPMP);
  assert_int_equal(e->info.protocol, PORTMAP_PROTO_TCP);
  assert_int_equal(e->info.external_port, 8000);
  assert_string_equal(e->info.external_address_str, "203.0.113.7");
  assert_int_equal(e->info.lifetime, 7200); /* N3: the recommended default */
  assert_int_equal(e->info.expires_in_ms, 7200000);
  assert_int_equal(e->info.gateway_result, 0);
  assert_int_equal(e->info.external_is_private, 0);
  /* the public address request goes first: version 0, opcode 0, 2 octets */
  const fake_natpmp_request_t *pub = fake_natpmp_log_get(h->f, 0);
  assert_int_equal(pub->len, 2);
  assert_int_equal(pub->data[0], 0);
  assert_int_equal(pub->data[1], 0);
  /* N2: TCP is opcode 2; 12 octets; N3: requested lifetime 7200 */
  const fake_natpmp_request_t *r = nth_request(h, OP_TCP, 8000, 0);
  assert_non_null(r);
  assert_int_equal(r->len, 12);
  assert_int_equal(r->data[0], 0);
  assert_int_equal(r->data[2], 0);
  assert_int_equal(r->data[3], 0);
  assert_int_equal(rd16(r->data + 4), 8000);
  assert_int_equal(rd32(r->data + 8), 7200);
  /* N2: UDP is opcode 1 */
  map_proto(h, PORTMAP_PROTO_UDP, 9000, 600);
  pump(h);
  assert_int_equal(count_events(h, PORTMAP_EVENT_MAPPED), 2);
  assert_int_equal(last_event(h)->info.protocol, PORTMAP_PROTO_UDP);
  assert_int_equal(last_event(h)->info.lifetime, 600);
  r = nth_request(h, OP_UDP, 9000, 0);
  assert_non_null(r);
  assert_int_equal(r->len, 12);
  assert_int_equal(rd32(r->data + 8), 600);
  assert_int_equal(nth_request(h, OP_TCP, 9000, 0), NULL);
  /* the public address is asked once per gateway */
  assert_int_equal(fake_natpmp_requests(h->f, 0), 1);
  assert_int_equal(fake_natpmp_find_mapping(h->f, OP_UDP, 9000) >= 0, 1);
}

static void test_N2_response_opcode_is_128_plus_op(void **state) {
  h_t *h = *state;
  client_up(h);
  fake_natpmp_set_hold(h->f, 1);
  map_tcp(h, 8000, 3600);
  pump(h);
  fake_natpmp_release(h->f); /* the public address answer */
  pump(h);
  const fake_natpmp_request_t *r = nth_request(h, OP_TCP, 8000, 0);
  assert_non_null(r);
  /* answers the client must not take: 129 (UDP) for a TCP request, and a
   * TCP answer for another internal port */
  uint32_t ep = fake_natpmp_epoch(h->f);
  uint8_t udp[16] = {0,
                     129,
                     0,
                     0,
                     (uint8_t)(ep >> 24),
                     (uint8_t)(ep >> 16),
                     (uint8_t)(ep >> 8),
                     (uint8_t)ep,
                     0x1f,
                     0x40,
                     0x1f,
                     0x40,
                     0,
                     0,
                     0x0e,
                     0x10};
  uint8_t other[16];
  memcpy(other, udp, 16);
  other[1] = 130;
  other[9] = 0x41; /* internal port 8001 */
  assert_int_equal(
      fake_natpmp_send_raw(h->f, (const struct sockaddr *)&r->from, r->fromlen, udp, sizeof udp, 0),
      0);
  assert_int_equal(fake_natpmp_send_raw(h->f, (const struct sockaddr *)&r->from, r->fromlen, other,
                                        sizeof other, 0),
                   0);
  pump(h);
  assert_int_equal(count_events(h, PORTMAP_EVENT_MAPPED), 0);
  assert_int_equal(stats(h).unmatched, 2);
  /* the real answer, opcode 130 */
  fake_natpmp_set_hold(h->f, 0);
  fake_natpmp_release(h->f);
  pump(h);
  assert_int_equal(count_events(h, PORTMAP_EVENT_MAPPED), 1);
}

static void test_N2_malformed_and_duplicate_responses(void **state) {
  h_t *h = *state;
  client_up(h);
  /* libnatpmp would take a 4-octet datagram as a success with stale bytes */
  fake_natpmp_truncate_next(h->f, 2, 4);
  map_tcp(h, 8000, 3600);
  pump(h);
  assert_int_equal(count_events(h, PORTMAP_EVENT_MAPPED), 0);
  assert_int_equal(stats(h).malformed, 1);
  advance(h, 250); /* the public address request is retransmitted */
  assert_int_equal(stats(h).malformed, 2);
  fake_natpmp_set_duplicates(h->f, 3);
  advance(h, 500);
  assert_int_equal(count_events(h, PORTMAP_EVENT_MAPPED), 1);
  assert_int_equal(last_event(h)->info.external_port, 8000);
  portmap_stats_t st = stats(h);
  assert_true(st.unmatched >= 2); /* the duplicates */
  assert_int_equal(st.malformed, 2);
  advance(h, 10000);
  assert_int_equal(h->n_ev, 1);
}

/* ---- N1: retransmission ---- */

static void test_N1_retransmit_250ms_doubling_9_tries_then_timeout(void **state) {
  h_t *h = *state;
  client_up(h);
  fake_natpmp_set_ignore_opcode(h->f, OP_TCP, 1); /* answers the public address only */
  map_tcp(h, 8000, 3600);
  advance(h, 200000);
  assert_int_equal(count_requests(h, OP_TCP, 8000), 9);
  const fake_natpmp_request_t *first = nth_request(h, OP_TCP, 8000, 0);
  uint64_t expect = 250;
  for (size_t i = 1; i < 9; i++) {
    const fake_natpmp_request_t *a = nth_request(h, OP_TCP, 8000, i - 1);
    const fake_natpmp_request_t *b = nth_request(h, OP_TCP, 8000, i);
    assert_int_equal(b->time_ms - a->time_ms, expect); /* 250, 500, 1000, ... */
    expect *= 2;
    /* the identical request each time */
    assert_int_equal(b->len, first->len);
    assert_memory_equal(b->data, first->data, first->len);
  }
  assert_int_equal(count_events(h, PORTMAP_EVENT_FAILED), 1);
  const ev_t *e = last_event(h);
  assert_int_equal(e->info.status, PORTMAP_ERR_TIMEOUT);
  assert_int_equal(e->info.gateway_result, -1);
  /* given up 64 s after the ninth send */
  const fake_natpmp_request_t *ninth = nth_request(h, OP_TCP, 8000, 8);
  assert_int_equal(e->at - ninth->time_ms, 64000);
  assert_int_equal(e->at - first->time_ms, 127750);
  assert_int_equal(stats(h).retransmissions, 8);
}

static void test_N1_budget_configurable(void **state) {
  h_t *h = *state;
  h->cfg.natpmp_irt_ms = 100;
  h->cfg.natpmp_max_tries = 3;
  client_up(h);
  fake_natpmp_set_ignore_opcode(h->f, OP_TCP, 1);
  map_tcp(h, 8000, 3600);
  advance(h, 10000);
  assert_int_equal(count_requests(h, OP_TCP, 8000), 3);
  const fake_natpmp_request_t *r0 = nth_request(h, OP_TCP, 8000, 0);
  assert_int_equal(nth_request(h, OP_TCP, 8000, 1)->time_ms - r0->time_ms, 100);
  assert_int_equal(nth_request(h, OP_TCP, 8000, 2)->time_ms - r0->time_ms, 300);
  assert_int_equal(count_events(h, PORTMAP_EVENT_FAILED), 1);
  assert_int_equal(last_event(h)->info.status, PORTMAP_ERR_TIMEOUT);
  assert_int_equal(last_event(h)->at - r0->time_ms, 100 + 200 + 400);
}

static void test_N1_silent_gateway_fails_waiting_mappings(void **state) {
  h_t *h = *state;
  h->cfg.natpmp_irt_ms = 100;
  h->cfg.natpmp_max_tries = 3;
  client_up(h);
  fake_natpmp_set_silent(h->f, 1);
  uint64_t t0 = h->now;
  map_tcp(h, 8000, 3600);
  map_proto(h, PORTMAP_PROTO_UDP, 8001, 3600);
  advance(h, 10000);
  /* the public address request went unanswered 3 times: no NAT-PMP here,
   * and the mappings queued behind it fail without trying on their own */
  assert_int_equal(count_requests(h, 0, 0), 3);
  assert_int_equal(count_requests(h, OP_TCP, 0) + count_requests(h, OP_UDP, 0), 0);
  assert_int_equal(count_events(h, PORTMAP_EVENT_FAILED), 2);
  for (size_t i = 0; i < h->n_ev; i++) {
    assert_int_equal(h->ev[i].info.status, PORTMAP_ERR_TIMEOUT);
    assert_int_equal(h->ev[i].at - t0, 700);
  }
}

static void test_N1_request_timeout_bounds_new_mapping(void **state) {
  h_t *h = *state;
  h->cfg.request_timeout_ms = 2000;
  client_up(h);
  fake_natpmp_set_ignore_opcode(h->f, OP_TCP, 1);
  uint64_t t0 = h->now;
  map_tcp(h, 8000, 3600);
  advance(h, 10000);
  assert_int_equal(count_events(h, PORTMAP_EVENT_FAILED), 1);
  assert_int_equal(last_event(h)->info.status, PORTMAP_ERR_TIMEOUT);
  assert_int_equal(last_event(h)->at - t0, 2000);
}

/* ---- N3: renewal ---- */

static void test_N3_renew_at_half_the_granted_lifetime(void **state) {
  h_t *h = *state;
  client_up(h);
  map_tcp(h, 8000, 0);
  pump(h);
  assert_int_equal(count_events(h, PORTMAP_EVENT_MAPPED), 1);
  uint64_t t0 = h->now;
  advance(h, 3599000);
  assert_int_equal(count_requests(h, OP_TCP, 8000), 1);
  advance(h, 1000);
  assert_int_equal(count_requests(h, OP_TCP, 8000), 2);
  assert_int_equal(count_events(h, PORTMAP_EVENT_RENEWED), 1);
  const fake_natpmp_request_t *r = nth_request(h, OP_TCP, 8000, 1);
  assert_int_equal(r->time_ms - t0, 3600000);
  assert_int_equal(rd16(r->data + 6), 8000); /* suggests what it was given */
  assert_int_equal(rd32(r->data + 8), 7200);
  assert_int_equal(last_event(h)->info.expires_in_ms, 7200000);
  /* and again half of the new grant later */
  advance(h, 3600000);
  assert_int_equal(count_requests(h, OP_TCP, 8000), 3);
  assert_int_equal(count_events(h, PORTMAP_EVENT_RENEWED), 2);
  assert_int_equal(count_events(h, PORTMAP_EVENT_LOST), 0);
}

static void test_N3_Q23_Q24_short_grant_schedules_from_granted(void **state) {
  h_t *h = *state;
  client_up(h);
  fake_natpmp_set_fixed_lifetime(h->f, 60); /* a VPN gateway's 60 s (Q23) */
  map_tcp(h, 8000, 3600);
  pump(h);
  const ev_t *e = find_event(h, PORTMAP_EVENT_MAPPED);
  assert_int_equal(e->info.lifetime, 60);
  assert_int_equal(rd32(nth_request(h, OP_TCP, 8000, 0)->data + 8), 3600);
  uint64_t t0 = h->now;
  advance(h, 29999);
  assert_int_equal(count_requests(h, OP_TCP, 8000), 1);
  advance(h, 1);
  assert_int_equal(count_requests(h, OP_TCP, 8000), 2);
  advance(h, 30000);
  assert_int_equal(count_requests(h, OP_TCP, 8000), 3);
  assert_int_equal(nth_request(h, OP_TCP, 8000, 2)->time_ms - t0, 60000);
  assert_int_equal(count_events(h, PORTMAP_EVENT_RENEWED), 2);
  /* a clamp (Q24): the mapping follows the new grant */
  fake_natpmp_set_fixed_lifetime(h->f, 0);
  fake_natpmp_set_lifetime_limits(h->f, 120, 300);
  advance(h, 30000);
  assert_int_equal(last_event(h)->info.lifetime, 300);
  advance(h, 149000);
  assert_int_equal(count_requests(h, OP_TCP, 8000), 4);
  advance(h, 1000);
  assert_int_equal(count_requests(h, OP_TCP, 8000), 5);
  assert_int_equal(count_events(h, PORTMAP_EVENT_LOST), 0);
}

static void test_N3_lost_after_expiry_then_recreated(void **state) {
  h_t *h = *state;
  client_up(h);
  fake_natpmp_set_fixed_lifetime(h->f, 60);
  map_tcp(h, 8000, 3600);
  pump(h);
  assert_int_equal(count_events(h, PORTMAP_EVENT_MAPPED), 1);
  fake_natpmp_set_silent(h->f, 1);
  advance(h, 59999);
  assert_int_equal(count_events(h, PORTMAP_EVENT_LOST), 0);
  advance(h, 1);
  /* mapped ones keep retrying until expiry, then LOST */
  assert_int_equal(count_events(h, PORTMAP_EVENT_LOST), 1);
  assert_int_equal(last_event(h)->info.status, PORTMAP_ERR_TIMEOUT);
  assert_int_equal(last_event(h)->info.lifetime, 0);
  advance(h, 300000);
  assert_int_equal(count_events(h, PORTMAP_EVENT_FAILED), 0); /* never gives up */
  size_t before = count_requests(h, OP_TCP, 8000);
  fake_natpmp_set_silent(h->f, 0);
  advance(h, 40000);
  assert_true(count_requests(h, OP_TCP, 8000) > before);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_RENEWED);
  assert_int_equal(last_event(h)->info.external_port, 8000);
}

static void test_N3_once_not_renewed(void **state) {
  h_t *h = *state;
  client_up(h);
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = 8000;
  req.lifetime = 100;
  req.flags = PORTMAP_FLAG_ONCE;
  map_req(h, &req);
  pump(h);
  assert_int_equal(count_events(h, PORTMAP_EVENT_MAPPED), 1);
  advance(h, 100000);
  assert_int_equal(count_requests(h, OP_TCP, 8000), 1);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_DELETED);
}

/* ---- N4: delete ---- */

static void test_N4_delete_lifetime_0_external_port_0(void **state) {
  h_t *h = *state;
  client_up(h);
  portmap_mapping_t *m = map_tcp(h, 8000, 3600);
  pump(h);
  assert_int_equal(fake_natpmp_mapping_count(h->f), 1);
  assert_int_equal(portmap_mapping_revoke(m), PORTMAP_OK);
  pump(h);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_DELETED);
  assert_int_equal(last_event(h)->info.status, PORTMAP_OK);
  const fake_natpmp_request_t *d = nth_request(h, OP_TCP, 8000, 1);
  assert_non_null(d);
  assert_int_equal(d->len, 12);
  assert_int_equal(rd16(d->data + 4), 8000);
  assert_int_equal(rd16(d->data + 6), 0); /* suggested external port 0 */
  assert_int_equal(rd32(d->data + 8), 0); /* lifetime 0 */
  assert_int_equal(fake_natpmp_mapping_count(h->f), 0);
}

static void test_N4_delete_retransmitted_bounded(void **state) {
  h_t *h = *state;
  client_up(h);
  portmap_mapping_t *m = map_tcp(h, 8000, 3600);
  pump(h);
  fake_natpmp_set_silent(h->f, 1);
  uint64_t t0 = h->now;
  assert_int_equal(portmap_mapping_revoke(m), PORTMAP_OK);
  advance(h, 20000);
  assert_int_equal(count_requests(h, OP_TCP, 8000), 1 + 4);
  for (size_t i = 1; i < 5; i++)
    assert_int_equal(rd32(nth_request(h, OP_TCP, 8000, i)->data + 8), 0);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_FAILED);
  assert_int_equal(last_event(h)->info.status, PORTMAP_ERR_TIMEOUT);
  assert_int_equal(last_event(h)->at - t0, 250 + 500 + 1000 + 2000);
}

static void test_N4_delete_flag_for_a_mapping_made_earlier(void **state) {
  h_t *h = *state;
  client_up(h);
  portmap_mapping_t *m = map_tcp(h, 8000, 3600);
  pump(h);
  assert_int_equal(portmap_mapping_detach(m), PORTMAP_OK); /* forget it, keep it */
  assert_int_equal(portmap_client_free(h->c), PORTMAP_OK);
  h->c = NULL;
  assert_int_equal(fake_natpmp_mapping_count(h->f), 1);
  /* a later process deletes it */
  client_up(h);
  fake_natpmp_log_clear(h->f);
  h->n_ev = 0;
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = 8000;
  req.flags = PORTMAP_FLAG_DELETE;
  map_req(h, &req);
  pump(h);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_DELETED);
  assert_int_equal(fake_natpmp_mapping_count(h->f), 0);
  assert_int_equal(fake_natpmp_log_count(h->f), 1); /* no public address request */
  assert_int_equal(rd16(fake_natpmp_log_get(h->f, 0)->data + 6), 0);
  assert_int_equal(rd32(fake_natpmp_log_get(h->f, 0)->data + 8), 0);
}

static void test_N4_revoke_before_sending_sends_nothing(void **state) {
  h_t *h = *state;
  client_up(h);
  fake_natpmp_set_hold(h->f, 1);
  map_tcp(h, 8000, 3600);
  portmap_mapping_t *b = map_tcp(h, 8001, 3600);
  pump(h); /* public address in flight (held), both mappings wait */
  assert_int_equal(portmap_mapping_revoke(b), PORTMAP_OK);
  pump(h);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_DELETED);
  fake_natpmp_set_hold(h->f, 0);
  fake_natpmp_release(h->f);
  pump(h);
  assert_int_equal(count_events(h, PORTMAP_EVENT_MAPPED), 1);
  assert_int_equal(count_requests(h, OP_TCP, 8001), 0);
}

/* ---- N5: epoch ---- */

static void test_N5_reboot_renews_every_mapping_at_once(void **state) {
  h_t *h = *state;
  client_up(h);
  map_tcp(h, 8000, 600); /* renews at 300 s */
  map_tcp(h, 8001, 7200);
  map_proto(h, PORTMAP_PROTO_UDP, 8002, 7200);
  pump(h);
  assert_int_equal(count_events(h, PORTMAP_EVENT_MAPPED), 3);
  uint64_t t0 = h->now;
  advance(h, 100000);
  fake_natpmp_reboot(h->f, h->now); /* table wiped, epoch 0 */
  advance(h, 200000);
  /* the renewal at 300 s sees epoch 200 where about 5262 was due: renew
   * every other mapping at once, not at 3600 s */
  assert_int_equal(count_requests(h, OP_TCP, 8000), 2);
  assert_int_equal(count_requests(h, OP_TCP, 8001), 2);
  assert_int_equal(count_requests(h, OP_UDP, 8002), 2);
  assert_int_equal(nth_request(h, OP_TCP, 8001, 1)->time_ms - t0, 300000);
  assert_int_equal(nth_request(h, OP_UDP, 8002, 1)->time_ms - t0, 300000);
  assert_int_equal(fake_natpmp_mapping_count(h->f), 3);
  assert_int_equal(stats(h).epoch_invalid, 1);
  assert_int_equal(count_events(h, PORTMAP_EVENT_FAILED), 0);
  /* no storm: the next renewals are on schedule */
  advance(h, 100000);
  assert_int_equal(count_requests(h, OP_TCP, 8001), 2);
  assert_int_equal(stats(h).epoch_invalid, 1);
}

static void test_N5_consistent_epoch_renews_nothing(void **state) {
  h_t *h = *state;
  client_up(h);
  map_tcp(h, 8000, 600);
  map_tcp(h, 8001, 7200);
  pump(h);
  advance(h, 300000);
  assert_int_equal(count_requests(h, OP_TCP, 8000), 2);
  assert_int_equal(count_requests(h, OP_TCP, 8001), 1);
  /* an epoch that runs a little slow (within 7/8 and 2 s) or jumps ahead */
  fake_natpmp_set_epoch(h->f, fake_natpmp_epoch(h->f) + 100000);
  advance(h, 300000);
  assert_int_equal(count_requests(h, OP_TCP, 8000), 3);
  assert_int_equal(count_requests(h, OP_TCP, 8001), 1);
  fake_natpmp_set_epoch(h->f, fake_natpmp_epoch(h->f) - 30); /* 300 s * 1/8 = 37.5 s slack */
  advance(h, 300000);
  assert_int_equal(count_requests(h, OP_TCP, 8000), 4);
  assert_int_equal(count_requests(h, OP_TCP, 8001), 1);
  assert_int_equal(stats(h).epoch_invalid, 0);
}

/* ---- N6: gratuitous announcements ---- */

static void test_N6_announcement_from_gateway_changes_address(void **state) {
  h_t *h = *state;
  client_up(h);
  map_tcp(h, 8000, 3600);
  pump(h);
  assert_string_equal(last_event(h)->info.external_address_str, "203.0.113.7");
  uint8_t a[16];
  v4(a, 198, 51, 100, 99);
  fake_natpmp_set_external(h->f, a);
  struct sockaddr_in to;
  socklen_t tl = announce_to(h, &to);
  assert_int_equal(fake_natpmp_send_announce(h->f, (struct sockaddr *)&to, tl), 0);
  pump(h);
  assert_int_equal(count_events(h, PORTMAP_EVENT_CHANGED), 1);
  assert_string_equal(last_event(h)->info.external_address_str, "198.51.100.99");
  assert_int_equal(last_event(h)->info.external_port, 8000);
  /* the same address again is no news */
  assert_int_equal(fake_natpmp_send_announce(h->f, (struct sockaddr *)&to, tl), 0);
  pump(h);
  assert_int_equal(count_events(h, PORTMAP_EVENT_CHANGED), 1);
  /* an announcement after a reboot (N5) renews at once */
  fake_natpmp_reboot(h->f, h->now);
  assert_int_equal(fake_natpmp_send_announce(h->f, (struct sockaddr *)&to, tl), 0);
  pump(h);
  assert_int_equal(count_requests(h, OP_TCP, 8000), 2);
  assert_int_equal(fake_natpmp_mapping_count(h->f), 1);
  assert_int_equal(stats(h).epoch_invalid, 1);
}

static void test_N6_announcement_from_elsewhere_dropped(void **state) {
  h_t *h = *state;
  client_up(h);
  map_tcp(h, 8000, 3600);
  pump(h);
  uint32_t ep = fake_natpmp_epoch(h->f);
  uint8_t ann[12] = {
      0,   128, 0,   0, (uint8_t)(ep >> 24), (uint8_t)(ep >> 16), (uint8_t)(ep >> 8), (uint8_t)ep,
      198, 51,  100, 66};
  struct sockaddr_in to;
  socklen_t tl = announce_to(h, &to);
  /* the gateway's address, another port */
  assert_int_equal(fake_natpmp_send_raw(h->f, (struct sockaddr *)&to, tl, ann, sizeof ann, 1), 0);
  /* another host */
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  assert_true(s >= 0);
  assert_int_equal(sendto(s, ann, sizeof ann, 0, (struct sockaddr *)&to, tl), (ssize_t)sizeof ann);
  close(s);
  pump(h);
  assert_int_equal(count_events(h, PORTMAP_EVENT_CHANGED), 0);
  assert_int_equal(stats(h).spoofed, 2);
  portmap_info_t info;
  assert_int_equal(portmap_mapping_info(last_event(h)->m, &info), PORTMAP_OK);
  assert_string_equal(info.external_address_str, "203.0.113.7");
  /* the real one still works */
  assert_int_equal(fake_natpmp_send_raw(h->f, (struct sockaddr *)&to, tl, ann, sizeof ann, 0), 0);
  pump(h);
  assert_int_equal(count_events(h, PORTMAP_EVENT_CHANGED), 1);
  assert_string_equal(last_event(h)->info.external_address_str, "198.51.100.66");
}

/* ---- N7: lifetime 0 ---- */

static void test_N7_lifetime_0_is_never_permanent(void **state) {
  h_t *h = *state;
  client_up(h);
  fake_natpmp_set_grant_zero(h->f, 1);
  map_tcp(h, 8000, 0);
  pump(h);
  /* a grant of 0 is no mapping */
  assert_int_equal(count_events(h, PORTMAP_EVENT_MAPPED), 0);
  assert_int_equal(count_events(h, PORTMAP_EVENT_LOST), 1);
  assert_int_equal(last_event(h)->info.status, PORTMAP_ERR_REFUSED);
  /* the request never asked for 0 */
  assert_int_equal(rd32(nth_request(h, OP_TCP, 8000, 0)->data + 8), 7200);
  fake_natpmp_set_grant_zero(h->f, 0);
  advance(h, 29999);
  assert_int_equal(count_requests(h, OP_TCP, 8000), 1);
  advance(h, 1);
  assert_int_equal(count_requests(h, OP_TCP, 8000), 2);
  assert_int_equal(rd32(nth_request(h, OP_TCP, 8000, 1)->data + 8), 7200);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_MAPPED);
  assert_int_equal(last_event(h)->info.lifetime, 7200);
}

/* ---- quirks ---- */

static void test_Q15_suggests_internal_port_never_0(void **state) {
  h_t *h = *state;
  client_up(h);
  fake_natpmp_set_q15(h->f, 1); /* MikroTik: suggested port 0 refused */
  map_tcp(h, 8000, 3600);
  pump(h);
  assert_int_equal(rd16(nth_request(h, OP_TCP, 8000, 0)->data + 6), 8000);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_MAPPED);
  assert_int_equal(last_event(h)->info.external_port, 8000);
  /* the application's suggestion wins */
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = 8001;
  req.external_port = 9001;
  map_req(h, &req);
  pump(h);
  assert_int_equal(rd16(nth_request(h, OP_TCP, 8001, 0)->data + 6), 9001);
  assert_int_equal(last_event(h)->info.external_port, 9001);
}

static void test_Q16_result_2_failed_refused(void **state) {
  h_t *h = *state;
  client_up(h);
  fake_natpmp_force_result(h->f, FAKE_NATPMP_REFUSED, 100); /* NAT-PMP disabled */
  map_tcp(h, 8000, 3600);
  pump(h);
  assert_int_equal(count_events(h, PORTMAP_EVENT_FAILED), 1);
  const ev_t *e = last_event(h);
  assert_int_equal(e->info.status, PORTMAP_ERR_REFUSED);
  assert_int_equal(e->info.gateway_result, 2);
  assert_int_equal(e->info.backend, PORTMAP_BACKEND_NATPMP);
  advance(h, 100000);
  assert_int_equal(count_requests(h, OP_TCP, 8000), 1); /* not retried */
}

static void test_N2_results_1_and_5_failed_refused(void **state) {
  h_t *h = *state;
  client_up(h);
  fake_natpmp_force_result(h->f, FAKE_NATPMP_UNSUPP_VERSION, 2);
  map_tcp(h, 8000, 3600);
  pump(h);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_FAILED);
  assert_int_equal(last_event(h)->info.status, PORTMAP_ERR_REFUSED);
  assert_int_equal(last_event(h)->info.gateway_result, 1);
  fake_natpmp_force_result(h->f, FAKE_NATPMP_UNSUPP_OPCODE, 1);
  map_tcp(h, 8001, 3600);
  pump(h);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_FAILED);
  assert_int_equal(last_event(h)->info.gateway_result, 5);
  /* a code RFC 6886 does not define is a refusal too */
  fake_natpmp_force_result(h->f, 77, 1);
  map_tcp(h, 8002, 3600);
  pump(h);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_FAILED);
  assert_int_equal(last_event(h)->info.gateway_result, 77);
}

static void test_N2_results_3_and_4_lost_back_off_30s(void **state) {
  h_t *h = *state;
  client_up(h);
  fake_natpmp_force_result(h->f, FAKE_NATPMP_NETWORK_FAILURE, 2); /* public address + map */
  map_tcp(h, 8000, 3600);
  pump(h);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_LOST);
  assert_int_equal(last_event(h)->info.status, PORTMAP_ERR_REFUSED);
  assert_int_equal(last_event(h)->info.gateway_result, 3);
  fake_natpmp_force_result(h->f, FAKE_NATPMP_NO_RESOURCES, 1);
  advance(h, 30000);
  assert_int_equal(count_requests(h, OP_TCP, 8000), 2);
  assert_int_equal(last_event(h)->info.gateway_result, 4);
  advance(h, 29999);
  assert_int_equal(count_requests(h, OP_TCP, 8000), 2);
  advance(h, 1);
  assert_int_equal(count_requests(h, OP_TCP, 8000), 3);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_MAPPED);
  assert_int_equal(last_event(h)->info.gateway_result, 0);
}

static void test_Q21_closed_port_unreachable_at_once(void **state) {
  h_t *h = *state;
  h->cfg.gateway = GW_CLOSED;
  client_up(h);
  uint64_t t0 = h->now;
  map_tcp(h, 8000, 3600);
  map_proto(h, PORTMAP_PROTO_UDP, 8001, 3600);
  for (int i = 0; i < 10 && h->n_ev < 2; i++)
    pump(h);
  assert_int_equal(count_events(h, PORTMAP_EVENT_FAILED), 2);
  for (size_t i = 0; i < h->n_ev; i++) {
    assert_int_equal(h->ev[i].info.status, PORTMAP_ERR_UNREACHABLE);
    assert_int_equal(h->ev[i].info.backend, PORTMAP_BACKEND_NATPMP);
    assert_int_equal(h->ev[i].at, t0); /* no timeout waited */
  }
  /* an explicit delete learns it too: it did not happen here */
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = 8000;
  req.flags = PORTMAP_FLAG_DELETE;
  map_req(h, &req);
  for (int i = 0; i < 10 && h->n_ev < 3; i++)
    pump(h);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_FAILED);
  assert_int_equal(last_event(h)->info.status, PORTMAP_ERR_UNREACHABLE);
}

static void test_unsupported_requests_rejected(void **state) {
  h_t *h = *state;
  client_up(h);
  portmap_request_t req;
  portmap_mapping_t *m = NULL;
  portmap_filter_t filt = {"192.0.2.0", 24, 0};

  portmap_request_init(&req);
  req.internal_port = 8000;
  req.peer_address = "192.0.2.1";
  req.peer_port = 80;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, &m), PORTMAP_ERR_UNSUPPORTED);

  portmap_request_init(&req);
  req.internal_port = 8000;
  req.filters = &filt;
  req.n_filters = 1;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, &m), PORTMAP_ERR_UNSUPPORTED);

  portmap_request_init(&req);
  req.internal_port = 8000;
  req.third_party = "127.0.0.5";
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, &m), PORTMAP_ERR_UNSUPPORTED);

  portmap_request_init(&req);
  req.internal_port = 8000;
  req.flags = PORTMAP_FLAG_PREFER_FAILURE;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, &m), PORTMAP_ERR_UNSUPPORTED);

  portmap_request_init(&req);
  req.internal_port = 8000;
  req.ipv6 = 1;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, &m), PORTMAP_ERR_UNSUPPORTED);

  portmap_request_init(&req);
  req.protocol = PORTMAP_PROTO_ALL;
  req.internal_port = 0;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, &m), PORTMAP_ERR_UNSUPPORTED);

  portmap_request_init(&req);
  req.protocol = 132; /* SCTP */
  req.internal_port = 8000;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, &m), PORTMAP_ERR_UNSUPPORTED);
  assert_null(m);
  pump(h);
  assert_int_equal(fake_natpmp_received(h->f), 0);

  /* a DESCRIPTION is not an error: NAT-PMP simply has none */
  portmap_request_init(&req);
  req.internal_port = 8000;
  req.description = "my server";
  map_req(h, &req);
  pump(h);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_MAPPED);
  assert_int_equal(nth_request(h, OP_TCP, 8000, 0)->len, 12);
}

/* Mapping requests wait for the public address answer (their MAPPED
 * carries the address), then go out together: a window of requests in
 * flight (PORTMAP_PACE_WINDOW; test_pacing fills it). */
static void test_requests_after_public_address_in_window(void **state) {
  h_t *h = *state;
  client_up(h);
  fake_natpmp_set_hold(h->f, 1);
  map_tcp(h, 8000, 3600);
  map_tcp(h, 8001, 3600);
  pump(h);
  pump(h);
  assert_int_equal(fake_natpmp_log_count(h->f), 1); /* the public address only */
  assert_int_equal(fake_natpmp_release(h->f), 1);
  pump(h);
  assert_int_equal(fake_natpmp_log_count(h->f), 3); /* both, without waiting for each other */
  assert_int_equal(count_requests(h, OP_TCP, 8000), 1);
  assert_int_equal(count_requests(h, OP_TCP, 8001), 1);
  assert_int_equal(count_events(h, PORTMAP_EVENT_MAPPED), 0);
  fake_natpmp_set_hold(h->f, 0);
  assert_int_equal(fake_natpmp_release(h->f), 2);
  pump(h);
  assert_int_equal(count_events(h, PORTMAP_EVENT_MAPPED), 2);
  assert_string_equal(last_event(h)->info.external_address_str, "203.0.113.7");
}

/* Two requests for the same protocol and internal port are never in
 * flight together (their answers could not be told apart): the second
 * waits for the first one's answer. */
static void test_same_port_waits_for_the_first(void **state) {
  h_t *h = *state;
  client_up(h);
  map_tcp(h, 8000, 3600);
  pump(h);
  assert_int_equal(count_events(h, PORTMAP_EVENT_MAPPED), 1);
  fake_natpmp_set_hold(h->f, 1);
  map_tcp(h, 8000, 3600); /* the same port again, twice */
  map_tcp(h, 8000, 3600);
  map_tcp(h, 8001, 3600);
  pump(h);
  assert_int_equal(count_requests(h, OP_TCP, 8000), 2); /* the first, and one of the two */
  assert_int_equal(count_requests(h, OP_TCP, 8001), 0); /* behind the other in the FIFO */
  assert_int_equal(fake_natpmp_release(h->f), 1);
  pump(h);
  assert_int_equal(count_events(h, PORTMAP_EVENT_MAPPED), 2);
  assert_int_equal(count_requests(h, OP_TCP, 8000), 3);
  assert_int_equal(count_requests(h, OP_TCP, 8001), 1);
  fake_natpmp_set_hold(h->f, 0);
  fake_natpmp_release(h->f);
  pump(h);
  assert_int_equal(count_events(h, PORTMAP_EVENT_MAPPED), 4);
}

static void test_free_deletes_every_mapping(void **state) {
  h_t *h = *state;
  client_up(h);
  map_tcp(h, 8000, 3600);
  map_proto(h, PORTMAP_PROTO_UDP, 8000, 3600);
  pump(h);
  assert_int_equal(fake_natpmp_mapping_count(h->f), 2);
  test_fake_runner_t r;
  test_fake_runner_start(&r, &fake_natpmp_ops, h->f);
  assert_int_equal(portmap_client_free(h->c), PORTMAP_OK);
  h->c = NULL;
  test_fake_runner_stop(&r);
  assert_int_equal(fake_natpmp_mapping_count(h->f), 0);
  assert_int_equal(count_events(h, PORTMAP_EVENT_DELETED), 2);
}

/* ---- the probe ---- */

static void test_probe_reports_available_address_epoch_rtt(void **state) {
  h_t *h = *state;
  h->cfg.clock_cb = NULL; /* the blocking call runs on real time */
  client_up(h);
  uint8_t a[16];
  v4(a, 100, 64, 1, 2); /* CGN space (Q17) */
  fake_natpmp_set_external(h->f, a);
  test_fake_runner_t r;
  test_fake_runner_start(&r, &fake_natpmp_ops, h->f);
  portmap_probe_result_t res;
  assert_int_equal(portmap_probe_sync(h->c, 1000, &res), PORTMAP_OK);
  test_fake_runner_stop(&r);
  assert_int_equal(fake_natpmp_requests(h->f, 0), 1);
  assert_int_equal(res.natpmp.available, 1);
  assert_int_equal(res.natpmp.error, PORTMAP_OK);
  assert_int_equal(res.natpmp.gateway_result, 0);
  assert_string_equal(res.natpmp.external_address, "100.64.1.2");
  assert_int_equal(res.natpmp.external_is_private, 1);
  assert_int_equal(res.natpmp.epoch, 5000);
  assert_true(res.natpmp.rtt_ms < 1000);
  assert_int_equal(res.selected, PORTMAP_BACKEND_NATPMP);
}

static void test_probe_silent_gateway_times_out_after_budget(void **state) {
  h_t *h = *state;
  h->cfg.clock_cb = NULL;
  h->cfg.probe_timeout_ms = 300;
  client_up(h);
  fake_natpmp_set_silent(h->f, 1);
  portmap_probe_result_t res;
  assert_int_equal(portmap_probe_sync(h->c, 0, &res), PORTMAP_OK);
  fake_natpmp_process(h->f);
  assert_int_equal(res.natpmp.available, 0);
  assert_int_equal(res.natpmp.error, PORTMAP_ERR_TIMEOUT);
  assert_true(res.elapsed_ms >= 250 && res.elapsed_ms < 2000);
  /* sent at 0 and 250 ms, then the budget ran out */
  assert_int_equal(fake_natpmp_requests(h->f, 0), 2);
  assert_int_equal(res.selected, PORTMAP_BACKEND_NONE);
}

static void test_Q21_probe_closed_port_unreachable(void **state) {
  h_t *h = *state;
  h->cfg.clock_cb = NULL;
  h->cfg.gateway = GW_CLOSED;
  client_up(h);
  portmap_probe_result_t res;
  assert_int_equal(portmap_probe_sync(h->c, 2000, &res), PORTMAP_OK);
  assert_int_equal(res.natpmp.available, 0);
  assert_int_equal(res.natpmp.error, PORTMAP_ERR_UNREACHABLE);
  assert_true(res.elapsed_ms < 1000);
}

static void test_Q16_probe_refused(void **state) {
  h_t *h = *state;
  h->cfg.clock_cb = NULL;
  client_up(h);
  fake_natpmp_force_result(h->f, FAKE_NATPMP_REFUSED, 1);
  test_fake_runner_t r;
  test_fake_runner_start(&r, &fake_natpmp_ops, h->f);
  portmap_probe_result_t res;
  assert_int_equal(portmap_probe_sync(h->c, 1000, &res), PORTMAP_OK);
  test_fake_runner_stop(&r);
  assert_int_equal(res.natpmp.available, 0);
  assert_int_equal(res.natpmp.error, PORTMAP_ERR_REFUSED);
  assert_int_equal(res.natpmp.gateway_result, 2);
}

static void test_probe_request_beside_request_in_flight(void **state) {
  h_t *h = *state;
  client_up(h);
  fake_natpmp_set_hold(h->f, 1);
  map_tcp(h, 8000, 3600);
  pump(h);
  fake_natpmp_release(h->f);
  pump(h); /* the mapping request is in flight, its answer held */
  assert_int_equal(count_requests(h, OP_TCP, 8000), 1);
  /* the probe's public address request goes out beside it (the window has
   * room); its answer is held too: on the injected clock nothing times
   * out, so the blocking call returns at its own bound */
  portmap_probe_result_t res;
  assert_int_equal(portmap_probe_sync(h->c, 100, &res), PORTMAP_OK);
  fake_natpmp_process(h->f);
  assert_int_equal(fake_natpmp_requests(h->f, 0), 2);
  assert_int_equal(count_requests(h, OP_TCP, 8000), 1);
  fake_natpmp_set_hold(h->f, 0);
  fake_natpmp_release(h->f);
  pump(h);
  assert_int_equal(count_events(h, PORTMAP_EVENT_MAPPED), 1);
  assert_int_equal(fake_natpmp_requests(h->f, 0), 2);
  assert_int_equal(count_requests(h, OP_TCP, 8000), 1);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_N2_N3_opcodes_fields_tcp_udp),
      T(test_N2_response_opcode_is_128_plus_op),
      T(test_N2_malformed_and_duplicate_responses),
      T(test_N1_retransmit_250ms_doubling_9_tries_then_timeout),
      T(test_N1_budget_configurable),
      T(test_N1_silent_gateway_fails_waiting_mappings),
      T(test_N1_request_timeout_bounds_new_mapping),
      T(test_N3_renew_at_half_the_granted_lifetime),
      T(test_N3_Q23_Q24_short_grant_schedules_from_granted),
      T(test_N3_lost_after_expiry_then_recreated),
      T(test_N3_once_not_renewed),
      T(test_N4_delete_lifetime_0_external_port_0),
      T(test_N4_delete_retransmitted_bounded),
      T(test_N4_delete_flag_for_a_mapping_made_earlier),
      T(test_N4_revoke_before_sending_sends_nothing),
      T(test_N5_reboot_renews_every_mapping_at_once),
      T(test_N5_consistent_epoch_renews_nothing),
      T(test_N6_announcement_from_gateway_changes_address),
      T(test_N6_announcement_from_elsewhere_dropped),
      T(test_N7_lifetime_0_is_never_permanent),
      T(test_Q15_suggests_internal_port_never_0),
      T(test_Q16_result_2_failed_refused),
      T(test_N2_results_1_and_5_failed_refused),
      T(test_N2_results_3_and_4_lost_back_off_30s),
      T(test_Q21_closed_port_unreachable_at_once),
      T(test_unsupported_requests_rejected),
      T(test_requests_after_public_address_in_window),
      T(test_same_port_waits_for_the_first),
      T(test_free_deletes_every_mapping),
      T(test_probe_reports_available_address_epoch_rtt),
      T(test_probe_silent_gateway_times_out_after_budget),
      T(test_Q21_probe_closed_port_unreachable),
      T(test_Q16_probe_refused),
      T(test_probe_request_beside_request_in_flight),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
