/* SPDX-License-Identifier: MIT */
/*
 * The UPnP-IGD backend end to end against the fake IGD (tests/fake/
 * fake_upnp.h) on loopback, with backends = PORTMAP_BACKEND_UPNP, gateway
 * 127.0.0.1 and the announce listener off. Test names carry the
 * ROUTER-QUIRKS IDs they prove.
 *
 * Time: miniupnpc's HTTP runs on the client's worker thread in real time,
 * so the client's clock is the real monotonic clock plus a skew the test
 * moves forward (renewals at half a 2-hour lease happen at once). The skew
 * only moves while nothing is in flight. Every wait is a bounded poll loop
 * of 10 ms steps (WAIT_MS), never sleep().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <portmap/portmap.h>

#include "test_support.h"
#include "fake_upnp.h"
#include "internal.h"

#define MAX_EVENTS 64
#define MAX_LOG 512
#define WAIT_MS 1500

static const char *const IGD1 = "urn:schemas-upnp-org:device:InternetGatewayDevice:1";
static const char *const IGD2 = "urn:schemas-upnp-org:device:InternetGatewayDevice:2";

typedef test_ev_t ev_t;

typedef struct h {
  fake_upnp_t *f;
  portmap_client_t *c;
  portmap_config_t cfg;
  uint64_t skew;
  uint64_t rng;
  ev_t ev[MAX_EVENTS];
  size_t n_ev;
  char log[MAX_LOG][512];
  size_t n_log;
  unsigned trace_sent, trace_received, trace_foreign;
  char ssdp_peer[64];
} h_t;

static uint64_t real_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t h_clock(void *u) {
  return real_ms() + ((h_t *)u)->skew;
}

static int h_random(void *buf, size_t len, void *u) {
  test_splitmix_fill(&((h_t *)u)->rng, buf, len);
  return 0;
}

static void h_log(portmap_log_level_t level, const char *msg, void *u) {
  h_t *h = u;
  (void)level;
  if (h->n_log < MAX_LOG)
    snprintf(h->log[h->n_log++], sizeof h->log[0], "%s", msg);
}

static void h_trace(int sent, const char *peer, uint16_t port, const uint8_t *data, size_t len,
                    void *u) {
  h_t *h = u;
  (void)data;
  (void)len;
  char p[64];
  snprintf(p, sizeof p, "%s:%u", peer, port);
  if (sent) {
    h->trace_sent++;
    if (strcmp(p, h->ssdp_peer) != 0)
      h->trace_foreign++; /* Q3: never anywhere but the loopback gateway */
  } else {
    h->trace_received++;
  }
}

static void h_cb(portmap_mapping_t *m, portmap_event_t e, const portmap_info_t *info, void *u) {
  h_t *h = u;
  test_ev_add(h->ev, MAX_EVENTS, &h->n_ev, m, e, info, 0);
}

static h_t *h_new(fake_upnp_profile_t profile) {
  h_t *h = calloc(1, sizeof *h);
  assert_non_null(h);
  h->rng = 7;
  h->f = fake_upnp_new(profile);
  assert_non_null(h->f);
  portmap_config_init(&h->cfg);
  h->cfg.gateway = "127.0.0.1";
  h->cfg.backends = PORTMAP_BACKEND_UPNP;
  h->cfg.announce_port = -1;
  h->cfg.ssdp_port = fake_upnp_ssdp_port(h->f);
  h->cfg.ssdp_multicast = 1; /* Q3: must still never multicast to a loopback gateway */
  h->cfg.upnp_timeout_ms = 1000;
  h->cfg.probe_timeout_ms = 300;
  h->cfg.destroy_timeout_ms = 1500;
  h->cfg.clock_cb = h_clock;
  h->cfg.clock_user = h;
  h->cfg.random_cb = h_random;
  h->cfg.random_user = h;
  h->cfg.log_cb = h_log;
  h->cfg.log_user = h;
  h->cfg.log_level = PORTMAP_LOG_DEBUG;
  h->cfg.trace_cb = h_trace;
  h->cfg.trace_user = h;
  snprintf(h->ssdp_peer, sizeof h->ssdp_peer, "127.0.0.1:%u", h->cfg.ssdp_port);
  return h;
}

static void h_up(h_t *h) {
  assert_int_equal(portmap_client_new(&h->cfg, &h->c), PORTMAP_OK);
}

static int setup_igd1(void **state) {
  *state = h_new(FAKE_UPNP_IGD1);
  return 0;
}

static int setup_igd2(void **state) {
  *state = h_new(FAKE_UPNP_IGD2);
  return 0;
}

static int setup_ppp(void **state) {
  *state = h_new(FAKE_UPNP_PPP_ONLY);
  return 0;
}

static int setup_dslf(void **state) {
  *state = h_new(FAKE_UPNP_DSLFORUM);
  return 0;
}

static int setup_two(void **state) {
  *state = h_new(FAKE_UPNP_TWO_WAN);
  return 0;
}

static int teardown(void **state) {
  h_t *h = *state;
  portmap_client_free(h->c); /* the fake keeps answering the deletes */
  fake_upnp_free(h->f);
  free(h);
  return 0;
}

static void pump(h_t *h, int ms) {
  portmap_process(h->c);
  int t = portmap_timeout_ms(h->c);
  if (t < 0 || t > ms)
    t = ms;
  (void)test_client_readable(h->c, t);
  portmap_process(h->c);
}

/* Pump in 10 ms steps until cond holds or WAIT_MS of real time pass. */
#define RUN_UNTIL(h, cond)                                                                         \
  do {                                                                                             \
    uint64_t end_ = real_ms() + WAIT_MS;                                                           \
    while (!(cond) && real_ms() < end_)                                                            \
      pump((h), 10);                                                                               \
  } while (0)

/* Move the client's clock: only while nothing is in flight. */
static void advance(h_t *h, uint64_t ms) {
  h->skew += ms;
  pump(h, 0);
}

static size_t count_ev(h_t *h, portmap_event_t e) {
  return test_ev_count(h->ev, h->n_ev, e);
}

static const ev_t *last_ev(h_t *h) {
  assert_true(h->n_ev > 0);
  return &h->ev[h->n_ev - 1];
}

static int logged(h_t *h, const char *needle) {
  for (size_t i = 0; i < h->n_log; i++)
    if (strstr(h->log[i], needle) != NULL)
      return 1;
  return 0;
}

static size_t log_count(h_t *h, const char *needle) {
  size_t n = 0;
  for (size_t i = 0; i < h->n_log; i++)
    if (strstr(h->log[i], needle) != NULL)
      n++;
  return n;
}

static portmap_mapping_t *map_req(h_t *h, int proto, uint16_t port, uint16_t ext, uint32_t lifetime,
                                  unsigned flags, const char *desc) {
  portmap_request_t req;
  portmap_request_init(&req);
  req.protocol = proto;
  req.internal_port = port;
  req.external_port = ext;
  req.lifetime = lifetime;
  req.flags = flags;
  req.description = desc;
  portmap_mapping_t *m = NULL;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, &m), PORTMAP_OK);
  return m;
}

static portmap_mapping_t *map_tcp(h_t *h, uint16_t port, uint32_t lifetime) {
  return map_req(h, PORTMAP_PROTO_TCP, port, 0, lifetime, 0, NULL);
}

/* Map and wait for the first event, which must be MAPPED. */
static const portmap_info_t *mapped(h_t *h, portmap_mapping_t *m) {
  (void)m;
  size_t before = h->n_ev;
  RUN_UNTIL(h, h->n_ev > before);
  assert_true(h->n_ev > before);
  if (last_ev(h)->event != PORTMAP_EVENT_MAPPED)
    fail_msg("event %s status %s result %d", portmap_event_name(last_ev(h)->event),
             portmap_strerror(last_ev(h)->info.status), last_ev(h)->info.gateway_result);
  return &last_ev(h)->info;
}

/* The last logged SOAP request of an action, or NULL. */
static int last_request(h_t *h, const char *action, fake_upnp_request_t *out) {
  static fake_upnp_request_t log[FAKE_UPNP_LOG_SIZE];
  size_t n = fake_upnp_requests(h->f, log, FAKE_UPNP_LOG_SIZE);
  if (n > FAKE_UPNP_LOG_SIZE)
    n = FAKE_UPNP_LOG_SIZE;
  for (size_t i = n; i > 0; i--) {
    if (strcmp(log[i - 1].action, action) == 0) {
      *out = log[i - 1];
      return 1;
    }
  }
  return 0;
}

/* ---------- the basics ---------- */

