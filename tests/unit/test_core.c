/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the core side of the backend seam (src/core.c): a report
 * only records and queues; what follows from it (probe evaluation, starting
 * waiting mappings, failover) runs after the reporting handler has
 * returned. Two stub backends take the places of NAT-PMP and UPnP and fail
 * the test if the core ever calls into a backend while one of its handlers
 * is still on the stack. (Not PCP: a mapping made before PCP answered starts
 * on PCP at once, its request being the probe; these tests need a mapping
 * that waits for a probe answer, which is NAT-PMP's and UPnP's case.)
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "internal.h"
#include "test_support.h"

typedef struct stub {
  portmap_core_t *core;
  portmap_backend_t id;
  int depth;     /* > 0 while one of our handlers runs */
  int reentered; /* the core called us from inside one of our handlers */
  int starts, revokes, detaches;
  /* what readable() does next */
  int answer_probe; /* report "available" to the probe */
  int fail_status;  /* report FAILED with this status for the mapping */
  /* what start() does */
  int map_in_start;  /* report MAPPED from inside start() */
  int fail_in_start; /* report FAILED (REFUSED) from inside start() */
  portmap_mapping_t *h;
  portmap_result_t res;
} stub_t;

static stub_t *stubs[2]; /* the other stub: any call into it is a call into "a backend" */

static void enter(stub_t *s) {
  for (int i = 0; i < 2; i++)
    if (stubs[i] != NULL && stubs[i]->depth > 0)
      s->reentered++;
  s->depth++;
}

static void leave(stub_t *s) {
  s->depth--;
}

static void stub_destroy(void *state) {
  (void)state;
}

static portmap_status_t stub_check(void *state, const portmap_req_t *req) {
  stub_t *s = state;
  (void)req;
  enter(s);
  leave(s);
  return PORTMAP_OK;
}

static portmap_status_t stub_start(void *state, const portmap_be_start_t *start, void **mstate,
                                   uint64_t now) {
  stub_t *s = state;
  (void)now;
  enter(s);
  s->starts++;
  s->h = start->handle;
  s->res = start->result;
  *mstate = s;
  if (s->map_in_start) {
    s->res.status = PORTMAP_OK;
    s->res.external_port = 4242;
    s->res.lifetime = 60;
    portmap_core_report(s->core, s->h, PORTMAP_EVENT_MAPPED, &s->res);
  } else if (s->fail_in_start) {
    s->res.status = PORTMAP_ERR_REFUSED;
    s->res.gateway_result = 1; /* not "this protocol does not work here" */
    portmap_core_report(s->core, s->h, PORTMAP_EVENT_FAILED, &s->res);
    s->h = NULL;
  }
  leave(s);
  return PORTMAP_OK;
}

static void stub_revoke(void *state, void *mstate, uint64_t now) {
  stub_t *s = state;
  (void)now;
  assert_ptr_equal(mstate, s);
  enter(s);
  s->revokes++;
  s->res.status = PORTMAP_OK;
  portmap_core_report(s->core, s->h, PORTMAP_EVENT_DELETED, &s->res);
  s->h = NULL;
  leave(s);
}

static void stub_detach(void *state, void *mstate, int revoked) {
  stub_t *s = state;
  (void)revoked;
  assert_ptr_equal(mstate, s);
  s->detaches++;
  s->h = NULL;
}

static size_t stub_fds(void *state, int *fds, size_t cap) {
  (void)state;
  (void)fds;
  (void)cap;
  return 0;
}

static void stub_readable(void *state, uint64_t now) {
  stub_t *s = state;
  (void)now;
  enter(s);
  if (s->answer_probe) {
    s->answer_probe = 0;
    portmap_probe_backend_t r;
    memset(&r, 0, sizeof r);
    r.available = 1;
    r.gateway_result = -1;
    portmap_core_probe_result(s->core, s->id, &r);
  }
  if (s->fail_status != 0 && s->h != NULL) {
    s->res.status = (portmap_status_t)s->fail_status;
    s->res.gateway_result = -1;
    s->fail_status = 0;
    portmap_core_report(s->core, s->h, PORTMAP_EVENT_FAILED, &s->res);
    s->h = NULL;
  }
  leave(s);
}

