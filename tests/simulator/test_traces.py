"""Replayed traces: the shipped real data, readers that generalize, and errors a person can act on.

Statistical checks use fixed seeds with tolerances of about four standard errors (given inline).
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from simulator.profiles import RateProfile
from simulator.traces import (
    TraceError,
    azure_code,
    azure_conv,
    read_prometheus,
    read_rate_series,
    read_request_log,
    servegen_language_14d,
)


def rng(seed: int = 11) -> np.random.Generator:
    return np.random.default_rng(seed)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def gaps_cv(times_s: np.ndarray) -> float:
    gaps = np.diff(times_s)
    return float(gaps.std() / gaps.mean())


# ---- the shipped real data


def test_azure_conv_has_19366_requests_over_about_an_hour() -> None:
    log = azure_conv()
    assert len(log) == 19_366
    assert log.time_s[0] == 0
    assert log.time_s[-1] == pytest.approx(3501.72, abs=0.01)
    # Duration is the last request plus one mean gap, so the log's rate survives loop().
    assert log.duration_s == pytest.approx(3501.72 * 19_366 / 19_365, abs=0.01)
    first = datetime(2023, 11, 16, 18, 15, 46, 680590, tzinfo=UTC).timestamp()
    assert log.start_unix_s == pytest.approx(first, abs=1e-6)
    assert log.input_tokens[:3].tolist() == [374, 396, 879]
    assert log.output_tokens[:3].tolist() == [44, 109, 55]
    assert gaps_cv(log.time_s) == pytest.approx(1.094, abs=0.001)  # close to Poisson


def test_azure_code_is_very_bursty() -> None:
    log = azure_code()
    assert len(log) == 8_819
    assert gaps_cv(log.time_s) == pytest.approx(13.15, abs=0.01)
    assert log.input_tokens.min() >= 0 and log.output_tokens.min() >= 0


def test_a_replayed_log_chunks_and_loops_like_any_profile() -> None:
    log = azure_conv()
    chunks = list(log.loop(2).iter_chunks(rng(), chunk_s=600))
    assert sum(len(c) for c in chunks) == 2 * 19_366
    assert chunks[0].input_tokens is not None


def test_servegen_series_is_14_days_of_10_minute_windows_with_mean_196() -> None:
    series = servegen_language_14d()
    assert series.duration_s == 14 * 86_400
    assert series.rate_rps.size == 2016
    assert np.all(np.diff(series.edges_s) == 600)
    assert series.mean_rps == pytest.approx(195.84, abs=0.01)
    assert series.rate_rps.min() == pytest.approx(48.35, abs=0.01)
    assert series.rate_rps.max() == pytest.approx(582.99, abs=0.01)
    assert series.cv is None  # Poisson unless asked


def test_rate_series_expands_to_poisson_arrivals_with_the_right_mean() -> None:
    series = servegen_language_14d()
    day_two = series.slice(86_400, 86_400 + 2 * 3600)  # two hours, not 240 million arrivals
    arrivals = day_two.arrivals(rng())
    expected = float(np.sum(series.rate_rps[144:156]) * 600)
    # Poisson count: sd = sqrt(expected) ~ 1,200 for ~1.4 million arrivals; 4 sd is 0.35%.
    assert len(arrivals) == pytest.approx(expected, abs=4 * np.sqrt(expected))
    # Inside one window the gaps are exponential (CV 1; sd of the estimate ~0.3%).
    window = arrivals.window(0, 600).time_s
    assert gaps_cv(window) == pytest.approx(1.0, abs=0.012)


def test_rate_series_renewal_uses_each_windows_cv() -> None:
    series = servegen_language_14d(within="renewal")
    assert isinstance(series, RateProfile) and series.cv is not None
    for target in (1.2, 2.0):
        index = int(np.argmin(np.abs(series.cv - target)))
        window = series.slice(index * 600.0, (index + 1) * 600.0).arrivals(rng())
        # ~100,000 gamma gaps: the sample CV's sd is ~0.3% (cv 1.2) to ~0.8% (cv 2).
        assert gaps_cv(window.time_s) == pytest.approx(series.cv[index], rel=0.04)


def test_servegen_with_one_cv_for_every_window() -> None:
    series = servegen_language_14d(within="renewal", cv=3.0)
    assert series.cv is not None and np.all(series.cv == 3.0)


def test_generating_one_hour_of_the_14_day_series_is_fast_and_in_order() -> None:
    series = servegen_language_14d()
    first = next(iter(series.iter_chunks(rng(), chunk_s=3600)))
    assert first.start_s == 0 and first.end_s == 3600
    assert len(first) == pytest.approx(float(np.sum(series.rate_rps[:6]) * 600), rel=0.005)
    assert np.all(np.diff(first.time_s) >= 0)


# ---- readers generalize


def test_reader_tolerates_column_order_extra_columns_and_header_case(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "mixed.csv",
        "generated_tokens,Model,TimeStamp,CONTEXT_TOKENS\n"
        "5,a,2023-11-16 18:00:00,100\n"
        "6,b,2023-11-16 18:00:01.5,200\n"
        "7,c,2023-11-16 18:00:04,300\n",
    )
    log = read_request_log(path)
    np.testing.assert_array_equal(log.time_s, [0.0, 1.5, 4.0])
    assert log.input_tokens.tolist() == [100, 200, 300]
    assert log.output_tokens.tolist() == [5, 6, 7]


@pytest.mark.parametrize(
    ("first", "later"),
    [
        ("2024-05-10 00:00:00.000000+00:00", "2024-05-10 00:00:02.000000+00:00"),  # Azure 2024
        ("2024-05-10T00:00:00Z", "2024-05-10T00:00:02Z"),
        ("2024-05-10T02:00:00+02:00", "2024-05-10T01:00:02+01:00"),  # offsets may change (DST)
        ("2024-05-09T19:30:00-0430", "2024-05-09T19:30:02-0430"),
        ("2024-05-10 00:00:00", "2024-05-10 00:00:02"),
        ("2024-05-10 00:00:00.0000000", "2024-05-10 00:00:02.0000000"),
    ],
)
def test_reader_reads_iso_times_with_or_without_fraction_and_timezone(
    tmp_path: Path, first: str, later: str
) -> None:
    path = write(tmp_path, "iso.csv", f"TIMESTAMP,ContextTokens\n{first},1\n{later},2\n")
    log = read_request_log(path)
    np.testing.assert_allclose(log.time_s, [0.0, 2.0])
    assert log.start_unix_s == datetime(2024, 5, 10, tzinfo=UTC).timestamp()
    assert log.output_tokens is None  # token columns are optional


def test_reader_reads_numeric_times_in_the_given_unit(tmp_path: Path) -> None:
    path = write(
        tmp_path, "ms.csv", "arrival_time,input_tokens,output_tokens\n1000,1,1\n2500,2,2\n"
    )
    log = read_request_log(path, time_unit="ms")
    np.testing.assert_array_equal(log.time_s, [0.0, 1.5])
    assert log.start_unix_s is None  # a number alone does not say which clock it is


def test_reader_takes_explicit_column_names(tmp_path: Path) -> None:
    path = write(tmp_path, "named.csv", "when,prompt,answer\n0,10,1\n1,20,2\n")
    log = read_request_log(path, time_column="WHEN", input_column="prompt", output_column="answer")
    assert log.input_tokens.tolist() == [10, 20]


def test_gzip_is_read_transparently_whatever_the_name(tmp_path: Path) -> None:
    path = tmp_path / "trace.csv"  # gzip content, plain name
    path.write_bytes(gzip.compress(b"TIMESTAMP,ContextTokens,GeneratedTokens\n0,1,2\n3,4,5\n"))
    assert read_request_log(path).input_tokens.tolist() == [1, 4]


def test_quotes_blank_lines_and_crlf_read_like_a_plain_file(tmp_path: Path) -> None:
    plain = write(tmp_path, "plain.csv", "TIMESTAMP,ContextTokens\n0,1\n1,2\n2.5,3\n")
    odd = tmp_path / "odd.csv"
    odd.write_bytes(b'\xef\xbb\xbf"TIMESTAMP","ContextTokens"\r\n"0",1\r\n\r\n1, 2\r\n"2.5",3')
    a, b = read_request_log(plain), read_request_log(odd)
    np.testing.assert_array_equal(a.time_s, b.time_s)
    np.testing.assert_array_equal(a.input_tokens, b.input_tokens)


def test_rate_series_at_an_irregular_step(tmp_path: Path) -> None:
    path = write(tmp_path, "rates.csv", "Rate_RPS,Time_S\n10,0\n20,60\n30,120\n5,300\n")
    series = read_rate_series(path)
    # Each rate holds until the next row; the last for the median step (60 s).
    np.testing.assert_array_equal(series.edges_s, [0, 60, 120, 300, 360])
    np.testing.assert_array_equal(series.rate_rps, [10, 20, 30, 5])


def test_rate_series_marks_at_the_end_of_each_step(tmp_path: Path) -> None:
    path = write(tmp_path, "rates.csv", "time_s,rate_rps\n600,10\n1200,20\n")
    series = read_rate_series(path, marks="end")
    np.testing.assert_array_equal(series.edges_s, [0, 600, 1200])
    np.testing.assert_array_equal(series.rate_rps, [10, 20])


def prometheus(*series: list[list[object]]) -> str:
    result = [{"metric": {"pod": f"p{i}"}, "values": values} for i, values in enumerate(series)]
    return json.dumps({"status": "success", "data": {"resultType": "matrix", "result": result}})


def test_prometheus_export_sums_its_series_into_one_rate(tmp_path: Path) -> None:
    t0 = 1_700_000_000
    path = write(
        tmp_path,
        "prom.json",
        prometheus(
            [[t0, "1.5"], [t0 + 60, "2"], [t0 + 120, "2.5"]],
            [[t0 + 60, "10"], [t0 + 120, "20"]],  # a pod that appeared later
        ),
    )
    series = read_prometheus(path)
    np.testing.assert_array_equal(series.rate_rps, [1.5, 12.0, 22.5])
    # A rate() sample looks back: each value covers the minute that ends at its timestamp.
    np.testing.assert_array_equal(series.edges_s, [0, 60, 120, 180])
    assert series.start_unix_s == t0 - 60


def test_prometheus_gap_is_an_error_unless_skipped(tmp_path: Path) -> None:
    t0 = 1_700_000_000
    path = write(tmp_path, "gap.json", prometheus([[t0, "1"], [t0 + 60, "2"], [t0 + 240, "3"]]))
    with pytest.raises(TraceError, match=r"no sample for 2 step\(s\) of 60 s"):
        read_prometheus(path)
    bridged = read_prometheus(path, on_bad_row="skip")
    assert bridged.skipped_rows == 2
    np.testing.assert_array_equal(bridged.edges_s, [0, 60, 120, 300])


# ---- bad traces: one error, one line, naming file, line, column and what is allowed


GOOD_HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"


@pytest.mark.parametrize(
    ("text", "line", "column", "allowed"),
    [
        ("when,tokens\n0,1\n", 1, "header", "no timestamp column"),
        (GOOD_HEADER + "2023-11-16 18:00:00,1,1\nyesterday,1,1\n", 3, "TIMESTAMP", "ISO 8601"),
        (GOOD_HEADER + "2023-11-16 18:00:00,1,1\n1700000000,1,1\n", 3, "TIMESTAMP", "ISO 8601"),
        (GOOD_HEADER + "0,1,1\n1,5,-3\n", 3, "GeneratedTokens", "whole number >= 0"),
        (GOOD_HEADER + "0,1,1\n1,2.5,3\n", 3, "ContextTokens", "whole number >= 0"),
        (GOOD_HEADER + "0,1,1\n5,1,1\n4,1,1\n", 4, "TIMESTAMP", "rows in time order"),
        (GOOD_HEADER + "0,1,1\n1,1\n", 3, "GeneratedTokens", "a value on every row"),
        (GOOD_HEADER + "0,1,1\n1,,1\n", 3, "ContextTokens", "whole number >= 0"),
        (GOOD_HEADER, 2, "rows", "one row per request"),
        ("", 1, "header", "a header row"),
    ],
    ids=[
        "missing column",
        "unparsable timestamp",
        "number among ISO times",
        "negative tokens",
        "fractional tokens",
        "unsorted rows",
        "short row",
        "empty value",
        "no rows",
        "empty file",
    ],
)
def test_bad_request_logs_raise_one_line_naming_file_line_and_column(
    tmp_path: Path, text: str, line: int, column: str, allowed: str
) -> None:
    path = write(tmp_path, "bad.csv", text)
    with pytest.raises(TraceError) as caught:
        read_request_log(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: ")
    assert column in message and allowed in message
    assert "\n" not in message
    assert caught.value.line == line


@pytest.mark.parametrize(
    ("row", "column", "allowed"),
    [
        ("600,-5,1", "rate_rps", "requests per second >= 0"),
        ("600,nan,1", "rate_rps", "requests per second >= 0"),
        ("0,5,1", "time_s", "strictly increasing times"),
        ("1200,5,-1", "interarrival_cv", "a number >= 0"),
    ],
    ids=["negative rate", "NaN rate", "time going back", "negative CV"],
)
def test_bad_rate_series_raise_one_line_naming_file_line_and_column(
    tmp_path: Path, row: str, column: str, allowed: str
) -> None:
    path = write(tmp_path, "rates.csv", f"time_s,rate_rps,interarrival_cv\n0,1,1\n{row}\n")
    with pytest.raises(TraceError) as caught:
        read_rate_series(path, within="renewal")
    message = str(caught.value)
    assert message.startswith(f"{path}:3: column {column}: ")
    assert allowed in message and "\n" not in message


def test_the_cv_column_is_only_read_when_asked(tmp_path: Path) -> None:
    path = write(tmp_path, "rates.csv", "time_s,rate_rps,interarrival_cv\n0,1,oops\n600,2,1\n")
    assert read_rate_series(path).rate_rps.tolist() == [1, 2]
    with pytest.raises(TraceError, match="column interarrival_cv"):
        read_rate_series(path, within="renewal")


def test_renewal_without_a_cv_column_says_which_column_is_missing(tmp_path: Path) -> None:
    path = write(tmp_path, "rates.csv", "time_s,rate_rps\n0,1\n600,2\n")
    with pytest.raises(TraceError, match=r"rates.csv:1: header: no CV column"):
        read_rate_series(path, within="renewal")
    assert read_rate_series(path, within="renewal", cv=2.0).cv.tolist() == [2.0, 2.0]


@pytest.mark.parametrize(
    ("document", "where", "allowed"),
    [
        (
            '{"status": "success", "data": {"resultType": "vector", "result": []}}',
            "resultType",
            "'matrix'",
        ),
        (prometheus([[1, "1"], [2, "NaN"]]), "data.result[0].values[1]", "requests per second"),
        (prometheus([[1, "1"], [2, "-1"]]), "data.result[0].values[1]", "requests per second"),
        (prometheus([[1, "1"], ["soon", "1"]]), "data.result[0].values[1]", "Unix time"),
        ('{"status": "success",\n "data": {', "column", "not valid JSON"),
    ],
    ids=["instant query", "NaN value", "negative value", "bad time", "broken JSON"],
)
def test_bad_prometheus_exports_raise_one_line_naming_file_and_place(
    tmp_path: Path, document: str, where: str, allowed: str
) -> None:
    path = write(tmp_path, "prom.json", document)
    with pytest.raises(TraceError) as caught:
        read_prometheus(path)
    message = str(caught.value)
    assert message.startswith(str(path)) and where in message and allowed in message
    assert "\n" not in message


def test_skip_drops_bad_rows_and_counts_them(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "dirty.csv",
        GOOD_HEADER + "0,1,1\nnever,1,1\n2,-1,1\n3,1,1\n1,1,1\n4,1\n5,1,1\n",
    )
    log = read_request_log(path, on_bad_row="skip")
    np.testing.assert_array_equal(log.time_s, [0, 3, 5])
    assert log.skipped_rows == 4
    assert len(log.skipped_examples) == 3
    assert log.skipped_examples[0].startswith(f"{path}:3: column TIMESTAMP:")
    assert "on_bad_row" not in log.skipped_examples[0]  # no hint to do what was done


def test_skip_judges_the_time_format_from_a_readable_row(tmp_path: Path) -> None:
    path = write(
        tmp_path, "late.csv", "TIMESTAMP\nnot yet\n2024-05-10T00:00:01Z\n2024-05-10T00:00:03Z\n"
    )
    log = read_request_log(path, on_bad_row="skip")
    np.testing.assert_array_equal(log.time_s, [0, 2])
    assert log.skipped_rows == 1


def test_a_failed_prometheus_query_says_why(tmp_path: Path) -> None:
    failed = '{"status": "error", "errorType": "bad_data", "error": "parse error at char 5"}'
    with pytest.raises(TraceError, match="parse error at char 5"):
        read_prometheus(write(tmp_path, "failed.json", failed))


def test_a_missing_file_is_a_trace_error(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match=r"nothing\.csv: file: cannot read"):
        read_request_log(tmp_path / "nothing.csv")


def test_usage_mistakes_are_plain_value_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "rates.csv", "time_s,rate_rps\n0,1\n600,2\n")
    with pytest.raises(ValueError, match='on_bad_row must be "error" or "skip"'):
        read_rate_series(path, on_bad_row="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match='needs within="renewal"'):
        read_rate_series(path, cv=2.0)


def test_reading_in_small_blocks_changes_nothing_and_keeps_line_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Rows cross block edges; a quoted row and a very long row force the slow path in places.
    rows = [f"{i * 0.25},{i},{2 * i},note" for i in range(400)]
    rows[123] = f'"{123 * 0.25}",123,246,"a, quoted note"'
    rows[321] = f"{321 * 0.25},321,642,{'x' * 300}"
    path = write(tmp_path, "long.csv", "TIMESTAMP,ContextTokens,GeneratedTokens,Note\n")
    path.write_text(path.read_text() + "\n".join(rows) + "\n")
    whole = read_request_log(path)
    monkeypatch.setattr("simulator.traces.csvrows._BLOCK_BYTES", 64)
    pieces = read_request_log(path)
    np.testing.assert_array_equal(whole.time_s, pieces.time_s)
    np.testing.assert_array_equal(whole.output_tokens, pieces.output_tokens)
    assert len(pieces) == 400
    # A row going back in time far from the first block is reported at its own line.
    rows[350] = "1.0,1,1,late"
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens,Note\n" + "\n".join(rows) + "\n")
    with pytest.raises(TraceError, match=r"long\.csv:352: column TIMESTAMP: '1\.0' is earlier"):
        read_request_log(path)
