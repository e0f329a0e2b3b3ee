/* SPDX-License-Identifier: MIT */
/*
 * Paced bursts: at most PORTMAP_PACE_WINDOW requests in flight per gateway,
 * the rest waiting their turn, against the fake PCP and NAT-PMP gateways
 * with the clock injected. A burst of maps, the deletes of a client being
 * freed, renewals behind a full window, and retransmissions that never
 * precede a request's first send.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <portmap/portmap.h>

#include "test_support.h"
#include "fake_natpmp.h"
#include "fake_pcp.h"
#include "internal.h"

#define BURST 2000
#define W PORTMAP_PACE_WINDOW
#define NP_GW "127.0.0.84" /* NAT-PMP is always port 5351: an address no other test binary uses */

typedef struct h {
  uint64_t now;
  uint64_t rng;
  fake_pcp_t *f;     /* PCP, or */
  fake_natpmp_t *nf; /* NAT-PMP */
  const test_fake_ops_t *ops;
  void *fake;                 /* f or nf */
  int (*release)(void *fake); /* held answers, oldest first */
  portmap_client_t *c;
  portmap_config_t cfg;
  size_t n_event[PORTMAP_EVENT_DELETED + 1];
} h_t;

static uint64_t h_clock(void *u) {
  return ((h_t *)u)->now;
}

static int h_random(void *buf, size_t len, void *u) {
  test_splitmix_fill(&((h_t *)u)->rng, buf, len);
  return 0;
}

static void h_cb(portmap_mapping_t *m, portmap_event_t e, const portmap_info_t *info, void *u) {
  (void)m;
  (void)info;
  h_t *h = u;
  if ((size_t)e < sizeof h->n_event / sizeof h->n_event[0])
    h->n_event[e]++;
}

static int release_pcp(void *fake) {
  return fake_pcp_release_in_order(fake);
}

static int release_natpmp(void *fake) {
  return fake_natpmp_release(fake);
}

static int setup(void **state) {
  h_t *h = calloc(1, sizeof *h);
  h->now = 1000000;
  h->rng = 7;
  h->f = fake_pcp_new(0);
  assert_non_null(h->f);
  fake_pcp_set_time(h->f, h->now);
  h->ops = &fake_pcp_ops;
  h->fake = h->f;
  h->release = release_pcp;
  portmap_config_init(&h->cfg);
  h->cfg.gateway = "127.0.0.1";
  h->cfg.backends = PORTMAP_BACKEND_PCP;
  h->cfg.server_port = fake_pcp_port(h->f);
  h->cfg.announce_port = -1;
  h->cfg.clock_cb = h_clock;
  h->cfg.clock_user = h;
  h->cfg.random_cb = h_random;
  h->cfg.random_user = h;
  h->cfg.destroy_timeout_ms = 100;
  *state = h;
  return 0;
}

static int setup_natpmp(void **state) {
  h_t *h = calloc(1, sizeof *h);
  h->now = 1000000;
  h->rng = 7;
  h->nf = fake_natpmp_new(NP_GW);
  assert_non_null(h->nf);
  fake_natpmp_set_time(h->nf, h->now);
  h->ops = &fake_natpmp_ops;
  h->fake = h->nf;
  h->release = release_natpmp;
  portmap_config_init(&h->cfg);
  h->cfg.gateway = NP_GW;
  h->cfg.backends = PORTMAP_BACKEND_NATPMP;
  h->cfg.announce_port = -1;
  h->cfg.clock_cb = h_clock;
  h->cfg.clock_user = h;
  h->cfg.random_cb = h_random;
  h->cfg.random_user = h;
  h->cfg.destroy_timeout_ms = 100;
  *state = h;
  return 0;
}

static void client_up(h_t *h) {
  assert_int_equal(portmap_client_new(&h->cfg, &h->c), PORTMAP_OK);
}

static int teardown(void **state) {
  h_t *h = *state;
  if (h->c != NULL)
    test_free_answered(h->c, h->ops, h->fake);
  fake_pcp_free(h->f);
  fake_natpmp_free(h->nf);
  free(h);
  return 0;
}

static void map_one(h_t *h, uint16_t port, uint32_t lifetime) {
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = port;
  req.lifetime = lifetime;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, NULL), PORTMAP_OK);
}

