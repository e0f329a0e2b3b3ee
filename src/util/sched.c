/* SPDX-License-Identifier: MIT */
/*
 * The shared scheduler: an intrusive 4-ary min-heap ordered by
 * (deadline, seq). Every push takes a fresh seq, so timers with equal
 * deadlines fire in the order they were (re)scheduled.
 *
 * Why 4-ary, with the keys beside the heap (issue 12): with 100,000
 * mappings the heap holds 200,000 timers, each inside its mapping's state
 * somewhere in memory. A binary heap compared two children per level by
 * reading each child's timer, about 35 cache misses per pop; a renewal
 * moves three timers. Here every slot's deadline is also kept, as a 32-bit
 * key, in an array beside the heap: a level's four children are compared
 * in one cache line, and only the timer that moves is touched (its index),
 * on half as many levels. A key is the deadline less key_base, saturated at
 * both ends: keys order as deadlines do, and equal keys fall back to the
 * timers' own (deadline, seq). key_base follows the clock (a run rebases
 * when it is 2^31 ms behind), so saturation never lasts.
 *
 * Array layout: one block, cap timer pointers then cap keys. heap[0 .. len)
 * is the heap. While portmap_sched_run() is running, timers that a
 * callback re-armed for a time <= now are parked at the far end,
 * heap[cap - ndeferred .. cap) (their keys unused), so they do not block
 * the other due timers behind them and do not fire twice in one run; the
 * run puts them back into the heap when it ends. A parked timer's index is
 * its slot, which is always >= len, so cancel and push can tell it from a
 * heap entry.
 */
#include "util/sched.h"

#include <stdlib.h>
#include <string.h>

#define SCHED_INITIAL_CAP 16
#define SCHED_DOUBLE_UNTIL 1024             /* slots; then the array grows by an eighth */
#define SCHED_REBASE_MS (UINT64_C(1) << 31) /* key_base lags the clock by at most this */

#define PARENT(i) (((i)-1) / PORTMAP_SCHED_FANOUT)
#define FIRST_CHILD(i) (PORTMAP_SCHED_FANOUT * (i) + 1)

static int timer_before(const portmap_timer_t *a, const portmap_timer_t *b) {
  if (a->deadline != b->deadline)
    return a->deadline < b->deadline;
  return a->seq < b->seq;
}

static uint32_t key_of(const portmap_sched_t *s, uint64_t deadline) {
  if (deadline <= s->key_base)
    return 0;
  uint64_t d = deadline - s->key_base;
  return d >= UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}

/* a (with key ka) before b (key kb): the keys decide unless equal */
static int before(const portmap_timer_t *a, uint32_t ka, const portmap_timer_t *b, uint32_t kb) {
  if (ka != kb)
    return ka < kb;
  return timer_before(a, b);
}

static void heap_set(portmap_sched_t *s, size_t i, portmap_timer_t *t, uint32_t key) {
  s->heap[i] = t;
  s->keys[i] = key;
  t->index = i;
}

/* The sifts keep the arrays and the length in locals: each move writes a
 * timer's index (a size_t), which the compiler must otherwise assume may
 * be s->len, and reload everything after it. */
static void sift_up(portmap_sched_t *s, size_t i) {
  portmap_timer_t **heap = s->heap;
  uint32_t *keys = s->keys;
  portmap_timer_t *t = heap[i];
  uint32_t k = keys[i];
  while (i > 0) {
    size_t parent = PARENT(i);
    portmap_timer_t *p = heap[parent];
    if (!before(t, k, p, keys[parent]))
      break;
    heap[i] = p;
    keys[i] = keys[parent];
    p->index = i;
    i = parent;
  }
  heap[i] = t;
  keys[i] = k;
  t->index = i;
}

