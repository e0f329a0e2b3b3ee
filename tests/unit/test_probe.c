/* SPDX-License-Identifier: MIT */
/*
 * Choosing the backend: the concurrent probe, the order of preference, and
 * mappings moving to the next backend when a protocol turns out not to
 * work. A fake PCP server and a fake NAT-PMP server share one loopback
 * "gateway" (127.0.0.71: PCP on an ephemeral port, NAT-PMP on 5351, which
 * libnatpmp always uses); the clock and randomness are injected.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <portmap/portmap.h>

#include "internal.h"
#include "test_support.h"
#include "fake_natpmp.h"
#include "fake_pcp.h"
#include "pcp/wire.h"

#define GW "127.0.0.71"
#define GW_HOST 0x7F000047u
#define MAX_EVENTS 64

typedef test_ev_t ev_t;

typedef struct h {
  uint64_t now;
  uint64_t rng;
  fake_pcp_t *pcp;
  fake_natpmp_t *nat;
  portmap_client_t *c;
  portmap_config_t cfg;
  ev_t ev[MAX_EVENTS];
  size_t n_ev;
} h_t;

static uint64_t h_clock(void *u) {
  return ((h_t *)u)->now;
}

static int h_random(void *buf, size_t len, void *u) {
  test_splitmix_fill(&((h_t *)u)->rng, buf, len);
  return 0;
}

static void h_cb(portmap_mapping_t *m, portmap_event_t e, const portmap_info_t *info, void *u) {
  h_t *h = u;
  test_ev_add(h->ev, MAX_EVENTS, &h->n_ev, m, e, info, h->now);
}

static int setup(void **state) {
  h_t *h = calloc(1, sizeof *h);
  h->now = 5000000;
  h->rng = 7;
  h->pcp = fake_pcp_new_v4(0, GW_HOST);
  h->nat = fake_natpmp_new(GW);
  assert_non_null(h->pcp);
  assert_non_null(h->nat);
  fake_pcp_set_time(h->pcp, h->now);
  fake_natpmp_set_time(h->nat, h->now);
  portmap_config_init(&h->cfg);
  h->cfg.gateway = GW;
  h->cfg.backends = PORTMAP_BACKEND_PCP | PORTMAP_BACKEND_NATPMP;
  h->cfg.server_port = fake_pcp_port(h->pcp);
  h->cfg.announce_port = -1;
  h->cfg.clock_cb = h_clock;
  h->cfg.clock_user = h;
  h->cfg.random_cb = h_random;
  h->cfg.random_user = h;
  h->cfg.destroy_timeout_ms = 50;
  *state = h;
  return 0;
}

static int teardown(void **state) {
  h_t *h = *state;
  portmap_client_free(h->c);
  fake_pcp_free(h->pcp);
  fake_natpmp_free(h->nat);
  free(h);
  return 0;
}

static void pump(h_t *h) {
  for (int i = 0; i < 10; i++) {
    portmap_process(h->c);
    int a = fake_pcp_process_at(h->pcp, h->now);
    int b = fake_natpmp_process_at(h->nat, h->now);
    int busy = test_client_readable(h->c, 0);
    if (a <= 0 && b <= 0 && !busy)
      break;
  }
  portmap_process(h->c);
  /* the probe's list and counters agree with a walk of every mapping */
  assert_int_equal(portmap_mapping_track_check(h->c), 0);
}

static void pump_cb(void *h) {
  pump(h);
}

/* Run every timer due up to now + ms, pumping at each step. */
static void advance(h_t *h, uint64_t ms) {
  test_advance(h->c, &h->now, ms, pump_cb, h);
}

static void up(h_t *h) {
  assert_int_equal(portmap_client_new(&h->cfg, &h->c), PORTMAP_OK);
}

static portmap_mapping_t *map(h_t *h, uint16_t port) {
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = port;
  req.lifetime = 200;
  portmap_mapping_t *m = NULL;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, &m), PORTMAP_OK);
  return m;
}

static const ev_t *last(h_t *h) {
  assert_true(h->n_ev > 0);
  return &h->ev[h->n_ev - 1];
}

/* The per-backend result of a mapping's last attempt on backend i. */
static void assert_tried(const portmap_info_t *info, int i, portmap_backend_t b, int tried,
                         portmap_status_t st, int gateway_result) {
  assert_int_equal(info->tried[i].backend, b);
  assert_int_equal(info->tried[i].tried, tried);
  assert_int_equal(info->tried[i].status, st);
  assert_int_equal(info->tried[i].gateway_result, gateway_result);
}

static void test_probe_prefers_pcp(void **state) {
  h_t *h = *state;
  up(h);
  map(h, 8000); /* before any probe: its MAP asks PCP */
  pump(h);
  assert_int_equal(fake_pcp_requests(h->pcp, PCP_OP_ANNOUNCE), 0);
  assert_int_equal(fake_pcp_requests(h->pcp, PCP_OP_MAP), 1);
  assert_int_equal(fake_natpmp_requests(h->nat, 0), 0); /* PCP answered within the stage */
  assert_int_equal(last(h)->event, PORTMAP_EVENT_MAPPED);
  assert_int_equal(last(h)->info.backend, PORTMAP_BACKEND_PCP);
  assert_int_equal(fake_pcp_mapping_count(h->pcp), 1);
  assert_int_equal(fake_natpmp_mapping_count(h->nat), 0);
}

