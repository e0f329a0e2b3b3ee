/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the IGD root-description scanner
 * (portmap_upnp_desc_parse() in src/upnp/ssdp.c) and what the backend does
 * next with its result: rank the services, pick the IGD version, resolve
 * each control URL against URLBase or the LOCATION. The input is the
 * description, copied to an allocation of its exact size with no NUL
 * after it: ASan sees any read past len. Invariants: a refusal leaves the
 * result all zero; an accepted one has its counts within their maxima
 * (n_services <= PORTMAP_UPNP_MAX_SERVICES, kept + dropped <= seen), every
 * string NUL-terminated inside its buffer with no control octet, every
 * kept service a WAN connection service of its rank with a control URL,
 * in document order; scanning is deterministic; a resolved URL fits the
 * buffer it was given (nothing written past cap, even a small one), is
 * canonical and never leaves the LOCATION's host (Q4). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "upnp/ssdp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond) {
  if (!cond)
    abort();
}

static void field_ok(const char *s, size_t cap) {
  size_t n = strnlen(s, cap);
  check(n < cap);
  for (size_t i = 0; i < n; i++) {
    unsigned char b = (unsigned char)s[i];
    check(b != 0x7f && (b >= 0x20 || b == '\t'));
  }
}

static const uint8_t GW[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 1};
static const char LOCATION[] = "http://192.168.1.1:5000/rootDesc.xml";

/* Resolve ref into a buffer of cap octets followed by a guard. */
static void resolve(const char *base, const char *ref, size_t cap) {
  char out[PORTMAP_SSDP_URL_MAX + 16];
  check(cap + 16 <= sizeof out);
  memset(out, 0x5a, sizeof out);
  int rc = portmap_upnp_resolve_url(LOCATION, base, ref, GW, out, cap);
  for (size_t i = cap; i < sizeof out; i++)
    check(out[i] == 0x5a);
  if (rc != PORTMAP_SSDP_OK)
    return;
  size_t n = strnlen(out, cap);
  check(n < cap);
  check(strncmp(out, "http://192.168.1.1:", 19) == 0);
  portmap_ssdp_url_t u;
  check(portmap_ssdp_url_parse(out, &u) == PORTMAP_SSDP_OK);
  check(strcmp(u.canonical, out) == 0);
  check(memcmp(u.addr, GW, 16) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *xml = malloc(size > 0 ? size : 1);
  if (xml == NULL)
    return 0;
  memcpy(xml, data, size);
  static portmap_upnp_desc_t d, again;
  static const portmap_upnp_desc_t zero;
  memset(&d, 0xa5, sizeof d);
  int rc = portmap_upnp_desc_parse(xml, size, &d);
  check(rc == PORTMAP_SSDP_OK || rc == PORTMAP_SSDP_ERR_DESC);
  memset(&again, 0x5a, sizeof again);
  check(portmap_upnp_desc_parse(xml, size, &again) == rc);
  if (rc != PORTMAP_SSDP_OK) {
    check(memcmp(&d, &zero, sizeof d) == 0 && memcmp(&again, &zero, sizeof again) == 0);
    goto done;
  }
  check(size > 0 && size <= PORTMAP_UPNP_DESC_MAX && memchr(xml, '\0', size) == NULL);
  check(memchr(xml, '<', size) != NULL);
  field_ok(d.url_base, sizeof d.url_base);
  field_ok(d.device_type, sizeof d.device_type);
  field_ok(d.friendly_name, sizeof d.friendly_name);
  check(d.n_services <= PORTMAP_UPNP_MAX_SERVICES);
  check(d.n_services + d.n_dropped <= d.n_all_services);
  for (size_t i = 0; i < d.n_services; i++) {
    const portmap_upnp_service_t *s = &d.services[i];
    field_ok(s->type, sizeof s->type);
    field_ok(s->control_url, sizeof s->control_url);
    check(s->control_url[0] != '\0');
    check(s->rank >= 0 && s->rank <= 7 && s->rank == portmap_upnp_wan_rank(s->type));
    check(s->order < d.n_all_services);
    check(i == 0 || s->order > d.services[i - 1].order);
    resolve(d.url_base, s->control_url, PORTMAP_SSDP_URL_MAX);
    resolve(d.url_base, s->control_url, 24);
    resolve("", s->control_url, 40);
  }
  /* the unused slots stay clear */
  for (size_t i = d.n_services; i < PORTMAP_UPNP_MAX_SERVICES; i++)
    check(memcmp(&d.services[i], &zero.services[i], sizeof d.services[i]) == 0);
  /* the same result both times, padding and unused bytes included */
  check(memcmp(&d, &again, sizeof d) == 0);
  int v = portmap_upnp_igd_version(d.device_type, d.n_services ? d.services[0].type : NULL);
  check(v == 1 || v == 2);
done:
  free(xml);
  return 0;
}
