/* SPDX-License-Identifier: MIT */
/*
 * The platform layer on Linux (see platform.h): default routes over
 * rtnetlink (linux_rtnl.c), else from /proc/net/route and
 * /proc/net/ipv6_route, the local address by
 * connect()+getsockname(), ICMP errors through IP_RECVERR/IPV6_RECVERR and
 * the socket error queue, getrandom(), CLOCK_MONOTONIC, and a pipe2() wake
 * pipe.
 *
 * The route parsers take untrusted text of any length, NUL terminated or
 * not: every octet is read through the bounded reader (util/reader.h) and
 * any line that does not look exactly like the kernel's output is skipped.
 */
#include "platform/platform.h"
#include "util/netutil.h"

#include "util/reader.h"

#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <linux/errqueue.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Flags from <linux/route.h>, identical for IPv4 and IPv6 routes. */
#define PLAT_RTF_UP 0x0001u
#define PLAT_RTF_GATEWAY 0x0002u
#define PLAT_RTF_REJECT 0x0200u

#define PLAT_IFNAME_MAX 16        /* IFNAMSIZ, NUL included */
#define PLAT_PROC_MAX (64 * 1024) /* bound on what we read of a /proc file */
#define PLAT_RECV_TRIES 8         /* EINTRs retried per receive */

/* ---------- addresses ---------- */

/* fe80::/10, and link/interface-local multicast: need a scope id. */
static int needs_scope(const uint8_t a[16]) {
  if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
    return 1;
  return a[0] == 0xff && ((a[1] & 0x0f) == 0x01 || (a[1] & 0x0f) == 0x02);
}

/* ---------- route-table fields ---------- */

/* The next blank-separated field of a line as a reader of its own; 0 when
 * there is none. Only a blank or the line's end ends a field: one that
 * runs into a CR (which the kernel never prints) spoils the line. */
static int next_field(portmap_reader_t *line, portmap_reader_t *field) {
  const char *tok;
  size_t n;
  portmap_rd_skip_ws(line);
  portmap_rd_token(line, &tok, &n);
  if (n == 0 || portmap_rd_peek(line) == '\r')
    return 0;
  portmap_rd_init(field, tok, n);
  return 1;
}

/* A field read to its end with nothing left over. */
static int field_done(const portmap_reader_t *f) {
  return portmap_rd_ok(f) && portmap_rd_left(f) == 0;
}

/* 1 to 8 hex digits (exactly `exact` when it is not 0). */
static int field_hex32(portmap_reader_t *line, size_t exact, uint32_t *out) {
  portmap_reader_t f;
  if (!next_field(line, &f) || (exact != 0 && portmap_rd_left(&f) != exact))
    return -1;
  uint32_t v = (uint32_t)portmap_rd_number(&f, 16, 8, UINT32_MAX);
  if (!field_done(&f))
    return -1;
  *out = v;
  return 0;
}

/* Decimal, at most UINT32_MAX; with allow_neg, a '-' is accepted and the
 * value taken modulo 2^32, because the kernel prints some u32 fields (the
 * route metric) with %d. */
static int field_dec32(portmap_reader_t *line, int allow_neg, uint32_t *out) {
  portmap_reader_t f;
  if (!next_field(line, &f))
    return -1;
  int neg = allow_neg && portmap_rd_peek(&f) == '-';
  if (neg)
    portmap_rd_skip(&f, 1);
  uint64_t v = portmap_rd_number(&f, 10, 10, neg ? (uint64_t)INT32_MAX + 1 : UINT32_MAX);
  if (!field_done(&f))
    return -1;
  *out = neg ? (uint32_t)(UINT32_C(0) - (uint32_t)v) : (uint32_t)v;
  return 0;
}

/* Exactly 32 hex digits, printed in network order. */
static int field_hex128(portmap_reader_t *line, uint8_t out[16]) {
  portmap_reader_t f;
  if (!next_field(line, &f) || portmap_rd_left(&f) != 32)
    return -1;
  for (size_t i = 0; i < 16; i++) {
    portmap_reader_t pair = portmap_rd_sub(&f, 2);
    out[i] = (uint8_t)portmap_rd_number(&pair, 16, 2, 0xff);
    if (!field_done(&pair))
      return -1;
  }
  return 0;
}

