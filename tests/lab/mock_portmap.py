#!/usr/bin/env python3
"""A stand-in for the `portmap` CLI (PCP only), used to validate the lab tests themselves.

Not the product and not a reference implementation: just enough of the CLI contract
(add / keep / delete, --json lines, exit codes 0/1/2) for
  bash tests/lab/test_pcp_keep.sh tests/lab/mock_portmap.py
to show that a correct client passes and that the checks measure what they claim.
"""
import argparse
import json
import os
import random
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
                    return res, life, ep, socket.inet_ntoa(d[56:60])
            rto = min(rto * 2, 4)
        return None


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
        r = pcp.map(bytes.fromhex(a.nonce or "00" * 12), PROTOS[proto], iport, 0, 0)
        return 0 if r and r[0] == 0 else 1
    nonce = os.urandom(12)
    r = pcp.map(nonce, PROTOS[proto], iport, a.external, a.lifetime)
    if not r or r[0] != 0:
        print("refused or no answer: %r" % (r,), file=sys.stderr)
        return 1
    ext = (r[2], r[3])
    emit(a, "mapped", proto, iport, ext, r[1], nonce)
    if a.cmd == "add":
        return 0
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    life = r[1]
    while not stop:
        due = time.monotonic() + max(4.0, life * random.uniform(0.5, 0.625))
        while not stop and time.monotonic() < due:
            time.sleep(min(0.05, max(0.0, due - time.monotonic())))
        if stop:
            break
        r = pcp.map(nonce, PROTOS[proto], iport, ext[0], a.lifetime)
        if r and r[0] == 0:
            life = r[1]
            emit(a, "renewed", proto, iport, (r[2], r[3]), life, nonce)
    r = pcp.map(nonce, PROTOS[proto], iport, 0, 0, budget=3)
    emit(a, "deleted", proto, iport, ext, 0, nonce)
    return 0


if __name__ == "__main__":
    sys.exit(main())
