"""AciActuator over real HTTPS against the fake ARM (fake_arm.py), on a fake clock.

The target is an Azure AI Speech container (CPU) as `speech-{index}` groups in rg-inference,
routed by a FileRegistrar that also writes into the test's journal, drained with an in-flight
probe that does the same, so a test reads the order of events across router, probe and ARM.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from controller.actuators.aci import (
    AciActuator,
    AciRef,
    AciSettings,
    Group,
    Phase,
    classify,
    group_body,
    route_plan,
    scale_plan,
)
from controller.actuators.base import (
    ConditionType,
    PermanentError,
    ScaleRefusedError,
    TemporaryError,
    WorkloadState,
)
from controller.arm import ARM_SCOPE, ArmSettings, OperationFailedError, retry_after_s
from controller.registrars import FileRegistrar
from tests.controller.fake_arm import TOKEN, FakeArm, FakeCredential, client_ssl
from tests.controller.fake_kube import FakeClock

SUB = "00000000-0000-0000-0000-000000000000"
TARGET = "aci rg-inference/speech-*"
IMAGE = "mcr.microsoft.com/azure-cognitive-services/speechservices/speech-to-text:latest"
TEMPLATE: dict[str, Any] = {
    "location": "eastus",
    "tags": {"team": "speech"},
    "properties": {
        "osType": "Linux",
        "restartPolicy": "Always",
        "containers": [
            {
                "name": "speech",
                "properties": {
                    "image": IMAGE,
                    "ports": [{"port": 5000}],
                    "resources": {"requests": {"cpu": 4, "memoryInGB": 8}},
                },
            }
        ],
        "ipAddress": {"type": "Private", "ports": [{"port": 5000, "protocol": "TCP"}]},
    },
}
REF = AciRef(SUB, "rg-inference", "speech", TEMPLATE)
GROUPS_PATH = (
    f"/subscriptions/{SUB}/resourceGroups/rg-inference/providers/"
    "Microsoft.ContainerInstance/containerGroups"
)


class JournalRegistrar:
    """A FileRegistrar that also notes what it is told in the journal."""

    def __init__(self, path: Path, journal: list[str]) -> None:
        self.file = FileRegistrar(path)
        self.journal = journal

    async def register(self, name: str, address: str) -> None:
        self.journal.append(f"register {name} {address}")
        await self.file.register(name, address)

    async def deregister(self, name: str) -> None:
        self.journal.append(f"deregister {name}")
        await self.file.deregister(name)

    async def current(self) -> set[str]:
        return await self.file.current()

    def routes(self) -> dict[str, str]:
        document = json.loads(self.file.path.read_text())
        return {b["name"]: b["address"] for b in document["backends"]}


class Probe:
    """In-flight requests per group: the answers in turn, the last one repeated."""

    def __init__(self, journal: list[str], clock: FakeClock) -> None:
        self.journal, self.clock = journal, clock
        self.answers: dict[str, list[int | None]] = collections.defaultdict(lambda: [0])
        self.times_s: list[float] = []

    async def __call__(self, name: str) -> int | None:
        answers = self.answers[name]
        value = answers.pop(0) if len(answers) > 1 else answers[0]
        self.journal.append(f"in-flight {name} = {value}")
        self.times_s.append(self.clock.now())
        return value


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def journal() -> list[str]:
    return []


@pytest_asyncio.fixture
async def fake(clock: FakeClock, journal: list[str]) -> AsyncIterator[FakeArm]:
    async with FakeArm(now=clock.now, journal=journal) as fake:
        yield fake


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ssl())) as session:
        yield session


@pytest.fixture
def credential(clock: FakeClock) -> FakeCredential:
    return FakeCredential(clock.now)


@pytest.fixture
def registrar(tmp_path: Path, journal: list[str]) -> JournalRegistrar:
    return JournalRegistrar(tmp_path / "backends.json", journal)


@pytest.fixture
def probe(journal: list[str], clock: FakeClock) -> Probe:
    return Probe(journal, clock)


def settings_for(fake: FakeArm, **arm: Any) -> AciSettings:
    arm_settings = ArmSettings(
        base_url=fake.url, retry_delays_s=(1.0, 2.0, 4.0, 8.0), poll_interval_s=5.0, **arm
    )
    return AciSettings(start_timeout_s=600, drain_timeout_s=60, drain_poll_s=5, arm=arm_settings)


@pytest.fixture
def make(
    fake: FakeArm,
    session: aiohttp.ClientSession,
    credential: FakeCredential,
    clock: FakeClock,
    registrar: JournalRegistrar,
    probe: Probe,
) -> Any:
    def make(
        ref: AciRef = REF, *, settings: AciSettings | None = None, **kwargs: Any
    ) -> AciActuator:
        defaults: dict[str, Any] = {"credential": credential, "registrar": registrar}
        kwargs = defaults | {"in_flight": probe} | kwargs
        return AciActuator(
            ref,
            session=session,
            clock=clock,
            settings=settings if settings is not None else settings_for(fake),
            **kwargs,
        )

    return make


@pytest.fixture
def actuator(make: Any) -> AciActuator:
    return make()  # type: ignore[no-any-return]


def names(requests: list[Any]) -> list[str]:
    return [r.path.rsplit("/", 1)[1] for r in requests]


async def three_ready(actuator: AciActuator, journal: list[str], clock: FakeClock) -> None:
    """speech-0..2 Running and routed; the journal and the clock's sleeps start afresh."""
    await actuator.scale(3, reason="load")
    assert (await actuator.current()).ready_replicas == 3
    journal.clear()
    clock.sleeps.clear()


