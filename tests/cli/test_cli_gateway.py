#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""End-to-end tests of the portmap tool against loopback only.

    test_cli_gateway.py PORTMAP_BINARY SCENARIO

Each scenario runs the binary against 127.0.0.1 with --port pointing at a UDP
port of our own: closed (ICMP unreachable), silent (nothing answers), or a
tiny scripted PCP responder (RFC 6887 MAP and ANNOUNCE, no options). Checks
exit status, the one-line stderr on failure and the stdout format, and what
reached the "gateway" (e.g. that `add` does not delete its mapping on exit
and that `delete` sends lifetime 0 with the given nonce).

The responder speaks PCP only, so the scenarios pass --backend pcp: with the
default (auto) the NAT-PMP and UPnP backends would probe 127.0.0.1 too and
change what a failure says. add_auto checks that auto still picks PCP here.
test_cli_probe.py reuses FakePcp for portmap-probe.
"""
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

EXTERNAL_IP = "203.0.113.5"
NONCE = "0123456789abcdef01234567"
HEX24 = re.compile(r"^[0-9a-f]{24}$")

# PCP result codes (RFC 6887 section 7.4).
SUCCESS, NOT_AUTHORIZED, NO_RESOURCES = 0, 2, 8


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def closed_udp_port():
    """A loopback UDP port nothing listens on: bind to port 0, read it, close."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class MapRequest:
    def __init__(self, data):
        self.raw = data
        self.opcode = data[1] & 0x7F
        self.lifetime = struct.unpack("!I", data[4:8])[0]
        self.client_ip = data[8:24]
        if self.opcode == 1 and len(data) >= 60:
            self.nonce = data[24:36].hex()
            self.protocol = data[36]
            self.internal_port, self.external_port = struct.unpack("!HH", data[40:44])
        else:
            self.nonce = None


