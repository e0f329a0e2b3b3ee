/* SPDX-License-Identifier: MIT */
/*
 * The seam between the core and the backends: everything a backend sees of
 * the core, and the vtable through which the core drives a backend. No file
 * under src/backends/, src/pcp/ or src/upnp/ includes internal.h or sees
 * the client: a backend gets a portmap_core_t (opaque) and, per mapping, a
 * handle (opaque), the validated request and a starting result; it keeps
 * its own per-mapping state (libplum's protocol_state_t is the model).
 *
 * Rules for a backend:
 * - Every call returns at once (no blocking I/O on the scheduler's thread)
 *   and takes `now` from the core's injected clock.
 * - Timers go on the core's one scheduler (portmap_core_arm/disarm).
 * - What happens to a mapping is told with portmap_core_report() (an
 *   event) or portmap_core_update() (no event). Both only record and queue:
 *   nothing of the core's policy (failover, starting other mappings,
 *   re-probing) runs inside them, so a backend is never re-entered from its
 *   own report. Those decisions run later, from the loop (core.c).
 * - After a final report (FAILED / DELETED) the core forgets the backend's
 *   per-mapping state: the backend frees it (before or after the report)
 *   and must not report on that mapping again.
 */
#ifndef PORTMAP_BACKEND_H
#define PORTMAP_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <portmap/portmap.h>

#include "util/alloc.h"
#include "util/sched.h"

/* The core as a backend sees it. */
typedef struct portmap_core portmap_core_t;

/* Requests a backend has in flight to one gateway at most (maps, renewals
 * and deletes alike; PCP per server, NAT-PMP per gateway); the others wait
 * their turn in a FIFO and go out as answers come back or requests give up
 * (util/pace.h). 64 answers take about 64 KiB of a socket's receive buffer
 * as Linux counts it (a small datagram costs about 1 KiB there), well
 * inside the default 208 KiB, so no answer is lost to our own full socket;
 * a LAN gateway answering in a millisecond drains 64 000 requests a
 * second. ARCHITECTURE.md, "Paced requests". */
#define PORTMAP_PACE_WINDOW 64

typedef struct portmap_req_filter {
  uint8_t addr[16];
  uint8_t prefix_len; /* bits of the 128-bit field (IPv4: 96 + n), J2 */
  uint16_t port;
} portmap_req_filter_t;

/* A mapping's request, validated and copied by the core. Constant while
 * the mapping lives. What every request has is held in place; the optional
 * parts (FILTERs, a suggested external address, PEER's remote peer,
 * THIRD_PARTY, DESCRIPTION) only when the request has them, together in
 * one block exactly as large as they are: read them with the accessors
 * below. */
typedef struct portmap_req {
  uint8_t nonce[12];
  uint16_t internal_port;
  uint16_t suggested_port;
  uint32_t lifetime; /* requested, seconds */
  uint8_t flags;     /* PORTMAP_FLAG_* */
  uint8_t protocol;
  unsigned ipv6 : 1;
  unsigned is_peer : 1;
  unsigned has_suggested_addr : 1;
  unsigned has_third_party : 1;
  /* the optional parts, in this order: the number of filters and the
   * description's length (an octet each), the filters, the suggested
   * address (16), the peer's address and port (16 + 2, the port in host
   * order), THIRD_PARTY (16), the description and a NUL; NULL when none */
  uint8_t *opt;
} portmap_req_t;

_Static_assert(PORTMAP_MAX_FILTERS <= UINT8_MAX && PORTMAP_MAX_DESCRIPTION <= UINT8_MAX,
               "the counts fit an octet");
_Static_assert(PORTMAP_FLAG_DELETE <= UINT8_MAX, "the flags fit an octet");

static inline size_t portmap_req_n_filters(const portmap_req_t *r) {
  return r->opt != NULL ? r->opt[0] : 0;
}

static inline size_t portmap_req_description_len(const portmap_req_t *r) {
  return r->opt != NULL ? r->opt[1] : 0;
}

/* Where the optional part after the first `parts` others starts (the
 * filters are part 0, after the two counts: 2-octet aligned). */
static inline size_t portmap_req_opt_offset(const portmap_req_t *r, size_t n_filters, int parts) {
  size_t off = 2 + n_filters * sizeof(portmap_req_filter_t);
  if (parts > 0 && r->has_suggested_addr)
    off += 16;
  if (parts > 1 && r->is_peer)
    off += 18;
  if (parts > 2 && r->has_third_party)
    off += 16;
  return off;
}

/* The block's size for a request with these parts; 0 when it needs none. */
static inline size_t portmap_req_opt_size(const portmap_req_t *r, size_t n_filters,
                                          size_t description_len) {
  if (n_filters == 0 && description_len == 0 && !r->has_suggested_addr && !r->is_peer &&
      !r->has_third_party)
    return 0;
  size_t n = portmap_req_opt_offset(r, n_filters, 3);
  return description_len > 0 ? n + description_len + 1u : n;
}

