/* SPDX-License-Identifier: MIT */
/*
 * Pure PCP timing rules: retransmission (RFC 6887 section 8.1.1, checklist
 * C1-C3), renewal schedule (section 11.2.1, checklist H4/H5) and epoch
 * validation (section 8.5, checklist E1-E4). No clocks: callers pass now
 * (ms) and a random value.
 */
#ifndef PORTMAP_PCP_TIMING_H
#define PORTMAP_PCP_TIMING_H

#include <stdint.h>

/* ---- retransmission (C1-C3) ---- */
typedef struct pcp_retx {
  uint32_t irt_ms, mrt_ms, mrc, mrd_ms; /* config; 0 mrc/mrd = no limit */
  uint32_t rt_ms;                       /* last RT */
  uint32_t sends;                       /* how many times the request has been sent */
  uint64_t start_ms;                    /* time of the first send */
} pcp_retx_t;

void pcp_retx_init(pcp_retx_t *r, uint32_t irt_ms, uint32_t mrt_ms, uint32_t mrc, uint32_t mrd_ms);
/* Call just before each send, the first included. rnd is a uniform 32-bit
 * random number, freshly drawn per call. Returns the time in ms to wait
 * after this send before the next one (C2: RT1=(1+RAND)*IRT,
 * RTn=(1+RAND)*min(2*RTprev, MRT), RAND uniform in [-0.1,+0.1]); or 0 when
 * this send must not happen: MRC sends were made already or MRD has
 * elapsed since the first send (C3). With MRD set, the returned wait is
 * clipped so that it ends no later than start+MRD. */
uint32_t pcp_retx_next(pcp_retx_t *r, uint64_t now_ms, uint32_t rnd);

/* ---- renewal schedule (H4, H5) ---- */
/* Lifetimes above this are treated as 24 h (H4). */
#define PCP_MAX_LIFETIME 86400u
/* Delay in ms from the grant until renewal attempt n (0: in [1/2,5/8] of
 * the lifetime, 1: [3/4, 3/4+1/16], 2: [7/8, 7/8+1/32], later: halfway to
 * expiry), never less than 4 s after the previous attempt (H5), also near
 * the expiry. elapsed_ms is the time already spent since the grant;
 * lifetime_s is the granted lifetime. Returns the delay from now, or 0 when
 * the mapping would expire before another attempt 4 s from now fits. */
uint32_t pcp_renew_delay(uint32_t lifetime_s, unsigned attempt, uint64_t elapsed_ms, uint32_t rnd);

/* ---- epoch (E1-E4) ---- */
typedef struct pcp_epoch {
  int have;             /* a previous response was seen */
  uint32_t prev_server; /* seconds */
  uint64_t prev_client_ms;
} pcp_epoch_t;

/* Validate server_epoch received at now_ms and record it (always, E4).
 * Returns 1 when valid (or the first, E1), 0 when the server lost state. */
int pcp_epoch_check(pcp_epoch_t *e, uint32_t server_epoch, uint64_t now_ms);

#endif
