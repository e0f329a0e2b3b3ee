/* SPDX-License-Identifier: MIT */
/* Unit tests for the PCP timing rules (src/pcp/timing.c). Test names carry
 * the checklist ID they prove (docs/RFC-CHECKLIST.md). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "pcp/timing.h"

#define RMAX 0xFFFFFFFFu
#define IRT 3000u
#define MRT 1024000u

/* ---- C: retransmission ---- */

static void test_C1_defaults_are_the_callers(void **state) {
  (void)state;
  pcp_retx_t r;
  pcp_retx_init(&r, IRT, MRT, 0, 0);
  assert_int_equal(r.irt_ms, IRT);
  assert_int_equal(r.mrt_ms, MRT);
  assert_int_equal(r.mrc, 0);
  assert_int_equal(r.mrd_ms, 0);
  assert_int_equal(r.sends, 0);
  /* MRC = MRD = 0: no limit, however long */
  uint64_t now = 0;
  for (int i = 0; i < 1000; i++) {
    uint32_t w = pcp_retx_next(&r, now, (uint32_t)i * 2654435761u);
    assert_true(w > 0);
    now += w;
  }
  assert_int_equal(r.sends, 1000);
  /* a shorter LAN probe budget is just other numbers */
  pcp_retx_init(&r, 250, 1000, 3, 0);
  assert_int_equal(pcp_retx_next(&r, 0, 0), 225);
}

static void test_C2_rt1_bounds(void **state) {
  (void)state;
  pcp_retx_t r;
  pcp_retx_init(&r, IRT, MRT, 0, 0);
  assert_int_equal(pcp_retx_next(&r, 1000, 0), 2700); /* (1 - 0.1) * IRT */
  assert_int_equal(r.start_ms, 1000);
  pcp_retx_init(&r, IRT, MRT, 0, 0);
  assert_int_equal(pcp_retx_next(&r, 0, RMAX), 3300); /* (1 + 0.1) * IRT */
  pcp_retx_init(&r, IRT, MRT, 0, 0);
  uint32_t mid = pcp_retx_next(&r, 0, 0x80000000u);
  assert_true(mid >= 2999 && mid <= 3001);
}

/* Every RTn for constant rnd, against the formula computed here. */
static void check_sequence(uint32_t rnd, const uint32_t *first, size_t n_first) {
  pcp_retx_t r;
  pcp_retx_init(&r, IRT, MRT, 0, 0);
  uint64_t now = 0;
  uint64_t prev = 0;
  for (int i = 0; i < 40; i++) {
    uint32_t rt = pcp_retx_next(&r, now, rnd);
    uint64_t base = i == 0 ? IRT : (2 * prev < MRT ? 2 * prev : MRT);
    uint64_t want = rnd == 0 ? base * 9 / 10 : base * 11 / 10;
    assert_int_equal(rt, want);
    assert_true(rt >= base * 9 / 10 && rt <= base * 11 / 10);
    if ((size_t)i < n_first)
      assert_int_equal(rt, first[i]);
    prev = rt;
    now += rt;
  }
}

static void test_C2_doubling_bounds_min_rnd(void **state) {
  (void)state;
  /* 2700, 0.9 * 5400, 0.9 * 9720, ... */
  static const uint32_t first[] = {2700, 4860, 8748, 15746};
  check_sequence(0, first, sizeof first / sizeof first[0]);
}

static void test_C2_doubling_bounds_max_rnd(void **state) {
  (void)state;
  static const uint32_t first[] = {3300, 7260, 15972, 35138};
  check_sequence(RMAX, first, sizeof first / sizeof first[0]);
}

