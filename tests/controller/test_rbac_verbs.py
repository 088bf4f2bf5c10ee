"""The Role that `kubectl kustomize deploy` renders grants exactly what the controller calls.

The real code paths that talk to Kubernetes run against `FakeKube` with RBAC off (so nothing
the code asks for is refused and every path runs to its end), over real HTTP on 127.0.0.1, and
the fake records every request as (apiGroup, resource[/subresource], verb). Driven here:
`KubernetesActuator.current`, `scale` (with its Event) and `warn` for a Deployment and a
StatefulSet, through the `ClusterReads` they share; `LeaderElector` step (create, then renew)
and `release`; the state store's `load`, `flush` (create, then update). The recorded set must
equal the Role's rules: a rule nothing calls is privilege to drop, a call no rule grants is a
403 in production.
"""

from __future__ import annotations

from pathlib import Path

import kmock
import pytest

from controller.actuators.kubernetes import (
    ClusterReads,
    KubernetesActuator,
    KubernetesSettings,
    WorkloadRef,
    kubernetes_api,
)
from controller.leader import LeaderElector
from controller.state_store import ConfigMapStore
from tests.controller.fake_kube import FakeClock, FakeKube, Rule, write_kubeconfig
from tests.controller.kustomize import render, role_rules

SETTINGS = KubernetesSettings(retry_delays_s=())


async def calls_of_the_controller(directory: Path) -> frozenset[Rule]:
    """Every request the controller's Kubernetes code paths make, as RBAC rules."""
    clock = FakeClock()
    async with FakeKube(now=clock.now, rbac=None) as fake, kmock.Server(fake):
        config = write_kubeconfig(fake, directory)
        async with await kubernetes_api(kubeconfig=str(config)) as api:
            reads = ClusterReads(api, settings=SETTINGS, clock=clock)
            for kind, name in (("Deployment", "web"), ("StatefulSet", "db")):
                fake.add_workload(name, kind=kind, replicas=1)
                await fake.settle()
                actuator = KubernetesActuator(
                    WorkloadRef(kind, "default", name),
                    api=api,
                    settings=SETTINGS,
                    clock=clock,
                    reads=reads,
                )
                await actuator.current()
                await actuator.scale(2, reason="in_flight 40 above target 24")  # + its Event
                await actuator.warn("FailedRescale", "a Warning Event (a permanent error)")
                clock.advance(60)  # the next round reads the namespace again
            elector = LeaderElector(
                api=api, namespace="default", name="replicast", identity="a", clock=clock
            )
            assert await elector.step()  # no Lease yet: created
            clock.advance(2)
            assert await elector.step()  # renewed
            store = ConfigMapStore(
                api, namespace="default", prefix="replicast", identity="a", clock=clock
            )
            assert await store.load(["web"]) == {}  # get (404)
            store.put("web", {"policy": {"version": 1}})
            assert await store.flush(force=True) == 1  # create
            store.put("web", {"policy": {"version": 1, "n": 2}})
            assert await store.flush(force=True) == 1  # update
            assert (await store.load(["web"]))["web"]["policy"]["n"] == 2
            await elector.release()
        return frozenset(fake.calls)


@pytest.mark.asyncio
async def test_the_role_grants_exactly_the_verbs_the_controller_calls(tmp_path: Path) -> None:
    granted = role_rules(render())
    called = await calls_of_the_controller(tmp_path)
    never_called = sorted(granted - called)
    not_granted = sorted(called - granted)
    assert not never_called and not not_granted, (
        f"deploy/rbac.yaml grants what nothing calls: {never_called}; "
        f"it does not grant what the controller calls: {not_granted}"
    )
