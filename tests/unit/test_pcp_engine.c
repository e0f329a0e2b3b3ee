/* SPDX-License-Identifier: MIT */
/*
 * The PCP engine end to end against the fake gateway on loopback, with the
 * clock and the random source injected: no sleep, a 2-hour lifetime renews
 * in microseconds. Test names carry the checklist IDs they prove.
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
#include "fake_pcp.h"
#include "pcp/wire.h"
#include "internal.h"

#define MAX_EVENTS 256
#define MAX_DRAWS 64
#define RND_MAX 0xFFFFFFFFu

typedef test_ev_t ev_t;

typedef struct h {
  uint64_t now;
  uint64_t rng;
  /* 4-octet draws (the jitter of C2 and H5) come from script while it
   * lasts, then from rng; each one's time is recorded */
  uint32_t script[16];
  size_t n_script;
  size_t i_script;
  uint64_t draw_at[MAX_DRAWS];
  size_t n_draws;
  fake_pcp_t *f;
  fake_pcp_t *f6; /* an IPv6 server beside f, or NULL */
  portmap_client_t *c;
  portmap_config_t cfg;
  uint16_t announce_port;
  ev_t ev[MAX_EVENTS];
  size_t n_ev;
  int revoke_in_cb;
  portmap_status_t free_in_cb;
  int map_in_cb;
  portmap_client_t *cb_client;
  portmap_status_t map_in_cb_status;
  unsigned logs;
  portmap_status_t stats_in_log;
} h_t;

static uint64_t h_clock(void *u) {
  return ((h_t *)u)->now;
}

/* Deterministic stand-in for the CSPRNG. */
static int h_random(void *buf, size_t len, void *u) {
  h_t *h = u;
  if (len == 4) {
    if (h->n_draws < MAX_DRAWS)
      h->draw_at[h->n_draws++] = h->now;
    if (h->i_script < h->n_script) {
      uint32_t v = h->script[h->i_script++];
      uint8_t *p = buf;
      p[0] = (uint8_t)(v >> 24);
      p[1] = (uint8_t)(v >> 16);
      p[2] = (uint8_t)(v >> 8);
      p[3] = (uint8_t)v;
      return 0;
    }
  }
  test_splitmix_fill(&h->rng, buf, len);
  return 0;
}

/* The next 4-octet draws, in order. */
static void h_script(h_t *h, const uint32_t *v, size_t n) {
  assert_true(n <= sizeof h->script / sizeof h->script[0]);
  memcpy(h->script, v, n * sizeof *v);
  h->n_script = n;
  h->i_script = 0;
}

static void h_cb(portmap_mapping_t *m, portmap_event_t e, const portmap_info_t *info, void *u) {
  h_t *h = u;
  test_ev_add(h->ev, MAX_EVENTS, &h->n_ev, m, e, info, h->now);
  if (h->revoke_in_cb && e == PORTMAP_EVENT_MAPPED)
    assert_int_equal(portmap_mapping_revoke(m), PORTMAP_OK);
  if (h->revoke_in_cb && e == PORTMAP_EVENT_MAPPED)
    h->free_in_cb = portmap_client_free(h->c);
  if (h->map_in_cb && (e == PORTMAP_EVENT_DELETED || e == PORTMAP_EVENT_FAILED)) {
    portmap_request_t req;
    portmap_request_init(&req);
    req.internal_port = 9999;
    h->map_in_cb_status = portmap_map(h->cb_client, &req, NULL, NULL, NULL);
  }
}

static void client_up(h_t *h) {
  assert_int_equal(portmap_client_new(&h->cfg, &h->c), PORTMAP_OK);
}

static int setup(void **state) {
  h_t *h = calloc(1, sizeof *h);
  h->now = 1000000;
  h->rng = 42;
  h->f = fake_pcp_new(0);
  assert_non_null(h->f);
  fake_pcp_set_time(h->f, h->now);
  portmap_config_init(&h->cfg);
  h->cfg.gateway = "127.0.0.1";
  h->cfg.backends = PORTMAP_BACKEND_PCP;
  h->cfg.server_port = fake_pcp_port(h->f);
  h->announce_port = test_free_udp_port(INADDR_LOOPBACK);
  h->cfg.announce_port = h->announce_port;
  h->cfg.clock_cb = h_clock;
  h->cfg.clock_user = h;
  h->cfg.random_cb = h_random;
  h->cfg.random_user = h;
  h->cfg.destroy_timeout_ms = 100;
  h->free_in_cb = PORTMAP_OK;
  *state = h;
  return 0;
}

static int teardown(void **state) {
  h_t *h = *state;
  if (h->c != NULL)
    test_free_answered(h->c, &fake_pcp_ops, h->f);
  fake_pcp_free(h->f);
  fake_pcp_free(h->f6);
  free(h);
  return 0;
}

/* Let datagrams cross loopback: client sends, fake answers, client reads. */
static void pump(h_t *h) {
  test_pump(h->c, &fake_pcp_ops, h->f, h->now, 8);
  if (h->f6 != NULL)
    test_pump(h->c, &fake_pcp_ops, h->f6, h->now, 8);
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

static portmap_mapping_t *map_tcp(h_t *h, uint16_t port, uint32_t lifetime) {
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = port;
  req.lifetime = lifetime;
  portmap_mapping_t *m = NULL;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, &m), PORTMAP_OK);
  return m;
}

static unsigned map_requests(h_t *h) {
  return fake_pcp_requests(h->f, PCP_OP_MAP);
}

/* ---- basic flow ---- */

static void test_A4_A5_map_and_fields(void **state) {
  h_t *h = *state;
  client_up(h);
  map_tcp(h, 8000, 3600);
  pump(h);
  assert_int_equal(count_events(h, PORTMAP_EVENT_MAPPED), 1);
  const ev_t *e = last_event(h);
  assert_int_equal(e->info.backend, PORTMAP_BACKEND_PCP);
  assert_int_equal(e->info.external_port, 8000);
  assert_string_equal(e->info.external_address_str, "198.51.100.7");
  assert_int_equal(e->info.lifetime, 3600);
  assert_int_equal(e->info.gateway_result, 0);
  assert_int_equal(e->info.external_is_private, 0);
  pcp_msg_t req;
  assert_int_equal(fake_pcp_last_request(h->f, &req), 0);
  /* A4: the client IP field is the real source, IPv4-mapped */
  const uint8_t lo[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1};
  assert_memory_equal(req.client_addr, lo, 16);
  assert_int_equal(req.lifetime, 3600);
  assert_int_equal(req.protocol, 6);
  /* A5: a random source port, not 5350/5351 */
  struct sockaddr_storage ss;
  socklen_t sl;
  assert_int_equal(fake_pcp_last_source(h->f, &ss, &sl), 0);
  uint16_t sport = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  assert_true(sport != 0 && sport != 5350 && sport != 5351);
  /* D2: the nonce reported is the one on the wire */
  assert_memory_equal(e->info.nonce, req.nonce, 12);
}

static void test_D1_nonce_from_injected_csprng(void **state) {
  h_t *h = *state;
  client_up(h);
  uint8_t expect[12];
  uint64_t saved = h->rng;
  h_random(expect, 12, h);
  h->rng = saved;
  map_tcp(h, 8000, 3600);
  pump(h);
  pcp_msg_t req;
  assert_int_equal(fake_pcp_last_request(h->f, &req), 0);
  assert_memory_equal(req.nonce, expect, 12);
}

/* ---- retransmission ---- */

static void test_C1_C2_C4_retransmission_schedule(void **state) {
  h_t *h = *state;
  client_up(h);
  fake_pcp_drop_next(h->f, 4);
  map_tcp(h, 8000, 3600);
  advance(h, 60000);
  assert_int_equal(count_events(h, PORTMAP_EVENT_MAPPED), 1);
  assert_int_equal(fake_pcp_log_count(h->f), 5);
  const fake_pcp_request_t *r0 = fake_pcp_log_get(h->f, 0);
  uint64_t prev_gap = 0;
  for (size_t i = 1; i < 5; i++) {
    const fake_pcp_request_t *a = fake_pcp_log_get(h->f, i - 1);
    const fake_pcp_request_t *b = fake_pcp_log_get(h->f, i);
    uint64_t gap = b->time_ms - a->time_ms;
    /* C2: RT1 = (1+RAND)*IRT, RTn = (1+RAND)*2*RTprev, RAND in [-0.1, 0.1] */
    if (i == 1) {
      assert_in_range(gap, 2700, 3300);
    } else {
      assert_in_range(gap, prev_gap * 2 * 9 / 10 - 1, prev_gap * 2 * 11 / 10 + 1);
    }
    prev_gap = gap;
    /* C4: a retransmission is the identical request */
    assert_int_equal(b->len, r0->len);
    assert_memory_equal(b->data, r0->data, r0->len);
  }
  portmap_stats_t st;
  portmap_client_stats(h->c, &st);
  assert_int_equal(st.retransmissions, 4);
}

/* C2 as sent: every retransmission draws a fresh RAND, at the moment it is
 * sent. The random source is scripted to alternate -0.1 and +0.1, so each
 * interval the fake sees is one exact value; a RAND drawn once and reused
 * (or not drawn per send) gives other intervals. */
static void test_C2_fresh_rand_per_send(void **state) {
  h_t *h = *state;
  static const uint32_t rnd[] = {0, RND_MAX, 0, RND_MAX, 0};
  client_up(h);
  h_script(h, rnd, 5);
  fake_pcp_drop_next(h->f, 4);
  map_tcp(h, 8000, 3600);
  uint64_t t0 = h->now;
  advance(h, 60000);
  assert_int_equal(count_events(h, PORTMAP_EVENT_MAPPED), 1);
  assert_int_equal(fake_pcp_log_count(h->f), 5);
  /* RT1 = 0.9 * 3000; RTn = (1 + RAND) * 2 * RTn-1 with RAND +0.1, -0.1, +0.1 */
  static const uint64_t gap[4] = {2700, 5940, 10692, 23522};
  for (size_t i = 0; i < 4; i++)
    assert_int_equal(fake_pcp_log_get(h->f, i + 1)->time_ms - fake_pcp_log_get(h->f, i)->time_ms,
                     gap[i]);
  /* one draw per send, made when it is sent (the fifth also arms a timer
   * that the answer cancels); then the renewal's (H5) */
  assert_true(h->n_draws >= 5);
  assert_int_equal(h->draw_at[0], t0);
  for (size_t i = 0; i < 5; i++)
    assert_int_equal(h->draw_at[i], fake_pcp_log_get(h->f, i)->time_ms);
  assert_int_equal(h->i_script, 5);
}

