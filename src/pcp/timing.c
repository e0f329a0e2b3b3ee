/* SPDX-License-Identifier: MIT */
/*
 * Pure PCP timing rules (RFC 6887 sections 8.1.1, 11.2.1, 8.5): no clocks,
 * no randomness source, no state beyond what the caller passes in.
 * All arithmetic is integer; 64-bit intermediates keep every product in
 * range.
 */
#include "pcp/timing.h"

#include <stddef.h>

#define RND_MAX 0xFFFFFFFFu

/* A uniform point of [lo, hi] picked by rnd: rnd 0 gives lo, rnd
 * 0xFFFFFFFF gives hi. (hi - lo) stays below 2^31 for every caller, so the
 * product fits in 64 bits. */
static uint64_t pick(uint64_t lo, uint64_t hi, uint32_t rnd) {
  return lo + (hi - lo) * rnd / RND_MAX;
}

/* ---- retransmission, section 8.1.1 (C1-C3) ---- */

void pcp_retx_init(pcp_retx_t *r, uint32_t irt_ms, uint32_t mrt_ms, uint32_t mrc, uint32_t mrd_ms) {
  if (r == NULL)
    return;
  /* C1: the defaults (IRT 3 s, MRT 1024 s, MRC 0, MRD 0) are the caller's. */
  r->irt_ms = irt_ms;
  r->mrt_ms = mrt_ms;
  r->mrc = mrc;
  r->mrd_ms = mrd_ms;
  r->rt_ms = 0;
  r->sends = 0;
  r->start_ms = 0;
}

uint32_t pcp_retx_next(pcp_retx_t *r, uint64_t now_ms, uint32_t rnd) {
  if (r == NULL)
    return 0;
  uint64_t elapsed = 0;
  uint64_t base;
  if (r->sends == 0) {
    r->start_ms = now_ms;
    base = r->irt_ms; /* C2: RT1 = (1 + RAND) * IRT */
  } else {
    elapsed = now_ms > r->start_ms ? now_ms - r->start_ms : 0;
    /* C3: MRC sends made, or MRD elapsed since the first: give up. */
    if (r->mrc != 0 && r->sends >= r->mrc)
      return 0;
    if (r->mrd_ms != 0 && elapsed >= r->mrd_ms)
      return 0;
    /* C2: RTn = (1 + RAND) * MIN(2 * RTprev, MRT), RTprev the randomised
     * previous value. An MRT of 0 is taken as "no cap". */
    base = 2 * (uint64_t)r->rt_ms;
    if (r->mrt_ms != 0 && base > r->mrt_ms)
      base = r->mrt_ms;
  }
  /* C2: RAND uniform in [-0.1, +0.1]: (1 + RAND) * base is uniform in
   * [0.9 * base, 1.1 * base]. */
  uint64_t rt = pick(base * 9 / 10, base * 11 / 10, rnd);
  if (rt == 0)
    rt = 1; /* 0 means "do not send"; keep a degenerate IRT of 0 distinct */
  if (rt > UINT32_MAX)
    rt = UINT32_MAX;
  r->rt_ms = (uint32_t)rt;
  r->sends++;

  /* C3: with MRD set, the wait ends no later than start + MRD. */
  uint64_t wait = rt;
  if (r->mrd_ms != 0 && wait > r->mrd_ms - elapsed)
    wait = r->mrd_ms - elapsed;
  return (uint32_t)wait;
}

/* ---- renewal schedule, section 11.2.1 (H4, H5) ---- */

#define RENEW_MIN_SPACING_MS 4000u

uint32_t pcp_renew_delay(uint32_t lifetime_s, unsigned attempt, uint64_t elapsed_ms, uint32_t rnd) {
  /* H4: schedule from the granted lifetime, an absurd one (> 24 h) as 24 h. */
  uint64_t life = (lifetime_s > PCP_MAX_LIFETIME ? PCP_MAX_LIFETIME : lifetime_s) * 1000ull;
  if (elapsed_ms >= life)
    return 0;
  uint64_t remaining = life - elapsed_ms;

  /* H5: renew at a uniform point of [1/2, 5/8] of the lifetime; failing
   * that at [3/4, 3/4 + 1/16], then [7/8, 7/8 + 1/32]; after that halfway
   * between now and expiry. A window already behind us also falls back to
   * halfway. */
  uint64_t target = 0;
  switch (attempt) {
  case 0:
    target = pick(life / 2, life * 5 / 8, rnd);
    break;
  case 1:
    target = pick(life * 3 / 4, life * 13 / 16, rnd);
    break;
  case 2:
    target = pick(life * 7 / 8, life * 29 / 32, rnd);
    break;
  default:
    break;
  }
  uint64_t delay = target > elapsed_ms ? target - elapsed_ms : remaining / 2;

  /* H5: a retry never less than 4 s after the previous attempt (taken to
   * be now). When 4 s from now is past the expiry, no retry at all: RFC
   * 6887 section 11.2.1 forbids renewals less than four seconds apart,
   * naming a flood of ever-closer ones before the expiry (halving the time
   * left would send a dozen in the last seconds); the mapping lapses and
   * is re-created. The spacing is between renewals: the first one (attempt
   * 0) follows the grant, not a renewal; it is moved to 4 s when that fits
   * before the expiry, else keeps its [1/2, 5/8] point (a 4 s lease is
   * renewed at 2-2.5 s). */
  if (delay < RENEW_MIN_SPACING_MS) {
    if (RENEW_MIN_SPACING_MS < remaining)
      delay = RENEW_MIN_SPACING_MS;
    else if (attempt > 0)
      return 0; /* a retry that cannot keep the spacing */
  }
  if (delay == 0 || delay >= remaining)
    return 0; /* no attempt fits before expiry */
  return (uint32_t)delay;
}

/* ---- epoch, section 8.5 (E1-E4) ---- */

int pcp_epoch_check(pcp_epoch_t *e, uint32_t server_epoch, uint64_t now_ms) {
  if (e == NULL)
    return 0;
  int valid = 1; /* E1: the first response from a server is valid */
  if (e->have) {
    /* E2: time going backwards by more than one second is invalid,
     * curr < prev - 1, written without the unsigned wrap of prev - 1. */
    if ((uint64_t)server_epoch + 1 < e->prev_server) {
      valid = 0;
    } else {
      /* E3: both deltas in whole seconds (integer division, as the RFC's
       * arithmetic implies); the server delta may be -1 here. The 2
       * allows for each clock's one-second resolution, the 1/16 for
       * clocks running up to 6.25% apart. */
      int64_t client_delta =
          now_ms > e->prev_client_ms ? (int64_t)((now_ms - e->prev_client_ms) / 1000) : 0;
      int64_t server_delta = (int64_t)server_epoch - (int64_t)e->prev_server;
      if (client_delta + 2 < server_delta - server_delta / 16 ||
          server_delta + 2 < client_delta - client_delta / 16)
        valid = 0;
    }
  }
  /* E4: record after EVERY response, valid or not; otherwise a single
   * reboot makes every later response look invalid (a renewal storm). */
  e->have = 1;
  e->prev_server = server_epoch;
  e->prev_client_ms = now_ms;
  return valid;
}
