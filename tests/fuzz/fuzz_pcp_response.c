/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the client-side PCP response decoder. Any input must
 * decode without undefined behaviour; an accepted response must re-encode
 * (pcp_encode_response), and the re-encoding must decode to the same fields
 * and re-encode to the same octets. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pcp/wire.h"
#include "pcp_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same_fields(const pcp_msg_t *a, const pcp_msg_t *b) {
  check_same_common_fields(a, b);
  check(a->result == b->result);
  check(a->epoch == b->epoch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pcp_msg_t m;
  int rc = pcp_decode_response(data, size, &m);
  check(rc >= PCP_WIRE_OK && rc <= PCP_WIRE_OPTION);
  if (rc == PCP_WIRE_NATPMP)
    check(size == 8 && m.result == PCP_UNSUPP_VERSION);
  if (rc != PCP_WIRE_OK)
    return 0;
  check(size >= PCP_HEADER_LEN && size <= PCP_MAX_PACKET && size % 4 == 0);
  check(m.opcode <= PCP_OP_PEER);
  (void)pcp_result_name(m.result);
  (void)pcp_result_is_short(m.result);

  uint8_t buf[PCP_MAX_PACKET];
  size_t n = 0;
  check(pcp_encode_response(&m, buf, sizeof buf, &n) == PCP_WIRE_OK);
  check(n <= size && n % 4 == 0); /* unknown options are dropped, nothing grows */
  pcp_msg_t m2;
  check(pcp_decode_response(buf, n, &m2) == PCP_WIRE_OK);
  same_fields(&m, &m2);

  uint8_t buf2[PCP_MAX_PACKET];
  size_t n2 = 0;
  check(pcp_encode_response(&m2, buf2, sizeof buf2, &n2) == PCP_WIRE_OK);
  check(n2 == n && memcmp(buf, buf2, n) == 0);
  /* a too-small buffer is refused, never overrun */
  check(pcp_encode_response(&m2, buf2, n - 1, &n2) == PCP_WIRE_NOSPACE);
  return 0;
}
