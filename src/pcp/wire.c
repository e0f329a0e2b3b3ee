/* SPDX-License-Identifier: MIT */
/*
 * PCP wire codec (RFC 6887 sections 7, 11, 12, 13, 14; RFC 7220).
 *
 * Request header (RFC 6887 section 7.1, checklist A3), 24 octets:
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  Version = 2  |R|   Opcode    |         Reserved              |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                 Requested Lifetime (32 bits)                  |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                                                               |
 *   |            PCP Client's IP Address (128 bits)                 |
 *   |                                                               |
 *   |                                                               |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   :             (optional) Opcode-specific information            :
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   :             (optional) PCP Options                            :
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Response header (section 7.2), 24 octets:
 *
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  Version = 2  |R|   Opcode    |   Reserved    |  Result Code  |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                      Lifetime (32 bits)                       |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                     Epoch Time (32 bits)                      |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                      Reserved (96 bits)                       |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * MAP payload (section 11.1), 36 octets; in responses the external
 * port and address are the assigned ones:
 *
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                 Mapping Nonce (96 bits)                       |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |   Protocol    |          Reserved (24 bits)                   |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |        Internal Port          |    Suggested External Port    |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |           Suggested External IP Address (128 bits)            |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * PEER payload (section 12.1), 56 octets: the MAP fields, then
 *
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |       Remote Peer Port        |     Reserved (16 bits)        |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |               Remote Peer IP Address (128 bits)               |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * ANNOUNCE (section 14.1) has no payload; its lifetime is 0 on
 * transmission and ignored on reception (checklist K1).
 *
 * Option TLV (section 7.3, checklist A8). Length counts the data without
 * the padding to a multiple of 4; codes 0-127 are mandatory to process,
 * 128-255 optional:
 *
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  Option Code  |  Reserved     |       Option Length           |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   :                       (optional) Data (padded)                :
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 *   THIRD_PARTY (1, MAP and PEER, section 13.1): 16-octet internal address.
 *   PREFER_FAILURE (2, MAP only, section 13.2): no data.
 *   FILTER (3, MAP only, repeatable, section 13.3), 20 octets:
 *     | Reserved | Prefix Length | Remote Peer Port (16) | Remote Peer IP (128) |
 *   DESCRIPTION (128, MAP and PEER, RFC 7220): UTF-8 text, length = text length.
 */
#include "pcp/wire.h"

#include <string.h>

#include "util/reader.h"

/* ---- bounds-checked writer: every access fails past the end ----
 * (received octets are read through util/reader.h) */

typedef struct wr {
  uint8_t *buf;
  size_t cap, pos;
} wr_t;

static int wr_bytes(wr_t *w, const void *p, size_t n) {
  if (w->cap - w->pos < n)
    return 0;
  if (n > 0)
    memcpy(w->buf + w->pos, p, n);
  w->pos += n;
  return 1;
}

static int wr_zero(wr_t *w, size_t n) {
  if (w->cap - w->pos < n)
    return 0;
  memset(w->buf + w->pos, 0, n);
  w->pos += n;
  return 1;
}

static int wr_u8(wr_t *w, uint8_t v) {
  return wr_bytes(w, &v, 1);
}

static int wr_u16(wr_t *w, uint16_t v) {
  const uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
  return wr_bytes(w, b, sizeof b);
}

static int wr_u32(wr_t *w, uint32_t v) {
  const uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
  return wr_bytes(w, b, sizeof b);
}

/* ---- shared helpers ---- */

#define OPT_HDR_LEN 4u
#define THIRD_PARTY_LEN 16u
#define FILTER_LEN 20u
#define R_BIT 0x80u

static size_t pad4(size_t n) {
  return (n + 3u) & ~(size_t)3u;
}

static size_t payload_len(uint8_t opcode) {
  switch (opcode) {
  case PCP_OP_MAP:
    return PCP_MAP_LEN;
  case PCP_OP_PEER:
    return PCP_PEER_LEN;
  default:
    return 0; /* ANNOUNCE: section 14.1 */
  }
}

/* Which options belong to which opcode: THIRD_PARTY (13.1) MAP and PEER,
 * PREFER_FAILURE (13.2) and FILTER (13.3) MAP only, DESCRIPTION (RFC 7220)
 * MAP and PEER. The decoder treats an option outside its opcode as unknown
 * (A11); the encoders refuse to write one (H8, I1, J2). */
