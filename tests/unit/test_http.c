/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the sans-I/O HTTP/1.x response reader of the UPnP
 * transport (src/upnp/http.c): the head (status line, Content-Length,
 * Transfer-Encoding), the chunked decoder (extensions, trailers, sizes
 * split across reads, invalid and overflowing sizes), the size limits and
 * truncation. Each response is also fed one octet at a time, as a slow
 * gateway would send it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "upnp/http.h"

static int head_str(const char *s, portmap_http_head_t *h) {
  return portmap_http_parse_head(s, strlen(s), h);
}

typedef struct fed {
  int rc;
  size_t body_len;
  char body[4096];
} fed_t;

static uint8_t buf[PORTMAP_HTTP_HEAD_MAX + 70000];

/* Feed resp in pieces of step octets as the transport does; at the end
 * of the input, the end of the stream when eof is set. */
static fed_t feed(const char *resp, size_t len, size_t step, size_t cap, int eof) {
  fed_t f;
  memset(&f, 0, sizeof f);
  portmap_http_reader_t p;
  portmap_http_reader_init(&p, cap);
  size_t have = 0, off = 0;
  f.rc = PORTMAP_HTTP_MORE;
  while (off < len && f.rc == PORTMAP_HTTP_MORE) {
    size_t n = len - off < step ? len - off : step;
    assert_true(have + n <= sizeof buf);
    memcpy(buf + have, resp + off, n);
    have += n;
    off += n;
    f.rc = portmap_http_reader_feed(&p, buf, &have, &f.body_len);
  }
  if (f.rc == PORTMAP_HTTP_MORE && eof)
    f.rc = portmap_http_reader_end(&p, &f.body_len);
  if (f.rc == PORTMAP_HTTP_OK) {
    assert_true(f.body_len <= have && f.body_len < sizeof f.body);
    memcpy(f.body, buf, f.body_len);
  }
  return f;
}

/* The same result whole and one octet at a time. */
static fed_t feed_both(const char *resp, size_t cap, int eof) {
  size_t len = strlen(resp);
  fed_t whole = feed(resp, len, len > 0 ? len : 1, cap, eof);
  fed_t slow = feed(resp, len, 1, cap, eof);
  assert_int_equal(whole.rc, slow.rc);
  if (whole.rc == PORTMAP_HTTP_OK) {
    assert_int_equal(whole.body_len, slow.body_len);
    assert_memory_equal(whole.body, slow.body, whole.body_len);
  }
  return whole;
}

/* ---------- the head ---------- */

static void test_head_status_and_length(void **state) {
  (void)state;
  portmap_http_head_t h;
  assert_int_equal(head_str("HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n", &h), PORTMAP_HTTP_OK);
  assert_int_equal(h.status, 200);
  assert_int_equal(h.content_length, 42);
  assert_int_equal(h.chunked, 0);
  assert_int_equal(head_str("HTTP/1.0 500 Internal Server Error\r\n\r\n", &h), PORTMAP_HTTP_OK);
  assert_int_equal(h.status, 500);
  assert_int_equal(h.content_length, -1);
  /* the reason is optional; the minor version any octet */
  assert_int_equal(head_str("HTTP/1.x 404\r\n\r\n", &h), PORTMAP_HTTP_OK);
  assert_int_equal(h.status, 404);
  /* names without case, values without the blanks around them */
  assert_int_equal(head_str("HTTP/1.1 200 OK\r\ncontent-LENGTH: \t 7 \t\r\n\r\n", &h),
                   PORTMAP_HTTP_OK);
  assert_int_equal(h.content_length, 7);
  /* LF-only lines and a last line without its end */
  assert_int_equal(head_str("HTTP/1.1 200 OK\nServer: x\nContent-Length: 3\r", &h),
                   PORTMAP_HTTP_OK);
  assert_int_equal(h.content_length, 3);
  /* the same length twice is one framing */
  assert_int_equal(
      head_str("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", &h),
      PORTMAP_HTTP_OK);
  assert_int_equal(h.content_length, 5);
  /* 12 digits is the most */
  assert_int_equal(head_str("HTTP/1.1 200 OK\r\nContent-Length: 999999999999\r\n\r\n", &h),
                   PORTMAP_HTTP_OK);
  assert_int_equal(h.content_length, 999999999999LL);
  /* not a framing header: a blank before the colon, another name, no colon */
  assert_int_equal(
      head_str(
          "HTTP/1.1 200 OK\r\nContent-Length : 9\r\nContent-Length-X: 9\r\nContent-Length\r\n\r\n",
          &h),
      PORTMAP_HTTP_OK);
  assert_int_equal(h.content_length, -1);
}

