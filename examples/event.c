/* SPDX-License-Identifier: MIT */
/*
 * portmap-example-event: libportmap on a libevent loop, one persistent read
 * event per fd the library asks to have watched and one timer event for
 * its deadline.
 *
 * fd_cb(fd, PORTMAP_FD_READ) adds an EV_READ|EV_PERSIST event on fd;
 * fd_cb(fd, 0) deletes and frees it (the fd is still open then; the
 * library closes it only after this call). timer_cb(ms) re-adds the timer
 * event, or deletes it for -1. Both callbacks run on the loop's thread,
 * possibly from inside portmap_client_new(), portmap_map() or
 * portmap_process(). Nothing is re-read with portmap_fds() or
 * portmap_timeout_ms().
 *
 *   portmap-example-event [--gateway ADDR] [--port N] PORT/PROTO
 *
 * Maps PORT, revokes the mapping once it is mapped, and exits 0 after
 * "deleted" (1 after "failed", 2 on bad usage).
 */
#include <event2/event.h>

#include "common.h"

typedef struct watch {
  struct event *ev;
  int fd;
  struct watch *next;
} watch_t;

typedef struct app {
  struct event_base *base;
  struct event *timer;
  portmap_client_t *client;
  watch_t *watches;
  int64_t deadline_ms; /* as timer_cb last said (example_now_ms()); -1 none */
  int exit_code;       /* -1 until the mapping's final event */
} app_t;

static void process(app_t *app) {
  if (app->client != NULL)
    portmap_process(app->client);
}

/* A timer event fires once but the deadline stands until timer_cb
 * replaces it: add the timer from the deadline (again after each process,
 * in case it fired a little early or the library still wants to run at
 * once). */
static void arm(app_t *app) {
  if (app->deadline_ms < 0) {
    evtimer_del(app->timer);
    return;
  }
  int64_t left = app->deadline_ms - (int64_t)example_now_ms();
  if (left < 0)
    left = 0;
  struct timeval tv = {.tv_sec = (time_t)(left / 1000),
                       .tv_usec = (suseconds_t)(left % 1000) * 1000};
  evtimer_add(app->timer, &tv);
}

static void on_readable(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  process(arg);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  process(arg);
  arm(arg);
}

/* fd_cb: add or delete a read event. */
static void on_fd(int fd, int events, void *user) {
  app_t *app = user;
  watch_t **p = &app->watches;
  while (*p != NULL && (*p)->fd != fd)
    p = &(*p)->next;
  if (events & PORTMAP_FD_READ) {
    watch_t *w = calloc(1, sizeof *w);
    if (w != NULL)
      w->ev = event_new(app->base, fd, EV_READ | EV_PERSIST, on_readable, app);
    if (w == NULL || w->ev == NULL || event_add(w->ev, NULL) != 0) {
      if (w != NULL && w->ev != NULL)
        event_free(w->ev);
      free(w);
      fprintf(stderr, "cannot watch fd %d\n", fd);
      return;
    }
    w->fd = fd;
    w->next = app->watches;
    app->watches = w;
  } else if (*p != NULL) {
    watch_t *w = *p;
    *p = w->next;
    event_free(w->ev); /* deletes it first: libevent forgets the fd before it is closed */
    free(w);
  }
}

/* timer_cb: each call replaces the previous deadline (-1: none). */
static void on_timer(int timeout_ms, void *user) {
  app_t *app = user;
  app->deadline_ms = timeout_ms < 0 ? -1 : (int64_t)(example_now_ms() + (uint64_t)timeout_ms);
  arm(app);
}

static void on_event(portmap_mapping_t *m, portmap_event_t event, const portmap_info_t *info,
                     void *user) {
  app_t *app = user;
  example_print(event, info);
  if (event == PORTMAP_EVENT_MAPPED) {
    portmap_mapping_revoke(m); /* allowed from the callback; DELETED follows */
  } else if (event == PORTMAP_EVENT_DELETED || event == PORTMAP_EVENT_FAILED) {
    app->exit_code = event == PORTMAP_EVENT_DELETED ? EXAMPLE_EXIT_DELETED : EXAMPLE_EXIT_FAILED;
    event_base_loopbreak(app->base); /* the client cannot be freed from its own callback */
  }
}

int main(int argc, char **argv) {
  example_args_t args;
  if (example_parse_args(argc, argv, &args) != 0)
    return EXAMPLE_EXIT_USAGE;

  app_t app = {.base = event_base_new(), .deadline_ms = -1, .exit_code = -1};
  if (app.base == NULL)
    return EXAMPLE_EXIT_FAILED;
  app.timer = evtimer_new(app.base, on_timeout, &app);

  portmap_config_t cfg;
  example_config(&args, &cfg);
  cfg.fd_cb = on_fd;
  cfg.fd_user = &app;
  cfg.timer_cb = on_timer;
  cfg.timer_user = &app;

  portmap_status_t st = portmap_client_new(&cfg, &app.client); /* on_fd: the wake pipe */
  portmap_request_t req;
  example_request(&args, &req);
  if (st == PORTMAP_OK)
    st = portmap_map(app.client, &req, on_event, &app, NULL);
  if (st == PORTMAP_OK)
    event_base_dispatch(app.base); /* until on_event breaks it */
  else
    example_fail("libportmap", st);

  /* Nothing is left to delete: free returns at once (on_fd hears the fds go). */
  portmap_client_free(app.client);
  app.client = NULL;
  while (app.watches != NULL)
    on_fd(app.watches->fd, 0, &app);
  event_free(app.timer);
  event_base_free(app.base);
  return app.exit_code < 0 ? EXAMPLE_EXIT_FAILED : app.exit_code;
}
