/* SPDX-License-Identifier: MIT */
/*
 * src/upnp/soap.c: the SOAP request builder used with miniupnpc API >= 19.
 * Against the miniupnpc this is built with (API < 19: it can still hand out
 * its octets), every action the UPnP backend sends must come out the same,
 * header for header and octet for octet in the body; User-Agent apart,
 * which names the library that sent it. Hostile inputs are refused, and
 * nothing is ever written past the buffer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <miniupnpc/miniupnpc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "upnp/soap.h"

#define SVC1 "urn:schemas-upnp-org:service:WANIPConnection:1"
#define SVC2 "urn:schemas-upnp-org:service:WANIPConnection:2"
#define URL "http://192.168.77.1:5000/ctl/IPConn"
#define HOST "192.168.77.1"
#define PORT 5000u
#define PATH "/ctl/IPConn"

/* where the gateway's control URL points: miniupnpc's URL, our parts */
typedef struct target {
  const char *url, *host, *path;
  unsigned port;
} target_t;

static const target_t targets[] = {
    {URL, HOST, PATH, PORT},
    {"http://10.0.0.1/upnp/control/WANIPConn1", "10.0.0.1", "/upnp/control/WANIPConn1", 80},
    {"http://[fd00::1]:49152/ctl", "[fd00::1]", "/ctl", 49152},
};
#define UA "Linux UPnP/1.1 libportmap"

typedef struct action {
  const char *service, *name;
  portmap_soap_arg_t args[9];
  size_t n;
} action_t;

static const action_t actions[] = {
    {SVC1, "GetStatusInfo", {{NULL, NULL}}, 0},
    {SVC2, "GetExternalIPAddress", {{NULL, NULL}}, 0},
    {SVC1,
     "AddPortMapping",
     {{"NewRemoteHost", ""},
      {"NewExternalPort", "8000"},
      {"NewProtocol", "TCP"},
      {"NewInternalPort", "8000"},
      {"NewInternalClient", "192.168.77.2"},
      {"NewEnabled", "1"},
      {"NewPortMappingDescription", "caf&#233; &amp; co"},
      {"NewLeaseDuration", "3600"}},
     8},
    {SVC2,
     "AddAnyPortMapping",
     {{"NewRemoteHost", ""},
      {"NewExternalPort", "0"},
      {"NewProtocol", "UDP"},
      {"NewInternalPort", "9000"},
      {"NewInternalClient", "10.0.0.9"},
      {"NewEnabled", "1"},
      {"NewPortMappingDescription", "libportmap"},
      {"NewLeaseDuration", "0"}},
     8},
    {SVC1,
     "GetSpecificPortMappingEntry",
     {{"NewRemoteHost", ""}, {"NewExternalPort", "8000"}, {"NewProtocol", "TCP"}},
     3},
    {SVC1,
     "DeletePortMapping",
     {{"NewRemoteHost", ""}, {"NewExternalPort", "65535"}, {"NewProtocol", "UDP"}},
     3},
    {SVC1, "GetGenericPortMappingEntry", {{"NewPortMappingIndex", "255"}}, 1},
};

static size_t build_at(const target_t *t, const action_t *a, char *out, size_t cap) {
  size_t len = 0;
  assert_int_equal(portmap_soap_build(t->host, t->port, t->path, UA, a->service, a->name, a->args,
                                      a->n, out, cap, &len),
                   0);
  assert_true(len <= cap);
  return len;
}

static size_t build(const action_t *a, char *out, size_t cap) {
  return build_at(&targets[0], a, out, cap);
}

/* Split at the blank line; drop the User-Agent line from the head. */
static void split(const char *req, size_t len, char *head, size_t hcap, const char **body,
                  size_t *blen) {
  const char *sep = memmem(req, len, "\r\n\r\n", 4);
  assert_non_null(sep);
  size_t hl = (size_t)(sep - req) + 4;
  *body = sep + 4;
  *blen = len - hl;
  size_t o = 0;
  for (const char *p = req; p < req + hl;) {
    const char *eol = memmem(p, (size_t)(req + hl - p), "\r\n", 2);
    assert_non_null(eol);
    size_t ll = (size_t)(eol - p) + 2;
    if (strncmp(p, "User-Agent:", 11) != 0) {
      assert_true(o + ll < hcap);
      memcpy(head + o, p, ll);
      o += ll;
    }
    p += ll;
  }
  head[o] = '\0';
}

