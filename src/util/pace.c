/* SPDX-License-Identifier: MIT */
/*
 * The window of requests in flight and its FIFO (util/pace.h): the FIFO is
 * a util/list.h list, so a request leaves it in O(1) from anywhere.
 */
#include "util/pace.h"

#include "util/container.h"

void portmap_pace_init(portmap_pace_t *p, size_t window) {
  portmap_dlist_init(&p->fifo);
  p->held = 0;
  p->window = window == 0 ? 1 : window;
}

void portmap_pace_link_init(portmap_pace_link_t *l) {
  portmap_dlink_init(&l->node);
  l->state = PORTMAP_PACE_IDLE;
}

void portmap_pace_enqueue(portmap_pace_t *p, portmap_pace_link_t *l) {
  if (l->state != PORTMAP_PACE_IDLE)
    return;
  portmap_dlist_push_back(&p->fifo, &l->node);
  l->state = PORTMAP_PACE_QUEUED;
}

int portmap_pace_acquire(portmap_pace_t *p, portmap_pace_link_t *l) {
  if (l->state == PORTMAP_PACE_HELD)
    return 1;
  if (l->state == PORTMAP_PACE_IDLE && p->fifo.n == 0 && p->held < p->window) {
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
    portmap_dlist_remove(&p->fifo, &l->node);
  l->state = PORTMAP_PACE_IDLE;
}

portmap_pace_link_t *portmap_pace_ready(const portmap_pace_t *p) {
  if (p->held >= p->window || p->fifo.head == NULL)
    return NULL;
  return PORTMAP_CONTAINER_OF(p->fifo.head, portmap_pace_link_t, node);
}

void portmap_pace_start(portmap_pace_t *p, portmap_pace_link_t *l) {
  if (l->state != PORTMAP_PACE_QUEUED)
    return;
  portmap_dlist_remove(&p->fifo, &l->node);
  p->held++;
  l->state = PORTMAP_PACE_HELD;
}
