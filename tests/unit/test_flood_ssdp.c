/* SPDX-License-Identifier: MIT */
/*
 * SSDP storm (issue 11, item 3): 10,000 well-formed SSDP replies for an
 * InternetGatewayDevice, each with its own LOCATION, at the client's SSDP
 * socket while it discovers the fake IGD (tests/fake/fake_upnp.h) on
 * loopback. What discovery keeps is capped (UPNP_MAX_CANDIDATES), so are
 * the description fetches a round starts, every reply read is counted, the
 * heap does not grow with the storm, and the real IGD is found when its
 * reply comes first or early.
 *
 * The fake ignores M-SEARCH (fake_upnp_set_ignore_unicast), so the test
 * sends the real IGD's reply itself, where each case wants it. The client's
 * clock is injected and stands still while the storm is read (the search
 * window cannot end by time in the middle of it); afterwards it follows
 * real time, since the description fetches run on the UPnP worker in real
 * time.
 *
 * The storm comes from the gateway's own address on other ports (Q1 lets a
 * reply come from any port of the gateway) and from two other hosts,
 * 127.0.0.86 and 127.0.0.87. LOCATIONs point at ports of 127.0.0.1 bound
 * without listening (refused at once) or at a listener the test accepts
 * and closes, which counts the connections the client opens.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <portmap/portmap.h>

#include "test_support.h"
#include "fake_upnp.h"
#include "heap_probe.h"

#define STORM 10000u
#define BATCH 50u         /* replies queued at once: well under the socket buffer */
#define MAX_CANDIDATES 8u /* UPNP_MAX_CANDIDATES (src/backends/upnp_int.h) */
#define TIMEOUT_MS 1000u  /* upnp_timeout_ms */
#define WINDOW_MS 500u    /* probe_timeout_ms: the SSDP search window */
#define N_DEAD 4          /* ports bound without listening */
/* Bytes the heap may grow by while the storm is read: the worker thread and
 * its first calls (about 6 KB, once) start during it when the search window
 * ends in the middle; anything kept per reply would be ten times that. */
#define HEAP_SLACK 16384
#define ROGUE1 0x7F000056u /* 127.0.0.86 */
#define ROGUE2 0x7F000057u /* 127.0.0.87 */
#define MAX_LOG 256

static const char *const IGD1 = "urn:schemas-upnp-org:device:InternetGatewayDevice:1";
static const char *const ROOT = "upnp:rootdevice";

typedef struct h {
  fake_upnp_t *f;
  portmap_client_t *c;
  portmap_config_t cfg;
  uint64_t now;
  uint64_t rng;
  int ssdp_fd;
  struct sockaddr_in ssdp; /* the client's SSDP socket */
  int gw_src[4];           /* 127.0.0.1, other ports than the fake's */
  int rogue_src[2];
  int dead[N_DEAD];
  uint16_t dead_port[N_DEAD];
  int tarpit;
  uint16_t tarpit_port;
  unsigned tarpit_conns;
  unsigned n;             /* storm replies sent so far */
  unsigned describe_fail; /* "cannot read the description" lines */
  char log[MAX_LOG][256];
  size_t n_log;
  portmap_event_t ev[16];
  size_t n_ev;
  char ext[PORTMAP_ADDRSTRLEN];
  unsigned msearch_answered;
  uint64_t heap_peak; /* the most in use after any batch of the storm */
} h_t;

static uint64_t h_clock(void *u) {
  return ((h_t *)u)->now;
}

static int h_random(void *buf, size_t len, void *u) {
  test_splitmix_fill(&((h_t *)u)->rng, buf, len);
  return 0;
}

static void h_log(portmap_log_level_t level, const char *msg, void *u) {
  h_t *h = u;
  (void)level;
  if (strstr(msg, "cannot read the description") != NULL)
    h->describe_fail++;
  if (strstr(msg, "LOCATION refused") == NULL && h->n_log < MAX_LOG)
    snprintf(h->log[h->n_log++], sizeof h->log[0], "%s", msg);
}

static void h_cb(portmap_mapping_t *m, portmap_event_t e, const portmap_info_t *info, void *u) {
  h_t *h = u;
  (void)m;
  if (h->n_ev < 16)
    h->ev[h->n_ev++] = e;
  snprintf(h->ext, sizeof h->ext, "%s", info->external_address_str);
}

