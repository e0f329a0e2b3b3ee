/* SPDX-License-Identifier: MIT */
/*
 * The fast path of choosing a backend (probe.c), against a PCP, a NAT-PMP
 * and a UPnP fake that share one loopback "gateway" (127.0.0.93: PCP on an
 * ephemeral port, NAT-PMP on 5351, SSDP and HTTP on ports of their own):
 *   - a mapping made before any probe asks PCP with its own MAP, and nothing
 *     else goes out when PCP answers within the stage delay;
 *   - PCP and NAT-PMP silent, UPnP answering: the mapping is made on UPnP a
 *     few round trips (the 30 ms floor on loopback) after UPnP answered,
 *     not at the 500 ms budget;
 *   - a PCP answer within the budget moves it from UPnP to PCP (CHANGED),
 *     the UPnP entry deleted on the gateway before PCP is asked;
 *   - version negotiation (F2) still leads to NAT-PMP;
 *   - an explicit probe asks all three protocols at once.
 * The client's clock is injected and moves only when the test says so; the
 * UPnP fake and the client's UPnP worker run in real time, waited for in
 * bounded 10 ms poll steps (never sleep()).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <portmap/portmap.h>

#include "test_support.h"
#include "fake_natpmp.h"
#include "fake_pcp.h"
#include "fake_upnp.h"
#include "internal.h"
#include "pcp/wire.h"

#define GW "127.0.0.93"
#define GW_HOST 0x7F00005Du
#define MAX_EVENTS 32
#define MAX_SENT 256
#define WAIT_MS 3000
#define NATPMP_TEST_PORT 5351 /* libnatpmp's, always */

typedef test_ev_t ev_t;

/* One datagram the client sent or received (its trace). */
typedef struct pkt {
  int sent;
  uint16_t port;
  uint8_t first[2]; /* version and opcode octets */
  uint64_t at;      /* the client's clock */
} pkt_t;

typedef struct h {
  uint64_t now;
  uint64_t rng;
  fake_pcp_t *pcp;
  fake_natpmp_t *nat;
  fake_upnp_t *upnp;
  portmap_client_t *c;
  portmap_config_t cfg;
  ev_t ev[MAX_EVENTS];
  size_t n_ev;
  pkt_t pkt[MAX_SENT];
  size_t n_pkt;
  int delete_seen_first; /* the second MAP came after the UPnP entry was gone */
  unsigned maps_seen;
} h_t;

static uint64_t real_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t h_clock(void *u) {
  return ((h_t *)u)->now;
}

static int h_random(void *buf, size_t len, void *u) {
  test_splitmix_fill(&((h_t *)u)->rng, buf, len);
  return 0;
}

static void h_cb(portmap_mapping_t *m, portmap_event_t e, const portmap_info_t *info, void *u) {
  h_t *h = u;
  test_ev_add(h->ev, MAX_EVENTS, &h->n_ev, m, e, info, h->now);
}

static void h_trace(int sent, const char *peer, uint16_t port, const uint8_t *data, size_t len,
                    void *u) {
  h_t *h = u;
  (void)peer;
  if (h->n_pkt >= MAX_SENT)
    return;
  pkt_t *p = &h->pkt[h->n_pkt++];
  p->sent = sent;
  p->port = port;
  p->first[0] = len > 0 ? data[0] : 0;
  p->first[1] = len > 1 ? data[1] : 0;
  p->at = h->now;
}

static int setup(void **state) {
  h_t *h = calloc(1, sizeof *h);
  assert_non_null(h);
  h->now = 7000000;
  h->rng = 11;
  h->pcp = fake_pcp_new_v4(0, GW_HOST);
  h->nat = fake_natpmp_new(GW);
  h->upnp = fake_upnp_new_at(FAKE_UPNP_IGD1, GW);
  assert_non_null(h->pcp);
  assert_non_null(h->nat);
  assert_non_null(h->upnp);
  fake_pcp_set_time(h->pcp, h->now);
  fake_natpmp_set_time(h->nat, h->now);
  portmap_config_init(&h->cfg);
  h->cfg.gateway = GW;
  h->cfg.backends = PORTMAP_BACKEND_ALL;
  h->cfg.server_port = fake_pcp_port(h->pcp);
  h->cfg.ssdp_port = fake_upnp_ssdp_port(h->upnp);
  h->cfg.announce_port = -1;
  h->cfg.upnp_timeout_ms = 1000;
  h->cfg.destroy_timeout_ms = 1500;
  h->cfg.clock_cb = h_clock;
  h->cfg.clock_user = h;
  h->cfg.random_cb = h_random;
  h->cfg.random_user = h;
  h->cfg.trace_cb = h_trace;
  h->cfg.trace_user = h;
  *state = h;
  return 0;
}

