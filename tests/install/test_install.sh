#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install the built tree into a temporary prefix, move the prefix elsewhere
# (nothing may depend on where it was installed), then check what is there
# and build and run programs against it: find_package(portmap) with the
# default and with the static library, pkg-config with the shared and with
# the static library; and run the installed tools from the moved prefix
# (linked with libportmap.a by default: no libportmap.so, no RPATH needed; and with
# libnatpmp.a and libminiupnpc.a where installed: no shared library but libc's).
# Usage: test_install.sh BUILD_DIR SANITIZE_FLAGS SHARED(0|1) TOOLS_STATIC(0|1)
#          STATIC_DEPS(0|1) STATIC_LIBC(0|1)
set -euo pipefail
build=$1
# a sanitized library needs its runtime in the program that links it
san=${2:-}
shared=${3:-1}
tools_static=${4:-1}
static_deps=${5:-0}
static_libc=${6:-0}
src=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() {
  echo "install test: $*" >&2
  exit 1
}

cmake --install "$build" --prefix "$tmp/installed" >/dev/null
mv "$tmp/installed" "$tmp/prefix"
p=$tmp/prefix
unset LD_LIBRARY_PATH

# What the prefix holds.
[ -f "$p/include/portmap/portmap.h" ] || fail "no include/portmap/portmap.h"
libdir=$(dirname "$(find "$p" -name libportmap.a | head -n 1)")
[ -f "$libdir/libportmap.a" ] || fail "no libportmap.a"
if [ "$shared" = 1 ]; then
  [ -e "$libdir/libportmap.so" ] && [ -e "$libdir/libportmap.so.${PORTMAP_SOVERSION:?}" ] ||
    fail "no libportmap.so(.${PORTMAP_SOVERSION})"
elif find "$p" -name 'libportmap.so*' | grep -q .; then
  fail "BUILD_SHARED_LIBS=OFF installed a shared library"
fi
cmdir=$libdir/cmake/portmap
for f in portmapConfig.cmake portmapConfigVersion.cmake portmap-static-targets.cmake \
  FindPortmapNatpmp.cmake FindPortmapMiniupnpc.cmake; do
  [ -f "$cmdir/$f" ] || fail "no $cmdir/$f"
done
[ -f "$libdir/pkgconfig/portmap.pc" ] || fail "no portmap.pc"
for m in man1/portmap.1 man1/portmap-probe.1 man3/libportmap.3; do
  [ -f "$p/share/man/$m" ] || fail "no man page $m"
done
# The exported targets name no absolute path: every file comes from
# ${_IMPORT_PREFIX}, every dependency is an imported target.
if grep -nE '(INTERFACE|IMPORTED)_[A-Z_]+ +"' "$cmdir"/portmap-*targets*.cmake | grep -E '"/|;/'; then
  fail "an absolute path in the exported targets (above)"
fi
if grep -n 'INTERFACE_LINK_LIBRARIES' "$cmdir"/portmap-*targets.cmake | grep -E '\.so|\.a[";]'; then
  fail "a library file in INTERFACE_LINK_LIBRARIES (above)"
fi

# The tools start from the moved prefix, no LD_LIBRARY_PATH: linked with libportmap.a they
# need neither libportmap.so nor an RPATH; linked with libportmap.so they find it through
# their RPATH $ORIGIN/../lib.
for t in portmap portmap-probe; do
  needs=$(readelf -d "$p/bin/$t" | grep -c 'NEEDED.*libportmap' || true)
  paths=$(readelf -d "$p/bin/$t" | grep -cE '\((RPATH|RUNPATH)\)' || true)
  if [ "$tools_static" = 1 ]; then
    [ "$needs" = 0 ] || fail "$t: linked to libportmap.so (PORTMAP_TOOLS_STATIC is on)"
    [ "$paths" = 0 ] || fail "$t: an RPATH it does not need"
  elif [ "$shared" = 1 ]; then
    [ "$needs" != 0 ] || fail "$t: not linked to libportmap.so (PORTMAP_TOOLS_STATIC is off)"
  fi
  if [ "$static_deps" = 1 ]; then
    other=$(readelf -d "$p/bin/$t" | grep 'NEEDED' | grep -E 'libnatpmp|libminiupnpc' || true)
    [ -z "$other" ] || fail "$t: PORTMAP_TOOLS_STATIC_DEPS is on, yet it needs: $other"
  fi
  if [ "$static_libc" = 1 ]; then
    if readelf -lW "$p/bin/$t" | grep -q 'INTERP\|NEEDED'; then
      fail "$t: PORTMAP_TOOLS_STATIC_LIBC is on, yet it has a program interpreter"
    fi
    readelf -d "$p/bin/$t" | grep -q 'NEEDED' && fail "$t: static-pie, yet it needs a library"
  fi
  "$p/bin/$t" --version >/dev/null || fail "installed $t does not run"
done

run_consumer() { # NAME DYNAMIC(0|1) BINARY
  local needs
  needs=$(readelf -d "$3" | grep -c 'NEEDED.*libportmap' || true)
  if [ "$2" = 1 ] && [ "$needs" = 0 ]; then fail "$1: not linked to libportmap.so"; fi
  if [ "$2" = 0 ] && [ "$needs" != 0 ]; then fail "$1: linked to libportmap.so"; fi
  LD_LIBRARY_PATH=$libdir "$3" >/dev/null || fail "$1: the consumer failed"
  echo "install test: $1 consumer built and ran"
}

# find_package: portmap::portmap (shared when installed), then the static one.
for mode in default static; do
  cmake -S "$src/consumer" -B "$tmp/cm-$mode" -DCMAKE_PREFIX_PATH="$p" \
    -DPORTMAP_USE_STATIC_LIBS=$([ $mode = static ] && echo ON || echo OFF) \
    -DCMAKE_C_FLAGS="$san" -DCMAKE_EXE_LINKER_FLAGS="$san" >/dev/null
  cmake --build "$tmp/cm-$mode" >/dev/null
  dyn=$shared
  [ $mode = static ] && dyn=0
  run_consumer "find_package ($mode)" "$dyn" "$tmp/cm-$mode/consumer"
done

# pkg-config: dynamic, and --static with the archive.
export PKG_CONFIG_PATH=$libdir/pkgconfig
if [ "$shared" = 1 ]; then
  # shellcheck disable=SC2046
  cc -std=c99 -Wall -Werror $san -o "$tmp/pc-consumer" "$src/consumer/main.c" \
    $(pkg-config --cflags --libs portmap)
  run_consumer "pkg-config" 1 "$tmp/pc-consumer"
fi
flags=$(pkg-config --static --cflags --libs portmap)
# shellcheck disable=SC2086
cc -std=c99 -Wall -Werror $san -o "$tmp/pc-static" "$src/consumer/main.c" \
  ${flags/-lportmap/-l:libportmap.a}
run_consumer "pkg-config --static" 0 "$tmp/pc-static"
echo "install test: prefix complete, relocatable; tools and consumers run"
