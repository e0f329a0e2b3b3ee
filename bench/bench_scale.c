/* SPDX-License-Identifier: MIT */
/*
 * Scale benchmark (issue 12, item 7): one client holding N PCP mappings
 * against a PCP responder on loopback, through the public API only.
 *
 * For each N it prints the wall time to establish every mapping, the CPU
 * time of the client's thread per renewal next to the CPU time of one bare
 * sendto+recvfrom exchange of the same size with the same responder
 * (measured in the same run), their ratio, the heap each mapping costs,
 * how many renewals fell inside [1/2, 5/8] of the granted lifetime, and how
 * many deletes were confirmed when the client was freed.
 *
 * Time: the client's clock is injected (clock_cb). The virtual clock moves
 * only when nothing is in flight: every request the client sent has been
 * answered and read, or is known lost (the responder is idle and nothing is
 * readable). It then jumps to the client's next deadline, so a 120 s
 * lifetime renews in no real time and every renewal is sent and answered
 * at the virtual instant it was due. CPU is real: CLOCK_THREAD_CPUTIME_ID of
 * the main thread, which runs the client (the responder has its own
 * thread). During portmap_client_free() the clock follows real time, so
 * the library's delete retransmissions happen as they would in a program.
 *
 * The responder (a thread, recvmmsg/sendmmsg) answers ANNOUNCE and MAP per
 * RFC 6887: nonce and payload echoed, opcode | 0x80, the lifetime asked for
 * (at most 24 h), external address 203.0.113.1 and the suggested port (else
 * the internal one), lifetime-0 deletes (NOT_AUTHORIZED on a foreign nonce),
 * ADDRESS_MISMATCH, option checks, epoch time from the virtual clock. It
 * records when each renewal arrives relative to the grant the client last
 * reported (its mapped or renewed event) and counts the deletes it answered.
 *
 * --backends all enables NAT-PMP and UPnP too (the library's default): the
 * probe then chooses, PCP first; the responder answers the mappings' own
 * requests within the stage delay, so the others are never asked.
 *
 *   build-bench/bench/bench_scale [-n "1000 10000 100000"] [--max-seconds S]
 *       [--lifetime S] [--destroy-ms MS] [--bare K] [--backends pcp|all]
 */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <portmap/portmap.h>

#define HDR_LEN 24
#define MAP_LEN 36
#define MAX_PKT 1100
#define BATCH 64
#define MAX_N 131070u /* 65535 TCP ports, then 65535 UDP ports */
#define SLOT_BARE (2u * 65536u)
#define N_SLOTS (SLOT_BARE + 1u)
#define MAX_FDS 16
#define MAX_RUNS 16

enum { OP_ANNOUNCE = 0, OP_MAP = 1 };
enum {
  R_SUCCESS = 0,
  R_UNSUPP_VERSION = 1,
  R_NOT_AUTHORIZED = 2,
  R_MALFORMED_REQUEST = 3,
  R_UNSUPP_OPCODE = 4,
  R_UNSUPP_OPTION = 5,
  R_MALFORMED_OPTION = 6,
  R_ADDRESS_MISMATCH = 12
};
enum { OPT_PREFER_FAILURE = 2, OPT_FILTER = 3 };

/* ---------- time ---------- */

static _Atomic uint64_t vclock_ms = 10000000u;         /* virtual time: moved by the bench only */
static atomic_int clock_real;                          /* 1: the clock follows real time */
static _Atomic uint64_t real_base_ms, virtual_base_ms; /* set before clock_real is */

static uint64_t mono_ns(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double wall_s(void) {
  return (double)mono_ns(CLOCK_MONOTONIC) / 1e9;
}

static uint64_t cpu_ns(void) {
  return mono_ns(CLOCK_THREAD_CPUTIME_ID);
}

static uint64_t bench_now(void) {
  if (atomic_load(&clock_real))
    return atomic_load(&virtual_base_ms) + mono_ns(CLOCK_MONOTONIC) / 1000000u -
           atomic_load(&real_base_ms);
  return atomic_load(&vclock_ms);
}

static uint64_t clock_cb(void *user) {
  (void)user;
  return bench_now();
}

static void clock_follow_real(int on) {
  if (on) {
    atomic_store(&virtual_base_ms, atomic_load(&vclock_ms));
    atomic_store(&real_base_ms, mono_ns(CLOCK_MONOTONIC) / 1000000u);
  } else {
    atomic_store(&vclock_ms, bench_now());
  }
  atomic_store(&clock_real, on);
}

/* Deterministic "randomness": the same nonces and jitter on every run. */
static uint64_t rng = 0x9e3779b97f4a7c15u;
static int random_cb(void *buf, size_t len, void *user) {
  (void)user;
  uint8_t *p = buf;
  for (size_t i = 0; i < len; i++) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    p[i] = (uint8_t)(rng >> 32);
  }
  return 0;
}