static int teardown(void **state) {
  h_t *h = *state;
  if (h->c != NULL) {
    /* the deletes are answered while free waits for them */
    test_fake_runner_t rp, rn;
    test_fake_runner_start(&rp, &fake_pcp_ops, h->pcp);
    test_fake_runner_start(&rn, &fake_natpmp_ops, h->nat);
    portmap_client_free(h->c);
    test_fake_runner_stop(&rp);
    test_fake_runner_stop(&rn);
  }
  fake_pcp_free(h->pcp);
  fake_natpmp_free(h->nat);
  fake_upnp_free(h->upnp);
  free(h);
  return 0;
}

/* Let datagrams cross loopback at the current (frozen) time. */
static void pump(h_t *h) {
  for (int i = 0; i < 10; i++) {
    portmap_process(h->c);
    int a = fake_pcp_process_at(h->pcp, h->now);
    int b = fake_natpmp_process_at(h->nat, h->now);
    int busy = test_client_readable(h->c, 0);
    if (a <= 0 && b <= 0 && !busy)
      break;
  }
  portmap_process(h->c);
}

static void pump_cb(void *h) {
  pump(h);
}

/* Run every timer due up to now + ms, pumping at each step. */
static void advance(h_t *h, uint64_t ms) {
  test_advance(h->c, &h->now, ms, pump_cb, h);
}

/* Pump in 10 ms steps of real time, the client's clock frozen, until cond
 * holds or WAIT_MS pass (the UPnP worker and fake run in real time). */
#define WAIT_FOR(h, cond)                                                                          \
  do {                                                                                             \
    uint64_t end_ = real_ms() + WAIT_MS;                                                           \
    while (!(cond) && real_ms() < end_) {                                                          \
      (void)test_client_readable((h)->c, 10);                                                      \
      pump(h);                                                                                     \
    }                                                                                              \
  } while (0)

static void up(h_t *h) {
  assert_int_equal(portmap_client_new(&h->cfg, &h->c), PORTMAP_OK);
}

static portmap_mapping_t *map(h_t *h, uint16_t port) {
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = port;
  req.lifetime = 600;
  portmap_mapping_t *m = NULL;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, &m), PORTMAP_OK);
  return m;
}

static const ev_t *last(h_t *h) {
  assert_true(h->n_ev > 0);
  return &h->ev[h->n_ev - 1];
}

/* Has the probe recorded an answer from backend index i? */
static int probe_has(h_t *h, int i) {
  pthread_mutex_lock(&h->c->mu);
  int r = (h->c->probe.have & (1u << i)) != 0;
  pthread_mutex_unlock(&h->c->mu);
  return r;
}

static int is_pcp(const h_t *h, const pkt_t *p) {
  return p->port == h->cfg.server_port && p->first[0] == 2;
}

/* Datagrams the client sent to a port (before index `before` of the trace). */
static size_t sent_to(const h_t *h, uint16_t port, size_t before) {
  size_t n = 0;
  for (size_t i = 0; i < h->n_pkt && i < before; i++)
    if (h->pkt[i].sent && h->pkt[i].port == port)
      n++;
  return n;
}

/* The first datagram received from the PCP server, or n_pkt. */
static size_t first_pcp_answer(const h_t *h) {
  for (size_t i = 0; i < h->n_pkt; i++)
    if (!h->pkt[i].sent && is_pcp(h, &h->pkt[i]))
      return i;
  return h->n_pkt;
}

/* With PCP answering, a mapping made before any probe: the first datagram
 * is its MAP (not an ANNOUNCE), and NAT-PMP and SSDP are never asked since
 * PCP answered within the stage delay. The probe's PCP answer (epoch, round
 * trip) comes from the MAP's answer. Before this change the client sent an
 * ANNOUNCE, a NAT-PMP request and eight M-SEARCHes as it was created. */
