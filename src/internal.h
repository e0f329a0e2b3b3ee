/* SPDX-License-Identifier: MIT */
/*
 * The core's own definitions: the client and mapping objects, and the
 * functions the core's files share. Only files directly in src/ include
 * this; backends see the core through src/backends/backend.h alone.
 *
 * The core's files, each one job:
 *   client.c   configuration, creating and freeing a client, queries
 *   mapping.c  requests, mapping handles, event delivery to callbacks
 *   core.c     the seam's core side: what backends call, and settle(),
 *              where every decision that follows an event runs
 *   probe.c    the concurrent probe, backend choice and failover
 *   watch.c    the gateway and local address, and their changes (B6)
 *   listen.c   the shared 5350 listener (B5, N6)
 *   loop.c     fds, deadline and process; the own-thread mode
 *   sync.c     the blocking helpers (map, probe, list)
 *   log.c      log and trace records, delivered outside the lock
 */
#ifndef PORTMAP_INTERNAL_H
#define PORTMAP_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <portmap/portmap.h>

#include "backends/backend.h"
#include "util/alloc.h"
#include "util/container.h"
#include "util/list.h"
#include "util/sched.h"

#define PORTMAP_MAX_BACKENDS 3

/* The ABI (README "ABI that can grow"): public structs only grow at their
 * end, and every call that takes one also takes the size the program was
 * built with. These are the sizes of version 1.0, the least accepted. */
#define PORTMAP_END_OF(type, member) (offsetof(type, member) + sizeof(((type *)0)->member))
#define PORTMAP_CONFIG_SIZE_1_0 PORTMAP_END_OF(portmap_config_t, client_user)
#define PORTMAP_REQUEST_SIZE_1_0 PORTMAP_END_OF(portmap_request_t, ipv6)
#define PORTMAP_INFO_SIZE_1_0 PORTMAP_END_OF(portmap_info_t, tried)
#define PORTMAP_PROBE_RESULT_SIZE_1_0 PORTMAP_END_OF(portmap_probe_result_t, elapsed_ms)
#define PORTMAP_LIST_ENTRY_SIZE_1_0 PORTMAP_END_OF(portmap_list_entry_t, enabled)
#define PORTMAP_STATS_SIZE_1_0 PORTMAP_END_OF(portmap_stats_t, epoch_invalid)

/* Copy the first n octets of a struct the library filled to the caller's,
 * n being the smaller of the two sizes. */
static inline void portmap_abi_out(void *dst, size_t dst_size, const void *src, size_t src_size) {
  memcpy(dst, src, dst_size < src_size ? dst_size : src_size);
}
#define PORTMAP_MAX_WATCHED 32 /* fds the loop is told about (a client has about 8) */
/* Timers that can be scheduled at once, reserved on the scheduler as the
 * client and each mapping are made (portmap_sched_reserve()), so that
 * arming one never needs memory and cannot fail: the client's and its
 * backends' own (the core 6, PCP 4, NAT-PMP 2, UPnP 2 and the watchdog of
 * its one call with the worker: 15, with room), and each mapping's
 * (its backend's retry or renewal timer and its expiry). */
#define PORTMAP_TIMERS_CLIENT 24u
#define PORTMAP_TIMERS_PER_MAPPING 2u
#define PORTMAP_MAX_SINK_THREADS 8

/* A thread inside a sink (portmap_client_unlock), and how deep. */
typedef struct portmap_sink {
  pthread_t thread;
  unsigned depth;
} portmap_sink_t;

/* An fd the application's loop was told to watch (fd_cb). */
typedef struct portmap_watched {
  int fd;
  uint64_t ident; /* portmap_plat_fd_identity(): a reused number is another fd */
} portmap_watched_t;

