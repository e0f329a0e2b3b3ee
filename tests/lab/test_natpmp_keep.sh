#!/usr/bin/env bash
# Lab test: `portmap keep --backend natpmp` keeps a short NAT-PMP mapping alive on the real
# router for more than three lifetimes, then deletes it (RFC 6886 §3.3, checklist N3/N4).
#   bash tests/lab/test_natpmp_keep.sh PATH/TO/portmap      (as root)
# Personality short. miniupnpd does not clamp NAT-PMP lifetimes at all (min_lifetime and
# max_lifetime are PCP's; checked: 4 s and 1000000 s are granted as asked even in full),
# so a 4 s lifetime is granted as is. For 14 s the router is sampled every 0.5 s, by nft
# and by UPnP (`upnpc -l` lists NAT-PMP mappings with the lease left): the rule must be
# there in every sample, and >= 3 renewals, each within 5/8 of the lifetime. Then
# SIGTERM: exit 0 within 2 s, a "deleted" event, the rule gone (nft and upnpc -l).
set -u -o pipefail
# shellcheck source-path=SCRIPTDIR source=testlib.sh
. "$(dirname "$0")/testlib.sh"
tl_enter_lab short "$@"
tl_require_portmap "$@"

LIFETIME=4 DURATION=${KEEP_SECONDS:-14} PORT=8000 PROTO=udp
samples=$TL_TMP/samples
: >"$samples"
tl_keep_start keep "$PORT/$PROTO" --backend natpmp --lifetime "$LIFETIME"
pm=$TL_KEEP_PID stamper=$TL_KEEP_STAMPER out=$TL_TMP/keep.out
t0=$EPOCHREALTIME
tl_wait_count "$out" mapped 1 5 "$pm" || { tl_show "$out" "$TL_TMP/keep.err"; tl_fail "no mapped event within 5 s"; }
tl_log "mapped after $(tl_since "$t0") s"
eport=$(tl_eport "$out" "$PROTO" "$PORT") || tl_fail "no external port in the mapped line"
granted=$(tl_jsonl get "$out" mapped lifetime)
tl_log "miniupnpd granted the NAT-PMP mapping $LAB_WAN_IP:$eport a lifetime of $granted s (asked $LIFETIME)"
[ "$granted" = "$LIFETIME" ] || tl_fail "granted lifetime $granted, expected $LIFETIME (personality short)"
end=$(awk -v a="$t0" -v d="$DURATION" 'BEGIN { printf "%.3f", a + d }')
while awk -v e="$end" -v n="$EPOCHREALTIME" 'BEGIN { exit !(n < e) }'; do
  kill -0 "$pm" 2>/dev/null || { tl_show "$out" "$TL_TMP/keep.err"; tl_fail "portmap keep exited by itself"; }
  tl_sample "$samples" "$PROTO/$PORT" "$PROTO" "$eport" "$PORT" upnp
  sleep 0.5
done
t_term=$EPOCHREALTIME
tl_log "SIGTERM to portmap (pid $pm)"
tl_stop "$pm" TERM 2 || { tl_show "$out" "$TL_TMP/keep.err"; tl_fail "portmap keep still running 2 s after SIGTERM"; }
tl_log "portmap exited $TL_STOP_RC, $TL_STOP_SECS s after SIGTERM"
tl_wait_stamper "$stamper"
gone=0
tl_wait_rule absent "$PROTO" "$eport" "$PORT" 2 && gone=1
tl_show "$out" "$TL_TMP/keep.err"
[ "$TL_STOP_RC" -eq 0 ] || tl_fail "portmap keep exited $TL_STOP_RC after SIGTERM, expected 0"
[ $gone = 1 ] || { tl_rules >&2; tl_fail "the rule for $eport is still on the router 2 s after exit"; }
left=$(tl_upnp_lease "$PROTO" "$eport" "$PORT")
[ -z "$left" ] || tl_fail "upnpc -l still lists $PROTO $eport (lease $left) after the delete"
grep -q '"event":"deleted"' "$out" || tl_fail "no deleted event after SIGTERM"
tl_jsonl validate "$out" >&2 || tl_fail "invalid --json output"
tl_keepcheck --out "$out" --samples "$samples" --key "$PROTO/$PORT" --min-renewed 3 \
  --lifetime "$LIFETIME" --until "$t_term" --backend natpmp >&2 || tl_fail "timeline checks failed (see above)"
tl_pass
