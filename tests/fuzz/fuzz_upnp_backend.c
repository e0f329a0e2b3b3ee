/* SPDX-License-Identifier: MIT */
/* Stateful libFuzzer target: the UPnP-IGD backend (src/backends/upnp*.c)
 * driven through the real client and core with the injected clock and
 * random source, by a script of operations decoded from the input. The
 * gateway is 127.0.0.1; M-SEARCH goes to a loopback sink (session_common.h)
 * and SSDP replies reach the backend in-process through
 * portmap_upnp_ssdp_input(), the function the SSDP socket reader calls.
 * The worker is a manual one (portmap_upnp_worker_new_manual(), no
 * thread): each HTTP exchange it is handed waits until the script answers
 * it, and is then run by the real worker code (src/upnp/igd.c: the request
 * built by miniupnpc, the bounded transport, the sans-I/O HTTP reader,
 * the description scanner or miniupnpc's SOAP parser) over a socketpair
 * that already holds the answer (upnp_io_t.conn_fd): no connect, no
 * thread, no real time.
 *
 * Script: | config (6) | op | args | op | args | ...   (at most 256 ops)
 *   config: call timeout, SSDP window, log, destroy timeout, 2 seed octets
 *   0 MAP      flags, port, lifetime selectors
 *   1 REVOKE handle        2 DETACH handle
 *   3 SSDP     search target, location, source selectors: a well-formed reply
 *   4 SSDPRAW  source, length, octets
 *   5 ANSWER   mode, 3 selectors [, length, octets]: the HTTP exchange the
 *              worker holds, answered well-formed (a description, or the
 *              reply its SOAP action expects, with values picked), as a
 *              SOAP fault, as raw octets, or not at all (connection closed)
 *   6 ADVANCE  the clock by n units (ms, 100 ms, s, min), then process
 *   7 RUN      up to n times: the clock to the next deadline, process
 *   8 SHUTDOWN portmap_client_shutdown()
 * Everything ends with portmap_client_free().
 *
 * Invariants (abort() on violation), besides session_common.h's:
 * - an SSDP datagram, well-formed or not, changes no mapping, queues no
 *   event and moves no mapping timer (it only feeds discovery);
 * - a call that comes back after its watchdog gave up on it, or whose
 *   mapping is gone, or a Q10 cleanup, changes no mapping either;
 * - one call at a time with the worker (Q20): the call the worker holds is
 *   the backend's busy one, and nothing waits in the queue while none is;
 * - the watchdog: once the loop has run upnp_timeout_ms after a call was
 *   handed over, that call has been given up on;
 * - every call asks for an external port 1-65535 (Q8) and TCP or UDP in
 *   upper case (Q7), and what the worker sends is a GET for a description
 *   and a POST of the call's own action otherwise.
 *
 * A campaign (clang; one process, the corpus copied so that it can grow):
 *   CC=clang cmake -S . -B build-fuzz -DPORTMAP_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
 *   cmake --build build-fuzz --target fuzz_upnp_backend
 *   cp -r tests/fuzz/corpus/upnp_backend /tmp/upnp_backend
 *   build-fuzz/tests/fuzz/fuzz_upnp_backend -max_total_time=3600 /tmp/upnp_backend
 * then merge what is new on edges into a copy of the committed corpus:
 *   build-fuzz/tests/fuzz/fuzz_upnp_backend -merge=1 -use_counters=0 MERGED_DIR /tmp/upnp_backend
 * FZ_DEBUG=1 build/tests/fuzz/fuzz_upnp_backend_replay DIR prints each operation and event. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backends/upnp_int.h"
#include "platform/platform.h"
#include "session_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define UPNP_IDX 2 /* portmap_backend_index(PORTMAP_BACKEND_UPNP) */
#define ANSWER_MAX 65536u

typedef struct us {
  fz_session_t s;
  upnp_state_t *st;
  uint32_t limit;          /* the call timeout */
  const upnp_call_t *held; /* the call the worker holds, as last seen */
  uint64_t held_since;
  char out[ANSWER_MAX + 1024];
  size_t out_len;
} us_t;

static upnp_state_t *state_of(us_t *U) {
  return U->s.c->be_state[UPNP_IDX];
}

