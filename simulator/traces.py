"""Replayed traces: real load read from files into profiles.

In: a request log CSV, one row per request (the Azure LLM inference trace format
`TIMESTAMP,ContextTokens,GeneratedTokens` and its relatives); a rate series CSV
(`time_s,rate_rps[,interarrival_cv]` at any step); or a Prometheus range-query JSON export of a
rate. Files may be gzip-compressed (detected from the content, not the name).
Out: a `RequestLog` or a `RateProfile` from `simulator.profiles`, ready for its operations.

Readers match header names without regard to case, `_`, `-` or spaces, accept extra columns in
any order, and read times as ISO 8601 (with or without fraction and timezone) or as numbers of
seconds. A bad row raises `TraceError`, one line naming the file, the line, the column and what
is allowed; `on_bad_row="skip"` drops bad rows instead and counts them on the profile
(`skipped_rows`). Nothing is dropped silently.

The copies shipped in `simulator/data` (licences and citations in ATTRIBUTION.md there) load
with `azure_conv()`, `azure_code()` and `servegen_language_14d()`.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import re
import warnings
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from importlib import resources
from os import PathLike
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from simulator.profiles import (
    DEFAULT_BLOCK_S,
    Profile,
    ProfileError,
    RateProfile,
    RequestLog,
    rate_steps,
    request_log,
)

__all__ = [
    "COLUMN_ALIASES",
    "TraceError",
    "azure_code",
    "azure_conv",
    "find_column",
    "read_header",
    "read_prometheus",
    "read_rate_series",
    "read_request_log",
    "servegen_language_14d",
    "with_token_source",
]

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

_NS_PER_UNIT = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
_UNIT_NAMES = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}
_BLOCK_BYTES = 8 << 20
_MAX_NS = 9.0e18  # int64 nanoseconds reach about year 2262
_EXAMPLES_KEPT = 3
_SKIP_HINT = '; or pass on_bad_row="skip" to drop such rows'
_MAX_HEADER_BYTES = 16 << 20  # a header line longer than this is not a header
_NAMES_LISTED = 12  # columns named in a message; a 10^6-column header is summarized
# A gzip file may inflate to this many times its size, or to the floor, whichever is more:
# CSV compresses about 3-20x, a gzip bomb about 1000x.
_INFLATE_RATIO = 100
_MIN_INFLATE_BYTES = 256 << 20
_MAX_JSON_BYTES = 256 << 20  # a query_range response holds at most 11,000 points per series
_MAX_UNIX_S = _MAX_NS / 1e9  # Prometheus sample times: from 1970 to about 2255

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


# --------------------------------------------------------------------------- files


class _Inflated(io.BufferedIOBase):
    """A gzip stream that refuses to inflate past `budget` bytes (a gzip bomb ends early)."""

    def __init__(self, inner: gzip.GzipFile, path: str, budget: int) -> None:
        super().__init__()
        self._inner, self._path, self._budget, self._read = inner, path, budget, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            parts = []
            while part := self.read(_BLOCK_BYTES):
                parts.append(part)
            return b"".join(parts)
        return self._counted(self._inner.read(min(size, self._budget - self._read + 1)))

    def readline(self, size: int | None = -1) -> bytes:
        room = self._budget - self._read + 1
        return self._counted(self._inner.readline(room if size is None or size < 0 else size))

    def _counted(self, data: bytes) -> bytes:
        self._read += len(data)
        if self._read > self._budget:
            raise TraceError(
                self._path,
                None,
                "file",
                f"gzip content inflates past {self._budget >> 20} MiB (a gzip bomb?); allowed:"
                f" at most {_INFLATE_RATIO}x the compressed size or {_MIN_INFLATE_BYTES >> 20}"
                " MiB, whichever is more; decompress it yourself if it is real",
            )
        return data


@contextmanager
def _open_binary(path: PathArg) -> Iterator[io.BufferedIOBase]:
    """The file's bytes, gunzipped (within a budget) when it starts with the gzip magic number."""
    source = str(path)
    try:
        with Path(path).open("rb") as raw:
            if raw.peek(2)[:2] == b"\x1f\x8b":
                size = Path(path).stat().st_size
                budget = max(_MIN_INFLATE_BYTES, _INFLATE_RATIO * size)
                with gzip.GzipFile(fileobj=raw) as unzipped:
                    yield _Inflated(unzipped, source, budget)
            else:
                yield raw
    except (OSError, EOFError, zlib.error) as error:  # missing, unreadable, broken gzip stream
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
        raise TraceError(source, None, "file", f"cannot read ({reason})") from None


