/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the bounded byte reader (src/util/reader.h): every
 * function at its exact bounds, one octet past them, and after the reader
 * went bad (the error is sticky: zeros, nothing consumed, left() == 0).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "util/reader.h"

static void init_str(portmap_reader_t *r, const char *s) {
  portmap_rd_init(r, s, strlen(s));
}

/* The text a counted string holds, for assert_string_equal. */
static const char *str(const char *p, size_t n) {
  static char buf[256];
  assert_true(n < sizeof buf);
  if (n > 0)
    memcpy(buf, p, n);
  buf[n] = '\0';
  return buf;
}

/* Every function on a bad reader: no octet consumed, zeros / NULL / -1. */
static void assert_dead(portmap_reader_t *r) {
  size_t pos = portmap_rd_pos(r);
  uint8_t out[4] = {1, 2, 3, 4};
  const char *s = "x";
  size_t n = 9;
  assert_false(portmap_rd_ok(r));
  assert_int_equal(portmap_rd_left(r), 0);
  assert_int_equal(portmap_rd_u8(r), 0);
  assert_int_equal(portmap_rd_be16(r), 0);
  assert_int_equal(portmap_rd_be32(r), 0);
  portmap_rd_bytes(r, out, sizeof out);
  assert_memory_equal(out, "\0\0\0\0", 4);
  assert_null(portmap_rd_take(r, 0));
  assert_null(portmap_rd_take(r, 1));
  portmap_rd_skip(r, 0);
  assert_int_equal(portmap_rd_peek(r), -1);
  portmap_reader_t sub = portmap_rd_sub(r, 0);
  assert_false(portmap_rd_ok(&sub));
  assert_int_equal(portmap_rd_left(&sub), 0);
  assert_int_equal(portmap_rd_until(r, 'a', &s, &n), -1);
  assert_null(s);
  assert_int_equal(n, 0);
  s = "x";
  n = 9;
  assert_int_equal(portmap_rd_line(r, &s, &n), -1);
  assert_null(s);
  assert_int_equal(n, 0);
  portmap_rd_skip_ws(r);
  s = "x";
  portmap_rd_token(r, &s, &n);
  assert_null(s);
  assert_int_equal(n, 0);
  assert_int_equal(portmap_rd_number(r, 10, 20, UINT64_MAX), 0);
  assert_int_equal(portmap_rd_pos(r), pos);
  assert_false(portmap_rd_ok(r));
}

/* ---------- init ---------- */

static void test_init(void **state) {
  (void)state;
  portmap_reader_t r;
  const uint8_t b[3] = {1, 2, 3};
  portmap_rd_init(&r, b, sizeof b);
  assert_true(portmap_rd_ok(&r));
  assert_int_equal(portmap_rd_left(&r), 3);
  assert_int_equal(portmap_rd_pos(&r), 0);
  assert_int_equal(portmap_rd_peek(&r), 1);
}

/* NULL data is an empty buffer whatever len says; reading nothing from it
 * succeeds (take(0) used to return NULL there, and sub(0) came back bad). */
static void test_init_null(void **state) {
  (void)state;
  portmap_reader_t r;
  portmap_rd_init(&r, NULL, 100);
  assert_true(portmap_rd_ok(&r));
  assert_int_equal(portmap_rd_left(&r), 0);
  assert_int_equal(portmap_rd_peek(&r), -1);
  assert_non_null(portmap_rd_take(&r, 0));
  portmap_reader_t sub = portmap_rd_sub(&r, 0);
  assert_true(portmap_rd_ok(&sub));
  assert_int_equal(portmap_rd_left(&sub), 0);
  const char *s = NULL;
  size_t n = 9;
  assert_int_equal(portmap_rd_line(&r, &s, &n), 0);
  assert_non_null(s);
  assert_int_equal(n, 0);
  portmap_rd_token(&r, &s, &n);
  assert_non_null(s);
  assert_int_equal(n, 0);
  assert_true(portmap_rd_ok(&r));
  assert_int_equal(portmap_rd_u8(&r), 0);
  assert_dead(&r);
}

