"""Property tests over the trace readers: any text gives a profile or one line naming the file.

Hypothesis builds CSV and JSON documents from plausible headers, numbers, ISO times, junk
cells, missing and extra cells, byte-order marks, CRLF and gzip, and every reader (and the
CLI's format detection) must either return a profile or raise one `TraceError` /
`ProfileError` whose message is a single line starting with the file's path. Every bug these
found is pinned with an `@example`.
"""

from __future__ import annotations

import gzip
import json
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from simulator.profile_args import load_profile
from simulator.profiles import Profile, ProfileError
from simulator.traces import TraceError, read_prometheus, read_rate_series, read_request_log

# The suite runs these on every commit: few examples, no per-example deadline (2 shared cores).
PROPERTY = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

HEADER_NAMES = (
    "TIMESTAMP", "timestamp", "time_s", "Time", "arrival_time", "ts", "start_s",
    "ContextTokens", "input_tokens", "prompt_tokens", "GeneratedTokens", "output_tokens",
    "completion_tokens", "rate_rps", "rate", "rps", "qps", "interarrival_cv", "cv",
    "model", "note", "", "rate rps", "Time-S",
)  # fmt: skip

numbers = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["0", "1", "2.5", "1e300", "-1e300", "1e-300", "nan", "inf", "-0"]),
)
iso_times = st.datetimes().map(str) | st.sampled_from(
    ["2023-11-16 18:15:46.68", "2024-05-10T00:00:00Z", "2024-05-10T02:00:00+02:00",
     "1677-01-01 00:00:00", "2263-01-01 00:00:00", "2024-13-45 25:61:61", "2024-05-10T"]
)  # fmt: skip
junk = st.text(max_size=12) | st.sampled_from(['"', '""', '"a,b"', "\x00", "\r", ";", " "])
cells = st.one_of(numbers, iso_times, junk, st.just(""))


@st.composite
def csv_documents(draw: st.DrawFn) -> bytes:
    """A header of 1-5 plausible names, then 0-8 rows of 0-6 cells, in some encoding."""
    header = draw(st.lists(st.sampled_from(HEADER_NAMES), min_size=1, max_size=5))
    increasing = draw(st.booleans())  # rows that mostly read, to reach deeper code
    rows = []
    for i in range(draw(st.integers(0, 8))):
        if increasing:
            row = [str(i * draw(st.sampled_from([1, 60, 0.5, 1e9])))]
            row += [draw(numbers | st.just("3")) for _ in header[1:]]
        else:
            row = draw(st.lists(cells, max_size=6))
        rows.append(",".join(row))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = newline.join([",".join(header), *rows]) + draw(st.sampled_from(["", newline]))
    data = text.encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    if draw(st.integers(0, 4)) == 0:
        data = gzip.compress(data)
    return data


json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**40), 10**40),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=6),
    st.sampled_from(["1", "NaN", "-1", "+Inf", "1e400", "1700000000"]),
)  # fmt: skip
points = st.one_of(
    st.tuples(
        st.integers(0, 2 * 10**9) | st.floats() | st.sampled_from([10**400, "1700000060"]),
        json_scalars,
    ).map(list),
    json_scalars,
    st.lists(json_scalars, max_size=3),
)


@st.composite
def prometheus_documents(draw: st.DrawFn) -> bytes:
    """Range-query responses, mostly well formed, with odd values, types and truncation."""
    t0 = draw(st.sampled_from([0, 1_700_000_000]))
    step = draw(st.sampled_from([1, 15, 60]))
    series = []
    for _ in range(draw(st.integers(0, 3))):
        regular = [[t0 + k * step, str(draw(st.integers(0, 50)))] for k in range(4)]
        values = draw(st.just(regular) | st.lists(points, max_size=5))
        series.append({"metric": {}, "values": values})
    document: Any = {
        "status": draw(st.sampled_from(["success", "error", 3])),
        "data": {"resultType": draw(st.sampled_from(["matrix", "vector"])), "result": series},
    }
    if draw(st.integers(0, 5)) == 0:
        document = draw(st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)))
    text = json.dumps(document)
    if draw(st.integers(0, 5)) == 0:
        text = text[: draw(st.integers(0, len(text)))]
    data = text.encode()
    if draw(st.integers(0, 4)) == 0:
        data = gzip.compress(data)
    return data


