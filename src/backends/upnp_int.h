/* SPDX-License-Identifier: MIT */
/*
 * The UPnP-IGD backend's private header: its shared state (the gateway,
 * discovery, the call queue, list) and the functions its three files call
 * in one another. upnp.c: the mappings and the vtable; upnp_discovery.c:
 * SSDP and the describe/eval sequence that chooses the gateway;
 * upnp_calls.c: the call queue, dispatch, watchdog and the Q10 cleanup.
 * The blocking side (worker, transport, SOAP) is in src/upnp/. Everything
 * here runs on the scheduler's thread with the client lock held.
 */
#ifndef PORTMAP_BACKENDS_UPNP_INT_H
#define PORTMAP_BACKENDS_UPNP_INT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "backends/backend.h"
#include "util/hash.h"
#include "upnp/call.h"
#include "upnp/igd.h"
#include "upnp/ssdp.h"
#include "upnp/worker.h"

#define UPNP_MAX_CANDIDATES 8
#define UPNP_CONFLICT_TRIES 8            /* Q11 */
#define UPNP_PERMANENT_VERIFY_MS 600000u /* Q9: re-verify permanent leases */
#define UPNP_RETRY_MS 30000u             /* after a failed renewal */
#define UPNP_REDISCOVER_AFTER 2u         /* Q13: HTTP failures in a row */
#define UPNP_SSDP_GRACE_MS 100u          /* wait for an IGD reply after a rootdevice one */
#define UPNP_SSDP_DEFAULT_MS 500u
#define UPNP_EXT_FRESH_MS 2000u /* a new mapping trusts discovery's external address this long */
#define UPNP_LIST_MAX 256u
#define UPNP_MAX_READS 64
#define UPNP_DEFAULT_DESCRIPTION "libportmap"
#define UPNP_DEFAULT_TIMEOUT_MS 2000u

_Static_assert(UPNP_CLIENT_MAX == PORTMAP_ADDRSTRLEN, "NewInternalClient holds an address");

typedef struct upnp_state upnp_state_t;
typedef struct upnp_map upnp_map_t;

enum map_seq { SEQ_IDLE, SEQ_CREATE, SEQ_RENEW, SEQ_DELETE, SEQ_DELCHECK };

struct upnp_map {
  upnp_map_t *prev, *next; /* st->maps */
  portmap_mapping_t *h;    /* the core's handle */
  const portmap_req_t *req;
  portmap_result_t res; /* what we tell the core */
  int ever_mapped;
  upnp_state_t *st;
  enum map_seq seq;
  upnp_call_t *call; /* in flight (queued or with the worker) */
  int waiting_gw;    /* for discovery */
  int revoking;      /* revoke arrived while busy */
  int added;         /* an entry of ours may exist at ext_port */
  uint16_t ext_port; /* held or being tried */
  uint32_t lease;    /* asked in the current add */
  int permanent;     /* granted with lease 0 (Q9) */
  unsigned conflict_try;
  int tried_any, tried_permanent, rediscovered;
  unsigned http_retry;
  int vanished; /* Q14: the renewal found it gone */
  int have_ext;
  uint8_t ext_addr[16];
  portmap_timer_t timer;  /* renewal, verification, retry */
  portmap_timer_t expiry; /* leased: lease end; permanent ONCE: our own end */
};

typedef struct upnp_gw {
  int ready;
  unsigned gen;
  char location[PORTMAP_SSDP_URL_MAX];
  char control_url[PORTMAP_SSDP_URL_MAX];
  char service[PORTMAP_SSDP_FIELD_MAX];
  int rank;
  int igd_version;
  char device_name[PORTMAP_SSDP_FIELD_MAX];
  char status[64];
  int have_ext;
  uint8_t ext[16];
  uint64_t ext_at;    /* when discovery's GetExternalIPAddress answered */
  int permanent_only; /* Q9: remembered for this gateway */
  uint32_t rtt_ms;
} upnp_gw_t;

typedef struct upnp_cand {
  char location[PORTMAP_SSDP_URL_MAX];
  char server[PORTMAP_SSDP_FIELD_MAX];
  int rank;
} upnp_cand_t;

typedef struct upnp_eval {
  portmap_upnp_service_t svc;
  char url[PORTMAP_SSDP_URL_MAX];
  int answered;
  char status[64];
  int have_ext;
  uint8_t ext[16];
  uint64_t ext_at; /* when the GetExternalIPAddress answer came */
  int tier;
} upnp_eval_t;

enum disc_phase { DISC_IDLE, DISC_SSDP, DISC_DESCRIBE, DISC_EVAL };

typedef struct upnp_disc {
  enum disc_phase phase;
  uint64_t started, deadline, resend_at, grace_at;
  int resent;
  int have_rtt;
  uint32_t rtt_ms;
  upnp_cand_t cand[UPNP_MAX_CANDIDATES];
  size_t n_cand, cand_idx;
  upnp_eval_t ev[PORTMAP_UPNP_MAX_SERVICES];
  size_t n_ev, ev_idx;
  char friendly[PORTMAP_SSDP_FIELD_MAX];
  char device_type[PORTMAP_SSDP_FIELD_MAX];
  portmap_status_t fail_status;
  int fail_result;
  portmap_timer_t timer;
} upnp_disc_t;