/* An interface name: 1-15 printable, non-blank octets. */
static int field_ifname(portmap_reader_t *line, char out[PLAT_IFNAME_MAX]) {
  portmap_reader_t f;
  if (!next_field(line, &f))
    return -1;
  size_t len = portmap_rd_left(&f);
  const uint8_t *s = portmap_rd_take(&f, len);
  if (s == NULL || len == 0 || len >= PLAT_IFNAME_MAX)
    return -1;
  for (size_t i = 0; i < len; i++)
    if (s[i] <= 0x20 || s[i] >= 0x7f)
      return -1;
  memcpy(out, s, len);
  out[len] = '\0';
  return 0;
}

/* ---------- route tables ---------- */

/*
 * /proc/net/route, one route a line after a header line:
 *   Iface Destination Gateway Flags RefCnt Use Metric Mask MTU Window IRTT
 *   eth0  00000000    0100A8C0 0003 0      0   100    00000000 0 0 0
 * Addresses and mask are the in-memory __be32 printed with %08X, so on a
 * little-endian host "0100A8C0" is 192.168.0.1: copying the parsed host
 * integer's bytes gives network order on any host. Flags is %04X, RefCnt
 * and Metric are %d, Use is %u. Fields after the mask are not read.
 */
static int parse_route4_line(portmap_reader_t *line, uint8_t gw[16], uint32_t *metric,
                             char ifname[PLAT_IFNAME_MAX]) {
  uint32_t dest, gateway, flags, refcnt, use, mask;
  if (field_ifname(line, ifname) != 0 || field_hex32(line, 8, &dest) != 0 ||
      field_hex32(line, 8, &gateway) != 0 || field_hex32(line, 0, &flags) != 0 ||
      field_dec32(line, 1, &refcnt) != 0 || field_dec32(line, 0, &use) != 0 ||
      field_dec32(line, 1, metric) != 0 || field_hex32(line, 8, &mask) != 0)
    return -1;
  if (dest != 0 || mask != 0 || gateway == 0)
    return -1;
  if ((flags & (PLAT_RTF_UP | PLAT_RTF_GATEWAY)) != (PLAT_RTF_UP | PLAT_RTF_GATEWAY) ||
      (flags & PLAT_RTF_REJECT))
    return -1;
  uint8_t gw4[4];
  memcpy(gw4, &gateway, 4);
  portmap_net_v4_mapped(gw, gw4);
  return 0;
}

/*
 * /proc/net/ipv6_route, no header:
 *   dest(32 hex) dest_plen(2 hex) src(32 hex) src_plen(2 hex)
 *   next_hop(32 hex) metric refcnt use flags (8 hex each) iface
 */
static int parse_route6_line(portmap_reader_t *line, uint8_t gw[16], uint32_t *metric,
                             char ifname[PLAT_IFNAME_MAX]) {
  uint8_t dest[16], src[16];
  uint32_t dest_plen, src_plen, refcnt, use, flags;
  if (field_hex128(line, dest) != 0 || field_hex32(line, 2, &dest_plen) != 0 ||
      field_hex128(line, src) != 0 || field_hex32(line, 2, &src_plen) != 0 ||
      field_hex128(line, gw) != 0 || field_hex32(line, 8, metric) != 0 ||
      field_hex32(line, 8, &refcnt) != 0 || field_hex32(line, 8, &use) != 0 ||
      field_hex32(line, 8, &flags) != 0 || field_ifname(line, ifname) != 0)
    return -1;
  if (dest_plen != 0 || !portmap_net_all_zero(dest, 16) || portmap_net_all_zero(gw, 16))
    return -1;
  if (!(flags & PLAT_RTF_UP) || (flags & PLAT_RTF_REJECT))
    return -1;
  return 0;
}

typedef int (*route_line_fn)(portmap_reader_t *line, uint8_t gw[16], uint32_t *metric,
                             char ifname[PLAT_IFNAME_MAX]);

/* The default route of lowest metric among the lines parse accepts; the
 * first of equal metrics. */
