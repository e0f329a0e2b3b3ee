/* Temporary: a weak stand-in until the UPnP backend lands. */
#include "backends/backend.h"

static portmap_status_t pending_create(portmap_client_t *c, void **state) {
  (void)c;
  (void)state;
  return PORTMAP_ERR_UNSUPPORTED;
}

__attribute__((weak)) const portmap_backend_ops_t portmap_upnp_backend = {
    .id = PORTMAP_BACKEND_UPNP, .name = "upnp", .create = pending_create};