struct upnp_state {
  portmap_core_t *core;
  upnp_map_t *maps; /* every mapping this backend runs */
  /* the same by protocol and external port: whether a port is ours (Q10)
   * is one lookup */
  portmap_hash_t by_port;
  int have_gateway4;
  uint8_t gateway4[16]; /* the core's, as the backend was created (a change makes a new one) */
  int have_local;
  uint8_t local[16];
  char client[PORTMAP_ADDRSTRLEN]; /* NewInternalClient */
  int fd;                          /* SSDP */
  upnp_gw_t gw;
  upnp_disc_t disc;
  int probe_pending;
  unsigned http_failures; /* Q13: in a row, on the current gateway */
  /* calls: queued here, one at a time with the worker */
  portmap_dlist_t queue;
  upnp_call_t *busy;
  portmap_timer_t stuck; /* the busy call timed out and is still not back */
  /* list */
  int list_active, list_waiting;
  portmap_list_entry_t *list;
  size_t list_n;
  upnp_worker_t *w; /* NULL until the first call */
  int w_fd;         /* our own copy of its result pipe: the fd we report */
};

static inline const char *proto_name(int protocol) {
  return protocol == PORTMAP_PROTO_UDP ? "UDP" : "TCP"; /* Q7: upper case */
}

static inline void addr_zero4(uint8_t out[16]) {
  memset(out, 0, 16);
  out[10] = out[11] = 0xff;
}

/* ---------- upnp_calls.c ---------- */

void portmap_upnp_arm(upnp_state_t *st, portmap_timer_t *t, uint64_t deadline);
/* Q12: 0.0.0.0, loopback or garbage is "no external address". */
int portmap_upnp_parse_ext(const char *text, uint8_t out[16]);
/* A call for the current gateway (NULL when out of memory); submit()
 * queues it (0), or frees it when there is no worker (-1). */
upnp_call_t *portmap_upnp_call_new(upnp_state_t *st, enum call_kind kind,
                                   enum call_purpose purpose);
void portmap_upnp_call_free(upnp_call_t *k);
int portmap_upnp_submit(upnp_state_t *st, upnp_call_t *k, uint64_t now);
/* Take k out of the call queue: 1, or 0 when it was not queued. */
int portmap_upnp_unqueue(upnp_state_t *st, upnp_call_t *k);
/* Collect the calls the worker finished and route their results. */
void portmap_upnp_drain_worker(upnp_state_t *st, uint64_t now);
/* st->stuck's callback */
void portmap_upnp_on_stuck(portmap_timer_t *t, uint64_t now);
/* by_port: the hash of a mapping (its protocol and ext_port), and the
 * only way to change ext_port once the mapping is in the table. */
uint64_t portmap_upnp_pm_hash(const void *elem, const void *user);
void portmap_upnp_set_ext_port(upnp_map_t *pm, uint16_t port);
/* Q10: delete an entry that no mapping owns any more. */
void portmap_upnp_cleanup_submit(upnp_state_t *st, const char *proto, uint16_t port, uint64_t now);

/* ---------- upnp_discovery.c ---------- */

int portmap_upnp_ensure_local(upnp_state_t *st);
/* Find the gateway, or join the round under way; every waiting mapping,
 * the probe and list hear the outcome. */
void portmap_upnp_disc_start(upnp_state_t *st, uint64_t now);
void portmap_upnp_disc_on_result(upnp_state_t *st, upnp_call_t *call, int rc, uint64_t now);
/* st->disc.timer's callback */
void portmap_upnp_on_disc_timer(portmap_timer_t *t, uint64_t now);
void portmap_upnp_ssdp_read(upnp_state_t *st, uint64_t now);
/* One datagram read from the SSDP socket (from its source address and
 * port), as portmap_upnp_ssdp_read() hands it on; the stateful fuzzer
 * feeds it directly. */
void portmap_upnp_ssdp_input(upnp_state_t *st, const uint8_t from[16], uint16_t port,
                             const uint8_t *data, size_t len, uint64_t now);

/* ---------- upnp.c ---------- */

void portmap_upnp_pm_on_result(upnp_map_t *pm, upnp_call_t *call, int rc, uint64_t now);
void portmap_upnp_pm_fail(upnp_map_t *pm, portmap_status_t status, uint64_t now);
void portmap_upnp_pm_resume(upnp_map_t *pm, uint64_t now);
void portmap_upnp_pm_begin(upnp_map_t *pm, enum map_seq seq, uint64_t now);
void portmap_upnp_pm_finish(upnp_map_t *pm, portmap_event_t ev, portmap_status_t status,
                            int cleanup);
void portmap_upnp_list_on_result(upnp_state_t *st, upnp_call_t *call, int rc, uint64_t now);
void portmap_upnp_list_next(upnp_state_t *st, uint64_t now);
void portmap_upnp_list_finish(upnp_state_t *st, portmap_status_t status);

#endif