static int udp_from(uint32_t host) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(host);
  assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  return fd;
}

static int tcp_bound(uint16_t *port, int listening) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (listening ? SOCK_NONBLOCK : 0), 0);
  assert_true(fd >= 0);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t sl = sizeof sa;
  assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  if (listening)
    assert_int_equal(listen(fd, 64), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
  *port = ntohs(sa.sin_port);
  return fd;
}

static int setup(void **state) {
  h_t *h = calloc(1, sizeof *h);
  assert_non_null(h);
  h->now = 3000000;
  h->rng = 5;
  h->ssdp_fd = -1;
  h->f = fake_upnp_new(FAKE_UPNP_IGD1);
  assert_non_null(h->f);
  fake_upnp_set_ignore_unicast(h->f, 1); /* the test sends the IGD's reply */
  for (int i = 0; i < 4; i++)
    h->gw_src[i] = udp_from(INADDR_LOOPBACK);
  h->rogue_src[0] = udp_from(ROGUE1);
  h->rogue_src[1] = udp_from(ROGUE2);
  for (int i = 0; i < N_DEAD; i++)
    h->dead[i] = tcp_bound(&h->dead_port[i], 0);
  h->tarpit = tcp_bound(&h->tarpit_port, 1);
  portmap_config_init(&h->cfg);
  h->cfg.gateway = "127.0.0.1";
  h->cfg.backends = PORTMAP_BACKEND_UPNP;
  h->cfg.announce_port = -1;
  h->cfg.ssdp_port = fake_upnp_ssdp_port(h->f);
  h->cfg.upnp_timeout_ms = TIMEOUT_MS;
  h->cfg.probe_timeout_ms = WINDOW_MS;
  h->cfg.destroy_timeout_ms = 1500;
  h->cfg.clock_cb = h_clock;
  h->cfg.clock_user = h;
  h->cfg.random_cb = h_random;
  h->cfg.random_user = h;
  h->cfg.log_cb = h_log;
  h->cfg.log_user = h;
  h->cfg.log_level = PORTMAP_LOG_INFO;
  *state = h;
  return 0;
}

static int teardown(void **state) {
  h_t *h = *state;
  portmap_client_free(h->c); /* the fake answers the delete on its thread */
  fake_upnp_free(h->f);
  for (int i = 0; i < 4; i++)
    close(h->gw_src[i]);
  close(h->rogue_src[0]);
  close(h->rogue_src[1]);
  for (int i = 0; i < N_DEAD; i++)
    close(h->dead[i]);
  close(h->tarpit);
  free(h);
  return 0;
}

/* Accept and close whatever connected to the tarpit: a fetch that fails. */
static void tarpit_reap(h_t *h) {
  for (int i = 0; i < 64; i++) {
    int fd = accept(h->tarpit, NULL, NULL);
    if (fd < 0)
      return;
    h->tarpit_conns++;
    close(fd);
  }
}

/* Start a mapping: discovery opens the SSDP socket and sends M-SEARCH. */
static void start(h_t *h) {
  assert_int_equal(portmap_client_new(&h->cfg, &h->c), PORTMAP_OK);
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = 8000;
  req.lifetime = 600;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, NULL), PORTMAP_OK);
  portmap_process(h->c);
  int fds[8];
  size_t n = portmap_fds(h->c, fds, 8);
  for (size_t i = 0; i < n && i < 8; i++) {
    int type = 0;
    socklen_t tl = sizeof type;
    if (getsockopt(fds[i], SOL_SOCKET, SO_TYPE, &type, &tl) != 0 || type != SOCK_DGRAM)
      continue;
    socklen_t sl = sizeof h->ssdp;
    assert_int_equal(h->ssdp_fd, -1);
    assert_int_equal(getsockname(fds[i], (struct sockaddr *)&h->ssdp, &sl), 0);
    h->ssdp_fd = fds[i];
  }
  assert_true(h->ssdp_fd >= 0);
}

static void reply(h_t *h, int fd, const char *st, const char *location) {
  char buf[512];
  int n = snprintf(buf, sizeof buf,
                   "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: %s\r\n"
                   "USN: uuid:storm-%u::%s\r\nEXT:\r\nSERVER: Storm/1.0 UPnP/1.0\r\n"
                   "LOCATION: %s\r\n\r\n",
                   st, h->n, st, location);
  assert_true(n > 0 && (size_t)n < sizeof buf);
  ssize_t s = sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&h->ssdp, sizeof h->ssdp);
  assert_int_equal(s, n);
}

