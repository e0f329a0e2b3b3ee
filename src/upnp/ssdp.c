/* SPDX-License-Identifier: MIT */
/*
 * UPnP-IGD discovery, sans I/O: SSDP replies, M-SEARCH, URL checks and the
 * root-description scanner. See ssdp.h for the formats and the rules; the
 * quirk IDs (ROUTER-QUIRKS.md) are cited where each rule is applied.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util/netutil.h"
#include "util/reader.h"
#include "upnp/ssdp.h"

/* ---------- small helpers ---------- */

static int is_digit(int b) {
  return b >= '0' && b <= '9';
}

static int is_alpha(int b) {
  return (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z');
}

static int lower(int b) {
  return b >= 'A' && b <= 'Z' ? b - 'A' + 'a' : b;
}

/* RFC 7230 tchar */
static int is_tchar(int b) {
  return is_alpha(b) || is_digit(b) || (b != 0 && strchr("!#$%&'*+-.^_`|~", b) != NULL);
}

/* Copy a value into a field of cap octets (NUL included); -1 when too long. */
static int set_field(char *dst, size_t cap, const char *src, size_t len) {
  if (len >= cap)
    return -1;
  memcpy(dst, src, len);
  dst[len] = '\0';
  return 0;
}

/* ---------- SSDP replies ---------- */

static const char SSDP_STATUS[] = "HTTP/1.1 200";

/* CACHE-CONTROL: max-age=N among other directives; N of 1-9 digits. The
 * key starts the value or follows a space, tab or comma. */
static long parse_max_age(const char *v, size_t len) {
  static const char key[] = "max-age";
  const size_t klen = sizeof key - 1;
  portmap_reader_t r;
  portmap_rd_init(&r, v, len);
  int prev = ','; /* the start of the value counts as a separator */
  while (portmap_rd_left(&r) >= klen) {
    portmap_reader_t d = r; /* a candidate at r's position */
    const char *k = (const char *)portmap_rd_take(&d, klen);
    int at_start = prev == ' ' || prev == '\t' || prev == ',';
    prev = portmap_rd_u8(&r);
    if (!at_start || !portmap_rd_text_eq(k, klen, key))
      continue;
    portmap_rd_skip_ws(&d);
    if (portmap_rd_peek(&d) != '=')
      continue;
    portmap_rd_skip(&d, 1);
    portmap_rd_skip_ws(&d);
    uint64_t n = portmap_rd_number(&d, 10, 9, 999999999u);
    return portmap_rd_ok(&d) ? (long)n : PORTMAP_SSDP_NO_MAX_AGE;
  }
  return PORTMAP_SSDP_NO_MAX_AGE;
}

/* One header line (not empty, no CR or LF, no control octet). */
static int parse_header(const char *line, size_t len, portmap_ssdp_reply_t *r, int seen[3]) {
  portmap_reader_t lr;
  portmap_rd_init(&lr, line, len);
  int first = portmap_rd_peek(&lr);
  if (first == ' ' || first == '\t')
    return PORTMAP_SSDP_ERR_SYNTAX; /* obsolete line folding: an injection vector */
  const char *name, *v;
  size_t nlen, vlen;
  if (portmap_rd_until(&lr, ':', &name, &nlen) != 1 || nlen == 0)
    return PORTMAP_SSDP_ERR_SYNTAX;
  for (size_t i = 0; i < nlen; i++)
    if (!is_tchar((unsigned char)name[i]))
      return PORTMAP_SSDP_ERR_SYNTAX;
  portmap_rd_skip_ws(&lr);
  vlen = portmap_rd_left(&lr);
  v = (const char *)portmap_rd_take(&lr, vlen);
  while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
    vlen--;
  if (portmap_rd_text_eq(name, nlen, "LOCATION")) {
    if (seen[0]++)
      return PORTMAP_SSDP_ERR_DUPLICATE;
    if (set_field(r->location, sizeof r->location, v, vlen) != 0)
      return PORTMAP_SSDP_ERR_TOO_LONG;
  } else if (portmap_rd_text_eq(name, nlen, "ST")) {
    if (seen[1]++)
      return PORTMAP_SSDP_ERR_DUPLICATE;
    if (set_field(r->st, sizeof r->st, v, vlen) != 0)
      return PORTMAP_SSDP_ERR_TOO_LONG;
  } else if (portmap_rd_text_eq(name, nlen, "USN")) {
    if (seen[2]++)
      return PORTMAP_SSDP_ERR_DUPLICATE;
    if (set_field(r->usn, sizeof r->usn, v, vlen) != 0)
      return PORTMAP_SSDP_ERR_TOO_LONG;
  } else if (portmap_rd_text_eq(name, nlen, "SERVER")) {
    if (r->server[0] == '\0' && set_field(r->server, sizeof r->server, v, vlen) != 0)
      return PORTMAP_SSDP_ERR_TOO_LONG;
  } else if (portmap_rd_text_eq(name, nlen, "CACHE-CONTROL")) {
    r->max_age = parse_max_age(v, vlen);
  }
  return PORTMAP_SSDP_OK;
}

/* A line may hold tabs but no other control octet (NUL included), and no
 * CR: the one before its LF is gone, any other is a lone CR (header
 * injection). */
static int line_octets_ok(const char *line, size_t len) {
  portmap_reader_t lr;
  portmap_rd_init(&lr, line, len);
  while (portmap_rd_left(&lr) > 0) {
    uint8_t b = portmap_rd_u8(&lr);
    if ((b < 0x20 && b != '\t') || b == 0x7f)
      return 0;
  }
  return 1;
}

int portmap_ssdp_parse(const uint8_t *buf, size_t len, portmap_ssdp_reply_t *out) {
  if (out == NULL)
    return PORTMAP_SSDP_ERR_SYNTAX;
  memset(out, 0, sizeof *out);
  out->max_age = PORTMAP_SSDP_NO_MAX_AGE;
  if (buf == NULL)
    return PORTMAP_SSDP_ERR_STATUS;
  if (len > PORTMAP_SSDP_MAX_DATAGRAM)
    return PORTMAP_SSDP_ERR_TOO_LONG;
  portmap_reader_t r;
  portmap_rd_init(&r, buf, len);
  const size_t slen = sizeof SSDP_STATUS - 1;
  const uint8_t *status = portmap_rd_take(&r, slen);
  if (status == NULL || memcmp(status, SSDP_STATUS, slen) != 0)
    return PORTMAP_SSDP_ERR_STATUS;
  int after = portmap_rd_peek(&r);
  if (after != -1 && after != ' ' && after != '\r' && after != '\n')
    return PORTMAP_SSDP_ERR_STATUS; /* "HTTP/1.1 2000" */

  portmap_ssdp_reply_t rep;
  memset(&rep, 0, sizeof rep);
  rep.max_age = PORTMAP_SSDP_NO_MAX_AGE;
  int seen[3] = {0, 0, 0};
  size_t headers = 0;
  int first = 1, ended = 0;
  portmap_rd_init(&r, buf, len); /* the status line is read as a line too */
  while (portmap_rd_left(&r) > 0) {
    const char *line;
    size_t line_len;
    (void)portmap_rd_line(&r, &line, &line_len);
    if (!line_octets_ok(line, line_len))
      return PORTMAP_SSDP_ERR_BYTE;
    if (line_len > PORTMAP_SSDP_MAX_LINE)
      return PORTMAP_SSDP_ERR_TOO_LONG;
    if (first) {
      first = 0; /* the status line, checked above */
      continue;
    }
    if (line_len == 0) {
      ended = 1;
      break;
    }
    if (++headers > PORTMAP_SSDP_MAX_HEADERS)
      return PORTMAP_SSDP_ERR_TOO_LONG;
    int rc = parse_header(line, line_len, &rep, seen);
    if (rc != PORTMAP_SSDP_OK)
      return rc;
  }
  if (ended && portmap_rd_left(&r) > 0)
    return PORTMAP_SSDP_ERR_SYNTAX; /* SSDP replies carry no body */
  if (rep.location[0] == '\0')
    return PORTMAP_SSDP_ERR_NO_LOCATION;
  *out = rep;
  return PORTMAP_SSDP_OK;
}

/* ---------- URLs ---------- */

static int isxdigit_ascii(int b) {
  return is_digit(b) || (lower(b) >= 'a' && lower(b) <= 'f');
}

/* RFC 3986 pchar plus '/' and '?', with %XX checked. */
static int path_ok(const char *p) {
  for (size_t i = 0; p[i] != '\0'; i++) {
    unsigned char b = (unsigned char)p[i];
    if (b == '%') {
      if (!isxdigit_ascii(p[i + 1]) || !isxdigit_ascii(p[i + 2]))
        return 0;
      i += 2;
      continue;
    }
    if (is_alpha(b) || is_digit(b) || strchr("-._~!$&'()*+,;=:@/?", b) != NULL)
      continue;
    return 0;
  }
  return 1;
}

int portmap_ssdp_url_parse(const char *url, portmap_ssdp_url_t *out) {
  portmap_ssdp_url_t u;
  memset(&u, 0, sizeof u);
  if (out != NULL)
    memset(out, 0, sizeof *out);
  if (url == NULL)
    return PORTMAP_SSDP_ERR_URL_SCHEME;
  size_t len = strnlen(url, PORTMAP_SSDP_URL_MAX);
  if (len >= PORTMAP_SSDP_URL_MAX)
    return PORTMAP_SSDP_ERR_URL_TOO_LONG;
  portmap_reader_t r;
  portmap_rd_init(&r, url, len);
  const uint8_t *scheme = portmap_rd_take(&r, 7);
  if (scheme == NULL || !portmap_rd_text_eq((const char *)scheme, 7, "http://"))
    return PORTMAP_SSDP_ERR_URL_SCHEME;
  if (portmap_rd_peek(&r) == '[') {
    portmap_rd_skip(&r, 1);
    const char *h;
    size_t hl;
    char tmp[64];
    if (portmap_rd_until(&r, ']', &h, &hl) != 1 || hl == 0 || hl >= sizeof tmp)
      return PORTMAP_SSDP_ERR_URL_HOST;
    memcpy(tmp, h, hl);
    tmp[hl] = '\0';
    if (memchr(tmp, '%', hl) != NULL || inet_pton(AF_INET6, tmp, u.addr) != 1)
      return PORTMAP_SSDP_ERR_URL_HOST; /* zones make no sense in a LOCATION */
    char text[INET6_ADDRSTRLEN];
    if (inet_ntop(AF_INET6, u.addr, text, sizeof text) == NULL)
      return PORTMAP_SSDP_ERR_URL_HOST;
    snprintf(u.host, sizeof u.host, "[%s]", text);
  } else {
    /* a strict dotted quad: inet_aton's octal and short forms are refused */
    uint8_t q[4];
    for (int i = 0; i < 4; i++) {
      if (i > 0) {
        if (portmap_rd_peek(&r) != '.')
          return PORTMAP_SSDP_ERR_URL_HOST;
        portmap_rd_skip(&r, 1);
      }
      size_t start = portmap_rd_pos(&r);
      int lead = portmap_rd_peek(&r);
      uint64_t v = portmap_rd_number(&r, 10, 3, 255);
      if (!portmap_rd_ok(&r) || (portmap_rd_pos(&r) - start > 1 && lead == '0'))
        return PORTMAP_SSDP_ERR_URL_HOST;
      q[i] = (uint8_t)v;
    }
    int next = portmap_rd_peek(&r);
    if (next != -1 && next != ':' && next != '/' && next != '?')
      return PORTMAP_SSDP_ERR_URL_HOST; /* user info, host names, ... */
    memset(u.addr, 0, 10);
    u.addr[10] = u.addr[11] = 0xff;
    memcpy(u.addr + 12, q, 4);
    snprintf(u.host, sizeof u.host, "%u.%u.%u.%u", q[0], q[1], q[2], q[3]);
  }
  u.port = 80;
  if (portmap_rd_peek(&r) == ':') {
    portmap_rd_skip(&r, 1);
    /* up to 6 digits (leading zeros allowed), 1-65535 */
    uint64_t v = portmap_rd_number(&r, 10, 6, 65535);
    int next = portmap_rd_peek(&r);
    if (!portmap_rd_ok(&r) || v == 0 || (next != -1 && next != '/' && next != '?'))
      return PORTMAP_SSDP_ERR_URL_PORT;
    u.port = (uint16_t)v;
  } else if (portmap_rd_peek(&r) != -1 && portmap_rd_peek(&r) != '/' &&
             portmap_rd_peek(&r) != '?') {
    return PORTMAP_SSDP_ERR_URL_HOST;
  }
  /* the rest is the path (and query); "" means "/" */
  size_t rest_len = portmap_rd_left(&r);
  const char *rest = (const char *)portmap_rd_take(&r, rest_len);
  snprintf(u.path, sizeof u.path, "%s%.*s", rest_len == 0 || rest[0] == '?' ? "/" : "",
           (int)rest_len, rest);
  if (!path_ok(u.path))
    return PORTMAP_SSDP_ERR_URL_PATH;
  int n = snprintf(u.canonical, sizeof u.canonical, "http://%s:%u%s", u.host, u.port, u.path);
  if (n < 0 || (size_t)n >= sizeof u.canonical)
    return PORTMAP_SSDP_ERR_URL_TOO_LONG;
  if (out != NULL)
    *out = u;
  return PORTMAP_SSDP_OK;
}

/* Q4: where a LOCATION or control URL may never point. */
static int forbidden_host(const uint8_t a[16]) {
  if (portmap_net_is_forbidden_target(a))
    return 1;
  if (portmap_net_is_v4(a))
    return a[12] == 0; /* 0/8 is "this host" to connect() */
  static const uint8_t zero[12] = {0};
  return memcmp(a, zero, 12) == 0; /* ::a.b.c.d, deprecated v4-compatible */
}

int portmap_ssdp_location_ok(const char *url, const uint8_t gateway[16], portmap_ssdp_url_t *out) {
  portmap_ssdp_url_t u;
  int rc = portmap_ssdp_url_parse(url, &u);
  if (out != NULL)
    memset(out, 0, sizeof *out);
  if (rc != PORTMAP_SSDP_OK)
    return rc;
  /* trusting the configured gateway itself is the point (it may be 127.0.0.1) */
  int is_gateway = gateway != NULL && memcmp(u.addr, gateway, 16) == 0;
  if (!is_gateway && forbidden_host(u.addr))
    return PORTMAP_SSDP_ERR_URL_FORBIDDEN;
  if (out != NULL)
    *out = u;
  return PORTMAP_SSDP_OK;
}

/* ---------- M-SEARCH ---------- */

static int text_ok(const char *s, size_t max) {
  size_t n = strnlen(s, max);
  if (n == 0 || n >= max)
    return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char b = (unsigned char)s[i];
    if (b < 0x21 || b >= 0x7f)
      return 0;
  }
  return 1;
}

