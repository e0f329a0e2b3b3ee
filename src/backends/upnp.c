/* SPDX-License-Identifier: MIT */
/*
 * The UPnP-IGD backend: our own non-blocking SSDP discovery on the
 * scheduler's thread, and the blocking HTTP/SOAP exchanges on one worker
 * thread per client. This file: the per-mapping state machine, list and
 * the vtable. The rest of the design, described here once, lives in
 *   upnp_discovery.c  SSDP, describe/eval, choosing the gateway
 *   upnp_calls.c      the call queue, dispatch, watchdog, Q10 cleanup
 *   upnp_int.h        the backend's shared state
 *   src/upnp/worker.c the worker thread and its counted context
 *   src/upnp/igd.c    description fetch, SOAP requests and replies
 *   src/upnp/transport.c, http.c  the bounded transport, the HTTP reader
 *
 * Threads. Every function of the backend runs on the scheduler's thread
 * with the client lock held; src/upnp/ is the worker's side. Blocking work is one
 * "call" (one HTTP exchange: fetch the root description, or one SOAP action), handed to the worker
 * one at a time -- which also serialises SOAP per gateway (ROUTER-QUIRKS Q20). The worker posts the
 * finished call back through a pipe whose read end is one of fds(); readable() picks it up. A
 * call's inputs are written before hand-off and only read by the worker; its outputs belong to the
 * worker until the call comes back.
 *
 * The worker's context (upnp_worker_t: the hand-off slots, their lock, the
 * pipes) is allocated apart from the backend state and counted: the state
 * holds one reference, the thread the other. The worker never touches the
 * client, a mapping or the scheduler. destroy() never waits for the
 * network: it marks the context orphaned, hands the worker the deletes
 * that must still reach the gateway (Q10, at most UPNP_ORPHAN_JOBS_MAX),
 * aborts a query in progress, and never waits for the thread either: it
 * joins it only if it has already left and otherwise detaches it; the last
 * reference frees the context.
 *
 * Bounds. Every call is bounded in time and size: the worker does its own
 * non-blocking I/O (connect, send and receive under one deadline; the
 * description capped at PORTMAP_UPNP_DESC_MAX, a SOAP reply at
 * UPNP_SOAP_REPLY_MAX, headers at PORTMAP_HTTP_HEAD_MAX). The deadline is
 * cfg.upnp_timeout_ms, and UPNP_LATE_ADD_MS more for an add, so that a
 * late answer is still heard and undone (Q10). miniupnpc still writes every
 * SOAP request and parses every reply, but its own transport cannot be
 * bounded: it limits each recv() to 5 s, never the exchange, and reads a
 * body of any size. So simpleUPnPcommand() writes the request into a
 * socketpair that already holds an empty reply (soap_request()) and we send
 * the octets ourselves. miniupnpc API 19 dropped that socket argument:
 * built against it, the same request comes from src/upnp/soap.c (checked
 * against miniupnpc's octets by test_soap), over the same transport. The watchdog,
 * cfg.upnp_timeout_ms per call on the scheduler, reports TIMEOUT; a result that comes back later is
 * discarded (except that a late successful add is deleted again, Q10).
 *
 * Discovery (per client, shared by every mapping, the probe and list):
 *   SSDP    M-SEARCH per search target, unicast to the gateway (and
 *           multicast when allowed, Q3); replies from any port of the
 *           gateway (Q1), other hosts only as a fallback (Q4), one
 *           candidate per LOCATION (Q25)
 *   DESCRIBE fetch a candidate's root description (our bounded GET) and list its
 *           WAN connection services (Q6, Q28, Q29)
 *   EVAL    GetStatusInfo + GetExternalIPAddress per service, in Q6
 *           order; the first connected one with a public address wins,
 *           else the best seen (Q5, Q29)
 *
 * Per mapping, one sequence at a time, one call in flight:
 *   CREATE   GetExternalIPAddress, then AddPortMapping (Q10: the fallible
 *            query comes first; within 2 s of discovery, which has just
 *            asked it, straight to AddPortMapping)
 *   RENEW    GetExternalIPAddress, GetSpecificPortMappingEntry (Q14), then
 *            AddPortMapping (leased: always; permanent: if it vanished)
 *   DELETE   DeletePortMapping
 *   DELCHECK (PORTMAP_FLAG_DELETE) GetSpecificPortMappingEntry, then
 *            DeletePortMapping if the entry is ours
 *
 * Lifetimes. Leased mappings are re-added at half the lease. Gateways that
 * grant only permanent leases (Q9) get lease 0 -- reported as lifetime 0
 * with expires_in_ms 0 -- and are verified every 10 minutes on our own
 * timer; with PORTMAP_FLAG_ONCE we delete them ourselves when the
 * requested lifetime ends, since the gateway never will.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <miniupnpc/upnpcommands.h>

#include "backends/upnp_int.h"

/* Q11: a stable pseudo-random sequence of external ports per (host, port,
 * protocol), so a restarted application asks for the same ports again. */
