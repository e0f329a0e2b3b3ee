/* SPDX-License-Identifier: MIT */
/* Stateful libFuzzer target: the PCP session engine (src/backends/pcp.c)
 * driven through the real client and core with the injected clock and
 * random source, by a script of operations decoded from the input. The
 * gateway is 127.0.0.1; what the client sends goes to a loopback sink
 * (session_common.h) and is seen through the trace sink; answers reach
 * the engine in-process through the backend's datagram input (the PCP
 * vtable's unsolicited(), which is on_datagram(), the function the socket
 * reader calls with each datagram and its source).
 *
 * Script: | config (8) | op | args | op | args | ...   (at most 256 ops)
 *   config: irt, mrt, mrc, mrd, request and destroy timeout selectors, 3 seed octets
 *   0 MAP     flags, port, lifetime, options, nonce selectors
 *   1 PEER    the same with a remote peer
 *   2 REVOKE  handle          3 DETACH handle
 *   4 ANSWER  handle, result, lifetime, epoch, external, mutation, source:
 *             a well-formed response to that handle's request (or one
 *             field off it, so that it matches nothing)
 *   5 RAW     source, length, octets: any datagram
 *   6 ANNOUNCE epoch, result, source   7 NATPMP 8-octet UNSUPP_VERSION
 *   8 ADVANCE the clock by n units (ms, 100 ms, s, min), then process
 *   9 RUN     up to n times: the clock to the next deadline, process
 *  10 DELETE  a delete by a handle's nonce (PORTMAP_FLAG_DELETE)
 *  11 SHUTDOWN portmap_client_shutdown()
 * Everything ends with portmap_client_free().
 *
 * Invariants (abort() on violation), besides session_common.h's:
 * - a datagram that matches no live mapping (wrong source, malformed, or
 *   a MAP/PEER answer whose opcode, nonce, protocol, internal port, peer
 *   or THIRD_PARTY fit none, or an ANNOUNCE) with a valid epoch changes no
 *   mapping, queues no event and moves no mapping timer;
 * - the engine's epoch verdict (stats.epoch_invalid) is that of an
 *   independent model of RFC 6887 section 8.5 (E1-E4);
 * - every datagram sent is a well-formed PCP request to the server, and
 *   none is sent for a mapping after its final event or detach;
 * - for a mapping the input never answered, each sequence of sends
 *   (create, delete) is the identical request (C4), spaced within the
 *   RFC 6887 section 8.1.1 bounds given IRT, MRT and the +-10 % jitter
 *   (C2), at most MRC sends and none after MRD (C3), and never stalled:
 *   after the loop ran, no more time has passed since the last send than
 *   the longest allowed wait.
 *
 * A campaign (clang; one process, the corpus copied so that it can grow):
 *   CC=clang cmake -S . -B build-fuzz -DPORTMAP_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
 *   cmake --build build-fuzz --target fuzz_pcp_session
 *   cp -r tests/fuzz/corpus/pcp_session /tmp/pcp_session
 *   build-fuzz/tests/fuzz/fuzz_pcp_session -max_total_time=3600 /tmp/pcp_session
 * then merge what is new on edges into a copy of the committed corpus:
 *   build-fuzz/tests/fuzz/fuzz_pcp_session -merge=1 -use_counters=0 MERGED_DIR /tmp/pcp_session
 * FZ_DEBUG=1 build/tests/fuzz/fuzz_pcp_session_replay DIR prints each operation and event. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pcp/wire.h"
#include "session_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PCP_IDX 0 /* portmap_backend_index(PORTMAP_BACKEND_PCP) */

typedef struct seq {
  size_t n;
  uint64_t first_ms, last_ms;
  uint64_t lb, ub; /* the shortest and longest wait after the last send */
  size_t len;
  uint8_t bytes[PCP_MAX_PACKET];
} seq_t;

typedef struct pcp_h {
  uint8_t nonce[PCP_NONCE_LEN];
  int protocol;
  uint16_t iport;
  int is_peer;
  uint8_t peer[16];
  uint16_t peer_port;
  int has_tp;
  uint8_t tp[16];
  uint16_t sugg_port;
  uint32_t lifetime;
  int answered;  /* a datagram fit its request: its schedule is its own */
  int untracked; /* shares its request with another handle */
  seq_t seq[2];  /* [0] create, [1] delete */
} pcp_h_t;

