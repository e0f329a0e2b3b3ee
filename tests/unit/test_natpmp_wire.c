/* SPDX-License-Identifier: MIT */
/* Unit tests for the NAT-PMP datagram checks (src/natpmp/wire.c). Test
 * names carry the checklist ID they prove (docs/RFC-CHECKLIST.md). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "natpmp/wire.h"

/* A success answer to a map request (opcode 2 + 128): 16 octets. */
static const uint8_t map_ok[16] = {0,    130,  0,    0,    0, 0, 0x10, 0,
                                   0x1f, 0x40, 0x1f, 0x41, 0, 0, 0x1c, 0x20};
/* A success answer to the public address request: 12 octets. */
static const uint8_t pub_ok[12] = {0, 128, 0, 0, 0, 0, 0, 42, 203, 0, 113, 7};

static void test_N2_response_lengths(void **state) {
  (void)state;
  assert_true(portmap_natpmp_response_ok(map_ok, sizeof map_ok));
  assert_true(portmap_natpmp_response_ok(pub_ok, sizeof pub_ok));
  /* a success shorter than its opcode's response is refused, whatever the cut */
  for (size_t n = 0; n < sizeof map_ok; n++)
    assert_false(portmap_natpmp_response_ok(map_ok, n));
  for (size_t n = 0; n < sizeof pub_ok; n++)
    assert_false(portmap_natpmp_response_ok(pub_ok, n));
  /* an error carries at least the 8-octet header */
  uint8_t err[8] = {0, 130, 0, 3, 0, 0, 0, 1};
  assert_true(portmap_natpmp_response_ok(err, sizeof err));
  assert_false(portmap_natpmp_response_ok(err, 7));
  assert_false(portmap_natpmp_response_ok(NULL, 0));
}

static void test_N2_version_and_opcode(void **state) {
  (void)state;
  uint8_t b[16];
  memcpy(b, map_ok, sizeof b);
  b[0] = 2; /* PCP's version is not ours */
  assert_false(portmap_natpmp_response_ok(b, sizeof b));
  memcpy(b, map_ok, sizeof b);
  for (int op = 0; op < 256; op++) {
    b[1] = (uint8_t)op;
    assert_int_equal(portmap_natpmp_response_ok(b, sizeof b), op >= 128 && op <= 130);
  }
}

static void test_field16_bounds(void **state) {
  (void)state;
  assert_int_equal(portmap_natpmp_field16(map_ok, sizeof map_ok, 8), 0x1f40);
  assert_int_equal(portmap_natpmp_field16(map_ok, sizeof map_ok, 14), 0x1c20);
  assert_int_equal(portmap_natpmp_field16(map_ok, sizeof map_ok, 15), 0); /* one octet left */
  assert_int_equal(portmap_natpmp_field16(map_ok, 9, 8), 0);
  assert_int_equal(portmap_natpmp_field16(map_ok, 10, 8), 0x1f40);
  assert_int_equal(portmap_natpmp_field16(map_ok, sizeof map_ok, (size_t)-1), 0);
}

static void test_N6_announce(void **state) {
  (void)state;
  uint32_t sssoe = 0;
  uint8_t v4[4] = {0};
  assert_int_equal(portmap_natpmp_parse_announce(pub_ok, sizeof pub_ok, &sssoe, v4), 0);
  assert_int_equal(sssoe, 42);
  assert_memory_equal(v4, pub_ok + 8, 4);
  for (size_t n = 0; n < sizeof pub_ok; n++)
    assert_int_equal(portmap_natpmp_parse_announce(pub_ok, n, &sssoe, v4), -1);
  uint8_t b[12];
  memcpy(b, pub_ok, sizeof b);
  b[3] = 1; /* an error is no announcement */
  assert_int_equal(portmap_natpmp_parse_announce(b, sizeof b, &sssoe, v4), -1);
  memcpy(b, pub_ok, sizeof b);
  b[1] = 129;
  assert_int_equal(portmap_natpmp_parse_announce(b, sizeof b, &sssoe, v4), -1);
  memcpy(b, pub_ok, sizeof b);
  b[0] = 2;
  assert_int_equal(portmap_natpmp_parse_announce(b, sizeof b, &sssoe, v4), -1);
}

static void test_N5_epoch_rule(void **state) {
  (void)state;
  /* 100 s of client time: the gateway's epoch is expected at least at
   * 1000 + 87.5 s; more than 2 s below that is a loss */
  uint64_t t0 = 5000000, t1 = t0 + 100000;
  assert_false(portmap_natpmp_epoch_lost(1000, t0, 1100, t1));
  assert_false(portmap_natpmp_epoch_lost(1000, t0, 1086, t1)); /* 1086 + 2 >= 1087.5 */
  assert_true(portmap_natpmp_epoch_lost(1000, t0, 1085, t1));  /* 1085 + 2 < 1087.5 */
  assert_true(portmap_natpmp_epoch_lost(1000, t0, 0, t1));     /* rebooted */
  /* no time elapsed: the same epoch, or up to 2 s less, is fine */
  assert_false(portmap_natpmp_epoch_lost(1000, t0, 998, t0));
  assert_true(portmap_natpmp_epoch_lost(1000, t0, 997, t0));
  /* a clock that went back counts as no time elapsed, never a wrap */
  assert_false(portmap_natpmp_epoch_lost(1000, t1, 1000, t0));
  /* the largest values do not overflow */
  assert_false(portmap_natpmp_epoch_lost(UINT32_MAX, 0, UINT32_MAX, 1000));
  /* nor does 7/8 of the elapsed time: 7 * 2635249153387078803 is 2^64 + 5
   * (caught by fuzz_natpmp's 128-bit reference) */
  assert_true(portmap_natpmp_epoch_lost(1000, 0, 1000, UINT64_C(2635249153387078803)));
  assert_true(portmap_natpmp_epoch_lost(UINT32_MAX, 0, UINT32_MAX, UINT64_MAX));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_N2_response_lengths), cmocka_unit_test(test_N2_version_and_opcode),
      cmocka_unit_test(test_field16_bounds),      cmocka_unit_test(test_N6_announce),
      cmocka_unit_test(test_N5_epoch_rule),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
