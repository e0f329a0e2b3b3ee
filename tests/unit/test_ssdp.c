/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the sans-I/O UPnP discovery code (src/upnp/ssdp.c): the
 * SSDP reply parser, the LOCATION / control URL checker (ROUTER-QUIRKS Q4),
 * the M-SEARCH builder, the description scanner (Q6, Q28, Q29) and URL
 * resolution. Every hostile input has an exact expected result.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "upnp/ssdp.h"

static const char REPLY[] = "HTTP/1.1 200 OK\r\n"
                            "CACHE-CONTROL: max-age=120\r\n"
                            "ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n"
                            "USN: uuid:9a1f7e2c-0000-4000-8000-00000000a001::"
                            "urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n"
                            "EXT:\r\n"
                            "SERVER: OpenWRT/22.03 UPnP/1.1 MiniUPnPd/2.3.1\r\n"
                            "LOCATION: http://192.168.1.1:5000/rootDesc.xml\r\n"
                            "OPT: \"http://schemas.upnp.org/upnp/1/0/\"; ns=01\r\n"
                            "01-NLS: 1\r\n"
                            "BOOTID.UPNP.ORG: 1\r\n"
                            "\r\n";

static int parse_str(const char *s, portmap_ssdp_reply_t *r) {
  return portmap_ssdp_parse((const uint8_t *)s, strlen(s), r);
}

static void v4(uint8_t out[16], uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  memset(out, 0, 16);
  out[10] = out[11] = 0xff;
  out[12] = a;
  out[13] = b;
  out[14] = c;
  out[15] = d;
}

/* ---------- SSDP replies ---------- */

static void test_parse_miniupnpd_reply(void **state) {
  (void)state;
  portmap_ssdp_reply_t r;
  assert_int_equal(parse_str(REPLY, &r), PORTMAP_SSDP_OK);
  assert_string_equal(r.location, "http://192.168.1.1:5000/rootDesc.xml");
  assert_string_equal(r.st, "urn:schemas-upnp-org:device:InternetGatewayDevice:1");
  assert_string_equal(r.usn, "uuid:9a1f7e2c-0000-4000-8000-00000000a001::"
                             "urn:schemas-upnp-org:device:InternetGatewayDevice:1");
  assert_string_equal(r.server, "OpenWRT/22.03 UPnP/1.1 MiniUPnPd/2.3.1");
  assert_int_equal(r.max_age, 120);
}

static void test_parse_header_names_any_case(void **state) {
  (void)state;
  portmap_ssdp_reply_t r;
  assert_int_equal(parse_str("HTTP/1.1 200 OK\r\n"
                             "location:   http://10.0.0.1/igd.xml  \r\n"
                             "St: upnp:rootdevice\r\n"
                             "usn: uuid:x\r\n"
                             "Server: box\r\n"
                             "cache-control: no-cache, MAX-AGE = 1800\r\n"
                             "\r\n",
                             &r),
                   PORTMAP_SSDP_OK);
  assert_string_equal(r.location, "http://10.0.0.1/igd.xml"); /* trimmed */
  assert_string_equal(r.st, "upnp:rootdevice");
  assert_string_equal(r.usn, "uuid:x");
  assert_string_equal(r.server, "box");
  assert_int_equal(r.max_age, 1800);
}

static void test_parse_lf_lines_and_no_final_blank_line(void **state) {
  (void)state;
  portmap_ssdp_reply_t r;
  assert_int_equal(parse_str("HTTP/1.1 200 OK\nLOCATION: http://10.0.0.1/d.xml\nST: x\n", &r),
                   PORTMAP_SSDP_OK);
  assert_string_equal(r.location, "http://10.0.0.1/d.xml");
  assert_int_equal(parse_str("HTTP/1.1 200\r\nLOCATION: http://10.0.0.1/d.xml", &r),
                   PORTMAP_SSDP_OK);
  assert_int_equal(r.max_age, PORTMAP_SSDP_NO_MAX_AGE);
}

static void test_parse_max_age_variants(void **state) {
  (void)state;
  portmap_ssdp_reply_t r;
  const char *cc[] = {"max-age=abc", "no-cache", "max-age=1234567890", "smax-age=5", "max-age"};
  for (size_t i = 0; i < sizeof cc / sizeof cc[0]; i++) {
    char buf[256];
    snprintf(buf, sizeof buf,
             "HTTP/1.1 200 OK\r\nLOCATION: http://1.2.3.4/\r\nCACHE-CONTROL: %s\r\n\r\n", cc[i]);
    assert_int_equal(parse_str(buf, &r), PORTMAP_SSDP_OK);
    assert_int_equal(r.max_age, PORTMAP_SSDP_NO_MAX_AGE);
  }
  assert_int_equal(
      parse_str("HTTP/1.1 200 OK\r\nLOCATION: http://1.2.3.4/\r\nCACHE-CONTROL: x,max-age=7\r\n",
                &r),
      PORTMAP_SSDP_OK);
  assert_int_equal(r.max_age, 7);
}

static void test_parse_not_200(void **state) {
  (void)state;
  portmap_ssdp_reply_t r;
  const char *bad[] = {
      "HTTP/1.1 404 Not Found\r\nLOCATION: http://1.2.3.4/\r\n\r\n",
      "HTTP/1.0 200 OK\r\nLOCATION: http://1.2.3.4/\r\n\r\n",
      "HTTP/1.1 2000 OK\r\nLOCATION: http://1.2.3.4/\r\n\r\n",
      "http/1.1 200 OK\r\nLOCATION: http://1.2.3.4/\r\n\r\n",
      "NOTIFY * HTTP/1.1\r\nLOCATION: http://1.2.3.4/\r\n\r\n",
      "M-SEARCH * HTTP/1.1\r\nST: ssdp:all\r\n\r\n",
      " HTTP/1.1 200 OK\r\nLOCATION: http://1.2.3.4/\r\n\r\n",
      "HTTP/1.1 20",
      "",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(parse_str(bad[i], &r), PORTMAP_SSDP_ERR_STATUS);
    assert_string_equal(r.location, ""); /* cleared on failure */
  }
  assert_int_equal(portmap_ssdp_parse(NULL, 0, &r), PORTMAP_SSDP_ERR_STATUS);
  assert_int_equal(portmap_ssdp_parse((const uint8_t *)REPLY, strlen(REPLY), NULL),
                   PORTMAP_SSDP_ERR_SYNTAX);
}