static uint16_t conflict_port(const upnp_state_t *st, const portmap_req_t *m, unsigned i,
                              uint16_t avoid) {
  uint8_t in[11];
  memcpy(in, st->local + 12, 4);
  in[4] = (uint8_t)(m->internal_port >> 8);
  in[5] = (uint8_t)m->internal_port;
  in[6] = (uint8_t)m->protocol;
  in[7] = (uint8_t)(i >> 24);
  in[8] = (uint8_t)(i >> 16);
  in[9] = (uint8_t)(i >> 8);
  in[10] = (uint8_t)i;
  uint32_t h = 2166136261u; /* FNV-1a */
  for (size_t k = 0; k < sizeof in; k++) {
    h ^= in[k];
    h *= 16777619u;
  }
  uint16_t p = (uint16_t)(1024u + h % 64512u);
  if (p == avoid)
    p = p == 65535 ? 1024 : (uint16_t)(p + 1);
  return p;
}

/* ---------- mappings ---------- */

static void pm_free(upnp_map_t *pm, int cleanup) {
  upnp_state_t *st = pm->st;
  portmap_core_t *core = st->core;
  portmap_core_disarm(core, &pm->timer);
  portmap_core_disarm(core, &pm->expiry);
  upnp_call_t *k = pm->call;
  if (k != NULL) {
    pm->call = NULL;
    k->pm = NULL; /* if it is not in the queue, it comes back as an orphan */
    if (k == st->busy) {
      if (k->kind == CALL_ADD || k->kind == CALL_ADDANY)
        k->cleanup = cleanup;
    } else if (portmap_upnp_unqueue(st, k)) {
      portmap_upnp_call_free(k);
    }
  }
  int added = pm->added;
  uint16_t port = pm->ext_port;
  const char *proto = proto_name(pm->req->protocol);
  pm->added = 0;
  portmap_hash_remove(&st->by_port, pm);
  if (pm->prev)
    pm->prev->next = pm->next;
  else
    st->maps = pm->next;
  if (pm->next)
    pm->next->prev = pm->prev;
  portmap_alloc_free(portmap_core_alloc(core), pm);
  if (cleanup && added) /* Q10: nothing we added outlives the mapping */
    portmap_upnp_cleanup_submit(st, proto, port, portmap_core_now(core));
}

/* Tell the core; a success means the mapping has been mapped. */
static void emit(upnp_map_t *pm, portmap_event_t ev) {
  if (ev == PORTMAP_EVENT_MAPPED || ev == PORTMAP_EVENT_RENEWED || ev == PORTMAP_EVENT_CHANGED)
    pm->ever_mapped = 1;
  portmap_core_report(pm->st->core, pm->h, ev, &pm->res);
}

/* End the mapping: free our state first, then report the final event. */
void portmap_upnp_pm_finish(upnp_map_t *pm, portmap_event_t ev, portmap_status_t status,
                            int cleanup) {
  portmap_core_t *core = pm->st->core;
  portmap_mapping_t *h = pm->h;
  portmap_result_t res = pm->res;
  res.status = status;
  pm_free(pm, cleanup);
  portmap_core_report(core, h, ev, &res);
}

static void pm_wait_gw(upnp_map_t *pm, uint64_t now) {
  pm->waiting_gw = 1;
  portmap_upnp_disc_start(pm->st, now);
}

/* Issue one call for the mapping with its current parameters. */
static void pm_call(upnp_map_t *pm, enum call_kind kind, uint64_t now) {
  upnp_state_t *st = pm->st;
  const portmap_req_t *m = pm->req;
  if (!st->gw.ready) {
    pm_wait_gw(pm, now); /* the sequence starts over when it is back */
    return;
  }
  upnp_call_t *k = portmap_upnp_call_new(st, kind, FOR_MAP);
  if (k == NULL) {
    portmap_upnp_pm_fail(pm, PORTMAP_ERR_NOMEM, now);
    return;
  }
  k->pm = pm;
  snprintf(k->ext_port, sizeof k->ext_port, "%u", pm->ext_port); /* Q8: never 0 */
  snprintf(k->int_port, sizeof k->int_port, "%u", m->internal_port);
  copy_str(k->proto, sizeof k->proto, proto_name(m->protocol));
  portmap_upnp_xml_escape(k->desc, sizeof k->desc,
                          portmap_req_description_len(m) > 0 ? portmap_req_description(m)
                                                             : UPNP_DEFAULT_DESCRIPTION);
  snprintf(k->lease, sizeof k->lease, "%u", pm->lease);
  pm->call = k;
  if (portmap_upnp_submit(st, k, now) != 0) {
    pm->call = NULL;
    portmap_upnp_pm_fail(pm, PORTMAP_ERR_SYSTEM, now);
  }
}

