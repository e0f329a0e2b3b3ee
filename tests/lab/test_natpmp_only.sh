#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Lab test: a NAT-PMP-only router (personality natpmp: the project's fake NAT-PMP server,
# tests/lab/natpmp_router.c, instead of miniupnpd, which always answers PCP). It answers
# PCP with the 8-octet NAT-PMP UNSUPP_VERSION reply (RFC 6887 §9) and has no UPnP. What
# the router did is read from its state file ($LAB_NATPMP_STATE, one live mapping per
# line: "proto internal_port external_port lifetime"), not from portmap's output.
#   a. `portmap-probe --json` (auto, no --gateway): exit 0, selected natpmp, pcp not
#      available with PORTMAP_ERR_NATPMP_GATEWAY's text, natpmp available with the WAN
#      address as external address.
#   b. `portmap add 8000/tcp --json`: exit 0, backend natpmp, the WAN address, the mapping
#      in the router's table; then `portmap delete` removes it.
#   c. `portmap keep 8000/tcp --lifetime 4 --json` for 10 s: renewals (>= 3, each in time),
#      the mapping in every 0.25 s sample of the table; SIGTERM: exit 0 within 2 s, a
#      "deleted" event, the mapping gone from the table.
#   bash tests/lab/test_natpmp_only.sh PATH/TO/portmap      (as root; needs
#   NATPMP_ROUTER=PATH/TO/natpmp_router, else SKIPPED; portmap-probe is $PORTMAP_PROBE or
#   taken from the same directory as portmap)
set -u -o pipefail
# shellcheck source-path=SCRIPTDIR source=testlib.sh
. "$(dirname "$0")/testlib.sh"
tl_enter_lab natpmp "$@"
tl_require_portmap "$@"
PROBE=${PORTMAP_PROBE:-$(dirname "$PORTMAP")/portmap-probe}
[ -x "$PROBE" ] || tl_fail "no portmap-probe at $PROBE (set PORTMAP_PROBE)"
[ -n "${LAB_NATPMP_STATE:-}" ] || tl_fail "LAB_NATPMP_STATE not set (personality natpmp?)"
NATPMP_GATEWAY_TEXT="the gateway speaks NAT-PMP, not PCP" # portmap_strerror(PORTMAP_ERR_NATPMP_GATEWAY)

# np_mapping PROTO INT: the router's line for that mapping ("proto int ext lifetime").
np_mapping() { awk -v p="$1" -v i="$2" '$1 == p && $2 == i { print; exit }' "$LAB_NATPMP_STATE" 2>/dev/null; }
# np_wait present|absent PROTO INT SECONDS: poll the table every 0.05 s, bounded.
np_wait() {
  local want=$1 i n
  n=$(awk -v s="$4" 'BEGIN { printf "%d", s * 20 }')
  for ((i = 0; i <= n; i++)); do
    if [ -n "$(np_mapping "$2" "$3")" ]; then
      [ "$want" = present ] && return 0
    else
      [ "$want" = absent ] && return 0
    fi
    sleep 0.05
  done
  return 1
}

# a. portmap-probe --------------------------------------------------------------------
start=$EPOCHREALTIME
tl_client 20 "$PROBE" --json >"$TL_TMP/probe.json" 2>"$TL_TMP/probe.err"
prc=$?
probe_ms=$(tl_ms "$start")
tl_log "portmap-probe exited $prc after $probe_ms ms"
tl_show "$TL_TMP/probe.json" "$TL_TMP/probe.err"
[ $prc -eq 0 ] || tl_fail "portmap-probe exited $prc, expected 0"
"$TL_PY" - "$TL_TMP/probe.json" "$LAB_WAN_IP" "$NATPMP_GATEWAY_TEXT" <<'EOF' || tl_fail "portmap-probe's answer is wrong (see above)"
import json, sys
d = json.load(open(sys.argv[1]))
wan, text = sys.argv[2], sys.argv[3]
pcp, nat = d.get("pcp") or {}, d.get("natpmp") or {}
bad = []
if d.get("selected") != "natpmp":
    bad.append("selected %r, expected natpmp" % d.get("selected"))
if pcp.get("available") is not False:
    bad.append("pcp.available %r, expected false" % pcp.get("available"))
if pcp.get("error") != text:
    bad.append("pcp.error %r, expected %r" % (pcp.get("error"), text))
if nat.get("available") is not True:
    bad.append("natpmp.available %r, expected true" % nat.get("available"))
if nat.get("external_address") not in (wan, "::ffff:" + wan):
    bad.append("natpmp.external_address %r, expected %s" % (nat.get("external_address"), wan))
for b in bad:
    print("probe: " + b, file=sys.stderr)
print("probe: selected %s, pcp error %r, natpmp external %s, elapsed_ms %s"
      % (d.get("selected"), pcp.get("error"), nat.get("external_address"), d.get("elapsed_ms")),
      file=sys.stderr)
sys.exit(1 if bad else 0)
EOF