static void test_parse_missing_location(void **state) {
  (void)state;
  portmap_ssdp_reply_t r;
  assert_int_equal(parse_str("HTTP/1.1 200 OK\r\nST: upnp:rootdevice\r\n\r\n", &r),
                   PORTMAP_SSDP_ERR_NO_LOCATION);
  assert_int_equal(parse_str("HTTP/1.1 200 OK\r\nLOCATION:\r\nST: x\r\n\r\n", &r),
                   PORTMAP_SSDP_ERR_NO_LOCATION);
  assert_int_equal(parse_str("HTTP/1.1 200 OK\r\nLOCATION:    \r\n\r\n", &r),
                   PORTMAP_SSDP_ERR_NO_LOCATION);
  assert_int_equal(parse_str("HTTP/1.1 200 OK\r\n\r\n", &r), PORTMAP_SSDP_ERR_NO_LOCATION);
  /* "X-LOCATION" is another header */
  assert_int_equal(parse_str("HTTP/1.1 200 OK\r\nX-LOCATION: http://1.2.3.4/\r\n\r\n", &r),
                   PORTMAP_SSDP_ERR_NO_LOCATION);
}

static void test_parse_oversized(void **state) {
  (void)state;
  portmap_ssdp_reply_t r;
  char buf[4096];
  char big[600];
  /* a LOCATION of 256 octets does not fit (255 + NUL) */
  memset(big, 'a', 256 - 15);
  big[256 - 15] = '\0';
  snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\nLOCATION: http://1.2.3.4/%s\r\n\r\n", big);
  assert_int_equal(parse_str(buf, &r), PORTMAP_SSDP_ERR_TOO_LONG);
  /* 255 octets fit exactly */
  big[256 - 16] = '\0';
  snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\nLOCATION: http://1.2.3.4/%s\r\n\r\n", big);
  assert_int_equal(parse_str(buf, &r), PORTMAP_SSDP_OK);
  assert_int_equal(strlen(r.location), 255);
  /* ST and SERVER of 128 */
  memset(big, 's', 128);
  big[128] = '\0';
  snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\nLOCATION: http://1.2.3.4/\r\nST: %s\r\n\r\n", big);
  assert_int_equal(parse_str(buf, &r), PORTMAP_SSDP_ERR_TOO_LONG);
  snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\nLOCATION: http://1.2.3.4/\r\nSERVER: %s\r\n\r\n",
           big);
  assert_int_equal(parse_str(buf, &r), PORTMAP_SSDP_ERR_TOO_LONG);
  /* a line over 512 octets, even of a header we ignore */
  memset(big, 'x', 520);
  big[520] = '\0';
  snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\nLOCATION: http://1.2.3.4/\r\nX-JUNK: %s\r\n\r\n",
           big);
  assert_int_equal(parse_str(buf, &r), PORTMAP_SSDP_ERR_TOO_LONG);
  /* 33 headers */
  size_t o = (size_t)snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\nLOCATION: http://1.2.3.4/\r\n");
  for (int i = 0; i < 32; i++)
    o += (size_t)snprintf(buf + o, sizeof buf - o, "X-%d: y\r\n", i);
  snprintf(buf + o, sizeof buf - o, "\r\n");
  assert_int_equal(parse_str(buf, &r), PORTMAP_SSDP_ERR_TOO_LONG);
  /* a datagram over 2048 octets */
  uint8_t huge[PORTMAP_SSDP_MAX_DATAGRAM + 1];
  memset(huge, 'a', sizeof huge);
  memcpy(huge, REPLY, strlen(REPLY));
  assert_int_equal(portmap_ssdp_parse(huge, sizeof huge, &r), PORTMAP_SSDP_ERR_TOO_LONG);
}

static void test_parse_nul_and_control_octets(void **state) {
  (void)state;
  portmap_ssdp_reply_t r;
  static const char a[] = "HTTP/1.1 200 OK\r\nLOCATION: http://1.2.3.4/\0http://127.0.0.1/\r\n\r\n";
  assert_int_equal(portmap_ssdp_parse((const uint8_t *)a, sizeof a - 1, &r), PORTMAP_SSDP_ERR_BYTE);
  static const char b[] = "HTTP/1.1 200 OK\r\nLOCATION: http://1.2.3.4/\r\n\0\r\n";
  assert_int_equal(portmap_ssdp_parse((const uint8_t *)b, sizeof b - 1, &r), PORTMAP_SSDP_ERR_BYTE);
  assert_int_equal(parse_str("HTTP/1.1 200 OK\r\nLOCATION: http://1.2.3.4/\x01\r\n\r\n", &r),
                   PORTMAP_SSDP_ERR_BYTE);
  assert_int_equal(parse_str("HTTP/1.1 200 OK\r\nLOCATION: http://1.2.3.4/\x7f\r\n\r\n", &r),
                   PORTMAP_SSDP_ERR_BYTE);
  assert_int_equal(parse_str("HTTP/1.1 200 OK\x1b\r\nLOCATION: http://1.2.3.4/\r\n\r\n", &r),
                   PORTMAP_SSDP_ERR_BYTE);
  /* a tab inside a value is fine */
  assert_int_equal(
      parse_str("HTTP/1.1 200 OK\r\nSERVER: a\tb\r\nLOCATION: http://1.2.3.4/\r\n", &r),
      PORTMAP_SSDP_OK);
  assert_string_equal(r.server, "a\tb");
}

