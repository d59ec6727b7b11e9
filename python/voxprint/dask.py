"""Corpus-scale embedding on a Dask cluster (Debian's python3-distributed).

    from distributed import Client
    import voxprint.dask

    client = Client("tcp://scheduler:8786")      # or Client() for a LocalCluster
    summary = voxprint.dask.embed_corpus(paths, "/shared/embeddings", client=client)
    paths, embeddings, errors = voxprint.dask.load_corpus("/shared/embeddings")

The file list is cut into shards of ``shard_size`` files; each shard is one
task, embedded on a worker with the batched path (Extractor.embed_files),
and written to ``output_dir`` as ``shard-NNNNN.npy`` (float32 [rows, 256];
sliding windows add ``shard-NNNNN.times.npy``, float64 [rows, 2]) and
``shard-NNNNN.json``, the manifest: per file its path, duration, sample rate,
channels and rows, or its error. Files are written under temporary names
and renamed, the manifest last, so a shard is there whole or not at all.
Rerunning the same job skips the shards already written: a job killed
halfway resumes without redoing or losing work. A file that fails is
recorded in its shard's manifest, never fatal.

Each worker process loads the model once (the first task it runs) and keeps
it for the next tasks. Paths must be readable by the workers (shared
storage on a real cluster); ``model=None`` lets each worker find the model
as the CLI does ($VOXPRINT_MODEL, the cache).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
import uuid
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

import voxprint

__all__ = ["embed_corpus", "load_corpus"]

_JOB_FILE = "job.json"
_FORMAT = 1

# The Extractors of this process (a Dask worker), by their options: a model
# is loaded by the first task that needs it and shared by the next ones.
_extractors: Dict[tuple, voxprint.Extractor] = {}
_extractors_lock = threading.Lock()
models_loaded = 0  # in this process: how many times a model was loaded


def _extractor(model, device, threads, precision, parallel_runs) -> voxprint.Extractor:
    global models_loaded
    key = (model, device, threads, precision)
    with _extractors_lock:
        if key not in _extractors:
            _extractors[key] = voxprint.Extractor(
                model, device, threads, precision, max_parallel_runs=max(4, parallel_runs)
            )
            models_loaded += 1
        return _extractors[key]


def _shard_name(index: int) -> str:
    return f"shard-{index:05d}"


def _write_atomically(path: str, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Writes through a temporary file in the same directory, then renames:
    readers (and a resumed job) see the old state or the new, never half."""
    directory, name = os.path.split(path)
    temporary = os.path.join(directory, f".{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with open(temporary, mode) as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.remove(temporary)
        except OSError:
            pass
        raise


def _embed_shard(index: int, paths: Sequence[str], output_dir: str, options: dict) -> dict:
    """One task: embeds a shard's files and writes its files (runs on a worker)."""
    name = os.path.join(output_dir, _shard_name(index))
    if os.path.exists(name + ".json"):  # a retried task whose work is done
        return _summary_of(index, _read_json(name + ".json"), written=False)
    started = time.monotonic()
    paths = [os.fspath(p) for p in paths]
    parallel_runs = 1
    try:
        from distributed import get_worker

        worker = get_worker()
        parallel_runs = getattr(getattr(worker, "state", worker), "nthreads", 1)
    except (ImportError, ValueError, AttributeError):
        pass
    extractor = _extractor(options["model"], options["device"], options["threads"],
                           options["precision"], parallel_runs)
    window = options["request"]["window"]
    rows: List[np.ndarray] = []
    times: List[np.ndarray] = []
    files = []
    next_row = 0
    for path, item in zip(paths, extractor.embed_files(paths, details=True, **options["request"])):
        if isinstance(item, voxprint.Error):
            files.append({"path": path, "error": item.code, "detail": str(item)})
            continue
        matrix = item.embedding.reshape(-1, item.embedding.shape[-1])
        rows.append(matrix)
        if window == "sliding":
            times.append(item.times)
        files.append({
            "path": path,
            "duration_s": item.duration,
            "sample_rate_hz": item.sample_rate,
            "channels": item.channels,
            "rows": [next_row, len(matrix)],
        })
        next_row += len(matrix)
    dim = extractor.embedding_dim
    embeddings = np.concatenate(rows) if rows else np.zeros((0, dim), np.float32)
    _write_atomically(name + ".npy", lambda f: np.save(f, embeddings))
    if window == "sliding":
        spans = np.concatenate(times) if times else np.zeros((0, 2), np.float64)
        _write_atomically(name + ".times.npy", lambda f: np.save(f, spans))
    manifest = {
        "format": _FORMAT,
        "shard": index,
        "window": window,
        "embedding_dim": dim,
        "model": extractor.model_path,
        "processing_s": time.monotonic() - started,
        "files": files,
    }
    _write_atomically(name + ".json", lambda f: json.dump(manifest, f, indent=1), "w")
    return _summary_of(index, manifest, written=True)


def _read_json(path: str) -> dict:
    with open(path) as file:
        return json.load(file)


def _summary_of(index: int, manifest: dict, written: bool) -> dict:
    files = manifest["files"]
    failed = [f for f in files if "error" in f]
    return {
        "shard": index,
        "written": written,
        "files": len(files),
        "failed": len(failed),
        "audio_s": sum(f.get("duration_s", 0.0) for f in files),
        "processing_s": manifest.get("processing_s", 0.0),
    }


class _Progress:
    """A progress bar in the caller: tqdm when installed, else one line on stderr."""

    def __init__(self, total: int, done: int, enabled: bool):
        self.total, self.done, self.enabled = total, done, enabled
        self.bar = None
        if enabled:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, initial=done, unit="shard", desc="voxprint")
            except ImportError:
                self._print()

    def advance(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        elif self.enabled:
            self._print()

    def _print(self) -> None:
        width = 30
        filled = width * self.done // max(self.total, 1)
        sys.stderr.write(f"\rvoxprint: [{'#' * filled}{'.' * (width - filled)}] "
                         f"{self.done}/{self.total} shards")
        if self.done == self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled and self.done < self.total:  # stopped early
            sys.stderr.write("\n")


def embed_corpus(
    paths_or_bag,
    output_dir: Union[str, os.PathLike],
    *,
    window: str = "whole",
    duration: float = 3.0,
    step: float = 1.0,
    start: Optional[float] = None,
    end: Optional[float] = None,
    model: Union[str, os.PathLike, None] = None,
    device: str = "cpu",
    threads: int = 1,
    precision: str = "fp32",
    shard_size: int = 256,
    client=None,
    progress: bool = True,
    on_shard: Optional[Callable[[dict], None]] = None,
) -> dict:
    """Embeds every file of a corpus on a Dask cluster, in shards written to
    ``output_dir``; returns a summary.

    paths_or_bag: a sequence of paths, or a ``dask.bag.Bag`` of paths (its
        partitions are the shards; ``shard_size`` then does not apply).
    window, duration, step, start, end: as ``Extractor.embed``.
    model, device, precision: as ``voxprint.Extractor``, on each worker.
    threads: compute threads per task; a worker runs as many tasks at once
        as it has Dask threads (``dask worker --nthreads``).
    shard_size: files per shard (one task, one .npy and one manifest).
    client: a ``distributed.Client``; None: the current one, else a new
        LocalCluster for this call.
    progress: a progress bar on the caller's stderr.
    on_shard: called in the caller with each shard's summary as it lands.

    Rerun with the same arguments to resume: shards already in output_dir
    are skipped. Raises InvalidArgumentError when output_dir holds another
    job's shards (other paths or parameters).

    Returns a dict: shards, shards_written (by this call), shards_skipped
    (already there), files, failed (files whose error is in a manifest),
    audio_s, seconds (this call's wall time), output_dir.
    """
    started = time.monotonic()
    request = dict(window=window, duration=float(duration), step=float(step),
                   start=start, end=end)
    # Bad parameters fail here, before any task runs.
    voxprint._request(window, duration, step, start, end, False, False)
    if isinstance(shard_size, bool) or int(shard_size) < 1:
        raise voxprint.InvalidArgumentError(f"shard_size must be at least 1, got {shard_size!r}")
    output_dir = os.path.abspath(os.fspath(output_dir))
    options = dict(model=None if model is None else os.fspath(model), device=device,
                   threads=int(threads), precision=precision, request=request)

    import dask.bag

    if isinstance(paths_or_bag, dask.bag.Bag):
        bag = paths_or_bag
        shards = bag.to_delayed()
        identity = {"bag": bag.name, "partitions": bag.npartitions}
    else:
        paths = [os.fspath(p) for p in paths_or_bag]
        size = int(shard_size)
        shards = [paths[i : i + size] for i in range(0, len(paths), size)]
        listing = hashlib.sha256("\n".join(paths).encode("utf-8", "surrogateescape")).hexdigest()
        identity = {"paths_sha256": listing, "files": len(paths), "shard_size": size}
    job = {"format": _FORMAT, "request": request, "shards": len(shards), **identity,
           "model": options["model"], "device": device, "precision": precision}

    os.makedirs(output_dir, exist_ok=True)
    job_path = os.path.join(output_dir, _JOB_FILE)
    if os.path.exists(job_path):
        if _read_json(job_path) != json.loads(json.dumps(job)):
            raise voxprint.InvalidArgumentError(
                f"{output_dir}: holds the shards of another job (other paths or "
                "parameters); use another directory")
    else:
        _write_atomically(job_path, lambda f: json.dump(job, f, indent=1), "w")
    # Temporary files of a job that was killed: never renamed, never read.
    for entry in os.listdir(output_dir):
        if entry.startswith(".shard-") and ".tmp-" in entry:
            os.remove(os.path.join(output_dir, entry))

    done = {k for k in range(len(shards))
            if os.path.exists(os.path.join(output_dir, _shard_name(k) + ".json"))}
    todo = [k for k in range(len(shards)) if k not in done]

    import distributed

    own_client = None
    if client is None:
        try:
            client = distributed.get_client()
        except ValueError:
            client = own_client = distributed.Client()
    bar = _Progress(len(shards), len(done), progress)
    summaries = []
    try:
        if todo:
            if isinstance(paths_or_bag, dask.bag.Bag):
                import dask

                tasks = [dask.delayed(_embed_shard, pure=False)(k, shards[k], output_dir, options)
                         for k in todo]
                futures = client.compute(tasks)
            else:
                futures = [client.submit(_embed_shard, k, shards[k], output_dir, options,
                                         pure=False, key=f"voxprint-{_shard_name(k)}-{uuid.uuid4().hex[:8]}")
                           for k in todo]
            try:
                for future in distributed.as_completed(futures):
                    summary = future.result()  # a shard's task failing as a whole raises
                    summaries.append(summary)
                    bar.advance()
                    if on_shard is not None:
                        on_shard(summary)
            except BaseException:
                client.cancel(futures)
                raise
    finally:
        bar.close()
        if own_client is not None:
            own_client.close()
    for k in sorted(done):
        manifest = _read_json(os.path.join(output_dir, _shard_name(k) + ".json"))
        summaries.append(_summary_of(k, manifest, written=False))
    return {
        "output_dir": output_dir,
        "shards": len(shards),
        "shards_written": sum(s["written"] for s in summaries),
        "shards_skipped": len(done),
        "files": sum(s["files"] for s in summaries),
        "failed": sum(s["failed"] for s in summaries),
        "audio_s": sum(s["audio_s"] for s in summaries),
        "seconds": time.monotonic() - started,
    }


def load_corpus(output_dir: Union[str, os.PathLike]) -> Tuple[List[str], np.ndarray, List[dict]]:
    """Reads a job's shards back, in input order: (paths of the files
    embedded, float32 [rows, 256] (whole: one row per path; sliding: the
    windows of each file in turn, see the manifests' "rows"), the failed
    files' manifest entries). Missing shards (a job not finished) raise
    FileError."""
    output_dir = os.fspath(output_dir)
    job = _read_json(os.path.join(output_dir, _JOB_FILE))
    paths, blocks, errors = [], [], []
    for k in range(job["shards"]):
        name = os.path.join(output_dir, _shard_name(k))
        if not os.path.exists(name + ".json"):
            raise voxprint.FileError(f"{name}.json: shard {k} of {job['shards']} is not written yet")
        manifest = _read_json(name + ".json")
        blocks.append(np.load(name + ".npy"))
        for entry in manifest["files"]:
            (errors if "error" in entry else paths).append(entry if "error" in entry else entry["path"])
    dim = blocks[0].shape[1] if blocks else 256
    return paths, (np.concatenate(blocks) if blocks else np.zeros((0, dim), np.float32)), errors
