/* Unit tests for src/util/netutil.c and the public address text functions.
 * Network use: loopback only (127.0.0.1 and ::1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <portmap/portmap.h>

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
  int r = portmap_net_parse_route4(copy, len, out, ifname);
  free(copy);
  return r;
}

static int parse6(const char *text, size_t len, uint8_t out[16], char ifname[16]) {
  char *copy = malloc(len ? len : 1);
  assert_non_null(copy);
  memcpy(copy, text, len);
  int r = portmap_net_parse_route6(copy, len, out, ifname);
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
  assert_int_equal(portmap_net_parse_route4(route4_single, strlen(route4_single), out, NULL), 0);
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
  assert_int_equal(portmap_net_parse_route4(NULL, 10, out, ifname), -1);
  assert_int_equal(portmap_net_parse_route4(route4_single, strlen(route4_single), NULL, NULL), -1);
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
  assert_int_equal(portmap_net_parse_route6(NULL, 5, out, ifname), -1);
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
    int r4 = portmap_net_parse_route4(copy, len, out, ifname);
    if (r4 == 0)
      assert_true(portmap_net_is_v4(out) && strlen(ifname) > 0 && strlen(ifname) < 16);
    int r6 = portmap_net_parse_route6(copy, len, out, ifname);
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
  if (portmap_net_default_gateway(0, out, &ifindex) == 0) {
    assert_true(portmap_net_is_v4(out));
    assert_false(portmap_net_is_unspecified(out));
  }
  if (portmap_net_default_gateway(1, out, &ifindex) == 0)
    assert_false(portmap_net_is_unspecified(out));
  assert_int_equal(portmap_net_default_gateway(0, NULL, NULL), -1);
}

/* ---- local address (loopback only) ---------------------------------------- */

static void test_local_address_v4(void **state) {
  (void)state;
  uint8_t dest[16], out[16];
  v4(dest, 127, 0, 0, 1);
  memset(out, 0xaa, sizeof out);
  assert_int_equal(portmap_net_local_address(dest, 0, out), 0);
  assert_memory_equal(out, dest, 16);
}

static void test_local_address_v6(void **state) {
  (void)state;
  uint8_t dest[16], out[16];
  v6(dest, "::1");
  memset(out, 0xaa, sizeof out);
  int r = portmap_net_local_address(dest, 0, out);
  if (r != 0 && (errno == EAFNOSUPPORT || errno == EADDRNOTAVAIL || errno == ENETUNREACH))
    skip(); /* no IPv6 on this host */
  assert_int_equal(r, 0);
  assert_memory_equal(out, dest, 16);
}

static void test_local_address_bad(void **state) {
  (void)state;
  uint8_t out[16];
  assert_int_equal(portmap_net_local_address(NULL, 0, out), -1);
  assert_int_equal(errno, EINVAL);
}

/* ---- sockaddr ------------------------------------------------------------- */

static void test_sockaddr_v4(void **state) {
  (void)state;
  uint8_t addr[16], back[16];
  uint16_t port = 0;
  struct sockaddr_storage ss;
  v4(addr, 192, 0, 2, 7);
  socklen_t len = portmap_net_to_sockaddr(addr, 5351, 9, &ss);
  assert_int_equal(len, sizeof(struct sockaddr_in));
  const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
  assert_int_equal(sin->sin_family, AF_INET);
  assert_int_equal(sin->sin_port, htons(5351));
  assert_int_equal(sin->sin_addr.s_addr, htonl(0xc0000207));
  assert_int_equal(portmap_net_from_sockaddr((const struct sockaddr *)&ss, len, back, &port), 0);
  assert_memory_equal(back, addr, 16);
  assert_int_equal(port, 5351);
  /* Too short for its family. */
  assert_int_equal(portmap_net_from_sockaddr((const struct sockaddr *)&ss, len - 1, back, &port),
                   -1);
}

static void test_sockaddr_v6(void **state) {
  (void)state;
  uint8_t addr[16], back[16];
  uint16_t port = 0;
  struct sockaddr_storage ss;
  v6(addr, "fe80::1234:5678");
  socklen_t len = portmap_net_to_sockaddr(addr, 65535, 3, &ss);
  assert_int_equal(len, sizeof(struct sockaddr_in6));
  const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
  assert_int_equal(sin6->sin6_family, AF_INET6);
  assert_int_equal(sin6->sin6_port, htons(65535));
  assert_int_equal(sin6->sin6_scope_id, 3);
  assert_memory_equal(&sin6->sin6_addr, addr, 16);
  assert_int_equal(portmap_net_from_sockaddr((const struct sockaddr *)&ss, len, back, &port), 0);
  assert_memory_equal(back, addr, 16);
  assert_int_equal(port, 65535);
  /* port is optional */
  memset(back, 0, sizeof back);
  assert_int_equal(portmap_net_from_sockaddr((const struct sockaddr *)&ss, len, back, NULL), 0);
  assert_memory_equal(back, addr, 16);
  assert_int_equal(portmap_net_from_sockaddr((const struct sockaddr *)&ss, len - 1, back, &port),
                   -1);

  /* An IPv4-mapped address becomes AF_INET, never AF_INET6. */
  v6(addr, "::ffff:10.1.2.3");
  assert_int_equal(portmap_net_to_sockaddr(addr, 1, 0, &ss), sizeof(struct sockaddr_in));
  assert_int_equal(ss.ss_family, AF_INET);
}

