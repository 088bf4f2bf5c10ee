"""A task per target on a monotonic schedule: one slow target delays only itself, a wall-clock
step stalls nothing, and SIGTERM ends within its grace (issue 14, failures 2 and 3).

Stories on virtual time (tests/controller/virtual_clock.py): the clocks move only once every
long-lived task sleeps (a task per target and the state writer), so minutes pass in
milliseconds while real HTTP flows to the fake Kubernetes API on 127.0.0.1. Targets decide
every 2 s; "web" and "api" are Deployments in `default`; HPA on in_flight (2 per replica).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from kubernetes_asyncio.client import ApiClient

from controller.actuators.base import WorkloadState
from controller.actuators.kubernetes import (
    ClusterReads,
    KubernetesActuator,
    WorkloadRef,
    kubernetes_api,
)
from controller.clock import SystemClock
from controller.leader import LeaderElector, LeaderSettings
from controller.loop import Action, Cond, ControlLoop, LoopSettings
from tests.controller.fake_kube import DEPLOYMENTS, FakeClock, FakeKube, serving, write_kubeconfig
from tests.controller.stories import (
    StubSource,
    control_loop,
    deployment,
    kube_actuator,
    replicas,
    target,
)
from tests.controller.virtual_clock import VirtualClock

pytestmark = pytest.mark.asyncio

SCALE_PATH = "/apis/apps/v1/namespaces/default/deployments/{}/scale"


@pytest_asyncio.fixture
async def vclock() -> AsyncIterator[VirtualClock]:
    clock = VirtualClock(participants=3)  # two targets' tasks and the state writer
    yield clock
    clock.close()


@pytest_asyncio.fixture
async def vkube(vclock: VirtualClock, tmp_path: Path) -> AsyncIterator[tuple[FakeKube, ApiClient]]:
    async with serving(vclock, tmp_path) as served:  # type: ignore[arg-type]
        yield served


class Timed:
    """The real actuator, noting how old each decision is when its scale call is made."""

    def __init__(self, inner: KubernetesActuator, clock: VirtualClock) -> None:
        self.inner, self.clock = inner, clock
        self.ages_s: list[float] = []

    async def current(self) -> WorkloadState:
        return await self.inner.current()

    async def scale(self, replicas: int, *, reason: str) -> None:
        decided_s = float(reason.rsplit("/", 2)[-2])  # "... (web/1700000002.000/2)"
        self.ages_s.append(self.clock.now() - decided_s)
        await self.inner.scale(replicas, reason=reason)


def two_targets(
    vkube: tuple[FakeKube, ApiClient],
    vclock: VirtualClock,
    source: StubSource,
    actuators: dict[str, Any] | None = None,
    settings: LoopSettings | None = None,
) -> ControlLoop:
    return control_loop(
        vkube, vclock, source,  # type: ignore[arg-type]
        [target("web", interval_s=2), target("api", interval_s=2)],
        actuators=actuators, settings=settings or LoopSettings(),
    )  # fmt: skip


async def test_a_throttled_target_never_delays_a_healthy_one_nor_writes_a_stale_decision(
    vkube: tuple[FakeKube, ApiClient], vclock: VirtualClock, source: StubSource
) -> None:
    fake = vkube[0]
    await deployment(fake, "web")
    await deployment(fake, "api")
    # Every scale of api is throttled: 429 with Retry-After: 40.
    fake.inject(fake["patch"][SCALE_PATH.format("api")], status=429, retry_after_s=40, times=1000)
    api = Timed(kube_actuator(vkube, vclock, "api"), vclock)  # type: ignore[arg-type]
    loop = two_targets(vkube, vclock, source, {"api": api})
    source.values = {"web": {"in_flight": 2.0}, "api": {"in_flight": 8.0}}
    running = asyncio.create_task(loop.run())
    try:
        await vclock.run_for(40)
        web, api_t = loop.targets["web"], loop.targets["api"]
        # web decided every 2 s all along (about 20 decisions), whatever api went through.
        assert web.actions[Action.HOLD] >= 19
        # api tried, was told to wait 40 s, and did not wait inside its tick: the decision
        # would have been 40 s old. Its next tick comes after the server's delay instead.
        assert api_t.errors["actuator_temporary"] >= 1
        assert "next try in 40 s" in api_t.conditions[Cond.ACTUATOR_RETRYING].message
        assert all(age <= 2 for age in api.ages_s), api.ages_s
        # Once the API server stops throttling, api scales at its next try.
        fake._faults.clear()
        await vclock.run_for(45)
        assert replicas(fake, "api") == 4
        assert all(age <= 2 for age in api.ages_s), api.ages_s
    finally:
        loop.stop()
        vclock.release()
        await running


async def test_a_wall_clock_step_back_an_hour_stalls_nothing(
    vkube: tuple[FakeKube, ApiClient], vclock: VirtualClock, source: StubSource
) -> None:
    fake = vkube[0]
    await deployment(fake, "web")
    await deployment(fake, "api")
    loop = two_targets(vkube, vclock, source)
    source.values = {"web": {"in_flight": 2.0}, "api": {"in_flight": 2.0}}
    running = asyncio.create_task(loop.run())
    try:
        await vclock.run_for(10)
        before = loop.targets["web"].sequence
        vclock.step_wall(-3600)  # NTP steps the node's clock back an hour
        await vclock.run_for(20)
        # Ten more decisions in 20 s: the schedule is monotonic, the wall clock is data.
        assert loop.targets["web"].sequence - before >= 9
        jump = loop.targets["web"].conditions[Cond.CLOCK_JUMP]
        assert jump.message.startswith("the wall clock stepped back 3600 s: ClockJump")
        assert loop.clock_jumps == 2  # once per target
        last = loop.targets["web"].last
        assert last is not None and last.record is not None
        assert not last.record.reason.startswith("ClockWentBackwards")
        vclock.step_wall(3600)  # and forward again
        await vclock.run_for(10)
        assert loop.clock_jumps == 4
    finally:
        loop.stop()
        vclock.release()
        await running


class Hanging:
    """Reads fine; a scale call never returns (an API server that accepted and hung)."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()

    async def current(self) -> WorkloadState:
        return WorkloadState("deployment default/api", 1, 1, 0)

    async def scale(self, replicas: int, *, reason: str) -> None:
        self.entered.set()
        await asyncio.Event().wait()


