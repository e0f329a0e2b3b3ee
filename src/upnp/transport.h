/* SPDX-License-Identifier: MIT */
/*
 * The UPnP worker's HTTP transport: one exchange (a non-blocking connect
 * to a URL's literal address, the request sent, the reply read through the
 * sans-I/O reader of http.h) under one deadline, with a body bound and an
 * abort fd. Blocking: runs on the worker thread only.
 */
#ifndef PORTMAP_UPNP_TRANSPORT_H
#define PORTMAP_UPNP_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "upnp/ssdp.h"
#include "util/alloc.h"

/* Our own pseudo result codes, beside miniupnpc's UPNPCOMMAND_* (< 0). */
#define UPNP_RC_TIMEOUT (-1000)   /* the watchdog or the worker's deadline gave up */
#define UPNP_RC_SYSTEM (-1001)    /* no worker (thread or pipe creation failed) */
#define UPNP_RC_ABORTED (-1002)   /* the client went away during a query */
#define UPNP_RC_TOO_LARGE (-1003) /* the reply outgrew its bound */
#define UPNP_RC_NOMEM (-1004)     /* out of memory before anything was sent */

#define UPNP_USER_AGENT "Linux UPnP/1.1 libportmap"

/* The bounds of one exchange: a deadline for all of it, and for a query
 * the abort pipe that destroy writes when nobody wants the answer; and the
 * allocator of the reply's body. */
typedef struct upnp_io {
  uint64_t deadline;            /* CLOCK_MONOTONIC, ms */
  int abort_fd;                 /* -1: runs to its deadline */
  const portmap_alloc_t *alloc; /* the body's (NULL: the system's) */
  /* -1 (the worker's): connect to the URL's address. >= 0: a stream that
   * is already connected, used and closed instead (tests and the stateful
   * fuzzer answer from memory through a socketpair) */
  int conn_fd;
} upnp_io_t;

typedef struct http_reply {
  int status;
  char *body; /* NUL-terminated, from io->alloc */
  size_t len;
} http_reply_t;

/* Connect (or take io->conn_fd), send the request, read the reply: one
 * deadline for it all; the connection is closed at the end. The
 * body is at most cap octets, framed by Content-Length, the chunked coding
 * or the end of the stream; a Content-Length above cap is refused before
 * any of the body is read. 0 (r->body then is the caller's to free with
 * io->alloc), UPNP_RC_TIMEOUT, UPNP_RC_ABORTED, UPNP_RC_TOO_LARGE,
 * UPNP_RC_NOMEM (the reply's first buffer is taken before connecting: short
 * of memory, nothing is sent) or a UPNPCOMMAND_ failure (HTTP_ERROR,
 * INVALID_RESPONSE; MEM_ALLOC_ERROR: the reply outgrew the memory after the
 * request went out, so the gateway may have acted on it). */
int portmap_upnp_http_exchange(const upnp_io_t *io, const portmap_ssdp_url_t *u, const char *req,
                               size_t len, size_t cap, http_reply_t *r);

/* GET url (HTTP/1.0) through portmap_upnp_http_exchange(); also
 * UPNPCOMMAND_INVALID_ARGS for a URL it cannot use. */
int portmap_upnp_http_get(const upnp_io_t *io, const char *url, size_t cap, http_reply_t *r);

#endif
