"""`replicast run` end to end: a real process, the fake Kubernetes API, a real Prometheus.

The controller runs as `python -m controller.run` (what the `run` entry point calls) with
`--no-leader-election`, HOME, cwd and TMPDIR in a fresh temporary directory, and, where strace
is installed, every file it opens for writing traced: it must write nowhere else. Its one
target, llm/llama, has 3 + 5 requests running in the fixture's exporter, so HPA at 2 per
replica scales it from 1 to 4. Then SIGTERM: a clean exit 0 within a few seconds.
Startup problems (a bad config, a bad flag, no Kubernetes client) are tested in-process:
exit 1 (2 for usage), one line per problem, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import kmock
import pytest
from prometheus_client.parser import text_string_to_metric_families

from controller.actuators.base import SystemClock
from controller.config import Config, check_config
from controller.run import Resources, StartupError, build_actuators, close_actuators, cmd_run
from tests.controller.conftest import RunningPrometheus, free_port
from tests.controller.fake_kube import FakeKube, rbac_rules, write_kubeconfig

HPA = "{policy: hpa, metric: in_flight, target_per_replica: 2, max_replicas: 10}"
HEAVY = ("pandas", "numba", "matplotlib", "simulator")


def config_text(prometheus_url: str) -> str:
    return (
        "apiVersion: replicast/v1\n"
        f"prometheus: {{url: '{prometheus_url}', timeout_s: 2}}\n"
        "defaults: {interval_s: 1}\n"
        "targets:\n"
        "  - name: llama\n"
        "    scale_target: {kind: Deployment, namespace: llm, name: llama}\n"
        "    signals: {preset: vllm}\n"
        f"    policy: {HPA}\n"
    )


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """cmd_run installs its JSON log handler on the root logger; put pytest's back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_the_controller_imports_no_simulator_pandas_numba_or_matplotlib() -> None:
    code = (
        "import sys, controller.run, controller.app, controller.loop\n"
        "names = [m.split('.')[0] for m in sys.modules]\n"
        f"print(sorted(set(names) & {set(HEAVY)!r}))\n"
        "print('controller.actuators.aci' in sys.modules, 'controller.actuators.local' in "
        "sys.modules, 'azure' in names)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # aci and local (and azure-identity) are imported only when a target needs them.
    assert out.stdout.split("\n")[:2] == ["[]", "False False False"]


def test_a_bad_config_exits_1_with_one_line_per_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "apiVersion: replicast/v1\n"
        "prometheus: {url: 'ftp://prometheus'}\n"
        "targets:\n"
        "  - name: llama\n"
        "    scale_target: {kind: Deployment, namespace: LLM, name: llama}\n"
        "    interval_s: 0\n"
        f"    policy: {HPA}\n"
    )
    assert cmd_run([str(path)]) == 1
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 3, err
    assert all(line.startswith(f"{path}:") for line in lines)
    assert "prometheus.url: must be an http:// or https:// base URL" in err
    assert "targets[0].scale_target.namespace: must be a Kubernetes namespace" in err
    assert "targets[0].interval_s: must be >= 0.1 (got 0)" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--admin", "--listen", "0.0.0.0:8080"], "--admin: POST /dry-run would be open"),
        (["--listen", "8080"], "--listen: expected HOST:PORT such as 127.0.0.1:8080"),
        (["--max-change-per-tick", "0"], "--max-change-per-tick: must be 1 to 10000 (got 0)"),
    ],
    ids=["admin-off-loopback", "listen-without-host", "no-change-allowed"],
)
def test_bad_flags_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(config_text("http://127.0.0.1:9"))
    assert cmd_run([str(path), *flags]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"replicast run: {message}")


