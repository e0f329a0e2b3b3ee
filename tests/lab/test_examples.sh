#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Lab test: the four examples (examples/: poll, libuv, libevent, thread mode) against the
# real router. Each runs in the client namespace as `portmap-example-X --gateway GW
# 8000/tcp` (default backends) and must print "MS mapped tcp 8000 -> WAN:PORT via pcp"
# with MS < 50 (issue 9: the loop hears of the PCP socket at once, no waiting for a
# timer), then "MS deleted tcp 8000" (it revokes after mapped), and exit 0; the router
# must then have no rule of ours left.
#   bash tests/lab/test_examples.sh PATH/TO/portmap      (as root; the examples are taken
#   from $PORTMAP_EXAMPLES_DIR, or from ../examples next to portmap's directory)
# Personality pcp: PCP + NAT-PMP, no UPnP.
set -u -o pipefail
# shellcheck source-path=SCRIPTDIR source=testlib.sh
. "$(dirname "$0")/testlib.sh"
tl_enter_lab pcp "$@"
tl_require_portmap "$@"

EXAMPLES_DIR=${PORTMAP_EXAMPLES_DIR:-$(dirname "$PORTMAP")/../examples}
LIMIT_MS=50
summary=
ran=0
for ex in poll uv event thread; do
  bin=$EXAMPLES_DIR/portmap-example-$ex
  if [ ! -x "$bin" ]; then
    tl_log "$ex: no $bin (not built here), skipped"
    continue
  fi
  ran=$((ran + 1))
  out=$TL_TMP/$ex.out err=$TL_TMP/$ex.err
  tl_log "[$ex] portmap-example-$ex --gateway $LAB_GW_LAN_IP 8000/tcp"
  start=$EPOCHREALTIME
  tl_client 30 "$bin" --gateway "$LAB_GW_LAN_IP" 8000/tcp >"$out" 2>"$err"
  rc=$?
  tl_log "[$ex] exited $rc after $(tl_ms "$start") ms"
  tl_show "$out" "$err"
  [ $rc -eq 0 ] || tl_fail "$ex: exit status $rc, expected 0"
  first=$(sed -n 1p "$out") last=$(tail -n 1 "$out")
  re="^([0-9]+) mapped tcp 8000 -> ${LAB_WAN_IP//./\\.}:([0-9]+) via pcp$"
  [[ $first =~ $re ]] || tl_fail "$ex: first line is not 'MS mapped tcp 8000 -> $LAB_WAN_IP:PORT via pcp'"
  ms=${BASH_REMATCH[1]} eport=${BASH_REMATCH[2]}
  [[ $last =~ ^[0-9]+\ deleted\ tcp\ 8000$ ]] || tl_fail "$ex: last line is not 'MS deleted tcp 8000'"
  tl_wait_rule absent tcp "$eport" 8000 2 ||
    { tl_rules >&2; tl_fail "$ex: the rule for $eport is still on the router 2 s after deleted"; }
  [ "$ms" -lt "$LIMIT_MS" ] || tl_fail "$ex: mapped after $ms ms, expected < $LIMIT_MS ms"
  summary="$summary $ex=${ms}ms"
done
[ $ran -gt 0 ] || tl_fail "no example found in $EXAMPLES_DIR"
tl_log "mapped after:$summary"
tl_pass
