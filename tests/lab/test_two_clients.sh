#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Lab test: two `portmap keep` processes on one host (the client namespace), different
# ports, each with its own PCP mappings (and nonces), both listening for ANNOUNCEs on
# 224.0.0.1:5350 (SO_REUSEADDR/SO_REUSEPORT, checklist B5). Both renew (6 s lifetime).
# SIGTERM to A (by its PID) must remove only A's rule; B's stays on the router in every
# sample and B keeps renewing (>= 2 more renewals over two lifetimes). Then SIGTERM to B.
#   bash tests/lab/test_two_clients.sh PATH/TO/portmap      (as root)
set -u -o pipefail
# shellcheck source-path=SCRIPTDIR source=testlib.sh
. "$(dirname "$0")/testlib.sh"
tl_enter_lab short "$@"
tl_require_portmap "$@"

LIFETIME=6
tl_keep_start a 8000/tcp --lifetime "$LIFETIME"
a_pid=$TL_KEEP_PID a_st=$TL_KEEP_STAMPER
tl_keep_start b 8001/udp --lifetime "$LIFETIME"
b_pid=$TL_KEEP_PID b_st=$TL_KEEP_STAMPER
for c in a b; do
  tl_wait_count "$TL_TMP/$c.out" mapped 1 10 || { tl_show "$TL_TMP/$c.out" "$TL_TMP/$c.err"; tl_fail "client $c: no mapped event"; }
done
a_eport=$(tl_eport "$TL_TMP/a.out" tcp 8000) b_eport=$(tl_eport "$TL_TMP/b.out" udp 8001)
a_nonce=$(tl_jsonl get "$TL_TMP/a.out" mapped nonce) b_nonce=$(tl_jsonl get "$TL_TMP/b.out" mapped nonce)
tl_log "A (pid $a_pid): tcp 8000 -> $a_eport nonce $a_nonce; B (pid $b_pid): udp 8001 -> $b_eport nonce $b_nonce"
[ "$a_nonce" != "$b_nonce" ] || tl_fail "both clients use the same nonce"
tl_wait_rule present tcp "$a_eport" 8000 2 || tl_fail "no rule for A"
tl_wait_rule present udp "$b_eport" 8001 2 || tl_fail "no rule for B"
# Both renew at least once before A goes.
for c in a b; do
  tl_wait_count "$TL_TMP/$c.out" renewed 1 "$LIFETIME" || { tl_show "$TL_TMP/$c.out" "$TL_TMP/$c.err"; tl_fail "client $c: no renewal within $LIFETIME s"; }
done
both=$(ip netns exec "$LAB_CLIENT_NS" ss -Hlun 'sport = :5350' | wc -l)
tl_log "both renewed; UDP sockets on port 5350 in the client namespace: $both"

t_term=$EPOCHREALTIME
tl_log "SIGTERM to A only (pid $a_pid)"
tl_stop "$a_pid" TERM 2 || { tl_show "$TL_TMP/a.out" "$TL_TMP/a.err"; tl_fail "A still running 2 s after SIGTERM"; }
tl_log "A exited $TL_STOP_RC after $TL_STOP_SECS s"
[ "$TL_STOP_RC" -eq 0 ] || tl_fail "A exited $TL_STOP_RC after SIGTERM"
tl_wait_rule absent tcp "$a_eport" 8000 2 || { tl_rules >&2; tl_fail "A's rule still on the router 2 s after A exited"; }
tl_log "A's rule gone $(tl_since "$t_term") s after its SIGTERM"
tl_has_rule udp "$b_eport" 8001 || { tl_rules >&2; tl_fail "B's rule went away with A"; }
kill -0 "$b_pid" 2>/dev/null || tl_fail "B exited when A did"
renewed_before=$(grep -c '"renewed"' "$TL_TMP/b.out")

# B alone for two lifetimes: present in every sample, renewing.
samples=$TL_TMP/samples
: >"$samples"
end=$(awk -v a="$EPOCHREALTIME" -v d="$((2 * LIFETIME))" 'BEGIN { printf "%.3f", a + d }')
while awk -v e="$end" -v n="$EPOCHREALTIME" 'BEGIN { exit !(n < e) }'; do
  kill -0 "$b_pid" 2>/dev/null || { tl_show "$TL_TMP/b.out" "$TL_TMP/b.err"; tl_fail "B exited by itself"; }
  tl_sample "$samples" udp/8001 udp "$b_eport" 8001
  tl_has_rule tcp "$a_eport" 8000 && tl_fail "A's rule came back"
  sleep 0.5
done
renewed_after=$(grep -c '"renewed"' "$TL_TMP/b.out")
tl_log "B renewed $((renewed_after - renewed_before)) times in the $((2 * LIFETIME)) s after A left"
[ $((renewed_after - renewed_before)) -ge 2 ] || tl_fail "B renewed fewer than 2 times after A left"
t_b=$EPOCHREALTIME
tl_stop "$b_pid" TERM 2 || tl_fail "B still running 2 s after SIGTERM"
[ "$TL_STOP_RC" -eq 0 ] || tl_fail "B exited $TL_STOP_RC after SIGTERM"
tl_wait_stamper "$a_st"
tl_wait_stamper "$b_st"
tl_show "$TL_TMP/a.out" "$TL_TMP/a.err" "$TL_TMP/b.out" "$TL_TMP/b.err"
tl_wait_rule absent udp "$b_eport" 8001 2 || tl_fail "B's rule still there after B exited"
for c in a b; do tl_jsonl validate "$TL_TMP/$c.out" >&2 || tl_fail "client $c: invalid --json output"; done
grep -q '"deleted"' "$TL_TMP/a.out" || tl_fail "A printed no deleted event"
tl_keepcheck --out "$TL_TMP/b.out" --samples "$samples" --key udp/8001 --min-renewed 3 \
  --lifetime "$LIFETIME" --until "$t_b" >&2 || tl_fail "B's timeline checks failed (see above)"
tl_pass
