/* libFuzzer target for the client-side PCP response decoder. Any input must
 * decode without undefined behaviour; an accepted response must re-encode
 * (pcp_encode_response), and the re-encoding must decode to the same fields
 * and re-encode to the same octets. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pcp/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond) {
  if (!cond)
    abort();
}

static void same_fields(const pcp_msg_t *a, const pcp_msg_t *b) {
  check(a->opcode == b->opcode);
  check(a->result == b->result);
  check(a->epoch == b->epoch);
  /* K1: ANNOUNCE lifetimes are sent as 0 */
  check(b->lifetime == (a->opcode == PCP_OP_ANNOUNCE ? 0 : a->lifetime));
  check(memcmp(a->nonce, b->nonce, PCP_NONCE_LEN) == 0);
  check(a->protocol == b->protocol);
  check(a->internal_port == b->internal_port);
  check(a->external_port == b->external_port);
  check(memcmp(a->external_addr, b->external_addr, 16) == 0);
  check(a->peer_port == b->peer_port);
  check(memcmp(a->peer_addr, b->peer_addr, 16) == 0);
  check(a->has_third_party == b->has_third_party);
  check(memcmp(a->third_party, b->third_party, 16) == 0);
  check(a->prefer_failure == b->prefer_failure);
  check(a->n_filters == b->n_filters && b->n_filters <= PCP_MAX_FILTERS);
  for (size_t i = 0; i < a->n_filters; i++) {
    check(a->filters[i].prefix_len == b->filters[i].prefix_len);
    check(a->filters[i].port == b->filters[i].port);
    check(memcmp(a->filters[i].addr, b->filters[i].addr, 16) == 0);
  }
  check(a->description_len == b->description_len && b->description_len <= PCP_MAX_DESCRIPTION);
  check(memcmp(a->description, b->description, a->description_len) == 0);
  check(b->description[b->description_len] == '\0');
  check(b->n_unknown_options == 0 && !b->has_unknown_mandatory);
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
