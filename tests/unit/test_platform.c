/* SPDX-License-Identifier: MIT */
/* Unit tests for the platform layer (src/platform/platform.h, linux.c):
 * route-table parsing, default gateway, local address, sockets and ICMP
 * reports, receive, random bytes, the clock and the wake pipe.
 * Network use: loopback only (127.0.0.1 and ::1). No sleep(): waits are
 * poll() with a bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "platform/platform.h"
#include "util/netutil.h"

/* ---- helpers ------------------------------------------------------------ */

static void v4(uint8_t out[16], uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  memset(out, 0, 16);
  out[10] = 0xff;
  out[11] = 0xff;
  out[12] = a;
  out[13] = b;
  out[14] = c;
  out[15] = d;
}

static void v6(uint8_t out[16], const char *text) {
  assert_int_equal(inet_pton(AF_INET6, text, out), 1);
}

/* Parse from an exactly sized heap copy without a NUL, so that an overrun
 * is caught by ASan. */
static int parse4(const char *text, size_t len, uint8_t out[16], char ifname[16]) {
  char *copy = malloc(len ? len : 1);
  assert_non_null(copy);
  memcpy(copy, text, len);
  int r = portmap_plat_parse_route4(copy, len, out, ifname);
  free(copy);
  return r;
}

static int parse6(const char *text, size_t len, uint8_t out[16], char ifname[16]) {
  char *copy = malloc(len ? len : 1);
  assert_non_null(copy);
  memcpy(copy, text, len);
  int r = portmap_plat_parse_route6(copy, len, out, ifname);
  free(copy);
  return r;
}

static uint64_t prng_next(uint64_t *st) {
  uint64_t x = *st;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *st = x;
  return x * UINT64_C(2685821657736338717);
}

/* ---- /proc/net/route ------------------------------------------------------ */

#define ROUTE4_HEADER                                                                              \
  "Iface\tDestination\tGateway "                                                                   \
  "\tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT                                     "   \
  "                  \n"

/* The kernel prints the __be32 with %08X: these tests assume a
 * little-endian host, where "0100A8C0" is 192.168.0.1. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HOST_LE 1
#else
#define HOST_LE 0
#endif

static const char route4_single[] =
    ROUTE4_HEADER "eth0\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0       "
                  "                                                                        \n";

static const char route4_multi[] = ROUTE4_HEADER
    /* default via wlan0, worse metric */
    "wlan0\t00000000\tFE01A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n"
    /* on-link subnet */
    "wlan0\t0001A8C0\t00000000\t0001\t0\t0\t600\t00FFFFFF\t0\t0\t0\n"
    /* a default route that is not up */
    "eth1\t00000000\t0101A8C0\t0002\t0\t0\t1\t00000000\t0\t0\t0\n"
    /* a default route without RTF_GATEWAY (e.g. a point-to-point device) */
    "ppp0\t00000000\t00000000\t0001\t0\t0\t2\t00000000\t0\t0\t0\n"
    /* an unreachable default */
    "*\t00000000\t00000000\t0201\t0\t0\t3\t00000000\t0\t0\t0\n"
    /* not a default: mask set */
    "tun0\t00000000\t0100080A\t0003\t0\t0\t4\t000000FF\t0\t0\t0\n"
    /* the winner: 10.0.0.1 on eth0, metric 100 */
    "eth0\t00000000\t0100000A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
    /* same metric, later: loses the tie */
    "eth2\t00000000\t0200000A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
    /* metric printed with %d: -1 is 4294967295 */
    "eth3\t00000000\t0300000A\t0003\t0\t0\t-1\t00000000\t0\t0\t0\n"
    "docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";

static void test_route4_single(void **state) {
  (void)state;
  if (!HOST_LE)
    skip();
  uint8_t out[16], want[16];
  char ifname[16];
  assert_int_equal(parse4(route4_single, strlen(route4_single), out, ifname), 0);
  v4(want, 192, 168, 0, 1);
  assert_memory_equal(out, want, 16);
  assert_string_equal(ifname, "eth0");
  /* ifname is optional. */
  memset(out, 0, 16);
  assert_int_equal(portmap_plat_parse_route4(route4_single, strlen(route4_single), out, NULL), 0);
  assert_memory_equal(out, want, 16);
}

static void test_route4_multi(void **state) {
  (void)state;
  if (!HOST_LE)
    skip();
  uint8_t out[16], want[16];
  char ifname[16];
  assert_int_equal(parse4(route4_multi, strlen(route4_multi), out, ifname), 0);
  v4(want, 10, 0, 0, 1);
  assert_memory_equal(out, want, 16);
  assert_string_equal(ifname, "eth0");
}

static void test_route4_negative_metric(void **state) {
  (void)state;
  if (!HOST_LE)
    skip();
  static const char text[] =
      ROUTE4_HEADER "eth3\t00000000\t0300000A\t0003\t0\t0\t-1\t00000000\t0\t0\t0\n"
                    "eth4\t00000000\t0400000A\t0003\t0\t0\t4294967294\t00000000\t0\t0\t0\n";
  uint8_t out[16], want[16];
  char ifname[16];
  assert_int_equal(parse4(text, strlen(text), out, ifname), 0);
  v4(want, 10, 0, 0, 4);
  assert_memory_equal(out, want, 16);
  assert_string_equal(ifname, "eth4");
}

static void test_route4_none(void **state) {
  (void)state;
  static const char no_default[] =
      ROUTE4_HEADER "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
                    "eth0\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0\n";
  uint8_t out[16] = {0};
  uint8_t zero[16] = {0};
  char ifname[16] = "untouched";
  assert_int_equal(parse4(no_default, strlen(no_default), out, ifname), -1);
  assert_int_equal(parse4(ROUTE4_HEADER, strlen(ROUTE4_HEADER), out, ifname), -1);
  assert_int_equal(parse4("", 0, out, ifname), -1);
  assert_int_equal(portmap_plat_parse_route4(NULL, 10, out, ifname), -1);
  assert_int_equal(portmap_plat_parse_route4(route4_single, strlen(route4_single), NULL, NULL), -1);
  assert_memory_equal(out, zero, 16);
  assert_string_equal(ifname, "untouched");
}

