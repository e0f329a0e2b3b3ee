/* SPDX-License-Identifier: MIT */
/*
 * Requests and mapping handles: validating and copying a request, the
 * mapping's life in the core (start, revoke, detach, free), and delivering
 * its events to the application's callback outside the lock.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "util/netutil.h"

int portmap_in_own_callback(portmap_client_t *c) {
  return (c->in_callback && pthread_equal(c->dispatch_thread, pthread_self())) ||
         portmap_in_sink(c);
}

/* ---------- the flags the probe works from ----------
 * waiting, trial, provisional, retrying and the end of a mapping change
 * only here, so that the probe's list and counters (internal.h) follow
 * them exactly: each setter notes what m counted for, changes the flag, and
 * moves m between them by the difference. */

#define TRACK_LIST 1u        /* in the probe's list */
#define TRACK_RETRYING 2u    /* counted in n_retrying */
#define TRACK_RETRY_WAIT 4u  /* counted in n_retry_waiting */
#define TRACK_PROVISIONAL 8u /* counted in n_provisional */

static unsigned tracked(const portmap_mapping_t *m) {
  if (portmap_mapping_ended(m))
    return 0;
  unsigned t = 0;
  if (m->waiting || m->trial || m->provisional)
    t |= TRACK_LIST;
  if (m->provisional)
    t |= TRACK_PROVISIONAL;
  if (m->retrying)
    t |= m->waiting ? TRACK_RETRYING | TRACK_RETRY_WAIT : TRACK_RETRYING;
  return t;
}

/* One counter of the tracked: up or down when its bit changed. */
static void recount(size_t *n, unsigned diff, unsigned now, unsigned bit) {
  if (diff & bit)
    *n = now & bit ? *n + 1 : *n - 1;
}

static void retrack(portmap_mapping_t *m, unsigned was, unsigned now) {
  portmap_client_t *c = m->client;
  unsigned diff = was ^ now;
  if (diff & TRACK_LIST) {
    if (now & TRACK_LIST) { /* at the head: newest first, as c->mappings */
      portmap_dlist_push_front(&c->probe_list, &m->probe_link);
    } else {
      if (c->probe_cursor == m) /* a walk goes on past it */
        c->probe_cursor = portmap_probe_list_entry(m->probe_link.next);
      portmap_dlist_remove(&c->probe_list, &m->probe_link);
    }
  }
  recount(&c->n_retrying, diff, now, TRACK_RETRYING);
  recount(&c->n_retry_waiting, diff, now, TRACK_RETRY_WAIT);
  recount(&c->n_provisional, diff, now, TRACK_PROVISIONAL);
}

/* Set one of the tracked flags (bit-fields: no pointer to them), moving m
 * in the probe's list and counters by what that changed. */
#define SET_TRACKED(m, flag, on)                                                                   \
  do {                                                                                             \
    if ((m)->flag == ((on) ? 1u : 0u))                                                             \
      break; /* no change: nothing to track (renewals pass here every time) */                     \
    unsigned was_ = tracked(m);                                                                    \
    (m)->flag = (on) ? 1u : 0u;                                                                    \
    retrack((m), was_, tracked(m));                                                                \
  } while (0)

void portmap_mapping_set_waiting(portmap_mapping_t *m, int on) {
  SET_TRACKED(m, waiting, on);
}

void portmap_mapping_set_trial(portmap_mapping_t *m, int on) {
  SET_TRACKED(m, trial, on);
}

void portmap_mapping_set_provisional(portmap_mapping_t *m, int on) {
  SET_TRACKED(m, provisional, on);
}

void portmap_mapping_set_retrying(portmap_mapping_t *m, int on) {
  SET_TRACKED(m, retrying, on);
}

void portmap_mapping_set_ended(portmap_mapping_t *m, int detached) {
  unsigned was = tracked(m);
  if (detached)
    m->detached = 1;
  else
    m->final_queued = 1;
  retrack(m, was, 0);
}

