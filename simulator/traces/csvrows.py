"""CSV text to columns: the header row, then data rows in chunks of about 8 MB.

In: a binary stream (`simulator.traces.files`). Out: a `_Header` (its columns found by name
or alias) and `_Chunk`s holding each row's file line, field count and the wanted columns' raw
text, split by numpy when the rows are regular and by the csv module when not. Binary data,
lone carriage returns and lines without an end are refused. Next: `simulator.traces.csvtime`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from simulator.traces.base import IntArray, PathArg, TextArray, TraceError, _normalized
from simulator.traces.files import _open_binary

_BLOCK_BYTES = 8 << 20  # data rows are read this many bytes at a time

_MAX_HEADER_BYTES = 16 << 20  # a header line longer than this is not a header
_NAMES_LISTED = 12  # columns named in a message; a 10^6-column header is summarized


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
