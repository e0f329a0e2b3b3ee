/* SPDX-License-Identifier: MIT */
/*
 * The IGD layer of the UPnP worker (see igd.h): the description fetch, the
 * SOAP actions' requests (miniupnpc's or src/upnp/soap.c's octets, by
 * miniupnpc API) over the bounded transport, their replies parsed, and the
 * result codes.
 */
#include "upnp/igd.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <miniupnpc/miniupnpc.h>
#include <miniupnpc/upnpcommands.h>
#include <miniupnpc/upnperrors.h>
#include <miniupnpc/upnpreplyparse.h>

#include "upnp/soap.h"

int portmap_upnp_is_http_failure(int rc) {
  return rc == UPNPCOMMAND_HTTP_ERROR || rc == UPNP_RC_TIMEOUT;
}

int portmap_upnp_is_nomem(int rc) {
  return rc == UPNP_RC_NOMEM || rc == UPNPCOMMAND_MEM_ALLOC_ERROR;
}

const char *portmap_upnp_rc_text(int rc, char *buf, size_t cap) {
  if (rc == 0)
    snprintf(buf, cap, "OK");
  else if (rc == UPNP_RC_TIMEOUT)
    snprintf(buf, cap, "timed out");
  else if (rc == UPNP_RC_TOO_LARGE)
    snprintf(buf, cap, "reply too large");
  else if (rc == UPNP_RC_ABORTED)
    snprintf(buf, cap, "abandoned");
  else if (rc == UPNP_RC_NOMEM || rc == UPNPCOMMAND_MEM_ALLOC_ERROR)
    snprintf(buf, cap, "out of memory");
  else if (rc == UPNPCOMMAND_HTTP_ERROR)
    snprintf(buf, cap, "HTTP failure");
  else if (rc < 0)
    snprintf(buf, cap, "miniupnpc error %d", rc);
  else {
    const char *s = strupnperror(rc);
    snprintf(buf, cap, "%d %s", rc, s != NULL ? s : "");
  }
  return buf;
}

void portmap_upnp_xml_escape(char *dst, size_t cap, const char *src) {
  size_t o = 0;
  for (size_t i = 0; src[i] != '\0'; i++) {
    const char *rep = NULL;
    switch (src[i]) {
    case '&':
      rep = "&amp;";
      break;
    case '<':
      rep = "&lt;";
      break;
    case '>':
      rep = "&gt;";
      break;
    case '"':
      rep = "&quot;";
      break;
    case '\'':
      rep = "&apos;";
      break;
    default:
      break;
    }
    size_t n = rep != NULL ? strlen(rep) : 1;
    if (o + n >= cap) {
      /* truncated: never end inside a UTF-8 sequence */
      while (o > 0 && ((unsigned char)dst[o - 1] & 0xC0) == 0x80)
        o--;
      if (o > 0 && ((unsigned char)dst[o - 1] & 0xC0) == 0xC0)
        o--;
      break;
    }
    if (rep != NULL)
      memcpy(dst + o, rep, n);
    else
      dst[o] = src[i];
    o += n;
  }
  dst[o] = '\0';
}

#if MINIUPNPC_API_VERSION < 19
/* The octets miniupnpc would send for this action. simpleUPnPcommand()
 * takes a connected socket (API < 19): we give it one end of a socketpair
 * whose other end already holds an empty reply and is shut for writing, so
 * it writes its request, reads that reply at once and returns; nothing
 * waits. It closes the socket it used, and only that one: whether it did
 * shows as the end of the stream on our end. */
