/* SPDX-License-Identifier: MIT */
/*
 * The tools' event loop: poll() on the client's fds up to its deadline
 * (portmap_fds, portmap_timeout_ms, portmap_process), plus the self-pipe
 * that turns SIGINT/SIGTERM/SIGHUP into a stop and SIGUSR1 into a network
 * re-check. Public API only.
 */
#include "cli_loop.h"

#include "cli_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Set by the signal handler for SIGINT/SIGTERM/SIGHUP (below). */
static volatile sig_atomic_t stop_requested = 0;

/* Written by the signal handler, read by the loop: the self-pipe trick. A
 * stop is also kept in a flag, so that a pipe filled by SIGUSR1s cannot
 * lose it. */
static int signal_pipe_write = -1;

/* Drain sig_fd: 1 when a stop came, else 0 (after a network re-check for SIGUSR1). */
static int read_signals(portmap_client_t *client, int sig_fd) {
  unsigned char drain[64];
  ssize_t got;
  int stop = 0, recheck = 0;
  while ((got = read(sig_fd, drain, sizeof drain)) > 0) {
    for (ssize_t k = 0; k < got; k++) {
      if (drain[k] == (unsigned char)SIGUSR1) {
        recheck = 1;
      } else {
        stop = 1;
      }
    }
  }
  if (stop || stop_requested) {
    return 1;
  }
  if (recheck) {
    (void)portmap_network_changed(client); /* SIGUSR1: look at the network now */
  }
  return 0;
}

cli_drive_result_t cli_drive(const char *prog, portmap_client_t *client, cli_loop_state_fn state,
                             void *user, uint64_t deadline, int sig_fd) {
  struct pollfd pfds_small[9];
  struct pollfd *pfds = pfds_small;
  int fds_small[8];
  int *fds = fds_small;
  size_t cap = sizeof fds_small / sizeof fds_small[0];
  cli_drive_result_t result = CLI_DRIVE_DONE;

  for (;;) {
    size_t n, i, base = 0;
    int timeout, r;
    portmap_status_t st;
    cli_loop_state_t s = state(user);

    if (s == CLI_LOOP_DONE) {
      break;
    }
    if (s == CLI_LOOP_STOP) {
      result = CLI_DRIVE_SIGNAL;
      break;
    }
    n = portmap_fds(client, fds, cap);
    if (n > cap) {
      int *nfds = malloc(n * sizeof *nfds);
      struct pollfd *npfds = malloc((n + 1) * sizeof *npfds);
      if (nfds == NULL || npfds == NULL) {
        free(nfds);
        free(npfds);
        fprintf(stderr, "%s: out of memory\n", prog);
        result = CLI_DRIVE_ERROR;
        break;
      }
      if (fds != fds_small) {
        free(fds);
        free(pfds);
      }
      fds = nfds;
      pfds = npfds;
      cap = n;
      continue;
    }
    if (sig_fd >= 0) {
      pfds[0].fd = sig_fd;
      pfds[0].events = POLLIN;
      pfds[0].revents = 0;
      base = 1;
    }
    for (i = 0; i < n; i++) {
      pfds[base + i].fd = fds[i];
      pfds[base + i].events = POLLIN;
      pfds[base + i].revents = 0;
    }
    timeout = portmap_timeout_ms(client);
    if (deadline != 0) {
      uint64_t now = cli_now_ms();
      uint64_t left;
      if (now >= deadline) {
        result = CLI_DRIVE_DEADLINE;
        break;
      }
      left = deadline - now;
      if (timeout < 0 || (uint64_t)timeout > left) {
        timeout = left > (uint64_t)INT32_MAX ? INT32_MAX : (int)left;
      }
    }
    r = poll(pfds, (nfds_t)(base + n), timeout);
    if (r < 0) {
      if (errno == EINTR) {
        continue; /* the handler wrote to sig_fd: seen on the next round */
      }
      fprintf(stderr, "%s: poll failed: %s\n", prog, strerror(errno));
      result = CLI_DRIVE_ERROR;
      break;
    }
    if (sig_fd >= 0 && (pfds[0].revents & POLLIN) != 0 && read_signals(client, sig_fd)) {
      result = CLI_DRIVE_SIGNAL;
      break;
    }
    st = portmap_process(client);
    if (st != PORTMAP_OK) {
      fprintf(stderr, "%s: internal error: portmap_process: %s\n", prog, portmap_strerror(st));
      result = CLI_DRIVE_ERROR;
      break;
    }
  }
  if (fds != fds_small) {
    free(fds);
    free(pfds);
  }
  return result;
}

static void on_signal(int sig) {
  int saved_errno = errno;
  unsigned char b = (unsigned char)sig;
  if (sig != SIGUSR1) {
    stop_requested = 1;
  }
  if (write(signal_pipe_write, &b, 1) < 0) {
    /* the pipe is full: the loop will wake and read it anyway */
  }
  errno = saved_errno;
}

int cli_signals_install(const char *prog, int pipefd[2]) {
  struct sigaction sa;
  static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1};
  size_t i;

  if (pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) != 0) {
    fprintf(stderr, "%s: cannot create a pipe: %s\n", prog, strerror(errno));
    return -1;
  }
  signal_pipe_write = pipefd[1];
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  /* SIGUSR1 must not break a write to stdout/stderr (EINTR would mark the
   * stream broken and end the run); poll() still returns EINTR. */
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  for (i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
    if (sigaction(sigs[i], &sa, NULL) != 0) {
      fprintf(stderr, "%s: cannot install a signal handler: %s\n", prog, strerror(errno));
      return -1;
    }
  }
  /* A closed stdout must not kill us before the mappings are deleted. */
  sa.sa_handler = SIG_IGN;
  (void)sigaction(SIGPIPE, &sa, NULL);
  return 0;
}

void cli_signals_close(int pipefd[2]) {
  if (pipefd[0] < 0) {
    return;
  }
  signal_pipe_write = -1;
  close(pipefd[0]);
  close(pipefd[1]);
}