static void test_add_renew_delete(void **state) {
  h_t *h = *state;
  h_up(h);
  portmap_mapping_t *m = map_tcp(h, 8000, 3600);
  const portmap_info_t *i = mapped(h, m);
  assert_int_equal(i->backend, PORTMAP_BACKEND_UPNP);
  assert_int_equal(i->status, PORTMAP_OK);
  assert_int_equal(i->gateway_result, 0);
  assert_int_equal(i->protocol, PORTMAP_PROTO_TCP);
  assert_int_equal(i->internal_port, 8000);
  assert_int_equal(i->external_port, 8000);
  assert_string_equal(i->external_address_str, "203.0.113.5");
  assert_int_equal(i->external_is_private, 0);
  assert_int_equal(i->lifetime, 3600);
  assert_true(i->expires_in_ms > 3590000u && i->expires_in_ms <= 3600000u);
  fake_upnp_entry_t e;
  assert_true(fake_upnp_find(h->f, "TCP", 8000, &e));
  assert_string_equal(e.client, "127.0.0.1");
  assert_int_equal(e.int_port, 8000);
  assert_string_equal(e.desc, "libportmap");
  assert_int_equal(e.lease, 3600);
  assert_int_equal(fake_upnp_count(h->f, "AddPortMapping"), 1);

  /* renewal at half the lease: verify (Q14), then re-add */
  advance(h, 1800u * 1000u + 10);
  RUN_UNTIL(h, h->n_ev >= 2);
  assert_int_equal(last_ev(h)->event, PORTMAP_EVENT_RENEWED);
  assert_int_equal(last_ev(h)->info.external_port, 8000);
  assert_int_equal(fake_upnp_count(h->f, "GetSpecificPortMappingEntry"), 1);
  assert_int_equal(fake_upnp_count(h->f, "AddPortMapping"), 2);

  assert_int_equal(portmap_mapping_revoke(m), PORTMAP_OK);
  RUN_UNTIL(h, h->n_ev >= 3);
  assert_int_equal(last_ev(h)->event, PORTMAP_EVENT_DELETED);
  assert_int_equal(last_ev(h)->info.status, PORTMAP_OK);
  assert_int_equal(fake_upnp_find(h->f, "TCP", 8000, NULL), 0);
  assert_int_equal(fake_upnp_count(h->f, "DeletePortMapping"), 1);
  /* the SOAP exchanges are logged at DEBUG with their arguments */
  assert_true(logged(h, "AddPortMapping(NewRemoteHost=, NewExternalPort=8000, NewProtocol=TCP, "
                        "NewInternalPort=8000, NewInternalClient=127.0.0.1, NewEnabled=1, "
                        "NewPortMappingDescription=libportmap, NewLeaseDuration=3600) -> OK"));
  assert_true(logged(h, "DeletePortMapping(NewExternalPort=8000, NewProtocol=TCP) -> OK"));
}

/* Q7: the protocol goes out in upper case, UDP too. */
static void test_Q7_upper_case_protocol(void **state) {
  h_t *h = *state;
  h_up(h);
  mapped(h, map_req(h, PORTMAP_PROTO_UDP, 9000, 0, 600, 0, NULL));
  fake_upnp_request_t r;
  assert_true(last_request(h, "AddPortMapping", &r));
  assert_string_equal(r.proto, "UDP");
  assert_true(fake_upnp_find(h->f, "UDP", 9000, NULL));
  fake_upnp_stats_t s;
  fake_upnp_get_stats(h->f, &s);
  assert_int_equal(s.lower_case, 0);
}

/* Q8: never external port 0: the internal port, or the suggestion. */
static void test_Q8_never_external_port_zero(void **state) {
  h_t *h = *state;
  h_up(h);
  mapped(h, map_req(h, PORTMAP_PROTO_TCP, 9001, 0, 600, 0, NULL));
  fake_upnp_request_t r;
  assert_true(last_request(h, "AddPortMapping", &r));
  assert_string_equal(r.ext_port, "9001");
  const portmap_info_t *i = mapped(h, map_req(h, PORTMAP_PROTO_TCP, 9002, 7000, 600, 0, NULL));
  assert_int_equal(i->external_port, 7000);
  assert_true(fake_upnp_find(h->f, "TCP", 7000, NULL));
  fake_upnp_stats_t s;
  fake_upnp_get_stats(h->f, &s);
  assert_int_equal(s.port_zero, 0);
}

/* ---------- discovery ---------- */

/* Q1: the reply comes from another source port of the gateway. */
static void test_Q1_reply_from_other_port(void **state) {
  h_t *h = *state;
  fake_upnp_set_reply_other_port(h->f, 1);
  h_up(h);
  mapped(h, map_tcp(h, 8000, 600));
  assert_true(fake_upnp_find(h->f, "TCP", 8000, NULL));
}

/* Q2: a gateway that answers only the IGD:2 search target; every target is
 * searched with its own datagram. */
static void test_Q2_each_search_target(void **state) {
  h_t *h = *state;
  fake_upnp_set_only_st(h->f, IGD2);
  h_up(h);
  mapped(h, map_tcp(h, 8000, 600));
  char st[16][128];
  size_t n = fake_upnp_search_targets(h->f, st, 16);
  assert_true(n >= 4);
  int seen1 = 0, seen2 = 0, root = 0, dslf = 0;
  for (size_t i = 0; i < n && i < 16; i++) {
    seen1 |= strcmp(st[i], IGD1) == 0;
    seen2 |= strcmp(st[i], IGD2) == 0;
    root |= strcmp(st[i], "upnp:rootdevice") == 0;
    dslf |= strcmp(st[i], "urn:dslforum-org:device:InternetGatewayDevice:1") == 0;
    assert_string_not_equal(st[i], "ssdp:all");
  }
  assert_true(seen1 && seen2 && root && dslf);
  fake_upnp_request_t r;
  assert_true(last_request(h, "AddPortMapping", &r));
  assert_string_equal(r.service, "urn:schemas-upnp-org:service:WANIPConnection:2");
}

/* Q2 the other way: only IGD:1 answered by an IGDv2 box. */
static void test_Q2_igd1_only(void **state) {
  h_t *h = *state;
  fake_upnp_set_only_st(h->f, IGD1);
  h_up(h);
  mapped(h, map_tcp(h, 8000, 600));
}

/* Q3: a gateway that answers only multicast cannot be found on loopback,
 * because nothing is ever multicast to a loopback gateway. */
static void test_Q3_loopback_never_multicasts(void **state) {
  h_t *h = *state;
  fake_upnp_set_ignore_unicast(h->f, 1);
  h_up(h);
  portmap_probe_result_t r;
  assert_int_equal(portmap_probe_sync(h->c, 1000, &r), PORTMAP_OK);
  assert_int_equal(r.upnp.available, 0);
  assert_int_equal(r.upnp.error, PORTMAP_ERR_TIMEOUT);
  assert_int_equal(r.selected, PORTMAP_BACKEND_NONE);
  assert_true(h->trace_sent >= 4);
  assert_int_equal(h->trace_foreign, 0);
  /* a mapping fails the same way, with TIMEOUT */
  map_tcp(h, 8000, 600);
  RUN_UNTIL(h, h->n_ev >= 1);
  assert_int_equal(last_ev(h)->event, PORTMAP_EVENT_FAILED);
  assert_int_equal(last_ev(h)->info.status, PORTMAP_ERR_TIMEOUT);
  assert_int_equal(h->trace_foreign, 0);
}

/* Q4: replies from another host pointing at loopback, link-local or some
 * third host are never followed; the gateway's own device wins. */
static void test_Q4_rogue_replies_ignored(void **state) {
  h_t *h = *state;
  char loc[96];
  snprintf(loc, sizeof loc, "http://127.0.0.2:%u/rootDesc.xml", fake_upnp_http_port(h->f));
  fake_upnp_set_rogue(h->f, loc);
  h_up(h);
  mapped(h, map_tcp(h, 8000, 600));
  portmap_stats_t s;
  assert_int_equal(portmap_client_stats(h->c, &s), PORTMAP_OK);
  assert_true(s.malformed >= 1); /* LOCATION to loopback refused */
  fake_upnp_stats_t fs;
  fake_upnp_get_stats(h->f, &fs);
  assert_int_equal(fs.desc_gets, 1);
  assert_true(logged(h, "SSDP LOCATION refused"));
}

static void test_Q4_rogue_third_host(void **state) {
  h_t *h = *state;
  fake_upnp_set_rogue(h->f, "http://192.0.2.1:5000/rootDesc.xml");
  h_up(h);
  mapped(h, map_tcp(h, 8000, 600));
  portmap_stats_t s;
  assert_int_equal(portmap_client_stats(h->c, &s), PORTMAP_OK);
  assert_true(s.spoofed >= 1); /* another host's reply naming yet another host */
}

static void test_Q4_rogue_metadata_service(void **state) {
  h_t *h = *state;
  fake_upnp_set_rogue(h->f, "http://169.254.169.254/latest/meta-data/");
  h_up(h);
  mapped(h, map_tcp(h, 8000, 600));
  portmap_stats_t s;
  assert_int_equal(portmap_client_stats(h->c, &s), PORTMAP_OK);
  assert_true(s.malformed >= 1);
}

/* Q25: every reply three times, over the rootdevice grace window: one
 * candidate, one description fetch. */
static void test_Q25_duplicate_replies(void **state) {
  h_t *h = *state;
  fake_upnp_set_duplicates(h->f, 3);
  fake_upnp_set_only_st(h->f, "upnp:rootdevice");
  h_up(h);
  mapped(h, map_tcp(h, 8000, 600));
  fake_upnp_stats_t fs;
  fake_upnp_get_stats(h->f, &fs);
  assert_true(fs.ssdp_replies >= 3);
  assert_int_equal(fs.desc_gets, 1);
}

