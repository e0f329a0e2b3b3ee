/*
 * The UPnP-IGD backend: our own non-blocking SSDP discovery on the
 * scheduler's thread, and the blocking HTTP/SOAP exchanges on one worker
 * thread per client.
 *
 * Threads. Every function here except the worker's (the section "the
 * worker" below) runs on the scheduler's thread with the client lock held. Blocking work is one
 * "call" (one HTTP exchange: fetch the root description, or one SOAP action), handed to the worker
 * one at a time -- which also serialises SOAP per gateway (ROUTER-QUIRKS Q20). The worker posts the
 * finished call back through a pipe whose read end is one of fds(); readable() picks it up. A
 * call's inputs are written before hand-off and only read by the worker; its outputs belong to the
 * worker until the call comes back.
 *
 * The worker's context (upnp_worker_t: the hand-off slots, their lock, the
 * pipes) is allocated apart from the backend state and counted: the state
 * holds one reference, the thread the other. The worker never touches the
 * client, a mapping or the scheduler. destroy() never waits for the
 * network: it marks the context orphaned, hands the worker the deletes
 * that must still reach the gateway (Q10, at most UPNP_ORPHAN_JOBS_MAX),
 * aborts a query in progress, joins the thread only when it is about to
 * leave anyway (UPNP_JOIN_WAIT_MS) and otherwise detaches it; the last
 * reference frees the context.
 *
 * Bounds. Every call is bounded in time and size: the worker does its own
 * non-blocking I/O (connect, send and receive under one deadline; the
 * description capped at PORTMAP_UPNP_DESC_MAX, a SOAP reply at
 * UPNP_SOAP_REPLY_MAX, headers at UPNP_HTTP_HEAD_MAX). The deadline is
 * cfg.upnp_timeout_ms, and UPNP_LATE_ADD_MS more for an add, so that a
 * late answer is still heard and undone (Q10). miniupnpc still writes every
 * SOAP request and parses every reply, but its own transport cannot be
 * bounded: it limits each recv() to 5 s, never the exchange, and reads a
 * body of any size. So simpleUPnPcommand() writes the request into a
 * socketpair that already holds an empty reply (soap_request()) and we send
 * the octets ourselves. miniupnpc API 19 dropped that socket argument:
 * built against it, the same request comes from src/upnp/soap.c (checked
 * against miniupnpc's octets by test_soap), over the same transport. The watchdog,
 * cfg.upnp_timeout_ms per call on the scheduler, reports TIMEOUT; a result that comes back later is
 * discarded (except that a late successful add is deleted again, Q10).
 *
 * Discovery (per client, shared by every mapping, the probe and list):
 *   SSDP    M-SEARCH per search target, unicast to the gateway (and
 *           multicast when allowed, Q3); replies from any port of the
 *           gateway (Q1), other hosts only as a fallback (Q4), one
 *           candidate per LOCATION (Q25)
 *   DESCRIBE fetch a candidate's root description (our bounded GET) and list its
 *           WAN connection services (Q6, Q28, Q29)
 *   EVAL    GetStatusInfo + GetExternalIPAddress per service, in Q6
 *           order; the first connected one with a public address wins,
 *           else the best seen (Q5, Q29)
 *
 * Per mapping, one sequence at a time, one call in flight:
 *   CREATE   GetExternalIPAddress, then AddPortMapping (Q10: the fallible
 *            query comes first; within 2 s of discovery, which has just
 *            asked it, straight to AddPortMapping)
 *   RENEW    GetExternalIPAddress, GetSpecificPortMappingEntry (Q14), then
 *            AddPortMapping (leased: always; permanent: if it vanished)
 *   DELETE   DeletePortMapping
 *   DELCHECK (PORTMAP_FLAG_DELETE) GetSpecificPortMappingEntry, then
 *            DeletePortMapping if the entry is ours
 *
 * Lifetimes. Leased mappings are re-added at half the lease. Gateways that
 * grant only permanent leases (Q9) get lease 0 -- reported as lifetime 0
 * with expires_in_ms 0 -- and are verified every 10 minutes on our own
 * timer; with PORTMAP_FLAG_ONCE we delete them ourselves when the
 * requested lifetime ends, since the gateway never will.
 */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <miniupnpc/miniupnpc.h>
#include <miniupnpc/upnpcommands.h>
#include <miniupnpc/upnperrors.h>
#include <miniupnpc/upnpreplyparse.h>

#include "internal.h"
#include "platform/platform.h"
#include "util/netutil.h"
#include "upnp/soap.h"
#include "upnp/ssdp.h"

#define UPNP_MAX_CANDIDATES 8
#define UPNP_CONFLICT_TRIES 8            /* Q11 */
#define UPNP_PERMANENT_VERIFY_MS 600000u /* Q9: re-verify permanent leases */
#define UPNP_RETRY_MS 30000u             /* after a failed renewal */
#define UPNP_REDISCOVER_AFTER 2u         /* Q13: HTTP failures in a row */
#define UPNP_SSDP_GRACE_MS 100u          /* wait for an IGD reply after a rootdevice one */
#define UPNP_SSDP_DEFAULT_MS 500u
#define UPNP_EXT_FRESH_MS 2000u /* a new mapping trusts discovery's external address this long */
#define UPNP_LIST_MAX 256u
#define UPNP_MAX_READS 64
#define UPNP_DESC_ESCAPED_MAX 512 /* miniupnpc's SOAP body is 2048 octets */
#define UPNP_DEFAULT_DESCRIPTION "libportmap"
#define UPNP_DEFAULT_TIMEOUT_MS 2000u
#define UPNP_HTTP_HEAD_MAX 8192u          /* status line and headers of a reply */
#define UPNP_SOAP_REPLY_MAX (64u * 1024u) /* body of a SOAP reply */
#define UPNP_SOAP_REQUEST_MAX 4096u       /* miniupnpc's headers and 2048-octet body */
#define UPNP_ORPHAN_JOBS_MAX 16u          /* deletes a destroyed client leaves to the worker */
#define UPNP_JOIN_WAIT_MS 100u            /* destroy waits this long for an idle worker */
#define UPNP_LATE_ADD_MS 5000u            /* an add may answer this much past the watchdog */
#define UPNP_USER_AGENT "Linux UPnP/1.1 libportmap"

/* Our own pseudo result codes, beside miniupnpc's UPNPCOMMAND_* (< 0). */
#define UPNP_RC_TIMEOUT (-1000)   /* the watchdog or the worker's deadline gave up */
#define UPNP_RC_SYSTEM (-1001)    /* no worker (thread or pipe creation failed) */
#define UPNP_RC_ABORTED (-1002)   /* the client went away during a query */
#define UPNP_RC_TOO_LARGE (-1003) /* the reply outgrew its bound */

/* UPnP error codes (IGD WANIPConnection:2 section 2.4, UDA 3.2.2) */
#define UPNP_E_INVALID_ACTION 401
#define UPNP_E_INVALID_ARGS 402
#define UPNP_E_ACTION_FAILED 501
#define UPNP_E_OPTIONAL_ACTION 602
#define UPNP_E_ARRAY_INDEX_INVALID 713
#define UPNP_E_NO_SUCH_ENTRY 714
#define UPNP_E_CONFLICT 718
#define UPNP_E_SAME_PORT_REQUIRED 724
#define UPNP_E_ONLY_PERMANENT 725
#define UPNP_E_CONFLICT_OTHER 729

typedef struct upnp_state upnp_state_t;
typedef struct upnp_map upnp_map_t;
typedef struct upnp_worker upnp_worker_t;

enum call_kind {
  CALL_DESCRIBE, /* GET the root description and scan it */
  CALL_STATUS,   /* GetStatusInfo */
  CALL_EXTIP,    /* GetExternalIPAddress */
  CALL_ADD,      /* AddPortMapping */
  CALL_ADDANY,   /* AddAnyPortMapping (IGDv2) */
  CALL_GET,      /* GetSpecificPortMappingEntry */
  CALL_DELETE,   /* DeletePortMapping */
  CALL_LIST      /* GetGenericPortMappingEntry */
};

enum call_purpose { FOR_MAP, FOR_DISCOVERY, FOR_LIST, FOR_CLEANUP };

typedef struct upnp_call {
  /* the scheduler thread's (st is never read by the worker) */
  struct upnp_call *qnext;
  upnp_state_t *st;
  enum call_kind kind;
  enum call_purpose purpose;
  upnp_map_t *pm; /* FOR_MAP; NULL once the mapping is gone */
  int cleanup;    /* a successful add must be deleted again (Q10) */
  int timed_out;
  unsigned gen; /* gateway generation it was built for */
  portmap_timer_t watchdog;
  /* inputs: written before hand-off, read-only afterwards */
  char url[PORTMAP_SSDP_URL_MAX];
  char service[PORTMAP_SSDP_FIELD_MAX];
  char ext_port[8];
  char int_port[8];
  char proto[4];
  char client[PORTMAP_ADDRSTRLEN];
  char desc[UPNP_DESC_ESCAPED_MAX + 1];
  char lease[12];
  char index[8];
  /* outputs: the worker's until the call comes back */
  struct upnp_call *wnext; /* under the worker's lock */
  int rc;
  int http_status;
  portmap_upnp_desc_t *descr;
  char o_status[72], o_lasterr[72], o_extip[72], o_reserved[16];
  char o_client[72], o_port[16], o_desc[96], o_enabled[16], o_lease[24];
  char o_ext_port[16], o_proto[16], o_rhost[72];
} upnp_call_t;

enum map_seq { SEQ_IDLE, SEQ_CREATE, SEQ_RENEW, SEQ_DELETE, SEQ_DELCHECK };

struct upnp_map {
  portmap_mapping_t *m;
  upnp_state_t *st;
  enum map_seq seq;
  upnp_call_t *call; /* in flight (queued or with the worker) */
  int waiting_gw;    /* for discovery */
  int revoking;      /* revoke arrived while busy */
  int added;         /* an entry of ours may exist at ext_port */
  uint16_t ext_port; /* held or being tried */
  uint32_t lease;    /* asked in the current add */
  int permanent;     /* granted with lease 0 (Q9) */
  unsigned conflict_try;
  int tried_any, tried_permanent, rediscovered;
  unsigned http_retry;
  int vanished; /* Q14: the renewal found it gone */
  int have_ext;
  uint8_t ext_addr[16];
  portmap_timer_t timer;  /* renewal, verification, retry */
  portmap_timer_t expiry; /* leased: lease end; permanent ONCE: our own end */
};

typedef struct upnp_gw {
  int ready;
  unsigned gen;
  char location[PORTMAP_SSDP_URL_MAX];
  char control_url[PORTMAP_SSDP_URL_MAX];
  char service[PORTMAP_SSDP_FIELD_MAX];
  int rank;
  int igd_version;
  char device_name[PORTMAP_SSDP_FIELD_MAX];
  char status[64];
  int have_ext;
  uint8_t ext[16];
  uint64_t ext_at;    /* when discovery's GetExternalIPAddress answered */
  int permanent_only; /* Q9: remembered for this gateway */
  uint32_t rtt_ms;
} upnp_gw_t;

typedef struct upnp_cand {
  char location[PORTMAP_SSDP_URL_MAX];
  char server[PORTMAP_SSDP_FIELD_MAX];
  int rank;
} upnp_cand_t;

typedef struct upnp_eval {
  portmap_upnp_service_t svc;
  char url[PORTMAP_SSDP_URL_MAX];
  int answered;
  char status[64];
  int have_ext;
  uint8_t ext[16];
  uint64_t ext_at; /* when the GetExternalIPAddress answer came */
  int tier;
} upnp_eval_t;

enum disc_phase { DISC_IDLE, DISC_SSDP, DISC_DESCRIBE, DISC_EVAL };

typedef struct upnp_disc {
  enum disc_phase phase;
  uint64_t started, deadline, resend_at, grace_at;
  int resent;
  int have_rtt;
  uint32_t rtt_ms;
  upnp_cand_t cand[UPNP_MAX_CANDIDATES];
  size_t n_cand, cand_idx;
  upnp_eval_t ev[PORTMAP_UPNP_MAX_SERVICES];
  size_t n_ev, ev_idx;
  char friendly[PORTMAP_SSDP_FIELD_MAX];
  char device_type[PORTMAP_SSDP_FIELD_MAX];
  portmap_status_t fail_status;
  int fail_result;
  portmap_timer_t timer;
} upnp_disc_t;

struct upnp_state {
  portmap_client_t *c;
  int have_local;
  uint8_t local[16];
  char client[PORTMAP_ADDRSTRLEN]; /* NewInternalClient */
  int fd;                          /* SSDP */
  upnp_gw_t gw;
  upnp_disc_t disc;
  int probe_pending;
  unsigned http_failures; /* Q13: in a row, on the current gateway */
  /* calls: queued here, one at a time with the worker */
  upnp_call_t *q_head, *q_tail;
  upnp_call_t *busy;
  portmap_timer_t stuck; /* the busy call timed out and is still not back */
  /* list */
  int list_active, list_waiting;
  portmap_list_entry_t *list;
  size_t list_n;
  upnp_worker_t *w; /* NULL until the first call */
};

/* Everything the worker touches besides the calls themselves. One
 * reference is the backend state's, one the thread's; the last frees it. */
struct upnp_worker {
  pthread_mutex_t mu;
  pthread_cond_t cv; /* work for the thread; the thread's exit for destroy */
  int refs;
  int orphaned; /* the backend state is gone: send `last`, then leave */
  int exited;   /* the thread is leaving worker_main() */
  uint32_t timeout_ms;
  upnp_call_t *todo;    /* handed over, not started (one at a time) */
  upnp_call_t *running; /* in run_call() */
  upnp_call_t *done;    /* finished, not yet collected (wnext) */
  upnp_call_t *last;    /* once orphaned: the deletes still to send (wnext) */
  int result_pipe[2];   /* [1] written by the thread, [0] one of fds() */
  int abort_pipe[2];    /* [1] written once by destroy: drop the query in progress */
  pthread_t thread;
};

