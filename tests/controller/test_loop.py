"""The control loop against the fake Kubernetes API server, with a fake clock.

Targets are Deployments in `default` on `FakeKube` (over real HTTP on 127.0.0.1, enforcing
deploy/rbac.yaml), scaled by the real `KubernetesActuator`. Signals come from a stub source
(what Prometheus would say, set per test), except in the last test, which reads a real
Prometheus. The clock starts at 2023-11-14T22:13:20Z and moves only when a test moves it.

The stories' pieces (targets, the stub source, failing actuators) are in
tests/controller/stories.py.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from kubernetes_asyncio.client import ApiClient

from controller.actuators.kubernetes import KubernetesActuator, WorkloadRef
from controller.app import create_app
from controller.config import PrometheusConfig, TargetConfig
from controller.loop import (
    Action,
    Cond,
    ControlLoop,
    LoopSettings,
    SoleInstance,
)
from controller.prometheus import PrometheusSource
from controller.run import install_signal_handlers
from controller.state_store import MemoryStore
from policies import Observation, autoscaler
from tests.controller.conftest import SETTLE_S, RunningPrometheus
from tests.controller.fake_kube import FakeClock, FakeKube, serving
from tests.controller.stories import (
    HPA,
    BlockingActuator,
    BrokenActuator,
    BuggyActuator,
    StubSource,
    configmaps,
    control_loop,
    deployment,
    elector,
    kube_actuator,
    only,
    replicas,
    saved,
    scale_patches,
    target,
)
from tests.controller.virtual_clock import VirtualClock

pytestmark = pytest.mark.asyncio


# --- scaling ---------------------------------------------------------------------------------


async def test_a_load_rise_scales_the_deployment_up_through_scale(
    kube: tuple[FakeKube, ApiClient], fake: FakeKube, clock: FakeClock, source: StubSource
) -> None:
    await deployment(fake, "web")
    loop = control_loop(kube, clock, source, [target("web")])
    # 2 in flight on 1 replica: at target, hold.
    source.values["web"] = {"in_flight": 2.0, "queue_depth": 0.0}
    tick = only(await loop.round(), "web")
    assert (tick.action, tick.applied_replicas) == (Action.HOLD, 1)
    assert scale_patches(fake) == []
    # 15 s later the load rises to 8 in flight: HPA wants 4.
    clock.advance(15)
    source.values["web"]["in_flight"] = 8.0
    tick = only(await loop.round(), "web")
    assert tick.action == Action.SCALED
    assert tick.record is not None and tick.record.replicas == 4
    assert replicas(fake, "web") == 4
    [patch] = scale_patches(fake)
    assert patch.url.path == "/apis/apps/v1/namespaces/default/deployments/web/scale"
    assert patch.data["spec"] == {"replicas": 4}
    # The decision id names target, time and sequence; the status keeps the records.
    assert tick.decision_id == "web/1700000015.000/2"
    records = loop.status()["targets"]["web"]["records"]
    assert [r["decision_id"] for r in records] == ["web/1700000015.000/2", "web/1700000000.000/1"]
    # A target is not ticked before its interval has passed.
    clock.advance(5)
    assert (await loop.round()).outcomes == ()


async def test_a_metrics_outage_never_scales_down(
    kube: tuple[FakeKube, ApiClient], fake: FakeKube, clock: FakeClock, source: StubSource
) -> None:
    await deployment(fake, "web", replicas=4)
    loop = control_loop(kube, clock, source, [target("web", interval_s=60)])
    source.values["web"] = {"in_flight": 8.0, "queue_depth": 0.0}
    assert only(await loop.round(), "web").action == Action.HOLD
    # Prometheus goes away for ten minutes: every signal is None, never 0.
    source.down = True
    for _ in range(10):
        clock.advance(60)
        tick = only(await loop.round(), "web")
        assert tick.action == Action.HOLD and tick.record is not None
        assert tick.record.inputs["in_flight"] is None
    assert scale_patches(fake) == []
    condition = loop.targets["web"].conditions[Cond.METRICS_MISSING]
    assert condition.message.startswith(
        "in_flight (connection): missing or stale, so no scale-down"
    )
    assert loop.status()["targets"]["web"]["missing_signals"] == {
        "in_flight": "connection",
        "queue_depth": "connection",
    }
    # It comes back with no load: the condition clears, and after HPA's 5-minute
    # stabilization window the Deployment shrinks (the outage was what held it).
    source.down = False
    source.values["web"] = {"in_flight": 0.0, "queue_depth": 0.0}
    for _ in range(6):
        clock.advance(60)
        await loop.round()
    assert Cond.METRICS_MISSING not in loop.targets["web"].conditions
    assert replicas(fake, "web") == 1


async def test_dry_run_records_without_patching_until_switched_off(
    kube: tuple[FakeKube, ApiClient], fake: FakeKube, clock: FakeClock, source: StubSource
) -> None:
    await deployment(fake, "web")
    await deployment(fake, "api")
    # `web` is in dry run in the config; the whole loop starts in dry run too.
    loop = control_loop(
        kube, clock, source, [target("web", dry_run=True), target("api")], dry_run=True
    )
    source.values = {"web": {"in_flight": 8.0}, "api": {"in_flight": 8.0}}
    result = await loop.round()
    for name in ("web", "api"):
        tick = only(result, name)
        assert (tick.action, tick.applied_replicas) == (Action.DRY_RUN, 4)
        assert tick.record is not None and not tick.record.applies
    assert scale_patches(fake) == []
    assert loop.targets["api"].conditions[Cond.DRY_RUN].reason == "ControllerDryRun"
    # Switched off at runtime: api acts at its next tick; web stays in its configured dry run.
    loop.set_dry_run(False)
    clock.advance(15)
    result = await loop.round()
    assert only(result, "api").action == Action.SCALED
    assert only(result, "web").action == Action.DRY_RUN
    assert (replicas(fake, "api"), replicas(fake, "web")) == (4, 1)
    assert loop.targets["web"].conditions[Cond.DRY_RUN].reason == "ConfigDryRun"
    assert Cond.DRY_RUN not in loop.targets["api"].conditions


async def test_shadow_policies_decide_on_the_same_observation_but_never_act(
    kube: tuple[FakeKube, ApiClient], fake: FakeKube, clock: FakeClock, source: StubSource
) -> None:
    await deployment(fake, "web")
    shadows = [
        {**HPA, "target_per_replica": 1},  # twice as eager: 8 replicas (rate limit: 5)
        {"policy": "keda", "metric": "queue_depth", "threshold": 1, "max_replicas": 10},
    ]
    loop = control_loop(kube, clock, source, [target("web", shadow=shadows)])
    source.values["web"] = {"in_flight": 8.0, "queue_depth": 3.0}
    tick = only(await loop.round(), "web")
    assert tick.record is not None and tick.record.replicas == 4
    decided = {name: (r.replicas, r.applies) for name, r in tick.shadows}
    assert decided == {"hpa": (5, False), "keda": (3, False)}
    # Each shadow saw the very Observation the acting policy saw.
    assert all(r.inputs == tick.record.inputs for _, r in tick.shadows)
    # Only the acting policy's count reached the Deployment.
    assert [p.data["spec"]["replicas"] for p in scale_patches(fake)] == [4]
    status = loop.status()["targets"]["web"]
    assert status["shadow"] == ["hpa", "keda"]
    assert status["records"][0]["shadow"]["keda"]["replicas"] == 3


async def test_a_target_scaled_by_an_hpa_is_refused_with_a_condition(
    kube: tuple[FakeKube, ApiClient], fake: FakeKube, clock: FakeClock, source: StubSource
) -> None:
    await deployment(fake, "web")
    fake.add_hpa("web-hpa", target="web")
    loop = control_loop(kube, clock, source, [target("web")])
    source.values["web"] = {"in_flight": 8.0}
    tick = only(await loop.round(), "web")
    assert (tick.action, tick.error_kind) == (Action.REFUSED, "scale_refused")
    assert scale_patches(fake) == []
    refused = loop.targets["web"].conditions[Cond.SCALE_REFUSED]
    assert refused.reason == "Conflict"
    assert refused.message == (
        "deployment default/web: not scaled 1 -> 4: also scaled by HorizontalPodAutoscaler "
        "default/web-hpa; delete it, or drop this target from replicast"
    )
    assert "Conflict" in loop.targets["web"].conditions
    assert loop.targets["web"].errors["scale_refused"] == 1


async def test_pods_that_cannot_schedule_stop_scale_up(
    kube: tuple[FakeKube, ApiClient], fake: FakeKube, clock: FakeClock, source: StubSource
) -> None:
    await deployment(fake, "web", replicas=2)
    loop = control_loop(kube, clock, source, [target("web")])
    # The cluster is out of GPUs: scaled to 4, two pods stay Pending for over 5 minutes.
    fake.unschedulable = True
    source.values["web"] = {"in_flight": 8.0}
    assert only(await loop.round(), "web").action == Action.SCALED
    await fake.settle()
    clock.advance(301)
    source.values["web"] = {"in_flight": 16.0}  # wants 8
    tick = only(await loop.round(), "web")
    assert tick.action == Action.REFUSED
    assert loop.targets["web"].conditions[Cond.SCALE_REFUSED].reason == "CapacityExhausted"
    assert replicas(fake, "web") == 4


async def test_a_refused_scale_does_not_count_against_the_next_one(
    kube: tuple[FakeKube, ApiClient], fake: FakeKube, clock: FakeClock, source: StubSource
) -> None:
    await deployment(fake, "web")
    fake.annotate("web", {"replicast.io/paused": "true"})
    loop = control_loop(kube, clock, source, [target("web", interval_s=5)])
    source.values["web"] = {"in_flight": 8.0}  # HPA wants 4: +3 within its 15 s period
    assert only(await loop.round(), "web").action == Action.REFUSED
    # Unpaused 5 s later, within the period: the refused +3 never happened, so HPA's rate
    # limit still allows +4 (HPA, too, records only the scales it made).
    fake.annotate("web", {"replicast.io/paused": None})
    clock.advance(5)
    tick = only(await loop.round(), "web")
    assert (tick.action, tick.applied_replicas) == (Action.SCALED, 4)
    assert replicas(fake, "web") == 4


async def test_max_change_per_tick_caps_each_step(
    kube: tuple[FakeKube, ApiClient], fake: FakeKube, clock: FakeClock, source: StubSource
) -> None:
    await deployment(fake, "web")
    settings = LoopSettings(max_change_per_tick=2)
    loop = control_loop(kube, clock, source, [target("web")], settings=settings)
    source.values["web"] = {"in_flight": 40.0}  # HPA: 20, clamped to 10, rate-limited to 5
    tick = only(await loop.round(), "web")
    assert tick.record is not None and tick.record.replicas == 5
    assert (tick.action, tick.applied_replicas, tick.capped) == (Action.SCALED, 3, True)
    assert replicas(fake, "web") == 3


async def test_one_broken_target_never_stops_the_others(
    kube: tuple[FakeKube, ApiClient], fake: FakeKube, clock: FakeClock, source: StubSource
) -> None:
    await deployment(fake, "web")
    broken = BrokenActuator()
    targets = [target("web"), target("api"), target("bug")]
    loop = control_loop(
        kube, clock, source, targets, actuators={"api": broken, "bug": BuggyActuator()}
    )
    source.values = {name: {"in_flight": 8.0} for name in ("web", "api", "bug")}
    result = await loop.round()
    assert only(result, "web").action == Action.SCALED
    api = only(result, "api")
    assert (api.action, api.error_kind) == (Action.FAILED, "actuator_permanent")
    assert only(result, "bug").error_kind == "internal"
    failed = loop.targets["api"].conditions[Cond.ACTUATOR_FAILED]
    assert failed.message.endswith(
        "(deploy/rbac.yaml); not scaling this target; trying again in 300 s "
        "(permanent_error_retry_s), failure 1"
    )
    assert Cond.TICK_FAILED in loop.targets["bug"].conditions
    # Next interval: api still decides but is no longer scaled; web goes on.
    clock.advance(15)
    source.values["web"]["in_flight"] = 16.0
    result = await loop.round()
    assert only(result, "api").action == Action.HALTED
    assert broken.scales == 1
    assert only(result, "web").action == Action.SCALED
    assert replicas(fake, "web") == 8
    # Ready: web can be read and scaled (api and bug cannot: their conditions say why).
    assert loop.ready is True
    assert (loop.targets["api"].healthy, loop.targets["bug"].healthy) == (False, False)
    assert dict(loop.targets["bug"].errors) == {"internal": 2}


async def test_temporary_errors_back_off_per_settings(
    kube: tuple[FakeKube, ApiClient], fake: FakeKube, clock: FakeClock, source: StubSource
) -> None:
    await deployment(fake, "web")
    settings = LoopSettings(retry_delays_s=(20.0, 40.0))
    loop = control_loop(kube, clock, source, [target("web")], settings=settings)
    source.values["web"] = {"in_flight": 8.0}
    # The API server fails every patch: the actuator retries 1, 2, 4 s, then gives up.
    fault = fake.inject(fake["patch"], status=500, times=1000)
    assert only(await loop.round(), "web").error_kind == "actuator_temporary"
    failed_at = clock.monotonic()
    retrying = loop.targets["web"].conditions[Cond.ACTUATOR_RETRYING]
    assert "failure 1 in a row, next try in 20 s" in retrying.message
    assert loop.targets["web"].next_due_s == failed_at + 20
    clock.advance(20)
    await loop.round()
    assert loop.targets["web"].next_due_s == clock.monotonic() + 40
    # The server recovers: the next try scales and the condition clears.
    fault.times = 0
    clock.advance(40)
    assert only(await loop.round(), "web").action == Action.SCALED
    assert Cond.ACTUATOR_RETRYING not in loop.targets["web"].conditions
    assert loop.targets["web"].errors["actuator_temporary"] == 2


# --- leadership and state --------------------------------------------------------------------


async def test_a_new_leader_continues_from_the_state_it_finds(
    kube: tuple[FakeKube, ApiClient], fake: FakeKube, clock: FakeClock, source: StubSource
) -> None:
    await deployment(fake, "web")
    a, b = elector(kube, clock, "a"), elector(kube, clock, "b")
    assert await a.step() is True
    assert await b.step() is False
    first = control_loop(
        kube, clock, source, [target("web", interval_s=10)], leadership=a,
        store=configmaps(kube, clock, "a"),
    )  # fmt: skip
    second = control_loop(
        kube, clock, source, [target("web", interval_s=10)], leadership=b,
        store=configmaps(kube, clock, "b"),
    )  # fmt: skip
    # 40 in flight: the leader scales 1 -> 5 (HPA's scale-up limit); the follower only decides.
    source.values["web"] = {"in_flight": 40.0}
    follower = only(await second.round(), "web")
    assert (follower.action, follower.applied_replicas) == (Action.NOT_LEADER, 5)
    assert follower.record is not None and follower.record.outcome == "refused"
    assert only(await first.round(), "web").action == Action.SCALED
    assert second.targets["web"].conditions[Cond.NOT_LEADER].reason == "Follower"
    assert replicas(fake, "web") == 5
    await fake.settle()
    # The state went to the state ConfigMap after the tick.
    left_behind = first.targets["web"].autoscaler.state
    assert saved(fake, "web")["policy"] == left_behind
    # The leader stops: a last save, then it releases the Lease; b takes over at once.
    clock.advance(10)
    await first.save_state(force=True)
    await a.release()
    assert await b.step() is True
    tick = only(await second.round(), "web")
    assert tick.record is not None
    # Its first decision is what the first leader would have decided on the same inputs.
    obs = Observation.from_dict(tick.record.inputs)
    would_have = autoscaler(HPA, state=left_behind).tick(obs)
    assert (tick.record.replicas, tick.record.reason) == (would_have.replicas, would_have.reason)
    assert tick.record.replicas == 5  # still within the 15 s scale-up period of the first
    assert autoscaler(HPA).tick(obs).replicas == 10  # a fresh start would have doubled it
    assert tick.action == Action.HOLD


async def test_sigterm_mid_tick_finishes_the_scale_call_then_releases_the_lease(
    tmp_path: Path, source: StubSource
) -> None:
    # Virtual time: the elector, the target's task and the state writer all sleep on it.
    clock = VirtualClock(participants=3)
    async with serving(clock, tmp_path) as kube:  # type: ignore[arg-type]
        fake = kube[0]
        await deployment(fake, "web")
        blocking = BlockingActuator(kube_actuator(kube, clock, "web"))  # type: ignore[arg-type]
        a = elector(kube, clock, "a")  # type: ignore[arg-type]
        loop = control_loop(
            kube, clock, source, [target("web")], actuators={"web": blocking}, leadership=a,  # type: ignore[arg-type]
            store=configmaps(kube, clock, "a"),  # type: ignore[arg-type]
        )  # fmt: skip
        source.values["web"] = {"in_flight": 8.0}
        stop = asyncio.Event()
        remove_handlers = install_signal_handlers(stop)
        runner = web.AppRunner(create_app(loop, elector=a), handle_signals=False)
        try:
            await runner.setup()  # the elector's first step, then the loop's task
            async with asyncio.timeout(5):
                await blocking.entered.wait()  # inside the scale call
            signal.raise_signal(signal.SIGTERM)
            async with asyncio.timeout(5):
                await stop.wait()
            stopping = asyncio.create_task(runner.cleanup())
            await asyncio.sleep(0.1)
            # Still waiting for the scale call: nothing cut, the Lease still held.
            assert not stopping.done()
            assert (fake.lease("replicast") or {})["spec"]["holderIdentity"] == "a"
            blocking.release.set()
            async with asyncio.timeout(5):
                await stopping
        finally:
            remove_handlers()
            blocking.release.set()
            await runner.cleanup()
            clock.close()
        assert replicas(fake, "web") == 4  # the scale call finished
        lease = fake.lease("replicast")
        assert lease is not None
        assert "holderIdentity" not in lease["spec"]  # released after the loop stopped
        assert saved(fake, "web")["policy"]["last_now_s"] == 1_700_000_000.0


async def test_cancelling_the_loop_still_lets_the_scale_call_finish(
    tmp_path: Path, source: StubSource
) -> None:
    clock = VirtualClock(participants=2)  # the target's task and the state writer
    async with serving(clock, tmp_path) as kube:  # type: ignore[arg-type]
        fake = kube[0]
        await deployment(fake, "web")
        blocking = BlockingActuator(kube_actuator(kube, clock, "web"))  # type: ignore[arg-type]
        loop = control_loop(kube, clock, source, [target("web")], actuators={"web": blocking})  # type: ignore[arg-type]
        source.values["web"] = {"in_flight": 8.0}
        running = asyncio.create_task(loop.run())
        try:
            async with asyncio.timeout(5):
                await blocking.entered.wait()
            running.cancel()  # e.g. the event loop shutting down
            await asyncio.sleep(0.05)
            assert not running.done()  # waits for the scale call
            blocking.release.set()
            with pytest.raises(asyncio.CancelledError):
                async with asyncio.timeout(5):
                    await running
        finally:
            clock.close()
        assert replicas(fake, "web") == 4


class Switchable(SoleInstance):
    """Leadership a test turns off and on."""

    def __init__(self) -> None:
        self.leader = True

    @property
    def is_leader(self) -> bool:
        return self.leader


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.loads = 0

    async def load(self, names: Sequence[str]) -> dict[str, dict[str, Any]]:
        self.loads += 1
        return await super().load(names)


def recommended_at(loop: ControlLoop) -> set[float]:
    """When the acting autoscaler of `web` recorded HPA recommendations (its guard history)."""
    return {r[0] for r in loop.targets["web"].autoscaler.state["guards"]["recommendations"]}


async def test_a_leadership_blip_keeps_the_newer_state_in_memory(
    kube: tuple[FakeKube, ApiClient], fake: FakeKube, clock: FakeClock, source: StubSource
) -> None:
    await deployment(fake, "web")
    leadership, store = Switchable(), CountingStore()
    loop = control_loop(kube, clock, source, [target("web")], leadership=leadership, store=store)
    source.values["web"] = {"in_flight": 2.0}
    await loop.round()  # takes over (loads the store) and decides
    clock.advance(15)
    await loop.round()
    assert store.loads == 1
    # Leadership lapses for one tick and comes back; nobody else wrote the state.
    leadership.leader = False
    clock.advance(15)
    assert only(await loop.round(), "web").action == Action.HOLD
    leadership.leader = True
    clock.advance(15)
    await loop.round()
    assert store.loads == 2
    # The loop kept its own history (it never stopped deciding), joined with what it saved:
    # no new hold (the one from the first start, with no history at all, still runs).
    assert {1_700_000_000.0, 1_700_000_015.0, 1_700_000_030.0} <= recommended_at(loop)
    assert loop.targets["web"].conditions[Cond.HISTORY_GAP].since_s == 1_700_000_000.0
    assert loop.targets["web"].hold_until_s == 1_700_000_300.0


# --- with a real Prometheus ------------------------------------------------------------------


async def test_targets_share_queries_to_a_real_prometheus_and_llama_scales(
    prometheus: RunningPrometheus, tmp_path: Path
) -> None:
    # Read where the fixture knows every scrape is in (SETTLE_S ago); time is fake from there.
    clock = FakeClock(start_s=time.time() - SETTLE_S)
    async with serving(clock, tmp_path) as kube:
        fake = kube[0]
        for name in ("llama", "mistral"):
            fake.add_workload(name, namespace="llm")
        await fake.settle()

        def vllm(name: str) -> TargetConfig:
            return TargetConfig.model_validate(
                {
                    "name": name,
                    "scale_target": {"kind": "Deployment", "namespace": "llm", "name": name},
                    "signals": {"preset": "vllm"},
                    "policy": HPA,
                }
            )

        async with aiohttp.ClientSession() as session:
            source = PrometheusSource(PrometheusConfig(url=prometheus.url), session=session)
            actuators = {
                n: KubernetesActuator(WorkloadRef("Deployment", "llm", n), api=kube[1], clock=clock)
                for n in ("llama", "mistral")
            }
            loop = ControlLoop(
                [vllm("llama"), vllm("mistral")], source=source, actuators=actuators, clock=clock
            )
            result = await loop.round()
        # 8 signals of the vllm preset: one query each, for both targets together.
        assert result.prometheus_queries == 8
        llama, mistral = only(result, "llama"), only(result, "mistral")
        # llama: 3 + 5 running on its replicas -> 8 in flight -> 4 replicas.
        assert llama.record is not None and llama.record.inputs["in_flight"] == 8.0
        assert (llama.action, fake.workload("llama", ns="llm")["spec"]["replicas"]) == (
            Action.SCALED,
            4,
        )
        # mistral: 2 running -> 1 replica is right.
        assert mistral.record is not None and mistral.record.inputs["in_flight"] == 2.0
        assert mistral.action == Action.HOLD
        assert loop.ready