static int best_route(const char *text, size_t len, route_line_fn parse, uint8_t out[16],
                      char ifname_out[16]) {
  if (text == NULL || out == NULL)
    return -1;
  portmap_reader_t all;
  portmap_rd_init(&all, text, len);
  int found = 0;
  uint32_t best_metric = 0;
  uint8_t best_gw[16] = {0};
  char best_if[PLAT_IFNAME_MAX] = "";
  while (portmap_rd_left(&all) > 0) {
    const char *s;
    size_t n;
    /* not portmap_rd_line(): the kernel ends lines with LF alone */
    (void)portmap_rd_until(&all, '\n', &s, &n);
    portmap_reader_t line;
    portmap_rd_init(&line, s, n);
    uint8_t gw[16];
    uint32_t metric;
    char ifname[PLAT_IFNAME_MAX];
    if (parse(&line, gw, &metric, ifname) != 0)
      continue;
    if (!found || metric < best_metric) {
      found = 1;
      best_metric = metric;
      memcpy(best_gw, gw, 16);
      memcpy(best_if, ifname, sizeof best_if);
    }
  }
  if (!found)
    return -1;
  memcpy(out, best_gw, 16);
  if (ifname_out != NULL)
    memcpy(ifname_out, best_if, PLAT_IFNAME_MAX);
  return 0;
}

int portmap_plat_parse_route4(const char *text, size_t len, uint8_t out[16], char ifname_out[16]) {
  return best_route(text, len, parse_route4_line, out, ifname_out);
}

int portmap_plat_parse_route6(const char *text, size_t len, uint8_t out[16], char ifname_out[16]) {
  return best_route(text, len, parse_route6_line, out, ifname_out);
}

/* Read at most cap octets of a file; a cut-off last line is dropped. */
static ssize_t read_proc(const char *path, char *buf, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  size_t len = 0;
  ssize_t ret = -1;
  while (len < cap) {
    ssize_t r = read(fd, buf + len, cap - len);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      goto done;
    }
    if (r == 0)
      break;
    len += (size_t)r;
  }
  if (len == cap) {
    const char *nl = NULL;
    for (size_t i = len; i > 0; i--)
      if (buf[i - 1] == '\n') {
        nl = &buf[i - 1];
        break;
      }
    len = nl ? (size_t)(nl - buf) + 1 : 0;
  }
  ret = (ssize_t)len;
done:
  close(fd);
  return ret;
}

int portmap_plat_default_gateway(const portmap_alloc_t *alloc, int ipv6, uint8_t out[16],
                                 unsigned *scope) {
  int r = portmap_plat_rtnl_gateway(alloc, ipv6, out, scope);
  if (r != PORTMAP_PLAT_RTNL_FAILED)
    return r == 0 ? 0 : -1;
  return portmap_plat_default_gateway_proc(alloc, ipv6, out, scope);
}

int portmap_plat_default_gateway_proc(const portmap_alloc_t *alloc, int ipv6, uint8_t out[16],
                                      unsigned *scope) {
  /* On the heap: too big for the stack of a small thread. */
  const size_t cap = PLAT_PROC_MAX;
  char *buf = NULL;
  int ret = -1;
  char ifname[PLAT_IFNAME_MAX];
  uint8_t gw[16];
  if (out == NULL)
    return -1;
  buf = portmap_alloc_malloc(alloc, cap);
  if (buf == NULL)
    return -1;
  ssize_t len = read_proc(ipv6 ? "/proc/net/ipv6_route" : "/proc/net/route", buf, cap);
  if (len < 0)
    goto done;
  if (ipv6)
    ret = portmap_plat_parse_route6(buf, (size_t)len, gw, ifname);
  else
    ret = portmap_plat_parse_route4(buf, (size_t)len, gw, ifname);
  if (ret != 0)
    goto done;
  memcpy(out, gw, 16);
  if (scope != NULL)
    *scope = if_nametoindex(ifname);
done:
  portmap_alloc_free(alloc, buf);
  return ret;
}

int portmap_plat_local_address(const uint8_t dest[16], unsigned scope, uint8_t out[16]) {
  struct sockaddr_storage ss;
  struct sockaddr_storage local;
  socklen_t sslen, locallen = sizeof local;
  int ret = -1;
  int fd = -1;
  int saved;
  if (dest == NULL || out == NULL) {
    errno = EINVAL;
    return -1;
  }
  sslen = portmap_net_to_sockaddr(dest, 5351, needs_scope(dest) ? scope : 0, &ss);
  fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  /* A UDP connect() only picks a route and source address: nothing is sent. */
  if (connect(fd, (const struct sockaddr *)&ss, sslen) != 0)
    goto done;
  memset(&local, 0, sizeof local);
  if (getsockname(fd, (struct sockaddr *)&local, &locallen) != 0)
    goto done;
  if (portmap_net_from_sockaddr((struct sockaddr *)&local, locallen, out, NULL) != 0) {
    errno = EAFNOSUPPORT;
    goto done;
  }
  ret = 0;
done:
  saved = errno;
  close(fd);
  errno = saved;
  return ret;
}