size_t portmap_ssdp_build_msearch(char *buf, size_t cap, const char *host, const char *st,
                                  unsigned mx) {
  if (buf == NULL || host == NULL || st == NULL || !text_ok(host, 64) ||
      !text_ok(st, PORTMAP_SSDP_FIELD_MAX))
    return 0;
  if (mx < 1)
    mx = 1;
  if (mx > 5)
    mx = 5;
  int n = snprintf(buf, cap,
                   "M-SEARCH * HTTP/1.1\r\n"
                   "HOST: %s\r\n"
                   "MAN: \"ssdp:discover\"\r\n"
                   "MX: %u\r\n"
                   "ST: %s\r\n"
                   "USER-AGENT: Linux UPnP/1.1 libportmap/0.1\r\n"
                   "\r\n",
                   host, mx, st);
  if (n < 0 || (size_t)n >= cap)
    return 0;
  return (size_t)n;
}

int portmap_ssdp_multicast_allowed(const uint8_t gateway[16], int configured) {
  if (!configured || gateway == NULL || !portmap_net_is_v4(gateway))
    return 0;
  return gateway[12] != 127; /* tests run on loopback: nothing may leave it */
}

int portmap_ssdp_st_is_igd(const char *st) {
  if (st == NULL)
    return 0;
  static const char *const ns[] = {"urn:schemas-upnp-org:", "urn:dslforum-org:"};
  static const char *const kinds[] = {
      "device:InternetGatewayDevice:", "device:WANDevice:", "device:WANConnectionDevice:",
      "service:WANIPConnection:", "service:WANPPPConnection:"};
  for (size_t i = 0; i < 2; i++) {
    size_t nl = strlen(ns[i]);
    if (strncmp(st, ns[i], nl) != 0)
      continue;
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
      size_t kl = strlen(kinds[k]);
      if (strncmp(st + nl, kinds[k], kl) == 0 && is_digit(st[nl + kl]))
        return 1;
    }
  }
  return 0;
}

