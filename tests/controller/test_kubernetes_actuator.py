"""The Kubernetes actuator against the fake API server, over real HTTP on 127.0.0.1.

Every test talks to `FakeKube` through kubernetes-asyncio with a kubeconfig pointing at it, and
the fake enforces deploy/rbac.yaml: a call outside the granted rules would fail with a 403.
Time is a `FakeClock`: Pending ages and retry backoffs move only when a test moves them.
"""

from __future__ import annotations

import asyncio

import kmock
import pytest
import yaml
from kubernetes_asyncio.client import ApiClient

from controller.actuators.base import (
    ConditionType,
    PermanentError,
    ScaleRefusedError,
    TemporaryError,
    WorkloadState,
)
from controller.actuators.kubernetes import (
    PAUSED_ANNOTATION,
    PAUSED_REPLICAS_ANNOTATION,
    ClusterReads,
    KubernetesActuator,
    KubernetesSettings,
    WorkloadRef,
    selector_matches,
)
from tests.controller.fake_kube import (
    DEPLOYMENTS,
    EVENTS,
    HPAS,
    NO_CAPACITY,
    RBAC_YAML,
    FakeClock,
    FakeKube,
    rbac_rules,
)

pytestmark = pytest.mark.asyncio

SETTINGS = KubernetesSettings(pending_timeout_s=300, retry_delays_s=(1.0, 2.0, 4.0))


@pytest.fixture
def actuator(kube: tuple[FakeKube, ApiClient], clock: FakeClock) -> KubernetesActuator:
    return actuator_for(kube, clock, "web")


def actuator_for(
    kube: tuple[FakeKube, ApiClient],
    clock: FakeClock,
    name: str,
    *,
    kind: str = "Deployment",
    settings: KubernetesSettings = SETTINGS,
) -> KubernetesActuator:
    return KubernetesActuator(
        WorkloadRef(kind, "default", name), api=kube[1], settings=settings, clock=clock
    )


async def web(fake: FakeKube, replicas: int = 1, annotations: dict[str, str] | None = None) -> None:
    """A Deployment `web` whose pods are up."""
    fake.add_workload("web", replicas=replicas, annotations=annotations)
    await fake.settle()


def scale_patches(fake: FakeKube) -> list[kmock.Request]:
    return list(fake["patch"])


# --- reading ---


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet"])
async def test_reads_spec_ready_and_starting_replicas(
    kube: tuple[FakeKube, ApiClient], clock: FakeClock, kind: str
) -> None:
    fake = kube[0]
    fake.add_workload("web", kind=kind, replicas=2)
    await fake.settle()
    actuator = actuator_for(kube, clock, "web", kind=kind)
    target = f"{kind.lower()} default/web"
    # Two pods up.
    assert await actuator.current() == WorkloadState(
        target, replicas=2, ready_replicas=2, starting_replicas=0
    )
    # Scaled to 4 while the new pods load their model: 2 ready, 2 starting.
    fake.hold_startup = True
    await actuator.scale(4, reason="queue_depth above target")
    await fake.settle()
    assert await actuator.current() == WorkloadState(
        target, replicas=4, ready_replicas=2, starting_replicas=2
    )
    # The models are loaded.
    fake.hold_startup = False
    await fake.settle()
    assert await actuator.current() == WorkloadState(
        target, replicas=4, ready_replicas=4, starting_replicas=0
    )


async def test_scale_patches_spec_replicas_through_the_scale_subresource(
    fake: FakeKube, actuator: KubernetesActuator
) -> None:
    await web(fake, replicas=1)
    version = fake.workload("web")["metadata"]["resourceVersion"]
    await actuator.scale(3, reason="latency_p95_s above the SLO")
    assert fake.workload("web")["spec"]["replicas"] == 3
    [patch] = scale_patches(fake)
    assert patch.url.path == "/apis/apps/v1/namespaces/default/deployments/web/scale"
    # Conditional on the version it read: a concurrent writer would get it a 409.
    assert patch.data == {"metadata": {"resourceVersion": version}, "spec": {"replicas": 3}}
    # Asking for the size it already has writes nothing (and records no Event).
    await actuator.scale(3, reason="unchanged")
    assert len(scale_patches(fake)) == 1
    assert len(fake.live(EVENTS)) == 1


