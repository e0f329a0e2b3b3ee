#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# lab_run works in a subshell on purpose: its LAB_* state dies with it.
# shellcheck disable=SC2030,SC2031
# lab.sh: a real gateway on one machine. miniupnpd (Debian miniupnpd-nftables)
# runs in a "gateway" network namespace between a "client" namespace (LAN) and an
# "internet" namespace (WAN peer). No namespace is linked to the host's network:
# every packet stays inside namespaces this script created. See README.md, LAB.md.
#
# As a command:
#   lab.sh up PERSONALITY        bring a lab up; prints "export LAB_STATE=DIR"
#   lab.sh down                  tear down the lab in $LAB_STATE
#   lab.sh exec CMD...           run CMD in the client namespace
#   lab.sh gw CMD...             run CMD in the gateway namespace
#   lab.sh net CMD...            run CMD in the internet namespace
#   lab.sh rules [--all]         DNAT rules of inet filter prerouting_miniupnpd
#   lab.sh reboot                "router reboot": stop, forget leases, flush, start
#   lab.sh daemon stop|start     stop the router's port-mapping daemon (nothing answers:
#                                ICMP port unreachable, no SSDP), or start it again
#   lab.sh wan-address ADDR [--restart|--quiet]  change the WAN address (/24); then
#                                SIGUSR1 (default), restart miniupnpd, or nothing
#   lab.sh env                   print the LAB_* variables of $LAB_STATE
#   lab.sh log                   print miniupnpd's log
#   lab.sh run PERSONALITY -- CMD...  up, run CMD in the host ns with LAB_* exported,
#                                tear down whatever happens, return CMD's status
#   lab.sh personalities         list personalities
# Exit 77 (and a loud "SKIPPED: reason") when the lab cannot exist here.
#
# As a library (source it): the lab_* functions below; they never exit the caller.

LAB_PERSONALITIES="full upnp pcp pcp-drop none lossy short thirdparty natpmp"

# Fixed topology. The WAN prefix must not be private/reserved or miniupnpd refuses to
# forward; 11.0.0.0/8 is neither in its tables, and it exists only inside the lab.
LAB_LAN_PREFIX=192.168.77
LAB_WAN_PREFIX=11.22.33
LAB_LAN6_PREFIX=fd70:6d61:7000:77
LAB_WAN6_PREFIX=2001:db8:77:1
LAB_HTTP_PORT=5000
LAB_UUID=3f6ad3c4-5a6d-4b1e-9c2a-706f72746d61

# Bounded waits: tries x 0.1 s.
LAB_WAIT_TRIES=${LAB_WAIT_TRIES:-100}

LAB_SH_PATH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")

lab__say() { printf 'lab: %s\n' "$*" >&2; }
lab__die() { printf 'lab: error: %s\n' "$*" >&2; return 1; }
lab__skip() { printf '\n*** SKIPPED: %s ***\n\n' "$*" >&2; return 77; }

# ---------------------------------------------------------------- preflight

# Install what the lab needs when it is missing; apt-get update only if a plain install fails.
lab_ensure_packages() {
  local missing=()
  command -v ip >/dev/null 2>&1 || missing+=(iproute2)
  command -v ss >/dev/null 2>&1 || missing+=(iproute2)
  command -v nft >/dev/null 2>&1 || missing+=(nftables)
  if ! command -v miniupnpd >/dev/null 2>&1 ||
    ! miniupnpd --version 2>&1 | grep -q nftables; then
    missing+=(miniupnpd-nftables)
  fi
  command -v upnpc >/dev/null 2>&1 || missing+=(miniupnpc)
  command -v natpmpc >/dev/null 2>&1 || missing+=(natpmpc)
  command -v python3 >/dev/null 2>&1 || missing+=(python3)
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 || { lab__skip "missing ${missing[*]} and no apt-get"; return; }
  lab__say "installing ${missing[*]}"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get update >/dev/null 2>&1
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >/dev/null 2>&1; then
      lab__skip "cannot install ${missing[*]}"
      return
    fi
  fi
  return 0
}

