"""The `replicast` console script: policies, explain, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from controller.dispatch import main
from policies.registry import builtins


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "controller.dispatch", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_policies_prints_one_line_per_registered_policy(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policies"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == list(builtins())
    assert all("built-in" in line for line in lines)


def test_explain_with_no_arguments_replays_the_demo(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain"]) == 0
    out = capsys.readouterr().out
    assert "ScaleUpLimit" in out and "ScaleDownStabilized" in out and "Activated" in out


def test_explain_json_has_every_guard_and_reason(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert [r["spec"]["policy"] for r in runs] == ["hpa", "hpa", "keda"]
    first = runs[0]["records"]
    assert first[2]["proposal"] == 12 and first[2]["replicas"] == 7
    assert first[2]["guards"][0]["name"] == "rate_limit"


def test_explain_reads_a_csv_and_an_inline_spec(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "obs.csv"
    csv.write_text("t_s,replicas,ready_replicas,in_flight\n0,3,3,60\n15,6,6,\n")
    spec = "{policy: hpa, metric: in_flight, target_per_replica: 10, max_replicas: 20}"
    assert main(["explain", str(csv), "--spec", spec, "--json"]) == 0
    records = json.loads(capsys.readouterr().out)[0]["records"]
    assert [r["replicas"] for r in records] == [6, 6]
    assert records[1]["reason"].startswith("FailedGetMetrics")


def test_bad_csv_cell_is_one_line_naming_file_line_and_column(tmp_path: Path) -> None:
    csv = tmp_path / "obs.csv"
    csv.write_text("t_s,in_flight\n0,12\n15,lots\n")
    result = run(
        "explain",
        str(csv),
        "--spec",
        "{policy: hpa, metric: in_flight, target_per_replica: 1, max_replicas: 3}",
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip() == f"replicast explain: {csv}:3:2 (in_flight): 'lots' is not a number"
    )


def test_bad_spec_is_one_line_and_no_traceback(tmp_path: Path) -> None:
    result = run(
        "explain",
        "--spec",
        "{policy: hpa, metric: in_flight, target_per_replica: -3, max_replicas: 3}",
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "target_per_replica: must be > 0 (got -3)" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_command_lists_the_commands() -> None:
    result = run("frobnicate")
    assert result.returncode == 2
    assert "explain" in result.stderr and "policies" in result.stderr


def test_policies_params_lists_each_key_with_default_range_and_meaning() -> None:
    result = run("policies", "--params", "ray")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["key", "default", "range", "meaning"]
    [delay] = [line for line in lines if line.startswith("downscale_delay_s ")]
    assert delay.split()[1:5] == ["600", ">=", "0,", "<="]
    assert "86400" in delay and "seconds" in delay
    unknown = run("policies", "--params", "hpaa")
    assert unknown.returncode == 2 and "unknown policy 'hpaa'" in unknown.stderr
