"""Opening a trace file: its bytes, gunzipped within a budget when they start like gzip.

In: a path. Out: a binary stream (`_open_binary`), or one `TraceError` line for a missing or
unreadable file, a broken gzip stream, or gzip content that inflates past its budget.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from simulator.traces.base import PathArg, TraceError

# A gzip file may inflate to this many times its size, or to the floor, whichever is more:
# CSV compresses about 3-20x, a gzip bomb about 1000x.
_INFLATE_RATIO = 100
_MIN_INFLATE_BYTES = 256 << 20
_READ_BYTES = 8 << 20  # read() without a size inflates this much at a time


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
            while part := self.read(_READ_BYTES):
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