def _listed(names: Sequence[str]) -> str:
    """Column names for a message: all of a few, the first of many."""
    if not names:
        return "nothing"
    if len(names) <= _NAMES_LISTED:
        return ", ".join(names)
    return f"{', '.join(names[:_NAMES_LISTED])}, ... ({len(names):,} columns)"


@dataclass(frozen=True, slots=True)
class _Column:
    name: str  # as written in the header
    index: int


@dataclass(frozen=True, slots=True)
class _Header:
    path: str
    names: tuple[str, ...]
    normalized: tuple[str, ...] = ()

    def index(self, name: str) -> int | None:
        """Where `name` is (compared after `_normalized`), or None."""
        key = _normalized(name)
        return self.normalized.index(key) if key in self.normalized else None

    def find(
        self,
        role: str,
        explicit: str | None,
        aliases: Sequence[str],
        option: str,
        *,
        required: bool,
    ) -> _Column | None:
        """The column for `role`: the one named `explicit`, else the first alias present.

        `option` is the reader's keyword that names the column, for the error message.
        """
        wanted = (explicit,) if explicit is not None else tuple(aliases)
        for name in wanted:
            index = self.index(name)
            if index is not None:
                return _Column(self.names[index], index)
        if explicit is None and not required:
            return None
        looked = ", ".join(wanted)
        found = _listed(self.names)
        problem = f"no {role} column (looked for {looked}; found {found}); name it with {option}="
        raise TraceError(self.path, 1, "header", problem)

    def require(
        self, role: str, explicit: str | None, aliases: Sequence[str], option: str
    ) -> _Column:
        column = self.find(role, explicit, aliases, option, required=True)
        assert column is not None
        return column


def _read_header(path: str, stream: io.BufferedIOBase) -> _Header:
    raw = stream.readline(_MAX_HEADER_BYTES + 1)
    if len(raw) > _MAX_HEADER_BYTES:
        problem = (
            f"no line end in the first {_MAX_HEADER_BYTES >> 20} MiB; allowed: a header row"
            " naming the columns, then one row per line"
        )
        raise TraceError(path, 1, "header", problem)
    _check_text(path, raw.replace(b"\r\n", b"\n"), 1)
    line = raw.decode("utf-8-sig", "replace").strip()
    if not line:
        raise TraceError(
            path,
            1,
            "header",
            "the file is empty; allowed: a header row naming the columns, then one row per line",
        )
    try:
        names = tuple(name.strip() for name in next(csv.reader([line], skipinitialspace=True)))
    except csv.Error as error:  # e.g. a field over csv's size limit
        raise TraceError(path, 1, "header", f"not CSV ({error}); allowed: CSV text") from None
    return _Header(path, names, tuple(_normalized(name) for name in names))


def _check_text(path: str, data: bytes, first_line: int) -> None:
    """Refuse binary data (a NUL byte) and lone carriage returns (CRLF already made LF)."""
    for byte, problem in (
        (b"\x00", "binary data (a NUL byte), not text"),
        (b"\r", "a carriage return (CR) not followed by a line feed"),
    ):
        at = data.find(byte)
        if at >= 0:
            line = first_line + data[:at].count(b"\n")
            allowed = "allowed: CSV text (UTF-8, optionally gzip), lines ending in LF or CRLF"
            raise TraceError(path, line, "file", f"{problem}; {allowed}")


def read_header(path: PathArg) -> tuple[str, ...] | None:
    """A trace file's column names as written, or None when it holds JSON (Prometheus).

    Raises `TraceError` for what no reader takes: a missing, empty or binary file, a broken
    gzip stream, a header line without an end.
    """
    with _open_binary(path) as stream:
        start = stream.read(4096)
    if start.removeprefix(b"\xef\xbb\xbf").lstrip()[:1] in (b"{", b"["):
        return None
    with _open_binary(path) as stream:
        return _read_header(str(path), stream).names


def find_column(names: Sequence[str], wanted: Sequence[str]) -> str | None:
    """The first of `wanted` among `names` (as written there), compared as the readers do."""
    normalized = [_normalized(name) for name in names]
    for name in wanted:
        if _normalized(name) in normalized:
            return names[normalized.index(_normalized(name))]
    return None


@dataclass(frozen=True, slots=True)
class _Chunk:
    """Consecutive data rows: their line numbers, field counts and the wanted columns' text."""

    lines: IntArray
    n_fields: IntArray
    columns: dict[int, TextArray]

    def __len__(self) -> int:
        return int(self.lines.size)