/* A queued callback invocation, delivered outside the lock: a mapping's
 * event, or one of the client's. The queue links nodes: each one the head
 * of an allocated record holding what to deliver, or a spare node that
 * needs no allocation (a mapping's spare_node, see queue_event() in core.c;
 * the client's shutdown_node), delivered with the mapping's info or the
 * client's state as they are then. A node does not name its mapping: the
 * record does, and a spare node is inside it (portmap_event_node_mapping()),
 * so each mapping's spare costs 16 octets, not 24. */
typedef struct portmap_event_node {
  struct portmap_event_node *next;
  portmap_event_t event;
  int spare; /* no record: a mapping's spare_node or the client's shutdown_node */
} portmap_event_node_t;

typedef struct portmap_event_rec {
  portmap_event_node_t node;       /* first: the queue links the nodes */
  struct portmap_mapping *mapping; /* NULL: the client's event */
  union {
    portmap_info_t info; /* a mapping's */
    struct {             /* the client's */
      portmap_client_event_t client_event;
      portmap_client_state_t client_state;
    };
  };
} portmap_event_rec_t;

/* What the application is told of a mapping, without what follows from
 * the request (protocol, port, nonce, PEER) or from the time (the state,
 * the time left, the address as text): portmap_mapping_make_info() makes the
 * portmap_info_t. The names are portmap_info_t's. Kept small (one of these
 * per mapping): tried[] is held without its backend (the index says which)
 * and with its status in an octet, 16 octets instead of 48
 * (portmap_probe_tried_out() makes the public array). */
typedef struct portmap_minfo {
  portmap_addr_t internal_address;
  portmap_addr_t external_address;
  portmap_status_t status;
  int gateway_result;
  uint32_t lifetime;
  int tried_result[PORTMAP_INFO_BACKENDS];     /* tried[i].gateway_result */
  uint8_t tried_status[PORTMAP_INFO_BACKENDS]; /* tried[i].status (portmap_status_t) */
  uint8_t tried_mask;                          /* bit i: tried[i].tried */
  uint16_t external_port;
  uint8_t backend; /* portmap_backend_t */
} portmap_minfo_t;

_Static_assert(PORTMAP_ERR_NO_IGD <= UINT8_MAX && PORTMAP_BACKEND_UPNP <= UINT8_MAX &&
                   PORTMAP_EVENT_DELETED <= UINT8_MAX && PORTMAP_INFO_BACKENDS <= 8,
               "statuses, backends and events fit an octet; tried[] fits a mask");

/* Laid out with no hole (the small fields share one word): 216 octets on
 * LP64, which glibc's malloc serves from a 224-octet chunk (the size plus
 * 8, rounded up to 16), so 8 more octets of fields are free and then 16
 * more cost 16 octets a mapping (the probe's list took the last 16). The
 * budget (issue 12): at most 512 octets of heap per mapping at 100,000
 * mappings, the backend's state and the tables included (bench/README.md). */
