/*
 * portmap: the command-line front end of libportmap.
 *
 *   portmap add PORT[/tcp|/udp] [options]      map once, print, leave it on the gateway
 *   portmap keep PORT[/PROTO]... [options]     map and renew until SIGINT/SIGTERM
 *   portmap delete PORT[/PROTO] [options]      delete a mapping made earlier
 *   portmap list [options]                     show the gateway's mappings (UPnP only)
 *
 * Built on the public API only (include/portmap/portmap.h), driven by the
 * event-loop calls (portmap_fds, portmap_timeout_ms, portmap_process),
 * portmap_map_sync and portmap_list_sync; never the thread mode, never src/
 * internals.
 *
 * Exit status: 0 success; 1 the gateway refused or nothing answered;
 * 2 usage or system error. Every failure is one line on stderr.
 */
#include <portmap/portmap.h>

#include "cli_common.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PROG "portmap"

/* How long add and delete wait for the gateway unless --timeout says otherwise. */
#define DEFAULT_TIMEOUT_MS 5000u
/* Upper bound accepted for --timeout: one hour. */
#define MAX_TIMEOUT_MS 3600000u
/* keep: how long to wait for the deletes after SIGINT/SIGTERM. */
#define SHUTDOWN_WAIT_MS 2000u
/* The PCP/NAT-PMP server port (RFC 6887 section 19.1). */
#define DEFAULT_SERVER_PORT 5351u
#define MAX_LIFETIME 86400u

/* Exit statuses. */
#define EXIT_OK 0
#define EXIT_REFUSED 1
#define EXIT_USAGE 2

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
  command_t cmd;
  const char *cmd_name;
  target_t *targets;
  size_t n_targets;
  uint16_t external_port; /* 0 = none */
  uint32_t lifetime;      /* 0 = library default */
  const char *description;
  const char *gateway;
  unsigned backends;    /* 0 = all */
  uint16_t server_port; /* 0 = library default */
  uint32_t timeout_ms;
  int have_timeout;
  int json;
  int verbose;
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
  int help;
  int version;
} options_t;

/* ---------------------------------------------------------------------- */
/* Help and usage                                                          */
/* ---------------------------------------------------------------------- */

static const char help_text[] =
    "NAME\n"
    "    portmap - open a port forward on the gateway (PCP, NAT-PMP, UPnP-IGD)\n"
    "\n"
    "SYNOPSIS\n"
    "    portmap add PORT[/tcp|/udp] [--external PORT] [--lifetime SECONDS]\n"
    "                [--description TEXT] [--nonce HEX] [PCP options] [common options]\n"
    "    portmap keep PORT[/tcp|/udp]... [--external PORT] [--lifetime SECONDS]\n"
    "                [--description TEXT] [PCP options] [common options]\n"
    "    portmap delete PORT[/tcp|/udp] [--nonce HEX] [--ipv6] [--third-party ADDR]\n"
    "                [common options]\n"
    "    portmap list [common options]\n"
    "    portmap --help | --version\n"
    "\n"
    "DESCRIPTION\n"
    "    add     Create one mapping, print it and exit. The mapping stays on the\n"
    "            gateway until its lifetime runs out or `portmap delete` removes it.\n"
    "            Note the printed nonce: a PCP gateway wants it for the delete.\n"
    "    keep    Create every mapping given and renew them until SIGINT or SIGTERM,\n"
    "            printing one line per event; then delete them (waiting at most 2 s\n"
    "            for the gateway) and exit. SIGUSR1 makes it look at the network\n"
    "            at once (default gateway, local address) instead of at its next\n"
    "            30 s check, and map again if they changed.\n"
    "    delete  Delete a mapping (PCP: MAP with lifetime 0 and the mapping's nonce).\n"
    "    list    Show the gateway's port-mapping table (at most 256 entries):\n"
    "            protocol, external port, internal client and port, description,\n"
    "            lease and whether it is enabled. Only UPnP-IGD can list mappings;\n"
    "            PCP and NAT-PMP cannot (list then exits 1 saying so).\n"
    "\n"
    "    PORT is the internal port, 1-65535, optionally followed by /tcp or /udp\n"
    "    (case-insensitive; default tcp).\n"
    "\n"
    "OPTIONS\n"
    "    --external PORT       suggest this external port (default: same as PORT;\n"
    "                          one PORT only)\n"
    "    --lifetime SECONDS    requested lifetime, 1-86400 (default 7200)\n"
    "    --description TEXT    mapping description, UTF-8, at most 128 octets\n"
    "    --nonce HEX           PCP mapping nonce, exactly 24 hex digits, as printed by\n"
    "                          `portmap add` (add: refresh that mapping; delete: the\n"
    "                          nonce of the mapping to delete; default: a fresh one)\n"
    "\n"
    "PCP OPTIONS (add, keep; PCP only: the other backends cannot express them)\n"
    "    --ipv6                map the host's IPv6 address (add, keep, delete; the\n"
    "                          gateway is the IPv6 default router or an IPv6 --gateway)\n"
    "    --peer ADDR:PORT      a PEER mapping for the connection to this remote\n"
    "                          peer instead of a MAP; IPv6 as [ADDR]:PORT\n"
    "    --third-party ADDR    map for another internal host (THIRD_PARTY option;\n"
    "                          also for delete). Most gateways refuse it\n"
    "    --filter ADDR/PREFIX[:PORT]\n"
    "                          only let this remote prefix (and port) in (FILTER\n"
    "                          option, MAP only; repeatable, at most 8)\n"
    "    --prefer-failure      fail (CANNOT_PROVIDE_EXTERNAL) rather than accept\n"
    "                          another external port than --external (MAP only)\n"
    "    Addresses are of the mapping's family: IPv4, or IPv6 with --ipv6.\n"
    "\n"
    "COMMON OPTIONS\n"
    "    --gateway ADDR        the gateway's IPv4 or IPv6 address (default: the\n"
    "                          default router)\n"
    "    --backend LIST        auto, or a comma-separated list of pcp, natpmp, upnp\n"
    "                          (default auto: every backend)\n"
    "    --port N              PCP/NAT-PMP server port (default 5351; for test servers)\n"
    "    --retransmit MS       add, keep, delete: PCP's first retransmission after MS,\n"
    "                          doubling (RFC 6887 IRT; 100-60000, default 3000); lower\n"
    "                          it on a lossy link\n"
    "    --timeout MS          add, delete, list: how long to wait for the answer (default\n"
    "                          5000). keep: give up on a mapping that got no first\n"
    "                          answer within MS (default 0: keep retrying)\n"
    "    --json                print one JSON object per line instead of text\n"
    "    --verbose             log the library's debug messages to stderr\n"
    "    -h, --help            print this help and exit\n"
    "    --version             print the version and exit\n"
    "    Options may also be written --name=VALUE; `--` ends the options.\n"
    "\n"
    "OUTPUT\n"
    "    One line per event on stdout, e.g.\n"
    "      mapped tcp 8000 -> 203.0.113.5:8000 via pcp, lifetime 7200 s, nonce 0123...\n"
    "    With --json, one object per line with the keys event (mapped, renewed,\n"
    "    changed, lost, failed, deleted), backend, protocol, internal_port,\n"
    "    external_address, external_port, external_is_private, lifetime, nonce,\n"
    "    description, gateway; with --peer also peer; on failed and lost also error,\n"
    "    gateway_result and gateway_result_name. Failures are also explained in one\n"
    "    line on stderr.\n"
    "    list prints a table, or with --json one object per mapping with the keys\n"
    "    event (\"entry\"), backend, protocol, external_port, internal_client,\n"
    "    internal_port, remote_host, description, lease (seconds left, 0 =\n"
    "    permanent), enabled, gateway; then one object with event \"end\", count\n"
    "    and total.\n"
    "\n"
    "EXIT STATUS\n"
    "    0  success\n"
    "    1  the gateway refused, or nothing answered\n"
    "    2  usage or system error\n"
    "\n"
    "EXAMPLES\n"
    "    portmap add 8000/tcp --lifetime 3600 --description \"my server\"\n"
    "    portmap delete 8000/tcp --nonce 0123456789abcdef01234567\n"
    "    portmap keep 8000/tcp 8000/udp --json\n"
    "    portmap list --gateway 192.168.1.1\n";