/* Q28: a TR-064 box found only through upnp:rootdevice; SOAP goes out with
 * its own dslforum service type. */
static void test_Q28_dslforum(void **state) {
  h_t *h = *state;
  fake_upnp_set_only_st(h->f, "upnp:rootdevice");
  h_up(h);
  const portmap_info_t *i = mapped(h, map_tcp(h, 8000, 600));
  assert_string_equal(i->external_address_str, "203.0.113.5");
  fake_upnp_request_t r;
  assert_true(last_request(h, "AddPortMapping", &r));
  assert_string_equal(r.service, "urn:dslforum-org:service:WANPPPConnection:1");
  assert_string_equal(r.path, "/upnp/control/WANPPPConn1");
  assert_int_equal(r.result, 0);
  portmap_probe_result_t p;
  assert_int_equal(portmap_probe_sync(h->c, 1000, &p), PORTMAP_OK);
  assert_int_equal(p.upnp.available, 1);
  assert_string_equal(p.upnp.service_type, "urn:dslforum-org:service:WANPPPConnection:1");
  assert_string_equal(p.upnp.device_name, "HG531 V1");
  assert_int_equal(p.upnp.igd_version, 1);
}

/* Q6: only WANPPPConnection. */
static void test_Q6_ppp_only(void **state) {
  h_t *h = *state;
  h_up(h);
  mapped(h, map_tcp(h, 8000, 600));
  fake_upnp_request_t r;
  assert_true(last_request(h, "AddPortMapping", &r));
  assert_string_equal(r.service, "urn:schemas-upnp-org:service:WANPPPConnection:1");
}

/* Q6: WANIPConnection before WANPPPConnection when both work, even when the
 * PPP one comes first in the description. */
static void test_Q6_ip_before_ppp(void **state) {
  h_t *h = *state;
  fake_upnp_set_service(h->f, 1, "Connected", "203.0.113.9");
  h_up(h);
  const portmap_info_t *i = mapped(h, map_tcp(h, 8000, 600));
  assert_string_equal(i->external_address_str, "203.0.113.9");
  fake_upnp_request_t r;
  assert_true(last_request(h, "AddPortMapping", &r));
  assert_string_equal(r.path, "/ctl/IPConn2");
}

/* Q29, Q5: of two WAN devices, the connected one, even when the preferred
 * type is disconnected. */
static void test_Q5_Q29_connected_service(void **state) {
  h_t *h = *state;
  h_up(h);
  const portmap_info_t *i = mapped(h, map_tcp(h, 8000, 600));
  assert_string_equal(i->external_address_str, "198.51.100.20");
  fake_upnp_request_t r;
  assert_true(last_request(h, "AddPortMapping", &r));
  assert_string_equal(r.path, "/ctl/PPPConn");
  assert_string_equal(r.service, "urn:schemas-upnp-org:service:WANPPPConnection:1");
  assert_int_equal(fake_upnp_count(h->f, "GetStatusInfo"), 2); /* both were asked */
}

/* Q5: connected with a public address before connected with a private one. */
static void test_Q5_public_before_private(void **state) {
  h_t *h = *state;
  fake_upnp_set_service(h->f, 1, "Connected", "100.64.0.7");
  h_up(h);
  const portmap_info_t *i = mapped(h, map_tcp(h, 8000, 600));
  assert_string_equal(i->external_address_str, "198.51.100.20");
  assert_int_equal(i->external_is_private, 0);
  fake_upnp_request_t r;
  assert_true(last_request(h, "AddPortMapping", &r));
  assert_string_equal(r.path, "/ctl/PPPConn");
}

/* ---------- probe ---------- */

static void test_probe_reports_igd(void **state) {
  h_t *h = *state;
  h_up(h);
  portmap_probe_result_t r;
  assert_int_equal(portmap_probe_sync(h->c, 1000, &r), PORTMAP_OK);
  assert_int_equal(r.selected, PORTMAP_BACKEND_UPNP);
  const portmap_probe_backend_t *u = &r.upnp;
  assert_int_equal(u->available, 1);
  assert_int_equal(u->error, PORTMAP_OK);
  char want[128];
  snprintf(want, sizeof want, "http://127.0.0.1:%u/rootDesc.xml", fake_upnp_http_port(h->f));
  assert_string_equal(u->location, want);
  snprintf(want, sizeof want, "http://127.0.0.1:%u/ctl/IPConn", fake_upnp_http_port(h->f));
  assert_string_equal(u->control_url, want);
  assert_string_equal(u->device_name, "OpenWrt router");
  assert_string_equal(u->service_type, "urn:schemas-upnp-org:service:WANIPConnection:1");
  assert_int_equal(u->igd_version, 1);
  assert_string_equal(u->connection_status, "Connected");
  assert_string_equal(u->external_address, "203.0.113.5");
  assert_int_equal(u->external_is_private, 0);
  assert_int_equal(u->gateway_result, -1);
  assert_true(u->rtt_ms < 300);
  assert_true(h->trace_sent >= 4 && h->trace_received >= 1);
}

/* IGDv2 with a URLBase and a relative controlURL without a leading '/'. */
static void test_probe_igd2_urlbase(void **state) {
  h_t *h = *state;
  h_up(h);
  portmap_probe_result_t r;
  assert_int_equal(portmap_probe_sync(h->c, 1000, &r), PORTMAP_OK);
  assert_int_equal(r.upnp.available, 1);
  assert_int_equal(r.upnp.igd_version, 2);
  assert_string_equal(r.upnp.device_name, "Gateway & Firewall");
  char want[128];
  snprintf(want, sizeof want, "http://127.0.0.1:%u/ctl/IPConn", fake_upnp_http_port(h->f));
  assert_string_equal(r.upnp.control_url, want);
}

/* Q12: 0.0.0.0 from GetExternalIPAddress is "no external address". */
static void test_Q12_bogus_external_address(void **state) {
  h_t *h = *state;
  fake_upnp_set_service(h->f, 0, NULL, "0.0.0.0");
  h_up(h);
  const portmap_info_t *i = mapped(h, map_tcp(h, 8000, 600));
  assert_string_equal(i->external_address_str, "0.0.0.0");
  assert_int_equal(i->external_is_private, 0);
  portmap_probe_result_t r;
  assert_int_equal(portmap_probe_sync(h->c, 1000, &r), PORTMAP_OK);
  assert_int_equal(r.upnp.available, 1);
  assert_string_equal(r.upnp.external_address, "");
  assert_true(logged(h, "no usable external address"));
}

static void test_Q12_loopback_external_address(void **state) {
  h_t *h = *state;
  fake_upnp_set_service(h->f, 0, NULL, "127.0.0.1");
  h_up(h);
  const portmap_info_t *i = mapped(h, map_tcp(h, 8000, 600));
  assert_string_equal(i->external_address_str, "0.0.0.0");
}

/* Q17: a private (CGN) external address is reported as such. */
static void test_Q17_private_external_address(void **state) {
  h_t *h = *state;
  fake_upnp_set_service(h->f, 0, NULL, "100.64.3.4");
  h_up(h);
  const portmap_info_t *i = mapped(h, map_tcp(h, 8000, 600));
  assert_string_equal(i->external_address_str, "100.64.3.4");
  assert_int_equal(i->external_is_private, 1);
  portmap_probe_result_t r;
  assert_int_equal(portmap_probe_sync(h->c, 1000, &r), PORTMAP_OK);
  assert_string_equal(r.upnp.external_address, "100.64.3.4");
  assert_int_equal(r.upnp.external_is_private, 1);
}

/* ---------- leases ---------- */

static void permanent_only(h_t *h, int code) {
  fake_upnp_set_permanent_only(h->f, code);
  h_up(h);
  const portmap_info_t *i = mapped(h, map_tcp(h, 8000, 3600));
  assert_int_equal(i->lifetime, 0); /* permanent */
  assert_int_equal(i->expires_in_ms, 0);
  fake_upnp_entry_t e;
  assert_true(fake_upnp_find(h->f, "TCP", 8000, &e));
  assert_int_equal(e.lease, 0);
  assert_int_equal(fake_upnp_count(h->f, "AddPortMapping"), 2); /* 3600 refused, then 0 */
  /* remembered for this gateway: the next one asks for 0 at once */
  mapped(h, map_tcp(h, 8001, 3600));
  assert_int_equal(fake_upnp_count(h->f, "AddPortMapping"), 3);
  fake_upnp_request_t r;
  assert_true(last_request(h, "AddPortMapping", &r));
  assert_string_equal(r.lease, "0");
  /* our own timer verifies them every 10 minutes; nothing to re-add */
  advance(h, 600u * 1000u + 10);
  RUN_UNTIL(h, count_ev(h, PORTMAP_EVENT_RENEWED) >= 2);
  assert_int_equal(count_ev(h, PORTMAP_EVENT_RENEWED), 2);
  assert_int_equal(fake_upnp_count(h->f, "GetSpecificPortMappingEntry"), 2);
  assert_int_equal(fake_upnp_count(h->f, "AddPortMapping"), 3);
}

