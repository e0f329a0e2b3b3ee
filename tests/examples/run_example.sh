#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# One example program (examples/) against the fake PCP gateway on loopback.
#
#   run_example.sh EXAMPLE FAKE_PCP_SERVER ADDR MODE
#
# ADDR is a 127/8 address of this test alone (tests run in parallel). MODE:
#   mapped  fake_pcp_server serves ADDR; `EXAMPLE --gateway ADDR --port P 8000/tcp` must
#           print "MS mapped tcp 8000 -> 203.0.113.5:8000 via pcp" with MS < 1000 (it
#           must not wait for a timer: PCP retransmits after 3 s), then "MS deleted tcp
#           8000", nothing else, nothing on stderr, and exit 0; the fake got the delete.
#   failed  nothing listens on ADDR:P (ICMP port unreachable; NAT-PMP and UPnP find
#           nothing on ADDR either): "MS failed tcp 8000: ..." as the only line, exit 1.
#   usage   bad command lines: exit 2, one line on stderr, nothing on stdout.
set -u -o pipefail

if [ $# -ne 4 ]; then
  echo "usage: $0 EXAMPLE FAKE_PCP_SERVER ADDR mapped|failed|usage" >&2
  exit 2
fi
example=$1 server=$2 addr=$3 mode=$4
name=$(basename "$example")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pm-example.XXXXXX") || exit 1
server_pid=

# Stop the server we started (by its PID), bounded, and remove the temp dir.
stop_server() {
  local i
  [ -n "$server_pid" ] || return 0
  kill -TERM "$server_pid" 2>/dev/null
  for ((i = 0; i < 40; i++)); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
  done
  kill -KILL "$server_pid" 2>/dev/null
  wait "$server_pid" 2>/dev/null
  server_pid=
}
trap 'stop_server; rm -rf -- "$tmp"' EXIT

show() {
  local f
  for f in "$tmp"/*.out "$tmp"/*.err; do
    [ -s "$f" ] || continue
    printf -- '--- %s\n' "$(basename "$f")" >&2
    sed 's/^/  | /' "$f" >&2
  done
}
fail() {
  printf '%s %s: FAIL: %s\n' "$name" "$mode" "$*" >&2
  show
  exit 1
}

# run_ex NAME ARGS...: the example, bounded; sets rc; output in $tmp/NAME.out / .err.
run_ex() {
  local n=$1
  shift
  timeout --kill-after=2 20 "$example" "$@" >"$tmp/$n.out" 2>"$tmp/$n.err"
  rc=$?
}

case $mode in
  mapped)
    "$server" "$addr" 30 >"$tmp/port" 2>"$tmp/server.err" &
    server_pid=$!
    port=
    for ((i = 0; i < 100; i++)); do # the server prints its port once it is bound
      port=$(head -n 1 "$tmp/port" 2>/dev/null)
      [ -n "$port" ] && break
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.05
    done
    [[ $port =~ ^[0-9]+$ ]] || fail "fake_pcp_server did not start on $addr"
    run_ex ex --gateway "$addr" --port "$port" 8000/tcp
    stop_server
    [ "$rc" -eq 0 ] || fail "exit status $rc, expected 0"
    [ "$(wc -l <"$tmp/ex.out")" -eq 2 ] || fail "expected 2 lines (mapped, deleted)"
    first=$(sed -n 1p "$tmp/ex.out") last=$(sed -n 2p "$tmp/ex.out")
    [[ $first =~ ^([0-9]+)\ mapped\ tcp\ 8000\ -\>\ 203\.0\.113\.5:8000\ via\ pcp$ ]] ||
      fail "first line is not 'MS mapped tcp 8000 -> 203.0.113.5:8000 via pcp'"
    ms=${BASH_REMATCH[1]}
    [[ $last =~ ^[0-9]+\ deleted\ tcp\ 8000$ ]] || fail "second line is not 'MS deleted tcp 8000'"
    [ ! -s "$tmp/ex.err" ] || fail "something on stderr"
    [ "$ms" -lt 1000 ] || fail "mapped after $ms ms: waited for a timer, not for the answer"
    maps=$(sed -n 's/.* \([0-9]*\) MAP requests$/\1/p' "$tmp/server.err")
    [ "${maps:-0}" -ge 2 ] || fail "the fake got ${maps:-0} MAP requests, expected the map and its delete"
    echo "$name: mapped after $ms ms; $last"
    ;;
  failed)
    port=$("$server" "$addr" --free-port) || fail "no free port on $addr"
    run_ex ex --gateway "$addr" --port "$port" 8000/tcp
    [ "$rc" -eq 1 ] || fail "exit status $rc, expected 1"
    [ "$(wc -l <"$tmp/ex.out")" -eq 1 ] || fail "expected 1 line (failed)"
    line=$(cat "$tmp/ex.out")
    [[ $line =~ ^([0-9]+)\ failed\ tcp\ 8000:\ .+$ ]] || fail "the line is not 'MS failed tcp 8000: WHY'"
    echo "$name: $line"
    ;;
  usage)
    for args in "--gateway $addr" "--gateway $addr 8000/sctp" "--gateway $addr 0/tcp" \
      "--gateway $addr --port 70000 8000/tcp" "--gateway $addr --bogus 8000/tcp" \
      "--gateway $addr 8000/tcp 8001/tcp" "--gateway $addr 8000x/tcp"; do
      # shellcheck disable=SC2086  # the words are separate arguments
      run_ex usage $args
      [ "$rc" -eq 2 ] || fail "'$args': exit status $rc, expected 2"
      [ ! -s "$tmp/usage.out" ] || fail "'$args': something on stdout"
      [ "$(wc -l <"$tmp/usage.err")" -eq 1 ] || fail "'$args': expected one line on stderr"
    done
    echo "$name: $(cat "$tmp/usage.err")"
    ;;
  *)
    echo "run_example.sh: unknown mode '$mode'" >&2
    exit 2
    ;;
esac
exit 0
