/*
 * The UPnP-IGD backend: our own non-blocking SSDP discovery on the
 * scheduler's thread, and miniupnpc's blocking HTTP/SOAP on one worker
 * thread per client.
 *
 * Threads. Every function here except worker_main()/run_call() runs on the
 * scheduler's thread with the client lock held. Blocking work is one
 * "call" (one HTTP exchange: fetch the root description, or one SOAP
 * action), handed to the worker one at a time -- which also serialises
 * SOAP per gateway (ROUTER-QUIRKS Q20). The worker posts the finished call
 * back through a pipe whose read end is one of fds(); readable() picks it
 * up. A call's inputs are written before hand-off and only read by the
 * worker; its outputs belong to the worker until the call comes back. The
 * worker never touches the client.
 *
 * Bounds. miniupnpc's own socket timeouts (3 s connect, 5 s per read)
 * bound each call inside the worker; on our side a watchdog of
 * cfg.upnp_timeout_ms per call reports TIMEOUT and the late result is
 * discarded (except that a late successful add is deleted again, Q10).
 * Destroy joins the worker, so it can wait for the one call in progress.
 *
 * Discovery (per client, shared by every mapping, the probe and list):
 *   SSDP    M-SEARCH per search target, unicast to the gateway (and
 *           multicast when allowed, Q3); replies from any port of the
 *           gateway (Q1), other hosts only as a fallback (Q4), one
 *           candidate per LOCATION (Q25)
 *   DESCRIBE fetch a candidate's root description (miniwget) and list its
 *           WAN connection services (Q6, Q28, Q29)
 *   EVAL    GetStatusInfo + GetExternalIPAddress per service, in Q6
 *           order; the first connected one with a public address wins,
 *           else the best seen (Q5, Q29)
 *
 * Per mapping, one sequence at a time, one call in flight:
 *   CREATE   GetExternalIPAddress, then AddPortMapping (Q10: the fallible
 *            query comes first)
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
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <miniupnpc/miniupnpc.h>
#include <miniupnpc/miniwget.h>
#include <miniupnpc/upnpcommands.h>
#include <miniupnpc/upnperrors.h>

#include "internal.h"
#include "netutil.h"
#include "upnp/ssdp.h"

#define UPNP_MAX_CANDIDATES 8
#define UPNP_CONFLICT_TRIES 8            /* Q11 */
#define UPNP_PERMANENT_VERIFY_MS 600000u /* Q9: re-verify permanent leases */
#define UPNP_RETRY_MS 30000u             /* after a failed renewal */
#define UPNP_REDISCOVER_AFTER 2u         /* Q13: HTTP failures in a row */
#define UPNP_SSDP_GRACE_MS 100u          /* wait for an IGD reply after a rootdevice one */
#define UPNP_SSDP_DEFAULT_MS 500u
#define UPNP_LIST_MAX 256u
#define UPNP_MAX_READS 64
#define UPNP_DESC_ESCAPED_MAX 512 /* miniupnpc's SOAP body is 2048 octets */
#define UPNP_DEFAULT_DESCRIPTION "libportmap"

/* Our own pseudo result codes, beside miniupnpc's UPNPCOMMAND_* (< 0). */
#define UPNP_RC_TIMEOUT (-1000) /* the watchdog gave up */
#define UPNP_RC_SYSTEM (-1001)  /* no worker (thread or pipe creation failed) */

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
  /* the scheduler thread's */
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
  struct upnp_call *wnext;
  int rc;
  int http_status;
  char lanaddr[64];
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
  /* the worker */
  int thread_up;
  pthread_t thread;
  pthread_mutex_t wmu;
  pthread_cond_t wcv;
  upnp_call_t *w_todo, *w_done;
  int w_stop;
  int pipe[2];
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
  else if (portmap_net_local_address(c->gateway4, 0, st->local) != 0)
    return -1;
  portmap_addr_t a;
  memcpy(a.bytes, st->local, 16);
  portmap_addr_format(&a, st->client, sizeof st->client);
  st->have_local = 1;
  return 0;
}

/* ---------- the worker ---------- */

/* miniupnpc's HTTP GET; its signature grew a status code in API 16. */
static char *fetch_url(const char *url, int *size, char *lanaddr, int lanaddr_len, int *status) {
#if MINIUPNPC_API_VERSION >= 16
  return miniwget_getaddr(url, size, lanaddr, lanaddr_len, 0, status);
#else
  *status = 200;
  return miniwget_getaddr(url, size, lanaddr, lanaddr_len, 0);
#endif
}

