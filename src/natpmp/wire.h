/* SPDX-License-Identifier: MIT */
/*
 * NAT-PMP (RFC 6886) checks on received datagrams, sans I/O: libnatpmp
 * builds and parses the messages; these decide first whether a datagram is
 * one libnatpmp may safely see, read what it would not (the internal port
 * of an error, announcements), and hold the epoch rule (N5).
 *
 *   0                   1                   2                   3
 *   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  | Vers = 0      | OP = 128 + x  | Result Code                   |
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  | Seconds Since Start of Epoch                                  |
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  | x = 0: External IPv4 Address | x = 1, 2: Internal Port,      |
 *  |                              | Mapped External Port, Lifetime |
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 */
#ifndef PORTMAP_NATPMP_WIRE_H
#define PORTMAP_NATPMP_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define PORTMAP_NATPMP_VERSION 0
#define PORTMAP_NATPMP_RESPONSE 128 /* added to the request's opcode */

/* Is this a response libnatpmp can parse without misreading it: at least
 * the 8-octet header, version 0, a response opcode we know (128-130), and
 * for a success the whole response (§3.2: 12 octets; §3.3: 16)? */
int portmap_natpmp_response_ok(const uint8_t *buf, size_t len);

/* The 16-bit field at off (the result code at 2, an error's internal port
 * at 8); 0 when the datagram is shorter. */
uint16_t portmap_natpmp_field16(const uint8_t *buf, size_t len, size_t off);

/* A gratuitous public-address response (§3.2.1: version 0, opcode 128,
 * result 0): 0 and its epoch and address, or -1 when it is not one. */
int portmap_natpmp_parse_announce(const uint8_t *buf, size_t len, uint32_t *sssoe, uint8_t v4[4]);

/* N5 (§3.6): with the previous epoch prev_sssoe seen at prev_ms, does
 * sssoe at now_ms show that the gateway lost its state? The expected value
 * is the previous one plus 7/8 of the client time elapsed since; more than
 * 2 s below it is a loss. */
int portmap_natpmp_epoch_lost(uint32_t prev_sssoe, uint64_t prev_ms, uint32_t sssoe,
                              uint64_t now_ms);

#endif
