/* SPDX-License-Identifier: MIT */
/*
 * The command line of both tools: the first-usage-error record, strict
 * numbers, the word scanner, the options every tool takes alike (--gateway,
 * --backend, --port, --json, --verbose, --help, --version, --lifetime,
 * PORT[/PROTO]), and what to do when the line asks for help or is wrong.
 * Public API only, like the tools themselves.
 */
#include "cli_args.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cli_set_error(parse_error_t *err, const char *fmt, ...) {
  va_list ap;
  if (err->set) {
    return;
  }
  err->set = 1;
  va_start(ap, fmt);
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  va_end(ap);
}

int cli_parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out) {
  const char *p;
  char *end = NULL;
  unsigned long v;

  if (s == NULL || *s == '\0') {
    return -1;
  }
  for (p = s; *p != '\0'; p++) {
    if (*p < '0' || *p > '9') {
      return -1;
    }
  }
  errno = 0;
  v = strtoul(s, &end, 10);
  if (errno != 0 || end == NULL || *end != '\0' || v < min || v > max) {
    return -1;
  }
  *out = v;
  return 0;
}

int cli_ascii_ieq(const char *a, const char *b) {
  for (; *a != '\0' && *b != '\0'; a++, b++) {
    char ca = *a >= 'A' && *a <= 'Z' ? (char)(*a - 'A' + 'a') : *a;
    char cb = *b >= 'A' && *b <= 'Z' ? (char)(*b - 'A' + 'a') : *b;
    if (ca != cb) {
      return 0;
    }
  }
  return *a == *b;
}

int cli_parse_backends(const char *s, unsigned *out, parse_error_t *err) {
  unsigned mask = 0;
  const char *p = s;

  if (cli_ascii_ieq(s, "auto") || cli_ascii_ieq(s, "all")) {
    *out = 0;
    return 0;
  }
  for (;;) {
    const char *comma = strchr(p, ',');
    size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
    char name[16];
    if (len == 0 || len >= sizeof name) {
      goto bad;
    }
    memcpy(name, p, len);
    name[len] = '\0';
    if (cli_ascii_ieq(name, "pcp")) {
      mask |= PORTMAP_BACKEND_PCP;
    } else if (cli_ascii_ieq(name, "natpmp") || cli_ascii_ieq(name, "nat-pmp")) {
      mask |= PORTMAP_BACKEND_NATPMP;
    } else if (cli_ascii_ieq(name, "upnp")) {
      mask |= PORTMAP_BACKEND_UPNP;
    } else {
      goto bad;
    }
    if (comma == NULL) {
      break;
    }
    p = comma + 1;
  }
  *out = mask;
  return 0;
bad:
  cli_set_error(err, "--backend '%s' is invalid: use auto, or a list of pcp, natpmp, upnp", s);
  return -1;
}

static const cli_option_t *find_option(const cli_args_t *a, const char *name, size_t len) {
  size_t i;
  for (i = 0; i < a->n_defs; i++) {
    if (strlen(a->defs[i].name) == len && strncmp(a->defs[i].name, name, len) == 0) {
      return &a->defs[i];
    }
  }
  return NULL;
}

static int is_option(const cli_args_t *a, const char *arg) {
  if (arg[0] != '-' || arg[1] == '\0') {
    return 0;
  }
  return !(a->digits_are_words && arg[1] >= '0' && arg[1] <= '9');
}

cli_arg_kind_t cli_next_arg(cli_args_t *a, const char **word, const cli_option_t **def,
                            const char **value, parse_error_t *err) {
  const char *arg, *name, *eq;
  size_t name_len;

  *word = NULL;
  *def = NULL;
  *value = NULL;
  if (++a->i >= a->argc) {
    return CLI_ARG_END;
  }
  arg = a->argv[a->i];
  *word = arg;
  if (a->only_positional || !is_option(a, arg)) {
    return CLI_ARG_POSITIONAL;
  }
  if (strcmp(arg, "--") == 0) {
    a->only_positional = 1;
    return CLI_ARG_SKIP;
  }
  if (strcmp(arg, "-h") == 0) {
    return CLI_ARG_HELP;
  }
  if (arg[1] != '-') {
    cli_set_error(err, "unknown option '%s'", arg);
    return CLI_ARG_SKIP;
  }
  name = arg + 2;
  eq = strchr(name, '=');
  name_len = eq != NULL ? (size_t)(eq - name) : strlen(name);
  *def = find_option(a, name, name_len);
  if (*def == NULL) {
    cli_set_error(err, "unknown option '--%.*s'", (int)name_len, name);
    return CLI_ARG_SKIP;
  }
  if ((*def)->has_value) {
    if (eq != NULL) {
      *value = eq + 1;
    } else if (a->i + 1 < a->argc) {
      *value = a->argv[++a->i];
    } else {
      cli_set_error(err, "option --%s needs a value", (*def)->name);
      return CLI_ARG_SKIP;
    }
  } else if (eq != NULL) {
    cli_set_error(err, "option --%s takes no value", (*def)->name);
    return CLI_ARG_SKIP;
  }
  return CLI_ARG_OPTION;
}

