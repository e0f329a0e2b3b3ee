/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the client as a whole: client_cb and portmap_client_state()
 * (the protocol in use, the external address, the gateway), the shutdown
 * that never blocks, the mapping state in portmap_info_t, and a sink that
 * tries to free the client. PCP and NAT-PMP are enabled so that a probe
 * chooses; the fake PCP gateway answers, on an injected clock.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <portmap/portmap.h>

#include "fake_pcp.h"
#include "internal.h"
#include "test_support.h"

#define MAX 64

typedef struct h {
  uint64_t now;
  uint64_t rng;
  fake_pcp_t *f;
  portmap_client_t *c;
  portmap_config_t cfg;
  portmap_client_event_t cev[MAX];
  portmap_client_state_t cst[MAX];
  size_t n_cev;
  test_ev_t ev[MAX];
  size_t n_ev;
  int free_from_log;
  portmap_status_t free_from_log_status;
  int revoke_twice; /* on MAPPED: revoke, and revoke again */
  portmap_status_t revokes[2];
} h_t;

static uint64_t h_clock(void *u) {
  return ((h_t *)u)->now;
}

static int h_random(void *buf, size_t len, void *u) {
  test_splitmix_fill(&((h_t *)u)->rng, buf, len);
  return 0;
}

static void on_client(portmap_client_t *c, portmap_client_event_t e,
                      const portmap_client_state_t *st, void *u) {
  h_t *h = u;
  assert_ptr_equal(c, h->c);
  if (h->n_cev < MAX) {
    h->cev[h->n_cev] = e;
    h->cst[h->n_cev] = *st;
    h->n_cev++;
  }
}

static void on_mapping(portmap_mapping_t *m, portmap_event_t e, const portmap_info_t *info,
                       void *u) {
  h_t *h = u;
  test_ev_add(h->ev, MAX, &h->n_ev, m, e, info, h->now);
  if (h->revoke_twice && e == PORTMAP_EVENT_MAPPED) {
    h->revoke_twice = 0;
    h->revokes[0] = portmap_mapping_revoke(m);
    h->revokes[1] = portmap_mapping_revoke(m);
  }
}

static void on_log(portmap_log_level_t level, const char *msg, void *u) {
  h_t *h = u;
  (void)level;
  (void)msg;
  if (h->free_from_log && h->c != NULL) {
    h->free_from_log = 0;
    h->free_from_log_status = portmap_client_free(h->c);
  }
}

static size_t count_cev(const h_t *h, portmap_client_event_t e) {
  size_t n = 0;
  for (size_t i = 0; i < h->n_cev; i++)
    n += h->cev[i] == e;
  return n;
}

static int setup(void **state) {
  h_t *h = calloc(1, sizeof *h);
  h->now = 5000000;
  h->rng = 7;
  h->f = fake_pcp_new(0);
  assert_non_null(h->f);
  fake_pcp_set_time(h->f, h->now);
  uint8_t ext[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 77};
  fake_pcp_set_external(h->f, ext);
  portmap_config_init(&h->cfg);
  h->cfg.gateway = "127.0.0.1";
  h->cfg.backends = PORTMAP_BACKEND_PCP | PORTMAP_BACKEND_NATPMP;
  h->cfg.server_port = fake_pcp_port(h->f);
  h->cfg.announce_port = -1;
  h->cfg.clock_cb = h_clock;
  h->cfg.clock_user = h;
  h->cfg.random_cb = h_random;
  h->cfg.random_user = h;
  h->cfg.destroy_timeout_ms = 2000;
  h->cfg.client_cb = on_client;
  h->cfg.client_user = h;
  h->cfg.log_cb = on_log;
  h->cfg.log_user = h;
  h->cfg.log_level = PORTMAP_LOG_DEBUG;
  *state = h;
  return 0;
}

static int teardown(void **state) {
  h_t *h = *state;
  if (h->c != NULL)
    test_free_answered(h->c, &fake_pcp_ops, h->f);
  fake_pcp_free(h->f);
  free(h);
  return 0;
}

static void pump(h_t *h) {
  test_pump(h->c, &fake_pcp_ops, h->f, h->now, 8);
}

static void pump_cb(void *h) {
  pump(h);
}

static portmap_mapping_t *map_tcp(h_t *h, uint16_t port) {
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = port;
  portmap_mapping_t *m = NULL;
  assert_int_equal(portmap_map(h->c, &req, on_mapping, h, &m), PORTMAP_OK);
  return m;
}

/* The probe picks PCP, the first mapping learns the external address: the
 * client hears of both once, and the getter says the same. */
