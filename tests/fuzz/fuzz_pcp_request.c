/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the server-side PCP request decoder (used by the fake gateway). Any input
 * must decode without undefined behaviour; an accepted request must re-encode (pcp_encode_request),
 * and the re-encoding must decode to the same fields and re-encode to the same octets. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pcp/wire.h"
#include "pcp_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same_fields(const pcp_msg_t *a, const pcp_msg_t *b) {
  check_same_common_fields(a, b);
  check(memcmp(a->client_addr, b->client_addr, 16) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pcp_msg_t m;
  int rc = pcp_decode_request(data, size, &m);
  check(rc >= PCP_WIRE_OK && rc <= PCP_WIRE_OPTION);
  check(rc != PCP_WIRE_NATPMP); /* F2 is a client-side rule */
  if (rc != PCP_WIRE_OK)
    return 0;
  check(size >= PCP_HEADER_LEN && size <= PCP_MAX_PACKET && size % 4 == 0);
  check(m.opcode <= PCP_OP_PEER);
  check(m.result == 0 && m.epoch == 0);

  uint8_t buf[PCP_MAX_PACKET];
  size_t n = 0;
  check(pcp_encode_request(&m, buf, sizeof buf, &n) == PCP_WIRE_OK);
  check(n <= size && n % 4 == 0); /* unknown options are dropped, nothing grows */
  pcp_msg_t m2;
  check(pcp_decode_request(buf, n, &m2) == PCP_WIRE_OK);
  same_fields(&m, &m2);

  uint8_t buf2[PCP_MAX_PACKET];
  size_t n2 = 0;
  check(pcp_encode_request(&m2, buf2, sizeof buf2, &n2) == PCP_WIRE_OK);
  check(n2 == n && memcmp(buf, buf2, n) == 0);
  /* a too-small buffer is refused, never overrun */
  check(pcp_encode_request(&m2, buf2, n - 1, &n2) == PCP_WIRE_NOSPACE);
  return 0;
}
