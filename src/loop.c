/* SPDX-License-Identifier: MIT */
/*
 * The event loop, as the application drives it (the c-ares / curl-multi
 * pattern): the fds to watch, the next deadline, and process; the
 * event-loop contract (fd_cb and timer_cb told of every change, on the
 * loop's thread, at the unlock that ends each call); and the own-thread
 * mode, built on those same calls and the wake pipe.
 */
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "platform/platform.h"

#define PORTMAP_MAX_FDS 16 /* per backend */

/* Under the lock, as the drain in process_locked(): one signal until it is
 * drained wakes the loop as well as many, and costs one write() instead of
 * one per call (10,000 portmap_map() calls made 10,000), and the drain's
 * read() is saved when nothing was written. */
void portmap_client_wake(portmap_client_t *c) {
  if (c->wake_written)
    return;
  c->wake_written = 1;
  portmap_plat_wake_signal(c->wake_pipe[1]); /* a full pipe already wakes the thread */
}

static size_t fds_locked(portmap_client_t *c, int *fds, size_t cap) {
  size_t total = 0;
  if (c->closing)
    return 0;
  if (c->wake_pipe[0] >= 0) {
    if (total < cap)
      fds[total] = c->wake_pipe[0];
    total++;
  }
  for (int i = 0; i < 2; i++) {
    if (c->listen_fd[i] < 0)
      continue;
    if (total < cap)
      fds[total] = c->listen_fd[i];
    total++;
  }
  for (int i = 0; i < PORTMAP_MAX_BACKENDS; i++) {
    if (c->be_ops[i] == NULL)
      continue;
    int tmp[PORTMAP_MAX_FDS];
    size_t n = c->be_ops[i]->fds(c->be_state[i], tmp, PORTMAP_MAX_FDS);
    for (size_t k = 0; k < n && k < PORTMAP_MAX_FDS; k++) {
      if (total < cap)
        fds[total] = tmp[k];
      total++;
    }
  }
  return total;
}

size_t portmap_fds(portmap_client_t *client, int *fds, size_t cap) {
  if (client == NULL || (fds == NULL && cap > 0))
    return 0;
  pthread_mutex_lock(&client->mu);
  size_t n = fds_locked(client, fds, cap);
  portmap_client_unlock(client);
  return n;
}

/* The next deadline on the client's clock; 0 when something is due now,
 * PORTMAP_SCHED_NONE when nothing is. */
static uint64_t deadline_locked(portmap_client_t *c) {
  if (c->closing)
    return PORTMAP_SCHED_NONE;
  if (c->ev_head != NULL || portmap_core_unsettled(c))
    return 0;
  return portmap_sched_next(&c->sched);
}

static int relative_ms(portmap_client_t *c, uint64_t deadline) {
  if (deadline == PORTMAP_SCHED_NONE)
    return -1;
  uint64_t now = portmap_client_now(c);
  if (deadline <= now)
    return 0;
  uint64_t d = deadline - now;
  return d > INT32_MAX ? INT32_MAX : (int)d;
}

static int timeout_locked(portmap_client_t *c) {
  return relative_ms(c, deadline_locked(c));
}

int portmap_timeout_ms(portmap_client_t *client) {
  if (client == NULL)
    return -1;
  pthread_mutex_lock(&client->mu);
  int t = timeout_locked(client);
  portmap_client_unlock(client);
  return t;
}

static void process_locked(portmap_client_t *c) {
  if (c->wake_written) {
    c->wake_written = 0;
    portmap_plat_wake_drain(c->wake_pipe[0]);
  }
  uint64_t now = portmap_client_now(c);
  portmap_listen_read(c, now);
  for (int i = 0; i < PORTMAP_MAX_BACKENDS; i++)
    if (c->be_ops[i] != NULL)
      c->be_ops[i]->readable(c->be_state[i], now);
  portmap_sched_run(&c->sched, portmap_client_now(c));
  /* every handler has returned: now the decisions, then the callbacks */
  portmap_core_settle(c);
  portmap_client_shutdown_check(c);
  portmap_dispatch_events(c);
}

