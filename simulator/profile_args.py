"""The load a command replays: `--profile` and the flags that say how to read it.

In: `--profile` (an embedded trace, a synthetic form, or a trace file) and the flags
`add_profile_arguments` adds to `simulate`, `compare`, `demo` and `loadgen` -- `--format`,
`--time-column`, `--rate-column`, `--input-tokens-column`, `--output-tokens-column`, `--tokens`,
`--skip-bad-rows` -- with the `--slice` and `--rate-scale` those commands already have.
Out: `profile_from_args(args, model)`, the prepared profile (read, tokens attached, sliced,
scaled, checked against the caps of `simulator.profiles.oversize`) and notes for the header: the
format read and where token counts came from.

A trace file's format is told from its header's columns (`simulator.profile_formats`), not its name:
token columns make a request log, a rate column a rate series, JSON a Prometheus export. Every
mistake is one line naming the file (and line) or the flag, and the fix in flags: a `TraceError`
or `ProfileError`, both ValueErrors, which the commands print as their usage error.
"""

from __future__ import annotations

import argparse
import math
import re

from simulator import profiles, traces
from simulator.model import ReplicaModel
from simulator.profile_formats import FORMATS, Columns, Detected, _load, detect_format, load_profile
from simulator.profiles import Profile, ProfileError, oversize
from simulator.traces import TokenSource, TraceError

__all__ = [
    "FORMATS",
    "PROFILE_HELP",
    "Columns",
    "Detected",
    "add_profile_arguments",
    "detect_format",
    "load_profile",
    "parse_tokens",
    "profile_from_args",
]

_TOKEN_SOURCES = {
    "azure-conv": "the embedded Azure conversation trace",
    "azure-code": "the embedded Azure code trace",
}
# The readers' keyword hints, as the flags that do the same (messages speak in flags here).
_KEYWORDS_AS_FLAGS = (
    ('pass on_bad_row="skip"', "pass --skip-bad-rows"),
    ("time_column=", "--time-column"),
    ("rate_column=", "--rate-column"),
    ("input_column=", "--input-tokens-column"),
    ("output_column=", "--output-tokens-column"),
    ("; or pass step_s", ""),
)

PROFILE_HELP = (
    "the load: azure-conv | azure-code | servegen-14d (embedded traces) | constant:RPS:S | "
    "ramp:FROM:TO:S | step:BEFORE:AFTER:AT:S | spike:BASE:PEAK:AT:LENGTH:S | "
    "diurnal:MEAN:AMPLITUDE:S | bursty:RPS:CV:S (rates in req/s, times in s) | a trace file "
    "(CSV or JSON, gzip or not): a request log, a rate series or a Prometheus export, told "
    "apart by their columns; see 'profile formats' below"
)
FORMATS_TEXT = """\
A trace file's format is told from its header, not its name. Column names match without
regard to case, '_', '-' or spaces; other columns are ignored; times are ISO 8601 (with or
without fraction and timezone) or numbers of seconds. Files may be gzip-compressed.

request log: one row per request, in time order. Columns: a time (timestamp, time, time_s,
  arrival_time, ts) and token counts, whole numbers >= 0 (input: ContextTokens, input_tokens,
  prompt_tokens; output: GeneratedTokens, output_tokens, completion_tokens).
    TIMESTAMP,ContextTokens,GeneratedTokens
    2023-11-16 18:15:46.680,374,44
    2023-11-16 18:15:50.248,396,109

rate series: a rate in requests per second from each row's time until the next row's (the
  last lasts the median step). Columns: a time (time_s, timestamp, time, ts, start_s) and a
  rate (rate_rps, rate, rps, request_rate_rps, requests_per_second, qps).
    time_s,rate_rps
    0,12.5
    600,20

Prometheus: the JSON of /api/v1/query_range for a rate, e.g. sum(rate(requests_total[1m]));
  several series are summed, each sample covers the step that ends at its time.
    {"status": "success", "data": {"resultType": "matrix", "result": [
      {"metric": {}, "values": [[1700000000, "12.5"], [1700000060, "20"]]}
    ]}}

A header with both token and rate columns, or neither, is refused: name the columns with
--time-column, --rate-column, --input-tokens-column, --output-tokens-column, or choose with
--format. One run draws at most 2e9 requests, 5e7 in any hour, over at most 366 days: lower
the load with --rate-scale or take part of it with --slice."""