static void test_route4_garbage_lines(void **state) {
  (void)state;
  if (!HOST_LE)
    skip();
  /* Each bad line would win if it were accepted (metric 0). */
  static const char text[] =
      "garbage\n"
      "\n\n\t \t\n"
      "eth9\t0000000\t0100000B\t0003\t0\t0\t0\t00000000\n"            /* 7-digit destination */
      "eth9\t00000000\t0100000G\t0003\t0\t0\t0\t00000000\n"           /* non-hex gateway */
      "eth9\t00000000\t0100000B\t0003\t0\t0\t0x\t00000000\n"          /* bad metric */
      "eth9\t00000000\t0100000B\t0003\t0\t0\t99999999999\t00000000\n" /* metric overflow */
      "eth9\t00000000\t0100000B\t0003\t0\t0\t--1\t00000000\n"
      "eth9\t00000000\t0100000B\t0003\t0\t0\t4294967296\t00000000\n" /* 2^32 */
      "eth9\t00000000\t0100000B\t0003\t0\t0\t-\t00000000\n"
      "eth9\t00000000\t0100000B\t0003\t0\t-1\t0\t00000000\n"     /* Use is unsigned */
      "eth9\t00000000\t0100000B\t123456789\t0\t0\t0\t00000000\n" /* 9-digit flags */
      "eth9\t00000000\t0100000B\t0003\t0\t0\t0\t000000000\n"     /* 9-digit mask */
      "eth9\t00000000\t0100000B\t0003\t0\t0\t0\n"                /* no mask */
      "eth9\t00000000\t0100000B\t0003\t0\t0\t0\t0000"            /* truncated mask */
      "\n"
      "averyveryverylongname\t00000000\t0100000B\t0003\t0\t0\t0\t00000000\n" /* > 15 */
      "et\x01h\t00000000\t0100000B\t0003\t0\t0\t0\t00000000\n"               /* control char */
      "eth0\t00000000\t0100000A\t0003\t0\t0\t7\t00000000\t0\t0\t0\n";
  uint8_t out[16], want[16];
  char ifname[16];
  assert_int_equal(parse4(text, sizeof text - 1, out, ifname), 0);
  v4(want, 10, 0, 0, 1);
  assert_memory_equal(out, want, 16);
  assert_string_equal(ifname, "eth0");

  /* A NUL inside a line spoils that line only. */
  static const char nul[] = "eth8\t00000000\t0100000C\t0003\t0\t0\t0\t0000\0000\n"
                            "eth0\t00000000\t0100000A\t0003\t0\t0\t7\t00000000\n";
  assert_int_equal(parse4(nul, sizeof nul - 1, out, ifname), 0);
  assert_memory_equal(out, want, 16);
  assert_string_equal(ifname, "eth0");

  /* The metric is a u32 printed with %d: INT_MIN is fine, below is not. */
  static const char int_min[] = "eth5\t00000000\t0500000A\t0003\t0\t0\t-2147483648\t00000000\n"
                                "eth6\t00000000\t0600000A\t0003\t0\t0\t2147483647\t00000000\n";
  v4(want, 10, 0, 0, 6);
  assert_int_equal(parse4(int_min, sizeof int_min - 1, out, ifname), 0);
  assert_memory_equal(out, want, 16);
  static const char below[] = "eth5\t00000000\t0500000A\t0003\t0\t0\t-2147483649\t00000000\n";
  assert_int_equal(parse4(below, sizeof below - 1, out, ifname), -1);

  /* A 15-character name is the longest allowed. */
  static const char longest[] = "abcdefghijklmno\t00000000\t0100000A\t0003\t0\t0\t7\t00000000";
  assert_int_equal(parse4(longest, sizeof longest - 1, out, ifname), 0);
  assert_string_equal(ifname, "abcdefghijklmno");
}

/* Every prefix of a valid table: either no route or the right one, and the
 * route appears exactly when the cut leaves its mask field whole. */
static void test_route4_truncated(void **state) {
  (void)state;
  if (!HOST_LE)
    skip();
  size_t full = strlen(route4_single);
  const char *line = strstr(route4_single, "eth0");
  assert_non_null(line);
  const char *mask = strstr(line, "\t00000000\t0\t");
  assert_non_null(mask);
  size_t need = (size_t)(mask - route4_single) + 9; /* through the mask's last digit */
  uint8_t want[16];
  v4(want, 192, 168, 0, 1);
  for (size_t len = 0; len <= full; len++) {
    uint8_t out[16];
    char ifname[16];
    int r = parse4(route4_single, len, out, ifname);
    if (len < need) {
      assert_int_equal(r, -1);
    } else {
      assert_int_equal(r, 0);
      assert_memory_equal(out, want, 16);
      assert_string_equal(ifname, "eth0");
    }
  }
}

/* ---- /proc/net/ipv6_route ------------------------------------------------- */

static const char route6_table[] =
    "fd000000000000000000000000000000 40 00000000000000000000000000000000 00 "
    "00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0\n"
    "fe800000000000000000000000000000 40 00000000000000000000000000000000 00 "
    "00000000000000000000000000000000 00000100 00000002 00000000 00000001     eth0\n"
    /* default via a link-local router, worse metric */
    "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
    "fe80000000000000022233fffe445566 00000800 00000002 00000000 00450003    wlan0\n"
    /* the winner: via fe80::1 on eth0, metric 0x400 */
    "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
    "fe800000000000000000000000000001 00000400 00000002 00000000 00450003     eth0\n"
    /* better metric but not up */
    "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
    "fe800000000000000000000000000009 00000001 00000002 00000000 00450002     eth1\n"
    /* better metric but rejected (unreachable) */
    "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
    "fe800000000000000000000000000008 00000001 00000002 00000000 00000201     eth1\n"
    /* better metric, ::/0 but no next hop */
    "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
    "00000000000000000000000000000000 00000001 00000002 00000000 00000001     tun0\n"
    /* better metric, all-zero destination but a /8 */
    "00000000000000000000000000000000 08 00000000000000000000000000000000 00 "
    "fe800000000000000000000000000007 00000001 00000002 00000000 00000003     eth1\n"
    "00000000000000000000000000000001 80 00000000000000000000000000000000 00 "
    "00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo\n"
    "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
    "00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n";

