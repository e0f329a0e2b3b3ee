/* SPDX-License-Identifier: MIT */
/*
 * The HTTP/1.x response reader of the UPnP transport, sans I/O (see
 * http.h): the head, the chunked coding and the bounds, over caller
 * memory, every octet through the bounded reader.
 */
#include "upnp/http.h"

#include <string.h>

/* gcc's -Wconversion flags portmap_rd_be16() (the int 0 of its ?:); not
 * ours to edit here, and this file reads no binary fields. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wconversion"
#include "util/reader.h"
#pragma GCC diagnostic pop

/* "Name: value" with the name compared without case; the value without
 * the spaces and tabs around it. */
static int header_is(const char *line, size_t len, const char *name, const char **value,
                     size_t *vlen) {
  portmap_reader_t r;
  portmap_rd_init(&r, line, len);
  const char *n;
  size_t nl;
  if (portmap_rd_until(&r, ':', &n, &nl) != 1 || !portmap_rd_text_eq(n, nl, name))
    return 0;
  portmap_rd_skip_ws(&r);
  size_t left = portmap_rd_left(&r);
  const char *v = (const char *)portmap_rd_take(&r, left);
  while (left > 0 && (v[left - 1] == ' ' || v[left - 1] == '\t'))
    left--;
  *value = left > 0 ? v : "";
  *vlen = left;
  return 1;
}

int portmap_http_parse_head(const void *head, size_t len, portmap_http_head_t *h) {
  portmap_reader_t r;
  portmap_rd_init(&r, head, len);
  const uint8_t *version = portmap_rd_take(&r, 7);
  portmap_rd_skip(&r, 1); /* the minor version: any */
  int space = portmap_rd_u8(&r) == ' ';
  portmap_reader_t digits = portmap_rd_sub(&r, 3);
  int code = (int)portmap_rd_number(&digits, 10, 3, 999);
  if (!portmap_rd_ok(&r) || memcmp(version, "HTTP/1.", 7) != 0 || !space ||
      !portmap_rd_ok(&digits) || portmap_rd_left(&digits) != 0)
    return PORTMAP_HTTP_INVALID;
  h->status = code;
  h->content_length = -1;
  h->chunked = 0;
  portmap_rd_init(&r, head, len);
  const char *line;
  size_t ll;
  (void)portmap_rd_line(&r, &line, &ll); /* the status line */
  while (portmap_rd_left(&r) > 0) {
    if (portmap_rd_line(&r, &line, &ll) == 0 && ll > 0 && line[ll - 1] == '\r')
      ll--; /* an unterminated last line */
    const char *v;
    size_t vl;
    if (header_is(line, ll, "Content-Length", &v, &vl)) {
      portmap_reader_t num;
      portmap_rd_init(&num, v, vl);
      long long n = (long long)portmap_rd_number(&num, 10, 12, 999999999999ull);
      if (!portmap_rd_ok(&num) || portmap_rd_left(&num) != 0)
        return PORTMAP_HTTP_INVALID;
      if (h->content_length >= 0 && h->content_length != n)
        return PORTMAP_HTTP_INVALID; /* two framings: trust neither */
      h->content_length = n;
    } else if (header_is(line, ll, "Transfer-Encoding", &v, &vl)) {
      for (size_t i = 0; i + 7 <= vl; i++)
        if (portmap_rd_text_eq(v + i, 7, "chunked"))
          h->chunked = 1;
    }
  }
  if (h->chunked)
    h->content_length = -1; /* RFC 9112 section 6.3: the coding wins */
  return PORTMAP_HTTP_OK;
}

size_t portmap_http_head_len(const void *buf, size_t len, size_t from) {
  portmap_reader_t r;
  portmap_rd_init(&r, buf, len);
  portmap_rd_skip(&r, from);
  const char *s;
  size_t n;
  while (portmap_rd_until(&r, '\r', &s, &n) == 1) {
    portmap_reader_t ahead = r;
    const uint8_t *p = portmap_rd_take(&ahead, 3);
    if (p != NULL && memcmp(p, "\n\r\n", 3) == 0)
      return portmap_rd_pos(&ahead);
  }
  return 0;
}