static void pm_add(upnp_map_t *pm, uint64_t now) {
  pm->lease = pm->st->gw.permanent_only ? 0 : pm->req->lifetime; /* Q9 */
  pm_call(pm, CALL_ADD, now);
}

void portmap_upnp_pm_resume(upnp_map_t *pm, uint64_t now) {
  const upnp_gw_t *g = &pm->st->gw;
  switch (pm->seq) {
  case SEQ_CREATE:
    if (g->have_ext && now - g->ext_at <= UPNP_EXT_FRESH_MS) {
      /* discovery has just asked (Q10 holds: the query came first) */
      pm->have_ext = 1;
      memcpy(pm->ext_addr, g->ext, 16);
      pm_add(pm, now);
      break;
    }
    pm_call(pm, CALL_EXTIP, now); /* Q10: the fallible query before the add */
    break;
  case SEQ_RENEW:
    pm_call(pm, CALL_EXTIP, now); /* Q10: the fallible query before the add */
    break;
  case SEQ_DELETE:
    pm_call(pm, CALL_DELETE, now);
    break;
  case SEQ_DELCHECK:
    pm_call(pm, CALL_GET, now);
    break;
  case SEQ_IDLE:
    break;
  }
}

void portmap_upnp_pm_begin(upnp_map_t *pm, enum map_seq seq, uint64_t now) {
  pm->seq = seq;
  pm->conflict_try = 0;
  pm->tried_any = 0;
  pm->tried_permanent = 0;
  pm->rediscovered = 0;
  pm->http_retry = 0;
  pm->vanished = 0;
  portmap_core_disarm(pm->st->core, &pm->timer);
  if (!pm->st->gw.ready) {
    pm_wait_gw(pm, now);
    return;
  }
  portmap_upnp_pm_resume(pm, now);
}

static void pm_retry_later(upnp_map_t *pm, uint64_t now) {
  uint64_t wait = UPNP_RETRY_MS;
  if (pm->res.expiry_ms > now && (pm->res.expiry_ms - now) / 2 < wait)
    wait = (pm->res.expiry_ms - now) / 2; /* try again before the lease ends */
  if (wait < 1000u)
    wait = 1000u;
  pm->seq = SEQ_IDLE;
  portmap_upnp_arm(pm->st, &pm->timer, now + wait);
}

/* A sequence could not finish. New mappings and deletes end here; a
 * mapping that exists keeps trying (LOST comes from the expiry). */
void portmap_upnp_pm_fail(upnp_map_t *pm, portmap_status_t status, uint64_t now) {
  const portmap_req_t *m = pm->req;
  if (pm->seq == SEQ_DELETE || pm->seq == SEQ_DELCHECK || pm->revoking) {
    portmap_upnp_pm_finish(pm, PORTMAP_EVENT_FAILED, status, 0);
    return;
  }
  if (!pm->ever_mapped || (m->flags & PORTMAP_FLAG_ONCE)) {
    portmap_upnp_pm_finish(pm, PORTMAP_EVENT_FAILED, status, 1);
    return;
  }
  pm->res.status = status;
  if (pm->vanished || (pm->permanent && !pm->added)) {
    /* Q14: it is gone from the gateway and could not be put back */
    pm->res.lifetime = 0;
    pm->res.expiry_ms = 0;
    portmap_core_disarm(pm->st->core, &pm->expiry);
    emit(pm, PORTMAP_EVENT_LOST);
  }
  pm_retry_later(pm, now);
}

static void pm_success(upnp_map_t *pm, uint64_t now) {
  upnp_state_t *st = pm->st;
  const portmap_req_t *m = pm->req;
  uint8_t ext[16];
  if (pm->have_ext)
    memcpy(ext, pm->ext_addr, 16);
  else
    addr_zero4(ext);
  int first = !pm->ever_mapped;
  int changed = !first && (pm->res.external_port != pm->ext_port ||
                           memcmp(pm->res.external_addr, ext, 16) != 0);
  pm->res.status = PORTMAP_OK;
  pm->res.renewing = 0;
  pm->res.gateway_result = 0;
  pm->res.external_port = pm->ext_port;
  memcpy(pm->res.external_addr, ext, 16);
  /* lifetime 0 means a permanent lease (Q9) */
  pm->res.lifetime = pm->permanent ? 0 : pm->lease;
  if (!pm->permanent)
    pm->res.expiry_ms = now + (uint64_t)pm->lease * 1000u;
  else if (m->flags & PORTMAP_FLAG_ONCE)
    pm->res.expiry_ms = now + (uint64_t)m->lifetime * 1000u; /* our own end for it */
  else
    pm->res.expiry_ms = 0;
  if (pm->res.expiry_ms != 0 && (m->flags & PORTMAP_FLAG_ONCE || !pm->permanent))
    portmap_upnp_arm(st, &pm->expiry, pm->res.expiry_ms);
  else
    portmap_core_disarm(st->core, &pm->expiry);
  pm->seq = SEQ_IDLE;
  pm->vanished = 0;
  if (m->flags & PORTMAP_FLAG_ONCE)
    portmap_core_disarm(st->core, &pm->timer);
  else if (pm->permanent)
    portmap_upnp_arm(st, &pm->timer, now + UPNP_PERMANENT_VERIFY_MS); /* Q9: our own timer */
  else
    portmap_upnp_arm(st, &pm->timer, now + (uint64_t)pm->lease * 500u); /* at half the lease */
  emit(pm, first ? PORTMAP_EVENT_MAPPED : changed ? PORTMAP_EVENT_CHANGED : PORTMAP_EVENT_RENEWED);
}