/* ---------- sockets ---------- */

int portmap_plat_socket(int ipv6, int stream) {
  return socket(ipv6 ? AF_INET6 : AF_INET,
                (stream ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

int portmap_plat_udp_icmp_socket(int ipv6) {
  int fd = portmap_plat_socket(ipv6, 0);
  if (fd < 0)
    return -1;
  int one = 1;
  /* ICMP port unreachable reaches an unconnected socket only with RECVERR (Q21) */
  if (ipv6)
    (void)setsockopt(fd, IPPROTO_IPV6, IPV6_RECVERR, &one, sizeof one);
  else
    (void)setsockopt(fd, IPPROTO_IP, IP_RECVERR, &one, sizeof one);
  return fd;
}

void portmap_plat_rcvbuf(int fd, int bytes) {
  int now = 0;
  socklen_t len = sizeof now;
  /* Linux reports twice what was asked (its bookkeeping): compare halves */
  if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &now, &len) == 0 && now / 2 >= bytes)
    return;
  (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
}

int portmap_plat_icmp_read(int fd) {
  uint8_t data[64];
  char ctrl[512];
  struct sockaddr_storage ss;
  struct iovec iov = {data, sizeof data};
  struct msghdr mh;
  memset(&mh, 0, sizeof mh);
  mh.msg_name = &ss;
  mh.msg_namelen = sizeof ss;
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = ctrl;
  mh.msg_controllen = sizeof ctrl;
  ssize_t n;
  do
    n = recvmsg(fd, &mh, MSG_ERRQUEUE | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return -1;
  int refused = 0;
  for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
    if (!((cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_RECVERR) ||
          (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_RECVERR)))
      continue;
    struct sock_extended_err ee;
    memcpy(&ee, CMSG_DATA(cm), sizeof ee);
    if (ee.ee_errno == ECONNREFUSED)
      refused = 1;
  }
  return refused;
}

int portmap_plat_recv(int fd, int flags, void *buf, size_t cap, size_t *len, uint8_t from[16],
                      uint16_t *port, int *from_ok) {
  int sys = MSG_DONTWAIT;
  if (flags & PORTMAP_PLAT_RECV_PEEK)
    sys |= MSG_PEEK;
  if (flags & PORTMAP_PLAT_RECV_TRUNC)
    sys |= MSG_TRUNC; /* Linux: recvfrom() then returns the datagram's real length */
  for (int tries = 0; tries < PLAT_RECV_TRIES; tries++) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    ssize_t n = recvfrom(fd, buf, cap, sys, (struct sockaddr *)&ss, &sl);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return errno == ECONNREFUSED ? PORTMAP_PLAT_RECV_REFUSED : PORTMAP_PLAT_RECV_NONE;
    }
    *len = (size_t)n;
    *port = 0;
    *from_ok = portmap_net_from_sockaddr((struct sockaddr *)&ss, sl, from, port) == 0;
    if (!*from_ok)
      memset(from, 0, 16);
    return PORTMAP_PLAT_RECV_OK;
  }
  return PORTMAP_PLAT_RECV_NONE;
}

