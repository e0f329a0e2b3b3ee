/* SPDX-License-Identifier: MIT */
/*
 * A fake PCP server (RFC 6887) on loopback, for tests.
 *
 * Single-threaded and non-blocking: the test calls fake_pcp_process() in the
 * same loop that drives the client; it reads every pending datagram with
 * MSG_DONTWAIT and answers each one according to the fake's table of
 * mappings and its fault-injection settings. Time is injected: the fake
 * never reads a clock; it only knows the time the test last gave it
 * (fake_pcp_set_time(), fake_pcp_process_at(), fake_pcp_reboot()).
 * Epoch = (now - boot) / 1000 seconds, clamped at 0.
 *
 * Requests are parsed with pcp_decode_request() and answered with
 * pcp_encode_response() (src/pcp/wire.h). Undecodable requests get an
 * error response built from the request's own octets (RFC 6887 §7.2, the
 * fields are copied from the request).
 *
 * No global state: several fakes in one process are independent.
 * Addresses are 16 octets, IPv4-mapped for IPv4, like everywhere else.
 *
 * What the fake server does (the parts a test may depend on):
 * - MAP (lifetime > 0): keyed by internal address (the source address, or
 *   the THIRD_PARTY address), protocol and internal port. An existing
 *   mapping with another nonce: NOT_AUTHORIZED with the existing mapping's
 *   remaining lifetime (ROUTER-QUIRKS Q18). An existing mapping with the
 *   same nonce is renewed and keeps its external port. A new one gets the
 *   suggested external port if it is free and in the allowed range, else
 *   the internal port, else the next free port above it (wrapping); with
 *   PREFER_FAILURE, CANNOT_PROVIDE_EXTERNAL instead when the suggested
 *   port (or a non-zero suggested address other than ours) cannot be had
 *   (checklist H8). Protocol 0 with a non-zero internal port:
 *   MALFORMED_REQUEST (H1, as miniupnpd does). Protocol 0 maps "all
 *   ports" with external port 0.
 * - MAP (lifetime 0) = delete (H6): same nonce required (else
 *   NOT_AUTHORIZED); deleting nothing is SUCCESS; protocol 0 and port 0
 *   deletes every MAP mapping of that internal address with that nonce.
 *   The response has lifetime 0.
 * - PEER: protocol, internal port and remote port must be non-zero (else
 *   MALFORMED_REQUEST); PREFER_FAILURE in a PEER is MALFORMED_OPTION; keyed
 *   additionally by remote address and port; shares the external port of
 *   a MAP (or another PEER) of the same internal address/protocol/port; a
 *   PEER never shortens a mapping (I1), lifetime 0 is clamped like any.
 * - Lifetimes: clamp to [min, max] (default 120..86400, miniupnpd, Q24),
 *   or a fixed granted lifetime if set (which bypasses the clamp).
 * - ANNOUNCE: SUCCESS, lifetime 0, current epoch (K1).
 * - Checks, in this order: datagrams shorter than 2 octets or with the R
 *   bit set are dropped silently (logged, counted malformed); version != 2
 *   is UNSUPP_VERSION (version field 2); decoder failures are
 *   MALFORMED_REQUEST (size / alignment), UNSUPP_OPCODE, MALFORMED_OPTION;
 *   client address field != real source address: ADDRESS_MISMATCH (A4,
 *   can be switched off); Q26 mode: MALFORMED_OPTION; an unknown mandatory
 *   option or a THIRD_PARTY when not allowed: UNSUPP_OPTION (Q27).
 * - Success responses echo the options the fake processed (THIRD_PARTY,
 *   PREFER_FAILURE, FILTER, DESCRIPTION); error responses carry no options
 *   and copy the request's opcode fields (G3), with the error lifetime:
 *   30 s for the short errors (7, 8, 10), 1800 s for the others,
 *   settable. fake_pcp_set_error_external() puts an external address and
 *   port of the fake's own choosing in them instead.
 * - Mappings expire when the injected time reaches their expiry.
 */
