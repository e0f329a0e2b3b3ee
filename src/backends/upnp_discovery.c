/* SPDX-License-Identifier: MIT */
/*
 * The UPnP backend's discovery, per client and shared by every mapping,
 * the probe and list: SSDP M-SEARCH and its replies on the scheduler's
 * thread (Q1-Q4, Q25, Q28), then the describe/eval sequence over the
 * worker's calls that chooses the gateway's WAN connection service (Q5,
 * Q6, Q29).
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <miniupnpc/upnpcommands.h>

#include "backends/upnp_int.h"
#include "platform/platform.h"
#include "util/netutil.h"

int portmap_upnp_ensure_local(upnp_state_t *st) {
  uint8_t configured[16];
  if (st->have_local)
    return 0;
  if (portmap_core_local_address(st->core, configured) && portmap_net_is_v4(configured))
    memcpy(st->local, configured, 16);
  else if (!portmap_core_source_address(st->core, 0, st->local))
    return -1;
  portmap_addr_t a;
  memcpy(a.bytes, st->local, 16);
  portmap_addr_format(&a, st->client, sizeof st->client);
  st->have_local = 1;
  return 0;
}

/* ---------- SSDP ---------- */

static int ssdp_open(upnp_state_t *st) {
  portmap_core_t *core = st->core;
  if (st->fd >= 0)
    return 0;
  int fd = portmap_plat_socket(0, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_storage ss;
  socklen_t sl = portmap_net_to_sockaddr(st->local, 0, 0, &ss);
  if (bind(fd, (struct sockaddr *)&ss, sl) != 0) {
    close(fd);
    return -1;
  }
  if (portmap_ssdp_multicast_allowed(st->gateway4, portmap_core_config(core)->ssdp_multicast)) {
    /* Q3: multicast from our own interface, TTL 2 (UDA 1.1 section 1.1.2) */
    struct in_addr ifa;
    memcpy(&ifa, st->local + 12, 4);
    (void)setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &ifa, sizeof ifa);
    unsigned char ttl = 2, loop = 0;
    (void)setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl);
    (void)setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof loop);
  }
  st->fd = fd;
  return 0;
}

static void ssdp_send_to(upnp_state_t *st, const uint8_t addr[16], uint16_t port, const char *host,
                         const char *target) {
  portmap_core_t *core = st->core;
  char buf[512];
  size_t len = portmap_ssdp_build_msearch(buf, sizeof buf, host, target, 1);
  if (len == 0)
    return;
  struct sockaddr_storage ss;
  socklen_t sl = portmap_net_to_sockaddr(addr, port, 0, &ss);
  portmap_core_trace(core, 1, addr, port, (const uint8_t *)buf, len);
  if (sendto(st->fd, buf, len, 0, (struct sockaddr *)&ss, sl) < 0)
    portmap_core_log(core, PORTMAP_LOG_DEBUG, "upnp: M-SEARCH sendto failed: %s", strerror(errno));
  else
    portmap_core_stats(core)->sent++;
}

/* One datagram per search target (Q2, Q28), unicast to the gateway and,
 * when allowed, multicast (Q3). */
static void ssdp_send_all(upnp_state_t *st) {
  portmap_core_t *core = st->core;
  static const char *const targets[] = {PORTMAP_SSDP_ST_IGD1, PORTMAP_SSDP_ST_IGD2,
                                        PORTMAP_SSDP_ST_ROOT, PORTMAP_SSDP_ST_DSLF};
  uint16_t port = portmap_core_config(core)->ssdp_port != 0 ? portmap_core_config(core)->ssdp_port
                                                            : PORTMAP_SSDP_PORT;
  char host[64];
  portmap_addr_t gw;
  memcpy(gw.bytes, st->gateway4, 16);
  char gtext[PORTMAP_ADDRSTRLEN];
  portmap_addr_format(&gw, gtext, sizeof gtext);
  snprintf(host, sizeof host, "%s:%u", gtext, port);
  int mcast =
      portmap_ssdp_multicast_allowed(st->gateway4, portmap_core_config(core)->ssdp_multicast);
  uint8_t group[16];
  addr_zero4(group);
  group[12] = 239;
  group[13] = 255;
  group[14] = 255;
  group[15] = 250;
  for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
    ssdp_send_to(st, st->gateway4, port, host, targets[i]);
    if (mcast)
      ssdp_send_to(st, group, PORTMAP_SSDP_PORT, "239.255.255.250:1900", targets[i]);
  }
}

