/* SPDX-License-Identifier: MIT */
/* Unit tests for the open-addressing hash set (src/util/hash.c): growth,
 * deletion inside clusters, collisions, lookups by predicate, walks that
 * remove, and a randomised run against a plain array. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/hash.h"

/* An element: a key, an identity, and whether a walk saw it. */
typedef struct item {
  uint32_t key;
  unsigned id;
  unsigned seen;
} item_t;

/* The hash of an element: by its key, through a mask when the test wants
 * collisions (user points at the mask; all ones = a real hash). */
static uint64_t key_hash(uint32_t key, uint64_t mask) {
  return portmap_hash_bytes(7, &key, sizeof key) & mask;
}

static uint64_t item_hash(const void *elem, const void *user) {
  return key_hash(((const item_t *)elem)->key, *(const uint64_t *)user);
}

static int match_key(const void *elem, const void *key) {
  return ((const item_t *)elem)->key == *(const uint32_t *)key;
}

static item_t *find_key(const portmap_hash_t *h, uint64_t mask, uint32_t key) {
  return portmap_hash_find(h, key_hash(key, mask), match_key, &key);
}

/* Every element of the table can be found from its own hash. */
static void check_all_reachable(const portmap_hash_t *h) {
  size_t n = 0;
  for (size_t i = 0; i < h->cap; i++) {
    const void *e = h->slots[i];
    if (e == NULL)
      continue;
    n++;
    size_t mask = h->cap - 1;
    size_t j = (size_t)h->hash(e, h->user) & mask;
    while (h->slots[j] != e) {
      assert_non_null(h->slots[j]); /* an empty slot before it: a lookup would stop there */
      j = (j + 1) & mask;
    }
  }
  assert_int_equal(n, h->len);
  assert_true(h->cap == 0 || h->len * 4 <= h->cap * 3);
}

static void test_empty(void **state) {
  (void)state;
  uint64_t mask = UINT64_MAX;
  portmap_hash_t h;
  portmap_hash_init(&h, item_hash, &mask, NULL);
  assert_int_equal(portmap_hash_len(&h), 0);
  assert_null(find_key(&h, mask, 1));
  item_t a = {1, 0, 0};
  assert_int_equal(portmap_hash_remove(&h, &a), 0);
  portmap_hash_fini(&h);
}

static void test_growth_and_lookup(void **state) {
  (void)state;
  uint64_t mask = UINT64_MAX;
  enum { N = 5000 };
  item_t *items = calloc(N, sizeof *items);
  portmap_hash_t h;
  portmap_hash_init(&h, item_hash, &mask, NULL);
  size_t last_cap = 0;
  unsigned grew = 0;
  for (unsigned i = 0; i < N; i++) {
    items[i].key = i * 2654435761u;
    items[i].id = i;
    assert_int_equal(portmap_hash_insert(&h, &items[i]), 0);
    if (h.cap != last_cap) {
      grew++;
      last_cap = h.cap;
    }
  }
  assert_int_equal(portmap_hash_len(&h), N);
  assert_true(grew >= 9); /* 16 -> 8192 */
  assert_int_equal(h.cap, 8192);
  check_all_reachable(&h);
  for (unsigned i = 0; i < N; i++)
    assert_ptr_equal(find_key(&h, mask, items[i].key), &items[i]);
  for (unsigned i = 0; i < N; i++)
    assert_true(items[i].key != 3u);
  assert_null(find_key(&h, mask, 3)); /* never inserted */
  portmap_hash_fini(&h);
  free(items);
}

/* Everything in one bucket: lookups walk the cluster, removal from its
 * middle keeps the rest reachable. */
