# SPDX-License-Identifier: MIT
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

# tl_add_expect SPEC BACKEND [PORTMAP ARGS...]: `portmap add SPEC --json ARGS` in the
# client namespace must exit 0 with a valid "mapped" line (BACKEND, if not empty), and
# the router must then have the DNAT rule. Sets TL_EPORT TL_NONCE TL_BACKEND TL_LIFETIME.
tl_add_expect() {
  local spec=$1 want=$2 port proto out err rc start
  shift 2
  port=${spec%%/*}
  proto=${spec#*/}
  [ "$proto" = "$spec" ] && proto=tcp
  out=$TL_TMP/add-$port.out err=$TL_TMP/add-$port.err
  tl_log "portmap add $spec --json $*"
  start=$EPOCHREALTIME
  tl_client 60 "$PORTMAP" add "$spec" --json "$@" >"$out" 2>"$err"
  rc=$?
  tl_log "add exited $rc after $(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }') s"
  tl_show "$out" "$err"
  [ $rc -eq 0 ] || tl_fail "portmap add $spec exited $rc, expected 0"
  tl_jsonl validate "$out" >&2 || tl_fail "portmap add --json output is not valid JSON lines"
  local fields j_backend='' j_protocol='' j_internal_port='' j_external_address='' \
    j_external_port='' j_lifetime='' j_nonce=''
  fields=$(tl_jsonl fields "$out" mapped backend protocol internal_port external_address \
    external_port lifetime nonce) || tl_fail "no \"mapped\" event in the output"
  eval "$fields"
  if [ -n "$want" ] && [ "${j_backend,,}" != "${want,,}" ]; then
    tl_fail "backend is '$j_backend', expected $want"
  fi
  case ${j_protocol,,} in "$proto" | 6 | 17) ;; *) tl_fail "protocol is '$j_protocol', expected $proto" ;; esac
  [ "$j_internal_port" = "$port" ] || tl_fail "internal_port is $j_internal_port, expected $port"
  [ "$j_external_address" = "$LAB_WAN_IP" ] || [ "$j_external_address" = "::ffff:$LAB_WAN_IP" ] ||
    tl_fail "external_address is '$j_external_address', the router's WAN address is $LAB_WAN_IP"
  [[ $j_external_port =~ ^[0-9]+$ ]] || tl_fail "external_port '$j_external_port' is not a port"
  tl_wait_rule present "$proto" "$j_external_port" "$port" 2 ||
    { bash "$TL_LAB_SH" rules --all >&2; tl_fail "no DNAT rule $j_external_port -> $LAB_CLIENT_IP:$port on the router"; }
  tl_log "router rule: $(tl_rules | grep -F "dport $j_external_port dnat")"
  # shellcheck disable=SC2034  # read by the test scripts
  TL_EPORT=$j_external_port TL_NONCE=$j_nonce TL_BACKEND=$j_backend TL_LIFETIME=$j_lifetime
}

# tl_delete_expect SPEC EXTERNAL_PORT [PORTMAP ARGS...]: `portmap delete` exits 0 and
# the router's rule is gone within 2 s.
tl_delete_expect() {
  local spec=$1 eport=$2 port proto rc
  shift 2
  port=${spec%%/*}
  proto=${spec#*/}
  [ "$proto" = "$spec" ] && proto=tcp
  tl_log "portmap delete $spec $*"
  tl_client 60 "$PORTMAP" delete "$spec" "$@" >"$TL_TMP/del-$port.out" 2>"$TL_TMP/del-$port.err"
  rc=$?
  tl_show "$TL_TMP/del-$port.out" "$TL_TMP/del-$port.err"
  [ $rc -eq 0 ] || tl_fail "portmap delete $spec exited $rc, expected 0"
  tl_wait_rule absent "$proto" "$eport" "$port" 2 ||
    { tl_rules >&2; tl_fail "the DNAT rule for port $eport is still there 2 s after delete"; }
  tl_log "rule gone"
}

