/* SPDX-License-Identifier: MIT */
/*
 * Choosing a backend: the probe and the fallback between backends.
 *
 * The order of preference is PCP, NAT-PMP, UPnP. A round asks the gateway
 * what it speaks, and answers decide as they come:
 *
 *   PCP first. A mapping made before anything is known starts on PCP at once
 *   (it is on "trial"): its MAP or PEER request is the probe (RFC 6887 lets
 *   a MAP be the first message; the answer carries the epoch an ANNOUNCE
 *   would). A round with no mapping asks PCP with an ANNOUNCE (K1). The
 *   other protocols are held back for the stage delay (stage_ms(): 10 ms,
 *   or 3 round trips of this gateway once one is known, at most 100 ms): a
 *   PCP gateway answers within it, and then nothing else is sent at all.
 *   They are asked at once when PCP says no (UNSUPP_VERSION, F2; ICMP port
 *   unreachable, Q21; a refusal) and when the application probes
 *   (portmap_probe_sync) or the library asks again (retries, refreshes).
 *
 *   Silence decides too, measured on the gateway. A lower backend that said
 *   "works" is taken once every better one stayed silent for
 *   max(30 ms, 3 x the round trip its answer measured) after that answer
 *   (outwaited()): the lower answer proves the gateway reachable and times
 *   the path, and a PCP or NAT-PMP server on it would have answered the
 *   request sent one stage and one such exchange earlier in about one round
 *   trip (3 of them leave room for jitter and a slower daemon; 30 ms for
 *   sub-millisecond LANs, scheduler and Wi-Fi power-save delays). UPnP's
 *   answer alone takes SSDP, a description and two SOAP calls, so PCP has
 *   been silent far longer than that by then.
 *
 *   The better backends stay asked until the probe budget
 *   (probe_timeout_ms) ends: PCP retransmits (the carrying request on its
 *   own schedule while it is on trial, an ANNOUNCE at half the budget),
 *   NAT-PMP per N1. If one
 *   answers within it, the mappings that went to a lower backend meanwhile
 *   ("provisional") move up: the lower entry is deleted on the gateway
 *   first (gateways such as miniupnpd keep one rule per port for all three
 *   protocols: deleting it after the new request would delete the new
 *   mapping), then the mapping is requested on the better backend and
 *   reports CHANGED.
 *
 * A backend whose external address is private (double NAT, CGN,
 * ROUTER-QUIRKS Q17) gives way to a later one that offers a public address.
 *
 * A mapping that fails on its backend for a reason that says "this
 * protocol does not work here" (no server, NAT-PMP-only gateway, PCP
 * disabled or of another version: checklist G4, F2, Q16, Q21, Q22) moves
 * to the next backend; one the round never asked is asked then.
 *
 * Answers and failures are only recorded where they arrive; evaluating
 * them (deciding, starting waiting mappings, failover) runs from settle()
 * in core.c, after the backend that reported has returned.
 *
 * Never giving up (request_timeout_ms 0, the default, with more than one
 * backend enabled; one backend alone follows its own protocol's limits:
 * PCP retransmits for ever unless pcp_mrc / pcp_mrd say otherwise, NAT-PMP
 * gives up after natpmp_max_tries, RFC 6886 §3.1). When no backend
 * works for a mapping (nothing answers, every protocol refuses, or its
 * last backend failed it for a reason that may pass: no answer, port
 * closed, a transient refusal), the mapping is not FAILED: it reports LOST
 * once and waits, and the probe asks every protocol again after a back-off
 * of 2 s, doubling to 5 min (RETRY_*), each delay +-10 % from the injected
 * CSPRNG; the first backend that works takes it (MAPPED, or CHANGED if it
 * was mapped before). A refusal about the request itself (an option the
 * gateway will not honour, PREFER_FAILURE, a delete) still fails, and so
 * does a PORTMAP_FLAG_ONCE mapping; request_timeout_ms > 0 fails as before.
 * The same back-off asks a preferred backend again when its probe answer
 * was a transient refusal (PCP NETWORK_FAILURE, NO_RESOURCES,
 * USER_EX_QUOTA; NAT-PMP 3, 4: a router still booting) while a worse one
 * is in use, so one such answer never demotes it for good.
 *
 * Each mapping's info.tried[] keeps, per backend, what its last attempt
 * came to: the mapping's own result (portmap_probe_note(), from every
 * report), or the probe's answer when the backend never ran the mapping.
 */
#include <string.h>

