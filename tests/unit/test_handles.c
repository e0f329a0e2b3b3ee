/* SPDX-License-Identifier: MIT */
/*
 * Handles that cannot dangle: while the library's thread ends mappings,
 * other threads call info, revoke, set_callback and detach on their
 * handles; every call returns OK or PORTMAP_ERR_STATE and touches no freed
 * memory. Run under ASan in every build and under TSan by scripts/test.sh
 * (a build with PORTMAP_TSAN=ON).
 */
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include <portmap/portmap.h>

#include "fake_pcp.h"
#include "test_support.h"

#define N_MAPPINGS 48
#define N_THREADS 3
#define CALLS_PER_THREAD 3000

typedef struct shared {
  portmap_client_t *c;
  portmap_mapping_t *m[N_MAPPINGS];
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int finals;   /* final events seen (under mu) */
  int detached; /* detaches that succeeded: those end without a final event */
  int bad;      /* a call returned something other than OK / STATE */
} shared_t;

static void on_event(portmap_mapping_t *m, portmap_event_t e, const portmap_info_t *info,
                     void *user) {
  (void)m;
  (void)info;
  shared_t *s = user;
  if (e == PORTMAP_EVENT_FAILED || e == PORTMAP_EVENT_DELETED) {
    pthread_mutex_lock(&s->mu);
    s->finals++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
  }
}

typedef struct worker {
  shared_t *s;
  uint64_t rng;
} worker_t;

static uint64_t next(uint64_t *x) {
  *x ^= *x << 13;
  *x ^= *x >> 7;
  *x ^= *x << 17;
  return *x;
}

static void *hammer(void *arg) {
  worker_t *w = arg;
  shared_t *s = w->s;
  for (int i = 0; i < CALLS_PER_THREAD; i++) {
    uint64_t r = next(&w->rng);
    portmap_mapping_t *m = s->m[r % N_MAPPINGS];
    portmap_status_t st = PORTMAP_OK;
    portmap_info_t info;
    switch ((r >> 8) % 8) {
    case 0:
      st = portmap_mapping_revoke(m);
      break;
    case 1:
      if ((r >> 16) % 16 == 0) {
        st = portmap_mapping_detach(m);
        if (st == PORTMAP_OK) {
          pthread_mutex_lock(&s->mu);
          s->detached++;
          pthread_mutex_unlock(&s->mu);
        }
      }
      break;
    case 2:
      st = portmap_mapping_set_callback(m, on_event, s);
      break;
    default:
      st = portmap_mapping_info(m, &info);
      if (st == PORTMAP_OK && info.internal_port < 7000)
        st = PORTMAP_ERR_INVALID; /* not what was mapped */
      break;
    }
    if (st != PORTMAP_OK && st != PORTMAP_ERR_STATE) {
      pthread_mutex_lock(&s->mu);
      s->bad++;
      pthread_mutex_unlock(&s->mu);
    }
  }
  return NULL;
}

static void test_calls_race_the_library_thread(void **state) {
  (void)state;
  fake_pcp_t *f = fake_pcp_new(0);
  assert_non_null(f);
  shared_t s;
  memset(&s, 0, sizeof s);
  pthread_mutex_init(&s.mu, NULL);
  pthread_cond_init(&s.cv, NULL);
  portmap_config_t cfg;
  portmap_config_init(&cfg);
  cfg.gateway = "127.0.0.1";
  cfg.backends = PORTMAP_BACKEND_PCP;
  cfg.server_port = fake_pcp_port(f);
  cfg.announce_port = -1;
  cfg.destroy_timeout_ms = 200;
  assert_int_equal(portmap_client_new(&cfg, &s.c), PORTMAP_OK);
  test_fake_runner_t runner;
  test_fake_runner_start(&runner, &fake_pcp_ops, f);
  assert_int_equal(portmap_thread_start(s.c), PORTMAP_OK);
  for (int i = 0; i < N_MAPPINGS; i++) {
    portmap_request_t req;
    portmap_request_init(&req);
    req.protocol = PORTMAP_PROTO_UDP;
    req.internal_port = (uint16_t)(7000 + i);
    assert_int_equal(portmap_map(s.c, &req, on_event, &s, &s.m[i]), PORTMAP_OK);
  }
  pthread_t th[N_THREADS];
  worker_t w[N_THREADS];
  for (int i = 0; i < N_THREADS; i++) {
    w[i].s = &s;
    w[i].rng = UINT64_C(0x9E3779B97F4A7C15) * (uint64_t)(i + 1);
    assert_int_equal(pthread_create(&th[i], NULL, hammer, &w[i]), 0);
  }
  for (int i = 0; i < N_THREADS; i++)
    pthread_join(th[i], NULL);
  /* end every mapping that is still going, then wait (bounded) for the
   * library thread to deliver the last final events */
  for (int i = 0; i < N_MAPPINGS; i++)
    (void)portmap_mapping_revoke(s.m[i]);
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 5; /* the fake answers every delete at once; this only bounds a failure */
  pthread_mutex_lock(&s.mu);
  while (s.finals + s.detached < N_MAPPINGS)
    if (pthread_cond_timedwait(&s.cv, &s.mu, &until) != 0)
      break;
  assert_int_equal(s.finals + s.detached, N_MAPPINGS);
  pthread_mutex_unlock(&s.mu);
  /* after the end, every call says so */
  for (int i = 0; i < N_MAPPINGS; i++) {
    portmap_info_t info;
    assert_int_equal(portmap_mapping_info(s.m[i], &info), PORTMAP_ERR_STATE);
    assert_int_equal(portmap_mapping_revoke(s.m[i]), PORTMAP_ERR_STATE);
    assert_int_equal(portmap_mapping_detach(s.m[i]), PORTMAP_ERR_STATE);
    assert_int_equal(portmap_mapping_set_callback(s.m[i], NULL, NULL), PORTMAP_ERR_STATE);
    portmap_mapping_release(s.m[i]);
  }
  assert_int_equal(s.bad, 0);
  assert_int_equal(portmap_thread_stop(s.c), PORTMAP_OK);
  test_fake_runner_stop(&runner);
  portmap_client_free(s.c);
  pthread_cond_destroy(&s.cv);
  pthread_mutex_destroy(&s.mu);
  fake_pcp_free(f);
}

/* A handle given back while its mapping goes on: the mapping still ends
 * with the client, and nothing leaks (ASan's leak check). */
static void test_release_before_the_end(void **state) {
  (void)state;
  fake_pcp_t *f = fake_pcp_new(0);
  portmap_config_t cfg;
  portmap_config_init(&cfg);
  cfg.gateway = "127.0.0.1";
  cfg.backends = PORTMAP_BACKEND_PCP;
  cfg.server_port = fake_pcp_port(f);
  cfg.announce_port = -1;
  cfg.destroy_timeout_ms = 100;
  portmap_client_t *c = NULL;
  assert_int_equal(portmap_client_new(&cfg, &c), PORTMAP_OK);
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = 8000;
  portmap_mapping_t *m = NULL;
  assert_int_equal(portmap_map(c, &req, NULL, NULL, &m), PORTMAP_OK);
  portmap_mapping_release(m);
  portmap_mapping_release(NULL);
  assert_int_equal(test_free_answered(c, &fake_pcp_ops, f), PORTMAP_OK);
  fake_pcp_free(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_calls_race_the_library_thread),
      cmocka_unit_test(test_release_before_the_end),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