/* Q13: "connection refused" or silence: retry once, then find the gateway
 * again (its control port may have moved after a reboot). */
static void pm_http_failure(upnp_map_t *pm, upnp_call_t *k, int rc, uint64_t now) {
  upnp_state_t *st = pm->st;
  portmap_status_t status = rc == UPNP_RC_TIMEOUT ? PORTMAP_ERR_TIMEOUT : PORTMAP_ERR_UNREACHABLE;
  if (k->gen != st->gw.gen && st->gw.ready && pm->http_retry < 2) {
    pm->http_retry++; /* the gateway was found again meanwhile */
    portmap_upnp_pm_resume(pm, now);
    return;
  }
  st->http_failures++;
  if (st->http_failures < UPNP_REDISCOVER_AFTER && pm->http_retry == 0) {
    pm->http_retry++;
    pm_call(pm, k->kind, now);
    return;
  }
  if (!pm->rediscovered) {
    pm->rediscovered = 1;
    pm->http_retry = 0;
    portmap_core_log(st->core, PORTMAP_LOG_INFO,
                     "upnp: %u failed requests to %s: looking for the gateway again (Q13)",
                     st->http_failures, k->url);
    if (k->gen == st->gw.gen)
      st->gw.ready = 0;
    pm_wait_gw(pm, now);
    return;
  }
  pm->res.gateway_result = -1;
  portmap_upnp_pm_fail(pm, status, now);
}

static void pm_on_extip(upnp_map_t *pm, upnp_call_t *k, int rc, uint64_t now) {
  if (rc == 0) {
    pm->have_ext = portmap_upnp_parse_ext(k->o_extip, pm->ext_addr); /* Q12 */
    if (!pm->have_ext)
      portmap_core_log(pm->st->core, PORTMAP_LOG_INFO,
                       "upnp: the gateway reports no usable external address (\"%s\", Q12)",
                       k->o_extip);
  }
  /* a SOAP error here is not fatal: map without knowing the address */
  if (pm->seq == SEQ_RENEW)
    pm_call(pm, CALL_GET, now);
  else
    pm_add(pm, now);
}

static void pm_next_port(upnp_map_t *pm, uint64_t now, int rc) {
  const portmap_req_t *m = pm->req;
  if (++pm->conflict_try > UPNP_CONFLICT_TRIES) {
    portmap_core_log(pm->st->core, PORTMAP_LOG_INFO,
                     "upnp: no free external port after %u tries (Q11)", UPNP_CONFLICT_TRIES);
    pm->res.gateway_result = rc;
    portmap_upnp_pm_fail(pm, PORTMAP_ERR_REFUSED, now);
    return;
  }
  pm->added = 0; /* a conflict: that port is not ours */
  portmap_upnp_set_ext_port(pm, conflict_port(pm->st, m, pm->conflict_try, pm->ext_port));
  pm_add(pm, now);
}

static void pm_on_add(upnp_map_t *pm, upnp_call_t *k, int rc, uint64_t now) {
  upnp_state_t *st = pm->st;
  const portmap_req_t *m = pm->req;
  if (rc == 0) {
    pm->permanent = pm->lease == 0;
    if (pm->tried_permanent && !st->gw.permanent_only) {
      st->gw.permanent_only = 1; /* Q9: remember it for this gateway */
      portmap_core_log(st->core, PORTMAP_LOG_INFO,
                       "upnp: the gateway grants permanent leases only");
    }
    pm_success(pm, now);
    return;
  }
  if ((rc == UPNP_E_ONLY_PERMANENT || rc == UPNP_E_INVALID_ARGS) && pm->lease != 0 &&
      !pm->tried_permanent) {
    pm->tried_permanent = 1; /* Q9: 725 (MikroTik) or 402 (ARRIS) */
    pm->lease = 0;
    pm_call(pm, k->kind == CALL_ADDANY ? CALL_ADDANY : CALL_ADD, now);
    return;
  }
  int conflict = rc == UPNP_E_CONFLICT || rc == UPNP_E_ACTION_FAILED || rc == UPNP_E_CONFLICT_OTHER;
  int any_unusable = k->kind == CALL_ADDANY &&
                     (rc == UPNP_E_INVALID_ACTION || rc == UPNP_E_OPTIONAL_ACTION || rc < 0);
  if (conflict && k->kind == CALL_ADD && st->gw.rank % 4 < 2 && !pm->tried_any) {
    pm->tried_any = 1; /* IGDv2: let the gateway pick a free port */
    pm_call(pm, CALL_ADDANY, now);
    return;
  }
  if (conflict || any_unusable) {
    pm_next_port(pm, now, rc); /* Q11 */
    return;
  }
  if (rc == UPNP_E_SAME_PORT_REQUIRED && pm->ext_port != m->internal_port) {
    portmap_upnp_set_ext_port(pm, m->internal_port);
    pm_add(pm, now);
    return;
  }
  pm->res.gateway_result = rc > 0 ? rc : -1;
  portmap_upnp_pm_fail(pm, PORTMAP_ERR_REFUSED, now);
}

