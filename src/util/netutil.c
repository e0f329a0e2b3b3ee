/* SPDX-License-Identifier: MIT */
/*
 * Network helpers, portable: sockaddr conversion, address classification,
 * and the public portmap_addr_parse() / portmap_addr_format(). What needs
 * the operating system (routes, local address, ICMP errors) is in
 * src/platform/.
 */
#include "util/netutil.h"

#include <portmap/portmap.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

int portmap_net_all_zero(const uint8_t *b, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (b[i] != 0)
      return 0;
  return 1;
}

void portmap_net_v4_mapped(uint8_t out[16], const uint8_t v4[4]) {
  memset(out, 0, 10);
  out[10] = 0xff;
  out[11] = 0xff;
  memcpy(out + 12, v4, 4);
}

/* ---- sockaddr ---------------------------------------------------------- */

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

int portmap_net_from_sockaddr(const struct sockaddr *sa, socklen_t len, uint8_t out[16],
                              uint16_t *port) {
  if (sa == NULL || out == NULL || len < (socklen_t)sizeof(sa_family_t))
    return -1;
  if (sa->sa_family == AF_INET) {
    struct sockaddr_in sin;
    if (len < (socklen_t)sizeof sin)
      return -1;
    memcpy(&sin, sa, sizeof sin);
    portmap_net_v4_mapped(out, (const uint8_t *)&sin.sin_addr);
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
  return portmap_net_all_zero(addr, 10) && addr[10] == 0xff && addr[11] == 0xff;
}

int portmap_net_is_unspecified(const uint8_t addr[16]) {
  if (portmap_net_is_v4(addr))
    return portmap_net_all_zero(addr + 12, 4);
  return portmap_net_all_zero(addr, 16);
}

static int is_v6_loopback(const uint8_t a[16]) {
  return portmap_net_all_zero(a, 15) && a[15] == 1;
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
         is_v6_loopback(addr) || portmap_net_all_zero(addr, 16);
}

int portmap_net_is_forbidden_target(const uint8_t addr[16]) {
  if (portmap_net_is_v4(addr)) {
    const uint8_t *a = addr + 12;
    return a[0] == 127 ||                                              /* loopback */
           (a[0] == 169 && a[1] == 254) ||                             /* link-local */
           (a[0] & 0xf0) == 224 ||                                     /* 224/4 multicast */
           portmap_net_all_zero(a, 4) ||                               /* unspecified */
           (a[0] == 255 && a[1] == 255 && a[2] == 255 && a[3] == 255); /* broadcast */
  }
  return is_v6_loopback(addr) || (addr[0] == 0xfe && (addr[1] & 0xc0) == 0x80) || addr[0] == 0xff ||
         portmap_net_all_zero(addr, 16);
}

int portmap_net_is_link_local6(const uint8_t addr[16]) {
  return addr[0] == 0xfe && (addr[1] & 0xc0) == 0x80;
}

int portmap_net_pick_mappable6(const uint8_t (*cands)[16], size_t n, uint8_t out[16]) {
  const uint8_t *ula = NULL;
  for (size_t i = 0; i < n; i++) {
    const uint8_t *a = cands[i];
    if (portmap_net_is_v4(a))
      continue;
    if ((a[0] & 0xe0) == 0x20) { /* 2000::/3, global unicast */
      memcpy(out, a, 16);
      return 0;
    }
    if ((a[0] & 0xfe) == 0xfc && ula == NULL)
      ula = a;
  }
  if (ula == NULL)
    return -1;
  memcpy(out, ula, 16);
  return 0;
}

/* ---- public text conversion -------------------------------------------- */

PORTMAP_API portmap_status_t portmap_addr_parse(const char *text, portmap_addr_t *out) {
  uint8_t b[16];
  if (text == NULL || out == NULL)
    return PORTMAP_ERR_INVALID;
  if (inet_pton(AF_INET, text, b + 12) == 1) {
    portmap_net_v4_mapped(out->bytes, b + 12);
    return PORTMAP_OK;
  }
  if (inet_pton(AF_INET6, text, b) == 1) {
    memcpy(out->bytes, b, 16);
    return PORTMAP_OK;
  }
  return PORTMAP_ERR_ADDRESS;
}

/* a.b.c.d as inet_ntop() writes it (decimal, no leading zeros), without
 * the printf inet_ntop() runs: every event's info carries the external
 * address as text (issue 12: this was a quarter of a renewal's
 * instructions). Returns the length, out holds at most 16 octets. */
static size_t format_v4(const uint8_t b[4], char out[16]) {
  size_t n = 0;
  for (int i = 0; i < 4; i++) {
    unsigned v = b[i];
    if (v >= 100)
      out[n++] = (char)('0' + v / 100);
    if (v >= 10)
      out[n++] = (char)('0' + v / 10 % 10);
    out[n++] = (char)('0' + v % 10);
    out[n++] = i < 3 ? '.' : '\0';
  }
  return n - 1;
}

PORTMAP_API const char *portmap_addr_format(const portmap_addr_t *addr, char *buf, size_t len) {
  char tmp[PORTMAP_ADDRSTRLEN];
  size_t n;
  if (buf == NULL || len == 0)
    return buf;
  buf[0] = '\0';
  if (addr == NULL)
    return buf;
  if (portmap_net_is_v4(addr->bytes))
    n = format_v4(addr->bytes + 12, tmp);
  else if (inet_ntop(AF_INET6, addr->bytes, tmp, sizeof tmp) != NULL)
    n = strlen(tmp);
  else
    return buf;
  if (n < len)
    memcpy(buf, tmp, n + 1);
  return buf;
}