static void stub_probe(void *state, uint64_t now) {
  (void)state;
  (void)now; /* the answer comes later, from readable() */
}

static const portmap_backend_ops_t stub_natpmp = {.id = PORTMAP_BACKEND_NATPMP,
                                                  .name = "stub-natpmp",
                                                  .destroy = stub_destroy,
                                                  .check = stub_check,
                                                  .start = stub_start,
                                                  .revoke = stub_revoke,
                                                  .detach = stub_detach,
                                                  .fds = stub_fds,
                                                  .readable = stub_readable,
                                                  .probe = stub_probe};
static const portmap_backend_ops_t stub_upnp = {.id = PORTMAP_BACKEND_UPNP,
                                                .name = "stub-upnp",
                                                .destroy = stub_destroy,
                                                .check = stub_check,
                                                .start = stub_start,
                                                .revoke = stub_revoke,
                                                .detach = stub_detach,
                                                .fds = stub_fds,
                                                .readable = stub_readable,
                                                .probe = stub_probe};

static uint64_t clock_ms = 1000000;
static uint64_t test_clock(void *user) {
  (void)user;
  return clock_ms;
}

typedef struct fixture {
  portmap_client_t *c;
  stub_t a, b;
  test_ev_t ev[16];
  size_t n_ev;
} fixture_t;

static void on_event(portmap_mapping_t *m, portmap_event_t e, const portmap_info_t *info,
                     void *user) {
  fixture_t *f = user;
  test_ev_add(f->ev, 16, &f->n_ev, m, e, info, clock_ms);
}

/* A client whose NAT-PMP and UPnP backends are the stubs, with a probe
 * round under way that neither has answered yet. */
static int setup(void **state) {
  static fixture_t f;
  memset(&f, 0, sizeof f);
  portmap_config_t cfg;
  portmap_config_init(&cfg);
  cfg.backends = PORTMAP_BACKEND_NATPMP | PORTMAP_BACKEND_UPNP;
  cfg.gateway = "127.0.0.1";
  cfg.server_port = test_free_udp_port(0x7f000001u);
  cfg.announce_port = -1;
  cfg.probe_timeout_ms = 60000; /* no budget runs out in these tests */
  cfg.clock_cb = test_clock;
  assert_int_equal(portmap_client_new(&cfg, &f.c), PORTMAP_OK);
  portmap_client_t *c = f.c;
  const portmap_backend_ops_t *ops[2] = {&stub_natpmp, &stub_upnp};
  stub_t *st[2] = {&f.a, &f.b};
  for (int i = 0; i < 2; i++) {
    c->be_ops[i + 1]->destroy(c->be_state[i + 1]); /* the real one, before anything is asked */
    st[i]->core = &c->core;
    st[i]->id = ops[i]->id;
    c->be_ops[i + 1] = ops[i];
    c->be_state[i + 1] = st[i];
    stubs[i] = st[i];
  }
  assert_int_equal(portmap_process(c), PORTMAP_OK); /* the client's first round starts */
  assert_true(c->probe.running);
  *state = &f;
  return 0;
}

static int teardown(void **state) {
  fixture_t *f = *state;
  assert_int_equal(portmap_mapping_track_check(f->c), 0);
  assert_int_equal(portmap_client_free(f->c), PORTMAP_OK);
  assert_int_equal(f->a.reentered, 0);
  assert_int_equal(f->b.reentered, 0);
  stubs[0] = stubs[1] = NULL;
  return 0;
}

/* One portmap_process(); then the probe's list and counters agree with a
 * walk of every mapping. */
static void process(fixture_t *f) {
  assert_int_equal(portmap_process(f->c), PORTMAP_OK);
  assert_int_equal(portmap_mapping_track_check(f->c), 0);
}

static portmap_mapping_t *map_one(fixture_t *f) {
  portmap_request_t req;
  portmap_request_init(&req);
  req.protocol = PORTMAP_PROTO_TCP;
  req.internal_port = 8000;
  portmap_mapping_t *m = NULL;
  assert_int_equal(portmap_map(f->c, &req, on_event, f, &m), PORTMAP_OK);
  return m;
}

