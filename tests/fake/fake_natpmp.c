/* SPDX-License-Identifier: MIT */
/*
 * Fake NAT-PMP server on loopback; see fake_natpmp.h for what it does.
 *
 * Everything happens inside fake_natpmp_process(): one recvfrom(MSG_DONTWAIT)
 * per pending datagram, then log -> fault checks -> serve -> answer faults
 * -> send (or hold). The only time is the injected one.
 *
 * Wire format (RFC 6886):
 *   request  public address  | 0 | 0 |
 *   request  mapping         | 0 | op 1/2 | reserved(2) | internal port(2) |
 *                            | suggested external port(2) | lifetime(4) |
 *   response public address  | 0 | 128 | result(2) | SSSoE(4) | address(4) |
 *   response mapping         | 0 | 128+op | result(2) | SSSoE(4) |
 *                            | internal port(2) | external port(2) | lifetime(4) |
 */
#include "fake_natpmp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FAKE_NATPMP_MAX_PER_PROCESS 1024
#define FAKE_NATPMP_MAX_ANSWER 16

typedef struct held_answer {
  uint8_t data[FAKE_NATPMP_MAX_ANSWER];
  size_t len;
  struct sockaddr_storage to;
  socklen_t tolen;
} held_answer_t;

struct fake_natpmp {
  int fd;
  int spoof_fd;
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
  int grant_zero;
  uint16_t port_lo;
  uint16_t port_hi;
  int q15;

  /* fault injection */
  unsigned drop_n;
  unsigned dup_k;
  int hold;
  unsigned force_n;
  uint16_t force_result;
  unsigned truncate_n;
  size_t truncate_len;
  int silent;
  uint8_t ignore_op[128];

  held_answer_t held[FAKE_NATPMP_MAX_HELD];
  size_t n_held, max_held;

  fake_natpmp_mapping_t mappings[FAKE_NATPMP_MAX_MAPPINGS];
  size_t n_mappings;

  fake_natpmp_request_t log[FAKE_NATPMP_LOG_SIZE];
  size_t log_start;
  size_t log_len;

  unsigned received;
  unsigned malformed;
  unsigned by_opcode[128];
};

/* ---- small helpers ----------------------------------------------------- */

static void put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p) {
  return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void from_to_addr(const struct sockaddr_storage *ss, uint8_t out[16]) {
  memset(out, 0, 16);
  if (ss->ss_family == AF_INET) {
    out[10] = 0xff;
    out[11] = 0xff;
    memcpy(out + 12, &((const struct sockaddr_in *)ss)->sin_addr, 4);
  } else if (ss->ss_family == AF_INET6) {
    memcpy(out, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
  }
}

static int bind_udp(struct in_addr a, uint16_t port, uint16_t *port_out) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return -1;
  }
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_addr = a;
  sin.sin_port = htons(port);
  socklen_t len = sizeof sin;
  if (bind(fd, (struct sockaddr *)&sin, len) != 0 ||
      getsockname(fd, (struct sockaddr *)&sin, &len) != 0) {
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }
  if (port_out != NULL) {
    *port_out = ntohs(sin.sin_port);
  }
  return fd;
}

static uint32_t grant_lifetime(const fake_natpmp_t *f, uint32_t requested) {
  if (f->fixed_lifetime != 0) {
    return f->fixed_lifetime;
  }
  /* servers clamp (ROUTER-QUIRKS Q24) */
  if (requested < f->min_lifetime) {
    return f->min_lifetime;
  }
  if (requested > f->max_lifetime) {
    return f->max_lifetime;
  }
  return requested;
}

/* ---- mapping table ----------------------------------------------------- */

static void remove_mapping(fake_natpmp_t *f, size_t i) {
  memmove(&f->mappings[i], &f->mappings[i + 1], (f->n_mappings - i - 1) * sizeof f->mappings[0]);
  f->n_mappings--;
}