#include "internal.h"
#include "pcp/wire.h"

#define PROBE_STALE_MS 30000u /* re-probe after a round that found nothing */
#define PROBE_GRACE_MIN_MS 1000u
#define PROBE_REFRESH_MIN_MS 30000u  /* at most one epoch-change round per 30 s */
#define PROBE_REFRESH_DELAY_MS 2000u /* ...asked this long after the reboot was seen */
#define RETRY_FIRST_MS 2000u         /* request_timeout_ms 0: the first re-probe */
#define RETRY_MAX_MS 300000u         /* ...the spacing doubles up to this */
#define RETRY_JITTER_PERMILLE 100u   /* ...each delay step +-10 % */
#define STAGE_FLOOR_MS 10u           /* PCP alone first: at least this long */
#define STAGE_RTT_FACTOR 3u          /* ...or this many known round trips */
#define STAGE_MAX_MS 100u            /* ...at most this long */
#define QUIET_FLOOR_MS 30u           /* silence that outweighs a lower answer: at least */
#define QUIET_RTT_FACTOR 3u          /* ...or this many of its round trips */
/* ...but at most this long: a UPnP answer's "round trip" is the SSDP reply's
 * delay, which a server draws at random within MX (miniupnpd: 20-70 ms in
 * the lab), not the path's; three of those waited 150-200 ms more for a
 * silent PCP (lab_timing pcp-drop: 248 ms median). A late PCP answer still
 * moves the mapping up. */
#define QUIET_MAX_MS 40u

/* NAT-PMP result codes that mean "not now" (RFC 6886 §3.5); PCP's are pcp/wire.h's. */
#define NATPMP_RESULT_NETWORK_FAILURE 3
#define NATPMP_RESULT_NO_RESOURCES 4

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