struct portmap_mapping {
  portmap_client_t *client;
  struct portmap_mapping *prev, *next; /* client's list */
  portmap_req_t req;                   /* validated and copied */
  portmap_mapping_cb cb;
  void *user;
  /* state */
  portmap_minfo_t info;      /* what the application sees */
  unsigned queued;           /* events in the queue that point here */
  uint8_t tried;             /* mask of backends that failed it */
  uint8_t last_event;        /* portmap_event_t; 0 before the first */
  unsigned revoked : 1;      /* revoke requested */
  unsigned final_queued : 1; /* a final event is queued: no more events */
  unsigned detached : 1;     /* forgotten: free when no event refers to it */
  unsigned ever_mapped : 1;
  unsigned be_ended : 1; /* the backend made its final report */
  unsigned waiting : 1;  /* no backend runs it yet */
  unsigned moved : 1;    /* it was mapped, then moved: the next success is CHANGED */
  unsigned retrying : 1; /* LOST was told: no backend works, the retry back-off runs */
  /* a backend reported FAILED: settle() decides (failover or the event) */
  unsigned failed_pending : 1;
  unsigned in_failed_list : 1;
  unsigned app_ref : 1;  /* the program holds the handle (portmap_map's out) */
  unsigned renewing : 1; /* the backend said a renewal is under way */
  /* started on PCP before PCP answered the probe: its request is the probe
   * (probe.c); it moves when another backend is chosen first */
  unsigned trial : 1;
  /* on a lower backend while a better one had not answered: moves up if
   * that one answers within the probe budget */
  unsigned provisional : 1;
  /* leaving its backend for a better one: the delete on the gateway runs;
   * what that backend says is not the application's (core.c) */
  unsigned upgrading : 1;
  unsigned spare_queued : 1; /* spare_node is in the queue */
  uint64_t expiry_ms;        /* absolute; 0 = not mapped */
  const portmap_backend_ops_t *be;
  void *be_state;
  void *be_data; /* the backend's per-mapping state; NULL when none runs it */
  struct portmap_mapping *failed_next;
  /* the probe's list (portmap_client.probe_list): in it exactly while not
   * ended and waiting, on trial or provisional */
  portmap_dlink_t probe_link;
  /* An event no record could be allocated for is queued all the same, on
   * this node, and delivered with info as it is then; until it is, the
   * mapping's later events are merged into it (queue_event(), core.c), so
   * the final event always goes out. */
  portmap_event_node_t spare_node;
};

_Static_assert(sizeof(struct portmap_mapping) <= 216,
               "a mapping fits a 224-octet malloc chunk (see above)");

/* The mapping a link of the probe's list belongs to (NULL for none). */
static inline struct portmap_mapping *portmap_probe_list_entry(portmap_dlink_t *e) {
  return e != NULL ? PORTMAP_CONTAINER_OF(e, struct portmap_mapping, probe_link) : NULL;
}

/* The probe: PCP first (a mapping's own request when there is one), the
 * other protocols after a short delay or at once when asked explicitly;
 * answers decide, and a lower backend that answered is taken once the
 * better ones stayed silent for a few of its round trips. The budget bounds
 * how long a better backend may still answer (and move mappings up).
 * Results are cached for the client's gateway. */
typedef struct portmap_probe_state {
  int running;
  int decided;
  int ever;  /* a round has finished or decided */
  int dirty; /* answers came in: settle() evaluates them */
  uint64_t started_ms;
  uint64_t decided_ms;
  unsigned pending; /* backends not yet reported in this round */
  unsigned have;    /* backends with a result */
  unsigned held;    /* pending, but asked only once PCP was silent for stage_ms */
  int release;      /* ask the held ones in settle() (PCP said no) */
  portmap_probe_backend_t res[PORTMAP_MAX_BACKENDS];
  uint64_t ok_ms[PORTMAP_MAX_BACKENDS]; /* when each said "works" in this round, 0 not */
  uint32_t gw_rtt_ms;                   /* the gateway's shortest round trip seen */
  int have_rtt;
  portmap_backend_t selected;
  portmap_timer_t budget;
  portmap_timer_t stage;     /* a staged round asks the held backends */
  portmap_timer_t quiet;     /* a lower backend's answer has waited long enough */
  portmap_timer_t autostart; /* a new client's first round, unless a mapping starts one */
  unsigned late;             /* timed out by the budget, but may still answer */
  portmap_timer_t grace;     /* how long waiting mappings wait for a late answer */
  uint8_t local[16];
  int have_local;
  /* a round asked again after an epoch change (the gateway lost its state) */
  portmap_timer_t refresh;
  int refreshed;
  uint64_t refresh_ms;
  /* request_timeout_ms 0: ask again while mappings wait with no backend
   * that works, or a preferred backend said "not now" (probe.c) */
  portmap_timer_t retry;
  uint32_t retry_step_ms; /* the next back-off step, 0 = the first */
} portmap_probe_state_t;

