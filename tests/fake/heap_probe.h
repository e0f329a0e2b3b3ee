/* SPDX-License-Identifier: MIT */
/*
 * How much heap the process has in use, for tests that prove memory stays
 * flat: the sanitizer allocator's count under ASan/TSan (which replace
 * malloc, so glibc's own statistics see nothing), glibc's mallinfo2()
 * otherwise.
 */
#ifndef PORTMAP_TESTS_HEAP_PROBE_H
#define PORTMAP_TESTS_HEAP_PROBE_H

#include <stdint.h>

/* No measure on this build. */
#define HEAP_PROBE_NONE UINT64_MAX

/* Bytes of heap in use now, or HEAP_PROBE_NONE. */
uint64_t heap_probe_in_use(void);
/* The same; with HEAP_PROBE_NONE, *why says why there is no measure. */
uint64_t heap_probe_start(const char **why);
/* Bytes the measure may move by with nothing kept: 0 with a sanitizer's
 * allocator. With glibc, the freed chunks a thread's cache (tcache) holds,
 * which mallinfo2() counts as in use: at most 7 of each of its 64 sizes
 * (32..1040 octets), 240,128 octets a thread; with
 * GLIBC_TUNABLES=glibc.malloc.tcache_count=0 the measure is exact. */
uint64_t heap_probe_noise(void);

#endif
