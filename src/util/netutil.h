/* SPDX-License-Identifier: MIT */
/*
 * Network helpers, portable: sockaddr conversion and address
 * classification. Addresses are 16 octets, IPv4-mapped for IPv4. Default
 * routes, the local address towards a host and receiving are OS-specific:
 * platform/platform.h.
 */
#ifndef PORTMAP_NETUTIL_H
#define PORTMAP_NETUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Fill ss for addr:port (AF_INET for IPv4-mapped, else AF_INET6 with the
 * scope id). Returns the length to pass to sendto/bind/connect. */
socklen_t portmap_net_to_sockaddr(const uint8_t addr[16], uint16_t port, unsigned scope_id,
                                  struct sockaddr_storage *ss);
/* The reverse; returns 0, or -1 for a family other than AF_INET/AF_INET6. */
int portmap_net_from_sockaddr(const struct sockaddr *sa, socklen_t len, uint8_t out[16],
                              uint16_t *port);

int portmap_net_is_v4(const uint8_t addr[16]);
/* All n octets zero. */
int portmap_net_all_zero(const uint8_t *b, size_t n);
/* ::ffff:a.b.c.d from the four octets of an IPv4 address. */
void portmap_net_v4_mapped(uint8_t out[16], const uint8_t v4[4]);
int portmap_net_is_unspecified(const uint8_t addr[16]); /* :: or ::ffff:0.0.0.0 */
/* Not reachable from the Internet: RFC 1918, 100.64/10 (CGN), loopback,
 * link-local, 0/8, ULA fc00::/7, ::1, fe80::/10 (ROUTER-QUIRKS Q17). */
int portmap_net_is_private(const uint8_t addr[16]);
/* Loopback, link-local, multicast, unspecified: never a target for a
 * LOCATION URL (Q4). */
int portmap_net_is_forbidden_target(const uint8_t addr[16]);
/* IPv6 link-local, fe80::/10. */
int portmap_net_is_link_local6(const uint8_t addr[16]);
/* The address an IPv6 PCP request should come from, and so map, when the
 * kernel would use a link-local one (the usual router-advertised default
 * route is fe80::1): among cands, the first global unicast (2000::/3), else
 * the first ULA (fc00::/7); never link-local, loopback, multicast or IPv4.
 * Returns 0 with out set, or -1 (out untouched) when there is none. */
int portmap_net_pick_mappable6(const uint8_t (*cands)[16], size_t n, uint8_t out[16]);

#endif