def one_line_or_profile(path: Path, read: Callable[[Path], Profile]) -> None:
    """`read(path)` returns a usable profile or raises one line that names the file."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning is a second line on stderr
        _one_line_or_profile(path, read)


def _one_line_or_profile(path: Path, read: Callable[[Path], Profile]) -> None:
    try:
        profile = read(path)
    except (TraceError, ProfileError) as error:
        message = str(error)
        assert "\n" not in message and "\r" not in message, message
        assert message.startswith(str(path)), message
        return
    assert isinstance(profile, Profile)
    assert math.isfinite(profile.duration_s) and profile.duration_s > 0
    # A readable profile also yields arrivals (or refuses them, one line, when too large).
    try:
        expected = profile.expected_requests(0.0, min(profile.duration_s, 60.0))
        if expected < 1e5:
            profile.slice(0.0, min(profile.duration_s, 60.0)).arrivals(np.random.default_rng(1))
    except ProfileError as error:
        assert "\n" not in str(error)


# Bugs these tests found in the readers, each kept as an example:
LONE_CR = b"time_s,rate_rps\n0,1\r,2\n60,3\n"  # csv.Error: new-line character in field
HUGE_RATE_NEXT_BLOCK = b"time_s,rate_rps\n0,3\n60,1e300\n120,3\n"  # poisson: lam too large
DENSE_RATE_NEXT_BLOCK = b"time_s,rate_rps\n0,3\n60,1e12\n120,3\n"  # a 1.5 TiB allocation
HUGE_INT_TIME = json.dumps(
    {"data": {"resultType": "matrix", "result": [{"values": [[10**400, "1"], [1, "1"]]}]}}
).encode()  # OverflowError: int too large to convert to float
OVERFLOWING_TIME = b"time_s,rate_rps\n0,1\n1e300,2\n"  # a RuntimeWarning: a second line


def saved(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@PROPERTY
@given(data=csv_documents())
@example(data=LONE_CR)
@example(data=OVERFLOWING_TIME)
def test_any_csv_reads_as_a_request_log_or_one_line(tmp_path: Path, data: bytes) -> None:
    one_line_or_profile(saved(tmp_path, "log.csv", data), read_request_log)


@PROPERTY
@given(data=csv_documents())
@example(data=LONE_CR)
@example(data=HUGE_RATE_NEXT_BLOCK)
@example(data=DENSE_RATE_NEXT_BLOCK)
@example(data=OVERFLOWING_TIME)
def test_any_csv_reads_as_a_rate_series_or_one_line(tmp_path: Path, data: bytes) -> None:
    path = saved(tmp_path, "rates.csv", data)
    one_line_or_profile(path, read_rate_series)
    one_line_or_profile(path, lambda p: read_rate_series(p, within="renewal"))
    one_line_or_profile(path, lambda p: read_rate_series(p, on_bad_row="skip", marks="end"))


@PROPERTY
@given(data=csv_documents() | prometheus_documents())
@example(data=DENSE_RATE_NEXT_BLOCK)
@example(data=HUGE_INT_TIME)
def test_any_file_is_detected_and_read_or_one_line(tmp_path: Path, data: bytes) -> None:
    one_line_or_profile(saved(tmp_path, "trace.csv", data), lambda p: load_profile(str(p)))


@PROPERTY
@given(data=prometheus_documents())
@example(data=HUGE_INT_TIME)
def test_any_json_reads_as_a_prometheus_export_or_one_line(tmp_path: Path, data: bytes) -> None:
    path = saved(tmp_path, "prom.json", data)
    one_line_or_profile(path, read_prometheus)
    one_line_or_profile(path, lambda p: read_prometheus(p, on_bad_row="skip"))
