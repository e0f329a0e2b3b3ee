#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Lab test: the router's external (WAN) address changes under kept mappings. `lab.sh
# wan-address` moves the WAN veth to a new address and signals miniupnpd, which resets
# its epoch to 0 and multicasts NAT-PMP address notices and PCP ANNOUNCEs to
# 224.0.0.1:5350 (up to 3 pairs; the first may still carry the old address). Two `portmap
# keep` processes, one PCP (--backend pcp) and one NAT-PMP (--backend natpmp), must each
# report a "changed" event with the new external address; the time each took is
# printed. The mappings must still be on the router afterwards, and SIGTERM removes them.
#   bash tests/lab/test_wan_change.sh PATH/TO/portmap      (as root)
set -u -o pipefail
# shellcheck source-path=SCRIPTDIR source=testlib.sh
. "$(dirname "$0")/testlib.sh"
tl_enter_lab full "$@"
tl_require_portmap "$@"

NEW_WAN=45.45.45.45
WINDOW=${WAN_WINDOW:-10}
tl_keep_start pcp 8000/tcp --backend pcp --lifetime 300
pcp_pid=$TL_KEEP_PID pcp_st=$TL_KEEP_STAMPER
tl_keep_start natpmp 8001/udp --backend natpmp --lifetime 300
np_pid=$TL_KEEP_PID np_st=$TL_KEEP_STAMPER
for n in pcp natpmp; do
  tl_wait_count "$TL_TMP/$n.out" mapped 1 10 || { tl_show "$TL_TMP/$n.out" "$TL_TMP/$n.err"; tl_fail "$n: no mapped event within 10 s"; }
  a=$(tl_jsonl get "$TL_TMP/$n.out" mapped external_address)
  [ "$a" = "$LAB_WAN_IP" ] || tl_fail "$n: mapped to $a, the WAN address is $LAB_WAN_IP"
done
pcp_eport=$(tl_eport "$TL_TMP/pcp.out" tcp 8000) np_eport=$(tl_eport "$TL_TMP/natpmp.out" udp 8001)
tl_wait_rule present tcp "$pcp_eport" 8000 2 || tl_fail "no rule for the PCP mapping"
tl_wait_rule present udp "$np_eport" 8001 2 || tl_fail "no rule for the NAT-PMP mapping"
# An epoch going back is only visible once the client's clock has moved on by > ~2 s.
tl_log "both mapped to $LAB_WAN_IP; changing the WAN address to $NEW_WAN in 5 s"
sleep 5
old_wan=$LAB_WAN_IP
# Times count from the start of the change (miniupnpd may notice through netlink while
# lab.sh is still busy).
t_change=$EPOCHREALTIME
bash "$TL_LAB_SH" wan-address "$NEW_WAN" || tl_fail "lab.sh wan-address failed"
tl_log "lab.sh wan-address took $(tl_since "$t_change") s"

declare -A took
ntook=0
n=$((WINDOW * 20))
for ((i = 0; i <= n; i++)); do
  for b in pcp natpmp; do
    [ -n "${took[$b]:-}" ] && continue
    if tl_jsonl find "$TL_TMP/$b.out" changed external_address external_address="$NEW_WAN" >/dev/null 2>&1; then
      took[$b]=$(tl_since "$t_change")
      ntook=$((ntook + 1))
    fi
  done
  [ $ntook -eq 2 ] && break
  sleep 0.05
done
for b in pcp natpmp; do tl_log "$b: changed event with $NEW_WAN ${took[$b]:-NOT} s after the change"; done
# stamped arrival times of the events, relative to the change
for b in pcp natpmp; do
  tl_log "$b events after the change: $(tl_jsonl times "$TL_TMP/$b.out" mapped renewed changed lost failed |
    awk -v t="$t_change" '$1 > t { printf "%s@+%.2f ", $2, $1 - t }')"
done
[ $ntook -eq 2 ] || { tl_show "$TL_TMP/pcp.out" "$TL_TMP/pcp.err" "$TL_TMP/natpmp.out" "$TL_TMP/natpmp.err"; tl_fail "no changed event with the new address within $WINDOW s for every backend"; }
# The last word of each must be the new address (the first notice may carry the old one).
for b in pcp natpmp; do
  last=$(tl_jsonl times "$TL_TMP/$b.out" mapped renewed changed | tail -n 1 | awk '{ print $2 }')
  addr=$(tl_jsonl last "$TL_TMP/$b.out" "$last" external_address)
  [ "$addr" = "$NEW_WAN" ] || tl_fail "$b: the last $last event says $addr, the WAN address is $NEW_WAN"
done
tl_has_rule tcp "$pcp_eport" 8000 || tl_fail "the PCP mapping's rule is gone after the change"
tl_has_rule udp "$np_eport" 8001 || tl_fail "the NAT-PMP mapping's rule is gone after the change"
for pid in "$pcp_pid" "$np_pid"; do
  tl_stop "$pid" TERM 2 || tl_fail "portmap keep (pid $pid) still running 2 s after SIGTERM"
  [ "$TL_STOP_RC" -eq 0 ] || tl_fail "portmap keep (pid $pid) exited $TL_STOP_RC after SIGTERM"
done
tl_wait_stamper "$pcp_st"
tl_wait_stamper "$np_st"
tl_show "$TL_TMP/pcp.out" "$TL_TMP/pcp.err" "$TL_TMP/natpmp.out" "$TL_TMP/natpmp.err"
for b in pcp natpmp; do tl_jsonl validate "$TL_TMP/$b.out" >&2 || tl_fail "$b: invalid --json output"; done
grep -q '"failed"' "$TL_TMP/pcp.out" "$TL_TMP/natpmp.out" && tl_fail "a failed event"
tl_wait_no_rules 2 || tl_fail "rules of ours are left after exit"
tl_log "WAN $old_wan -> $NEW_WAN: changed after pcp ${took[pcp]} s, natpmp ${took[natpmp]} s"
tl_pass
