#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Read `portmap --json` output (one JSON object per line) for the lab tests.

Lines may carry an arrival timestamp written by the test: "SECONDS<TAB>JSON".
Lines that are not JSON objects are errors (stdout of --json must be pure JSON lines).

  jsonl.py validate FILE            check every line; print a summary; exit 1 on errors
  jsonl.py get FILE EVENT KEY       print KEY of the first EVENT line (exit 1 if none)
  jsonl.py fields FILE EVENT KEY...  print j_KEY=VALUE (shell-quoted) from the first EVENT
  jsonl.py count FILE EVENT         print how many EVENT lines there are
  jsonl.py times FILE EVENT...      print "TIME EVENT" for each line of those events
  jsonl.py find FILE EVENT KEY [FIELD=VALUE...]  KEY of the first EVENT line whose FIELDs
                                    have those values (compared as text; exit 1 if none)
  jsonl.py last FILE EVENT KEY [FIELD=VALUE...]  the same for the last such line
"""
import json
import re
import shlex
import sys

EVENTS = {"mapped", "renewed", "changed", "lost", "failed", "deleted"}
MAPPING_KEYS = ("event", "backend", "protocol", "internal_port", "external_address",
                "external_port", "lifetime", "nonce")


def read(path):
    """Return [(time or None, obj or None, raw line)]."""
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for raw in f:
            raw = raw.rstrip("\n")
            if not raw.strip():
                continue
            t = None
            m = re.match(r"^(\d+(?:[.,]\d+)?)\t(.*)$", raw)
            text = raw
            if m:
                t = float(m.group(1).replace(",", "."))
                text = m.group(2)
            try:
                obj = json.loads(text)
            except ValueError:
                obj = None
            if not isinstance(obj, dict):
                obj = None
            out.append((t, obj, text))
    return out


def problems(rows):
    errs = []
    for i, (_, obj, text) in enumerate(rows, 1):
        if obj is None:
            errs.append("line %d is not a JSON object: %r" % (i, text[:200]))
            continue
        ev = obj.get("event")
        if ev not in EVENTS:
            errs.append("line %d: event %r not one of %s" % (i, ev, sorted(EVENTS)))
            continue
        if ev in ("mapped", "renewed", "changed"):
            missing = [k for k in MAPPING_KEYS if k not in obj]
            if missing:
                errs.append("line %d (%s): missing keys %s" % (i, ev, missing))
            for k in ("internal_port", "external_port", "lifetime"):
                if k in obj and not isinstance(obj[k], int):
                    errs.append("line %d (%s): %s is not an integer: %r" % (i, ev, k, obj[k]))
        nonce = obj.get("nonce")
        if str(obj.get("backend", "")).lower() == "pcp" and nonce is not None and \
                not re.fullmatch(r"[0-9a-fA-F]{24}", str(nonce)):
            errs.append("line %d (%s): nonce %r is not 24 hex digits" % (i, ev, nonce))
    return errs


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, path = argv[1], argv[2]
    rows = read(path)
    if cmd == "validate":
        errs = problems(rows)
        counts = {}
        for _, obj, _ in rows:
            if obj:
                counts[obj.get("event")] = counts.get(obj.get("event"), 0) + 1
        print("%d lines, events %s" % (len(rows), counts))
        for e in errs:
            print("  " + e)
        return 1 if errs else 0
    if cmd == "get" and len(argv) == 5:
        for _, obj, _ in rows:
            if obj and obj.get("event") == argv[3]:
                v = obj.get(argv[4])
                if v is None:
                    return 1
                print(v if not isinstance(v, bool) else str(v).lower())
                return 0
        return 1
    if cmd == "fields" and len(argv) >= 5:
        for _, obj, _ in rows:
            if obj and obj.get("event") == argv[3]:
                for k in argv[4:]:
                    v = obj.get(k)
                    v = "" if v is None else (str(v).lower() if isinstance(v, bool) else str(v))
                    print("j_%s=%s" % (re.sub(r"\W", "_", k), shlex.quote(v)))
                return 0
        return 1
    if cmd == "count" and len(argv) == 4:
        print(sum(1 for _, o, _ in rows if o and o.get("event") == argv[3]))
        return 0
    if cmd in ("find", "last") and len(argv) >= 5:
        conds = [c.split("=", 1) for c in argv[5:]]
        hits = []
        for t, obj, _ in rows:
            if not obj or obj.get("event") != argv[3]:
                continue
            if all(str(obj.get(k)).lower() == v.lower() for k, v in conds):
                hits.append(obj)
        if not hits:
            return 1
        v = (hits[0] if cmd == "find" else hits[-1]).get(argv[4])
        if v is None:
            return 1
        print(v if not isinstance(v, bool) else str(v).lower())
        return 0
    if cmd == "times" and len(argv) >= 4:
        for t, obj, _ in rows:
            if obj and obj.get("event") in argv[3:]:
                print("%s %s" % (t, obj.get("event")))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