static void test_parse_header_injection(void **state) {
  (void)state;
  portmap_ssdp_reply_t r;
  /* a lone CR would end the line for a lax parser */
  assert_int_equal(
      parse_str(
          "HTTP/1.1 200 OK\r\nST: x\rLOCATION: http://127.0.0.1/\r\nLOCATION: http://1.2.3.4/\r\n",
          &r),
      PORTMAP_SSDP_ERR_BYTE);
  assert_int_equal(parse_str("HTTP/1.1 200 OK\r\nLOCATION: http://1.2.3.4/\r\n"
                             "LOCATION: http://127.0.0.1/\r\n\r\n",
                             &r),
                   PORTMAP_SSDP_ERR_DUPLICATE);
  assert_int_equal(
      parse_str("HTTP/1.1 200 OK\r\nST: a\r\nST: b\r\nLOCATION: http://1.2.3.4/\r\n\r\n", &r),
      PORTMAP_SSDP_ERR_DUPLICATE);
  assert_int_equal(
      parse_str("HTTP/1.1 200 OK\r\nUSN: a\r\nusn: b\r\nLOCATION: http://1.2.3.4/\r\n\r\n", &r),
      PORTMAP_SSDP_ERR_DUPLICATE);
  /* folded continuation lines */
  assert_int_equal(
      parse_str("HTTP/1.1 200 OK\r\nLOCATION: http://1.2.3.4/\r\n http://127.0.0.1/\r\n\r\n", &r),
      PORTMAP_SSDP_ERR_SYNTAX);
  assert_int_equal(parse_str("HTTP/1.1 200 OK\r\nLOCATION: http://1.2.3.4/\r\n\tx\r\n\r\n", &r),
                   PORTMAP_SSDP_ERR_SYNTAX);
  /* malformed header lines */
  assert_int_equal(parse_str("HTTP/1.1 200 OK\r\nLOCATION http://1.2.3.4/\r\n\r\n", &r),
                   PORTMAP_SSDP_ERR_SYNTAX);
  assert_int_equal(parse_str("HTTP/1.1 200 OK\r\nLOCATION : http://1.2.3.4/\r\n\r\n", &r),
                   PORTMAP_SSDP_ERR_SYNTAX);
  assert_int_equal(parse_str("HTTP/1.1 200 OK\r\n: http://1.2.3.4/\r\n\r\n", &r),
                   PORTMAP_SSDP_ERR_SYNTAX);
  assert_int_equal(parse_str("HTTP/1.1 200 OK\r\nLOC(ATION): http://1.2.3.4/\r\n\r\n", &r),
                   PORTMAP_SSDP_ERR_SYNTAX);
  /* anything after the empty line */
  assert_int_equal(
      parse_str("HTTP/1.1 200 OK\r\nLOCATION: http://1.2.3.4/\r\n\r\nLOCATION: http://127.0.0.1/",
                &r),
      PORTMAP_SSDP_ERR_SYNTAX);
}

static void test_parse_garbage(void **state) {
  (void)state;
  portmap_ssdp_reply_t r;
  uint8_t buf[512];
  uint32_t x = 12345;
  for (int round = 0; round < 2000; round++) {
    size_t len = (size_t)(x % sizeof buf);
    for (size_t i = 0; i < len; i++) {
      x = x * 1103515245u + 12345u;
      buf[i] = (uint8_t)(x >> 16);
    }
    if (len >= 12 && round % 2 == 0)
      memcpy(buf, "HTTP/1.1 200", 12);
    int rc = portmap_ssdp_parse(buf, len, &r);
    assert_true(rc <= 0 && rc >= PORTMAP_SSDP_ERR_BYTE);
    if (rc != PORTMAP_SSDP_OK)
      assert_string_equal(r.location, "");
    x = x * 1103515245u + 12345u;
  }
}

/* ---------- URLs ---------- */

static void test_url_parse_ok(void **state) {
  (void)state;
  portmap_ssdp_url_t u;
  assert_int_equal(portmap_ssdp_url_parse("http://192.168.1.1:5000/rootDesc.xml", &u),
                   PORTMAP_SSDP_OK);
  assert_string_equal(u.host, "192.168.1.1");
  assert_int_equal(u.port, 5000);
  assert_string_equal(u.path, "/rootDesc.xml");
  assert_string_equal(u.canonical, "http://192.168.1.1:5000/rootDesc.xml");
  uint8_t a[16];
  v4(a, 192, 168, 1, 1);
  assert_memory_equal(u.addr, a, 16);
  assert_int_equal(portmap_ssdp_url_parse("HTTP://10.0.0.1", &u), PORTMAP_SSDP_OK);
  assert_int_equal(u.port, 80);
  assert_string_equal(u.canonical, "http://10.0.0.1:80/");
  assert_int_equal(portmap_ssdp_url_parse("http://10.0.0.1:65535?a=b&c=%41", &u), PORTMAP_SSDP_OK);
  assert_string_equal(u.canonical, "http://10.0.0.1:65535/?a=b&c=%41");
  assert_int_equal(portmap_ssdp_url_parse("http://[2001:db8::1]:49152/desc.xml", &u),
                   PORTMAP_SSDP_OK);
  assert_string_equal(u.host, "[2001:db8::1]");
  assert_string_equal(u.canonical, "http://[2001:db8::1]:49152/desc.xml");
  assert_int_equal(portmap_ssdp_url_parse("http://0.0.0.0/", NULL), PORTMAP_SSDP_OK); /* syntax */
}

