/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the route-table parsers (src/platform/linux.c,
 * portmap_plat_parse_route4/6). The input is the text of /proc/net/route
 * and of /proc/net/ipv6_route, copied to an allocation of its exact size
 * with no NUL after it: ASan sees any read past len. What is accepted must
 * hold the documented invariants: route4 gives an IPv4-mapped, non-zero
 * gateway and route6 a non-zero one, each spelled (in hex, any case) in
 * the text; the interface name is 1-15 printable, non-blank octets with a
 * NUL, and appears in the text; a refusal writes nothing; the answer does
 * not depend on ifname_out being asked for; and a table read twice over
 * gives the same winner (the first of equal metrics). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform/platform.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef int (*parse_fn)(const char *text, size_t len, uint8_t out[16], char ifname_out[16]);

static void check(int cond) {
  if (!cond)
    abort();
}

static int lower(int c) {
  return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* needle (NUL-terminated, lower case) in hay[0..len), case-insensitively */
static int contains(const char *hay, size_t len, const char *needle) {
  size_t n = strlen(needle);
  for (size_t i = 0; i + n <= len; i++) {
    size_t j = 0;
    while (j < n && lower((unsigned char)hay[i + j]) == needle[j])
      j++;
    if (j == n)
      return 1;
  }
  return 0;
}

static int same_case_contains(const char *hay, size_t len, const char *needle) {
  size_t n = strlen(needle);
  for (size_t i = 0; i + n <= len; i++)
    if (memcmp(hay + i, needle, n) == 0)
      return 1;
  return 0;
}

static const uint8_t ZERO[16];

static void one(parse_fn parse, int v6, const char *text, size_t len) {
  uint8_t out[16], out2[16];
  char ifname[17], ifname2[16];
  memset(out, 0xa5, sizeof out);
  memset(out2, 0xa5, sizeof out2);
  memset(ifname, 0x5a, sizeof ifname);
  int rc = parse(text, len, out, ifname);
  check(rc == 0 || rc == -1);
  check(ifname[16] == 0x5a); /* nothing past the 16 octets */
  int rc2 = parse(text, len, out2, NULL);
  check(rc2 == rc);
  if (rc != 0) {
    for (size_t i = 0; i < 16; i++)
      check(out[i] == 0xa5 && out2[i] == 0xa5 && (unsigned char)ifname[i] == 0x5a);
    return;
  }
  check(memcmp(out, out2, 16) == 0);
  check(memcmp(out, ZERO, 16) != 0);
  char hex[33];
  if (!v6) {
    static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    check(memcmp(out, prefix, 12) == 0);
    uint32_t host;
    memcpy(&host, out + 12, 4); /* the kernel prints the in-memory __be32 */
    snprintf(hex, sizeof hex, "%08x", host);
  } else {
    for (size_t i = 0; i < 16; i++)
      snprintf(hex + 2 * i, 3, "%02x", out[i]);
  }
  check(contains(text, len, hex));
  size_t n = strnlen(ifname, 16);
  check(n >= 1 && n <= 15);
  for (size_t i = 0; i < n; i++)
    check((unsigned char)ifname[i] > 0x20 && (unsigned char)ifname[i] < 0x7f);
  check(same_case_contains(text, len, ifname));

  /* the table twice over: the same winner */
  if (len > 0 && len <= 32768) {
    char *twice = malloc(2 * len + 1);
    check(twice != NULL);
    memcpy(twice, text, len);
    twice[len] = '\n';
    memcpy(twice + len + 1, text, len);
    memset(out2, 0, sizeof out2);
    memset(ifname2, 0, sizeof ifname2);
    check(parse(twice, 2 * len + 1, out2, ifname2) == 0);
    check(memcmp(out, out2, 16) == 0 && strcmp(ifname, ifname2) == 0);
    free(twice);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size > 0 ? size : 1);
  if (text == NULL)
    return 0;
  memcpy(text, data, size);
  one(portmap_plat_parse_route4, 0, text, size);
  one(portmap_plat_parse_route6, 1, text, size);
  uint8_t out[16];
  check(portmap_plat_parse_route4(NULL, size, out, NULL) == -1);
  check(portmap_plat_parse_route6(text, size, NULL, NULL) == -1);
  free(text);
  return 0;
}
