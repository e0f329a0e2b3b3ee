/* SPDX-License-Identifier: MIT */
/*
 * What `portmap-probe` found, told: for each protocol whether it works and
 * why not, the UPnP device, the map test, the verdict and what to try; as a
 * table or one JSON object on stdout, and one stderr line when nothing works.
 */
#include "probe_tool.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------------- */
/* Names                                                                   */
/* ---------------------------------------------------------------------- */

/* How the protocols are called in text, and in JSON. */
static const char *display_name(portmap_backend_t b) {
  switch (b) {
  case PORTMAP_BACKEND_PCP:
    return "PCP";
  case PORTMAP_BACKEND_NATPMP:
    return "NAT-PMP";
  case PORTMAP_BACKEND_UPNP:
    return "UPnP-IGD";
  case PORTMAP_BACKEND_NONE:
    break;
  }
  return "none";
}

static const char *proto_name(int protocol) {
  return protocol == PORTMAP_PROTO_UDP ? "udp" : "tcp";
}

typedef struct backend_view {
  portmap_backend_t id;
  const portmap_probe_backend_t *r;
} backend_view_t;

static void backend_views(const probe_t *p, backend_view_t v[3]) {
  v[0].id = PORTMAP_BACKEND_PCP;
  v[0].r = &p->res.pcp;
  v[1].id = PORTMAP_BACKEND_NATPMP;
  v[1].r = &p->res.natpmp;
  v[2].id = PORTMAP_BACKEND_UPNP;
  v[2].r = &p->res.upnp;
}

static int enabled(const options_t *o, portmap_backend_t b) {
  return o->common.backends == 0 || (o->common.backends & (unsigned)b) != 0;
}

static const portmap_probe_backend_t *result_of(const probe_t *p, portmap_backend_t b) {
  switch (b) {
  case PORTMAP_BACKEND_PCP:
    return &p->res.pcp;
  case PORTMAP_BACKEND_NATPMP:
    return &p->res.natpmp;
  case PORTMAP_BACKEND_UPNP:
    return &p->res.upnp;
  case PORTMAP_BACKEND_NONE:
    break;
  }
  return NULL;
}

/* Did the gateway say anything for this protocol (so rtt and epoch mean something)? */
static int answered(const portmap_probe_backend_t *r) {
  if (r->available) {
    return 1;
  }
  switch (r->error) {
  case PORTMAP_ERR_REFUSED:
  case PORTMAP_ERR_NATPMP_GATEWAY:
  case PORTMAP_ERR_UNREACHABLE:
  case PORTMAP_ERR_NO_IGD:
    return 1;
  default:
    return r->gateway_result >= 0;
  }
}

/* Epochs exist in PCP and NAT-PMP only. */
static int has_epoch(portmap_backend_t b, const portmap_probe_backend_t *r) {
  return b != PORTMAP_BACKEND_UPNP && answered(r) && r->error != PORTMAP_ERR_UNREACHABLE;
}

static uint32_t probe_budget(const options_t *o) {
  portmap_config_t defaults;
  if (o->timeout_ms != 0) {
    return o->timeout_ms;
  }
  portmap_config_init(&defaults);
  return defaults.probe_timeout_ms;
}

/*
 * Why a protocol does not work, for the table and JSON ("" when it works);
 * brief: only the status and the gateway's result, for the stderr line.
 */
