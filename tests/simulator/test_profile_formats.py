"""`--profile` files: formats told apart by their columns, flags that name columns, token
counts for models that need them (issue 15 "Inputs")."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from simulator.cli import load_profile as cli_load_profile
from simulator.live.loadgen import _parser as loadgen_parser
from simulator.live.loadgen import _profile as loadgen_profile
from simulator.model import ReplicaModel
from simulator.profile_args import (
    Columns,
    add_profile_arguments,
    detect_format,
    load_profile,
    profile_from_args,
)
from simulator.profiles import ProfileError, RateProfile, RequestLog, constant
from simulator.traces import TraceError, azure_code, azure_conv, with_token_source

README = Path(__file__).resolve().parents[2] / "README.md"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def replicast(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "controller.dispatch", *argv],
        capture_output=True,
        text=True,
        check=False,
    )


def args_for(profile: str, *flags: str) -> argparse.Namespace:
    """What `simulate` would parse: --profile, the profile flags, --slice and --rate-scale."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile")
    parser.add_argument("--model", default="gpu-llm")
    parser.add_argument("--slice", default=None)
    parser.add_argument("--rate-scale", type=float, default=1.0)
    add_profile_arguments(parser)
    return parser.parse_args(["--profile", profile, *flags])


# ---- the README's examples are the formats, and each one loads