# --- scaling up ---


@pytest.mark.asyncio
async def test_scale_up_creates_the_lowest_indices_follows_the_operations_and_routes_ready_ones(
    fake: FakeArm,
    actuator: AciActuator,
    registrar: JournalRegistrar,
    credential: FakeCredential,
    clock: FakeClock,
) -> None:
    fake.start_delay_s = 60  # the Speech model loads for a minute after provisioning
    assert await actuator.current() == WorkloadState(TARGET, 0, 0, 0)

    await actuator.scale(3, reason="queue_depth 30 above target 10")
    puts = fake.calls("PUT")
    assert sorted(names(puts)) == ["speech-0", "speech-1", "speech-2"]
    for put in sorted(puts, key=lambda r: r.path):
        index = put.path[-1]
        assert put.path == f"{GROUPS_PATH}/speech-{index}"
        assert put.query == {"api-version": "2023-05-01"}
        assert put.body["location"] == "eastus"
        assert put.body["properties"] == TEMPLATE["properties"]  # the template, verbatim
        assert put.body["tags"] == {
            "team": "speech",
            "managed-by": "replicast",
            "replicast-target": "speech",
            "replicast-index": index,
            "replicast-created-s": "1700000000",
        }
    # Each create was followed to its end: 201 + Azure-AsyncOperation, polled every 5 s
    # (no Retry-After) until Succeeded on the second poll.
    assert len(fake.calls("GET", "/operations/")) == 6
    assert clock.sleeps == [5.0] * 6

    # Provisioned, but the containers are not Running yet: starting, and not routed.
    assert await actuator.current() == WorkloadState(TARGET, 3, 0, 3)
    assert await registrar.current() == set()

    # A minute later they run: ready, and the router gets their addresses.
    clock.advance(60)
    assert await actuator.current() == WorkloadState(TARGET, 3, 3, 0)
    assert registrar.routes() == {
        "speech-0": "10.0.0.4:5000",
        "speech-1": "10.0.0.5:5000",
        "speech-2": "10.0.0.6:5000",
    }
    # Reading again changes nothing at the router.
    routed = len(registrar.journal)
    await actuator.current()
    assert len(registrar.journal) == routed

    # Every ARM call carried the bearer token, fetched once for ARM's scope.
    assert fake.requests
    assert {r.headers["Authorization"] for r in fake.requests} == {f"Bearer {TOKEN}"}
    assert credential.scopes == [(ARM_SCOPE,)]


@pytest.mark.asyncio
async def test_scaling_to_the_size_it_has_writes_nothing(
    fake: FakeArm, actuator: AciActuator
) -> None:
    await actuator.scale(2, reason="load")
    writes = len(fake.calls("PUT")) + len(fake.calls("DELETE"))
    await actuator.scale(2, reason="unchanged")
    assert len(fake.calls("PUT")) + len(fake.calls("DELETE")) == writes == 2


