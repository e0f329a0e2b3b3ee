#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The unit-test binaries (tests/unit/test_*.c, CTest label "unit") once more
# under valgrind memcheck, in a build of their own without sanitizers
# (valgrind does not run ASan or TSan binaries): a memory error or a
# definite or indirect leak makes valgrind exit 99, which fails the test and
# this script. scripts/test.sh runs it; PORTMAP_SKIP_VALGRIND=1 skips it there.
# Usage: bash scripts/valgrind.sh [extra ctest args]
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v valgrind >/dev/null; then
  echo "valgrind.sh: valgrind not found (bash scripts/install-deps.sh installs it)" >&2
  exit 2
fi
vg=${PORTMAP_BUILD_DIR:-build-test}-vg
cmake -S . -B "$vg" -DCMAKE_BUILD_TYPE=Debug -DPORTMAP_WERROR=ON -DPORTMAP_SANITIZE=OFF \
  -DPORTMAP_TSAN=OFF -DPORTMAP_FUZZ=OFF -DPORTMAP_VALGRIND=ON -DPORTMAP_BUILD_TOOLS=OFF \
  -DPORTMAP_BUILD_EXAMPLES=OFF >/dev/null
targets=()
for src in tests/unit/test_*.c; do
  t=${src##*/}
  targets+=("${t%.c}")
done
cmake --build "$vg" -j"$(nproc)" --target "${targets[@]}"
ctest --test-dir "$vg" -L valgrind --output-on-failure -j2 "$@"
