#!/usr/bin/python3
"""voxprint against its peers, in one run: build, measure, tabulate.

  /usr/bin/python3 bench/run.py [--quick] [--threads 1,2] [--skip-build]
                                [--systems voxprint,pytorch,onnxruntime]

1. builds voxprint-cli, voxprint-bench and voxprint-stages-bench in a Release
   tree (default build-bench/), and installs bench/node_modules from
   package-lock.json (npm ci --ignore-scripts) when missing;
2. makes the inputs from the reference kit (bench/make_audio.py): 3s.wav,
   10min.wav, 2h.wav and 32 short clips (many/), in bench/out/audio/;
3. runs each system's benchmark one after the other, never two at once:
   voxprint-bench (Extractor, end to end from the file), the PyTorch peer
   (pyannote's pipeline in torch, end to end from the file) and the ONNX
   Runtime peer (the network alone, on the kit's fbank); each checks itself
   against the kit first;
4. times, as whole processes, start to first embedding of 3s.wav and the
   peak RSS of embedding the 30 s and the 10 min file (ru_maxrss of the
   child);
5. prints a markdown table with the ratio voxprint / peer per row and writes
   it, with the machine's details and the per-stage Google Benchmark numbers,
   to bench/RESULTS.md (raw JSON in bench/out/results.json).

Use /usr/bin/python3 (Debian's torch 1.13 + torchaudio 0.13 for the peer).
"""
import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import wave

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DEFAULT_KIT = os.path.join(os.path.dirname(REPO), "shared", "reference")
SYSTEMS = ["voxprint", "pytorch", "onnxruntime"]
PEERS = ["pytorch", "onnxruntime"]
ISA_FLAGS = ["avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
             "avx512_bf16", "amx_tile", "amx_bf16"]


def log(message):
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def run_json(cmd, cwd=None):
    """Runs cmd, returns its stdout parsed as JSON (stderr passes through)."""
    log(" ".join(cmd))
    out = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, check=True)
    return json.loads(out.stdout)