def _chunks(
    path: str, stream: io.BufferedIOBase, wanted: Sequence[int], n_header_fields: int
) -> Iterator[_Chunk]:
    """Data rows in chunks of about 8 MB; line 1 is the header."""
    carry, line = b"", 2
    while True:
        block = stream.read(_BLOCK_BYTES)
        data = carry + block
        if block:
            cut = data.rfind(b"\n") + 1
            data, carry = data[:cut], data[cut:]
            if len(carry) > _MAX_HEADER_BYTES:
                line += data.count(b"\n")
                problem = f"longer than {_MAX_HEADER_BYTES >> 20} MiB; allowed: one row per line"
                raise TraceError(path, line, "row", problem)
            if not data:
                continue
        elif not data:
            return
        data = data.replace(b"\r\n", b"\n")
        _check_text(path, data, line)
        if not data.endswith(b"\n"):
            data += b"\n"
        fast = _split_regular(data, line, wanted, n_header_fields)
        yield fast if fast is not None else _split_any(path, data, line, wanted)
        line += data.count(b"\n")
        if not block:
            return


def _split_regular(
    data: bytes, first_line: int, wanted: Sequence[int], n_fields: int
) -> _Chunk | None:
    """Fast path: no quotes, every non-blank line as many fields as the header."""
    if b'"' in data:
        return None
    buffer = np.frombuffer(data, np.uint8)
    newlines = np.flatnonzero(buffer == ord("\n"))
    blank = np.diff(newlines, prepend=-1) == 1
    lines = first_line + np.flatnonzero(~blank)
    if blank.any():  # drop the blank lines' line feeds; the others keep their line numbers
        keep = np.ones(buffer.size, dtype=bool)
        keep[newlines[blank]] = False
        buffer = buffer[keep]
        data = buffer.tobytes()
        newlines = np.flatnonzero(buffer == ord("\n"))
    commas = np.flatnonzero(buffer == ord(","))
    commas_per_line = np.diff(np.searchsorted(commas, newlines), prepend=0)
    if np.any(commas_per_line != n_fields - 1):
        return None
    n_rows = newlines.size
    fields = data.replace(b"\n", b",").split(b",") if n_rows else []
    columns = {
        i: np.array(fields[i : n_rows * n_fields : n_fields], dtype=np.bytes_) for i in wanted
    }
    return _Chunk(lines.astype(np.int64), np.full(n_rows, n_fields, np.int64), columns)


def _split_any(path: str, data: bytes, first_line: int, wanted: Sequence[int]) -> _Chunk:
    """Slow path with the csv module: quotes, blank lines, short or long rows."""
    reader = csv.reader(data.decode("utf-8", "replace").split("\n")[:-1], skipinitialspace=True)
    lines: list[int] = []
    counts: list[int] = []
    values: dict[int, list[str]] = {i: [] for i in wanted}
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            lines.append(first_line + reader.line_num - 1)
            counts.append(len(row))
            for i in wanted:
                values[i].append(row[i] if i < len(row) else "")
    except csv.Error as error:  # e.g. a quoted field over csv's size limit
        line = first_line + reader.line_num - 1
        raise TraceError(path, line, "row", f"not CSV ({error}); allowed: CSV text") from None
    columns = {i: np.array(v, dtype=np.str_) for i, v in values.items()}
    return _Chunk(np.array(lines, np.int64), np.array(counts, np.int64), columns)


# --------------------------------------------------------------------------- values


def _floats(raw: TextArray) -> FloatArray:
    """Numbers, NaN where the text is not one."""
    try:
        return raw.astype(np.float64)
    except ValueError:
        return np.array([_float_or_nan(text) for text in raw.tolist()], dtype=np.float64)


def _float_or_nan(text: str | bytes | float) -> float:
    try:
        return float(text)
    except (ValueError, OverflowError):  # OverflowError: an int beyond float, e.g. 10**400
        return math.nan


def _whole_numbers(raw: TextArray) -> tuple[IntArray, BoolArray]:
    """Whole numbers >= 0 (`12` or `12.0`), and which rows hold one."""
    try:
        values = raw.astype(np.int64)
        return values, values >= 0
    except (ValueError, OverflowError):
        numbers = _floats(raw)
        ok = np.isfinite(numbers) & (numbers >= 0) & (numbers == np.floor(numbers))
        ok &= numbers < 2.0**62
        return np.where(ok, numbers, 0).astype(np.int64), ok


_ISO_START = re.compile(r"\s*\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)?")
_OFFSET = re.compile(r"([+-])(\d{2})(?::?(\d{2}))?")


