#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Lab test: PCP over IPv6 when the client's default route is the router's link-local
# address, as a router advertisement sets it up (default via fe80::1 dev eth0). Towards
# fe80::1 the kernel's source address is the client's own fe80:: address; a MAP sent
# from it would ask for a pinhole to an address nobody outside can reach. `portmap add
# --ipv6` without --gateway must instead map the client's global (here ULA) address:
# mapped via PCP, external address = the client's ULA, a pinhole for it in miniupnpd's
# chain, and none for any fe80:: address. Then `portmap delete --ipv6 --nonce N` removes it.
#   bash tests/lab/test_pcp_ipv6_linklocal.sh PATH/TO/portmap      (as root)
set -u -o pipefail
# shellcheck source-path=SCRIPTDIR source=testlib.sh
. "$(dirname "$0")/testlib.sh"
tl_enter_lab full "$@"
tl_require_portmap "$@"

# The router gets fe80::1 on its LAN side, the client fe80::2 (both without duplicate
# address detection, so usable at once); the client's IPv6 default route moves to
# fe80::1 (this lab is this test's own: lab.sh tears it down afterwards).
ip -n "$LAB_GW_NS" addr add fe80::1/64 dev lan0 nodad || tl_fail "cannot add fe80::1 to the router"
ip -n "$LAB_CLIENT_NS" addr add fe80::2/64 dev eth0 nodad || tl_fail "cannot add fe80::2 to the client"
ip -n "$LAB_CLIENT_NS" -6 route replace default via fe80::1 dev eth0 ||
  tl_fail "cannot point the client's default route at fe80::1"
tl_log "client IPv6 routes: $(ip -n "$LAB_CLIENT_NS" -6 route show default | tr '\n' ' ')"
src=$(ip -n "$LAB_CLIENT_NS" -6 route get fe80::1 dev eth0 | grep -o 'src [^ ]*' | cut -d' ' -f2)
tl_log "kernel source towards fe80::1: $src"
case $src in
  fe80:*) ;;
  *) tl_fail "setup: expected a link-local source towards fe80::1, got '$src'" ;;
esac

port=9231 proto=tcp
tl_add ll "$port/$proto" --ipv6 --lifetime 120
[ "$TL_RC" -eq 0 ] || tl_fail "add --ipv6 via a link-local router: exit $TL_RC, expected 0"
out=$TL_TMP/ll.out
[ "$(tl_jsonl get "$out" mapped backend)" = pcp ] || tl_fail "add --ipv6: not mapped via pcp"
ext=$(tl_jsonl get "$out" mapped external_address)
nonce=$(tl_jsonl get "$out" mapped nonce)
[ "$ext" = "$LAB_CLIENT_IP6" ] ||
  tl_fail "add --ipv6: external address $ext, expected the client's $LAB_CLIENT_IP6 (not its link-local $src)"
for ((i = 0; i < 40; i++)); do tl_has_pinhole6 "$proto" "$port" && break; sleep 0.05; done
tl_has_pinhole6 "$proto" "$port" || {
  bash "$TL_LAB_SH" rules --all >&2
  tl_fail "no IPv6 pinhole for $proto $port to $LAB_CLIENT_IP6"
}
ll_hex=$(tl__hex6 "$src")
if ip netns exec "$LAB_GW_NS" nft list chain inet filter miniupnpd | grep -qF "$ll_hex"; then
  tl_fail "a pinhole names the client's link-local address $src"
fi
tl_log "pinhole: $(ip netns exec "$LAB_GW_NS" nft list chain inet filter miniupnpd | grep -F "dport $port " | sed 's/^[[:space:]]*//')"

tl_client 30 "$PORTMAP" delete "$port/$proto" --ipv6 --nonce "$nonce" \
  >"$TL_TMP/del.out" 2>"$TL_TMP/del.err"
rc=$?
tl_show "$TL_TMP/del.out" "$TL_TMP/del.err"
[ $rc -eq 0 ] || tl_fail "delete --ipv6: exit $rc, expected 0"
for ((i = 0; i < 40; i++)); do tl_has_pinhole6 "$proto" "$port" || break; sleep 0.05; done
tl_has_pinhole6 "$proto" "$port" && tl_fail "the IPv6 pinhole for $proto $port is still there after delete"
tl_pass
