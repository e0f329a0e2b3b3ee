/* SPDX-License-Identifier: MIT */
/*
 * The UPnP worker's HTTP transport (see transport.h): bounded non-blocking
 * connect, send and receive under one deadline; the reply is framed by the
 * sans-I/O reader of http.c.
 */
#include "upnp/transport.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <miniupnpc/upnpcommands.h>

#include "platform/platform.h"
#include "upnp/http.h"
#include "util/netutil.h"

/* Wait until fd is ready for events. 0, UPNP_RC_TIMEOUT, UPNP_RC_ABORTED
 * or UPNPCOMMAND_HTTP_ERROR. */
static int io_wait(const upnp_io_t *io, int fd, short events) {
  for (;;) {
    uint64_t now = portmap_plat_now_ms();
    if (now >= io->deadline)
      return UPNP_RC_TIMEOUT;
    uint64_t left = io->deadline - now;
    struct pollfd p[2];
    p[0].fd = fd;
    p[0].events = events;
    p[0].revents = 0;
    p[1].fd = io->abort_fd;
    p[1].events = POLLIN;
    p[1].revents = 0;
    int n = poll(p, io->abort_fd >= 0 ? 2 : 1, left > INT_MAX ? INT_MAX : (int)left);
    if (n < 0 && errno != EINTR)
      return UPNPCOMMAND_HTTP_ERROR;
    if (n > 0 && p[1].revents != 0)
      return UPNP_RC_ABORTED;
    if (n > 0 && p[0].revents != 0)
      return 0;
  }
}

/* A non-blocking connect to the URL's literal address, within the deadline. */
static int io_connect(const upnp_io_t *io, const portmap_ssdp_url_t *u, int *out) {
  struct sockaddr_storage ss;
  socklen_t sl = portmap_net_to_sockaddr(u->addr, u->port, 0, &ss);
  int fd = portmap_plat_socket(ss.ss_family == AF_INET6, 1);
  if (fd < 0)
    return UPNPCOMMAND_HTTP_ERROR;
  if (connect(fd, (struct sockaddr *)&ss, sl) != 0) {
    if (errno != EINPROGRESS && errno != EINTR) {
      close(fd);
      return UPNPCOMMAND_HTTP_ERROR;
    }
    int rc = io_wait(io, fd, POLLOUT);
    int err = 0;
    socklen_t el = sizeof err;
    if (rc == 0 && (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0))
      rc = UPNPCOMMAND_HTTP_ERROR; /* refused, unreachable */
    if (rc != 0) {
      close(fd);
      return rc;
    }
  }
  *out = fd;
  return 0;
}

static int io_send(const upnp_io_t *io, int fd, const char *buf, size_t len) {
  size_t off = 0;
  while (off < len) {
    ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += (size_t)n;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int rc = io_wait(io, fd, POLLOUT);
      if (rc != 0)
        return rc;
    } else if (n == 0 || errno != EINTR) {
      return UPNPCOMMAND_HTTP_ERROR;
    }
  }
  return 0;
}

#define IO_FIRST_BUF 4096u /* the reply's buffer to begin with; it grows up to the bound */

/* Read one HTTP response into buf (IO_FIRST_BUF + 1 octets, ours from
 * here on): headers, then a body of at most cap octets. */
static int io_read_reply(const upnp_io_t *io, int fd, size_t cap, char *buf, http_reply_t *r) {
  size_t max = PORTMAP_HTTP_HEAD_MAX + cap + 1; /* the octet past cap proves "too large" */
  size_t bufcap = IO_FIRST_BUF, have = 0, body = 0;
  int rc = UPNPCOMMAND_HTTP_ERROR;
  portmap_http_reader_t p;
  portmap_http_reader_init(&p, cap);
  for (;;) {
    if (have == bufcap) {
      if (bufcap >= max) {
        rc = UPNP_RC_TOO_LARGE;
        goto done;
      }
      size_t grown = bufcap * 2 < max ? bufcap * 2 : max;
      char *nb = portmap_alloc_realloc(io->alloc, buf, grown + 1);
      if (nb == NULL) {
        rc = UPNPCOMMAND_MEM_ALLOC_ERROR;
        goto done;
      }
      buf = nb;
      bufcap = grown;
    }
    ssize_t n = recv(fd, buf + have, bufcap - have, 0);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        rc = UPNPCOMMAND_HTTP_ERROR;
        goto done;
      }
      rc = io_wait(io, fd, POLLIN);
      if (rc != 0)
        goto done;
      continue;
    }
    if (n == 0) { /* the end of the stream */
      rc = portmap_http_reader_end(&p, &body) == PORTMAP_HTTP_OK ? 0 : UPNPCOMMAND_HTTP_ERROR;
      goto done;
    }
    have += (size_t)n;
    int hr = portmap_http_reader_feed(&p, (uint8_t *)buf, &have, &body);
    if (hr == PORTMAP_HTTP_MORE)
      continue;
    rc = hr == PORTMAP_HTTP_OK          ? 0
         : hr == PORTMAP_HTTP_TOO_LARGE ? UPNP_RC_TOO_LARGE
                                        : UPNPCOMMAND_INVALID_RESPONSE;
    goto done;
  }
done:
  if (rc != 0) {
    portmap_alloc_free(io->alloc, buf);
    return rc;
  }
  buf[body] = '\0';
  r->status = p.head.status;
  r->body = buf;
  r->len = body;
  return 0;
}

int portmap_upnp_http_exchange(const upnp_io_t *io, const portmap_ssdp_url_t *u, const char *req,
                               size_t len, size_t cap, http_reply_t *r) {
  /* The reply's buffer before anything goes out: an add sent whose answer
   * cannot be read would leave the gateway in a state we do not know. */
  char *buf = portmap_alloc_malloc(io->alloc, IO_FIRST_BUF + 1);
  if (buf == NULL) {
    if (io->conn_fd >= 0)
      close(io->conn_fd);
    return UPNP_RC_NOMEM;
  }
  int fd = io->conn_fd;
  int rc = fd >= 0 ? 0 : io_connect(io, u, &fd);
  if (rc == 0)
    rc = io_send(io, fd, req, len);
  if (rc == 0) {
    rc = io_read_reply(io, fd, cap, buf, r);
    buf = NULL; /* the reply's, or freed */
  }
  if (fd >= 0)
    close(fd);
  portmap_alloc_free(io->alloc, buf);
  return rc;
}

/* HTTP/1.0, so that no chunked coding comes back from a conforming server
 * (it is decoded all the same). */
int portmap_upnp_http_get(const upnp_io_t *io, const char *url, size_t cap, http_reply_t *r) {
  portmap_ssdp_url_t u;
  if (portmap_ssdp_url_parse(url, &u) != PORTMAP_SSDP_OK)
    return UPNPCOMMAND_INVALID_ARGS;
  char req[PORTMAP_SSDP_URL_MAX + 160];
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.0\r\n"
                   "Host: %s:%u\r\n"
                   "User-Agent: " UPNP_USER_AGENT "\r\n"
                   "Connection: close\r\n"
                   "\r\n",
                   u.path, u.host, u.port);
  if (n <= 0 || (size_t)n >= sizeof req)
    return UPNPCOMMAND_INVALID_ARGS;
  return portmap_upnp_http_exchange(io, &u, req, (size_t)n, cap, r);
}
