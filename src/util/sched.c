/* SPDX-License-Identifier: MIT */
/*
 * The shared scheduler: an intrusive binary min-heap ordered by
 * (deadline, seq). Every push takes a fresh seq, so timers with equal
 * deadlines fire in the order they were (re)scheduled.
 *
 * Array layout: heap[0 .. len) is the heap. While portmap_sched_run() is
 * running, timers that a callback re-armed for a time <= now are parked at
 * the far end, heap[cap - ndeferred .. cap), so they do not block the other
 * due timers behind them and do not fire twice in one run; the run puts
 * them back into the heap when it ends. A parked timer's index is its slot,
 * which is always >= len, so cancel and push can tell it from a heap entry.
 */
#include "util/sched.h"

#include <stdlib.h>
#include <string.h>

#define SCHED_INITIAL_CAP 16

static int timer_before(const portmap_timer_t *a, const portmap_timer_t *b) {
  if (a->deadline != b->deadline)
    return a->deadline < b->deadline;
  return a->seq < b->seq;
}

static void heap_set(portmap_sched_t *s, size_t i, portmap_timer_t *t) {
  s->heap[i] = t;
  t->index = i;
}

static void sift_up(portmap_sched_t *s, size_t i) {
  portmap_timer_t *t = s->heap[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!timer_before(t, s->heap[parent]))
      break;
    heap_set(s, i, s->heap[parent]);
    i = parent;
  }
  heap_set(s, i, t);
}

static void sift_down(portmap_sched_t *s, size_t i) {
  portmap_timer_t *t = s->heap[i];
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= s->len)
      break;
    if (child + 1 < s->len && timer_before(s->heap[child + 1], s->heap[child]))
      child++;
    if (!timer_before(s->heap[child], t))
      break;
    heap_set(s, i, s->heap[child]);
    i = child;
  }
  heap_set(s, i, t);
}

/* Restore the heap property for an entry whose key changed at i. */
static void heap_fix(portmap_sched_t *s, size_t i) {
  if (i > 0 && timer_before(s->heap[i], s->heap[(i - 1) / 2]))
    sift_up(s, i);
  else
    sift_down(s, i);
}

static void heap_remove(portmap_sched_t *s, size_t i) {
  portmap_timer_t *t = s->heap[i];
  size_t last = --s->len;
  if (i != last) {
    heap_set(s, i, s->heap[last]);
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
    heap_set(s, t->index, s->heap[first]);
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
  while (newcap < need) {
    if (newcap > SIZE_MAX / 2 / sizeof *s->heap)
      return -1;
    newcap *= 2;
  }
  portmap_timer_t **h = portmap_alloc_realloc(s->alloc, s->heap, newcap * sizeof *h);
  if (h == NULL)
    return -1;
  s->heap = h;
  if (s->ndeferred) {
    size_t from = s->cap - s->ndeferred;
    size_t to = newcap - s->ndeferred;
    memmove(&h[to], &h[from], s->ndeferred * sizeof *h);
    for (size_t i = to; i < newcap; i++)
      h[i]->index = i;
  }
  s->cap = newcap;
  return 0;
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
    heap_fix(s, t->index);
    return 0;
  }
  if (is_deferred(s, t))
    deferred_remove(s, t);
  if (heap_grow(s, s->len + s->ndeferred + 1) != 0)
    return -1;
  t->deadline = deadline;
  t->seq = s->next_seq++;
  heap_set(s, s->len, t);
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
      heap_set(s, s->cap - s->ndeferred, t);
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
    heap_set(s, s->len, t);
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
    if (t == NULL || t->index != i || t->seq >= s->next_seq)
      return -1;
    if (i > 0 && timer_before(t, s->heap[(i - 1) / 2]))
      return -1;
  }
  for (size_t i = s->cap - s->ndeferred; i < s->cap; i++) {
    const portmap_timer_t *t = s->heap[i];
    if (t == NULL || t->index != i || t->seq >= s->next_seq)
      return -1;
  }
  return 0;
}
