#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Lab test: THIRD_PARTY where the router permits it (personality thirdparty:
# pcp_allow_thirdparty=yes, min_lifetime=2). RFC 6887 §13.1, checklist J1.
#  1. add --third-party .5: mapped via pcp; the router's DNAT rule goes to .5, nothing
#     to our own address; delete --third-party .5 --nonce N removes it.
#  2. keep --third-party .6 with a 4 s lifetime for 10 s: the renewals must carry the
#     option too (J1): the rule stays on .6 in every sample, no rule for our own address
#     appears, >= 2 renewals; SIGTERM deletes it (exit 0 within 2 s).
# (test_pcp_options covers the refusal, UNSUPP_OPTION, by a router that does not permit it.)
#   bash tests/lab/test_pcp_thirdparty.sh PATH/TO/portmap      (as root)
set -u -o pipefail
# shellcheck source-path=SCRIPTDIR source=testlib.sh
. "$(dirname "$0")/testlib.sh"
tl_enter_lab thirdparty "$@"
tl_require_portmap "$@"

net=${LAB_CLIENT_IP%.*}
# 1. add + delete ---------------------------------------------------------------------
tl_add tp_add 9000/tcp --third-party "$net.5" --lifetime 120
[ "$TL_RC" -eq 0 ] || tl_fail "add --third-party: exit $TL_RC, expected 0"
[ "$(tl_jsonl get "$TL_TMP/tp_add.out" mapped backend)" = pcp ] || tl_fail "not mapped via pcp"
eport=$(tl_jsonl get "$TL_TMP/tp_add.out" mapped external_port)
nonce=$(tl_jsonl get "$TL_TMP/tp_add.out" mapped nonce)
for ((i = 0; i < 40; i++)); do tl_has_dnat_to tcp "$eport" "$net.5:9000" && break; sleep 0.05; done
tl_has_dnat_to tcp "$eport" "$net.5:9000" || { tl_rules >&2; tl_fail "no DNAT rule $eport -> $net.5:9000"; }
tl_rules | grep -qF "$LAB_CLIENT_IP:" && tl_fail "a rule to our own address appeared"
tl_log "router: $(tl_rules | grep -F "$net.5:9000")"
tl_log "portmap delete 9000/tcp --third-party $net.5 --nonce $nonce"
tl_client 30 "$PORTMAP" delete 9000/tcp --third-party "$net.5" --nonce "$nonce" >"$TL_TMP/del.out" 2>"$TL_TMP/del.err"
rc=$?
tl_show "$TL_TMP/del.out" "$TL_TMP/del.err"
[ $rc -eq 0 ] || tl_fail "delete --third-party: exit $rc, expected 0"
for ((i = 0; i < 40; i++)); do tl_has_dnat_to tcp "$eport" "$net.5:9000" || break; sleep 0.05; done
tl_has_dnat_to tcp "$eport" "$net.5:9000" && tl_fail "the third-party rule is still there after delete"

# 2. keep: renewals carry THIRD_PARTY ----------------------------------------------------
LIFETIME=4
tl_keep_start keep 9001/udp --third-party "$net.6" --lifetime "$LIFETIME"
pm=$TL_KEEP_PID st=$TL_KEEP_STAMPER out=$TL_TMP/keep.out err=$TL_TMP/keep.err
tl_wait_count "$out" mapped 1 5 "$pm" || { tl_show "$out" "$err"; tl_fail "keep --third-party: no mapped event"; }
eport=$(tl_eport "$out" udp 9001)
samples=$TL_TMP/samples
: >"$samples"
end=$(awk -v a="$EPOCHREALTIME" 'BEGIN { printf "%.3f", a + 10 }')
while awk -v e="$end" -v n="$EPOCHREALTIME" 'BEGIN { exit !(n < e) }'; do
  kill -0 "$pm" 2>/dev/null || { tl_show "$out" "$err"; tl_fail "keep exited by itself"; }
  state=absent
  tl_has_dnat_to udp "$eport" "$net.6:9001" && state=present
  printf '%s udp/9001 %s -\n' "$EPOCHREALTIME" "$state" >>"$samples"
  tl_rules | grep -qF "$LAB_CLIENT_IP:" && { tl_rules >&2; tl_fail "a rule to our own address appeared (renewal without THIRD_PARTY?)"; }
  sleep 0.5
done
t_term=$EPOCHREALTIME
tl_stop "$pm" TERM 2 || { tl_show "$out" "$err"; tl_fail "keep still running 2 s after SIGTERM"; }
tl_log "keep exited $TL_STOP_RC after $TL_STOP_SECS s"
tl_wait_stamper "$st"
tl_show "$out" "$err"
[ "$TL_STOP_RC" -eq 0 ] || tl_fail "keep exited $TL_STOP_RC after SIGTERM"
for ((i = 0; i < 40; i++)); do [ -z "$(tl_rules)" ] && break; sleep 0.05; done
[ -z "$(tl_rules)" ] || { tl_rules >&2; tl_fail "rules left after keep --third-party exited"; }
tl_keepcheck --out "$out" --samples "$samples" --key udp/9001 --min-renewed 2 --lifetime "$LIFETIME" \
  --until "$t_term" >&2 || tl_fail "timeline checks failed (see above)"
tl_pass
