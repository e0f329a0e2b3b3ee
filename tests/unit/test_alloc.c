/* SPDX-License-Identifier: MIT */
/*
 * Allocation failure: the allocator hook (portmap_config_t.malloc_cb,
 * realloc_cb, free_cb, alloc_user) and a walk over every allocation of one
 * full cycle on each backend: client new, the probe it starts, map, a
 * renewal, revoke (delete on the gateway), shutdown and client free,
 * against the fake PCP, NAT-PMP and UPnP gateways on loopback (every
 * backend enabled, the other two answering nothing), with the clock, the
 * random source and the default routes injected, and log, trace and
 * client callbacks set so that their records are allocated too.
 *
 * A clean run counts the allocations K (per phase). Then, for N = 1..K,
 * the same cycle with the Nth allocation failing, and once more with every
 * allocation from the Nth on failing. Each time: every call returns OK or
 * a clear status (NOMEM where one is possible); the mapping the
 * application holds gets exactly one final event (FAILED says why) and
 * nothing after it, and the client exactly one SHUTDOWN; nothing is stuck
 * without a word (the mapping maps or says why not, is renewed or says why
 * not before its lifetime is out, ends within 60 s of revoke; a live
 * client always has a deadline, its 30 s network check); what was DELETED
 * is gone from the fake gateway; after client free the allocator holds no
 * block, and was never handed a size 0, a NULL or a block not its own.
 * Every N is checked to have been reached. PORTMAP_TEST_VERBOSE=1 prints
 * one line per cycle (2: the client's log too); PORTMAP_TEST_ONLY=N (or
 * N+) runs that cycle alone after the clean one.
 *
 * No sleep(): the client's clock is injected and moved to its next
 * deadline once nothing is in flight; the UPnP worker's HTTP is real, so
 * while a call is with it (or an M-SEARCH not yet answered) the loop
 * waits on the client's fds, a bounded poll.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <portmap/portmap.h>

#include "test_support.h"
#include "fake_natpmp.h"
#include "fake_pcp.h"
#include "fake_upnp.h"
#include "backends/upnp_int.h"
#include "internal.h"
#include "platform/platform.h"

/* A loopback "gateway" per backend no other test binary uses (the UPnP
 * fake answers on 127.0.0.1 only). */
#define GW_PCP "127.0.0.91"
#define GW_PCP_HOST 0x7F00005Bu
#define GW_NATPMP "127.0.0.92"
#define GW_NATPMP_HOST 0x7F00005Cu
#define GW_UPNP "127.0.0.1"
#define GW_UPNP_HOST 0x7F000001u

#define LIFETIME_S 600u
#define PORT 8000
#define WAIT_REAL_MS 3000u /* bound on one wait for the UPnP worker */

/* ---------- the counting allocator ---------- */

enum phase { PH_NEW, PH_PROBE, PH_MAP, PH_RENEW, PH_REVOKE, PH_FREE, N_PHASES };
static const char *const phase_names[N_PHASES] = {"new", "probe", "map", "renew", "revoke", "free"};

#define MAGIC 0x616c6c6fu

typedef union hdr {
  max_align_t align;
  struct {
    size_t size;
    uint32_t magic;
  } h;
} hdr_t;

typedef struct acct {
  pthread_mutex_t mu;
  unsigned long calls;   /* malloc_cb and realloc_cb, numbered from 1 */
  unsigned long fail_at; /* the call to fail, 0 none */
  int fail_rest;         /* and every one after it */
  unsigned long failed;  /* calls made to fail */
  size_t blocks, bytes;  /* outstanding */
  unsigned bad_calls;    /* size 0, a NULL or foreign block (the worker thread cannot assert) */
  int phase;
  unsigned long per_phase[N_PHASES];
} acct_t;

/* Count a call; 1 when it is to fail. */
static int acct_call(acct_t *a) {
  pthread_mutex_lock(&a->mu);
  unsigned long n = ++a->calls;
  a->per_phase[a->phase]++;
  int fail = a->fail_at != 0 && (n == a->fail_at || (a->fail_rest && n > a->fail_at));
  if (fail)
    a->failed++;
  pthread_mutex_unlock(&a->mu);
  return fail;
}

static void bad_call(acct_t *a) {
  pthread_mutex_lock(&a->mu);
  a->bad_calls++;
  pthread_mutex_unlock(&a->mu);
}

