/* SPDX-License-Identifier: MIT */
/*
 * Choosing a backend: the concurrent probe and the fallback between
 * backends.
 *
 * A probe round asks every enabled protocol at once (PCP ANNOUNCE, NAT-PMP
 * public address, SSDP M-SEARCH); answers decide as they come, and the
 * probe budget bounds the rest. The order of preference is PCP, NAT-PMP,
 * UPnP: a backend is chosen once every backend above it is known not to
 * work. A backend whose external address is private (double NAT, CGN,
 * ROUTER-QUIRKS Q17) gives way to a later one that offers a public address.
 *
 * A mapping that fails on its backend for a reason that says "this
 * protocol does not work here" (no server, NAT-PMP-only gateway, PCP
 * disabled: checklist G4, F2, Q16, Q21, Q22) moves to the next backend.
 *
 * Answers and failures are only recorded where they arrive; evaluating
 * them (deciding, starting waiting mappings, failover) runs from settle()
 * in core.c, after the backend that reported has returned.
 */
#include <string.h>

#include "internal.h"
#include "platform/platform.h"

#define PROBE_STALE_MS 30000u /* re-probe after a round that found nothing */
#define PROBE_GRACE_MIN_MS 1000u
#define PROBE_REFRESH_MIN_MS 30000u  /* at most one epoch-change round per 30 s */
#define PROBE_REFRESH_DELAY_MS 2000u /* ...asked this long after the reboot was seen */

int portmap_backend_index(portmap_backend_t b) {
  switch (b) {
  case PORTMAP_BACKEND_PCP:
    return 0;
  case PORTMAP_BACKEND_NATPMP:
    return 1;
  case PORTMAP_BACKEND_UPNP:
    return 2;
  case PORTMAP_BACKEND_NONE:
    break;
  }
  return -1;
}

static portmap_backend_t backend_at(int i) {
  return i == 0 ? PORTMAP_BACKEND_PCP : i == 1 ? PORTMAP_BACKEND_NATPMP : PORTMAP_BACKEND_UPNP;
}

static int known_private(const portmap_probe_backend_t *r) {
  return r->external_address[0] != '\0' && r->external_is_private;
}

static int known_public(const portmap_probe_backend_t *r) {
  return r->external_address[0] != '\0' && !r->external_is_private;
}

/* Has backend i an answer in force? In a refresh round an old "no" of a
 * backend asked again counts as no answer yet. */
static int answered(const portmap_probe_state_t *p, int i) {
  unsigned bit = 1u << i;
  return (p->have & bit) && !((p->pending & bit) && !p->res[i].available);
}

/* The backend to use for m (or for new mappings when m is NULL), skipping
 * those in `exclude`. Returns -1 when undecided (a better backend may still
 * answer), else the index, or PORTMAP_MAX_BACKENDS for "none works". */
static int choose(portmap_client_t *c, const portmap_mapping_t *m, unsigned exclude, int final) {
  portmap_probe_state_t *p = &c->probe;
  int cand = -1;
  for (int i = 0; i < PORTMAP_MAX_BACKENDS; i++) {
    if (c->be_ops[i] == NULL || (exclude & (1u << i)))
      continue;
    if (!answered(p, i)) {
      if (!final)
        return -1; /* a better backend has not answered yet */
      continue;
    }
    if (!p->res[i].available)
      continue;
    if (m != NULL && c->be_ops[i]->check(c->be_state[i], &m->req) != PORTMAP_OK)
      continue;
    cand = i;
    break;
  }
  if (cand < 0)
    return PORTMAP_MAX_BACKENDS;
  if (known_private(&p->res[cand])) {
    /* Q17: prefer a later backend with a public address */
    for (int j = cand + 1; j < PORTMAP_MAX_BACKENDS; j++) {
      if (c->be_ops[j] == NULL || (exclude & (1u << j)))
        continue;
      if (!answered(p, j)) {
        if (!final)
          return -1;
        continue;
      }
      if (p->res[j].available && known_public(&p->res[j]) &&
          (m == NULL || c->be_ops[j]->check(c->be_state[j], &m->req) == PORTMAP_OK))
        return j;
    }
  }
  return cand;
}