static void test_map_first_asks_pcp_alone(void **state) {
  h_t *h = *state;
  up(h);
  assert_int_equal(h->n_pkt, 0); /* creating the client sends nothing */
  map(h, 8000);
  assert_true(h->n_pkt >= 1);
  assert_true(h->pkt[0].sent && is_pcp(h, &h->pkt[0]));
  assert_int_equal(h->pkt[0].first[1], PCP_OP_MAP);
  pump(h);
  assert_int_equal(last(h)->event, PORTMAP_EVENT_MAPPED);
  assert_int_equal(last(h)->info.backend, PORTMAP_BACKEND_PCP);
  assert_int_equal(fake_pcp_requests(h->pcp, PCP_OP_ANNOUNCE), 0);
  assert_int_equal(fake_natpmp_received(h->nat), 0);
  size_t answer = first_pcp_answer(h);
  assert_true(answer < h->n_pkt);
  assert_int_equal(sent_to(h, NATPMP_TEST_PORT, h->n_pkt), 0);
  assert_int_equal(sent_to(h, h->cfg.ssdp_port, h->n_pkt), 0);
  advance(h, 1000); /* the stage delay and the budget pass: still nothing else */
  assert_int_equal(fake_natpmp_received(h->nat), 0);
  fake_upnp_stats_t us;
  fake_upnp_get_stats(h->upnp, &us);
  assert_int_equal(us.msearch, 0);
  pthread_mutex_lock(&h->c->mu);
  assert_true(h->c->probe.have & 1u);
  assert_true(h->c->probe.res[0].available);
  assert_int_equal(h->c->probe.res[0].epoch, fake_pcp_epoch(h->pcp) - 1); /* 1 s ago */
  pthread_mutex_unlock(&h->c->mu);
  portmap_client_state_t cs;
  assert_int_equal(portmap_client_state(h->c, &cs), PORTMAP_OK);
  assert_int_equal(cs.backend, PORTMAP_BACKEND_PCP);
}

/* PCP and NAT-PMP drop everything, UPnP answers: NAT-PMP and SSDP go out
 * after the 10 ms stage; the mapping is made on UPnP 30 ms (the floor: the
 * measured round trip is 0 on this clock) after UPnP's answer, not at the
 * 500 ms budget as before this change (the mapping then still waited). */
static void silent_pcp_to_upnp(h_t *h, uint64_t *t0_out) {
  fake_pcp_set_silent(h->pcp, 1);
  fake_natpmp_set_silent(h->nat, 1);
  up(h);
  uint64_t t0 = h->now;
  map(h, 8000);
  pump(h);
  assert_int_equal(sent_to(h, h->cfg.ssdp_port, h->n_pkt), 0);
  advance(h, 10);
  assert_true(sent_to(h, h->cfg.ssdp_port, h->n_pkt) > 0);
  assert_int_equal(fake_natpmp_received(h->nat), 1);
  WAIT_FOR(h, probe_has(h, 2)); /* SSDP, description, two SOAP calls */
  assert_true(probe_has(h, 2));
  assert_int_equal(h->n_ev, 0);
  advance(h, 29);
  assert_int_equal(h->n_ev, 0); /* PCP and NAT-PMP still get their 30 ms */
  advance(h, 1);
  WAIT_FOR(h, h->n_ev > 0); /* AddPortMapping */
  assert_int_equal(h->n_ev, 1);
  assert_int_equal(last(h)->event, PORTMAP_EVENT_MAPPED);
  assert_int_equal(last(h)->info.backend, PORTMAP_BACKEND_UPNP);
  assert_int_equal(last(h)->at - t0, 40);
  assert_true(last(h)->at - t0 < h->cfg.probe_timeout_ms);
  assert_int_equal(fake_upnp_count(h->upnp, "AddPortMapping"), 1);
  assert_true(fake_upnp_find(h->upnp, "TCP", last(h)->info.external_port, NULL));
  *t0_out = t0;
}

static void test_silent_pcp_upnp_taken_after_a_few_round_trips(void **state) {
  h_t *h = *state;
  uint64_t t0;
  silent_pcp_to_upnp(h, &t0);
  /* nobody answers within the budget: it stays on UPnP */
  advance(h, 600);
  assert_int_equal(h->n_ev, 1);
  assert_int_equal(fake_upnp_count(h->upnp, "DeletePortMapping"), 0);
  (void)t0;
}

/* A UPnP "round trip" is the SSDP reply's delay, which a server draws at
 * random (MX): here the first M-SEARCH goes unanswered and the resent one
 * is answered 250 ms into the search. Three of those (750 ms) would outwait
 * the whole probe budget for a silent PCP; the wait is capped at 40 ms
 * (lab_timing pcp-drop: 248 ms median before the cap, 137 ms after). */
