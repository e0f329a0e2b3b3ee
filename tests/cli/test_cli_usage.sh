#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Usage tests for the portmap and portmap-probe tools: bad invocations must
# exit 2 with exactly two lines on stderr ("PROG: <what is wrong>" and
# "usage: PROG ..."), nothing on stdout; --help and --version must exit 0. No
# network traffic at all: every case is rejected before a client is created.
#
#   test_cli_usage.sh PORTMAP_BINARY usage|help
#   test_cli_usage.sh PORTMAP_PROBE_BINARY probe_usage|probe_help
set -u

bin=${1:?usage: test_cli_usage.sh BINARY usage|help|probe_usage|probe_help}
mode=${2:-usage}
case $mode in
probe_*) prog=portmap-probe ;;
*) prog=portmap ;;
esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
count=0

fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# bad NAME ARGS...: expect exit 2, empty stdout, "$prog: ..." then "usage: $prog ...".
bad() {
  local name=$1
  shift
  count=$((count + 1))
  "$bin" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
  local rc=$?
  local lines
  lines=$(wc -l <"$tmp/err")
  if [ "$rc" -ne 2 ]; then
    fail "$name: exit status $rc, want 2 (args: $*)"
  elif [ -s "$tmp/out" ]; then
    fail "$name: wrote to stdout: $(head -c 200 "$tmp/out")"
  elif [ "$lines" -ne 2 ]; then
    fail "$name: $lines lines on stderr, want 2: $(head -c 400 "$tmp/err")"
  elif ! sed -n 1p "$tmp/err" | grep -Eq "^$prog: [^ ].{8,}\$"; then
    fail "$name: first stderr line is not '$prog: <message>': $(sed -n 1p "$tmp/err")"
  elif ! sed -n 2p "$tmp/err" | grep -Eq "^usage: $prog "; then
    fail "$name: second stderr line is not a usage line: $(sed -n 2p "$tmp/err")"
  else
    echo "ok: $name: $(sed -n 1p "$tmp/err")"
  fi
}

# good NAME PATTERN ARGS...: expect exit 0, empty stderr, PATTERN (ERE) on stdout.
good() {
  local name=$1 pattern=$2
  shift 2
  count=$((count + 1))
  "$bin" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    fail "$name: exit status $rc, want 0 (args: $*)"
  elif [ -s "$tmp/err" ]; then
    fail "$name: wrote to stderr: $(head -c 200 "$tmp/err")"
  elif ! grep -Eq -- "$pattern" "$tmp/out"; then
    fail "$name: stdout does not match /$pattern/"
  else
    echo "ok: $name"
  fi
}

long_description=$(printf 'x%.0s' $(seq 1 129))
max_description=$(printf 'y%.0s' $(seq 1 128))
nonce=0123456789abcdef01234567

