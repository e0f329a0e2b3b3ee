/* SPDX-License-Identifier: MIT */
/* Shared by the stateful fuzz targets (fuzz_pcp_session.c,
 * fuzz_upnp_backend.c), which drive a whole client with the injected clock
 * and random source: the script reader, the clock, a deterministic random
 * source, the loopback sink that stands in for the gateway's receiving
 * sockets, and the checks every engine must pass -- the legal order of
 * each handle's events (portmap.h: every state change, MAPPED first,
 * exactly one final event, nothing after it or after detach), the
 * scheduler heap (portmap_sched_check()), an expiry that is always
 * reported, and snapshots of the core's view of every mapping and its
 * timers, so that an input that must not change a mapping is seen to
 * change none. A broken rule calls abort(), which libFuzzer reports. */
#ifndef PORTMAP_FUZZ_SESSION_COMMON_H
#define PORTMAP_FUZZ_SESSION_COMMON_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <portmap/portmap.h>

#include "internal.h"
#include "util/sched.h"

#define FZ_MAX_HANDLES 16
#define FZ_MAX_OPS 256
#define FZ_CLOCK_START 1000000u

static inline void fz_check_at(int cond, const char *file, int line) {
  if (!cond) {
    fprintf(stderr, "%s:%d: invariant broken\n", file, line);
    abort();
  }
}
#define fz_check(cond) fz_check_at((cond) != 0, __FILE__, __LINE__)

/* FZ_DEBUG set in the environment: print each event (and what the target
 * adds) to stderr, to follow a crashing input. */
static inline int fz_debug(void) {
  static int v = -1;
  if (v < 0)
    v = getenv("FZ_DEBUG") != NULL;
  return v;
}

/* ---------- the script ---------- */

typedef struct fz_in {
  const uint8_t *p;
  size_t n;
} fz_in_t;

static inline int fz_more(const fz_in_t *in) {
  return in->n > 0;
}

/* Past the end every read gives zeros: a short script is still a script. */
static inline uint8_t fz_u8(fz_in_t *in) {
  if (in->n == 0)
    return 0;
  in->n--;
  return *in->p++;
}

static inline uint16_t fz_u16(fz_in_t *in) {
  uint16_t hi = fz_u8(in);
  return (uint16_t)(hi << 8 | fz_u8(in));
}

static inline uint32_t fz_u32(fz_in_t *in) {
  uint32_t hi = fz_u16(in);
  return hi << 16 | fz_u16(in);
}

/* Up to want octets of the script, as they are (no copy); *got says how many. */
static inline const uint8_t *fz_bytes(fz_in_t *in, size_t want, size_t *got) {
  const uint8_t *p = in->p;
  *got = want < in->n ? want : in->n;
  in->p += *got;
  in->n -= *got;
  return p;
}

/* ---------- clock, random, the sink ---------- */

typedef struct fz_env {
  uint64_t now;
  uint64_t rng;
} fz_env_t;

static inline uint64_t fz_clock(void *u) {
  return ((fz_env_t *)u)->now;
}

/* splitmix64: the "CSPRNG" of a deterministic run, seeded by the script. */
static inline int fz_random(void *buf, size_t len, void *u) {
  fz_env_t *e = u;
  uint8_t *b = buf;
  for (size_t i = 0; i < len; i++) {
    uint64_t z = (e->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    b[i] = (uint8_t)(z ^ (z >> 31));
  }
  return 0;
}

/* One UDP socket on 127.0.0.1 that plays the gateway's receiving side:
 * what the client sends there is queued (or dropped when full) and never
 * answered, so no ICMP error comes back. Answers reach the client
 * in-process instead. Opened once per process; emptied per input. */
static inline uint16_t fz_sink_port(void) {
  static int fd = -1;
  static uint16_t port;
  if (fd < 0) {
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    fz_check(fd >= 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fz_check(bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0);
    socklen_t sl = sizeof sin;
    fz_check(getsockname(fd, (struct sockaddr *)&sin, &sl) == 0);
    port = ntohs(sin.sin_port);
  }
  uint8_t buf[2048];
  while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) >= 0)
    continue;
  return port;
}

/* ---------- handles and the order of their events ---------- */

typedef struct fz_handle {
  portmap_mapping_t *m;
  int finals;       /* final events seen (must end at exactly one) */
  int detached;     /* portmap_mapping_detach() said OK */
  int revoked;      /* portmap_mapping_revoke() said OK outside a callback */
  int mapped;       /* MAPPED seen */
  int revoke_in_cb; /* revoke from inside the callback at the first success */
  int cb_revoked;   /* ... done */
  int events;       /* events seen */
  uint64_t last_ms; /* clock at the last event */
  portmap_event_t last;
  uint32_t lifetime;            /* with the last event */
  uint32_t expires_in;          /* with the last event */
  portmap_status_t lost_status; /* the reason the last LOST gave */
  int lost_result;
} fz_handle_t;

