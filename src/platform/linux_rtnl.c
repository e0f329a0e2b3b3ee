/* SPDX-License-Identifier: MIT */
/*
 * The default gateway from the kernel's routing table over rtnetlink (Linux):
 * one RTM_GETROUTE dump of a family on a NETLINK_ROUTE socket. Against the
 * /proc/net text tables it saves opening a procfs file, the kernel's printing
 * and our parsing of text, and the if_nametoindex() (a socket and an ioctl)
 * for the interface: a route carries its interface index. linux.c falls
 * back to the /proc tables when netlink cannot be used (a sandbox that
 * forbids the socket, an error answer).
 *
 * What the kernel sends is parsed as untrusted octets like everything else:
 * every header and attribute is copied out with its length checked against
 * what is left, and a datagram that does not add up ends the dump as an
 * error. No request waits: the kernel produces each part of a dump inside
 * the recvfrom() that asks for it, so MSG_DONTWAIT never sees EAGAIN from a
 * working kernel, and an EAGAIN counts as a failure.
 */
#include "platform/platform.h"
#include "util/netutil.h"

#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RTNL_BUF 32768         /* one datagram of a dump (the kernel sizes them by ours) */
#define RTNL_MAX_DATAGRAMS 256 /* bound on one dump: 8 MiB of routes */
#define NLHDR 16u              /* struct nlmsghdr: len, type, flags, seq, pid */
#define RTHDR 12u              /* struct rtmsg: 8 octets, then u32 rtm_flags */
#define ATTRHDR 4u             /* struct rtattr: u16 len, u16 type */
#define NHHDR 8u               /* struct rtnexthop: u16 len, u8 flags, u8 hops, int ifindex */

static size_t align4(size_t n) {
  return (n + 3u) & ~(size_t)3u;
}

static uint16_t get16(const uint8_t *p) {
  uint16_t v;
  memcpy(&v, p, sizeof v); /* host order: netlink is not a wire format */
  return v;
}

static uint32_t get32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, sizeof v);
  return v;
}

/* The gateway attribute's value, when it is one of the family's size and
 * not all zero; 0 otherwise. */
static int take_gateway(const uint8_t *v, size_t n, int ipv6, uint8_t gw[16]) {
  if (n != (ipv6 ? 16u : 4u) || portmap_net_all_zero(v, n))
    return 0;
  if (ipv6)
    memcpy(gw, v, 16);
  else
    portmap_net_v4_mapped(gw, v);
  return 1;
}

/* RTA_MULTIPATH: the first next hop with a gateway (the /proc table shows
 * a multipath route by its first next hop too). */
static int first_hop(const uint8_t *p, size_t n, int ipv6, uint8_t gw[16], unsigned *ifindex) {
  while (n >= NHHDR) {
    size_t len = get16(p);
    if (len < NHHDR || len > n)
      return 0;
    const uint8_t *a = p + NHHDR;
    size_t left = len - NHHDR;
    while (left >= ATTRHDR) {
      size_t alen = get16(a);
      if (alen < ATTRHDR || alen > left)
        break;
      if (get16(a + 2) == RTA_GATEWAY && take_gateway(a + ATTRHDR, alen - ATTRHDR, ipv6, gw)) {
        *ifindex = get32(p + 4);
        return 1;
      }
      size_t step = align4(alen);
      if (step >= left)
        break;
      a += step;
      left -= step;
    }
    size_t step = align4(len);
    if (step >= n)
      break;
    p += step;
    n -= step;
  }
  return 0;
}

/* One RTM_NEWROUTE message's payload (after the netlink header): a default
 * route of the family in the main table, unicast, with a next hop. */
static void route_message(const uint8_t *p, size_t n, int ipv6, portmap_plat_route_t *best) {
  if (n < RTHDR)
    return;
  uint8_t family = p[0], dst_len = p[1], table8 = p[4], type = p[7];
  if (family != (ipv6 ? AF_INET6 : AF_INET) || dst_len != 0 || type != RTN_UNICAST)
    return;
  uint32_t table = table8, metric = 0;
  unsigned ifindex = 0;
  uint8_t gw[16];
  int have_gw = 0;
  const uint8_t *a = p + RTHDR; /* RTHDR is a multiple of 4: no padding before */
  size_t left = n - RTHDR;
  while (left >= ATTRHDR) {
    size_t alen = get16(a);
    if (alen < ATTRHDR || alen > left)
      return; /* a route that does not add up is not taken */
    const uint8_t *v = a + ATTRHDR;
    size_t vlen = alen - ATTRHDR;
    switch (get16(a + 2) & NLA_TYPE_MASK) {
    case RTA_TABLE:
      if (vlen == 4)
        table = get32(v);
      break;
    case RTA_PRIORITY:
      if (vlen == 4)
        metric = get32(v);
      break;
    case RTA_OIF:
      if (vlen == 4)
        ifindex = get32(v);
      break;
    case RTA_GATEWAY:
      have_gw = take_gateway(v, vlen, ipv6, gw);
      break;
    case RTA_MULTIPATH:
      if (!have_gw)
        have_gw = first_hop(v, vlen, ipv6, gw, &ifindex);
      break;
    default:
      break;
    }
    size_t step = align4(alen);
    if (step >= left)
      break;
    a += step;
    left -= step;
  }
  /* the main table, as /proc/net/route shows it; policy-routing tables (a
   * VPN's) are not the LAN's gateway */
  if (!have_gw || table != RT_TABLE_MAIN)
    return;
  if (!best->found || metric < best->metric) {
    best->found = 1;
    best->metric = metric;
    memcpy(best->gw, gw, 16);
    best->ifindex = ifindex;
  }
}