async def test_every_scale_emits_an_hpa_like_event(
    fake: FakeKube, actuator: KubernetesActuator, clock: FakeClock
) -> None:
    await web(fake, replicas=1)
    await actuator.scale(3, reason="queue_depth 42 above target 10")
    clock.advance(60)
    await actuator.scale(2, reason="queue_depth 5 below target 10")
    uid = fake.workload("web")["metadata"]["uid"]
    events = fake.live(EVENTS)
    assert [(e["reason"], e["message"]) for e in events] == [
        ("SuccessfulRescale", "New size: 3; reason: queue_depth 42 above target 10"),
        ("SuccessfulRescale", "New size: 2; reason: queue_depth 5 below target 10"),
    ]
    for event in events:
        assert event["type"] == "Normal"
        assert event["source"] == {"component": "replicast"}
        assert event["involvedObject"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": "web",
            "namespace": "default",
            "uid": uid,
        }
    assert events[1]["lastTimestamp"] == "2023-11-14T22:14:20+00:00"  # the clock's time, not now


async def test_a_failed_event_does_not_fail_the_scale(
    fake: FakeKube, actuator: KubernetesActuator, clock: FakeClock
) -> None:
    await web(fake)
    fake.inject(fake["post"], status=500)
    await actuator.scale(2, reason="load")
    assert fake.workload("web")["spec"]["replicas"] == 2
    assert fake.live(EVENTS) == []
    assert clock.sleeps == []  # the Event is not retried: the tick does not wait for it


# --- refusing ---


async def test_refuses_a_target_an_hpa_also_scales(
    fake: FakeKube, actuator: KubernetesActuator
) -> None:
    await web(fake)
    # An HPA on another Deployment is none of our business.
    fake.add_hpa("api", target="api")
    assert (await actuator.current()).conditions == ()
    # One on ours: refuse, and say who else scales it.
    fake.add_hpa("web-hpa", target="web")
    state = await actuator.current()
    conflict = state.condition(ConditionType.CONFLICT)
    assert conflict is not None
    assert "HorizontalPodAutoscaler default/web-hpa" in conflict.message
    with pytest.raises(ScaleRefusedError, match="HorizontalPodAutoscaler default/web-hpa"):
        await actuator.scale(5, reason="load")
    assert scale_patches(fake) == []


async def test_refuses_a_target_a_keda_scaled_object_also_scales(
    fake: FakeKube, actuator: KubernetesActuator
) -> None:
    await web(fake)
    # KEDA is not installed: its list answers 404, which means no ScaledObject.
    assert (await actuator.current()).conditions == ()
    fake.add_scaled_object("web-queue", target="web")
    conflict = (await actuator.current()).condition(ConditionType.CONFLICT)
    assert conflict is not None
    assert "ScaledObject default/web-queue" in conflict.message
    with pytest.raises(ScaleRefusedError, match="ScaledObject default/web-queue"):
        await actuator.scale(5, reason="load")
    assert scale_patches(fake) == []


@pytest.mark.parametrize(
    ("annotations", "held", "allowed", "refused", "message"),
    [
        pytest.param({PAUSED_ANNOTATION: "true"}, None, [], [0, 3], "never scaled", id="paused"),
        pytest.param({PAUSED_REPLICAS_ANNOTATION: "2"}, 2, [2], [3, 0], "held at 2", id="held"),
        pytest.param(
            {PAUSED_REPLICAS_ANNOTATION: "two"}, None, [], [2], "got 'two'", id="invalid-held"
        ),
        pytest.param({PAUSED_ANNOTATION: "false"}, None, [3], [], None, id="not-paused"),
    ],
)
async def test_pause_annotations(
    fake: FakeKube,
    actuator: KubernetesActuator,
    annotations: dict[str, str],
    held: int | None,
    allowed: list[int],
    refused: list[int],
    message: str | None,
) -> None:
    await web(fake, replicas=1, annotations=annotations)
    state = await actuator.current()
    assert state.held_replicas == held
    paused = state.condition(ConditionType.PAUSED)
    assert (paused is None) == (message is None)
    if paused is not None and message is not None:
        assert message in paused.message
    for replicas in refused:
        with pytest.raises(ScaleRefusedError, match=r"annotation replicast\.io/paused"):
            await actuator.scale(replicas, reason="load")
    for replicas in allowed:
        await actuator.scale(replicas, reason="load")
        assert fake.workload("web")["spec"]["replicas"] == replicas
    # Removing the annotations resumes scaling.
    fake.annotate("web", dict.fromkeys(annotations))
    await actuator.scale(4, reason="load")
    assert fake.workload("web")["spec"]["replicas"] == 4


