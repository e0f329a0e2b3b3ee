#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Lab test: what miniupnpd 2.3.1 does with PCP PEER, FILTER, PREFER_FAILURE and
# THIRD_PARTY (RFC 6887 §12, §13; checklist H8, I1, J1, J2; ROUTER-QUIRKS Q27), asked
# through `portmap add --peer/--filter/--prefer-failure/--third-party`, and what the
# router really did (nft). Personality full (no pcp_allow_thirdparty; the allow rule
# permits external ports 1024-65535 only).
#  1. PEER: mapped; an SNAT rule in postrouting_miniupnpd for client:9000 <-> peer:4433
#     to WAN:9150. Whether that rule rewrites the peer connection is printed (2.3.1's
#     rule has source and destination swapped, so it never matches: see README).
#  2. FILTER (two of them): accepted, mapped, DNAT rule. Whether the router enforces the
#     filter (a connection from an address outside it) is printed, not asserted.
#  3. PREFER_FAILURE with a free external port: that exact port is granted.
#  4. PREFER_FAILURE with a port the router's policy forbids (80): failed,
#     CANNOT_PROVIDE_EXTERNAL, exit 1, no rule, one clear line; without PREFER_FAILURE
#     the same request gets another port (>= 1024).
#  5. PREFER_FAILURE with a port another mapping holds: RFC 6887 §13.2 says fail;
#     miniupnpd 2.3.1 (Debian, built with CHECK_PORTINUSE) grants another port. Either
#     is accepted, but what portmap reports must be what the router did.
#  6. THIRD_PARTY: refused with UNSUPP_OPTION, exit 1, at once (no blind retries), no
#     rule, a line that says THIRD_PARTY is not permitted; THIRD_PARTY = our own address:
#     exit 2 before anything is sent.
#   bash tests/lab/test_pcp_options.sh PATH/TO/portmap      (as root)
set -u -o pipefail
# shellcheck source-path=SCRIPTDIR source=testlib.sh
. "$(dirname "$0")/testlib.sh"
tl_enter_lab full "$@"
tl_require_portmap "$@"

hex4() { local a b c d; IFS=. read -r a b c d <<<"$1"; printf "0x%x" $(((a << 24) | (b << 16) | (c << 8) | d)); }
mapped_field() { tl_jsonl get "$TL_TMP/$1.out" mapped "$2"; }
failed_field() { tl_jsonl get "$TL_TMP/$1.out" failed "$2"; }
notes=()

# 1. PEER ----------------------------------------------------------------------------
tl_add peer 9000/tcp --peer "$LAB_WAN_PEER_IP:4433" --external 9150 --lifetime 120
[ "$TL_RC" -eq 0 ] || tl_fail "PEER: exit $TL_RC, expected 0"
[ "$(mapped_field peer backend)" = pcp ] || tl_fail "PEER: not mapped via pcp"
peer_eport=$(mapped_field peer external_port)
snat=$(ip netns exec "$LAB_GW_NS" nft list chain inet filter postrouting_miniupnpd | grep -F snat | sed 's/^[[:space:]]*//')
tl_log "PEER: postrouting_miniupnpd: ${snat:-<empty>}"
line=$(grep -F "snat ip to $LAB_WAN_IP:$peer_eport" <<<"$snat" | grep -F "$(hex4 "$LAB_WAN_PEER_IP")" |
  grep -F "$(hex4 "$LAB_CLIENT_IP")" | grep -F 9000 | grep -F 4433)
[ -n "$line" ] || { bash "$TL_LAB_SH" rules --all >&2; tl_fail "PEER: no SNAT rule client:9000 <-> $LAB_WAN_PEER_IP:4433 -> $LAB_WAN_IP:$peer_eport"; }
# Does the rule rewrite a real connection from client:9000 to the peer?
tl_net 6 "$TL_PY" -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 4433)); s.listen(1); s.settimeout(5)
c, a = s.accept(); print("%s:%d" % a)' >"$TL_TMP/peer.seen" 2>/dev/null &
listener=$!
tl_track "$listener"
for ((i = 0; i < 20; i++)); do
  ip netns exec "$LAB_NET_NS" ss -Hltn 'sport = :4433' | grep -q . && break
  sleep 0.05
done
tl_client 5 "$TL_PY" -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 9000)); s.settimeout(3); s.connect((sys.argv[1], 4433))' "$LAB_WAN_PEER_IP" ||
  tl_log "PEER: the test connection to the peer failed"