static void expire_mappings(fake_natpmp_t *f) {
  size_t i = 0;
  while (i < f->n_mappings) {
    if (f->mappings[i].expiry_ms <= f->now_ms) {
      remove_mapping(f, i);
    } else {
      i++;
    }
  }
}

static fake_natpmp_mapping_t *find_key(fake_natpmp_t *f, uint8_t op, const uint8_t client[16],
                                       uint16_t iport) {
  for (size_t i = 0; i < f->n_mappings; i++) {
    fake_natpmp_mapping_t *m = &f->mappings[i];
    if (m->opcode == op && m->internal_port == iport && memcmp(m->client_addr, client, 16) == 0) {
      return m;
    }
  }
  return NULL;
}

static int port_free(const fake_natpmp_t *f, uint8_t op, uint16_t port) {
  if (port == 0 || port < f->port_lo || port > f->port_hi) {
    return 0;
  }
  for (size_t i = 0; i < f->n_mappings; i++) {
    if (f->mappings[i].opcode == op && f->mappings[i].external_port == port) {
      return 0;
    }
  }
  return 1;
}

/* The suggested port if free, else the internal port, else the next free
 * one above it (wrapping). Returns 0 when none is left. */
static uint16_t alloc_port(const fake_natpmp_t *f, uint8_t op, uint16_t iport, uint16_t suggested) {
  if (port_free(f, op, suggested)) {
    return suggested;
  }
  if (port_free(f, op, iport)) {
    return iport;
  }
  uint32_t span = (uint32_t)f->port_hi - f->port_lo + 1;
  uint32_t start = iport >= f->port_lo && iport <= f->port_hi ? iport : f->port_lo;
  for (uint32_t k = 1; k <= span; k++) {
    uint16_t p = (uint16_t)(f->port_lo + (start - f->port_lo + k) % span);
    if (port_free(f, op, p)) {
      return p;
    }
  }
  return 0;
}

/* ---- serving ----------------------------------------------------------- */

static size_t header(const fake_natpmp_t *f, uint8_t op, uint16_t result, uint8_t *out) {
  out[0] = 0;
  out[1] = (uint8_t)(128 + op);
  put16(out + 2, result);
  put32(out + 4, fake_natpmp_epoch(f));
  return 8;
}

static size_t map_answer(const fake_natpmp_t *f, uint8_t op, uint16_t result, uint16_t iport,
                         uint16_t eport, uint32_t lifetime, uint8_t *out) {
  header(f, op, result, out);
  put16(out + 8, iport);
  put16(out + 10, eport);
  put32(out + 12, lifetime);
  return 16;
}

/* Opcode 1/2 (§3.3, §3.4). Returns the answer's length. */
static size_t serve_map(fake_natpmp_t *f, const uint8_t *buf, const uint8_t client[16],
                        uint8_t *out, uint16_t *result) {
  uint8_t op = buf[1];
  uint16_t iport = get16(buf + 4);
  uint16_t suggested = get16(buf + 6);
  uint32_t lifetime = get32(buf + 8);
  fake_natpmp_mapping_t *m = find_key(f, op, client, iport);
  *result = FAKE_NATPMP_SUCCESS;
  if (lifetime == 0) {
    /* delete; the suggested port MUST be ignored (§3.4) */
    if (iport == 0) {
      size_t i = 0;
      while (i < f->n_mappings) {
        if (f->mappings[i].opcode == op && memcmp(f->mappings[i].client_addr, client, 16) == 0) {
          remove_mapping(f, i);
        } else {
          i++;
        }
      }
    } else if (m != NULL) {
      remove_mapping(f, (size_t)(m - f->mappings));
    }
    return map_answer(f, op, FAKE_NATPMP_SUCCESS, iport, 0, 0, out);
  }
  if (f->grant_zero) {
    return map_answer(f, op, FAKE_NATPMP_SUCCESS, iport, suggested, 0, out); /* N7 */
  }
  if (iport == 0 || (f->q15 && suggested == 0 && m == NULL)) {
    *result = FAKE_NATPMP_REFUSED; /* Q15: MikroTik refuses suggested port 0 */
    return map_answer(f, op, *result, iport, suggested, lifetime, out);
  }
  uint32_t granted = grant_lifetime(f, lifetime);
  if (m == NULL) {
    uint16_t eport =
        f->n_mappings < FAKE_NATPMP_MAX_MAPPINGS ? alloc_port(f, op, iport, suggested) : 0;
    if (eport == 0) {
      *result = FAKE_NATPMP_NO_RESOURCES;
      return map_answer(f, op, *result, iport, suggested, lifetime, out);
    }
    m = &f->mappings[f->n_mappings++];
    memset(m, 0, sizeof *m);
    m->opcode = op;
    memcpy(m->client_addr, client, 16);
    m->internal_port = iport;
    m->external_port = eport;
    m->created_ms = f->now_ms;
  } else {
    m->renewals++;
  }
  m->lifetime = granted;
  m->renewed_ms = f->now_ms;
  m->expiry_ms = f->now_ms + (uint64_t)granted * 1000;
  return map_answer(f, op, FAKE_NATPMP_SUCCESS, iport, m->external_port, granted, out);
}

