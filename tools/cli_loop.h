/* SPDX-License-Identifier: MIT */
/* The tools' event loop on the public API (portmap_fds/timeout_ms/process) and their signals. */
#ifndef PORTMAP_TOOLS_CLI_LOOP_H
#define PORTMAP_TOOLS_CLI_LOOP_H

#include <stdint.h>

#include <portmap/portmap.h>

typedef enum cli_loop_state {
  CLI_LOOP_RUN,  /* keep going */
  CLI_LOOP_DONE, /* what the tool waited for came */
  CLI_LOOP_STOP  /* stop as on a signal (stdout went away) */
} cli_loop_state_t;

/* Asked before every round: where the tool stands. */
typedef cli_loop_state_t (*cli_loop_state_fn)(void *user);

typedef enum cli_drive_result {
  CLI_DRIVE_DONE,     /* the state function said DONE */
  CLI_DRIVE_DEADLINE, /* the deadline passed first */
  CLI_DRIVE_SIGNAL,   /* SIGINT/SIGTERM/SIGHUP, or the state function said STOP */
  CLI_DRIVE_ERROR     /* poll() or portmap_process() failed; reported */
} cli_drive_result_t;

/*
 * Run the client until state says so, deadline (monotonic ms, 0 = none)
 * passes, or a stop signal arrives on sig_fd (-1 = none; see
 * cli_signals_install). SIGUSR1 on sig_fd makes the client look at the
 * network at once. Failures are one line on stderr, prefixed by prog.
 */
cli_drive_result_t cli_drive(const char *prog, portmap_client_t *client, cli_loop_state_fn state,
                             void *user, uint64_t deadline, int sig_fd);

/*
 * Send SIGINT, SIGTERM, SIGHUP and SIGUSR1 to pipefd[0] (a self-pipe, for
 * cli_drive), with SA_RESTART, and ignore SIGPIPE. 0, or -1 after one line
 * on stderr. One at a time per process: a signal handler has no user pointer.
 */
int cli_signals_install(const char *prog, int pipefd[2]);
/* Close the pipe of cli_signals_install (pipefd[0] < 0: nothing to do). */
void cli_signals_close(int pipefd[2]);

#endif