static void test_C2_cap_at_mrt(void **state) {
  (void)state;
  pcp_retx_t r;
  pcp_retx_init(&r, IRT, MRT, 0, 0);
  uint32_t rt = 0;
  for (int i = 0; i < 30; i++)
    rt = pcp_retx_next(&r, 0, RMAX);
  assert_int_equal(rt, MRT / 10 * 11); /* (1 + 0.1) * MRT, and it stays there */
  assert_int_equal(pcp_retx_next(&r, 0, RMAX), 1126400);
  assert_int_equal(pcp_retx_next(&r, 0, 0), 921600); /* (1 - 0.1) * MRT */
  assert_int_equal(pcp_retx_next(&r, 0, 0), 921600); /* min(2 * 921600, MRT) */
}

static void test_C2_rand_drawn_per_call(void **state) {
  (void)state;
  pcp_retx_t r;
  pcp_retx_init(&r, IRT, MRT, 0, 0);
  assert_int_equal(pcp_retx_next(&r, 0, 0), 2700);
  /* RT2 = (1 + RAND) * 5400 with a new RAND: the top of the range now */
  assert_int_equal(pcp_retx_next(&r, 2700, RMAX), 5940);
}

static void test_C3_mrc_give_up(void **state) {
  (void)state;
  pcp_retx_t r;
  pcp_retx_init(&r, IRT, MRT, 3, 0);
  uint64_t now = 0;
  for (int i = 0; i < 3; i++) {
    uint32_t w = pcp_retx_next(&r, now, 0);
    assert_true(w > 0);
    now += w;
  }
  assert_int_equal(r.sends, 3);
  assert_int_equal(pcp_retx_next(&r, now, 0), 0);
  assert_int_equal(pcp_retx_next(&r, now + 100000, 0), 0);
  assert_int_equal(r.sends, 3);
}

static void test_C3_mrd_give_up_and_clip(void **state) {
  (void)state;
  pcp_retx_t r;
  pcp_retx_init(&r, IRT, MRT, 0, 10000);
  assert_int_equal(pcp_retx_next(&r, 500, RMAX), 3300);
  /* RT2 would be 7260 but only 6700 of the 10 s are left */
  assert_int_equal(pcp_retx_next(&r, 3800, RMAX), 6700);
  assert_int_equal(pcp_retx_next(&r, 10500, RMAX), 0);
  assert_int_equal(r.sends, 2);
  /* MRD shorter than RT1 */
  pcp_retx_init(&r, IRT, MRT, 0, 1000);
  assert_int_equal(pcp_retx_next(&r, 0, 0), 1000);
  assert_int_equal(pcp_retx_next(&r, 999, 0), 1);
  assert_int_equal(pcp_retx_next(&r, 1000, 0), 0);
}

static void test_C3_whichever_first(void **state) {
  (void)state;
  pcp_retx_t r;
  /* MRD first */
  pcp_retx_init(&r, IRT, MRT, 10, 5000);
  uint64_t now = 0;
  uint32_t w;
  int sends = 0;
  while ((w = pcp_retx_next(&r, now, 0)) != 0) {
    sends++;
    now += w;
  }
  assert_int_equal(sends, 2); /* 2700, then clipped to 2300 */
  assert_int_equal(now, 5000);
  /* MRC first */
  pcp_retx_init(&r, IRT, MRT, 2, 600000);
  now = 0;
  sends = 0;
  while ((w = pcp_retx_next(&r, now, 0)) != 0) {
    sends++;
    now += w;
  }
  assert_int_equal(sends, 2);
  assert_int_equal(now, 2700 + 4860);
}

/* ---- H4, H5: renewal ---- */

static void test_H5_attempt0_window(void **state) {
  (void)state;
  /* 7200 s: [3600 s, 4500 s] */
  assert_int_equal(pcp_renew_delay(7200, 0, 0, 0), 3600000);
  assert_int_equal(pcp_renew_delay(7200, 0, 0, RMAX), 4500000);
  uint32_t mid = pcp_renew_delay(7200, 0, 0, 0x80000000u);
  assert_true(mid > 3600000 && mid < 4500000);
  /* the delay is from now: 1000 ms already spent */
  assert_int_equal(pcp_renew_delay(7200, 0, 1000, 0), 3599000);
}

