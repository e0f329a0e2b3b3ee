#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Used through add_subdirectory(), libportmap registers no tests by default
# and gives the parent portmap::portmap. Configure only (fast).
# Usage: test_subproject.sh SOURCE_DIR
set -euo pipefail
src=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/parent"
cat >"$tmp/parent/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.18)
project(parent C)
enable_testing()
add_subdirectory("$src" portmap)
if(NOT TARGET portmap::portmap)
  message(FATAL_ERROR "no portmap::portmap")
endif()
if(PORTMAP_BUILD_TESTS)
  message(FATAL_ERROR "PORTMAP_BUILD_TESTS is on in a subproject")
endif()
add_executable(app "$src/tests/install/consumer/main.c")
target_link_libraries(app PRIVATE portmap::portmap)
CMAKE
cmake -S "$tmp/parent" -B "$tmp/build" >"$tmp/log" 2>&1 || { cat "$tmp/log"; exit 1; }
n=$(cd "$tmp/build" && ctest -N | sed -n 's/^Total Tests: //p')
if [ "$n" != 0 ]; then
  echo "subproject: $n tests registered, expected none" >&2
  exit 1
fi
echo "subproject: configured, portmap::portmap present, no tests registered"
