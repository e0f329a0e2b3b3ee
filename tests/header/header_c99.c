/* SPDX-License-Identifier: MIT */
/* Compiled as strict C99 with -pedantic -Werror: the public header must pass. */
#include <portmap/portmap.h>

int portmap_header_c99_check(void);
int portmap_header_c99_check(void) {
  portmap_request_t req;
  portmap_request_init(&req);
  return req.protocol == PORTMAP_PROTO_TCP ? 0 : 1;
}