typedef struct ps {
  fz_session_t s;
  pcp_h_t p[FZ_MAX_HANDLES];
  uint16_t server_port;
  uint32_t irt, mrt, mrc, mrd;
  int server_open;
  int timing_off; /* a trace record was dropped: sends may be unseen */
  /* the epoch model (E1-E4) */
  int ep_have;
  uint32_t ep_prev;
  uint64_t ep_prev_ms;
} ps_t;

static void v4(uint8_t out[16], uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  memset(out, 0, 16);
  out[10] = out[11] = 0xff;
  out[12] = a;
  out[13] = b;
  out[14] = c;
  out[15] = d;
}

static void put16(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v) {
  put16(p, v >> 16);
  put16(p + 2, v);
}

/* ---------- the retransmission bounds (C2) ---------- */

static uint64_t rt_of(uint64_t base, unsigned tenths) {
  uint64_t rt = base * tenths / 10;
  if (rt == 0)
    rt = 1;
  return rt > UINT32_MAX ? UINT32_MAX : rt;
}

static uint64_t next_base(uint64_t rt, uint32_t mrt) {
  uint64_t b = 2 * rt;
  return mrt != 0 && b > mrt ? mrt : b;
}

static uint32_t delete_mrc(uint32_t mrc) {
  return mrc == 0 || mrc > 4 ? 4 : mrc; /* a delete is bounded even when creates are not */
}

static void on_send(ps_t *P, size_t j, const pcp_msg_t *msg, const uint8_t *d, size_t len) {
  pcp_h_t *p = &P->p[j];
  if (p->answered || p->untracked || P->timing_off)
    return;
  int del = msg->lifetime == 0;
  seq_t *q = &p->seq[del];
  uint64_t now = P->s.env.now;
  uint32_t mrc = del ? delete_mrc(P->mrc) : P->mrc;
  if (q->n == 0) {
    q->n = 1;
    q->first_ms = q->last_ms = now;
    q->len = len;
    memcpy(q->bytes, d, len);
    q->lb = rt_of(P->irt, 9);
    q->ub = rt_of(P->irt, 11);
    return;
  }
  fz_check(len == q->len && memcmp(d, q->bytes, len) == 0); /* C4 */
  fz_check(now - q->last_ms >= q->lb);                      /* C2 */
  fz_check(mrc == 0 || q->n + 1 <= mrc);                    /* C3 */
  fz_check(P->mrd == 0 || now - q->first_ms < P->mrd);      /* C3 */
  q->n++;
  q->last_ms = now;
  q->lb = rt_of(next_base(q->lb, P->mrt), 9);
  q->ub = rt_of(next_base(q->ub, P->mrt), 11);
}

static int key_match(const pcp_h_t *p, const pcp_msg_t *r) {
  if (r->opcode != (p->is_peer ? PCP_OP_PEER : PCP_OP_MAP))
    return 0;
  if (memcmp(r->nonce, p->nonce, PCP_NONCE_LEN) != 0 || r->protocol != p->protocol ||
      r->internal_port != p->iport)
    return 0;
  if (p->is_peer && (r->peer_port != p->peer_port || memcmp(r->peer_addr, p->peer, 16) != 0))
    return 0;
  if (r->has_third_party && (!p->has_tp || memcmp(r->third_party, p->tp, 16) != 0))
    return 0;
  return 1;
}

static void trace_cb(int sent, const char *peer, uint16_t port, const uint8_t *d, size_t len,
                     void *user) {
  ps_t *P = user;
  if (!sent)
    return;
  if (fz_debug())
    fprintf(stderr, "t=%llu sent %zu octets to %s:%u\n", (unsigned long long)P->s.env.now, len,
            peer, port);
  fz_check(strcmp(peer, "127.0.0.1") == 0 && port == P->server_port);
  pcp_msg_t msg;
  fz_check(pcp_decode_request(d, len, &msg) == PCP_WIRE_OK);
  if (msg.opcode == PCP_OP_ANNOUNCE)
    return;
  size_t hits = 0, alive = 0, last = 0;
  for (size_t j = 0; j < P->s.n; j++) {
    if (!key_match(&P->p[j], &msg))
      continue;
    hits++;
    if (fz_alive(&P->s.h[j])) {
      alive++;
      last = j;
    }
  }
  fz_check(hits > 0);  /* ours */
  fz_check(alive > 0); /* nothing for a mapping that has ended */
  if (hits > 1) {
    for (size_t j = 0; j < P->s.n; j++)
      if (key_match(&P->p[j], &msg))
        P->p[j].untracked = 1;
    return;
  }
  on_send(P, last, &msg, d, len);
}