static int fake_readable(h_t *h) {
  struct pollfd p = {h->ops->fd(h->fake), POLLIN, 0};
  return poll(&p, 1, 0) > 0;
}

/* Until both sides are idle: the client sends and reads, the fake reads
 * and answers (or holds, and then releases what it held when told, oldest
 * first: answers held across a span of time sent newest first would show
 * the epoch going back, E2, and every mapping would be made again). */
static void exchange(h_t *h, int release) {
  for (int i = 0; i < 10000; i++) {
    portmap_process(h->c);
    int busy = fake_readable(h);
    h->ops->process_at(h->fake, h->now);
    if (release)
      busy |= h->release(h->fake) > 0;
    if (!busy && !test_client_readable(h->c, 0))
      break;
  }
  portmap_process(h->c);
}

static void pump_cb(void *arg) {
  exchange(arg, 0);
}

/* A burst of BURST maps: all of them are mapped, and the fake, holding
 * every answer until the client has sent all it will send, never holds
 * more than the window. */
/* Send what the window allows while the fake holds the answers, then let
 * them all through; again until BURST are mapped (or far too many rounds). */
static void burst_rounds(h_t *h) {
  for (int round = 0; round < BURST && h->n_event[PORTMAP_EVENT_MAPPED] < BURST; round++) {
    exchange(h, 0);
    h->release(h->fake);
  }
  exchange(h, 1);
}

static void test_burst_of_maps_paced(void **state) {
  h_t *h = *state;
  client_up(h);
  fake_pcp_set_hold(h->f, 1);
  for (int i = 0; i < BURST; i++)
    map_one(h, (uint16_t)(10000 + i), 3600);
  burst_rounds(h);
  assert_int_equal(h->n_event[PORTMAP_EVENT_MAPPED], BURST);
  assert_int_equal(h->n_event[PORTMAP_EVENT_FAILED], 0);
  assert_int_equal(fake_pcp_mapping_count(h->f), BURST);
  assert_int_equal(fake_pcp_max_held(h->f), W);
  portmap_stats_t st;
  assert_int_equal(portmap_client_stats(h->c, &st), PORTMAP_OK);
  assert_int_equal(st.retransmissions, 0);
  assert_int_equal(st.sent, BURST);
}

/* The fake answering on a thread while the client is freed. */
typedef struct runner {
  h_t *h;
  int stop;
  pthread_t th;
} runner_t;

static void *run(void *arg) {
  runner_t *r = arg;
  while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
    struct pollfd p = {r->h->ops->fd(r->h->fake), POLLIN, 0};
    poll(&p, 1, 10);
    r->h->ops->process(r->h->fake);
  }
  return NULL;
}

/* BURST mappings made a few at a time; then portmap_client_free() sends
 * their deletes through the same window while the fake answers on a
 * thread. Returns what free returned. */
static portmap_status_t map_then_free(h_t *h) {
  /* the default: plenty here (a slow gateway needs more); valgrind runs the
   * library some 25 times slower in real time */
  h->cfg.destroy_timeout_ms = 2000 * test_time_scale();
  client_up(h);
  for (int i = 0; i < BURST; i += 40) {
    for (int k = i; k < i + 40; k++)
      map_one(h, (uint16_t)(10000 + k), 3600);
    exchange(h, 0);
  }
  assert_int_equal(h->n_event[PORTMAP_EVENT_MAPPED], BURST);
  runner_t r = {h, 0, 0};
  assert_int_equal(pthread_create(&r.th, NULL, run, &r), 0);
  portmap_status_t st = portmap_client_free(h->c);
  h->c = NULL;
  __atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
  pthread_join(r.th, NULL);
  return st;
}

/* Every delete is confirmed by the gateway: none lost to a full socket
 * buffer, none waiting for a retransmission that the destroy bound would
 * cut short. */
static void test_free_deletes_paced_all_confirmed(void **state) {
  h_t *h = *state;
  assert_int_equal(map_then_free(h), PORTMAP_OK);
  assert_int_equal(h->n_event[PORTMAP_EVENT_DELETED], BURST);
  assert_int_equal(h->n_event[PORTMAP_EVENT_FAILED], 0);
  assert_int_equal(fake_pcp_mapping_count(h->f), 0);
  assert_int_equal(fake_pcp_requests(h->f, PCP_OP_MAP), 2 * BURST);
}

