/* SPDX-License-Identifier: MIT */
/*
 * A small open-addressing hash set of pointers (linear probing, no
 * tombstones: deletion shifts the rest of the cluster back). Sans I/O.
 *
 * The table stores only the element pointers (8 octets a slot, at most 3/4
 * full); an element's hash comes from the table's hash function, and a
 * lookup takes the hash of the key it looks for plus a predicate: the
 * table only finds candidates, the caller's predicate decides (PCP checks
 * every field of checklist D3 there). Several elements may share a hash
 * or be equal under a predicate: find returns the first one that the
 * predicate accepts, in probe order.
 *
 * Every operation is O(1) expected; growth doubles (O(n) once in a while),
 * and a table that falls below 1/8 full halves. portmap_hash_walk() visits
 * every element once, and the visitor may remove the element it is given
 * (nothing else, and it inserts nothing): the walk neither skips nor
 * repeats an element when that happens.
 */
#ifndef PORTMAP_UTIL_HASH_H
#define PORTMAP_UTIL_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "util/alloc.h"

/* The hash of an element (the same function of its key as the caller's
 * lookups use); user is the table's. */
typedef uint64_t (*portmap_hash_fn)(const void *elem, const void *user);
/* Does elem match what the lookup looks for? */
typedef int (*portmap_hash_match_fn)(const void *elem, const void *key);
typedef void (*portmap_hash_visit_fn)(void *elem, void *ctx);

typedef struct portmap_hash {
  void **slots; /* NULL = empty */
  size_t cap;   /* 0, or a power of two */
  size_t len;
  portmap_hash_fn hash;
  const void *user;
  unsigned walking;             /* no shrinking while a walk runs */
  size_t min_cap;               /* portmap_hash_reserve(): never smaller */
  const portmap_alloc_t *alloc; /* the slots' (NULL: the system's) */
} portmap_hash_t;

void portmap_hash_init(portmap_hash_t *h, portmap_hash_fn hash, const void *user,
                       const portmap_alloc_t *alloc);
/* Frees the slots; the elements belong to their owners. */
void portmap_hash_fini(portmap_hash_t *h);
/* Add elem (not already in the table). Returns 0, or -1 when the table
 * cannot grow (nothing changed). An insert right after a remove never
 * needs to grow, so never fails: remove, change the key, insert. */
int portmap_hash_insert(portmap_hash_t *h, void *elem);
/* Make room for n elements, kept however few the table holds, so that
 * inserts up to n never fail. Returns 0, or -1 out of memory. */
int portmap_hash_reserve(portmap_hash_t *h, size_t n);
/* Remove elem (by identity). Returns 1, or 0 when it was not there. */
int portmap_hash_remove(portmap_hash_t *h, const void *elem);
/* The first element, in probe order from hash, that match accepts; NULL
 * when none does. */
void *portmap_hash_find(const portmap_hash_t *h, uint64_t hash, portmap_hash_match_fn match,
                        const void *key);
/* Call visit on every element once (see above for what it may do). */
void portmap_hash_walk(portmap_hash_t *h, portmap_hash_visit_fn visit, void *ctx);
size_t portmap_hash_len(const portmap_hash_t *h);

/* Hashing keys: octets, with a per-table seed (from the CSPRNG) so that
 * keys chosen by someone else do not pile up in one cluster. */
uint64_t portmap_hash_bytes(uint64_t seed, const void *data, size_t len);

#endif
