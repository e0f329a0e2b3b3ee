/* SPDX-License-Identifier: MIT */
/* Unit tests for the rtnetlink route source (src/platform/linux_rtnl.c):
 * portmap_plat_parse_rtnl() on dumps built here field by field (which
 * routes win, which are skipped, how a malformed datagram ends), every cut
 * of a valid datagram and random octets under ASan, and the live kernel's
 * answer against the /proc tables of the same host. No network traffic: a
 * netlink socket talks to the local kernel only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include "platform/platform.h"
#include "util/netutil.h"

#define SEQ 1u

/* ---- building a dump ------------------------------------------------------ */

typedef struct {
  uint8_t b[4096];
  size_t len;
  size_t msg; /* where the message being built starts */
} dump_t;

static void put(dump_t *d, const void *p, size_t n) {
  if (n == 0)
    return;
  assert_true(d->len + n <= sizeof d->b);
  memcpy(d->b + d->len, p, n);
  d->len += n;
}

static void pad(dump_t *d) {
  static const uint8_t zero[4];
  put(d, zero, (4 - d->len % 4) % 4);
}

static void set32(dump_t *d, size_t at, uint32_t v) {
  memcpy(d->b + at, &v, 4);
}

static void set16(dump_t *d, size_t at, uint16_t v) {
  memcpy(d->b + at, &v, 2);
}

/* A netlink header of this type and sequence number; its length is set by end(). */
static void begin(dump_t *d, uint16_t type, uint32_t seq) {
  pad(d);
  d->msg = d->len;
  uint8_t h[16] = {0};
  memcpy(h + 4, &type, 2);
  memcpy(h + 8, &seq, 4);
  put(d, h, sizeof h);
}

static void end(dump_t *d) {
  set32(d, d->msg, (uint32_t)(d->len - d->msg));
}

/* A route message: struct rtmsg, attributes added with attr(). */
static void route(dump_t *d, uint32_t seq, uint8_t family, uint8_t dst_len, uint8_t table,
                  uint8_t type) {
  begin(d, RTM_NEWROUTE, seq);
  uint8_t r[12] = {family, dst_len, 0, 0, table, RTPROT_BOOT, RT_SCOPE_UNIVERSE, type};
  put(d, r, sizeof r);
}

static void attr(dump_t *d, uint16_t type, const void *v, size_t n) {
  pad(d);
  uint16_t len = (uint16_t)(4 + n);
  put(d, &len, 2);
  put(d, &type, 2);
  put(d, v, n);
}

static void attr32(dump_t *d, uint16_t type, uint32_t v) {
  attr(d, type, &v, 4);
}

static void gw4(dump_t *d, uint8_t a, uint8_t b, uint8_t c, uint8_t e) {
  const uint8_t g[4] = {a, b, c, e};
  attr(d, RTA_GATEWAY, g, 4);
}

static void gw6(dump_t *d, const char *text) {
  uint8_t g[16];
  assert_int_equal(inet_pton(AF_INET6, text, g), 1);
  attr(d, RTA_GATEWAY, g, 16);
}

/* A default IPv4 route of the main table via a.b.c.e on ifindex, metric. */
static void default4(dump_t *d, uint8_t a, uint8_t b, uint8_t c, uint8_t e, uint32_t ifindex,
                     uint32_t metric) {
  route(d, SEQ, AF_INET, 0, RT_TABLE_MAIN, RTN_UNICAST);
  attr32(d, RTA_TABLE, RT_TABLE_MAIN);
  attr32(d, RTA_PRIORITY, metric);
  gw4(d, a, b, c, e);
  attr32(d, RTA_OIF, ifindex);
  end(d);
}

static void done(dump_t *d, uint32_t seq) {
  begin(d, NLMSG_DONE, seq);
  const uint32_t zero = 0;
  put(d, &zero, 4);
  end(d);
}

/* Parse from an exactly sized heap copy, so ASan sees a read past len. */
static int parse(const dump_t *d, size_t len, int ipv6, portmap_plat_route_t *best) {
  uint8_t *copy = malloc(len ? len : 1);
  assert_non_null(copy);
  memcpy(copy, d->b, len);
  int r = portmap_plat_parse_rtnl(copy, len, ipv6, SEQ, best);
  free(copy);
  return r;
}