static void test_G4_Q16_pcp_disabled_uses_natpmp(void **state) {
  h_t *h = *state;
  fake_pcp_force_result(h->pcp, PCP_NOT_AUTHORIZED, 1); /* the MAP that asks */
  up(h);
  map(h, 8000);
  pump(h); /* no time passes: the refusal asks NAT-PMP at once */
  assert_int_equal(last(h)->event, PORTMAP_EVENT_MAPPED);
  assert_int_equal(last(h)->info.backend, PORTMAP_BACKEND_NATPMP);
  assert_int_equal(fake_pcp_requests(h->pcp, PCP_OP_MAP), 1);
  assert_int_equal(fake_pcp_requests(h->pcp, PCP_OP_ANNOUNCE), 0);
  assert_int_equal(fake_natpmp_mapping_count(h->nat), 1);
}

static void test_F2_natpmp_only_gateway(void **state) {
  h_t *h = *state;
  fake_pcp_set_natpmp(h->pcp, FAKE_PCP_NATPMP_OP128);
  up(h);
  map(h, 8000);
  pump(h);
  assert_int_equal(last(h)->info.backend, PORTMAP_BACKEND_NATPMP);
  assert_int_equal(last(h)->event, PORTMAP_EVENT_MAPPED);
}

static void test_Q21_closed_pcp_port_decides_at_once(void **state) {
  h_t *h = *state;
  h->cfg.server_port = test_free_udp_port(GW_HOST);
  up(h);
  map(h, 8000);
  for (int i = 0; i < 20 && h->n_ev == 0; i++) {
    (void)test_client_readable(h->c, 10);
    pump(h);
  }
  /* no time passed on the client's clock: no budget was waited out */
  assert_int_equal(last(h)->info.backend, PORTMAP_BACKEND_NATPMP);
  assert_int_equal(last(h)->event, PORTMAP_EVENT_MAPPED);
}

/* PCP drops everything silently: NAT-PMP is asked after the 10 ms stage,
 * answers at once, and is taken once PCP stayed silent 30 ms longer (the
 * quiet floor: loopback's round trip is 0), not at the 500 ms budget. */
static void test_Q22_silent_pcp_outwaited_by_natpmp(void **state) {
  h_t *h = *state;
  fake_pcp_set_silent(h->pcp, 1);
  up(h);
  uint64_t t0 = h->now;
  map(h, 8000);
  pump(h);
  assert_int_equal(h->n_ev, 0); /* PCP might still answer */
  assert_int_equal(fake_natpmp_requests(h->nat, 0), 0);
  advance(h, 10);
  assert_int_equal(fake_natpmp_requests(h->nat, 0), 1);
  advance(h, 29);
  assert_int_equal(h->n_ev, 0);
  advance(h, 1);
  assert_int_equal(last(h)->event, PORTMAP_EVENT_MAPPED);
  assert_int_equal(last(h)->info.backend, PORTMAP_BACKEND_NATPMP);
  assert_int_equal(last(h)->at - t0, 40);
  advance(h, 1000); /* PCP never answered: it stays */
  assert_int_equal(h->n_ev, 1);
  assert_int_equal(fake_pcp_requests(h->pcp, PCP_OP_MAP), 1);
  assert_int_equal(fake_pcp_requests(h->pcp, PCP_OP_ANNOUNCE), 1); /* at half the budget */
}

static int natpmp_gone_at_map = -1;

/* Records, at the first MAP it sees, whether NAT-PMP still holds 8000/tcp. */
static fake_pcp_hook_action_t note_natpmp_at_map(void *u, fake_pcp_t *f,
                                                 const fake_pcp_request_t *req, pcp_msg_t *resp) {
  h_t *h = u;
  (void)f;
  (void)resp;
  if (req->msg.opcode == PCP_OP_MAP && natpmp_gone_at_map < 0)
    natpmp_gone_at_map = fake_natpmp_find_mapping(h->nat, 2, 8000) < 0;
  return FAKE_PCP_HOOK_DEFAULT;
}

/* A lossy link: the MAP that asks PCP is lost, NAT-PMP answers and takes
 * the mapping 30 ms later; PCP's ANNOUNCE at half the budget is answered,
 * so the mapping moves to PCP: deleted on NAT-PMP first (the gateway may
 * keep one rule for both), then mapped on PCP, CHANGED and nothing else.
 * Before this change the mapping waited for the 500 ms budget. */
