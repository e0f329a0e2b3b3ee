/* SPDX-License-Identifier: MIT */
/*
 * portmap-probe: the diagnostic to run when port mapping does not work.
 *
 *   portmap-probe [--gateway ADDR] [--backend LIST] [--timeout MS] [--map PORT[/PROTO]]
 *                 [--lifetime S] [--json] [--verbose] [--trace] [--port N]
 *
 * Asks the gateway for PCP, NAT-PMP and UPnP-IGD at once
 * (portmap_probe_sync), prints what each protocol said and which one new
 * mappings will use, and whether the external address is reachable from
 * the Internet. --map also creates a short mapping through that backend and
 * deletes it again.
 *
 * This file: the help, the command line, the probe and the map test, and
 * main(); the report is in probe_report.c, the shared driver in cli_*.c.
 * Built on the public API only (include/portmap/portmap.h), like `portmap`.
 *
 * Exit status: 0 at least one protocol works (and, with --map, the test
 * mapping was granted); 1 none works (or the test mapping failed); 2 usage
 * or system error. Every failure is one line on stderr.
 */
#include "probe_tool.h"

#include "cli_loop.h"

#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------------- */
/* Help and usage                                                          */
/* ---------------------------------------------------------------------- */

static const char help_text[] =
    "NAME\n"
    "    portmap-probe - find out which port-mapping protocol the gateway speaks\n"
    "\n"
    "SYNOPSIS\n"
    "    portmap-probe [--gateway ADDR] [--backend LIST] [--timeout MS]\n"
    "                  [--map PORT[/tcp|/udp] [--lifetime SECONDS]]\n"
    "                  [--json] [--verbose] [--trace] [--port N]\n"
    "    portmap-probe --help | --version\n"
    "\n"
    "DESCRIPTION\n"
    "    Asks the gateway for PCP (RFC 6887), NAT-PMP (RFC 6886) and UPnP-IGD at\n"
    "    once and prints, for each, whether it works and why not, the round-trip\n"
    "    time, the external address and the server epoch; for UPnP-IGD also the\n"
    "    device, its service, IGD version, connection status, control URL and\n"
    "    description URL. Then the verdict: which protocol new mappings will use,\n"
    "    and whether the external address is public, or private (another NAT\n"
    "    upstream: double NAT or carrier-grade NAT, so the Internet cannot reach\n"
    "    you through a mapping). When nothing works it says what to try.\n"
    "\n"
    "OPTIONS\n"
    "    --gateway ADDR        the gateway's IPv4 or IPv6 address (default: the\n"
    "                          default router)\n"
    "    --backend LIST        auto, or a comma-separated list of pcp, natpmp, upnp\n"
    "                          (default auto: probe every protocol)\n"
    "    --timeout MS          probe budget in milliseconds (default 0: the\n"
    "                          library's, 500); with --map also the wait for the\n"
    "                          test mapping (default 5000)\n"
    "    --map PORT[/PROTO]    also map internal PORT (tcp or udp, default tcp)\n"
    "                          through the selected protocol, print the external\n"
    "                          address and port, then delete the mapping again\n"
    "                          (waiting at most 2 s for the gateway to confirm)\n"
    "    --lifetime SECONDS    lifetime of the --map test mapping, 1-86400 (default\n"
    "                          60: it expires by itself if the delete is lost)\n"
    "    --json                print one JSON object instead of text\n"
    "    --verbose             log the library's messages (info and debug) to stderr\n"
    "    --trace               --verbose, plus a hex dump of every datagram sent and\n"
    "                          received, with direction, peer and port, on stderr\n"
    "    --port N              PCP/NAT-PMP server port (default 5351; for test servers)\n"
    "    -h, --help            print this help and exit\n"
    "    --version             print the version and exit\n"
    "    Options may also be written --name=VALUE; `--` ends the options.\n"
    "\n"
    "OUTPUT\n"
    "    A table with one row per protocol, then the verdict, on stdout. With\n"
    "    --json one object with the keys gateway, local_address, pcp, natpmp,\n"
    "    upnp (each: enabled, available, error, detail, gateway_result,\n"
    "    gateway_result_name, rtt_ms, external_address, external_is_private,\n"
    "    epoch; upnp also device_name, service_type, igd_version,\n"
    "    connection_status, control_url, location), selected (pcp, natpmp, upnp\n"
    "    or null), external (public, private or none: no external address known),\n"
    "    external_address, elapsed_ms, and with --map map_test (ok, backend,\n"
    "    protocol, internal_port, external_address, external_port, lifetime,\n"
    "    nonce, error, gateway_result, deleted, delete_error, map_ms, delete_ms,\n"
    "    elapsed_ms).\n"
    "\n"
    "EXIT STATUS\n"
    "    0  at least one protocol works (and, with --map, the mapping was granted)\n"
    "    1  no protocol works (or the --map test failed)\n"
    "    2  usage or system error\n"
    "\n"
    "EXAMPLES\n"
    "    portmap-probe\n"
    "    portmap-probe --gateway 192.168.1.1 --map 8000/tcp\n"
    "    portmap-probe --backend upnp --trace\n";

