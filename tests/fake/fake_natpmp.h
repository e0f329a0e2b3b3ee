/* SPDX-License-Identifier: MIT */
/*
 * A fake NAT-PMP server (RFC 6886) on loopback, for tests.
 *
 * Single-threaded and non-blocking, like fake_pcp: the test calls
 * fake_natpmp_process() in the loop that drives the client; it reads every
 * pending datagram with MSG_DONTWAIT and answers each one according to its
 * table and its fault-injection settings. Time is injected: the fake never
 * reads a clock. Epoch (SSSoE) = (now - boot) / 1000 seconds, at least 0.
 *
 * libnatpmp always sends to port 5351, so the fake binds ADDR:5351, where
 * ADDR is a loopback address the test chooses (127.0.0.X; all of 127/8 is
 * on lo on Linux). Use a distinct X per test binary so parallel tests
 * never collide. A second socket on ADDR:<ephemeral> sends spoofed
 * datagrams (right address, wrong port).
 *
 * No global state: several fakes in one process are independent (on
 * different addresses). Addresses are 16 octets, IPv4-mapped.
 *
 * What the fake server does (the parts a test may depend on):
 * - Requests shorter than 2 octets, or with an opcode >= 128, are ignored
 *   (logged, counted malformed). Version != 0: "unsupported version", the
 *   8-octet reply version 0, opcode 128 + op, result 1, epoch (§3.5).
 *   Opcodes 3..127: result 5, 8 octets. A mapping request shorter than 12
 *   octets is ignored (malformed).
 * - Opcode 0 (public address): 12 octets, result 0, the external address.
 * - Opcode 1 (UDP) / 2 (TCP), keyed by source address, opcode and internal
 *   port. Lifetime 0 = delete (§3.4): the response has the internal port,
 *   external port 0 and lifetime 0; deleting nothing is a success; internal
 *   port 0 with lifetime 0 deletes every mapping of that client and
 *   protocol. Lifetime > 0: an existing mapping is renewed and keeps its
 *   external port; a new one gets the suggested port if it is free and in
 *   range, else the internal port, else the next free port above it. The
 *   lifetime granted is the request's clamped to [min, max] (default
 *   1..86400), or a fixed lifetime if set.
 * - Error responses to mapping requests are 16 octets copying the
 *   request's internal port, suggested external port and lifetime.
 * - Mappings expire when the injected time reaches their expiry.
 */
#ifndef PORTMAP_TESTS_FAKE_NATPMP_H
#define PORTMAP_TESTS_FAKE_NATPMP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "test_support.h"

#define FAKE_NATPMP_PORT 5351
#define FAKE_NATPMP_LOG_SIZE 128      /* requests kept in the log */
#define FAKE_NATPMP_LOG_BYTES 64      /* raw octets kept per logged request */
#define FAKE_NATPMP_MAX_MAPPINGS 4096 /* table capacity: beyond it, result 4 */
#define FAKE_NATPMP_MAX_HELD 4096     /* held answers */

/* RFC 6886 §3.5 result codes */
#define FAKE_NATPMP_SUCCESS 0
#define FAKE_NATPMP_UNSUPP_VERSION 1
#define FAKE_NATPMP_REFUSED 2
#define FAKE_NATPMP_NETWORK_FAILURE 3
#define FAKE_NATPMP_NO_RESOURCES 4
#define FAKE_NATPMP_UNSUPP_OPCODE 5

typedef struct fake_natpmp fake_natpmp_t;

/** A live mapping in the fake's table. */
typedef struct fake_natpmp_mapping {
  uint8_t opcode;          /* 1 UDP, 2 TCP */
  uint8_t client_addr[16]; /* the request's source address */
  uint16_t internal_port;
  uint16_t external_port;
  uint32_t lifetime;   /* last granted, seconds */
  uint64_t created_ms; /* fake time of the first grant */
  uint64_t renewed_ms; /* fake time of the last grant */
  uint64_t expiry_ms;  /* removed when the fake time reaches this */
  unsigned renewals;   /* grants after the first */
} fake_natpmp_mapping_t;