static int st_searched(const char *s) {
  return strcmp(s, PORTMAP_SSDP_ST_IGD1) == 0 || strcmp(s, PORTMAP_SSDP_ST_IGD2) == 0 ||
         strcmp(s, PORTMAP_SSDP_ST_ROOT) == 0 || strcmp(s, PORTMAP_SSDP_ST_DSLF) == 0 ||
         portmap_ssdp_st_is_igd(s);
}

/* Q25: each LOCATION once, at its best rank. The list is capped: when it
 * is full, a reply that outranks the worst kept takes the place of the
 * latest of the worst, so a storm of lesser replies (rootdevice ones from
 * the gateway's address) cannot crowd out the gateway's own IGD reply.
 * Arrival order is kept among equal ranks. Returns 1 when the list changed. */
static int keep_candidate(upnp_disc_t *d, const char *location, const char *server, int rank) {
  size_t i;
  for (i = 0; i < d->n_cand; i++) {
    if (strcmp(d->cand[i].location, location) == 0) {
      if (rank >= d->cand[i].rank)
        return 0;
      d->cand[i].rank = rank;
      return 1;
    }
  }
  if (d->n_cand == UPNP_MAX_CANDIDATES) {
    size_t worst = 0;
    for (i = 1; i < d->n_cand; i++)
      if (d->cand[i].rank >= d->cand[worst].rank)
        worst = i;
    if (rank >= d->cand[worst].rank)
      return 0;
    d->n_cand--;
    memmove(&d->cand[worst], &d->cand[worst + 1], (d->n_cand - worst) * sizeof d->cand[0]);
  }
  upnp_cand_t *k = &d->cand[d->n_cand++];
  copy_str(k->location, sizeof k->location, location);
  copy_str(k->server, sizeof k->server, server);
  k->rank = rank;
  return 1;
}

static void disc_finish_ssdp(upnp_state_t *st, uint64_t now);

static void disc_rearm(upnp_state_t *st) {
  upnp_disc_t *d = &st->disc;
  uint64_t at = d->deadline;
  if (!d->resent && d->resend_at < at)
    at = d->resend_at;
  if (d->grace_at != 0 && d->grace_at < at)
    at = d->grace_at;
  portmap_upnp_arm(st, &d->timer, at);
}

void portmap_upnp_ssdp_input(upnp_state_t *st, const uint8_t from[16], uint16_t port,
                             const uint8_t *data, size_t len, uint64_t now) {
  portmap_core_t *core = st->core;
  upnp_disc_t *d = &st->disc;
  portmap_core_stats(core)->received++;
  portmap_core_trace(core, 0, from, port, data, len);
  if (d->phase != DISC_SSDP) {
    portmap_core_stats(core)->unmatched++;
    return;
  }
  portmap_ssdp_reply_t r;
  int rc = portmap_ssdp_parse(data, len, &r);
  if (rc != PORTMAP_SSDP_OK) {
    portmap_core_stats(core)->malformed++;
    portmap_core_log(core, PORTMAP_LOG_DEBUG, "upnp: SSDP reply dropped (parse error %d)", rc);
    return;
  }
  if (r.st[0] != '\0' && !st_searched(r.st)) {
    portmap_core_stats(core)->unmatched++;
    return;
  }
  portmap_ssdp_url_t u;
  rc = portmap_ssdp_location_ok(r.location, st->gateway4, &u);
  if (rc != PORTMAP_SSDP_OK) {
    portmap_core_stats(core)->malformed++;
    portmap_core_log(core, PORTMAP_LOG_INFO, "upnp: SSDP LOCATION refused (%d, Q4)", rc);
    return;
  }
  /* Q1: any source port of the gateway. Q4: another host only for itself. */
  int from_gw = memcmp(from, st->gateway4, 16) == 0;
  if (!from_gw && memcmp(u.addr, from, 16) != 0) {
    portmap_core_stats(core)->spoofed++;
    return;
  }
  int igd = portmap_ssdp_st_is_igd(r.st);
  int rank = (from_gw ? 0 : 8) + (memcmp(u.addr, st->gateway4, 16) == 0 ? 0 : 4) + (igd ? 0 : 2);
  int kept = keep_candidate(d, u.canonical, r.server, rank);
  if (!from_gw) {
    if (!kept)
      portmap_core_stats(core)->unmatched++; /* a duplicate, or outranked by a full list */
    return;
  }
  if (!d->have_rtt) {
    d->have_rtt = 1;
    d->rtt_ms = (uint32_t)(now - d->started);
  }
  if (igd) {
    disc_finish_ssdp(st, now);
  } else if (d->grace_at == 0) {
    d->grace_at = now + UPNP_SSDP_GRACE_MS;
    disc_rearm(st);
  } else if (!kept) {
    portmap_core_stats(core)->unmatched++; /* changes nothing */
  }
}

