/* SPDX-License-Identifier: MIT */
/*
 * What `portmap` prints: mapping events as text or JSON lines, the list
 * table, and the one stderr line per failure with what to try; and the
 * exit status each failure gives.
 */
#include "portmap_tool.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

const char *pm_gateway_text(const cli_t *cli, char *buf, size_t len) {
  if (cli->opt->common.gateway != NULL) {
    return cli->opt->common.gateway;
  }
  if (cli->client != NULL && portmap_client_gateway(cli->client, buf, len) == PORTMAP_OK &&
      buf[0] != '\0') {
    /* The client names one gateway (its IPv4 one when it has both): never show that as
     * the server of an IPv6 mapping. */
    if (cli->opt->ipv6 && strchr(buf, ':') == NULL) {
      return NULL;
    }
    return buf;
  }
  return NULL;
}

void pm_check_output(cli_t *cli) {
  if (fflush(stdout) != 0 || ferror(stdout)) {
    cli->output_broken = 1;
  }
}

/* The backends a failure can speak of: enabled ones (tried, or not). */
static int backend_listed(const portmap_backend_result_t *t) {
  return t->backend != PORTMAP_BACKEND_NONE && (t->tried || t->status != PORTMAP_ERR_NO_BACKEND);
}

/* "tried": what each enabled backend's last attempt came to. */
static void print_tried_json(FILE *f, int *first, const portmap_info_t *info) {
  const char *sep = "";
  int i;
  cli_json_key(f, first, "tried");
  fputc('[', f);
  for (i = 0; i < PORTMAP_INFO_BACKENDS; i++) {
    const portmap_backend_result_t *t = &info->tried[i];
    int one = 1;
    if (!backend_listed(t)) {
      continue;
    }
    fputs(sep, f);
    sep = ",";
    cli_json_str(f, &one, "backend", portmap_backend_name(t->backend));
    cli_json_bool(f, &one, "tried", t->tried);
    cli_json_str(f, &one, "status",
                 !t->tried ? (t->status == PORTMAP_ERR_UNSUPPORTED ? "cannot express this request"
                                                                   : "not tried")
                 : t->status == PORTMAP_OK ? "ok"
                                           : portmap_strerror(t->status));
    cli_json_num_or_null(f, &one, "gateway_result", t->tried && t->gateway_result >= 0,
                         t->gateway_result);
    cli_json_str(f, &one, "gateway_result_name",
                 t->tried && t->gateway_result >= 0
                     ? cli_gateway_result_name(t->backend, t->gateway_result)
                     : NULL);
    fputc('}', f);
  }
  fputc(']', f);
}

void pm_print_event_json(cli_t *cli, portmap_event_t event, const portmap_info_t *info,
                         const char *description) {
  char buf[PORTMAP_ADDRSTRLEN], gw[PORTMAP_ADDRSTRLEN], nonce[2 * NONCE_LEN + 1];
  const char *ext = cli_info_external(info, buf, sizeof buf);
  int first = 1;
  FILE *f = stdout;

  cli_json_str(f, &first, "event", portmap_event_name(event));
  cli_json_str(f, &first, "backend", portmap_backend_name(info->backend));
  if (info->protocol == PORTMAP_PROTO_TCP || info->protocol == PORTMAP_PROTO_UDP) {
    cli_json_str(f, &first, "protocol", info->protocol == PORTMAP_PROTO_TCP ? "tcp" : "udp");
  } else {
    cli_json_num(f, &first, "protocol", info->protocol);
  }
  cli_json_num(f, &first, "internal_port", info->internal_port);
  cli_json_str(f, &first, "external_address", ext);
  cli_json_num(f, &first, "external_port", info->external_port);
  cli_json_bool(f, &first, "external_is_private", info->external_is_private);
  cli_json_num(f, &first, "lifetime", info->lifetime);
  cli_nonce_hex(info->nonce, nonce);
  /* The nonce is PCP's; NONE is a request that got no backend yet (a delete's given nonce). */
  cli_json_str(f, &first, "nonce",
               cli_nonce_is_set(info->nonce) && (info->backend == PORTMAP_BACKEND_PCP ||
                                                 info->backend == PORTMAP_BACKEND_NONE)
                   ? nonce
                   : NULL);
  cli_json_str(f, &first, "description", description);
  cli_json_str(f, &first, "gateway", pm_gateway_text(cli, gw, sizeof gw));
  if (cli->opt->peer_address[0] != '\0') {
    char peer[PORTMAP_ADDRSTRLEN + 8];
    snprintf(peer, sizeof peer, cli->opt->peer_is_v6 ? "[%s]:%u" : "%s:%u", cli->opt->peer_address,
             (unsigned)cli->opt->peer_port);
    cli_json_str(f, &first, "peer", peer);
  }
  if (event == PORTMAP_EVENT_FAILED || event == PORTMAP_EVENT_LOST) {
    cli_json_str(f, &first, "error", portmap_strerror(info->status));
    if (info->gateway_result >= 0) {
      cli_json_num(f, &first, "gateway_result", info->gateway_result);
      cli_json_str(f, &first, "gateway_result_name",
                   cli_gateway_result_name(info->backend, info->gateway_result));
    } else {
      cli_json_str(f, &first, "gateway_result", NULL);
      cli_json_str(f, &first, "gateway_result_name", NULL);
    }
    print_tried_json(f, &first, info);
  }
  fputs("}\n", f);
  pm_check_output(cli);
}