static void test_url_parse_rejects(void **state) {
  (void)state;
  static const struct {
    const char *url;
    int rc;
  } cases[] = {
      {"https://192.168.1.1/", PORTMAP_SSDP_ERR_URL_SCHEME},
      {"ftp://192.168.1.1/", PORTMAP_SSDP_ERR_URL_SCHEME},
      {"//192.168.1.1/", PORTMAP_SSDP_ERR_URL_SCHEME},
      {"http:/192.168.1.1/", PORTMAP_SSDP_ERR_URL_SCHEME},
      {"file:///etc/passwd", PORTMAP_SSDP_ERR_URL_SCHEME},
      {"", PORTMAP_SSDP_ERR_URL_SCHEME},
      {"http://router.local/", PORTMAP_SSDP_ERR_URL_HOST},
      {"http://1.2.3/", PORTMAP_SSDP_ERR_URL_HOST},
      {"http://1.2.3.4.5/", PORTMAP_SSDP_ERR_URL_HOST},
      {"http://01.2.3.4/", PORTMAP_SSDP_ERR_URL_HOST},
      {"http://1.2.3.256/", PORTMAP_SSDP_ERR_URL_HOST},
      {"http://1.2.3.1234/", PORTMAP_SSDP_ERR_URL_HOST},
      {"http://0x7f.0.0.1/", PORTMAP_SSDP_ERR_URL_HOST},
      {"http://2130706433/", PORTMAP_SSDP_ERR_URL_HOST},
      {"http://user@192.168.1.1/", PORTMAP_SSDP_ERR_URL_HOST},
      {"http://192.168.1.1@127.0.0.1/", PORTMAP_SSDP_ERR_URL_HOST},
      {"http://192.168.1.1#@127.0.0.1/", PORTMAP_SSDP_ERR_URL_HOST},
      {"http://[fe80::1%25eth0]/", PORTMAP_SSDP_ERR_URL_HOST},
      {"http://[fe80::1%eth0]/", PORTMAP_SSDP_ERR_URL_HOST},
      {"http://[1.2.3.4]/", PORTMAP_SSDP_ERR_URL_HOST},
      {"http://[2001:db8::1/", PORTMAP_SSDP_ERR_URL_HOST},
      {"http://[]/", PORTMAP_SSDP_ERR_URL_HOST},
      {"http://[2001:db8::1]x/", PORTMAP_SSDP_ERR_URL_HOST},
      {"http://1.2.3.4:0/", PORTMAP_SSDP_ERR_URL_PORT},
      {"http://1.2.3.4:65536/", PORTMAP_SSDP_ERR_URL_PORT},
      {"http://1.2.3.4:/", PORTMAP_SSDP_ERR_URL_PORT},
      {"http://1.2.3.4:80a/", PORTMAP_SSDP_ERR_URL_PORT},
      {"http://1.2.3.4:1000000/", PORTMAP_SSDP_ERR_URL_PORT},
      {"http://1.2.3.4/a b", PORTMAP_SSDP_ERR_URL_PATH},
      {"http://1.2.3.4/a\"b", PORTMAP_SSDP_ERR_URL_PATH},
      {"http://1.2.3.4/a#frag", PORTMAP_SSDP_ERR_URL_PATH},
      {"http://1.2.3.4/%zz", PORTMAP_SSDP_ERR_URL_PATH},
      {"http://1.2.3.4/%4", PORTMAP_SSDP_ERR_URL_PATH},
      {"http://1.2.3.4/a\r\nHost: evil", PORTMAP_SSDP_ERR_URL_PATH},
      {"http://1.2.3.4/<x>", PORTMAP_SSDP_ERR_URL_PATH},
      {"http://1.2.3.4/\xc3\xa9", PORTMAP_SSDP_ERR_URL_PATH},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    portmap_ssdp_url_t u;
    int rc = portmap_ssdp_url_parse(cases[i].url, &u);
    if (rc != cases[i].rc)
      fail_msg("%s: %d, expected %d", cases[i].url, rc, cases[i].rc);
    assert_string_equal(u.canonical, "");
  }
  char longurl[300];
  memset(longurl, 'a', sizeof longurl);
  memcpy(longurl, "http://1.2.3.4/", 15);
  longurl[sizeof longurl - 1] = '\0';
  assert_int_equal(portmap_ssdp_url_parse(longurl, NULL), PORTMAP_SSDP_ERR_URL_TOO_LONG);
  assert_int_equal(portmap_ssdp_url_parse(NULL, NULL), PORTMAP_SSDP_ERR_URL_SCHEME);
}

/* Q4: the SSRF guard, and the one exception: the configured gateway. */
static void test_Q4_location_ok(void **state) {
  (void)state;
  uint8_t gw[16], lo[16];
  v4(gw, 192, 168, 1, 1);
  v4(lo, 127, 0, 0, 1);
  static const struct {
    const char *url;
    int rc;
  } cases[] = {
      {"http://192.168.1.1:5000/rootDesc.xml", PORTMAP_SSDP_OK},
      {"http://192.168.1.77:49000/igd.xml", PORTMAP_SSDP_OK}, /* another host: syntax only */
      {"http://203.0.113.9/x", PORTMAP_SSDP_OK},
      {"http://[2001:db8::1]/x", PORTMAP_SSDP_OK},
      {"http://127.0.0.1:5000/rootDesc.xml", PORTMAP_SSDP_ERR_URL_FORBIDDEN},
      {"http://127.1.2.3/", PORTMAP_SSDP_ERR_URL_FORBIDDEN},
      {"http://169.254.169.254/latest/meta-data/", PORTMAP_SSDP_ERR_URL_FORBIDDEN},
      {"http://224.0.0.1/", PORTMAP_SSDP_ERR_URL_FORBIDDEN},
      {"http://239.255.255.250:1900/", PORTMAP_SSDP_ERR_URL_FORBIDDEN},
      {"http://0.0.0.0:5000/", PORTMAP_SSDP_ERR_URL_FORBIDDEN},
      {"http://0.1.2.3/", PORTMAP_SSDP_ERR_URL_FORBIDDEN},
      {"http://255.255.255.255/", PORTMAP_SSDP_ERR_URL_FORBIDDEN},
      {"http://[::1]/", PORTMAP_SSDP_ERR_URL_FORBIDDEN},
      {"http://[::]/", PORTMAP_SSDP_ERR_URL_FORBIDDEN},
      {"http://[fe80::1]/", PORTMAP_SSDP_ERR_URL_FORBIDDEN},
      {"http://[ff02::c]/", PORTMAP_SSDP_ERR_URL_FORBIDDEN},
      {"http://[::ffff:127.0.0.1]/", PORTMAP_SSDP_ERR_URL_FORBIDDEN},
      {"http://[::ffff:169.254.1.1]/", PORTMAP_SSDP_ERR_URL_FORBIDDEN},
      {"http://[::127.0.0.1]/", PORTMAP_SSDP_ERR_URL_FORBIDDEN},
      {"http://router/", PORTMAP_SSDP_ERR_URL_HOST},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int rc = portmap_ssdp_location_ok(cases[i].url, gw, NULL);
    if (rc != cases[i].rc)
      fail_msg("%s: %d, expected %d", cases[i].url, rc, cases[i].rc);
  }
  /* the gateway itself may be loopback (the tests), and only it */
  portmap_ssdp_url_t u;
  assert_int_equal(portmap_ssdp_location_ok("http://127.0.0.1:5000/rootDesc.xml", lo, &u),
                   PORTMAP_SSDP_OK);
  assert_string_equal(u.canonical, "http://127.0.0.1:5000/rootDesc.xml");
  assert_int_equal(portmap_ssdp_location_ok("http://[::ffff:127.0.0.1]:5000/", lo, NULL),
                   PORTMAP_SSDP_OK);
  assert_int_equal(portmap_ssdp_location_ok("http://127.0.0.2:5000/", lo, &u),
                   PORTMAP_SSDP_ERR_URL_FORBIDDEN);
  assert_string_equal(u.canonical, "");
  assert_int_equal(portmap_ssdp_location_ok("http://127.0.0.1/", NULL, NULL),
                   PORTMAP_SSDP_ERR_URL_FORBIDDEN);
  assert_int_equal(portmap_ssdp_location_ok("http://192.168.1.1/", NULL, NULL), PORTMAP_SSDP_OK);
}

