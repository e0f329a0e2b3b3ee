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
 * Built on the public API only (include/portmap/portmap.h), like `portmap`.
 *
 * Exit status: 0 at least one protocol works (and, with --map, the test
 * mapping was granted); 1 none works (or the test mapping failed); 2 usage
 * or system error. Every failure is one line on stderr.
 */
#include <portmap/portmap.h>

#include "cli_common.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PROG "portmap-probe"

/* Upper bound accepted for --timeout: ten minutes. */
#define MAX_TIMEOUT_MS 600000u
/* --map: how long to wait for the mapping unless --timeout says otherwise. */
#define DEFAULT_MAP_TIMEOUT_MS 5000u
/* --map: how long to wait for the gateway to confirm the delete. */
#define DELETE_WAIT_MS 2000u
/* --map: lifetime of the test mapping unless --lifetime says otherwise. */
#define DEFAULT_MAP_LIFETIME 60u
#define MAX_LIFETIME 86400u
/*
 * portmap_probe_sync with timeout 0 waits the probe budget plus this margin,
 * so the budget's own timer decides; --timeout MS waits MS plus the same.
 */
#define PROBE_WAIT_MARGIN_MS 100u
/* The PCP/NAT-PMP server port (RFC 6887 section 19.1) and the SSDP port. */
#define DEFAULT_SERVER_PORT 5351u
#define SSDP_PORT 1900u

/* Exit statuses. */
#define EXIT_OK 0
#define EXIT_NONE 1
#define EXIT_USAGE 2

typedef struct options {
  const char *gateway;
  unsigned backends;    /* 0 = all */
  uint16_t server_port; /* 0 = library default */
  uint32_t timeout_ms;  /* 0 = the library's probe budget */
  int map;
  int map_protocol;
  uint16_t map_port;
  uint32_t lifetime; /* 0 = DEFAULT_MAP_LIFETIME */
  int have_lifetime;
  int json;
  int verbose;
  int trace;
  int help;
  int version;
} options_t;

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
  char port[16];
  const char *slash = strchr(arg, '/');
  size_t plen = slash != NULL ? (size_t)(slash - arg) : strlen(arg);
  unsigned long v;

  o->map_protocol = PORTMAP_PROTO_TCP;
  if (slash != NULL) {
    const char *proto = slash + 1;
    if (*proto == '\0') {
      cli_set_error(err, "missing protocol after '/' in --map '%s': use tcp or udp", arg);
      return;
    }
    if (cli_ascii_ieq(proto, "tcp")) {
      o->map_protocol = PORTMAP_PROTO_TCP;
    } else if (cli_ascii_ieq(proto, "udp")) {
      o->map_protocol = PORTMAP_PROTO_UDP;
    } else {
      cli_set_error(err, "unknown protocol '%s' in --map '%s': use tcp or udp", proto, arg);
      return;
    }
  }
  if (plen == 0 || plen >= sizeof port) {
    cli_set_error(err, "--map '%s' is invalid: PORT must be a number 1-65535", arg);
    return;
  }
  memcpy(port, arg, plen);
  port[plen] = '\0';
  if (cli_parse_uint(port, 1, 65535, &v) != 0) {
    cli_set_error(err, "--map port '%s' is invalid: PORT must be a number 1-65535", port);
    return;
  }
  o->map_port = (uint16_t)v;
  o->map = 1;
}

enum option_id {
  OPT_GATEWAY,
  OPT_BACKEND,
  OPT_TIMEOUT,
  OPT_MAP,
  OPT_LIFETIME,
  OPT_PORT,
  OPT_JSON,
  OPT_VERBOSE,
  OPT_TRACE,
  OPT_HELP,
  OPT_VERSION
};

static const cli_option_t option_defs[] = {
    {"gateway", OPT_GATEWAY, 1, 0},   {"backend", OPT_BACKEND, 1, 0},
    {"timeout", OPT_TIMEOUT, 1, 0},   {"map", OPT_MAP, 1, 0},
    {"lifetime", OPT_LIFETIME, 1, 0}, {"port", OPT_PORT, 1, 0},
    {"json", OPT_JSON, 0, 0},         {"verbose", OPT_VERBOSE, 0, 0},
    {"trace", OPT_TRACE, 0, 0},       {"help", OPT_HELP, 0, 0},
    {"version", OPT_VERSION, 0, 0},
};

#define N_OPTION_DEFS (sizeof option_defs / sizeof option_defs[0])

