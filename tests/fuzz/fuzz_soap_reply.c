/* SPDX-License-Identifier: MIT */
/* libFuzzer target for SOAP replies through the path the UPnP worker
 * takes: portmap_upnp_soap_reply() (src/upnp/igd.c), i.e. miniupnpc's
 * ParseNameValue() on the body, then the call's outputs and result code
 * taken from it as miniupnpc's UPNP_* functions do. The input is
 *
 *   | kind selector (1) | reply body (the rest) |
 *
 * the body copied, as the transport hands it over, to an allocation of
 * its exact size plus a NUL. Invariants: only rc and the outputs of the
 * call's own kind change (inputs, other outputs, http_status and descr are
 * untouched); every output is NUL-terminated within the bound the worker
 * gives it (copy_str) and is octets of the body, never invented; without
 * an errorCode in the body rc is 0 or one of miniupnpc's own failures, and
 * a reply to AddPortMapping or DeletePortMapping succeeds; the same body
 * gives the same outputs twice. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <miniupnpc/upnpcommands.h>

#include "upnp/igd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond) {
  if (!cond)
    abort();
}

typedef struct out_field {
  size_t off;
  size_t bound; /* copy_str's cap in igd.c */
} out_field_t;

#define F(name, cap)                                                                               \
  { offsetof(upnp_call_t, name), cap }
#define N_FIELDS 12
static const out_field_t FIELDS[N_FIELDS] = {F(o_status, 64),  F(o_lasterr, 64), F(o_extip, 16),
                                             F(o_reserved, 6), F(o_client, 16),  F(o_port, 6),
                                             F(o_desc, 80),    F(o_enabled, 4),  F(o_lease, 16),
                                             F(o_ext_port, 6), F(o_proto, 4),    F(o_rhost, 64)};
enum {
  STATUS,
  LASTERR,
  EXTIP,
  RESERVED,
  CLIENT,
  PORT,
  DESC,
  ENABLED,
  LEASE,
  EXTPORT,
  PROTO,
  RHOST
};

/* The outputs each kind writes (bit i: FIELDS[i]). */
static unsigned written(enum call_kind kind) {
  switch (kind) {
  case CALL_STATUS:
    return 1u << STATUS | 1u << LASTERR;
  case CALL_EXTIP:
    return 1u << EXTIP;
  case CALL_ADDANY:
    return 1u << RESERVED;
  case CALL_GET:
    return 1u << CLIENT | 1u << PORT | 1u << ENABLED | 1u << DESC | 1u << LEASE;
  case CALL_LIST:
    return 1u << RHOST | 1u << EXTPORT | 1u << PROTO | 1u << CLIENT | 1u << PORT | 1u << ENABLED |
           1u << DESC | 1u << LEASE;
  case CALL_ADD:
  case CALL_DELETE:
  case CALL_DESCRIBE:
    break;
  }
  return 0;
}

static int contains(const char *hay, size_t len, const char *needle, size_t n) {
  for (size_t i = 0; i + n <= len; i++)
    if (memcmp(hay + i, needle, n) == 0)
      return 1;
  return 0;
}

static const enum call_kind KINDS[7] = {CALL_STATUS, CALL_EXTIP,  CALL_ADD, CALL_ADDANY,
                                        CALL_GET,    CALL_DELETE, CALL_LIST};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  enum call_kind kind = KINDS[data[0] % 7];
  size_t len = size - 1;
  if (len > UPNP_SOAP_REPLY_MAX)
    return 0;
  char *body = malloc(len + 1);
  if (body == NULL)
    return 0;
  memcpy(body, data + 1, len);
  body[len] = '\0';

  static upnp_call_t k, before, again;
  memset(&k, 0x5a, sizeof k);
  k.kind = kind;
  k.descr = NULL;
  before = k;
  portmap_upnp_soap_reply(&k, body, len);
  again = before;
  portmap_upnp_soap_reply(&again, body, len);
  check(memcmp(&k, &again, sizeof k) == 0);

  unsigned w = written(kind);
  for (size_t i = 0; i < N_FIELDS; i++) {
    const char *now = (const char *)&k + FIELDS[i].off;
    const char *was = (const char *)&before + FIELDS[i].off;
    if (!(w & 1u << i)) {
      check(memcmp(now, was, FIELDS[i].bound) == 0);
      continue;
    }
    size_t n = strnlen(now, FIELDS[i].bound);
    check(n < FIELDS[i].bound);
    check(n == 0 || contains(body, len, now, n));
    /* past the NUL, copy_str writes nothing */
    check(memcmp(now + n + 1, was + n + 1, FIELDS[i].bound - n - 1) == 0);
  }
  /* everything but rc and the outputs is the caller's */
  check(k.kind == before.kind && k.descr == before.descr && k.http_status == before.http_status);
  check(memcmp(k.url, before.url, offsetof(upnp_call_t, wnext) - offsetof(upnp_call_t, url)) == 0);

  if (!contains(body, len, "errorCode", 9)) {
    check(k.rc == 0 || k.rc == UPNPCOMMAND_UNKNOWN_ERROR || k.rc == UPNPCOMMAND_INVALID_RESPONSE);
    if (kind == CALL_ADD || kind == CALL_DELETE)
      check(k.rc == 0);
  }
  free(body);
  return 0;
}
