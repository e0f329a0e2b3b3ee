#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Lab test: the concurrent probe picks the right backend on every kind of router.
# For each personality (its own lab, one after the other) `portmap-probe --json` and
# `portmap add 8000/tcp --json` run in the client namespace with the automatic backend
# and no --gateway (the client's default route points at the router):
#   full -> pcp, pcp -> pcp, upnp -> upnp, pcp-drop -> upnp, none -> nothing (exit 1),
#   lossy -> pcp or natpmp (upnp only if the probe lost every PCP and NAT-PMP packet;
#   the add, whose own probe the test cannot see, may also end up on upnp). With 30 %
#   loss the add gets --retransmit 250 --timeout 17000 (7 sends, all lost in 0.02 % of
#   the runs): with PCP's RFC timing (3 s, then 6 s) two lost requests already exceed
#   the default 5 s timeout, in 9 % of the runs.
# The mapping must be on the router (nft) afterwards. Wall times are printed, in a table
# at the end, but not asserted: speed goals belong to bench/lab_timing.sh.
#   bash tests/lab/test_probe_select.sh PATH/TO/portmap      (as root; portmap-probe is
#   $PORTMAP_PROBE, or taken from the same directory)
set -u -o pipefail
# shellcheck source-path=SCRIPTDIR source=testlib.sh
. "$(dirname "$0")/testlib.sh"
PERSONALITIES=${PROBE_PERSONALITIES:-full pcp upnp pcp-drop none lossy}

if [ "${LAB_INSIDE_RUN:-}" != 1 ]; then
  # Outer run: one lab per personality, a summary at the end.
  tl_require_portmap "$@"
  results=$(mktemp "${TMPDIR:-/tmp}/pm-probe-results.XXXXXX") || tl_fail "mktemp"
  trap 'rm -f -- "$results"' EXIT
  export PROBE_RESULTS=$results
  failed=
  for p in $PERSONALITIES; do
    bash "$TL_LAB_SH" run "$p" -- bash "$0" "$@"
    rc=$?
    [ $rc -eq 77 ] && exit 77
    [ $rc -eq 0 ] || failed="$failed $p"
  done
  {
    printf '\n%-11s %-10s %-9s %9s %10s   %-8s %7s\n' personality expected selected probe_ms elapsed_ms add_via add_ms
    cat "$results"
  } >&2
  [ -z "$failed" ] || tl_fail "wrong selection or mapping for:$failed"
  tl_pass
fi

tl_enter_lab "$LAB_PERSONALITY" "$@"
tl_require_portmap "$@"
PROBE=${PORTMAP_PROBE:-$(dirname "$PORTMAP")/portmap-probe}
[ -x "$PROBE" ] || tl_fail "no portmap-probe at $PROBE (set PORTMAP_PROBE)"

case $LAB_PERSONALITY in
  full | pcp) expect=pcp ;;
  upnp | pcp-drop) expect=upnp ;;
  none) expect=none ;;
  lossy) expect=pcp/natpmp ;;
  *) tl_fail "no expectation for personality $LAB_PERSONALITY" ;;
esac

# 1. portmap-probe ------------------------------------------------------------------
start=$EPOCHREALTIME
tl_client 20 "$PROBE" --json >"$TL_TMP/probe.json" 2>"$TL_TMP/probe.err"
prc=$?
probe_ms=$(tl_ms "$start")
tl_log "portmap-probe exited $prc after $probe_ms ms"
tl_show "$TL_TMP/probe.json" "$TL_TMP/probe.err"
read -r selected elapsed pcp_err natpmp_err < <("$TL_PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
err = lambda b: (d.get(b) or {}).get("error") or "-"
print(d.get("selected") or "none", d.get("elapsed_ms"), err("pcp").replace(" ", "_"), err("natpmp").replace(" ", "_"))
' "$TL_TMP/probe.json") || tl_fail "portmap-probe --json printed no valid JSON object"
tl_log "probe selected $selected (elapsed_ms $elapsed; pcp error $pcp_err, natpmp error $natpmp_err)"

ok_backend() { # ok_backend NAME: is NAME an acceptable selection here?
  case $expect in
    pcp/natpmp)
      case $1 in
        pcp | natpmp) return 0 ;;
        # 30 % loss: the probe may lose every PCP and NAT-PMP packet in its budget
        upnp) [ "$pcp_err" = no_answer_in_time ] && [ "$natpmp_err" = no_answer_in_time ] &&
          tl_log "lossy: every PCP and NAT-PMP probe packet was lost; upnp is right then" ;;
        *) return 1 ;;
      esac
      ;;
    *) [ "$1" = "$expect" ] ;;
  esac
}
bad=
if [ "$expect" = none ]; then
  [ $prc -eq 1 ] || bad="portmap-probe exited $prc with nothing answering, expected 1"
  [ "$selected" = none ] || bad="portmap-probe selected $selected with nothing answering"
else
  [ $prc -eq 0 ] || bad="portmap-probe exited $prc, expected 0"
  ok_backend "$selected" || bad="portmap-probe selected $selected, expected $expect"
fi

# 2. portmap add (auto backend, no --gateway) ---------------------------------------
add_args=()
[ "$LAB_PERSONALITY" = lossy ] && add_args=(--retransmit 250 --timeout 17000)
start=$EPOCHREALTIME
tl_client 20 "$PORTMAP" add 8000/tcp --lifetime 120 --json "${add_args[@]}" >"$TL_TMP/add.out" 2>"$TL_TMP/add.err"
arc=$?
add_ms=$(tl_ms "$start")
tl_log "portmap add exited $arc after $add_ms ms"
tl_show "$TL_TMP/add.out" "$TL_TMP/add.err"
via=$(tl_jsonl get "$TL_TMP/add.out" mapped backend 2>/dev/null) || via=none
if [ "$expect" = none ]; then
  [ $arc -eq 1 ] || bad="${bad:+$bad; }portmap add exited $arc with nothing answering, expected 1"
  [ "$via" = none ] || bad="${bad:+$bad; }a mapped event with nothing answering"
  [ -z "$(tl_rules)" ] || bad="${bad:+$bad; }rules on a router with no miniupnpd?"
else
  if [ $arc -ne 0 ]; then
    bad="${bad:+$bad; }portmap add exited $arc, expected 0"
  elif ! ok_backend "$via" && ! { [ "$expect" = pcp/natpmp ] && [ "$via" = upnp ]; }; then
    bad="${bad:+$bad; }portmap add mapped via $via, expected $expect"
  else
    eport=$(tl_jsonl get "$TL_TMP/add.out" mapped external_port)
    if tl_wait_rule present tcp "$eport" 8000 2; then
      tl_log "router rule: $(tl_rules | grep -F "dport $eport dnat")"
    else
      bad="${bad:+$bad; }no DNAT rule for $eport on the router after add"
    fi
  fi
fi
printf '%-11s %-10s %-9s %9s %10s   %-8s %7s\n' "$LAB_PERSONALITY" "$expect" "$selected" "$probe_ms" \
  "$elapsed" "$via" "$add_ms" >>"${PROBE_RESULTS:-/dev/null}"
[ -z "$bad" ] || tl_fail "$bad"
tl_pass
