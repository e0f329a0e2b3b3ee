#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Lab test: the router reboots under kept UPnP-IGD mappings (ROUTER-QUIRKS Q14). UPnP has
# no epoch: the mappings come back with the next renewal (a fresh AddPortMapping). With
# an 8 s lease the library renews every 4-5 s (at most 5/8 of the lease), so every
# mapping must be back on the router within one renewal interval of the reboot:
# 5/8 x 8 s + 1 s. The time each one took is printed. Then SIGTERM: exit 0 within 2 s,
# nothing of ours left in nft or in the router's UPnP table.
#   bash tests/lab/test_upnp_reboot.sh PATH/TO/portmap      (as root)
set -u -o pipefail
# shellcheck source-path=SCRIPTDIR source=testlib.sh
. "$(dirname "$0")/testlib.sh"
tl_enter_lab short "$@"
tl_require_portmap "$@"

LIFETIME=8
WINDOW=$(awk -v l="$LIFETIME" 'BEGIN { printf "%.1f", l * 5 / 8 + 1 }')
MAPS="tcp/8000 udp/8001"
tl_keep_start keep 8000/tcp 8001/udp --backend upnp --lifetime "$LIFETIME"
pm=$TL_KEEP_PID stamper=$TL_KEEP_STAMPER out=$TL_TMP/keep.out err=$TL_TMP/keep.err
tl_wait_count "$out" mapped 2 10 "$pm" || { tl_show "$out" "$err"; tl_fail "not both mapped within 10 s"; }
declare -A eport
for k in $MAPS; do
  eport[$k]=$(tl_eport "$out" "${k%/*}" "${k#*/}") || tl_fail "no external port for $k"
  tl_wait_rule present "${k%/*}" "${eport[$k]}" "${k#*/}" 2 || tl_fail "no rule for $k after mapped"
done
sleep 1
bash "$TL_LAB_SH" reboot || tl_fail "lab.sh reboot failed"
t_reboot=$EPOCHREALTIME
[ -z "$(tl_rules)" ] || tl_fail "rules survived the reboot (lab broken?)"
tl_log "rebooted; waiting at most $WINDOW s (one renewal interval) for the mappings"
declare -A back
nback=0
n=$(awk -v w="$WINDOW" 'BEGIN { printf "%d", w * 20 }')
for ((i = 0; i <= n; i++)); do
  for k in $MAPS; do
    [ -n "${back[$k]:-}" ] && continue
    if tl_has_rule "${k%/*}" "${eport[$k]}" "${k#*/}"; then
      back[$k]=$(tl_since "$t_reboot")
      nback=$((nback + 1))
    fi
  done
  [ $nback -eq 2 ] && break
  kill -0 "$pm" 2>/dev/null || break
  sleep 0.05
done
for k in $MAPS; do tl_log "$k back on the router ${back[$k]:-NOT} s after the reboot"; done
if [ $nback -ne 2 ]; then
  tl_show "$out" "$err"
  tl_fail "not every UPnP mapping re-added within one renewal interval ($WINDOW s) of the reboot"
fi
list=$(tl_upnp_list)
for k in $MAPS; do
  lease=$(tl_upnp_lease "${k%/*}" "${eport[$k]}" "${k#*/}" "$list")
  [ -n "$lease" ] || { echo "$list" >&2; tl_fail "$k is not in the router's UPnP table after recovery"; }
  tl_log "$k in the router's UPnP table again, lease left $lease s"
done

tl_log "SIGTERM to portmap (pid $pm)"
tl_stop "$pm" TERM 2 || { tl_show "$out" "$err"; tl_fail "portmap keep still running 2 s after SIGTERM"; }
tl_wait_stamper "$stamper"
tl_show "$out" "$err"
[ "$TL_STOP_RC" -eq 0 ] || tl_fail "portmap keep exited $TL_STOP_RC after SIGTERM, expected 0"
tl_wait_no_rules 2 || tl_fail "rules of ours are still there after exit"
[ -z "$(tl_upnp_list)" ] || { tl_upnp_list >&2; tl_fail "the router's UPnP table is not empty after exit"; }
tl_jsonl validate "$out" >&2 || tl_fail "invalid --json output"
grep -q '"failed"' "$out" && tl_fail "a \"failed\" event: the reboot should have been survived"
tl_log "recovery times (s): $(for k in $MAPS; do printf '%s=%s ' "$k" "${back[$k]}"; done)"
tl_pass