/* Q9: OnlyPermanentLeasesSupported (MikroTik). */
static void test_Q9_permanent_only_725(void **state) {
  permanent_only(*state, 725);
}

/* Q9: Invalid Args for any lease (ARRIS). */
static void test_Q9_permanent_only_402(void **state) {
  permanent_only(*state, 402);
}

/* Q9, Q10: a permanent lease with PORTMAP_FLAG_ONCE is deleted by us when the
 * requested lifetime ends; it would never end by itself. */
static void test_Q9_Q10_permanent_once_deleted(void **state) {
  h_t *h = *state;
  fake_upnp_set_permanent_only(h->f, 725);
  h_up(h);
  const portmap_info_t *i =
      mapped(h, map_req(h, PORTMAP_PROTO_TCP, 8000, 0, 5, PORTMAP_FLAG_ONCE, NULL));
  assert_int_equal(i->lifetime, 0);
  assert_true(i->expires_in_ms > 4000 && i->expires_in_ms <= 5000);
  advance(h, 5000 + 10);
  RUN_UNTIL(h, h->n_ev >= 2);
  assert_int_equal(last_ev(h)->event, PORTMAP_EVENT_DELETED);
  assert_int_equal(fake_upnp_find(h->f, "TCP", 8000, NULL), 0);
}

static void test_once_leased_expires(void **state) {
  h_t *h = *state;
  h_up(h);
  mapped(h, map_req(h, PORTMAP_PROTO_TCP, 8000, 0, 2, PORTMAP_FLAG_ONCE, NULL));
  advance(h, 1500);
  assert_int_equal(h->n_ev, 1); /* no renewal */
  advance(h, 600);
  RUN_UNTIL(h, h->n_ev >= 2);
  assert_int_equal(last_ev(h)->event, PORTMAP_EVENT_DELETED);
  assert_int_equal(fake_upnp_count(h->f, "GetSpecificPortMappingEntry"), 0);
  assert_int_equal(fake_upnp_count(h->f, "AddPortMapping"), 1);
}

/* ---------- Q10 ---------- */

/* Q10: the fallible query (external address) comes before the add: right
 * after discovery, discovery's own query is that query (no second one);
 * later, the mapping asks again first. */
static void test_Q10_query_before_add(void **state) {
  h_t *h = *state;
  h_up(h);
  mapped(h, map_tcp(h, 8000, 600));
  fake_upnp_request_t log[16];
  size_t n = fake_upnp_requests(h->f, log, 16);
  assert_int_equal(n, 3);
  /* discovery: status + address; the mapping: the add */
  assert_string_equal(log[0].action, "GetStatusInfo");
  assert_string_equal(log[1].action, "GetExternalIPAddress");
  assert_string_equal(log[2].action, "AddPortMapping");
  advance(h, 2100); /* discovery's answer is no longer fresh */
  mapped(h, map_tcp(h, 8001, 600));
  n = fake_upnp_requests(h->f, log, 16);
  assert_int_equal(n, 5);
  assert_string_equal(log[3].action, "GetExternalIPAddress");
  assert_string_equal(log[4].action, "AddPortMapping");
}

/* Q10: an add that succeeds after the client gave up is deleted again. The
 * add is answered 300 ms after the 100 ms watchdog, so the worker is still
 * busy with it when the mapping gives up: whether the last straw is the
 * retry's watchdog (TIMEOUT) or the re-discovery queued behind the stuck
 * call (UNREACHABLE) is timing; that nothing stays behind is not. */
static void test_Q10_late_add_deleted(void **state) {
  h_t *h = *state;
  h->cfg.upnp_timeout_ms = 100;
  fake_upnp_set_delay_ms(h->f, 400, "AddPortMapping");
  h_up(h);
  map_tcp(h, 8000, 600);
  RUN_UNTIL(h, h->n_ev >= 1);
  assert_int_equal(last_ev(h)->event, PORTMAP_EVENT_FAILED);
  portmap_status_t st = last_ev(h)->info.status;
  assert_true(st == PORTMAP_ERR_TIMEOUT || st == PORTMAP_ERR_UNREACHABLE);
  RUN_UNTIL(h, fake_upnp_count(h->f, "AddPortMapping") >= 1 &&
                   fake_upnp_count(h->f, "DeletePortMapping") >= 1 &&
                   !fake_upnp_find(h->f, "TCP", 8000, NULL));
  assert_true(fake_upnp_count(h->f, "AddPortMapping") >= 1);
  assert_true(fake_upnp_count(h->f, "DeletePortMapping") >= 1);
  assert_int_equal(fake_upnp_find(h->f, "TCP", 8000, NULL), 0);
  assert_true(logged(h, "-> timed out"));
  assert_true(logged(h, "that no mapping owns (Q10)"));
}

/* Q10: revoked while the add is in flight: the add is undone. */
static void test_Q10_revoke_during_add(void **state) {
  h_t *h = *state;
  fake_upnp_set_delay_ms(h->f, 200, "AddPortMapping");
  h_up(h);
  portmap_mapping_t *m = map_tcp(h, 8000, 600);
  /* the add reached the gateway, which sits on it */
  RUN_UNTIL(h, logged(h, "upnp: using") && fake_upnp_pending(h->f) >= 1);
  assert_int_equal(h->n_ev, 0);
  assert_int_equal(portmap_mapping_revoke(m), PORTMAP_OK);
  RUN_UNTIL(h, h->n_ev >= 1);
  assert_int_equal(last_ev(h)->event, PORTMAP_EVENT_DELETED);
  assert_int_equal(fake_upnp_count(h->f, "AddPortMapping"), 1);
  assert_int_equal(fake_upnp_count(h->f, "DeletePortMapping"), 1);
  assert_int_equal(fake_upnp_find(h->f, "TCP", 8000, NULL), 0);
}

/* Q10: freeing the client deletes every mapping it made. */
static void test_Q10_client_free_deletes(void **state) {
  h_t *h = *state;
  h_up(h);
  mapped(h, map_tcp(h, 8000, 600));
  mapped(h, map_req(h, PORTMAP_PROTO_UDP, 8001, 0, 600, 0, NULL));
  mapped(h, map_tcp(h, 8002, 600));
  assert_int_equal(fake_upnp_entries(h->f, NULL, 0), 3);
  assert_int_equal(portmap_client_free(h->c), PORTMAP_OK);
  h->c = NULL;
  assert_int_equal(fake_upnp_entries(h->f, NULL, 0), 0);
  assert_int_equal(count_ev(h, PORTMAP_EVENT_DELETED), 3);
}

/* ---------- Q11 ---------- */

static void test_Q11_conflict_718(void **state) {
  h_t *h = *state;
  fake_upnp_add_conflict(h->f, 8000, 718);
  h_up(h);
  const portmap_info_t *i = mapped(h, map_tcp(h, 8000, 600));
  uint16_t port = i->external_port;
  assert_int_not_equal(port, 8000);
  assert_true(port >= 1024);
  assert_int_equal(i->gateway_result, 0);
  assert_true(fake_upnp_find(h->f, "TCP", port, NULL));
  assert_int_equal(fake_upnp_count(h->f, "AddPortMapping"), 2);
  /* stable per host and port: another client of this host picks the same */
  portmap_client_t *c2 = NULL;
  assert_int_equal(portmap_client_new(&h->cfg, &c2), PORTMAP_OK);
  portmap_client_t *c1 = h->c;
  h->c = c2;
  const portmap_info_t *j = mapped(h, map_tcp(h, 8000, 600));
  assert_int_equal(j->external_port, port);
  portmap_client_free(c2);
  h->c = c1;
}

static void test_Q11_conflict_501_and_729(void **state) {
  h_t *h = *state;
  fake_upnp_add_conflict(h->f, 8000, 501);
  fake_upnp_add_conflict(h->f, 8001, 729);
  h_up(h);
  assert_int_not_equal(mapped(h, map_tcp(h, 8000, 600))->external_port, 8000);
  assert_int_not_equal(mapped(h, map_tcp(h, 8001, 600))->external_port, 8001);
}

/* Q11 on IGDv2: the gateway picks a free port with AddAnyPortMapping. */
static void test_Q11_igd2_add_any(void **state) {
  h_t *h = *state;
  fake_upnp_add_conflict(h->f, 8000, 718);
  h_up(h);
  const portmap_info_t *i = mapped(h, map_tcp(h, 8000, 600));
  assert_int_equal(i->external_port, 8001);
  assert_int_equal(fake_upnp_count(h->f, "AddAnyPortMapping"), 1);
  assert_true(fake_upnp_find(h->f, "TCP", 8001, NULL));
}

/* Q11: bounded retries. */
static void test_Q11_bounded_retries(void **state) {
  h_t *h = *state;
  fake_upnp_add_conflict(h->f, 0, 718); /* every port */
  h_up(h);
  map_tcp(h, 8000, 600);
  RUN_UNTIL(h, h->n_ev >= 1);
  assert_int_equal(last_ev(h)->event, PORTMAP_EVENT_FAILED);
  assert_int_equal(last_ev(h)->info.status, PORTMAP_ERR_REFUSED);
  assert_int_equal(last_ev(h)->info.gateway_result, 718);
  assert_int_equal(fake_upnp_count(h->f, "AddPortMapping"), 9);
}