static void test_slow_ssdp_reply_outwait_capped(void **state) {
  h_t *h = *state;
  fake_pcp_set_silent(h->pcp, 1);
  fake_natpmp_set_silent(h->nat, 1);
  fake_upnp_set_ignore_unicast(h->upnp, 1);
  up(h);
  map(h, 8000);
  pump(h);
  advance(h, 10); /* the first M-SEARCH, unanswered */
  assert_true(sent_to(h, h->cfg.ssdp_port, h->n_pkt) > 0);
  advance(h, 240);
  assert_false(probe_has(h, 2));
  fake_upnp_set_ignore_unicast(h->upnp, 0);
  advance(h, 10); /* the resend, 250 ms into the search: answered */
  WAIT_FOR(h, probe_has(h, 2));
  assert_true(probe_has(h, 2));
  uint64_t ok = h->now;
  advance(h, 39);
  assert_int_equal(h->n_ev, 0);
  advance(h, 1);
  WAIT_FOR(h, h->n_ev > 0);
  assert_int_equal(h->n_ev, 1);
  assert_int_equal(last(h)->info.backend, PORTMAP_BACKEND_UPNP);
  assert_int_equal(last(h)->at - ok, 40);
}

/* The second MAP (after the move) must find the UPnP entry gone already:
 * a gateway like miniupnpd keeps one rule per port for every protocol. */
static fake_pcp_hook_action_t check_upnp_gone(void *u, fake_pcp_t *f, const fake_pcp_request_t *req,
                                              pcp_msg_t *resp) {
  h_t *h = u;
  (void)f;
  (void)resp;
  if (req->msg.opcode == PCP_OP_MAP && req->msg.lifetime > 0 && ++h->maps_seen == 1)
    h->delete_seen_first = fake_upnp_count(h->upnp, "DeletePortMapping") == 1 &&
                           !fake_upnp_find(h->upnp, "TCP", 8000, NULL);
  return FAKE_PCP_HOOK_DEFAULT;
}

/* ... and when PCP answers within the budget after all (its ANNOUNCE at
 * half the budget), the mapping moves to PCP: the UPnP entry is deleted on
 * the gateway first, then PCP maps it, and the application sees CHANGED
 * (no DELETED, no LOST). Before this change there was no such move. */
static void test_late_pcp_answer_moves_mapping_from_upnp(void **state) {
  h_t *h = *state;
  uint64_t t0;
  silent_pcp_to_upnp(h, &t0);
  fake_pcp_set_silent(h->pcp, 0);
  fake_pcp_set_hook(h->pcp, check_upnp_gone, h);
  advance(h, t0 + 251 - h->now); /* PCP's ANNOUNCE goes out, and is answered */
  assert_int_equal(fake_pcp_requests(h->pcp, PCP_OP_ANNOUNCE), 1);
  WAIT_FOR(h, h->n_ev >= 2); /* DeletePortMapping, then PCP's MAP */
  assert_int_equal(h->n_ev, 2);
  assert_int_equal(last(h)->event, PORTMAP_EVENT_CHANGED);
  assert_int_equal(last(h)->info.backend, PORTMAP_BACKEND_PCP);
  assert_int_equal(fake_upnp_count(h->upnp, "DeletePortMapping"), 1);
  assert_int_equal(fake_upnp_entries(h->upnp, NULL, 0), 0); /* nothing left on UPnP */
  assert_int_equal(fake_pcp_mapping_count(h->pcp), 1);
  assert_int_equal(h->maps_seen, 1);
  assert_true(h->delete_seen_first);
  portmap_client_state_t cs;
  assert_int_equal(portmap_client_state(h->c, &cs), PORTMAP_OK);
  assert_int_equal(cs.backend, PORTMAP_BACKEND_PCP); /* new mappings too */
  advance(h, 2000);
  assert_int_equal(h->n_ev, 2);
}

/* Version negotiation with the MAP as the first message: an 8-octet
 * NAT-PMP UNSUPP_VERSION (F2), or a PCP answer with result UNSUPP_VERSION
 * (a server of another version, F1/F3), leads to NAT-PMP at once, without
 * the stage delay. Before this change the first datagram was an ANNOUNCE,
 * and a MAP answered UNSUPP_VERSION failed instead of moving on. */
static void negotiate(h_t *h) {
  fake_upnp_set_ignore_unicast(h->upnp, 1); /* UPnP stays out of it */
  up(h);
  map(h, 8000);
  assert_true(h->pkt[0].sent && is_pcp(h, &h->pkt[0]));
  assert_int_equal(h->pkt[0].first[1], PCP_OP_MAP);
  for (int i = 0; i < 5 && h->n_ev == 0; i++) {
    (void)test_client_readable(h->c, 10);
    pump(h); /* the clock does not move: no delay was waited out */
  }
  assert_int_equal(h->n_ev, 1);
  assert_int_equal(last(h)->event, PORTMAP_EVENT_MAPPED);
  assert_int_equal(last(h)->info.backend, PORTMAP_BACKEND_NATPMP);
  assert_int_equal(fake_natpmp_mapping_count(h->nat), 1);
  assert_int_equal(fake_pcp_requests(h->pcp, PCP_OP_ANNOUNCE), 0);
  assert_int_equal(last(h)->info.tried[0].tried, 1);
}

