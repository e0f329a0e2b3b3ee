/* SPDX-License-Identifier: MIT */
/*
 * natpmp_router: the project's fake NAT-PMP server (tests/fake/fake_natpmp.h) as a
 * standalone "router" for the lab personality `natpmp` (tests/lab/lab.sh). miniupnpd
 * always answers PCP; this one speaks NAT-PMP only: a PCP request (version 2) gets
 * the 8-octet UNSUPP_VERSION reply (version 0, opcode 128 + op, result 1).
 *
 *   natpmp_router ADDR EXTERNAL_ADDR STATE_FILE MAX_SECONDS
 *
 * Binds ADDR:5351, announces EXTERNAL_ADDR as its public address, and serves until
 * SIGTERM/SIGINT or MAX_SECONDS (a bounded life: a forgotten router goes away). The
 * fake's clock is CLOCK_MONOTONIC in ms since start (epoch 0 at start). After every
 * poll round (at most 200 ms apart) STATE_FILE is rewritten atomically (temp file +
 * rename) with one line per live mapping: "proto internal_port external_port lifetime"
 * (proto tcp/udp). Exit 0 on a signal or at MAX_SECONDS, 1 on an error.
 */
#include "fake_natpmp.h"

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

static int write_state(const fake_natpmp_t *f, const char *path) {
  char tmp[4096];
  int n = snprintf(tmp, sizeof tmp, "%s.tmp", path);
  if (n < 0 || (size_t)n >= sizeof tmp) {
    return -1;
  }
  FILE *fp = fopen(tmp, "w");
  if (fp == NULL) {
    return -1;
  }
  size_t count = fake_natpmp_mapping_count(f);
  for (size_t i = 0; i < count; i++) {
    const fake_natpmp_mapping_t *m = fake_natpmp_mapping_get(f, i);
    if (m == NULL) {
      continue;
    }
    fprintf(fp, "%s %u %u %u\n", m->opcode == 2 ? "tcp" : "udp", (unsigned)m->internal_port,
            (unsigned)m->external_port, (unsigned)m->lifetime);
  }
  if (fclose(fp) != 0) {
    unlink(tmp);
    return -1;
  }
  if (rename(tmp, path) != 0) {
    unlink(tmp);
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s ADDR EXTERNAL_ADDR STATE_FILE MAX_SECONDS\n", argv[0]);
    return 2;
  }
  const char *addr = argv[1], *ext = argv[2], *state = argv[3];
  char *end = NULL;
  unsigned long max_s = strtoul(argv[4], &end, 10);
  struct in_addr ext4;
  if (end == argv[4] || *end != '\0' || max_s == 0 || max_s > 86400) {
    fprintf(stderr, "natpmp_router: bad MAX_SECONDS '%s' (1..86400)\n", argv[4]);
    return 2;
  }
  if (inet_pton(AF_INET, ext, &ext4) != 1) {
    fprintf(stderr, "natpmp_router: bad EXTERNAL_ADDR '%s'\n", ext);
    return 2;
  }

  if (pipe2(sig_pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
    perror("natpmp_router: pipe2");
    return 1;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  fake_natpmp_t *f = fake_natpmp_new(addr);
  if (f == NULL) {
    fprintf(stderr, "natpmp_router: cannot bind %s:%d: %s\n", addr, FAKE_NATPMP_PORT,
            strerror(errno));
    return 1;
  }
  uint8_t ext_addr[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  memcpy(ext_addr + 12, &ext4, 4);
  fake_natpmp_set_external(f, ext_addr);

  const uint64_t start = now_ms();
  const uint64_t deadline = (uint64_t)max_s * 1000u;
  int rc = 0;
  if (write_state(f, state) != 0) {
    fprintf(stderr, "natpmp_router: cannot write %s: %s\n", state, strerror(errno));
    fake_natpmp_free(f);
    return 1;
  }
  fprintf(stderr, "natpmp_router: serving %s:%d, external %s, state %s, for at most %lu s\n", addr,
          FAKE_NATPMP_PORT, ext, state, max_s);

  for (;;) {
    uint64_t t = now_ms() - start;
    if (t >= deadline) {
      fprintf(stderr, "natpmp_router: %lu s are up, exiting\n", max_s);
      break;
    }
    uint64_t left = deadline - t;
    int timeout = left < 200 ? (int)left : 200;
    struct pollfd pfd[2] = {{.fd = fake_natpmp_fd(f), .events = POLLIN},
                            {.fd = sig_pipe[0], .events = POLLIN}};
    int n = poll(pfd, 2, timeout);
    if (n < 0 && errno != EINTR) {
      perror("natpmp_router: poll");
      rc = 1;
      break;
    }
    if (n > 0 && (pfd[1].revents & POLLIN)) {
      unsigned char c = 0;
      if (read(sig_pipe[0], &c, 1) == 1) {
        fprintf(stderr, "natpmp_router: signal %d, exiting\n", (int)c);
      }
      break;
    }
    /* Also on a timeout: the injected time advances and expired mappings go. */
    int got = fake_natpmp_process_at(f, now_ms() - start);
    if (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      perror("natpmp_router: recv");
      rc = 1;
      break;
    }
    if (write_state(f, state) != 0) {
      fprintf(stderr, "natpmp_router: cannot write %s: %s\n", state, strerror(errno));
      rc = 1;
      break;
    }
  }
  fprintf(stderr, "natpmp_router: %u datagrams received, %u malformed\n", fake_natpmp_received(f),
          fake_natpmp_malformed(f));
  fake_natpmp_free(f);
  return rc;
}
