#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Lab test: `portmap add` creates a PCP mapping that the real router (miniupnpd) really
# installs, and `portmap delete --nonce` (RFC 6887 §15, checklist H6) really removes it.
#
#   bash tests/lab/test_pcp_add_delete.sh PATH/TO/portmap      (as root)
# Personality full: PCP + NAT-PMP + UPnP; PCP must win (it is the primary backend).
set -u -o pipefail
# shellcheck source-path=SCRIPTDIR source=testlib.sh
. "$(dirname "$0")/testlib.sh"
tl_enter_lab full "$@"

PORTMAP=${1:-}
if [ -z "$PORTMAP" ] || [ ! -x "$PORTMAP" ]; then
  tl_fail "usage: $0 PATH/TO/portmap (got '${PORTMAP}')"
fi

out=$TL_TMP/add.out err=$TL_TMP/add.err

# 1. add ---------------------------------------------------------------------------
tl_log "portmap add 8000/tcp --gateway $LAB_GW_LAN_IP --json"
start=$EPOCHREALTIME
tl_client 30 "$PORTMAP" add 8000/tcp --gateway "$LAB_GW_LAN_IP" --json >"$out" 2>"$err"
rc=$?
tl_log "add exited $rc after $(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }') s"
tl_show "$out" "$err"
[ $rc -eq 0 ] || tl_fail "portmap add exited $rc, expected 0"
tl_jsonl validate "$out" >&2 || tl_fail "portmap add --json output is not valid JSON lines"

[ "$(tl_jsonl count "$out" mapped)" -ge 1 ] || tl_fail "no \"mapped\" event in the output"
fields=$(tl_jsonl fields "$out" mapped backend protocol internal_port external_address \
  external_port lifetime nonce) || tl_fail "cannot read the mapped line"
j_backend='' j_protocol='' j_internal_port='' j_external_address='' j_external_port='' j_lifetime='' j_nonce=''
eval "$fields"
backend=$j_backend proto=$j_protocol iport=$j_internal_port eaddr=$j_external_address
eport=$j_external_port lifetime=$j_lifetime nonce=$j_nonce
tl_log "mapped: backend=$backend protocol=$proto $eaddr:$eport -> :$iport lifetime=$lifetime nonce=$nonce"

[ "${backend,,}" = pcp ] || tl_fail "backend is '$backend', expected pcp (the gateway speaks PCP)"
case ${proto,,} in tcp | 6) ;; *) tl_fail "protocol is '$proto', expected tcp" ;; esac
[ "$iport" = 8000 ] || tl_fail "internal_port is $iport, expected 8000"
[ "$eaddr" = "$LAB_WAN_IP" ] || [ "$eaddr" = "::ffff:$LAB_WAN_IP" ] ||
  tl_fail "external_address is $eaddr, the router's WAN address is $LAB_WAN_IP"
if ! [[ $eport =~ ^[0-9]+$ ]] || [ "$eport" -lt 1 ] || [ "$eport" -gt 65535 ]; then
  tl_fail "external_port '$eport' is not a port"
fi
if ! [[ $lifetime =~ ^[0-9]+$ ]] || [ "$lifetime" -eq 0 ]; then
  tl_fail "lifetime '$lifetime' is not > 0"
fi
[[ $nonce =~ ^[0-9a-fA-F]{24}$ ]] || tl_fail "nonce '$nonce' is not 24 hex digits"

# 2. the router really did it ---------------------------------------------------------
tl_wait_rule present tcp "$eport" 8000 2 ||
  { bash "$TL_LAB_SH" rules --all >&2; tl_fail "no DNAT rule for $eport -> $LAB_CLIENT_IP:8000 on the router"; }
tl_log "router rule: $(tl_rules | grep -F "dport $eport dnat")"

# And it forwards: a TCP connection from the internet side reaches the client.
tl_client 10 "$TL_PY" -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8000)); s.listen(1); s.settimeout(8)
c, _ = s.accept(); c.sendall(b"lab-ok\n"); c.close()
' &
listener=$!
tl_track "$listener"
got=
for ((i = 0; i < 30; i++)); do
  got=$(tl_net 3 "$TL_PY" -c '
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), 1); print(s.recv(16).decode().strip())
' "$LAB_WAN_IP" "$eport" 2>/dev/null) && [ "$got" = lab-ok ] && break
  sleep 0.1
done
wait "$listener" 2>/dev/null
[ "$got" = lab-ok ] || tl_fail "connecting from the internet to $LAB_WAN_IP:$eport did not reach the client"
tl_log "internet -> $LAB_WAN_IP:$eport reached the client"

# 3. delete with the mapping's nonce (H6) ----------------------------------------------
tl_log "portmap delete 8000/tcp --nonce $nonce --gateway $LAB_GW_LAN_IP"
tl_client 30 "$PORTMAP" delete 8000/tcp --nonce "$nonce" --gateway "$LAB_GW_LAN_IP" \
  >"$TL_TMP/del.out" 2>"$TL_TMP/del.err"
rc=$?
tl_show "$TL_TMP/del.out" "$TL_TMP/del.err"
[ $rc -eq 0 ] || tl_fail "portmap delete exited $rc, expected 0"
tl_wait_rule absent tcp "$eport" 8000 2 ||
  { tl_rules >&2; tl_fail "the DNAT rule for port $eport is still on the router 2 s after delete"; }
tl_log "rule gone"
tl_pass