static void disc_start(upnp_state_t *st, uint64_t now);
static void disc_on_result(upnp_state_t *st, upnp_call_t *call, int rc, uint64_t now);
static void pm_on_result(upnp_map_t *pm, upnp_call_t *call, int rc, uint64_t now);
static void pm_fail(upnp_map_t *pm, portmap_status_t status, uint64_t now);
static void list_on_result(upnp_state_t *st, upnp_call_t *call, int rc, uint64_t now);
static void orphan_result(upnp_state_t *st, upnp_call_t *call, int rc);

/* ---------- helpers ---------- */

static upnp_map_t *pm_of(portmap_mapping_t *m) {
  return m->be == &portmap_upnp_backend ? m->be_data : NULL;
}

static void copy_str(char *dst, size_t cap, const char *src) {
  if (cap == 0)
    return;
  size_t n = src != NULL ? strnlen(src, cap - 1) : 0;
  if (n > 0)
    memcpy(dst, src, n);
  dst[n] = '\0';
}

static const char *proto_name(int protocol) {
  return protocol == PORTMAP_PROTO_UDP ? "UDP" : "TCP"; /* Q7: upper case */
}

static void arm(upnp_state_t *st, portmap_timer_t *t, uint64_t deadline) {
  if (portmap_sched_push(&st->c->sched, t, deadline) != 0)
    portmap_log(st->c, PORTMAP_LOG_ERROR, "upnp: out of memory for a timer");
}

static int is_http_failure(int rc) {
  return rc == UPNPCOMMAND_HTTP_ERROR || rc == UPNP_RC_TIMEOUT;
}

static const char *rc_text(int rc, char *buf, size_t cap) {
  if (rc == 0)
    snprintf(buf, cap, "OK");
  else if (rc == UPNP_RC_TIMEOUT)
    snprintf(buf, cap, "timed out");
  else if (rc == UPNP_RC_TOO_LARGE)
    snprintf(buf, cap, "reply too large");
  else if (rc == UPNP_RC_ABORTED)
    snprintf(buf, cap, "abandoned");
  else if (rc == UPNPCOMMAND_HTTP_ERROR)
    snprintf(buf, cap, "HTTP failure");
  else if (rc < 0)
    snprintf(buf, cap, "miniupnpc error %d", rc);
  else {
    const char *s = strupnperror(rc);
    snprintf(buf, cap, "%d %s", rc, s != NULL ? s : "");
  }
  return buf;
}

/* Q12: 0.0.0.0, loopback or garbage is "no external address". */
static int parse_ext(const char *text, uint8_t out[16]) {
  portmap_addr_t a;
  if (text == NULL || text[0] == '\0' || portmap_addr_parse(text, &a) != PORTMAP_OK ||
      !portmap_net_is_v4(a.bytes) || portmap_net_is_unspecified(a.bytes) || a.bytes[12] == 127)
    return 0;
  memcpy(out, a.bytes, 16);
  return 1;
}

static void addr_zero4(uint8_t out[16]) {
  memset(out, 0, 16);
  out[10] = out[11] = 0xff;
}

/* XML-escape a SOAP argument: miniupnpc copies values into the body
 * verbatim, so "</NewPortMappingDescription>" would inject elements. */
static void xml_escape(char *dst, size_t cap, const char *src) {
  size_t o = 0;
  for (size_t i = 0; src[i] != '\0'; i++) {
    const char *rep = NULL;
    switch (src[i]) {
    case '&':
      rep = "&amp;";
      break;
    case '<':
      rep = "&lt;";
      break;
    case '>':
      rep = "&gt;";
      break;
    case '"':
      rep = "&quot;";
      break;
    case '\'':
      rep = "&apos;";
      break;
    default:
      break;
    }
    size_t n = rep != NULL ? strlen(rep) : 1;
    if (o + n >= cap) {
      /* truncated: never end inside a UTF-8 sequence */
      while (o > 0 && ((unsigned char)dst[o - 1] & 0xC0) == 0x80)
        o--;
      if (o > 0 && ((unsigned char)dst[o - 1] & 0xC0) == 0xC0)
        o--;
      break;
    }
    if (rep != NULL)
      memcpy(dst + o, rep, n);
    else
      dst[o] = src[i];
    o += n;
  }
  dst[o] = '\0';
}

/* Q11: a stable pseudo-random sequence of external ports per (host, port,
 * protocol), so a restarted application asks for the same ports again. */
static uint16_t conflict_port(const upnp_state_t *st, const portmap_mapping_t *m, unsigned i,
                              uint16_t avoid) {
  uint8_t in[11];
  memcpy(in, st->local + 12, 4);
  in[4] = (uint8_t)(m->internal_port >> 8);
  in[5] = (uint8_t)m->internal_port;
  in[6] = (uint8_t)m->protocol;
  in[7] = (uint8_t)(i >> 24);
  in[8] = (uint8_t)(i >> 16);
  in[9] = (uint8_t)(i >> 8);
  in[10] = (uint8_t)i;
  uint32_t h = 2166136261u; /* FNV-1a */
  for (size_t k = 0; k < sizeof in; k++) {
    h ^= in[k];
    h *= 16777619u;
  }
  uint16_t p = (uint16_t)(1024u + h % 64512u);
  if (p == avoid)
    p = p == 65535 ? 1024 : (uint16_t)(p + 1);
  return p;
}

static int ensure_local(upnp_state_t *st) {
  portmap_client_t *c = st->c;
  if (st->have_local)
    return 0;
  if (c->have_local && portmap_net_is_v4(c->local_addr))
    memcpy(st->local, c->local_addr, 16);
  else if (portmap_plat_local_address(c->gateway4, 0, st->local) != 0)
    return -1;
  portmap_addr_t a;
  memcpy(a.bytes, st->local, 16);
  portmap_addr_format(&a, st->client, sizeof st->client);
  st->have_local = 1;
  return 0;
}

/* ---------- the worker ---------- */

/* From here to worker_main(): the worker's side. It reads a call's inputs,
 * writes its outputs and touches nothing but the worker's context (destroy
 * shares undo_add() and the freeing helpers, under the worker's lock or
 * once the worker is gone); never the client, a mapping or the scheduler. */

/* The bounds of one exchange: a deadline for all of it, and for a query
 * the abort pipe that destroy writes when nobody wants the answer. */
typedef struct upnp_io {
  uint64_t deadline; /* CLOCK_MONOTONIC, ms */
  int abort_fd;      /* -1: runs to its deadline */
} upnp_io_t;

/* Wait until fd is ready for events. 0, UPNP_RC_TIMEOUT, UPNP_RC_ABORTED
 * or UPNPCOMMAND_HTTP_ERROR. */
static int io_wait(const upnp_io_t *io, int fd, short events) {
  for (;;) {
    uint64_t now = portmap_plat_now_ms();
    if (now >= io->deadline)
      return UPNP_RC_TIMEOUT;
    uint64_t left = io->deadline - now;
    struct pollfd p[2];
    p[0].fd = fd;
    p[0].events = events;
    p[0].revents = 0;
    p[1].fd = io->abort_fd;
    p[1].events = POLLIN;
    p[1].revents = 0;
    int n = poll(p, io->abort_fd >= 0 ? 2 : 1, left > INT_MAX ? INT_MAX : (int)left);
    if (n < 0 && errno != EINTR)
      return UPNPCOMMAND_HTTP_ERROR;
    if (n > 0 && p[1].revents != 0)
      return UPNP_RC_ABORTED;
    if (n > 0 && p[0].revents != 0)
      return 0;
  }
}

/* A non-blocking connect to the URL's literal address, within the deadline. */
static int io_connect(const upnp_io_t *io, const portmap_ssdp_url_t *u, int *out) {
  struct sockaddr_storage ss;
  socklen_t sl = portmap_net_to_sockaddr(u->addr, u->port, 0, &ss);
  int fd = portmap_plat_socket(ss.ss_family == AF_INET6, 1);
  if (fd < 0)
    return UPNPCOMMAND_HTTP_ERROR;
  if (connect(fd, (struct sockaddr *)&ss, sl) != 0) {
    if (errno != EINPROGRESS && errno != EINTR) {
      close(fd);
      return UPNPCOMMAND_HTTP_ERROR;
    }
    int rc = io_wait(io, fd, POLLOUT);
    int err = 0;
    socklen_t el = sizeof err;
    if (rc == 0 && (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0))
      rc = UPNPCOMMAND_HTTP_ERROR; /* refused, unreachable */
    if (rc != 0) {
      close(fd);
      return rc;
    }
  }
  *out = fd;
  return 0;
}

static int io_send(const upnp_io_t *io, int fd, const char *buf, size_t len) {
  size_t off = 0;
  while (off < len) {
    ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += (size_t)n;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int rc = io_wait(io, fd, POLLOUT);
      if (rc != 0)
        return rc;
    } else if (n == 0 || errno != EINTR) {
      return UPNPCOMMAND_HTTP_ERROR;
    }
  }
  return 0;
}

typedef struct http_reply {
  int status;
  char *body; /* NUL-terminated, malloc'd */
  size_t len;
} http_reply_t;

static int hex_digit(char ch) {
  if (ch >= '0' && ch <= '9')
    return ch - '0';
  if (ch >= 'a' && ch <= 'f')
    return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F')
    return ch - 'A' + 10;
  return -1;
}

/* The chunked transfer coding (RFC 9112 section 7.1), decoded in place
 * as the octets arrive: the decoded body never runs ahead of the input. */
enum {
  CH_SIZE,
  CH_EXT,
  CH_SIZE_LF,
  CH_DATA,
  CH_DATA_CR,
  CH_DATA_LF,
  CH_TRAILER,
  CH_TRAILER_LF,
  CH_DONE,
  CH_BAD
};

typedef struct dechunk {
  int state;
  size_t left;   /* chunk octets still to come */
  size_t digits; /* of the chunk size */
  size_t line;   /* octets of the current extension or trailer line */
} dechunk_t;

static void dechunk(dechunk_t *d, char *buf, size_t *in, size_t have, size_t *out) {
  while (*in < have && d->state != CH_DONE && d->state != CH_BAD) {
    char ch = buf[*in];
    if (d->state == CH_DATA) {
      size_t n = have - *in < d->left ? have - *in : d->left;
      memmove(buf + *out, buf + *in, n);
      *out += n;
      *in += n;
      d->left -= n;
      if (d->left == 0)
        d->state = CH_DATA_CR;
      continue;
    }
    (*in)++;
    switch (d->state) {
    case CH_SIZE:
      if (hex_digit(ch) >= 0 && d->digits < 8) { /* at most 4 GiB: far past any cap */
        d->left = d->left * 16u + (size_t)hex_digit(ch);
        d->digits++;
      } else if (d->digits > 0 && (ch == ';' || ch == ' ' || ch == '\t')) {
        d->state = CH_EXT;
        d->line = 0;
      } else if (d->digits > 0 && ch == '\r') {
        d->state = CH_SIZE_LF;
      } else {
        d->state = CH_BAD;
      }
      break;
    case CH_EXT:
      if (ch == '\r')
        d->state = CH_SIZE_LF;
      else if (++d->line > 256)
        d->state = CH_BAD;
      break;
    case CH_SIZE_LF:
      d->line = 0;
      d->state = ch != '\n' ? CH_BAD : d->left > 0 ? CH_DATA : CH_TRAILER;
      break;
    case CH_DATA_CR:
      d->state = ch == '\r' ? CH_DATA_LF : CH_BAD;
      break;
    case CH_DATA_LF:
      d->state = ch == '\n' ? CH_SIZE : CH_BAD;
      d->digits = 0;
      break;
    case CH_TRAILER:
      if (ch == '\r')
        d->state = CH_TRAILER_LF;
      else if (++d->line > 1024)
        d->state = CH_BAD;
      break;
    case CH_TRAILER_LF:
      d->state = ch != '\n' ? CH_BAD : d->line == 0 ? CH_DONE : CH_TRAILER;
      d->line = 0;
      break;
    default:
      break;
    }
  }
}

static int header_is(const char *line, size_t len, const char *name, const char **value,
                     size_t *vlen) {
  size_t n = strlen(name);
  if (len <= n || line[n] != ':' || strncasecmp(line, name, n) != 0)
    return 0;
  const char *v = line + n + 1, *end = line + len;
  while (v < end && (*v == ' ' || *v == '\t'))
    v++;
  while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
    end--;
  *value = v;
  *vlen = (size_t)(end - v);
  return 1;
}

/* Status line and the two headers that frame the body. head ends with the
 * empty line. Returns 0 or UPNPCOMMAND_INVALID_RESPONSE. */
static int parse_head(const char *head, size_t len, int *status, long long *clen, int *chunked) {
  if (len < 12 || strncmp(head, "HTTP/1.", 7) != 0 || head[8] != ' ')
    return UPNPCOMMAND_INVALID_RESPONSE;
  int code = 0;
  for (size_t i = 9; i < 12; i++) {
    if (head[i] < '0' || head[i] > '9')
      return UPNPCOMMAND_INVALID_RESPONSE;
    code = code * 10 + (head[i] - '0');
  }
  *status = code;
  *clen = -1;
  *chunked = 0;
  const char *p = memchr(head, '\n', len);
  const char *end = head + len;
  while (p != NULL && p + 1 < end) {
    const char *line = p + 1;
    p = memchr(line, '\n', (size_t)(end - line));
    size_t ll = (size_t)((p != NULL ? p : end) - line);
    if (ll > 0 && line[ll - 1] == '\r')
      ll--;
    const char *v;
    size_t vl;
    if (header_is(line, ll, "Content-Length", &v, &vl)) {
      long long n = 0;
      if (vl == 0 || vl > 12)
        return UPNPCOMMAND_INVALID_RESPONSE;
      for (size_t i = 0; i < vl; i++) {
        if (v[i] < '0' || v[i] > '9')
          return UPNPCOMMAND_INVALID_RESPONSE;
        n = n * 10 + (v[i] - '0');
      }
      if (*clen >= 0 && *clen != n)
        return UPNPCOMMAND_INVALID_RESPONSE; /* two framings: trust neither */
      *clen = n;
    } else if (header_is(line, ll, "Transfer-Encoding", &v, &vl)) {
      for (size_t i = 0; i + 7 <= vl; i++)
        if (strncasecmp(v + i, "chunked", 7) == 0)
          *chunked = 1;
    }
  }
  if (*chunked)
    *clen = -1; /* RFC 9112 section 6.3: the coding wins */
  return 0;
}

