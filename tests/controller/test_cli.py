"""`replicast validate | schema | profile`: exit statuses, one line per problem, no traceback."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from controller.cli import cmd_profile, cmd_schema, cmd_validate, parse_duration_s, parse_time_s
from tests.controller.conftest import SETTLE_S, RunningPrometheus, free_port
from tests.controller.test_config import BROKEN, EXAMPLES, LINE, MINIMAL

ROOT = Path(__file__).parents[2]
Capture = pytest.CaptureFixture[str]


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    return path


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "good.yaml"
    path.write_text(MINIMAL)
    return path


# --- validate --------------------------------------------------------------------------------


def test_validate_a_good_config_exits_0_and_says_ok(good: Path, capsys: Capture) -> None:
    assert cmd_validate([str(good)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{good}: OK (1 target(s): llama)\n" and err == ""


def test_validate_reports_each_problem_on_one_line_and_exits_1(
    broken: Path, capsys: Capture
) -> None:
    assert cmd_validate([str(broken)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    problems = err.splitlines()
    assert len(problems) == 13
    assert all(LINE.match(line) for line in problems), problems
    assert f"{broken}:12:66: targets[0].policy.target_per_replica: must be > 0 (got -1)" in err


def test_validate_checks_every_file_given(good: Path, broken: Path, capsys: Capture) -> None:
    assert cmd_validate([str(good), str(broken), *map(str, EXAMPLES)]) == 1
    out, err = capsys.readouterr()
    assert out.count(": OK (") == 1 + len(EXAMPLES)
    assert all(line.startswith(str(broken)) for line in err.splitlines())


@pytest.mark.parametrize(
    ("argv", "status"),
    [([], 2), (["--bogus", "x.yaml"], 2), (["--help"], 0)],
    ids=["no-file", "unknown-option", "help"],
)
def test_validate_usage(argv: list[str], status: int, capsys: Capture) -> None:
    assert cmd_validate(argv) == status
    err = capsys.readouterr().err
    assert ("usage: replicast validate" in err) == (status == 2)


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "text",
    [BROKEN, "apiVersion: replicast/v1\nprometheus: [\n", "\t- tab\n", ""],
    ids=["broken", "unclosed", "tab", "empty"],
)
def test_validate_in_a_fresh_process_prints_no_traceback(tmp_path: Path, text: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    done = run_python(
        "import sys; from controller.cli import cmd_validate; "
        f"sys.exit(cmd_validate([{str(path)!r}]))"
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    for line in done.stderr.splitlines():
        assert line.startswith(f"{path}:"), line


def test_validate_a_missing_file_in_a_fresh_process(tmp_path: Path) -> None:
    missing = tmp_path / "absent.yaml"
    done = run_python(
        "import sys; from controller.cli import cmd_validate; "
        f"sys.exit(cmd_validate([{str(missing)!r}]))"
    )
    assert done.returncode == 1
    assert done.stderr == f"{missing}: cannot read the file: No such file or directory\n"


def test_importing_the_cli_loads_no_simulator_or_plotting_module() -> None:
    done = run_python(
        "import sys, controller.cli, controller.prometheus; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'simulator', 'pandas', 'numba', 'matplotlib', 'azure'}))"
    )
    assert done.stdout.strip() == "[]", done.stderr


# --- schema ----------------------------------------------------------------------------------


def test_schema_usage_error_exits_2(capsys: Capture) -> None:
    assert cmd_schema(["--bogus"]) == 2
    assert "usage: replicast schema" in capsys.readouterr().err


def test_schema_in_a_fresh_process_is_json(tmp_path: Path) -> None:
    done = run_python("import sys; from controller.cli import cmd_schema; sys.exit(cmd_schema([]))")
    assert done.returncode == 0
    assert "targets" in json.loads(done.stdout)["properties"]


# --- profile from-prometheus -----------------------------------------------------------------


def query_range(url: str, query: str, start_s: float, end_s: float) -> list[list[object]]:
    form = {"query": query, "start": start_s, "end": end_s, "step": 1}
    data = urllib.parse.urlencode(form).encode()
    with urllib.request.urlopen(f"{url}/api/v1/query_range", data=data, timeout=5) as response:
        result = json.load(response)["data"]["result"]
    values: list[list[object]] = result[0]["values"]
    return values


def test_profile_writes_the_rate_history_as_time_s_rate_rps(
    prometheus: RunningPrometheus, tmp_path: Path, capsys: Capture
) -> None:
    end_s = round(time.time() - SETTLE_S, 3)  # the fixture saw rates at this age
    out = tmp_path / "rates.csv"
    rate = "sum(rate(vllm:request_success_total[1m]))"
    argv = ["from-prometheus", prometheus.url, rate, "--start", str(end_s - 3)]
    argv += ["--end", str(end_s), "--step", "1s", "--out", str(out)]

    assert cmd_profile(argv) == 0

    with out.open() as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == ["time_s", "rate_rps"]
    expected = query_range(prometheus.url, rate, end_s - 3, end_s)
    assert len(rows) > 1
    assert [(float(t), float(v)) for t, v in rows[1:]] == [
        (float(t), float(v))  # type: ignore[arg-type]
        for t, v in expected
    ]
    assert re.match(rf"wrote {len(rows) - 1} rows to {out} \(step 1 s", capsys.readouterr().err)


def test_profile_refuses_a_query_with_many_series(
    prometheus: RunningPrometheus, tmp_path: Path, capsys: Capture
) -> None:
    argv = ["from-prometheus", prometheus.url, "vllm:num_requests_running", "--start", "now-5s"]
    assert cmd_profile([*argv, "--step", "1s", "--out", str(tmp_path / "x.csv")]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"replicast profile: {prometheus.url}: ambiguous: the query returned ")
    assert line.endswith("series; wrap it in sum(...) for one rate")
    assert not (tmp_path / "x.csv").exists()


def test_profile_from_a_prometheus_that_is_down_exits_1(tmp_path: Path, capsys: Capture) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    argv = ["from-prometheus", url, "up", "--start", "now-1h", "--out", str(tmp_path / "x.csv")]
    assert cmd_profile(argv) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"replicast profile: {url}: connection: ")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--start", "yesterday"], "not a time: 'yesterday'"),
        (["--start", "now-1h", "--end", "now-2h"], "--end (now-2h) must be after --start"),
        (["--start", "now-1h", "--step", "0"], "--step must be > 0"),
        (["--start", "now-1h", "--step", "fast"], "not a duration: 'fast'"),
        (["--start", "2024-05-10T00:00:00"], "has no timezone; add Z or +00:00"),
    ],
    ids=["bad-time", "end-before-start", "zero-step", "bad-step", "naive-time"],
)
def test_profile_usage_errors_exit_2_with_one_line(
    argv: list[str], message: str, tmp_path: Path, capsys: Capture
) -> None:
    base = ["from-prometheus", "http://127.0.0.1:9", "up", "--out", str(tmp_path / "x.csv")]
    assert cmd_profile([*base, *argv]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("replicast profile: ") and message in line


def test_profile_without_a_source_is_a_usage_error(capsys: Capture) -> None:
    assert cmd_profile([]) == 2
    assert cmd_profile(["from-prometheus", "http://x"]) == 2  # no query, no --start, no --out


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("15s", 15), ("1m", 60), ("1h30m", 5400), ("2d", 172800), ("500ms", 0.5)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("now", 1_700_000_000),
        ("now-6h", 1_700_000_000 - 21_600),
        ("1699990000.5", 1_699_990_000.5),
        ("2023-11-14T22:13:20Z", 1_700_000_000),
        ("2023-11-14T23:13:20+01:00", 1_700_000_000),
    ],
)
def test_times(text: str, seconds: float) -> None:
    assert parse_time_s(text, now_s=1_700_000_000) == seconds