int portmap_mapping_track_check(const portmap_client_t *c) {
  size_t list = 0, retrying = 0, retry_waiting = 0, provisional = 0;
  for (const portmap_mapping_t *m = c->mappings; m != NULL; m = m->next) {
    unsigned t = tracked(m);
    int in_list = portmap_dlist_has(&c->probe_list, &m->probe_link);
    if (((t & TRACK_LIST) != 0) != in_list || (!(t & TRACK_LIST) && m->probe_link.next != NULL))
      return -1;
    list += (t & TRACK_LIST) != 0;
    retrying += (t & TRACK_RETRYING) != 0;
    retry_waiting += (t & TRACK_RETRY_WAIT) != 0;
    provisional += (t & TRACK_PROVISIONAL) != 0;
  }
  if (list != c->probe_list.n || retrying != c->n_retrying || retry_waiting != c->n_retry_waiting ||
      provisional != c->n_provisional || c->probe_cursor != NULL)
    return -1;
  size_t k = 0;
  const portmap_dlink_t *prev = NULL;
  for (portmap_dlink_t *e = c->probe_list.head; e != NULL; e = e->next) {
    const portmap_mapping_t *m = portmap_probe_list_entry(e);
    if (++k > list || m->client != c || e->prev != prev || !(tracked(m) & TRACK_LIST))
      return -1;
    prev = e;
  }
  return k == list && c->probe_list.tail == prev ? 0 : -1;
}

void portmap_mapping_unlink_free(portmap_client_t *c, portmap_mapping_t *m) {
  if (!portmap_mapping_ended(m))
    c->n_live--;
  retrack(m, tracked(m), 0);
  if (m->prev)
    m->prev->next = m->next;
  else
    c->mappings = m->next;
  if (m->next)
    m->next->prev = m->prev;
  c->n_mappings--;
  portmap_alloc_free(&c->alloc, m->req.opt);
  portmap_alloc_free(&c->alloc, m);
}

/* A mapping is freed once it has ended (final event delivered, or
 * detached) and no queued event points at it. */
void portmap_mapping_maybe_free(portmap_client_t *c, portmap_mapping_t *m) {
  if (m->queued == 0 && !m->in_failed_list && !m->app_ref &&
      (m->detached || (m->final_queued && m->be_data == NULL)))
    portmap_mapping_unlink_free(c, m);
}

/* Deliver queued events with the lock released. Called with the lock held;
 * returns with it held. */
void portmap_dispatch_events(portmap_client_t *c) {
  /* One thread delivers at a time, in order; events queued meanwhile by
   * another thread are delivered by the one already delivering. */
  if (c->dispatching)
    return;
  c->dispatching = 1;
  c->dispatch_thread = pthread_self();
  while (c->ev_head != NULL) {
    portmap_event_node_t *node = c->ev_head;
    c->ev_head = node->next;
    if (c->ev_head == NULL)
      c->ev_tail = NULL;
    /* the record the node heads, or (a spare node) none */
    portmap_event_rec_t *rec = node->spare ? NULL : (portmap_event_rec_t *)(void *)node;
    if (portmap_event_node_mapping(c, node) == NULL) {
      /* the client's own event; the spare one is SHUTDOWN */
      portmap_client_cb ccb = c->cfg.client_cb;
      if (ccb != NULL) {
        portmap_client_state_t now_state; /* the state now, taken under the lock */
        const portmap_client_state_t *cs = &now_state;
        portmap_client_event_t cev = PORTMAP_CLIENT_SHUTDOWN;
        if (rec != NULL) {
          cs = &rec->client_state;
          cev = rec->client_event;
        } else {
          portmap_client_state_locked(c, &now_state);
        }
        c->in_callback = 1;
        portmap_client_unlock(c);
        ccb(c, cev, cs, c->cfg.client_user);
        pthread_mutex_lock(&c->mu);
        c->in_callback = 0;
        pthread_cond_broadcast(&c->cb_cv);
      }
      portmap_alloc_free(&c->alloc, rec);
      continue;
    }
    portmap_mapping_t *m = portmap_event_node_mapping(c, node);
    portmap_event_t event = node->event;
    if (rec == NULL)
      m->spare_queued = 0;         /* free for the next event that finds no memory */
    portmap_mapping_cb cb = m->cb; /* read under the lock, used outside it */
    void *user = m->user;
    if (!m->detached && cb != NULL) {
      portmap_info_t frozen; /* spare_node: the info now, copied under the lock */
      const portmap_info_t *info = &frozen;
      if (rec != NULL)
        info = &rec->info;
      else
        portmap_mapping_make_info(m, portmap_client_now(c), &frozen);
      c->in_callback = 1;
      portmap_client_unlock(c);
      cb(m, event, info, user);
      pthread_mutex_lock(&c->mu);
      c->in_callback = 0;
      pthread_cond_broadcast(&c->cb_cv);
    }
    m->queued--;
    if (event == PORTMAP_EVENT_FAILED || event == PORTMAP_EVENT_DELETED)
      m->detached = 1; /* ended: the handle is gone after its final event */
    portmap_alloc_free(&c->alloc, rec);
    portmap_mapping_maybe_free(c, m);
  }
  c->dispatching = 0;
}