static const char usage_text[] =
    "usage: portmap-probe [--gateway ADDR] [--backend auto|pcp|natpmp|upnp[,...]] [--timeout MS] "
    "[--map PORT[/tcp|/udp]] [--json] [--verbose] [--trace] (see portmap-probe --help)";

/* ---------------------------------------------------------------------- */
/* Argument parsing                                                        */
/* ---------------------------------------------------------------------- */

static void parse_map_target(const char *arg, options_t *o, parse_error_t *err) {
  const char *proto = NULL;
  char port[16];

  switch (cli_parse_target(arg, &o->map_protocol, &o->map_port, &proto, port)) {
  case CLI_TARGET_OK:
    o->map = 1;
    return;
  case CLI_TARGET_NO_PROTOCOL:
    cli_set_error(err, "missing protocol after '/' in --map '%s': use tcp or udp", arg);
    return;
  case CLI_TARGET_BAD_PROTOCOL:
    cli_set_error(err, "unknown protocol '%s' in --map '%s': use tcp or udp", proto, arg);
    return;
  case CLI_TARGET_NO_PORT:
  case CLI_TARGET_LONG_PORT:
    cli_set_error(err, "--map '%s' is invalid: PORT must be a number 1-65535", arg);
    return;
  case CLI_TARGET_BAD_PORT:
    cli_set_error(err, "--map port '%s' is invalid: PORT must be a number 1-65535", port);
    return;
  }
}

/* The tool's own options; the common ones are CLI_OPT_*. */
enum option_id { OPT_TIMEOUT = CLI_OPT_TOOL, OPT_MAP, OPT_LIFETIME, OPT_TRACE };

static const cli_option_t option_defs[] = {
    {"gateway", CLI_OPT_GATEWAY, 1, 0}, {"backend", CLI_OPT_BACKEND, 1, 0},
    {"timeout", OPT_TIMEOUT, 1, 0},     {"map", OPT_MAP, 1, 0},
    {"lifetime", OPT_LIFETIME, 1, 0},   {"port", CLI_OPT_PORT, 1, 0},
    {"json", CLI_OPT_JSON, 0, 0},       {"verbose", CLI_OPT_VERBOSE, 0, 0},
    {"trace", OPT_TRACE, 0, 0},         {"help", CLI_OPT_HELP, 0, 0},
    {"version", CLI_OPT_VERSION, 0, 0},
};

#define N_OPTION_DEFS (sizeof option_defs / sizeof option_defs[0])

static void apply_option(options_t *o, const cli_option_t *def, const char *value,
                         parse_error_t *err) {
  unsigned long v;

  if (cli_apply_common_option(&o->common, def->id, value, err)) {
    return;
  }
  switch ((enum option_id)def->id) {
  case OPT_TIMEOUT:
    if (cli_parse_uint(value, 0, MAX_TIMEOUT_MS, &v) != 0) {
      cli_set_error(err, "--timeout '%s' is invalid: must be 0-%u milliseconds (0 = default)",
                    value, MAX_TIMEOUT_MS);
      return;
    }
    o->timeout_ms = (uint32_t)v;
    return;
  case OPT_MAP:
    parse_map_target(value, o, err);
    return;
  case OPT_LIFETIME:
    if (cli_parse_lifetime(value, &o->lifetime, err) == 0) {
      o->have_lifetime = 1;
    }
    return;
  case OPT_TRACE:
    o->trace = 1;
    return;
  }
}

/*
 * Read the whole command line into o. The first usage error is kept in err;
 * --help and --version win over errors.
 */
static void parse_args(int argc, char **argv, options_t *o, parse_error_t *err) {
  cli_args_t a = {argc, argv, 0, 0, 0, option_defs, N_OPTION_DEFS};
  for (;;) {
    const cli_option_t *def;
    const char *word, *value;
    cli_arg_kind_t kind = cli_next_arg(&a, &word, &def, &value, err);
    if (kind == CLI_ARG_END) {
      break;
    }
    if (kind == CLI_ARG_POSITIONAL) {
      cli_set_error(err, "unexpected argument '%s': portmap-probe takes only options", word);
    } else if (kind == CLI_ARG_HELP) {
      o->common.help = 1;
    } else if (kind == CLI_ARG_OPTION) {
      apply_option(o, def, value, err);
    }
  }
  if (o->have_lifetime && !o->map) {
    cli_set_error(err, "--lifetime only applies to the --map test mapping");
  }
}