static void *a_malloc(size_t size, void *user) {
  acct_t *a = user;
  if (size == 0)
    bad_call(a);
  if (acct_call(a))
    return NULL;
  hdr_t *p = malloc(sizeof *p + size);
  if (p == NULL)
    abort();
  p->h.size = size;
  p->h.magic = MAGIC;
  pthread_mutex_lock(&a->mu);
  a->blocks++;
  a->bytes += size;
  pthread_mutex_unlock(&a->mu);
  return p + 1;
}

static void *a_realloc(void *ptr, size_t size, void *user) {
  acct_t *a = user;
  if (ptr == NULL || size == 0 || ((hdr_t *)ptr - 1)->h.magic != MAGIC) {
    bad_call(a);
    return NULL;
  }
  hdr_t *old = (hdr_t *)ptr - 1;
  if (acct_call(a))
    return NULL;
  size_t was = old->h.size;
  hdr_t *p = realloc(old, sizeof *p + size);
  if (p == NULL)
    abort();
  p->h.size = size;
  pthread_mutex_lock(&a->mu);
  a->bytes = a->bytes - was + size;
  pthread_mutex_unlock(&a->mu);
  return p + 1;
}

static void a_free(void *ptr, void *user) {
  acct_t *a = user;
  if (ptr == NULL) {
    bad_call(a);
    return;
  }
  hdr_t *p = (hdr_t *)ptr - 1;
  pthread_mutex_lock(&a->mu);
  if (p->h.magic != MAGIC) {
    a->bad_calls++;
    pthread_mutex_unlock(&a->mu);
    return;
  }
  a->blocks--;
  a->bytes -= p->h.size;
  pthread_mutex_unlock(&a->mu);
  p->h.magic = 0;
  free(p);
}

static void acct_reset(acct_t *a, unsigned long fail_at, int fail_rest) {
  pthread_mutex_lock(&a->mu);
  a->calls = 0;
  a->fail_at = fail_at;
  a->fail_rest = fail_rest;
  a->failed = 0;
  a->phase = PH_NEW;
  memset(a->per_phase, 0, sizeof a->per_phase);
  pthread_mutex_unlock(&a->mu);
}

static void acct_phase(acct_t *a, int phase) {
  pthread_mutex_lock(&a->mu);
  a->phase = phase;
  pthread_mutex_unlock(&a->mu);
}

static void acct_outstanding(acct_t *a, size_t *blocks, size_t *bytes) {
  pthread_mutex_lock(&a->mu);
  *blocks = a->blocks;
  *bytes = a->bytes;
  pthread_mutex_unlock(&a->mu);
}

/* ---------- one backend's cycle ---------- */

typedef struct h {
  portmap_backend_t kind;
  acct_t acct;
  uint64_t now, rng;
  fake_pcp_t *pcp;
  fake_natpmp_t *nat;
  fake_upnp_t *upnp;
  uint8_t gw[16];
  portmap_config_t cfg;
  portmap_client_t *c;
  portmap_mapping_t *m; /* the handle portmap_map() gave */
  unsigned events, mapped, renewed, lost, finals, late_events;
  unsigned events_mark; /* events before the renewal phase */
  portmap_event_t final_event;
  portmap_status_t final_status;
  unsigned shutdowns, after_shutdown;
  unsigned ssdp_sent;  /* M-SEARCH datagrams the trace saw go out */
  unsigned msearch_at; /* the fake's M-SEARCH count as the cycle began */
  unsigned logs;
  int live;          /* the client must have a deadline (its 30 s network check) */
  const char *stuck; /* the liveness check that failed */
  unsigned long fail_at;
  int fail_rest;
  int verbose;
} h_t;

static uint64_t h_clock(void *u) {
  return ((h_t *)u)->now;
}

static int h_random(void *buf, size_t len, void *u) {
  test_splitmix_fill(&((h_t *)u)->rng, buf, len);
  return 0;
}

/* The default routes: the test's gateway for IPv4, none for IPv6 (nothing
 * leaves loopback). */
static int h_routes(void *u, int ipv6, uint8_t gw[16], unsigned *scope) {
  h_t *h = u;
  if (ipv6)
    return -1;
  memcpy(gw, h->gw, 16);
  if (scope != NULL)
    *scope = 0;
  return 0;
}

