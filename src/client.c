/* SPDX-License-Identifier: MIT */
/*
 * The client: configuration and its defaults, creating a client (backends,
 * listener, first probe), the queries, and freeing it (every mapping
 * deleted first, bounded by destroy_timeout_ms).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "platform/platform.h"
#include "util/netutil.h"

static void on_shutdown_timer(portmap_timer_t *t, uint64_t now);

static uint64_t default_clock(void *user) {
  (void)user;
  return portmap_plat_now_ms(); /* checklist E6 */
}

/* The OS CSPRNG (checklist D1): never rand() or a time seed. */
static int default_random(void *buf, size_t len, void *user) {
  (void)user;
  return portmap_plat_random(buf, len);
}

/* Every value in its range: a timeout in milliseconds must fit the int of
 * poll() and of portmap_timeout_ms() (INT32_MAX, about 24.8 days); counts
 * and ports their own ranges. Nothing is clamped or wrapped. */
static portmap_status_t config_check(const portmap_config_t *cfg) {
  const uint32_t ms[] = {cfg->pcp_irt_ms,         cfg->pcp_mrt_ms,         cfg->pcp_mrd_ms,
                         cfg->request_timeout_ms, cfg->destroy_timeout_ms, cfg->probe_timeout_ms,
                         cfg->natpmp_irt_ms,      cfg->upnp_timeout_ms};
  for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
    if (ms[i] > INT32_MAX)
      return PORTMAP_ERR_INVALID;
  if ((cfg->backends & ~PORTMAP_BACKEND_ALL) != 0 || (unsigned)cfg->log_level > PORTMAP_LOG_DEBUG)
    return PORTMAP_ERR_INVALID;
  if (cfg->announce_port < -1 || cfg->announce_port > 65535)
    return PORTMAP_ERR_INVALID;
  if (cfg->pcp_irt_ms == 0 || cfg->pcp_mrt_ms < cfg->pcp_irt_ms || cfg->natpmp_irt_ms == 0)
    return PORTMAP_ERR_INVALID;
  if (cfg->natpmp_max_tries > 32 || (cfg->ssdp_multicast != 0 && cfg->ssdp_multicast != 1))
    return PORTMAP_ERR_INVALID; /* 9 tries already take 64 s (RFC 6886 3.1) */
  if (portmap_alloc_from(NULL, cfg->malloc_cb, cfg->realloc_cb, cfg->free_cb, NULL) != 0)
    return PORTMAP_ERR_INVALID; /* all three hooks or none */
  return PORTMAP_OK;
}

static portmap_status_t client_new(const portmap_config_t *user_cfg, size_t cfg_size,
                                   portmap_route_fn routes, void *routes_user,
                                   portmap_client_t **out);

portmap_status_t portmap_client_new_sized(const portmap_config_t *user_cfg, size_t cfg_size,
                                          portmap_client_t **out) {
  return client_new(user_cfg, cfg_size, NULL, NULL, out);
}

portmap_status_t portmap_client_new_routes(const portmap_config_t *cfg, portmap_route_fn routes,
                                           void *routes_user, portmap_client_t **out) {
  return client_new(cfg, sizeof *cfg, routes, routes_user, out);
}

