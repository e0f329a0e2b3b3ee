#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench/lab_timing.sh: wall-time figures for `portmap add` and `portmap-probe` against a
# real miniupnpd (tests/lab/lab.sh, network namespaces), with the stock clients upnpc and
# natpmpc for comparison, and the one-packet reference client bench/oneshot_map (one PCP
# MAP datagram, one answer: the floor for a PCP mapping). Run as root; see bench/README.md.
# Not a test: it always exits 0 once the figures are printed (2 on usage errors, 77 when
# the lab cannot run here).
#
#   sudo bash bench/lab_timing.sh [-n N] [-s N_STOCK] [-p "PERSONALITIES"] [--bin DIR]
#     -n N        repetitions of portmap add / portmap-probe / natpmpc / upnpc -u /
#                 oneshot_map (10)
#     -s N        repetitions of upnpc with SSDP discovery (about 2.2 s each; 3)
#     -p LIST     personalities (default "upnp pcp pcp-drop none full")
#     --bin DIR   where portmap and portmap-probe are (default build/tools, build-lab/tools)
#     --ref PATH  the reference client (default: oneshot_map in build*/bench next to --bin;
#                 the row is left out when there is none)
#     --vs-bin DIR  a second build's portmap, run in the same rounds ("portmap add (vs)"):
#                 before/after figures from one run
#     --no-icmp-rows  skip the extra rows with the gateway's ICMP rate limit lifted
#
# Each command runs in the client namespace with the automatic backend and no --gateway,
# as an application would; every `portmap add` maps a new port (8000 + i, lifetime 120),
# and the router's chains are flushed (untimed) before each mapping command. One round
# is portmap-probe, then the mapping commands in a new random order; the timing loop runs
# inside the client namespace (no run pays for entering it). Besides each command's
# min/median/max, the PCP rows print paired figures: per round, portmap add over
# natpmpc -a and over the reference, their medians, and in how many rounds portmap add
# was the faster.
# Linux rate-limits ICMP errors (net.ipv4.icmp_ratelimit, 1 s, small burst), so back-to-
# back runs against a closed port 5351 soon get no "port unreachable" and must wait out the
# probe budget. The upnp and none personalities are therefore measured twice: as is, and
# ("...-icmp") with icmp_ratelimit=0 in the gateway namespace (every run then sees the
# ICMP error, as the first run against a real router does). natpmpc and upnpc are stopped
# after 3 s (upnpc with discovery: 4 s) when nothing answers; oneshot_map waits 1 s.
set -u -o pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
LAB_SH=$ROOT/tests/lab/lab.sh
N=10 NS=3 PERS="upnp pcp pcp-drop none full" BIN='' REF='' VS_BIN='' ICMP_ROWS=1 INNER=0 ROW=
# The stock clients wait long when nothing answers (natpmpc: 9 tries, about 2 minutes;
# upnpc: 8 s of discovery): they are stopped after this many seconds (upnpc with
# discovery: one more), and such runs count as failed at that time.
STOCK_LIMIT=3

while [ $# -gt 0 ]; do
  case $1 in
    -n) N=${2:?}; shift 2 ;;
    -s) NS=${2:?}; shift 2 ;;
    -p) PERS=${2:?}; shift 2 ;;
    --bin) BIN=${2:?}; shift 2 ;;
    --ref) REF=${2:?}; shift 2 ;;
    --vs-bin) VS_BIN=${2:?}; shift 2 ;;
    --no-icmp-rows) ICMP_ROWS=0; shift ;;
    --inner) INNER=1 ROW=${2:?}; shift 2 ;;
    -h | --help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "lab_timing.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
if ! [[ $N =~ ^[1-9][0-9]*$ ]] || ! [[ $NS =~ ^[0-9]+$ ]]; then
  echo "lab_timing.sh: -n and -s take numbers" >&2
  exit 2
fi
if [ -z "$BIN" ]; then
  for d in "$ROOT/build/tools" "$ROOT/build-lab/tools"; do
    [ -x "$d/portmap" ] && [ -x "$d/portmap-probe" ] && { BIN=$d; break; }
  done