/* ---------- Q13, Q14 ---------- */

/* Q13: the control port moves (reboot): refused twice, then found again. */
static void test_Q13_rediscover_after_refused(void **state) {
  h_t *h = *state;
  fake_upnp_move_after(h->f, 2); /* after discovery's two SOAP requests */
  h_up(h);
  const portmap_info_t *i = mapped(h, map_tcp(h, 8000, 600));
  assert_int_equal(i->external_port, 8000);
  fake_upnp_stats_t s;
  fake_upnp_get_stats(h->f, &s);
  assert_int_equal(s.moves, 1);
  assert_int_equal(s.desc_gets, 2);
  assert_int_equal(s.msearch, 8); /* two rounds of four */
  assert_true(fake_upnp_find(h->f, "TCP", 8000, NULL));
  assert_true(logged(h, "looking for the gateway again (Q13)"));
}

static void test_Q13_renewal_after_move(void **state) {
  h_t *h = *state;
  h_up(h);
  mapped(h, map_tcp(h, 8000, 600));
  fake_upnp_move_now(h->f);
  advance(h, 300u * 1000u + 10);
  RUN_UNTIL(h, h->n_ev >= 2);
  assert_int_equal(last_ev(h)->event, PORTMAP_EVENT_RENEWED);
  fake_upnp_stats_t s;
  fake_upnp_get_stats(h->f, &s);
  assert_int_equal(s.desc_gets, 2);
}

/* Q14: the table was wiped: the renewal finds the entry gone and adds it. */
static void test_Q14_wiped_table(void **state) {
  h_t *h = *state;
  h_up(h);
  mapped(h, map_tcp(h, 8000, 7200));
  fake_upnp_wipe(h->f);
  advance(h, 3600u * 1000u + 10);
  RUN_UNTIL(h, h->n_ev >= 2);
  assert_int_equal(last_ev(h)->event, PORTMAP_EVENT_RENEWED);
  assert_true(fake_upnp_find(h->f, "TCP", 8000, NULL));
  assert_true(logged(h, "vanished from the gateway"));
}

/* Q14: after the wipe someone else took the port: a new one, CHANGED. */
static void test_Q14_port_taken_after_wipe(void **state) {
  h_t *h = *state;
  h_up(h);
  mapped(h, map_tcp(h, 8000, 600));
  fake_upnp_wipe(h->f);
  assert_int_equal(fake_upnp_add_entry(h->f, "TCP", 8000, "192.168.1.50", 22, "ssh", 0), 0);
  advance(h, 300u * 1000u + 10);
  RUN_UNTIL(h, h->n_ev >= 2);
  assert_int_equal(last_ev(h)->event, PORTMAP_EVENT_CHANGED);
  uint16_t port = last_ev(h)->info.external_port;
  assert_int_not_equal(port, 8000);
  fake_upnp_entry_t e;
  assert_true(fake_upnp_find(h->f, "TCP", 8000, &e));
  assert_string_equal(e.client, "192.168.1.50"); /* untouched */
  assert_true(fake_upnp_find(h->f, "TCP", port, &e));
  assert_string_equal(e.client, "127.0.0.1");
}

/* Q14 with permanent leases: the 10-minute verification puts it back. */
static void test_Q14_Q9_permanent_wiped(void **state) {
  h_t *h = *state;
  fake_upnp_set_permanent_only(h->f, 725);
  h_up(h);
  mapped(h, map_tcp(h, 8000, 3600));
  fake_upnp_wipe(h->f);
  advance(h, 600u * 1000u + 10);
  RUN_UNTIL(h, h->n_ev >= 2);
  assert_int_equal(last_ev(h)->event, PORTMAP_EVENT_RENEWED);
  fake_upnp_entry_t e;
  assert_true(fake_upnp_find(h->f, "TCP", 8000, &e));
  assert_int_equal(e.lease, 0);
}

/* A leased mapping the gateway cannot renew is LOST at its expiry, and
 * comes back when the gateway does. */
static void test_lost_then_back(void **state) {
  h_t *h = *state;
  h_up(h);
  mapped(h, map_tcp(h, 8000, 4));
  fake_upnp_move_now(h->f);
  fake_upnp_set_ignore_unicast(h->f, 1); /* and SSDP is silent too */
  advance(h, 2000 + 10);                 /* the renewal fails */
  RUN_UNTIL(h, log_count(h, "no usable IGD") >= 1);
  assert_int_equal(h->n_ev, 1);
  advance(h, 2000 + 10); /* the retry fails too, and the lease ends */
  RUN_UNTIL(h, count_ev(h, PORTMAP_EVENT_LOST) >= 1 && log_count(h, "no usable IGD") >= 2);
  assert_int_equal(last_ev(h)->event, PORTMAP_EVENT_LOST);
  assert_int_equal(last_ev(h)->info.lifetime, 0);
  assert_int_equal(last_ev(h)->info.status, PORTMAP_ERR_TIMEOUT);
  fake_upnp_set_ignore_unicast(h->f, 0);
  advance(h, 30000 + 10);
  RUN_UNTIL(h, h->n_ev >= 3);
  assert_int_equal(last_ev(h)->event, PORTMAP_EVENT_RENEWED);
  assert_int_equal(last_ev(h)->info.lifetime, 4);
}

/* ---------- Q20 ---------- */

/* Q20: SOAP is serialised per gateway, even with several mappings at once. */
static void test_Q20_soap_serialised(void **state) {
  h_t *h = *state;
  fake_upnp_set_delay_ms(h->f, 20, NULL);
  h_up(h);
  for (uint16_t p = 0; p < 4; p++)
    map_tcp(h, (uint16_t)(8000 + p), 600);
  RUN_UNTIL(h, h->n_ev >= 4);
  assert_int_equal(count_ev(h, PORTMAP_EVENT_MAPPED), 4);
  fake_upnp_stats_t s;
  fake_upnp_get_stats(h->f, &s);
  assert_int_equal(s.overlaps, 0);
  assert_int_equal(s.max_pending, 1);
  assert_int_equal(s.soap, 2 + 4); /* discovery, then one add each */
}

/* ---------- list, delete, options ---------- */

static void test_list(void **state) {
  h_t *h = *state;
  h_up(h);
  mapped(h, map_req(h, PORTMAP_PROTO_TCP, 8000, 0, 600, 0, "web"));
  mapped(h, map_req(h, PORTMAP_PROTO_UDP, 9000, 0, 900, 0, NULL));
  assert_int_equal(fake_upnp_add_entry(h->f, "TCP", 2222, "192.168.1.50", 22, "ssh", 0), 0);
  portmap_list_entry_t e[8];
  size_t n = 0;
  assert_int_equal(portmap_list_sync(h->c, 1000, e, 8, &n), PORTMAP_OK);
  assert_int_equal(n, 3);
  assert_int_equal(e[0].protocol, PORTMAP_PROTO_TCP);
  assert_int_equal(e[0].external_port, 8000);
  assert_string_equal(e[0].internal_client, "127.0.0.1");
  assert_int_equal(e[0].internal_port, 8000);
  assert_string_equal(e[0].description, "web");
  assert_int_equal(e[0].lease, 600);
  assert_int_equal(e[0].enabled, 1);
  assert_string_equal(e[0].remote_host, "");
  assert_int_equal(e[1].protocol, PORTMAP_PROTO_UDP);
  assert_int_equal(e[1].external_port, 9000);
  assert_string_equal(e[1].description, "libportmap");
  assert_int_equal(e[2].external_port, 2222);
  assert_string_equal(e[2].internal_client, "192.168.1.50");
  assert_int_equal(e[2].internal_port, 22);
  assert_int_equal(e[2].lease, 0);
  /* a short array: the total still comes back */
  assert_int_equal(portmap_list_sync(h->c, 1000, e, 1, &n), PORTMAP_OK);
  assert_int_equal(n, 3);
}

static void test_list_empty_before_discovery(void **state) {
  h_t *h = *state;
  h_up(h);
  portmap_list_entry_t e[4];
  size_t n = 99;
  assert_int_equal(portmap_list_sync(h->c, 1000, e, 4, &n), PORTMAP_OK);
  assert_int_equal(n, 0);
}

static void test_flag_delete_ours(void **state) {
  h_t *h = *state;
  assert_int_equal(fake_upnp_add_entry(h->f, "TCP", 8000, "127.0.0.1", 8000, "earlier", 0), 0);
  h_up(h);
  map_req(h, PORTMAP_PROTO_TCP, 8000, 8000, 0, PORTMAP_FLAG_DELETE, NULL);
  RUN_UNTIL(h, h->n_ev >= 1);
  assert_int_equal(last_ev(h)->event, PORTMAP_EVENT_DELETED);
  assert_int_equal(fake_upnp_find(h->f, "TCP", 8000, NULL), 0);
  /* nothing there: done as well */
  map_req(h, PORTMAP_PROTO_TCP, 8000, 8000, 0, PORTMAP_FLAG_DELETE, NULL);
  RUN_UNTIL(h, h->n_ev >= 2);
  assert_int_equal(last_ev(h)->event, PORTMAP_EVENT_DELETED);
}