static void describe(const probe_t *p, portmap_backend_t b, const portmap_probe_backend_t *r,
                     int brief, char *buf, size_t len) {
  const options_t *o = p->opt;
  buf[0] = '\0';
  if (r->available) {
    return;
  }
  if (!enabled(o, b)) {
    snprintf(buf, len, "not enabled");
    return;
  }
  if (p->no_gateway) {
    snprintf(buf, len, "%s", portmap_strerror(PORTMAP_ERR_NO_GATEWAY));
    return;
  }
  switch (brief ? PORTMAP_OK : r->error) {
  case PORTMAP_ERR_NO_BACKEND:
    snprintf(buf, len, "not available: not built in, or cannot work on this host");
    return;
  case PORTMAP_ERR_TIMEOUT:
    snprintf(buf, len, "%s: nothing within %lu ms", portmap_strerror(r->error),
             (unsigned long)probe_budget(o));
    return;
  case PORTMAP_ERR_UNREACHABLE:
    snprintf(buf, len, "%s: nothing listens there (ICMP port unreachable)",
             portmap_strerror(r->error));
    return;
  default:
    break;
  }
  if (r->error == PORTMAP_ERR_NO_BACKEND) {
    snprintf(buf, len, "not available");
    return;
  }
  if (r->gateway_result >= 0) {
    portmap_backend_t said = r->error == PORTMAP_ERR_NATPMP_GATEWAY ? PORTMAP_BACKEND_PCP : b;
    snprintf(buf, len, "%s: %s (%d)", portmap_strerror(r->error),
             cli_gateway_result_name(said, r->gateway_result), r->gateway_result);
    return;
  }
  snprintf(buf, len, "%s", portmap_strerror(r->error));
}

/*
 * The external address the verdict is about: the test mapping's, else the
 * selected backend's, else one another working protocol of the same
 * gateway reported (PCP's ANNOUNCE reports none; NAT-PMP and UPnP do).
 * *source says which protocol reported it (NONE for the test mapping).
 */
static const char *verdict_external(const probe_t *p, int *is_private, portmap_backend_t *source) {
  static const portmap_backend_t order[3] = {PORTMAP_BACKEND_PCP, PORTMAP_BACKEND_NATPMP,
                                             PORTMAP_BACKEND_UPNP};
  const portmap_probe_backend_t *r;
  size_t i;

  *is_private = 0;
  *source = PORTMAP_BACKEND_NONE;
  if (p->mt.ok && p->mt.have_external) {
    *is_private = p->mt.info.external_is_private;
    return p->mt.external;
  }
  if (p->res.selected == PORTMAP_BACKEND_NONE) {
    return NULL;
  }
  r = result_of(p, p->res.selected);
  if (r != NULL && CLI_FIELD(r->external_address) != NULL) {
    *is_private = r->external_is_private;
    *source = p->res.selected;
    return r->external_address;
  }
  for (i = 0; i < 3; i++) {
    r = result_of(p, order[i]);
    if (r != NULL && r->available && CLI_FIELD(r->external_address) != NULL) {
      *is_private = r->external_is_private;
      *source = order[i];
      return r->external_address;
    }
  }
  return NULL;
}

static int any_available(const probe_t *p) {
  return p->res.pcp.available || p->res.natpmp.available || p->res.upnp.available;
}

/* ---------------------------------------------------------------------- */
/* JSON                                                                    */
/* ---------------------------------------------------------------------- */

static void print_backend_json(FILE *f, const probe_t *p, portmap_backend_t b,
                               const portmap_probe_backend_t *r) {
  char detail[256];
  int first = 1;
  int have_result = !r->available && r->gateway_result >= 0;
  portmap_backend_t said = r->error == PORTMAP_ERR_NATPMP_GATEWAY ? PORTMAP_BACKEND_PCP : b;
  int on = enabled(p->opt, b);

  describe(p, b, r, 0, detail, sizeof detail);
  cli_json_bool(f, &first, "enabled", on);
  cli_json_bool(f, &first, "available", r->available);
  cli_json_str(f, &first, "error",
               r->available ? NULL
               : !on        ? "not enabled"
                            : portmap_strerror(r->error));
  cli_json_str(f, &first, "detail", detail[0] != '\0' ? detail : NULL);
  cli_json_num_or_null(f, &first, "gateway_result", r->gateway_result >= 0, r->gateway_result);
  cli_json_str(f, &first, "gateway_result_name",
               have_result ? cli_gateway_result_name(said, r->gateway_result) : NULL);
  cli_json_num_or_null(f, &first, "rtt_ms", on && answered(r), r->rtt_ms);
  cli_json_str(f, &first, "external_address", CLI_FIELD(r->external_address));
  cli_json_bool(f, &first, "external_is_private",
                CLI_FIELD(r->external_address) != NULL && r->external_is_private);
  cli_json_num_or_null(f, &first, "epoch", on && has_epoch(b, r), r->epoch);
  if (b == PORTMAP_BACKEND_UPNP) {
    cli_json_str(f, &first, "device_name", CLI_FIELD(r->device_name));
    cli_json_str(f, &first, "service_type", CLI_FIELD(r->service_type));
    cli_json_num_or_null(f, &first, "igd_version", r->igd_version > 0, r->igd_version);
    cli_json_str(f, &first, "connection_status", CLI_FIELD(r->connection_status));
    cli_json_str(f, &first, "control_url", CLI_FIELD(r->control_url));
    cli_json_str(f, &first, "location", CLI_FIELD(r->location));
  }
  fputc('}', f);
}