static void pm_on_get(upnp_map_t *pm, upnp_call_t *k, int rc, uint64_t now) {
  upnp_state_t *st = pm->st;
  const portmap_req_t *m = pm->req;
  if (rc == 0) {
    int ours =
        strcmp(k->o_client, st->client) == 0 && strtol(k->o_port, NULL, 10) == m->internal_port;
    if (pm->seq == SEQ_DELCHECK) {
      if (ours) {
        pm->added = 1;
        pm_call(pm, CALL_DELETE, now);
      } else {
        portmap_core_log(st->core, PORTMAP_LOG_WARN,
                         "upnp: port %u/%s belongs to %s:%s, not to us: not deleting it",
                         pm->ext_port, proto_name(m->protocol), k->o_client, k->o_port);
        pm->res.gateway_result = -1;
        portmap_upnp_pm_finish(pm, PORTMAP_EVENT_FAILED, PORTMAP_ERR_REFUSED, 0);
      }
      return;
    }
    if (ours) {
      pm->added = 1;
      if (pm->permanent) {
        pm_success(pm, now); /* Q9: verified, nothing to renew */
        return;
      }
      pm_add(pm, now);
      return;
    }
    /* someone else holds our external port now (after a wipe, Q14) */
    pm->added = 0;
    pm->vanished = 1;
    pm_next_port(pm, now, UPNP_E_CONFLICT);
    return;
  }
  if (rc == UPNP_E_NO_SUCH_ENTRY) {
    if (pm->seq == SEQ_DELCHECK) {
      portmap_upnp_pm_finish(pm, PORTMAP_EVENT_DELETED, PORTMAP_OK, 0); /* nothing to delete */
      return;
    }
    portmap_core_log(st->core, PORTMAP_LOG_INFO,
                     "upnp: port %u/%s vanished from the gateway; adding it again (Q14)",
                     pm->ext_port, proto_name(m->protocol));
    pm->added = 0;
    pm->vanished = 1;
    pm_add(pm, now);
    return;
  }
  /* cannot verify (not implemented, not authorised): act without it */
  if (pm->seq == SEQ_DELCHECK) {
    pm->added = 1;
    pm_call(pm, CALL_DELETE, now);
  } else {
    pm_add(pm, now);
  }
}

static void pm_on_delete(upnp_map_t *pm, int rc) {
  if (rc == 0 || rc == UPNP_E_NO_SUCH_ENTRY) {
    pm->added = 0;
    portmap_upnp_pm_finish(pm, PORTMAP_EVENT_DELETED, PORTMAP_OK, 0);
    return;
  }
  pm->res.gateway_result = rc > 0 ? rc : -1;
  portmap_upnp_pm_finish(pm, PORTMAP_EVENT_FAILED, PORTMAP_ERR_REFUSED, 0);
}

void portmap_upnp_pm_on_result(upnp_map_t *pm, upnp_call_t *k, int rc, uint64_t now) {
  pm->call = NULL;
  if (rc >= 0)
    pm->res.gateway_result = rc;
  /* what any exit must know first (Q10) */
  if (rc == 0 && k->kind == CALL_ADD) {
    pm->added = 1;
  } else if (rc == 0 && k->kind == CALL_ADDANY) {
    long port = strtol(k->o_reserved, NULL, 10);
    if (port >= 1 && port <= 65535) {
      portmap_upnp_set_ext_port(pm, (uint16_t)port);
      pm->added = 1;
    } else {
      rc = UPNPCOMMAND_INVALID_RESPONSE;
    }
  }
  if ((rc == UPNP_RC_TIMEOUT || rc == UPNPCOMMAND_MEM_ALLOC_ERROR) && k->kind == CALL_ADD)
    pm->added = 1; /* maybe (its answer was lost): every exit path deletes it (Q10) */
  if (pm->revoking && pm->seq != SEQ_DELETE) {
    if (pm->added) {
      portmap_upnp_pm_begin(pm, SEQ_DELETE, now);
    } else {
      portmap_upnp_pm_finish(pm, PORTMAP_EVENT_DELETED, PORTMAP_OK, 0);
    }
    return;
  }
  if (portmap_upnp_is_http_failure(rc)) {
    pm_http_failure(pm, k, rc, now);
    return;
  }
  if (rc == UPNP_RC_SYSTEM) {
    portmap_upnp_pm_fail(pm, PORTMAP_ERR_SYSTEM, now);
    return;
  }
  if (portmap_upnp_is_nomem(rc)) {
    portmap_upnp_pm_fail(pm, PORTMAP_ERR_NOMEM, now); /* ours, not the gateway's refusal */
    return;
  }
  switch (k->kind) {
  case CALL_EXTIP:
    pm_on_extip(pm, k, rc, now);
    break;
  case CALL_ADD:
  case CALL_ADDANY:
    pm_on_add(pm, k, rc, now);
    break;
  case CALL_GET:
    pm_on_get(pm, k, rc, now);
    break;
  case CALL_DELETE:
    pm_on_delete(pm, rc);
    break;
  default:
    break;
  }
}