# 0 if the lab can run here, 77 (message printed) if not.
lab_preflight() {
  [ "${LAB__PREFLIGHT_OK:-}" = 1 ] && return 0
  [ "$(id -u)" -eq 0 ] || { lab__skip "the lab needs root (network namespaces)"; return; }
  lab_ensure_packages || return
  local probe="pm-$$-probe$RANDOM"
  if ! ip netns add "$probe" 2>/dev/null; then
    lab__skip "cannot create network namespaces here"
    return
  fi
  if ! ip -n "$probe" link add a0 type veth peer name b0 2>/dev/null; then
    ip netns del "$probe" 2>/dev/null
    lab__skip "cannot create veth pairs here"
    return
  fi
  ip netns del "$probe" 2>/dev/null
  LAB__PREFLIGHT_OK=1
  return 0
}

# ---------------------------------------------------------------- state

# Append/overwrite KEY=VALUE in $LAB_STATE/env (a file bash can source).
lab__set() {
  local key=$1 val=$2 f=$LAB_STATE/env
  printf -v "$key" '%s' "$val"
  if [ -f "$f" ]; then
    grep -v "^$key=" "$f" >"$f.tmp" || true
    mv "$f.tmp" "$f"
  fi
  printf '%s=%q\n' "$key" "$val" >>"$f"
}

lab_load() {
  [ -n "${LAB_STATE:-}" ] || { lab__die "LAB_STATE is not set (use: eval \"\$(lab.sh up full)\")"; return; }
  [ -f "$LAB_STATE/env" ] || { lab__die "no lab state in $LAB_STATE"; return; }
  # shellcheck disable=SC1091
  . "$LAB_STATE/env"
}

# ---------------------------------------------------------------- miniupnpd

lab__write_conf() {
  local p=$1 conf=$LAB_STATE/miniupnpd.conf natpmp=yes upnp=yes
  case $p in
    upnp) natpmp=no ;;
    pcp) upnp=no ;;
  esac
  {
    echo "# written by lab.sh, personality $p"
    echo "ext_ifname=wan0"
    echo "ext_ifname6=wan0"
    echo "listening_ip=lan0"
    echo "http_port=$LAB_HTTP_PORT"
    echo "enable_natpmp=$natpmp"
    echo "enable_upnp=$upnp"
    echo "secure_mode=yes"
    echo "system_uptime=no"
    echo "lease_file=$LAB_STATE/miniupnpd.leases"
    echo "lease_file6=$LAB_STATE/miniupnpd.leases6"
    echo "minissdpdsocket=$LAB_STATE/minissdpd.sock"
    echo "uuid=$LAB_UUID"
    echo "friendly_name=libportmap lab ($p)"
    echo "notify_interval=60"
    echo "clean_ruleset_interval=600"
    case $p in short | lossy | thirdparty) echo "min_lifetime=2" ;; esac
    [ "$p" = thirdparty ] && echo "pcp_allow_thirdparty=yes"
    echo "allow 1024-65535 $LAB_LAN_PREFIX.0/24 1024-65535"
    echo "deny 0-65535 0.0.0.0/0 0-65535"
  } >"$conf"
}

# Is PID our miniupnpd (not a recycled PID)? MARK: a word of its command line
# (default our miniupnpd.conf; natpmp_router's is its state file).
lab__is_ours() {
  local pid=$1 mark=${2:-$LAB_STATE/miniupnpd.conf}
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$mark"
}