@pytest.mark.asyncio
async def test_a_gap_in_the_indices_is_filled_and_the_highest_removed(
    fake: FakeArm, actuator: AciActuator, journal: list[str]
) -> None:
    # Someone deleted speech-1 by hand: speech-0 and speech-2 are left.
    fake.add_group("speech-0", port=5000)
    fake.add_group("speech-2", port=5000)
    await actuator.scale(2, reason="load")
    assert [e for e in journal if e.startswith(("PUT", "DELETE"))] == [
        "PUT speech-1",
        "DELETE speech-2",
    ]
    assert sorted(fake.groups) == ["speech-0", "speech-1"]


@pytest.mark.asyncio
async def test_the_operations_retry_after_sets_the_polling_pace(
    fake: FakeArm, actuator: AciActuator, clock: FakeClock
) -> None:
    fake.lro_retry_after_s = 3
    await actuator.scale(1, reason="load")
    assert clock.sleeps == [3.0, 3.0]


@pytest.mark.asyncio
async def test_the_list_is_followed_across_pages(make: Any, clock: FakeClock) -> None:
    async with FakeArm(now=clock.now, page_size=2) as paged:
        for name in ("speech-0", "speech-1", "speech-2"):
            paged.add_group(name, port=5000)
        actuator = make(settings=settings_for(paged))
        assert await actuator.current() == WorkloadState(TARGET, 3, 3, 0)
        assert len(paged.calls("GET", "/containerGroups$")) == 2


@pytest.mark.asyncio
async def test_only_groups_named_prefix_dash_index_are_ours(
    fake: FakeArm, actuator: AciActuator
) -> None:
    for name in ("speech-0", "speech-burst-0", "speech-x", "speech-01", "other-0", "speech"):
        fake.add_group(name, port=5000)  # made by hand: no created tag
    assert await actuator.current() == WorkloadState(TARGET, 1, 1, 0)
    # The list is enough to ignore the others: only speech-0 is read one by one.
    assert names(fake.calls("GET", "/containerGroups/")) == ["speech-0"]


def test_a_template_dns_name_label_gets_the_index() -> None:
    template = json.loads(json.dumps(TEMPLATE))
    template["properties"]["ipAddress"] |= {"type": "Public", "dnsNameLabel": "speech-demo"}
    ref = AciRef(SUB, "rg-inference", "speech", template, location="westeurope")
    body = group_body(ref, 2, now_s=1_700_000_123.4)
    assert body["properties"]["ipAddress"]["dnsNameLabel"] == "speech-demo-2"
    assert body["location"] == "westeurope"  # the target's location wins over the template's
    assert body["tags"]["replicast-created-s"] == "1700000123"
    assert template["properties"]["ipAddress"]["dnsNameLabel"] == "speech-demo"  # not changed


# --- scaling down ---


@pytest.mark.asyncio
async def test_scale_down_deregisters_drains_and_deletes_the_highest_index_first(
    fake: FakeArm,
    actuator: AciActuator,
    registrar: JournalRegistrar,
    probe: Probe,
    journal: list[str],
    clock: FakeClock,
) -> None:
    await three_ready(actuator, journal, clock)
    probe.answers["speech-2"] = [2, 0]  # two requests finish within the first poll
    await actuator.scale(1, reason="queue_depth 0")
    assert journal == [
        # The router stops sending to both first...
        "deregister speech-2",
        "deregister speech-1",
        # ...then, highest index first, each drains to zero in flight and is deleted.
        "in-flight speech-2 = 2",
        "in-flight speech-2 = 0",
        "DELETE speech-2",
        "in-flight speech-1 = 0",
        "DELETE speech-1",
    ]
    assert clock.sleeps[0] == 5.0  # one drain poll; the rest are the deletes' operations
    assert len(fake.calls("GET", "/operationResults/")) == 4  # 202 + Location, polled twice each
    assert sorted(fake.groups) == ["speech-0"]
    assert registrar.routes() == {"speech-0": "10.0.0.4:5000"}
    assert await actuator.current() == WorkloadState(TARGET, 1, 1, 0)