static void h_log(portmap_log_level_t level, const char *msg, void *u) {
  h_t *h = u;
  h->logs++;
  if (h->verbose > 1)
    print_message("  [%d] %s\n", (int)level, msg);
}

static void h_trace(int sent, const char *peer, uint16_t port, const uint8_t *data, size_t len,
                    void *u) {
  h_t *h = u;
  (void)peer;
  if (sent && h->upnp != NULL && port == h->cfg.ssdp_port && len > 8 &&
      memcmp(data, "M-SEARCH", 8) == 0)
    h->ssdp_sent++;
}

static void h_client_cb(portmap_client_t *c, portmap_client_event_t e,
                        const portmap_client_state_t *st, void *u) {
  h_t *h = u;
  (void)c;
  if (h->shutdowns > 0)
    h->after_shutdown++;
  if (e == PORTMAP_CLIENT_SHUTDOWN) {
    assert_int_equal(st->shut_down, 1);
    h->shutdowns++;
  }
}

static void h_cb(portmap_mapping_t *m, portmap_event_t e, const portmap_info_t *info, void *u) {
  h_t *h = u;
  assert_ptr_equal(m, h->m);
  if (h->finals > 0) {
    h->late_events++; /* nothing after the final event */
    return;
  }
  h->events++;
  switch (e) {
  case PORTMAP_EVENT_MAPPED:
  case PORTMAP_EVENT_CHANGED:
    h->mapped++;
    break;
  case PORTMAP_EVENT_RENEWED:
    h->renewed++;
    break;
  case PORTMAP_EVENT_LOST:
    assert_int_not_equal(info->status, PORTMAP_OK); /* it says why */
    h->lost++;
    break;
  case PORTMAP_EVENT_FAILED:
    assert_int_not_equal(info->status, PORTMAP_OK);
    /* fall through */
  case PORTMAP_EVENT_DELETED:
    h->finals++;
    h->final_event = e;
    h->final_status = info->status;
    break;
  }
}

/* Is the UPnP backend waiting for something real: a call with the
 * worker, or an M-SEARCH the fake has not answered yet? */
static int upnp_in_flight(h_t *h) {
  if (h->upnp == NULL || h->c == NULL)
    return 0;
  upnp_state_t *st = h->c->be_state[portmap_backend_index(PORTMAP_BACKEND_UPNP)];
  if (st != NULL && st->busy != NULL)
    return 1;
  fake_upnp_stats_t fs;
  fake_upnp_get_stats(h->upnp, &fs);
  return fs.msearch - h->msearch_at < h->ssdp_sent;
}

static uint64_t real_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Let everything in flight cross loopback, without moving the clock. */
static void pump(h_t *h) {
  uint64_t end = real_ms() + WAIT_REAL_MS;
  for (int i = 0; i < 10000; i++) {
    portmap_process(h->c);
    int moved = 0;
    if (h->pcp != NULL)
      moved |= fake_pcp_process_at(h->pcp, h->now) > 0;
    if (h->nat != NULL)
      moved |= fake_natpmp_process_at(h->nat, h->now) > 0;
    if (upnp_in_flight(h)) {
      assert_true(real_ms() < end); /* the worker's own deadline ends any call */
      (void)test_client_readable(h->c, 20);
      moved = 1;
    }
    moved |= test_client_readable(h->c, 0);
    if (!moved)
      break;
  }
  portmap_process(h->c);
}

/* Pump, then move the clock to the next deadline, until done(h) or max_ms
 * of the client's time have passed. A live client always has a deadline:
 * its network check every 30 s, if nothing earlier. */
static void run(h_t *h, int (*done)(const h_t *), uint64_t max_ms) {
  uint64_t end = h->now + max_ms;
  pump(h);
  for (int guard = 0; guard < 100000 && (done == NULL || !done(h)) && h->now < end; guard++) {
    int t = portmap_timeout_ms(h->c);
    if (h->live && (t < 0 || t > 30000))
      h->stuck = "no deadline within 30 s (the network check is not scheduled)";
    if (t < 0 || h->now + (uint64_t)t > end)
      h->now = end;
    else
      h->now += (uint64_t)t;
    pump(h);
  }
}

static int probed(const h_t *h) {
  portmap_client_state_t cs;
  return portmap_client_state(h->c, &cs) == PORTMAP_OK && cs.backend == h->kind;
}