static void test_late_pcp_answer_moves_mapping_from_natpmp(void **state) {
  h_t *h = *state;
  fake_pcp_drop_next(h->pcp, 1);
  up(h);
  uint64_t t0 = h->now;
  map(h, 8000);
  advance(h, 40);
  assert_int_equal(h->n_ev, 1);
  assert_int_equal(last(h)->event, PORTMAP_EVENT_MAPPED);
  assert_int_equal(last(h)->info.backend, PORTMAP_BACKEND_NATPMP);
  assert_int_equal(last(h)->at - t0, 40);
  assert_int_equal(fake_natpmp_mapping_count(h->nat), 1);
  natpmp_gone_at_map = -1;
  fake_pcp_set_hook(h->pcp, note_natpmp_at_map, h);
  advance(h, 260);
  assert_int_equal(fake_pcp_requests(h->pcp, PCP_OP_ANNOUNCE), 1);
  assert_int_equal(h->n_ev, 2);
  assert_int_equal(last(h)->event, PORTMAP_EVENT_CHANGED);
  assert_int_equal(last(h)->info.backend, PORTMAP_BACKEND_PCP);
  assert_int_equal(natpmp_gone_at_map, 1);
  assert_int_equal(fake_natpmp_mapping_count(h->nat), 0);
  assert_int_equal(fake_pcp_mapping_count(h->pcp), 1);
  advance(h, 100000); /* settled: renewed on PCP only */
  assert_int_equal(test_ev_count(h->ev, h->n_ev, PORTMAP_EVENT_LOST), 0);
  assert_int_equal(test_ev_count(h->ev, h->n_ev, PORTMAP_EVENT_DELETED), 0);
  assert_int_equal(fake_natpmp_mapping_count(h->nat), 0);
  fake_pcp_set_hook(h->pcp, NULL, NULL);
}

static void test_mapping_moves_when_pcp_stops_working(void **state) {
  h_t *h = *state;
  up(h);
  map(h, 8000);
  pump(h);
  assert_int_equal(last(h)->info.backend, PORTMAP_BACKEND_PCP);
  /* the renewal is refused: PCP was switched off on the router (Q16) */
  fake_pcp_force_result(h->pcp, PCP_NOT_AUTHORIZED, 5);
  advance(h, 130000);
  assert_int_equal(last(h)->event, PORTMAP_EVENT_CHANGED);
  assert_int_equal(last(h)->info.backend, PORTMAP_BACKEND_NATPMP);
  assert_int_equal(fake_natpmp_mapping_count(h->nat), 1);
  /* what each backend's last attempt came to, in the event and in info */
  assert_tried(&last(h)->info, 0, PORTMAP_BACKEND_PCP, 1, PORTMAP_ERR_REFUSED, PCP_NOT_AUTHORIZED);
  assert_tried(&last(h)->info, 1, PORTMAP_BACKEND_NATPMP, 1, PORTMAP_OK, 0);
  portmap_info_t info;
  assert_int_equal(portmap_mapping_info(last(h)->m, &info), PORTMAP_OK);
  assert_tried(&info, 0, PORTMAP_BACKEND_PCP, 1, PORTMAP_ERR_REFUSED, PCP_NOT_AUTHORIZED);
  assert_tried(&info, 1, PORTMAP_BACKEND_NATPMP, 1, PORTMAP_OK, 0);
  /* new mappings go straight to NAT-PMP */
  unsigned before = fake_pcp_requests(h->pcp, PCP_OP_MAP);
  map(h, 8001);
  pump(h);
  assert_int_equal(last(h)->event, PORTMAP_EVENT_MAPPED);
  assert_int_equal(last(h)->info.backend, PORTMAP_BACKEND_NATPMP);
  assert_int_equal(fake_pcp_requests(h->pcp, PCP_OP_MAP), before);
}

/* request_timeout_ms > 0: no backend works, so the mapping FAILS, and says
 * why for each backend (PCP and NAT-PMP refused, UPnP not enabled). */
static void test_nothing_works_fails_with_reason(void **state) {
  h_t *h = *state;
  h->cfg.request_timeout_ms = 5000;
  fake_pcp_force_result(h->pcp, PCP_NOT_AUTHORIZED, 1);
  fake_natpmp_force_result(h->nat, 2, 1); /* NAT-PMP: not authorized */
  up(h);
  map(h, 8000);
  pump(h);
  assert_int_equal(h->n_ev, 1);
  assert_int_equal(last(h)->event, PORTMAP_EVENT_FAILED);
  assert_int_equal(last(h)->info.status, PORTMAP_ERR_REFUSED);
  assert_tried(&last(h)->info, 0, PORTMAP_BACKEND_PCP, 1, PORTMAP_ERR_REFUSED, PCP_NOT_AUTHORIZED);
  assert_tried(&last(h)->info, 1, PORTMAP_BACKEND_NATPMP, 1, PORTMAP_ERR_REFUSED, 2);
  assert_tried(&last(h)->info, 2, PORTMAP_BACKEND_UPNP, 0, PORTMAP_ERR_NO_BACKEND, -1);
}

/* Each backend fails for its own reason, and FAILED says each one: PCP's
 * port is closed (ICMP), NAT-PMP never answers. */
