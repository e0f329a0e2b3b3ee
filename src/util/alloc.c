/* SPDX-License-Identifier: MIT */
/*
 * The one allocator (see alloc.h): the application's hook, or the system's
 * malloc, realloc and free. The only file of src/ that calls them.
 */
#include "util/alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int portmap_alloc_from(portmap_alloc_t *out, portmap_malloc_cb m, portmap_realloc_cb r,
                       portmap_free_cb f, void *user) {
  int set = (m != NULL) + (r != NULL) + (f != NULL);
  if (set != 0 && set != 3)
    return -1;
  if (out != NULL) {
    out->malloc_cb = m;
    out->realloc_cb = r;
    out->free_cb = f;
    out->user = set ? user : NULL;
  }
  return 0;
}

static int hooked(const portmap_alloc_t *a) {
  return a != NULL && a->malloc_cb != NULL;
}

void *portmap_alloc_malloc(const portmap_alloc_t *a, size_t size) {
  if (size == 0)
    return NULL;
  return hooked(a) ? a->malloc_cb(size, a->user) : malloc(size);
}

void *portmap_alloc_calloc(const portmap_alloc_t *a, size_t n, size_t size) {
  if (n == 0 || size == 0 || n > SIZE_MAX / size)
    return NULL;
  void *p = portmap_alloc_malloc(a, n * size);
  if (p != NULL)
    memset(p, 0, n * size);
  return p;
}

void *portmap_alloc_realloc(const portmap_alloc_t *a, void *p, size_t size) {
  if (size == 0)
    return NULL;
  if (p == NULL)
    return portmap_alloc_malloc(a, size);
  return hooked(a) ? a->realloc_cb(p, size, a->user) : realloc(p, size);
}

void portmap_alloc_free(const portmap_alloc_t *a, void *p) {
  if (p == NULL)
    return;
  if (hooked(a))
    a->free_cb(p, a->user);
  else
    free(p);
}

char *portmap_alloc_strdup(const portmap_alloc_t *a, const char *s) {
  if (s == NULL)
    return NULL;
  size_t n = strlen(s) + 1;
  char *d = portmap_alloc_malloc(a, n);
  if (d != NULL)
    memcpy(d, s, n);
  return d;
}