/* Any event restarts what the schedule is measured from (a mapping the
 * core retries after LOST starts a fresh sequence of the same request). */
static void on_event(fz_session_t *s, size_t i, portmap_event_t ev, const portmap_info_t *info) {
  ps_t *P = (ps_t *)s;
  (void)ev;
  (void)info;
  memset(&P->p[i].seq, 0, sizeof P->p[i].seq);
}

/* After the loop ran: no unanswered request waits longer than it may. */
static void check_stall(ps_t *P) {
  pthread_mutex_lock(&P->s.c->mu);
  if (P->s.c->log_dropped > 0)
    P->timing_off = 1;
  pthread_mutex_unlock(&P->s.c->mu);
  if (P->timing_off)
    return;
  for (size_t j = 0; j < P->s.n; j++) {
    pcp_h_t *p = &P->p[j];
    if (!fz_alive(&P->s.h[j]) || p->answered || p->untracked)
      continue;
    const seq_t *q = p->seq[1].n > 0 ? &p->seq[1] : &p->seq[0];
    if (q->n > 0)
      fz_check(P->s.env.now - q->last_ms <= q->ub);
  }
}

static void process(ps_t *P) {
  fz_process(&P->s);
  check_stall(P);
}

/* ---------- the epoch model: RFC 6887 section 8.5, E1-E4 ---------- */

static int epoch_valid(ps_t *P, uint32_t epoch) {
  uint64_t now = P->s.env.now;
  int valid = 1; /* E1 */
  if (P->ep_have) {
    int64_t cur = epoch, prev = P->ep_prev;
    if (cur < prev - 1) {
      valid = 0; /* E2 */
    } else {
      int64_t cd = (int64_t)((now - P->ep_prev_ms) / 1000);
      int64_t sd = cur - prev;
      if (cd + 2 < sd - sd / 16 || sd + 2 < cd - cd / 16)
        valid = 0; /* E3 */
    }
  }
  P->ep_have = 1; /* E4: every response */
  P->ep_prev = epoch;
  P->ep_prev_ms = now;
  return valid;
}

static uint32_t epoch_now(const ps_t *P) {
  if (!P->ep_have)
    return 1000;
  return P->ep_prev + (uint32_t)((P->s.env.now - P->ep_prev_ms) / 1000);
}

/* ---------- delivering a datagram ---------- */

static void deliver(ps_t *P, const uint8_t from[16], uint16_t from_port, const uint8_t *d,
                    size_t len) {
  portmap_client_t *c = P->s.c;
  if (len > PCP_MAX_PACKET + 4)
    len = PCP_MAX_PACKET + 4; /* what the socket reader hands on */
  uint8_t server[16];
  v4(server, 127, 0, 0, 1);
  int from_server = memcmp(from, server, 16) == 0 && from_port == P->server_port;
  int must_not_change = 1, epoch_checked = 0, valid = 1;
  if (from_server && P->server_open) {
    pcp_msg_t r;
    int w = pcp_decode_response(d, len, &r);
    if (w == PCP_WIRE_NATPMP) {
      must_not_change = 0; /* F2: ends what this server never granted */
      for (size_t j = 0; j < P->s.n; j++)
        P->p[j].answered = 1;
    } else if (w == PCP_WIRE_OK) {
      epoch_checked = 1;
      valid = epoch_valid(P, r.epoch);
      int fits = 0;
      for (size_t j = 0; j < P->s.n; j++) {
        if (r.opcode != PCP_OP_ANNOUNCE && key_match(&P->p[j], &r)) {
          P->p[j].answered = 1;
          fits |= fz_alive(&P->s.h[j]);
        }
      }
      must_not_change = valid && !fits;
    }
  }
  fz_snap_t *before = malloc(sizeof *before), *after = malloc(sizeof *after);
  fz_check(before != NULL && after != NULL);
  pthread_mutex_lock(&c->mu);
  uint64_t invalid0 = c->stats.epoch_invalid;
  fz_snap_take(c, before);
  c->be_ops[PCP_IDX]->unsolicited(c->be_state[PCP_IDX], from, from_port, d, len, P->s.env.now);
  fz_snap_take(c, after);
  uint64_t invalid1 = c->stats.epoch_invalid;
  portmap_client_unlock(c);
  if (must_not_change)
    fz_snap_same(before, after);
  if (epoch_checked)
    fz_check(invalid1 - invalid0 == (valid ? 0u : 1u));
  else
    fz_check(invalid1 == invalid0);
  free(before);
  free(after);
  process(P);
}

