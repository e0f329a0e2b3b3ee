/* SPDX-License-Identifier: MIT */
/*
 * The platform layer: everything the library needs from the operating
 * system that POSIX does not say, behind one small interface with one
 * implementation file per OS (c-ares keeps each OS's configuration reading
 * in its own ares_sysconfig_*.c the same way). Today that is linux.c.
 *
 * Addresses are 16 octets, IPv4-mapped (::ffff:a.b.c.d) for IPv4, as in the
 * rest of the library. A scope is an interface index (0: none), needed for
 * a link-local IPv6 peer. Nothing here keeps state: two clients share no
 * platform object.
 *
 * Layering: below the core, the backends and the protocol layers, which
 * call it; above util/, whose reader and address helpers it uses
 * (ARCHITECTURE.md).
 */
#ifndef PORTMAP_PLATFORM_H
#define PORTMAP_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

#include "util/alloc.h"

/* ---------- routes and addresses ---------- */

/* The default gateway of a family (ipv6 0 or 1): the up default route
 * with a next hop and the lowest metric (the first of equals), from
 * rtnetlink, else (netlink unusable) from the /proc tables. Fills out,
 * and *scope (if not NULL) with its interface index (0 if unknown).
 * Returns 0, or -1 when there is none, out is NULL, or the table cannot be
 * read or its buffer allocated from alloc (NULL: the system's); out and
 * *scope then untouched. */
int portmap_plat_default_gateway(const portmap_alloc_t *alloc, int ipv6, uint8_t out[16],
                                 unsigned *scope);

/* The same, from the kernel's routing table over rtnetlink (one dump of
 * the family; the main table, unicast default routes with a next hop, the
 * lowest metric, the first of equals). Returns 0 (out and *scope filled),
 * PORTMAP_PLAT_RTNL_NONE when the table has no such route (or out is
 * NULL, or its buffer cannot be allocated), PORTMAP_PLAT_RTNL_FAILED
 * when netlink could not be used (no socket, an error answer, a malformed
 * or cut-short dump): the caller then reads the /proc table. Never waits. */
#define PORTMAP_PLAT_RTNL_NONE (-1)
#define PORTMAP_PLAT_RTNL_FAILED (-2)
int portmap_plat_rtnl_gateway(const portmap_alloc_t *alloc, int ipv6, uint8_t out[16],
                              unsigned *scope);

/* portmap_plat_default_gateway() from the /proc tables alone (its fallback;
 * for tests that compare the two sources). */
int portmap_plat_default_gateway_proc(const portmap_alloc_t *alloc, int ipv6, uint8_t out[16],
                                      unsigned *scope);

/* The best default route seen so far in a dump. */
typedef struct {
  int found;
  uint32_t metric;
  uint8_t gw[16]; /* IPv4-mapped for IPv4 */
  unsigned ifindex;
} portmap_plat_route_t;

/* The rtnetlink parser behind portmap_plat_rtnl_gateway(), pure and
 * unit-testable: one datagram of an RTM_GETROUTE dump (any octets, any
 * length; host byte order as the kernel writes it), whose routes of the
 * family are folded into *best (which starts zeroed). Messages of another
 * sequence number are skipped. Returns 1 when the datagram ends the dump
 * (NLMSG_DONE), 0 when more is to come, -1 on an error message, a
 * malformed datagram or a NULL argument. */
int portmap_plat_parse_rtnl(const uint8_t *buf, size_t len, int ipv6, uint32_t seq,
                            portmap_plat_route_t *best);

/* The route-table parsers behind portmap_plat_default_gateway(), pure and
 * unit-testable: they take the table's text (any octets, any length, NUL
 * terminated or not; read through util/reader.h) and skip every line that
 * is not exactly shaped like the kernel's. Return 0 and fill out and
 * ifname_out (if not NULL: 1-15 octets and a NUL) with the winner, or -1
 * (nothing written) when there is no default route or text/out is NULL.
 * On Linux the text is /proc/net/route (IPv4) or /proc/net/ipv6_route. */
int portmap_plat_parse_route4(const char *text, size_t len, uint8_t out[16], char ifname_out[16]);
int portmap_plat_parse_route6(const char *text, size_t len, uint8_t out[16], char ifname_out[16]);

/* The local address the system would use to reach dest (checklist A4), by
 * a UDP connect() that sends nothing; scope is used only when dest needs
 * one (link-local). Returns 0, or -1 with errno set (EINVAL for a NULL
 * argument, else what socket/connect/getsockname said). */
int portmap_plat_local_address(const uint8_t dest[16], unsigned scope, uint8_t out[16]);

/* The IPv6 addresses of the interface with index ifindex (getifaddrs()),
 * at most cap of them, in the system's order. Returns how many (0 on any
 * error or when there is none). */
size_t portmap_plat_ipv6_addresses(unsigned ifindex, uint8_t (*out)[16], size_t cap);

/* ---------- sockets ---------- */

/* A non-blocking, close-on-exec socket: UDP (stream 0) or TCP (stream 1),
 * IPv4 (ipv6 0) or IPv6. Returns the fd, or -1 with errno set. */
int portmap_plat_socket(int ipv6, int stream);

/* A non-blocking, close-on-exec UDP socket that reports ICMP errors (port
 * unreachable) even unconnected (ROUTER-QUIRKS Q21): after one arrives,
 * portmap_plat_recv() says PORTMAP_PLAT_RECV_REFUSED once and the report
 * waits for portmap_plat_icmp_read(). Returns the fd, or -1 with errno set.
 * Reporting is best effort: a system that cannot turn it on still gives a
 * working socket. */
