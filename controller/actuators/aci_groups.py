"""ACI container groups as the actuator sees them: which, made how, and read how (pure).

`AciRef` names the groups (`{name_prefix}-{index}`) and `group_body` makes one from the
template with the tags the controller finds them by. In: container group bodies (list and GET
answers), `now_s`, the start timeout. Out: each group's `Phase` (ready: provisioningState
Succeeded and instanceView Running; starting, for at most `start_timeout_s`; failed to start:
past that bound, or Failed/Stopped), the target's `WorkloadState` (failed starts are a
CapacityExhausted condition, not capacity), and the plans the actuator carries out:
`scale_plan` (which indices to create, which to drain and delete, highest first) and
`route_plan` (which ready groups to register, which to deregister).
"""

from __future__ import annotations

import copy
import enum
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from controller.actuators.base import (
    ConditionType,
    WorkloadCondition,
    WorkloadState,
)
from controller.arm import (
    ArmSettings,
)
from policies.text import one_line

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)

ACI_API_VERSION = "2023-05-01"

# Tags on every group (Azure tag names may not contain "/", so no "replicast.io/..." here).
MANAGED_BY_TAG = "managed-by"
TARGET_TAG = "replicast-target"
INDEX_TAG = "replicast-index"
CREATED_TAG = "replicast-created-s"  # Unix seconds from the controller's clock: start timeouts


# --- What to scale, and how ---


@dataclass(frozen=True, slots=True)
class AciRef:
    """Which groups: `{name_prefix}-{index}` in `resource_group`, each made from `template`
    (an ARM Microsoft.ContainerInstance/containerGroups body: location, tags, properties)."""

    subscription_id: str
    resource_group: str
    name_prefix: str
    template: Mapping[str, Any] = field(hash=False)
    location: str | None = None  # default: the template's

    def __post_init__(self) -> None:
        for name in ("subscription_id", "resource_group", "name_prefix"):
            if not getattr(self, name):
                raise ValueError(f"{name}: must not be empty (aci target {self.name_prefix!r})")
        containers = (self.template.get("properties") or {}).get("containers")
        if not isinstance(containers, list) or not containers:
            raise ValueError(
                "template: must be a container group body with properties.containers: [...] "
                f"(aci target {self.name_prefix!r})"
            )
        if not (self.location or self.template.get("location")):
            raise ValueError(
                f"location: set it on the target or in the template (aci target "
                f"{self.name_prefix!r})"
            )

    def __str__(self) -> str:
        return f"aci {self.resource_group}/{self.name_prefix}-*"

    @property
    def collection_path(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            "/providers/Microsoft.ContainerInstance/containerGroups"
        )

    def group_name(self, index: int) -> str:
        return f"{self.name_prefix}-{index}"

    def index_of(self, name: str) -> int | None:
        """The index of one of our groups' names; None for any other name."""
        match = re.fullmatch(rf"{re.escape(self.name_prefix)}-(0|[1-9][0-9]*)", name)
        return int(match.group(1)) if match else None


@dataclass(frozen=True, slots=True)
class AciSettings:
    # Created and not Running for longer than this: failed to start (a condition, not capacity).
    start_timeout_s: float = 900.0
    # Before deleting a group that took traffic: wait for in-flight 0, at most this long.
    drain_timeout_s: float = 120.0
    drain_poll_s: float = 5.0
    port: int | None = None  # the port traffic goes to; default the first of ipAddress.ports
    max_parallel_calls: int = 8  # creates and reads at once
    api_version: str = ACI_API_VERSION
    arm: ArmSettings = field(default_factory=ArmSettings)


InFlightProbe = Callable[[str], Awaitable[int | None]]  # group name -> requests in flight


def group_body(ref: AciRef, index: int, *, now_s: float) -> dict[str, Any]:
    """The PUT body of group `index`: the template, its location, and our tags. A template's
    dnsNameLabel gets the index appended (labels are unique per region)."""
    body = copy.deepcopy(dict(ref.template))
    body["location"] = ref.location or body["location"]
    body["tags"] = {
        **(body.get("tags") or {}),
        MANAGED_BY_TAG: "replicast",
        TARGET_TAG: ref.name_prefix,
        INDEX_TAG: str(index),
        CREATED_TAG: f"{now_s:.0f}",
    }
    ip_address = body["properties"].get("ipAddress")
    if isinstance(ip_address, dict) and ip_address.get("dnsNameLabel"):
        ip_address["dnsNameLabel"] = f"{ip_address['dnsNameLabel']}-{index}"
    return body


# --- Reading groups: pure functions of what ARM returned ---


class Phase(enum.StrEnum):
    READY = "Ready"
    STARTING = "Starting"
    NOT_STARTED = "NotStarted"  # not Running after start_timeout_s
    FAILED = "Failed"  # provisioning Failed/Canceled, or its containers Stopped
    DELETING = "Deleting"


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    index: int
    phase: Phase
    address: str | None  # "ip:port" once it has an IP address
    detail: str  # "provisioningState/state: last event", for messages


