/* SPDX-License-Identifier: MIT */
/* Unit tests for the shared scheduler (src/util/sched.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/sched.h"

/* ---- helpers ------------------------------------------------------------ */

#define LOG_MAX 64

typedef struct fire_log {
  int ids[LOG_MAX];
  uint64_t nows[LOG_MAX];
  size_t n;
} fire_log_t;

/* A timer with an identity and the log its callback appends to. */
typedef struct test_timer {
  portmap_timer_t t;
  int id;
  fire_log_t *log;
  portmap_sched_t *s;
  /* Optional actions the callback performs. */
  int rearm; /* re-push itself at rearm_at */
  uint64_t rearm_at;
  struct test_timer *cancel_other; /* cancel this one */
  struct test_timer *push_other;   /* push this one at push_other_at */
  uint64_t push_other_at;
} test_timer_t;

static void record_cb(portmap_timer_t *t, uint64_t now) {
  test_timer_t *tt = t->ctx;
  assert_ptr_equal(&tt->t, t);
  assert_false(portmap_timer_pending(t));
  assert_true(tt->log->n < LOG_MAX);
  tt->log->ids[tt->log->n] = tt->id;
  tt->log->nows[tt->log->n] = now;
  tt->log->n++;
  if (tt->rearm) {
    tt->rearm = 0;
    assert_int_equal(portmap_sched_push(tt->s, t, tt->rearm_at), 0);
  }
  if (tt->cancel_other != NULL)
    portmap_sched_cancel(tt->s, &tt->cancel_other->t);
  if (tt->push_other != NULL)
    assert_int_equal(portmap_sched_push(tt->s, &tt->push_other->t, tt->push_other_at), 0);
}

static void tt_init(test_timer_t *tt, int id, fire_log_t *log, portmap_sched_t *s) {
  memset(tt, 0, sizeof *tt);
  tt->id = id;
  tt->log = log;
  tt->s = s;
  portmap_timer_init(&tt->t, record_cb, tt);
}

