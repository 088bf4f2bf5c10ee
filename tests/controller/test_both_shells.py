"""One scripted story through both shells: the same DecisionRecords, one by one.

The controller runs it against the fake Kubernetes API on a fake clock (the real
KubernetesActuator, a max change of 3 replicas per tick, a pause annotation, a 500 from the
API server); the simulator runs it through `simulator.provision.control_step`, the very step
its engine takes every interval, with a platform that caps, refuses and fails at the same
ticks. Both call tick -> act -> commit; so the records (proposal, guards, final count, outcome,
applied count) must agree. Only `outcome_reason`, each shell's own words, may differ.

HPA on in_flight, 2 per replica, max 10, from 1 replica; a tick every 15 s:

| t  | in_flight | wants | guards           | the shell does        | outcome  | replicas |
|----|-----------|-------|------------------|-----------------------|----------|----------|
| 0  | 12        | 6     | rate limit -> 5  | caps +3               | capped   | 4        |
| 15 | 12        | 6     |                  | sets 6                | applied  | 6        |
| 30 | 20        | 10    |                  | paused: refuses       | refused  | 6        |
| 45 | 20        | 10    |                  | API 500: fails        | failed   | 6        |
| 60 | 20        | 10    |                  | caps +3               | capped   | 9        |
| 75 | 2         | 1     | stabilization 9  | nothing to do         | applied  | 9        |
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes_asyncio.client import ApiClient

from controller.actuators.kubernetes import KubernetesActuator, KubernetesSettings, WorkloadRef
from controller.loop import LoopSettings
from policies import DecisionRecord, Observation, Outcome, autoscaler
from simulator.provision import Provisioned, control_step
from tests.controller.fake_kube import FakeClock, FakeKube
from tests.controller.stories import HPA, StubSource, control_loop, deployment, only, target

T0 = 1_700_000_000.0
STORY = [  # (in_flight, what the platform does)
    (12.0, "ok"),
    (12.0, "ok"),
    (20.0, "refuse"),
    (20.0, "fail"),
    (20.0, "ok"),
    (2.0, "ok"),
]
MAX_CHANGE = 3


class ScriptedPlatform:
    """The simulator's side: a max change per tick, and a refusal and a failure on cue."""

    def __init__(self) -> None:
        self.step = 0

    def provision(self, record: DecisionRecord, t_s: float) -> Provisioned:
        _, does = STORY[self.step]
        self.step += 1
        current = record.current_replicas
        change = max(-MAX_CHANGE, min(MAX_CHANGE, record.replicas - current))
        if change == 0:
            return Provisioned(Outcome.APPLIED, current)
        if does == "refuse":
            return Provisioned(Outcome.REFUSED, current, "quota")
        if does == "fail":
            return Provisioned(Outcome.FAILED, current, "provisioning failed")
        capped = change != record.replicas - current
        return Provisioned(Outcome.CAPPED if capped else Outcome.APPLIED, current + change)


def simulator_records() -> list[DecisionRecord]:
    scaler, platform = autoscaler(HPA), ScriptedPlatform()
    replicas, out = 1, []
    for k, (in_flight, _) in enumerate(STORY):
        obs = Observation(
            now_s=T0 + 15 * k, replicas=replicas, ready_replicas=replicas, in_flight=in_flight
        )
        record = control_step(scaler, obs, platform, 15.0 * k)
        replicas = record.applied_replicas if record.applied_replicas is not None else replicas
        out.append(record)
    return out


async def controller_records(
    kube: tuple[FakeKube, ApiClient], fake: FakeKube, clock: FakeClock, source: StubSource
) -> list[DecisionRecord]:
    await deployment(fake, "web")
    actuator = KubernetesActuator(
        WorkloadRef("Deployment", "default", "web"),
        api=kube[1],
        clock=clock,
        settings=KubernetesSettings(retry_delays_s=()),  # a failure is one failure
    )
    loop = control_loop(
        kube, clock, source, [target("web")], actuators={"web": actuator},
        settings=LoopSettings(max_change_per_tick=MAX_CHANGE),
    )  # fmt: skip
    out = []
    for in_flight, does in STORY:
        source.values["web"] = {"in_flight": in_flight}
        fake.annotate("web", {"replicast.io/paused": "true" if does == "refuse" else None})
        fault = fake.inject(fake["patch"], status=500, times=1000) if does == "fail" else None
        tick = only(await loop.round(), "web")
        if fault is not None:
            fault.times = 0
        assert tick.record is not None
        out.append(tick.record)
        await fake.settle()  # the new pods are ready before the next tick
        clock.advance(15)
    return out


def comparable(record: DecisionRecord) -> dict[str, Any]:
    data = record.to_dict()
    data.pop("outcome_reason")  # each shell says why in its own words
    return data


@pytest.mark.asyncio
async def test_one_story_gives_the_same_records_in_both_shells(
    kube: tuple[FakeKube, ApiClient], fake: FakeKube, clock: FakeClock, source: StubSource
) -> None:
    live = await controller_records(kube, fake, clock, source)
    simulated = simulator_records()
    assert [(r.outcome, r.replicas, r.applied_replicas) for r in live] == [
        ("capped", 5, 4),
        ("applied", 6, 6),
        ("refused", 10, 6),
        ("failed", 10, 6),
        ("capped", 10, 9),
        ("applied", 9, 9),
    ]
    for k, (a, b) in enumerate(zip(live, simulated, strict=True)):
        assert comparable(a) == comparable(b), f"tick {k} differs"