static void expect4(const portmap_plat_route_t *best, uint8_t a, uint8_t b, uint8_t c, uint8_t e) {
  uint8_t want[16] = {0};
  const uint8_t four[4] = {a, b, c, e};
  portmap_net_v4_mapped(want, four);
  assert_true(best->found);
  assert_memory_equal(best->gw, want, 16);
}

/* ---- which route wins ----------------------------------------------------- */

static void test_single_default(void **state) {
  (void)state;
  dump_t d = {0};
  route(&d, SEQ, AF_INET, 24, RT_TABLE_MAIN, RTN_UNICAST); /* 192.168.77.0/24: not default */
  attr32(&d, RTA_OIF, 2);
  end(&d);
  default4(&d, 192, 168, 77, 1, 2, 0);
  done(&d, SEQ);
  portmap_plat_route_t best;
  memset(&best, 0, sizeof best);
  assert_int_equal(parse(&d, d.len, 0, &best), 1);
  expect4(&best, 192, 168, 77, 1);
  assert_int_equal(best.ifindex, 2);
  assert_int_equal(best.metric, 0);
}

static void test_lowest_metric_first_of_equals(void **state) {
  (void)state;
  dump_t d = {0};
  default4(&d, 10, 0, 0, 1, 3, 600);
  default4(&d, 10, 0, 1, 1, 4, 100);
  default4(&d, 10, 0, 2, 1, 5, 100); /* equal: the first stays */
  default4(&d, 10, 0, 3, 1, 6, 700);
  portmap_plat_route_t best;
  memset(&best, 0, sizeof best);
  assert_int_equal(parse(&d, d.len, 0, &best), 0); /* no NLMSG_DONE yet */
  expect4(&best, 10, 0, 1, 1);
  assert_int_equal(best.ifindex, 4);
  /* the next datagram of the dump carries on from there */
  dump_t d2 = {0};
  default4(&d2, 10, 0, 9, 1, 7, 50);
  done(&d2, SEQ);
  assert_int_equal(parse(&d2, d2.len, 0, &best), 1);
  expect4(&best, 10, 0, 9, 1);
  assert_int_equal(best.metric, 50);
}

/* Routes that are not the LAN's default gateway are skipped. */
static void test_skipped_routes(void **state) {
  (void)state;
  dump_t d = {0};
  /* another table (a VPN's policy routing), by rtm_table and by RTA_TABLE */
  route(&d, SEQ, AF_INET, 0, 100, RTN_UNICAST);
  gw4(&d, 10, 8, 0, 1);
  end(&d);
  route(&d, SEQ, AF_INET, 0, RT_TABLE_UNSPEC, RTN_UNICAST);
  attr32(&d, RTA_TABLE, 51820);
  gw4(&d, 10, 8, 0, 2);
  end(&d);
  /* unreachable, and the other family */
  route(&d, SEQ, AF_INET, 0, RT_TABLE_MAIN, RTN_UNREACHABLE);
  gw4(&d, 10, 8, 0, 3);
  end(&d);
  route(&d, SEQ, AF_INET6, 0, RT_TABLE_MAIN, RTN_UNICAST);
  gw6(&d, "fd00::1");
  end(&d);
  /* no next hop (a point-to-point default), an all-zero one, one of the wrong size */
  route(&d, SEQ, AF_INET, 0, RT_TABLE_MAIN, RTN_UNICAST);
  attr32(&d, RTA_OIF, 9);
  end(&d);
  route(&d, SEQ, AF_INET, 0, RT_TABLE_MAIN, RTN_UNICAST);
  gw4(&d, 0, 0, 0, 0);
  end(&d);
  route(&d, SEQ, AF_INET, 0, RT_TABLE_MAIN, RTN_UNICAST);
  gw6(&d, "fd00::2");
  end(&d);
  /* not a route message, and a route of another request */
  begin(&d, RTM_NEWLINK, SEQ);
  gw4(&d, 10, 8, 0, 4);
  end(&d);
  route(&d, SEQ + 1, AF_INET, 0, RT_TABLE_MAIN, RTN_UNICAST);
  gw4(&d, 10, 8, 0, 5);
  end(&d);
  done(&d, SEQ + 1); /* another request's end is not ours */
  portmap_plat_route_t best;
  memset(&best, 0, sizeof best);
  assert_int_equal(parse(&d, d.len, 0, &best), 0);
  assert_false(best.found);
  /* the same octets asked for IPv6: only the IPv6 route */
  memset(&best, 0, sizeof best);
  assert_int_equal(parse(&d, d.len, 1, &best), 0);
  assert_true(best.found);
  uint8_t want[16];
  assert_int_equal(inet_pton(AF_INET6, "fd00::1", want), 1);
  assert_memory_equal(best.gw, want, 16);
}