# tl_require_portmap: the first script argument must be an executable.
tl_require_portmap() {
  PORTMAP=${1:-}
  if [ -z "$PORTMAP" ] || [ ! -x "$PORTMAP" ]; then
    tl_fail "usage: $0 PATH/TO/portmap (got '${PORTMAP}')"
  fi
}

# ---------------------------------------------------------------- added helpers

# tl_since START: seconds (3 decimals) from $EPOCHREALTIME value START to now.
tl_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }
# tl_ms START [END]: milliseconds (integer) between two $EPOCHREALTIME values.
tl_ms() { awk -v a="$1" -v b="${2:-$EPOCHREALTIME}" 'BEGIN { printf "%d", (b - a) * 1000 + 0.5 }'; }

# tl_keep_start NAME ARGS...: start `portmap keep ARGS... --json` in the client namespace
# (ip netns exec execs portmap, so the PID is portmap's own). Every stdout line is stamped
# with its arrival time ("SECONDS<TAB>JSON") into $TL_TMP/NAME.out; stderr goes to
# $TL_TMP/NAME.err. Sets TL_KEEP_PID (portmap) and TL_KEEP_STAMPER; both are tracked.
tl_keep_start() {
  local name=$1 fifo
  shift
  fifo=$TL_TMP/$name.fifo
  rm -f "$fifo"
  mkfifo "$fifo" || tl_fail "mkfifo $fifo"
  while IFS= read -r line; do
    printf '%s\t%s\n' "$EPOCHREALTIME" "$line"
  done <"$fifo" >"$TL_TMP/$name.out" &
  TL_KEEP_STAMPER=$!
  tl_track "$TL_KEEP_STAMPER"
  tl_log "[$name] portmap keep $* --json"
  ip netns exec "$LAB_CLIENT_NS" "$PORTMAP" keep "$@" --json >"$fifo" 2>"$TL_TMP/$name.err" &
  TL_KEEP_PID=$!
  tl_track "$TL_KEEP_PID"
}