static void test_route6_table(void **state) {
  (void)state;
  uint8_t out[16], want[16];
  char ifname[16];
  assert_int_equal(parse6(route6_table, strlen(route6_table), out, ifname), 0);
  v6(want, "fe80::1");
  assert_memory_equal(out, want, 16);
  assert_string_equal(ifname, "eth0");
  assert_false(portmap_net_is_v4(out));
}

static void test_route6_global_gateway(void **state) {
  (void)state;
  static const char text[] =
      "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
      "20010db8000000000000000000000001 00000400 00000002 00000000 00000003 enp0s31f6";
  uint8_t out[16], want[16];
  char ifname[16];
  assert_int_equal(parse6(text, sizeof text - 1, out, ifname), 0);
  v6(want, "2001:db8::1");
  assert_memory_equal(out, want, 16);
  assert_string_equal(ifname, "enp0s31f6");
}

static void test_route6_none_and_garbage(void **state) {
  (void)state;
  static const char text[] =
      /* no default route at all */
      "fd000000000000000000000000000000 40 00000000000000000000000000000000 00 "
      "00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0\n"
      "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
      "00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n"
      /* broken defaults: 31-digit next hop, bad hex, missing iface, 3-digit plen */
      "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
      "fe80000000000000000000000000001 00000400 00000002 00000000 00000003     eth0\n"
      "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
      "fe80000000000000000000000000000x 00000400 00000002 00000000 00000003     eth0\n"
      "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
      "fe800000000000000000000000000001 00000400 00000002 00000000 00000003\n"
      "00000000000000000000000000000000 000 00000000000000000000000000000000 00 "
      "fe800000000000000000000000000001 00000400 00000002 00000000 00000003     eth0\n"
      "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
      "fe800000000000000000000000000001 00000400 00000002 00000000 00000003 "
      "averyveryverylongname\n"
      "garbage garbage\n";
  uint8_t out[16] = {0}, zero[16] = {0};
  char ifname[16] = "untouched";
  assert_int_equal(parse6(text, sizeof text - 1, out, ifname), -1);
  assert_int_equal(parse6("", 0, out, ifname), -1);
  assert_int_equal(portmap_plat_parse_route6(NULL, 5, out, ifname), -1);
  assert_memory_equal(out, zero, 16);
  assert_string_equal(ifname, "untouched");
  /* An IPv4 table is not an IPv6 one, and the reverse. */
  assert_int_equal(parse6(route4_multi, strlen(route4_multi), out, ifname), -1);
  assert_int_equal(parse4(route6_table, strlen(route6_table), out, ifname), -1);
}

static void test_route6_truncated(void **state) {
  (void)state;
  static const char line[] =
      "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
      "fe800000000000000000000000000001 00000400 00000002 00000000 00450003     eth0\n";
  size_t full = sizeof line - 1;
  size_t iface = (size_t)(strstr(line, "eth0") - line);
  uint8_t want[16];
  v6(want, "fe80::1");
  for (size_t len = 0; len <= full; len++) {
    uint8_t out[16];
    char ifname[16];
    int r = parse6(line, len, out, ifname);
    if (len <= iface) {
      assert_int_equal(r, -1);
    } else {
      /* The parser cannot know a name was cut; the file reader drops a
       * cut-off last line. */
      assert_int_equal(r, 0);
      assert_memory_equal(out, want, 16);
      assert_int_equal(strncmp(ifname, "eth0", len - iface), 0);
    }
  }
}

/* Random bytes, and random corruptions of valid tables: never an overrun
 * (ASan builds catch one), and random bytes never make a route. */
static void test_route_fuzz(void **state) {
  (void)state;
  uint64_t st = UINT64_C(0x243f6a8885a308d3);
  char buf[600];
  for (int iter = 0; iter < 4000; iter++) {
    size_t len = (size_t)(prng_next(&st) % sizeof buf);
    for (size_t i = 0; i < len; i++)
      buf[i] = (char)(prng_next(&st) >> 56);
    uint8_t out[16];
    char ifname[16];
    assert_int_equal(parse4(buf, len, out, ifname), -1);
    assert_int_equal(parse6(buf, len, out, ifname), -1);
  }
  const char *tables[2] = {route4_multi, route6_table};
  for (int iter = 0; iter < 4000; iter++) {
    const char *t = tables[iter % 2];
    size_t len = strlen(t);
    char *copy = malloc(len);
    assert_non_null(copy);
    memcpy(copy, t, len);
    for (int k = 0; k < 4; k++)
      copy[prng_next(&st) % len] = (char)(prng_next(&st) >> 56);
    uint8_t out[16];
    char ifname[16] = "";
    int r4 = portmap_plat_parse_route4(copy, len, out, ifname);
    if (r4 == 0)
      assert_true(portmap_net_is_v4(out) && strlen(ifname) > 0 && strlen(ifname) < 16);
    int r6 = portmap_plat_parse_route6(copy, len, out, ifname);
    if (r6 == 0)
      assert_true(strlen(ifname) > 0 && strlen(ifname) < 16);
    free(copy);
  }
}

/* Reads the real /proc files: the host's routes are unknown, so only check
 * that an answer, if any, is well formed. */
static void test_default_gateway_reads(void **state) {
  (void)state;
  uint8_t out[16];
  unsigned ifindex = 12345;
  if (portmap_plat_default_gateway(NULL, 0, out, &ifindex) == 0) {
    assert_true(portmap_net_is_v4(out));
    assert_false(portmap_net_is_unspecified(out));
  }
  if (portmap_plat_default_gateway(NULL, 1, out, &ifindex) == 0)
    assert_false(portmap_net_is_unspecified(out));
  assert_int_equal(portmap_plat_default_gateway(NULL, 0, NULL, NULL), -1);
}

/* ---- local address (loopback only) ---------------------------------------- */

