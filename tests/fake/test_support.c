/* SPDX-License-Identifier: MIT */
#include "test_support.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define TEST_MAX_FDS 16

void test_splitmix_fill(uint64_t *state, void *buf, size_t len) {
  uint8_t *p = buf;
  for (size_t i = 0; i < len; i++) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    p[i] = (uint8_t)(z ^ (z >> 31));
  }
}

int test_client_readable(portmap_client_t *c, int timeout_ms) {
  int fds[TEST_MAX_FDS];
  struct pollfd p[TEST_MAX_FDS];
  size_t n = portmap_fds(c, fds, TEST_MAX_FDS);
  if (n > TEST_MAX_FDS)
    n = TEST_MAX_FDS;
  for (size_t k = 0; k < n; k++) {
    p[k].fd = fds[k];
    p[k].events = POLLIN;
    p[k].revents = 0;
  }
  return poll(p, (nfds_t)n, timeout_ms) > 0;
}

void test_advance(portmap_client_t *c, uint64_t *now, uint64_t ms, void (*pump)(void *arg),
                  void *arg) {
  uint64_t target = *now + ms;
  for (int guard = 0; guard < 100000; guard++) {
    pump(arg);
    int t = portmap_timeout_ms(c);
    if (t < 0 || *now + (uint64_t)t > target)
      break;
    *now += (uint64_t)t;
  }
  *now = target;
  pump(arg);
}

void test_ev_add(test_ev_t *ev, size_t cap, size_t *n, portmap_mapping_t *m, portmap_event_t e,
                 const portmap_info_t *info, uint64_t at) {
  if (*n >= cap)
    return;
  ev[*n].m = m;
  ev[*n].event = e;
  ev[*n].info = *info;
  ev[*n].at = at;
  (*n)++;
}

size_t test_ev_count(const test_ev_t *ev, size_t n, portmap_event_t e) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (ev[i].event == e)
      k++;
  return k;
}

const test_ev_t *test_ev_find(const test_ev_t *ev, size_t n, portmap_event_t e) {
  for (size_t i = 0; i < n; i++)
    if (ev[i].event == e)
      return &ev[i];
  return NULL;
}

uint16_t test_free_udp_port(uint32_t v4) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(v4);
  socklen_t sl = sizeof sa;
  uint16_t port = 0;
  if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
      getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
    port = ntohs(sa.sin_port);
  if (fd >= 0)
    close(fd);
  return port;
}

void test_pump(portmap_client_t *c, const test_fake_ops_t *ops, void *fake, uint64_t now,
               int rounds) {
  for (int i = 0; i < rounds; i++) {
    portmap_process(c);
    struct pollfd p = {ops->fd(fake), POLLIN, 0};
    int busy = poll(&p, 1, 0) > 0;
    ops->process_at(fake, now);
    int cbusy = test_client_readable(c, 0);
    if (!busy && !cbusy)
      break;
  }
  portmap_process(c);
}

static void *run_fake(void *arg) {
  test_fake_runner_t *r = arg;
  for (int i = 0; i < 200 && !__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE); i++) { /* ~2 s */
    struct pollfd p = {r->ops->fd(r->fake), POLLIN, 0};
    poll(&p, 1, 10);
    pthread_mutex_lock(&r->mu);
    r->ops->process(r->fake);
    pthread_mutex_unlock(&r->mu);
  }
  return NULL;
}

void test_fake_runner_start(test_fake_runner_t *r, const test_fake_ops_t *ops, void *fake) {
  r->ops = ops;
  r->fake = fake;
  r->stop = 0;
  pthread_mutex_init(&r->mu, NULL);
  r->started = pthread_create(&r->th, NULL, run_fake, r) == 0;
}

void test_fake_runner_stop(test_fake_runner_t *r) {
  __atomic_store_n(&r->stop, 1, __ATOMIC_RELEASE);
  if (r->started)
    pthread_join(r->th, NULL);
  r->started = 0;
  pthread_mutex_destroy(&r->mu);
}

void test_fake_runner_lock(test_fake_runner_t *r) {
  pthread_mutex_lock(&r->mu);
}

void test_fake_runner_unlock(test_fake_runner_t *r) {
  pthread_mutex_unlock(&r->mu);
}

portmap_status_t test_free_answered(portmap_client_t *c, const test_fake_ops_t *ops, void *fake) {
  test_fake_runner_t r;
  test_fake_runner_start(&r, ops, fake);
  portmap_status_t st = portmap_client_free(c);
  test_fake_runner_stop(&r);
  return st;
}

unsigned test_time_scale(void) {
  const char *v = getenv("PORTMAP_TEST_TIME_SCALE");
  if (v == NULL || *v == '\0')
    return 1;
  char *end = NULL;
  unsigned long n = strtoul(v, &end, 10);
  return *end != '\0' || n < 1 ? 1u : n > 100 ? 100u : (unsigned)n;
}