static int send_from(fake_natpmp_t *f, int spoofed, const uint8_t *data, size_t len,
                     const struct sockaddr *to, socklen_t tolen) {
  ssize_t n = sendto(spoofed ? f->spoof_fd : f->fd, data, len, 0, to, tolen);
  return n == (ssize_t)len ? 0 : -1;
}

static void emit(fake_natpmp_t *f, const uint8_t *out, size_t len,
                 const struct sockaddr_storage *to, socklen_t tolen) {
  if (f->truncate_n > 0) {
    f->truncate_n--;
    if (f->truncate_len < len) {
      len = f->truncate_len;
    }
  }
  for (unsigned k = 0; k < f->dup_k; k++) {
    if (f->hold && f->n_held < FAKE_NATPMP_MAX_HELD) {
      held_answer_t *h = &f->held[f->n_held++];
      if (f->n_held > f->max_held) {
        f->max_held = f->n_held;
      }
      memcpy(h->data, out, len);
      h->len = len;
      h->to = *to;
      h->tolen = tolen;
    } else {
      (void)send_from(f, 0, out, len, (const struct sockaddr *)to, tolen);
    }
  }
}

static fake_natpmp_request_t *log_push(fake_natpmp_t *f) {
  size_t idx;
  if (f->log_len < FAKE_NATPMP_LOG_SIZE) {
    idx = (f->log_start + f->log_len) % FAKE_NATPMP_LOG_SIZE;
    f->log_len++;
  } else {
    idx = f->log_start;
    f->log_start = (f->log_start + 1) % FAKE_NATPMP_LOG_SIZE;
  }
  return &f->log[idx];
}