static void test_sockaddr_other_family(void **state) {
  (void)state;
  struct sockaddr_un un;
  uint8_t out[16];
  uint16_t port;
  memset(&un, 0, sizeof un);
  un.sun_family = AF_UNIX;
  assert_int_equal(portmap_net_from_sockaddr((const struct sockaddr *)&un, sizeof un, out, &port),
                   -1);
  assert_int_equal(portmap_net_from_sockaddr(NULL, sizeof un, out, &port), -1);
  assert_int_equal(portmap_net_from_sockaddr((const struct sockaddr *)&un, 0, out, &port), -1);
}

/* ---- classification ------------------------------------------------------- */

typedef struct class_case {
  const char *text;
  int is_v4;
  int unspecified;
  int private_;
  int forbidden;
} class_case_t;

static const class_case_t class_cases[] = {
    /* text                 v4 unsp priv forb */
    {"0.0.0.0", 1, 1, 1, 1},
    {"0.1.2.3", 1, 0, 1, 0},
    {"1.1.1.1", 1, 0, 0, 0},
    {"9.255.255.255", 1, 0, 0, 0},
    {"10.0.0.1", 1, 0, 1, 0},
    {"10.255.255.255", 1, 0, 1, 0},
    {"11.0.0.0", 1, 0, 0, 0},
    {"100.63.255.255", 1, 0, 0, 0},
    {"100.64.0.1", 1, 0, 1, 0},
    {"100.127.255.255", 1, 0, 1, 0},
    {"100.128.0.0", 1, 0, 0, 0},
    {"127.0.0.1", 1, 0, 1, 1},
    {"127.255.0.9", 1, 0, 1, 1},
    {"169.253.255.255", 1, 0, 0, 0},
    {"169.254.1.1", 1, 0, 1, 1},
    {"169.255.0.0", 1, 0, 0, 0},
    {"172.15.255.255", 1, 0, 0, 0},
    {"172.16.0.0", 1, 0, 1, 0},
    {"172.31.255.255", 1, 0, 1, 0},
    {"172.32.0.0", 1, 0, 0, 0},
    {"192.167.255.255", 1, 0, 0, 0},
    {"192.168.0.1", 1, 0, 1, 0},
    {"192.169.0.0", 1, 0, 0, 0},
    {"198.51.100.7", 1, 0, 0, 0},
    {"223.255.255.255", 1, 0, 0, 0},
    {"224.0.0.1", 1, 0, 0, 1},
    {"239.255.255.250", 1, 0, 0, 1},
    {"240.0.0.1", 1, 0, 0, 0},
    {"255.255.255.254", 1, 0, 0, 0},
    {"255.255.255.255", 1, 0, 0, 1},
    {"::", 0, 1, 1, 1},
    {"::1", 0, 0, 1, 1},
    {"::2", 0, 0, 0, 0},
    {"2001:db8::1", 0, 0, 0, 0},
    {"2606:4700::1111", 0, 0, 0, 0},
    {"fbff:ffff::1", 0, 0, 0, 0},
    {"fc00::1", 0, 0, 1, 0},
    {"fd12:3456::1", 0, 0, 1, 0},
    {"fdff:ffff::1", 0, 0, 1, 0},
    {"fe00::1", 0, 0, 0, 0},
    {"fe7f::1", 0, 0, 0, 0},
    {"fe80::1", 0, 0, 1, 1},
    {"febf:ffff::1", 0, 0, 1, 1},
    {"fec0::1", 0, 0, 0, 0},
    {"ff02::c", 0, 0, 0, 1},
    {"ff0e::1", 0, 0, 0, 1},
    /* IPv4-compatible and other near-misses of the mapped prefix: not v4 */
    {"::a00:1", 0, 0, 0, 0},
    {"::fffe:a00:1", 0, 0, 0, 0},
    {"1::ffff:a00:1", 0, 0, 0, 0},
    {"::1:ffff:a00:1", 0, 0, 0, 0},
};

static void test_classification(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof class_cases / sizeof class_cases[0]; i++) {
    const class_case_t *c = &class_cases[i];
    portmap_addr_t a;
    assert_int_equal(portmap_addr_parse(c->text, &a), PORTMAP_OK);
    int got[4] = {portmap_net_is_v4(a.bytes), portmap_net_is_unspecified(a.bytes),
                  portmap_net_is_private(a.bytes), portmap_net_is_forbidden_target(a.bytes)};
    int want[4] = {c->is_v4, c->unspecified, c->private_, c->forbidden};
    for (int k = 0; k < 4; k++) {
      if (got[k] != want[k])
        fail_msg("%s: predicate %d is %d, expected %d", c->text, k, got[k], want[k]);
    }
  }
}