static void test_content_length_is_the_body(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++) {
    char req[4096], head[2048];
    size_t len = build(&actions[i], req, sizeof req);
    const char *body;
    size_t blen;
    split(req, len, head, sizeof head, &body, &blen);
    char want[64];
    snprintf(want, sizeof want, "\r\nContent-Length: %zu\r\n", blen);
    assert_non_null(strstr(head, want));
    assert_non_null(memmem(req, len, "User-Agent: " UA "\r\n", strlen("User-Agent: " UA "\r\n")));
    assert_true(blen > 2 && memcmp(body + blen - 2, "\r\n", 2) == 0);
  }
}

static void test_exact_octets(void **state) {
  (void)state;
  char req[4096];
  size_t len = build(&actions[5], req, sizeof req);
  static const char body[] =
      "<?xml version=\"1.0\"?>\r\n"
      "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" "
      "s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>"
      "<u:DeletePortMapping xmlns:u=\"" SVC1 "\"><NewRemoteHost></NewRemoteHost>"
      "<NewExternalPort>65535</NewExternalPort><NewProtocol>UDP</NewProtocol>"
      "</u:DeletePortMapping></s:Body></s:Envelope>\r\n";
  char want[4096];
  int n = snprintf(want, sizeof want,
                   "POST " PATH " HTTP/1.1\r\nHost: " HOST ":5000\r\nUser-Agent: " UA
                   "\r\nContent-Length: %zu\r\nContent-Type: text/xml\r\n"
                   "SOAPAction: \"" SVC1 "#DeletePortMapping\"\r\nConnection: Close\r\n"
                   "Cache-Control: no-cache\r\nPragma: no-cache\r\n\r\n%s",
                   sizeof body - 1, body);
  assert_int_equal(len, (size_t)n);
  assert_memory_equal(req, want, len);
}

#if MINIUPNPC_API_VERSION < 19
/* miniupnpc's own octets for the action (simpleUPnPcommand() on a
 * socketpair that already holds an empty reply). */
