#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Lab test: PCP over IPv6 to the router's IPv6 (ULA) address. `portmap add --ipv6
# --gateway fd70:6d61:7000:77::1` must map the client's IPv6 address: miniupnpd 2.3.1
# answers with a firewall pinhole, not NAT (an accept rule in chain miniupnpd for the
# client's address and port; nothing in prerouting_miniupnpd), external address = the
# client's own address. `portmap delete --ipv6 --nonce N` must remove the pinhole. Then
# the same without --gateway (the client's IPv6 default route points at the router).
# No renewal: 2.3.1 answers a renewal with external port 0, and a renewed IPv6 mapping
# cannot be deleted any more (NOT_AUTHORIZED), see README.
#   bash tests/lab/test_pcp_ipv6.sh PATH/TO/portmap      (as root)
set -u -o pipefail
# shellcheck source-path=SCRIPTDIR source=testlib.sh
. "$(dirname "$0")/testlib.sh"
tl_enter_lab full "$@"
tl_require_portmap "$@"

round=0
for how in "--gateway $LAB_GW_LAN_IP6" "(default IPv6 route)"; do
  round=$((round + 1))
  port=$((9200 + round)) proto=tcp
  [ $round = 2 ] && proto=udp
  gwargs=()
  [ $round = 1 ] && gwargs=(--gateway "$LAB_GW_LAN_IP6")
  tl_add v6_$round "$port/$proto" --ipv6 --lifetime 120 "${gwargs[@]}"
  [ "$TL_RC" -eq 0 ] || tl_fail "add --ipv6 $how: exit $TL_RC, expected 0"
  out=$TL_TMP/v6_$round.out
  [ "$(tl_jsonl get "$out" mapped backend)" = pcp ] || tl_fail "add --ipv6: not mapped via pcp"
  ext=$(tl_jsonl get "$out" mapped external_address)
  eport=$(tl_jsonl get "$out" mapped external_port)
  nonce=$(tl_jsonl get "$out" mapped nonce)
  [ "$ext" = "$LAB_CLIENT_IP6" ] || tl_fail "add --ipv6: external address $ext, expected the client's $LAB_CLIENT_IP6 (a pinhole)"
  [ "$eport" = "$port" ] || tl_fail "add --ipv6: external port $eport, expected $port"
  for ((i = 0; i < 40; i++)); do tl_has_pinhole6 "$proto" "$port" && break; sleep 0.05; done
  tl_has_pinhole6 "$proto" "$port" || { bash "$TL_LAB_SH" rules --all >&2; tl_fail "no IPv6 pinhole for $proto $port in chain miniupnpd"; }
  tl_log "pinhole ($how): $(ip netns exec "$LAB_GW_NS" nft list chain inet filter miniupnpd | grep -F "dport $port " | sed 's/^[[:space:]]*//')"
  [ -z "$(tl_rules)" ] || tl_fail "an IPv6 mapping produced a DNAT rule: $(tl_rules)"
  tl_log "portmap delete $port/$proto --ipv6 --nonce $nonce ${gwargs[*]}"
  start=$EPOCHREALTIME
  tl_client 30 "$PORTMAP" delete "$port/$proto" --ipv6 --nonce "$nonce" "${gwargs[@]}" \
    >"$TL_TMP/del_$round.out" 2>"$TL_TMP/del_$round.err"
  rc=$?
  tl_log "delete exited $rc after $(tl_ms "$start") ms"
  tl_show "$TL_TMP/del_$round.out" "$TL_TMP/del_$round.err"
  [ $rc -eq 0 ] || tl_fail "delete --ipv6: exit $rc, expected 0"
  for ((i = 0; i < 40; i++)); do tl_has_pinhole6 "$proto" "$port" || break; sleep 0.05; done
  tl_has_pinhole6 "$proto" "$port" && tl_fail "the IPv6 pinhole for $proto $port is still there after delete"
  tl_log "pinhole gone"
done
tl_pass