static void apply_option(options_t *o, const cli_option_t *def, const char *value,
                         parse_error_t *err) {
  unsigned long v;
  portmap_addr_t addr;

  switch ((enum option_id)def->id) {
  case OPT_GATEWAY:
    if (*value == '\0' || portmap_addr_parse(value, &addr) != PORTMAP_OK) {
      cli_set_error(err, "--gateway '%s' is not an IPv4 or IPv6 address%s", value,
                    strchr(value, '.') != NULL && strchr(value, ':') != NULL
                        ? " (give the server port with --port)"
                        : "");
      return;
    }
    o->gateway = value;
    return;
  case OPT_BACKEND:
    (void)cli_parse_backends(value, &o->backends, err);
    return;
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
    if (cli_parse_uint(value, 1, MAX_LIFETIME, &v) != 0) {
      cli_set_error(err, "--lifetime '%s' is invalid: must be 1-86400 seconds", value);
      return;
    }
    o->lifetime = (uint32_t)v;
    o->have_lifetime = 1;
    return;
  case OPT_PORT:
    if (cli_parse_uint(value, 1, 65535, &v) != 0) {
      cli_set_error(err, "--port '%s' is invalid: must be a port 1-65535", value);
      return;
    }
    o->server_port = (uint16_t)v;
    return;
  case OPT_JSON:
    o->json = 1;
    return;
  case OPT_VERBOSE:
    o->verbose = 1;
    return;
  case OPT_TRACE:
    o->trace = 1;
    return;
  case OPT_HELP:
    o->help = 1;
    return;
  case OPT_VERSION:
    o->version = 1;
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
      o->help = 1;
    } else if (kind == CLI_ARG_OPTION) {
      apply_option(o, def, value, err);
    }
  }
  if (o->have_lifetime && !o->map) {
    cli_set_error(err, "--lifetime only applies to the --map test mapping");
  }
}

/* ---------------------------------------------------------------------- */
/* Time, logging and packet trace                                          */
/* ---------------------------------------------------------------------- */

/* Shared by the log and trace callbacks (through their user pointers). */
typedef struct diag {
  uint64_t start_ms;
} diag_t;

static unsigned long long since_start(const diag_t *d) {
  return (unsigned long long)(cli_now_ms() - d->start_ms);
}

/* Network text (a device name, a log line quoting a packet) printed raw could drive the terminal.
 */
static void log_to_stderr(portmap_log_level_t level, const char *msg, void *user) {
  static const char *const names[] = {"error", "warn", "info", "debug"};
  const char *name = (unsigned)level < sizeof names / sizeof names[0] ? names[level] : "log";
  const diag_t *d = user;
  /* Callbacks may come from a worker thread: keep each message in one piece. */
  flockfile(stderr);
  fprintf(stderr, PROG ": +%llu ms [%s] ", since_start(d), name);
  cli_put_sanitized(stderr, msg, SIZE_MAX);
  fputc('\n', stderr);
  funlockfile(stderr);
}

/* One datagram: a header line, then offset, 16 octets in hex and the same as ASCII. */
static void trace_to_stderr(int sent, const char *peer, uint16_t port, const uint8_t *data,
                            size_t len, void *user) {
  static const char digits[] = "0123456789abcdef";
  const diag_t *d = user;
  size_t off;

  flockfile(stderr);
  fprintf(stderr, PROG ": +%llu ms [trace] %s %s port %u, %zu octets\n", since_start(d),
          sent ? "sent to" : "received from", peer != NULL ? peer : "?", (unsigned)port, len);
  for (off = 0; off < len; off += 16) {
    char line[80];
    size_t n = len - off < 16 ? len - off : 16;
    size_t i, k = 0;
    k += (size_t)snprintf(line, sizeof line, "  %04zx  ", off);
    for (i = 0; i < 16; i++) {
      if (i < n) {
        line[k++] = digits[data[off + i] >> 4];
        line[k++] = digits[data[off + i] & 0x0f];
      } else {
        line[k++] = ' ';
        line[k++] = ' ';
      }
      line[k++] = ' ';
      if (i == 7) {
        line[k++] = ' ';
      }
    }
    line[k++] = ' ';
    line[k++] = '|';
    for (i = 0; i < n; i++) {
      uint8_t c = data[off + i];
      line[k++] = c >= 0x20 && c < 0x7f ? (char)c : '.';
    }
    line[k++] = '|';
    line[k] = '\0';
    fprintf(stderr, "%s\n", line);
  }
  funlockfile(stderr);
}

