/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the event-loop contract (src/loop.c): with fd_cb and
 * timer_cb the application hears of every fd to watch or drop and every
 * new deadline as it happens, on its loop's thread, and never watches a
 * closed fd. The loop in these tests knows only what the callbacks told it
 * (it never calls portmap_fds() or portmap_timeout_ms()).
 */
#include <sys/stat.h>
#include <poll.h>
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
#include "internal.h"
#include "test_support.h"

#define MAX_TOLD 32

typedef struct loop {
  portmap_client_t *c;
  fake_pcp_t *f;
  pthread_t thread; /* the loop's thread */
  int fds[MAX_TOLD];
  ino_t ino[MAX_TOLD]; /* what each fd was when we were told to watch it */
  size_t n_fds;
  int adds, removes;
  int closed_when_removed; /* fd_cb(fd, 0) found the fd closed, or another socket */
  int wrong_thread;        /* a callback on another thread than the loop's */
  int duplicate_add;       /* told to watch an fd it watches already */
  int unknown_remove;      /* told to drop an fd it does not watch */
  int timer_calls;
  int timeout_ms; /* as last told; -1 none */
  struct timespec timer_set_at;
  int processes;
  test_ev_t ev[16];
  size_t n_ev;
} loop_t;

static ino_t ino_of(int fd) {
  struct stat st;
  return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

static void on_fd(int fd, int events, void *user) {
  loop_t *l = user;
  if (!pthread_equal(pthread_self(), l->thread))
    l->wrong_thread++;
  size_t i = 0;
  while (i < l->n_fds && l->fds[i] != fd)
    i++;
  if (events == PORTMAP_FD_READ) {
    l->adds++;
    if (i < l->n_fds)
      l->duplicate_add++;
    else if (l->n_fds < MAX_TOLD) {
      l->ino[l->n_fds] = ino_of(fd);
      l->fds[l->n_fds++] = fd;
    }
    return;
  }
  assert_int_equal(events, 0);
  l->removes++;
  if (i == l->n_fds) {
    l->unknown_remove++;
    return;
  }
  if (ino_of(fd) != l->ino[i])
    l->closed_when_removed++;
  l->n_fds--;
  l->fds[i] = l->fds[l->n_fds];
  l->ino[i] = l->ino[l->n_fds];
}

static void on_timer(int timeout_ms, void *user) {
  loop_t *l = user;
  if (!pthread_equal(pthread_self(), l->thread))
    l->wrong_thread++;
  l->timer_calls++;
  l->timeout_ms = timeout_ms;
  clock_gettime(CLOCK_MONOTONIC, &l->timer_set_at);
}

static void on_event(portmap_mapping_t *m, portmap_event_t e, const portmap_info_t *info,
                     void *user) {
  loop_t *l = user;
  test_ev_add(l->ev, 16, &l->n_ev, m, e, info, 0);
}

static int64_t ms_since(const struct timespec *t) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (int64_t)(now.tv_sec - t->tv_sec) * 1000 + (now.tv_nsec - t->tv_nsec) / 1000000;
}

/* One turn of the application's loop: poll what the callbacks told (and
 * the fake gateway), until the told deadline. */
static void turn(loop_t *l, int max_ms) {
  struct pollfd p[MAX_TOLD + 1];
  nfds_t n = 0;
  for (size_t i = 0; i < l->n_fds; i++) {
    p[n].fd = l->fds[i];
    p[n].events = POLLIN;
    p[n].revents = 0;
    n++;
  }
  p[n].fd = fake_pcp_fd(l->f);
  p[n].events = POLLIN;
  p[n].revents = 0;
  n++;
  int t = max_ms;
  if (l->timeout_ms >= 0) {
    int64_t left = l->timeout_ms - ms_since(&l->timer_set_at);
    if (left < t)
      t = left < 0 ? 0 : (int)left;
  }
  int r = poll(p, n, t);
  assert_true(r >= 0);
  if (p[n - 1].revents & POLLIN)
    fake_pcp_process(l->f);
  int ours = 0;
  for (nfds_t i = 0; i + 1 < n; i++)
    ours |= (p[i].revents & POLLIN) != 0;
  int due = l->timeout_ms >= 0 && ms_since(&l->timer_set_at) >= l->timeout_ms;
  if (ours || due) {
    l->processes++;
    assert_int_equal(portmap_process(l->c), PORTMAP_OK);
  }
}

