/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the HTTP response reader (src/upnp/http.c) fed as
 * the UPnP transport feeds it (io_read_reply() in src/upnp/transport.c,
 * mirrored here without the socket): one growing buffer (4096 octets,
 * doubled up to PORTMAP_HTTP_HEAD_MAX + cap + 1), reads of sizes the input
 * chooses, the end of the stream after its last octet. The input is
 *
 *   | cap selector (1) | n (1) | n read sizes (1 each, 0 = 256) | stream |
 *
 * Invariants: the loop ends; nothing is held past the buffer; an accepted
 * body fits its cap and its buffer (the transport writes a NUL after it),
 * is no longer than the stream, and equals the body of the same stream
 * read at once whenever that one is accepted too; "too large" from a full
 * buffer only after more than PORTMAP_HTTP_HEAD_MAX + cap octets. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "upnp/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond) {
  if (!cond)
    abort();
}

enum { R_OK, R_TOO_LARGE, R_INVALID, R_TRUNCATED };

typedef struct result {
  int rc;
  size_t len;
  uint8_t *buf; /* the body at buf[0, len) when R_OK; the caller frees */
} result_t;

static result_t read_reply(const uint8_t *stream, size_t size, const uint8_t *reads, size_t n,
                           size_t cap) {
  result_t r = {R_INVALID, 0, NULL};
  size_t max = PORTMAP_HTTP_HEAD_MAX + cap + 1;
  size_t bufcap = 4096, have = 0, body = 0, off = 0, k = 0;
  portmap_http_reader_t p;
  portmap_http_reader_init(&p, cap);
  uint8_t *buf = malloc(bufcap + 1);
  check(buf != NULL);
  for (size_t loops = 0;; loops++) {
    check(loops <= 2 * size + 64); /* every turn reads or ends */
    if (have == bufcap) {
      if (bufcap >= max) {
        check(off > PORTMAP_HTTP_HEAD_MAX + cap);
        r.rc = R_TOO_LARGE;
        break;
      }
      size_t grown = bufcap * 2 < max ? bufcap * 2 : max;
      uint8_t *nb = realloc(buf, grown + 1);
      check(nb != NULL);
      buf = nb;
      bufcap = grown;
    }
    size_t want = size;
    if (n > 0) {
      want = reads[k % n] != 0 ? reads[k % n] : 256u;
      k++;
    }
    size_t got = size - off;
    if (got > want)
      got = want;
    if (got > bufcap - have)
      got = bufcap - have;
    if (got == 0) { /* the end of the stream */
      r.rc = portmap_http_reader_end(&p, &body) == PORTMAP_HTTP_OK ? R_OK : R_TRUNCATED;
      break;
    }
    memcpy(buf + have, stream + off, got);
    have += got;
    off += got;
    int hr = portmap_http_reader_feed(&p, buf, &have, &body);
    check(have <= bufcap && have <= off);
    if (hr == PORTMAP_HTTP_MORE)
      continue;
    check(hr == PORTMAP_HTTP_OK || hr == PORTMAP_HTTP_TOO_LARGE || hr == PORTMAP_HTTP_INVALID);
    r.rc = hr == PORTMAP_HTTP_OK ? R_OK : hr == PORTMAP_HTTP_TOO_LARGE ? R_TOO_LARGE : R_INVALID;
    break;
  }
  if (r.rc == R_OK) {
    check(body <= cap && body <= bufcap && body <= size);
    buf[body] = '\0'; /* as the transport does */
    r.len = body;
    r.buf = buf;
  } else {
    free(buf);
  }
  return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2)
    return 0;
  static const size_t caps[4] = {0, 16, 1024, 65536};
  size_t cap = caps[data[0] % 4];
  size_t n = data[1];
  if (size < 2 + n)
    return 0;
  const uint8_t *reads = data + 2;
  const uint8_t *stream = data + 2 + n;
  size_t len = size - 2 - n;
  result_t split = read_reply(stream, len, reads, n, cap);
  result_t whole = read_reply(stream, len, NULL, 0, cap);
  if (split.rc == R_OK && whole.rc == R_OK)
    check(split.len == whole.len && memcmp(split.buf, whole.buf, split.len) == 0);
  free(split.buf);
  free(whole.buf);
  return 0;
}
