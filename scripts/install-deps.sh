#!/usr/bin/env bash
# Installs what voxprint needs on Debian 12 and is missing: the build
# toolchain and libraries (apt-get), and the front-end packages (npm ci).
# Safe to run again: it only installs what is absent.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake pkg-config git
  libavformat-dev libavcodec-dev libavutil-dev   # decoding (FFmpeg)
  libfftw3-dev                                   # FFT for the fbank
  libdnnl-dev ocl-icd-opencl-dev                 # oneDNN: CPU convolutions (its CMake config needs OpenCL)
  libzip-dev                                     # torch.save checkpoints
  libonnx-dev libprotobuf-dev protobuf-compiler  # ONNX model files
  libssl-dev libcurl4-openssl-dev                # SHA-256, model download
  nlohmann-json3-dev libcli11-dev libcpp-httplib-dev
  libsqlite3-dev libpq-dev                       # the speakers store: SQLite file, or a shared PostgreSQL
  python3-dev python3-pybind11                   # the Python module
  liblapack-dev                                  # diarization: spectral clustering's eigen-decomposition
  libgtest-dev libgmock-dev libbenchmark-dev     # tests and benchmarks
  clang libclang-rt-14-dev libomp-14-dev         # fuzzing: libFuzzer + sanitizer runtimes, clang's OpenMP
  python3-torch python3-torchaudio python3-numpy # cross-checks in tests
  python3-scipy                                  # clustering cross-checks in tests
  python3-distributed python3-pytest             # the Python module's tests, corpus jobs on Dask
  postgresql                                     # a throwaway PostgreSQL server for the store's tests
  chromium                                       # browser tests
  help2man dpkg-dev file                         # the .deb: man pages, dpkg-shlibdeps
  systemd                                        # systemd-analyze verify of the unit (tests)
)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" ||
    missing+=("$package")
done
command -v npm >/dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "voxprint: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Front-end packages: the web page's libraries, the browser-test driver and
# the benchmark's ONNX Runtime peer (its install script wants to download GPU
# files, hence --ignore-scripts).
for dir in web tests/e2e/server; do
  if [ -f "$dir/package-lock.json" ] && [ ! -d "$dir/node_modules" ]; then
    (cd "$dir" && npm ci --no-audit --no-fund)
  fi
done
if [ -f bench/package-lock.json ] && [ ! -d bench/node_modules ]; then
  (cd bench && npm ci --ignore-scripts --no-audit --no-fund)
fi
# The Silero VAD v5 model file that `voxprint vad` reads (only the file is
# used, so no install scripts run).
if [ -f models/vad/package-lock.json ] && [ ! -d models/vad/node_modules ]; then
  (cd models/vad && npm ci --ignore-scripts --no-audit --no-fund)
fi