static void test_empty_buffer(void **state) {
  (void)state;
  portmap_reader_t r;
  const uint8_t b[1] = {7};
  portmap_rd_init(&r, b, 0);
  assert_int_equal(portmap_rd_left(&r), 0);
  assert_ptr_equal(portmap_rd_take(&r, 0), b);
  assert_true(portmap_rd_ok(&r));
  assert_int_equal(portmap_rd_be16(&r), 0);
  assert_dead(&r);
}

/* ---------- binary ---------- */

static void test_u8_bounds(void **state) {
  (void)state;
  portmap_reader_t r;
  const uint8_t b[2] = {0x00, 0xff};
  portmap_rd_init(&r, b, sizeof b);
  assert_int_equal(portmap_rd_u8(&r), 0x00);
  assert_int_equal(portmap_rd_u8(&r), 0xff);
  assert_true(portmap_rd_ok(&r));
  assert_int_equal(portmap_rd_left(&r), 0);
  assert_int_equal(portmap_rd_pos(&r), 2);
  assert_int_equal(portmap_rd_u8(&r), 0);
  assert_int_equal(portmap_rd_pos(&r), 2);
  assert_dead(&r);
}

static void test_be16_bounds(void **state) {
  (void)state;
  portmap_reader_t r;
  const uint8_t b[5] = {0x12, 0x34, 0xff, 0xfe, 0x99};
  portmap_rd_init(&r, b, 4);
  assert_int_equal(portmap_rd_be16(&r), 0x1234);
  assert_int_equal(portmap_rd_be16(&r), 0xfffe);
  assert_true(portmap_rd_ok(&r));
  assert_int_equal(portmap_rd_be16(&r), 0); /* b[4] is outside len */
  assert_dead(&r);

  /* one octet left: no half read */
  portmap_rd_init(&r, b, 3);
  assert_int_equal(portmap_rd_be16(&r), 0x1234);
  assert_int_equal(portmap_rd_be16(&r), 0);
  assert_int_equal(portmap_rd_pos(&r), 2);
  assert_dead(&r);
}

static void test_be32_bounds(void **state) {
  (void)state;
  portmap_reader_t r;
  const uint8_t b[8] = {0xde, 0xad, 0xbe, 0xef, 0x80, 0x00, 0x00, 0x01};
  portmap_rd_init(&r, b, 8);
  assert_int_equal(portmap_rd_be32(&r), 0xdeadbeefu);
  assert_int_equal(portmap_rd_be32(&r), 0x80000001u);
  assert_int_equal(portmap_rd_left(&r), 0);
  assert_true(portmap_rd_ok(&r));
  for (size_t len = 4; len < 8; len++) {
    portmap_rd_init(&r, b, len);
    assert_int_equal(portmap_rd_be32(&r), 0xdeadbeefu);
    assert_int_equal(portmap_rd_be32(&r), 0);
    assert_int_equal(portmap_rd_pos(&r), 4);
    assert_dead(&r);
  }
}

static void test_bytes_bounds(void **state) {
  (void)state;
  portmap_reader_t r;
  const uint8_t b[6] = {1, 2, 3, 4, 5, 6};
  uint8_t out[6];
  portmap_rd_init(&r, b, sizeof b);
  portmap_rd_bytes(&r, out, 0);
  portmap_rd_bytes(&r, out, 6);
  assert_memory_equal(out, b, 6);
  assert_true(portmap_rd_ok(&r));
  portmap_rd_bytes(&r, out, 0); /* nothing at the end is fine */
  assert_true(portmap_rd_ok(&r));

  portmap_rd_init(&r, b, 5);
  memset(out, 0xaa, sizeof out);
  portmap_rd_bytes(&r, out, 6);
  assert_memory_equal(out, "\0\0\0\0\0\0", 6); /* zeros, not a partial copy */
  assert_int_equal(portmap_rd_pos(&r), 0);
  assert_dead(&r);
}