static void test_C3_mrc_gives_up(void **state) {
  h_t *h = *state;
  h->cfg.pcp_mrc = 3;
  client_up(h);
  fake_pcp_set_silent(h->f, 1);
  map_tcp(h, 8000, 3600);
  advance(h, 120000);
  assert_int_equal(map_requests(h), 3);
  assert_int_equal(count_events(h, PORTMAP_EVENT_FAILED), 1);
  assert_int_equal(last_event(h)->info.status, PORTMAP_ERR_TIMEOUT);
}

static void test_C3_mrd_gives_up(void **state) {
  h_t *h = *state;
  h->cfg.pcp_mrd_ms = 10000;
  client_up(h);
  fake_pcp_set_silent(h->f, 1);
  map_tcp(h, 8000, 3600);
  advance(h, 9000);
  assert_int_equal(count_events(h, PORTMAP_EVENT_FAILED), 0);
  advance(h, 20000);
  assert_int_equal(count_events(h, PORTMAP_EVENT_FAILED), 1);
  /* sends at about 0, 3, 9 s: none after MRD */
  const fake_pcp_request_t *last = fake_pcp_log_get(h->f, fake_pcp_log_count(h->f) - 1);
  assert_true(last->time_ms - fake_pcp_log_get(h->f, 0)->time_ms <= 10000);
}

/* ---- matching and hostile responses ---- */

static void test_B3_spoofed_port_ignored(void **state) {
  h_t *h = *state;
  client_up(h);
  fake_pcp_spoof_next(h->f, 1);
  map_tcp(h, 8000, 3600);
  pump(h);
  assert_int_equal(count_events(h, PORTMAP_EVENT_MAPPED), 0);
  portmap_stats_t st;
  portmap_client_stats(h->c, &st);
  assert_int_equal(st.spoofed, 1);
  advance(h, 4000); /* the retransmission is answered properly */
  assert_int_equal(count_events(h, PORTMAP_EVENT_MAPPED), 1);
}

static void test_B4_duplicate_responses_one_event(void **state) {
  h_t *h = *state;
  client_up(h);
  fake_pcp_set_duplicates(h->f, 3);
  map_tcp(h, 8000, 3600);
  pump(h);
  assert_int_equal(h->n_ev, 1);
  assert_int_equal(h->ev[0].event, PORTMAP_EVENT_MAPPED);
  portmap_stats_t st;
  portmap_client_stats(h->c, &st);
  assert_int_equal(st.unmatched, 2);
}

static void test_B4_reordered_responses(void **state) {
  h_t *h = *state;
  client_up(h);
  fake_pcp_set_hold(h->f, 1);
  map_tcp(h, 8000, 3600);
  map_tcp(h, 8001, 3600);
  pump(h);
  assert_int_equal(fake_pcp_held(h->f), 2);
  fake_pcp_set_hold(h->f, 0);
  assert_int_equal(fake_pcp_release(h->f), 2);
  pump(h);
  assert_int_equal(count_events(h, PORTMAP_EVENT_MAPPED), 2);
  /* each mapping got its own answer: 8001 came first */
  assert_int_equal(h->ev[0].info.internal_port, 8001);
  assert_int_equal(h->ev[0].info.external_port, 8001);
  assert_int_equal(h->ev[1].info.internal_port, 8000);
  assert_int_equal(h->ev[1].info.external_port, 8000);
}

/* D3 (RFC 6887 sections 11.4, 12.4): a response matches a request on
 * opcode (A10), nonce, protocol, internal port and internal address
 * (THIRD_PARTY), a PEER also on the remote peer's address and port. The
 * fake answers the first request with a grant of external port 7777 that
 * differs from the request in one of these fields only: the client must
 * ignore it (counted unmatched, not malformed: it decoded) and take the
 * proper answer to its retransmission. */
typedef enum d3_field {
  D3_NONE, /* the control: nothing differs, the answer is taken */
  D3_NONCE,
  D3_OPCODE,
  D3_PROTOCOL,
  D3_INTERNAL_PORT,
  D3_THIRD_PARTY,       /* another THIRD_PARTY address than the request's */
  D3_THIRD_PARTY_ADDED, /* a THIRD_PARTY the request did not carry */
  D3_PEER_ADDR,
  D3_PEER_PORT
} d3_field_t;

typedef struct d3 {
  d3_field_t field;
  unsigned left; /* answers still to alter */
} d3_t;

static fake_pcp_hook_action_t d3_hook(void *user, fake_pcp_t *f, const fake_pcp_request_t *req,
                                      pcp_msg_t *resp) {
  d3_t *d = user;
  (void)f;
  (void)req;
  if (d->left == 0)
    return FAKE_PCP_HOOK_DEFAULT;
  d->left--;
  resp->lifetime = 3600;
  resp->external_port = 7777;
  switch (d->field) {
  case D3_NONE:
    break;
  case D3_NONCE:
    resp->nonce[PCP_NONCE_LEN - 1] ^= 1;
    break;
  case D3_OPCODE:
    resp->opcode = resp->opcode == PCP_OP_MAP ? PCP_OP_PEER : PCP_OP_MAP;
    break;
  case D3_PROTOCOL:
    resp->protocol = resp->protocol == 6 ? 17 : 6;
    break;
  case D3_INTERNAL_PORT:
    resp->internal_port++;
    break;
  case D3_THIRD_PARTY:
    resp->third_party[15] ^= 1;
    break;
  case D3_THIRD_PARTY_ADDED: {
    static const uint8_t other[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 9};
    resp->has_third_party = 1;
    memcpy(resp->third_party, other, 16);
    break;
  }
  case D3_PEER_ADDR:
    resp->peer_addr[15] ^= 1;
    break;
  case D3_PEER_PORT:
    resp->peer_port++;
    break;
  }
  return FAKE_PCP_HOOK_REPLY;
}

typedef enum d3_kind { D3_MAP, D3_MAP_THIRD_PARTY, D3_PEER } d3_kind_t;

static void d3_case(h_t *h, d3_kind_t kind, d3_field_t field) {
  d3_t d = {field, 1};
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = 8000;
  req.lifetime = 3600;
  if (kind == D3_MAP_THIRD_PARTY) {
    fake_pcp_set_allow_third_party(h->f, 1);
    req.third_party = "127.0.0.2";
  }
  if (kind == D3_PEER) {
    req.peer_address = "203.0.113.9";
    req.peer_port = 5060;
  }
  client_up(h);
  fake_pcp_set_hook(h->f, d3_hook, &d);
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, NULL), PORTMAP_OK);
  pump(h);
  assert_int_equal(fake_pcp_log_count(h->f), 1);
  assert_int_equal(fake_pcp_log_get(h->f, 0)->fate, FAKE_PCP_ANSWERED);
  portmap_stats_t st;
  portmap_client_stats(h->c, &st);
  assert_int_equal(st.malformed, 0);
  assert_int_equal(st.spoofed, 0);
  if (field == D3_NONE) {
    assert_int_equal(h->n_ev, 1);
    assert_int_equal(h->ev[0].event, PORTMAP_EVENT_MAPPED);
    assert_int_equal(h->ev[0].info.external_port, 7777);
    assert_int_equal(st.unmatched, 0);
  } else {
    assert_int_equal(h->n_ev, 0);
    assert_int_equal(st.unmatched, 1);
    advance(h, 3400); /* RT1 is at most 3.3 s: the proper answer */
    assert_int_equal(fake_pcp_log_count(h->f), 2);
    assert_int_equal(h->n_ev, 1);
    assert_int_equal(h->ev[0].event, PORTMAP_EVENT_MAPPED);
    assert_int_equal(h->ev[0].info.external_port, 8000);
  }
  fake_pcp_set_hook(h->f, NULL, NULL);
}

static void test_D3_control_map_response_taken(void **state) {
  d3_case(*state, D3_MAP, D3_NONE);
}

static void test_D3_control_peer_response_taken(void **state) {
  d3_case(*state, D3_PEER, D3_NONE);
}

static void test_D3_other_nonce_ignored(void **state) {
  d3_case(*state, D3_MAP, D3_NONCE);
}

static void test_D3_A10_other_opcode_ignored(void **state) {
  d3_case(*state, D3_MAP, D3_OPCODE);
}

static void test_D3_other_protocol_ignored(void **state) {
  d3_case(*state, D3_MAP, D3_PROTOCOL);
}

static void test_D3_other_internal_port_ignored(void **state) {
  d3_case(*state, D3_MAP, D3_INTERNAL_PORT);
}

static void test_D3_other_third_party_ignored(void **state) {
  d3_case(*state, D3_MAP_THIRD_PARTY, D3_THIRD_PARTY);
}

static void test_D3_unrequested_third_party_ignored(void **state) {
  d3_case(*state, D3_MAP, D3_THIRD_PARTY_ADDED);
}

static void test_D3_peer_other_remote_address_ignored(void **state) {
  d3_case(*state, D3_PEER, D3_PEER_ADDR);
}

static void test_D3_peer_other_remote_port_ignored(void **state) {
  d3_case(*state, D3_PEER, D3_PEER_PORT);
}

static void test_A9_garbage_and_truncated_dropped(void **state) {
  h_t *h = *state;
  client_up(h);
  fake_pcp_garbage_next(h->f, 1);
  map_tcp(h, 8000, 3600);
  pump(h);
  portmap_stats_t st;
  portmap_client_stats(h->c, &st);
  assert_int_equal(st.malformed, 1);
  fake_pcp_truncate_next(h->f, 1, 20); /* the retransmission's answer */
  advance(h, 4000);
  assert_int_equal(h->n_ev, 0);
  portmap_client_stats(h->c, &st);
  assert_int_equal(st.malformed, 2);
  advance(h, 8000);
  assert_int_equal(count_events(h, PORTMAP_EVENT_MAPPED), 1);
}

