"""`replicast run` refuses before any action, and says in one line what does not answer.

A busy `--listen` port exits 1 before anything is read or decided. A Prometheus that does not
answer is one replicast line naming it; the process stays up, not ready (/readyz 503 saying
why), holding every target, and stops cleanly on SIGTERM (issue 15).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

import aiohttp
import kmock
import pytest

from controller.run import cmd_run
from tests.controller.conftest import free_port
from tests.controller.fake_kube import FakeKube, rbac_rules, write_kubeconfig
from tests.controller.test_run import config_text, restore_logging  # noqa: F401 (fixture)


def test_a_busy_listen_port_exits_1_before_anything_happens(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,  # noqa: F811
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(config_text("http://127.0.0.1:9"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        started = time.monotonic()
        status = cmd_run([
            str(path), "--listen", f"127.0.0.1:{port}", "--no-leader-election",
            "--kubeconfig", str(tmp_path / "never-read"),
        ])  # fmt: skip
    lines = capsys.readouterr().err.splitlines()
    assert status == 1
    # The port, not the missing kubeconfig: it is checked first, before any client exists.
    assert lines == [
        f"replicast run: --listen 127.0.0.1:{port}: cannot listen: Address already in use"
    ]
    assert time.monotonic() - started < 5


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as response:
        return response.status, await response.text()


@pytest.mark.asyncio
async def test_a_prometheus_that_does_not_answer_is_one_line_and_holds_not_ready(
    tmp_path: Path,
) -> None:
    dead = free_port()  # nothing listens there
    config = tmp_path / "config.yaml"
    config.write_text(config_text(f"http://127.0.0.1:{dead}"))
    port = free_port()
    async with FakeKube(now=time.time, rbac=rbac_rules()) as fake, kmock.Server(fake):
        fake.add_workload("llama", namespace="llm", replicas=3)
        await fake.settle()
        kubeconfig = write_kubeconfig(fake, tmp_path)
        argv = [sys.executable, "-m", "controller.run", str(config), "--no-leader-election"]
        argv += ["--listen", f"127.0.0.1:{port}", "--kubeconfig", str(kubeconfig)]
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "TMPDIR": str(tmp_path)}
        process = await asyncio.create_subprocess_exec(
            *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        try:
            async with aiohttp.ClientSession() as session:
                base = f"http://127.0.0.1:{port}"
                async with asyncio.timeout(20):
                    while True:  # up, and tried every target once
                        try:
                            code, text = await get(session, f"{base}/readyz")
                            if code == 503 and "no target can be read" in text:
                                break
                        except aiohttp.ClientConnectionError:
                            pass
                        assert process.returncode is None
                        await asyncio.sleep(0.1)
                assert text.startswith("no target can be read and scaled: llama: ")
                assert (await get(session, f"{base}/healthz"))[0] == 200
                await asyncio.sleep(1.5)  # more ticks: still running, still holding
                assert process.returncode is None
            assert fake.workload("llama", ns="llm")["spec"]["replicas"] == 3
            os.kill(process.pid, signal.SIGTERM)
            async with asyncio.timeout(10):
                _, stderr = await process.communicate()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == 0
    lines = [json.loads(line) for line in stderr.decode().splitlines()]
    named = [line["message"] for line in lines if f"127.0.0.1:{dead}" in line["message"]]
    preflight = [m for m in named if m.startswith("prometheus ") and "holding every target" in m]
    assert len(preflight) == 1, named
    assert all("\n" not in line["message"] for line in lines)
    assert not [
        line
        for line in lines
        if line.get("level") == "info"
        and line["logger"].startswith(("azure", "kubernetes_asyncio"))
    ]
