#!/usr/bin/env bash
# Set-up and start: installs what is missing, builds voxprint, and runs the
# server on http://127.0.0.1:7860 (arguments go to `voxprint serve`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)" --target voxprint-cli
exec build/apps/cli/voxprint serve "$@"
