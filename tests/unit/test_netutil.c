/* SPDX-License-Identifier: MIT */
/* Unit tests for src/util/netutil.c (sockaddr conversion, classification)
 * and the public address text functions. No network use. The route
 * parsers and the local-address lookup are tested in test_platform.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
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

  /* IPv4 is formatted without inet_ntop(): the same text for every octet
   * value in every position. */
  for (unsigned v = 0; v < 256; v++) {
    for (int pos = 0; pos < 4; pos++) {
      uint8_t q[4] = {1, 20, 255, 0};
      q[pos] = (uint8_t)v;
      char want[INET_ADDRSTRLEN];
      assert_non_null(inet_ntop(AF_INET, q, want, sizeof want));
      v4(a.bytes, q[0], q[1], q[2], q[3]);
      assert_string_equal(portmap_addr_format(&a, buf, sizeof buf), want);
    }
  }
}

/* Issue 11, IPv6 PCP: towards fe80::1 the kernel's source is fe80::...; the
 * request must come from (and map) a global address, else a ULA. */
static void test_pick_mappable6(void **state) {
  (void)state;
  uint8_t c[5][16], out[16], want[16];
  v6(c[0], "fe80::1c2d:3eff:fe4f:5a6b");
  v6(c[1], "fd12:3456:789a::10");
  v6(c[2], "::1");
  v6(c[3], "2001:db8:1:2::10");
  v6(c[4], "ff02::1");
  assert_true(portmap_net_is_link_local6(c[0]));
  assert_false(portmap_net_is_link_local6(c[1]));
  /* global first, whatever its place */
  assert_int_equal(portmap_net_pick_mappable6((const uint8_t(*)[16])c, 5, out), 0);
  v6(want, "2001:db8:1:2::10");
  assert_memory_equal(out, want, 16);
  /* no global: the ULA */
  assert_int_equal(portmap_net_pick_mappable6((const uint8_t(*)[16])c, 3, out), 0);
  v6(want, "fd12:3456:789a::10");
  assert_memory_equal(out, want, 16);
  /* only link-local, loopback, multicast, IPv4: none, out untouched */
  memcpy(c[1], c[0], 16);
  memset(c[3], 0, 16);
  c[3][10] = c[3][11] = 0xff;
  c[3][12] = 192;
  memset(out, 0xaa, 16);
  assert_int_equal(portmap_net_pick_mappable6((const uint8_t(*)[16])c, 5, out), -1);
  for (int i = 0; i < 16; i++)
    assert_int_equal(out[i], 0xaa);
  assert_int_equal(portmap_net_pick_mappable6(NULL, 0, out), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sockaddr_v4),           cmocka_unit_test(test_sockaddr_v6),
      cmocka_unit_test(test_sockaddr_other_family), cmocka_unit_test(test_classification),
      cmocka_unit_test(test_pick_mappable6),        cmocka_unit_test(test_addr_parse),
      cmocka_unit_test(test_addr_format),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