def test_no_kubernetes_client_exits_1_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(config_text("http://127.0.0.1:9"))
    missing = tmp_path / "no-kubeconfig"
    assert cmd_run([str(path), "--kubeconfig", str(missing), "--listen", "127.0.0.1:0"]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line == f"replicast run: --kubeconfig {missing}: no such file"
    # A file that is not a usable kubeconfig.
    missing.write_text("apiVersion: v1\nkind: Config\n")
    assert cmd_run([str(path), "--kubeconfig", str(missing), "--listen", "127.0.0.1:0"]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("replicast run: cannot configure the Kubernetes client: ")
    assert line.endswith(
        "pass --kubeconfig, or run in a pod with a ServiceAccount (deploy/rbac.yaml)"
    )


def test_an_aci_target_without_a_subscription_exits_1_with_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AZURE_SUBSCRIPTION_ID", raising=False)
    path = tmp_path / "config.yaml"
    path.write_text(
        "apiVersion: replicast/v1\n"
        "prometheus: {url: 'http://127.0.0.1:9'}\n"
        "targets:\n"
        "  - name: burst\n"
        "    scale_target:\n"
        "      kind: aci\n"
        "      resource_group: llm\n"
        "      name_prefix: burst\n"
        "      location: westeurope\n"
        "      template: {properties: {containers: [{name: vllm}]}}\n"
        "    labels: {namespace: llm}\n"
        "    signals: {preset: vllm}\n"
        f"    policy: {HPA}\n"
    )
    status = cmd_run([str(path), "--no-leader-election", "--listen", "127.0.0.1:0"])
    [line] = capsys.readouterr().err.splitlines()
    assert status == 1
    assert line == (
        "replicast run: targets[0].scale_target.subscription_id: not set, and "
        "AZURE_SUBSCRIPTION_ID is empty; set one"
    )


def local_config(tmp_path: Path) -> Config:
    path = tmp_path / "local.yaml"
    path.write_text(
        "apiVersion: replicast/v1\n"
        "prometheus: {url: 'http://127.0.0.1:9'}\n"
        "targets:\n"
        "  - name: sandbox\n"
        "    scale_target: {kind: local, command: [server, --port, '{port}'], base_port: 18000}\n"
        "    labels: {namespace: sandbox}\n"
        "    signals: {preset: vllm}\n"
        f"    policy: {HPA}\n"
    )
    config, problems = check_config(path)
    assert config is not None, problems
    return config


@pytest.mark.asyncio
async def test_the_actuator_factory_picks_the_kind_and_names_a_missing_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = local_config(tmp_path)
    async with aiohttp.ClientSession() as session:
        resources = Resources(session, SystemClock(), kube=None)
        [(name, actuator)] = build_actuators(config, resources).items()
        assert (name, type(actuator).__name__) == ("sandbox", "LocalActuator")
        await close_actuators({name: actuator})  # started nothing, stops nothing
        # An installation without the local actuator: one line naming the field and the fix.
        monkeypatch.setitem(sys.modules, "controller.actuators.local", None)
        with pytest.raises(StartupError) as raised:
            build_actuators(config, resources)
    assert str(raised.value) == (
        "targets[0].scale_target.kind: 'local' targets need controller.actuators.local, which "
        "this installation lacks; upgrade replicast or use another kind"
    )


# --- end to end ------------------------------------------------------------------------------

WRITE_CALLS = ",".join(
    ("open", "openat", "creat", "mkdir", "mkdirat", "rename", "renameat", "renameat2", "unlink",
     "unlinkat", "rmdir", "link", "linkat", "symlink", "symlinkat", "truncate")
)  # fmt: skip
TRACED = re.compile(r'^\d+\s+(\w+)\((?:AT_FDCWD|\d+)?,?\s*"([^"]*)"(.*)$')


def written_paths(log: str) -> list[str]:
    """Paths the traced processes opened for writing, created, renamed or removed."""
    out = []
    for line in log.splitlines():
        match = TRACED.match(line)
        if match is None or "= -1 " in match.group(3):
            continue  # not a traced call, or one that failed
        call, path, rest = match.groups()
        if call.startswith("open") and not re.search(r"O_WRONLY|O_RDWR|O_CREAT", rest):
            continue
        out.append(path)
    return out


def usable_strace() -> str | None:
    """strace, if it is installed and may trace here (containers can forbid ptrace)."""
    found = shutil.which("strace")
    if found is None:
        return None
    probe = subprocess.run(
        [found, "-f", "-qq", "-o", os.devnull, "true"], capture_output=True, check=False
    )
    return found if probe.returncode == 0 else None


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as response:
        return response.status, await response.text()


@pytest.mark.slow
@pytest.mark.asyncio
async def test_replicast_run_scales_serves_and_stops_cleanly_on_sigterm(
    prometheus: RunningPrometheus, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    config = home / "config.yaml"
    config.write_text(config_text(prometheus.url))
    port = free_port()
    async with FakeKube(now=time.time, rbac=rbac_rules()) as fake, kmock.Server(fake):
        fake.add_workload("llama", namespace="llm")
        await fake.settle()
        kubeconfig = write_kubeconfig(fake, home)
        argv = [sys.executable, "-m", "controller.run", str(config), "--listen"]
        argv += [f"127.0.0.1:{port}", "--kubeconfig", str(kubeconfig), "--no-leader-election"]
        strace = usable_strace()
        trace = home / "strace.log"
        if strace:  # every write-like call of the process and its children
            argv = [strace, "-f", "-qq", "-o", str(trace), "-e", f"trace={WRITE_CALLS}", *argv]
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "TMPDIR": str(home)}
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # as in deploy/Dockerfile
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=home, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )  # fmt: skip
        try:
            async with aiohttp.ClientSession() as session:
                base = f"http://127.0.0.1:{port}"
                async with asyncio.timeout(20):
                    while True:
                        try:
                            if (await get(session, f"{base}/readyz"))[0] == 200:
                                break
                        except aiohttp.ClientConnectionError:
                            pass
                        assert process.returncode is None, await process.stderr.read()  # type: ignore[union-attr]
                        await asyncio.sleep(0.1)
                status_code, body = await get(session, f"{base}/status")
                metrics_code, metrics = await get(session, f"{base}/metrics")
            assert (status_code, metrics_code) == (200, 200)
            status = json.loads(body)
            first = status["targets"]["llama"]["records"][-1]
            assert first["action"] == "scaled"
            assert first["record"]["inputs"]["in_flight"] == 8.0
            assert first["record"]["replicas"] == 4
            assert fake.workload("llama", ns="llm")["spec"]["replicas"] == 4
            samples = {
                (s.name, tuple(s.labels.items())): s.value
                for f in text_string_to_metric_families(metrics)
                for s in f.samples
            }
            assert samples["replicast_desired_replicas", (("target", "llama"),)] == 4
            # SIGTERM: the round in progress finishes, then a clean exit.
            pid = process.pid
            if strace:
                head = trace.read_text().split("\n", 1)[0]
                pid = int(head.split()[0])  # the traced python, not strace
            started = time.monotonic()
            os.kill(pid, signal.SIGTERM)
            async with asyncio.timeout(5):
                _, stderr = await process.communicate()
            assert process.returncode == 0, stderr.decode()[-2000:]
            assert time.monotonic() - started < 5
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    # Logs are JSON lines; decisions are keyed by their decision id.
    lines = [json.loads(line) for line in stderr.decode().splitlines()]
    decisions = [line for line in lines if line.get("event") == "decision"]
    assert decisions[0]["decision_id"].startswith("llama/")
    assert decisions[0]["action"] == "scaled"
    assert lines[-1]["message"].startswith("exit after")
    # Nothing was written outside the temporary directory (strace: /dev/null aside).
    if strace:
        written = written_paths(trace.read_text())
        outside = [p for p in written if not p.startswith(str(tmp_path)) and p != "/dev/null"]
        assert outside == [], outside
    leftovers = {p.name for p in home.iterdir()}
    assert leftovers <= {"config.yaml", "kubeconfig", "strace.log"}, leftovers