/* ---------- root descriptions ---------- */

#define XML_DEPTH 32
#define XML_NAME 48
#define XML_TEXT 256
#define XML_MAX_ELEMENTS 20000u

typedef struct xml_scan {
  const char *x;
  size_t len, pos;
  char stack[XML_DEPTH][XML_NAME];
  size_t depth;
  char text[XML_TEXT];
  size_t text_len;
  int text_bad;
  size_t service_depth; /* depth of the open <service>, 0 none */
  portmap_upnp_service_t cur;
  int cur_bad;
  unsigned root_devices; /* <device> directly under <root> */
  unsigned elements;
  int done; /* the document element closed */
  portmap_upnp_desc_t *out;
} xml_scan_t;

static int name_eq(const char *a, const char *b) {
  return strcasecmp(a, b) == 0;
}

static void text_add(xml_scan_t *s, const char *p, size_t n) {
  if (s->text_len + n >= sizeof s->text) {
    s->text_bad = 1;
    return;
  }
  memcpy(s->text + s->text_len, p, n);
  s->text_len += n;
  s->text[s->text_len] = '\0';
}

/* Decode the five XML entities and character references into dst (values
 * here are URLs, types and names: printable ASCII and UTF-8). Trims
 * surrounding white space. Returns 0, or -1 when the value is unusable. */