/* A source of default routes (B1, B6): 0 and the family's default gateway
 * (scope: the IPv6 interface), or -1 when that family has none. */
typedef int (*portmap_route_fn)(void *user, int ipv6, uint8_t gw[16], unsigned *scope);

/* What backends hold of the core: a way back to the client. */
struct portmap_core {
  struct portmap_client *client;
};

struct portmap_client {
  pthread_mutex_t mu;
  portmap_core_t core;   /* handed to the backends */
  portmap_alloc_t alloc; /* every block of the client (cfg's hooks, or the system's) */
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
  /* the source address towards gateway6, looked up once when first needed
   * and forgotten when that gateway changes */
  int have_local6;
  uint8_t local6[16];
  /* where the default routes come from: NULL = the platform (tests inject) */
  portmap_route_fn route_fn;
  void *route_user;
  /* the one scheduler */
  portmap_sched_t sched;
  /* backends by portmap_backend_index(); NULL when not enabled */
  const portmap_backend_ops_t *be_ops[PORTMAP_MAX_BACKENDS];
  void *be_state[PORTMAP_MAX_BACKENDS];
  /* mappings and events */
  struct portmap_mapping *mappings;
  size_t n_mappings;
  size_t n_live; /* of them, those not ended (portmap_mapping_ended): shutdown waits for 0 */
  /* What probe.c's evaluate() works on, so that its cost follows the
   * mappings that need it, not all of them (issue 12): the probe's list,
   * the mappings not ended that are waiting, on trial or provisional,
   * newest first; how many not ended are retrying, and of those how many
   * wait; how many not ended are provisional. Kept by the setters of mapping.c
   * (portmap_mapping_set_waiting()
   * ...); portmap_mapping_track_check() recomputes them. */
  portmap_dlist_t probe_list;           /* their probe_link, newest first */
  struct portmap_mapping *probe_cursor; /* a walk's next: moved on when that one leaves */
  size_t n_retrying, n_retry_waiting, n_provisional;
  portmap_event_node_t *ev_head, *ev_tail;
  /* mappings whose backend failed them, in report order (settle()) */
  struct portmap_mapping *failed_head, *failed_tail;
  /* callback bookkeeping (recursive-call detection) */
  int in_callback;      /* the dispatching thread is inside a callback */
  pthread_cond_t cb_cv; /* broadcast when a callback returns */
  int dispatching;      /* one thread at a time delivers events */
  pthread_t dispatch_thread;
  int destroying; /* portmap_client_free or _shutdown has begun: no new mappings */
  int freeing;    /* portmap_client_free has begun: no thread started again */
  int sync_ok;    /* mu and cb_cv were made (client creation) */
  /* the client's own state, told through client_cb when it changes */
  portmap_backend_t cs_backend;
  int cs_have_ext;
  uint8_t cs_ext[16];
  int shutting_down, shut_down;
  portmap_timer_t shutdown_timer;
  portmap_event_node_t shutdown_node; /* SHUTDOWN when no record could be allocated */
  /* the threads inside a log or trace sink, fd_cb or timer_cb */
  portmap_sink_t sinks[PORTMAP_MAX_SINK_THREADS];
  unsigned sinks_untracked;
  /* log and trace records, delivered once the lock is released */
  struct portmap_logrec *log_head, *log_tail;
  unsigned log_queued;
  uint64_t log_dropped;
  /* thread mode */
  int thread_running;
  int thread_stop;
  pthread_t thread;
  int wake_pipe[2]; /* always open: one of the fds; other threads' calls write it */
  int wake_written; /* it holds a signal portmap_process() has not drained yet */
  /* the event-loop contract (fd_cb, timer_cb): what the loop was told */
  pthread_t loop_thread; /* the creator, then whoever last called portmap_process() */
  portmap_watched_t watched[PORTMAP_MAX_WATCHED];
  size_t n_watched;
  int timer_told;
  uint64_t timer_deadline; /* absolute; PORTMAP_SCHED_NONE = none */
  int *deferred;           /* fds backends closed that the loop may still watch */
  size_t n_deferred, cap_deferred;
  int closing; /* portmap_client_free: no fds are watched any more */
  portmap_stats_t stats;
  /* The external address last made text for an event's info, and that
   * text (portmap_mapping_make_info()): the same for nearly every event;
   * formatting it each time (inet_ntop()) was a quarter of a renewal's
   * instructions (issue 12). */
  int have_ext_text;
  uint8_t ext_text_addr[16];
  char ext_text[PORTMAP_ADDRSTRLEN];
  /* the shared 5350 listener (checklist B5, N6) */
  int listen_fd[2];
  portmap_probe_state_t probe;
  /* mappings the probe's walks looked at (start_waiting(), move_up(), the
   * retry checks), for the tests: proportional to those that need it */
  uint64_t probe_visits;
  portmap_timer_t gateway_timer; /* re-reads the default route (B6) */
  /* portmap_list_sync() */
  int list_done;
  portmap_status_t list_status;
  int list_busy;           /* a portmap_list_sync() is under way */
  unsigned char *list_out; /* entries of list_entry_size octets each */
  size_t list_entry_size;
  size_t list_cap, list_count;
};