int portmap_plat_recv_many(int fd, portmap_plat_dgram_t *d, size_t n, size_t *got) {
  struct mmsghdr mm[PORTMAP_PLAT_RECV_BATCH];
  struct iovec iov[PORTMAP_PLAT_RECV_BATCH];
  struct sockaddr_storage ss[PORTMAP_PLAT_RECV_BATCH];
  *got = 0;
  if (n > PORTMAP_PLAT_RECV_BATCH)
    n = PORTMAP_PLAT_RECV_BATCH;
  if (n == 0)
    return PORTMAP_PLAT_RECV_NONE;
  for (size_t i = 0; i < n; i++) { /* every field the kernel reads, and no more */
    iov[i].iov_base = d[i].buf;
    iov[i].iov_len = d[i].cap;
    struct msghdr *h = &mm[i].msg_hdr;
    h->msg_name = &ss[i];
    h->msg_namelen = sizeof ss[i];
    h->msg_iov = &iov[i];
    h->msg_iovlen = 1;
    h->msg_control = NULL;
    h->msg_controllen = 0;
    h->msg_flags = 0;
  }
  int r = -1;
  for (int tries = 0; tries < PLAT_RECV_TRIES; tries++) {
    /* MSG_TRUNC: each msg_len is the datagram's real length (Linux) */
    r = recvmmsg(fd, mm, (unsigned)n, MSG_DONTWAIT | MSG_TRUNC, NULL);
    if (r >= 0 || errno != EINTR)
      break;
  }
  if (r < 0) {
    if (errno == ECONNREFUSED)
      return PORTMAP_PLAT_RECV_REFUSED;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
      return PORTMAP_PLAT_RECV_NONE;
    return PORTMAP_PLAT_RECV_ERROR;
  }
  for (size_t i = 0; i < (size_t)r; i++) {
    d[i].len = mm[i].msg_len;
    d[i].port = 0;
    d[i].from_ok = portmap_net_from_sockaddr((struct sockaddr *)&ss[i], mm[i].msg_hdr.msg_namelen,
                                             d[i].from, &d[i].port) == 0;
    if (!d[i].from_ok)
      memset(d[i].from, 0, 16);
  }
  *got = (size_t)r;
  return r > 0 ? PORTMAP_PLAT_RECV_OK : PORTMAP_PLAT_RECV_NONE;
}

size_t portmap_plat_ipv6_addresses(unsigned ifindex, uint8_t (*out)[16], size_t cap) {
  struct ifaddrs *list = NULL;
  size_t n = 0;
  if (out == NULL || cap == 0 || ifindex == 0 || getifaddrs(&list) != 0)
    return 0;
  for (struct ifaddrs *i = list; i != NULL && n < cap; i = i->ifa_next) {
    if (i->ifa_addr == NULL || i->ifa_addr->sa_family != AF_INET6 || i->ifa_name == NULL ||
        if_nametoindex(i->ifa_name) != ifindex)
      continue;
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)i->ifa_addr;
    memcpy(out[n++], &sin6->sin6_addr, 16);
  }
  freeifaddrs(list);
  return n;
}

/* ---------- time and randomness ---------- */

/* GRND_NONBLOCK: early in boot, before the kernel's pool is initialised,
 * getrandom() would block, and the scheduler's thread draws random numbers
 * for every retransmission. It fails at once instead: -1 with errno EAGAIN
 * (a mapping then fails with PORTMAP_ERR_SYSTEM, a jitter is not drawn). */
int portmap_plat_random(void *buf, size_t len) {
  uint8_t *p = buf;
  while (len > 0) {
    ssize_t n = getrandom(p, len, GRND_NONBLOCK);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

uint64_t portmap_plat_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---------- wake mechanism ---------- */

int portmap_plat_wake_open(int fds[2]) {
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
    fds[0] = fds[1] = -1;
    return -1;
  }
  return 0;
}

void portmap_plat_wake_signal(int wfd) {
  if (wfd < 0)
    return;
  char b = 1;
  ssize_t n;
  do
    n = write(wfd, &b, 1);
  while (n < 0 && errno == EINTR);
  /* EAGAIN: the pipe is full, so already readable */
}

void portmap_plat_wake_drain(int rfd) {
  if (rfd < 0)
    return;
  char buf[64];
  for (;;) {
    ssize_t n = read(rfd, buf, sizeof buf);
    /* a short read emptied the pipe: no second read() to hear EAGAIN (a
     * signal written after it stays, and wakes the next poll) */
    if (n == (ssize_t)sizeof buf || (n < 0 && errno == EINTR))
      continue;
    break;
  }
}

void portmap_plat_wake_close(int fds[2]) {
  if (fds == NULL)
    return;
  for (int i = 0; i < 2; i++) {
    if (fds[i] >= 0)
      close(fds[i]);
    fds[i] = -1;
  }
}

/* ---------- fd identity ---------- */

uint64_t portmap_plat_fd_identity(int fd) {
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0)
    return 0;
  return ((uint64_t)st.st_dev << 40) ^ (uint64_t)st.st_ino ^ 1u;
}

void portmap_plat_close(int fd) {
  if (fd >= 0)
    (void)close(fd);
}

int portmap_plat_dup(int fd) {
  return fd < 0 ? -1 : fcntl(fd, F_DUPFD_CLOEXEC, 0);
}
