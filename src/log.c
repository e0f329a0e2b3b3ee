/* SPDX-License-Identifier: MIT */
/*
 * Log and trace records. Sinks never run under the client lock (they may
 * call back into the library): records queue up here and go out at the
 * next unlock (portmap_client_unlock, loop.c), on whichever thread was in
 * the library.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define PORTMAP_LOG_QUEUE_MAX 256u

typedef struct portmap_logrec {
  struct portmap_logrec *next;
  int is_trace;
  portmap_log_level_t level;
  int sent;
  uint16_t port;
  char peer[PORTMAP_ADDRSTRLEN];
  size_t len;
  uint8_t data[]; /* the message (NUL-terminated) or the datagram */
} portmap_logrec_t;

static void log_enqueue(portmap_client_t *c, portmap_logrec_t *rec) {
  if (c->log_queued >= PORTMAP_LOG_QUEUE_MAX) {
    c->log_dropped++;
    portmap_alloc_free(&c->alloc, rec);
    return;
  }
  rec->next = NULL;
  if (c->log_tail)
    c->log_tail->next = rec;
  else
    c->log_head = rec;
  c->log_tail = rec;
  c->log_queued++;
}

void portmap_vlog(portmap_client_t *c, portmap_log_level_t level, const char *fmt, va_list ap) {
  if (c->cfg.log_cb == NULL || level > c->cfg.log_level)
    return;
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t n = strlen(msg) + 1;
  portmap_logrec_t *rec = portmap_alloc_calloc(&c->alloc, 1, sizeof *rec + n);
  if (rec == NULL)
    return;
  rec->level = level;
  rec->len = n;
  memcpy(rec->data, msg, n);
  log_enqueue(c, rec);
}

void portmap_log(portmap_client_t *c, portmap_log_level_t level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  portmap_vlog(c, level, fmt, ap);
  va_end(ap);
}

void portmap_trace(portmap_client_t *c, int sent, const uint8_t addr[16], uint16_t port,
                   const uint8_t *data, size_t len) {
  if (c->cfg.trace_cb == NULL)
    return;
  portmap_logrec_t *rec = portmap_alloc_calloc(&c->alloc, 1, sizeof *rec + len);
  if (rec == NULL)
    return;
  portmap_addr_t a;
  memcpy(a.bytes, addr, 16);
  portmap_addr_format(&a, rec->peer, sizeof rec->peer);
  rec->is_trace = 1;
  rec->sent = sent;
  rec->port = port;
  rec->len = len;
  if (len > 0)
    memcpy(rec->data, data, len);
  log_enqueue(c, rec);
}

void portmap_log_deliver(portmap_client_t *c, portmap_logrec_t *rec) {
  const portmap_config_t *cfg = &c->cfg;
  while (rec != NULL) {
    portmap_logrec_t *next = rec->next;
    if (rec->is_trace)
      cfg->trace_cb(rec->sent, rec->peer, rec->port, rec->data, rec->len, cfg->trace_user);
    else
      cfg->log_cb(rec->level, (const char *)rec->data, cfg->log_user);
    portmap_alloc_free(&c->alloc, rec);
    rec = next;
  }
}

portmap_logrec_t *portmap_log_take(portmap_client_t *c) {
  portmap_logrec_t *list = c->log_head;
  c->log_head = c->log_tail = NULL;
  c->log_queued = 0;
  return list;
}

void portmap_log_flush(portmap_client_t *c) {
  portmap_log_deliver(c, portmap_log_take(c));
}
