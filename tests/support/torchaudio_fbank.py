#!/usr/bin/python3
"""Reference fbank for voxprint's cross-check tests (test-only, never runtime).

Usage: torchaudio_fbank.py IN.npy OUT.npy [IN.npy OUT.npy ...]

Each IN.npy holds float32 mono samples in [-1, 1] at 16 kHz. Each OUT.npy gets
float32 [frames, 80]: torchaudio.compliance.kaldi.fbank exactly as pyannote's
WeSpeaker wrapper calls it, on waveform * 32768, BEFORE the mean over time is
subtracted (the test does that part itself). Several pairs per call amortise
the slow `import torch`.

Exit status: 0 on success, 3 when torch/torchaudio are missing (the test skips),
1 on any other failure.
"""
import sys


def main(argv):
    if len(argv) < 3 or len(argv) % 2 != 1:
        print(__doc__, file=sys.stderr)
        return 1
    try:
        import numpy as np
        import torch
        import torchaudio.compliance.kaldi as kaldi
    except ImportError as error:
        print(f"missing module: {error}", file=sys.stderr)
        return 3
    torch.set_num_threads(1)
    for in_path, out_path in zip(argv[1::2], argv[2::2]):
        samples = np.load(in_path)
        if samples.dtype != np.float32 or samples.ndim != 1:
            print(f"{in_path}: expected 1-D float32", file=sys.stderr)
            return 1
        waveform = torch.from_numpy(samples).unsqueeze(0) * (1 << 15)
        features = kaldi.fbank(
            waveform,
            num_mel_bins=80,
            frame_length=25,
            frame_shift=10,
            dither=0.0,
            sample_frequency=16000,
            window_type="hamming",
            use_energy=False,
            snip_edges=True,
            round_to_power_of_two=True,
        )
        np.save(out_path, features.numpy().astype(np.float32))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
