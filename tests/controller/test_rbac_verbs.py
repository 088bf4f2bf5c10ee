"""The Role that `kubectl kustomize deploy` renders grants exactly what the controller calls.

The real code paths that talk to Kubernetes run against `FakeKube` with RBAC off (so nothing
the code asks for is refused and every path runs to its end), over real HTTP on 127.0.0.1, and
the fake records every request as (apiGroup, resource[/subresource], verb). Driven here:
`KubernetesActuator.current` and `scale` (with its Event) for a Deployment and a StatefulSet,
through the `ClusterReads` they share, and `LeaderElector` step (create, then renew),
`save_state`, `load_state`, `release`. The recorded set must equal the Role's rules: a rule
nothing calls is privilege to drop, a call no rule grants is a 403 in production.
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
from tests.controller.fake_kube import FakeClock, FakeKube, Rule, write_kubeconfig
from tests.controller.kustomize import render, role_rules

# Granted ahead of the code: the policies' state moves from the Lease annotation into
# ConfigMaps <lease-name>-state-<k> with the controller rewrite (controller issue 14). Until it
# lands nothing calls them. Empty this once the code does (the test below says when).
GRANTED_FOR_THE_STATE_STORE: frozenset[Rule] = frozenset(
    {("", "configmaps", "get"), ("", "configmaps", "create"), ("", "configmaps", "update")}
)
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
                clock.advance(60)  # the next round reads the namespace again
            elector = LeaderElector(
                api=api, namespace="default", name="replicast", identity="a", clock=clock
            )
            assert await elector.step()  # no Lease yet: created
            clock.advance(2)
            assert await elector.step()  # renewed
            await elector.save_state({"web": {"version": 1}})
            assert await elector.load_state() == {"web": {"version": 1}}
            await elector.release()
        return frozenset(fake.calls)


@pytest.mark.asyncio
async def test_the_role_grants_exactly_the_verbs_the_controller_calls(tmp_path: Path) -> None:
    granted = role_rules(render())
    called = await calls_of_the_controller(tmp_path)
    needed = called | GRANTED_FOR_THE_STATE_STORE
    never_called = sorted(granted - needed)
    not_granted = sorted(needed - granted)
    assert not never_called and not not_granted, (
        f"deploy/rbac.yaml grants what nothing calls: {never_called}; "
        f"it does not grant what the controller calls (or GRANTED_FOR_THE_STATE_STORE "
        f"keeps for it): {not_granted}"
    )
    # The state store's rules are there only until the code calls them.
    assert not called & GRANTED_FOR_THE_STATE_STORE, (
        f"the controller now calls {sorted(called & GRANTED_FOR_THE_STATE_STORE)}: "
        "remove them from GRANTED_FOR_THE_STATE_STORE"
    )
