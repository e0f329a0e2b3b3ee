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
 * What the kernel sends is parsed as untrusted octets like everything else,
 * through the bounded reader (util/reader.h): every header and attribute is
 * read with its length checked against what is left, and a datagram that
 * does not add up ends the dump as an error. No request waits: the kernel produces each part of a
 * dump inside the recvfrom() that asks for it, so MSG_DONTWAIT never sees EAGAIN from a working
 * kernel, and an EAGAIN counts as a failure.
 */
#include "platform/platform.h"
#include "util/netutil.h"
#include "util/reader.h"

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

/* The padding after an item of item_len octets that aligns the next one to
 * 4; what there is of it at the end. */
static void skip_pad(portmap_reader_t *r, size_t item_len) {
  size_t pad = align4(item_len) - item_len;
  size_t left = portmap_rd_left(r);
  portmap_rd_skip(r, pad < left ? pad : left);
}

/* The next attribute (struct rtattr) of a message or of a nested block: 1
 * with its type and a reader over its value, 0 when no header is left, -1
 * when its length does not add up. */
static int next_attr(portmap_reader_t *r, uint16_t *type, portmap_reader_t *value) {
  if (portmap_rd_left(r) < ATTRHDR)
    return 0;
  size_t len = portmap_rd_ne16(r);
  *type = portmap_rd_ne16(r);
  if (len < ATTRHDR || len - ATTRHDR > portmap_rd_left(r))
    return -1;
  *value = portmap_rd_sub(r, len - ATTRHDR);
  skip_pad(r, len);
  return 1;
}

/* The gateway attribute's value, when it is one of the family's size and
 * not all zero; 0 otherwise. */
static int take_gateway(portmap_reader_t *v, int ipv6, uint8_t gw[16]) {
  size_t n = portmap_rd_left(v);
  const uint8_t *a = portmap_rd_take(v, n);
  if (a == NULL || n != (ipv6 ? 16u : 4u) || portmap_net_all_zero(a, n))
    return 0;
  if (ipv6)
    memcpy(gw, a, 16);
  else
    portmap_net_v4_mapped(gw, a);
  return 1;
}

/* RTA_MULTIPATH: the first next hop (struct rtnexthop and its attributes)
 * with a gateway (the /proc table shows a multipath route by its first
 * next hop too). */
static int first_hop(portmap_reader_t *r, int ipv6, uint8_t gw[16], unsigned *ifindex) {
  while (portmap_rd_left(r) >= NHHDR) {
    size_t len = portmap_rd_ne16(r);
    portmap_rd_skip(r, 2); /* flags, hops */
    uint32_t hop_if = portmap_rd_ne32(r);
    if (len < NHHDR || len - NHHDR > portmap_rd_left(r))
      return 0;
    portmap_reader_t attrs = portmap_rd_sub(r, len - NHHDR);
    skip_pad(r, len);
    uint16_t type;
    portmap_reader_t v;
    while (next_attr(&attrs, &type, &v) == 1) {
      if (type == RTA_GATEWAY && take_gateway(&v, ipv6, gw)) {
        *ifindex = hop_if;
        return 1;
      }
    }
  }
  return 0;
}

/* One RTM_NEWROUTE message's payload (after the netlink header): a default
 * route of the family in the main table, unicast, with a next hop. */
static void route_message(portmap_reader_t *r, int ipv6, portmap_plat_route_t *best) {
  if (portmap_rd_left(r) < RTHDR)
    return;
  uint8_t family = portmap_rd_u8(r), dst_len = portmap_rd_u8(r);
  portmap_rd_skip(r, 2); /* src_len, tos */
  uint32_t table = portmap_rd_u8(r);
  portmap_rd_skip(r, 2); /* protocol, scope */
  uint8_t type = portmap_rd_u8(r);
  portmap_rd_skip(r, 4); /* rtm_flags */
  if (family != (ipv6 ? AF_INET6 : AF_INET) || dst_len != 0 || type != RTN_UNICAST)
    return;
  uint32_t metric = 0;
  unsigned ifindex = 0;
  uint8_t gw[16];
  int have_gw = 0, more;
  uint16_t atype;
  portmap_reader_t v;
  while ((more = next_attr(r, &atype, &v)) == 1) {
    switch (atype & NLA_TYPE_MASK) {
    case RTA_TABLE:
      if (portmap_rd_left(&v) == 4)
        table = portmap_rd_ne32(&v);
      break;
    case RTA_PRIORITY:
      if (portmap_rd_left(&v) == 4)
        metric = portmap_rd_ne32(&v);
      break;
    case RTA_OIF:
      if (portmap_rd_left(&v) == 4)
        ifindex = portmap_rd_ne32(&v);
      break;
    case RTA_GATEWAY:
      have_gw = take_gateway(&v, ipv6, gw);
      break;
    case RTA_MULTIPATH:
      if (!have_gw)
        have_gw = first_hop(&v, ipv6, gw, &ifindex);
      break;
    default:
      break;
    }
  }
  /* a route that does not add up is not taken; nor one of another table:
   * the main table, as /proc/net/route shows it (policy-routing tables, a
   * VPN's, are not the LAN's gateway) */
  if (more < 0 || !have_gw || table != RT_TABLE_MAIN)
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
  portmap_reader_t all;
  portmap_rd_init(&all, buf, len);
  while (portmap_rd_left(&all) >= NLHDR) {
    size_t mlen = portmap_rd_ne32(&all);
    uint16_t type = portmap_rd_ne16(&all);
    portmap_rd_skip(&all, 2); /* flags */
    uint32_t mseq = portmap_rd_ne32(&all);
    portmap_rd_skip(&all, 4); /* the sender's port id */
    if (mlen < NLHDR || mlen - NLHDR > portmap_rd_left(&all))
      return -1;
    portmap_reader_t payload = portmap_rd_sub(&all, mlen - NLHDR);
    skip_pad(&all, mlen);
    if (mseq != seq)
      continue; /* another request's answer is not ours */
    if (type == NLMSG_DONE)
      return 1;
    if (type == NLMSG_ERROR)
      return -1;
    if (type == RTM_NEWROUTE)
      route_message(&payload, ipv6, best);
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
    sent =
        sendto(fd, req, sizeof req, MSG_DONTWAIT, (const struct sockaddr *)&kernel, sizeof kernel);
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
