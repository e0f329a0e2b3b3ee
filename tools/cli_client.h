/* SPDX-License-Identifier: MIT */
/* A tool's client: configured from the common options, created, and its diagnostics on stderr. */
#ifndef PORTMAP_TOOLS_CLI_CLIENT_H
#define PORTMAP_TOOLS_CLI_CLIENT_H

#include <stdint.h>

#include <portmap/portmap.h>

#include "cli_args.h"

/* Where the library's log lines, packet traces and counters go (stderr), and how. */
typedef struct cli_diag {
  const char *prog;
  int timestamps;    /* "+N ms " since start_ms before each line */
  int sanitize;      /* log text with control characters as '?' */
  uint64_t start_ms; /* cli_now_ms() at the start */
} cli_diag_t;

uint64_t cli_now_ms(void);

/*
 * A configuration from the common options (--gateway, --backend, --port);
 * with diag, the library's debug log goes to stderr through it.
 */
void cli_config_init(portmap_config_t *cfg, const cli_common_opts_t *c, cli_diag_t *diag);
/* Also hex-dump every datagram to stderr (portmap-probe --trace). */
void cli_config_trace(portmap_config_t *cfg, cli_diag_t *diag);

/*
 * portmap_client_new(); a failure is one line on stderr, naming gateway
 * (the --gateway given, or NULL).
 */
portmap_status_t cli_client_new(const char *prog, const portmap_config_t *cfg, const char *gateway,
                                portmap_client_t **client);

/* The client's packet counters, one debug line on stderr (client may be NULL: nothing). */
void cli_print_stats(const cli_diag_t *diag, portmap_client_t *client);

#endif