static void test_failed_says_why_per_backend(void **state) {
  h_t *h = *state;
  h->cfg.request_timeout_ms = 5000;
  h->cfg.server_port = test_free_udp_port(GW_HOST);
  fake_natpmp_set_silent(h->nat, 1);
  up(h);
  map(h, 8000);
  for (int i = 0; i < 20; i++) {
    (void)test_client_readable(h->c, 10);
    pump(h);
  }
  assert_int_equal(h->n_ev, 0);
  advance(h, 600);
  assert_int_equal(h->n_ev, 1);
  const portmap_info_t *info = &last(h)->info;
  assert_int_equal(last(h)->event, PORTMAP_EVENT_FAILED);
  assert_int_equal(info->status, PORTMAP_ERR_TIMEOUT);
  assert_tried(info, 0, PORTMAP_BACKEND_PCP, 1, PORTMAP_ERR_UNREACHABLE, -1);
  assert_tried(info, 1, PORTMAP_BACKEND_NATPMP, 1, PORTMAP_ERR_TIMEOUT, -1);
  assert_tried(info, 2, PORTMAP_BACKEND_UPNP, 0, PORTMAP_ERR_NO_BACKEND, -1);
}

static void test_unsupported_option_fails_clearly(void **state) {
  h_t *h = *state;
  h->cfg.backends = PORTMAP_BACKEND_NATPMP;
  up(h);
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = 8000;
  req.peer_address = "203.0.113.1";
  req.peer_port = 80;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, NULL), PORTMAP_ERR_UNSUPPORTED);
}

static void test_peer_without_pcp_fails_clearly(void **state) {
  h_t *h = *state;
  h->cfg.request_timeout_ms = 5000;
  fake_pcp_force_result(h->pcp, PCP_NOT_AUTHORIZED, 1);
  up(h);
  pump(h); /* PCP is out: NAT-PMP selected */
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = 8000;
  req.peer_address = "203.0.113.1";
  req.peer_port = 80;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, NULL), PORTMAP_OK);
  pump(h);
  /* NAT-PMP cannot express PEER and PCP refused: a clear failure */
  assert_int_equal(last(h)->event, PORTMAP_EVENT_FAILED);
  assert_int_equal(last(h)->info.status, PORTMAP_ERR_REFUSED);
  assert_tried(&last(h)->info, 0, PORTMAP_BACKEND_PCP, 1, PORTMAP_ERR_REFUSED, PCP_NOT_AUTHORIZED);
  assert_tried(&last(h)->info, 1, PORTMAP_BACKEND_NATPMP, 0, PORTMAP_ERR_UNSUPPORTED, -1);
}

static void test_Q22_nothing_answers_fails_at_budget(void **state) {
  h_t *h = *state;
  h->cfg.request_timeout_ms = 5000; /* 0 (never) would retry: test_retry_* */
  fake_pcp_set_silent(h->pcp, 1);
  fake_natpmp_set_silent(h->nat, 1);
  up(h);
  map(h, 8000);
  advance(h, 450);
  assert_int_equal(h->n_ev, 0);
  /* every backend said "no answer" itself at the 500 ms budget: no grace */
  advance(h, 100);
  assert_int_equal(last(h)->event, PORTMAP_EVENT_FAILED);
  assert_int_equal(last(h)->info.status, PORTMAP_ERR_TIMEOUT);
  /* asked twice: the mapping's MAP, then the ANNOUNCE at half the budget */
  assert_int_equal(fake_pcp_requests(h->pcp, PCP_OP_MAP), 1);
  assert_int_equal(fake_pcp_requests(h->pcp, PCP_OP_ANNOUNCE), 1);
}

static void test_G4_failover_waits_for_probe_still_running(void **state) {
  h_t *h = *state;
  /* PCP answers ANNOUNCE but refuses MAP (Q16); NAT-PMP is slow to answer */
  fake_natpmp_set_hold(h->nat, 1);
  up(h);
  pump(h);
  fake_pcp_force_result(h->pcp, PCP_NOT_AUTHORIZED, 1);
  map(h, 8000);
  pump(h);
  assert_int_equal(h->n_ev, 0); /* not failed: NAT-PMP may still answer */
  fake_natpmp_set_hold(h->nat, 0);
  assert_true(fake_natpmp_release(h->nat) > 0);
  advance(h, 300);
  assert_int_equal(last(h)->event, PORTMAP_EVENT_MAPPED);
  assert_int_equal(last(h)->info.backend, PORTMAP_BACKEND_NATPMP);
}

static portmap_stats_t stats(h_t *h) {
  portmap_stats_t st;
  assert_int_equal(portmap_client_stats(h->c, &st), PORTMAP_OK);
  return st;
}

static fake_pcp_hook_action_t refuse_map(void *u, fake_pcp_t *f, const fake_pcp_request_t *req,
                                         pcp_msg_t *resp) {
  (void)u;
  (void)f;
  if (req->msg.opcode != PCP_OP_MAP)
    return FAKE_PCP_HOOK_DEFAULT;
  resp->result = PCP_NOT_AUTHORIZED;
  return FAKE_PCP_HOOK_REPLY;
}

static fake_pcp_hook_action_t refuse_announce(void *u, fake_pcp_t *f, const fake_pcp_request_t *req,
                                              pcp_msg_t *resp) {
  (void)u;
  (void)f;
  if (req->msg.opcode != PCP_OP_ANNOUNCE)
    return FAKE_PCP_HOOK_DEFAULT;
  resp->result = PCP_NOT_AUTHORIZED;
  return FAKE_PCP_HOOK_REPLY;
}