static void test_local_address_v4(void **state) {
  (void)state;
  uint8_t dest[16], out[16];
  v4(dest, 127, 0, 0, 1);
  memset(out, 0xaa, sizeof out);
  assert_int_equal(portmap_plat_local_address(dest, 0, out), 0);
  assert_memory_equal(out, dest, 16);
}

static void test_local_address_v6(void **state) {
  (void)state;
  uint8_t dest[16], out[16];
  v6(dest, "::1");
  memset(out, 0xaa, sizeof out);
  int r = portmap_plat_local_address(dest, 0, out);
  if (r != 0 && (errno == EAFNOSUPPORT || errno == EADDRNOTAVAIL || errno == ENETUNREACH))
    skip(); /* no IPv6 on this host */
  assert_int_equal(r, 0);
  assert_memory_equal(out, dest, 16);
}

static void test_local_address_bad(void **state) {
  (void)state;
  uint8_t out[16];
  assert_int_equal(portmap_plat_local_address(NULL, 0, out), -1);
  assert_int_equal(errno, EINVAL);
}

/* ---- route tables through the reader: the edges ------------------------- */

/* A valid /proc/net/route line for 10.0.0.<last> with the given metric. */
static size_t route4_line(char *buf, size_t cap, const char *ifname, unsigned last,
                          const char *metric) {
  int n = snprintf(buf, cap, "%s\t00000000\t%02X00000A\t0003\t0\t0\t%s\t00000000\t0\t0\t0\n",
                   ifname, last, metric);
  assert_true(n > 0 && (size_t)n < cap);
  return (size_t)n;
}

static void test_route4_lowest_metric_wins(void **state) {
  (void)state;
  if (!HOST_LE)
    skip();
  char text[1024];
  size_t len = 0;
  len += route4_line(text + len, sizeof text - len, "a0", 1, "300");
  len += route4_line(text + len, sizeof text - len, "b0", 2, "5");
  len += route4_line(text + len, sizeof text - len, "c0", 3, "20");
  len += route4_line(text + len, sizeof text - len, "d0", 4, "5"); /* a tie: the first wins */
  len += route4_line(text + len, sizeof text - len, "e0", 5, "6");
  uint8_t out[16], want[16];
  char ifname[16];
  assert_int_equal(parse4(text, len, out, ifname), 0);
  v4(want, 10, 0, 0, 2);
  assert_memory_equal(out, want, 16);
  assert_string_equal(ifname, "b0");

  /* The best on the last line, without its newline. */
  len += route4_line(text + len, sizeof text - len, "f0", 6, "4");
  assert_int_equal(parse4(text, len - 1, out, ifname), 0);
  v4(want, 10, 0, 0, 6);
  assert_memory_equal(out, want, 16);
  assert_string_equal(ifname, "f0");

  /* Metric 0 beats everything; several blanks between fields are one. */
  static const char zero[] = "z0  \t 00000000 \t0700000A\t\t0003 0 0 0 00000000\n";
  memcpy(text + len, zero, sizeof zero - 1);
  assert_int_equal(parse4(text, len + sizeof zero - 1, out, ifname), 0);
  v4(want, 10, 0, 0, 7);
  assert_memory_equal(out, want, 16);
  assert_string_equal(ifname, "z0");
}

static void test_route6_lowest_metric_wins(void **state) {
  (void)state;
  static const char text[] =
      "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
      "fe800000000000000000000000000001 00000400 00000002 00000000 00000003     eth0\n"
      "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
      "fe800000000000000000000000000002 000000ff 00000002 00000000 00000003     eth1\n"
      "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
      "fe800000000000000000000000000003 00000100 00000002 00000000 00000003     eth2\n"
      "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
      "fe800000000000000000000000000004 000000FF 00000002 00000000 00000003     eth3\n";
  uint8_t out[16], want[16];
  char ifname[16];
  assert_int_equal(parse6(text, sizeof text - 1, out, ifname), 0);
  v6(want, "fe80::2");
  assert_memory_equal(out, want, 16);
  assert_string_equal(ifname, "eth1");
}

/* Every line cut after fewer whole fields than the parser reads is no
 * route; the full set is. */
static void test_route_missing_fields(void **state) {
  (void)state;
  if (!HOST_LE)
    skip();
  static const char *const f4[] = {"eth0", "00000000", "0100000A", "0003",
                                   "0",    "0",        "7",        "00000000"};
  static const char *const f6[] = {"00000000000000000000000000000000",
                                   "00",
                                   "00000000000000000000000000000000",
                                   "00",
                                   "fe800000000000000000000000000001",
                                   "00000400",
                                   "00000002",
                                   "00000000",
                                   "00000003",
                                   "eth0"};
  struct {
    const char *const *f;
    size_t n;
    int ipv6;
  } sets[2] = {{f4, 8, 0}, {f6, 10, 1}};
  for (int s = 0; s < 2; s++) {
    for (size_t keep = 0; keep <= sets[s].n; keep++) {
      char line[512] = "";
      for (size_t i = 0; i < keep; i++) {
        strcat(line, sets[s].f[i]);
        strcat(line, i + 1 < keep ? "\t" : "\n");
      }
      uint8_t out[16];
      char ifname[16];
      int r = sets[s].ipv6 ? parse6(line, strlen(line), out, ifname)
                           : parse4(line, strlen(line), out, ifname);
      if (r != (keep == sets[s].n ? 0 : -1))
        fail_msg("family %d with %zu of %zu fields: %d", sets[s].ipv6 ? 6 : 4, keep, sets[s].n, r);
    }
  }
}