static inline const portmap_req_filter_t *portmap_req_filters(const portmap_req_t *r) {
  return portmap_req_n_filters(r) > 0 ? (const portmap_req_filter_t *)(const void *)(r->opt + 2)
                                      : NULL;
}

static inline const uint8_t *portmap_req_part(const portmap_req_t *r, int parts) {
  return r->opt + portmap_req_opt_offset(r, portmap_req_n_filters(r), parts);
}

/* The suggested external address (16 octets), or NULL. */
static inline const uint8_t *portmap_req_suggested_addr(const portmap_req_t *r) {
  return r->has_suggested_addr ? portmap_req_part(r, 0) : NULL;
}

/* PEER's remote address (16 octets), or NULL for a MAP. */
static inline const uint8_t *portmap_req_peer_addr(const portmap_req_t *r) {
  return r->is_peer ? portmap_req_part(r, 1) : NULL;
}

static inline uint16_t portmap_req_peer_port(const portmap_req_t *r) {
  uint16_t port = 0;
  if (r->is_peer)
    memcpy(&port, portmap_req_part(r, 1) + 16, sizeof port);
  return port;
}

/* The THIRD_PARTY address (16 octets), or NULL. */
static inline const uint8_t *portmap_req_third_party(const portmap_req_t *r) {
  return r->has_third_party ? portmap_req_part(r, 2) : NULL;
}

/* The description (portmap_req_description_len() octets and a NUL), or "". */
static inline const char *portmap_req_description(const portmap_req_t *r) {
  return portmap_req_description_len(r) > 0 ? (const char *)portmap_req_part(r, 3) : "";
}

/* What a backend says of one mapping: the part of portmap_info_t that the
 * backend knows. The core fills in the rest (backend, protocol, strings,
 * time left, private flag). */
typedef struct portmap_result {
  portmap_status_t status; /* with FAILED / LOST: why */
  int gateway_result;      /* the gateway's last result code, -1 none */
  uint8_t internal_addr[16];
  uint8_t external_addr[16]; /* all zeros (of the family) when not known */
  uint16_t external_port;
  uint32_t lifetime;  /* granted, seconds */
  uint64_t expiry_ms; /* absolute on the core's clock; 0 = nothing held */
  int renewing;       /* a renewal of what is held is under way */
} portmap_result_t;

/* What start() gets. The pointers stay valid until the backend's final
 * report or detach(). */
typedef struct portmap_be_start {
  portmap_mapping_t *handle; /* for reports; opaque */
  const portmap_req_t *req;  /* the request */
  portmap_result_t result;   /* what the application sees now: the starting point */
  int ever_mapped;           /* mapped before (here or on another backend) */
} portmap_be_start_t;

typedef struct portmap_backend_ops {
  portmap_backend_t id;
  const char *name;
  /* Create the backend's state for a client. */
  portmap_status_t (*create)(portmap_core_t *core, void **state);
  /* Free everything; mappings are already gone. */
  void (*destroy)(void *state);
  /* Can this backend express the request (options, opcode)? */
  portmap_status_t (*check)(void *state, const portmap_req_t *req);
  /* Start creating (or, with PORTMAP_FLAG_DELETE, deleting) a mapping.
   * On PORTMAP_OK *mstate is the backend's per-mapping state (handed back
   * to revoke and detach); on an error nothing was reported and nothing is
   * kept. A final report from inside start() is allowed. */
  portmap_status_t (*start)(void *state, const portmap_be_start_t *start, void **mstate,
                            uint64_t now);
  /* Delete the mapping on the gateway; ends with a final report. */
  void (*revoke)(void *state, void *mstate, uint64_t now);
  /* Forget the mapping at once: cancel its timers, report nothing.
   * revoked: the application asked for a delete that could not finish
   * (a backend may still send it on its way out). */
  void (*detach)(void *state, void *mstate, int revoked);
  /* The fds to watch for reading; returns the total count. */
  size_t (*fds)(void *state, int *fds, size_t cap);
  /* Read everything pending on the backend's fds (non-blocking). */
  void (*readable)(void *state, uint64_t now);
  /* Start probing the gateway (PCP ANNOUNCE, NAT-PMP public address,
   * SSDP M-SEARCH). Returns at once; the outcome goes to
   * portmap_core_probe_result(). */
  void (*probe)(void *state, uint64_t now);
  /* A datagram that reached the shared 5350 listener (checklist B5, N6);
   * the backend checks the source itself. */
  void (*unsolicited)(void *state, const uint8_t from[16], uint16_t from_port, const uint8_t *data,
                      size_t len, uint64_t now);
  /* Start reading the gateway's mapping table; the outcome goes to
   * portmap_core_list_result(). NULL when the protocol cannot list. */
  portmap_status_t (*list)(void *state, uint64_t now);
  /* The default gateway of that family changed (checklist B6): forget that
   * family's server (socket, epoch, a probe in flight); its mappings are
   * detached already, the other family's run on. NULL: the backend serves
   * IPv4 only and the core makes it anew on an IPv4 change. */
  void (*family_changed)(void *state, int ipv6, uint64_t now);
} portmap_backend_ops_t;