static void test_backend_and_external_address(void **state) {
  h_t *h = *state;
  assert_int_equal(portmap_client_new(&h->cfg, &h->c), PORTMAP_OK);
  portmap_client_state_t st;
  assert_int_equal(portmap_client_state(h->c, &st), PORTMAP_OK);
  assert_int_equal(st.backend, PORTMAP_BACKEND_NONE); /* not decided yet */
  assert_string_equal(st.gateway, "127.0.0.1");
  portmap_mapping_t *m = map_tcp(h, 8000);
  portmap_info_t info;
  assert_int_equal(portmap_mapping_info(m, &info), PORTMAP_OK);
  assert_int_equal(info.state, PORTMAP_STATE_PROBING);
  pump(h);
  assert_int_equal(count_cev(h, PORTMAP_CLIENT_BACKEND), 1);
  assert_int_equal(count_cev(h, PORTMAP_CLIENT_EXTERNAL_ADDRESS), 1);
  assert_int_equal(test_ev_count(h->ev, h->n_ev, PORTMAP_EVENT_MAPPED), 1);
  assert_int_equal(h->ev[0].info.state, PORTMAP_STATE_MAPPED);
  assert_int_equal(portmap_client_state(h->c, &st), PORTMAP_OK);
  assert_int_equal(st.backend, PORTMAP_BACKEND_PCP);
  assert_string_equal(st.external_address_str, "203.0.113.77");
  assert_int_equal(st.external_is_private, 0);
  /* the same address again from a second mapping: no news */
  map_tcp(h, 8001);
  pump(h);
  assert_int_equal(count_cev(h, PORTMAP_CLIENT_EXTERNAL_ADDRESS), 1);
  portmap_mapping_release(m);
}

/* The gateway goes away and comes back. */
static void test_gateway_lost_and_found(void **state) {
  h_t *h = *state;
  assert_int_equal(portmap_client_new(&h->cfg, &h->c), PORTMAP_OK);
  map_tcp(h, 8000);
  pump(h);
  size_t before = h->n_cev;
  uint8_t none[16] = {0};
  uint8_t gw[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1};
  pthread_mutex_lock(&h->c->mu);
  portmap_client_gateway_changed(h->c, 0, none, 0, none, 0, h->now);
  portmap_client_unlock(h->c);
  portmap_process(h->c);
  assert_int_equal(count_cev(h, PORTMAP_CLIENT_GATEWAY_LOST), 1);
  assert_true(h->n_cev > before);
  assert_string_equal(h->cst[h->n_cev - 1].gateway, "");
  assert_string_equal(h->cst[h->n_cev - 1].external_address_str, "");
  pthread_mutex_lock(&h->c->mu);
  portmap_client_gateway_changed(h->c, 1, gw, 0, none, 0, h->now);
  portmap_client_unlock(h->c);
  pump(h);
  assert_int_equal(count_cev(h, PORTMAP_CLIENT_GATEWAY_FOUND), 1);
  portmap_client_state_t st;
  assert_int_equal(portmap_client_state(h->c, &st), PORTMAP_OK);
  assert_string_equal(st.gateway, "127.0.0.1");
}

/* Shutdown returns at once; the deletes go out and are confirmed from the
 * loop; SHUTDOWN comes after the last final event; free is then at once. */
static void test_shutdown_never_blocks(void **state) {
  h_t *h = *state;
  assert_int_equal(portmap_client_new(&h->cfg, &h->c), PORTMAP_OK);
  portmap_mapping_t *m = map_tcp(h, 8000);
  pump(h);
  assert_int_equal(fake_pcp_mapping_count(h->f), 1);
  assert_int_equal(portmap_client_shutdown(h->c), PORTMAP_OK);
  assert_int_equal(portmap_client_shutdown(h->c), PORTMAP_ERR_STATE);
  portmap_info_t info;
  assert_int_equal(portmap_mapping_info(m, &info), PORTMAP_OK);
  assert_int_equal(info.state, PORTMAP_STATE_DELETING);
  assert_int_equal(count_cev(h, PORTMAP_CLIENT_SHUTDOWN), 0); /* nothing confirmed yet */
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = 9000;
  assert_int_equal(portmap_map(h->c, &req, NULL, NULL, NULL), PORTMAP_ERR_STATE);
  pump(h);
  assert_int_equal(fake_pcp_mapping_count(h->f), 0);
  const test_ev_t *del = test_ev_find(h->ev, h->n_ev, PORTMAP_EVENT_DELETED);
  assert_non_null(del);
  assert_int_equal(del->info.state, PORTMAP_STATE_ENDED);
  assert_int_equal(count_cev(h, PORTMAP_CLIENT_SHUTDOWN), 1);
  assert_int_equal(h->cst[h->n_cev - 1].shut_down, 1);
  assert_int_equal(portmap_client_free(h->c), PORTMAP_OK); /* nothing left to wait for */
  h->c = NULL;
}