fi
if [ -z "$BIN" ] || [ ! -x "$BIN/portmap" ] || [ ! -x "$BIN/portmap-probe" ]; then
  echo "lab_timing.sh: no portmap/portmap-probe found; build first or pass --bin DIR" >&2
  exit 2
fi
if [ -z "$REF" ]; then
  for d in "$BIN/../bench" "$ROOT/build/bench" "$ROOT/build-lab/bench" "$ROOT/build-bench/bench"; do
    [ -x "$d/oneshot_map" ] && { REF=$(cd "$d" && pwd)/oneshot_map; break; }
  done
elif [ ! -x "$REF" ]; then
  echo "lab_timing.sh: --ref $REF is not an executable" >&2
  exit 2
fi
if [ -n "$VS_BIN" ] && [ ! -x "$VS_BIN/portmap" ]; then
  echo "lab_timing.sh: --vs-bin $VS_BIN has no portmap" >&2
  exit 2
fi
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3

# ------------------------------------------------------------------ inside one lab
if [ $INNER = 1 ]; then
  out=${BENCH_RESULTS:?}
  if [ -z "${BENCH_IN_CLIENT_NS:-}" ]; then
    # The loop itself runs in the client namespace, so no run pays for (or varies with)
    # entering it; the router's side is reached with ip netns exec, untimed.
    BENCH_IN_CLIENT_NS=1 exec ip netns exec "$LAB_CLIENT_NS" bash "$0" --inner "$ROW" -n "$N" \
      -s "$NS" --bin "$BIN" ${REF:+--ref "$REF"} ${VS_BIN:+--vs-bin "$VS_BIN"}
  fi
  if [ "$ROW" != "$LAB_PERSONALITY" ]; then
    # the -icmp rows: no ICMP rate limit in the gateway namespace
    ip netns exec "$LAB_GW_NS" sysctl -qw net.ipv4.icmp_ratelimit=0 || exit 1
  fi
  # measure ROUND TOOL LIMIT CMD...: one line "ROW TOOL RC MS ROUND" per run (RC 124:
  # killed at LIMIT s)
  measure() {
    local round=$1 tool=$2 limit=$3 s rc
    shift 3
    s=$EPOCHREALTIME
    timeout --kill-after=1 "$limit" "$@" >"$LAB_STATE/bench.out" 2>"$LAB_STATE/bench.err"
    rc=$?
    printf '%s %s %s %s %s\n' "$ROW" "$tool" "$rc" \
      "$(awk -v a="$s" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", (b - a) * 1000 }')" \
      "$round" >>"$out"
  }
  # Between runs (untimed) the router's chains are flushed, so every run meets the same
  # empty table: miniupnpd's nft backend gets slower as its chains grow.
  flush() {
    local c
    for c in miniupnpd prerouting_miniupnpd postrouting_miniupnpd; do
      ip netns exec "$LAB_GW_NS" nft flush chain inet filter "$c"
    done
  }
  # the mapping commands of one round, each after a flush, in a new random order each
  # round (the paired ratios compare commands of the same round)
  run_one() {
    local i=$1 what=$2
    flush
    case $what in
      add | add-vs)
        local bin=$BIN tool=portmap-add port=$((8000 + i))
        [ "$what" = add-vs ] && bin=$VS_BIN tool=portmap-add-vs port=$((13000 + i))
        measure "$i" "$tool" 30 "$bin/portmap" add "$port/tcp" --lifetime 120 --json
        via=$("$PY" -c 'import json,sys
for l in open(sys.argv[1]):
    try: o = json.loads(l)
    except ValueError: continue
    if o.get("event") == "mapped": print(o.get("backend")); break' "$LAB_STATE/bench.out" 2>/dev/null)
        printf '%s %s-%s 0 0 %s\n' "$ROW" "${tool/portmap-add/via}" "${via:-none}" "$i" >>"$out"
        ;;
      natpmpc)
        measure "$i" natpmpc "$STOCK_LIMIT" natpmpc -g "$LAB_GW_LAN_IP" -a "$((9000 + i))" \
          "$((9000 + i))" tcp 120
        ;;
      oneshot)
        # one PCP MAP datagram to the router, its answer awaited 1 s: the floor for PCP
        measure "$i" oneshot "$STOCK_LIMIT" "$REF" "$LAB_GW_LAN_IP" "$((12000 + i))" 120
        ;;
      upnpc-u)
        measure "$i" "upnpc-u" "$STOCK_LIMIT" upnpc -u \
          "http://$LAB_GW_LAN_IP:$LAB_HTTP_PORT/rootDesc.xml" \
          -a "$LAB_CLIENT_IP" "$((10000 + i))" "$((10000 + i))" TCP 120
        ;;
    esac
  }
  cmds="add natpmpc upnpc-u"
  [ -n "$REF" ] && cmds="$cmds oneshot"
  [ -n "$VS_BIN" ] && cmds="$cmds add-vs"
  for ((i = 0; i < N; i++)); do
    measure "$i" portmap-probe 30 "$BIN/portmap-probe" --json
    elapsed=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1])).get("elapsed_ms"))' "$LAB_STATE/bench.out" 2>/dev/null)
    printf '%s probe-elapsed 0 %s %s\n' "$ROW" "${elapsed:-nan}" "$i" >>"$out"
    # shuffle (Fisher-Yates over $RANDOM)
    read -r -a order <<<"$cmds"
    for ((j = ${#order[@]} - 1; j > 0; j--)); do
      k=$((RANDOM % (j + 1)))
      t=${order[j]} order[j]=${order[k]} order[k]=$t
    done
    for what in "${order[@]}"; do run_one "$i" "$what"; done
  done
  for ((i = 0; i < NS; i++)); do
    flush
    measure "$i" "upnpc" "$((STOCK_LIMIT + 1))" upnpc -a "$LAB_CLIENT_IP" "$((11000 + i))" \
      "$((11000 + i))" TCP 120
  done
  exit 0
fi

# ------------------------------------------------------------------ outer: one lab per row
[ "$(id -u)" -eq 0 ] || { echo "lab_timing.sh: run as root (the lab needs network namespaces)" >&2; exit 77; }
[ -n "$REF" ] || echo "lab_timing: no oneshot_map built (-DPORTMAP_BUILD_BENCH=ON): no reference row" >&2
results=$(mktemp "${TMPDIR:-/tmp}/pm-bench.XXXXXX") || exit 2
trap 'rm -f -- "$results"' EXIT
export BENCH_RESULTS=$results
budget=$("$BIN/portmap-probe" --help | sed -n "s/.*library's, \([0-9][0-9]*\).*/\1/p" | head -n 1)
rows=
for p in $PERS; do
  rows="$rows $p"
  if [ $ICMP_ROWS = 1 ] && { [ "$p" = upnp ] || [ "$p" = none ]; }; then rows="$rows $p-icmp"; fi
done
t_start=$EPOCHREALTIME
for r in $rows; do
  p=${r%-icmp}
  echo "lab_timing: $r ($N runs, $NS with SSDP discovery)..." >&2
  LAB_RUN_TIMEOUT=1200 bash "$LAB_SH" run "$p" -- bash "$0" --inner "$r" -n "$N" -s "$NS" --bin "$BIN" \
    ${REF:+--ref "$REF"} ${VS_BIN:+--vs-bin "$VS_BIN"} >/dev/null 2>"$results.log"
  rc=$?
  if [ $rc -eq 77 ]; then
    grep SKIPPED "$results.log" >&2
    rm -f -- "$results.log"
    exit 77
  fi
  [ $rc -eq 0 ] || { echo "lab_timing: $r: the lab run failed ($rc):" >&2; tail -n 20 "$results.log" >&2; }
done
rm -f -- "$results.log"
total=$(awk -v a="$t_start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')

"$PY" - "$results" "${budget:-500}" "$rows" "$N" "$NS" "$total" "$BIN" <<'PYEOF'
import statistics, sys, collections, random
path, budget, rows, n, ns, total, binpath = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7]
data = collections.defaultdict(list)   # (row, tool) -> [(rc, ms, round)]
via = collections.defaultdict(collections.Counter)
for line in open(path):
    row, tool, rc, ms, rnd = line.split()
    if tool.startswith("via-"):   # via-BACKEND, or via-vs-BACKEND for --vs-bin
        vs = tool.startswith("via-vs-")
        via[(row, vs)][tool[len("via-vs-" if vs else "via-"):]] += 1
        continue
    data[(row, tool)].append((int(rc), float(ms), int(rnd)))
tools = [("portmap-add", "portmap add (auto)"), ("portmap-add-vs", "portmap add (--vs-bin)"),
         ("portmap-probe", "portmap-probe"),
         ("probe-elapsed", "  probe elapsed_ms"), ("natpmpc", "natpmpc -a"),
         ("oneshot", "one MAP datagram (reference)"),
         ("upnpc-u", "upnpc -u URL -a"), ("upnpc", "upnpc -a (SSDP)")]

def paired(row, a, b):
    """per-round a/b of the rounds where both succeeded: (n, median ratio, a faster, median
    difference ms, its 95% bootstrap interval)"""
    ra = {r: m for rc, m, r in data.get((row, a), []) if rc == 0}
    rb = {r: m for rc, m, r in data.get((row, b), []) if rc == 0}
    both = sorted(set(ra) & set(rb))
    if not both:
        return None
    ratios = [ra[r] / rb[r] for r in both]
    diffs = [ra[r] - rb[r] for r in both]
    rng = random.Random(1)   # the same resamples every run: the interval is reproducible
    meds = sorted(statistics.median(rng.choice(diffs) for _ in diffs) for _ in range(2000))
    return (len(both), statistics.median(ratios), sum(1 for d in diffs if d < 0),
            statistics.median(diffs), meds[49], meds[1949])
print()
print("libportmap lab timing: miniupnpd in network namespaces; %s runs each (%s for upnpc with "
      "discovery); probe budget %d ms; %s s in all" % (n, ns, budget, total))
print("binaries: %s; load average at the end: %s" % (binpath, open("/proc/loadavg").read().split()[:3]))
print("natpmpc / upnpc are stopped after 3 s / 4 s (with discovery) when nothing answers")
print()
hdr = "%-11s %-29s %7s %9s %9s %9s  %s" % ("gateway", "command", "ok/runs", "min ms", "median", "max ms", "notes")
print(hdr)
print("-" * len(hdr))
goals = []
for row in rows:
    for tool, label in tools:
        runs = data.get((row, tool))
        if not runs:
            continue
        ms = [m for _, m, _ in runs]
        ok = sum(1 for rc, _, _ in runs if rc == 0)
        note = ""
        if tool in ("portmap-add", "portmap-add-vs"):
            note = "via " + ", ".join("%s x%d" % kv for kv in sorted(via[(row, tool != "portmap-add")].items()))
        if tool == "portmap-probe":
            note = "ends within budget+100 ms: %s" % ("yes" if max(ms) <= budget + 100 else "NO (max %.0f)" % max(ms))
        okcol = "%3d/%-3d" % (ok, len(runs)) if tool != "probe-elapsed" else "      -"
        print("%-11s %-29s %s %9.1f %9.1f %9.1f  %s" % (row, label, okcol, min(ms),
              statistics.median(ms), max(ms), note))
        if row.startswith("upnp") and tool == "portmap-add":
            goals.append("UPnP-only gateway (%s): portmap add median %.0f ms, max %.0f ms -> goal "
                         "'well under 100 ms': %s" % (row, statistics.median(ms), max(ms),
                                                      "met" if max(ms) < 100 else "NOT met"))
        if row.startswith("none") and tool == "portmap-probe":
            goals.append("nothing answering (%s): portmap-probe max %.0f ms, budget %d + 100 ms -> %s"
                         % (row, max(ms), budget, "met" if max(ms) <= budget + 100 else "NOT met"))
    # what the library costs over the floor and over natpmpc, round by round: only where
    # both made mappings (the PCP rows)
    for a, b, label in (("portmap-add", "natpmpc", "natpmpc -a"),
                        ("portmap-add", "oneshot", "the reference"),
                        ("portmap-add", "portmap-add-vs", "the --vs-bin build")):
        p = paired(row, a, b)
        if p is None:
            continue
        n_, ratio, faster, diff, lo, hi = p
        goals.append("%s: portmap add / %s, paired by round: median ratio %.3f, median "
                     "difference %+.2f ms (95%% interval %+.2f to %+.2f), faster in %d of %d rounds"
                     % (row, label, ratio, diff, lo, hi, faster, n_))
    print()
for g in goals:
    print(g)
PYEOF
exit 0