static void source(ps_t *P, uint8_t sel, uint8_t from[16], uint16_t *port) {
  v4(from, 127, 0, 0, 1);
  *port = P->server_port;
  if (sel % 8 == 6)
    *port = (uint16_t)(P->server_port + 1); /* B3: another port */
  else if (sel % 8 == 7)
    v4(from, 127, 0, 0, 2); /* another host */
}

static const uint8_t RESULTS[] = {0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 0, 0, 200};
static const uint32_t LIFETIMES[] = {0xFFFFFFFFu, 0, 1, 4, 30, 120, 3600, 86400, 86401, 7200};

static uint32_t pick_epoch(ps_t *P, fz_in_t *in, uint8_t sel) {
  uint32_t e = epoch_now(P);
  switch (sel % 8) {
  case 0:
  case 1:
  case 2:
    return e; /* in step with our clock */
  case 3:
    return (uint32_t)(sel >> 3); /* a reboot */
  case 4:
    return P->ep_prev - 2; /* back by two seconds: E2 */
  case 5:
    return e + 100000; /* far ahead: E3 */
  case 6:
    return P->ep_prev - 1; /* back by one: still valid (E2) */
  default:
    return fz_u32(in);
  }
}

/* A response to handle i's request, maybe with one field off it. */
static void op_answer(ps_t *P, fz_in_t *in) {
  uint8_t hsel = fz_u8(in), rsel = fz_u8(in), lsel = fz_u8(in), esel = fz_u8(in);
  uint8_t xsel = fz_u8(in), msel = fz_u8(in), ssel = fz_u8(in);
  pcp_h_t dummy;
  memset(&dummy, 0, sizeof dummy);
  dummy.protocol = 6;
  dummy.iport = 4000;
  const pcp_h_t *p = P->s.n > 0 ? &P->p[hsel % P->s.n] : &dummy;
  uint8_t pkt[PCP_MAX_PACKET];
  memset(pkt, 0, sizeof pkt);
  size_t len = PCP_HEADER_LEN;
  uint8_t opcode = p->is_peer ? PCP_OP_PEER : PCP_OP_MAP;
  uint8_t result = RESULTS[rsel % sizeof RESULTS];
  uint32_t lifetime = LIFETIMES[lsel % 10];
  if (lifetime == 0xFFFFFFFFu)
    lifetime = p->lifetime != 0 ? p->lifetime : 7200;
  if (lsel >= 250)
    lifetime = fz_u16(in);
  uint8_t nonce[PCP_NONCE_LEN];
  memcpy(nonce, p->nonce, sizeof nonce);
  uint8_t proto = (uint8_t)p->protocol;
  uint16_t iport = p->iport;
  int r_bit = 1, version = 2;
  switch (msel % 16) {
  case 8:
    nonce[(msel >> 4) % PCP_NONCE_LEN] ^= 1; /* D3: another nonce */
    break;
  case 9:
    proto = (uint8_t)(proto + 1);
    break;
  case 10:
    iport = (uint16_t)(iport + 1);
    break;
  case 11:
    opcode = opcode == PCP_OP_MAP ? PCP_OP_PEER : PCP_OP_MAP;
    break;
  case 12:
    r_bit = 0; /* A10: a request, not a response */
    break;
  case 13:
    version = 1;
    break;
  default:
    break;
  }
  pkt[0] = (uint8_t)version;
  pkt[1] = (uint8_t)((r_bit ? 0x80 : 0) | opcode);
  pkt[3] = result;
  put32(pkt + 4, lifetime);
  put32(pkt + 8, pick_epoch(P, in, esel));
  uint8_t *m = pkt + PCP_HEADER_LEN;
  memcpy(m, nonce, PCP_NONCE_LEN);
  m[12] = proto;
  put16(m + 16, iport);
  uint16_t eport = (xsel & 3) == 0   ? (p->sugg_port != 0 ? p->sugg_port : p->iport)
                   : (xsel & 3) == 1 ? p->iport
                   : (xsel & 3) == 2 ? (uint16_t)(40000 + (xsel >> 2))
                                     : 0;
  put16(m + 18, eport);
  v4(m + 20, 203, 0, 113, (uint8_t)(9 + ((xsel >> 2) & 3)));
  if (((xsel >> 4) & 3) == 3)
    v4(m + 20, 10, 0, 0, 5); /* private: double NAT (Q17) */
  len += PCP_MAP_LEN;
  if (opcode == PCP_OP_PEER) {
    put16(m + 36, p->peer_port);
    memcpy(m + 40, p->peer, 16);
    len += PCP_PEER_LEN - PCP_MAP_LEN;
  }
  if (p->has_tp && !(xsel & 0x40)) { /* THIRD_PARTY echoed (or, 0x80, another) */
    uint8_t *o = pkt + len;
    o[0] = PCP_OPT_THIRD_PARTY;
    put16(o + 2, 16);
    memcpy(o + 4, p->tp, 16);
    if (xsel & 0x80)
      o[19] ^= 1;
    len += 20;
  } else if (xsel & 0x80) { /* an unknown optional option (A11) */
    uint8_t *o = pkt + len;
    o[0] = 200;
    put16(o + 2, 4);
    len += 8;
  }
  uint8_t from[16];
  uint16_t port;
  source(P, ssel, from, &port);
  deliver(P, from, port, pkt, len);
}

