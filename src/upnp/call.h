/* SPDX-License-Identifier: MIT */
/*
 * One UPnP "call": the inputs and outputs of one HTTP exchange (fetch the
 * root description, or one SOAP action), handed from the scheduler's
 * thread to the worker (worker.h) and back. Its inputs are written before
 * hand-off and only read by the worker; its outputs belong to the worker
 * until the call comes back. The first fields are the scheduler thread's
 * bookkeeping (the backend's): the worker never reads them.
 */
#ifndef PORTMAP_UPNP_CALL_H
#define PORTMAP_UPNP_CALL_H

#include <stddef.h>
#include <string.h>

#include "upnp/ssdp.h"
#include "util/alloc.h"
#include "util/container.h"
#include "util/list.h"
#include "util/sched.h"

#define UPNP_DESC_ESCAPED_MAX 512 /* miniupnpc's SOAP body is 2048 octets */
#define UPNP_CLIENT_MAX 46        /* NewInternalClient: PORTMAP_ADDRSTRLEN */

enum call_kind {
  CALL_DESCRIBE, /* GET the root description and scan it */
  CALL_STATUS,   /* GetStatusInfo */
  CALL_EXTIP,    /* GetExternalIPAddress */
  CALL_ADD,      /* AddPortMapping */
  CALL_ADDANY,   /* AddAnyPortMapping (IGDv2) */
  CALL_GET,      /* GetSpecificPortMappingEntry */
  CALL_DELETE,   /* DeletePortMapping */
  CALL_LIST      /* GetGenericPortMappingEntry */
};

enum call_purpose { FOR_MAP, FOR_DISCOVERY, FOR_LIST, FOR_CLEANUP };

struct upnp_state; /* the backend's */
struct upnp_map;

typedef struct upnp_call {
  /* the scheduler thread's (st is never read by the worker) */
  portmap_dlink_t qlink; /* the call queue: leaving it is O(1) */
  int queued;            /* in the backend's call queue */
  struct upnp_state *st;
  enum call_kind kind;
  enum call_purpose purpose;
  struct upnp_map *pm; /* FOR_MAP; NULL once the mapping is gone */
  int cleanup;         /* a successful add must be deleted again (Q10) */
  int timed_out;
  unsigned gen; /* gateway generation it was built for */
  portmap_timer_t watchdog;
  /* inputs: written before hand-off, read-only afterwards */
  portmap_alloc_t alloc; /* a copy of the client's: the call and its descr
                          * go back to it, after the client if orphaned */
  char url[PORTMAP_SSDP_URL_MAX];
  char service[PORTMAP_SSDP_FIELD_MAX];
  char ext_port[8];
  char int_port[8];
  char proto[4];
  char client[UPNP_CLIENT_MAX];
  char desc[UPNP_DESC_ESCAPED_MAX + 1];
  char lease[12];
  char index[8];
  /* outputs: the worker's until the call comes back */
  struct upnp_call *wnext; /* under the worker's lock */
  int rc;
  int http_status;
  portmap_upnp_desc_t *descr;
  char o_status[72], o_lasterr[72], o_extip[72], o_reserved[16];
  char o_client[72], o_port[16], o_desc[96], o_enabled[16], o_lease[24];
  char o_ext_port[16], o_proto[16], o_rhost[72];
} upnp_call_t;

/* The call a link of the call queue belongs to. */
static inline upnp_call_t *portmap_upnp_call_of(portmap_dlink_t *e) {
  return PORTMAP_CONTAINER_OF(e, upnp_call_t, qlink);
}

/* Copy src (NULL: "") into dst, truncated to cap octets, NUL included. */
static inline void copy_str(char *dst, size_t cap, const char *src) {
  if (cap == 0)
    return;
  size_t n = src != NULL ? strnlen(src, cap - 1) : 0;
  if (n > 0)
    memcpy(dst, src, n);
  dst[n] = '\0';
}

/* Free a call that is off the scheduler (its watchdog is not armed), or
 * a chain of them linked by wnext. Accept NULL. */
void portmap_upnp_call_release(upnp_call_t *k);
void portmap_upnp_call_release_chain(upnp_call_t *k);

#endif