static void test_head_invalid(void **state) {
  (void)state;
  portmap_http_head_t h;
  static const char *const bad[] = {
      "",
      "HTTP/1.1 200", /* fine, but see below: 12 octets are enough */
      "HTTP/1.1 20",  /* too short */
      "HTTP/2 200 OK\r\n\r\n",
      "http/1.1 200 OK\r\n\r\n",
      "HTTP/1.1  200 OK\r\n\r\n",
      "HTTP/1.1 2x0 OK\r\n\r\n",
      "HTTP/1.1 20 OK\r\n\r\n",
      "ICY 200 OK\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\n", /* 13 digits */
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int want = i == 1 ? PORTMAP_HTTP_OK : PORTMAP_HTTP_INVALID;
    if (head_str(bad[i], &h) != want) {
      fprintf(stderr, "case %zu: %s\n", i, bad[i]);
      fail();
    }
  }
  assert_int_equal(portmap_http_parse_head(NULL, 0, &h), PORTMAP_HTTP_INVALID);
  /* a NUL in the version */
  assert_int_equal(portmap_http_parse_head("HTTP/1\0 200 OK\r\n\r\n", 18, &h),
                   PORTMAP_HTTP_INVALID);
}

static void test_head_chunked_wins(void **state) {
  (void)state;
  portmap_http_head_t h;
  assert_int_equal(
      head_str("HTTP/1.1 200 OK\r\nContent-Length: 10\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n",
               &h),
      PORTMAP_HTTP_OK);
  assert_int_equal(h.chunked, 1);
  assert_int_equal(h.content_length, -1); /* RFC 9112 section 6.3 */
  assert_int_equal(head_str("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", &h),
                   PORTMAP_HTTP_OK);
  assert_int_equal(h.chunked, 0);
}

static void test_head_len(void **state) {
  (void)state;
  const char *r = "HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody";
  assert_int_equal(portmap_http_head_len(r, strlen(r), 0), strlen(r) - 4);
  assert_int_equal(portmap_http_head_len(r, strlen(r), 10), strlen(r) - 4);
  assert_int_equal(portmap_http_head_len(r, strlen(r) - 5, 0), 0); /* one octet short */
  assert_int_equal(portmap_http_head_len(r, strlen(r), strlen(r) - 3), 0);
  assert_int_equal(portmap_http_head_len(r, strlen(r), 1000), 0);
  const char *lf = "HTTP/1.1 200 OK\n\n\r\r\n\r";
  assert_int_equal(portmap_http_head_len(lf, strlen(lf), 0), 0); /* only CRLF CRLF ends it */
  assert_int_equal(portmap_http_head_len("\r\n\r\n", 4, 0), 4);
  assert_int_equal(portmap_http_head_len(NULL, 0, 0), 0);
}

/* ---------- the chunked coding ---------- */

static int dechunk_str(const char *in, char *out, size_t *out_len, size_t *consumed) {
  portmap_http_chunks_t d;
  memset(&d, 0, sizeof d);
  size_t len = strlen(in);
  memcpy(buf, in, len);
  size_t i = 0, o = 0;
  portmap_http_dechunk(&d, buf, &i, len, &o);
  memcpy(out, buf, o);
  out[o] = '\0';
  *out_len = o;
  if (consumed != NULL)
    *consumed = i;
  return d.state;
}