static int soap_request(const upnp_call_t *k, const char *action, struct UPNParg *args, char *out,
                        size_t cap, size_t *len) {
  static const char empty[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return UPNPCOMMAND_UNKNOWN_ERROR;
  if (send(sv[1], empty, sizeof empty - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof empty - 1) ||
      shutdown(sv[1], SHUT_WR) != 0) {
    close(sv[0]);
    close(sv[1]);
    return UPNPCOMMAND_UNKNOWN_ERROR;
  }
  int size = 0;
  free(simpleUPnPcommand(sv[0], k->url, k->service, action, args, &size));
  size_t have = 0;
  int closed = 0, overflow = 0;
  for (;;) {
    char scratch[256];
    char *dst = have < cap ? out + have : scratch;
    ssize_t n = recv(sv[1], dst, have < cap ? cap - have : sizeof scratch, MSG_DONTWAIT);
    if (n > 0) {
      if (dst == scratch)
        overflow = 1; /* cannot be: miniupnpc caps its body at 2048 octets */
      else
        have += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    closed = n == 0;
    break;
  }
  if (!closed)
    close(sv[0]); /* miniupnpc returned without using it */
  close(sv[1]);
  *len = have;
  /* nothing written: miniupnpc refused the arguments (a body over 2048) */
  return have > 0 && !overflow ? 0 : UPNPCOMMAND_INVALID_ARGS;
}
#endif

#if MINIUPNPC_API_VERSION >= 19
/* miniupnpc no longer hands out the request octets: the same request from
 * our own builder (checked against miniupnpc's in test_soap). */
static int soap_request(const upnp_call_t *k, const portmap_ssdp_url_t *u, const char *action,
                        struct UPNParg *args, char *out, size_t cap, size_t *len) {
  portmap_soap_arg_t a[9];
  size_t n = 0;
  for (; args != NULL && args[n].elt != NULL; n++) {
    if (n == sizeof a / sizeof a[0])
      return UPNPCOMMAND_INVALID_ARGS;
    a[n].name = args[n].elt;
    a[n].value = args[n].val;
  }
  return portmap_soap_build(u->host, u->port, u->path, UPNP_USER_AGENT, k->service, action, a, n,
                            out, cap, len) == 0
             ? 0
             : UPNPCOMMAND_INVALID_ARGS;
}
#endif

/* One SOAP action over our bounded transport: the reply's body in r (the
 * caller's to free). 0 or a UPNPCOMMAND_ / UPNP_RC_ failure. */
static int soap_call(const upnp_io_t *io, const upnp_call_t *k, const char *action,
                     struct UPNParg *args, http_reply_t *r) {
  portmap_ssdp_url_t u;
  if (portmap_ssdp_url_parse(k->url, &u) != PORTMAP_SSDP_OK)
    return UPNPCOMMAND_INVALID_ARGS;
  char req[UPNP_SOAP_REQUEST_MAX];
  size_t len = 0;
#if MINIUPNPC_API_VERSION >= 19
  int rc = soap_request(k, &u, action, args, req, sizeof req, &len);
#else
  int rc = soap_request(k, action, args, req, sizeof req, &len);
#endif
  if (rc != 0)
    return rc;
  return portmap_upnp_http_exchange(io, &u, req, len, UPNP_SOAP_REPLY_MAX, r);
}

static const char *nv(struct NameValueParserData *p, const char *name) {
  return GetValueFromNameValueList(p, name);
}

/* A SOAP fault's UPnP error code wins over everything (as in miniupnpc). */
static int soap_result(struct NameValueParserData *p, int rc) {
  const char *e = nv(p, "errorCode");
  if (e == NULL)
    return rc;
  char *end;
  long v = strtol(e, &end, 10);
  return end == e || v < INT_MIN || v > INT_MAX ? UPNPCOMMAND_UNKNOWN_ERROR : (int)v;
}

static void describe(upnp_call_t *k, const upnp_io_t *io) {
  http_reply_t r;
  int rc = portmap_upnp_http_get(io, k->url, PORTMAP_UPNP_DESC_MAX, &r);
  if (rc != 0) {
    k->rc = rc;
    return;
  }
  k->http_status = r.status;
  k->descr = portmap_alloc_calloc(&k->alloc, 1, sizeof *k->descr);
  if (k->descr == NULL)
    k->rc = UPNPCOMMAND_MEM_ALLOC_ERROR;
  else if (r.status != 200 || r.len == 0 ||
           portmap_upnp_desc_parse(r.body, r.len, k->descr) != PORTMAP_SSDP_OK)
    k->rc = UPNPCOMMAND_INVALID_RESPONSE;
  else
    k->rc = 0;
  portmap_alloc_free(io->alloc, r.body);
}

void portmap_upnp_soap_reply(upnp_call_t *k, const char *body, size_t len) {
  /* as miniupnpc: the status does not matter, a fault carries errorCode */
  struct NameValueParserData p;
  memset(&p, 0, sizeof p);
  ParseNameValue(body, (int)len, &p);
  int rc = UPNPCOMMAND_UNKNOWN_ERROR;
  switch (k->kind) {
  case CALL_STATUS:
    copy_str(k->o_status, 64, nv(&p, "NewConnectionStatus"));
    copy_str(k->o_lasterr, 64, nv(&p, "NewLastConnectionError"));
    rc = nv(&p, "NewConnectionStatus") != NULL && nv(&p, "NewUptime") != NULL
             ? 0
             : UPNPCOMMAND_UNKNOWN_ERROR;
    rc = soap_result(&p, rc);
    break;
  case CALL_EXTIP:
    copy_str(k->o_extip, 16, nv(&p, "NewExternalIPAddress"));
    rc = soap_result(&p, nv(&p, "NewExternalIPAddress") != NULL ? 0 : UPNPCOMMAND_UNKNOWN_ERROR);
    break;
  case CALL_ADD:
  case CALL_ADDANY:
    rc = 0;
    if (k->kind == CALL_ADDANY) {
      copy_str(k->o_reserved, 6, nv(&p, "NewReservedPort"));
      rc = nv(&p, "NewReservedPort") != NULL ? 0 : UPNPCOMMAND_INVALID_RESPONSE;
    }
    rc = soap_result(&p, rc);
    break;
  case CALL_GET:
    copy_str(k->o_client, 16, nv(&p, "NewInternalClient"));
    copy_str(k->o_port, 6, nv(&p, "NewInternalPort"));
    copy_str(k->o_enabled, 4, nv(&p, "NewEnabled"));
    copy_str(k->o_desc, 80, nv(&p, "NewPortMappingDescription"));
    copy_str(k->o_lease, 16, nv(&p, "NewLeaseDuration"));
    rc = soap_result(&p, nv(&p, "NewInternalClient") != NULL ? 0 : UPNPCOMMAND_UNKNOWN_ERROR);
    break;
  case CALL_DELETE:
    rc = soap_result(&p, 0);
    break;
  case CALL_LIST:
    copy_str(k->o_rhost, 64, nv(&p, "NewRemoteHost"));
    copy_str(k->o_ext_port, 6, nv(&p, "NewExternalPort"));
    copy_str(k->o_proto, 4, nv(&p, "NewProtocol"));
    copy_str(k->o_client, 16, nv(&p, "NewInternalClient"));
    copy_str(k->o_port, 6, nv(&p, "NewInternalPort"));
    copy_str(k->o_enabled, 4, nv(&p, "NewEnabled"));
    copy_str(k->o_desc, 80, nv(&p, "NewPortMappingDescription"));
    copy_str(k->o_lease, 16, nv(&p, "NewLeaseDuration"));
    rc = nv(&p, "NewExternalPort") != NULL || nv(&p, "NewInternalClient") != NULL
             ? 0
             : UPNPCOMMAND_UNKNOWN_ERROR;
    rc = soap_result(&p, rc);
    break;
  case CALL_DESCRIBE:
    break;
  }
  k->rc = rc;
  ClearNameValueList(&p);
}

/* One exchange: the call's inputs in, its outputs out. The results are
 * those of miniupnpc's UPNP_* function for the same action. */
void portmap_upnp_run_call(upnp_call_t *k, const upnp_io_t *io) {
  if (k->kind == CALL_DESCRIBE) {
    describe(k, io);
    return;
  }
  struct UPNParg a[9];
  memset(a, 0, sizeof a);
  a[0].elt = "NewRemoteHost";
  a[0].val = "";
  a[1].elt = "NewExternalPort";
  a[1].val = k->ext_port;
  a[2].elt = "NewProtocol";
  a[2].val = k->proto;
  a[3].elt = "NewInternalPort";
  a[3].val = k->int_port;
  a[4].elt = "NewInternalClient";
  a[4].val = k->client;
  a[5].elt = "NewEnabled";
  a[5].val = "1";
  a[6].elt = "NewPortMappingDescription";
  a[6].val = k->desc;
  a[7].elt = "NewLeaseDuration";
  a[7].val = k->lease;
  const char *action = NULL;
  struct UPNParg *args = a;
  switch (k->kind) {
  case CALL_STATUS:
    action = "GetStatusInfo";
    args = NULL;
    break;
  case CALL_EXTIP:
    action = "GetExternalIPAddress";
    args = NULL;
    break;
  case CALL_ADD:
    action = "AddPortMapping";
    break;
  case CALL_ADDANY:
    action = "AddAnyPortMapping";
    break;
  case CALL_GET:
    action = "GetSpecificPortMappingEntry";
    a[3].elt = NULL; /* NewRemoteHost, NewExternalPort, NewProtocol */
    break;
  case CALL_DELETE:
    action = "DeletePortMapping";
    a[3].elt = NULL;
    break;
  case CALL_LIST:
    action = "GetGenericPortMappingEntry";
    a[0].elt = "NewPortMappingIndex";
    a[0].val = k->index;
    a[1].elt = NULL;
    break;
  case CALL_DESCRIBE:
    break;
  }
  http_reply_t r;
  int rc = soap_call(io, k, action, args, &r);
  if (rc != 0) {
    k->rc = rc;
    return;
  }
  portmap_upnp_soap_reply(k, r.body, r.len);
  portmap_alloc_free(io->alloc, r.body);
}