/* Requests waiting for a slot are not retransmitted: only the window's
 * requests are sent again after IRT, and each waiting one is sent once
 * its turn comes. */
static void test_no_retransmission_before_first_send(void **state) {
  h_t *h = *state;
  client_up(h);
  fake_pcp_set_hold(h->f, 1);
  for (int i = 0; i < W + 10; i++)
    map_one(h, (uint16_t)(20000 + i), 3600);
  exchange(h, 0);
  assert_int_equal(fake_pcp_requests(h->f, PCP_OP_MAP), W);
  test_advance(h->c, &h->now, 3400, pump_cb, h);                /* past RT1 <= 1.1 * IRT */
  assert_int_equal(fake_pcp_requests(h->f, PCP_OP_MAP), 2 * W); /* the window's, again */
  portmap_stats_t st;
  assert_int_equal(portmap_client_stats(h->c, &st), PORTMAP_OK);
  assert_int_equal(st.retransmissions, W);
  fake_pcp_set_hold(h->f, 0);
  exchange(h, 1);
  assert_int_equal(h->n_event[PORTMAP_EVENT_MAPPED], W + 10);
  assert_int_equal(fake_pcp_requests(h->f, PCP_OP_MAP), 2 * W + 10);
  assert_int_equal(portmap_client_stats(h->c, &st), PORTMAP_OK);
  assert_int_equal(st.retransmissions, W);
}

/* H5 with a window: BURST mappings granted at the same moment renew in
 * [1/2, 5/8] of their lifetime when the gateway keeps up. */
static void test_renewals_inside_their_interval(void **state) {
  h_t *h = *state;
  client_up(h);
  for (int i = 0; i < BURST; i++)
    map_one(h, (uint16_t)(30000 + i), 3600);
  exchange(h, 0);
  assert_int_equal(h->n_event[PORTMAP_EVENT_MAPPED], BURST);
  test_advance(h->c, &h->now, 2300000, pump_cb, h);
  assert_int_equal(h->n_event[PORTMAP_EVENT_RENEWED], BURST);
  for (size_t i = 0; i < BURST; i++) {
    const fake_pcp_mapping_t *m = fake_pcp_mapping_get(h->f, i);
    assert_int_equal(m->renewals, 1);
    uint64_t at = m->renewed_ms - m->created_ms;
    assert_true(at >= 1800000 && at <= 2250000);
  }
}

/* The hook: the W requests that fill the window are never answered. */
static fake_pcp_hook_action_t ignore_41xxx(void *user, fake_pcp_t *f, const fake_pcp_request_t *req,
                                           pcp_msg_t *response) {
  (void)user;
  (void)f;
  (void)response;
  return req->msg.internal_port >= 41000 ? FAKE_PCP_HOOK_SILENT : FAKE_PCP_HOOK_DEFAULT;
}

/* A renewal that comes due while the window is full waits for a slot: it
 * is sent late, when answers give slots back, and the mapping is renewed
 * before it expires (never lost). */
static void test_renewal_waits_for_a_slot(void **state) {
  h_t *h = *state;
  client_up(h);
  uint64_t t0 = h->now;
  map_one(h, 40000, 600); /* renews in [300, 375] s */
  exchange(h, 0);
  assert_int_equal(h->n_event[PORTMAP_EVENT_MAPPED], 1);
  h->now += 250000;
  fake_pcp_set_hook(h->f, ignore_41xxx, NULL);
  for (int i = 0; i < W; i++)
    map_one(h, (uint16_t)(41000 + i), 3600);
  exchange(h, 0);
  assert_int_equal(fake_pcp_requests(h->f, PCP_OP_MAP), 1 + W);
  /* the renewal's time comes and goes with the window full (its requests
   * are retransmitted, unanswered): the renewal is not sent */
  for (int step = 0; step < 130; step++) {
    h->now += 1000;
    exchange(h, 0);
  }
  assert_int_equal(fake_pcp_mapping_get(h->f, 0)->renewals, 0);
  assert_int_equal(h->n_event[PORTMAP_EVENT_RENEWED], 0);
  /* the window's requests are answered at their next retransmission: the
   * renewal goes out, and is granted before the expiry at 600 s */
  fake_pcp_set_hook(h->f, NULL, NULL);
  test_advance(h->c, &h->now, 120000, pump_cb, h);
  assert_true(h->n_event[PORTMAP_EVENT_MAPPED] > 1); /* retransmission times are random */
  const fake_pcp_mapping_t *m = fake_pcp_mapping_get(h->f, 0);
  assert_int_equal(m->internal_port, 40000);
  assert_int_equal(m->renewals, 1);
  assert_true(m->renewed_ms - t0 > 380000 && m->renewed_ms - t0 < 600000);
  assert_int_equal(h->n_event[PORTMAP_EVENT_RENEWED], 1);
  assert_int_equal(h->n_event[PORTMAP_EVENT_LOST], 0);
}

