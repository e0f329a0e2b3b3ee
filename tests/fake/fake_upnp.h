/* SPDX-License-Identifier: MIT */
/*
 * A fake UPnP Internet Gateway Device on loopback, for tests: an SSDP
 * responder, an HTTP server for the root description and the SOAP control
 * of the WAN connection services, a port-mapping table, and switches that
 * imitate the router quirks of docs/ROUTER-QUIRKS.md.
 *
 * Threading. miniupnpc's HTTP calls block on the client's worker thread
 * while the test thread drives the client, and portmap_client_free() waits
 * for deletes with nobody else running; so the fake runs on its own thread
 * (started by fake_upnp_new(), joined by fake_upnp_free()). That thread
 * polls its sockets in a loop of 5 ms steps until it is told to stop; every
 * iteration is bounded (at most FAKE_UPNP_MAX_CONNS connections, 64
 * datagrams). Every function below takes the fake's lock, so settings may
 * change and the state may be read at any time. Time is real (CLOCK_MONOTONIC):
 * only the Q20 delay uses it; leases never expire in the fake.
 *
 * No global state: several fakes in one process are independent. Nothing
 * is ever sent off loopback: the SSDP socket is bound to 127.0.0.1 (or
 * the loopback address given to fake_upnp_new_at()) and "multicast only"
 * (Q3) is imitated by ignoring unicast M-SEARCH.
 *
 * Profiles (recorded-style root descriptions, see fake_upnp.c):
 *   IGD1      miniupnpd-like IGDv1, WANIPConnection:1 at /ctl/IPConn
 *   IGD2      IGDv2 with URLBase, WANIPConnection:2 at /ctl/IPConn
 *             (AddAnyPortMapping), WANIPv6FirewallControl
 *   PPP_ONLY  Q6: WANPPPConnection:1 only, at /ctl/PPPConn
 *   DSLFORUM  Q28: a TR-064 box, urn:dslforum-org: types only,
 *             WANPPPConnection:1 at /upnp/control/WANPPPConn1; answers
 *             M-SEARCH for upnp:rootdevice and the dslforum IGD only
 *   TWO_WAN   Q29: WANDevice 1 holds WANPPPConnection:1 (/ctl/PPPConn,
 *             Connected, 198.51.100.20), WANDevice 2 holds
 *             WANIPConnection:1 (/ctl/IPConn2, Disconnected, 0.0.0.0)
 * Services are numbered in document order (0, 1). Every service answers
 * Connected with external address 203.0.113.5 unless the profile or
 * fake_upnp_set_service() says otherwise.
 *
 * SOAP behaviour (what a test may rely on):
 * - The SOAPAction service type must equal the type of the service at that
 *   control URL, else 401 Invalid Action (Q28: proves the type we send).
 * - AddPortMapping / AddAnyPortMapping: NewProtocol must be exactly "TCP"
 *   or "UDP" (else 402, counted as lower_case, Q7); NewExternalPort 0 is
 *   716 (counted as port_zero, Q8); NewInternalClient must be an IPv4
 *   literal (else 402); permanent-only mode answers its code (725 or 402)
 *   to any lease != 0 (Q9); a port on the conflict list answers its code
 *   (718, 501 or 729, Q11); a port held by another client or internal port
 *   is 718; the same client re-adding updates the entry. AddAnyPortMapping
 *   exists only on :2 services (else 401) and reserves the next free port
 *   upwards instead of failing.
 * - GetSpecificPortMappingEntry: the entry, or 714. DeletePortMapping:
 *   removes it, or 714. GetGenericPortMappingEntry: entry i, or 713.
 * - Responses close the connection (Connection: close).
 */
#ifndef PORTMAP_TESTS_FAKE_UPNP_H
#define PORTMAP_TESTS_FAKE_UPNP_H

#include <stddef.h>
#include <stdint.h>

#define FAKE_UPNP_MAX_ENTRIES 512
#define FAKE_UPNP_MAX_CONNS 16
#define FAKE_UPNP_LOG_SIZE 512