/* ---------------------------------------------------------------------- */
/* Names                                                                   */
/* ---------------------------------------------------------------------- */

/* UPnP IGD WANIPConnection error codes seen in the field. */
/*
 * The gateway's result by name for the protocol that said it. (The probe's
 * NATPMP_GATEWAY error carries PCP's UNSUPP_VERSION: callers pass PCP then.)
 */
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

/* A fixed-size string from the library, as text, or NULL when empty. */
static const char *field(const char *s, size_t size) {
  return memchr(s, '\0', size) != NULL && s[0] != '\0' ? s : NULL;
}

#define FIELD(s) field((s), sizeof(s))

/* The external address of a mapping as text, or NULL when not known. */
static const char *info_external(const portmap_info_t *info, char *buf, size_t len) {
  static const uint8_t v4_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  const uint8_t *b = info->external_address.bytes;
  size_t i;
  /* Both :: and ::ffff:0.0.0.0 mean "not known". */
  for (i = memcmp(b, v4_prefix, sizeof v4_prefix) == 0 ? sizeof v4_prefix : 0; i < 16; i++) {
    if (b[i] != 0) {
      break;
    }
  }
  if (i == 16) {
    return NULL;
  }
  if (FIELD(info->external_address_str) != NULL) {
    return info->external_address_str;
  }
  return portmap_addr_format(&info->external_address, buf, len);
}

/* ---------------------------------------------------------------------- */
/* The probe's findings                                                    */
/* ---------------------------------------------------------------------- */

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
  int no_gateway; /* no default gateway: nothing could be asked */
  diag_t diag;
  map_test_t mt;
} probe_t;

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
  return o->backends == 0 || (o->backends & (unsigned)b) != 0;
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

