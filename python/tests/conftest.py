"""Shared fixtures of the Python module's tests: the reference kit, the built
CLI to compare with, and one Extractor for the session.

Run by CTest (python-module, python-dask) with PYTHONPATH pointing at the
build tree's python/ and VOXPRINT_CLI at the built `voxprint`. Without the
kit the run stops with exit status 77, which CTest reports as skipped.
"""

import json
import os
import pathlib
import subprocess

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def _reference_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("VOXPRINT_REFERENCE_DIR") or REPO.parent / "shared" / "reference")


def pytest_configure(config):
    kit = _reference_dir()
    if not (kit / "models" / "pytorch_model.bin").is_file():
        pytest.exit(f"skipped: the reference kit is not at {kit} (set VOXPRINT_REFERENCE_DIR)", returncode=77)


@pytest.fixture(scope="session")
def kit() -> pathlib.Path:
    return _reference_dir()


@pytest.fixture(scope="session")
def audio(kit) -> pathlib.Path:
    return kit / "audio"


@pytest.fixture(scope="session")
def model(kit) -> str:
    return str(kit / "models" / "pytorch_model.bin")


@pytest.fixture(scope="session")
def extractor(model):
    import voxprint

    return voxprint.Extractor(model)


class Cli:
    """The built `voxprint` program, run as a user runs it."""

    def __init__(self, path: str, model: str):
        self.path = path
        self.model = model

    def run(self, *args, check=True, stdin=None):
        done = subprocess.run(
            [self.path, *map(str, args)],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"voxprint {args} exited {done.returncode}: {done.stderr}")
        return done

    def embed_npy(self, tmp_path, *files, extra=()):
        """`voxprint embed FILE --format npy`: the array the CLI writes."""
        output = tmp_path / f"cli-{len(list(tmp_path.iterdir()))}.npy"
        self.run("embed", "--model", self.model, "-q", "--format", "npy", "-o", output, *extra, *files)
        return np.load(output)

    def embed_json(self, *args, check=True):
        done = self.run("embed", "--model", self.model, "-q", *args, check=check)
        return done, (json.loads(done.stdout) if done.stdout else None)


@pytest.fixture(scope="session")
def cli(model) -> Cli:
    path = os.environ.get("VOXPRINT_CLI") or str(REPO / "build" / "apps" / "cli" / "voxprint")
    if not os.access(path, os.X_OK):
        pytest.skip(f"the voxprint CLI is not built at {path} (set VOXPRINT_CLI)")
    return Cli(path, model)


def write_wav(path, samples: np.ndarray, rate: int) -> None:
    """A WAV of `samples` ([samples] or [channels, samples]) in their dtype
    (int16/int32 PCM, float32/float64 IEEE float), as scipy writes it."""
    import scipy.io.wavfile

    data = samples if samples.ndim == 1 else np.ascontiguousarray(samples.T)
    scipy.io.wavfile.write(path, rate, data)