/* The old shape: a probe answer read by a backend started the waiting
 * mapping on that same backend while its reader was still on the stack. */
static void test_probe_answer_starts_after_the_reader(void **state) {
  fixture_t *f = *state;
  map_one(f);
  assert_int_equal(f->a.starts, 0); /* NAT-PMP has not answered: the mapping waits */
  f->a.answer_probe = 1;
  f->a.map_in_start = 1;
  process(f);
  assert_int_equal(f->a.starts, 1);
  assert_int_equal(f->a.reentered, 0);
  assert_int_equal(f->n_ev, 1);
  assert_int_equal(f->ev[0].event, PORTMAP_EVENT_MAPPED);
  assert_int_equal(f->ev[0].info.backend, PORTMAP_BACKEND_NATPMP);
}

/* A protocol failure reported from a reader moves the mapping on after the
 * reader returned, and the application never sees the FAILED. */
static void test_failover_runs_after_the_reader(void **state) {
  fixture_t *f = *state;
  map_one(f);
  f->a.answer_probe = 1;
  process(f);
  assert_int_equal(f->a.starts, 1);
  f->a.fail_status = PORTMAP_ERR_UNREACHABLE; /* Q21: no NAT-PMP server there */
  f->b.answer_probe = 1;                      /* read in the same pass, after NAT-PMP's reader */
  f->b.map_in_start = 1;
  process(f);
  assert_int_equal(f->b.starts, 1);
  assert_int_equal(f->a.reentered + f->b.reentered, 0);
  assert_int_equal(test_ev_count(f->ev, f->n_ev, PORTMAP_EVENT_FAILED), 0);
  assert_int_equal(f->n_ev, 1);
  assert_int_equal(f->ev[0].event, PORTMAP_EVENT_MAPPED);
  assert_int_equal(f->ev[0].info.backend, PORTMAP_BACKEND_UPNP);
  assert_int_equal(f->ev[0].info.external_port, 4242);
}

/* Nothing is decided before settle(): between the report and the end of
 * portmap_process() the failure is pending, and the deadline says "now". */
static void test_pending_decision_wakes_the_loop(void **state) {
  fixture_t *f = *state;
  map_one(f);
  f->a.answer_probe = 1;
  process(f);
  /* report from outside any handler, as a backend's timer would */
  f->a.res.status = PORTMAP_ERR_UNREACHABLE;
  f->a.res.gateway_result = -1;
  pthread_mutex_lock(&f->c->mu);
  portmap_core_report(&f->c->core, f->a.h, PORTMAP_EVENT_FAILED, &f->a.res);
  f->a.h = NULL;
  assert_true(portmap_core_unsettled(f->c));
  assert_int_equal(f->b.starts, 0);
  pthread_mutex_unlock(&f->c->mu);
  assert_int_equal(portmap_timeout_ms(f->c), 0);
  f->b.answer_probe = 1;
  f->b.map_in_start = 1;
  process(f);
  assert_int_equal(f->b.starts, 1);
  assert_int_equal(f->n_ev, 1);
  assert_int_equal(f->ev[0].event, PORTMAP_EVENT_MAPPED);
}

/* A final report from inside start(): the core keeps nothing of the
 * backend's, delivers FAILED once and never calls back into it. */
static void test_final_report_from_start(void **state) {
  fixture_t *f = *state;
  portmap_mapping_t *m = map_one(f);
  f->a.answer_probe = 1;
  f->a.fail_in_start = 1;
  process(f);
  assert_int_equal(f->a.starts, 1);
  assert_int_equal(f->n_ev, 1);
  assert_int_equal(f->ev[0].event, PORTMAP_EVENT_FAILED);
  assert_int_equal(f->ev[0].info.status, PORTMAP_ERR_REFUSED);
  assert_int_equal(f->ev[0].info.gateway_result, 1);
  (void)m; /* gone after its final event */
  process(f);
  assert_int_equal(f->n_ev, 1);
  assert_int_equal(f->a.revokes + f->a.detaches, 0);
}

