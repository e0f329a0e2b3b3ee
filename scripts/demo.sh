#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# demo.sh: libportmap end to end on a machine with no router.
#
#   sudo bash scripts/demo.sh          (from the repository root)
#
# Builds the project, starts a real gateway (Debian's miniupnpd in network namespaces,
# tests/lab/lab.sh; nothing touches the host's own network), and shows the `portmap`
# tool creating, renewing and deleting port mappings on it, checking each step against
# the router's own NAT table. Environment: BUILD_DIR (default build), DEMO_KEEP_SECONDS
# (default 20), DEMO_PERSONALITY (default short: min_lifetime=2, so 8 s lifetimes work).
set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LAB_SH_FILE=$ROOT/tests/lab/lab.sh
KEEP_SECONDS=${DEMO_KEEP_SECONDS:-20}

if [ -t 1 ]; then
  B=$'\e[1m' G=$'\e[32m' R=$'\e[31m' D=$'\e[2m' N=$'\e[0m'
else
  B='' G='' R='' D='' N=''
fi
step() { printf '\n%s==> %s%s\n' "$B" "$*" "$N"; }
say() { printf '    %s\n' "$*"; }
ok() { printf '    %s✓ %s%s\n' "$G" "$*" "$N"; }
bad() { printf '    %s✗ %s%s\n' "$R" "$*" "$N"; }
show() { printf '    %s$ %s%s\n' "$D" "$*" "$N"; }
indent() { sed 's/^/      /'; }

# ------------------------------------------------------------------ inside the lab
# Runs as `lab.sh run PERSONALITY -- demo.sh --in-lab PORTMAP`, LAB_* set.
in_lab() {
  local pm=$1 rc nonce
  rules() { bash "$LAB_SH" rules; }
  show_rules() {
    local r
    r=$(rules)
    if [ -n "$r" ]; then
      printf '%s\n' "$r" | indent
    else
      say "(no port mappings on the router)"
    fi
  }

  step "The lab"
  say "client    $LAB_CLIENT_IP   (namespace $LAB_CLIENT_NS, default route via the gateway)"
  say "gateway   $LAB_GW_LAN_IP (LAN) / $LAB_WAN_IP (WAN), miniupnpd 2.3.1, pid $LAB_MINIUPNPD_PID"
  say "internet  $LAB_WAN_PEER_IP (namespace $LAB_NET_NS)"
  say "personality '$LAB_PERSONALITY': PCP + NAT-PMP + UPnP-IGD, lifetimes down to 2 s allowed"
  say "The router's port mappings are its nftables DNAT rules (chain prerouting_miniupnpd):"
  show_rules

  step "portmap-probe: what does this router speak? (PCP, NAT-PMP and UPnP asked at once)"
  show "portmap-probe"
  local probe
  probe=$(dirname "$pm")/portmap-probe
  if [ -x "$probe" ]; then
    timeout 30 ip netns exec "$LAB_CLIENT_NS" "$probe" 2>&1 | indent
    rc=${PIPESTATUS[0]}
    if [ "$rc" -ne 0 ]; then
      bad "portmap-probe exited $rc"
      return 1
    fi
    ok "exit 0: at least one protocol works"
  else
    say "(portmap-probe not built)"
  fi

  step "portmap add: one mapping, printed, then the tool exits"
  show "portmap add 8080/tcp --lifetime 6 --gateway $LAB_GW_LAN_IP --json"
  local out
  out=$(timeout 30 ip netns exec "$LAB_CLIENT_NS" "$pm" add 8080/tcp --lifetime 6 \
    --gateway "$LAB_GW_LAN_IP" --json)
  rc=$?
  printf '%s\n' "$out" | indent
  if [ $rc -ne 0 ]; then
    bad "portmap add exited $rc"
    return 1
  fi
  ok "exit 0; the router now has:"
  show_rules
  nonce=$(printf '%s\n' "$out" | grep -o '"nonce": *"[0-9a-fA-F]*"' | head -n 1 | grep -o '[0-9a-fA-F]\{24\}')
  say "Nobody renews it: it lapses on the router after its 6 s lifetime (watch below)."
  [ -n "$nonce" ] && say "(portmap delete 8080/tcp --nonce $nonce would remove it at once.)"

  step "portmap keep: hold 8000/tcp with an 8 s lifetime for ${KEEP_SECONDS} s"
  show "portmap keep 8000/tcp --lifetime 8"
  say "PCP renews at a random point in [1/2, 5/8] of the lifetime: every 4-5 s here."
  local log=$LAB_STATE/demo-keep.out
  ip netns exec "$LAB_CLIENT_NS" "$pm" keep 8000/tcp --lifetime 8 >"$log" 2>&1 &
  local pid=$! shown=0 s n
  for ((s = 1; s <= KEEP_SECONDS; s++)); do
    sleep 1
    n=$(wc -l <"$log")
    if [ "$n" -gt "$shown" ]; then
      tail -n +"$((shown + 1))" "$log" | head -n "$((n - shown))" |
        while IFS= read -r line; do printf '    %s[+%2ds]%s portmap: %s\n' "$D" "$s" "$N" "$line"; done
      shown=$n
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid"
      bad "portmap keep stopped by itself (status $?)"
      return 1
    fi
    if ((s % 5 == 0)); then
      printf '    %s[+%2ds]%s router: %s\n' "$D" "$s" "$N" "$(rules | grep -o 'dport [0-9]* dnat ip to [0-9.:]*' | paste -sd ';' - | sed 's/;/; /g')"
    fi
  done

  step "SIGTERM: portmap deletes its mapping, waits for the gateway's answer, exits"
  show "kill -TERM $pid"
  kill -TERM "$pid"
  local i
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null
    bad "portmap keep did not exit within 5 s"
    return 1
  fi
  wait "$pid"
  rc=$?
  tail -n +"$((shown + 1))" "$log" | while IFS= read -r line; do printf '    portmap: %s\n' "$line"; done
  if [ $rc -eq 0 ]; then
    ok "portmap exited 0 after $(awk -v i="$i" 'BEGIN { printf "%.1f", i / 10 }') s"
  else
    bad "portmap exited $rc"
  fi
  say "The router's table now:"
  show_rules
  if [ -z "$(rules)" ]; then
    ok "empty: 8000/tcp deleted by portmap, 8080/tcp expired by itself"
  else
    bad "mappings left on the router"
    return 1
  fi
  [ $rc -eq 0 ]
}

