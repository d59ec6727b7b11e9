#!/bin/bash
# The GPU checks, on a machine with an NVIDIA GPU, from the bundle that
# scripts/gpu/bundle.sh made in .gpu/. Everything goes to $OUT (default
# /tmp/voxprint-gpu): the CUDA conformance test's log, voxprint-gpu-bench's
# JSON (fp32 and tf32), the PyTorch peer's JSON on the same GPU, and
# compute-sanitizer's memcheck of the conformance tests on small networks.
# bench/gpu_table.py turns the JSON into RESULTS.md's GPU rows.
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/voxprint-gpu}
mkdir -p "$OUT"
bundle=$PWD/.gpu
lib_dir=$(mktemp -d)
tar -C "$lib_dir" -xJf "$bundle/libs.tar.xz"
cudnn=$(find /usr/local/cuda*/lib* /usr/lib/x86_64-linux-gnu /opt /usr/local/lib \
          -name 'libcudnn.so.9*' 2>/dev/null | head -1)
export LD_LIBRARY_PATH=$lib_dir/libs:${cudnn:+$(dirname "$cudnn"):}${LD_LIBRARY_PATH:-}
export VOXPRINT_REFERENCE_DIR=$bundle/kit
{
  nvidia-smi -L; echo "cudnn: $cudnn"; nproc
} > "$OUT/machine.log" 2>&1

step() {  # name, seconds, command...
  local name=$1 limit=$2; shift 2
  local start=$SECONDS
  timeout "$limit" "$@"
  echo "== $name: exit $? in $((SECONDS - start)) s" >> "$OUT/machine.log"
}
step conformance 120 "$bundle/backends-cuda-backend-test" \
  > "$OUT/conformance.log" 2>&1
step memcheck 90 compute-sanitizer --tool memcheck --error-exitcode 3 \
  "$bundle/backends-cuda-backend-test" \
  --gtest_filter='CudaConformance.*-CudaConformance.ReferenceKit*:CudaConformance.Tf32*' \
  > "$OUT/memcheck.log" 2>&1
bench=("$bundle/voxprint-gpu-bench" --samples "$bundle/sample.f32")
step bench-fp32 75 "${bench[@]}" --batches 1,8,16,32 \
  > "$OUT/voxprint-fp32.json" 2>> "$OUT/machine.log"
PYTHONUNBUFFERED=1 step pytorch 120 python3 bench/peers/pytorch_reference.py gpu \
  --kit "$bundle/kit" --samples "$bundle/sample.f32" \
  > "$OUT/pytorch-gpu.json" 2>> "$OUT/machine.log"
step bench-tf32 75 "${bench[@]}" --precision tf32 --batches 1,8,16,32 \
  > "$OUT/voxprint-tf32.json" 2>> "$OUT/machine.log"
cat "$OUT/machine.log"
