#!/usr/bin/env bash
# Runs every test: installs what is missing, builds (Release), runs the whole
# CTest suite, then builds again with AddressSanitizer and
# UndefinedBehaviorSanitizer and runs the suite under them (the browser tests
# run once, in the Release pass), and last builds the fuzz targets with
# libFuzzer (clang) and runs each for a short while (VOXPRINT_FUZZ_SECONDS,
# default 30).
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

# Fuzzing: every target of tests/fuzz built with clang's libFuzzer (the whole
# tree instrumented, ASan + UBSan), then run from its seeds for
# VOXPRINT_FUZZ_SECONDS each (default 30: about 7 min to build on 2 cores,
# 3 min to fuzz). A crash, sanitizer report, hang (-timeout) or memory
# blow-up (-rss_limit_mb) fails the script, with its input left in
# build-fuzz/findings/ (commit it to tests/fuzz/regressions/<target>/).
fuzz_seconds="${VOXPRINT_FUZZ_SECONDS:-30}"
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DVOXPRINT_FUZZ=ON -DVOXPRINT_BUILD_TESTS=OFF -DVOXPRINT_BUILD_BENCHMARKS=OFF \
  -DVOXPRINT_WITH_CUDA=OFF -DVOXPRINT_WEB_DIST="$PWD/tests/fuzz/web-dist"
cmake --build build-fuzz -j"$jobs" --target voxprint-fuzz
rm -rf build-fuzz/corpus build-fuzz/findings
mkdir -p build-fuzz/findings
fuzz_failed=()
for seeds in build-fuzz/tests/fuzz/fuzz-*.seeds; do
  target="$(basename "$seeds" .seeds)"
  corpus="build-fuzz/corpus/$target"
  mkdir -p "$corpus"
  while read -r seed; do
    if [ -d "$seed" ]; then
      find "$seed" -type f ! -name '.*' -exec cp -t "$corpus" {} +
    elif [ -f "$seed" ]; then
      cp -t "$corpus" "$seed"
    fi
  done <"$seeds"
  echo "voxprint: fuzzing $target for ${fuzz_seconds} s"
  if ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    "build-fuzz/tests/fuzz/$target" -max_total_time="$fuzz_seconds" \
      -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
      -artifact_prefix="build-fuzz/findings/$target-" "$corpus" \
      >"build-fuzz/$target.log" 2>&1; then
    grep -aE '^#[0-9]+[[:space:]]+DONE' "build-fuzz/$target.log" || true
  else
    # The server target logs every request: show the fuzzer's own lines.
    grep -av '^voxprint: ' "build-fuzz/$target.log" | grep -av '^"' | tail -n 40
    fuzz_failed+=("$target")
  fi
done
if [ ${#fuzz_failed[@]} -gt 0 ]; then
  echo "voxprint: fuzzing found problems in ${fuzz_failed[*]}: inputs in" \
    "build-fuzz/findings/, logs in build-fuzz/<target>.log" >&2
  exit 1
fi
