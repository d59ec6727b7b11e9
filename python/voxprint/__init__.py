"""Speaker embeddings (WeSpeaker ResNet34-LM, the numbers pyannote.audio gives).

    >>> import voxprint
    >>> extractor = voxprint.Extractor()          # the CLI's model lookup
    >>> a = extractor.embed("alice.wav")          # float32 [256]
    >>> b = extractor.embed(samples, sample_rate=44100)   # a NumPy array
    >>> voxprint.cosine_similarity(a, b)
    0.83
    >>> embeddings, times = extractor.embed("meeting.m4a", window="sliding")
    >>> for path, result in zip(paths, extractor.embed_files(paths)):
    ...     if isinstance(result, voxprint.Error): print(path, result)

The same library as the ``voxprint`` command: the same numbers, bit for bit.
Calls release the GIL, so threads sharing one Extractor run in parallel.
Failures raise a ``voxprint.Error`` subclass whose ``code`` is the stable
name the CLI and the server use and whose message is the line the CLI prints.
``voxprint.dask.embed_corpus`` embeds a corpus on a Dask cluster.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
from typing import Iterable, Iterator, Optional, Tuple, Union

import numpy as np

from . import _voxprint

__all__ = [
    "Extractor",
    "Result",
    "cosine_similarity",
    "Error",
    "InvalidArgumentError",
    "AudioError",
    "UnsupportedInputError",
    "CorruptInputError",
    "ModelError",
    "DeviceError",
    "ResourceLimitError",
    "FileError",
    "InternalError",
    "CancelledError",
    "NotFoundError",
    "AlreadyExistsError",
    "SAMPLE_RATE",
]

SAMPLE_RATE = 16000
"""The model's sample rate: inputs at other rates are resampled to it."""


class Error(Exception):
    """Any failure of voxprint.

    ``code`` is the error's stable name (``"model_error"``, ...), as in the
    server's JSON and the CLI's batch output; ``exit_status`` is the CLI's
    exit code for it; ``str(error)`` is the message ``voxprint`` prints after
    ``voxprint: error:``, naming the input and the reason.
    """

    code = "internal"
    exit_status = 1

    def __init__(self, message: str = "") -> None:
        super().__init__(message)


class InvalidArgumentError(Error, ValueError):
    """A parameter out of range or of the wrong kind (CLI exit 2)."""

    code, exit_status = "invalid_argument", 2


class AudioError(Error):
    """The input is not audio, cannot be decoded, or is too short (CLI exit 3)."""

    exit_status = 3


class UnsupportedInputError(AudioError):
    """Not audio, or a format voxprint does not decode."""

    code = "unsupported_input"


class CorruptInputError(AudioError):
    """Damaged audio, or too short to analyse."""

    code = "corrupt_input"


class ModelError(Error):
    """The model file is missing, corrupt or unsafe (CLI exit 4)."""

    code, exit_status = "model_error", 4


class DeviceError(Error):
    """The requested device cannot be used (CLI exit 5)."""

    code, exit_status = "backend_unavailable", 5


class ResourceLimitError(Error):
    """The input is beyond a limit (CLI exit 6)."""

    code, exit_status = "resource_limit", 6


class FileError(Error, OSError):
    """A file cannot be read or written (CLI exit 7)."""

    code, exit_status = "io_error", 7


class InternalError(Error):
    """A bug in voxprint (CLI exit 1): please report it."""

    code, exit_status = "internal", 1


class CancelledError(Error):
    """The call was interrupted (Ctrl-C) (CLI exit 130)."""

    code, exit_status = "cancelled", 130


class NotFoundError(Error, LookupError):
    """A named thing (an enrolled speaker) does not exist (CLI exit 8)."""

    code, exit_status = "not_found", 8


class AlreadyExistsError(Error):
    """A named thing (an enrolled speaker) exists already (CLI exit 2)."""

    code, exit_status = "already_exists", 2


_ERROR_CLASSES = {
    cls.code: cls
    for cls in (
        InvalidArgumentError,
        UnsupportedInputError,
        CorruptInputError,
        ModelError,
        DeviceError,
        ResourceLimitError,
        FileError,
        InternalError,
        CancelledError,
        NotFoundError,
        AlreadyExistsError,
    )
}
assert set(_ERROR_CLASSES) == set(_voxprint.error_code_names())
_voxprint._set_error_classes(_ERROR_CLASSES)