static int mapped_or_ended(const h_t *h) {
  return h->mapped > 0 || h->finals > 0;
}

static int renewed_or_ended(const h_t *h) {
  return h->renewed > 0 || h->finals > 0;
}

static int told(const h_t *h) {
  return h->events > h->events_mark;
}

static int ended(const h_t *h) {
  return h->finals > 0;
}

static int shut_down(const h_t *h) {
  return h->shutdowns > 0;
}

/* The fake gateway holds our mapping. */
static int gateway_holds(h_t *h) {
  if (h->pcp != NULL)
    return fake_pcp_mapping_count(h->pcp) > 0;
  if (h->nat != NULL)
    return fake_natpmp_mapping_count(h->nat) > 0;
  return fake_upnp_find(h->upnp, "TCP", PORT, NULL);
}

/* Forget whatever an earlier cycle left on the fake gateway. */
static void gateway_wipe(h_t *h) {
  if (h->pcp != NULL)
    fake_pcp_clear_mappings(h->pcp);
  if (h->nat != NULL)
    while (fake_natpmp_mapping_count(h->nat) > 0)
      fake_natpmp_mapping_remove(h->nat, 0);
  if (h->upnp != NULL)
    fake_upnp_wipe(h->upnp);
}

static portmap_status_t client_free(h_t *h) {
  if (h->pcp != NULL)
    return test_free_answered(h->c, &fake_pcp_ops, h->pcp);
  if (h->nat != NULL)
    return test_free_answered(h->c, &fake_natpmp_ops, h->nat);
  return portmap_client_free(h->c); /* the UPnP fake answers on its own thread */
}

/* What one cycle came to. */
typedef struct outcome {
  portmap_status_t st_new, st_map, st_revoke, st_shutdown, st_free;
  int probed, mapped, renewed, deleted_ok, held_after;
  unsigned long calls, failed;
} outcome_t;

static int status_in(portmap_status_t st, const portmap_status_t *ok, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (st == ok[i])
      return 1;
  return 0;
}

#define FAIL_AT(h, fmt, ...)                                                                       \
  fail_msg("%s, allocation %lu%s failing: " fmt, portmap_backend_name((h)->kind), (h)->fail_at,    \
           (h)->fail_rest ? " and every later one" : "", __VA_ARGS__)

#define CHECK_STATUS(h, what, st, ...)                                                             \
  do {                                                                                             \
    const portmap_status_t ok_[] = {__VA_ARGS__};                                                  \
    if (!status_in((st), ok_, sizeof ok_ / sizeof ok_[0]))                                         \
      FAIL_AT(h, "%s returned %d (%s)", what, (int)(st), portmap_strerror(st));                    \
  } while (0)

#define CHECK_LIVE(h, cond, what)                                                                  \
  do {                                                                                             \
    if ((h)->stuck != NULL)                                                                        \
      FAIL_AT(h, "%s", (h)->stuck);                                                                \
    if (!(cond))                                                                                   \
      FAIL_AT(h, "%s", what);                                                                      \
  } while (0)

/* One full cycle with allocation fail_at failing (0: none), and with
 * fail_rest every later one too. */
