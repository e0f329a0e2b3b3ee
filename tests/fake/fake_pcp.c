/* SPDX-License-Identifier: MIT */
/*
 * Fake PCP server on loopback; see fake_pcp.h for what it does.
 *
 * Everything happens inside fake_pcp_process(): one recvfrom(MSG_DONTWAIT)
 * per pending datagram, then log -> fault checks -> serve -> encode ->
 * answer faults -> send (or hold). The only time is the injected one.
 */
#include "fake_pcp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FAKE_PCP_MAX_PER_PROCESS 1024

typedef struct held_answer {
  uint8_t data[PCP_MAX_PACKET];
  size_t len;
  struct sockaddr_storage to;
  socklen_t tolen;
  int spoofed;
} held_answer_t;

typedef struct reserved_port {
  uint8_t protocol;
  uint16_t port;
} reserved_port_t;

struct fake_pcp {
  int fd;
  int spoof_fd;
  int ipv6;
  uint16_t port;
  uint16_t spoof_port;
  uint8_t addr[16];

  /* injected clock */
  uint64_t now_ms;
  int64_t boot_ms;

  /* server configuration */
  uint8_t ext_addr[16];
  uint32_t min_lifetime;
  uint32_t max_lifetime;
  uint32_t fixed_lifetime;
  uint32_t err_short;
  uint32_t err_long;
  int err_ext_on; /* error responses carry err_ext_* (G3 tests) */
  uint8_t err_ext_addr[16];
  uint16_t err_ext_port;
  uint16_t port_lo;
  uint16_t port_hi;
  reserved_port_t reserved[FAKE_PCP_MAX_RESERVED];
  size_t n_reserved;
  size_t max_mappings;
  int allow_third_party;
  int q26;
  int check_client_addr;
  fake_pcp_hook_cb hook;
  void *hook_user;

  /* fault injection */
  unsigned drop_n;
  unsigned dup_k;
  int hold;
  unsigned force_n;
  uint8_t force_result;
  unsigned wrong_nonce_n;
  unsigned spoof_n;
  unsigned truncate_n;
  size_t truncate_len;
  unsigned garbage_n;
  fake_pcp_natpmp_t natpmp;
  int silent;
  uint64_t rng;

  held_answer_t *held; /* cap_held of them, grown on demand */
  size_t n_held, cap_held, max_held;

  fake_pcp_mapping_t mappings[FAKE_PCP_MAX_MAPPINGS];
  size_t n_mappings;

  fake_pcp_request_t log[FAKE_PCP_LOG_SIZE];
  size_t log_start;
  size_t log_len;

  unsigned received;
  unsigned malformed;
  unsigned by_opcode[128];
  pcp_msg_t last_msg;
  int have_last_msg;
  struct sockaddr_storage last_from;
  socklen_t last_fromlen;
  int have_last_from;
};

/* ---- small helpers ----------------------------------------------------- */

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p) {
  return (uint16_t)((p[0] << 8) | p[1]);
}

static uint64_t next_random(fake_pcp_t *f) {
  /* xorshift64: deterministic, per fake, no global state */
  uint64_t x = f->rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  f->rng = x;
  return x;
}

static int addr_unspecified(const uint8_t a[16]) {
  static const uint8_t zero[16] = {0};
  static const uint8_t v4zero[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0};
  return memcmp(a, zero, 16) == 0 || memcmp(a, v4zero, 16) == 0;
}

/* sockaddr -> 16 octets, IPv4-mapped for IPv4 (checklist A4). */
static int sockaddr_to_addr(const struct sockaddr_storage *ss, uint8_t out[16], uint16_t *port) {
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
    memset(out, 0, 10);
    out[10] = 0xff;
    out[11] = 0xff;
    memcpy(out + 12, &sin->sin_addr, 4);
    if (port != NULL) {
      *port = ntohs(sin->sin_port);
    }
    return 0;
  }
  if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
    memcpy(out, &sin6->sin6_addr, 16);
    if (port != NULL) {
      *port = ntohs(sin6->sin6_port);
    }
    return 0;
  }
  return -1;
}