/* One field too long (or a number too big) spoils its line only. */
static void test_route_overlong_fields(void **state) {
  (void)state;
  if (!HOST_LE)
    skip();
  static const char text4[] =
      "abcdefghijklmnop\t00000000\t0100000B\t0003\t0\t0\t0\t00000000\n" /* 16-octet name */
      "eth9\t000000000\t0100000B\t0003\t0\t0\t0\t00000000\n"            /* 9-digit dest */
      "eth9\t00000000\t00100000B\t0003\t0\t0\t0\t00000000\n"            /* 9-digit gateway */
      "eth9\t00000000\t0100000B\t0003\t0\t0\t00000000000\t00000000\n"   /* 11-digit metric */
      "eth9\t00000000\t0100000B\t0003\t0\t0\t-00000000001\t00000000\n"  /* 11 after '-' */
      "eth9\t00000000\t0100000B\t0003\t0\t99999999999\t0\t00000000\n"   /* Use overflows */
      "eth9\t00000000\t0100000B\t0003\t-2147483649\t0\t0\t00000000\n"   /* RefCnt below */
      "eth9\t00000000\t0100000B\t000000003\t0\t0\t0\t00000000\n"        /* 9-digit flags */
      "eth0\t00000000\t0100000A\t0003\t0\t0\t0000000009\t00000000\n";   /* 10 digits: fine */
  uint8_t out[16], want[16];
  char ifname[16];
  assert_int_equal(parse4(text4, sizeof text4 - 1, out, ifname), 0);
  v4(want, 10, 0, 0, 1);
  assert_memory_equal(out, want, 16);
  assert_string_equal(ifname, "eth0");

  static const char text6[] =
      /* 33-digit destination */
      "000000000000000000000000000000000 00 00000000000000000000000000000000 00 "
      "fe800000000000000000000000000009 00000001 00000002 00000000 00000003     eth9\n"
      /* 3-digit source prefix length */
      "00000000000000000000000000000000 00 00000000000000000000000000000000 000 "
      "fe800000000000000000000000000009 00000001 00000002 00000000 00000003     eth9\n"
      /* 9-digit metric */
      "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
      "fe800000000000000000000000000009 000000001 00000002 00000000 00000003     eth9\n"
      /* 16-octet name */
      "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
      "fe800000000000000000000000000009 00000001 00000002 00000000 00000003 abcdefghijklmnop\n"
      "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
      "fe800000000000000000000000000001 00000400 00000002 00000000 00000003     eth0\n";
  assert_int_equal(parse6(text6, sizeof text6 - 1, out, ifname), 0);
  v6(want, "fe80::1");
  assert_memory_equal(out, want, 16);
  assert_string_equal(ifname, "eth0");

  /* A line far longer than any route, then a good one. */
  size_t big = 20000;
  char *long_text = malloc(big + 128);
  assert_non_null(long_text);
  memset(long_text, 'A', big);
  long_text[big] = '\n';
  size_t len = big + 1;
  len += route4_line(long_text + len, 128, "eth0", 1, "7");
  assert_int_equal(parse4(long_text, len, out, ifname), 0);
  v4(want, 10, 0, 0, 1);
  assert_memory_equal(out, want, 16);
  /* ...and the same with no newline at all: one huge line, no route. */
  memset(long_text, '0', big);
  assert_int_equal(parse4(long_text, big, out, ifname), -1);
  assert_int_equal(parse6(long_text, big, out, ifname), -1);
  free(long_text);
}

/* Lines that are almost right: each would win (metric 0) if accepted. */
static void test_route_malformed_lines(void **state) {
  (void)state;
  if (!HOST_LE)
    skip();
  static const char text[] =
      "\n"
      "\t\t\n"
      "\r\n"
      "eth9\t00000000\t0100000B\t00\r03\t0\t0\t0\t00000000\n"    /* CR inside a field */
      "eth9\t00000000\t0100000B\t0003\t0\t0\t0\t00000000\r\n"    /* CR ends the last field */
      "eth9\t00000000\t0x00000B\t0003\t0\t0\t0\t00000000\n"      /* 0x prefix */
      "eth9\t00000000\t0100000B\t0003\t+0\t0\t0\t00000000\n"     /* sign on RefCnt */
      "eth9\t00000000\t0100000B\t0003\t0\t0\t-\t00000000\n"      /* lone '-' */
      "eth9\t00000000\t0100000B\t0003\t0\t0\t1-\t00000000\n"     /* trailing '-' */
      "eth9\t00000000\t0100000B\t\t\t0003\t0\t0\t0\n"            /* a field short */
      "eth9\t00000000\t0100000B\t0003\t0\t0\t0\t 0000000 0\n"    /* mask split */
      "eth9\t00000000\t0100000B\t0003\t0\t0\t0\t0000000g\n"      /* non-hex mask */
      "eth9\t00000000\t00000000\t0003\t0\t0\t0\t00000000\n"      /* zero gateway */
      "eth9\t00000001\t0100000B\t0003\t0\t0\t0\t00000000\n"      /* not a default */
      "eth9\t00000000\t0100000B\t0203\t0\t0\t0\t00000000\n"      /* RTF_REJECT */
      "eth0\t00000000\t0100000A\t0003\t0\t0\t9\t00000000\t0\r\n" /* CR after the mask: unread */
      "";
  uint8_t out[16], want[16];
  char ifname[16];
  assert_int_equal(parse4(text, sizeof text - 1, out, ifname), 0);
  v4(want, 10, 0, 0, 1);
  assert_memory_equal(out, want, 16);
  assert_string_equal(ifname, "eth0");

  /* Only NULs, only newlines, only blanks. */
  static const char nuls[16] = {0};
  assert_int_equal(parse4(nuls, sizeof nuls, out, ifname), -1);
  assert_int_equal(parse6(nuls, sizeof nuls, out, ifname), -1);
  assert_int_equal(parse4("\n\n\n", 3, out, ifname), -1);
  assert_int_equal(parse6(" \t \t", 4, out, ifname), -1);
}

static void test_default_gateway_bad_args(void **state) {
  (void)state;
  unsigned scope = 77;
  assert_int_equal(portmap_plat_default_gateway(NULL, 1, NULL, &scope), -1);
  assert_int_equal(scope, 77);
  /* scope is optional */
  uint8_t out[16];
  int r = portmap_plat_default_gateway(NULL, 0, out, NULL);
  assert_true(r == 0 || r == -1);
}