static void on_pm_timer(portmap_timer_t *t, uint64_t now) {
  upnp_map_t *pm = t->ctx;
  if (pm->call != NULL || pm->waiting_gw)
    return;
  if (pm->ever_mapped) {
    pm->res.renewing = 1;
    portmap_core_update(pm->st->core, pm->h, &pm->res);
  }
  portmap_upnp_pm_begin(pm, pm->ever_mapped ? SEQ_RENEW : SEQ_CREATE, now);
}

static void on_pm_expiry(portmap_timer_t *t, uint64_t now) {
  upnp_map_t *pm = t->ctx;
  const portmap_req_t *m = pm->req;
  if (m->flags & PORTMAP_FLAG_ONCE) {
    if (pm->permanent && pm->added && pm->call == NULL && !pm->waiting_gw) {
      pm->revoking = 1;
      portmap_upnp_pm_begin(pm, SEQ_DELETE, now); /* the gateway never ends it itself */
      return;
    }
    portmap_upnp_pm_finish(pm, PORTMAP_EVENT_DELETED, PORTMAP_OK, 0);
    return;
  }
  pm->res.lifetime = 0;
  pm->res.expiry_ms = 0;
  pm->res.status = PORTMAP_ERR_TIMEOUT;
  emit(pm, PORTMAP_EVENT_LOST);
  if (pm->call == NULL && !pm->waiting_gw && !portmap_timer_pending(&pm->timer))
    portmap_upnp_arm(pm->st, &pm->timer, now);
}

/* ---------- list ---------- */

void portmap_upnp_list_finish(upnp_state_t *st, portmap_status_t status) {
  portmap_core_list_result(st->core, status, st->list, st->list_n);
  portmap_alloc_free(portmap_core_alloc(st->core), st->list);
  st->list = NULL;
  st->list_n = 0;
  st->list_active = 0;
  st->list_waiting = 0;
}

void portmap_upnp_list_next(upnp_state_t *st, uint64_t now) {
  upnp_call_t *k = portmap_upnp_call_new(st, CALL_LIST, FOR_LIST);
  if (k == NULL) {
    portmap_upnp_list_finish(st, PORTMAP_ERR_NOMEM);
    return;
  }
  snprintf(k->index, sizeof k->index, "%zu", st->list_n);
  if (portmap_upnp_submit(st, k, now) != 0)
    portmap_upnp_list_finish(st, PORTMAP_ERR_SYSTEM);
}

void portmap_upnp_list_on_result(upnp_state_t *st, upnp_call_t *k, int rc, uint64_t now) {
  if (!st->list_active)
    return;
  if (rc == 0) {
    portmap_list_entry_t *e = &st->list[st->list_n];
    memset(e, 0, sizeof *e);
    e->protocol = strcasecmp(k->o_proto, "UDP") == 0   ? PORTMAP_PROTO_UDP
                  : strcasecmp(k->o_proto, "TCP") == 0 ? PORTMAP_PROTO_TCP
                                                       : 0;
    long ep = strtol(k->o_ext_port, NULL, 10), ip = strtol(k->o_port, NULL, 10);
    e->external_port = ep > 0 && ep <= 65535 ? (uint16_t)ep : 0;
    e->internal_port = ip > 0 && ip <= 65535 ? (uint16_t)ip : 0;
    copy_str(e->internal_client, sizeof e->internal_client, k->o_client);
    copy_str(e->remote_host, sizeof e->remote_host, k->o_rhost);
    copy_str(e->description, sizeof e->description, k->o_desc);
    unsigned long lease = strtoul(k->o_lease, NULL, 10);
    e->lease = lease > UINT32_MAX ? UINT32_MAX : (uint32_t)lease;
    e->enabled = strtol(k->o_enabled, NULL, 10) != 0;
    st->list_n++;
    if (st->list_n >= UPNP_LIST_MAX)
      portmap_upnp_list_finish(st, PORTMAP_OK); /* bounded */
    else
      portmap_upnp_list_next(st, now);
    return;
  }
  if (rc == UPNP_E_ARRAY_INDEX_INVALID || rc == UPNP_E_NO_SUCH_ENTRY ||
      (st->list_n > 0 && rc > 0)) {
    portmap_upnp_list_finish(st, PORTMAP_OK); /* the end of the table */
    return;
  }
  portmap_upnp_list_finish(st, rc == UPNP_RC_TIMEOUT          ? PORTMAP_ERR_TIMEOUT
                               : rc == UPNPCOMMAND_HTTP_ERROR ? PORTMAP_ERR_UNREACHABLE
                               : rc == UPNP_RC_SYSTEM         ? PORTMAP_ERR_SYSTEM
                               : portmap_upnp_is_nomem(rc)    ? PORTMAP_ERR_NOMEM
                                                              : PORTMAP_ERR_REFUSED);
}