typedef struct fake_upnp fake_upnp_t;

typedef enum fake_upnp_profile {
  FAKE_UPNP_IGD1 = 0,
  FAKE_UPNP_IGD2 = 1,
  FAKE_UPNP_PPP_ONLY = 2,
  FAKE_UPNP_DSLFORUM = 3,
  FAKE_UPNP_TWO_WAN = 4
} fake_upnp_profile_t;

/** A row of the fake's port-mapping table. */
typedef struct fake_upnp_entry {
  char proto[8];
  uint16_t ext_port;
  char client[48];
  uint16_t int_port;
  char desc[256]; /* decoded */
  uint32_t lease;
  int enabled;
} fake_upnp_entry_t;

/** One SOAP request as the fake saw it. */
typedef struct fake_upnp_request {
  char action[48];
  char service[128]; /* from SOAPAction */
  char path[64];
  char proto[16];
  char ext_port[16];
  char lease[16];
  char client[48];
  char desc[256]; /* decoded NewPortMappingDescription */
  int result;     /* 0 success, else the UPnP error code answered */
} fake_upnp_request_t;

/** Counters. */
typedef struct fake_upnp_stats {
  unsigned msearch;      /* M-SEARCH datagrams received */
  unsigned ssdp_replies; /* SSDP replies sent (duplicates and rogue included) */
  unsigned desc_gets;    /* GETs of the root description */
  unsigned soap;         /* SOAP requests answered */
  unsigned lower_case;   /* Q7: AddPortMapping with a protocol not "TCP"/"UDP" */
  unsigned port_zero;    /* Q8: NewExternalPort 0 */
  unsigned overlaps;     /* Q20: a request arrived while another was unanswered */
  unsigned max_pending;  /* most requests unanswered at once */
  unsigned moves;        /* Q13: times the HTTP port moved */
  unsigned trickles;     /* replies started by fake_upnp_set_trickle() */
  unsigned trickled;     /* octets trickled, all replies together */
  unsigned hangups;      /* trickled or oversized replies the client closed early */
  size_t big_sent;       /* octets of oversized descriptions handed to the kernel */
} fake_upnp_stats_t;

/** Create and start a fake with a profile. NULL on failure. */
fake_upnp_t *fake_upnp_new(fake_upnp_profile_t profile);
/** The same on another IPv4 loopback address than 127.0.0.1 (its SSDP and
 * HTTP sockets, and the LOCATION it announces), so that it shares one
 * "gateway" with a PCP and a NAT-PMP fake (tests/unit/test_fastpath.c). */
fake_upnp_t *fake_upnp_new_at(fake_upnp_profile_t profile, const char *addr);
/** Stop the thread, close everything. Accepts NULL. */
void fake_upnp_free(fake_upnp_t *f);

/** The SSDP port (put it in cfg.ssdp_port) and the current HTTP port. */
uint16_t fake_upnp_ssdp_port(fake_upnp_t *f);
uint16_t fake_upnp_http_port(fake_upnp_t *f);

/* ---- quirks ---- */
/** Q1: send SSDP replies from another UDP port than the one M-SEARCH reached. */
void fake_upnp_set_reply_other_port(fake_upnp_t *f, int on);
/** Q2 / Q28: answer M-SEARCH only for this search target (NULL: the profile's set). */
void fake_upnp_set_only_st(fake_upnp_t *f, const char *st);
/** Q3 imitated: ignore unicast M-SEARCH (a gateway that answers only multicast). */
void fake_upnp_set_ignore_unicast(fake_upnp_t *f, int on);
/** Q4: before each genuine reply, one from 127.0.0.2 with this LOCATION (NULL off). */
void fake_upnp_set_rogue(fake_upnp_t *f, const char *location);
/** The LOCATION the SSDP replies carry (NULL: the fake's own description). */
void fake_upnp_set_location(fake_upnp_t *f, const char *location);
/** Q25: send every SSDP reply n times (1 = normal). */
void fake_upnp_set_duplicates(fake_upnp_t *f, unsigned n);
/** Q9: answer code (725 or 402) to AddPortMapping with a lease != 0; 0 off. */
void fake_upnp_set_permanent_only(fake_upnp_t *f, int code);
/** Q11: AddPortMapping to this external port answers code (718, 501, 729);
 * port 0: 718 to every port. */
