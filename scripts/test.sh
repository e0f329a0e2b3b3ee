#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Set up, build and run the whole test suite: unit, fake-gateway, CLI,
# fuzz-corpus replay and the real-miniupnpd lab (label "lab"; it needs root
# and reports SKIPPED with the reason when namespaces cannot be made).
# First the tests that race threads on purpose run once more under
# ThreadSanitizer (their own build: TSan and ASan do not mix), then every
# unit-test binary under valgrind memcheck (scripts/valgrind.sh, a build
# without sanitizers), then the command-line and lab tests with the tools as they ship
# (a Release build: static, no dynamic loader). PORTMAP_SKIP_TSAN=1,
# PORTMAP_SKIP_VALGRIND=1 and PORTMAP_SKIP_RELEASE=1 skip them.
# Usage: bash scripts/test.sh [extra ctest args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
build=${PORTMAP_BUILD_DIR:-build-test}
if [ "${PORTMAP_SKIP_TSAN:-0}" != 1 ]; then
  tsan=${build}-tsan
  tsan_tests="test_handles test_loop test_core test_regressions test_pcp_engine"
  cmake -S . -B "$tsan" -DCMAKE_BUILD_TYPE=Debug -DPORTMAP_WERROR=ON -DPORTMAP_TSAN=ON \
    -DPORTMAP_BUILD_TOOLS=OFF >/dev/null
  # shellcheck disable=SC2086 # a list of targets
  cmake --build "$tsan" -j"$(nproc)" --target $tsan_tests
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
    ctest --test-dir "$tsan" --output-on-failure -R "^($(echo $tsan_tests | tr ' ' '|'))\$"
fi
if [ "${PORTMAP_SKIP_VALGRIND:-0}" != 1 ]; then
  PORTMAP_BUILD_DIR=$build bash scripts/valgrind.sh
fi
if [ "${PORTMAP_SKIP_RELEASE:-0}" != 1 ]; then
  # The tools as they ship (Release; static, no dynamic loader: sanitized builds cannot be
  # linked that way): the command-line and real-router tests once more with them.
  rel=${build}-rel
  cmake -S . -B "$rel" -DCMAKE_BUILD_TYPE=Release -DPORTMAP_WERROR=ON -DPORTMAP_SANITIZE=OFF \
    -DPORTMAP_TSAN=OFF -DPORTMAP_BUILD_EXAMPLES=OFF >/dev/null
  # (the linker's note on getaddrinfo in a static program is expected: README "Install and packages")
  cmake --build "$rel" -j"$(nproc)"
  ctest --test-dir "$rel" --output-on-failure -j2 -L 'cli|lab' "$@"
fi
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DPORTMAP_WERROR=ON -DPORTMAP_SANITIZE=${PORTMAP_SANITIZE:-ON} >/dev/null
cmake --build "$build" -j"$(nproc)"
ctest --test-dir "$build" --output-on-failure -j2 "$@"