#ifndef PORTMAP_TESTS_FAKE_PCP_H
#define PORTMAP_TESTS_FAKE_PCP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "pcp/wire.h"
#include "test_support.h"

#define FAKE_PCP_LOG_SIZE 64       /* requests kept in the log */
#define FAKE_PCP_LOG_BYTES 2048    /* raw octets kept per logged request */
#define FAKE_PCP_MAX_MAPPINGS 4096 /* hard table capacity */
#define FAKE_PCP_MAX_HELD 8192     /* held (reordered) answers; the array grows to this */
#define FAKE_PCP_MAX_RESERVED 32   /* ports reserved by "someone else" */

typedef struct fake_pcp fake_pcp_t;

/** A live mapping in the fake's table. */
typedef struct fake_pcp_mapping {
  uint8_t opcode; /* PCP_OP_MAP or PCP_OP_PEER */
  uint8_t nonce[PCP_NONCE_LEN];
  uint8_t protocol;
  uint8_t internal_addr[16]; /* source address, or the THIRD_PARTY address */
  uint16_t internal_port;
  uint8_t external_addr[16];
  uint16_t external_port;
  uint8_t peer_addr[16]; /* PEER */
  uint16_t peer_port;    /* PEER */
  int third_party;       /* created with a THIRD_PARTY option */
  uint32_t lifetime;     /* last granted, seconds */
  uint64_t created_ms;   /* fake time of the first grant */
  uint64_t renewed_ms;   /* fake time of the last grant */
  uint64_t expiry_ms;    /* removed when the fake time reaches this */
  unsigned renewals;     /* grants after the first */
  size_t n_filters;      /* FILTER options of the last grant */
  char description[PCP_MAX_DESCRIPTION + 1];
} fake_pcp_mapping_t;

/** What became of a received datagram. */
typedef enum fake_pcp_fate {
  FAKE_PCP_ANSWERED = 0, /* answered (possibly held, corrupted, spoofed...) */
  FAKE_PCP_DROPPED = 1,  /* injected drop: treated as lost before the server */
  FAKE_PCP_SILENT = 2,   /* silent mode, or a hook chose not to answer */
  FAKE_PCP_IGNORED = 3   /* shorter than 2 octets or R bit set (RFC 6887 §8.3) */
} fake_pcp_fate_t;

/** One entry of the request log. */
typedef struct fake_pcp_request {
  uint64_t time_ms;                 /* fake time when it was processed */
  size_t len;                       /* datagram length as received */
  size_t stored;                    /* octets kept in data (min(len, FAKE_PCP_LOG_BYTES)) */
  uint8_t data[FAKE_PCP_LOG_BYTES]; /* raw octets, to prove retransmissions identical */
  int decode_status;                /* pcp_decode_request(), -1 if not attempted */
  pcp_msg_t msg;                    /* valid when decode_status == PCP_WIRE_OK */
  int result;                       /* result code answered, -1 if none (or NAT-PMP) */
  fake_pcp_fate_t fate;
  struct sockaddr_storage from;
  socklen_t fromlen;
} fake_pcp_request_t;

/** NAT-PMP-only personality (checklist F2): the reply to every request. */
typedef enum fake_pcp_natpmp {
  FAKE_PCP_NATPMP_OFF = 0,
  FAKE_PCP_NATPMP_OP128 = 1, /* version 0, opcode 128+op, result 1, epoch */
  FAKE_PCP_NATPMP_OP0 = 2    /* the same with opcode octet 0 */
} fake_pcp_natpmp_t;

/** What a request hook wants done. */
typedef enum fake_pcp_hook_action {
  FAKE_PCP_HOOK_DEFAULT = 0, /* process normally */
  FAKE_PCP_HOOK_SILENT = 1,  /* do not answer */
  FAKE_PCP_HOOK_REPLY = 2    /* encode and send *response (fault injection still applies) */
} fake_pcp_hook_action_t;

