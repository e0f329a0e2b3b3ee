#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Lab test: `portmap keep` keeps a short PCP mapping alive on the real router.
#
#   bash tests/lab/test_pcp_keep.sh PATH/TO/portmap      (as root)
# Personality short (miniupnpd min_lifetime=2, so an 8 s lifetime is granted as is).
# For 30 s the router's rules are sampled every second: the mapping must never
# lapse; there must be >= 3 "renewed" events, successive renewals >= 4 s apart and
# within [1/2, 5/8] of the lifetime (checklist H5). Then SIGTERM: exit 0 within 2 s,
# a "deleted" event, the rule gone within 2 s.
set -u -o pipefail
# shellcheck source-path=SCRIPTDIR source=testlib.sh
. "$(dirname "$0")/testlib.sh"
tl_enter_lab short "$@"

PORTMAP=${1:-}
if [ -z "$PORTMAP" ] || [ ! -x "$PORTMAP" ]; then
  tl_fail "usage: $0 PATH/TO/portmap (got '${PORTMAP}')"
fi

DURATION=${KEEP_SECONDS:-30}
LIFETIME=8
out=$TL_TMP/keep.out err=$TL_TMP/keep.err samples=$TL_TMP/samples fifo=$TL_TMP/keep.fifo
mkfifo "$fifo" || tl_fail "mkfifo"
: >"$samples"

# Timestamp each line as it arrives (portmap must flush stdout per event).
while IFS= read -r line; do
  printf '%s\t%s\n' "$EPOCHREALTIME" "$line"
done <"$fifo" >"$out" &
stamper=$!
tl_track "$stamper"

tl_log "portmap keep 8000/tcp --lifetime $LIFETIME --json  (for ${DURATION} s)"
# ip netns exec execs portmap: $! is portmap's own PID, the one SIGTERM goes to.
ip netns exec "$LAB_CLIENT_NS" "$PORTMAP" keep 8000/tcp --lifetime "$LIFETIME" --json \
  >"$fifo" 2>"$err" &
pm=$!
tl_track "$pm"
t0=$EPOCHREALTIME

# Sample the router's rules once a second.
ext_port=
for ((s = 0; s < DURATION; s++)); do
  if ! kill -0 "$pm" 2>/dev/null; then
    wait "$pm"
    rc=$?
    tl_show "$out" "$err"
    tl_fail "portmap keep exited by itself (status $rc) after $s s"
  fi
  if [ -z "$ext_port" ]; then
    ext_port=$(tl_jsonl get "$out" mapped external_port 2>/dev/null) || ext_port=
  fi
  # Sample only once the mapping's port is known: before that there is no rule to look
  # for, and an "absent" then would only say the test had not read the mapped line yet.
  now=$EPOCHREALTIME
  if [ -n "$ext_port" ]; then
    if tl_has_rule tcp "$ext_port" 8000; then
      printf '%s present\n' "$now" >>"$samples"
    else
      printf '%s absent\n' "$now" >>"$samples"
    fi
  fi
  sleep 1
done
[ -n "$ext_port" ] || { tl_show "$out" "$err"; tl_fail "no \"mapped\" event within ${DURATION} s"; }

# SIGTERM to the PID we started: it must delete and exit 0 within 2 s.
tl_log "SIGTERM to portmap (pid $pm)"
kill -TERM "$pm"
t_term=$EPOCHREALTIME
for ((i = 0; i < 20; i++)); do
  kill -0 "$pm" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$pm" 2>/dev/null; then
  kill -KILL "$pm" 2>/dev/null
  wait "$pm" 2>/dev/null
  tl_show "$out" "$err"
  tl_fail "portmap keep still running 2 s after SIGTERM"