static void test_take_skip_bounds(void **state) {
  (void)state;
  portmap_reader_t r;
  const uint8_t b[5] = {1, 2, 3, 4, 5};
  portmap_rd_init(&r, b, sizeof b);
  assert_ptr_equal(portmap_rd_take(&r, 2), b);
  portmap_rd_skip(&r, 1);
  assert_ptr_equal(portmap_rd_take(&r, 0), b + 3);
  assert_ptr_equal(portmap_rd_take(&r, 2), b + 3);
  assert_ptr_equal(portmap_rd_take(&r, 0), b + 5);
  assert_true(portmap_rd_ok(&r));
  assert_null(portmap_rd_take(&r, 1));
  assert_dead(&r);

  portmap_rd_init(&r, b, sizeof b);
  portmap_rd_skip(&r, 5);
  assert_true(portmap_rd_ok(&r));
  assert_int_equal(portmap_rd_left(&r), 0);
  portmap_rd_init(&r, b, sizeof b);
  portmap_rd_skip(&r, 6);
  assert_int_equal(portmap_rd_pos(&r), 0);
  assert_dead(&r);

  /* huge counts do not wrap */
  portmap_rd_init(&r, b, sizeof b);
  portmap_rd_skip(&r, 1);
  assert_null(portmap_rd_take(&r, SIZE_MAX));
  assert_dead(&r);
}

static void test_peek(void **state) {
  (void)state;
  portmap_reader_t r;
  const uint8_t b[2] = {0xff, 0x00};
  portmap_rd_init(&r, b, sizeof b);
  assert_int_equal(portmap_rd_peek(&r), 0xff); /* not -1 */
  assert_int_equal(portmap_rd_pos(&r), 0);
  portmap_rd_skip(&r, 1);
  assert_int_equal(portmap_rd_peek(&r), 0);
  portmap_rd_skip(&r, 1);
  assert_int_equal(portmap_rd_peek(&r), -1);
  assert_true(portmap_rd_ok(&r)); /* peeking at the end is no error */
}

