#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Lab test: the client's own LAN address changes under kept mappings (a DHCP server hands
# out another lease), with the same gateway. The mappings on the router point at the old
# address, which is gone; the client must notice and map again from the new address.
# Two `portmap keep` processes, one on PCP (auto) and one on UPnP (--backend upnp):
#  1. the client namespace is renumbered 192.168.77.2 -> .3 and nothing is said: the
#     client's own 30 s network check must find it; both mappings must be re-created
#     (a "changed" event) and the router must hold DNAT rules to .3;
#  2. renumbered .3 -> .4, then SIGUSR1 to both (portmap_network_changed()): re-created
#     towards .4 within 3 s;
#  3. SIGTERM: exit 0 and the rules to .4 gone.
# The two use port ranges far apart: miniupnpd lets a UPnP AddPortMapping from an address
# take over that same address's PCP mapping of the external port, and each move takes the
# next external port (the old address still holds the previous one). (The rules to .2 and .3 cannot be deleted
#     from .4 - the router takes deletes only from the mapping's own address - and lapse
#     with their lifetime.)
#   bash tests/lab/test_local_address_change.sh PATH/TO/portmap      (as root)
set -u -o pipefail
# shellcheck source-path=SCRIPTDIR source=testlib.sh
. "$(dirname "$0")/testlib.sh"
tl_enter_lab full "$@"
tl_require_portmap "$@"

AUTO_WINDOW=${AUTO_WINDOW:-40} # the check runs every 30 s from the client's start
PREFIX=${LAB_CLIENT_IP%.*}
cur=$LAB_CLIENT_IP

# renumber NEW: the new address first, then the old one goes (promoted, so the subnet
# route stays), and the default route is put back if it went with it.
ip netns exec "$LAB_CLIENT_NS" sysctl -qw net.ipv4.conf.all.promote_secondaries=1 || tl_fail "sysctl"
ip netns exec "$LAB_CLIENT_NS" sysctl -qw net.ipv4.conf.eth0.promote_secondaries=1 || tl_fail "sysctl"
renumber() {
  ip -n "$LAB_CLIENT_NS" addr add "$1/24" dev eth0 || tl_fail "cannot add $1"
  ip -n "$LAB_CLIENT_NS" addr del "$cur/24" dev eth0 || tl_fail "cannot delete $cur"
  ip -n "$LAB_CLIENT_NS" route replace default via "$LAB_GW_LAN_IP" || tl_fail "cannot restore the default route"
  tl_log "client renumbered $cur -> $1"
  cur=$1
}

# has_to ADDR:PORT: a DNAT rule to it, whatever the external port (the old address's
# mapping still holds the first one, so the router may give another).
has_to() { tl_rules | grep -qF "dnat ip to $1"; }

# wait_rules ADDR SECONDS: both mappings have a DNAT rule to ADDR (bounded poll)
wait_rules() {
  local n i
  n=$(awk -v s="$2" 'BEGIN { printf "%d", s * 10 }')
  for ((i = 0; i <= n; i++)); do
    has_to "$1:8000" && has_to "$1:9001" && return 0
    sleep 0.1
  done
  return 1
}

tl_keep_start pcp 8000/tcp --lifetime 120
pcp_pid=$TL_KEEP_PID pcp_st=$TL_KEEP_STAMPER
tl_keep_start upnp 9001/tcp --backend upnp --lifetime 120
up_pid=$TL_KEEP_PID up_st=$TL_KEEP_STAMPER
t_start=$EPOCHREALTIME
for n in pcp upnp; do
  tl_wait_count "$TL_TMP/$n.out" mapped 1 10 || { tl_show "$TL_TMP/$n.out" "$TL_TMP/$n.err"; tl_fail "$n: no mapped event within 10 s"; }
done
b=$(tl_jsonl get "$TL_TMP/pcp.out" mapped backend)
[ "$b" = pcp ] || tl_fail "the automatic backend is $b, not pcp"
wait_rules "$cur" 2 || { tl_rules >&2; tl_fail "no rules to $cur after mapping"; }

# 1. renumbered, nothing said
renumber "$PREFIX.3"
t_change=$EPOCHREALTIME
wait_rules "$cur" "$AUTO_WINDOW" || {
  tl_show "$TL_TMP/pcp.out" "$TL_TMP/pcp.err" "$TL_TMP/upnp.out" "$TL_TMP/upnp.err"
  tl_rules >&2
  tl_fail "no rules to $cur within $AUTO_WINDOW s of the renumbering"
}
tl_log "re-created towards $cur $(tl_since "$t_change") s after the renumbering ($(tl_since "$t_start") s after the clients started; the check runs every 30 s)"
for n in pcp upnp; do
  tl_wait_count "$TL_TMP/$n.out" changed 1 3 || { tl_show "$TL_TMP/$n.out" "$TL_TMP/$n.err"; tl_fail "$n: no changed event"; }
done

# 2. renumbered, and told
renumber "$PREFIX.4"
t_change=$EPOCHREALTIME
kill -USR1 "$pcp_pid" "$up_pid" || tl_fail "cannot signal the clients"
wait_rules "$cur" 3 || {
  tl_show "$TL_TMP/pcp.out" "$TL_TMP/pcp.err" "$TL_TMP/upnp.out" "$TL_TMP/upnp.err"
  tl_rules >&2
  tl_fail "no rules to $cur within 3 s of SIGUSR1"
}
tl_log "re-created towards $cur $(tl_since "$t_change") s after the renumbering + SIGUSR1"
for n in pcp upnp; do
  tl_wait_count "$TL_TMP/$n.out" changed 2 3 || { tl_show "$TL_TMP/$n.out" "$TL_TMP/$n.err"; tl_fail "$n: no second changed event"; }
  kill -0 "$([ $n = pcp ] && echo "$pcp_pid" || echo "$up_pid")" 2>/dev/null || tl_fail "$n: SIGUSR1 ended portmap keep"
done

# 3. clean exit
for pid in "$pcp_pid" "$up_pid"; do
  tl_stop "$pid" TERM 3 || tl_fail "portmap keep (pid $pid) still running 3 s after SIGTERM"
  [ "$TL_STOP_RC" -eq 0 ] || tl_fail "portmap keep (pid $pid) exited $TL_STOP_RC after SIGTERM"
done
tl_wait_stamper "$pcp_st"
tl_wait_stamper "$up_st"
tl_show "$TL_TMP/pcp.out" "$TL_TMP/pcp.err" "$TL_TMP/upnp.out" "$TL_TMP/upnp.err"
for n in pcp upnp; do
  tl_jsonl validate "$TL_TMP/$n.out" >&2 || tl_fail "$n: invalid --json output"
  grep -q '"failed"' "$TL_TMP/$n.out" && tl_fail "$n: a failed event"
done
for ((i = 0; i < 40; i++)); do
  has_to "$cur:8000" || has_to "$cur:9001" || break
  sleep 0.05
done
has_to "$cur:8000" && tl_fail "the PCP rule to $cur is still there after SIGTERM"
has_to "$cur:9001" && tl_fail "the UPnP rule to $cur is still there after SIGTERM"
tl_pass
