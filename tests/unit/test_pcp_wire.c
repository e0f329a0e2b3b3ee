/* SPDX-License-Identifier: MIT */
/* Unit tests for the PCP wire codec (src/pcp/wire.c). Test names carry the
 * checklist ID they prove (docs/RFC-CHECKLIST.md). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "pcp/wire.h"

/* ---- helpers ---- */

static const uint8_t NONCE[PCP_NONCE_LEN] = {0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5,
                                             0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab};

static void v4(uint8_t out[16], uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  const uint8_t q[4] = {a, b, c, d};
  pcp_addr_v4mapped(out, q);
}

static void v6(uint8_t out[16], uint8_t last) {
  memset(out, 0, 16);
  out[0] = 0x20;
  out[1] = 0x01;
  out[2] = 0x0d;
  out[3] = 0xb8;
  out[15] = last;
}

static void put16(uint8_t *p, unsigned v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static void map_msg(pcp_msg_t *m) {
  pcp_msg_init(m);
  m->opcode = PCP_OP_MAP;
  m->lifetime = 7200;
  v4(m->client_addr, 192, 168, 1, 10);
  memcpy(m->nonce, NONCE, sizeof NONCE);
  m->protocol = 17;
  m->internal_port = 0x1234;
  m->external_port = 0x5678;
  pcp_addr_any(m->external_addr, 0);
}

static void peer_msg(pcp_msg_t *m) {
  map_msg(m);
  m->opcode = PCP_OP_PEER;
  m->protocol = 6;
  m->peer_port = 0x9abc;
  v4(m->peer_addr, 198, 51, 100, 7);
}

static void all_options(pcp_msg_t *m) {
  m->has_third_party = 1;
  v4(m->third_party, 192, 168, 1, 77);
  if (m->opcode == PCP_OP_MAP) {
    m->prefer_failure = 1;
    m->n_filters = 2;
    m->filters[0].prefix_len = 120;
    m->filters[0].port = 443;
    v4(m->filters[0].addr, 203, 0, 113, 0);
    m->filters[1].prefix_len = 64;
    m->filters[1].port = 0;
    v6(m->filters[1].addr, 0);
  }
  const char *d = "libportmap test";
  m->description_len = strlen(d);
  memcpy(m->description, d, m->description_len + 1);
}

/* A MAP response header + payload written by hand, independent of the
 * encoder. Returns its length (60). */
static size_t raw_map_response(uint8_t *b, uint8_t result) {
  memset(b, 0, 60);
  b[0] = 2;
  b[1] = 0x81;
  b[3] = result;
  put32(b + 4, 3600);
  put32(b + 8, 12345);
  memcpy(b + 24, NONCE, sizeof NONCE);
  b[36] = 17;
  put16(b + 40, 0x1234);
  put16(b + 42, 0x5678);
  v4(b + 44, 203, 0, 113, 9);
  return 60;
}

static size_t raw_option(uint8_t *b, uint8_t code, const uint8_t *data, uint16_t len) {
  size_t padded = ((size_t)len + 3u) & ~(size_t)3u;
  b[0] = code;
  b[1] = 0;
  put16(b + 2, len);
  memset(b + 4, 0, padded);
  if (len > 0)
    memcpy(b + 4, data, len);
  return 4 + padded;
}

static void assert_msgs_equal(const pcp_msg_t *a, const pcp_msg_t *b, int response) {
  assert_int_equal(a->opcode, b->opcode);
  assert_int_equal(a->lifetime, b->lifetime);
  if (response) {
    assert_int_equal(a->result, b->result);
    assert_int_equal(a->epoch, b->epoch);
  } else {
    assert_memory_equal(a->client_addr, b->client_addr, 16);
  }
  if (a->opcode != PCP_OP_ANNOUNCE) {
    assert_memory_equal(a->nonce, b->nonce, PCP_NONCE_LEN);
    assert_int_equal(a->protocol, b->protocol);
    assert_int_equal(a->internal_port, b->internal_port);
    assert_int_equal(a->external_port, b->external_port);
    assert_memory_equal(a->external_addr, b->external_addr, 16);
  }
  if (a->opcode == PCP_OP_PEER) {
    assert_int_equal(a->peer_port, b->peer_port);
    assert_memory_equal(a->peer_addr, b->peer_addr, 16);
  }
  assert_int_equal(!!a->has_third_party, !!b->has_third_party);
  if (a->has_third_party)
    assert_memory_equal(a->third_party, b->third_party, 16);
  assert_int_equal(!!a->prefer_failure, !!b->prefer_failure);
  assert_int_equal(a->n_filters, b->n_filters);
  for (size_t i = 0; i < a->n_filters; i++) {
    assert_int_equal(a->filters[i].prefix_len, b->filters[i].prefix_len);
    assert_int_equal(a->filters[i].port, b->filters[i].port);
    assert_memory_equal(a->filters[i].addr, b->filters[i].addr, 16);
  }
  assert_int_equal(a->description_len, b->description_len);
  assert_memory_equal(a->description, b->description, a->description_len);
}

/* ---- A: messages ---- */

static void test_A3_F1_request_header_exact_bytes(void **state) {
  (void)state;
  pcp_msg_t m;
  map_msg(&m);
  m.lifetime = 0x01020304;
  uint8_t buf[PCP_MAX_PACKET];
  size_t n = 0;
  assert_int_equal(pcp_encode_request(&m, buf, sizeof buf, &n), PCP_WIRE_OK);
  assert_int_equal(n, PCP_HEADER_LEN + PCP_MAP_LEN);
  static const uint8_t want[24] = {2, 1, 0, 0, 0x01, 0x02, 0x03, 0x04, 0,   0,   0, 0,
                                   0, 0, 0, 0, 0,    0,    0xff, 0xff, 192, 168, 1, 10};
  assert_memory_equal(buf, want, sizeof want);

  m.lifetime = 7200; /* 0x00001c20: network byte order */
  assert_int_equal(pcp_encode_request(&m, buf, sizeof buf, &n), PCP_WIRE_OK);
  static const uint8_t lt[4] = {0x00, 0x00, 0x1c, 0x20};
  assert_memory_equal(buf + 4, lt, 4);
}

static void test_F1_every_opcode_sends_version_2(void **state) {
  (void)state;
  pcp_msg_t m;
  uint8_t buf[PCP_MAX_PACKET];
  size_t n;
  for (uint8_t op = 0; op <= PCP_OP_PEER; op++) {
    peer_msg(&m);
    m.opcode = op;
    assert_int_equal(pcp_encode_request(&m, buf, sizeof buf, &n), PCP_WIRE_OK);
    assert_int_equal(buf[0], 2);
    assert_int_equal(buf[1], op); /* R = 0 */
    assert_int_equal(pcp_encode_response(&m, buf, sizeof buf, &n), PCP_WIRE_OK);
    assert_int_equal(buf[0], 2);
    assert_int_equal(buf[1], 0x80 | op); /* R = 1 */
  }
}

static void test_A3_map_payload_exact_bytes(void **state) {
  (void)state;
  pcp_msg_t m;
  map_msg(&m);
  uint8_t buf[PCP_MAX_PACKET];
  size_t n;
  assert_int_equal(pcp_encode_request(&m, buf, sizeof buf, &n), PCP_WIRE_OK);
  assert_int_equal(n, 60);
  static const uint8_t want[36] = {0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8,
                                   0xa9, 0xaa, 0xab, 17,   0,    0,    0,    0x12, 0x34,
                                   0x56, 0x78, 0,    0,    0,    0,    0,    0,    0,
                                   0,    0,    0,    0xff, 0xff, 0,    0,    0,    0};
  assert_memory_equal(buf + 24, want, sizeof want);
}

static void test_A4_client_ip_v4mapped(void **state) {
  (void)state;
  uint8_t a[16];
  v4(a, 10, 0, 0, 42);
  static const uint8_t want[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 42};
  assert_memory_equal(a, want, 16);

  pcp_msg_t m;
  map_msg(&m);
  memcpy(m.client_addr, a, 16);
  uint8_t buf[PCP_MAX_PACKET];
  size_t n;
  assert_int_equal(pcp_encode_request(&m, buf, sizeof buf, &n), PCP_WIRE_OK);
  assert_memory_equal(buf + 8, want, 16);

  /* an IPv6 client address goes out verbatim */
  v6(m.client_addr, 0x55);
  assert_int_equal(pcp_encode_request(&m, buf, sizeof buf, &n), PCP_WIRE_OK);
  assert_memory_equal(buf + 8, m.client_addr, 16);
}

static void test_A6_v4mapped_checks_all_96_bits(void **state) {
  (void)state;
  uint8_t a[16];
  v4(a, 1, 2, 3, 4);
  assert_true(pcp_addr_is_v4mapped(a));
  for (unsigned bit = 0; bit < 96; bit++) {
    uint8_t b[16];
    memcpy(b, a, 16);
    b[bit / 8] ^= (uint8_t)(0x80u >> (bit % 8));
    assert_false(pcp_addr_is_v4mapped(b));
  }
  /* the IPv4 part is not part of the test */
  uint8_t c[16];
  v4(c, 255, 255, 255, 255);
  assert_true(pcp_addr_is_v4mapped(c));
  /* ::1.2.3.4 (IPv4-compatible) and ::ffff:0:1.2.3.4 (IPv4-translated) are not mapped */
  uint8_t compat[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4};
  assert_false(pcp_addr_is_v4mapped(compat));
  uint8_t xlat[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 2, 3, 4};
  assert_false(pcp_addr_is_v4mapped(xlat));
}

static void test_A7_no_preference_address(void **state) {
  (void)state;
  uint8_t a[16];
  memset(a, 0x5a, 16);
  pcp_addr_any(a, 0);
  static const uint8_t any4[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0};
  assert_memory_equal(a, any4, 16);
  assert_true(pcp_addr_is_v4mapped(a));
  memset(a, 0x5a, 16);
  pcp_addr_any(a, 1);
  static const uint8_t any6[16] = {0};
  assert_memory_equal(a, any6, 16);
  assert_false(pcp_addr_is_v4mapped(a));

  pcp_msg_t m;
  map_msg(&m);
  pcp_addr_any(m.external_addr, 1);
  uint8_t buf[PCP_MAX_PACKET];
  size_t n;
  assert_int_equal(pcp_encode_request(&m, buf, sizeof buf, &n), PCP_WIRE_OK);
  assert_memory_equal(buf + 44, any6, 16);
}

static void test_A8_option_tlv_layout_and_padding(void **state) {
  (void)state;
  pcp_msg_t m;
  map_msg(&m);
  m.has_third_party = 1;
  v4(m.third_party, 192, 168, 1, 99);
  memcpy(m.description, "hello", 6);
  m.description_len = 5;
  uint8_t buf[PCP_MAX_PACKET];
  size_t n;
  assert_int_equal(pcp_encode_request(&m, buf, sizeof buf, &n), PCP_WIRE_OK);
  /* 60 + THIRD_PARTY (4 + 16) + DESCRIPTION (4 + 5 padded to 8) */
  assert_int_equal(n, 60 + 20 + 12);
  assert_int_equal(n % 4, 0);
  static const uint8_t tp[4] = {1, 0, 0, 16};
  assert_memory_equal(buf + 60, tp, 4);
  assert_memory_equal(buf + 64, m.third_party, 16);
  static const uint8_t desc[12] = {128, 0, 0, 5, 'h', 'e', 'l', 'l', 'o', 0, 0, 0};
  assert_memory_equal(buf + 80, desc, sizeof desc);
}

static void test_A8_decoder_skips_padding(void **state) {
  (void)state;
  uint8_t b[PCP_MAX_PACKET];
  size_t n = raw_map_response(b, PCP_SUCCESS);
  /* DESCRIPTION of length 1 (3 octets of padding, deliberately non-zero)
   * followed by THIRD_PARTY: the second must be found at the padded offset */
  n += raw_option(b + n, PCP_OPT_DESCRIPTION, (const uint8_t *)"x", 1);
  b[n - 3] = 0xee;
  b[n - 2] = 0xee;
  b[n - 1] = 0xee;
  uint8_t tp[16];
  v4(tp, 10, 1, 2, 3);
  n += raw_option(b + n, PCP_OPT_THIRD_PARTY, tp, 16);
  pcp_msg_t m;
  assert_int_equal(pcp_decode_response(b, n, &m), PCP_WIRE_OK);
  assert_int_equal(m.description_len, 1);
  assert_string_equal(m.description, "x");
  assert_true(m.has_third_party);
  assert_memory_equal(m.third_party, tp, 16);
  assert_int_equal(m.n_unknown_options, 0);
}

static void test_A2_largest_message_within_1100(void **state) {
  (void)state;
  pcp_msg_t m;
  map_msg(&m);
  all_options(&m);
  m.n_filters = PCP_MAX_FILTERS;
  for (size_t i = 0; i < PCP_MAX_FILTERS; i++) {
    m.filters[i].prefix_len = 128;
    m.filters[i].port = (uint16_t)(1000 + i);
    v4(m.filters[i].addr, 203, 0, 113, (uint8_t)i);
  }
  memset(m.description, 'd', PCP_MAX_DESCRIPTION);
  m.description[PCP_MAX_DESCRIPTION] = '\0';
  m.description_len = PCP_MAX_DESCRIPTION;
  uint8_t buf[2000];
  memset(buf, 0xcc, sizeof buf);
  size_t n = 0;
  assert_int_equal(pcp_encode_request(&m, buf, sizeof buf, &n), PCP_WIRE_OK);
  assert_int_equal(n, 24 + 36 + 20 + 4 + 8 * 24 + 4 + 128);
  assert_true(n <= PCP_MAX_REQUEST); /* the engine keeps requests in this much */
  assert_true(n <= PCP_MAX_PACKET);
  assert_int_equal(buf[n], 0xcc); /* nothing written past the message */
  pcp_msg_t d;
  assert_int_equal(pcp_decode_request(buf, n, &d), PCP_WIRE_OK);
  assert_msgs_equal(&m, &d, 0);
  assert_int_equal(pcp_encode_response(&m, buf, sizeof buf, &n), PCP_WIRE_OK);
  assert_true(n <= PCP_MAX_PACKET);
}

static void test_A2_oversized_description_refused(void **state) {
  (void)state;
  pcp_msg_t m;
  map_msg(&m);
  m.description_len = PCP_MAX_DESCRIPTION + 1;
  uint8_t buf[2000];
  size_t n = 99;
  assert_int_equal(pcp_encode_request(&m, buf, sizeof buf, &n), PCP_WIRE_INVALID);
  assert_int_equal(n, 0);
  assert_int_equal(pcp_encode_response(&m, buf, sizeof buf, &n), PCP_WIRE_INVALID);
}

static void test_A2_nospace(void **state) {
  (void)state;
  pcp_msg_t m;
  map_msg(&m);
  uint8_t buf[PCP_MAX_PACKET];
  size_t n = 99;
  assert_int_equal(pcp_encode_request(&m, buf, 59, &n), PCP_WIRE_NOSPACE);
  assert_int_equal(n, 0);
  assert_int_equal(pcp_encode_request(&m, buf, 60, &n), PCP_WIRE_OK);
  assert_int_equal(n, 60);
  assert_int_equal(pcp_encode_request(&m, NULL, 0, &n), PCP_WIRE_NOSPACE);
}

static void test_encoder_rejects_invalid_fields(void **state) {
  (void)state;
  pcp_msg_t m;
  uint8_t buf[PCP_MAX_PACKET];
  size_t n;
  map_msg(&m);
  m.opcode = 3;
  assert_int_equal(pcp_encode_request(&m, buf, sizeof buf, &n), PCP_WIRE_INVALID);
  map_msg(&m);
  m.n_filters = PCP_MAX_FILTERS + 1;
  assert_int_equal(pcp_encode_request(&m, buf, sizeof buf, &n), PCP_WIRE_INVALID);
  assert_int_equal(pcp_encode_request(NULL, buf, sizeof buf, &n), PCP_WIRE_INVALID);
  map_msg(&m);
  assert_int_equal(pcp_encode_request(&m, buf, sizeof buf, NULL), PCP_WIRE_INVALID);
}

static void test_A9_reject_short(void **state) {
  (void)state;
  uint8_t b[PCP_MAX_PACKET];
  size_t full = raw_map_response(b, PCP_SUCCESS);
  pcp_msg_t m;
  static const size_t lens[] = {0, 1, 4, 8, 12, 20, 23};
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
    assert_int_equal(pcp_decode_response(b, lens[i], &m), PCP_WIRE_SHORT);
  assert_int_equal(pcp_decode_response(NULL, 0, &m), PCP_WIRE_SHORT);
  /* payload truncated: a MAP response of 24 + 32 octets */
  assert_int_equal(pcp_decode_response(b, full - 4, &m), PCP_WIRE_SHORT);
  assert_int_equal(pcp_decode_response(b, 24, &m), PCP_WIRE_SHORT);
  assert_int_equal(pcp_decode_response(b, full, &m), PCP_WIRE_OK);
}

static void test_A9_reject_long(void **state) {
  (void)state;
  uint8_t b[1200];
  memset(b, 0, sizeof b);
  size_t n = raw_map_response(b, PCP_SUCCESS);
  /* fill to exactly 1100 with one unknown optional option: accepted */
  uint16_t olen = (uint16_t)(PCP_MAX_PACKET - n - 4);
  b[n] = 200;
  put16(b + n + 2, olen);
  pcp_msg_t m;
  assert_int_equal(pcp_decode_response(b, PCP_MAX_PACKET, &m), PCP_WIRE_OK);
  assert_int_equal(m.n_unknown_options, 1);
  assert_int_equal(pcp_decode_response(b, PCP_MAX_PACKET + 4, &m), PCP_WIRE_LONG);
  assert_int_equal(pcp_decode_response(b, PCP_MAX_PACKET + 1, &m), PCP_WIRE_LONG);
  assert_int_equal(pcp_decode_response(b, sizeof b, &m), PCP_WIRE_LONG);
  assert_int_equal(pcp_decode_request(b, PCP_MAX_PACKET + 4, &m), PCP_WIRE_LONG);
}

static void test_A9_reject_unaligned(void **state) {
  (void)state;
  uint8_t b[PCP_MAX_PACKET];
  memset(b, 0, sizeof b);
  size_t n = raw_map_response(b, PCP_SUCCESS);
  pcp_msg_t m;
  for (size_t extra = 1; extra < 4; extra++)
    assert_int_equal(pcp_decode_response(b, n + extra, &m), PCP_WIRE_UNALIGNED);
  assert_int_equal(pcp_decode_response(b, 25, &m), PCP_WIRE_UNALIGNED);
  assert_int_equal(pcp_decode_response(b, 1099, &m), PCP_WIRE_UNALIGNED);
  assert_int_equal(pcp_decode_request(b, 26, &m), PCP_WIRE_UNALIGNED);
}

static void test_A10_version_direction_opcode(void **state) {
  (void)state;
  uint8_t b[PCP_MAX_PACKET];
  size_t n = raw_map_response(b, PCP_SUCCESS);
  pcp_msg_t m;
  assert_int_equal(pcp_decode_response(b, n, &m), PCP_WIRE_OK);
  b[0] = 1; /* F3: no version 1 */
  assert_int_equal(pcp_decode_response(b, n, &m), PCP_WIRE_VERSION);
  b[0] = 0;
  assert_int_equal(pcp_decode_response(b, n, &m), PCP_WIRE_VERSION);
  b[0] = 3;
  assert_int_equal(pcp_decode_response(b, n, &m), PCP_WIRE_VERSION);
  b[0] = 2;
  b[1] = 0x01; /* R = 0: a request, not a response */
  assert_int_equal(pcp_decode_response(b, n, &m), PCP_WIRE_DIRECTION);
  b[1] = 0x83; /* opcode 3 */
  assert_int_equal(pcp_decode_response(b, n, &m), PCP_WIRE_OPCODE);
  b[1] = 0xff;
  assert_int_equal(pcp_decode_response(b, n, &m), PCP_WIRE_OPCODE);
  b[1] = 0x80; /* ANNOUNCE: no payload */
  assert_int_equal(pcp_decode_response(b, 24, &m), PCP_WIRE_OK);
  assert_int_equal(m.opcode, PCP_OP_ANNOUNCE);

  /* server side: R must be 0 */
  pcp_msg_t req;
  map_msg(&req);
  assert_int_equal(pcp_encode_request(&req, b, sizeof b, &n), PCP_WIRE_OK);
  assert_int_equal(pcp_decode_request(b, n, &m), PCP_WIRE_OK);
  assert_int_equal(pcp_decode_response(b, n, &m), PCP_WIRE_DIRECTION);
  b[1] |= 0x80;
  assert_int_equal(pcp_decode_request(b, n, &m), PCP_WIRE_DIRECTION);
  b[1] = 0x05;
  assert_int_equal(pcp_decode_request(b, n, &m), PCP_WIRE_OPCODE);
  b[1] = 0x01;
  b[0] = 1;
  assert_int_equal(pcp_decode_request(b, n, &m), PCP_WIRE_VERSION);
}

static void test_A11_unknown_options_skipped(void **state) {
  (void)state;
  uint8_t b[PCP_MAX_PACKET];
  size_t n = raw_map_response(b, PCP_SUCCESS);
  static const uint8_t junk[7] = {1, 2, 3, 4, 5, 6, 7};
  n += raw_option(b + n, 4, junk, 7);   /* unknown, mandatory range */
  n += raw_option(b + n, 127, junk, 0); /* unknown, mandatory range */
  n += raw_option(b + n, 0, junk, 4);   /* reserved code 0 */
  n += raw_option(b + n, 200, junk, 3); /* unknown, optional range */
  uint8_t tp[16];
  v4(tp, 10, 9, 8, 7);
  n += raw_option(b + n, PCP_OPT_THIRD_PARTY, tp, 16);
  pcp_msg_t m;
  assert_int_equal(pcp_decode_response(b, n, &m), PCP_WIRE_OK);
  assert_int_equal(m.n_unknown_options, 4);
  assert_true(m.has_unknown_mandatory);
  assert_true(m.has_third_party); /* known options after the unknown ones still parsed */
  assert_memory_equal(m.third_party, tp, 16);
  assert_int_equal(m.protocol, 17);

  /* only optional-range unknowns: not mandatory */
  n = raw_map_response(b, PCP_SUCCESS);
  n += raw_option(b + n, 129, junk, 5);
  n += raw_option(b + n, 255, junk, 0);
  assert_int_equal(pcp_decode_response(b, n, &m), PCP_WIRE_OK);
  assert_int_equal(m.n_unknown_options, 2);
  assert_false(m.has_unknown_mandatory);
}

static void test_A11_option_outside_its_opcode_is_unknown(void **state) {
  (void)state;
  /* PREFER_FAILURE and FILTER are MAP-only: in a PEER response they are
   * skipped like unknown options, not parsed and not fatal */
  pcp_msg_t m;
  peer_msg(&m);
  uint8_t b[PCP_MAX_PACKET];
  size_t n;
  assert_int_equal(pcp_encode_response(&m, b, sizeof b, &n), PCP_WIRE_OK);
  n += raw_option(b + n, PCP_OPT_PREFER_FAILURE, NULL, 0);
  uint8_t f[20] = {0, 128};
  n += raw_option(b + n, PCP_OPT_FILTER, f, 20);
  pcp_msg_t d;
  assert_int_equal(pcp_decode_response(b, n, &d), PCP_WIRE_OK);
  assert_false(d.prefer_failure);
  assert_int_equal(d.n_filters, 0);
  assert_int_equal(d.n_unknown_options, 2);
  assert_true(d.has_unknown_mandatory);
}

static void test_A11_option_overrunning_packet_rejected(void **state) {
  (void)state;
  uint8_t b[PCP_MAX_PACKET];
  size_t n = raw_map_response(b, PCP_SUCCESS);
  pcp_msg_t m;
  /* length 8 but only 4 octets of data left */
  b[n] = 200;
  b[n + 1] = 0;
  put16(b + n + 2, 8);
  memset(b + n + 4, 0, 4);
  assert_int_equal(pcp_decode_response(b, n + 8, &m), PCP_WIRE_OPTION);
  /* length 1: its padding runs past the end */
  put16(b + n + 2, 1);
  assert_int_equal(pcp_decode_response(b, n + 4, &m), PCP_WIRE_OPTION);
  assert_int_equal(pcp_decode_response(b, n + 8, &m), PCP_WIRE_OK);
  /* the largest length */
  put16(b + n + 2, 0xffff);
  assert_int_equal(pcp_decode_response(b, n + 8, &m), PCP_WIRE_OPTION);
}

static void test_A11_malformed_known_option_rejected(void **state) {
  (void)state;
  uint8_t b[PCP_MAX_PACKET];
  pcp_msg_t m;
  static const uint8_t z[20] = {0};
  size_t n = raw_map_response(b, PCP_SUCCESS);
  n += raw_option(b + n, PCP_OPT_THIRD_PARTY, z, 4); /* must be 16 */
  assert_int_equal(pcp_decode_response(b, n, &m), PCP_WIRE_OPTION);
  n = raw_map_response(b, PCP_SUCCESS);
  n += raw_option(b + n, PCP_OPT_PREFER_FAILURE, z, 4); /* must be 0 */
  assert_int_equal(pcp_decode_response(b, n, &m), PCP_WIRE_OPTION);
  n = raw_map_response(b, PCP_SUCCESS);
  n += raw_option(b + n, PCP_OPT_FILTER, z, 16); /* must be 20 */
  assert_int_equal(pcp_decode_response(b, n, &m), PCP_WIRE_OPTION);
}

static void test_A12_unknown_result_code_kept(void **state) {
  (void)state;
  uint8_t b[PCP_MAX_PACKET];
  pcp_msg_t m;
  static const uint8_t codes[] = {14, 99, 200, 255};
  for (size_t i = 0; i < sizeof codes; i++) {
    size_t n = raw_map_response(b, codes[i]);
    assert_int_equal(pcp_decode_response(b, n, &m), PCP_WIRE_OK);
    assert_int_equal(m.result, codes[i]);
    assert_int_equal(m.lifetime, 3600);
    assert_string_equal(pcp_result_name(codes[i]), "UNKNOWN");
    assert_false(pcp_result_is_short(codes[i])); /* generic long-lifetime error */
  }
}

static void test_A12_result_names(void **state) {
  (void)state;
  static const char *const names[] = {
      "SUCCESS",          "UNSUPP_VERSION",        "NOT_AUTHORIZED",   "MALFORMED_REQUEST",
      "UNSUPP_OPCODE",    "UNSUPP_OPTION",         "MALFORMED_OPTION", "NETWORK_FAILURE",
      "NO_RESOURCES",     "UNSUPP_PROTOCOL",       "USER_EX_QUOTA",    "CANNOT_PROVIDE_EXTERNAL",
      "ADDRESS_MISMATCH", "EXCESSIVE_REMOTE_PEERS"};
  for (int i = 0; i < 14; i++)
    assert_string_equal(pcp_result_name(i), names[i]);
  assert_string_equal(pcp_result_name(14), "UNKNOWN");
  assert_string_equal(pcp_result_name(-1), "UNKNOWN");
  assert_string_equal(pcp_result_name(1000), "UNKNOWN");
}

static void test_G1_short_and_long_errors(void **state) {
  (void)state;
  for (int r = 0; r < 300; r++) {
    int want = r == 7 || r == 8 || r == 10;
    assert_int_equal(pcp_result_is_short(r), want);
  }
  assert_false(pcp_result_is_short(-7));
}

static void test_G3_error_response_payload_still_parsed(void **state) {
  (void)state;
  uint8_t b[PCP_MAX_PACKET];
  size_t n = raw_map_response(b, PCP_NO_RESOURCES);
  put32(b + 4, 30);
  pcp_msg_t m;
  assert_int_equal(pcp_decode_response(b, n, &m), PCP_WIRE_OK);
  assert_int_equal(m.result, PCP_NO_RESOURCES);
  assert_int_equal(m.lifetime, 30);
  assert_int_equal(m.epoch, 12345);
  assert_memory_equal(m.nonce, NONCE, PCP_NONCE_LEN);
  assert_int_equal(m.internal_port, 0x1234);
  assert_int_equal(m.external_port, 0x5678);
}

/* ---- F: NAT-PMP detection ---- */

static void test_F2_natpmp_reply_detected_before_length_rule(void **state) {
  (void)state;
  pcp_msg_t m;
  /* opcode byte 128 + op, result 1, epoch 0x00010203 */
  uint8_t r1[8] = {0, 0x81, 0, 1, 0, 1, 2, 3};
  assert_int_equal(pcp_decode_response(r1, 8, &m), PCP_WIRE_NATPMP);
  assert_int_equal(m.result, PCP_UNSUPP_VERSION);
  assert_int_equal(m.epoch, 0x00010203);
  uint8_t r2[8] = {0, 0x80, 0, 1, 0, 0, 0, 0};
  assert_int_equal(pcp_decode_response(r2, 8, &m), PCP_WIRE_NATPMP);
  uint8_t r3[8] = {0, 0x82, 0, 1, 0, 0, 0, 9};
  assert_int_equal(pcp_decode_response(r3, 8, &m), PCP_WIRE_NATPMP);
  /* opcode byte 0 */
  uint8_t r4[8] = {0, 0, 0, 1, 0, 0, 0, 0};
  assert_int_equal(pcp_decode_response(r4, 8, &m), PCP_WIRE_NATPMP);
}

static void test_F2_other_8_octet_replies_are_not_natpmp(void **state) {
  (void)state;
  pcp_msg_t m;
  uint8_t r[8] = {0, 0x81, 0, 0, 0, 0, 0, 0}; /* result 0 */
  assert_int_equal(pcp_decode_response(r, 8, &m), PCP_WIRE_SHORT);
  r[3] = 2; /* result 2 */
  assert_int_equal(pcp_decode_response(r, 8, &m), PCP_WIRE_SHORT);
  r[2] = 1; /* result 0x0101 */
  r[3] = 1;
  assert_int_equal(pcp_decode_response(r, 8, &m), PCP_WIRE_SHORT);
  uint8_t v[8] = {2, 0x81, 0, 1, 0, 0, 0, 0}; /* version 2 */
  assert_int_equal(pcp_decode_response(v, 8, &m), PCP_WIRE_SHORT);
  uint8_t o[8] = {0, 0x01, 0, 1, 0, 0, 0, 0}; /* opcode byte neither 0 nor >= 128 */
  assert_int_equal(pcp_decode_response(o, 8, &m), PCP_WIRE_SHORT);
  uint8_t l[12] = {0, 0x81, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}; /* not 8 octets */
  assert_int_equal(pcp_decode_response(l, 12, &m), PCP_WIRE_SHORT);
  assert_int_equal(pcp_decode_response(l, 7, &m), PCP_WIRE_SHORT);
  /* a server never sees it as NAT-PMP */
  uint8_t s[8] = {0, 0x81, 0, 1, 0, 0, 0, 0};
  assert_int_equal(pcp_decode_request(s, 8, &m), PCP_WIRE_SHORT);
}

/* ---- H, I, J, K: opcodes and options ---- */

static void test_H8_prefer_failure_encoding(void **state) {
  (void)state;
  pcp_msg_t m;
  map_msg(&m);
  m.prefer_failure = 1;
  uint8_t buf[PCP_MAX_PACKET];
  size_t n;
  assert_int_equal(pcp_encode_request(&m, buf, sizeof buf, &n), PCP_WIRE_OK);
  assert_int_equal(n, 64);
  static const uint8_t want[4] = {2, 0, 0, 0};
  assert_memory_equal(buf + 60, want, 4);
  pcp_msg_t d;
  assert_int_equal(pcp_decode_request(buf, n, &d), PCP_WIRE_OK);
  assert_true(d.prefer_failure);
  /* MAP only: never on PEER (I1) or ANNOUNCE */
  peer_msg(&m);
  m.prefer_failure = 1;
  assert_int_equal(pcp_encode_request(&m, buf, sizeof buf, &n), PCP_WIRE_INVALID);
  m.opcode = PCP_OP_ANNOUNCE;
  assert_int_equal(pcp_encode_request(&m, buf, sizeof buf, &n), PCP_WIRE_INVALID);
}

static void test_I1_peer_encoding_exact_bytes(void **state) {
  (void)state;
  pcp_msg_t m;
  peer_msg(&m);
  m.lifetime = 0x00000e10;
  uint8_t buf[PCP_MAX_PACKET];
  size_t n;
  assert_int_equal(pcp_encode_request(&m, buf, sizeof buf, &n), PCP_WIRE_OK);
  assert_int_equal(n, PCP_HEADER_LEN + PCP_PEER_LEN);
  static const uint8_t want[80] = {
      2,    2,    0,    0,    0,   0,   0x0e, 0x10, 0,    0,    0,    0,    0,    0,    0,    0,
      0,    0,    0xff, 0xff, 192, 168, 1,    10,   0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
      0xa8, 0xa9, 0xaa, 0xab, 6,   0,   0,    0,    0x12, 0x34, 0x56, 0x78, 0,    0,    0,    0,
      0,    0,    0,    0,    0,   0,   0xff, 0xff, 0,    0,    0,    0,    0x9a, 0xbc, 0,    0,
      0,    0,    0,    0,    0,   0,   0,    0,    0,    0,    0xff, 0xff, 198,  51,   100,  7};
  assert_memory_equal(buf, want, sizeof want);
  /* FILTER is MAP-only */
  m.n_filters = 1;
  m.filters[0].prefix_len = 128;
  assert_int_equal(pcp_encode_request(&m, buf, sizeof buf, &n), PCP_WIRE_INVALID);
}

static void test_J1_third_party_encoding(void **state) {
  (void)state;
  pcp_msg_t m;
  map_msg(&m);
  m.has_third_party = 1;
  v6(m.third_party, 0x42);
  uint8_t buf[PCP_MAX_PACKET];
  size_t n;
  assert_int_equal(pcp_encode_request(&m, buf, sizeof buf, &n), PCP_WIRE_OK);
  assert_int_equal(n, 80);
  static const uint8_t hdr[4] = {1, 0, 0, 16};
  assert_memory_equal(buf + 60, hdr, 4);
  assert_memory_equal(buf + 64, m.third_party, 16);
  /* PEER carries it as well */
  peer_msg(&m);
  m.has_third_party = 1;
  v4(m.third_party, 192, 168, 1, 50);
  assert_int_equal(pcp_encode_request(&m, buf, sizeof buf, &n), PCP_WIRE_OK);
  assert_int_equal(n, 100);
  assert_memory_equal(buf + 80, hdr, 4);
  assert_memory_equal(buf + 84, m.third_party, 16);
  /* not valid on ANNOUNCE */
  m.opcode = PCP_OP_ANNOUNCE;
  assert_int_equal(pcp_encode_request(&m, buf, sizeof buf, &n), PCP_WIRE_INVALID);
}

static void test_J2_filter_prefix_encoding(void **state) {
  (void)state;
  pcp_msg_t m;
  map_msg(&m);
  m.n_filters = 2;
  m.filters[0].prefix_len = 96 + 24; /* IPv4 /24 */
  m.filters[0].port = 8080;
  v4(m.filters[0].addr, 203, 0, 113, 0);
  m.filters[1].prefix_len = 0; /* remove all filters */
  uint8_t buf[PCP_MAX_PACKET];
  size_t n;
  assert_int_equal(pcp_encode_request(&m, buf, sizeof buf, &n), PCP_WIRE_OK);
  assert_int_equal(n, 60 + 2 * 24);
  static const uint8_t want[24] = {3, 0, 0, 20, 0, 120, 0x1f, 0x90, 0,   0, 0,   0,
                                   0, 0, 0, 0,  0, 0,   0xff, 0xff, 203, 0, 113, 0};
  assert_memory_equal(buf + 60, want, 24);
  assert_int_equal(buf[84], 3);
  assert_int_equal(buf[89], 0);

  /* out of range prefixes */
  m.filters[0].prefix_len = 95; /* IPv4-mapped needs 96..128 */
  assert_int_equal(pcp_encode_request(&m, buf, sizeof buf, &n), PCP_WIRE_INVALID);
  m.filters[0].prefix_len = 129;
  assert_int_equal(pcp_encode_request(&m, buf, sizeof buf, &n), PCP_WIRE_INVALID);
  v6(m.filters[0].addr, 0);
  m.filters[0].prefix_len = 48; /* IPv6 1..128 */
  assert_int_equal(pcp_encode_request(&m, buf, sizeof buf, &n), PCP_WIRE_OK);
  assert_int_equal(buf[65], 48);

  /* the decoder applies the same rule, and keeps at most 8 filters */
  uint8_t b[PCP_MAX_PACKET];
  size_t len = raw_map_response(b, PCP_SUCCESS);
  uint8_t f[20] = {0, 129};
  size_t bad = len + raw_option(b + len, PCP_OPT_FILTER, f, 20);
  pcp_msg_t d;
  assert_int_equal(pcp_decode_response(b, bad, &d), PCP_WIRE_OPTION);
  f[1] = 104;
  v4(f + 4, 198, 51, 100, 0);
  put16(f + 2, 53);
  for (int i = 0; i < PCP_MAX_FILTERS; i++)
    len += raw_option(b + len, PCP_OPT_FILTER, f, 20);
  assert_int_equal(pcp_decode_response(b, len, &d), PCP_WIRE_OK);
  assert_int_equal(d.n_filters, PCP_MAX_FILTERS);
  assert_int_equal(d.filters[7].prefix_len, 104);
  assert_int_equal(d.filters[7].port, 53);
  assert_memory_equal(d.filters[7].addr, f + 4, 16);
  len += raw_option(b + len, PCP_OPT_FILTER, f, 20);
  assert_int_equal(pcp_decode_response(b, len, &d), PCP_WIRE_OPTION);
}

static void test_J3_description_encoding(void **state) {
  (void)state;
  pcp_msg_t m;
  uint8_t buf[PCP_MAX_PACKET];
  size_t n;
  const char *text = "caf\xc3\xa9 server"; /* UTF-8, 12 octets */
  for (size_t len = 1; len <= 12; len++) {
    map_msg(&m);
    memcpy(m.description, text, len);
    m.description[len] = '\0';
    m.description_len = len;
    assert_int_equal(pcp_encode_request(&m, buf, sizeof buf, &n), PCP_WIRE_OK);
    size_t padded = (len + 3) / 4 * 4;
    assert_int_equal(n, 60 + 4 + padded);
    assert_int_equal(buf[60], 128); /* RFC 7220 code */
    assert_int_equal(buf[61], 0);
    assert_int_equal(buf[62], 0);
    assert_int_equal(buf[63], len); /* without padding */
    assert_memory_equal(buf + 64, text, len);
    for (size_t i = len; i < padded; i++)
      assert_int_equal(buf[64 + i], 0);
    pcp_msg_t d;
    assert_int_equal(pcp_decode_request(buf, n, &d), PCP_WIRE_OK);
    assert_int_equal(d.description_len, len);
    assert_memory_equal(d.description, text, len);
    assert_int_equal(d.description[len], '\0');
    assert_int_equal(d.n_unknown_options, 0);
  }
  /* a longer description from a server is cut to 128 octets */
  uint8_t b[PCP_MAX_PACKET];
  uint8_t longtext[300];
  memset(longtext, 'L', sizeof longtext);
  size_t len = raw_map_response(b, PCP_SUCCESS);
  len += raw_option(b + len, PCP_OPT_DESCRIPTION, longtext, 300);
  pcp_msg_t d;
  assert_int_equal(pcp_decode_response(b, len, &d), PCP_WIRE_OK);
  assert_int_equal(d.description_len, PCP_MAX_DESCRIPTION);
  assert_int_equal(d.description[PCP_MAX_DESCRIPTION], '\0');
  /* not valid on ANNOUNCE */
  map_msg(&m);
  m.opcode = PCP_OP_ANNOUNCE;
  m.description_len = 3;
  assert_int_equal(pcp_encode_request(&m, buf, sizeof buf, &n), PCP_WIRE_INVALID);
}

static void test_K1_announce_no_payload_lifetime_0(void **state) {
  (void)state;
  pcp_msg_t m;
  pcp_msg_init(&m);
  m.opcode = PCP_OP_ANNOUNCE;
  m.lifetime = 1234; /* must not be sent */
  v4(m.client_addr, 192, 168, 1, 10);
  uint8_t buf[PCP_MAX_PACKET];
  size_t n;
  assert_int_equal(pcp_encode_request(&m, buf, sizeof buf, &n), PCP_WIRE_OK);
  assert_int_equal(n, 24);
  static const uint8_t want[24] = {2, 0, 0, 0, 0, 0, 0,    0,    0,   0,   0, 0,
                                   0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 10};
  assert_memory_equal(buf, want, 24);
  m.epoch = 77;
  assert_int_equal(pcp_encode_response(&m, buf, sizeof buf, &n), PCP_WIRE_OK);
  assert_int_equal(n, 24);
  static const uint8_t resp[12] = {2, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 77};
  assert_memory_equal(buf, resp, 12);
  pcp_msg_t d;
  assert_int_equal(pcp_decode_response(buf, n, &d), PCP_WIRE_OK);
  assert_int_equal(d.opcode, PCP_OP_ANNOUNCE);
  assert_int_equal(d.epoch, 77);
  assert_int_equal(d.lifetime, 0);
}

/* ---- round trips ---- */

static void roundtrip(uint8_t opcode, int with_options) {
  pcp_msg_t m, d;
  peer_msg(&m);
  m.opcode = opcode;
  if (with_options && opcode != PCP_OP_ANNOUNCE)
    all_options(&m);
  if (opcode == PCP_OP_ANNOUNCE)
    m.lifetime = 0;
  uint8_t buf[PCP_MAX_PACKET];
  size_t n;
  assert_int_equal(pcp_encode_request(&m, buf, sizeof buf, &n), PCP_WIRE_OK);
  assert_int_equal(pcp_decode_request(buf, n, &d), PCP_WIRE_OK);
  assert_msgs_equal(&m, &d, 0);
  assert_int_equal(d.n_unknown_options, 0);

  m.result = PCP_SUCCESS;
  m.epoch = 0xfedcba98;
  v4(m.external_addr, 203, 0, 113, 5);
  assert_int_equal(pcp_encode_response(&m, buf, sizeof buf, &n), PCP_WIRE_OK);
  assert_int_equal(pcp_decode_response(buf, n, &d), PCP_WIRE_OK);
  assert_msgs_equal(&m, &d, 1);
  m.result = PCP_CANNOT_PROVIDE_EXTERNAL;
  assert_int_equal(pcp_encode_response(&m, buf, sizeof buf, &n), PCP_WIRE_OK);
  assert_int_equal(pcp_decode_response(buf, n, &d), PCP_WIRE_OK);
  assert_msgs_equal(&m, &d, 1);
}

static void test_roundtrip_map(void **state) {
  (void)state;
  roundtrip(PCP_OP_MAP, 0);
  roundtrip(PCP_OP_MAP, 1);
}

static void test_roundtrip_peer(void **state) {
  (void)state;
  roundtrip(PCP_OP_PEER, 0);
  roundtrip(PCP_OP_PEER, 1);
}

static void test_roundtrip_announce(void **state) {
  (void)state;
  roundtrip(PCP_OP_ANNOUNCE, 0);
}

/* The decoder is total: mutated and random inputs never crash (run under
 * ASan/UBSan with PORTMAP_SANITIZE=ON) and any accepted message
 * re-encodes. */
static void test_A9_decoder_total_on_mutations(void **state) {
  (void)state;
  pcp_msg_t m, d;
  map_msg(&m);
  all_options(&m);
  uint8_t seed[PCP_MAX_PACKET];
  size_t seed_len;
  assert_int_equal(pcp_encode_response(&m, seed, sizeof seed, &seed_len), PCP_WIRE_OK);
  uint32_t x = 12345;
  for (int iter = 0; iter < 200000; iter++) {
    uint8_t b[PCP_MAX_PACKET + 8];
    memset(b, 0, sizeof b); /* a longer length reads defined zeros */
    memcpy(b, seed, seed_len);
    size_t len = seed_len;
    for (int k = 0; k < 4; k++) {
      x = x * 1103515245u + 12345u;
      b[(x >> 8) % seed_len] = (uint8_t)(x >> 20);
    }
    x = x * 1103515245u + 12345u;
    if ((x >> 16) % 8 == 0)
      len = (x >> 4) % (sizeof b);
    int rc = pcp_decode_response(b, len, &d);
    if (rc == PCP_WIRE_OK) {
      uint8_t out[PCP_MAX_PACKET];
      size_t n;
      assert_int_equal(pcp_encode_response(&d, out, sizeof out, &n), PCP_WIRE_OK);
    }
    (void)pcp_decode_request(b, len, &d);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_A3_F1_request_header_exact_bytes),
      cmocka_unit_test(test_F1_every_opcode_sends_version_2),
      cmocka_unit_test(test_A3_map_payload_exact_bytes),
      cmocka_unit_test(test_A4_client_ip_v4mapped),
      cmocka_unit_test(test_A6_v4mapped_checks_all_96_bits),
      cmocka_unit_test(test_A7_no_preference_address),
      cmocka_unit_test(test_A8_option_tlv_layout_and_padding),
      cmocka_unit_test(test_A8_decoder_skips_padding),
      cmocka_unit_test(test_A2_largest_message_within_1100),
      cmocka_unit_test(test_A2_oversized_description_refused),
      cmocka_unit_test(test_A2_nospace),
      cmocka_unit_test(test_encoder_rejects_invalid_fields),
      cmocka_unit_test(test_A9_reject_short),
      cmocka_unit_test(test_A9_reject_long),
      cmocka_unit_test(test_A9_reject_unaligned),
      cmocka_unit_test(test_A10_version_direction_opcode),
      cmocka_unit_test(test_A11_unknown_options_skipped),
      cmocka_unit_test(test_A11_option_outside_its_opcode_is_unknown),
      cmocka_unit_test(test_A11_option_overrunning_packet_rejected),
      cmocka_unit_test(test_A11_malformed_known_option_rejected),
      cmocka_unit_test(test_A12_unknown_result_code_kept),
      cmocka_unit_test(test_A12_result_names),
      cmocka_unit_test(test_G1_short_and_long_errors),
      cmocka_unit_test(test_G3_error_response_payload_still_parsed),
      cmocka_unit_test(test_F2_natpmp_reply_detected_before_length_rule),
      cmocka_unit_test(test_F2_other_8_octet_replies_are_not_natpmp),
      cmocka_unit_test(test_H8_prefer_failure_encoding),
      cmocka_unit_test(test_I1_peer_encoding_exact_bytes),
      cmocka_unit_test(test_J1_third_party_encoding),
      cmocka_unit_test(test_J2_filter_prefix_encoding),
      cmocka_unit_test(test_J3_description_encoding),
      cmocka_unit_test(test_K1_announce_no_payload_lifetime_0),
      cmocka_unit_test(test_roundtrip_map),
      cmocka_unit_test(test_roundtrip_peer),
      cmocka_unit_test(test_roundtrip_announce),
      cmocka_unit_test(test_A9_decoder_total_on_mutations),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
