"""`replicast simulate`, `compare` and `demo` from a shell."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from controller.dispatch import main


def test_simulate_prints_a_summary_and_writes_plots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["simulate", "--profile", "constant:8:900", "--policy", "hpa", "--out", str(tmp_path)]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "hpa" in out and "SLO attained" in out
    assert (tmp_path / "compare.png").stat().st_size > 10_000
    assert (tmp_path / "timeline-1-hpa.png").exists()


def test_compare_takes_inline_specs_and_names(capsys: pytest.CaptureFixture[str]) -> None:
    spec = "{policy: keda, metric: queue_depth, threshold: 4, min_replicas: 1, max_replicas: 20}"
    code = main(["compare", "--profile", "step:4:12:300:900", "--policy", "slo",
                 "--policy", spec, "--slo-p95", "20s"])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "slo" in out and "keda" in out and "latency <= 20 s for 95.0%" in out


def test_demo_compares_every_built_in_on_the_embedded_azure_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in ("hpa", "keda", "knative", "ray", "slo", "predictive", "planner"):
        assert name in out
    assert "19,366 requests" in out
    assert len(list(tmp_path.glob("*.png"))) == 8


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--profile", "nowhere.csv", "--policy", "hpa"], "--profile nowhere.csv: no such file"),
        (["--profile", "constant:5:60", "--policy", "nope"], "--policy nope: unknown policy nope"),
        (["--profile", "constant:5:60", "--policy", "hpa", "--model", "tpu"], "tpu"),
    ],
    ids=["missing-trace", "unknown-policy", "unknown-model"],
)
def test_bad_arguments_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    assert_usage_error(["simulate", *args], message)


def assert_usage_error(argv: list[str], message: str) -> None:
    """`replicast ARGV` (in process: the console script's `main`; test_hostile_traces and the
    newcomer tests run a real process): exit 2 and one line on stderr with `message`."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    text = err.getvalue()
    assert code == 2, text
    assert message in text
    assert text.count("\n") == 1 and "Traceback" not in text


def test_compare_runs_a_named_scenario_with_its_plans(capsys: pytest.CaptureFixture[str]) -> None:
    # 0.05 d = 72 minutes of the gpu-llm series: the planner and hpa at 6 per replica
    assert main(["compare", "--scenario", "gpu-llm", "--days", "0.05", "--startup", "60"]) == 0
    out = capsys.readouterr().out
    assert "gpu-llm step 0.05 d, startup 60 s" in out and "wait <= 1 s for 99.0%" in out
    for row in ("planner", "hpa", "clairvoyant", "static plan"):
        assert row in out


def test_compare_runs_your_series_realistically_with_a_plan_sized_by_simulation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    series = tmp_path / "mine.csv"
    rows = [f"{600 * i},{40 + 10 * (i % 3)},1.5" for i in range(12)]  # 2 h, CV 1.5
    series.write_text("time_s,rate_rps,interarrival_cv\n" + "\n".join(rows) + "\n")
    argv = ["compare", "--scenario", "gpu-llm", "--series", str(series), "--shape", "realistic",
            "--days", "0.05", "--policy", "hpa", "--out", str(tmp_path / "out")]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "mine.csv realistic 0.05 d, startup 120 s" in out and "clairvoyant plan" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scenario", "nope"], "--scenario nope: unknown; known: gpu-llm"),
        (["--scenario", "gpu-llm", "--days", "15"], "--scenario gpu-llm: days: "),
        (["--scenario", "gpu-llm", "--profile", "azure-conv"], "drop --profile"),
        (["--policy", "hpa"], "give --profile (a load) or --scenario"),
        (
            ["--profile", "constant:5:60", "--days", "2"],
            "--days, --startup, --shape and --series go with --scenario",
        ),
        (["--scenario", "azure-code", "--shape", "realistic"], "replays its own requests"),
        (["--scenario", "gpu-llm", "--series", "/nope.csv"], "--scenario gpu-llm: "),
    ],
    ids=[
        "unknown",
        "too-many-days",
        "with-profile",
        "neither",
        "days-without-scenario",
        "azure-shape",
        "missing-series",
    ],
)
def test_compare_scenario_errors_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    assert_usage_error(["compare", *args], message)