static int option_allowed(uint8_t code, uint8_t opcode) {
  switch (code) {
  case PCP_OPT_THIRD_PARTY:
  case PCP_OPT_DESCRIPTION:
    return opcode == PCP_OP_MAP || opcode == PCP_OP_PEER;
  case PCP_OPT_PREFER_FAILURE:
  case PCP_OPT_FILTER:
    return opcode == PCP_OP_MAP;
  default:
    return 0;
  }
}

/* Section 13.3 (J2): the prefix length counts bits of the 128-bit field.
 * 0 means "remove all filters"; otherwise 96-128 for an IPv4-mapped
 * address and 1-128 for IPv6. */
static int filter_prefix_ok(const pcp_filter_t *f) {
  if (f->prefix_len == 0)
    return 1;
  if (f->prefix_len > 128)
    return 0;
  return !pcp_addr_is_v4mapped(f->addr) || f->prefix_len >= 96;
}

/* ---- encoder ---- */

static int validate_msg(const pcp_msg_t *m) {
  if (m->opcode > PCP_OP_PEER)
    return 0;
  if (m->description_len > PCP_MAX_DESCRIPTION || m->n_filters > PCP_MAX_FILTERS)
    return 0;
  if (m->has_third_party && !option_allowed(PCP_OPT_THIRD_PARTY, m->opcode))
    return 0;
  /* H8, I1: PREFER_FAILURE is a MAP option; PEER never carries it. */
  if (m->prefer_failure && !option_allowed(PCP_OPT_PREFER_FAILURE, m->opcode))
    return 0;
  if (m->n_filters > 0 && !option_allowed(PCP_OPT_FILTER, m->opcode))
    return 0;
  if (m->description_len > 0 && !option_allowed(PCP_OPT_DESCRIPTION, m->opcode))
    return 0;
  for (size_t i = 0; i < m->n_filters; i++)
    if (!filter_prefix_ok(&m->filters[i]))
      return 0;
  return 1;
}

static size_t options_len(const pcp_msg_t *m, int with_description) {
  size_t n = 0;
  if (m->has_third_party)
    n += OPT_HDR_LEN + THIRD_PARTY_LEN;
  if (m->prefer_failure)
    n += OPT_HDR_LEN;
  n += m->n_filters * (OPT_HDR_LEN + FILTER_LEN);
  if (with_description && m->description_len > 0)
    n += OPT_HDR_LEN + pad4(m->description_len);
  return n;
}

static int write_payload(wr_t *w, const pcp_msg_t *m) {
  int ok = 1;
  if (m->opcode == PCP_OP_ANNOUNCE)
    return 1;
  ok &= wr_bytes(w, m->nonce, PCP_NONCE_LEN);
  ok &= wr_u8(w, m->protocol);
  ok &= wr_zero(w, 3);
  ok &= wr_u16(w, m->internal_port);
  ok &= wr_u16(w, m->external_port);
  ok &= wr_bytes(w, m->external_addr, 16);
  if (m->opcode == PCP_OP_PEER) {
    ok &= wr_u16(w, m->peer_port);
    ok &= wr_zero(w, 2);
    ok &= wr_bytes(w, m->peer_addr, 16);
  }
  return ok;
}

static int write_option_header(wr_t *w, uint8_t code, size_t len) {
  return wr_u8(w, code) && wr_u8(w, 0) && wr_u16(w, (uint16_t)len);
}

static int write_options(wr_t *w, const pcp_msg_t *m, int with_description) {
  int ok = 1;
  if (m->has_third_party) {
    ok &= write_option_header(w, PCP_OPT_THIRD_PARTY, THIRD_PARTY_LEN);
    ok &= wr_bytes(w, m->third_party, THIRD_PARTY_LEN);
  }
  if (m->prefer_failure)
    ok &= write_option_header(w, PCP_OPT_PREFER_FAILURE, 0); /* H8 */
  for (size_t i = 0; i < m->n_filters; i++) {
    const pcp_filter_t *f = &m->filters[i];
    ok &= write_option_header(w, PCP_OPT_FILTER, FILTER_LEN);
    ok &= wr_u8(w, 0);
    ok &= wr_u8(w, f->prefix_len);
    ok &= wr_u16(w, f->port);
    ok &= wr_bytes(w, f->addr, 16);
  }
  /* J3, RFC 7220: length = text length, then zero padding (A8). Some
   * servers reject the padded form (ROUTER-QUIRKS Q26); the retry without
   * DESCRIPTION is pcp.c's business, the wire format stays the RFC's. */
  if (with_description && m->description_len > 0) {
    ok &= write_option_header(w, PCP_OPT_DESCRIPTION, m->description_len);
    ok &= wr_bytes(w, m->description, m->description_len);
    ok &= wr_zero(w, pad4(m->description_len) - m->description_len);
  }
  return ok;
}

