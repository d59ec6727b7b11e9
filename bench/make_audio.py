#!/usr/bin/python3
"""Benchmark inputs made from the reference kit's audio (run with /usr/bin/python3).

  make_audio.py KIT_DIR OUT_DIR

writes OUT_DIR/3s.wav (the first 3 s of sample.wav), OUT_DIR/10min.wav
(the kit's four 30 s speech files, 16 kHz, concatenated five times: 600 s)
OUT_DIR/2h.wav (10min.wav twelve times: 7200 s, 230 MB; voxprint's
bounded-memory check) and OUT_DIR/many/clip00.wav ... clip31.wav (32 clips
of 2 to 4 s cut from the 10 min audio: a many-short-files job).
Both are 16-bit PCM mono 16 kHz, so no system pays for resampling or for a
float decoder. Files already present with the right size are kept.
"""
import os
import sys
import wave

import numpy as np
import torchaudio

SAMPLE_RATE_HZ = 16000
LONG_SOURCES = ["sample.wav", "dev00.wav", "trn01.wav", "tst00.wav"]
LONG_REPEATS = 5
HOURS_REPEATS = 12  # of the 10 min audio: 2 hours
MANY_CLIPS = 32
MANY_MIN_S, MANY_MAX_S = 2.0, 4.0


def write_wav16(path, samples):
    pcm = np.clip(np.round(samples * 32768.0), -32768, 32767).astype("<i2")
    tmp = path + ".tmp"
    with wave.open(tmp, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE_HZ)
        out.writeframes(pcm.tobytes())
    os.replace(tmp, path)


def load_mono_16k(path):
    waveform, rate_hz = torchaudio.load(path)
    if rate_hz != SAMPLE_RATE_HZ:
        sys.exit(f"{path}: expected {SAMPLE_RATE_HZ} Hz, got {rate_hz}")
    return waveform.mean(dim=0).numpy()


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    audio_dir = os.path.join(sys.argv[1], "audio")
    out_dir = sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)

    sample = load_mono_16k(os.path.join(audio_dir, "sample.wav"))
    short_path = os.path.join(out_dir, "3s.wav")
    short = sample[: 3 * SAMPLE_RATE_HZ]
    if not (os.path.exists(short_path)
            and os.path.getsize(short_path) == 44 + 2 * len(short)):
        write_wav16(short_path, short)

    long_path = os.path.join(out_dir, "10min.wav")
    parts = [load_mono_16k(os.path.join(audio_dir, name))
             for name in LONG_SOURCES]
    long_audio = np.concatenate(parts * LONG_REPEATS)
    if not (os.path.exists(long_path)
            and os.path.getsize(long_path) == 44 + 2 * len(long_audio)):
        write_wav16(long_path, long_audio)

    hours_path = os.path.join(out_dir, "2h.wav")
    hours_samples = HOURS_REPEATS * len(long_audio)
    if not (os.path.exists(hours_path)
            and os.path.getsize(hours_path) == 44 + 2 * hours_samples):
        write_wav16(hours_path, np.tile(long_audio, HOURS_REPEATS))
    # Clip i lasts MANY_MIN_S + (MANY_MAX_S - MANY_MIN_S) * ((7 i) mod 32) / 31
    # seconds (all lengths, shuffled), starting 17 s further each time.
    many_dir = os.path.join(out_dir, "many")
    os.makedirs(many_dir, exist_ok=True)
    for i in range(MANY_CLIPS):
        fraction = ((7 * i) % MANY_CLIPS) / (MANY_CLIPS - 1)
        samples = int((MANY_MIN_S + (MANY_MAX_S - MANY_MIN_S) * fraction)
                      * SAMPLE_RATE_HZ)
        start = i * 17 * SAMPLE_RATE_HZ
        clip = long_audio[start:start + samples]
        path = os.path.join(many_dir, f"clip{i:02d}.wav")
        if not (os.path.exists(path)
                and os.path.getsize(path) == 44 + 2 * len(clip)):
            write_wav16(path, clip)

    print(f"{short_path}: {len(short) / SAMPLE_RATE_HZ:.3f} s")
    print(f"{long_path}: {len(long_audio) / SAMPLE_RATE_HZ:.3f} s")
    print(f"{hours_path}: {hours_samples / SAMPLE_RATE_HZ:.3f} s")
    print(f"{many_dir}: {MANY_CLIPS} clips of {MANY_MIN_S:g} to "
          f"{MANY_MAX_S:g} s")


if __name__ == "__main__":
    main()
