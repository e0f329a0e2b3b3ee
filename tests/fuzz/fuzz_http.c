/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the sans-I/O HTTP/1.x response reader of the UPnP
 * transport (src/upnp/http.c). Each input is tried as a head, searched for
 * the end of a head, decoded as a chunked body, and fed as a whole
 * response both at once and one octet at a time (with a small and a large
 * body cap). Any input must be handled without undefined behaviour, and
 * what is accepted must hold the documented invariants: the decoded body
 * never runs ahead of the input nor past its cap, a head's framing is
 * consistent, and the split of the input into reads never changes an
 * accepted body. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "upnp/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond) {
  if (!cond)
    abort();
}

static void head(const uint8_t *data, size_t size) {
  portmap_http_head_t h;
  int rc = portmap_http_parse_head(data, size, &h);
  check(rc == PORTMAP_HTTP_OK || rc == PORTMAP_HTTP_INVALID);
  if (rc != PORTMAP_HTTP_OK)
    return;
  check(size >= 12 && memcmp(data, "HTTP/1.", 7) == 0 && data[8] == ' ');
  check(h.status >= 0 && h.status <= 999);
  check(h.content_length >= -1 && h.content_length <= 999999999999LL);
  check(!h.chunked || h.content_length == -1);
}

static void head_len(const uint8_t *data, size_t size) {
  size_t n = portmap_http_head_len(data, size, 0);
  if (n == 0) {
    for (size_t i = 0; i + 4 <= size; i++)
      check(memcmp(data + i, "\r\n\r\n", 4) != 0);
    return;
  }
  check(n >= 4 && n <= size && memcmp(data + n - 4, "\r\n\r\n", 4) == 0);
  for (size_t i = 0; i + 4 < n; i++)
    check(memcmp(data + i, "\r\n\r\n", 4) != 0); /* the first one */
}

static uint8_t buf[1 << 17];

static void chunks(const uint8_t *data, size_t size) {
  if (size > sizeof buf)
    return;
  memcpy(buf, data, size);
  portmap_http_chunks_t d;
  memset(&d, 0, sizeof d);
  size_t in = 0, out = 0;
  portmap_http_dechunk(&d, buf, &in, size, &out);
  check(out <= in && in <= size);
  check(d.state >= PORTMAP_HTTP_CH_SIZE && d.state <= PORTMAP_HTTP_CH_BAD);
  check(in == size || d.state == PORTMAP_HTTP_CH_DONE || d.state == PORTMAP_HTTP_CH_BAD);
}

typedef struct fed {
  int rc;
  size_t len;
  uint8_t *body; /* malloc'd copy when rc is OK */
} fed_t;

/* Feed as the transport does, step octets per read, then the end. */
static fed_t feed(const uint8_t *data, size_t size, size_t step, size_t cap) {
  fed_t f = {PORTMAP_HTTP_MORE, 0, NULL};
  portmap_http_reader_t p;
  portmap_http_reader_init(&p, cap);
  size_t have = 0, off = 0;
  while (off < size && f.rc == PORTMAP_HTTP_MORE) {
    size_t n = size - off < step ? size - off : step;
    if (have + n > sizeof buf)
      return f;
    memcpy(buf + have, data + off, n);
    have += n;
    off += n;
    f.rc = portmap_http_reader_feed(&p, buf, &have, &f.len);
    check(have <= off);
  }
  if (f.rc == PORTMAP_HTTP_MORE)
    f.rc = portmap_http_reader_end(&p, &f.len);
  check(f.rc == PORTMAP_HTTP_OK || f.rc == PORTMAP_HTTP_INVALID || f.rc == PORTMAP_HTTP_TOO_LARGE ||
        f.rc == PORTMAP_HTTP_TRUNCATED);
  if (f.rc == PORTMAP_HTTP_OK) {
    check(f.len <= cap && f.len <= have);
    f.body = malloc(f.len + 1);
    check(f.body != NULL);
    memcpy(f.body, buf, f.len);
  }
  return f;
}

static void reply(const uint8_t *data, size_t size, size_t cap) {
  if (size == 0)
    return;
  fed_t whole = feed(data, size, size, cap);
  fed_t slow = feed(data, size, 1, cap);
  /* a head past PORTMAP_HTTP_HEAD_MAX may be read whole but not slowly,
   * and octets past a Content-Length body may overflow the cap when they
   * come in the same read; never a different body */
  if (whole.rc == PORTMAP_HTTP_OK && slow.rc == PORTMAP_HTTP_OK)
    check(whole.len == slow.len && memcmp(whole.body, slow.body, whole.len) == 0);
  if (size <= PORTMAP_HTTP_HEAD_MAX && slow.rc == PORTMAP_HTTP_OK)
    check(whole.rc == PORTMAP_HTTP_OK || whole.rc == PORTMAP_HTTP_TOO_LARGE);
  free(whole.body);
  free(slow.body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  head(data, size);
  head_len(data, size);
  chunks(data, size);
  reply(data, size, 64);
  reply(data, size, 65536);
  return 0;
}