# Personality natpmp: no miniupnpd; the project's fake NAT-PMP server
# (tests/lab/natpmp_router.c, path in $NATPMP_ROUTER) serves LAN:5351 instead and answers
# PCP with UNSUPP_VERSION. Its live mappings are in $LAB_NATPMP_STATE (rewritten at
# least every 0.2 s: "proto internal_port external_port lifetime" per line). It creates
# no nft rules and nothing listens on 1900/5000.
lab__start_natpmp_router() {
  local log=$LAB_STATE/natpmp_router.log i
  local max=${LAB_NATPMP_MAX_SECONDS:-$((${LAB_RUN_TIMEOUT:-300} + 30))}
  lab__set LAB_NATPMP_STATE "$LAB_STATE/natpmp_router.state"
  rm -f -- "$LAB_NATPMP_STATE"
  printf '=== start %s\n' "$(date '+%F %T.%N')" >>"$log"
  ip netns exec "$LAB_GW_NS" "$NATPMP_ROUTER" "$LAB_GW_LAN_IP" "$LAB_WAN_IP" \
    "$LAB_NATPMP_STATE" "$max" </dev/null >>"$log" 2>&1 &
  lab__set LAB_NATPMP_ROUTER_PID $!
  for ((i = 0; i < LAB_WAIT_TRIES; i++)); do
    if ! kill -0 "$LAB_NATPMP_ROUTER_PID" 2>/dev/null; then
      lab__die "natpmp_router exited at start; its log:"
      tail -n 30 "$log" >&2
      lab__set LAB_NATPMP_ROUTER_PID ""
      return 1
    fi
    if ip netns exec "$LAB_GW_NS" ss -Hlun 'sport = :5351' 2>/dev/null |
      grep -qF "$LAB_GW_LAN_IP:5351"; then
      # No UPnP on this router: nothing may listen on SSDP or the IGD's HTTP port.
      if ip netns exec "$LAB_GW_NS" ss -Hlun 'sport = :1900' 2>/dev/null | grep -q . ||
        ip netns exec "$LAB_GW_NS" ss -Hltun "sport = :$LAB_HTTP_PORT" 2>/dev/null | grep -q .; then
        lab__die "personality natpmp: something listens on 1900 or $LAB_HTTP_PORT in the gateway"
        return 1
      fi
      return 0
    fi
    sleep 0.1
  done
  lab__die "natpmp_router not listening after $LAB_WAIT_TRIES tries"
  return 1
}

lab__stop_natpmp_router() {
  local pid=${LAB_NATPMP_ROUTER_PID:-} i
  [ -n "$pid" ] || return 0
  if lab__is_ours "$pid" "$LAB_NATPMP_STATE"; then
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 30; i++)); do
      lab__is_ours "$pid" "$LAB_NATPMP_STATE" || break
      sleep 0.1
    done
    lab__is_ours "$pid" "$LAB_NATPMP_STATE" && kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null
  lab__set LAB_NATPMP_ROUTER_PID ""
  return 0
}

lab__start_miniupnpd() {
  local p=${LAB_PERSONALITY}
  [ "$p" = none ] && return 0
  [ "$p" = natpmp ] && { lab__start_natpmp_router; return; }
  local log=$LAB_STATE/miniupnpd.log
  printf '=== start %s\n' "$(date '+%F %T.%N')" >>"$log"
  # ip netns exec, unshare and sh all exec: $! is miniupnpd's PID. Background jobs of a
  # non-interactive shell ignore SIGINT; teardown stops it by this PID.
  # miniupnpd -d logs at debug level, to stderr (our log) and through syslog(3) with
  # LOG_CONS: with no syslog daemon listening on /dev/log (none here, none wanted) glibc
  # writes every line to /dev/console as well, about 0.7 ms a line on this machine, which
  # made miniupnpd spend ~115 ms of one `portmap add` on 170 console writes and answer
  # HTTP/SOAP late. A router logs to its syslogd instead, so in miniupnpd's own mount
  # namespace (private: nothing propagates to the host) /dev/console is /dev/null.
  ip netns exec "$LAB_GW_NS" unshare --mount --propagation private sh -c \
    'mount --bind /dev/null /dev/console 2>/dev/null ||
       echo "lab: note: could not hide /dev/console; miniupnpd will be slower" >&2
     exec "$@"' sh miniupnpd -d -f "$LAB_STATE/miniupnpd.conf" \
    -P "$LAB_STATE/miniupnpd.pid" </dev/null >>"$log" 2>&1 &
  lab__set LAB_MINIUPNPD_PID $!
  lab__set LAB_MINIUPNPD_STARTED "$(date +%s.%N)"
  local i want_http=1 want_pcp=1 ok
  [ "$p" = pcp ] && want_http=0
  [ "$p" = upnp ] && want_pcp=0
  for ((i = 0; i < LAB_WAIT_TRIES; i++)); do
    if ! kill -0 "$LAB_MINIUPNPD_PID" 2>/dev/null; then
      lab__die "miniupnpd exited at start; its log:"
      tail -n 30 "$log" >&2
      lab__set LAB_MINIUPNPD_PID ""
      return 1
    fi
    ok=1
    if [ $want_pcp = 1 ] && ! ip netns exec "$LAB_GW_NS" ss -Hlun 'sport = :5351' 2>/dev/null |
      grep -qF "$LAB_GW_LAN_IP:5351"; then
      ok=0
    fi
    if [ $want_http = 1 ] && ! ip netns exec "$LAB_GW_NS" ss -Hltn "sport = :$LAB_HTTP_PORT" 2>/dev/null |
      grep -q .; then
      ok=0
    fi
    [ $ok = 1 ] && return 0
    sleep 0.1
  done
  lab__die "miniupnpd not listening after $LAB_WAIT_TRIES tries"
  return 1
}