static void test_flag_delete_not_ours(void **state) {
  h_t *h = *state;
  assert_int_equal(fake_upnp_add_entry(h->f, "TCP", 8000, "192.168.1.50", 8000, "theirs", 0), 0);
  h_up(h);
  map_req(h, PORTMAP_PROTO_TCP, 8000, 8000, 0, PORTMAP_FLAG_DELETE, NULL);
  RUN_UNTIL(h, h->n_ev >= 1);
  assert_int_equal(last_ev(h)->event, PORTMAP_EVENT_FAILED);
  assert_int_equal(last_ev(h)->info.status, PORTMAP_ERR_REFUSED);
  assert_true(fake_upnp_find(h->f, "TCP", 8000, NULL));
  assert_int_equal(fake_upnp_count(h->f, "DeletePortMapping"), 0);
}

/* What UPnP cannot express fails at once with UNSUPPORTED. */
static void test_unsupported_options(void **state) {
  h_t *h = *state;
  h_up(h);
  portmap_request_t req;
  portmap_mapping_t *m = NULL;

  portmap_request_init(&req);
  req.internal_port = 8000;
  req.peer_address = "198.51.100.7";
  req.peer_port = 443;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, &m), PORTMAP_ERR_UNSUPPORTED);

  portmap_filter_t f = {"198.51.100.7", 32, 0};
  portmap_request_init(&req);
  req.internal_port = 8000;
  req.filters = &f;
  req.n_filters = 1;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, &m), PORTMAP_ERR_UNSUPPORTED);

  portmap_request_init(&req);
  req.internal_port = 8000;
  req.third_party = "127.0.0.9";
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, &m), PORTMAP_ERR_UNSUPPORTED);

  portmap_request_init(&req);
  req.internal_port = 8000;
  req.flags = PORTMAP_FLAG_PREFER_FAILURE;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, &m), PORTMAP_ERR_UNSUPPORTED);

  portmap_request_init(&req);
  req.internal_port = 8000;
  req.ipv6 = 1;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, &m), PORTMAP_ERR_UNSUPPORTED);

  portmap_request_init(&req);
  req.protocol = 0;
  req.internal_port = 0;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, &m), PORTMAP_ERR_UNSUPPORTED);

  portmap_request_init(&req);
  req.protocol = 132; /* SCTP */
  req.internal_port = 8000;
  assert_int_equal(portmap_map(h->c, &req, h_cb, h, &m), PORTMAP_ERR_UNSUPPORTED);

  assert_null(m);
  pump(h, 0);
  assert_int_equal(h->n_ev, 0);
  assert_int_equal(fake_upnp_count(h->f, NULL), 0);
}

/* The description is escaped: it cannot inject SOAP arguments. */
static void test_description_escaped(void **state) {
  h_t *h = *state;
  h_up(h);
  const char *d = "</NewPortMappingDescription><NewInternalClient>10.9.9.9</NewInternalClient>";
  mapped(h, map_req(h, PORTMAP_PROTO_TCP, 8000, 0, 600, 0, d));
  fake_upnp_entry_t e;
  assert_true(fake_upnp_find(h->f, "TCP", 8000, &e));
  assert_string_equal(e.desc, d);
  assert_string_equal(e.client, "127.0.0.1");
  mapped(h, map_req(h, PORTMAP_PROTO_TCP, 8001, 0, 600, 0, "a<b>&\"c'd \xc3\xa9"));
  assert_true(fake_upnp_find(h->f, "TCP", 8001, &e));
  assert_string_equal(e.desc, "a<b>&\"c'd \xc3\xa9");
}

/* No SSDP reply at all: the mapping fails with TIMEOUT within the budget. */
static void test_no_gateway_answer(void **state) {
  h_t *h = *state;
  fake_upnp_set_ignore_unicast(h->f, 1);
  h_up(h);
  uint64_t t0 = real_ms();
  map_tcp(h, 8000, 600);
  RUN_UNTIL(h, h->n_ev >= 1);
  assert_int_equal(last_ev(h)->event, PORTMAP_EVENT_FAILED);
  assert_int_equal(last_ev(h)->info.status, PORTMAP_ERR_TIMEOUT);
  assert_true(real_ms() - t0 < 1000);
}

/* The gateway answers SSDP but its description cannot be fetched: UNREACHABLE. */
static void test_description_unreachable(void **state) {
  h_t *h = *state;
  fake_upnp_set_location(h->f, "http://127.0.0.1:1/rootDesc.xml"); /* a closed port */
  h_up(h);
  portmap_probe_result_t r;
  assert_int_equal(portmap_probe_sync(h->c, 1000, &r), PORTMAP_OK);
  assert_int_equal(r.upnp.available, 0);
  assert_int_equal(r.upnp.error, PORTMAP_ERR_UNREACHABLE);
  assert_string_equal(r.upnp.location, "http://127.0.0.1:1/rootDesc.xml");
  map_tcp(h, 8000, 600);
  RUN_UNTIL(h, h->n_ev >= 1);
  assert_int_equal(last_ev(h)->event, PORTMAP_EVENT_FAILED);
  assert_int_equal(last_ev(h)->info.status, PORTMAP_ERR_UNREACHABLE);
}

/* A UPnP device that is no Internet gateway (a media server, a printer, a
 * switch's management): the description reads fine but lists no WAN
 * connection service. Nothing is unreachable: say what it is. */
static const char DESC_NO_WAN[] =
    "<?xml version=\"1.0\"?>\r\n"
    "<root xmlns=\"urn:schemas-upnp-org:device-1-0\"><specVersion><major>1</major><minor>0"
    "</minor></specVersion><device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1"
    "</deviceType><friendlyName>No WAN</friendlyName><UDN>uuid:0000aaaa-0000-4000-8000-000000000001"
    "</UDN><serviceList><service><serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:1"
    "</serviceType><serviceId>urn:upnp-org:serviceId:L3Forwarding1</serviceId><SCPDURL>/L3F.xml"
    "</SCPDURL><controlURL>/ctl/L3F</controlURL><eventSubURL>/evt/L3F</eventSubURL></service>"
    "</serviceList></device></root>\r\n";

static void test_description_without_wan_service(void **state) {
  h_t *h = *state;
  fake_upnp_set_description(h->f, DESC_NO_WAN);
  h_up(h);
  portmap_probe_result_t r;
  assert_int_equal(portmap_probe_sync(h->c, 1000, &r), PORTMAP_OK);
  assert_int_equal(r.upnp.available, 0);
  assert_int_not_equal(r.upnp.error, PORTMAP_ERR_UNREACHABLE);
  assert_int_equal(r.upnp.error, PORTMAP_ERR_NO_IGD);
  map_tcp(h, 8000, 600);
  RUN_UNTIL(h, h->n_ev >= 1);
  assert_int_equal(last_ev(h)->event, PORTMAP_EVENT_FAILED);
  assert_int_equal(last_ev(h)->info.status, PORTMAP_ERR_NO_IGD);
}

/* GetStatusInfo's answer is NewConnectionStatus; the uptime is not needed.
 * Tailscale's recorded router spells it NewUpTime, some send none. */
static void test_status_legacy_uptime_spelling(void **state) {
  h_t *h = *state;
  fake_upnp_set_uptime_element(h->f, "NewUpTime");
  h_up(h);
  portmap_probe_result_t r;
  assert_int_equal(portmap_probe_sync(h->c, 1000, &r), PORTMAP_OK);
  assert_int_equal(r.upnp.available, 1);
  assert_string_equal(r.upnp.connection_status, "Connected");
}

static void test_status_without_uptime(void **state) {
  h_t *h = *state;
  fake_upnp_set_uptime_element(h->f, "");
  h_up(h);
  portmap_probe_result_t r;
  assert_int_equal(portmap_probe_sync(h->c, 1000, &r), PORTMAP_OK);
  assert_string_equal(r.upnp.connection_status, "Connected");
}

/* ---------- a gateway that never finishes (the worker's bounds) ---------- */

static fake_upnp_stats_t stats(h_t *h) {
  fake_upnp_stats_t st;
  fake_upnp_get_stats(h->f, &st);
  return st;
}

/* Wait in real time (no client to pump) until cond holds or ms pass. */
#define WAIT_REAL(cond, ms)                                                                        \
  do {                                                                                             \
    uint64_t end_ = real_ms() + (ms);                                                              \
    while (!(cond) && real_ms() < end_)                                                            \
      (void)poll(NULL, 0, 5);                                                                      \
  } while (0)

/* Free the client and return how long it took (real monotonic time). */
static uint64_t timed_free(h_t *h, portmap_status_t *status) {
  uint64_t t0 = real_ms();
  *status = portmap_client_free(h->c);
  uint64_t took = real_ms() - t0;
  h->c = NULL;
  return took;
}