/* Read one HTTP response: headers, then a body of at most cap octets
 * framed by Content-Length, the chunked coding or the end of the stream.
 * A Content-Length above cap is refused before any of the body is read. */
static int io_read_reply(const upnp_io_t *io, int fd, size_t cap, http_reply_t *r) {
  size_t max = UPNP_HTTP_HEAD_MAX + cap + 1; /* the octet past cap proves "too large" */
  size_t bufcap = 4096, have = 0, scanned = 0, in = 0, out = 0;
  int head_done = 0, chunked = 0, rc = UPNPCOMMAND_HTTP_ERROR;
  long long clen = -1;
  dechunk_t d;
  memset(&d, 0, sizeof d);
  char *buf = malloc(bufcap + 1);
  if (buf == NULL)
    return UPNPCOMMAND_MEM_ALLOC_ERROR;
  for (;;) {
    if (have == bufcap) {
      if (bufcap >= max) {
        rc = UPNP_RC_TOO_LARGE;
        goto done;
      }
      size_t grown = bufcap * 2 < max ? bufcap * 2 : max;
      char *nb = realloc(buf, grown + 1);
      if (nb == NULL) {
        rc = UPNPCOMMAND_MEM_ALLOC_ERROR;
        goto done;
      }
      buf = nb;
      bufcap = grown;
    }
    ssize_t n = recv(fd, buf + have, bufcap - have, 0);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        rc = UPNPCOMMAND_HTTP_ERROR;
        goto done;
      }
      rc = io_wait(io, fd, POLLIN);
      if (rc != 0)
        goto done;
      continue;
    }
    if (n == 0) { /* the end of the stream */
      if (!head_done || (chunked && d.state != CH_DONE) || (clen >= 0 && out < (size_t)clen))
        rc = UPNPCOMMAND_HTTP_ERROR; /* cut short */
      else
        rc = 0;
      goto done;
    }
    have += (size_t)n;
    if (!head_done) {
      const char *eoh = NULL;
      for (size_t i = scanned; i + 4 <= have && eoh == NULL; i++)
        if (memcmp(buf + i, "\r\n\r\n", 4) == 0)
          eoh = buf + i + 4;
      if (eoh == NULL) {
        if (have > UPNP_HTTP_HEAD_MAX) {
          rc = UPNP_RC_TOO_LARGE;
          goto done;
        }
        scanned = have > 3 ? have - 3 : 0;
        continue;
      }
      size_t hl = (size_t)(eoh - buf);
      rc = parse_head(buf, hl, &r->status, &clen, &chunked);
      if (rc != 0)
        goto done;
      if (clen > (long long)cap) {
        rc = UPNP_RC_TOO_LARGE;
        goto done;
      }
      memmove(buf, buf + hl, have - hl); /* keep the body only */
      have -= hl;
      head_done = 1;
    }
    if (chunked) {
      dechunk(&d, buf, &in, have, &out);
      memmove(buf + out, buf + in, have - in);
      have = out + (have - in);
      in = out;
      if (d.state == CH_BAD) {
        rc = UPNPCOMMAND_INVALID_RESPONSE;
        goto done;
      }
    } else {
      out = have;
    }
    if (out > cap) {
      rc = UPNP_RC_TOO_LARGE;
      goto done;
    }
    if ((chunked && d.state == CH_DONE) || (!chunked && clen >= 0 && out >= (size_t)clen)) {
      if (clen >= 0)
        out = (size_t)clen; /* octets past the body are not ours */
      rc = 0;
      goto done;
    }
  }
done:
  if (rc != 0) {
    free(buf);
    return rc;
  }
  buf[out] = '\0';
  r->body = buf;
  r->len = out;
  return 0;
}

/* Connect, send the request, read the reply: one deadline for it all. */
static int http_exchange(const upnp_io_t *io, const portmap_ssdp_url_t *u, const char *req,
                         size_t len, size_t cap, http_reply_t *r) {
  int fd = -1;
  int rc = io_connect(io, u, &fd);
  if (rc != 0)
    return rc;
  rc = io_send(io, fd, req, len);
  if (rc == 0)
    rc = io_read_reply(io, fd, cap, r);
  close(fd);
  return rc;
}

/* The root description, with HTTP/1.0 so that no chunked coding comes back
 * from a conforming server (it is decoded all the same). */
static int http_get(const upnp_io_t *io, const char *url, size_t cap, http_reply_t *r) {
  portmap_ssdp_url_t u;
  if (portmap_ssdp_url_parse(url, &u) != PORTMAP_SSDP_OK)
    return UPNPCOMMAND_INVALID_ARGS;
  char req[PORTMAP_SSDP_URL_MAX + 160];
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.0\r\n"
                   "Host: %s:%u\r\n"
                   "User-Agent: " UPNP_USER_AGENT "\r\n"
                   "Connection: close\r\n"
                   "\r\n",
                   u.path, u.host, u.port);
  if (n <= 0 || (size_t)n >= sizeof req)
    return UPNPCOMMAND_INVALID_ARGS;
  return http_exchange(io, &u, req, (size_t)n, cap, r);
}

#if MINIUPNPC_API_VERSION < 19
/* The octets miniupnpc would send for this action. simpleUPnPcommand()
 * takes a connected socket (API < 19): we give it one end of a socketpair
 * whose other end already holds an empty reply and is shut for writing, so
 * it writes its request, reads that reply at once and returns; nothing
 * waits. It closes the socket it used, and only that one: whether it did
 * shows as the end of the stream on our end. */