lab__stop_miniupnpd() {
  local pid=${LAB_MINIUPNPD_PID:-} i
  lab__stop_natpmp_router
  [ -n "$pid" ] || return 0
  if lab__is_ours "$pid"; then
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 30; i++)); do
      lab__is_ours "$pid" || break
      sleep 0.1
    done
    lab__is_ours "$pid" && kill -KILL "$pid" 2>/dev/null
  fi
  # Reap it when it is our child (lab.sh run); harmless otherwise.
  wait "$pid" 2>/dev/null
  lab__set LAB_MINIUPNPD_PID ""
  return 0
}

lab__flush_chains() {
  local c
  for c in miniupnpd prerouting_miniupnpd postrouting_miniupnpd; do
    ip netns exec "$LAB_GW_NS" nft flush chain inet filter "$c" || return 1
  done
}

# ---------------------------------------------------------------- topology

lab__nft_ruleset() {
  cat <<EOF
table inet filter {
  chain input {
    type filter hook input priority 0; policy accept;
  }
  chain forward {
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    jump miniupnpd
    iifname "lan0" oifname "wan0" accept
  }
  chain miniupnpd {
  }
  chain prerouting {
    type nat hook prerouting priority -100; policy accept;
    jump prerouting_miniupnpd
  }
  chain postrouting {
    type nat hook postrouting priority 100; policy accept;
    jump postrouting_miniupnpd
    oifname "wan0" ip saddr $LAB_LAN_PREFIX.0/24 masquerade
  }
  chain prerouting_miniupnpd {
  }
  chain postrouting_miniupnpd {
  }
}
EOF
}

lab__ns() { ip netns exec "$@"; }

