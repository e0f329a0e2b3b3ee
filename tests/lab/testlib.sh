# shellcheck shell=bash
# testlib.sh: helpers for tests/lab/test_*.sh (source it; bash).
#
# A test script starts with:
#   . "$(dirname "$0")/testlib.sh"
#   tl_enter_lab PERSONALITY "$@"     # re-executes itself through `lab.sh run`
#   PORTMAP=$1
# Outside a lab, tl_enter_lab re-runs the script as `lab.sh run PERSONALITY -- script ARGS`
# (which prints "SKIPPED: ..." and exits 77 when the lab cannot exist here). Inside,
# the LAB_* variables are set and the script does its checks; exit 0 = pass.

TL_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TL_LAB_SH=$TL_DIR/lab.sh
TL_JSONL=$TL_DIR/jsonl.py
TL_NAME=$(basename "$0" .sh)
TL_PIDS=()
# The distribution's python starts in 0.05 s; a pyenv shim can take 0.3 s.
TL_PY=python3
[ -x /usr/bin/python3 ] && TL_PY=/usr/bin/python3
TL_TMP=

tl_log() { printf '[%s %s] %s\n' "$TL_NAME" "$(date +%T.%3N)" "$*" >&2; }
tl_fail() {
  printf '\n[%s] FAIL: %s\n\n' "$TL_NAME" "$*" >&2
  exit 1
}
tl_pass() {
  printf '\n[%s] PASS\n' "$TL_NAME" >&2
  exit 0
}

tl_enter_lab() {
  local personality=$1
  shift
  if [ "${LAB_INSIDE_RUN:-}" != 1 ]; then
    exec bash "$TL_LAB_SH" run "$personality" -- bash "$0" "$@"
  fi
  [ -n "${LAB_STATE:-}" ] || tl_fail "LAB_STATE not set inside lab.sh run"
  TL_TMP=$(mktemp -d "${TMPDIR:-/tmp}/pm-test.XXXXXX") || tl_fail "mktemp"
  trap tl__cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  tl_log "lab $LAB_PERSONALITY: client $LAB_CLIENT_IP in $LAB_CLIENT_NS, gateway $LAB_GW_LAN_IP, WAN $LAB_WAN_IP"
}

# Stop every background process this test started (by PID), remove the temp dir.
tl__cleanup() {
  local pid i
  for pid in "${TL_PIDS[@]}"; do
    kill -0 "$pid" 2>/dev/null || continue
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 20; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
  done
  [ -n "$TL_TMP" ] && rm -rf -- "$TL_TMP"
}

tl_track() { TL_PIDS+=("$@"); }

# Run in the client namespace, bounded: tl_client SECONDS CMD...
tl_client() {
  local t=$1
  shift
  timeout --kill-after=2 "$t" ip netns exec "$LAB_CLIENT_NS" "$@"
}

# Run in the internet namespace, bounded.
tl_net() {
  local t=$1
  shift
  timeout --kill-after=2 "$t" ip netns exec "$LAB_NET_NS" "$@"
}

tl_rules() { bash "$TL_LAB_SH" rules; }

# nft protocol byte miniupnpd matches on (@nh,72,8 = IPv4 protocol field).
tl__proto_hex() {
  case $1 in
    tcp | TCP | 6) echo 0x6 ;;
    udp | UDP | 17) echo 0x11 ;;
    *) echo "?" ;;
  esac
}

# tl_has_rule PROTO EXTERNAL_PORT INTERNAL_PORT: is there a DNAT rule to the client?
# miniupnpd writes e.g.: iif "wan0" @nh,72,8 0x6 th dport 8000 dnat ip to 192.168.77.2:8000
tl_has_rule() {
  local hex
  hex=$(tl__proto_hex "$1")
  tl_rules | grep -F "@nh,72,8 $hex " | grep -qF "dport $2 dnat ip to $LAB_CLIENT_IP:$3"
}

# tl_wait_rule present|absent PROTO EXT INT SECONDS: poll every 0.1 s, bounded.
tl_wait_rule() {
  local want=$1 proto=$2 ext=$3 int=$4 secs=$5 i n
  n=$(awk -v s="$secs" 'BEGIN { printf "%d", s * 10 }')
  for ((i = 0; i <= n; i++)); do
    if tl_has_rule "$proto" "$ext" "$int"; then
      [ "$want" = present ] && return 0
    else
      [ "$want" = absent ] && return 0
    fi
    sleep 0.1
  done
  return 1
}

tl_jsonl() { "$TL_PY" "$TL_JSONL" "$@"; }

tl_show() {
  local f
  for f in "$@"; do
    [ -s "$f" ] || continue
    printf -- '--- %s\n' "$(basename "$f")" >&2
    sed 's/^/  | /' "$f" >&2
  done
}