static int soap_request(const upnp_call_t *k, const char *action, struct UPNParg *args, char *out,
                        size_t cap, size_t *len) {
  static const char empty[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return UPNPCOMMAND_UNKNOWN_ERROR;
  if (send(sv[1], empty, sizeof empty - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof empty - 1) ||
      shutdown(sv[1], SHUT_WR) != 0) {
    close(sv[0]);
    close(sv[1]);
    return UPNPCOMMAND_UNKNOWN_ERROR;
  }
  int size = 0;
  free(simpleUPnPcommand(sv[0], k->url, k->service, action, args, &size));
  size_t have = 0;
  int closed = 0, overflow = 0;
  for (;;) {
    char scratch[256];
    char *dst = have < cap ? out + have : scratch;
    ssize_t n = recv(sv[1], dst, have < cap ? cap - have : sizeof scratch, MSG_DONTWAIT);
    if (n > 0) {
      if (dst == scratch)
        overflow = 1; /* cannot be: miniupnpc caps its body at 2048 octets */
      else
        have += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    closed = n == 0;
    break;
  }
  if (!closed)
    close(sv[0]); /* miniupnpc returned without using it */
  close(sv[1]);
  *len = have;
  /* nothing written: miniupnpc refused the arguments (a body over 2048) */
  return have > 0 && !overflow ? 0 : UPNPCOMMAND_INVALID_ARGS;
}
#endif

#if MINIUPNPC_API_VERSION >= 19
/* miniupnpc no longer hands out the request octets: the same request from
 * our own builder (checked against miniupnpc's in test_soap). */
static int soap_request(const upnp_call_t *k, const portmap_ssdp_url_t *u, const char *action,
                        struct UPNParg *args, char *out, size_t cap, size_t *len) {
  portmap_soap_arg_t a[9];
  size_t n = 0;
  for (; args != NULL && args[n].elt != NULL; n++) {
    if (n == sizeof a / sizeof a[0])
      return UPNPCOMMAND_INVALID_ARGS;
    a[n].name = args[n].elt;
    a[n].value = args[n].val;
  }
  return portmap_soap_build(u->host, u->port, u->path, UPNP_USER_AGENT, k->service, action, a, n,
                            out, cap, len) == 0
             ? 0
             : UPNPCOMMAND_INVALID_ARGS;
}
#endif

/* One SOAP action over our bounded transport: the reply parsed into
 * name/value pairs (miniupnpc's parser). 0 or a UPNPCOMMAND_ / UPNP_RC_
 * failure. */
static int soap_call(const upnp_io_t *io, const upnp_call_t *k, const char *action,
                     struct UPNParg *args, struct NameValueParserData *pdata) {
  portmap_ssdp_url_t u;
  if (portmap_ssdp_url_parse(k->url, &u) != PORTMAP_SSDP_OK)
    return UPNPCOMMAND_INVALID_ARGS;
  char req[UPNP_SOAP_REQUEST_MAX];
  size_t len = 0;
#if MINIUPNPC_API_VERSION >= 19
  int rc = soap_request(k, &u, action, args, req, sizeof req, &len);
#else
  int rc = soap_request(k, action, args, req, sizeof req, &len);
#endif
  if (rc != 0)
    return rc;
  http_reply_t r;
  rc = http_exchange(io, &u, req, len, UPNP_SOAP_REPLY_MAX, &r);
  if (rc != 0)
    return rc;
  /* as miniupnpc: the status does not matter, a fault carries errorCode */
  ParseNameValue(r.body, (int)r.len, pdata);
  free(r.body);
  return 0;
}

static const char *nv(struct NameValueParserData *p, const char *name) {
  return GetValueFromNameValueList(p, name);
}

/* A SOAP fault's UPnP error code wins over everything (as in miniupnpc). */
static int soap_result(struct NameValueParserData *p, int rc) {
  const char *e = nv(p, "errorCode");
  if (e == NULL)
    return rc;
  char *end;
  long v = strtol(e, &end, 10);
  return end == e || v < INT_MIN || v > INT_MAX ? UPNPCOMMAND_UNKNOWN_ERROR : (int)v;
}

static void describe(upnp_call_t *k, const upnp_io_t *io) {
  http_reply_t r;
  int rc = http_get(io, k->url, PORTMAP_UPNP_DESC_MAX, &r);
  if (rc != 0) {
    k->rc = rc;
    return;
  }
  k->http_status = r.status;
  k->descr = calloc(1, sizeof *k->descr);
  if (k->descr == NULL)
    k->rc = UPNPCOMMAND_MEM_ALLOC_ERROR;
  else if (r.status != 200 || r.len == 0 ||
           portmap_upnp_desc_parse(r.body, r.len, k->descr) != PORTMAP_SSDP_OK)
    k->rc = UPNPCOMMAND_INVALID_RESPONSE;
  else
    k->rc = 0;
  free(r.body);
}

/* One exchange: the call's inputs in, its outputs out. The results are
 * those of miniupnpc's UPNP_* function for the same action. */
static void run_call(upnp_call_t *k, const upnp_io_t *io) {
  if (k->kind == CALL_DESCRIBE) {
    describe(k, io);
    return;
  }
  struct UPNParg a[9];
  memset(a, 0, sizeof a);
  a[0].elt = "NewRemoteHost";
  a[0].val = "";
  a[1].elt = "NewExternalPort";
  a[1].val = k->ext_port;
  a[2].elt = "NewProtocol";
  a[2].val = k->proto;
  a[3].elt = "NewInternalPort";
  a[3].val = k->int_port;
  a[4].elt = "NewInternalClient";
  a[4].val = k->client;
  a[5].elt = "NewEnabled";
  a[5].val = "1";
  a[6].elt = "NewPortMappingDescription";
  a[6].val = k->desc;
  a[7].elt = "NewLeaseDuration";
  a[7].val = k->lease;
  struct NameValueParserData p;
  memset(&p, 0, sizeof p);
  int rc = UPNPCOMMAND_UNKNOWN_ERROR;
  switch (k->kind) {
  case CALL_STATUS:
    rc = soap_call(io, k, "GetStatusInfo", NULL, &p);
    if (rc != 0)
      break;
    copy_str(k->o_status, 64, nv(&p, "NewConnectionStatus"));
    copy_str(k->o_lasterr, 64, nv(&p, "NewLastConnectionError"));
    rc = nv(&p, "NewConnectionStatus") != NULL && nv(&p, "NewUptime") != NULL
             ? 0
             : UPNPCOMMAND_UNKNOWN_ERROR;
    rc = soap_result(&p, rc);
    break;
  case CALL_EXTIP:
    rc = soap_call(io, k, "GetExternalIPAddress", NULL, &p);
    if (rc != 0)
      break;
    copy_str(k->o_extip, 16, nv(&p, "NewExternalIPAddress"));
    rc = soap_result(&p, nv(&p, "NewExternalIPAddress") != NULL ? 0 : UPNPCOMMAND_UNKNOWN_ERROR);
    break;
  case CALL_ADD:
  case CALL_ADDANY:
    rc = soap_call(io, k, k->kind == CALL_ADD ? "AddPortMapping" : "AddAnyPortMapping", a, &p);
    if (rc != 0)
      break;
    if (k->kind == CALL_ADDANY) {
      copy_str(k->o_reserved, 6, nv(&p, "NewReservedPort"));
      rc = nv(&p, "NewReservedPort") != NULL ? 0 : UPNPCOMMAND_INVALID_RESPONSE;
    }
    rc = soap_result(&p, rc);
    break;
  case CALL_GET:
    a[3].elt = NULL; /* NewRemoteHost, NewExternalPort, NewProtocol */
    rc = soap_call(io, k, "GetSpecificPortMappingEntry", a, &p);
    if (rc != 0)
      break;
    copy_str(k->o_client, 16, nv(&p, "NewInternalClient"));
    copy_str(k->o_port, 6, nv(&p, "NewInternalPort"));
    copy_str(k->o_enabled, 4, nv(&p, "NewEnabled"));
    copy_str(k->o_desc, 80, nv(&p, "NewPortMappingDescription"));
    copy_str(k->o_lease, 16, nv(&p, "NewLeaseDuration"));
    rc = soap_result(&p, nv(&p, "NewInternalClient") != NULL ? 0 : UPNPCOMMAND_UNKNOWN_ERROR);
    break;
  case CALL_DELETE:
    a[3].elt = NULL;
    rc = soap_call(io, k, "DeletePortMapping", a, &p);
    if (rc == 0)
      rc = soap_result(&p, 0);
    break;
  case CALL_LIST:
    a[0].elt = "NewPortMappingIndex";
    a[0].val = k->index;
    a[1].elt = NULL;
    rc = soap_call(io, k, "GetGenericPortMappingEntry", a, &p);
    if (rc != 0)
      break;
    copy_str(k->o_rhost, 64, nv(&p, "NewRemoteHost"));
    copy_str(k->o_ext_port, 6, nv(&p, "NewExternalPort"));
    copy_str(k->o_proto, 4, nv(&p, "NewProtocol"));
    copy_str(k->o_client, 16, nv(&p, "NewInternalClient"));
    copy_str(k->o_port, 6, nv(&p, "NewInternalPort"));
    copy_str(k->o_enabled, 4, nv(&p, "NewEnabled"));
    copy_str(k->o_desc, 80, nv(&p, "NewPortMappingDescription"));
    copy_str(k->o_lease, 16, nv(&p, "NewLeaseDuration"));
    rc = nv(&p, "NewExternalPort") != NULL || nv(&p, "NewInternalClient") != NULL
             ? 0
             : UPNPCOMMAND_UNKNOWN_ERROR;
    rc = soap_result(&p, rc);
    break;
  case CALL_DESCRIBE:
    break;
  }
  k->rc = rc;
  ClearNameValueList(&p);
}

static int is_query(const upnp_call_t *k) {
  return k->kind != CALL_ADD && k->kind != CALL_ADDANY && k->kind != CALL_DELETE;
}

/* Q10: an add that succeeded for a mapping that is gone becomes the
 * delete that undoes it (the call keeps its URL, service and protocol). */
static int undo_add(upnp_call_t *k) {
  if ((k->kind != CALL_ADD && k->kind != CALL_ADDANY) || !k->cleanup || k->rc != 0)
    return 0;
  if (k->kind == CALL_ADDANY)
    copy_str(k->ext_port, sizeof k->ext_port, k->o_reserved);
  long port = strtol(k->ext_port, NULL, 10);
  if (port < 1 || port > 65535)
    return 0;
  k->kind = CALL_DELETE;
  k->rc = 0;
  return 1;
}

/* Free a call that is off the scheduler (its watchdog is not armed). */
static void call_release(upnp_call_t *k) {
  if (k == NULL)
    return;
  free(k->descr);
  free(k);
}

static void release_chain(upnp_call_t *k) {
  while (k != NULL) {
    upnp_call_t *next = k->wnext;
    call_release(k);
    k = next;
  }
}

static void worker_free(upnp_worker_t *w) {
  release_chain(w->todo);
  release_chain(w->done);
  release_chain(w->last);
  portmap_plat_wake_close(w->result_pipe);
  portmap_plat_wake_close(w->abort_pipe);
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
  free(w);
}

/* Drop one reference; the last one frees the context. */
static void worker_unref(upnp_worker_t *w) {
  pthread_mutex_lock(&w->mu);
  int last = --w->refs == 0;
  pthread_mutex_unlock(&w->mu);
  if (last)
    worker_free(w);
}

static void *worker_main(void *arg) {
  upnp_worker_t *w = arg;
  pthread_mutex_lock(&w->mu);
  for (;;) {
    while (!w->orphaned && w->todo == NULL)
      pthread_cond_wait(&w->cv, &w->mu);
    upnp_call_t *k = w->todo;
    if (k != NULL)
      w->todo = NULL;
    else if ((k = w->last) != NULL)
      w->last = k->wnext;
    else
      break; /* orphaned, and every delete sent */
    k->wnext = NULL;
    w->running = k;
    upnp_io_t io;
    /* Q10: a late add is still heard (and undone); everything else ends
     * with the watchdog */
    io.deadline = portmap_plat_now_ms() + w->timeout_ms +
                  (k->kind == CALL_ADD || k->kind == CALL_ADDANY ? UPNP_LATE_ADD_MS : 0u);
    io.abort_fd = !w->orphaned && is_query(k) ? w->abort_pipe[0] : -1;
    pthread_mutex_unlock(&w->mu);
    run_call(k, &io);
    pthread_mutex_lock(&w->mu);
    w->running = NULL;
    if (!w->orphaned) {
      k->wnext = w->done;
      w->done = k;
      portmap_plat_wake_signal(w->result_pipe[1]);
    } else if (undo_add(k)) {
      k->wnext = w->last; /* nobody else will hear of it: undo it next */
      w->last = k;
    } else {
      call_release(k);
    }
  }
  w->exited = 1;
  pthread_cond_broadcast(&w->cv);
  int last = --w->refs == 0;
  pthread_mutex_unlock(&w->mu);
  if (last)
    worker_free(w);
  return NULL;
}

/* ---------- the worker's context, from the scheduler's side ---------- */

static uint32_t call_limit_ms(const upnp_state_t *st) {
  return st->c->cfg.upnp_timeout_ms > 0 ? st->c->cfg.upnp_timeout_ms : UPNP_DEFAULT_TIMEOUT_MS;
}

static int worker_ensure(upnp_state_t *st) {
  if (st->w != NULL)
    return 0;
  upnp_worker_t *w = calloc(1, sizeof *w);
  if (w == NULL)
    return -1;
  w->result_pipe[0] = w->result_pipe[1] = w->abort_pipe[0] = w->abort_pipe[1] = -1;
  w->refs = 2;
  w->timeout_ms = call_limit_ms(st);
  pthread_condattr_t ca;
  if (pthread_condattr_init(&ca) != 0) {
    free(w);
    return -1;
  }
  int ok =
      pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 && pthread_cond_init(&w->cv, &ca) == 0;
  pthread_condattr_destroy(&ca);
  if (!ok) {
    free(w);
    return -1;
  }
  if (pthread_mutex_init(&w->mu, NULL) != 0) {
    pthread_cond_destroy(&w->cv);
    free(w);
    return -1;
  }
  if (portmap_plat_wake_open(w->result_pipe) != 0 || portmap_plat_wake_open(w->abort_pipe) != 0 ||
      pthread_create(&w->thread, NULL, worker_main, w) != 0) {
    worker_free(w); /* closes only the pipes it finds open */
    return -1;
  }
  st->w = w;
  return 0;
}

/* ---------- calls ---------- */

/* Free a call of the scheduler's (its watchdog may be armed). */
static void call_free(upnp_call_t *k) {
  if (k == NULL)
    return;
  portmap_sched_cancel(&k->st->c->sched, &k->watchdog);
  call_release(k);
}

static void on_watchdog(portmap_timer_t *t, uint64_t now);
static void on_stuck(portmap_timer_t *t, uint64_t now);

static upnp_call_t *call_new(upnp_state_t *st, enum call_kind kind, enum call_purpose purpose) {
  upnp_call_t *k = calloc(1, sizeof *k);
  if (k == NULL)
    return NULL;
  k->st = st;
  k->kind = kind;
  k->purpose = purpose;
  k->gen = st->gw.gen;
  portmap_timer_init(&k->watchdog, on_watchdog, k);
  if (st->gw.ready) {
    copy_str(k->url, sizeof k->url, st->gw.control_url);
    copy_str(k->service, sizeof k->service, st->gw.service);
  }
  copy_str(k->client, sizeof k->client, st->client);
  return k;
}

static int port_held(upnp_state_t *st, const char *proto, uint16_t port);

/* Hand the next queued call to the worker when it is free. */
static void pump(upnp_state_t *st, uint64_t now) {
  upnp_call_t *k = NULL;
  while (st->busy == NULL && st->q_head != NULL) {
    k = st->q_head;
    st->q_head = k->qnext;
    if (st->q_head == NULL)
      st->q_tail = NULL;
    k->qnext = NULL;
    long port = strtol(k->ext_port, NULL, 10);
    if (k->purpose == FOR_CLEANUP && port > 0 && port <= 65535 &&
        port_held(st, k->proto, (uint16_t)port)) {
      call_free(k); /* a mapping took that port again meanwhile: keep it */
      k = NULL;
      continue;
    }
    break;
  }
  if (k == NULL)
    return;
  st->busy = k;
  arm(st, &k->watchdog, now + call_limit_ms(st));
  pthread_mutex_lock(&st->w->mu);
  st->w->todo = k;
  pthread_cond_signal(&st->w->cv);
  pthread_mutex_unlock(&st->w->mu);
}

static int submit(upnp_state_t *st, upnp_call_t *k, uint64_t now) {
  if (worker_ensure(st) != 0) {
    portmap_log(st->c, PORTMAP_LOG_ERROR, "upnp: cannot start the worker thread");
    call_free(k);
    return -1;
  }
  if (st->q_tail != NULL)
    st->q_tail->qnext = k;
  else
    st->q_head = k;
  st->q_tail = k;
  if (st->busy != NULL && st->busy->timed_out && !portmap_timer_pending(&st->stuck))
    arm(st, &st->stuck, now + call_limit_ms(st)); /* the worker is still stuck: bound the wait */
  pump(st, now);
  return 0;
}

static void log_call(upnp_state_t *st, const upnp_call_t *k, int rc) {
  portmap_client_t *c = st->c;
  if (c->cfg.log_cb == NULL || c->cfg.log_level < PORTMAP_LOG_DEBUG)
    return;
  char r[96];
  rc_text(rc, r, sizeof r);
  int out = rc == 0 && !k->timed_out;
  switch (k->kind) {
  case CALL_DESCRIBE:
    portmap_log(c, PORTMAP_LOG_DEBUG, "upnp: GET %s -> %s (HTTP %d, %zu WAN services)", k->url, r,
                out ? k->http_status : 0, out && k->descr ? k->descr->n_services : 0);
    break;
  case CALL_STATUS:
    portmap_log(c, PORTMAP_LOG_DEBUG, "upnp: %s GetStatusInfo() -> %s NewConnectionStatus=%s",
                k->service, r, out ? k->o_status : "");
    break;
  case CALL_EXTIP:
    portmap_log(c, PORTMAP_LOG_DEBUG,
                "upnp: %s GetExternalIPAddress() -> %s NewExternalIPAddress=%s", k->service, r,
                out ? k->o_extip : "");
    break;
  case CALL_ADD:
  case CALL_ADDANY:
    portmap_log(c, PORTMAP_LOG_DEBUG,
                "upnp: %s %s(NewRemoteHost=, NewExternalPort=%s, NewProtocol=%s, "
                "NewInternalPort=%s, NewInternalClient=%s, NewEnabled=1, "
                "NewPortMappingDescription=%s, NewLeaseDuration=%s) -> %s%s%s",
                k->service, k->kind == CALL_ADD ? "AddPortMapping" : "AddAnyPortMapping",
                k->ext_port, k->proto, k->int_port, k->client, k->desc, k->lease, r,
                out && k->kind == CALL_ADDANY ? " NewReservedPort=" : "",
                out && k->kind == CALL_ADDANY ? k->o_reserved : "");
    break;
  case CALL_GET:
    portmap_log(c, PORTMAP_LOG_DEBUG,
                "upnp: %s GetSpecificPortMappingEntry(NewExternalPort=%s, NewProtocol=%s) -> %s "
                "NewInternalClient=%s NewInternalPort=%s NewLeaseDuration=%s",
                k->service, k->ext_port, k->proto, r, out ? k->o_client : "", out ? k->o_port : "",
                out ? k->o_lease : "");
    break;
  case CALL_DELETE:
    portmap_log(c, PORTMAP_LOG_DEBUG,
                "upnp: %s DeletePortMapping(NewExternalPort=%s, NewProtocol=%s) -> %s", k->service,
                k->ext_port, k->proto, r);
    break;
  case CALL_LIST:
    portmap_log(c, PORTMAP_LOG_DEBUG,
                "upnp: %s GetGenericPortMappingEntry(NewPortMappingIndex=%s) -> %s %s %s %s:%s",
                k->service, k->index, r, out ? k->o_proto : "", out ? k->o_ext_port : "",
                out ? k->o_client : "", out ? k->o_port : "");
    break;
  }
}

/* Route a result (or a timeout) to whoever asked. */
static void dispatch(upnp_state_t *st, upnp_call_t *k, int rc, uint64_t now) {
  if (rc == 0 || rc > 0)
    st->http_failures = 0; /* the gateway answered */
  switch (k->purpose) {
  case FOR_MAP:
    if (k->pm != NULL)
      pm_on_result(k->pm, k, rc, now);
    else
      orphan_result(st, k, rc);
    break;
  case FOR_DISCOVERY:
    disc_on_result(st, k, rc, now);
    break;
  case FOR_LIST:
    list_on_result(st, k, rc, now);
    break;
  case FOR_CLEANUP:
    if (rc != 0 && rc != UPNP_E_NO_SUCH_ENTRY)
      portmap_log(st->c, PORTMAP_LOG_WARN,
                  "upnp: could not delete port %s/%s on the gateway; it may stay there",
                  k->ext_port, k->proto);
    break;
  }
}

static void on_watchdog(portmap_timer_t *t, uint64_t now) {
  upnp_call_t *k = t->ctx;
  upnp_state_t *st = k->st;
  k->timed_out = 1;
  portmap_log(st->c, PORTMAP_LOG_INFO, "upnp: no answer from %s within %u ms", k->url,
              st->c->cfg.upnp_timeout_ms);
  log_call(st, k, UPNP_RC_TIMEOUT);
  if (k->kind == CALL_ADD || k->kind == CALL_ADDANY)
    k->cleanup = 1; /* Q10: if it succeeds after all, undo it */
  upnp_map_t *pm = k->pm;
  if (pm != NULL) {
    pm->call = NULL;
    k->pm = NULL; /* the mapping may end before the call comes back */
    pm_on_result(pm, k, UPNP_RC_TIMEOUT, now);
  } else if (k->purpose != FOR_MAP) {
    dispatch(st, k, UPNP_RC_TIMEOUT, now);
  }
  /* The worker is still on it (its own deadline ends it at about the same
   * time): nothing else goes to the gateway before it comes back (Q20), but
   * the queue must not wait for ever. */
  arm(st, &st->stuck, now + call_limit_ms(st));
}

/* The worker is stuck in a call that timed out: fail what waits behind it. */
static void on_stuck(portmap_timer_t *t, uint64_t now) {
  upnp_state_t *st = t->ctx;
  if (st->busy == NULL)
    return;
  /* what waits now; calls submitted meanwhile wait for the next round */
  upnp_call_t *list = st->q_head;
  st->q_head = st->q_tail = NULL;
  while (list != NULL) {
    upnp_call_t *k = list;
    list = k->qnext;
    k->qnext = NULL;
    k->timed_out = 1;
    if (k->pm != NULL) {
      upnp_map_t *pm = k->pm;
      pm->call = NULL;
      k->pm = NULL;
      pm_on_result(pm, k, UPNP_RC_TIMEOUT, now);
    } else {
      dispatch(st, k, UPNP_RC_TIMEOUT, now);
    }
    call_free(k);
  }
}

static void on_call_back(upnp_state_t *st, upnp_call_t *k, uint64_t now) {
  if (st->busy == k)
    st->busy = NULL;
  portmap_sched_cancel(&st->c->sched, &k->watchdog);
  portmap_sched_cancel(&st->c->sched, &st->stuck);
  if (k->timed_out) {
    /* its result was given up on; only a successful add matters (Q10) */
    if (k->purpose == FOR_MAP)
      orphan_result(st, k, k->rc);
  } else {
    log_call(st, k, k->rc);
    dispatch(st, k, k->rc, now);
  }
  call_free(k);
}

static void drain_worker(upnp_state_t *st, uint64_t now) {
  upnp_worker_t *w = st->w;
  if (w == NULL)
    return;
  portmap_plat_wake_drain(w->result_pipe[0]);
  pthread_mutex_lock(&w->mu);
  upnp_call_t *done = w->done;
  w->done = NULL;
  pthread_mutex_unlock(&w->mu);
  while (done != NULL) {
    upnp_call_t *k = done;
    done = k->wnext;
    on_call_back(st, k, now);
  }
  pump(st, now);
}

/* ---------- cleanup (Q10) ---------- */

static int port_held(upnp_state_t *st, const char *proto, uint16_t port) {
  for (portmap_mapping_t *m = st->c->mappings; m != NULL; m = m->next) {
    upnp_map_t *pm = pm_of(m);
    if (pm != NULL && pm->added && pm->ext_port == port &&
        strcmp(proto_name(m->protocol), proto) == 0)
      return 1;
  }
  return 0;
}

/* Delete an entry that no mapping owns any more. */
static void cleanup_submit(upnp_state_t *st, const char *proto, uint16_t port, uint64_t now) {
  if (port == 0 || port_held(st, proto, port))
    return;
  /* the last control URL known, even while the gateway is being looked for again */
  if (st->gw.control_url[0] == '\0') {
    portmap_log(st->c, PORTMAP_LOG_WARN,
                "upnp: no gateway to delete port %u/%s on; it may stay there", port, proto);
    return;
  }
  portmap_log(st->c, PORTMAP_LOG_INFO, "upnp: deleting port %u/%s that no mapping owns (Q10)", port,
              proto);
  upnp_call_t *k = call_new(st, CALL_DELETE, FOR_CLEANUP);
  if (k == NULL)
    return;
  copy_str(k->url, sizeof k->url, st->gw.control_url);
  copy_str(k->service, sizeof k->service, st->gw.service);
  snprintf(k->ext_port, sizeof k->ext_port, "%u", port);
  copy_str(k->proto, sizeof k->proto, proto);
  (void)submit(st, k, now);
}

/* A mapping call whose mapping is gone, or whose result came too late. */
static void orphan_result(upnp_state_t *st, upnp_call_t *k, int rc) {
  if (rc != 0 || !k->cleanup || (k->kind != CALL_ADD && k->kind != CALL_ADDANY))
    return;
  long port = strtol(k->kind == CALL_ADDANY ? k->o_reserved : k->ext_port, NULL, 10);
  if (port < 1 || port > 65535)
    return;
  cleanup_submit(st, k->proto, (uint16_t)port, portmap_client_now(st->c));
}

/* ---------- SSDP ---------- */

static int ssdp_open(upnp_state_t *st) {
  portmap_client_t *c = st->c;
  if (st->fd >= 0)
    return 0;
  int fd = portmap_plat_socket(0, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_storage ss;
  socklen_t sl = portmap_net_to_sockaddr(st->local, 0, 0, &ss);
  if (bind(fd, (struct sockaddr *)&ss, sl) != 0) {
    close(fd);
    return -1;
  }
  if (portmap_ssdp_multicast_allowed(c->gateway4, c->cfg.ssdp_multicast)) {
    /* Q3: multicast from our own interface, TTL 2 (UDA 1.1 section 1.1.2) */
    struct in_addr ifa;
    memcpy(&ifa, st->local + 12, 4);
    (void)setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &ifa, sizeof ifa);
    unsigned char ttl = 2, loop = 0;
    (void)setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl);
    (void)setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof loop);
  }
  st->fd = fd;
  return 0;
}

