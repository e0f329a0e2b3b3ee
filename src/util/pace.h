/* SPDX-License-Identifier: MIT */
/*
 * A window of requests in flight and the FIFO of those waiting for a slot.
 * Sans I/O: the owner embeds a portmap_pace_link_t in each of its requests
 * and asks for a slot before the first send; a request that gets none waits
 * in the FIFO, and the owner starts waiting ones (portmap_pace_ready(),
 * portmap_pace_start()) whenever slots come back. Every operation is O(1).
 *
 * The FIFO is strict: while anything waits, a new request waits behind it
 * even if a slot is free, so the owner decides in one place (its pump) what
 * goes next.
 */
#ifndef PORTMAP_UTIL_PACE_H
#define PORTMAP_UTIL_PACE_H

#include <stddef.h>

#include "util/list.h"

enum portmap_pace_state { PORTMAP_PACE_IDLE, PORTMAP_PACE_QUEUED, PORTMAP_PACE_HELD };

typedef struct portmap_pace_link {
  portmap_dlink_t node; /* the FIFO, while queued */
  unsigned char state;  /* enum portmap_pace_state */
} portmap_pace_link_t;

typedef struct portmap_pace {
  portmap_dlist_t fifo; /* the waiting ones; fifo.n of them */
  size_t held;          /* slots taken */
  size_t window;        /* slots */
} portmap_pace_t;

void portmap_pace_init(portmap_pace_t *p, size_t window);
void portmap_pace_link_init(portmap_pace_link_t *l);
/* A slot for l: 1 when it holds one (now or already), 0 when it waits in
 * the FIFO (put at its end now, or keeping its place). */
int portmap_pace_acquire(portmap_pace_t *p, portmap_pace_link_t *l);
/* Put an idle l at the end of the FIFO even when a slot is free: the owner
 * decides what starts (its pump). Harmless when l waits or holds one. */
void portmap_pace_enqueue(portmap_pace_t *p, portmap_pace_link_t *l);
/* l is done: its slot comes back, or it leaves the FIFO. Harmless when idle. */
void portmap_pace_release(portmap_pace_t *p, portmap_pace_link_t *l);
/* The first waiting request when a slot is free, else NULL (nothing taken). */
portmap_pace_link_t *portmap_pace_ready(const portmap_pace_t *p);
/* Give the waiting l a slot (it leaves the FIFO, wherever it is): the
 * owner checks first that the window has room (portmap_pace_ready()). */
void portmap_pace_start(portmap_pace_t *p, portmap_pace_link_t *l);

static inline int portmap_pace_held(const portmap_pace_link_t *l) {
  return l->state == PORTMAP_PACE_HELD;
}

static inline int portmap_pace_queued(const portmap_pace_link_t *l) {
  return l->state == PORTMAP_PACE_QUEUED;
}

/* How many wait in the FIFO. */
static inline size_t portmap_pace_waiting(const portmap_pace_t *p) {
  return p->fifo.n;
}

#endif
