/*
 * Network helpers: default gateway discovery (Linux /proc), local address
 * by connect()+getsockname() (checklist A4), sockaddr conversion, address
 * classification. Addresses are 16 octets, IPv4-mapped for IPv4.
 */
#ifndef PORTMAP_NETUTIL_H
#define PORTMAP_NETUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Parse the text of /proc/net/route: the first up default route (destination
 * 0, mask 0, flags RTF_UP|RTF_GATEWAY) with the lowest metric. Returns 0 and
 * fills out (IPv4-mapped) and *ifname_out (if not NULL, at most 16 octets
 * with NUL), or -1 when there is none. Robust to any garbage text. */
int portmap_net_parse_route4(const char *text, size_t len, uint8_t out[16], char ifname_out[16]);
/* Same for /proc/net/ipv6_route (destination ::/0 with a non-zero next hop). */
int portmap_net_parse_route6(const char *text, size_t len, uint8_t out[16], char ifname_out[16]);

/* Read the files above. *ifindex gets the interface index (needed for a
 * link-local IPv6 gateway), 0 if unknown. Returns 0 or -1. */
int portmap_net_default_gateway(int ipv6, uint8_t out[16], unsigned *ifindex);

/* The local address the kernel would use to reach dest (UDP connect, no
 * packet sent). Returns 0 or -1 (errno set). */
int portmap_net_local_address(const uint8_t dest[16], unsigned ifindex, uint8_t out[16]);

/* Fill ss for addr:port (AF_INET for IPv4-mapped, else AF_INET6 with the
 * scope id). Returns the length to pass to sendto/bind/connect. */
socklen_t portmap_net_to_sockaddr(const uint8_t addr[16], uint16_t port, unsigned scope_id,
                                  struct sockaddr_storage *ss);
/* The reverse; returns 0, or -1 for a family other than AF_INET/AF_INET6. */
int portmap_net_from_sockaddr(const struct sockaddr *sa, socklen_t len, uint8_t out[16],
                              uint16_t *port);

/* portmap_net_recv() outcomes */
enum { PORTMAP_NET_RECV_NONE = 0, PORTMAP_NET_RECV_OK = 1, PORTMAP_NET_RECV_REFUSED = 2 };

/* One datagram from fd without blocking (flags: MSG_PEEK, MSG_TRUNC... are
 * added to MSG_DONTWAIT; EINTR is retried). OK: *len is what recvfrom
 * returned (with MSG_TRUNC the whole datagram's length, possibly more than
 * cap) and from/port its source, or *from_ok 0 and from zeroed when the
 * source is no IPv4/IPv6 address. REFUSED: an ICMP error (ECONNREFUSED)
 * was read instead. NONE: nothing more to read (EAGAIN or another error). */
int portmap_net_recv(int fd, int flags, void *buf, size_t cap, size_t *len, uint8_t from[16],
                     uint16_t *port, int *from_ok);

int portmap_net_is_v4(const uint8_t addr[16]);
int portmap_net_is_unspecified(const uint8_t addr[16]); /* :: or ::ffff:0.0.0.0 */
/* Not reachable from the Internet: RFC 1918, 100.64/10 (CGN), loopback,
 * link-local, 0/8, ULA fc00::/7, ::1, fe80::/10 (ROUTER-QUIRKS Q17). */
int portmap_net_is_private(const uint8_t addr[16]);
/* Loopback, link-local, multicast, unspecified: never a target for a
 * LOCATION URL (Q4). */
int portmap_net_is_forbidden_target(const uint8_t addr[16]);

#endif
