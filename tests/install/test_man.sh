#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Lint the man pages: mandoc -T lint (warnings and worse) and groff through
# man --warnings; both must be silent. Exit 77 (skipped) when neither exists.
# Usage: test_man.sh MANDIR
set -euo pipefail
dir=$1
pages=("$dir"/*.[0-9])
ran=0
status=0
if command -v mandoc >/dev/null; then
  ran=1
  mandoc -T lint -W warning "${pages[@]}" || status=1
fi
if command -v man >/dev/null && command -v groff >/dev/null; then
  ran=1
  for page in "${pages[@]}"; do
    out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z "$page" 2>&1 >/dev/null)
    if [ -n "$out" ]; then
      echo "$page: $out" >&2
      status=1
    fi
  done
fi
if [ $ran = 0 ]; then
  echo "SKIPPED: neither mandoc nor man+groff is installed (scripts/install-deps.sh)"
  exit 77
fi
[ $status = 0 ] && echo "man pages lint clean: ${#pages[@]} pages"
exit $status