static int text_value(const xml_scan_t *s, char *dst, size_t cap) {
  if (s->text_bad)
    return -1;
  const char *t = s->text;
  size_t n = s->text_len;
  while (n > 0 && (*t == ' ' || *t == '\t' || *t == '\r' || *t == '\n')) {
    t++;
    n--;
  }
  while (n > 0 && (t[n - 1] == ' ' || t[n - 1] == '\t' || t[n - 1] == '\r' || t[n - 1] == '\n'))
    n--;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char b = (unsigned char)t[i];
    unsigned v = b;
    if (b < 0x20 || b == 0x7f)
      return -1;
    if (b == '&') {
      const char *semi = memchr(t + i, ';', n - i < 12 ? n - i : 12);
      if (semi == NULL)
        return -1;
      size_t el = (size_t)(semi - (t + i)) + 1;
      if (el == 5 && memcmp(t + i, "&amp;", 5) == 0)
        v = '&';
      else if (el == 4 && memcmp(t + i, "&lt;", 4) == 0)
        v = '<';
      else if (el == 4 && memcmp(t + i, "&gt;", 4) == 0)
        v = '>';
      else if (el == 6 && memcmp(t + i, "&quot;", 6) == 0)
        v = '"';
      else if (el == 6 && memcmp(t + i, "&apos;", 6) == 0)
        v = '\'';
      else if (el >= 4 && t[i + 1] == '#') {
        int hex = t[i + 2] == 'x' || t[i + 2] == 'X';
        v = 0;
        size_t k = i + 2 + (size_t)hex;
        if (k >= i + el - 1)
          return -1;
        for (; k < i + el - 1; k++) {
          int c = t[k];
          unsigned d;
          if (is_digit(c))
            d = (unsigned)(c - '0');
          else if (hex && lower(c) >= 'a' && lower(c) <= 'f')
            d = (unsigned)(lower(c) - 'a' + 10);
          else
            return -1;
          v = v * (hex ? 16u : 10u) + d;
          if (v > 0x7e)
            return -1;
        }
        if (v < 0x20)
          return -1;
      } else {
        return -1;
      }
      i += el - 1;
    }
    if (o + 1 >= cap)
      return -1;
    dst[o++] = (char)v;
  }
  if (cap == 0)
    return -1;
  dst[o] = '\0';
  return 0;
}

