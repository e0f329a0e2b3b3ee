/* SPDX-License-Identifier: MIT */
/*
 * What the tools print, in one place: JSON values, network text with its
 * control characters defused, and the names of protocols, gateway results,
 * nonces and external addresses. Public API only, like the tools.
 */
#include "cli_output.h"

#include <string.h>

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

const char *cli_proto_name(int protocol, char *buf, size_t len) {
  if (protocol == PORTMAP_PROTO_TCP) {
    return "tcp";
  }
  if (protocol == PORTMAP_PROTO_UDP) {
    return "udp";
  }
  snprintf(buf, len, "proto %d", protocol);
  return buf;
}

unsigned cli_server_port(uint16_t configured) {
  return configured != 0 ? configured : CLI_DEFAULT_SERVER_PORT;
}

const char *cli_field(const char *s, size_t size) {
  return memchr(s, '\0', size) != NULL && s[0] != '\0' ? s : NULL;
}

const char *cli_info_external(const portmap_info_t *info, char *buf, size_t len) {
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
  if (CLI_FIELD(info->external_address_str) != NULL) {
    return info->external_address_str;
  }
  return portmap_addr_format(&info->external_address, buf, len);
}

/* Untrusted text (a router's friendlyName, a mapping's description, error
 * strings) is read one code point at a time. An ill-formed sequence yields
 * U+FFFD for its maximal subpart (Unicode 15 §3.9, "U+FFFD substitution of
 * maximal subparts"), so the same octets always print the same way. Returns
 * the octets taken (1-4); *bad says the sequence was ill-formed. */
static size_t utf8_decode(const unsigned char *p, size_t n, uint32_t *cp, int *bad) {
  unsigned char b = p[0];
  unsigned char lo = 0x80, hi = 0xBF;
  size_t need;
  uint32_t v;
  *bad = 0;
  if (b < 0x80) {
    *cp = b;
    return 1;
  }
  if (b >= 0xC2 && b <= 0xDF) {
    need = 1;
    v = b & 0x1Fu;
  } else if (b >= 0xE0 && b <= 0xEF) {
    need = 2;
    v = b & 0x0Fu;
    lo = b == 0xE0 ? 0xA0 : 0x80; /* no overlong forms */
    hi = b == 0xED ? 0x9F : 0xBF; /* no surrogates */
  } else if (b >= 0xF0 && b <= 0xF4) {
    need = 3;
    v = b & 0x07u;
    lo = b == 0xF0 ? 0x90 : 0x80;
    hi = b == 0xF4 ? 0x8F : 0xBF; /* nothing above U+10FFFF */
  } else {
    *cp = 0xFFFD;
    *bad = 1;
    return 1;
  }
  for (size_t i = 1; i <= need; i++) {
    if (i >= n || p[i] < lo || p[i] > hi) {
      *cp = 0xFFFD;
      *bad = 1;
      return i;
    }
    v = (v << 6) | (p[i] & 0x3Fu);
    lo = 0x80;
    hi = 0xBF;
  }
  *cp = v;
  return need + 1;
}

/* C0, DEL and C1 (U+0080-U+009F): never raw on a terminal or in JSON. */
static int is_control(uint32_t cp) {
  return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F);
}

/* A JSON string that is always valid UTF-8 (RFC 8259 §8.1): ill-formed
 * sequences become U+FFFD, every control (C1 included) is \u00XX. */
void cli_json_string(FILE *f, const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  size_t n = strlen(s);
  fputc('"', f);
  while (n > 0) {
    uint32_t cp;
    int bad;
    size_t k = utf8_decode(p, n, &cp, &bad);
    if (bad) {
      fputs("\xEF\xBF\xBD", f); /* U+FFFD */
    } else if (cp == '"') {
      fputs("\\\"", f);
    } else if (cp == '\\') {
      fputs("\\\\", f);
    } else if (cp == '\n') {
      fputs("\\n", f);
    } else if (cp == '\r') {
      fputs("\\r", f);
    } else if (cp == '\t') {
      fputs("\\t", f);
    } else if (cp == '\b') {
      fputs("\\b", f);
    } else if (cp == '\f') {
      fputs("\\f", f);
    } else if (is_control(cp)) {
      fprintf(f, "\\u%04x", (unsigned)cp);
    } else {
      fwrite(p, 1, k, f);
    }
    p += k;
    n -= k;
  }
  fputc('"', f);
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

void cli_json_num_or_null(FILE *f, int *first, const char *key, int have, long long value) {
  cli_json_key(f, first, key);
  if (have) {
    fprintf(f, "%lld", value);
  } else {
    fputs("null", f);
  }
}

void cli_json_str(FILE *f, int *first, const char *key, const char *value) {
  cli_json_key(f, first, key);
  if (value != NULL) {
    cli_json_string(f, value);
  } else {
    fputs("null", f);
  }
}

void cli_json_bool(FILE *f, int *first, const char *key, int value) {
  cli_json_key(f, first, key);
  fputs(value ? "true" : "false", f);
}

/* Terminal text: valid UTF-8 passes, ill-formed sequences and every C0, DEL
 * and C1 control become '?', so a router cannot move the cursor, retitle
 * the window or clear the screen (C1 CSI is an escape on many terminals). */
void cli_put_sanitized(FILE *f, const char *s, size_t size) {
  const unsigned char *p = (const unsigned char *)s;
  size_t n = 0;
  while (n < size && s[n] != '\0') {
    n++;
  }
  while (n > 0) {
    uint32_t cp;
    int bad;
    size_t k = utf8_decode(p, n, &cp, &bad);
    if (bad || is_control(cp)) {
      fputc('?', f);
    } else {
      fwrite(p, 1, k, f);
    }
    p += k;
    n -= k;
  }
}