# tl_stop PID SIGNAL SECONDS: send SIGNAL to PID (ours), wait at most SECONDS for it to end.
# Sets TL_STOP_RC (its exit status, or 124 if it had to be killed) and TL_STOP_SECS.
# shellcheck disable=SC2034  # TL_STOP_* are read by the test scripts
tl_stop() {
  local pid=$1 sig=$2 secs=$3 t i n
  n=$(awk -v s="$secs" 'BEGIN { printf "%d", s * 20 }')
  t=$EPOCHREALTIME
  kill "-$sig" "$pid" 2>/dev/null
  for ((i = 0; i < n; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    # a zombie (exited, not reaped) is done too
    [ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" = Z ] && break
    sleep 0.05
  done
  if kill -0 "$pid" 2>/dev/null && [ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" != Z ]; then
    TL_STOP_SECS=$(tl_since "$t")
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    TL_STOP_RC=124
    return 1
  fi
  TL_STOP_SECS=$(tl_since "$t")
  wait "$pid"
  TL_STOP_RC=$?
  return 0
}

# tl_wait_stamper PID: the stamper ends at EOF of portmap's stdout; bounded wait (2 s).
tl_wait_stamper() {
  local i
  for ((i = 0; i < 40; i++)); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.05
  done
  return 1
}

# tl_wait_count FILE EVENT N SECONDS [PID]: wait until FILE holds >= N EVENT lines
# (bounded); fails early when PID (the producer) has gone.
tl_wait_count() {
  local f=$1 ev=$2 want=$3 secs=$4 pid=${5:-} i n c
  n=$(awk -v s="$secs" 'BEGIN { printf "%d", s * 20 }')
  for ((i = 0; i <= n; i++)); do
    c=$(grep -c "\"event\":\"$ev\"" "$f" 2>/dev/null)
    [ "${c:-0}" -ge "$want" ] && return 0
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      return 1
    fi
    sleep 0.05
  done
  return 1
}

# The router's UPnP table, asked over UPnP (no discovery: the description URL is known).
# Prints upnpc -l's table rows: "i PROTO EXT->ADDR:INT 'desc' 'remote' LEASE".
tl_upnp_list() {
  tl_client 10 upnpc -u "http://$LAB_GW_LAN_IP:$LAB_HTTP_PORT/rootDesc.xml" -l 2>/dev/null |
    grep -E '^ *[0-9]+ (TCP|UDP) ' | sed -e 's/^[[:space:]]*//'
}

# tl_upnp_lease PROTO EXT INT [LIST]: the lease left (seconds) of that entry in the router's
# UPnP table (LIST: a saved tl_upnp_list output), or nothing when there is no such entry.
tl_upnp_lease() {
  local p=${1^^} list=${4-}
  [ $# -ge 4 ] || list=$(tl_upnp_list)
  awk -v p="$p" -v m="$2->$LAB_CLIENT_IP:$3" '$2 == p && $3 == m { print $NF; exit }' <<<"$list"
}

# Every rule of the three miniupnpd chains that names our client (IPv4 or IPv6).
tl_our_rules() {
  local hex6
  hex6=$(tl__hex6 "$LAB_CLIENT_IP6")
  bash "$TL_LAB_SH" rules --all | grep -E "$LAB_CLIENT_IP|0xc0a84d02|$hex6" | sed -e 's/^[[:space:]]*//'
}

# An IPv6 address as the 0x... hex miniupnpd writes into its nft rules.
tl__hex6() {
  "$TL_PY" -c 'import ipaddress, sys; print("0x" + ipaddress.IPv6Address(sys.argv[1]).packed.hex())' "$1"
}

# tl_has_pinhole6 PROTO PORT: an IPv6 pinhole (accept rule in chain miniupnpd) to our
# client's IPv6 address, e.g. iif "wan0" th dport 9200 @nh,192,128 0xfd70... @nh,48,8 0x6 accept
tl_has_pinhole6() {
  local hex hex6
  hex=$(tl__proto_hex "$1")
  hex6=$(tl__hex6 "$LAB_CLIENT_IP6")
  ip netns exec "$LAB_GW_NS" nft list chain inet filter miniupnpd |
    grep -F "th dport $2 " | grep -F "@nh,192,128 $hex6 " | grep -qF "@nh,48,8 $hex accept"
}

# tl_eport FILE PROTO PORT [EVENT]: external port of the first EVENT (default mapped) line
# of that mapping in a keep output file; nothing (status 1) when there is none yet.
tl_eport() {
  tl_jsonl find "$1" "${4:-mapped}" external_port protocol="$2" internal_port="$3" 2>/dev/null
}

# tl_sample FILE KEY PROTO EXT INT [upnp]: append one router sample "TIME KEY present|absent
# LEASE" (LEASE from upnpc -l with "upnp", else -). EXT empty = not mapped yet: absent.
tl_sample() {
  local f=$1 key=$2 proto=$3 ext=$4 int=$5 how=${6:-} now state=absent lease=-
  now=$EPOCHREALTIME
  if [ -n "$ext" ] && tl_has_rule "$proto" "$ext" "$int"; then state=present; fi
  if [ "$how" = upnp ] && [ -n "$ext" ]; then
    lease=$(tl_upnp_lease "$proto" "$ext" "$int")
    [ -n "$lease" ] || lease=none
  fi
  printf '%s %s %s %s\n' "$now" "$key" "$state" "$lease" >>"$f"
}

tl_keepcheck() { "$TL_PY" "$TL_DIR/keepcheck.py" "$@"; }

# tl_add NAME SPEC ARGS...: `portmap add SPEC --json ARGS` in the client namespace, bounded;
# output in $TL_TMP/NAME.out / .err, shown. Sets TL_RC and TL_MS (wall time).
tl_add() {
  local name=$1 spec=$2 start
  shift 2
  tl_log "[$name] portmap add $spec --json $*"
  start=$EPOCHREALTIME
  tl_client 30 "$PORTMAP" add "$spec" --json "$@" >"$TL_TMP/$name.out" 2>"$TL_TMP/$name.err"
  TL_RC=$?
  TL_MS=$(tl_ms "$start")
  tl_log "[$name] exited $TL_RC after $TL_MS ms"
  tl_show "$TL_TMP/$name.out" "$TL_TMP/$name.err"
}

# tl_has_dnat_to PROTO EXT ADDR:PORT: a DNAT rule on the router to any internal host.
tl_has_dnat_to() {
  local hex
  hex=$(tl__proto_hex "$1")
  tl_rules | grep -F "@nh,72,8 $hex " | grep -qF "dport $2 dnat ip to $3"
}

# tl_keep_sample_for SECONDS T0 PID OUT SAMPLES PROTO PORT EPORT: from T0 for SECONDS, sample
# the router every 0.5 s (tl_sample, key PROTO/PORT, with the UPnP lease) while the keep
# process PID (writing OUT) must stay alive.
tl_keep_sample_for() {
  local secs=$1 t0=$2 pid=$3 out=$4 samples=$5 proto=$6 port=$7 eport=$8 end
  end=$(awk -v a="$t0" -v d="$secs" 'BEGIN { printf "%.3f", a + d }')
  while awk -v e="$end" -v n="$EPOCHREALTIME" 'BEGIN { exit !(n < e) }'; do
    kill -0 "$pid" 2>/dev/null || { tl_show "$out" "$TL_TMP/keep.err"; tl_fail "portmap keep exited by itself"; }
    tl_sample "$samples" "$proto/$port" "$proto" "$eport" "$port" upnp
    sleep 0.5
  done
}

# tl_keep_stop_clean PID STAMPER OUT PROTO PORT EPORT: SIGTERM to the keep process; it must
# exit 0 within 2 s, its mapping must leave the router's nft rules and UPnP table within
# 2 s, OUT must end with a deleted event and be valid JSON lines.
tl_keep_stop_clean() {
  local pid=$1 stamper=$2 out=$3 proto=$4 port=$5 eport=$6 gone=0 left
  tl_log "SIGTERM to portmap (pid $pid)"
  tl_stop "$pid" TERM 2 || { tl_show "$out" "$TL_TMP/keep.err"; tl_fail "portmap keep still running 2 s after SIGTERM"; }
  tl_log "portmap exited $TL_STOP_RC, $TL_STOP_SECS s after SIGTERM"
  tl_wait_stamper "$stamper"
  tl_wait_rule absent "$proto" "$eport" "$port" 2 && gone=1
  tl_show "$out" "$TL_TMP/keep.err"
  [ "$TL_STOP_RC" -eq 0 ] || tl_fail "portmap keep exited $TL_STOP_RC after SIGTERM, expected 0"
  [ $gone = 1 ] || { tl_rules >&2; tl_fail "the rule for $eport is still on the router 2 s after exit"; }
  left=$(tl_upnp_lease "$proto" "$eport" "$port")
  [ -z "$left" ] || tl_fail "upnpc -l still lists $proto $eport (lease $left) after the delete"
  grep -q '"event":"deleted"' "$out" || tl_fail "no deleted event after SIGTERM"
  tl_jsonl validate "$out" >&2 || tl_fail "invalid --json output"
}

# tl_wait_no_rules SECONDS: poll (every 0.05 s, bounded) until no rule of ours is left on
# the router; 1 (with the rules shown) if some still are after SECONDS.
tl_wait_no_rules() {
  local n i
  n=$(awk -v s="$1" 'BEGIN { printf "%d", s * 20 }')
  for ((i = 0; i < n; i++)); do
    [ -z "$(tl_our_rules)" ] && return 0
    sleep 0.05
  done
  [ -z "$(tl_our_rules)" ] && return 0
  tl_our_rules >&2
  return 1
}