# lab_up PERSONALITY: needs LAB_STATE (an existing directory) or creates one.
lab_up() {
  local p=${1:-}
  case " $LAB_PERSONALITIES " in
    *" $p "*) ;;
    *) lab__die "unknown personality '$p' (one of: $LAB_PERSONALITIES)"; return 2 ;;
  esac
  lab_preflight || return
  if [ "$p" = natpmp ] && { [ -z "${NATPMP_ROUTER:-}" ] || [ ! -x "$NATPMP_ROUTER" ]; }; then
    lab__skip "personality natpmp needs NATPMP_ROUTER=PATH/TO/natpmp_router (got '${NATPMP_ROUTER:-}')"
    return
  fi
  local own=0
  if [ -z "${LAB_STATE:-}" ]; then
    LAB_STATE=$(mktemp -d "${TMPDIR:-/tmp}/pm-lab.XXXXXX") || return 1
    own=1
  fi
  mkdir -p "$LAB_STATE" || return 1
  if [ -f "$LAB_STATE/env" ] && grep -q '^LAB_UP=1' "$LAB_STATE/env"; then
    lab__die "a lab is already up in $LAB_STATE"
    return 1
  fi
  : >"$LAB_STATE/env"
  export LAB_STATE
  local base="pm-$$"
  while ip netns list | grep -q "^$base-"; do base="pm-$$-$RANDOM"; done
  lab__set LAB_OWN_STATE $own
  lab__set LAB_PERSONALITY "$p"
  lab__set LAB_CLIENT_NS "$base-cli"
  lab__set LAB_GW_NS "$base-gw"
  lab__set LAB_NET_NS "$base-net"
  lab__set LAB_CLIENT_IP "$LAB_LAN_PREFIX.2"
  lab__set LAB_GW_LAN_IP "$LAB_LAN_PREFIX.1"
  lab__set LAB_WAN_IP "$LAB_WAN_PREFIX.1"
  lab__set LAB_WAN_PEER_IP "$LAB_WAN_PREFIX.254"
  lab__set LAB_CLIENT_IP6 "$LAB_LAN6_PREFIX::2"
  lab__set LAB_GW_LAN_IP6 "$LAB_LAN6_PREFIX::1"
  lab__set LAB_WAN_IP6 "$LAB_WAN6_PREFIX::1"
  lab__set LAB_HTTP_PORT "$LAB_HTTP_PORT"
  lab__set LAB_SH "$LAB_SH_PATH"
  lab__set LAB_MINIUPNPD_PID ""
  lab__set LAB_NATPMP_ROUTER_PID ""
  lab__set LAB_NATPMP_STATE ""
  if ! lab__up_topology; then
    lab__die "lab setup failed; tearing down"
    lab_down
    return 1
  fi
  if ! lab__start_miniupnpd; then
    lab_down
    return 1
  fi
  lab__set LAB_UP 1
  lab__say "up: personality $p; client $LAB_CLIENT_NS ($LAB_CLIENT_IP), gateway $LAB_GW_NS" \
    "(LAN $LAB_GW_LAN_IP, WAN $LAB_WAN_IP), internet $LAB_NET_NS ($LAB_WAN_PEER_IP)${LAB_MINIUPNPD_PID:+, miniupnpd pid $LAB_MINIUPNPD_PID}${LAB_NATPMP_ROUTER_PID:+, natpmp_router pid $LAB_NATPMP_ROUTER_PID}"
  return 0
}