/* ---------------------------------------------------------------------- */
/* The client, the probe and the map test                                  */
/* ---------------------------------------------------------------------- */

static int make_client(probe_t *p) {
  const options_t *o = p->opt;
  portmap_config_t cfg;

  p->diag.prog = PROG;
  p->diag.timestamps = 1;
  p->diag.sanitize = 1;
  cli_config_init(&cfg, &o->common, o->common.verbose || o->trace ? &p->diag : NULL);
  if (o->timeout_ms != 0) {
    cfg.probe_timeout_ms = o->timeout_ms;
  }
  /* The map test waits by itself; the client must not outlive it by much. */
  cfg.request_timeout_ms = o->timeout_ms != 0 ? o->timeout_ms : DEFAULT_MAP_TIMEOUT_MS;
  cfg.destroy_timeout_ms = 500;
  cfg.announce_port = -1; /* a probe does not wait for announcements */
  if (o->trace) {
    cli_config_trace(&cfg, &p->diag);
  }
  if (cli_client_new(PROG, &cfg, o->common.gateway, &p->client) != PORTMAP_OK) {
    return CLI_EXIT_USAGE;
  }
  return CLI_EXIT_OK;
}

static int run_probe(probe_t *p) {
  const options_t *o = p->opt;
  int wait = o->timeout_ms != 0 ? (int)(o->timeout_ms + PROBE_WAIT_MARGIN_MS) : 0;
  portmap_status_t st = portmap_probe_sync(p->client, wait, &p->res);

  if (st == PORTMAP_ERR_NO_GATEWAY) {
    /* Not a system error: the verdict is "nothing works", with the advice for it. */
    memset(&p->res, 0, sizeof p->res);
    p->res.pcp.error = p->res.natpmp.error = p->res.upnp.error = PORTMAP_ERR_NO_GATEWAY;
    p->res.pcp.gateway_result = p->res.natpmp.gateway_result = p->res.upnp.gateway_result = -1;
    p->res.selected = PORTMAP_BACKEND_NONE;
    p->no_gateway = 1;
    return CLI_EXIT_OK;
  }
  if (st != PORTMAP_OK) {
    fprintf(stderr, PROG ": internal error: portmap_probe_sync: %s\n", portmap_strerror(st));
    return CLI_EXIT_USAGE;
  }
  return CLI_EXIT_OK;
}

static void on_map_event(portmap_mapping_t *mapping, portmap_event_t event,
                         const portmap_info_t *info, void *user) {
  map_test_t *mt = user;
  (void)mapping;
  switch (event) {
  case PORTMAP_EVENT_MAPPED:
  case PORTMAP_EVENT_RENEWED:
  case PORTMAP_EVENT_CHANGED:
    if (!mt->outcome) {
      mt->outcome = 1;
      mt->ok = 1;
      mt->info = *info;
    }
    return;
  case PORTMAP_EVENT_LOST:
    return; /* the library retries; the wait bounds it */
  case PORTMAP_EVENT_FAILED:
  case PORTMAP_EVENT_DELETED:
    mt->final = 1;
    mt->final_event = event;
    mt->handle = NULL; /* freed by the library after this call */
    if (!mt->outcome) {
      mt->outcome = 1;
      mt->ok = 0;
      mt->info = *info;
      mt->error = event == PORTMAP_EVENT_FAILED ? info->status : PORTMAP_ERR_CANCELLED;
    } else if (!mt->ok) {
      /* the end of a mapping given up on: not news */
    } else if (event == PORTMAP_EVENT_DELETED) {
      mt->deleted = 1;
    } else {
      mt->del_error = info->status != PORTMAP_OK ? info->status : PORTMAP_ERR_REFUSED;
    }
    return;
  }
}

static cli_loop_state_t got_outcome(void *user) {
  const map_test_t *mt = user;
  return mt->outcome ? CLI_LOOP_DONE : CLI_LOOP_RUN;
}

static cli_loop_state_t got_final(void *user) {
  const map_test_t *mt = user;
  return mt->final ? CLI_LOOP_DONE : CLI_LOOP_RUN;
}

/*
 * Map, then revoke and wait for the DELETED. portmap_map plus our own loop
 * rather than portmap_map_sync: after portmap_map_sync returns, the
 * mapping's later events (the DELETED we wait for) go to no callback.
 */
