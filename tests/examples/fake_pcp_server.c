/* SPDX-License-Identifier: MIT */
/*
 * fake_pcp_server: the project's fake PCP server (tests/fake/fake_pcp.h) as a
 * standalone "gateway" on loopback, for the examples' tests (run_example.sh).
 *
 *   fake_pcp_server ADDR MAX_SECONDS     serve PCP on ADDR (127/8) at an ephemeral port
 *   fake_pcp_server ADDR --free-port     print a UDP port nothing listens on, exit
 *
 * Serving: prints the port (one line, then stdout is closed, so a reader knows the
 * server is ready), answers with external address 203.0.113.5 until SIGTERM/SIGINT or
 * MAX_SECONDS (a bounded life: a forgotten server goes away). The fake's clock is
 * CLOCK_MONOTONIC in ms since start. Exit 0 on a signal or at MAX_SECONDS, 1 on an
 * error, 2 on bad usage.
 */
#include "fake_pcp.h"
#include "test_support.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig) {
  int saved = errno;
  unsigned char c = (unsigned char)sig;
  if (write(sig_pipe[1], &c, 1) < 0) {
    /* the pipe is full: a signal is already pending */
  }
  errno = saved;
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int main(int argc, char **argv) {
  struct in_addr a4;
  if (argc != 3 || inet_pton(AF_INET, argv[1], &a4) != 1 || (ntohl(a4.s_addr) >> 24) != 127) {
    fprintf(stderr, "usage: %s 127.x.y.z MAX_SECONDS|--free-port\n", argv[0]);
    return 2;
  }
  uint32_t v4 = ntohl(a4.s_addr);
  if (strcmp(argv[2], "--free-port") == 0) {
    uint16_t port = test_free_udp_port(v4);
    if (port == 0)
      return 1;
    printf("%u\n", port);
    return 0;
  }
  char *end = NULL;
  unsigned long max_s = strtoul(argv[2], &end, 10);
  if (end == argv[2] || *end != '\0' || max_s == 0 || max_s > 600) {
    fprintf(stderr, "fake_pcp_server: bad MAX_SECONDS '%s' (1..600)\n", argv[2]);
    return 2;
  }

  if (pipe2(sig_pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
    perror("fake_pcp_server: pipe2");
    return 1;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  fake_pcp_t *f = fake_pcp_new_at(0, v4, 0);
  if (f == NULL) {
    fprintf(stderr, "fake_pcp_server: cannot bind %s: %s\n", argv[1], strerror(errno));
    return 1;
  }
  uint8_t ext[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 5};
  fake_pcp_set_external(f, ext);
  printf("%u\n", fake_pcp_port(f));
  fflush(stdout);
  fclose(stdout);

  const uint64_t start = now_ms();
  const uint64_t deadline = (uint64_t)max_s * 1000u;
  int rc = 0;
  for (;;) {
    uint64_t t = now_ms() - start;
    if (t >= deadline)
      break;
    uint64_t left = deadline - t;
    struct pollfd pfd[2] = {{.fd = fake_pcp_fd(f), .events = POLLIN},
                            {.fd = sig_pipe[0], .events = POLLIN}};
    int n = poll(pfd, 2, left < 200 ? (int)left : 200);
    if (n < 0 && errno != EINTR) {
      perror("fake_pcp_server: poll");
      rc = 1;
      break;
    }
    if (n > 0 && (pfd[1].revents & POLLIN))
      break;
    /* Also on a timeout: the injected time advances and expired mappings go. */
    int got = fake_pcp_process_at(f, now_ms() - start);
    if (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
        errno != ECONNREFUSED) {
      perror("fake_pcp_server: recv");
      rc = 1;
      break;
    }
  }
  fprintf(stderr, "fake_pcp_server: %u datagrams received, %u MAP requests\n", fake_pcp_received(f),
          fake_pcp_requests(f, PCP_OP_MAP));
  fake_pcp_free(f);
  return rc;
}