/* ---- version negotiation ---- */

static void test_F2_natpmp_gateway_detected(void **state) {
  h_t *h = *state;
  client_up(h);
  fake_pcp_set_natpmp(h->f, FAKE_PCP_NATPMP_OP128);
  map_tcp(h, 8000, 3600);
  pump(h);
  assert_int_equal(count_events(h, PORTMAP_EVENT_FAILED), 1);
  assert_int_equal(last_event(h)->info.status, PORTMAP_ERR_NATPMP_GATEWAY);
}

static void test_F2_natpmp_opcode_zero(void **state) {
  h_t *h = *state;
  client_up(h);
  fake_pcp_set_natpmp(h->f, FAKE_PCP_NATPMP_OP0);
  map_tcp(h, 8000, 3600);
  pump(h);
  assert_int_equal(last_event(h)->info.status, PORTMAP_ERR_NATPMP_GATEWAY);
}

/* F2 concerns only what this server never granted: the probe and first
 * requests. An 8-octet UNSUPP_VERSION carries no nonce and is matched on the
 * source address and port alone, so it cannot end a mapping this server
 * granted over PCP; that renewal keeps its retransmission schedule. */
static void test_F2_natpmp_reply_spares_established_mappings(void **state) {
  h_t *h = *state;
  client_up(h);
  portmap_mapping_t *a = map_tcp(h, 8000, 200);
  pump(h);
  assert_int_equal(count_events(h, PORTMAP_EVENT_MAPPED), 1);
  fake_pcp_set_natpmp(h->f, FAKE_PCP_NATPMP_OP128);
  advance(h, 126000); /* the renewal of a is answered UNSUPP_VERSION */
  assert_true(map_requests(h) >= 2);
  assert_int_equal(count_events(h, PORTMAP_EVENT_FAILED), 0);
  portmap_mapping_t *b = map_tcp(h, 9000, 200); /* never mapped: F2 applies */
  pump(h);
  assert_int_equal(count_events(h, PORTMAP_EVENT_FAILED), 1);
  assert_ptr_equal(last_event(h)->m, b);
  assert_int_equal(last_event(h)->info.status, PORTMAP_ERR_NATPMP_GATEWAY);
  fake_pcp_set_natpmp(h->f, FAKE_PCP_NATPMP_OFF);
  advance(h, 60000);
  assert_int_equal(count_events(h, PORTMAP_EVENT_FAILED), 1);
  assert_int_equal(count_events(h, PORTMAP_EVENT_RENEWED), 1);
  assert_ptr_equal(last_event(h)->m, a);
}

/* ---- result codes ---- */

static void test_G4_not_authorized_fails(void **state) {
  h_t *h = *state;
  client_up(h);
  fake_pcp_force_result(h->f, PCP_NOT_AUTHORIZED, 1);
  map_tcp(h, 8000, 3600);
  pump(h);
  assert_int_equal(count_events(h, PORTMAP_EVENT_FAILED), 1);
  assert_int_equal(last_event(h)->info.status, PORTMAP_ERR_REFUSED);
  assert_int_equal(last_event(h)->info.gateway_result, PCP_NOT_AUTHORIZED);
}

/* G3: the fake's error responses carry 203.0.113.50:4444 in their external
 * fields, neither what the client suggested nor what it was granted, so a
 * client that took them for assigned would show them. */
static const uint8_t ERR_EXT[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 50};
#define ERR_EXT_PORT 4444

static void test_G1_G3_short_error_honours_lifetime(void **state) {
  h_t *h = *state;
  client_up(h);
  fake_pcp_set_error_external(h->f, ERR_EXT, ERR_EXT_PORT);
  fake_pcp_force_result(h->f, PCP_NETWORK_FAILURE, 1);
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = 8000;
  req.external_port = 9000; /* our suggestion: not assigned either */
  req.lifetime = 3600;
  portmap_mapping_t *m = NULL;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, &m), PORTMAP_OK);
  pump(h);
  assert_int_equal(count_events(h, PORTMAP_EVENT_LOST), 1);
  const ev_t *e = last_event(h);
  assert_int_equal(e->info.gateway_result, PCP_NETWORK_FAILURE);
  /* G3: nothing assigned is reported from an error */
  assert_int_equal(e->info.external_port, 0);
  assert_string_equal(e->info.external_address_str, "0.0.0.0");
  portmap_info_t info;
  assert_int_equal(portmap_mapping_info(m, &info), PORTMAP_OK);
  assert_int_equal(info.external_port, 0);
  assert_string_equal(info.external_address_str, "0.0.0.0");
  advance(h, 29000);
  assert_int_equal(map_requests(h), 1); /* G1: 30 s error lifetime */
  advance(h, 2000);
  assert_int_equal(map_requests(h), 2);
  /* G3, H2: the retry suggests our 9000 again, not the error's 4444 */
  pcp_msg_t r;
  assert_int_equal(fake_pcp_last_request(h->f, &r), 0);
  assert_int_equal(r.external_port, 9000);
  assert_int_equal(count_events(h, PORTMAP_EVENT_MAPPED), 1);
  assert_int_equal(last_event(h)->info.external_port, 9000);
  assert_string_equal(last_event(h)->info.external_address_str, "198.51.100.7");
}

/* G3 on a renewal: an error answering the renewal of a granted mapping does
 * not replace what was assigned, neither in what the application sees nor
 * in what the next request suggests (H2). */
static void test_G3_renewal_error_keeps_assigned(void **state) {
  h_t *h = *state;
  client_up(h);
  portmap_mapping_t *m = map_tcp(h, 8000, 200);
  pump(h);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_MAPPED);
  assert_int_equal(last_event(h)->info.external_port, 8000);
  fake_pcp_set_error_external(h->f, ERR_EXT, ERR_EXT_PORT);
  fake_pcp_force_result(h->f, PCP_NETWORK_FAILURE, 1);
  advance(h, 126000); /* the renewal, by 5/8 of 200 s, gets the error */
  assert_int_equal(map_requests(h), 2);
  assert_int_equal(fake_pcp_log_get(h->f, 1)->result, PCP_NETWORK_FAILURE);
  assert_int_equal(h->n_ev, 1); /* still valid: nothing to report */
  portmap_info_t info;
  assert_int_equal(portmap_mapping_info(m, &info), PORTMAP_OK);
  assert_int_equal(info.external_port, 8000);
  assert_string_equal(info.external_address_str, "198.51.100.7");
  advance(h, 31000); /* after the 30 s error lifetime (G1): asked again */
  assert_int_equal(map_requests(h), 3);
  pcp_msg_t r;
  assert_int_equal(fake_pcp_last_request(h->f, &r), 0);
  const uint8_t granted[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 51, 100, 7};
  assert_int_equal(r.external_port, 8000);
  assert_memory_equal(r.external_addr, granted, 16);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_RENEWED);
  assert_int_equal(last_event(h)->info.external_port, 8000);
  assert_string_equal(last_event(h)->info.external_address_str, "198.51.100.7");
}

static void test_G2_no_new_mappings_after_no_resources(void **state) {
  h_t *h = *state;
  client_up(h);
  fake_pcp_force_result(h->f, PCP_NO_RESOURCES, 1);
  map_tcp(h, 8000, 3600);
  pump(h);
  advance(h, 5000);
  map_tcp(h, 8001, 3600); /* must wait for the error lifetime */
  pump(h);
  assert_int_equal(map_requests(h), 1);
  advance(h, 26000);
  assert_int_equal(map_requests(h), 3);
  assert_int_equal(count_events(h, PORTMAP_EVENT_MAPPED), 2);
}

static void test_A12_unknown_result_is_long_error(void **state) {
  h_t *h = *state;
  client_up(h);
  fake_pcp_force_result(h->f, 77, 1);
  map_tcp(h, 8000, 3600);
  pump(h);
  assert_int_equal(count_events(h, PORTMAP_EVENT_FAILED), 1);
  assert_int_equal(last_event(h)->info.gateway_result, 77);
}

/* ---- MAP lifetimes and renewal ---- */

static void test_H4_H5_renewal_schedule(void **state) {
  h_t *h = *state;
  client_up(h);
  fake_pcp_set_fixed_lifetime(h->f, 200); /* asked 7200, granted 200 */
  map_tcp(h, 8000, 7200);
  pump(h);
  uint64_t granted = h->now;
  assert_int_equal(last_event(h)->info.lifetime, 200);
  advance(h, 99000);
  assert_int_equal(map_requests(h), 1);
  advance(h, 26000); /* H5: renewal in [1/2, 5/8] of the GRANTED lifetime */
  assert_int_equal(map_requests(h), 2);
  uint64_t t = fake_pcp_log_get(h->f, 1)->time_ms - granted;
  assert_in_range(t, 100000, 125000);
  assert_int_equal(count_events(h, PORTMAP_EVENT_RENEWED), 1);
}

/* A lost first renewal is tried again in [3/4, 3/4 + 1/16] of the lifetime
 * and at least 4 s after the first: 20 s, first in [10, 12.5] s, the retry
 * in [15, 16.5] s, answered. */
static void test_H5_renewal_retried_4s_later(void **state) {
  h_t *h = *state;
  client_up(h);
  fake_pcp_set_lifetime_limits(h->f, 2, 86400);
  map_tcp(h, 8000, 20);
  pump(h);
  uint64_t granted = h->now;
  fake_pcp_drop_next(h->f, 1); /* lose the first renewal */
  advance(h, 19900);
  assert_int_equal(map_requests(h), 3);
  uint64_t t1 = fake_pcp_log_get(h->f, 1)->time_ms - granted;
  uint64_t t2 = fake_pcp_log_get(h->f, 2)->time_ms - granted;
  assert_in_range(t1, 10000, 12500);
  assert_in_range(t2, 15000, 16500);
  assert_true(t2 - t1 >= 4000);
  assert_int_equal(count_events(h, PORTMAP_EVENT_RENEWED), 1);
  assert_int_equal(count_events(h, PORTMAP_EVENT_LOST), 0);
}

