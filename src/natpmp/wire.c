/* SPDX-License-Identifier: MIT */
/*
 * NAT-PMP checks on received datagrams (see wire.h), read through the one
 * bounded reader.
 */
#include "natpmp/wire.h"

#include "util/reader.h"

#define NATPMP_RESULT_SUCCESS 0

int portmap_natpmp_response_ok(const uint8_t *buf, size_t len) {
  portmap_reader_t rd;
  portmap_rd_init(&rd, buf, len);
  uint8_t version = portmap_rd_u8(&rd);
  uint8_t op = portmap_rd_u8(&rd);
  uint16_t result = portmap_rd_be16(&rd);
  portmap_rd_skip(&rd, 4); /* seconds since start of epoch */
  if (!portmap_rd_ok(&rd) || version != PORTMAP_NATPMP_VERSION || op < PORTMAP_NATPMP_RESPONSE ||
      op > PORTMAP_NATPMP_RESPONSE + 2)
    return 0;
  if (result != NATPMP_RESULT_SUCCESS)
    return 1;
  return len >= (op == PORTMAP_NATPMP_RESPONSE ? 12u : 16u);
}

uint16_t portmap_natpmp_field16(const uint8_t *buf, size_t len, size_t off) {
  portmap_reader_t rd;
  portmap_rd_init(&rd, buf, len);
  portmap_rd_skip(&rd, off);
  return portmap_rd_be16(&rd);
}

int portmap_natpmp_parse_announce(const uint8_t *buf, size_t len, uint32_t *sssoe, uint8_t v4[4]) {
  portmap_reader_t rd;
  portmap_rd_init(&rd, buf, len);
  uint8_t version = portmap_rd_u8(&rd);
  uint8_t op = portmap_rd_u8(&rd);
  uint16_t result = portmap_rd_be16(&rd);
  *sssoe = portmap_rd_be32(&rd);
  portmap_rd_bytes(&rd, v4, 4);
  if (!portmap_rd_ok(&rd) || version != PORTMAP_NATPMP_VERSION || op != PORTMAP_NATPMP_RESPONSE ||
      result != NATPMP_RESULT_SUCCESS)
    return -1;
  return 0;
}

int portmap_natpmp_epoch_lost(uint32_t prev_sssoe, uint64_t prev_ms, uint32_t sssoe,
                              uint64_t now_ms) {
  uint64_t elapsed = now_ms > prev_ms ? now_ms - prev_ms : 0;
  /* 7/8 of elapsed without forming elapsed * 7, which wraps above
   * 2^64 / 7 ms (a clock is injected: any value can come) */
  uint64_t expected_ms = (uint64_t)prev_sssoe * 1000u + elapsed / 8u * 7u + elapsed % 8u * 7u / 8u;
  return (uint64_t)sssoe * 1000u + 2000u < expected_ms;
}