@dataclass(frozen=True, slots=True)
class _TimeFormat:
    """How one file writes times, judged from its first data row; every row must agree."""

    ns_per_unit: int | None  # numbers of this unit, or None for ISO 8601 text
    suffix_len: int  # ISO: characters of timezone suffix at the end of every row
    unit: TimeUnit = "s"

    @classmethod
    def detect(cls, raw: TextArray, unit: TimeUnit) -> _TimeFormat:
        """From the first of the first rows that looks like a number or an ISO time."""
        texts = [_decoded(value).strip() for value in raw[:100].tolist()]
        for text in texts:
            if not math.isnan(_float_or_nan(text)):
                return cls(_NS_PER_UNIT[unit], 0, unit)
            match = _ISO_START.match(text)
            if match:
                return cls(None, len(text) - match.end(), unit)
        return cls(None, 0, unit)

    def allowed(self) -> str:
        if self.ns_per_unit is not None:
            bound = _MAX_NS / self.ns_per_unit
            unit = _UNIT_NAMES[self.unit]
            return f"a number of {unit} between -{bound:.0e} and {bound:.0e}, as in the first row"
        return (
            "an ISO 8601 date and time such as '2023-11-16 18:15:46.68' or"
            " '2024-05-10T00:00:00+00:00', written the same way on every row"
        )

    def parse(self, raw: TextArray) -> tuple[IntArray, BoolArray]:
        """Nanoseconds (since the Unix epoch for ISO text), and which rows hold a time."""
        if self.ns_per_unit is not None:
            with np.errstate(over="ignore", invalid="ignore"):  # 1e300 s is refused, not warned
                nanoseconds = _floats(raw) * self.ns_per_unit
            ok = np.isfinite(nanoseconds) & (np.abs(nanoseconds) < _MAX_NS)
            return np.where(ok, np.round(nanoseconds), 0).astype(np.int64), ok
        text = np.strings.strip(raw)
        offset_ns = np.zeros(text.size, np.int64)
        ok = np.strings.slice(text, 4, 5) == text.dtype.type("-")  # a year first, not a number
        if self.suffix_len:
            suffixes = np.strings.slice(text, -self.suffix_len, None)
            text = np.strings.slice(text, 0, -self.suffix_len)
            unique, inverse = np.unique(suffixes, return_inverse=True)
            offsets = [_offset_ns(suffix) for suffix in unique.tolist()]
            offset_ns = np.array([o or 0 for o in offsets], np.int64)[inverse]
            ok &= np.array([o is not None for o in offsets], dtype=bool)[inverse]
        stamps = _datetimes(text)
        ok &= ~np.isnat(stamps)
        return np.where(ok, stamps.astype(np.int64) - offset_ns, 0), ok


def _offset_ns(suffix: str | bytes) -> int | None:
    """A timezone suffix ('Z', 'UTC', '+01:00', '-0530', '+02') as nanoseconds east of UTC."""
    text = _decoded(suffix).strip()
    if text in ("Z", "UTC"):
        return 0
    match = _OFFSET.fullmatch(text)
    if match is None:
        return None
    sign = -1 if match[1] == "-" else 1
    return sign * (int(match[2]) * 3600 + int(match[3] or 0) * 60) * 10**9