extern const portmap_backend_ops_t portmap_pcp_backend;
extern const portmap_backend_ops_t portmap_natpmp_backend;
extern const portmap_backend_ops_t portmap_upnp_backend;

/* ---------- the core, as the backends call it (src/core.c) ---------- */

/* The injected clock (ms) and CSPRNG (checklist D1, E6). */
uint64_t portmap_core_now(portmap_core_t *core);
int portmap_core_random(portmap_core_t *core, void *buf, size_t len);
uint32_t portmap_core_random32(portmap_core_t *core);

/* Log and trace: queued, delivered to the application outside the lock. */
void portmap_core_log(portmap_core_t *core, portmap_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void portmap_core_trace(portmap_core_t *core, int sent, const uint8_t addr[16], uint16_t port,
                        const uint8_t *data, size_t len);

/* The client's allocator (portmap_config_t.malloc_cb...): every block a
 * backend allocates comes from it and goes back to it. Valid while the
 * client lives; a copy outlives it (the UPnP worker keeps one). */
const portmap_alloc_t *portmap_core_alloc(portmap_core_t *core);
/* 1 while portmap_client_free() destroys the backends: nothing runs after
 * it, so a backend gives back everything it can before destroy() returns. */
int portmap_core_freeing(portmap_core_t *core);

/* The client's counters of what was sent and dropped. */
portmap_stats_t *portmap_core_stats(portmap_core_t *core);
/* The client's configuration (defaults filled in; read-only). */
const portmap_config_t *portmap_core_config(portmap_core_t *core);
/* The gateway of a family: 1 and its address (and IPv6 scope) when there
 * is one, else 0. */
int portmap_core_gateway(portmap_core_t *core, int ipv6, uint8_t addr[16], unsigned *scope);
/* The configured local address (portmap_config_t.local_address): 1 and the
 * address when one was given, else 0. */
int portmap_core_local_address(portmap_core_t *core, uint8_t addr[16]);

/* The address the system sends from towards the family's gateway (checklist
 * A4), looked up once per gateway for the whole client (the probe and every
 * backend share it): 1 and the address, or 0 when there is no gateway of
 * that family or no route to it. */
int portmap_core_source_address(portmap_core_t *core, int ipv6, uint8_t addr[16]);

/* Close an fd this backend reported in fds(). Every such fd is closed
 * through here, never by close(): when the application's loop watches it
 * (fd_cb), the close waits until the loop has been told to stop, so its
 * number cannot come back for another socket while still watched. */
void portmap_core_close_fd(portmap_core_t *core, int fd);

/* Timers on the one scheduler. arm returns 0, or -1 out of memory. */
int portmap_core_arm(portmap_core_t *core, portmap_timer_t *t, uint64_t deadline);
void portmap_core_disarm(portmap_core_t *core, portmap_timer_t *t);

/* The result for a mapping, with an event (report) or without (update). */
void portmap_core_report(portmap_core_t *core, portmap_mapping_t *handle, portmap_event_t ev,
                         const portmap_result_t *result);
void portmap_core_update(portmap_core_t *core, portmap_mapping_t *handle,
                         const portmap_result_t *result);

/* A backend's probe outcome (final for this probe round). */
void portmap_core_probe_result(portmap_core_t *core, portmap_backend_t backend,
                               const portmap_probe_backend_t *result);
/* The gateway's epoch went back (reboot, new firmware): what it speaks may
 * have changed too, so the core asks again (at most once per 30 s).
 * Mappings keep their backends (each recovers on its own: E5, K2, N5). */
void portmap_core_epoch_changed(portmap_core_t *core, uint64_t now);
/* The outcome of list(): entries valid only during the call. */
void portmap_core_list_result(portmap_core_t *core, portmap_status_t status,
                              const portmap_list_entry_t *entries, size_t n);

/* For fds(): the open ones (>= 0) of all[n_all] into fds, at most cap of
 * them; returns how many are open. */
static inline size_t portmap_backend_put_fds(const int *all, size_t n_all, int *fds, size_t cap) {
  size_t n = 0;
  for (size_t i = 0; i < n_all; i++) {
    if (all[i] < 0)
      continue;
    if (n < cap)
      fds[n] = all[i];
    n++;
  }
  return n;
}

#endif