void portmap_http_dechunk(portmap_http_chunks_t *d, uint8_t *buf, size_t *in, size_t have,
                          size_t *out) {
  portmap_reader_t r;
  portmap_rd_init(&r, buf + *in, have - *in);
  while (portmap_rd_left(&r) > 0 && d->state != PORTMAP_HTTP_CH_DONE &&
         d->state != PORTMAP_HTTP_CH_BAD) {
    if (d->state == PORTMAP_HTTP_CH_DATA) {
      size_t n = portmap_rd_left(&r) < d->left ? portmap_rd_left(&r) : d->left;
      const uint8_t *p = portmap_rd_take(&r, n);
      memmove(buf + *out, p, n); /* behind the reader: out never passes in */
      *out += n;
      d->left -= n;
      if (d->left == 0)
        d->state = PORTMAP_HTTP_CH_DATA_CR;
      continue;
    }
    uint8_t ch = portmap_rd_u8(&r);
    int hex = portmap_rd_digit_value(ch, 16);
    switch (d->state) {
    case PORTMAP_HTTP_CH_SIZE:
      if (hex >= 0 && d->digits < PORTMAP_HTTP_CHUNK_DIGITS_MAX) {
        d->left = d->left * 16u + (size_t)hex;
        d->digits++;
      } else if (d->digits > 0 && (ch == ';' || ch == ' ' || ch == '\t')) {
        d->state = PORTMAP_HTTP_CH_EXT;
        d->line = 0;
      } else if (d->digits > 0 && ch == '\r') {
        d->state = PORTMAP_HTTP_CH_SIZE_LF;
      } else {
        d->state = PORTMAP_HTTP_CH_BAD;
      }
      break;
    case PORTMAP_HTTP_CH_EXT:
      if (ch == '\r')
        d->state = PORTMAP_HTTP_CH_SIZE_LF;
      else if (++d->line > PORTMAP_HTTP_CHUNK_EXT_MAX)
        d->state = PORTMAP_HTTP_CH_BAD;
      break;
    case PORTMAP_HTTP_CH_SIZE_LF:
      d->line = 0;
      d->state = ch != '\n'    ? PORTMAP_HTTP_CH_BAD
                 : d->left > 0 ? PORTMAP_HTTP_CH_DATA
                               : PORTMAP_HTTP_CH_TRAILER;
      break;
    case PORTMAP_HTTP_CH_DATA_CR:
      d->state = ch == '\r' ? PORTMAP_HTTP_CH_DATA_LF : PORTMAP_HTTP_CH_BAD;
      break;
    case PORTMAP_HTTP_CH_DATA_LF:
      d->state = ch == '\n' ? PORTMAP_HTTP_CH_SIZE : PORTMAP_HTTP_CH_BAD;
      d->digits = 0;
      break;
    case PORTMAP_HTTP_CH_TRAILER:
      if (ch == '\r')
        d->state = PORTMAP_HTTP_CH_TRAILER_LF;
      else if (++d->line > PORTMAP_HTTP_TRAILER_LINE_MAX)
        d->state = PORTMAP_HTTP_CH_BAD;
      break;
    case PORTMAP_HTTP_CH_TRAILER_LF:
      d->state = ch != '\n'     ? PORTMAP_HTTP_CH_BAD
                 : d->line == 0 ? PORTMAP_HTTP_CH_DONE
                                : PORTMAP_HTTP_CH_TRAILER;
      d->line = 0;
      break;
    default:
      break;
    }
  }
  *in += portmap_rd_pos(&r);
}

void portmap_http_reader_init(portmap_http_reader_t *p, size_t cap) {
  memset(p, 0, sizeof *p);
  p->cap = cap;
  p->head.content_length = -1;
}

int portmap_http_reader_feed(portmap_http_reader_t *p, uint8_t *buf, size_t *have,
                             size_t *body_len) {
  const portmap_http_head_t *h = &p->head;
  if (!p->head_done) {
    size_t hl = portmap_http_head_len(buf, *have, p->scanned);
    if (hl == 0) {
      if (*have > PORTMAP_HTTP_HEAD_MAX)
        return PORTMAP_HTTP_TOO_LARGE;
      p->scanned = *have > 3 ? *have - 3 : 0;
      return PORTMAP_HTTP_MORE;
    }
    if (portmap_http_parse_head(buf, hl, &p->head) != PORTMAP_HTTP_OK)
      return PORTMAP_HTTP_INVALID;
    if (h->content_length > (long long)p->cap)
      return PORTMAP_HTTP_TOO_LARGE;
    memmove(buf, buf + hl, *have - hl); /* keep the body only */
    *have -= hl;
    p->head_done = 1;
  }
  if (h->chunked) {
    portmap_http_dechunk(&p->chunks, buf, &p->in, *have, &p->out);
    memmove(buf + p->out, buf + p->in, *have - p->in);
    *have = p->out + (*have - p->in);
    p->in = p->out;
    if (p->chunks.state == PORTMAP_HTTP_CH_BAD)
      return PORTMAP_HTTP_INVALID;
  } else {
    p->out = *have;
  }
  if (p->out > p->cap)
    return PORTMAP_HTTP_TOO_LARGE;
  if ((h->chunked && p->chunks.state == PORTMAP_HTTP_CH_DONE) ||
      (!h->chunked && h->content_length >= 0 && p->out >= (size_t)h->content_length)) {
    /* octets past the body are not ours */
    *body_len = h->content_length >= 0 ? (size_t)h->content_length : p->out;
    return PORTMAP_HTTP_OK;
  }
  return PORTMAP_HTTP_MORE;
}

int portmap_http_reader_end(const portmap_http_reader_t *p, size_t *body_len) {
  const portmap_http_head_t *h = &p->head;
  if (!p->head_done || (h->chunked && p->chunks.state != PORTMAP_HTTP_CH_DONE) ||
      (h->content_length >= 0 && p->out < (size_t)h->content_length))
    return PORTMAP_HTTP_TRUNCATED; /* cut short */
  *body_len = p->out;
  return PORTMAP_HTTP_OK;
}
