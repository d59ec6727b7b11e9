#!/usr/bin/python3
"""`voxprint diarize` against WeSpeaker's diarization pipeline in PyTorch.

  /usr/bin/python3 bench/diarize_vs_pytorch.py [--quick] [--runs 3]
                   [--threads 2] [--skip-build] [--build-dir DIR] [--kit DIR]

1. builds voxprint-cli in a Release tree (default build-bench/; configured as
   bench/run.py configures it when it has no CMakeCache.txt);
2. makes continuous speech from the kit in bench/out/audio/: the speech
   segments `voxprint vad` finds in dev00, trn01, tst00 and sample.wav,
   concatenated, repeated to 10 min (speech-10min.wav) and 60 min
   (speech-60min.wav, not with --quick); byte for byte the file
   voxprint-diarize-bench writes;
3. per file: `voxprint vad --format json` (its wall time: voxprint's VAD
   cost, process start included), then `voxprint diarize --threads N
   --format json` with the file given --runs times in one process (each
   file's processing_s: decode, VAD, windows, embeddings, clustering; the
   model loaded once), then peers/wespeaker_diarize_pytorch.py (torch on N
   threads, --runs timed runs in one process, VAD not timed: it reads the
   segments voxprint's VAD found), which first checks its window embeddings
   against `voxprint embed` and afterwards its windows, turns and centroids
   against voxprint's JSON. Medians; one run for 60 min;
4. prints a markdown table and writes it with the machine's details to
   bench/results/diarize-<cpu family>.md (raw JSON: bench/out/diarize.json).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_audio  # noqa: E402  (write_wav16, load_mono_16k)
import run  # noqa: E402  (machine_details, cpu_family, log, paths)

KIT_FILES = ["dev00.wav", "trn01.wav", "tst00.wav", "sample.wav"]
SAMPLE_RATE_HZ = 16000


def build(args):
    if not os.path.exists(os.path.join(args.build_dir, "CMakeCache.txt")):
        subprocess.run(["cmake", "-S", run.REPO, "-B", args.build_dir,
                        "-DCMAKE_BUILD_TYPE=Release",
                        "-DVOXPRINT_BUILD_BENCHMARKS=ON",
                        "-DVOXPRINT_BUILD_TESTS=OFF",
                        "-DVOXPRINT_BUILD_SERVER=OFF"], check=True)
    subprocess.run(["cmake", "--build", args.build_dir, "-j",
                    str(os.cpu_count() or 2), "--target", "voxprint-cli"],
                   check=True)


def run_process(cmd, stdout_path=None, allowed=(0,)):
    """Runs cmd; returns (wall seconds, peak RSS MiB of the child). Its
    stdout goes to stdout_path (or nowhere), stderr passes through; an exit
    status outside `allowed` raises."""
    run.log(" ".join(cmd))
    out = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
    try:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out)
        _, status, usage = os.wait4(proc.pid, 0)
        wall_s = time.perf_counter() - t0
    finally:
        if stdout_path:
            out.close()
    code = os.waitstatus_to_exitcode(status)
    if code not in allowed:
        raise RuntimeError(f"{' '.join(cmd)} exited {code}")
    return wall_s, usage.ru_maxrss / 1024.0


def continuous_speech(args, cli, minutes_list):
    """speech-<M>min.wav for each M: the kit's VAD speech, repeated."""
    paths = {m: os.path.join(args.audio_dir, f"speech-{m}min.wav")
             for m in minutes_list}
    missing = [m for m, path in paths.items() if not os.path.exists(path)]
    if not missing:
        return paths
    kit_audio = [os.path.join(args.kit, "audio", name) for name in KIT_FILES]
    vad_json = os.path.join(args.audio_dir, "kit-vad.json")
    run_process([cli, "vad", *kit_audio, "--format", "json", "--quiet"],
                vad_json)
    with open(vad_json) as source:
        results = json.load(source)["results"]
    pieces = []
    for path, result in zip(kit_audio, results):
        samples = make_audio.load_mono_16k(path)
        pieces += [samples[s["start_sample"]:s["end_sample"]]
                   for s in result["segments"]]
    speech = np.concatenate(pieces)
    for m in missing:
        total = m * 60 * SAMPLE_RATE_HZ
        make_audio.write_wav16(paths[m],
                               np.resize(speech, total).astype(np.float32))
    return paths