/* Index of a backend in the client's per-backend arrays (PCP 0, NAT-PMP 1, UPnP 2). */
int portmap_backend_index(portmap_backend_t b);

/* ---------- probe.c: choosing a backend ---------- */
void portmap_probe_init(portmap_client_t *c);
/* Probe now, every protocol at once (portmap_probe_sync). */
void portmap_probe_start(portmap_client_t *c, uint64_t now);
/* A new client's first round, from the loop unless a mapping starts one. */
void portmap_probe_schedule(portmap_client_t *c, uint64_t now);
/* Cancel the probe's timers (client destruction). */
void portmap_probe_cancel(portmap_client_t *c);
/* Drop every cached probe result (the gateway changed). */
void portmap_probe_forget(portmap_client_t *c);
/* A backend saw the gateway's epoch go back: a round asks again later. */
void portmap_probe_epoch_changed(portmap_client_t *c, uint64_t now);
/* Record a backend's probe outcome (settle() evaluates it). */
void portmap_probe_record(portmap_client_t *c, portmap_backend_t backend,
                          const portmap_probe_backend_t *result);
/* Evaluate the answers recorded since the last call: decide, and start the
 * mappings that wait. Run only from settle(). */
void portmap_probe_evaluate(portmap_client_t *c, uint64_t now);
/* Give a new mapping its backend: at once, or when the probe decides. */
void portmap_probe_begin(struct portmap_mapping *m, uint64_t now);
/* m is on trial on PCP and PCP's answer to its request said "not now" to
 * the probe too: the LOST it reports is not told; settle() moves m to a
 * backend that works, or tells LOST then. Returns 1 when so. */
int portmap_probe_trial_held(struct portmap_mapping *m);
/* Exactly one backend is enabled: no probe, no fallback. */
int portmap_probe_single(const portmap_client_t *c);
/* A backend failed m: move it to the next backend when the reason says its
 * protocol does not work here. Returns 1 when moved (no FAILED event).
 * Run only from settle(). */
int portmap_probe_failover(struct portmap_mapping *m, uint64_t now);
/* A new mapping's per-backend results: none tried yet. */
void portmap_probe_info_init(const portmap_client_t *c, portmap_minfo_t *info);
/* Record m's current status and gateway result as the last attempt of the
 * backend that runs it (info.tried). */
void portmap_probe_note(struct portmap_mapping *m);
/* portmap_info_t.tried[] from what a mapping keeps of it. */
void portmap_probe_tried_out(const portmap_minfo_t *info,
                             portmap_backend_result_t out[PORTMAP_INFO_BACKENDS]);

