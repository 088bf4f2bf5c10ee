"""The sandbox's router (simulator/live/router.py) in front of real emulators, over loopback.

Each test writes the backends file the controller's FileRegistrar keeps and serves emulators
with one slot and a fixed 0.2 s service, so where a request ran and when is known exactly.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from simulator.live.emulator import Emulator, serve
from simulator.live.router import Router, RouterError, read_backends, serve_router
from simulator.model import ReplicaModel
from simulator.service import Fixed
from simulator.startup import FixedStartup

SERVICE_S = 0.2


def write(path: Path, backends: dict[str, str]) -> None:
    rows = [{"name": n, "address": a} for n, a in backends.items()]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"backends": rows}))
    tmp.replace(path)


@pytest_asyncio.fixture
async def replicas() -> AsyncIterator[list[str]]:
    """Three one-slot emulators; their addresses (host:port)."""
    async with AsyncExitStack() as stack:
        out = []
        for _ in range(3):
            model = ReplicaModel(1, Fixed(SERVICE_S), FixedStartup(0.0))
            served = await stack.enter_async_context(serve(Emulator(model, startup_s=0.0)))
            out.append(served.url.removeprefix("http://"))
        yield out


async def infer(session: aiohttp.ClientSession, url: str) -> tuple[int, float]:
    began = time.perf_counter()
    async with session.post(f"{url}/v1/infer", json={}) as answer:
        await answer.read()
        return answer.status, time.perf_counter() - began


async def metric(session: aiohttp.ClientSession, url: str, name: str) -> float:
    async with session.get(f"{url}/metrics") as answer:
        text = await answer.text()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


@pytest.mark.asyncio
async def test_one_central_queue_starts_each_request_on_the_first_free_slot(
    tmp_path: Path,
) -> None:
    # A slow replica (0.6 s) and a fast one (0.1 s), one slot each, four requests at once.
    # One shared FCFS queue: the slow one takes the first, the fast one the other three in
    # turn (done at 0.1, 0.2, 0.3 s), so nothing ends after 0.6 s. Per-replica queues (round
    # robin) would leave the third behind the slow one until 1.2 s.
    path = tmp_path / "backends.json"
    async with AsyncExitStack() as stack:
        addresses = {}
        for name, service_s in (("slow", 0.6), ("fast", 0.1)):
            model = ReplicaModel(1, Fixed(service_s), FixedStartup(0.0))
            served = await stack.enter_async_context(serve(Emulator(model, startup_s=0.0)))
            addresses[name] = served.url.removeprefix("http://")
        write(path, addresses)
        router = await stack.enter_async_context(serve_router(Router(path, slots=1)))
        s = await stack.enter_async_context(aiohttp.ClientSession())
        first = asyncio.ensure_future(infer(s, router.url))
        await asyncio.sleep(0.02)  # the first request reaches the router first
        rest = await asyncio.gather(*(infer(s, router.url) for _ in range(3)))
        results = [await first, *rest]
        assert all(status == 200 for status, _ in results)
        times = sorted(t for _, t in results)
        assert times[-1] < 0.6 + 0.15, times  # the slow replica served only one
        assert times[2] >= 0.3 - 0.02 - 0.02, times  # the fast one served three in turn
        assert await metric(s, router.url, "replicast_router_queue_depth") == 0


@pytest.mark.asyncio
async def test_arrivals_waits_and_latencies_are_counted_and_the_wait_is_in_a_header(
    tmp_path: Path, replicas: list[str]
) -> None:
    # one 0.2 s slot, two requests at once: the second waits ~0.2 s here, says so in its
    # X-Replicast-Wait-S header, and both show in the router's own series (which the sandbox's
    # controller reads: arrivals for the rate, the histogram for latency including the wait)
    path = tmp_path / "backends.json"
    write(path, {"r0": replicas[0]})
    async with AsyncExitStack() as stack:
        router = await stack.enter_async_context(
            serve_router(Router(path, slots=1, time_scale=2.0))
        )
        s = await stack.enter_async_context(aiohttp.ClientSession())

        async def waited() -> float:
            async with s.post(f"{router.url}/v1/infer", json={}) as answer:
                assert answer.status == 200
                return float(answer.headers["X-Replicast-Wait-S"])

        waits = sorted(await asyncio.gather(waited(), waited()))
        assert waits[0] < 0.05 and SERVICE_S - 0.02 <= waits[1] < SERVICE_S + 0.15, waits
        assert await metric(s, router.url, "replicast_router_requests_total") == 2
        duration = "replicast_router_request_duration_seconds"
        assert await metric(s, router.url, f"{duration}_count") == 2
        assert await metric(s, router.url, "replicast_router_queue_wait_seconds_count") == 2
        async with s.get(f"{router.url}/metrics") as answer:
            text = await answer.text()
        assert f'{duration}_bucket{{le="0.15"}}' in text  # vLLM's 0.3 s bound / 2


@pytest.mark.asyncio
async def test_requests_wait_for_a_first_replica_and_follow_the_file(
    tmp_path: Path, replicas: list[str]
) -> None:
    path = tmp_path / "backends.json"
    router = Router(path, slots=1, poll_s=0.05)
    async with serve_router(router) as served, aiohttp.ClientSession() as s:
        pending = asyncio.ensure_future(infer(s, served.url))  # no replica yet: it waits
        await asyncio.sleep(0.3)
        assert not pending.done()
        assert await metric(s, served.url, "replicast_router_queue_depth") == 1
        write(path, {"r1": replicas[0]})  # the actuator registered a ready replica
        status, _ = await pending
        assert status == 200
        # r1 leaves and r3 joins: new requests go to r3 only.
        write(path, {"r3": replicas[2]})
        await asyncio.sleep(0.2)
        assert set(router.backends) == {"r3"}
        await asyncio.gather(*(infer(s, served.url) for _ in range(2)))
        text = await (await s.get(f"{served.url}/metrics")).text()
        assert 'replicast_router_dispatched_total{backend="r3"} 2.0' in text
        assert 'replicast_router_dispatched_total{backend="r1"} 1.0' in text


@pytest.mark.asyncio
async def test_a_replica_that_cannot_be_reached_is_a_502_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "backends.json"
    write(path, {"gone": "127.0.0.1:9"})  # the discard port: nothing listens
    async with (
        serve_router(Router(path, slots=1)) as served,
        aiohttp.ClientSession() as s,
        s.post(f"{served.url}/v1/infer", json={}) as answer,
    ):
        assert answer.status == 502
        assert "backend gone at 127.0.0.1:9" in (await answer.json())["error"]


def test_bad_setups_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(RouterError, match=r"^slots: a whole number >= 1"):
        Router(tmp_path / "b.json", slots=0)
    bad = tmp_path / "bad.json"
    bad.write_text('{"backends": 3}')
    with pytest.raises(ValueError, match="needs"):
        read_backends(bad)
    assert read_backends(tmp_path / "missing.json") == {}


def test_the_router_runs_as_a_process_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    import signal  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    path = tmp_path / "backends.json"
    write(path, {})
    argv = [sys.executable, "-m", "simulator.live.router", "--backends", str(path), "--slots", "2"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline() if process.stdout else ""
        assert line.startswith("router: 2 slots a replica from") and "http://127.0.0.1:" in line
        url = line.rsplit(" on ", 1)[1].strip()
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as answer:
            assert answer.status == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    bad = subprocess.run([*argv[:-1], "0"], check=False, capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2
    assert bad.stderr.strip() == "router: slots: a whole number >= 1 per replica (got 0)"