static int key_before(const portmap_timer_t *a, const portmap_timer_t *b) {
  return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

/* Every index is right, no parent is after its child, nothing is parked. */
static void check_heap(const portmap_sched_t *s) {
  assert_true(s->len <= s->cap);
  for (size_t i = 0; i < s->len; i++) {
    assert_non_null(s->heap[i]);
    assert_int_equal(s->heap[i]->index, i);
    if (i > 0)
      assert_false(key_before(s->heap[i], s->heap[(i - 1) / PORTMAP_SCHED_FANOUT]));
  }
  if (!s->running)
    assert_int_equal(s->ndeferred, 0);
  assert_true(s->len + s->ndeferred <= s->cap);
  for (size_t i = s->cap - s->ndeferred; i < s->cap; i++) {
    assert_non_null(s->heap[i]);
    assert_int_equal(s->heap[i]->index, i);
  }
  assert_int_equal(portmap_sched_check(s), 0); /* the library's own check agrees */
}

static void assert_log(const fire_log_t *log, const int *ids, size_t n) {
  assert_int_equal(log->n, n);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(log->ids[i], ids[i]);
}

/* ---- fixed cases --------------------------------------------------------- */

static void test_empty(void **state) {
  (void)state;
  portmap_sched_t s;
  portmap_sched_init(&s);
  assert_int_equal(portmap_sched_next(&s), PORTMAP_SCHED_NONE);
  assert_int_equal(portmap_sched_size(&s), 0);
  assert_int_equal(portmap_sched_run(&s, UINT64_MAX - 1), 0);
  test_timer_t a;
  fire_log_t log = {0};
  tt_init(&a, 1, &log, &s);
  assert_false(portmap_timer_pending(&a.t));
  assert_int_equal(a.t.index, SIZE_MAX);
  portmap_sched_cancel(&s, &a.t); /* idle: harmless */
  assert_int_equal(portmap_sched_size(&s), 0);
  portmap_sched_fini(&s);
  portmap_sched_fini(&s);
  portmap_sched_fini(NULL);
}

static void test_ordering(void **state) {
  (void)state;
  portmap_sched_t s;
  portmap_sched_init(&s);
  fire_log_t log = {0};
  test_timer_t t[6];
  const uint64_t deadlines[6] = {50, 10, 40, 20, 60, 30};
  for (int i = 0; i < 6; i++) {
    tt_init(&t[i], i, &log, &s);
    assert_int_equal(portmap_sched_push(&s, &t[i].t, deadlines[i]), 0);
    assert_true(portmap_timer_pending(&t[i].t));
    check_heap(&s);
  }
  assert_int_equal(portmap_sched_size(&s), 6);
  assert_int_equal(portmap_sched_next(&s), 10);
  assert_int_equal(portmap_sched_run(&s, 9), 0);
  assert_int_equal(log.n, 0);
  assert_int_equal(portmap_sched_run(&s, 30), 3);
  const int first[] = {1, 3, 5};
  assert_log(&log, first, 3);
  assert_int_equal(log.nows[0], 30);
  assert_int_equal(portmap_sched_next(&s), 40);
  assert_int_equal(portmap_sched_size(&s), 3);
  check_heap(&s);
  assert_int_equal(portmap_sched_run(&s, 1000), 3);
  const int all[] = {1, 3, 5, 2, 0, 4};
  assert_log(&log, all, 6);
  assert_int_equal(portmap_sched_next(&s), PORTMAP_SCHED_NONE);
  for (int i = 0; i < 6; i++)
    assert_false(portmap_timer_pending(&t[i].t));
  portmap_sched_fini(&s);
}

static void test_fifo_ties(void **state) {
  (void)state;
  portmap_sched_t s;
  portmap_sched_init(&s);
  fire_log_t log = {0};
  test_timer_t t[40];
  /* Many equal deadlines so the heap has to reorder them. */
  for (int i = 0; i < 40; i++) {
    tt_init(&t[i], i, &log, &s);
    assert_int_equal(portmap_sched_push(&s, &t[i].t, (i % 2) ? 100 : 200), 0);
  }
  /* A reschedule to the same deadline goes to the back of the line. */
  assert_int_equal(portmap_sched_push(&s, &t[1].t, 100), 0);
  check_heap(&s);
  assert_int_equal(portmap_sched_run(&s, 200), 40);
  int expect[40];
  size_t k = 0;
  for (int i = 3; i < 40; i += 2)
    expect[k++] = i;
  expect[k++] = 1;
  for (int i = 0; i < 40; i += 2)
    expect[k++] = i;
  assert_int_equal(k, 40);
  assert_log(&log, expect, 40);
  portmap_sched_fini(&s);
}

static void test_cancel_middle(void **state) {
  (void)state;
  portmap_sched_t s;
  portmap_sched_init(&s);
  fire_log_t log = {0};
  test_timer_t t[10];
  for (int i = 0; i < 10; i++) {
    tt_init(&t[i], i, &log, &s);
    assert_int_equal(portmap_sched_push(&s, &t[i].t, (uint64_t)(100 + 10 * i)), 0);
  }
  portmap_sched_cancel(&s, &t[4].t);
  check_heap(&s);
  portmap_sched_cancel(&s, &t[0].t); /* the root */
  check_heap(&s);
  portmap_sched_cancel(&s, &t[9].t); /* the last */
  check_heap(&s);
  portmap_sched_cancel(&s, &t[4].t); /* twice: harmless */
  assert_false(portmap_timer_pending(&t[4].t));
  assert_int_equal(t[4].t.index, SIZE_MAX);
  assert_int_equal(portmap_sched_size(&s), 7);
  assert_int_equal(portmap_sched_next(&s), 110);
  assert_int_equal(portmap_sched_run(&s, 1000), 7);
  const int expect[] = {1, 2, 3, 5, 6, 7, 8};
  assert_log(&log, expect, 7);
  portmap_sched_fini(&s);
}

static void test_reschedule(void **state) {
  (void)state;
  portmap_sched_t s;
  portmap_sched_init(&s);
  fire_log_t log = {0};
  test_timer_t t[8];
  for (int i = 0; i < 8; i++) {
    tt_init(&t[i], i, &log, &s);
    assert_int_equal(portmap_sched_push(&s, &t[i].t, (uint64_t)(100 + 10 * i)), 0);
  }
  /* Later: the root moves to the end. */
  assert_int_equal(portmap_sched_push(&s, &t[0].t, 500), 0);
  check_heap(&s);
  assert_int_equal(portmap_sched_next(&s), 110);
  /* Earlier: a leaf moves to the front. */
  assert_int_equal(portmap_sched_push(&s, &t[7].t, 5), 0);
  check_heap(&s);
  assert_int_equal(portmap_sched_next(&s), 5);
  /* Middle, both ways. */
  assert_int_equal(portmap_sched_push(&s, &t[3].t, 165), 0);
  assert_int_equal(portmap_sched_push(&s, &t[5].t, 115), 0);
  check_heap(&s);
  assert_int_equal(portmap_sched_size(&s), 8);
  assert_int_equal(portmap_sched_run(&s, 1000), 8);
  const int expect[] = {7, 1, 5, 2, 4, 6, 3, 0};
  assert_log(&log, expect, 8);
  portmap_sched_fini(&s);
}

static void test_growth(void **state) {
  (void)state;
  portmap_sched_t s;
  portmap_sched_init(&s);
  enum { N = 1000 };
  static portmap_timer_t t[N];
  for (size_t i = 0; i < N; i++) {
    portmap_timer_init(&t[i], NULL, NULL);
    /* A permutation of 0..N-1, so every deadline is distinct. */
    assert_int_equal(portmap_sched_push(&s, &t[i], (uint64_t)((i * 7919) % N)), 0);
  }
  check_heap(&s);
  assert_true(s.cap >= N);
  assert_int_equal(portmap_sched_size(&s), N);
  for (uint64_t d = 0; d < N; d++) {
    assert_int_equal(portmap_sched_next(&s), d);
    assert_int_equal(portmap_sched_run(&s, d), 1);
  }
  assert_int_equal(portmap_sched_size(&s), 0);
  portmap_sched_fini(&s);
  assert_null(s.heap);
}

/* A callback re-arming itself in the past fires once per run, and the
 * other due timers behind it still fire in this run. */
static void test_bounded_run(void **state) {
  (void)state;
  portmap_sched_t s;
  portmap_sched_init(&s);
  fire_log_t log = {0};
  test_timer_t a, b, c;
  tt_init(&a, 1, &log, &s);
  tt_init(&b, 2, &log, &s);
  tt_init(&c, 3, &log, &s);
  assert_int_equal(portmap_sched_push(&s, &a.t, 10), 0);
  assert_int_equal(portmap_sched_push(&s, &b.t, 20), 0);
  assert_int_equal(portmap_sched_push(&s, &c.t, 200), 0);
  a.rearm = 1;
  a.rearm_at = 5; /* earlier than anything still in the heap */
  assert_int_equal(portmap_sched_run(&s, 100), 2);
  const int expect1[] = {1, 2};
  assert_log(&log, expect1, 2);
  check_heap(&s);
  assert_true(portmap_timer_pending(&a.t));
  assert_int_equal(a.t.deadline, 5);
  assert_int_equal(portmap_sched_next(&s), 5);
  assert_int_equal(portmap_sched_size(&s), 2);
  /* Fires on the next call. */
  assert_int_equal(portmap_sched_run(&s, 100), 1);
  const int expect2[] = {1, 2, 1};
  assert_log(&log, expect2, 3);
  assert_int_equal(portmap_sched_next(&s), 200);
  portmap_sched_fini(&s);
}

/* A timer that re-arms itself for now, forever: each run fires it once. */
typedef struct spinner {
  portmap_timer_t t;
  portmap_sched_t *s;
  int fired;
} spinner_t;

static void spin_cb(portmap_timer_t *t, uint64_t now) {
  spinner_t *sp = t->ctx;
  sp->fired++;
  assert_int_equal(portmap_sched_push(sp->s, t, now), 0);
}

static void test_spinner(void **state) {
  (void)state;
  portmap_sched_t s;
  portmap_sched_init(&s);
  spinner_t sp[3];
  for (int i = 0; i < 3; i++) {
    sp[i].s = &s;
    sp[i].fired = 0;
    portmap_timer_init(&sp[i].t, spin_cb, &sp[i]);
    assert_int_equal(portmap_sched_push(&s, &sp[i].t, 0), 0);
  }
  for (uint64_t now = 1; now <= 5; now++) {
    assert_int_equal(portmap_sched_run(&s, now), 3);
    check_heap(&s);
    assert_int_equal(portmap_sched_size(&s), 3);
  }
  for (int i = 0; i < 3; i++)
    assert_int_equal(sp[i].fired, 5);
  portmap_sched_fini(&s);
}

static void test_callback_cancels_others(void **state) {
  (void)state;
  portmap_sched_t s;
  portmap_sched_init(&s);
  fire_log_t log = {0};
  test_timer_t a, b, c, d;
  tt_init(&a, 1, &log, &s);
  tt_init(&b, 2, &log, &s);
  tt_init(&c, 3, &log, &s);
  tt_init(&d, 4, &log, &s);
  assert_int_equal(portmap_sched_push(&s, &a.t, 10), 0);
  assert_int_equal(portmap_sched_push(&s, &b.t, 20), 0); /* due, cancelled by a */
  assert_int_equal(portmap_sched_push(&s, &c.t, 30), 0);
  assert_int_equal(portmap_sched_push(&s, &d.t, 500), 0); /* not due, pulled in by c */
  a.cancel_other = &b;
  c.push_other = &d;
  c.push_other_at = 15; /* due, but armed during the run: next call */
  assert_int_equal(portmap_sched_run(&s, 100), 2);
  const int expect[] = {1, 3};
  assert_log(&log, expect, 2);
  assert_false(portmap_timer_pending(&b.t));
  assert_true(portmap_timer_pending(&d.t));
  assert_int_equal(portmap_sched_next(&s), 15);
  check_heap(&s);
  assert_int_equal(portmap_sched_run(&s, 100), 1);
  const int expect2[] = {1, 3, 4};
  assert_log(&log, expect2, 3);
  assert_int_equal(portmap_sched_size(&s), 0);
  portmap_sched_fini(&s);
}

/* A callback cancels, or re-pushes, a timer parked by the same run. */
static void test_cancel_parked(void **state) {
  (void)state;
  portmap_sched_t s;
  portmap_sched_init(&s);
  fire_log_t log = {0};
  test_timer_t a, b, c, d;
  tt_init(&a, 1, &log, &s);
  tt_init(&b, 2, &log, &s);
  tt_init(&c, 3, &log, &s);
  tt_init(&d, 4, &log, &s);
  assert_int_equal(portmap_sched_push(&s, &a.t, 10), 0);
  assert_int_equal(portmap_sched_push(&s, &b.t, 20), 0);
  assert_int_equal(portmap_sched_push(&s, &c.t, 30), 0);
  assert_int_equal(portmap_sched_push(&s, &d.t, 40), 0);
  a.rearm = 1;
  a.rearm_at = 1; /* a gets parked */
  b.rearm = 1;
  b.rearm_at = 2;      /* b gets parked */
  c.cancel_other = &a; /* c cancels parked a */
  d.push_other = &b;
  d.push_other_at = 1000; /* d moves parked b into the future */
  assert_int_equal(portmap_sched_run(&s, 100), 4);
  const int expect[] = {1, 2, 3, 4};
  assert_log(&log, expect, 4);
  check_heap(&s);
  assert_false(portmap_timer_pending(&a.t));
  assert_true(portmap_timer_pending(&b.t));
  assert_int_equal(portmap_sched_next(&s), 1000);
  assert_int_equal(portmap_sched_size(&s), 1);
  portmap_sched_fini(&s);
}

/* Parked timers survive the heap array growing under them, count for
 * portmap_sched_next(), and can be cancelled and pushed from a callback. */
typedef struct grower {
  portmap_timer_t a; /* re-arms itself once, for the past: gets parked */
  portmap_timer_t b; /* fires while a is parked */
  portmap_sched_t *s;
  portmap_timer_t *extra;
  size_t n_extra;
  int a_fired;
  int b_fired;
} grower_t;

static void grower_a_cb(portmap_timer_t *t, uint64_t now) {
  grower_t *g = t->ctx;
  (void)now;
  if (g->a_fired++ == 0)
    assert_int_equal(portmap_sched_push(g->s, t, 6), 0);
}

static void grower_b_cb(portmap_timer_t *t, uint64_t now) {
  grower_t *g = t->ctx;
  portmap_sched_t *s = g->s;
  g->b_fired++;
  assert_true(portmap_timer_pending(&g->a));
  assert_int_equal(s->ndeferred, 1);
  assert_int_equal(g->a.index, s->cap - 1);
  assert_int_equal(portmap_sched_next(s), 6);
  size_t old_cap = s->cap;
  for (size_t i = 0; i < g->n_extra; i++)
    assert_int_equal(portmap_sched_push(s, &g->extra[i], now + 1 + i), 0);
  assert_true(s->cap > old_cap);
  assert_int_equal(s->ndeferred, 1);
  assert_ptr_equal(s->heap[s->cap - 1], &g->a);
  assert_int_equal(g->a.index, s->cap - 1);
  assert_int_equal(portmap_sched_next(s), 6);
  assert_int_equal(portmap_sched_size(s), g->n_extra + 1);
  /* Cancel the parked timer, then push it again (into the heap). */
  portmap_sched_cancel(s, &g->a);
  assert_false(portmap_timer_pending(&g->a));
  assert_int_equal(s->ndeferred, 0);
  assert_int_equal(portmap_sched_next(s), now + 1);
  assert_int_equal(portmap_sched_push(s, &g->a, 7), 0);
  assert_true(g->a.index < s->len);
  assert_int_equal(portmap_sched_next(s), 7);
}

static void test_parked_growth(void **state) {
  (void)state;
  portmap_sched_t s;
  portmap_sched_init(&s);
  enum { N = 100 };
  static portmap_timer_t extra[N];
  for (size_t i = 0; i < N; i++)
    portmap_timer_init(&extra[i], NULL, NULL);
  grower_t g = {.s = &s, .extra = extra, .n_extra = N};
  portmap_timer_init(&g.a, grower_a_cb, &g);
  portmap_timer_init(&g.b, grower_b_cb, &g);
  assert_int_equal(portmap_sched_push(&s, &g.a, 5), 0);
  assert_int_equal(portmap_sched_push(&s, &g.b, 8), 0);
  assert_int_equal(portmap_sched_run(&s, 10), 2);
  check_heap(&s);
  assert_int_equal(g.a_fired, 1);
  assert_int_equal(g.b_fired, 1);
  assert_int_equal(portmap_sched_size(&s), N + 1);
  assert_int_equal(portmap_sched_next(&s), 7);
  assert_int_equal(g.a.index, 0);
  /* a, then the extras due at 11 and before. */
  assert_int_equal(portmap_sched_run(&s, 11), 2);
  assert_int_equal(g.a_fired, 2);
  assert_int_equal(portmap_sched_run(&s, 10 + N), N - 1);
  assert_int_equal(portmap_sched_size(&s), 0);
  portmap_sched_fini(&s);
}

/* A run from inside a callback does nothing. */
typedef struct nester {
  portmap_timer_t t;
  portmap_sched_t *s;
  size_t inner;
} nester_t;

static void nester_cb(portmap_timer_t *t, uint64_t now) {
  nester_t *n = t->ctx;
  n->inner = portmap_sched_run(n->s, now);
}

static void test_nested_run(void **state) {
  (void)state;
  portmap_sched_t s;
  portmap_sched_init(&s);
  nester_t a = {.s = &s, .inner = 99};
  portmap_timer_t b;
  portmap_timer_init(&a.t, nester_cb, &a);
  portmap_timer_init(&b, NULL, NULL);
  assert_int_equal(portmap_sched_push(&s, &a.t, 1), 0);
  assert_int_equal(portmap_sched_push(&s, &b, 2), 0);
  assert_int_equal(portmap_sched_run(&s, 5), 2);
  assert_int_equal(a.inner, 0);
  assert_int_equal(s.running, 0);
  portmap_sched_fini(&s);
}

/* ---- randomized, against a reference model -------------------------------- */

#define RND_TIMERS 48
#define RND_OPS 10000

/* xorshift64*: fixed seed, reproducible. */
static uint64_t prng_next(uint64_t *st) {
  uint64_t x = *st;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *st = x;
  return x * UINT64_C(2685821657736338717);
}

static uint64_t prng_below(uint64_t *st, uint64_t n) {
  return prng_next(st) % n;
}

typedef struct model_timer {
  int pending;
  uint64_t deadline;
  uint64_t seq;
} model_timer_t;

typedef struct rnd_world rnd_world_t;

typedef struct rnd_timer {
  portmap_timer_t t;
  rnd_world_t *w;
  int id;
} rnd_timer_t;

struct rnd_world {
  portmap_sched_t s;
  rnd_timer_t timers[RND_TIMERS];
  model_timer_t model[RND_TIMERS];
  uint64_t model_seq;
  uint64_t run_limit; /* model seq at the start of the current run */
  uint64_t now;
  uint64_t prng;
  size_t fired_in_run;
};

static int model_before(const model_timer_t *a, const model_timer_t *b) {
  return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static void model_push(rnd_world_t *w, int id, uint64_t deadline) {
  w->model[id].pending = 1;
  w->model[id].deadline = deadline;
  w->model[id].seq = w->model_seq++;
}

static void do_push(rnd_world_t *w, int id, uint64_t deadline) {
  assert_int_equal(portmap_sched_push(&w->s, &w->timers[id].t, deadline), 0);
  model_push(w, id, deadline);
}

static void do_cancel(rnd_world_t *w, int id) {
  portmap_sched_cancel(&w->s, &w->timers[id].t);
  w->model[id].pending = 0;
}

/* The timer the model says must fire next in the current run, or -1. */
static int model_next_due(const rnd_world_t *w) {
  int best = -1;
  for (int i = 0; i < RND_TIMERS; i++) {
    const model_timer_t *m = &w->model[i];
    if (!m->pending || m->deadline > w->now || m->seq >= w->run_limit)
      continue;
    if (best < 0 || model_before(m, &w->model[best]))
      best = i;
  }
  return best;
}

static void check_against_model(const rnd_world_t *w) {
  size_t n = 0;
  uint64_t next = PORTMAP_SCHED_NONE;
  for (int i = 0; i < RND_TIMERS; i++) {
    assert_int_equal(portmap_timer_pending(&w->timers[i].t), w->model[i].pending);
    if (w->model[i].pending) {
      n++;
      if (w->model[i].deadline < next)
        next = w->model[i].deadline;
      assert_int_equal(w->timers[i].t.deadline, w->model[i].deadline);
    }
  }
  assert_int_equal(portmap_sched_size(&w->s), n);
  assert_int_equal(portmap_sched_next(&w->s), next);
  check_heap(&w->s);
}

static uint64_t random_deadline(rnd_world_t *w) {
  /* Mostly near now (past included) with many ties. */
  uint64_t base = w->now > 20 ? w->now - 20 : 0;
  return base + prng_below(&w->prng, 60);
}

/* One random push or cancel, of any timer. */
static void random_mutation(rnd_world_t *w) {
  int id = (int)prng_below(&w->prng, RND_TIMERS);
  if (prng_below(&w->prng, 4) == 0)
    do_cancel(w, id);
  else
    do_push(w, id, random_deadline(w));
}

static void rnd_cb(portmap_timer_t *t, uint64_t now) {
  rnd_timer_t *rt = t->ctx;
  rnd_world_t *w = rt->w;
  assert_int_equal(now, w->now);
  int expect = model_next_due(w);
  assert_int_equal(rt->id, expect);
  w->model[rt->id].pending = 0;
  w->fired_in_run++;
  check_heap(&w->s);
  /* Callbacks re-arm themselves, and push and cancel others. */
  uint64_t actions = prng_below(&w->prng, 4);
  for (uint64_t i = 0; i < actions; i++) {
    if (prng_below(&w->prng, 3) == 0)
      do_push(w, rt->id, random_deadline(w));
    else
      random_mutation(w);
    check_heap(&w->s);
  }
}

static void test_randomized(void **state) {
  (void)state;
  static rnd_world_t w;
  memset(&w, 0, sizeof w);
  portmap_sched_init(&w.s);
  w.prng = UINT64_C(0x9e3779b97f4a7c15);
  w.now = 100;
  for (int i = 0; i < RND_TIMERS; i++) {
    w.timers[i].w = &w;
    w.timers[i].id = i;
    portmap_timer_init(&w.timers[i].t, rnd_cb, &w.timers[i]);
  }
  size_t total_fired = 0;
  for (int op = 0; op < RND_OPS; op++) {
    if (prng_below(&w.prng, 5) == 0) {
      w.now += prng_below(&w.prng, 15);
      w.run_limit = w.model_seq;
      w.fired_in_run = 0;
      size_t fired = portmap_sched_run(&w.s, w.now);
      assert_int_equal(fired, w.fired_in_run);
      /* Everything due at the start was fired or taken away. */
      assert_int_equal(model_next_due(&w), -1);
      total_fired += fired;
    } else {
      random_mutation(&w);
    }
    check_against_model(&w);
  }
  /* Enough of everything happened for the test to mean something. */
  assert_true(total_fired > 2000);
  assert_true(w.model_seq > 8000);
  portmap_sched_fini(&w.s);
}

/* The keys beside the heap are deadlines less a base, saturated at both
 * ends: deadlines far apart (beyond 2^32 ms of each other, and before the
 * base) still fire in (deadline, seq) order, and a run long after the base
 * moves it (and every key) without changing the order. */
static void test_keys_far_apart(void **state) {
  (void)state;
  portmap_sched_t s;
  portmap_sched_init(&s);
  fire_log_t log = {0};
  enum { K = 12 };
  test_timer_t t[K];
  const uint64_t big = UINT64_C(1) << 32;
  /* ids in firing order; pushed in a shuffled order, with ties */
  const uint64_t deadlines[K] = {5,         6,         big - 1,        big,
                                 big + 1,   3 * big,   3 * big,        3 * big + 7,
                                 100 * big, 100 * big, UINT64_MAX - 2, UINT64_MAX - 1};
  const int order[K] = {9, 2, 11, 0, 6, 4, 8, 1, 5, 10, 3, 7};
  for (int i = 0; i < K; i++)
    tt_init(&t[i], i, &log, &s);
  for (int k = 0; k < K; k++) {
    int i = order[k];
    /* equal deadlines: the lower id is pushed first, so it fires first */
    int twin = (i == 6 || i == 9) ? i - 1 : -1;
    if (twin >= 0 && !portmap_timer_pending(&t[twin].t))
      assert_int_equal(portmap_sched_push(&s, &t[twin].t, deadlines[twin]), 0);
    if (!portmap_timer_pending(&t[i].t))
      assert_int_equal(portmap_sched_push(&s, &t[i].t, deadlines[i]), 0);
    check_heap(&s);
  }
  /* fire one deadline at a time: each run past 2^31 ms rebases the keys */
  for (int i = 0; i < K; i++) {
    assert_int_equal(portmap_sched_next(&s), deadlines[i]);
    size_t want = (i + 1 < K && deadlines[i + 1] == deadlines[i]) ? 2 : 1;
    assert_int_equal(portmap_sched_run(&s, deadlines[i]), want);
    check_heap(&s);
    if (want == 2)
      i++;
  }
  int expect[K];
  for (int i = 0; i < K; i++)
    expect[i] = i;
  assert_log(&log, expect, K);
  assert_true(s.key_base > 3 * big); /* it moved with the clock */
  /* timers armed behind the base (key 0) keep their order too */
  for (int i = 0; i < 4; i++)
    assert_int_equal(portmap_sched_push(&s, &t[i].t, (uint64_t)(40 - 10 * i)), 0);
  check_heap(&s);
  log.n = 0;
  assert_int_equal(portmap_sched_run(&s, 100), 4);
  const int back[4] = {3, 2, 1, 0};
  assert_log(&log, back, 4);
  portmap_sched_fini(&s);
}

/* portmap_sched_check() (the fuzzers' heap invariant) sees each kind of damage. */
static void test_check_detects_damage(void **state) {
  (void)state;
  portmap_sched_t s;
  portmap_sched_init(&s);
  fire_log_t log = {0};
  test_timer_t t[5];
  for (int i = 0; i < 5; i++) {
    tt_init(&t[i], i, &log, &s);
    assert_int_equal(portmap_sched_push(&s, &t[i].t, (uint64_t)(10 + i)), 0);
  }
  assert_int_equal(portmap_sched_check(&s), 0);
  /* a child before its parent */
  t[4].t.deadline = 1;
  assert_int_equal(portmap_sched_check(&s), -1);
  t[4].t.deadline = 14;
  assert_int_equal(portmap_sched_check(&s), 0);
  /* a stored index that is not the slot */
  size_t saved = t[2].t.index;
  t[2].t.index = saved + 1;
  assert_int_equal(portmap_sched_check(&s), -1);
  t[2].t.index = saved;
  /* a seq never handed out */
  uint64_t seq = t[1].t.seq;
  t[1].t.seq = s.next_seq;
  assert_int_equal(portmap_sched_check(&s), -1);
  t[1].t.seq = seq;
  /* a key that is not its timer's deadline */
  uint32_t key = s.keys[0];
  s.keys[0] = key + 1;
  assert_int_equal(portmap_sched_check(&s), -1);
  s.keys[0] = key;
  /* a parked timer outside a run */
  s.ndeferred = 1;
  assert_int_equal(portmap_sched_check(&s), -1);
  s.ndeferred = 0;
  assert_int_equal(portmap_sched_check(&s), 0);
  portmap_sched_fini(&s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_empty),
      cmocka_unit_test(test_ordering),
      cmocka_unit_test(test_fifo_ties),
      cmocka_unit_test(test_cancel_middle),
      cmocka_unit_test(test_reschedule),
      cmocka_unit_test(test_growth),
      cmocka_unit_test(test_bounded_run),
      cmocka_unit_test(test_spinner),
      cmocka_unit_test(test_callback_cancels_others),
      cmocka_unit_test(test_cancel_parked),
      cmocka_unit_test(test_parked_growth),
      cmocka_unit_test(test_nested_run),
      cmocka_unit_test(test_randomized),
      cmocka_unit_test(test_keys_far_apart),
      cmocka_unit_test(test_check_detects_damage),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
