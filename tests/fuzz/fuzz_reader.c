/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the bounded reader (src/util/reader.h). The input is
 * a program and the buffer it reads:
 *
 *   | n | n opcode bytes | buffer (the rest, copied to its own allocation) |
 *
 * Each opcode byte picks a call (low 4 bits) and its argument (high 4
 * bits), on one of a few readers: the root or a sub-reader cut from it.
 * After every call the invariants must hold: pos <= len, the window lies
 * inside the buffer, a bad reader stays bad with left() == 0 and never
 * moves, every pointer handed out lies inside the window, and values
 * match what a plain reference computes from the same octets. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/reader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N_READERS 4

static void check(int cond) {
  if (!cond)
    abort();
}

typedef struct ctx {
  const uint8_t *buf; /* the exact-size copy: ASan sees any overrun */
  size_t len;
} ctx_t;

/* out[0..n) lies inside the reader's window (n == 0 allows its end). */
static void inside(const portmap_reader_t *r, const void *out, size_t n) {
  const uint8_t *p = out;
  check(p != NULL);
  check(p >= r->data && n <= r->len && (size_t)(p - r->data) <= r->len - n);
}

static void window_ok(const ctx_t *c, const portmap_reader_t *r) {
  check(r->pos <= r->len);
  if (r->len > 0) {
    check(r->data >= c->buf && r->data <= c->buf + c->len);
    check(r->len <= (size_t)(c->buf + c->len - r->data));
  }
  check(portmap_rd_left(r) == (r->bad ? 0 : r->len - r->pos));
}

static int ref_digit(uint8_t ch, unsigned base) {
  int v = -1;
  if (ch >= '0' && ch <= '9')
    v = ch - '0';
  else if (ch >= 'a' && ch <= 'z')
    v = ch - 'a' + 10;
  else if (ch >= 'A' && ch <= 'Z')
    v = ch - 'A' + 10;
  return v >= 0 && v < (int)base ? v : -1;
}

/* The number at p[0..n): ok, value, digits consumed (on success). */
static int ref_number(const uint8_t *p, size_t n, unsigned base, size_t max_digits, uint64_t max,
                      uint64_t *value, size_t *used) {
  unsigned __int128 v = 0;
  size_t i = 0;
  for (; i < n && ref_digit(p[i], base) >= 0; i++) {
    if (i + 1 > max_digits)
      return 0;
    v = v * base + (unsigned)ref_digit(p[i], base);
    if (v > max)
      return 0;
  }
  if (i == 0)
    return 0;
  *value = (uint64_t)v;
  *used = i;
  return 1;
}

static int ref_lower(int b) {
  return b >= 'A' && b <= 'Z' ? b + 32 : b;
}