static void cycle(h_t *h, unsigned long fail_at, int fail_rest, outcome_t *o) {
  memset(o, 0, sizeof *o);
  h->c = NULL;
  h->m = NULL;
  h->events = h->mapped = h->renewed = h->lost = h->finals = h->late_events = 0;
  h->final_event = 0;
  h->final_status = PORTMAP_OK;
  h->shutdowns = h->after_shutdown = 0;
  h->ssdp_sent = 0;
  if (h->upnp != NULL) {
    fake_upnp_stats_t fs;
    fake_upnp_get_stats(h->upnp, &fs);
    h->msearch_at = fs.msearch;
  }
  h->live = 0;
  h->stuck = NULL;
  h->fail_at = fail_at;
  h->fail_rest = fail_rest;
  h->rng = 7; /* the same nonces every cycle */
  gateway_wipe(h);
  acct_reset(&h->acct, fail_at, fail_rest);

  o->st_new = portmap_client_new_routes(&h->cfg, h_routes, h, &h->c);
  CHECK_STATUS(h, "portmap_client_new", o->st_new, PORTMAP_OK, PORTMAP_ERR_NOMEM);
  if (o->st_new != PORTMAP_OK) {
    assert_null(h->c);
    goto check;
  }
  h->live = 1;
  acct_phase(&h->acct, PH_PROBE);
  run(h, probed, 5000);
  o->probed = probed(h);
  CHECK_LIVE(h, 1, "");

  acct_phase(&h->acct, PH_MAP);
  portmap_request_t req;
  portmap_request_init(&req);
  req.protocol = PORTMAP_PROTO_TCP;
  req.internal_port = PORT;
  req.lifetime = LIFETIME_S;
  req.description = "alloc";
  o->st_map = portmap_map(h->c, &req, h_cb, h, &h->m);
  CHECK_STATUS(h, "portmap_map", o->st_map, PORTMAP_OK, PORTMAP_ERR_NOMEM);
  if (o->st_map == PORTMAP_OK) {
    assert_non_null(h->m);
    /* it maps, or says it cannot (LOST: retrying; FAILED) */
    run(h, mapped_or_ended, 60000);
    o->mapped = h->mapped > 0;
    CHECK_LIVE(h, h->mapped > 0 || h->lost > 0 || h->finals > 0,
               "the mapping neither mapped nor said why not within 60 s");

    /* it is renewed, or says why not before its lifetime is out */
    acct_phase(&h->acct, PH_RENEW);
    h->events_mark = h->events;
    uint64_t until = h->now + LIFETIME_S * 1000u * 3 / 4; /* past any renewal time */
    run(h, renewed_or_ended, LIFETIME_S * 1000u * 3 / 4);
    o->renewed = h->renewed > 0;
    if (h->now < until && h->finals == 0)
      run(h, NULL, until - h->now); /* the renewal's answer is in */
    if (h->mapped > 0 && h->events == h->events_mark)
      run(h, told, LIFETIME_S * 1000u / 4 + 60000); /* retrying: LOST when it expires */
    CHECK_LIVE(h, h->mapped == 0 || h->events > h->events_mark,
               "the mapping was neither renewed nor said why not before its lifetime was out");

    acct_phase(&h->acct, PH_REVOKE);
    if (h->finals == 0) {
      o->st_revoke = portmap_mapping_revoke(h->m);
      CHECK_STATUS(h, "portmap_mapping_revoke", o->st_revoke, PORTMAP_OK);
      run(h, ended, 60000);
      CHECK_LIVE(h, h->finals > 0, "no final event within 60 s of revoke");
    } else {
      assert_int_equal(portmap_mapping_revoke(h->m), PORTMAP_ERR_STATE);
    }
    o->deleted_ok = h->final_event == PORTMAP_EVENT_DELETED && h->final_status == PORTMAP_OK;
    o->held_after = gateway_holds(h);
    if (o->deleted_ok && o->held_after)
      FAIL_AT(h, "%s", "DELETED, but the gateway still holds the mapping");
    /* the gateways refuse nothing: a failure is ours, and says so */
    if (h->final_event == PORTMAP_EVENT_FAILED && h->final_status != PORTMAP_ERR_NOMEM)
      FAIL_AT(h, "FAILED with %d (%s), not PORTMAP_ERR_NOMEM", (int)h->final_status,
              portmap_strerror(h->final_status));
    /* with memory back after one failure, nothing the application never
     * heard of as mapped may stay on the gateway */
    if (!fail_rest && h->mapped == 0 && o->held_after)
      FAIL_AT(h, "%s", "never mapped, but the gateway holds the mapping");
  } else {
    assert_null(h->m);
  }

  /* the client's own final event */
  acct_phase(&h->acct, PH_FREE);
  o->st_shutdown = portmap_client_shutdown(h->c);
  CHECK_STATUS(h, "portmap_client_shutdown", o->st_shutdown, PORTMAP_OK);
  h->live = 0;
  run(h, shut_down, 10000);
  CHECK_LIVE(h, h->shutdowns == 1, "no SHUTDOWN event");

  portmap_mapping_release(h->m);
  o->st_free = client_free(h);
  CHECK_STATUS(h, "portmap_client_free", o->st_free, PORTMAP_OK);
  h->c = NULL;
  if (h->m != NULL && h->finals != 1)
    FAIL_AT(h, "%u final events for the mapping", h->finals);
  assert_int_equal(h->late_events, 0);
  assert_int_equal(h->after_shutdown, 0);

check:;
  size_t blocks, bytes;
  acct_outstanding(&h->acct, &blocks, &bytes);
  if (blocks != 0 || bytes != 0 || h->acct.bad_calls != 0)
    FAIL_AT(h, "%zu blocks (%zu octets) not given back, %u bad calls to the allocator", blocks,
            bytes, h->acct.bad_calls);
  pthread_mutex_lock(&h->acct.mu);
  o->calls = h->acct.calls;
  o->failed = h->acct.failed;
  pthread_mutex_unlock(&h->acct.mu);
  if (h->verbose)
    print_message("%s %lu%s: new %d probed %d map %d mapped %d renewed %d lost %u final %s/%d "
                  "held %d revoke %d free %d; %lu calls\n",
                  portmap_backend_name(h->kind), fail_at, fail_rest ? "+" : "", o->st_new,
                  o->probed, o->st_map, o->mapped, o->renewed, h->lost,
                  h->finals ? portmap_event_name(h->final_event) : "-", (int)h->final_status,
                  o->held_after, o->st_revoke, o->st_free, o->calls);
}