@dataclasses.dataclass(frozen=True)
class Result:
    """One input's embedding with what is known about the input.

    ``embedding`` is float32 ``[256]`` (whole) or ``[windows, 256]``
    (sliding, with ``times`` float64 ``[windows, 2]``: start and end in
    seconds of the input). ``duration`` is in seconds of the audio analysed;
    ``sample_rate``, ``channels``, ``codec`` and ``container`` describe the
    input as it was before conversion to mono 16 kHz.
    """

    path: str
    mode: str
    embedding: np.ndarray
    times: Optional[np.ndarray]
    duration: float
    sample_rate: int
    channels: int
    codec: str
    container: str
    shared_trunk: bool
    processing_time: float


Source = Union[str, os.PathLike, bytes, bytearray, memoryview, np.ndarray]
Embedding = Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]


def _request(window, duration, step, start, end, shared_trunk, details):
    if not isinstance(window, str):
        raise InvalidArgumentError(f"window must be 'whole' or 'sliding', got {window!r}")
    return _voxprint.Request(
        window,
        float(duration),
        float(step),
        None if start is None else float(start),
        None if end is None else float(end),
        bool(shared_trunk),
        bool(details),
    )


def _finish(value, details):
    return Result(**value) if details else value


class Extractor:
    """Loads the model once and embeds audio; thread-safe.

    model: the model file (pyannote ``pytorch_model.bin``, WeSpeaker
        ``avg_model.pt`` or ``.onnx``). None: as the CLI finds it:
        ``$VOXPRINT_MODEL``, else ``~/.cache/voxprint/pytorch_model.bin``,
        else a download into that cache (not with ``VOXPRINT_OFFLINE=1``).
    device: "auto", "cpu", "cuda" or "cuda:N".
    threads: compute threads per call, 0 for all cores.
    precision: "fp32" (the reference's numbers), or the faster, less exact
        opt-ins "bf16" and "mixed" (CPU; stages 3-4 in bf16) and "tf32"
        (CUDA).
    max_parallel_runs: calls (threads) that run at once; more wait.

    Several threads may call one Extractor at once: each call releases the
    GIL. Raises ModelError, DeviceError or InvalidArgumentError.
    """

    def __init__(
        self,
        model: Union[str, os.PathLike, None] = None,
        device: str = "auto",
        threads: int = 0,
        precision: str = "fp32",
        *,
        max_parallel_runs: int = 4,
    ) -> None:
        self._core = _voxprint.Extractor(
            "" if model is None else os.fspath(model),
            device,
            int(threads),
            precision,
            int(max_parallel_runs),
        )
        self._info = self._core.info()
        self._sha256: Optional[str] = None
        self._sha256_lock = threading.Lock()

    def embed(
        self,
        source: Source,
        *,
        window: str = "whole",
        duration: float = 3.0,
        step: float = 1.0,
        start: Optional[float] = None,
        end: Optional[float] = None,
        sample_rate: Optional[int] = None,
        shared_trunk: bool = False,
        details: bool = False,
    ) -> Union[Embedding, Result]:
        """The speaker embedding of one input.

        source: a path (str or os.PathLike) to a file in any common audio
            format, the bytes of such a file, or a NumPy array of samples
            (anything with ``__array__``: a torch tensor on the CPU) at
            ``sample_rate`` Hz: ``[samples]`` or ``[channels, samples]``,
            int16, int32, float32 or float64 (as a WAV file of that format
            holds them: integers full scale, floats in [-1, 1]), any
            strides. Channels are averaged, then resampled to 16 kHz.
        window: "whole" (one embedding) or "sliding" (one per window of
            ``duration`` seconds every ``step`` seconds, as pyannote.audio
            windows: the last window is zero-padded).
        start, end: an excerpt, in seconds of the input.
        shared_trunk: sliding only, an opt-in approximation ~duration/step
            times faster (see the CLI's ``--shared-trunk``).
        details: return a ``Result`` (with duration, sample rate, ...).

        Returns float32 ``[256]`` (whole) or a tuple (float32
        ``[windows, 256]``, float64 ``[windows, 2]`` start/end times in
        seconds) (sliding); a ``Result`` with ``details=True``.
        Raises a ``voxprint.Error`` subclass: AudioError, FileError,
        InvalidArgumentError, ResourceLimitError, ...
        """
        request = _request(window, duration, step, start, end, shared_trunk, details)
        if isinstance(source, (str, os.PathLike)):
            if sample_rate is not None:
                raise InvalidArgumentError("sample_rate applies to arrays only, not to files")
            value = self._core.embed_path(os.fspath(source), request)
        elif isinstance(source, (bytes, bytearray, memoryview)):
            if sample_rate is not None:
                raise InvalidArgumentError("sample_rate applies to arrays only, not to bytes")
            value = self._core.embed_bytes(bytes(source), "<bytes>", request)
        elif isinstance(source, np.ndarray) or hasattr(source, "__array__"):
            if sample_rate is None:
                raise InvalidArgumentError(
                    "an array of samples needs sample_rate= (its rate in Hz)"
                )
            if isinstance(sample_rate, bool) or int(sample_rate) != sample_rate:
                raise InvalidArgumentError(f"sample_rate must be an integer, got {sample_rate!r}")
            value = self._core.embed_array(np.asarray(source), int(sample_rate), request)
        else:
            raise InvalidArgumentError(
                "source must be a path, bytes or a NumPy array, got "
                f"{type(source).__name__}"
            )
        return _finish(value, details)

    def embed_files(
        self,
        paths: Iterable[Union[str, os.PathLike]],
        *,
        window: str = "whole",
        duration: float = 3.0,
        step: float = 1.0,
        start: Optional[float] = None,
        end: Optional[float] = None,
        shared_trunk: bool = False,
        details: bool = False,
    ) -> Iterator[Union[Embedding, Result, Error]]:
        """Embeds many files, yielding one item per path in input order.

        Whole-file embeddings are batched across files of similar length,
        as ``voxprint embed a.wav b.wav ...`` batches them (the numbers of
        each file alone, to float rounding); the next files are decoded
        while the network runs. An item is what ``embed`` returns for that
        file, or, for a file that failed, the ``voxprint.Error`` instance
        (not raised), so one bad file never ends the loop::

            for path, item in zip(paths, extractor.embed_files(paths)):
                if isinstance(item, voxprint.Error): ...

        Work runs ahead of the loop by a bounded amount; leaving the loop
        early (or Ctrl-C) stops it.
        """
        request = _request(window, duration, step, start, end, shared_trunk, details)
        files = [os.fspath(path) for path in paths]
        for value in self._core.embed_files(files, request):
            yield value if isinstance(value, Error) else _finish(value, details)

    @property
    def embedding_dim(self) -> int:
        """Numbers per embedding (256 for ResNet34-LM)."""
        return self._info["embedding_dim"]

    @property
    def sample_rate(self) -> int:
        """The model's sample rate in Hz (16000)."""
        return self._info["sample_rate"]

    @property
    def model_path(self) -> str:
        """The model file loaded."""
        return self._info["model_path"]

    @property
    def model_format(self) -> str:
        """The model file's format (pyannote checkpoint, WeSpeaker checkpoint, onnx)."""
        return self._info["model_format"]

    @property
    def model_sha256(self) -> str:
        """SHA-256 of the model file, lower-case hex (computed on first use)."""
        with self._sha256_lock:
            if self._sha256 is None:
                digest = hashlib.sha256()
                with open(self.model_path, "rb") as model:
                    for block in iter(lambda: model.read(1 << 20), b""):
                        digest.update(block)
                self._sha256 = digest.hexdigest()
            return self._sha256

    @property
    def architecture(self) -> str:
        """The network, e.g. "ResNet34"."""
        return self._info["architecture"]

    @property
    def parameter_count(self) -> int:
        """Trainable parameters of the network (6,634,336 for ResNet34-LM)."""
        return self._info["parameter_count"]

    @property
    def device(self) -> str:
        """Where the network runs: "cpu" or "cuda"."""
        return self._info["device"]

    @property
    def device_description(self) -> str:
        """The device in words (ISA or GPU, library versions)."""
        return self._info["device_description"]

    @property
    def device_choice(self) -> str:
        """Why "auto" chose the device ("" for an explicit device)."""
        return self._info["device_choice"]

    @property
    def threads(self) -> int:
        """Compute threads per call."""
        return self._info["threads"]

    @property
    def precision(self) -> str:
        """Numeric precision: "fp32", "bf16", "mixed" or "tf32"."""
        return self._info["precision"]

    def __repr__(self) -> str:
        return (
            f"voxprint.Extractor(model={self.model_path!r}, device={self.device!r}, "
            f"threads={self.threads}, precision={self.precision!r})"
        )


def cosine_similarity(a, b) -> float:
    """Cosine similarity of two embeddings (1-D arrays of equal length), in
    [-1, 1]; 0 when either is all zeros. Same speaker above about 0.7 (the
    CLI's default threshold). Raises InvalidArgumentError on a size mismatch
    or NaN/infinite values."""
    return _voxprint.cosine_similarity(a, b)