/* The mapping a queued event is for; NULL for one of the client's. */
static inline struct portmap_mapping *portmap_event_node_mapping(const portmap_client_t *c,
                                                                 portmap_event_node_t *node) {
  if (!node->spare)
    return ((portmap_event_rec_t *)(void *)node)->mapping;
  if (node == &c->shutdown_node)
    return NULL;
  return PORTMAP_CONTAINER_OF(node, struct portmap_mapping, spare_node);
}

/* The mapping is over for the application: its final event is queued, or
 * it was detached. No backend runs it, and calls on it return STATE. */
static inline int portmap_mapping_ended(const struct portmap_mapping *m) {
  return m->final_queued || m->detached;
}

/* ---------- core.c: the seam's core side ---------- */
uint64_t portmap_client_now(portmap_client_t *c);
int portmap_client_random(portmap_client_t *c, void *buf, size_t len);
/* Queue an event with the mapping's current info. FAILED does not go out
 * at once: settle() first decides whether the mapping moves to another
 * backend. Final events end the mapping. */
void portmap_mapping_emit(struct portmap_mapping *m, portmap_event_t ev);
/* Start m on backend i (no event: the caller handles a refusal). */
portmap_status_t portmap_mapping_start_on(struct portmap_mapping *m, int i, uint64_t now);
/* What the application is told of m at now (lock held: the address text
 * is cached in the client). */
void portmap_mapping_make_info(const struct portmap_mapping *m, uint64_t now, portmap_info_t *out);
/* Send m back to wait for a backend (its backend has let go of it, or
 * was unbound): none runs it, settle() starts it on the probe's choice;
 * mapped before, its next success is CHANGED. */
void portmap_mapping_requeue(struct portmap_mapping *m);
/* Detach m from its backend (if any), cancelling what it runs. */
void portmap_mapping_unbind(struct portmap_mapping *m);
/* Run every decision that follows the events and answers recorded so far,
 * in one place and a fixed order (see core.c). Called with the lock held,
 * never from inside a backend. */
void portmap_core_settle(portmap_client_t *c);
/* Work for settle() is waiting. */
int portmap_core_unsettled(const portmap_client_t *c);

/* ---------- client.c: the client's own state ---------- */
/* The protocol new mappings use, or the external address, may have
 * changed: tell client_cb when it did. */
void portmap_client_note_backend(portmap_client_t *c, portmap_backend_t backend);
void portmap_client_note_external(portmap_client_t *c, const uint8_t addr[16]);
/* Queue a client event with the client's current state. */
void portmap_client_emit(portmap_client_t *c, portmap_client_event_t ev);
/* The client's state as client_cb and portmap_client_state() tell it. */
void portmap_client_state_locked(portmap_client_t *c, portmap_client_state_t *st);
/* Shutting down and every mapping ended: tell SHUTDOWN (once). */
void portmap_client_shutdown_check(portmap_client_t *c);

/* ---------- mapping.c ---------- */
/* The flags probe.c's evaluate() works from change only through these
 * (and a mapping ends only through portmap_mapping_set_ended(): its final
 * event queued, or detached when detached is not 0). */
void portmap_mapping_set_waiting(struct portmap_mapping *m, int on);
void portmap_mapping_set_trial(struct portmap_mapping *m, int on);
void portmap_mapping_set_provisional(struct portmap_mapping *m, int on);
void portmap_mapping_set_retrying(struct portmap_mapping *m, int on);
void portmap_mapping_set_ended(struct portmap_mapping *m, int detached);
/* The probe's list and counters against a walk of every mapping: 0 when
 * they agree, -1 when not (the tests' and fuzzers' check). */
