#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A stand-in for the `portmap` CLI, used to validate the lab tests themselves.

PCP (with the K2 reaction to an ANNOUNCE whose epoch went back), falling back to UPnP
through the stock `upnpc` when PCP is refused or silent.

Not the product and not a reference implementation: just enough of the CLI contract
(add / keep / delete, --json lines, exit codes 0/1/2) for
  bash tests/lab/test_pcp_keep.sh tests/lab/mock_portmap.py
to show that a correct client passes and that the checks measure what they claim.
"""
import argparse
import json
import os
import random
import re
import subprocess
import select
import signal
import socket
import struct
import sys
import time

PROTOS = {"tcp": 6, "udp": 17}


def default_gateway():
    with open("/proc/net/route") as f:
        for line in f.readlines()[1:]:
            p = line.split()
            if p[1] == "00000000" and int(p[3], 16) & 2:
                return socket.inet_ntoa(struct.pack("<I", int(p[2], 16)))
    return None


def v4mapped(a):
    return b"\0" * 10 + b"\xff\xff" + socket.inet_aton(a)


class Pcp:
    def __init__(self, gw):
        self.gw = gw
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.connect((gw, 5351))
        self.me = self.s.getsockname()[0]

    def map(self, nonce, proto, iport, eport, lifetime, budget=9):
        pkt = struct.pack("!BBHI", 2, 1, 0, lifetime) + v4mapped(self.me)
        pkt += nonce + struct.pack("!B3xHH", proto, iport, eport) + v4mapped("0.0.0.0")
        rto = 0.25
        for _ in range(budget):
            self.s.send(pkt)
            end = time.monotonic() + rto
            while True:
                left = end - time.monotonic()
                if left <= 0:
                    break
                r, _, _ = select.select([self.s], [], [], left)
                if not r:
                    break
                try:
                    d = self.s.recv(1100)
                except ConnectionRefusedError:
                    return None
                if len(d) >= 60 and d[1] == 0x81 and d[24:36] == nonce:
                    res, life = d[3], struct.unpack("!I", d[4:8])[0]
                    ep = struct.unpack("!H", d[42:44])[0]
                    epoch = struct.unpack("!I", d[8:12])[0]
                    return res, life, ep, socket.inet_ntoa(d[56:60]), epoch
            rto = min(rto * 2, 4)
        return None


def upnp(args_list):
    try:
        r = subprocess.run(["upnpc"] + args_list, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout


def upnp_add(proto, iport, eport, lifetime, me):
    out = upnp(["-e", "mock", "-a", me, str(iport), str(eport or iport), proto.upper(),
                str(lifetime)]) or ""
    m = re.search(r"external (\S+):(\d+) \S+ is redirected to internal \S+ \(duration=(\d+)\)", out)
    if not m:
        return None
    return m.group(1), int(m.group(2)), int(m.group(3))


def announce_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("224.0.0.1", 5350))
    mreq = struct.pack("4s4s", socket.inet_aton("224.0.0.1"), socket.inet_aton("0.0.0.0"))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    return s


def emit(args, event, proto, iport, ext, lifetime, nonce):
    if args.json:
        print(json.dumps({"event": event, "backend": "pcp", "protocol": proto,
                          "internal_port": iport, "external_address": ext[1],
                          "external_port": ext[0], "lifetime": lifetime,
                          "nonce": nonce.hex()}), flush=True)
    else:
        print("%s pcp %s %s:%d -> :%d lifetime %d" % (event, proto, ext[1], ext[0], iport,
                                                      lifetime), flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("cmd", choices=["add", "keep", "delete"])
    p.add_argument("ports", nargs="+")
    p.add_argument("--external", type=int, default=0)
    p.add_argument("--lifetime", type=int, default=7200)
    p.add_argument("--description")
    p.add_argument("--gateway")
    p.add_argument("--nonce")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    gw = a.gateway or default_gateway()
    if not gw:
        print("no gateway", file=sys.stderr)
        return 2
    port, _, proto = a.ports[0].partition("/")
    proto = proto or "tcp"
    iport = int(port)
    pcp = Pcp(gw)
    if a.cmd == "delete":
        if a.nonce:
            r = pcp.map(bytes.fromhex(a.nonce), PROTOS[proto], iport, 0, 0, budget=4)
            if r:
                return 0 if r[0] == 0 else 1
        out = upnp(["-d", str(a.external or iport), proto.upper()])
        return 0 if out is not None and "UPNP_DeletePortMapping() returned : 0" in out else 1
    nonce = os.urandom(12)
    r = pcp.map(nonce, PROTOS[proto], iport, a.external, a.lifetime, budget=4)
    if not r or r[0] != 0:
        u = upnp_add(proto, iport, a.external, a.lifetime, pcp.me)
        if not u:
            print("refused or no answer: %r" % (r,), file=sys.stderr)
            return 1
        if a.json:
            print(json.dumps({"event": "mapped", "backend": "upnp", "protocol": proto,
                              "internal_port": iport, "external_address": u[0],
                              "external_port": u[1], "lifetime": u[2], "nonce": None}),
                  flush=True)
        if a.cmd == "add":
            return 0
        print("mock: keep over UPnP not implemented", file=sys.stderr)
        return 2
    ext = (r[2], r[3])
    emit(a, "mapped", proto, iport, ext, r[1], nonce)
    if a.cmd == "add":
        return 0
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    ann = announce_socket()
    life = r[1]
    epoch, epoch_at = r[4], time.monotonic()
    due = time.monotonic() + max(4.0, life * random.uniform(0.5, 0.625))
    while not stop:
        rd, _, _ = select.select([ann], [], [], max(0.0, min(0.05, due - time.monotonic())))
        if rd:
            d = ann.recv(1100)
            if len(d) >= 12 and d[0] == 2 and d[1] == 0x80:
                e = struct.unpack("!I", d[8:12])[0]
                expect = epoch + (time.monotonic() - epoch_at) * 7 / 8 - 2
                if e < expect:  # K2: the server lost its state; re-create after 0-5 s
                    due = min(due, time.monotonic() + random.uniform(0, 5))
        if stop or time.monotonic() < due:
            continue
        r = pcp.map(nonce, PROTOS[proto], iport, ext[0], a.lifetime)
        if r and r[0] == 0:
            life = r[1]
            epoch, epoch_at = r[4], time.monotonic()
            emit(a, "renewed", proto, iport, (r[2], r[3]), life, nonce)
        due = time.monotonic() + max(4.0, life * random.uniform(0.5, 0.625))
    r = pcp.map(nonce, PROTOS[proto], iport, 0, 0, budget=3)
    emit(a, "deleted", proto, iport, ext, 0, nonce)
    return 0


if __name__ == "__main__":
    sys.exit(main())