static void test_collisions(void **state) {
  (void)state;
  uint64_t mask = 0; /* every key hashes to 0 */
  enum { N = 11 };
  item_t items[N];
  portmap_hash_t h;
  portmap_hash_init(&h, item_hash, &mask, NULL);
  for (unsigned i = 0; i < N; i++) {
    items[i] = (item_t){100 + i, i, 0};
    assert_int_equal(portmap_hash_insert(&h, &items[i]), 0);
  }
  check_all_reachable(&h);
  for (unsigned i = 0; i < N; i++)
    assert_ptr_equal(find_key(&h, mask, 100 + i), &items[i]);
  /* from the middle, the head and the tail of the cluster */
  assert_int_equal(portmap_hash_remove(&h, &items[5]), 1);
  assert_int_equal(portmap_hash_remove(&h, &items[0]), 1);
  assert_int_equal(portmap_hash_remove(&h, &items[N - 1]), 1);
  assert_int_equal(portmap_hash_remove(&h, &items[5]), 0);
  check_all_reachable(&h);
  assert_null(find_key(&h, mask, 105));
  assert_null(find_key(&h, mask, 100));
  for (unsigned i = 1; i < N - 1; i++)
    if (i != 5)
      assert_ptr_equal(find_key(&h, mask, 100 + i), &items[i]);
  portmap_hash_fini(&h);
}

/* Clusters that wrap past the end of the array: homes near the end, a
 * removal there must pull back the elements that wrapped to the front. */
static uint64_t near_end_hash(const void *elem, const void *user) {
  (void)user;
  return 14 + ((const item_t *)elem)->key % 2; /* slots 14 and 15 of 16 */
}

static void test_wrapping_cluster(void **state) {
  (void)state;
  item_t items[6];
  portmap_hash_t h;
  portmap_hash_init(&h, near_end_hash, NULL, NULL);
  for (unsigned i = 0; i < 6; i++) {
    items[i] = (item_t){i, i, 0};
    assert_int_equal(portmap_hash_insert(&h, &items[i]), 0);
  }
  assert_int_equal(h.cap, 16);
  check_all_reachable(&h);
  assert_int_equal(portmap_hash_remove(&h, &items[0]), 1); /* at 14 */
  check_all_reachable(&h);
  assert_int_equal(portmap_hash_remove(&h, &items[1]), 1); /* at 15 */
  check_all_reachable(&h);
  for (unsigned i = 2; i < 6; i++) {
    uint32_t key = i;
    assert_ptr_equal(portmap_hash_find(&h, 14 + key % 2, match_key, &key), &items[i]);
  }
  portmap_hash_fini(&h);
}

/* Several elements equal under the hash: the predicate chooses. */
static int match_id(const void *elem, const void *key) {
  return ((const item_t *)elem)->id == *(const unsigned *)key;
}

static void test_duplicates_predicate(void **state) {
  (void)state;
  uint64_t mask = UINT64_MAX;
  item_t a = {42, 1, 0}, b = {42, 2, 0}, c = {42, 3, 0};
  portmap_hash_t h;
  portmap_hash_init(&h, item_hash, &mask, NULL);
  assert_int_equal(portmap_hash_insert(&h, &a), 0);
  assert_int_equal(portmap_hash_insert(&h, &b), 0);
  assert_int_equal(portmap_hash_insert(&h, &c), 0);
  for (unsigned id = 1; id <= 3; id++) {
    item_t *got = portmap_hash_find(&h, key_hash(42, mask), match_id, &id);
    assert_non_null(got);
    assert_int_equal(got->id, id);
  }
  unsigned none = 9;
  assert_null(portmap_hash_find(&h, key_hash(42, mask), match_id, &none));
  assert_int_equal(portmap_hash_remove(&h, &b), 1);
  unsigned two = 2;
  assert_null(portmap_hash_find(&h, key_hash(42, mask), match_id, &two));
  assert_non_null(find_key(&h, mask, 42));
  portmap_hash_fini(&h);
}

/* Deleting almost everything halves the table; an insert right after a
 * remove never needs to grow. */