/* 8 s: the first renewal at [4, 5] s leaves no room for another 4 s later.
 * When it is lost the mapping lapses at 8 s and is re-created then, with
 * no renewal squeezed in before (the old schedule sent four more in the
 * last 3 s). */
static void test_H5_no_retry_without_4s_room(void **state) {
  h_t *h = *state;
  client_up(h);
  fake_pcp_set_lifetime_limits(h->f, 2, 86400);
  map_tcp(h, 8000, 8);
  pump(h);
  uint64_t granted = h->now;
  fake_pcp_drop_next(h->f, 1);
  advance(h, 7999);
  assert_int_equal(map_requests(h), 2);
  assert_in_range(fake_pcp_log_get(h->f, 1)->time_ms - granted, 4000, 5000);
  assert_int_equal(count_events(h, PORTMAP_EVENT_LOST), 0);
  advance(h, 1);
  assert_int_equal(count_events(h, PORTMAP_EVENT_LOST), 1);
  assert_int_equal(map_requests(h), 3); /* re-created at the expiry (H2) */
  assert_int_equal(fake_pcp_log_get(h->f, 2)->time_ms - granted, 8000);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_RENEWED);
}

/* H5 as sent: the times (from the grant) at which the fake received the
 * renewals of the one mapping, nothing answered after the grant. The
 * random source is scripted: the first draw is the request's jitter (C2),
 * then one per renewal attempt. Returns how many renewals came in the
 * lifetime. */
static size_t renewals_on_the_wire(h_t *h, uint32_t lifetime_s, const uint32_t *rnd, size_t n_rnd,
                                   uint64_t *at, size_t cap) {
  client_up(h);
  h_script(h, rnd, n_rnd);
  fake_pcp_set_lifetime_limits(h->f, 2, 86400);
  map_tcp(h, 8000, lifetime_s);
  pump(h);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_MAPPED);
  assert_int_equal(last_event(h)->info.lifetime, lifetime_s);
  uint64_t granted = h->now;
  fake_pcp_set_silent(h->f, 1);
  advance(h, (uint64_t)lifetime_s * 1000);
  /* it expired at its granted lifetime, not before */
  assert_int_equal(count_events(h, PORTMAP_EVENT_LOST), 1);
  assert_int_equal(test_ev_find(h->ev, h->n_ev, PORTMAP_EVENT_LOST)->at,
                   granted + (uint64_t)lifetime_s * 1000);
  size_t n = 0;
  for (size_t i = 1; i < fake_pcp_log_count(h->f); i++) {
    uint64_t t = fake_pcp_log_get(h->f, i)->time_ms - granted;
    if (t < (uint64_t)lifetime_s * 1000 && n < cap)
      at[n++] = t;
  }
  return n;
}

/* H5: renewals never less than 4 s apart, also in the last seconds before
 * the expiry (RFC 6887 section 11.2.1: no flood of ever-closer ones). */
static void assert_spaced_4s(const uint64_t *at, size_t n) {
  for (size_t i = 1; i < n; i++)
    assert_true(at[i] - at[i - 1] >= 4000);
}

/* The windows as the engine sends them, at their edges: 64 s, drawn at the
 * bottom of [1/2, 5/8], the top of [3/4, 3/4 + 1/16] and of [7/8, 7/8 +
 * 1/32]; then halfway to expiry (3 s), raised to 4 s. */
static void test_H5_renewal_windows_on_the_wire(void **state) {
  h_t *h = *state;
  static const uint32_t rnd[] = {0x80000000u, 0, RND_MAX, RND_MAX};
  uint64_t at[32];
  size_t n = renewals_on_the_wire(h, 64, rnd, 4, at, 32);
  assert_spaced_4s(at, n);
  assert_int_equal(n, 4); /* none in the last 2 s: that would be < 4 s after 62 s */
  assert_int_equal(at[0], 32000);
  assert_int_equal(at[1], 52000);
  assert_int_equal(at[2], 58000);
  assert_int_equal(at[3], 62000);
}

/* The 4 s spacing where the windows come closer: 24 s, drawn at the top of
 * [1/2, 5/8] (15 s), the bottom of [3/4, ...] (18 s) and of [7/8, ...]
 * (21 s): sent at 15, 19 and 23 s. */
static void test_H5_renewals_4s_apart_on_the_wire(void **state) {
  h_t *h = *state;
  static const uint32_t rnd[] = {0x80000000u, RND_MAX, 0, 0};
  uint64_t at[32];
  size_t n = renewals_on_the_wire(h, 24, rnd, 4, at, 32);
  assert_spaced_4s(at, n);
  assert_int_equal(n, 3);
  assert_int_equal(at[0], 15000);
  assert_int_equal(at[1], 19000);
  assert_int_equal(at[2], 23000);
}

static void test_H2_H3_renewal_suggests_assigned(void **state) {
  h_t *h = *state;
  client_up(h);
  fake_pcp_reserve_port(h->f, 6, 8000); /* the suggestion cannot be had */
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = 8000;
  req.external_port = 8000;
  req.lifetime = 200;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, NULL), PORTMAP_OK);
  pump(h);
  uint16_t got = last_event(h)->info.external_port;
  assert_true(got != 8000 && got != 0); /* H3: report what was assigned */
  advance(h, 130000);
  pcp_msg_t r;
  fake_pcp_last_request(h->f, &r);
  assert_int_equal(r.external_port, got); /* H2 */
  assert_int_equal(count_events(h, PORTMAP_EVENT_RENEWED), 1);
}

static void test_H6_D2_delete_same_nonce(void **state) {
  h_t *h = *state;
  client_up(h);
  portmap_mapping_t *m = map_tcp(h, 8000, 3600);
  pump(h);
  assert_int_equal(fake_pcp_mapping_count(h->f), 1);
  assert_int_equal(portmap_mapping_revoke(m), PORTMAP_OK);
  assert_int_equal(portmap_mapping_revoke(m), PORTMAP_ERR_STATE);
  pump(h);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_DELETED);
  assert_int_equal(fake_pcp_mapping_count(h->f), 0);
  pcp_msg_t r;
  fake_pcp_last_request(h->f, &r);
  assert_int_equal(r.lifetime, 0);
  assert_memory_equal(r.nonce, h->ev[0].info.nonce, 12);
}

static void test_H6_delete_retransmitted(void **state) {
  h_t *h = *state;
  client_up(h);
  portmap_mapping_t *m = map_tcp(h, 8000, 3600);
  pump(h);
  fake_pcp_drop_next(h->f, 2);
  portmap_mapping_revoke(m);
  advance(h, 20000);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_DELETED);
  assert_int_equal(map_requests(h), 4);
  assert_int_equal(fake_pcp_mapping_count(h->f), 0);
}

static void test_Q18_delete_with_persisted_nonce(void **state) {
  h_t *h = *state;
  client_up(h);
  map_tcp(h, 8000, 3600);
  pump(h);
  uint8_t nonce[12];
  memcpy(nonce, h->ev[0].info.nonce, 12);
  /* a later process deletes it with the nonce it printed */
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = 8000;
  req.flags = PORTMAP_FLAG_DELETE;
  uint8_t wrong[12] = {1};
  req.nonce = wrong;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, NULL), PORTMAP_OK);
  pump(h);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_FAILED);
  assert_int_equal(last_event(h)->info.gateway_result, PCP_NOT_AUTHORIZED);
  req.nonce = nonce;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, NULL), PORTMAP_OK);
  pump(h);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_DELETED);
  assert_int_equal(fake_pcp_mapping_count(h->f), 0);
}

static void test_H8_prefer_failure(void **state) {
  h_t *h = *state;
  client_up(h);
  fake_pcp_reserve_port(h->f, 6, 9000);
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = 8000;
  req.external_port = 9000;
  req.flags = PORTMAP_FLAG_PREFER_FAILURE;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, NULL), PORTMAP_OK);
  pump(h);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_FAILED);
  assert_int_equal(last_event(h)->info.gateway_result, PCP_CANNOT_PROVIDE_EXTERNAL);
  pcp_msg_t r;
  fake_pcp_last_request(h->f, &r);
  assert_true(r.prefer_failure);
}

static void test_H7_unsolicited_update_changes_address(void **state) {
  h_t *h = *state;
  client_up(h);
  map_tcp(h, 8000, 3600);
  pump(h);
  const uint8_t ext[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 51, 100, 99};
  fake_pcp_set_external(h->f, ext);
  struct sockaddr_in to;
  memset(&to, 0, sizeof to);
  to.sin_family = AF_INET;
  to.sin_port = htons(h->announce_port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(fake_pcp_send_map_update(h->f, (struct sockaddr *)&to, sizeof to, 0), 0);
  pump(h);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_CHANGED);
  assert_string_equal(last_event(h)->info.external_address_str, "198.51.100.99");
  /* the same update again is no news */
  fake_pcp_send_map_update(h->f, (struct sockaddr *)&to, sizeof to, 0);
  pump(h);
  assert_int_equal(count_events(h, PORTMAP_EVENT_CHANGED), 1);
}

/* ---- epoch ---- */

static void test_E5_reboot_seen_on_renewal_recreates_all(void **state) {
  h_t *h = *state;
  client_up(h);
  map_tcp(h, 8000, 200);
  advance(h, 10000);
  map_tcp(h, 8001, 7200);
  pump(h);
  assert_int_equal(fake_pcp_mapping_count(h->f), 2);
  advance(h, 50000);
  fake_pcp_reboot(h->f, h->now); /* the router forgets everything */
  advance(h, 80000);             /* 8000 renews, sees epoch 0: invalid */
  assert_int_equal(fake_pcp_mapping_count(h->f), 2);
  portmap_stats_t st;
  portmap_client_stats(h->c, &st);
  assert_int_equal(st.epoch_invalid, 1);
  /* E4: later responses are valid again: no storm */
  unsigned before = map_requests(h);
  advance(h, 30000);
  assert_int_equal(map_requests(h), before);
}