static void sift_down(portmap_sched_t *s, size_t i) {
  portmap_timer_t **heap = s->heap;
  uint32_t *keys = s->keys;
  size_t len = s->len;
  portmap_timer_t *t = heap[i];
  uint32_t k = keys[i];
  for (;;) {
    size_t child = FIRST_CHILD(i);
    if (child >= len)
      break;
    size_t end = len - child > PORTMAP_SCHED_FANOUT ? child + PORTMAP_SCHED_FANOUT : len;
    size_t best = child;
    uint32_t bk = keys[child];
    for (size_t c = child + 1; c < end; c++) {
      uint32_t ck = keys[c];
      if (ck < bk || (ck == bk && timer_before(heap[c], heap[best]))) {
        best = c;
        bk = ck;
      }
    }
    portmap_timer_t *b = heap[best];
    if (!before(b, bk, t, k))
      break;
    heap[i] = b;
    keys[i] = bk;
    b->index = i;
    i = best;
  }
  heap[i] = t;
  keys[i] = k;
  t->index = i;
}

/* Restore the heap property for an entry whose key changed at i. */
static void heap_fix(portmap_sched_t *s, size_t i) {
  if (i > 0 && before(s->heap[i], s->keys[i], s->heap[PARENT(i)], s->keys[PARENT(i)]))
    sift_up(s, i);
  else
    sift_down(s, i);
}

static void heap_remove(portmap_sched_t *s, size_t i) {
  portmap_timer_t *t = s->heap[i];
  size_t last = --s->len;
  if (i != last) {
    heap_set(s, i, s->heap[last], s->keys[last]);
    heap_fix(s, i);
  }
  s->heap[last] = NULL;
  t->index = SIZE_MAX;
}

static int is_deferred(const portmap_sched_t *s, const portmap_timer_t *t) {
  return t->index != SIZE_MAX && t->index >= s->len;
}

static void deferred_remove(portmap_sched_t *s, portmap_timer_t *t) {
  size_t first = s->cap - s->ndeferred;
  if (t->index != first)
    heap_set(s, t->index, s->heap[first], 0);
  s->heap[first] = NULL;
  s->ndeferred--;
  t->index = SIZE_MAX;
}

/* Make room for need entries in all (heap and parked), keeping the parked
 * timers at the end. */
static int heap_grow(portmap_sched_t *s, size_t need) {
  if (need <= s->cap)
    return 0;
  size_t newcap = s->cap ? s->cap : SCHED_INITIAL_CAP;
  size_t slot = sizeof *s->heap + sizeof *s->keys;
  while (newcap < need) {
    if (newcap > SIZE_MAX / 2 / slot)
      return -1;
    /* large: an eighth more, not twice (every mapping reserves its two
     * timers, so the array is a few dozen octets per mapping; doubling left
     * up to half of it unused) */
    newcap += newcap < SCHED_DOUBLE_UNTIL ? newcap : newcap / 8;
  }
  /* realloc, as the array always grew: a large one is an mmap that grows
   * in place (mremap), never copied, and glibc's malloc keeps serving
   * large blocks by mmap (freeing one would raise its threshold) */
  size_t oldcap = s->cap, nd = s->ndeferred;
  portmap_timer_t **h = portmap_alloc_realloc(s->alloc, s->heap, newcap * slot);
  if (h == NULL)
    return -1;
  /* the keys move up to their new place first, then the parked timers (at
   * the pointers' end) to theirs, which may be where keys were */
  uint32_t *k = (uint32_t *)(void *)(h + newcap);
  if (s->len > 0)
    memmove(k, (uint32_t *)(void *)(h + oldcap), s->len * sizeof *k);
  if (nd > 0)
    memmove(h + newcap - nd, h + oldcap - nd, nd * sizeof *h);
  memset(h + s->len, 0, (newcap - s->len - nd) * sizeof *h);
  for (size_t i = newcap - nd; i < newcap; i++)
    h[i]->index = i;
  s->heap = h;
  s->keys = k;
  s->cap = newcap;
  return 0;
}

/* Keys relative to a base near now again (once per 2^31 ms, O(n)). The
 * order of the timers does not change, so neither does the heap. */
static void rebase(portmap_sched_t *s, uint64_t now) {
  s->key_base = now;
  for (size_t i = 0; i < s->len; i++)
    s->keys[i] = key_of(s, s->heap[i]->deadline);
}

void portmap_sched_init(portmap_sched_t *s) {
  memset(s, 0, sizeof *s);
}

int portmap_sched_reserve(portmap_sched_t *s, size_t n) {
  return heap_grow(s, n);
}

