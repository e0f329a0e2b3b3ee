/* SPDX-License-Identifier: MIT */
/*
 * UPnP-IGD discovery, sans I/O: the SSDP reply parser, the M-SEARCH
 * builder, the LOCATION / control-URL checker (the SSRF guard of
 * ROUTER-QUIRKS Q4) and a bounded scanner of IGD root descriptions that
 * lists every WAN connection service (Q6, Q28, Q29). No sockets, no
 * clocks, no allocation: every function reads caller memory and writes
 * caller memory, so all of it is unit-tested and fuzzed directly.
 *
 * An SSDP reply (UDA 1.1 section 1.3.3) is an HTTP response in one UDP
 * datagram:
 *
 *   HTTP/1.1 200 OK\r\n
 *   CACHE-CONTROL: max-age=120\r\n
 *   ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n
 *   USN: uuid:...::urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n
 *   EXT:\r\n
 *   SERVER: Linux/5.10 UPnP/1.1 MiniUPnPd/2.3.1\r\n
 *   LOCATION: http://192.168.1.1:5000/rootDesc.xml\r\n
 *   \r\n
 *
 * The parser is strict: the status line must be exactly "HTTP/1.1 200"
 * (then a space and a reason, or the end of the line); header names are
 * tokens compared without case; a value may not hold a control octet (NUL
 * included) or a lone CR; folded lines, duplicate LOCATION / ST / USN
 * headers, values longer than their field, lines longer than
 * PORTMAP_SSDP_MAX_LINE, more than PORTMAP_SSDP_MAX_HEADERS headers and
 * octets after the empty line are rejected, never truncated. LOCATION is
 * required; everything else is optional.
 */
#ifndef PORTMAP_UPNP_SSDP_H
#define PORTMAP_UPNP_SSDP_H

#include <stddef.h>
#include <stdint.h>

#define PORTMAP_SSDP_PORT 1900
#define PORTMAP_SSDP_MAX_DATAGRAM 2048 /* longer replies are rejected */
#define PORTMAP_SSDP_MAX_LINE 512      /* octets per line, CRLF excluded */
#define PORTMAP_SSDP_MAX_HEADERS 32
#define PORTMAP_SSDP_URL_MAX 256     /* URLs, NUL included */
#define PORTMAP_SSDP_FIELD_MAX 128   /* ST, SERVER, NUL included */
#define PORTMAP_SSDP_USN_MAX 256     /* USN, NUL included */
#define PORTMAP_SSDP_NO_MAX_AGE (-1) /* CACHE-CONTROL without max-age */

/* Search targets, one M-SEARCH each (Q2: never rely on ssdp:all; Q28:
 * upnp:rootdevice finds the TR-064 boxes that answer nothing else). */
#define PORTMAP_SSDP_ST_IGD1 "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
#define PORTMAP_SSDP_ST_IGD2 "urn:schemas-upnp-org:device:InternetGatewayDevice:2"
#define PORTMAP_SSDP_ST_ROOT "upnp:rootdevice"
#define PORTMAP_SSDP_ST_DSLF "urn:dslforum-org:device:InternetGatewayDevice:1"

/* Results. 0 is success; every failure has its own number. */
enum portmap_ssdp_result {
  PORTMAP_SSDP_OK = 0,
  PORTMAP_SSDP_ERR_STATUS = -1,      /* status line is not HTTP/1.1 200 */
  PORTMAP_SSDP_ERR_SYNTAX = -2,      /* malformed line, header name or body */
  PORTMAP_SSDP_ERR_TOO_LONG = -3,    /* datagram, line, value or header count */
  PORTMAP_SSDP_ERR_NO_LOCATION = -4, /* LOCATION missing or empty */
  PORTMAP_SSDP_ERR_DUPLICATE = -5,   /* LOCATION, ST or USN given twice */
  PORTMAP_SSDP_ERR_BYTE = -6,        /* NUL, control octet or lone CR */
  /* URL checks */
  PORTMAP_SSDP_ERR_URL_SCHEME = -10,    /* not http:// */
  PORTMAP_SSDP_ERR_URL_HOST = -11,      /* not a literal IPv4 / [IPv6] address */
  PORTMAP_SSDP_ERR_URL_PORT = -12,      /* port not 1-65535 */
  PORTMAP_SSDP_ERR_URL_PATH = -13,      /* octet not allowed in the path */
  PORTMAP_SSDP_ERR_URL_FORBIDDEN = -14, /* loopback, link-local, multicast,
                                           unspecified, broadcast, 0/8 (Q4) */
  PORTMAP_SSDP_ERR_URL_TOO_LONG = -15,
  /* description */
  PORTMAP_SSDP_ERR_DESC = -20 /* description malformed or too large */
};

/** A parsed SSDP reply. Strings are NUL-terminated, "" when absent. */
typedef struct portmap_ssdp_reply {
  char location[PORTMAP_SSDP_URL_MAX];
  char st[PORTMAP_SSDP_FIELD_MAX];
  char usn[PORTMAP_SSDP_USN_MAX];
  char server[PORTMAP_SSDP_FIELD_MAX];
  long max_age; /* CACHE-CONTROL max-age in seconds, PORTMAP_SSDP_NO_MAX_AGE */
} portmap_ssdp_reply_t;

