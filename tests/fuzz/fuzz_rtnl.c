/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the rtnetlink route parser (src/platform/linux_rtnl.c,
 * portmap_plat_parse_rtnl). The input's first octet picks the family (bit
 * 0: IPv6), the rest is one datagram of an RTM_GETROUTE dump, copied to an
 * allocation of its exact size: ASan sees any read past it. What is
 * accepted must hold: the result is -1, 0 or 1; a route found has a
 * non-zero gateway spelled in the datagram (IPv4: IPv4-mapped); the same
 * datagram parsed again gives the same answer; and a best route already
 * held with metric 0 is never replaced (the lowest metric wins, the first
 * of equals stays). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "platform/platform.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond) {
  if (!cond)
    abort();
}

static int contains(const uint8_t *hay, size_t len, const uint8_t *needle, size_t n) {
  for (size_t i = 0; i + n <= len; i++)
    if (memcmp(hay + i, needle, n) == 0)
      return 1;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  int ipv6 = data[0] & 1;
  size_t len = size - 1;
  uint8_t *buf = malloc(len > 0 ? len : 1);
  if (buf == NULL)
    return 0;
  memcpy(buf, data + 1, len);
  portmap_plat_route_t a, b, held;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  int r = portmap_plat_parse_rtnl(buf, len, ipv6, 1, &a);
  check(r >= -1 && r <= 1);
  check(portmap_plat_parse_rtnl(buf, len, ipv6, 1, &b) == r);
  check(memcmp(&a, &b, sizeof a) == 0);
  if (a.found) {
    static const uint8_t zero[16];
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    check(memcmp(a.gw, zero, 16) != 0);
    if (!ipv6) {
      check(memcmp(a.gw, mapped, 12) == 0);
      check(contains(buf, len, a.gw + 12, 4));
    } else {
      check(contains(buf, len, a.gw, 16));
    }
  }
  memset(&held, 0x5a, sizeof held);
  held.found = 1;
  held.metric = 0;
  portmap_plat_route_t before = held;
  (void)portmap_plat_parse_rtnl(buf, len, ipv6, 1, &held);
  check(memcmp(&held, &before, sizeof held) == 0);
  check(portmap_plat_parse_rtnl(NULL, len, ipv6, 1, &a) == -1);
  check(portmap_plat_parse_rtnl(buf, len, ipv6, 1, NULL) == -1);
  free(buf);
  return 0;
}
