"""Stories about the `local` actuator (controller/actuators/local.py): real processes on loopback.

Replicas are emulator processes (`python -m simulator.emulator`, the command the sandbox
configures) or tiny `python -c` scripts that misbehave on purpose. Every test closes its
actuator, and checks that the processes it started, and theirs, are gone.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from controller.actuators.base import ConditionType, PermanentError, ScaleRefusedError
from controller.actuators.local import LocalActuator, LocalSettings
from controller.registrars import FileRegistrar
from simulator.sandbox.live import free_ports

ROOT = Path(__file__).resolve().parents[2]
EMULATOR = [
    sys.executable, "-m", "simulator.emulator", "--port", "{port}", "--model-name", "{name}",
    "--slots", "2", "--service", "fixed:0.01", "--startup-s", "0.3", "--drain-s", "1",
]  # fmt: skip


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting for its parent counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def children() -> set[int]:
    """Live processes whose parent is this test process."""
    mine = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == os.getpid() and fields[0] != "Z":
                mine.add(int(entry.name))
    return mine


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@pytest.mark.asyncio
async def test_scale_up_and_down_runs_emulators_on_their_own_ports(tmp_path: Path) -> None:
    before = children()
    base = free_ports(2)
    registrar = FileRegistrar(tmp_path / "backends.json")
    actuator = LocalActuator(EMULATOR, base_port=base, cwd=ROOT, registrar=registrar)
    try:
        # 0 -> 2: two processes, just started: asked for, not ready yet
        await actuator.scale(2, reason="test")
        state = await actuator.current()
        assert (state.replicas, state.ready_replicas, state.starting_replicas) == (2, 0, 2)
        pids = actuator.pids()
        assert len(set(pids.values())) == 2 and set(pids.values()) <= children()

        # after the emulators' 0.3 s startup both answer /readyz
        async def both_ready() -> bool:
            return (await actuator.current()).ready_replicas == 2

        await eventually(both_ready)
        addresses = {"local-0": f"127.0.0.1:{base}", "local-1": f"127.0.0.1:{base + 1}"}
        assert actuator.addresses() == addresses
        routed = json.loads((tmp_path / "backends.json").read_text())["backends"]
        assert {b["name"]: b["address"] for b in routed} == addresses
        async with aiohttp.ClientSession() as session:
            for name, address in addresses.items():  # each port is its own replica
                async with session.get(f"http://{address}/metrics") as response:
                    assert f'model_name="{name}"' in await response.text()

        # 2 -> 1: the highest index goes, deregistered first; the other keeps serving
        await actuator.scale(1, reason="test")
        assert actuator.pids() == {0: pids[0]}
        assert not alive(pids[1])
        state = await actuator.current()
        assert (state.replicas, state.ready_replicas, state.starting_replicas) == (1, 1, 0)
        assert await registrar.current() == {"local-0"}
    finally:
        await actuator.close()
    # nothing outlives close(): no child process is left, not even a zombie
    assert not any(alive(pid) for pid in pids.values())
    assert children() == before


@pytest.mark.asyncio
async def test_initial_replicas_are_started_by_the_first_read(tmp_path: Path) -> None:
    # a local target declares its size (a Deployment's spec.replicas): hpa, which holds at 0,
    # then has replicas to scale
    before = children()
    actuator = LocalActuator(EMULATOR, base_port=free_ports(2), cwd=ROOT, initial_replicas=2)
    try:
        assert actuator.pids() == {}  # nothing before the first read
        state = await actuator.current()
        assert (state.replicas, state.starting_replicas) == (2, 2)
        assert sorted(actuator.pids()) == [0, 1]
    finally:
        await actuator.close()
    assert children() == before
    with pytest.raises(PermanentError, match="initial_replicas must be >= 0"):
        LocalActuator(EMULATOR, base_port=8000, initial_replicas=-1)


@pytest.mark.asyncio
async def test_a_command_that_exits_at_once_is_reported_not_retried_forever(
    tmp_path: Path,
) -> None:
    starts = tmp_path / "starts"
    crash = (
        "import sys; open(sys.argv[1], 'a').write('start\\n'); "
        "print('boom: model weights not found'); sys.exit(3)"
    )
    settings = LocalSettings(restart_delays_s=(0.0, 0.0))
    actuator = LocalActuator(
        [sys.executable, "-c", crash, str(starts), "{port}"],
        base_port=free_ports(2),
        settings=settings,
    )
    try:
        await actuator.scale(1, reason="test")

        async def gave_up() -> bool:
            condition = (await actuator.current()).condition(ConditionType.CAPACITY_EXHAUSTED)
            return condition is not None and "gave up" in condition.message

        await eventually(gave_up, timeout_s=10.0)
        for _ in range(5):  # more reads start nothing more
            state = await actuator.current()
            await asyncio.sleep(0.02)
        assert starts.read_text().splitlines() == ["start"] * 3  # the first + one per delay
        assert (state.replicas, state.ready_replicas, state.starting_replicas) == (1, 0, 0)
        condition = state.condition(ConditionType.CAPACITY_EXHAUSTED)
        assert condition is not None
        assert "local-0 (port " in condition.message
        assert "exited with code 3" in condition.message
        assert "boom: model weights not found; gave up after 3 starts" in condition.message
        assert "\n" not in condition.message
        # a broken command forbids growing (the loop does not pile up more of them) ...
        with pytest.raises(ScaleRefusedError, match="not scaled to 2"):
            await actuator.scale(2, reason="test")
        # ... and scaling it away clears the report
        await actuator.scale(0, reason="test")
        assert (await actuator.current()).conditions == ()
    finally:
        await actuator.close()


@pytest.mark.asyncio
async def test_a_replica_ignoring_sigterm_is_killed_with_everything_it_started(
    tmp_path: Path,
) -> None:
    before = children()
    grandchild_pid = tmp_path / "grandchild.pid"
    stubborn = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "open(sys.argv[1], 'w').write(str(child.pid))\n"
        "time.sleep(60)\n"
    )
    settings = LocalSettings(stop_timeout_s=0.3)
    actuator = LocalActuator(
        [sys.executable, "-c", stubborn, str(grandchild_pid), "{port}"],
        base_port=free_ports(1),
        settings=settings,
    )
    try:
        await actuator.scale(1, reason="test")
        leader = actuator.pids()[0]

        async def spawned() -> bool:
            return grandchild_pid.exists() and grandchild_pid.read_text() != ""

        await eventually(spawned)
        grandchild = int(grandchild_pid.read_text())
        assert alive(grandchild)
    finally:
        began = time.monotonic()
        await actuator.close()
        took_s = time.monotonic() - began
    assert 0.3 <= took_s < 3.0  # SIGTERM ignored for stop_timeout_s, then SIGKILL
    assert not alive(leader)

    async def grandchild_gone() -> bool:  # reaped by init once its parent died
        return not alive(grandchild)

    await eventually(grandchild_gone, timeout_s=5.0)
    assert children() == before


def test_the_command_template_must_give_each_replica_its_port() -> None:
    with pytest.raises(PermanentError, match=r"command_template must contain \{port\}"):
        LocalActuator([sys.executable, "-m", "simulator.emulator"], base_port=8000)


@pytest.mark.asyncio
async def test_a_missing_executable_is_a_permanent_error_naming_it() -> None:
    actuator = LocalActuator(["/nonexistent/server", "--port", "{port}"], base_port=free_ports(1))
    try:
        with pytest.raises(PermanentError) as error:
            await actuator.scale(1, reason="test")
        assert str(error.value) == (
            "local local: cannot start local-0: /nonexistent/server: No such file or directory;"
            " fix command_template"
        )
    finally:
        await actuator.close()


@pytest.mark.asyncio
async def test_the_sandbox_router_follows_the_replicas_the_actuator_starts_and_stops(
    tmp_path: Path,
) -> None:
    """The issue-20 wiring: LocalActuator -> FileRegistrar -> the router's central queue."""
    from simulator.live.router import Router, serve_router  # noqa: PLC0415 - the other shell

    before = children()
    path = tmp_path / "backends.json"
    actuator = LocalActuator(
        EMULATOR, base_port=free_ports(2), cwd=ROOT, registrar=FileRegistrar(path)
    )
    router = Router(path, slots=2, poll_s=0.05)
    try:
        async with serve_router(router) as served, aiohttp.ClientSession() as session:

            async def burst(n: int) -> list[int]:
                async def one() -> int:
                    async with session.post(f"{served.url}/v1/infer", json={}) as answer:
                        await answer.read()
                        return answer.status

                return list(await asyncio.gather(*(one() for _ in range(n))))

            async def routed(names: set[str]) -> bool:
                await actuator.current()  # a read registers the ready, deregisters the rest
                await asyncio.sleep(0.1)  # the router's next look at the file
                return {n for n, b in router.backends.items() if not b.leaving} == names

            await actuator.scale(1, reason="test")
            await eventually(lambda: routed({"local-0"}))
            assert await burst(5) == [200] * 5
            await actuator.scale(2, reason="test")
            await eventually(lambda: routed({"local-0", "local-1"}))
            assert await burst(20) == [200] * 20  # more than 2 x 2 slots: both serve
            text = await (await session.get(f"{served.url}/metrics")).text()
            assert 'replicast_router_dispatched_total{backend="local-1"}' in text
            await actuator.scale(1, reason="test")  # local-1 deregistered, then stopped
            await eventually(lambda: routed({"local-0"}))
            assert await burst(5) == [200] * 5
    finally:
        await actuator.close()
    assert children() == before