/* The add trickles one octet every 200 ms for ever: the worker is stuck in
 * it when the client goes. portmap_client_free() waits destroy_timeout_ms
 * for the revoke, then returns at once, whatever the worker does (an add
 * may take UPNP_LATE_ADD_MS past the watchdog in the worker, Q10; the
 * teardown's fake_upnp_free() ends it sooner). */
static void test_free_while_add_stuck(void **state) {
  h_t *h = *state;
  h->cfg.destroy_timeout_ms = 200;
  h->cfg.upnp_timeout_ms = 300;
  fake_upnp_set_trickle(h->f, "AddPortMapping", 200);
  h_up(h);
  map_tcp(h, 8000, 600);
  RUN_UNTIL(h, stats(h).trickles >= 1);
  assert_int_equal(stats(h).trickles, 1);
  portmap_status_t st;
  uint64_t took = timed_free(h, &st);
  print_message("portmap_client_free() took %llu ms with the worker stuck in an add\n",
                (unsigned long long)took);
  assert_true(took < 200 + 300);
  assert_int_equal(st, PORTMAP_ERR_TIMEOUT); /* the revoke was never confirmed */
  assert_int_equal(last_ev(h)->event, PORTMAP_EVENT_FAILED);
  assert_int_equal(last_ev(h)->info.status, PORTMAP_ERR_CANCELLED);
  assert_int_equal(stats(h).hangups, 0); /* the orphaned worker still waits for it */
  assert_int_equal(fake_upnp_count(h->f, "AddPortMapping"), 0);
}

/* The revoke's delete trickles: free returns after destroy_timeout_ms; the
 * orphaned worker gives that delete up at its deadline (upnp_timeout_ms,
 * not miniupnpc's 5 s per read), then sends the clean-up delete it was
 * handed (Q10), gives that up too, and frees itself. */
static void test_free_while_delete_stuck(void **state) {
  h_t *h = *state;
  h->cfg.destroy_timeout_ms = 200;
  h->cfg.upnp_timeout_ms = 400;
  h_up(h);
  mapped(h, map_tcp(h, 8000, 600));
  fake_upnp_set_trickle(h->f, "DeletePortMapping", 200);
  uint64_t t0 = real_ms();
  portmap_status_t st;
  uint64_t took = timed_free(h, &st);
  print_message("portmap_client_free() took %llu ms with the worker stuck in a delete\n",
                (unsigned long long)took);
  assert_true(took < 200 + 300);
  assert_int_equal(st, PORTMAP_ERR_TIMEOUT);
  WAIT_REAL(stats(h).hangups >= 2, 1500);
  uint64_t both = real_ms() - t0;
  assert_int_equal(stats(h).trickles, 2);
  assert_int_equal(stats(h).hangups, 2);
  assert_true(both >= 2 * 400 - 50 && both < 2 * 400 + 400);
}

/* The same gateway, healthy again: a new client maps at once, while the
 * first client's worker is still stuck in its add. */
static void test_next_client_after_stuck_worker(void **state) {
  h_t *h = *state;
  h->cfg.destroy_timeout_ms = 200;
  h->cfg.upnp_timeout_ms = 500;
  fake_upnp_set_trickle(h->f, "AddPortMapping", 200);
  h_up(h);
  map_tcp(h, 8000, 600);
  RUN_UNTIL(h, stats(h).trickles >= 1);
  portmap_status_t st;
  assert_true(timed_free(h, &st) < 200 + 300);
  fake_upnp_set_trickle(h->f, NULL, 0);
  h->n_ev = 0;
  h_up(h); /* while the old worker is still stuck */
  const portmap_info_t *i = mapped(h, map_tcp(h, 8000, 600));
  assert_int_equal(i->external_port, 8000);
  assert_true(fake_upnp_find(h->f, "TCP", 8000, NULL));
  assert_int_equal(stats(h).hangups, 0); /* the old worker is still in its add */
}

/* Q10 at the end: the add is answered (successfully) 500 ms late, after
 * free gave up on it; the orphaned worker undoes it on its own. */
static void test_orphan_worker_undoes_late_add(void **state) {
  h_t *h = *state;
  h->cfg.destroy_timeout_ms = 200;
  h->cfg.upnp_timeout_ms = 1000;
  fake_upnp_set_delay_ms(h->f, 500, "AddPortMapping");
  h_up(h);
  map_tcp(h, 8000, 600);
  RUN_UNTIL(h, logged(h, "upnp: using") && fake_upnp_pending(h->f) >= 1); /* the add is out */
  portmap_status_t st;
  uint64_t took = timed_free(h, &st);
  assert_true(took < 200 + 300);
  assert_int_equal(st, PORTMAP_ERR_TIMEOUT);
  WAIT_REAL(fake_upnp_count(h->f, "AddPortMapping") >= 1 &&
                fake_upnp_count(h->f, "DeletePortMapping") >= 1,
            1500);
  assert_int_equal(fake_upnp_count(h->f, "AddPortMapping"), 1);
  assert_int_equal(fake_upnp_count(h->f, "DeletePortMapping"), 1);
  assert_int_equal(fake_upnp_find(h->f, "TCP", 8000, NULL), 0);
}

void portmap_client_gateway_changed(portmap_client_t *c, int have4, const uint8_t gw4[16],
                                    int have6, const uint8_t gw6[16], unsigned scope6,
                                    uint64_t now);

/* B6 with a stuck worker: the core's gateway change (destroy + create on
 * the scheduler's thread, lock held) returns at once, and the mapping is
 * made again through the new backend state. */
static void test_gateway_change_while_stuck(void **state) {
  h_t *h = *state;
  h->cfg.upnp_timeout_ms = 300;
  fake_upnp_set_trickle(h->f, "AddPortMapping", 200);
  h_up(h);
  map_tcp(h, 8000, 600);
  RUN_UNTIL(h, stats(h).trickles >= 1);
  assert_int_equal(stats(h).trickles, 1);
  const uint8_t gw[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1};
  fake_upnp_set_trickle(h->f, NULL, 0);
  uint64_t t0 = real_ms();
  /* an IPv4 change (here: the same address again, as after a new local
   * address); the IPv6 default route, if the host has one, stays */
  portmap_client_gateway_changed(h->c, 1, gw, h->c->have_gateway6, h->c->gateway6,
                                 h->c->gateway6_scope, h_clock(h));
  uint64_t took = real_ms() - t0;
  print_message("the gateway change took %llu ms with the worker stuck\n",
                (unsigned long long)took);
  assert_true(took < 50);
  RUN_UNTIL(h, h->n_ev >= 1);
  assert_int_equal(last_ev(h)->event, PORTMAP_EVENT_MAPPED);
  assert_true(fake_upnp_find(h->f, "TCP", 8000, NULL));
  assert_int_equal(stats(h).hangups, 0); /* the old worker is still in its add */
}

/* A query (here the description) is dropped at destroy: the worker leaves
 * at once and is joined, so its socket is closed when free returns. */
static void test_free_during_trickled_description(void **state) {
  h_t *h = *state;
  h->cfg.destroy_timeout_ms = 200;
  h->cfg.upnp_timeout_ms = 1500;
  fake_upnp_set_trickle(h->f, "rootDesc", 200);
  h_up(h);
  map_tcp(h, 8000, 600); /* discovery: the description is the first call */
  RUN_UNTIL(h, stats(h).trickles >= 1);
  assert_int_equal(stats(h).trickles, 1);
  portmap_status_t st;
  uint64_t took = timed_free(h, &st);
  assert_int_equal(st, PORTMAP_OK);
  assert_true(took < 150);
  WAIT_REAL(stats(h).hangups >= 1, 200); /* the fake sees it within its 5 ms loop */
  assert_int_equal(stats(h).hangups, 1);
}

/* Every exchange ends at upnp_timeout_ms: a trickled GetStatusInfo fails
 * discovery in time, and the worker is free for the next call at once. */
static void test_trickled_soap_bounded(void **state) {
  h_t *h = *state;
  h->cfg.upnp_timeout_ms = 300;
  fake_upnp_set_trickle(h->f, "GetStatusInfo", 200);
  h_up(h);
  portmap_probe_result_t r;
  uint64_t t0 = real_ms();
  assert_int_equal(portmap_probe_sync(h->c, 1500, &r), PORTMAP_OK);
  assert_int_equal(r.upnp.available, 0);
  RUN_UNTIL(h, stats(h).hangups >= 1);
  assert_int_equal(stats(h).hangups, 1);
  assert_true(real_ms() - t0 < 300 + 400);
  fake_upnp_set_trickle(h->f, NULL, 0);
  mapped(h, map_tcp(h, 8000, 600));
  assert_true(fake_upnp_find(h->f, "TCP", 8000, NULL));
}

/* Q10 at the end: a delete still unanswered when destroy_timeout_ms ends
 * goes on in the orphaned worker, and so does the clean-up delete queued
 * behind it; free does not wait for either. */