/* ---------- after every process ---------- */

static void check_calls(us_t *U) {
  portmap_client_t *c = U->s.c;
  pthread_mutex_lock(&c->mu);
  upnp_state_t *st = state_of(U);
  const upnp_call_t *k = portmap_upnp_worker_pending(st->w);
  fz_check(k == st->busy);                              /* Q20: one at a time */
  fz_check(st->busy != NULL || st->queue.head == NULL); /* nothing waits for an idle worker */
  if (k != NULL && k != U->held) {
    U->held = k;
    U->held_since = U->s.env.now;
  }
  if (k != NULL && !k->timed_out)
    fz_check(U->s.env.now < U->held_since + U->limit); /* the watchdog */
  pthread_mutex_unlock(&c->mu);
}

static void process(us_t *U) {
  fz_process(&U->s);
  check_calls(U);
}

/* ---------- SSDP ---------- */

static const char *const TARGETS[] = {PORTMAP_SSDP_ST_IGD1,
                                      PORTMAP_SSDP_ST_IGD2,
                                      PORTMAP_SSDP_ST_ROOT,
                                      PORTMAP_SSDP_ST_DSLF,
                                      "urn:schemas-upnp-org:service:WANIPConnection:1",
                                      "urn:schemas-upnp-org:device:MediaServer:1",
                                      "",
                                      "uuid:0d1a2b3c-4d5e-6f70-8192-a3b4c5d6e7f0"};
static const char *const LOCATIONS[] = {"http://127.0.0.1:5000/rootDesc.xml",
                                        "http://127.0.0.1:49152/gatedesc.xml",
                                        "http://127.0.0.1:5000/rootDesc.xml",
                                        "http://192.168.1.1:1900/igd.xml",
                                        "http://127.0.0.2:80/x.xml",
                                        "https://127.0.0.1/desc.xml",
                                        "http://127.0.0.1:0/",
                                        "http://127.0.0.1:5000"};

static void ssdp_deliver(us_t *U, const uint8_t from[16], uint16_t port, const uint8_t *d,
                         size_t len) {
  portmap_client_t *c = U->s.c;
  if (len > PORTMAP_SSDP_MAX_DATAGRAM + 1)
    len = PORTMAP_SSDP_MAX_DATAGRAM + 1; /* what the socket reader hands on */
  fz_snap_t *before = malloc(sizeof *before), *after = malloc(sizeof *after);
  fz_check(before != NULL && after != NULL);
  pthread_mutex_lock(&c->mu);
  fz_snap_take(c, before);
  portmap_upnp_ssdp_input(state_of(U), from, port, d, len, U->s.env.now);
  fz_snap_take(c, after);
  portmap_client_unlock(c);
  fz_snap_same(before, after); /* SSDP only feeds discovery */
  free(before);
  free(after);
  process(U);
}

static void ssdp_source(uint8_t sel, uint8_t from[16], uint16_t *port) {
  memset(from, 0, 16);
  from[10] = from[11] = 0xff;
  from[12] = 127;
  from[15] = 1;
  *port = (sel & 0x80) ? (uint16_t)(32768 + (sel & 0x7f)) : PORTMAP_SSDP_PORT; /* Q1 */
  if ((sel & 3) == 2) {
    from[12] = 192; /* another host of the LAN, speaking for itself (Q4) */
    from[13] = 168;
    from[14] = 1;
  } else if ((sel & 3) == 3) {
    from[15] = 2;
  }
}

static void op_ssdp(us_t *U, fz_in_t *in) {
  uint8_t tsel = fz_u8(in), lsel = fz_u8(in), ssel = fz_u8(in);
  char buf[1024];
  int n = snprintf(buf, sizeof buf,
                   "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=%u\r\nDATE: Mon, 01 Jan 2024 "
                   "00:00:00 GMT\r\nEXT:\r\nLOCATION: %s\r\nSERVER: OpenWRT/OpenWrt UPnP/1.1 "
                   "MiniUPnPd/2.3.3\r\nST: %s\r\nUSN: uuid:9a1f7e2c-0000-4000-8000-00000000a001::%s"
                   "\r\n%s\r\n",
                   (tsel >> 3) * 60u, LOCATIONS[lsel & 7], TARGETS[tsel & 7], TARGETS[tsel & 7],
                   (lsel & 0x80) ? "OPT: \"http://schemas.upnp.org/upnp/1/0/\"; ns=01\r\n" : "");
  fz_check(n > 0 && (size_t)n < sizeof buf);
  uint8_t from[16];
  uint16_t port;
  ssdp_source(ssel, from, &port);
  ssdp_deliver(U, from, port, (const uint8_t *)buf, (size_t)n);
}

