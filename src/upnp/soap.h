/* SPDX-License-Identifier: MIT */
/*
 * The HTTP request of one UPnP-IGD SOAP action, built without I/O.
 *
 * With miniupnpc API < 19 the UPnP backend takes these octets from
 * miniupnpc itself (simpleUPnPcommand() on a socketpair); from API 19 on
 * miniupnpc no longer hands them out (it opens its own connection, bounded
 * only per recv()), so this builder makes the same request for our own
 * bounded transport. tests/unit/test_soap.c checks it against miniupnpc's
 * octets, header for header (User-Agent apart), as built here (2.2.4;
 * miniupnpc 2.2.6 and later add '; charset="utf-8"' to Content-Type).
 */
#ifndef PORTMAP_UPNP_SOAP_H
#define PORTMAP_UPNP_SOAP_H

#include <stddef.h>

/* miniupnpc caps the envelope at 2048 octets; so do we. */
#define PORTMAP_SOAP_BODY_MAX 2048u

typedef struct portmap_soap_arg {
  const char *name;  /* element name, e.g. "NewExternalPort" */
  const char *value; /* already XML-escaped text; NULL = empty */
} portmap_soap_arg_t;

/*
 * Build "POST path HTTP/1.1" with Host, User-Agent, Content-Length,
 * Content-Type, SOAPAction and the envelope for action of service with
 * n_args arguments, into out (cap octets, nothing written past cap).
 * host is as it goes in a URL ("192.168.1.1", "[fe80::1]"); the Host
 * header names the port unless it is 80, as miniupnpc does. Returns 0, or
 * -1 when an input is NULL/empty, holds a CR, LF, '<', '>' or '"' where it
 * would break the framing (name, action, service, path, host), the
 * envelope exceeds PORTMAP_SOAP_BODY_MAX or the request exceeds cap.
 */
int portmap_soap_build(const char *host, unsigned port, const char *path, const char *user_agent,
                       const char *service, const char *action, const portmap_soap_arg_t *args,
                       size_t n_args, char *out, size_t cap, size_t *len);

#endif
