/*
 * The backend vtable. Every call returns at once (no blocking I/O on the
 * scheduler's thread) and takes `now` from the client's injected clock.
 * Timers go on the client's one scheduler (portmap_client_sched()).
 * A backend reports progress with portmap_mapping_emit(); after it emits
 * a final event (FAILED / DELETED) it must not touch the mapping again.
 */
#ifndef PORTMAP_BACKEND_H
#define PORTMAP_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include <portmap/portmap.h>

struct portmap_mapping;

typedef struct portmap_backend_ops {
  portmap_backend_t id;
  const char *name;
  /* Create the backend's state for a client. */
  portmap_status_t (*create)(portmap_client_t *client, void **state);
  /* Free everything; mappings are already gone. */
  void (*destroy)(void *state);
  /* Can this backend express the request (options, opcode)? */
  portmap_status_t (*check)(void *state, const struct portmap_mapping *m);
  /* Start creating (or, with PORTMAP_FLAG_DELETE, deleting) a mapping. */
  portmap_status_t (*start)(void *state, struct portmap_mapping *m, uint64_t now);
  /* Delete the mapping on the gateway; ends with a final event. */
  void (*revoke)(void *state, struct portmap_mapping *m, uint64_t now);
  /* Forget the mapping at once: cancel its timers, send nothing. */
  void (*detach)(void *state, struct portmap_mapping *m);
  /* The fds to watch for reading; returns the total count. */
  size_t (*fds)(void *state, int *fds, size_t cap);
  /* Read everything pending on the backend's fds (non-blocking). */
  void (*readable)(void *state, uint64_t now);
  /* Start probing the gateway (PCP ANNOUNCE, NAT-PMP public address,
   * SSDP M-SEARCH). Returns at once; the outcome goes to
   * portmap_probe_report(). */
  void (*probe)(void *state, uint64_t now);
  /* A datagram that reached the shared 5350 listener (checklist B5, N6);
   * the backend checks the source itself. */
  void (*unsolicited)(void *state, const uint8_t from[16], uint16_t from_port, const uint8_t *data,
                      size_t len, uint64_t now);
  /* Start reading the gateway's mapping table; the outcome goes to
   * portmap_list_report(). NULL when the protocol cannot list. */
  portmap_status_t (*list)(void *state, uint64_t now);
} portmap_backend_ops_t;

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

extern const portmap_backend_ops_t portmap_pcp_backend;
extern const portmap_backend_ops_t portmap_natpmp_backend;
extern const portmap_backend_ops_t portmap_upnp_backend;

#endif