/* ---------- M-SEARCH ---------- */

static void test_msearch_build(void **state) {
  (void)state;
  char buf[512];
  size_t n =
      portmap_ssdp_build_msearch(buf, sizeof buf, "192.168.1.1:1900", PORTMAP_SSDP_ST_IGD2, 2);
  const char *want = "M-SEARCH * HTTP/1.1\r\n"
                     "HOST: 192.168.1.1:1900\r\n"
                     "MAN: \"ssdp:discover\"\r\n"
                     "MX: 2\r\n"
                     "ST: urn:schemas-upnp-org:device:InternetGatewayDevice:2\r\n"
                     "USER-AGENT: Linux UPnP/1.1 libportmap/0.1\r\n"
                     "\r\n";
  assert_int_equal(n, strlen(want));
  assert_memory_equal(buf, want, n);
  n = portmap_ssdp_build_msearch(buf, sizeof buf, "239.255.255.250:1900", "upnp:rootdevice", 9);
  assert_non_null(strstr(buf, "MX: 5\r\n")); /* clamped */
  assert_true(n > 0);
  /* injection through the arguments, a short buffer */
  assert_int_equal(
      portmap_ssdp_build_msearch(buf, sizeof buf, "1.2.3.4:1900", "upnp:rootdevice\r\nX: y", 1), 0);
  assert_int_equal(portmap_ssdp_build_msearch(buf, sizeof buf, "1.2.3.4 :1900", "x", 1), 0);
  assert_int_equal(portmap_ssdp_build_msearch(buf, sizeof buf, "", "x", 1), 0);
  assert_int_equal(portmap_ssdp_build_msearch(buf, 40, "1.2.3.4:1900", "x", 1), 0);
  assert_int_equal(portmap_ssdp_build_msearch(NULL, 40, "1.2.3.4:1900", "x", 1), 0);
}

/* Q3 with the network rule: never multicast for a loopback gateway. */
static void test_Q3_multicast_rule(void **state) {
  (void)state;
  uint8_t a[16];
  v4(a, 192, 168, 1, 1);
  assert_int_equal(portmap_ssdp_multicast_allowed(a, 1), 1);
  assert_int_equal(portmap_ssdp_multicast_allowed(a, 0), 0);
  v4(a, 127, 0, 0, 1);
  assert_int_equal(portmap_ssdp_multicast_allowed(a, 1), 0);
  v4(a, 127, 9, 9, 9);
  assert_int_equal(portmap_ssdp_multicast_allowed(a, 1), 0);
  memset(a, 0, 16);
  a[0] = 0xfe;
  a[1] = 0x80;
  a[15] = 1;
  assert_int_equal(portmap_ssdp_multicast_allowed(a, 1), 0);
  assert_int_equal(portmap_ssdp_multicast_allowed(NULL, 1), 0);
}

static void test_st_is_igd(void **state) {
  (void)state;
  assert_int_equal(portmap_ssdp_st_is_igd(PORTMAP_SSDP_ST_IGD1), 1);
  assert_int_equal(portmap_ssdp_st_is_igd(PORTMAP_SSDP_ST_IGD2), 1);
  assert_int_equal(portmap_ssdp_st_is_igd(PORTMAP_SSDP_ST_DSLF), 1);
  assert_int_equal(portmap_ssdp_st_is_igd("urn:schemas-upnp-org:service:WANIPConnection:1"), 1);
  assert_int_equal(portmap_ssdp_st_is_igd("urn:dslforum-org:service:WANPPPConnection:1"), 1);
  assert_int_equal(portmap_ssdp_st_is_igd("urn:schemas-upnp-org:device:WANConnectionDevice:2"), 1);
  assert_int_equal(portmap_ssdp_st_is_igd(PORTMAP_SSDP_ST_ROOT), 0);
  assert_int_equal(portmap_ssdp_st_is_igd("urn:schemas-upnp-org:device:InternetGatewayDevice:"), 0);
  assert_int_equal(portmap_ssdp_st_is_igd("urn:schemas-upnp-org:device:MediaServer:1"), 0);
  assert_int_equal(portmap_ssdp_st_is_igd(""), 0);
  assert_int_equal(portmap_ssdp_st_is_igd(NULL), 0);
}