void pm_print_event_text(cli_t *cli, portmap_event_t event, const portmap_info_t *info) {
  char pbuf[16], abuf[PORTMAP_ADDRSTRLEN], nonce[2 * NONCE_LEN + 1];
  const char *proto = cli_proto_name(info->protocol, pbuf, sizeof pbuf);
  const char *ext = cli_info_external(info, abuf, sizeof abuf);

  switch (event) {
  case PORTMAP_EVENT_MAPPED:
  case PORTMAP_EVENT_RENEWED:
  case PORTMAP_EVENT_CHANGED:
    printf("%s %s %u -> ", portmap_event_name(event), proto, (unsigned)info->internal_port);
    if (ext == NULL) {
      printf("?:%u", (unsigned)info->external_port);
    } else if (strchr(ext, ':') != NULL) {
      printf("[%s]:%u", ext, (unsigned)info->external_port);
    } else {
      printf("%s:%u", ext, (unsigned)info->external_port);
    }
    if (info->lifetime == 0) {
      /* Q9: a UPnP lease that never expires, not a lifetime of 0 s */
      printf(" via %s, permanent lease", portmap_backend_name(info->backend));
    } else {
      printf(" via %s, lifetime %lu s", portmap_backend_name(info->backend),
             (unsigned long)info->lifetime);
    }
    if (info->backend == PORTMAP_BACKEND_PCP && cli_nonce_is_set(info->nonce)) {
      cli_nonce_hex(info->nonce, nonce);
      printf(", nonce %s", nonce);
    }
    if (info->external_is_private) {
      fputs(" (the external address is private: another NAT upstream, not reachable from the "
            "Internet)",
            stdout);
    }
    fputc('\n', stdout);
    break;
  case PORTMAP_EVENT_LOST:
    printf("lost %s %u: %s; retrying\n", proto, (unsigned)info->internal_port,
           portmap_strerror(info->status));
    break;
  case PORTMAP_EVENT_DELETED:
    printf("deleted %s %u", proto, (unsigned)info->internal_port);
    if (info->backend != PORTMAP_BACKEND_NONE) {
      printf(" via %s", portmap_backend_name(info->backend));
    }
    fputc('\n', stdout);
    break;
  case PORTMAP_EVENT_FAILED:
    break;
  }
  pm_check_output(cli);
}

int pm_exit_code_for(portmap_status_t status) {
  switch (status) {
  case PORTMAP_OK:
    return CLI_EXIT_OK;
  case PORTMAP_ERR_TIMEOUT:
  case PORTMAP_ERR_REFUSED:
  case PORTMAP_ERR_UNREACHABLE:
  case PORTMAP_ERR_NATPMP_GATEWAY:
  case PORTMAP_ERR_NO_GATEWAY:
  case PORTMAP_ERR_NO_IGD:
    return CLI_EXIT_REFUSED;
  default:
    return CLI_EXIT_USAGE;
  }
}