def measure(args, cli, path, runs):
    """voxprint's VAD, voxprint diarize and the peer on one file."""
    stem = os.path.splitext(os.path.basename(path))[0]
    vad_json = os.path.join(args.out, f"{stem}.vad.json")
    diarize_json = os.path.join(args.out, f"{stem}.diarize.json")
    peer_json = os.path.join(args.out, f"{stem}.pytorch.json")
    vad_wall_s, _ = run_process([cli, "vad", path, "--format", "json",
                                 "--quiet"], vad_json)
    wall_s, rss = run_process(
        [cli, "diarize", *([path] * runs), "--model", args.model,
         "--threads", str(args.threads), "--format", "json", "--quiet"],
        diarize_json)
    with open(diarize_json) as source:
        results = json.load(source)["results"]
    for result in results:
        if "error" in result:
            raise RuntimeError(f"voxprint diarize {path}: {result['detail']}")
    times = [r["processing_s"] for r in results]
    first = results[0]
    voxprint = {"seconds": {"median_s": statistics.median(times),
                            "min_s": min(times), "runs": len(times)},
                "process_wall_s": wall_s, "peak_rss_mib": rss,
                "vad_process_wall_s": vad_wall_s,
                "audio_s": first["duration_s"], "speech_s": first["speech_s"],
                "windows": first["num_windows"],
                "speakers": len(first["speakers"])}
    peer_wall_s, peer_rss = run_process(
        [sys.executable, os.path.join(HERE, "peers",
                                      "wespeaker_diarize_pytorch.py"),
         path, "--vad", vad_json, "--cli", cli, "--voxprint", diarize_json,
         "--kit", args.kit, "--model", args.model, "--threads",
         str(args.threads), "--runs", str(runs)], peer_json,
        allowed=(0, 1))  # 1: ran, but disagrees with voxprint (in the JSON)
    with open(peer_json) as source:
        peer = json.load(source)
    peer["process_wall_s"] = peer_wall_s
    peer["process_peak_rss_mib"] = peer_rss
    return {"file": path, "voxprint": voxprint, "pytorch": peer}


def table(rows, threads):
    lines = [
        "| audio | speech | windows | voxprint (s) | voxprint's VAD alone "
        "(s) | PyTorch, VAD not timed (s) | PyTorch / voxprint | PyTorch / "
        "(voxprint - VAD) | RTF voxprint | RTF PyTorch | peak RSS voxprint "
        "(MiB) | peak RSS PyTorch (MiB) | same turns |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | "
        "---: | ---: | ---: | --- |"]
    for row in rows:
        vox, peer = row["voxprint"], row["pytorch"]
        mine = vox["seconds"]["median_s"]
        theirs = peer["seconds"]["median_s"]
        vad = vox["vad_process_wall_s"]
        agrees = peer.get("agreement", {}).get("agrees")
        lines.append(
            f"| {vox['audio_s'] / 60:.0f} min | {vox['speech_s']:.0f} s | "
            f"{vox['windows']} | {mine:.1f} | {vad:.1f} | {theirs:.1f} | "
            f"{theirs / mine:.2f} | {theirs / (mine - vad):.2f} | "
            f"{mine / vox['audio_s']:.4f} | {theirs / vox['audio_s']:.4f} | "
            f"{vox['peak_rss_mib']:.0f} | {peer['process_peak_rss_mib']:.0f} "
            f"| {'yes' if agrees else 'NO'} |")
    runs = ", ".join(f"{r['voxprint']['audio_s'] / 60:.0f} min: "
                     f"{r['voxprint']['seconds']['runs']}" for r in rows)
    lines += ["", f"{threads} threads each; seconds are medians of the runs "
              f"({runs})."]
    return "\n".join(lines)


