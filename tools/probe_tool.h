/* SPDX-License-Identifier: MIT */
/* What the files of `portmap-probe` share: its options, its findings, its report. */
#ifndef PORTMAP_TOOLS_PROBE_TOOL_H
#define PORTMAP_TOOLS_PROBE_TOOL_H

#include <stdint.h>

#include <portmap/portmap.h>

#include "cli_args.h"
#include "cli_client.h"
#include "cli_output.h"

#define PROG "portmap-probe"

/* Upper bound accepted for --timeout: ten minutes. */
#define MAX_TIMEOUT_MS 600000u
/* --map: how long to wait for the mapping unless --timeout says otherwise. */
#define DEFAULT_MAP_TIMEOUT_MS 5000u
/* --map: how long to wait for the gateway to confirm the delete. */
#define DELETE_WAIT_MS 2000u
/* --map: lifetime of the test mapping unless --lifetime says otherwise. */
#define DEFAULT_MAP_LIFETIME 60u
/*
 * portmap_probe_sync with timeout 0 waits the probe budget plus this margin,
 * so the budget's own timer decides; --timeout MS waits MS plus the same.
 */
#define PROBE_WAIT_MARGIN_MS 100u
/* The SSDP port (UPnP discovery). */
#define SSDP_PORT 1900u

typedef struct options {
  cli_common_opts_t common; /* --gateway, --backend, --port, --json, --verbose, ... */
  uint32_t timeout_ms;      /* 0 = the library's probe budget */
  int map;
  int map_protocol;
  uint16_t map_port;
  uint32_t lifetime; /* 0 = DEFAULT_MAP_LIFETIME */
  int have_lifetime;
  int trace;
} options_t;

typedef struct map_test {
  int ok;
  portmap_mapping_t *handle; /* NULL once its final event came */
  int outcome;               /* the first answer (mapped or failed) came */
  int final;                 /* DELETED or FAILED came */
  portmap_event_t final_event;
  portmap_info_t info; /* as mapped, or as failed */
  char external[PORTMAP_ADDRSTRLEN];
  int have_external;
  portmap_status_t error;     /* why the mapping failed, PORTMAP_OK if it did not */
  portmap_status_t del_error; /* why the delete was not confirmed */
  int deleted;
  const char *skipped; /* why it was not tried, NULL if it was */
  uint64_t map_ms, delete_ms, elapsed_ms;
} map_test_t;

typedef struct probe {
  const options_t *opt;
  portmap_client_t *client;
  portmap_probe_result_t res;
  int no_gateway;  /* no default gateway: nothing could be asked */
  cli_diag_t diag; /* --verbose, --trace */
  map_test_t mt;
} probe_t;

/*
 * The findings on stdout (a table and the verdict, or one JSON object),
 * then, when nothing works or the test mapping failed, one line on stderr.
 * The exit status.
 */
int probe_report(const probe_t *p);

#endif