/* The most telling reason when no backend works. */
static portmap_status_t none_reason(portmap_client_t *c, int *gateway_result) {
  portmap_probe_state_t *p = &c->probe;
  portmap_status_t best = PORTMAP_ERR_NO_BACKEND;
  int rank = 0;
  *gateway_result = -1;
  for (int i = 0; i < PORTMAP_MAX_BACKENDS; i++) {
    if (c->be_ops[i] == NULL || !(p->have & (1u << i)))
      continue;
    portmap_status_t e = p->res[i].error;
    int r = e == PORTMAP_ERR_REFUSED       ? 4
            : e == PORTMAP_ERR_TIMEOUT     ? 3
            : e == PORTMAP_ERR_UNREACHABLE ? 2
                                           : 1;
    if (r > rank) {
      rank = r;
      best = e;
      *gateway_result = p->res[i].gateway_result;
    }
  }
  return best;
}

int portmap_probe_single(const portmap_client_t *c) {
  int n = 0;
  for (int i = 0; i < PORTMAP_MAX_BACKENDS; i++)
    n += c->be_ops[i] != NULL;
  return n == 1;
}

static void begin_on(portmap_mapping_t *m, int idx, uint64_t now) {
  portmap_status_t st = portmap_mapping_start_on(m, idx, now);
  if (st != PORTMAP_OK) {
    m->info.status = st;
    portmap_mapping_emit(m, PORTMAP_EVENT_FAILED);
  }
}

/* Start every mapping that waits, now that the probe decided. */
static void start_waiting(portmap_client_t *c, int final, uint64_t now) {
  portmap_mapping_t *next;
  for (portmap_mapping_t *m = c->mappings; m != NULL; m = next) {
    next = m->next;
    if (!m->waiting || m->final_queued || m->detached)
      continue;
    int idx = choose(c, m, m->tried, final);
    if (idx < 0)
      continue;
    if (idx == PORTMAP_MAX_BACKENDS) {
      /* a backend the budget cut short may still answer (a loaded UPnP
       * gateway): wait for it a little before giving up */
      if (c->probe.late != 0 && portmap_timer_pending(&c->probe.grace))
        continue;
      m->waiting = 0;
      m->info.status = none_reason(c, &m->info.gateway_result);
      portmap_mapping_emit(m, PORTMAP_EVENT_FAILED);
      continue;
    }
    begin_on(m, idx, now);
  }
}

static void evaluate(portmap_client_t *c, int final, uint64_t now) {
  portmap_probe_state_t *p = &c->probe;
  int idx = choose(c, NULL, 0, final);
  if (idx >= 0) {
    portmap_backend_t sel = idx == PORTMAP_MAX_BACKENDS ? PORTMAP_BACKEND_NONE : backend_at(idx);
    if (!p->decided) {
      p->decided = 1;
      p->ever = 1;
      p->decided_ms = now;
      p->selected = sel;
      portmap_log(c, PORTMAP_LOG_INFO, "probe: using %s after %llu ms", portmap_backend_name(sel),
                  (unsigned long long)(now - p->started_ms));
    } else if (sel != p->selected) {
      /* a refresh round changed the answer: new mappings follow it */
      p->selected = sel;
      p->decided_ms = now;
      portmap_log(c, PORTMAP_LOG_INFO, "probe: now using %s", portmap_backend_name(sel));
    }
    portmap_client_note_backend(c, p->selected);
    portmap_addr_t ext;
    if (idx < PORTMAP_MAX_BACKENDS && p->res[idx].external_address[0] != '\0' &&
        portmap_addr_parse(p->res[idx].external_address, &ext) == PORTMAP_OK)
      portmap_client_note_external(c, ext.bytes); /* what the chosen protocol answered */
  }
  start_waiting(c, final, now);
}

static void on_budget(portmap_timer_t *t, uint64_t now) {
  portmap_client_t *c = t->ctx;
  portmap_probe_state_t *p = &c->probe;
  for (int i = 0; i < PORTMAP_MAX_BACKENDS; i++) {
    if (!(p->pending & (1u << i)))
      continue;
    memset(&p->res[i], 0, sizeof p->res[i]);
    p->res[i].error = PORTMAP_ERR_TIMEOUT;
    p->res[i].gateway_result = -1;
    p->have |= 1u << i;
  }
  p->late = p->pending;
  p->pending = 0;
  p->running = 0;
  p->ever = 1;
  if (p->late != 0) {
    uint32_t grace = c->cfg.upnp_timeout_ms;
    if (grace < PROBE_GRACE_MIN_MS)
      grace = PROBE_GRACE_MIN_MS;
    portmap_sched_push(&c->sched, &p->grace, now + grace);
  }
  p->dirty = 1;
}

