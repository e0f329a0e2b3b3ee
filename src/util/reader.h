/* SPDX-License-Identifier: MIT */
/*
 * The one bounded byte reader: every parser of network (and kernel) input
 * reads through it, so the bounds checks live here once (c-ares reads
 * every byte through ares_buf the same way). Binary fields (PCP, NAT-PMP)
 * and text (HTTP heads, chunk sizes, SSDP headers, route tables) alike.
 *
 * The error is sticky: a read past the end returns zeros, reads nothing,
 * and marks the reader bad; every later read fails too. A parser reads its
 * fields, then checks portmap_rd_ok() once. Nothing allocates; the reader
 * never writes to the buffer it reads.
 */
#ifndef PORTMAP_UTIL_READER_H
#define PORTMAP_UTIL_READER_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct portmap_reader {
  const uint8_t *data;
  size_t len;
  size_t pos;
  int bad; /* a read went past the end, or a number did not parse */
} portmap_reader_t;

/* NULL data is an empty buffer whatever len says. The reader then points at
 * a static empty string instead, so that reading nothing (take(0), sub(0),
 * an empty line or token) still yields a pointer and never does arithmetic
 * on NULL, which is undefined even with a zero offset. */
static inline void portmap_rd_init(portmap_reader_t *r, const void *data, size_t len) {
  r->data = data != NULL ? (const uint8_t *)data : (const uint8_t *)"";
  r->len = data != NULL ? len : 0;
  r->pos = 0;
  r->bad = 0;
}

static inline int portmap_rd_ok(const portmap_reader_t *r) {
  return !r->bad;
}

/* Octets not read yet (0 once bad). */
static inline size_t portmap_rd_left(const portmap_reader_t *r) {
  return r->bad ? 0 : r->len - r->pos;
}

static inline size_t portmap_rd_pos(const portmap_reader_t *r) {
  return r->pos;
}

/* The next n octets, or NULL (and bad) when fewer are left. */
static inline const uint8_t *portmap_rd_take(portmap_reader_t *r, size_t n) {
  if (r->bad || r->len - r->pos < n) {
    r->bad = 1;
    return NULL;
  }
  const uint8_t *p = r->data + r->pos;
  r->pos += n;
  return p;
}

static inline void portmap_rd_skip(portmap_reader_t *r, size_t n) {
  (void)portmap_rd_take(r, n);
}

/* Copy n octets into out; zeros when short. */
static inline void portmap_rd_bytes(portmap_reader_t *r, void *out, size_t n) {
  const uint8_t *p = portmap_rd_take(r, n);
  if (p != NULL)
    memcpy(out, p, n);
  else if (n > 0)
    memset(out, 0, n);
}

static inline uint8_t portmap_rd_u8(portmap_reader_t *r) {
  const uint8_t *p = portmap_rd_take(r, 1);
  return p != NULL ? p[0] : 0;
}

static inline uint16_t portmap_rd_be16(portmap_reader_t *r) {
  const uint8_t *p = portmap_rd_take(r, 2);
  if (p == NULL)
    return 0;
  return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t portmap_rd_be32(portmap_reader_t *r) {
  const uint8_t *p = portmap_rd_take(r, 4);
  return p != NULL ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3] : 0;
}

/* Host byte order (what the kernel writes in netlink messages); 0 when short. */
static inline uint16_t portmap_rd_ne16(portmap_reader_t *r) {
  uint16_t v;
  portmap_rd_bytes(r, &v, sizeof v);
  return v;
}

static inline uint32_t portmap_rd_ne32(portmap_reader_t *r) {
  uint32_t v;
  portmap_rd_bytes(r, &v, sizeof v);
  return v;
}

/* The next octet without reading it; -1 at the end or when bad. */
static inline int portmap_rd_peek(const portmap_reader_t *r) {
  return r->bad || r->pos >= r->len ? -1 : r->data[r->pos];
}

/* A reader over the next n octets, which this reader then skips. Bad (and
 * empty) when fewer are left. */
static inline portmap_reader_t portmap_rd_sub(portmap_reader_t *r, size_t n) {
  portmap_reader_t s;
  const uint8_t *p = portmap_rd_take(r, n);
  portmap_rd_init(&s, p, p != NULL ? n : 0);
  s.bad = p == NULL;
  return s;
}

