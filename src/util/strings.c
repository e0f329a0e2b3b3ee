/* SPDX-License-Identifier: MIT */
/*
 * Names and messages for the public enums, and the defaults of the public
 * configuration structs. The switches have no default so that -Wswitch
 * flags a status or event added to portmap.h without a message here.
 */
#include <portmap/portmap.h>

#include <string.h>

PORTMAP_API const char *portmap_strerror(portmap_status_t status) {
  switch (status) {
  case PORTMAP_OK:
    return "success";
  case PORTMAP_ERR_INVALID:
    return "invalid argument";
  case PORTMAP_ERR_PORT:
    return "port not valid for this protocol or request";
  case PORTMAP_ERR_LIFETIME:
    return "lifetime out of range";
  case PORTMAP_ERR_OPTION:
    return "option not allowed for this request";
  case PORTMAP_ERR_THIRD_PARTY:
    return "third-party address is our own address";
  case PORTMAP_ERR_ADDRESS:
    return "address unparsable or of the wrong family";
  case PORTMAP_ERR_NOMEM:
    return "out of memory";
  case PORTMAP_ERR_SYSTEM:
    return "system call failed";
  case PORTMAP_ERR_NO_GATEWAY:
    return "no default gateway found";
  case PORTMAP_ERR_TIMEOUT:
    return "no answer in time";
  case PORTMAP_ERR_REFUSED:
    return "the gateway refused the request";
  case PORTMAP_ERR_UNSUPPORTED:
    return "the backend cannot express this request";
  case PORTMAP_ERR_NATPMP_GATEWAY:
    return "the gateway speaks NAT-PMP, not PCP";
  case PORTMAP_ERR_RECURSIVE:
    return "call not allowed from inside a callback";
  case PORTMAP_ERR_STATE:
    return "object in the wrong state for this call";
  case PORTMAP_ERR_NO_BACKEND:
    return "no enabled backend is usable";
  case PORTMAP_ERR_CANCELLED:
    return "cancelled: the client was destroyed";
  case PORTMAP_ERR_UNREACHABLE:
    return "the gateway port is unreachable";
  case PORTMAP_ERR_NO_IGD:
    return "no UPnP device of the gateway offers a WAN connection service";
  }
  return "unknown status";
}

/* RFC 6887 section 7.4. */
PORTMAP_API const char *portmap_pcp_result_name(int result) {
  static const char *const names[] = {
      "SUCCESS",          "UNSUPP_VERSION",        "NOT_AUTHORIZED",   "MALFORMED_REQUEST",
      "UNSUPP_OPCODE",    "UNSUPP_OPTION",         "MALFORMED_OPTION", "NETWORK_FAILURE",
      "NO_RESOURCES",     "UNSUPP_PROTOCOL",       "USER_EX_QUOTA",    "CANNOT_PROVIDE_EXTERNAL",
      "ADDRESS_MISMATCH", "EXCESSIVE_REMOTE_PEERS"};
  if (result < 0 || (size_t)result >= sizeof names / sizeof names[0])
    return "UNKNOWN";
  return names[result];
}

PORTMAP_API const char *portmap_backend_name(portmap_backend_t backend) {
  switch (backend) {
  case PORTMAP_BACKEND_PCP:
    return "pcp";
  case PORTMAP_BACKEND_NATPMP:
    return "natpmp";
  case PORTMAP_BACKEND_UPNP:
    return "upnp";
  case PORTMAP_BACKEND_NONE:
    return "none";
  }
  return "none";
}

PORTMAP_API const char *portmap_event_name(portmap_event_t event) {
  switch (event) {
  case PORTMAP_EVENT_MAPPED:
    return "mapped";
  case PORTMAP_EVENT_RENEWED:
    return "renewed";
  case PORTMAP_EVENT_CHANGED:
    return "changed";
  case PORTMAP_EVENT_LOST:
    return "lost";
  case PORTMAP_EVENT_FAILED:
    return "failed";
  case PORTMAP_EVENT_DELETED:
    return "deleted";
  }
  return "unknown";
}

PORTMAP_API unsigned portmap_version(const char **text) {
  if (text != NULL)
    *text = PORTMAP_VERSION_STR;
  return PORTMAP_VERSION_HEX;
}

/* The defaults are made in a whole struct of this version, then the
 * caller's first `size` octets of it are written (a program built with an
 * older, smaller struct gets only what it has room for). */
PORTMAP_API void portmap_config_init_sized(portmap_config_t *out, size_t size) {
  if (out == NULL)
    return;
  portmap_config_t full;
  portmap_config_t *cfg = &full;
  memset(cfg, 0, sizeof *cfg);
  cfg->gateway = NULL;
  cfg->local_address = NULL;
  cfg->backends = 0;
  cfg->pcp_irt_ms = 3000;
  cfg->pcp_mrt_ms = 1024000;
  cfg->pcp_mrc = 0;
  cfg->pcp_mrd_ms = 0;
  cfg->request_timeout_ms = 0;
  cfg->destroy_timeout_ms = 2000;
  cfg->probe_timeout_ms = 500;
  cfg->server_port = 5351;
  cfg->announce_port = 0;
  cfg->natpmp_irt_ms = 250;
  cfg->natpmp_max_tries = 9;
  cfg->ssdp_port = 1900;
  cfg->ssdp_multicast = 1;
  cfg->upnp_timeout_ms = 2000;
  cfg->log_cb = NULL;
  cfg->log_user = NULL;
  cfg->log_level = PORTMAP_LOG_WARN;
  cfg->trace_cb = NULL;
  cfg->trace_user = NULL;
  cfg->clock_cb = NULL;
  cfg->clock_user = NULL;
  cfg->random_cb = NULL;
  cfg->random_user = NULL;
  cfg->fd_cb = NULL;
  cfg->fd_user = NULL;
  cfg->timer_cb = NULL;
  cfg->timer_user = NULL;
  memcpy(out, cfg, size < sizeof full ? size : sizeof full);
}

PORTMAP_API void portmap_request_init_sized(portmap_request_t *out, size_t size) {
  if (out == NULL)
    return;
  portmap_request_t full;
  portmap_request_t *req = &full;
  memset(req, 0, sizeof *req);
  req->protocol = PORTMAP_PROTO_TCP;
  req->internal_port = 0;
  req->external_port = 0;
  req->external_address = NULL;
  req->lifetime = 0;
  req->flags = 0;
  req->description = NULL;
  req->peer_address = NULL;
  req->peer_port = 0;
  req->third_party = NULL;
  req->filters = NULL;
  req->n_filters = 0;
  req->nonce = NULL;
  req->ipv6 = 0;
  memcpy(out, req, size < sizeof full ? size : sizeof full);
}