async def test_sigterm_while_a_scale_call_hangs_ends_within_the_grace(
    vkube: tuple[FakeKube, ApiClient], vclock: VirtualClock, source: StubSource
) -> None:
    fake = vkube[0]
    await deployment(fake, "web")
    hanging = Hanging()
    settings = LoopSettings(shutdown_grace_s=20)
    loop = two_targets(vkube, vclock, source, {"api": hanging}, settings)
    source.values = {"web": {"in_flight": 2.0}, "api": {"in_flight": 8.0}}
    running = asyncio.create_task(loop.run())
    async with asyncio.timeout(5):
        await hanging.entered.wait()
    vclock.participants = 2  # api's task hangs: web's task and the state writer sleep
    await vclock.run_for(6)
    vclock.participants = 1  # stopping: only the shutdown's wait sleeps on the clock
    stopped_at = vclock.monotonic()
    loop.stop()
    vclock.release()
    async with asyncio.timeout(10):
        await running
    # The hung call was cut after grace - 2 x reserve = 10 s; the state save has 5 s more;
    # the Lease release (controller/app.py) the last 5 s.
    assert vclock.monotonic() - stopped_at <= 20 - settings.release_reserve_s
    assert loop.store.sizes().keys() >= {"web"}  # web's state was handed to the store


async def test_a_forbidden_scale_is_retried_slowly_with_an_event_and_works_once_fixed(
    kube: tuple[FakeKube, ApiClient], fake: FakeKube, clock: Any, source: StubSource
) -> None:
    await deployment(fake, "web")
    settings = LoopSettings(permanent_error_retry_s=30)
    loop = control_loop(kube, clock, source, [target("web", interval_s=10)], settings=settings)
    source.values["web"] = {"in_flight": 8.0}
    # RBAC is still propagating during an upgrade: every scale is forbidden.
    fault = fake.inject(fake["patch"], status=403, times=1000)
    await loop.round()
    web = loop.targets["web"]
    assert web.halt is not None and web.halt.failures == 1
    assert (
        "trying again in 30 s (permanent_error_retry_s)"
        in web.conditions[Cond.ACTUATOR_FAILED].message
    )
    assert not loop.ready  # nothing can be scaled: /readyz says 503
    events = [r.data for r in fake["post"] if r.url.path.endswith("/events")]
    assert [(e["type"], e["reason"]) for e in events] == [("Warning", "FailedRescale")]
    clock.advance(10)
    assert (await loop.round()).outcomes[0].action == Action.HALTED  # waiting for its retry
    clock.advance(10)
    await loop.round()
    clock.advance(10)  # 30 s after the failure: tried again, still forbidden, a second Event
    await loop.round()
    assert web.halt is not None and web.halt.failures == 2
    assert len([r for r in fake["post"] if r.url.path.endswith("/events")]) == 2
    # The RBAC is fixed: the next retry scales, the condition clears, the loop is ready.
    fault.times = 0
    clock.advance(30)
    assert (await loop.round()).outcomes[0].action == Action.SCALED
    assert replicas(fake, "web") == 4
    assert web.halt is None and Cond.ACTUATOR_FAILED not in web.conditions
    assert loop.ready