static void test_A1_K2_announce_recovery_once(void **state) {
  h_t *h = *state;
  client_up(h);
  map_tcp(h, 8000, 3600);
  map_tcp(h, 8001, 3600);
  advance(h, 60000);
  fake_pcp_reboot(h->f, h->now);
  struct sockaddr_in to;
  memset(&to, 0, sizeof to);
  to.sin_family = AF_INET;
  to.sin_port = htons(h->announce_port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  unsigned before = map_requests(h);
  for (int i = 0; i < 3; i++)
    assert_int_equal(fake_pcp_send_announce(h->f, (struct sockaddr *)&to, sizeof to), 0);
  pump(h);
  assert_int_equal(map_requests(h), before); /* K2: not at once */
  advance(h, 5100);
  assert_int_equal(map_requests(h), before + 2); /* once per mapping */
  assert_int_equal(fake_pcp_mapping_count(h->f), 2);
}

static void test_B5_announce_from_other_source_dropped(void **state) {
  h_t *h = *state;
  client_up(h);
  map_tcp(h, 8000, 3600);
  advance(h, 1000);
  uint8_t pkt[24];
  memset(pkt, 0, sizeof pkt);
  pkt[0] = 2;
  pkt[1] = 0x80;
  struct sockaddr_in to;
  memset(&to, 0, sizeof to);
  to.sin_family = AF_INET;
  to.sin_port = htons(h->announce_port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(fake_pcp_send_raw(h->f, (struct sockaddr *)&to, sizeof to, pkt, 24, 1), 0);
  pump(h);
  portmap_stats_t st;
  portmap_client_stats(h->c, &st);
  assert_int_equal(st.spoofed, 1);
  assert_int_equal(st.epoch_invalid, 0);
}

/* ---- options ---- */

static void test_J3_Q26_description_retried_without(void **state) {
  h_t *h = *state;
  client_up(h);
  fake_pcp_set_q26(h->f, 1);
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = 8000;
  req.description = "hello";
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, NULL), PORTMAP_OK);
  pump(h);
  assert_int_equal(count_events(h, PORTMAP_EVENT_MAPPED), 1);
  assert_int_equal(map_requests(h), 2);
  assert_int_equal(fake_pcp_log_get(h->f, 0)->msg.description_len, 5);
  assert_int_equal(fake_pcp_log_get(h->f, 1)->msg.description_len, 0);
  /* remembered for the server */
  req.internal_port = 8001;
  portmap_map(h->c, &req, h_cb, h, NULL);
  pump(h);
  assert_int_equal(map_requests(h), 3);
  assert_int_equal(count_events(h, PORTMAP_EVENT_MAPPED), 2);
}

static void test_J1_Q27_third_party_refused(void **state) {
  h_t *h = *state;
  client_up(h);
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = 8000;
  req.third_party = "127.0.0.2";
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, NULL), PORTMAP_OK);
  pump(h);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_FAILED);
  assert_int_equal(last_event(h)->info.gateway_result, PCP_UNSUPP_OPTION);
  assert_int_equal(map_requests(h), 1); /* no blind retry */
}

static void test_J1_third_party_on_renew_and_delete(void **state) {
  h_t *h = *state;
  client_up(h);
  fake_pcp_set_allow_third_party(h->f, 1);
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = 8000;
  req.lifetime = 200;
  req.third_party = "127.0.0.2";
  portmap_mapping_t *m = NULL;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, &m), PORTMAP_OK);
  pump(h);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_MAPPED);
  assert_string_equal(fake_pcp_mapping_get(h->f, 0)->description, "");
  advance(h, 130000);
  pcp_msg_t r;
  fake_pcp_last_request(h->f, &r);
  assert_true(r.has_third_party);
  portmap_mapping_revoke(m);
  pump(h);
  fake_pcp_last_request(h->f, &r);
  assert_true(r.has_third_party);
  assert_int_equal(r.lifetime, 0);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_DELETED);
}

static void test_J2_filters_resent_on_renewal(void **state) {
  h_t *h = *state;
  client_up(h);
  portmap_filter_t flt[2] = {{"192.0.2.0", 24, 0}, {"198.51.100.1", 32, 443}};
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = 8000;
  req.lifetime = 200;
  req.filters = flt;
  req.n_filters = 2;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, NULL), PORTMAP_OK);
  pump(h);
  advance(h, 130000);
  pcp_msg_t r;
  fake_pcp_last_request(h->f, &r);
  assert_int_equal(map_requests(h), 2);
  assert_int_equal(r.n_filters, 2);
  assert_int_equal(r.filters[0].prefix_len, 96 + 24);
  assert_int_equal(r.filters[1].port, 443);
}

static void test_I1_peer_mapping(void **state) {
  h_t *h = *state;
  client_up(h);
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = 8000;
  req.peer_address = "203.0.113.9";
  req.peer_port = 5060;
  portmap_mapping_t *m = NULL;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, &m), PORTMAP_OK);
  pump(h);
  assert_int_equal(fake_pcp_requests(h->f, PCP_OP_PEER), 1);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_MAPPED);
  assert_int_equal(last_event(h)->info.is_peer, 1);
  /* I1: PEER cannot delete: revoking stops renewing, sends nothing */
  portmap_mapping_revoke(m);
  pump(h);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_DELETED);
  assert_int_equal(fake_pcp_requests(h->f, PCP_OP_PEER), 1);
}

/* The optional parts are kept together in one block sized to them: each
 * one reaches the wire intact whatever the others are. */
static void test_A_J_optional_parts_together(void **state) {
  h_t *h = *state;
  client_up(h);
  fake_pcp_set_allow_third_party(h->f, 1);
  portmap_filter_t flt[3] = {{"192.0.2.0", 24, 0}, {"198.51.100.1", 32, 443}, {"", 0, 0}};
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = 8000;
  req.external_port = 9000;
  req.external_address = "198.51.100.7";
  req.description = "all of them";
  req.third_party = "127.0.0.2";
  req.filters = flt;
  req.n_filters = 3;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, NULL), PORTMAP_OK);
  pump(h);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_MAPPED);
  pcp_msg_t r;
  assert_int_equal(fake_pcp_last_request(h->f, &r), 0);
  const uint8_t ext[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 51, 100, 7};
  const uint8_t tp[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 2};
  const uint8_t f1[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 51, 100, 1};
  assert_int_equal(r.external_port, 9000);
  assert_memory_equal(r.external_addr, ext, 16);
  assert_true(r.has_third_party);
  assert_memory_equal(r.third_party, tp, 16);
  assert_int_equal(r.n_filters, 3);
  assert_int_equal(r.filters[0].prefix_len, 96 + 24);
  assert_memory_equal(r.filters[1].addr, f1, 16);
  assert_int_equal(r.filters[1].port, 443);
  assert_int_equal(r.filters[2].prefix_len, 0);
  assert_int_equal(r.description_len, 11);
  assert_memory_equal(r.description, "all of them", 11);
  assert_memory_equal(last_event(h)->info.internal_address.bytes, tp, 16);
  /* a PEER with a suggested address, THIRD_PARTY and a description */
  portmap_request_init(&req);
  req.internal_port = 8001;
  req.external_address = "198.51.100.7";
  req.description = "peer";
  req.third_party = "127.0.0.2";
  req.peer_address = "203.0.113.9";
  req.peer_port = 5060;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, NULL), PORTMAP_OK);
  pump(h);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_MAPPED);
  assert_int_equal(fake_pcp_last_request(h->f, &r), 0);
  const uint8_t peer[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 9};
  assert_int_equal(r.opcode, PCP_OP_PEER);
  assert_memory_equal(r.peer_addr, peer, 16);
  assert_int_equal(r.peer_port, 5060);
  assert_memory_equal(r.external_addr, ext, 16);
  assert_memory_equal(r.third_party, tp, 16);
  assert_int_equal(r.description_len, 4);
  assert_memory_equal(r.description, "peer", 4);
}

/* ---- bad API input ---- */

static void test_H1_I1_J1_bad_requests_rejected(void **state) {
  h_t *h = *state;
  client_up(h);
  portmap_request_t req;
  portmap_request_init(&req);
  assert_int_equal(portmap_map(h->c, NULL, h_cb, h, NULL), PORTMAP_ERR_INVALID);
  assert_int_equal(portmap_map(NULL, &req, h_cb, h, NULL), PORTMAP_ERR_INVALID);
  req.internal_port = 0; /* TCP without a port */
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, NULL), PORTMAP_ERR_PORT);
  req.protocol = 0; /* H1: all protocols needs port 0 */
  req.internal_port = 80;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, NULL), PORTMAP_ERR_PORT);
  req.protocol = 256;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, NULL), PORTMAP_ERR_INVALID);
  portmap_request_init(&req);
  req.internal_port = 80;
  req.lifetime = 86401;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, NULL), PORTMAP_ERR_LIFETIME);
  req.lifetime = UINT32_MAX;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, NULL), PORTMAP_ERR_LIFETIME);
  portmap_request_init(&req);
  req.internal_port = 80;
  req.peer_address = "203.0.113.9";
  req.peer_port = 80;
  req.flags = PORTMAP_FLAG_PREFER_FAILURE; /* I1 */
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, NULL), PORTMAP_ERR_OPTION);
  req.flags = 0;
  req.peer_port = 0;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, NULL), PORTMAP_ERR_PORT);
  req.peer_port = 80;
  req.peer_address = "not-an-address";
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, NULL), PORTMAP_ERR_ADDRESS);
  req.peer_address = "2001:db8::1"; /* wrong family for an IPv4 mapping */
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, NULL), PORTMAP_ERR_ADDRESS);
  portmap_request_init(&req);
  req.internal_port = 80;
  req.third_party = "127.0.0.1"; /* J1: our own address */
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, NULL), PORTMAP_ERR_THIRD_PARTY);
  req.third_party = NULL;
  req.description = "\xff\xfe bad utf-8";
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, NULL), PORTMAP_ERR_OPTION);
  char longd[200];
  memset(longd, 'a', sizeof longd - 1);
  longd[sizeof longd - 1] = '\0';
  req.description = longd;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, NULL), PORTMAP_ERR_OPTION);
  req.description = NULL;
  portmap_filter_t bad = {"192.0.2.0", 33, 0};
  req.filters = &bad;
  req.n_filters = 1;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, NULL), PORTMAP_ERR_OPTION);
  req.n_filters = 9;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, NULL), PORTMAP_ERR_OPTION);
  pump(h);
  assert_int_equal(fake_pcp_received(h->f), 0); /* nothing reached the wire */
  assert_int_equal(h->n_ev, 0);
}

