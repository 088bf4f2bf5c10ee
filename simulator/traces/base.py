"""What every trace reader shares: argument types, the header names each looks for, and
`TraceError`, the one-line message naming the file, the line, the column and what is allowed.

In: nothing (definitions). Out: the types and names the readers in `simulator.traces` use.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from os import PathLike
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
TextArray = npt.NDArray[Any]  # numpy bytes_ or str_ values of one column

PathArg = str | PathLike[str]
OnBadRow = Literal["error", "skip"]
Within = Literal["poisson", "renewal"]
Marks = Literal["start", "end"]
TimeUnit = Literal["s", "ms", "us", "ns"]
TokenSource = Literal["azure-conv", "azure-code"] | tuple[int, int]

_EXAMPLES_KEPT = 3
_SKIP_HINT = '; or pass on_bad_row="skip" to drop such rows'

# Header aliases, compared after `_normalized` (lowercase, letters and digits only).
_LOG_TIME_NAMES = ("timestamp", "time", "time_s", "arrival_time", "arrival_time_s", "ts")
_INPUT_NAMES = ("ContextTokens", "input_tokens", "prompt_tokens", "context_tokens", "input_len")
_OUTPUT_NAMES = ("GeneratedTokens", "output_tokens", "completion_tokens", "output_len")
_SERIES_TIME_NAMES = ("time_s", "timestamp", "time", "ts", "start_s")
_RATE_NAMES = ("rate_rps", "rate", "rps", "request_rate_rps", "requests_per_second", "qps")
_CV_NAMES = ("interarrival_cv", "inter_arrival_cv", "cv")
COLUMN_ALIASES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "request time": _LOG_TIME_NAMES,
        "input tokens": _INPUT_NAMES,
        "output tokens": _OUTPUT_NAMES,
        "series time": _SERIES_TIME_NAMES,
        "rate": _RATE_NAMES,
        "cv": _CV_NAMES,
    }
)


class TraceError(ValueError):
    """A trace that cannot be read as given: `file:line: column: problem; allowed ...`.

    `line` is None for JSON, where `where` is the path inside the document instead.
    """

    def __init__(self, path: str, line: int | None, where: str, problem: str) -> None:
        self.path, self.line, self.where, self.problem = path, line, where, problem
        place = path if line is None else f"{path}:{line}"
        super().__init__(f"{place}: {where}: {problem}".replace("\n", " "))


def _shown(value: object) -> str:
    """A raw value for an error message: decoded, short, quoted."""
    text = _decoded(value) if isinstance(value, bytes) else str(value)
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _decoded(value: str | bytes) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _normalized(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


def _check_on_bad_row(on_bad_row: str) -> bool:
    if on_bad_row not in ("error", "skip"):
        raise ValueError(f'on_bad_row must be "error" or "skip" (got {on_bad_row!r})')
    return on_bad_row == "skip"