static int encode_msg(const pcp_msg_t *m, int response, uint8_t *buf, size_t cap, size_t *out_len) {
  if (out_len != NULL)
    *out_len = 0;
  if (m == NULL || out_len == NULL || (buf == NULL && cap > 0))
    return PCP_WIRE_INVALID;
  if (!validate_msg(m))
    return PCP_WIRE_INVALID;

  size_t fixed = PCP_HEADER_LEN + payload_len(m->opcode);
  int with_description = 1;
  size_t total = fixed + options_len(m, 1);
  /* A2: never more than 1100 octets; DESCRIPTION is the optional one to
   * sacrifice. With today's limits (8 filters, 128-octet description) the
   * largest message is 428 octets, so this guards future limits. */
  if (total > PCP_MAX_PACKET) {
    with_description = 0;
    total = fixed + options_len(m, 0);
    if (total > PCP_MAX_PACKET)
      return PCP_WIRE_INVALID;
  }
  if (buf == NULL || total > cap)
    return PCP_WIRE_NOSPACE;

  /* K1, section 14.1: ANNOUNCE lifetimes are 0 on transmission. */
  uint32_t lifetime = m->opcode == PCP_OP_ANNOUNCE ? 0 : m->lifetime;
  wr_t w = {buf, cap, 0};
  int ok = wr_u8(&w, PCP_VERSION); /* F1 */
  if (response) {
    ok &= wr_u8(&w, (uint8_t)(R_BIT | m->opcode));
    ok &= wr_u8(&w, 0);
    ok &= wr_u8(&w, m->result);
    ok &= wr_u32(&w, lifetime);
    ok &= wr_u32(&w, m->epoch);
    ok &= wr_zero(&w, 12);
  } else {
    /* A3: R=0, reserved zero, lifetime in network byte order; A4: the
     * caller supplies the client address, IPv4-mapped for IPv4. */
    ok &= wr_u8(&w, m->opcode);
    ok &= wr_u16(&w, 0);
    ok &= wr_u32(&w, lifetime);
    ok &= wr_bytes(&w, m->client_addr, 16);
  }
  ok &= write_payload(&w, m);
  ok &= write_options(&w, m, with_description);
  if (!ok || w.pos != total)
    return PCP_WIRE_NOSPACE;
  *out_len = total;
  return PCP_WIRE_OK;
}

int pcp_encode_request(const pcp_msg_t *m, uint8_t *buf, size_t cap, size_t *out_len) {
  return encode_msg(m, 0, buf, cap, out_len);
}

int pcp_encode_response(const pcp_msg_t *m, uint8_t *buf, size_t cap, size_t *out_len) {
  return encode_msg(m, 1, buf, cap, out_len);
}

/* ---- decoder ---- */

/* Every field of a received message is read through the bounded reader;
 * a short read leaves it bad (and the field zero, as pcp_msg_init() left
 * it), so each step checks portmap_rd_ok() once. */

static int read_payload(portmap_reader_t *r, pcp_msg_t *m) {
  if (m->opcode == PCP_OP_ANNOUNCE)
    return 1;
  portmap_rd_bytes(r, m->nonce, PCP_NONCE_LEN);
  m->protocol = portmap_rd_u8(r);
  portmap_rd_skip(r, 3);
  m->internal_port = portmap_rd_be16(r);
  m->external_port = portmap_rd_be16(r);
  portmap_rd_bytes(r, m->external_addr, 16);
  if (m->opcode == PCP_OP_PEER) {
    m->peer_port = portmap_rd_be16(r);
    portmap_rd_skip(r, 2);
    portmap_rd_bytes(r, m->peer_addr, 16);
  }
  return portmap_rd_ok(r);
}

/* One known option's data: d holds exactly its (unpadded) length. Returns
 * 0 when it is malformed. */