static void on_start(xml_scan_t *s, const char *name) {
  s->text_len = 0;
  s->text[0] = '\0';
  s->text_bad = 0;
  if (name_eq(name, "service") && s->service_depth == 0) {
    s->service_depth = s->depth;
    memset(&s->cur, 0, sizeof s->cur);
    s->cur_bad = 0;
  }
  if (name_eq(name, "device") && s->depth == 2)
    s->root_devices++;
}

static void on_end(xml_scan_t *s, const char *name) {
  portmap_upnp_desc_t *d = s->out;
  size_t depth = s->depth; /* the closing element is stack[depth - 1] */
  if (depth == 2 && name_eq(name, "URLBase")) {
    if (text_value(s, d->url_base, sizeof d->url_base) != 0)
      d->url_base[0] = '\0';
  } else if (depth == 3 && s->root_devices == 1 && name_eq(s->stack[1], "device")) {
    if (name_eq(name, "deviceType") && d->device_type[0] == '\0') {
      if (text_value(s, d->device_type, sizeof d->device_type) != 0)
        d->device_type[0] = '\0';
    } else if (name_eq(name, "friendlyName") && d->friendly_name[0] == '\0') {
      if (text_value(s, d->friendly_name, sizeof d->friendly_name) != 0)
        d->friendly_name[0] = '\0';
    }
  }
  if (s->service_depth != 0 && depth == s->service_depth + 1) {
    if (name_eq(name, "serviceType") && text_value(s, s->cur.type, sizeof s->cur.type) != 0)
      s->cur_bad = 1;
    if (name_eq(name, "controlURL") &&
        text_value(s, s->cur.control_url, sizeof s->cur.control_url) != 0)
      s->cur_bad = 1;
  }
  if (s->service_depth != 0 && depth == s->service_depth && name_eq(name, "service")) {
    s->service_depth = 0;
    unsigned order = d->n_all_services++;
    int rank = portmap_upnp_wan_rank(s->cur.type);
    if (rank >= 0) {
      /* Q28, Q29: every WAN connection service, in any device, either namespace */
      if (s->cur_bad || s->cur.control_url[0] == '\0' ||
          d->n_services >= PORTMAP_UPNP_MAX_SERVICES) {
        d->n_dropped++;
      } else {
        s->cur.rank = rank;
        s->cur.order = order;
        d->services[d->n_services++] = s->cur;
      }
    }
  }
  s->text_len = 0;
  s->text[0] = '\0';
  s->text_bad = 0;
}

