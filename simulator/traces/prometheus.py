"""Prometheus range-query exports (`/api/v1/query_range` JSON) of a rate as `RateProfile`s.

In: a JSON path; several series are summed per timestamp. Out: a rate series through
`simulator.traces.rate_series`; a gap, a bad sample or a document of another shape is one
`TraceError` line naming the path inside the document.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from simulator.profiles import DEFAULT_BLOCK_S, RateProfile
from simulator.traces.base import (
    _EXAMPLES_KEPT,
    _SKIP_HINT,
    FloatArray,
    Marks,
    OnBadRow,
    PathArg,
    TraceError,
    Within,
    _check_on_bad_row,
    _shown,
)
from simulator.traces.csvtime import _Tally
from simulator.traces.files import _open_binary
from simulator.traces.rate_series import _check_within, _rate_profile
from simulator.traces.values import _MAX_NS, _float_or_nan

_MAX_JSON_BYTES = 256 << 20  # a query_range response holds at most 11,000 points per series
_MAX_UNIX_S = _MAX_NS / 1e9  # Prometheus sample times: from 1970 to about 2255


def read_prometheus(
    path: PathArg,
    *,
    within: Within = "poisson",
    cv: float | None = None,
    marks: Marks = "end",
    step_s: float | None = None,
    on_bad_row: OnBadRow = "error",
    block_s: float = DEFAULT_BLOCK_S,
) -> RateProfile:
    """A Prometheus range-query export of a rate (`/api/v1/query_range` JSON) as a rate series.

    Several series are summed per timestamp, as PromQL `sum` would (a series without a sample
    at a timestamp adds nothing). Samples are on a regular grid; a timestamp where no series
    has a sample is a gap: an error, or with `on_bad_row="skip"` bridged by the next sample's
    rate (`marks="end"`) and counted as skipped. `within="renewal"` needs `cv`.
    """
    source = str(path)
    tally = _Tally(source, _check_on_bad_row(on_bad_row))
    _check_within("read_prometheus", within, cv)
    if within == "renewal" and cv is None:
        raise ValueError('read_prometheus: within="renewal" needs cv= (the export has no CV)')
    stamps, values = _samples(source, _matrix(source, _load_json(source, path)), tally)
    unique_s, inverse = np.unique(stamps, return_inverse=True)
    with np.errstate(over="ignore", invalid="ignore"):
        totals = np.bincount(inverse, weights=values, minlength=unique_s.size).astype(np.float64)
    if not np.all(np.isfinite(totals)):
        at = f"data.result at t={unique_s[np.argmin(np.isfinite(totals))]:.0f}"
        raise TraceError(
            source, None, at, "the series' sum overflows; allowed: rates in requests per second"
        )
    if unique_s.size > 1:
        # Range queries sample a regular grid: the smallest gap is the step, larger are holes.
        step_s = float(np.diff(unique_s).min()) if step_s is None else step_s
        _check_gaps(source, unique_s, step_s, tally)
    times_ns = np.round((unique_s - unique_s[0]) * 1e9).astype(np.int64) + int(unique_s[0] * 1e9)
    return _rate_profile(
        source,
        times_ns,
        totals,
        cv,
        marks=marks,
        step_s=step_s,
        unix=True,
        tally=tally,
        block_s=block_s,
    )


def _samples(source: str, series: list[Any], tally: _Tally) -> tuple[FloatArray, FloatArray]:
    """Every valid (Unix seconds, rate) sample of every series; bad ones raised or skipped."""
    stamps: list[float] = []
    values: list[float] = []
    for i, one in enumerate(series):
        for j, point in _points(source, f"data.result[{i}]", one):
            sample = _sample(point)
            if isinstance(sample, tuple):
                stamps.append(sample[0])
                values.append(sample[1])
                continue
            where = f"data.result[{i}].values[{j}]"
            if not tally.skip:
                raise TraceError(source, None, where, sample + _SKIP_HINT)
            tally.rows += 1
            if len(tally.examples) < _EXAMPLES_KEPT:
                tally.examples.append(str(TraceError(source, None, where, sample)))
    if not stamps:
        raise TraceError(source, None, "data.result", "no samples; allowed: a matrix with values")
    return np.array(stamps), np.array(values)


def _load_json(source: str, path: PathArg) -> object:
    with _open_binary(path) as stream:
        data = stream.read(_MAX_JSON_BYTES + 1).removeprefix(b"\xef\xbb\xbf")
    if len(data) > _MAX_JSON_BYTES:
        problem = f"over {_MAX_JSON_BYTES >> 20} MiB; allowed: a Prometheus query_range response"
        raise TraceError(source, None, "file", problem + " (export a shorter range)")
    try:
        return json.loads(data)
    except json.JSONDecodeError as error:
        raise TraceError(
            source,
            error.lineno,
            f"column {error.colno}",
            f"not valid JSON ({error.msg}); allowed: a Prometheus query_range response",
        ) from None
    except UnicodeDecodeError:
        raise TraceError(source, None, "file", "not UTF-8 text; allowed: JSON") from None
    except (ValueError, RecursionError) as error:  # a 5,000-digit number; [[[[... too deep
        reason = str(error).split(";")[0].split("\n")[0]
        problem = f"not a JSON document this reader takes ({reason}); allowed: a Prometheus"
        raise TraceError(source, None, "file", problem + " query_range response") from None


def _matrix(source: str, document: object) -> list[Any]:
    if not isinstance(document, dict):
        raise TraceError(source, None, "(top)", "allowed: a JSON object with status and data")
    if document.get("status", "success") != "success":
        raise TraceError(
            source,
            None,
            "status",
            f"{_shown(document.get('status'))} ({_shown(document.get('error', ''))});"
            " allowed: 'success', the response of a query that worked",
        )
    data = document.get("data", document)
    if not isinstance(data, dict) or data.get("resultType") != "matrix":
        got = _shown(data.get("resultType")) if isinstance(data, dict) else "no data object"
        raise TraceError(
            source,
            None,
            "data.resultType",
            f"{got}; allowed: 'matrix' (export a range query, /api/v1/query_range)",
        )
    result = data.get("result")
    if not isinstance(result, list) or not result:
        raise TraceError(source, None, "data.result", "allowed: a non-empty list of series")
    return result


def _points(source: str, where: str, series: object) -> Iterator[tuple[int, object]]:
    values = series.get("values") if isinstance(series, dict) else None
    if not isinstance(values, list):
        raise TraceError(source, None, f"{where}.values", "allowed: a list of [time, value] pairs")
    return enumerate(values)


def _sample(point: object) -> tuple[float, float] | str:
    """(Unix seconds, rate) from a `[time, "value"]` pair, or what is wrong with it."""
    if not isinstance(point, list) or len(point) != 2:
        return f'{_shown(point)} is not a pair; allowed: [unix_time, "value"]'
    stamp, value = point
    time_s = _float_or_nan(stamp) if isinstance(stamp, str | int | float) else math.nan
    if isinstance(stamp, bool) or not 0 <= time_s < _MAX_UNIX_S:
        return (
            f"time {_shown(stamp)} is not a Unix time; allowed: a number of seconds from 0"
            f" to {_MAX_UNIX_S:.0e}"
        )
    rate = _float_or_nan(value) if isinstance(value, str | int | float) else math.nan
    if isinstance(value, bool) or not (math.isfinite(rate) and rate >= 0):
        return f"value {_shown(value)} is not a rate; allowed: a number of requests per second >= 0"
    return time_s, rate


def _check_gaps(source: str, unique_s: FloatArray, step_s: float, tally: _Tally) -> None:
    missing = np.round(np.diff(unique_s) / step_s).astype(np.int64) - 1
    if not np.any(missing > 0):
        return
    first = int(np.argmax(missing > 0))
    where = f"data.result at t={unique_s[first]:.0f}"
    problem = (
        f"no sample for {missing[first]} step(s) of {step_s:g} s after this time;"
        " allowed: a sample at every step (export without gaps)"
    )
    if not tally.skip:
        raise TraceError(
            source, None, where, problem + '; or pass on_bad_row="skip" to bridge gaps'
        )
    tally.rows += int(missing[missing > 0].sum())
    if len(tally.examples) < _EXAMPLES_KEPT:
        tally.examples.append(str(TraceError(source, None, where, problem)))
