/* SPDX-License-Identifier: MIT */
/* Unit tests for src/util/strings.c: messages, names and config defaults. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <portmap/portmap.h>

#define LAST_STATUS 19

static void test_strerror_every_status(void **state) {
  (void)state;
  for (int i = 0; i <= LAST_STATUS; i++) {
    const char *m = portmap_strerror((portmap_status_t)i);
    assert_non_null(m);
    if (m[0] == '\0' || strcmp(m, "unknown status") == 0)
      fail_msg("status %d has no message", i);
    /* One line, no trailing punctuation or newline. */
    assert_null(strchr(m, '\n'));
    /* Every message is different from every other. */
    for (int j = 0; j < i; j++)
      if (strcmp(m, portmap_strerror((portmap_status_t)j)) == 0)
        fail_msg("statuses %d and %d share the message \"%s\"", i, j, m);
  }
}

static void test_strerror_specific(void **state) {
  (void)state;
  assert_string_equal(portmap_strerror(PORTMAP_OK), "success");
  assert_string_equal(portmap_strerror(PORTMAP_ERR_NOMEM), "out of memory");
  assert_string_equal(portmap_strerror(PORTMAP_ERR_NO_GATEWAY), "no default gateway found");
  assert_string_equal(portmap_strerror((portmap_status_t)(LAST_STATUS + 1)), "unknown status");
  assert_string_equal(portmap_strerror((portmap_status_t)-1), "unknown status");
  assert_string_equal(portmap_strerror((portmap_status_t)1000), "unknown status");
}

static void test_pcp_result_names(void **state) {
  (void)state;
  static const char *const want[] = {
      "SUCCESS",          "UNSUPP_VERSION",        "NOT_AUTHORIZED",   "MALFORMED_REQUEST",
      "UNSUPP_OPCODE",    "UNSUPP_OPTION",         "MALFORMED_OPTION", "NETWORK_FAILURE",
      "NO_RESOURCES",     "UNSUPP_PROTOCOL",       "USER_EX_QUOTA",    "CANNOT_PROVIDE_EXTERNAL",
      "ADDRESS_MISMATCH", "EXCESSIVE_REMOTE_PEERS"};
  for (int i = 0; i < 14; i++)
    assert_string_equal(portmap_pcp_result_name(i), want[i]);
  assert_string_equal(portmap_pcp_result_name(14), "UNKNOWN");
  assert_string_equal(portmap_pcp_result_name(-1), "UNKNOWN");
  assert_string_equal(portmap_pcp_result_name(255), "UNKNOWN");
  assert_string_equal(portmap_pcp_result_name(INT32_MAX), "UNKNOWN");
  assert_string_equal(portmap_pcp_result_name(INT32_MIN), "UNKNOWN");
}

static void test_backend_names(void **state) {
  (void)state;
  assert_string_equal(portmap_backend_name(PORTMAP_BACKEND_PCP), "pcp");
  assert_string_equal(portmap_backend_name(PORTMAP_BACKEND_NATPMP), "natpmp");
  assert_string_equal(portmap_backend_name(PORTMAP_BACKEND_UPNP), "upnp");
  assert_string_equal(portmap_backend_name(PORTMAP_BACKEND_NONE), "none");
  assert_string_equal(portmap_backend_name((portmap_backend_t)3), "none");
  assert_string_equal(portmap_backend_name((portmap_backend_t)8), "none");
}

static void test_event_names(void **state) {
  (void)state;
  assert_string_equal(portmap_event_name(PORTMAP_EVENT_MAPPED), "mapped");
  assert_string_equal(portmap_event_name(PORTMAP_EVENT_RENEWED), "renewed");
  assert_string_equal(portmap_event_name(PORTMAP_EVENT_CHANGED), "changed");
  assert_string_equal(portmap_event_name(PORTMAP_EVENT_LOST), "lost");
  assert_string_equal(portmap_event_name(PORTMAP_EVENT_FAILED), "failed");
  assert_string_equal(portmap_event_name(PORTMAP_EVENT_DELETED), "deleted");
  assert_string_equal(portmap_event_name((portmap_event_t)0), "unknown");
  assert_string_equal(portmap_event_name((portmap_event_t)7), "unknown");
}

static void test_config_init(void **state) {
  (void)state;
  portmap_config_t cfg;
  memset(&cfg, 0xa5, sizeof cfg);
  portmap_config_init(&cfg);
  assert_null(cfg.gateway);
  assert_null(cfg.local_address);
  assert_int_equal(cfg.backends, 0);
  assert_int_equal(cfg.pcp_irt_ms, 3000);
  assert_int_equal(cfg.pcp_mrt_ms, 1024000);
  assert_int_equal(cfg.pcp_mrc, 0);
  assert_int_equal(cfg.pcp_mrd_ms, 0);
  assert_int_equal(cfg.request_timeout_ms, 0);
  assert_int_equal(cfg.destroy_timeout_ms, 2000);
  assert_int_equal(cfg.probe_timeout_ms, 500);
  assert_int_equal(cfg.server_port, 5351);
  assert_int_equal(cfg.announce_port, 0);
  assert_null(cfg.log_cb);
  assert_null(cfg.log_user);
  assert_int_equal(cfg.log_level, PORTMAP_LOG_WARN);
  assert_null(cfg.trace_cb);
  assert_null(cfg.trace_user);
  assert_null(cfg.clock_cb);
  assert_null(cfg.clock_user);
  assert_null(cfg.random_cb);
  assert_null(cfg.random_user);
  portmap_config_init(NULL);
}

static void test_request_init(void **state) {
  (void)state;
  portmap_request_t req;
  memset(&req, 0xa5, sizeof req);
  portmap_request_init(&req);
  assert_int_equal(req.protocol, PORTMAP_PROTO_TCP);
  assert_int_equal(req.internal_port, 0);
  assert_int_equal(req.external_port, 0);
  assert_null(req.external_address);
  assert_int_equal(req.lifetime, 0);
  assert_int_equal(req.flags, 0);
  assert_null(req.description);
  assert_null(req.peer_address);
  assert_int_equal(req.peer_port, 0);
  assert_null(req.third_party);
  assert_null(req.filters);
  assert_int_equal(req.n_filters, 0);
  assert_null(req.nonce);
  assert_int_equal(req.ipv6, 0);
  portmap_request_init(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_strerror_every_status), cmocka_unit_test(test_strerror_specific),
      cmocka_unit_test(test_pcp_result_names),      cmocka_unit_test(test_backend_names),
      cmocka_unit_test(test_event_names),           cmocka_unit_test(test_config_init),
      cmocka_unit_test(test_request_init),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