/* The IPv6 addresses of an interface: lo holds ::1 when IPv6 is on. */
static void test_ipv6_addresses(void **state) {
  (void)state;
  uint8_t a[8][16];
  assert_int_equal(portmap_plat_ipv6_addresses(0, a, 8), 0);
  assert_int_equal(portmap_plat_ipv6_addresses(1, a, 0), 0);
  assert_int_equal(portmap_plat_ipv6_addresses(1, NULL, 8), 0);
  unsigned lo = if_nametoindex("lo");
  size_t n = portmap_plat_ipv6_addresses(lo, a, 8);
  assert_true(n <= 8);
  const uint8_t lo6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  int found = 0;
  for (size_t i = 0; i < n; i++)
    found |= memcmp(a[i], lo6, 16) == 0;
  if (n > 0)
    assert_true(found);
  else
    print_message("lo has no IPv6 address here\n");
}

/* ---- random bytes and the clock ------------------------------------------ */

static void test_random_fills(void **state) {
  (void)state;
  assert_int_equal(portmap_plat_random(NULL, 0), 0);

  uint8_t a[80], b[80];
  memset(a, 0xa5, sizeof a);
  memset(b, 0xa5, sizeof b);
  assert_int_equal(portmap_plat_random(a, 64), 0);
  assert_int_equal(portmap_plat_random(b, 64), 0);
  /* only len octets are written */
  for (size_t i = 64; i < sizeof a; i++) {
    assert_int_equal(a[i], 0xa5);
    assert_int_equal(b[i], 0xa5);
  }
  /* two 512-bit draws are equal with probability 2^-512 */
  assert_memory_not_equal(a, b, 64);

  /* A large fill: every octet written, and the bits about balanced. */
  size_t n = 256 * 1024;
  uint8_t *big = malloc(n);
  assert_non_null(big);
  memset(big, 0, n);
  assert_int_equal(portmap_plat_random(big, n), 0);
  uint64_t ones = 0;
  size_t zeros_tail = 0;
  for (size_t i = 0; i < n; i++)
    ones += (uint64_t)__builtin_popcount(big[i]);
  for (size_t i = n; i > 0 && big[i - 1] == 0; i--)
    zeros_tail++;
  assert_true(zeros_tail < 8); /* the end was reached */
  assert_true(ones > (uint64_t)n * 8 * 45 / 100 && ones < (uint64_t)n * 8 * 55 / 100);
  free(big);
}

static void test_now_ms_monotonic(void **state) {
  (void)state;
  uint64_t prev = portmap_plat_now_ms();
  for (int i = 0; i < 10000; i++) {
    uint64_t t = portmap_plat_now_ms();
    assert_true(t >= prev);
    prev = t;
  }
  /* It is CLOCK_MONOTONIC in ms. */
  struct timespec ts;
  assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &ts), 0);
  uint64_t mono = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
  uint64_t t = portmap_plat_now_ms();
  assert_true(t >= mono && t - mono < 1000);
}

/* ---- the wake pipe ------------------------------------------------------- */

static int readable(int fd) {
  struct pollfd p = {fd, POLLIN, 0};
  return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static void assert_nonblock_cloexec(int fd) {
  int fl = fcntl(fd, F_GETFL);
  int fd_fl = fcntl(fd, F_GETFD);
  assert_true(fl >= 0 && (fl & O_NONBLOCK));
  assert_true(fd_fl >= 0 && (fd_fl & FD_CLOEXEC));
}

static void test_wake_round_trip(void **state) {
  (void)state;
  int fds[2] = {-7, -7};
  assert_int_equal(portmap_plat_wake_open(fds), 0);
  assert_true(fds[0] >= 0 && fds[1] >= 0 && fds[0] != fds[1]);
  assert_nonblock_cloexec(fds[0]);
  assert_nonblock_cloexec(fds[1]);
  assert_false(readable(fds[0]));
  portmap_plat_wake_signal(fds[1]);
  assert_true(readable(fds[0]));
  portmap_plat_wake_drain(fds[0]);
  assert_false(readable(fds[0]));
  /* several signals, one drain */
  for (int i = 0; i < 3; i++)
    portmap_plat_wake_signal(fds[1]);
  assert_true(readable(fds[0]));
  portmap_plat_wake_drain(fds[0]);
  assert_false(readable(fds[0]));
  /* draining nothing does not block */
  portmap_plat_wake_drain(fds[0]);
  portmap_plat_wake_close(fds);
  assert_int_equal(fds[0], -1);
  assert_int_equal(fds[1], -1);
  /* all of these are no-ops */
  portmap_plat_wake_close(fds);
  portmap_plat_wake_close(NULL);
  portmap_plat_wake_signal(-1);
  portmap_plat_wake_drain(-1);
}

/* More signals than the pipe holds: none blocks, and one drain empties it. */
static void test_wake_full_pipe(void **state) {
  (void)state;
  int fds[2];
  assert_int_equal(portmap_plat_wake_open(fds), 0);
  int cap = fcntl(fds[1], F_GETPIPE_SZ);
  int n = cap > 0 ? cap + 4096 : 1 << 20;
  for (int i = 0; i < n; i++)
    portmap_plat_wake_signal(fds[1]);
  assert_true(readable(fds[0]));
  portmap_plat_wake_drain(fds[0]);
  assert_false(readable(fds[0]));
  portmap_plat_wake_signal(fds[1]);
  assert_true(readable(fds[0]));
  portmap_plat_wake_close(fds);
}

/* Out of descriptors: -1, errno set, and both ends -1 (never half open). */
static void test_wake_open_fails_cleanly(void **state) {
  (void)state;
  struct rlimit old, none;
  assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
  none = old;
  none.rlim_cur = 0;
  assert_int_equal(setrlimit(RLIMIT_NOFILE, &none), 0);
  int fds[2] = {5, 6};
  errno = 0;
  int r = portmap_plat_wake_open(fds);
  int saved = errno;
  assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
  assert_int_equal(r, -1);
  assert_int_equal(saved, EMFILE);
  assert_int_equal(fds[0], -1);
  assert_int_equal(fds[1], -1);
}

/* ---- sockets, receive and ICMP reports (loopback) ------------------------- */

/* Wait (bounded, no sleep) until fd reports one of events. */
static short wait_for(int fd, short events) {
  struct pollfd p = {fd, events, 0};
  if (poll(&p, 1, 2000) != 1)
    return 0;
  return p.revents;
}

static int sock_type(int fd) {
  int type = -1;
  socklen_t len = sizeof type;
  assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len), 0);
  return type;
}

