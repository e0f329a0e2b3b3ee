/*
 * Internal shared definitions: the client and mapping objects as the core
 * and the backends see them. Not installed.
 */
#ifndef PORTMAP_INTERNAL_H
#define PORTMAP_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <portmap/portmap.h>

#include "backends/backend.h"
#include "util/sched.h"

#define PORTMAP_MAX_BACKENDS 3

typedef struct portmap_mfilter {
  uint8_t addr[16];
  uint8_t prefix_len; /* bits of the 128-bit field (IPv4: 96 + n), J2 */
  uint16_t port;
} portmap_mfilter_t;

/* A queued callback invocation, delivered outside the lock. */
typedef struct portmap_event_rec {
  struct portmap_event_rec *next;
  struct portmap_mapping *mapping;
  portmap_event_t event;
  portmap_info_t info;
} portmap_event_rec_t;

struct portmap_mapping {
  portmap_client_t *client;
  struct portmap_mapping *prev, *next; /* client's list */
  /* the request, validated and copied */
  int protocol;
  uint16_t internal_port;
  uint16_t suggested_port;
  int has_suggested_addr;
  uint8_t suggested_addr[16];
  uint32_t lifetime; /* requested, seconds */
  unsigned flags;
  size_t description_len;
  char description[PORTMAP_MAX_DESCRIPTION + 1];
  int is_peer;
  uint8_t peer_addr[16];
  uint16_t peer_port;
  int has_third_party;
  uint8_t third_party[16];
  size_t n_filters;
  portmap_mfilter_t filters[PORTMAP_MAX_FILTERS];
  uint8_t nonce[12];
  int ipv6;
  portmap_mapping_cb cb;
  void *user;
  /* state */
  portmap_info_t info; /* what the application sees */
  uint64_t expiry_ms;  /* absolute; 0 = not mapped */
  int revoked;         /* revoke requested */
  int final_queued;    /* a final event is queued: no more events */
  int detached;        /* forgotten: free when no event refers to it */
  unsigned queued;     /* events in the queue that point here */
  int ever_mapped;
  const portmap_backend_ops_t *be;
  void *be_state;
  void *be_data; /* the backend's per-mapping state */
  /* the core's own: waiting for the probe, or moving to another backend */
  portmap_timer_t core_timer;
  int waiting;    /* no backend runs it yet */
  int moved;      /* it was mapped, then moved: the next success is CHANGED */
  unsigned tried; /* mask of backends that failed it */
};

/* The probe: all enabled protocols at once, answers decide, a budget
 * bounds the rest. Results are cached for the client's gateway. */
typedef struct portmap_probe_state {
  int running;
  int decided;
  int ever; /* a round has finished or decided */
  uint64_t started_ms;
  uint64_t decided_ms;
  unsigned pending; /* backends not yet reported in this round */
  unsigned have;    /* backends with a result */
  portmap_probe_backend_t res[PORTMAP_MAX_BACKENDS];
  portmap_backend_t selected;
  portmap_timer_t budget;
  unsigned late;         /* timed out by the budget, but may still answer */
  portmap_timer_t grace; /* how long waiting mappings wait for a late answer */
  uint8_t local[16];
  int have_local;
  /* a round asked again after an epoch change (the gateway lost its state) */
  portmap_timer_t refresh;
  int refreshed;
  uint64_t refresh_ms;
} portmap_probe_state_t;

