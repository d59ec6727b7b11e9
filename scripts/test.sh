#!/usr/bin/env bash
# Runs every test: installs what is missing, builds (Release), runs the whole
# CTest suite, then builds again with AddressSanitizer and
# UndefinedBehaviorSanitizer and runs the suite under them (the browser tests
# run once, in the Release pass).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs="$(nproc)"

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs" --timeout 1500

cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DVOXPRINT_SANITIZE=address,undefined -DVOXPRINT_BUILD_BENCHMARKS=OFF
cmake --build build-sanitize -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-sanitize --output-on-failure -j"$jobs" \
    --timeout 3000 --exclude-regex "e2e-server-browser"