static void test_orphan_worker_sends_deletes(void **state) {
  h_t *h = *state;
  h->cfg.destroy_timeout_ms = 200;
  h->cfg.upnp_timeout_ms = 1000;
  h_up(h);
  mapped(h, map_tcp(h, 8000, 600));
  fake_upnp_set_delay_ms(h->f, 400, "DeletePortMapping");
  portmap_status_t st;
  uint64_t took = timed_free(h, &st);
  assert_true(took < 200 + 300);
  assert_int_equal(st, PORTMAP_ERR_TIMEOUT);
  assert_true(fake_upnp_find(h->f, "TCP", 8000, NULL)); /* not yet */
  WAIT_REAL(fake_upnp_count(h->f, "DeletePortMapping") >= 2, 1500);
  assert_int_equal(fake_upnp_count(h->f, "DeletePortMapping"), 2);
  assert_int_equal(fake_upnp_find(h->f, "TCP", 8000, NULL), 0);
}

/* An oversized description (1 MiB, announced by Content-Length) is refused
 * from its headers: the probe reports an error and the fake could not hand
 * the kernel much more than its and our socket buffers. */
static void test_oversized_description_with_length(void **state) {
  h_t *h = *state;
  fake_upnp_set_big_description(h->f, 1024u * 1024u, 1);
  h_up(h);
  portmap_probe_result_t r;
  assert_int_equal(portmap_probe_sync(h->c, 1000, &r), PORTMAP_OK);
  assert_int_equal(r.upnp.available, 0);
  assert_int_equal(r.upnp.error, PORTMAP_ERR_UNREACHABLE);
  assert_true(logged(h, "(reply too large)"));
  WAIT_REAL(stats(h).hangups >= 1, 500);
  print_message("the fake sent %zu of 1048576 octets\n", stats(h).big_sent);
  assert_int_equal(stats(h).hangups, 1);
  assert_true(stats(h).big_sent < 512u * 1024u);
}

/* Without Content-Length the body is read up to the cap, then refused. */
static void test_oversized_description_unframed(void **state) {
  h_t *h = *state;
  fake_upnp_set_big_description(h->f, 4u * 1024u * 1024u, 0);
  h_up(h);
  portmap_probe_result_t r;
  assert_int_equal(portmap_probe_sync(h->c, 1000, &r), PORTMAP_OK);
  assert_int_equal(r.upnp.available, 0);
  assert_true(logged(h, "(reply too large)"));
  WAIT_REAL(stats(h).hangups >= 1, 500);
  print_message("the fake sent %zu of 4194304 octets\n", stats(h).big_sent);
  assert_int_equal(stats(h).hangups, 1);
  assert_true(stats(h).big_sent < 2u * 1024u * 1024u);
}

/* Replies in the chunked coding (extension, trailer) work end to end. */
static void test_chunked_replies(void **state) {
  h_t *h = *state;
  fake_upnp_set_chunked(h->f, 1);
  h_up(h);
  portmap_mapping_t *m = map_tcp(h, 8000, 3600);
  const portmap_info_t *i = mapped(h, m);
  assert_string_equal(i->external_address_str, "203.0.113.5");
  assert_int_equal(portmap_mapping_revoke(m), PORTMAP_OK);
  RUN_UNTIL(h, h->n_ev >= 2);
  assert_int_equal(last_ev(h)->event, PORTMAP_EVENT_DELETED);
  assert_int_equal(fake_upnp_find(h->f, "TCP", 8000, NULL), 0);
}

/* ---------- driving modes ---------- */

typedef struct tsync {
  pthread_mutex_t mu;
  int n;
  portmap_event_t last;
  portmap_info_t info;
} tsync_t;

static void t_cb(portmap_mapping_t *m, portmap_event_t e, const portmap_info_t *info, void *u) {
  (void)m;
  tsync_t *t = u;
  pthread_mutex_lock(&t->mu);
  t->n++;
  t->last = e;
  t->info = *info;
  pthread_mutex_unlock(&t->mu);
}

static int t_wait(tsync_t *t, int n) {
  uint64_t end = real_ms() + WAIT_MS;
  for (;;) {
    pthread_mutex_lock(&t->mu);
    int have = t->n;
    pthread_mutex_unlock(&t->mu);
    if (have >= n || real_ms() >= end)
      return have;
    (void)poll(NULL, 0, 10);
  }
}

/* Thread mode: the worker's pipe wakes the client's own thread. */
static void test_thread_mode(void **state) {
  h_t *h = *state;
  h->cfg.log_cb = NULL; /* callbacks run on the client's thread now */
  h->cfg.trace_cb = NULL;
  h_up(h);
  tsync_t t;
  memset(&t, 0, sizeof t);
  pthread_mutex_init(&t.mu, NULL);
  assert_int_equal(portmap_thread_start(h->c), PORTMAP_OK);
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = 8000;
  portmap_mapping_t *m = NULL;
  assert_int_equal(portmap_map(h->c, &req, t_cb, &t, &m), PORTMAP_OK);
  assert_int_equal(t_wait(&t, 1), 1);
  assert_int_equal(t.last, PORTMAP_EVENT_MAPPED);
  assert_int_equal(t.info.external_port, 8000);
  assert_int_equal(portmap_mapping_revoke(m), PORTMAP_OK);
  assert_int_equal(t_wait(&t, 2), 2);
  assert_int_equal(t.last, PORTMAP_EVENT_DELETED);
  assert_int_equal(portmap_thread_stop(h->c), PORTMAP_OK);
  assert_int_equal(fake_upnp_find(h->f, "TCP", 8000, NULL), 0);
  pthread_mutex_destroy(&t.mu);
}

static void test_map_sync(void **state) {
  h_t *h = *state;
  h_up(h);
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = 8000;
  req.lifetime = 1200;
  portmap_info_t info;
  assert_int_equal(portmap_map_sync(h->c, &req, WAIT_MS, &info, NULL), PORTMAP_OK);
  assert_int_equal(info.backend, PORTMAP_BACKEND_UPNP);
  assert_int_equal(info.external_port, 8000);
  assert_int_equal(info.lifetime, 1200);
  assert_string_equal(info.external_address_str, "203.0.113.5");
  /* a refusal comes back as REFUSED with the UPnP code */
  fake_upnp_add_conflict(h->f, 0, 718);
  req.internal_port = 8001;
  assert_int_equal(portmap_map_sync(h->c, &req, WAIT_MS, &info, NULL), PORTMAP_ERR_REFUSED);
  assert_int_equal(info.gateway_result, 718);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_add_renew_delete, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_Q7_upper_case_protocol, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_Q8_never_external_port_zero, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_Q1_reply_from_other_port, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_Q2_each_search_target, setup_igd2, teardown),
      cmocka_unit_test_setup_teardown(test_Q2_igd1_only, setup_igd2, teardown),
      cmocka_unit_test_setup_teardown(test_Q3_loopback_never_multicasts, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_Q4_rogue_replies_ignored, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_Q4_rogue_third_host, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_Q4_rogue_metadata_service, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_Q25_duplicate_replies, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_Q28_dslforum, setup_dslf, teardown),
      cmocka_unit_test_setup_teardown(test_Q6_ppp_only, setup_ppp, teardown),
      cmocka_unit_test_setup_teardown(test_Q6_ip_before_ppp, setup_two, teardown),
      cmocka_unit_test_setup_teardown(test_Q5_Q29_connected_service, setup_two, teardown),
      cmocka_unit_test_setup_teardown(test_Q5_public_before_private, setup_two, teardown),
      cmocka_unit_test_setup_teardown(test_probe_reports_igd, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_probe_igd2_urlbase, setup_igd2, teardown),
      cmocka_unit_test_setup_teardown(test_Q12_bogus_external_address, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_Q12_loopback_external_address, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_Q17_private_external_address, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_Q9_permanent_only_725, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_Q9_permanent_only_402, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_Q9_Q10_permanent_once_deleted, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_once_leased_expires, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_Q10_query_before_add, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_Q10_late_add_deleted, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_Q10_revoke_during_add, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_Q10_client_free_deletes, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_Q11_conflict_718, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_Q11_conflict_501_and_729, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_Q11_igd2_add_any, setup_igd2, teardown),
      cmocka_unit_test_setup_teardown(test_Q11_bounded_retries, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_Q13_rediscover_after_refused, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_Q13_renewal_after_move, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_Q14_wiped_table, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_Q14_port_taken_after_wipe, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_Q14_Q9_permanent_wiped, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_lost_then_back, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_Q20_soap_serialised, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_list, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_list_empty_before_discovery, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_flag_delete_ours, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_flag_delete_not_ours, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_unsupported_options, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_description_escaped, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_no_gateway_answer, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_description_unreachable, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_description_without_wan_service, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_status_legacy_uptime_spelling, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_status_without_uptime, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_free_while_add_stuck, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_free_while_delete_stuck, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_next_client_after_stuck_worker, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_orphan_worker_undoes_late_add, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_gateway_change_while_stuck, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_free_during_trickled_description, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_trickled_soap_bounded, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_orphan_worker_sends_deletes, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_oversized_description_with_length, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_oversized_description_unframed, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_chunked_replies, setup_igd2, teardown),
      cmocka_unit_test_setup_teardown(test_thread_mode, setup_igd1, teardown),
      cmocka_unit_test_setup_teardown(test_map_sync, setup_igd1, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
