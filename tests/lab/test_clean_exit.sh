#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Lab test: a clean exit leaves nothing behind. `portmap keep` with four mappings on three
# ports (8000/tcp 8000/udp 8001/udp 8002/tcp) gets SIGTERM or SIGINT (by its PID): it
# must exit 0 within 2 s, print a "deleted" event for each, and leave zero rules of ours
# on the router, asked both ways: nft (all three miniupnpd chains) and the router's own
# UPnP table (`upnpc -u URL -l`, which also lists PCP and NAT-PMP mappings). Four rounds:
# PCP + SIGTERM, PCP + SIGINT, UPnP + SIGTERM, NAT-PMP + SIGINT.
#   bash tests/lab/test_clean_exit.sh PATH/TO/portmap      (as root)
set -u -o pipefail
# shellcheck source-path=SCRIPTDIR source=testlib.sh
. "$(dirname "$0")/testlib.sh"
tl_enter_lab full "$@"
tl_require_portmap "$@"

SPECS="8000/tcp 8000/udp 8001/udp 8002/tcp"
summary=
round=0
for combo in pcp:TERM pcp:INT upnp:TERM natpmp:INT; do
  round=$((round + 1))
  backend=${combo%:*} sig=${combo#*:} name=r$round
  # shellcheck disable=SC2086  # the specs are separate words
  tl_keep_start "$name" $SPECS --backend "$backend" --lifetime 120
  pm=$TL_KEEP_PID st=$TL_KEEP_STAMPER out=$TL_TMP/$name.out err=$TL_TMP/$name.err
  tl_wait_count "$out" mapped 4 10 "$pm" || { tl_show "$out" "$err"; tl_fail "$backend: not all 4 mapped within 10 s"; }
  for spec in $SPECS; do
    port=${spec%/*} proto=${spec#*/}
    e=$(tl_eport "$out" "$proto" "$port") || tl_fail "$backend: no external port for $spec"
    tl_wait_rule present "$proto" "$e" "$port" 2 || tl_fail "$backend: no nft rule for $spec"
  done
  n_upnp=$(tl_upnp_list | grep -c -- "->$LAB_CLIENT_IP:")
  tl_log "$backend: 4 mapped; nft has $(tl_our_rules | wc -l) rules of ours, upnpc -l lists $n_upnp"
  [ "$n_upnp" -eq 4 ] || { tl_upnp_list >&2; tl_fail "$backend: upnpc -l lists $n_upnp mappings of ours, expected 4"; }
  tl_stop "$pm" "$sig" 2 || { tl_show "$out" "$err"; tl_fail "$backend: portmap keep still running 2 s after SIG$sig"; }
  t=$TL_STOP_SECS rc=$TL_STOP_RC
  tl_wait_stamper "$st"
  left_nft=$(tl_our_rules) left_upnp=$(tl_upnp_list | grep -- "->$LAB_CLIENT_IP:")
  tl_log "$backend: SIG$sig -> exit $rc after $t s; left: $(printf '%s' "$left_nft" | grep -c .) nft rules, $(printf '%s' "$left_upnp" | grep -c .) UPnP entries"
  tl_show "$out" "$err"
  [ "$rc" -eq 0 ] || tl_fail "$backend: exit status $rc after SIG$sig, expected 0"
  [ -z "$left_nft" ] || { echo "$left_nft" >&2; tl_fail "$backend: nft rules of ours left after SIG$sig"; }
  [ -z "$left_upnp" ] || { echo "$left_upnp" >&2; tl_fail "$backend: UPnP entries of ours left after SIG$sig"; }
  [ "$(tl_jsonl count "$out" deleted)" -eq 4 ] || tl_fail "$backend: $(tl_jsonl count "$out" deleted) deleted events, expected 4"
  tl_jsonl validate "$out" >&2 || tl_fail "$backend: invalid --json output"
  summary="$summary $backend/SIG$sig=${t}s"
done
tl_log "exit times:$summary"
tl_pass