static const char *usage_line(command_t cmd) {
  switch (cmd) {
  case CMD_ADD:
    return "usage: portmap add PORT[/tcp|/udp] [--external PORT] [--lifetime SECONDS] "
           "[--description TEXT] [--ipv6] [--peer ADDR:PORT] [--third-party ADDR] "
           "[--filter ADDR/PREFIX[:PORT]] [--prefer-failure] [--gateway ADDR] [--json] "
           "(see portmap --help)";
  case CMD_KEEP:
    return "usage: portmap keep PORT[/tcp|/udp]... [--lifetime SECONDS] [--description TEXT] "
           "[--ipv6] [--peer ADDR:PORT] [--third-party ADDR] [--filter ADDR/PREFIX[:PORT]] "
           "[--prefer-failure] [--gateway ADDR] [--json] (see portmap --help)";
  case CMD_DELETE:
    return "usage: portmap delete PORT[/tcp|/udp] [--nonce HEX] [--ipv6] [--third-party ADDR] "
           "[--gateway ADDR] [--json] (see portmap --help)";
  case CMD_LIST:
    return "usage: portmap list [--gateway ADDR] [--backend LIST] [--json] (see portmap --help)";
  case CMD_NONE:
    break;
  }
  return "usage: portmap {add|keep|delete} PORT[/tcp|/udp]... [options] | portmap list "
         "[options] (see portmap --help)";
}

/* ---------------------------------------------------------------------- */
/* Argument parsing                                                        */
/* ---------------------------------------------------------------------- */