static void print_map_test_json(FILE *f, const map_test_t *mt) {
  char nonce[2 * NONCE_LEN + 1];
  int first = 1;
  int tried = mt->skipped == NULL;

  cli_json_bool(f, &first, "ok", mt->ok);
  cli_json_str(f, &first, "backend",
               tried && mt->info.backend != PORTMAP_BACKEND_NONE
                   ? portmap_backend_name(mt->info.backend)
                   : NULL);
  cli_json_str(f, &first, "protocol", proto_name(mt->info.protocol));
  cli_json_num(f, &first, "internal_port", mt->info.internal_port);
  cli_json_str(f, &first, "external_address", mt->ok && mt->have_external ? mt->external : NULL);
  cli_json_num_or_null(f, &first, "external_port", mt->ok, mt->info.external_port);
  cli_json_num_or_null(f, &first, "lifetime", mt->ok, mt->info.lifetime);
  cli_json_bool(f, &first, "external_is_private", mt->ok && mt->info.external_is_private);
  cli_nonce_hex(mt->info.nonce, nonce);
  cli_json_str(f, &first, "nonce",
               tried && mt->info.backend == PORTMAP_BACKEND_PCP && cli_nonce_is_set(mt->info.nonce)
                   ? nonce
                   : NULL);
  cli_json_str(f, &first, "error",
               mt->skipped != NULL ? mt->skipped
               : mt->ok            ? NULL
                                   : portmap_strerror(mt->error));
  cli_json_num_or_null(f, &first, "gateway_result",
                       !mt->ok && tried && mt->info.gateway_result >= 0, mt->info.gateway_result);
  cli_json_str(f, &first, "gateway_result_name",
               !mt->ok && tried && mt->info.gateway_result >= 0
                   ? cli_gateway_result_name(mt->info.backend, mt->info.gateway_result)
                   : NULL);
  cli_json_bool(f, &first, "deleted", mt->deleted);
  cli_json_str(f, &first, "delete_error",
               mt->ok && !mt->deleted ? portmap_strerror(mt->del_error) : NULL);
  cli_json_num_or_null(f, &first, "map_ms", tried, (long long)mt->map_ms);
  cli_json_num_or_null(f, &first, "delete_ms", mt->ok, (long long)mt->delete_ms);
  cli_json_num(f, &first, "elapsed_ms", (long long)mt->elapsed_ms);
  fputc('}', f);
}

static void print_json(const probe_t *p) {
  FILE *f = stdout;
  backend_view_t v[3];
  int first = 1;
  int is_private;
  portmap_backend_t source;
  const char *ext = verdict_external(p, &is_private, &source);
  static const char *const keys[3] = {"pcp", "natpmp", "upnp"};
  size_t i;

  backend_views(p, v);
  cli_json_str(f, &first, "gateway", CLI_FIELD(p->res.gateway));
  cli_json_str(f, &first, "local_address", CLI_FIELD(p->res.local_address));
  for (i = 0; i < 3; i++) {
    cli_json_key(f, &first, keys[i]);
    print_backend_json(f, p, v[i].id, v[i].r);
  }
  cli_json_str(f, &first, "selected",
               p->res.selected != PORTMAP_BACKEND_NONE ? portmap_backend_name(p->res.selected)
                                                       : NULL);
  cli_json_str(f, &first, "external", ext == NULL ? "none" : is_private ? "private" : "public");
  cli_json_str(f, &first, "external_address", ext);
  cli_json_num(f, &first, "elapsed_ms", p->res.elapsed_ms);
  if (p->opt->map) {
    cli_json_key(f, &first, "map_test");
    print_map_test_json(f, &p->mt);
  }
  fputs("}\n", f);
}

