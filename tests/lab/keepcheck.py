#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Judge a `portmap keep --json` run against what the router showed (lab tests).

  keepcheck.py --out FILE [--samples FILE] --key PROTO/PORT [--key ...] [options]

--out      portmap's stdout, each line stamped "SECONDS<TAB>JSON" (tl_keep_start)
--samples  the test's router samples, one per line: "SECONDS KEY present|absent [LEASE]"
           (KEY = PROTO/INTERNAL_PORT, e.g. tcp/8000; LEASE = UPnP lease left, or -)
--key      a mapping to judge (repeatable); its events are the lines with that protocol
           and internal_port
--min-renewed N     at least N "renewed" events per key (default 3)
--lifetime S        the lifetime asked for; gaps between successes must be <= 5/8 of the
                    granted lifetime + 0.5 s (RFC 6887 H5; NAT-PMP and UPnP renew at 1/2)
--min-gap S         successive successes at least S apart (default 0; PCP H5: 4)
--max-gap-fraction F  successive successes at most F x the granted lifetime + 0.5 s apart
                    (default 0.625 = 5/8; 1 = only "renewed before it expired")
--lapse-grace S     a gap too long is accepted when a "lost" event lies inside it (the
                    mapping expired: every renewal try was lost) and the next success came
                    within S s of that lost event; such lapses are counted and printed
--until T          judge samples and events only up to time T (e.g. the SIGTERM)
--max-absent N      samples after "mapped" allowed to show the rule absent (default 0)
--allow EVENT       an event that may appear (default: lost, failed, changed are errors)
--backend NAME      every mapped/renewed line must name this backend
Prints a summary per key; exit 1 when a check fails.
"""
import argparse
import importlib.util
import os
import sys

# s around a renewal in which the gateway replaces the rule (see the samples check)
REPLACE_WINDOW = 0.25


def load_jsonl():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "jsonl.py")
    spec = importlib.util.spec_from_file_location("jsonl", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def key_of(obj):
    proto = obj.get("protocol")
    proto = {6: "tcp", 17: "udp"}.get(proto, str(proto).lower())
    return "%s/%s" % (proto, obj.get("internal_port"))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--samples")
    p.add_argument("--key", action="append", required=True)
    p.add_argument("--min-renewed", type=int, default=3)
    p.add_argument("--lifetime", type=float, default=0)
    p.add_argument("--min-gap", type=float, default=0)
    p.add_argument("--max-gap-fraction", type=float, default=0.625)
    p.add_argument("--lapse-grace", type=float, default=0)
    p.add_argument("--until", type=float, default=0)
    p.add_argument("--max-absent", type=int, default=0)
    p.add_argument("--allow", action="append", default=[])
    p.add_argument("--backend")
    a = p.parse_args()
    jsonl = load_jsonl()
    rows = [(t, o) for t, o, _ in jsonl.read(a.out) if o is not None and t is not None]
    t0 = rows[0][0] if rows else 0.0
    until = a.until or float("inf")
    samples = []
    if a.samples:
        with open(a.samples) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    samples.append((float(parts[0]), parts[1], parts[2],
                                    parts[3] if len(parts) > 3 else "-"))
    bad = []
    for key in a.key:
        mine = [(t, o) for t, o in rows if key_of(o) == key and t <= until]
        print("%s: events %s" % (key, " ".join("%s@%.2f" % (o.get("event"), t - t0)
                                                for t, o in mine)))
        evs = [o.get("event") for _, o in mine]
        for ev in ("lost", "failed", "changed"):
            if ev in evs and ev not in a.allow:
                bad.append("%s: unexpected %r event" % (key, ev))
        mapped = [t for t, o in mine if o.get("event") == "mapped"]
        renewed = [t for t, o in mine if o.get("event") == "renewed"]
        if len(mapped) != 1:
            bad.append("%s: %d mapped events, expected 1" % (key, len(mapped)))
            continue
        if len(renewed) < a.min_renewed:
            bad.append("%s: %d renewed events, expected >= %d" % (key, len(renewed), a.min_renewed))
        succ = [(t, o) for t, o in mine if o.get("event") in ("mapped", "renewed", "changed")]
        if a.backend:
            for _, o in succ:
                if str(o.get("backend")).lower() != a.backend:
                    bad.append("%s: backend %r, expected %s" % (key, o.get("backend"), a.backend))
                    break
        granted = [o.get("lifetime") for _, o in succ if isinstance(o.get("lifetime"), int)]
        print("%s: granted lifetimes %s" % (key, sorted(set(granted))))
        chain = sorted(t for t, _ in succ)
        gaps = [b - x for x, b in zip(chain, chain[1:])]
        print("%s: gaps between successes (s): %s" % (key, " ".join("%.2f" % g for g in gaps)))
        lifetime = max(granted or [a.lifetime or 0])
        losts = [t for t, o in mine if o.get("event") == "lost"]
        lapses = 0
        for x, b in zip(chain, chain[1:]):
            g = b - x
            inside = [t for t in losts if x < t < b]
            if (a.lapse_grace and inside and lifetime and g > lifetime * a.max_gap_fraction + 0.5
                    and b - inside[-1] <= a.lapse_grace):
                lapses += 1
                print("%s: lapse: lost at +%.2f s, back at +%.2f s" % (key, inside[-1] - t0, b - t0))
                gaps.remove(g)
        if a.lapse_grace:
            print("%s: lapses (expired, then re-created): %d" % (key, lapses))
        for g in gaps:
            if a.min_gap and g < a.min_gap - 0.1:
                bad.append("%s: successes %.2f s apart, expected >= %.1f" % (key, g, a.min_gap))
            if lifetime and g > lifetime * a.max_gap_fraction + 0.5:
                bad.append("%s: renewal %.2f s after the previous success: later than %.3g of "
                           "the %d s lifetime" % (key, g, a.max_gap_fraction, lifetime))
        ports = {o.get("external_port") for _, o in succ}
        if len(ports) > 1 and "changed" not in evs:
            bad.append("%s: external port changed without a changed event: %s" % (key, sorted(ports)))
        mine_s = [s for s in samples if s[1] == key and mapped[0] < s[0] <= until]
        absent = [s for s in mine_s if s[2] != "present"]
        # miniupnpd renews a PCP mapping by replacing its rule (delete, then
        # add: "already redirected ..., replacing"); a sample taken in that
        # moment, within REPLACE_WINDOW s of a renewal made while the previous
        # grant still ran, shows the gateway's replace, not a lapse of ours
        replacing = [s for s in absent if any(
            abs(s[0] - t) <= REPLACE_WINDOW and x < t < x + (lifetime or 0)
            for x, t in zip(chain, chain[1:]))]
        for s in replacing:
            print("%s:   absent at +%.2f s, during the gateway's replace at a renewal" % (
                key, s[0] - t0))
        absent = [s for s in absent if s not in replacing]
        leases = [s[3] for s in mine_s if s[3] != "-"]
        print("%s: %d router samples after mapped, rule absent in %d%s" % (
            key, len(mine_s), len(absent),
            ("; UPnP lease left in the samples: " + " ".join(leases)) if leases else ""))
        for s in absent[:10]:
            print("%s:   absent at +%.2f s" % (key, s[0] - t0))
        if a.samples and len(absent) > a.max_absent:
            bad.append("%s: rule absent on the router in %d samples (allowed %d)" % (
                key, len(absent), a.max_absent))
        if a.samples and not mine_s:
            bad.append("%s: no router samples after the mapping" % key)
    for b in bad:
        print("  FAIL: " + b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
