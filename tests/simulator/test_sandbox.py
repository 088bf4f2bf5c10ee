"""`replicast sandbox` end to end (simulator/sandbox): a real Prometheus, the router, the
controller as `replicast run`, emulator replicas, the load; then the simulator on the same
arrivals. A short version: 60 s of the Azure conversation trace at twice its rate and a
minute of quiet, compressed 5x (about 30 s of wall time), with a policy file whose scale-down
window is 30 s so the scale-down happens inside the run.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from controller.dispatch import main
from simulator.sandbox import compare
from simulator.sandbox.live import Observed
from simulator.sandbox.plan import SandboxOptions, compress_spec, make_plan
from tests.controller.test_local_actuator import children

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None, reason="needs prometheus (apt-get install -y prometheus)"
)


def listening() -> set[int]:
    """Ports something listens on (/proc/net/tcp*, state 0A): a freed port is not among them
    (a client elsewhere may still use one as its ephemeral port; that is not ours)."""
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A":
                ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def test_the_sandbox_scales_up_under_load_and_down_after_with_nothing_left_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "hpa.yaml"
    policy.write_text(
        "policy: hpa\nmetric: in_flight\ntarget_per_replica: 12\nmax_replicas: 6\n"
        "behavior: {scaleDown: {stabilizationWindowSeconds: 30}}\n"
    )
    out = tmp_path / "out"
    before = children()
    code = main([
        "sandbox", "--policy", str(policy), "--slice", "1200:1260", "--rate-scale", "0.5",
        "--startup-s", "10", "--tail", "90", "--initial-replicas", "1", "--max-replicas", "6",
        "--time-compression", "5", "--out", str(out), "--no-progress",
    ])  # fmt: skip
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert children() == before  # no process outlives the run
    report = json.loads((out / "report.json").read_text())
    assert not set(report["ports"]) & listening()  # every port freed
    # the controller scaled up under load and back down in the quiet tail
    counts = [n for t, action, n in report["decisions"] if isinstance(n, int)]
    scaled = [(t, n) for t, action, n in report["decisions"] if action == "scaled"]
    assert max(counts) > 1, report["decisions"]
    assert scaled[0][1] > 1 and scaled[0][0] < report["load_s"]  # up while the load ran
    assert counts[-1] < max(counts) and any(t > report["load_s"] for t, _ in scaled)  # down after
    # the real run and the simulator saw the same requests; the report says both
    assert report["sandbox"]["requests"] == report["simulator"]["requests"] > 100
    assert report["load_generator"]["failed"] == 0
    assert report["measured_startup"]["count"] >= 1
    assert 10 <= report["measured_startup"]["mean_s"] < 60  # 10 s + import + registration
    assert report["measured_scrape_age_s"] is not None
    assert set(report["measured_scrape_age_by_job_s"]) == {"router", "replicas"}
    both = json.loads((out / "decisions.json").read_text())  # every decision, both loops
    assert len(both["sandbox"]) >= 0.8 * len(both["simulator"]) > 3
    assert 0 <= both["sandbox"][0]["t_s"] < 20  # from the load's start, profile seconds
    assert max(r["request_rate_rps"] or 0 for r in both["sandbox"]) > 1  # profile req/s
    md = (out / "report.md").read_text()
    assert "| latency p95 (s) |" in md and "simulator vs sandbox" in md
    assert (out / "timeline.png").stat().st_size > 10_000
    assert "sandbox vs simulator" in printed.out


def test_compression_divides_durations_multiplies_rates_and_refuses_a_split_second() -> None:
    spec = {"policy": "x", "window_s": 60.0, "behavior": {"scaleDown": {
        "stabilizationWindowSeconds": 300, "policies": [{"periodSeconds": 15}]}},
        "max_rps": 10.0, "metric": "rps", "target_per_replica": 4.0, "max_replicas": 8}  # fmt: skip
    small = compress_spec(spec, 5)
    assert small["window_s"] == 12.0 and small["max_rps"] == 50.0
    assert small["target_per_replica"] == 20.0 and small["max_replicas"] == 8
    assert small["behavior"]["scaleDown"] == {
        "stabilizationWindowSeconds": 60,
        "policies": [{"periodSeconds": 3}],
    }
    with pytest.raises(ValueError, match=r"periodSeconds \(15 s\).*whole.*e\.g\. 3, 5"):
        compress_spec(spec, 4)
    plan = make_plan(SandboxOptions(policy="knative", time_compression=5))
    assert plan.interval_s == 2.0 and plan.compressed["stable_window_s"] == 12
    assert plan.duration_s > plan.load_s  # a quiet tail to see the scale-down


def test_the_simulator_scrapes_at_the_age_of_the_data_the_policy_decides_on() -> None:
    hpa = make_plan(SandboxOptions(policy="hpa"))  # in_flight: the replicas' own gauge
    slo = make_plan(SandboxOptions(policy="slo"))  # request rate: counted by the router
    assert hpa.signal_jobs == {"replicas"} and slo.signal_jobs == {"router"}
    observed = Observed(scrape_ages_s={"router": 0.4, "replicas": 2.0})  # wall seconds
    assert compare.scrape_age_s(hpa, observed) == 2.0
    assert compare.scrape_age_s(slo, observed) == 0.4
    assert compare.scrape_age_s(hpa, Observed()) is None
    # a tick at k x 15 s that sees 10 s old data: the simulator scrapes at 5 s past each 15 s
    assert compare.scrape_offset_s(hpa, 2.0) == pytest.approx(5.0)
    assert compare.scrape_offset_s(hpa, None) == 0.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--policy", "nosuch"], "unknown policy nosuch"),
        (["--time-compression", "7"], "periodSeconds (15 s) is kept in whole seconds"),
        (["--slice", "10:5000"], "--slice 10:5000: the azure-conv trace has 0:3502 seconds"),
        (["--rate-scale", "0"], "--rate-scale 0"),
    ],
)
def test_bad_arguments_are_one_line_before_anything_starts(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sandbox", *args, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_a_missing_prometheus_is_one_line_with_the_install_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no prometheus here
    assert main(["sandbox", "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["replicast sandbox: prometheus: not on PATH; install it (Debian: apt-get "
                   "install -y prometheus)"]  # fmt: skip


def test_ctrl_c_stops_every_process_and_says_so(tmp_path: Path) -> None:
    # SIGINT (what Ctrl-C sends to the foreground process; the sandbox's children run in
    # sessions of their own) while the load runs: exit 130, nothing left listening or running
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "controller.dispatch", "sandbox", "--slice", "1200:1500",
         "--startup-s", "5", "--initial-replicas", "1", "--out", str(out), "--no-progress"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not list(out.glob("run/replicast-*")) and time.monotonic() < deadline:
        routed = out / "run" / "backends.json"
        if routed.exists() and "sandbox-0" in routed.read_text():
            break
        time.sleep(0.2)
    time.sleep(2.0)  # the load is running
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted; every process stopped" in err
    leftovers = [
        line for line in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True,
                                        check=True).stdout.splitlines()
        if str(out) in line
    ]  # fmt: skip
    assert leftovers == []
