#include "test_support.h"

#include <poll.h>

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
