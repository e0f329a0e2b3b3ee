/* SPDX-License-Identifier: MIT */
/* What the files of the `portmap` tool share: its options, its run state, its entry points. */
#ifndef PORTMAP_TOOLS_PORTMAP_TOOL_H
#define PORTMAP_TOOLS_PORTMAP_TOOL_H

#include <stddef.h>
#include <stdint.h>

#include <portmap/portmap.h>

#include "cli_args.h"
#include "cli_client.h"
#include "cli_output.h"

#define PROG "portmap"

/* How long add and delete wait for the gateway unless --timeout says otherwise. */
#define DEFAULT_TIMEOUT_MS 5000u
/* Upper bound accepted for --timeout: one hour. */
#define MAX_TIMEOUT_MS 3600000u
/* keep: how long to wait for the deletes after SIGINT/SIGTERM. */
#define SHUTDOWN_WAIT_MS 2000u

typedef enum command {
  CMD_NONE = 0,
  CMD_ADD = 1,
  CMD_KEEP = 2,
  CMD_DELETE = 4,
  CMD_LIST = 8
} command_t;

#define CMD_ALL (CMD_ADD | CMD_KEEP | CMD_DELETE | CMD_LIST)

/* list: how many entries of the gateway's table are read at most. */
#define LIST_CAP 256u

typedef struct target {
  int protocol;
  uint16_t port;
} target_t;

typedef struct options {
  cli_common_opts_t common; /* --gateway, --backend, --port, --json, --verbose, ... */
  command_t cmd;
  const char *cmd_name;
  target_t *targets;
  size_t n_targets;
  uint16_t external_port; /* 0 = none */
  uint32_t lifetime;      /* 0 = library default */
  const char *description;
  uint32_t timeout_ms;
  int have_timeout;
  uint8_t nonce[NONCE_LEN];
  int have_nonce;
  /* PCP extras (add, keep; --ipv6 and --third-party also delete) */
  int ipv6;                              /* --ipv6: map the IPv6 internal address */
  char peer_address[PORTMAP_ADDRSTRLEN]; /* --peer ADDR:PORT, "" = a MAP */
  uint16_t peer_port;
  int peer_is_v6;
  const char *third_party; /* --third-party ADDR */
  int third_party_is_v6;
  char filter_address[PORTMAP_MAX_FILTERS][PORTMAP_ADDRSTRLEN];
  int filter_is_v6[PORTMAP_MAX_FILTERS];
  portmap_filter_t filters[PORTMAP_MAX_FILTERS]; /* --filter, repeatable */
  size_t n_filters;
  int prefer_failure;  /* --prefer-failure */
  uint32_t pcp_irt_ms; /* --retransmit, 0 = library default */
  int permanent;       /* --permanent: add may leave a permanent lease (Q9) */
} options_t;

typedef struct cli cli_t;

typedef struct mapping_ctx {
  cli_t *cli;
  const target_t *target;
  portmap_mapping_t *handle; /* NULL once the final event came */
  int done;
  int mapped;
  portmap_event_t final_event;
  portmap_status_t status; /* with FAILED: why */
} mapping_ctx_t;

struct cli {
  const options_t *opt;
  portmap_client_t *client;
  cli_diag_t diag; /* --verbose */
  mapping_ctx_t *maps;
  size_t n_maps;
  size_t active; /* mappings still waiting for their final event */
  size_t failed;
  int revoking;      /* keep: shutting down */
  int output_broken; /* stdout went away (EPIPE): stop like on a signal */
  int silent;        /* the tool gave up on its mappings: print nothing more */
};

/* ---- the commands (portmap_cmds.c): an exit status each ---- */

int pm_cmd_add(cli_t *cli);
int pm_cmd_keep(cli_t *cli);
int pm_cmd_delete(cli_t *cli);
int pm_cmd_list(cli_t *cli);

/* ---- what they print (portmap_report.c) ---- */

/* The gateway as text for messages: the one given, the one the client found, or NULL. */
const char *pm_gateway_text(const cli_t *cli, char *buf, size_t len);
/* Flush stdout; a failure marks the output broken. */
void pm_check_output(cli_t *cli);
int pm_exit_code_for(portmap_status_t status);
void pm_print_event_json(cli_t *cli, portmap_event_t event, const portmap_info_t *info,
                         const char *description);
/* Human text for every event but FAILED (which goes to stderr, see pm_report_failure). */
void pm_print_event_text(cli_t *cli, portmap_event_t event, const portmap_info_t *info);
/*
 * One line on stderr saying what went wrong and what to try. prefix names the
 * mapping when there are several ("tcp 8000: "), else "".
 */
void pm_report_failure(cli_t *cli, const char *prefix, portmap_status_t status,
                       const portmap_info_t *info, int deleting);
/* list: the first n of the gateway's total entries, as a table or JSON lines. */
void pm_print_list(cli_t *cli, const portmap_list_entry_t *entries, size_t n, size_t total);
/* One line on stderr saying why the table could not be read, and the exit status. */
int pm_report_list_failure(cli_t *cli, portmap_status_t st);

#endif