/* ---------- vtable ---------- */

static portmap_status_t upnp_create(portmap_core_t *core, void **state) {
  upnp_state_t *st = portmap_alloc_calloc(portmap_core_alloc(core), 1, sizeof *st);
  if (st == NULL)
    return PORTMAP_ERR_NOMEM;
  st->core = core;
  portmap_hash_init(&st->by_port, portmap_upnp_pm_hash, st, portmap_core_alloc(core));
  st->have_gateway4 = portmap_core_gateway(core, 0, st->gateway4, NULL);
  portmap_dlist_init(&st->queue);
  st->fd = -1;
  st->w_fd = -1;
  portmap_timer_init(&st->disc.timer, portmap_upnp_on_disc_timer, st);
  portmap_timer_init(&st->stuck, portmap_upnp_on_stuck, st);
  *state = st;
  return PORTMAP_OK;
}

/* At destroy: keep a call for the orphaned worker, or free it. */
static void keep_for_worker(upnp_state_t *st, upnp_call_t *k, int keep, upnp_jobs_t *jobs) {
  portmap_core_disarm(st->core, &k->watchdog);
  portmap_upnp_jobs_keep(jobs, k, keep);
}

/* Never waits for the network (mappings are already gone, their deletes
 * were waited for by the caller): the worker gets what must still reach
 * the gateway and finishes on its own. */
static void upnp_destroy(void *state) {
  upnp_state_t *st = state;
  if (st == NULL)
    return;
  portmap_core_t *core = st->core;
  portmap_core_disarm(core, &st->disc.timer);
  portmap_core_disarm(core, &st->stuck);
  upnp_jobs_t jobs;
  portmap_upnp_jobs_init(&jobs);
  /* Q10: deletes still queued go; every other call was for the client */
  portmap_dlist_t queued = st->queue;
  portmap_dlist_init(&st->queue);
  for (portmap_dlink_t *e = queued.head, *next; e != NULL; e = next) {
    next = e->next;
    upnp_call_t *k = portmap_upnp_call_of(e);
    keep_for_worker(st, k, k->purpose == FOR_CLEANUP && k->kind == CALL_DELETE, &jobs);
  }
  upnp_worker_t *w = st->w;
  if (w == NULL) {
    portmap_upnp_call_release_chain(jobs.head); /* nothing was ever sent: none can exist */
  } else {
    if (st->busy != NULL) /* it stays with the worker, or is among the calls it finished */
      portmap_core_disarm(core, &st->busy->watchdog);
    if (portmap_upnp_worker_orphan(w, &jobs, portmap_core_freeing(core)))
      portmap_core_log(core, PORTMAP_LOG_DEBUG,
                       "upnp: the worker finishes on its own (%zu delete(s) to send)", jobs.n);
  }
  if (jobs.dropped > 0)
    portmap_core_log(
        core, PORTMAP_LOG_WARN,
        "upnp: %zu more port(s) to delete at exit than the worker takes (%u): they may "
        "stay on the gateway",
        jobs.dropped, UPNP_ORPHAN_JOBS_MAX);
  portmap_alloc_free(portmap_core_alloc(core), st->list);
  portmap_hash_fini(&st->by_port);
  portmap_core_close_fd(core, st->fd);
  portmap_core_close_fd(core, st->w_fd);
  portmap_alloc_free(portmap_core_alloc(core), st);
}

static portmap_status_t upnp_check(void *state, const portmap_req_t *m) {
  (void)state;
  /* what an IGD port mapping cannot say: PCP-only features, IPv6,
   * protocols other than TCP and UDP (protocol 0 included) */
  if (m->is_peer || portmap_req_n_filters(m) > 0 || m->has_third_party ||
      (m->flags & PORTMAP_FLAG_PREFER_FAILURE) || m->ipv6 ||
      (m->protocol != PORTMAP_PROTO_TCP && m->protocol != PORTMAP_PROTO_UDP))
    return PORTMAP_ERR_UNSUPPORTED;
  return PORTMAP_OK;
}