static int transient_refusal(portmap_backend_t b, int result) {
  if (b == PORTMAP_BACKEND_PCP)
    return pcp_result_is_short(result);
  if (b == PORTMAP_BACKEND_NATPMP)
    return result == NATPMP_RESULT_NETWORK_FAILURE || result == NATPMP_RESULT_NO_RESOURCES;
  return 0;
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

/* How long a lower backend's "works" waits for the better ones. */
static uint64_t quiet_ms(uint32_t rtt_ms) {
  uint64_t w = (uint64_t)rtt_ms * QUIET_RTT_FACTOR;
  if (w > QUIET_MAX_MS)
    w = QUIET_MAX_MS;
  return w < QUIET_FLOOR_MS ? QUIET_FLOOR_MS : w;
}

/* Has a backend ranked below i said "works" in this round long enough ago
 * that i's silence counts as "not here" for now? */
static int outwaited(const portmap_client_t *c, int i, uint64_t now) {
  const portmap_probe_state_t *p = &c->probe;
  for (int j = i + 1; j < PORTMAP_MAX_BACKENDS; j++)
    if (c->be_ops[j] != NULL && p->ok_ms[j] != 0 && answered(p, j) && p->res[j].available &&
        now >= p->ok_ms[j] + quiet_ms(p->res[j].rtt_ms))
      return 1;
  return 0;
}

/* The backend to use for m (or for new mappings when m is NULL), skipping
 * those in `exclude`. Returns -1 when undecided (a better backend may still
 * answer), else the index, or PORTMAP_MAX_BACKENDS for "none works". A
 * better backend passed over because a lower one outwaited it is added to
 * *skipped (if not NULL). */
static int choose(portmap_client_t *c, const portmap_mapping_t *m, unsigned exclude, int final,
                  uint64_t now, unsigned *skipped) {
  portmap_probe_state_t *p = &c->probe;
  int cand = -1;
  for (int i = 0; i < PORTMAP_MAX_BACKENDS; i++) {
    if (c->be_ops[i] == NULL || (exclude & (1u << i)))
      continue;
    if (!answered(p, i)) {
      if (!final) {
        if (!outwaited(c, i, now))
          return -1; /* a better backend has not answered yet */
        if (skipped != NULL)
          *skipped |= 1u << i;
      }
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
    if (c->be_ops[i] == NULL || !(p->have & (1u << i)) || p->res[i].available)
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

void portmap_probe_info_init(const portmap_client_t *c, portmap_minfo_t *info) {
  info->tried_mask = 0;
  for (int i = 0; i < PORTMAP_INFO_BACKENDS && i < PORTMAP_MAX_BACKENDS; i++) {
    info->tried_status[i] = c->be_ops[i] != NULL ? PORTMAP_OK : PORTMAP_ERR_NO_BACKEND;
    info->tried_result[i] = -1;
  }
}

/* tried[i] of a mapping's info: was it asked, what came of it. */
static void set_tried(portmap_minfo_t *info, int i, int tried, portmap_status_t status,
                      int gateway_result) {
  unsigned bit = 1u << i;
  info->tried_mask = (uint8_t)(tried ? info->tried_mask | bit : info->tried_mask & ~bit);
  info->tried_status[i] = (uint8_t)status;
  info->tried_result[i] = gateway_result;
}

void portmap_probe_tried_out(const portmap_minfo_t *info,
                             portmap_backend_result_t out[PORTMAP_INFO_BACKENDS]) {
  for (int i = 0; i < PORTMAP_INFO_BACKENDS; i++) {
    out[i].backend = backend_at(i);
    out[i].tried = (info->tried_mask >> i) & 1;
    out[i].status = (portmap_status_t)info->tried_status[i];
    out[i].gateway_result = info->tried_result[i];
  }
}

void portmap_probe_note(portmap_mapping_t *m) {
  int i = portmap_backend_index(m->info.backend);
  if (i < 0 || i >= PORTMAP_INFO_BACKENDS)
    return;
  set_tried(&m->info, i, 1, m->info.status, m->info.gateway_result);
}

/* No backend works for m: each one it did not run says why through its
 * probe answer (FAILED, LOST). */
static void note_probe(portmap_client_t *c, portmap_mapping_t *m) {
  const portmap_probe_state_t *p = &c->probe;
  for (int i = 0; i < PORTMAP_INFO_BACKENDS && i < PORTMAP_MAX_BACKENDS; i++) {
    /* not enabled, the mapping's own result, or no answer yet */
    if (c->be_ops[i] == NULL || (m->tried & (1u << i)) || !(p->have & (1u << i)))
      continue;
    if (p->res[i].available) /* it works, but not for this request: not tried */
      set_tried(&m->info, i, 0, PORTMAP_ERR_UNSUPPORTED, -1);
    else
      set_tried(&m->info, i, 1, p->res[i].error, p->res[i].gateway_result);
  }
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
    m->info.gateway_result = -1;
    portmap_probe_note(m);
    portmap_mapping_emit(m, PORTMAP_EVENT_FAILED);
  }
}

/* ---------- never giving up: the retry back-off ---------- */

/* request_timeout_ms 0: m waits for a backend that works instead of failing. */
static int keeps_trying(const portmap_mapping_t *m) {
  return m->client->cfg.request_timeout_ms == 0 && !m->revoked && !m->client->destroying &&
         !portmap_probe_single(m->client) &&
         !(m->req.flags & (PORTMAP_FLAG_DELETE | PORTMAP_FLAG_ONCE));
}

/* A probe answer in force that says "not now" rather than "not here". */
static int transient_answer(const portmap_probe_state_t *p, int i) {
  const portmap_probe_backend_t *r = &p->res[i];
  return (p->have & (1u << i)) && !r->available && r->error == PORTMAP_ERR_REFUSED &&
         transient_refusal(backend_at(i), r->gateway_result);
}

/* A backend preferred to the one in use said "not now": ask it again. */
static int recheck_wanted(const portmap_client_t *c) {
  const portmap_probe_state_t *p = &c->probe;
  int sel = portmap_backend_index(p->selected);
  if (!p->decided || sel < 0)
    return 0;
  for (int i = 0; i < sel; i++)
    if (c->be_ops[i] != NULL && transient_answer(p, i))
      return 1;
  return 0;
}

/* Mappings that lost their backend and have not been mapped since
 * (waiting: not even started again). */
static int retrying_any(const portmap_client_t *c, int waiting) {
  return (waiting ? c->n_retry_waiting : c->n_retrying) != 0;
}

/* Arm the next re-probe (unless one is armed): the current step +-10 %,
 * then double the step up to RETRY_MAX_MS. */
static void arm_retry(portmap_client_t *c, uint64_t now) {
  portmap_probe_state_t *p = &c->probe;
  if (portmap_timer_pending(&p->retry))
    return;
  uint32_t step = p->retry_step_ms != 0 ? p->retry_step_ms : RETRY_FIRST_MS;
  uint8_t b[4] = {0, 0, 0, 0};
  if (portmap_client_random(c, b, sizeof b) != 0)
    portmap_log(c, PORTMAP_LOG_WARN, "random source failed");
  uint32_t r = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
  uint64_t spread = (uint64_t)step * RETRY_JITTER_PERMILLE / 1000u;
  uint64_t delay = step - spread + r % (2 * spread + 1);
  p->retry_step_ms = step >= RETRY_MAX_MS / 2 ? RETRY_MAX_MS : step * 2;
  if (portmap_sched_push(&c->sched, &p->retry, now + delay) == 0)
    portmap_log(c, PORTMAP_LOG_INFO, "probe: asking the gateway again in %llu ms",
                (unsigned long long)delay);
}

/* m has no backend that works: LOST (once), then the back-off asks again. */
static void wait_for_retry(portmap_mapping_t *m, uint64_t now) {
  portmap_mapping_set_waiting(m, 1);
  if (!m->retrying) {
    portmap_mapping_set_retrying(m, 1);
    portmap_log(m->client, PORTMAP_LOG_INFO, "no backend works (%s): retrying",
                portmap_strerror(m->info.status));
    portmap_mapping_emit(m, PORTMAP_EVENT_LOST);
  }
  arm_retry(m->client, now);
}

static void probe_round(portmap_client_t *c, uint64_t now, int keep, int staged);

static void on_retry(portmap_timer_t *t, uint64_t now) {
  portmap_client_t *c = t->ctx;
  if (c->destroying || (!retrying_any(c, 1) && !recheck_wanted(c)))
    return;
  /* every backend gets another chance, those that failed the mapping too */
  for (portmap_mapping_t *m = portmap_probe_list_entry(c->probe_list.head); m != NULL;
       m = portmap_probe_list_entry(m->probe_link.next), c->probe_visits++)
    if (m->waiting && m->retrying)
      m->tried = 0;
  if (!c->probe.running)
    probe_round(c, now, 1, 0); /* when it ends, settle() starts them, or arms the next */
}

int portmap_probe_trial_held(portmap_mapping_t *m) {
  portmap_client_t *c = m->client;
  portmap_probe_state_t *p = &c->probe;
  if (!(p->have & 1u) || p->res[0].available)
    return 0; /* PCP works: the loss is this mapping's own */
  p->dirty = 1;
  return 1;
}

/* A mapping on trial that PCP has not answered yet. */
static int on_trial(const portmap_client_t *c, const portmap_mapping_t *m) {
  return m->trial && m->be_data != NULL && m->be == c->be_ops[0];
}

/* Start every mapping that waits, now that the probe decided; a mapping on
 * trial leaves PCP when another backend is chosen before PCP answered. */
static void start_waiting(portmap_client_t *c, int final, uint64_t now) {
  for (portmap_mapping_t *m = portmap_probe_list_entry(c->probe_list.head); m != NULL;
       m = c->probe_cursor) {
    /* moved on if that one leaves the list meanwhile */
    c->probe_cursor = portmap_probe_list_entry(m->probe_link.next);
    c->probe_visits++;
    if (portmap_mapping_ended(m))
      continue;
    int trial = on_trial(c, m);
    if (!m->waiting && !trial)
      continue;
    unsigned skipped = 0;
    int idx = choose(c, m, m->tried, final, now, &skipped);
    if (idx < 0)
      continue; /* undecided */
    if (trial && idx == 0) {
      /* PCP carries on with it; a "not now" it said is this mapping's own */
      portmap_mapping_set_trial(m, 0);
      if (m->info.status != PORTMAP_OK)
        portmap_mapping_emit(m, PORTMAP_EVENT_LOST);
      continue;
    }
    if (trial) {
      /* its request went unanswered: withdrawn (nothing was granted that we
       * know of; the PCP probe goes on without it) */
      portmap_mapping_unbind(m);
      portmap_mapping_requeue(m);
      m->info.gateway_result = -1;
    }
    if (idx == PORTMAP_MAX_BACKENDS) {
      /* a backend the budget cut short may still answer (a loaded UPnP
       * gateway): wait for it a little before giving up */
      if (c->probe.late != 0 && portmap_timer_pending(&c->probe.grace))
        continue;
      if (m->tried == 0 || m->info.status == PORTMAP_OK)
        m->info.status = none_reason(c, &m->info.gateway_result);
      note_probe(c, m);
      if (keeps_trying(m)) {
        wait_for_retry(m, now);
        continue;
      }
      portmap_mapping_set_waiting(m, 0);
      portmap_mapping_emit(m, PORTMAP_EVENT_FAILED);
      continue;
    }
    begin_on(m, idx, now);
    /* a better backend may still answer within the budget: then it moves */
    if (skipped != 0 && m->be_data != NULL && !(m->req.flags & PORTMAP_FLAG_DELETE))
      portmap_mapping_set_provisional(m, 1);
  }
}

/* A better backend answered after a mapping went to a lower one: delete it
 * there first (one rule per port on gateways that speak several protocols),
 * then core.c hands it back here to be made on the better one (CHANGED). */
static void move_up(portmap_client_t *c, int final, uint64_t now) {
  /* the budget is over: after this last look, where they are is where they stay */
  int over = !c->probe.running && c->probe.late == 0;
  if (c->n_provisional == 0)
    return; /* none to move (while a burst of new mappings is on trial, say) */
  for (portmap_mapping_t *m = portmap_probe_list_entry(c->probe_list.head); m != NULL;
       m = c->probe_cursor) {
    c->probe_cursor = portmap_probe_list_entry(m->probe_link.next);
    c->probe_visits++;
    if (!m->provisional)
      continue;
    int movable = !m->upgrading && !m->revoked && !portmap_mapping_ended(m) && m->be_data != NULL;
    int cur = movable ? portmap_backend_index(m->be->id) : -1;
    int idx = movable ? choose(c, m, m->tried, final, now, NULL) : -1;
    if (idx >= 0 && idx < cur) {
      portmap_log(c, PORTMAP_LOG_INFO, "%s answered after all: mapping moves from %s to it",
                  portmap_backend_name(backend_at(idx)), portmap_backend_name(m->be->id));
      portmap_mapping_set_provisional(m, 0);
      m->upgrading = 1;
      m->be->revoke(m->be_state, m->be_data, now);
      continue;
    }
    if (over)
      portmap_mapping_set_provisional(m, 0);
  }
}

static void ask_held(portmap_client_t *c, uint64_t now);

static void evaluate(portmap_client_t *c, int final, uint64_t now) {
  portmap_probe_state_t *p = &c->probe;
  if (p->release)
    ask_held(c, now); /* PCP said no: the others at once */
  int idx = choose(c, NULL, 0, final, now, NULL);
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
      /* a later answer (or a refresh round) changed it: new mappings follow */
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
  move_up(c, final, now); /* and, the budget over, provisional no more */
  if (!retrying_any(c, 0) && !recheck_wanted(c)) {
    /* all mapped again: the next loss starts the back-off afresh */
    portmap_sched_cancel(&c->sched, &p->retry);
    p->retry_step_ms = 0;
  } else if (final && !p->running && recheck_wanted(c)) {
    arm_retry(c, now);
  }
}

static void on_budget(portmap_timer_t *t, uint64_t now) {
  portmap_client_t *c = t->ctx;
  portmap_probe_state_t *p = &c->probe;
  p->pending &= ~p->held; /* never asked (a budget shorter than the stage): no answer */
  p->held = 0;
  portmap_sched_cancel(&c->sched, &p->stage);
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

static void on_refresh(portmap_timer_t *t, uint64_t now) {
  portmap_client_t *c = t->ctx;
  if (!c->probe.running)
    probe_round(c, now, 1, 0);
}

/* PCP stayed silent for the stage delay: ask the others. */
static void on_stage(portmap_timer_t *t, uint64_t now) {
  ask_held(t->ctx, now);
}

/* A lower backend's answer has waited out the better ones: decide. */
static void on_quiet(portmap_timer_t *t, uint64_t now) {
  portmap_client_t *c = t->ctx;
  (void)now;
  c->probe.dirty = 1;
}

/* The client's first round, when no mapping has started one (a mapping
 * made right after portmap_client_new() carries PCP's question itself). */
static void on_autostart(portmap_timer_t *t, uint64_t now) {
  portmap_client_t *c = t->ctx;
  if (!c->probe.running && !c->probe.ever && !c->destroying)
    probe_round(c, now, 0, 1);
}

void portmap_probe_init(portmap_client_t *c) {
  portmap_timer_init(&c->probe.budget, on_budget, c);
  portmap_timer_init(&c->probe.grace, on_grace, c);
  portmap_timer_init(&c->probe.refresh, on_refresh, c);
  portmap_timer_init(&c->probe.retry, on_retry, c);
  portmap_timer_init(&c->probe.stage, on_stage, c);
  portmap_timer_init(&c->probe.quiet, on_quiet, c);
  portmap_timer_init(&c->probe.autostart, on_autostart, c);
  portmap_dlist_init(&c->probe_list);
}

void portmap_probe_cancel(portmap_client_t *c) {
  portmap_probe_state_t *p = &c->probe;
  portmap_timer_t *all[] = {&p->budget, &p->grace, &p->refresh,  &p->retry,
                            &p->stage,  &p->quiet, &p->autostart};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    portmap_sched_cancel(&c->sched, all[i]);
}

void portmap_probe_forget(portmap_client_t *c) {
  portmap_probe_cancel(c);
  memset(&c->probe, 0, sizeof c->probe);
  portmap_probe_init(c);
}

void portmap_probe_schedule(portmap_client_t *c, uint64_t now) {
  portmap_sched_push(&c->sched, &c->probe.autostart, now);
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

/* Asked to probe (portmap_probe_sync): every protocol at once; a round
 * under way asks the ones it holds back now. */
void portmap_probe_start(portmap_client_t *c, uint64_t now) {
  if (c->probe.running)
    ask_held(c, now);
  else
    probe_round(c, now, 0, 0);
}

/* How long a staged round asks PCP alone (see the top of this file). */
static uint64_t stage_ms(const portmap_client_t *c) {
  const portmap_probe_state_t *p = &c->probe;
  uint64_t d = p->have_rtt ? (uint64_t)p->gw_rtt_ms * STAGE_RTT_FACTOR : 0;
  if (d < STAGE_FLOOR_MS)
    d = STAGE_FLOOR_MS;
  if (d > STAGE_MAX_MS)
    d = STAGE_MAX_MS;
  if (d > c->cfg.probe_timeout_ms / 2)
    d = c->cfg.probe_timeout_ms / 2;
  return d;
}

/* Ask the backends in mask what they speak. */
static void ask(portmap_client_t *c, unsigned mask, uint64_t now) {
  for (int i = 0; i < PORTMAP_MAX_BACKENDS; i++) {
    if (c->be_ops[i] == NULL || !(mask & (1u << i)))
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

/* The backends a staged round holds back: asked now. */
static void ask_held(portmap_client_t *c, uint64_t now) {
  portmap_probe_state_t *p = &c->probe;
  unsigned held = p->held;
  p->held = 0;
  p->release = 0;
  portmap_sched_cancel(&c->sched, &p->stage);
  if (held == 0 || !p->running)
    return;
  /* each protocol gets the whole budget from when it is asked */
  portmap_sched_push(&c->sched, &p->budget, now + c->cfg.probe_timeout_ms);
  ask(c, held, now);
}

/* Everything this round has not asked yet, now: the held backends, or
 * (the round ended when PCP answered) those it never needed. */
static void ask_rest(portmap_client_t *c, uint64_t now) {
  portmap_probe_state_t *p = &c->probe;
  if (p->running) {
    ask_held(c, now);
    return;
  }
  unsigned rest = 0;
  for (int i = 0; i < PORTMAP_MAX_BACKENDS; i++)
    if (c->be_ops[i] != NULL && !(p->have & (1u << i)))
      rest |= 1u << i;
  if (rest == 0)
    return;
  p->running = 1;
  p->started_ms = now;
  p->pending = rest;
  p->late = 0;
  memset(p->ok_ms, 0, sizeof p->ok_ms);
  portmap_sched_cancel(&c->sched, &p->grace);
  portmap_sched_push(&c->sched, &p->budget, now + c->cfg.probe_timeout_ms);
  ask(c, rest, now);
}

/* keep: a refresh round; the previous answers of backends that worked stay
 * in force (and decide for new mappings) until each backend answers again
 * or the budget ends; one that did not work is asked as in a new round
 * (choose() waits for it). A round after one that found nothing starts
 * afresh. staged: PCP first, the others after stage_ms() unless PCP has
 * answered (a round the library starts for a mapping or a new client). */
static void probe_round(portmap_client_t *c, uint64_t now, int keep, int staged) {
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
  p->held = 0;
  p->release = 0;
  memset(p->ok_ms, 0, sizeof p->ok_ms);
  portmap_sched_cancel(&c->sched, &p->grace);
  portmap_sched_cancel(&c->sched, &p->stage);
  portmap_sched_cancel(&c->sched, &p->quiet);
  portmap_sched_cancel(&c->sched, &p->autostart);
  p->have_local = portmap_watch_source(c, 0, p->local) || portmap_watch_source(c, 1, p->local);
  for (int i = 0; i < PORTMAP_MAX_BACKENDS; i++)
    if (c->be_ops[i] != NULL)
      p->pending |= 1u << i;
  portmap_sched_push(&c->sched, &p->budget, now + c->cfg.probe_timeout_ms);
  if (staged && c->be_ops[0] != NULL && (p->pending & ~1u) != 0) {
    p->held = p->pending & ~1u;
    portmap_sched_push(&c->sched, &p->stage, now + stage_ms(c));
  }
  ask(c, p->pending & ~p->held, now);
}

void portmap_probe_record(portmap_client_t *c, portmap_backend_t backend,
                          const portmap_probe_backend_t *result) {
  portmap_probe_state_t *p = &c->probe;
  int i = portmap_backend_index(backend);
  if (i < 0 || c->be_ops[i] == NULL)
    return;
  uint64_t now = portmap_client_now(c);
  p->res[i] = *result;
  if (!result->available && result->error == PORTMAP_OK)
    p->res[i].error = PORTMAP_ERR_NO_BACKEND;
  p->have |= 1u << i;
  p->pending &= ~(1u << i);
  if (result->available) {
    p->ok_ms[i] = now != 0 ? now : 1;
    if (!p->have_rtt || result->rtt_ms < p->gw_rtt_ms) {
      p->gw_rtt_ms = result->rtt_ms; /* the gateway's path, for the next stage delay */
      p->have_rtt = 1;
    }
    for (int k = 0; k < i; k++) {
      if (c->be_ops[k] == NULL || answered(p, k))
        continue;
      /* a better one is silent so far: look again once this answer waited */
      uint64_t at = now + quiet_ms(result->rtt_ms);
      if (!portmap_timer_pending(&p->quiet) || p->quiet.deadline > at)
        portmap_sched_push(&c->sched, &p->quiet, at);
      break;
    }
  }
  if (p->held != 0 && i == 0) {
    if (result->available) {
      /* PCP works: nothing else to ask */
      p->pending &= ~p->held;
      p->held = 0;
      portmap_sched_cancel(&c->sched, &p->stage);
    } else {
      p->release = 1; /* settle() asks the others at once */
    }
  }
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

/* May m start on PCP before PCP has answered (its request then asks)? In
 * a fresh round nothing is known; in the round under way only while it has
 * not decided and PCP has not said no. */
static int pcp_trial(const portmap_client_t *c, const portmap_mapping_t *m, int fresh) {
  const portmap_probe_state_t *p = &c->probe;
  if (c->be_ops[0] == NULL || (m->tried & 1u))
    return 0;
  /* an explicit delete never fails over (it is for the backend that holds
   * the mapping): it waits for the probe's choice */
  if (m->req.flags & PORTMAP_FLAG_DELETE)
    return 0;
  if (!fresh && (p->decided || (answered(p, 0) && !p->res[0].available)))
    return 0;
  if (!(m->req.ipv6 ? c->have_gateway6 : c->have_gateway4))
    return 0; /* the probe says so for every protocol at once */
  return c->be_ops[0]->check(c->be_state[0], &m->req) == PORTMAP_OK;
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
  portmap_mapping_set_waiting(m, 1);
  int fresh =
      !p->running &&
      (!p->ever || (p->selected == PORTMAP_BACKEND_NONE && now - p->decided_ms >= PROBE_STALE_MS));
  if ((fresh || p->running) && pcp_trial(c, m, fresh)) {
    /* the request itself asks PCP, at once (RFC 6887 permits a MAP first) */
    begin_on(m, 0, now);
    if (m->be_data != NULL)
      portmap_mapping_set_trial(m, 1);
  }
  if (fresh)
    probe_round(c, now, 0, 1); /* reports may decide at once (in settle()) */
  else if (!m->trial || p->decided || answered(p, 0) || outwaited(c, 0, now))
    p->dirty = 1; /* settle() starts it on the chosen backend */
  /* else on trial before PCP answered: choose() stops at PCP for it as for
   * new mappings, so settle() has nothing to decide (each answer and timer
   * that could change that marks the probe dirty itself); a burst of N
   * mappings made before the first answer walked them N times */
}

/* Does this failure say "the protocol does not work here"? */
static int protocol_failure(const portmap_mapping_t *m) {
  switch (m->info.status) {
  case PORTMAP_ERR_NATPMP_GATEWAY: /* F2 */
  case PORTMAP_ERR_UNREACHABLE:    /* Q21 */
  case PORTMAP_ERR_NO_IGD:         /* UPnP devices, none an IGD */
  case PORTMAP_ERR_NO_GATEWAY:
    return 1;
  case PORTMAP_ERR_TIMEOUT: /* Q22: silently dropped */
    return !m->ever_mapped;
  case PORTMAP_ERR_REFUSED:
    /* G4, Q16: PCP NOT_AUTHORIZED / ADDRESS_MISMATCH, NAT-PMP refused;
     * F1, F3: a PCP server of another version (we speak 2 only) */
    if (m->info.backend == PORTMAP_BACKEND_PCP)
      return m->info.gateway_result == PCP_NOT_AUTHORIZED ||
             m->info.gateway_result == PCP_ADDRESS_MISMATCH ||
             m->info.gateway_result == PCP_UNSUPP_VERSION;
    if (m->info.backend == PORTMAP_BACKEND_NATPMP)
      return m->info.gateway_result == 2;
    return 0;
  default:
    return 0;
  }
}

/* Is this failure one that waiting may cure (request_timeout_ms 0)? Not a
 * refusal of the request itself (an option, PREFER_FAILURE, UNSUPPORTED). */
static int retryable(const portmap_mapping_t *m) {
  switch (m->info.status) {
  case PORTMAP_ERR_TIMEOUT:
  case PORTMAP_ERR_UNREACHABLE:
  case PORTMAP_ERR_NO_IGD:
  case PORTMAP_ERR_NO_GATEWAY:
  case PORTMAP_ERR_NATPMP_GATEWAY:
  case PORTMAP_ERR_NO_BACKEND:
    return 1;
  case PORTMAP_ERR_REFUSED:
    return protocol_failure(m) || transient_refusal(m->info.backend, m->info.gateway_result);
  default:
    return 0;
  }
}

static int move_on(portmap_mapping_t *m, uint64_t now);

int portmap_probe_failover(portmap_mapping_t *m, uint64_t now) {
  if (m->revoked || (m->req.flags & PORTMAP_FLAG_DELETE))
    return 0;
  if (!portmap_probe_single(m->client) && protocol_failure(m) && move_on(m, now))
    return 1;
  if (!keeps_trying(m) || !retryable(m))
    return 0;
  /* no other backend now: wait (LOST), then the back-off asks again; a
   * backend the probe still finds working may take it at once (settle()) */
  int i = portmap_backend_index(m->info.backend);
  if (i >= 0)
    m->tried = (uint8_t)(m->tried | 1u << i);
  m->moved = m->moved || m->ever_mapped;
  m->be = NULL;
  m->be_state = NULL;
  wait_for_retry(m, now);
  m->client->probe.dirty = 1;
  return 1;
}

/* The protocol failed m: out for new mappings too; m moves to the next
 * backend that works, or waits for one the probe has not heard from.
 * Returns 0 when none is left. */
static int move_on(portmap_mapping_t *m, uint64_t now) {
  portmap_client_t *c = m->client;
  int i = portmap_backend_index(m->info.backend);
  if (i < 0)
    return 0;
  /* the protocol is out for new mappings too */
  portmap_probe_state_t *p = &c->probe;
  p->res[i].available = 0;
  p->res[i].error = m->info.status;
  p->res[i].gateway_result = m->info.gateway_result;
  p->have |= 1u << i;
  p->pending &= ~(1u << i);
  p->ok_ms[i] = 0;
  if (p->selected == m->info.backend) {
    int next = choose(c, NULL, 1u << i, 1, now, NULL);
    p->selected = next >= PORTMAP_MAX_BACKENDS ? PORTMAP_BACKEND_NONE : backend_at(next);
    portmap_client_note_backend(c, p->selected);
  }
  m->tried = (uint8_t)(m->tried | 1u << i);
  ask_rest(c, now); /* those the round has not asked (it ended when PCP answered) */
  int next = choose(c, m, m->tried, !p->running, now, NULL);
  if (next >= PORTMAP_MAX_BACKENDS)
    return 0;
  if (next < 0) {
    portmap_mapping_requeue(m); /* a backend has not answered the probe yet: wait for it */
    return 1;
  }
  portmap_log(c, PORTMAP_LOG_INFO, "mapping moves from %s to %s (%s)",
              portmap_backend_name(m->info.backend), portmap_backend_name(backend_at(next)),
              portmap_strerror(m->info.status));
  portmap_mapping_requeue(m);
  p->dirty = 1; /* settle() starts it there, after the failing backend has returned */
  return 1;
}