async def test_pods_pending_too_long_exhaust_capacity_and_pause_scale_up(
    fake: FakeKube, actuator: KubernetesActuator, clock: FakeClock
) -> None:
    await web(fake, replicas=1)
    # No GPU node left: the two new pods stay Pending/Unschedulable.
    fake.unschedulable = True
    await actuator.scale(3, reason="load")
    await fake.settle()
    # At first they count as starting (a node may be on its way).
    state = await actuator.current()
    assert (state.ready_replicas, state.starting_replicas, state.conditions) == (1, 2, ())
    # Five minutes and a second later they no longer count, and scale-up waits.
    clock.advance(301)
    state = await actuator.current()
    assert (state.replicas, state.ready_replicas, state.starting_replicas) == (3, 1, 0)
    assert state.unschedulable_replicas == 2
    capacity = state.condition(ConditionType.CAPACITY_EXHAUSTED)
    assert capacity is not None
    assert "2 pod(s) Pending/Unschedulable for more than 300 s" in capacity.message
    assert NO_CAPACITY in capacity.message
    with pytest.raises(ScaleRefusedError, match="scale-up paused"):
        await actuator.scale(4, reason="load")
    assert fake.workload("web")["spec"]["replicas"] == 3
    # A node arrives: the pods schedule and start, and scale-up resumes.
    fake.unschedulable = False
    await fake.settle()
    state = await actuator.current()
    assert (state.ready_replicas, state.starting_replicas, state.conditions) == (3, 0, ())
    await actuator.scale(4, reason="load")
    assert fake.workload("web")["spec"]["replicas"] == 4


async def test_exhausted_capacity_still_allows_scaling_down(
    fake: FakeKube, actuator: KubernetesActuator, clock: FakeClock
) -> None:
    await web(fake, replicas=1)
    fake.unschedulable = True
    await actuator.scale(3, reason="load")
    await fake.settle()
    clock.advance(301)
    await actuator.scale(1, reason="load is gone")
    await fake.settle()
    assert await actuator.current() == WorkloadState("deployment default/web", 1, 1, 0)


# --- API failures ---


async def test_a_conflicting_write_is_re_read_and_retried_once(
    fake: FakeKube, actuator: KubernetesActuator
) -> None:
    await web(fake, replicas=1)
    # Someone else writes the Deployment between our read and our patch.
    fake.inject(fake["patch"], stale=True)
    await actuator.scale(3, reason="load")
    first, second = scale_patches(fake)
    assert first.data["metadata"]["resourceVersion"] != second.data["metadata"]["resourceVersion"]
    assert fake.workload("web")["spec"]["replicas"] == 3
    assert len(fake.live(EVENTS)) == 1


async def test_a_second_conflict_is_a_temporary_error(
    fake: FakeKube, actuator: KubernetesActuator
) -> None:
    await web(fake, replicas=1)
    fake.inject(fake["patch"], stale=True, times=2)
    with pytest.raises(TemporaryError, match=r"conflict \(409\).*changed again"):
        await actuator.scale(3, reason="load")
    assert len(scale_patches(fake)) == 2
    assert fake.workload("web")["spec"]["replicas"] == 1


async def test_a_missing_target_is_a_permanent_one_line_error(
    kube: tuple[FakeKube, ApiClient], clock: FakeClock
) -> None:
    ghost = actuator_for(kube, clock, "ghost")
    with pytest.raises(PermanentError) as caught:
        await ghost.current()
    message = str(caught.value)
    assert message == (
        'deployment default/ghost: get: not found (404): deployments.apps "ghost" not found; '
        "check the target's kind, namespace and name"
    )
    assert clock.sleeps == []  # not retried


async def test_throttling_waits_as_long_as_the_server_asks(
    fake: FakeKube, actuator: KubernetesActuator, clock: FakeClock
) -> None:
    await web(fake, replicas=2)
    fake.inject(fake["get"][DEPLOYMENTS], status=429, retry_after_s=3, times=2)
    state = await actuator.current()
    assert state.ready_replicas == 2
    assert clock.sleeps == [3.0, 3.0]  # Retry-After wins over the 1 s, 2 s backoff