int portmap_plat_udp_icmp_socket(int ipv6);

/* Ask for a receive buffer of at least bytes on fd (best effort: the
 * system may cap it, Linux at net.core.rmem_max, which it then doubles for
 * its own bookkeeping). Never shrinks the buffer. */
void portmap_plat_rcvbuf(int fd, int bytes);

/* Read one queued ICMP report of a portmap_plat_udp_icmp_socket() without
 * blocking. Returns 1 for "port unreachable" (ECONNREFUSED), 0 for another
 * report (read and dropped), -1 when none is queued (or fd is bad). Call
 * until -1 to empty the queue. */
int portmap_plat_icmp_read(int fd);

/* portmap_plat_recv() flags */
#define PORTMAP_PLAT_RECV_PEEK 0x1  /* leave the datagram queued */
#define PORTMAP_PLAT_RECV_TRUNC 0x2 /* *len is the whole datagram's length, even above cap */

/* portmap_plat_recv() and portmap_plat_recv_many() outcomes (ERROR: the
 * latter only) */
enum {
  PORTMAP_PLAT_RECV_NONE = 0,
  PORTMAP_PLAT_RECV_OK = 1,
  PORTMAP_PLAT_RECV_REFUSED = 2,
  PORTMAP_PLAT_RECV_ERROR = 3
};

/* One datagram from fd without blocking (EINTR is retried). flags: 0 or
 * PORTMAP_PLAT_RECV_* or'ed. Returns:
 *   OK       at most cap octets in buf; *len what was read (with TRUNC the
 *            whole datagram's length, possibly more than cap); from and
 *            *port its source and *from_ok 1, or *from_ok 0 and from zeroed when
 *            the source is no IPv4/IPv6 address.
 *   REFUSED  an ICMP port unreachable was reported instead (the pending
 *            socket error, now cleared).
 *   NONE     nothing to read (EAGAIN), or another error. */
int portmap_plat_recv(int fd, int flags, void *buf, size_t cap, size_t *len, uint8_t from[16],
                      uint16_t *port, int *from_ok);

/* One datagram of portmap_plat_recv_many(): buf and cap are the caller's,
 * the rest is what portmap_plat_recv() with TRUNC tells of it. */
typedef struct portmap_plat_dgram {
  uint8_t *buf;
  size_t cap;
  size_t len; /* the whole datagram's length, possibly more than cap */
  uint8_t from[16];
  uint16_t port;
  int from_ok;
} portmap_plat_dgram_t;

#define PORTMAP_PLAT_RECV_BATCH 16 /* the most portmap_plat_recv_many() reads at once */

/* Up to n (at most PORTMAP_PLAT_RECV_BATCH) datagrams from fd without
 * blocking, in one system call where the OS has one (Linux: recvmmsg), so
 * that a burst of answers costs one call instead of one per datagram and
 * one more to hear EAGAIN. Returns:
 *   OK       *got datagrams (1 to n) in d[0 .. *got); fewer than n: none
 *            was left to read then, or a socket error came after them (the
 *            next call returns it, and the fd polls POLLERR until then).
 *   REFUSED  an ICMP port unreachable was reported instead (the pending
 *            socket error, now cleared; its report waits for
 *            portmap_plat_icmp_read()).
 *   ERROR    another socket error was reported and cleared (another ICMP
 *            report: it too waits for portmap_plat_icmp_read()).
 *   NONE     nothing to read (EAGAIN). */
int portmap_plat_recv_many(int fd, portmap_plat_dgram_t *d, size_t n, size_t *got);

/* ---------- time and randomness ---------- */

/* Fill buf with len octets from the OS CSPRNG (checklist D1; never rand()
 * or a time seed). Never blocks: before the kernel's pool is initialised
 * (early boot) it fails with errno EAGAIN. Returns 0, or -1 with errno set
 * (buf then partly filled: do not use it). len 0 always succeeds. */
int portmap_plat_random(void *buf, size_t len);

/* Milliseconds of a monotonic clock (checklist E6: never the wall clock),
 * from an arbitrary origin. */
uint64_t portmap_plat_now_ms(void);

/* ---------- wake mechanism ---------- */

/* A pair of non-blocking, close-on-exec fds: fds[0] becomes readable
 * (poll POLLIN) after portmap_plat_wake_signal(fds[1]) and stays so until
 * portmap_plat_wake_drain(fds[0]). Returns 0, or -1 with errno set and
 * both fds -1. */
int portmap_plat_wake_open(int fds[2]);

/* Make the read end readable. Never blocks; a full pipe is already
 * readable, so nothing is lost. wfd -1 does nothing. */
void portmap_plat_wake_signal(int wfd);

/* Consume every pending signal so that rfd polls unreadable again. Never
 * blocks; rfd -1 does nothing. */
void portmap_plat_wake_drain(int rfd);

/* Close both ends that are open (>= 0) and set them to -1; NULL is fine. */
void portmap_plat_wake_close(int fds[2]);

/* close(), retried on nothing (EINTR leaves the fd closed on Linux). */
void portmap_plat_close(int fd);

/* A second fd for what fd refers to (close-on-exec), or -1. */
int portmap_plat_dup(int fd);

/* What an open fd refers to (device and inode of the socket or pipe): a
 * closed fd whose number came back for another socket has another
 * identity. 0 when fd is not open. */
uint64_t portmap_plat_fd_identity(int fd);

#endif
