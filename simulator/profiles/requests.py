"""`RequestLog`: requests replayed as recorded, no randomness (except in `rate_scale`).

In: arrival times (seconds >= 0, ascending), optional token counts and where they came from
(`request_log` checks them; `simulator.traces.read_request_log` reads them from a file).
Out: a `Profile` whose windows are read-only views of the log.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from simulator.profiles.arrivals import Arrivals, FloatArray, IntArray
from simulator.profiles.base import Profile
from simulator.profiles.checks import (
    ProfileError,
    _as_float_array,
    _first_bad,
    _positive,
    _readonly,
    _tokens,
)
from simulator.profiles.streams import _Streams


@dataclass(frozen=True, slots=True, eq=False)
class RequestLog(Profile):
    """Requests replayed as recorded: no randomness (except in `rate_scale`).

    `start_unix_s` is the Unix time of t = 0 when the source had absolute times; `skipped_rows`
    counts rows a reader dropped because it was asked to (`skipped_examples`: the first few).
    """

    time_s: FloatArray
    input_tokens: IntArray | None
    output_tokens: IntArray | None
    duration_s: float
    start_unix_s: float | None = None
    source: str = ""
    skipped_rows: int = 0
    skipped_examples: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.time_s.size)

    def _token_kinds(self) -> tuple[bool, bool]:
        return (self.input_tokens is not None, self.output_tokens is not None)

    def _expected_before(self, time_s: FloatArray) -> FloatArray:
        return np.searchsorted(self.time_s, time_s, side="left").astype(np.float64)

    def _window(self, streams: _Streams, start_s: float, end_s: float) -> Arrivals:
        whole = Arrivals(0.0, self.duration_s, self.time_s, self.input_tokens, self.output_tokens)
        return whole.window(start_s, end_s)


def request_log(
    time_s: npt.ArrayLike,
    *,
    input_tokens: npt.ArrayLike | None = None,
    output_tokens: npt.ArrayLike | None = None,
    duration_s: float | None = None,
    start_unix_s: float | None = None,
    source: str = "",
    skipped_rows: int = 0,
    skipped_examples: tuple[str, ...] = (),
) -> RequestLog:
    """A replayed log from arrival times (seconds >= 0, ascending) and optional token counts.

    `duration_s` defaults to the last arrival plus one mean inter-arrival gap, so that
    `len / duration_s` is the log's own rate and `loop` keeps it.
    """
    where = "request_log"
    times = _as_float_array(where, "time_s", time_s).copy()
    if times.size == 0:
        raise ProfileError(f"{where}: time_s has no requests")
    _first_bad(where, "time_s", times, np.isfinite(times) & (times >= 0), "a time >= 0")
    _first_bad(where, "time_s", times, np.append(True, np.diff(times) >= 0), "in time order")
    span_s = float(times[-1] - times[0])
    if duration_s is None:
        if span_s <= 0:
            raise ProfileError(f"{where}: all requests at one instant; give duration_s")
        duration = float(times[-1]) + span_s / (times.size - 1)
    else:
        duration = _positive(where, "duration_s", duration_s)
        if times[-1] >= duration:
            raise ProfileError(
                f"{where}: duration_s must be after the last request"
                f" (got {duration:g}, last at {times[-1]:g})"
            )
    _readonly(times)
    return RequestLog(
        times,
        _tokens(where, "input_tokens", input_tokens, times.size),
        _tokens(where, "output_tokens", output_tokens, times.size),
        duration,
        start_unix_s,
        source,
        skipped_rows,
        skipped_examples,
    )