def _address(properties: Mapping[str, Any], port: int | None) -> str | None:
    ip_address = properties.get("ipAddress") or {}
    ip = ip_address.get("ip")
    ports = [p.get("port") for p in ip_address.get("ports") or () if isinstance(p, dict)]
    chosen = port if port is not None else next((p for p in ports if p), None)
    if not ip or chosen is None:
        return None
    return f"[{ip}]:{chosen}" if ":" in str(ip) else f"{ip}:{chosen}"


def _last_event(properties: Mapping[str, Any]) -> str:
    """The newest message ACI gave about the group or its containers (image pulls, crashes)."""
    messages = [e.get("message") for e in (properties.get("instanceView") or {}).get("events", ())]
    for container in properties.get("containers") or ():
        view = (container.get("properties") or {}).get("instanceView") or {}
        messages += [e.get("message") for e in view.get("events") or ()]
        messages.append((view.get("currentState") or {}).get("detailStatus"))
    return one_line(next((m for m in reversed(messages) if m), ""))


def classify(
    ref: AciRef,
    body: Mapping[str, Any],
    *,
    now_s: float,
    first_seen_s: float,
    start_timeout_s: float,
    port: int | None = None,
) -> Group | None:
    """What one group is now; None when it is not one of ours (another name)."""
    name = str(body.get("name", ""))
    index = ref.index_of(name)
    if index is None:
        return None
    properties = body.get("properties") or {}
    provisioning = str(properties.get("provisioningState") or "")
    state = str((properties.get("instanceView") or {}).get("state") or "")
    detail = f"{provisioning or 'no provisioningState'}/{state or 'no state'}"
    event = _last_event(properties)
    detail = f"{detail}: {event}" if event else detail
    try:
        created_s = float((body.get("tags") or {})[CREATED_TAG])
    except (KeyError, TypeError, ValueError):
        created_s = first_seen_s  # made by someone else: age counts from our first sight
    if provisioning == "Deleting":
        phase = Phase.DELETING
    elif provisioning in ("Failed", "Canceled") or state in ("Stopped", "Failed", "Succeeded"):
        phase = Phase.FAILED  # "Succeeded": every container exited; nothing serves
    elif provisioning == "Succeeded" and state == "Running":
        phase = Phase.READY
    elif now_s - created_s <= start_timeout_s:
        phase = Phase.STARTING
    else:
        phase = Phase.NOT_STARTED
    return Group(name, index, phase, _address(properties, port), detail)


def workload_state(
    ref: AciRef, groups: Iterable[Group], *, start_timeout_s: float
) -> WorkloadState:
    """What one read means: counts for the Observation, a condition for groups not coming up."""
    live = [g for g in groups if g.phase is not Phase.DELETING]
    broken = [g for g in live if g.phase in (Phase.NOT_STARTED, Phase.FAILED)]
    broken.sort(key=lambda g: g.index)
    conditions: tuple[WorkloadCondition, ...] = ()
    if broken:
        shown = "; ".join(f"{g.name} ({g.detail})" for g in broken[:3])
        more = f"; and {len(broken) - 3} more" if len(broken) > 3 else ""
        message = (
            f"{len(broken)} container group(s) failed to start (Failed, or not Running after "
            f"{start_timeout_s:g} s): {shown}{more}; scale-up paused until they run or are "
            f"deleted (az container delete -g {ref.resource_group} -n {broken[0].name})"
        )
        conditions = (WorkloadCondition(ConditionType.CAPACITY_EXHAUSTED, message),)
    return WorkloadState(
        target=str(ref),
        replicas=len(live),
        ready_replicas=sum(1 for g in live if g.phase is Phase.READY),
        starting_replicas=sum(1 for g in live if g.phase is Phase.STARTING),
        conditions=conditions,
        unschedulable_replicas=len(broken),
    )


@dataclass(frozen=True, slots=True)
class ScalePlan:
    create: tuple[int, ...]  # missing wanted indices, lowest first
    delete: tuple[int, ...]  # unwanted indices, highest first
    waiting: tuple[int, ...]  # wanted, but still being deleted: created once gone

    def __bool__(self) -> bool:
        return bool(self.create or self.delete or self.waiting)


def scale_plan(groups: Iterable[Group], replicas: int) -> ScalePlan:
    """Groups 0..replicas-1 are wanted; the rest go. Deleting groups are neither re-deleted
    nor re-created until they are gone."""
    present = {g.index: g for g in groups}
    deleting = {i for i, g in present.items() if g.phase is Phase.DELETING}
    return ScalePlan(
        create=tuple(i for i in range(replicas) if i not in present),
        delete=tuple(sorted(i for i in present if i >= replicas and i not in deleting)[::-1]),
        waiting=tuple(sorted(i for i in deleting if i < replicas)),
    )


@dataclass(frozen=True, slots=True)
class RoutePlan:
    register: dict[str, str]  # name -> address
    deregister: tuple[str, ...]


def route_plan(
    ready: Mapping[str, str], registered: Iterable[str], routed: Mapping[str, str]
) -> RoutePlan:
    """Ready groups the router lacks (or has at an address we did not give it: ACI may move a
    restarted group) get registered; names it routes to that are not ready get deregistered."""
    known = set(registered)
    return RoutePlan(
        register={n: a for n, a in sorted(ready.items()) if n not in known or routed.get(n) != a},
        deregister=tuple(sorted(known - set(ready))),
    )