/**
 * Scripted behaviour: called for every request that decoded, after the
 * drop / silent checks and before anything else. *response is
 * pre-filled as a SUCCESS answer copying the request's fields with the
 * current epoch; the hook may edit it and return FAKE_PCP_HOOK_REPLY.
 */
typedef fake_pcp_hook_action_t (*fake_pcp_hook_cb)(void *user, fake_pcp_t *f,
                                                   const fake_pcp_request_t *req,
                                                   pcp_msg_t *response);

/* ---- life cycle ------------------------------------------------------- */

/** Bind 127.0.0.1:0 (ipv6 = 0) or [::1]:0, plus a second socket on the
 *  same address for spoofed answers. Time 0, boot 0. NULL on failure. */
fake_pcp_t *fake_pcp_new(int ipv6);
/** The same on a chosen IPv4 loopback address (host order, in 127/8), so a
 *  PCP fake and a NAT-PMP fake (always port 5351) share one "gateway". */
fake_pcp_t *fake_pcp_new_v4(int ipv6, uint32_t v4);
/** The same on a chosen port too (0 = ephemeral): a second "gateway" on
 *  another loopback address with the first one's port. */
fake_pcp_t *fake_pcp_new_at(int ipv6, uint32_t v4, uint16_t port);
/** Close the sockets and free. Accepts NULL. */
void fake_pcp_free(fake_pcp_t *f);
/** The server socket's port (host order), its fd (to poll). */
uint16_t fake_pcp_port(const fake_pcp_t *f);
int fake_pcp_fd(const fake_pcp_t *f);
/** The port spoofed answers come from. */
uint16_t fake_pcp_spoof_port(const fake_pcp_t *f);
/** The server's address (IPv4-mapped 127.0.0.1 or ::1). */
void fake_pcp_addr(const fake_pcp_t *f, uint8_t out[16]);
/** The server's socket address; returns its length. */
socklen_t fake_pcp_sockaddr(const fake_pcp_t *f, struct sockaddr_storage *ss);

/* ---- driving ---------------------------------------------------------- */

/** Read and answer every pending datagram (at most 1024 per call).
 *  Returns how many were read, or -1 on a socket error (errno set). */
int fake_pcp_process(fake_pcp_t *f);
/** fake_pcp_set_time(f, now_ms) then fake_pcp_process(f). */
int fake_pcp_process_at(fake_pcp_t *f, uint64_t now_ms);

/* ---- clock and epoch (checklist E) ----------------------------------- */

/** Set the fake's notion of now and expire mappings whose time has come. */
void fake_pcp_set_time(fake_pcp_t *f, uint64_t now_ms);
uint64_t fake_pcp_time(const fake_pcp_t *f);
/** Current epoch: (now - boot) / 1000, at least 0. */
uint32_t fake_pcp_epoch(const fake_pcp_t *f);
/** Make the epoch read `epoch` now, keeping the table (an epoch jump
 *  without a reboot). */
void fake_pcp_set_epoch(fake_pcp_t *f, uint32_t epoch);
/** Forget every mapping and restart the epoch at 0 at now_ms. Held answers
 *  are discarded; the log, counters and settings are kept. */
void fake_pcp_reboot(fake_pcp_t *f, uint64_t now_ms);

/* ---- server configuration -------------------------------------------- */

/** External address (default ::ffff:198.51.100.7). Live mappings take it
 *  too, as when a real NAT's WAN address changes (send a map update). */
void fake_pcp_set_external(fake_pcp_t *f, const uint8_t addr[16]);
void fake_pcp_get_external(const fake_pcp_t *f, uint8_t out[16]);
/** Granted lifetime clamp (default 120..86400 s). */
void fake_pcp_set_lifetime_limits(fake_pcp_t *f, uint32_t min_s, uint32_t max_s);
/** Grant exactly this lifetime to every MAP/PEER that is not a delete
 *  (Q23, Q24, H4); 0 = off (clamp instead). */