portmap_status_t portmap_process(portmap_client_t *client) {
  if (client == NULL)
    return PORTMAP_ERR_INVALID;
  pthread_mutex_lock(&client->mu);
  portmap_status_t st = PORTMAP_OK;
  if (portmap_in_own_callback(client)) {
    st = PORTMAP_ERR_RECURSIVE;
  } else {
    client->loop_thread = pthread_self();
    process_locked(client);
    /* the deadline is told again after every process, changed or not: a
     * loop whose one-shot timer fired a little early re-arms it (curl does
     * the same after a timeout) */
    client->timer_told = 0;
  }
  portmap_client_unlock(client);
  return st;
}

/* One bounded wait on the client's fds (and the wake pipe when given).
 * Real time bounds the wait even when the client's clock is injected. */
void portmap_wait_once(portmap_client_t *c, uint64_t max_ms) {
  int fds[PORTMAP_MAX_WATCHED];
  struct pollfd pfd[PORTMAP_MAX_WATCHED];
  size_t n = portmap_fds(c, fds, PORTMAP_MAX_WATCHED);
  if (n > PORTMAP_MAX_WATCHED)
    n = PORTMAP_MAX_WATCHED;
  for (size_t i = 0; i < n; i++) {
    pfd[i].fd = fds[i];
    pfd[i].events = POLLIN;
    pfd[i].revents = 0;
  }
  int t = portmap_timeout_ms(c);
  if (max_ms > INT32_MAX)
    max_ms = INT32_MAX; /* never a negative (endless) poll timeout */
  if (t < 0 || (uint64_t)t > max_ms)
    t = (int)max_ms;
  (void)poll(pfd, (nfds_t)n, t); /* the wake pipe is drained by portmap_process() */
}

static void *thread_main(void *arg) {
  portmap_client_t *c = arg;
  for (;;) {
    pthread_mutex_lock(&c->mu);
    int stop = c->thread_stop;
    portmap_client_unlock(c);
    if (stop)
      break;
    portmap_wait_once(c, 1000);
    portmap_process(c);
  }
  return NULL;
}

portmap_status_t portmap_thread_start(portmap_client_t *client) {
  if (client == NULL)
    return PORTMAP_ERR_INVALID;
  pthread_mutex_lock(&client->mu);
  portmap_status_t st = PORTMAP_OK;
  if (client->thread_running || client->freeing || client->cfg.fd_cb != NULL ||
      client->cfg.timer_cb != NULL) {
    /* running already, being freed, or (with callbacks) the application's loop's */
    st = PORTMAP_ERR_STATE;
  } else {
    client->thread_stop = 0;
    if (pthread_create(&client->thread, NULL, thread_main, client) != 0)
      st = PORTMAP_ERR_SYSTEM;
    else
      client->thread_running = 1;
  }
  portmap_client_unlock(client);
  return st;
}

portmap_status_t portmap_thread_stop(portmap_client_t *client) {
  if (client == NULL)
    return PORTMAP_ERR_INVALID;
  pthread_mutex_lock(&client->mu);
  if (!client->thread_running || client->thread_stop) {
    portmap_client_unlock(client); /* not running, or another caller is stopping it */
    return PORTMAP_ERR_STATE;
  }
  if (portmap_in_own_callback(client) || pthread_equal(client->thread, pthread_self())) {
    portmap_client_unlock(client);
    return PORTMAP_ERR_RECURSIVE;
  }
  client->thread_stop = 1;
  portmap_client_wake(client);
  portmap_client_unlock(client);
  pthread_join(client->thread, NULL);
  pthread_mutex_lock(&client->mu);
  client->thread_running = 0;
  portmap_client_unlock(client);
  return PORTMAP_OK;
}

uint64_t portmap_real_ms(void) {
  return portmap_plat_now_ms();
}

/* ---------- the event-loop contract ---------- */

typedef struct loop_news {
  struct {
    int fd;
    int events;
  } fd[2 * PORTMAP_MAX_WATCHED];
  size_t n_fd;
  int timer; /* timer_cb must hear timeout_ms */
  int timeout_ms;
} loop_news_t;

