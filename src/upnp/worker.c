/* SPDX-License-Identifier: MIT */
/*
 * The UPnP worker thread and its counted context (see worker.h): the
 * hand-off slots, their lock and condition, the result and abort pipes,
 * and the orphaning at destroy. It reads a call's inputs, writes its
 * outputs (through igd.c) and touches nothing but its own context. A
 * manual context (tests, the stateful fuzzer) has no thread: its caller
 * runs each call handed to it.
 */
#include "upnp/worker.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "platform/platform.h"
#include "upnp/igd.h"
#include "upnp/transport.h"

/* Everything the worker touches besides the calls themselves. One
 * reference is the backend state's, one the thread's; the last frees it. */
struct upnp_worker {
  pthread_mutex_t mu;
  pthread_cond_t cv; /* work for the thread; the thread's exit for destroy */
  int refs;
  int orphaned; /* the backend state is gone: send `last`, then leave */
  int exited;   /* the thread is leaving worker_main() */
  int manual;   /* no thread: portmap_upnp_worker_run() runs the call handed */
  uint32_t timeout_ms;
  upnp_call_t *todo;    /* handed over, not started (one at a time) */
  upnp_call_t *running; /* in portmap_upnp_run_call() */
  upnp_call_t *done;    /* finished, not yet collected (wnext) */
  upnp_call_t *last;    /* once orphaned: the deletes still to send (wnext) */
  int result_pipe[2];   /* [1] written by the thread, [0] one of fds() */
  int abort_pipe[2];    /* [1] written once by destroy: drop the query in progress */
  pthread_t thread;
  portmap_alloc_t alloc; /* a copy of the client's: the context may outlive it */
};

static int is_query(const upnp_call_t *k) {
  return k->kind != CALL_ADD && k->kind != CALL_ADDANY && k->kind != CALL_DELETE;
}

/* Q10: an add that succeeded for a mapping that is gone becomes the
 * delete that undoes it (the call keeps its URL, service and protocol). */
static int undo_add(upnp_call_t *k) {
  if ((k->kind != CALL_ADD && k->kind != CALL_ADDANY) || !k->cleanup || k->rc != 0)
    return 0;
  if (k->kind == CALL_ADDANY)
    copy_str(k->ext_port, sizeof k->ext_port, k->o_reserved);
  long port = strtol(k->ext_port, NULL, 10);
  if (port < 1 || port > 65535)
    return 0;
  k->kind = CALL_DELETE;
  k->rc = 0;
  return 1;
}

/* Free a call that is off the scheduler (its watchdog is not armed). */
void portmap_upnp_call_release(upnp_call_t *k) {
  if (k == NULL)
    return;
  portmap_alloc_t a = k->alloc; /* it goes with k */
  portmap_alloc_free(&a, k->descr);
  portmap_alloc_free(&a, k);
}

void portmap_upnp_call_release_chain(upnp_call_t *k) {
  while (k != NULL) {
    upnp_call_t *next = k->wnext;
    portmap_upnp_call_release(k);
    k = next;
  }
}

static void worker_free(upnp_worker_t *w) {
  portmap_upnp_call_release_chain(w->todo);
  portmap_upnp_call_release_chain(w->done);
  portmap_upnp_call_release_chain(w->last);
  portmap_plat_wake_close(w->result_pipe);
  portmap_plat_wake_close(w->abort_pipe);
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
  portmap_alloc_t a = w->alloc; /* it goes with w */
  portmap_alloc_free(&a, w);
}

/* Drop one reference; the last one frees the context. */
static void worker_unref(upnp_worker_t *w) {
  pthread_mutex_lock(&w->mu);
  int last = --w->refs == 0;
  pthread_mutex_unlock(&w->mu);
  if (last)
    worker_free(w);
}

static void *worker_main(void *arg) {
  upnp_worker_t *w = arg;
  pthread_mutex_lock(&w->mu);
  for (;;) {
    while (!w->orphaned && w->todo == NULL)
      pthread_cond_wait(&w->cv, &w->mu);
    upnp_call_t *k = w->todo;
    if (k != NULL)
      w->todo = NULL;
    else if ((k = w->last) != NULL)
      w->last = k->wnext;
    else
      break; /* orphaned, and every delete sent */
    k->wnext = NULL;
    w->running = k;
    upnp_io_t io;
    /* Q10: a late add is still heard (and undone); everything else ends
     * with the watchdog */
    io.deadline = portmap_plat_now_ms() + w->timeout_ms +
                  (k->kind == CALL_ADD || k->kind == CALL_ADDANY ? UPNP_LATE_ADD_MS : 0u);
    io.abort_fd = !w->orphaned && is_query(k) ? w->abort_pipe[0] : -1;
    io.alloc = &w->alloc;
    io.conn_fd = -1;
    pthread_mutex_unlock(&w->mu);
    portmap_upnp_run_call(k, &io);
    pthread_mutex_lock(&w->mu);
    w->running = NULL;
    if (!w->orphaned) {
      k->wnext = w->done;
      w->done = k;
      portmap_plat_wake_signal(w->result_pipe[1]); /* a full pipe is already readable */
    } else if (undo_add(k)) {
      k->wnext = w->last; /* nobody else will hear of it: undo it next */
      w->last = k;
    } else {
      portmap_upnp_call_release(k);
    }
  }
  w->exited = 1;
  pthread_cond_broadcast(&w->cv);
  int last = --w->refs == 0;
  pthread_mutex_unlock(&w->mu);
  if (last)
    worker_free(w);
  return NULL;
}

/* ---------- from the scheduler's side ---------- */