static void step(const ctx_t *c, portmap_reader_t *rs, uint8_t op) {
  unsigned arg = op >> 4;
  portmap_reader_t *r = &rs[arg % N_READERS];
  portmap_reader_t before = *r;
  const uint8_t *at = r->data + r->pos; /* where the next read starts */
  size_t left = portmap_rd_left(r);
  const char *s = NULL;
  size_t n = 0;
  switch (op & 0x0f) {
  case 0: {
    uint8_t v = portmap_rd_u8(r);
    check(left >= 1 ? v == at[0] && r->pos == before.pos + 1 : v == 0);
    break;
  }
  case 1: {
    uint16_t v = portmap_rd_be16(r);
    check(left >= 2 ? v == (at[0] << 8 | at[1]) : v == 0);
    break;
  }
  case 2: {
    uint32_t v = portmap_rd_be32(r);
    uint32_t want =
        left >= 4 ? (uint32_t)at[0] << 24 | (uint32_t)at[1] << 16 | (uint32_t)at[2] << 8 | at[3]
                  : 0;
    check(v == want);
    break;
  }
  case 3: {
    uint8_t out[16];
    memset(out, 0xa5, sizeof out);
    portmap_rd_bytes(r, out, arg);
    if (!before.bad && left >= arg) {
      check(arg == 0 || memcmp(out, at, arg) == 0);
    } else {
      for (unsigned i = 0; i < arg; i++)
        check(out[i] == 0);
    }
    check(out[arg] == 0xa5); /* nothing written past n (arg <= 15) */
    break;
  }
  case 4: {
    const uint8_t *p = portmap_rd_take(r, arg);
    if (!before.bad && left >= arg) {
      check(p == at);
      inside(r, p, arg);
    } else {
      check(p == NULL);
    }
    break;
  }
  case 5:
    portmap_rd_skip(r, arg * 3u);
    break;
  case 6: {
    int v = portmap_rd_peek(r);
    check(left > 0 ? v == at[0] : v == -1);
    check(r->pos == before.pos && r->bad == before.bad);
    break;
  }
  case 7: {
    /* cut a sub-reader from this one into the next slot */
    portmap_reader_t sub = portmap_rd_sub(r, arg);
    if (!before.bad && left >= arg) {
      check(portmap_rd_ok(&sub) && sub.len == arg && sub.pos == 0);
      inside(r, sub.data, arg);
      check(sub.data == at);
    } else {
      check(!portmap_rd_ok(&sub) && portmap_rd_left(&sub) == 0);
    }
    rs[(arg + 1) % N_READERS] = sub;
    window_ok(c, &sub);
    break;
  }
  case 8:
  case 9: {
    static const uint8_t delims[16] = {'\n', ':', ' ', '\r', 0,   ';',  '=', ',',
                                       '/',  '.', '<', '>',  '"', 0xff, 'a', '\t'};
    int line = (op & 0x0f) == 9;
    uint8_t delim = line ? '\n' : delims[arg];
    int rc = line ? portmap_rd_line(r, &s, &n) : portmap_rd_until(r, delim, &s, &n);
    if (before.bad) {
      check(rc == -1 && s == NULL && n == 0);
      break;
    }
    check(rc == 0 || rc == 1);
    inside(&before, s, n);
    check(s == (const char *)at && memchr(s, delim, n) == NULL);
    if (rc == 1) {
      size_t raw = (size_t)(r->pos - before.pos) - 1; /* the line as read, delim excluded */
      check(at[raw] == delim);
      check(n == raw || (line && n + 1 == raw && at[n] == '\r'));
    } else {
      check(n == left && r->pos == r->len);
    }
    break;
  }
  case 10:
    portmap_rd_skip_ws(r);
    if (!r->bad && r->pos < r->len)
      check(r->data[r->pos] != ' ' && r->data[r->pos] != '\t');
    for (size_t i = before.pos; i < r->pos; i++)
      check(r->data[i] == ' ' || r->data[i] == '\t');
    break;
  case 11:
    portmap_rd_token(r, &s, &n);
    if (before.bad) {
      check(s == NULL && n == 0);
      break;
    }
    inside(&before, s, n);
    check(s == (const char *)at && r->pos == before.pos + n);
    for (size_t i = 0; i < n; i++)
      check(s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n');
    check(r->pos == r->len || memchr(" \t\r\n", r->data[r->pos], 4) != NULL);
    break;
  case 12:
  case 13: {
    unsigned base = (op & 0x0f) == 12 ? 10 : 16;
    size_t max_digits = arg + 1u;
    /* small maxima (arg < 8) and the extremes */
    uint64_t max = arg < 8 ? (uint64_t)arg * 37u : arg < 12 ? 65535u : UINT64_MAX;
    if (arg == 15)
      max_digits = 25;
    uint64_t want = 0;
    size_t used = 0;
    int ok = !before.bad && ref_number(at, left, base, max_digits, max, &want, &used);
    uint64_t v = portmap_rd_number(r, base, max_digits, max);
    check(portmap_rd_ok(r) == ok);
    check(v == (ok ? want : 0));
    if (ok)
      check(r->pos == before.pos + used && v <= max);
    break;
  }
  case 14: {
    /* text_eq against a literal of the next octets (case folded or not) */
    static const char *const lits[4] = {"LOCATION", "st", "Cache-Control", ""};
    const char *lit = lits[arg % 4];
    size_t ln = strlen(lit);
    size_t k = left < ln + 1 ? left : ln + 1;
    int want = k == ln;
    for (size_t i = 0; want && i < ln; i++)
      want = ref_lower(at[i]) == ref_lower((unsigned char)lit[i]);
    check(portmap_rd_text_eq((const char *)at, k, lit) == want);
    check(r->pos == before.pos && r->bad == before.bad);
    break;
  }
  default:
    portmap_rd_skip(r, arg);
    break;
  }
  /* sticky: bad stays bad, and a bad reader never moves */
  if (before.bad)
    check(r->bad && r->pos == before.pos);
  if (r->bad)
    check(portmap_rd_left(r) == 0 && !portmap_rd_ok(r));
  check(r->data == before.data && r->len == before.len && r->pos >= before.pos);
  window_ok(c, r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  size_t nops = data[0] < size - 1 ? data[0] : size - 1;
  const uint8_t *ops = data + 1;
  ctx_t c;
  c.len = size - 1 - nops;
  uint8_t *copy = malloc(c.len > 0 ? c.len : 1);
  if (copy == NULL)
    return 0;
  if (c.len > 0)
    memcpy(copy, ops + nops, c.len);
  c.buf = copy;

  portmap_reader_t rs[N_READERS];
  portmap_rd_init(&rs[0], c.len > 0 ? c.buf : NULL, c.len);
  check(portmap_rd_ok(&rs[0]) && portmap_rd_left(&rs[0]) == c.len);
  for (size_t i = 1; i < N_READERS; i++)
    rs[i] = rs[0];
  for (size_t i = 0; i < nops; i++)
    step(&c, rs, ops[i]);
  free(copy);
  return 0;
}