/* Skip to the end of a construct; returns 0 or -1 when it never ends. */
static int skip_past(xml_scan_t *s, const char *end) {
  size_t el = strlen(end);
  for (size_t i = s->pos; i + el <= s->len; i++) {
    if (memcmp(s->x + i, end, el) == 0) {
      s->pos = i + el;
      return 0;
    }
  }
  return -1;
}

static int is_name_char(int b) {
  return is_alpha(b) || is_digit(b) || b == '_' || b == ':' || b == '.' || b == '-';
}

/* Read a tag name at s->pos into name (its local part, after any prefix). */
static int read_name(xml_scan_t *s, char name[XML_NAME]) {
  size_t start = s->pos;
  if (s->pos >= s->len || !(is_alpha((unsigned char)s->x[s->pos]) || s->x[s->pos] == '_'))
    return -1; /* names start with a letter or '_' */
  while (s->pos < s->len && is_name_char((unsigned char)s->x[s->pos]))
    s->pos++;
  size_t n = s->pos - start;
  if (n == 0)
    return -1;
  const char *local = s->x + start;
  for (size_t i = 0; i < n; i++)
    if (s->x[start + i] == ':')
      local = s->x + start + i + 1;
  size_t ln = (size_t)(s->x + s->pos - local);
  if (ln == 0)
    return -1;
  if (ln >= XML_NAME)
    ln = XML_NAME - 1;
  memcpy(name, local, ln);
  name[ln] = '\0';
  return 0;
}