typedef struct fz_session {
  fz_env_t env;
  portmap_client_t *c;
  fz_handle_t h[FZ_MAX_HANDLES];
  size_t n;
  int in_cb;          /* inside a mapping callback */
  int shutdown_asked; /* portmap_client_shutdown() said OK */
  int shutdown_seen;  /* PORTMAP_CLIENT_SHUTDOWN delivered */
  /* the target's hook, after the common checks of every event */
  void (*on_event)(struct fz_session *s, size_t i, portmap_event_t ev, const portmap_info_t *info);
} fz_session_t;

static inline int fz_alive(const fz_handle_t *h) {
  return h->finals == 0 && !h->detached;
}

static inline size_t fz_find(const fz_session_t *s, const portmap_mapping_t *m) {
  for (size_t i = 0; i < s->n; i++)
    if (s->h[i].m == m)
      return i;
  return SIZE_MAX;
}

/* portmap.h: every state change, MAPPED at the first success only, RENEWED
 * and CHANGED after it, FAILED and DELETED final (exactly one, nothing after
 * it), nothing at all after detach, no success after a revoke, no LOST
 * right after a LOST for the same reason. */
static inline void fz_mapping_cb(portmap_mapping_t *m, portmap_event_t ev,
                                 const portmap_info_t *info, void *user) {
  fz_session_t *s = user;
  size_t i = fz_find(s, m);
  fz_check(i != SIZE_MAX);
  fz_handle_t *h = &s->h[i];
  if (fz_debug())
    fprintf(stderr, "t=%llu handle %zu %s status %d port %u lifetime %u\n",
            (unsigned long long)s->env.now, i, portmap_event_name(ev), (int)info->status,
            info->external_port, info->lifetime);
  fz_check(!s->in_cb); /* callbacks never nest */
  fz_check(ev >= PORTMAP_EVENT_MAPPED && ev <= PORTMAP_EVENT_DELETED);
  fz_check(fz_alive(h));
  int success =
      ev == PORTMAP_EVENT_MAPPED || ev == PORTMAP_EVENT_RENEWED || ev == PORTMAP_EVENT_CHANGED;
  int final = ev == PORTMAP_EVENT_FAILED || ev == PORTMAP_EVENT_DELETED;
  if (ev == PORTMAP_EVENT_MAPPED)
    fz_check(!h->mapped);
  if (ev == PORTMAP_EVENT_RENEWED || ev == PORTMAP_EVENT_CHANGED)
    fz_check(h->mapped);
  /* LOST once for a reason: told again before the mapping worked again
   * only with another status or gateway result */
  if (ev == PORTMAP_EVENT_LOST) {
    fz_check(h->events == 0 || h->last != PORTMAP_EVENT_LOST || info->status != h->lost_status ||
             info->gateway_result != h->lost_result);
    h->lost_status = info->status;
    h->lost_result = info->gateway_result;
  }
  if (success) {
    fz_check(!h->revoked);
    fz_check(info->status == PORTMAP_OK);
    fz_check(info->state == PORTMAP_STATE_MAPPED || info->state == PORTMAP_STATE_RENEWING);
    fz_check(info->lifetime == 0 || info->expires_in_ms <= (uint64_t)info->lifetime * 1000u);
    h->mapped = 1;
  }
  if (ev == PORTMAP_EVENT_FAILED)
    fz_check(info->status != PORTMAP_OK);
  if (final) {
    fz_check(info->state == PORTMAP_STATE_ENDED);
    fz_check(info->lifetime == 0 || ev == PORTMAP_EVENT_FAILED);
    h->finals++;
  }
  h->events++;
  h->last = ev;
  h->last_ms = s->env.now;
  h->lifetime = info->lifetime;
  h->expires_in = info->expires_in_ms;
  s->in_cb = 1;
  if (s->on_event != NULL)
    s->on_event(s, i, ev, info);
  if (success && h->revoke_in_cb && !h->cb_revoked) {
    /* allowed from the callback (portmap.h); the final event follows */
    portmap_status_t st = portmap_mapping_revoke(m);
    fz_check(st == PORTMAP_OK || st == PORTMAP_ERR_STATE);
    h->cb_revoked = 1;
  }
  if (final && (i & 3) == 0) /* the loop is not re-entered from a callback */
    fz_check(portmap_process(s->c) == PORTMAP_ERR_RECURSIVE);
  s->in_cb = 0;
}

