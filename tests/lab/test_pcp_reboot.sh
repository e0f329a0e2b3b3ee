#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Lab test: the router reboots under kept PCP mappings (checklist K2, RFC 6887 §14.1).
# `lab.sh reboot` stops miniupnpd, forgets its leases, flushes its NAT/filter chains and
# starts it again; on start miniupnpd multicasts one PCP ANNOUNCE (epoch 0, to
# 224.0.0.1:5350). `portmap keep` with three mappings (tcp and udp) must notice the epoch
# going back and re-create every one of them after a random 0-5 s wait, i.e. within 6 s
# of the reboot and long before the next scheduled renewal (lifetime 120 s: renewal due
# after 60 s). The time each one took is printed. Then SIGTERM: exit 0 within 2 s, no
# rule of ours left.
#   bash tests/lab/test_pcp_reboot.sh PATH/TO/portmap      (as root)
set -u -o pipefail
# shellcheck source-path=SCRIPTDIR source=testlib.sh
. "$(dirname "$0")/testlib.sh"
tl_enter_lab short "$@"
tl_require_portmap "$@"

WINDOW=${REBOOT_WINDOW:-6}
MAPS="tcp/8000 udp/8000 tcp/8001"
tl_keep_start keep 8000/tcp 8000/udp 8001/tcp --lifetime 120
pm=$TL_KEEP_PID stamper=$TL_KEEP_STAMPER out=$TL_TMP/keep.out err=$TL_TMP/keep.err
tl_wait_count "$out" mapped 3 10 "$pm" || { tl_show "$out" "$err"; tl_fail "not all 3 mapped within 10 s"; }
declare -A eport
for k in $MAPS; do
  eport[$k]=$(tl_eport "$out" "${k%/*}" "${k#*/}") || tl_fail "no external port for $k"
  tl_wait_rule present "${k%/*}" "${eport[$k]}" "${k#*/}" 2 || tl_fail "no rule for $k after mapped"
done
# RFC 6887 §8.5 can only tell a reboot from clock skew once the client's clock has moved
# on by more than ~2 s since the last answer: let 5 s pass before the reboot.
tl_log "mapped ($(for k in $MAPS; do printf '%s->%s ' "$k" "${eport[$k]}"; done)); rebooting the router in 5 s"
sleep 5

bash "$TL_LAB_SH" reboot || tl_fail "lab.sh reboot failed"
t_reboot=$EPOCHREALTIME
[ -z "$(tl_rules)" ] || tl_fail "rules survived the reboot (lab broken?)"

# Each mapping back (any external port: the router may give another one).
declare -A back
nback=0
n=$(awk -v w="$WINDOW" 'BEGIN { printf "%d", w * 20 }')
for ((i = 0; i <= n; i++)); do
  rules=$(tl_rules)
  for k in $MAPS; do
    [ -n "${back[$k]:-}" ] && continue
    hex=$(tl__proto_hex "${k%/*}")
    if grep -F "@nh,72,8 $hex " <<<"$rules" | grep -qF "dnat ip to $LAB_CLIENT_IP:${k#*/}"; then
      back[$k]=$(tl_since "$t_reboot")
      nback=$((nback + 1))
    fi
  done
  [ $nback -eq 3 ] && break
  kill -0 "$pm" 2>/dev/null || break
  sleep 0.05
done
for k in $MAPS; do
  tl_log "$k back on the router ${back[$k]:-NOT} s after the reboot"
done
if [ $nback -ne 3 ]; then
  tl_show "$out" "$err"
  tl_rules >&2
  tl_fail "not every mapping re-created within $WINDOW s of the reboot (PCP ANNOUNCE epoch 0 ignored?)"
fi
sleep 0.5
kill -0 "$pm" 2>/dev/null || { tl_show "$out" "$err"; tl_fail "portmap keep exited by itself"; }

tl_log "SIGTERM to portmap (pid $pm)"
tl_stop "$pm" TERM 2 || { tl_show "$out" "$err"; tl_fail "portmap keep still running 2 s after SIGTERM"; }
tl_wait_stamper "$stamper"
tl_show "$out" "$err"
[ "$TL_STOP_RC" -eq 0 ] || tl_fail "portmap keep exited $TL_STOP_RC after SIGTERM, expected 0"
tl_wait_no_rules 2 || tl_fail "rules of ours are still there after exit"
tl_jsonl validate "$out" >&2 || tl_fail "invalid --json output"
grep -q '"failed"' "$out" && tl_fail "a \"failed\" event: the reboot should have been survived"
tl_log "recovery times (s): $(for k in $MAPS; do printf '%s=%s ' "$k" "${back[$k]}"; done)"
tl_pass