lab__up_topology() {
  local cli=$LAB_CLIENT_NS gw=$LAB_GW_NS net=$LAB_NET_NS n
  for n in "$cli" "$gw" "$net"; do
    ip netns add "$n" || return 1
    lab__set LAB_NS_CREATED "${LAB_NS_CREATED:-} $n"
    ip -n "$n" link set lo up || return 1
  done
  # The veth pairs are created inside the gateway namespace with their peer end
  # placed straight into the other namespace: nothing ever appears in the host's.
  ip -n "$gw" link add lan0 type veth peer name eth0 netns "$cli" || return 1
  ip -n "$gw" link add wan0 type veth peer name eth0 netns "$net" || return 1
  lab__ns "$gw" sysctl -qw net.ipv4.ip_forward=1 || return 1
  lab__ns "$gw" sysctl -qw net.ipv6.conf.all.forwarding=1 || return 1
  # wan-address adds the new address before deleting the old one.
  lab__ns "$gw" sysctl -qw net.ipv4.conf.all.promote_secondaries=1 || return 1
  lab__ns "$gw" sysctl -qw net.ipv4.conf.wan0.promote_secondaries=1 || return 1
  for n in "$cli" "$net"; do
    lab__ns "$n" sysctl -qw net.ipv6.conf.all.accept_ra=0 2>/dev/null
  done
  ip -n "$gw" addr add "$LAB_GW_LAN_IP/24" dev lan0 || return 1
  ip -n "$gw" addr add "$LAB_GW_LAN_IP6/64" dev lan0 nodad || return 1
  ip -n "$gw" addr add "$LAB_WAN_IP/24" dev wan0 || return 1
  ip -n "$gw" addr add "$LAB_WAN_IP6/64" dev wan0 nodad || return 1
  ip -n "$cli" addr add "$LAB_CLIENT_IP/24" dev eth0 || return 1
  ip -n "$cli" addr add "$LAB_CLIENT_IP6/64" dev eth0 nodad || return 1
  ip -n "$net" addr add "$LAB_WAN_PEER_IP/24" dev eth0 || return 1
  ip -n "$net" addr add "$LAB_WAN6_PREFIX::254/64" dev eth0 nodad || return 1
  ip -n "$cli" link set eth0 up || return 1
  ip -n "$net" link set eth0 up || return 1
  ip -n "$gw" link set lan0 up || return 1
  ip -n "$gw" link set wan0 up || return 1
  ip -n "$cli" route add default via "$LAB_GW_LAN_IP" || return 1
  ip -n "$cli" -6 route add default via "$LAB_GW_LAN_IP6" || return 1
  ip -n "$gw" route add default via "$LAB_WAN_PEER_IP" || return 1
  ip -n "$gw" -6 route add default via "$LAB_WAN6_PREFIX::254" || return 1
  lab__nft_ruleset | lab__ns "$gw" nft -f - || return 1
  case $LAB_PERSONALITY in
    pcp-drop) lab__ns "$gw" nft add rule inet filter input udp dport 5351 drop || return 1 ;;
    lossy) lab__ns "$gw" nft add rule inet filter input udp dport 5351 numgen random mod 100 '<' 30 drop || return 1 ;;
    # miniupnpd 2.3.1 keeps answering PCP on its IPv6 socket with enable_natpmp=no:
    # make "UPnP only" true for IPv6 too (ICMPv6 port unreachable, like no server).
    upnp) lab__ns "$gw" nft add rule inet filter input meta nfproto ipv6 udp dport 5351 reject || return 1 ;;
  esac
  case $LAB_PERSONALITY in none | natpmp) ;; *) lab__write_conf "$LAB_PERSONALITY" ;; esac
}

# Tear down everything recorded in $LAB_STATE. Safe to call twice and on partial labs.
lab_down() {
  lab_load || return 1
  lab__stop_miniupnpd
  local n
  for n in ${LAB_NS_CREATED:-}; do
    case $n in pm-*) ip netns del "$n" 2>/dev/null ;; esac
  done
  lab__set LAB_NS_CREATED ""
  lab__set LAB_UP 0
  if [ "${LAB_OWN_STATE:-0}" = 1 ]; then
    rm -rf -- "$LAB_STATE"
  else
    rm -f -- "$LAB_STATE"/env "$LAB_STATE"/miniupnpd.* "$LAB_STATE"/natpmp_router.* "$LAB_STATE"/env.tmp
  fi
  lab__say "down"
  return 0
}

# ---------------------------------------------------------------- operations

lab_exec() { lab_load || return; ip netns exec "$LAB_CLIENT_NS" "$@"; }
lab_gw() { lab_load || return; ip netns exec "$LAB_GW_NS" "$@"; }
lab_net() { lab_load || return; ip netns exec "$LAB_NET_NS" "$@"; }

# The gateway's port mappings as nft rules (one per line, handles stripped).
lab_rules() {
  lab_load || return
  if [ "${1:-}" = --all ]; then
    local c
    for c in miniupnpd prerouting_miniupnpd postrouting_miniupnpd; do
      ip netns exec "$LAB_GW_NS" nft list chain inet filter "$c"
    done
    return
  fi
  ip netns exec "$LAB_GW_NS" nft list chain inet filter prerouting_miniupnpd |
    grep -E 'dnat' | sed -e 's/^[[:space:]]*//'
  return 0
}

# A router reboot: daemon stopped, leases forgotten, NAT and filter state flushed,
# daemon started again (system_uptime=no: the PCP epoch / NAT-PMP SSSoE restart at 0).
lab_reboot() {
  lab_load || return
  [ "$LAB_PERSONALITY" = none ] && { lab__say "personality none: nothing to reboot"; return 0; }
  lab__stop_miniupnpd
  rm -f -- "$LAB_STATE/miniupnpd.leases" "$LAB_STATE/miniupnpd.leases6"
  lab__flush_chains || return 1
  ip netns exec "$LAB_GW_NS" conntrack -F >/dev/null 2>&1
  lab__start_miniupnpd || return 1
  lab__say "rebooted (miniupnpd pid $LAB_MINIUPNPD_PID)"
}