static inline void fz_client_cb(portmap_client_t *c, portmap_client_event_t ev,
                                const portmap_client_state_t *state, void *user) {
  fz_session_t *s = user;
  (void)c;
  if (ev != PORTMAP_CLIENT_SHUTDOWN)
    return;
  /* once, after portmap_client_shutdown(), when every mapping has ended */
  fz_check(s->shutdown_asked && !s->shutdown_seen && state->shut_down);
  for (size_t i = 0; i < s->n; i++)
    fz_check(!fz_alive(&s->h[i]));
  s->shutdown_seen = 1;
}

static inline void fz_config(fz_session_t *s, portmap_config_t *cfg) {
  portmap_config_init(cfg);
  cfg->gateway = "127.0.0.1";
  cfg->local_address = "127.0.0.1";
  cfg->announce_port = -1; /* answers come in-process */
  cfg->destroy_timeout_ms = 0;
  cfg->clock_cb = fz_clock;
  cfg->clock_user = &s->env;
  cfg->random_cb = fz_random;
  cfg->random_user = &s->env;
  cfg->client_cb = fz_client_cb;
  cfg->client_user = s;
}

/* No default route of either family: the only gateway is the configured
 * 127.0.0.1, so nothing is ever sent off this host (the host's own IPv6
 * default router is never asked). */
static inline int fz_no_routes(void *user, int ipv6, uint8_t gw[16], unsigned *scope) {
  (void)user;
  (void)ipv6;
  (void)gw;
  (void)scope;
  return -1;
}

static inline void fz_client_new(fz_session_t *s, const portmap_config_t *cfg) {
  fz_check(portmap_client_new_routes(cfg, fz_no_routes, NULL, &s->c) == PORTMAP_OK);
  fz_check(!s->c->have_gateway6);
}

/* A new handle; NULL when the table is full (the mapping is then not made). */
static inline fz_handle_t *fz_slot(fz_session_t *s) {
  if (s->n >= FZ_MAX_HANDLES)
    return NULL;
  fz_handle_t *h = &s->h[s->n];
  memset(h, 0, sizeof *h);
  return h;
}

static inline void fz_revoke(fz_session_t *s, size_t i) {
  fz_handle_t *h = &s->h[i];
  portmap_status_t st = portmap_mapping_revoke(h->m);
  if (st == PORTMAP_OK) {
    fz_check(fz_alive(h)); /* an ended mapping says STATE */
    h->revoked = 1;
  } else {
    fz_check(st == PORTMAP_ERR_STATE);
  }
}

static inline void fz_detach(fz_session_t *s, size_t i) {
  fz_handle_t *h = &s->h[i];
  portmap_status_t st = portmap_mapping_detach(h->m);
  if (st == PORTMAP_OK) {
    fz_check(fz_alive(h));
    h->detached = 1;
  } else {
    fz_check(st == PORTMAP_ERR_STATE && !fz_alive(h));
  }
}

/* portmap_client_shutdown(): every mapping is revoked (deleted on the
 * gateway) by it, exactly as by portmap_mapping_revoke(). */
static inline void fz_shutdown(fz_session_t *s) {
  portmap_status_t st = portmap_client_shutdown(s->c);
  fz_check(st == PORTMAP_OK || (st == PORTMAP_ERR_STATE && s->shutdown_asked));
  if (st == PORTMAP_OK)
    for (size_t i = 0; i < s->n; i++)
      if (fz_alive(&s->h[i]))
        s->h[i].revoked = 1;
  s->shutdown_asked = 1;
}

/* After every step: the heap, each handle's standing as portmap.h promises
 * it (the events are all delivered by now), and a reported expiry. */
static inline void fz_after_step(fz_session_t *s) {
  portmap_client_t *c = s->c;
  pthread_mutex_lock(&c->mu);
  fz_check(portmap_sched_check(&c->sched) == 0);
  fz_check(portmap_mapping_track_check(c) == 0); /* the probe's list and counters */
  fz_check(c->ev_head == NULL && c->failed_head == NULL);
  pthread_mutex_unlock(&c->mu);
  for (size_t i = 0; i < s->n; i++) {
    fz_handle_t *h = &s->h[i];
    portmap_info_t info;
    portmap_status_t st = portmap_mapping_info(h->m, &info);
    fz_check((st == PORTMAP_OK) == fz_alive(h));
    if (st != PORTMAP_OK)
      continue;
    fz_check(info.state != PORTMAP_STATE_ENDED);
    /* a lease that ran out is told (LOST, or DELETED for ONCE) by the time
     * the loop has run at or after its end, unless a delete is under way */
    if (!h->revoked && !h->cb_revoked && h->events > 0 &&
        (h->last == PORTMAP_EVENT_MAPPED || h->last == PORTMAP_EVENT_RENEWED ||
         h->last == PORTMAP_EVENT_CHANGED) &&
        h->lifetime > 0)
      fz_check(s->env.now < h->last_ms + h->expires_in);
  }
}