static int scan_tag(xml_scan_t *s) {
  const char *x = s->x;
  size_t left = s->len - s->pos;
  if (left >= 4 && memcmp(x + s->pos, "<!--", 4) == 0) {
    s->pos += 4;
    return skip_past(s, "-->");
  }
  if (left >= 9 && memcmp(x + s->pos, "<![CDATA[", 9) == 0) {
    s->pos += 9;
    size_t start = s->pos;
    if (skip_past(s, "]]>") != 0)
      return -1;
    /* CDATA is literal: keep its '&' literal through text_value() */
    for (size_t i = start; s->depth > 0 && i < s->pos - 3; i++) {
      if (x[i] == '&')
        text_add(s, "&amp;", 5);
      else
        text_add(s, x + i, 1);
    }
    return 0;
  }
  if (left >= 2 && x[s->pos + 1] == '?') {
    s->pos += 2;
    return skip_past(s, "?>");
  }
  if (left >= 2 && x[s->pos + 1] == '!') {
    s->pos += 2;
    /* DOCTYPE; an internal subset ends with "]>" */
    for (size_t i = s->pos; i < s->len; i++) {
      if (x[i] == '[') {
        s->pos = i + 1;
        return skip_past(s, "]>");
      }
      if (x[i] == '>') {
        s->pos = i + 1;
        return 0;
      }
    }
    return -1;
  }
  s->pos++; /* '<' */
  int closing = 0;
  if (s->pos < s->len && x[s->pos] == '/') {
    closing = 1;
    s->pos++;
  }
  char name[XML_NAME];
  if (read_name(s, name) != 0)
    return -1;
  /* attributes: up to '>' outside quotes */
  char quote = 0;
  int self_close = 0;
  for (;;) {
    if (s->pos >= s->len)
      return -1;
    char b = x[s->pos++];
    if (quote) {
      if (b == quote)
        quote = 0;
      continue;
    }
    if (b == '"' || b == '\'') {
      if (closing)
        return -1;
      quote = b;
    } else if (b == '>') {
      break;
    } else if (b == '/') {
      if (closing || s->pos >= s->len || x[s->pos] != '>')
        return -1;
      self_close = 1;
    }
  }
  if (++s->elements > XML_MAX_ELEMENTS)
    return -1;
  if (closing) {
    if (s->depth == 0 || strcmp(s->stack[s->depth - 1], name) != 0)
      return -1;
    on_end(s, name);
    s->depth--;
    if (s->depth == 0)
      s->done = 1;
    return 0;
  }
  if (s->depth >= XML_DEPTH)
    return -1;
  memcpy(s->stack[s->depth], name, sizeof s->stack[0]);
  s->depth++;
  on_start(s, name);
  if (self_close) {
    on_end(s, name);
    s->depth--;
    if (s->depth == 0)
      s->done = 1;
  }
  return 0;
}

int portmap_upnp_desc_parse(const char *xml, size_t len, portmap_upnp_desc_t *out) {
  if (out == NULL)
    return PORTMAP_SSDP_ERR_DESC;
  memset(out, 0, sizeof *out);
  if (xml == NULL || len == 0 || len > PORTMAP_UPNP_DESC_MAX)
    return PORTMAP_SSDP_ERR_DESC;
  if (memchr(xml, '\0', len) != NULL)
    return PORTMAP_SSDP_ERR_DESC;
  xml_scan_t s;
  memset(&s, 0, sizeof s);
  portmap_upnp_desc_t d;
  memset(&d, 0, sizeof d);
  s.x = xml;
  s.len = len;
  s.out = &d;
  while (s.pos < s.len && !s.done) {
    const char *lt = memchr(xml + s.pos, '<', s.len - s.pos);
    size_t stop = lt != NULL ? (size_t)(lt - xml) : s.len;
    if (stop > s.pos && s.depth > 0)
      text_add(&s, xml + s.pos, stop - s.pos);
    s.pos = stop;
    if (lt == NULL)
      break;
    if (scan_tag(&s) != 0)
      return PORTMAP_SSDP_ERR_DESC;
  }
  if (!s.done || !name_eq(s.stack[0], "root"))
    return PORTMAP_SSDP_ERR_DESC;
  *out = d;
  return PORTMAP_SSDP_OK;
}