static int watched_has(const portmap_watched_t *w, size_t n, const portmap_watched_t *x) {
  for (size_t i = 0; i < n; i++)
    if (w[i].fd == x->fd && w[i].ident == x->ident)
      return 1;
  return 0;
}

/* What the loop has not heard yet, taken as told. Under the lock; removals
 * first, so that a number reused for another socket is dropped, then
 * added again. */
static void loop_news_take(portmap_client_t *c, loop_news_t *news) {
  news->n_fd = 0;
  news->timer = 0;
  if (c->cfg.fd_cb != NULL) {
    int fds[PORTMAP_MAX_WATCHED];
    size_t n = fds_locked(c, fds, PORTMAP_MAX_WATCHED);
    if (n > PORTMAP_MAX_WATCHED) {
      portmap_log(c, PORTMAP_LOG_ERROR, "%zu fds to watch; only %d are told", n,
                  PORTMAP_MAX_WATCHED);
      n = PORTMAP_MAX_WATCHED;
    }
    /* A watched number is still the fd the loop was told of: backends close
     * what they report through portmap_core_close_fd(), which keeps the
     * number until the loop has let go. So only a number not watched yet
     * costs an fstat(), not every unlock. */
    portmap_watched_t now[PORTMAP_MAX_WATCHED];
    for (size_t i = 0; i < n; i++) {
      now[i].fd = fds[i];
      now[i].ident = 0;
      for (size_t k = 0; k < c->n_watched && now[i].ident == 0; k++)
        if (c->watched[k].fd == fds[i])
          now[i].ident = c->watched[k].ident;
      if (now[i].ident == 0)
        now[i].ident = portmap_plat_fd_identity(fds[i]);
    }
    for (size_t i = 0; i < c->n_watched; i++) {
      if (!watched_has(now, n, &c->watched[i])) {
        news->fd[news->n_fd].fd = c->watched[i].fd;
        news->fd[news->n_fd].events = 0;
        news->n_fd++;
      }
    }
    for (size_t i = 0; i < n; i++) {
      if (!watched_has(c->watched, c->n_watched, &now[i])) {
        news->fd[news->n_fd].fd = now[i].fd;
        news->fd[news->n_fd].events = PORTMAP_FD_READ;
        news->n_fd++;
      }
    }
    memcpy(c->watched, now, n * sizeof now[0]);
    c->n_watched = n;
  }
  if (c->cfg.timer_cb != NULL) {
    uint64_t deadline = deadline_locked(c);
    if (!c->timer_told || deadline != c->timer_deadline) {
      c->timer_told = 1;
      c->timer_deadline = deadline;
      news->timer = 1;
      news->timeout_ms = relative_ms(c, deadline);
    }
  }
}

/* Sinks (log, trace, fd_cb, timer_cb) run outside the lock; the threads
 * inside one are kept per client, so that a call such a sink makes on its
 * own thread is told apart from another thread's (portmap_in_own_callback). */
void portmap_sink_enter(portmap_client_t *c) {
  pthread_t self = pthread_self();
  portmap_sink_t *free_slot = NULL;
  for (size_t i = 0; i < PORTMAP_MAX_SINK_THREADS; i++) {
    portmap_sink_t *s = &c->sinks[i];
    if (s->depth > 0 && pthread_equal(s->thread, self)) {
      s->depth++;
      return;
    }
    if (s->depth == 0 && free_slot == NULL)
      free_slot = s;
  }
  if (free_slot == NULL) {
    c->sinks_untracked++; /* more threads in sinks at once than slots */
    return;
  }
  free_slot->thread = self;
  free_slot->depth = 1;
}

void portmap_sink_leave(portmap_client_t *c) {
  pthread_t self = pthread_self();
  for (size_t i = 0; i < PORTMAP_MAX_SINK_THREADS; i++) {
    portmap_sink_t *s = &c->sinks[i];
    if (s->depth > 0 && pthread_equal(s->thread, self)) {
      s->depth--;
      return;
    }
  }
  if (c->sinks_untracked > 0)
    c->sinks_untracked--;
}

