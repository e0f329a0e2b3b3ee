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

void cli_put_sanitized(FILE *f, const char *s, size_t size) {
  size_t i;
  for (i = 0; i < size && s[i] != '\0'; i++) {
    unsigned char c = (unsigned char)s[i];
    fputc(c < 0x20 || c == 0x7f ? '?' : c, f);
  }
}