static void test_F2_natpmp_answer_to_the_map(void **state) {
  h_t *h = *state;
  fake_pcp_set_natpmp(h->pcp, FAKE_PCP_NATPMP_OP128);
  negotiate(h);
  assert_int_equal(last(h)->info.tried[0].status, PORTMAP_ERR_NATPMP_GATEWAY);
}

static void test_F3_pcp_unsupp_version_to_the_map(void **state) {
  h_t *h = *state;
  fake_pcp_force_result(h->pcp, PCP_UNSUPP_VERSION, 1);
  negotiate(h);
  assert_int_equal(last(h)->info.tried[0].status, PORTMAP_ERR_REFUSED);
  assert_int_equal(last(h)->info.tried[0].gateway_result, PCP_UNSUPP_VERSION);
}

/* An explicit delete (PORTMAP_FLAG_DELETE, what `portmap delete` sends from a
 * fresh client) is not a trial: a PCP "no" would end it (a delete never fails
 * over), so it waits for the probe's choice and goes to that backend. Here
 * PCP answers with the 8-octet NAT-PMP reply: deleted via NAT-PMP (lab
 * natpmp_only and upnp_fallback failed: "the gateway speaks NAT-PMP only",
 * "ICMP port unreachable", exit 1). */
static void test_delete_request_waits_for_the_probe(void **state) {
  h_t *h = *state;
  fake_pcp_set_natpmp(h->pcp, FAKE_PCP_NATPMP_OP128);
  fake_upnp_set_ignore_unicast(h->upnp, 1);
  up(h);
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = 8000;
  req.lifetime = 0;
  req.flags = PORTMAP_FLAG_DELETE;
  portmap_mapping_t *m = NULL;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, &m), PORTMAP_OK);
  for (int i = 0; i < 20 && h->n_ev == 0; i++) {
    (void)test_client_readable(h->c, 10);
    pump(h);
    advance(h, 10);
  }
  assert_int_equal(h->n_ev, 1);
  assert_int_equal(last(h)->event, PORTMAP_EVENT_DELETED);
  assert_int_equal(last(h)->info.backend, PORTMAP_BACKEND_NATPMP);
}

/* Asked explicitly (portmap_probe_sync), the client sends PCP's ANNOUNCE,
 * NAT-PMP's request and the M-SEARCHes at once, before any answer, having
 * sent nothing as it was created (before this change the creation sent
 * them all already). */
static void test_explicit_probe_asks_all_at_once(void **state) {
  h_t *h = *state;
  up(h);
  assert_int_equal(h->n_pkt, 0);
  test_fake_runner_t rp, rn;
  test_fake_runner_start(&rp, &fake_pcp_ops, h->pcp);
  test_fake_runner_start(&rn, &fake_natpmp_ops, h->nat);
  portmap_probe_result_t res;
  assert_int_equal(portmap_probe_sync(h->c, 2000, &res), PORTMAP_OK);
  test_fake_runner_stop(&rp);
  test_fake_runner_stop(&rn);
  assert_true(h->n_pkt > 0);
  size_t answer = h->n_pkt;
  for (size_t i = 0; i < h->n_pkt; i++)
    if (!h->pkt[i].sent) {
      answer = i;
      break;
    }
  assert_int_equal(sent_to(h, h->cfg.server_port, answer), 1);
  assert_int_equal(h->pkt[0].first[1], PCP_OP_ANNOUNCE);
  assert_int_equal(sent_to(h, NATPMP_TEST_PORT, answer), 1);
  assert_true(sent_to(h, h->cfg.ssdp_port, answer) > 0);
  assert_int_equal(res.selected, PORTMAP_BACKEND_PCP);
  assert_true(res.pcp.available);
  assert_true(res.natpmp.available);
  assert_true(res.upnp.available);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_map_first_asks_pcp_alone),
      T(test_silent_pcp_upnp_taken_after_a_few_round_trips),
      T(test_late_pcp_answer_moves_mapping_from_upnp),
      T(test_F2_natpmp_answer_to_the_map),
      T(test_F3_pcp_unsupp_version_to_the_map),
      T(test_slow_ssdp_reply_outwait_capped),
      T(test_delete_request_waits_for_the_probe),
      T(test_explicit_probe_asks_all_at_once),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