async def test_one_namespaces_failed_list_affects_only_its_own_targets(
    kube: tuple[FakeKube, ApiClient], fake: FakeKube, clock: Any, source: StubSource
) -> None:
    fake.add_workload("web", namespace="a")
    fake.add_workload("api", namespace="b")
    await fake.settle()

    def in_ns(name: str, ns: str) -> Any:
        spec = target(name)
        st = spec.scale_target.model_copy(update={"namespace": ns})
        return spec.model_copy(update={"scale_target": st})

    targets = [in_ns("web", "a"), in_ns("api", "b")]
    reads = ClusterReads(kube[1], clock=clock)
    actuators = {
        t.name: KubernetesActuator(
            WorkloadRef("Deployment", t.scale_target.namespace, t.name),  # type: ignore[union-attr]
            api=kube[1], clock=clock, reads=reads,
        )
        for t in targets
    }  # fmt: skip
    loop = ControlLoop(targets, source=source, actuators=actuators, clock=clock)
    fake.inject(fake["get"]["/api/v1/namespaces/a/pods"], status=500, times=1000)
    source.values = {"web": {"in_flight": 8.0}, "api": {"in_flight": 8.0}}
    result = {o.target: o for o in (await loop.round()).outcomes}
    assert result["web"].error_kind == "actuator_temporary"  # its namespace's list failed
    assert result["api"].action == Action.SCALED  # the other namespace goes on
    assert fake.workload("api", ns="b")["spec"]["replicas"] == 4


async def test_the_lease_is_kept_while_a_slow_api_server_queues_every_target_read(
    tmp_path: Path, source: StubSource
) -> None:
    # Real time, short settings: a 3 s Lease renewed every 0.5 s, 30 targets deciding every
    # second whose every workload GET takes 0.3 s, through a pool of 4 connections (about
    # 2.3 s of queue per round). The elector has a client and pool of its own, as
    # `replicast run` gives it, so its renewals never wait behind target reads.

    clock = SystemClock()
    names = [f"t{i}" for i in range(30)]
    async with serving(FakeClock(), tmp_path) as (fake, _):
        for name in names:
            fake.add_workload(name)
        await fake.settle()
        fake.inject(fake["get"][DEPLOYMENTS], delay_s=0.3, times=100_000)
        config = str(write_kubeconfig(fake, tmp_path))
        async with (
            await kubernetes_api(kubeconfig=config, max_connections=4) as targets_api,
            await kubernetes_api(kubeconfig=config, max_connections=2) as lease_api,
        ):
            settings = LeaderSettings(lease_duration_s=3, renew_deadline_s=2, retry_period_s=0.5)
            lease = LeaderElector(
                api=lease_api, namespace="default", name="replicast", identity="a",
                settings=settings, clock=clock,
            )  # fmt: skip
            actuators = {
                n: KubernetesActuator(WorkloadRef("Deployment", "default", n), api=targets_api)
                for n in names
            }
            loop = ControlLoop(
                [target(n, interval_s=1) for n in names], source=source, actuators=actuators,
                leadership=lease, clock=clock,
            )  # fmt: skip
            source.values = {n: {"in_flight": 2.0} for n in names}
            assert await lease.step()
            stopping = asyncio.Event()
            renewing = asyncio.create_task(lease.run(stopping))
            running = asyncio.create_task(loop.run())
            lost = 0
            try:
                for _ in range(40):  # 4 s
                    await asyncio.sleep(0.1)
                    lost += not lease.is_leader
            finally:
                loop.stop()
                await running
                stopping.set()
                await renewing
            assert lost == 0
            assert sum(t.sequence for t in loop.targets.values()) >= 30  # targets did decide