/* Events of one pass come out in a defined order: those queued by the
 * handlers first, then the outcomes settle() decided. */
static void test_order_reports_then_decisions(void **state) {
  fixture_t *f = *state;
  map_one(f);
  f->a.answer_probe = 1;
  f->a.map_in_start = 1;
  process(f);
  assert_int_equal(f->n_ev, 1);
  /* now a refusal that is final (no failover) while B answers the probe */
  f->a.fail_status = PORTMAP_ERR_REFUSED;
  f->b.answer_probe = 1;
  process(f);
  assert_int_equal(f->n_ev, 2);
  assert_int_equal(f->ev[1].event, PORTMAP_EVENT_FAILED);
  assert_int_equal(f->b.starts, 0); /* REFUSED with no gateway result is not a protocol failure */
}

/* Freeing the client revokes through the backend and waits for nothing
 * more once DELETED is reported. */
static void test_free_revokes_through_the_seam(void **state) {
  fixture_t *f = *state;
  map_one(f);
  f->a.answer_probe = 1;
  f->a.map_in_start = 1;
  process(f);
  assert_int_equal(portmap_client_free(f->c), PORTMAP_OK);
  assert_int_equal(f->a.revokes, 1);
  assert_int_equal(f->n_ev, 2);
  assert_int_equal(f->ev[1].event, PORTMAP_EVENT_DELETED);
  assert_int_equal(f->ev[1].info.lifetime, 0);
  assert_int_equal(f->a.reentered, 0);
  stubs[0] = stubs[1] = NULL;
  f->c = NULL;
}

/* The probe's list (issue 12): the mappings that wait for the probe are
 * in it, newest first (as the client's list); one detached leaves it, and
 * each leaves it as the probe's answer starts it, so evaluate() looks at
 * those and no others. */
static void test_probe_list_holds_what_waits(void **state) {
  fixture_t *f = *state;
  portmap_client_t *c = f->c;
  portmap_mapping_t *m[4];
  for (int i = 0; i < 4; i++)
    m[i] = map_one(f);
  assert_int_equal(c->probe_list.n, 4);
  assert_ptr_equal(portmap_probe_list_entry(c->probe_list.head), m[3]);
  assert_int_equal(portmap_mapping_track_check(c), 0);
  assert_int_equal(portmap_mapping_detach(m[1]), PORTMAP_OK);
  assert_int_equal(c->probe_list.n, 3);
  assert_ptr_equal(portmap_probe_list_entry(c->probe_list.head->next), m[2]);
  assert_ptr_equal(portmap_probe_list_entry(c->probe_list.head->next->next), m[0]);
  assert_int_equal(portmap_mapping_track_check(c), 0);
  uint64_t visits = c->probe_visits;
  f->a.answer_probe = 1;
  f->a.map_in_start = 1;
  process(f);
  assert_int_equal(f->a.starts, 3);
  assert_ptr_equal(f->a.h, m[0]); /* newest first: the oldest started last */
  assert_int_equal(c->probe_list.n, 0);
  assert_null(c->probe_list.head);
  assert_int_equal(c->probe_visits - visits, 3);
  assert_int_equal(test_ev_count(f->ev, f->n_ev, PORTMAP_EVENT_MAPPED), 3);
  for (int i = 0; i < 4; i++) {
    if (i != 1) /* the stubs hold one mapping at a time: none is left to revoke */
      assert_int_equal(portmap_mapping_detach(m[i]), PORTMAP_OK);
    portmap_mapping_release(m[i]);
  }
  assert_int_equal(portmap_mapping_track_check(c), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_probe_answer_starts_after_the_reader, setup, teardown),
      cmocka_unit_test_setup_teardown(test_failover_runs_after_the_reader, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pending_decision_wakes_the_loop, setup, teardown),
      cmocka_unit_test_setup_teardown(test_final_report_from_start, setup, teardown),
      cmocka_unit_test_setup_teardown(test_order_reports_then_decisions, setup, teardown),
      cmocka_unit_test_setup_teardown(test_probe_list_holds_what_waits, setup, teardown),
      cmocka_unit_test_setup_teardown(test_free_revokes_through_the_seam, setup, NULL),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