# lab_daemon stop|start: the router's daemon (miniupnpd, or natpmp_router) goes away, or
# comes back with its configuration and leases as they were (a router whose daemon is
# still starting, or was restarted by hand).
lab_daemon() {
  lab_load || return
  [ "$LAB_PERSONALITY" = none ] && { lab__die "personality none has no daemon"; return 2; }
  case ${1:-} in
    stop) lab__stop_miniupnpd && lab__say "daemon stopped" ;;
    start)
      [ -z "${LAB_MINIUPNPD_PID:-}" ] || { lab__die "the daemon is running"; return 1; }
      lab__start_miniupnpd || return 1
      lab__say "daemon started (pid ${LAB_MINIUPNPD_PID:-?})"
      ;;
    *) lab__die "daemon: stop or start"; return 2 ;;
  esac
}

# lab_wan_address ADDR [--restart|--quiet]: move the WAN veth to ADDR/24. miniupnpd
# reads the address from ext_ifname and also watches netlink, so it notices by itself
# (--quiet); by default it also gets SIGUSR1 (both make it reset its PCP epoch to 0 and
# multicast a PCP ANNOUNCE and a NAT-PMP address notice to 224.0.0.1:5350); --restart
# restarts it instead (keeping its lease file).
lab_wan_address() {
  lab_load || return
  local new=${1:-} mode=${2:-}
  [[ $new =~ ^([0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3})\.([0-9]{1,3})$ ]] ||
    { lab__die "wan-address: need an IPv4 address"; return 2; }
  local prefix=${BASH_REMATCH[1]} peer
  peer=$prefix.254
  [ "$new" = "$peer" ] && peer=$prefix.253
  local old=$LAB_WAN_IP
  ip -n "$LAB_NET_NS" addr replace "$peer/24" dev eth0 || return 1
  # New address first, old one after: the interface never goes without an address.
  ip -n "$LAB_GW_NS" addr replace "$new/24" dev wan0 || return 1
  ip -n "$LAB_GW_NS" route replace default via "$peer" || return 1
  if [ "$old" != "$new" ]; then
    ip -n "$LAB_GW_NS" addr del "$old/24" dev wan0 2>/dev/null
  fi
  lab__set LAB_WAN_IP "$new"
  lab__set LAB_WAN_PEER_IP "$peer"
  if [ "$LAB_PERSONALITY" != none ]; then
    case $mode in
      --restart)
        lab__stop_miniupnpd
        lab__start_miniupnpd || return 1
        ;;
      --quiet) ;; # miniupnpd's netlink watcher notices by itself
      *) lab__is_ours "${LAB_MINIUPNPD_PID:-}" && kill -USR1 "$LAB_MINIUPNPD_PID" ;;
    esac
  fi
  lab__say "WAN address is now $new"
}

lab_env() {
  lab_load || return
  local v
  for v in LAB_STATE LAB_SH LAB_PERSONALITY LAB_CLIENT_NS LAB_GW_NS LAB_NET_NS LAB_CLIENT_IP \
    LAB_GW_LAN_IP LAB_WAN_IP LAB_WAN_PEER_IP LAB_CLIENT_IP6 LAB_GW_LAN_IP6 LAB_WAN_IP6 \
    LAB_HTTP_PORT LAB_MINIUPNPD_PID LAB_NATPMP_ROUTER_PID LAB_NATPMP_STATE; do
    printf 'export %s=%q\n' "$v" "${!v}"
  done
}

# lab_run PERSONALITY -- CMD...: bring up a lab in a fresh state dir, run CMD in the host
# namespace with the LAB_* variables exported (bounded by LAB_RUN_TIMEOUT seconds,
# default 300), tear everything down on any exit or signal, return CMD's status.
# From a sourcing script it runs in a subshell (its state and traps die with it); the
# caller must then pass SIGINT/SIGTERM on to that subshell itself. `lab.sh run` runs
# the body in its own process, so signals sent to lab.sh reach the traps directly.
lab_run() { (lab__run_body "$@"); }