static void handle(fake_natpmp_t *f, const uint8_t *buf, size_t len,
                   const struct sockaddr_storage *from, socklen_t fromlen) {
  fake_natpmp_request_t *e = log_push(f);
  uint8_t out[FAKE_NATPMP_MAX_ANSWER];
  size_t outlen = 0;
  uint16_t result = FAKE_NATPMP_SUCCESS;
  uint8_t client[16];

  memset(e, 0, sizeof *e);
  e->time_ms = f->now_ms;
  e->len = len;
  e->stored = len < FAKE_NATPMP_LOG_BYTES ? len : FAKE_NATPMP_LOG_BYTES;
  memcpy(e->data, buf, e->stored);
  e->opcode = len >= 2 ? buf[1] : -1;
  e->result = -1;
  e->from = *from;
  e->fromlen = fromlen;
  f->received++;
  from_to_addr(from, client);

  /* §3.5: a response opcode (>= 128) is not a request: silently ignored */
  if (len < 2 || buf[1] >= 128 || (buf[0] == 0 && buf[1] != 0 && buf[1] <= 2 && len < 12)) {
    e->fate = FAKE_NATPMP_IGNORED;
    f->malformed++;
    return;
  }
  uint8_t op = buf[1];
  f->by_opcode[op]++;
  if (f->drop_n > 0) {
    f->drop_n--;
    e->fate = FAKE_NATPMP_DROPPED;
    return;
  }
  if (f->silent || f->ignore_op[op]) {
    e->fate = FAKE_NATPMP_SILENT;
    return;
  }
  expire_mappings(f);
  if (buf[0] != 0) {
    result = FAKE_NATPMP_UNSUPP_VERSION; /* §3.5: 8 octets, our version 0 */
    outlen = header(f, op, result, out);
  } else if (f->force_n > 0) {
    f->force_n--;
    result = f->force_result;
    if (op == 1 || op == 2) {
      outlen = map_answer(f, op, result, get16(buf + 4), get16(buf + 6), get32(buf + 8), out);
    } else {
      outlen = header(f, op, result, out);
      if (op == 0) {
        memset(out + 8, 0, 4); /* §3.2: the address MUST be zero on error */
        outlen = 12;
      }
    }
  } else if (op == 0) {
    outlen = header(f, op, FAKE_NATPMP_SUCCESS, out);
    memcpy(out + 8, f->ext_addr + 12, 4);
    outlen = 12;
  } else if (op == 1 || op == 2) {
    outlen = serve_map(f, buf, client, out, &result);
  } else {
    result = FAKE_NATPMP_UNSUPP_OPCODE;
    outlen = header(f, op, result, out);
  }
  e->result = result;
  e->fate = FAKE_NATPMP_ANSWERED;
  emit(f, out, outlen, from, fromlen);
}

/* ---- public: life cycle ------------------------------------------------ */

fake_natpmp_t *fake_natpmp_new(const char *ipv4) {
  struct in_addr a;
  if (ipv4 == NULL || inet_pton(AF_INET, ipv4, &a) != 1) {
    errno = EINVAL;
    return NULL;
  }
  fake_natpmp_t *f = calloc(1, sizeof *f);
  if (f == NULL) {
    return NULL;
  }
  f->fd = bind_udp(a, FAKE_NATPMP_PORT, NULL);
  f->spoof_fd = f->fd < 0 ? -1 : bind_udp(a, 0, &f->spoof_port);
  if (f->fd < 0 || f->spoof_fd < 0) {
    int saved = errno;
    fake_natpmp_free(f);
    errno = saved;
    return NULL;
  }
  static const uint8_t ext_default[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 7};
  f->addr[10] = 0xff;
  f->addr[11] = 0xff;
  memcpy(f->addr + 12, &a, 4);
  memcpy(f->ext_addr, ext_default, 16);
  f->min_lifetime = 1;
  f->max_lifetime = 86400;
  f->port_lo = 1;
  f->port_hi = 65535;
  f->dup_k = 1;
  return f;
}

void fake_natpmp_free(fake_natpmp_t *f) {
  if (f == NULL) {
    return;
  }
  if (f->fd >= 0) {
    close(f->fd);
  }
  if (f->spoof_fd >= 0) {
    close(f->spoof_fd);
  }
  free(f);
}

int fake_natpmp_fd(const fake_natpmp_t *f) {
  return f->fd;
}

uint16_t fake_natpmp_spoof_port(const fake_natpmp_t *f) {
  return f->spoof_port;
}

void fake_natpmp_addr(const fake_natpmp_t *f, uint8_t out[16]) {
  memcpy(out, f->addr, 16);
}

/* ---- public: driving --------------------------------------------------- */

