"""Hostile inputs: every one ends quickly with one line naming the file (and line), never a
traceback, a hang or a huge allocation (issue 14 item 7).

A profile's size is judged from expected counts before anything is drawn: at most
`MAX_REQUESTS` per run, `MAX_REQUESTS_PER_HOUR` in any hour, over `MAX_DURATION_S`.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from simulator.profiles import (
    MAX_DURATION_S,
    MAX_REQUESTS,
    ProfileError,
    constant,
    oversize,
    request_log,
)
from simulator.traces import TraceError, read_prometheus, read_rate_series, read_request_log


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def one_line(error: pytest.ExceptionInfo[BaseException], path: Path, line: int | None) -> str:
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:{line}: " if line else f"{path}: "), message
    return message


def replicast(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "controller.dispatch", *argv],
        capture_output=True,
        text=True,
        check=False,
    )


def assert_one_line_exit_2(result: subprocess.CompletedProcess[str], *parts: str) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    for part in parts:
        assert part in result.stderr, result.stderr
    return result.stderr


# ---- too many requests, found from the expected count before drawing


def test_a_rate_implying_10_to_the_15_requests_is_refused_naming_its_line(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "rates.csv", "time_s,rate_rps\n0,5\n600,1e12\n1200,5\n")
    series = read_rate_series(path)  # reading is cheap: three rows
    too_big = oversize(series)
    assert too_big is not None and too_big.kind == "requests" and too_big.line == 3
    with pytest.raises(ProfileError) as caught:
        series.arrivals(np.random.default_rng(1))  # not a 4 PiB allocation
    message = one_line(caught, path, 3)
    assert "about 6e+14 requests expected (the cap is 2e+09 per run)" in message
    assert "largest rate 1e+12 req/s at line 3" in message


def test_the_cli_names_the_file_the_line_and_the_flags_that_fix_it(tmp_path: Path) -> None:
    path = write(tmp_path, "rates.csv", "time_s,rate_rps\n0,5\n600,1e12\n1200,5\n")
    result = replicast("simulate", "--profile", str(path), "--policy", "hpa")
    assert_one_line_exit_2(
        result, f"{path}:3: about 6e+14 requests", "--rate-scale 3e-06", "--slice START:END"
    )


def test_the_count_is_checked_after_scaling_and_looping_too() -> None:
    day = constant(1000.0, 86_400.0)  # 8.6e7 requests: fine
    assert oversize(day) is None
    month = day.loop(30)  # 2.6e9
    too_big = oversize(month)
    assert too_big is not None and too_big.kind == "requests"
    assert month.expected_requests() == pytest.approx(30 * 8.64e7)
    assert oversize(day.rate_scale(30.0)) is not None  # 2.6e9 in a day
    with pytest.raises(ProfileError, match="requests expected"):
        next(iter(month.iter_chunks(np.random.default_rng(1))))
    # Compressing time keeps the count but packs it: 8.6e7 in 8.6 s breaks the hourly cap.
    packed = oversize(day.time_scale(1e-4))
    assert packed is not None and packed.kind == "per hour"


def test_a_replayed_log_scaled_beyond_the_cap_is_refused_before_resampling() -> None:
    log = request_log(np.arange(1000) * 3.6, duration_s=3600.0)  # 1000 requests in an hour
    assert log.expected_requests() == 1000
    scaled = log.rate_scale(1e6)
    assert scaled.expected_requests() == pytest.approx(1e9)
    too_big = oversize(scaled)
    assert too_big is not None and too_big.kind == "per hour"
    with pytest.raises(ProfileError, match="1e\\+09 requests expected in the hour from t=0 s"):
        scaled.arrivals(np.random.default_rng(1))
    # Ten seconds pass the check, but resampling draws whole 60 s blocks: 1.7e8 copies.
    head = log.rate_scale(1e7).slice(0.0, 10.0)
    assert oversize(head) is None
    with pytest.raises(ProfileError, match=r"rate_scale 1e\+07 asks for 1.7e\+08 requests"):
        head.arrivals(np.random.default_rng(1))


def test_a_slice_next_to_a_dense_block_does_not_draw_it(tmp_path: Path) -> None:
    # The slice keeps 0-300 s; generation draws whole 600 s blocks, and the next block holds
    # 6e14 requests. The guard in the block refuses it (the CLI checks the hour around).
    path = write(tmp_path, "rates.csv", "time_s,rate_rps\n0,5\n300,1e12\n900,5\n")
    head = read_rate_series(path).slice(0.0, 300.0)
    assert oversize(head) is None
    with pytest.raises(ProfileError) as caught:
        head.arrivals(np.random.default_rng(1))
    assert "rate 1e+12 req/s" in one_line(caught, path, 3)
    result = replicast("simulate", "--profile", str(path), "--slice", "0:300", "--policy", "hpa")
    assert_one_line_exit_2(result, f"{path}:3: about", "--rate-scale")


# ---- times: huge, unsorted, negative, NaN


def test_times_a_billion_seconds_apart_exceed_the_duration_cap(tmp_path: Path) -> None:
    path = write(tmp_path, "rates.csv", "time_s,rate_rps\n0,1\n1e9,2\n")
    too_big = oversize(read_rate_series(path))
    assert too_big is not None and too_big.kind == "duration" and too_big.line == 2
    assert MAX_DURATION_S == 366 * 86_400
    result = replicast("simulate", "--profile", str(path), "--policy", "hpa")
    assert_one_line_exit_2(result, f"{path}:2: the profile lasts 23,148 days", "--slice")
    # A day of it is fine.
    ok = replicast("simulate", "--profile", str(path), "--slice", "0:3600", "--policy", "hpa")
    assert ok.returncode == 0, ok.stderr


@pytest.mark.parametrize(
    ("rows", "line", "allowed"),
    [
        ("0,1\n1e300,2\n", 3, "between -9e+09 and 9e+09"),
        ("0,1\nnan,2\n", 3, "between -9e+09 and 9e+09"),
        ("0,1\n-inf,2\n", 3, "between -9e+09 and 9e+09"),
        ("5,1\n1,2\n", 3, "strictly increasing times"),
    ],
    ids=["1e300", "NaN", "-inf", "unsorted"],
)
def test_unreadable_times_are_one_line_without_warnings(
    tmp_path: Path, rows: str, line: int, allowed: str
) -> None:
    path = write(tmp_path, "rates.csv", "time_s,rate_rps\n" + rows)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning would be a second line on stderr
        with pytest.raises(TraceError) as caught:
            read_rate_series(path)
    assert allowed in one_line(caught, path, line)


def test_negative_numeric_times_are_offsets_from_the_first_row(tmp_path: Path) -> None:
    path = write(tmp_path, "log.csv", "time_s,input_tokens,output_tokens\n-5,1,1\n-4,2,2\n0,3,3\n")
    log = read_request_log(path)
    np.testing.assert_array_equal(log.time_s, [0.0, 1.0, 5.0])


def test_iso_times_centuries_apart_are_one_line_not_a_wrapped_difference(tmp_path: Path) -> None:
    path = write(tmp_path, "log.csv", "timestamp\n1678-01-01 00:00:00\n2261-12-31 00:00:00\n")
    with pytest.raises(TraceError) as caught:
        read_request_log(path)
    assert "span more than 285 years" in one_line(caught, path, None)


# ---- odd files


def test_a_million_column_header_is_summarized_in_one_short_line(tmp_path: Path) -> None:
    header = ",".join(f"c{i}" for i in range(10**6))
    path = write(tmp_path, "wide.csv", header + "\n1\n")
    with pytest.raises(TraceError) as caught:
        read_rate_series(path)
    message = one_line(caught, path, 1)
    assert "c0, c1, c2" in message and "(1,000,000 columns)" in message
    assert len(message) < 1000


def test_a_binary_file_is_named_as_such(tmp_path: Path) -> None:
    path = write(tmp_path, "model.bin", bytes(range(256)) * 64)
    with pytest.raises(TraceError) as caught:
        read_request_log(path)
    assert "binary data (a NUL byte)" in one_line(caught, path, 1)


def test_a_nul_byte_deep_in_the_rows_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "log.csv", b"timestamp,input_tokens\n0,1\n1,2\n2,\x003\n")
    with pytest.raises(TraceError) as caught:
        read_request_log(path)
    assert "binary data" in one_line(caught, path, 4)


def test_an_empty_file_through_the_cli(tmp_path: Path) -> None:
    path = write(tmp_path, "empty.csv", "")
    result = replicast("simulate", "--profile", str(path), "--policy", "hpa")
    assert_one_line_exit_2(result, f"{path}:1: header: the file is empty")


def test_a_gzip_bomb_stops_at_the_inflation_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 1 MiB floor for the test; the real one is 256 MiB (or 100x the compressed size).
    monkeypatch.setattr("simulator.traces.files._MIN_INFLATE_BYTES", 1 << 20)
    bomb = gzip.compress(b"timestamp,ContextTokens\n" + b"\n" * (20 << 20), compresslevel=9)
    assert len(bomb) < 100_000
    path = write(tmp_path, "bomb.csv.gz", bomb)
    with pytest.raises(TraceError) as caught:
        read_request_log(path)
    assert "inflates past 1 MiB (a gzip bomb?)" in one_line(caught, path, None)


def test_a_truncated_gzip_stream_is_one_line(tmp_path: Path) -> None:
    data = gzip.compress(b"timestamp,ContextTokens\n" + b"0,1\n" * 1000)
    path = write(tmp_path, "cut.csv.gz", data[: len(data) // 2])
    with pytest.raises(TraceError) as caught:
        read_request_log(path)
    assert "cannot read" in one_line(caught, path, None)


def test_a_line_without_an_end_is_refused_before_it_fills_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("simulator.traces.csvrows._MAX_HEADER_BYTES", 1000)
    path = write(tmp_path, "long.csv", "timestamp,ContextTokens\n0,1\n" + "9" * 5000)
    with pytest.raises(TraceError) as caught:
        read_request_log(path)
    assert "longer than" in one_line(caught, path, 3)
    path = write(tmp_path, "header.csv", "x" * 5000)
    with pytest.raises(TraceError) as caught:
        read_request_log(path)
    assert "no line end" in one_line(caught, path, 1)


def test_old_mac_line_ends_and_huge_quoted_fields_are_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, "cr.csv", b"time_s,rate_rps\r0,1\r60,2\r")
    with pytest.raises(TraceError) as caught:
        read_rate_series(path)
    assert "carriage return (CR) not followed by a line feed" in one_line(caught, path, 1)
    path = write(tmp_path, "quoted.csv", 'time_s,rate_rps,note\n0,1,"' + "x" * 200_000 + '"\n')
    with pytest.raises(TraceError) as caught:
        read_rate_series(path)
    assert "not CSV (field larger than field limit" in one_line(caught, path, 2)


@pytest.mark.parametrize(
    ("document", "allowed"),
    [
        ("[" * 100_000, "not a JSON document this reader takes"),
        ('{"data": ' + "9" * 5000 + "}", "not a JSON document this reader takes"),
        (
            json.dumps({"data": {"resultType": "matrix", "result": [{"values": [[1e300, "1"]]}]}}),
            "is not a Unix time",
        ),
        (
            json.dumps(
                {"data": {"resultType": "matrix", "result": [{"values": [[10**400, "1"]]}]}}
            ),
            "is not a Unix time",
        ),
        (
            json.dumps(
                {
                    "data": {
                        "resultType": "matrix",
                        "result": [{"values": [[1, "1e308"]]}, {"values": [[1, "1e308"]]}],
                    }
                }
            ),
            "the series' sum overflows",
        ),
    ],
    ids=["deeply nested", "5000-digit number", "time 1e300", "time 10^400", "sum overflows"],
)
def test_hostile_prometheus_exports_are_one_line(
    tmp_path: Path, document: str, allowed: str
) -> None:
    path = write(tmp_path, "prom.json", document)
    with pytest.raises(TraceError) as caught:
        read_prometheus(path, step_s=60.0)
    assert allowed in one_line(caught, path, None)


def test_the_caps_are_what_the_readme_says() -> None:
    readme = " ".join((Path(__file__).resolve().parents[2] / "README.md").read_text().split())
    assert f"{MAX_REQUESTS:.0e}" == "2e+09"
    assert "2e9 requests" in readme and "5e7 in any hour" in readme and "366 days" in readme
