/* SPDX-License-Identifier: MIT */
/*
 * Stand-in for miniupnpc.h of miniupnpc 2.2.8 and later (API 19+; 2.3.3 is
 * API 21), reduced to what the UPnP code takes from it. Debian 12 has
 * API 17 only; tests/CMakeLists.txt compiles src/upnp/igd.c (and every other
 * file that includes miniupnpc) once more with this directory first on the
 * include path, so the API >= 19 branch
 * (simpleUPnPcommand() without its socket argument) is built on every run.
 * The declarations follow upstream's documented API; the other miniupnpc
 * headers are the system's.
 */
#ifndef MINIUPNPC_H_INCLUDED
#define MINIUPNPC_H_INCLUDED

#include <miniupnpc/igd_desc_parse.h>
#include <miniupnpc/miniupnpc_declspec.h>
#include <miniupnpc/upnpdev.h>

#define MINIUPNPC_VERSION "2.3.3"
#define MINIUPNPC_API_VERSION 21

#ifdef __cplusplus
extern "C" {
#endif

struct UPNParg {
  const char *elt;
  const char *val;
};

char *simpleUPnPcommand(const char *url, const char *service, const char *action,
                        const struct UPNParg *args, int *bufsize);

#ifdef __cplusplus
}
#endif

#endif