/** What became of a received datagram. */
typedef enum fake_natpmp_fate {
  FAKE_NATPMP_ANSWERED = 0, /* answered (possibly held, duplicated, truncated) */
  FAKE_NATPMP_DROPPED = 1,  /* injected drop: as if lost before the server */
  FAKE_NATPMP_SILENT = 2,   /* silent mode or an ignored opcode */
  FAKE_NATPMP_IGNORED = 3   /* malformed: too short, or a response opcode */
} fake_natpmp_fate_t;

/** One entry of the request log. */
typedef struct fake_natpmp_request {
  uint64_t time_ms; /* fake time when it was processed */
  size_t len;       /* datagram length as received */
  size_t stored;    /* octets kept in data */
  uint8_t data[FAKE_NATPMP_LOG_BYTES];
  int opcode; /* data[1], -1 when shorter than 2 octets */
  int result; /* result code answered, -1 if none */
  fake_natpmp_fate_t fate;
  struct sockaddr_storage from;
  socklen_t fromlen;
} fake_natpmp_request_t;

/* ---- life cycle ------------------------------------------------------- */

/** Bind ipv4:5351 (e.g. "127.0.0.61") and a spoofing socket ipv4:0.
 *  Time 0, boot 0, external address 203.0.113.7. NULL on failure (errno). */
fake_natpmp_t *fake_natpmp_new(const char *ipv4);
/** Close the sockets and free. Accepts NULL. */
void fake_natpmp_free(fake_natpmp_t *f);
/** The server socket's fd (to poll), the spoofing socket's port. */
int fake_natpmp_fd(const fake_natpmp_t *f);
uint16_t fake_natpmp_spoof_port(const fake_natpmp_t *f);
/** The server's address (IPv4-mapped). */
void fake_natpmp_addr(const fake_natpmp_t *f, uint8_t out[16]);

/* ---- driving ---------------------------------------------------------- */

/** Read and answer every pending datagram (at most 1024 per call).
 *  Returns how many were read, or -1 on a socket error (errno set). */
int fake_natpmp_process(fake_natpmp_t *f);
/** fake_natpmp_set_time(f, now_ms) then fake_natpmp_process(f). */
int fake_natpmp_process_at(fake_natpmp_t *f, uint64_t now_ms);

/* ---- clock and epoch (checklist N5) ---------------------------------- */

/** Set the fake's notion of now and expire mappings whose time has come. */
void fake_natpmp_set_time(fake_natpmp_t *f, uint64_t now_ms);
uint64_t fake_natpmp_time(const fake_natpmp_t *f);
/** Seconds since start of epoch: (now - boot) / 1000, at least 0. */
uint32_t fake_natpmp_epoch(const fake_natpmp_t *f);
/** Make the epoch read `epoch` now, keeping the table. */
void fake_natpmp_set_epoch(fake_natpmp_t *f, uint32_t epoch);
/** Reboot at now_ms: the table is wiped, the epoch restarts at 0, held
 *  answers are discarded. The log, counters and settings are kept. */
void fake_natpmp_reboot(fake_natpmp_t *f, uint64_t now_ms);

/* ---- server configuration -------------------------------------------- */

/** The external (public) address, IPv4-mapped. */
void fake_natpmp_set_external(fake_natpmp_t *f, const uint8_t addr[16]);
void fake_natpmp_get_external(const fake_natpmp_t *f, uint8_t out[16]);
/** Clamp granted lifetimes to [min_s, max_s] (default 1..86400, Q24). */
void fake_natpmp_set_lifetime_limits(fake_natpmp_t *f, uint32_t min_s, uint32_t max_s);
/** Grant exactly this lifetime to every create/renew (Q23, Q24); 0 = off. */
void fake_natpmp_set_fixed_lifetime(fake_natpmp_t *f, uint32_t seconds);
/** A broken gateway (N7): answer creates with success and lifetime 0,
 *  keeping nothing. */
void fake_natpmp_set_grant_zero(fake_natpmp_t *f, int on);
/** External ports the fake may assign (default 1..65535). */
void fake_natpmp_set_port_range(fake_natpmp_t *f, uint16_t lo, uint16_t hi);
/** MikroTik (Q15): refuse (result 2) a create whose suggested external
 *  port is 0. Default off. */