/* ECMP: the first next hop that has a gateway, with its interface. */
static void test_multipath(void **state) {
  (void)state;
  dump_t d = {0};
  route(&d, SEQ, AF_INET6, 0, RT_TABLE_MAIN, RTN_UNICAST);
  attr32(&d, RTA_PRIORITY, 1024);
  /* RTA_MULTIPATH: a hop without a gateway, then two with */
  pad(&d);
  size_t mp = d.len;
  attr(&d, RTA_MULTIPATH, NULL, 0);
  const uint8_t hop0[8] = {8, 0, 0, 0, 0, 0, 0, 0};
  put(&d, hop0, sizeof hop0);
  set32(&d, d.len - 4, 11);
  size_t h1 = d.len;
  const uint8_t hop[8] = {0};
  put(&d, hop, sizeof hop);
  set32(&d, h1 + 4, 12);
  gw6(&d, "fe80::1");
  set16(&d, h1, (uint16_t)(d.len - h1));
  size_t h2 = d.len;
  put(&d, hop, sizeof hop);
  set32(&d, h2 + 4, 13);
  gw6(&d, "fe80::2");
  set16(&d, h2, (uint16_t)(d.len - h2));
  set16(&d, mp, (uint16_t)(d.len - mp));
  end(&d);
  done(&d, SEQ);
  portmap_plat_route_t best;
  memset(&best, 0, sizeof best);
  assert_int_equal(parse(&d, d.len, 1, &best), 1);
  uint8_t want[16];
  assert_int_equal(inet_pton(AF_INET6, "fe80::1", want), 1);
  assert_true(best.found);
  assert_memory_equal(best.gw, want, 16);
  assert_int_equal(best.ifindex, 12);
  assert_int_equal(best.metric, 1024);
}

/* ---- how a dump ends ------------------------------------------------------ */

static void test_error_and_malformed(void **state) {
  (void)state;
  portmap_plat_route_t best;
  dump_t d = {0};
  begin(&d, NLMSG_ERROR, SEQ);
  const int32_t err = -1;
  put(&d, &err, 4);
  end(&d);
  memset(&best, 0, sizeof best);
  assert_int_equal(parse(&d, d.len, 0, &best), -1);

  /* a length below the header's, and one past the datagram */
  dump_t s = {0};
  default4(&s, 10, 0, 0, 1, 2, 0);
  set32(&s, 0, 15);
  memset(&best, 0, sizeof best);
  assert_int_equal(parse(&s, s.len, 0, &best), -1);
  set32(&s, 0, (uint32_t)s.len + 4);
  assert_int_equal(parse(&s, s.len, 0, &best), -1);
  assert_false(best.found);

  /* an attribute longer than its message: the route is not taken */
  dump_t a = {0};
  route(&a, SEQ, AF_INET, 0, RT_TABLE_MAIN, RTN_UNICAST);
  gw4(&a, 10, 0, 0, 1);
  attr32(&a, RTA_PRIORITY, 5);
  set16(&a, a.len - 8, 200);
  end(&a);
  done(&a, SEQ);
  memset(&best, 0, sizeof best);
  assert_int_equal(parse(&a, a.len, 0, &best), 1);
  assert_false(best.found);

  assert_int_equal(portmap_plat_parse_rtnl(NULL, 10, 0, SEQ, &best), -1);
  assert_int_equal(portmap_plat_parse_rtnl(d.b, d.len, 0, SEQ, NULL), -1);
  memset(&best, 0, sizeof best);
  assert_int_equal(portmap_plat_parse_rtnl(d.b, 0, 0, SEQ, &best), 0);
  assert_int_equal(portmap_plat_parse_rtnl(d.b, 15, 0, SEQ, &best), 0); /* not a header yet */
}

/* Every cut of a valid datagram: never a read past the cut (ASan), and the
 * route is there exactly when its message is whole. */
