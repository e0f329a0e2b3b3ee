#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
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
tl_keep_sample_for "$DURATION" "$t0" "$pm" "$out" "$samples" "$PROTO" "$PORT" "$eport"
t_term=$EPOCHREALTIME
tl_keep_stop_clean "$pm" "$stamper" "$out" "$PROTO" "$PORT" "$eport"
tl_keepcheck --out "$out" --samples "$samples" --key "$PROTO/$PORT" --min-renewed 3 \
  --lifetime "$LIFETIME" --until "$t_term" --backend natpmp >&2 || tl_fail "timeline checks failed (see above)"
tl_pass
