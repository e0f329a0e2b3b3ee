/* SPDX-License-Identifier: MIT */
/*
 * The network as the client sees it: the gateways (configured, else the
 * default routes, checklist B1), the local address towards the IPv4 one,
 * and their changes (B6): a 30 s check, or at once on
 * portmap_network_changed(). A change of one family's gateway makes that
 * family's mappings again there; the other family's are not touched. The
 * routes come from the platform, or from a source a test injects
 * (portmap_client_new_routes()).
 */
#include <string.h>

#include "internal.h"
#include "platform/platform.h"
#include "util/netutil.h"

#define GATEWAY_CHECK_MS 30000u

static int default_gateway(portmap_client_t *c, int ipv6, uint8_t gw[16], unsigned *scope) {
  if (c->route_fn != NULL)
    return c->route_fn(c->route_user, ipv6, gw, scope);
  /* an IPv4 gateway needs no interface index (only a link-local IPv6 one
   * does): no if_nametoindex() for it */
  return portmap_plat_default_gateway(&c->alloc, ipv6, gw, ipv6 ? scope : NULL);
}

void portmap_watch_discover(portmap_client_t *c) {
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
  if (!c->have_gateway4 && default_gateway(c, 0, c->gateway4, &scope) == 0)
    c->have_gateway4 = 1;
  if (!c->have_gateway6 && default_gateway(c, 1, c->gateway6, &scope) == 0) {
    c->have_gateway6 = 1;
    c->gateway6_scope = scope;
  }
}