void portmap_upnp_ssdp_read(upnp_state_t *st, uint64_t now) {
  for (int i = 0; i < UPNP_MAX_READS && st->fd >= 0; i++) {
    uint8_t buf[PORTMAP_SSDP_MAX_DATAGRAM + 1]; /* one more: longer is refused */
    uint8_t from[16];
    uint16_t port;
    size_t len;
    int from_ok;
    int r = portmap_plat_recv(st->fd, PORTMAP_PLAT_RECV_TRUNC, buf, sizeof buf, &len, from, &port,
                              &from_ok);
    if (r != PORTMAP_PLAT_RECV_OK)
      break;
    if (!from_ok) {
      portmap_core_stats(st->core)->malformed++;
      continue;
    }
    portmap_upnp_ssdp_input(st, from, port, buf, len > sizeof buf ? sizeof buf : len, now);
  }
}

/* ---------- discovery ---------- */

static void probe_report(upnp_state_t *st, portmap_status_t status) {
  upnp_disc_t *d = &st->disc;
  upnp_gw_t *g = &st->gw;
  portmap_probe_backend_t r;
  memset(&r, 0, sizeof r);
  r.gateway_result = -1;
  if (d->have_rtt)
    r.rtt_ms = d->rtt_ms;
  if (status == PORTMAP_OK) {
    r.available = 1;
    r.error = PORTMAP_OK;
    r.rtt_ms = g->rtt_ms;
    copy_str(r.location, sizeof r.location, g->location);
    copy_str(r.device_name, sizeof r.device_name, g->device_name);
    copy_str(r.service_type, sizeof r.service_type, g->service);
    copy_str(r.connection_status, sizeof r.connection_status, g->status);
    copy_str(r.control_url, sizeof r.control_url, g->control_url);
    r.igd_version = g->igd_version;
    if (g->have_ext) {
      portmap_addr_t a;
      memcpy(a.bytes, g->ext, 16);
      portmap_addr_format(&a, r.external_address, sizeof r.external_address);
      r.external_is_private = portmap_net_is_private(g->ext); /* Q17 */
    }
  } else {
    r.error = status;
    r.gateway_result = d->fail_result;
    if (d->n_cand > 0) {
      copy_str(r.location, sizeof r.location, d->cand[0].location);
      copy_str(r.device_name, sizeof r.device_name, d->cand[0].server);
    }
  }
  portmap_core_probe_result(st->core, PORTMAP_BACKEND_UPNP, &r);
}

static void disc_done(upnp_state_t *st, portmap_status_t status, uint64_t now) {
  upnp_disc_t *d = &st->disc;
  portmap_core_t *core = st->core;
  d->phase = DISC_IDLE;
  portmap_core_disarm(core, &d->timer);
  if (status != PORTMAP_OK)
    portmap_core_log(core, PORTMAP_LOG_INFO, "upnp: no usable IGD: %s", portmap_strerror(status));
  if (st->probe_pending) {
    st->probe_pending = 0;
    probe_report(st, status);
  }
  if (st->list_waiting) {
    st->list_waiting = 0;
    if (status == PORTMAP_OK)
      portmap_upnp_list_next(st, now);
    else
      portmap_upnp_list_finish(st, status);
  }
  upnp_map_t *next;
  for (upnp_map_t *pm = st->maps; pm != NULL; pm = next) {
    next = pm->next;
    if (!pm->waiting_gw)
      continue;
    pm->waiting_gw = 0;
    if (pm->revoking) {
      if (!pm->added)
        portmap_upnp_pm_finish(pm, PORTMAP_EVENT_DELETED, PORTMAP_OK, 0);
      else if (status == PORTMAP_OK)
        portmap_upnp_pm_begin(pm, SEQ_DELETE, now);
      else
        portmap_upnp_pm_finish(pm, PORTMAP_EVENT_FAILED, status, 0);
    } else if (status == PORTMAP_OK) {
      portmap_upnp_pm_resume(pm, now);
    } else {
      pm->res.gateway_result = d->fail_result;
      portmap_upnp_pm_fail(pm, status, now);
    }
  }
}

