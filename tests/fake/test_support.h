/*
 * Pieces every client-driving unit test needs: a deterministic stand-in
 * for the CSPRNG, a look at whether the client has datagrams waiting, and
 * the injected-clock loop that runs every timer due in a span of time.
 */
#ifndef PORTMAP_TESTS_TEST_SUPPORT_H
#define PORTMAP_TESTS_TEST_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

#include <portmap/portmap.h>

/* splitmix64 over *state: the same octets for the same seed, every run. */
void test_splitmix_fill(uint64_t *state, void *buf, size_t len);

/* 1 when one of the client's fds is readable within timeout_ms, else 0. */
int test_client_readable(portmap_client_t *c, int timeout_ms);

/* Move *now forward by ms, stopping at each deadline the client reports
 * and calling pump(arg) there, so every timer due in the span runs once at
 * its own time. Bounded: at most 100000 steps. */
void test_advance(portmap_client_t *c, uint64_t *now, uint64_t ms, void (*pump)(void *arg),
                  void *arg);

#endif