static int bind_loopback(int ipv6, uint32_t v4, uint16_t port, uint16_t *port_out) {
  struct sockaddr_storage ss;
  socklen_t len;
  int fd = socket(ipv6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return -1;
  }
  memset(&ss, 0, sizeof ss);
  if (ipv6) {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_addr = in6addr_loopback;
    sin6->sin6_port = htons(port);
    len = sizeof *sin6;
  } else {
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(v4);
    sin->sin_port = htons(port);
    len = sizeof *sin;
  }
  if (bind(fd, (struct sockaddr *)&ss, len) != 0 ||
      getsockname(fd, (struct sockaddr *)&ss, &len) != 0 ||
      sockaddr_to_addr(&ss, (uint8_t[16]){0}, port_out) != 0) {
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

static uint32_t error_lifetime(const fake_pcp_t *f, uint8_t result) {
  /* RFC 6887 §7.4, checklist G1: short errors 7, 8, 10; the rest long */
  return pcp_result_is_short(result) ? f->err_short : f->err_long;
}

static uint32_t remaining_s(const fake_pcp_t *f, const fake_pcp_mapping_t *m) {
  if (m->expiry_ms <= f->now_ms) {
    return 0;
  }
  return (uint32_t)((m->expiry_ms - f->now_ms + 999) / 1000);
}

static uint32_t grant_lifetime(const fake_pcp_t *f, uint32_t requested) {
  if (f->fixed_lifetime != 0) {
    return f->fixed_lifetime;
  }
  /* miniupnpd clamps to [min_lifetime, max_lifetime] (ROUTER-QUIRKS Q24) */
  if (requested < f->min_lifetime) {
    return f->min_lifetime;
  }
  if (requested > f->max_lifetime) {
    return f->max_lifetime;
  }
  return requested;
}

/* ---- mapping table ----------------------------------------------------- */

static void remove_mapping(fake_pcp_t *f, size_t i) {
  memmove(&f->mappings[i], &f->mappings[i + 1], (f->n_mappings - i - 1) * sizeof f->mappings[0]);
  f->n_mappings--;
}

static void expire_mappings(fake_pcp_t *f) {
  size_t i = 0;
  while (i < f->n_mappings) {
    if (f->mappings[i].expiry_ms <= f->now_ms) {
      remove_mapping(f, i);
    } else {
      i++;
    }
  }
}

static fake_pcp_mapping_t *find_key(fake_pcp_t *f, uint8_t opcode, const uint8_t iaddr[16],
                                    uint8_t protocol, uint16_t iport, const pcp_msg_t *peer) {
  for (size_t i = 0; i < f->n_mappings; i++) {
    fake_pcp_mapping_t *m = &f->mappings[i];
    if (m->opcode != opcode || m->protocol != protocol || m->internal_port != iport ||
        memcmp(m->internal_addr, iaddr, 16) != 0) {
      continue;
    }
    if (opcode == PCP_OP_PEER &&
        (m->peer_port != peer->peer_port || memcmp(m->peer_addr, peer->peer_addr, 16) != 0)) {
      continue;
    }
    return m;
  }
  return NULL;
}

static int protocols_overlap(uint8_t a, uint8_t b) {
  return a == b || a == 0 || b == 0;
}

/* Free for the owner (iaddr, protocol, iport): a MAP and its PEERs share
 * one external port. */
static int port_free(const fake_pcp_t *f, const uint8_t iaddr[16], uint8_t protocol, uint16_t iport,
                     uint16_t port) {
  for (size_t i = 0; i < f->n_reserved; i++) {
    if (f->reserved[i].port == port && protocols_overlap(f->reserved[i].protocol, protocol)) {
      return 0;
    }
  }
  for (size_t i = 0; i < f->n_mappings; i++) {
    const fake_pcp_mapping_t *m = &f->mappings[i];
    if (m->external_port != port || !protocols_overlap(m->protocol, protocol)) {
      continue;
    }
    if (m->protocol == protocol && m->internal_port == iport &&
        memcmp(m->internal_addr, iaddr, 16) == 0) {
      continue;
    }
    return 0;
  }
  return 1;
}

static int port_allowed(const fake_pcp_t *f, uint16_t port) {
  return port != 0 && port >= f->port_lo && port <= f->port_hi;
}

/* Suggested if free and allowed, else the internal port, else the next
 * free one above it. Returns 0 or a PCP result code. */
static uint8_t alloc_port(const fake_pcp_t *f, const uint8_t iaddr[16], uint8_t protocol,
                          uint16_t iport, uint16_t suggested, int prefer_failure, uint16_t *out) {
  if (suggested != 0 && port_allowed(f, suggested) &&
      port_free(f, iaddr, protocol, iport, suggested)) {
    *out = suggested;
    return PCP_SUCCESS;
  }
  /* RFC 6887 §13.2, checklist H8: no alternative under PREFER_FAILURE */
  if (prefer_failure && suggested != 0) {
    return PCP_CANNOT_PROVIDE_EXTERNAL;
  }
  if (port_allowed(f, iport) && port_free(f, iaddr, protocol, iport, iport)) {
    *out = iport;
    return PCP_SUCCESS;
  }
  uint32_t span = (uint32_t)f->port_hi - f->port_lo + 1;
  uint32_t start = iport >= f->port_lo && iport <= f->port_hi ? iport : f->port_lo;
  for (uint32_t k = 1; k <= span; k++) {
    uint16_t p = (uint16_t)(f->port_lo + (start - f->port_lo + k) % span);
    if (port_allowed(f, p) && port_free(f, iaddr, protocol, iport, p)) {
      *out = p;
      return PCP_SUCCESS;
    }
  }
  return PCP_NO_RESOURCES;
}

static fake_pcp_mapping_t *new_mapping(fake_pcp_t *f) {
  fake_pcp_mapping_t *m = &f->mappings[f->n_mappings++];
  memset(m, 0, sizeof *m);
  m->created_ms = f->now_ms;
  return m;
}

static void grant(fake_pcp_t *f, fake_pcp_mapping_t *m, const pcp_msg_t *req, uint32_t lifetime,
                  int renewal) {
  m->lifetime = lifetime;
  m->renewed_ms = f->now_ms;
  m->expiry_ms = f->now_ms + (uint64_t)lifetime * 1000;
  if (renewal) {
    m->renewals++;
  }
  /* checklist J2: a FILTER with prefix length 0 removes all filters */
  m->n_filters = req->n_filters;
  for (size_t i = 0; i < req->n_filters && i < PCP_MAX_FILTERS; i++) {
    if (req->filters[i].prefix_len == 0) {
      m->n_filters = 0;
    }
  }
  size_t dlen = req->description_len;
  if (dlen > PCP_MAX_DESCRIPTION) {
    dlen = PCP_MAX_DESCRIPTION;
  }
  memcpy(m->description, req->description, dlen);
  m->description[dlen] = '\0';
}

/* ---- serving ----------------------------------------------------------- */

static void set_error(const fake_pcp_t *f, pcp_msg_t *resp, uint8_t result, uint32_t lifetime) {
  /* checklist G3: error responses copy the request's fields; no options */
  resp->result = result;
  resp->lifetime = lifetime;
  resp->has_third_party = 0;
  resp->prefer_failure = 0;
  resp->n_filters = 0;
  resp->description_len = 0;
  resp->description[0] = '\0';
  if (f->err_ext_on) {
    memcpy(resp->external_addr, f->err_ext_addr, 16);
    resp->external_port = f->err_ext_port;
  }
}

static void set_std_error(const fake_pcp_t *f, pcp_msg_t *resp, uint8_t result) {
  set_error(f, resp, result, error_lifetime(f, result));
}

static void serve_map(fake_pcp_t *f, const pcp_msg_t *req, const uint8_t iaddr[16],
                      pcp_msg_t *resp) {
  /* checklist H1 (miniupnpd answers MALFORMED_REQUEST) */
  if (req->protocol == 0 && req->internal_port != 0) {
    set_std_error(f, resp, PCP_MALFORMED_REQUEST);
    return;
  }
  fake_pcp_mapping_t *m = find_key(f, PCP_OP_MAP, iaddr, req->protocol, req->internal_port, req);
  /* ROUTER-QUIRKS Q18, checklist D2: renew/delete need the same nonce */
  if (m != NULL && memcmp(m->nonce, req->nonce, PCP_NONCE_LEN) != 0) {
    set_error(f, resp, PCP_NOT_AUTHORIZED, remaining_s(f, m));
    return;
  }
  if (req->lifetime == 0) {
    /* checklist H6: delete */
    if (req->protocol == 0) {
      size_t i = 0;
      while (i < f->n_mappings) {
        fake_pcp_mapping_t *x = &f->mappings[i];
        if (x->opcode == PCP_OP_MAP && memcmp(x->internal_addr, iaddr, 16) == 0 &&
            memcmp(x->nonce, req->nonce, PCP_NONCE_LEN) == 0) {
          remove_mapping(f, i);
        } else {
          i++;
        }
      }
    } else if (m != NULL) {
      resp->external_port = m->external_port;
      memcpy(resp->external_addr, m->external_addr, 16);
      remove_mapping(f, (size_t)(m - f->mappings));
    }
    resp->lifetime = 0;
    return;
  }
  if (req->prefer_failure && !addr_unspecified(req->external_addr) &&
      memcmp(req->external_addr, f->ext_addr, 16) != 0) {
    set_std_error(f, resp, PCP_CANNOT_PROVIDE_EXTERNAL);
    return;
  }
  uint32_t lifetime = grant_lifetime(f, req->lifetime);
  if (m != NULL) {
    if (req->prefer_failure && req->external_port != 0 && req->external_port != m->external_port) {
      set_std_error(f, resp, PCP_CANNOT_PROVIDE_EXTERNAL);
      return;
    }
    grant(f, m, req, lifetime, 1);
  } else {
    uint16_t eport = 0;
    if (f->n_mappings >= f->max_mappings) {
      set_std_error(f, resp, PCP_NO_RESOURCES);
      return;
    }
    if (req->protocol != 0) {
      uint8_t rc = alloc_port(f, iaddr, req->protocol, req->internal_port, req->external_port,
                              req->prefer_failure, &eport);
      if (rc != PCP_SUCCESS) {
        set_std_error(f, resp, rc);
        return;
      }
    }
    m = new_mapping(f);
    m->opcode = PCP_OP_MAP;
    memcpy(m->nonce, req->nonce, PCP_NONCE_LEN);
    m->protocol = req->protocol;
    memcpy(m->internal_addr, iaddr, 16);
    m->internal_port = req->internal_port;
    memcpy(m->external_addr, f->ext_addr, 16);
    m->external_port = eport;
    m->third_party = req->has_third_party;
    grant(f, m, req, lifetime, 0);
  }
  resp->lifetime = m->lifetime;
  resp->external_port = m->external_port;
  memcpy(resp->external_addr, m->external_addr, 16);
}

static void serve_peer(fake_pcp_t *f, const pcp_msg_t *req, const uint8_t iaddr[16],
                       pcp_msg_t *resp) {
  /* RFC 6887 §12.1, checklist I1 */
  if (req->protocol == 0 || req->internal_port == 0 || req->peer_port == 0) {
    set_std_error(f, resp, PCP_MALFORMED_REQUEST);
    return;
  }
  /* PREFER_FAILURE is for MAP only (§13.2); this fake calls it malformed */
  if (req->prefer_failure) {
    set_std_error(f, resp, PCP_MALFORMED_OPTION);
    return;
  }
  fake_pcp_mapping_t *m = find_key(f, PCP_OP_PEER, iaddr, req->protocol, req->internal_port, req);
  if (m != NULL && memcmp(m->nonce, req->nonce, PCP_NONCE_LEN) != 0) {
    set_error(f, resp, PCP_NOT_AUTHORIZED, remaining_s(f, m));
    return;
  }
  uint32_t lifetime = grant_lifetime(f, req->lifetime);
  if (m != NULL) {
    /* a PEER never shortens a mapping (checklist I1) */
    uint32_t left = remaining_s(f, m);
    grant(f, m, req, lifetime > left ? lifetime : left, 1);
  } else {
    uint16_t eport = 0;
    const fake_pcp_mapping_t *sibling = NULL;
    if (f->n_mappings >= f->max_mappings) {
      set_std_error(f, resp, PCP_NO_RESOURCES);
      return;
    }
    for (size_t i = 0; i < f->n_mappings && sibling == NULL; i++) {
      const fake_pcp_mapping_t *x = &f->mappings[i];
      if (x->protocol == req->protocol && x->internal_port == req->internal_port &&
          memcmp(x->internal_addr, iaddr, 16) == 0) {
        sibling = x;
      }
    }
    if (sibling != NULL) {
      eport = sibling->external_port;
    } else {
      uint8_t rc =
          alloc_port(f, iaddr, req->protocol, req->internal_port, req->external_port, 0, &eport);
      if (rc != PCP_SUCCESS) {
        set_std_error(f, resp, rc);
        return;
      }
    }
    m = new_mapping(f);
    m->opcode = PCP_OP_PEER;
    memcpy(m->nonce, req->nonce, PCP_NONCE_LEN);
    m->protocol = req->protocol;
    memcpy(m->internal_addr, iaddr, 16);
    m->internal_port = req->internal_port;
    memcpy(m->external_addr, f->ext_addr, 16);
    m->external_port = eport;
    memcpy(m->peer_addr, req->peer_addr, 16);
    m->peer_port = req->peer_port;
    m->third_party = req->has_third_party;
    grant(f, m, req, lifetime, 0);
  }
  resp->lifetime = m->lifetime;
  resp->external_port = m->external_port;
  memcpy(resp->external_addr, m->external_addr, 16);
}

/* ROUTER-QUIRKS Q26: walk the option TLVs (A8) of the raw request and
 * report whether any length field is not a multiple of 4. */
static int has_unaligned_option(const uint8_t *buf, size_t len, uint8_t opcode) {
  size_t off = PCP_HEADER_LEN;
  if (opcode == PCP_OP_MAP) {
    off += PCP_MAP_LEN;
  } else if (opcode == PCP_OP_PEER) {
    off += PCP_PEER_LEN;
  }
  while (off + 4 <= len) {
    uint16_t olen = get16(buf + off + 2);
    if (olen % 4 != 0) {
      return 1;
    }
    off += 4 + (size_t)olen;
  }
  return 0;
}

static void response_from_request(const fake_pcp_t *f, const pcp_msg_t *req, pcp_msg_t *resp) {
  *resp = *req;
  resp->result = PCP_SUCCESS;
  resp->epoch = fake_pcp_epoch(f);
  resp->n_unknown_options = 0;
  resp->has_unknown_mandatory = 0;
}

static void serve(fake_pcp_t *f, const pcp_msg_t *req, const uint8_t *raw, size_t rawlen,
                  const uint8_t src[16], pcp_msg_t *resp) {
  response_from_request(f, req, resp);
  /* checklist A4 */
  if (f->check_client_addr && memcmp(req->client_addr, src, 16) != 0) {
    set_std_error(f, resp, PCP_ADDRESS_MISMATCH);
    return;
  }
  if (f->q26 && has_unaligned_option(raw, rawlen, req->opcode)) {
    set_std_error(f, resp, PCP_MALFORMED_OPTION);
    return;
  }
  /* RFC 6887 §7.3: unknown mandatory-to-process options; Q27 */
  if (req->has_unknown_mandatory || (req->has_third_party && !f->allow_third_party)) {
    set_std_error(f, resp, PCP_UNSUPP_OPTION);
    return;
  }
  const uint8_t *iaddr = req->has_third_party ? req->third_party : src;
  switch (req->opcode) {
  case PCP_OP_ANNOUNCE:
    /* checklist K1 */
    resp->lifetime = 0;
    break;
  case PCP_OP_MAP:
    serve_map(f, req, iaddr, resp);
    break;
  case PCP_OP_PEER:
    serve_peer(f, req, iaddr, resp);
    break;
  default:
    set_std_error(f, resp, PCP_UNSUPP_OPCODE);
    break;
  }
}

/* An error response built from the request's own octets, for requests the
 * decoder refused (RFC 6887 §7.2: fields copied from the request; §8.3: at
 * most the first 1100 octets). */
static size_t raw_error(const fake_pcp_t *f, const uint8_t *req, size_t n, uint8_t result,
                        uint8_t *out) {
  size_t len = n > PCP_MAX_PACKET ? PCP_MAX_PACKET : n;
  size_t min_len = PCP_HEADER_LEN;
  uint8_t op = (uint8_t)(req[1] & 0x7f);
  /* zero-padded to the opcode's full size, so a client's decoder sees a
   * well-formed (if useless) error response */
  if (op == PCP_OP_MAP) {
    min_len += PCP_MAP_LEN;
  } else if (op == PCP_OP_PEER) {
    min_len += PCP_PEER_LEN;
  }
  len &= ~(size_t)3;
  if (len < min_len) {
    len = min_len;
  }
  memset(out, 0, len);
  memcpy(out, req, n < len ? n : len);
  out[0] = PCP_VERSION;
  out[1] = (uint8_t)(0x80 | op);
  out[2] = 0;
  out[3] = result;
  put32(out + 4, error_lifetime(f, result));
  put32(out + 8, fake_pcp_epoch(f));
  memset(out + 12, 0, 12);
  return len;
}

static uint8_t result_for_status(int status) {
  switch (status) {
  case PCP_WIRE_VERSION:
    return PCP_UNSUPP_VERSION;
  case PCP_WIRE_OPCODE:
    return PCP_UNSUPP_OPCODE;
  case PCP_WIRE_OPTION:
    return PCP_MALFORMED_OPTION;
  default:
    return PCP_MALFORMED_REQUEST;
  }
}

/* ---- sending ----------------------------------------------------------- */

static int send_from(const fake_pcp_t *f, int spoofed, const uint8_t *data, size_t len,
                     const struct sockaddr *to, socklen_t tolen) {
  ssize_t n = sendto(spoofed ? f->spoof_fd : f->fd, data, len, MSG_DONTWAIT, to, tolen);
  return n == (ssize_t)len ? 0 : -1;
}

static void emit(fake_pcp_t *f, uint8_t *out, size_t len, const struct sockaddr_storage *to,
                 socklen_t tolen) {
  int spoofed = 0;
  if (f->wrong_nonce_n > 0) {
    f->wrong_nonce_n--;
    uint8_t op = (uint8_t)(out[1] & 0x7f);
    if (len >= PCP_HEADER_LEN + PCP_NONCE_LEN && (op == PCP_OP_MAP || op == PCP_OP_PEER)) {
      for (size_t i = 0; i < PCP_NONCE_LEN; i++) {
        out[PCP_HEADER_LEN + i] ^= 0xff;
      }
    }
  }
  if (f->truncate_n > 0) {
    f->truncate_n--;
    if (f->truncate_len < len) {
      len = f->truncate_len;
    }
  }
  if (f->garbage_n > 0) {
    f->garbage_n--;
    for (size_t i = 0; i < len; i++) {
      out[i] = (uint8_t)next_random(f);
    }
    if (len > 0 && (out[0] == 0 || out[0] == PCP_VERSION)) {
      out[0] = 0xee;
    }
  }
  if (f->spoof_n > 0) {
    f->spoof_n--;
    spoofed = 1;
  }
  for (unsigned k = 0; k < f->dup_k; k++) {
    if (f->hold && f->n_held == f->cap_held && f->cap_held < FAKE_PCP_MAX_HELD) {
      size_t cap = f->cap_held == 0 ? 64 : f->cap_held * 2;
      held_answer_t *grown = realloc(f->held, cap * sizeof *grown);
      if (grown != NULL) {
        f->held = grown;
        f->cap_held = cap;
      }
    }
    if (f->hold && f->n_held < f->cap_held) {
      held_answer_t *h = &f->held[f->n_held++];
      if (f->n_held > f->max_held) {
        f->max_held = f->n_held;
      }
      memcpy(h->data, out, len);
      h->len = len;
      h->to = *to;
      h->tolen = tolen;
      h->spoofed = spoofed;
    } else {
      (void)send_from(f, spoofed, out, len, (const struct sockaddr *)to, tolen);
    }
  }
}

/* ---- one datagram ------------------------------------------------------ */

static fake_pcp_request_t *log_push(fake_pcp_t *f) {
  size_t idx;
  if (f->log_len < FAKE_PCP_LOG_SIZE) {
    idx = (f->log_start + f->log_len) % FAKE_PCP_LOG_SIZE;
    f->log_len++;
  } else {
    idx = f->log_start;
    f->log_start = (f->log_start + 1) % FAKE_PCP_LOG_SIZE;
  }
  return &f->log[idx];
}

static void handle(fake_pcp_t *f, const uint8_t *buf, size_t len, size_t stored,
                   const struct sockaddr_storage *from, socklen_t fromlen) {
  fake_pcp_request_t *e = log_push(f);
  uint8_t out[PCP_MAX_PACKET];
  size_t outlen = 0;
  int have_out = 0;
  pcp_msg_t req;
  pcp_msg_t resp;
  uint8_t src[16] = {0};

  memset(e, 0, sizeof *e);
  e->time_ms = f->now_ms;
  e->len = len;
  e->stored = stored;
  memcpy(e->data, buf, stored);
  e->decode_status = -1;
  e->result = -1;
  e->from = *from;
  e->fromlen = fromlen;
  f->received++;
  f->last_from = *from;
  f->last_fromlen = fromlen;
  f->have_last_from = 1;
  (void)sockaddr_to_addr(from, src, NULL);

  /* RFC 6887 §8.3: shorter than 2 octets or R bit set: silently dropped */
  if (stored < 2 || (buf[1] & 0x80) != 0) {
    e->fate = FAKE_PCP_IGNORED;
    f->malformed++;
    return;
  }
  if (buf[0] == PCP_VERSION) {
    pcp_msg_init(&req);
    e->decode_status = pcp_decode_request(buf, stored, &req);
  }
  if (e->decode_status == PCP_WIRE_OK) {
    e->msg = req;
    f->by_opcode[req.opcode & 0x7f]++;
    f->last_msg = req;
    f->have_last_msg = 1;
  } else {
    f->malformed++;
  }

  if (f->drop_n > 0) {
    f->drop_n--;
    e->fate = FAKE_PCP_DROPPED;
    return;
  }
  if (f->silent) {
    e->fate = FAKE_PCP_SILENT;
    return;
  }

  if (f->natpmp != FAKE_PCP_NATPMP_OFF) {
    /* RFC 6886 §3.5 / checklist F2: 8 octets, version 0, result 1 */
    out[0] = 0;
    out[1] = f->natpmp == FAKE_PCP_NATPMP_OP0 ? 0 : (uint8_t)(128 + (buf[1] & 0x7f));
    out[2] = 0;
    out[3] = 1;
    put32(out + 4, fake_pcp_epoch(f));
    outlen = 8;
    have_out = 1;
  }

  if (!have_out && e->decode_status == PCP_WIRE_OK && f->hook != NULL) {
    response_from_request(f, &req, &resp);
    fake_pcp_hook_action_t act = f->hook(f->hook_user, f, e, &resp);
    if (act == FAKE_PCP_HOOK_SILENT) {
      e->fate = FAKE_PCP_SILENT;
      return;
    }
    if (act == FAKE_PCP_HOOK_REPLY) {
      if (pcp_encode_response(&resp, out, sizeof out, &outlen) != PCP_WIRE_OK) {
        e->fate = FAKE_PCP_SILENT;
        return;
      }
      e->result = resp.result;
      have_out = 1;
    }
  }

  if (!have_out) {
    int encoded = 0;
    if (e->decode_status == PCP_WIRE_OK) {
      if (f->force_n > 0) {
        f->force_n--;
        response_from_request(f, &req, &resp);
        set_std_error(f, &resp, f->force_result);
      } else {
        serve(f, &req, buf, stored, src, &resp);
      }
      encoded = pcp_encode_response(&resp, out, sizeof out, &outlen) == PCP_WIRE_OK;
      if (encoded) {
        e->result = resp.result;
      } else if (resp.result == PCP_SUCCESS) {
        resp.result = PCP_NO_RESOURCES; /* could not encode what we meant */
      }
    }
    if (!encoded) {
      uint8_t rc;
      if (e->decode_status == PCP_WIRE_OK) {
        rc = resp.result;
      } else if (f->force_n > 0) {
        f->force_n--;
        rc = f->force_result;
      } else if (buf[0] != PCP_VERSION) {
        rc = PCP_UNSUPP_VERSION; /* §9: answer with our version, 2 */
      } else {
        rc = result_for_status(e->decode_status);
      }
      outlen = raw_error(f, buf, stored, rc, out);
      e->result = rc;
    }
  }

  e->fate = FAKE_PCP_ANSWERED;
  emit(f, out, outlen, from, fromlen);
}

/* ---- public: life cycle ------------------------------------------------ */

fake_pcp_t *fake_pcp_new(int ipv6) {
  return fake_pcp_new_v4(ipv6, INADDR_LOOPBACK);
}

fake_pcp_t *fake_pcp_new_v4(int ipv6, uint32_t v4) {
  return fake_pcp_new_at(ipv6, v4, 0);
}

fake_pcp_t *fake_pcp_new_at(int ipv6, uint32_t v4, uint16_t port) {
  fake_pcp_t *f = calloc(1, sizeof *f);
  static const uint8_t ext_default[16] = {0, 0, 0,    0,    0,   0,  0,   0,
                                          0, 0, 0xff, 0xff, 198, 51, 100, 7};
  if (f == NULL) {
    return NULL;
  }
  f->ipv6 = ipv6 ? 1 : 0;
  f->fd = bind_loopback(f->ipv6, v4, port, &f->port);
  f->spoof_fd = f->fd < 0 ? -1 : bind_loopback(f->ipv6, v4, 0, &f->spoof_port);
  if (f->fd < 0 || f->spoof_fd < 0) {
    int saved = errno;
    fake_pcp_free(f);
    errno = saved;
    return NULL;
  }
  if (f->ipv6) {
    memcpy(f->addr, &in6addr_loopback, 16);
  } else {
    uint8_t lo4[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0};
    lo4[12] = (uint8_t)(v4 >> 24);
    lo4[13] = (uint8_t)(v4 >> 16);
    lo4[14] = (uint8_t)(v4 >> 8);
    lo4[15] = (uint8_t)v4;
    memcpy(f->addr, lo4, 16);
  }
  memcpy(f->ext_addr, ext_default, 16);
  f->min_lifetime = 120;
  f->max_lifetime = 86400;
  f->err_short = 30;
  f->err_long = 1800;
  f->port_lo = 1;
  f->port_hi = 65535;
  f->max_mappings = FAKE_PCP_MAX_MAPPINGS;
  f->check_client_addr = 1;
  f->dup_k = 1;
  f->rng = 0x9e3779b97f4a7c15u;
  return f;
}

void fake_pcp_free(fake_pcp_t *f) {
  if (f == NULL) {
    return;
  }
  if (f->fd >= 0) {
    close(f->fd);
  }
  if (f->spoof_fd >= 0) {
    close(f->spoof_fd);
  }
  free(f->held);
  free(f);
}

uint16_t fake_pcp_port(const fake_pcp_t *f) {
  return f->port;
}

int fake_pcp_fd(const fake_pcp_t *f) {
  return f->fd;
}

uint16_t fake_pcp_spoof_port(const fake_pcp_t *f) {
  return f->spoof_port;
}

void fake_pcp_addr(const fake_pcp_t *f, uint8_t out[16]) {
  memcpy(out, f->addr, 16);
}

socklen_t fake_pcp_sockaddr(const fake_pcp_t *f, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof *ss);
  if (f->ipv6) {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_addr = in6addr_loopback;
    sin6->sin6_port = htons(f->port);
    return sizeof *sin6;
  }
  struct sockaddr_in *sin = (struct sockaddr_in *)ss;
  sin->sin_family = AF_INET;
  sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sin->sin_port = htons(f->port);
  return sizeof *sin;
}

/* ---- public: driving --------------------------------------------------- */

int fake_pcp_process(fake_pcp_t *f) {
  uint8_t buf[FAKE_PCP_LOG_BYTES];
  int count = 0;
  expire_mappings(f);
  for (int i = 0; i < FAKE_PCP_MAX_PER_PROCESS; i++) {
    struct sockaddr_storage from;
    socklen_t fromlen = sizeof from;
    ssize_t n = recvfrom(f->fd, buf, sizeof buf, MSG_DONTWAIT | MSG_TRUNC, (struct sockaddr *)&from,
                         &fromlen);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        break;
      }
      if (errno == EINTR || errno == ECONNREFUSED) {
        continue; /* ICMP from an earlier answer to a closed port */
      }
      return -1;
    }
    size_t len = (size_t)n;
    handle(f, buf, len, len < sizeof buf ? len : sizeof buf, &from, fromlen);
    count++;
  }
  return count;
}