/* ---------- wire helpers ---------- */

static uint16_t get16(const uint8_t *p) {
  return (uint16_t)((p[0] << 8) | p[1]);
}
static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static void put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static void v4mapped(uint8_t out[16], uint32_t host_order) {
  memset(out, 0, 10);
  out[10] = 0xff;
  out[11] = 0xff;
  put32(out + 12, host_order);
}

/* The responder's table: one slot per (protocol, internal port) the bench
 * uses, and one for the bare exchange (protocol 0). */
static uint32_t slot_of(int protocol, uint16_t port) {
  if (protocol == PORTMAP_PROTO_TCP)
    return port;
  if (protocol == PORTMAP_PROTO_UDP)
    return 65536u + port;
  return SLOT_BARE;
}

/* ---------- the responder ---------- */

enum { SLOT_FREE = 0, SLOT_HELD = 1, SLOT_DELETED = 2 };

typedef struct slot {
  uint64_t granted_at; /* virtual ms of the last grant */
  uint64_t life_ms;    /* lifetime granted then */
  uint8_t nonce[12];
  uint8_t state;
} slot_t;

typedef struct responder {
  int fd;
  uint16_t port;
  pthread_t thread;
  atomic_int stop;
  atomic_int busy;      /* 1 from before a read until its answers are sent */
  atomic_int measuring; /* 1 during the renewal round: renewals are timed */
  slot_t *slots;
  /* per slot, the virtual ms at which the client last heard of a grant (its
   * MAPPED, RENEWED or CHANGED event; 0 never) and the lifetime it heard */
  _Atomic uint64_t *client_grant_ms;
  _Atomic uint32_t *client_life_s;
  /* written by the responder thread only */
  _Atomic uint64_t requests, answered, created, renewals, renewals_inside, deletes, errors;
  uint8_t in[BATCH][MAX_PKT + 4];
  uint8_t out[BATCH][MAX_PKT];
  struct sockaddr_in from[BATCH];
  struct iovec in_iov[BATCH], out_iov[BATCH];
  struct mmsghdr in_msg[BATCH], out_msg[BATCH];
} responder_t;

