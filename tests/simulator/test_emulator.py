"""Stories about the emulated inference server (simulator/live), over real loopback HTTP.

Each test serves one emulator on 127.0.0.1 (any free port) inside `serve`, which stops it when
the test ends. Timings are real but short (a few tenths of a second); tolerances leave room for
a busy machine on the late side only, since a request can never finish early.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import numpy as np
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from simulator.live.base import is_loopback_host
from simulator.live.emulator import Emulator, EmulatorError, serve
from simulator.live.emulator_cli import main, service_spec
from simulator.live.slots import SlotQueue
from simulator.model import ReplicaModel
from simulator.profiles import Arrivals
from simulator.service import Fixed, TokenService
from simulator.startup import FixedStartup

LATE_S = 0.15  # how late a step may run on a loaded machine


def model(slots: int = 1, service_s: float = 0.2, **options: Any) -> ReplicaModel:
    return ReplicaModel(slots, Fixed(service_s), FixedStartup(0.0), **options)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(session: aiohttp.ClientSession, url: str) -> Samples:
    async with session.get(f"{url}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The one sample named `name` whose labels include `labels`."""
    found = [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls]
    assert len(found) == 1, f"{name}{labels}: {len(found)} samples"
    return found[0]


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def until(check: Callable[[], Any], *, timeout_s: float = 3.0) -> None:
    """Poll an async check until it returns True (bounded)."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.mark.asyncio
async def test_one_slot_queues_the_second_of_two_simultaneous_requests(
    session: aiohttp.ClientSession,
) -> None:
    emulator = Emulator(model(), model_name="m", startup_s=0.0)
    async with serve(emulator) as served:
        await until(lambda: _ready(session, served.url))
        began = time.monotonic()

        async def infer() -> tuple[float, dict[str, Any]]:
            async with session.post(f"{served.url}/v1/infer", json={}) as response:
                assert response.status == 200
                return time.monotonic() - began, await response.json()

        both = asyncio.gather(infer(), infer())
        # 0.1 s in: one request holds the only slot, the other waits for it
        await asyncio.sleep(0.1)
        during = await scrape(session, served.url)
        (first_s, first), (second_s, second) = sorted(await both, key=lambda r: r[0])
        after = await scrape(session, served.url)

    assert 0.2 <= first_s < 0.2 + LATE_S
    assert 0.4 <= second_s < 0.4 + LATE_S
    assert first["queue_s"] < 0.05 and 0.19 < second["queue_s"] < 0.2 + LATE_S
    assert first["service_s"] == second["service_s"] == 0.2

    assert value(during, "vllm:num_requests_running", model_name="m", engine="0") == 1
    assert value(during, "vllm:num_requests_waiting", model_name="m") == 1
    assert value(after, "vllm:num_requests_running", model_name="m") == 0
    assert value(after, "vllm:num_requests_waiting", model_name="m") == 0
    e2e = "vllm:e2e_request_latency_seconds"
    assert value(after, f"{e2e}_count", model_name="m") == 2
    assert value(after, f"{e2e}_sum", model_name="m") == pytest.approx(
        first["latency_s"] + second["latency_s"]
    )
    # vLLM's buckets: 0.2 s falls in le=0.3, 0.4 s in le=0.5
    assert value(after, f"{e2e}_bucket", le="0.3") == 1
    assert value(after, f"{e2e}_bucket", le="0.5") == 2
    queued = value(after, "vllm:request_queue_time_seconds_sum", model_name="m")
    assert queued == pytest.approx(first["queue_s"] + second["queue_s"])
    success = value(after, "vllm:request_success_total", model_name="m", finished_reason="stop")
    assert success == 2


async def _ready(session: aiohttp.ClientSession, url: str) -> bool:
    async with session.get(f"{url}/readyz") as response:
        return response.status == 200


@pytest.mark.asyncio
async def test_readyz_flips_after_the_startup_delay_and_infer_waits_for_it(
    session: aiohttp.ClientSession,
) -> None:
    emulator = Emulator(model(service_s=0.0), startup_s=0.3)
    async with serve(emulator) as served:
        began = time.monotonic()
        # still loading the model: alive, not ready, and requests are refused
        async with session.get(f"{served.url}/healthz") as response:
            assert response.status == 200
        assert not await _ready(session, served.url)
        async with session.post(f"{served.url}/generate") as response:
            assert response.status == 503
            assert (await response.json())["error"] == "starting"
        await until(lambda: _ready(session, served.url))
        assert time.monotonic() - began >= 0.3
        async with session.post(f"{served.url}/generate") as response:
            assert response.status == 200
        refused = await scrape(session, served.url)
    assert value(refused, "replicast_emulator_rejected_total", reason="starting") == 1


@pytest.mark.asyncio
async def test_token_counts_in_the_body_set_the_service_time(
    session: aiohttp.ClientSession,
) -> None:
    tokens = TokenService.for_perf("a100-tp4-llama2-70b", batch_size=1)
    replica = ReplicaModel(4, tokens, FixedStartup(0.0))
    # 200-token prompt, 3 output tokens: prefill + 2 decode steps, about 0.18 s
    expected_s = float(
        tokens.draw(
            Arrivals(0, 1, np.zeros(1), np.array([200]), np.array([3])),
            np.random.default_rng(0),
        )[0]
    )
    emulator = Emulator(replica, startup_s=0.0, model_name="llama")
    async with serve(emulator) as served:
        await until(lambda: _ready(session, served.url))
        body = {"input_tokens": 200, "output_tokens": 3}
        began = time.monotonic()
        async with session.post(f"{served.url}/v1/infer", json=body) as response:
            answer = await response.json()
        took_s = time.monotonic() - began
        # a token model cannot time a request without its tokens: 400 and what to send
        async with session.post(f"{served.url}/v1/infer", json={}) as response:
            assert response.status == 400
            assert "input_tokens" in (await response.json())["message"]
        async with session.post(f"{served.url}/v1/infer", json={"input_tokens": -1}) as response:
            assert response.status == 400
        samples = await scrape(session, served.url)

    assert answer["service_s"] == pytest.approx(expected_s)
    assert expected_s <= took_s < expected_s + LATE_S
    assert value(samples, "vllm:prompt_tokens_total", model_name="llama") == 200
    assert value(samples, "vllm:generation_tokens_total", model_name="llama") == 3


@pytest.mark.asyncio
async def test_queue_limit_refuses_and_queue_timeout_drops(session: aiohttp.ClientSession) -> None:
    # one slot busy for 0.3 s, at most one queued: the third simultaneous request gets 429
    emulator = Emulator(model(service_s=0.3, queue_limit=1, timeout_s=0.1), startup_s=0.0)
    async with serve(emulator) as served:
        await until(lambda: _ready(session, served.url))

        async def status() -> int:
            async with session.post(f"{served.url}/v1/infer") as response:
                return response.status

        first = asyncio.ensure_future(status())
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(status())
        await asyncio.sleep(0.02)
        third = await status()
        # the queued one gives up 0.1 s after arriving, long before the slot frees
        assert third == 429
        assert await second == 503
        assert await first == 200
        samples = await scrape(session, served.url)
    assert value(samples, "replicast_emulator_rejected_total", reason="queue_full") == 1
    assert value(samples, "replicast_emulator_rejected_total", reason="timeout") == 1
    assert value(samples, "vllm:num_requests_waiting") == 0


@pytest.mark.asyncio
async def test_slots_are_served_first_come_first_served() -> None:
    queue = SlotQueue(1)
    order: list[int] = []
    await queue.acquire()

    async def take(i: int) -> None:
        await queue.acquire()
        order.append(i)
        queue.release()

    waiters = [asyncio.ensure_future(take(i)) for i in range(5)]
    await asyncio.sleep(0)
    assert queue.waiting == 5
    waiters[2].cancel()  # a client that gives up leaves the line
    await asyncio.sleep(0)
    queue.release()
    await asyncio.gather(*waiters, return_exceptions=True)
    assert order == [0, 1, 3, 4]
    assert (queue.running, queue.waiting) == (0, 0)


def test_only_loopback_hosts_are_served() -> None:
    assert is_loopback_host("127.0.0.1") and is_loopback_host("127.3.2.1")
    assert is_loopback_host("::1") and is_loopback_host("[::1]") and is_loopback_host("LocalHost")
    assert not is_loopback_host("0.0.0.0") and not is_loopback_host("10.0.0.1")
    assert not is_loopback_host("example.com")


def test_command_line_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--host", "0.0.0.0"]) == 2
    assert main(["--service", "poisson:2"]) == 2
    assert main(["--slots", "0"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "emulator: --host 0.0.0.0: the emulator listens on loopback only"
        " (127.0.0.1, ::1, localhost)",
        "emulator: --service poisson:2: use one of fixed:SECONDS, exponential:MEAN_S,"
        " lognormal:MEAN_S:CV, gamma:MEAN_S:CV, llm_tokens:PERF[:BATCH]",
        "emulator: replica model: slots_per_replica: must be >= 1 (got 0)",
    ]


def test_service_forms_become_replica_model_specs() -> None:
    assert service_spec("exponential:2.0") == {"kind": "exponential", "mean_s": 2.0}
    assert service_spec("gamma:1:0.5") == {"kind": "gamma", "mean_s": 1.0, "cv": 0.5}
    assert service_spec("llm_tokens:a100-tp4-llama2-70b:8") == {
        "kind": "llm_tokens", "perf": "a100-tp4-llama2-70b", "batch_size": 8,
    }  # fmt: skip
    with pytest.raises(EmulatorError, match="--service fixed:x"):
        service_spec("fixed:x")


@pytest.mark.asyncio
async def test_time_scale_runs_the_model_faster_with_buckets_to_match(
    session: aiohttp.ClientSession,
) -> None:
    # the sandbox's time compression: a 1 s service and a 0.5 s startup at m = 5 take 0.2 s
    # and 0.1 s, and a 0.2 s latency lands in the bucket a 1 s one would (le="1.0" / 5)
    emulator = Emulator(model(service_s=1.0), startup_s=0.5, time_scale=5.0)
    assert emulator.startup_s == pytest.approx(0.1)
    async with serve(emulator) as served:
        await until(lambda: _ready(session, served.url))
        began = time.monotonic()
        async with session.post(f"{served.url}/v1/infer") as response:
            answer = await response.json()
        took_s = time.monotonic() - began
        samples = await scrape(session, served.url)
    assert answer["service_s"] == pytest.approx(0.2)
    assert 0.2 <= took_s < 0.2 + LATE_S
    name = "vllm:e2e_request_latency_seconds_bucket"
    assert value(samples, name, le="0.2") == 0  # 1.0 / 5: the bucket of a 1 s latency
    assert value(samples, name, le="0.3") == 1  # 1.5 / 5
    with pytest.raises(EmulatorError, match="time_scale"):
        Emulator(model(), time_scale=0.0)