async def test_server_errors_retry_with_the_configured_backoff_then_give_up(
    fake: FakeKube, actuator: KubernetesActuator, clock: FakeClock
) -> None:
    await web(fake)
    fake.inject(fake["get"][DEPLOYMENTS], status=500, times=4)
    with pytest.raises(TemporaryError) as caught:
        await actuator.current()
    assert clock.sleeps == [1.0, 2.0, 4.0]
    assert caught.value.delay_s == 4.0
    assert str(caught.value) == "deployment default/web: get: 500: injected 500"


async def test_a_slow_answer_times_out_as_a_temporary_error(
    kube: tuple[FakeKube, ApiClient], clock: FakeClock
) -> None:
    fake = kube[0]
    await web(fake)
    settings = KubernetesSettings(request_timeout_s=0.05, retry_delays_s=(0.5,))
    actuator = actuator_for(kube, clock, "web", settings=settings)
    fake.inject(fake["get"][DEPLOYMENTS], delay_s=0.2, times=2)
    with pytest.raises(TemporaryError, match="deployment default/web: get: no answer in time"):
        await actuator.current()
    assert clock.sleeps == [0.5]


# --- RBAC ---


async def test_rbac_grants_exactly_what_the_controller_uses_and_the_fake_enforces_it(
    fake: FakeKube,
) -> None:
    assert rbac_rules() == {
        ("apps", "deployments", "get"),
        ("apps", "statefulsets", "get"),
        ("apps", "deployments/scale", "patch"),
        ("apps", "statefulsets/scale", "patch"),
        ("autoscaling", "horizontalpodautoscalers", "list"),
        ("keda.sh", "scaledobjects", "list"),
        ("", "events", "create"),
        ("coordination.k8s.io", "leases", "get"),
        ("coordination.k8s.io", "leases", "create"),
        ("coordination.k8s.io", "leases", "update"),
        ("", "configmaps", "get"),
        ("", "configmaps", "create"),
        ("", "configmaps", "update"),
        ("", "pods", "list"),
    }
    docs = {doc["kind"]: doc for doc in yaml.safe_load_all(RBAC_YAML.read_text())}
    assert set(docs) == {"ServiceAccount", "Role", "RoleBinding"}
    assert docs["RoleBinding"]["roleRef"]["name"] == docs["Role"]["metadata"]["name"]
    assert docs["RoleBinding"]["subjects"][0]["name"] == docs["ServiceAccount"]["metadata"]["name"]
    assert "*" not in RBAC_YAML.read_text()
    # The fake answers anything else with a 403, so every test here also checks the claim.
    async with fake.get("/apis/apps/v1/namespaces/default/deployments?watch=True") as response:
        assert response.status == 403
        assert "cannot watch resource" in (await response.json())["message"]
    # Discovery is not a resource: kubernetes-asyncio's version check passes.
    async with fake.get("/version/") as response:
        assert response.status == 200


# --- shared reads: one read of a namespace per round, not one per target ---


async def test_selector_matches_as_kubernetes_does() -> None:
    labels = {"app": "llm", "tier": "gpu"}
    match = selector_matches
    assert not match(None, labels)  # no selector selects nothing
    assert match({}, labels)  # an empty one everything
    assert match({"matchLabels": {"app": "llm"}}, labels)
    assert not match({"matchLabels": {"app": "llm", "tier": "cpu"}}, labels)
    expressions = [
        ({"key": "tier", "operator": "In", "values": ["gpu", "tpu"]}, True),
        ({"key": "tier", "operator": "In", "values": ["cpu"]}, False),
        ({"key": "zone", "operator": "In", "values": ["a"]}, False),
        ({"key": "tier", "operator": "NotIn", "values": ["cpu"]}, True),
        ({"key": "zone", "operator": "NotIn", "values": ["a"]}, True),  # unset is not in
        ({"key": "tier", "operator": "NotIn", "values": ["gpu"]}, False),
        ({"key": "app", "operator": "Exists"}, True),
        ({"key": "zone", "operator": "Exists"}, False),
        ({"key": "zone", "operator": "DoesNotExist"}, True),
        ({"key": "app", "operator": "DoesNotExist"}, False),
    ]
    for expression, expected in expressions:
        assert match({"matchExpressions": [expression]}, labels) is expected, expression
    both = {"matchLabels": {"app": "llm"}, "matchExpressions": [expressions[1][0]]}
    assert not match(both, labels)  # every requirement must hold
    for bad in (
        {"key": "tier", "operator": "In", "values": []},
        {"key": "tier", "operator": "Exists", "values": ["gpu"]},
        {"key": "tier", "operator": "Near", "values": ["gpu"]},
    ):
        with pytest.raises(ValueError, match="tier"):
            match({"matchExpressions": [bad]}, labels)


