#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The tools against a scripted UPnP-IGD on loopback (fake_upnp_gw.py).

    test_cli_upnp.py PORTMAP PORTMAP_PROBE SCENARIO

The gateway is 127.0.0.X (X random, SSDP on its port 1900), --backend upnp.

untrusted_json  the router's friendlyName and a mapping's description hold a
                C1 control (CSI, NEL), ill-formed UTF-8 and a surrogate: every
                --json line must be valid UTF-8 and valid JSON, ill-formed
                sequences U+FFFD, C1 controls escaped as \\u00XX
untrusted_text  the same in the text output: valid UTF-8, no C0 (but the
                newline) or C1 control, no DEL
add_permanent   the router grants permanent leases only (Q9, 725): `add`
                must not leave a rule that never expires behind: it deletes
                it again and exits 1 pointing at `keep` and --permanent
add_permanent_ok  with --permanent, `add` leaves it and says "permanent"
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_upnp_gw import FakeUpnp  # noqa: E402

# CSI (U+009B as UTF-8), an ill-formed \xff, a truncated 3-octet sequence,
# then U+2028 (allowed: valid JSON, not a control).
NASTY_NAME = b"Evil\xc2\x9b31m\xff\xe2\x82 Router \xe2\x80\xa8x"
WANT_NAME_JSON = "Evil\u009b31m\ufffd\ufffd Router \u2028x"
WANT_NAME_TEXT = "Evil?31m?? Router \u2028x"
# NEL (U+0085), an encoded surrogate (ill-formed: 3 maximal subparts), an emoji.
NASTY_DESC = b"d\xc2\x85e\xed\xa0\x80s\xf0\x9f\x98\x80"
WANT_DESC_JSON = "d\u0085e\ufffd\ufffd\ufffds\U0001F600"
WANT_DESC_TEXT = "d?e???s\U0001F600"


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def run(args):
    p = subprocess.run(args, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


def nasty_gateway():
    f = FakeUpnp(friendly_name=NASTY_NAME)
    f.entries.append(dict(proto=b"TCP", ext=b"8000", client=b"192.168.1.5", int=b"8000",
                          desc=NASTY_DESC, lease=b"3600"))
    return f


def json_lines(out, what):
    try:
        text = out.decode("utf-8", errors="strict")
    except UnicodeDecodeError as e:
        raise Failure("%s: --json output is not UTF-8 (%s): %r" % (what, e, out))
    docs = []
    for line in text.split("\n"):  # not splitlines(): it splits at U+2028 too
        if line == "":
            continue
        try:
            docs.append(json.loads(line))
        except ValueError as e:
            raise Failure("%s: not JSON (%s): %r" % (what, e, line))
    for c in range(0x80, 0xA0):
        check(chr(c) not in text, "%s: raw C1 U+%04X in the JSON text: %r" % (what, c, out))
    return docs


def t_untrusted_json(portmap, probe):
    f = nasty_gateway()
    try:
        rc, out, err = run([probe, "--gateway", f.addr, "--backend", "upnp", "--json"])
        check(rc == 0, "probe: exit status %d (stderr %r)" % (rc, err))
        doc = json_lines(out, "probe")[0]
        check(doc["upnp"]["device_name"] == WANT_NAME_JSON,
              "device_name %r, want %r" % (doc["upnp"]["device_name"], WANT_NAME_JSON))
        check(b"\\u009b" in out, "C1 CSI not escaped as \\u009b: %r" % out)
        rc, out, err = run([portmap, "list", "--gateway", f.addr, "--backend", "upnp", "--json"])
        check(rc == 0, "list: exit status %d (stderr %r)" % (rc, err))
        docs = json_lines(out, "list")
        entry = [d for d in docs if d.get("event") == "entry"]
        check(len(entry) == 1, "want one entry: %r" % out)
        check(entry[0]["description"] == WANT_DESC_JSON,
              "description %r, want %r" % (entry[0]["description"], WANT_DESC_JSON))
        check(b"\\u0085" in out, "C1 NEL not escaped as \\u0085: %r" % out)
    finally:
        f.close()


def clean_text(out, what):
    try:
        text = out.decode("utf-8", errors="strict")
    except UnicodeDecodeError as e:
        raise Failure("%s: text output is not UTF-8 (%s): %r" % (what, e, out))
    for ch in text:
        c = ord(ch)
        check(not ((c < 0x20 and ch != "\n") or 0x7F <= c <= 0x9F),
              "%s: control U+%04X reaches the terminal: %r" % (what, c, out))
    return text


def t_untrusted_text(portmap, probe):
    f = nasty_gateway()
    try:
        rc, out, err = run([probe, "--gateway", f.addr, "--backend", "upnp", "--verbose"])
        check(rc == 0, "probe: exit status %d (stderr %r)" % (rc, err))
        text = clean_text(out, "probe")
        check(WANT_NAME_TEXT in text, "want %r in %r" % (WANT_NAME_TEXT, text))
        clean_text(err, "probe --verbose stderr")
        rc, out, err = run([portmap, "list", "--gateway", f.addr, "--backend", "upnp"])
        check(rc == 0, "list: exit status %d (stderr %r)" % (rc, err))
        text = clean_text(out, "list")
        check(WANT_DESC_TEXT in text, "want %r in %r" % (WANT_DESC_TEXT, text))
    finally:
        f.close()


def t_add_permanent(portmap, probe):
    f = FakeUpnp(profile="permanent")
    try:
        for json_mode in (False, True):
            args = [portmap, "add", "8000/tcp", "--lifetime", "600", "--gateway", f.addr,
                    "--backend", "upnp"] + (["--json"] if json_mode else [])
            rc, out, err = run(args)
            adds = [a for a, _ in f.actions if a == "AddPortMapping"]
            check(adds, "no AddPortMapping reached the fake")
            check(f.entries == [], "add left a permanent rule behind: %r (stdout %r, stderr %r)"
                  % (f.entries, out, err))
            check(rc == 1, "exit status %d, want 1 (stdout %r, stderr %r)" % (rc, out, err))
            e = err.decode()
            check("permanent" in e and "portmap keep" in e and "--permanent" in e,
                  "stderr does not explain: %r" % e)
            check(b"lifetime 0 s" not in out, "prints lifetime 0 s: %r" % out)
            check(out == b"" or json_mode, "text stdout not empty: %r" % out)
            f.actions.clear()
    finally:
        f.close()


def t_add_permanent_ok(portmap, probe):
    f = FakeUpnp(profile="permanent")
    try:
        rc, out, err = run([portmap, "add", "8000/tcp", "--gateway", f.addr, "--backend", "upnp",
                            "--permanent"])
        check(rc == 0, "exit status %d (stdout %r, stderr %r)" % (rc, out, err))
        check(len(f.entries) == 1 and f.entries[0]["lease"] == b"0",
              "want the permanent rule left: %r" % f.entries)
        check(b"permanent" in out and b"lifetime 0 s" not in out, "stdout %r" % out)
    finally:
        f.close()


SCENARIOS = {
    "untrusted_json": t_untrusted_json,
    "untrusted_text": t_untrusted_text,
    "add_permanent": t_add_permanent,
    "add_permanent_ok": t_add_permanent_ok,
}


def main():
    if len(sys.argv) != 4 or sys.argv[3] not in SCENARIOS:
        sys.stderr.write("usage: test_cli_upnp.py PORTMAP PORTMAP_PROBE {%s}\n"
                         % "|".join(SCENARIOS))
        return 2
    try:
        SCENARIOS[sys.argv[3]](os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]))
    except Failure as e:
        print("FAIL: %s: %s" % (sys.argv[3], e))
        return 1
    print("ok: %s" % sys.argv[3])
    return 0


if __name__ == "__main__":
    sys.exit(main())
