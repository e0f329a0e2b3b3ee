/* SPDX-License-Identifier: MIT */
/*
 * Tests of the fake PCP server itself (tests/fake/fake_pcp.c), driven by a
 * plain UDP socket on loopback that speaks through the real codec
 * (pcp_encode_request / pcp_decode_response). Waiting is poll() with a
 * short timeout; time is the fake's injected clock.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fake_pcp.h"
#include "pcp/wire.h"

#define WAIT_MS 200 /* a datagram we expect */
#define QUIET_MS 20 /* proving that nothing arrives: loopback is immediate */

static const uint8_t LO4[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1};
static const uint8_t EXT_DEFAULT[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 51, 100, 7};

typedef struct env {
  fake_pcp_t *f;
  int fd;
  uint16_t port;
  uint8_t addr[16];
  struct sockaddr_storage self;
  socklen_t selflen;
  struct sockaddr_storage srv;
  socklen_t srvlen;
  uint8_t last_sent[PCP_MAX_PACKET];
  size_t last_sent_len;
} env_t;

static int client_socket(int ipv6, struct sockaddr_storage *ss, socklen_t *len) {
  int fd = socket(ipv6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return -1;
  }
  memset(ss, 0, sizeof *ss);
  if (ipv6) {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_addr = in6addr_loopback;
    *len = sizeof *sin6;
  } else {
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *len = sizeof *sin;
  }
  if (bind(fd, (struct sockaddr *)ss, *len) != 0 ||
      getsockname(fd, (struct sockaddr *)ss, len) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static uint16_t sockaddr_port(const struct sockaddr_storage *ss) {
  if (ss->ss_family == AF_INET) {
    return ntohs(((const struct sockaddr_in *)ss)->sin_port);
  }
  return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

static int env_open(env_t *e, int ipv6) {
  memset(e, 0, sizeof *e);
  e->fd = -1;
  e->f = fake_pcp_new(ipv6);
  if (e->f == NULL) {
    return -1;
  }
  e->fd = client_socket(ipv6, &e->self, &e->selflen);
  if (e->fd < 0) {
    return -1;
  }
  e->port = sockaddr_port(&e->self);
  fake_pcp_addr(e->f, e->addr);
  e->srvlen = fake_pcp_sockaddr(e->f, &e->srv);
  return 0;
}

static void env_close(env_t *e) {
  fake_pcp_free(e->f);
  if (e->fd >= 0) {
    close(e->fd);
  }
}

static int setup(void **state) {
  env_t *e = test_malloc(sizeof *e);
  if (env_open(e, 0) != 0) {
    env_close(e);
    test_free(e);
    return -1;
  }
  *state = e;
  return 0;
}

static int teardown(void **state) {
  env_t *e = *state;
  env_close(e);
  test_free(e);
  return 0;
}

static void nonce_fill(uint8_t nonce[PCP_NONCE_LEN], uint8_t seed) {
  for (size_t i = 0; i < PCP_NONCE_LEN; i++) {
    nonce[i] = (uint8_t)(seed + i * 17);
  }
}

static pcp_msg_t map_req(const env_t *e, uint8_t seed, uint8_t protocol, uint16_t iport,
                         uint16_t suggested, uint32_t lifetime) {
  pcp_msg_t m;
  pcp_msg_init(&m);
  m.opcode = PCP_OP_MAP;
  m.lifetime = lifetime;
  memcpy(m.client_addr, e->addr, 16);
  nonce_fill(m.nonce, seed);
  m.protocol = protocol;
  m.internal_port = iport;
  m.external_port = suggested;
  pcp_addr_any(m.external_addr, !pcp_addr_is_v4mapped(e->addr));
  return m;
}

static void send_bytes(env_t *e, const uint8_t *buf, size_t len) {
  ssize_t n = sendto(e->fd, buf, len, 0, (const struct sockaddr *)&e->srv, e->srvlen);
  assert_int_equal(n, (ssize_t)len);
}

static void send_req(env_t *e, const pcp_msg_t *m) {
  assert_int_equal(pcp_encode_request(m, e->last_sent, sizeof e->last_sent, &e->last_sent_len),
                   PCP_WIRE_OK);
  send_bytes(e, e->last_sent, e->last_sent_len);
}

/* Encode, then overwrite octets the encoder would (rightly) refuse to
 * produce, to see what the server does with them. */
static void send_patched(env_t *e, const pcp_msg_t *m, size_t offset, const uint8_t *bytes,
                         size_t n) {
  assert_int_equal(pcp_encode_request(m, e->last_sent, sizeof e->last_sent, &e->last_sent_len),
                   PCP_WIRE_OK);
  assert_true(offset + n <= e->last_sent_len);
  memcpy(e->last_sent + offset, bytes, n);
  send_bytes(e, e->last_sent, e->last_sent_len);
}

/* Wait (bounded) for the request to reach the fake, then let it work. */
static void pump(env_t *e, uint64_t now_ms) {
  struct pollfd p = {.fd = fake_pcp_fd(e->f), .events = POLLIN, .revents = 0};
  (void)poll(&p, 1, WAIT_MS);
  assert_true(fake_pcp_process_at(e->f, now_ms) >= 0);
}

/* One datagram for the client, or -1 after timeout_ms. */
static ssize_t recv_dgram(env_t *e, uint8_t *buf, size_t cap, int timeout_ms, uint16_t *from_port) {
  struct pollfd p = {.fd = e->fd, .events = POLLIN, .revents = 0};
  struct sockaddr_storage from;
  socklen_t fromlen = sizeof from;
  if (poll(&p, 1, timeout_ms) <= 0) {
    return -1;
  }
  ssize_t n = recvfrom(e->fd, buf, cap, MSG_DONTWAIT, (struct sockaddr *)&from, &fromlen);
  if (n >= 0 && from_port != NULL) {
    *from_port = sockaddr_port(&from);
  }
  return n;
}

static void expect_quiet(env_t *e) {
  uint8_t buf[PCP_MAX_PACKET];
  assert_true(recv_dgram(e, buf, sizeof buf, QUIET_MS, NULL) < 0);
}

/* Receive one response from the server port and decode it. */
static void recv_resp(env_t *e, pcp_msg_t *out) {
  uint8_t buf[PCP_MAX_PACKET + 16];
  uint16_t from = 0;
  ssize_t n = recv_dgram(e, buf, sizeof buf, WAIT_MS, &from);
  assert_true(n > 0);
  assert_int_equal(from, fake_pcp_port(e->f));
  assert_int_equal(pcp_decode_response(buf, (size_t)n, out), PCP_WIRE_OK);
}

static void exchange(env_t *e, const pcp_msg_t *req, uint64_t now_ms, pcp_msg_t *out) {
  send_req(e, req);
  pump(e, now_ms);
  recv_resp(e, out);
}

/* ---- tests ------------------------------------------------------------- */

static void test_map_success(void **state) {
  env_t *e = *state;
  pcp_msg_t req = map_req(e, 1, 17, 5000, 0, 3600);
  pcp_msg_t r;
  exchange(e, &req, 0, &r);
  assert_int_equal(r.opcode, PCP_OP_MAP);
  assert_int_equal(r.result, PCP_SUCCESS);
  assert_int_equal(r.lifetime, 3600);
  assert_int_equal(r.epoch, 0);
  assert_int_equal(r.external_port, 5000);
  assert_memory_equal(r.external_addr, EXT_DEFAULT, 16);
  assert_memory_equal(r.nonce, req.nonce, PCP_NONCE_LEN);
  assert_int_equal(r.protocol, 17);
  assert_int_equal(r.internal_port, 5000);

  assert_int_equal(fake_pcp_received(e->f), 1);
  assert_int_equal(fake_pcp_requests(e->f, PCP_OP_MAP), 1);
  assert_int_equal(fake_pcp_requests(e->f, PCP_OP_PEER), 0);
  assert_int_equal(fake_pcp_malformed(e->f), 0);
  assert_int_equal(fake_pcp_mapping_count(e->f), 1);
  const fake_pcp_mapping_t *m = fake_pcp_mapping_get(e->f, 0);
  assert_non_null(m);
  assert_int_equal(m->opcode, PCP_OP_MAP);
  assert_memory_equal(m->nonce, req.nonce, PCP_NONCE_LEN);
  assert_memory_equal(m->internal_addr, LO4, 16);
  assert_int_equal(m->external_port, 5000);
  assert_int_equal(m->lifetime, 3600);
  assert_int_equal(m->expiry_ms, 3600000);
  assert_int_equal(fake_pcp_find_mapping(e->f, req.nonce, 17, 5000), 0);
  assert_int_equal(fake_pcp_find_mapping(e->f, req.nonce, 6, 5000), -1);

  pcp_msg_t last;
  assert_int_equal(fake_pcp_last_request(e->f, &last), 0);
  assert_int_equal(last.internal_port, 5000);
  assert_int_equal(last.lifetime, 3600);
  struct sockaddr_storage src;
  socklen_t srclen = 0;
  assert_int_equal(fake_pcp_last_source(e->f, &src, &srclen), 0);
  assert_int_equal(sockaddr_port(&src), e->port);

  assert_int_equal(fake_pcp_log_count(e->f), 1);
  const fake_pcp_request_t *l = fake_pcp_log_get(e->f, 0);
  assert_non_null(l);
  assert_int_equal(l->len, e->last_sent_len);
  assert_memory_equal(l->data, e->last_sent, e->last_sent_len);
  assert_int_equal(l->fate, FAKE_PCP_ANSWERED);
  assert_int_equal(l->result, PCP_SUCCESS);
  assert_int_equal(l->decode_status, PCP_WIRE_OK);
  assert_null(fake_pcp_log_get(e->f, 1));
}

static void test_port_assignment(void **state) {
  env_t *e = *state;
  pcp_msg_t r;
  /* suggested and free */
  pcp_msg_t a = map_req(e, 1, 6, 8080, 40000, 600);
  exchange(e, &a, 0, &r);
  assert_int_equal(r.external_port, 40000);
  /* suggestion taken: the internal port */
  pcp_msg_t b = map_req(e, 2, 6, 8081, 40000, 600);
  exchange(e, &b, 0, &r);
  assert_int_equal(r.result, PCP_SUCCESS);
  assert_int_equal(r.external_port, 8081);
  /* internal port taken too (reserved): the next free one */
  assert_int_equal(fake_pcp_reserve_port(e->f, 6, 8082), 0);
  assert_int_equal(fake_pcp_reserve_port(e->f, 6, 8083), 0);
  pcp_msg_t c = map_req(e, 3, 6, 8082, 0, 600);
  exchange(e, &c, 0, &r);
  assert_int_equal(r.external_port, 8084);
  /* the same port numbers for UDP are unaffected */
  pcp_msg_t d = map_req(e, 4, 17, 8082, 40000, 600);
  exchange(e, &d, 0, &r);
  assert_int_equal(r.external_port, 40000);
  /* port range (Q8): below it the internal port is not allowed */
  fake_pcp_set_port_range(e->f, 1024, 65535);
  pcp_msg_t g = map_req(e, 5, 6, 80, 0, 600);
  exchange(e, &g, 0, &r);
  assert_int_equal(r.result, PCP_SUCCESS);
  assert_true(r.external_port >= 1024);
  assert_int_equal(fake_pcp_mapping_count(e->f), 5);
}

static void test_prefer_failure(void **state) {
  env_t *e = *state;
  pcp_msg_t r;
  assert_int_equal(fake_pcp_reserve_port(e->f, 17, 7000), 0);
  pcp_msg_t a = map_req(e, 1, 17, 6000, 7000, 600);
  a.prefer_failure = 1;
  exchange(e, &a, 0, &r);
  /* checklist H8, G3 */
  assert_int_equal(r.result, PCP_CANNOT_PROVIDE_EXTERNAL);
  assert_int_equal(r.lifetime, 1800);
  assert_int_equal(r.external_port, 7000);
  assert_int_equal(fake_pcp_mapping_count(e->f), 0);
  a.external_port = 7001;
  exchange(e, &a, 0, &r);
  assert_int_equal(r.result, PCP_SUCCESS);
  assert_int_equal(r.external_port, 7001);
  assert_true(r.prefer_failure);
}

static void test_lifetime_clamp(void **state) {
  env_t *e = *state;
  pcp_msg_t r;
  pcp_msg_t a = map_req(e, 1, 17, 100, 0, 10);
  exchange(e, &a, 0, &r);
  assert_int_equal(r.lifetime, 120);
  pcp_msg_t b = map_req(e, 2, 17, 101, 0, 1000000);
  exchange(e, &b, 0, &r);
  assert_int_equal(r.lifetime, 86400);
  fake_pcp_set_lifetime_limits(e->f, 30, 600);
  pcp_msg_t c = map_req(e, 3, 17, 102, 0, 7200);
  exchange(e, &c, 0, &r);
  assert_int_equal(r.lifetime, 600);
  fake_pcp_set_fixed_lifetime(e->f, 60);
  pcp_msg_t d = map_req(e, 4, 17, 103, 0, 7200);
  exchange(e, &d, 0, &r);
  assert_int_equal(r.lifetime, 60);
}

static void test_renew(void **state) {
  env_t *e = *state;
  pcp_msg_t r;
  pcp_msg_t a = map_req(e, 1, 17, 5000, 0, 3600);
  exchange(e, &a, 0, &r);
  assert_int_equal(r.external_port, 5000);
  /* the renewal keeps the port even if it suggests another */
  a.external_port = 5555;
  exchange(e, &a, 100000, &r);
  assert_int_equal(r.result, PCP_SUCCESS);
  assert_int_equal(r.external_port, 5000);
  assert_int_equal(r.epoch, 100);
  assert_int_equal(fake_pcp_mapping_count(e->f), 1);
  const fake_pcp_mapping_t *m = fake_pcp_mapping_get(e->f, 0);
  assert_int_equal(m->renewals, 1);
  assert_int_equal(m->created_ms, 0);
  assert_int_equal(m->renewed_ms, 100000);
  assert_int_equal(m->expiry_ms, 100000 + 3600000);
  /* a renewal with another nonce is refused (Q18) */
  pcp_msg_t b = map_req(e, 9, 17, 5000, 0, 3600);
  exchange(e, &b, 200000, &r);
  assert_int_equal(r.result, PCP_NOT_AUTHORIZED);
  assert_int_equal(r.lifetime, 3500);
}

static void test_delete_nonce(void **state) {
  env_t *e = *state;
  pcp_msg_t r;
  pcp_msg_t a = map_req(e, 1, 6, 22000, 0, 7200);
  exchange(e, &a, 0, &r);
  assert_int_equal(fake_pcp_mapping_count(e->f), 1);
  /* checklist D2, Q18: a delete with another nonce */
  pcp_msg_t wrong = map_req(e, 2, 6, 22000, 0, 0);
  exchange(e, &wrong, 1000, &r);
  assert_int_equal(r.result, PCP_NOT_AUTHORIZED);
  assert_int_equal(r.lifetime, 7199);
  assert_int_equal(fake_pcp_mapping_count(e->f), 1);
  /* checklist H6: the right nonce */
  a.lifetime = 0;
  exchange(e, &a, 2000, &r);
  assert_int_equal(r.result, PCP_SUCCESS);
  assert_int_equal(r.lifetime, 0);
  assert_int_equal(fake_pcp_mapping_count(e->f), 0);
  /* deleting what is not there succeeds */
  exchange(e, &a, 3000, &r);
  assert_int_equal(r.result, PCP_SUCCESS);
  assert_int_equal(r.lifetime, 0);
}

static void test_expiry(void **state) {
  env_t *e = *state;
  pcp_msg_t r;
  pcp_msg_t a = map_req(e, 1, 17, 4000, 0, 120);
  exchange(e, &a, 0, &r);
  assert_int_equal(fake_pcp_mapping_count(e->f), 1);
  fake_pcp_set_time(e->f, 119999);
  assert_int_equal(fake_pcp_mapping_count(e->f), 1);
  fake_pcp_set_time(e->f, 120000);
  assert_int_equal(fake_pcp_mapping_count(e->f), 0);
}

static void test_drop_and_retransmit(void **state) {
  env_t *e = *state;
  pcp_msg_t r;
  pcp_msg_t a = map_req(e, 1, 17, 4000, 0, 600);
  fake_pcp_drop_next(e->f, 1);
  send_req(e, &a);
  pump(e, 1000);
  expect_quiet(e);
  assert_int_equal(fake_pcp_mapping_count(e->f), 0);
  /* the retransmission, identical octets, three seconds later */
  send_bytes(e, e->last_sent, e->last_sent_len);
  pump(e, 4000);
  recv_resp(e, &r);
  assert_int_equal(r.result, PCP_SUCCESS);
  assert_int_equal(fake_pcp_log_count(e->f), 2);
  const fake_pcp_request_t *l0 = fake_pcp_log_get(e->f, 0);
  const fake_pcp_request_t *l1 = fake_pcp_log_get(e->f, 1);
  assert_int_equal(l0->fate, FAKE_PCP_DROPPED);
  assert_int_equal(l0->result, -1);
  assert_int_equal(l1->fate, FAKE_PCP_ANSWERED);
  assert_int_equal(l0->time_ms, 1000);
  assert_int_equal(l1->time_ms, 4000);
  assert_int_equal(l0->len, l1->len);
  assert_memory_equal(l0->data, l1->data, l0->len);
  assert_int_equal(fake_pcp_requests(e->f, PCP_OP_MAP), 2);
}

static void test_duplicates(void **state) {
  env_t *e = *state;
  uint8_t first[PCP_MAX_PACKET];
  uint8_t buf[PCP_MAX_PACKET];
  fake_pcp_set_duplicates(e->f, 3);
  pcp_msg_t a = map_req(e, 1, 17, 4000, 0, 600);
  send_req(e, &a);
  pump(e, 0);
  ssize_t n0 = recv_dgram(e, first, sizeof first, WAIT_MS, NULL);
  assert_true(n0 > 0);
  for (int i = 0; i < 2; i++) {
    ssize_t n = recv_dgram(e, buf, sizeof buf, WAIT_MS, NULL);
    assert_int_equal(n, n0);
    assert_memory_equal(buf, first, (size_t)n0);
  }
  expect_quiet(e);
}

static void test_reorder(void **state) {
  env_t *e = *state;
  pcp_msg_t r;
  fake_pcp_set_hold(e->f, 1);
  pcp_msg_t a = map_req(e, 1, 17, 1111, 0, 600);
  pcp_msg_t b = map_req(e, 2, 17, 2222, 0, 600);
  send_req(e, &a);
  pump(e, 0);
  send_req(e, &b);
  pump(e, 0);
  expect_quiet(e);
  assert_int_equal(fake_pcp_held(e->f), 2);
  fake_pcp_set_hold(e->f, 0);
  assert_int_equal(fake_pcp_release(e->f), 2);
  assert_int_equal(fake_pcp_held(e->f), 0);
  recv_resp(e, &r);
  assert_int_equal(r.internal_port, 2222);
  recv_resp(e, &r);
  assert_int_equal(r.internal_port, 1111);
}

static void test_force_result(void **state) {
  env_t *e = *state;
  pcp_msg_t r;
  pcp_msg_t a = map_req(e, 1, 17, 4000, 4001, 600);
  fake_pcp_force_result(e->f, PCP_NO_RESOURCES, 1);
  exchange(e, &a, 0, &r);
  assert_int_equal(r.result, PCP_NO_RESOURCES);
  assert_int_equal(r.lifetime, 30);
  assert_int_equal(r.external_port, 4001); /* G3: a copy of the request */
  assert_int_equal(fake_pcp_mapping_count(e->f), 0);
  fake_pcp_force_result(e->f, PCP_NOT_AUTHORIZED, 1);
  exchange(e, &a, 0, &r);
  assert_int_equal(r.result, PCP_NOT_AUTHORIZED);
  assert_int_equal(r.lifetime, 1800);
  fake_pcp_set_error_lifetimes(e->f, 5, 50);
  fake_pcp_force_result(e->f, PCP_USER_EX_QUOTA, 1);
  exchange(e, &a, 0, &r);
  assert_int_equal(r.lifetime, 5);
  exchange(e, &a, 0, &r);
  assert_int_equal(r.result, PCP_SUCCESS);
  assert_int_equal(fake_pcp_mapping_count(e->f), 1);
}

/* G3 tests need an error response whose external fields are neither the
 * request's nor a grant's. */
static void test_error_external(void **state) {
  env_t *e = *state;
  pcp_msg_t r;
  static const uint8_t other[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 50};
  pcp_msg_t a = map_req(e, 1, 17, 4000, 4001, 600);
  fake_pcp_set_error_external(e->f, other, 4444);
  fake_pcp_force_result(e->f, PCP_NETWORK_FAILURE, 1);
  exchange(e, &a, 0, &r);
  assert_int_equal(r.result, PCP_NETWORK_FAILURE);
  assert_int_equal(r.external_port, 4444);
  assert_memory_equal(r.external_addr, other, 16);
  assert_int_equal(r.internal_port, 4000); /* the rest is still the request's */
  /* errors the fake finds itself too (a nonce that does not own it) */
  exchange(e, &a, 0, &r);
  assert_int_equal(r.result, PCP_SUCCESS);
  assert_int_equal(r.external_port, 4001); /* a grant is untouched */
  assert_memory_equal(r.external_addr, EXT_DEFAULT, 16);
  pcp_msg_t b = map_req(e, 2, 17, 4000, 4001, 600);
  exchange(e, &b, 0, &r);
  assert_int_equal(r.result, PCP_NOT_AUTHORIZED);
  assert_int_equal(r.external_port, 4444);
  fake_pcp_set_error_external(e->f, NULL, 0);
  exchange(e, &b, 0, &r);
  assert_int_equal(r.result, PCP_NOT_AUTHORIZED);
  assert_int_equal(r.external_port, 4001); /* a copy of the request again */
  assert_memory_equal(r.external_addr, b.external_addr, 16);
}

static void test_no_resources(void **state) {
  env_t *e = *state;
  pcp_msg_t r;
  fake_pcp_set_max_mappings(e->f, 1);
  pcp_msg_t a = map_req(e, 1, 17, 4000, 0, 600);
  pcp_msg_t b = map_req(e, 2, 17, 4001, 0, 600);
  exchange(e, &a, 0, &r);
  assert_int_equal(r.result, PCP_SUCCESS);
  exchange(e, &b, 0, &r);
  assert_int_equal(r.result, PCP_NO_RESOURCES);
  assert_int_equal(r.lifetime, 30);
}

static void test_wrong_nonce(void **state) {
  env_t *e = *state;
  pcp_msg_t r;
  pcp_msg_t a = map_req(e, 1, 17, 4000, 0, 600);
  fake_pcp_wrong_nonce_next(e->f, 1);
  exchange(e, &a, 0, &r);
  assert_int_equal(r.result, PCP_SUCCESS);
  assert_memory_not_equal(r.nonce, a.nonce, PCP_NONCE_LEN);
  assert_int_equal(fake_pcp_mapping_count(e->f), 1);
  exchange(e, &a, 0, &r);
  assert_memory_equal(r.nonce, a.nonce, PCP_NONCE_LEN);
}

static void test_spoofed_answer(void **state) {
  env_t *e = *state;
  uint8_t buf[PCP_MAX_PACKET];
  uint16_t from = 0;
  pcp_msg_t r;
  pcp_msg_t a = map_req(e, 1, 17, 4000, 0, 600);
  assert_int_not_equal(fake_pcp_spoof_port(e->f), fake_pcp_port(e->f));
  fake_pcp_spoof_next(e->f, 1);
  send_req(e, &a);
  pump(e, 0);
  ssize_t n = recv_dgram(e, buf, sizeof buf, WAIT_MS, &from);
  assert_true(n > 0);
  assert_int_equal(from, fake_pcp_spoof_port(e->f));
  assert_int_equal(pcp_decode_response(buf, (size_t)n, &r), PCP_WIRE_OK);
  /* the next one is genuine again */
  exchange(e, &a, 0, &r);
  /* and send_raw can spoof too */
  static const uint8_t junk[4] = {1, 2, 3, 4};
  assert_int_equal(
      fake_pcp_send_raw(e->f, (const struct sockaddr *)&e->self, e->selflen, junk, 4, 1), 0);
  n = recv_dgram(e, buf, sizeof buf, WAIT_MS, &from);
  assert_int_equal(n, 4);
  assert_int_equal(from, fake_pcp_spoof_port(e->f));
}

static void test_truncated_and_garbage(void **state) {
  env_t *e = *state;
  uint8_t buf[PCP_MAX_PACKET];
  uint8_t good[PCP_MAX_PACKET];
  pcp_msg_t r;
  pcp_msg_t a = map_req(e, 1, 17, 4000, 0, 600);
  send_req(e, &a);
  pump(e, 0);
  ssize_t good_len = recv_dgram(e, good, sizeof good, WAIT_MS, NULL);
  assert_int_equal(good_len, PCP_HEADER_LEN + PCP_MAP_LEN);

  fake_pcp_truncate_next(e->f, 1, 20);
  send_req(e, &a);
  pump(e, 0);
  ssize_t n = recv_dgram(e, buf, sizeof buf, WAIT_MS, NULL);
  assert_int_equal(n, 20);
  assert_int_not_equal(pcp_decode_response(buf, (size_t)n, &r), PCP_WIRE_OK);

  fake_pcp_garbage_next(e->f, 1);
  send_req(e, &a);
  pump(e, 0);
  n = recv_dgram(e, buf, sizeof buf, WAIT_MS, NULL);
  assert_int_equal(n, good_len);
  assert_memory_not_equal(buf, good, (size_t)n);
  assert_int_not_equal(pcp_decode_response(buf, (size_t)n, &r), PCP_WIRE_OK);
}

static void test_natpmp_personality(void **state) {
  env_t *e = *state;
  uint8_t buf[64];
  pcp_msg_t r;
  fake_pcp_set_natpmp(e->f, FAKE_PCP_NATPMP_OP128);
  pcp_msg_t a = map_req(e, 1, 17, 4000, 0, 600);
  send_req(e, &a);
  pump(e, 70000);
  ssize_t n = recv_dgram(e, buf, sizeof buf, WAIT_MS, NULL);
  /* checklist F2: exactly 8 octets */
  assert_int_equal(n, 8);
  static const uint8_t want[8] = {0, 129, 0, 1, 0, 0, 0, 70};
  assert_memory_equal(buf, want, 8);
  assert_int_equal(pcp_decode_response(buf, (size_t)n, &r), PCP_WIRE_NATPMP);
  assert_int_equal(fake_pcp_mapping_count(e->f), 0);

  fake_pcp_set_natpmp(e->f, FAKE_PCP_NATPMP_OP0);
  send_req(e, &a);
  pump(e, 70000);
  n = recv_dgram(e, buf, sizeof buf, WAIT_MS, NULL);
  assert_int_equal(n, 8);
  assert_int_equal(buf[1], 0);
  assert_int_equal(pcp_decode_response(buf, (size_t)n, &r), PCP_WIRE_NATPMP);
}

static void test_silent(void **state) {
  env_t *e = *state;
  fake_pcp_set_silent(e->f, 1);
  pcp_msg_t a = map_req(e, 1, 17, 4000, 0, 600);
  send_req(e, &a);
  pump(e, 0);
  expect_quiet(e);
  assert_int_equal(fake_pcp_received(e->f), 1);
  assert_int_equal(fake_pcp_log_get(e->f, 0)->fate, FAKE_PCP_SILENT);
  assert_int_equal(fake_pcp_mapping_count(e->f), 0);
}

static void test_reboot_resets_epoch(void **state) {
  env_t *e = *state;
  pcp_msg_t r;
  pcp_msg_t a = map_req(e, 1, 17, 4000, 0, 3600);
  exchange(e, &a, 50000, &r);
  assert_int_equal(r.epoch, 50);
  assert_int_equal(fake_pcp_epoch(e->f), 50);
  fake_pcp_reboot(e->f, 60000);
  assert_int_equal(fake_pcp_epoch(e->f), 0);
  assert_int_equal(fake_pcp_mapping_count(e->f), 0);
  pcp_msg_t ann;
  pcp_msg_init(&ann);
  ann.opcode = PCP_OP_ANNOUNCE;
  memcpy(ann.client_addr, e->addr, 16);
  exchange(e, &ann, 61500, &r);
  assert_int_equal(r.opcode, PCP_OP_ANNOUNCE);
  assert_int_equal(r.result, PCP_SUCCESS);
  assert_int_equal(r.epoch, 1);
  assert_int_equal(fake_pcp_requests(e->f, PCP_OP_ANNOUNCE), 1);
  /* an epoch jump without losing the table */
  exchange(e, &a, 62000, &r);
  fake_pcp_set_epoch(e->f, 5);
  assert_int_equal(fake_pcp_epoch(e->f), 5);
  assert_int_equal(fake_pcp_mapping_count(e->f), 1);
}

static void test_unsolicited(void **state) {
  env_t *e = *state;
  uint8_t buf[PCP_MAX_PACKET];
  uint16_t from = 0;
  pcp_msg_t r;
  pcp_msg_t a = map_req(e, 1, 17, 4000, 0, 3600);
  exchange(e, &a, 0, &r);
  fake_pcp_set_time(e->f, 10000);

  assert_int_equal(fake_pcp_send_announce(e->f, (const struct sockaddr *)&e->self, e->selflen), 0);
  ssize_t n = recv_dgram(e, buf, sizeof buf, WAIT_MS, &from);
  assert_int_equal(n, 24);
  assert_int_equal(from, fake_pcp_port(e->f));
  assert_int_equal(pcp_decode_response(buf, (size_t)n, &r), PCP_WIRE_OK);
  assert_int_equal(r.opcode, PCP_OP_ANNOUNCE);
  assert_int_equal(r.result, PCP_SUCCESS);
  assert_int_equal(r.epoch, 10);

  static const uint8_t ext2[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 9};
  fake_pcp_set_external(e->f, ext2);
  assert_int_equal(fake_pcp_send_map_update(e->f, (const struct sockaddr *)&e->self, e->selflen, 0),
                   0);
  n = recv_dgram(e, buf, sizeof buf, WAIT_MS, &from);
  assert_true(n > 0);
  assert_int_equal(from, fake_pcp_port(e->f));
  assert_int_equal(pcp_decode_response(buf, (size_t)n, &r), PCP_WIRE_OK);
  assert_int_equal(r.opcode, PCP_OP_MAP);
  assert_memory_equal(r.nonce, a.nonce, PCP_NONCE_LEN);
  assert_memory_equal(r.external_addr, ext2, 16);
  assert_int_equal(r.external_port, 4000);
  assert_int_equal(r.lifetime, 3590);
  assert_int_equal(fake_pcp_send_map_update(e->f, (const struct sockaddr *)&e->self, e->selflen, 5),
                   -1);
  /* new mappings get the new address too */
  pcp_msg_t b = map_req(e, 2, 17, 4001, 0, 3600);
  exchange(e, &b, 11000, &r);
  assert_memory_equal(r.external_addr, ext2, 16);
}

static void test_description_q26(void **state) {
  env_t *e = *state;
  pcp_msg_t r;
  pcp_msg_t a = map_req(e, 1, 17, 4000, 0, 600);
  memcpy(a.description, "hello", 6);
  a.description_len = 5;
  exchange(e, &a, 0, &r);
  assert_int_equal(r.result, PCP_SUCCESS);
  assert_string_equal(fake_pcp_mapping_get(e->f, 0)->description, "hello");

  fake_pcp_set_q26(e->f, 1);
  pcp_msg_t b = map_req(e, 2, 17, 4001, 0, 600);
  memcpy(b.description, "hello", 6);
  b.description_len = 5;
  exchange(e, &b, 0, &r);
  assert_int_equal(r.result, PCP_MALFORMED_OPTION);
  assert_int_equal(r.lifetime, 1800);
  memcpy(b.description, "abcd", 5);
  b.description_len = 4;
  exchange(e, &b, 0, &r);
  assert_int_equal(r.result, PCP_SUCCESS);
  /* FILTER (length 20) is fine under Q26 */
  pcp_msg_t c = map_req(e, 3, 17, 4002, 0, 600);
  c.n_filters = 1;
  c.filters[0].prefix_len = 128;
  c.filters[0].port = 9;
  memcpy(c.filters[0].addr, LO4, 16);
  exchange(e, &c, 0, &r);
  assert_int_equal(r.result, PCP_SUCCESS);
  assert_int_equal(fake_pcp_mapping_get(e->f, 2)->n_filters, 1);
}

static void test_third_party(void **state) {
  env_t *e = *state;
  pcp_msg_t r;
  static const uint8_t other[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 50};
  pcp_msg_t a = map_req(e, 1, 6, 80, 0, 600);
  a.has_third_party = 1;
  memcpy(a.third_party, other, 16);
  exchange(e, &a, 0, &r);
  /* Q27 */
  assert_int_equal(r.result, PCP_UNSUPP_OPTION);
  fake_pcp_set_allow_third_party(e->f, 1);
  exchange(e, &a, 0, &r);
  assert_int_equal(r.result, PCP_SUCCESS);
  const fake_pcp_mapping_t *m = fake_pcp_mapping_get(e->f, 0);
  assert_memory_equal(m->internal_addr, other, 16);
  assert_true(m->third_party);
}

static void test_address_mismatch(void **state) {
  env_t *e = *state;
  pcp_msg_t r;
  pcp_msg_t a = map_req(e, 1, 6, 80, 0, 600);
  a.client_addr[15] = 2; /* 127.0.0.2 */
  exchange(e, &a, 0, &r);
  assert_int_equal(r.result, PCP_ADDRESS_MISMATCH);
  fake_pcp_set_check_client_addr(e->f, 0);
  exchange(e, &a, 0, &r);
  assert_int_equal(r.result, PCP_SUCCESS);
}

static void test_protocol_zero(void **state) {
  env_t *e = *state;
  pcp_msg_t r;
  /* protocol 0 with internal port 80 (H1); the port is at offset 24+16 */
  static const uint8_t port80[2] = {0, 80};
  pcp_msg_t a = map_req(e, 1, 0, 0, 0, 600);
  send_patched(e, &a, PCP_HEADER_LEN + 16, port80, 2);
  pump(e, 0);
  recv_resp(e, &r);
  assert_int_equal(r.result, PCP_MALFORMED_REQUEST);
  /* delete-all for this address and nonce */
  pcp_msg_t b = map_req(e, 1, 6, 81, 0, 600);
  pcp_msg_t c = map_req(e, 1, 17, 82, 0, 600);
  pcp_msg_t d = map_req(e, 2, 17, 83, 0, 600);
  exchange(e, &b, 0, &r);
  exchange(e, &c, 0, &r);
  exchange(e, &d, 0, &r);
  assert_int_equal(fake_pcp_mapping_count(e->f), 3);
  pcp_msg_t all = map_req(e, 1, 0, 0, 0, 0);
  exchange(e, &all, 0, &r);
  assert_int_equal(r.result, PCP_SUCCESS);
  assert_int_equal(fake_pcp_mapping_count(e->f), 1);
  assert_int_equal(fake_pcp_mapping_get(e->f, 0)->internal_port, 83);
}

static void test_peer(void **state) {
  env_t *e = *state;
  pcp_msg_t r;
  static const uint8_t peer[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 1};
  pcp_msg_t a = map_req(e, 1, 17, 4000, 41000, 600);
  exchange(e, &a, 0, &r);
  assert_int_equal(r.external_port, 41000);
  pcp_msg_t p = map_req(e, 2, 17, 4000, 0, 600);
  p.opcode = PCP_OP_PEER;
  p.peer_port = 3478;
  memcpy(p.peer_addr, peer, 16);
  exchange(e, &p, 0, &r);
  assert_int_equal(r.opcode, PCP_OP_PEER);
  assert_int_equal(r.result, PCP_SUCCESS);
  assert_int_equal(r.external_port, 41000); /* shares the MAP's port */
  assert_int_equal(r.peer_port, 3478);
  assert_int_equal(fake_pcp_requests(e->f, PCP_OP_PEER), 1);
  assert_int_equal(fake_pcp_mapping_count(e->f), 2);
  assert_int_equal(fake_pcp_mapping_get(e->f, 1)->opcode, PCP_OP_PEER);
  /* PEER cannot shorten (I1) */
  p.lifetime = 120;
  exchange(e, &p, 10000, &r);
  assert_int_equal(r.lifetime, 590);
  /* remote port 0 is malformed (I1); it is at offset 24+36 */
  static const uint8_t port0[2] = {0, 0};
  send_patched(e, &p, PCP_HEADER_LEN + PCP_MAP_LEN, port0, 2);
  pump(e, 10000);
  recv_resp(e, &r);
  assert_int_equal(r.result, PCP_MALFORMED_REQUEST);
}

static void test_malformed_requests(void **state) {
  env_t *e = *state;
  uint8_t buf[PCP_MAX_PACKET + 8];
  pcp_msg_t r;
  /* 12 octets of version 2: too short, MALFORMED_REQUEST in 24 octets */
  uint8_t shortreq[12] = {2, 1, 0, 0, 0, 0, 0, 60};
  send_bytes(e, shortreq, sizeof shortreq);
  pump(e, 0);
  ssize_t n = recv_dgram(e, buf, sizeof buf, WAIT_MS, NULL);
  assert_int_equal(n, PCP_HEADER_LEN + PCP_MAP_LEN);
  assert_int_equal(pcp_decode_response(buf, (size_t)n, &r), PCP_WIRE_OK);
  assert_int_equal(r.result, PCP_MALFORMED_REQUEST);
  assert_int_equal(r.lifetime, 1800);
  /* one octet: silently dropped */
  uint8_t one[1] = {2};
  send_bytes(e, one, 1);
  pump(e, 0);
  expect_quiet(e);
  /* version 1: UNSUPP_VERSION from a version-2 server */
  pcp_msg_t a = map_req(e, 1, 17, 4000, 0, 600);
  uint8_t v1[PCP_MAX_PACKET];
  size_t v1len = 0;
  assert_int_equal(pcp_encode_request(&a, v1, sizeof v1, &v1len), PCP_WIRE_OK);
  v1[0] = 1;
  send_bytes(e, v1, v1len);
  pump(e, 0);
  n = recv_dgram(e, buf, sizeof buf, WAIT_MS, NULL);
  assert_true(n >= 24);
  assert_int_equal(buf[0], PCP_VERSION);
  assert_int_equal(buf[1], 0x80 | PCP_OP_MAP);
  assert_int_equal(buf[3], PCP_UNSUPP_VERSION);
  /* unknown opcode */
  v1[0] = 2;
  v1[1] = 5;
  send_bytes(e, v1, v1len);
  pump(e, 0);
  n = recv_dgram(e, buf, sizeof buf, WAIT_MS, NULL);
  assert_true(n >= 24);
  assert_int_equal(buf[1], 0x80 | 5);
  assert_int_equal(buf[3], PCP_UNSUPP_OPCODE);
  /* a response sent to the server (R bit): dropped */
  v1[1] = 0x80 | PCP_OP_MAP;
  send_bytes(e, v1, v1len);
  pump(e, 0);
  expect_quiet(e);
  /* longer than 1100 octets: MALFORMED_REQUEST, the first 1100 copied */
  uint8_t big[1200];
  memset(big, 0, sizeof big);
  memcpy(big, v1, v1len);
  big[1] = PCP_OP_MAP;
  send_bytes(e, big, sizeof big);
  pump(e, 0);
  n = recv_dgram(e, buf, sizeof buf, WAIT_MS, NULL);
  assert_int_equal(n, PCP_MAX_PACKET);
  assert_int_equal(buf[3], PCP_MALFORMED_REQUEST);
  assert_int_equal(fake_pcp_log_get(e->f, 5)->len, sizeof big);
  assert_memory_equal(fake_pcp_log_get(e->f, 5)->data, big, sizeof big);

  assert_int_equal(fake_pcp_received(e->f), 6);
  assert_int_equal(fake_pcp_malformed(e->f), 6);
  assert_int_equal(fake_pcp_log_get(e->f, 1)->fate, FAKE_PCP_IGNORED);
  assert_int_equal(fake_pcp_mapping_count(e->f), 0);
}

/* Whatever arrives, the fake neither crashes nor loops (run under ASan). */
static void test_random_datagrams(void **state) {
  env_t *e = *state;
  uint8_t buf[1300];
  uint32_t x = 12345;
  for (int i = 0; i < 200; i++) {
    size_t len = (size_t)(i * 7 % 1300);
    for (size_t k = 0; k < len; k++) {
      x = x * 1103515245u + 12345u;
      buf[k] = (uint8_t)(x >> 16);
    }
    if (len > 1 && i % 2 == 0) {
      buf[0] = PCP_VERSION;
      buf[1] = (uint8_t)(buf[1] & 0x7f);
    }
    send_bytes(e, buf, len);
    pump(e, (uint64_t)i);
    while (recv_dgram(e, buf, sizeof buf, 0, NULL) >= 0) {
    }
  }
  assert_int_equal(fake_pcp_received(e->f), 200);
}

static fake_pcp_hook_action_t hook_cb(void *user, fake_pcp_t *f, const fake_pcp_request_t *req,
                                      pcp_msg_t *response) {
  int *calls = user;
  (void)f;
  (*calls)++;
  if (req->msg.internal_port == 1) {
    return FAKE_PCP_HOOK_SILENT;
  }
  if (req->msg.internal_port == 2) {
    response->result = PCP_NETWORK_FAILURE;
    response->lifetime = 7;
    return FAKE_PCP_HOOK_REPLY;
  }
  return FAKE_PCP_HOOK_DEFAULT;
}

static void test_hook(void **state) {
  env_t *e = *state;
  int calls = 0;
  pcp_msg_t r;
  fake_pcp_set_hook(e->f, hook_cb, &calls);
  pcp_msg_t a = map_req(e, 1, 17, 1, 0, 600);
  send_req(e, &a);
  pump(e, 0);
  expect_quiet(e);
  pcp_msg_t b = map_req(e, 2, 17, 2, 0, 600);
  exchange(e, &b, 0, &r);
  assert_int_equal(r.result, PCP_NETWORK_FAILURE);
  assert_int_equal(r.lifetime, 7);
  pcp_msg_t c = map_req(e, 3, 17, 3, 0, 600);
  exchange(e, &c, 0, &r);
  assert_int_equal(r.result, PCP_SUCCESS);
  assert_int_equal(calls, 3);
  assert_int_equal(fake_pcp_mapping_count(e->f), 1);
}

static void test_log_bounded(void **state) {
  env_t *e = *state;
  pcp_msg_t r;
  for (uint16_t i = 0; i < FAKE_PCP_LOG_SIZE + 6; i++) {
    pcp_msg_t a = map_req(e, 1, 17, (uint16_t)(1000 + i), 0, 600);
    exchange(e, &a, (uint64_t)i * 10, &r);
  }
  assert_int_equal(fake_pcp_log_count(e->f), FAKE_PCP_LOG_SIZE);
  const fake_pcp_request_t *oldest = fake_pcp_log_get(e->f, 0);
  assert_int_equal(oldest->msg.internal_port, 1006);
  assert_int_equal(oldest->time_ms, 60);
  assert_int_equal(fake_pcp_log_get(e->f, FAKE_PCP_LOG_SIZE - 1)->msg.internal_port,
                   1000 + FAKE_PCP_LOG_SIZE + 5);
  assert_int_equal(fake_pcp_received(e->f), FAKE_PCP_LOG_SIZE + 6);
  fake_pcp_log_clear(e->f);
  assert_int_equal(fake_pcp_log_count(e->f), 0);
  assert_int_equal(fake_pcp_received(e->f), FAKE_PCP_LOG_SIZE + 6);
}

static void test_two_fakes(void **state) {
  env_t *e = *state;
  env_t other;
  pcp_msg_t r;
  assert_int_equal(env_open(&other, 0), 0);
  assert_int_not_equal(fake_pcp_port(other.f), fake_pcp_port(e->f));
  fake_pcp_set_natpmp(other.f, FAKE_PCP_NATPMP_OP128);
  pcp_msg_t a = map_req(e, 1, 17, 4000, 0, 600);
  exchange(e, &a, 5000, &r);
  assert_int_equal(r.epoch, 5);
  assert_int_equal(fake_pcp_mapping_count(e->f), 1);
  assert_int_equal(fake_pcp_mapping_count(other.f), 0);
  assert_int_equal(fake_pcp_received(other.f), 0);
  assert_int_equal(fake_pcp_epoch(other.f), 0);
  env_close(&other);
}

static void test_ipv6(void **state) {
  env_t e6;
  pcp_msg_t r;
  (void)state;
  if (env_open(&e6, 1) != 0) {
    env_close(&e6);
    skip(); /* no IPv6 loopback here */
  }
  pcp_msg_t a = map_req(&e6, 1, 17, 4000, 0, 600);
  assert_memory_equal(a.client_addr, in6addr_loopback.s6_addr, 16);
  exchange(&e6, &a, 0, &r);
  assert_int_equal(r.result, PCP_SUCCESS);
  assert_memory_equal(fake_pcp_mapping_get(e6.f, 0)->internal_addr, in6addr_loopback.s6_addr, 16);
  env_close(&e6);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_map_success, setup, teardown),
      cmocka_unit_test_setup_teardown(test_port_assignment, setup, teardown),
      cmocka_unit_test_setup_teardown(test_prefer_failure, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lifetime_clamp, setup, teardown),
      cmocka_unit_test_setup_teardown(test_renew, setup, teardown),
      cmocka_unit_test_setup_teardown(test_delete_nonce, setup, teardown),
      cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
      cmocka_unit_test_setup_teardown(test_drop_and_retransmit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_duplicates, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reorder, setup, teardown),
      cmocka_unit_test_setup_teardown(test_force_result, setup, teardown),
      cmocka_unit_test_setup_teardown(test_error_external, setup, teardown),
      cmocka_unit_test_setup_teardown(test_no_resources, setup, teardown),
      cmocka_unit_test_setup_teardown(test_wrong_nonce, setup, teardown),
      cmocka_unit_test_setup_teardown(test_spoofed_answer, setup, teardown),
      cmocka_unit_test_setup_teardown(test_truncated_and_garbage, setup, teardown),
      cmocka_unit_test_setup_teardown(test_natpmp_personality, setup, teardown),
      cmocka_unit_test_setup_teardown(test_silent, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reboot_resets_epoch, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unsolicited, setup, teardown),
      cmocka_unit_test_setup_teardown(test_description_q26, setup, teardown),
      cmocka_unit_test_setup_teardown(test_third_party, setup, teardown),
      cmocka_unit_test_setup_teardown(test_address_mismatch, setup, teardown),
      cmocka_unit_test_setup_teardown(test_protocol_zero, setup, teardown),
      cmocka_unit_test_setup_teardown(test_peer, setup, teardown),
      cmocka_unit_test_setup_teardown(test_malformed_requests, setup, teardown),
      cmocka_unit_test_setup_teardown(test_random_datagrams, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hook, setup, teardown),
      cmocka_unit_test_setup_teardown(test_log_bounded, setup, teardown),
      cmocka_unit_test_setup_teardown(test_two_fakes, setup, teardown),
      cmocka_unit_test(test_ipv6),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