static size_t miniupnpc_octets(const char *url, const action_t *a, char *out, size_t cap) {
  static const char empty[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  assert_int_equal(send(sv[1], empty, sizeof empty - 1, MSG_NOSIGNAL), (ssize_t)(sizeof empty - 1));
  assert_int_equal(shutdown(sv[1], SHUT_WR), 0);
  struct UPNParg args[10];
  memset(args, 0, sizeof args);
  for (size_t i = 0; i < a->n; i++) {
    args[i].elt = a->args[i].name;
    args[i].val = a->args[i].value;
  }
  int size = 0;
  free(simpleUPnPcommand(sv[0], url, a->service, a->name, a->n > 0 ? args : NULL, &size));
  size_t have = 0;
  for (int guard = 0; guard < 64; guard++) {
    ssize_t n = recv(sv[1], out + have, cap - have, MSG_DONTWAIT);
    if (n <= 0)
      break;
    have += (size_t)n;
  }
  close(sv[1]);
  return have;
}

static void test_same_as_miniupnpc(void **state) {
  (void)state;
  for (size_t n = 0; n < sizeof actions / sizeof actions[0] * 3; n++) {
    const action_t *a = &actions[n / 3];
    const target_t *t = &targets[n % 3];
    char ours[4096], theirs[4096], h1[2048], h2[2048];
    size_t l1 = build_at(t, a, ours, sizeof ours);
    size_t l2 = miniupnpc_octets(t->url, a, theirs, sizeof theirs);
    assert_true(l2 > 0);
    const char *b1, *b2;
    size_t bl1, bl2;
    split(ours, l1, h1, sizeof h1, &b1, &bl1);
    split(theirs, l2, h2, sizeof h2, &b2, &bl2);
    assert_string_equal(h1, h2);
    assert_int_equal(bl1, bl2);
    assert_memory_equal(b1, b2, bl1);
  }
}
#endif

static void test_hostile_inputs_refused(void **state) {
  (void)state;
  char out[4096];
  size_t len = 7;
  portmap_soap_arg_t ok = {"NewProtocol", "TCP"};
  portmap_soap_arg_t lt = {"NewPortMappingDescription", "<b>"};
  portmap_soap_arg_t badname = {"New Protocol", "TCP"};
  portmap_soap_arg_t crname = {"New\r\nX-Evil: 1", "TCP"};
  assert_int_equal(
      portmap_soap_build(HOST, PORT, PATH, UA, SVC1, "A", &ok, 1, out, sizeof out, &len), 0);
  assert_int_equal(portmap_soap_build(HOST, 0, PATH, UA, SVC1, "A", &ok, 1, out, sizeof out, &len),
                   -1);
  assert_int_equal(
      portmap_soap_build(HOST, 65536, PATH, UA, SVC1, "A", &ok, 1, out, sizeof out, &len), -1);
  assert_int_equal(
      portmap_soap_build(NULL, PORT, PATH, UA, SVC1, "A", &ok, 1, out, sizeof out, &len), -1);
  assert_int_equal(portmap_soap_build(HOST, PORT, "", UA, SVC1, "A", &ok, 1, out, sizeof out, &len),
                   -1);
  assert_int_equal(
      portmap_soap_build(HOST, PORT, "/a b", UA, SVC1, "A", &ok, 1, out, sizeof out, &len), -1);
  assert_int_equal(
      portmap_soap_build(HOST, PORT, PATH, UA, SVC1 "\r\nX: y", "A", &ok, 1, out, sizeof out, &len),
      -1);
  assert_int_equal(
      portmap_soap_build(HOST "\r\n", PORT, PATH, UA, SVC1, "A", &ok, 1, out, sizeof out, &len),
      -1);
  assert_int_equal(
      portmap_soap_build(HOST, PORT, PATH, UA, SVC1, "A\"#", &ok, 1, out, sizeof out, &len), -1);
  assert_int_equal(
      portmap_soap_build(HOST, PORT, PATH, UA, SVC1, "A", &lt, 1, out, sizeof out, &len), -1);
  assert_int_equal(
      portmap_soap_build(HOST, PORT, PATH, UA, SVC1, "A", &badname, 1, out, sizeof out, &len), -1);
  assert_int_equal(
      portmap_soap_build(HOST, PORT, PATH, UA, SVC1, "A", &crname, 1, out, sizeof out, &len), -1);
  assert_int_equal(
      portmap_soap_build(HOST, PORT, PATH, UA, SVC1, "A", NULL, 1, out, sizeof out, &len), -1);
  assert_int_equal(portmap_soap_build(HOST, PORT, PATH, UA, SVC1, "A", &ok, 1, NULL, 10, &len), -1);
  assert_int_equal(
      portmap_soap_build(HOST, PORT, PATH, UA, SVC1, "A", &ok, 1, out, sizeof out, NULL), -1);
}

/* The envelope is capped at 2048 octets, as miniupnpc's. */
static void test_body_cap(void **state) {
  (void)state;
  char big[2100];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  portmap_soap_arg_t a = {"NewPortMappingDescription", big};
  char out[8192];
  size_t len = 0;
  assert_int_equal(
      portmap_soap_build(HOST, PORT, PATH, UA, SVC1, "A", &a, 1, out, sizeof out, &len), -1);
  big[1500] = '\0';
  assert_int_equal(
      portmap_soap_build(HOST, PORT, PATH, UA, SVC1, "A", &a, 1, out, sizeof out, &len), 0);
}

/* Every cap below the need fails, and nothing lands past cap. */
static void test_never_past_cap(void **state) {
  (void)state;
  char full[4096];
  size_t need = build(&actions[2], full, sizeof full);
  for (size_t cap = 0; cap <= need; cap++) {
    char out[4096 + 16];
    memset(out, 0x5a, sizeof out);
    size_t len = 0;
    const action_t *a = &actions[2];
    int rc = portmap_soap_build(HOST, PORT, PATH, UA, a->service, a->name, a->args, a->n, out, cap,
                                &len);
    if (cap < need) {
      assert_int_equal(rc, -1);
    } else {
      assert_int_equal(rc, 0);
      assert_int_equal(len, need);
      assert_memory_equal(out, full, need);
    }
    for (size_t i = cap; i < sizeof out; i++)
      assert_int_equal((unsigned char)out[i], 0x5a);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_content_length_is_the_body),
    cmocka_unit_test(test_exact_octets),
#if MINIUPNPC_API_VERSION < 19
    cmocka_unit_test(test_same_as_miniupnpc),
#endif
    cmocka_unit_test(test_hostile_inputs_refused),
    cmocka_unit_test(test_body_cap),
    cmocka_unit_test(test_never_past_cap),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