struct portmap_client {
  pthread_mutex_t mu;
  /* config (strings copied) */
  portmap_config_t cfg;
  char *gateway_str;
  char *local_str;
  int have_gateway4, have_gateway6;
  uint8_t gateway4[16], gateway6[16];
  unsigned gateway6_scope;
  int have_local;
  uint8_t local_addr[16];
  /* the local IPv4 address towards gateway4, taken at start, after each
   * change, and at every network check until one is known: a new one means
   * a new client to the servers (only IPv4 is watched) */
  int have_seen_local;
  uint8_t seen_local[16];
  /* the one scheduler */
  portmap_sched_t sched;
  /* backends by portmap_backend_index(); NULL when not enabled */
  const portmap_backend_ops_t *be_ops[PORTMAP_MAX_BACKENDS];
  void *be_state[PORTMAP_MAX_BACKENDS];
  /* mappings and events */
  struct portmap_mapping *mappings;
  size_t n_mappings;
  portmap_event_rec_t *ev_head, *ev_tail;
  /* callback bookkeeping (recursive-call detection) */
  int in_callback; /* the dispatching thread is inside a callback */
  int dispatching; /* one thread at a time delivers events */
  pthread_t dispatch_thread;
  int destroying; /* portmap_client_free has begun */
  /* log and trace records, delivered once the lock is released */
  struct portmap_logrec *log_head, *log_tail;
  unsigned log_queued;
  uint64_t log_dropped;
  /* thread mode */
  int thread_running;
  int thread_stop;
  pthread_t thread;
  int wake_pipe[2];
  portmap_stats_t stats;
  /* the shared 5350 listener (checklist B5, N6) */
  int listen_fd[2];
  portmap_probe_state_t probe;
  portmap_timer_t gateway_timer; /* re-reads the default route (B6) */
  /* portmap_list_sync() */
  int list_done;
  portmap_status_t list_status;
  portmap_list_entry_t *list_out;
  size_t list_cap, list_count;
};

/* Index of a backend in the client's per-backend arrays (PCP 0, NAT-PMP 1, UPnP 2). */
int portmap_backend_index(portmap_backend_t b);

/* probe.c: choosing a backend */
void portmap_probe_init(portmap_client_t *c);
void portmap_probe_start(portmap_client_t *c, uint64_t now);
/* Drop every cached probe result (the gateway changed). */
void portmap_probe_forget(portmap_client_t *c);
/* A backend saw the gateway's epoch go back (reboot, new firmware): what it
 * speaks may have changed too, so a probe round asks again (at most once
 * per 30 s). Mappings keep their backends (each recovers on its own: E5,
 * K2, N5); new ones use the previous answers until the new ones come. */
void portmap_probe_epoch_changed(portmap_client_t *c, uint64_t now);
/* Give a new mapping its backend: at once, or when the probe decides. */
void portmap_probe_begin(struct portmap_mapping *m, uint64_t now);
/* Exactly one backend is enabled: no probe, no fallback. */
int portmap_probe_single(const portmap_client_t *c);
void portmap_mapping_core_init(struct portmap_mapping *m);
/* A backend failed m for a reason that says its protocol does not work
 * here: move m to the next backend. Returns 1 when moved (swallow the
 * FAILED event). */
int portmap_probe_failover(struct portmap_mapping *m);

/* clock, randomness, logging */
uint64_t portmap_client_now(portmap_client_t *c);
int portmap_client_random(portmap_client_t *c, void *buf, size_t len);
uint32_t portmap_client_random32(portmap_client_t *c);
void portmap_log(portmap_client_t *c, portmap_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void portmap_trace(portmap_client_t *c, int sent, const uint8_t addr[16], uint16_t port,
                   const uint8_t *data, size_t len);
/* The default gateway changed (checklist B6): a new server with fresh
 * state; every mapping is made again there. */
void portmap_client_gateway_changed(portmap_client_t *c, int have4, const uint8_t gw4[16],
                                    int have6, const uint8_t gw6[16], unsigned scope6,
                                    uint64_t now);
/* wake the thread (if any) so it recomputes fds and deadline */
void portmap_client_wake(portmap_client_t *c);

/* A backend's probe outcome (final for this probe round). */
void portmap_probe_report(portmap_client_t *c, portmap_backend_t backend,
                          const portmap_probe_backend_t *result);

/* The outcome of a backend's list(): entries valid only during the call. */
void portmap_list_report(portmap_client_t *c, portmap_status_t status,
                         const portmap_list_entry_t *entries, size_t n);

/* Queue an event with the mapping's current info. Final events (FAILED,
 * DELETED) end the mapping: the backend must not touch it afterwards. */
void portmap_mapping_emit(struct portmap_mapping *m, portmap_event_t ev);

#endif
