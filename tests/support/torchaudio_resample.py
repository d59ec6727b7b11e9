#!/usr/bin/python3
"""torchaudio's resampler as a test oracle for voxprint (tests only).

Run with /usr/bin/python3 (Debian's torch 1.13 + torchaudio 0.13).

  torchaudio_resample.py check
      exit 0 when torch and torchaudio import.
  torchaudio_resample.py jobs JOBFILE
      each line of JOBFILE is "resample IN OUT FROM_HZ TO_HZ": IN holds raw
      little-endian float32 samples (mono); OUT receives
      torchaudio.functional.resample(IN, FROM_HZ, TO_HZ) as raw float32
      (sinc_interp_hann, lowpass_filter_width 6, rolloff 0.99: the defaults,
      as pyannote.audio uses them). "kernel OUT FROM_HZ TO_HZ" writes the
      float32 kernel [new][2 * width + orig] of _get_sinc_resample_kernel.
      "mean IN OUT CHANNELS" reads interleaved float32 frames and writes
      x.mean(dim=0) of the [channels, frames] tensor, as pyannote.audio
      downmixes.
      Jobs share one interpreter, since importing torch takes seconds.
"""
import math
import sys

import numpy as np
import torch
import torchaudio.functional as F
from torchaudio.functional.functional import _get_sinc_resample_kernel


def resample(src, dst, from_hz, to_hz):
    x = torch.from_numpy(np.fromfile(src, dtype="<f4").copy())
    y = F.resample(x[None], from_hz, to_hz)[0]
    y.numpy().astype("<f4").tofile(dst)


def kernel(dst, from_hz, to_hz):
    gcd = math.gcd(from_hz, to_hz)
    # resample() builds its kernel in the waveform dtype (float32).
    k, width = _get_sinc_resample_kernel(from_hz, to_hz, gcd,
                                         dtype=torch.float32)
    k = k.reshape(k.shape[0], -1)
    k.numpy().astype("<f4").tofile(dst)
    print(f"kernel {k.shape[0]} {k.shape[1]} {width}")


def mean(src, dst, channels):
    x = np.fromfile(src, dtype="<f4").reshape(-1, channels)
    # Contiguous [channels, frames], as loaders return it.
    t = torch.from_numpy(np.ascontiguousarray(x.T))
    t.mean(dim=0).numpy().astype("<f4").tofile(dst)


def main(argv):
    torch.set_num_threads(1)
    if len(argv) == 2 and argv[1] == "check":
        return 0
    if len(argv) != 3 or argv[1] != "jobs":
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[2]) as jobs:
        for line in jobs:
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "resample" and len(parts) == 5:
                resample(parts[1], parts[2], int(parts[3]), int(parts[4]))
            elif parts[0] == "mean" and len(parts) == 4:
                mean(parts[1], parts[2], int(parts[3]))
            elif parts[0] == "kernel" and len(parts) == 4:
                kernel(parts[1], int(parts[2]), int(parts[3]))
            else:
                print(f"bad job line: {line!r}", file=sys.stderr)
                return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
