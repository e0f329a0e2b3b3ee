#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Lab test: `portmap keep --backend upnp` with an 8 s lease keeps the UPnP-IGD mapping
# alive on the real router for more than three leases: each renewal (a new
# AddPortMapping) must land before the lease runs out. Checked by nft and by asking the
# router over UPnP (`upnpc -u URL -l`, which shows the lease left), every 0.5 s.
# Then SIGTERM: exit 0 within 2 s, "deleted", the entry gone from nft and upnpc -l.
#   bash tests/lab/test_upnp_keep.sh PATH/TO/portmap      (as root)
set -u -o pipefail
# shellcheck source-path=SCRIPTDIR source=testlib.sh
. "$(dirname "$0")/testlib.sh"
tl_enter_lab short "$@"
tl_require_portmap "$@"

LIFETIME=8 DURATION=${KEEP_SECONDS:-26} PORT=8000 PROTO=tcp
samples=$TL_TMP/samples
: >"$samples"
tl_keep_start keep "$PORT/$PROTO" --backend upnp --lifetime "$LIFETIME"
pm=$TL_KEEP_PID stamper=$TL_KEEP_STAMPER out=$TL_TMP/keep.out
t0=$EPOCHREALTIME
tl_wait_count "$out" mapped 1 5 "$pm" || { tl_show "$out" "$TL_TMP/keep.err"; tl_fail "no mapped event within 5 s"; }
tl_log "mapped after $(tl_since "$t0") s"
eport=$(tl_eport "$out" "$PROTO" "$PORT") || tl_fail "no external port in the mapped line"
tl_log "router's UPnP table: $(tl_upnp_list | grep -F -- "$eport->" | tr -s ' ')"
tl_keep_sample_for "$DURATION" "$t0" "$pm" "$out" "$samples" "$PROTO" "$PORT" "$eport"
t_term=$EPOCHREALTIME
tl_keep_stop_clean "$pm" "$stamper" "$out" "$PROTO" "$PORT" "$eport"
# The lease never ran out: every sample found the entry with >= 1 s left.
minlease=$(awk '$4 ~ /^[0-9]+$/ { if (m == "" || $4 < m) m = $4 } $4 == "none" { none++ }
  END { print (none ? "none" : m) }' "$samples")
tl_log "smallest UPnP lease left seen by upnpc -l: $minlease s (lease $LIFETIME s)"
if ! [[ $minlease =~ ^[0-9]+$ ]] || [ "$minlease" -lt 1 ]; then
  tl_fail "the UPnP entry was missing or its lease ran out in a sample (smallest: $minlease)"
fi
tl_keepcheck --out "$out" --samples "$samples" --key "$PROTO/$PORT" --min-renewed 3 \
  --lifetime "$LIFETIME" --until "$t_term" --backend upnp >&2 || tl_fail "timeline checks failed (see above)"
tl_pass