static void test_chunked_bodies(void **state) {
  (void)state;
  char out[256];
  size_t n, used;
  assert_int_equal(dechunk_str("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", out, &n, NULL),
                   PORTMAP_HTTP_CH_DONE);
  assert_string_equal(out, "hello world");
  /* upper- and lower-case hex, leading zeros */
  assert_int_equal(dechunk_str("0A\r\n0123456789\r\n0000\r\n\r\n", out, &n, NULL),
                   PORTMAP_HTTP_CH_DONE);
  assert_int_equal(n, 10);
  assert_int_equal(dechunk_str("a\r\n0123456789\r\n0\r\n\r\n", out, &n, NULL),
                   PORTMAP_HTTP_CH_DONE);
  /* extensions, after ';' or a blank, are skipped */
  assert_int_equal(
      dechunk_str("3;name=\"v;x\"\r\nabc\r\n2 ; q\r\nde\r\n0;last\r\n\r\n", out, &n, NULL),
      PORTMAP_HTTP_CH_DONE);
  assert_string_equal(out, "abcde");
  /* trailer lines */
  assert_int_equal(dechunk_str("1\r\nx\r\n0\r\nExpires: never\r\nX: y\r\n\r\n", out, &n, NULL),
                   PORTMAP_HTTP_CH_DONE);
  assert_string_equal(out, "x");
  /* octets after the end are not read */
  assert_int_equal(dechunk_str("1\r\nx\r\n0\r\n\r\nGARBAGE", out, &n, &used), PORTMAP_HTTP_CH_DONE);
  assert_int_equal(used, strlen("1\r\nx\r\n0\r\n\r\n"));
  /* incomplete: still in progress */
  assert_int_equal(dechunk_str("5\r\nhel", out, &n, NULL), PORTMAP_HTTP_CH_DATA);
  assert_string_equal(out, "hel");
}

static void test_chunked_invalid(void **state) {
  (void)state;
  char out[256];
  size_t n;
  static const char *const bad[] = {
      "\r\n",               /* no size */
      "g\r\n",              /* not hex */
      ";ext\r\n",           /* an extension without a size */
      "-1\r\n",             /* no sign */
      "0x5\r\nhello\r\n",   /* no prefix */
      "5\nhello\r\n",       /* LF alone after the size */
      "5\r\rhello\r\n",     /* CR without LF */
      "5\r\nhelloX\r\n",    /* data longer than its size */
      "5\r\nhello\rX",      /* CR then not LF */
      "5\r\nhello\n",       /* LF without CR */
      "0\r\nX\rY",          /* trailer CR then not LF */
      "123456789\r\n",      /* nine hex digits: over 4 GiB */
      "FFFFFFFFF\r\n",      /* the same, all ones */
      "000000001\r\nx\r\n", /* nine digits even with zeros */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (dechunk_str(bad[i], out, &n, NULL) != PORTMAP_HTTP_CH_BAD) {
      fprintf(stderr, "case %zu: %s\n", i, bad[i]);
      fail();
    }
  }
  /* eight digits is the most: 4 GiB - 1 waits for its data */
  assert_int_equal(dechunk_str("FFFFFFFF\r\nabc", out, &n, NULL), PORTMAP_HTTP_CH_DATA);
  assert_int_equal(n, 3);
}