/* A renewal shows the PCP server's epoch went back (E5): the gateway lost
 * its state, and what it speaks may have changed with it, so the probe asks
 * again; new mappings follow the new answers, the old one stays. */
static void test_E5_epoch_change_reprobes(void **state) {
  h_t *h = *state;
  up(h);
  map(h, 8000);
  pump(h);
  assert_int_equal(last(h)->info.backend, PORTMAP_BACKEND_PCP);
  assert_int_equal(fake_pcp_requests(h->pcp, PCP_OP_ANNOUNCE), 0); /* its MAP asked */
  assert_int_equal(fake_natpmp_requests(h->nat, 0), 0);
  advance(h, 20000);
  /* it reboots into a firmware that refuses PCP to new clients (Q16) */
  fake_pcp_reboot(h->pcp, h->now);
  fake_pcp_set_hook(h->pcp, refuse_announce, NULL);
  advance(h, 110000); /* the renewal of the 200 s mapping sees epoch 0 */
  assert_int_equal(stats(h).epoch_invalid, 1);
  assert_int_equal(fake_pcp_requests(h->pcp, PCP_OP_ANNOUNCE), 1);
  assert_int_equal(fake_natpmp_requests(h->nat, 0), 1); /* every protocol asked again */
  assert_int_equal(last(h)->event, PORTMAP_EVENT_RENEWED);
  assert_int_equal(last(h)->info.backend, PORTMAP_BACKEND_PCP);
  size_t before = h->n_ev;
  map(h, 8001);
  pump(h);
  assert_int_equal(h->n_ev, before + 1);
  assert_int_equal(last(h)->event, PORTMAP_EVENT_MAPPED);
  assert_int_equal(last(h)->info.backend, PORTMAP_BACKEND_NATPMP);
}

/* PCP refuses the first MAP (Q16), so 8000 is mapped over NAT-PMP; the
 * client listens for announcements on a port of its own. Returns it. */
static uint16_t up_on_natpmp(h_t *h) {
  uint16_t ap = test_free_udp_port(GW_HOST);
  h->cfg.announce_port = ap;
  fake_pcp_force_result(h->pcp, PCP_NOT_AUTHORIZED, 1);
  up(h);
  map(h, 8000);
  pump(h);
  assert_int_equal(last(h)->info.backend, PORTMAP_BACKEND_NATPMP);
  return ap;
}

/* The NAT-PMP gateway reboots and announces itself (N6) to port ap; wait
 * until the client has seen the epoch go back (epoch_invalid reaches want). */
static void natpmp_reboot_announced(h_t *h, uint16_t ap, uint64_t want) {
  struct sockaddr_in to;
  memset(&to, 0, sizeof to);
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons(ap);
  fake_natpmp_reboot(h->nat, h->now);
  assert_int_equal(fake_natpmp_send_announce(h->nat, (struct sockaddr *)&to, sizeof to), 0);
  for (int i = 0; i < 20 && stats(h).epoch_invalid < want; i++) {
    (void)test_client_readable(h->c, 10);
    pump(h);
  }
  assert_int_equal(stats(h).epoch_invalid, want);
}

/* The same after a NAT-PMP epoch went back (N5, here through an N6
 * announcement), at most once per 30 s however often it happens. */
static void test_N5_epoch_change_reprobes_once_per_30s(void **state) {
  h_t *h = *state;
  uint16_t ap = up_on_natpmp(h);
  unsigned expect = 0; /* the first round asked PCP with the mapping's MAP */
  for (int round = 0; round < 3; round++) {
    advance(h, round == 2 ? 30000 : 5000);
    natpmp_reboot_announced(h, ap, (uint64_t)round + 1);
    assert_int_equal(fake_pcp_requests(h->pcp, PCP_OP_ANNOUNCE), expect);
    advance(h, 2100); /* the round goes out 2 s after the reboot was seen */
    if (round != 1)
      expect++; /* not 7 s after the last round: 37 s after it */
    assert_int_equal(fake_pcp_requests(h->pcp, PCP_OP_ANNOUNCE), expect);
  }
  /* the rebooted gateway speaks PCP now: new mappings use it */
  map(h, 8001);
  pump(h);
  assert_int_equal(last(h)->event, PORTMAP_EVENT_MAPPED);
  assert_int_equal(last(h)->info.backend, PORTMAP_BACKEND_PCP);
}

/* During a refresh round, a backend that said no last time but is asked
 * again is not taken at its old word: a mapping made meanwhile waits for
 * its new answer instead of going to a worse backend. */