/* The real IGD's reply, from the gateway's address. */
static void real_reply(h_t *h) {
  char loc[96];
  snprintf(loc, sizeof loc, "http://127.0.0.1:%u/rootDesc.xml", fake_upnp_http_port(h->f));
  reply(h, h->gw_src[0], IGD1, loc);
}

/* Read what is queued (each process reads at most 64 datagrams a socket). */
static void drain(h_t *h) {
  for (int i = 0; i < 256; i++) {
    portmap_process(h->c);
    struct pollfd p = {h->ssdp_fd, POLLIN, 0};
    if (poll(&p, 1, 0) <= 0)
      break;
  }
}

/* drain(), then note the heap in use. */
static void drain_and_sample(h_t *h) {
  drain(h);
  uint64_t v = heap_probe_in_use();
  if (v != HEAP_PROBE_NONE && v > h->heap_peak)
    h->heap_peak = v;
}

enum who { FROM_GATEWAY, FROM_OTHER_HOST };

/* Storm replies n..n+count-1, each with its own LOCATION. From the
 * gateway's address they name the gateway (most pointing nowhere); from
 * another host they name that host, the gateway or a third host in turn. */
static void storm(h_t *h, unsigned count, enum who who, const char *st) {
  for (unsigned k = 0; k < count; k++, h->n++) {
    char loc[128];
    unsigned port_pick = h->n % (N_DEAD + 1);
    uint16_t port = port_pick < N_DEAD ? h->dead_port[port_pick] : h->tarpit_port;
    int fd;
    if (who == FROM_GATEWAY) {
      fd = h->gw_src[1 + h->n % 3];
      snprintf(loc, sizeof loc, "http://127.0.0.1:%u/storm/%u/desc.xml", port, h->n);
    } else {
      fd = h->rogue_src[h->n % 2];
      unsigned k3 = h->n % 3;
      char host[32];
      if (k3 == 0)
        snprintf(host, sizeof host, "127.0.0.%u", 86 + h->n % 2); /* the sender itself */
      else if (k3 == 1)
        snprintf(host, sizeof host, "127.0.0.1"); /* the gateway */
      else
        snprintf(host, sizeof host, "192.0.2.%u", 1 + h->n % 200); /* a third host */
      snprintf(loc, sizeof loc, "http://%s:%u/storm/%u/desc.xml", host, port, h->n);
    }
    reply(h, fd, st, loc);
    if ((k + 1) % BATCH == 0)
      drain_and_sample(h);
  }
  drain_and_sample(h);
}

static uint64_t real_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Let discovery run (fetches on the worker, in real time) until the
 * mapping's events number `events` or `limit_ms` of the client's clock
 * pass; the clock follows real time. A new M-SEARCH gets the real IGD's
 * reply when answer is set. Returns the client time it took. */
static uint64_t settle(h_t *h, size_t events, uint64_t limit_ms, int answer) {
  uint64_t t0 = h->now;
  fake_upnp_stats_t fs;
  while (h->n_ev < events && h->now - t0 < limit_ms) {
    uint64_t r0 = real_ms();
    portmap_process(h->c);
    tarpit_reap(h);
    fake_upnp_get_stats(h->f, &fs);
    if (answer && fs.msearch > h->msearch_answered) {
      h->msearch_answered = fs.msearch;
      real_reply(h);
    }
    int t = portmap_timeout_ms(h->c);
    (void)test_client_readable(h->c, t < 0 || t > 10 ? 10 : t);
    h->now += real_ms() - r0;
  }
  portmap_process(h->c);
  return h->now - t0;
}

static void stats(h_t *h, portmap_stats_t *st) {
  assert_int_equal(portmap_client_stats(h->c, st), PORTMAP_OK);
}

