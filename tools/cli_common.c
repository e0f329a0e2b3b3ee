/*
 * Helpers shared by the command-line tools: strict number parsing, the
 * first-usage-error record, JSON strings, nonces and NAT-PMP result names.
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
