#!/usr/bin/env bash
# Runs every test: installs what is missing, builds (Release), runs the whole
# CTest suite, then builds again with AddressSanitizer and
# UndefinedBehaviorSanitizer and runs the suite under them (the browser tests
# run once, in the Release pass), and last builds the fuzz targets with
# libFuzzer (clang) and runs each for a short while (VOXPRINT_FUZZ_SECONDS,
# default 45).
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
# tree instrumented, ASan + UBSan), then run briefly from its seeds. Any
# crash, sanitizer report, hang (-timeout) or memory blow-up (-rss_limit_mb)
# fails the script; the input that did it is left in build-fuzz/findings/.
# Budget: ~5 min to build on 2 cores (ccache), then fuzz_seconds per target.
fuzz_seconds="${VOXPRINT_FUZZ_SECONDS:-45}"
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DVOXPRINT_FUZZ=ON -DVOXPRINT_BUILD_TESTS=OFF -DVOXPRINT_BUILD_BENCHMARKS=OFF \
  -DVOXPRINT_WITH_CUDA=OFF -DVOXPRINT_WEB_DIST="$PWD/tests/fuzz/web-dist"
cmake --build build-fuzz -j"$jobs" --target voxprint-fuzz
rm -rf build-fuzz/corpus build-fuzz/findings
mkdir -p build-fuzz/findings
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
  if ! ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    "build-fuzz/tests/fuzz/$target" -max_total_time="$fuzz_seconds" \
      -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
      -artifact_prefix="build-fuzz/findings/$target-" "$corpus" \
      >"build-fuzz/$target.log" 2>&1; then
    # The server target logs every request: keep the fuzzer's own lines.
    grep -v '^voxprint: ' "build-fuzz/$target.log" | tail -n 60
    echo "voxprint: $target found a problem; input in build-fuzz/findings/" >&2
    exit 1
  fi
  grep -E '^(#[0-9]+ +DONE|stat::)' "build-fuzz/$target.log" || true
done