/* "urn:<ns>:service:WAN{IP,PPP}Connection:<v>" */
int portmap_upnp_wan_rank(const char *t) {
  if (t == NULL)
    return -1;
  static const char *const ns[] = {"urn:schemas-upnp-org:service:", "urn:dslforum-org:service:"};
  for (int i = 0; i < 2; i++) {
    size_t nl = strlen(ns[i]);
    if (strncmp(t, ns[i], nl) != 0)
      continue;
    const char *k = t + nl;
    int ppp;
    if (strncmp(k, "WANIPConnection:", 16) == 0) {
      ppp = 0;
      k += 16;
    } else if (strncmp(k, "WANPPPConnection:", 17) == 0) {
      ppp = 1;
      k += 17;
    } else {
      return -1;
    }
    unsigned v = 0, digits = 0;
    while (is_digit(*k) && digits < 3) {
      v = v * 10 + (unsigned)(*k - '0');
      k++;
      digits++;
    }
    if (digits == 0 || *k != '\0' || v == 0)
      return -1;
    return i * 4 + (v >= 2 ? 0 : 2) + ppp;
  }
  return -1;
}

static int version_of(const char *type, const char *prefix) {
  size_t pl = strlen(prefix);
  if (type == NULL || strncmp(type, prefix, pl) != 0)
    return 0;
  unsigned v = 0, digits = 0;
  for (const char *k = type + pl; is_digit(*k) && digits < 3; k++, digits++)
    v = v * 10 + (unsigned)(*k - '0');
  return digits == 0 ? 0 : v >= 2 ? 2 : 1;
}

int portmap_upnp_igd_version(const char *device_type, const char *service_type) {
  int v = version_of(device_type, "urn:schemas-upnp-org:device:InternetGatewayDevice:");
  if (v != 0)
    return v;
  if (version_of(device_type, "urn:dslforum-org:device:InternetGatewayDevice:") != 0)
    return 1;
  int r = portmap_upnp_wan_rank(service_type);
  return r >= 0 && r % 4 < 2 ? 2 : 1;
}

int portmap_upnp_resolve_url(const char *location, const char *url_base, const char *ref,
                             const uint8_t gateway[16], char *out, size_t cap) {
  if (out == NULL || cap == 0)
    return PORTMAP_SSDP_ERR_URL_TOO_LONG;
  out[0] = '\0';
  portmap_ssdp_url_t loc, base, r;
  int rc = portmap_ssdp_location_ok(location, gateway, &loc);
  if (rc != PORTMAP_SSDP_OK)
    return rc;
  if (url_base == NULL || url_base[0] == '\0' || portmap_ssdp_url_parse(url_base, &base) != 0)
    base = loc;
  if (ref == NULL || ref[0] == '\0')
    return PORTMAP_SSDP_ERR_URL_PATH;
  if (strncasecmp(ref, "http://", 7) == 0) {
    rc = portmap_ssdp_url_parse(ref, &r);
    if (rc != PORTMAP_SSDP_OK)
      return rc;
  } else if (strstr(ref, "://") != NULL) {
    return PORTMAP_SSDP_ERR_URL_SCHEME;
  } else {
    r = base;
    int n = snprintf(r.path, sizeof r.path, "%s%s", ref[0] == '/' ? "" : "/", ref);
    if (n < 0 || (size_t)n >= sizeof r.path)
      return PORTMAP_SSDP_ERR_URL_TOO_LONG;
    if (!path_ok(r.path))
      return PORTMAP_SSDP_ERR_URL_PATH;
  }
  if (memcmp(r.addr, loc.addr, 16) != 0) {
    /* Q4: never follow a description to another host */
    memcpy(r.addr, loc.addr, 16);
    memcpy(r.host, loc.host, sizeof r.host);
  }
  int n = snprintf(out, cap, "http://%s:%u%s", r.host, r.port, r.path);
  if (n < 0 || (size_t)n >= cap || n >= PORTMAP_SSDP_URL_MAX) {
    out[0] = '\0';
    return PORTMAP_SSDP_ERR_URL_TOO_LONG;
  }
  return PORTMAP_SSDP_OK;
}
