/* SPDX-License-Identifier: MIT */
/*
 * portmap-example-uv: libportmap on a libuv loop, one uv_poll_t per fd the
 * library asks to have watched and one uv_timer_t for its deadline.
 *
 * fd_cb(fd, PORTMAP_FD_READ) starts a uv_poll_t on fd; fd_cb(fd, 0) stops
 * and closes it (the fd is still open then: libuv must let go of an fd
 * before it is closed, and the library closes it only after this call).
 * timer_cb(ms) (re)starts the timer, or stops it for -1. Both callbacks
 * run on the loop's thread, possibly from inside portmap_client_new(),
 * portmap_map() or portmap_process(). Nothing is re-read with
 * portmap_fds() or portmap_timeout_ms().
 *
 *   portmap-example-uv [--gateway ADDR] [--port N] PORT/PROTO
 *
 * Maps PORT, revokes the mapping once it is mapped, and exits 0 after
 * "deleted" (1 after "failed", 2 on bad usage).
 */
#include <uv.h>

#include "common.h"

typedef struct watch {
  uv_poll_t poll; /* first: the handle's address is the watch's */
  int fd;
  struct watch *next;
} watch_t;

typedef struct app {
  uv_loop_t *loop;
  uv_timer_t timer;
  portmap_client_t *client;
  watch_t *watches;
  int64_t deadline_ms; /* as timer_cb last said (example_now_ms()); -1 none */
  int exit_code;       /* -1 until the mapping's final event */
} app_t;

static void on_timeout(uv_timer_t *timer);

static void process(app_t *app) {
  if (app->client != NULL)
    portmap_process(app->client);
}

/* The timer is one-shot but the deadline stands until timer_cb replaces
 * it: arm the timer from the deadline (again after each process, in case
 * it fired a little early or the library still wants to run at once). */
static void arm(app_t *app) {
  if (app->deadline_ms < 0) {
    uv_timer_stop(&app->timer);
    return;
  }
  int64_t left = app->deadline_ms - (int64_t)example_now_ms();
  uv_timer_start(&app->timer, on_timeout, left < 0 ? 0 : (uint64_t)left, 0);
}

static void on_readable(uv_poll_t *handle, int status, int events) {
  (void)status;
  (void)events;
  process(handle->data);
}

static void on_timeout(uv_timer_t *timer) {
  app_t *app = timer->data;
  process(app);
  arm(app);
}

static void free_watch(uv_handle_t *handle) {
  free(handle); /* the uv_poll_t is the first member of its watch_t */
}

/* fd_cb: start or stop a uv_poll_t. */
static void on_fd(int fd, int events, void *user) {
  app_t *app = user;
  watch_t **p = &app->watches;
  while (*p != NULL && (*p)->fd != fd)
    p = &(*p)->next;
  if (events & PORTMAP_FD_READ) {
    watch_t *w = calloc(1, sizeof *w);
    if (w == NULL || uv_poll_init(app->loop, &w->poll, fd) != 0) {
      free(w);
      fprintf(stderr, "cannot watch fd %d\n", fd);
      return;
    }
    w->fd = fd;
    w->poll.data = app;
    w->next = app->watches;
    app->watches = w;
    uv_poll_start(&w->poll, UV_READABLE, on_readable);
  } else if (*p != NULL) {
    watch_t *w = *p;
    *p = w->next;
    uv_poll_stop(&w->poll); /* libuv forgets the fd now, before the library closes it */
    uv_close((uv_handle_t *)&w->poll, free_watch);
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
    uv_stop(app->loop); /* the client cannot be freed from its own callback */
  }
}

static void close_all(uv_handle_t *handle, void *arg) {
  (void)arg;
  if (!uv_is_closing(handle))
    uv_close(handle, handle->type == UV_POLL ? free_watch : NULL);
}

int main(int argc, char **argv) {
  example_args_t args;
  if (example_parse_args(argc, argv, &args) != 0)
    return EXAMPLE_EXIT_USAGE;

  app_t app = {.loop = uv_default_loop(), .deadline_ms = -1, .exit_code = -1};
  uv_timer_init(app.loop, &app.timer);
  app.timer.data = &app;

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
    uv_run(app.loop, UV_RUN_DEFAULT); /* until on_event stops it */
  else
    example_fail("libportmap", st);

  /* Nothing is left to delete: free returns at once (on_fd hears the fds go). */
  portmap_client_free(app.client);
  app.client = NULL;
  uv_walk(app.loop, close_all, NULL);
  uv_run(app.loop, UV_RUN_DEFAULT); /* runs the close callbacks */
  uv_loop_close(app.loop);
  return app.exit_code < 0 ? EXAMPLE_EXIT_FAILED : app.exit_code;
}