static void test_every_cut(void **state) {
  (void)state;
  dump_t d = {0};
  route(&d, SEQ, AF_INET, 24, RT_TABLE_MAIN, RTN_UNICAST);
  attr32(&d, RTA_OIF, 2);
  end(&d);
  size_t start = d.len;
  default4(&d, 192, 168, 77, 1, 2, 0);
  size_t whole = d.len;
  done(&d, SEQ);
  for (size_t len = 0; len <= d.len; len++) {
    portmap_plat_route_t best;
    memset(&best, 0, sizeof best);
    int r = parse(&d, len, 0, &best);
    if (len == d.len)
      assert_int_equal(r, 1);
    else
      assert_true(r == 0 || r == -1);
    if (best.found)
      expect4(&best, 192, 168, 77, 1);
    if (len >= whole)
      assert_true(best.found);
    if (len < start + 16)
      assert_false(best.found);
  }
}

static uint64_t prng_next(uint64_t *st) {
  uint64_t x = *st;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *st = x;
  return x * UINT64_C(2685821657736338717);
}

/* Random octets, and a valid dump with random octets changed: no crash, and
 * whatever is found is a non-zero gateway of the family. */
static void test_random_octets(void **state) {
  (void)state;
  uint64_t st = UINT64_C(0x9e3779b97f4a7c15);
  dump_t base = {0};
  default4(&base, 10, 0, 0, 1, 2, 0);
  route(&base, SEQ, AF_INET6, 0, RT_TABLE_MAIN, RTN_UNICAST);
  gw6(&base, "fd00::1");
  end(&base);
  done(&base, SEQ);
  for (int i = 0; i < 20000; i++) {
    dump_t d = base;
    if (i % 2 == 0) {
      d.len = (size_t)(prng_next(&st) % 512);
      for (size_t k = 0; k < d.len; k++)
        d.b[k] = (uint8_t)prng_next(&st);
    } else {
      for (int k = 0; k < 4; k++)
        d.b[prng_next(&st) % d.len] = (uint8_t)prng_next(&st);
    }
    int ipv6 = (int)(prng_next(&st) & 1);
    portmap_plat_route_t best;
    memset(&best, 0, sizeof best);
    int r = parse(&d, d.len, ipv6, &best);
    assert_true(r >= -1 && r <= 1);
    if (best.found) {
      assert_false(portmap_net_is_unspecified(best.gw));
      assert_int_equal(portmap_net_is_v4(best.gw), !ipv6);
    }
  }
}

/* ---- the live kernel ------------------------------------------------------ */

/* This host's main table over netlink against /proc/net/route: the same
 * IPv4 gateway, or none from both. (IPv6: /proc/net/ipv6_route lists every
 * table, so only "netlink found one, so does /proc" holds.) */
static void test_live_matches_proc(void **state) {
  (void)state;
  uint8_t a[16], b[16];
  unsigned sa = 0, sb = 0;
  int r = portmap_plat_rtnl_gateway(NULL, 0, a, &sa);
  if (r == PORTMAP_PLAT_RTNL_FAILED) {
    skip(); /* netlink forbidden here: the /proc path is what runs */
    return;
  }
  int p = portmap_plat_default_gateway_proc(NULL, 0, b, &sb);
  assert_int_equal(r == 0, p == 0);
  if (r == 0) {
    assert_memory_equal(a, b, 16);
    assert_int_equal(sa, sb);
    assert_true(portmap_net_is_v4(a));
  }
  r = portmap_plat_rtnl_gateway(NULL, 1, a, &sa);
  assert_true(r == 0 || r == PORTMAP_PLAT_RTNL_NONE);
  if (r == 0) {
    assert_int_equal(portmap_plat_default_gateway_proc(NULL, 1, b, &sb), 0);
    assert_false(portmap_net_is_v4(a));
  }
  assert_int_equal(portmap_plat_rtnl_gateway(NULL, 0, NULL, NULL), PORTMAP_PLAT_RTNL_NONE);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_single_default),
      cmocka_unit_test(test_lowest_metric_first_of_equals),
      cmocka_unit_test(test_skipped_routes),
      cmocka_unit_test(test_multipath),
      cmocka_unit_test(test_error_and_malformed),
      cmocka_unit_test(test_every_cut),
      cmocka_unit_test(test_random_octets),
      cmocka_unit_test(test_live_matches_proc),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