void fake_upnp_add_conflict(fake_upnp_t *f, uint16_t port, int code);
/** Q5, Q12, Q17, Q29: what service idx answers to GetStatusInfo and
 * GetExternalIPAddress (NULL keeps the current value). */
void fake_upnp_set_service(fake_upnp_t *f, size_t idx, const char *status, const char *ext_ip);
/** Q13: after n more SOAP requests, close the HTTP port and listen on a new one. */
void fake_upnp_move_after(fake_upnp_t *f, unsigned n);
/** Q13: move the HTTP port now. */
void fake_upnp_move_now(fake_upnp_t *f);
/** Q14: forget every mapping (a reboot, ASUS's periodic clean-up). */
void fake_upnp_wipe(fake_upnp_t *f);
/** Q20: answer each HTTP request only after ms milliseconds; with action
 * not NULL only SOAP requests of that action (Q10 tests: a late add). */
void fake_upnp_set_delay_ms(fake_upnp_t *f, unsigned ms, const char *action);
/** A gateway that keeps a connection busy for ever: requests for what
 * ("rootDesc": the description GET; else SOAP requests whose SOAPAction
 * holds it) are answered one octet every interval_ms, with a header line
 * that never ends. NULL off. Counted in trickles / trickled / hangups. */
void fake_upnp_set_trickle(fake_upnp_t *f, const char *what, unsigned interval_ms);
/** Send every reply (description and SOAP) in the chunked coding, with a
 * chunk extension and a trailer. */
void fake_upnp_set_chunked(fake_upnp_t *f, int on);
/** Serve a root description of size octets (an XML comment), announced by
 * Content-Length when with_length, else ended by closing; 0 off. The
 * connection has a 16 KiB send buffer, so big_sent (octets the kernel took)
 * is what the client read plus the two socket buffers, once it hangs up. */
void fake_upnp_set_big_description(fake_upnp_t *f, size_t size, int with_length);
/** Serve this root description instead of the profile's (a static string;
 * %PORT% is the HTTP port). NULL: the profile's again. */
void fake_upnp_set_description(fake_upnp_t *f, const char *xml);
/** The element GetStatusInfo reports the uptime in: "NewUptime" (the
 * standard, default), "NewUpTime" (legacy spelling) or "" (none). */
void fake_upnp_set_uptime_element(fake_upnp_t *f, const char *name);
/** Add an entry as if another client made it. Returns 0 or -1 when full. */
int fake_upnp_add_entry(fake_upnp_t *f, const char *proto, uint16_t ext_port, const char *client,
                        uint16_t int_port, const char *desc, uint32_t lease);

/* ---- inspection ---- */
/** Copy at most cap rows; returns the number of rows. */
size_t fake_upnp_entries(fake_upnp_t *f, fake_upnp_entry_t *out, size_t cap);
/** Find a row; returns 1 and fills out (if not NULL), or 0. */
int fake_upnp_find(fake_upnp_t *f, const char *proto, uint16_t ext_port, fake_upnp_entry_t *out);
/** Copy at most cap logged SOAP requests (oldest first); returns how many were logged. */
size_t fake_upnp_requests(fake_upnp_t *f, fake_upnp_request_t *out, size_t cap);
/** Requests received and not answered yet (a delayed add in flight). */
unsigned fake_upnp_pending(fake_upnp_t *f);
/** How many SOAP requests of this action were answered (NULL: all). */
unsigned fake_upnp_count(fake_upnp_t *f, const char *action);
void fake_upnp_get_stats(fake_upnp_t *f, fake_upnp_stats_t *out);
/** The search targets of the M-SEARCHes received, most recent last. */
size_t fake_upnp_search_targets(fake_upnp_t *f, char (*out)[128], size_t cap);

#endif
