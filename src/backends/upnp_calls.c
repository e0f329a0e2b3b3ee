/* SPDX-License-Identifier: MIT */
/*
 * The UPnP backend's calls, from the scheduler's side: built for the
 * current gateway, queued, handed to the worker one at a time (which
 * serialises SOAP per gateway, Q20), bounded by a watchdog, routed back to
 * whoever asked (a mapping, discovery, list), and the Q10 cleanup of
 * entries no mapping owns.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <miniupnpc/upnpcommands.h>

#include "backends/upnp_int.h"
#include "platform/platform.h"
#include "util/netutil.h"

static void orphan_result(upnp_state_t *st, upnp_call_t *call, int rc);

/* ---------- helpers ---------- */

void portmap_upnp_arm(upnp_state_t *st, portmap_timer_t *t, uint64_t deadline) {
  if (portmap_core_arm(st->core, t, deadline) != 0)
    portmap_core_log(st->core, PORTMAP_LOG_ERROR, "upnp: out of memory for a timer");
}

int portmap_upnp_parse_ext(const char *text, uint8_t out[16]) {
  portmap_addr_t a;
  if (text == NULL || text[0] == '\0' || portmap_addr_parse(text, &a) != PORTMAP_OK ||
      !portmap_net_is_v4(a.bytes) || portmap_net_is_unspecified(a.bytes) || a.bytes[12] == 127)
    return 0;
  memcpy(out, a.bytes, 16);
  return 1;
}

/* ---------- the worker ---------- */

static uint32_t call_limit_ms(const upnp_state_t *st) {
  return portmap_core_config(st->core)->upnp_timeout_ms > 0
             ? portmap_core_config(st->core)->upnp_timeout_ms
             : UPNP_DEFAULT_TIMEOUT_MS;
}

static int worker_ensure(upnp_state_t *st) {
  if (st->w != NULL)
    return 0;
  st->w = portmap_upnp_worker_new(call_limit_ms(st), portmap_core_alloc(st->core));
  if (st->w == NULL)
    return -1;
  /* The worker closes its pipe when it leaves, maybe after us: the loop
   * watches a copy we close through the core. */
  st->w_fd = portmap_plat_dup(portmap_upnp_worker_fd(st->w));
  return 0;
}

/* ---------- calls ---------- */

/* Free a call of the scheduler's (its watchdog may be armed). */
void portmap_upnp_call_free(upnp_call_t *k) {
  if (k == NULL)
    return;
  portmap_core_disarm(k->st->core, &k->watchdog);
  portmap_upnp_call_release(k);
}

static void on_watchdog(portmap_timer_t *t, uint64_t now);

upnp_call_t *portmap_upnp_call_new(upnp_state_t *st, enum call_kind kind,
                                   enum call_purpose purpose) {
  upnp_call_t *k = portmap_alloc_calloc(portmap_core_alloc(st->core), 1, sizeof *k);
  if (k == NULL)
    return NULL;
  k->alloc = *portmap_core_alloc(st->core);
  k->st = st;
  k->kind = kind;
  k->purpose = purpose;
  k->gen = st->gw.gen;
  portmap_timer_init(&k->watchdog, on_watchdog, k);
  if (st->gw.ready) {
    copy_str(k->url, sizeof k->url, st->gw.control_url);
    copy_str(k->service, sizeof k->service, st->gw.service);
  }
  copy_str(k->client, sizeof k->client, st->client);
  return k;
}

static int port_held(upnp_state_t *st, const char *proto, uint16_t port);

/* Hand the next queued call to the worker when it is free. */
static void pump(upnp_state_t *st, uint64_t now) {
  upnp_call_t *k = NULL;
  while (st->busy == NULL && st->queue.head != NULL) {
    k = portmap_upnp_call_of(st->queue.head);
    portmap_upnp_unqueue(st, k);
    long port = strtol(k->ext_port, NULL, 10);
    if (k->purpose == FOR_CLEANUP && port > 0 && port <= 65535 &&
        port_held(st, k->proto, (uint16_t)port)) {
      portmap_upnp_call_free(k); /* a mapping took that port again meanwhile: keep it */
      k = NULL;
      continue;
    }
    break;
  }
  if (k == NULL)
    return;
  st->busy = k;
  portmap_upnp_arm(st, &k->watchdog, now + call_limit_ms(st));
  portmap_upnp_worker_hand(st->w, k);
}

