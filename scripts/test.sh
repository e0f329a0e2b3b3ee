#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Set up, build and run the whole test suite: unit, fake-gateway, CLI,
# fuzz-corpus replay and the real-miniupnpd lab (label "lab"; it needs root
# and reports SKIPPED with the reason when namespaces cannot be made).
# Usage: bash scripts/test.sh [extra ctest args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
build=${PORTMAP_BUILD_DIR:-build-test}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DPORTMAP_WERROR=ON -DPORTMAP_SANITIZE=${PORTMAP_SANITIZE:-ON} >/dev/null
cmake --build "$build" -j"$(nproc)"
ctest --test-dir "$build" --output-on-failure -j2 "$@"