static void op_raw(ps_t *P, fz_in_t *in) {
  uint8_t ssel = fz_u8(in);
  size_t want = fz_u16(in) % (PCP_MAX_PACKET + 8), got;
  const uint8_t *d = fz_bytes(in, want, &got);
  uint8_t from[16];
  uint16_t port;
  source(P, ssel, from, &port);
  deliver(P, from, port, d, got);
}

static void op_announce(ps_t *P, fz_in_t *in) {
  uint8_t esel = fz_u8(in), rsel = fz_u8(in), ssel = fz_u8(in);
  uint8_t pkt[PCP_HEADER_LEN];
  memset(pkt, 0, sizeof pkt);
  pkt[0] = 2;
  pkt[1] = 0x80 | PCP_OP_ANNOUNCE;
  pkt[3] = RESULTS[rsel % sizeof RESULTS];
  put32(pkt + 8, pick_epoch(P, in, esel));
  uint8_t from[16];
  uint16_t port;
  source(P, ssel, from, &port);
  deliver(P, from, port, pkt, sizeof pkt);
}

static void op_natpmp(ps_t *P, fz_in_t *in) {
  uint8_t osel = fz_u8(in), ssel = fz_u8(in);
  uint8_t pkt[8] = {0, (uint8_t)(0x80 | (osel & 3)), 0, 1, 0, 0, 0, 0};
  put32(pkt + 4, epoch_now(P));
  if (osel & 0x80)
    pkt[3] = 0; /* a NAT-PMP success is not the F2 answer: malformed */
  uint8_t from[16];
  uint16_t port;
  source(P, ssel, from, &port);
  deliver(P, from, port, pkt, sizeof pkt);
}

/* ---------- requests ---------- */

static const char *const PEERS[] = {"198.51.100.7", "203.0.113.50", "192.0.2.1", "198.51.100.8"};
static const char *const THIRD[] = {"127.0.0.5", "192.168.1.77", "10.1.1.1", "127.0.0.6"};
static const uint32_t REQ_LIFETIMES[] = {0, 1, 10, 60, 120, 3600, 86400, 86401};

