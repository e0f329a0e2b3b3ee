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

#endif
