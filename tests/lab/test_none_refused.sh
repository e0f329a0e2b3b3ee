#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Lab test: a router with no port-mapping service at all (no miniupnpd: ICMP port
# unreachable on 5351, no SSDP answer). `portmap add` and `portmap delete` must report
# "nothing answered" (exit 1), in bounded time, and print no "mapped" event.
#   bash tests/lab/test_none_refused.sh PATH/TO/portmap      (as root)
set -u -o pipefail
# shellcheck source-path=SCRIPTDIR source=testlib.sh
. "$(dirname "$0")/testlib.sh"
tl_enter_lab none "$@"
tl_require_portmap "$@"

for args in "add 8000/tcp --json" "add 8000/tcp --gateway $LAB_GW_LAN_IP --json" "delete 8000/tcp"; do
  tl_log "portmap $args"
  start=$EPOCHREALTIME
  # shellcheck disable=SC2086  # word splitting of the argument list is intended
  tl_client 60 "$PORTMAP" $args >"$TL_TMP/out" 2>"$TL_TMP/err"
  rc=$?
  took=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
  tl_log "exited $rc after $took s"
  tl_show "$TL_TMP/out" "$TL_TMP/err"
  [ $rc -eq 124 ] && tl_fail "portmap $args still running after 60 s"
  [ $rc -eq 1 ] || tl_fail "portmap $args exited $rc, expected 1 (nothing answered)"
  if grep -q '"mapped"' "$TL_TMP/out"; then tl_fail "a \"mapped\" event with no gateway"; fi
  case $args in *--json*) tl_jsonl validate "$TL_TMP/out" >&2 || tl_fail "invalid --json output" ;; esac
done
[ -z "$(tl_rules)" ] || tl_fail "rules appeared on a router with no miniupnpd?"
tl_pass