/* ---------------------------------------------------------------------- */
/* Text                                                                    */
/* ---------------------------------------------------------------------- */

static void print_cell(const char *s, int width) {
  int n = (int)strlen(s);
  cli_put_sanitized(stdout, s, SIZE_MAX);
  for (; n < width; n++) {
    fputc(' ', stdout);
  }
}

static void print_detail_row(const char *label, const char *value) {
  if (value == NULL) {
    return;
  }
  printf("  %-18s ", label);
  cli_put_sanitized(stdout, value, SIZE_MAX);
  fputc('\n', stdout);
}

static void print_upnp_device(const portmap_probe_backend_t *r) {
  char version[16];
  if (CLI_FIELD(r->location) == NULL && CLI_FIELD(r->device_name) == NULL &&
      CLI_FIELD(r->control_url) == NULL) {
    return; /* no device found: nothing to show */
  }
  printf("\nUPnP-IGD device\n");
  print_detail_row("name", CLI_FIELD(r->device_name));
  if (r->igd_version > 0) {
    snprintf(version, sizeof version, "IGDv%d", r->igd_version);
    print_detail_row("IGD version", version);
  }
  print_detail_row("service type", CLI_FIELD(r->service_type));
  print_detail_row("connection status", CLI_FIELD(r->connection_status));
  print_detail_row("control URL", CLI_FIELD(r->control_url));
  print_detail_row("location", CLI_FIELD(r->location));
}

/* What to try when nothing works, one suggestion a line. */
static void print_advice(const probe_t *p) {
  const options_t *o = p->opt;
  const char *gw = CLI_FIELD(p->res.gateway);

  printf("  what to try:\n");
  if (p->no_gateway) {
    printf("  - no default route was found: pass the router's address with --gateway ADDR\n");
    return;
  }
  if (p->res.pcp.error == PORTMAP_ERR_NATPMP_GATEWAY && !enabled(o, PORTMAP_BACKEND_NATPMP)) {
    printf("  - the gateway answered PCP with UNSUPP_VERSION, so it speaks NAT-PMP: try "
           "--backend natpmp or --backend auto\n");
  }
  if (p->res.pcp.error == PORTMAP_ERR_REFUSED || p->res.natpmp.error == PORTMAP_ERR_REFUSED ||
      p->res.upnp.error == PORTMAP_ERR_REFUSED) {
    printf("  - the router answered but refused: check its port-forwarding policy for this host\n");
  }
  printf("  - enable UPnP-IGD, or NAT-PMP/PCP, on the router (often under \"UPnP\",\n"
         "    \"NAT-PMP\" or \"port forwarding\" in its settings)\n");
  printf("  - check the gateway address: %s%s\n", gw != NULL ? gw : "unknown",
         o->common.gateway != NULL
             ? " (given with --gateway)"
             : " (the default router;\n    pass --gateway ADDR if that is not it)");
  if (cli_server_port(o->common.server_port) != CLI_DEFAULT_SERVER_PORT) {
    printf("  - check that no firewall, here or on the router, blocks UDP %u (PCP), %u (NAT-PMP)\n"
           "    or %u (SSDP, UPnP discovery)\n",
           cli_server_port(o->common.server_port), CLI_DEFAULT_SERVER_PORT, SSDP_PORT);
  } else {
    printf("  - check that no firewall, here or on the router, blocks UDP %u (PCP, NAT-PMP) or\n"
           "    UDP %u (SSDP, UPnP discovery)\n",
           CLI_DEFAULT_SERVER_PORT, SSDP_PORT);
  }
  if (o->common.backends != 0 && o->common.backends != PORTMAP_BACKEND_ALL) {
    printf("  - only some protocols were probed: try --backend auto\n");
  }
}