static int setup(void **state) {
  static loop_t l;
  memset(&l, 0, sizeof l);
  l.thread = pthread_self();
  l.timeout_ms = -1;
  l.f = fake_pcp_new(0);
  assert_non_null(l.f);
  portmap_config_t cfg;
  portmap_config_init(&cfg);
  cfg.gateway = "127.0.0.1";
  cfg.backends = PORTMAP_BACKEND_PCP;
  cfg.server_port = fake_pcp_port(l.f);
  cfg.announce_port = -1;
  cfg.destroy_timeout_ms = 500;
  cfg.fd_cb = on_fd;
  cfg.fd_user = &l;
  cfg.timer_cb = on_timer;
  cfg.timer_user = &l;
  assert_int_equal(portmap_client_new(&cfg, &l.c), PORTMAP_OK);
  *state = &l;
  return 0;
}

static int teardown(void **state) {
  loop_t *l = *state;
  if (l->c != NULL)
    portmap_client_free(l->c);
  fake_pcp_free(l->f);
  return 0;
}

static portmap_mapping_t *map_tcp(loop_t *l, uint16_t port) {
  portmap_request_t req;
  portmap_request_init(&req);
  req.protocol = PORTMAP_PROTO_TCP;
  req.internal_port = port;
  portmap_mapping_t *m = NULL;
  assert_int_equal(portmap_map(l->c, &req, on_event, l, &m), PORTMAP_OK);
  return m;
}

/* The client's first fd (the wake pipe) is told while it is created. */
static void test_first_fds_told_at_creation(void **state) {
  loop_t *l = *state;
  assert_true(l->n_fds >= 1);
  assert_int_equal(l->wrong_thread, 0);
  int fds[MAX_TOLD];
  size_t n = portmap_fds(l->c, fds, MAX_TOLD);
  assert_int_equal(n, l->n_fds);
}

/* The PCP socket opens inside portmap_map(): the loop hears of it before
 * portmap_map() returns, and the answer is read as soon as it arrives, not
 * when some timer fires. */
static void test_new_socket_told_before_map_returns(void **state) {
  loop_t *l = *state;
  size_t before = l->n_fds;
  map_tcp(l, 8000);
  assert_int_equal(l->n_fds, before + 1);
  assert_true(l->timer_calls > 0);
  for (int i = 0; i < 50 && l->n_ev == 0; i++)
    turn(l, 100);
  assert_int_equal(l->n_ev, 1);
  assert_int_equal(l->ev[0].event, PORTMAP_EVENT_MAPPED);
  assert_true(l->processes <= 4); /* the answer, not a retransmission timer (3 s) */
  assert_int_equal(l->duplicate_add + l->unknown_remove + l->wrong_thread, 0);
}

/* The deadline told is the one portmap_timeout_ms() gives. */
static void test_timer_matches_timeout(void **state) {
  loop_t *l = *state;
  map_tcp(l, 8001);
  for (int i = 0; i < 50 && l->n_ev == 0; i++)
    turn(l, 100);
  assert_int_equal(l->n_ev, 1);
  int t = portmap_timeout_ms(l->c);
  int told = l->timeout_ms - (int)ms_since(&l->timer_set_at);
  assert_true(t >= 0);
  assert_true(told - t <= 20 && t - told <= 20);
  assert_true(t > 20000); /* the next network check (30 s) or renewal, not a retransmission */
}

typedef struct other {
  loop_t *l;
  portmap_mapping_t *m;
  portmap_status_t st;
} other_t;

