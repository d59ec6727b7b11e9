import os
from typing import Iterable, Iterator, Literal, Optional, Tuple, Union, overload

import numpy as np
import numpy.typing as npt

SAMPLE_RATE: int

class Error(Exception):
    code: str
    exit_status: int
    def __init__(self, message: str = ...) -> None: ...

class InvalidArgumentError(Error, ValueError): ...
class AudioError(Error): ...
class UnsupportedInputError(AudioError): ...
class CorruptInputError(AudioError): ...
class ModelError(Error): ...
class DeviceError(Error): ...
class ResourceLimitError(Error): ...
class FileError(Error, OSError): ...
class InternalError(Error): ...
class CancelledError(Error): ...
class NotFoundError(Error, LookupError): ...
class AlreadyExistsError(Error): ...

class Result:
    path: str
    mode: str
    embedding: npt.NDArray[np.float32]
    times: Optional[npt.NDArray[np.float64]]
    duration: float
    sample_rate: int
    channels: int
    codec: str
    container: str
    shared_trunk: bool
    processing_time: float

PathLike = Union[str, os.PathLike[str]]
Source = Union[PathLike, bytes, bytearray, memoryview, npt.ArrayLike]
Whole = npt.NDArray[np.float32]
Sliding = Tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]

class Extractor:
    def __init__(
        self,
        model: Optional[PathLike] = None,
        device: str = "auto",
        threads: int = 0,
        precision: Literal["fp32", "bf16", "mixed", "tf32"] = "fp32",
        *,
        max_parallel_runs: int = 4,
    ) -> None: ...
    @overload
    def embed(
        self,
        source: Source,
        *,
        window: Literal["whole"] = "whole",
        duration: float = 3.0,
        step: float = 1.0,
        start: Optional[float] = None,
        end: Optional[float] = None,
        sample_rate: Optional[int] = None,
        shared_trunk: bool = False,
        details: Literal[False] = False,
    ) -> Whole: ...
    @overload
    def embed(
        self,
        source: Source,
        *,
        window: Literal["sliding"],
        duration: float = 3.0,
        step: float = 1.0,
        start: Optional[float] = None,
        end: Optional[float] = None,
        sample_rate: Optional[int] = None,
        shared_trunk: bool = False,
        details: Literal[False] = False,
    ) -> Sliding: ...
    @overload
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
        details: Literal[True],
    ) -> Result: ...
    @overload
    def embed_files(
        self,
        paths: Iterable[PathLike],
        *,
        window: Literal["whole"] = "whole",
        duration: float = 3.0,
        step: float = 1.0,
        start: Optional[float] = None,
        end: Optional[float] = None,
        shared_trunk: bool = False,
        details: Literal[False] = False,
    ) -> Iterator[Union[Whole, Error]]: ...
    @overload
    def embed_files(
        self,
        paths: Iterable[PathLike],
        *,
        window: Literal["sliding"],
        duration: float = 3.0,
        step: float = 1.0,
        start: Optional[float] = None,
        end: Optional[float] = None,
        shared_trunk: bool = False,
        details: Literal[False] = False,
    ) -> Iterator[Union[Sliding, Error]]: ...
    @overload
    def embed_files(
        self,
        paths: Iterable[PathLike],
        *,
        window: str = "whole",
        duration: float = 3.0,
        step: float = 1.0,
        start: Optional[float] = None,
        end: Optional[float] = None,
        shared_trunk: bool = False,
        details: Literal[True],
    ) -> Iterator[Union[Result, Error]]: ...
    @property
    def embedding_dim(self) -> int: ...
    @property
    def sample_rate(self) -> int: ...
    @property
    def model_path(self) -> str: ...
    @property
    def model_format(self) -> str: ...
    @property
    def model_sha256(self) -> str: ...
    @property
    def architecture(self) -> str: ...
    @property
    def parameter_count(self) -> int: ...
    @property
    def device(self) -> str: ...
    @property
    def device_description(self) -> str: ...
    @property
    def device_choice(self) -> str: ...
    @property
    def threads(self) -> int: ...
    @property
    def precision(self) -> str: ...

def cosine_similarity(a: npt.ArrayLike, b: npt.ArrayLike) -> float: ...
