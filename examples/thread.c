/* SPDX-License-Identifier: MIT */
/*
 * portmap-example-thread: libportmap on a thread of its own
 * (portmap_thread_start()), for a program that has no event loop to share.
 *
 * No fd_cb or timer_cb (thread mode refuses a client that has them: its
 * fds belong to the library's thread). Mapping callbacks run on that
 * thread; every other call may be made from any thread. Here the main
 * thread waits for "mapped", then revokes the mapping itself: the call
 * wakes the library's thread through the client's wake pipe, which sends
 * the delete at once.
 *
 *   portmap-example-thread [--gateway ADDR] [--port N] PORT/PROTO
 *
 * Maps PORT, revokes the mapping once it is mapped, and exits 0 after
 * "deleted" (1 after "failed", 2 on bad usage).
 */
#include <errno.h>
#include <pthread.h>

#include "common.h"

typedef struct app {
  pthread_mutex_t mu; /* guards the fields below, shared by both threads */
  pthread_cond_t cond;
  int mapped;    /* MAPPED came */
  int exit_code; /* -1 until the mapping's final event */
} app_t;

/* On the library's thread. */
static void on_event(portmap_mapping_t *m, portmap_event_t event, const portmap_info_t *info,
                     void *user) {
  app_t *app = user;
  (void)m;
  example_print(event, info);
  pthread_mutex_lock(&app->mu);
  if (event == PORTMAP_EVENT_MAPPED)
    app->mapped = 1;
  else if (event == PORTMAP_EVENT_DELETED)
    app->exit_code = EXAMPLE_EXIT_DELETED;
  else if (event == PORTMAP_EVENT_FAILED)
    app->exit_code = EXAMPLE_EXIT_FAILED;
  pthread_cond_signal(&app->cond);
  pthread_mutex_unlock(&app->mu);
}

/* Wait (at most 30 s: this program must end) until pred(app) holds. */
static int wait_for(app_t *app, int (*pred)(const app_t *)) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 30;
  int r = 0;
  while (!pred(app) && r != ETIMEDOUT)
    r = pthread_cond_timedwait(&app->cond, &app->mu, &until);
  return pred(app);
}

static int mapped_or_final(const app_t *app) {
  return app->mapped || app->exit_code >= 0;
}

static int final(const app_t *app) {
  return app->exit_code >= 0;
}

int main(int argc, char **argv) {
  example_args_t args;
  if (example_parse_args(argc, argv, &args) != 0)
    return EXAMPLE_EXIT_USAGE;

  app_t app = {.mapped = 0, .exit_code = -1};
  pthread_mutex_init(&app.mu, NULL);
  pthread_cond_init(&app.cond, NULL);

  portmap_config_t cfg;
  example_config(&args, &cfg); /* and no fd_cb / timer_cb */
  portmap_client_t *client = NULL;
  portmap_status_t st = portmap_client_new(&cfg, &client);
  if (st != PORTMAP_OK)
    return example_fail("portmap_client_new", st);
  st = portmap_thread_start(client);
  if (st != PORTMAP_OK) {
    portmap_client_free(client);
    return example_fail("portmap_thread_start", st);
  }

  portmap_request_t req;
  example_request(&args, &req);
  portmap_mapping_t *m = NULL;
  pthread_mutex_lock(&app.mu); /* before portmap_map: the callback may run at once */
  st = portmap_map(client, &req, on_event, &app, &m);
  if (st == PORTMAP_OK && wait_for(&app, mapped_or_final) && !final(&app)) {
    /* Still under app.mu, so the final event (after which the handle is
     * freed) cannot have been delivered: the handle is valid. */
    portmap_mapping_revoke(m);
    wait_for(&app, final);
  }
  int code = app.exit_code < 0 ? EXAMPLE_EXIT_FAILED : app.exit_code;
  pthread_mutex_unlock(&app.mu);
  if (st != PORTMAP_OK)
    example_fail("portmap_map", st);

  portmap_thread_stop(client);
  portmap_client_free(client); /* nothing is left to delete: returns at once */
  pthread_cond_destroy(&app.cond);
  pthread_mutex_destroy(&app.mu);
  return code;
}