def run_process(cmd):
    """Runs cmd once; returns (wall seconds, peak RSS MiB of the child)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall_s = time.perf_counter() - t0
    stderr = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: "
                           f"{stderr.strip()[-500:]}")
    return wall_s, usage.ru_maxrss / 1024.0


# ------------------------------------------------------------------ build --
def build(args):
    if not os.path.exists(os.path.join(args.build_dir, "CMakeCache.txt")):
        subprocess.run(["cmake", "-S", REPO, "-B", args.build_dir,
                        "-DCMAKE_BUILD_TYPE=Release",
                        "-DVOXPRINT_BUILD_BENCHMARKS=ON",
                        "-DVOXPRINT_BUILD_TESTS=OFF",
                        "-DVOXPRINT_BUILD_SERVER=OFF"], check=True)
    subprocess.run(["cmake", "--build", args.build_dir, "-j",
                    str(os.cpu_count() or 2), "--target", "voxprint-cli",
                    "voxprint-bench", "voxprint-stages-bench"], check=True)


def ensure_node_modules():
    if os.path.isdir(os.path.join(HERE, "node_modules", "onnxruntime-node")):
        return
    # The package's install script downloads GPU libraries; the CPU binding
    # ships in the package itself, so skip the script.
    subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit",
                    "--no-fund"], cwd=HERE, check=True)


# ---------------------------------------------------------------- measure --
def commands(args, audio):
    """Per system: benchmark command, and process commands for the
    first-embedding and peak-RSS measurements (file -> argv)."""
    kit = args.kit
    model_bin = os.path.join(kit, "models", "pytorch_model.bin")
    threads = ",".join(str(t) for t in args.threads)
    quick = ["--quick"] if args.quick else []
    cli = os.path.join(args.build_dir, "apps", "cli", "voxprint")
    vox_bench = os.path.join(args.build_dir, "bench", "voxprint-bench")
    torch_peer = [sys.executable, os.path.join(HERE, "peers",
                                               "pytorch_reference.py")]
    ort_peer = ["node", os.path.join(HERE, "peers", "onnxruntime_peer.mjs")]
    # The same compute thread count for every system's process runs.
    cores = str(args.process_threads)
    frames = {audio["3s"]: 298, audio["30s"]: 2998, audio["10min"]: 59998}
    many = audio["many"]
    # The clips' fbank frame counts (25 ms frames every 10 ms, 16 kHz): the
    # network-only peer runs inputs of those lengths.
    many_frames = []
    for name in sorted(os.listdir(many)):
        if name.endswith(".wav"):
            with wave.open(os.path.join(many, name)) as clip:
                many_frames.append(str(1 + (clip.getnframes() - 400) // 160))
    return {
        "voxprint": {
            "bench": [vox_bench, "--kit", kit, "--model", model_bin,
                      "--long", audio["10min"], "--many", many,
                      "--threads", threads] + quick,
            "process": lambda f: [cli, "embed", f, "--model", model_bin,
                                  "--device", "cpu", "--threads", cores,
                                  "--quiet"],
        },
        "pytorch": {
            "bench": torch_peer + ["bench", "--kit", kit, "--long",
                                   audio["10min"], "--many", many,
                                   "--threads", threads] + quick,
            "process": lambda f: torch_peer + ["embed", f, "--kit", kit,
                                               "--threads", cores],
        },
        "onnxruntime": {
            "bench": ort_peer + ["bench", "--kit", kit, "--threads",
                                 threads, "--many-frames",
                                 ",".join(many_frames)] + quick,
            "process": lambda f: ort_peer + ["embed", "--kit", kit,
                                             "--frames", str(frames[f]),
                                             "--threads", cores],
        },
    }


def measure_processes(cmd_of, audio, runs):
    first = []
    for _ in range(runs):
        wall_s, _ = run_process(cmd_of(audio["3s"]))
        first.append(wall_s)
    _, rss_30s = run_process(cmd_of(audio["30s"]))
    _, rss_10min = run_process(cmd_of(audio["10min"]))
    return {"first_embedding_3s": {"median_s": statistics.median(first),
                                   "min_s": min(first), "reps": runs},
            "peak_rss_30s_mib": rss_30s, "peak_rss_10min_mib": rss_10min}


LENGTHS_S = [1, 2, 3, 5, 8, 13, 21, 25, 30, 60, 120, 600]


def length_excerpts(long_wav, out_dir):
    """The first L seconds of the 10 min file, for L in LENGTHS_S."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {}
    with wave.open(long_wav) as source:
        rate = source.getframerate()
        width = source.getsampwidth() * source.getnchannels()
        frames = source.readframes(source.getnframes())
        params = source.getparams()
    for seconds in LENGTHS_S:
        path = os.path.join(out_dir, f"{seconds}s.wav")
        paths[seconds] = path
        if os.path.exists(path):
            continue
        with wave.open(path, "wb") as out:
            out.setparams(params)
            out.writeframes(frames[:seconds * rate * width])
    return paths


def measure_fresh_lengths(cmd_of, excerpts, rounds):
    """Wall time of a fresh `voxprint embed` process per length (model load
    and start included): the median of `rounds` rounds through every
    length, so that a burst of load shifts one round's point, not the row."""
    walls = {seconds: [] for seconds in excerpts}
    for _ in range(rounds):
        for seconds, path in sorted(excerpts.items()):
            walls[seconds].append(run_process(cmd_of(path))[0])
    return [{"audio_s": seconds, "wall_s": statistics.median(walls[seconds]),
             "runs_s": walls[seconds]} for seconds in sorted(walls)]


def machine_lines(machine):
    """The Markdown lines that describe the machine of a run: CPU with its
    caches, ISA, memory and the load around the run."""
    return [
        f"- CPU: {machine.get('Model name', '?')} ({machine.get('Vendor ID', '?')}), "
        f"{machine['cores']} cores, {machine.get('Thread(s) per core', '?')} "
        f"thread(s) per core, L2 {machine.get('L2 cache', '?')}, "
        f"L3 {machine.get('L3 cache', '?')}"
        + (f", virtualised ({machine['Hypervisor vendor']})"
           if machine.get("Hypervisor vendor") else ""),
        f"- ISA: {machine.get('isa', '?')}",
        f"- memory: {machine['memory_gib']} GiB; kernel {machine['kernel']}",
        f"- load average at start: {machine['load_average']}; at end: "
        f"{machine['load_average_end']}",
    ]


