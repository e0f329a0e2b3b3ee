/* SPDX-License-Identifier: MIT */
/*
 * The commands of `portmap`: add, keep, delete and list, each on its own
 * client built from the options, driven by the shared loop (cli_loop.c);
 * what they print is in portmap_report.c. Public API only.
 */
#include "portmap_tool.h"

#include "cli_loop.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------- */
/* Client, requests, callbacks                                             */
/* ---------------------------------------------------------------------- */

/*
 * request_timeout_ms: give up on a new mapping after this (0 = never).
 * listen: open the ANNOUNCE listener (only worth it for keep).
 */
static int make_client(cli_t *cli, uint32_t request_timeout_ms, uint32_t destroy_timeout_ms,
                       int listen) {
  const options_t *o = cli->opt;
  portmap_config_t cfg;
  portmap_status_t st;

  cli->diag.prog = PROG;
  cli_config_init(&cfg, &o->common, o->common.verbose ? &cli->diag : NULL);
  if (o->pcp_irt_ms != 0) {
    cfg.pcp_irt_ms = o->pcp_irt_ms;
  }
  cfg.request_timeout_ms = request_timeout_ms;
  cfg.destroy_timeout_ms = destroy_timeout_ms;
  if (!listen) {
    cfg.announce_port = -1;
  }
  st = cli_client_new(PROG, &cfg, o->common.gateway, &cli->client);
  if (st == PORTMAP_OK) {
    return CLI_EXIT_OK;
  }
  return pm_exit_code_for(st) == CLI_EXIT_OK ? CLI_EXIT_USAGE : pm_exit_code_for(st);
}

static void make_request(const options_t *o, const target_t *t, portmap_request_t *req) {
  portmap_request_init(req);
  req->protocol = t->protocol;
  req->internal_port = t->port;
  /* Suggest the internal port outside too unless told otherwise: what a user expects. */
  req->external_port = o->external_port != 0 ? o->external_port : t->port;
  req->lifetime = o->lifetime;
  req->description = o->description;
  req->ipv6 = o->ipv6;
  if (o->peer_address[0] != '\0') {
    req->peer_address = o->peer_address;
    req->peer_port = o->peer_port;
  }
  req->third_party = o->third_party;
  if (o->n_filters > 0) {
    req->filters = o->filters;
    req->n_filters = o->n_filters;
  }
  if (o->prefer_failure) {
    req->flags |= PORTMAP_FLAG_PREFER_FAILURE;
  }
  if (o->have_nonce) {
    req->nonce = o->nonce;
  }
}

/* An info block describing a request that got no answer, for failure output. */
static void info_from_request(const portmap_request_t *req, portmap_info_t *info) {
  memset(info, 0, sizeof *info);
  info->backend = PORTMAP_BACKEND_NONE;
  info->protocol = req->protocol;
  info->internal_port = req->internal_port;
  info->gateway_result = -1;
  if (req->nonce != NULL) {
    memcpy(info->nonce, req->nonce, NONCE_LEN);
  }
}

/*
 * A mapping that failed with st: its FAILED event on stdout (--json) and the
 * line on stderr saying why; the exit status for it.
 */
static int report_failed(cli_t *cli, portmap_info_t *info, portmap_status_t st, const char *prefix,
                         const char *description, int deleting) {
  info->status = st;
  if (cli->opt->common.json) {
    pm_print_event_json(cli, PORTMAP_EVENT_FAILED, info, description);
  }
  pm_report_failure(cli, prefix, st, info, deleting);
  return pm_exit_code_for(st);
}

/* The same for a request that got no answer (no backend took it, or no answer in time). */
static int report_request_failed(cli_t *cli, const portmap_request_t *req, portmap_status_t st,
                                 const char *prefix, const char *description, int deleting) {
  portmap_info_t info;
  info_from_request(req, &info);
  return report_failed(cli, &info, st, prefix, description, deleting);
}

static void mapping_prefix(const mapping_ctx_t *mc, char *buf, size_t len) {
  char pbuf[16];
  if (mc->cli->opt->cmd != CMD_KEEP) {
    buf[0] = '\0';
    return;
  }
  snprintf(buf, len, "%s %u: ", cli_proto_name(mc->target->protocol, pbuf, sizeof pbuf),
           (unsigned)mc->target->port);
}

