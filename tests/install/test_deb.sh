#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Build the Debian packages from the tree (cpack -G DEB), install them with
# dpkg -i, build and run consumers against the installed files (CMake and
# pkg-config), run the installed tools, then purge the packages again (also
# on failure). Needs root and dpkg; otherwise SKIPPED (exit 77).
# lintian's findings are printed when lintian is installed (not a failure).
# Usage: test_deb.sh SOURCE_DIR C_COMPILER
set -euo pipefail
src=$1
cc=${2:-cc}
skip() {
  echo "SKIPPED: $*"
  exit 77
}
[ "$(id -u)" = 0 ] || skip "dpkg -i needs root (run the suite as root, as CI does)"
command -v dpkg-deb >/dev/null && command -v cpack >/dev/null ||
  skip "dpkg-deb or cpack missing (scripts/install-deps.sh)"
so=${PORTMAP_SOVERSION:?set by CTest: the major version, in the SONAME}
lib=libportmap$so
pkgs=(portmap-tools libportmap-dev "$lib")
for p in "${pkgs[@]}"; do
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    skip "$p is already installed on this machine; not replacing it"
  fi
done

tmp=$(mktemp -d)
installed=0
cleanup() {
  if [ $installed = 1 ]; then
    dpkg --purge "${pkgs[@]}" >"$tmp/purge.log" 2>&1 || { cat "$tmp/purge.log" >&2; }
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "deb test: $*" >&2
  exit 1
}

# 1. Build the packages.
cmake -S "$src" -B "$tmp/build" -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_INSTALL_PREFIX=/usr -DPORTMAP_PACKAGING=ON -DPORTMAP_BUILD_TESTS=OFF >"$tmp/log" 2>&1 ||
  { cat "$tmp/log"; fail "configure failed"; }
cmake --build "$tmp/build" -j2 >"$tmp/log" 2>&1 || { cat "$tmp/log"; fail "build failed"; }
(cd "$tmp/build" && cpack -G DEB) >"$tmp/log" 2>&1 || { cat "$tmp/log"; fail "cpack failed"; }
debs=("$tmp"/build/*.deb)
[ ${#debs[@]} = 3 ] || fail "expected 3 packages, got: ${debs[*]}"
for d in "${debs[@]}"; do
  echo "$(dpkg-deb -f "$d" Package) $(dpkg-deb -f "$d" Version): Depends: $(dpkg-deb -f "$d" Depends)"
done
dep() { dpkg-deb -f "$tmp"/build/"$1"_*.deb Depends; }
ver=$(dpkg-deb -f "$tmp"/build/"$lib"_*.deb Version)
dep "$lib" | grep -q 'libnatpmp1' && dep "$lib" | grep -q 'libminiupnpc' ||
  fail "$lib does not depend on libnatpmp1 and libminiupnpc"
dep libportmap-dev | grep -qF "$lib (= $ver)" || fail "libportmap-dev: no $lib (= $ver)"
dep libportmap-dev | grep -q 'libnatpmp-dev' && dep libportmap-dev | grep -q 'libminiupnpc-dev' ||
  fail "libportmap-dev does not depend on libnatpmp-dev and libminiupnpc-dev"
# the tools link libportmap.a (PORTMAP_TOOLS_STATIC, the default): they need libnatpmp and
# miniupnpc (found by dpkg-shlibdeps), not the shared library's package
if dep portmap-tools | grep -qF "$lib"; then fail "portmap-tools depends on $lib"; fi
dep portmap-tools | grep -q 'libnatpmp1' && dep portmap-tools | grep -q 'libminiupnpc' ||
  fail "portmap-tools does not depend on libnatpmp1 and libminiupnpc"

if command -v lintian >/dev/null; then
  echo "lintian findings:"
  lintian --tag-display-limit 0 "${debs[@]}" 2>&1 | grep -v 'running with root' | sed 's/^/  /' || true
fi

# 2. Install them.
installed=1
dpkg -i "${debs[@]}" >"$tmp/log" 2>&1 || { cat "$tmp/log"; fail "dpkg -i failed"; }

# 3. Consumers against the installed files only (no prefix, no LD_LIBRARY_PATH).
unset LD_LIBRARY_PATH PKG_CONFIG_PATH CMAKE_PREFIX_PATH
for mode in OFF ON; do
  cmake -S "$src/tests/install/consumer" -B "$tmp/cm-$mode" -DCMAKE_C_COMPILER="$cc" \
    -DPORTMAP_USE_STATIC_LIBS=$mode >"$tmp/log" 2>&1 || { cat "$tmp/log"; fail "consumer configure"; }
  grep -q "/usr/lib/.*cmake/portmap" "$tmp/cm-$mode/CMakeCache.txt" ||
    fail "the consumer did not find the installed package"
  cmake --build "$tmp/cm-$mode" >"$tmp/log" 2>&1 || { cat "$tmp/log"; fail "consumer build"; }
  "$tmp/cm-$mode/consumer" >/dev/null || fail "consumer (static=$mode) failed"
done
readelf -d "$tmp/cm-OFF/consumer" | grep -q "NEEDED.*libportmap.so.$so" || fail "not linked to libportmap.so.$so"
# shellcheck disable=SC2046
"$cc" -o "$tmp/pc-consumer" "$src/tests/install/consumer/main.c" $(pkg-config --cflags --libs portmap)
"$tmp/pc-consumer" >/dev/null || fail "pkg-config consumer failed"
portmap --version >/dev/null || fail "installed portmap does not run"
portmap-probe --version >/dev/null || fail "installed portmap-probe does not run"
for t in /usr/bin/portmap /usr/bin/portmap-probe; do
  if readelf -d "$t" | grep -q 'NEEDED.*libportmap'; then fail "$t: linked to libportmap.so"; fi
done
for page in portmap portmap-probe libportmap; do
  man -w "$page" >/dev/null 2>&1 || fail "man $page: not found"
done
echo "deb test: packages installed; CMake (shared and static) and pkg-config consumers built and ran; tools and man pages present"

# 4. Purge, and nothing is left.
dpkg --purge "${pkgs[@]}" >"$tmp/log" 2>&1 || { cat "$tmp/log"; fail "dpkg --purge failed"; }
installed=0
for f in /usr/include/portmap/portmap.h /usr/bin/portmap /usr/bin/portmap-probe; do
  [ ! -e "$f" ] || fail "$f left after dpkg --purge"
done
for p in "${pkgs[@]}"; do
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'installed'; then
    fail "$p still installed after dpkg --purge"
  fi
done
echo "deb test: packages purged"