/* portmap_process() at the current time, then the checks. */
static inline void fz_process(fz_session_t *s) {
  fz_check(portmap_process(s->c) == PORTMAP_OK);
  fz_after_step(s);
}

/* Free the client and check that every handle had exactly one final event,
 * or none after it was detached. ASan's leak check sees the rest. */
static inline void fz_finish(fz_session_t *s) {
  pthread_mutex_lock(&s->c->mu);
  s->c->cfg.destroy_timeout_ms = 0; /* free waits in real time: not at all here */
  pthread_mutex_unlock(&s->c->mu);
  portmap_status_t st = portmap_client_free(s->c);
  fz_check(st == PORTMAP_OK || st == PORTMAP_ERR_TIMEOUT);
  for (size_t i = 0; i < s->n; i++)
    fz_check(s->h[i].finals == (s->h[i].detached ? 0 : 1));
  s->c = NULL;
}

/* ---------- snapshots: what an input must leave alone ---------- */

typedef struct fz_msnap {
  const void *m;
  portmap_info_t info;
  uint64_t expiry_ms;
  portmap_event_t last_event;
  unsigned bits;
  unsigned queued;
  const void *be_data;
} fz_msnap_t;

typedef struct fz_tsnap {
  const void *t;
  const void *ctx;
  uint64_t deadline, seq;
} fz_tsnap_t;

#define FZ_SNAP_MAX (FZ_MAX_HANDLES * 2 + 8)

typedef struct fz_snap {
  size_t n_m, n_t, n_ev;
  fz_msnap_t m[FZ_SNAP_MAX];
  fz_tsnap_t t[FZ_SNAP_MAX * 2];
} fz_snap_t;

/* The core's view of every mapping, the mappings' timers (those whose
 * context is a backend's per-mapping state) and the queued events. Lock
 * held. */
static inline void fz_snap_take(portmap_client_t *c, fz_snap_t *sn) {
  memset(sn, 0, sizeof *sn);
  for (portmap_mapping_t *m = c->mappings; m != NULL && sn->n_m < FZ_SNAP_MAX; m = m->next) {
    fz_msnap_t *x = &sn->m[sn->n_m++];
    x->m = m;
    portmap_mapping_make_info(m, 0, &x->info); /* at a fixed time: both snapshots alike */
    x->expiry_ms = m->expiry_ms;
    x->last_event = m->last_event;
    x->bits = (unsigned)m->revoked | (unsigned)m->final_queued << 1 | (unsigned)m->detached << 2 |
              (unsigned)m->be_ended << 3 | (unsigned)m->waiting << 4 |
              (unsigned)m->failed_pending << 5 | (unsigned)m->renewing << 6 |
              (unsigned)m->retrying << 7 | (unsigned)m->ever_mapped << 8;
    x->queued = m->queued;
    x->be_data = m->be_data;
  }
  for (size_t i = 0; i < c->sched.len; i++) {
    portmap_timer_t *t = c->sched.heap[i];
    int mine = 0;
    for (size_t k = 0; k < sn->n_m; k++)
      mine |= sn->m[k].be_data != NULL && t->ctx == sn->m[k].be_data;
    if (!mine || sn->n_t >= FZ_SNAP_MAX * 2)
      continue;
    fz_tsnap_t *y = &sn->t[sn->n_t++];
    y->t = t;
    y->ctx = t->ctx;
    y->deadline = t->deadline;
    y->seq = t->seq;
  }
  for (portmap_event_node_t *e = c->ev_head; e != NULL; e = e->next)
    sn->n_ev++;
  sn->n_ev += c->failed_head != NULL;
}

static inline int fz_tsnap_has(const fz_snap_t *sn, const fz_tsnap_t *y) {
  for (size_t i = 0; i < sn->n_t; i++)
    if (memcmp(&sn->t[i], y, sizeof *y) == 0)
      return 1;
  return 0;
}

/* Nothing the application can see of any mapping changed, no event was
 * queued, and no mapping timer was armed, moved or cancelled. */
static inline void fz_snap_same(const fz_snap_t *a, const fz_snap_t *b) {
  fz_check(a->n_m == b->n_m && a->n_t == b->n_t && a->n_ev == b->n_ev);
  for (size_t i = 0; i < a->n_m; i++) {
    const fz_msnap_t *x = &a->m[i], *y = &b->m[i];
    fz_check(x->m == y->m && x->expiry_ms == y->expiry_ms && x->last_event == y->last_event);
    fz_check(x->bits == y->bits && x->queued == y->queued && x->be_data == y->be_data);
    fz_check(memcmp(&x->info, &y->info, sizeof x->info) == 0);
  }
  for (size_t i = 0; i < a->n_t; i++)
    fz_check(fz_tsnap_has(b, &a->t[i]));
}

#endif