static void on_event(portmap_mapping_t *mapping, portmap_event_t event, const portmap_info_t *info,
                     void *user) {
  mapping_ctx_t *mc = user;
  cli_t *cli = mc->cli;
  int deleting = cli->opt->cmd == CMD_DELETE;

  (void)mapping;
  if (cli->silent) {
    goto account;
  }
  if (event == PORTMAP_EVENT_MAPPED || event == PORTMAP_EVENT_RENEWED ||
      event == PORTMAP_EVENT_CHANGED) {
    mc->mapped = 1;
  }
  if (cli->opt->common.json) {
    pm_print_event_json(cli, event, info, deleting ? NULL : cli->opt->description);
  } else {
    pm_print_event_text(cli, event, info);
  }
  if (event == PORTMAP_EVENT_FAILED) {
    char prefix[32];
    mapping_prefix(mc, prefix, sizeof prefix);
    pm_report_failure(cli, prefix, info->status, info, deleting || cli->revoking);
  }
account:
  if ((event == PORTMAP_EVENT_FAILED || event == PORTMAP_EVENT_DELETED) && !mc->done) {
    mc->done = 1;
    mc->handle = NULL; /* freed by the library after this call */
    mc->final_event = event;
    mc->status = info->status;
    cli->active--;
    if (event == PORTMAP_EVENT_FAILED) {
      cli->failed++;
    }
  }
}

/* delete: done when the mapping got its final event. */
static cli_loop_state_t all_final(void *user) {
  const cli_t *cli = user;
  return cli->active > 0 ? CLI_LOOP_RUN : CLI_LOOP_DONE;
}

/* keep: also stop (and delete the mappings) when stdout went away. */
static cli_loop_state_t keep_state(void *user) {
  const cli_t *cli = user;
  if (cli->active == 0) {
    return CLI_LOOP_DONE;
  }
  return cli->output_broken ? CLI_LOOP_STOP : CLI_LOOP_RUN;
}

static void free_client(cli_t *cli) {
  if (cli->opt->common.verbose) {
    cli_print_stats(&cli->diag, cli->client);
  }
  (void)portmap_client_free(cli->client);
  cli->client = NULL;
}

/* ---------------------------------------------------------------------- */
/* Commands                                                                */
/* ---------------------------------------------------------------------- */

/*
 * ROUTER-QUIRKS Q9, Q10: a router that grants only permanent UPnP leases
 * (725, 402) answers with lifetime 0. Left behind by add, that rule would
 * never expire. Unless --permanent says it is wanted, delete it again, wait
 * for the delete (at most 2 s) and exit 1 saying what to use instead.
 */
static int undo_permanent(cli_t *cli, portmap_mapping_t *m, portmap_info_t *info) {
  mapping_ctx_t mc;
  int confirmed = 0;

  memset(&mc, 0, sizeof mc);
  mc.cli = cli;
  mc.target = &cli->opt->targets[0];
  mc.handle = m;
  cli->silent = 1; /* nothing of the delete on stdout: the failure below says it */
  cli->active = 1;
  if (portmap_mapping_set_callback(m, on_event, &mc) == PORTMAP_OK &&
      portmap_mapping_revoke(m) == PORTMAP_OK) {
    (void)cli_drive(PROG, cli->client, all_final, cli, cli_now_ms() + 2000u, -1);
    confirmed = mc.done && mc.final_event == PORTMAP_EVENT_DELETED;
  }
  /* otherwise portmap_client_free() deletes it, bounded by destroy_timeout_ms */
  if (cli->opt->common.json) {
    info->status = PORTMAP_ERR_LIFETIME;
    pm_print_event_json(cli, PORTMAP_EVENT_FAILED, info, cli->opt->description);
  }
  fprintf(stderr,
          PROG ": the gateway grants only permanent leases: a rule left by add would never "
               "expire, so it was deleted again%s; use `portmap keep` (it deletes the rule "
               "when it exits), or add --permanent to leave a permanent rule\n",
          confirmed ? "" : " (not confirmed in time)");
  return CLI_EXIT_REFUSED;
}

