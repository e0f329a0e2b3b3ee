/* SPDX-License-Identifier: MIT */
/*
 * portmap-example-poll: libportmap in a plain poll() loop that knows only
 * what the event-loop callbacks tell it.
 *
 * fd_cb says "watch this fd" or "stop watching it" (the library opens
 * sockets lazily, on the first mapping, and replaces them when the gateway
 * changes); timer_cb says when portmap_process() is next due. The loop never
 * asks portmap_fds() or portmap_timeout_ms(): it keeps its own table of
 * fds and its own deadline, the way a loop shared with the rest of an
 * application (sockets of a torrent client, of a VoIP stack...) does.
 *
 *   portmap-example-poll [--gateway ADDR] [--port N] PORT/PROTO
 *
 * Maps PORT, revokes the mapping once it is mapped, and exits 0 after
 * "deleted" (1 after "failed", 2 on bad usage).
 */
#include <poll.h>

#include "common.h"

#define MAX_FDS 32 /* a client watches about 8 */

typedef struct loop {
  struct pollfd fds[MAX_FDS];
  nfds_t n_fds;
  int64_t deadline_ms; /* when portmap_process() is due (example_now_ms()); -1 none */
  int exit_code;       /* -1 until the mapping's final event */
} loop_t;

/* fd_cb: may run inside portmap_client_new(), portmap_map(), portmap_process()
 * or any other call, always on this (the loop's) thread. */
static void on_fd(int fd, int events, void *user) {
  loop_t *l = user;
  nfds_t i = 0;
  while (i < l->n_fds && l->fds[i].fd != fd)
    i++;
  if (events & PORTMAP_FD_READ) {
    if (i == l->n_fds && l->n_fds < MAX_FDS) {
      l->fds[l->n_fds].fd = fd;
      l->fds[l->n_fds].events = POLLIN;
      l->n_fds++;
    }
  } else if (i < l->n_fds) {
    /* Stop watching. The fd is still open now; the library closes it after. */
    l->fds[i] = l->fds[--l->n_fds];
  }
}

/* timer_cb: each call replaces the previous deadline (-1: none). */
static void on_timer(int timeout_ms, void *user) {
  loop_t *l = user;
  l->deadline_ms = timeout_ms < 0 ? -1 : (int64_t)(example_now_ms() + (uint64_t)timeout_ms);
}

static void on_event(portmap_mapping_t *m, portmap_event_t event, const portmap_info_t *info,
                     void *user) {
  loop_t *l = user;
  example_print(event, info);
  if (event == PORTMAP_EVENT_MAPPED)
    portmap_mapping_revoke(m); /* allowed from the callback; DELETED follows */
  else if (event == PORTMAP_EVENT_DELETED)
    l->exit_code = EXAMPLE_EXIT_DELETED;
  else if (event == PORTMAP_EVENT_FAILED)
    l->exit_code = EXAMPLE_EXIT_FAILED;
}

int main(int argc, char **argv) {
  example_args_t args;
  if (example_parse_args(argc, argv, &args) != 0)
    return EXAMPLE_EXIT_USAGE;

  loop_t l = {.n_fds = 0, .deadline_ms = -1, .exit_code = -1};
  portmap_config_t cfg;
  example_config(&args, &cfg);
  cfg.fd_cb = on_fd;
  cfg.fd_user = &l;
  cfg.timer_cb = on_timer;
  cfg.timer_user = &l;

  portmap_client_t *client = NULL;
  portmap_status_t st = portmap_client_new(&cfg, &client); /* fd_cb: the wake pipe */
  if (st != PORTMAP_OK)
    return example_fail("portmap_client_new", st);

  portmap_request_t req;
  example_request(&args, &req);
  st = portmap_map(client, &req, on_event, &l, NULL); /* fd_cb: new sockets; timer_cb */
  if (st != PORTMAP_OK) {
    portmap_client_free(client);
    return example_fail("portmap_map", st);
  }

  /* The mapping always ends (request_timeout_ms, see common.h); the count
   * only bounds the loop should something go wrong. */
  for (int turns = 0; l.exit_code < 0 && turns < 100000; turns++) {
    int wait = -1;
    if (l.deadline_ms >= 0) {
      int64_t left = l.deadline_ms - (int64_t)example_now_ms();
      wait = left < 0 ? 0 : (int)left;
    }
    int n = poll(l.fds, l.n_fds, wait);
    int due = l.deadline_ms >= 0 && (int64_t)example_now_ms() >= l.deadline_ms;
    /* The deadline stands until timer_cb replaces it (after running what
     * was due, the library tells the next one; if it is still due, we go
     * round again at once). */
    if (n > 0 || due)
      portmap_process(client); /* reads, runs due timers, delivers events */
  }

  /* Nothing is left to delete: free returns at once (fd_cb hears the fds go). */
  portmap_client_free(client);
  return l.exit_code < 0 ? EXAMPLE_EXIT_FAILED : l.exit_code;
}