/* ---------- the walk ---------- */

static h_t *h_new(portmap_backend_t kind) {
  h_t *h = calloc(1, sizeof *h);
  assert_non_null(h);
  pthread_mutex_init(&h->acct.mu, NULL);
  h->kind = kind;
  /* PORTMAP_TEST_VERBOSE=1: one line per cycle; 2: the client's log too */
  const char *v = getenv("PORTMAP_TEST_VERBOSE");
  h->verbose = v != NULL ? atoi(v) : 0;
  h->now = 10000000;
  portmap_config_init(&h->cfg);
  h->cfg.backends = PORTMAP_BACKEND_ALL; /* a real probe: the other two answer nothing */
  h->cfg.announce_port = -1;
  h->cfg.ssdp_multicast = 0;
  h->cfg.pcp_mrc = 4;
  h->cfg.natpmp_max_tries = 4;
  h->cfg.upnp_timeout_ms = 1000;
  h->cfg.destroy_timeout_ms = 100;
  h->cfg.clock_cb = h_clock;
  h->cfg.clock_user = h;
  h->cfg.random_cb = h_random;
  h->cfg.random_user = h;
  h->cfg.log_cb = h_log;
  h->cfg.log_user = h;
  h->cfg.log_level = PORTMAP_LOG_DEBUG;
  h->cfg.trace_cb = h_trace;
  h->cfg.trace_user = h;
  h->cfg.client_cb = h_client_cb;
  h->cfg.client_user = h;
  h->cfg.malloc_cb = a_malloc;
  h->cfg.realloc_cb = a_realloc;
  h->cfg.free_cb = a_free;
  h->cfg.alloc_user = &h->acct;
  portmap_addr_t a;
  switch (kind) {
  case PORTMAP_BACKEND_PCP:
    h->pcp = fake_pcp_new_v4(0, GW_PCP_HOST);
    assert_non_null(h->pcp);
    h->cfg.gateway = GW_PCP;
    h->cfg.server_port = fake_pcp_port(h->pcp);
    h->cfg.ssdp_port = test_free_udp_port(GW_PCP_HOST);
    break;
  case PORTMAP_BACKEND_NATPMP:
    h->nat = fake_natpmp_new(GW_NATPMP);
    assert_non_null(h->nat);
    fake_natpmp_set_epoch(h->nat, 5000);
    h->cfg.gateway = GW_NATPMP;
    h->cfg.server_port = test_free_udp_port(GW_NATPMP_HOST);
    h->cfg.ssdp_port = test_free_udp_port(GW_NATPMP_HOST);
    break;
  default:
    h->upnp = fake_upnp_new(FAKE_UPNP_IGD1);
    assert_non_null(h->upnp);
    h->cfg.gateway = GW_UPNP;
    h->cfg.server_port = test_free_udp_port(GW_UPNP_HOST);
    h->cfg.ssdp_port = fake_upnp_ssdp_port(h->upnp);
    break;
  }
  assert_int_equal(portmap_addr_parse(h->cfg.gateway, &a), PORTMAP_OK);
  memcpy(h->gw, a.bytes, 16);
  return h;
}