/* A bound loopback UDP socket (IPv4 or IPv6) and its port. */
static int bound_udp(int ipv6, int icmp, uint16_t *port) {
  int fd = icmp ? portmap_plat_udp_icmp_socket(ipv6) : portmap_plat_socket(ipv6, 0);
  if (fd < 0)
    return -1;
  uint8_t lo[16];
  if (ipv6)
    v6(lo, "::1");
  else
    v4(lo, 127, 0, 0, 1);
  struct sockaddr_storage ss;
  socklen_t sl = portmap_net_to_sockaddr(lo, 0, 0, &ss);
  if (bind(fd, (struct sockaddr *)&ss, sl) != 0) {
    close(fd);
    return -1;
  }
  sl = sizeof ss;
  uint8_t back[16];
  assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &sl), 0);
  assert_int_equal(portmap_net_from_sockaddr((struct sockaddr *)&ss, sl, back, port), 0);
  return fd;
}

/* A loopback port that nobody listens on: bound, then released. */
static uint16_t closed_port(int ipv6) {
  uint16_t port = 0;
  int fd = bound_udp(ipv6, 0, &port);
  assert_true(fd >= 0);
  close(fd);
  return port;
}

static void send_to(int fd, int ipv6, uint16_t port, const void *data, size_t len) {
  uint8_t lo[16];
  if (ipv6)
    v6(lo, "::1");
  else
    v4(lo, 127, 0, 0, 1);
  struct sockaddr_storage ss;
  socklen_t sl = portmap_net_to_sockaddr(lo, port, 0, &ss);
  assert_int_equal(sendto(fd, data, len, 0, (struct sockaddr *)&ss, sl), (ssize_t)len);
}

static void test_socket_kinds(void **state) {
  (void)state;
  int u = portmap_plat_socket(0, 0);
  int t = portmap_plat_socket(0, 1);
  int i = portmap_plat_udp_icmp_socket(0);
  assert_true(u >= 0 && t >= 0 && i >= 0);
  assert_int_equal(sock_type(u), SOCK_DGRAM);
  assert_int_equal(sock_type(t), SOCK_STREAM);
  assert_int_equal(sock_type(i), SOCK_DGRAM);
  assert_nonblock_cloexec(u);
  assert_nonblock_cloexec(t);
  assert_nonblock_cloexec(i);
  int on = 0;
  socklen_t len = sizeof on;
  assert_int_equal(getsockopt(i, IPPROTO_IP, IP_RECVERR, &on, &len), 0);
  assert_int_equal(on, 1);
  close(u);
  close(t);
  close(i);
  int u6 = portmap_plat_socket(1, 0);
  if (u6 < 0 && errno == EAFNOSUPPORT)
    skip();
  assert_true(u6 >= 0);
  assert_int_equal(sock_type(u6), SOCK_DGRAM);
  close(u6);
}

static void test_recv_loopback(void **state) {
  (void)state;
  uint16_t rx_port = 0, tx_port = 0;
  int rx = bound_udp(0, 0, &rx_port);
  int tx = bound_udp(0, 0, &tx_port);
  assert_true(rx >= 0 && tx >= 0);
  uint8_t buf[16], from[16], lo[16];
  uint16_t port = 0;
  size_t len = 0;
  int from_ok = -1;
  v4(lo, 127, 0, 0, 1);
  assert_int_equal(portmap_plat_recv(rx, 0, buf, sizeof buf, &len, from, &port, &from_ok),
                   PORTMAP_PLAT_RECV_NONE);

  send_to(tx, 0, rx_port, "0123456789", 10);
  assert_true(wait_for(rx, POLLIN) & POLLIN);
  /* PEEK and TRUNC: four octets copied, the whole length told, still queued */
  memset(buf, 0, sizeof buf);
  assert_int_equal(portmap_plat_recv(rx, PORTMAP_PLAT_RECV_PEEK | PORTMAP_PLAT_RECV_TRUNC, buf, 4,
                                     &len, from, &port, &from_ok),
                   PORTMAP_PLAT_RECV_OK);
  assert_int_equal(len, 10);
  assert_memory_equal(buf, "0123", 4);
  assert_int_equal(buf[4], 0);
  assert_int_equal(from_ok, 1);
  assert_memory_equal(from, lo, 16);
  assert_int_equal(port, tx_port);
  /* without TRUNC a short buffer gets what fits, and the rest is gone */
  assert_int_equal(portmap_plat_recv(rx, 0, buf, 4, &len, from, &port, &from_ok),
                   PORTMAP_PLAT_RECV_OK);
  assert_int_equal(len, 4);
  assert_int_equal(portmap_plat_recv(rx, 0, buf, sizeof buf, &len, from, &port, &from_ok),
                   PORTMAP_PLAT_RECV_NONE);

  send_to(tx, 0, rx_port, "abc", 3);
  assert_true(wait_for(rx, POLLIN) & POLLIN);
  assert_int_equal(
      portmap_plat_recv(rx, PORTMAP_PLAT_RECV_TRUNC, buf, sizeof buf, &len, from, &port, &from_ok),
      PORTMAP_PLAT_RECV_OK);
  assert_int_equal(len, 3);
  assert_memory_equal(buf, "abc", 3);
  close(rx);
  close(tx);
}

/* A source that is no IP address: from_ok 0 and from zeroed. */
static void test_recv_non_ip_source(void **state) {
  (void)state;
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
  assert_int_equal(send(sv[1], "x", 1, 0), 1);
  uint8_t buf[4], from[16], zero[16] = {0};
  uint16_t port = 99;
  size_t len = 0;
  int from_ok = -1;
  memset(from, 0xaa, sizeof from);
  assert_int_equal(portmap_plat_recv(sv[0], 0, buf, sizeof buf, &len, from, &port, &from_ok),
                   PORTMAP_PLAT_RECV_OK);
  assert_int_equal(len, 1);
  assert_int_equal(from_ok, 0);
  assert_memory_equal(from, zero, 16);
  assert_int_equal(port, 0);
  close(sv[0]);
  close(sv[1]);
  assert_int_equal(portmap_plat_recv(-1, 0, buf, sizeof buf, &len, from, &port, &from_ok),
                   PORTMAP_PLAT_RECV_NONE);
}