int fake_pcp_process_at(fake_pcp_t *f, uint64_t now_ms) {
  fake_pcp_set_time(f, now_ms);
  return fake_pcp_process(f);
}

/* ---- public: clock ----------------------------------------------------- */

void fake_pcp_set_time(fake_pcp_t *f, uint64_t now_ms) {
  f->now_ms = now_ms;
  expire_mappings(f);
}

uint64_t fake_pcp_time(const fake_pcp_t *f) {
  return f->now_ms;
}

uint32_t fake_pcp_epoch(const fake_pcp_t *f) {
  int64_t now = (int64_t)f->now_ms;
  if (now <= f->boot_ms) {
    return 0;
  }
  uint64_t s = (uint64_t)(now - f->boot_ms) / 1000;
  return s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

void fake_pcp_set_epoch(fake_pcp_t *f, uint32_t epoch) {
  f->boot_ms = (int64_t)f->now_ms - (int64_t)epoch * 1000;
}

void fake_pcp_reboot(fake_pcp_t *f, uint64_t now_ms) {
  f->now_ms = now_ms;
  f->boot_ms = (int64_t)now_ms;
  f->n_mappings = 0;
  f->n_held = 0;
}

/* ---- public: configuration --------------------------------------------- */

void fake_pcp_set_external(fake_pcp_t *f, const uint8_t addr[16]) {
  memcpy(f->ext_addr, addr, 16);
  for (size_t i = 0; i < f->n_mappings; i++) {
    memcpy(f->mappings[i].external_addr, addr, 16);
  }
}

void fake_pcp_get_external(const fake_pcp_t *f, uint8_t out[16]) {
  memcpy(out, f->ext_addr, 16);
}

void fake_pcp_set_lifetime_limits(fake_pcp_t *f, uint32_t min_s, uint32_t max_s) {
  f->min_lifetime = min_s;
  f->max_lifetime = max_s < min_s ? min_s : max_s;
}

void fake_pcp_set_fixed_lifetime(fake_pcp_t *f, uint32_t seconds) {
  f->fixed_lifetime = seconds;
}

void fake_pcp_set_error_lifetimes(fake_pcp_t *f, uint32_t short_s, uint32_t long_s) {
  f->err_short = short_s;
  f->err_long = long_s;
}

void fake_pcp_set_error_external(fake_pcp_t *f, const uint8_t addr[16], uint16_t port) {
  f->err_ext_on = addr != NULL;
  if (addr != NULL) {
    memcpy(f->err_ext_addr, addr, 16);
  }
  f->err_ext_port = port;
}

void fake_pcp_set_port_range(fake_pcp_t *f, uint16_t lo, uint16_t hi) {
  if (lo == 0) {
    lo = 1;
  }
  f->port_lo = lo;
  f->port_hi = hi < lo ? lo : hi;
}

int fake_pcp_reserve_port(fake_pcp_t *f, uint8_t protocol, uint16_t port) {
  if (f->n_reserved >= FAKE_PCP_MAX_RESERVED) {
    return -1;
  }
  f->reserved[f->n_reserved].protocol = protocol;
  f->reserved[f->n_reserved].port = port;
  f->n_reserved++;
  return 0;
}

void fake_pcp_set_max_mappings(fake_pcp_t *f, size_t n) {
  f->max_mappings = n > FAKE_PCP_MAX_MAPPINGS ? FAKE_PCP_MAX_MAPPINGS : n;
}

void fake_pcp_set_allow_third_party(fake_pcp_t *f, int allow) {
  f->allow_third_party = allow;
}

void fake_pcp_set_q26(fake_pcp_t *f, int on) {
  f->q26 = on;
}

void fake_pcp_set_check_client_addr(fake_pcp_t *f, int on) {
  f->check_client_addr = on;
}

void fake_pcp_set_hook(fake_pcp_t *f, fake_pcp_hook_cb cb, void *user) {
  f->hook = cb;
  f->hook_user = user;
}

/* ---- public: fault injection ------------------------------------------- */

void fake_pcp_drop_next(fake_pcp_t *f, unsigned n) {
  f->drop_n += n;
}

void fake_pcp_set_duplicates(fake_pcp_t *f, unsigned k) {
  f->dup_k = k == 0 ? 1 : k;
}

void fake_pcp_set_hold(fake_pcp_t *f, int on) {
  f->hold = on;
}

int fake_pcp_release(fake_pcp_t *f) {
  int sent = 0;
  while (f->n_held > 0) {
    held_answer_t *h = &f->held[--f->n_held];
    if (send_from(f, h->spoofed, h->data, h->len, (const struct sockaddr *)&h->to, h->tolen) == 0) {
      sent++;
    }
  }
  return sent;
}

int fake_pcp_release_in_order(fake_pcp_t *f) {
  int sent = 0;
  for (size_t i = 0; i < f->n_held; i++) {
    held_answer_t *h = &f->held[i];
    if (send_from(f, h->spoofed, h->data, h->len, (const struct sockaddr *)&h->to, h->tolen) == 0) {
      sent++;
    }
  }
  f->n_held = 0;
  return sent;
}

size_t fake_pcp_held(const fake_pcp_t *f) {
  return f->n_held;
}

size_t fake_pcp_max_held(const fake_pcp_t *f) {
  return f->max_held;
}

void fake_pcp_reset_max_held(fake_pcp_t *f) {
  f->max_held = f->n_held;
}

void fake_pcp_force_result(fake_pcp_t *f, uint8_t result, unsigned n) {
  if (result == PCP_SUCCESS) {
    f->force_n = 0;
    return;
  }
  f->force_result = result;
  f->force_n += n;
}

void fake_pcp_wrong_nonce_next(fake_pcp_t *f, unsigned n) {
  f->wrong_nonce_n += n;
}

void fake_pcp_spoof_next(fake_pcp_t *f, unsigned n) {
  f->spoof_n += n;
}

void fake_pcp_truncate_next(fake_pcp_t *f, unsigned n, size_t len) {
  f->truncate_n += n;
  f->truncate_len = len;
}

void fake_pcp_garbage_next(fake_pcp_t *f, unsigned n) {
  f->garbage_n += n;
}

void fake_pcp_set_natpmp(fake_pcp_t *f, fake_pcp_natpmp_t mode) {
  f->natpmp = mode;
}

void fake_pcp_set_silent(fake_pcp_t *f, int on) {
  f->silent = on;
}

/* ---- public: unsolicited messages -------------------------------------- */

static int send_msg(fake_pcp_t *f, const pcp_msg_t *m, const struct sockaddr *to, socklen_t tolen) {
  uint8_t out[PCP_MAX_PACKET];
  size_t len = 0;
  if (pcp_encode_response(m, out, sizeof out, &len) != PCP_WIRE_OK) {
    errno = EINVAL;
    return -1;
  }
  return send_from(f, 0, out, len, to, tolen);
}

int fake_pcp_send_announce(fake_pcp_t *f, const struct sockaddr *to, socklen_t tolen) {
  /* RFC 6887 §14.1, checklist K1/K2 */
  pcp_msg_t m;
  pcp_msg_init(&m);
  m.opcode = PCP_OP_ANNOUNCE;
  m.result = PCP_SUCCESS;
  m.lifetime = 0;
  m.epoch = fake_pcp_epoch(f);
  return send_msg(f, &m, to, tolen);
}

int fake_pcp_send_map_update(fake_pcp_t *f, const struct sockaddr *to, socklen_t tolen,
                             size_t index) {
  /* RFC 6887 §14.2, checklist H7 */
  pcp_msg_t m;
  if (index >= f->n_mappings) {
    errno = EINVAL;
    return -1;
  }
  const fake_pcp_mapping_t *x = &f->mappings[index];
  pcp_msg_init(&m);
  m.opcode = x->opcode;
  m.result = PCP_SUCCESS;
  m.lifetime = remaining_s(f, x);
  m.epoch = fake_pcp_epoch(f);
  memcpy(m.nonce, x->nonce, PCP_NONCE_LEN);
  m.protocol = x->protocol;
  m.internal_port = x->internal_port;
  m.external_port = x->external_port;
  memcpy(m.external_addr, x->external_addr, 16);
  m.peer_port = x->peer_port;
  memcpy(m.peer_addr, x->peer_addr, 16);
  if (x->third_party) {
    m.has_third_party = 1;
    memcpy(m.third_party, x->internal_addr, 16);
  }
  return send_msg(f, &m, to, tolen);
}

int fake_pcp_send_raw(fake_pcp_t *f, const struct sockaddr *to, socklen_t tolen,
                      const uint8_t *data, size_t len, int from_spoofed_socket) {
  return send_from(f, from_spoofed_socket, data, len, to, tolen);
}

/* ---- public: introspection --------------------------------------------- */

unsigned fake_pcp_received(const fake_pcp_t *f) {
  return f->received;
}

unsigned fake_pcp_requests(const fake_pcp_t *f, uint8_t opcode) {
  return f->by_opcode[opcode & 0x7f];
}

unsigned fake_pcp_malformed(const fake_pcp_t *f) {
  return f->malformed;
}

int fake_pcp_last_request(const fake_pcp_t *f, pcp_msg_t *out) {
  if (!f->have_last_msg) {
    return -1;
  }
  *out = f->last_msg;
  return 0;
}

int fake_pcp_last_source(const fake_pcp_t *f, struct sockaddr_storage *ss, socklen_t *len) {
  if (!f->have_last_from) {
    return -1;
  }
  *ss = f->last_from;
  *len = f->last_fromlen;
  return 0;
}

size_t fake_pcp_log_count(const fake_pcp_t *f) {
  return f->log_len;
}

const fake_pcp_request_t *fake_pcp_log_get(const fake_pcp_t *f, size_t i) {
  if (i >= f->log_len) {
    return NULL;
  }
  return &f->log[(f->log_start + i) % FAKE_PCP_LOG_SIZE];
}

void fake_pcp_log_clear(fake_pcp_t *f) {
  f->log_start = 0;
  f->log_len = 0;
}

size_t fake_pcp_mapping_count(const fake_pcp_t *f) {
  return f->n_mappings;
}

const fake_pcp_mapping_t *fake_pcp_mapping_get(const fake_pcp_t *f, size_t i) {
  return i < f->n_mappings ? &f->mappings[i] : NULL;
}

int fake_pcp_find_mapping(const fake_pcp_t *f, const uint8_t nonce[PCP_NONCE_LEN], uint8_t protocol,
                          uint16_t internal_port) {
  for (size_t i = 0; i < f->n_mappings; i++) {
    const fake_pcp_mapping_t *m = &f->mappings[i];
    if (m->protocol == protocol && m->internal_port == internal_port &&
        memcmp(m->nonce, nonce, PCP_NONCE_LEN) == 0) {
      return (int)i;
    }
  }
  return -1;
}

int fake_pcp_mapping_remove(fake_pcp_t *f, size_t i) {
  if (i >= f->n_mappings) {
    return -1;
  }
  remove_mapping(f, i);
  return 0;
}

void fake_pcp_clear_mappings(fake_pcp_t *f) {
  f->n_mappings = 0;
}

static int ops_fd(const void *f) {
  return fake_pcp_fd(f);
}

static int ops_process(void *f) {
  return fake_pcp_process(f);
}

static int ops_process_at(void *f, uint64_t now_ms) {
  return fake_pcp_process_at(f, now_ms);
}

const test_fake_ops_t fake_pcp_ops = {ops_fd, ops_process, ops_process_at};
