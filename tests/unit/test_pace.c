/* SPDX-License-Identifier: MIT */
/* Unit tests for the window of requests in flight and its FIFO
 * (src/util/pace.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/pace.h"

#define N 10

static portmap_pace_link_t l[N];

static void init_links(void) {
  for (int i = 0; i < N; i++)
    portmap_pace_link_init(&l[i]);
}

/* Start what the window allows; returns how many started. */
static int pump(portmap_pace_t *p) {
  int n = 0;
  portmap_pace_link_t *x;
  while ((x = portmap_pace_ready(p)) != NULL) {
    portmap_pace_start(p, x);
    n++;
  }
  return n;
}

static void test_window_then_fifo(void **state) {
  (void)state;
  portmap_pace_t p;
  portmap_pace_init(&p, 3);
  init_links();
  for (int i = 0; i < 3; i++)
    assert_int_equal(portmap_pace_acquire(&p, &l[i]), 1);
  for (int i = 3; i < N; i++)
    assert_int_equal(portmap_pace_acquire(&p, &l[i]), 0);
  assert_int_equal(p.held, 3);
  assert_int_equal(p.fifo.n, N - 3);
  assert_null(portmap_pace_ready(&p)); /* no slot */
  /* asking again changes nothing: held stays held, queued keeps its place */
  assert_int_equal(portmap_pace_acquire(&p, &l[0]), 1);
  assert_int_equal(portmap_pace_acquire(&p, &l[5]), 0);
  assert_int_equal(p.held, 3);
  assert_ptr_equal(p.fifo.head, &l[3].node);
  /* answers come back one by one: the FIFO's order */
  for (int i = 0; i < N - 3; i++) {
    portmap_pace_release(&p, &l[i]);
    assert_ptr_equal(portmap_pace_ready(&p), &l[i + 3]);
    assert_int_equal(pump(&p), 1);
    assert_true(portmap_pace_held(&l[i + 3]));
    assert_int_equal(p.held, 3);
  }
  assert_int_equal(p.fifo.n, 0);
  for (int i = N - 3; i < N; i++)
    portmap_pace_release(&p, &l[i]);
  assert_int_equal(p.held, 0);
}

/* While anything waits, a newcomer waits behind it even with a free slot. */
static void test_strict_fifo(void **state) {
  (void)state;
  portmap_pace_t p;
  portmap_pace_init(&p, 2);
  init_links();
  assert_int_equal(portmap_pace_acquire(&p, &l[0]), 1);
  assert_int_equal(portmap_pace_acquire(&p, &l[1]), 1);
  assert_int_equal(portmap_pace_acquire(&p, &l[2]), 0);
  portmap_pace_release(&p, &l[0]); /* a slot is free, l[2] waits for the pump */
  assert_int_equal(portmap_pace_acquire(&p, &l[3]), 0);
  assert_ptr_equal(p.fifo.tail, &l[3].node);
  assert_int_equal(pump(&p), 1);
  assert_true(portmap_pace_held(&l[2]));
  assert_true(portmap_pace_queued(&l[3]));
}

/* Leaving from the head, the middle and the tail of the FIFO, and giving
 * back a slot; releasing an idle link is harmless. */
static void test_release_anywhere(void **state) {
  (void)state;
  portmap_pace_t p;
  portmap_pace_init(&p, 1);
  init_links();
  assert_int_equal(portmap_pace_acquire(&p, &l[0]), 1);
  for (int i = 1; i < 6; i++)
    assert_int_equal(portmap_pace_acquire(&p, &l[i]), 0);
  portmap_pace_release(&p, &l[3]); /* middle */
  portmap_pace_release(&p, &l[1]); /* head */
  portmap_pace_release(&p, &l[5]); /* tail */
  assert_int_equal(p.fifo.n, 2);
  assert_ptr_equal(p.fifo.head, &l[2].node);
  assert_ptr_equal(p.fifo.tail, &l[4].node);
  assert_ptr_equal(l[2].node.next, &l[4].node);
  assert_ptr_equal(l[4].node.prev, &l[2].node);
  assert_int_equal(l[3].state, PORTMAP_PACE_IDLE);
  portmap_pace_release(&p, &l[3]); /* idle already */
  portmap_pace_release(&p, &l[7]); /* never used */
  assert_int_equal(p.fifo.n, 2);
  assert_int_equal(p.held, 1);
  portmap_pace_release(&p, &l[0]);
  assert_int_equal(p.held, 0);
  assert_int_equal(pump(&p), 1);
  assert_true(portmap_pace_held(&l[2]));
  /* a released link can ask again: to the end of the FIFO */
  assert_int_equal(portmap_pace_acquire(&p, &l[1]), 0);
  assert_ptr_equal(p.fifo.tail, &l[1].node);
}

/* The owner may start any waiting request, not only the head (a NAT-PMP
 * request whose key is busy stays put). */
static void test_start_from_middle(void **state) {
  (void)state;
  portmap_pace_t p;
  portmap_pace_init(&p, 4);
  init_links();
  for (int i = 0; i < 4; i++)
    assert_int_equal(portmap_pace_acquire(&p, &l[i]), 1);
  for (int i = 4; i < 7; i++)
    assert_int_equal(portmap_pace_acquire(&p, &l[i]), 0);
  portmap_pace_release(&p, &l[0]);
  portmap_pace_start(&p, &l[5]);
  assert_true(portmap_pace_held(&l[5]));
  assert_ptr_equal(p.fifo.head, &l[4].node);
  assert_ptr_equal(l[4].node.next, &l[6].node);
  assert_int_equal(p.held, 4);
  assert_int_equal(p.fifo.n, 2);
  portmap_pace_start(&p, &l[5]); /* not queued: nothing */
  assert_int_equal(p.held, 4);
}

/* Enqueue waits even with a free slot; the owner's pump starts it. */
static void test_enqueue(void **state) {
  (void)state;
  portmap_pace_t p;
  portmap_pace_init(&p, 2);
  init_links();
  portmap_pace_enqueue(&p, &l[0]);
  assert_true(portmap_pace_queued(&l[0]));
  assert_int_equal(p.held, 0);
  portmap_pace_enqueue(&p, &l[0]); /* already waiting: keeps its place */
  assert_int_equal(p.fifo.n, 1);
  assert_ptr_equal(portmap_pace_ready(&p), &l[0]);
  assert_int_equal(pump(&p), 1);
  portmap_pace_enqueue(&p, &l[0]); /* holds a slot: nothing */
  assert_true(portmap_pace_held(&l[0]));
  assert_int_equal(p.fifo.n, 0);
}

static void test_window_zero_is_one(void **state) {
  (void)state;
  portmap_pace_t p;
  portmap_pace_init(&p, 0);
  init_links();
  assert_int_equal(portmap_pace_acquire(&p, &l[0]), 1);
  assert_int_equal(portmap_pace_acquire(&p, &l[1]), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_window_then_fifo), cmocka_unit_test(test_strict_fifo),
      cmocka_unit_test(test_release_anywhere), cmocka_unit_test(test_start_from_middle),
      cmocka_unit_test(test_enqueue),          cmocka_unit_test(test_window_zero_is_one),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