static void test_refresh_round_waits_for_a_better_backend(void **state) {
  h_t *h = *state;
  uint16_t ap = up_on_natpmp(h);
  advance(h, 5000);
  natpmp_reboot_announced(h, ap, 1);
  fake_pcp_set_hold(h->pcp, 1); /* PCP (now allowed) is slow to answer */
  advance(h, 2000);             /* the refresh round is out, NAT-PMP has answered */
  assert_int_equal(fake_pcp_requests(h->pcp, PCP_OP_ANNOUNCE), 1); /* the first: a MAP */
  size_t before = h->n_ev;
  map(h, 8001); /* within the 30 ms NAT-PMP's answer waits for PCP */
  pump(h);
  assert_int_equal(h->n_ev, before); /* waits: PCP may say yes this time */
  fake_pcp_set_hold(h->pcp, 0);
  assert_true(fake_pcp_release(h->pcp) > 0);
  advance(h, 100);
  assert_int_equal(last(h)->event, PORTMAP_EVENT_MAPPED);
  assert_int_equal(last(h)->info.backend, PORTMAP_BACKEND_PCP);
  assert_int_equal(last(h)->info.internal_port, 8001);
}

/* portmap_network_changed(): the check runs at the next portmap_process()
 * instead of 30 s later; nothing changed here, so nothing happens. (A real
 * renumbering is proven in the lab: tests/lab/test_local_address_change.sh.) */
static void test_network_changed_checks_at_once(void **state) {
  h_t *h = *state;
  assert_int_equal(portmap_network_changed(NULL), PORTMAP_ERR_INVALID);
  up(h);
  map(h, 8000);
  pump(h);
  assert_int_equal(last(h)->event, PORTMAP_EVENT_MAPPED);
  size_t before = h->n_ev;
  unsigned maps = fake_pcp_requests(h->pcp, PCP_OP_MAP);
  int t = portmap_timeout_ms(h->c);
  assert_true(t > 0);
  assert_int_equal(portmap_network_changed(h->c), PORTMAP_OK);
  assert_int_equal(portmap_timeout_ms(h->c), 0);
  pump(h);
  assert_true(portmap_timeout_ms(h->c) > 0);
  assert_int_equal(h->n_ev, before); /* same gateway, same address: no event */
  assert_int_equal(fake_pcp_requests(h->pcp, PCP_OP_MAP), maps);
}

/* ---------- never giving up (request_timeout_ms 0, the default) ---------- */

/* The times the probe rounds started: the first PCP request of each (the
 * first round's is the mapping's MAP, the later ones' an ANNOUNCE; a round
 * sends at most two within its 500 ms budget). */
static size_t round_starts(h_t *h, uint64_t *out, size_t cap) {
  size_t n = 0;
  for (size_t i = 0; i < fake_pcp_log_count(h->pcp) && n < cap; i++) {
    const fake_pcp_request_t *r = fake_pcp_log_get(h->pcp, i);
    if (r->decode_status != PCP_WIRE_OK ||
        (r->msg.opcode != PCP_OP_ANNOUNCE && r->msg.opcode != PCP_OP_MAP))
      continue;
    if (n == 0 || r->time_ms - out[n - 1] > 1000)
      out[n++] = r->time_ms;
  }
  return n;
}

/* Nothing answers: one LOST (saying why per backend), then the probe asks
 * again 2 s, 4 s, 8 s ... after each round, doubling up to 5 min, each
 * +-10 %; once NAT-PMP answers, the mapping is MAPPED there. */
static void test_retry_nothing_answers_backs_off_then_maps(void **state) {
  h_t *h = *state;
  fake_pcp_set_silent(h->pcp, 1);
  fake_natpmp_set_silent(h->nat, 1);
  up(h);
  uint64_t t0 = h->now;
  portmap_mapping_t *m = map(h, 8000);
  advance(h, 550);
  assert_int_equal(h->n_ev, 1);
  assert_int_equal(last(h)->event, PORTMAP_EVENT_LOST);
  assert_int_equal(last(h)->info.status, PORTMAP_ERR_TIMEOUT);
  assert_tried(&last(h)->info, 0, PORTMAP_BACKEND_PCP, 1, PORTMAP_ERR_TIMEOUT, -1);
  assert_tried(&last(h)->info, 1, PORTMAP_BACKEND_NATPMP, 1, PORTMAP_ERR_TIMEOUT, -1);
  assert_tried(&last(h)->info, 2, PORTMAP_BACKEND_UPNP, 0, PORTMAP_ERR_NO_BACKEND, -1);
  portmap_info_t info;
  assert_int_equal(portmap_mapping_info(m, &info), PORTMAP_OK);
  assert_int_equal(info.status, PORTMAP_ERR_TIMEOUT);
  assert_tried(&info, 0, PORTMAP_BACKEND_PCP, 1, PORTMAP_ERR_TIMEOUT, -1);

  advance(h, 1300000);          /* almost 22 min */
  assert_int_equal(h->n_ev, 1); /* one LOST, not one per attempt */
  uint64_t starts[32];
  size_t n = round_starts(h, starts, 32);
  assert_int_equal(starts[0], t0);
  static const uint32_t steps[] = {2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000, 300000};
  assert_true(n >= 11);
  for (size_t k = 0; k + 1 < n; k++) {
    uint64_t step = steps[k < 9 ? k : 8];
    /* after the round's 500 ms budget; in the first round NAT-PMP was asked
     * only after PCP's 10 ms stage, and its budget runs from then */
    uint64_t budget = k == 0 ? 510 : 500;
    uint64_t wait = starts[k + 1] - starts[k] - budget;
    assert_true(wait >= step - step / 10);
    assert_true(wait <= step + step / 10);
  }

  fake_natpmp_set_silent(h->nat, 0);
  advance(h, 331000);
  assert_int_equal(test_ev_count(h->ev, h->n_ev, PORTMAP_EVENT_LOST), 1);
  assert_int_equal(test_ev_count(h->ev, h->n_ev, PORTMAP_EVENT_MAPPED), 1);
  const test_ev_t *e = test_ev_find(h->ev, h->n_ev, PORTMAP_EVENT_MAPPED);
  assert_int_equal(e->info.backend, PORTMAP_BACKEND_NATPMP);
  assert_int_equal(e->info.status, PORTMAP_OK);
  assert_int_equal(fake_natpmp_mapping_count(h->nat), 1);
  assert_tried(&e->info, 1, PORTMAP_BACKEND_NATPMP, 1, PORTMAP_OK, 0);
}