case $mode in
usage)
  bad "missing command"
  bad "unknown command" frob 8000
  bad "missing port" add
  bad "port 0" add 0
  bad "port 65536" add 65536
  bad "port 80x" add 80x
  bad "empty port" add ""
  bad "negative port" add -1
  bad "port with sign" add +80
  bad "port with blank" add " 80"
  bad "bad protocol /sctp" add 80/sctp
  bad "empty protocol" add 80/
  bad "protocol without port" add /udp
  bad "lifetime 0" add 80 --lifetime 0
  bad "lifetime 86401" add 80 --lifetime 86401
  bad "lifetime abc" add 80 --lifetime abc
  bad "lifetime =form" add 80 --lifetime=-5
  bad "nonce too short" delete 80 --nonce 0123456789abcdef
  bad "nonce too long" delete 80 --nonce "${nonce}00"
  bad "nonce not hex" delete 80 --nonce 0123456789abcdef0123456g
  bad "gateway not an address" add 80 --gateway not-an-address
  bad "gateway empty" add 80 --gateway ""
  bad "gateway with port" add 80 --gateway 192.168.1.1:5351
  bad "external 0" add 80 --external 0
  bad "external 70000" add 80 --external 70000
  bad "description too long" add 80 --description "$long_description"
  bad "description not UTF-8" add 80 --description $'\xff\xfe'
  bad "unknown long option" add 80 --frobnicate
  bad "unknown short option" add 80 -x
  bad "missing option value" add 80 --lifetime
  bad "value for a flag" add 80 --json=yes
  bad "bad backend" add 80 --backend carrier-pigeon
  bad "server port 0" add 80 --port 0
  bad "timeout abc" add 80 --timeout abc
  bad "timeout 0 for add" add 80 --timeout 0
  bad "two ports for add" add 80 81
  bad "two ports for delete" delete 80 81/udp
  bad "missing port for keep" keep --json
  bad "same port twice" keep 80/tcp 80/TCP
  bad "external with several ports" keep 80 81 --external 90
  bad "lifetime with delete" delete 80 --lifetime 60
  bad "description with delete" delete 80 --description x
  bad "nonce with keep" keep 80 --nonce "$nonce"
  bad "port for list" list 80
  bad "lifetime with list" list --lifetime 60
  bad "nonce with list" list --nonce "$nonce"
  bad "timeout 0 for list" list --timeout 0
  bad "bad backend for list" list --backend pcp,
  bad "empty backend" add 80 --backend ""
  bad "backend with an empty name" delete 80 --backend pcp,,upnp
  # PCP extras: --peer, --third-party, --filter, --prefer-failure, --ipv6
  bad "peer without port" add 80 --peer 192.0.2.1
  bad "peer port 0" add 80 --peer 192.0.2.1:0
  bad "peer port 65536" add 80 --peer 192.0.2.1:65536
  bad "peer port not a number" add 80 --peer 192.0.2.1:http
  bad "peer not an address" add 80 --peer peer.example:80
  bad "peer empty" add 80 --peer ""
  bad "peer IPv6 without brackets" add 80 --ipv6 --peer 2001:db8::1:80
  bad "peer IPv4 in brackets" add 80 --peer "[192.0.2.1]:80"
  bad "peer IPv6 for an IPv4 mapping" add 80 --peer "[2001:db8::1]:80"
  bad "peer IPv4 for an IPv6 mapping" add 80 --ipv6 --peer 192.0.2.1:80
  bad "peer twice" keep 80 --peer 192.0.2.1:80 --peer 192.0.2.2:80
  bad "peer with delete" delete 80 --peer 192.0.2.1:80
  bad "peer with prefer-failure" add 80 --peer 192.0.2.1:80 --prefer-failure
  bad "peer with filter" add 80 --peer 192.0.2.1:80 --filter 192.0.2.0/24
  bad "third-party not an address" add 80 --third-party host.example
  bad "third-party empty" add 80 --third-party ""
  bad "third-party with port" add 80 --third-party 192.168.1.5:80
  bad "third-party IPv6 for an IPv4 mapping" add 80 --third-party 2001:db8::5
  bad "third-party twice" add 80 --third-party 192.168.1.5 --third-party 192.168.1.6
  bad "third-party with list" list --third-party 192.168.1.5
  bad "filter without prefix" add 80 --filter 192.0.2.0
  bad "filter empty prefix" add 80 --filter 192.0.2.0/
  bad "filter prefix 33" add 80 --filter 192.0.2.0/33
  bad "filter prefix 129 (IPv6)" add 80 --ipv6 --filter 2001:db8::/129
  bad "filter prefix not a number" add 80 --filter 192.0.2.0/x
  bad "filter without address" add 80 --filter /24
  bad "filter not an address" add 80 --filter net.example/24
  bad "filter port 0" add 80 --filter 192.0.2.0/24:0
  bad "filter port 65536" add 80 --filter 192.0.2.0/24:65536
  bad "filter empty port" add 80 --filter 192.0.2.0/24:
  bad "filter IPv6 for an IPv4 mapping" add 80 --filter 2001:db8::/32
  bad "filter IPv4 for an IPv6 mapping" keep 80 --ipv6 --filter 192.0.2.0/24
  bad "nine filters" add 80 --filter 192.0.2.0/24 --filter 192.0.2.0/24 \
    --filter 192.0.2.0/24 --filter 192.0.2.0/24 --filter 192.0.2.0/24 --filter 192.0.2.0/24 \
    --filter 192.0.2.0/24 --filter 192.0.2.0/24 --filter 192.0.2.0/24
  bad "filter with delete" delete 80 --filter 192.0.2.0/24
  bad "value for prefer-failure" add 80 --prefer-failure=yes
  bad "prefer-failure with delete" delete 80 --prefer-failure
  bad "value for ipv6" add 80 --ipv6=1
  bad "ipv6 with list" list --ipv6
  bad "retransmit 99" keep 80 --retransmit 99
  bad "retransmit 60001" add 80 --retransmit 60001
  bad "retransmit abc" add 80 --retransmit abc
  bad "retransmit with list" list --retransmit 500
  # Valid except for one thing: the rest must not hide the error.
  bad "valid description, bad port" add 0 --description "$max_description" --lifetime 60
  bad "valid PCP options, bad filter" add 80 --ipv6 --third-party 2001:db8::5 \
    --prefer-failure --external 8080 --filter 2001:db8::/64:443 --filter 2001:db8::/200
  ;;
help)
  good "--help" '^SYNOPSIS$' --help
  good "-h" '^EXIT STATUS$' -h
  good "help after a command" 'portmap delete PORT' delete --help
  good "help wins over errors" '^OPTIONS$' add 0 --help
  good "--version" '^portmap \(libportmap\) [0-9]+\.[0-9]+\.[0-9]+$' --version
  good "help for list" 'portmap list' list --help
  good "help names the PCP options" '--prefer-failure' --help
  ;;
probe_usage)
  bad "positional argument" 8000
  bad "unknown long option" --frobnicate
  bad "unknown short option" -x
  bad "value for a flag" --json=yes
  bad "missing option value" --timeout
  bad "timeout abc" --timeout abc
  bad "timeout negative" --timeout -1
  bad "timeout too long" --timeout 600001
  bad "map port 0" --map 0
  bad "map port 65536" --map 65536
  bad "map port 80x" --map 80x
  bad "map empty" --map ""
  bad "map bad protocol" --map 80/sctp
  bad "map empty protocol" --map 80/
  bad "map protocol without port" --map /udp
  bad "missing map value" --map
  bad "lifetime without map" --lifetime 60
  bad "lifetime 0" --map 80 --lifetime 0
  bad "lifetime 86401" --map 80 --lifetime 86401
  bad "bad backend" --backend carrier-pigeon
  bad "empty backend" --backend ""
  bad "backend trailing comma" --backend pcp,
  bad "gateway not an address" --gateway not-an-address
  bad "gateway empty" --gateway ""
  bad "gateway with port" --gateway 192.168.1.1:5351
  bad "server port 0" --port 0
  bad "server port 65536" --port 65536
  bad "after --" -- --json
  bad "valid options, bad map" --json --backend pcp --timeout 300 --map 0/tcp
  ;;
probe_help)
  good "--help" '^SYNOPSIS$' --help
  good "-h" '^EXIT STATUS$' -h
  good "help wins over errors" '^OPTIONS$' --map 0 --help
  good "--version" '^portmap-probe \(libportmap\) [0-9]+\.[0-9]+\.[0-9]+$' --version
  ;;
*)
  echo "unknown mode $mode" >&2
  exit 2
  ;;
esac

echo "$((count - failures))/$count passed"
[ "$failures" -eq 0 ]
