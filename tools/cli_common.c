/*
 * Helpers shared by the command-line tools: strict number parsing, the
 * first-usage-error record, the command-line scanner, JSON output, nonces,
 * gateway result names.
 * Public API only, like the tools themselves.
 */
#include "cli_common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

void cli_nonce_hex(const uint8_t nonce[NONCE_LEN], char out[2 * NONCE_LEN + 1]) {
  static const char digits[] = "0123456789abcdef";
  size_t i;
  for (i = 0; i < NONCE_LEN; i++) {
    out[2 * i] = digits[nonce[i] >> 4];
    out[2 * i + 1] = digits[nonce[i] & 0x0f];
  }
  out[2 * NONCE_LEN] = '\0';
}

int cli_nonce_is_set(const uint8_t nonce[NONCE_LEN]) {
  size_t i;
  for (i = 0; i < NONCE_LEN; i++) {
    if (nonce[i] != 0) {
      return 1;
    }
  }
  return 0;
}

uint64_t cli_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

const char *cli_natpmp_result_name(int result) {
  switch (result) {
  case 0:
    return "SUCCESS";
  case 1:
    return "UNSUPPORTED_VERSION";
  case 2:
    return "NOT_AUTHORIZED";
  case 3:
    return "NETWORK_FAILURE";
  case 4:
    return "OUT_OF_RESOURCES";
  case 5:
    return "UNSUPPORTED_OPCODE";
  default:
    return "UNKNOWN";
  }
}

void cli_json_string(FILE *f, const char *s) {
  const unsigned char *p;
  fputc('"', f);
  for (p = (const unsigned char *)s; *p != '\0'; p++) {
    switch (*p) {
    case '"':
      fputs("\\\"", f);
      break;
    case '\\':
      fputs("\\\\", f);
      break;
    case '\n':
      fputs("\\n", f);
      break;
    case '\r':
      fputs("\\r", f);
      break;
    case '\t':
      fputs("\\t", f);
      break;
    case '\b':
      fputs("\\b", f);
      break;
    case '\f':
      fputs("\\f", f);
      break;
    default:
      if (*p < 0x20 || *p == 0x7f) {
        fprintf(f, "\\u%04x", (unsigned)*p);
      } else {
        fputc(*p, f);
      }
    }
  }
  fputc('"', f);
}

const char *cli_upnp_result_name(int result) {
  switch (result) {
  case 401:
    return "InvalidAction";
  case 402:
    return "InvalidArgs";
  case 501:
    return "ActionFailed";
  case 606:
    return "ActionNotAuthorized";
  case 713:
    return "SpecifiedArrayIndexInvalid";
  case 714:
    return "NoSuchEntryInArray";
  case 715:
    return "WildCardNotPermittedInSrcIP";
  case 716:
    return "WildCardNotPermittedInExtPort";
  case 718:
    return "ConflictInMappingEntry";
  case 724:
    return "SamePortValuesRequired";
  case 725:
    return "OnlyPermanentLeasesSupported";
  case 726:
    return "RemoteHostOnlySupportsWildcard";
  case 727:
    return "ExternalPortOnlySupportsWildcard";
  case 728:
    return "NoPortMapsAvailable";
  case 729:
    return "ConflictWithOtherMechanisms";
  default:
    return "UNKNOWN";
  }
}

const char *cli_gateway_result_name(portmap_backend_t backend, int result) {
  switch (backend) {
  case PORTMAP_BACKEND_NATPMP:
    return cli_natpmp_result_name(result);
  case PORTMAP_BACKEND_UPNP:
    return cli_upnp_result_name(result);
  case PORTMAP_BACKEND_PCP:
  case PORTMAP_BACKEND_NONE:
    break;
  }
  return portmap_pcp_result_name(result);
}

void cli_json_key(FILE *f, int *first, const char *key) {
  fputc(*first ? '{' : ',', f);
  *first = 0;
  cli_json_string(f, key);
  fputc(':', f);
}

void cli_json_num(FILE *f, int *first, const char *key, long long value) {
  cli_json_key(f, first, key);
  fprintf(f, "%lld", value);
}

void cli_put_sanitized(FILE *f, const char *s, size_t size) {
  size_t i;
  for (i = 0; i < size && s[i] != '\0'; i++) {
    unsigned char c = (unsigned char)s[i];
    fputc(c < 0x20 || c == 0x7f ? '?' : c, f);
  }
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

void cli_report_client_error(const char *prog, portmap_status_t st, int saved_errno,
                             const char *gateway) {
  switch (st) {
  case PORTMAP_ERR_ADDRESS:
    fprintf(stderr, "%s: cannot use the gateway address %s: %s\n", prog,
            gateway != NULL ? gateway : "(default router)", portmap_strerror(st));
    break;
  case PORTMAP_ERR_SYSTEM:
    fprintf(stderr, "%s: cannot open the client's sockets: %s\n", prog,
            saved_errno != 0 ? strerror(saved_errno) : portmap_strerror(st));
    break;
  default:
    fprintf(stderr, "%s: cannot create the client: %s\n", prog, portmap_strerror(st));
    break;
  }
}
