/* SPDX-License-Identifier: MIT */
/*
 * The one shared scheduler: a 4-ary min-heap of deadlines for every
 * timer of every mapping of every backend (renewals, retransmissions,
 * error back-offs, expiries). Timers are intrusive: the owner embeds a
 * portmap_timer_t, which remembers its heap index so cancel and
 * reschedule are O(log n). No allocation per timer; the heap array (and
 * the keys beside it, see sched.c) grows.
 */
#ifndef PORTMAP_SCHED_H
#define PORTMAP_SCHED_H

#include <stddef.h>
#include <stdint.h>

#include "util/alloc.h"

#define PORTMAP_SCHED_NONE UINT64_MAX
#define PORTMAP_SCHED_FANOUT 4 /* children per heap node: heap[i]'s are heap[4i+1 .. 4i+4] */

struct portmap_timer;
typedef void (*portmap_timer_fn)(struct portmap_timer *timer, uint64_t now);

typedef struct portmap_timer {
  uint64_t deadline; /* ms on the client's monotonic clock */
  uint64_t seq;      /* insertion order: ties fire first-in first-out */
  size_t index;      /* position in the heap, SIZE_MAX when not scheduled */
  portmap_timer_fn cb;
  void *ctx;
} portmap_timer_t;

typedef struct portmap_sched {
  portmap_timer_t **heap;
  uint32_t *keys;    /* keys[i]: heap[i]'s deadline less key_base, saturated (same block) */
  uint64_t key_base; /* moves with the clock (portmap_sched_run) */
  size_t len;
  size_t cap;
  uint64_t next_seq;
  /* During portmap_sched_run only: timers re-armed for a time <= now wait
   * in heap[cap - ndeferred .. cap) until the run ends. */
  size_t ndeferred;
  int running;
  const portmap_alloc_t *alloc; /* for the heap array; NULL (after init) = the system's */
} portmap_sched_t;

void portmap_sched_init(portmap_sched_t *s);
/* Frees the heap array; the timers themselves belong to their owners. */
void portmap_sched_fini(portmap_sched_t *s);

void portmap_timer_init(portmap_timer_t *t, portmap_timer_fn cb, void *ctx);
int portmap_timer_pending(const portmap_timer_t *t);

/* Room for n timers scheduled at once: while no more than n are, no push
 * allocates, so none can fail. Returns 0, or -1 when the heap cannot grow
 * that far (it keeps what it had). */
int portmap_sched_reserve(portmap_sched_t *s, size_t n);
/* Insert t at deadline, or move it there if already scheduled.
 * Returns 0, or -1 when the heap cannot grow (t is then not scheduled). */
int portmap_sched_push(portmap_sched_t *s, portmap_timer_t *t, uint64_t deadline);
/* Remove t if scheduled; harmless otherwise. */
void portmap_sched_cancel(portmap_sched_t *s, portmap_timer_t *t);
/* Earliest deadline, or PORTMAP_SCHED_NONE. */
uint64_t portmap_sched_next(const portmap_sched_t *s);
/* Pop and fire every timer due at now (deadline <= now). A timer that a
 * callback re-arms for a time <= now fires again only on the next call, so
 * one call is bounded. A callback may push or cancel any timer. Returns the
 * number fired. */
size_t portmap_sched_run(portmap_sched_t *s, uint64_t now);
size_t portmap_sched_size(const portmap_sched_t *s);
/* A debug check of every invariant the heap keeps (for tests and the
 * stateful fuzzers, O(n)): each entry's stored index is its slot, no entry
 * comes before its parent, every seq was handed out, and outside a run no
 * timer is parked. Returns 0 when consistent, -1 at the first violation. */
int portmap_sched_check(const portmap_sched_t *s);

#endif