static void op_map(ps_t *P, fz_in_t *in, int peer, int delete_of) {
  uint8_t f = fz_u8(in), psel = fz_u8(in), lsel = fz_u8(in), nsel = fz_u8(in);
  fz_handle_t *h = fz_slot(&P->s);
  if (h == NULL)
    return;
  pcp_h_t *p = &P->p[P->s.n];
  memset(p, 0, sizeof *p);
  portmap_request_t req;
  portmap_request_init(&req);
  static const int protos[] = {PORTMAP_PROTO_TCP, PORTMAP_PROTO_UDP, 0, 132};
  req.protocol = protos[f & 3];
  req.internal_port = req.protocol == 0 ? 0 : (uint16_t)(4000 + (psel & 7));
  if (psel & 0x08)
    req.external_port = (uint16_t)(5000 + (psel >> 4));
  req.lifetime = REQ_LIFETIMES[lsel & 7];
  req.ipv6 = (lsel & 0x70) == 0x70; /* no IPv6 gateway: refused */
  h->revoke_in_cb = (lsel & 0x80) != 0;
  if (f & 0x04)
    req.flags |= PORTMAP_FLAG_ONCE;
  if (f & 0x08)
    req.flags |= PORTMAP_FLAG_PREFER_FAILURE;
  if (f & 0x10)
    req.description = (f & 0x20) ? "libportmap fuzz" : "d\xc3\xa9";
  if ((f & 0x30) == 0x30)
    req.flags |= PORTMAP_FLAG_DESCRIPTION_REQUIRED;
  if (f & 0x40)
    req.third_party = THIRD[(psel >> 4) & 3];
  portmap_filter_t filters[2];
  if (f & 0x80) {
    memset(filters, 0, sizeof filters);
    filters[0].remote_address = "198.51.100.0";
    filters[0].prefix_length = 24;
    filters[0].remote_port = 443;
    filters[1].prefix_length = 0;
    req.filters = filters;
    req.n_filters = 1 + (nsel >> 7);
  }
  if (peer) {
    req.peer_address = PEERS[nsel & 3];
    req.peer_port = (uint16_t)(7000 + ((nsel >> 2) & 3));
    req.n_filters = 0;
    req.flags &= ~PORTMAP_FLAG_PREFER_FAILURE;
  }
  /* The nonce is ours (fresh from the script's random source, or an
   * earlier handle's): the handle is known before map() sends anything. */
  uint8_t nonce[PCP_NONCE_LEN];
  fz_random(nonce, sizeof nonce, &P->s.env);
  if ((delete_of >= 0 || (nsel & 0x30) == 0x30) && P->s.n > 0) {
    /* an earlier handle's (a delete after a restart, or a clash) */
    const pcp_h_t *o = &P->p[(size_t)(delete_of >= 0 ? delete_of : nsel) % P->s.n];
    memcpy(nonce, o->nonce, sizeof nonce);
    if (delete_of >= 0) {
      req.flags = PORTMAP_FLAG_DELETE;
      req.protocol = o->protocol;
      req.internal_port = o->iport;
      req.peer_address = NULL;
      req.peer_port = 0;
      req.n_filters = 0;
      req.third_party = NULL;
      req.ipv6 = 0;
    }
  }
  req.nonce = nonce;
  memcpy(p->nonce, nonce, PCP_NONCE_LEN);
  p->protocol = req.protocol;
  p->iport = req.internal_port;
  p->is_peer = req.peer_address != NULL;
  portmap_addr_t a;
  if (req.peer_address != NULL && portmap_addr_parse(req.peer_address, &a) == PORTMAP_OK)
    memcpy(p->peer, a.bytes, 16);
  p->peer_port = req.peer_port;
  p->has_tp = req.third_party != NULL;
  if (req.third_party != NULL && portmap_addr_parse(req.third_party, &a) == PORTMAP_OK)
    memcpy(p->tp, a.bytes, 16);
  p->sugg_port = req.external_port;
  p->lifetime = req.lifetime != 0 ? req.lifetime : 7200;
  /* a clash of requests: whose send is whose cannot be told */
  for (size_t j = 0; j < P->s.n; j++)
    if (memcmp(P->p[j].nonce, p->nonce, PCP_NONCE_LEN) == 0)
      p->untracked = P->p[j].untracked = 1;
  size_t i = P->s.n++; /* registered first: map() traces its first send */
  portmap_mapping_t *m = NULL;
  portmap_status_t st = portmap_map(P->s.c, &req, fz_mapping_cb, &P->s, &m);
  if (st != PORTMAP_OK) {
    fz_check(m == NULL);
    P->s.n = i; /* nothing was sent for it */
    process(P);
    return;
  }
  fz_check(m != NULL);
  P->server_open = 1;
  h->m = m;
  pthread_mutex_lock(&P->s.c->mu);
  fz_check(memcmp(m->req.nonce, p->nonce, PCP_NONCE_LEN) == 0);
  pthread_mutex_unlock(&P->s.c->mu);
  process(P);
}

