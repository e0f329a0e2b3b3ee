/* SPDX-License-Identifier: MIT */
/*
 * The UPnP worker thread: it runs the blocking calls (call.h) one at a
 * time, handed over by the scheduler's thread, and posts each finished one
 * back through a pipe. Its context (upnp_worker_t: the hand-off slots,
 * their lock, the pipes) is counted: the backend holds one reference, the
 * thread the other, and the last one frees it. The worker never touches
 * the client, a mapping or the scheduler; the backend never waits for it:
 * at destroy it orphans the context, leaves it the deletes that must still
 * reach the gateway (Q10) and goes.
 */
#ifndef PORTMAP_UPNP_WORKER_H
#define PORTMAP_UPNP_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "upnp/call.h"
#include "upnp/transport.h"

#define UPNP_ORPHAN_JOBS_MAX 16u /* deletes a destroyed client leaves to the worker */
#define UPNP_LATE_ADD_MS 5000u   /* an add may answer this much past the watchdog */

typedef struct upnp_worker upnp_worker_t;

/* Start the thread with its pipes; each call may take timeout_ms (an add
 * UPNP_LATE_ADD_MS more, so that a late answer is still heard, Q10). The
 * context and the replies' bodies come from alloc (copied: NULL is the
 * system's). NULL when a thread, pipe, lock or memory is missing. */
upnp_worker_t *portmap_upnp_worker_new(uint32_t timeout_ms, const portmap_alloc_t *alloc);

/* For tests and the stateful fuzzer: a context with the same pipes and
 * hand-off but no thread. A call handed to it waits until
 * portmap_upnp_worker_run() runs it on the caller's thread; it then comes
 * back through the result pipe as from the thread. Orphaning it sends
 * nothing: the jobs are freed with it. */
upnp_worker_t *portmap_upnp_worker_new_manual(uint32_t timeout_ms);

/* A manual context's call handed and not yet run, or NULL. */
const upnp_call_t *portmap_upnp_worker_pending(upnp_worker_t *w);

/* Run a manual context's pending call with the bounds io (its conn_fd the
 * connection to use) and post it back. 0, or -1 when none is pending. */
int portmap_upnp_worker_run(upnp_worker_t *w, const upnp_io_t *io);

/* The read end of the result pipe: readable when calls came back. */
int portmap_upnp_worker_fd(const upnp_worker_t *w);

/* Hand k to the thread. One call at a time: the previous one must have
 * come back (portmap_upnp_worker_collect()). */
void portmap_upnp_worker_hand(upnp_worker_t *w, upnp_call_t *k);

/* Empty the result pipe and take the calls that came back (a wnext
 * chain, NULL if none). */
upnp_call_t *portmap_upnp_worker_collect(upnp_worker_t *w);

/* What a destroyed backend leaves to its worker: a wnext chain of at most
 * UPNP_ORPHAN_JOBS_MAX calls; calls that did not fit are counted. */
typedef struct upnp_jobs {
  upnp_call_t *head, **tail;
  size_t n, dropped;
} upnp_jobs_t;

void portmap_upnp_jobs_init(upnp_jobs_t *j);

/* Keep k (off the scheduler: its watchdog is not armed) for the orphaned
 * worker when keep is set and there is room, else free it. */
void portmap_upnp_jobs_keep(upnp_jobs_t *j, upnp_call_t *k, int keep);

/* destroy's side, never waiting for the network: the call not started
 * goes with the jobs if it is a cleanup delete, a late add nobody
 * collected becomes the delete that undoes it, a query in progress is
 * aborted; the worker sends the jobs and leaves. Never waits for the
 * network: the thread is joined if it has already left, or with join_idle
 * (the client is being freed) if it has no work left (it leaves at once),
 * else detached (it may outlive the client by the moment it takes to
 * notice). w is the caller's no more. Returns 1 when the worker still has
 * work of its own (the jobs, or an add or delete in progress). */
int portmap_upnp_worker_orphan(upnp_worker_t *w, upnp_jobs_t *j, int join_idle);

#endif