def stages_table(rows):
    lines = ["| audio | PyTorch: read file | fbank + CMN | network | "
             "clustering | turns | model load (untimed) |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        peer = row["pytorch"]
        s = peer["stages"]
        lines.append(
            f"| {peer['audio_s'] / 60:.0f} min | {s['load_s']:.2f} s | "
            f"{s['fbank_s']:.2f} s | {s['network_s']:.1f} s "
            f"({1e3 * s['network_s'] / peer['windows']:.1f} ms/window) | "
            f"{s['clustering_s']:.2f} s | {s['turns_s']:.3f} s | "
            f"{peer['model_load_s']:.2f} s |")
    return "\n".join(lines)


def write_results(path, machine, rows, args):
    checks = []
    for row in rows:
        peer = row["pytorch"]
        agreement = peer.get("agreement", {})
        worst = max(c["rel_l2"] for c in peer["window_checks"])
        checks.append(
            f"- {peer['audio_s'] / 60:.0f} min: window embeddings vs `voxprint "
            f"embed` rel L2 <= {worst:.1e} ({len(peer['window_checks'])} "
            f"windows); windows {agreement.get('voxprint_windows')} = "
            f"{peer['windows']}; {agreement.get('turns')} turns "
            f"{'identical' if agreement.get('turns_equal') else 'DIFFERENT'}"
            f"; {agreement.get('speakers')} speakers; centroids rel L2 <= "
            f"{agreement.get('centroid_max_rel_l2', float('nan')):.1e}")
    lines = [
        "# Diarization: voxprint against WeSpeaker's pipeline in PyTorch", "",
        f"Measured by `bench/diarize_vs_pytorch.py"
        f"{' --quick' if args.quick else ''}` on {machine['date']}.", "",
        "## Machine", "",
        *run.machine_lines(machine),
        f"- peer: {rows[0]['pytorch']['version'] if rows else 'n/a'}", "",
        "## Results", "",
        table(rows, args.threads), "",
        "How to read it:", "",
        "- Input: continuous speech, the speech voxprint's VAD finds in the "
        "kit's dev00, trn01, tst00 and sample.wav (64 s) repeated: a window "
        "every 0.75 s of audio, the worst case for a diarizer. 16-bit mono "
        "16 kHz WAV (no resampling for either system).",
        "- voxprint: `voxprint diarize --threads N` (the CLI, agglomerative "
        "clustering), each file's `processing_s`: decode, Silero VAD, "
        "windows, fbank, network (batches of 32 windows), clustering, "
        "turns; model load not included. Files over 20 min are read twice, "
        "block by block, so memory does not grow with the length. *voxprint's "
        "VAD alone* is the wall time of a `voxprint vad` process on the file "
        "(decode and process start included), to compare with the peer "
        "that does not run a VAD.",
        "- PyTorch: `peers/wespeaker_diarize_pytorch.py`, WeSpeaker's "
        "`Speaker.diarize` (read the file whole, fbank per speech segment, "
        "windows cut from it, all stacked, per-window mean subtraction, "
        "network in batches of 32, WeSpeaker's default) with voxprint's "
        "windows (1.5 s every 0.75 s, the same plan, the same count) and "
        "voxprint's default clustering (pyannote 3.1's centroid-linkage "
        "AHC in SciPy) on `torch.set_num_threads(N)`. Its VAD is **not "
        "timed**: it reads the segments voxprint's VAD found (Silero's "
        "TorchScript model is not available here), which favours the peer. "
        "Model load not included.",
        "- Peak RSS: ru_maxrss of each process (voxprint's holds the model; "
        "the peer's holds the interpreter, torch and the whole file's "
        "features, as WeSpeaker does).",
        "- Same turns: the peer's turns and labels equal voxprint's (the "
        "same partition of the windows, speakers numbered alike), and each "
        "speaker's centroid agrees within rel L2 1e-4.", "",
        "## Checks", "", *checks, "",
        "## PyTorch peer, stage by stage", "", stages_table(rows), ""]
    busy = float(machine["load_average"].split()[0])
    if busy > 0.5 * machine["cores"]:
        lines.insert(lines.index("## Results") + 2,
                     f"**The machine was busy before the run (1-minute load "
                     f"average {busy:.1f} on {machine['cores']} cores): "
                     "these timings are noisy.**\n")
    with open(path, "w") as out:
        out.write("\n".join(lines))


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--kit", default=run.DEFAULT_KIT)
    parser.add_argument("--build-dir",
                        default=os.path.join(run.REPO, "build-bench"))
    parser.add_argument("--out", default=os.path.join(HERE, "out"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3,
                        help="runs of the 10 min file (60 min: one)")
    parser.add_argument("--quick", action="store_true",
                        help="10 min only, one run")
    parser.add_argument("--skip-build", action="store_true")
    parser.add_argument("--results",
                        help="write the table here (default: bench/results/"
                             "diarize-<cpu family>.md)")
    args = parser.parse_args()
    args.kit = os.path.abspath(args.kit)
    args.build_dir = os.path.abspath(args.build_dir)
    args.model = os.path.join(args.kit, "models", "pytorch_model.bin")
    args.audio_dir = os.path.join(args.out, "audio")
    os.makedirs(args.audio_dir, exist_ok=True)
    if not os.path.isfile(os.path.join(args.kit, "manifest.json")):
        sys.exit(f"reference kit not found at {args.kit} (use --kit)")
    if not args.skip_build:
        build(args)
    cli = os.path.join(args.build_dir, "apps", "cli", "voxprint")

    machine = run.machine_details()
    minutes = [10] if args.quick else [10, 60]
    files = continuous_speech(args, cli, minutes)
    rows = []
    for m in minutes:
        runs = 1 if args.quick or m >= 60 else args.runs
        rows.append(measure(args, cli, files[m], runs))
    machine["load_average_end"] = " ".join(f"{x:.2f}"
                                           for x in os.getloadavg())
    with open(os.path.join(args.out, "diarize.json"), "w") as out:
        json.dump({"machine": machine, "rows": rows}, out, indent=1)
    slug = run.family_file(run.cpu_family(machine))
    results_path = args.results or os.path.join(
        HERE, "results", "diarize-" + os.path.basename(slug)[len("cpu-"):])
    write_results(results_path, machine, rows, args)
    print(table(rows, args.threads))
    run.log(f"wrote {results_path} and "
            f"{os.path.join(args.out, 'diarize.json')}")
    return 0 if all(r["pytorch"].get("agreement", {}).get("agrees")
                    for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