int portmap_sinks_busy(const portmap_client_t *c) {
  for (size_t i = 0; i < PORTMAP_MAX_SINK_THREADS; i++)
    if (c->sinks[i].depth > 0)
      return 1;
  return c->sinks_untracked > 0;
}

int portmap_in_sink(const portmap_client_t *c) {
  pthread_t self = pthread_self();
  for (size_t i = 0; i < PORTMAP_MAX_SINK_THREADS; i++)
    if (c->sinks[i].depth > 0 && pthread_equal(c->sinks[i].thread, self))
      return 1;
  return 0;
}

/* Close what backends gave up once the loop has heard it is not watched. */
static void close_deferred(portmap_client_t *c) {
  size_t keep = 0;
  for (size_t i = 0; i < c->n_deferred; i++) {
    int fd = c->deferred[i];
    portmap_watched_t x = {fd, portmap_plat_fd_identity(fd)};
    if (watched_has(c->watched, c->n_watched, &x))
      c->deferred[keep++] = fd; /* the loop has not heard yet */
    else
      portmap_plat_close(fd);
  }
  c->n_deferred = keep;
}

void portmap_core_close_fd(portmap_core_t *core, int fd) {
  portmap_client_t *c = core->client;
  if (fd < 0)
    return;
  portmap_watched_t x = {fd, portmap_plat_fd_identity(fd)};
  if (c->cfg.fd_cb == NULL || !watched_has(c->watched, c->n_watched, &x)) {
    portmap_plat_close(fd);
    return;
  }
  if (c->n_deferred == c->cap_deferred) {
    size_t cap = c->cap_deferred ? 2 * c->cap_deferred : 8;
    int *d = portmap_alloc_realloc(&c->alloc, c->deferred, cap * sizeof *d);
    if (d == NULL) {
      portmap_plat_close(fd); /* out of memory: the loop hears of it after the close */
      return;
    }
    c->deferred = d;
    c->cap_deferred = cap;
  }
  c->deferred[c->n_deferred++] = fd; /* the number stays ours until the loop has let go */
  portmap_client_wake(c);
}

void portmap_client_unlock(portmap_client_t *c) {
  loop_news_t news;
  news.n_fd = 0;
  news.timer = 0;
  int loop_cb = c->cfg.fd_cb != NULL || c->cfg.timer_cb != NULL;
  int on_loop = loop_cb && pthread_equal(c->loop_thread, pthread_self());
  if (on_loop)
    loop_news_take(c, &news);
  else if (loop_cb)
    portmap_client_wake(c); /* the loop's thread looks at once */
  int close_after = on_loop && c->n_deferred > 0;
  struct portmap_logrec *logs = portmap_log_take(c);
  /* While a sink runs, a call it makes that would free the client (or
   * block) is refused as recursive: the client must outlive the sink. */
  int sinks = logs != NULL || news.n_fd > 0 || news.timer;
  if (sinks)
    portmap_sink_enter(c);
  pthread_mutex_unlock(&c->mu);
  portmap_log_deliver(c, logs);
  for (size_t i = 0; i < news.n_fd; i++)
    c->cfg.fd_cb(news.fd[i].fd, news.fd[i].events, c->cfg.fd_user);
  if (news.timer)
    c->cfg.timer_cb(news.timeout_ms, c->cfg.timer_user);
  if (sinks || close_after) {
    pthread_mutex_lock(&c->mu);
    if (sinks) {
      portmap_sink_leave(c);
      pthread_cond_broadcast(&c->cb_cv); /* portmap_client_free may wait for it */
    }
    if (close_after)
      close_deferred(c);
    pthread_mutex_unlock(&c->mu);
  }
}

void portmap_loop_fini(portmap_client_t *c) {
  for (size_t i = 0; i < c->n_deferred; i++)
    portmap_plat_close(c->deferred[i]);
  portmap_alloc_free(&c->alloc, c->deferred);
  c->deferred = NULL;
  c->n_deferred = c->cap_deferred = 0;
}