static void print_outcome(h_t *h, const char *name, uint64_t took, uint64_t heap0, uint64_t heap1) {
  portmap_stats_t st;
  stats(h, &st);
  fake_upnp_stats_t fs;
  fake_upnp_get_stats(h->f, &fs);
  print_message("%s: %u replies; received %llu malformed %llu spoofed %llu unmatched %llu; "
                "fetches: %u failed (%u to the tarpit) + %u of the real description; "
                "%llu ms of client time; heap %llu -> %llu (peak %llu)\n",
                name, h->n, (unsigned long long)st.received, (unsigned long long)st.malformed,
                (unsigned long long)st.spoofed, (unsigned long long)st.unmatched, h->describe_fail,
                h->tarpit_conns, fs.desc_gets, (unsigned long long)took, (unsigned long long)heap0,
                (unsigned long long)heap1, (unsigned long long)h->heap_peak);
}

static uint64_t heap_now(void) {
  const char *why = NULL;
  uint64_t v = heap_probe_start(&why);
  if (why != NULL)
    print_message("heap not measured: %s\n", why);
  return v;
}

/* After the storm and at its peak: not proportional to the replies. */
static void assert_heap_flat(h_t *h, uint64_t before, uint64_t after) {
  if (before == HEAP_PROBE_NONE)
    return;
  assert_true(after <= before + HEAP_SLACK + heap_probe_noise());
  assert_true(h->heap_peak <= before + HEAP_SLACK + heap_probe_noise());
}

static void assert_mapped(h_t *h) {
  assert_true(h->n_ev >= 1);
  if (h->ev[0] != PORTMAP_EVENT_MAPPED) {
    for (size_t i = 0; i < h->n_log; i++)
      print_message("log: %s\n", h->log[i]);
    fail_msg("first event %s", portmap_event_name(h->ev[0]));
  }
  assert_string_equal(h->ext, "203.0.113.5");
}

/* Q4 filter: 10,000 replies from two other hosts, then the real one. A
 * reply from another host is taken only for a LOCATION on that host, and
 * no LOCATION may name loopback but the gateway itself: every storm reply
 * is dropped before it costs a candidate, however early it came. */
static void test_storm_from_other_hosts_then_real(void **state) {
  h_t *h = *state;
  start(h);
  uint64_t heap0 = heap_now();
  storm(h, STORM, FROM_OTHER_HOST, IGD1);
  uint64_t heap1 = heap_now();
  real_reply(h);
  uint64_t took = settle(h, 1, 10000, 0);
  print_outcome(h, "other hosts, then the IGD", took, heap0, heap1);
  assert_mapped(h);
  portmap_stats_t st;
  stats(h, &st);
  /* a third of them name their own (loopback) host: refused; two thirds
   * name another host: spoofed (Q4) */
  unsigned own = 0;
  for (unsigned i = 0; i < STORM; i++)
    own += i % 3 == 0;
  assert_int_equal(st.malformed, own);
  assert_int_equal(st.spoofed, STORM - own);
  assert_int_equal(st.received, STORM + 1);
  fake_upnp_stats_t fs;
  fake_upnp_get_stats(h->f, &fs);
  assert_int_equal(fs.desc_gets, 1);
  assert_int_equal(h->describe_fail, 0);
  assert_int_equal(h->tarpit_conns, 0);
  assert_heap_flat(h, heap0, heap1);
}

/* The real reply first: it ends the search (the gateway's own IGD reply),
 * and the 10,000 from the gateway's address that follow are read, counted
 * and ignored. One fetch. */
static void test_storm_after_real(void **state) {
  h_t *h = *state;
  start(h);
  real_reply(h);
  uint64_t heap0 = heap_now();
  storm(h, STORM, FROM_GATEWAY, IGD1);
  uint64_t heap1 = heap_now();
  uint64_t took = settle(h, 1, 10000, 0);
  print_outcome(h, "the IGD, then the gateway's address", took, heap0, heap1);
  assert_mapped(h);
  portmap_stats_t st;
  stats(h, &st);
  assert_int_equal(st.received, STORM + 1);
  assert_int_equal(st.unmatched, STORM);
  fake_upnp_stats_t fs;
  fake_upnp_get_stats(h->f, &fs);
  assert_int_equal(fs.desc_gets, 1);
  assert_int_equal(h->describe_fail, 0);
  assert_int_equal(h->tarpit_conns, 0);
  assert_heap_flat(h, heap0, heap1);
}