static void test_chunked_line_limits(void **state) {
  (void)state;
  char in[2048], out[256];
  size_t n;
  /* an extension of PORTMAP_HTTP_CHUNK_EXT_MAX octets after the ';' */
  int len = snprintf(in, sizeof in, "1;%0*d\r\nx\r\n0\r\n\r\n", (int)PORTMAP_HTTP_CHUNK_EXT_MAX, 0);
  assert_true(len > 0);
  assert_int_equal(dechunk_str(in, out, &n, NULL), PORTMAP_HTTP_CH_DONE);
  snprintf(in, sizeof in, "1;%0*d\r\nx\r\n0\r\n\r\n", (int)PORTMAP_HTTP_CHUNK_EXT_MAX + 1, 0);
  assert_int_equal(dechunk_str(in, out, &n, NULL), PORTMAP_HTTP_CH_BAD);
  /* a trailer line of PORTMAP_HTTP_TRAILER_LINE_MAX octets */
  snprintf(in, sizeof in, "0\r\n%0*d\r\n\r\n", (int)PORTMAP_HTTP_TRAILER_LINE_MAX, 0);
  assert_int_equal(dechunk_str(in, out, &n, NULL), PORTMAP_HTTP_CH_DONE);
  snprintf(in, sizeof in, "0\r\n%0*d\r\n\r\n", (int)PORTMAP_HTTP_TRAILER_LINE_MAX + 1, 0);
  assert_int_equal(dechunk_str(in, out, &n, NULL), PORTMAP_HTTP_CH_BAD);
}

/* A size, its CRLF and the data split at every point decode the same. */
static void test_chunked_split_everywhere(void **state) {
  (void)state;
  const char *in = "1a;e=1\r\nabcdefghijklmnopqrstuvwxyz\r\n3\r\n123\r\n0\r\nT: 1\r\n\r\n";
  size_t len = strlen(in);
  for (size_t cut = 0; cut <= len; cut++) {
    portmap_http_chunks_t d;
    memset(&d, 0, sizeof d);
    memcpy(buf, in, len);
    size_t i = 0, o = 0;
    portmap_http_dechunk(&d, buf, &i, cut, &o);
    assert_true(o <= i && i <= cut);
    assert_int_not_equal(d.state, PORTMAP_HTTP_CH_BAD);
    portmap_http_dechunk(&d, buf, &i, len, &o);
    assert_int_equal(d.state, PORTMAP_HTTP_CH_DONE);
    assert_int_equal(i, len);
    assert_int_equal(o, 29);
    assert_memory_equal(buf, "abcdefghijklmnopqrstuvwxyz123", 29);
  }
}

/* ---------- whole responses ---------- */