int pm_cmd_add(cli_t *cli) {
  const options_t *o = cli->opt;
  portmap_request_t req;
  portmap_info_t info;
  portmap_mapping_t *m = NULL;
  portmap_status_t st;
  int rc;

  rc = make_client(cli, o->timeout_ms, 1000, 0);
  if (rc != CLI_EXIT_OK) {
    return rc;
  }
  make_request(o, &o->targets[0], &req);
  info_from_request(&req, &info);
  st = portmap_map_sync(cli->client, &req, (int)o->timeout_ms, &info, &m);
  if (st == PORTMAP_OK && m == NULL) {
    st = PORTMAP_ERR_STATE; /* no handle: we could not leave the mapping in place */
  }
  if (st == PORTMAP_OK && info.lifetime == 0 && !o->permanent) {
    rc = undo_permanent(cli, m, &info);
  } else if (st == PORTMAP_OK) {
    /* add leaves the mapping on the gateway: forget it without deleting it. */
    portmap_status_t dst = portmap_mapping_detach(m);
    if (dst != PORTMAP_OK) {
      fprintf(stderr,
              PROG ": the gateway granted the mapping but it could not be kept (%s); it is "
                   "deleted again\n",
              portmap_strerror(dst));
      rc = CLI_EXIT_USAGE;
    } else if (o->common.json) {
      pm_print_event_json(cli, PORTMAP_EVENT_MAPPED, &info, o->description);
    } else {
      pm_print_event_text(cli, PORTMAP_EVENT_MAPPED, &info);
    }
  } else {
    if (info.protocol == 0 && info.internal_port == 0) {
      /* portmap_map refused the request before any backend saw it: describe the request */
      info_from_request(&req, &info);
    }
    rc = report_failed(cli, &info, st, "", o->description, 0);
  }
  free_client(cli);
  if (rc == CLI_EXIT_OK && cli->output_broken) {
    rc = CLI_EXIT_USAGE;
  }
  return rc;
}

int pm_cmd_delete(cli_t *cli) {
  const options_t *o = cli->opt;
  portmap_request_t req;
  mapping_ctx_t mc;
  portmap_status_t st;
  cli_drive_result_t dr;
  int rc;

  rc = make_client(cli, o->timeout_ms, 200, 0);
  if (rc != CLI_EXIT_OK) {
    return rc;
  }
  make_request(o, &o->targets[0], &req);
  req.external_port = 0;
  req.lifetime = 0;
  req.description = NULL;
  req.flags |= PORTMAP_FLAG_DELETE;

  memset(&mc, 0, sizeof mc);
  mc.cli = cli;
  mc.target = &o->targets[0];
  cli->maps = &mc;
  cli->n_maps = 1;
  st = portmap_map(cli->client, &req, on_event, &mc, &mc.handle);
  if (st != PORTMAP_OK) {
    rc = report_request_failed(cli, &req, st, "", NULL, 1);
    goto done;
  }
  cli->active = 1;
  /* The library gives up after request_timeout_ms; the margin only guards against it not. */
  dr = cli_drive(PROG, cli->client, all_final, cli, cli_now_ms() + o->timeout_ms + 1000u, -1);
  if (dr == CLI_DRIVE_DONE) {
    rc = mc.final_event == PORTMAP_EVENT_DELETED ? CLI_EXIT_OK : pm_exit_code_for(mc.status);
    if (rc == CLI_EXIT_OK && cli->output_broken) {
      rc = CLI_EXIT_USAGE;
    }
  } else if (dr == CLI_DRIVE_DEADLINE) {
    rc = report_request_failed(cli, &req, PORTMAP_ERR_TIMEOUT, "", NULL, 1);
  } else {
    rc = CLI_EXIT_USAGE;
  }
done:
  /* What freeing the client does to a mapping we gave up on is not news. */
  cli->silent = 1;
  free_client(cli);
  cli->maps = NULL;
  cli->n_maps = 0;
  return rc;
}