int portmap_plat_parse_rtnl(const uint8_t *buf, size_t len, int ipv6, uint32_t seq,
                            portmap_plat_route_t *best) {
  if (buf == NULL || best == NULL)
    return -1;
  size_t off = 0;
  while (len - off >= NLHDR) {
    const uint8_t *h = buf + off;
    size_t mlen = get32(h);
    if (mlen < NLHDR || mlen > len - off)
      return -1;
    uint16_t type = get16(h + 4);
    if (get32(h + 8) == seq) { /* another request's answer is not ours */
      if (type == NLMSG_DONE)
        return 1;
      if (type == NLMSG_ERROR)
        return -1;
      if (type == RTM_NEWROUTE)
        route_message(h + NLHDR, mlen - NLHDR, ipv6, best);
    }
    size_t step = align4(mlen);
    if (step >= len - off)
      break;
    off += step;
  }
  return 0;
}

int portmap_plat_rtnl_gateway(const portmap_alloc_t *alloc, int ipv6, uint8_t out[16],
                              unsigned *scope) {
  if (out == NULL)
    return PORTMAP_PLAT_RTNL_NONE;
  uint8_t *buf = portmap_alloc_malloc(alloc, RTNL_BUF);
  if (buf == NULL)
    return PORTMAP_PLAT_RTNL_NONE; /* out of memory: /proc would need a buffer too */
  int ret = PORTMAP_PLAT_RTNL_FAILED;
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0)
    goto done;
  /* the request: a netlink header and a struct rtmsg naming the family */
  uint32_t seq = 1;
  uint8_t req[NLHDR + RTHDR];
  memset(req, 0, sizeof req);
  uint32_t req_len = sizeof req;
  uint16_t req_type = RTM_GETROUTE, req_flags = NLM_F_REQUEST | NLM_F_DUMP;
  memcpy(req, &req_len, 4);
  memcpy(req + 4, &req_type, 2);
  memcpy(req + 6, &req_flags, 2);
  memcpy(req + 8, &seq, 4);
  req[NLHDR] = ipv6 ? AF_INET6 : AF_INET;
  struct sockaddr_nl kernel;
  memset(&kernel, 0, sizeof kernel);
  kernel.nl_family = AF_NETLINK;
  ssize_t sent;
  do
    sent = sendto(fd, req, sizeof req, 0, (const struct sockaddr *)&kernel, sizeof kernel);
  while (sent < 0 && errno == EINTR);
  if (sent != (ssize_t)sizeof req)
    goto done;
  portmap_plat_route_t best;
  memset(&best, 0, sizeof best);
  for (int i = 0; i < RTNL_MAX_DATAGRAMS; i++) {
    struct sockaddr_nl from;
    socklen_t fl = sizeof from;
    ssize_t n =
        recvfrom(fd, buf, RTNL_BUF, MSG_DONTWAIT | MSG_TRUNC, (struct sockaddr *)&from, &fl);
    if (n < 0 && errno == EINTR)
      continue; /* counted: a signal storm cannot keep this loop going */
    if (n <= 0 || (size_t)n > RTNL_BUF)
      break; /* nothing, or cut short: the dump cannot be trusted */
    if (fl < sizeof from || from.nl_family != AF_NETLINK || from.nl_pid != 0)
      continue; /* not the kernel's */
    int r = portmap_plat_parse_rtnl(buf, (size_t)n, ipv6, seq, &best);
    if (r < 0)
      break;
    if (r == 1) {
      ret = PORTMAP_PLAT_RTNL_NONE;
      if (best.found) {
        memcpy(out, best.gw, 16);
        if (scope != NULL)
          *scope = best.ifindex;
        ret = 0;
      }
      break;
    }
  }
done:
  portmap_alloc_free(alloc, buf);
  if (fd >= 0)
    close(fd);
  return ret;
}