static void disc_describe_next(upnp_state_t *st, uint64_t now) {
  upnp_disc_t *d = &st->disc;
  if (d->cand_idx >= d->n_cand) {
    disc_done(st, d->fail_status, now);
    return;
  }
  d->phase = DISC_DESCRIBE;
  upnp_call_t *k = portmap_upnp_call_new(st, CALL_DESCRIBE, FOR_DISCOVERY);
  if (k == NULL) {
    disc_done(st, PORTMAP_ERR_NOMEM, now);
    return;
  }
  copy_str(k->url, sizeof k->url, d->cand[d->cand_idx].location);
  if (portmap_upnp_submit(st, k, now) != 0)
    disc_done(st, PORTMAP_ERR_SYSTEM, now);
}

static void disc_finish_ssdp(upnp_state_t *st, uint64_t now) {
  upnp_disc_t *d = &st->disc;
  portmap_core_disarm(st->core, &d->timer);
  if (d->n_cand == 0) {
    disc_done(st, PORTMAP_ERR_TIMEOUT, now);
    return;
  }
  /* the gateway's own device first (Q4), IGD search targets before rootdevice */
  for (size_t i = 1; i < d->n_cand; i++) {
    upnp_cand_t tmp = d->cand[i];
    size_t j = i;
    while (j > 0 && d->cand[j - 1].rank > tmp.rank) {
      d->cand[j] = d->cand[j - 1];
      j--;
    }
    d->cand[j] = tmp;
  }
  d->cand_idx = 0;
  d->fail_status = PORTMAP_ERR_UNREACHABLE;
  disc_describe_next(st, now);
}

void portmap_upnp_on_disc_timer(portmap_timer_t *t, uint64_t now) {
  upnp_state_t *st = t->ctx;
  upnp_disc_t *d = &st->disc;
  if (d->phase != DISC_SSDP)
    return;
  if (now >= d->deadline || (d->grace_at != 0 && now >= d->grace_at)) {
    disc_finish_ssdp(st, now);
    return;
  }
  if (!d->resent && now >= d->resend_at) {
    d->resent = 1; /* one repeat against a lost datagram */
    ssdp_send_all(st);
  }
  disc_rearm(st);
}

void portmap_upnp_disc_start(upnp_state_t *st, uint64_t now) {
  portmap_core_t *core = st->core;
  upnp_disc_t *d = &st->disc;
  if (d->phase != DISC_IDLE)
    return; /* join the round under way */
  if (!st->have_gateway4) {
    disc_done(st, PORTMAP_ERR_NO_GATEWAY, now);
    return;
  }
  if (portmap_upnp_ensure_local(st) != 0 || ssdp_open(st) != 0) {
    disc_done(st, PORTMAP_ERR_SYSTEM, now);
    return;
  }
  portmap_core_disarm(core, &d->timer);
  memset(d, 0, offsetof(upnp_disc_t, timer));
  d->fail_result = -1;
  d->phase = DISC_SSDP;
  uint32_t window = portmap_core_config(core)->probe_timeout_ms > 0
                        ? portmap_core_config(core)->probe_timeout_ms
                        : UPNP_SSDP_DEFAULT_MS;
  d->started = now;
  d->deadline = now + window;
  d->resend_at = now + window / 2;
  ssdp_send_all(st);
  disc_rearm(st);
}