def readme_examples() -> list[tuple[str, str]]:
    section = README.read_text().split("## Profile formats", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(csv|json)\n(.*?)```", section, re.S)


def test_the_readme_shows_every_format_and_each_example_loads_as_it(tmp_path: Path) -> None:
    examples = readme_examples()
    formats = [
        detect_format(str(write(tmp_path, f"example-{i}.dat", text))).format
        for i, (_, text) in enumerate(examples)
    ]
    # ISO and numeric times for both CSV kinds, then the Prometheus export.
    assert formats == ["request-log", "request-log", "rate-series", "rate-series", "prometheus"]
    profiles = [load_profile(str(tmp_path / f"example-{i}.dat")) for i in range(len(examples))]
    iso_log, numeric_log, numeric_series, iso_series, prometheus = profiles
    assert isinstance(iso_log, RequestLog) and iso_log.input_tokens.tolist() == [374, 396]
    assert numeric_log.output_tokens.tolist() == [97, 18]  # type: ignore[attr-defined]
    for series in (numeric_series, iso_series):
        assert isinstance(series, RateProfile)
        np.testing.assert_array_equal(series.rate_rps, [12.5, 20.0])
        np.testing.assert_array_equal(series.edges_s, [0.0, 600.0, 1200.0])
    assert isinstance(prometheus, RateProfile) and prometheus.rate_rps.tolist() == [12.5, 20, 16]


def test_help_documents_every_format_with_an_example(tmp_path: Path) -> None:
    result = replicast("simulate", "--help")
    assert result.returncode == 0
    for line in (
        "    TIMESTAMP,ContextTokens,GeneratedTokens",  # examples keep their own lines
        "    time_s,rate_rps",
        '    {"status": "success", "data": {"resultType": "matrix", "result": [',
        "--rate-column NAME",
        "--format {request-log,rate-series,prometheus}",
        "--tokens SOURCE",
    ):
        assert line in result.stdout, line


# ---- detection by columns


def test_a_numeric_request_log_is_a_request_log_not_a_rate_series(tmp_path: Path) -> None:
    # The file: before, "timestamp" was looked for as a substring, so this was read
    # as a rate series and failed pointing at rate_column=.
    path = write(tmp_path, "log.csv", "time_s,input_tokens,output_tokens\n0,100,20\n1.5,200,30\n")
    log = cli_load_profile(str(path))
    assert isinstance(log, RequestLog) and log.input_tokens.tolist() == [100, 200]


def test_a_rate_series_mentioning_timestamp_is_still_a_rate_series(tmp_path: Path) -> None:
    path = write(tmp_path, "rates.csv", "timestamp,rate_rps\n0,5\n600,7\n")
    assert isinstance(load_profile(str(path)), RateProfile)


def test_a_gzipped_rate_series_is_a_rate_series(tmp_path: Path) -> None:
    import gzip  # noqa: PLC0415

    path = tmp_path / "rates.csv.gz"
    path.write_bytes(gzip.compress(b"time_s,rate_rps\n0,5\n600,7\n"))
    assert isinstance(load_profile(str(path)), RateProfile)


def test_a_header_with_only_a_time_is_a_log_of_arrival_times(tmp_path: Path) -> None:
    path = write(
        tmp_path, "arrivals.csv", "timestamp\n2024-05-10T00:00:00Z\n2024-05-10T00:00:02Z\n"
    )
    log = load_profile(str(path))
    assert isinstance(log, RequestLog) and not log.has_tokens


@pytest.mark.parametrize(
    ("header", "says"),
    [
        (
            "time_s,rate_rps,input_tokens",
            "both token columns (input_tokens) and a rate column (rate_rps); say which it is"
            " with --format request-log or --format rate-series",
        ),
        ("time,value", "cannot tell the format from the columns (found time, value); accepted:"),
        ("a,b,c", "--time-column, --rate-column, --input-tokens-column or --output-tokens-column"),
        ("rate_rps,x", "no time column for a rate series"),
    ],
    ids=["ambiguous", "unknown", "names-the-flags", "no-time"],
)
def test_an_ambiguous_or_unknown_header_is_one_line_naming_columns_and_flags(
    tmp_path: Path, header: str, says: str
) -> None:
    path = write(tmp_path, "trace.csv", f"{header}\n0,1,2\n")
    with pytest.raises(TraceError) as caught:
        load_profile(str(path))
    message = str(caught.value)
    assert message.startswith(f"{path}:1: header: ") and "\n" not in message
    assert says in message


def test_flags_name_columns_and_override_detection(tmp_path: Path) -> None:
    path = write(tmp_path, "odd.csv", "when,load,prompt\n0,5,100\n600,7,200\n")
    series = load_profile(str(path), columns=Columns(time="when", rate="load"))
    assert isinstance(series, RateProfile) and series.rate_rps.tolist() == [5, 7]
    log = load_profile(str(path), columns=Columns(time="when", input_tokens="prompt"))
    assert isinstance(log, RequestLog) and log.input_tokens.tolist() == [100, 200]
    both = write(tmp_path, "both.csv", "time_s,rate_rps,input_tokens\n0,5,1\n600,7,2\n")
    assert isinstance(load_profile(str(both), fmt="rate-series"), RateProfile)
    assert isinstance(load_profile(str(both), fmt="request-log"), RequestLog)


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--rate-column", "load"], "no column 'load' (--rate-column); found time_s, rate_rps"),
        (["--format", "prometheus"], "a CSV, not JSON; --format prometheus needs JSON"),
    ],
    ids=["missing-named-column", "wrong-format"],
)
def test_column_and_format_mistakes_speak_in_flags(
    tmp_path: Path, flags: list[str], says: str
) -> None:
    path = write(tmp_path, "rates.csv", "time_s,rate_rps\n0,5\n600,7\n")
    result = replicast("simulate", "--profile", str(path), "--policy", "hpa", *flags)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert says in result.stderr


def test_a_bad_row_error_offers_the_flag_not_the_keyword(tmp_path: Path) -> None:
    path = write(tmp_path, "rates.csv", "time_s,rate_rps\n0,5\n600,-7\n1200,3\n")
    result = replicast("simulate", "--profile", str(path), "--policy", "hpa")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert f"{path}:3: column rate_rps: '-7' is not a rate" in result.stderr
    assert "pass --skip-bad-rows to drop such rows" in result.stderr
    assert "on_bad_row" not in result.stderr and "_column=" not in result.stderr
    skipped = replicast("simulate", "--profile", str(path), "--policy", "hpa", "--skip-bad-rows")
    assert skipped.returncode == 0, skipped.stderr
    assert "profile: skipped 1 bad row(s) (--skip-bad-rows); first: " in skipped.stdout


def test_column_flags_on_a_synthetic_profile_are_refused() -> None:
    with pytest.raises(ProfileError, match="--rate-column reads a trace file"):
        profile_from_args(args_for("constant:5:60", "--rate-column", "x"))


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--slice", "a:b"], "--slice a:b: allowed: START:END in seconds"),
        (["--slice", "0:120"], "--slice 0:120: allowed: 0 <= START < END <= 60"),
        (["--rate-scale", "-1"], "--rate-scale -1: allowed: a number > 0"),
        (["--tokens", "fixed:1"], "--tokens fixed:1: allowed: azure-conv, azure-code or fixed"),
    ],
    ids=["slice-not-numbers", "slice-too-long", "negative-scale", "bad-tokens"],
)
def test_slice_scale_and_token_mistakes_name_their_flag(flags: list[str], says: str) -> None:
    with pytest.raises(ProfileError, match=re.escape(says)):
        profile_from_args(args_for("constant:5:60", *flags))


# ---- token counts where the profile has none


def test_the_demo_model_on_a_synthetic_profile_runs_and_says_where_tokens_came_from() -> None:
    # Before: a traceback ("llm_tokens: the arrivals have no input or output token counts").
    # simulate requires --policy; compare runs its default set.
    for argv in (
        ["simulate", "--profile", "step:2:20:300:900", "--model", "llama2-70b-a100",
         "--policy", "slo"],
        ["compare", "--profile", "step:2:20:300:900", "--model", "llama2-70b-a100"],
    ):  # fmt: skip
        result = replicast(*argv)
        assert result.returncode == 0, result.stderr[-2000:]
        assert (
            "profile: token counts: (input, output) pairs drawn from the embedded Azure"
            " conversation trace (joint distribution, seeded), since --model llama2-70b-a100"
            " times requests by their tokens and the profile has none" in result.stdout
        )


def test_tokens_are_added_only_when_the_model_needs_them_and_the_profile_has_none() -> None:
    llm, plain = ReplicaModel.preset("llama2-70b-a100"), ReplicaModel.preset("gpu-llm")
    assert llm.needs_tokens and not plain.needs_tokens
    profile, notes = profile_from_args(args_for("constant:5:60"), plain)
    assert not profile.has_tokens and notes == []
    profile, notes = profile_from_args(args_for("constant:5:60"), llm)
    assert profile.has_token_pairs and "Azure conversation trace" in notes[0]
    profile, notes = profile_from_args(args_for("azure-code"), llm)  # has its own
    assert notes == [] and isinstance(profile, RequestLog)


def test_tokens_flag_chooses_the_source_and_replaces_a_traces_own() -> None:
    profile, notes = profile_from_args(args_for("azure-conv", "--tokens", "fixed:512:128"))
    assert notes == [
        "token counts: 512 input and 128 output tokens for every request (--tokens),"
        " replacing the profile's own"
    ]
    arrivals = profile.slice(0.0, 60.0).arrivals(np.random.default_rng(1))
    assert set(arrivals.input_tokens.tolist()) == {512}  # type: ignore[union-attr]
    assert set(arrivals.output_tokens.tolist()) == {128}  # type: ignore[union-attr]
    profile, notes = profile_from_args(args_for("constant:5:600", "--tokens", "azure-code"))
    assert "the embedded Azure code trace" in notes[0] and "replacing" not in notes[0]


def test_drawn_tokens_are_rows_of_the_trace_not_independent_marginals() -> None:
    log = azure_conv()
    rows = set(zip(log.input_tokens.tolist(), log.output_tokens.tolist(), strict=True))
    arrivals = with_token_source(constant(20.0, 600.0), "azure-conv").arrivals(
        np.random.default_rng(3)
    )
    drawn = list(zip(arrivals.input_tokens.tolist(), arrivals.output_tokens.tolist(), strict=True))  # type: ignore[union-attr]
    assert len(drawn) > 10_000 and all(pair in rows for pair in drawn)
    # Independent marginals would mostly pair a prompt with another request's answer length:
    rng = np.random.default_rng(3)
    shuffled = zip(
        rng.choice(log.input_tokens, 1000), rng.choice(log.output_tokens, 1000), strict=True
    )
    assert sum(pair in rows for pair in shuffled) < 250  # 12 % here: common short pairs


def test_drawn_tokens_are_seeded_and_a_slice_keeps_the_full_runs() -> None:
    profile = with_token_source(constant(10.0, 1200.0), "azure-code")
    a, b = (profile.arrivals(np.random.default_rng(5)) for _ in range(2))
    np.testing.assert_array_equal(a.input_tokens, b.input_tokens)  # type: ignore[arg-type]
    other = profile.arrivals(np.random.default_rng(6))
    assert not np.array_equal(a.time_s, other.time_s)
    codes = set(azure_code().input_tokens.tolist())
    assert set(a.input_tokens.tolist()) <= codes  # type: ignore[union-attr]
    part = profile.slice(600.0, 900.0).arrivals(np.random.default_rng(5))
    window = a.window(600.0, 900.0)
    np.testing.assert_array_equal(part.output_tokens, window.output_tokens)  # type: ignore[arg-type]


# ---- loadgen reads profiles the same way


def test_loadgen_takes_the_same_profile_flags(tmp_path: Path) -> None:
    path = write(tmp_path, "odd.csv", "when,load\n0,5\n600,7\n")
    args = loadgen_parser().parse_args(
        ["--url", "http://127.0.0.1:1/v1/infer", "--profile", str(path), "--time-column", "when",
         "--rate-column", "load", "--tokens", "fixed:3:4", "--speedup", "60"]
    )  # fmt: skip
    profile = loadgen_profile(args)
    assert profile.duration_s == pytest.approx(20.0)  # 1200 s at 60x
    arrivals = profile.arrivals(np.random.default_rng(1))
    assert set(arrivals.output_tokens.tolist()) == {4}  # type: ignore[union-attr]