class FakePcp:
    """A scripted PCP server: policy(request) returns (result, lifetime) or None (drop).

    Answers every opcode it gets, ANNOUNCE (opcode 0, the probe's) included:
    header only, with the policy's result and an epoch of 100 s and up."""

    def __init__(self, policy=None, external_ip=EXTERNAL_IP, port=0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.policy = policy or (lambda req: (SUCCESS, req.lifetime))
        self.external_ip = external_ip
        self.requests = []
        self.start = time.monotonic()
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def close(self):
        self.stop = True
        self.thread.join()
        self.sock.close()

    def maps(self):
        return [r for r in list(self.requests) if r.opcode == 1 and r.nonce is not None]

    def announces(self):
        return [r for r in list(self.requests) if r.opcode == 0]

    def run(self):
        while not self.stop:
            try:
                data, peer = self.sock.recvfrom(2048)
            except socket.timeout:
                continue
            if len(data) < 24 or data[0] != 2 or data[1] & 0x80:
                continue
            req = MapRequest(data)
            self.requests.append(req)
            answer = self.policy(req)
            if answer is None:
                continue
            result, lifetime = answer
            epoch = int(time.monotonic() - self.start) + 100
            header = struct.pack("!BBBBII12x", 2, 0x80 | req.opcode, 0, result, lifetime, epoch)
            body = b""
            if req.opcode == 1:
                ext = socket.inet_pton(socket.AF_INET6, "::ffff:" + self.external_ip)
                if result != SUCCESS:
                    ext = data[44:60]
                body = data[24:42] + struct.pack("!H", req.external_port or req.internal_port) + ext
            self.sock.sendto(header + body, peer)


def run(binary, args, timeout=20):
    p = subprocess.run([binary] + args, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


def gateway_args(port, extra=None, backend="pcp"):
    """--backend pcp unless told otherwise (None: the default, auto)."""
    args = ["--gateway", "127.0.0.1", "--port", str(port)]
    if backend is not None:
        args += ["--backend", backend]
    return args + (extra or [])


def one_stderr_line(err, pattern, prog="portmap"):
    lines = err.splitlines()
    check(len(lines) == 1, "want exactly one line on stderr, got %r" % err)
    check(lines[0].startswith(prog + ": "),
          "stderr line does not start with '%s: ': %r" % (prog, err))
    check(re.search(pattern, lines[0]), "stderr %r does not match /%s/" % (lines[0], pattern))


def check_no_delete(server, what):
    time.sleep(0.2)
    deletes = [r for r in server.maps() if r.lifetime == 0]
    check(not deletes, "%s: the gateway got a delete: the mapping was not left in place" % what)


# ---------------------------------------------------------------- scenarios


def t_unreachable(binary):
    port = closed_udp_port()
    rc, out, err = run(binary, ["add", "8000/tcp"] + gateway_args(port, ["--timeout", "300"]))
    check(rc == 1, "exit status %d, want 1 (stderr %r)" % (rc, err))
    check(out == "", "stdout not empty: %r" % out)
    one_stderr_line(err, r"127\.0\.0\.1")


def t_timeout(binary):
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        t0 = time.monotonic()
        rc, out, err = run(binary, ["add", "8000/udp", "--json"] +
                           gateway_args(silent.getsockname()[1], ["--timeout", "300"]))
        elapsed = time.monotonic() - t0
    finally:
        silent.close()
    check(rc == 1, "exit status %d, want 1 (stderr %r)" % (rc, err))
    one_stderr_line(err, r"no answer from 127\.0\.0\.1 on port \d+ within 300 ms")
    ev = json.loads(out)
    check(ev["event"] == "failed" and ev["protocol"] == "udp" and ev["internal_port"] == 8000,
          "bad failed line %r" % out)
    check(elapsed < 5, "took %.1f s for a 300 ms timeout" % elapsed)


def t_add(binary):
    server = FakePcp()
    try:
        rc, out, err = run(binary, ["add", "8000/tcp", "--lifetime", "3600"] +
                           gateway_args(server.port))
        check(rc == 0, "exit status %d, want 0 (stderr %r)" % (rc, err))
        check(err == "", "stderr not empty: %r" % err)
        m = re.match(r"^mapped tcp 8000 -> 203\.0\.113\.5:8000 via pcp, lifetime 3600 s, "
                     r"nonce ([0-9a-f]{24})\n$", out)
        check(m, "unexpected output %r" % out)
        maps = server.maps()
        check(maps and maps[0].lifetime == 3600 and maps[0].internal_port == 8000
              and maps[0].protocol == 6, "the gateway did not get the MAP request")
        check(m.group(1) == maps[0].nonce, "printed nonce is not the one sent")
        check_no_delete(server, "add")
    finally:
        server.close()


def t_add_json(binary):
    server = FakePcp()
    description = 'say "hi" \\ \t tab, caf\u00e9'
    try:
        rc, out, err = run(binary, ["add", "9000/UDP", "--json", "--external", "9001",
                                    "--description", description, "--nonce", NONCE.upper()] +
                           gateway_args(server.port))
        check(rc == 0, "exit status %d, want 0 (stderr %r)" % (rc, err))
        lines = out.splitlines()
        check(len(lines) == 1, "want one JSON line, got %r" % out)
        ev = json.loads(lines[0])
        want = {"event": "mapped", "backend": "pcp", "protocol": "udp", "internal_port": 9000,
                "external_address": EXTERNAL_IP, "external_port": 9001, "lifetime": 7200,
                "nonce": NONCE, "description": description}
        for k, v in want.items():
            check(ev.get(k) == v, "JSON key %s = %r, want %r (line %r)" % (k, ev.get(k), v, out))
        check(server.maps()[0].nonce == NONCE, "the --nonce given was not used")
        check_no_delete(server, "add --json")
    finally:
        server.close()


def t_add_refused(binary):
    server = FakePcp(lambda req: (NO_RESOURCES, 30) if req.opcode == 1 else (SUCCESS, 0))
    try:
        rc, out, err = run(binary, ["add", "8000", "--json"] + gateway_args(server.port))
        check(rc == 1, "exit status %d, want 1 (stderr %r)" % (rc, err))
        one_stderr_line(err, r"refused the mapping: NO_RESOURCES")
        ev = json.loads(out)
        check(ev["event"] == "failed" and ev["gateway_result"] == NO_RESOURCES
              and ev["gateway_result_name"] == "NO_RESOURCES" and ev["error"],
              "bad failed line %r" % out)
    finally:
        server.close()


def t_delete(binary):
    server = FakePcp()
    try:
        rc, out, err = run(binary, ["delete", "8000/udp", "--nonce", NONCE] +
                           gateway_args(server.port))
        check(rc == 0, "exit status %d, want 0 (stderr %r)" % (rc, err))
        # The backend is named when the library reports one for a bare delete.
        check(re.match(r"^deleted udp 8000( via pcp)?\n$", out), "unexpected output %r" % out)
        maps = server.maps()
        check(maps, "the gateway got no MAP request")
        check(all(r.lifetime == 0 and r.nonce == NONCE and r.protocol == 17
                  and r.internal_port == 8000 for r in maps),
              "not a delete with the given nonce: %r" % [(r.lifetime, r.nonce) for r in maps])
    finally:
        server.close()


def t_delete_refused(binary):
    # Like miniupnpd: a delete with another nonce is NOT_AUTHORIZED.
    server = FakePcp(lambda req: (NOT_AUTHORIZED, 30) if req.opcode == 1 else (SUCCESS, 0))
    try:
        rc, out, err = run(binary, ["delete", "8000"] + gateway_args(server.port))
        check(rc == 1, "exit status %d, want 1 (stderr %r)" % (rc, err))
        check(out == "", "stdout not empty: %r" % out)
        one_stderr_line(err, r"refused the delete: NOT_AUTHORIZED.*--nonce")
    finally:
        server.close()


def t_keep(binary):
    server = FakePcp()
    p = subprocess.Popen([binary, "keep", "8000/tcp", "8001/udp", "--json",
                          "--description", "keep test"] + gateway_args(server.port),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         stdin=subprocess.DEVNULL)
    try:
        events = []
        deadline = time.monotonic() + 10
        while len(events) < 2 and time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            events.append(json.loads(line))
        check(len(events) == 2 and all(e["event"] == "mapped" for e in events),
              "want two mapped events, got %r" % events)
        ports = sorted((e["protocol"], e["internal_port"]) for e in events)
        check(ports == [("tcp", 8000), ("udp", 8001)], "mapped %r" % ports)
        check(all(HEX24.match(e["nonce"]) and e["description"] == "keep test" for e in events),
              "bad nonce or description in %r" % events)
        check(not [r for r in server.maps() if r.lifetime == 0], "deleted before the signal")
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=10)
        check(p.returncode == 0, "exit status %d after SIGINT, want 0 (stderr %r)"
              % (p.returncode, err))
        finals = [json.loads(l) for l in out.splitlines()]
        check(sorted(e["event"] for e in finals) == ["deleted", "deleted"],
              "want two deleted events after SIGINT, got %r" % out)
        deleted = {r.nonce for r in server.maps() if r.lifetime == 0}
        check(deleted == {e["nonce"] for e in events},
              "the deletes did not carry the mappings' nonces")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        server.close()


def t_keep_all_fail(binary):
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        rc, out, err = run(binary, ["keep", "8000", "8001"] +
                           gateway_args(silent.getsockname()[1], ["--timeout", "300"]))
    finally:
        silent.close()
    check(rc == 1, "exit status %d, want 1 (stderr %r)" % (rc, err))
    lines = err.splitlines()
    check(len(lines) == 2 and all(l.startswith("portmap: tcp 800") for l in lines),
          "want one stderr line per failed mapping, got %r" % err)


def t_add_tried(binary):
    # Two backends, each failing for its own reason: the failed event's "tried" says each.
    server = FakePcp(lambda req: (NOT_AUTHORIZED, 0))
    try:
        rc, out, err = run(binary, ["add", "8000/tcp", "--json"] +
                           gateway_args(server.port, ["--timeout", "1500"], backend="pcp,natpmp"))
    finally:
        server.close()
    check(rc == 1, "exit status %d, want 1 (stderr %r)" % (rc, err))
    ev = json.loads(out)
    check(ev["event"] == "failed" and "error" in ev and "gateway_result" in ev, "bad line %r" % out)
    tried = {t["backend"]: t for t in ev["tried"]}
    check(sorted(tried) == ["natpmp", "pcp"], "tried %r, want pcp and natpmp" % ev["tried"])
    pcp = tried["pcp"]
    check(pcp["tried"] is True and pcp["gateway_result"] == NOT_AUTHORIZED
          and pcp["gateway_result_name"] == "NOT_AUTHORIZED" and pcp["status"], "pcp %r" % pcp)
    nat = tried["natpmp"]
    check(nat["tried"] is True and nat["status"] and nat["status"] != "ok", "natpmp %r" % nat)
    one_stderr_line(err, r"\[pcp: .*NOT_AUTHORIZED.*; natpmp: .*\]$")


def t_keep_retry(binary):
    # Nothing answers: keep reports lost and keeps asking; once a PCP server is there, mapped.
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    p = subprocess.Popen([binary, "keep", "8000/tcp", "--json"] +
                         gateway_args(port, backend="pcp,natpmp"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         stdin=subprocess.DEVNULL)
    server = None
    try:
        line = p.stdout.readline()
        if not line:
            raise Failure("no event; exit status %r, stderr %r" % (p.wait(), p.stderr.read()))
        ev = json.loads(line)
        check(ev["event"] == "lost" and len(ev["tried"]) == 2, "want lost first, got %r" % line)
        time.sleep(3)
        check(p.poll() is None, "keep exited %r instead of retrying" % p.returncode)
        silent.close()
        server = FakePcp(port=port)
        deadline = time.monotonic() + 20
        events = []
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            events.append(json.loads(line))
            if events[-1]["event"] == "mapped":
                break
        check(events and events[-1]["event"] == "mapped" and events[-1]["backend"] == "pcp",
              "want mapped via pcp after the server came up, got %r" % events)
        check(all(e["event"] != "lost" for e in events), "lost once only, got %r" % events)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=10)
        check(p.returncode == 0, "exit status %d after SIGINT (stderr %r)" % (p.returncode, err))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        silent.close()
        if server is not None:
            server.close()


def t_add_auto(binary):
    # The default backend set: PCP answers the probe at once and is preferred.
    server = FakePcp()
    try:
        rc, out, err = run(binary, ["add", "8000/tcp", "--json"] +
                           gateway_args(server.port, backend=None))
        check(rc == 0, "exit status %d, want 0 (stderr %r)" % (rc, err))
        ev = json.loads(out)
        check(ev["event"] == "mapped" and ev["backend"] == "pcp", "bad mapped line %r" % out)
        check(server.maps(), "the gateway did not get the MAP request")
    finally:
        server.close()


def t_backend_other(binary):
    # --backend natpmp,upnp reaches cfg.backends: not one PCP packet for the PCP fake.
    server = FakePcp()
    try:
        rc, out, err = run(binary, ["add", "8000/tcp", "--json"] +
                           gateway_args(server.port, ["--timeout", "1000"],
                                        backend="natpmp,upnp"))
        check(rc != 0, "exit status 0 without PCP (stdout %r)" % out)
        ev = json.loads(out)
        check(ev["event"] == "failed" and ev["backend"] in ("natpmp", "upnp", "none"),
              "bad failed line %r" % out)
        check(ev["protocol"] == "tcp" and ev["internal_port"] == 8000, "bad failed line %r" % out)
        check(len(err.splitlines()) == 1, "want one line on stderr, got %r" % err)
        time.sleep(0.1)
        check(not server.requests, "PCP requests reached the gateway with --backend natpmp,upnp")
    finally:
        server.close()


def t_list_pcp(binary):
    server = FakePcp()
    try:
        rc, out, err = run(binary, ["list"] + gateway_args(server.port))
        check(rc == 1, "exit status %d, want 1 (stderr %r)" % (rc, err))
        check(out == "", "stdout not empty: %r" % out)
        one_stderr_line(err, r"cannot list mappings: PCP and NAT-PMP cannot list mappings "
                             r"\(only UPnP can\)")
        rc, out, err = run(binary, ["list", "--json"] + gateway_args(server.port))
        check(rc == 1, "--json: exit status %d, want 1 (stderr %r)" % (rc, err))
        one_stderr_line(err, r"cannot list")
        ev = json.loads(out)
        check(ev["event"] == "failed" and ev["error"], "bad failed line %r" % out)
    finally:
        server.close()


SCENARIOS = {
    "unreachable": t_unreachable,
    "timeout": t_timeout,
    "add": t_add,
    "add_json": t_add_json,
    "add_refused": t_add_refused,
    "delete": t_delete,
    "delete_refused": t_delete_refused,
    "keep": t_keep,
    "keep_all_fail": t_keep_all_fail,
    "keep_retry": t_keep_retry,
    "add_tried": t_add_tried,
    "add_auto": t_add_auto,
    "backend_other": t_backend_other,
    "list_pcp": t_list_pcp,
}


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in SCENARIOS:
        sys.stderr.write("usage: test_cli_gateway.py PORTMAP_BINARY {%s}\n"
                         % "|".join(SCENARIOS))
        return 2
    binary = os.path.abspath(sys.argv[1])
    try:
        SCENARIOS[sys.argv[2]](binary)
    except Failure as e:
        print("FAIL: %s: %s" % (sys.argv[2], e))
        return 1
    print("ok: %s" % sys.argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main())
