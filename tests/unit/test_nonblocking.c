/* SPDX-License-Identifier: MIT */
/*
 * The scheduler's thread never blocks (STYLE.md: "the scheduler never
 * blocks"), checked where a wait used to hide:
 *
 * - destroying the UPnP backend orphans its worker thread; it must not wait
 *   on a condition variable for the thread to leave (it waited up to
 *   100 ms (UPNP_JOIN_WAIT_MS), from inside portmap_process() when a gateway change
 *   replaced the backend; the constant is gone with the wait);
 * - the CSPRNG is read with GRND_NONBLOCK, so that early in boot, before the
 *   kernel's pool is ready, a call fails at once (EAGAIN) instead of
 *   blocking every retransmission.
 *
 * This binary is linked with --wrap=pthread_cond_timedwait and
 * --wrap=getrandom (tests/CMakeLists.txt): the wrappers count the calls made
 * from the test's own thread and record getrandom's flags. What it proves:
 * the scheduler-side code paths make no timed condition wait and ask for a
 * non-blocking getrandom. It cannot prove that no other system call blocks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>
#include <time.h>

#include "platform/platform.h"
#include "upnp/worker.h"

int __real_pthread_cond_timedwait(pthread_cond_t *cv, pthread_mutex_t *mu,
                                  const struct timespec *ts);
int __wrap_pthread_cond_timedwait(pthread_cond_t *cv, pthread_mutex_t *mu,
                                  const struct timespec *ts);
ssize_t __real_getrandom(void *buf, size_t len, unsigned flags);
ssize_t __wrap_getrandom(void *buf, size_t len, unsigned flags);

static pthread_t main_thread;
static unsigned timedwaits_on_main; /* only the test's thread writes it */
static unsigned last_flags;
static int random_not_ready; /* act as the kernel before its pool is initialised */

int __wrap_pthread_cond_timedwait(pthread_cond_t *cv, pthread_mutex_t *mu,
                                  const struct timespec *ts) {
  if (pthread_equal(pthread_self(), main_thread))
    timedwaits_on_main++;
  return __real_pthread_cond_timedwait(cv, mu, ts);
}

ssize_t __wrap_getrandom(void *buf, size_t len, unsigned flags) {
  if (pthread_equal(pthread_self(), main_thread))
    last_flags = flags;
  if (random_not_ready) {
    if (flags & GRND_NONBLOCK) {
      errno = EAGAIN;
      return -1;
    }
    fail_msg("getrandom() without GRND_NONBLOCK would block here (early boot)");
  }
  return __real_getrandom(buf, len, flags);
}

/* An idle worker: destroy hands it nothing and must not wait for it. */
static void test_orphan_idle_worker_does_not_wait(void **state) {
  (void)state;
  upnp_worker_t *w = portmap_upnp_worker_new(1000, NULL);
  assert_non_null(w);
  upnp_jobs_t j;
  portmap_upnp_jobs_init(&j);
  timedwaits_on_main = 0;
  assert_int_equal(portmap_upnp_worker_orphan(w, &j, 0), 0);
  assert_int_equal(timedwaits_on_main, 0);
}

static void test_random_is_nonblocking(void **state) {
  (void)state;
  uint8_t b[16];
  last_flags = 0;
  assert_int_equal(portmap_plat_random(b, sizeof b), 0);
  assert_true(last_flags & GRND_NONBLOCK);
}

static void test_random_not_ready_fails_at_once(void **state) {
  (void)state;
  uint8_t b[16];
  random_not_ready = 1;
  errno = 0;
  int rc = portmap_plat_random(b, sizeof b);
  int saved = errno;
  random_not_ready = 0;
  assert_int_equal(rc, -1);
  assert_int_equal(saved, EAGAIN);
}

int main(void) {
  main_thread = pthread_self();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_orphan_idle_worker_does_not_wait),
      cmocka_unit_test(test_random_is_nonblocking),
      cmocka_unit_test(test_random_not_ready_fails_at_once),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