static void test_shrink_and_reinsert(void **state) {
  (void)state;
  uint64_t mask = UINT64_MAX;
  enum { N = 1000 };
  item_t *items = calloc(N, sizeof *items);
  portmap_hash_t h;
  portmap_hash_init(&h, item_hash, &mask, NULL);
  for (unsigned i = 0; i < N; i++) {
    items[i] = (item_t){i, i, 0};
    assert_int_equal(portmap_hash_insert(&h, &items[i]), 0);
  }
  size_t big = h.cap;
  for (unsigned i = 0; i < N - 10; i++) {
    size_t before = h.cap;
    assert_int_equal(portmap_hash_remove(&h, &items[i]), 1);
    if (h.cap < before) {
      /* re-keying the element just removed fits without growing */
      items[i].key += 1000000;
      size_t cap = h.cap;
      assert_int_equal(portmap_hash_insert(&h, &items[i]), 0);
      assert_int_equal(h.cap, cap);
      assert_int_equal(portmap_hash_remove(&h, &items[i]), 1);
    }
  }
  assert_true(h.cap < big);
  assert_true(h.cap >= 16);
  check_all_reachable(&h);
  for (unsigned i = N - 10; i < N; i++)
    assert_ptr_equal(find_key(&h, mask, i), &items[i]);
  for (unsigned i = N - 10; i < N; i++)
    assert_int_equal(portmap_hash_remove(&h, &items[i]), 1);
  assert_int_equal(h.cap, 0); /* empty: nothing held */
  assert_int_equal(portmap_hash_insert(&h, &items[0]), 0);
  portmap_hash_fini(&h);
  free(items);
}

/* A reserved table never shrinks below what it reserved, so inserts up to
 * the reservation never allocate (NAT-PMP keeps its requests in flight so). */
static void test_reserve(void **state) {
  (void)state;
  uint64_t mask = UINT64_MAX;
  item_t items[100];
  portmap_hash_t h;
  portmap_hash_init(&h, item_hash, &mask, NULL);
  assert_int_equal(portmap_hash_reserve(&h, 65), 0);
  size_t cap = h.cap;
  assert_true(cap * 3 >= 65 * 4);
  for (int round = 0; round < 3; round++) {
    for (unsigned i = 0; i < 65; i++) {
      items[i] = (item_t){i + 1000u * (unsigned)round, i, 0};
      assert_int_equal(portmap_hash_insert(&h, &items[i]), 0);
      assert_int_equal(h.cap, cap);
    }
    for (unsigned i = 0; i < 65; i++)
      assert_int_equal(portmap_hash_remove(&h, &items[i]), 1);
    assert_int_equal(h.cap, cap); /* empty, still reserved */
  }
  /* beyond the reservation it grows as usual, and shrinks back to it */
  for (unsigned i = 0; i < 100; i++) {
    items[i] = (item_t){i, i, 0};
    assert_int_equal(portmap_hash_insert(&h, &items[i]), 0);
  }
  assert_true(h.cap > cap);
  for (unsigned i = 0; i < 100; i++)
    assert_int_equal(portmap_hash_remove(&h, &items[i]), 1);
  assert_int_equal(h.cap, cap);
  portmap_hash_fini(&h);
}

/* ---- walks ---- */

typedef struct walk_ctx {
  portmap_hash_t *h;
  unsigned remove_mod; /* remove elements whose id % remove_mod == 0; 0 = none */
  unsigned visits;
} walk_ctx_t;

static void visit(void *elem, void *ctx) {
  walk_ctx_t *w = ctx;
  item_t *it = elem;
  it->seen++;
  w->visits++;
  if (w->remove_mod != 0 && it->id % w->remove_mod == 0)
    assert_int_equal(portmap_hash_remove(w->h, it), 1);
}

static void walk_case(uint64_t mask, unsigned n, unsigned remove_mod) {
  item_t *items = calloc(n, sizeof *items);
  portmap_hash_t h;
  portmap_hash_init(&h, item_hash, &mask, NULL);
  for (unsigned i = 0; i < n; i++) {
    items[i] = (item_t){i * 7919u, i, 0};
    assert_int_equal(portmap_hash_insert(&h, &items[i]), 0);
  }
  walk_ctx_t w = {&h, remove_mod, 0};
  portmap_hash_walk(&h, visit, &w);
  assert_int_equal(w.visits, n);
  for (unsigned i = 0; i < n; i++)
    assert_int_equal(items[i].seen, 1); /* once each: none skipped, none twice */
  check_all_reachable(&h);
  size_t left = 0;
  for (unsigned i = 0; i < n; i++) {
    int removed = remove_mod != 0 && i % remove_mod == 0;
    assert_ptr_equal(find_key(&h, mask, items[i].key), removed ? NULL : &items[i]);
    left += !removed;
  }
  assert_int_equal(portmap_hash_len(&h), left);
  portmap_hash_fini(&h);
  free(items);
}