int pm_cmd_keep(cli_t *cli) {
  const options_t *o = cli->opt;
  int pipefd[2] = {-1, -1};
  portmap_status_t st;
  cli_drive_result_t dr;
  size_t i;
  int rc = CLI_EXIT_OK;

  if (cli_signals_install(PROG, pipefd) != 0) {
    rc = CLI_EXIT_USAGE;
    goto done;
  }
  /* The tool waits SHUTDOWN_WAIT_MS itself: the client's own wait need not be long. */
  rc = make_client(cli, o->timeout_ms, 200, 1);
  if (rc != CLI_EXIT_OK) {
    goto done;
  }
  cli->maps = calloc(o->n_targets, sizeof *cli->maps);
  if (cli->maps == NULL) {
    fputs(PROG ": out of memory\n", stderr);
    rc = CLI_EXIT_USAGE;
    goto done;
  }
  cli->n_maps = o->n_targets;
  for (i = 0; i < o->n_targets; i++) {
    mapping_ctx_t *mc = &cli->maps[i];
    portmap_request_t req;
    mc->cli = cli;
    mc->target = &o->targets[i];
    make_request(o, mc->target, &req);
    st = portmap_map(cli->client, &req, on_event, mc, &mc->handle);
    if (st != PORTMAP_OK) {
      char prefix[32];
      mc->handle = NULL;
      mc->done = 1;
      mapping_prefix(mc, prefix, sizeof prefix);
      rc = report_request_failed(cli, &req, st, prefix, o->description, 0);
      goto shutdown;
    }
    cli->active++;
  }

  dr = cli_drive(PROG, cli->client, keep_state, cli, 0, pipefd[0]);
  if (dr == CLI_DRIVE_DONE) {
    /* Nothing is left: every mapping failed for good (each already reported). */
    for (i = 0; i < cli->n_maps; i++) {
      if (cli->maps[i].final_event == PORTMAP_EVENT_FAILED) {
        rc = pm_exit_code_for(cli->maps[i].status);
        break;
      }
    }
    if (cli->failed == cli->n_maps && rc == CLI_EXIT_OK) {
      rc = CLI_EXIT_REFUSED;
    }
    goto done;
  }
  if (dr == CLI_DRIVE_ERROR) {
    rc = CLI_EXIT_USAGE;
  } else if (cli->output_broken) {
    fprintf(stderr, PROG ": cannot write to stdout; deleting the mappings\n");
    rc = CLI_EXIT_USAGE;
  }

shutdown:
  cli->revoking = 1;
  for (i = 0; i < cli->n_maps; i++) {
    if (cli->maps[i].handle != NULL && !cli->maps[i].done) {
      /* PORTMAP_ERR_STATE (already revoked) is fine: its final event is on its way. */
      (void)portmap_mapping_revoke(cli->maps[i].handle);
    }
  }
  /* A second signal stops the wait; the client's own bounded wait follows. */
  (void)cli_drive(PROG, cli->client, keep_state, cli, cli_now_ms() + SHUTDOWN_WAIT_MS, pipefd[0]);

done:
  if (cli->client != NULL) {
    free_client(cli);
  }
  free(cli->maps);
  cli->maps = NULL;
  cli->n_maps = 0;
  cli_signals_close(pipefd);
  return rc;
}

int pm_cmd_list(cli_t *cli) {
  const options_t *o = cli->opt;
  portmap_list_entry_t *entries;
  size_t total = 0, n;
  portmap_status_t st;
  int rc;

  entries = calloc(LIST_CAP, sizeof *entries);
  if (entries == NULL) {
    fputs(PROG ": out of memory\n", stderr);
    return CLI_EXIT_USAGE;
  }
  rc = make_client(cli, o->timeout_ms, 200, 0);
  if (rc != CLI_EXIT_OK) {
    free(entries);
    return rc;
  }
  st = portmap_list_sync(cli->client, (int)o->timeout_ms, entries, LIST_CAP, &total);
  if (st != PORTMAP_OK) {
    rc = pm_report_list_failure(cli, st);
    goto done;
  }
  n = total < LIST_CAP ? total : LIST_CAP;
  pm_print_list(cli, entries, n, total);
  if (cli->output_broken) {
    rc = CLI_EXIT_USAGE;
  }
done:
  free_client(cli);
  free(entries);
  return rc;
}