/* ---- public parse / format ------------------------------------------------ */

static void test_addr_parse(void **state) {
  (void)state;
  portmap_addr_t a;
  uint8_t want[16];
  assert_int_equal(portmap_addr_parse("192.168.1.254", &a), PORTMAP_OK);
  v4(want, 192, 168, 1, 254);
  assert_memory_equal(a.bytes, want, 16);
  assert_int_equal(portmap_addr_parse("::ffff:192.168.1.254", &a), PORTMAP_OK);
  assert_memory_equal(a.bytes, want, 16);
  assert_int_equal(portmap_addr_parse("2001:db8::abcd", &a), PORTMAP_OK);
  v6(want, "2001:db8::abcd");
  assert_memory_equal(a.bytes, want, 16);
  assert_int_equal(portmap_addr_parse("::", &a), PORTMAP_OK);
  memset(want, 0, 16);
  assert_memory_equal(a.bytes, want, 16);

  static const char *const bad[] = {"",          " 1.2.3.4",          "1.2.3.4 ",     "1.2.3",
                                    "1.2.3.4.5", "256.1.1.1",         "1.2.3.-4",     "01.2.3.4x",
                                    "::g",       "1:2:3:4:5:6:7:8:9", "fe80::1%eth0", "[::1]",
                                    "localhost", "1.2.3.4/24",        ":::",          "0x7f.0.0.1"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    memset(a.bytes, 0x5a, 16);
    if (portmap_addr_parse(bad[i], &a) != PORTMAP_ERR_ADDRESS)
      fail_msg("\"%s\" should not parse", bad[i]);
    for (int k = 0; k < 16; k++)
      assert_int_equal(a.bytes[k], 0x5a);
  }
  assert_int_equal(portmap_addr_parse(NULL, &a), PORTMAP_ERR_INVALID);
  assert_int_equal(portmap_addr_parse("1.2.3.4", NULL), PORTMAP_ERR_INVALID);
}

static void test_addr_format(void **state) {
  (void)state;
  portmap_addr_t a;
  char buf[PORTMAP_ADDRSTRLEN];
  v4(a.bytes, 10, 20, 30, 40);
  assert_ptr_equal(portmap_addr_format(&a, buf, sizeof buf), buf);
  assert_string_equal(buf, "10.20.30.40");
  v4(a.bytes, 0, 0, 0, 0);
  assert_string_equal(portmap_addr_format(&a, buf, sizeof buf), "0.0.0.0");
  v6(a.bytes, "2001:db8:0:0:1:0:0:1");
  assert_string_equal(portmap_addr_format(&a, buf, sizeof buf), "2001:db8::1:0:0:1");
  v6(a.bytes, "::1");
  assert_string_equal(portmap_addr_format(&a, buf, sizeof buf), "::1");
  memset(a.bytes, 0xff, 16);
  assert_string_equal(portmap_addr_format(&a, buf, sizeof buf),
                      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");

  /* Exactly big enough, one short, and no room at all. */
  v4(a.bytes, 255, 255, 255, 255);
  char small[16];
  memset(small, 'x', sizeof small);
  assert_ptr_equal(portmap_addr_format(&a, small, 16), small);
  assert_string_equal(small, "255.255.255.255");
  memset(small, 'x', sizeof small);
  assert_ptr_equal(portmap_addr_format(&a, small, 15), small);
  assert_string_equal(small, "");
  memset(small, 'x', sizeof small);
  assert_ptr_equal(portmap_addr_format(&a, small, 0), small);
  assert_int_equal(small[0], 'x');
  assert_null(portmap_addr_format(&a, NULL, 10));
  memset(small, 'x', sizeof small);
  assert_string_equal(portmap_addr_format(NULL, small, sizeof small), "");

  /* Round trips. */
  static const char *const texts[] = {"1.2.3.4", "255.0.255.0", "fe80::1",
                                      "2001:db8::", "64:ff9b::c000:201"};
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    assert_int_equal(portmap_addr_parse(texts[i], &a), PORTMAP_OK);
    assert_string_equal(portmap_addr_format(&a, buf, sizeof buf), texts[i]);
  }
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
      cmocka_unit_test(test_default_gateway_reads),
      cmocka_unit_test(test_local_address_v4),
      cmocka_unit_test(test_local_address_v6),
      cmocka_unit_test(test_local_address_bad),
      cmocka_unit_test(test_sockaddr_v4),
      cmocka_unit_test(test_sockaddr_v6),
      cmocka_unit_test(test_sockaddr_other_family),
      cmocka_unit_test(test_classification),
      cmocka_unit_test(test_addr_parse),
      cmocka_unit_test(test_addr_format),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