/* What to suggest when nothing answered, given the backends the user allowed. */
static const char *no_answer_hint(const cli_t *cli) {
  unsigned b = cli->opt->common.backends;
  if (b == PORTMAP_BACKEND_UPNP) {
    return "is UPnP enabled on the router? try --backend auto";
  }
  if (b != 0 && (b & PORTMAP_BACKEND_UPNP) != 0) {
    return "is PCP, NAT-PMP or UPnP enabled on the router?";
  }
  return "is PCP/NAT-PMP enabled on the router? try --backend upnp";
}

/* A hint for a PCP result code that refused a mapping (RFC 6887 section 7.4). */
static const char *refusal_hint(int result, int deleting, const options_t *o) {
  int have_nonce = o->have_nonce;
  switch (result) {
  case 2: /* NOT_AUTHORIZED */
    if (deleting && !have_nonce) {
      return "PCP needs the mapping's nonce: pass --nonce HEX from `portmap add`";
    }
    if (deleting) {
      return "wrong nonce, or the mapping belongs to another client";
    }
    return "the router's policy forbids this mapping; check its PCP/port-forwarding settings";
  case 5: /* UNSUPP_OPTION */
    if (o->third_party != NULL) {
      /* Q27: miniupnpd refuses THIRD_PARTY unless pcp_allow_thirdparty=yes */
      return "THIRD_PARTY is not permitted by this gateway; map from the host itself, or "
             "allow third-party mappings on the router (miniupnpd: pcp_allow_thirdparty=yes)";
    }
    if (o->n_filters > 0 || o->prefer_failure) {
      return "the router does not support an option used; try without --filter or "
             "--prefer-failure";
    }
    return "the router rejected an option; try without --description";
  case 6: /* MALFORMED_OPTION */
    return "the router rejected an option; try without --description";
  case 8: /* NO_RESOURCES */
    if (deleting) {
      /* miniupnpd answers a delete of a mapping it does not have (e.g. after its reboot)
       * with NO_RESOURCES */
      return "some routers (miniupnpd) answer this when they have no such mapping, e.g. "
             "after a reboot; it may already be gone";
    }
    return "the router has no room for more mappings; delete some or try later";
  case 9: /* UNSUPP_PROTOCOL */
    return "the router cannot map this protocol";
  case 10: /* USER_EX_QUOTA */
    return "you have too many mappings on the router; delete some first";
  case 11: /* CANNOT_PROVIDE_EXTERNAL */
    if (o->prefer_failure) {
      return "the external port asked for is taken or not allowed, and --prefer-failure "
             "forbids another; "
             "choose another --external or drop --prefer-failure";
    }
    return "the external port is taken; drop --external or choose another port";
  case 12: /* ADDRESS_MISMATCH */
    return "the router sees another source address: is there a second NAT in between?";
  case 7: /* NETWORK_FAILURE */
    return "the router is not ready (no external address yet?); try again later";
  default:
    return NULL;
  }
}