int portmap_upnp_unqueue(upnp_state_t *st, upnp_call_t *k) {
  if (!k->queued)
    return 0;
  portmap_dlist_remove(&st->queue, &k->qlink);
  k->queued = 0;
  return 1;
}

int portmap_upnp_submit(upnp_state_t *st, upnp_call_t *k, uint64_t now) {
  if (worker_ensure(st) != 0) {
    portmap_core_log(st->core, PORTMAP_LOG_ERROR, "upnp: cannot start the worker thread");
    portmap_upnp_call_free(k);
    return -1;
  }
  portmap_dlist_push_back(&st->queue, &k->qlink);
  k->queued = 1;
  if (st->busy != NULL && st->busy->timed_out && !portmap_timer_pending(&st->stuck))
    portmap_upnp_arm(st, &st->stuck,
                     now + call_limit_ms(st)); /* the worker is still stuck: bound the wait */
  pump(st, now);
  return 0;
}

static void log_call(upnp_state_t *st, const upnp_call_t *k, int rc) {
  portmap_core_t *core = st->core;
  if (portmap_core_config(core)->log_cb == NULL ||
      portmap_core_config(core)->log_level < PORTMAP_LOG_DEBUG)
    return;
  char r[96];
  portmap_upnp_rc_text(rc, r, sizeof r);
  int out = rc == 0 && !k->timed_out;
  switch (k->kind) {
  case CALL_DESCRIBE:
    portmap_core_log(core, PORTMAP_LOG_DEBUG, "upnp: GET %s -> %s (HTTP %d, %zu WAN services)",
                     k->url, r, out ? k->http_status : 0,
                     out && k->descr ? k->descr->n_services : 0);
    break;
  case CALL_STATUS:
    portmap_core_log(core, PORTMAP_LOG_DEBUG,
                     "upnp: %s GetStatusInfo() -> %s NewConnectionStatus=%s", k->service, r,
                     out ? k->o_status : "");
    break;
  case CALL_EXTIP:
    portmap_core_log(core, PORTMAP_LOG_DEBUG,
                     "upnp: %s GetExternalIPAddress() -> %s NewExternalIPAddress=%s", k->service, r,
                     out ? k->o_extip : "");
    break;
  case CALL_ADD:
  case CALL_ADDANY:
    portmap_core_log(core, PORTMAP_LOG_DEBUG,
                     "upnp: %s %s(NewRemoteHost=, NewExternalPort=%s, NewProtocol=%s, "
                     "NewInternalPort=%s, NewInternalClient=%s, NewEnabled=1, "
                     "NewPortMappingDescription=%s, NewLeaseDuration=%s) -> %s%s%s",
                     k->service, k->kind == CALL_ADD ? "AddPortMapping" : "AddAnyPortMapping",
                     k->ext_port, k->proto, k->int_port, k->client, k->desc, k->lease, r,
                     out && k->kind == CALL_ADDANY ? " NewReservedPort=" : "",
                     out && k->kind == CALL_ADDANY ? k->o_reserved : "");
    break;
  case CALL_GET:
    portmap_core_log(
        core, PORTMAP_LOG_DEBUG,
        "upnp: %s GetSpecificPortMappingEntry(NewExternalPort=%s, NewProtocol=%s) -> %s "
        "NewInternalClient=%s NewInternalPort=%s NewLeaseDuration=%s",
        k->service, k->ext_port, k->proto, r, out ? k->o_client : "", out ? k->o_port : "",
        out ? k->o_lease : "");
    break;
  case CALL_DELETE:
    portmap_core_log(core, PORTMAP_LOG_DEBUG,
                     "upnp: %s DeletePortMapping(NewExternalPort=%s, NewProtocol=%s) -> %s",
                     k->service, k->ext_port, k->proto, r);
    break;
  case CALL_LIST:
    portmap_core_log(
        core, PORTMAP_LOG_DEBUG,
        "upnp: %s GetGenericPortMappingEntry(NewPortMappingIndex=%s) -> %s %s %s %s:%s", k->service,
        k->index, r, out ? k->o_proto : "", out ? k->o_ext_port : "", out ? k->o_client : "",
        out ? k->o_port : "");
    break;
  }
}