void fake_pcp_set_fixed_lifetime(fake_pcp_t *f, uint32_t seconds);
/** Lifetimes of error responses (default 30 s short, 1800 s long, G1). */
void fake_pcp_set_error_lifetimes(fake_pcp_t *f, uint32_t short_s, uint32_t long_s);
/** Error responses to decoded requests carry this external address and
 *  port instead of copies of the request's: values the client neither sent
 *  nor was granted, so a test sees whether it took them for assigned (G3).
 *  addr NULL: copies again (the default). */
void fake_pcp_set_error_external(fake_pcp_t *f, const uint8_t addr[16], uint16_t port);
/** External ports the fake may assign (default 1..65535, Q8). */
void fake_pcp_set_port_range(fake_pcp_t *f, uint16_t lo, uint16_t hi);
/** Mark an external port as used by someone else (protocol 0 = all).
 *  Returns 0, or -1 when FAKE_PCP_MAX_RESERVED are already reserved. */
int fake_pcp_reserve_port(fake_pcp_t *f, uint8_t protocol, uint16_t port);
/** Table capacity (default and at most FAKE_PCP_MAX_MAPPINGS); a new
 *  mapping beyond it is NO_RESOURCES. */
void fake_pcp_set_max_mappings(fake_pcp_t *f, size_t n);
/** Accept THIRD_PARTY (default 0: UNSUPP_OPTION, Q27). */
void fake_pcp_set_allow_third_party(fake_pcp_t *f, int allow);
/** miniupnpd 2.3.1 mode (Q26): MALFORMED_OPTION when any option's length
 *  field is not a multiple of 4. Default off. */
void fake_pcp_set_q26(fake_pcp_t *f, int on);
/** Check the client address field against the source (A4). Default on. */
void fake_pcp_set_check_client_addr(fake_pcp_t *f, int on);
/** Install (or with NULL remove) the request hook. */
void fake_pcp_set_hook(fake_pcp_t *f, fake_pcp_hook_cb cb, void *user);

/* ---- fault injection -------------------------------------------------- */
/* Counters count requests (datagrams), are consumed one per request and
 * add up when called again; settings stay until changed. */

/** Drop the next n requests as if lost on the way (logged, not applied). */
void fake_pcp_drop_next(fake_pcp_t *f, unsigned n);
/** Send every answer k times (default 1; 0 is taken as 1) (B4). */
void fake_pcp_set_duplicates(fake_pcp_t *f, unsigned k);
/** Hold answers instead of sending them (on) until fake_pcp_release(). */
void fake_pcp_set_hold(fake_pcp_t *f, int on);
/** Send held answers, newest first (reordering). Returns how many. */
int fake_pcp_release(fake_pcp_t *f);
/** Send held answers oldest first (no reordering: their epochs never go
 *  back, which answers held across a span of time would seem to do when
 *  sent newest first). Returns how many. */
int fake_pcp_release_in_order(fake_pcp_t *f);
size_t fake_pcp_held(const fake_pcp_t *f);
/** The most answers held at once since the fake was made (or the count was
 *  reset): with hold on, the most requests the client had in flight. */
size_t fake_pcp_max_held(const fake_pcp_t *f);
void fake_pcp_reset_max_held(fake_pcp_t *f);
/** Answer the next n requests with this result code (error lifetime per
 *  its class), leaving the table alone. Result 0 cancels. */
void fake_pcp_force_result(fake_pcp_t *f, uint8_t result, unsigned n);
/** Answer the next n MAP/PEER requests with the nonce's bits inverted
 *  (the table is still updated). */