static void op_ssdp_raw(us_t *U, fz_in_t *in) {
  uint8_t ssel = fz_u8(in);
  size_t want = fz_u16(in) % (PORTMAP_SSDP_MAX_DATAGRAM + 8), got;
  const uint8_t *d = fz_bytes(in, want, &got);
  uint8_t from[16];
  uint16_t port;
  ssdp_source(ssel, from, &port);
  ssdp_deliver(U, from, port, d, got);
}

/* ---------- answers ---------- */

static void out_add(us_t *U, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_add(us_t *U, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  size_t room = sizeof U->out - U->out_len;
  int n = vsnprintf(U->out + U->out_len, room, fmt, ap);
  va_end(ap);
  if (n > 0)
    U->out_len += (size_t)n < room ? (size_t)n : room - 1;
}

static const char *const SERVICES[] = {"urn:schemas-upnp-org:service:WANIPConnection:1",
                                       "urn:schemas-upnp-org:service:WANIPConnection:2",
                                       "urn:schemas-upnp-org:service:WANPPPConnection:1",
                                       "urn:dslforum-org:service:WANIPConnection:1",
                                       "urn:schemas-upnp-org:service:Layer3Forwarding:1",
                                       "urn:schemas-upnp-org:service:WANIPv6FirewallControl:1"};
static const char *const CONTROLS[] = {"/ctl/IPConn",
                                       "ctl/IPConn",
                                       "http://127.0.0.1:5000/ctl/IPConn",
                                       "/upnp/control/WANPPPConn1",
                                       "http://10.9.9.9/ctl",
                                       "",
                                       "https://127.0.0.1/ctl",
                                       "/ctl?a=1&amp;b=2"};

/* A root description: an IGD with one to three WAN services. */
static void build_description(us_t *U, uint8_t a, uint8_t b, uint8_t c) {
  int v2 = (c & 1) != 0;
  out_add(U,
          "<?xml version=\"1.0\"?>\r\n<root xmlns=\"urn:schemas-upnp-org:device-1-0\">"
          "<specVersion><major>1</major><minor>%d</minor></specVersion>",
          v2);
  if (c & 2)
    out_add(U, "<URLBase>http://127.0.0.1:%u/</URLBase>", 5000u + (c >> 4));
  out_add(U,
          "<device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:%d</deviceType>"
          "<friendlyName>Fuzz &amp; Router</friendlyName><deviceList><device><deviceType>"
          "urn:schemas-upnp-org:device:WANDevice:%d</deviceType><deviceList><device>"
          "<deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:%d</deviceType>"
          "<serviceList>",
          v2 + 1, v2 + 1, v2 + 1);
  unsigned n = 1 + (a >> 6) % 3;
  for (unsigned i = 0; i < n; i++) {
    unsigned s = (a >> (2 * i)) & 3;
    if (i == 0 && (c & 4))
      s = 4 + ((c >> 3) & 1);
    out_add(U,
            "<service><serviceType>%s</serviceType><serviceId>urn:upnp-org:serviceId:S%u"
            "</serviceId><SCPDURL>/scpd.xml</SCPDURL><controlURL>%s</controlURL>"
            "<eventSubURL>/evt</eventSubURL></service>",
            SERVICES[s], i, CONTROLS[(b >> (3 * i)) & 7]);
  }
  out_add(U, "</serviceList></device></deviceList></device></deviceList></device></root>\r\n");
}

static const char *const EXTIPS[] = {"203.0.113.7", "198.51.100.23", "10.0.0.2", "100.64.0.9",
                                     "0.0.0.0",     "127.0.0.1",     "",         "bogus"};
static const char *const STATUSES[] = {"Connected", "Disconnected", "Connecting", ""};

static void soap_begin(us_t *U, const upnp_call_t *k, const char *action) {
  out_add(U,
          "<?xml version=\"1.0\"?>\r\n<s:Envelope "
          "xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" "
          "s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>"
          "<u:%sResponse xmlns:u=\"%s\">",
          action, k->service);
}

static void soap_end(us_t *U, const char *action) {
  out_add(U, "</u:%sResponse></s:Body></s:Envelope>\r\n", action);
}

/* The reply the call's action expects, its values picked by a, b, c. */
static void build_soap(us_t *U, const upnp_call_t *k, uint8_t a, uint8_t b, uint8_t c) {
  switch (k->kind) {
  case CALL_STATUS:
    soap_begin(U, k, "GetStatusInfo");
    if ((a & 3) != 3)
      out_add(U, "<NewConnectionStatus>%s</NewConnectionStatus>", STATUSES[a & 3]);
    out_add(U, "<NewLastConnectionError>ERROR_NONE</NewLastConnectionError>");
    if ((b & 3) == 0)
      out_add(U, "<NewUptime>%u</NewUptime>", (unsigned)c * 100u);
    else if ((b & 3) == 1)
      out_add(U, "<NewUpTime>%u</NewUpTime>", (unsigned)c); /* Tailscale's recorded router */
    soap_end(U, "GetStatusInfo");
    break;
  case CALL_EXTIP:
    soap_begin(U, k, "GetExternalIPAddress");
    out_add(U, "<NewExternalIPAddress>%s</NewExternalIPAddress>", EXTIPS[a & 7]);
    soap_end(U, "GetExternalIPAddress");
    break;
  case CALL_ADD:
    soap_begin(U, k, "AddPortMapping");
    soap_end(U, "AddPortMapping");
    break;
  case CALL_ADDANY:
    soap_begin(U, k, "AddAnyPortMapping");
    if ((a & 3) == 0)
      out_add(U, "<NewReservedPort>%s</NewReservedPort>", k->ext_port);
    else if ((a & 3) == 1)
      out_add(U, "<NewReservedPort>%u</NewReservedPort>", 40000u + b);
    else if ((a & 3) == 2)
      out_add(U, "<NewReservedPort>%s</NewReservedPort>", (b & 1) ? "0" : "70000");
    soap_end(U, "AddAnyPortMapping");
    break;
  case CALL_GET:
  case CALL_LIST:
    soap_begin(U, k,
               k->kind == CALL_GET ? "GetSpecificPortMappingEntry" : "GetGenericPortMappingEntry");
    if (k->kind == CALL_LIST)
      out_add(U,
              "<NewRemoteHost></NewRemoteHost><NewExternalPort>%u</NewExternalPort>"
              "<NewProtocol>%s</NewProtocol>",
              4000u + b, (b & 1) ? "UDP" : "TCP");
    out_add(U,
            "<NewInternalPort>%s</NewInternalPort><NewInternalClient>%s</NewInternalClient>"
            "<NewEnabled>1</NewEnabled><NewPortMappingDescription>libportmap"
            "</NewPortMappingDescription><NewLeaseDuration>%s</NewLeaseDuration>",
            (a & 1) ? "1" : k->int_port, (a & 2) ? "192.168.1.99" : k->client,
            (a & 4) ? "0" : k->lease);
    soap_end(U, k->kind == CALL_GET ? "GetSpecificPortMappingEntry" : "GetGenericPortMappingEntry");
    (void)c;
    break;
  case CALL_DELETE:
    soap_begin(U, k, "DeletePortMapping");
    soap_end(U, "DeletePortMapping");
    break;
  case CALL_DESCRIBE:
    build_description(U, a, b, c);
    break;
  }
}

static const int FAULTS[] = {718, 725, 402, 501, 714, 713, 724, 729,
                             401, 602, 606, 0,   -1,  999, 718, 714};

static void build_fault(us_t *U, uint8_t a, uint8_t b) {
  int code = FAULTS[a & 15];
  out_add(U, "<?xml version=\"1.0\"?>\r\n<s:Envelope "
             "xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><s:Fault><faultcode>"
             "s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError "
             "xmlns=\"urn:schemas-upnp-org:control-1-0\"><errorCode>");
  if (code == 999)
    out_add(U, "%u", 700u + b);
  else
    out_add(U, "%d", code);
  out_add(U, "</errorCode><errorDescription>Fuzz</errorDescription></UPnPError></detail>"
             "</s:Fault></s:Body></s:Envelope>\r\n");
}

/* Frame body[0 .. n) in U->out as a reply: Content-Length, chunked, or
 * until the end of the stream. */
static void frame(us_t *U, const char *body, size_t n, int status, uint8_t how) {
  char head[256];
  if ((how & 3) == 1)
    snprintf(head, sizeof head,
             "HTTP/1.1 %d X\r\nContent-Type: text/xml; charset=\"utf-8\"\r\n"
             "Transfer-Encoding: chunked\r\n\r\n",
             status);
  else if ((how & 3) == 2)
    snprintf(head, sizeof head, "HTTP/1.0 %d X\r\nServer: fuzz\r\n\r\n", status);
  else
    snprintf(head, sizeof head,
             "HTTP/1.1 %d X\r\nContent-Type: text/xml\r\nContent-Length: %zu\r\n"
             "Connection: close\r\n\r\n",
             status, n);
  static char copy[ANSWER_MAX];
  if (n > sizeof copy)
    n = sizeof copy;
  memcpy(copy, body, n);
  U->out_len = 0;
  out_add(U, "%s", head);
  if ((how & 3) != 1) {
    size_t room = sizeof U->out - U->out_len;
    size_t take = n < room ? n : room;
    memcpy(U->out + U->out_len, copy, take);
    U->out_len += take;
    return;
  }
  for (size_t off = 0; off < n;) {
    size_t part = n - off < 700 ? n - off : 700;
    out_add(U, "%zx\r\n", part);
    size_t room = sizeof U->out - U->out_len;
    if (part + 2 > room)
      return;
    memcpy(U->out + U->out_len, copy + off, part);
    U->out_len += part;
    out_add(U, "\r\n");
    off += part;
  }
  out_add(U, "0\r\n\r\n");
}

static const char *action_of(enum call_kind kind) {
  switch (kind) {
  case CALL_STATUS:
    return "GetStatusInfo";
  case CALL_EXTIP:
    return "GetExternalIPAddress";
  case CALL_ADD:
    return "AddPortMapping";
  case CALL_ADDANY:
    return "AddAnyPortMapping";
  case CALL_GET:
    return "GetSpecificPortMappingEntry";
  case CALL_DELETE:
    return "DeletePortMapping";
  case CALL_LIST:
    return "GetGenericPortMappingEntry";
  case CALL_DESCRIBE:
    break;
  }
  return NULL;
}

/* Q7, Q8: what a mapping call asks for. */
static void check_call_inputs(const upnp_call_t *k) {
  if (k->kind == CALL_ADD || k->kind == CALL_ADDANY || k->kind == CALL_GET ||
      k->kind == CALL_DELETE) {
    long port = strtol(k->ext_port, NULL, 10);
    fz_check(port >= 1 && port <= 65535);
    fz_check(strcmp(k->proto, "TCP") == 0 || strcmp(k->proto, "UDP") == 0);
  }
}

/* Run the held call over a socketpair holding U->out, then see what it sent. */
static void run_held(us_t *U, const upnp_call_t *k) {
  int sv[2];
  fz_check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  size_t off = 0;
  while (off < U->out_len) {
    ssize_t n = send(sv[1], U->out + off, U->out_len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n <= 0)
      break; /* the pair's buffer is full: the rest is cut off, as by a peer */
    off += (size_t)n;
  }
  fz_check(shutdown(sv[1], SHUT_WR) == 0);
  upnp_io_t io;
  io.deadline = portmap_plat_now_ms() + 10000; /* never reached: the answer is all there */
  io.abort_fd = -1;
  io.conn_fd = sv[0]; /* the exchange closes it */
  io.alloc = NULL;    /* the system's, as the client's here */
  enum call_kind kind = k->kind;
  fz_check(portmap_upnp_worker_run(state_of(U)->w, &io) == 0); /* as the thread would */
  char req[8192];
  size_t have = 0;
  for (;;) {
    ssize_t n = recv(sv[1], req + have, sizeof req - 1 - have, MSG_DONTWAIT);
    if (n <= 0)
      break;
    have += (size_t)n;
    if (have == sizeof req - 1)
      break;
  }
  req[have] = '\0';
  close(sv[1]);
  const char *action = action_of(kind);
  if (kind == CALL_DESCRIBE)
    fz_check(strncmp(req, "GET ", 4) == 0);
  else if (have > 0) /* nothing: miniupnpc refused the arguments */
    fz_check(strncmp(req, "POST ", 5) == 0 && strstr(req, action) != NULL);
}

static void op_answer(us_t *U, fz_in_t *in) {
  uint8_t mode = fz_u8(in), a = fz_u8(in), b = fz_u8(in), c = fz_u8(in);
  const uint8_t *raw = NULL;
  size_t raw_len = 0;
  if (mode % 8 == 4 || mode % 8 == 5)
    raw = fz_bytes(in, fz_u16(in), &raw_len);
  portmap_client_t *cl = U->s.c;
  pthread_mutex_lock(&cl->mu);
  const upnp_call_t *k = portmap_upnp_worker_pending(state_of(U)->w);
  int stale = k != NULL && (k->timed_out || k->purpose == FOR_CLEANUP ||
                            (k->purpose == FOR_MAP && k->pm == NULL));
  if (k != NULL)
    check_call_inputs(k);
  pthread_mutex_unlock(&cl->mu);
  if (k == NULL) {
    process(U);
    return;
  }
  static char body[ANSWER_MAX];
  U->out_len = 0;
  switch (mode % 8) {
  case 3:
    build_fault(U, a, b);
    memcpy(body, U->out, U->out_len);
    frame(U, body, U->out_len, 500, c);
    break;
  case 4: /* the whole stream */
    U->out_len = raw_len < sizeof U->out ? raw_len : sizeof U->out;
    memcpy(U->out, raw, U->out_len);
    break;
  case 5: /* 200 and a body */
    frame(U, (const char *)raw, raw_len, 200, c);
    break;
  case 6: /* the connection closes: an HTTP failure */
    break;
  default:
    build_soap(U, k, a, b, c);
    memcpy(body, U->out, U->out_len);
    frame(U, body, U->out_len, (mode & 0x80) && (c & 8) ? 404 : 200, mode % 8 == 7 ? c : 0);
    break;
  }
  run_held(U, k);
  U->held = NULL;
  /* the call comes back through the result pipe: the backend's reader */
  fz_snap_t *before = malloc(sizeof *before), *after = malloc(sizeof *after);
  fz_check(before != NULL && after != NULL);
  pthread_mutex_lock(&cl->mu);
  fz_snap_take(cl, before);
  cl->be_ops[UPNP_IDX]->readable(cl->be_state[UPNP_IDX], U->s.env.now);
  fz_snap_take(cl, after);
  portmap_client_unlock(cl);
  if (stale)
    fz_snap_same(before, after);
  free(before);
  free(after);
  process(U);
}

/* ---------- requests ---------- */

static const uint32_t REQ_LIFETIMES[] = {0, 1, 10, 60, 120, 3600, 86400, 7};

static void op_map(us_t *U, fz_in_t *in) {
  uint8_t f = fz_u8(in), psel = fz_u8(in), lsel = fz_u8(in);
  fz_handle_t *h = fz_slot(&U->s);
  if (h == NULL)
    return;
  portmap_request_t req;
  portmap_request_init(&req);
  req.protocol = (f & 1) ? PORTMAP_PROTO_UDP : PORTMAP_PROTO_TCP;
  req.internal_port = (uint16_t)(4000 + (psel & 7));
  if (psel & 0x08)
    req.external_port = (uint16_t)(5000 + (psel >> 4));
  if (f & 2)
    req.flags |= PORTMAP_FLAG_ONCE;
  if (f & 4)
    req.flags |= PORTMAP_FLAG_DELETE;
  if (f & 8)
    req.description = (f & 0x80) ? "</NewPortMappingDescription><x>&amp;" : "fuzz \xc3\xa9";
  h->revoke_in_cb = (f & 0x10) != 0;
  if (f & 0x20)
    req.peer_address = "198.51.100.7"; /* PCP only: no backend can express it */
  if (f & 0x20)
    req.peer_port = 9;
  req.ipv6 = (f & 0x40) && (lsel & 0x80);
  req.lifetime = REQ_LIFETIMES[lsel & 7];
  size_t i = U->s.n;
  portmap_mapping_t *m = NULL;
  portmap_status_t st = portmap_map(U->s.c, &req, fz_mapping_cb, &U->s, &m);
  if (st == PORTMAP_OK) {
    fz_check(m != NULL);
    h->m = m;
    U->s.n = i + 1;
  } else {
    fz_check(m == NULL);
  }
  process(U);
}

/* ---------- the loop ---------- */

static void op_advance(us_t *U, fz_in_t *in) {
  static const uint32_t unit[] = {1, 100, 1000, 60000};
  uint8_t u = fz_u8(in);
  uint16_t n = fz_u16(in);
  U->s.env.now += (uint64_t)n * unit[u & 3];
  process(U);
}

static void op_run(us_t *U, fz_in_t *in) {
  unsigned n = fz_u8(in) % 16 + 1;
  for (unsigned i = 0; i < n; i++) {
    int t = portmap_timeout_ms(U->s.c);
    if (t < 0)
      break;
    U->s.env.now += (uint64_t)t;
    process(U);
  }
}

static void log_sink(portmap_log_level_t level, const char *msg, void *user) {
  (void)level;
  (void)user;
  fz_check(msg != NULL && strlen(msg) < 512);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const uint32_t limits[] = {2000, 500, 10000, 2000};
  static const uint32_t windows[] = {500, 100, 3000, 500};
  fz_in_t in = {data, size};
  us_t *U = calloc(1, sizeof *U);
  fz_check(U != NULL);
  U->s.env.now = FZ_CLOCK_START;
  uint8_t c0 = fz_u8(&in), c1 = fz_u8(&in), c2 = fz_u8(&in), c3 = fz_u8(&in);
  U->s.env.rng = fz_u16(&in);
  U->limit = limits[c0 & 3];
  portmap_config_t cfg;
  fz_config(&U->s, &cfg);
  cfg.backends = PORTMAP_BACKEND_UPNP;
  cfg.ssdp_port = fz_sink_port();
  cfg.ssdp_multicast = 0; /* never off this host (a loopback gateway has none anyway) */
  cfg.upnp_timeout_ms = U->limit;
  cfg.probe_timeout_ms = windows[c1 & 3];
  cfg.destroy_timeout_ms = (c3 & 1) ? 10000 : 0;
  if (c2 & 1) {
    cfg.log_cb = log_sink;
    cfg.log_level = PORTMAP_LOG_DEBUG;
  }
  fz_client_new(&U->s, &cfg);
  /* the manual worker, before any call needs one */
  upnp_state_t *st = state_of(U);
  fz_check(st != NULL && st->w == NULL);
  st->w = portmap_upnp_worker_new_manual(U->limit);
  fz_check(st->w != NULL);
  st->w_fd = portmap_plat_dup(portmap_upnp_worker_fd(st->w));
  for (int ops = 0; ops < FZ_MAX_OPS && fz_more(&in); ops++) {
    uint8_t op = fz_u8(&in);
    if (fz_debug())
      fprintf(stderr, "t=%llu op %u (%zu octets left)\n", (unsigned long long)U->s.env.now, op % 9,
              in.n);
    switch (op % 9) {
    case 0:
      op_map(U, &in);
      break;
    case 1:
    case 2: {
      uint8_t k = fz_u8(&in);
      if (U->s.n > 0) {
        if (op % 9 == 1)
          fz_revoke(&U->s, k % U->s.n);
        else
          fz_detach(&U->s, k % U->s.n);
      }
      process(U);
      break;
    }
    case 3:
      op_ssdp(U, &in);
      break;
    case 4:
      op_ssdp_raw(U, &in);
      break;
    case 5:
      op_answer(U, &in);
      break;
    case 6:
      op_advance(U, &in);
      break;
    case 7:
      op_run(U, &in);
      break;
    default: {
      fz_shutdown(&U->s);
      process(U);
      break;
    }
    }
  }
  fz_finish(&U->s);
  free(U);
  return 0;
}