/* ---------- descriptions ---------- */

static const char DESC_MINIUPNPD[] =
    "<?xml version=\"1.0\"?>\r\n"
    "<root xmlns=\"urn:schemas-upnp-org:device-1-0\"><specVersion><major>1</major><minor>0</minor>"
    "</specVersion><device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1"
    "</deviceType><friendlyName>OpenWrt router</friendlyName><serviceList><service><serviceType>"
    "urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType><controlURL>/ctl/L3F"
    "</controlURL></service></serviceList><deviceList><device><deviceType>"
    "urn:schemas-upnp-org:device:WANDevice:1</deviceType><friendlyName>WANDevice</friendlyName>"
    "<serviceList><service><serviceType>urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1"
    "</serviceType><controlURL>/ctl/CmnIfCfg</controlURL></service></serviceList><deviceList>"
    "<device><deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1</deviceType>"
    "<friendlyName>WANConnectionDevice</friendlyName><serviceList><service><serviceType>"
    "urn:schemas-upnp-org:service:WANIPConnection:1</serviceType><serviceId>"
    "urn:upnp-org:serviceId:WANIPConn1</serviceId><controlURL>/ctl/IPConn</controlURL>"
    "</service></serviceList></device></deviceList></device></deviceList></device></root>";

static int desc_str(const char *s, portmap_upnp_desc_t *d) {
  return portmap_upnp_desc_parse(s, strlen(s), d);
}

static void test_desc_miniupnpd(void **state) {
  (void)state;
  portmap_upnp_desc_t d;
  assert_int_equal(desc_str(DESC_MINIUPNPD, &d), PORTMAP_SSDP_OK);
  assert_string_equal(d.device_type, "urn:schemas-upnp-org:device:InternetGatewayDevice:1");
  assert_string_equal(d.friendly_name, "OpenWrt router"); /* the root device's, not nested ones */
  assert_string_equal(d.url_base, "");
  assert_int_equal(d.n_all_services, 3);
  assert_int_equal(d.n_services, 1);
  assert_int_equal(d.n_dropped, 0);
  assert_string_equal(d.services[0].type, "urn:schemas-upnp-org:service:WANIPConnection:1");
  assert_string_equal(d.services[0].control_url, "/ctl/IPConn");
  assert_int_equal(d.services[0].rank, 2);
  assert_int_equal(d.services[0].order, 2);
}

/* Q28, Q29: every WAN connection service, any WANDevice, either namespace. */
static void test_Q29_Q28_desc_all_wan_services(void **state) {
  (void)state;
  static const char x[] =
      "<?xml version=\"1.0\"?><root xmlns=\"urn:schemas-upnp-org:device-1-0\"><device>"
      "<deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType><deviceList>"
      "<device><deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType><deviceList>"
      "<device><serviceList>"
      "<service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>"
      "<controlURL>/a</controlURL></service>"
      "<service><serviceType>urn:schemas-upnp-org:service:WANPPPConnection:1</serviceType>"
      "<controlURL>/b</controlURL></service>"
      "</serviceList></device></deviceList></device>"
      "<device><deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType><deviceList>"
      "<device><serviceList>"
      "<service><serviceType>urn:dslforum-org:service:WANPPPConnection:1</serviceType>"
      "<controlURL>/c</controlURL></service>"
      "<service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:2</serviceType>"
      "<controlURL>/d</controlURL></service>"
      "</serviceList></device></deviceList></device></deviceList></device></root>";
  portmap_upnp_desc_t d;
  assert_int_equal(desc_str(x, &d), PORTMAP_SSDP_OK);
  assert_int_equal(d.n_services, 4);
  const char *urls[] = {"/a", "/b", "/c", "/d"};
  const int ranks[] = {2, 3, 7, 0};
  for (size_t i = 0; i < 4; i++) {
    assert_string_equal(d.services[i].control_url, urls[i]);
    assert_int_equal(d.services[i].rank, ranks[i]);
    assert_int_equal(d.services[i].order, i);
  }
}

/* What routers write: prefixes, comments, CDATA, PIs, attributes with '>'
 * in quotes, self-closing tags, entities, a DOCTYPE. */
static void test_desc_tolerant(void **state) {
  (void)state;
  static const char x[] =
      "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<!DOCTYPE root>\n"
      "<!-- a comment with <service> inside -->\n"
      "<u:root xmlns:u=\"urn:schemas-upnp-org:device-1-0\" a='x>y'>\n"
      " <u:URLBase> http://192.168.0.1:49152/ </u:URLBase>\n"
      " <u:device>\n"
      "  <u:deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:2</u:deviceType>\n"
      "  <u:friendlyName>Caf&#233; &amp; &#x42;ar &lt;1&gt;</u:friendlyName>\n"
      "  <u:iconList/>\n"
      "  <u:serviceList><u:service>\n"
      "   <u:serviceType>urn:schemas-upnp-org:service:WANIPConnection:2</u:serviceType>\n"
      "   <u:controlURL><![CDATA[/upnp/control?x=1&y=2]]></u:controlURL>\n"
      "  </u:service></u:serviceList>\n"
      " </u:device>\n"
      "</u:root>\n trailing junk is ignored <";
  portmap_upnp_desc_t d;
  assert_int_equal(desc_str(x, &d), PORTMAP_SSDP_OK);
  assert_string_equal(d.url_base, "http://192.168.0.1:49152/");
  /* &#233; is not ASCII: the name is unusable, left empty */
  assert_string_equal(d.friendly_name, "");
  assert_int_equal(d.n_services, 1);
  assert_string_equal(d.services[0].control_url, "/upnp/control?x=1&y=2");
  static const char y[] = "<root><device><friendlyName>Caf&#101; &amp; &#x42;ar &lt;1&gt;"
                          "</friendlyName></device></root>";
  assert_int_equal(desc_str(y, &d), PORTMAP_SSDP_OK);
  assert_string_equal(d.friendly_name, "Cafe & Bar <1>");
}