static int read_known_option(uint8_t code, portmap_reader_t *d, pcp_msg_t *m) {
  size_t olen = portmap_rd_left(d);
  switch (code) {
  case PCP_OPT_THIRD_PARTY:
    if (olen != THIRD_PARTY_LEN)
      return 0;
    m->has_third_party = 1; /* a repeated one: the last wins */
    portmap_rd_bytes(d, m->third_party, THIRD_PARTY_LEN);
    return portmap_rd_ok(d);
  case PCP_OPT_PREFER_FAILURE:
    if (olen != 0)
      return 0;
    m->prefer_failure = 1;
    return 1;
  case PCP_OPT_FILTER: {
    pcp_filter_t f;
    if (olen != FILTER_LEN || m->n_filters >= PCP_MAX_FILTERS)
      return 0;
    portmap_rd_skip(d, 1); /* reserved */
    f.prefix_len = portmap_rd_u8(d);
    f.port = portmap_rd_be16(d);
    portmap_rd_bytes(d, f.addr, 16);
    if (!portmap_rd_ok(d) || !filter_prefix_ok(&f))
      return 0;
    m->filters[m->n_filters++] = f;
    return 1;
  }
  case PCP_OPT_DESCRIPTION: {
    /* RFC 7220 allows up to 1016 octets; a server stores and echoes a
     * prefix of what it supports, and so do we: keep the first 128. The
     * text is not checked for UTF-8. */
    size_t n = olen < PCP_MAX_DESCRIPTION ? olen : PCP_MAX_DESCRIPTION;
    portmap_rd_bytes(d, m->description, n);
    if (!portmap_rd_ok(d))
      return 0;
    m->description[n] = '\0';
    m->description_len = n;
    return 1;
  }
  default:
    return 0;
  }
}

static int read_options(portmap_reader_t *r, pcp_msg_t *m) {
  while (portmap_rd_left(r) > 0) {
    uint8_t code = portmap_rd_u8(r);
    portmap_rd_skip(r, 1); /* reserved */
    uint16_t olen = portmap_rd_be16(r);
    if (!portmap_rd_ok(r))
      return PCP_WIRE_OPTION;
    /* A8: the length excludes the padding to a multiple of 4. */
    size_t padded = pad4(olen);
    if (padded > portmap_rd_left(r))
      return PCP_WIRE_OPTION;
    portmap_reader_t d = portmap_rd_sub(r, olen);
    portmap_rd_skip(r, padded - olen);
    if (!option_allowed(code, m->opcode)) {
      /* A11: skipped, even in the mandatory range (< 128); never a drop. */
      m->n_unknown_options++;
      if (code < 128)
        m->has_unknown_mandatory = 1;
      continue;
    }
    if (!read_known_option(code, &d, m))
      return PCP_WIRE_OPTION;
  }
  return PCP_WIRE_OK;
}

/* F2, RFC 6886 section 3.5: a NAT-PMP gateway answers a version-2 request
 * with an 8-octet reply: version 0, opcode byte 0 or 128+op, 16-bit result
 * 1 (UNSUPP_VERSION), 32-bit epoch. Fills opcode, result and epoch when it
 * is one. */
static int read_natpmp_reply(const uint8_t *buf, size_t len, pcp_msg_t *m) {
  portmap_reader_t r;
  portmap_rd_init(&r, buf, len);
  if (portmap_rd_left(&r) != 8)
    return 0;
  uint8_t version = portmap_rd_u8(&r);
  uint8_t op = portmap_rd_u8(&r);
  uint16_t result = portmap_rd_be16(&r);
  uint32_t epoch = portmap_rd_be32(&r);
  if (!portmap_rd_ok(&r) || version != 0 || (op != 0 && op < 128) || result != 1)
    return 0;
  m->opcode = (uint8_t)(op & 0x7fu);
  m->result = PCP_UNSUPP_VERSION;
  m->epoch = epoch;
  return 1;
}

