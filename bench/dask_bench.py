#!/usr/bin/python3
"""voxprint.dask.embed_corpus: a LocalCluster of 2 workers x 1 thread against
1 worker x 1 thread, and the per-file overhead of the Dask path over the
CLI's batched path (`voxprint embed --files-from LIST --threads 1`).

    PYTHONPATH=build/python bench/dask_bench.py [--clips 200] [--repeats 2]

The clips (2 to 4 s, cut from the kit's sample.wav, dev00.wav, trn01.wav and
tst00.wav) are written to a temporary directory. Each setting runs on a warm
cluster (workers started, model loaded by a first small job), best of
--repeats; the CLI's time includes its model load (about 0.1 s), as a job's
does. Besides wall times it reports the CPU seconds of the CLI process and
of the Dask workers (their whole processes, event loops included), which a
shared machine's load disturbs far less. Prints one JSON object.
"""

import argparse
import json
import os
import pathlib
import subprocess
import tempfile
import time

import numpy as np
import scipy.io.wavfile

import voxprint
import voxprint.dask

REPO = pathlib.Path(__file__).resolve().parents[1]


def make_clips(kit: pathlib.Path, directory: pathlib.Path, count: int):
    rng = np.random.default_rng(2026)
    sources = []
    for name in ("sample.wav", "dev00.wav", "trn01.wav", "tst00.wav"):
        rate, samples = scipy.io.wavfile.read(kit / "audio" / name)
        assert rate == 16000
        sources.append(samples)
    paths = []
    for i in range(count):
        samples = sources[i % len(sources)]
        length = int(rng.uniform(2.0, 4.0) * 16000)
        first = int(rng.integers(0, len(samples) - length))
        path = directory / f"clip{i:03d}.wav"
        scipy.io.wavfile.write(path, 16000, samples[first : first + length])
        paths.append(str(path))
    return paths


def _cpu_seconds():
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def time_corpus(client, paths, model, shard_size, repeats, scratch):
    """Best wall time of `repeats` jobs, and the CPU seconds the workers
    spent on that job (robust to a shared machine's noise)."""
    best = None
    for r in range(repeats):
        output = tempfile.mkdtemp(dir=scratch)
        before = sum(client.run(_cpu_seconds).values())
        summary = voxprint.dask.embed_corpus(paths, output, model=model, shard_size=shard_size,
                                             client=client, progress=False)
        cpu = sum(client.run(_cpu_seconds).values()) - before
        assert summary["files"] == len(paths) and summary["failed"] == 0
        if best is None or summary["seconds"] < best[0]:
            best = (summary["seconds"], cpu)
    return best, output


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--shard-size", type=int, default=25)
    parser.add_argument("--kit", default=os.environ.get("VOXPRINT_REFERENCE_DIR", REPO.parent / "shared" / "reference"))
    parser.add_argument("--cli", default=REPO / "build" / "apps" / "cli" / "voxprint")
    args = parser.parse_args()
    kit = pathlib.Path(args.kit)
    model = str(kit / "models" / "pytorch_model.bin")

    import distributed

    with tempfile.TemporaryDirectory() as scratch:
        scratch = pathlib.Path(scratch)
        (scratch / "clips").mkdir()
        paths = make_clips(kit, scratch / "clips", args.clips)
        audio_s = sum(scipy.io.wavfile.read(p)[1].shape[0] for p in paths) / 16000
        listing = scratch / "list.txt"
        listing.write_text("\n".join(paths) + "\n")

        cli_best = None
        for _ in range(args.repeats):
            started = time.monotonic()
            job = subprocess.Popen([str(args.cli), "embed", "-q", "--model", model, "--threads", "1",
                                    "--files-from", str(listing), "-o", str(scratch / "cli.json")])
            _, status, usage = os.wait4(job.pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
            elapsed = (time.monotonic() - started, usage.ru_utime + usage.ru_stime)
            cli_best = elapsed if cli_best is None or elapsed[0] < cli_best[0] else cli_best

        results = {}
        for workers in (1, 2):
            with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                          dashboard_address=None) as cluster, \
                    distributed.Client(cluster) as client:
                time_corpus(client, paths[: 2 * workers], model, 1, 1, scratch)  # load the models
                seconds, output = time_corpus(client, paths, model, args.shard_size, args.repeats, scratch)
                results[workers] = seconds
        _, embeddings, _ = voxprint.dask.load_corpus(output)
        cli = json.loads((scratch / "cli.json").read_text())["results"]
        expected = np.array([r["embedding"] for r in cli], np.float32)
        error = float((np.linalg.norm(embeddings - expected, axis=1) / np.linalg.norm(expected, axis=1)).max())

    print(json.dumps({
        "clips": len(paths),
        "audio_s": round(audio_s, 1),
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
        "wall_s": {"cli_batched_threads1": round(cli_best[0], 3), "dask_1x1": round(results[1][0], 3),
                   "dask_2x1": round(results[2][0], 3)},
        "cpu_s": {"cli_batched_threads1": round(cli_best[1], 3), "dask_1x1": round(results[1][1], 3),
                  "dask_2x1": round(results[2][1], 3)},
        "files_per_s": {"cli": round(len(paths) / cli_best[0], 1),
                        "dask_1x1": round(len(paths) / results[1][0], 1),
                        "dask_2x1": round(len(paths) / results[2][0], 1)},
        "speedup_2x1_over_1x1": round(results[1][0] / results[2][0], 2),
        "overhead_1x1_over_cli_wall": round(results[1][0] / cli_best[0] - 1, 3),
        "overhead_1x1_over_cli_cpu": round(results[1][1] / cli_best[1] - 1, 3),
        "max_relative_l2_vs_cli": error,
    }, indent=1))


if __name__ == "__main__":
    main()
