/* SPDX-License-Identifier: MIT */
/*
 * Paced bursts: at most PORTMAP_PACE_WINDOW requests in flight per gateway,
 * the rest waiting their turn, against the fake PCP gateway with the clock
 * injected. A burst of maps, the deletes of a client being freed, renewals
 * behind a full window, and retransmissions that never precede a request's
 * first send.
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
#include "fake_pcp.h"
#include "internal.h"

#define BURST 2000
#define W PORTMAP_PACE_WINDOW

typedef struct h {
  uint64_t now;
  uint64_t rng;
  fake_pcp_t *f;
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

static int setup(void **state) {
  h_t *h = calloc(1, sizeof *h);
  h->now = 1000000;
  h->rng = 7;
  h->f = fake_pcp_new(0);
  assert_non_null(h->f);
  fake_pcp_set_time(h->f, h->now);
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

static void client_up(h_t *h) {
  assert_int_equal(portmap_client_new(&h->cfg, &h->c), PORTMAP_OK);
}

static int teardown(void **state) {
  h_t *h = *state;
  if (h->c != NULL)
    test_free_answered(h->c, &fake_pcp_ops, h->f);
  fake_pcp_free(h->f);
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
  struct pollfd p = {fake_pcp_fd(h->f), POLLIN, 0};
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
    fake_pcp_process_at(h->f, h->now);
    if (release)
      busy |= fake_pcp_release_in_order(h->f) > 0;
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
static void test_burst_of_maps_paced(void **state) {
  h_t *h = *state;
  client_up(h);
  fake_pcp_set_hold(h->f, 1);
  for (int i = 0; i < BURST; i++)
    map_one(h, (uint16_t)(10000 + i), 3600);
  for (int round = 0; round < BURST && h->n_event[PORTMAP_EVENT_MAPPED] < BURST; round++) {
    exchange(h, 0);         /* the client sends what the window allows; the fake holds */
    fake_pcp_release(h->f); /* answers, all at once */
  }
  exchange(h, 1);
  print_message("%zu mapped, the fake held at most %zu answers\n", h->n_event[PORTMAP_EVENT_MAPPED],
                fake_pcp_max_held(h->f));
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
  fake_pcp_t *f;
  int stop;
  pthread_t th;
} runner_t;

static void *run(void *arg) {
  runner_t *r = arg;
  while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
    struct pollfd p = {fake_pcp_fd(r->f), POLLIN, 0};
    poll(&p, 1, 10);
    fake_pcp_process(r->f);
  }
  return NULL;
}

/* BURST mappings made a few at a time; then portmap_client_free() sends
 * their deletes through the same window: every one is confirmed by the
 * gateway (none lost to a full socket buffer, none waiting for a
 * retransmission that the destroy bound would cut short). */
static void test_free_deletes_paced_all_confirmed(void **state) {
  h_t *h = *state;
  h->cfg.destroy_timeout_ms = 2000; /* the default: plenty here; a slow gateway needs more */
  client_up(h);
  for (int i = 0; i < BURST; i += 40) {
    for (int k = i; k < i + 40; k++)
      map_one(h, (uint16_t)(10000 + k), 3600);
    exchange(h, 0);
  }
  assert_int_equal(h->n_event[PORTMAP_EVENT_MAPPED], BURST);
  assert_int_equal(fake_pcp_mapping_count(h->f), BURST);
  runner_t r = {h->f, 0, 0};
  assert_int_equal(pthread_create(&r.th, NULL, run, &r), 0);
  portmap_status_t st = portmap_client_free(h->c);
  h->c = NULL;
  __atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
  pthread_join(r.th, NULL);
  print_message("free: %d, %zu deleted, %zu failed\n", (int)st, h->n_event[PORTMAP_EVENT_DELETED],
                h->n_event[PORTMAP_EVENT_FAILED]);
  assert_int_equal(st, PORTMAP_OK);
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

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_burst_of_maps_paced),
      T(test_free_deletes_paced_all_confirmed),
      T(test_no_retransmission_before_first_send),
      T(test_renewals_inside_their_interval),
      T(test_renewal_waits_for_a_slot),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