void portmap_sched_fini(portmap_sched_t *s) {
  if (s == NULL)
    return;
  portmap_alloc_free(s->alloc, s->heap);
  memset(s, 0, sizeof *s);
}

void portmap_timer_init(portmap_timer_t *t, portmap_timer_fn cb, void *ctx) {
  t->deadline = PORTMAP_SCHED_NONE;
  t->seq = 0;
  t->index = SIZE_MAX;
  t->cb = cb;
  t->ctx = ctx;
}

int portmap_timer_pending(const portmap_timer_t *t) {
  return t->index != SIZE_MAX;
}

int portmap_sched_push(portmap_sched_t *s, portmap_timer_t *t, uint64_t deadline) {
  if (t->index != SIZE_MAX && !is_deferred(s, t)) {
    t->deadline = deadline;
    t->seq = s->next_seq++;
    s->keys[t->index] = key_of(s, deadline);
    heap_fix(s, t->index);
    return 0;
  }
  if (is_deferred(s, t))
    deferred_remove(s, t);
  if (heap_grow(s, s->len + s->ndeferred + 1) != 0)
    return -1;
  t->deadline = deadline;
  t->seq = s->next_seq++;
  heap_set(s, s->len, t, key_of(s, deadline));
  s->len++;
  sift_up(s, t->index);
  return 0;
}

void portmap_sched_cancel(portmap_sched_t *s, portmap_timer_t *t) {
  if (t->index == SIZE_MAX)
    return;
  if (is_deferred(s, t))
    deferred_remove(s, t);
  else
    heap_remove(s, t->index);
}

uint64_t portmap_sched_next(const portmap_sched_t *s) {
  uint64_t next = s->len ? s->heap[0]->deadline : PORTMAP_SCHED_NONE;
  for (size_t i = s->cap - s->ndeferred; i < s->cap; i++)
    if (s->heap[i]->deadline < next)
      next = s->heap[i]->deadline;
  return next;
}

size_t portmap_sched_run(portmap_sched_t *s, uint64_t now) {
  /* A nested run from a callback would see the outer run's parked timers. */
  if (s->running)
    return 0;
  s->running = 1;
  if (now > s->key_base && now - s->key_base > SCHED_REBASE_MS)
    rebase(s, now);
  /* Timers pushed from here on have seq >= limit: they were (re)armed by a
   * callback of this run and must wait for the next one. */
  uint64_t limit = s->next_seq;
  size_t fired = 0;
  while (s->len > 0 && s->heap[0]->deadline <= now) {
    portmap_timer_t *t = s->heap[0];
    heap_remove(s, 0);
    if (t->seq >= limit) {
      /* heap_remove freed a slot, so there is room at the end. */
      s->ndeferred++;
      heap_set(s, s->cap - s->ndeferred, t, 0);
      continue;
    }
    fired++;
    if (t->cb != NULL)
      t->cb(t, now);
  }
  while (s->ndeferred > 0) {
    size_t slot = s->cap - s->ndeferred;
    portmap_timer_t *t = s->heap[slot];
    s->heap[slot] = NULL;
    s->ndeferred--;
    heap_set(s, s->len, t, key_of(s, t->deadline));
    s->len++;
    sift_up(s, t->index);
  }
  s->running = 0;
  return fired;
}

size_t portmap_sched_size(const portmap_sched_t *s) {
  return s->len + s->ndeferred;
}

int portmap_sched_check(const portmap_sched_t *s) {
  if (s->len > s->cap || s->ndeferred > s->cap - s->len || (s->cap > 0 && s->heap == NULL))
    return -1;
  if (!s->running && s->ndeferred != 0)
    return -1;
  for (size_t i = 0; i < s->len; i++) {
    const portmap_timer_t *t = s->heap[i];
    if (t == NULL || t->index != i || t->seq >= s->next_seq || s->keys[i] != key_of(s, t->deadline))
      return -1;
    if (i > 0 && timer_before(t, s->heap[PARENT(i)]))
      return -1;
  }
  for (size_t i = s->cap - s->ndeferred; i < s->cap; i++) {
    const portmap_timer_t *t = s->heap[i];
    if (t == NULL || t->index != i || t->seq >= s->next_seq)
      return -1;
  }
  return 0;
}