/* Why the map test failed: the status, and the gateway's result when it gave one. */
static void map_failure_text(const map_test_t *mt, char *buf, size_t len) {
  if (mt->skipped != NULL) {
    snprintf(buf, len, "%s", mt->skipped);
  } else if (mt->info.gateway_result >= 0) {
    snprintf(buf, len, "%s: %s (%d)", portmap_strerror(mt->error),
             cli_gateway_result_name(mt->info.backend, mt->info.gateway_result),
             mt->info.gateway_result);
  } else {
    snprintf(buf, len, "%s", portmap_strerror(mt->error));
  }
}

static void print_map_test_text(const probe_t *p) {
  const map_test_t *mt = &p->mt;
  printf("\nmap test: %s %u", proto_name(mt->info.protocol), (unsigned)mt->info.internal_port);
  if (mt->skipped != NULL) {
    printf(" not tried: %s\n", mt->skipped);
    return;
  }
  if (!mt->ok) {
    char why[256];
    map_failure_text(mt, why, sizeof why);
    printf(" failed via %s after %llu ms: %s\n", display_name(mt->info.backend),
           (unsigned long long)mt->map_ms, why);
    return;
  }
  printf(" -> ");
  if (!mt->have_external) {
    printf("?");
  } else if (strchr(mt->external, ':') != NULL) {
    printf("[%s]", mt->external);
  } else {
    printf("%s", mt->external);
  }
  printf(":%u via %s, lifetime %lu s, in %llu ms\n", (unsigned)mt->info.external_port,
         display_name(mt->info.backend), (unsigned long)mt->info.lifetime,
         (unsigned long long)mt->map_ms);
  if (mt->deleted) {
    printf("          deleted again in %llu ms\n", (unsigned long long)mt->delete_ms);
  } else {
    printf("          the delete was not confirmed (%s); the mapping expires in %lu s\n",
           portmap_strerror(mt->del_error), (unsigned long)mt->info.lifetime);
  }
}

