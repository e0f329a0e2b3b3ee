/* SPDX-License-Identifier: MIT */
/*
 * The NAT-PMP backend's private header: its state, mappings and requests
 * ("jobs"), and the functions its two files call in one another.
 * natpmp_io.c: the requests on the wire (libnatpmp's socket, the window of
 * requests in flight and the FIFO of those waiting, retransmission, reading
 * and matching answers); natpmp.c: the mappings, the external address, the
 * epoch, the probe and the vtable.
 */
#ifndef PORTMAP_BACKENDS_NATPMP_INT_H
#define PORTMAP_BACKENDS_NATPMP_INT_H

#include <stddef.h>
#include <stdint.h>

#include <natpmp.h>

#include "backends/backend.h"
#include "util/hash.h"
#include "util/pace.h"

#define NP_VERSION 0
#define NP_OP_PUBLIC 0 /* N2: 0 public address, 1 map UDP, 2 map TCP */
#define NP_RESPONSE 128
#define NP_DELETE_TRIES 4u         /* a delete is bounded even with a large budget */
#define NP_ERROR_BACKOFF_MS 30000u /* result 3/4: wait, then ask again */
#define NP_MAX_LIFETIME 86400u     /* treat longer grants as 24 h (like checklist H4) */
#define NP_MIN_RETRY_MS 1000u      /* no renewal attempt closer than this to expiry */
#define NP_MAX_READS 64            /* datagrams per process call */
#define NP_MAX_SHIFT 16            /* cap on the doubling of the retransmission time */

/* RFC 6886 §3.5 result codes */
#define NP_RESULT_SUCCESS 0
#define NP_RESULT_UNSUPP_VERSION 1
#define NP_RESULT_REFUSED 2 /* not authorized / refused (Q16: NAT-PMP disabled) */
#define NP_RESULT_NETWORK_FAILURE 3
#define NP_RESULT_NO_RESOURCES 4
#define NP_RESULT_UNSUPP_OPCODE 5

typedef struct np_state np_state_t;
typedef struct np_map np_map_t;

enum np_job_kind { JOB_PUBLIC, JOB_MAP };

/* One request and its retransmissions. What it sends follows from its
 * mapping (create/renew, or delete) and is not kept: the fields it depends
 * on change only with an answer, so every retransmission is the same. */
typedef struct np_job {
  portmap_pace_link_t slot; /* waiting in the FIFO, or one of the window in flight */
  portmap_timer_t retx;     /* the next retransmission; while waiting, its give-up time */
  np_state_t *st;
  np_map_t *nm; /* JOB_MAP */
  enum np_job_kind kind;
  unsigned tries;
  uint64_t first_sent;
} np_job_t;

struct np_map {
  np_map_t *prev, *next; /* st->maps */
  portmap_mapping_t *h;  /* the core's handle */
  const portmap_req_t *req;
  portmap_result_t res; /* what we tell the core */
  int ever_mapped;
  np_state_t *st;
  int deleting;
  int sent; /* something of this mapping went on the wire */
  np_job_t job;
  int have_assigned;
  uint16_t assigned_port;
  uint64_t request_started;
  portmap_timer_t timer;
  portmap_timer_t expiry;
};

struct np_state {
  portmap_core_t *core;
  np_map_t *maps; /* every mapping this backend runs */
  int open;
  natpmp_t nat;
  uint8_t gw[16];
  uint8_t local[16];
  /* at most PORTMAP_PACE_WINDOW requests in flight, found by opcode and
   * internal port (what every answer carries); the others wait in the FIFO */
  portmap_pace_t pace;
  portmap_hash_t inflight;
  portmap_timer_t kick; /* starts waiting requests after a detach gave back a slot */
  int answered;         /* any well-formed response seen */
  int unreachable;      /* ECONNREFUSED seen: handled by settle() */
  /* the external address (public-address request, announcements) */
  int have_ext;
  uint8_t ext[16];
  np_job_t pub;
  int pub_for_maps; /* mappings wait for the answer, not only the probe */
  int pub_tried;    /* asked once for the mappings already */
  /* checklist N5 */
  int have_epoch;
  uint32_t epoch;
  uint64_t epoch_at;
  /* probe */
  int probing;
  portmap_timer_t probe_timer;
};

static inline int portmap_np_job_active(const np_job_t *j) {
  return j->slot.state != PORTMAP_PACE_IDLE;
}

void portmap_np_arm(np_state_t *st, portmap_timer_t *t, uint64_t deadline);

/* ---------- natpmp_io.c ---------- */

/* The window, the table of requests in flight and the kick timer (create). */
portmap_status_t portmap_np_io_init(np_state_t *st);
void portmap_np_io_fini(np_state_t *st);
portmap_status_t portmap_np_gateway_open(np_state_t *st);
void portmap_np_job_init(np_state_t *st, np_job_t *j, enum np_job_kind kind, np_map_t *nm);
/* Hand the job's request to libnatpmp, which sends it at once. Returns -1
 * when the socket reports the port closed (Q21). */
int portmap_np_raw_send(np_state_t *st, const np_job_t *j);
/* Join the FIFO (nothing when the job waits or is in flight already). */
void portmap_np_enqueue(np_state_t *st, np_job_t *j);
/* Stop a job whether it waits or is in flight: its slot comes back. */
void portmap_np_job_stop(np_state_t *st, np_job_t *j);
/* Start what the window allows, the public address request first. */
void portmap_np_kick(np_state_t *st, uint64_t now);
unsigned portmap_np_max_tries(const np_state_t *st);
void portmap_np_readable(void *state, uint64_t now);

/* ---------- natpmp.c ---------- */

void portmap_np_on_map_answer(np_map_t *nm, int result, const natpmpresp_t *r, uint64_t now);
void portmap_np_on_public_answer(np_state_t *st, int result, const natpmpresp_t *r, uint64_t now);
/* A job got no answer after its last try, or waited past its time. */
void portmap_np_job_give_up(np_state_t *st, np_job_t *j, uint64_t now);
void portmap_np_epoch_check(np_state_t *st, uint32_t sssoe, uint64_t now);
/* Run the FIFO, and whatever an ICMP error left to do. */
void portmap_np_settle(np_state_t *st, uint64_t now);

#endif