/* Route a result (or a timeout) to whoever asked. */
static void dispatch(upnp_state_t *st, upnp_call_t *k, int rc, uint64_t now) {
  if (rc == 0 || rc > 0)
    st->http_failures = 0; /* the gateway answered */
  switch (k->purpose) {
  case FOR_MAP:
    if (k->pm != NULL)
      portmap_upnp_pm_on_result(k->pm, k, rc, now);
    else
      orphan_result(st, k, rc);
    break;
  case FOR_DISCOVERY:
    portmap_upnp_disc_on_result(st, k, rc, now);
    break;
  case FOR_LIST:
    portmap_upnp_list_on_result(st, k, rc, now);
    break;
  case FOR_CLEANUP:
    if (rc != 0 && rc != UPNP_E_NO_SUCH_ENTRY)
      portmap_core_log(st->core, PORTMAP_LOG_WARN,
                       "upnp: could not delete port %s/%s on the gateway; it may stay there",
                       k->ext_port, k->proto);
    break;
  }
}

static void on_watchdog(portmap_timer_t *t, uint64_t now) {
  upnp_call_t *k = t->ctx;
  upnp_state_t *st = k->st;
  k->timed_out = 1;
  portmap_core_log(st->core, PORTMAP_LOG_INFO, "upnp: no answer from %s within %u ms", k->url,
                   portmap_core_config(st->core)->upnp_timeout_ms);
  log_call(st, k, UPNP_RC_TIMEOUT);
  if (k->kind == CALL_ADD || k->kind == CALL_ADDANY)
    k->cleanup = 1; /* Q10: if it succeeds after all, undo it */
  upnp_map_t *pm = k->pm;
  if (pm != NULL) {
    pm->call = NULL;
    k->pm = NULL; /* the mapping may end before the call comes back */
    portmap_upnp_pm_on_result(pm, k, UPNP_RC_TIMEOUT, now);
  } else if (k->purpose != FOR_MAP) {
    dispatch(st, k, UPNP_RC_TIMEOUT, now);
  }
  /* The worker is still on it (its own deadline ends it at about the same
   * time): nothing else goes to the gateway before it comes back (Q20), but
   * the queue must not wait for ever. */
  portmap_upnp_arm(st, &st->stuck, now + call_limit_ms(st));
}

/* The worker is stuck in a call that timed out: fail what waits behind it. */
void portmap_upnp_on_stuck(portmap_timer_t *t, uint64_t now) {
  upnp_state_t *st = t->ctx;
  if (st->busy == NULL)
    return;
  /* what waits now; calls submitted meanwhile wait for the next round */
  portmap_dlist_t list = st->queue;
  portmap_dlist_init(&st->queue);
  for (portmap_dlink_t *e = list.head; e != NULL; e = e->next)
    portmap_upnp_call_of(e)->queued = 0; /* out of the queue: a mapping that ends meanwhile
                                            leaves it to us */
  while (list.head != NULL) {
    upnp_call_t *k = portmap_upnp_call_of(list.head);
    portmap_dlist_remove(&list, &k->qlink);
    k->timed_out = 1;
    if (k->pm != NULL) {
      upnp_map_t *pm = k->pm;
      pm->call = NULL;
      k->pm = NULL;
      portmap_upnp_pm_on_result(pm, k, UPNP_RC_TIMEOUT, now);
    } else {
      dispatch(st, k, UPNP_RC_TIMEOUT, now);
    }
    portmap_upnp_call_free(k);
  }
}