void fake_pcp_wrong_nonce_next(fake_pcp_t *f, unsigned n);
/** Send the answers to the next n requests from the second socket (B3). */
void fake_pcp_spoof_next(fake_pcp_t *f, unsigned n);
/** Cut the answers to the next n requests to len octets (A9). */
void fake_pcp_truncate_next(fake_pcp_t *f, unsigned n, size_t len);
/** Replace the answers to the next n requests by pseudo-random octets of
 *  the same length, first octet never 0 or 2 (deterministic per fake). */
void fake_pcp_garbage_next(fake_pcp_t *f, unsigned n);
/** NAT-PMP-only personality (F2): every request gets the 8-octet reply. */
void fake_pcp_set_natpmp(fake_pcp_t *f, fake_pcp_natpmp_t mode);
/** Receive and log, never answer (Q22). */
void fake_pcp_set_silent(fake_pcp_t *f, int on);

/* ---- unsolicited messages (§14) -------------------------------------- */
/* Sent at once from the server socket (the source port is the server's),
 * bypassing fault injection. Return 0, or -1 (errno set / bad index). */

/** 24-octet ANNOUNCE response: result 0, lifetime 0, current epoch. */
int fake_pcp_send_announce(fake_pcp_t *f, const struct sockaddr *to, socklen_t tolen);
/** Unsolicited MAP/PEER response for live mapping `index` with its current
 *  state: remaining lifetime, current external address, epoch (§14.2). */
int fake_pcp_send_map_update(fake_pcp_t *f, const struct sockaddr *to, socklen_t tolen,
                             size_t index);
/** Any octets, from the server socket or (spoofed) the second socket. */
int fake_pcp_send_raw(fake_pcp_t *f, const struct sockaddr *to, socklen_t tolen,
                      const uint8_t *data, size_t len, int from_spoofed_socket);

/* ---- introspection ---------------------------------------------------- */

/** Datagrams received (including dropped and malformed ones). */
unsigned fake_pcp_received(const fake_pcp_t *f);
/** Decoded requests of one opcode (0..127), whatever their fate. */
unsigned fake_pcp_requests(const fake_pcp_t *f, uint8_t opcode);
/** Datagrams that did not decode as a PCP request (or were ignored). */
unsigned fake_pcp_malformed(const fake_pcp_t *f);
/** Copy of the last request that decoded. Returns 0, or -1 if none yet. */
int fake_pcp_last_request(const fake_pcp_t *f, pcp_msg_t *out);
/** Source of the last datagram received. Returns 0, or -1 if none yet. */
int fake_pcp_last_source(const fake_pcp_t *f, struct sockaddr_storage *ss, socklen_t *len);

/** Log: the last FAKE_PCP_LOG_SIZE datagrams, index 0 the oldest kept. */
size_t fake_pcp_log_count(const fake_pcp_t *f);
const fake_pcp_request_t *fake_pcp_log_get(const fake_pcp_t *f, size_t i);
/** Empty the log (counters are kept). */
void fake_pcp_log_clear(fake_pcp_t *f);

/** Live mappings, in creation order. */
size_t fake_pcp_mapping_count(const fake_pcp_t *f);
const fake_pcp_mapping_t *fake_pcp_mapping_get(const fake_pcp_t *f, size_t i);
/** Index of the first mapping (MAP or PEER) with this nonce, protocol and
 *  internal port (any internal address), or -1. */
int fake_pcp_find_mapping(const fake_pcp_t *f, const uint8_t nonce[PCP_NONCE_LEN], uint8_t protocol,
                          uint16_t internal_port);
/** Remove one mapping / all of them without touching the epoch (a router
 *  that wipes its table, Q14). Remove returns 0 or -1 for a bad index. */
int fake_pcp_mapping_remove(fake_pcp_t *f, size_t i);
void fake_pcp_clear_mappings(fake_pcp_t *f);

/** test_pump() / test_free_answered() adapters for this fake. */
extern const test_fake_ops_t fake_pcp_ops;

#endif
