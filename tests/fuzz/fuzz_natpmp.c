/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the NAT-PMP datagram checks (src/natpmp/wire.c)
 * that decide what the backend lets libnatpmp see. The input is the
 * datagram; its first 24 octets (zero-padded) are also read as the
 * arguments of the epoch rule:
 *
 *   | prev_sssoe (4) | prev_ms (8) | sssoe (4) | now_ms (8) |   big-endian
 *
 * Every answer must equal what a plain reference computes from RFC 6886:
 * response_ok true implies the 8-octet header, version 0, opcode 128-130
 * and, for a success, the whole response (12 / 16 octets); field16 reads
 * inside the datagram or says 0; parse_announce accepts exactly a 12-octet
 * or longer success of opcode 128 and returns its epoch and address; the
 * epoch rule (N5) matches 128-bit arithmetic, so it never wraps. The
 * datagram is copied to an allocation of its exact size: ASan sees any
 * read past it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "natpmp/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond) {
  if (!cond)
    abort();
}

static uint64_t be(const uint8_t *p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++)
    v = v << 8 | p[i];
  return v;
}

static void response_ok(const uint8_t *b, size_t len) {
  int ok = portmap_natpmp_response_ok(b, len);
  check(ok == 0 || ok == 1);
  int want = len >= 8 && b[0] == 0 && b[1] >= 128 && b[1] <= 130;
  if (want && be(b + 2, 2) == 0)
    want = len >= (b[1] == 128 ? 12u : 16u);
  check(ok == want);
  if (ok) {
    check(len >= 8 && b[0] == PORTMAP_NATPMP_VERSION);
    check(b[1] >= PORTMAP_NATPMP_RESPONSE && b[1] <= PORTMAP_NATPMP_RESPONSE + 2);
    if (b[2] == 0 && b[3] == 0)
      check(len >= (b[1] == PORTMAP_NATPMP_RESPONSE ? 12u : 16u));
  }
}

static void field16(const uint8_t *b, size_t len) {
  for (size_t off = 0; off <= len + 2; off++) {
    uint16_t v = portmap_natpmp_field16(b, len, off);
    check(v == (off + 2 <= len ? (uint16_t)be(b + off, 2) : 0));
  }
  check(portmap_natpmp_field16(b, len, SIZE_MAX) == 0);
  check(portmap_natpmp_field16(b, len, SIZE_MAX - 1) == 0);
}

static void announce(const uint8_t *b, size_t len) {
  uint32_t sssoe = 0xdeadbeef;
  uint8_t v4[5] = {0xa5, 0xa5, 0xa5, 0xa5, 0xa5};
  int rc = portmap_natpmp_parse_announce(b, len, &sssoe, v4);
  check(rc == 0 || rc == -1);
  int want = len >= 12 && b[0] == 0 && b[1] == 128 && b[2] == 0 && b[3] == 0;
  check((rc == 0) == want);
  check(v4[4] == 0xa5); /* nothing written past the address */
  if (rc == 0) {
    check(sssoe == (uint32_t)be(b + 4, 4));
    check(memcmp(v4, b + 8, 4) == 0);
    check(portmap_natpmp_response_ok(b, len)); /* an announcement is a valid response */
  }
}

static void epoch(const uint8_t *data, size_t size) {
  uint8_t a[24] = {0};
  memcpy(a, data, size < sizeof a ? size : sizeof a);
  uint32_t prev = (uint32_t)be(a, 4), now_sssoe = (uint32_t)be(a + 12, 4);
  uint64_t prev_ms = be(a + 4, 8), now_ms = be(a + 16, 8);
  unsigned __int128 elapsed = now_ms > prev_ms ? now_ms - prev_ms : 0;
  unsigned __int128 expected = (unsigned __int128)prev * 1000u + elapsed * 7u / 8u;
  int want = (unsigned __int128)now_sssoe * 1000u + 2000u < expected;
  check(portmap_natpmp_epoch_lost(prev, prev_ms, now_sssoe, now_ms) == want);
  /* the clock standing still or going back never shows a loss by itself */
  check(!portmap_natpmp_epoch_lost(prev, prev_ms, prev, prev_ms));
  check(!portmap_natpmp_epoch_lost(prev, now_ms, prev, now_ms < prev_ms ? now_ms : prev_ms));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *b = malloc(size > 0 ? size : 1);
  if (b == NULL)
    return 0;
  memcpy(b, data, size);
  response_ok(b, size);
  field16(b, size);
  announce(b, size);
  epoch(data, size);
  check(!portmap_natpmp_response_ok(NULL, 0));
  free(b);
  return 0;
}