static void *map_from_other_thread(void *arg) {
  other_t *o = arg;
  portmap_request_t req;
  portmap_request_init(&req);
  req.protocol = PORTMAP_PROTO_UDP;
  req.internal_port = 9000;
  o->st = portmap_map(o->l->c, &req, on_event, o->l, &o->m);
  return NULL;
}

/* A call from another thread tells nothing there: it wakes the loop,
 * whose thread then hears of the new socket. */
static void test_other_thread_wakes_the_loop(void **state) {
  loop_t *l = *state;
  size_t before = l->n_fds;
  other_t o = {l, NULL, PORTMAP_ERR_INVALID};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, map_from_other_thread, &o), 0);
  pthread_join(t, NULL);
  assert_int_equal(o.st, PORTMAP_OK);
  assert_int_equal(l->n_fds, before); /* not told on the other thread */
  for (int i = 0; i < 50 && l->n_ev == 0; i++)
    turn(l, 100);
  assert_int_equal(l->n_fds, before + 1);
  assert_int_equal(l->n_ev, 1);
  assert_int_equal(l->ev[0].event, PORTMAP_EVENT_MAPPED);
  assert_int_equal(l->wrong_thread, 0);
}

/* Freeing the client tells the loop to drop every fd, each still open
 * when it hears, and that no timer is needed any more. */
static void test_free_drops_every_fd_before_closing(void **state) {
  loop_t *l = *state;
  map_tcp(l, 8002);
  for (int i = 0; i < 50 && l->n_ev == 0; i++)
    turn(l, 100);
  assert_true(l->n_fds >= 2);
  /* the delete is answered by the fake on its own thread meanwhile */
  assert_int_equal(test_free_answered(l->c, &fake_pcp_ops, l->f), PORTMAP_OK);
  l->c = NULL;
  assert_int_equal(l->n_fds, 0);
  assert_int_equal(l->closed_when_removed, 0);
  assert_int_equal(l->unknown_remove, 0);
  assert_int_equal(l->timeout_ms, -1);
  assert_int_equal(test_ev_count(l->ev, l->n_ev, PORTMAP_EVENT_DELETED), 1);
}

/* A new gateway replaces the PCP socket at once: the loop hears that the
 * old one is dropped while it is still open (its number cannot come back
 * for the new socket before that), then of the new one. */
static void test_gateway_change_drops_before_closing(void **state) {
  loop_t *l = *state;
  map_tcp(l, 8003);
  for (int i = 0; i < 50 && l->n_ev == 0; i++)
    turn(l, 100);
  assert_int_equal(l->n_ev, 1);
  int removes = l->removes, adds = l->adds;
  uint8_t gw4[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 2}, none[16] = {0};
  portmap_client_t *c = l->c;
  pthread_mutex_lock(&c->mu);
  portmap_client_gateway_changed(c, 1, gw4, 0, none, 0, portmap_client_now(c));
  portmap_client_unlock(c);
  assert_int_equal(l->removes, removes + 1); /* the old PCP socket */
  assert_int_equal(l->closed_when_removed, 0);
  assert_int_equal(l->adds, adds + 1); /* the new one, made at once to map again */
  assert_int_equal(l->unknown_remove + l->duplicate_add + l->wrong_thread, 0);
}

/* Thread mode and the callbacks do not mix: the client is the loop's. */
static void test_thread_mode_refused(void **state) {
  loop_t *l = *state;
  assert_int_equal(portmap_thread_start(l->c), PORTMAP_ERR_STATE);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_first_fds_told_at_creation, setup, teardown),
      cmocka_unit_test_setup_teardown(test_new_socket_told_before_map_returns, setup, teardown),
      cmocka_unit_test_setup_teardown(test_timer_matches_timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_other_thread_wakes_the_loop, setup, teardown),
      cmocka_unit_test_setup_teardown(test_free_drops_every_fd_before_closing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_gateway_change_drops_before_closing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_thread_mode_refused, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