/* The family's all-zeros address (checklist A7). */
void portmap_addr_any(uint8_t out[16], int ipv6) {
  memset(out, 0, 16);
  if (!ipv6)
    out[10] = out[11] = 0xff;
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

/* The parts of a request kept only when used, as validated. */
typedef struct req_parts {
  uint8_t suggested_addr[16];
  uint8_t peer_addr[16];
  uint16_t peer_port;
  uint8_t third_party[16];
  size_t n_filters;
  portmap_req_filter_t filters[PORTMAP_MAX_FILTERS];
  size_t description_len;
  const char *description;
} req_parts_t;

/* Keep the optional parts in one block sized to what they are. */
static portmap_status_t keep_parts(portmap_client_t *c, portmap_req_t *r, const req_parts_t *p) {
  size_t size = portmap_req_opt_size(r, p->n_filters, p->description_len);
  if (size == 0)
    return PORTMAP_OK;
  uint8_t *opt = portmap_alloc_malloc(&c->alloc, size);
  if (opt == NULL)
    return PORTMAP_ERR_NOMEM;
  opt[0] = (uint8_t)p->n_filters;
  opt[1] = (uint8_t)p->description_len;
  if (p->n_filters > 0)
    memcpy(opt + 2, p->filters, p->n_filters * sizeof p->filters[0]);
  if (r->has_suggested_addr)
    memcpy(opt + portmap_req_opt_offset(r, p->n_filters, 0), p->suggested_addr, 16);
  if (r->is_peer) {
    uint8_t *peer = opt + portmap_req_opt_offset(r, p->n_filters, 1);
    memcpy(peer, p->peer_addr, 16);
    memcpy(peer + 16, &p->peer_port, sizeof p->peer_port);
  }
  if (r->has_third_party)
    memcpy(opt + portmap_req_opt_offset(r, p->n_filters, 2), p->third_party, 16);
  if (p->description_len > 0) {
    char *d = (char *)opt + portmap_req_opt_offset(r, p->n_filters, 3);
    memcpy(d, p->description, p->description_len);
    d[p->description_len] = '\0';
  }
  r->opt = opt;
  return PORTMAP_OK;
}

/* Validate and copy a request; every bad argument gets its own status. */
static portmap_status_t request_copy(portmap_client_t *c, const portmap_request_t *req,
                                     portmap_mapping_t *m) {
  portmap_status_t st;
  req_parts_t p;
  p.n_filters = 0;
  p.description_len = 0;
  portmap_req_t *r = &m->req;
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
  r->ipv6 = req->ipv6 != 0;
  r->protocol = (uint8_t)req->protocol;
  r->internal_port = req->internal_port;
  r->suggested_port = req->external_port;
  r->lifetime = req->lifetime ? req->lifetime : 7200u;
  r->flags = (uint8_t)req->flags; /* checked above: PORTMAP_FLAG_* only */
  if (req->external_address != NULL) {
    if ((st = parse_family(req->external_address, r->ipv6, p.suggested_addr)) != PORTMAP_OK)
      return st;
    r->has_suggested_addr = !portmap_net_is_unspecified(p.suggested_addr);
  }
  if (req->description != NULL) {
    size_t len = strlen(req->description);
    if (len > PORTMAP_MAX_DESCRIPTION || !utf8_valid(req->description, len))
      return PORTMAP_ERR_OPTION;
    p.description = req->description;
    p.description_len = len;
  }
  if (req->peer_address != NULL) {
    /* checklist I1: PEER needs protocol, internal port and remote port;
     * PREFER_FAILURE and FILTER are MAP-only */
    if (req->protocol == 0 || req->peer_port == 0)
      return PORTMAP_ERR_PORT;
    if ((req->flags & PORTMAP_FLAG_PREFER_FAILURE) || req->n_filters > 0)
      return PORTMAP_ERR_OPTION;
    if ((st = parse_family(req->peer_address, r->ipv6, p.peer_addr)) != PORTMAP_OK)
      return st;
    r->is_peer = 1;
    p.peer_port = req->peer_port;
  } else if (req->peer_port != 0) {
    return PORTMAP_ERR_INVALID;
  }
  if (req->n_filters > PORTMAP_MAX_FILTERS || (req->n_filters > 0 && req->filters == NULL))
    return PORTMAP_ERR_OPTION;
  for (size_t i = 0; i < req->n_filters; i++) {
    const portmap_filter_t *f = &req->filters[i];
    portmap_req_filter_t *mf = &p.filters[i];
    unsigned max_prefix = r->ipv6 ? 128u : 32u;
    if (f->prefix_length > max_prefix)
      return PORTMAP_ERR_OPTION;
    if (f->remote_address == NULL || f->remote_address[0] == '\0') {
      if (f->prefix_length != 0)
        return PORTMAP_ERR_OPTION;
      portmap_addr_any(mf->addr, r->ipv6);
    } else if ((st = parse_family(f->remote_address, r->ipv6, mf->addr)) != PORTMAP_OK) {
      return st;
    }
    /* checklist J2: the prefix counts bits of the 128-bit field */
    mf->prefix_len =
        (uint8_t)(r->ipv6 || f->prefix_length == 0 ? f->prefix_length : 96u + f->prefix_length);
    mf->port = f->remote_port;
  }
  p.n_filters = req->n_filters;
  if (req->third_party != NULL) {
    if ((st = parse_family(req->third_party, r->ipv6, p.third_party)) != PORTMAP_OK)
      return st;
    /* checklist J1: THIRD_PARTY must not be our own address */
    if ((c->have_local && memcmp(c->local_addr, p.third_party, 16) == 0) ||
        (c->probe.have_local && memcmp(c->probe.local, p.third_party, 16) == 0))
      return PORTMAP_ERR_THIRD_PARTY;
    r->has_third_party = 1;
  }
  if (req->nonce != NULL)
    memcpy(r->nonce, req->nonce, 12);
  else if (portmap_client_random(c, r->nonce, 12) != 0) /* checklist D1 */
    return PORTMAP_ERR_SYSTEM;
  return keep_parts(c, r, &p);
}

portmap_status_t portmap_map_sized(portmap_client_t *client, const portmap_request_t *user_req,
                                   size_t req_size, portmap_mapping_cb cb, void *user,
                                   portmap_mapping_t **out) {
  if (out != NULL)
    *out = NULL;
  if (client == NULL || user_req == NULL || req_size < PORTMAP_REQUEST_SIZE_1_0)
    return PORTMAP_ERR_INVALID;
  portmap_request_t full; /* this version's whole struct */
  portmap_request_init(&full);
  portmap_abi_out(&full, sizeof full, user_req, req_size);
  const portmap_request_t *req = &full;
  portmap_mapping_t *m = portmap_alloc_calloc(&client->alloc, 1, sizeof *m);
  if (m == NULL)
    return PORTMAP_ERR_NOMEM;
  pthread_mutex_lock(&client->mu);
  portmap_status_t st = client->destroying ? PORTMAP_ERR_STATE : request_copy(client, req, m);
  if (st != PORTMAP_OK)
    goto done;
  m->client = client;
  m->cb = cb;
  m->user = user;
  m->info.gateway_result = -1;
  portmap_addr_any(m->info.external_address.bytes, m->req.ipv6);
  portmap_probe_info_init(client, &m->info);
  /* Options a backend cannot express fail clearly, never silently. */
  st = PORTMAP_ERR_NO_BACKEND;
  int able = -1;
  for (int i = 0; i < PORTMAP_MAX_BACKENDS; i++) {
    if (client->be_ops[i] == NULL)
      continue;
    portmap_status_t cst = client->be_ops[i]->check(client->be_state[i], &m->req);
    if (cst != PORTMAP_OK) {
      st = cst;
      continue;
    }
    if (able < 0)
      able = i;
  }
  if (able < 0)
    goto done;
  /* room for its timers: arming them later cannot fail */
  size_t timers = PORTMAP_TIMERS_CLIENT + PORTMAP_TIMERS_PER_MAPPING * (client->n_mappings + 1);
  if (portmap_sched_reserve(&client->sched, timers) != 0) {
    st = PORTMAP_ERR_NOMEM;
    goto done;
  }
  /* link first: the backend may report from start() */
  m->next = client->mappings;
  if (client->mappings)
    client->mappings->prev = m;
  client->mappings = m;
  client->n_mappings++;
  client->n_live++;
  uint64_t now = portmap_client_now(client);
  if (portmap_probe_single(client)) {
    /* one backend: start now and report its refusal synchronously */
    st = portmap_mapping_start_on(m, able, now);
    if (st != PORTMAP_OK) {
      portmap_mapping_unlink_free(client, m);
      m = NULL;
      goto done;
    }
  } else {
    st = PORTMAP_OK;
    portmap_probe_begin(m, now);
  }
  if (out != NULL) {
    m->app_ref = 1; /* kept until portmap_mapping_release() or the client's end */
    *out = m;
  }
  m = NULL;
  portmap_client_wake(client);
done:
  portmap_core_settle(client);
  portmap_client_unlock(client);
  if (m != NULL)
    portmap_alloc_free(&client->alloc, m->req.opt);
  portmap_alloc_free(&client->alloc, m);
  return st;
}

/* Delete on the gateway, or at once when no backend runs it yet. */
void portmap_mapping_revoke_locked(portmap_mapping_t *m, uint64_t now) {
  if (m->be_data != NULL) {
    m->be->revoke(m->be_state, m->be_data, now);
    return;
  }
  portmap_mapping_set_waiting(m, 0);
  m->info.status = PORTMAP_OK;
  portmap_mapping_emit(m, PORTMAP_EVENT_DELETED);
}

portmap_status_t portmap_mapping_revoke(portmap_mapping_t *m) {
  if (m == NULL)
    return PORTMAP_ERR_INVALID;
  portmap_client_t *c = m->client;
  pthread_mutex_lock(&c->mu);
  portmap_status_t st = PORTMAP_OK;
  if (m->revoked || portmap_mapping_ended(m)) {
    st = PORTMAP_ERR_STATE;
  } else {
    m->revoked = 1;
    portmap_mapping_revoke_locked(m, portmap_client_now(c));
    portmap_core_settle(c);
    portmap_client_wake(c);
  }
  portmap_client_unlock(c);
  return st;
}

portmap_status_t portmap_mapping_detach(portmap_mapping_t *m) {
  if (m == NULL)
    return PORTMAP_ERR_INVALID;
  portmap_client_t *c = m->client;
  pthread_mutex_lock(&c->mu);
  portmap_status_t st = PORTMAP_OK;
  if (portmap_mapping_ended(m)) {
    st = PORTMAP_ERR_STATE;
  } else {
    portmap_mapping_unbind(m);
    portmap_mapping_set_ended(m, 1);
    c->n_live--;
    portmap_client_shutdown_check(c); /* it may have been the last one a shutdown waits for */
    portmap_client_wake(c);
    portmap_mapping_maybe_free(c, m);
  }
  portmap_client_unlock(c);
  return st;
}

void portmap_mapping_release(portmap_mapping_t *m) {
  if (m == NULL)
    return;
  portmap_client_t *c = m->client;
  pthread_mutex_lock(&c->mu);
  m->app_ref = 0;
  portmap_mapping_maybe_free(c, m);
  portmap_client_unlock(c);
}

portmap_status_t portmap_mapping_set_callback(portmap_mapping_t *m, portmap_mapping_cb cb,
                                              void *user) {
  if (m == NULL)
    return PORTMAP_ERR_INVALID;
  portmap_client_t *c = m->client;
  pthread_mutex_lock(&c->mu);
  portmap_status_t st = PORTMAP_OK;
  if (portmap_mapping_ended(m)) {
    st = PORTMAP_ERR_STATE;
  } else {
    m->cb = cb;
    m->user = user;
  }
  portmap_client_unlock(c);
  return st;
}

portmap_status_t portmap_mapping_info_sized(portmap_mapping_t *m, portmap_info_t *info,
                                            size_t size) {
  if (m == NULL || info == NULL || size < PORTMAP_INFO_SIZE_1_0)
    return PORTMAP_ERR_INVALID;
  portmap_client_t *c = m->client;
  pthread_mutex_lock(&c->mu);
  portmap_status_t st = PORTMAP_OK;
  if (portmap_mapping_ended(m)) {
    st = PORTMAP_ERR_STATE;
  } else {
    portmap_info_t full;
    portmap_mapping_make_info(m, portmap_client_now(c), &full);
    portmap_abi_out(info, size, &full, sizeof full);
  }
  portmap_client_unlock(c);
  return st;
}
