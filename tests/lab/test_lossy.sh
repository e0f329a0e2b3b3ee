#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Lab test: 30 % of the packets to the router's port 5351 are dropped (personality lossy:
# nft numgen; min_lifetime=2 so short lifetimes are granted). One `portmap keep` with
# three mappings (tcp and udp, 8 s lifetime, --backend pcp,natpmp: PCP usually, NAT-PMP
# allowed; UPnP is left out so the loss is what is tested) must establish all of them
# and keep renewing them through the loss, by retransmitting (RFC 6887 §8.1.1, H5; RFC
# 6886 §3.1). PCP's first retransmission comes after --retransmit 250 ms instead of the
# RFC's 3 s: with 3 s, 30 % loss leaves a mapping unmapped after 21 s in 0.8 % of the
# runs (4 sends lost), too flaky for CI; with 250 ms, 7 sends go out within 16 s (all
# lost: 0.02 %).
# For 24 s (3 lifetimes) the router's rules are sampled every 0.5 s. Every mapping must
# be renewed at least twice, each renewal before the lifetime ran out, be on the router
# at the end, and never fail. With an 8 s lifetime PCP has room for one renewal try (at
# 1/2-5/8 of it: another would be less than 4 s later or after the expiry, which H5
# forbids), so about 30 % of the renewals are lost: the mapping then expires ("lost") and
# is re-created at once; that is accepted when it is back within 3 s of the lost event
# (at most 6 samples absent), and counted. Then SIGTERM: exit 0
# within 2.5 s (the deletes may be lost: each mapping then expires by itself within its
# 8 s lifetime, which is checked too).
# A mapping may start on NAT-PMP (its first PCP request lost, NAT-PMP answered, PCP silent
# for 30 ms more) and move to PCP when PCP answers within the 500 ms probe budget: that
# is a "changed" event (allowed), never a second "mapped".
#   bash tests/lab/test_lossy.sh PATH/TO/portmap      (as root)
set -u -o pipefail
# shellcheck source-path=SCRIPTDIR source=testlib.sh
. "$(dirname "$0")/testlib.sh"
tl_enter_lab lossy "$@"
tl_require_portmap "$@"

LIFETIME=8 DURATION=${KEEP_SECONDS:-24}
MAPS="tcp/8000 udp/8000 tcp/8001"
samples=$TL_TMP/samples
: >"$samples"
tl_keep_start keep 8000/tcp 8000/udp 8001/tcp --lifetime "$LIFETIME" --backend pcp,natpmp \
  --retransmit 250
pm=$TL_KEEP_PID stamper=$TL_KEEP_STAMPER out=$TL_TMP/keep.out err=$TL_TMP/keep.err
t0=$EPOCHREALTIME
tl_wait_count "$out" mapped 3 17 "$pm" || { tl_show "$out" "$err"; tl_fail "not all 3 mapped within 17 s"; }
tl_log "all 3 mapped after $(tl_since "$t0") s"
declare -A eport
for k in $MAPS; do eport[$k]=$(tl_eport "$out" "${k%/*}" "${k#*/}") || tl_fail "no external port for $k"; done
end=$(awk -v a="$t0" -v d="$DURATION" 'BEGIN { printf "%.3f", a + d }')
while awk -v e="$end" -v n="$EPOCHREALTIME" 'BEGIN { exit !(n < e) }'; do
  kill -0 "$pm" 2>/dev/null || { tl_show "$out" "$err"; tl_fail "portmap keep exited by itself"; }
  for k in $MAPS; do tl_sample "$samples" "$k" "${k%/*}" "${eport[$k]}" "${k#*/}"; done
  sleep 0.5
done
t_term=$EPOCHREALTIME
# A mapping may be inside an accepted lapse right now (its one renewal try lost, the
# lease just ran out, re-created at once): it must be back within the same 3 s grace.
for k in $MAPS; do
  for ((i = 0; i < 30; i++)); do
    tl_has_rule "${k%/*}" "${eport[$k]}" "${k#*/}" && break
    sleep 0.1
  done
  tl_has_rule "${k%/*}" "${eport[$k]}" "${k#*/}" || { tl_show "$out" "$err"; tl_fail "$k is not on the router at the end (nor 3 s later)"; }
done
tl_log "SIGTERM to portmap (pid $pm)"
tl_stop "$pm" TERM 2.5 || { tl_show "$out" "$err"; tl_fail "portmap keep still running 2.5 s after SIGTERM"; }
tl_log "portmap exited $TL_STOP_RC, $TL_STOP_SECS s after SIGTERM"
tl_wait_stamper "$stamper"
tl_show "$out" "$err"
[ "$TL_STOP_RC" -eq 0 ] || tl_fail "portmap keep exited $TL_STOP_RC after SIGTERM, expected 0"
tl_jsonl validate "$out" >&2 || tl_fail "invalid --json output"
backend=$(tl_jsonl get "$out" mapped backend)
case $backend in pcp | natpmp) ;; *) tl_fail "mapped via $backend, expected pcp or natpmp" ;; esac
tl_log "backend: $backend; $(grep -c '"deleted"' "$out") of 3 deletes confirmed"
# lost (retrying) is allowed under loss; failed is not
keys=()
for k in $MAPS; do keys+=(--key "$k"); done
tl_keepcheck --out "$out" --samples "$samples" --min-renewed 2 --until "$t_term" --allow lost --allow changed \
  --max-gap-fraction 1 --lapse-grace 3 --max-absent 6 "${keys[@]}" >&2 ||
  tl_fail "timeline checks failed (see above)"
# Whatever the loss did to the deletes, nothing of ours outlives its lifetime.
tl_wait_no_rules $((LIFETIME + 2)) || tl_fail "rules of ours still there $((LIFETIME + 2)) s after exit"
tl_log "no rule of ours left $(tl_since "$t_term") s after SIGTERM"
tl_pass
