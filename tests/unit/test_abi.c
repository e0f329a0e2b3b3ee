/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the ABI that can grow and the configuration checks: the
 * sized entry points read and write only as many octets as the program's
 * struct has, refuse a struct smaller than version 1.0's, and every
 * timeout, count and port of the configuration is checked, never wrapped.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include <portmap/portmap.h>

#include "internal.h"
#include "test_support.h"

#define GUARD 0xA5

static int all_guard(const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != GUARD)
      return 0;
  return 1;
}

static void test_version(void **state) {
  (void)state;
  const char *text = NULL;
  assert_int_equal(portmap_version(&text), PORTMAP_VERSION_HEX);
  assert_string_equal(text, PORTMAP_VERSION_STR);
  assert_int_equal(portmap_version(NULL), PORTMAP_VERSION_HEX);
  assert_int_equal(PORTMAP_VERSION_HEX >> 16, PORTMAP_VERSION_MAJOR);
}

/* An older program's smaller struct: only its own octets are written. */
static void test_init_writes_only_the_programs_size(void **state) {
  (void)state;
  unsigned char buf[sizeof(portmap_config_t) + 64];
  memset(buf, GUARD, sizeof buf);
  portmap_config_init_sized((portmap_config_t *)(void *)buf, PORTMAP_CONFIG_SIZE_1_0);
  assert_true(all_guard(buf + PORTMAP_CONFIG_SIZE_1_0, sizeof buf - PORTMAP_CONFIG_SIZE_1_0));
  portmap_config_t cfg;
  memcpy(&cfg, buf, sizeof cfg);
  assert_int_equal(cfg.pcp_irt_ms, 3000);
  assert_int_equal(cfg.probe_timeout_ms, 500);

  unsigned char rbuf[sizeof(portmap_request_t) + 64];
  memset(rbuf, GUARD, sizeof rbuf);
  portmap_request_init_sized((portmap_request_t *)(void *)rbuf, PORTMAP_REQUEST_SIZE_1_0);
  assert_true(all_guard(rbuf + PORTMAP_REQUEST_SIZE_1_0, sizeof rbuf - PORTMAP_REQUEST_SIZE_1_0));
}

static portmap_config_t quiet_config(void) {
  portmap_config_t cfg;
  portmap_config_init(&cfg);
  cfg.gateway = "127.0.0.1";
  cfg.backends = PORTMAP_BACKEND_PCP;
  cfg.server_port = test_free_udp_port(0x7f000001u);
  cfg.announce_port = -1;
  cfg.destroy_timeout_ms = 0;
  return cfg;
}

/* A config smaller than version 1.0's is refused; one of exactly that size
 * works, the rest taking its defaults. */
static void test_client_new_sizes(void **state) {
  (void)state;
  portmap_config_t cfg = quiet_config();
  portmap_client_t *c = NULL;
  assert_int_equal(portmap_client_new_sized(&cfg, PORTMAP_CONFIG_SIZE_1_0 - 1, &c),
                   PORTMAP_ERR_INVALID);
  assert_null(c);
  assert_int_equal(portmap_client_new_sized(&cfg, PORTMAP_CONFIG_SIZE_1_0, &c), PORTMAP_OK);
  assert_non_null(c);
  assert_int_equal(portmap_client_free(c), PORTMAP_OK);
  /* a newer program's bigger struct: what we do not know is ignored */
  unsigned char big[sizeof(portmap_config_t) + 32];
  memset(big, 0x7f, sizeof big);
  memcpy(big, &cfg, sizeof cfg);
  assert_int_equal(portmap_client_new_sized((portmap_config_t *)(void *)big, sizeof big, &c),
                   PORTMAP_OK);
  assert_int_equal(portmap_client_free(c), PORTMAP_OK);
  assert_int_equal(portmap_client_new_sized(NULL, 0, &c), PORTMAP_OK); /* defaults */
  assert_int_equal(portmap_client_free(c), PORTMAP_OK);
}