static void on_call_back(upnp_state_t *st, upnp_call_t *k, uint64_t now) {
  if (st->busy == k)
    st->busy = NULL;
  portmap_core_disarm(st->core, &k->watchdog);
  portmap_core_disarm(st->core, &st->stuck);
  if (k->timed_out) {
    /* its result was given up on; only a successful add matters (Q10) */
    if (k->purpose == FOR_MAP)
      orphan_result(st, k, k->rc);
  } else {
    log_call(st, k, k->rc);
    dispatch(st, k, k->rc, now);
  }
  portmap_upnp_call_free(k);
}

void portmap_upnp_drain_worker(upnp_state_t *st, uint64_t now) {
  if (st->w == NULL)
    return;
  upnp_call_t *done = portmap_upnp_worker_collect(st->w);
  while (done != NULL) {
    upnp_call_t *k = done;
    done = k->wnext;
    on_call_back(st, k, now);
  }
  pump(st, now);
}

/* ---------- cleanup (Q10) ---------- */

static uint64_t port_hash(const upnp_state_t *st, const char *proto, uint16_t port) {
  uint8_t key[3] = {strcmp(proto, "UDP") == 0, (uint8_t)(port >> 8), (uint8_t)port};
  return portmap_hash_bytes((uint64_t)(uintptr_t)st, key, sizeof key);
}

uint64_t portmap_upnp_pm_hash(const void *elem, const void *user) {
  const upnp_map_t *pm = elem;
  return port_hash(user, proto_name(pm->req->protocol), pm->ext_port);
}

void portmap_upnp_set_ext_port(upnp_map_t *pm, uint16_t port) {
  if (pm->ext_port == port)
    return;
  portmap_hash_remove(&pm->st->by_port, pm);
  pm->ext_port = port;
  (void)portmap_hash_insert(&pm->st->by_port, pm); /* after a remove: cannot fail */
}

typedef struct port_key {
  const char *proto;
  uint16_t port;
} port_key_t;

static int holds_port(const void *elem, const void *key) {
  const upnp_map_t *pm = elem;
  const port_key_t *k = key;
  return pm->added && pm->ext_port == k->port &&
         strcmp(proto_name(pm->req->protocol), k->proto) == 0;
}

static int port_held(upnp_state_t *st, const char *proto, uint16_t port) {
  port_key_t key = {proto, port};
  return portmap_hash_find(&st->by_port, port_hash(st, proto, port), holds_port, &key) != NULL;
}

/* Delete an entry that no mapping owns any more. */
void portmap_upnp_cleanup_submit(upnp_state_t *st, const char *proto, uint16_t port, uint64_t now) {
  if (port == 0 || port_held(st, proto, port))
    return;
  /* the last control URL known, even while the gateway is being looked for again */
  if (st->gw.control_url[0] == '\0') {
    portmap_core_log(st->core, PORTMAP_LOG_WARN,
                     "upnp: no gateway to delete port %u/%s on; it may stay there", port, proto);
    return;
  }
  portmap_core_log(st->core, PORTMAP_LOG_INFO,
                   "upnp: deleting port %u/%s that no mapping owns (Q10)", port, proto);
  upnp_call_t *k = portmap_upnp_call_new(st, CALL_DELETE, FOR_CLEANUP);
  if (k == NULL)
    return;
  copy_str(k->url, sizeof k->url, st->gw.control_url);
  copy_str(k->service, sizeof k->service, st->gw.service);
  snprintf(k->ext_port, sizeof k->ext_port, "%u", port);
  copy_str(k->proto, sizeof k->proto, proto);
  (void)portmap_upnp_submit(st, k, now);
}

/* A mapping call whose mapping is gone, or whose result came too late. */
static void orphan_result(upnp_state_t *st, upnp_call_t *k, int rc) {
  if (rc != 0 || !k->cleanup || (k->kind != CALL_ADD && k->kind != CALL_ADDANY))
    return;
  long port = strtol(k->kind == CALL_ADDANY ? k->o_reserved : k->ext_port, NULL, 10);
  if (port < 1 || port > 65535)
    return;
  portmap_upnp_cleanup_submit(st, k->proto, (uint16_t)port, portmap_core_now(st->core));
}