def line_fit(points):
    """The straight line t = a + b L nearest to the farthest point in
    relative terms (the smallest e with every t within a factor 1 +- e of
    a + b L), and that e. For a given e the lines allowed form a convex
    polygon in (a, b) whose corners are lines through two points' bounds,
    so e is found by bisection over those candidate lines."""
    def line_within(e):
        bounds = [(length, t / (1.0 + e), t / (1.0 - e))
                  for length, t in points]
        for i, (li, lo_i, hi_i) in enumerate(bounds):
            for lj, lo_j, hi_j in bounds[i + 1:]:
                if li == lj:
                    continue
                for ti in (lo_i, hi_i):
                    for tj in (lo_j, hi_j):
                        b = (tj - ti) / (lj - li)
                        a = ti - b * li
                        if all(lo * (1 - 1e-9) <= a + b * length <=
                               hi * (1 + 1e-9)
                               for length, lo, hi in bounds):
                            return a, b
        return None

    low, high = 0.0, 0.999
    best = line_within(high)
    for _ in range(50):
        mid = (low + high) / 2
        found = line_within(mid)
        if found:
            high, best = mid, found
        else:
            low = mid
    a, b = best
    worst = max(abs(t / (a + b * length) - 1.0) for length, t in points)
    return a, b, worst


def stage_benchmarks(args):
    exe = os.path.join(args.build_dir, "bench", "voxprint-stages-bench")
    cmd = [exe, "--benchmark_format=json"]
    if args.quick:
        cmd.append("--benchmark_min_time=0.1")
    env = dict(os.environ, VOXPRINT_REFERENCE_DIR=args.kit)
    log(" ".join(cmd))
    out = subprocess.run(cmd, stdout=subprocess.PIPE, env=env, check=True)
    return json.loads(out.stdout)["benchmarks"]


# ------------------------------------------------------------------ table --
def get(result, *keys):
    for key in keys:
        if not isinstance(result, dict) or key not in result:
            return None
        result = result[key]
    return result


def rows(results, threads):
    """(label, better, {system: value}) for the table; better is 'lower' or
    'higher'."""
    out = []

    def add(label, better, fn, fmt):
        values = {}
        for system in SYSTEMS:
            try:
                values[system] = fn(results.get(system) or {})
            except (TypeError, KeyError, ZeroDivisionError):
                values[system] = None
        out.append((label, better, values, fmt))

    def rtf(case, t):
        return lambda r: (r["threads"][str(t)][case]["median_s"]
                          / r["threads"][str(t)][case]["audio_s"])

    def wps(t):
        return lambda r: (r["threads"][str(t)]["sliding_3s_1s"]["windows"]
                          / r["threads"][str(t)]["sliding_3s_1s"]["median_s"])

    add("accuracy: whole sample.wav, rel L2 vs kit", "lower",
        lambda r: r["accuracy"]["whole_rel_l2"], "{:.2e}")
    add("accuracy: sliding 3 s/1 s, rel L2 vs kit", "lower",
        lambda r: r["accuracy"]["sliding_3_1_rel_l2"], "{:.2e}")
    for t in threads:
        add(f"RTF whole 30 s, {t} thread{'s' * (t > 1)}", "lower",
            rtf("whole_30s", t), "{:.4f}")
    for t in threads:
        add(f"RTF whole 10 min, {t} thread{'s' * (t > 1)}", "lower",
            rtf("whole_10min", t), "{:.4f}")
    for t in threads:
        add(f"sliding 3 s/1 s windows/s, {t} thread{'s' * (t > 1)}", "higher",
            wps(t), "{:.1f}")
    def files_per_s(t, how):
        return lambda r: (r["threads"][str(t)]["many_files"]["files"]
                          / r["threads"][str(t)]["many_files"][how]["median_s"])

    for t in threads:
        # voxprint batches the network across files (voxprint embed with
        # several files); the peers embed one file after another.
        add(f"many files (32 x 2-4 s) files/s, {t} thread{'s' * (t > 1)}",
            "higher", lambda r, t=t: files_per_s(
                t, "batched" if r["system"] == "voxprint" else "one_by_one")(r),
            "{:.1f}")
    for t in threads:
        add(f"many files one at a time files/s, {t} thread{'s' * (t > 1)}",
            "higher", files_per_s(t, "one_by_one"), "{:.1f}")
    add("model load (s)", "lower", lambda r: r["model_load_s"], "{:.3f}")
    add("process start to first embedding, 3 s file (s)", "lower",
        lambda r: r["process"]["first_embedding_3s"]["median_s"], "{:.3f}")
    add("peak RSS, whole 30 s, one process (MiB)", "lower",
        lambda r: r["process"]["peak_rss_30s_mib"], "{:.0f}")
    add("peak RSS, whole 10 min, one process (MiB)", "lower",
        lambda r: r["process"]["peak_rss_10min_mib"], "{:.0f}")
    add("peak RSS, whole 2 h, one process (MiB; voxprint only)", "lower",
        lambda r: r["process"]["whole_2h"]["peak_rss_mib"], "{:.0f}")
    add("RTF whole 2 h, one process incl. start (voxprint only)", "lower",
        lambda r: (r["process"]["whole_2h"]["wall_s"]
                   / r["process"]["whole_2h"]["audio_s"]), "{:.4f}")
    return out


