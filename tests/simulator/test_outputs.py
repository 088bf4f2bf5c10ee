"""What `simulate`, `compare` and `demo` write for a script to read (issue 15)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from controller.dispatch import main
from simulator.outputs import jsonable

PROFILE = ["--profile", "constant:8:900"]  # 60 ticks of 15 s


def test_json_is_exactly_one_document_on_stdout_and_the_table_goes_to_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["simulate", *PROFILE, "--policy", "hpa", "--json", "--out", str(tmp_path)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)  # the whole of stdout: one document, nothing else
    assert "SLO attained" in captured.err and "SLO attained" not in captured.out
    assert doc["command"] == "simulate" and doc["profile"] == "constant:8:900"
    assert doc["slo"] == [{"on": "wait", "threshold_s": 1.0, "share": 0.99,
                           "label": "wait <= 1 s for 99.0%"}]  # fmt: skip
    (run,) = doc["runs"]
    assert run["policy"] == "hpa" and run["slo_met"] is True and run["why"] == ""
    written = {Path(p).name for p in doc["files"]} - {"timeline.parquet"}  # with the extra
    assert sorted(written) == [
        "compare.png", "summary.csv", "summary.json", "timeline-1-hpa.png", "timeline.csv",
    ]  # fmt: skip
    assert json.loads((tmp_path / "summary.json").read_text())["runs"] == doc["runs"]


def test_the_summary_and_timeline_csvs_hold_each_run_and_each_interval(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["compare", *PROFILE, "--policy", "hpa", "--policy", "ray",
            "--slo-wait", "1s", "--slo-p95", "20s", "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert list(summary["policy"]) == ["hpa", "ray"]
    assert list(summary["slo1_target"]) == ["wait <= 1 s for 99.0%"] * 2
    assert list(summary["slo2_target"]) == ["latency <= 20 s for 95.0%"] * 2
    assert (summary["slo2_quantile_s"] < 20).all() and summary["slo_met"].all()
    timeline = pd.read_csv(tmp_path / "timeline.csv")
    assert len(timeline) == 2 * 60 and list(timeline.columns[:3]) == ["run", "policy", "t_s"]
    for column in ("arrival_rate_rps", "replicas", "ready_replicas", "starting_replicas",
                   "queue_depth", "wait_p99_s", "true_latency_p95_s", "missed"):  # fmt: skip
        assert column in timeline.columns
    per_run = timeline.groupby("policy")["requests"].sum()
    assert list(per_run) == list(summary["requests"])
    assert timeline["now_s"].iloc[0] == 1_700_000_015.0  # exact, not 1.7e+09


def test_the_timeline_is_also_parquet_with_the_parquet_extra(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("pyarrow")
    assert main(["simulate", *PROFILE, "--policy", "hpa", "--out", str(tmp_path)]) == 0
    parquet = pd.read_parquet(tmp_path / "timeline.parquet")
    csv = pd.read_csv(tmp_path / "timeline.csv")
    assert list(parquet.columns) == list(csv.columns) and len(parquet) == len(csv) == 60


def test_json_has_no_infinity_or_nan() -> None:
    assert jsonable({"q": (math.inf, 1.5, math.nan)}) == {"q": [None, 1.5, None]}