static void test_reply_content_length(void **state) {
  (void)state;
  fed_t f = feed_both("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 100, 0);
  assert_int_equal(f.rc, PORTMAP_HTTP_OK);
  assert_int_equal(f.body_len, 5);
  assert_memory_equal(f.body, "hello", 5);
  /* an empty body is whole with the head */
  f = feed_both("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 100, 0);
  assert_int_equal(f.rc, PORTMAP_HTTP_OK);
  assert_int_equal(f.body_len, 0);
  /* the rest of a segment past the body is not ours */
  f = feed("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiEXTRA", 44, 44, 100, 0);
  assert_int_equal(f.rc, PORTMAP_HTTP_OK);
  assert_int_equal(f.body_len, 2);
  assert_memory_equal(f.body, "hi", 2);
}

static void test_reply_chunked(void **state) {
  (void)state;
  fed_t f = feed_both("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
                      "4;x=y\r\n<s:E\r\n9\r\nnvelope/>\r\n0\r\n\r\n",
                      100, 0);
  assert_int_equal(f.rc, PORTMAP_HTTP_OK);
  assert_int_equal(f.body_len, 13);
  assert_memory_equal(f.body, "<s:Envelope/>", 13);
  f = feed_both("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcdX\r\n", 100, 1);
  assert_int_equal(f.rc, PORTMAP_HTTP_INVALID);
}

static void test_reply_end_of_stream(void **state) {
  (void)state;
  /* no framing header: the end of the stream ends the body */
  fed_t f = feed_both("HTTP/1.0 200 OK\r\nServer: x\r\n\r\n<root/>", 100, 1);
  assert_int_equal(f.rc, PORTMAP_HTTP_OK);
  assert_int_equal(f.body_len, 7);
  assert_memory_equal(f.body, "<root/>", 7);
  f = feed_both("HTTP/1.0 200 OK\r\n\r\n", 100, 1);
  assert_int_equal(f.rc, PORTMAP_HTTP_OK);
  assert_int_equal(f.body_len, 0);
  /* without the end of the stream it may go on */
  f = feed_both("HTTP/1.0 200 OK\r\n\r\n<root/>", 100, 0);
  assert_int_equal(f.rc, PORTMAP_HTTP_MORE);
}

static void test_reply_truncated(void **state) {
  (void)state;
  static const char *const cut[] = {
      "",
      "HTTP/1.1 200 OK\r\nContent-Len",
      "HTTP/1.1 200 OK\r\n\r", /* the head without its last LF */
      "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhello",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n", /* no empty line */
  };
  for (size_t i = 0; i < sizeof cut / sizeof cut[0]; i++) {
    fed_t f = feed_both(cut[i], 100, 1);
    if (f.rc != PORTMAP_HTTP_TRUNCATED) {
      fprintf(stderr, "case %zu: rc %d\n", i, f.rc);
      fail();
    }
  }
}

static void test_reply_invalid(void **state) {
  (void)state;
  fed_t f =
      feed_both("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 100, 1);
  assert_int_equal(f.rc, PORTMAP_HTTP_INVALID);
  f = feed_both("SSH-2.0-OpenSSH_9.2\r\n\r\n", 100, 1);
  assert_int_equal(f.rc, PORTMAP_HTTP_INVALID);
}

static void test_reply_limits(void **state) {
  (void)state;
  /* a Content-Length over the cap is refused before any of the body */
  fed_t f = feed_both("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n", 10, 0);
  assert_int_equal(f.rc, PORTMAP_HTTP_TOO_LARGE);
  f = feed_both("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", 10, 0);
  assert_int_equal(f.rc, PORTMAP_HTTP_OK);
  /* unframed and chunked bodies are stopped one octet past the cap */
  f = feed_both("HTTP/1.0 200 OK\r\n\r\n0123456789", 10, 1);
  assert_int_equal(f.rc, PORTMAP_HTTP_OK);
  f = feed_both("HTTP/1.0 200 OK\r\n\r\n0123456789A", 10, 1);
  assert_int_equal(f.rc, PORTMAP_HTTP_TOO_LARGE);
  f = feed_both(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n5\r\n6789A\r\n", 10, 1);
  assert_int_equal(f.rc, PORTMAP_HTTP_TOO_LARGE);
  /* a chunk size far past the cap is not trusted: the data is counted */
  f = feed_both("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFF\r\n0123456789A", 10,
                1);
  assert_int_equal(f.rc, PORTMAP_HTTP_TOO_LARGE);
  /* a head with no end past PORTMAP_HTTP_HEAD_MAX */
  size_t len = PORTMAP_HTTP_HEAD_MAX + 64;
  char *big = malloc(len + 1);
  assert_non_null(big);
  memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
  memset(big + 20, 'a', len - 20);
  big[len] = '\0';
  f = feed_both(big, 100, 1);
  assert_int_equal(f.rc, PORTMAP_HTTP_TOO_LARGE);
  /* just under it, with its end, is read */
  memcpy(big + PORTMAP_HTTP_HEAD_MAX - 4, "\r\n\r\n", 5);
  f = feed_both(big, 100, 1);
  assert_int_equal(f.rc, PORTMAP_HTTP_OK);
  free(big);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_head_status_and_length),
      cmocka_unit_test(test_head_invalid),
      cmocka_unit_test(test_head_chunked_wins),
      cmocka_unit_test(test_head_len),
      cmocka_unit_test(test_chunked_bodies),
      cmocka_unit_test(test_chunked_invalid),
      cmocka_unit_test(test_chunked_line_limits),
      cmocka_unit_test(test_chunked_split_everywhere),
      cmocka_unit_test(test_reply_content_length),
      cmocka_unit_test(test_reply_chunked),
      cmocka_unit_test(test_reply_end_of_stream),
      cmocka_unit_test(test_reply_truncated),
      cmocka_unit_test(test_reply_invalid),
      cmocka_unit_test(test_reply_limits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
