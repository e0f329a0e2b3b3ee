/* SPDX-License-Identifier: MIT */
/*
 * Pieces every client-driving unit test needs: a deterministic stand-in
 * for the CSPRNG, a look at whether the client has datagrams waiting, and
 * the injected-clock loop that runs every timer due in a span of time.
 */
#ifndef PORTMAP_TESTS_TEST_SUPPORT_H
#define PORTMAP_TESTS_TEST_SUPPORT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <portmap/portmap.h>

/* splitmix64 over *state: the same octets for the same seed, every run. */
void test_splitmix_fill(uint64_t *state, void *buf, size_t len);

/* 1 when one of the client's fds is readable within timeout_ms, else 0. */
int test_client_readable(portmap_client_t *c, int timeout_ms);

/* How many times slower than native the test runs (PORTMAP_TEST_TIME_SCALE,
 * 1-100, default 1; the valgrind pass sets it): multiplies bounds in real
 * time, never the injected clock's. */
unsigned test_time_scale(void);

/* Move *now forward by ms, stopping at each deadline the client reports
 * and calling pump(arg) there, so every timer due in the span runs once at
 * its own time. Bounded: at most 100000 steps. */
void test_advance(portmap_client_t *c, uint64_t *now, uint64_t ms, void (*pump)(void *arg),
                  void *arg);

/* ---- the events a test's mapping callback saw ---- */

typedef struct test_ev {
  portmap_mapping_t *m;
  portmap_event_t event;
  portmap_info_t info;
  uint64_t at; /* the test's clock when it came */
} test_ev_t;

/* Append one (dropped once *n reaches cap). */
void test_ev_add(test_ev_t *ev, size_t cap, size_t *n, portmap_mapping_t *m, portmap_event_t e,
                 const portmap_info_t *info, uint64_t at);
size_t test_ev_count(const test_ev_t *ev, size_t n, portmap_event_t e);
/* The first event e, or NULL. */
const test_ev_t *test_ev_find(const test_ev_t *ev, size_t n, portmap_event_t e);

/* ---- sockets ---- */

/* A UDP port on the IPv4 loopback address v4 (host order) that nothing
 * listens on right now (bound, read, closed). */
uint16_t test_free_udp_port(uint32_t v4);

/* ---- one fake gateway on the other end of loopback ---- */

typedef struct test_fake_ops {
  int (*fd)(const void *fake);
  int (*process)(void *fake);                     /* at the fake's own time */
  int (*process_at)(void *fake, uint64_t now_ms); /* after setting its time */
} test_fake_ops_t;

/* Let datagrams cross loopback: the client sends, the fake answers at now,
 * the client reads; at most `rounds` times, fewer once both are idle. */
void test_pump(portmap_client_t *c, const test_fake_ops_t *ops, void *fake, uint64_t now,
               int rounds);
/* The fake answering on a thread of its own (at most ~2 s), for the calls
 * that block: free, probe_sync, thread mode. The fakes are not
 * thread-safe: while the runner runs, the test reads or changes the fake
 * only between test_fake_runner_lock() and test_fake_runner_unlock(). */
typedef struct test_fake_runner {
  const test_fake_ops_t *ops;
  void *fake;
  int stop; /* atomic: read by the runner, set by the test */
  int started;
  pthread_t th;
  pthread_mutex_t mu; /* held by the runner while it runs the fake */
} test_fake_runner_t;

void test_fake_runner_start(test_fake_runner_t *r, const test_fake_ops_t *ops, void *fake);
void test_fake_runner_stop(test_fake_runner_t *r);
/* Hold the runner between two runs of the fake (no datagram is answered
 * meanwhile). Assert only after unlocking: a failed assertion leaves the
 * test at once. */
void test_fake_runner_lock(test_fake_runner_t *r);
void test_fake_runner_unlock(test_fake_runner_t *r);

/* portmap_client_free(c) while the fake answers the deletes it sends, so
 * free need not wait them out. Returns what free returned. */
portmap_status_t test_free_answered(portmap_client_t *c, const test_fake_ops_t *ops, void *fake);

#endif
