"""The controller's HTTP surface over real HTTP on 127.0.0.1, with the loop running inside it.

One target, `web`, on an in-memory actuator (1 replica to start); the stub source says 8
requests are in flight, so the first tick scales to 4 (HPA, 2 per replica). The clock only
moves when a test moves it, so the loop ticks exactly once unless told otherwise; the source
holds the first read until a test opens its gate (to see /readyz before the first tick).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from controller.actuators.base import WorkloadState
from controller.app import METRIC_NAMES, create_app
from controller.config import TargetConfig
from controller.loop import ControlLoop
from controller.prometheus import SourceStats
from controller.signals import TargetQueries
from policies import DecisionRecord

pytestmark = pytest.mark.asyncio

T0 = 1_700_000_000.0
WEB = TargetConfig.model_validate(
    {
        "name": "web",
        "scale_target": {"kind": "Deployment", "namespace": "default", "name": "web"},
        "signals": {"queries": {"in_flight": "sum by ({group_by}) (running{{selector}})"}},
        "policy": {
            "policy": "hpa",
            "metric": "in_flight",
            "target_per_replica": 2,
            "max_replicas": 10,
        },
        "shadow": [{"policy": "keda", "metric": "in_flight", "threshold": 1, "max_replicas": 10}],
    }
)


class ManualClock:
    """Unix seconds that move only when a test calls `advance`; `sleep` waits for that."""

    def __init__(self) -> None:
        self.now_s = T0

    def now(self) -> float:
        return self.now_s

    def monotonic(self) -> float:
        return self.now_s

    async def sleep(self, delay_s: float) -> None:
        until = self.now_s + delay_s
        while self.now_s < until:
            await asyncio.sleep(0.005)

    def advance(self, delay_s: float) -> None:
        self.now_s += delay_s


class GatedSource:
    """8 requests in flight, once `gate` is open."""

    def __init__(self) -> None:
        self.stats = SourceStats()
        self.gate = asyncio.Event()

    async def read(
        self, targets: Sequence[TargetQueries], now_s: float
    ) -> dict[str, dict[str, float | None]]:
        await self.gate.wait()
        self.stats.queries_total += 1
        return {t.target: {"in_flight": 8.0} for t in targets}


class MemoryActuator:
    def __init__(self) -> None:
        self.replicas = 1

    async def current(self) -> WorkloadState:
        return WorkloadState("memory web", self.replicas, self.replicas, 0)

    async def scale(self, replicas: int, *, reason: str) -> None:
        self.replicas = replicas


@pytest.fixture
def source() -> GatedSource:
    return GatedSource()


@pytest.fixture
def loop(source: GatedSource) -> ControlLoop:
    return ControlLoop(
        [WEB], source=source, actuators={"web": MemoryActuator()}, clock=ManualClock()
    )


async def serve(app: web.Application) -> TestClient[web.Request, web.Application]:
    client = TestClient(TestServer(app, host="127.0.0.1", port=0))
    await client.start_server()
    return client


@pytest_asyncio.fixture
async def client(
    loop: ControlLoop, source: GatedSource
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    client = await serve(create_app(loop, admin=True))
    yield client
    source.gate.set()  # a round in progress always finishes, so let it
    await client.close()  # cleanup_ctx: the loop stops


async def first_tick(client: TestClient[web.Request, web.Application], source: GatedSource) -> None:
    source.gate.set()
    async with asyncio.timeout(5):
        while (await client.get("/readyz")).status != 200:
            await asyncio.sleep(0.01)


def scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} for every sample of the exposition."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_healthz_is_200_and_readyz_waits_for_the_first_tick(
    client: TestClient[web.Request, web.Application], source: GatedSource
) -> None:
    assert (await client.get("/healthz")).status == 200
    # The first read has not answered yet: not ready, and /readyz says what it waits for.
    response = await client.get("/readyz")
    assert response.status == 503
    assert await response.text() == "waiting for a first tick: web\n"
    await first_tick(client, source)
    assert (await client.get("/readyz")).status == 200
    assert (await client.get("/healthz")).status == 200


async def test_metrics_parse_and_carry_the_per_target_gauges(
    client: TestClient[web.Request, web.Application], source: GatedSource
) -> None:
    await first_tick(client, source)
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples = scrape(await response.text())
    web_ = (("target", "web"),)
    assert samples["replicast_desired_replicas", web_] == 4
    assert samples["replicast_current_replicas", web_] == 1  # read before the scale
    assert samples["replicast_ready_replicas", web_] == 1
    assert samples["replicast_starting_replicas", web_] == 0
    assert samples["replicast_max_replicas", web_] == 10
    assert samples["replicast_shadow_desired_replicas", (("shadow", "keda"), *web_)] == 5
    assert samples["replicast_decisions_total", (("action", "scaled"), *web_)] == 1
    assert samples["replicast_errors_total", (("kind", "internal"), *web_)] == 0
    assert samples["replicast_condition", (("target", "web"), ("type", "MetricsMissing"))] == 0
    assert samples["replicast_signal_missing", (("signal", "in_flight"), *web_)] == 0
    assert samples["replicast_tick_duration_seconds_count", web_] == 1
    assert samples["replicast_prometheus_queries_per_round", ()] == 1
    assert samples["replicast_leader", ()] == 1
    assert samples["replicast_dry_run", ()] == 0
    # The reason is a label with a bounded set of values: HPA's own reason is free text
    # ("in_flight above target"), so the label is its direction.
    status = await (await client.get("/status")).json()
    assert status["targets"]["web"]["records"][0]["record"]["reason"] == "in_flight above target"
    assert samples["replicast_decision_reason", (("reason", "PolicyScaleUp"), *web_)] == 1
    # Every family the module lists is exported, and it lists every one it exports
    # (counters as <name>_total; prometheus-client adds <histogram>_created on its own).
    names = {name for name, _ in samples}
    assert set(METRIC_NAMES) <= names | {n.removesuffix("_count") for n in names}
    families = text_string_to_metric_families(await response.text())
    exported = {f.name + ("_total" if f.type == "counter" else "") for f in families}
    assert {n for n in exported if not n.endswith("_created")} == set(METRIC_NAMES)


async def test_status_serves_decision_records_conditions_and_modes(
    client: TestClient[web.Request, web.Application], source: GatedSource, loop: ControlLoop
) -> None:
    await first_tick(client, source)
    status: dict[str, Any] = await (await client.get("/status")).json()
    assert (status["leader"], status["leader_election"], status["dry_run"]) == (True, False, False)
    web_ = status["targets"]["web"]
    [entry] = web_["records"]
    assert entry["decision_id"] == "web/1700000000.000/1"
    assert entry["action"] == "scaled"
    record = DecisionRecord.from_dict(entry["record"])
    last = loop.targets["web"].last
    assert last is not None and record == last.record
    assert record.replicas == 4 and record.inputs["in_flight"] == 8.0
    assert entry["shadow"]["keda"]["applies"] is False
    # A first start knows no history: scale-down waits one window, and says so.
    [gap] = web_["conditions"]
    assert (gap["type"], gap["message"]) == (
        "HistoryGap", "HistoryGap: no history to continue from; scale-down held for 300 s"
    )  # fmt: skip
    assert web_["workload"]["replicas"] == 1


async def test_status_is_strict_json_even_with_infinite_numbers(
    client: TestClient[web.Request, web.Application], source: GatedSource, loop: ControlLoop
) -> None:
    await first_tick(client, source)
    web_ = loop.targets["web"]
    assert web_.last is not None and web_.last.record is not None
    # A policy may explain itself with an infinite number (an unreachable SLO's wait).
    record = replace(web_.last.record, details={"predicted_wait_s": math.inf})
    web_.history.append(replace(web_.last, record=record))

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    status = json.loads(await (await client.get("/status")).text(), parse_constant=refuse)
    assert status["targets"]["web"]["records"][0]["record"]["details"] == {
        "predicted_wait_s": "inf"
    }


async def test_post_dry_run_switches_dry_run_at_runtime(
    client: TestClient[web.Request, web.Application], source: GatedSource, loop: ControlLoop
) -> None:
    response = await client.post("/dry-run", json={"dry_run": True})
    assert (response.status, await response.json()) == (200, {"dry_run": True})
    assert loop.dry_run
    await first_tick(client, source)
    status = await (await client.get("/status")).json()
    assert status["dry_run"] is True
    assert status["targets"]["web"]["records"][0]["action"] == "dry_run"
    assert "replicast_dry_run 1.0" in await (await client.get("/metrics")).text()
    # A body that is not {"dry_run": bool} changes nothing.
    response = await client.post("/dry-run", json={"dry_run": "no"})
    assert response.status == 400
    assert loop.dry_run
    response = await client.post("/dry-run", json={"dry_run": False})
    assert (await response.json()) == {"dry_run": False}
    assert not loop.dry_run


async def test_without_admin_there_is_no_dry_run_switch(source: GatedSource) -> None:
    loop = ControlLoop(
        [WEB], source=source, actuators={"web": MemoryActuator()}, clock=ManualClock()
    )
    client = await serve(create_app(loop))
    try:
        response = await client.post("/dry-run", json={"dry_run": True})
        assert response.status in (404, 405)
        assert not loop.dry_run
    finally:
        source.gate.set()
        await client.close()
