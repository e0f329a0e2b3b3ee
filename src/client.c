/*
 * The client: configuration, validation of requests, the event loop
 * (fds + deadline + process, the c-ares / curl-multi pattern), the
 * own-thread mode built on those same calls plus a wake pipe, the blocking
 * convenience call, and callback delivery outside the lock.
 */
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "platform/platform.h"
#include "util/netutil.h"

#define PORTMAP_MAX_FDS 16

/* ---------- clock, randomness, logging ---------- */

static uint64_t default_clock(void *user) {
  (void)user;
  return portmap_plat_now_ms(); /* checklist E6 */
}

/* The OS CSPRNG (checklist D1): never rand() or a time seed. */
static int default_random(void *buf, size_t len, void *user) {
  (void)user;
  return portmap_plat_random(buf, len);
}

uint64_t portmap_client_now(portmap_client_t *c) {
  return c->cfg.clock_cb(c->cfg.clock_user);
}

int portmap_client_random(portmap_client_t *c, void *buf, size_t len) {
  return c->cfg.random_cb(buf, len, c->cfg.random_user);
}

uint32_t portmap_client_random32(portmap_client_t *c) {
  uint8_t b[4] = {0, 0, 0, 0};
  if (portmap_client_random(c, b, sizeof b) != 0)
    portmap_log(c, PORTMAP_LOG_WARN, "random source failed");
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Log and trace sinks never run under the lock (they may call back into
 * the library): records queue up here and go out at the next unlock. */
#define PORTMAP_LOG_QUEUE_MAX 256u

typedef struct portmap_logrec {
  struct portmap_logrec *next;
  int is_trace;
  portmap_log_level_t level;
  int sent;
  uint16_t port;
  char peer[PORTMAP_ADDRSTRLEN];
  size_t len;
  uint8_t data[]; /* the message (NUL-terminated) or the datagram */
} portmap_logrec_t;

static void log_enqueue(portmap_client_t *c, portmap_logrec_t *rec) {
  if (c->log_queued >= PORTMAP_LOG_QUEUE_MAX) {
    c->log_dropped++;
    free(rec);
    return;
  }
  rec->next = NULL;
  if (c->log_tail)
    c->log_tail->next = rec;
  else
    c->log_head = rec;
  c->log_tail = rec;
  c->log_queued++;
}

void portmap_log(portmap_client_t *c, portmap_log_level_t level, const char *fmt, ...) {
  if (c->cfg.log_cb == NULL || level > c->cfg.log_level)
    return;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  size_t n = strlen(msg) + 1;
  portmap_logrec_t *rec = calloc(1, sizeof *rec + n);
  if (rec == NULL)
    return;
  rec->level = level;
  rec->len = n;
  memcpy(rec->data, msg, n);
  log_enqueue(c, rec);
}

void portmap_trace(portmap_client_t *c, int sent, const uint8_t addr[16], uint16_t port,
                   const uint8_t *data, size_t len) {
  if (c->cfg.trace_cb == NULL)
    return;
  portmap_logrec_t *rec = calloc(1, sizeof *rec + len);
  if (rec == NULL)
    return;
  portmap_addr_t a;
  memcpy(a.bytes, addr, 16);
  portmap_addr_format(&a, rec->peer, sizeof rec->peer);
  rec->is_trace = 1;
  rec->sent = sent;
  rec->port = port;
  rec->len = len;
  if (len > 0)
    memcpy(rec->data, data, len);
  log_enqueue(c, rec);
}

static void log_deliver(const portmap_config_t *cfg, portmap_logrec_t *rec) {
  while (rec != NULL) {
    portmap_logrec_t *next = rec->next;
    if (rec->is_trace)
      cfg->trace_cb(rec->sent, rec->peer, rec->port, rec->data, rec->len, cfg->trace_user);
    else
      cfg->log_cb(rec->level, (const char *)rec->data, cfg->log_user);
    free(rec);
    rec = next;
  }
}

/* Release the client lock, then hand queued log and trace records to the
 * application's sinks. */
static void client_unlock(portmap_client_t *c) {
  portmap_logrec_t *list = c->log_head;
  c->log_head = c->log_tail = NULL;
  c->log_queued = 0;
  pthread_mutex_unlock(&c->mu);
  log_deliver(&c->cfg, list);
}

void portmap_client_wake(portmap_client_t *c) {
  portmap_plat_wake_signal(c->wake_pipe[1]);
}

static int in_own_callback(portmap_client_t *c) {
  return c->in_callback && pthread_equal(c->dispatch_thread, pthread_self());
}

/* ---------- events ---------- */

static void fill_times(portmap_mapping_t *m, uint64_t now) {
  if (m->expiry_ms > now) {
    uint64_t left = m->expiry_ms - now;
    m->info.expires_in_ms = left > UINT32_MAX ? UINT32_MAX : (uint32_t)left;
  } else {
    m->info.expires_in_ms = 0;
  }
  portmap_addr_format(&m->info.external_address, m->info.external_address_str,
                      sizeof m->info.external_address_str);
  m->info.external_is_private = !portmap_net_is_unspecified(m->info.external_address.bytes) &&
                                portmap_net_is_private(m->info.external_address.bytes);
}

void portmap_mapping_emit(portmap_mapping_t *m, portmap_event_t ev) {
  portmap_client_t *c = m->client;
  if (m->final_queued || m->detached)
    return;
  if (ev == PORTMAP_EVENT_DELETED) {
    m->info.lifetime = 0; /* whoever deleted it: nothing is held any more */
    m->expiry_ms = 0;
  }
  if (ev == PORTMAP_EVENT_FAILED && portmap_probe_failover(m))
    return; /* moved to the next backend */
  if (m->moved && (ev == PORTMAP_EVENT_MAPPED || ev == PORTMAP_EVENT_RENEWED)) {
    ev = PORTMAP_EVENT_CHANGED; /* the backend changed */
    m->moved = 0;
  }
  portmap_event_rec_t *rec = calloc(1, sizeof *rec);
  int final = ev == PORTMAP_EVENT_FAILED || ev == PORTMAP_EVENT_DELETED;
  if (final)
    m->final_queued = 1;
  if (ev == PORTMAP_EVENT_MAPPED || ev == PORTMAP_EVENT_RENEWED || ev == PORTMAP_EVENT_CHANGED)
    m->ever_mapped = 1;
  if (rec == NULL) {
    /* Out of memory: a final event must still end the mapping. */
    if (final)
      m->detached = 1;
    return;
  }
  fill_times(m, portmap_client_now(c));
  rec->mapping = m;
  rec->event = ev;
  rec->info = m->info;
  m->queued++;
  if (c->ev_tail)
    c->ev_tail->next = rec;
  else
    c->ev_head = rec;
  c->ev_tail = rec;
}

static void mapping_unlink_free(portmap_client_t *c, portmap_mapping_t *m) {
  portmap_sched_cancel(&c->sched, &m->core_timer);
  if (m->prev)
    m->prev->next = m->next;
  else
    c->mappings = m->next;
  if (m->next)
    m->next->prev = m->prev;
  c->n_mappings--;
  free(m);
}

/* A mapping is freed once it has ended (final event delivered, or
 * detached) and no queued event points at it. */
static void mapping_maybe_free(portmap_client_t *c, portmap_mapping_t *m) {
  if (m->queued == 0 && (m->detached || (m->final_queued && m->be_data == NULL)))
    mapping_unlink_free(c, m);
}

/* Deliver queued events with the lock released. Called with the lock held;
 * returns with it held. */
static void dispatch_events(portmap_client_t *c) {
  /* One thread delivers at a time, in order; events queued meanwhile by
   * another thread are delivered by the one already delivering. */
  if (c->dispatching)
    return;
  c->dispatching = 1;
  c->dispatch_thread = pthread_self();
  while (c->ev_head != NULL) {
    portmap_event_rec_t *rec = c->ev_head;
    c->ev_head = rec->next;
    if (c->ev_head == NULL)
      c->ev_tail = NULL;
    portmap_mapping_t *m = rec->mapping;
    portmap_mapping_cb cb = m->cb; /* read under the lock, used outside it */
    void *user = m->user;
    if (!m->detached && cb != NULL) {
      c->in_callback = 1;
      client_unlock(c);
      cb(m, rec->event, &rec->info, user);
      pthread_mutex_lock(&c->mu);
      c->in_callback = 0;
    }
    m->queued--;
    if (rec->event == PORTMAP_EVENT_FAILED || rec->event == PORTMAP_EVENT_DELETED)
      m->detached = 1; /* ended: the handle is gone after its final event */
    free(rec);
    mapping_maybe_free(c, m);
  }
  c->dispatching = 0;
}

/* The family's all-zeros address (checklist A7). */
static void addr_any(uint8_t out[16], int ipv6) {
  memset(out, 0, 16);
  if (!ipv6)
    out[10] = out[11] = 0xff;
}

/* ---------- the shared 5350 listener ---------- */

/* B5: listen on 5350 for PCP ANNOUNCE and mapping updates and NAT-PMP
 * announcements (224.0.0.1 / ff02::1), shared with other clients on this
 * host (SO_REUSEADDR/SO_REUSEPORT). */
static int listener_open(portmap_client_t *c, int ipv6, uint16_t port) {
  int fd = portmap_plat_socket(ipv6, 0);
  if (fd < 0)
    return -1;
  int one = 1;
  (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  (void)setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (ipv6)
    (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  uint8_t any[16];
  addr_any(any, ipv6);
  struct sockaddr_storage ss;
  socklen_t sl = portmap_net_to_sockaddr(any, port, 0, &ss);
  if (bind(fd, (struct sockaddr *)&ss, sl) != 0) {
    portmap_log(c, PORTMAP_LOG_INFO, "cannot listen for announcements on port %u: %s", port,
                strerror(errno));
    close(fd);
    return -1;
  }
  if (ipv6) {
    struct ipv6_mreq mr;
    memset(&mr, 0, sizeof mr);
    mr.ipv6mr_multiaddr.s6_addr[0] = 0xff;
    mr.ipv6mr_multiaddr.s6_addr[1] = 0x02;
    mr.ipv6mr_multiaddr.s6_addr[15] = 0x01;
    mr.ipv6mr_interface = c->gateway6_scope;
    (void)setsockopt(fd, IPPROTO_IPV6, IPV6_ADD_MEMBERSHIP, &mr, sizeof mr);
  } else {
    struct ip_mreq mr;
    memset(&mr, 0, sizeof mr);
    mr.imr_multiaddr.s_addr = htonl(0xE0000001u); /* 224.0.0.1 */
    mr.imr_interface.s_addr = htonl(INADDR_ANY);
    (void)setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof mr);
  }
  return fd;
}

/* Hand each datagram to the backend its version octet names: 2 is PCP,
 * 0 is NAT-PMP (RFC 6887 section 9). */
static void listener_read(portmap_client_t *c, int fd, uint64_t now) {
  for (int n = 0; n < 64; n++) {
    uint8_t buf[1104];
    uint8_t from[16];
    uint16_t port;
    size_t got;
    int from_ok;
    if (portmap_plat_recv(fd, 0, buf, sizeof buf, &got, from, &port, &from_ok) !=
        PORTMAP_PLAT_RECV_OK)
      break;
    int idx = got < 1 ? -1 : buf[0] == 2 ? 0 : buf[0] == 0 ? 1 : -1;
    if (!from_ok || idx < 0 || c->be_ops[idx] == NULL || c->be_ops[idx]->unsolicited == NULL) {
      c->stats.received++;
      portmap_trace(c, 0, from, port, buf, got);
      c->stats.malformed++;
      continue;
    }
    c->be_ops[idx]->unsolicited(c->be_state[idx], from, port, buf, got, now);
  }
}

/* ---------- configuration ---------- */

static char *dup_str(const char *s) {
  if (s == NULL)
    return NULL;
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d)
    memcpy(d, s, n);
  return d;
}

static void client_discover(portmap_client_t *c) {
  unsigned scope = 0;
  if (c->gateway_str != NULL) {
    portmap_addr_t a;
    if (portmap_addr_parse(c->gateway_str, &a) == PORTMAP_OK) {
      if (portmap_net_is_v4(a.bytes)) {
        memcpy(c->gateway4, a.bytes, 16);
        c->have_gateway4 = 1;
      } else {
        memcpy(c->gateway6, a.bytes, 16);
        c->have_gateway6 = 1;
      }
    }
  }
  /* checklist B1: the default router of each family not configured */
  if (!c->have_gateway4 && portmap_plat_default_gateway(0, c->gateway4, &scope) == 0)
    c->have_gateway4 = 1;
  if (!c->have_gateway6 && portmap_plat_default_gateway(1, c->gateway6, &scope) == 0) {
    c->have_gateway6 = 1;
    c->gateway6_scope = scope;
  }
}

#define GATEWAY_CHECK_MS 30000u

void portmap_client_gateway_changed(portmap_client_t *c, int have4, const uint8_t gw4[16],
                                    int have6, const uint8_t gw6[16], unsigned scope6,
                                    uint64_t now) {
  int have_any = have4 || have6;
  int same_gateway = have4 == c->have_gateway4 && have6 == c->have_gateway6 &&
                     (!have4 || memcmp(gw4, c->gateway4, 16) == 0) &&
                     (!have6 || memcmp(gw6, c->gateway6, 16) == 0);
  if (same_gateway && have_any)
    portmap_log(c, PORTMAP_LOG_INFO, "the local address changed: mapping again from the new one");
  else
    portmap_log(c, PORTMAP_LOG_INFO, "the default gateway changed: %s",
                have_any ? "mapping again there" : "none now; waiting for one");
  /* The old gateway is gone: nothing to delete there, only to forget. */
  for (portmap_mapping_t *m = c->mappings; m != NULL; m = m->next) {
    if (m->final_queued || m->detached)
      continue;
    if (m->be_data != NULL)
      m->be->detach(m->be_state, m);
    portmap_sched_cancel(&c->sched, &m->core_timer);
    m->be = NULL;
    m->be_state = NULL;
    m->waiting = !m->revoked;
    m->moved = m->ever_mapped;
    m->tried = 0;
    m->expiry_ms = 0;
    if (m->revoked) {
      m->info.status = PORTMAP_OK;
      portmap_mapping_emit(m, PORTMAP_EVENT_DELETED);
    } else if (m->ever_mapped) {
      /* what the old gateway gave is gone with it */
      m->info.lifetime = 0;
      m->info.status = have_any ? PORTMAP_OK : PORTMAP_ERR_NO_GATEWAY;
      portmap_mapping_emit(m, PORTMAP_EVENT_LOST);
    }
  }
  c->have_gateway4 = have4;
  if (have4)
    memcpy(c->gateway4, gw4, 16);
  c->have_gateway6 = have6;
  if (have6)
    memcpy(c->gateway6, gw6, 16);
  c->gateway6_scope = scope6;
  /* fresh server state (epoch, sockets, discovered devices): new backends */
  for (int i = 0; i < PORTMAP_MAX_BACKENDS; i++) {
    if (c->be_ops[i] == NULL)
      continue;
    const portmap_backend_ops_t *ops = c->be_ops[i];
    ops->destroy(c->be_state[i]);
    c->be_state[i] = NULL;
    if (ops->create(c, &c->be_state[i]) != PORTMAP_OK) {
      portmap_log(c, PORTMAP_LOG_WARN, "backend %s lost with the gateway change", ops->name);
      c->be_ops[i] = NULL;
    }
  }
  portmap_probe_forget(c);
  if (!have_any)
    return; /* the mappings wait for the next gateway (a roam, a DHCP renewal) */
  for (portmap_mapping_t *m = c->mappings; m != NULL; m = m->next)
    if (m->waiting && !m->final_queued && !m->detached)
      portmap_probe_begin(m, now);
}

static void note_local(portmap_client_t *c) {
  c->have_seen_local =
      c->have_gateway4 && portmap_plat_local_address(c->gateway4, 0, c->seen_local) == 0;
}

/* B6: watch the default route when no gateway was configured, and the local
 * address towards the gateway in any case (every 30 s, or at once after
 * portmap_network_changed()). */
static void on_gateway_timer(portmap_timer_t *t, uint64_t now) {
  portmap_client_t *c = t->ctx;
  uint8_t gw4[16], gw6[16];
  unsigned scope6 = 0, scope4 = 0;
  int have4, have6;
  if (c->gateway_str != NULL) {
    /* configured: only the local address can change */
    have4 = c->have_gateway4;
    have6 = c->have_gateway6;
    memcpy(gw4, c->gateway4, 16);
    memcpy(gw6, c->gateway6, 16);
    scope6 = c->gateway6_scope;
  } else {
    have4 = portmap_plat_default_gateway(0, gw4, &scope4) == 0;
    have6 = portmap_plat_default_gateway(1, gw6, &scope6) == 0;
  }
  int changed = have4 != c->have_gateway4 || have6 != c->have_gateway6 ||
                (have4 && memcmp(gw4, c->gateway4, 16) != 0) ||
                (have6 && memcmp(gw6, c->gateway6, 16) != 0);
  /* A new local address (DHCP gave another one) is a new client to the
   * server (A4: the client IP field): map again as after a gateway change. */
  uint8_t local[16];
  int have_now = have4 && portmap_plat_local_address(gw4, 0, local) == 0;
  if (!changed && !c->have_local && c->have_seen_local && have_now &&
      memcmp(local, c->seen_local, 16) != 0)
    changed = 1;
  if (changed)
    portmap_client_gateway_changed(c, have4, gw4, have6, gw6, scope6, now);
  if (have_now) {
    /* watched from now on (also when there was none at start) */
    c->have_seen_local = 1;
    memcpy(c->seen_local, local, 16);
  }
  portmap_sched_push(&c->sched, t, now + GATEWAY_CHECK_MS);
}

portmap_status_t portmap_client_new(const portmap_config_t *cfg, portmap_client_t **out) {
  portmap_status_t st = PORTMAP_OK;
  portmap_client_t *c = NULL;
  if (out == NULL)
    return PORTMAP_ERR_INVALID;
  *out = NULL;
  portmap_config_t defaults;
  if (cfg == NULL) {
    portmap_config_init(&defaults);
    cfg = &defaults;
  }
  if ((cfg->backends & ~PORTMAP_BACKEND_ALL) != 0 || cfg->log_level > PORTMAP_LOG_DEBUG ||
      cfg->announce_port < -1 || cfg->announce_port > 65535 || cfg->pcp_irt_ms == 0 ||
      cfg->pcp_mrt_ms < cfg->pcp_irt_ms)
    return PORTMAP_ERR_INVALID;
  portmap_addr_t tmp;
  if (cfg->gateway != NULL && portmap_addr_parse(cfg->gateway, &tmp) != PORTMAP_OK)
    return PORTMAP_ERR_ADDRESS;
  if (cfg->local_address != NULL && portmap_addr_parse(cfg->local_address, &tmp) != PORTMAP_OK)
    return PORTMAP_ERR_ADDRESS;

  c = calloc(1, sizeof *c);
  if (c == NULL)
    return PORTMAP_ERR_NOMEM;
  c->wake_pipe[0] = c->wake_pipe[1] = -1;
  c->listen_fd[0] = c->listen_fd[1] = -1;
  c->cfg = *cfg;
  if (c->cfg.backends == 0)
    c->cfg.backends = PORTMAP_BACKEND_ALL;
  if (c->cfg.server_port == 0)
    c->cfg.server_port = 5351;
  if (c->cfg.clock_cb == NULL) {
    c->cfg.clock_cb = default_clock;
    c->cfg.clock_user = NULL;
  }
  if (c->cfg.random_cb == NULL) {
    c->cfg.random_cb = default_random;
    c->cfg.random_user = NULL;
  }
  c->gateway_str = dup_str(cfg->gateway);
  c->local_str = dup_str(cfg->local_address);
  if ((cfg->gateway && !c->gateway_str) || (cfg->local_address && !c->local_str)) {
    st = PORTMAP_ERR_NOMEM;
    goto done;
  }
  c->cfg.gateway = c->gateway_str;
  c->cfg.local_address = c->local_str;
  if (c->local_str != NULL) {
    memcpy(c->local_addr, tmp.bytes, 16);
    c->have_local = 1;
  }
  portmap_sched_init(&c->sched);
  if (pthread_mutex_init(&c->mu, NULL) != 0) {
    st = PORTMAP_ERR_SYSTEM;
    goto done;
  }
  client_discover(c);
  note_local(c);

  portmap_probe_init(c);
  portmap_timer_init(&c->gateway_timer, on_gateway_timer, c);
  portmap_sched_push(&c->sched, &c->gateway_timer, portmap_client_now(c) + GATEWAY_CHECK_MS);
  static const portmap_backend_ops_t *const all[PORTMAP_MAX_BACKENDS] = {
      &portmap_pcp_backend, &portmap_natpmp_backend, &portmap_upnp_backend};
  for (int i = 0; i < PORTMAP_MAX_BACKENDS; i++) {
    if (!(c->cfg.backends & (unsigned)all[i]->id))
      continue;
    void *state = NULL;
    st = all[i]->create(c, &state);
    if (st == PORTMAP_ERR_UNSUPPORTED) {
      /* not built in, or cannot work on this host */
      portmap_log(c, PORTMAP_LOG_INFO, "backend %s unavailable", all[i]->name);
      st = PORTMAP_OK;
      continue;
    }
    if (st != PORTMAP_OK)
      goto done;
    c->be_ops[i] = all[i];
    c->be_state[i] = state;
  }
  if (c->cfg.announce_port >= 0) {
    uint16_t port = c->cfg.announce_port == 0 ? 5350 : (uint16_t)c->cfg.announce_port;
    c->listen_fd[0] = listener_open(c, 0, port);
    if (c->have_gateway6)
      c->listen_fd[1] = listener_open(c, 1, port);
  }
  /* probe all protocols at once as the client starts */
  if (!portmap_probe_single(c) && (c->have_gateway4 || c->have_gateway6))
    portmap_probe_start(c, portmap_client_now(c));
  log_deliver(&c->cfg, c->log_head); /* nobody else has the client yet */
  c->log_head = c->log_tail = NULL;
  c->log_queued = 0;
  *out = c;
  c = NULL;
done:
  if (c != NULL) {
    for (int i = 0; i < PORTMAP_MAX_BACKENDS; i++)
      if (c->be_ops[i] != NULL)
        c->be_ops[i]->destroy(c->be_state[i]);
    for (int i = 0; i < 2; i++)
      if (c->listen_fd[i] >= 0)
        close(c->listen_fd[i]);
    portmap_sched_fini(&c->sched);
    log_deliver(&c->cfg, c->log_head);
    free(c->gateway_str);
    free(c->local_str);
    free(c);
  }
  return st;
}

/* ---------- requests ---------- */

/* Strict UTF-8 (RFC 3629): no overlongs, surrogates or code points past U+10FFFF. */
static int utf8_valid(const char *text, size_t len) {
  const uint8_t *s = (const uint8_t *)text;
  size_t i = 0;
  while (i < len) {
    uint8_t b = s[i];
    size_t extra;
    uint32_t cp;
    if (b < 0x80) {
      i++;
      continue;
    } else if (b >= 0xC2 && b <= 0xDF) {
      extra = 1;
      cp = b & 0x1Fu;
    } else if (b >= 0xE0 && b <= 0xEF) {
      extra = 2;
      cp = b & 0x0Fu;
    } else if (b >= 0xF0 && b <= 0xF4) {
      extra = 3;
      cp = b & 0x07u;
    } else {
      return 0;
    }
    if (len - i <= extra)
      return 0;
    for (size_t k = 1; k <= extra; k++) {
      if ((s[i + k] & 0xC0) != 0x80)
        return 0;
      cp = cp << 6 | (s[i + k] & 0x3Fu);
    }
    if ((extra == 2 && cp < 0x800) || (extra == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return 0;
    i += extra + 1;
  }
  return 1;
}

static portmap_status_t parse_family(const char *text, int ipv6, uint8_t out[16]) {
  portmap_addr_t a;
  portmap_status_t st = portmap_addr_parse(text, &a);
  if (st != PORTMAP_OK)
    return PORTMAP_ERR_ADDRESS;
  if (portmap_net_is_v4(a.bytes) == ipv6)
    return PORTMAP_ERR_ADDRESS;
  memcpy(out, a.bytes, 16);
  return PORTMAP_OK;
}

/* Validate and copy a request; every bad argument gets its own status. */
static portmap_status_t request_copy(portmap_client_t *c, const portmap_request_t *req,
                                     portmap_mapping_t *m) {
  portmap_status_t st;
  if (req->protocol < 0 || req->protocol > 255 || (req->ipv6 != 0 && req->ipv6 != 1))
    return PORTMAP_ERR_INVALID;
  if ((req->flags & ~(PORTMAP_FLAG_ONCE | PORTMAP_FLAG_PREFER_FAILURE |
                      PORTMAP_FLAG_DESCRIPTION_REQUIRED | PORTMAP_FLAG_DELETE)) != 0)
    return PORTMAP_ERR_INVALID;
  /* checklist H1: protocol 0 (all) requires internal port 0, and a real
   * protocol needs a port */
  if (req->protocol == 0 ? req->internal_port != 0 : req->internal_port == 0)
    return PORTMAP_ERR_PORT;
  if (req->lifetime > 86400u)
    return PORTMAP_ERR_LIFETIME;
  m->ipv6 = req->ipv6;
  m->protocol = req->protocol;
  m->internal_port = req->internal_port;
  m->suggested_port = req->external_port;
  m->lifetime = req->lifetime ? req->lifetime : 7200u;
  m->flags = req->flags;
  if (req->external_address != NULL) {
    if ((st = parse_family(req->external_address, m->ipv6, m->suggested_addr)) != PORTMAP_OK)
      return st;
    m->has_suggested_addr = !portmap_net_is_unspecified(m->suggested_addr);
  }
  if (req->description != NULL) {
    size_t len = strlen(req->description);
    if (len > PORTMAP_MAX_DESCRIPTION || !utf8_valid(req->description, len))
      return PORTMAP_ERR_OPTION;
    memcpy(m->description, req->description, len);
    m->description[len] = '\0';
    m->description_len = len;
  }
  if (req->peer_address != NULL) {
    /* checklist I1: PEER needs protocol, internal port and remote port;
     * PREFER_FAILURE and FILTER are MAP-only */
    if (req->protocol == 0 || req->peer_port == 0)
      return PORTMAP_ERR_PORT;
    if ((req->flags & PORTMAP_FLAG_PREFER_FAILURE) || req->n_filters > 0)
      return PORTMAP_ERR_OPTION;
    if ((st = parse_family(req->peer_address, m->ipv6, m->peer_addr)) != PORTMAP_OK)
      return st;
    m->is_peer = 1;
    m->peer_port = req->peer_port;
  } else if (req->peer_port != 0) {
    return PORTMAP_ERR_INVALID;
  }
  if (req->n_filters > PORTMAP_MAX_FILTERS || (req->n_filters > 0 && req->filters == NULL))
    return PORTMAP_ERR_OPTION;
  for (size_t i = 0; i < req->n_filters; i++) {
    const portmap_filter_t *f = &req->filters[i];
    portmap_mfilter_t *mf = &m->filters[i];
    unsigned max_prefix = m->ipv6 ? 128u : 32u;
    if (f->prefix_length > max_prefix)
      return PORTMAP_ERR_OPTION;
    if (f->remote_address == NULL || f->remote_address[0] == '\0') {
      if (f->prefix_length != 0)
        return PORTMAP_ERR_OPTION;
      addr_any(mf->addr, m->ipv6);
    } else if ((st = parse_family(f->remote_address, m->ipv6, mf->addr)) != PORTMAP_OK) {
      return st;
    }
    /* checklist J2: the prefix counts bits of the 128-bit field */
    mf->prefix_len =
        (uint8_t)(m->ipv6 || f->prefix_length == 0 ? f->prefix_length : 96u + f->prefix_length);
    mf->port = f->remote_port;
  }
  m->n_filters = req->n_filters;
  if (req->third_party != NULL) {
    if ((st = parse_family(req->third_party, m->ipv6, m->third_party)) != PORTMAP_OK)
      return st;
    /* checklist J1: THIRD_PARTY must not be our own address */
    if ((c->have_local && memcmp(c->local_addr, m->third_party, 16) == 0) ||
        (c->probe.have_local && memcmp(c->probe.local, m->third_party, 16) == 0))
      return PORTMAP_ERR_THIRD_PARTY;
    m->has_third_party = 1;
  }
  if (req->nonce != NULL)
    memcpy(m->nonce, req->nonce, 12);
  else if (portmap_client_random(c, m->nonce, 12) != 0) /* checklist D1 */
    return PORTMAP_ERR_SYSTEM;
  return PORTMAP_OK;
}

portmap_status_t portmap_map(portmap_client_t *client, const portmap_request_t *req,
                             portmap_mapping_cb cb, void *user, portmap_mapping_t **out) {
  if (out != NULL)
    *out = NULL;
  if (client == NULL || req == NULL)
    return PORTMAP_ERR_INVALID;
  portmap_mapping_t *m = calloc(1, sizeof *m);
  if (m == NULL)
    return PORTMAP_ERR_NOMEM;
  pthread_mutex_lock(&client->mu);
  portmap_status_t st = client->destroying ? PORTMAP_ERR_STATE : request_copy(client, req, m);
  if (st != PORTMAP_OK)
    goto done;
  m->client = client;
  m->cb = cb;
  m->user = user;
  m->info.protocol = m->protocol;
  m->info.internal_port = m->internal_port;
  m->info.gateway_result = -1;
  m->info.is_peer = m->is_peer;
  memcpy(m->info.nonce, m->nonce, 12);
  addr_any(m->info.external_address.bytes, m->ipv6);
  /* Options a backend cannot express fail clearly, never silently. */
  st = PORTMAP_ERR_NO_BACKEND;
  int able = -1;
  for (int i = 0; i < PORTMAP_MAX_BACKENDS; i++) {
    if (client->be_ops[i] == NULL)
      continue;
    portmap_status_t cst = client->be_ops[i]->check(client->be_state[i], m);
    if (cst != PORTMAP_OK) {
      st = cst;
      continue;
    }
    if (able < 0)
      able = i;
  }
  if (able < 0)
    goto done;
  portmap_mapping_core_init(m);
  /* link first: the backend may emit from start() */
  m->next = client->mappings;
  if (client->mappings)
    client->mappings->prev = m;
  client->mappings = m;
  client->n_mappings++;
  uint64_t now = portmap_client_now(client);
  if (portmap_probe_single(client)) {
    /* one backend: start now and report its refusal synchronously */
    m->be = client->be_ops[able];
    m->be_state = client->be_state[able];
    st = m->be->start(m->be_state, m, now);
    if (st != PORTMAP_OK) {
      mapping_unlink_free(client, m);
      m = NULL;
      goto done;
    }
  } else {
    st = PORTMAP_OK;
    portmap_probe_begin(m, now);
  }
  if (out != NULL)
    *out = m;
  m = NULL;
  portmap_client_wake(client);
done:
  client_unlock(client);
  free(m);
  return st;
}

/* Delete on the gateway, or at once when no backend runs it yet. */
static void mapping_revoke_locked(portmap_mapping_t *m, uint64_t now) {
  if (m->be_data != NULL) {
    m->be->revoke(m->be_state, m, now);
    return;
  }
  portmap_sched_cancel(&m->client->sched, &m->core_timer);
  m->waiting = 0;
  m->info.status = PORTMAP_OK;
  portmap_mapping_emit(m, PORTMAP_EVENT_DELETED);
}

portmap_status_t portmap_mapping_revoke(portmap_mapping_t *m) {
  if (m == NULL)
    return PORTMAP_ERR_INVALID;
  portmap_client_t *c = m->client;
  pthread_mutex_lock(&c->mu);
  portmap_status_t st = PORTMAP_OK;
  if (m->revoked || m->final_queued || m->detached) {
    st = PORTMAP_ERR_STATE;
  } else {
    m->revoked = 1;
    mapping_revoke_locked(m, portmap_client_now(c));
    portmap_client_wake(c);
  }
  client_unlock(c);
  return st;
}

portmap_status_t portmap_mapping_detach(portmap_mapping_t *m) {
  if (m == NULL)
    return PORTMAP_ERR_INVALID;
  portmap_client_t *c = m->client;
  pthread_mutex_lock(&c->mu);
  if (m->be_data != NULL)
    m->be->detach(m->be_state, m);
  portmap_sched_cancel(&c->sched, &m->core_timer);
  m->detached = 1;
  mapping_maybe_free(c, m);
  client_unlock(c);
  return PORTMAP_OK;
}

portmap_status_t portmap_mapping_set_callback(portmap_mapping_t *m, portmap_mapping_cb cb,
                                              void *user) {
  if (m == NULL)
    return PORTMAP_ERR_INVALID;
  portmap_client_t *c = m->client;
  pthread_mutex_lock(&c->mu);
  m->cb = cb;
  m->user = user;
  client_unlock(c);
  return PORTMAP_OK;
}

portmap_status_t portmap_mapping_info(portmap_mapping_t *m, portmap_info_t *info) {
  if (m == NULL || info == NULL)
    return PORTMAP_ERR_INVALID;
  portmap_client_t *c = m->client;
  pthread_mutex_lock(&c->mu);
  fill_times(m, portmap_client_now(c));
  *info = m->info;
  client_unlock(c);
  return PORTMAP_OK;
}

/* ---------- event loop ---------- */

static size_t fds_locked(portmap_client_t *c, int *fds, size_t cap) {
  size_t total = 0;
  for (int i = 0; i < 2; i++) {
    if (c->listen_fd[i] < 0)
      continue;
    if (total < cap)
      fds[total] = c->listen_fd[i];
    total++;
  }
  for (int i = 0; i < PORTMAP_MAX_BACKENDS; i++) {
    if (c->be_ops[i] == NULL)
      continue;
    int tmp[PORTMAP_MAX_FDS];
    size_t n = c->be_ops[i]->fds(c->be_state[i], tmp, PORTMAP_MAX_FDS);
    for (size_t k = 0; k < n && k < PORTMAP_MAX_FDS; k++) {
      if (total < cap)
        fds[total] = tmp[k];
      total++;
    }
  }
  return total;
}

size_t portmap_fds(portmap_client_t *client, int *fds, size_t cap) {
  if (client == NULL || (fds == NULL && cap > 0))
    return 0;
  pthread_mutex_lock(&client->mu);
  size_t n = fds_locked(client, fds, cap);
  client_unlock(client);
  return n;
}

static int timeout_locked(portmap_client_t *c) {
  if (c->ev_head != NULL)
    return 0;
  uint64_t next = portmap_sched_next(&c->sched);
  if (next == PORTMAP_SCHED_NONE)
    return -1;
  uint64_t now = portmap_client_now(c);
  if (next <= now)
    return 0;
  uint64_t d = next - now;
  return d > INT32_MAX ? INT32_MAX : (int)d;
}

int portmap_timeout_ms(portmap_client_t *client) {
  if (client == NULL)
    return -1;
  pthread_mutex_lock(&client->mu);
  int t = timeout_locked(client);
  client_unlock(client);
  return t;
}

static void process_locked(portmap_client_t *c) {
  uint64_t now = portmap_client_now(c);
  for (int i = 0; i < 2; i++)
    if (c->listen_fd[i] >= 0)
      listener_read(c, c->listen_fd[i], now);
  for (int i = 0; i < PORTMAP_MAX_BACKENDS; i++)
    if (c->be_ops[i] != NULL)
      c->be_ops[i]->readable(c->be_state[i], now);
  portmap_sched_run(&c->sched, portmap_client_now(c));
  dispatch_events(c);
}

portmap_status_t portmap_process(portmap_client_t *client) {
  if (client == NULL)
    return PORTMAP_ERR_INVALID;
  pthread_mutex_lock(&client->mu);
  portmap_status_t st = PORTMAP_OK;
  if (in_own_callback(client))
    st = PORTMAP_ERR_RECURSIVE;
  else
    process_locked(client);
  client_unlock(client);
  return st;
}

/* One bounded wait on the client's fds (and the wake pipe when given).
 * Real time bounds the wait even when the client's clock is injected. */
static void wait_once(portmap_client_t *c, int max_ms, int wake_fd) {
  int fds[PORTMAP_MAX_FDS];
  struct pollfd pfd[PORTMAP_MAX_FDS + 1];
  size_t n = portmap_fds(c, fds, PORTMAP_MAX_FDS);
  if (n > PORTMAP_MAX_FDS)
    n = PORTMAP_MAX_FDS;
  nfds_t k = 0;
  for (size_t i = 0; i < n; i++) {
    pfd[k].fd = fds[i];
    pfd[k].events = POLLIN;
    pfd[k].revents = 0;
    k++;
  }
  if (wake_fd >= 0) {
    pfd[k].fd = wake_fd;
    pfd[k].events = POLLIN;
    pfd[k].revents = 0;
    k++;
  }
  int t = portmap_timeout_ms(c);
  if (t < 0 || t > max_ms)
    t = max_ms;
  if (poll(pfd, k, t) > 0 && wake_fd >= 0 && (pfd[k - 1].revents & POLLIN))
    portmap_plat_wake_drain(wake_fd);
}

static void *thread_main(void *arg) {
  portmap_client_t *c = arg;
  for (;;) {
    pthread_mutex_lock(&c->mu);
    int stop = c->thread_stop;
    client_unlock(c);
    if (stop)
      break;
    wait_once(c, 1000, c->wake_pipe[0]);
    portmap_process(c);
  }
  return NULL;
}

static int make_wake_pipe(portmap_client_t *c) {
  if (c->wake_pipe[0] >= 0)
    return 0;
  return portmap_plat_wake_open(c->wake_pipe);
}

portmap_status_t portmap_thread_start(portmap_client_t *client) {
  if (client == NULL)
    return PORTMAP_ERR_INVALID;
  pthread_mutex_lock(&client->mu);
  portmap_status_t st = PORTMAP_OK;
  if (client->thread_running) {
    st = PORTMAP_ERR_STATE;
  } else if (make_wake_pipe(client) != 0) {
    st = PORTMAP_ERR_SYSTEM;
  } else {
    client->thread_stop = 0;
    if (pthread_create(&client->thread, NULL, thread_main, client) != 0)
      st = PORTMAP_ERR_SYSTEM;
    else
      client->thread_running = 1;
  }
  client_unlock(client);
  return st;
}

portmap_status_t portmap_thread_stop(portmap_client_t *client) {
  if (client == NULL)
    return PORTMAP_ERR_INVALID;
  pthread_mutex_lock(&client->mu);
  if (!client->thread_running) {
    client_unlock(client);
    return PORTMAP_ERR_STATE;
  }
  if (in_own_callback(client)) {
    client_unlock(client);
    return PORTMAP_ERR_RECURSIVE;
  }
  client->thread_stop = 1;
  portmap_client_wake(client);
  client_unlock(client);
  pthread_join(client->thread, NULL);
  pthread_mutex_lock(&client->mu);
  client->thread_running = 0;
  client_unlock(client);
  return PORTMAP_OK;
}

/* ---------- blocking convenience ---------- */

typedef struct sync_wait {
  int done;
  portmap_event_t event;
  portmap_info_t info;
} sync_wait_t;

static void sync_cb(portmap_mapping_t *m, portmap_event_t ev, const portmap_info_t *info,
                    void *user) {
  (void)m;
  sync_wait_t *w = user;
  if (w == NULL || w->done)
    return;
  w->done = 1;
  w->event = ev;
  w->info = *info;
}

static uint64_t real_ms(void) {
  return default_clock(NULL);
}

portmap_status_t portmap_map_sync(portmap_client_t *client, const portmap_request_t *req,
                                  int timeout_ms, portmap_info_t *info, portmap_mapping_t **out) {
  if (out != NULL)
    *out = NULL;
  if (client == NULL || req == NULL || info == NULL || timeout_ms < 0)
    return PORTMAP_ERR_INVALID;
  memset(info, 0, sizeof *info);
  info->gateway_result = -1;
  pthread_mutex_lock(&client->mu);
  int bad = client->thread_running || in_own_callback(client);
  client_unlock(client);
  if (bad)
    return in_own_callback(client) ? PORTMAP_ERR_RECURSIVE : PORTMAP_ERR_STATE;

  sync_wait_t *w = calloc(1, sizeof *w);
  if (w == NULL)
    return PORTMAP_ERR_NOMEM;
  portmap_mapping_t *m = NULL;
  portmap_status_t st = portmap_map(client, req, sync_cb, w, &m);
  if (st != PORTMAP_OK) {
    free(w);
    return st;
  }
  uint64_t deadline = real_ms() + (uint64_t)timeout_ms;
  for (;;) {
    portmap_process(client);
    if (w->done)
      break;
    uint64_t now = real_ms();
    if (now >= deadline)
      break;
    wait_once(client, (int)(deadline - now), -1);
  }
  if (!w->done)
    st = PORTMAP_ERR_TIMEOUT;
  else if (w->event == PORTMAP_EVENT_MAPPED || w->event == PORTMAP_EVENT_DELETED)
    st = PORTMAP_OK;
  else
    st = w->info.status != PORTMAP_OK ? w->info.status : PORTMAP_ERR_REFUSED;
  /* After a final event the handle is gone; otherwise it lives on. */
  int ended = w->done && (w->event == PORTMAP_EVENT_FAILED || w->event == PORTMAP_EVENT_DELETED);
  if (w->done)
    *info = w->info;
  if (!ended) {
    if (!w->done) {
      portmap_mapping_info(m, info);
      info->status = PORTMAP_ERR_TIMEOUT;
    }
    pthread_mutex_lock(&client->mu);
    m->cb = NULL; /* w is freed below: later events go nowhere */
    m->user = NULL;
    client_unlock(client);
    if (st != PORTMAP_OK)
      portmap_mapping_revoke(m);
    else if (out != NULL)
      *out = m;
  }
  free(w);
  return st;
}

/* ---------- probe and list ---------- */

static void copy_probe(portmap_client_t *c, portmap_probe_result_t *out) {
  portmap_probe_state_t *p = &c->probe;
  memset(out, 0, sizeof *out);
  portmap_addr_t a;
  if (c->have_gateway4 || c->have_gateway6) {
    memcpy(a.bytes, c->have_gateway4 ? c->gateway4 : c->gateway6, 16);
    portmap_addr_format(&a, out->gateway, sizeof out->gateway);
  }
  if (p->have_local) {
    memcpy(a.bytes, p->local, 16);
    portmap_addr_format(&a, out->local_address, sizeof out->local_address);
  }
  portmap_probe_backend_t *dst[PORTMAP_MAX_BACKENDS] = {&out->pcp, &out->natpmp, &out->upnp};
  for (int i = 0; i < PORTMAP_MAX_BACKENDS; i++) {
    if (c->be_ops[i] == NULL) {
      dst[i]->error = PORTMAP_ERR_NO_BACKEND; /* not enabled */
      dst[i]->gateway_result = -1;
    } else if (!(p->have & (1u << i))) {
      dst[i]->error = PORTMAP_ERR_TIMEOUT;
      dst[i]->gateway_result = -1;
    } else {
      *dst[i] = p->res[i];
    }
  }
  out->selected = p->decided ? p->selected : PORTMAP_BACKEND_NONE;
}

portmap_status_t portmap_probe_sync(portmap_client_t *client, int timeout_ms,
                                    portmap_probe_result_t *out) {
  if (client == NULL || out == NULL || timeout_ms < 0)
    return PORTMAP_ERR_INVALID;
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&client->mu);
  portmap_status_t st = PORTMAP_OK;
  if (in_own_callback(client))
    st = PORTMAP_ERR_RECURSIVE;
  else if (client->thread_running)
    st = PORTMAP_ERR_STATE;
  else if (!client->have_gateway4 && !client->have_gateway6)
    st = PORTMAP_ERR_NO_GATEWAY;
  if (st == PORTMAP_OK) {
    /* a fresh round unless one is under way */
    portmap_probe_start(client, portmap_client_now(client));
  }
  client_unlock(client);
  if (st != PORTMAP_OK)
    return st;
  uint64_t start = real_ms();
  uint64_t budget = timeout_ms > 0 ? (uint64_t)timeout_ms : client->cfg.probe_timeout_ms + 100u;
  for (;;) {
    portmap_process(client);
    pthread_mutex_lock(&client->mu);
    int running = client->probe.running;
    client_unlock(client);
    uint64_t now = real_ms();
    if (!running || now - start >= budget)
      break;
    wait_once(client, (int)(budget - (now - start)), -1);
  }
  pthread_mutex_lock(&client->mu);
  copy_probe(client, out);
  client_unlock(client);
  out->elapsed_ms = (uint32_t)(real_ms() - start);
  return PORTMAP_OK;
}

void portmap_list_report(portmap_client_t *c, portmap_status_t status,
                         const portmap_list_entry_t *entries, size_t n) {
  c->list_done = 1;
  c->list_status = status;
  c->list_count = n;
  for (size_t i = 0; i < n && i < c->list_cap; i++)
    c->list_out[i] = entries[i];
}

portmap_status_t portmap_list_sync(portmap_client_t *client, int timeout_ms,
                                   portmap_list_entry_t *entries, size_t cap, size_t *count) {
  if (client == NULL || count == NULL || (entries == NULL && cap > 0) || timeout_ms < 0)
    return PORTMAP_ERR_INVALID;
  *count = 0;
  pthread_mutex_lock(&client->mu);
  portmap_status_t st = PORTMAP_ERR_UNSUPPORTED;
  if (in_own_callback(client)) {
    st = PORTMAP_ERR_RECURSIVE;
  } else if (client->thread_running) {
    st = PORTMAP_ERR_STATE;
  } else {
    for (int i = 0; i < PORTMAP_MAX_BACKENDS; i++) {
      if (client->be_ops[i] == NULL || client->be_ops[i]->list == NULL)
        continue;
      client->list_done = 0;
      client->list_out = entries;
      client->list_cap = cap;
      client->list_count = 0;
      st = client->be_ops[i]->list(client->be_state[i], portmap_client_now(client));
      break;
    }
  }
  client_unlock(client);
  if (st != PORTMAP_OK)
    return st;
  uint64_t deadline = real_ms() + (uint64_t)timeout_ms;
  for (;;) {
    portmap_process(client);
    pthread_mutex_lock(&client->mu);
    int done = client->list_done;
    client_unlock(client);
    uint64_t now = real_ms();
    if (done || now >= deadline)
      break;
    wait_once(client, (int)(deadline - now), -1);
  }
  pthread_mutex_lock(&client->mu);
  if (!client->list_done) {
    st = PORTMAP_ERR_TIMEOUT;
  } else {
    st = client->list_status;
    *count = client->list_count;
  }
  client->list_out = NULL;
  client->list_cap = 0;
  client_unlock(client);
  return st;
}

/* ---------- queries ---------- */

portmap_status_t portmap_network_changed(portmap_client_t *client) {
  if (client == NULL)
    return PORTMAP_ERR_INVALID;
  portmap_status_t st = PORTMAP_OK;
  pthread_mutex_lock(&client->mu);
  if (!client->destroying) {
    if (portmap_sched_push(&client->sched, &client->gateway_timer, portmap_client_now(client)) != 0)
      st = PORTMAP_ERR_NOMEM;
    portmap_client_wake(client);
  }
  client_unlock(client);
  return st;
}

portmap_status_t portmap_client_stats(portmap_client_t *client, portmap_stats_t *stats) {
  if (client == NULL || stats == NULL)
    return PORTMAP_ERR_INVALID;
  pthread_mutex_lock(&client->mu);
  *stats = client->stats;
  client_unlock(client);
  return PORTMAP_OK;
}

portmap_status_t portmap_client_gateway(portmap_client_t *client, char *buf, size_t len) {
  if (client == NULL || buf == NULL || len == 0)
    return PORTMAP_ERR_INVALID;
  buf[0] = '\0';
  pthread_mutex_lock(&client->mu);
  portmap_status_t st = PORTMAP_OK;
  portmap_addr_t a;
  if (client->have_gateway4)
    memcpy(a.bytes, client->gateway4, 16);
  else if (client->have_gateway6)
    memcpy(a.bytes, client->gateway6, 16);
  else
    st = PORTMAP_ERR_NO_GATEWAY;
  if (st == PORTMAP_OK)
    portmap_addr_format(&a, buf, len);
  client_unlock(client);
  return st;
}

/* ---------- destruction ---------- */

portmap_status_t portmap_client_free(portmap_client_t *client) {
  if (client == NULL)
    return PORTMAP_OK;
  pthread_mutex_lock(&client->mu);
  int recursive = in_own_callback(client);
  int threaded = client->thread_running;
  if (!recursive)
    client->destroying = 1; /* no new mappings from here on */
  client_unlock(client);
  if (recursive)
    return PORTMAP_ERR_RECURSIVE;
  if (threaded)
    portmap_thread_stop(client);

  /* Never leave a mapping behind: delete every one we hold. */
  pthread_mutex_lock(&client->mu);
  uint64_t now = portmap_client_now(client);
  for (portmap_mapping_t *m = client->mappings; m != NULL; m = m->next) {
    if (!m->revoked && !m->final_queued && !m->detached) {
      m->revoked = 1;
      mapping_revoke_locked(m, now);
    }
  }
  client_unlock(client);
  uint64_t deadline = real_ms() + client->cfg.destroy_timeout_ms;
  for (;;) {
    portmap_process(client);
    pthread_mutex_lock(&client->mu);
    int pending = 0;
    for (portmap_mapping_t *m = client->mappings; m != NULL; m = m->next)
      if (!m->final_queued && !m->detached)
        pending = 1;
    client_unlock(client);
    uint64_t t = real_ms();
    if (!pending || t >= deadline)
      break;
    wait_once(client, (int)(deadline - t), -1);
  }
  portmap_status_t st = PORTMAP_OK;
  pthread_mutex_lock(&client->mu);
  for (portmap_mapping_t *m = client->mappings; m != NULL; m = m->next) {
    if (!m->final_queued && !m->detached) {
      st = PORTMAP_ERR_TIMEOUT;
      m->info.status = PORTMAP_ERR_CANCELLED;
      if (m->be_data != NULL)
        m->be->detach(m->be_state, m);
      portmap_mapping_emit(m, PORTMAP_EVENT_FAILED);
    }
  }
  dispatch_events(client);
  while (client->mappings != NULL) {
    portmap_mapping_t *m = client->mappings;
    if (m->be_data != NULL)
      m->be->detach(m->be_state, m);
    mapping_unlink_free(client, m);
  }
  portmap_sched_cancel(&client->sched, &client->probe.budget);
  portmap_sched_cancel(&client->sched, &client->probe.grace);
  portmap_sched_cancel(&client->sched, &client->gateway_timer);
  for (int i = 0; i < PORTMAP_MAX_BACKENDS; i++)
    if (client->be_ops[i] != NULL)
      client->be_ops[i]->destroy(client->be_state[i]);
  for (int i = 0; i < 2; i++)
    if (client->listen_fd[i] >= 0)
      close(client->listen_fd[i]);
  portmap_sched_fini(&client->sched);
  client_unlock(client);
  pthread_mutex_destroy(&client->mu);
  portmap_plat_wake_close(client->wake_pipe);
  free(client->gateway_str);
  free(client->local_str);
  free(client);
  return st;
}