static void test_bad_config_rejected(void **state) {
  (void)state;
  portmap_config_t cfg;
  portmap_config_init(&cfg);
  portmap_client_t *c = NULL;
  assert_int_equal(portmap_client_new(&cfg, NULL), PORTMAP_ERR_INVALID);
  cfg.gateway = "999.1.1.1";
  assert_int_equal(portmap_client_new(&cfg, &c), PORTMAP_ERR_ADDRESS);
  assert_null(c);
  portmap_config_init(&cfg);
  cfg.backends = 64;
  assert_int_equal(portmap_client_new(&cfg, &c), PORTMAP_ERR_INVALID);
  assert_int_equal(portmap_client_free(NULL), PORTMAP_OK);
  assert_int_equal(portmap_mapping_revoke(NULL), PORTMAP_ERR_INVALID);
  assert_int_equal(portmap_mapping_info(NULL, NULL), PORTMAP_ERR_INVALID);
  assert_int_equal(portmap_process(NULL), PORTMAP_ERR_INVALID);
  assert_int_equal(portmap_timeout_ms(NULL), -1);
}

/* ---- callbacks and lifetime of handles ---- */

static void test_revoke_and_free_from_callback(void **state) {
  h_t *h = *state;
  client_up(h);
  h->revoke_in_cb = 1;
  map_tcp(h, 8000, 3600);
  pump(h);
  assert_int_equal(h->free_in_cb, PORTMAP_ERR_RECURSIVE);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_DELETED);
  assert_int_equal(fake_pcp_mapping_count(h->f), 0);
}

static void test_free_deletes_every_mapping(void **state) {
  h_t *h = *state;
  client_up(h);
  map_tcp(h, 8000, 3600);
  map_tcp(h, 8001, 3600);
  pump(h);
  assert_int_equal(fake_pcp_mapping_count(h->f), 2);
  /* Nothing answers during free (the fake runs on this thread): the deletes
   * go out, the bounded wait ends, and the fake applies them afterwards. */
  portmap_client_t *c = h->c;
  h->c = NULL;
  /* free sends the deletes, then waits at most destroy_timeout_ms */
  portmap_client_free(c);
  fake_pcp_process_at(h->f, h->now);
  assert_int_equal(fake_pcp_mapping_count(h->f), 0);
  assert_int_equal(count_events(h, PORTMAP_EVENT_FAILED) + count_events(h, PORTMAP_EVENT_DELETED),
                   2);
}

static void test_detach_keeps_mapping(void **state) {
  h_t *h = *state;
  client_up(h);
  portmap_mapping_t *m = map_tcp(h, 8000, 3600);
  pump(h);
  assert_int_equal(portmap_mapping_detach(m), PORTMAP_OK);
  portmap_client_free(h->c);
  h->c = NULL;
  fake_pcp_process_at(h->f, h->now);
  assert_int_equal(fake_pcp_mapping_count(h->f), 1);
  assert_int_equal(map_requests(h), 1);
}

static void test_once_expires_without_renewal(void **state) {
  h_t *h = *state;
  client_up(h);
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = 8000;
  req.lifetime = 200;
  req.flags = PORTMAP_FLAG_ONCE;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, NULL), PORTMAP_OK);
  pump(h);
  advance(h, 199000);
  assert_int_equal(map_requests(h), 1);
  advance(h, 2000);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_DELETED);
}

static void test_lost_then_recreated_after_expiry(void **state) {
  h_t *h = *state;
  client_up(h);
  map_tcp(h, 8000, 200);
  pump(h);
  fake_pcp_set_silent(h->f, 1);
  advance(h, 201000);
  assert_int_equal(count_events(h, PORTMAP_EVENT_LOST), 1);
  fake_pcp_set_silent(h->f, 0);
  advance(h, 60000);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_RENEWED);
  assert_int_equal(fake_pcp_mapping_count(h->f), 1);
}

/* ---- the real clock: own-thread mode and the blocking call ---- */

typedef struct tw {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int mapped;
  int deleted;
} tw_t;

static void tw_cb(portmap_mapping_t *m, portmap_event_t e, const portmap_info_t *info, void *u) {
  (void)m;
  (void)info;
  tw_t *w = u;
  pthread_mutex_lock(&w->mu);
  if (e == PORTMAP_EVENT_MAPPED)
    w->mapped = 1;
  if (e == PORTMAP_EVENT_DELETED)
    w->deleted = 1;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

static void test_thread_mode_maps(void **state) {
  h_t *h = *state;
  h->cfg.clock_cb = NULL; /* real time */
  client_up(h);
  test_fake_runner_t r;
  test_fake_runner_start(&r, &fake_pcp_ops, h->f);
  assert_int_equal(portmap_thread_start(h->c), PORTMAP_OK);
  assert_int_equal(portmap_thread_start(h->c), PORTMAP_ERR_STATE);
  tw_t w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = 8000;
  assert_int_equal(portmap_map(h->c, &req, tw_cb, &w, NULL), PORTMAP_OK);
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 2;
  pthread_mutex_lock(&w.mu);
  while (!w.mapped)
    if (pthread_cond_timedwait(&w.cv, &w.mu, &until) != 0)
      break;
  int mapped = w.mapped;
  pthread_mutex_unlock(&w.mu);
  assert_true(mapped);
  assert_int_equal(portmap_thread_stop(h->c), PORTMAP_OK);
  portmap_client_free(h->c); /* deletes; the runner still answers */
  h->c = NULL;
  test_fake_runner_stop(&r);
  assert_int_equal(fake_pcp_mapping_count(h->f), 0);
}

static void test_map_sync(void **state) {
  h_t *h = *state;
  h->cfg.clock_cb = NULL;
  client_up(h);
  test_fake_runner_t r;
  test_fake_runner_start(&r, &fake_pcp_ops, h->f);
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = 8000;
  portmap_info_t info;
  portmap_mapping_t *m = NULL;
  assert_int_equal(portmap_map_sync(h->c, &req, 1000, &info, &m), PORTMAP_OK);
  assert_non_null(m);
  assert_int_equal(info.external_port, 8000);
  /* the handle lives on: take its events and delete it */
  tw_t w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
  assert_int_equal(portmap_mapping_set_callback(m, tw_cb, &w), PORTMAP_OK);
  assert_int_equal(portmap_mapping_revoke(m), PORTMAP_OK);
  for (int i = 0; i < 100 && !w.deleted; i++) {
    (void)test_client_readable(h->c, 10);
    portmap_process(h->c);
  }
  assert_true(w.deleted); /* the new callback got the final event */
  /* the runner's thread runs the fake: look at it and change it only
   * while the runner is held */
  test_fake_runner_lock(&r);
  size_t left = fake_pcp_mapping_count(h->f);
  fake_pcp_force_result(h->f, PCP_NOT_AUTHORIZED, 1);
  test_fake_runner_unlock(&r);
  assert_int_equal(left, 0);
  req.internal_port = 8001;
  assert_int_equal(portmap_map_sync(h->c, &req, 1000, &info, NULL), PORTMAP_ERR_REFUSED);
  assert_int_equal(info.gateway_result, PCP_NOT_AUTHORIZED);
  test_fake_runner_lock(&r);
  fake_pcp_set_silent(h->f, 1);
  test_fake_runner_unlock(&r);
  req.internal_port = 8002;
  assert_int_equal(portmap_map_sync(h->c, &req, 100, &info, NULL), PORTMAP_ERR_TIMEOUT);
  test_fake_runner_lock(&r);
  fake_pcp_set_silent(h->f, 0);
  test_fake_runner_unlock(&r);
  portmap_client_free(h->c);
  h->c = NULL;
  test_fake_runner_stop(&r);
  assert_int_equal(fake_pcp_mapping_count(h->f), 0);
}

static void test_Q21_closed_port_is_immediate(void **state) {
  h_t *h = *state;
  h->cfg.server_port = test_free_udp_port(INADDR_LOOPBACK); /* nothing listens there */
  client_up(h);
  map_tcp(h, 8000, 3600);
  for (int i = 0; i < 20 && h->n_ev == 0; i++) {
    (void)test_client_readable(h->c, 20);
    portmap_process(h->c);
  }
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_FAILED);
  assert_int_equal(last_event(h)->info.status, PORTMAP_ERR_UNREACHABLE);
}

static void test_B1_A4_ipv6_mapping(void **state) {
  h_t *h = *state;
  fake_pcp_free(h->f);
  h->f = fake_pcp_new(1);
  assert_non_null(h->f);
  fake_pcp_set_time(h->f, h->now);
  const uint8_t ext6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x77};
  fake_pcp_set_external(h->f, ext6);
  h->cfg.gateway = "::1";
  h->cfg.server_port = fake_pcp_port(h->f);
  client_up(h);
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = 8000;
  req.ipv6 = 1;
  portmap_mapping_t *m = NULL;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, &m), PORTMAP_OK);
  pump(h);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_MAPPED);
  assert_string_equal(last_event(h)->info.external_address_str, "2001:db8::77");
  pcp_msg_t r;
  fake_pcp_last_request(h->f, &r);
  const uint8_t lo6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  assert_memory_equal(r.client_addr, lo6, 16); /* A4: ::1, not mapped */
  const uint8_t any6[16] = {0};
  assert_memory_equal(r.external_addr, any6, 16); /* A7: :: for IPv6 */
  portmap_mapping_revoke(m);
  pump(h);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_DELETED);
  assert_int_equal(fake_pcp_mapping_count(h->f), 0);
}