static void ssdp_send_to(upnp_state_t *st, const uint8_t addr[16], uint16_t port, const char *host,
                         const char *target) {
  portmap_client_t *c = st->c;
  char buf[512];
  size_t len = portmap_ssdp_build_msearch(buf, sizeof buf, host, target, 1);
  if (len == 0)
    return;
  struct sockaddr_storage ss;
  socklen_t sl = portmap_net_to_sockaddr(addr, port, 0, &ss);
  portmap_trace(c, 1, addr, port, (const uint8_t *)buf, len);
  if (sendto(st->fd, buf, len, 0, (struct sockaddr *)&ss, sl) < 0)
    portmap_log(c, PORTMAP_LOG_DEBUG, "upnp: M-SEARCH sendto failed: %s", strerror(errno));
  else
    c->stats.sent++;
}

/* One datagram per search target (Q2, Q28), unicast to the gateway and,
 * when allowed, multicast (Q3). */
static void ssdp_send_all(upnp_state_t *st) {
  portmap_client_t *c = st->c;
  static const char *const targets[] = {PORTMAP_SSDP_ST_IGD1, PORTMAP_SSDP_ST_IGD2,
                                        PORTMAP_SSDP_ST_ROOT, PORTMAP_SSDP_ST_DSLF};
  uint16_t port = c->cfg.ssdp_port != 0 ? c->cfg.ssdp_port : PORTMAP_SSDP_PORT;
  char host[64];
  portmap_addr_t gw;
  memcpy(gw.bytes, c->gateway4, 16);
  char gtext[PORTMAP_ADDRSTRLEN];
  portmap_addr_format(&gw, gtext, sizeof gtext);
  snprintf(host, sizeof host, "%s:%u", gtext, port);
  int mcast = portmap_ssdp_multicast_allowed(c->gateway4, c->cfg.ssdp_multicast);
  uint8_t group[16];
  addr_zero4(group);
  group[12] = 239;
  group[13] = 255;
  group[14] = 255;
  group[15] = 250;
  for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
    ssdp_send_to(st, c->gateway4, port, host, targets[i]);
    if (mcast)
      ssdp_send_to(st, group, PORTMAP_SSDP_PORT, "239.255.255.250:1900", targets[i]);
  }
}

static int st_searched(const char *s) {
  return strcmp(s, PORTMAP_SSDP_ST_IGD1) == 0 || strcmp(s, PORTMAP_SSDP_ST_IGD2) == 0 ||
         strcmp(s, PORTMAP_SSDP_ST_ROOT) == 0 || strcmp(s, PORTMAP_SSDP_ST_DSLF) == 0 ||
         portmap_ssdp_st_is_igd(s);
}

static void disc_finish_ssdp(upnp_state_t *st, uint64_t now);

static void disc_rearm(upnp_state_t *st) {
  upnp_disc_t *d = &st->disc;
  uint64_t at = d->deadline;
  if (!d->resent && d->resend_at < at)
    at = d->resend_at;
  if (d->grace_at != 0 && d->grace_at < at)
    at = d->grace_at;
  arm(st, &d->timer, at);
}

static void on_ssdp(upnp_state_t *st, const uint8_t from[16], uint16_t port, const uint8_t *data,
                    size_t len, uint64_t now) {
  portmap_client_t *c = st->c;
  upnp_disc_t *d = &st->disc;
  c->stats.received++;
  portmap_trace(c, 0, from, port, data, len);
  if (d->phase != DISC_SSDP) {
    c->stats.unmatched++;
    return;
  }
  portmap_ssdp_reply_t r;
  int rc = portmap_ssdp_parse(data, len, &r);
  if (rc != PORTMAP_SSDP_OK) {
    c->stats.malformed++;
    portmap_log(c, PORTMAP_LOG_DEBUG, "upnp: SSDP reply dropped (parse error %d)", rc);
    return;
  }
  if (r.st[0] != '\0' && !st_searched(r.st)) {
    c->stats.unmatched++;
    return;
  }
  portmap_ssdp_url_t u;
  rc = portmap_ssdp_location_ok(r.location, c->gateway4, &u);
  if (rc != PORTMAP_SSDP_OK) {
    c->stats.malformed++;
    portmap_log(c, PORTMAP_LOG_INFO, "upnp: SSDP LOCATION refused (%d, Q4)", rc);
    return;
  }
  /* Q1: any source port of the gateway. Q4: another host only for itself. */
  int from_gw = memcmp(from, c->gateway4, 16) == 0;
  if (!from_gw && memcmp(u.addr, from, 16) != 0) {
    c->stats.spoofed++;
    return;
  }
  int igd = portmap_ssdp_st_is_igd(r.st);
  int rank = (from_gw ? 0 : 8) + (memcmp(u.addr, c->gateway4, 16) == 0 ? 0 : 4) + (igd ? 0 : 2);
  size_t i;
  for (i = 0; i < d->n_cand; i++)
    if (strcmp(d->cand[i].location, u.canonical) == 0)
      break;
  if (i < d->n_cand) {
    if (rank < d->cand[i].rank) /* Q25: the same LOCATION once, at its best rank */
      d->cand[i].rank = rank;
  } else if (d->n_cand < UPNP_MAX_CANDIDATES) {
    upnp_cand_t *k = &d->cand[d->n_cand++];
    copy_str(k->location, sizeof k->location, u.canonical);
    copy_str(k->server, sizeof k->server, r.server);
    k->rank = rank;
  }
  if (!from_gw)
    return;
  if (!d->have_rtt) {
    d->have_rtt = 1;
    d->rtt_ms = (uint32_t)(now - d->started);
  }
  if (igd) {
    disc_finish_ssdp(st, now);
  } else if (d->grace_at == 0) {
    d->grace_at = now + UPNP_SSDP_GRACE_MS;
    disc_rearm(st);
  }
}

static void ssdp_read(upnp_state_t *st, uint64_t now) {
  for (int i = 0; i < UPNP_MAX_READS && st->fd >= 0; i++) {
    uint8_t buf[PORTMAP_SSDP_MAX_DATAGRAM + 1]; /* one more: longer is refused */
    uint8_t from[16];
    uint16_t port;
    size_t len;
    int from_ok;
    int r = portmap_plat_recv(st->fd, PORTMAP_PLAT_RECV_TRUNC, buf, sizeof buf, &len, from, &port,
                              &from_ok);
    if (r != PORTMAP_PLAT_RECV_OK)
      break;
    if (!from_ok) {
      st->c->stats.malformed++;
      continue;
    }
    on_ssdp(st, from, port, buf, len > sizeof buf ? sizeof buf : len, now);
  }
}

/* ---------- discovery ---------- */

static void probe_report(upnp_state_t *st, portmap_status_t status) {
  upnp_disc_t *d = &st->disc;
  upnp_gw_t *g = &st->gw;
  portmap_probe_backend_t r;
  memset(&r, 0, sizeof r);
  r.gateway_result = -1;
  if (d->have_rtt)
    r.rtt_ms = d->rtt_ms;
  if (status == PORTMAP_OK) {
    r.available = 1;
    r.error = PORTMAP_OK;
    r.rtt_ms = g->rtt_ms;
    copy_str(r.location, sizeof r.location, g->location);
    copy_str(r.device_name, sizeof r.device_name, g->device_name);
    copy_str(r.service_type, sizeof r.service_type, g->service);
    copy_str(r.connection_status, sizeof r.connection_status, g->status);
    copy_str(r.control_url, sizeof r.control_url, g->control_url);
    r.igd_version = g->igd_version;
    if (g->have_ext) {
      portmap_addr_t a;
      memcpy(a.bytes, g->ext, 16);
      portmap_addr_format(&a, r.external_address, sizeof r.external_address);
      r.external_is_private = portmap_net_is_private(g->ext); /* Q17 */
    }
  } else {
    r.error = status;
    r.gateway_result = d->fail_result;
    if (d->n_cand > 0) {
      copy_str(r.location, sizeof r.location, d->cand[0].location);
      copy_str(r.device_name, sizeof r.device_name, d->cand[0].server);
    }
  }
  portmap_probe_report(st->c, PORTMAP_BACKEND_UPNP, &r);
}

static void pm_resume(upnp_map_t *pm, uint64_t now);
static void pm_begin(upnp_map_t *pm, enum map_seq seq, uint64_t now);
static void pm_finish(upnp_map_t *pm, portmap_event_t ev, portmap_status_t status, int cleanup);
static void list_next(upnp_state_t *st, uint64_t now);
static void list_finish(upnp_state_t *st, portmap_status_t status);

