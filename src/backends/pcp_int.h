/* SPDX-License-Identifier: MIT */
/*
 * The PCP backend's private header: its state (one server per address
 * family, the table of mappings) and per-mapping state, and the functions
 * its two files call in one another. pcp.c: each mapping's requests,
 * retransmission, renewals, deletes and what a response does to it;
 * pcp_server.c: the servers (sockets, the probe, reading and routing every
 * datagram) and the table that finds a response's mapping.
 */
#ifndef PORTMAP_BACKENDS_PCP_INT_H
#define PORTMAP_BACKENDS_PCP_INT_H

#include <stddef.h>
#include <stdint.h>

#include "backends/backend.h"
#include "util/hash.h"
#include "util/pace.h"
#include "pcp/timing.h"
#include "pcp/wire.h"

#define PCP_DELETE_MRC 4             /* delete sends when MRC is unlimited */
#define PCP_SHORT_ERROR_MS 30000u    /* G1 recommended short error lifetime */
#define PCP_MAX_ERROR_S 1800u        /* an absurd error lifetime is taken as 30 min (cf. H4) */
#define PCP_RECOVERY_SPREAD_MS 5000u /* K2: random 0-5 s */
#define PCP_MAX_READS 64             /* datagrams per fd per process call */
#define PCP_RCVBUF (256 * 1024)      /* the server socket's receive buffer, at least */
/* datagrams per receive call, at most PORTMAP_PLAT_RECV_BATCH: each has a
 * whole packet's buffer on read_fd()'s stack (8: about 9 KiB) */
#define PCP_READ_BATCH 8

enum pcp_phase { PH_REQUEST, PH_RENEW, PH_BACKOFF, PH_DEFER, PH_DELETE };

typedef struct pcp_state pcp_state_t;

typedef struct pcp_server {
  pcp_state_t *st;
  int open;
  int ipv6;
  uint8_t addr[16];
  unsigned scope;
  uint16_t port;
  uint8_t local[16]; /* our source address: the client IP field (A4) */
  int fd;
  pcp_epoch_t epoch;
  int answered;             /* any well-formed response seen */
  uint64_t no_new_until;    /* G2 */
  int no_description;       /* Q26: the server refuses our DESCRIPTION */
  int refusal_logged;       /* G4: log once */
  int errqueue;             /* an ICMP report may wait in the socket's error queue */
  portmap_timer_t recovery; /* K2 */
  /* requests in flight to this server, at most PORTMAP_PACE_WINDOW; the
   * others wait in its FIFO */
  portmap_pace_t pace;
  /* the probe: a solicited ANNOUNCE (K1) */
  int probe_outstanding;
  uint64_t probe_sent_ms;
  uint8_t probe_pkt[PCP_HEADER_LEN];
  size_t probe_len;
  portmap_timer_t probe_timer;
} pcp_server_t;

typedef struct pcp_map pcp_map_t;

struct pcp_state {
  portmap_core_t *core;
  pcp_server_t srv[2]; /* [0] IPv4, [1] IPv6 */
  /* every mapping this backend runs, by nonce, protocol and internal port:
   * a response finds its mapping in O(1) (D3 checks the rest) */
  portmap_hash_t maps;
  uint64_t seed;        /* of the hash */
  portmap_timer_t pump; /* starts waiting requests after a detach gave back a slot */
};

/* What we tell the core of a mapping, less what follows from the request
 * and the server (the internal address) and the renewing flag (a bit of
 * pcp_map): portmap_result_t's names. */
typedef struct pcp_res {
  portmap_status_t status;
  int gateway_result;
  uint8_t external_addr[16]; /* with have_assigned: what the server assigned (H2) */
  uint16_t external_port;
  uint32_t lifetime;
  uint64_t expiry_ms;
} pcp_res_t;

/* One mapping. Nothing of its request is kept but the core's copy: each
 * send encodes it again from the same fields (C4 holds: see pcp.c). */
struct pcp_map {
  portmap_mapping_t *h; /* the core's handle */
  const portmap_req_t *req;
  pcp_server_t *srv;
  /* a slot in the server's window: held from a request's first send until
   * its answer (or until it gives up); waiting for one in the FIFO */
  portmap_pace_link_t slot;
  pcp_res_t res;
  uint8_t phase; /* enum pcp_phase */
  uint8_t renew_attempt;
  unsigned ever_mapped : 1;
  unsigned outstanding : 1;      /* a response to our request is expected */
  unsigned sent_description : 1; /* the request under way carries DESCRIPTION */
  unsigned omit_description : 1;
  unsigned have_assigned : 1; /* H2: suggest what we were given (res.external_*) */
  unsigned granted_here : 1;  /* this server granted it over PCP (F2 spares it) */
  unsigned renewing : 1;      /* a renewal of what is held is under way */
  /* retransmission: pcp_retx_t's state (its configuration is the client's) */
  uint32_t rt_ms;
  uint32_t sends;
  uint32_t granted_lifetime;
  uint64_t retx_start;
  uint64_t first_request; /* request_timeout_ms counts from here */
  portmap_timer_t timer;
  portmap_timer_t expiry;
};

/* ---------- pcp_server.c ---------- */

/* Open the family's server (socket, source address: A4, A5). */
portmap_status_t portmap_pcp_server_open(pcp_state_t *st, int ipv6);
void portmap_pcp_send(pcp_server_t *s, const uint8_t *pkt, size_t len);
/* The table's hash of a mapping (st->maps; user is the state). */
uint64_t portmap_pcp_pm_hash(const void *elem, const void *user);
/* The vtable's server side. */
portmap_status_t portmap_pcp_create(portmap_core_t *core, void **state);
void portmap_pcp_destroy(void *state);
void portmap_pcp_family_changed(void *state, int ipv6, uint64_t now);
size_t portmap_pcp_fds(void *state, int *fds, size_t cap);
void portmap_pcp_readable(void *state, uint64_t now);
void portmap_pcp_probe(void *state, uint64_t now);
void portmap_pcp_unsolicited(void *state, const uint8_t from[16], uint16_t from_port,
                             const uint8_t *data, size_t len, uint64_t now);

/* ---------- pcp.c ---------- */

/* Start the requests waiting for a slot that the windows now allow: at the
 * end of every entry point (never from inside a handler or a walk); the
 * pump timer's callback after a detach. */
void portmap_pcp_pump(pcp_state_t *st, uint64_t now);
void portmap_pcp_on_pump(portmap_timer_t *t, uint64_t now);
/* A response (D3 matched) for pm. */
void portmap_pcp_map_response(pcp_map_t *pm, const pcp_msg_t *r, uint64_t now);
/* E5: re-create every mapping of s but except; s->recovery's callback (K2). */
void portmap_pcp_recover(pcp_server_t *s, pcp_map_t *except, uint64_t now);
void portmap_pcp_on_recovery(portmap_timer_t *t, uint64_t now);
/* F2: fail the outstanding requests of mappings s never granted; returns
 * whether there were any. */
int portmap_pcp_fail_natpmp(pcp_server_t *s, uint64_t now);
/* Q21: the server's port is closed: end what waits on an answer there. */
void portmap_pcp_fail_unreachable(pcp_server_t *s, uint64_t now);

#endif