static void test_H5_attempt1_window(void **state) {
  (void)state;
  /* [3/4, 3/4 + 1/16] of 7200 s = [5400 s, 5850 s], asked at 4500 s */
  assert_int_equal(pcp_renew_delay(7200, 1, 4500000, 0), 900000);
  assert_int_equal(pcp_renew_delay(7200, 1, 4500000, RMAX), 1350000);
}

static void test_H5_attempt2_window(void **state) {
  (void)state;
  /* [7/8, 7/8 + 1/32] of 7200 s = [6300 s, 6525 s], asked at 5850 s */
  assert_int_equal(pcp_renew_delay(7200, 2, 5850000, 0), 450000);
  assert_int_equal(pcp_renew_delay(7200, 2, 5850000, RMAX), 675000);
}

static void test_H5_later_attempts_halfway_to_expiry(void **state) {
  (void)state;
  assert_int_equal(pcp_renew_delay(7200, 3, 6525000, 0), 337500);
  assert_int_equal(pcp_renew_delay(7200, 3, 6525000, RMAX), 337500);
  assert_int_equal(pcp_renew_delay(7200, 7, 7100000, 12345), 50000);
  /* a window already behind us falls back to halfway too */
  assert_int_equal(pcp_renew_delay(7200, 0, 5000000, 0), 1100000);
}

static void test_H5_min_spacing_4s(void **state) {
  (void)state;
  /* 60 s lifetime, attempt 1 asked late at 44 s: window start 45 s is
   * only 1 s away, so 4 s */
  assert_int_equal(pcp_renew_delay(60, 1, 44000, 0), 4000);
  /* 6 s lifetime, attempt 0 window [3 s, 3.75 s]: raised to 4 s */
  assert_int_equal(pcp_renew_delay(6, 0, 0, 0), 4000);
  assert_int_equal(pcp_renew_delay(6, 0, 0, RMAX), 4000);
  /* halfway of 6 s left is 3 s: raised to 4 s */
  assert_int_equal(pcp_renew_delay(60, 5, 54000, 0), 4000);
  /* everything >= 4 s whenever more than 4 s remain */
  for (uint64_t e = 0; e < 56000; e += 250)
    for (unsigned a = 0; a < 5; a++) {
      uint32_t d = pcp_renew_delay(60, a, e, 0x12345678u);
      assert_true(d >= 4000);
      assert_true(e + d < 60000);
    }
}

static void test_H5_no_attempt_fits(void **state) {
  (void)state;
  /* 4 s or less left: an attempt 4 s after this one would come after the
   * expiry, and an earlier one would break the spacing (RFC 6887 section
   * 11.2.1: no flood of ever-closer renewals before the expiry): none */
  assert_int_equal(pcp_renew_delay(60, 4, 56000, 0), 0);
  /* ...but the first renewal follows the grant, not a renewal: a 4 s lease
   * is renewed at [1/2, 5/8] of it all the same (lab_pcp_thirdparty) */
  assert_int_equal(pcp_renew_delay(4, 0, 0, 0), 2000);
  assert_int_equal(pcp_renew_delay(4, 0, 0, RMAX), 2500);
  assert_int_equal(pcp_renew_delay(4, 1, 2000, 0), 0); /* its retry would be 4 s later */
  assert_int_equal(pcp_renew_delay(60, 4, 59998, 0), 0);
  assert_int_equal(pcp_renew_delay(60, 2, 56500, RMAX), 0); /* in the window, 3.5 s left */
  /* just over 4 s left: exactly 4 s */
  assert_int_equal(pcp_renew_delay(60, 4, 55999, 0), 4000);
  /* nothing fits */
  assert_int_equal(pcp_renew_delay(60, 4, 59999, 0), 0);
  assert_int_equal(pcp_renew_delay(60, 0, 60000, 0), 0);
  assert_int_equal(pcp_renew_delay(60, 0, 1000000, 0), 0);
  assert_int_equal(pcp_renew_delay(0, 0, 0, 0), 0);
}

