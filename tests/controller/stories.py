"""Shared pieces of the controller's loop stories: targets, a stub metric source, actuators
that fail or block, and helpers over the fake Kubernetes API (tests/controller/fake_kube.py).

The acting policy is HPA on `in_flight` with 2 requests per replica: 8 in flight want 4
replicas; HPA's default scale-up limit from 1 replica is 5 per 15 s.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import Any

import kmock
from kubernetes_asyncio.client import ApiClient

from controller.actuators.base import Actuator, PermanentError, WorkloadState
from controller.actuators.kubernetes import KubernetesActuator, WorkloadRef
from controller.config import TargetConfig
from controller.leader import LeaderElector
from controller.loop import ControlLoop, RoundResult, TickOutcome
from controller.prometheus import PrometheusSource, SourceStats
from controller.signals import TargetQueries
from controller.state_store import ConfigMapStore
from tests.controller.fake_kube import CONFIGMAPS, FakeClock, FakeKube

HPA: dict[str, Any] = {
    "policy": "hpa",
    "metric": "in_flight",
    "target_per_replica": 2,
    "max_replicas": 10,
}
QUERIES = {
    "in_flight": "sum by ({group_by}) (running{{selector}})",
    "queue_depth": "sum by ({group_by}) (waiting{{selector}})",
}


def target(
    name: str,
    *,
    policy: Mapping[str, Any] = HPA,
    shadow: Sequence[Mapping[str, Any]] = (),
    dry_run: bool = False,
    interval_s: float = 15.0,
) -> TargetConfig:
    return TargetConfig.model_validate(
        {
            "name": name,
            "scale_target": {"kind": "Deployment", "namespace": "default", "name": name},
            "signals": {"queries": QUERIES},
            "policy": dict(policy),
            "shadow": [dict(s) for s in shadow],
            "dry_run": dry_run,
            "interval_s": interval_s,
        }
    )


class StubSource:
    """What Prometheus would answer: `values[target][signal]`; `down` fails every query."""

    def __init__(self) -> None:
        self.stats = SourceStats()
        self.values: dict[str, dict[str, float | None]] = {}
        self.down = False
        self.reads: list[list[str]] = []

    async def read(
        self, targets: Sequence[TargetQueries], now_s: float
    ) -> dict[str, dict[str, float | None]]:
        self.reads.append([t.target for t in targets])
        self.stats.queries_total += 1
        if self.down:
            self.stats.errors_total["connection"] += 1
            self.stats.last_missing = {
                (t.target, s): "connection" for t in targets for s in t.queries
            }
            return {t.target: dict.fromkeys(t.queries) for t in targets}
        self.stats.last_missing = {}
        given = {t.target: self.values.get(t.target, {}) for t in targets}
        return {t.target: {s: given[t.target].get(s) for s in t.queries} for t in targets}


class BrokenActuator:
    """Reads fine (one replica); every scale fails as a person must fix it (RBAC)."""

    def __init__(self) -> None:
        self.scales = 0

    async def current(self) -> WorkloadState:
        return WorkloadState("deployment default/api", 1, 1, 0)

    async def scale(self, replicas: int, *, reason: str) -> None:
        self.scales += 1
        raise PermanentError(
            "deployment default/api: patch /scale: forbidden (403); grant it to the "
            "controller's ServiceAccount (deploy/rbac.yaml)"
        )


class BuggyActuator:
    async def current(self) -> WorkloadState:
        raise RuntimeError("a bug in an actuator")

    async def scale(self, replicas: int, *, reason: str) -> None:
        raise AssertionError("never reached")


class BlockingActuator:
    """The real actuator, whose scale call waits for `release` (a slow API server)."""

    def __init__(self, inner: KubernetesActuator) -> None:
        self.inner = inner
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def current(self) -> WorkloadState:
        return await self.inner.current()

    async def scale(self, replicas: int, *, reason: str) -> None:
        self.entered.set()
        await self.release.wait()
        await self.inner.scale(replicas, reason=reason)


def kube_actuator(
    kube: tuple[FakeKube, ApiClient], clock: FakeClock, name: str
) -> KubernetesActuator:
    ref = WorkloadRef("Deployment", "default", name)
    return KubernetesActuator(ref, api=kube[1], clock=clock)


def control_loop(
    kube: tuple[FakeKube, ApiClient],
    clock: FakeClock,
    source: StubSource | PrometheusSource,
    targets: Sequence[TargetConfig],
    *,
    actuators: Mapping[str, Actuator] | None = None,
    **options: Any,
) -> ControlLoop:
    given = dict(actuators or {})
    made = {t.name: given.get(t.name) or kube_actuator(kube, clock, t.name) for t in targets}
    return ControlLoop(targets, source=source, actuators=made, clock=clock, **options)


async def deployment(fake: FakeKube, name: str, replicas: int = 1) -> None:
    """A Deployment whose pods are all up."""
    fake.add_workload(name, replicas=replicas)
    await fake.settle()


def replicas(fake: FakeKube, name: str) -> int:
    return int(fake.workload(name)["spec"]["replicas"])


def scale_patches(fake: FakeKube) -> list[kmock.Request]:
    return [r for r in fake["patch"] if r.url.path.endswith("/scale")]


def only(result: RoundResult, name: str) -> TickOutcome:
    [outcome] = [o for o in result.outcomes if o.target == name]
    return outcome


def elector(kube: tuple[FakeKube, ApiClient], clock: FakeClock, identity: str) -> LeaderElector:
    return LeaderElector(
        api=kube[1], namespace="default", name="replicast", identity=identity, clock=clock
    )


def configmaps(
    kube: tuple[FakeKube, ApiClient],
    clock: FakeClock,
    identity: str,
    *,
    write_interval_s: float = 10.0,
) -> ConfigMapStore:
    return ConfigMapStore(
        kube[1], namespace="default", prefix="replicast", identity=identity, clock=clock,
        write_interval_s=write_interval_s,
    )  # fmt: skip


def saved(fake: FakeKube, target: str) -> dict[str, Any]:
    """The state entry of `target` in the state ConfigMaps."""
    for cm in fake.live(CONFIGMAPS):
        if target in (cm.get("data") or {}):
            entry: dict[str, Any] = json.loads(cm["data"][target])
            return entry
    raise AssertionError(f"no saved state for {target}")