static void print_text(const probe_t *p) {
  const options_t *o = p->opt;
  backend_view_t v[3];
  char detail[3][256], rtt[3][24], epoch[3][24], ext[3][PORTMAP_ADDRSTRLEN + 16];
  int w_ext = (int)strlen("EXTERNAL ADDRESS");
  int is_private;
  portmap_backend_t source;
  const char *vext;
  char from[64];
  size_t i;

  backend_views(p, v);
  printf("gateway %s", CLI_FIELD(p->res.gateway) != NULL ? p->res.gateway : "unknown");
  if (CLI_FIELD(p->res.local_address) != NULL) {
    printf(", local address %s", p->res.local_address);
  }
  printf(", probed in %lu ms\n\n", (unsigned long)p->res.elapsed_ms);

  for (i = 0; i < 3; i++) {
    const portmap_probe_backend_t *r = v[i].r;
    int on = enabled(o, v[i].id);
    describe(p, v[i].id, r, 0, detail[i], sizeof detail[i]);
    if (on && answered(r)) {
      snprintf(rtt[i], sizeof rtt[i], "%lu ms", (unsigned long)r->rtt_ms);
    } else {
      snprintf(rtt[i], sizeof rtt[i], "-");
    }
    if (on && has_epoch(v[i].id, r)) {
      snprintf(epoch[i], sizeof epoch[i], "%lu s", (unsigned long)r->epoch);
    } else {
      snprintf(epoch[i], sizeof epoch[i], "-");
    }
    if (CLI_FIELD(r->external_address) != NULL) {
      snprintf(ext[i], sizeof ext[i], "%s%s", r->external_address,
               r->external_is_private ? " (private)" : "");
    } else {
      snprintf(ext[i], sizeof ext[i], "%s", r->available ? "unknown" : "-");
    }
    if ((int)strlen(ext[i]) > w_ext) {
      w_ext = (int)strlen(ext[i]);
    }
  }
  printf("%-10s %-10s %-8s %-10s ", "PROTOCOL", "AVAILABLE", "RTT", "EPOCH");
  print_cell("EXTERNAL ADDRESS", w_ext);
  printf("  DETAIL\n");
  for (i = 0; i < 3; i++) {
    printf("%-10s %-10s %-8s %-10s ", display_name(v[i].id), v[i].r->available ? "yes" : "no",
           rtt[i], epoch[i]);
    print_cell(ext[i], w_ext);
    printf("  %s\n", detail[i][0] != '\0' ? detail[i] : "-");
  }
  print_upnp_device(&p->res.upnp);
  if (o->map) {
    print_map_test_text(p);
  }

  printf("\n");
  if (p->res.selected != PORTMAP_BACKEND_NONE) {
    printf("verdict: new mappings will use %s.\n", display_name(p->res.selected));
    vext = verdict_external(p, &is_private, &source);
    from[0] = '\0';
    if (vext != NULL && source != PORTMAP_BACKEND_NONE && source != p->res.selected) {
      snprintf(from, sizeof from, " (as %s reports it)", display_name(source));
    }
    if (o->map && !p->mt.ok) {
      char why[256];
      map_failure_text(&p->mt, why, sizeof why);
      printf("  but the test mapping failed: %s.\n", why);
    } else if (vext == NULL) {
      printf("  the external address is not known: %s; --map finds it out.\n",
             p->res.selected == PORTMAP_BACKEND_PCP ? "PCP's ANNOUNCE does not report it"
                                                    : "the gateway did not report it");
    } else if (is_private) {
      printf(
          "  the external address %s%s is private: another NAT is upstream (double NAT\n"
          "  or carrier-grade NAT, CGN), so the Internet cannot reach you through this mapping.\n",
          vext, from);
    } else {
      printf("  the external address %s%s is public:\n"
             "  the Internet can reach you through a mapping.\n",
             vext, from);
    }
  } else if (any_available(p)) {
    printf("verdict: a protocol answered, but none was chosen within the wait; try a longer "
           "--timeout.\n");
  } else {
    printf("verdict: no port-mapping protocol works with the gateway %s.\n",
           CLI_FIELD(p->res.gateway) != NULL ? p->res.gateway : "(none found)");
    print_advice(p);
  }
}

/* The one stderr line when nothing works (both output modes). */
static void report_none(const probe_t *p) {
  backend_view_t v[3];
  char detail[256];
  size_t i;
  int n = 0;

  if (p->no_gateway) {
    fputs(PROG ": no default gateway found; pass --gateway ADDR\n", stderr);
    return;
  }
  backend_views(p, v);
  fprintf(stderr, PROG ": no port-mapping protocol works with %s (",
          CLI_FIELD(p->res.gateway) != NULL ? p->res.gateway : "the gateway");
  for (i = 0; i < 3; i++) {
    if (!enabled(p->opt, v[i].id)) {
      continue;
    }
    describe(p, v[i].id, v[i].r, 1, detail, sizeof detail);
    fprintf(stderr, "%s%s: %s", n++ > 0 ? "; " : "", display_name(v[i].id), detail);
  }
  fputs("); enable PCP, NAT-PMP or UPnP on the router, or check --gateway\n", stderr);
}

int probe_report(const probe_t *p) {
  const options_t *o = p->opt;
  if (o->common.json) {
    print_json(p);
  } else {
    print_text(p);
  }
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, PROG ": cannot write to stdout: %s\n", strerror(errno));
    return CLI_EXIT_USAGE;
  }
  if (!any_available(p)) {
    report_none(p);
    return CLI_EXIT_REFUSED;
  }
  if (o->map && !p->mt.ok) {
    char why[256];
    map_failure_text(&p->mt, why, sizeof why);
    fprintf(stderr, PROG ": the test mapping of %s %u via %s failed: %s\n",
            proto_name(o->map_protocol), (unsigned)o->map_port, display_name(p->mt.info.backend),
            why);
    return CLI_EXIT_REFUSED;
  }
  return CLI_EXIT_OK;
}
