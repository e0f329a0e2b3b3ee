/* SPDX-License-Identifier: MIT */
/*
 * The IGD layer of the UPnP worker: what one call (call.h) sends and what
 * its answer means. The root description fetched and scanned; the SOAP
 * actions' argument tables, their requests built by miniupnpc (API < 19:
 * simpleUPnPcommand() on a socketpair) or by src/upnp/soap.c (API >= 19)
 * and sent over the bounded transport; the replies parsed into the call's
 * outputs; and the result codes (UPnP errors, miniupnpc's UPNPCOMMAND_*,
 * our UPNP_RC_*). Blocking: portmap_upnp_run_call() runs on the worker.
 */
#ifndef PORTMAP_UPNP_IGD_H
#define PORTMAP_UPNP_IGD_H

#include <stddef.h>

#include "upnp/call.h"
#include "upnp/transport.h"

#define UPNP_SOAP_REPLY_MAX (64u * 1024u) /* body of a SOAP reply */
#define UPNP_SOAP_REQUEST_MAX 4096u       /* miniupnpc's headers and 2048-octet body */

/* UPnP error codes (IGD WANIPConnection:2 section 2.4, UDA 3.2.2) */
#define UPNP_E_INVALID_ACTION 401
#define UPNP_E_INVALID_ARGS 402
#define UPNP_E_ACTION_FAILED 501
#define UPNP_E_OPTIONAL_ACTION 602
#define UPNP_E_ARRAY_INDEX_INVALID 713
#define UPNP_E_NO_SUCH_ENTRY 714
#define UPNP_E_CONFLICT 718
#define UPNP_E_SAME_PORT_REQUIRED 724
#define UPNP_E_ONLY_PERMANENT 725
#define UPNP_E_CONFLICT_OTHER 729

/* One exchange: the call's inputs in, its outputs (rc, http_status,
 * descr, o_*) out. The results are those of miniupnpc's UPNP_* function
 * for the same action. */
void portmap_upnp_run_call(upnp_call_t *k, const upnp_io_t *io);

/* The outputs of a SOAP call k (rc and the o_* fields of its kind) from
 * the body of its reply, as miniupnpc's UPNP_* function reads them
 * (ParseNameValue(); a fault's errorCode wins). The sans-I/O half of
 * portmap_upnp_run_call(), exposed for tests/fuzz/fuzz_soap_reply.c.
 * k->kind is not CALL_DESCRIBE. */
void portmap_upnp_soap_reply(upnp_call_t *k, const char *body, size_t len);

/* "Connection refused" or silence: HTTP failure or timeout. */
int portmap_upnp_is_http_failure(int rc);

/* Out of memory: before the request went out (UPNP_RC_NOMEM), or while
 * its answer was read (UPNPCOMMAND_MEM_ALLOC_ERROR: the gateway may have
 * acted on it). Never the gateway's refusal. */
int portmap_upnp_is_nomem(int rc);

/* A result code as text for the log ("OK", "718 ConflictInMappingEntry"). */
const char *portmap_upnp_rc_text(int rc, char *buf, size_t cap);

/* XML-escape a SOAP argument: miniupnpc copies values into the body
 * verbatim, so "</NewPortMappingDescription>" would inject elements.
 * Truncated to cap (NUL included), never inside a UTF-8 sequence. */
void portmap_upnp_xml_escape(char *dst, size_t cap, const char *src);

#endif