static void on_grace(portmap_timer_t *t, uint64_t now) {
  portmap_client_t *c = t->ctx;
  (void)now;
  c->probe.late = 0;
  c->probe.dirty = 1;
}

static void probe_round(portmap_client_t *c, uint64_t now, int keep);

static void on_refresh(portmap_timer_t *t, uint64_t now) {
  portmap_client_t *c = t->ctx;
  if (!c->probe.running)
    probe_round(c, now, 1);
}

void portmap_probe_init(portmap_client_t *c) {
  portmap_timer_init(&c->probe.budget, on_budget, c);
  portmap_timer_init(&c->probe.grace, on_grace, c);
  portmap_timer_init(&c->probe.refresh, on_refresh, c);
}

void portmap_probe_forget(portmap_client_t *c) {
  portmap_sched_cancel(&c->sched, &c->probe.budget);
  portmap_sched_cancel(&c->sched, &c->probe.grace);
  portmap_sched_cancel(&c->sched, &c->probe.refresh);
  memset(&c->probe, 0, sizeof c->probe);
  portmap_probe_init(c);
}

void portmap_probe_epoch_changed(portmap_client_t *c, uint64_t now) {
  portmap_probe_state_t *p = &c->probe;
  if (portmap_probe_single(c) || p->running || !p->ever || portmap_timer_pending(&p->refresh) ||
      (p->refreshed && now - p->refresh_ms < PROBE_REFRESH_MIN_MS))
    return;
  /* From the scheduler, not from inside the backend that noticed, and a
   * little later: the rebooted router's other daemons may still be starting.
   * Another epoch change within 30 s of this one asks nothing more (against
   * servers whose epoch keeps going back); its mappings still recover. */
  if (portmap_sched_push(&c->sched, &p->refresh, now + PROBE_REFRESH_DELAY_MS) != 0)
    return;
  p->refreshed = 1;
  p->refresh_ms = now;
  portmap_log(c, PORTMAP_LOG_INFO,
              "probe: the gateway lost its state: asking again what it speaks");
}

void portmap_probe_start(portmap_client_t *c, uint64_t now) {
  probe_round(c, now, 0);
}

/* keep: a refresh round; the previous answers of backends that worked stay
 * in force (and decide for new mappings) until each backend answers again
 * or the budget ends; one that did not work is asked as in a new round
 * (choose() waits for it). A round after one that found nothing starts
 * afresh. */
static void probe_round(portmap_client_t *c, uint64_t now, int keep) {
  portmap_probe_state_t *p = &c->probe;
  if (p->running)
    return;
  if (keep && p->selected == PORTMAP_BACKEND_NONE)
    keep = 0;
  p->running = 1;
  if (!keep) {
    p->decided = 0;
    p->selected = PORTMAP_BACKEND_NONE;
    p->have = 0;
  }
  p->started_ms = now;
  p->pending = 0;
  p->late = 0;
  portmap_sched_cancel(&c->sched, &p->grace);
  if (c->have_gateway4 && portmap_plat_local_address(c->gateway4, 0, p->local) == 0)
    p->have_local = 1;
  else if (c->have_gateway6 &&
           portmap_plat_local_address(c->gateway6, c->gateway6_scope, p->local) == 0)
    p->have_local = 1;
  for (int i = 0; i < PORTMAP_MAX_BACKENDS; i++)
    if (c->be_ops[i] != NULL)
      p->pending |= 1u << i;
  portmap_sched_push(&c->sched, &p->budget, now + c->cfg.probe_timeout_ms);
  for (int i = 0; i < PORTMAP_MAX_BACKENDS; i++) {
    if (c->be_ops[i] == NULL)
      continue;
    if (c->be_ops[i]->probe != NULL) {
      c->be_ops[i]->probe(c->be_state[i], now);
    } else {
      /* no way to ask: assume it works and let a mapping find out */
      portmap_probe_backend_t r;
      memset(&r, 0, sizeof r);
      r.available = 1;
      r.gateway_result = -1;
      portmap_probe_record(c, backend_at(i), &r);
    }
  }
}