static void count(_Atomic uint64_t *c) {
  atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static uint64_t load(_Atomic uint64_t *c) {
  return atomic_load(c);
}

/* MAP (RFC 6887 section 11.3 for the server's side). The response already
 * holds the request's payload; *alen grows by the options echoed. */
static uint8_t map_request(responder_t *r, const uint8_t *q, size_t len, uint8_t *a, size_t *alen,
                           uint32_t *life) {
  const uint8_t *nonce = q + HDR_LEN;
  uint8_t proto = q[HDR_LEN + 12];
  uint16_t iport = get16(q + HDR_LEN + 16);
  uint16_t suggested = get16(q + HDR_LEN + 18);
  uint32_t want = get32(q + 4);
  /* section 7.3: options are TLVs padded to 4 octets; the ones processed
   * (PREFER_FAILURE, FILTER) are echoed, optional unknown ones ignored,
   * mandatory unknown ones (THIRD_PARTY is not offered here) refused */
  for (size_t off = HDR_LEN + MAP_LEN; off < len;) {
    if (len - off < 4)
      return R_MALFORMED_OPTION;
    size_t olen = get16(q + off + 2);
    size_t padded = (olen + 3u) & ~(size_t)3u;
    if (padded > len - off - 4)
      return R_MALFORMED_OPTION;
    if (q[off] == OPT_PREFER_FAILURE || q[off] == OPT_FILTER) {
      memcpy(a + *alen, q + off, 4 + padded);
      *alen += 4 + padded;
    } else if (q[off] < 128) {
      return R_UNSUPP_OPTION;
    }
    off += 4 + padded;
  }
  if (proto == 0 && iport != 0)
    return R_MALFORMED_REQUEST; /* section 11.1: all protocols means all ports */
  uint32_t idx = slot_of(proto, iport);
  slot_t *s = &r->slots[idx];
  uint64_t now = bench_now();
  int held = s->state == SLOT_HELD && now < s->granted_at + s->life_ms;
  if (held && memcmp(s->nonce, nonce, 12) != 0)
    return R_NOT_AUTHORIZED; /* another client's mapping */
  if (want == 0) {
    /* section 15: a delete; no such mapping is success too */
    if (held) {
      s->state = SLOT_DELETED;
      if (idx != SLOT_BARE)
        count(&r->deletes);
    }
    *life = 0;
    return R_SUCCESS;
  }
  uint64_t client_grant = idx == SLOT_BARE ? 0 : atomic_load(&r->client_grant_ms[idx]);
  if (client_grant != 0 && atomic_load(&r->measuring)) {
    /* A renewal: a request for a mapping whose grant the client has heard
     * of (a retransmitted create is not one). Where in the lifetime the
     * client was granted did it come (section 11.2.1: in [1/2, 5/8])? */
    uint64_t d = now - client_grant;
    uint64_t l = (uint64_t)atomic_load(&r->client_life_s[idx]) * 1000u;
    count(&r->renewals);
    if (2 * d >= l && 8 * d <= 5 * l)
      count(&r->renewals_inside);
  }
  if (!held && idx != SLOT_BARE)
    count(&r->created);
  uint32_t grant = want > 86400u ? 86400u : want;
  s->state = SLOT_HELD;
  memcpy(s->nonce, nonce, 12);
  s->granted_at = now;
  s->life_ms = (uint64_t)grant * 1000u;
  put16(a + HDR_LEN + 18, proto == 0 ? 0 : suggested != 0 ? suggested : iport);
  v4mapped(a + HDR_LEN + 20, 0xcb007101u); /* 203.0.113.1 */
  *life = grant;
  return R_SUCCESS;
}

/* Writes the answer to q into a; returns its length, 0 for no answer. */
static size_t answer(responder_t *r, const uint8_t *q, size_t len, const uint8_t src[16],
                     uint8_t *a) {
  if (len < 2 || (q[1] & 0x80) != 0)
    return 0; /* section 8.3: too short to answer; or a response */
  uint8_t opcode = q[1] & 0x7f;
  uint8_t result = R_SUCCESS;
  uint32_t life = 0;
  size_t alen = HDR_LEN;
  memset(a, 0, HDR_LEN);
  if (q[0] != 2) {
    result = R_UNSUPP_VERSION;
  } else if (len < HDR_LEN || len > MAX_PKT || len % 4 != 0) {
    result = R_MALFORMED_REQUEST;
  } else if (memcmp(q + 8, src, 16) != 0) {
    result = R_ADDRESS_MISMATCH; /* section 8.3: a NAT between us */
  } else if (opcode == OP_MAP) {
    if (len < HDR_LEN + MAP_LEN) {
      result = R_MALFORMED_REQUEST;
    } else {
      memcpy(a + HDR_LEN, q + HDR_LEN, MAP_LEN);
      alen = HDR_LEN + MAP_LEN;
      result = map_request(r, q, len, a, &alen, &life);
      if (result != R_SUCCESS)
        alen = HDR_LEN + MAP_LEN;
    }
  } else if (opcode != OP_ANNOUNCE) {
    result = R_UNSUPP_OPCODE;
  }
  if (result != R_SUCCESS) {
    life = 30; /* section 7.4: how long the error holds */
    count(&r->errors);
  }
  a[0] = 2;
  a[1] = (uint8_t)(opcode | 0x80);
  a[3] = result;
  put32(a + 4, life);
  put32(a + 8, (uint32_t)(bench_now() / 1000u)); /* epoch: seconds of the virtual clock */
  return alen;
}

static void *responder_main(void *arg) {
  responder_t *r = arg;
  while (!atomic_load(&r->stop)) {
    atomic_store(&r->busy, 1);
    for (int i = 0; i < BATCH; i++) {
      r->in_iov[i].iov_base = r->in[i];
      r->in_iov[i].iov_len = sizeof r->in[i];
      memset(&r->in_msg[i], 0, sizeof r->in_msg[i]);
      r->in_msg[i].msg_hdr.msg_iov = &r->in_iov[i];
      r->in_msg[i].msg_hdr.msg_iovlen = 1;
      r->in_msg[i].msg_hdr.msg_name = &r->from[i];
      r->in_msg[i].msg_hdr.msg_namelen = sizeof r->from[i];
    }
    int n = recvmmsg(r->fd, r->in_msg, BATCH, MSG_DONTWAIT, NULL);
    if (n <= 0) {
      atomic_store(&r->busy, 0);
      struct pollfd p = {.fd = r->fd, .events = POLLIN, .revents = 0};
      (void)poll(&p, 1, 50);
      continue;
    }
    unsigned k = 0;
    for (int i = 0; i < n; i++) {
      count(&r->requests);
      size_t len = r->in_msg[i].msg_len;
      if (r->in_msg[i].msg_hdr.msg_flags & MSG_TRUNC)
        len = MAX_PKT + 4; /* longer than any request: malformed */
      uint8_t src[16];
      v4mapped(src, ntohl(r->from[i].sin_addr.s_addr));
      size_t alen = answer(r, r->in[i], len, src, r->out[k]);
      if (alen == 0)
        continue;
      r->out_iov[k].iov_base = r->out[k];
      r->out_iov[k].iov_len = alen;
      memset(&r->out_msg[k], 0, sizeof r->out_msg[k]);
      r->out_msg[k].msg_hdr.msg_iov = &r->out_iov[k];
      r->out_msg[k].msg_hdr.msg_iovlen = 1;
      r->out_msg[k].msg_hdr.msg_name = &r->from[i];
      r->out_msg[k].msg_hdr.msg_namelen = sizeof r->from[i];
      k++;
    }
    for (unsigned sent = 0; sent < k;) {
      int m = sendmmsg(r->fd, r->out_msg + sent, k - sent, 0);
      if (m <= 0) {
        if (m < 0 && errno == EINTR)
          continue;
        break; /* an answer lost, as on a real network */
      }
      for (int j = 0; j < m; j++)
        count(&r->answered);
      sent += (unsigned)m;
    }
  }
  return NULL;
}

static responder_t *responder_start(void) {
  responder_t *r = calloc(1, sizeof *r);
  if (r == NULL)
    return NULL;
  r->slots = calloc(N_SLOTS, sizeof *r->slots);
  r->client_grant_ms = calloc(N_SLOTS, sizeof *r->client_grant_ms);
  r->client_life_s = calloc(N_SLOTS, sizeof *r->client_life_s);
  r->fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t sl = sizeof sa;
  if (r->slots == NULL || r->client_grant_ms == NULL || r->client_life_s == NULL || r->fd < 0 ||
      bind(r->fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
      getsockname(r->fd, (struct sockaddr *)&sa, &sl) != 0)
    goto fail;
  /* A gateway drains its socket fast; a large buffer keeps bursts of
   * 100,000 requests from being lost here, so losses show the client's. */
  int big = 64 << 20;
  if (setsockopt(r->fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big) != 0)
    (void)setsockopt(r->fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  r->port = ntohs(sa.sin_port);
  if (pthread_create(&r->thread, NULL, responder_main, r) != 0)
    goto fail;
  (void)pthread_setname_np(r->thread, "responder"); /* for perf: its CPU is not the client's */
  return r;
fail:
  if (r->fd >= 0)
    close(r->fd);
  free(r->slots);
  free(r->client_grant_ms);
  free(r->client_life_s);
  free(r);
  return NULL;
}

static void responder_stop(responder_t *r) {
  if (r == NULL)
    return;
  atomic_store(&r->stop, 1);
  pthread_join(r->thread, NULL);
  close(r->fd);
  free(r->slots);
  free(r->client_grant_ms);
  free(r->client_life_s);
  free(r);
}

/* Idle: nothing queued on its socket and no batch being answered. The
 * queue is looked at first: a datagram taken after that look was taken
 * with busy set, and busy stays set until its answer is sent. */
static int responder_idle(responder_t *r) {
  int queued = 0;
  if (ioctl(r->fd, FIONREAD, &queued) != 0 || queued != 0)
    return 0;
  return !atomic_load(&r->busy);
}

/* Datagrams the kernel dropped on a socket (last column of /proc/net/udp
 * for its inode); -1 when not known. */
static long udp_drops(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode))
    return -1;
  const char *files[2] = {"/proc/net/udp", "/proc/net/udp6"};
  for (int f = 0; f < 2; f++) {
    FILE *fp = fopen(files[f], "r");
    if (fp == NULL)
      continue;
    char line[512];
    while (fgets(line, sizeof line, fp) != NULL) {
      unsigned long inode = 0;
      long drops = -1;
      if (sscanf(line, "%*s %*s %*s %*s %*s %*s %*s %*s %*s %lu %*s %*s %ld", &inode, &drops) ==
              2 &&
          inode == (unsigned long)st.st_ino) {
        fclose(fp);
        return drops;
      }
    }
    fclose(fp);
  }
  return -1;
}

/* ---------- the client side ---------- */

typedef struct run {
  size_t n;
  portmap_client_t *c;
  responder_t *r;
  uint8_t *renewed;    /* per slot: renewed in the renewal phase */
  uint64_t unanswered; /* sent - received once settled: lost on the way */
  /* events */
  uint64_t mapped_at_establish; /* mapped when the establish phase ended */
  uint64_t mapped, renewed_events, renewed_distinct, changed, lost, failed, deleted;
  uint64_t last_grant_ms;
  int counting_renewals;
  /* results */
  double establish_ms, establish_virtual_s;
  int establish_timeout;
  double cpu_per_renewal_us, renew_s;
  uint64_t renewals_measured;
  int renew_timeout;
  double bare_us;
  double heap_per_mapping;
  uint64_t srv_renewals, srv_inside, srv_deletes, srv_created, srv_errors;
  uint64_t free_deleted, free_failed;
  double free_ms;
  portmap_status_t free_status;
  portmap_stats_t stats;
  long client_drops, responder_drops;
} run_t;

static void on_event(portmap_mapping_t *m, portmap_event_t ev, const portmap_info_t *info,
                     void *user) {
  run_t *run = user;
  (void)m;
  if (ev == PORTMAP_EVENT_MAPPED || ev == PORTMAP_EVENT_RENEWED || ev == PORTMAP_EVENT_CHANGED) {
    uint32_t idx = slot_of(info->protocol, info->internal_port);
    atomic_store(&run->r->client_life_s[idx], info->lifetime);
    atomic_store(&run->r->client_grant_ms[idx], bench_now());
  }
  switch (ev) {
  case PORTMAP_EVENT_MAPPED:
    run->mapped++;
    run->last_grant_ms = bench_now();
    break;
  case PORTMAP_EVENT_RENEWED:
    run->renewed_events++;
    if (run->counting_renewals) {
      uint32_t idx = slot_of(info->protocol, info->internal_port);
      if (!run->renewed[idx]) {
        run->renewed[idx] = 1;
        run->renewed_distinct++;
      }
    }
    break;
  case PORTMAP_EVENT_CHANGED:
    run->changed++;
    break;
  case PORTMAP_EVENT_LOST:
    run->lost++;
    break;
  case PORTMAP_EVENT_FAILED:
    run->failed++;
    break;
  case PORTMAP_EVENT_DELETED:
    run->deleted++;
    break;
  }
}

static nfds_t client_pollfds(run_t *run, struct pollfd *p) {
  int fds[MAX_FDS];
  size_t n = portmap_fds(run->c, fds, MAX_FDS);
  if (n > MAX_FDS)
    n = MAX_FDS;
  for (size_t i = 0; i < n; i++) {
    p[i].fd = fds[i];
    p[i].events = POLLIN;
    p[i].revents = 0;
  }
  return (nfds_t)n;
}

static int client_wait(run_t *run, int timeout_ms) {
  struct pollfd p[MAX_FDS];
  nfds_t n = client_pollfds(run, p);
  return poll(p, n, timeout_ms) > 0;
}

/* 1 when nothing is in flight: every datagram the client sent was answered
 * and read, or is lost (the responder is idle and the client has nothing to
 * read for 2 ms more: the answer to the rest never comes). 0: call
 * portmap_process() again (an answer may be there). This is the wait an
 * application's loop makes anyway (poll until an answer is readable); the
 * idle check only runs when no answer came within 1 ms. */
static int settled(run_t *run) {
  portmap_stats_t st;
  portmap_client_stats(run->c, &st);
  uint64_t out = st.sent - st.received;
  if (out == run->unanswered)
    return 1;
  if (client_wait(run, 1) || !responder_idle(run->r))
    return 0;
  if (client_wait(run, 2) || !responder_idle(run->r))
    return 0;
  run->unanswered = out;
  return 1;
}

enum { PHASE_ESTABLISH, PHASE_RENEW };

static int phase_done(const run_t *run, int phase, uint64_t v_end) {
  if (phase == PHASE_ESTABLISH)
    return run->mapped + run->failed >= run->n;
  return run->renewed_distinct >= run->mapped || bench_now() >= v_end;
}

/* The application's loop for one phase: process, wait in real time for
 * what is in flight, and once settled and not done, move the virtual clock
 * to the client's next deadline. Returns 1 when max_s of real time ran out
 * first; 0 when the phase is done or nothing is left to happen. */
static int drive(run_t *run, int phase, uint64_t v_end, double max_s) {
  double t0 = wall_s();
  for (;;) {
    portmap_process(run->c);
    if (settled(run)) {
      if (phase_done(run, phase, v_end))
        return 0;
      int t = portmap_timeout_ms(run->c);
      if (t < 0)
        return 0;
      if (t > 0)
        atomic_fetch_add(&vclock_ms, (uint64_t)t);
    }
    if (wall_s() - t0 > max_s)
      return 1;
  }
}

/* Its own function, never inlined, so that a profiler can take the renewal
 * round alone: valgrind --tool=callgrind --toggle-collect=renewal_round */
__attribute__((noinline)) static int renewal_round(run_t *run, uint64_t v_end, double max_s) {
  return drive(run, PHASE_RENEW, v_end, max_s);
}

static void make_request(portmap_request_t *req, size_t i, uint32_t lifetime) {
  portmap_request_init(req);
  req->protocol = i < 65535 ? PORTMAP_PROTO_TCP : PORTMAP_PROTO_UDP;
  req->internal_port = (uint16_t)(1 + i % 65535);
  req->lifetime = lifetime;
}

/* The bare exchange: one MAP request of the client's size (60 octets) by
 * sendto, its answer by recvfrom, on a plain UDP socket; CPU per exchange. */
static double bare_exchange_us(responder_t *r, size_t k) {
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  if (s < 0)
    return -1;
  struct timeval tv = {.tv_sec = 1, .tv_usec = 0};
  (void)setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct sockaddr_in to;
  memset(&to, 0, sizeof to);
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons(r->port);
  uint8_t q[HDR_LEN + MAP_LEN], a[MAX_PKT];
  memset(q, 0, sizeof q);
  q[0] = 2;
  q[1] = OP_MAP;
  put32(q + 4, 120);
  v4mapped(q + 8, INADDR_LOOPBACK);
  random_cb(q + HDR_LEN, 12, NULL); /* protocol 0, port 0: the responder's bare slot */
  v4mapped(q + HDR_LEN + 20, 0);
  size_t ok = 0, failures = 0;
  uint64_t c0 = cpu_ns();
  while (ok < k && failures < 3) {
    if (sendto(s, q, sizeof q, 0, (struct sockaddr *)&to, sizeof to) < 0) {
      failures++;
      continue;
    }
    ssize_t n = recvfrom(s, a, sizeof a, 0, NULL, NULL);
    if (n < HDR_LEN + MAP_LEN || a[1] != (0x80 | OP_MAP) || a[3] != R_SUCCESS ||
        memcmp(a + HDR_LEN, q + HDR_LEN, 12) != 0) {
      failures++;
      continue;
    }
    ok++;
  }
  uint64_t c1 = cpu_ns();
  close(s);
  return ok == 0 ? -1 : (double)(c1 - c0) / 1e3 / (double)ok;
}

static void run_one(run_t *run, uint32_t lifetime, double max_s, uint32_t destroy_ms, size_t bare_k,
                    unsigned backends) {
  size_t n = run->n;
  atomic_store(&clock_real, 0);
  run->cpu_per_renewal_us = -1;
  run->bare_us = -1;
  run->renewed = calloc(N_SLOTS, 1);
  run->r = responder_start();
  if (run->renewed == NULL || run->r == NULL) {
    fprintf(stderr, "bench_scale: cannot start the responder\n");
    exit(1);
  }
  portmap_config_t cfg;
  portmap_config_init(&cfg);
  cfg.gateway = "127.0.0.1";
  cfg.backends = backends;
  cfg.server_port = run->r->port;
  cfg.announce_port = -1;
  cfg.clock_cb = clock_cb;
  cfg.random_cb = random_cb;
  cfg.destroy_timeout_ms = destroy_ms;
  if (portmap_client_new(&cfg, &run->c) != PORTMAP_OK) {
    fprintf(stderr, "bench_scale: cannot create a client\n");
    exit(1);
  }

  /* 1. establish: map N, run the loop until every one is mapped */
  fprintf(stderr, "bench_scale: N=%zu: establishing...\n", n);
  struct mallinfo2 before = mallinfo2();
  double t0 = wall_s();
  uint64_t v0 = bench_now();
  portmap_request_t req;
  for (size_t i = 0; i < n; i++) {
    make_request(&req, i, lifetime);
    if (portmap_map(run->c, &req, on_event, run, NULL) != PORTMAP_OK)
      run->failed++;
  }
  run->establish_timeout = drive(run, PHASE_ESTABLISH, 0, max_s);
  run->mapped_at_establish = run->mapped;
  run->establish_ms = (wall_s() - t0) * 1e3;
  run->establish_virtual_s = (double)(bench_now() - v0) / 1e3;
  struct mallinfo2 after = mallinfo2();
  run->heap_per_mapping = ((double)after.uordblks - (double)before.uordblks) / (double)n;

  /* 2. one renewal round: until every mapping renewed once, or a lifetime
   * has passed since the last grant */
  fprintf(stderr, "bench_scale: N=%zu: renewal round...\n", n);
  uint64_t v_end = run->last_grant_ms + (uint64_t)lifetime * 1000u;
  uint64_t ev0 = run->renewed_events;
  run->counting_renewals = 1;
  atomic_store(&run->r->measuring, 1);
  t0 = wall_s();
  uint64_t c0 = cpu_ns();
  run->renew_timeout = renewal_round(run, v_end, max_s);
  uint64_t c1 = cpu_ns();
  run->renew_s = wall_s() - t0;
  run->counting_renewals = 0;
  atomic_store(&run->r->measuring, 0);
  run->renewals_measured = run->renewed_events - ev0;
  if (run->renewals_measured > 0)
    run->cpu_per_renewal_us = (double)(c1 - c0) / 1e3 / (double)run->renewals_measured;
  run->srv_renewals = load(&run->r->renewals);
  run->srv_inside = load(&run->r->renewals_inside);

  /* 3. the bare exchange, same responder, same moment */
  run->bare_us = bare_exchange_us(run->r, bare_k);

  /* 4. free: deletes, the clock following real time */
  int fds[MAX_FDS];
  size_t nf = portmap_fds(run->c, fds, MAX_FDS);
  run->client_drops = -1;
  for (size_t i = 0; i < nf && i < MAX_FDS; i++) {
    long d = udp_drops(fds[i]);
    if (d >= 0)
      run->client_drops = run->client_drops < 0 ? d : run->client_drops + d;
  }
  portmap_client_stats(run->c, &run->stats);
  fprintf(stderr, "bench_scale: N=%zu: freeing...\n", n);
  uint64_t del0 = run->deleted, fail0 = run->failed;
  clock_follow_real(1);
  t0 = wall_s();
  run->free_status = portmap_client_free(run->c);
  run->free_ms = (wall_s() - t0) * 1e3;
  clock_follow_real(0);
  run->c = NULL;
  run->free_deleted = run->deleted - del0;
  run->free_failed = run->failed - fail0;
  /* answers to the last deletes may still be on their way: let it finish */
  for (int i = 0; i < 100 && !responder_idle(run->r); i++)
    usleep(1000);
  run->srv_deletes = load(&run->r->deletes);
  run->srv_created = load(&run->r->created);
  run->srv_errors = load(&run->r->errors);
  run->responder_drops = udp_drops(run->r->fd);
  responder_stop(run->r);
  run->r = NULL;
  free(run->renewed);
  run->renewed = NULL;
}

/* ---------- report ---------- */

static void print_table(const run_t *runs, size_t nruns, double max_s, uint32_t lifetime) {
  printf("\n| N | establish ms | CPU/renewal us | bare us | ratio | heap B/mapping "
         "| renewals in [1/2,5/8] | deletes confirmed |\n");
  printf("|---:|---:|---:|---:|---:|---:|---:|---|\n");
  for (size_t i = 0; i < nruns; i++) {
    const run_t *r = &runs[i];
    char est[128], cpu[128], bare[32], ratio[32];
    int k = snprintf(est, sizeof est, "%.1f", r->establish_ms);
    if (r->establish_virtual_s >= 0.001)
      k += snprintf(est + k, sizeof est - (size_t)k, " (+%.1f s virtual)", r->establish_virtual_s);
    if (r->establish_timeout)
      snprintf(est + k, sizeof est - (size_t)k, " (timeout after %.0f s: %" PRIu64 "/%zu mapped)",
               max_s, r->mapped_at_establish, r->n);
    else if (r->mapped_at_establish < r->n)
      snprintf(est + k, sizeof est - (size_t)k, " (%" PRIu64 "/%zu mapped)", r->mapped_at_establish,
               r->n);
    if (r->cpu_per_renewal_us < 0)
      k = snprintf(cpu, sizeof cpu, "- (no renewal%s)",
                   r->renew_timeout ? ", timeout after the renewal phase's bound" : "");
    else if (r->renew_timeout)
      k = snprintf(cpu, sizeof cpu, "%.1f (timeout after %.0f s, %" PRIu64 " renewals measured)",
                   r->cpu_per_renewal_us, max_s, r->renewals_measured);
    else
      k = snprintf(cpu, sizeof cpu, "%.1f", r->cpu_per_renewal_us);
    if (r->mapped_at_establish < r->n)
      snprintf(cpu + k, sizeof cpu - (size_t)k, " (includes finishing the establishment)");
    if (r->bare_us < 0)
      snprintf(bare, sizeof bare, "-");
    else
      snprintf(bare, sizeof bare, "%.1f", r->bare_us);
    if (r->bare_us > 0 && r->cpu_per_renewal_us >= 0)
      snprintf(ratio, sizeof ratio, "%.1fx", r->cpu_per_renewal_us / r->bare_us);
    else
      snprintf(ratio, sizeof ratio, "-");
    printf("| %zu | %s | %s | %s | %s | %.0f | %" PRIu64 "/%" PRIu64 " | %" PRIu64
           "/%zu (server answered %" PRIu64 "; free took %.0f ms) |\n",
           r->n, est, cpu, bare, ratio, r->heap_per_mapping, r->srv_inside, r->srv_renewals,
           r->free_deleted, r->n, r->srv_deletes, r->free_ms);
  }
  printf("\nDetails:\n");
  for (size_t i = 0; i < nruns; i++) {
    const run_t *r = &runs[i];
    printf("- N=%zu: renewal round %.1f s wall, %" PRIu64 " renewed events (%" PRIu64
           " mappings); events mapped %" PRIu64 " changed %" PRIu64 " lost %" PRIu64
           " failed %" PRIu64 "; client sent %" PRIu64 " received %" PRIu64
           " retransmissions %" PRIu64 " unmatched %" PRIu64 "; client socket drops %ld before "
           "free; free: %.0f ms, %s, %" PRIu64 " deleted + %" PRIu64
           " failed events; responder: %" PRIu64 " mappings created, %" PRIu64
           " error answers, %ld drops\n",
           r->n, r->renew_s, r->renewals_measured, r->renewed_distinct, r->mapped, r->changed,
           r->lost, r->failed, r->stats.sent, r->stats.received, r->stats.retransmissions,
           r->stats.unmatched, r->client_drops, r->free_ms, portmap_strerror(r->free_status),
           r->free_deleted, r->free_failed, r->srv_created, r->srv_errors, r->responder_drops);
    if (r->cpu_per_renewal_us >= 0) {
      /* Virtual time hides how long the CPU takes; a real clock does not:
       * N renewals fall in [1/2, 5/8] of the lifetime, 1/8 of it. */
      double window_s = (double)lifetime / 8.0;
      double need_s = r->cpu_per_renewal_us * (double)r->n / 1e6;
      printf("  in real time: renewing all %zu costs %.2f s of CPU inside a %.0f s window: %.1f%% "
             "of one core%s\n",
             r->n, need_s, window_s, 100.0 * need_s / window_s,
             need_s > window_s ? " (more than a core: renewals would slip out of [1/2, 5/8])" : "");
    }
  }
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: bench_scale [-n \"N1 N2 ...\"] [--max-seconds S] [--lifetime S]\n"
          "                   [--destroy-ms MS] [--bare K] [--backends pcp|all]\n"
          "  -n LIST          mapping counts, 1-%u each (default \"1000 10000 100000\")\n"
          "  --max-seconds S  bound on each timed phase (establish, renewal round) of each N "
          "(120)\n"
          "  --lifetime S     requested lifetime (120)\n"
          "  --destroy-ms MS  destroy_timeout_ms of the client, the bound on free (10000)\n"
          "  --bare K         bare exchanges measured per N (20000)\n"
          "  --backends B     pcp: PCP alone (default); all: PCP, NAT-PMP and UPnP, the probe "
          "choosing\n",
          MAX_N);
}

static int parse_ulong(const char *s, unsigned long lo, unsigned long hi, unsigned long *out) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}

