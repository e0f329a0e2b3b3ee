/* SPDX-License-Identifier: MIT */
/*
 * The seam's core side: what a backend may call (src/backends/backend.h),
 * the event queue's entry, and settle(), the one place where the decisions
 * that follow an event or a probe answer run.
 *
 * No re-entry. A backend's report only records the result and queues the
 * event; a FAILED report is held back until settle() has decided whether
 * the mapping moves to another backend. A probe answer only records. So no
 * backend call ever runs from inside another backend's handler, and no
 * callback runs with a mapping half-moved (c-ares drains its deferred
 * requeue/end queue the same way, ares_process.c).
 *
 * settle() runs after each handler has returned: at the end of
 * portmap_process() (after the readers and the due timers), and at the end
 * of every API call that started or stopped backend work. Its order is
 * fixed: first the failures, in the order they were reported (failover, or
 * the FAILED event); then the probe's answers (decide, start the mappings
 * that wait, including those that just moved). Starting a mapping may fail
 * at once, so the two steps repeat until nothing is left, at most
 * SETTLE_ROUNDS times per call (each failure adds a backend to the
 * mapping's tried mask, so this ends long before).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "util/netutil.h"

#define SETTLE_ROUNDS 16

/* ---------- clock, randomness, logging ---------- */

uint64_t portmap_client_now(portmap_client_t *c) {
  return c->cfg.clock_cb(c->cfg.clock_user);
}

int portmap_client_random(portmap_client_t *c, void *buf, size_t len) {
  return c->cfg.random_cb(buf, len, c->cfg.random_user);
}

uint64_t portmap_core_now(portmap_core_t *core) {
  return portmap_client_now(core->client);
}

int portmap_core_random(portmap_core_t *core, void *buf, size_t len) {
  return portmap_client_random(core->client, buf, len);
}