/* A gateway that never confirms: SHUTDOWN still comes, destroy_timeout_ms
 * later on the client's clock, each mapping ending CANCELLED. */
static void test_shutdown_bounded_by_destroy_timeout(void **state) {
  h_t *h = *state;
  assert_int_equal(portmap_client_new(&h->cfg, &h->c), PORTMAP_OK);
  map_tcp(h, 8000);
  pump(h);
  fake_pcp_set_silent(h->f, 1);
  assert_int_equal(portmap_client_shutdown(h->c), PORTMAP_OK);
  test_advance(h->c, &h->now, 1999, pump_cb, h);
  assert_int_equal(count_cev(h, PORTMAP_CLIENT_SHUTDOWN), 0);
  test_advance(h->c, &h->now, 2, pump_cb, h);
  assert_int_equal(count_cev(h, PORTMAP_CLIENT_SHUTDOWN), 1);
  const test_ev_t *failed = test_ev_find(h->ev, h->n_ev, PORTMAP_EVENT_FAILED);
  assert_non_null(failed);
  assert_int_equal(failed->info.status, PORTMAP_ERR_CANCELLED);
  assert_int_equal(portmap_client_free(h->c), PORTMAP_OK);
  h->c = NULL;
}

/* A log sink that frees the client is refused (the client outlives its
 * sinks); nothing is freed under it. */
static void test_free_from_a_sink_is_refused(void **state) {
  h_t *h = *state;
  assert_int_equal(portmap_client_new(&h->cfg, &h->c), PORTMAP_OK);
  h->free_from_log = 1;
  map_tcp(h, 8000);
  pump(h);
  assert_int_equal(h->free_from_log, 0); /* the sink ran */
  assert_int_equal(h->free_from_log_status, PORTMAP_ERR_RECURSIVE);
  assert_int_equal(test_ev_count(h->ev, h->n_ev, PORTMAP_EVENT_MAPPED), 1);
}

/* A mapping being renewed says so; the answer makes it MAPPED again. */
static void test_state_renewing(void **state) {
  h_t *h = *state;
  h->cfg.backends = PORTMAP_BACKEND_PCP;
  assert_int_equal(portmap_client_new(&h->cfg, &h->c), PORTMAP_OK);
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = 8000;
  req.lifetime = 120;
  portmap_mapping_t *m = NULL;
  assert_int_equal(portmap_map(h->c, &req, on_mapping, h, &m), PORTMAP_OK);
  pump(h);
  portmap_info_t info;
  assert_int_equal(portmap_mapping_info(m, &info), PORTMAP_OK);
  assert_int_equal(info.state, PORTMAP_STATE_MAPPED);
  fake_pcp_set_silent(h->f, 1);
  test_advance(h->c, &h->now, 75000, pump_cb, h); /* H5: the first renewal is due by then */
  assert_int_equal(portmap_mapping_info(m, &info), PORTMAP_OK);
  assert_int_equal(info.state, PORTMAP_STATE_RENEWING);
  fake_pcp_set_silent(h->f, 0);
  test_advance(h->c, &h->now, 20000, pump_cb, h);
  assert_true(test_ev_count(h->ev, h->n_ev, PORTMAP_EVENT_RENEWED) >= 1);
  assert_int_equal(portmap_mapping_info(m, &info), PORTMAP_OK);
  assert_int_equal(info.state, PORTMAP_STATE_MAPPED);
  portmap_mapping_release(m);
}

/* A callback that revokes twice: the second is refused, one DELETED. */
static void test_callback_revokes_twice(void **state) {
  h_t *h = *state;
  assert_int_equal(portmap_client_new(&h->cfg, &h->c), PORTMAP_OK);
  h->revoke_twice = 1;
  map_tcp(h, 8000);
  pump(h);
  pump(h);
  assert_int_equal(h->revokes[0], PORTMAP_OK);
  assert_int_equal(h->revokes[1], PORTMAP_ERR_STATE);
  assert_int_equal(test_ev_count(h->ev, h->n_ev, PORTMAP_EVENT_DELETED), 1);
  assert_int_equal(fake_pcp_mapping_count(h->f), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_backend_and_external_address, setup, teardown),
      cmocka_unit_test_setup_teardown(test_gateway_lost_and_found, setup, teardown),
      cmocka_unit_test_setup_teardown(test_shutdown_never_blocks, setup, teardown),
      cmocka_unit_test_setup_teardown(test_shutdown_bounded_by_destroy_timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_free_from_a_sink_is_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_state_renewing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_callback_revokes_twice, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
