/*
 * Network helpers (Linux): default gateway from /proc/net/route and
 * /proc/net/ipv6_route, local address by connect()+getsockname()
 * (checklist A4), sockaddr conversion, classification, and the public
 * portmap_addr_parse() / portmap_addr_format().
 *
 * The route parsers take untrusted text of any length, NUL terminated or
 * not: every field is read through a bounded cursor and any line that does
 * not look exactly like the kernel's output is skipped.
 */
#include "util/netutil.h"

#include <portmap/portmap.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Flags from <linux/route.h>, identical for IPv4 and IPv6 routes. */
#define NET_RTF_UP 0x0001u
#define NET_RTF_GATEWAY 0x0002u
#define NET_RTF_REJECT 0x0200u

#define NET_IFNAME_MAX 16        /* IFNAMSIZ, NUL included */
#define NET_PROC_MAX (64 * 1024) /* bound on what we read of a /proc file */

/* ---- bounded line/field cursor ---------------------------------------- */

typedef struct cursor {
  const char *p;
  const char *end;
} cursor_t;

static int is_blank(char c) {
  return c == ' ' || c == '\t';
}

/* Next line of text (without its '\n'); 0 at the end. */
static int next_line(cursor_t *text, cursor_t *line) {
  if (text->p >= text->end)
    return 0;
  const char *nl = memchr(text->p, '\n', (size_t)(text->end - text->p));
  line->p = text->p;
  line->end = nl ? nl : text->end;
  text->p = nl ? nl + 1 : text->end;
  return 1;
}

/* Next blank-separated field of a line; 0 when there is none. */
static int next_field(cursor_t *line, const char **start, size_t *len) {
  while (line->p < line->end && is_blank(*line->p))
    line->p++;
  if (line->p >= line->end)
    return 0;
  *start = line->p;
  while (line->p < line->end && !is_blank(*line->p))
    line->p++;
  *len = (size_t)(line->p - *start);
  return 1;
}

static int hex_digit(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* 1 to 8 hex digits (exactly `exact` when it is not 0) into *out. */
static int parse_hex32(const char *s, size_t len, size_t exact, uint32_t *out) {
  if (len == 0 || len > 8 || (exact && len != exact))
    return -1;
  uint32_t v = 0;
  for (size_t i = 0; i < len; i++) {
    int d = hex_digit(s[i]);
    if (d < 0)
      return -1;
    v = (v << 4) | (uint32_t)d;
  }
  *out = v;
  return 0;
}

/* Decimal, at most UINT32_MAX; with allow_neg, a '-' is accepted and the
 * value taken modulo 2^32, because the kernel prints some u32 fields (the
 * route metric) with %d. */
static int parse_dec32(const char *s, size_t len, int allow_neg, uint32_t *out) {
  int neg = 0;
  if (len > 0 && s[0] == '-' && allow_neg) {
    neg = 1;
    s++;
    len--;
  }
  if (len == 0 || len > 10)
    return -1;
  uint64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (uint64_t)(s[i] - '0');
  }
  if (v > (neg ? (uint64_t)INT32_MAX + 1 : UINT32_MAX))
    return -1;
  *out = neg ? (uint32_t)(UINT32_C(0) - (uint32_t)v) : (uint32_t)v;
  return 0;
}