static int eval_tier(const upnp_eval_t *e) {
  if (!e->answered)
    return 5;
  int connected = strcasecmp(e->status, "Connected") == 0;
  int unknown = e->status[0] == '\0';
  if (!connected && !unknown)
    return 4;
  if (e->have_ext && !portmap_net_is_private(e->ext))
    return connected ? 0 : 1;
  return e->have_ext ? 2 : 3;
}

static void disc_choose(upnp_state_t *st, const upnp_eval_t *e, uint64_t now) {
  upnp_disc_t *d = &st->disc;
  const upnp_cand_t *cand = &d->cand[d->cand_idx];
  upnp_gw_t g;
  memset(&g, 0, sizeof g);
  g.ready = 1;
  g.gen = st->gw.gen + 1;
  copy_str(g.location, sizeof g.location, cand->location);
  copy_str(g.control_url, sizeof g.control_url, e->url);
  copy_str(g.service, sizeof g.service, e->svc.type);
  g.rank = e->svc.rank;
  g.igd_version = portmap_upnp_igd_version(d->device_type, e->svc.type);
  copy_str(g.device_name, sizeof g.device_name, d->friendly[0] ? d->friendly : cand->server);
  copy_str(g.status, sizeof g.status, e->status);
  g.have_ext = e->have_ext;
  memcpy(g.ext, e->ext, 16);
  g.ext_at = e->ext_at;
  g.rtt_ms = d->rtt_ms;
  /* Q9: the lease rule is the gateway's; keep it across re-discovery */
  g.permanent_only = st->gw.permanent_only && strcmp(st->gw.service, g.service) == 0;
  st->gw = g;
  st->http_failures = 0;
  portmap_core_log(st->core, PORTMAP_LOG_INFO, "upnp: using %s at %s (%s, %s)", g.service,
                   g.control_url, g.status[0] ? g.status : "status unknown", g.device_name);
  disc_done(st, PORTMAP_OK, now);
}

static void disc_eval_next(upnp_state_t *st, uint64_t now) {
  upnp_disc_t *d = &st->disc;
  if (d->ev_idx >= d->n_ev) {
    /* Q5, Q29: nothing connected with a public address: the best seen */
    size_t best = 0;
    for (size_t i = 1; i < d->n_ev; i++)
      if (d->ev[i].tier < d->ev[best].tier)
        best = i;
    if (d->ev[best].tier >= 5) {
      d->cand_idx++;
      disc_describe_next(st, now);
      return;
    }
    disc_choose(st, &d->ev[best], now);
    return;
  }
  d->phase = DISC_EVAL;
  upnp_call_t *k = portmap_upnp_call_new(st, CALL_STATUS, FOR_DISCOVERY);
  if (k == NULL) {
    disc_done(st, PORTMAP_ERR_NOMEM, now);
    return;
  }
  copy_str(k->url, sizeof k->url, d->ev[d->ev_idx].url);
  copy_str(k->service, sizeof k->service, d->ev[d->ev_idx].svc.type);
  if (portmap_upnp_submit(st, k, now) != 0)
    disc_done(st, PORTMAP_ERR_SYSTEM, now);
}

