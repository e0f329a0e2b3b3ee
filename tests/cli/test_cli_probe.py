#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""End-to-end tests of portmap-probe against loopback only.

    test_cli_probe.py PORTMAP_PROBE_BINARY SCENARIO

The "gateway" is 127.0.0.1 with --port pointing at a UDP port of our own:
closed (ICMP unreachable), silent, or the scripted PCP responder FakePcp of
test_cli_gateway.py (which answers the probe's ANNOUNCE, opcode 0). The
responder speaks PCP only, so most scenarios pass --backend pcp; probe_auto
checks that the default set still selects PCP. Timings are measured from
outside the process and printed.
"""
import json
import os
import re
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_cli_gateway import (EXTERNAL_IP, NO_RESOURCES, NOT_AUTHORIZED, SUCCESS,  # noqa: E402
                              Failure, FakePcp, check, closed_udp_port, gateway_args,
                              one_stderr_line)

PROG = "portmap-probe"
BUDGET_MS = 500  # the library's default probe budget (portmap_config_init)
# Asserted bounds are generous (loaded CI machines); the measured value is printed.
SLACK_MS = 1000

BACKEND_KEYS = {"enabled", "available", "error", "detail", "gateway_result",
                "gateway_result_name", "rtt_ms", "external_address", "external_is_private",
                "epoch"}
UPNP_KEYS = {"device_name", "service_type", "igd_version", "connection_status", "control_url",
             "location"}
TOP_KEYS = {"gateway", "local_address", "pcp", "natpmp", "upnp", "selected", "external",
            "external_address", "elapsed_ms"}
MAP_TEST_KEYS = {"ok", "backend", "protocol", "internal_port", "external_address",
                 "external_port", "lifetime", "nonce", "error", "deleted", "delete_error",
                 "elapsed_ms"}


def run(binary, args, timeout=20):
    t0 = time.monotonic()
    p = subprocess.run([binary] + args, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr, (time.monotonic() - t0) * 1000.0


def parse_json(out):
    lines = out.splitlines()
    check(len(lines) == 1, "want exactly one JSON line on stdout, got %r" % out)
    try:
        doc = json.loads(lines[0])
    except ValueError as e:
        raise Failure("stdout is not JSON (%s): %r" % (e, out))
    missing = TOP_KEYS - set(doc)
    check(not missing, "JSON lacks %s: %r" % (sorted(missing), out))
    for name in ("pcp", "natpmp", "upnp"):
        keys = BACKEND_KEYS | (UPNP_KEYS if name == "upnp" else set())
        missing = keys - set(doc[name])
        check(not missing, "JSON %s lacks %s" % (name, sorted(missing)))
        check(isinstance(doc[name]["available"], bool), "%s.available is not a bool" % name)
    check(doc["external"] in ("public", "private", "none"), "bad external %r" % doc["external"])
    check(doc["selected"] in ("pcp", "natpmp", "upnp", None), "bad selected %r" % doc["selected"])
    return doc


def only_pcp_enabled(doc):
    for name in ("natpmp", "upnp"):
        b = doc[name]
        check(b["enabled"] is False and b["available"] is False and b["error"] == "not enabled",
              "%s should be 'not enabled' with --backend pcp: %r" % (name, b))


def silent_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    return s


# ---------------------------------------------------------------- scenarios


def t_probe_pcp(binary):
    server = FakePcp()
    try:
        rc, out, err, ms = run(binary, ["--json"] + gateway_args(server.port))
        print("probe against the fake: %.0f ms" % ms)
        check(rc == 0, "exit status %d, want 0 (stderr %r)" % (rc, err))
        check(err == "", "stderr not empty: %r" % err)
        doc = parse_json(out)
        pcp = doc["pcp"]
        check(pcp["available"] is True and pcp["error"] is None, "pcp not available: %r" % pcp)
        check(doc["selected"] == "pcp", "selected %r, want pcp" % doc["selected"])
        check(isinstance(pcp["rtt_ms"], int) and pcp["rtt_ms"] >= 0, "bad rtt_ms %r" % pcp)
        check(isinstance(pcp["epoch"], int) and pcp["epoch"] >= 100, "bad epoch %r" % pcp)
        check(doc["gateway"] == "127.0.0.1", "gateway %r" % doc["gateway"])
        # ANNOUNCE reports no external address: nothing to judge without --map.
        check(doc["external"] == "none" and doc["external_address"] is None,
              "external %r without --map" % doc["external"])
        check("map_test" not in doc, "map_test without --map")
        only_pcp_enabled(doc)
        check(server.announces(), "the fake got no ANNOUNCE")
        check(not server.maps(), "a probe without --map sent a MAP")

        rc, out, err, _ = run(binary, gateway_args(server.port))
        check(rc == 0, "text: exit status %d, want 0 (stderr %r)" % (rc, err))
        check(re.search(r"^PCP +yes +\d+ ms +\d+ s ", out, re.M), "no PCP row in %r" % out)
        check(re.search(r"^NAT-PMP +no .*not enabled$", out, re.M), "no NAT-PMP row in %r" % out)
        check("verdict: new mappings will use PCP." in out, "no verdict in %r" % out)
    finally:
        server.close()


def t_probe_auto(binary):
    # Default backend set: whatever NAT-PMP and UPnP find on 127.0.0.1, PCP is preferred.
    server = FakePcp()
    try:
        rc, out, err, ms = run(binary, ["--json"] + gateway_args(server.port, backend=None))
        print("probe (auto) against the fake: %.0f ms" % ms)
        check(rc == 0, "exit status %d, want 0 (stderr %r)" % (rc, err))
        doc = parse_json(out)
        check(doc["pcp"]["available"] is True, "pcp not available: %r" % doc["pcp"])
        check(doc["selected"] == "pcp", "selected %r, want pcp" % doc["selected"])
        check(all(doc[n]["enabled"] is True for n in ("pcp", "natpmp", "upnp")),
              "auto did not enable every backend: %r" % out)
        check(ms < BUDGET_MS + SLACK_MS, "took %.0f ms, budget %d ms" % (ms, BUDGET_MS))
    finally:
        server.close()


def t_probe_closed(binary):
    port = closed_udp_port()
    rc, out, err, ms = run(binary, ["--json"] + gateway_args(port))
    print("probe of a closed port: %.0f ms (budget %d ms)" % (ms, BUDGET_MS))
    check(rc == 1, "exit status %d, want 1 (stderr %r)" % (rc, err))
    doc = parse_json(out)
    pcp = doc["pcp"]
    check(pcp["available"] is False and pcp["error"], "pcp.error is null: %r" % pcp)
    check(doc["selected"] is None and doc["external"] == "none", "bad verdict %r" % out)
    one_stderr_line(err, r"no port-mapping protocol works with 127\.0\.0\.1 \(PCP: ", PROG)
    check(ms < BUDGET_MS + SLACK_MS, "took %.0f ms, budget %d ms" % (ms, BUDGET_MS))

    rc, out, err, _ = run(binary, gateway_args(port))
    check(rc == 1, "text: exit status %d, want 1" % rc)
    check("verdict: no port-mapping protocol works" in out and "what to try" in out,
          "no advice in %r" % out)


def t_probe_silent(binary):
    silent = silent_socket()
    try:
        port = silent.getsockname()[1]
        rc, out, err, ms = run(binary, ["--json"] + gateway_args(port))
        print("probe of a silent port: %.0f ms (budget %d ms)" % (ms, BUDGET_MS))
        check(rc == 1, "exit status %d, want 1 (stderr %r)" % (rc, err))
        doc = parse_json(out)
        check(doc["pcp"]["error"] == "no answer in time", "pcp %r" % doc["pcp"])
        check(doc["pcp"]["rtt_ms"] is None and doc["pcp"]["epoch"] is None, "pcp %r" % doc["pcp"])
        one_stderr_line(err, r"PCP: no answer in time", PROG)
        check(BUDGET_MS - 50 <= ms < BUDGET_MS + SLACK_MS,
              "took %.0f ms for a %d ms budget" % (ms, BUDGET_MS))

        rc, out, err, ms = run(binary, ["--json", "--timeout", "200"] + gateway_args(port))
        print("probe of a silent port, --timeout 200: %.0f ms" % ms)
        check(rc == 1, "--timeout 200: exit status %d, want 1" % rc)
        doc = parse_json(out)
        check(150 <= ms < 200 + SLACK_MS, "took %.0f ms for --timeout 200" % ms)
        check("200 ms" in doc["pcp"]["detail"], "detail %r" % doc["pcp"]["detail"])
    finally:
        silent.close()


def t_probe_refused(binary):
    server = FakePcp(lambda req: (NOT_AUTHORIZED, 0))
    try:
        rc, out, err, _ = run(binary, ["--json"] + gateway_args(server.port))
        check(rc == 1, "exit status %d, want 1 (stderr %r)" % (rc, err))
        doc = parse_json(out)
        pcp = doc["pcp"]
        check(pcp["available"] is False and pcp["gateway_result"] == NOT_AUTHORIZED
              and pcp["gateway_result_name"] == "NOT_AUTHORIZED", "pcp %r" % pcp)
        check("NOT_AUTHORIZED (2)" in pcp["detail"], "detail %r" % pcp["detail"])
        one_stderr_line(err, r"NOT_AUTHORIZED \(2\)", PROG)

        rc, out, err, _ = run(binary, gateway_args(server.port))
        check(re.search(r"^PCP +no .*refused.*NOT_AUTHORIZED \(2\)$", out, re.M),
              "no refusal in the table %r" % out)
    finally:
        server.close()


def t_probe_map(binary):
    server = FakePcp()
    try:
        rc, out, err, ms = run(binary, ["--json", "--map", "8000/udp"] +
                               gateway_args(server.port))
        print("probe --map against the fake: %.0f ms" % ms)
        check(rc == 0, "exit status %d, want 0 (stderr %r)" % (rc, err))
        doc = parse_json(out)
        mt = doc.get("map_test")
        check(isinstance(mt, dict), "no map_test in %r" % out)
        missing = MAP_TEST_KEYS - set(mt)
        check(not missing, "map_test lacks %s" % sorted(missing))
        check(mt["ok"] is True and mt["error"] is None, "map_test failed: %r" % mt)
        check(mt["backend"] == "pcp" and mt["protocol"] == "udp" and mt["internal_port"] == 8000,
              "map_test %r" % mt)
        check(mt["external_address"] == EXTERNAL_IP and mt["external_port"] == 8000,
              "map_test external %r:%r" % (mt["external_address"], mt["external_port"]))
        check(mt["lifetime"] == 60, "lifetime %r, want 60" % mt["lifetime"])
        check(mt["deleted"] is True and mt["delete_error"] is None, "not deleted: %r" % mt)
        check(doc["external"] == "public" and doc["external_address"] == EXTERNAL_IP,
              "verdict %r %r" % (doc["external"], doc["external_address"]))
        maps = server.maps()
        made = [r for r in maps if r.lifetime > 0]
        deletes = [r for r in maps if r.lifetime == 0]
        check(len(made) >= 1 and made[0].lifetime == 60 and made[0].protocol == 17
              and made[0].internal_port == 8000, "no MAP with lifetime 60 for udp 8000")
        check(deletes, "the fake saw no delete")
        check(all(d.nonce == made[0].nonce for d in deletes),
              "the delete's nonce differs from the MAP's")
        check(mt["nonce"] == made[0].nonce, "map_test.nonce is not the one sent")

        rc, out, err, _ = run(binary, ["--map", "8001", "--lifetime", "30"] +
                              gateway_args(server.port))
        check(rc == 0, "text: exit status %d (stderr %r)" % (rc, err))
        check(re.search(r"^map test: tcp 8001 -> 203\.0\.113\.5:8001 via PCP, lifetime 30 s",
                        out, re.M), "no map test line in %r" % out)
        check(re.search(r"deleted again in \d+ ms", out), "no delete line in %r" % out)
        check("is public" in out, "no public verdict in %r" % out)
    finally:
        server.close()


def t_probe_map_private(binary):
    server = FakePcp(external_ip="100.64.1.2")  # CGN space (RFC 6598)
    try:
        rc, out, err, _ = run(binary, ["--json", "--map", "8000"] + gateway_args(server.port))
        check(rc == 0, "exit status %d, want 0 (stderr %r)" % (rc, err))
        doc = parse_json(out)
        check(doc["map_test"]["ok"] is True and doc["map_test"]["external_is_private"] is True,
              "map_test %r" % doc["map_test"])
        check(doc["external"] == "private" and doc["external_address"] == "100.64.1.2",
              "verdict %r" % doc["external"])
        rc, out, err, _ = run(binary, ["--map", "8000"] + gateway_args(server.port))
        check("the Internet cannot reach you through this mapping" in out.replace("\n  ", " "),
              "no double-NAT warning in %r" % out)
    finally:
        server.close()


def t_probe_map_refused(binary):
    server = FakePcp(lambda req: (NO_RESOURCES, 30) if req.opcode == 1 else (SUCCESS, 0))
    try:
        rc, out, err, _ = run(binary, ["--json", "--map", "8000"] + gateway_args(server.port))
        check(rc == 1, "exit status %d, want 1 (stderr %r)" % (rc, err))
        doc = parse_json(out)
        mt = doc["map_test"]
        check(doc["pcp"]["available"] is True, "pcp %r" % doc["pcp"])
        check(mt["ok"] is False and mt["error"] and mt["gateway_result"] == NO_RESOURCES
              and mt["deleted"] is False, "map_test %r" % mt)
        one_stderr_line(err, r"test mapping of tcp 8000 via PCP failed", PROG)
    finally:
        server.close()


def t_probe_map_timeout(binary):
    # The probe's ANNOUNCE is answered, every MAP is dropped.
    server = FakePcp(lambda req: None if req.opcode == 1 else (SUCCESS, 0))
    try:
        rc, out, err, ms = run(binary, ["--json", "--map", "8000", "--timeout", "300"] +
                               gateway_args(server.port))
        print("probe --map with MAP dropped, --timeout 300: %.0f ms" % ms)
        check(rc == 1, "exit status %d, want 1 (stderr %r)" % (rc, err))
        doc = parse_json(out)
        mt = doc["map_test"]
        check(doc["pcp"]["available"] is True and doc["selected"] == "pcp", "probe %r" % out)
        check(mt["ok"] is False and mt["error"] == "no answer in time" and mt["deleted"] is False,
              "map_test %r" % mt)
        one_stderr_line(err, r"test mapping of tcp 8000 via PCP failed: no answer in time", PROG)
        check(ms < 300 + 300 + SLACK_MS, "took %.0f ms" % ms)
    finally:
        server.close()


def t_probe_trace(binary):
    server = FakePcp()
    try:
        rc, out, err, _ = run(binary, ["--json", "--trace", "--map", "8000"] +
                              gateway_args(server.port))
        check(rc == 0, "exit status %d, want 0 (stderr %r)" % (rc, err))
        parse_json(out)  # the trace goes to stderr: stdout stays one JSON object
        port = server.port
        sent = re.findall(r"^portmap-probe: \+\d+ ms \[trace\] sent to 127\.0\.0\.1 port %d, "
                          r"(\d+) octets$" % port, err, re.M)
        got = re.findall(r"^portmap-probe: \+\d+ ms \[trace\] received from 127\.0\.0\.1 "
                         r"port %d, (\d+) octets$" % port, err, re.M)
        # ANNOUNCE, MAP, delete out; three answers back.
        check(len(sent) >= 3 and len(got) >= 3, "want >= 3 datagrams each way in %r" % err)
        check(sent[0] == "24", "the ANNOUNCE is 24 octets, traced %s" % sent[0])
        check(re.search(r"^  0000  02 00 00 00 ", err, re.M), "no hex dump of the ANNOUNCE")
        check(re.search(r"^  0000  02 81 ", err, re.M), "no hex dump of a MAP response")
        check(re.search(r"^  0010  00 00 ff ff 7f 00 00 01 +\|\.\.\.\.\.\.\.\.\|$", err,
                        re.M), "no ASCII column for the ANNOUNCE's client address")
        check(re.search(r"\[(debug|info)\] ", err), "no library log lines with --trace")

        rc, out, err, _ = run(binary, ["--verbose"] + gateway_args(server.port))
        check(rc == 0, "--verbose: exit status %d" % rc)
        check(re.search(r"\[(debug|info)\] ", err), "no log lines with --verbose: %r" % err)
        check("[trace]" not in err, "--verbose alone traced packets")
    finally:
        server.close()


SCENARIOS = {
    "probe_pcp": t_probe_pcp,
    "probe_auto": t_probe_auto,
    "probe_closed": t_probe_closed,
    "probe_silent": t_probe_silent,
    "probe_refused": t_probe_refused,
    "probe_map": t_probe_map,
    "probe_map_private": t_probe_map_private,
    "probe_map_refused": t_probe_map_refused,
    "probe_map_timeout": t_probe_map_timeout,
    "probe_trace": t_probe_trace,
}


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in SCENARIOS:
        sys.stderr.write("usage: test_cli_probe.py PORTMAP_PROBE_BINARY {%s}\n"
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
