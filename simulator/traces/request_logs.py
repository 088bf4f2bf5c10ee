"""Request log CSVs (the Azure LLM inference trace format and its relatives) as `RequestLog`s.

In: a CSV path, one row per request: a time and optional input/output token counts, found by
name. Out: a `simulator.profiles.RequestLog` starting at its first request.
"""

from __future__ import annotations

from simulator.profiles import ProfileError, RequestLog, request_log
from simulator.traces.base import (
    _INPUT_NAMES,
    _LOG_TIME_NAMES,
    _OUTPUT_NAMES,
    OnBadRow,
    PathArg,
    TimeUnit,
    TraceError,
    _check_on_bad_row,
)
from simulator.traces.csvrows import _read_header
from simulator.traces.csvtime import _check_span, _Field, _read_table, _Tally
from simulator.traces.files import _open_binary
from simulator.traces.values import _whole_numbers


def _token_problem(raw: str) -> str:
    return f"{raw} is not a token count; allowed: a whole number >= 0"


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