# b. portmap add / delete ---------------------------------------------------------------
tl_add add 8000/tcp
add_ms=$TL_MS
[ "$TL_RC" -eq 0 ] || tl_fail "portmap add exited $TL_RC, expected 0"
tl_jsonl validate "$TL_TMP/add.out" >&2 || tl_fail "portmap add --json output is not valid JSON lines"
j_backend='' j_external_address='' j_external_port='' j_lifetime=''
fields=$(tl_jsonl fields "$TL_TMP/add.out" mapped backend external_address external_port lifetime) ||
  tl_fail "no \"mapped\" event in the add output"
eval "$fields"
[ "$j_backend" = natpmp ] || tl_fail "add: backend '$j_backend', expected natpmp"
[ "$j_external_address" = "$LAB_WAN_IP" ] || [ "$j_external_address" = "::ffff:$LAB_WAN_IP" ] ||
  tl_fail "add: external_address '$j_external_address', the router's WAN address is $LAB_WAN_IP"
np_wait present tcp 8000 2 || { cat "$LAB_NATPMP_STATE" >&2; tl_fail "add: the router's table has no tcp 8000"; }
line=$(np_mapping tcp 8000)
tl_log "router table: $line"
read -r _ _ r_ext r_life <<<"$line"
[ "$r_ext" = "$j_external_port" ] || tl_fail "add: router maps external port $r_ext, portmap printed $j_external_port"
[ "$r_life" = "$j_lifetime" ] || tl_fail "add: router granted $r_life s, portmap printed $j_lifetime"
start=$EPOCHREALTIME
tl_client 20 "$PORTMAP" delete 8000/tcp >"$TL_TMP/del.out" 2>"$TL_TMP/del.err"
drc=$?
del_ms=$(tl_ms "$start")
tl_log "portmap delete exited $drc after $del_ms ms"
tl_show "$TL_TMP/del.out" "$TL_TMP/del.err"
[ $drc -eq 0 ] || tl_fail "portmap delete exited $drc, expected 0"
np_wait absent tcp 8000 2 || { cat "$LAB_NATPMP_STATE" >&2; tl_fail "delete: tcp 8000 still in the router's table"; }

# c. portmap keep, SIGTERM ---------------------------------------------------------------
LIFETIME=4 DURATION=${KEEP_SECONDS:-10}
samples=$TL_TMP/samples
: >"$samples"
tl_keep_start keep 8000/tcp --lifetime "$LIFETIME"
pm=$TL_KEEP_PID stamper=$TL_KEEP_STAMPER out=$TL_TMP/keep.out
t0=$EPOCHREALTIME
tl_wait_count "$out" mapped 1 5 "$pm" || { tl_show "$out" "$TL_TMP/keep.err"; tl_fail "keep: no mapped event within 5 s"; }
mapped_s=$(tl_since "$t0")
tl_log "keep: mapped after $mapped_s s"
end=$(awk -v a="$t0" -v d="$DURATION" 'BEGIN { printf "%.3f", a + d }')
while awk -v e="$end" -v n="$EPOCHREALTIME" 'BEGIN { exit !(n < e) }'; do
  kill -0 "$pm" 2>/dev/null || { tl_show "$out" "$TL_TMP/keep.err"; tl_fail "portmap keep exited by itself"; }
  state=absent
  [ -n "$(np_mapping tcp 8000)" ] && state=present
  printf '%s tcp/8000 %s -\n' "$EPOCHREALTIME" "$state" >>"$samples"
  sleep 0.25
done
t_term=$EPOCHREALTIME
tl_log "SIGTERM to portmap (pid $pm)"
tl_stop "$pm" TERM 2 || { tl_show "$out" "$TL_TMP/keep.err"; tl_fail "portmap keep still running 2 s after SIGTERM"; }
tl_log "portmap exited $TL_STOP_RC, $TL_STOP_SECS s after SIGTERM"
tl_wait_stamper "$stamper"
t_gone=$EPOCHREALTIME
gone=0
np_wait absent tcp 8000 2 && gone=1
gone_s=$(tl_since "$t_gone")
tl_show "$out" "$TL_TMP/keep.err"
[ "$TL_STOP_RC" -eq 0 ] || tl_fail "portmap keep exited $TL_STOP_RC after SIGTERM, expected 0"
[ $gone = 1 ] || { cat "$LAB_NATPMP_STATE" >&2; tl_fail "tcp 8000 still in the router's table 2 s after exit"; }
grep -q '"event":"deleted"' "$out" || tl_fail "keep: no deleted event after SIGTERM"
tl_jsonl validate "$out" >&2 || tl_fail "keep: invalid --json output"
renewed=$(grep -c '"event":"renewed"' "$out")
nsamples=$(wc -l <"$samples")
absent=$(grep -c ' absent ' "$samples")
tl_keepcheck --out "$out" --samples "$samples" --key tcp/8000 --min-renewed 3 \
  --lifetime "$LIFETIME" --until "$t_term" --backend natpmp >&2 || tl_fail "keep: timeline checks failed (see above)"
tl_log "times: probe ${probe_ms} ms, add ${add_ms} ms, delete ${del_ms} ms, keep mapped after ${mapped_s} s," \
  "$renewed renewed in ${DURATION} s, $nsamples samples ($absent absent), exit ${TL_STOP_SECS} s after SIGTERM," \
  "gone from the table ${gone_s} s after exit"
tl_pass
