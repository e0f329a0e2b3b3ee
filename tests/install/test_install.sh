#!/usr/bin/env bash
# Install the built tree into a temporary prefix, then build and run a
# program against it twice: with find_package(portmap) and with pkg-config.
set -euo pipefail
build=$1
# a sanitized library needs its runtime in the program that links it
san=${2:-}
src=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
cmake -S "$src/consumer" -B "$tmp/cm" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
  -DCMAKE_C_FLAGS="$san" -DCMAKE_EXE_LINKER_FLAGS="$san" >/dev/null
cmake --build "$tmp/cm" >/dev/null
LD_LIBRARY_PATH="$tmp/prefix/lib:$tmp/prefix/lib/$(gcc -print-multiarch 2>/dev/null || true)" "$tmp/cm/consumer"
pcdir=$(dirname "$(find "$tmp/prefix" -name portmap.pc | head -n 1)")
flags=$(PKG_CONFIG_PATH=$pcdir pkg-config --cflags --libs portmap)
# shellcheck disable=SC2086
# shellcheck disable=SC2086
cc -std=c99 -Wall -Werror $san -o "$tmp/pc-consumer" "$src/consumer/main.c" $flags
LD_LIBRARY_PATH="$(dirname "$(find "$tmp/prefix" -name 'libportmap.so*' | head -n 1)")" "$tmp/pc-consumer"
echo "install test: find_package and pkg-config consumers built and ran"
