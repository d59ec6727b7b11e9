#!/usr/bin/python3
"""PyTorch peer of `voxprint diarize`: WeSpeaker's diarization pipeline in torch.

Run with /usr/bin/python3 (Debian's torch 1.13, torchaudio, numpy, scipy).

  wespeaker_diarize_pytorch.py AUDIO --vad VAD.json --cli VOXPRINT
                               [--voxprint DIARIZE.json] [--kit DIR]
                               [--threads 2] [--batch 32] [--runs 1]

What it does is what WeSpeaker's `Speaker.diarize` (wespeaker/cli/speaker.py)
does, with voxprint's model, windows and clustering so that the two compute
the same thing:
- speech segments: read from VAD.json (`voxprint vad --format json` on AUDIO).
  WeSpeaker runs Silero VAD here; Silero's model for torch is not available on
  this machine, so the peer's VAD is NOT timed (this favours the peer);
- reads AUDIO whole (torchaudio.load), fbank per speech segment
  (torchaudio.compliance.kaldi.fbank with pyannote's parameters, the ones
  voxprint and pytorch_reference.py use), then each window's frames cut out of
  its segment's fbank, as WeSpeaker's `subsegment` cuts them; a window whose
  start is not on the segment's 10 ms frame grid (the last window of a
  segment, ending at the segment's end, or the one window centred on a short
  segment) gets the fbank of its own samples;
- the windows are voxprint's (PlanDiarizationWindows: 1.5 s every 0.75 s
  inside each segment, recomputed here with the same rule), all features
  stacked, minus each window's mean over time (WeSpeaker's subseg_cmn), the
  ResNet34 of pytorch_reference.py in batches of 32 (WeSpeaker's default
  diar_batch_size / --diar_emb_bs);
- clustering: voxprint's default, pyannote 3.1's agglomerative clustering
  (unit vectors, scipy linkage(method="centroid"), fcluster at the threshold,
  clusters under min(12, round(0.1 N)) members joined to the nearest large
  one by cosine distance of centroids); WeSpeaker's own default is spectral;
- turns: voxprint's TurnsFromWindowLabels (the turn changes at the middle of
  two windows' overlap), speakers numbered by first window.

Before timing it embeds up to three windows with `voxprint embed --start
--end` and refuses to time unless its embeddings of the same windows agree
(relative L2 <= 1e-4). With --voxprint (the JSON of `voxprint diarize
--format json` on AUDIO) it then checks the window count, the turns and
labels (the same partition, speakers numbered alike) and each speaker's
centroid (relative L2 <= 1e-4), and exits 1 if any differs.
Prints one JSON object on stdout.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
import torchaudio
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import cdist

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pytorch_reference  # noqa: E402  (the network, the checkpoint reader)

SAMPLE_RATE_HZ = 16000
FRAME_SHIFT = 160  # samples (10 ms)
FRAME_LENGTH = 400  # samples (25 ms)
WINDOW_S, STEP_S = 1.5, 0.75
DIAR_BATCH_SIZE = 32  # WeSpeaker's diar_batch_size default
AHC_THRESHOLD = 0.7045654963945799  # pyannote 3.1 (voxprint's default)
MIN_CLUSTER_SIZE = 12
TOLERANCE = 1e-4


def log(message):
    print(f"[wespeaker-peer] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------- windows --
def plan_windows(segments, total, window_s=WINDOW_S, step_s=STEP_S):
    """voxprint's PlanDiarizationWindows: (start, end, speech_start,
    speech_end, segment) in samples, in time order."""
    window = int(round(window_s * SAMPLE_RATE_HZ))
    step = int(round(step_s * SAMPLE_RATE_HZ))
    windows = []
    for index, (first, last) in enumerate(segments):
        begin = min(max(first, 0), total)
        end = min(max(last, begin), total)
        if end <= begin:
            continue
        if total <= window:
            windows.append((0, total, begin, end, index))
        elif end - begin <= window:
            start = min(max(begin - (window - (end - begin)) // 2, 0),
                        total - window)
            windows.append((start, start + window, begin, end, index))
        else:
            start = begin
            while start + window <= end:
                windows.append((start, start + window, start, start + window,
                                index))
                start += step
            if windows[-1][1] < end:
                windows.append((end - window, end, end - window, end, index))
    return windows


def turns_from_labels(windows, labels):
    """voxprint's TurnsFromWindowLabels: (from, to, label) in samples."""
    turns = []
    for i, (_, _, speech_start, speech_end, segment) in enumerate(windows):
        before = i > 0 and windows[i - 1][4] == segment
        after = i + 1 < len(windows) and windows[i + 1][4] == segment
        start = (max(speech_start, (speech_start + windows[i - 1][3]) // 2)
                 if before else speech_start)
        end = (min(speech_end, (windows[i + 1][2] + speech_end) // 2)
               if after else speech_end)
        if end <= start:
            continue
        if turns and turns[-1][2] == labels[i] and turns[-1][1] == start:
            turns[-1][1] = end
        else:
            turns.append([start, end, labels[i]])
    return turns


# ------------------------------------------------------------ features --
def kaldi_fbank(samples):
    """Log mel fbank [frames, 80] of 1-D samples in [-1, 1], pyannote's
    parameters (as pytorch_reference.fbank), not mean-subtracted."""
    return torchaudio.compliance.kaldi.fbank(
        samples[None] * 32768.0, num_mel_bins=80, frame_length=25,
        frame_shift=10, dither=0.0, sample_frequency=SAMPLE_RATE_HZ,
        window_type="hamming", use_energy=False, snip_edges=True,
        round_to_power_of_two=True)


def window_features(audio, segments, windows, wanted):
    """Features [len(wanted), frames, 80] of windows[wanted], minus each
    window's mean over time: one fbank per speech segment, each window's
    frames cut out of it (WeSpeaker's subsegment) when the window starts on
    the segment's frame grid, else the fbank of the window's own samples."""
    by_segment = {}
    for i in wanted:
        by_segment.setdefault(windows[i][4], []).append(i)
    feats = {}
    for index, members in by_segment.items():
        begin = segments[index][0]
        segment_fbank = None
        for i in members:
            start, end = windows[i][0], windows[i][1]
            frames = 1 + (end - start - FRAME_LENGTH) // FRAME_SHIFT
            offset = start - begin
            if offset >= 0 and offset % FRAME_SHIFT == 0 and \
                    end <= segments[index][1]:
                if segment_fbank is None:
                    segment_fbank = kaldi_fbank(
                        audio[begin:segments[index][1]])
                first = offset // FRAME_SHIFT
                feats[i] = segment_fbank[first:first + frames]
            else:
                feats[i] = kaldi_fbank(audio[start:end])
    stacked = torch.stack([feats[i] for i in wanted])
    return stacked - stacked.mean(dim=1, keepdim=True)


def embed(net, feats, batch):
    return torch.cat([net(feats[i:i + batch])
                      for i in range(0, feats.shape[0], batch)]).numpy()


# ---------------------------------------------------------- clustering --
def agglomerative(embeddings, threshold=AHC_THRESHOLD,
                  min_cluster_size=MIN_CLUSTER_SIZE):
    """pyannote 3.1's AgglomerativeClustering without a speaker count, as
    voxprint's default: labels 0..K-1."""
    n = embeddings.shape[0]
    if n == 1:
        return np.zeros(1, dtype=int)
    unit = embeddings.astype(np.float64)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    min_size = min(min_cluster_size, max(1, round(0.1 * n)))
    dendrogram = linkage(unit, method="centroid", metric="euclidean")
    clusters = fcluster(dendrogram, threshold, criterion="distance") - 1
    ids, counts = np.unique(clusters, return_counts=True)
    if np.count_nonzero(counts >= min_size) == 0:
        # No large cluster: pyannote looks for the cut of the dendrogram,
        # nearest the threshold first, that gives one.
        by_index = dendrogram.copy()
        by_index[:, 2] = np.arange(n - 1)
        order = np.argsort(np.abs(dendrogram[:, 2] - threshold),
                           kind="stable")
        best_iteration, best_large = n - 1, 1
        for iteration in order:
            if dendrogram[iteration, 3] < min_size:
                continue
            clusters = fcluster(by_index, iteration,
                                criterion="distance") - 1
            ids, counts = np.unique(clusters, return_counts=True)
            found = np.count_nonzero(counts >= min_size)
            if abs(found - 1) < abs(best_large - 1):
                best_iteration, best_large = iteration, found
            if found == 1:
                break
        if best_large != 1:
            clusters = fcluster(by_index, best_iteration,
                                criterion="distance") - 1
            ids, counts = np.unique(clusters, return_counts=True)
    large = ids[counts >= min_size]
    small = ids[counts < min_size]
    if len(large) == 0:
        return np.zeros(n, dtype=int)
    if len(small):
        large_centroids = np.vstack([unit[clusters == k].mean(axis=0)
                                     for k in large])
        small_centroids = np.vstack([unit[clusters == k].mean(axis=0)
                                     for k in small])
        nearest = np.argmin(cdist(large_centroids, small_centroids,
                                  metric="cosine"), axis=0)
        for small_id, large_index in zip(small, nearest):
            clusters[clusters == small_id] = large[large_index]
    return np.unique(clusters, return_inverse=True)[1]


def by_first_appearance(labels):
    order = {}
    return [order.setdefault(label, len(order)) for label in labels]


# ------------------------------------------------------------ pipeline --
def diarize(net, path, segments, batch):
    """WeSpeaker's diarize with the segments given: (result, stage seconds)."""
    stages = {}
    t0 = time.perf_counter()
    waveform, rate_hz = torchaudio.load(path)
    if rate_hz != SAMPLE_RATE_HZ or waveform.shape[0] != 1:
        sys.exit(f"{path}: expected mono {SAMPLE_RATE_HZ} Hz, got "
                 f"{waveform.shape[0]} channel(s) at {rate_hz} Hz")
    audio = waveform[0]
    t1 = time.perf_counter()
    stages["load_s"] = t1 - t0
    windows = plan_windows(segments, audio.shape[0])
    feats = window_features(audio, segments, windows, range(len(windows)))
    t2 = time.perf_counter()
    stages["fbank_s"] = t2 - t1
    embeddings = embed(net, feats, batch)
    del feats
    t3 = time.perf_counter()
    stages["network_s"] = t3 - t2
    labels = by_first_appearance(agglomerative(embeddings))
    t4 = time.perf_counter()
    stages["clustering_s"] = t4 - t3
    turns = turns_from_labels(windows, labels)
    stages["turns_s"] = time.perf_counter() - t4
    return {"audio_samples": int(audio.shape[0]), "windows": windows,
            "embeddings": embeddings, "labels": labels,
            "turns": turns}, stages


# -------------------------------------------------------------- checks --
def rel_l2(actual, expected):
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    return float(np.linalg.norm(actual - expected) / np.linalg.norm(expected))


def check_windows(net, args, segments):
    """Up to three windows (the first, the first one off the frame grid, the
    first centred on a short segment) embedded here and by `voxprint embed
    --start --end`."""
    waveform, _ = torchaudio.load(args.audio)
    audio = waveform[0]
    windows = plan_windows(segments, audio.shape[0])
    if not windows:
        sys.exit(f"{args.vad}: no speech segments, nothing to diarize")
    picked = [0]
    for i, (start, end, speech_start, speech_end, index) in \
            enumerate(windows):
        off_grid = (start - segments[index][0]) % FRAME_SHIFT != 0
        centred = (speech_start, speech_end) != (start, end)
        if off_grid and not centred and len(picked) < 2:
            picked.append(i)
        if centred:
            picked.append(i)
            break
    feats = window_features(audio, segments, windows, picked)
    mine = embed(net, feats, DIAR_BATCH_SIZE)
    checks = []
    for row, i in enumerate(picked):
        start, end = windows[i][0], windows[i][1]
        # floor(t * 16000) gives back the sample index.
        cmd = [args.cli, "embed", args.audio, "--model", args.model,
               "--start", repr((start + 0.25) / SAMPLE_RATE_HZ),
               "--end", repr((end + 0.25) / SAMPLE_RATE_HZ),
               "--format", "json", "--quiet", "--threads",
               str(args.threads)]
        out = subprocess.run(cmd, stdout=subprocess.PIPE, check=True)
        theirs = json.loads(out.stdout)["results"][0]["embedding"]
        checks.append({"window": i, "start_sample": start,
                       "end_sample": end,
                       "rel_l2": rel_l2(mine[row], theirs)})
    worst = max(c["rel_l2"] for c in checks)
    if worst > TOLERANCE:
        sys.exit(f"wespeaker_diarize_pytorch: window embeddings differ from "
                 f"voxprint embed's: rel L2 {worst:.3g} > {TOLERANCE} "
                 f"({checks}); not timing")
    return checks


def agreement(result, voxprint_json):
    """The peer's windows, turns, labels and centroids against `voxprint
    diarize --format json` on the same file."""
    mine = voxprint_json["results"][0]
    if "error" in mine:
        sys.exit(f"voxprint diarize failed: {mine['detail']}")
    out = {"windows_equal": mine["num_windows"] == len(result["windows"]),
           "voxprint_windows": mine["num_windows"]}
    turns = [{"start_s": a / SAMPLE_RATE_HZ, "end_s": b / SAMPLE_RATE_HZ,
              "speaker": f"SPEAKER_{label:02d}"}
             for a, b, label in result["turns"]]
    theirs = mine["segments"]
    out["turns"] = len(turns)
    out["turns_equal"] = len(turns) == len(theirs) and all(
        abs(t["start_s"] - v["start_s"]) < 1e-9
        and abs(t["end_s"] - v["end_s"]) < 1e-9
        and t["speaker"] == v["speaker"] for t, v in zip(turns, theirs))
    labels = np.asarray(result["labels"])
    speakers = mine["speakers"]
    out["speakers"] = int(labels.max()) + 1
    out["speakers_equal"] = out["speakers"] == len(speakers)
    worst = 0.0
    for k, speaker in enumerate(speakers):
        members = result["embeddings"][labels == k]
        if speaker["windows"] != len(members):
            worst = float("inf")
            continue
        centroid = members.astype(np.float64).mean(axis=0)
        worst = max(worst, rel_l2(centroid, speaker["centroid"]))
    out["centroid_max_rel_l2"] = worst
    out["agrees"] = (out["windows_equal"] and out["turns_equal"]
                     and out["speakers_equal"] and worst <= TOLERANCE)
    return out


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("audio", help="mono 16 kHz WAV")
    parser.add_argument("--vad", required=True,
                        help="`voxprint vad --format json` of AUDIO")
    parser.add_argument("--cli", required=True,
                        help="the voxprint CLI (for the embedding check)")
    parser.add_argument("--voxprint",
                        help="`voxprint diarize --format json` of AUDIO: "
                             "check windows, turns and centroids against it")
    parser.add_argument("--kit", default=pytorch_reference.DEFAULT_KIT)
    parser.add_argument("--model")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=DIAR_BATCH_SIZE)
    parser.add_argument("--runs", type=int, default=1,
                        help="timed runs (the median is reported)")
    args = parser.parse_args()
    args.model = args.model or os.path.join(os.path.abspath(args.kit),
                                            "models", "pytorch_model.bin")
    torch.set_num_interop_threads(1)
    torch.set_num_threads(args.threads)

    with open(args.vad) as source:
        vad = json.load(source)["results"][0]
    if "error" in vad:
        sys.exit(f"{args.vad}: {vad['detail']}")
    segments = [(s["start_sample"], s["end_sample"])
                for s in vad["segments"]]

    t0 = time.perf_counter()
    net = pytorch_reference.ResNet34(
        pytorch_reference.load_state_dict(args.model))
    model_load_s = time.perf_counter() - t0
    log("checking window embeddings against voxprint embed")
    checks = check_windows(net, args, segments)

    times, stage_runs, result = [], [], None
    for run in range(args.runs):
        t0 = time.perf_counter()
        result, stages = diarize(net, args.audio, segments, args.batch)
        times.append(time.perf_counter() - t0)
        stage_runs.append(stages)
        log(f"run {run + 1}/{args.runs}: {times[-1]:.2f} s, "
            f"{len(result['windows'])} windows")
    out = {
        "system": "pytorch (WeSpeaker's diarization pipeline)",
        "version": f"torch {torch.__version__}, torchaudio "
                   f"{torchaudio.__version__}",
        "threads": args.threads,
        "batch": args.batch,
        "audio_s": result["audio_samples"] / SAMPLE_RATE_HZ,
        "speech_s": sum(b - a for a, b in segments) / SAMPLE_RATE_HZ,
        "windows": len(result["windows"]),
        "speakers": max(result["labels"]) + 1,
        "vad_timed": False,
        "model_load_s": model_load_s,
        "seconds": {"median_s": statistics.median(times),
                    "min_s": min(times), "runs": len(times)},
        "stages": {key: statistics.median(s[key] for s in stage_runs)
                   for key in stage_runs[0]},
        "window_checks": checks,
    }
    if args.voxprint:
        with open(args.voxprint) as source:
            out["agreement"] = agreement(result, json.load(source))
    out["peak_rss_mib"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                           / 1024.0)
    print(json.dumps(out, indent=1))
    if args.voxprint and not out["agreement"]["agrees"]:
        log(f"disagrees with voxprint: {out['agreement']}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