/* H5 over every point of a lifetime: an attempt is either none, or before
 * the expiry and, when it is a retry, at least 4 s away. */
static void test_H5_never_less_than_4s(void **state) {
  (void)state;
  static const uint32_t rnds[] = {0, 0x12345678u, 0x80000000u, RMAX};
  static const uint32_t lifetimes[] = {4, 5, 8, 24, 60};
  for (size_t l = 0; l < sizeof lifetimes / sizeof lifetimes[0]; l++)
    for (uint64_t e = 0; e <= lifetimes[l] * 1000ull; e += 125)
      for (unsigned a = 0; a < 8; a++)
        for (size_t k = 0; k < sizeof rnds / sizeof rnds[0]; k++) {
          uint32_t d = pcp_renew_delay(lifetimes[l], a, e, rnds[k]);
          if (d != 0) {
            assert_true(a == 0 || d >= 4000); /* a retry: 4 s after the previous try */
            assert_true(e + d < lifetimes[l] * 1000ull);
          }
        }
}

static void test_H4_absurd_lifetime_clamped(void **state) {
  (void)state;
  assert_int_equal(pcp_renew_delay(86400, 0, 0, 0), 43200000);
  assert_int_equal(pcp_renew_delay(86401, 0, 0, 0), 43200000);
  assert_int_equal(pcp_renew_delay(0xFFFFFFFFu, 0, 0, 0), 43200000);
  assert_int_equal(pcp_renew_delay(0xFFFFFFFFu, 0, 0, RMAX), 54000000);
  assert_int_equal(pcp_renew_delay(0xFFFFFFFFu, 2, 0, RMAX), 78300000);
  /* expiry counts from the clamped lifetime as well */
  assert_int_equal(pcp_renew_delay(0xFFFFFFFFu, 9, 86400000, 0), 0);
}

/* ---- E: epoch ---- */

static void test_E1_first_response_valid(void **state) {
  (void)state;
  pcp_epoch_t e = {0};
  assert_int_equal(pcp_epoch_check(&e, 123456, 999999), 1);
  assert_true(e.have);
  assert_int_equal(e.prev_server, 123456);
  assert_int_equal(e.prev_client_ms, 999999);
  pcp_epoch_t z = {0};
  assert_int_equal(pcp_epoch_check(&z, 0, 0), 1);
}

static void test_E2_backwards(void **state) {
  (void)state;
  pcp_epoch_t e = {0};
  pcp_epoch_check(&e, 1000, 0);
  /* back by one second: tolerated */
  assert_int_equal(pcp_epoch_check(&e, 999, 500), 1);
  /* back by two: invalid */
  e.prev_server = 1000;
  e.prev_client_ms = 0;
  assert_int_equal(pcp_epoch_check(&e, 998, 500), 0);
}

static void test_E2_no_unsigned_wrap(void **state) {
  (void)state;
  /* prev_server 0: a naive curr < prev - 1 would wrap to 0xFFFFFFFF */
  pcp_epoch_t e = {0};
  pcp_epoch_check(&e, 0, 0);
  assert_int_equal(pcp_epoch_check(&e, 0, 1000), 1);
  assert_int_equal(pcp_epoch_check(&e, 3, 4000), 1);
  /* near the top of the range */
  pcp_epoch_t t = {0};
  pcp_epoch_check(&t, 0xFFFFFFF0u, 0);
  assert_int_equal(pcp_epoch_check(&t, 0xFFFFFFFFu, 15000), 1);
  assert_int_equal(pcp_epoch_check(&t, 0xFFFFFFFEu, 15500), 1);
  assert_int_equal(pcp_epoch_check(&t, 0, 16000), 0); /* wrapped = went back */
}