/** A checked URL, split and rebuilt in canonical form. */
typedef struct portmap_ssdp_url {
  uint8_t addr[16];                     /* IPv4-mapped for IPv4 */
  uint16_t port;                        /* 80 when the URL names none */
  char host[48];                        /* "192.168.1.1" or "[fe80::1]" as it goes into a URL */
  char path[PORTMAP_SSDP_URL_MAX];      /* starts with '/' */
  char canonical[PORTMAP_SSDP_URL_MAX]; /* http://host:port/path */
} portmap_ssdp_url_t;

/* Parse one SSDP reply datagram. out is cleared first, and left cleared on
 * failure. Returns PORTMAP_SSDP_OK or a negative portmap_ssdp_result. */
int portmap_ssdp_parse(const uint8_t *buf, size_t len, portmap_ssdp_reply_t *out);

/* Split an http:// URL whose host is a literal IPv4 address (dotted quad,
 * no leading zeros) or a bracketed IPv6 address (no zone), with an optional
 * port 1-65535 and an optional path of URL characters (empty = "/"); no
 * user info, no fragment. Checks the syntax only. out may be NULL. */
int portmap_ssdp_url_parse(const char *url, portmap_ssdp_url_t *out);

/* portmap_ssdp_url_parse() plus the SSRF rule of Q4: the host must not be
 * loopback, link-local, multicast, unspecified, broadcast or in 0/8 --
 * except when it is exactly the configured gateway (gateway may be NULL:
 * no exception). out may be NULL. */
int portmap_ssdp_location_ok(const char *url, const uint8_t gateway[16], portmap_ssdp_url_t *out);

/* Build an M-SEARCH for st addressed to host (e.g. "239.255.255.250:1900"
 * or the gateway's "192.168.1.1:1900"). Returns its length, or 0 when it
 * does not fit in cap octets or an argument holds a control octet. */
size_t portmap_ssdp_build_msearch(char *buf, size_t cap, const char *host, const char *st,
                                  unsigned mx);

/* Q3 with the network rule: multicast M-SEARCH only when configured and
 * the gateway is an IPv4 address that is not loopback. */
int portmap_ssdp_multicast_allowed(const uint8_t gateway[16], int configured);

/* Is st a search target whose replies describe a gateway (IGD:1, IGD:2,
 * the dslforum IGD, or a WAN connection device/service type)? */
int portmap_ssdp_st_is_igd(const char *st);

/* ---------- IGD root descriptions ---------- */

#define PORTMAP_UPNP_DESC_MAX (256u * 1024u) /* larger descriptions are refused */
#define PORTMAP_UPNP_MAX_SERVICES 8          /* WAN connection services kept */

typedef struct portmap_upnp_service {
  char type[PORTMAP_SSDP_FIELD_MAX];      /* serviceType */
  char control_url[PORTMAP_SSDP_URL_MAX]; /* controlURL as written */
  int rank;                               /* portmap_upnp_wan_rank() */
  unsigned order;                         /* position among all services */
} portmap_upnp_service_t;

typedef struct portmap_upnp_desc {
  char url_base[PORTMAP_SSDP_URL_MAX];      /* URLBase, "" if none */
  char device_type[PORTMAP_SSDP_FIELD_MAX]; /* the root device's deviceType */
  char friendly_name[PORTMAP_SSDP_FIELD_MAX];
  size_t n_services; /* WAN connection services kept */
  portmap_upnp_service_t services[PORTMAP_UPNP_MAX_SERVICES];
  unsigned n_all_services; /* every <service> seen */
  unsigned n_dropped;      /* WAN services past the limit or unusable */
} portmap_upnp_desc_t;

/* Scan a root description (UDA section 2.3) for URLBase, the root
 * device's deviceType and friendlyName, and every WAN connection service
 * in any WANDevice / WANConnectionDevice (Q29), in either namespace (Q28).
 * Tolerant of what XML routers write (namespace prefixes, comments,
 * CDATA, processing instructions, attributes), bounded in size and depth,
 * never reads past len (NULs inside are an error). Returns PORTMAP_SSDP_OK
 * or PORTMAP_SSDP_ERR_DESC. */
int portmap_upnp_desc_parse(const char *xml, size_t len, portmap_upnp_desc_t *out);

/* Q6 / Q28 preference of a WAN connection service type, smaller first:
 * WANIPConnection:2 0, WANPPPConnection:2 1, WANIPConnection:1 2,
 * WANPPPConnection:1 3, then the same in urn:dslforum-org: 4-7; -1 when
 * the type is not a WAN connection service. */
int portmap_upnp_wan_rank(const char *service_type);

/* The IGD version a description speaks: from the root deviceType, else
 * from the service type (":2" -> 2); 1 by default. */
int portmap_upnp_igd_version(const char *device_type, const char *service_type);

/* Resolve a control URL against URLBase (when valid) or the LOCATION, the
 * way UDA 1.0 section 2.3 reads it. The result never leaves the host of
 * the LOCATION: a URLBase or absolute controlURL naming another host is
 * pointed back at the LOCATION's host (Q4; it also repairs routers that
 * write a stale URLBase). Writes the canonical URL into out. Returns
 * PORTMAP_SSDP_OK or a negative result. */
int portmap_upnp_resolve_url(const char *location, const char *url_base, const char *ref,
                             const uint8_t gateway[16], char *out, size_t cap);

#endif
