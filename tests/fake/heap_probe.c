/* SPDX-License-Identifier: MIT */
/*
 * Heap in use, from whichever allocator the build links (see heap_probe.h).
 */
#include "heap_probe.h"

#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HEAP_PROBE_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define HEAP_PROBE_SANITIZER 1
#endif
#endif

#if defined(HEAP_PROBE_SANITIZER)
/* sanitizer/allocator_interface.h, which gcc 12 does not install */
size_t __sanitizer_get_current_allocated_bytes(void);

uint64_t heap_probe_in_use(void) {
  return __sanitizer_get_current_allocated_bytes();
}

uint64_t heap_probe_start(const char **why) {
  *why = NULL;
  return heap_probe_in_use();
}

uint64_t heap_probe_noise(void) {
  return 0;
}
#elif defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
#include <malloc.h>

uint64_t heap_probe_in_use(void) {
  return (uint64_t)mallinfo2().uordblks;
}

uint64_t heap_probe_start(const char **why) {
  *why = NULL;
  return heap_probe_in_use();
}

uint64_t heap_probe_noise(void) {
  uint64_t sizes = 0;
  for (uint64_t i = 0; i < 64; i++)
    sizes += 32 + 16 * i;
  return 7 * sizes;
}
#else
uint64_t heap_probe_in_use(void) {
  return HEAP_PROBE_NONE;
}

uint64_t heap_probe_start(const char **why) {
  *why = "neither a sanitizer allocator nor glibc >= 2.33 (mallinfo2) in this build";
  return HEAP_PROBE_NONE;
}

uint64_t heap_probe_noise(void) {
  return 0;
}
#endif