/* ---------- text ---------- */

/* The octets up to (not including) delim, which is consumed; without a
 * delim, everything left. Returns 1 when delim was found, 0 when not (the
 * reader is then at the end), -1 when bad. At the end it returns 0 and an
 * empty rest every time, so loop on portmap_rd_left() > 0. */
static inline int portmap_rd_until(portmap_reader_t *r, uint8_t delim, const char **out,
                                   size_t *out_len) {
  *out = NULL;
  *out_len = 0;
  if (r->bad)
    return -1;
  const uint8_t *start = r->data + r->pos;
  size_t n = r->len - r->pos;
  const uint8_t *hit = n > 0 ? (const uint8_t *)memchr(start, delim, n) : NULL;
  size_t take = hit != NULL ? (size_t)(hit - start) : n;
  *out = (const char *)start;
  *out_len = take;
  r->pos += take + (hit != NULL);
  return hit != NULL;
}

/* The next line without its LF or CRLF. Returns 1 for a whole line, 0 for
 * an unterminated rest (possibly empty), -1 when bad. A CR not right before
 * the LF (a lone CR, or one ending an unterminated rest) ends nothing and
 * stays in the line, for the caller to refuse. */
static inline int portmap_rd_line(portmap_reader_t *r, const char **line, size_t *len) {
  int whole = portmap_rd_until(r, '\n', line, len);
  if (whole == 1 && *len > 0 && (*line)[*len - 1] == '\r')
    (*len)--;
  return whole;
}

/* Skip spaces and tabs. */
static inline void portmap_rd_skip_ws(portmap_reader_t *r) {
  while (!r->bad && r->pos < r->len && (r->data[r->pos] == ' ' || r->data[r->pos] == '\t'))
    r->pos++;
}

/* The next run of octets that are not space, tab, CR or LF (may be empty). */
static inline void portmap_rd_token(portmap_reader_t *r, const char **tok, size_t *len) {
  *tok = NULL;
  *len = 0;
  if (r->bad)
    return;
  size_t start = r->pos;
  while (r->pos < r->len) {
    uint8_t ch = r->data[r->pos];
    if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n')
      break;
    r->pos++;
  }
  *tok = (const char *)r->data + start;
  *len = r->pos - start;
}

static inline int portmap_rd_digit_value(uint8_t ch, unsigned base) {
  int v = ch >= '0' && ch <= '9'   ? ch - '0'
          : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
          : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                   : 99;
  return v < (int)base ? v : -1;
}

/* An unsigned number in base 10 or 16 (hex digits in either case): at
 * least one digit, at most max_digits (leading zeros count), no sign or
 * prefix, value at most max. Stops at the first octet that is not a digit.
 * Marks the reader bad (and returns 0) when there is no digit, too many
 * digits, or the value exceeds max. */
static inline uint64_t portmap_rd_number(portmap_reader_t *r, unsigned base, size_t max_digits,
                                         uint64_t max) {
  if (r->bad)
    return 0;
  uint64_t v = 0;
  size_t digits = 0;
  while (r->pos < r->len) {
    int d = portmap_rd_digit_value(r->data[r->pos], base);
    if (d < 0)
      break;
    if (++digits > max_digits || (uint64_t)d > max || v > (max - (uint64_t)d) / base) {
      r->bad = 1;
      return 0;
    }
    v = v * base + (uint64_t)d;
    r->pos++;
  }
  if (digits == 0) {
    r->bad = 1;
    return 0;
  }
  return v;
}

/* Case-insensitive ASCII comparison of a counted string with a C string. */
static inline int portmap_rd_text_eq(const char *s, size_t len, const char *lit) {
  size_t n = strlen(lit);
  if (len != n)
    return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char a = (unsigned char)s[i], b = (unsigned char)lit[i];
    if (a >= 'A' && a <= 'Z')
      a = (unsigned char)(a + 32);
    if (b >= 'A' && b <= 'Z')
      b = (unsigned char)(b + 32);
    if (a != b)
      return 0;
  }
  return 1;
}

#endif