/* One blocking exchange. Reads the call's inputs, writes its outputs. */
static void run_call(upnp_call_t *k) {
  unsigned uptime = 0;
  switch (k->kind) {
  case CALL_DESCRIBE: {
    int size = 0, status = 0;
    char *xml = fetch_url(k->url, &size, k->lanaddr, (int)sizeof k->lanaddr, &status);
    k->http_status = status;
    if (xml == NULL) {
      k->rc = UPNPCOMMAND_HTTP_ERROR;
      break;
    }
    k->descr = calloc(1, sizeof *k->descr);
    if (k->descr == NULL)
      k->rc = UPNPCOMMAND_MEM_ALLOC_ERROR;
    else if (status != 200 || size <= 0 ||
             portmap_upnp_desc_parse(xml, (size_t)size, k->descr) != PORTMAP_SSDP_OK)
      k->rc = UPNPCOMMAND_INVALID_RESPONSE;
    else
      k->rc = 0;
    free(xml);
    break;
  }
  case CALL_STATUS:
    k->rc = UPNP_GetStatusInfo(k->url, k->service, k->o_status, &uptime, k->o_lasterr);
    break;
  case CALL_EXTIP:
    k->rc = UPNP_GetExternalIPAddress(k->url, k->service, k->o_extip);
    break;
  case CALL_ADD:
    k->rc = UPNP_AddPortMapping(k->url, k->service, k->ext_port, k->int_port, k->client, k->desc,
                                k->proto, "", k->lease);
    break;
  case CALL_ADDANY:
    k->rc = UPNP_AddAnyPortMapping(k->url, k->service, k->ext_port, k->int_port, k->client, k->desc,
                                   k->proto, "", k->lease, k->o_reserved);
    break;
  case CALL_GET:
    k->rc =
        UPNP_GetSpecificPortMappingEntry(k->url, k->service, k->ext_port, k->proto, "", k->o_client,
                                         k->o_port, k->o_desc, k->o_enabled, k->o_lease);
    break;
  case CALL_DELETE:
    k->rc = UPNP_DeletePortMapping(k->url, k->service, k->ext_port, k->proto, "");
    break;
  case CALL_LIST:
    k->rc = UPNP_GetGenericPortMappingEntry(k->url, k->service, k->index, k->o_ext_port,
                                            k->o_client, k->o_port, k->o_proto, k->o_desc,
                                            k->o_enabled, k->o_rhost, k->o_lease);
    break;
  }
}

static void *worker_main(void *arg) {
  upnp_state_t *st = arg;
  pthread_mutex_lock(&st->wmu);
  for (;;) {
    while (!st->w_stop && st->w_todo == NULL)
      pthread_cond_wait(&st->wcv, &st->wmu);
    if (st->w_stop)
      break;
    upnp_call_t *k = st->w_todo;
    st->w_todo = NULL;
    pthread_mutex_unlock(&st->wmu);
    run_call(k);
    pthread_mutex_lock(&st->wmu);
    k->wnext = st->w_done;
    st->w_done = k;
    char b = 1;
    ssize_t n = write(st->pipe[1], &b, 1);
    (void)n; /* a full pipe is already readable */
  }
  pthread_mutex_unlock(&st->wmu);
  return NULL;
}