def sharing(
    api: ApiClient,
    clock: FakeClock,
    names: tuple[str, ...],
    settings: KubernetesSettings = SETTINGS,
) -> list[KubernetesActuator]:
    """Actuators for Deployments `names` in `default` sharing one `ClusterReads`."""
    reads = ClusterReads(api, settings=settings, clock=clock)
    return [
        KubernetesActuator(
            WorkloadRef("Deployment", "default", n), api=api, settings=settings, clock=clock,
            reads=reads,
        )
        for n in names
    ]  # fmt: skip


async def llama_and_mistral(fake: FakeKube) -> None:
    """Two Deployments in `default`, one replica each, up."""
    fake.add_workload("llama", replicas=1)
    fake.add_workload("mistral", replicas=1)
    await fake.settle()


def _reads_by_path(fake: FakeKube) -> dict[str, int]:
    counts: dict[str, int] = {}
    for request in fake["get"]:
        counts[request.url.path] = counts.get(request.url.path, 0) + 1
    return counts


async def test_targets_of_a_namespace_share_one_read_of_it_per_round(
    kube: tuple[FakeKube, ApiClient], clock: FakeClock
) -> None:
    fake, api = kube
    names = ("llama", "mistral", "phi")
    for name in names:
        fake.add_workload(name, replicas=1)
    await fake.settle()
    actuators = sharing(api, clock, names)

    async def round_() -> list[WorkloadState]:
        return list(await asyncio.gather(*(a.current() for a in actuators)))

    assert [s.ready_replicas for s in await round_()] == [1, 1, 1]
    ns = "/namespaces/default"
    once_each = {f"/apis/apps/v1{ns}/deployments/{n}": 1 for n in names} | {
        f"/apis/autoscaling/v2{ns}/horizontalpodautoscalers": 1,
        f"/apis/keda.sh/v1alpha1{ns}/scaledobjects": 1,
        f"/api/v1{ns}/pods": 1,
    }
    # N workload GETs and three LISTs; no GET of /scale (the workload carries its fields).
    assert _reads_by_path(fake) == once_each
    # A second look within the same round reuses the view ...
    clock.advance(2)
    await round_()
    assert _reads_by_path(fake)[f"/api/v1{ns}/pods"] == 1
    # ... the next round (an interval later) reads the namespace again, once.
    clock.advance(15)
    await round_()
    assert _reads_by_path(fake) == {path: 3 if "deployments" in path else 2 for path in once_each}
    [pods] = [r for r in fake["get"] if r.url.path.endswith("/pods")][:1]
    assert pods.params["fieldSelector"] == "status.phase=Pending"


async def test_a_shared_read_counts_only_the_pods_a_workload_selects(
    kube: tuple[FakeKube, ApiClient], clock: FakeClock
) -> None:
    fake, api = kube
    await llama_and_mistral(fake)
    llama, mistral = sharing(api, clock, ("llama", "mistral"))
    fake.unschedulable = True
    await llama.scale(3, reason="load")
    await fake.settle()
    clock.advance(301)
    state = await llama.current()
    assert state.unschedulable_replicas == 2
    assert state.condition(ConditionType.CAPACITY_EXHAUSTED) is not None
    # mistral's own pods are fine: llama's stuck pods are not its problem.
    other = await mistral.current()
    assert (other.ready_replicas, other.unschedulable_replicas, other.conditions) == (1, 0, ())


async def test_a_failed_shared_read_fails_each_target_and_is_not_kept(
    kube: tuple[FakeKube, ApiClient], clock: FakeClock
) -> None:
    fake, api = kube
    await llama_and_mistral(fake)
    settings = KubernetesSettings(retry_delays_s=())
    actuators = sharing(api, clock, ("llama", "mistral"), settings)
    fake.inject(fake["get"][HPAS], status=500)
    results = await asyncio.gather(*(a.current() for a in actuators), return_exceptions=True)
    for actuator, result in zip(actuators, results, strict=True):
        assert isinstance(result, TemporaryError)
        assert str(result).startswith(str(actuator.target))
        assert "horizontalpodautoscalers" in str(result)
    # The failure is not remembered: the next look reads again and succeeds.
    assert (await actuators[0].current()).ready_replicas == 1