int cli_parse_lifetime(const char *value, uint32_t *out, parse_error_t *err) {
  unsigned long v;
  if (cli_parse_uint(value, 1, CLI_MAX_LIFETIME, &v) != 0) {
    cli_set_error(err, "--lifetime '%s' is invalid: must be 1-86400 seconds", value);
    return -1;
  }
  *out = (uint32_t)v;
  return 0;
}

cli_target_error_t cli_parse_target(const char *arg, int *protocol, uint16_t *port,
                                    const char **bad_protocol, char port_text[16]) {
  const char *slash = strchr(arg, '/');
  size_t plen = slash != NULL ? (size_t)(slash - arg) : strlen(arg);
  unsigned long v;

  *protocol = PORTMAP_PROTO_TCP;
  port_text[0] = '\0';
  if (slash != NULL) {
    const char *proto = slash + 1;
    if (*proto == '\0') {
      return CLI_TARGET_NO_PROTOCOL;
    }
    if (cli_ascii_ieq(proto, "tcp")) {
      *protocol = PORTMAP_PROTO_TCP;
    } else if (cli_ascii_ieq(proto, "udp")) {
      *protocol = PORTMAP_PROTO_UDP;
    } else {
      *bad_protocol = proto;
      return CLI_TARGET_BAD_PROTOCOL;
    }
  }
  if (plen == 0) {
    return CLI_TARGET_NO_PORT;
  }
  if (plen >= 16) {
    return CLI_TARGET_LONG_PORT;
  }
  memcpy(port_text, arg, plen);
  port_text[plen] = '\0';
  if (cli_parse_uint(port_text, 1, 65535, &v) != 0) {
    return CLI_TARGET_BAD_PORT;
  }
  *port = (uint16_t)v;
  return CLI_TARGET_OK;
}

int cli_apply_common_option(cli_common_opts_t *c, int id, const char *value, parse_error_t *err) {
  unsigned long v;
  portmap_addr_t addr;

  switch (id) {
  case CLI_OPT_GATEWAY:
    if (*value == '\0' || portmap_addr_parse(value, &addr) != PORTMAP_OK) {
      cli_set_error(err, "--gateway '%s' is not an IPv4 or IPv6 address%s", value,
                    strchr(value, '.') != NULL && strchr(value, ':') != NULL
                        ? " (give the server port with --port)"
                        : "");
      return 1;
    }
    c->gateway = value;
    return 1;
  case CLI_OPT_BACKEND:
    (void)cli_parse_backends(value, &c->backends, err);
    return 1;
  case CLI_OPT_PORT:
    if (cli_parse_uint(value, 1, 65535, &v) != 0) {
      cli_set_error(err, "--port '%s' is invalid: must be a port 1-65535", value);
      return 1;
    }
    c->server_port = (uint16_t)v;
    return 1;
  case CLI_OPT_JSON:
    c->json = 1;
    return 1;
  case CLI_OPT_VERBOSE:
    c->verbose = 1;
    return 1;
  case CLI_OPT_HELP:
    c->help = 1;
    return 1;
  case CLI_OPT_VERSION:
    c->version = 1;
    return 1;
  default:
    return 0;
  }
}

int cli_early_exit(const char *prog, const cli_common_opts_t *c, const parse_error_t *err,
                   const char *help_text, const char *usage) {
  if (c->help) {
    fputs(help_text, stdout);
    return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
  }
  if (c->version) {
    printf("%s (libportmap) %d.%d.%d\n", prog, PORTMAP_VERSION_MAJOR, PORTMAP_VERSION_MINOR,
           PORTMAP_VERSION_PATCH);
    return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
  }
  if (err->set) {
    fprintf(stderr, "%s: %s\n%s\n", prog, err->msg, usage);
    return CLI_EXIT_USAGE;
  }
  return -1;
}
