"""simulator.sweeps and `replicast sweep`: grids, executors, resume, failed cells, bad grids."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from simulator import sweeps
from simulator.cli import cmd_compare
from simulator.sweeps.cli import cmd_sweep, read_grid
from simulator.sweeps.grid import expand_spec

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "docs" / "examples" / "sweep.yaml"
REPLICAST = [sys.executable, "-c", "from controller.dispatch import main; raise SystemExit(main())"]

SMALL: dict[str, Any] = {
    "profile": "azure-conv",
    "model": "gpu-llm",
    "slo": {"wait_s": 1, "share": 0.99},
    "seeds": [1, 2],
    "startup_s": 60,
    "slice": "0:300",
    "policies": [
        {"policy": "hpa", "metric": "in_flight", "target_per_replica": [5, 6], "max_replicas": 40},
        {"policy": "planner", "wait_target_s": 1, "percentile": 0.99, "slots_per_replica": 8},
    ],
}


def _comparable(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=["wall_s"]).reset_index(drop=True)


def test_the_readme_example_grid_expands_to_every_combination() -> None:
    readme = (REPO / "README.md").read_text()
    assert EXAMPLE.read_text().strip() in readme, "README shows docs/examples/sweep.yaml verbatim"
    _, cells = read_grid(EXAMPLE)
    # 2 profiles x 2 cold starts x (3 hpa targets + 1 planner) x 3 seeds
    assert len(cells) == 2 * 2 * (3 + 1) * 3
    assert len({c.key for c in cells}) == len(cells)
    labels = {c.label for c in cells}
    assert labels == {f"hpa target_per_replica={t}" for t in (5, 6, 7)} | {"planner"}


def test_a_list_anywhere_in_a_spec_is_an_axis_but_a_policys_own_lists_are_not() -> None:
    spec = {
        "policy": "hpa",
        "metrics": [{"signal": "in_flight", "target_per_replica": 5}],
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": [60, 300]}},
        "tolerance": [0.1, 0.2],
    }
    expanded, swept = expand_spec(spec)
    assert swept == ("behavior.scaleDown.stabilizationWindowSeconds", "tolerance")
    assert len(expanded) == 4
    assert all(isinstance(e["metrics"], list) for e in expanded)
    assert {e["behavior"]["scaleDown"]["stabilizationWindowSeconds"] for e in expanded} == {60, 300}
    grid = {"profile": "azure-conv", "policies": [{**spec, "max_replicas": 9}]}
    labels = {c.label for c in sweeps.parse_grid(grid)[1]}
    assert len(labels) == 4, labels  # each configuration its own label: front() groups by it
    assert "hpa behavior.scaleDown.stabilizationWindowSeconds=60 tolerance=0.1" in labels


def test_a_small_grid_gives_the_same_table_on_a_process_pool_and_on_dask(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    _, cells = sweeps.parse_grid(SMALL)
    with sweeps.executor_for("process", 2) as pool:
        on_pool = sweeps.sweep(cells, executor=pool, out=tmp_path / "pool.csv")
    with (
        distributed.LocalCluster(
            n_workers=2,
            processes=False,
            threads_per_worker=1,
            dashboard_address=None,
            protocol="tcp",
            host="127.0.0.1",
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        on_dask = sweeps.sweep(cells, executor=client.get_executor(), out=tmp_path / "dask.csv")
        address = "dask://" + cluster.scheduler_address.removeprefix("tcp://")
        with sweeps.executor_for(address) as by_address:  # what --executor dask://HOST:PORT does
            on_address = sweeps.sweep(cells[:2], executor=by_address)
    in_process = sweeps.sweep(cells)
    assert len(on_pool) == 6 and (on_pool["error"] == "").all()
    pd.testing.assert_frame_equal(_comparable(on_pool), _comparable(on_dask))
    pd.testing.assert_frame_equal(_comparable(on_pool), _comparable(in_process))
    first_two = _comparable(on_pool.iloc[:2])  # hpa cells: the planner's param_ columns aside
    pd.testing.assert_frame_equal(
        first_two[on_address.columns.drop("wall_s")], _comparable(on_address), check_dtype=False
    )
    assert list(on_pool["cell"]) == list(range(6))
    assert on_pool["param_target_per_replica"].tolist()[:4] == [5, 5, 6, 6]
    assert (on_pool["requests"] > 0).all() and on_pool["replica_hours"].gt(0).all()
    points = sweeps.front(on_pool)
    assert len(points) == 3 and points["on_front"].any()
    assert set(points["seeds"]) == {2}


def test_a_killed_sweep_resumes_from_the_cells_it_wrote(tmp_path: Path) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        textwrap.dedent("""\
        profile: azure-conv
        model: gpu-llm
        seeds: [1, 2, 3, 4, 5, 6]
        slice: "0:1200"
        policies:
          - {policy: hpa, metric: in_flight, target_per_replica: [4, 6], max_replicas: 40}
        """)
    )
    out = tmp_path / "out"
    argv = [*REPLICAST, "sweep", str(grid), "--out", str(out), "--workers", "1"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    csv = out / "sweep.csv"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and run.poll() is None:
        if csv.exists() and len(csv.read_text().splitlines()) >= 4:  # header + 3 rows
            break
        time.sleep(0.05)
    assert run.poll() is None, "the sweep ended before it could be killed"
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=30)
    written = pd.read_csv(csv, keep_default_na=False)
    assert 3 <= len(written) < 12
    done = subprocess.run(
        [*argv, "--resume"], env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stderr
    resumed = pd.read_csv(csv, keep_default_na=False)
    assert len(resumed) == 12 and resumed["key"].is_unique
    kept = resumed.set_index("key").loc[written["key"], "wall_s"]
    assert kept.tolist() == written["wall_s"].tolist(), "the rows already written were kept"
    fresh = subprocess.run(
        [*argv[:-4], "--out", str(tmp_path / "fresh"), "--workers", "1"],
        env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert fresh.returncode == 0, fresh.stderr
    again = pd.read_csv(tmp_path / "fresh" / "sweep.csv", keep_default_na=False)
    pd.testing.assert_frame_equal(_comparable(resumed), _comparable(again))


def test_a_failed_cell_is_a_row_with_its_error_and_the_others_run(tmp_path: Path) -> None:
    """A policy that raises mid-run (a plugin's bug) fails its own cells; the rest run."""
    plugin = tmp_path / "flaky_policy.py"
    plugin.write_text(
        (REPO / "tests" / "plugins" / "queue_policy.py").read_text()
        + textwrap.dedent("""

        @dataclass(frozen=True)
        class FlakyPolicy(SmoothedQueuePolicy):
            def decide(self, obs, state):
                if self.params.per_replica == 3 and obs.now_s > 1_700_000_100:
                    raise RuntimeError("the policy's own bug")
                return super().decide(obs, state)


        class FlakyFactory(SmoothedQueueFactory):
            policy_type = FlakyPolicy


        FLAKY = FlakyFactory()
        """)
    )
    sys.path.insert(0, str(tmp_path))
    try:
        grid = dict(
            SMALL,
            seeds=[1],
            policies=[
                {"policy": "flaky_policy:FLAKY", "per_replica": [2, 3, 4], "max_replicas": 40}
            ],
        )
        table = sweeps.sweep(grid)
    finally:
        sys.path.remove(str(tmp_path))
    assert table["param_per_replica"].tolist() == [2, 3, 4]
    assert table["error"].iloc[1].startswith("RuntimeError: the policy's own bug"), table["error"]
    assert table["error"].iloc[[0, 2]].tolist() == ["", ""]
    assert table["requests"].iloc[[0, 2]].gt(0).all()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "profile: azure-conv\npolicies:\n  - {policy: hpa, metric: in_flight, "
            "target_per_replica: [5, -1], max_replicas: 9}\n",
            "grid.yaml:3:58: policies[0].target_per_replica: must be > 0 (got -1) (policy hpa)",
        ),
        (
            "profile: azure-conv\npolicies:\n  - policy: hpa\n    metric: in_flight\n"
            "    target_per_replica: 5\n    colour: red\n",
            "grid.yaml:6:5: policies[0].colour: unknown key; allowed keys: ",
        ),
        (
            "profile: azure-conv\nseed: [1]\npolicies: [{policy: hpa}]\n",
            "grid.yaml:2:1: seed: unknown key; allowed keys: interval_s, model, policies, profile",
        ),
        (
            "profile: no-such.csv\npolicies:\n  - {policy: hpa, metric: in_flight, "
            "target_per_replica: 5}\n",
            "grid.yaml:1:10: profile: no-such.csv: no such file",
        ),
        ("- just a list\n", "grid.yaml:1:1: expected a mapping with profile and policies"),
        ("profile: [a\n", "grid.yaml:2:1: YAML syntax error"),
        (
            "profile: azure-conv\nprofile: azure-code\npolicies: [{policy: hpa}]\n",
            "grid.yaml:2:1: profile: duplicate key (first on line 1)",
        ),
        (
            "profile: azure-conv\nseeds: [-1]\npolicies: [{policy: nope}]\n",
            "grid.yaml:2:8: seeds: a seed must be a whole number >= 0 (got -1)",
        ),
    ],
    ids=[
        "out-of-range", "unknown-param", "unknown-grid-key", "missing-profile", "not-a-mapping",
        "yaml-syntax", "duplicate-key", "negative-seed",
    ],
)  # fmt: skip
def test_a_bad_grid_is_one_line_per_problem_before_anything_runs(
    tmp_path: Path, text: str, expected: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    Path("grid.yaml").write_text(text)
    assert cmd_sweep(["grid.yaml", "--out", "out"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(expected), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not Path("out").exists(), "nothing ran"


def test_a_bad_grid_from_the_console_script_is_its_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "grid.yaml").write_text("profile: azure-conv\npolicies: [{policy: hpaa}]\n")
    done = subprocess.run(
        [*REPLICAST, "sweep", "grid.yaml"], cwd=tmp_path, capture_output=True, text=True,
        timeout=60, check=False, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    expected = "grid.yaml:2:21: policies[0].policy: unknown policy 'hpaa'; available: hpa,"
    assert done.stderr.startswith(expected), done.stderr


def test_the_example_grid_runs_from_the_command_line_and_draws_its_front(tmp_path: Path) -> None:
    done = subprocess.run(
        [*REPLICAST, "sweep", str(EXAMPLE), "--out", str(tmp_path), "--slice", "0:300",
         "--max-cells", "8", "--workers", "1"],
        capture_output=True, text=True, timeout=180, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Pareto front: azure-conv" in done.stdout
    assert "cheapest meeting the SLO" in done.stdout or "no configuration meets" in done.stdout
    table = pd.read_csv(tmp_path / "sweep.csv", keep_default_na=False)
    assert len(table) == 8 and (table["error"] == "").all()
    assert (tmp_path / "pareto.png").stat().st_size > 10_000
    assert "8 cells" in done.stderr and "sweep: 8/8 cells" in done.stderr


def test_an_executor_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [*REPLICAST, "sweep", str(EXAMPLE), "--executor", "threads", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "replicast sweep: --executor threads: use process | local-dask | dask://HOST:PORT"
    )


def test_compare_on_the_pool_prints_the_same_table_as_in_turn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    argv = ["--profile", "azure-conv", "--slice", "0:300", "--policy", "hpa", "--policy",
            "planner", "--out", str(tmp_path / "x")]  # fmt: skip
    tables = []
    for workers in ("1", "2"):
        assert cmd_compare([*argv, "--workers", workers]) == 0
        out = capsys.readouterr().out
        tables.append([line for line in out.splitlines() if " run(s) in " not in line])
    assert tables[0] == tables[1]
    assert any(line.startswith("│ planner") for line in tables[1])