/* Exactly 32 hex digits, printed in network order. */
static int parse_hex128(const char *s, size_t len, uint8_t out[16]) {
  if (len != 32)
    return -1;
  for (size_t i = 0; i < 16; i++) {
    int hi = hex_digit(s[2 * i]);
    int lo = hex_digit(s[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return -1;
    out[i] = (uint8_t)((hi << 4) | lo);
  }
  return 0;
}

/* An interface name: 1-15 printable, non-blank octets. */
static int parse_ifname(const char *s, size_t len, char out[NET_IFNAME_MAX]) {
  if (len == 0 || len >= NET_IFNAME_MAX)
    return -1;
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
      return -1;
  memcpy(out, s, len);
  out[len] = '\0';
  return 0;
}

static int all_zero(const uint8_t *b, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (b[i] != 0)
      return 0;
  return 1;
}

static void v4_mapped(uint8_t out[16], const uint8_t v4[4]) {
  memset(out, 0, 10);
  out[10] = 0xff;
  out[11] = 0xff;
  memcpy(out + 12, v4, 4);
}

/* ---- route tables ------------------------------------------------------ */

/*
 * /proc/net/route, one route a line after a header line:
 *   Iface Destination Gateway Flags RefCnt Use Metric Mask MTU Window IRTT
 *   eth0  00000000    0100A8C0 0003 0      0   100    00000000 0 0 0
 * Addresses and mask are the in-memory __be32 printed with %08X, so on a
 * little-endian host "0100A8C0" is 192.168.0.1: copying the parsed host
 * integer's bytes gives network order on any host. Flags is %04X, RefCnt
 * and Metric are %d, Use is %u.
 */
static int parse_route4_line(cursor_t line, uint8_t gw[16], uint32_t *metric,
                             char ifname[NET_IFNAME_MAX]) {
  const char *f[8];
  size_t n[8];
  for (size_t i = 0; i < 8; i++)
    if (!next_field(&line, &f[i], &n[i]))
      return -1;
  uint32_t dest, gateway, flags, refcnt, use, mask;
  if (parse_ifname(f[0], n[0], ifname) != 0 || parse_hex32(f[1], n[1], 8, &dest) != 0 ||
      parse_hex32(f[2], n[2], 8, &gateway) != 0 || parse_hex32(f[3], n[3], 0, &flags) != 0 ||
      parse_dec32(f[4], n[4], 1, &refcnt) != 0 || parse_dec32(f[5], n[5], 0, &use) != 0 ||
      parse_dec32(f[6], n[6], 1, metric) != 0 || parse_hex32(f[7], n[7], 8, &mask) != 0)
    return -1;
  if (dest != 0 || mask != 0 || gateway == 0)
    return -1;
  if ((flags & (NET_RTF_UP | NET_RTF_GATEWAY)) != (NET_RTF_UP | NET_RTF_GATEWAY) ||
      (flags & NET_RTF_REJECT))
    return -1;
  uint8_t gw4[4];
  memcpy(gw4, &gateway, 4);
  v4_mapped(gw, gw4);
  return 0;
}

typedef int (*route_line_fn)(cursor_t line, uint8_t gw[16], uint32_t *metric,
                             char ifname[NET_IFNAME_MAX]);

/* The default route of lowest metric among the lines parse accepts. */
static int best_route(const char *text, size_t len, route_line_fn parse, uint8_t out[16],
                      char ifname_out[16]) {
  if (text == NULL || out == NULL)
    return -1;
  cursor_t all = {text, text + len}, line;
  int found = 0;
  uint32_t best_metric = 0;
  uint8_t best_gw[16] = {0};
  char best_if[NET_IFNAME_MAX] = "";
  while (next_line(&all, &line)) {
    uint8_t gw[16];
    uint32_t metric;
    char ifname[NET_IFNAME_MAX];
    if (parse(line, gw, &metric, ifname) != 0)
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
    memcpy(ifname_out, best_if, NET_IFNAME_MAX);
  return 0;
}

int portmap_net_parse_route4(const char *text, size_t len, uint8_t out[16], char ifname_out[16]) {
  return best_route(text, len, parse_route4_line, out, ifname_out);
}

/*
 * /proc/net/ipv6_route, no header:
 *   dest(32 hex) dest_plen(2 hex) src(32 hex) src_plen(2 hex)
 *   next_hop(32 hex) metric refcnt use flags (8 hex each) iface
 */
static int parse_route6_line(cursor_t line, uint8_t gw[16], uint32_t *metric,
                             char ifname[NET_IFNAME_MAX]) {
  const char *f[10];
  size_t n[10];
  for (size_t i = 0; i < 10; i++)
    if (!next_field(&line, &f[i], &n[i]))
      return -1;
  uint8_t dest[16], src[16];
  uint32_t dest_plen, src_plen, refcnt, use, flags;
  if (parse_hex128(f[0], n[0], dest) != 0 || parse_hex32(f[1], n[1], 2, &dest_plen) != 0 ||
      parse_hex128(f[2], n[2], src) != 0 || parse_hex32(f[3], n[3], 2, &src_plen) != 0 ||
      parse_hex128(f[4], n[4], gw) != 0 || parse_hex32(f[5], n[5], 8, metric) != 0 ||
      parse_hex32(f[6], n[6], 8, &refcnt) != 0 || parse_hex32(f[7], n[7], 8, &use) != 0 ||
      parse_hex32(f[8], n[8], 8, &flags) != 0 || parse_ifname(f[9], n[9], ifname) != 0)
    return -1;
  if (dest_plen != 0 || !all_zero(dest, 16) || all_zero(gw, 16))
    return -1;
  if (!(flags & NET_RTF_UP) || (flags & NET_RTF_REJECT))
    return -1;
  return 0;
}

int portmap_net_parse_route6(const char *text, size_t len, uint8_t out[16], char ifname_out[16]) {
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

int portmap_net_default_gateway(int ipv6, uint8_t out[16], unsigned *ifindex) {
  /* On the heap: too big for the stack of a small thread. */
  const size_t cap = NET_PROC_MAX;
  char *buf = NULL;
  int ret = -1;
  char ifname[NET_IFNAME_MAX];
  uint8_t gw[16];
  if (out == NULL)
    return -1;
  buf = malloc(cap);
  if (buf == NULL)
    return -1;
  ssize_t len = read_proc(ipv6 ? "/proc/net/ipv6_route" : "/proc/net/route", buf, cap);
  if (len < 0)
    goto done;
  if (ipv6)
    ret = portmap_net_parse_route6(buf, (size_t)len, gw, ifname);
  else
    ret = portmap_net_parse_route4(buf, (size_t)len, gw, ifname);
  if (ret != 0)
    goto done;
  memcpy(out, gw, 16);
  if (ifindex != NULL)
    *ifindex = if_nametoindex(ifname);
done:
  free(buf);
  return ret;
}

/* ---- sockets ----------------------------------------------------------- */

/* fe80::/10, and link/interface-local multicast: need a scope id. */
static int needs_scope(const uint8_t a[16]) {
  if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
    return 1;
  return a[0] == 0xff && ((a[1] & 0x0f) == 0x01 || (a[1] & 0x0f) == 0x02);
}

int portmap_net_local_address(const uint8_t dest[16], unsigned ifindex, uint8_t out[16]) {
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
  sslen = portmap_net_to_sockaddr(dest, 5351, needs_scope(dest) ? ifindex : 0, &ss);
  fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  /* A UDP connect() only picks a route and source address: nothing is sent. */
  if (connect(fd, (const struct sockaddr *)&ss, sslen) != 0)
    goto done;
  memset(&local, 0, sizeof local);
  if (getsockname(fd, (struct sockaddr *)&local, &locallen) != 0)
    goto done;
  if (portmap_net_from_sockaddr((const struct sockaddr *)&local, locallen, out, NULL) != 0) {
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

socklen_t portmap_net_to_sockaddr(const uint8_t addr[16], uint16_t port, unsigned scope_id,
                                  struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof *ss);
  if (portmap_net_is_v4(addr)) {
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    memcpy(&sin->sin_addr, addr + 12, 4);
    return (socklen_t)sizeof *sin;
  }
  struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(port);
  memcpy(&sin6->sin6_addr, addr, 16);
  sin6->sin6_scope_id = scope_id;
  return (socklen_t)sizeof *sin6;
}

int portmap_net_recv(int fd, int flags, void *buf, size_t cap, size_t *len, uint8_t from[16],
                     uint16_t *port, int *from_ok) {
  for (int tries = 0; tries < 8; tries++) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    ssize_t n = recvfrom(fd, buf, cap, flags | MSG_DONTWAIT, (struct sockaddr *)&ss, &sl);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return errno == ECONNREFUSED ? PORTMAP_NET_RECV_REFUSED : PORTMAP_NET_RECV_NONE;
    }
    *len = (size_t)n;
    *port = 0;
    *from_ok = portmap_net_from_sockaddr((struct sockaddr *)&ss, sl, from, port) == 0;
    if (!*from_ok)
      memset(from, 0, 16);
    return PORTMAP_NET_RECV_OK;
  }
  return PORTMAP_NET_RECV_NONE;
}

int portmap_net_from_sockaddr(const struct sockaddr *sa, socklen_t len, uint8_t out[16],
                              uint16_t *port) {
  if (sa == NULL || out == NULL || len < (socklen_t)sizeof(sa_family_t))
    return -1;
  if (sa->sa_family == AF_INET) {
    struct sockaddr_in sin;
    if (len < (socklen_t)sizeof sin)
      return -1;
    memcpy(&sin, sa, sizeof sin);
    v4_mapped(out, (const uint8_t *)&sin.sin_addr);
    if (port != NULL)
      *port = ntohs(sin.sin_port);
    return 0;
  }
  if (sa->sa_family == AF_INET6) {
    struct sockaddr_in6 sin6;
    if (len < (socklen_t)sizeof sin6)
      return -1;
    memcpy(&sin6, sa, sizeof sin6);
    memcpy(out, &sin6.sin6_addr, 16);
    if (port != NULL)
      *port = ntohs(sin6.sin6_port);
    return 0;
  }
  return -1;
}

/* ---- classification ---------------------------------------------------- */

/* Checklist A6: all 96 leading bits. */
int portmap_net_is_v4(const uint8_t addr[16]) {
  return all_zero(addr, 10) && addr[10] == 0xff && addr[11] == 0xff;
}

int portmap_net_is_unspecified(const uint8_t addr[16]) {
  if (portmap_net_is_v4(addr))
    return all_zero(addr + 12, 4);
  return all_zero(addr, 16);
}

static int is_v6_loopback(const uint8_t a[16]) {
  return all_zero(a, 15) && a[15] == 1;
}

int portmap_net_is_private(const uint8_t addr[16]) {
  if (portmap_net_is_v4(addr)) {
    const uint8_t *a = addr + 12;
    return a[0] == 10 ||                           /* 10/8 */
           (a[0] == 172 && (a[1] & 0xf0) == 16) || /* 172.16/12 */
           (a[0] == 192 && a[1] == 168) ||         /* 192.168/16 */
           (a[0] == 100 && (a[1] & 0xc0) == 64) || /* 100.64/10, CGN */
           a[0] == 127 ||                          /* loopback */
           (a[0] == 169 && a[1] == 254) ||         /* link-local */
           a[0] == 0;                              /* 0/8 */
  }
  return (addr[0] & 0xfe) == 0xfc ||                      /* fc00::/7 ULA */
         (addr[0] == 0xfe && (addr[1] & 0xc0) == 0x80) || /* fe80::/10 */
         is_v6_loopback(addr) || all_zero(addr, 16);
}

int portmap_net_is_forbidden_target(const uint8_t addr[16]) {
  if (portmap_net_is_v4(addr)) {
    const uint8_t *a = addr + 12;
    return a[0] == 127 ||                                              /* loopback */
           (a[0] == 169 && a[1] == 254) ||                             /* link-local */
           (a[0] & 0xf0) == 224 ||                                     /* 224/4 multicast */
           all_zero(a, 4) ||                                           /* unspecified */
           (a[0] == 255 && a[1] == 255 && a[2] == 255 && a[3] == 255); /* broadcast */
  }
  return is_v6_loopback(addr) || (addr[0] == 0xfe && (addr[1] & 0xc0) == 0x80) || addr[0] == 0xff ||
         all_zero(addr, 16);
}

/* ---- public text conversion -------------------------------------------- */

PORTMAP_API portmap_status_t portmap_addr_parse(const char *text, portmap_addr_t *out) {
  uint8_t b[16];
  if (text == NULL || out == NULL)
    return PORTMAP_ERR_INVALID;
  if (inet_pton(AF_INET, text, b + 12) == 1) {
    v4_mapped(out->bytes, b + 12);
    return PORTMAP_OK;
  }
  if (inet_pton(AF_INET6, text, b) == 1) {
    memcpy(out->bytes, b, 16);
    return PORTMAP_OK;
  }
  return PORTMAP_ERR_ADDRESS;
}

PORTMAP_API const char *portmap_addr_format(const portmap_addr_t *addr, char *buf, size_t len) {
  char tmp[PORTMAP_ADDRSTRLEN];
  const char *r;
  if (buf == NULL || len == 0)
    return buf;
  buf[0] = '\0';
  if (addr == NULL)
    return buf;
  if (portmap_net_is_v4(addr->bytes))
    r = inet_ntop(AF_INET, addr->bytes + 12, tmp, sizeof tmp);
  else
    r = inet_ntop(AF_INET6, addr->bytes, tmp, sizeof tmp);
  if (r != NULL && strlen(tmp) < len)
    memcpy(buf, tmp, strlen(tmp) + 1);
  return buf;
}