static void disc_on_describe(upnp_state_t *st, upnp_call_t *k, int rc, uint64_t now) {
  upnp_disc_t *d = &st->disc;
  const char *location = d->cand[d->cand_idx].location;
  d->n_ev = 0;
  d->ev_idx = 0;
  if (rc != 0 || k->descr == NULL) {
    char why[96];
    if (rc == UPNPCOMMAND_INVALID_RESPONSE && k->http_status != 200 && !k->timed_out)
      snprintf(why, sizeof why, "HTTP %d", k->http_status);
    else
      portmap_upnp_rc_text(rc, why, sizeof why);
    portmap_core_log(st->core, PORTMAP_LOG_INFO, "upnp: cannot read the description at %s (%s)",
                     location, why);
    d->cand_idx++;
    disc_describe_next(st, now);
    return;
  }
  const portmap_upnp_desc_t *desc = k->descr;
  for (size_t i = 0; i < desc->n_services && d->n_ev < PORTMAP_UPNP_MAX_SERVICES; i++) {
    upnp_eval_t *e = &d->ev[d->n_ev];
    memset(e, 0, sizeof *e);
    e->svc = desc->services[i];
    int urc = portmap_upnp_resolve_url(location, desc->url_base, e->svc.control_url, st->gateway4,
                                       e->url, sizeof e->url);
    if (urc != PORTMAP_SSDP_OK) {
      portmap_core_log(st->core, PORTMAP_LOG_INFO, "upnp: control URL of %s refused (%d, Q4)",
                       e->svc.type, urc);
      continue;
    }
    d->n_ev++;
  }
  /* Q6: IP:2, PPP:2, IP:1, PPP:1 (then dslforum, Q28), document order within */
  for (size_t i = 1; i < d->n_ev; i++) {
    upnp_eval_t tmp = d->ev[i];
    size_t j = i;
    while (j > 0 &&
           (d->ev[j - 1].svc.rank > tmp.svc.rank ||
            (d->ev[j - 1].svc.rank == tmp.svc.rank && d->ev[j - 1].svc.order > tmp.svc.order))) {
      d->ev[j] = d->ev[j - 1];
      j--;
    }
    d->ev[j] = tmp;
  }
  copy_str(d->friendly, sizeof d->friendly, desc->friendly_name);
  copy_str(d->device_type, sizeof d->device_type, desc->device_type);
  if (d->n_ev == 0) {
    portmap_core_log(st->core, PORTMAP_LOG_INFO, "upnp: %s describes no WAN connection service",
                     location);
    /* The device answered: nothing is unreachable, it is no Internet gateway.
     * Unless a later candidate does better, that is what the probe says. */
    d->fail_status = PORTMAP_ERR_NO_IGD;
    d->cand_idx++;
    disc_describe_next(st, now);
    return;
  }
  disc_eval_next(st, now);
}

void portmap_upnp_disc_on_result(upnp_state_t *st, upnp_call_t *k, int rc, uint64_t now) {
  upnp_disc_t *d = &st->disc;
  if (rc > 0)
    d->fail_result = rc;
  if (portmap_upnp_is_nomem(rc) && (d->phase == DISC_DESCRIBE || d->phase == DISC_EVAL)) {
    disc_done(st, PORTMAP_ERR_NOMEM, now); /* ours: no candidate is to blame */
    return;
  }
  if (k->kind == CALL_DESCRIBE) {
    disc_on_describe(st, k, rc, now);
    return;
  }
  if (d->phase != DISC_EVAL || d->ev_idx >= d->n_ev)
    return;
  upnp_eval_t *e = &d->ev[d->ev_idx];
  if (k->kind == CALL_STATUS) {
    if (portmap_upnp_is_http_failure(rc) || rc == UPNP_RC_SYSTEM) {
      e->answered = 0;
      e->tier = 5;
      d->ev_idx++;
      disc_eval_next(st, now);
      return;
    }
    e->answered = 1;
    /* The answer is NewConnectionStatus. The IGD layer also wants NewUptime
     * and fails a reply without it, but routers spell it NewUpTime (the one
     * Tailscale recorded) or leave it out: a reply that carries the status
     * still tells the status. */
    if (!k->timed_out && (rc == 0 || rc == UPNPCOMMAND_UNKNOWN_ERROR))
      copy_str(e->status, sizeof e->status, k->o_status);
    upnp_call_t *x = portmap_upnp_call_new(st, CALL_EXTIP, FOR_DISCOVERY);
    if (x == NULL) {
      disc_done(st, PORTMAP_ERR_NOMEM, now);
      return;
    }
    copy_str(x->url, sizeof x->url, e->url);
    copy_str(x->service, sizeof x->service, e->svc.type);
    if (portmap_upnp_submit(st, x, now) != 0)
      disc_done(st, PORTMAP_ERR_SYSTEM, now);
    return;
  }
  if (k->kind == CALL_EXTIP) {
    if (portmap_upnp_is_http_failure(rc) || rc == UPNP_RC_SYSTEM)
      e->answered = 0;
    else if (rc == 0) {
      e->have_ext = portmap_upnp_parse_ext(k->o_extip, e->ext); /* Q12 */
      e->ext_at = now;
    }
    e->tier = eval_tier(e);
    if (e->tier == 0) {
      disc_choose(st, e, now); /* Q5: connected with a public address */
      return;
    }
    d->ev_idx++;
    disc_eval_next(st, now);
  }
}