/* The router is booting: NAT-PMP answers the probe with result 3
 * (NETWORK_FAILURE) and PCP is not there (a NAT-PMP-only gateway). That
 * answer does not rule NAT-PMP out: LOST, and the next round maps. */
static void test_retry_transient_natpmp_result_at_probe(void **state) {
  h_t *h = *state;
  fake_pcp_set_natpmp(h->pcp, FAKE_PCP_NATPMP_OP128);
  fake_natpmp_force_result(h->nat, 3, 1);
  up(h);
  map(h, 8000);
  pump(h);
  assert_int_equal(h->n_ev, 1);
  assert_int_equal(last(h)->event, PORTMAP_EVENT_LOST);
  assert_int_equal(last(h)->info.status, PORTMAP_ERR_REFUSED);
  assert_int_equal(last(h)->info.gateway_result, 3);
  assert_tried(&last(h)->info, 1, PORTMAP_BACKEND_NATPMP, 1, PORTMAP_ERR_REFUSED, 3);
  assert_true(last(h)->info.tried[0].tried);
  assert_int_not_equal(last(h)->info.tried[0].status, PORTMAP_OK);
  advance(h, 1700); /* not before 1.8 s */
  assert_int_equal(fake_natpmp_requests(h->nat, 0), 1);
  advance(h, 800);
  assert_int_equal(fake_natpmp_requests(h->nat, 0), 2);
  assert_int_equal(h->n_ev, 2);
  assert_int_equal(last(h)->event, PORTMAP_EVENT_MAPPED);
  assert_int_equal(last(h)->info.backend, PORTMAP_BACKEND_NATPMP);
}

/* A transient PCP error to the probe (the mapping's MAP) while NAT-PMP works: the
 * mapping goes to NAT-PMP, but PCP is asked again after the back-off, and
 * new mappings use it once it answers. */
static void test_retry_transient_pcp_announce_not_demoted(void **state) {
  h_t *h = *state;
  fake_pcp_force_result(h->pcp, PCP_NETWORK_FAILURE, 1); /* to the MAP that asks */
  up(h);
  map(h, 8000);
  pump(h);
  assert_int_equal(h->n_ev, 1); /* PCP's "not now" to the probe is no LOST of the mapping */
  assert_int_equal(last(h)->event, PORTMAP_EVENT_MAPPED);
  assert_int_equal(last(h)->info.backend, PORTMAP_BACKEND_NATPMP);
  assert_int_equal(fake_pcp_requests(h->pcp, PCP_OP_MAP), 1);
  assert_int_equal(fake_pcp_requests(h->pcp, PCP_OP_ANNOUNCE), 0);
  advance(h, 2300);
  assert_int_equal(fake_pcp_requests(h->pcp, PCP_OP_ANNOUNCE), 1);
  size_t before = h->n_ev;
  map(h, 8001);
  pump(h);
  assert_int_equal(h->n_ev, before + 1);
  assert_int_equal(last(h)->event, PORTMAP_EVENT_MAPPED);
  assert_int_equal(last(h)->info.backend, PORTMAP_BACKEND_PCP);
  /* PCP works: nothing more to ask */
  advance(h, 600000);
  assert_int_equal(fake_pcp_requests(h->pcp, PCP_OP_ANNOUNCE), 1);
}

/* A new mapping that every backend fails in turn (PCP refuses MAP after a
 * good ANNOUNCE; NAT-PMP answers the probe but never a MAP): LOST once, not
 * FAILED, then MAPPED when NAT-PMP answers again. */