static void disc_done(upnp_state_t *st, portmap_status_t status, uint64_t now) {
  upnp_disc_t *d = &st->disc;
  portmap_client_t *c = st->c;
  d->phase = DISC_IDLE;
  portmap_sched_cancel(&c->sched, &d->timer);
  if (status != PORTMAP_OK)
    portmap_log(c, PORTMAP_LOG_INFO, "upnp: no usable IGD: %s", portmap_strerror(status));
  if (st->probe_pending) {
    st->probe_pending = 0;
    probe_report(st, status);
  }
  if (st->list_waiting) {
    st->list_waiting = 0;
    if (status == PORTMAP_OK)
      list_next(st, now);
    else
      list_finish(st, status);
  }
  portmap_mapping_t *next;
  for (portmap_mapping_t *m = c->mappings; m != NULL; m = next) {
    next = m->next;
    upnp_map_t *pm = pm_of(m);
    if (pm == NULL || !pm->waiting_gw)
      continue;
    pm->waiting_gw = 0;
    if (pm->revoking) {
      if (!pm->added)
        pm_finish(pm, PORTMAP_EVENT_DELETED, PORTMAP_OK, 0);
      else if (status == PORTMAP_OK)
        pm_begin(pm, SEQ_DELETE, now);
      else
        pm_finish(pm, PORTMAP_EVENT_FAILED, status, 0);
    } else if (status == PORTMAP_OK) {
      pm_resume(pm, now);
    } else {
      m->info.gateway_result = d->fail_result;
      pm_fail(pm, status, now);
    }
  }
}

static void disc_describe_next(upnp_state_t *st, uint64_t now) {
  upnp_disc_t *d = &st->disc;
  if (d->cand_idx >= d->n_cand) {
    disc_done(st, d->fail_status, now);
    return;
  }
  d->phase = DISC_DESCRIBE;
  upnp_call_t *k = call_new(st, CALL_DESCRIBE, FOR_DISCOVERY);
  if (k == NULL) {
    disc_done(st, PORTMAP_ERR_NOMEM, now);
    return;
  }
  copy_str(k->url, sizeof k->url, d->cand[d->cand_idx].location);
  if (submit(st, k, now) != 0)
    disc_done(st, PORTMAP_ERR_SYSTEM, now);
}

static void disc_finish_ssdp(upnp_state_t *st, uint64_t now) {
  upnp_disc_t *d = &st->disc;
  portmap_sched_cancel(&st->c->sched, &d->timer);
  if (d->n_cand == 0) {
    disc_done(st, PORTMAP_ERR_TIMEOUT, now);
    return;
  }
  /* the gateway's own device first (Q4), IGD search targets before rootdevice */
  for (size_t i = 1; i < d->n_cand; i++) {
    upnp_cand_t tmp = d->cand[i];
    size_t j = i;
    while (j > 0 && d->cand[j - 1].rank > tmp.rank) {
      d->cand[j] = d->cand[j - 1];
      j--;
    }
    d->cand[j] = tmp;
  }
  d->cand_idx = 0;
  d->fail_status = PORTMAP_ERR_UNREACHABLE;
  disc_describe_next(st, now);
}

static void on_disc_timer(portmap_timer_t *t, uint64_t now) {
  upnp_state_t *st = t->ctx;
  upnp_disc_t *d = &st->disc;
  if (d->phase != DISC_SSDP)
    return;
  if (now >= d->deadline || (d->grace_at != 0 && now >= d->grace_at)) {
    disc_finish_ssdp(st, now);
    return;
  }
  if (!d->resent && now >= d->resend_at) {
    d->resent = 1; /* one repeat against a lost datagram */
    ssdp_send_all(st);
  }
  disc_rearm(st);
}

static void disc_start(upnp_state_t *st, uint64_t now) {
  portmap_client_t *c = st->c;
  upnp_disc_t *d = &st->disc;
  if (d->phase != DISC_IDLE)
    return; /* join the round under way */
  if (!c->have_gateway4) {
    disc_done(st, PORTMAP_ERR_NO_GATEWAY, now);
    return;
  }
  if (ensure_local(st) != 0 || ssdp_open(st) != 0) {
    disc_done(st, PORTMAP_ERR_SYSTEM, now);
    return;
  }
  portmap_sched_cancel(&c->sched, &d->timer);
  memset(d, 0, offsetof(upnp_disc_t, timer));
  d->fail_result = -1;
  d->phase = DISC_SSDP;
  uint32_t window = c->cfg.probe_timeout_ms > 0 ? c->cfg.probe_timeout_ms : UPNP_SSDP_DEFAULT_MS;
  d->started = now;
  d->deadline = now + window;
  d->resend_at = now + window / 2;
  ssdp_send_all(st);
  disc_rearm(st);
}

static int eval_tier(const upnp_eval_t *e) {
  if (!e->answered)
    return 5;
  int connected = strcasecmp(e->status, "Connected") == 0;
  int unknown = e->status[0] == '\0';
  if (!connected && !unknown)
    return 4;
  if (e->have_ext && !portmap_net_is_private(e->ext))
    return connected ? 0 : 1;
  return e->have_ext ? 2 : 3;
}

static void disc_choose(upnp_state_t *st, const upnp_eval_t *e, uint64_t now) {
  upnp_disc_t *d = &st->disc;
  const upnp_cand_t *cand = &d->cand[d->cand_idx];
  upnp_gw_t g;
  memset(&g, 0, sizeof g);
  g.ready = 1;
  g.gen = st->gw.gen + 1;
  copy_str(g.location, sizeof g.location, cand->location);
  copy_str(g.control_url, sizeof g.control_url, e->url);
  copy_str(g.service, sizeof g.service, e->svc.type);
  g.rank = e->svc.rank;
  g.igd_version = portmap_upnp_igd_version(d->device_type, e->svc.type);
  copy_str(g.device_name, sizeof g.device_name, d->friendly[0] ? d->friendly : cand->server);
  copy_str(g.status, sizeof g.status, e->status);
  g.have_ext = e->have_ext;
  memcpy(g.ext, e->ext, 16);
  g.ext_at = e->ext_at;
  g.rtt_ms = d->rtt_ms;
  /* Q9: the lease rule is the gateway's; keep it across re-discovery */
  g.permanent_only = st->gw.permanent_only && strcmp(st->gw.service, g.service) == 0;
  st->gw = g;
  st->http_failures = 0;
  portmap_log(st->c, PORTMAP_LOG_INFO, "upnp: using %s at %s (%s, %s)", g.service, g.control_url,
              g.status[0] ? g.status : "status unknown", g.device_name);
  disc_done(st, PORTMAP_OK, now);
}

static void disc_eval_next(upnp_state_t *st, uint64_t now) {
  upnp_disc_t *d = &st->disc;
  if (d->ev_idx >= d->n_ev) {
    /* Q5, Q29: nothing connected with a public address: the best seen */
    size_t best = 0;
    for (size_t i = 1; i < d->n_ev; i++)
      if (d->ev[i].tier < d->ev[best].tier)
        best = i;
    if (d->ev[best].tier >= 5) {
      d->cand_idx++;
      disc_describe_next(st, now);
      return;
    }
    disc_choose(st, &d->ev[best], now);
    return;
  }
  d->phase = DISC_EVAL;
  upnp_call_t *k = call_new(st, CALL_STATUS, FOR_DISCOVERY);
  if (k == NULL) {
    disc_done(st, PORTMAP_ERR_NOMEM, now);
    return;
  }
  copy_str(k->url, sizeof k->url, d->ev[d->ev_idx].url);
  copy_str(k->service, sizeof k->service, d->ev[d->ev_idx].svc.type);
  if (submit(st, k, now) != 0)
    disc_done(st, PORTMAP_ERR_SYSTEM, now);
}

static void disc_on_describe(upnp_state_t *st, upnp_call_t *k, int rc, uint64_t now) {
  upnp_disc_t *d = &st->disc;
  const char *location = d->cand[d->cand_idx].location;
  d->n_ev = 0;
  d->ev_idx = 0;
  if (rc != 0 || k->descr == NULL) {
    char why[96];
    if (rc == UPNPCOMMAND_INVALID_RESPONSE && k->http_status != 200 && !k->timed_out)
      snprintf(why, sizeof why, "HTTP %d", k->http_status);
    else
      rc_text(rc, why, sizeof why);
    portmap_log(st->c, PORTMAP_LOG_INFO, "upnp: cannot read the description at %s (%s)", location,
                why);
    d->cand_idx++;
    disc_describe_next(st, now);
    return;
  }
  const portmap_upnp_desc_t *desc = k->descr;
  for (size_t i = 0; i < desc->n_services && d->n_ev < PORTMAP_UPNP_MAX_SERVICES; i++) {
    upnp_eval_t *e = &d->ev[d->n_ev];
    memset(e, 0, sizeof *e);
    e->svc = desc->services[i];
    int urc = portmap_upnp_resolve_url(location, desc->url_base, e->svc.control_url,
                                       st->c->gateway4, e->url, sizeof e->url);
    if (urc != PORTMAP_SSDP_OK) {
      portmap_log(st->c, PORTMAP_LOG_INFO, "upnp: control URL of %s refused (%d, Q4)", e->svc.type,
                  urc);
      continue;
    }
    d->n_ev++;
  }
  /* Q6: IP:2, PPP:2, IP:1, PPP:1 (then dslforum, Q28), document order within */
  for (size_t i = 1; i < d->n_ev; i++) {
    upnp_eval_t tmp = d->ev[i];
    size_t j = i;
    while (j > 0 &&
           (d->ev[j - 1].svc.rank > tmp.svc.rank ||
            (d->ev[j - 1].svc.rank == tmp.svc.rank && d->ev[j - 1].svc.order > tmp.svc.order))) {
      d->ev[j] = d->ev[j - 1];
      j--;
    }
    d->ev[j] = tmp;
  }
  copy_str(d->friendly, sizeof d->friendly, desc->friendly_name);
  copy_str(d->device_type, sizeof d->device_type, desc->device_type);
  if (d->n_ev == 0) {
    portmap_log(st->c, PORTMAP_LOG_INFO, "upnp: %s describes no WAN connection service", location);
    d->cand_idx++;
    disc_describe_next(st, now);
    return;
  }
  disc_eval_next(st, now);
}

static void disc_on_result(upnp_state_t *st, upnp_call_t *k, int rc, uint64_t now) {
  upnp_disc_t *d = &st->disc;
  if (rc > 0)
    d->fail_result = rc;
  if (k->kind == CALL_DESCRIBE) {
    disc_on_describe(st, k, rc, now);
    return;
  }
  if (d->phase != DISC_EVAL || d->ev_idx >= d->n_ev)
    return;
  upnp_eval_t *e = &d->ev[d->ev_idx];
  if (k->kind == CALL_STATUS) {
    if (is_http_failure(rc) || rc == UPNP_RC_SYSTEM) {
      e->answered = 0;
      e->tier = 5;
      d->ev_idx++;
      disc_eval_next(st, now);
      return;
    }
    e->answered = 1;
    if (rc == 0 && !k->timed_out)
      copy_str(e->status, sizeof e->status, k->o_status);
    upnp_call_t *x = call_new(st, CALL_EXTIP, FOR_DISCOVERY);
    if (x == NULL) {
      disc_done(st, PORTMAP_ERR_NOMEM, now);
      return;
    }
    copy_str(x->url, sizeof x->url, e->url);
    copy_str(x->service, sizeof x->service, e->svc.type);
    if (submit(st, x, now) != 0)
      disc_done(st, PORTMAP_ERR_SYSTEM, now);
    return;
  }
  if (k->kind == CALL_EXTIP) {
    if (is_http_failure(rc) || rc == UPNP_RC_SYSTEM)
      e->answered = 0;
    else if (rc == 0) {
      e->have_ext = parse_ext(k->o_extip, e->ext); /* Q12 */
      e->ext_at = now;
    }
    e->tier = eval_tier(e);
    if (e->tier == 0) {
      disc_choose(st, e, now); /* Q5: connected with a public address */
      return;
    }
    d->ev_idx++;
    disc_eval_next(st, now);
  }
}

/* ---------- mappings ---------- */

static void pm_free(upnp_map_t *pm, int cleanup) {
  upnp_state_t *st = pm->st;
  portmap_client_t *c = st->c;
  portmap_sched_cancel(&c->sched, &pm->timer);
  portmap_sched_cancel(&c->sched, &pm->expiry);
  upnp_call_t *k = pm->call;
  if (k != NULL) {
    pm->call = NULL;
    k->pm = NULL; /* if it is not in the queue, it comes back as an orphan */
    if (k == st->busy) {
      if (k->kind == CALL_ADD || k->kind == CALL_ADDANY)
        k->cleanup = cleanup;
    } else {
      upnp_call_t **pp = &st->q_head;
      upnp_call_t *prev = NULL;
      while (*pp != NULL && *pp != k) {
        prev = *pp;
        pp = &(*pp)->qnext;
      }
      if (*pp == k) {
        *pp = k->qnext;
        if (st->q_tail == k)
          st->q_tail = prev;
        call_free(k);
      }
    }
  }
  int added = pm->added;
  uint16_t port = pm->ext_port;
  const char *proto = proto_name(pm->m->protocol);
  pm->added = 0;
  pm->m->be_data = NULL;
  free(pm);
  if (cleanup && added) /* Q10: nothing we added outlives the mapping */
    cleanup_submit(st, proto, port, portmap_client_now(c));
}

/* End the mapping: free our state first, then queue the final event. */
static void pm_finish(upnp_map_t *pm, portmap_event_t ev, portmap_status_t status, int cleanup) {
  portmap_mapping_t *m = pm->m;
  m->info.status = status;
  pm_free(pm, cleanup);
  portmap_mapping_emit(m, ev);
}

static void pm_wait_gw(upnp_map_t *pm, uint64_t now) {
  pm->waiting_gw = 1;
  disc_start(pm->st, now);
}

/* Issue one call for the mapping with its current parameters. */
static void pm_call(upnp_map_t *pm, enum call_kind kind, uint64_t now) {
  upnp_state_t *st = pm->st;
  portmap_mapping_t *m = pm->m;
  if (!st->gw.ready) {
    pm_wait_gw(pm, now); /* the sequence starts over when it is back */
    return;
  }
  upnp_call_t *k = call_new(st, kind, FOR_MAP);
  if (k == NULL) {
    pm_fail(pm, PORTMAP_ERR_NOMEM, now);
    return;
  }
  k->pm = pm;
  snprintf(k->ext_port, sizeof k->ext_port, "%u", pm->ext_port); /* Q8: never 0 */
  snprintf(k->int_port, sizeof k->int_port, "%u", m->internal_port);
  copy_str(k->proto, sizeof k->proto, proto_name(m->protocol));
  xml_escape(k->desc, sizeof k->desc,
             m->description_len > 0 ? m->description : UPNP_DEFAULT_DESCRIPTION);
  snprintf(k->lease, sizeof k->lease, "%u", pm->lease);
  pm->call = k;
  if (submit(st, k, now) != 0) {
    pm->call = NULL;
    pm_fail(pm, PORTMAP_ERR_SYSTEM, now);
  }
}