int portmap_mapping_track_check(const portmap_client_t *c);
/* Deliver queued events with the lock released (called with it held). */
void portmap_dispatch_events(portmap_client_t *c);
void portmap_mapping_unlink_free(portmap_client_t *c, struct portmap_mapping *m);
void portmap_mapping_maybe_free(portmap_client_t *c, struct portmap_mapping *m);
/* Delete on the gateway, or at once when no backend runs it yet. */
void portmap_mapping_revoke_locked(struct portmap_mapping *m, uint64_t now);
int portmap_in_own_callback(portmap_client_t *c);
/* The family's all-zeros address (checklist A7). */
void portmap_addr_any(uint8_t out[16], int ipv6);

/* portmap_client_new() with the default routes from routes (NULL: the
 * platform's). For tests: a scripted route table, no real network. */
portmap_status_t portmap_client_new_routes(const portmap_config_t *cfg, portmap_route_fn routes,
                                           void *routes_user, portmap_client_t **out);

/* ---------- watch.c: the network ---------- */
/* Find the gateways (configured, else the default routes: B1). */
void portmap_watch_discover(portmap_client_t *c);
/* Start watching: the 30 s check of the default route and local address. */
void portmap_watch_start(portmap_client_t *c, uint64_t now);
/* The system's source address towards the family's gateway (checklist A4),
 * looked up once per gateway: 1 and the address, or 0 (no gateway of that
 * family, or no route to it). */
int portmap_watch_source(portmap_client_t *c, int ipv6, uint8_t out[16]);
/* The default gateway changed (checklist B6): a new server with fresh
 * state for the family that changed (both the same: a new local address,
 * IPv4); that family's mappings are made again there. */
void portmap_client_gateway_changed(portmap_client_t *c, int have4, const uint8_t gw4[16],
                                    int have6, const uint8_t gw6[16], unsigned scope6,
                                    uint64_t now);

/* ---------- listen.c: the shared 5350 listener ---------- */
void portmap_listen_open(portmap_client_t *c);
void portmap_listen_read(portmap_client_t *c, uint64_t now);
void portmap_listen_close(portmap_client_t *c);

/* ---------- loop.c ---------- */
/* wake the thread (if any) so it recomputes fds and deadline (lock held) */
void portmap_client_wake(portmap_client_t *c);
/* One bounded wait on the client's fds (the wake pipe among them), at most
 * max_ms (clamped to INT32_MAX) of real time. */
void portmap_wait_once(portmap_client_t *c, uint64_t max_ms);
/* Release the client lock; then hand queued log and trace records to the
 * application's sinks and, on the loop's thread, tell the loop which fds
 * to watch and when to wake (fd_cb, timer_cb), and close the fds that
 * backends gave up once the loop has let go of them. Other threads wake
 * the loop instead. */
void portmap_client_unlock(portmap_client_t *c);
/* Close the fds still deferred (client destruction). */
void portmap_loop_fini(portmap_client_t *c);
/* The calling thread enters or leaves a sink; is it inside one? (lock held) */
void portmap_sink_enter(portmap_client_t *c);
void portmap_sink_leave(portmap_client_t *c);
int portmap_in_sink(const portmap_client_t *c);
/* Some thread is inside a sink of this client (lock held). */
int portmap_sinks_busy(const portmap_client_t *c);
/* Real monotonic milliseconds (the blocking helpers' own deadlines). */
uint64_t portmap_real_ms(void);

/* ---------- log.c ---------- */
void portmap_log(portmap_client_t *c, portmap_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void portmap_vlog(portmap_client_t *c, portmap_log_level_t level, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
void portmap_trace(portmap_client_t *c, int sent, const uint8_t addr[16], uint16_t port,
                   const uint8_t *data, size_t len);
/* Take the queued records (under the lock) and deliver them (without). */
struct portmap_logrec *portmap_log_take(portmap_client_t *c);
void portmap_log_deliver(portmap_client_t *c, struct portmap_logrec *list);
/* Deliver what is queued (no lock held: client creation and destruction). */
void portmap_log_flush(portmap_client_t *c);

#endif