static portmap_status_t client_new(const portmap_config_t *user_cfg, size_t cfg_size,
                                   portmap_route_fn routes, void *routes_user,
                                   portmap_client_t **out) {
  portmap_status_t st = PORTMAP_OK;
  portmap_client_t *c = NULL;
  if (out == NULL)
    return PORTMAP_ERR_INVALID;
  *out = NULL;
  if (user_cfg != NULL && cfg_size < PORTMAP_CONFIG_SIZE_1_0)
    return PORTMAP_ERR_INVALID;
  /* this version's whole struct: the defaults, then what the program gave */
  portmap_config_t full;
  portmap_config_init(&full);
  if (user_cfg != NULL)
    portmap_abi_out(&full, sizeof full, user_cfg, cfg_size);
  const portmap_config_t *cfg = &full;
  if (config_check(cfg) != PORTMAP_OK)
    return PORTMAP_ERR_INVALID;
  portmap_addr_t tmp;
  if (cfg->gateway != NULL && portmap_addr_parse(cfg->gateway, &tmp) != PORTMAP_OK)
    return PORTMAP_ERR_ADDRESS;
  if (cfg->local_address != NULL && portmap_addr_parse(cfg->local_address, &tmp) != PORTMAP_OK)
    return PORTMAP_ERR_ADDRESS;

  portmap_alloc_t alloc;
  (void)portmap_alloc_from(&alloc, cfg->malloc_cb, cfg->realloc_cb, cfg->free_cb, cfg->alloc_user);
  c = portmap_alloc_calloc(&alloc, 1, sizeof *c);
  if (c == NULL)
    return PORTMAP_ERR_NOMEM;
  c->alloc = alloc;
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
  c->gateway_str = portmap_alloc_strdup(&c->alloc, cfg->gateway);
  c->local_str = portmap_alloc_strdup(&c->alloc, cfg->local_address);
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
  c->sched.alloc = &c->alloc;
  if (portmap_sched_reserve(&c->sched, PORTMAP_TIMERS_CLIENT) != 0) {
    st = PORTMAP_ERR_NOMEM; /* else a timer of the client could fail to arm, unseen */
    goto done;
  }
  if (pthread_mutex_init(&c->mu, NULL) != 0) {
    st = PORTMAP_ERR_SYSTEM;
    goto done;
  }
  if (pthread_cond_init(&c->cb_cv, NULL) != 0) {
    pthread_mutex_destroy(&c->mu);
    st = PORTMAP_ERR_SYSTEM;
    goto done;
  }
  c->sync_ok = 1;
  c->loop_thread = pthread_self();
  if (portmap_plat_wake_open(c->wake_pipe) != 0) {
    st = PORTMAP_ERR_SYSTEM;
    goto done;
  }
  c->core.client = c;
  c->route_fn = routes;
  c->route_user = routes_user;
  portmap_watch_discover(c);
  portmap_watch_start(c, portmap_client_now(c));
  portmap_probe_init(c);
  portmap_timer_init(&c->shutdown_timer, on_shutdown_timer, c);
  static const portmap_backend_ops_t *const all[PORTMAP_MAX_BACKENDS] = {
      &portmap_pcp_backend, &portmap_natpmp_backend, &portmap_upnp_backend};
  for (int i = 0; i < PORTMAP_MAX_BACKENDS; i++) {
    if (!(c->cfg.backends & (unsigned)all[i]->id))
      continue;
    void *state = NULL;
    st = all[i]->create(&c->core, &state);
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
  if (portmap_probe_single(c))
    for (int i = 0; i < PORTMAP_MAX_BACKENDS; i++)
      if (c->be_ops[i] != NULL)
        c->cs_backend = c->be_ops[i]->id; /* nothing to choose */
  portmap_listen_open(c);
  /* the first round starts from the loop, unless a mapping made before
   * then starts it (its own request is PCP's question then: probe.c) */
  if (!portmap_probe_single(c) && (c->have_gateway4 || c->have_gateway6))
    portmap_probe_schedule(c, portmap_client_now(c));
  portmap_core_settle(c);
  portmap_log_flush(c); /* nobody else has the client yet */
  pthread_mutex_lock(&c->mu);
  portmap_client_unlock(c); /* the loop hears of the first fds and deadline */
  *out = c;
  c = NULL;
done:
  if (c != NULL) {
    for (int i = 0; i < PORTMAP_MAX_BACKENDS; i++)
      if (c->be_ops[i] != NULL)
        c->be_ops[i]->destroy(c->be_state[i]);
    portmap_listen_close(c);
    portmap_sched_fini(&c->sched);
    portmap_log_flush(c);
    portmap_plat_wake_close(c->wake_pipe);
    if (c->sync_ok) {
      pthread_cond_destroy(&c->cb_cv);
      pthread_mutex_destroy(&c->mu);
    }
    portmap_alloc_free(&alloc, c->gateway_str);
    portmap_alloc_free(&alloc, c->local_str);
    portmap_alloc_free(&alloc, c);
  }
  return st;
}

portmap_status_t portmap_client_stats_sized(portmap_client_t *client, portmap_stats_t *stats,
                                            size_t size) {
  if (client == NULL || stats == NULL || size < PORTMAP_STATS_SIZE_1_0)
    return PORTMAP_ERR_INVALID;
  pthread_mutex_lock(&client->mu);
  portmap_abi_out(stats, size, &client->stats, sizeof client->stats);
  portmap_client_unlock(client);
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
  portmap_client_unlock(client);
  return st;
}

/* ---------- destruction ---------- */

portmap_status_t portmap_client_free(portmap_client_t *client) {
  if (client == NULL)
    return PORTMAP_OK;
  pthread_mutex_lock(&client->mu);
  int recursive = portmap_in_own_callback(client);
  int threaded = client->thread_running;
  if (!recursive) {
    client->destroying = 1; /* no new mappings from here on */
    client->freeing = 1;    /* and no thread started again */
  }
  portmap_client_unlock(client);
  if (recursive)
    return PORTMAP_ERR_RECURSIVE;
  if (threaded)
    portmap_thread_stop(client);

  /* Never leave a mapping behind: delete every one we hold. */
  pthread_mutex_lock(&client->mu);
  uint64_t now = portmap_client_now(client);
  for (portmap_mapping_t *m = client->mappings; m != NULL; m = m->next) {
    if (!m->revoked && !portmap_mapping_ended(m)) {
      m->revoked = 1;
      portmap_mapping_revoke_locked(m, now);
    }
  }
  portmap_client_unlock(client);
  uint64_t deadline = portmap_real_ms() + client->cfg.destroy_timeout_ms;
  for (;;) {
    portmap_process(client);
    pthread_mutex_lock(&client->mu);
    int pending = client->n_live > 0;
    portmap_client_unlock(client);
    uint64_t t = portmap_real_ms();
    if (!pending || t >= deadline)
      break;
    portmap_wait_once(client, deadline - t);
  }
  portmap_status_t st = PORTMAP_OK;
  pthread_mutex_lock(&client->mu);
  for (portmap_mapping_t *m = client->mappings; m != NULL; m = m->next) {
    if (!portmap_mapping_ended(m)) {
      st = PORTMAP_ERR_TIMEOUT;
      m->info.status = PORTMAP_ERR_CANCELLED;
      portmap_mapping_unbind(m);
      portmap_mapping_emit(m, PORTMAP_EVENT_FAILED);
    }
  }
  portmap_core_settle(client);
  portmap_dispatch_events(client);
  /* the loop stops watching every fd (and its timer) before any is closed */
  client->closing = 1;
  client->loop_thread = pthread_self();
  portmap_client_unlock(client);
  pthread_mutex_lock(&client->mu);
  while (client->mappings != NULL) {
    portmap_mapping_t *m = client->mappings;
    portmap_mapping_unbind(m);
    portmap_mapping_unlink_free(client, m);
  }
  portmap_probe_cancel(client);
  portmap_sched_cancel(&client->sched, &client->gateway_timer);
  portmap_sched_cancel(&client->sched, &client->shutdown_timer);
  for (int i = 0; i < PORTMAP_MAX_BACKENDS; i++)
    if (client->be_ops[i] != NULL)
      client->be_ops[i]->destroy(client->be_state[i]);
  portmap_listen_close(client);
  portmap_sched_fini(&client->sched);
  portmap_client_unlock(client);
  /* another thread may still be in one of our sinks or callbacks: the
   * client outlives them */
  pthread_mutex_lock(&client->mu);
  while (portmap_sinks_busy(client) ||
         (client->in_callback && !pthread_equal(client->dispatch_thread, pthread_self())))
    pthread_cond_wait(&client->cb_cv, &client->mu);
  pthread_mutex_unlock(&client->mu);
  pthread_cond_destroy(&client->cb_cv);
  pthread_mutex_destroy(&client->mu);
  portmap_loop_fini(client);
  portmap_plat_wake_close(client->wake_pipe);
  portmap_alloc_t alloc = client->alloc; /* it goes with the client */
  portmap_alloc_free(&alloc, client->gateway_str);
  portmap_alloc_free(&alloc, client->local_str);
  portmap_alloc_free(&alloc, client);
  return st;
}

/* ---------- the client's own state ---------- */

void portmap_client_state_locked(portmap_client_t *c, portmap_client_state_t *st) {
  memset(st, 0, sizeof *st);
  st->backend = c->cs_backend;
  if (c->cs_have_ext) {
    memcpy(st->external_address.bytes, c->cs_ext, 16);
    portmap_addr_format(&st->external_address, st->external_address_str,
                        sizeof st->external_address_str);
    st->external_is_private = portmap_net_is_private(c->cs_ext);
  }
  if (c->have_gateway4 || c->have_gateway6) {
    portmap_addr_t a;
    memcpy(a.bytes, c->have_gateway4 ? c->gateway4 : c->gateway6, 16);
    portmap_addr_format(&a, st->gateway, sizeof st->gateway);
  }
  st->shut_down = c->shut_down;
}

void portmap_client_emit(portmap_client_t *c, portmap_client_event_t ev) {
  if (c->cfg.client_cb == NULL)
    return;
  portmap_event_node_t *node;
  portmap_event_rec_t *rec = portmap_alloc_calloc(&c->alloc, 1, sizeof *rec);
  if (rec != NULL) {
    rec->client_event = ev;
    portmap_client_state_locked(c, &rec->client_state);
    node = &rec->node;
  } else if (ev == PORTMAP_CLIENT_SHUTDOWN) {
    /* Out of memory: the client's last word goes out all the same (it
     * comes once), with the state as it is when delivered. */
    node = &c->shutdown_node;
    memset(node, 0, sizeof *node);
    node->spare = 1;
  } else {
    return; /* out of memory: portmap_client_state() still tells the state */
  }
  if (c->ev_tail)
    c->ev_tail->next = node;
  else
    c->ev_head = node;
  c->ev_tail = node;
}

void portmap_client_note_backend(portmap_client_t *c, portmap_backend_t backend) {
  if (backend == c->cs_backend)
    return;
  c->cs_backend = backend;
  portmap_client_emit(c, PORTMAP_CLIENT_BACKEND);
}

void portmap_client_note_external(portmap_client_t *c, const uint8_t addr[16]) {
  if (portmap_net_is_unspecified(addr) || (c->cs_have_ext && memcmp(addr, c->cs_ext, 16) == 0))
    return;
  c->cs_have_ext = 1;
  memcpy(c->cs_ext, addr, 16);
  portmap_client_emit(c, PORTMAP_CLIENT_EXTERNAL_ADDRESS);
}

portmap_status_t portmap_client_state_sized(portmap_client_t *client, portmap_client_state_t *state,
                                            size_t size) {
  if (client == NULL || state == NULL || size < PORTMAP_END_OF(portmap_client_state_t, shut_down))
    return PORTMAP_ERR_INVALID;
  portmap_client_state_t full;
  pthread_mutex_lock(&client->mu);
  portmap_client_state_locked(client, &full);
  portmap_client_unlock(client);
  portmap_abi_out(state, size, &full, sizeof full);
  return PORTMAP_OK;
}

/* ---------- shutdown without blocking ---------- */

void portmap_client_shutdown_check(portmap_client_t *c) {
  if (!c->shutting_down || c->shut_down || c->n_live > 0)
    return;
  portmap_sched_cancel(&c->sched, &c->shutdown_timer);
  c->shut_down = 1;
  portmap_client_emit(c, PORTMAP_CLIENT_SHUTDOWN);
}

/* destroy_timeout_ms is up: what the gateway did not confirm ends now. */
static void on_shutdown_timer(portmap_timer_t *t, uint64_t now) {
  portmap_client_t *c = t->ctx;
  (void)now;
  for (portmap_mapping_t *m = c->mappings; m != NULL; m = m->next) {
    if (portmap_mapping_ended(m))
      continue;
    m->info.status = PORTMAP_ERR_CANCELLED;
    portmap_mapping_unbind(m);
    portmap_mapping_emit(m, PORTMAP_EVENT_FAILED);
  }
}

portmap_status_t portmap_client_shutdown(portmap_client_t *client) {
  if (client == NULL)
    return PORTMAP_ERR_INVALID;
  pthread_mutex_lock(&client->mu);
  portmap_status_t st = PORTMAP_OK;
  if (client->destroying) {
    st = PORTMAP_ERR_STATE;
  } else {
    client->destroying = 1;
    client->shutting_down = 1;
    uint64_t now = portmap_client_now(client);
    for (portmap_mapping_t *m = client->mappings; m != NULL; m = m->next) {
      if (!m->revoked && !portmap_mapping_ended(m)) {
        m->revoked = 1;
        portmap_mapping_revoke_locked(m, now);
      }
    }
    portmap_sched_push(&client->sched, &client->shutdown_timer,
                       now + client->cfg.destroy_timeout_ms);
    portmap_core_settle(client);
    portmap_client_shutdown_check(client);
    portmap_client_wake(client);
  }
  portmap_client_unlock(client);
  return st;
}
