"""Missed speech and false alarm of `voxprint vad` against the kit's RTTMs.

Reference speech is the union of every speaker's turns for a recording;
the hypothesis is the union of the VAD's segments (RTTM output). Both are
rasterised at 16 kHz and compared without a collar (and with one when
--collar is given: that many seconds around each reference boundary are
not scored). Rates are over the reference speech, as in DER.

Usage: python3 tests/support/vad_quality.py VOXPRINT [--collar S] [VAD FLAGS...]
"""
import argparse
import pathlib
import subprocess

RATE = 16000
KIT = pathlib.Path(__file__).resolve().parents[2] / ".." / "shared" / "reference" / "audio"


def span(start, end, length):
    """Samples [start, end) as the bits of an integer."""
    start, end = max(start, 0), min(end, length)
    return (1 << end) - (1 << start) if end > start else 0


def read_rttm(text, uri, length):
    mask = 0
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5 or fields[0] != "SPEAKER" or fields[1] != uri:
            continue
        start = round(float(fields[3]) * RATE)
        end = round((float(fields[3]) + float(fields[4])) * RATE)
        mask |= span(start, end, length)
    return mask


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("voxprint")
    parser.add_argument("--collar", type=float, default=0.0)
    args, vad_flags = parser.parse_known_args()
    references = "".join(p.read_text() for p in sorted(KIT.glob("*.rttm")))
    totals = [0, 0, 0]
    print(f"{'file':8} {'speech_s':>8} {'missed':>7} {'false_al':>8}")
    for uri in ["sample", "dev00", "trn01", "tst00"]:
        audio = KIT / f"{uri}.wav"
        out = subprocess.run(
            [args.voxprint, "vad", "-q", "--format", "rttm", *vad_flags, str(audio)],
            check=True, capture_output=True, text=True).stdout
        length = 30 * RATE
        ref = read_rttm(references, uri, length)
        hyp = read_rttm(out, uri, length)
        everything = span(0, length, length)
        scored = everything
        if args.collar > 0:
            edges = (ref ^ (ref << 1)) & everything  # where ref changes
            half = round(args.collar * RATE)
            for edge in range(1, length):
                if edges >> edge & 1:
                    scored &= ~span(edge - half, edge + half, length)
        speech = (ref & scored).bit_count()
        missed = (ref & ~hyp & scored).bit_count()
        false_alarm = (hyp & ~ref & scored).bit_count()
        totals = [t + v for t, v in zip(totals, [speech, missed, false_alarm])]
        print(f"{uri:8} {speech / RATE:8.2f} {100 * missed / speech:6.2f}% "
              f"{100 * false_alarm / speech:7.2f}%")
    speech, missed, false_alarm = totals
    print(f"{'all':8} {speech / RATE:8.2f} {100 * missed / speech:6.2f}% "
          f"{100 * false_alarm / speech:7.2f}%")


if __name__ == "__main__":
    main()
