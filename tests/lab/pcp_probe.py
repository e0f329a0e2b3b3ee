#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Minimal PCP (RFC 6887) / NAT-PMP peer for checking the lab's miniupnpd by hand.

Not part of libportmap: an independent second opinion, run inside the client namespace
(lab.sh exec python3 pcp_probe.py ...). Prints one JSON object per answer.

  pcp_probe.py map GW PORT [--proto tcp|udp] [--lifetime S] [--nonce HEX24] [--ext-port P]
                           [--prefer-failure] [--third-party ADDR]
  pcp_probe.py announce GW                 solicited ANNOUNCE (learn the epoch)
  pcp_probe.py listen [--timeout S]        print unsolicited ANNOUNCE / NAT-PMP datagrams
                                           arriving on 224.0.0.1:5350 (and [ff02::1]:5350)
GW may be IPv4 or IPv6; the client address field is the socket's own source address.
Exit 0 on SUCCESS, 1 on a PCP error result or no answer, 2 on usage errors.
"""
import argparse
import ipaddress
import json
import os
import select
import socket
import struct
import sys
import time

PCP_PORT = 5351
RESULTS = {0: "SUCCESS", 1: "UNSUPP_VERSION", 2: "NOT_AUTHORIZED", 3: "MALFORMED_REQUEST",
           4: "UNSUPP_OPCODE", 5: "UNSUPP_OPTION", 6: "MALFORMED_OPTION", 7: "NETWORK_FAILURE",
           8: "NO_RESOURCES", 9: "UNSUPP_PROTOCOL", 10: "USER_EX_QUOTA",
           11: "CANNOT_PROVIDE_EXTERNAL", 12: "ADDRESS_MISMATCH", 13: "EXCESSIVE_REMOTE_PEERS"}


def addr16(text):
    ip = ipaddress.ip_address(text)
    if ip.version == 4:
        return ipaddress.IPv6Address("::ffff:" + str(ip)).packed
    return ip.packed


def unaddr16(raw):
    ip = ipaddress.IPv6Address(raw)
    return str(ip.ipv4_mapped) if ip.ipv4_mapped else str(ip)


def open_socket(gw):
    fam = socket.AF_INET6 if ":" in gw else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.connect((gw, PCP_PORT))
    return s


def exchange(sock, packet, tries=4, first_timeout=0.25):
    """Send with RFC 6887 style doubling retransmissions, return (reply, rtt) or (None, None)."""
    timeout = first_timeout
    for _ in range(tries):
        t0 = time.monotonic()
        sock.send(packet)
        r, _, _ = select.select([sock], [], [], timeout)
        if r:
            try:
                data = sock.recv(1100)
            except ConnectionRefusedError:
                return "refused", None
            return data, time.monotonic() - t0
        timeout *= 2
    return None, None


def parse_header(data):
    if len(data) < 24:
        return {"error": "short", "len": len(data)}
    ver, op, _, result, lifetime, epoch = struct.unpack("!BBBBII", data[:12])
    return {"version": ver, "opcode": op & 0x7F, "response": bool(op & 0x80),
            "result": RESULTS.get(result, result), "lifetime": lifetime, "epoch": epoch}


def cmd_map(a):
    nonce = bytes.fromhex(a.nonce) if a.nonce else os.urandom(12)
    if len(nonce) != 12:
        print("nonce must be 24 hex digits", file=sys.stderr)
        return 2
    sock = open_socket(a.gw)
    me = sock.getsockname()[0]
    proto = {"tcp": 6, "udp": 17}[a.proto]
    ext_ip = "::ffff:0.0.0.0" if ":" not in a.gw else "::"
    pkt = struct.pack("!BBHI", 2, 1, 0, a.lifetime) + addr16(me)
    pkt += nonce + struct.pack("!B3xHH", proto, a.port, a.ext_port) + addr16(ext_ip)
    if a.third_party:  # option 1, length 16
        pkt += struct.pack("!BBH", 1, 0, 16) + addr16(a.third_party)
    if a.prefer_failure:  # option 2, no data
        pkt += struct.pack("!BBH", 2, 0, 0)
    data, rtt = exchange(sock, pkt)
    if data is None or data == "refused":
        print(json.dumps({"answer": data or "none"}))
        return 1
    out = parse_header(data)
    if len(data) >= 60:
        rn, rproto, iport, eport = struct.unpack("!12sB3xHH", data[24:44])
        out.update({"nonce": rn.hex(), "protocol": rproto, "internal_port": iport,
                    "external_port": eport, "external_address": unaddr16(data[44:60])})
    out["rtt_ms"] = round(rtt * 1000, 2)
    out["client"] = me
    print(json.dumps(out))
    return 0 if out.get("result") == "SUCCESS" else 1


def cmd_announce(a):
    sock = open_socket(a.gw)
    me = sock.getsockname()[0]
    pkt = struct.pack("!BBHI", 2, 0, 0, 0) + addr16(me)
    data, rtt = exchange(sock, pkt)
    if data is None or data == "refused":
        print(json.dumps({"answer": data or "none"}))
        return 1
    out = parse_header(data)
    out["rtt_ms"] = round(rtt * 1000, 2)
    print(json.dumps(out))
    return 0 if out.get("result") == "SUCCESS" else 1


def cmd_listen(a):
    socks = []
    s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s4.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s4.bind(("224.0.0.1", 5350))
    mreq = struct.pack("4s4s", socket.inet_aton("224.0.0.1"), socket.inet_aton("0.0.0.0"))
    s4.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    socks.append(s4)
    try:
        s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s6.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s6.bind(("::", 5350))
        socks.append(s6)
    except OSError:
        pass
    print(json.dumps({"listening": True}), flush=True)
    deadline = time.monotonic() + a.timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return 0
        r, _, _ = select.select(socks, [], [], left)
        for s in r:
            data, src = s.recvfrom(1100)
            out = {"time": round(time.time(), 3), "from": "%s:%d" % (src[0], src[1]),
                   "len": len(data)}
            if data and data[0] == 2:
                out["pcp"] = parse_header(data)
            elif data and data[0] == 0 and len(data) >= 12:
                _, op, res, sssoe = struct.unpack("!BBHI", data[:8])
                out["natpmp"] = {"opcode": op, "result": res, "epoch": sssoe,
                                 "address": socket.inet_ntoa(data[8:12])}
            print(json.dumps(out), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("map")
    m.add_argument("gw")
    m.add_argument("port", type=int)
    m.add_argument("--proto", choices=["tcp", "udp"], default="tcp")
    m.add_argument("--lifetime", type=int, default=120)
    m.add_argument("--nonce")
    m.add_argument("--ext-port", type=int, default=0)
    m.add_argument("--prefer-failure", action="store_true")
    m.add_argument("--third-party")
    n = sub.add_parser("announce")
    n.add_argument("gw")
    li = sub.add_parser("listen")
    li.add_argument("--timeout", type=float, default=10)
    a = p.parse_args()
    return {"map": cmd_map, "announce": cmd_announce, "listen": cmd_listen}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
