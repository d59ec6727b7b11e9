#!/bin/bash
# Packs what the GPU checks need into .gpu/ (ignored by git), for a machine
# with an NVIDIA GPU that lacks this project's Debian libraries (the lent
# GPU machines have CUDA, cuDNN and PyTorch, but no FFmpeg or oneDNN):
#   the CUDA conformance test and voxprint-gpu-bench (built here, Release),
#   the shared libraries they load that such a machine lacks (xz tarball;
#   glibc, libstdc++ and cuDNN are the machine's own), the part of the
#   reference kit they read, and the kit's sample.wav as raw float32.
# Then scripts/gpu/check.sh runs there. Usage: scripts/gpu/bundle.sh [KIT]
set -euo pipefail
cd "$(dirname "$0")/../.."
kit=${1:-../shared/reference}
out=.gpu
mkdir -p "$out"
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude

cmake --build build --target backends-cuda-backend-test -j2
cmake --build build-bench --target voxprint-gpu-bench -j2
cp build/tests/backends-cuda-backend-test build-bench/bench/voxprint-gpu-bench "$out/"

libs=$(mktemp -d)
mkdir -p "$libs/libs"
for binary in "$out/backends-cuda-backend-test" "$out/voxprint-gpu-bench"; do
  ldd "$binary" | awk '$3 ~ /^\// {print $3}'
done | sort -u | grep -Ev '/(libc|libm|libstdc\+\+|libgcc_s|ld-linux[^/]*|libpthread|libdl|librt|libcudnn[^/]*)\.so' |
  while read -r lib; do cp -L "$lib" "$libs/libs/"; done
tar -C "$libs" -cf - libs | xz -T0 -6 > "$out/libs.tar.xz"
rm -rf "$libs"

rm -rf "$out/kit"
mkdir -p "$out/kit/models" "$out/kit/expected"
cp "$kit/manifest.json" "$out/kit/"
cp "$kit/models/pytorch_model.bin" "$out/kit/models/"
cp "$kit"/expected/*.fbank.npy "$kit"/expected/*.whole.npy \
   "$kit"/expected/sample_wav.sliding_3.0_1.0.npy "$out/kit/expected/"
/usr/bin/python3 - "$kit/audio/sample.wav" "$out/sample.f32" <<'PY'
import sys, wave
import numpy as np
with wave.open(sys.argv[1]) as w:
    assert w.getsampwidth() == 2 and w.getnchannels() == 1
    assert w.getframerate() == 16000
    pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
(pcm.astype(np.float32) / 32768.0).astype("<f4").tofile(sys.argv[2])
PY
du -sh "$out"