@pytest.mark.parametrize("in_flight", [3, None], ids=["busy", "no-data"])
@pytest.mark.asyncio
async def test_a_drain_gives_up_after_drain_timeout_s(
    fake: FakeArm,
    actuator: AciActuator,
    probe: Probe,
    journal: list[str],
    clock: FakeClock,
    in_flight: int | None,
) -> None:
    await three_ready(actuator, journal, clock)
    # A stuck stream keeps speech-2 busy; or the metric is missing, which never means idle.
    probe.answers["speech-2"] = [in_flight]
    start_s = clock.now()
    await actuator.scale(2, reason="load is gone")
    # Polled every 5 s for the whole minute, then deleted anyway.
    assert [t - start_s for t in probe.times_s] == [5.0 * i for i in range(13)]
    assert journal[-1] == "DELETE speech-2"
    assert sorted(fake.groups) == ["speech-0", "speech-1"]


@pytest.mark.asyncio
async def test_without_a_probe_the_whole_drain_time_passes(
    fake: FakeArm, make: Any, journal: list[str], clock: FakeClock
) -> None:
    actuator = make(in_flight=None)
    await three_ready(actuator, journal, clock)
    await actuator.scale(2, reason="load is gone")
    assert journal == ["deregister speech-2", "DELETE speech-2"]
    assert clock.sleeps[0] == 60.0


@pytest.mark.asyncio
async def test_deleting_a_group_that_is_already_gone_is_fine(
    fake: FakeArm, actuator: AciActuator, journal: list[str], clock: FakeClock
) -> None:
    await three_ready(actuator, journal, clock)
    fake.inject("DELETE", r"/speech-2$", status=404)
    await actuator.scale(2, reason="load is gone")
    assert clock.sleeps == []  # no retry, no operation to follow
    assert "DELETE speech-2" not in journal  # the fault answered before the fake's handler


@pytest.mark.asyncio
async def test_a_group_that_stops_running_is_taken_out_of_the_router(
    fake: FakeArm,
    actuator: AciActuator,
    registrar: JournalRegistrar,
    journal: list[str],
    clock: FakeClock,
) -> None:
    await three_ready(actuator, journal, clock)
    fake.groups["speech-1"]["_state"] = "Stopped"  # someone ran az container stop
    state = await actuator.current()
    assert journal == ["deregister speech-1"]
    assert (state.replicas, state.ready_replicas, state.unschedulable_replicas) == (3, 2, 1)
    assert sorted(registrar.routes()) == ["speech-0", "speech-2"]


# --- groups that do not come up ---


@pytest.mark.asyncio
async def test_a_group_pending_past_start_timeout_is_a_condition_not_capacity(
    fake: FakeArm,
    actuator: AciActuator,
    probe: Probe,
    journal: list[str],
    clock: FakeClock,
) -> None:
    fake.hold_pending = True  # the image never finishes pulling
    await actuator.scale(1, reason="load")
    # Ten minutes after it was created (the replicast-created-s tag), it still counts as starting.
    assert await actuator.current() == WorkloadState(TARGET, 1, 0, 1)
    clock.now_s = 1_700_000_000 + 600
    assert (await actuator.current()).starting_replicas == 1
    # A second later it has failed to start: no capacity, and a condition saying why.
    clock.advance(1)
    state = await actuator.current()
    assert (state.replicas, state.ready_replicas, state.starting_replicas) == (1, 0, 0)
    assert state.unschedulable_replicas == 1
    condition = state.condition(ConditionType.CAPACITY_EXHAUSTED)
    assert condition is not None
    assert condition.message == (
        "1 container group(s) failed to start (Failed, or not Running after 600 s): speech-0 "
        '(Succeeded/Pending: pulling image "example.com/app:1"); scale-up paused until they run '
        "or are deleted (az container delete -g rg-inference -n speech-0)"
    )
    with pytest.raises(ScaleRefusedError, match="scale-up paused"):
        await actuator.scale(2, reason="load")
    # Scaling down still works, and a group that never took traffic is not drained.
    journal.clear()
    await actuator.scale(0, reason="give up")
    assert journal == ["DELETE speech-0"]
    assert fake.groups == {}