static unsigned server_port(const options_t *o) {
  return o->server_port != 0 ? o->server_port : DEFAULT_SERVER_PORT;
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
  if (r != NULL && FIELD(r->external_address) != NULL) {
    *is_private = r->external_is_private;
    *source = p->res.selected;
    return r->external_address;
  }
  for (i = 0; i < 3; i++) {
    r = result_of(p, order[i]);
    if (r != NULL && r->available && FIELD(r->external_address) != NULL) {
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

static void json_str(FILE *f, int *first, const char *key, const char *value) {
  cli_json_key(f, first, key);
  if (value != NULL) {
    cli_json_string(f, value);
  } else {
    fputs("null", f);
  }
}

static void json_num_or_null(FILE *f, int *first, const char *key, int have, long long value) {
  cli_json_key(f, first, key);
  if (have) {
    fprintf(f, "%lld", value);
  } else {
    fputs("null", f);
  }
}

static void json_bool(FILE *f, int *first, const char *key, int value) {
  cli_json_key(f, first, key);
  fputs(value ? "true" : "false", f);
}

static void print_backend_json(FILE *f, const probe_t *p, portmap_backend_t b,
                               const portmap_probe_backend_t *r) {
  char detail[256];
  int first = 1;
  int have_result = !r->available && r->gateway_result >= 0;
  portmap_backend_t said = r->error == PORTMAP_ERR_NATPMP_GATEWAY ? PORTMAP_BACKEND_PCP : b;
  int on = enabled(p->opt, b);

  describe(p, b, r, 0, detail, sizeof detail);
  json_bool(f, &first, "enabled", on);
  json_bool(f, &first, "available", r->available);
  json_str(f, &first, "error",
           r->available ? NULL
           : !on        ? "not enabled"
                        : portmap_strerror(r->error));
  json_str(f, &first, "detail", detail[0] != '\0' ? detail : NULL);
  json_num_or_null(f, &first, "gateway_result", r->gateway_result >= 0, r->gateway_result);
  json_str(f, &first, "gateway_result_name",
           have_result ? cli_gateway_result_name(said, r->gateway_result) : NULL);
  json_num_or_null(f, &first, "rtt_ms", on && answered(r), r->rtt_ms);
  json_str(f, &first, "external_address", FIELD(r->external_address));
  json_bool(f, &first, "external_is_private",
            FIELD(r->external_address) != NULL && r->external_is_private);
  json_num_or_null(f, &first, "epoch", on && has_epoch(b, r), r->epoch);
  if (b == PORTMAP_BACKEND_UPNP) {
    json_str(f, &first, "device_name", FIELD(r->device_name));
    json_str(f, &first, "service_type", FIELD(r->service_type));
    json_num_or_null(f, &first, "igd_version", r->igd_version > 0, r->igd_version);
    json_str(f, &first, "connection_status", FIELD(r->connection_status));
    json_str(f, &first, "control_url", FIELD(r->control_url));
    json_str(f, &first, "location", FIELD(r->location));
  }
  fputc('}', f);
}

static void print_map_test_json(FILE *f, const map_test_t *mt) {
  char nonce[2 * NONCE_LEN + 1];
  int first = 1;
  int tried = mt->skipped == NULL;

  json_bool(f, &first, "ok", mt->ok);
  json_str(f, &first, "backend",
           tried && mt->info.backend != PORTMAP_BACKEND_NONE
               ? portmap_backend_name(mt->info.backend)
               : NULL);
  json_str(f, &first, "protocol", proto_name(mt->info.protocol));
  cli_json_num(f, &first, "internal_port", mt->info.internal_port);
  json_str(f, &first, "external_address", mt->ok && mt->have_external ? mt->external : NULL);
  json_num_or_null(f, &first, "external_port", mt->ok, mt->info.external_port);
  json_num_or_null(f, &first, "lifetime", mt->ok, mt->info.lifetime);
  json_bool(f, &first, "external_is_private", mt->ok && mt->info.external_is_private);
  cli_nonce_hex(mt->info.nonce, nonce);
  json_str(f, &first, "nonce",
           tried && mt->info.backend == PORTMAP_BACKEND_PCP && cli_nonce_is_set(mt->info.nonce)
               ? nonce
               : NULL);
  json_str(f, &first, "error",
           mt->skipped != NULL ? mt->skipped
           : mt->ok            ? NULL
                               : portmap_strerror(mt->error));
  json_num_or_null(f, &first, "gateway_result", !mt->ok && tried && mt->info.gateway_result >= 0,
                   mt->info.gateway_result);
  json_str(f, &first, "gateway_result_name",
           !mt->ok && tried && mt->info.gateway_result >= 0
               ? cli_gateway_result_name(mt->info.backend, mt->info.gateway_result)
               : NULL);
  json_bool(f, &first, "deleted", mt->deleted);
  json_str(f, &first, "delete_error",
           mt->ok && !mt->deleted ? portmap_strerror(mt->del_error) : NULL);
  json_num_or_null(f, &first, "map_ms", tried, (long long)mt->map_ms);
  json_num_or_null(f, &first, "delete_ms", mt->ok, (long long)mt->delete_ms);
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
  json_str(f, &first, "gateway", FIELD(p->res.gateway));
  json_str(f, &first, "local_address", FIELD(p->res.local_address));
  for (i = 0; i < 3; i++) {
    cli_json_key(f, &first, keys[i]);
    print_backend_json(f, p, v[i].id, v[i].r);
  }
  json_str(f, &first, "selected",
           p->res.selected != PORTMAP_BACKEND_NONE ? portmap_backend_name(p->res.selected) : NULL);
  json_str(f, &first, "external", ext == NULL ? "none" : is_private ? "private" : "public");
  json_str(f, &first, "external_address", ext);
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
  if (FIELD(r->location) == NULL && FIELD(r->device_name) == NULL &&
      FIELD(r->control_url) == NULL) {
    return; /* no device found: nothing to show */
  }
  printf("\nUPnP-IGD device\n");
  print_detail_row("name", FIELD(r->device_name));
  if (r->igd_version > 0) {
    snprintf(version, sizeof version, "IGDv%d", r->igd_version);
    print_detail_row("IGD version", version);
  }
  print_detail_row("service type", FIELD(r->service_type));
  print_detail_row("connection status", FIELD(r->connection_status));
  print_detail_row("control URL", FIELD(r->control_url));
  print_detail_row("location", FIELD(r->location));
}

/* What to try when nothing works, one suggestion a line. */
static void print_advice(const probe_t *p) {
  const options_t *o = p->opt;
  const char *gw = FIELD(p->res.gateway);

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
         o->gateway != NULL ? " (given with --gateway)"
                            : " (the default router;\n    pass --gateway ADDR if that is not it)");
  if (server_port(o) != DEFAULT_SERVER_PORT) {
    printf("  - check that no firewall, here or on the router, blocks UDP %u (PCP), %u (NAT-PMP)\n"
           "    or %u (SSDP, UPnP discovery)\n",
           server_port(o), DEFAULT_SERVER_PORT, SSDP_PORT);
  } else {
    printf("  - check that no firewall, here or on the router, blocks UDP %u (PCP, NAT-PMP) or\n"
           "    UDP %u (SSDP, UPnP discovery)\n",
           DEFAULT_SERVER_PORT, SSDP_PORT);
  }
  if (o->backends != 0 && o->backends != PORTMAP_BACKEND_ALL) {
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
  printf("gateway %s", FIELD(p->res.gateway) != NULL ? p->res.gateway : "unknown");
  if (FIELD(p->res.local_address) != NULL) {
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
    if (FIELD(r->external_address) != NULL) {
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
           FIELD(p->res.gateway) != NULL ? p->res.gateway : "(none found)");
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
          FIELD(p->res.gateway) != NULL ? p->res.gateway : "the gateway");
  for (i = 0; i < 3; i++) {
    if (!enabled(p->opt, v[i].id)) {
      continue;
    }
    describe(p, v[i].id, v[i].r, 1, detail, sizeof detail);
    fprintf(stderr, "%s%s: %s", n++ > 0 ? "; " : "", display_name(v[i].id), detail);
  }
  fputs("); enable PCP, NAT-PMP or UPnP on the router, or check --gateway\n", stderr);
}

/* ---------------------------------------------------------------------- */
/* The client, the probe and the map test                                  */
/* ---------------------------------------------------------------------- */

static int make_client(probe_t *p) {
  const options_t *o = p->opt;
  portmap_config_t cfg;
  portmap_status_t st;
  int saved_errno;

  portmap_config_init(&cfg);
  cfg.gateway = o->gateway;
  cfg.backends = o->backends;
  if (o->server_port != 0) {
    cfg.server_port = o->server_port;
  }
  if (o->timeout_ms != 0) {
    cfg.probe_timeout_ms = o->timeout_ms;
  }
  /* The map test waits by itself; the client must not outlive it by much. */
  cfg.request_timeout_ms = o->timeout_ms != 0 ? o->timeout_ms : DEFAULT_MAP_TIMEOUT_MS;
  cfg.destroy_timeout_ms = 500;
  cfg.announce_port = -1; /* a probe does not wait for announcements */
  if (o->verbose || o->trace) {
    cfg.log_cb = log_to_stderr;
    cfg.log_user = &p->diag;
    cfg.log_level = PORTMAP_LOG_DEBUG;
  }
  if (o->trace) {
    cfg.trace_cb = trace_to_stderr;
    cfg.trace_user = &p->diag;
  }
  errno = 0;
  st = portmap_client_new(&cfg, &p->client);
  saved_errno = errno;
  if (st == PORTMAP_OK) {
    return EXIT_OK;
  }
  p->client = NULL;
  cli_report_client_error(PROG, st, saved_errno, o->gateway);
  return EXIT_USAGE;
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
    return EXIT_OK;
  }
  if (st != PORTMAP_OK) {
    fprintf(stderr, PROG ": internal error: portmap_probe_sync: %s\n", portmap_strerror(st));
    return EXIT_USAGE;
  }
  return EXIT_OK;
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

typedef int (*done_fn)(const map_test_t *mt);

static int got_outcome(const map_test_t *mt) {
  return mt->outcome;
}

static int got_final(const map_test_t *mt) {
  return mt->final;
}

/* Run the client's loop (poll on its fds, up to its deadline) until done or the deadline. */
static int drive(portmap_client_t *client, const map_test_t *mt, done_fn done, uint64_t deadline) {
  struct pollfd pfds[16];
  int fds[16];

  while (!done(mt)) {
    uint64_t now = cli_now_ms();
    size_t n, i;
    int timeout;
    portmap_status_t st;

    if (now >= deadline) {
      return 0;
    }
    n = portmap_fds(client, fds, sizeof fds / sizeof fds[0]);
    if (n > sizeof fds / sizeof fds[0]) {
      n = sizeof fds / sizeof fds[0]; /* the rest is read when the deadline wakes us */
    }
    for (i = 0; i < n; i++) {
      pfds[i].fd = fds[i];
      pfds[i].events = POLLIN;
      pfds[i].revents = 0;
    }
    timeout = portmap_timeout_ms(client);
    if (timeout < 0 || (uint64_t)timeout > deadline - now) {
      timeout = (int)(deadline - now);
    }
    if (poll(pfds, (nfds_t)n, timeout) < 0 && errno != EINTR) {
      fprintf(stderr, PROG ": poll failed: %s\n", strerror(errno));
      return -1;
    }
    st = portmap_process(client);
    if (st != PORTMAP_OK) {
      fprintf(stderr, PROG ": internal error: portmap_process: %s\n", portmap_strerror(st));
      return -1;
    }
  }
  return 1;
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
  int r;

  mt->info.protocol = o->map_protocol;
  mt->info.internal_port = o->map_port;
  mt->info.gateway_result = -1;
  if (p->res.selected == PORTMAP_BACKEND_NONE) {
    mt->skipped = "no protocol works with the gateway";
    return EXIT_OK;
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
    return EXIT_OK;
  }
  r = drive(p->client, mt, got_outcome, start + wait);
  t = cli_now_ms();
  mt->map_ms = t - start;
  if (r < 0) {
    return EXIT_USAGE;
  }
  if (r == 0) {
    /* No first answer in time: give up on it (the client's free bounds the delete). */
    mt->outcome = 1;
    mt->ok = 0;
    mt->error = PORTMAP_ERR_TIMEOUT;
    if (mt->handle != NULL) {
      (void)portmap_mapping_info(mt->handle, &mt->info);
      (void)portmap_mapping_revoke(mt->handle);
    }
    mt->elapsed_ms = t - start;
    return EXIT_OK;
  }
  if (mt->ok) {
    char buf[PORTMAP_ADDRSTRLEN];
    const char *e = info_external(&mt->info, buf, sizeof buf);
    if (e != NULL) {
      snprintf(mt->external, sizeof mt->external, "%s", e);
      mt->have_external = 1;
    }
    if (mt->handle != NULL && !mt->final) {
      st = portmap_mapping_revoke(mt->handle);
      if (st == PORTMAP_OK) {
        r = drive(p->client, mt, got_final, t + DELETE_WAIT_MS);
        if (r < 0) {
          return EXIT_USAGE;
        }
        if (r == 0) {
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
  return EXIT_OK;
}

static void print_stats(const probe_t *p) {
  portmap_stats_t s;
  if (!(p->opt->verbose || p->opt->trace) || p->client == NULL ||
      portmap_client_stats(p->client, &s) != PORTMAP_OK) {
    return;
  }
  fprintf(stderr,
          PROG ": +%llu ms [debug] sent %llu (%llu retransmissions), received %llu; dropped: "
               "%llu malformed, %llu spoofed, %llu unmatched; %llu epoch resets\n",
          since_start(&p->diag), (unsigned long long)s.sent, (unsigned long long)s.retransmissions,
          (unsigned long long)s.received, (unsigned long long)s.malformed,
          (unsigned long long)s.spoofed, (unsigned long long)s.unmatched,
          (unsigned long long)s.epoch_invalid);
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
  if (o.help) {
    fputs(help_text, stdout);
    return fflush(stdout) == 0 ? EXIT_OK : EXIT_USAGE;
  }
  if (o.version) {
    printf("portmap-probe (libportmap) %d.%d.%d\n", PORTMAP_VERSION_MAJOR, PORTMAP_VERSION_MINOR,
           PORTMAP_VERSION_PATCH);
    return fflush(stdout) == 0 ? EXIT_OK : EXIT_USAGE;
  }
  if (err.set) {
    fprintf(stderr, PROG ": %s\n%s\n", err.msg, usage_text);
    return EXIT_USAGE;
  }

  p.opt = &o;
  p.diag.start_ms = cli_now_ms();
  rc = make_client(&p);
  if (rc != EXIT_OK) {
    return rc;
  }
  rc = run_probe(&p);
  if (rc == EXIT_OK && o.map) {
    rc = run_map_test(&p);
  }
  print_stats(&p);
  /* The test mapping is deleted already (or given up on): the free's wait is bounded. */
  (void)portmap_client_free(p.client);
  p.client = NULL;
  if (rc != EXIT_OK) {
    return rc;
  }

  if (o.json) {
    print_json(&p);
  } else {
    print_text(&p);
  }
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, PROG ": cannot write to stdout: %s\n", strerror(errno));
    return EXIT_USAGE;
  }
  if (!any_available(&p)) {
    report_none(&p);
    return EXIT_NONE;
  }
  if (o.map && !p.mt.ok) {
    char why[256];
    map_failure_text(&p.mt, why, sizeof why);
    fprintf(stderr, PROG ": the test mapping of %s %u via %s failed: %s\n",
            proto_name(o.map_protocol), (unsigned)o.map_port, display_name(p.mt.info.backend), why);
    return EXIT_NONE;
  }
  return EXIT_OK;
}
