"""Which profile `--profile` names: an embedded trace, a synthetic form, or a trace file read in
the format its header shows.

In: the `--profile` text, optionally a `--format` and column names (`Columns`). Out: the
profile (`load_profile`) and how a file was read (`Detected.describe`). A trace file's format
is told from its header's columns (`detect_format`), never from its name: token columns make a
request log, a rate column a rate series, JSON a Prometheus export. Mistakes are one-line
`TraceError`s or `ProfileError`s; `simulator.profile_args` spells their hints as flags.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from simulator import profiles, traces
from simulator.profiles import Profile, ProfileError
from simulator.traces import COLUMN_ALIASES, TraceError, find_column

Format = Literal["request-log", "rate-series", "prometheus"]
FORMATS: tuple[Format, ...] = ("request-log", "rate-series", "prometheus")
_FORMAT_NAMES = {
    "request-log": "a request log",
    "rate-series": "a rate series",
    "prometheus": "a Prometheus export",
}
_SYNTHETIC: dict[str, Callable[..., Profile]] = {
    "constant": profiles.constant, "ramp": profiles.ramp, "step": profiles.step,
    "spike": profiles.spike, "diurnal": profiles.diurnal, "bursty": profiles.bursty,
}  # fmt: skip
_EMBEDDED: dict[str, Callable[[], Profile]] = {
    "azure-conv": traces.azure_conv,
    "azure-code": traces.azure_code,
    "servegen-14d": traces.servegen_language_14d,
}
_ACCEPTED = (
    "accepted: a request log (a time column and token columns, e.g."
    " timestamp,ContextTokens,GeneratedTokens), a rate series (a time and a rate column, e.g."
    " time_s,rate_rps) or a Prometheus query_range JSON export"
)
_NAME_COLUMNS = (
    "name the columns with --time-column, --rate-column, --input-tokens-column or"
    " --output-tokens-column, or choose with --format request-log|rate-series|prometheus"
)


@dataclass(frozen=True, slots=True)
class Columns:
    """Column names given by flags (None: find them by their usual names)."""

    time: str | None = None
    rate: str | None = None
    input_tokens: str | None = None
    output_tokens: str | None = None

    def given(self) -> list[str]:
        flags = (
            "--time-column",
            "--rate-column",
            "--input-tokens-column",
            "--output-tokens-column",
        )
        values = (self.time, self.rate, self.input_tokens, self.output_tokens)
        return [flag for flag, value in zip(flags, values, strict=True) if value is not None]


@dataclass(frozen=True, slots=True)
class Detected:
    """A trace file's format and the header's columns it will be read with."""

    format: Format
    time: str | None = None
    rate: str | None = None
    input_tokens: str | None = None
    output_tokens: str | None = None
    how: str = "detected from the header"

    def describe(self, path: str) -> str:
        roles = (
            ("time", self.time),
            ("rate", self.rate),
            ("input tokens", self.input_tokens),
            ("output tokens", self.output_tokens),
        )
        used = ", ".join(f"{role} from {name}" for role, name in roles if name is not None)
        columns = f" ({used})" if used else ""
        return f"{path} read as {_FORMAT_NAMES[self.format]}{columns}, {self.how}"


def detect_format(path: str, columns: Columns = Columns(), fmt: Format | None = None) -> Detected:
    """The format of a trace file and the columns to read, from its header (or `fmt`).

    Token columns make a request log, a rate column a rate series, JSON a Prometheus export;
    a header with a time column alone is a request log of arrival times. Columns named in
    `columns` must exist. An ambiguous or unknown header raises a `TraceError` listing the
    columns found and the formats accepted.
    """
    names = traces.read_header(path)
    how = "as --format says" if fmt is not None else "detected from the header"
    if names is None:
        if fmt not in (None, "prometheus"):
            raise TraceError(path, None, "file", f"JSON, not a CSV; --format {fmt} needs a CSV")
        if columns.given():
            raise TraceError(path, None, "file", f"JSON has no columns; drop {columns.given()[0]}")
        return Detected("prometheus", how=how)
    if fmt == "prometheus":
        raise TraceError(path, 1, "header", "a CSV, not JSON; --format prometheus needs JSON")
    rate = _column(path, names, columns.rate, COLUMN_ALIASES["rate"], "--rate-column")
    inputs = _column(
        path, names, columns.input_tokens, COLUMN_ALIASES["input tokens"], "--input-tokens-column"
    )
    outputs = _column(
        path,
        names,
        columns.output_tokens,
        COLUMN_ALIASES["output tokens"],
        "--output-tokens-column",
    )
    tokens = [name for name in (inputs, outputs) if name is not None]
    kind = fmt or _kind_from_columns(path, names, rate, tokens, columns)
    time_aliases = COLUMN_ALIASES["request time" if kind == "request-log" else "series time"]
    time = _column(path, names, columns.time, time_aliases, "--time-column")
    if time is None:
        raise TraceError(
            path,
            1,
            "header",
            f"no time column for {_FORMAT_NAMES[kind]} (looked for {', '.join(time_aliases)};"
            f" found {_listed(names)}); name it with --time-column",
        )
    if kind == "rate-series":
        if rate is None:
            raise TraceError(
                path,
                1,
                "header",
                f"no rate column (looked for {', '.join(COLUMN_ALIASES['rate'])}; found"
                f" {_listed(names)}); name it with --rate-column",
            )
        return Detected(kind, time, rate, how=how)
    return Detected(kind, time, None, inputs, outputs, how=how)


def _kind_from_columns(
    path: str, names: tuple[str, ...], rate: str | None, tokens: list[str], columns: Columns
) -> Format:
    if tokens and rate is not None:
        raise TraceError(
            path,
            1,
            "header",
            f"both token columns ({', '.join(tokens)}) and a rate column ({rate}); say which"
            " it is with --format request-log or --format rate-series",
        )
    if tokens:
        return "request-log"
    if rate is not None:
        return "rate-series"
    lone_time = find_column(names, COLUMN_ALIASES["request time"]) is not None
    if len(names) == 1 and (lone_time or columns.time is not None):
        return "request-log"  # arrival times only
    raise TraceError(
        path,
        1,
        "header",
        f"cannot tell the format from the columns (found {_listed(names)}); {_ACCEPTED};"
        f" {_NAME_COLUMNS}",
    )


def _column(
    path: str, names: tuple[str, ...], given: str | None, aliases: tuple[str, ...], flag: str
) -> str | None:
    """The column `given` names (it must exist), else the first of `aliases` present."""
    if given is None:
        return find_column(names, aliases)
    found = find_column(names, (given,))
    if found is None:
        raise TraceError(path, 1, "header", f"no column {given!r} ({flag}); found {_listed(names)}")
    return found


def _listed(names: tuple[str, ...]) -> str:
    shown = ", ".join(names[:12]) or "nothing"
    return shown if len(names) <= 12 else f"{shown}, ... ({len(names):,} columns)"


# --------------------------------------------------------------------------- loading


def load_profile(
    text: str,
    *,
    fmt: Format | None = None,
    columns: Columns = Columns(),
    skip_bad_rows: bool = False,
) -> Profile:
    """`azure-conv`, `azure-code`, `servegen-14d`, a trace path, or `kind:arg:arg...`."""
    return _load(text, fmt, columns, skip_bad_rows)[0]


def _load(
    text: str, fmt: Format | None, columns: Columns, skip_bad_rows: bool
) -> tuple[Profile, str | None]:
    """The profile `--profile` names, and a note saying how a trace file was read."""
    kind, _, rest = text.partition(":")
    is_file = text not in _EMBEDDED and not (kind in _SYNTHETIC and rest)
    if not is_file and (fmt is not None or columns.given()):
        flag = "--format" if fmt is not None else columns.given()[0]
        raise ProfileError(f"{flag} reads a trace file; --profile {text} is not one")
    if text in _EMBEDDED:
        return _EMBEDDED[text](), None
    if kind in _SYNTHETIC and rest:
        try:
            return _SYNTHETIC[kind](*(float(x) for x in rest.split(":"))), None
        except (TypeError, ValueError) as error:
            raise ProfileError(f"--profile {text}: {error}") from None
    if not Path(text).exists():
        raise ProfileError(
            f"--profile {text}: no such file; use azure-conv, azure-code, servegen-14d, a trace "
            "path, or constant:RPS:SECONDS, diurnal:MEAN:AMPLITUDE:SECONDS, step:A:B:AT:SECONDS"
        )
    detected = detect_format(text, columns, fmt)
    on_bad_row: traces.OnBadRow = "skip" if skip_bad_rows else "error"
    if detected.format == "prometheus":
        profile: Profile = traces.read_prometheus(text, on_bad_row=on_bad_row)
    elif detected.format == "rate-series":
        profile = traces.read_rate_series(
            text,
            time_column=detected.time,
            rate_column=detected.rate,
            on_bad_row=on_bad_row,
        )
    else:
        profile = traces.read_request_log(
            text,
            time_column=detected.time,
            input_column=detected.input_tokens,
            output_column=detected.output_tokens,
            on_bad_row=on_bad_row,
        )
    return profile, detected.describe(text)
