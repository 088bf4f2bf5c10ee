"""The general reader of time-ordered CSV: a time column and value columns, checked row by row.

In: a stream past its header, the time column and value `_Field`s, and what to do with a bad
row. Out: times in nanoseconds, each field's values and the rows' file lines (`_read_table`);
a bad row raises one `TraceError` line or is skipped and counted (`_Tally`). The readers of
request logs and rate series (`simulator.traces.request_logs`, `simulator.traces.rate_series`)
are built on it.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from simulator.traces.base import (
    _EXAMPLES_KEPT,
    _SKIP_HINT,
    BoolArray,
    IntArray,
    TextArray,
    TimeUnit,
    TraceError,
    _shown,
)
from simulator.traces.csvrows import _Chunk, _chunks, _Column, _Header
from simulator.traces.values import _MAX_NS, _TimeFormat


@dataclass(frozen=True, slots=True)
class _Check:
    """One rule over a chunk's rows: which pass, and the problem text for a failing value."""

    column: _Column
    ok: BoolArray
    problem: Callable[[str], str]


@dataclass(slots=True)
class _Tally:
    """Rows dropped on request, and the first few reasons."""

    path: str
    skip: bool
    rows: int = 0
    examples: list[str] = field(default_factory=list)

    def settle(self, chunk: _Chunk, checks: Sequence[_Check]) -> BoolArray:
        """Rows that pass every check; raise for the first that does not, or skip them."""
        keep = np.ones(len(chunk), dtype=bool)
        for check in checks:
            keep &= check.ok
        if keep.all():
            return keep
        bad_rows = np.flatnonzero(~keep)
        if not self.skip:
            raise self._error(chunk, checks, int(bad_rows[0]), hint=True)
        self.rows += int(bad_rows.size)
        for row in bad_rows[: _EXAMPLES_KEPT - len(self.examples)]:
            self.examples.append(str(self._error(chunk, checks, int(row), hint=False)))
        return keep

    def _error(
        self, chunk: _Chunk, checks: Sequence[_Check], row: int, *, hint: bool
    ) -> TraceError:
        """The error for a row: its first failing check, in column order."""
        check = next(c for c in checks if not c.ok[row])
        raw = chunk.columns[check.column.index][row]
        problem = check.problem(_shown(raw)) + (_SKIP_HINT if hint else "")
        return TraceError(self.path, int(chunk.lines[row]), f"column {check.column.name}", problem)


def _present(chunk: _Chunk, column: _Column) -> _Check:
    return _Check(
        column,
        chunk.n_fields > column.index,
        lambda _: "missing (the row ends before it); allowed: a value on every row",
    )


def _in_order(
    column: _Column, stamps: IntArray, valid: BoolArray, latest: int, *, strict: bool
) -> tuple[_Check, int]:
    """Rows whose time is not after the latest earlier one; the new latest time."""
    ok = np.ones(stamps.size, dtype=bool)
    seen = np.maximum.accumulate(np.concatenate(([latest], stamps[valid])))
    ok[valid] = stamps[valid] > seen[:-1] if strict else stamps[valid] >= seen[:-1]
    needed = "strictly increasing times" if strict else "rows in time order (sort the file)"

    def problem(raw: str) -> str:
        return f"{raw} is earlier than a row above it; allowed: {needed}"

    return _Check(column, ok, problem), int(seen[-1])


def _time_check(column: _Column, ok: BoolArray, fmt: _TimeFormat) -> _Check:
    return _Check(column, ok, lambda raw: f"cannot read {raw} as a time; allowed: {fmt.allowed()}")


@dataclass(frozen=True, slots=True)
class _Field:
    """A value column: how to read its text, and what to say about a value that fails."""

    column: _Column
    parse: Callable[[TextArray], tuple[npt.NDArray[Any], BoolArray]]
    problem: Callable[[str], str]


def _read_table(
    stream: io.BufferedIOBase,
    header: _Header,
    time_col: _Column,
    fields: Sequence[_Field],
    time_unit: TimeUnit,
    tally: _Tally,
    *,
    strict: bool,
) -> tuple[_TimeFormat | None, IntArray, list[npt.NDArray[Any]], IntArray]:
    """Rows in time order: times (ns), each field's values and the rows' file lines; bad rows
    raised or skipped."""
    columns = [time_col, *(f.column for f in fields)]
    fmt: _TimeFormat | None = None
    latest = int(np.iinfo(np.int64).min)
    stamps: list[IntArray] = []
    lines: list[IntArray] = []
    values: list[list[npt.NDArray[Any]]] = [[] for _ in fields]
    for chunk in _chunks(header.path, stream, [c.index for c in columns], len(header.names)):
        if len(chunk) == 0:
            continue
        fmt = fmt or _TimeFormat.detect(chunk.columns[time_col.index], time_unit)
        checks = [_present(chunk, c) for c in columns]
        times_ns, time_ok = fmt.parse(chunk.columns[time_col.index])
        checks.append(_time_check(time_col, time_ok, fmt))
        parsed = [f.parse(chunk.columns[f.column.index]) for f in fields]
        checks += [
            _Check(f.column, ok, f.problem) for f, (_, ok) in zip(fields, parsed, strict=True)
        ]
        valid = np.logical_and.reduce([check.ok for check in checks])
        order, latest = _in_order(time_col, times_ns, valid, latest, strict=strict)
        keep = tally.settle(chunk, [*checks, order])
        stamps.append(times_ns[keep])
        lines.append(chunk.lines[keep])
        for kept, (array, _) in zip(values, parsed, strict=True):
            kept.append(array[keep])
    times = np.concatenate(stamps) if stamps else np.empty(0, np.int64)
    rows = np.concatenate(lines) if lines else np.empty(0, np.int64)
    return fmt, times, [np.concatenate(v) if v else np.empty(0) for v in values], rows


def _check_span(source: str, times_ns: IntArray) -> None:
    """Times (sorted) whose span fits int64 nanoseconds, so differences cannot wrap around."""
    if float(times_ns[-1]) - float(times_ns[0]) >= _MAX_NS:
        problem = "the times span more than 285 years; allowed: times closer together"
        raise TraceError(source, None, "rows", problem + " (is the unit right?)")