static void test_retry_after_failover_runs_out(void **state) {
  h_t *h = *state;
  fake_pcp_set_hook(h->pcp, refuse_map, NULL); /* Q16 */
  fake_natpmp_set_ignore_opcode(h->nat, 2, 1); /* TCP mappings go unanswered */
  up(h);
  map(h, 8000);
  pump(h);
  assert_int_equal(h->n_ev, 0); /* moved to NAT-PMP */
  advance(h, 140000);           /* NAT-PMP's nine tries (N1) */
  assert_int_equal(test_ev_count(h->ev, h->n_ev, PORTMAP_EVENT_FAILED), 0);
  assert_int_equal(h->n_ev, 1);
  assert_int_equal(last(h)->event, PORTMAP_EVENT_LOST);
  assert_int_equal(last(h)->info.status, PORTMAP_ERR_TIMEOUT);
  assert_tried(&last(h)->info, 0, PORTMAP_BACKEND_PCP, 1, PORTMAP_ERR_REFUSED, PCP_NOT_AUTHORIZED);
  assert_tried(&last(h)->info, 1, PORTMAP_BACKEND_NATPMP, 1, PORTMAP_ERR_TIMEOUT, -1);
  fake_natpmp_set_ignore_opcode(h->nat, 2, 0);
  advance(h, 10000);
  assert_int_equal(test_ev_count(h->ev, h->n_ev, PORTMAP_EVENT_LOST), 1);
  assert_int_equal(test_ev_count(h->ev, h->n_ev, PORTMAP_EVENT_FAILED), 0);
  const test_ev_t *e = test_ev_find(h->ev, h->n_ev, PORTMAP_EVENT_MAPPED);
  assert_non_null(e);
  assert_int_equal(e->info.backend, PORTMAP_BACKEND_NATPMP);
  assert_int_equal(fake_natpmp_mapping_count(h->nat), 1);
}

/* Issue 12, item 3: once the probe has chosen (three backends enabled),
 * each portmap_map() and each answer costs the probe the mappings that
 * need it, not a walk of every mapping (establishing N mappings was
 * O(N^2): start_waiting(), move_up() and the retry checks each walked all
 * of them on every evaluate()). */
static void test_scale_map_after_decision_walks_no_mapping_list(void **state) {
  h_t *h = *state;
  h->cfg.backends = PORTMAP_BACKEND_PCP | PORTMAP_BACKEND_NATPMP | PORTMAP_BACKEND_UPNP;
  up(h);
  advance(h, 1); /* the client's first round: PCP answers its ANNOUNCE */
  assert_int_equal(h->c->probe.selected, PORTMAP_BACKEND_PCP);
  const int n = 300;
  uint64_t first = h->c->probe_visits;
  for (int i = 0; i < n; i++) {
    uint64_t before = h->c->probe_visits;
    map(h, (uint16_t)(20000 + i));
    pump(h); /* its answer */
    /* the new mapping itself, whatever the number made before it */
    assert_in_range(h->c->probe_visits - before, 0, 2);
  }
  assert_int_equal(fake_pcp_mapping_count(h->pcp), n);
  assert_in_range(h->c->probe_visits - first, 0, (uint64_t)n * 2);
  assert_int_equal(fake_natpmp_requests(h->nat, 0), 0); /* PCP answered: nothing else asked */
}

/* The same for a burst made before the probe's first answer: each
 * mapping goes on trial on PCP, and evaluate() looks at none of them until
 * PCP answers, then at each once. */
static void test_scale_burst_before_the_answer_walks_each_once(void **state) {
  h_t *h = *state;
  h->cfg.backends = PORTMAP_BACKEND_PCP | PORTMAP_BACKEND_NATPMP | PORTMAP_BACKEND_UPNP;
  up(h);
  const int n = 300;
  uint64_t first = h->c->probe_visits;
  for (int i = 0; i < n; i++)
    map(h, (uint16_t)(20000 + i));
  assert_int_equal(h->c->probe_list.n, n); /* on trial */
  assert_in_range(h->c->probe_visits - first, 0, 2);
  for (int i = 0; i < 10 && fake_pcp_mapping_count(h->pcp) < (size_t)n; i++)
    pump(h);
  assert_int_equal(fake_pcp_mapping_count(h->pcp), n);
  assert_int_equal(h->c->probe.selected, PORTMAP_BACKEND_PCP);
  assert_int_equal(h->c->probe_list.n, 0);
  assert_in_range(h->c->probe_visits - first, 0, (uint64_t)n * 2);
  assert_int_equal(fake_natpmp_requests(h->nat, 0), 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_probe_prefers_pcp),
      T(test_G4_Q16_pcp_disabled_uses_natpmp),
      T(test_F2_natpmp_only_gateway),
      T(test_Q21_closed_pcp_port_decides_at_once),
      T(test_Q22_silent_pcp_outwaited_by_natpmp),
      T(test_late_pcp_answer_moves_mapping_from_natpmp),
      T(test_mapping_moves_when_pcp_stops_working),
      T(test_nothing_works_fails_with_reason),
      T(test_unsupported_option_fails_clearly),
      T(test_peer_without_pcp_fails_clearly),
      T(test_Q22_nothing_answers_fails_at_budget),
      T(test_G4_failover_waits_for_probe_still_running),
      T(test_E5_epoch_change_reprobes),
      T(test_N5_epoch_change_reprobes_once_per_30s),
      T(test_refresh_round_waits_for_a_better_backend),
      T(test_network_changed_checks_at_once),
      T(test_failed_says_why_per_backend),
      T(test_retry_nothing_answers_backs_off_then_maps),
      T(test_retry_transient_natpmp_result_at_probe),
      T(test_retry_transient_pcp_announce_not_demoted),
      T(test_retry_after_failover_runs_out),
      T(test_scale_map_after_decision_walks_no_mapping_list),
      T(test_scale_burst_before_the_answer_walks_each_once),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