@pytest.mark.asyncio
async def test_a_failed_create_is_a_permanent_error_and_a_condition(
    fake: FakeArm, actuator: AciActuator
) -> None:
    fake.fail_create = {
        "code": "ServiceUnavailable",
        "message": "The requested resource is not available in the location 'eastus' at this "
        "moment. Please retry with a different resource request or in another location.",
    }
    with pytest.raises(OperationFailedError) as caught:
        await actuator.scale(1, reason="load")
    assert str(caught.value).startswith(
        f"{TARGET}: create speech-0: Failed: ServiceUnavailable: The requested resource"
    )
    state = await actuator.current()
    assert (state.replicas, state.starting_replicas, state.unschedulable_replicas) == (1, 0, 1)
    condition = state.condition(ConditionType.CAPACITY_EXHAUSTED)
    assert condition is not None
    assert "speech-0 (Failed/Pending" in condition.message


# --- ARM failures ---


@pytest.mark.asyncio
async def test_throttling_waits_as_long_as_arm_asks_capped(
    fake: FakeArm, actuator: AciActuator, clock: FakeClock
) -> None:
    fake.inject("GET", r"/containerGroups$", status=429, retry_after_s=7, times=2)
    assert await actuator.current() == WorkloadState(TARGET, 0, 0, 0)
    assert clock.sleeps == [7.0, 7.0]  # Retry-After wins over the 1 s, 2 s backoff
    fake.inject("GET", r"/containerGroups$", status=429, retry_after_s=3600)
    await actuator.current()
    assert clock.sleeps[-1] == 60.0  # capped at max_retry_after_s


@pytest.mark.asyncio
async def test_server_errors_retry_with_the_configured_backoff_then_give_up(
    fake: FakeArm, actuator: AciActuator, clock: FakeClock
) -> None:
    fake.inject("GET", r"/containerGroups$", status=500, times=5)
    with pytest.raises(TemporaryError) as caught:
        await actuator.current()
    assert clock.sleeps == [1.0, 2.0, 4.0, 8.0]
    assert caught.value.delay_s == 8.0
    assert str(caught.value) == (
        f"{TARGET}: list container groups: 500: InternalServerError: injected 500"
    )


@pytest.mark.asyncio
async def test_a_conflict_is_temporary(
    fake: FakeArm, actuator: AciActuator, clock: FakeClock
) -> None:
    # The group is still transitioning from an earlier operation: retried, then it works.
    fake.inject("PUT", r"/speech-0$", status=409)
    await actuator.scale(1, reason="load")
    assert names(fake.calls("PUT")) == ["speech-0", "speech-0"]
    assert clock.sleeps[0] == 1.0
    # It keeps conflicting: a temporary error for the loop to retry on a later tick.
    fake.inject("PUT", r"/speech-1$", status=409, times=5)
    with pytest.raises(TemporaryError, match=r"create speech-1: conflict \(409\): Container"):
        await actuator.scale(2, reason="load")


@pytest.mark.asyncio
async def test_a_slow_answer_times_out_as_a_temporary_error(
    fake: FakeArm, make: Any, clock: FakeClock
) -> None:
    settings = AciSettings(
        arm=ArmSettings(base_url=fake.url, request_timeout_s=0.05, retry_delays_s=(0.5,))
    )
    actuator = make(settings=settings)
    fake.inject("GET", r"/containerGroups$", delay_s=0.2, times=2)
    with pytest.raises(TemporaryError, match=r"list container groups: no answer within 0.05 s"):
        await actuator.current()
    assert clock.sleeps == [0.5]


@pytest.mark.asyncio
async def test_a_refused_token_is_a_permanent_one_line_error(
    fake: FakeArm, make: Any, clock: FakeClock
) -> None:
    actuator = make(credential=FakeCredential(clock.now, token="expired"))
    with pytest.raises(PermanentError) as caught:
        await actuator.current()
    assert str(caught.value) == (
        f"{TARGET}: list container groups: forbidden (401): AuthenticationFailed: "
        "Authentication failed. The 'Authorization' header is invalid.; grant the controller's "
        "identity access to it (e.g. Contributor on the resource group)"
    )
    assert clock.sleeps == []  # not retried


