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
} portmap_backend_ops_t;

extern const portmap_backend_ops_t portmap_pcp_backend;

#endif
