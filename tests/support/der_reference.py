"""DER computed on 1 ms frames with NumPy and SciPy's linear_sum_assignment,
for tests/unit/diarization-pipeline-test.cc (an independent computation:
frames instead of voxprint's exact interval sweep; exact for times in ms).
Usage: der_reference.py REF.rttm HYP.rttm COLLAR_EACH_SIDE_S
Prints JSON {total_s, missed_s, false_alarm_s, confusion_s}. Exit 3 when
NumPy or SciPy is missing."""
import json
import sys

try:
    import numpy as np
    from scipy.optimize import linear_sum_assignment
except ImportError as error:
    print(error)
    sys.exit(3)


def read(path):
    turns = []
    for line in open(path, encoding="utf-8"):
        f = line.split()
        if f and f[0] == "SPEAKER":
            start = round(float(f[3]) * 1000)
            turns.append((f[1], start, start + round(float(f[4]) * 1000), f[7]))
    return turns


def main():
    ref, hyp = read(sys.argv[1]), read(sys.argv[2])
    half = round(float(sys.argv[3]) * 1000)
    totals = dict(total=0, missed=0, false_alarm=0, confusion=0)
    for uri in sorted({t[0] for t in ref + hyp}):
        r = [t for t in ref if t[0] == uri]
        h = [t for t in hyp if t[0] == uri]
        end = max(t[2] for t in r + h) + half + 1
        rs = sorted({t[3] for t in r})
        hs = sorted({t[3] for t in h})
        R = np.zeros((len(rs), end), bool)
        H = np.zeros((len(hs), end), bool)
        for _, a, b, s in r:
            R[rs.index(s), a:b] = True
        for _, a, b, s in h:
            H[hs.index(s), a:b] = True
        scored = np.ones(end, bool)
        if half > 0:
            for _, a, b, _s in r:
                for t in (a, b):
                    scored[max(0, t - half):t + half] = False
        R, H = R[:, scored].astype(np.int64), H[:, scored].astype(np.int64)
        nr, nh = R.sum(0), H.sum(0)
        correct = 0
        if len(rs) and len(hs):
            co = R @ H.T
            rows, cols = linear_sum_assignment(-co)
            correct = int(co[rows, cols].sum())
        totals["total"] += int(nr.sum())
        totals["missed"] += int(np.maximum(nr - nh, 0).sum())
        totals["false_alarm"] += int(np.maximum(nh - nr, 0).sum())
        totals["confusion"] += int(np.minimum(nr, nh).sum()) - correct
    json.dump({k + "_s": v / 1000.0 for k, v in totals.items()}, sys.stdout)


if __name__ == "__main__":
    main()