static upnp_worker_t *worker_new(uint32_t timeout_ms, const portmap_alloc_t *alloc, int manual) {
  upnp_worker_t *w = portmap_alloc_calloc(alloc, 1, sizeof *w);
  if (w == NULL)
    return NULL;
  if (alloc != NULL)
    w->alloc = *alloc;
  w->result_pipe[0] = w->result_pipe[1] = w->abort_pipe[0] = w->abort_pipe[1] = -1;
  w->refs = manual ? 1 : 2; /* a manual context has no thread to hold one */
  w->manual = manual;
  w->timeout_ms = timeout_ms;
  pthread_condattr_t ca;
  if (pthread_condattr_init(&ca) != 0) {
    portmap_alloc_free(alloc, w);
    return NULL;
  }
  int ok =
      pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 && pthread_cond_init(&w->cv, &ca) == 0;
  pthread_condattr_destroy(&ca);
  if (!ok) {
    portmap_alloc_free(alloc, w);
    return NULL;
  }
  if (pthread_mutex_init(&w->mu, NULL) != 0) {
    pthread_cond_destroy(&w->cv);
    portmap_alloc_free(alloc, w);
    return NULL;
  }
  if (portmap_plat_wake_open(w->result_pipe) != 0 || portmap_plat_wake_open(w->abort_pipe) != 0 ||
      (!manual && pthread_create(&w->thread, NULL, worker_main, w) != 0)) {
    worker_free(w); /* closes only the pipes it finds open */
    return NULL;
  }
  return w;
}

upnp_worker_t *portmap_upnp_worker_new(uint32_t timeout_ms, const portmap_alloc_t *alloc) {
  return worker_new(timeout_ms, alloc, 0);
}

upnp_worker_t *portmap_upnp_worker_new_manual(uint32_t timeout_ms) {
  return worker_new(timeout_ms, NULL, 1);
}

const upnp_call_t *portmap_upnp_worker_pending(upnp_worker_t *w) {
  pthread_mutex_lock(&w->mu);
  const upnp_call_t *k = w->manual ? w->todo : NULL;
  pthread_mutex_unlock(&w->mu);
  return k;
}

int portmap_upnp_worker_run(upnp_worker_t *w, const upnp_io_t *io) {
  pthread_mutex_lock(&w->mu);
  upnp_call_t *k = w->manual && !w->orphaned ? w->todo : NULL;
  w->todo = NULL;
  if (k != NULL)
    w->running = k;
  pthread_mutex_unlock(&w->mu);
  if (k == NULL)
    return -1;
  portmap_upnp_run_call(k, io); /* as worker_main() runs it */
  pthread_mutex_lock(&w->mu);
  w->running = NULL;
  k->wnext = w->done;
  w->done = k;
  portmap_plat_wake_signal(w->result_pipe[1]);
  pthread_mutex_unlock(&w->mu);
  return 0;
}

int portmap_upnp_worker_fd(const upnp_worker_t *w) {
  return w->result_pipe[0];
}

void portmap_upnp_worker_hand(upnp_worker_t *w, upnp_call_t *k) {
  pthread_mutex_lock(&w->mu);
  w->todo = k;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

upnp_call_t *portmap_upnp_worker_collect(upnp_worker_t *w) {
  portmap_plat_wake_drain(w->result_pipe[0]);
  pthread_mutex_lock(&w->mu);
  upnp_call_t *done = w->done;
  w->done = NULL;
  pthread_mutex_unlock(&w->mu);
  return done;
}

void portmap_upnp_jobs_init(upnp_jobs_t *j) {
  j->head = NULL;
  j->tail = &j->head;
  j->n = 0;
  j->dropped = 0;
}

void portmap_upnp_jobs_keep(upnp_jobs_t *j, upnp_call_t *k, int keep) {
  portmap_dlink_init(&k->qlink);
  k->wnext = NULL;
  k->queued = 0;
  if (keep && j->n >= UPNP_ORPHAN_JOBS_MAX) {
    j->dropped++;
    keep = 0;
  }
  if (!keep) {
    portmap_upnp_call_release(k);
    return;
  }
  *j->tail = k;
  j->tail = &k->wnext;
  j->n++;
}

int portmap_upnp_worker_orphan(upnp_worker_t *w, upnp_jobs_t *j, int join_idle) {
  pthread_mutex_lock(&w->mu);
  upnp_call_t *k = w->todo;
  w->todo = NULL;
  if (k != NULL)
    portmap_upnp_jobs_keep(j, k, k->purpose == FOR_CLEANUP && k->kind == CALL_DELETE);
  k = w->done;
  w->done = NULL;
  while (k != NULL) {
    upnp_call_t *next = k->wnext;
    portmap_upnp_jobs_keep(j, k, undo_add(k)); /* a late add nobody collected */
    k = next;
  }
  w->last = j->head;
  w->orphaned = 1;
  portmap_plat_wake_signal(w->abort_pipe[1]); /* ends a query at once */
  pthread_cond_broadcast(&w->cv);
  int busy = j->head != NULL || (w->running != NULL && !is_query(w->running));
  /* Never wait for the thread: destroy runs on the scheduler's thread,
   * inside portmap_process() when a gateway change replaces the backend.
   * The context is counted, so a detached thread that is still leaving
   * frees it itself. Joined only if it is already gone, or, when the
   * client is being freed (join_idle), if it has nothing left to send: it
   * leaves at once (a query is aborted), and its blocks go back to the
   * application's allocator before portmap_client_free() returns. */
  int exited = w->exited;
  int manual = w->manual;
  pthread_mutex_unlock(&w->mu);
  if (!manual && (exited || (join_idle && !busy)))
    pthread_join(w->thread, NULL); /* past its last lock, or about to leave */
  else if (!manual)
    pthread_detach(w->thread); /* (manual: no thread; the jobs go with the context) */
  worker_unref(w);
  return busy;
}