/* ---------- the loop ---------- */

static void op_advance(ps_t *P, fz_in_t *in) {
  static const uint32_t unit[] = {1, 100, 1000, 60000};
  uint8_t u = fz_u8(in);
  uint16_t n = fz_u16(in);
  P->s.env.now += (uint64_t)n * unit[u & 3];
  process(P);
}

static void op_run(ps_t *P, fz_in_t *in) {
  unsigned n = fz_u8(in) % 16 + 1;
  for (unsigned i = 0; i < n; i++) {
    int t = portmap_timeout_ms(P->s.c);
    if (t < 0)
      break;
    P->s.env.now += (uint64_t)t;
    process(P);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const uint32_t irts[] = {3000, 100, 1000, 250};
  static const uint32_t mrcs[] = {0, 0, 3, 1, 5, 0, 2, 0};
  static const uint32_t mrds[] = {0, 0, 10000, 60000};
  static const uint32_t timeouts[] = {0, 0, 5000, 60000};
  fz_in_t in = {data, size};
  ps_t *P = calloc(1, sizeof *P);
  fz_check(P != NULL);
  P->s.env.now = FZ_CLOCK_START;
  P->s.on_event = on_event;
  P->server_port = fz_sink_port();
  uint8_t c0 = fz_u8(&in), c1 = fz_u8(&in), c2 = fz_u8(&in), c3 = fz_u8(&in), c4 = fz_u8(&in);
  P->s.env.rng = fz_u16(&in) | (uint64_t)fz_u8(&in) << 16;
  P->irt = irts[c0 & 3];
  switch (c1 & 3) {
  case 0:
    P->mrt = 1024000;
    break;
  case 1:
    P->mrt = P->irt * 4;
    break;
  case 2:
    P->mrt = P->irt;
    break;
  default:
    P->mrt = 60000;
    break;
  }
  P->mrc = mrcs[c2 & 7];
  P->mrd = mrds[c3 & 3];
  portmap_config_t cfg;
  fz_config(&P->s, &cfg);
  cfg.backends = PORTMAP_BACKEND_PCP;
  cfg.server_port = P->server_port;
  cfg.pcp_irt_ms = P->irt;
  cfg.pcp_mrt_ms = P->mrt;
  cfg.pcp_mrc = P->mrc;
  cfg.pcp_mrd_ms = P->mrd;
  cfg.request_timeout_ms = timeouts[c4 & 3];
  cfg.destroy_timeout_ms = (c4 & 4) ? 10000 : 0; /* for shutdown; free waits for nothing */
  cfg.trace_cb = trace_cb;
  cfg.trace_user = P;
  fz_client_new(&P->s, &cfg);
  for (int ops = 0; ops < FZ_MAX_OPS && fz_more(&in); ops++) {
    uint8_t op = fz_u8(&in);
    if (fz_debug())
      fprintf(stderr, "t=%llu op %u (%zu octets left)\n", (unsigned long long)P->s.env.now, op % 12,
              in.n);
    switch (op % 12) {
    case 0:
      op_map(P, &in, 0, -1);
      break;
    case 1:
      op_map(P, &in, 1, -1);
      break;
    case 2:
    case 3: {
      uint8_t k = fz_u8(&in);
      if (P->s.n > 0) {
        if (op % 12 == 2)
          fz_revoke(&P->s, k % P->s.n);
        else
          fz_detach(&P->s, k % P->s.n);
      }
      process(P);
      break;
    }
    case 4:
      op_answer(P, &in);
      break;
    case 5:
      op_raw(P, &in);
      break;
    case 6:
      op_announce(P, &in);
      break;
    case 7:
      op_natpmp(P, &in);
      break;
    case 8:
      op_advance(P, &in);
      break;
    case 9:
      op_run(P, &in);
      break;
    case 10:
      op_map(P, &in, 0, fz_u8(&in));
      break;
    default: {
      fz_shutdown(&P->s);
      process(P);
      break;
    }
    }
  }
  fz_finish(&P->s);
  free(P);
  return 0;
}