fi
wait "$pm"
rc=$?
t_exit=$EPOCHREALTIME
tl_log "portmap exited $rc, $(awk -v a="$t_term" -v b="$t_exit" 'BEGIN { printf "%.2f", b - a }') s after SIGTERM"
gone=0
tl_wait_rule absent tcp "$ext_port" 8000 2 && gone=1
# The stamper ends at EOF; bounded wait.
for ((i = 0; i < 20; i++)); do
  kill -0 "$stamper" 2>/dev/null || break
  sleep 0.1
done
tl_show "$out" "$err"
[ $rc -eq 0 ] || tl_fail "portmap keep exited $rc after SIGTERM, expected 0"
[ $gone = 1 ] || { tl_rules >&2; tl_fail "the DNAT rule for port $ext_port is still there 2 s after portmap exited"; }
tl_jsonl validate "$out" >&2 || tl_fail "portmap keep --json output is not valid JSON lines"

# Judge the timeline.
"$TL_PY" - "$out" "$samples" "$t0" "$LIFETIME" "$TL_JSONL" <<'EOF' || tl_fail "timeline checks failed (see above)"
import importlib.util, sys
out, samples, t0, lifetime, jsonl_path = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
spec = importlib.util.spec_from_file_location("jsonl", jsonl_path)
jsonl = importlib.util.module_from_spec(spec); spec.loader.exec_module(jsonl)
rows = [(t, o) for t, o, _ in jsonl.read(out) if o]
bad = []
events = [o.get("event") for _, o in rows]
print("events:", " ".join("%s@%.2f" % (o.get("event"), t - t0) for t, o in rows))
for ev in ("lost", "failed", "changed"):
    if ev in events:
        bad.append("unexpected %r event" % ev)
mapped = [t for t, o in rows if o.get("event") == "mapped"]
renewed = [t for t, o in rows if o.get("event") == "renewed"]
if len(mapped) != 1:
    bad.append("%d mapped events, expected exactly 1" % len(mapped))
if len(renewed) < 3:
    bad.append("%d renewed events in the run, expected >= 3" % len(renewed))
if "deleted" not in events:
    bad.append("no deleted event after SIGTERM")
# H5: each renewal at [1/2, 5/8] of the granted lifetime after the previous success,
# never less than 4 s apart. 0.1 s / 0.5 s of slack for measuring arrival times.
chain = sorted(mapped[:1] + renewed)
gaps = [b - a for a, b in zip(chain, chain[1:])]
print("gaps between successes (s):", " ".join("%.2f" % g for g in gaps))
lifetimes = sorted({o.get("lifetime") for _, o in rows if o.get("event") in ("mapped", "renewed")})
print("granted lifetimes:", lifetimes)
granted = max([l for l in lifetimes if isinstance(l, int)] or [lifetime])
for g in gaps:
    if g < 3.9:
        bad.append("renewals %.2f s apart: H5 says never less than 4 s" % g)
    if g > granted * 5 / 8 + 0.5:
        bad.append("renewal %.2f s after the previous success: H5 says by 5/8 of %d s" % (g, granted))
nonces = {o.get("nonce") for _, o in rows if o.get("event") in ("mapped", "renewed")}
if len(nonces) > 1:
    bad.append("the nonce changed between renewals: %s" % sorted(map(str, nonces)))
ports = {o.get("external_port") for _, o in rows if o.get("event") in ("mapped", "renewed")}
if len(ports) > 1:
    bad.append("the external port changed without a changed event: %s" % sorted(ports))
# The router must have had the rule in every sample taken after the mapping arrived.
n = absent = 0
if mapped:
    for line in open(samples):
        t, state = line.split()
        if float(t) > mapped[0]:
            n += 1
            if state != "present":
                absent += 1
                bad.append("rule absent on the router at +%.2f s" % (float(t) - t0))
print("router samples after mapping: %d, rule absent in %d" % (n, absent))
if mapped and n < 10:
    bad.append("only %d samples after the mapping" % n)
for b in bad:
    print("  " + b)
sys.exit(1 if bad else 0)
EOF
tl_pass