static void test_outputs_write_only_the_programs_size(void **state) {
  (void)state;
  portmap_config_t cfg = quiet_config();
  portmap_client_t *c = NULL;
  assert_int_equal(portmap_client_new(&cfg, &c), PORTMAP_OK);
  portmap_request_t req;
  portmap_request_init(&req);
  req.internal_port = 8000;
  portmap_mapping_t *m = NULL;
  assert_int_equal(portmap_map_sized(c, &req, PORTMAP_REQUEST_SIZE_1_0 - 1, NULL, NULL, &m),
                   PORTMAP_ERR_INVALID);
  assert_int_equal(portmap_map_sized(c, &req, PORTMAP_REQUEST_SIZE_1_0, NULL, NULL, &m),
                   PORTMAP_OK);

  unsigned char info[sizeof(portmap_info_t) + 64];
  memset(info, GUARD, sizeof info);
  assert_int_equal(
      portmap_mapping_info_sized(m, (portmap_info_t *)(void *)info, PORTMAP_INFO_SIZE_1_0 - 1),
      PORTMAP_ERR_INVALID);
  assert_true(all_guard(info, sizeof info));
  assert_int_equal(
      portmap_mapping_info_sized(m, (portmap_info_t *)(void *)info, PORTMAP_INFO_SIZE_1_0),
      PORTMAP_OK);
  assert_true(all_guard(info + PORTMAP_INFO_SIZE_1_0, sizeof info - PORTMAP_INFO_SIZE_1_0));
  portmap_info_t whole;
  memcpy(&whole, info, PORTMAP_INFO_SIZE_1_0);
  assert_int_equal(whole.internal_port, 8000);
  assert_int_equal(whole.protocol, PORTMAP_PROTO_TCP);

  unsigned char stats[sizeof(portmap_stats_t) + 16];
  memset(stats, GUARD, sizeof stats);
  assert_int_equal(
      portmap_client_stats_sized(c, (portmap_stats_t *)(void *)stats, PORTMAP_STATS_SIZE_1_0 - 1),
      PORTMAP_ERR_INVALID);
  assert_int_equal(
      portmap_client_stats_sized(c, (portmap_stats_t *)(void *)stats, PORTMAP_STATS_SIZE_1_0),
      PORTMAP_OK);
  assert_true(all_guard(stats + PORTMAP_STATS_SIZE_1_0, sizeof stats - PORTMAP_STATS_SIZE_1_0));

  unsigned char probe[sizeof(portmap_probe_result_t) + 16];
  assert_int_equal(portmap_probe_sync_sized(c, 10, (portmap_probe_result_t *)(void *)probe,
                                            PORTMAP_PROBE_RESULT_SIZE_1_0 - 1),
                   PORTMAP_ERR_INVALID);
  size_t count = 0;
  portmap_list_entry_t entry;
  assert_int_equal(
      portmap_list_sync_sized(c, 10, &entry, PORTMAP_LIST_ENTRY_SIZE_1_0 - 1, 1, &count),
      PORTMAP_ERR_INVALID);
  assert_int_equal(portmap_client_free(c), PORTMAP_OK);
}

/* Item 10 of the API issue: every timeout and count checked. */
static void test_config_ranges(void **state) {
  (void)state;
  struct {
    size_t offset;
    uint32_t ok, bad;
  } ms[] = {
      {offsetof(portmap_config_t, pcp_irt_ms), 3000, 0x80000000u},
      {offsetof(portmap_config_t, pcp_mrd_ms), INT32_MAX, 0x80000000u},
      {offsetof(portmap_config_t, request_timeout_ms), INT32_MAX, 0xFFFFFFFFu},
      {offsetof(portmap_config_t, destroy_timeout_ms), INT32_MAX, 0x80000000u},
      {offsetof(portmap_config_t, probe_timeout_ms), INT32_MAX, 0x80000000u},
      {offsetof(portmap_config_t, natpmp_irt_ms), INT32_MAX, 0x80000000u},
      {offsetof(portmap_config_t, upnp_timeout_ms), INT32_MAX, 0x80000000u},
      {offsetof(portmap_config_t, natpmp_max_tries), 32, 33},
  };
  for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
    for (int good = 0; good < 2; good++) {
      portmap_config_t cfg = quiet_config();
      cfg.pcp_mrt_ms = INT32_MAX; /* so that any pcp_irt_ms up to it is in order */
      uint32_t v = good ? ms[i].ok : ms[i].bad;
      memcpy((unsigned char *)&cfg + ms[i].offset, &v, sizeof v);
      portmap_client_t *c = NULL;
      portmap_status_t st = portmap_client_new(&cfg, &c);
      assert_int_equal(st, good ? PORTMAP_OK : PORTMAP_ERR_INVALID);
      portmap_client_free(c);
    }
  }
  portmap_config_t cfg = quiet_config();
  portmap_client_t *c = NULL;
  cfg.pcp_mrt_ms = 0x80000000u;
  assert_int_equal(portmap_client_new(&cfg, &c), PORTMAP_ERR_INVALID);
  cfg = quiet_config();
  cfg.natpmp_irt_ms = 0;
  assert_int_equal(portmap_client_new(&cfg, &c), PORTMAP_ERR_INVALID);
  cfg = quiet_config();
  cfg.ssdp_multicast = 2;
  assert_int_equal(portmap_client_new(&cfg, &c), PORTMAP_ERR_INVALID);
  cfg = quiet_config();
  cfg.log_level = (portmap_log_level_t)7;
  assert_int_equal(portmap_client_new(&cfg, &c), PORTMAP_ERR_INVALID);
  cfg = quiet_config();
  cfg.announce_port = 65536;
  assert_int_equal(portmap_client_new(&cfg, &c), PORTMAP_ERR_INVALID);
  assert_null(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_version),
      cmocka_unit_test(test_init_writes_only_the_programs_size),
      cmocka_unit_test(test_client_new_sizes),
      cmocka_unit_test(test_outputs_write_only_the_programs_size),
      cmocka_unit_test(test_config_ranges),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