static portmap_status_t upnp_start(void *state, const portmap_be_start_t *start, void **mstate,
                                   uint64_t now) {
  upnp_state_t *st = state;
  const portmap_req_t *m = start->req;
  if (!st->have_gateway4)
    return PORTMAP_ERR_NO_GATEWAY;
  if (portmap_upnp_ensure_local(st) != 0)
    return PORTMAP_ERR_SYSTEM;
  upnp_map_t *pm = portmap_alloc_calloc(portmap_core_alloc(st->core), 1, sizeof *pm);
  if (pm == NULL)
    return PORTMAP_ERR_NOMEM;
  pm->h = start->handle;
  pm->req = m;
  pm->res = start->result;
  pm->ever_mapped = start->ever_mapped;
  pm->st = st;
  portmap_timer_init(&pm->timer, on_pm_timer, pm);
  portmap_timer_init(&pm->expiry, on_pm_expiry, pm);
  /* Q8: never external port 0 ("all ports" to some): suggest the internal one */
  pm->ext_port = m->suggested_port != 0 ? m->suggested_port : m->internal_port;
  if (portmap_hash_insert(&st->by_port, pm) != 0) {
    portmap_alloc_free(portmap_core_alloc(st->core), pm);
    return PORTMAP_ERR_NOMEM;
  }
  pm->next = st->maps;
  if (st->maps)
    st->maps->prev = pm;
  st->maps = pm;
  *mstate = pm;
  memcpy(pm->res.internal_addr, st->local, 16);
  portmap_core_update(st->core, pm->h, &pm->res);
  portmap_upnp_pm_begin(pm, (m->flags & PORTMAP_FLAG_DELETE) ? SEQ_DELCHECK : SEQ_CREATE, now);
  return PORTMAP_OK;
}

static void upnp_revoke(void *state, void *mstate, uint64_t now) {
  (void)state;
  upnp_map_t *pm = mstate;
  if (pm == NULL || pm->seq == SEQ_DELETE || pm->seq == SEQ_DELCHECK)
    return;
  if (pm->call != NULL || (pm->waiting_gw && pm->added)) {
    pm->revoking = 1; /* decided when the call comes back */
    return;
  }
  portmap_core_disarm(pm->st->core, &pm->timer);
  portmap_core_disarm(pm->st->core, &pm->expiry);
  pm->waiting_gw = 0;
  if (!pm->added) {
    portmap_upnp_pm_finish(pm, PORTMAP_EVENT_DELETED, PORTMAP_OK, 0);
    return;
  }
  portmap_upnp_pm_begin(pm, SEQ_DELETE, now);
}

static void upnp_detach(void *state, void *mstate, int revoked) {
  (void)state;
  upnp_map_t *pm = mstate;
  if (pm != NULL)
    pm_free(pm, revoked); /* kept on the gateway unless a delete was asked for */
}

static size_t upnp_fds(void *state, int *fds, size_t cap) {
  upnp_state_t *st = state;
  int all[2] = {st->fd, st->w_fd >= 0   ? st->w_fd
                        : st->w != NULL ? portmap_upnp_worker_fd(st->w)
                                        : -1};
  return portmap_backend_put_fds(all, 2, fds, cap);
}

static void upnp_readable(void *state, uint64_t now) {
  upnp_state_t *st = state;
  portmap_upnp_ssdp_read(st, now);
  portmap_upnp_drain_worker(st, now);
}

static void upnp_probe(void *state, uint64_t now) {
  upnp_state_t *st = state;
  st->probe_pending = 1;
  portmap_upnp_disc_start(st, now); /* or join the round under way */
}

static portmap_status_t upnp_list(void *state, uint64_t now) {
  upnp_state_t *st = state;
  if (st->list_active)
    return PORTMAP_ERR_STATE;
  if (!st->have_gateway4)
    return PORTMAP_ERR_NO_GATEWAY;
  st->list = portmap_alloc_calloc(portmap_core_alloc(st->core), UPNP_LIST_MAX, sizeof *st->list);
  if (st->list == NULL)
    return PORTMAP_ERR_NOMEM;
  st->list_active = 1;
  st->list_n = 0;
  if (st->gw.ready) {
    portmap_upnp_list_next(st, now);
  } else {
    st->list_waiting = 1;
    portmap_upnp_disc_start(st, now);
  }
  return PORTMAP_OK;
}

const portmap_backend_ops_t portmap_upnp_backend = {
    .id = PORTMAP_BACKEND_UPNP,
    .name = "upnp",
    .create = upnp_create,
    .destroy = upnp_destroy,
    .check = upnp_check,
    .start = upnp_start,
    .revoke = upnp_revoke,
    .detach = upnp_detach,
    .fds = upnp_fds,
    .readable = upnp_readable,
    .probe = upnp_probe,
    .unsolicited = NULL,
    .list = upnp_list,
};