int fake_natpmp_process(fake_natpmp_t *f) {
  uint8_t buf[1100];
  int count = 0;
  expire_mappings(f);
  for (int i = 0; i < FAKE_NATPMP_MAX_PER_PROCESS; i++) {
    struct sockaddr_storage from;
    socklen_t fromlen = sizeof from;
    ssize_t n = recvfrom(f->fd, buf, sizeof buf, MSG_DONTWAIT, (struct sockaddr *)&from, &fromlen);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        break;
      }
      if (errno == EINTR || errno == ECONNREFUSED) {
        continue; /* ICMP from an earlier answer to a closed port */
      }
      return -1;
    }
    handle(f, buf, (size_t)n, &from, fromlen);
    count++;
  }
  return count;
}

int fake_natpmp_process_at(fake_natpmp_t *f, uint64_t now_ms) {
  fake_natpmp_set_time(f, now_ms);
  return fake_natpmp_process(f);
}

/* ---- public: clock ----------------------------------------------------- */

void fake_natpmp_set_time(fake_natpmp_t *f, uint64_t now_ms) {
  f->now_ms = now_ms;
  expire_mappings(f);
}

uint64_t fake_natpmp_time(const fake_natpmp_t *f) {
  return f->now_ms;
}

uint32_t fake_natpmp_epoch(const fake_natpmp_t *f) {
  int64_t now = (int64_t)f->now_ms;
  if (now <= f->boot_ms) {
    return 0;
  }
  uint64_t s = (uint64_t)(now - f->boot_ms) / 1000;
  return s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

void fake_natpmp_set_epoch(fake_natpmp_t *f, uint32_t epoch) {
  f->boot_ms = (int64_t)f->now_ms - (int64_t)epoch * 1000;
}

void fake_natpmp_reboot(fake_natpmp_t *f, uint64_t now_ms) {
  f->now_ms = now_ms;
  f->boot_ms = (int64_t)now_ms;
  f->n_mappings = 0;
  f->n_held = 0;
}

/* ---- public: configuration --------------------------------------------- */

void fake_natpmp_set_external(fake_natpmp_t *f, const uint8_t addr[16]) {
  memcpy(f->ext_addr, addr, 16);
}

void fake_natpmp_get_external(const fake_natpmp_t *f, uint8_t out[16]) {
  memcpy(out, f->ext_addr, 16);
}

void fake_natpmp_set_lifetime_limits(fake_natpmp_t *f, uint32_t min_s, uint32_t max_s) {
  f->min_lifetime = min_s;
  f->max_lifetime = max_s < min_s ? min_s : max_s;
}

void fake_natpmp_set_fixed_lifetime(fake_natpmp_t *f, uint32_t seconds) {
  f->fixed_lifetime = seconds;
}

void fake_natpmp_set_grant_zero(fake_natpmp_t *f, int on) {
  f->grant_zero = on;
}

void fake_natpmp_set_port_range(fake_natpmp_t *f, uint16_t lo, uint16_t hi) {
  if (lo == 0) {
    lo = 1;
  }
  f->port_lo = lo;
  f->port_hi = hi < lo ? lo : hi;
}

void fake_natpmp_set_q15(fake_natpmp_t *f, int on) {
  f->q15 = on;
}

/* ---- public: fault injection ------------------------------------------- */

void fake_natpmp_drop_next(fake_natpmp_t *f, unsigned n) {
  f->drop_n += n;
}

void fake_natpmp_set_duplicates(fake_natpmp_t *f, unsigned k) {
  f->dup_k = k == 0 ? 1 : k;
}

void fake_natpmp_set_hold(fake_natpmp_t *f, int on) {
  f->hold = on;
}

int fake_natpmp_release(fake_natpmp_t *f) {
  int sent = 0;
  for (size_t i = 0; i < f->n_held; i++) {
    held_answer_t *h = &f->held[i];
    if (send_from(f, 0, h->data, h->len, (const struct sockaddr *)&h->to, h->tolen) == 0) {
      sent++;
    }
  }
  f->n_held = 0;
  return sent;
}

size_t fake_natpmp_held(const fake_natpmp_t *f) {
  return f->n_held;
}

size_t fake_natpmp_max_held(const fake_natpmp_t *f) {
  return f->max_held;
}

void fake_natpmp_force_result(fake_natpmp_t *f, uint16_t result, unsigned n) {
  if (result == FAKE_NATPMP_SUCCESS) {
    f->force_n = 0;
    return;
  }
  f->force_result = result;
  f->force_n += n;
}

void fake_natpmp_truncate_next(fake_natpmp_t *f, unsigned n, size_t len) {
  f->truncate_n += n;
  f->truncate_len = len;
}

void fake_natpmp_set_silent(fake_natpmp_t *f, int on) {
  f->silent = on;
}

void fake_natpmp_set_ignore_opcode(fake_natpmp_t *f, uint8_t opcode, int on) {
  f->ignore_op[opcode & 0x7f] = on ? 1 : 0;
}

/* ---- public: unsolicited messages -------------------------------------- */

int fake_natpmp_send_announce(fake_natpmp_t *f, const struct sockaddr *to, socklen_t tolen) {
  /* RFC 6886 §3.2.1: the public address response, sent unasked */
  uint8_t out[12];
  header(f, 0, FAKE_NATPMP_SUCCESS, out);
  memcpy(out + 8, f->ext_addr + 12, 4);
  return send_from(f, 0, out, sizeof out, to, tolen);
}

int fake_natpmp_send_raw(fake_natpmp_t *f, const struct sockaddr *to, socklen_t tolen,
                         const uint8_t *data, size_t len, int from_spoof_socket) {
  return send_from(f, from_spoof_socket, data, len, to, tolen);
}

/* ---- public: introspection --------------------------------------------- */

unsigned fake_natpmp_received(const fake_natpmp_t *f) {
  return f->received;
}

unsigned fake_natpmp_requests(const fake_natpmp_t *f, uint8_t opcode) {
  return f->by_opcode[opcode & 0x7f];
}

unsigned fake_natpmp_malformed(const fake_natpmp_t *f) {
  return f->malformed;
}

size_t fake_natpmp_log_count(const fake_natpmp_t *f) {
  return f->log_len;
}

const fake_natpmp_request_t *fake_natpmp_log_get(const fake_natpmp_t *f, size_t i) {
  if (i >= f->log_len) {
    return NULL;
  }
  return &f->log[(f->log_start + i) % FAKE_NATPMP_LOG_SIZE];
}

void fake_natpmp_log_clear(fake_natpmp_t *f) {
  f->log_start = 0;
  f->log_len = 0;
}

size_t fake_natpmp_mapping_count(const fake_natpmp_t *f) {
  return f->n_mappings;
}

const fake_natpmp_mapping_t *fake_natpmp_mapping_get(const fake_natpmp_t *f, size_t i) {
  return i < f->n_mappings ? &f->mappings[i] : NULL;
}

int fake_natpmp_find_mapping(const fake_natpmp_t *f, uint8_t opcode, uint16_t internal_port) {
  for (size_t i = 0; i < f->n_mappings; i++) {
    if (f->mappings[i].opcode == opcode && f->mappings[i].internal_port == internal_port) {
      return (int)i;
    }
  }
  return -1;
}

int fake_natpmp_mapping_remove(fake_natpmp_t *f, size_t i) {
  if (i >= f->n_mappings) {
    return -1;
  }
  remove_mapping(f, i);
  return 0;
}

void fake_natpmp_clear_mappings(fake_natpmp_t *f) {
  f->n_mappings = 0;
}

static int ops_fd(const void *f) {
  return fake_natpmp_fd(f);
}

static int ops_process(void *f) {
  return fake_natpmp_process(f);
}

static int ops_process_at(void *f, uint64_t now_ms) {
  return fake_natpmp_process_at(f, now_ms);
}

const test_fake_ops_t fake_natpmp_ops = {ops_fd, ops_process, ops_process_at};