int main(int argc, char **argv) {
  const char *list = "1000 10000 100000";
  unsigned long max_s = 120, lifetime = 120, destroy_ms = 10000, bare_k = 20000;
  unsigned backends = PORTMAP_BACKEND_PCP;
  for (int i = 1; i < argc; i += 2) { /* every option but --help takes a value */
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    int bad = 0;
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(a, "-n") == 0 && v != NULL) {
      list = v;
    } else if (strcmp(a, "--max-seconds") == 0 && v != NULL) {
      bad = parse_ulong(v, 1, 86400, &max_s);
    } else if (strcmp(a, "--lifetime") == 0 && v != NULL) {
      bad = parse_ulong(v, 8, 86400, &lifetime);
    } else if (strcmp(a, "--destroy-ms") == 0 && v != NULL) {
      bad = parse_ulong(v, 0, INT32_MAX, &destroy_ms);
    } else if (strcmp(a, "--bare") == 0 && v != NULL) {
      bad = parse_ulong(v, 1, 10000000, &bare_k);
    } else if (strcmp(a, "--backends") == 0 && v != NULL) {
      if (strcmp(v, "pcp") == 0)
        backends = PORTMAP_BACKEND_PCP;
      else if (strcmp(v, "all") == 0)
        backends = PORTMAP_BACKEND_PCP | PORTMAP_BACKEND_NATPMP | PORTMAP_BACKEND_UPNP;
      else
        bad = 1;
    } else {
      bad = 1;
    }
    if (bad) {
      usage(stderr);
      return 2;
    }
  }
  static run_t runs[MAX_RUNS];
  size_t nruns = 0;
  char buf[256];
  snprintf(buf, sizeof buf, "%s", list);
  for (char *save = NULL, *tok = strtok_r(buf, " ,", &save); tok != NULL;
       tok = strtok_r(NULL, " ,", &save)) {
    unsigned long n;
    if (nruns == MAX_RUNS || parse_ulong(tok, 1, MAX_N, &n) != 0) {
      usage(stderr);
      return 2;
    }
    runs[nruns++].n = n;
  }
  if (nruns == 0) {
    usage(stderr);
    return 2;
  }
  const char *version = "?";
  portmap_version(&version);
  printf("bench_scale: libportmap %s, PCP over loopback (backends: %s), lifetime %lu s, "
         "destroy_timeout_ms %lu, --max-seconds %lu per phase, %lu bare exchanges per N\n",
         version, backends == PORTMAP_BACKEND_PCP ? "PCP alone" : "PCP, NAT-PMP, UPnP", lifetime,
         destroy_ms, max_s, bare_k);
  fflush(stdout);
  for (size_t i = 0; i < nruns; i++)
    run_one(&runs[i], (uint32_t)lifetime, (double)max_s, (uint32_t)destroy_ms, bare_k, backends);
  double load[3] = {0, 0, 0};
  FILE *la = fopen("/proc/loadavg", "r");
  if (la != NULL) {
    if (fscanf(la, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3)
      load[0] = load[1] = load[2] = 0;
    fclose(la);
  }
  print_table(runs, nruns, (double)max_s, (uint32_t)lifetime);
  printf("\nCPU: the client's thread (CLOCK_THREAD_CPUTIME_ID) over the renewal round, per "
         "renewed event; bare: sendto+recvfrom of a 60-octet MAP request to the same "
         "responder. Load average at the end: %.2f %.2f %.2f\n",
         load[0], load[1], load[2]);
  return 0;
}
