#!/usr/bin/env bash
# Lab test: the router reboots under a kept mapping (checklist K2, RFC 6887 §14.1).
# `lab.sh reboot` stops miniupnpd, forgets its leases, flushes its NAT/filter chains and
# starts it again; on start miniupnpd multicasts one PCP ANNOUNCE (epoch 0, to
# 224.0.0.1:5350). `portmap keep` must notice the epoch going back and re-create its
# mapping after a random 0-5 s wait, i.e. long before the next scheduled renewal
# (lifetime 120 s: renewal due after 60 s). Then SIGTERM: exit 0 within 2 s, rule gone.
#   bash tests/lab/test_pcp_reboot.sh PATH/TO/portmap      (as root)
set -u -o pipefail
# shellcheck source-path=SCRIPTDIR source=testlib.sh
. "$(dirname "$0")/testlib.sh"
tl_enter_lab short "$@"
tl_require_portmap "$@"

out=$TL_TMP/keep.out err=$TL_TMP/keep.err
tl_log "portmap keep 8000/tcp --lifetime 120 --json"
ip netns exec "$LAB_CLIENT_NS" "$PORTMAP" keep 8000/tcp --lifetime 120 --json >"$out" 2>"$err" &
pm=$!
tl_track "$pm"

eport=
for ((i = 0; i < 100; i++)); do
  eport=$(tl_jsonl get "$out" mapped external_port 2>/dev/null) && break
  kill -0 "$pm" 2>/dev/null || break
  sleep 0.1
done
[ -n "$eport" ] || { tl_show "$out" "$err"; tl_fail "no \"mapped\" event within 10 s"; }
tl_wait_rule present tcp "$eport" 8000 2 || tl_fail "no DNAT rule for $eport after mapped"
# RFC 6887 §8.5 can only tell a reboot from clock skew once the client's clock has moved
# on by more than ~2 s since the last answer: let 5 s pass before the reboot.
tl_log "mapped to external port $eport; rebooting the router in 5 s"
sleep 5

bash "$TL_LAB_SH" reboot || tl_fail "lab.sh reboot failed"
t_reboot=$EPOCHREALTIME
tl_has_rule tcp "$eport" 8000 && tl_fail "the rule survived the reboot (lab broken?)"

# K2: re-created after a random 0-5 s; allow 2 s more for the exchange and sampling.
back=
for ((i = 0; i < 70; i++)); do
  if tl_has_rule tcp "$eport" 8000 || tl_rules | grep -qF "dnat ip to $LAB_CLIENT_IP:8000"; then
    back=$(awk -v a="$t_reboot" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
    break
  fi
  kill -0 "$pm" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$back" ]; then
  tl_show "$out" "$err"
  tl_fail "mapping not re-created within 7 s of the reboot (PCP ANNOUNCE epoch 0 ignored?)"
fi
tl_log "mapping back on the router $back s after the reboot: $(tl_rules | grep -F "$LAB_CLIENT_IP:8000")"
sleep 1
kill -0 "$pm" 2>/dev/null || { tl_show "$out" "$err"; tl_fail "portmap keep exited by itself"; }

tl_log "SIGTERM to portmap (pid $pm)"
kill -TERM "$pm"
for ((i = 0; i < 20; i++)); do
  kill -0 "$pm" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$pm" 2>/dev/null && { tl_show "$out" "$err"; tl_fail "portmap keep still running 2 s after SIGTERM"; }
wait "$pm"
rc=$?
tl_show "$out" "$err"
[ $rc -eq 0 ] || tl_fail "portmap keep exited $rc after SIGTERM, expected 0"
for ((i = 0; i < 20; i++)); do
  tl_rules | grep -qF "dnat ip to $LAB_CLIENT_IP:8000" || break
  sleep 0.1
done
tl_rules | grep -qF "dnat ip to $LAB_CLIENT_IP:8000" && tl_fail "a rule for :8000 is still there after exit"
tl_jsonl validate "$out" >&2 || tl_fail "invalid --json output"
grep -q '"failed"' "$out" && tl_fail "a \"failed\" event: the reboot should have been survived"
tl_pass
