/* SPDX-License-Identifier: MIT */
/*
 * The HTTP/1.x response reader of the UPnP transport, sans I/O: the status
 * line and the two headers that frame the body (Content-Length,
 * Transfer-Encoding: chunked), the chunked transfer coding (RFC 9112
 * section 7.1) and the size limits. No sockets, no clocks, no allocation:
 * the caller owns the buffer, feeds it the octets as they arrive and gets
 * back the decoded body at its start. Every octet is read through the
 * bounded reader (util/reader.h).
 *
 *   HTTP/1.1 200 OK\r\n             status: "HTTP/1." any octet, a space,
 *   Content-Length: 312\r\n           three digits
 *   Transfer-Encoding: chunked\r\n  (either; chunked wins, RFC 9112 6.3)
 *   \r\n
 *   138;ext=1\r\n                   chunk size (at most 8 hex digits),
 *   ...312 octets...\r\n              an extension of at most 256 octets
 *   0\r\n
 *   trailer: line\r\n               trailer lines of at most 1024 octets
 *   \r\n
 */
#ifndef PORTMAP_UPNP_HTTP_H
#define PORTMAP_UPNP_HTTP_H

#include <stddef.h>
#include <stdint.h>

#define PORTMAP_HTTP_HEAD_MAX 8192u         /* status line and headers of a reply */
#define PORTMAP_HTTP_CHUNK_DIGITS_MAX 8u    /* a chunk size: at most 4 GiB, far past any cap */
#define PORTMAP_HTTP_CHUNK_EXT_MAX 256u     /* octets of a chunk extension */
#define PORTMAP_HTTP_TRAILER_LINE_MAX 1024u /* octets of a trailer line */

/* Results. */
enum {
  PORTMAP_HTTP_OK = 0,         /* the whole reply is in */
  PORTMAP_HTTP_MORE = 1,       /* feed more octets */
  PORTMAP_HTTP_INVALID = -1,   /* not an HTTP/1.x response, or a broken chunked body */
  PORTMAP_HTTP_TOO_LARGE = -2, /* the head or the body outgrew its bound */
  PORTMAP_HTTP_TRUNCATED = -3  /* the stream ended before the reply did */
};

typedef struct portmap_http_head {
  int status;
  long long content_length; /* -1: none (or the body is chunked) */
  int chunked;
} portmap_http_head_t;

/* The status line and the framing headers. head ends with the empty line
 * (or is what there is of it). PORTMAP_HTTP_OK or PORTMAP_HTTP_INVALID
 * (also for two Content-Length headers that disagree). */
int portmap_http_parse_head(const void *head, size_t len, portmap_http_head_t *h);

/* The length of the head ("\r\n\r\n" included) at the start of buf, or 0
 * while it is incomplete. The search starts at from (octets before it
 * were searched already; pass len - 3 of the previous call, or 0). */
size_t portmap_http_head_len(const void *buf, size_t len, size_t from);

/* The chunked decoder's states. */
enum {
  PORTMAP_HTTP_CH_SIZE,
  PORTMAP_HTTP_CH_EXT,
  PORTMAP_HTTP_CH_SIZE_LF,
  PORTMAP_HTTP_CH_DATA,
  PORTMAP_HTTP_CH_DATA_CR,
  PORTMAP_HTTP_CH_DATA_LF,
  PORTMAP_HTTP_CH_TRAILER,
  PORTMAP_HTTP_CH_TRAILER_LF,
  PORTMAP_HTTP_CH_DONE,
  PORTMAP_HTTP_CH_BAD
};

typedef struct portmap_http_chunks {
  int state;     /* zero-initialised: PORTMAP_HTTP_CH_SIZE */
  size_t left;   /* chunk octets still to come */
  size_t digits; /* of the chunk size */
  size_t line;   /* octets of the current extension or trailer line */
} portmap_http_chunks_t;

/* Decode buf[*in, have) in place, as the octets arrive: the decoded octets
 * go to buf + *out (never ahead of *in), both advance. Stops at DONE or
 * BAD (d->state); octets past DONE are left unread. */
void portmap_http_dechunk(portmap_http_chunks_t *d, uint8_t *buf, size_t *in, size_t have,
                          size_t *out);

/* A whole response, fed as it arrives into one caller buffer. */
typedef struct portmap_http_reader {
  size_t cap; /* body bound */
  int head_done;
  size_t scanned; /* of the head, for "\r\n\r\n" */
  portmap_http_head_t head;
  portmap_http_chunks_t chunks;
  size_t in, out; /* of the body, while chunked */
} portmap_http_reader_t;

/* A reader for one response with a body of at most cap octets. */
void portmap_http_reader_init(portmap_http_reader_t *p, size_t cap);

/* buf[0, *have) holds what has arrived and was not consumed yet (the
 * head is dropped from it once read, the chunk framing once decoded):
 * *have is updated. PORTMAP_HTTP_OK: the body is buf[0, *body_len);
 * PORTMAP_HTTP_MORE; PORTMAP_HTTP_INVALID; PORTMAP_HTTP_TOO_LARGE (a head
 * over PORTMAP_HTTP_HEAD_MAX with no end yet, a Content-Length over cap,
 * refused before any of the body, or a body past cap). */
int portmap_http_reader_feed(portmap_http_reader_t *p, uint8_t *buf, size_t *have,
                             size_t *body_len);

/* The stream ended: PORTMAP_HTTP_OK with the body buf[0, *body_len)
 * (framed by the end of the stream), or PORTMAP_HTTP_TRUNCATED. Call it
 * after a feed that returned PORTMAP_HTTP_MORE (or before any). */
int portmap_http_reader_end(const portmap_http_reader_t *p, size_t *body_len);

#endif
