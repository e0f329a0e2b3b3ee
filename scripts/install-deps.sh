#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install the Debian packages the build, the tests and the lab need, when
# they are missing. Needs root (apt-get); prints what it does.
set -euo pipefail

pkgs=(cmake make gcc g++ clang clang-format pkg-config libcmocka-dev libnatpmp-dev libminiupnpc-dev
  miniupnpd-nftables nftables miniupnpc natpmpc iproute2 python3 procps
  binutils mandoc man-db groff-base doxygen dpkg-dev file lintian libuv1-dev libevent-dev
  valgrind)

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}; run as root (or install them) and retry" >&2
  exit 2
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q "${missing[@]}" >/tmp/portmap-apt.log 2>&1; then
  apt-get update -q >>/tmp/portmap-apt.log 2>&1
  apt-get install -y -q "${missing[@]}" >>/tmp/portmap-apt.log 2>&1 || {
    echo "install-deps: apt-get failed; see /tmp/portmap-apt.log" >&2
    tail -n 20 /tmp/portmap-apt.log >&2
    exit 2
  }
fi
echo "install-deps: done"