void portmap_probe_record(portmap_client_t *c, portmap_backend_t backend,
                          const portmap_probe_backend_t *result) {
  portmap_probe_state_t *p = &c->probe;
  int i = portmap_backend_index(backend);
  if (i < 0 || c->be_ops[i] == NULL)
    return;
  p->res[i] = *result;
  if (!result->available && result->error == PORTMAP_OK)
    p->res[i].error = PORTMAP_ERR_NO_BACKEND;
  p->have |= 1u << i;
  p->pending &= ~(1u << i);
  if (p->late & (1u << i)) {
    /* a late answer: it may still rescue a round that found nothing */
    p->late &= ~(1u << i);
    if (p->late == 0)
      portmap_sched_cancel(&c->sched, &p->grace);
    if (result->available && p->selected == PORTMAP_BACKEND_NONE)
      p->decided = 0;
  }
  if (p->running && p->pending == 0) {
    p->running = 0;
    p->ever = 1;
    portmap_sched_cancel(&c->sched, &p->budget);
  }
  p->dirty = 1;
}

void portmap_probe_evaluate(portmap_client_t *c, uint64_t now) {
  evaluate(c, !c->probe.running, now);
}

void portmap_probe_begin(portmap_mapping_t *m, uint64_t now) {
  portmap_client_t *c = m->client;
  portmap_probe_state_t *p = &c->probe;
  if (portmap_probe_single(c)) {
    for (int i = 0; i < PORTMAP_MAX_BACKENDS; i++)
      if (c->be_ops[i] != NULL)
        begin_on(m, i, now); /* one backend: nothing to choose */
    return;
  }
  m->waiting = 1;
  if (!p->running &&
      (!p->ever || (p->selected == PORTMAP_BACKEND_NONE && now - p->decided_ms >= PROBE_STALE_MS)))
    portmap_probe_start(c, now); /* reports may decide at once (in settle()) */
  else
    p->dirty = 1; /* settle() starts it on the chosen backend */
}

/* Does this failure say "the protocol does not work here"? */
static int protocol_failure(const portmap_mapping_t *m) {
  switch (m->info.status) {
  case PORTMAP_ERR_NATPMP_GATEWAY: /* F2 */
  case PORTMAP_ERR_UNREACHABLE:    /* Q21 */
  case PORTMAP_ERR_NO_GATEWAY:
    return 1;
  case PORTMAP_ERR_TIMEOUT: /* Q22: silently dropped */
    return !m->ever_mapped;
  case PORTMAP_ERR_REFUSED:
    /* G4, Q16: PCP NOT_AUTHORIZED / ADDRESS_MISMATCH, NAT-PMP refused */
    if (m->info.backend == PORTMAP_BACKEND_PCP)
      return m->info.gateway_result == 2 || m->info.gateway_result == 12;
    if (m->info.backend == PORTMAP_BACKEND_NATPMP)
      return m->info.gateway_result == 2;
    return 0;
  default:
    return 0;
  }
}

int portmap_probe_failover(portmap_mapping_t *m, uint64_t now) {
  portmap_client_t *c = m->client;
  (void)now;
  if (m->revoked || (m->req.flags & PORTMAP_FLAG_DELETE) || portmap_probe_single(c) ||
      !protocol_failure(m))
    return 0;
  int i = portmap_backend_index(m->info.backend);
  if (i < 0)
    return 0;
  /* the protocol is out for new mappings too */
  portmap_probe_state_t *p = &c->probe;
  p->res[i].available = 0;
  p->res[i].error = m->info.status;
  p->res[i].gateway_result = m->info.gateway_result;
  p->have |= 1u << i;
  if (p->selected == m->info.backend) {
    int next = choose(c, NULL, 1u << i, 1);
    p->selected = next >= PORTMAP_MAX_BACKENDS ? PORTMAP_BACKEND_NONE : backend_at(next);
    portmap_client_note_backend(c, p->selected);
  }
  m->tried |= 1u << i;
  int next = choose(c, m, m->tried, !p->running);
  if (next >= PORTMAP_MAX_BACKENDS)
    return 0;
  if (next < 0) {
    /* a backend has not answered the probe yet: wait for it */
    m->moved = m->ever_mapped;
    m->waiting = 1;
    m->be = NULL;
    m->be_state = NULL;
    m->info.status = PORTMAP_OK;
    return 1;
  }
  portmap_log(c, PORTMAP_LOG_INFO, "mapping moves from %s to %s (%s)",
              portmap_backend_name(m->info.backend), portmap_backend_name(backend_at(next)),
              portmap_strerror(m->info.status));
  m->moved = m->ever_mapped;
  m->waiting = 1;
  m->be = NULL;
  m->be_state = NULL;
  m->info.status = PORTMAP_OK;
  p->dirty = 1; /* settle() starts it there, after the failing backend has returned */
  return 1;
}