if [ "${1:-}" = --in-lab ]; then
  in_lab "$2"
  exit $?
fi

# ------------------------------------------------------------------ build, then the lab
cd "$ROOT" || exit 2
BUILD_DIR=${BUILD_DIR:-build}
if [ "$(id -u)" -ne 0 ]; then
  echo "demo.sh: needs root (it creates network namespaces); try: sudo bash scripts/demo.sh" >&2
  exit 77
fi

step "Build dependencies"
if [ -f scripts/install-deps.sh ]; then
  show "bash scripts/install-deps.sh"
  bash scripts/install-deps.sh 2>&1 | tail -n 5 | indent || { bad "install-deps.sh failed"; exit 2; }
else
  say "(no scripts/install-deps.sh; assuming the compiler, cmake, cmocka, miniupnpc and libnatpmp are installed)"
fi

step "Build"
show "cmake -S . -B $BUILD_DIR && cmake --build $BUILD_DIR -j2"
mkdir -p "$BUILD_DIR" || exit 2
if ! cmake -S . -B "$BUILD_DIR" >"$BUILD_DIR/demo-cmake.log" 2>&1; then
  tail -n 20 "$BUILD_DIR/demo-cmake.log"
  bad "cmake configure failed (full log: $BUILD_DIR/demo-cmake.log)"
  exit 2
fi
if ! cmake --build "$BUILD_DIR" -j2 >"$BUILD_DIR/demo-build.log" 2>&1; then
  tail -n 30 "$BUILD_DIR/demo-build.log"
  bad "build failed (full log: $BUILD_DIR/demo-build.log)"
  exit 2
fi
case $BUILD_DIR in
  /*) PORTMAP=$BUILD_DIR/tools/portmap ;;
  *) PORTMAP=$ROOT/$BUILD_DIR/tools/portmap ;;
esac
[ -x "$PORTMAP" ] || { bad "no $PORTMAP after the build"; exit 2; }
ok "built $PORTMAP"

step "Start the lab: client | gateway (miniupnpd) | internet, in network namespaces"
say "Everything below happens inside namespaces created now and removed at the end."
bash "$LAB_SH_FILE" run "${DEMO_PERSONALITY:-short}" -- bash "$ROOT/scripts/demo.sh" --in-lab "$PORTMAP"
rc=$?
case $rc in
  0) step "Done: lab torn down"; ok "demo passed" ;;
  77) bad "the lab cannot run on this machine (see SKIPPED above)" ;;
  *) step "Lab torn down"; bad "demo failed (status $rc)" ;;
esac
exit $rc