static void test_F3_A10_version1_response_dropped(void **state) {
  h_t *h = *state;
  client_up(h);
  fake_pcp_set_silent(h->f, 1);
  map_tcp(h, 8000, 3600);
  pump(h);
  /* a reply shaped like the pre-RFC version 1 is not PCP to us */
  pcp_msg_t req;
  assert_int_equal(fake_pcp_last_request(h->f, &req), 0);
  req.result = 0;
  req.lifetime = 3600;
  uint8_t pkt[PCP_MAX_PACKET];
  size_t len = 0;
  assert_int_equal(pcp_encode_response(&req, pkt, sizeof pkt, &len), PCP_WIRE_OK);
  pkt[0] = 1;
  struct sockaddr_storage to;
  socklen_t tl;
  assert_int_equal(fake_pcp_last_source(h->f, &to, &tl), 0);
  assert_int_equal(fake_pcp_send_raw(h->f, (struct sockaddr *)&to, tl, pkt, len, 0), 0);
  pump(h);
  portmap_stats_t st;
  portmap_client_stats(h->c, &st);
  assert_int_equal(st.malformed, 1);
  assert_int_equal(h->n_ev, 0);
  pkt[0] = 2; /* the same datagram as version 2 is accepted */
  assert_int_equal(fake_pcp_send_raw(h->f, (struct sockaddr *)&to, tl, pkt, len, 0), 0);
  pump(h);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_MAPPED);
}

static void test_I2_B2_peer_renewal_suggests_previous(void **state) {
  h_t *h = *state;
  client_up(h);
  fake_pcp_reserve_port(h->f, 6, 8000);
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = 8000;
  req.lifetime = 200;
  req.peer_address = "203.0.113.9";
  req.peer_port = 5060;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, NULL), PORTMAP_OK);
  pump(h);
  uint16_t got = last_event(h)->info.external_port;
  assert_true(got != 0 && got != 8000);
  fake_pcp_reboot(h->f, h->now); /* state lost: the renewal re-creates it */
  advance(h, 130000);
  pcp_msg_t r;
  fake_pcp_last_request(h->f, &r);
  assert_int_equal(r.opcode, PCP_OP_PEER);
  assert_int_equal(r.external_port, got); /* I2 */
  /* B2: every request of the mapping went to the one server */
  assert_int_equal(fake_pcp_requests(h->f, PCP_OP_PEER), 2);
  portmap_stats_t st;
  portmap_client_stats(h->c, &st);
  assert_int_equal(st.sent, 2);
}

static void test_K1_probe_sends_announce(void **state) {
  h_t *h = *state;
  client_up(h);
  test_fake_runner_t r;
  test_fake_runner_start(&r, &fake_pcp_ops, h->f);
  portmap_probe_result_t res;
  assert_int_equal(portmap_probe_sync(h->c, 1000, &res), PORTMAP_OK);
  test_fake_runner_stop(&r);
  assert_int_equal(fake_pcp_requests(h->f, PCP_OP_ANNOUNCE), 1);
  pcp_msg_t req;
  fake_pcp_last_request(h->f, &req);
  assert_int_equal(req.opcode, PCP_OP_ANNOUNCE);
  assert_int_equal(req.lifetime, 0); /* K1 */
  assert_int_equal(res.pcp.available, 1);
  assert_int_equal(res.selected, PORTMAP_BACKEND_PCP);
  assert_string_equal(res.gateway, "127.0.0.1");
  assert_string_equal(res.local_address, "127.0.0.1");
}

static void test_G4_probe_not_authorized(void **state) {
  h_t *h = *state;
  client_up(h);
  fake_pcp_force_result(h->f, PCP_NOT_AUTHORIZED, 1);
  test_fake_runner_t r;
  test_fake_runner_start(&r, &fake_pcp_ops, h->f);
  portmap_probe_result_t res;
  assert_int_equal(portmap_probe_sync(h->c, 1000, &res), PORTMAP_OK);
  test_fake_runner_stop(&r);
  assert_int_equal(res.pcp.available, 0);
  assert_int_equal(res.pcp.error, PORTMAP_ERR_REFUSED);
  assert_int_equal(res.pcp.gateway_result, PCP_NOT_AUTHORIZED);
  assert_int_equal(res.selected, PORTMAP_BACKEND_NONE);
}

void portmap_client_gateway_changed(portmap_client_t *c, int have4, const uint8_t gw4[16],
                                    int have6, const uint8_t gw6[16], unsigned scope6,
                                    uint64_t now);
uint64_t portmap_client_now(portmap_client_t *c);

static void test_B6_new_gateway_is_a_new_server(void **state) {
  h_t *h = *state;
  client_up(h);
  map_tcp(h, 8000, 3600);
  pump(h);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_MAPPED);
  advance(h, 60000);
  /* the network moved: a new router answers on 127.0.0.2, epoch 0 */
  fake_pcp_t *second = fake_pcp_new_at(0, 0x7F000002u, fake_pcp_port(h->f));
  assert_non_null(second);
  fake_pcp_set_time(second, h->now);
  const uint8_t gw2[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 2};
  const uint8_t none[16] = {0};
  fake_pcp_t *old = h->f;
  h->f = second; /* pump() drives the new one */
  portmap_client_gateway_changed(h->c, 1, gw2, 0, none, 0, h->now);
  pump(h);
  assert_int_equal(fake_pcp_mapping_count(second), 1);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_CHANGED);
  /* fresh epoch state: an epoch of 0 from the new server is no reboot */
  portmap_stats_t st;
  portmap_client_stats(h->c, &st);
  assert_int_equal(st.epoch_invalid, 0);
  /* the same nonce keeps working for the mapping's life (D2) */
  pcp_msg_t r;
  fake_pcp_last_request(second, &r);
  assert_memory_equal(r.nonce, h->ev[0].info.nonce, 12);
  /* nothing more goes to the old gateway */
  unsigned old_requests = fake_pcp_received(old);
  advance(h, 3600000);
  fake_pcp_process_at(old, h->now);
  assert_int_equal(fake_pcp_received(old), old_requests);
  fake_pcp_free(old);
}

static void test_E6_default_clock_is_monotonic(void **state) {
  h_t *h = *state;
  h->cfg.clock_cb = NULL;
  client_up(h);
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t mono = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
  uint64_t ours = portmap_client_now(h->c);
  assert_true(ours >= mono && ours - mono < 1000);
}

static void log_calls_back(portmap_log_level_t level, const char *msg, void *user) {
  (void)level;
  (void)msg;
  h_t *h = user;
  portmap_stats_t st;
  h->logs++;
  /* a sink may call the library: it never runs under the lock */
  h->stats_in_log = portmap_client_stats(h->c, &st);
}

static void test_log_sink_may_call_the_library(void **state) {
  h_t *h = *state;
  h->cfg.log_cb = log_calls_back;
  h->cfg.log_user = h;
  h->cfg.log_level = PORTMAP_LOG_DEBUG;
  h->stats_in_log = PORTMAP_ERR_STATE;
  client_up(h);
  fake_pcp_set_q26(h->f, 1); /* logs "retrying without DESCRIPTION" */
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = 8000;
  req.description = "x";
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, NULL), PORTMAP_OK);
  pump(h);
  assert_true(h->logs > 0);
  assert_int_equal(h->stats_in_log, PORTMAP_OK);
}

static void test_G1_absurd_error_lifetime_clamped(void **state) {
  h_t *h = *state;
  h->cfg.request_timeout_ms = 5000;
  client_up(h);
  fake_pcp_set_error_lifetimes(h->f, UINT32_MAX, UINT32_MAX);
  fake_pcp_force_result(h->f, PCP_NO_RESOURCES, 1);
  map_tcp(h, 8000, 3600);
  pump(h);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_LOST);
  map_tcp(h, 8001, 3600); /* G2 holds it back, but not past its timeout */
  advance(h, 5100);
  assert_int_equal(count_events(h, PORTMAP_EVENT_FAILED), 2);
  assert_int_equal(last_event(h)->info.status, PORTMAP_ERR_TIMEOUT);
  /* without a request timeout the wait is at most 30 minutes */
  portmap_client_free(h->c);
  h->c = NULL;
  h->cfg.request_timeout_ms = 0;
  h->n_ev = 0;
  client_up(h);
  fake_pcp_force_result(h->f, PCP_NO_RESOURCES, 1);
  map_tcp(h, 8002, 3600);
  pump(h);
  advance(h, 1798999); /* not before 1799 s (the 30 s network checks run meanwhile) */
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_LOST);
  advance(h, 1101); /* by 1800 s */
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_MAPPED);
}

static void test_J2_prefix_zero_removes_filters(void **state) {
  h_t *h = *state;
  client_up(h);
  portmap_filter_t all = {NULL, 0, 0};
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = 8000;
  req.filters = &all;
  req.n_filters = 1;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, NULL), PORTMAP_OK);
  pump(h);
  pcp_msg_t r;
  fake_pcp_last_request(h->f, &r);
  assert_int_equal(r.n_filters, 1);
  assert_int_equal(r.filters[0].prefix_len, 0); /* not 96: 0 removes every filter */
}

static void test_no_new_mapping_once_free_began(void **state) {
  h_t *h = *state;
  client_up(h);
  map_tcp(h, 8000, 3600);
  pump(h);
  h->map_in_cb = 1;
  h->cb_client = h->c;
  h->map_in_cb_status = PORTMAP_OK;
  portmap_client_t *c = h->c;
  h->c = NULL;
  portmap_client_free(c); /* its final event asks for a new mapping */
  assert_int_equal(h->map_in_cb_status, PORTMAP_ERR_STATE);
}

static void test_B6_gateway_lost_then_back(void **state) {
  h_t *h = *state;
  client_up(h);
  map_tcp(h, 8000, 3600);
  pump(h);
  const uint8_t none[16] = {0};
  const uint8_t gw[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1};
  portmap_client_gateway_changed(h->c, 0, none, 0, none, 0, h->now); /* Wi-Fi roam */
  pump(h);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_LOST);
  assert_int_equal(last_event(h)->info.status, PORTMAP_ERR_NO_GATEWAY);
  advance(h, 10000);
  assert_int_equal(count_events(h, PORTMAP_EVENT_FAILED), 0); /* it waits */
  portmap_client_gateway_changed(h->c, 1, gw, 0, none, 0, h->now);
  pump(h);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_CHANGED);
}

/* The callback may run on either thread: mapped is stored with release
 * after process_status and loaded with acquire. */
typedef struct rec_h {
  portmap_client_t *c;
  int mapped;
  portmap_status_t process_status;
} rec_h_t;

static void recursive_cb(portmap_mapping_t *m, portmap_event_t e, const portmap_info_t *info,
                         void *u) {
  (void)m;
  (void)info;
  rec_h_t *r = u;
  if (e != PORTMAP_EVENT_MAPPED)
    return;
  r->process_status = portmap_process(r->c);
  __atomic_store_n(&r->mapped, 1, __ATOMIC_RELEASE);
}

