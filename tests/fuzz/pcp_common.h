/* SPDX-License-Identifier: MIT */
/* Shared by the PCP fuzz targets: abort on a broken rule, and compare the
 * fields requests and responses have in common after a round trip. */
#ifndef PORTMAP_FUZZ_PCP_COMMON_H
#define PORTMAP_FUZZ_PCP_COMMON_H

#include <stdlib.h>
#include <string.h>

#include "pcp/wire.h"

static inline void check(int cond) {
  if (!cond)
    abort();
}

/* Everything but the header fields only one direction has (client
 * address; result and epoch). */
static inline void check_same_common_fields(const pcp_msg_t *a, const pcp_msg_t *b) {
  check(a->opcode == b->opcode);
  /* K1: ANNOUNCE lifetimes are sent as 0 */
  check(b->lifetime == (a->opcode == PCP_OP_ANNOUNCE ? 0 : a->lifetime));
  check(memcmp(a->nonce, b->nonce, PCP_NONCE_LEN) == 0);
  check(a->protocol == b->protocol);
  check(a->internal_port == b->internal_port);
  check(a->external_port == b->external_port);
  check(memcmp(a->external_addr, b->external_addr, 16) == 0);
  check(a->peer_port == b->peer_port);
  check(memcmp(a->peer_addr, b->peer_addr, 16) == 0);
  check(a->has_third_party == b->has_third_party);
  check(memcmp(a->third_party, b->third_party, 16) == 0);
  check(a->prefer_failure == b->prefer_failure);
  check(a->n_filters == b->n_filters && b->n_filters <= PCP_MAX_FILTERS);
  for (size_t i = 0; i < a->n_filters; i++) {
    check(a->filters[i].prefix_len == b->filters[i].prefix_len);
    check(a->filters[i].port == b->filters[i].port);
    check(memcmp(a->filters[i].addr, b->filters[i].addr, 16) == 0);
  }
  check(a->description_len == b->description_len && b->description_len <= PCP_MAX_DESCRIPTION);
  check(memcmp(a->description, b->description, a->description_len) == 0);
  check(b->description[b->description_len] == '\0');
  check(b->n_unknown_options == 0 && !b->has_unknown_mandatory);
}

#endif