static int worker_ensure(upnp_state_t *st) {
  if (st->thread_up)
    return 0;
  if (st->pipe[0] < 0 && pipe2(st->pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
    st->pipe[0] = st->pipe[1] = -1;
    return -1;
  }
  if (pthread_create(&st->thread, NULL, worker_main, st) != 0)
    return -1;
  st->thread_up = 1;
  return 0;
}

/* ---------- calls ---------- */

static void call_free(upnp_call_t *k) {
  if (k == NULL)
    return;
  portmap_sched_cancel(&k->st->c->sched, &k->watchdog);
  free(k->descr);
  free(k);
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
  uint32_t limit = st->c->cfg.upnp_timeout_ms > 0 ? st->c->cfg.upnp_timeout_ms : 2000u;
  arm(st, &k->watchdog, now + limit);
  pthread_mutex_lock(&st->wmu);
  st->w_todo = k;
  pthread_cond_signal(&st->wcv);
  pthread_mutex_unlock(&st->wmu);
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
  if (st->busy != NULL && st->busy->timed_out && !portmap_timer_pending(&st->stuck)) {
    uint32_t limit = st->c->cfg.upnp_timeout_ms > 0 ? st->c->cfg.upnp_timeout_ms : 2000u;
    arm(st, &st->stuck, now + limit); /* the worker is still stuck: bound the wait */
  }
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
  /* The worker is still on it: nothing else goes to the gateway before it
   * comes back (Q20), but the queue must not wait for ever. */
  uint32_t limit = st->c->cfg.upnp_timeout_ms > 0 ? st->c->cfg.upnp_timeout_ms : 2000u;
  arm(st, &st->stuck, now + limit);
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
  if (st->pipe[0] < 0)
    return;
  char buf[64];
  while (read(st->pipe[0], buf, sizeof buf) > 0) {
  }
  pthread_mutex_lock(&st->wmu);
  upnp_call_t *done = st->w_done;
  st->w_done = NULL;
  pthread_mutex_unlock(&st->wmu);
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
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
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
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    ssize_t n =
        recvfrom(st->fd, buf, sizeof buf, MSG_DONTWAIT | MSG_TRUNC, (struct sockaddr *)&ss, &sl);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    uint8_t from[16];
    uint16_t port = 0;
    if (portmap_net_from_sockaddr((struct sockaddr *)&ss, sl, from, &port) != 0) {
      st->c->stats.malformed++;
      continue;
    }
    size_t len = (size_t)n > sizeof buf ? sizeof buf : (size_t)n;
    on_ssdp(st, from, port, buf, len, now);
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
    portmap_log(st->c, PORTMAP_LOG_INFO, "upnp: cannot read the description at %s", location);
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
    else if (rc == 0)
      e->have_ext = parse_ext(k->o_extip, e->ext); /* Q12 */
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
  if (ev == PORTMAP_EVENT_DELETED) {
    m->info.lifetime = 0;
    m->expiry_ms = 0;
  }
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
  switch (pm->seq) {
  case SEQ_CREATE:
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
  st->pipe[0] = st->pipe[1] = -1;
  if (pthread_mutex_init(&st->wmu, NULL) != 0) {
    free(st);
    return PORTMAP_ERR_SYSTEM;
  }
  if (pthread_cond_init(&st->wcv, NULL) != 0) {
    pthread_mutex_destroy(&st->wmu);
    free(st);
    return PORTMAP_ERR_SYSTEM;
  }
  portmap_timer_init(&st->disc.timer, on_disc_timer, st);
  portmap_timer_init(&st->stuck, on_stuck, st);
  *state = st;
  return PORTMAP_OK;
}

static void free_chain(upnp_call_t *k, int worker_list) {
  while (k != NULL) {
    upnp_call_t *next = worker_list ? k->wnext : k->qnext;
    call_free(k);
    k = next;
  }
}

/* Q10 at the very end: deletes that were still waiting, and adds that
 * succeeded for a mapping already gone, run here, synchronously. */
static void destroy_cleanup(upnp_state_t *st, upnp_call_t *k) {
  int port = 0;
  if ((k->kind == CALL_ADD || k->kind == CALL_ADDANY) && k->cleanup && k->rc == 0)
    port = (int)strtol(k->kind == CALL_ADDANY ? k->o_reserved : k->ext_port, NULL, 10);
  if (port < 1 || port > 65535 || st->gw.control_url[0] == '\0')
    return;
  int rc =
      UPNP_DeletePortMapping(st->gw.control_url, st->gw.service,
                             k->kind == CALL_ADDANY ? k->o_reserved : k->ext_port, k->proto, "");
  if (rc != 0 && rc != UPNP_E_NO_SUCH_ENTRY)
    portmap_log(st->c, PORTMAP_LOG_WARN, "upnp: could not delete port %d/%s at exit", port,
                k->proto);
}

static void upnp_destroy(void *state) {
  upnp_state_t *st = state;
  if (st == NULL)
    return;
  portmap_client_t *c = st->c;
  portmap_sched_cancel(&c->sched, &st->disc.timer);
  portmap_sched_cancel(&c->sched, &st->stuck);
  upnp_call_t *todo = NULL, *done = NULL;
  if (st->thread_up) {
    pthread_mutex_lock(&st->wmu);
    st->w_stop = 1;
    pthread_cond_signal(&st->wcv);
    pthread_mutex_unlock(&st->wmu);
    pthread_join(st->thread, NULL); /* bounded by the call in progress */
  }
  todo = st->w_todo;
  done = st->w_done;
  st->w_todo = st->w_done = NULL;
  for (upnp_call_t *k = done; k != NULL; k = k->wnext)
    destroy_cleanup(st, k);
  for (upnp_call_t *k = st->q_head; k != NULL; k = k->qnext) {
    if (k->purpose == FOR_CLEANUP && k->kind == CALL_DELETE) {
      run_call(k);
      if (k->rc != 0 && k->rc != UPNP_E_NO_SUCH_ENTRY)
        portmap_log(c, PORTMAP_LOG_WARN, "upnp: could not delete port %s/%s at exit", k->ext_port,
                    k->proto);
    }
  }
  if (todo != NULL && todo->purpose == FOR_CLEANUP && todo->kind == CALL_DELETE)
    run_call(todo);
  call_free(todo);
  free_chain(done, 1);
  free_chain(st->q_head, 0);
  st->q_head = st->q_tail = NULL;
  free(st->list);
  if (st->fd >= 0)
    close(st->fd);
  for (int i = 0; i < 2; i++)
    if (st->pipe[i] >= 0)
      close(st->pipe[i]);
  pthread_cond_destroy(&st->wcv);
  pthread_mutex_destroy(&st->wmu);
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
  size_t n = 0;
  int all[2] = {st->fd, st->pipe[0]};
  for (size_t i = 0; i < 2; i++) {
    if (all[i] < 0)
      continue;
    if (n < cap)
      fds[n] = all[i];
    n++;
  }
  return n;
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
