#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The global symbols defined by libportmap.a and libportmap.so are exactly
# the functions the public header declares: nothing internal (pcp_*,
# portmap_sched_*, ...) can clash with an application's names.
# Usage: test_symbols.sh HEADER LIBPORTMAP.a [LIBPORTMAP.so]
set -euo pipefail
header=$1
archive=$2
shared=${3:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# every declaration starts a line with PORTMAP_API; the function's name is
# the identifier before the first "("
grep -E '^PORTMAP_API ' "$header" | sed -E 's/^([^(]*[^A-Za-z_0-9(])([A-Za-z_][A-Za-z_0-9]*) *\(.*/\2/' |
  sort -u >"$tmp/header"
n=$(wc -l <"$tmp/header")
if grep -v '^portmap_' "$tmp/header"; then
  echo "the header declares functions without the portmap_ prefix (above)" >&2
  exit 1
fi
[ "$n" -gt 0 ] || { echo "no PORTMAP_API function found in $header" >&2; exit 1; }

status=0
check() { # NAME FILE-WITH-SYMBOLS
  if ! diff -u "$tmp/header" "$2" >"$tmp/diff"; then
    echo "$1: global symbols differ from the header's functions (- header, + library):" >&2
    grep -E '^[-+][^-+]' "$tmp/diff" >&2
    status=1
  else
    echo "$1: $(wc -l <"$2") global symbols, all portmap_*, exactly the header's $n functions"
  fi
}
# defined global symbols (upper-case type letter; weak ones too)
nm -g --defined-only "$archive" | awk 'NF == 3 && $2 ~ /[A-Z]/ { print $3 }' | sort -u >"$tmp/a"
check "$(basename "$archive")" "$tmp/a"
if [ -n "$shared" ]; then
  nm -D --defined-only "$shared" | awk 'NF == 3 && $2 ~ /[A-Z]/ { print $3 }' | sort -u >"$tmp/so"
  check "$(basename "$shared")" "$tmp/so"
fi
exit $status