/* A connected socket hears ICMP port unreachable as ECONNREFUSED: REFUSED
 * once, then nothing. */
static void test_recv_refused_connected(void **state) {
  (void)state;
  uint16_t dead = closed_port(0);
  int fd = portmap_plat_socket(0, 0);
  assert_true(fd >= 0);
  uint8_t lo[16];
  v4(lo, 127, 0, 0, 1);
  struct sockaddr_storage ss;
  socklen_t sl = portmap_net_to_sockaddr(lo, dead, 0, &ss);
  assert_int_equal(connect(fd, (struct sockaddr *)&ss, sl), 0);
  assert_int_equal(send(fd, "ping", 4, 0), 4);
  assert_true(wait_for(fd, POLLIN) & POLLERR);
  uint8_t buf[8], from[16];
  uint16_t port;
  size_t len;
  int from_ok;
  assert_int_equal(portmap_plat_recv(fd, 0, buf, sizeof buf, &len, from, &port, &from_ok),
                   PORTMAP_PLAT_RECV_REFUSED);
  assert_int_equal(portmap_plat_recv(fd, 0, buf, sizeof buf, &len, from, &port, &from_ok),
                   PORTMAP_PLAT_RECV_NONE);
  close(fd);
}

/* Q21: an unconnected ICMP socket hears port unreachable too: REFUSED from
 * recv, then the report itself from the queue, once. */
static void icmp_unconnected(int ipv6) {
  uint16_t dead = closed_port(ipv6);
  uint16_t own = 0;
  int fd = bound_udp(ipv6, 1, &own);
  assert_true(fd >= 0);
  assert_int_equal(portmap_plat_icmp_read(fd), -1); /* nothing queued yet */
  send_to(fd, ipv6, dead, "ping", 4);
  assert_true(wait_for(fd, POLLIN) & POLLERR);
  uint8_t buf[8], from[16];
  uint16_t port;
  size_t len;
  int from_ok;
  assert_int_equal(
      portmap_plat_recv(fd, PORTMAP_PLAT_RECV_TRUNC, buf, sizeof buf, &len, from, &port, &from_ok),
      PORTMAP_PLAT_RECV_REFUSED);
  assert_int_equal(portmap_plat_icmp_read(fd), 1);
  assert_int_equal(portmap_plat_icmp_read(fd), -1);
  assert_int_equal(portmap_plat_recv(fd, 0, buf, sizeof buf, &len, from, &port, &from_ok),
                   PORTMAP_PLAT_RECV_NONE);
  /* the other order: reading the report clears the pending error too, so
   * the next send is not refused and recv has nothing */
  send_to(fd, ipv6, dead, "a", 1);
  assert_true(wait_for(fd, POLLIN) & POLLERR);
  assert_int_equal(portmap_plat_icmp_read(fd), 1);
  assert_int_equal(portmap_plat_icmp_read(fd), -1);
  assert_int_equal(portmap_plat_recv(fd, 0, buf, sizeof buf, &len, from, &port, &from_ok),
                   PORTMAP_PLAT_RECV_NONE);
  send_to(fd, ipv6, dead, "b", 1);
  assert_true(wait_for(fd, POLLIN) & POLLERR);
  assert_int_equal(portmap_plat_icmp_read(fd), 1);
  close(fd);
}

static void test_icmp_unconnected_v4(void **state) {
  (void)state;
  icmp_unconnected(0);
}

static void test_icmp_unconnected_v6(void **state) {
  (void)state;
  uint16_t port;
  int fd = bound_udp(1, 1, &port);
  if (fd < 0)
    skip(); /* no IPv6 loopback here */
  close(fd);
  icmp_unconnected(1);
}

static void test_icmp_read_bad(void **state) {
  (void)state;
  assert_int_equal(portmap_plat_icmp_read(-1), -1);
  int fd = portmap_plat_socket(0, 0); /* no RECVERR: never a report */
  assert_true(fd >= 0);
  assert_int_equal(portmap_plat_icmp_read(fd), -1);
  close(fd);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_route4_single),
      cmocka_unit_test(test_route4_multi),
      cmocka_unit_test(test_route4_negative_metric),
      cmocka_unit_test(test_route4_none),
      cmocka_unit_test(test_route4_garbage_lines),
      cmocka_unit_test(test_route4_truncated),
      cmocka_unit_test(test_route6_table),
      cmocka_unit_test(test_route6_global_gateway),
      cmocka_unit_test(test_route6_none_and_garbage),
      cmocka_unit_test(test_route6_truncated),
      cmocka_unit_test(test_route_fuzz),
      cmocka_unit_test(test_route4_lowest_metric_wins),
      cmocka_unit_test(test_route6_lowest_metric_wins),
      cmocka_unit_test(test_route_missing_fields),
      cmocka_unit_test(test_route_overlong_fields),
      cmocka_unit_test(test_route_malformed_lines),
      cmocka_unit_test(test_default_gateway_reads),
      cmocka_unit_test(test_default_gateway_bad_args),
      cmocka_unit_test(test_local_address_v4),
      cmocka_unit_test(test_local_address_v6),
      cmocka_unit_test(test_local_address_bad),
      cmocka_unit_test(test_ipv6_addresses),
      cmocka_unit_test(test_random_fills),
      cmocka_unit_test(test_now_ms_monotonic),
      cmocka_unit_test(test_wake_round_trip),
      cmocka_unit_test(test_wake_full_pipe),
      cmocka_unit_test(test_wake_open_fails_cleanly),
      cmocka_unit_test(test_socket_kinds),
      cmocka_unit_test(test_recv_loopback),
      cmocka_unit_test(test_recv_non_ip_source),
      cmocka_unit_test(test_recv_refused_connected),
      cmocka_unit_test(test_icmp_unconnected_v4),
      cmocka_unit_test(test_icmp_unconnected_v6),
      cmocka_unit_test(test_icmp_read_bad),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