static int teardown(void **state) {
  h_t *h = *state;
  if (h == NULL)
    return 0;
  if (h->c != NULL) { /* a failed check left it */
    portmap_mapping_release(h->m);
    (void)client_free(h);
  }
  fake_pcp_free(h->pcp);
  fake_natpmp_free(h->nat);
  fake_upnp_free(h->upnp);
  pthread_mutex_destroy(&h->acct.mu);
  free(h);
  return 0;
}

static void walk(h_t *h) {
  const char *name = portmap_backend_name(h->kind);
  uint64_t t0 = real_ms();
  outcome_t o;
  cycle(h, 0, 0, &o);
  /* the clean cycle does it all */
  assert_int_equal(o.st_new, PORTMAP_OK);
  assert_true(o.probed);
  assert_int_equal(o.st_map, PORTMAP_OK);
  assert_true(o.mapped);
  assert_true(o.renewed);
  assert_true(o.deleted_ok);
  assert_int_equal(o.st_free, PORTMAP_OK);
  unsigned long k = o.calls;
  assert_true(k > 0);
  char line[256];
  int off = snprintf(line, sizeof line, "%s: K = %lu allocations:", name, k);
  for (int p = 0; p < N_PHASES; p++)
    off += snprintf(line + off, sizeof line - (size_t)off, " %s %lu", phase_names[p],
                    h->acct.per_phase[p]);
  print_message("%s\n", line);
  for (int p = PH_NEW; p <= PH_REVOKE; p++)
    assert_true(h->acct.per_phase[p] > 0);

  /* PORTMAP_TEST_ONLY=N (or N+: and every later one): that cycle alone */
  const char *only = getenv("PORTMAP_TEST_ONLY");
  if (only != NULL) {
    cycle(h, strtoul(only, NULL, 10), strchr(only, '+') != NULL, &o);
    return;
  }

  /* fail each one in turn, then each one and every one after it */
  unsigned long reached[2] = {0, 0}, calls_max = k;
  for (int rest = 0; rest <= 1; rest++) {
    for (unsigned long n = 1; n <= k; n++) {
      cycle(h, n, rest, &o);
      if (o.calls < n || o.failed == 0)
        FAIL_AT(h, "never reached (the cycle made %lu allocations)", o.calls);
      reached[rest]++;
      if (o.calls > calls_max)
        calls_max = o.calls;
    }
  }
  assert_int_equal(reached[0], k);
  assert_int_equal(reached[1], k);
  print_message("%s: failed each of the %lu allocations, alone and with every later one "
                "(up to %lu in a cycle), in %llu ms\n",
                name, k, calls_max, (unsigned long long)(real_ms() - t0));
}

static int setup_pcp(void **state) {
  *state = h_new(PORTMAP_BACKEND_PCP);
  return 0;
}

static int setup_natpmp(void **state) {
  *state = h_new(PORTMAP_BACKEND_NATPMP);
  return 0;
}

static int setup_upnp(void **state) {
  *state = h_new(PORTMAP_BACKEND_UPNP);
  return 0;
}

static void test_walk_pcp(void **state) {
  walk(*state);
}

static void test_walk_natpmp(void **state) {
  walk(*state);
}

static void test_walk_upnp(void **state) {
  walk(*state);
}

/* ---------- the hook itself ---------- */

/* All three hooks or none: a partial set is refused. */
static void test_partial_hooks_invalid(void **state) {
  (void)state;
  acct_t a;
  memset(&a, 0, sizeof a);
  pthread_mutex_init(&a.mu, NULL);
  for (int mask = 1; mask < 7; mask++) {
    portmap_config_t cfg;
    portmap_config_init(&cfg);
    cfg.gateway = GW_PCP;
    cfg.backends = PORTMAP_BACKEND_PCP;
    cfg.announce_port = -1;
    cfg.malloc_cb = (mask & 1) ? a_malloc : NULL;
    cfg.realloc_cb = (mask & 2) ? a_realloc : NULL;
    cfg.free_cb = (mask & 4) ? a_free : NULL;
    cfg.alloc_user = &a;
    portmap_client_t *c = (portmap_client_t *)&a; /* set to NULL on failure */
    assert_int_equal(portmap_client_new(&cfg, &c), PORTMAP_ERR_INVALID);
    assert_null(c);
  }
  assert_int_equal(a.calls, 0);
  pthread_mutex_destroy(&a.mu);
}