static int decode_msg(const uint8_t *buf, size_t len, pcp_msg_t *m, int response) {
  if (m == NULL)
    return PCP_WIRE_INVALID;
  pcp_msg_init(m);
  portmap_reader_t r;
  portmap_rd_init(&r, buf, len);
  len = portmap_rd_left(&r); /* 0 for a NULL buf */

  if (response && read_natpmp_reply(buf, len, m))
    return PCP_WIRE_NATPMP;
  /* A9 (section 8.3 for requests, 7.2 for responses). */
  if (len < PCP_HEADER_LEN)
    return PCP_WIRE_SHORT;
  if (len > PCP_MAX_PACKET)
    return PCP_WIRE_LONG;
  if (len % 4 != 0)
    return PCP_WIRE_UNALIGNED;

  uint8_t version = portmap_rd_u8(&r);
  uint8_t rop = portmap_rd_u8(&r);
  portmap_rd_skip(&r, 1); /* reserved */
  uint8_t b3 = portmap_rd_u8(&r);
  m->lifetime = portmap_rd_be32(&r);
  if (response) {
    m->epoch = portmap_rd_be32(&r);
    portmap_rd_skip(&r, 12);
    m->result = b3;
  } else {
    portmap_rd_bytes(&r, m->client_addr, 16);
  }
  if (!portmap_rd_ok(&r))
    return PCP_WIRE_SHORT;
  m->opcode = (uint8_t)(rop & 0x7fu);

  /* A10: version 2 (F3: never version 1), R=1 in responses, R=0 in requests. */
  if (version != PCP_VERSION)
    return PCP_WIRE_VERSION;
  if (((rop & R_BIT) != 0) != (response != 0))
    return PCP_WIRE_DIRECTION;
  if (m->opcode > PCP_OP_PEER)
    return PCP_WIRE_OPCODE;
  /* The payload is parsed in error responses too: it echoes the request
   * (G3); A12: the result code is kept as received. */
  if (!read_payload(&r, m))
    return PCP_WIRE_SHORT;
  return read_options(&r, m);
}

int pcp_decode_response(const uint8_t *buf, size_t len, pcp_msg_t *out) {
  return decode_msg(buf, len, out, 1);
}

int pcp_decode_request(const uint8_t *buf, size_t len, pcp_msg_t *out) {
  return decode_msg(buf, len, out, 0);
}

/* ---- message and address helpers ---- */

void pcp_msg_init(pcp_msg_t *m) {
  if (m != NULL)
    memset(m, 0, sizeof *m);
}

/* A6: all 96 leading bits: 80 zero bits, then 16 one bits. */
int pcp_addr_is_v4mapped(const uint8_t addr[16]) {
  static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return addr != NULL && memcmp(addr, prefix, sizeof prefix) == 0;
}

void pcp_addr_v4mapped(uint8_t out[16], const uint8_t v4[4]) {
  memset(out, 0, 10);
  out[10] = 0xff;
  out[11] = 0xff;
  memcpy(out + 12, v4, 4);
}

/* A7: "no preference" is the family's all-zeros address. */
void pcp_addr_any(uint8_t out[16], int ipv6) {
  static const uint8_t zero4[4] = {0, 0, 0, 0};
  if (ipv6)
    memset(out, 0, 16);
  else
    pcp_addr_v4mapped(out, zero4);
}

/* Section 7.4 names. */
const char *pcp_result_name(int result) {
  switch (result) {
  case PCP_SUCCESS:
    return "SUCCESS";
  case PCP_UNSUPP_VERSION:
    return "UNSUPP_VERSION";
  case PCP_NOT_AUTHORIZED:
    return "NOT_AUTHORIZED";
  case PCP_MALFORMED_REQUEST:
    return "MALFORMED_REQUEST";
  case PCP_UNSUPP_OPCODE:
    return "UNSUPP_OPCODE";
  case PCP_UNSUPP_OPTION:
    return "UNSUPP_OPTION";
  case PCP_MALFORMED_OPTION:
    return "MALFORMED_OPTION";
  case PCP_NETWORK_FAILURE:
    return "NETWORK_FAILURE";
  case PCP_NO_RESOURCES:
    return "NO_RESOURCES";
  case PCP_UNSUPP_PROTOCOL:
    return "UNSUPP_PROTOCOL";
  case PCP_USER_EX_QUOTA:
    return "USER_EX_QUOTA";
  case PCP_CANNOT_PROVIDE_EXTERNAL:
    return "CANNOT_PROVIDE_EXTERNAL";
  case PCP_ADDRESS_MISMATCH:
    return "ADDRESS_MISMATCH";
  case PCP_EXCESSIVE_REMOTE_PEERS:
    return "EXCESSIVE_REMOTE_PEERS";
  default:
    return "UNKNOWN";
  }
}

/* G1, section 7.4: NETWORK_FAILURE, NO_RESOURCES and USER_EX_QUOTA are
 * short-lifetime errors; the rest (and unknown codes, A12) are long. */
int pcp_result_is_short(int result) {
  return result == PCP_NETWORK_FAILURE || result == PCP_NO_RESOURCES || result == PCP_USER_EX_QUOTA;
}