static void test_sub(void **state) {
  (void)state;
  portmap_reader_t r;
  const uint8_t b[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  portmap_rd_init(&r, b, sizeof b);
  portmap_rd_skip(&r, 1);
  portmap_reader_t s = portmap_rd_sub(&r, 3);
  assert_true(portmap_rd_ok(&s));
  assert_int_equal(portmap_rd_pos(&r), 4);
  assert_int_equal(portmap_rd_left(&s), 3);
  assert_int_equal(portmap_rd_pos(&s), 0);
  assert_int_equal(portmap_rd_be16(&s), 0x0203);
  /* the sub-reader ends at its own length, not its parent's */
  assert_int_equal(portmap_rd_be16(&s), 0);
  assert_dead(&s);
  assert_true(portmap_rd_ok(&r)); /* a sub-reader's failure stays its own */
  assert_int_equal(portmap_rd_u8(&r), 5);

  /* exactly what is left */
  s = portmap_rd_sub(&r, 3);
  assert_true(portmap_rd_ok(&s));
  assert_int_equal(portmap_rd_left(&r), 0);
  uint8_t out[3];
  portmap_rd_bytes(&s, out, 3);
  assert_memory_equal(out, b + 5, 3);
  assert_true(portmap_rd_ok(&s));

  /* a sub-reader of zero octets at the end */
  s = portmap_rd_sub(&r, 0);
  assert_true(portmap_rd_ok(&s));
  assert_int_equal(portmap_rd_left(&s), 0);
  assert_true(portmap_rd_ok(&r));

  /* one more than is left: both bad, nothing consumed */
  portmap_rd_init(&r, b, sizeof b);
  portmap_rd_skip(&r, 6);
  s = portmap_rd_sub(&r, 3);
  assert_int_equal(portmap_rd_pos(&r), 6);
  assert_dead(&s);
  assert_dead(&r);
}

static void test_sub_nested(void **state) {
  (void)state;
  portmap_reader_t r;
  const uint8_t b[6] = {'a', 'b', '\n', 'c', 'd', '\n'};
  portmap_rd_init(&r, b, sizeof b);
  portmap_reader_t s = portmap_rd_sub(&r, 4);
  portmap_reader_t t = portmap_rd_sub(&s, 2);
  assert_int_equal(portmap_rd_left(&s), 2);
  const char *l;
  size_t n;
  assert_int_equal(portmap_rd_line(&t, &l, &n), 0); /* the LF is outside t */
  assert_string_equal(str(l, n), "ab");
  assert_int_equal(portmap_rd_line(&s, &l, &n), 1);
  assert_int_equal(n, 0);
  assert_int_equal(portmap_rd_line(&s, &l, &n), 0); /* "c", without the rest of r */
  assert_string_equal(str(l, n), "c");
  assert_int_equal(portmap_rd_left(&r), 2);
}

/* ---------- text ---------- */

static void test_until(void **state) {
  (void)state;
  portmap_reader_t r;
  const char *s;
  size_t n;
  init_str(&r, ":ab:c");
  assert_int_equal(portmap_rd_until(&r, ':', &s, &n), 1);
  assert_int_equal(n, 0); /* delim first */
  assert_int_equal(portmap_rd_pos(&r), 1);
  assert_int_equal(portmap_rd_until(&r, ':', &s, &n), 1);
  assert_string_equal(str(s, n), "ab");
  assert_int_equal(portmap_rd_until(&r, ':', &s, &n), 0); /* no delim: the rest */
  assert_string_equal(str(s, n), "c");
  assert_int_equal(portmap_rd_left(&r), 0);
  assert_true(portmap_rd_ok(&r));
  /* at the end: an empty rest, again and again, never bad */
  assert_int_equal(portmap_rd_until(&r, ':', &s, &n), 0);
  assert_int_equal(n, 0);
  assert_true(portmap_rd_ok(&r));

  init_str(&r, "abc:");
  assert_int_equal(portmap_rd_until(&r, ':', &s, &n), 1); /* delim last */
  assert_string_equal(str(s, n), "abc");
  assert_int_equal(portmap_rd_left(&r), 0);

  /* NUL is an ordinary octet, and a delim like any other */
  const uint8_t b[4] = {'a', 0, 'b', 0};
  portmap_rd_init(&r, b, 3);
  assert_int_equal(portmap_rd_until(&r, 'b', &s, &n), 1);
  assert_int_equal(n, 2);
  assert_memory_equal(s, b, 2);
  portmap_rd_init(&r, b, 3);
  assert_int_equal(portmap_rd_until(&r, 0, &s, &n), 1);
  assert_string_equal(str(s, n), "a");
  /* the delim just past len is not seen */
  assert_int_equal(portmap_rd_until(&r, 0, &s, &n), 0);
  assert_string_equal(str(s, n), "b");
}

static void test_line_endings(void **state) {
  (void)state;
  portmap_reader_t r;
  const char *l;
  size_t n;
  init_str(&r, "lf\ncrlf\r\nlone\rcr\n\n\r\nlast");
  assert_int_equal(portmap_rd_line(&r, &l, &n), 1);
  assert_string_equal(str(l, n), "lf");
  assert_int_equal(portmap_rd_line(&r, &l, &n), 1);
  assert_string_equal(str(l, n), "crlf");
  assert_int_equal(portmap_rd_line(&r, &l, &n), 1);
  assert_string_equal(str(l, n), "lone\rcr"); /* a lone CR ends nothing */
  assert_int_equal(portmap_rd_line(&r, &l, &n), 1);
  assert_int_equal(n, 0);
  assert_int_equal(portmap_rd_line(&r, &l, &n), 1);
  assert_int_equal(n, 0);
  assert_int_equal(portmap_rd_line(&r, &l, &n), 0);
  assert_string_equal(str(l, n), "last");
  assert_int_equal(portmap_rd_left(&r), 0);
  assert_int_equal(portmap_rd_line(&r, &l, &n), 0);
  assert_int_equal(n, 0);
  assert_true(portmap_rd_ok(&r));
}

static void test_line_cr_edges(void **state) {
  (void)state;
  portmap_reader_t r;
  const char *l;
  size_t n;
  /* only the CR right before the LF goes */
  init_str(&r, "a\r\r\n");
  assert_int_equal(portmap_rd_line(&r, &l, &n), 1);
  assert_string_equal(str(l, n), "a\r");
  /* an unterminated rest keeps its CR: it is no line end */
  init_str(&r, "a\r");
  assert_int_equal(portmap_rd_line(&r, &l, &n), 0);
  assert_string_equal(str(l, n), "a\r");
  init_str(&r, "\r");
  assert_int_equal(portmap_rd_line(&r, &l, &n), 0);
  assert_string_equal(str(l, n), "\r");
  init_str(&r, "\r\n");
  assert_int_equal(portmap_rd_line(&r, &l, &n), 1);
  assert_int_equal(n, 0);
  assert_int_equal(portmap_rd_left(&r), 0);
  init_str(&r, "\n");
  assert_int_equal(portmap_rd_line(&r, &l, &n), 1);
  assert_int_equal(n, 0);
  init_str(&r, "");
  assert_int_equal(portmap_rd_line(&r, &l, &n), 0);
  assert_int_equal(n, 0);
  assert_true(portmap_rd_ok(&r));
  /* LF CR: the CR starts the next line */
  init_str(&r, "x\n\ry");
  assert_int_equal(portmap_rd_line(&r, &l, &n), 1);
  assert_string_equal(str(l, n), "x");
  assert_int_equal(portmap_rd_line(&r, &l, &n), 0);
  assert_string_equal(str(l, n), "\ry");
}

static void test_skip_ws(void **state) {
  (void)state;
  portmap_reader_t r;
  init_str(&r, " \t \tx \r\n");
  portmap_rd_skip_ws(&r);
  assert_int_equal(portmap_rd_pos(&r), 4);
  portmap_rd_skip_ws(&r); /* nothing to skip */
  assert_int_equal(portmap_rd_pos(&r), 4);
  portmap_rd_skip(&r, 1);
  portmap_rd_skip_ws(&r);
  assert_int_equal(portmap_rd_peek(&r), '\r'); /* CR and LF are no white space here */
  init_str(&r, "  ");
  portmap_rd_skip_ws(&r);
  assert_int_equal(portmap_rd_left(&r), 0);
  portmap_rd_skip_ws(&r);
  assert_true(portmap_rd_ok(&r));
  /* the space just past len stays unread */
  const char b[3] = {' ', ' ', ' '};
  portmap_rd_init(&r, b, 2);
  portmap_rd_skip_ws(&r);
  assert_int_equal(portmap_rd_pos(&r), 2);
}

static void test_token(void **state) {
  (void)state;
  portmap_reader_t r;
  const char *t;
  size_t n;
  init_str(&r, "GET /x\tHTTP/1.1\r\nnext\nend");
  portmap_rd_token(&r, &t, &n);
  assert_string_equal(str(t, n), "GET");
  portmap_rd_token(&r, &t, &n); /* at the space: empty, nothing consumed */
  assert_int_equal(n, 0);
  assert_non_null(t);
  assert_int_equal(portmap_rd_peek(&r), ' ');
  portmap_rd_skip_ws(&r);
  portmap_rd_token(&r, &t, &n);
  assert_string_equal(str(t, n), "/x");
  portmap_rd_skip_ws(&r);
  portmap_rd_token(&r, &t, &n);
  assert_string_equal(str(t, n), "HTTP/1.1");
  assert_int_equal(portmap_rd_peek(&r), '\r');
  portmap_rd_skip(&r, 2);
  portmap_rd_token(&r, &t, &n);
  assert_string_equal(str(t, n), "next");
  assert_int_equal(portmap_rd_peek(&r), '\n');
  portmap_rd_skip(&r, 1);
  portmap_rd_token(&r, &t, &n); /* runs to the end */
  assert_string_equal(str(t, n), "end");
  assert_int_equal(portmap_rd_left(&r), 0);
  portmap_rd_token(&r, &t, &n);
  assert_int_equal(n, 0);
  assert_true(portmap_rd_ok(&r));

  /* bounded by len, and other octets (NUL, ':') belong to the token */
  const char b[6] = {'a', ':', 0, 'b', 'c', 'd'};
  portmap_rd_init(&r, b, 5);
  portmap_rd_token(&r, &t, &n);
  assert_int_equal(n, 5);
  assert_ptr_equal(t, b);
}

static void test_number_base10(void **state) {
  (void)state;
  portmap_reader_t r;
  init_str(&r, "0");
  assert_int_equal(portmap_rd_number(&r, 10, 1, 9), 0);
  assert_true(portmap_rd_ok(&r));
  assert_int_equal(portmap_rd_left(&r), 0);
  init_str(&r, "123abc");
  assert_int_equal(portmap_rd_number(&r, 10, 10, 1000), 123);
  assert_int_equal(portmap_rd_pos(&r), 3); /* stops at 'a': no hex in base 10 */
  assert_true(portmap_rd_ok(&r));
  init_str(&r, "42 7");
  assert_int_equal(portmap_rd_number(&r, 10, 3, 100), 42);
  portmap_rd_skip_ws(&r);
  assert_int_equal(portmap_rd_number(&r, 10, 3, 100), 7);
  assert_true(portmap_rd_ok(&r));
  /* bounded by len: the digit past it is not read */
  const char b[3] = {'1', '2', '3'};
  portmap_rd_init(&r, b, 2);
  assert_int_equal(portmap_rd_number(&r, 10, 2, 99), 12);
  assert_true(portmap_rd_ok(&r));
}

static void test_number_base16(void **state) {
  (void)state;
  portmap_reader_t r;
  init_str(&r, "ff");
  assert_int_equal(portmap_rd_number(&r, 16, 8, UINT64_MAX), 0xff);
  init_str(&r, "FF");
  assert_int_equal(portmap_rd_number(&r, 16, 8, UINT64_MAX), 0xff);
  init_str(&r, "aB09;ext");
  assert_int_equal(portmap_rd_number(&r, 16, 8, UINT64_MAX), 0xab09);
  assert_int_equal(portmap_rd_peek(&r), ';');
  init_str(&r, "0x10"); /* no prefix: 0, then it stops at 'x' */
  assert_int_equal(portmap_rd_number(&r, 16, 8, UINT64_MAX), 0);
  assert_int_equal(portmap_rd_peek(&r), 'x');
  init_str(&r, "fg");
  assert_int_equal(portmap_rd_number(&r, 16, 8, UINT64_MAX), 0xf);
  assert_int_equal(portmap_rd_peek(&r), 'g');
  init_str(&r, "FFFFFFFFFFFFFFFF");
  assert_true(portmap_rd_number(&r, 16, 16, UINT64_MAX) == UINT64_MAX);
  assert_true(portmap_rd_ok(&r));
  init_str(&r, "10000000000000000"); /* 2^64 */
  assert_int_equal(portmap_rd_number(&r, 16, 32, UINT64_MAX), 0);
  assert_false(portmap_rd_ok(&r));
  init_str(&r, "fff");
  assert_int_equal(portmap_rd_number(&r, 16, 8, 0xffe), 0);
  assert_false(portmap_rd_ok(&r));
  init_str(&r, "ffe");
  assert_int_equal(portmap_rd_number(&r, 16, 8, 0xffe), 0xffe);
  assert_true(portmap_rd_ok(&r));
}

static void test_number_no_digits(void **state) {
  (void)state;
  portmap_reader_t r;
  static const char *const bad[] = {"", "x", " 1", "-1", "+1", "\r\n"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    init_str(&r, bad[i]);
    assert_int_equal(portmap_rd_number(&r, 10, 5, 99999), 0);
    assert_int_equal(portmap_rd_pos(&r), 0);
    assert_dead(&r);
  }
  init_str(&r, "g");
  assert_int_equal(portmap_rd_number(&r, 16, 5, 99999), 0);
  assert_dead(&r);
  portmap_rd_init(&r, NULL, 0);
  assert_int_equal(portmap_rd_number(&r, 10, 5, 99999), 0);
  assert_dead(&r);
}

static void test_number_max_digits(void **state) {
  (void)state;
  portmap_reader_t r;
  init_str(&r, "123456789");
  assert_int_equal(portmap_rd_number(&r, 10, 9, 999999999), 123456789);
  assert_true(portmap_rd_ok(&r));
  init_str(&r, "1234567890");
  assert_int_equal(portmap_rd_number(&r, 10, 9, UINT64_MAX), 0);
  assert_dead(&r);
  /* leading zeros are digits too */
  init_str(&r, "0000000001");
  assert_int_equal(portmap_rd_number(&r, 10, 9, UINT64_MAX), 0);
  assert_dead(&r);
  init_str(&r, "000000001");
  assert_int_equal(portmap_rd_number(&r, 10, 9, UINT64_MAX), 1);
  init_str(&r, "7");
  assert_int_equal(portmap_rd_number(&r, 10, 0, UINT64_MAX), 0);
  assert_dead(&r);
  init_str(&r, "ABCDE");
  assert_int_equal(portmap_rd_number(&r, 16, 5, UINT64_MAX), 0xabcde);
  init_str(&r, "ABCDEF");
  assert_int_equal(portmap_rd_number(&r, 16, 5, UINT64_MAX), 0);
  assert_dead(&r);
}

static void test_number_uint64_max(void **state) {
  (void)state;
  portmap_reader_t r;
  init_str(&r, "18446744073709551615");
  assert_true(portmap_rd_number(&r, 10, 20, UINT64_MAX) == UINT64_MAX);
  assert_true(portmap_rd_ok(&r));
  assert_int_equal(portmap_rd_left(&r), 0);
  init_str(&r, "18446744073709551616");
  assert_int_equal(portmap_rd_number(&r, 10, 20, UINT64_MAX), 0);
  assert_dead(&r);
  init_str(&r, "18446744073709551620"); /* overflows in the last digit's multiply */
  assert_int_equal(portmap_rd_number(&r, 10, 20, UINT64_MAX), 0);
  assert_dead(&r);
  init_str(&r, "99999999999999999999");
  assert_int_equal(portmap_rd_number(&r, 10, 30, UINT64_MAX), 0);
  assert_dead(&r);
  init_str(&r, "184467440737095516150"); /* 21 digits, would wrap */
  assert_int_equal(portmap_rd_number(&r, 10, 30, UINT64_MAX), 0);
  assert_dead(&r);
}

static void test_number_small_max(void **state) {
  (void)state;
  portmap_reader_t r;
  init_str(&r, "255");
  assert_int_equal(portmap_rd_number(&r, 10, 3, 255), 255);
  init_str(&r, "256");
  assert_int_equal(portmap_rd_number(&r, 10, 3, 255), 0);
  assert_dead(&r);
  init_str(&r, "0");
  assert_int_equal(portmap_rd_number(&r, 10, 3, 0), 0);
  assert_true(portmap_rd_ok(&r));
  init_str(&r, "1");
  assert_int_equal(portmap_rd_number(&r, 10, 3, 0), 0);
  assert_dead(&r);
  init_str(&r, "9");
  assert_int_equal(portmap_rd_number(&r, 10, 3, 9), 9);
  init_str(&r, "10"); /* each digit fits, the value does not */
  assert_int_equal(portmap_rd_number(&r, 10, 3, 9), 0);
  assert_dead(&r);
  init_str(&r, "65535");
  assert_int_equal(portmap_rd_number(&r, 10, 5, 65535), 65535);
  init_str(&r, "65536");
  assert_int_equal(portmap_rd_number(&r, 10, 5, 65535), 0);
  assert_dead(&r);
  init_str(&r, "70000");
  assert_int_equal(portmap_rd_number(&r, 10, 5, 65535), 0);
  assert_dead(&r);
}

static void test_number_in_sub(void **state) {
  (void)state;
  portmap_reader_t r;
  init_str(&r, "12345");
  portmap_reader_t s = portmap_rd_sub(&r, 2);
  assert_int_equal(portmap_rd_number(&s, 10, 2, 99), 12);
  assert_true(portmap_rd_ok(&s));
  assert_int_equal(portmap_rd_number(&r, 10, 3, 999), 345);
}

static void test_text_eq(void **state) {
  (void)state;
  assert_true(portmap_rd_text_eq("LOCATION", 8, "location"));
  assert_true(portmap_rd_text_eq("location", 8, "LOCATION"));
  assert_true(portmap_rd_text_eq("Cache-Control", 13, "CACHE-CONTROL"));
  assert_true(portmap_rd_text_eq("LOCATIONx", 8, "location")); /* counted, not NUL-ended */
  assert_false(portmap_rd_text_eq("LOCATION", 8, "location2"));
  assert_false(portmap_rd_text_eq("LOCATION", 7, "location"));
  assert_false(portmap_rd_text_eq("LOCATIOM", 8, "location"));
  assert_true(portmap_rd_text_eq(NULL, 0, ""));
  assert_true(portmap_rd_text_eq("x", 0, ""));
  assert_false(portmap_rd_text_eq("", 0, "x"));
  /* only A-Z fold: '@' / '`', '[' / '{' and Latin-1 letters differ */
  assert_false(portmap_rd_text_eq("@", 1, "`"));
  assert_false(portmap_rd_text_eq("[", 1, "{"));
  assert_false(portmap_rd_text_eq("\xc0", 1, "\xe0"));
  assert_true(portmap_rd_text_eq("\xc0", 1, "\xc0"));
  assert_false(portmap_rd_text_eq("a\0b", 3, "a"));
}

/* A read that fails poisons every later one, including ones that would fit. */
static void test_sticky(void **state) {
  (void)state;
  portmap_reader_t r;
  init_str(&r, "abcdef");
  portmap_rd_skip(&r, 1);
  assert_int_equal(portmap_rd_be32(&r), 0x62636465u);
  assert_int_equal(portmap_rd_be16(&r), 0);
  assert_int_equal(portmap_rd_pos(&r), 5);
  assert_int_equal(portmap_rd_u8(&r), 0); /* 'f' is there, but r is bad */
  assert_dead(&r);

  init_str(&r, "x9");
  (void)portmap_rd_number(&r, 10, 5, 9);
  assert_dead(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_init),
      cmocka_unit_test(test_init_null),
      cmocka_unit_test(test_empty_buffer),
      cmocka_unit_test(test_u8_bounds),
      cmocka_unit_test(test_be16_bounds),
      cmocka_unit_test(test_be32_bounds),
      cmocka_unit_test(test_bytes_bounds),
      cmocka_unit_test(test_take_skip_bounds),
      cmocka_unit_test(test_peek),
      cmocka_unit_test(test_sub),
      cmocka_unit_test(test_sub_nested),
      cmocka_unit_test(test_until),
      cmocka_unit_test(test_line_endings),
      cmocka_unit_test(test_line_cr_edges),
      cmocka_unit_test(test_skip_ws),
      cmocka_unit_test(test_token),
      cmocka_unit_test(test_number_base10),
      cmocka_unit_test(test_number_base16),
      cmocka_unit_test(test_number_no_digits),
      cmocka_unit_test(test_number_max_digits),
      cmocka_unit_test(test_number_uint64_max),
      cmocka_unit_test(test_number_small_max),
      cmocka_unit_test(test_number_in_sub),
      cmocka_unit_test(test_text_eq),
      cmocka_unit_test(test_sticky),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
