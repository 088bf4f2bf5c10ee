"""Rate series CSVs (`time_s,rate_rps[,interarrival_cv]` at any step) as `RateProfile`s.

In: a CSV path, or points (time, rate) from another reader (`_rate_profile`, which the
Prometheus reader uses too). Out: a piecewise-constant `simulator.profiles.RateProfile`, Poisson
or renewal inside each step, that remembers each step's file line.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from simulator.profiles import DEFAULT_BLOCK_S, ProfileError, RateProfile, rate_steps
from simulator.traces.base import (
    _CV_NAMES,
    _RATE_NAMES,
    _SERIES_TIME_NAMES,
    BoolArray,
    FloatArray,
    IntArray,
    Marks,
    OnBadRow,
    PathArg,
    TextArray,
    TimeUnit,
    TraceError,
    Within,
    _check_on_bad_row,
)
from simulator.traces.csvrows import _read_header
from simulator.traces.csvtime import _check_span, _Field, _read_table, _Tally
from simulator.traces.files import _open_binary
from simulator.traces.values import _floats


def read_rate_series(
    path: PathArg,
    *,
    within: Within = "poisson",
    cv: float | None = None,
    marks: Marks = "start",
    step_s: float | None = None,
    time_column: str | None = None,
    rate_column: str | None = None,
    cv_column: str | None = None,
    time_unit: TimeUnit = "s",
    on_bad_row: OnBadRow = "error",
    block_s: float = DEFAULT_BLOCK_S,
) -> RateProfile:
    """A rate series CSV (`time_s,rate_rps` at any step) as a piecewise-constant `RateProfile`.

    Each row's rate holds from its time until the next row's (`marks="start"`), or over the
    step that ends at its time (`marks="end"`, how Prometheus rate() samples look back). The
    last (first) step is `step_s` long, by default the median step. `within="poisson"` makes
    Poisson arrivals inside each step; `within="renewal"` a gamma renewal process with the CV
    `cv`, or when `cv` is None the file's per-row CV column (e.g. `interarrival_cv`).
    """
    source = str(path)
    tally = _Tally(source, _check_on_bad_row(on_bad_row))
    use_file_cv = _check_within("read_rate_series", within, cv)
    with _open_binary(path) as stream:
        header = _read_header(source, stream)
        time_col = header.require("time", time_column, _SERIES_TIME_NAMES, "time_column")
        fields = [
            _Field(
                header.require("rate", rate_column, _RATE_NAMES, "rate_column"),
                _rates,
                _rate_problem,
            )
        ]
        if use_file_cv:
            fields.append(
                _Field(header.require("CV", cv_column, _CV_NAMES, "cv_column"), _rates, _cv_problem)
            )
        fmt, times_ns, values, lines = _read_table(
            stream, header, time_col, fields, time_unit, tally, strict=True
        )
    return _rate_profile(
        source,
        times_ns,
        values[0],
        values[1] if use_file_cv else cv,
        marks=marks,
        step_s=step_s,
        unix=fmt is not None and fmt.ns_per_unit is None,
        tally=tally,
        block_s=block_s,
        lines=lines,
    )


def _rates(raw: TextArray) -> tuple[FloatArray, BoolArray]:
    """Numbers >= 0 (rates, CVs), and which rows hold one."""
    numbers = _floats(raw)
    return numbers, np.isfinite(numbers) & (numbers >= 0)


def _rate_problem(raw: str) -> str:
    return f"{raw} is not a rate; allowed: a number of requests per second >= 0"


def _cv_problem(raw: str) -> str:
    return f"{raw} is not an inter-arrival CV; allowed: a number >= 0"


def _check_within(where: str, within: str, cv: float | None) -> bool:
    """Whether the CV comes from the file; a usage error raises ValueError."""
    if within not in ("poisson", "renewal"):
        raise ValueError(f'{where}: within must be "poisson" or "renewal" (got {within!r})')
    if within == "poisson" and cv is not None:
        raise ValueError(f'{where}: cv={cv!r} needs within="renewal"')
    if cv is not None and not (math.isfinite(cv) and cv >= 0):
        raise ValueError(f"{where}: cv must be a number >= 0 (got {cv!r})")
    return within == "renewal" and cv is None


def _rate_profile(
    source: str,
    times_ns: IntArray,
    rates: FloatArray,
    cv: FloatArray | float | None,
    *,
    marks: Marks,
    step_s: float | None,
    unix: bool,
    tally: _Tally,
    block_s: float,
    lines: IntArray | None = None,
) -> RateProfile:
    """Points (time, rate) become steps; the profile starts at the first step's start.

    `lines` are the file lines of the points (a CSV), kept on the profile as `step_lines`.
    """
    if marks not in ("start", "end"):
        raise ValueError(f'marks must be "start" or "end" (got {marks!r})')
    if times_ns.size == 0:
        raise TraceError(source, 2, "rows", "no rates; allowed: one row per time step")
    _check_span(source, times_ns)
    gaps_s = np.diff(times_ns) / 1e9
    if step_s is None:
        if gaps_s.size == 0:
            problem = "one rate only; allowed: two rows or more (a step lasts until the next)"
            raise TraceError(source, None, "rows", problem + "; or pass step_s")
        step_s = float(np.median(gaps_s))
    elif not (math.isfinite(step_s) and step_s > 0):
        raise ValueError(f"step_s must be > 0 (got {step_s!r})")
    points_s = np.concatenate(([0.0], np.cumsum(gaps_s)))
    if marks == "start":
        edges_s, origin_ns = np.append(points_s, points_s[-1] + step_s), int(times_ns[0])
    else:
        edges_s, origin_ns = np.insert(points_s + step_s, 0, 0.0), int(times_ns[0] - step_s * 1e9)
    try:
        profile = rate_steps(edges_s, rates, cv=cv, block_s=block_s)
    except ProfileError as error:  # e.g. steps of 1 ns a billion seconds in: float seconds tie
        raise TraceError(source, None, "rows", str(error).split(": ", 1)[1]) from None
    return replace(
        profile,
        source=source,
        start_unix_s=origin_ns / 1e9 if unix else None,
        skipped_rows=tally.rows,
        skipped_examples=tuple(tally.examples),
        step_lines=lines,
    )