void portmap_client_gateway_changed(portmap_client_t *c, int have4, const uint8_t gw4[16],
                                    int have6, const uint8_t gw6[16], unsigned scope6,
                                    uint64_t now) {
  int have_any = have4 || have6;
  /* B6 per family: a change of one family's default router is a new server
   * for that family's mappings only. An IPv6 route that appears or expires
   * (router advertisements come and go) leaves IPv4 mappings, their server
   * and the IPv4-only backends alone, and the other way round. */
  int changed4 = have4 != c->have_gateway4 || (have4 && memcmp(gw4, c->gateway4, 16) != 0);
  int changed6 = have6 != c->have_gateway6 ||
                 (have6 && (memcmp(gw6, c->gateway6, 16) != 0 || scope6 != c->gateway6_scope));
  int same_gateway = !changed4 && !changed6;
  if (same_gateway)
    changed4 = 1; /* a new local address: only IPv4's is watched (A4) */
  /* the probe asks the IPv4 gateway, or the IPv6 one when there is no IPv4 */
  int probe_affected = changed4 || (changed6 && !have4);
  if (same_gateway && have_any)
    portmap_log(c, PORTMAP_LOG_INFO, "the local address changed: mapping again from the new one");
  else
    portmap_log(c, PORTMAP_LOG_INFO, "the default %s gateway changed: %s",
                changed4 && changed6 ? "IPv4 and IPv6"
                : changed4           ? "IPv4"
                                     : "IPv6",
                have_any ? "mapping again there" : "none now; waiting for one");
  /* The old gateway is gone: nothing to delete there, only to forget. */
  for (portmap_mapping_t *m = c->mappings; m != NULL; m = m->next) {
    if (portmap_mapping_ended(m))
      continue;
    if (!(m->req.ipv6 ? changed6 : changed4))
      continue;
    int have_family = m->req.ipv6 ? have6 : have4;
    portmap_mapping_unbind(m);
    portmap_mapping_set_waiting(m, !m->revoked);
    m->moved = m->ever_mapped;
    m->tried = 0;
    m->expiry_ms = 0;
    if (m->revoked) {
      m->info.status = PORTMAP_OK;
      portmap_mapping_emit(m, PORTMAP_EVENT_DELETED);
    } else if (m->ever_mapped) {
      /* what the old gateway gave is gone with it */
      m->info.lifetime = 0;
      m->info.status = have_family ? PORTMAP_OK : PORTMAP_ERR_NO_GATEWAY;
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
  if (changed6)
    c->have_local6 = 0; /* looked up again towards the new one when needed */
  if (!same_gateway) {
    if (changed4)
      c->cs_have_ext = 0; /* the new gateway's external address is not known yet */
    portmap_client_emit(c, have_any ? PORTMAP_CLIENT_GATEWAY_FOUND : PORTMAP_CLIENT_GATEWAY_LOST);
  }
  /* fresh server state (epoch, sockets, discovered devices) for the family
   * that changed: a backend that serves both families forgets that one's
   * server; one that serves IPv4 only is made anew on an IPv4 change */
  for (int i = 0; i < PORTMAP_MAX_BACKENDS; i++) {
    if (c->be_ops[i] == NULL)
      continue;
    const portmap_backend_ops_t *ops = c->be_ops[i];
    if (ops->family_changed != NULL) {
      if (changed4)
        ops->family_changed(c->be_state[i], 0, now);
      if (changed6)
        ops->family_changed(c->be_state[i], 1, now);
      continue;
    }
    if (!changed4)
      continue;
    ops->destroy(c->be_state[i]);
    c->be_state[i] = NULL;
    if (ops->create(&c->core, &c->be_state[i]) != PORTMAP_OK) {
      portmap_log(c, PORTMAP_LOG_WARN, "backend %s lost with the gateway change", ops->name);
      c->be_ops[i] = NULL;
    }
  }
  if (probe_affected) {
    portmap_probe_forget(c);
    portmap_client_note_backend(c, PORTMAP_BACKEND_NONE); /* until the new round decides */
  }
  for (portmap_mapping_t *m = c->mappings; m != NULL; m = m->next)
    if (m->waiting && !portmap_mapping_ended(m) && (m->req.ipv6 ? have6 : have4))
      portmap_probe_begin(m, now);
}

static void note_local(portmap_client_t *c) {
  c->have_seen_local =
      c->have_gateway4 && portmap_plat_local_address(c->gateway4, 0, c->seen_local) == 0;
}

/* One lookup per gateway, shared by the probe and every backend: the IPv4
 * one is taken as the client starts and by each network check (which
 * watches it); the IPv6 one when first needed. */
int portmap_watch_source(portmap_client_t *c, int ipv6, uint8_t out[16]) {
  if (!ipv6) {
    if (!c->have_gateway4)
      return 0;
    if (!c->have_seen_local)
      note_local(c); /* it failed before: the route may be there now */
    if (!c->have_seen_local)
      return 0;
    memcpy(out, c->seen_local, 16);
    return 1;
  }
  if (!c->have_gateway6)
    return 0;
  if (!c->have_local6)
    c->have_local6 = portmap_plat_local_address(c->gateway6, c->gateway6_scope, c->local6) == 0;
  if (!c->have_local6)
    return 0;
  memcpy(out, c->local6, 16);
  return 1;
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
    have4 = default_gateway(c, 0, gw4, &scope4) == 0;
    have6 = default_gateway(c, 1, gw6, &scope6) == 0;
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
  if (changed && !have_now)
    c->have_seen_local = 0; /* the backends look it up again when they need it */
  if (have_now) {
    /* watched from now on (also when there was none at start); recorded
     * first, as the backends made anew below take it from here */
    c->have_seen_local = 1;
    memcpy(c->seen_local, local, 16);
  }
  if (changed)
    portmap_client_gateway_changed(c, have4, gw4, have6, gw6, scope6, now);
  portmap_sched_push(&c->sched, t, now + GATEWAY_CHECK_MS);
}

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
  portmap_client_unlock(client);
  return st;
}

void portmap_watch_start(portmap_client_t *c, uint64_t now) {
  note_local(c);
  portmap_timer_init(&c->gateway_timer, on_gateway_timer, c);
  portmap_sched_push(&c->sched, &c->gateway_timer, now + GATEWAY_CHECK_MS);
}
