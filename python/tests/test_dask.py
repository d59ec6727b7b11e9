"""voxprint.dask.embed_corpus on a LocalCluster of two worker processes:
shards equal to the CLI's numbers, one model load per worker process, failing
files recorded, and a job killed midway resumed without redoing or losing
work."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.io.wavfile

import voxprint
from conftest import write_wav

distributed = pytest.importorskip("distributed", reason="python3-distributed is not installed")
import voxprint.dask  # noqa: E402

SHARD_SIZE = 3


@pytest.fixture(scope="module")
def corpus(audio, tmp_path_factory):
    """14 clips of 1.5 to 3 s cut from the kit's speech, a file that is not
    audio and one that does not exist: 16 paths, 6 shards."""
    directory = tmp_path_factory.mktemp("corpus")
    _, speech = scipy.io.wavfile.read(audio / "sample.wav")
    rng = np.random.default_rng(7)
    paths = []
    for i in range(14):
        length = int(rng.uniform(1.5, 3.0) * 16000)
        first = int(rng.integers(0, len(speech) - length))
        path = directory / f"clip{i:02d}.wav"
        write_wav(path, speech[first : first + length], 16000)
        paths.append(str(path))
    paths.insert(4, str(audio / "not_audio.wav"))
    paths.insert(9, str(directory / "missing.wav"))
    return paths


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def finished(corpus, client, model, tmp_path_factory):
    """One uninterrupted job."""
    output = tmp_path_factory.mktemp("uninterrupted")
    summary = voxprint.dask.embed_corpus(corpus, output, model=model, shard_size=SHARD_SIZE,
                                         client=client, progress=False)
    return output, summary


def test_corpus_equals_the_cli(corpus, finished, cli, tmp_path, client):
    output, summary = finished
    assert summary["shards"] == 6 and summary["shards_written"] == 6 and summary["shards_skipped"] == 0
    assert summary["files"] == 16 and summary["failed"] == 2
    paths, embeddings, errors = voxprint.dask.load_corpus(output)
    assert paths == [p for p in corpus if "clip" in os.path.basename(p)]
    assert [e["error"] for e in errors] == ["unsupported_input", "io_error"]
    assert embeddings.shape == (14, 256) and embeddings.dtype == np.float32
    # The CLI's batched job over the same list: the same numbers up to the
    # rounding of other batch shapes...
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(corpus) + "\n")
    done = cli.run("embed", "--model", cli.model, "-q", "--files-from", listing, check=False)
    assert done.returncode == 3  # not audio
    results = [r for r in json.loads(done.stdout)["results"] if "embedding" in r]
    assert [r["path"] for r in results] == paths
    expected = np.array([r["embedding"] for r in results], np.float32)
    error = np.linalg.norm(embeddings - expected, axis=1) / np.linalg.norm(expected, axis=1)
    assert error.max() < 1e-4
    # ...and bit for bit where the CLI batches what the shard batched.
    manifest = json.loads((output / "shard-00000.json").read_text())
    shard_paths = [f["path"] for f in manifest["files"]]
    assert len(shard_paths) == SHARD_SIZE
    np.testing.assert_array_equal(np.load(output / "shard-00000.npy"),
                                  np.stack([np.load(p) for p in _cli_batch(cli, tmp_path, shard_paths)]))
    entry = manifest["files"][0]
    assert entry["sample_rate_hz"] == 16000 and entry["channels"] == 1 and 1.5 <= entry["duration_s"] <= 3.0
    # Each worker process loaded the model once, for three shards each.
    loads = client.run(lambda: __import__("voxprint.dask").dask.models_loaded)
    assert sorted(loads.values()) == [1, 1]


def _cli_batch(cli, tmp_path, files):
    out = tmp_path / "batch"
    cli.run("embed", "--model", cli.model, "-q", "--threads", "1", "--format", "npy", "-o", out, *files)
    return [out / (os.path.splitext(os.path.basename(f))[0] + ".npy") for f in files]


def test_resume_after_kill(corpus, finished, client, model, tmp_path):
    output = tmp_path / "killed"
    # A job in a process group of its own (the caller and its two worker
    # processes), killed with SIGKILL as soon as its second shard lands.
    script = textwrap.dedent(f"""
        import os, signal, distributed, voxprint.dask
        def kill(summary, landed=[]):
            landed.append(summary)
            if len(landed) == 2:
                os.killpg(os.getpgrp(), signal.SIGKILL)
        if __name__ == "__main__":
            with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                          dashboard_address=None) as cluster, distributed.Client(cluster) as client:
                voxprint.dask.embed_corpus({corpus!r}, {str(output)!r}, model={model!r},
                                           shard_size={SHARD_SIZE}, client=client, progress=False, on_shard=kill)
    """)
    job = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    try:
        assert job.wait(timeout=180) == -signal.SIGKILL
    finally:
        try:
            os.killpg(job.pid, signal.SIGKILL)  # anything of that group still alive
        except ProcessLookupError:
            pass
    landed = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns)
              for p in output.glob("shard-*") if p.suffix in (".npy", ".json")}
    manifests = sorted(p for p in landed if p.endswith(".json"))
    assert 2 <= len(manifests) < 6, manifests

    summary = voxprint.dask.embed_corpus(corpus, output, model=model, shard_size=SHARD_SIZE,
                                         client=client, progress=False)
    assert summary["shards_skipped"] == len(manifests)
    assert summary["shards_written"] == 6 - len(manifests)
    assert summary["files"] == 16 and summary["failed"] == 2
    # Nothing redone: the shards written before the kill are the same files.
    for name in manifests:
        for part in (name, name.replace(".json", ".npy")):
            assert (output / part).stat().st_ino == landed[part][0]
            assert (output / part).stat().st_mtime_ns == landed[part][1]
    assert not [p for p in os.listdir(output) if ".tmp-" in p]
    # Nothing lost: the same results as the uninterrupted job, bit for bit.
    paths, embeddings, errors = voxprint.dask.load_corpus(output)
    expected_paths, expected, expected_errors = voxprint.dask.load_corpus(finished[0])
    assert paths == expected_paths and errors == expected_errors
    np.testing.assert_array_equal(embeddings, expected)
    # A third run has nothing to do.
    again = voxprint.dask.embed_corpus(corpus, output, model=model, shard_size=SHARD_SIZE,
                                       client=client, progress=False)
    assert again["shards_skipped"] == 6 and again["shards_written"] == 0


def test_another_job_in_the_same_directory_is_refused(corpus, finished, client, model):
    with pytest.raises(voxprint.InvalidArgumentError, match="another job"):
        voxprint.dask.embed_corpus(corpus[:5], finished[0], model=model, shard_size=SHARD_SIZE,
                                   client=client, progress=False)
    with pytest.raises(voxprint.InvalidArgumentError, match="window step"):
        voxprint.dask.embed_corpus(corpus, finished[0], step=0, client=client)


def test_bag_partitions_are_the_shards(corpus, finished, client, model, tmp_path):
    import dask.bag

    bag = dask.bag.from_sequence(corpus, npartitions=4)
    summary = voxprint.dask.embed_corpus(bag, tmp_path, model=model, client=client, progress=False)
    assert summary["shards"] == 4 and summary["files"] == 16 and summary["failed"] == 2
    paths, embeddings, errors = voxprint.dask.load_corpus(tmp_path)
    expected_paths, expected, expected_errors = voxprint.dask.load_corpus(finished[0])
    assert paths == expected_paths and errors == expected_errors
    # Other batches than the list's shards: the same numbers up to rounding.
    error = np.linalg.norm(embeddings - expected, axis=1) / np.linalg.norm(expected, axis=1)
    assert error.max() < 1e-4
    again = voxprint.dask.embed_corpus(bag, tmp_path, model=model, client=client, progress=False)
    assert again["shards_skipped"] == 4 and again["shards_written"] == 0