static void pm_add(upnp_map_t *pm, uint64_t now) {
  pm->lease = pm->st->gw.permanent_only ? 0 : pm->m->lifetime; /* Q9 */
  pm_call(pm, CALL_ADD, now);
}

static void pm_resume(upnp_map_t *pm, uint64_t now) {
  const upnp_gw_t *g = &pm->st->gw;
  switch (pm->seq) {
  case SEQ_CREATE:
    if (g->have_ext && now - g->ext_at <= UPNP_EXT_FRESH_MS) {
      /* discovery has just asked (Q10 holds: the query came first) */
      pm->have_ext = 1;
      memcpy(pm->ext_addr, g->ext, 16);
      pm_add(pm, now);
      break;
    }
    pm_call(pm, CALL_EXTIP, now); /* Q10: the fallible query before the add */
    break;
  case SEQ_RENEW:
    pm_call(pm, CALL_EXTIP, now); /* Q10: the fallible query before the add */
    break;
  case SEQ_DELETE:
    pm_call(pm, CALL_DELETE, now);
    break;
  case SEQ_DELCHECK:
    pm_call(pm, CALL_GET, now);
    break;
  case SEQ_IDLE:
    break;
  }
}

static void pm_begin(upnp_map_t *pm, enum map_seq seq, uint64_t now) {
  pm->seq = seq;
  pm->conflict_try = 0;
  pm->tried_any = 0;
  pm->tried_permanent = 0;
  pm->rediscovered = 0;
  pm->http_retry = 0;
  pm->vanished = 0;
  portmap_sched_cancel(&pm->st->c->sched, &pm->timer);
  if (!pm->st->gw.ready) {
    pm_wait_gw(pm, now);
    return;
  }
  pm_resume(pm, now);
}

static void pm_retry_later(upnp_map_t *pm, uint64_t now) {
  portmap_mapping_t *m = pm->m;
  uint64_t wait = UPNP_RETRY_MS;
  if (m->expiry_ms > now && (m->expiry_ms - now) / 2 < wait)
    wait = (m->expiry_ms - now) / 2; /* try again before the lease ends */
  if (wait < 1000u)
    wait = 1000u;
  pm->seq = SEQ_IDLE;
  arm(pm->st, &pm->timer, now + wait);
}

/* A sequence could not finish. New mappings and deletes end here; a
 * mapping that exists keeps trying (LOST comes from the expiry). */
static void pm_fail(upnp_map_t *pm, portmap_status_t status, uint64_t now) {
  portmap_mapping_t *m = pm->m;
  if (pm->seq == SEQ_DELETE || pm->seq == SEQ_DELCHECK || pm->revoking) {
    pm_finish(pm, PORTMAP_EVENT_FAILED, status, 0);
    return;
  }
  if (!m->ever_mapped || (m->flags & PORTMAP_FLAG_ONCE)) {
    pm_finish(pm, PORTMAP_EVENT_FAILED, status, 1);
    return;
  }
  m->info.status = status;
  if (pm->vanished || (pm->permanent && !pm->added)) {
    /* Q14: it is gone from the gateway and could not be put back */
    m->info.lifetime = 0;
    m->expiry_ms = 0;
    portmap_sched_cancel(&pm->st->c->sched, &pm->expiry);
    portmap_mapping_emit(m, PORTMAP_EVENT_LOST);
  }
  pm_retry_later(pm, now);
}

static void pm_success(upnp_map_t *pm, uint64_t now) {
  upnp_state_t *st = pm->st;
  portmap_mapping_t *m = pm->m;
  uint8_t ext[16];
  if (pm->have_ext)
    memcpy(ext, pm->ext_addr, 16);
  else
    addr_zero4(ext);
  int first = !m->ever_mapped;
  int changed = !first && (m->info.external_port != pm->ext_port ||
                           memcmp(m->info.external_address.bytes, ext, 16) != 0);
  m->info.backend = PORTMAP_BACKEND_UPNP;
  m->info.status = PORTMAP_OK;
  m->info.gateway_result = 0;
  m->info.external_port = pm->ext_port;
  memcpy(m->info.external_address.bytes, ext, 16);
  /* lifetime 0 means a permanent lease (Q9) */
  m->info.lifetime = pm->permanent ? 0 : pm->lease;
  if (!pm->permanent)
    m->expiry_ms = now + (uint64_t)pm->lease * 1000u;
  else if (m->flags & PORTMAP_FLAG_ONCE)
    m->expiry_ms = now + (uint64_t)m->lifetime * 1000u; /* our own end for it */
  else
    m->expiry_ms = 0;
  if (m->expiry_ms != 0 && (m->flags & PORTMAP_FLAG_ONCE || !pm->permanent))
    arm(st, &pm->expiry, m->expiry_ms);
  else
    portmap_sched_cancel(&st->c->sched, &pm->expiry);
  pm->seq = SEQ_IDLE;
  pm->vanished = 0;
  if (m->flags & PORTMAP_FLAG_ONCE)
    portmap_sched_cancel(&st->c->sched, &pm->timer);
  else if (pm->permanent)
    arm(st, &pm->timer, now + UPNP_PERMANENT_VERIFY_MS); /* Q9: our own timer */
  else
    arm(st, &pm->timer, now + (uint64_t)pm->lease * 500u); /* at half the lease */
  portmap_mapping_emit(m, first     ? PORTMAP_EVENT_MAPPED
                          : changed ? PORTMAP_EVENT_CHANGED
                                    : PORTMAP_EVENT_RENEWED);
}

/* Q13: "connection refused" or silence: retry once, then find the gateway
 * again (its control port may have moved after a reboot). */
static void pm_http_failure(upnp_map_t *pm, upnp_call_t *k, int rc, uint64_t now) {
  upnp_state_t *st = pm->st;
  portmap_status_t status = rc == UPNP_RC_TIMEOUT ? PORTMAP_ERR_TIMEOUT : PORTMAP_ERR_UNREACHABLE;
  if (k->gen != st->gw.gen && st->gw.ready && pm->http_retry < 2) {
    pm->http_retry++; /* the gateway was found again meanwhile */
    pm_resume(pm, now);
    return;
  }
  st->http_failures++;
  if (st->http_failures < UPNP_REDISCOVER_AFTER && pm->http_retry == 0) {
    pm->http_retry++;
    pm_call(pm, k->kind, now);
    return;
  }
  if (!pm->rediscovered) {
    pm->rediscovered = 1;
    pm->http_retry = 0;
    portmap_log(st->c, PORTMAP_LOG_INFO,
                "upnp: %u failed requests to %s: looking for the gateway again (Q13)",
                st->http_failures, k->url);
    if (k->gen == st->gw.gen)
      st->gw.ready = 0;
    pm_wait_gw(pm, now);
    return;
  }
  pm->m->info.gateway_result = -1;
  pm_fail(pm, status, now);
}

static void pm_on_extip(upnp_map_t *pm, upnp_call_t *k, int rc, uint64_t now) {
  if (rc == 0) {
    pm->have_ext = parse_ext(k->o_extip, pm->ext_addr); /* Q12 */
    if (!pm->have_ext)
      portmap_log(pm->st->c, PORTMAP_LOG_INFO,
                  "upnp: the gateway reports no usable external address (\"%s\", Q12)", k->o_extip);
  }
  /* a SOAP error here is not fatal: map without knowing the address */
  if (pm->seq == SEQ_RENEW)
    pm_call(pm, CALL_GET, now);
  else
    pm_add(pm, now);
}

static void pm_next_port(upnp_map_t *pm, uint64_t now, int rc) {
  portmap_mapping_t *m = pm->m;
  if (++pm->conflict_try > UPNP_CONFLICT_TRIES) {
    portmap_log(pm->st->c, PORTMAP_LOG_INFO, "upnp: no free external port after %u tries (Q11)",
                UPNP_CONFLICT_TRIES);
    m->info.gateway_result = rc;
    pm_fail(pm, PORTMAP_ERR_REFUSED, now);
    return;
  }
  pm->added = 0; /* a conflict: that port is not ours */
  pm->ext_port = conflict_port(pm->st, m, pm->conflict_try, pm->ext_port);
  pm_add(pm, now);
}

static void pm_on_add(upnp_map_t *pm, upnp_call_t *k, int rc, uint64_t now) {
  upnp_state_t *st = pm->st;
  portmap_mapping_t *m = pm->m;
  if (rc == 0) {
    pm->permanent = pm->lease == 0;
    if (pm->tried_permanent && !st->gw.permanent_only) {
      st->gw.permanent_only = 1; /* Q9: remember it for this gateway */
      portmap_log(st->c, PORTMAP_LOG_INFO, "upnp: the gateway grants permanent leases only");
    }
    pm_success(pm, now);
    return;
  }
  if ((rc == UPNP_E_ONLY_PERMANENT || rc == UPNP_E_INVALID_ARGS) && pm->lease != 0 &&
      !pm->tried_permanent) {
    pm->tried_permanent = 1; /* Q9: 725 (MikroTik) or 402 (ARRIS) */
    pm->lease = 0;
    pm_call(pm, k->kind == CALL_ADDANY ? CALL_ADDANY : CALL_ADD, now);
    return;
  }
  int conflict = rc == UPNP_E_CONFLICT || rc == UPNP_E_ACTION_FAILED || rc == UPNP_E_CONFLICT_OTHER;
  int any_unusable = k->kind == CALL_ADDANY &&
                     (rc == UPNP_E_INVALID_ACTION || rc == UPNP_E_OPTIONAL_ACTION || rc < 0);
  if (conflict && k->kind == CALL_ADD && st->gw.rank % 4 < 2 && !pm->tried_any) {
    pm->tried_any = 1; /* IGDv2: let the gateway pick a free port */
    pm_call(pm, CALL_ADDANY, now);
    return;
  }
  if (conflict || any_unusable) {
    pm_next_port(pm, now, rc); /* Q11 */
    return;
  }
  if (rc == UPNP_E_SAME_PORT_REQUIRED && pm->ext_port != m->internal_port) {
    pm->ext_port = m->internal_port;
    pm_add(pm, now);
    return;
  }
  m->info.gateway_result = rc > 0 ? rc : -1;
  pm_fail(pm, PORTMAP_ERR_REFUSED, now);
}

static void pm_on_get(upnp_map_t *pm, upnp_call_t *k, int rc, uint64_t now) {
  upnp_state_t *st = pm->st;
  portmap_mapping_t *m = pm->m;
  if (rc == 0) {
    int ours =
        strcmp(k->o_client, st->client) == 0 && strtol(k->o_port, NULL, 10) == m->internal_port;
    if (pm->seq == SEQ_DELCHECK) {
      if (ours) {
        pm->added = 1;
        pm_call(pm, CALL_DELETE, now);
      } else {
        portmap_log(st->c, PORTMAP_LOG_WARN,
                    "upnp: port %u/%s belongs to %s:%s, not to us: not deleting it", pm->ext_port,
                    proto_name(m->protocol), k->o_client, k->o_port);
        m->info.gateway_result = -1;
        pm_finish(pm, PORTMAP_EVENT_FAILED, PORTMAP_ERR_REFUSED, 0);
      }
      return;
    }
    if (ours) {
      pm->added = 1;
      if (pm->permanent) {
        pm_success(pm, now); /* Q9: verified, nothing to renew */
        return;
      }
      pm_add(pm, now);
      return;
    }
    /* someone else holds our external port now (after a wipe, Q14) */
    pm->added = 0;
    pm->vanished = 1;
    pm_next_port(pm, now, UPNP_E_CONFLICT);
    return;
  }
  if (rc == UPNP_E_NO_SUCH_ENTRY) {
    if (pm->seq == SEQ_DELCHECK) {
      pm_finish(pm, PORTMAP_EVENT_DELETED, PORTMAP_OK, 0); /* nothing to delete */
      return;
    }
    portmap_log(st->c, PORTMAP_LOG_INFO,
                "upnp: port %u/%s vanished from the gateway; adding it again (Q14)", pm->ext_port,
                proto_name(m->protocol));
    pm->added = 0;
    pm->vanished = 1;
    pm_add(pm, now);
    return;
  }
  /* cannot verify (not implemented, not authorised): act without it */
  if (pm->seq == SEQ_DELCHECK) {
    pm->added = 1;
    pm_call(pm, CALL_DELETE, now);
  } else {
    pm_add(pm, now);
  }
}

static void pm_on_delete(upnp_map_t *pm, int rc) {
  if (rc == 0 || rc == UPNP_E_NO_SUCH_ENTRY) {
    pm->added = 0;
    pm_finish(pm, PORTMAP_EVENT_DELETED, PORTMAP_OK, 0);
    return;
  }
  pm->m->info.gateway_result = rc > 0 ? rc : -1;
  pm_finish(pm, PORTMAP_EVENT_FAILED, PORTMAP_ERR_REFUSED, 0);
}

static void pm_on_result(upnp_map_t *pm, upnp_call_t *k, int rc, uint64_t now) {
  portmap_mapping_t *m = pm->m;
  pm->call = NULL;
  if (rc >= 0)
    m->info.gateway_result = rc;
  /* what any exit must know first (Q10) */
  if (rc == 0 && k->kind == CALL_ADD) {
    pm->added = 1;
  } else if (rc == 0 && k->kind == CALL_ADDANY) {
    long port = strtol(k->o_reserved, NULL, 10);
    if (port >= 1 && port <= 65535) {
      pm->ext_port = (uint16_t)port;
      pm->added = 1;
    } else {
      rc = UPNPCOMMAND_INVALID_RESPONSE;
    }
  }
  if (rc == UPNP_RC_TIMEOUT && k->kind == CALL_ADD)
    pm->added = 1; /* maybe: every exit path deletes it (Q10) */
  if (pm->revoking && pm->seq != SEQ_DELETE) {
    if (pm->added) {
      pm_begin(pm, SEQ_DELETE, now);
    } else {
      pm_finish(pm, PORTMAP_EVENT_DELETED, PORTMAP_OK, 0);
    }
    return;
  }
  if (is_http_failure(rc)) {
    pm_http_failure(pm, k, rc, now);
    return;
  }
  if (rc == UPNP_RC_SYSTEM) {
    pm_fail(pm, PORTMAP_ERR_SYSTEM, now);
    return;
  }
  switch (k->kind) {
  case CALL_EXTIP:
    pm_on_extip(pm, k, rc, now);
    break;
  case CALL_ADD:
  case CALL_ADDANY:
    pm_on_add(pm, k, rc, now);
    break;
  case CALL_GET:
    pm_on_get(pm, k, rc, now);
    break;
  case CALL_DELETE:
    pm_on_delete(pm, rc);
    break;
  default:
    break;
  }
}