lab__run_body() {
  local p=${1:-} rc
  shift || true
  [ "${1:-}" = -- ] && shift
  [ $# -gt 0 ] || { lab__die "usage: lab.sh run PERSONALITY -- CMD..."; exit 2; }
  unset LAB_STATE
  LAB__RUN_STATE=
  LAB__RUN_CMD_PID=
  trap lab__run_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
  lab_preflight || exit
  LAB__RUN_STATE=$(mktemp -d "${TMPDIR:-/tmp}/pm-lab.XXXXXX") || exit 2
  export LAB_STATE=$LAB__RUN_STATE
  lab_up "$p" || exit
  lab__set LAB_RUNNER_PID "$BASHPID"
  eval "$(lab_env)"
  export LAB_INSIDE_RUN=1
  # CMD runs in the background so that a signal to us is handled at once (a foreground
  # child would delay the traps until it ends); timeout bounds it and gives it its own
  # process group, so CMD's children are reached too.
  timeout --kill-after=5 "${LAB_RUN_TIMEOUT:-300}" "$@" &
  LAB__RUN_CMD_PID=$!
  wait "$LAB__RUN_CMD_PID"
  rc=$?
  LAB__RUN_CMD_PID=
  if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
    [ $rc -eq 124 ] && lab__say "command timed out after ${LAB_RUN_TIMEOUT:-300} s"
    if [ -s "$LAB_STATE/miniupnpd.log" ]; then
      lab__say "command failed ($rc); last lines of miniupnpd's log:"
      # (minus its IPv6 SSDP NOTIFY complaints, which repeat and mean nothing here)
      grep -v 'udp_notify.*Network is unreachable' "$LAB_STATE/miniupnpd.log" | tail -n 40 |
        sed 's/^/  miniupnpd| /' >&2
    fi
    if [ -s "$LAB_STATE/natpmp_router.log" ]; then
      lab__say "command failed ($rc); last lines of natpmp_router's log:"
      tail -n 20 "$LAB_STATE/natpmp_router.log" | sed 's/^/  natpmp_router| /' >&2
    fi
  fi
  exit $rc
}

# EXIT trap of lab_run's subshell: stop the command (by its PID), then the lab.
lab__run_cleanup() {
  trap - EXIT INT TERM HUP
  local pid=${LAB__RUN_CMD_PID:-} i
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 30; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  fi
  [ -n "${LAB__RUN_STATE:-}" ] || return 0
  [ -f "$LAB__RUN_STATE/env" ] && lab_down >/dev/null 2>&1
  rm -rf -- "$LAB__RUN_STATE"
}

lab_usage() {
  sed -n '/^# As a command:/,/^# Exit 77/p' "$LAB_SH_PATH" | sed 's/^# \{0,1\}//' >&2
}

lab_main() {
  local cmd=${1:-}
  shift || true
  case $cmd in
    up)
      lab_up "$@" || return
      printf 'export LAB_STATE=%q\n' "$LAB_STATE"
      ;;
    down) lab_down ;;
    exec) lab_exec "$@" ;;
    gw) lab_gw "$@" ;;
    net) lab_net "$@" ;;
    rules) lab_rules "$@" ;;
    reboot) lab_reboot ;;
    daemon) lab_daemon "$@" ;;
    wan-address) lab_wan_address "$@" ;;
    env) lab_env ;;
    log) lab_load && cat "$LAB_STATE/miniupnpd.log" ;;
    run) lab__run_body "$@" ;;
    personalities) echo "$LAB_PERSONALITIES" ;;
    -h | --help | help | "") lab_usage; [ -n "$cmd" ] ;;
    *) lab__die "unknown command '$cmd'"; lab_usage; return 2 ;;
  esac
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -u -o pipefail
  lab_main "$@"
  exit $?
fi
