/* SPDX-License-Identifier: MIT */
/*
 * What the four examples share and is not the point of any of them: the
 * command line ([--gateway ADDR] [--port N] PORT/PROTO), the client
 * configuration it implies, the clock behind the "milliseconds since
 * start" column, and the one line printed per event. The event loops are
 * in the examples themselves.
 */
#ifndef PORTMAP_EXAMPLES_COMMON_H
#define PORTMAP_EXAMPLES_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <portmap/portmap.h>

/* Exit statuses: after DELETED, after FAILED (or a failing call), bad usage. */
#define EXAMPLE_EXIT_DELETED 0
#define EXAMPLE_EXIT_FAILED 1
#define EXAMPLE_EXIT_USAGE 2

typedef struct example_args {
  const char *gateway;  /* --gateway ADDR; NULL = the default router */
  uint16_t server_port; /* --port N: the PCP server port (tests run a fake on loopback) */
  int protocol;         /* PORTMAP_PROTO_TCP or PORTMAP_PROTO_UDP */
  uint16_t port;        /* internal port, also suggested as the external one */
} example_args_t;

static inline uint64_t example_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The program's start, for the first column of every line. */
static uint64_t example_start_ms;

static inline int example_parse_port(const char *s, uint16_t *out) {
  char *end = NULL;
  if (s == NULL || *s < '0' || *s > '9')
    return -1;
  unsigned long v = strtoul(s, &end, 10);
  if (end == s || v < 1 || v > 65535)
    return -1;
  *out = (uint16_t)v;
  return *end == '\0' || *end == '/' ? 0 : -1;
}

/* Fills *a from the command line, or prints one line and returns -1. */
static inline int example_parse_args(int argc, char **argv, example_args_t *a) {
  const char *target = NULL;
  memset(a, 0, sizeof *a);
  example_start_ms = example_now_ms();
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--gateway") == 0 && i + 1 < argc) {
      a->gateway = argv[++i];
    } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      if (example_parse_port(argv[++i], &a->server_port) != 0 || strchr(argv[i], '/') != NULL)
        goto usage;
    } else if (argv[i][0] != '-' && target == NULL) {
      target = argv[i];
    } else {
      goto usage;
    }
  }
  if (target == NULL || example_parse_port(target, &a->port) != 0)
    goto usage;
  const char *proto = strchr(target, '/');
  if (proto != NULL && strcmp(proto, "/tcp") == 0)
    a->protocol = PORTMAP_PROTO_TCP;
  else if (proto != NULL && strcmp(proto, "/udp") == 0)
    a->protocol = PORTMAP_PROTO_UDP;
  else
    goto usage;
  return 0;
usage:
  fprintf(stderr, "usage: %s [--gateway ADDR] [--port N] PORT/tcp|PORT/udp\n", argv[0]);
  return -1;
}

/* The configuration every example starts from; each adds its loop's part. */
static inline void example_config(const example_args_t *a, portmap_config_t *cfg) {
  portmap_config_init(cfg);
  cfg->gateway = a->gateway;
  if (a->server_port != 0)
    cfg->server_port = a->server_port;
  /* Give up (FAILED) on a mapping nothing answers after 10 s, so that the
   * program always ends; a real application keeps the default, 0 = never. */
  cfg->request_timeout_ms = 10000;
}

static inline void example_request(const example_args_t *a, portmap_request_t *req) {
  portmap_request_init(req);
  req->protocol = a->protocol;
  req->internal_port = a->port;
  req->external_port = a->port;
}

/* One line per event: "12 mapped tcp 8000 -> 203.0.113.5:8000 via pcp". */
static inline void example_print(portmap_event_t event, const portmap_info_t *info) {
  unsigned long long ms = (unsigned long long)(example_now_ms() - example_start_ms);
  const char *proto = info->protocol == PORTMAP_PROTO_UDP ? "udp" : "tcp";
  switch (event) {
  case PORTMAP_EVENT_MAPPED:
  case PORTMAP_EVENT_RENEWED:
  case PORTMAP_EVENT_CHANGED:
    printf("%llu %s %s %u -> %s:%u via %s\n", ms, portmap_event_name(event), proto,
           info->internal_port, info->external_address_str, info->external_port,
           portmap_backend_name(info->backend));
    break;
  case PORTMAP_EVENT_LOST:
  case PORTMAP_EVENT_FAILED:
    printf("%llu %s %s %u: %s\n", ms, portmap_event_name(event), proto, info->internal_port,
           portmap_strerror(info->status));
    break;
  case PORTMAP_EVENT_DELETED:
    printf("%llu %s %s %u\n", ms, portmap_event_name(event), proto, info->internal_port);
    break;
  }
  fflush(stdout); /* one line at a time, even into a pipe */
}

/* A library call that failed: one line, and the exit status to use. */
static inline int example_fail(const char *what, portmap_status_t st) {
  fprintf(stderr, "%s: %s\n", what, portmap_strerror(st));
  return EXAMPLE_EXIT_FAILED;
}

#endif
