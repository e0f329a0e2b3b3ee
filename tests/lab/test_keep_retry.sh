#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Lab test: "retry, never give up silently". The router's miniupnpd is stopped (nothing
# answers: ICMP port unreachable on 5351, no SSDP reply). `portmap keep 8000/tcp` must
# not exit: it prints one "lost" event (with a "tried" reason per backend) and keeps
# asking (2 s, doubling up to 5 min). miniupnpd is then started mid-run; the mapping
# must be "mapped" within one back-off step (at most ~18 s after the start here) and the
# rule present on the router. Then SIGTERM: exit 0 within 2 s, the rule deleted.
#   bash tests/lab/test_keep_retry.sh PATH/TO/portmap      (as root)
set -u -o pipefail
# shellcheck source-path=SCRIPTDIR source=testlib.sh
. "$(dirname "$0")/testlib.sh"
tl_enter_lab full "$@"
tl_require_portmap "$@"

bash "$TL_LAB_SH" daemon stop || tl_fail "lab.sh daemon stop failed"
[ -z "$(tl_rules)" ] || tl_fail "rules present before the test (lab broken?)"

tl_keep_start keep 8000/tcp
pm=$TL_KEEP_PID stamper=$TL_KEEP_STAMPER out=$TL_TMP/keep.out err=$TL_TMP/keep.err
tl_wait_count "$out" lost 1 5 "$pm" || { tl_show "$out" "$err"; tl_fail "no lost event within 5 s"; }
grep '"event":"lost"' "$out" | grep -q '"tried":\[{' ||
  { tl_show "$out" "$err"; tl_fail "the lost event has no per-backend reasons (tried)"; }
sleep 8 # rounds at about 0.5 + 2, + 4, + 8 s: several re-probes with nothing answering
kill -0 "$pm" 2>/dev/null || { tl_show "$out" "$err"; tl_fail "portmap keep exited with nothing answering"; }
if grep -q '"event":"failed"' "$out"; then tl_show "$out" "$err"; tl_fail "a failed event"; fi
[ "$(grep -c '"event":"lost"' "$out")" -eq 1 ] || { tl_show "$out" "$err"; tl_fail "more than one lost event"; }

bash "$TL_LAB_SH" daemon start || tl_fail "lab.sh daemon start failed"
t_start=$EPOCHREALTIME
tl_wait_count "$out" mapped 1 40 "$pm" || { tl_show "$out" "$err"; tl_fail "not mapped within 40 s of miniupnpd's start"; }
tl_log "mapped $(tl_since "$t_start") s after miniupnpd started"
eport=$(tl_eport "$out" tcp 8000) || tl_fail "no external port in the mapped event"
tl_wait_rule present tcp "$eport" 8000 2 || tl_fail "no rule for tcp 8000 after mapped"
[ "$(grep -c '"event":"lost"' "$out")" -eq 1 ] || { tl_show "$out" "$err"; tl_fail "more than one lost event"; }

tl_keep_stop_clean "$pm" "$stamper" "$out" tcp 8000 "$eport"
tl_pass
