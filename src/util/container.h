/* SPDX-License-Identifier: MIT */
/*
 * The struct that holds a member, from a pointer to that member: for the
 * intrusive links (a pace slot inside a request, a spare event node inside
 * a mapping), so that the arithmetic is written once.
 */
#ifndef PORTMAP_UTIL_CONTAINER_H
#define PORTMAP_UTIL_CONTAINER_H

#include <stddef.h>

/* The type object whose member ptr points at (ptr not NULL). */
#define PORTMAP_CONTAINER_OF(ptr, type, member)                                                    \
  ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#endif