# --------------------------------------------------------------------------- flags


def add_profile_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that say how to read `--profile` and where token counts come from."""
    if parser.formatter_class is argparse.HelpFormatter:  # keep the examples' lines
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
    group = parser.add_argument_group("profile formats", FORMATS_TEXT)
    group.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="read the trace file as this format instead of telling it from the header",
    )
    for flag, role in (
        ("--time-column", "the time"),
        ("--rate-column", "the rate (req/s) of a rate series"),
        ("--input-tokens-column", "input (prompt) token counts"),
        ("--output-tokens-column", "output (generated) token counts"),
    ):
        group.add_argument(flag, default=None, metavar="NAME", help=f"the column of {role}")
    group.add_argument(
        "--tokens",
        default=None,
        metavar="SOURCE",
        help="token counts for every request: azure-conv | azure-code ((input, output) pairs "
        "drawn from the embedded trace's rows, seeded) | fixed:IN:OUT. By default a model "
        "whose service time needs tokens (llm_tokens) gets azure-conv pairs when the profile "
        "has none; given, it replaces a trace's own",
    )
    group.add_argument(
        "--skip-bad-rows",
        action="store_true",
        help="drop rows that cannot be read (counted in the header) instead of stopping",
    )


def parse_tokens(text: str) -> TokenSource:
    """`azure-conv`, `azure-code` or `fixed:IN:OUT` (whole numbers >= 0) from `--tokens`."""
    if text in _TOKEN_SOURCES:
        return "azure-conv" if text == "azure-conv" else "azure-code"
    match = re.fullmatch(r"fixed:(\d+):(\d+)", text.strip())
    if match is None:
        raise ProfileError(
            f"--tokens {text}: allowed: azure-conv, azure-code or fixed:IN:OUT (whole numbers"
            " of input and output tokens, e.g. fixed:512:128)"
        )
    return int(match[1]), int(match[2])


def _in_flags(error: TraceError | ProfileError) -> TraceError | ProfileError:
    """The same error, its keyword hints spelled as the flags that do the same."""
    if isinstance(error, TraceError):
        return TraceError(error.path, error.line, error.where, _flagged(error.problem))
    return ProfileError(_flagged(str(error)))


def _flagged(text: str) -> str:
    for keyword, flag in _KEYWORDS_AS_FLAGS:
        text = text.replace(keyword, flag)
    return text


# --------------------------------------------------------------------------- preparing


def profile_from_args(
    args: argparse.Namespace, model: ReplicaModel | None = None
) -> tuple[Profile, list[str]]:
    """The profile the flags describe, ready to run, and notes for the header.

    Read (`--profile`, `--format`, the column flags, `--skip-bad-rows`), given token counts
    (`--tokens`, or azure-conv pairs when `model` needs tokens and the profile has none),
    sliced (`--slice`), scaled (`--rate-scale`) and checked against the caps per run.
    """
    columns = Columns(
        getattr(args, "time_column", None),
        getattr(args, "rate_column", None),
        getattr(args, "input_tokens_column", None),
        getattr(args, "output_tokens_column", None),
    )
    tokens_flag = getattr(args, "tokens", None)
    tokens = parse_tokens(tokens_flag) if tokens_flag is not None else None
    try:
        profile, read_note = _load(
            args.profile,
            getattr(args, "format", None),
            columns,
            getattr(args, "skip_bad_rows", False),
        )
    except (TraceError, ProfileError) as error:
        raise _in_flags(error) from None
    notes = [read_note] if read_note else []
    notes += _skipped_note(profile)
    profile, token_note = _with_tokens(profile, tokens, model, getattr(args, "model", None))
    notes += token_note
    full = profile
    window = _slice_window(getattr(args, "slice", None), profile.duration_s)
    if window is not None:
        profile = profile.slice(*window)
    scale = _rate_scale(getattr(args, "rate_scale", 1.0))
    if scale != 1.0:
        profile, full = profile.rate_scale(scale), full.rate_scale(scale)
    _check_size(profile, full, window, scale)
    return profile, notes


def _skipped_note(profile: Profile) -> list[str]:
    skipped = getattr(profile, "skipped_rows", 0)
    if not skipped:
        return []
    examples = getattr(profile, "skipped_examples", ())
    first = f"; first: {examples[0]}" if examples else ""
    return [f"skipped {skipped:,} bad row(s) (--skip-bad-rows){first}"]


def _with_tokens(
    profile: Profile, tokens: TokenSource | None, model: ReplicaModel | None, name: str | None
) -> tuple[Profile, list[str]]:
    """Token counts from `--tokens`, or the default source when the model needs them."""
    if tokens is not None:
        replaced = ", replacing the profile's own" if profile.has_tokens else ""
        note = f"token counts: {_described(tokens)} (--tokens){replaced}"
        return traces.with_token_source(profile, tokens), [note]
    if model is None or not model.needs_tokens or profile.has_token_pairs:
        return profile, []
    lacking = "has none" if not profile.has_tokens else "lacks input or output counts"
    who = f"--model {name}" if name else "the model"
    note = (
        f"token counts: {_described('azure-conv')}, since {who} times requests by their tokens"
        f" and the profile {lacking}; choose with --tokens azure-conv|azure-code|fixed:IN:OUT"
    )
    return traces.with_token_source(profile, "azure-conv"), [note]


def _described(tokens: TokenSource) -> str:
    if isinstance(tokens, tuple):
        return f"{tokens[0]} input and {tokens[1]} output tokens for every request"
    return f"(input, output) pairs drawn from {_TOKEN_SOURCES[tokens]} (joint distribution, seeded)"


def _slice_window(text: str | None, duration_s: float) -> tuple[float, float | None] | None:
    if not text:
        return None
    start, _, end = text.partition(":")
    try:
        window = (float(start), float(end) if end.strip() else None)
    except ValueError:
        raise ProfileError(f"--slice {text}: allowed: START:END in seconds, e.g. 0:3600") from None
    end_s = duration_s if window[1] is None else window[1]
    if not (0 <= window[0] < end_s <= duration_s):
        raise ProfileError(
            f"--slice {text}: allowed: 0 <= START < END <= {duration_s:g} (the profile's length, s)"
        )
    return window


def _rate_scale(value: float) -> float:
    if not (math.isfinite(value) and value > 0):
        raise ProfileError(f"--rate-scale {value:g}: allowed: a number > 0 (2 = double the load)")
    return value


def _check_size(
    profile: Profile, full: Profile, window: tuple[float, float | None] | None, scale: float
) -> None:
    """The caps per run, on the profile and (after a slice) on the hour around each end,
    whose generation blocks a slice still draws."""
    too_big = oversize(profile)
    if too_big is None and window is not None:
        start, end = window[0], full.duration_s if window[1] is None else window[1]
        around = full.slice(max(0.0, start - 3600.0), min(full.duration_s, end + 3600.0))
        nearby = oversize(around)
        too_big = nearby if nearby is not None and nearby.kind != "duration" else None
    if too_big is None:
        return
    if too_big.rate_scale is None:
        fix = (
            f"simulate part of it with --slice START:END (at most {profiles.MAX_DURATION_S:.0f} s)"
        )
    else:
        fix = (
            f"lower the load with --rate-scale {_round_down(scale * too_big.rate_scale):g} or"
            " simulate part of it with --slice START:END"
        )
    raise ProfileError(too_big.message(fix))


def _round_down(factor: float) -> float:
    """To one significant digit, downwards: 0.00047 -> 0.0004."""
    unit = 10.0 ** math.floor(math.log10(factor))
    return math.floor(factor / unit) * unit