def _datetimes(text: TextArray) -> npt.NDArray[np.datetime64]:
    """datetime64[ns] per row, NaT where numpy cannot read it (or would guess a timezone)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            return text.astype("datetime64[ns]")
        except (ValueError, OverflowError, Warning):
            return np.array([_datetime_or_nat(value) for value in text.tolist()])


def _datetime_or_nat(value: str | bytes) -> np.datetime64:
    try:
        return np.datetime64(_decoded(value), "ns")
    except (ValueError, OverflowError, Warning):
        return np.datetime64("NaT", "ns")


# --------------------------------------------------------------------------- row checks


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


# --------------------------------------------------------------------------- tables


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


def _token_problem(raw: str) -> str:
    return f"{raw} is not a token count; allowed: a whole number >= 0"


# --------------------------------------------------------------------------- request logs


def read_request_log(
    path: PathArg,
    *,
    time_column: str | None = None,
    input_column: str | None = None,
    output_column: str | None = None,
    time_unit: TimeUnit = "s",
    on_bad_row: OnBadRow = "error",
    duration_s: float | None = None,
) -> RequestLog:
    """A request log CSV, one row per request, as a `RequestLog` starting at its first request.

    Token columns are optional (found by name: ContextTokens / input_tokens / prompt_tokens and
    GeneratedTokens / output_tokens / completion_tokens); rows must be in time order. Numeric
    times are in `time_unit`. `duration_s` defaults to the last request plus one mean gap.
    """
    source = str(path)
    tally = _Tally(source, _check_on_bad_row(on_bad_row))
    with _open_binary(path) as stream:
        header = _read_header(source, stream)
        time_col = header.require("timestamp", time_column, _LOG_TIME_NAMES, "time_column")
        input_col = header.find(
            "input token", input_column, _INPUT_NAMES, "input_column", required=False
        )
        output_col = header.find(
            "output token", output_column, _OUTPUT_NAMES, "output_column", required=False
        )
        token_cols = [c for c in (input_col, output_col) if c is not None]
        fields = [_Field(c, _whole_numbers, _token_problem) for c in token_cols]
        fmt, times_ns, counts, _ = _read_table(
            stream, header, time_col, fields, time_unit, tally, strict=False
        )
    if fmt is None or times_ns.size == 0:
        skipped = f" ({tally.rows} rows skipped)" if tally.rows else ""
        raise TraceError(source, 2, "rows", f"no requests{skipped}; allowed: one row per request")
    _check_span(source, times_ns)
    tokens = dict(zip(token_cols, counts, strict=True))
    origin_ns = int(times_ns[0])
    try:
        return request_log(
            (times_ns - origin_ns) / 1e9,
            input_tokens=tokens.get(input_col) if input_col else None,
            output_tokens=tokens.get(output_col) if output_col else None,
            duration_s=duration_s,
            start_unix_s=origin_ns / 1e9 if fmt.ns_per_unit is None else None,
            source=source,
            skipped_rows=tally.rows,
            skipped_examples=tuple(tally.examples),
        )
    except ProfileError as error:
        raise TraceError(source, None, "rows", str(error).split(": ", 1)[1]) from None


# --------------------------------------------------------------------------- rate series


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


def _check_span(source: str, times_ns: IntArray) -> None:
    """Times (sorted) whose span fits int64 nanoseconds, so differences cannot wrap around."""
    if float(times_ns[-1]) - float(times_ns[0]) >= _MAX_NS:
        problem = "the times span more than 285 years; allowed: times closer together"
        raise TraceError(source, None, "rows", problem + " (is the unit right?)")


# --------------------------------------------------------------------------- Prometheus


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


# --------------------------------------------------------------------------- shipped data


@contextmanager
def _packaged(name: str) -> Iterator[Path]:
    with resources.as_file(resources.files("simulator").joinpath("data", name)) as path:
        yield path


def azure_conv(*, on_bad_row: OnBadRow = "error") -> RequestLog:
    """Azure LLM inference trace 2023, conversation: 19,366 requests over about an hour."""
    with _packaged("AzureLLMInferenceTrace_conv.csv.gz") as path:
        return read_request_log(path, on_bad_row=on_bad_row)


def azure_code(*, on_bad_row: OnBadRow = "error") -> RequestLog:
    """Azure LLM inference trace 2023, code: 8,819 requests over about an hour (CV ~13)."""
    with _packaged("AzureLLMInferenceTrace_code.csv.gz") as path:
        return read_request_log(path, on_bad_row=on_bad_row)


def servegen_language_14d(*, within: Within = "poisson", cv: float | None = None) -> RateProfile:
    """ServeGen language model M, 14 days of total rate per 10 min (mean ~196 req/s).

    `within="renewal"` uses each window's measured inter-arrival CV (or `cv` for all).
    """
    with _packaged("servegen_language_m_large_10min.csv") as path:
        return read_rate_series(path, within=within, cv=cv)


def with_token_source(profile: Profile, source: TokenSource) -> Profile:
    """`profile` with an (input, output) token pair on every arrival, replacing any it has.

    `"azure-conv"` / `"azure-code"` draw pairs from the embedded Azure trace's rows (its joint
    distribution: a long prompt keeps its own answer length), `(IN, OUT)` gives every arrival
    the same pair. Draws are keyed by the profile's own random streams (`Profile.with_tokens`),
    so the same seed gives the same tokens, and a slice keeps the full run's.
    """
    if isinstance(source, tuple):
        return profile.with_tokens([source[0]], [source[1]])
    readers = {"azure-conv": azure_conv, "azure-code": azure_code}
    if source not in readers:
        raise ValueError(
            f"token source must be azure-conv, azure-code or (IN, OUT) (got {source!r})"
        )
    log = readers[source]()
    return profile.with_tokens(log.input_tokens, log.output_tokens)