def markdown_table(results, threads):
    header = ("| metric | voxprint | PyTorch (pyannote pipeline) | "
              "voxprint / PyTorch | ONNX Runtime (network only) | "
              "voxprint / ONNX Runtime |")
    lines = [header, "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for label, better, values, fmt in rows(results, threads):
        cells = [label + (" ↑" if better == "higher" else "")]
        mine = values["voxprint"]
        cells.append(fmt.format(mine) if mine is not None else "n/a")
        for peer in PEERS:
            theirs = values[peer]
            cells.append(fmt.format(theirs) if theirs is not None else "n/a")
            if (mine is not None and theirs and not label.startswith(
                    "accuracy")):
                cells.append(f"{mine / theirs:.2f}")
            else:
                cells.append("")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def opt_in_table(results, threads):
    """voxprint's opt-in speed modes: their error against the kit and their
    speed against exact fp32 in the same run."""
    vox = results.get("voxprint") or {}
    accuracy = vox.get("opt_in_accuracy")
    if not accuracy:
        return ""
    lines = ["| mode | rel L2 vs kit, sliding 3 s/1 s | lowest window cosine "
             "to exact | rel L2 vs kit, whole | "
             + " | ".join(f"speed-up over exact, {t} thread"
                          f"{'s' * (t > 1)}" for t in threads) + " |",
             "| --- | ---: | ---: | ---: | " + " | ".join(
                 "---:" for _ in threads) + " |"]
    modes = [("shared_trunk", "shared trunk (`--shared-trunk`)",
              ["sliding_3s_1s"]),
             ("bf16", "bf16 (`--precision bf16`)",
              ["whole_30s", "sliding_3s_1s"]),
             ("mixed", "mixed: stages 3–4 in bf16 (`--precision mixed`)",
              ["whole_30s", "sliding_3s_1s"])]
    for key, label, cases in modes:
        acc = accuracy.get(key)
        if not acc:
            continue
        cells = [label, f"{acc['sliding_3_1_rel_l2']:.2e}",
                 f"{acc['sliding_min_cosine_to_exact']:.4f}",
                 f"{acc['whole_rel_l2']:.2e}" if "whole_rel_l2" in acc
                 else "n/a"]
        for t in threads:
            entry = get(vox, "threads", str(t)) or {}
            parts = []
            for case in cases:
                fast = get(entry, "opt_in", key, case, "median_s")
                exact = get(entry, case, "median_s")
                if fast and exact:
                    name = "whole" if case.startswith("whole") else "sliding"
                    parts.append(f"{name} {exact / fast:.2f}×")
            cells.append(", ".join(parts) or "n/a")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def length_table(results, threads, process_threads):
    """Cost per second of audio against the length, and how far each column
    strays from a straight line in L."""
    vox = results.get("voxprint") or {}
    columns = []
    for t in threads:
        row = get(vox, "threads", str(t), "length_row")
        if row:
            plural = "s" * (t > 1)
            columns.append((f"warm, new length, {t} thread{plural}",
                            {r["audio_s"]: r["first_s"] for r in row}))
            columns.append((f"warm, repeated, {t} thread{plural}",
                            {r["audio_s"]: r["repeat_s"] for r in row}))
    fresh = get(vox, "process", "lengths")
    if fresh:
        columns.append((f"fresh process, {process_threads} thread"
                        f"{'s' * (process_threads > 1)}",
                        {r["audio_s"]: r["wall_s"] for r in fresh}))
    if not columns:
        return ""
    lengths = sorted({length for _, col in columns for length in col})
    lines = ["| L (s) | " + " | ".join(name for name, _ in columns) + " |",
             "| ---: | " + " | ".join("---:" for _ in columns) + " |"]
    for length in lengths:
        cells = [f"{length:g}"]
        for _, col in columns:
            t = col.get(length)
            cells.append(f"{t:.3f} s ({t / length:.4f} s/s)"
                         if t is not None else "n/a")
        lines.append("| " + " | ".join(cells) + " |")
    fits = [line_fit(sorted(col.items())) for _, col in columns]
    lines.append("| line a + b L | " + " | ".join(
        f"{a:.3f} + {b:.4f} L" for a, b, _ in fits) + " |")
    lines.append("| largest distance from the line | " + " | ".join(
        f"{worst:.0%}" for _, _, worst in fits) + " |")
    return "\n".join(lines)


def stages_table(stages):
    lines = ["| stage | real time (ms) | rate |", "| --- | ---: | ---: |"]
    for b in stages:
        if b.get("run_type") == "aggregate":
            continue
        rate = ""
        if "audio_s_per_s" in b:
            rate = f"{b['audio_s_per_s']:.1f} s audio / s (RTF {1 / b['audio_s_per_s']:.4f})"
        elif "windows_per_s" in b:
            rate = f"{b['windows_per_s']:.1f} windows / s"
        lines.append(f"| {b['name']} | {b['real_time']:.2f} | {rate} |")
    return "\n".join(lines)


# ---------------------------------------------------------------- machine --
def machine_details():
    details = {"date": datetime.datetime.now(datetime.timezone.utc)
               .strftime("%Y-%m-%d %H:%M UTC"),
               "kernel": platform.release(), "cores": os.cpu_count()}
    try:
        lscpu = subprocess.run(["lscpu"], stdout=subprocess.PIPE, text=True,
                               check=True).stdout
        for key in ["Model name", "Vendor ID", "Thread(s) per core",
                    "L2 cache", "L3 cache", "Hypervisor vendor"]:
            m = re.search(rf"^{re.escape(key)}:\s*(.+)$", lscpu, re.M)
            if m:
                details[key] = m.group(1).strip()
        m = re.search(r"^Flags:\s*(.+)$", lscpu, re.M)
        flags = set(m.group(1).split()) if m else set()
        details["isa"] = " ".join(f for f in ISA_FLAGS if f in flags)
    except (OSError, subprocess.CalledProcessError):
        pass
    with open("/proc/meminfo") as meminfo:
        kib = int(re.search(r"MemTotal:\s+(\d+)", meminfo.read()).group(1))
    details["memory_gib"] = round(kib / 2**20, 1)
    details["load_average"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return details


def cpu_family(machine):
    """'Intel Xeon', 'AMD EPYC', ...: the part of the CPU's name that names
    a family of machines measured alike."""
    name = machine.get("Model name", "")
    for vendor, family in [("Xeon", "Intel Xeon"), ("EPYC", "AMD EPYC"),
                           ("Ryzen", "AMD Ryzen"), ("Core", "Intel Core")]:
        if vendor in name:
            return family
    return machine.get("Vendor ID", "unknown CPU")


def family_file(family):
    slug = re.sub(r"[^a-z0-9]+", "-", family.lower()).strip("-")
    return os.path.join(HERE, "results", f"cpu-{slug}.md")


def summary_of(path):
    """(heading facts, {label: (voxprint, vs PyTorch, vs ORT)}) read back
    from one family's results file."""
    with open(path) as source:
        text = source.read()
    facts = {}
    for key, pattern in [("date", r"Measured by .*? on (.+?)\.\n"),
                         ("cpu", r"^- CPU: (.+)$"),
                         ("device", r"^- voxprint device: (.+)$")]:
        m = re.search(pattern, text, re.M)
        facts[key] = m.group(1) if m else "?"
    rows = {}
    results = text.split("## Results", 1)[-1]
    for line in results.splitlines():
        if line.startswith("| metric") or line.startswith("| ---"):
            continue
        if not line.startswith("| "):
            if rows:
                break
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) >= 6:
            rows[cells[0]] = (cells[1], cells[3], cells[5])
    m = re.search(r"^\| largest distance from the line \| (.+) \|$", text,
                  re.M)
    if m:
        rows["length row: largest distance from a straight line"] = (
            " / ".join(c.strip() for c in m.group(1).split("|")), "", "")
    return facts, rows


def write_summary(path):
    """RESULTS.md: the last run of every CPU family side by side."""
    files = sorted(f for f in os.listdir(os.path.join(HERE, "results"))
                   if f.startswith("cpu-") and f.endswith(".md"))
    summaries = [(f, *summary_of(os.path.join(HERE, "results", f)))
                 for f in files]
    lines = ["# voxprint benchmark results", "",
             "The last `bench/run.py` of each CPU family, side by side; each "
             "family's file has the whole run (machine, every row, opt-in "
             "modes, stages, cost against length). GPU results: "
             "[RESULTS-GPU.md](RESULTS-GPU.md).", ""]
    for f, facts, _ in summaries:
        lines.append(f"- [{f}](results/{f}): {facts['cpu']}; "
                     f"{facts['device']}; measured {facts['date']}")
    lines += ["", "Cells: voxprint's value (voxprint / PyTorch, voxprint / "
              "ONNX Runtime); below 1 favours voxprint except on ↑ rows.", "",
              "| metric | " + " | ".join(
                  f[len("cpu-"):-len(".md")] for f, _, _ in summaries) + " |",
              "| --- | " + " | ".join("---:" for _ in summaries) + " |"]
    labels = []
    for _, _, rows in summaries:
        labels += [label for label in rows if label not in labels]
    for label in labels:
        cells = []
        for _, _, rows in summaries:
            value, torch_ratio, ort_ratio = rows.get(label, ("n/a", "", ""))
            ratios = ", ".join(r for r in (torch_ratio, ort_ratio) if r)
            cells.append(f"{value} ({ratios})" if ratios else value)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    with open(path, "w") as out:
        out.write("\n".join(lines) + "\n")


def write_results(path, machine, results, table, stages, args):
    versions = {s: get(results, s, "version") for s in PEERS}
    errors = {s: results[s]["error"] for s in SYSTEMS
              if results.get(s, {}).get("error")}
    lines = [
        "# voxprint benchmark results",
        "",
        f"Measured by `bench/run.py{' --quick' if args.quick else ''}` on "
        f"{machine['date']}.",
        "",
        "CPU only; the GPU results are in [RESULTS-GPU.md]("
        + os.path.relpath(os.path.join(HERE, "RESULTS-GPU.md"),
                          os.path.dirname(os.path.abspath(path))) + ").",
        "",
        "## Machine",
        "",
        *machine_lines(machine),
        f"- peers: {versions['pytorch'] or 'n/a'}; "
        f"{versions['onnxruntime'] or 'n/a'}",
        f"- voxprint device: {get(results, 'voxprint', 'device') or 'n/a'}",
        "",
        "## Results",
        "",
    ]
    # The 1-minute load before the run: during it, the benchmark's own
    # threads load the machine by design.
    busy = float(machine["load_average"].split()[0])
    if busy > 0.5 * machine["cores"]:
        lines += [
            f"**The machine was busy before the run (1-minute load average "
            f"{busy:.1f} on {machine['cores']} cores): these timings are "
            "noisy, and more threads may even look slower. Rerun on an idle "
            "machine.**", ""]
    lines += [
        table,
        "",
        "How to read it:",
        "",
        "- RTF = seconds of compute per second of audio (lower is better); "
        "windows/s (↑) is higher-is-better. Ratio = voxprint / peer, so "
        "< 1 favours voxprint everywhere except on ↑ rows.",
        "- Timings are medians of repeated runs in one process after one "
        "warm-up call (10 min: 2 runs, 1 with --quick); model load and the "
        "accuracy check are timed apart from them.",
        "- voxprint and PyTorch run end to end from the file (decode, fbank, "
        "network, pooling). ONNX Runtime runs the network alone on the kit's "
        "fbank (10 min: the 30 s fbank tiled), so its rows leave out decode "
        "and fbank.",
        "- Sliding: 28 windows of 3 s every 1 s over sample.wav; PyTorch "
        "batches them by 32 as pyannote does.",
        "- Many files: 32 clips of 2 to 4 s (bench/make_audio.py), whole "
        "mode, in one process after a warm-up. voxprint runs them as one job "
        "(`Extractor::EmbedFiles`, what `voxprint embed` does with several "
        "files: the network batched across files of similar length); the "
        "peers embed one file after another, as pyannote's Inference does "
        "(ONNX Runtime: the network alone on inputs of the clips' lengths). "
        "The second row is voxprint one file at a time, for comparison.",
        "- Process rows time a fresh process (interpreter start and imports "
        "included) that loads the model and embeds one file (voxprint: the "
        f"`voxprint embed` CLI), with {args.process_threads} compute "
        "thread(s) each; peak RSS is that process's ru_maxrss.",
        "- Accuracy: relative L2 against the kit's expected embeddings of "
        "sample.wav. The ONNX model pools with sqrt(var + 1e-7), which "
        "accounts for its ~1e-5.",
    ]
    opt_in = opt_in_table(results, args.threads)
    if opt_in:
        lines += ["", "## Opt-in speed modes (voxprint)", "",
                  "Not the reference's numbers: each trades accuracy for "
                  "speed, measured here on sample.wav against the kit and "
                  "against exact fp32 windows. Speed-up = exact median / "
                  "opt-in median, same process, same thread count.", "",
                  opt_in]
    lengths = length_table(results, args.threads, args.process_threads)
    if lengths:
        lines += ["", "## Cost against length (voxprint)", "",
                  "The first L seconds of 10min.wav, whole mode, from samples "
                  "in memory. *Warm, new length*: an Extractor warmed up on "
                  "7 s meets each length for the first time, as a server "
                  "meets every request; *repeated*: the same excerpt again. "
                  "*Fresh process*: `voxprint embed` on the excerpt as a "
                  "file, start and model load included. Each point is the "
                  "median of three rounds through every length (new "
                  "Extractors, new processes; one round with --quick), so "
                  "that seconds of load from a neighbour on a shared "
                  "machine move one round's point, not the row. The line is "
                  "the straight line nearest to the farthest point (minimax, "
                  "relative); the target is every point within 15 % of a "
                  "straight line.", "", lengths]
    if errors:
        lines += ["", "Failures in this run:", ""]
        lines += [f"- {s}: {e}" for s, e in errors.items()]
    if stages:
        lines += ["", "## voxprint stages (Google Benchmark)", "",
                  "`build-bench/bench/voxprint-stages-bench`; network rows "
                  "run Extractor::EmbedFeatures on the kit's fbank.", "",
                  stages_table(stages)]
    with open(path, "w") as out:
        out.write("\n".join(lines) + "\n")


# ------------------------------------------------------------------- main --
def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--kit", default=DEFAULT_KIT)
    parser.add_argument("--build-dir", default=os.path.join(REPO,
                                                            "build-bench"))
    parser.add_argument("--out", default=os.path.join(HERE, "out"))
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--process-runs", type=int, default=5,
                        help="runs of the first-embedding process")
    parser.add_argument("--process-threads", type=int,
                        default=os.cpu_count() or 1,
                        help="compute threads of the process runs "
                             "(default: all cores)")
    parser.add_argument("--quick", action="store_true",
                        help="one repetition per timing (a smoke test)")
    parser.add_argument("--skip-build", action="store_true")
    parser.add_argument("--no-stages", action="store_true")
    parser.add_argument("--results",
                        help="write the run here (default: bench/results/"
                        "cpu-<family>.md, and RESULTS.md side by side with "
                        "the other families)")
    args = parser.parse_args()
    args.kit = os.path.abspath(args.kit)
    args.build_dir = os.path.abspath(args.build_dir)
    args.threads = [int(t) for t in args.threads.split(",")]
    systems = args.systems.split(",")
    if not os.path.isfile(os.path.join(args.kit, "manifest.json")):
        sys.exit(f"reference kit not found at {args.kit} (use --kit)")

    machine = machine_details()
    results = {}
    if "voxprint" in systems and not args.skip_build:
        try:
            build(args)
        except subprocess.CalledProcessError as error:
            results["voxprint"] = {"error": f"build failed: {error}"}
    if "onnxruntime" in systems:
        ensure_node_modules()
    audio_dir = os.path.join(args.out, "audio")
    subprocess.run([sys.executable, os.path.join(HERE, "make_audio.py"),
                    args.kit, audio_dir], check=True, stdout=subprocess.DEVNULL)
    audio = {"3s": os.path.join(audio_dir, "3s.wav"),
             "30s": os.path.join(args.kit, "audio", "sample.wav"),
             "10min": os.path.join(audio_dir, "10min.wav"),
             "2h": os.path.join(audio_dir, "2h.wav"),
             "many": os.path.join(audio_dir, "many")}

    cmds = commands(args, audio)
    runs = 3 if args.quick else args.process_runs
    for system in systems:
        if results.get(system, {}).get("error"):
            continue
        try:
            results[system] = run_json(cmds[system]["bench"])
            log(f"{system}: first embedding and peak RSS (processes)")
            results[system]["process"] = measure_processes(
                cmds[system]["process"], audio, runs)
            if system == "voxprint":
                # Bounded memory on hours of audio: voxprint only (the peers
                # hold the whole file's activations: 10 min already takes
                # them 2.3-2.7 GB).
                log("voxprint: whole 2 h, one process")
                wall_s, rss = run_process(cmds[system]["process"](
                    audio["2h"]))
                results[system]["process"]["whole_2h"] = {
                    "wall_s": wall_s, "peak_rss_mib": rss, "audio_s": 7200.0}
                log("voxprint: length row, one fresh process per length")
                results[system]["process"]["lengths"] = measure_fresh_lengths(
                    cmds[system]["process"],
                    length_excerpts(audio["10min"],
                                    os.path.join(audio_dir, "lengths")),
                    1 if args.quick else 3)
        except (subprocess.CalledProcessError, RuntimeError, OSError,
                json.JSONDecodeError) as error:
            log(f"{system} failed: {error}")
            results[system] = {"error": str(error)}

    stages = []
    if "voxprint" in systems and not args.no_stages and not results.get(
            "voxprint", {}).get("error"):
        try:
            stages = stage_benchmarks(args)
        except (subprocess.CalledProcessError, OSError,
                json.JSONDecodeError) as error:
            log(f"stage benchmarks failed: {error}")

    machine["load_average_end"] = " ".join(f"{x:.2f}"
                                           for x in os.getloadavg())
    table = markdown_table(results, args.threads)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as out:
        json.dump({"machine": machine, "results": results, "stages": stages},
                  out, indent=1)
    results_path = args.results or family_file(cpu_family(machine))
    write_results(results_path, machine, results, table, stages, args)
    if not args.results:
        write_summary(os.path.join(HERE, "RESULTS.md"))
    print(table)
    log(f"wrote {results_path} and {os.path.join(args.out, 'results.json')}")
    return 1 if any(results.get(s, {}).get("error") for s in systems) else 0


if __name__ == "__main__":
    sys.exit(main())