/* ---- NAT-PMP: the same window per gateway ---- */

/* A burst of BURST maps on NAT-PMP: after the public address, a window of
 * requests at a time (answers told apart by protocol and internal port). */
static void test_natpmp_burst_of_maps_paced(void **state) {
  h_t *h = *state;
  client_up(h);
  fake_natpmp_set_hold(h->nf, 1);
  for (int i = 0; i < BURST; i++)
    map_one(h, (uint16_t)(10000 + i), 3600);
  burst_rounds(h);
  assert_int_equal(h->n_event[PORTMAP_EVENT_MAPPED], BURST);
  assert_int_equal(h->n_event[PORTMAP_EVENT_FAILED], 0);
  assert_int_equal(fake_natpmp_mapping_count(h->nf), BURST);
  assert_int_equal(fake_natpmp_max_held(h->nf), W);
  assert_int_equal(fake_natpmp_requests(h->nf, 2), BURST); /* TCP; none sent twice */
  portmap_stats_t st;
  assert_int_equal(portmap_client_stats(h->c, &st), PORTMAP_OK);
  assert_int_equal(st.retransmissions, 0);
}

static void test_natpmp_free_deletes_paced_all_confirmed(void **state) {
  h_t *h = *state;
  assert_int_equal(map_then_free(h), PORTMAP_OK);
  assert_int_equal(h->n_event[PORTMAP_EVENT_DELETED], BURST);
  assert_int_equal(h->n_event[PORTMAP_EVENT_FAILED], 0);
  assert_int_equal(fake_natpmp_mapping_count(h->nf), 0);
  assert_int_equal(fake_natpmp_requests(h->nf, 2), 2 * BURST);
}

/* Waiting requests are not retransmitted (N1's 250 ms, doubling): only the
 * window's are, and each waiting one is sent once its turn comes. */
static void test_natpmp_no_retransmission_before_first_send(void **state) {
  h_t *h = *state;
  client_up(h);
  fake_natpmp_set_hold(h->nf, 1);
  for (int i = 0; i < W + 10; i++)
    map_one(h, (uint16_t)(20000 + i), 3600);
  exchange(h, 0);
  assert_int_equal(fake_natpmp_requests(h->nf, 0), 1); /* the public address first */
  assert_int_equal(fake_natpmp_requests(h->nf, 2), 0);
  h->release(h->fake);
  exchange(h, 0);
  assert_int_equal(fake_natpmp_requests(h->nf, 2), W);
  test_advance(h->c, &h->now, 300, pump_cb, h);
  assert_int_equal(fake_natpmp_requests(h->nf, 2), 2 * W);
  portmap_stats_t st;
  assert_int_equal(portmap_client_stats(h->c, &st), PORTMAP_OK);
  assert_int_equal(st.retransmissions, W);
  fake_natpmp_set_hold(h->nf, 0);
  exchange(h, 1);
  assert_int_equal(h->n_event[PORTMAP_EVENT_MAPPED], W + 10);
  assert_int_equal(fake_natpmp_requests(h->nf, 2), 2 * W + 10);
  assert_int_equal(portmap_client_stats(h->c, &st), PORTMAP_OK);
  assert_int_equal(st.retransmissions, W);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
#define TN(f) cmocka_unit_test_setup_teardown(f, setup_natpmp, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_burst_of_maps_paced),
      T(test_free_deletes_paced_all_confirmed),
      T(test_no_retransmission_before_first_send),
      T(test_renewals_inside_their_interval),
      T(test_renewal_waits_for_a_slot),
      TN(test_natpmp_burst_of_maps_paced),
      TN(test_natpmp_free_deletes_paced_all_confirmed),
      TN(test_natpmp_no_retransmission_before_first_send),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
