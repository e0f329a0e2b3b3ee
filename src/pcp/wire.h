/* SPDX-License-Identifier: MIT */
/*
 * PCP wire codec (RFC 6887 sections 7, 11, 12, 13, 14; RFC 7220), sans-I/O:
 * functions take a buffer and its length and read or write caller memory.
 * No sockets, clocks or allocation. Every decoder is bounds-checked and
 * never casts a struct over the datagram.
 */
#ifndef PORTMAP_PCP_WIRE_H
#define PORTMAP_PCP_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define PCP_VERSION 2
#define PCP_SERVER_PORT 5351   /* checklist A1 */
#define PCP_ANNOUNCE_PORT 5350 /* checklist A1 */
#define PCP_MAX_PACKET 1100    /* checklist A2 */
#define PCP_HEADER_LEN 24
#define PCP_MAP_LEN 36  /* MAP opcode payload */
#define PCP_PEER_LEN 56 /* PEER opcode payload */
#define PCP_NONCE_LEN 12
#define PCP_MAX_FILTERS 8
#define PCP_MAX_DESCRIPTION 128
/* The largest request our encoder can produce with the limits above: a PEER
 * with THIRD_PARTY, PREFER_FAILURE, every FILTER and the longest
 * DESCRIPTION (each option has a 4-octet header). */
#define PCP_MAX_REQUEST                                                                            \
  (PCP_HEADER_LEN + PCP_PEER_LEN + (4 + 16) + 4 + PCP_MAX_FILTERS * (4 + 20) +                     \
   (4 + PCP_MAX_DESCRIPTION))

enum pcp_opcode { PCP_OP_ANNOUNCE = 0, PCP_OP_MAP = 1, PCP_OP_PEER = 2 };

enum pcp_option_code {
  PCP_OPT_THIRD_PARTY = 1,
  PCP_OPT_PREFER_FAILURE = 2,
  PCP_OPT_FILTER = 3,
  PCP_OPT_DESCRIPTION = 128 /* RFC 7220 */
};

enum pcp_result {
  PCP_SUCCESS = 0,
  PCP_UNSUPP_VERSION = 1,
  PCP_NOT_AUTHORIZED = 2,
  PCP_MALFORMED_REQUEST = 3,
  PCP_UNSUPP_OPCODE = 4,
  PCP_UNSUPP_OPTION = 5,
  PCP_MALFORMED_OPTION = 6,
  PCP_NETWORK_FAILURE = 7,
  PCP_NO_RESOURCES = 8,
  PCP_UNSUPP_PROTOCOL = 9,
  PCP_USER_EX_QUOTA = 10,
  PCP_CANNOT_PROVIDE_EXTERNAL = 11,
  PCP_ADDRESS_MISMATCH = 12,
  PCP_EXCESSIVE_REMOTE_PEERS = 13
};

/* Decoder / encoder outcomes. */
enum pcp_wire_status {
  PCP_WIRE_OK = 0,
  PCP_WIRE_NATPMP = 1,    /* 8-octet NAT-PMP UNSUPP_VERSION reply (checklist F2) */
  PCP_WIRE_SHORT = 2,     /* shorter than 24, or payload truncated (A9) */
  PCP_WIRE_LONG = 3,      /* longer than 1100 (A9) */
  PCP_WIRE_UNALIGNED = 4, /* not a multiple of 4 (A9) */
  PCP_WIRE_VERSION = 5,   /* version is not 2 (A10) */
  PCP_WIRE_DIRECTION = 6, /* R bit wrong for what was asked (A10) */
  PCP_WIRE_OPCODE = 7,    /* opcode unknown to us */
  PCP_WIRE_OPTION = 8,    /* option TLV overruns the packet or a known option is malformed */
  PCP_WIRE_NOSPACE = 9,   /* encoder: output buffer too small */
  PCP_WIRE_INVALID = 10   /* encoder: message fields invalid */
};

typedef struct pcp_filter {
  uint8_t prefix_len; /* of the 128-bit field: IPv4 is 96 + n (J2) */
  uint16_t port;
  uint8_t addr[16];
} pcp_filter_t;

/* One PCP message, request or response. Addresses are 16 octets,
 * IPv4-mapped for IPv4 (A4, A6, A7). */
typedef struct pcp_msg {
  uint8_t opcode;          /* without the R bit */
  uint8_t result;          /* responses */
  uint32_t lifetime;       /* requested or granted */
  uint32_t epoch;          /* responses */
  uint8_t client_addr[16]; /* requests */
  /* MAP and PEER */
  uint8_t nonce[PCP_NONCE_LEN];
  uint8_t protocol;
  uint16_t internal_port;
  uint16_t external_port; /* suggested or assigned */
  uint8_t external_addr[16];
  /* PEER */
  uint16_t peer_port;
  uint8_t peer_addr[16];
  /* options */
  int has_third_party;
  uint8_t third_party[16];
  int prefer_failure;
  size_t n_filters;
  pcp_filter_t filters[PCP_MAX_FILTERS];
  size_t description_len; /* 0 = none */
  char description[PCP_MAX_DESCRIPTION + 1];
  /* decoder bookkeeping */
  size_t n_unknown_options;  /* skipped options (A11) */
  int has_unknown_mandatory; /* an unknown option code < 128 was present */
} pcp_msg_t;

/* Zero a message. */
void pcp_msg_init(pcp_msg_t *m);

/* Client side. Encode a request (header A3, payload, options A8; padded
 * DESCRIPTION; if the result would exceed 1100 octets the DESCRIPTION is
 * dropped first (A2)). Writes *out_len. */
int pcp_encode_request(const pcp_msg_t *m, uint8_t *buf, size_t cap, size_t *out_len);
/* Decode a response. Returns PCP_WIRE_NATPMP for the 8-octet NAT-PMP
 * UNSUPP_VERSION reply, checked before the size rules (F2). Unknown options
 * are skipped (A11); unknown result codes are kept as they are (A12). */
int pcp_decode_response(const uint8_t *buf, size_t len, pcp_msg_t *out);

/* Server side, used by the fake gateway and the fuzzers. */
int pcp_decode_request(const uint8_t *buf, size_t len, pcp_msg_t *out);
int pcp_encode_response(const pcp_msg_t *m, uint8_t *buf, size_t cap, size_t *out_len);

/* Address helpers (A6, A7). */
int pcp_addr_is_v4mapped(const uint8_t addr[16]); /* checks all 96 leading bits */
void pcp_addr_v4mapped(uint8_t out[16], const uint8_t v4[4]);
/* The family's "no preference" address: ::ffff:0.0.0.0 or :: (A7). */
void pcp_addr_any(uint8_t out[16], int ipv6);

/* Human name of a result code, "UNKNOWN" past 13. */
const char *pcp_result_name(int result);
/* Result-code classes (G1): 1 for short-lifetime errors (7, 8, 10). */
int pcp_result_is_short(int result);

#endif
