/* SPDX-License-Identifier: MIT */
/*
 * portmap: the command-line front end of libportmap. This file: its help,
 * its command line and main(); the commands are in portmap_cmds.c, what
 * they print in portmap_report.c, the shared driver in cli_*.c.
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
#include "portmap_tool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------- */
/* Help and usage                                                          */
/* ---------------------------------------------------------------------- */

static const char help_text[] =
    "NAME\n"
    "    portmap - open a port forward on the gateway (PCP, NAT-PMP, UPnP-IGD)\n"
    "\n"
    "SYNOPSIS\n"
    "    portmap add PORT[/tcp|/udp] [--external PORT] [--lifetime SECONDS]\n"
    "                [--description TEXT] [--nonce HEX] [--permanent] [PCP options]\n"
    "                [common options]\n"
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
    "            A router that grants only permanent UPnP leases would keep the rule\n"
    "            forever: add deletes it again and exits 1 (use keep, which deletes\n"
    "            on exit, or --permanent).\n"
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
    "    --permanent           add: accept a permanent lease (a UPnP router granting\n"
    "                          no other) and leave it; remove it with delete\n"
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
    "    gateway_result, gateway_result_name and tried (one object per enabled\n"
    "    backend: backend, tried, status, gateway_result, gateway_result_name).\n"
    "    Failures are also explained in one line on stderr. keep with nothing\n"
    "    answering prints lost and asks again after 2 s, doubling up to 5 min.\n"
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
           "[--filter ADDR/PREFIX[:PORT]] [--prefer-failure] [--permanent] [--gateway ADDR] "
           "[--json] (see portmap --help)";
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
  const char *proto = NULL;
  char port[16];

  switch (cli_parse_target(arg, &t->protocol, &t->port, &proto, port)) {
  case CLI_TARGET_OK:
    return 0;
  case CLI_TARGET_NO_PROTOCOL:
    cli_set_error(err, "missing protocol after '/' in '%s': use tcp or udp", arg);
    break;
  case CLI_TARGET_BAD_PROTOCOL:
    cli_set_error(err, "unknown protocol '%s' in '%s': use tcp or udp", proto, arg);
    break;
  case CLI_TARGET_NO_PORT:
    cli_set_error(err, "missing port in '%s': PORT must be a number 1-65535", arg);
    break;
  case CLI_TARGET_LONG_PORT:
    cli_set_error(err, "invalid port '%.*s': PORT must be a number 1-65535", (int)strcspn(arg, "/"),
                  arg);
    break;
  case CLI_TARGET_BAD_PORT:
    cli_set_error(err, "invalid port '%s': PORT must be a number 1-65535", port);
    break;
  }
  return -1;
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

/* The tool's own options; the common ones are CLI_OPT_*. */
enum option_id {
  OPT_EXTERNAL = CLI_OPT_TOOL,
  OPT_LIFETIME,
  OPT_DESCRIPTION,
  OPT_NONCE,
  OPT_TIMEOUT,
  OPT_IPV6,
  OPT_PEER,
  OPT_THIRD_PARTY,
  OPT_FILTER,
  OPT_PREFER_FAILURE,
  OPT_RETRANSMIT,
  OPT_PERMANENT
};

/* cli_option_t.commands: where the option makes sense */
static const cli_option_t option_defs[] = {
    {"external", OPT_EXTERNAL, 1, CMD_ADD | CMD_KEEP},
    {"lifetime", OPT_LIFETIME, 1, CMD_ADD | CMD_KEEP},
    {"description", OPT_DESCRIPTION, 1, CMD_ADD | CMD_KEEP},
    {"nonce", OPT_NONCE, 1, CMD_ADD | CMD_DELETE},
    {"gateway", CLI_OPT_GATEWAY, 1, CMD_ALL},
    {"backend", CLI_OPT_BACKEND, 1, CMD_ALL},
    {"port", CLI_OPT_PORT, 1, CMD_ALL},
    {"timeout", OPT_TIMEOUT, 1, CMD_ALL},
    {"json", CLI_OPT_JSON, 0, CMD_ALL},
    {"verbose", CLI_OPT_VERBOSE, 0, CMD_ALL},
    {"help", CLI_OPT_HELP, 0, CMD_ALL},
    {"version", CLI_OPT_VERSION, 0, CMD_ALL},
    {"ipv6", OPT_IPV6, 0, CMD_ADD | CMD_KEEP | CMD_DELETE},
    {"peer", OPT_PEER, 1, CMD_ADD | CMD_KEEP},
    {"third-party", OPT_THIRD_PARTY, 1, CMD_ADD | CMD_KEEP | CMD_DELETE},
    {"filter", OPT_FILTER, 1, CMD_ADD | CMD_KEEP},
    {"prefer-failure", OPT_PREFER_FAILURE, 0, CMD_ADD | CMD_KEEP},
    {"retransmit", OPT_RETRANSMIT, 1, CMD_ADD | CMD_KEEP | CMD_DELETE},
    {"permanent", OPT_PERMANENT, 0, CMD_ADD},
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

  if (cli_apply_common_option(&o->common, def->id, value, err)) {
    return;
  }
  switch ((enum option_id)def->id) {
  case OPT_EXTERNAL:
    if (cli_parse_uint(value, 1, 65535, &v) != 0) {
      cli_set_error(err, "--external '%s' is invalid: must be a port 1-65535", value);
      return;
    }
    o->external_port = (uint16_t)v;
    return;
  case OPT_LIFETIME:
    (void)cli_parse_lifetime(value, &o->lifetime, err);
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
  case OPT_TIMEOUT:
    if (cli_parse_uint(value, 0, MAX_TIMEOUT_MS, &v) != 0) {
      cli_set_error(err, "--timeout '%s' is invalid: must be 1-%u milliseconds", value,
                    MAX_TIMEOUT_MS);
      return;
    }
    o->timeout_ms = (uint32_t)v;
    o->have_timeout = 1;
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
  case OPT_PERMANENT:
    o->permanent = 1;
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
      o->common.help = 1;
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

int main(int argc, char **argv) {
  options_t o;
  parse_error_t err;
  cli_t cli;
  int rc = CLI_EXIT_USAGE;

  memset(&o, 0, sizeof o);
  memset(&err, 0, sizeof err);
  memset(&cli, 0, sizeof cli);
  parse_args(argc, argv, &o, &err);
  rc = cli_early_exit(PROG, &o.common, &err, help_text, usage_line(o.cmd));
  if (rc >= 0) {
    goto done;
  }
  rc = CLI_EXIT_USAGE;
  if (!o.have_timeout) {
    o.timeout_ms = o.cmd == CMD_KEEP ? 0 : DEFAULT_TIMEOUT_MS;
  }
  cli.opt = &o;
  switch (o.cmd) {
  case CMD_ADD:
    rc = pm_cmd_add(&cli);
    break;
  case CMD_KEEP:
    rc = pm_cmd_keep(&cli);
    break;
  case CMD_DELETE:
    rc = pm_cmd_delete(&cli);
    break;
  case CMD_LIST:
    rc = pm_cmd_list(&cli);
    break;
  case CMD_NONE:
    break;
  }
done:
  free(o.targets);
  return rc;
}