static void report_failure_text(cli_t *cli, const char *prefix, portmap_status_t status,
                                const portmap_info_t *info, int deleting) {
  char gwbuf[PORTMAP_ADDRSTRLEN];
  const char *gw = pm_gateway_text(cli, gwbuf, sizeof gwbuf);
  const char *gw_or = gw != NULL ? gw : "the gateway";
  const char *what = deleting ? "the delete" : "the mapping";
  int saved_errno = errno;

  fprintf(stderr, PROG ": %s", prefix);
  if (cli->revoking && (status == PORTMAP_ERR_TIMEOUT || status == PORTMAP_ERR_CANCELLED)) {
    fprintf(stderr,
            "%s did not confirm the delete in time; the mapping expires with its "
            "lifetime",
            gw_or);
    return;
  }
  switch (status) {
  case PORTMAP_ERR_TIMEOUT:
    if (info != NULL && info->backend == PORTMAP_BACKEND_UPNP) {
      fprintf(stderr, "no answer from the UPnP-IGD of %s", gw_or);
    } else if (info != NULL && info->backend == PORTMAP_BACKEND_NATPMP) {
      /* NAT-PMP (libnatpmp) always uses port 5351, whatever --port says */
      fprintf(stderr, "no NAT-PMP answer from %s", gw_or);
    } else {
      fprintf(stderr, "no answer from %s on port %u", gw_or,
              cli_server_port(cli->opt->common.server_port));
    }
    if (cli->opt->timeout_ms > 0) {
      fprintf(stderr, " within %lu ms", (unsigned long)cli->opt->timeout_ms);
    }
    fprintf(stderr, "; %s", no_answer_hint(cli));
    return;
  case PORTMAP_ERR_UNREACHABLE:
    if (info != NULL && info->backend == PORTMAP_BACKEND_NATPMP) {
      fprintf(stderr, "nothing listens on the NAT-PMP port of %s (ICMP port unreachable); %s",
              gw_or, no_answer_hint(cli));
    } else {
      fprintf(stderr, "nothing listens on %s UDP port %u (ICMP port unreachable); %s", gw_or,
              cli_server_port(cli->opt->common.server_port), no_answer_hint(cli));
    }
    return;
  case PORTMAP_ERR_NO_IGD:
    fprintf(stderr,
            "the UPnP devices of %s offer no WAN connection service: none is an Internet "
            "gateway; %s",
            gw_or, no_answer_hint(cli));
    return;
  case PORTMAP_ERR_REFUSED: {
    int result = info != NULL ? info->gateway_result : -1;
    const char *hint = refusal_hint(result, deleting, cli->opt);
    if (result >= 0 &&
        strcmp(cli_gateway_result_name(info->backend, info->gateway_result), "UNKNOWN") != 0) {
      fprintf(stderr, "%s refused %s: %s", gw != NULL ? gw : "gateway", what,
              cli_gateway_result_name(info->backend, info->gateway_result));
    } else if (result >= 0) {
      fprintf(stderr, "%s refused %s: result %d", gw != NULL ? gw : "gateway", what, result);
    } else {
      fprintf(stderr, "%s refused %s", gw != NULL ? gw : "gateway", what);
    }
    if (hint != NULL) {
      fprintf(stderr, " (%s)", hint);
    }
    return;
  }
  case PORTMAP_ERR_NATPMP_GATEWAY:
    fprintf(stderr,
            "%s speaks NAT-PMP, not PCP (it answered UNSUPP_VERSION); try --backend "
            "natpmp or --backend auto",
            gw_or);
    return;
  case PORTMAP_ERR_NO_GATEWAY:
    fputs("no default gateway found; pass --gateway ADDR", stderr);
    return;
  case PORTMAP_ERR_NO_BACKEND:
    fputs("none of the selected backends is usable (not built in, or not for this "
          "request); try --backend auto",
          stderr);
    return;
  case PORTMAP_ERR_UNSUPPORTED:
    fprintf(stderr, "the %s backend cannot express this request; try another --backend",
            portmap_backend_name(info != NULL ? info->backend : PORTMAP_BACKEND_NONE));
    return;
  case PORTMAP_ERR_SYSTEM:
    fprintf(stderr, "a system call failed: %s", strerror(saved_errno));
    return;
  case PORTMAP_ERR_NOMEM:
    fputs("out of memory", stderr);
    return;
  case PORTMAP_ERR_CANCELLED:
    fprintf(stderr, "%s was cancelled", what);
    return;
  case PORTMAP_ERR_THIRD_PARTY:
    fprintf(stderr,
            "--third-party %s is this host's own address: THIRD_PARTY maps for another host; "
            "drop --third-party",
            cli->opt->third_party != NULL ? cli->opt->third_party : "");
    return;
  case PORTMAP_ERR_ADDRESS:
    if (cli->opt->ipv6 || cli->opt->peer_address[0] != '\0' || cli->opt->third_party != NULL ||
        cli->opt->n_filters > 0) {
      fprintf(stderr, "%s failed: %s (check the addresses given and --ipv6)", what,
              portmap_strerror(status));
      return;
    }
    break;
  default:
    break;
  }
  fprintf(stderr, "%s failed: %s", what, portmap_strerror(status));
}

/* One backend's last attempt, in words: "no answer", "refused (NOT_AUTHORIZED)". */
static void put_backend_result(FILE *f, const portmap_backend_result_t *t) {
  if (!t->tried) {
    fputs(t->status == PORTMAP_ERR_UNSUPPORTED ? "cannot express this request" : "not tried", f);
    return;
  }
  fputs(t->status == PORTMAP_OK ? "worked" : portmap_strerror(t->status), f);
  if (t->gateway_result > 0) {
    const char *name = cli_gateway_result_name(t->backend, t->gateway_result);
    if (strcmp(name, "UNKNOWN") != 0) {
      fprintf(f, " (%s)", name);
    } else {
      fprintf(f, " (result %d)", t->gateway_result);
    }
  }
}