static void test_desc_hostile(void **state) {
  (void)state;
  portmap_upnp_desc_t d;
  static const char nul[] = "<root><device><friendlyName>a\0b</friendlyName></device></root>";
  assert_int_equal(portmap_upnp_desc_parse(nul, sizeof nul - 1, &d), PORTMAP_SSDP_ERR_DESC);
  const char *bad[] = {
      "",
      "<html><body>not a description</body></html>",
      "<root><device></root>",
      "<root><device><deviceType>x</device></deviceType></root>",
      "<root>",
      "<root><!-- never closed </root>",
      "<root><![CDATA[ never closed </root>",
      "<root><device a=\"unterminated></device></root>",
      "<root><1bad/></root>",
      "<root></ device></root>",
      "<root><a/ ></root>",
      "<root>< /root>",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (desc_str(bad[i], &d) != PORTMAP_SSDP_ERR_DESC)
      fail_msg("accepted: %s", bad[i]);
  assert_int_equal(d.n_services, 0);
  /* too deep */
  char deep[1024];
  size_t o = 0;
  o += (size_t)snprintf(deep + o, sizeof deep - o, "<root>");
  for (int i = 0; i < 40; i++)
    o += (size_t)snprintf(deep + o, sizeof deep - o, "<a>");
  for (int i = 0; i < 40; i++)
    o += (size_t)snprintf(deep + o, sizeof deep - o, "</a>");
  snprintf(deep + o, sizeof deep - o, "</root>");
  assert_int_equal(desc_str(deep, &d), PORTMAP_SSDP_ERR_DESC);
  /* too large */
  size_t big = PORTMAP_UPNP_DESC_MAX + 1;
  char *huge = malloc(big);
  assert_non_null(huge);
  memset(huge, ' ', big);
  memcpy(huge, "<root>", 6);
  memcpy(huge + big - 7, "</root>", 7);
  assert_int_equal(portmap_upnp_desc_parse(huge, big, &d), PORTMAP_SSDP_ERR_DESC);
  assert_int_equal(portmap_upnp_desc_parse(huge, big - 1, &d),
                   PORTMAP_SSDP_ERR_DESC); /* no </root> */
  free(huge);
  assert_int_equal(portmap_upnp_desc_parse(NULL, 5, &d), PORTMAP_SSDP_ERR_DESC);
  assert_int_equal(portmap_upnp_desc_parse("<root/>", 7, NULL), PORTMAP_SSDP_ERR_DESC);
  assert_int_equal(portmap_upnp_desc_parse("<root/>", 7, &d), PORTMAP_SSDP_OK);
}

static void test_desc_limits_and_unusable_services(void **state) {
  (void)state;
  char x[8192];
  size_t o = (size_t)snprintf(x, sizeof x, "<root><device><serviceList>");
  for (int i = 0; i < 10; i++)
    o += (size_t)snprintf(x + o, sizeof x - o,
                          "<service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1"
                          "</serviceType><controlURL>/c%d</controlURL></service>",
                          i);
  /* no controlURL; a control character; a URL too long; an unknown entity */
  o += (size_t)snprintf(x + o, sizeof x - o,
                        "<service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1"
                        "</serviceType></service>");
  o += (size_t)snprintf(x + o, sizeof x - o,
                        "<service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1"
                        "</serviceType><controlURL>/a\x01</controlURL></service>");
  char longurl[400];
  memset(longurl, 'u', sizeof longurl - 1);
  longurl[0] = '/';
  longurl[sizeof longurl - 1] = '\0';
  o += (size_t)snprintf(x + o, sizeof x - o,
                        "<service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1"
                        "</serviceType><controlURL>%s</controlURL></service>",
                        longurl);
  o += (size_t)snprintf(x + o, sizeof x - o,
                        "<service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1"
                        "</serviceType><controlURL>/a&nbsp;</controlURL></service>");
  snprintf(x + o, sizeof x - o, "</serviceList></device></root>");
  portmap_upnp_desc_t d;
  assert_int_equal(desc_str(x, &d), PORTMAP_SSDP_OK);
  assert_int_equal(d.n_services, PORTMAP_UPNP_MAX_SERVICES);
  assert_int_equal(d.n_all_services, 14);
  assert_int_equal(d.n_dropped, 6);
  assert_string_equal(d.services[7].control_url, "/c7");
}

/* Q6, Q28: the order of preference */
static void test_Q6_wan_rank(void **state) {
  (void)state;
  assert_int_equal(portmap_upnp_wan_rank("urn:schemas-upnp-org:service:WANIPConnection:2"), 0);
  assert_int_equal(portmap_upnp_wan_rank("urn:schemas-upnp-org:service:WANPPPConnection:2"), 1);
  assert_int_equal(portmap_upnp_wan_rank("urn:schemas-upnp-org:service:WANIPConnection:1"), 2);
  assert_int_equal(portmap_upnp_wan_rank("urn:schemas-upnp-org:service:WANPPPConnection:1"), 3);
  assert_int_equal(portmap_upnp_wan_rank("urn:dslforum-org:service:WANIPConnection:2"), 4);
  assert_int_equal(portmap_upnp_wan_rank("urn:dslforum-org:service:WANPPPConnection:2"), 5);
  assert_int_equal(portmap_upnp_wan_rank("urn:dslforum-org:service:WANIPConnection:1"), 6);
  assert_int_equal(portmap_upnp_wan_rank("urn:dslforum-org:service:WANPPPConnection:1"), 7);
  assert_int_equal(portmap_upnp_wan_rank("urn:schemas-upnp-org:service:WANIPConnection:3"), 0);
  const char *no[] = {"urn:schemas-upnp-org:service:WANIPConnection:",
                      "urn:schemas-upnp-org:service:WANIPConnection:0",
                      "urn:schemas-upnp-org:service:WANIPConnection:1x",
                      "urn:schemas-upnp-org:service:WANIPConnection:1 ",
                      "urn:schemas-upnp-org:service:WANIPConnection:1234",
                      "urn:schemas-upnp-org:service:Layer3Forwarding:1",
                      "urn:schemas-upnp-org:service:WANIPv6FirewallControl:1",
                      "urn:example-org:service:WANIPConnection:1",
                      "urn:schemas-upnp-org:device:WANIPConnection:1",
                      "",
                      NULL};
  for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
    assert_int_equal(portmap_upnp_wan_rank(no[i]), -1);
}

static void test_igd_version(void **state) {
  (void)state;
  const char *ip2 = "urn:schemas-upnp-org:service:WANIPConnection:2";
  const char *ip1 = "urn:schemas-upnp-org:service:WANIPConnection:1";
  assert_int_equal(
      portmap_upnp_igd_version("urn:schemas-upnp-org:device:InternetGatewayDevice:2", ip1), 2);
  assert_int_equal(
      portmap_upnp_igd_version("urn:schemas-upnp-org:device:InternetGatewayDevice:1", ip2), 1);
  assert_int_equal(portmap_upnp_igd_version("", ip2), 2);
  assert_int_equal(portmap_upnp_igd_version("", ip1), 1);
  assert_int_equal(
      portmap_upnp_igd_version("urn:dslforum-org:device:InternetGatewayDevice:1", NULL), 1);
  assert_int_equal(portmap_upnp_igd_version(NULL, NULL), 1);
}

static void test_Q4_resolve_url(void **state) {
  (void)state;
  uint8_t gw[16];
  v4(gw, 192, 168, 1, 1);
  const char *loc = "http://192.168.1.1:5000/rootDesc.xml";
  char out[PORTMAP_SSDP_URL_MAX];
  static const struct {
    const char *base, *ref, *want;
    int rc;
  } cases[] = {
      {"", "/ctl/IPConn", "http://192.168.1.1:5000/ctl/IPConn", PORTMAP_SSDP_OK},
      {NULL, "ctl/IPConn", "http://192.168.1.1:5000/ctl/IPConn", PORTMAP_SSDP_OK},
      {"http://192.168.1.1:5001/", "/ctl", "http://192.168.1.1:5001/ctl", PORTMAP_SSDP_OK},
      {"not a url", "/ctl", "http://192.168.1.1:5000/ctl", PORTMAP_SSDP_OK},
      /* a stale or hostile URLBase names another host: back to the LOCATION's host */
      {"http://10.0.0.1:5002/", "/ctl", "http://192.168.1.1:5002/ctl", PORTMAP_SSDP_OK},
      {"", "http://169.254.169.254/latest/meta-data", "http://192.168.1.1:80/latest/meta-data",
       PORTMAP_SSDP_OK},
      {"", "http://192.168.1.1:49000/upnp/control/x", "http://192.168.1.1:49000/upnp/control/x",
       PORTMAP_SSDP_OK},
      {"", "https://192.168.1.1/ctl", "", PORTMAP_SSDP_ERR_URL_SCHEME},
      {"", "file:///etc/passwd", "", PORTMAP_SSDP_ERR_URL_SCHEME},
      {"", "http://evil.example/ctl", "", PORTMAP_SSDP_ERR_URL_HOST},
      {"", "", "", PORTMAP_SSDP_ERR_URL_PATH},
      {"", "/a b", "", PORTMAP_SSDP_ERR_URL_PATH},
      {"", "/a\"><x", "", PORTMAP_SSDP_ERR_URL_PATH},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int rc = portmap_upnp_resolve_url(loc, cases[i].base, cases[i].ref, gw, out, sizeof out);
    if (rc != cases[i].rc || strcmp(out, cases[i].want) != 0)
      fail_msg("%s + %s: %d '%s'", cases[i].base ? cases[i].base : "(null)", cases[i].ref, rc, out);
  }
  assert_int_equal(portmap_upnp_resolve_url("http://127.0.0.1/x", "", "/ctl", gw, out, sizeof out),
                   PORTMAP_SSDP_ERR_URL_FORBIDDEN);
  assert_string_equal(out, "");
  assert_int_equal(portmap_upnp_resolve_url(loc, "", "/ctl", gw, out, 10),
                   PORTMAP_SSDP_ERR_URL_TOO_LONG);
  assert_int_equal(portmap_upnp_resolve_url(loc, "", "/ctl", gw, NULL, 0),
                   PORTMAP_SSDP_ERR_URL_TOO_LONG);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_miniupnpd_reply),
      cmocka_unit_test(test_parse_header_names_any_case),
      cmocka_unit_test(test_parse_lf_lines_and_no_final_blank_line),
      cmocka_unit_test(test_parse_max_age_variants),
      cmocka_unit_test(test_parse_not_200),
      cmocka_unit_test(test_parse_missing_location),
      cmocka_unit_test(test_parse_oversized),
      cmocka_unit_test(test_parse_nul_and_control_octets),
      cmocka_unit_test(test_parse_header_injection),
      cmocka_unit_test(test_parse_garbage),
      cmocka_unit_test(test_url_parse_ok),
      cmocka_unit_test(test_url_parse_rejects),
      cmocka_unit_test(test_Q4_location_ok),
      cmocka_unit_test(test_msearch_build),
      cmocka_unit_test(test_Q3_multicast_rule),
      cmocka_unit_test(test_st_is_igd),
      cmocka_unit_test(test_desc_miniupnpd),
      cmocka_unit_test(test_Q29_Q28_desc_all_wan_services),
      cmocka_unit_test(test_desc_tolerant),
      cmocka_unit_test(test_desc_hostile),
      cmocka_unit_test(test_desc_limits_and_unusable_services),
      cmocka_unit_test(test_Q6_wan_rank),
      cmocka_unit_test(test_igd_version),
      cmocka_unit_test(test_Q4_resolve_url),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