/* The real reply early: 5,000 upnp:rootdevice replies from the gateway's
 * address fill the candidates first, then the IGD's own reply, then 5,000
 * more IGD replies. The IGD's reply outranks every rootdevice one (an IGD
 * search target), so it must take a place in the full list and be
 * described first: one fetch. Every reply that adds nothing is counted. */
static void test_storm_real_early(void **state) {
  h_t *h = *state;
  start(h);
  uint64_t heap0 = heap_now();
  storm(h, STORM / 2, FROM_GATEWAY, ROOT);
  real_reply(h);
  storm(h, STORM / 2, FROM_GATEWAY, IGD1);
  uint64_t heap1 = heap_now();
  uint64_t took = settle(h, 1, 10000, 0);
  print_outcome(h, "rootdevice replies, the IGD, IGD replies", took, heap0, heap1);
  assert_mapped(h);
  fake_upnp_stats_t fs;
  fake_upnp_get_stats(h->f, &fs);
  assert_int_equal(fs.desc_gets, 1);
  assert_int_equal(h->describe_fail, 0);
  portmap_stats_t st;
  stats(h, &st);
  assert_int_equal(st.received, STORM + 1);
  /* kept: MAX_CANDIDATES rootdevice replies (one of them then given up for
   * the IGD's) and the IGD's own; all the others are counted */
  assert_int_equal(st.unmatched, STORM - MAX_CANDIDATES);
  assert_heap_flat(h, heap0, heap1);
}

/* After the cap (the designed behaviour): the gateway's address answers
 * first, with rootdevice replies and then IGD replies, all pointing
 * nowhere; the first IGD reply from the gateway ends the search (that is
 * what makes discovery fast), so the real reply that follows comes too
 * late for this round. The round fetches at most MAX_CANDIDATES
 * descriptions, each refused at once, and fails in bounded time (FAILED:
 * UPnP is the only backend here; with others the mapping would be LOST and
 * retried). The next round, the storm over, finds the real IGD. */
static void test_storm_before_real_is_bounded(void **state) {
  h_t *h = *state;
  start(h);
  uint64_t heap0 = heap_now();
  storm(h, STORM / 2, FROM_GATEWAY, ROOT);
  storm(h, STORM / 2, FROM_GATEWAY, IGD1);
  uint64_t heap1 = heap_now();
  real_reply(h);
  uint64_t took = settle(h, 1, 30000, 0);
  print_outcome(h, "the gateway's address first, the IGD after", took, heap0, heap1);
  assert_int_equal(h->n_ev, 1);
  assert_int_equal(h->ev[0], PORTMAP_EVENT_FAILED);
  assert_int_equal(h->describe_fail, MAX_CANDIDATES);
  assert_true(h->tarpit_conns <= MAX_CANDIDATES);
  fake_upnp_stats_t fs;
  fake_upnp_get_stats(h->f, &fs);
  assert_int_equal(fs.desc_gets, 0);
  assert_true(took <= MAX_CANDIDATES * TIMEOUT_MS); /* each fetch is bounded; these fail at once */
  portmap_stats_t st;
  stats(h, &st);
  assert_int_equal(st.received, STORM + 1);
  /* kept: MAX_CANDIDATES rootdevice replies, one given up for the first IGD
   * reply, which ended the search; every other reply is counted */
  assert_int_equal(st.unmatched, STORM - MAX_CANDIDATES);
  assert_heap_flat(h, heap0, heap1);
  /* the next round */
  h->msearch_answered = fs.msearch;
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = 8001;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, NULL), PORTMAP_OK);
  took = settle(h, 2, 10000, 1);
  print_outcome(h, "the next round", took, heap0, heap1);
  assert_int_equal(h->n_ev, 2);
  assert_int_equal(h->ev[1], PORTMAP_EVENT_MAPPED);
  assert_string_equal(h->ext, "203.0.113.5");
  fake_upnp_get_stats(h->f, &fs);
  assert_int_equal(fs.desc_gets, 1);
  assert_int_equal(h->describe_fail, MAX_CANDIDATES);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_storm_from_other_hosts_then_real, setup, teardown),
      cmocka_unit_test_setup_teardown(test_storm_after_real, setup, teardown),
      cmocka_unit_test_setup_teardown(test_storm_real_early, setup, teardown),
      cmocka_unit_test_setup_teardown(test_storm_before_real_is_bounded, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