uint32_t portmap_core_random32(portmap_core_t *core) {
  uint8_t b[4] = {0, 0, 0, 0};
  if (portmap_core_random(core, b, sizeof b) != 0)
    portmap_log(core->client, PORTMAP_LOG_WARN, "random source failed (%s)",
                errno == EAGAIN ? "not initialised yet: early boot" : strerror(errno));
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

void portmap_core_log(portmap_core_t *core, portmap_log_level_t level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  portmap_vlog(core->client, level, fmt, ap);
  va_end(ap);
}

void portmap_core_trace(portmap_core_t *core, int sent, const uint8_t addr[16], uint16_t port,
                        const uint8_t *data, size_t len) {
  portmap_trace(core->client, sent, addr, port, data, len);
}

/* ---------- what backends read ---------- */

const portmap_alloc_t *portmap_core_alloc(portmap_core_t *core) {
  return &core->client->alloc;
}

int portmap_core_freeing(portmap_core_t *core) {
  return core->client->freeing;
}

portmap_stats_t *portmap_core_stats(portmap_core_t *core) {
  return &core->client->stats;
}

const portmap_config_t *portmap_core_config(portmap_core_t *core) {
  return &core->client->cfg;
}

int portmap_core_gateway(portmap_core_t *core, int ipv6, uint8_t addr[16], unsigned *scope) {
  portmap_client_t *c = core->client;
  if (ipv6 ? !c->have_gateway6 : !c->have_gateway4)
    return 0;
  memcpy(addr, ipv6 ? c->gateway6 : c->gateway4, 16);
  if (scope != NULL)
    *scope = ipv6 ? c->gateway6_scope : 0;
  return 1;
}

int portmap_core_local_address(portmap_core_t *core, uint8_t addr[16]) {
  portmap_client_t *c = core->client;
  if (!c->have_local)
    return 0;
  memcpy(addr, c->local_addr, 16);
  return 1;
}

int portmap_core_source_address(portmap_core_t *core, int ipv6, uint8_t addr[16]) {
  return portmap_watch_source(core->client, ipv6, addr);
}

int portmap_core_arm(portmap_core_t *core, portmap_timer_t *t, uint64_t deadline) {
  return portmap_sched_push(&core->client->sched, t, deadline);
}

void portmap_core_disarm(portmap_core_t *core, portmap_timer_t *t) {
  portmap_sched_cancel(&core->client->sched, t);
}

/* ---------- results and events ---------- */

static void apply_result(portmap_mapping_t *m, const portmap_result_t *r) {
  m->info.status = r->status;
  m->info.gateway_result = r->gateway_result;
  memcpy(m->info.internal_address.bytes, r->internal_addr, 16);
  memcpy(m->info.external_address.bytes, r->external_addr, 16);
  m->info.external_port = r->external_port;
  m->info.lifetime = r->lifetime;
  m->expiry_ms = r->expiry_ms;
  m->renewing = r->renewing != 0;
  portmap_probe_note(m);
}

void portmap_core_update(portmap_core_t *core, portmap_mapping_t *m,
                         const portmap_result_t *result) {
  (void)core;
  if (!m->be_ended && !m->upgrading)
    apply_result(m, result);
}

/* m leaves its backend for a better one (probe.c move_up()): the backend
 * deletes it on the gateway, and its final report hands m back to settle(),
 * which starts it on the better backend; the application hears nothing of
 * the delete, only CHANGED once the new backend has it. */
static void upgrade_step(portmap_mapping_t *m, portmap_event_t ev, const portmap_result_t *r) {
  if (ev != PORTMAP_EVENT_FAILED && ev != PORTMAP_EVENT_DELETED)
    return;
  portmap_client_t *c = m->client;
  if (ev == PORTMAP_EVENT_FAILED)
    portmap_log(c, PORTMAP_LOG_WARN, "%s: the delete before moving failed (%s); moving anyway",
                portmap_backend_name(m->info.backend), portmap_strerror(r->status));
  m->be_data = NULL; /* the backend has let go of it */
  m->be_ended = 1;
  m->upgrading = 0;
  portmap_mapping_requeue(m);
  m->info.gateway_result = -1;
  c->probe.dirty = 1;
}

void portmap_core_report(portmap_core_t *core, portmap_mapping_t *m, portmap_event_t ev,
                         const portmap_result_t *result) {
  (void)core;
  if (m->be_ended)
    return; /* nothing after a final report */
  if (m->upgrading && !m->revoked) {
    upgrade_step(m, ev, result);
    return;
  }
  m->upgrading = 0; /* revoked meanwhile: its delete is the application's */
  if (m->trial && ev == PORTMAP_EVENT_LOST && portmap_probe_trial_held(m)) {
    apply_result(m, result); /* PCP said "not now" to the probe: settle() decides */
    return;
  }
  portmap_mapping_set_trial(m, 0); /* PCP answered it: it stays (or fails over) as any other */
  /* LOST once for a reason: until the mapping works again (or ends), a
   * loss told again with the same status and gateway result -- a refusal
   * repeated at every retry, the lease end after an error told it -- is
   * no news (portmap_mapping_info() has it all the same) */
  int repeat = ev == PORTMAP_EVENT_LOST && m->last_event == PORTMAP_EVENT_LOST &&
               result->status == m->info.status && result->gateway_result == m->info.gateway_result;
  apply_result(m, result);
  if (repeat)
    return;
  if (ev == PORTMAP_EVENT_FAILED || ev == PORTMAP_EVENT_DELETED) {
    m->be_data = NULL; /* the backend has let go of it */
    m->be_ended = 1;
  }
  portmap_mapping_emit(m, ev);
}

void portmap_core_probe_result(portmap_core_t *core, portmap_backend_t backend,
                               const portmap_probe_backend_t *result) {
  portmap_probe_record(core->client, backend, result);
}

void portmap_core_epoch_changed(portmap_core_t *core, uint64_t now) {
  portmap_probe_epoch_changed(core->client, now);
}

void portmap_core_list_result(portmap_core_t *core, portmap_status_t status,
                              const portmap_list_entry_t *entries, size_t n) {
  portmap_client_t *c = core->client;
  c->list_done = 1;
  c->list_status = status;
  c->list_count = n;
  for (size_t i = 0; i < n && i < c->list_cap; i++)
    portmap_abi_out(c->list_out + i * c->list_entry_size, c->list_entry_size, &entries[i],
                    sizeof entries[i]);
}

static portmap_mapping_state_t state_of(const portmap_mapping_t *m) {
  if (portmap_mapping_ended(m))
    return PORTMAP_STATE_ENDED;
  if (m->revoked)
    return PORTMAP_STATE_DELETING;
  if (m->last_event == PORTMAP_EVENT_LOST)
    return PORTMAP_STATE_LOST; /* retrying, on its backend or by probing again */
  if (m->waiting || m->trial)
    return PORTMAP_STATE_PROBING; /* a trial's request is the probe's question */
  switch (m->last_event) {
  case PORTMAP_EVENT_MAPPED:
  case PORTMAP_EVENT_RENEWED:
  case PORTMAP_EVENT_CHANGED:
    return m->renewing ? PORTMAP_STATE_RENEWING : PORTMAP_STATE_MAPPED;
  default:
    return PORTMAP_STATE_MAPPING;
  }
}

void portmap_mapping_make_info(const portmap_mapping_t *m, uint64_t now, portmap_info_t *out) {
  const portmap_minfo_t *i = &m->info;
  memset(out, 0, sizeof *out);
  out->backend = i->backend;
  out->protocol = m->req.protocol;
  out->internal_port = m->req.internal_port;
  out->internal_address = i->internal_address;
  out->external_address = i->external_address;
  portmap_client_t *c = m->client; /* its text cache: the lock is held */
  if (!c->have_ext_text || memcmp(c->ext_text_addr, i->external_address.bytes, 16) != 0) {
    memset(c->ext_text, 0, sizeof c->ext_text); /* the info's tail stays zero, as it was */
    portmap_addr_format(&i->external_address, c->ext_text, sizeof c->ext_text);
    memcpy(c->ext_text_addr, i->external_address.bytes, 16);
    c->have_ext_text = 1;
  }
  memcpy(out->external_address_str, c->ext_text, sizeof out->external_address_str);
  out->external_port = i->external_port;
  out->lifetime = i->lifetime;
  if (m->expiry_ms > now) {
    uint64_t left = m->expiry_ms - now;
    out->expires_in_ms = left > UINT32_MAX ? UINT32_MAX : (uint32_t)left;
  }
  out->external_is_private = !portmap_net_is_unspecified(i->external_address.bytes) &&
                             portmap_net_is_private(i->external_address.bytes);
  out->gateway_result = i->gateway_result;
  out->status = i->status;
  memcpy(out->nonce, m->req.nonce, sizeof out->nonce);
  out->is_peer = m->req.is_peer;
  out->state = state_of(m);
  portmap_probe_tried_out(i, out->tried);
}

/* Put the event on the application's queue. */
static void queue_event(portmap_mapping_t *m, portmap_event_t ev) {
  portmap_client_t *c = m->client;
  if (portmap_mapping_ended(m))
    return;
  if (ev == PORTMAP_EVENT_DELETED) {
    m->info.lifetime = 0; /* whoever deleted it: nothing is held any more */
    m->expiry_ms = 0;
  }
  if (m->moved && (ev == PORTMAP_EVENT_MAPPED || ev == PORTMAP_EVENT_RENEWED)) {
    ev = PORTMAP_EVENT_CHANGED; /* the backend changed */
    m->moved = 0;
  }
  /* behind an event that waits on the spare node, nothing overtakes it */
  portmap_event_rec_t *rec =
      m->spare_queued ? NULL : portmap_alloc_calloc(&c->alloc, 1, sizeof *rec);
  int final = ev == PORTMAP_EVENT_FAILED || ev == PORTMAP_EVENT_DELETED;
  if (final) {
    portmap_mapping_set_ended(m, 0);
    c->n_live--; /* it was not ended (checked above) */
  }
  if (ev == PORTMAP_EVENT_MAPPED || ev == PORTMAP_EVENT_RENEWED || ev == PORTMAP_EVENT_CHANGED) {
    m->ever_mapped = 1;
    portmap_client_note_external(c, m->info.external_address.bytes);
    portmap_mapping_set_retrying(m, 0); /* a later wait is a new loss */
  }
  m->last_event = (uint8_t)ev;
  portmap_event_node_t *node;
  if (rec != NULL) {
    portmap_mapping_make_info(m, portmap_client_now(c), &rec->info);
    rec->mapping = m;
    node = &rec->node;
  } else if (m->spare_queued) {
    /* Merged into the event that waits: the final one wins; news of a
     * mapping the application has not heard of yet stays news of it. */
    portmap_event_t was = m->spare_node.event;
    if (final || ev != PORTMAP_EVENT_RENEWED ||
        (was != PORTMAP_EVENT_MAPPED && was != PORTMAP_EVENT_CHANGED))
      m->spare_node.event = ev;
    return;
  } else {
    /* Out of memory: the event goes out all the same, from the mapping's
     * own node, with its info as it is when delivered. */
    node = &m->spare_node;
    memset(node, 0, sizeof *node);
    node->spare = 1;
    m->spare_queued = 1;
  }
  node->event = ev;
  m->queued++;
  if (c->ev_tail)
    c->ev_tail->next = node;
  else
    c->ev_head = node;
  c->ev_tail = node;
}

void portmap_mapping_emit(portmap_mapping_t *m, portmap_event_t ev) {
  portmap_client_t *c = m->client;
  if (portmap_mapping_ended(m))
    return;
  if (ev != PORTMAP_EVENT_FAILED) {
    queue_event(m, ev);
    return;
  }
  /* settle() decides: another backend, or this event */
  m->failed_pending = 1;
  if (m->in_failed_list)
    return;
  m->in_failed_list = 1;
  m->failed_next = NULL;
  if (c->failed_tail)
    c->failed_tail->failed_next = m;
  else
    c->failed_head = m;
  c->failed_tail = m;
}

portmap_status_t portmap_mapping_start_on(portmap_mapping_t *m, int i, uint64_t now) {
  portmap_client_t *c = m->client;
  m->be = c->be_ops[i];
  m->be_state = c->be_state[i];
  m->be_data = NULL;
  m->be_ended = 0;
  m->info.backend = (uint8_t)m->be->id;
  portmap_mapping_set_waiting(m, 0);
  portmap_be_start_t s;
  memset(&s, 0, sizeof s);
  s.handle = m;
  s.req = &m->req;
  s.ever_mapped = m->ever_mapped;
  s.result.status = m->info.status;
  s.result.gateway_result = m->info.gateway_result;
  memcpy(s.result.internal_addr, m->info.internal_address.bytes, 16);
  memcpy(s.result.external_addr, m->info.external_address.bytes, 16);
  s.result.external_port = m->info.external_port;
  s.result.lifetime = m->info.lifetime;
  s.result.expiry_ms = m->expiry_ms;
  s.result.renewing = 0;
  void *ms = NULL;
  portmap_status_t st = m->be->start(m->be_state, &s, &ms, now);
  if (st == PORTMAP_OK && !m->be_ended)
    m->be_data = ms;
  return st;
}

void portmap_mapping_requeue(portmap_mapping_t *m) {
  m->be = NULL;
  m->be_state = NULL;
  portmap_mapping_set_waiting(m, 1);
  m->moved = m->ever_mapped; /* mapped before: the next success is CHANGED */
  m->info.status = PORTMAP_OK;
}

void portmap_mapping_unbind(portmap_mapping_t *m) {
  if (m->be_data != NULL)
    m->be->detach(m->be_state, m->be_data, m->revoked);
  m->be_data = NULL;
  m->be = NULL;
  m->be_state = NULL;
  m->failed_pending = 0; /* whatever it said is moot now */
  portmap_mapping_set_trial(m, 0);
  portmap_mapping_set_provisional(m, 0);
  m->upgrading = 0;
}

/* ---------- settle ---------- */

int portmap_core_unsettled(const portmap_client_t *c) {
  return c->failed_head != NULL || c->probe.dirty;
}

void portmap_core_settle(portmap_client_t *c) {
  if (!portmap_core_unsettled(c))
    return;
  uint64_t now = portmap_client_now(c);
  for (int round = 0; round < SETTLE_ROUNDS && portmap_core_unsettled(c); round++) {
    /* 1. failures, in report order: another backend, or the FAILED event */
    while (c->failed_head != NULL) {
      portmap_mapping_t *m = c->failed_head;
      c->failed_head = m->failed_next;
      if (c->failed_head == NULL)
        c->failed_tail = NULL;
      m->in_failed_list = 0;
      m->failed_next = NULL;
      int pending = m->failed_pending;
      m->failed_pending = 0;
      if (pending && !portmap_mapping_ended(m) && !portmap_probe_failover(m, now))
        queue_event(m, PORTMAP_EVENT_FAILED);
      portmap_mapping_maybe_free(c, m);
    }
    /* 2. the probe's answers: decide, start what waits */
    if (c->probe.dirty) {
      c->probe.dirty = 0;
      portmap_probe_evaluate(c, now);
    }
  }
}
