/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the sans-I/O UPnP discovery code (src/upnp/ssdp.c).
 * Each input is tried as an SSDP reply (and its LOCATION through the Q4
 * checker), as a URL, and as a root description (with every control URL
 * resolved). Any input must be handled without undefined behaviour, and
 * what is accepted must hold the documented invariants: NUL-terminated
 * fields, no control octets, canonical URLs that re-parse to themselves,
 * never a forbidden host but the gateway's, resolved URLs on the
 * LOCATION's host. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/netutil.h"
#include "upnp/ssdp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond) {
  if (!cond)
    abort();
}

static void field_ok(const char *s, size_t cap, int tab_ok) {
  size_t n = strnlen(s, cap);
  check(n < cap);
  for (size_t i = 0; i < n; i++) {
    unsigned char b = (unsigned char)s[i];
    check(b != 0x7f && (b >= 0x20 || (tab_ok && b == '\t')));
  }
}

static const uint8_t GW[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 1};
static const char LOCATION[] = "http://192.168.1.1:5000/rootDesc.xml";

/* An accepted URL is canonical and stable. */
static void url_ok(const char *url, const portmap_ssdp_url_t *u) {
  (void)url;
  field_ok(u->canonical, sizeof u->canonical, 0);
  check(strncmp(u->canonical, "http://", 7) == 0);
  check(u->port != 0 && u->path[0] == '/');
  portmap_ssdp_url_t again;
  check(portmap_ssdp_location_ok(u->canonical, GW, &again) == PORTMAP_SSDP_OK);
  check(strcmp(again.canonical, u->canonical) == 0);
  check(memcmp(again.addr, u->addr, 16) == 0 && again.port == u->port);
  if (memcmp(u->addr, GW, 16) != 0)
    check(!portmap_net_is_forbidden_target(u->addr));
}

static void reply(const uint8_t *data, size_t size) {
  portmap_ssdp_reply_t r;
  int rc = portmap_ssdp_parse(data, size, &r);
  check(rc <= PORTMAP_SSDP_OK && rc >= PORTMAP_SSDP_ERR_BYTE);
  if (rc != PORTMAP_SSDP_OK) {
    check(r.location[0] == '\0' && r.st[0] == '\0');
    return;
  }
  check(size >= 12 && memcmp(data, "HTTP/1.1 200", 12) == 0);
  check(r.location[0] != '\0');
  field_ok(r.location, sizeof r.location, 1);
  field_ok(r.st, sizeof r.st, 1);
  field_ok(r.usn, sizeof r.usn, 1);
  field_ok(r.server, sizeof r.server, 1);
  check(r.max_age >= PORTMAP_SSDP_NO_MAX_AGE && r.max_age <= 999999999L);
  portmap_ssdp_url_t u;
  if (portmap_ssdp_location_ok(r.location, GW, &u) == PORTMAP_SSDP_OK)
    url_ok(r.location, &u);
  (void)portmap_ssdp_st_is_igd(r.st);
}

static void as_url(const uint8_t *data, size_t size) {
  char url[PORTMAP_SSDP_URL_MAX + 8];
  size_t n = size < sizeof url - 1 ? size : sizeof url - 1;
  memcpy(url, data, n);
  url[n] = '\0';
  portmap_ssdp_url_t u;
  int rc = portmap_ssdp_location_ok(url, GW, &u);
  check(rc <= PORTMAP_SSDP_OK && rc >= PORTMAP_SSDP_ERR_URL_TOO_LONG);
  if (rc == PORTMAP_SSDP_OK)
    url_ok(url, &u);
  else
    check(u.canonical[0] == '\0');
  char out[PORTMAP_SSDP_URL_MAX];
  rc = portmap_upnp_resolve_url(LOCATION, url, "/ctl", GW, out, sizeof out);
  if (rc == PORTMAP_SSDP_OK)
    check(strncmp(out, "http://192.168.1.1:", 19) == 0);
  rc = portmap_upnp_resolve_url(LOCATION, "", url, GW, out, sizeof out);
  if (rc == PORTMAP_SSDP_OK)
    check(strncmp(out, "http://192.168.1.1:", 19) == 0);
  else
    check(out[0] == '\0');
  (void)portmap_upnp_wan_rank(url);
  char ms[512];
  size_t len = portmap_ssdp_build_msearch(ms, sizeof ms, "192.168.1.1:1900", url, 2);
  if (len > 0) {
    check(len < sizeof ms && ms[len] == '\0');
    check(strstr(ms, "\r\n\r\n") == ms + len - 4); /* nothing smuggled after the head */
  }
}

static void description(const uint8_t *data, size_t size) {
  portmap_upnp_desc_t d;
  int rc = portmap_upnp_desc_parse((const char *)data, size, &d);
  check(rc == PORTMAP_SSDP_OK || rc == PORTMAP_SSDP_ERR_DESC);
  if (rc != PORTMAP_SSDP_OK) {
    check(d.n_services == 0);
    return;
  }
  field_ok(d.url_base, sizeof d.url_base, 1);
  field_ok(d.device_type, sizeof d.device_type, 1);
  field_ok(d.friendly_name, sizeof d.friendly_name, 1);
  check(d.n_services <= PORTMAP_UPNP_MAX_SERVICES);
  check(d.n_services + d.n_dropped <= d.n_all_services);
  for (size_t i = 0; i < d.n_services; i++) {
    const portmap_upnp_service_t *s = &d.services[i];
    field_ok(s->type, sizeof s->type, 1);
    field_ok(s->control_url, sizeof s->control_url, 1);
    check(s->rank >= 0 && s->rank <= 7 && s->rank == portmap_upnp_wan_rank(s->type));
    check(s->control_url[0] != '\0');
    check(i == 0 || s->order > d.services[i - 1].order);
    char out[PORTMAP_SSDP_URL_MAX];
    if (portmap_upnp_resolve_url(LOCATION, d.url_base, s->control_url, GW, out, sizeof out) ==
        PORTMAP_SSDP_OK)
      check(strncmp(out, "http://192.168.1.1:", 19) == 0); /* Q4: the LOCATION's host */
  }
  int v = portmap_upnp_igd_version(d.device_type, d.n_services ? d.services[0].type : NULL);
  check(v == 1 || v == 2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  reply(data, size);
  as_url(data, size);
  description(data, size);
  return 0;
}
