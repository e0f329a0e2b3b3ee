/* Temporary: weak stand-ins until the NAT-PMP and UPnP backends land. */
#include "backends/backend.h"

static portmap_status_t pending_create(portmap_client_t *c, void **state) {
  (void)c;
  (void)state;
  return PORTMAP_ERR_UNSUPPORTED;
}

__attribute__((weak)) const portmap_backend_ops_t portmap_natpmp_backend = {
    .id = PORTMAP_BACKEND_NATPMP, .name = "natpmp", .create = pending_create};
__attribute__((weak)) const portmap_backend_ops_t portmap_upnp_backend = {
    .id = PORTMAP_BACKEND_UPNP, .name = "upnp", .create = pending_create};
