"""`one_line`: any message (an error, a server's answer, a multi-line library text) as one line.

Every problem replicast reports is one line (DESIGN: bad input gets a clear, one-line error);
libraries' messages span lines and quote whole bodies. Shared by the core and both shells.
"""

from __future__ import annotations


def one_line(text: object, limit: int | None = None) -> str:
    """`text` (or an exception: its message, else its type's name) with whitespace collapsed,
    cut to `limit` characters with "..." when longer."""
    out = " ".join(str(text).split())
    if not out and isinstance(text, BaseException):
        out = type(text).__name__
    if limit is not None and len(out) > limit:
        out = out[: max(limit - 3, 0)] + "..."
    return out