void pm_report_failure(cli_t *cli, const char *prefix, portmap_status_t status,
                       const portmap_info_t *info, int deleting) {
  int listed = 0, i;
  report_failure_text(cli, prefix, status, info, deleting);
  if (cli->revoking && (status == PORTMAP_ERR_TIMEOUT || status == PORTMAP_ERR_CANCELLED)) {
    fputc('\n', stderr);
    return;
  }
  for (i = 0; info != NULL && i < PORTMAP_INFO_BACKENDS; i++) {
    listed += backend_listed(&info->tried[i]);
  }
  if (listed >= 2) {
    /* with more than one backend, say what each one came to */
    const char *sep = " [";
    for (i = 0; i < PORTMAP_INFO_BACKENDS; i++) {
      if (!backend_listed(&info->tried[i])) {
        continue;
      }
      fprintf(stderr, "%s%s: ", sep, portmap_backend_name(info->tried[i].backend));
      put_backend_result(stderr, &info->tried[i]);
      sep = "; ";
    }
    fputc(']', stderr);
  }
  fputc('\n', stderr);
}

/* A fixed-size string from the library, or "" when it is empty or not terminated. */
static const char *entry_text(const char *s, size_t size) {
  const char *t = cli_field(s, size);
  return t != NULL ? t : "";
}

#define ENTRY_TEXT(s) entry_text((s), sizeof(s))

static void print_entry_json(cli_t *cli, const portmap_list_entry_t *e) {
  char gw[PORTMAP_ADDRSTRLEN];
  const char *remote = ENTRY_TEXT(e->remote_host);
  const char *client_addr = ENTRY_TEXT(e->internal_client);
  int first = 1;
  FILE *f = stdout;

  cli_json_str(f, &first, "event", "entry");
  /* Only UPnP-IGD lists mappings. */
  cli_json_str(f, &first, "backend", portmap_backend_name(PORTMAP_BACKEND_UPNP));
  if (e->protocol == PORTMAP_PROTO_TCP || e->protocol == PORTMAP_PROTO_UDP) {
    cli_json_str(f, &first, "protocol", e->protocol == PORTMAP_PROTO_TCP ? "tcp" : "udp");
  } else {
    cli_json_num(f, &first, "protocol", e->protocol);
  }
  cli_json_num(f, &first, "external_port", e->external_port);
  cli_json_str(f, &first, "internal_client", client_addr[0] != '\0' ? client_addr : NULL);
  cli_json_num(f, &first, "internal_port", e->internal_port);
  cli_json_str(f, &first, "remote_host", remote[0] != '\0' ? remote : NULL);
  cli_json_str(f, &first, "description", ENTRY_TEXT(e->description));
  cli_json_num(f, &first, "lease", e->lease);
  cli_json_bool(f, &first, "enabled", e->enabled);
  cli_json_str(f, &first, "gateway", pm_gateway_text(cli, gw, sizeof gw));
  fputs("}\n", f);
  pm_check_output(cli);
}