static int check_pair(uint32_t server_delta, uint64_t client_ms) {
  pcp_epoch_t e = {0};
  pcp_epoch_check(&e, 10000, 50000);
  return pcp_epoch_check(&e, 10000 + server_delta, 50000 + client_ms);
}

static void test_E3_delta_rule(void **state) {
  (void)state;
  assert_int_equal(check_pair(100, 100000), 1);
  /* server ahead: client 100, invalid when 102 < s - s/16 */
  assert_int_equal(check_pair(108, 100000), 1); /* 108 - 6 = 102 */
  assert_int_equal(check_pair(109, 100000), 0); /* 109 - 6 = 103 */
  /* server behind: invalid when s + 2 < 100 - 6 */
  assert_int_equal(check_pair(92, 100000), 1);
  assert_int_equal(check_pair(91, 100000), 0);
  /* whole seconds of client time: 100.999 s counts as 100 */
  assert_int_equal(check_pair(108, 100999), 1);
  assert_int_equal(check_pair(109, 101000), 1);
  /* a reboot: small epoch after a long time */
  assert_int_equal(check_pair(3, 3600000), 0);
  /* quick succession */
  assert_int_equal(check_pair(0, 0), 1);
  assert_int_equal(check_pair(2, 0), 1);
  assert_int_equal(check_pair(3, 0), 0);
}

static void test_E4_next_consistent_response_valid_after_invalid(void **state) {
  (void)state;
  /* The libplum/libpcp bug: without recording after an invalid response,
   * every later response is compared with the pre-reboot epoch and found
   * invalid too, re-creating every mapping forever. */
  pcp_epoch_t e = {0};
  assert_int_equal(pcp_epoch_check(&e, 100000, 0), 1);
  assert_int_equal(pcp_epoch_check(&e, 100060, 60000), 1);
  /* the server reboots */
  assert_int_equal(pcp_epoch_check(&e, 5, 70000), 0);
  assert_int_equal(e.prev_server, 5); /* recorded although invalid */
  assert_int_equal(e.prev_client_ms, 70000);
  assert_int_equal(pcp_epoch_check(&e, 15, 80000), 1);
  assert_int_equal(pcp_epoch_check(&e, 75, 140000), 1);
  /* an invalid E2 response is recorded too */
  assert_int_equal(pcp_epoch_check(&e, 10, 141000), 0);
  assert_int_equal(e.prev_server, 10);
  assert_int_equal(pcp_epoch_check(&e, 20, 151000), 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_C1_defaults_are_the_callers),
      cmocka_unit_test(test_C2_rt1_bounds),
      cmocka_unit_test(test_C2_doubling_bounds_min_rnd),
      cmocka_unit_test(test_C2_doubling_bounds_max_rnd),
      cmocka_unit_test(test_C2_cap_at_mrt),
      cmocka_unit_test(test_C2_rand_drawn_per_call),
      cmocka_unit_test(test_C3_mrc_give_up),
      cmocka_unit_test(test_C3_mrd_give_up_and_clip),
      cmocka_unit_test(test_C3_whichever_first),
      cmocka_unit_test(test_H5_attempt0_window),
      cmocka_unit_test(test_H5_attempt1_window),
      cmocka_unit_test(test_H5_attempt2_window),
      cmocka_unit_test(test_H5_later_attempts_halfway_to_expiry),
      cmocka_unit_test(test_H5_min_spacing_4s),
      cmocka_unit_test(test_H5_no_attempt_fits),
      cmocka_unit_test(test_H5_never_less_than_4s),
      cmocka_unit_test(test_H4_absurd_lifetime_clamped),
      cmocka_unit_test(test_E1_first_response_valid),
      cmocka_unit_test(test_E2_backwards),
      cmocka_unit_test(test_E2_no_unsigned_wrap),
      cmocka_unit_test(test_E3_delta_rule),
      cmocka_unit_test(test_E4_next_consistent_response_valid_after_invalid),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