/* A program built against 1.0 has no hook fields: whatever follows its
 * struct is not read, and the client uses the system allocator. */
static void test_older_config_uses_system_allocator(void **state) {
  (void)state;
  unsigned char buf[sizeof(portmap_config_t) + 64];
  memset(buf, 0xA5, sizeof buf); /* junk where the hooks would be */
  portmap_config_t cfg;
  portmap_config_init(&cfg);
  cfg.gateway = GW_PCP;
  cfg.backends = PORTMAP_BACKEND_PCP;
  cfg.announce_port = -1;
  cfg.destroy_timeout_ms = 0;
  memcpy(buf, &cfg, PORTMAP_CONFIG_SIZE_1_0);
  portmap_client_t *c = NULL;
  assert_int_equal(
      portmap_client_new_sized((portmap_config_t *)(void *)buf, PORTMAP_CONFIG_SIZE_1_0, &c),
      PORTMAP_OK);
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = PORT;
  assert_int_equal(portmap_map(c, &req, NULL, NULL, NULL), PORTMAP_OK);
  assert_int_equal(portmap_client_free(c), PORTMAP_OK);
}

/* The platform's route reading allocates through the hook too. */
static void test_route_buffer_through_hook(void **state) {
  (void)state;
  acct_t a;
  memset(&a, 0, sizeof a);
  pthread_mutex_init(&a.mu, NULL);
  portmap_alloc_t al;
  assert_int_equal(portmap_alloc_from(&al, a_malloc, a_realloc, a_free, &a), 0);
  uint8_t gw[16];
  acct_reset(&a, 1, 0);
  assert_int_equal(portmap_plat_default_gateway(&al, 0, gw, NULL), -1); /* no buffer */
  assert_int_equal(a.calls, 1);
  /* netlink's buffer; and /proc's too where netlink cannot be used */
  int netlink = portmap_plat_rtnl_gateway(NULL, 0, gw, NULL) != PORTMAP_PLAT_RTNL_FAILED;
  acct_reset(&a, 0, 0);
  (void)portmap_plat_default_gateway(&al, 0, gw, NULL); /* whatever this host's table says */
  assert_int_equal(a.calls, netlink ? 1 : 2);
  assert_int_equal(a.blocks, 0);
  assert_int_equal(a.bytes, 0);
  pthread_mutex_destroy(&a.mu);
}

/* Reserved room: arming timers up to it never allocates, so it cannot fail. */
static void test_reserved_timers_never_allocate(void **state) {
  (void)state;
  acct_t a;
  memset(&a, 0, sizeof a);
  pthread_mutex_init(&a.mu, NULL);
  portmap_alloc_t al;
  assert_int_equal(portmap_alloc_from(&al, a_malloc, a_realloc, a_free, &a), 0);
  portmap_sched_t s;
  portmap_sched_init(&s);
  s.alloc = &al;
  acct_reset(&a, 1, 0);
  assert_int_equal(portmap_sched_reserve(&s, 40), -1); /* the first allocation fails */
  assert_int_equal(portmap_sched_reserve(&s, 40), 0);
  unsigned long calls = a.calls;
  acct_reset(&a, 1, 1); /* from now on every allocation fails */
  portmap_timer_t t[40];
  for (size_t i = 0; i < 40; i++) {
    portmap_timer_init(&t[i], NULL, NULL);
    assert_int_equal(portmap_sched_push(&s, &t[i], 1000 - i), 0);
  }
  assert_int_equal(portmap_sched_run(&s, 1000), 40);
  assert_int_equal(a.calls, 0);
  assert_true(calls >= 2);
  portmap_sched_fini(&s);
  assert_int_equal(a.blocks, 0);
  pthread_mutex_destroy(&a.mu);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_partial_hooks_invalid),
      cmocka_unit_test(test_older_config_uses_system_allocator),
      cmocka_unit_test(test_route_buffer_through_hook),
      cmocka_unit_test(test_reserved_timers_never_allocate),
      cmocka_unit_test_setup_teardown(test_walk_pcp, setup_pcp, teardown),
      cmocka_unit_test_setup_teardown(test_walk_natpmp, setup_natpmp, teardown),
      cmocka_unit_test_setup_teardown(test_walk_upnp, setup_upnp, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