wait "$listener" 2>/dev/null
seen=$(cat "$TL_TMP/peer.seen")
if [ "$seen" = "$LAB_WAN_IP:$peer_eport" ]; then
  notes+=("PEER: the peer saw $seen: the SNAT rule works")
else
  notes+=("PEER: the peer saw ${seen:-nothing}, not $LAB_WAN_IP:$peer_eport: miniupnpd's SNAT rule does not match the connection (known 2.3.1 bug)")
fi

# 2. FILTER --------------------------------------------------------------------------
tl_add filter 9001/tcp --filter "$LAB_WAN_PEER_IP/32:4433" --filter 11.22.44.0/24 --lifetime 120
[ "$TL_RC" -eq 0 ] || tl_fail "FILTER: exit $TL_RC, expected 0 (miniupnpd accepts FILTER)"
[ "$(mapped_field filter backend)" = pcp ] || tl_fail "FILTER: not mapped via pcp"
f_eport=$(mapped_field filter external_port)
tl_wait_rule present tcp "$f_eport" 9001 2 || tl_fail "FILTER: no DNAT rule for $f_eport"
tl_log "FILTER: router rules: $(tl_our_rules | grep -F "dport $f_eport" | tr '\n' '|')"
# A connection from the peer's address but another source port: outside both filters.
tl_client 6 "$TL_PY" -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 9001)); s.listen(1); s.settimeout(3)
try:
    c, a = s.accept(); print("reached")
except OSError:
    print("blocked")' >"$TL_TMP/filter.seen" 2>/dev/null &
listener=$!
tl_track "$listener"
for ((i = 0; i < 20; i++)); do
  ip netns exec "$LAB_CLIENT_NS" ss -Hltn 'sport = :9001' | grep -q . && break
  sleep 0.05
done
tl_net 3 "$TL_PY" -c '
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), 2)' "$LAB_WAN_IP" "$f_eport" 2>/dev/null
wait "$listener" 2>/dev/null
if [ "$(cat "$TL_TMP/filter.seen")" = reached ]; then
  notes+=("FILTER: accepted but not enforced: a connection from outside the filters reached the client")
else
  notes+=("FILTER: enforced: a connection from outside the filters was blocked")
fi

# 3. PREFER_FAILURE, free port ---------------------------------------------------------
tl_add pf_free 9002/tcp --external 9502 --prefer-failure --lifetime 120
[ "$TL_RC" -eq 0 ] || tl_fail "PREFER_FAILURE with a free port: exit $TL_RC, expected 0"
[ "$(mapped_field pf_free external_port)" = 9502 ] || tl_fail "PREFER_FAILURE: granted port $(mapped_field pf_free external_port), asked 9502"
tl_wait_rule present tcp 9502 9002 2 || tl_fail "PREFER_FAILURE: no DNAT rule 9502 -> 9002"

# 4. PREFER_FAILURE, port forbidden by the router's policy ---------------------------
tl_add pf_policy 9004/tcp --external 80 --prefer-failure --lifetime 120
[ "$TL_RC" -eq 1 ] || tl_fail "PREFER_FAILURE with a forbidden port: exit $TL_RC, expected 1"
[ "$(failed_field pf_policy gateway_result_name)" = CANNOT_PROVIDE_EXTERNAL ] ||
  tl_fail "PREFER_FAILURE: gateway_result_name '$(failed_field pf_policy gateway_result_name)', expected CANNOT_PROVIDE_EXTERNAL"
if [ "$(wc -l <"$TL_TMP/pf_policy.err")" -ne 1 ] || ! grep -q 'CANNOT_PROVIDE_EXTERNAL' "$TL_TMP/pf_policy.err" ||
  ! grep -q -- '--prefer-failure' "$TL_TMP/pf_policy.err"; then
  tl_fail "PREFER_FAILURE: stderr is not one line naming CANNOT_PROVIDE_EXTERNAL and --prefer-failure"
