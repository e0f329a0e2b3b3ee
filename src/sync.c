/* SPDX-License-Identifier: MIT */
/*
 * The blocking helpers: map, probe and list with a timeout, each a bounded
 * loop over the same public calls an application's loop makes.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* The first outcome, written by whichever thread delivers the event (the
 * caller's own portmap_process(), or an application loop on another
 * thread): under its own lock. */
typedef struct sync_wait {
  pthread_mutex_t mu;
  int done;
  portmap_event_t event;
  portmap_info_t info;
} sync_wait_t;

static void sync_cb(portmap_mapping_t *m, portmap_event_t ev, const portmap_info_t *info,
                    void *user) {
  (void)m;
  sync_wait_t *w = user;
  if (w == NULL)
    return;
  pthread_mutex_lock(&w->mu);
  if (!w->done) {
    w->event = ev;
    w->info = *info;
    w->done = 1;
  }
  pthread_mutex_unlock(&w->mu);
}

static int sync_done(sync_wait_t *w) {
  pthread_mutex_lock(&w->mu);
  int done = w->done;
  pthread_mutex_unlock(&w->mu);
  return done;
}

portmap_status_t portmap_map_sync_sized(portmap_client_t *client, const portmap_request_t *req,
                                        size_t req_size, int timeout_ms, portmap_info_t *user_info,
                                        size_t info_size, portmap_mapping_t **out) {
  if (out != NULL)
    *out = NULL;
  if (client == NULL || req == NULL || user_info == NULL || timeout_ms < 0 ||
      info_size < PORTMAP_INFO_SIZE_1_0)
    return PORTMAP_ERR_INVALID;
  portmap_info_t full; /* this version's whole struct, copied out at the end */
  portmap_info_t *info = &full;
  memset(info, 0, sizeof *info);
  info->gateway_result = -1;
  portmap_abi_out(user_info, info_size, info, sizeof *info);
  pthread_mutex_lock(&client->mu);
  portmap_status_t bad = portmap_in_own_callback(client) ? PORTMAP_ERR_RECURSIVE
                         : client->thread_running        ? PORTMAP_ERR_STATE
                                                         : PORTMAP_OK;
  portmap_client_unlock(client);
  if (bad != PORTMAP_OK)
    return bad;

  sync_wait_t *w = portmap_alloc_calloc(&client->alloc, 1, sizeof *w);
  if (w == NULL)
    return PORTMAP_ERR_NOMEM;
  pthread_mutex_init(&w->mu, NULL);
  portmap_mapping_t *m = NULL;
  portmap_status_t st = portmap_map_sized(client, req, req_size, sync_cb, w, &m);
  if (st != PORTMAP_OK) {
    pthread_mutex_destroy(&w->mu);
    portmap_alloc_free(&client->alloc, w);
    return st;
  }
  uint64_t deadline = portmap_real_ms() + (uint64_t)timeout_ms;
  for (;;) {
    portmap_process(client);
    if (sync_done(w))
      break;
    uint64_t now = portmap_real_ms();
    if (now >= deadline)
      break;
    portmap_wait_once(client, deadline - now);
  }
  /* No more outcomes for w: take the callback away, and wait until no
   * other thread (an application's loop) is still inside one. */
  pthread_mutex_lock(&client->mu);
  m->cb = NULL;
  m->user = NULL;
  while (client->in_callback && !pthread_equal(client->dispatch_thread, pthread_self()))
    pthread_cond_wait(&client->cb_cv, &client->mu);
  portmap_client_unlock(client);
  if (!w->done)
    st = PORTMAP_ERR_TIMEOUT;
  else if (w->event == PORTMAP_EVENT_MAPPED || w->event == PORTMAP_EVENT_DELETED)
    st = PORTMAP_OK;
  else
    st = w->info.status != PORTMAP_OK ? w->info.status : PORTMAP_ERR_REFUSED;
  /* After a final event the mapping is over; otherwise it lives on. */
  int ended = w->done && (w->event == PORTMAP_EVENT_FAILED || w->event == PORTMAP_EVENT_DELETED);
  if (w->done)
    *info = w->info;
  if (!ended) {
    if (!w->done) {
      portmap_mapping_info(m, info);
      info->status = PORTMAP_ERR_TIMEOUT;
    }
    if (st != PORTMAP_OK)
      portmap_mapping_revoke(m);
  }
  /* our handle goes to the caller, or back */
  if (!ended && st == PORTMAP_OK && out != NULL)
    *out = m;
  else
    portmap_mapping_release(m);
  pthread_mutex_destroy(&w->mu);
  portmap_alloc_free(&client->alloc, w);
  portmap_abi_out(user_info, info_size, info, sizeof *info);
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

portmap_status_t portmap_probe_sync_sized(portmap_client_t *client, int timeout_ms,
                                          portmap_probe_result_t *user_out, size_t size) {
  if (client == NULL || user_out == NULL || timeout_ms < 0 || size < PORTMAP_PROBE_RESULT_SIZE_1_0)
    return PORTMAP_ERR_INVALID;
  portmap_probe_result_t full; /* this version's whole struct, copied out at the end */
  portmap_probe_result_t *out = &full;
  memset(out, 0, sizeof *out);
  portmap_abi_out(user_out, size, out, sizeof *out);
  pthread_mutex_lock(&client->mu);
  portmap_status_t st = PORTMAP_OK;
  if (portmap_in_own_callback(client))
    st = PORTMAP_ERR_RECURSIVE;
  else if (client->thread_running)
    st = PORTMAP_ERR_STATE;
  else if (!client->have_gateway4 && !client->have_gateway6)
    st = PORTMAP_ERR_NO_GATEWAY;
  if (st == PORTMAP_OK) {
    /* a fresh round unless one is under way */
    portmap_probe_start(client, portmap_client_now(client));
    portmap_core_settle(client);
  }
  portmap_client_unlock(client);
  if (st != PORTMAP_OK)
    return st;
  uint64_t start = portmap_real_ms();
  uint64_t budget = timeout_ms > 0 ? (uint64_t)timeout_ms : client->cfg.probe_timeout_ms + 100u;
  for (;;) {
    portmap_process(client);
    pthread_mutex_lock(&client->mu);
    int running = client->probe.running;
    portmap_client_unlock(client);
    uint64_t now = portmap_real_ms();
    if (!running || now - start >= budget)
      break;
    portmap_wait_once(client, budget - (now - start));
  }
  pthread_mutex_lock(&client->mu);
  copy_probe(client, out);
  portmap_client_unlock(client);
  out->elapsed_ms = (uint32_t)(portmap_real_ms() - start);
  portmap_abi_out(user_out, size, out, sizeof *out);
  return PORTMAP_OK;
}

portmap_status_t portmap_list_sync_sized(portmap_client_t *client, int timeout_ms,
                                         portmap_list_entry_t *entries, size_t entry_size,
                                         size_t cap, size_t *count) {
  if (client == NULL || count == NULL || (entries == NULL && cap > 0) || timeout_ms < 0 ||
      entry_size < PORTMAP_LIST_ENTRY_SIZE_1_0)
    return PORTMAP_ERR_INVALID;
  *count = 0;
  pthread_mutex_lock(&client->mu);
  portmap_status_t st = PORTMAP_ERR_UNSUPPORTED;
  if (portmap_in_own_callback(client)) {
    st = PORTMAP_ERR_RECURSIVE;
  } else if (client->thread_running || client->list_busy) {
    st = PORTMAP_ERR_STATE; /* one list at a time */
  } else {
    for (int i = 0; i < PORTMAP_MAX_BACKENDS; i++) {
      if (client->be_ops[i] == NULL || client->be_ops[i]->list == NULL)
        continue;
      client->list_busy = 1;
      client->list_done = 0;
      client->list_out = (unsigned char *)entries;
      client->list_entry_size = entry_size;
      client->list_cap = cap;
      client->list_count = 0;
      st = client->be_ops[i]->list(client->be_state[i], portmap_client_now(client));
      break;
    }
  }
  if (st != PORTMAP_OK) {
    /* the backend refused: nothing may write to the caller's array later */
    client->list_out = NULL;
    client->list_cap = 0;
    client->list_busy = 0;
  }
  portmap_client_unlock(client);
  if (st != PORTMAP_OK)
    return st;
  uint64_t deadline = portmap_real_ms() + (uint64_t)timeout_ms;
  for (;;) {
    portmap_process(client);
    pthread_mutex_lock(&client->mu);
    int done = client->list_done;
    portmap_client_unlock(client);
    uint64_t now = portmap_real_ms();
    if (done || now >= deadline)
      break;
    portmap_wait_once(client, deadline - now);
  }
  pthread_mutex_lock(&client->mu);
  if (!client->list_done) {
    st = PORTMAP_ERR_TIMEOUT;
  } else {
    st = client->list_status;
    *count = client->list_count;
  }
  client->list_out = NULL; /* a late answer to a list given up writes nothing */
  client->list_cap = 0;
  client->list_busy = 0;
  portmap_client_unlock(client);
  return st;
}
