/*
 * The event loop, as the application drives it (the c-ares / curl-multi
 * pattern): the fds to watch, the next deadline, and process; and the
 * own-thread mode, built on those same calls plus a wake pipe.
 */
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "platform/platform.h"

#define PORTMAP_MAX_FDS 16

void portmap_client_wake(portmap_client_t *c) {
  portmap_plat_wake_signal(c->wake_pipe[1]); /* a full pipe already wakes the thread */
}

static size_t fds_locked(portmap_client_t *c, int *fds, size_t cap) {
  size_t total = 0;
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

static int timeout_locked(portmap_client_t *c) {
  if (c->ev_head != NULL || portmap_core_unsettled(c))
    return 0;
  uint64_t next = portmap_sched_next(&c->sched);
  if (next == PORTMAP_SCHED_NONE)
    return -1;
  uint64_t now = portmap_client_now(c);
  if (next <= now)
    return 0;
  uint64_t d = next - now;
  return d > INT32_MAX ? INT32_MAX : (int)d;
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
  uint64_t now = portmap_client_now(c);
  portmap_listen_read(c, now);
  for (int i = 0; i < PORTMAP_MAX_BACKENDS; i++)
    if (c->be_ops[i] != NULL)
      c->be_ops[i]->readable(c->be_state[i], now);
  portmap_sched_run(&c->sched, portmap_client_now(c));
  /* every handler has returned: now the decisions, then the callbacks */
  portmap_core_settle(c);
  portmap_dispatch_events(c);
}

portmap_status_t portmap_process(portmap_client_t *client) {
  if (client == NULL)
    return PORTMAP_ERR_INVALID;
  pthread_mutex_lock(&client->mu);
  portmap_status_t st = PORTMAP_OK;
  if (portmap_in_own_callback(client))
    st = PORTMAP_ERR_RECURSIVE;
  else
    process_locked(client);
  portmap_client_unlock(client);
  return st;
}

/* One bounded wait on the client's fds (and the wake pipe when given).
 * Real time bounds the wait even when the client's clock is injected. */
void portmap_wait_once(portmap_client_t *c, int max_ms, int wake_fd) {
  int fds[PORTMAP_MAX_FDS];
  struct pollfd pfd[PORTMAP_MAX_FDS + 1];
  size_t n = portmap_fds(c, fds, PORTMAP_MAX_FDS);
  if (n > PORTMAP_MAX_FDS)
    n = PORTMAP_MAX_FDS;
  nfds_t k = 0;
  for (size_t i = 0; i < n; i++) {
    pfd[k].fd = fds[i];
    pfd[k].events = POLLIN;
    pfd[k].revents = 0;
    k++;
  }
  if (wake_fd >= 0) {
    pfd[k].fd = wake_fd;
    pfd[k].events = POLLIN;
    pfd[k].revents = 0;
    k++;
  }
  int t = portmap_timeout_ms(c);
  if (t < 0 || t > max_ms)
    t = max_ms;
  if (poll(pfd, k, t) > 0 && wake_fd >= 0 && (pfd[k - 1].revents & POLLIN))
    portmap_plat_wake_drain(wake_fd);
}

static void *thread_main(void *arg) {
  portmap_client_t *c = arg;
  for (;;) {
    pthread_mutex_lock(&c->mu);
    int stop = c->thread_stop;
    portmap_client_unlock(c);
    if (stop)
      break;
    portmap_wait_once(c, 1000, c->wake_pipe[0]);
    portmap_process(c);
  }
  return NULL;
}

static int make_wake_pipe(portmap_client_t *c) {
  if (c->wake_pipe[0] >= 0)
    return 0;
  return portmap_plat_wake_open(c->wake_pipe);
}

portmap_status_t portmap_thread_start(portmap_client_t *client) {
  if (client == NULL)
    return PORTMAP_ERR_INVALID;
  pthread_mutex_lock(&client->mu);
  portmap_status_t st = PORTMAP_OK;
  if (client->thread_running) {
    st = PORTMAP_ERR_STATE;
  } else if (make_wake_pipe(client) != 0) {
    st = PORTMAP_ERR_SYSTEM;
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
  if (!client->thread_running) {
    portmap_client_unlock(client);
    return PORTMAP_ERR_STATE;
  }
  if (portmap_in_own_callback(client)) {
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