static void test_walk_visits_each_once(void **state) {
  (void)state;
  walk_case(UINT64_MAX, 500, 0);
  walk_case(3, 9, 0); /* four homes: long clusters */
}

static void test_walk_removing(void **state) {
  (void)state;
  walk_case(UINT64_MAX, 500, 1); /* every one: empties the table, shrinks after */
  walk_case(UINT64_MAX, 500, 2);
  walk_case(UINT64_MAX, 500, 3);
  walk_case(3, 11, 2); /* inside collision clusters */
  walk_case(0, 12, 3); /* one cluster holding everything */
  walk_case(15, 12, 1);
}

/* ---- randomised against a plain array ---- */

static uint64_t rng(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

static void test_randomized(void **state) {
  (void)state;
  uint64_t mask = 63; /* 64 homes for up to a few hundred keys: many collisions */
  enum { POOL = 400, STEPS = 20000 };
  item_t *items = calloc(POOL, sizeof *items);
  int *in = calloc(POOL, sizeof *in);
  portmap_hash_t h;
  portmap_hash_init(&h, item_hash, &mask, NULL);
  uint64_t s = 0x1234567;
  size_t count = 0;
  for (unsigned i = 0; i < POOL; i++)
    items[i] = (item_t){(uint32_t)i, i, 0};
  for (unsigned step = 0; step < STEPS; step++) {
    unsigned i = (unsigned)(rng(&s) % POOL);
    unsigned op = (unsigned)(rng(&s) % 8);
    if (op < 4 && !in[i]) {
      assert_int_equal(portmap_hash_insert(&h, &items[i]), 0);
      in[i] = 1;
      count++;
    } else if (op < 7 && in[i]) {
      assert_int_equal(portmap_hash_remove(&h, &items[i]), 1);
      in[i] = 0;
      count--;
    } else {
      assert_ptr_equal(find_key(&h, mask, items[i].key), in[i] ? &items[i] : NULL);
    }
    assert_int_equal(portmap_hash_len(&h), count);
    if (step % 1000 == 0) {
      check_all_reachable(&h);
      for (unsigned k = 0; k < POOL; k++)
        assert_ptr_equal(find_key(&h, mask, items[k].key), in[k] ? &items[k] : NULL);
    }
  }
  portmap_hash_fini(&h);
  free(in);
  free(items);
}

static void test_hash_bytes(void **state) {
  (void)state;
  uint8_t a[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  uint8_t b[12];
  memcpy(b, a, sizeof b);
  assert_int_equal(portmap_hash_bytes(1, a, 12), portmap_hash_bytes(1, b, 12));
  b[11] ^= 1; /* the tail counts */
  assert_true(portmap_hash_bytes(1, a, 12) != portmap_hash_bytes(1, b, 12));
  assert_true(portmap_hash_bytes(1, a, 12) != portmap_hash_bytes(2, a, 12)); /* the seed counts */
  assert_true(portmap_hash_bytes(1, a, 11) != portmap_hash_bytes(1, a, 12)); /* the length counts */
  /* small keys spread over the low bits (the table's index) */
  unsigned used[64] = {0};
  for (uint32_t k = 0; k < 64; k++)
    used[portmap_hash_bytes(9, &k, sizeof k) & 63]++;
  unsigned filled = 0;
  for (unsigned i = 0; i < 64; i++)
    filled += used[i] > 0;
  assert_true(filled > 32);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_empty),
      cmocka_unit_test(test_growth_and_lookup),
      cmocka_unit_test(test_collisions),
      cmocka_unit_test(test_wrapping_cluster),
      cmocka_unit_test(test_duplicates_predicate),
      cmocka_unit_test(test_shrink_and_reinsert),
      cmocka_unit_test(test_reserve),
      cmocka_unit_test(test_walk_visits_each_once),
      cmocka_unit_test(test_walk_removing),
      cmocka_unit_test(test_randomized),
      cmocka_unit_test(test_hash_bytes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