static void on_pm_timer(portmap_timer_t *t, uint64_t now) {
  upnp_map_t *pm = t->ctx;
  if (pm->call != NULL || pm->waiting_gw)
    return;
  pm_begin(pm, pm->m->ever_mapped ? SEQ_RENEW : SEQ_CREATE, now);
}

static void on_pm_expiry(portmap_timer_t *t, uint64_t now) {
  upnp_map_t *pm = t->ctx;
  portmap_mapping_t *m = pm->m;
  if (m->flags & PORTMAP_FLAG_ONCE) {
    if (pm->permanent && pm->added && pm->call == NULL && !pm->waiting_gw) {
      pm->revoking = 1;
      pm_begin(pm, SEQ_DELETE, now); /* the gateway never ends it itself */
      return;
    }
    pm_finish(pm, PORTMAP_EVENT_DELETED, PORTMAP_OK, 0);
    return;
  }
  m->info.lifetime = 0;
  m->expiry_ms = 0;
  m->info.status = PORTMAP_ERR_TIMEOUT;
  portmap_mapping_emit(m, PORTMAP_EVENT_LOST);
  if (pm->call == NULL && !pm->waiting_gw && !portmap_timer_pending(&pm->timer))
    arm(pm->st, &pm->timer, now);
}

/* ---------- list ---------- */

static void list_finish(upnp_state_t *st, portmap_status_t status) {
  portmap_list_report(st->c, status, st->list, st->list_n);
  free(st->list);
  st->list = NULL;
  st->list_n = 0;
  st->list_active = 0;
  st->list_waiting = 0;
}

static void list_next(upnp_state_t *st, uint64_t now) {
  upnp_call_t *k = call_new(st, CALL_LIST, FOR_LIST);
  if (k == NULL) {
    list_finish(st, PORTMAP_ERR_NOMEM);
    return;
  }
  snprintf(k->index, sizeof k->index, "%zu", st->list_n);
  if (submit(st, k, now) != 0)
    list_finish(st, PORTMAP_ERR_SYSTEM);
}

static void list_on_result(upnp_state_t *st, upnp_call_t *k, int rc, uint64_t now) {
  if (!st->list_active)
    return;
  if (rc == 0) {
    portmap_list_entry_t *e = &st->list[st->list_n];
    memset(e, 0, sizeof *e);
    e->protocol = strcasecmp(k->o_proto, "UDP") == 0   ? PORTMAP_PROTO_UDP
                  : strcasecmp(k->o_proto, "TCP") == 0 ? PORTMAP_PROTO_TCP
                                                       : 0;
    long ep = strtol(k->o_ext_port, NULL, 10), ip = strtol(k->o_port, NULL, 10);
    e->external_port = ep > 0 && ep <= 65535 ? (uint16_t)ep : 0;
    e->internal_port = ip > 0 && ip <= 65535 ? (uint16_t)ip : 0;
    copy_str(e->internal_client, sizeof e->internal_client, k->o_client);
    copy_str(e->remote_host, sizeof e->remote_host, k->o_rhost);
    copy_str(e->description, sizeof e->description, k->o_desc);
    unsigned long lease = strtoul(k->o_lease, NULL, 10);
    e->lease = lease > UINT32_MAX ? UINT32_MAX : (uint32_t)lease;
    e->enabled = strtol(k->o_enabled, NULL, 10) != 0;
    st->list_n++;
    if (st->list_n >= UPNP_LIST_MAX)
      list_finish(st, PORTMAP_OK); /* bounded */
    else
      list_next(st, now);
    return;
  }
  if (rc == UPNP_E_ARRAY_INDEX_INVALID || rc == UPNP_E_NO_SUCH_ENTRY ||
      (st->list_n > 0 && rc > 0)) {
    list_finish(st, PORTMAP_OK); /* the end of the table */
    return;
  }
  list_finish(st, rc == UPNP_RC_TIMEOUT          ? PORTMAP_ERR_TIMEOUT
                  : rc == UPNPCOMMAND_HTTP_ERROR ? PORTMAP_ERR_UNREACHABLE
                  : rc == UPNP_RC_SYSTEM         ? PORTMAP_ERR_SYSTEM
                                                 : PORTMAP_ERR_REFUSED);
}

/* ---------- vtable ---------- */

static portmap_status_t upnp_create(portmap_client_t *c, void **state) {
  upnp_state_t *st = calloc(1, sizeof *st);
  if (st == NULL)
    return PORTMAP_ERR_NOMEM;
  st->c = c;
  st->fd = -1;
  portmap_timer_init(&st->disc.timer, on_disc_timer, st);
  portmap_timer_init(&st->stuck, on_stuck, st);
  *state = st;
  return PORTMAP_OK;
}

/* At destroy: keep a call for the orphaned worker (at most
 * UPNP_ORPHAN_JOBS_MAX, the rest counted in *dropped), or free it. */
static void keep_for_worker(upnp_state_t *st, upnp_call_t *k, int keep, upnp_call_t ***tail,
                            size_t *n, size_t *dropped) {
  portmap_sched_cancel(&st->c->sched, &k->watchdog);
  k->qnext = k->wnext = NULL;
  if (keep && *n >= UPNP_ORPHAN_JOBS_MAX) {
    (*dropped)++;
    keep = 0;
  }
  if (!keep) {
    call_release(k);
    return;
  }
  **tail = k;
  *tail = &k->wnext;
  (*n)++;
}

/* Never waits for the network (mappings are already gone, their deletes
 * were waited for by the caller): the worker gets what must still reach
 * the gateway and finishes on its own. */
static void upnp_destroy(void *state) {
  upnp_state_t *st = state;
  if (st == NULL)
    return;
  portmap_client_t *c = st->c;
  portmap_sched_cancel(&c->sched, &st->disc.timer);
  portmap_sched_cancel(&c->sched, &st->stuck);
  upnp_call_t *jobs = NULL, **tail = &jobs;
  size_t n = 0, dropped = 0;
  /* Q10: deletes still queued go; every other call was for the client */
  upnp_call_t *k = st->q_head;
  st->q_head = st->q_tail = NULL;
  while (k != NULL) {
    upnp_call_t *next = k->qnext;
    keep_for_worker(st, k, k->purpose == FOR_CLEANUP && k->kind == CALL_DELETE, &tail, &n,
                    &dropped);
    k = next;
  }
  upnp_worker_t *w = st->w;
  if (w == NULL) {
    release_chain(jobs); /* nothing was ever sent: none can exist */
  } else {
    if (st->busy != NULL) /* it stays with the worker, or is among w->done */
      portmap_sched_cancel(&c->sched, &st->busy->watchdog);
    pthread_mutex_lock(&w->mu);
    k = w->todo;
    w->todo = NULL;
    if (k != NULL)
      keep_for_worker(st, k, k->purpose == FOR_CLEANUP && k->kind == CALL_DELETE, &tail, &n,
                      &dropped);
    k = w->done;
    w->done = NULL;
    while (k != NULL) {
      upnp_call_t *next = k->wnext;
      keep_for_worker(st, k, undo_add(k), &tail, &n, &dropped); /* a late add nobody collected */
      k = next;
    }
    w->last = jobs;
    w->orphaned = 1;
    portmap_plat_wake_signal(w->abort_pipe[1]); /* ends a query at once */
    pthread_cond_broadcast(&w->cv);
    int busy = jobs != NULL || (w->running != NULL && !is_query(w->running));
    if (!busy) {
      /* idle, or a query that is being dropped: it leaves at once */
      struct timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      ts.tv_nsec += (long)(UPNP_JOIN_WAIT_MS % 1000u) * 1000000L;
      ts.tv_sec += (time_t)(UPNP_JOIN_WAIT_MS / 1000u) + ts.tv_nsec / 1000000000L;
      ts.tv_nsec %= 1000000000L;
      while (!w->exited && pthread_cond_timedwait(&w->cv, &w->mu, &ts) == 0) {
      }
    }
    int exited = w->exited;
    pthread_mutex_unlock(&w->mu);
    if (exited)
      pthread_join(w->thread, NULL); /* past its last lock: returns at once */
    else
      pthread_detach(w->thread);
    worker_unref(w);
    if (busy)
      portmap_log(c, PORTMAP_LOG_DEBUG,
                  "upnp: the worker finishes on its own (%zu delete(s) to send)", n);
  }
  if (dropped > 0)
    portmap_log(c, PORTMAP_LOG_WARN,
                "upnp: %zu more port(s) to delete at exit than the worker takes (%u): they may "
                "stay on the gateway",
                dropped, UPNP_ORPHAN_JOBS_MAX);
  free(st->list);
  if (st->fd >= 0)
    close(st->fd);
  free(st);
}

static portmap_status_t upnp_check(void *state, const portmap_mapping_t *m) {
  (void)state;
  /* what an IGD port mapping cannot say: PCP-only features, IPv6,
   * protocols other than TCP and UDP (protocol 0 included) */
  if (m->is_peer || m->n_filters > 0 || m->has_third_party ||
      (m->flags & PORTMAP_FLAG_PREFER_FAILURE) || m->ipv6 ||
      (m->protocol != PORTMAP_PROTO_TCP && m->protocol != PORTMAP_PROTO_UDP))
    return PORTMAP_ERR_UNSUPPORTED;
  return PORTMAP_OK;
}

static portmap_status_t upnp_start(void *state, portmap_mapping_t *m, uint64_t now) {
  upnp_state_t *st = state;
  if (!st->c->have_gateway4)
    return PORTMAP_ERR_NO_GATEWAY;
  if (ensure_local(st) != 0)
    return PORTMAP_ERR_SYSTEM;
  upnp_map_t *pm = calloc(1, sizeof *pm);
  if (pm == NULL)
    return PORTMAP_ERR_NOMEM;
  pm->m = m;
  pm->st = st;
  portmap_timer_init(&pm->timer, on_pm_timer, pm);
  portmap_timer_init(&pm->expiry, on_pm_expiry, pm);
  /* Q8: never external port 0 ("all ports" to some): suggest the internal one */
  pm->ext_port = m->suggested_port != 0 ? m->suggested_port : m->internal_port;
  m->be_data = pm;
  m->info.backend = PORTMAP_BACKEND_UPNP;
  memcpy(m->info.internal_address.bytes, st->local, 16);
  pm_begin(pm, (m->flags & PORTMAP_FLAG_DELETE) ? SEQ_DELCHECK : SEQ_CREATE, now);
  return PORTMAP_OK;
}

static void upnp_revoke(void *state, portmap_mapping_t *m, uint64_t now) {
  (void)state;
  upnp_map_t *pm = m->be_data;
  if (pm == NULL || pm->seq == SEQ_DELETE || pm->seq == SEQ_DELCHECK)
    return;
  if (pm->call != NULL || (pm->waiting_gw && pm->added)) {
    pm->revoking = 1; /* decided when the call comes back */
    return;
  }
  portmap_sched_cancel(&pm->st->c->sched, &pm->timer);
  portmap_sched_cancel(&pm->st->c->sched, &pm->expiry);
  pm->waiting_gw = 0;
  if (!pm->added) {
    pm_finish(pm, PORTMAP_EVENT_DELETED, PORTMAP_OK, 0);
    return;
  }
  pm_begin(pm, SEQ_DELETE, now);
}

static void upnp_detach(void *state, portmap_mapping_t *m) {
  (void)state;
  upnp_map_t *pm = m->be_data;
  if (pm != NULL)
    pm_free(pm, m->revoked); /* kept on the gateway unless a delete was asked for */
}

static size_t upnp_fds(void *state, int *fds, size_t cap) {
  upnp_state_t *st = state;
  int all[2] = {st->fd, st->w != NULL ? st->w->result_pipe[0] : -1};
  return portmap_backend_put_fds(all, 2, fds, cap);
}

static void upnp_readable(void *state, uint64_t now) {
  upnp_state_t *st = state;
  ssdp_read(st, now);
  drain_worker(st, now);
}

static void upnp_probe(void *state, uint64_t now) {
  upnp_state_t *st = state;
  st->probe_pending = 1;
  disc_start(st, now); /* or join the round under way */
}

static portmap_status_t upnp_list(void *state, uint64_t now) {
  upnp_state_t *st = state;
  if (st->list_active)
    return PORTMAP_ERR_STATE;
  if (!st->c->have_gateway4)
    return PORTMAP_ERR_NO_GATEWAY;
  st->list = calloc(UPNP_LIST_MAX, sizeof *st->list);
  if (st->list == NULL)
    return PORTMAP_ERR_NOMEM;
  st->list_active = 1;
  st->list_n = 0;
  if (st->gw.ready) {
    list_next(st, now);
  } else {
    st->list_waiting = 1;
    disc_start(st, now);
  }
  return PORTMAP_OK;
}

const portmap_backend_ops_t portmap_upnp_backend = {
    .id = PORTMAP_BACKEND_UPNP,
    .name = "upnp",
    .create = upnp_create,
    .destroy = upnp_destroy,
    .check = upnp_check,
    .start = upnp_start,
    .revoke = upnp_revoke,
    .detach = upnp_detach,
    .fds = upnp_fds,
    .readable = upnp_readable,
    .probe = upnp_probe,
    .unsolicited = NULL,
    .list = upnp_list,
};
