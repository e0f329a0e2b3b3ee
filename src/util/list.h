/* SPDX-License-Identifier: MIT */
/*
 * The one intrusive doubly linked list: the owner embeds a portmap_dlink_t
 * in each element and finds the element again with PORTMAP_CONTAINER_OF
 * (util/container.h). An element leaves the list in O(1) from anywhere;
 * nothing allocates. The pace FIFO (util/pace.c), the UPnP call queue and
 * the probe's list of mappings (mapping.c) are made of it.
 */
#ifndef PORTMAP_UTIL_LIST_H
#define PORTMAP_UTIL_LIST_H

#include <stddef.h>

typedef struct portmap_dlink {
  struct portmap_dlink *prev, *next; /* both NULL while in no list */
} portmap_dlink_t;

typedef struct portmap_dlist {
  portmap_dlink_t *head, *tail;
  size_t n; /* elements */
} portmap_dlist_t;

static inline void portmap_dlist_init(portmap_dlist_t *l) {
  l->head = l->tail = NULL;
  l->n = 0;
}

static inline void portmap_dlink_init(portmap_dlink_t *e) {
  e->prev = e->next = NULL;
}

/* Is e in l? (Its links alone cannot tell a sole element from none.) */
static inline int portmap_dlist_has(const portmap_dlist_t *l, const portmap_dlink_t *e) {
  return e->prev != NULL || l->head == e;
}

static inline void portmap_dlist_push_back(portmap_dlist_t *l, portmap_dlink_t *e) {
  e->next = NULL;
  e->prev = l->tail;
  if (l->tail != NULL)
    l->tail->next = e;
  else
    l->head = e;
  l->tail = e;
  l->n++;
}

static inline void portmap_dlist_push_front(portmap_dlist_t *l, portmap_dlink_t *e) {
  e->prev = NULL;
  e->next = l->head;
  if (l->head != NULL)
    l->head->prev = e;
  else
    l->tail = e;
  l->head = e;
  l->n++;
}

/* e leaves l (it must be in it); its links are cleared. */
static inline void portmap_dlist_remove(portmap_dlist_t *l, portmap_dlink_t *e) {
  if (e->prev != NULL)
    e->prev->next = e->next;
  else
    l->head = e->next;
  if (e->next != NULL)
    e->next->prev = e->prev;
  else
    l->tail = e->prev;
  e->prev = e->next = NULL;
  l->n--;
}

#endif