void fake_natpmp_set_q15(fake_natpmp_t *f, int on);

/* ---- fault injection -------------------------------------------------- */
/* Counters count requests, are consumed one per request and add up. */

/** Drop the next n requests as if lost on the way (logged, not applied). */
void fake_natpmp_drop_next(fake_natpmp_t *f, unsigned n);
/** Send every answer k times (default 1; 0 is taken as 1). */
void fake_natpmp_set_duplicates(fake_natpmp_t *f, unsigned k);
/** Hold answers instead of sending them until fake_natpmp_release(). */
void fake_natpmp_set_hold(fake_natpmp_t *f, int on);
/** Send the held answers, oldest first. Returns how many were sent. */
int fake_natpmp_release(fake_natpmp_t *f);
size_t fake_natpmp_held(const fake_natpmp_t *f);
/** The most answers held at once since the fake was made: with hold on,
 *  the most requests the client had in flight. */
size_t fake_natpmp_max_held(const fake_natpmp_t *f);
/** Answer the next n requests (any opcode) with this result code, leaving
 *  the table alone. Result 0 cancels. */
void fake_natpmp_force_result(fake_natpmp_t *f, uint16_t result, unsigned n);
/** Cut the answers to the next n requests to len octets. */
void fake_natpmp_truncate_next(fake_natpmp_t *f, unsigned n, size_t len);
/** Receive and log, never answer. */
void fake_natpmp_set_silent(fake_natpmp_t *f, int on);
/** Receive and log requests of this opcode (0-127), never answer them. */
void fake_natpmp_set_ignore_opcode(fake_natpmp_t *f, uint8_t opcode, int on);

/* ---- unsolicited messages (§3.2.1) ----------------------------------- */
/* Sent at once, bypassing fault injection. Return 0, or -1 (errno set). */

/** A gratuitous public address announcement (12 octets: version 0,
 *  opcode 128, result 0, current epoch, external address), from the
 *  server socket (source port 5351). */
int fake_natpmp_send_announce(fake_natpmp_t *f, const struct sockaddr *to, socklen_t tolen);
/** Any octets, from the server socket or the spoofing socket. */
int fake_natpmp_send_raw(fake_natpmp_t *f, const struct sockaddr *to, socklen_t tolen,
                         const uint8_t *data, size_t len, int from_spoof_socket);

/* ---- introspection ---------------------------------------------------- */

/** Datagrams received (including dropped and malformed ones). */
unsigned fake_natpmp_received(const fake_natpmp_t *f);
/** Requests of one opcode (0..127), whatever their fate. */
unsigned fake_natpmp_requests(const fake_natpmp_t *f, uint8_t opcode);
unsigned fake_natpmp_malformed(const fake_natpmp_t *f);

/** Log: the last FAKE_NATPMP_LOG_SIZE datagrams, index 0 the oldest kept. */
size_t fake_natpmp_log_count(const fake_natpmp_t *f);
const fake_natpmp_request_t *fake_natpmp_log_get(const fake_natpmp_t *f, size_t i);
/** Empty the log (counters are kept). */
void fake_natpmp_log_clear(fake_natpmp_t *f);

/** Live mappings, in creation order. */
size_t fake_natpmp_mapping_count(const fake_natpmp_t *f);
const fake_natpmp_mapping_t *fake_natpmp_mapping_get(const fake_natpmp_t *f, size_t i);
/** Index of the mapping with this opcode (1 UDP, 2 TCP) and internal port
 *  (any client), or -1. */
int fake_natpmp_find_mapping(const fake_natpmp_t *f, uint8_t opcode, uint16_t internal_port);
/** Remove one mapping (0, or -1 for a bad index) / all of them, keeping
 *  the epoch (a router that wipes its table, Q14). */
int fake_natpmp_mapping_remove(fake_natpmp_t *f, size_t i);
void fake_natpmp_clear_mappings(fake_natpmp_t *f);

/** test_pump() / test_free_answered() adapters for this fake. */
extern const test_fake_ops_t fake_natpmp_ops;

#endif