@pytest.mark.asyncio
async def test_a_missing_resource_group_says_what_to_check(make: Any, clock: FakeClock) -> None:
    actuator = make(AciRef(SUB, "rg-typo", "speech", TEMPLATE))
    with pytest.raises(PermanentError) as caught:
        await actuator.current()
    assert str(caught.value) == (
        "aci rg-typo/speech-*: list container groups: not found (404): ResourceGroupNotFound: "
        "Resource group 'rg-typo' could not be found.; check the target's subscription_id and "
        "resource_group"
    )


@pytest.mark.asyncio
async def test_an_operation_url_elsewhere_gets_no_token(
    fake: FakeArm, actuator: AciActuator
) -> None:
    fake.operation_base = "https://203.0.113.7"
    with pytest.raises(PermanentError, match=r"is not on https://127\.0\.0\.1:.*not sending it"):
        await actuator.scale(1, reason="load")


def test_a_token_never_goes_over_plain_http() -> None:
    with pytest.raises(ValueError, match="base_url: must start with https://"):
        ArmSettings(base_url="http://127.0.0.1:8080")


# --- crashes ---


async def crash(actuator: AciActuator, replicas: int, fault: Any) -> None:
    """Run scale(replicas) until the request `fault` hangs arrives, then cut it there."""
    task = asyncio.create_task(actuator.scale(replicas, reason="load"))
    await asyncio.wait_for(fault.hit.wait(), timeout=5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@pytest.mark.asyncio
async def test_scale_up_cut_mid_way_converges_when_run_again(
    fake: FakeArm, make: Any, journal: list[str]
) -> None:
    await crash(make(), 3, fake.inject("PUT", r"/speech-2$", hang=True))
    fake.finish_operations()  # Azure finishes the two creates that did start
    assert sorted(fake.groups) == ["speech-0", "speech-1"]
    # A new controller process (nothing in memory) is asked the same.
    again = make()
    await again.scale(3, reason="load")
    puts = collections.Counter(names(fake.calls("PUT")))
    assert puts == {"speech-0": 1, "speech-1": 1, "speech-2": 2}  # only the missing one again
    assert await again.current() == WorkloadState(TARGET, 3, 3, 0)
    await again.scale(3, reason="load")
    assert len(fake.calls("PUT")) == 4


@pytest.mark.asyncio
async def test_scale_down_cut_mid_way_converges_when_run_again(
    fake: FakeArm,
    make: Any,
    registrar: JournalRegistrar,
    journal: list[str],
    clock: FakeClock,
) -> None:
    await three_ready(make(), journal, clock)
    await crash(make(), 1, fake.inject("DELETE", r"/speech-2$", hang=True))
    assert sorted(fake.groups) == ["speech-0", "speech-1", "speech-2"]
    assert sorted(registrar.routes()) == ["speech-0"]  # both were deregistered before draining
    journal.clear()
    again = make()
    await again.scale(1, reason="load")
    assert journal == [
        "in-flight speech-2 = 0",
        "DELETE speech-2",
        "in-flight speech-1 = 0",
        "DELETE speech-1",
    ]
    assert sorted(fake.groups) == ["speech-0"]
    assert await again.current() == WorkloadState(TARGET, 1, 1, 0)


# --- the pure parts ---


def group(index: int, phase: Phase = Phase.READY) -> Group:
    return Group(f"speech-{index}", index, phase, f"10.0.0.{index + 4}:5000", "")


@pytest.mark.parametrize(
    ("present", "replicas", "create", "delete", "waiting"),
    [
        pytest.param([], 3, (0, 1, 2), (), (), id="from-zero"),
        pytest.param([0, 1, 2], 1, (), (2, 1), (), id="down-highest-first"),
        pytest.param([0, 2], 2, (1,), (2,), (), id="fill-the-gap"),
        pytest.param([0, 1], 2, (), (), (), id="nothing-to-do"),
        pytest.param([0, 1, 2], 0, (), (2, 1, 0), (), id="to-zero"),
    ],
)
def test_scale_plan(
    present: list[int],
    replicas: int,
    create: tuple[int, ...],
    delete: tuple[int, ...],
    waiting: tuple[int, ...],
) -> None:
    plan = scale_plan([group(i) for i in present], replicas)
    assert (plan.create, plan.delete, plan.waiting) == (create, delete, waiting)


def test_scale_plan_leaves_a_group_being_deleted_alone_until_it_is_gone() -> None:
    groups = [group(0), group(1, Phase.DELETING), group(2, Phase.DELETING)]
    plan = scale_plan(groups, 2)
    assert (plan.create, plan.delete, plan.waiting) == ((), (), (1,))


def test_route_plan() -> None:
    ready = {"speech-0": "10.0.0.4:5000", "speech-1": "10.0.0.9:5000", "speech-3": "10.0.0.7:5000"}
    registered = {"speech-0", "speech-1", "speech-2"}
    routed = {"speech-0": "10.0.0.4:5000", "speech-1": "10.0.0.5:5000"}  # speech-1 moved
    plan = route_plan(ready, registered, routed)
    assert plan.register == {"speech-1": "10.0.0.9:5000", "speech-3": "10.0.0.7:5000"}
    assert plan.deregister == ("speech-2",)


@pytest.mark.parametrize(
    ("provisioning", "state", "age_s", "phase"),
    [
        ("Succeeded", "Running", 5, Phase.READY),
        ("Creating", None, 5, Phase.STARTING),
        ("Succeeded", "Pending", 600, Phase.STARTING),
        ("Succeeded", "Pending", 601, Phase.NOT_STARTED),
        ("Failed", None, 5, Phase.FAILED),
        ("Succeeded", "Stopped", 5, Phase.FAILED),
        ("Deleting", "Running", 5, Phase.DELETING),
    ],
)
def test_classify(provisioning: str, state: str | None, age_s: float, phase: Phase) -> None:
    properties: dict[str, Any] = {
        "provisioningState": provisioning,
        "ipAddress": {"ip": "10.0.0.4", "ports": [{"port": 5000}]},
    }
    if state is not None:
        properties["instanceView"] = {"state": state}
    body = {"name": "speech-0", "tags": {"replicast-created-s": "1000"}, "properties": properties}
    got = classify(REF, body, now_s=1000 + age_s, first_seen_s=0, start_timeout_s=600)
    assert got is not None
    assert (got.phase, got.address) == (phase, "10.0.0.4:5000")


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after_s({"Retry-After": "17"}, now_s=0) == 17
    assert retry_after_s({"Retry-After": "Wed, 21 Oct 2015 07:28:30 GMT"}, now_s=1445412480) == 30
    assert retry_after_s({"Retry-After": "soon"}, now_s=0) is None
    assert retry_after_s({}, now_s=0) is None


@pytest.mark.asyncio
async def test_one_rejected_create_fails_the_scale_but_not_the_others(
    fake: FakeArm, actuator: AciActuator
) -> None:
    fake.inject("PUT", r"/speech-1$", status=400, code="InaccessibleImage")
    with pytest.raises(PermanentError) as caught:
        await actuator.scale(3, reason="load")
    assert str(caught.value) == (
        f"{TARGET}: create speech-1: rejected (400): InaccessibleImage: injected 400"
    )
    assert sorted(fake.groups) == ["speech-0", "speech-2"]


@pytest.mark.asyncio
async def test_a_group_whose_delete_failed_is_routed_again(
    fake: FakeArm,
    actuator: AciActuator,
    registrar: JournalRegistrar,
    journal: list[str],
    clock: FakeClock,
) -> None:
    await three_ready(actuator, journal, clock)
    fake.inject("DELETE", r"/speech-2$", status=500, times=5)
    with pytest.raises(TemporaryError, match="delete speech-2: 500"):
        await actuator.scale(2, reason="quiet")
    # It still runs, so the next read sends traffic to it again until a delete succeeds.
    await actuator.current()
    assert journal[-1] == "register speech-2 10.0.0.6:5000"
    await actuator.scale(2, reason="quiet")
    assert sorted(fake.groups) == ["speech-0", "speech-1"]
    assert sorted(registrar.routes()) == ["speech-0", "speech-1"]


@pytest.mark.asyncio
async def test_without_a_credential_it_makes_and_closes_a_default_azure_credential(
    session: aiohttp.ClientSession,
) -> None:
    actuator = AciActuator(REF, session=session)
    assert type(actuator.credential).__name__ == "DefaultAzureCredential"
    await actuator.aclose()
