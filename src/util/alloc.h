/* SPDX-License-Identifier: MIT */
/*
 * The one allocator: every block the library allocates goes through the
 * application's hook (portmap_config_t.malloc_cb, realloc_cb, free_cb and
 * alloc_user) or, when none is set, the system's malloc/realloc/free. A
 * layer that allocates is handed a portmap_alloc_t; NULL means the system
 * allocator. alloc.c is the only file that calls malloc, realloc or free
 * (tests/arch/check_layout.py checks it; the exceptions are blocks that
 * miniupnpc allocates itself, which go back to it with the system free()).
 */
#ifndef PORTMAP_UTIL_ALLOC_H
#define PORTMAP_UTIL_ALLOC_H

#include <stddef.h>

#include <portmap/portmap.h>

/* An allocator: all three functions, or none (the system's). */
typedef struct portmap_alloc {
  portmap_malloc_cb malloc_cb;
  portmap_realloc_cb realloc_cb;
  portmap_free_cb free_cb;
  void *user;
} portmap_alloc_t;

/* The three hooks as given: all set, or none (the system allocator): 0;
 * a partial set: -1. out (if not NULL) gets the allocator. */
int portmap_alloc_from(portmap_alloc_t *out, portmap_malloc_cb m, portmap_realloc_cb r,
                       portmap_free_cb f, void *user);

/* size octets; NULL when size is 0 or memory is short. */
void *portmap_alloc_malloc(const portmap_alloc_t *a, size_t size);
/* n * size octets, zeroed; NULL when the product is 0, overflows, or memory is short. */
void *portmap_alloc_calloc(const portmap_alloc_t *a, size_t n, size_t size);
/* Resize p (NULL: allocate) to size octets (not 0); NULL when memory is
 * short, p then unchanged. */
void *portmap_alloc_realloc(const portmap_alloc_t *a, void *p, size_t size);
/* Give back p (NULL: nothing). */
void portmap_alloc_free(const portmap_alloc_t *a, void *p);
/* A copy of s (NULL: NULL). */
char *portmap_alloc_strdup(const portmap_alloc_t *a, const char *s);

#endif