static int parse_target(const char *arg, target_t *t, parse_error_t *err) {
  char port[16];
  const char *slash = strchr(arg, '/');
  size_t plen = slash != NULL ? (size_t)(slash - arg) : strlen(arg);
  unsigned long v;

  t->protocol = PORTMAP_PROTO_TCP;
  if (slash != NULL) {
    const char *proto = slash + 1;
    if (*proto == '\0') {
      cli_set_error(err, "missing protocol after '/' in '%s': use tcp or udp", arg);
      return -1;
    }
    if (cli_ascii_ieq(proto, "tcp")) {
      t->protocol = PORTMAP_PROTO_TCP;
    } else if (cli_ascii_ieq(proto, "udp")) {
      t->protocol = PORTMAP_PROTO_UDP;
    } else {
      cli_set_error(err, "unknown protocol '%s' in '%s': use tcp or udp", proto, arg);
      return -1;
    }
  }
  if (plen == 0) {
    cli_set_error(err, "missing port in '%s': PORT must be a number 1-65535", arg);
    return -1;
  }
  if (plen >= sizeof port) {
    cli_set_error(err, "invalid port '%.*s': PORT must be a number 1-65535", (int)plen, arg);
    return -1;
  }
  memcpy(port, arg, plen);
  port[plen] = '\0';
  if (cli_parse_uint(port, 1, 65535, &v) != 0) {
    cli_set_error(err, "invalid port '%s': PORT must be a number 1-65535", port);
    return -1;
  }
  t->port = (uint16_t)v;
  return 0;
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

static int parse_nonce(const char *s, uint8_t out[NONCE_LEN], parse_error_t *err) {
  size_t len = strlen(s);
  size_t i;

  if (len != 2 * NONCE_LEN) {
    cli_set_error(err, "--nonce must be exactly 24 hex digits (got %zu characters)", len);
    return -1;
  }
  for (i = 0; i < NONCE_LEN; i++) {
    int hi = hex_value(s[2 * i]);
    int lo = hex_value(s[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      cli_set_error(err, "--nonce '%s' is not hexadecimal: use exactly 24 digits 0-9, a-f", s);
      return -1;
    }
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  return 0;
}

/* Well-formed UTF-8 (no overlongs, no surrogates, at most U+10FFFF). */
static int utf8_valid(const unsigned char *s) {
  while (*s != '\0') {
    unsigned c = *s;
    size_t n, i;
    uint32_t cp;
    if (c < 0x80) {
      s++;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) {
      n = 1;
      cp = c & 0x1fu;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      cp = c & 0x0fu;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      cp = c & 0x07u;
    } else {
      return 0;
    }
    for (i = 1; i <= n; i++) {
      if ((s[i] & 0xc0u) != 0x80u) {
        return 0;
      }
      cp = cp << 6 | (s[i] & 0x3fu);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff)) {
      return 0;
    }
    s += n + 1;
  }
  return 1;
}

enum option_id {
  OPT_EXTERNAL,
  OPT_LIFETIME,
  OPT_DESCRIPTION,
  OPT_NONCE,
  OPT_GATEWAY,
  OPT_BACKEND,
  OPT_PORT,
  OPT_TIMEOUT,
  OPT_JSON,
  OPT_VERBOSE,
  OPT_HELP,
  OPT_VERSION,
  OPT_IPV6,
  OPT_PEER,
  OPT_THIRD_PARTY,
  OPT_FILTER,
  OPT_PREFER_FAILURE,
  OPT_RETRANSMIT
};

/* cli_option_t.commands: where the option makes sense */
static const cli_option_t option_defs[] = {
    {"external", OPT_EXTERNAL, 1, CMD_ADD | CMD_KEEP},
    {"lifetime", OPT_LIFETIME, 1, CMD_ADD | CMD_KEEP},
    {"description", OPT_DESCRIPTION, 1, CMD_ADD | CMD_KEEP},
    {"nonce", OPT_NONCE, 1, CMD_ADD | CMD_DELETE},
    {"gateway", OPT_GATEWAY, 1, CMD_ALL},
    {"backend", OPT_BACKEND, 1, CMD_ALL},
    {"port", OPT_PORT, 1, CMD_ALL},
    {"timeout", OPT_TIMEOUT, 1, CMD_ALL},
    {"json", OPT_JSON, 0, CMD_ALL},
    {"verbose", OPT_VERBOSE, 0, CMD_ALL},
    {"help", OPT_HELP, 0, CMD_ALL},
    {"version", OPT_VERSION, 0, CMD_ALL},
    {"ipv6", OPT_IPV6, 0, CMD_ADD | CMD_KEEP | CMD_DELETE},
    {"peer", OPT_PEER, 1, CMD_ADD | CMD_KEEP},
    {"third-party", OPT_THIRD_PARTY, 1, CMD_ADD | CMD_KEEP | CMD_DELETE},
    {"filter", OPT_FILTER, 1, CMD_ADD | CMD_KEEP},
    {"prefer-failure", OPT_PREFER_FAILURE, 0, CMD_ADD | CMD_KEEP},
    {"retransmit", OPT_RETRANSMIT, 1, CMD_ADD | CMD_KEEP | CMD_DELETE},
};

#define N_OPTION_DEFS (sizeof option_defs / sizeof option_defs[0])

/* An address of either family; its family in *is_v6. 0 on success. */
static int parse_any_addr(const char *s, int *is_v6) {
  static const uint8_t v4_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  portmap_addr_t a;
  if (s == NULL || *s == '\0' || portmap_addr_parse(s, &a) != PORTMAP_OK) {
    return -1;
  }
  *is_v6 = memcmp(a.bytes, v4_prefix, sizeof v4_prefix) != 0;
  return 0;
}

/* Copy [begin, end) into out (size cap); -1 when it does not fit or is empty. */
static int copy_span(const char *begin, const char *end, char *out, size_t cap) {
  size_t len = (size_t)(end - begin);
  if (len == 0 || len >= cap) {
    return -1;
  }
  memcpy(out, begin, len);
  out[len] = '\0';
  return 0;
}

/* --peer ADDR:PORT (IPv4) or [ADDR]:PORT (IPv6). */
static void parse_peer(options_t *o, const char *value, parse_error_t *err) {
  const char *colon, *addr_end, *addr_begin = value;
  unsigned long v;
  int v6 = 0;

  if (value[0] == '[') {
    addr_begin = value + 1;
    addr_end = strchr(addr_begin, ']');
    if (addr_end == NULL || addr_end[1] != ':') {
      goto bad;
    }
    colon = addr_end + 1;
  } else {
    colon = strrchr(value, ':');
    if (colon == NULL || memchr(value, ':', (size_t)(colon - value)) != NULL) {
      /* no port, or an IPv6 address without brackets */
      goto bad;
    }
    addr_end = colon;
  }
  if (copy_span(addr_begin, addr_end, o->peer_address, sizeof o->peer_address) != 0 ||
      parse_any_addr(o->peer_address, &v6) != 0 || v6 != (value[0] == '[')) {
    goto bad;
  }
  if (cli_parse_uint(colon + 1, 1, 65535, &v) != 0) {
    cli_set_error(err, "--peer '%s' has an invalid port: must be 1-65535", value);
    o->peer_address[0] = '\0';
    return;
  }
  o->peer_port = (uint16_t)v;
  o->peer_is_v6 = v6;
  return;
bad:
  o->peer_address[0] = '\0';
  cli_set_error(err, "--peer '%s' is invalid: use ADDR:PORT, or [ADDR]:PORT for IPv6", value);
}

/* --filter ADDR/PREFIX[:PORT]; the address may be in brackets. */
static void parse_filter(options_t *o, const char *value, parse_error_t *err) {
  const char *slash = strchr(value, '/');
  const char *addr_begin = value, *addr_end = slash, *colon;
  char prefix[8];
  unsigned long plen, port = 0;
  size_t k = o->n_filters;
  int v6 = 0;

  if (k >= PORTMAP_MAX_FILTERS) {
    cli_set_error(err, "too many --filter options: at most %d", PORTMAP_MAX_FILTERS);
    return;
  }
  if (slash == NULL) {
    goto bad;
  }
  if (value[0] == '[') {
    if (slash < value + 2 || slash[-1] != ']') {
      goto bad;
    }
    addr_begin = value + 1;
    addr_end = slash - 1;
  }
  if (copy_span(addr_begin, addr_end, o->filter_address[k], sizeof o->filter_address[k]) != 0 ||
      parse_any_addr(o->filter_address[k], &v6) != 0) {
    goto bad;
  }
  colon = strchr(slash + 1, ':');
  if (copy_span(slash + 1, colon != NULL ? colon : slash + 1 + strlen(slash + 1), prefix,
                sizeof prefix) != 0 ||
      cli_parse_uint(prefix, 0, v6 ? 128 : 32, &plen) != 0) {
    cli_set_error(err, "--filter '%s' has an invalid prefix length: must be 0-%d", value,
                  v6 ? 128 : 32);
    return;
  }
  if (colon != NULL && cli_parse_uint(colon + 1, 1, 65535, &port) != 0) {
    cli_set_error(err, "--filter '%s' has an invalid port: must be 1-65535", value);
    return;
  }
  o->filters[k].remote_address = o->filter_address[k];
  o->filters[k].prefix_length = (uint8_t)plen;
  o->filters[k].remote_port = (uint16_t)port;
  o->filter_is_v6[k] = v6;
  o->n_filters++;
  return;
bad:
  cli_set_error(err, "--filter '%s' is invalid: use ADDR/PREFIX or ADDR/PREFIX:PORT", value);
}

static void apply_option(options_t *o, const cli_option_t *def, const char *value,
                         parse_error_t *err) {
  unsigned long v;
  portmap_addr_t addr;

  switch ((enum option_id)def->id) {
  case OPT_EXTERNAL:
    if (cli_parse_uint(value, 1, 65535, &v) != 0) {
      cli_set_error(err, "--external '%s' is invalid: must be a port 1-65535", value);
      return;
    }
    o->external_port = (uint16_t)v;
    return;
  case OPT_LIFETIME:
    if (cli_parse_uint(value, 1, MAX_LIFETIME, &v) != 0) {
      cli_set_error(err, "--lifetime '%s' is invalid: must be 1-86400 seconds", value);
      return;
    }
    o->lifetime = (uint32_t)v;
    return;
  case OPT_DESCRIPTION:
    if (strlen(value) > PORTMAP_MAX_DESCRIPTION) {
      cli_set_error(err, "--description is %zu octets long: at most %d are allowed", strlen(value),
                    PORTMAP_MAX_DESCRIPTION);
      return;
    }
    if (!utf8_valid((const unsigned char *)value)) {
      cli_set_error(err, "--description is not valid UTF-8");
      return;
    }
    o->description = *value != '\0' ? value : NULL;
    return;
  case OPT_NONCE:
    if (parse_nonce(value, o->nonce, err) == 0) {
      o->have_nonce = 1;
    }
    return;
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
  case OPT_PORT:
    if (cli_parse_uint(value, 1, 65535, &v) != 0) {
      cli_set_error(err, "--port '%s' is invalid: must be a port 1-65535", value);
      return;
    }
    o->server_port = (uint16_t)v;
    return;
  case OPT_TIMEOUT:
    if (cli_parse_uint(value, 0, MAX_TIMEOUT_MS, &v) != 0) {
      cli_set_error(err, "--timeout '%s' is invalid: must be 1-%u milliseconds", value,
                    MAX_TIMEOUT_MS);
      return;
    }
    o->timeout_ms = (uint32_t)v;
    o->have_timeout = 1;
    return;
  case OPT_JSON:
    o->json = 1;
    return;
  case OPT_VERBOSE:
    o->verbose = 1;
    return;
  case OPT_HELP:
    o->help = 1;
    return;
  case OPT_VERSION:
    o->version = 1;
    return;
  case OPT_IPV6:
    o->ipv6 = 1;
    return;
  case OPT_PEER:
    if (o->peer_address[0] != '\0') {
      cli_set_error(err, "--peer is given twice: one remote peer per mapping");
      return;
    }
    parse_peer(o, value, err);
    return;
  case OPT_THIRD_PARTY:
    if (o->third_party != NULL) {
      cli_set_error(err, "--third-party is given twice: one internal host per mapping");
      return;
    }
    if (parse_any_addr(value, &o->third_party_is_v6) != 0) {
      cli_set_error(err, "--third-party '%s' is not an IPv4 or IPv6 address", value);
      return;
    }
    o->third_party = value;
    return;
  case OPT_FILTER:
    parse_filter(o, value, err);
    return;
  case OPT_PREFER_FAILURE:
    o->prefer_failure = 1;
    return;
  case OPT_RETRANSMIT:
    if (cli_parse_uint(value, 100, 60000, &v) != 0) {
      cli_set_error(err, "--retransmit '%s' is invalid: must be 100-60000 milliseconds", value);
      return;
    }
    o->pcp_irt_ms = (uint32_t)v;
    return;
  }
}

static command_t parse_command(const char *s) {
  if (strcmp(s, "add") == 0) {
    return CMD_ADD;
  }
  if (strcmp(s, "keep") == 0) {
    return CMD_KEEP;
  }
  if (strcmp(s, "delete") == 0) {
    return CMD_DELETE;
  }
  if (strcmp(s, "list") == 0) {
    return CMD_LIST;
  }
  return CMD_NONE;
}

/* The PCP extras must agree with each other and with the mapping's family. */
static void check_pcp_options(const options_t *o, parse_error_t *err) {
  const char *fam = o->ipv6 ? "IPv6 (--ipv6)" : "IPv4 (add --ipv6 for IPv6)";
  size_t k;

  if (o->peer_address[0] != '\0') {
    if (o->peer_is_v6 != o->ipv6) {
      cli_set_error(err, "--peer %s is not of the mapping's family: it must be %s", o->peer_address,
                    fam);
    }
    if (o->prefer_failure) {
      cli_set_error(err, "--prefer-failure applies to MAP only, not to a --peer mapping");
    }
    if (o->n_filters > 0) {
      cli_set_error(err, "--filter applies to MAP only, not to a --peer mapping");
    }
  }
  if (o->third_party != NULL && o->third_party_is_v6 != o->ipv6) {
    cli_set_error(err, "--third-party %s is not of the mapping's family: it must be %s",
                  o->third_party, fam);
  }
  for (k = 0; k < o->n_filters; k++) {
    if (o->filter_is_v6[k] != o->ipv6) {
      cli_set_error(err, "--filter %s is not of the mapping's family: it must be %s",
                    o->filter_address[k], fam);
    }
  }
}

/*
 * Read the whole command line into o. Options and positional words may be
 * mixed. The first usage error is kept in err; --help and --version win over
 * errors so `portmap add 0 --help` still helps.
 */
static void parse_args(int argc, char **argv, options_t *o, parse_error_t *err) {
  unsigned seen = 0; /* bit per option_id, to check against the command afterwards */
  const char *seen_name[N_OPTION_DEFS];
  const char **positional;
  size_t n_pos = 0, j;

  memset(seen_name, 0, sizeof seen_name);
  positional = calloc((size_t)argc + 1, sizeof *positional);
  if (positional == NULL) {
    cli_set_error(err, "out of memory");
    return;
  }
  /* "-1" is a (bad) port, not an option */
  cli_args_t a = {argc, argv, 0, 0, 1, option_defs, N_OPTION_DEFS};
  for (;;) {
    const cli_option_t *def;
    const char *word, *value;
    cli_arg_kind_t kind = cli_next_arg(&a, &word, &def, &value, err);
    if (kind == CLI_ARG_END) {
      break;
    }
    if (kind == CLI_ARG_POSITIONAL) {
      positional[n_pos++] = word;
    } else if (kind == CLI_ARG_HELP) {
      o->help = 1;
    } else if (kind == CLI_ARG_OPTION) {
      seen |= 1u << def->id;
      seen_name[def->id] = def->name;
      apply_option(o, def, value, err);
    }
  }

  if (n_pos == 0) {
    cli_set_error(err, "missing command: use add, keep, delete or list");
    goto done;
  }
  o->cmd_name = positional[0];
  o->cmd = parse_command(positional[0]);
  if (o->cmd == CMD_NONE) {
    cli_set_error(err, "unknown command '%s': use add, keep, delete or list", positional[0]);
    goto done;
  }
  for (j = 0; j < N_OPTION_DEFS; j++) {
    const cli_option_t *def = &option_defs[j];
    if ((seen & (1u << def->id)) != 0 && (def->commands & (unsigned)o->cmd) == 0) {
      cli_set_error(err, "option --%s does not apply to %s", seen_name[def->id], o->cmd_name);
    }
  }
  if (o->cmd == CMD_LIST) {
    if (n_pos > 1) {
      cli_set_error(err, "list takes no PORT (got '%s')", positional[1]);
    } else if (o->have_timeout && o->timeout_ms == 0) {
      cli_set_error(err, "--timeout 0 is only valid with keep: use 1-%u milliseconds",
                    MAX_TIMEOUT_MS);
    }
    goto done;
  }
  if (n_pos == 1) {
    cli_set_error(err, "%s needs a PORT[/tcp|/udp]", o->cmd_name);
    goto done;
  }
  if (o->cmd != CMD_KEEP && n_pos > 2) {
    cli_set_error(err, "%s takes one PORT, got %zu (%s)", o->cmd_name, n_pos - 1,
                  o->cmd == CMD_ADD ? "use keep for several" : "delete them one at a time");
    goto done;
  }
  o->targets = calloc(n_pos - 1, sizeof *o->targets);
  if (o->targets == NULL) {
    cli_set_error(err, "out of memory");
    goto done;
  }
  for (j = 1; j < n_pos; j++) {
    size_t k;
    if (parse_target(positional[j], &o->targets[o->n_targets], err) != 0) {
      goto done;
    }
    for (k = 0; k < o->n_targets; k++) {
      if (o->targets[k].port == o->targets[o->n_targets].port &&
          o->targets[k].protocol == o->targets[o->n_targets].protocol) {
        cli_set_error(err, "'%s' is given twice", positional[j]);
        goto done;
      }
    }
    o->n_targets++;
  }
  if (o->external_port != 0 && o->n_targets > 1) {
    cli_set_error(err, "--external needs a single PORT");
  }
  check_pcp_options(o, err);
  if (o->have_timeout && o->timeout_ms == 0 && o->cmd != CMD_KEEP) {
    cli_set_error(err, "--timeout 0 is only valid with keep: use 1-%u milliseconds",
                  MAX_TIMEOUT_MS);
  }
done:
  free(positional);
}

/* ---------------------------------------------------------------------- */
/* Output                                                                  */
/* ---------------------------------------------------------------------- */

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
  mapping_ctx_t *maps;
  size_t n_maps;
  size_t active; /* mappings still waiting for their final event */
  size_t failed;
  int revoking;      /* keep: shutting down */
  int output_broken; /* stdout went away (EPIPE): stop like on a signal */
  int silent;        /* the tool gave up on its mappings: print nothing more */
};

static const char *proto_name(int protocol, char *buf, size_t len) {
  if (protocol == PORTMAP_PROTO_TCP) {
    return "tcp";
  }
  if (protocol == PORTMAP_PROTO_UDP) {
    return "udp";
  }
  snprintf(buf, len, "proto %d", protocol);
  return buf;
}

/* The external address as text, or NULL when not known. */
static const char *external_address(const portmap_info_t *info, char *buf, size_t len) {
  static const uint8_t v4_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  const uint8_t *b = info->external_address.bytes;
  size_t i;
  int zero = 1;
  /* Both :: and ::ffff:0.0.0.0 mean "not known". */
  for (i = memcmp(b, v4_prefix, sizeof v4_prefix) == 0 ? sizeof v4_prefix : 0; i < 16; i++) {
    if (b[i] != 0) {
      zero = 0;
      break;
    }
  }
  if (zero) {
    return NULL;
  }
  if (info->external_address_str[0] != '\0' &&
      memchr(info->external_address_str, '\0', sizeof info->external_address_str) != NULL) {
    return info->external_address_str;
  }
  return portmap_addr_format(&info->external_address, buf, len);
}

/* UPnP IGD WANIPConnection error codes seen in the field. */
/* The gateway's result code by name, for whichever protocol said it. */
static void json_str_or_null(FILE *f, int *first, const char *key, const char *value) {
  cli_json_key(f, first, key);
  if (value != NULL) {
    cli_json_string(f, value);
  } else {
    fputs("null", f);
  }
}

/* The gateway as text for messages: the one given, the one the client found, or a phrase. */
static const char *gateway_text(const cli_t *cli, char *buf, size_t len) {
  if (cli->opt->gateway != NULL) {
    return cli->opt->gateway;
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

static unsigned server_port(const cli_t *cli) {
  return cli->opt->server_port != 0 ? cli->opt->server_port : DEFAULT_SERVER_PORT;
}

static void check_output(cli_t *cli) {
  if (fflush(stdout) != 0 || ferror(stdout)) {
    cli->output_broken = 1;
  }
}

static void print_event_json(cli_t *cli, portmap_event_t event, const portmap_info_t *info,
                             const char *description) {
  char buf[PORTMAP_ADDRSTRLEN], gw[PORTMAP_ADDRSTRLEN], nonce[2 * NONCE_LEN + 1];
  const char *ext = external_address(info, buf, sizeof buf);
  int first = 1;
  FILE *f = stdout;

  json_str_or_null(f, &first, "event", portmap_event_name(event));
  json_str_or_null(f, &first, "backend", portmap_backend_name(info->backend));
  if (info->protocol == PORTMAP_PROTO_TCP || info->protocol == PORTMAP_PROTO_UDP) {
    json_str_or_null(f, &first, "protocol", info->protocol == PORTMAP_PROTO_TCP ? "tcp" : "udp");
  } else {
    cli_json_num(f, &first, "protocol", info->protocol);
  }
  cli_json_num(f, &first, "internal_port", info->internal_port);
  json_str_or_null(f, &first, "external_address", ext);
  cli_json_num(f, &first, "external_port", info->external_port);
  cli_json_key(f, &first, "external_is_private");
  fputs(info->external_is_private ? "true" : "false", f);
  cli_json_num(f, &first, "lifetime", info->lifetime);
  cli_nonce_hex(info->nonce, nonce);
  /* The nonce is PCP's; NONE is a request that got no backend yet (a delete's given nonce). */
  json_str_or_null(f, &first, "nonce",
                   cli_nonce_is_set(info->nonce) && (info->backend == PORTMAP_BACKEND_PCP ||
                                                     info->backend == PORTMAP_BACKEND_NONE)
                       ? nonce
                       : NULL);
  json_str_or_null(f, &first, "description", description);
  json_str_or_null(f, &first, "gateway", gateway_text(cli, gw, sizeof gw));
  if (cli->opt->peer_address[0] != '\0') {
    char peer[PORTMAP_ADDRSTRLEN + 8];
    snprintf(peer, sizeof peer, cli->opt->peer_is_v6 ? "[%s]:%u" : "%s:%u", cli->opt->peer_address,
             (unsigned)cli->opt->peer_port);
    json_str_or_null(f, &first, "peer", peer);
  }
  if (event == PORTMAP_EVENT_FAILED || event == PORTMAP_EVENT_LOST) {
    json_str_or_null(f, &first, "error", portmap_strerror(info->status));
    if (info->gateway_result >= 0) {
      cli_json_num(f, &first, "gateway_result", info->gateway_result);
      json_str_or_null(f, &first, "gateway_result_name",
                       cli_gateway_result_name(info->backend, info->gateway_result));
    } else {
      json_str_or_null(f, &first, "gateway_result", NULL);
      json_str_or_null(f, &first, "gateway_result_name", NULL);
    }
  }
  fputs("}\n", f);
  check_output(cli);
}

/* Human text for every event but FAILED (which goes to stderr, see report_failure). */
static void print_event_text(cli_t *cli, portmap_event_t event, const portmap_info_t *info) {
  char pbuf[16], abuf[PORTMAP_ADDRSTRLEN], nonce[2 * NONCE_LEN + 1];
  const char *proto = proto_name(info->protocol, pbuf, sizeof pbuf);
  const char *ext = external_address(info, abuf, sizeof abuf);

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
    printf(" via %s, lifetime %lu s", portmap_backend_name(info->backend),
           (unsigned long)info->lifetime);
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
  check_output(cli);
}

static int exit_code_for(portmap_status_t status) {
  switch (status) {
  case PORTMAP_OK:
    return EXIT_OK;
  case PORTMAP_ERR_TIMEOUT:
  case PORTMAP_ERR_REFUSED:
  case PORTMAP_ERR_UNREACHABLE:
  case PORTMAP_ERR_NATPMP_GATEWAY:
  case PORTMAP_ERR_NO_GATEWAY:
    return EXIT_REFUSED;
  default:
    return EXIT_USAGE;
  }
}

/* What to suggest when nothing answered, given the backends the user allowed. */
static const char *no_answer_hint(const cli_t *cli) {
  unsigned b = cli->opt->backends;
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

/*
 * One line on stderr saying what went wrong and what to try. prefix names the
 * mapping when there are several ("tcp 8000: "), else "".
 */
static void report_failure(cli_t *cli, const char *prefix, portmap_status_t status,
                           const portmap_info_t *info, int deleting) {
  char gwbuf[PORTMAP_ADDRSTRLEN];
  const char *gw = gateway_text(cli, gwbuf, sizeof gwbuf);
  const char *gw_or = gw != NULL ? gw : "the gateway";
  const char *what = deleting ? "the delete" : "the mapping";
  int saved_errno = errno;

  fprintf(stderr, PROG ": %s", prefix);
  if (cli->revoking && (status == PORTMAP_ERR_TIMEOUT || status == PORTMAP_ERR_CANCELLED)) {
    fprintf(stderr,
            "%s did not confirm the delete in time; the mapping expires with its "
            "lifetime\n",
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
      fprintf(stderr, "no answer from %s on port %u", gw_or, server_port(cli));
    }
    if (cli->opt->timeout_ms > 0) {
      fprintf(stderr, " within %lu ms", (unsigned long)cli->opt->timeout_ms);
    }
    fprintf(stderr, "; %s\n", no_answer_hint(cli));
    return;
  case PORTMAP_ERR_UNREACHABLE:
    if (info != NULL && info->backend == PORTMAP_BACKEND_NATPMP) {
      fprintf(stderr, "nothing listens on the NAT-PMP port of %s (ICMP port unreachable); %s\n",
              gw_or, no_answer_hint(cli));
    } else {
      fprintf(stderr, "nothing listens on %s UDP port %u (ICMP port unreachable); %s\n", gw_or,
              server_port(cli), no_answer_hint(cli));
    }
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
    fputc('\n', stderr);
    return;
  }
  case PORTMAP_ERR_NATPMP_GATEWAY:
    fprintf(stderr,
            "%s speaks NAT-PMP, not PCP (it answered UNSUPP_VERSION); try --backend "
            "natpmp or --backend auto\n",
            gw_or);
    return;
  case PORTMAP_ERR_NO_GATEWAY:
    fputs("no default gateway found; pass --gateway ADDR\n", stderr);
    return;
  case PORTMAP_ERR_NO_BACKEND:
    fputs("none of the selected backends is usable (not built in, or not for this "
          "request); try --backend auto\n",
          stderr);
    return;
  case PORTMAP_ERR_UNSUPPORTED:
    fprintf(stderr, "the %s backend cannot express this request; try another --backend\n",
            portmap_backend_name(info != NULL ? info->backend : PORTMAP_BACKEND_NONE));
    return;
  case PORTMAP_ERR_SYSTEM:
    fprintf(stderr, "a system call failed: %s\n", strerror(saved_errno));
    return;
  case PORTMAP_ERR_NOMEM:
    fputs("out of memory\n", stderr);
    return;
  case PORTMAP_ERR_CANCELLED:
    fprintf(stderr, "%s was cancelled\n", what);
    return;
  case PORTMAP_ERR_THIRD_PARTY:
    fprintf(stderr,
            "--third-party %s is this host's own address: THIRD_PARTY maps for another host; "
            "drop --third-party\n",
            cli->opt->third_party != NULL ? cli->opt->third_party : "");
    return;
  case PORTMAP_ERR_ADDRESS:
    if (cli->opt->ipv6 || cli->opt->peer_address[0] != '\0' || cli->opt->third_party != NULL ||
        cli->opt->n_filters > 0) {
      fprintf(stderr, "%s failed: %s (check the addresses given and --ipv6)\n", what,
              portmap_strerror(status));
      return;
    }
    break;
  default:
    break;
  }
  fprintf(stderr, "%s failed: %s\n", what, portmap_strerror(status));
}

/* ---------------------------------------------------------------------- */
/* Client, requests, callbacks                                             */
/* ---------------------------------------------------------------------- */

static void log_to_stderr(portmap_log_level_t level, const char *msg, void *user) {
  static const char *const names[] = {"error", "warn", "info", "debug"};
  const char *name = (unsigned)level < sizeof names / sizeof names[0] ? names[level] : "log";
  (void)user;
  fprintf(stderr, PROG ": [%s] %s\n", name, msg);
}

/*
 * request_timeout_ms: give up on a new mapping after this (0 = never).
 * listen: open the ANNOUNCE listener (only worth it for keep).
 */
static int make_client(cli_t *cli, uint32_t request_timeout_ms, uint32_t destroy_timeout_ms,
                       int listen) {
  const options_t *o = cli->opt;
  portmap_config_t cfg;
  portmap_status_t st;
  int saved_errno;

  portmap_config_init(&cfg);
  cfg.gateway = o->gateway;
  cfg.backends = o->backends;
  if (o->server_port != 0) {
    cfg.server_port = o->server_port;
  }
  if (o->pcp_irt_ms != 0) {
    cfg.pcp_irt_ms = o->pcp_irt_ms;
  }
  cfg.request_timeout_ms = request_timeout_ms;
  cfg.destroy_timeout_ms = destroy_timeout_ms;
  if (!listen) {
    cfg.announce_port = -1;
  }
  if (o->verbose) {
    cfg.log_cb = log_to_stderr;
    cfg.log_level = PORTMAP_LOG_DEBUG;
  }
  errno = 0;
  st = portmap_client_new(&cfg, &cli->client);
  saved_errno = errno;
  if (st == PORTMAP_OK) {
    return EXIT_OK;
  }
  cli->client = NULL;
  cli_report_client_error(PROG, st, saved_errno, o->gateway);
  return exit_code_for(st) == EXIT_OK ? EXIT_USAGE : exit_code_for(st);
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

static void mapping_prefix(const mapping_ctx_t *mc, char *buf, size_t len) {
  char pbuf[16];
  if (mc->cli->opt->cmd != CMD_KEEP) {
    buf[0] = '\0';
    return;
  }
  snprintf(buf, len, "%s %u: ", proto_name(mc->target->protocol, pbuf, sizeof pbuf),
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
  if (cli->opt->json) {
    print_event_json(cli, event, info, deleting ? NULL : cli->opt->description);
  } else {
    print_event_text(cli, event, info);
  }
  if (event == PORTMAP_EVENT_FAILED) {
    char prefix[32];
    mapping_prefix(mc, prefix, sizeof prefix);
    report_failure(cli, prefix, info->status, info, deleting || cli->revoking);
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

static void print_stats(const cli_t *cli) {
  portmap_stats_t s;
  if (!cli->opt->verbose || cli->client == NULL ||
      portmap_client_stats(cli->client, &s) != PORTMAP_OK) {
    return;
  }
  fprintf(stderr,
          PROG ": [debug] sent %llu (%llu retransmissions), received %llu; dropped: %llu "
               "malformed, %llu spoofed, %llu unmatched; %llu epoch resets\n",
          (unsigned long long)s.sent, (unsigned long long)s.retransmissions,
          (unsigned long long)s.received, (unsigned long long)s.malformed,
          (unsigned long long)s.spoofed, (unsigned long long)s.unmatched,
          (unsigned long long)s.epoch_invalid);
}

static void free_client(cli_t *cli) {
  print_stats(cli);
  (void)portmap_client_free(cli->client);
  cli->client = NULL;
}

/* ---------------------------------------------------------------------- */
/* Event loop                                                              */
/* ---------------------------------------------------------------------- */

/* Set by the signal handler for SIGINT/SIGTERM/SIGHUP (below). */
static volatile sig_atomic_t stop_requested = 0;

typedef enum drive_result {
  DRIVE_DONE,     /* every mapping got its final event */
  DRIVE_DEADLINE, /* the deadline passed first */
  DRIVE_SIGNAL,   /* SIGINT/SIGTERM/SIGHUP, or stdout went away */
  DRIVE_ERROR     /* poll() or portmap_process() failed; reported */
} drive_result_t;

/*
 * Run the client until no mapping is active, deadline (monotonic ms, 0 =
 * none) passes, or sig_fd (-1 = none) becomes readable.
 */
static drive_result_t drive(cli_t *cli, uint64_t deadline, int sig_fd) {
  struct pollfd pfds_small[9];
  struct pollfd *pfds = pfds_small;
  int fds_small[8];
  int *fds = fds_small;
  size_t cap = sizeof fds_small / sizeof fds_small[0];
  drive_result_t result = DRIVE_DONE;

  while (cli->active > 0) {
    size_t n, i, base = 0;
    int timeout, r;
    portmap_status_t st;

    if (cli->output_broken && sig_fd >= 0) {
      result = DRIVE_SIGNAL;
      break;
    }
    n = portmap_fds(cli->client, fds, cap);
    if (n > cap) {
      int *nfds = malloc(n * sizeof *nfds);
      struct pollfd *npfds = malloc((n + 1) * sizeof *npfds);
      if (nfds == NULL || npfds == NULL) {
        free(nfds);
        free(npfds);
        fputs(PROG ": out of memory\n", stderr);
        result = DRIVE_ERROR;
        break;
      }
      if (fds != fds_small) {
        free(fds);
        free(pfds);
      }
      fds = nfds;
      pfds = npfds;
      cap = n;
      continue;
    }
    if (sig_fd >= 0) {
      pfds[0].fd = sig_fd;
      pfds[0].events = POLLIN;
      pfds[0].revents = 0;
      base = 1;
    }
    for (i = 0; i < n; i++) {
      pfds[base + i].fd = fds[i];
      pfds[base + i].events = POLLIN;
      pfds[base + i].revents = 0;
    }
    timeout = portmap_timeout_ms(cli->client);
    if (deadline != 0) {
      uint64_t now = cli_now_ms();
      uint64_t left;
      if (now >= deadline) {
        result = DRIVE_DEADLINE;
        break;
      }
      left = deadline - now;
      if (timeout < 0 || (uint64_t)timeout > left) {
        timeout = left > (uint64_t)INT32_MAX ? INT32_MAX : (int)left;
      }
    }
    r = poll(pfds, (nfds_t)(base + n), timeout);
    if (r < 0) {
      if (errno == EINTR) {
        continue; /* the handler wrote to sig_fd: seen on the next round */
      }
      fprintf(stderr, PROG ": poll failed: %s\n", strerror(errno));
      result = DRIVE_ERROR;
      break;
    }
    if (sig_fd >= 0 && (pfds[0].revents & POLLIN) != 0) {
      unsigned char drain[64];
      ssize_t got;
      int stop = 0, recheck = 0;
      while ((got = read(sig_fd, drain, sizeof drain)) > 0) {
        for (ssize_t k = 0; k < got; k++) {
          if (drain[k] == (unsigned char)SIGUSR1) {
            recheck = 1;
          } else {
            stop = 1;
          }
        }
      }
      if (stop || stop_requested) {
        result = DRIVE_SIGNAL;
        break;
      }
      if (recheck) {
        (void)portmap_network_changed(cli->client); /* SIGUSR1: look at the network now */
      }
    }
    st = portmap_process(cli->client);
    if (st != PORTMAP_OK) {
      fprintf(stderr, PROG ": internal error: portmap_process: %s\n", portmap_strerror(st));
      result = DRIVE_ERROR;
      break;
    }
  }
  if (fds != fds_small) {
    free(fds);
    free(pfds);
  }
  return result;
}

/* Written by the signal handler, read by the loop: the self-pipe trick. A
 * stop is also kept in a flag, so that a pipe filled by SIGUSR1s cannot
 * lose it. */
static int signal_pipe_write = -1;

static void on_signal(int sig) {
  int saved_errno = errno;
  unsigned char b = (unsigned char)sig;
  if (sig != SIGUSR1) {
    stop_requested = 1;
  }
  if (write(signal_pipe_write, &b, 1) < 0) {
    /* the pipe is full: the loop will wake and read it anyway */
  }
  errno = saved_errno;
}

static int install_signals(int pipefd[2]) {
  struct sigaction sa;
  static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1};
  size_t i;

  if (pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) != 0) {
    fprintf(stderr, PROG ": cannot create a pipe: %s\n", strerror(errno));
    return -1;
  }
  signal_pipe_write = pipefd[1];
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  /* SIGUSR1 must not break a write to stdout/stderr (EINTR would mark the
   * stream broken and end the run); poll() still returns EINTR. */
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  for (i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
    if (sigaction(sigs[i], &sa, NULL) != 0) {
      fprintf(stderr, PROG ": cannot install a signal handler: %s\n", strerror(errno));
      return -1;
    }
  }
  /* A closed stdout must not kill us before the mappings are deleted. */
  sa.sa_handler = SIG_IGN;
  (void)sigaction(SIGPIPE, &sa, NULL);
  return 0;
}

/* ---------------------------------------------------------------------- */
/* Commands                                                                */
/* ---------------------------------------------------------------------- */

static int cmd_add(cli_t *cli) {
  const options_t *o = cli->opt;
  portmap_request_t req;
  portmap_info_t info;
  portmap_mapping_t *m = NULL;
  portmap_status_t st;
  int rc;

  rc = make_client(cli, o->timeout_ms, 1000, 0);
  if (rc != EXIT_OK) {
    return rc;
  }
  make_request(o, &o->targets[0], &req);
  info_from_request(&req, &info);
  st = portmap_map_sync(cli->client, &req, (int)o->timeout_ms, &info, &m);
  if (st == PORTMAP_OK && m == NULL) {
    st = PORTMAP_ERR_STATE; /* no handle: we could not leave the mapping in place */
  }
  if (st == PORTMAP_OK) {
    /* add leaves the mapping on the gateway: forget it without deleting it. */
    portmap_status_t dst = portmap_mapping_detach(m);
    if (dst != PORTMAP_OK) {
      fprintf(stderr,
              PROG ": the gateway granted the mapping but it could not be kept (%s); it is "
                   "deleted again\n",
              portmap_strerror(dst));
      rc = EXIT_USAGE;
    } else if (o->json) {
      print_event_json(cli, PORTMAP_EVENT_MAPPED, &info, o->description);
    } else {
      print_event_text(cli, PORTMAP_EVENT_MAPPED, &info);
    }
  } else {
    if (info.protocol == 0 && info.internal_port == 0) {
      /* portmap_map refused the request before any backend saw it: describe the request */
      info_from_request(&req, &info);
    }
    info.status = st;
    if (o->json) {
      print_event_json(cli, PORTMAP_EVENT_FAILED, &info, o->description);
    }
    report_failure(cli, "", st, &info, 0);
    rc = exit_code_for(st);
  }
  free_client(cli);
  if (rc == EXIT_OK && cli->output_broken) {
    rc = EXIT_USAGE;
  }
  return rc;
}

static int cmd_delete(cli_t *cli) {
  const options_t *o = cli->opt;
  portmap_request_t req;
  mapping_ctx_t mc;
  portmap_status_t st;
  drive_result_t dr;
  int rc;

  rc = make_client(cli, o->timeout_ms, 200, 0);
  if (rc != EXIT_OK) {
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
    portmap_info_t info;
    info_from_request(&req, &info);
    info.status = st;
    if (o->json) {
      print_event_json(cli, PORTMAP_EVENT_FAILED, &info, NULL);
    }
    report_failure(cli, "", st, &info, 1);
    rc = exit_code_for(st);
    goto done;
  }
  cli->active = 1;
  /* The library gives up after request_timeout_ms; the margin only guards against it not. */
  dr = drive(cli, cli_now_ms() + o->timeout_ms + 1000u, -1);
  if (dr == DRIVE_DONE) {
    rc = mc.final_event == PORTMAP_EVENT_DELETED ? EXIT_OK : exit_code_for(mc.status);
    if (rc == EXIT_OK && cli->output_broken) {
      rc = EXIT_USAGE;
    }
  } else if (dr == DRIVE_DEADLINE) {
    portmap_info_t info;
    info_from_request(&req, &info);
    info.status = PORTMAP_ERR_TIMEOUT;
    if (o->json) {
      print_event_json(cli, PORTMAP_EVENT_FAILED, &info, NULL);
    }
    report_failure(cli, "", PORTMAP_ERR_TIMEOUT, &info, 1);
    rc = EXIT_REFUSED;
  } else {
    rc = EXIT_USAGE;
  }
done:
  /* What freeing the client does to a mapping we gave up on is not news. */
  cli->silent = 1;
  free_client(cli);
  cli->maps = NULL;
  cli->n_maps = 0;
  return rc;
}

static int cmd_keep(cli_t *cli) {
  const options_t *o = cli->opt;
  int pipefd[2] = {-1, -1};
  portmap_status_t st;
  drive_result_t dr;
  size_t i;
  int rc = EXIT_OK;

  if (install_signals(pipefd) != 0) {
    rc = EXIT_USAGE;
    goto done;
  }
  /* The tool waits SHUTDOWN_WAIT_MS itself: the client's own wait need not be long. */
  rc = make_client(cli, o->timeout_ms, 200, 1);
  if (rc != EXIT_OK) {
    goto done;
  }
  cli->maps = calloc(o->n_targets, sizeof *cli->maps);
  if (cli->maps == NULL) {
    fputs(PROG ": out of memory\n", stderr);
    rc = EXIT_USAGE;
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
      portmap_info_t info;
      char prefix[32];
      mc->handle = NULL;
      mc->done = 1;
      info_from_request(&req, &info);
      info.status = st;
      if (o->json) {
        print_event_json(cli, PORTMAP_EVENT_FAILED, &info, o->description);
      }
      mapping_prefix(mc, prefix, sizeof prefix);
      report_failure(cli, prefix, st, &info, 0);
      rc = exit_code_for(st);
      goto shutdown;
    }
    cli->active++;
  }

  dr = drive(cli, 0, pipefd[0]);
  if (dr == DRIVE_DONE) {
    /* Nothing is left: every mapping failed for good (each already reported). */
    for (i = 0; i < cli->n_maps; i++) {
      if (cli->maps[i].final_event == PORTMAP_EVENT_FAILED) {
        rc = exit_code_for(cli->maps[i].status);
        break;
      }
    }
    if (cli->failed == cli->n_maps && rc == EXIT_OK) {
      rc = EXIT_REFUSED;
    }
    goto done;
  }
  if (dr == DRIVE_ERROR) {
    rc = EXIT_USAGE;
  } else if (cli->output_broken) {
    fprintf(stderr, PROG ": cannot write to stdout; deleting the mappings\n");
    rc = EXIT_USAGE;
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
  (void)drive(cli, cli_now_ms() + SHUTDOWN_WAIT_MS, pipefd[0]);

done:
  if (cli->client != NULL) {
    free_client(cli);
  }
  free(cli->maps);
  cli->maps = NULL;
  cli->n_maps = 0;
  if (pipefd[0] >= 0) {
    signal_pipe_write = -1;
    close(pipefd[0]);
    close(pipefd[1]);
  }
  return rc;
}

/* Network text printed raw could drive the terminal: control characters become '?'. */
/* A fixed-size string from the library, or "" when it is not terminated. */
static const char *entry_text(const char *s, size_t size) {
  return memchr(s, '\0', size) != NULL ? s : "";
}

#define ENTRY_TEXT(s) entry_text((s), sizeof(s))

static void print_entry_json(cli_t *cli, const portmap_list_entry_t *e) {
  char gw[PORTMAP_ADDRSTRLEN];
  const char *remote = ENTRY_TEXT(e->remote_host);
  const char *client_addr = ENTRY_TEXT(e->internal_client);
  int first = 1;
  FILE *f = stdout;

  json_str_or_null(f, &first, "event", "entry");
  /* Only UPnP-IGD lists mappings. */
  json_str_or_null(f, &first, "backend", portmap_backend_name(PORTMAP_BACKEND_UPNP));
  if (e->protocol == PORTMAP_PROTO_TCP || e->protocol == PORTMAP_PROTO_UDP) {
    json_str_or_null(f, &first, "protocol", e->protocol == PORTMAP_PROTO_TCP ? "tcp" : "udp");
  } else {
    cli_json_num(f, &first, "protocol", e->protocol);
  }
  cli_json_num(f, &first, "external_port", e->external_port);
  json_str_or_null(f, &first, "internal_client", client_addr[0] != '\0' ? client_addr : NULL);
  cli_json_num(f, &first, "internal_port", e->internal_port);
  json_str_or_null(f, &first, "remote_host", remote[0] != '\0' ? remote : NULL);
  json_str_or_null(f, &first, "description", ENTRY_TEXT(e->description));
  cli_json_num(f, &first, "lease", e->lease);
  cli_json_key(f, &first, "enabled");
  fputs(e->enabled ? "true" : "false", f);
  json_str_or_null(f, &first, "gateway", gateway_text(cli, gw, sizeof gw));
  fputs("}\n", f);
  check_output(cli);
}

static void print_entries_text(cli_t *cli, const portmap_list_entry_t *entries, size_t n,
                               size_t total) {
  char gw[PORTMAP_ADDRSTRLEN];
  const char *gwt = gateway_text(cli, gw, sizeof gw);
  size_t i;

  if (total == 0) {
    printf("no port mappings on %s\n", gwt != NULL ? gwt : "the gateway");
    check_output(cli);
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
    printf("%-6s %-9u ", proto_name(e->protocol, pbuf, sizeof pbuf), (unsigned)e->external_port);
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
  check_output(cli);
}

/* One line on stderr saying why the table could not be read, and the exit status. */
static int report_list_failure(cli_t *cli, portmap_status_t st) {
  char gwbuf[PORTMAP_ADDRSTRLEN];
  const char *gw = gateway_text(cli, gwbuf, sizeof gwbuf);
  const char *gw_or = gw != NULL ? gw : "the gateway";
  unsigned b = cli->opt->backends;

  if (cli->opt->json) {
    int first = 1;
    json_str_or_null(stdout, &first, "event", "failed");
    json_str_or_null(stdout, &first, "backend",
                     st == PORTMAP_ERR_UNSUPPORTED ? NULL
                                                   : portmap_backend_name(PORTMAP_BACKEND_UPNP));
    json_str_or_null(stdout, &first, "error", portmap_strerror(st));
    json_str_or_null(stdout, &first, "gateway", gw);
    fputs("}\n", stdout);
    check_output(cli);
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
    return EXIT_REFUSED;
  case PORTMAP_ERR_TIMEOUT:
    fprintf(stderr,
            PROG ": cannot list mappings: no answer from the UPnP-IGD of %s within %lu ms; is "
                 "UPnP enabled on the router?\n",
            gw_or, (unsigned long)cli->opt->timeout_ms);
    return EXIT_REFUSED;
  case PORTMAP_ERR_NO_GATEWAY:
    fputs(PROG ": cannot list mappings: no default gateway found; pass --gateway ADDR\n", stderr);
    return EXIT_REFUSED;
  default:
    fprintf(stderr, PROG ": cannot list the mappings of %s: %s\n", gw_or, portmap_strerror(st));
    return exit_code_for(st);
  }
}

static int cmd_list(cli_t *cli) {
  const options_t *o = cli->opt;
  portmap_list_entry_t *entries;
  size_t total = 0, n, i;
  portmap_status_t st;
  int rc;

  entries = calloc(LIST_CAP, sizeof *entries);
  if (entries == NULL) {
    fputs(PROG ": out of memory\n", stderr);
    return EXIT_USAGE;
  }
  rc = make_client(cli, o->timeout_ms, 200, 0);
  if (rc != EXIT_OK) {
    free(entries);
    return rc;
  }
  st = portmap_list_sync(cli->client, (int)o->timeout_ms, entries, LIST_CAP, &total);
  if (st != PORTMAP_OK) {
    rc = report_list_failure(cli, st);
    goto done;
  }
  n = total < LIST_CAP ? total : LIST_CAP;
  if (o->json) {
    int first = 1;
    for (i = 0; i < n; i++) {
      print_entry_json(cli, &entries[i]);
    }
    json_str_or_null(stdout, &first, "event", "end");
    cli_json_num(stdout, &first, "count", (long long)n);
    cli_json_num(stdout, &first, "total", (long long)total);
    fputs("}\n", stdout);
    check_output(cli);
  } else {
    print_entries_text(cli, entries, n, total);
  }
  if (cli->output_broken) {
    rc = EXIT_USAGE;
  }
done:
  free_client(cli);
  free(entries);
  return rc;
}

int main(int argc, char **argv) {
  options_t o;
  parse_error_t err;
  cli_t cli;
  int rc = EXIT_USAGE;

  memset(&o, 0, sizeof o);
  memset(&err, 0, sizeof err);
  memset(&cli, 0, sizeof cli);
  parse_args(argc, argv, &o, &err);
  if (o.help) {
    fputs(help_text, stdout);
    rc = fflush(stdout) == 0 ? EXIT_OK : EXIT_USAGE;
    goto done;
  }
  if (o.version) {
    printf("portmap (libportmap) %d.%d.%d\n", PORTMAP_VERSION_MAJOR, PORTMAP_VERSION_MINOR,
           PORTMAP_VERSION_PATCH);
    rc = fflush(stdout) == 0 ? EXIT_OK : EXIT_USAGE;
    goto done;
  }
  if (err.set) {
    fprintf(stderr, PROG ": %s\n%s\n", err.msg, usage_line(o.cmd));
    rc = EXIT_USAGE;
    goto done;
  }
  if (!o.have_timeout) {
    o.timeout_ms = o.cmd == CMD_KEEP ? 0 : DEFAULT_TIMEOUT_MS;
  }
  cli.opt = &o;
  switch (o.cmd) {
  case CMD_ADD:
    rc = cmd_add(&cli);
    break;
  case CMD_KEEP:
    rc = cmd_keep(&cli);
    break;
  case CMD_DELETE:
    rc = cmd_delete(&cli);
    break;
  case CMD_LIST:
    rc = cmd_list(&cli);
    break;
  case CMD_NONE:
    break;
  }
done:
  free(o.targets);
  return rc;
}