static void print_entries_text(cli_t *cli, const portmap_list_entry_t *entries, size_t n,
                               size_t total) {
  char gw[PORTMAP_ADDRSTRLEN];
  const char *gwt = pm_gateway_text(cli, gw, sizeof gw);
  size_t i;

  if (total == 0) {
    printf("no port mappings on %s\n", gwt != NULL ? gwt : "the gateway");
    pm_check_output(cli);
    return;
  }
  printf("%-6s %-9s %-29s %-11s %-8s %-16s %s\n", "PROTO", "EXTERNAL", "INTERNAL CLIENT:PORT",
         "LEASE", "ENABLED", "REMOTE HOST", "DESCRIPTION");
  for (i = 0; i < n; i++) {
    const portmap_list_entry_t *e = &entries[i];
    char pbuf[16], internal[PORTMAP_ADDRSTRLEN + 16], lease[24];
    const char *client_addr = ENTRY_TEXT(e->internal_client);
    const char *remote = ENTRY_TEXT(e->remote_host);
    int w;

    if (strchr(client_addr, ':') != NULL) {
      snprintf(internal, sizeof internal, "[%s]:%u", client_addr, (unsigned)e->internal_port);
    } else {
      snprintf(internal, sizeof internal, "%s:%u", client_addr[0] != '\0' ? client_addr : "?",
               (unsigned)e->internal_port);
    }
    if (e->lease == 0) {
      snprintf(lease, sizeof lease, "permanent");
    } else {
      snprintf(lease, sizeof lease, "%lu s", (unsigned long)e->lease);
    }
    printf("%-6s %-9u ", cli_proto_name(e->protocol, pbuf, sizeof pbuf),
           (unsigned)e->external_port);
    cli_put_sanitized(stdout, internal, sizeof internal);
    for (w = (int)strlen(internal); w < 29; w++) {
      fputc(' ', stdout);
    }
    printf(" %-11s %-8s ", lease, e->enabled ? "yes" : "no");
    cli_put_sanitized(stdout, remote[0] != '\0' ? remote : "*", sizeof e->remote_host);
    for (w = remote[0] != '\0' ? (int)strlen(remote) : 1; w < 16; w++) {
      fputc(' ', stdout);
    }
    fputc(' ', stdout);
    cli_put_sanitized(stdout, ENTRY_TEXT(e->description), sizeof e->description);
    fputc('\n', stdout);
  }
  if (total > n) {
    printf("(the first %zu of %zu mappings)\n", n, total);
  }
  pm_check_output(cli);
}

int pm_report_list_failure(cli_t *cli, portmap_status_t st) {
  char gwbuf[PORTMAP_ADDRSTRLEN];
  const char *gw = pm_gateway_text(cli, gwbuf, sizeof gwbuf);
  const char *gw_or = gw != NULL ? gw : "the gateway";
  unsigned b = cli->opt->common.backends;

  if (cli->opt->common.json) {
    int first = 1;
    cli_json_str(stdout, &first, "event", "failed");
    cli_json_str(stdout, &first, "backend",
                 st == PORTMAP_ERR_UNSUPPORTED ? NULL : portmap_backend_name(PORTMAP_BACKEND_UPNP));
    cli_json_str(stdout, &first, "error", portmap_strerror(st));
    cli_json_str(stdout, &first, "gateway", gw);
    fputs("}\n", stdout);
    pm_check_output(cli);
  }
  switch (st) {
  case PORTMAP_ERR_UNSUPPORTED:
    if (b != 0 && (b & PORTMAP_BACKEND_UPNP) == 0) {
      fputs(PROG ": cannot list mappings: PCP and NAT-PMP cannot list mappings (only UPnP "
                 "can); try --backend upnp\n",
            stderr);
    } else {
      fprintf(stderr,
              PROG ": cannot list mappings: PCP and NAT-PMP cannot list mappings (only UPnP "
                   "can), and no UPnP-IGD is usable on %s; is UPnP enabled on the router?\n",
              gw_or);
    }
    return CLI_EXIT_REFUSED;
  case PORTMAP_ERR_TIMEOUT:
    fprintf(stderr,
            PROG ": cannot list mappings: no answer from the UPnP-IGD of %s within %lu ms; is "
                 "UPnP enabled on the router?\n",
            gw_or, (unsigned long)cli->opt->timeout_ms);
    return CLI_EXIT_REFUSED;
  case PORTMAP_ERR_NO_GATEWAY:
    fputs(PROG ": cannot list mappings: no default gateway found; pass --gateway ADDR\n", stderr);
    return CLI_EXIT_REFUSED;
  default:
    fprintf(stderr, PROG ": cannot list the mappings of %s: %s\n", gw_or, portmap_strerror(st));
    return pm_exit_code_for(st);
  }
}

void pm_print_list(cli_t *cli, const portmap_list_entry_t *entries, size_t n, size_t total) {
  size_t i;
  if (cli->opt->common.json) {
    int first = 1;
    for (i = 0; i < n; i++) {
      print_entry_json(cli, &entries[i]);
    }
    cli_json_str(stdout, &first, "event", "end");
    cli_json_num(stdout, &first, "count", (long long)n);
    cli_json_num(stdout, &first, "total", (long long)total);
    fputs("}\n", stdout);
    pm_check_output(cli);
  } else {
    print_entries_text(cli, entries, n, total);
  }
}