static int run_map_test(probe_t *p) {
  const options_t *o = p->opt;
  map_test_t *mt = &p->mt;
  portmap_request_t req;
  portmap_status_t st;
  uint64_t start = cli_now_ms(), t;
  uint32_t wait = o->timeout_ms != 0 ? o->timeout_ms : DEFAULT_MAP_TIMEOUT_MS;
  cli_drive_result_t r;

  mt->info.protocol = o->map_protocol;
  mt->info.internal_port = o->map_port;
  mt->info.gateway_result = -1;
  if (p->res.selected == PORTMAP_BACKEND_NONE) {
    mt->skipped = "no protocol works with the gateway";
    return CLI_EXIT_OK;
  }
  portmap_request_init(&req);
  req.protocol = o->map_protocol;
  req.internal_port = o->map_port;
  req.external_port = o->map_port;
  req.lifetime = o->have_lifetime ? o->lifetime : DEFAULT_MAP_LIFETIME;
  /* No DESCRIPTION: miniupnpd refuses it (Q26), and the retry would blur the timing. */
  req.flags = PORTMAP_FLAG_ONCE;

  st = portmap_map(p->client, &req, on_map_event, mt, &mt->handle);
  if (st != PORTMAP_OK) {
    mt->handle = NULL;
    mt->outcome = 1;
    mt->error = st;
    mt->info.backend = p->res.selected;
    mt->elapsed_ms = cli_now_ms() - start;
    return CLI_EXIT_OK;
  }
  r = cli_drive(PROG, p->client, got_outcome, mt, start + wait, -1);
  t = cli_now_ms();
  mt->map_ms = t - start;
  if (r == CLI_DRIVE_ERROR) {
    return CLI_EXIT_USAGE;
  }
  if (r == CLI_DRIVE_DEADLINE) {
    /* No first answer in time: give up on it (the client's free bounds the delete). */
    mt->outcome = 1;
    mt->ok = 0;
    mt->error = PORTMAP_ERR_TIMEOUT;
    if (mt->handle != NULL) {
      (void)portmap_mapping_info(mt->handle, &mt->info);
      (void)portmap_mapping_revoke(mt->handle);
    }
    mt->elapsed_ms = t - start;
    return CLI_EXIT_OK;
  }
  if (mt->ok) {
    char buf[PORTMAP_ADDRSTRLEN];
    const char *e = cli_info_external(&mt->info, buf, sizeof buf);
    if (e != NULL) {
      snprintf(mt->external, sizeof mt->external, "%s", e);
      mt->have_external = 1;
    }
    if (mt->handle != NULL && !mt->final) {
      st = portmap_mapping_revoke(mt->handle);
      if (st == PORTMAP_OK) {
        r = cli_drive(PROG, p->client, got_final, mt, t + DELETE_WAIT_MS, -1);
        if (r == CLI_DRIVE_ERROR) {
          return CLI_EXIT_USAGE;
        }
        if (r == CLI_DRIVE_DEADLINE) {
          mt->del_error = PORTMAP_ERR_TIMEOUT;
        }
      } else {
        mt->del_error = st;
      }
    } else if (!mt->deleted && mt->del_error == PORTMAP_OK) {
      mt->del_error = PORTMAP_ERR_STATE;
    }
    mt->delete_ms = cli_now_ms() - t;
  }
  mt->elapsed_ms = cli_now_ms() - start;
  return CLI_EXIT_OK;
}

int main(int argc, char **argv) {
  options_t o;
  parse_error_t err;
  probe_t p;
  int rc;

  memset(&o, 0, sizeof o);
  memset(&err, 0, sizeof err);
  memset(&p, 0, sizeof p);
  parse_args(argc, argv, &o, &err);
  rc = cli_early_exit(PROG, &o.common, &err, help_text, usage_text);
  if (rc >= 0) {
    return rc;
  }

  p.opt = &o;
  p.diag.start_ms = cli_now_ms();
  rc = make_client(&p);
  if (rc != CLI_EXIT_OK) {
    return rc;
  }
  rc = run_probe(&p);
  if (rc == CLI_EXIT_OK && o.map) {
    rc = run_map_test(&p);
  }
  if (o.common.verbose || o.trace) {
    cli_print_stats(&p.diag, p.client);
  }
  /* The test mapping is deleted already (or given up on): the free's wait is bounded. */
  (void)portmap_client_free(p.client);
  p.client = NULL;
  if (rc != CLI_EXIT_OK) {
    return rc;
  }

  return probe_report(&p);
}