fi
[ "$TL_MS" -lt 2000 ] || tl_fail "PREFER_FAILURE: the refusal took $TL_MS ms (retried?)"
tl_rules | grep -qF "$LAB_CLIENT_IP:9004" && tl_fail "PREFER_FAILURE: a rule for :9004 exists after CANNOT_PROVIDE_EXTERNAL"
pf_ms=$TL_MS
tl_add pf_policy_no 9005/tcp --external 80 --lifetime 120
[ "$TL_RC" -eq 0 ] || tl_fail "port 80 without PREFER_FAILURE: exit $TL_RC, expected 0 (another port)"
alt=$(mapped_field pf_policy_no external_port)
[ "$alt" -ge 1024 ] || tl_fail "port 80 without PREFER_FAILURE: granted $alt"
tl_wait_rule present tcp "$alt" 9005 2 || tl_fail "no DNAT rule $alt -> 9005"
notes+=("PREFER_FAILURE: forbidden port 80 -> CANNOT_PROVIDE_EXTERNAL in $pf_ms ms; without it the router gave port $alt")

# 5. PREFER_FAILURE, port held by another mapping (9502, from 3.) ----------------------
tl_add pf_taken 9003/tcp --external 9502 --prefer-failure --lifetime 120
if [ "$TL_RC" -eq 1 ]; then
  [ "$(failed_field pf_taken gateway_result_name)" = CANNOT_PROVIDE_EXTERNAL ] ||
    tl_fail "PREFER_FAILURE with a taken port: failed with '$(failed_field pf_taken gateway_result_name)'"
  tl_rules | grep -qF "$LAB_CLIENT_IP:9003" && tl_fail "a rule for :9003 exists after CANNOT_PROVIDE_EXTERNAL"
  notes+=("PREFER_FAILURE with a taken port: CANNOT_PROVIDE_EXTERNAL (as RFC 6887 §13.2 says)")
elif [ "$TL_RC" -eq 0 ]; then
  got=$(mapped_field pf_taken external_port)
  [ "$got" != 9502 ] || tl_fail "PREFER_FAILURE with a taken port: portmap reports 9502, which mapping 3 holds"
  tl_wait_rule present tcp "$got" 9003 2 || tl_fail "portmap reports port $got for :9003, but the router has no such rule"
  tl_has_rule tcp 9502 9002 || tl_fail "mapping 3 (9502 -> 9002) was taken over"
  notes+=("PREFER_FAILURE with a taken port: miniupnpd granted port $got instead of failing (2.3.1 bug, CHECK_PORTINUSE path); portmap reported $got truthfully")
else
  tl_fail "PREFER_FAILURE with a taken port: exit $TL_RC"
fi

# 6. THIRD_PARTY -----------------------------------------------------------------------
tl_add tp 9006/tcp --third-party "${LAB_CLIENT_IP%.*}.5" --lifetime 120
[ "$TL_RC" -eq 1 ] || tl_fail "THIRD_PARTY: exit $TL_RC, expected 1 (refused)"
[ "$(failed_field tp gateway_result_name)" = UNSUPP_OPTION ] ||
  tl_fail "THIRD_PARTY: gateway_result_name '$(failed_field tp gateway_result_name)', expected UNSUPP_OPTION"
if [ "$(wc -l <"$TL_TMP/tp.err")" -ne 1 ] || ! grep -q 'UNSUPP_OPTION' "$TL_TMP/tp.err" ||
  ! grep -q 'THIRD_PARTY is not permitted' "$TL_TMP/tp.err"; then
  tl_fail "THIRD_PARTY: stderr is not one line saying UNSUPP_OPTION and that THIRD_PARTY is not permitted"
fi
[ "$TL_MS" -lt 2000 ] || tl_fail "THIRD_PARTY: the refusal took $TL_MS ms (retried blindly?)"
tl_rules | grep -qF ":9006" && tl_fail "THIRD_PARTY: a rule for :9006 exists after the refusal"
notes+=("THIRD_PARTY: UNSUPP_OPTION in $TL_MS ms: $(cat "$TL_TMP/tp.err")")
tl_add tp_self 9007/tcp --third-party "$LAB_CLIENT_IP"
[ "$TL_RC" -eq 2 ] || tl_fail "THIRD_PARTY = own address: exit $TL_RC, expected 2"
grep -q "own address" "$TL_TMP/tp_self.err" || tl_fail "THIRD_PARTY = own address: no clear message"
[ -s "$TL_TMP/tp_self.out" ] && ! grep -q '"failed"' "$TL_TMP/tp_self.out" && tl_fail "THIRD_PARTY = own address: unexpected output"

for n in "${notes[@]}"; do tl_log "$n"; done
tl_pass
