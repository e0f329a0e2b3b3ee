/* SPDX-License-Identifier: MIT */
/*
 * The window of requests in flight and its FIFO (util/pace.h): an intrusive
 * doubly linked list, so a request leaves it in O(1) from anywhere, and two
 * counters.
 */
#include "util/pace.h"

static void unlink_queued(portmap_pace_t *p, portmap_pace_link_t *l) {
  if (l->prev != NULL)
    l->prev->next = l->next;
  else
    p->head = l->next;
  if (l->next != NULL)
    l->next->prev = l->prev;
  else
    p->tail = l->prev;
  l->prev = l->next = NULL;
  p->queued--;
}

void portmap_pace_init(portmap_pace_t *p, size_t window) {
  p->head = p->tail = NULL;
  p->queued = 0;
  p->held = 0;
  p->window = window == 0 ? 1 : window;
}

void portmap_pace_link_init(portmap_pace_link_t *l) {
  l->prev = l->next = NULL;
  l->state = PORTMAP_PACE_IDLE;
}

void portmap_pace_enqueue(portmap_pace_t *p, portmap_pace_link_t *l) {
  if (l->state != PORTMAP_PACE_IDLE)
    return;
  l->next = NULL;
  l->prev = p->tail;
  if (p->tail != NULL)
    p->tail->next = l;
  else
    p->head = l;
  p->tail = l;
  p->queued++;
  l->state = PORTMAP_PACE_QUEUED;
}

int portmap_pace_acquire(portmap_pace_t *p, portmap_pace_link_t *l) {
  if (l->state == PORTMAP_PACE_HELD)
    return 1;
  if (l->state == PORTMAP_PACE_IDLE && p->queued == 0 && p->held < p->window) {
    p->held++;
    l->state = PORTMAP_PACE_HELD;
    return 1;
  }
  portmap_pace_enqueue(p, l);
  return 0;
}

void portmap_pace_release(portmap_pace_t *p, portmap_pace_link_t *l) {
  if (l->state == PORTMAP_PACE_HELD)
    p->held--;
  else if (l->state == PORTMAP_PACE_QUEUED)
    unlink_queued(p, l);
  l->state = PORTMAP_PACE_IDLE;
}

portmap_pace_link_t *portmap_pace_ready(const portmap_pace_t *p) {
  return p->held < p->window ? p->head : NULL;
}

void portmap_pace_start(portmap_pace_t *p, portmap_pace_link_t *l) {
  if (l->state != PORTMAP_PACE_QUEUED)
    return;
  unlink_queued(p, l);
  p->held++;
  l->state = PORTMAP_PACE_HELD;
}
