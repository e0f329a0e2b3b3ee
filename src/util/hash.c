/* SPDX-License-Identifier: MIT */
/*
 * The open-addressing hash set of util/hash.h: linear probing over a
 * power-of-two array of pointers, at most 3/4 full. A removal closes the
 * gap by moving back every later element of the cluster whose home slot
 * does not lie between the gap and where it sits, so lookups stop at the
 * first empty slot and no tombstones accumulate.
 */
#include "util/hash.h"

#include <stdlib.h>
#include <string.h>

#define HASH_MIN_CAP 16

static size_t home(const portmap_hash_t *h, const void *elem) {
  return (size_t)h->hash(elem, h->user) & (h->cap - 1);
}

/* Place elem in its probe sequence; the table has room. */
static void place(void **slots, size_t cap, size_t start, void *elem) {
  size_t i = start & (cap - 1);
  while (slots[i] != NULL)
    i = (i + 1) & (cap - 1);
  slots[i] = elem;
}

static int resize(portmap_hash_t *h, size_t cap) {
  void **slots = portmap_alloc_calloc(h->alloc, cap, sizeof *slots);
  if (slots == NULL)
    return -1;
  for (size_t i = 0; i < h->cap; i++) {
    if (h->slots[i] != NULL)
      place(slots, cap, (size_t)h->hash(h->slots[i], h->user), h->slots[i]);
  }
  portmap_alloc_free(h->alloc, h->slots);
  h->slots = slots;
  h->cap = cap;
  return 0;
}

static void maybe_shrink(portmap_hash_t *h) {
  if (h->walking != 0 || h->len > h->cap / 8 || h->cap <= h->min_cap)
    return;
  if (h->len == 0 && h->min_cap == 0) {
    portmap_alloc_free(h->alloc, h->slots); /* nothing held by an empty table */
    h->slots = NULL;
    h->cap = 0;
    return;
  }
  size_t cap = h->cap / 2;
  if (cap >= HASH_MIN_CAP && cap >= h->min_cap)
    (void)resize(h, cap); /* out of memory: stay as large */
}

/* The capacity that holds n elements at most 3/4 full. */
static size_t cap_for(size_t n) {
  size_t cap = HASH_MIN_CAP;
  while (cap * 3 < n * 4 && cap < SIZE_MAX / 2)
    cap *= 2;
  return cap;
}

void portmap_hash_init(portmap_hash_t *h, portmap_hash_fn hash, const void *user,
                       const portmap_alloc_t *alloc) {
  memset(h, 0, sizeof *h);
  h->hash = hash;
  h->user = user;
  h->alloc = alloc;
}

void portmap_hash_fini(portmap_hash_t *h) {
  portmap_alloc_free(h->alloc, h->slots);
  h->slots = NULL;
  h->cap = 0;
  h->len = 0;
}

int portmap_hash_reserve(portmap_hash_t *h, size_t n) {
  size_t cap = cap_for(n);
  if (cap > h->cap && resize(h, cap) != 0)
    return -1;
  h->min_cap = cap;
  return 0;
}

int portmap_hash_insert(portmap_hash_t *h, void *elem) {
  if ((h->len + 1) * 4 > h->cap * 3) {
    size_t cap = h->cap == 0 ? HASH_MIN_CAP : h->cap * 2;
    if (cap < h->cap || resize(h, cap) != 0)
      return -1;
  }
  place(h->slots, h->cap, home(h, elem), elem);
  h->len++;
  return 0;
}

int portmap_hash_remove(portmap_hash_t *h, const void *elem) {
  if (h->len == 0)
    return 0;
  size_t mask = h->cap - 1;
  size_t i = home(h, elem);
  while (h->slots[i] != elem) {
    if (h->slots[i] == NULL)
      return 0;
    i = (i + 1) & mask;
  }
  /* the gap at i: pull back what would no longer be found past it */
  size_t gap = i;
  for (size_t j = (gap + 1) & mask; h->slots[j] != NULL; j = (j + 1) & mask) {
    size_t k = home(h, h->slots[j]);
    /* an element at j with home k stays when k lies cyclically in (gap, j] */
    int stays = gap <= j ? (gap < k && k <= j) : (gap < k || k <= j);
    if (stays)
      continue;
    h->slots[gap] = h->slots[j];
    gap = j;
  }
  h->slots[gap] = NULL;
  h->len--;
  maybe_shrink(h);
  return 1;
}

void *portmap_hash_find(const portmap_hash_t *h, uint64_t hash, portmap_hash_match_fn match,
                        const void *key) {
  if (h->len == 0)
    return NULL;
  size_t mask = h->cap - 1;
  for (size_t i = (size_t)hash & mask; h->slots[i] != NULL; i = (i + 1) & mask) {
    if (match(h->slots[i], key))
      return h->slots[i];
  }
  return NULL;
}

/* From just after an empty slot no cluster wraps past the start, and a
 * removal only moves later elements of a cluster back into the gap: so
 * when the visitor removed the element at i, whatever slid into i has not
 * been visited yet, and nothing visited moves. */
void portmap_hash_walk(portmap_hash_t *h, portmap_hash_visit_fn visit, void *ctx) {
  if (h->len == 0)
    return;
  size_t mask = h->cap - 1;
  size_t empty = 0;
  while (h->slots[empty] != NULL)
    empty++; /* at most 3/4 full: there is one */
  h->walking++;
  for (size_t k = 1; k < h->cap; k++) {
    size_t i = (empty + k) & mask;
    void *elem;
    while ((elem = h->slots[i]) != NULL) {
      visit(elem, ctx);
      if (h->slots[i] == elem)
        break; /* kept: on to the next slot */
    }
  }
  h->walking--;
  maybe_shrink(h);
}

size_t portmap_hash_len(const portmap_hash_t *h) {
  return h->len;
}

/* A 64-bit finaliser: multiply by odd constants, fold the high bits down. */
static uint64_t mix(uint64_t x) {
  x ^= x >> 32;
  x *= 0x9e3779b97f4a7c15u; /* 2^64 / golden ratio, odd */
  x ^= x >> 29;
  x *= 0xc2b2ae3d27d4eb4fu;
  x ^= x >> 32;
  return x;
}

uint64_t portmap_hash_bytes(uint64_t seed, const void *data, size_t len) {
  const uint8_t *p = data;
  uint64_t h = mix(seed ^ (uint64_t)len);
  while (len >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    h = mix(h ^ w);
    p += 8;
    len -= 8;
  }
  if (len > 0) {
    uint64_t w = 0;
    memcpy(&w, p, len);
    h = mix(h ^ w ^ ((uint64_t)len << 56));
  }
  return h;
}