/* A scripted route table (portmap_client_new_routes): the IPv4 default
 * route is the fake on 127.0.0.1, an IPv6 one comes and goes. */
typedef struct routes {
  int have4, have6;
  unsigned calls;
  int v6_loopback; /* the IPv6 default router is ::1 (a second fake) */
} routes_t;

static int scripted_routes(void *user, int ipv6, uint8_t gw[16], unsigned *scope) {
  routes_t *r = user;
  static const uint8_t v4[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1};
  static const uint8_t v6[16] = {0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  static const uint8_t lo6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  r->calls++;
  if (ipv6 ? !r->have6 : !r->have4)
    return -1;
  memcpy(gw, ipv6 ? (r->v6_loopback ? lo6 : v6) : v4, 16);
  /* fe80::1%lo is never sent to in the first test (no IPv6 mapping there) */
  *scope = ipv6 && !r->v6_loopback ? 1u : 0u;
  return 0;
}

/* B1, B6 per family: an IPv6 default route that appears or expires is no
 * change for IPv4 mappings (nor their server, epoch or socket), and the
 * other way round an IPv4 change leaves the IPv6 state alone. */
static void test_B6_ipv6_route_change_spares_ipv4(void **state) {
  h_t *h = *state;
  routes_t r = {1, 0, 0, 0};
  h->cfg.gateway = NULL;
  assert_int_equal(portmap_client_new_routes(&h->cfg, scripted_routes, &r, &h->c), PORTMAP_OK);
  assert_true(r.calls >= 2); /* both families asked the scripted source */
  map_tcp(h, 8000, 3600);
  pump(h);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_MAPPED);
  unsigned maps = map_requests(h);
  size_t events = h->n_ev;
  r.have6 = 1; /* a router advertisement: an IPv6 default route appears */
  assert_int_equal(portmap_network_changed(h->c), PORTMAP_OK);
  advance(h, 1000);
  r.have6 = 0; /* ... and expires */
  assert_int_equal(portmap_network_changed(h->c), PORTMAP_OK);
  advance(h, 1000);
  assert_int_equal(h->n_ev, events);       /* no LOST, no CHANGED */
  assert_int_equal(map_requests(h), maps); /* nothing mapped again */
  portmap_stats_t st;
  portmap_client_stats(h->c, &st);
  assert_int_equal(st.epoch_invalid, 0);
  /* the IPv4 mapping still renews with its server */
  advance(h, 2300000);
  assert_true(count_events(h, PORTMAP_EVENT_RENEWED) >= 1);
  assert_int_equal(count_events(h, PORTMAP_EVENT_LOST), 0);
  /* an IPv4 change still moves the IPv4 mapping (B6) */
  r.have4 = 0;
  assert_int_equal(portmap_network_changed(h->c), PORTMAP_OK);
  advance(h, 1000);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_LOST);
  r.have4 = 1;
  assert_int_equal(portmap_network_changed(h->c), PORTMAP_OK);
  advance(h, 1000);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_CHANGED);
}

/* The other way round: an IPv4 change leaves an IPv6 mapping, its server
 * (::1, a second fake on the same port) and its epoch alone. */
static void test_B6_ipv4_route_change_spares_ipv6(void **state) {
  h_t *h = *state;
  h->f6 = fake_pcp_new_at(1, 0, fake_pcp_port(h->f));
  assert_non_null(h->f6);
  fake_pcp_set_time(h->f6, h->now);
  routes_t r = {1, 1, 0, 1};
  h->cfg.gateway = NULL;
  assert_int_equal(portmap_client_new_routes(&h->cfg, scripted_routes, &r, &h->c), PORTMAP_OK);
  portmap_mapping_t *m4 = map_tcp(h, 8000, 3600);
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = 9000;
  req.lifetime = 3600;
  req.ipv6 = 1;
  portmap_mapping_t *m6 = NULL;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, &m6), PORTMAP_OK);
  pump(h);
  assert_int_equal(count_events(h, PORTMAP_EVENT_MAPPED), 2);
  unsigned maps6 = fake_pcp_requests(h->f6, PCP_OP_MAP);
  r.have4 = 0;
  assert_int_equal(portmap_network_changed(h->c), PORTMAP_OK);
  advance(h, 1000);
  r.have4 = 1;
  assert_int_equal(portmap_network_changed(h->c), PORTMAP_OK);
  advance(h, 1000);
  for (size_t i = 0; i < h->n_ev; i++)
    if (h->ev[i].m == m6)
      assert_int_equal(h->ev[i].event, PORTMAP_EVENT_MAPPED); /* nothing else for it */
  assert_int_equal(fake_pcp_requests(h->f6, PCP_OP_MAP), maps6);
  assert_int_equal(last_event(h)->event, PORTMAP_EVENT_CHANGED);
  assert_ptr_equal(last_event(h)->m, m4);
  assert_int_equal(fake_pcp_mapping_count(h->f6), 1);
  portmap_mapping_revoke(m6);
  portmap_mapping_revoke(m4);
  pump(h);
  assert_int_equal(fake_pcp_mapping_count(h->f6), 0);
}

static void test_callbacks_from_one_thread_at_a_time(void **state) {
  h_t *h = *state;
  h->cfg.clock_cb = NULL;
  client_up(h);
  test_fake_runner_t fr;
  test_fake_runner_start(&fr, &fake_pcp_ops, h->f);
  assert_int_equal(portmap_thread_start(h->c), PORTMAP_OK);
  rec_h_t r = {h->c, 0, PORTMAP_ERR_STATE};
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = 8000;
  assert_int_equal(portmap_map(h->c, &req, recursive_cb, &r, NULL), PORTMAP_OK);
  /* this thread drives the client too, racing the library's thread */
  int mapped = 0;
  for (int i = 0; i < 2000 && !mapped; i++) {
    portmap_process(h->c);
    struct pollfd p = {-1, 0, 0};
    poll(&p, 0, 1);
    mapped = __atomic_load_n(&r.mapped, __ATOMIC_ACQUIRE);
  }
  assert_true(mapped);
  assert_int_equal(r.process_status, PORTMAP_ERR_RECURSIVE);
  assert_int_equal(portmap_thread_stop(h->c), PORTMAP_OK);
  portmap_client_free(h->c);
  h->c = NULL;
  test_fake_runner_stop(&fr);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_A4_A5_map_and_fields),
      T(test_D1_nonce_from_injected_csprng),
      T(test_C1_C2_C4_retransmission_schedule),
      T(test_C2_fresh_rand_per_send),
      T(test_C3_mrc_gives_up),
      T(test_C3_mrd_gives_up),
      T(test_B3_spoofed_port_ignored),
      T(test_B4_duplicate_responses_one_event),
      T(test_B4_reordered_responses),
      T(test_D3_control_map_response_taken),
      T(test_D3_control_peer_response_taken),
      T(test_D3_other_nonce_ignored),
      T(test_D3_A10_other_opcode_ignored),
      T(test_D3_other_protocol_ignored),
      T(test_D3_other_internal_port_ignored),
      T(test_D3_other_third_party_ignored),
      T(test_D3_unrequested_third_party_ignored),
      T(test_D3_peer_other_remote_address_ignored),
      T(test_D3_peer_other_remote_port_ignored),
      T(test_A9_garbage_and_truncated_dropped),
      T(test_F2_natpmp_gateway_detected),
      T(test_F2_natpmp_opcode_zero),
      T(test_F2_natpmp_reply_spares_established_mappings),
      T(test_G4_not_authorized_fails),
      T(test_G1_G3_short_error_honours_lifetime),
      T(test_G3_renewal_error_keeps_assigned),
      T(test_G2_no_new_mappings_after_no_resources),
      T(test_A12_unknown_result_is_long_error),
      T(test_H4_H5_renewal_schedule),
      T(test_H5_renewal_retried_4s_later),
      T(test_H5_no_retry_without_4s_room),
      T(test_H5_renewal_windows_on_the_wire),
      T(test_H5_renewals_4s_apart_on_the_wire),
      T(test_H2_H3_renewal_suggests_assigned),
      T(test_H6_D2_delete_same_nonce),
      T(test_H6_delete_retransmitted),
      T(test_Q18_delete_with_persisted_nonce),
      T(test_H8_prefer_failure),
      T(test_H7_unsolicited_update_changes_address),
      T(test_E5_reboot_seen_on_renewal_recreates_all),
      T(test_A1_K2_announce_recovery_once),
      T(test_B5_announce_from_other_source_dropped),
      T(test_J3_Q26_description_retried_without),
      T(test_J1_Q27_third_party_refused),
      T(test_J1_third_party_on_renew_and_delete),
      T(test_J2_filters_resent_on_renewal),
      T(test_I1_peer_mapping),
      T(test_A_J_optional_parts_together),
      T(test_H1_I1_J1_bad_requests_rejected),
      T(test_bad_config_rejected),
      T(test_revoke_and_free_from_callback),
      T(test_free_deletes_every_mapping),
      T(test_detach_keeps_mapping),
      T(test_once_expires_without_renewal),
      T(test_lost_then_recreated_after_expiry),
      T(test_thread_mode_maps),
      T(test_map_sync),
      T(test_Q21_closed_port_is_immediate),
      T(test_B1_A4_ipv6_mapping),
      T(test_F3_A10_version1_response_dropped),
      T(test_I2_B2_peer_renewal_suggests_previous),
      T(test_K1_probe_sends_announce),
      T(test_G4_probe_not_authorized),
      T(test_B6_new_gateway_is_a_new_server),
      T(test_E6_default_clock_is_monotonic),
      T(test_log_sink_may_call_the_library),
      T(test_G1_absurd_error_lifetime_clamped),
      T(test_J2_prefix_zero_removes_filters),
      T(test_no_new_mapping_once_free_began),
      T(test_B6_gateway_lost_then_back),
      T(test_B6_ipv6_route_change_spares_ipv4),
      T(test_B6_ipv4_route_change_spares_ipv6),
      T(test_callbacks_from_one_thread_at_a_time),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
