"""Azure Container Instances actuator: N container groups made from one template, through ARM.

ACI has no autoscaler, so replicast keeps the groups itself. In: an `AciRef` (subscription,
resource group, name prefix, location, a container group body as the template), an aiohttp
session, an azure-identity async credential, and optionally a `Registrar`
(controller/registrars.py: who routes traffic to the groups) and an in-flight probe. Out, per
read: a `WorkloadState` from the groups named `{prefix}-{index}`: ready (provisioningState
Succeeded and instanceView state Running), starting (not Running yet, for at most
`start_timeout_s`), failed to start (past that bound, or Failed/Stopped: a CapacityExhausted
condition, not capacity, as Pending pods are for Kubernetes). On `scale(n)`: `{prefix}-0` ..
`{prefix}-{n-1}` are wanted; missing ones are created (PUT), higher ones are deregistered,
drained (in-flight 0 or `drain_timeout_s`) and deleted, highest index first. The names make
`scale` idempotent: re-run after a crash, it finishes what is left. Each read also keeps the
registrar in step with the ready groups, since groups become ready between ticks.

Why raw ARM REST and not azure-mgmt-containerinstance: the issue says the SDK lacks newer ACI
resources; its 11.0 release notes list NGroups and container group profiles, so that gap is
closing, but the reasons that remain decide it: (1) the template is sent verbatim, so
properties newer than the SDK's generated models still reach ARM (the models serialize only
the attributes they know); (2) retries and long-running-operation polls go through the
injected `Clock` and the backoff in settings (STYLE 6 and 8), where azure-core's pollers and
retry policy sleep on their own; (3) one HTTP stack, the injected aiohttp session, as the
Prometheus source uses, and tested over real HTTPS against an in-process fake ARM. Four calls
(list, get, put, delete) and ARM's async-operation protocol are little code.

API version: Microsoft.ContainerInstance 2023-05-01, a GA version whose containerGroups
reference documents every field used here (the .NET SDK now defaults to 2025-09-01; set
`AciSettings.api_version` to move, the template passes through either way).
Permissions on the resource group: Microsoft.ContainerInstance/containerGroups read, write and
delete (the built-in Contributor role has them).
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiohttp

from controller.actuators.aci_groups import (
    AciRef,
    AciSettings,
    Group,
    InFlightProbe,
    Phase,
    RoutePlan,
    ScalePlan,
    classify,
    group_body,
    route_plan,
    scale_plan,
    workload_state,
)
from controller.actuators.base import (
    ActuatorError,
    Clock,
    PermanentError,
    ScaleRefusedError,
    SystemClock,
    TemporaryError,
    WorkloadState,
)
from controller.arm import (
    ArmClient,
    NotFoundError,
    TokenCredential,
    default_credential,
)

if TYPE_CHECKING:
    from controller.registrars import Registrar

logger = logging.getLogger(__name__)

__all__ = [  # the groups' pure reading lives in aci_groups.py; callers import it from here too
    "AciActuator", "AciRef", "AciSettings", "Group", "Phase", "RoutePlan", "ScalePlan",
    "classify", "group_body", "route_plan", "scale_plan", "workload_state",
]  # fmt: skip

# --- The actuator ---


class AciActuator:
    """`current()` and `scale(n, reason=...)` for the container groups of one `AciRef`."""

    def __init__(
        self,
        target: AciRef,
        *,
        session: aiohttp.ClientSession,
        credential: TokenCredential | None = None,
        clock: Clock | None = None,
        settings: AciSettings | None = None,
        registrar: Registrar | None = None,
        in_flight: InFlightProbe | None = None,
    ) -> None:
        self.target = target
        self.settings = settings if settings is not None else AciSettings()
        self.clock = clock if clock is not None else SystemClock()
        self._own_credential = credential is None
        self.credential = credential if credential is not None else default_credential()
        self.registrar = registrar
        self._in_flight = in_flight
        self._arm = ArmClient(
            session=session,
            credential=self.credential,
            clock=self.clock,
            settings=self.settings.arm,
        )
        self._first_seen: dict[str, float] = {}
        self._routed: dict[str, str] = {}  # name -> the address we registered
        self._draining: set[str] = set()

    async def current(self) -> WorkloadState:
        groups = await self._read()
        try:
            await self._sync_routes(groups)
        except ActuatorError as error:  # the router is not the workload: retried next read
            logger.warning("%s: routes not updated: %s", self.target, error)
        return self._state(groups)

    async def scale(self, replicas: int, *, reason: str) -> None:
        """Create the missing groups below `replicas`, drain and delete those above it."""
        if replicas < 0:
            raise ValueError(f"{self.target}: replicas must be >= 0 (got {replicas})")
        groups = await self._read()
        state = self._state(groups)
        plan = scale_plan(groups, replicas)
        if not plan:
            return
        refusal = state.refusal(replicas) if replicas != state.replicas else None
        if refusal is not None:
            raise ScaleRefusedError(str(self.target), replicas, refusal)
        logger.info("%s: scaling %d -> %d: %s", self.target, state.replicas, replicas, reason)
        await self._create(plan.create)
        await self._remove([g for i in plan.delete for g in groups if g.index == i])
        if plan.waiting:
            names = ", ".join(self.target.group_name(i) for i in plan.waiting)
            raise TemporaryError(
                f"{self.target}: {names} still being deleted; created again once gone",
                delay_s=self.settings.arm.poll_interval_s,
            )

    async def aclose(self) -> None:
        """Close the credential this actuator made and its registrar (not the caller's session)."""
        close = getattr(self.credential, "close", None)
        if self._own_credential and close is not None:
            await close()
        close_registrar = getattr(self.registrar, "aclose", None)
        if close_registrar is not None:
            await close_registrar()

    # --- reading ---

    def _state(self, groups: Sequence[Group]) -> WorkloadState:
        return workload_state(self.target, groups, start_timeout_s=self.settings.start_timeout_s)

    def _url(self, name: str | None = None) -> str:
        path = self.target.collection_path + (f"/{urllib.parse.quote(name)}" if name else "")
        return self._arm.url(path, self.settings.api_version)

    async def _read(self) -> list[Group]:
        t = self.target
        try:
            listed = await self._arm.pages(f"{t}: list container groups", self._url())
        except NotFoundError as error:
            raise NotFoundError(
                f"{error}; check the target's subscription_id and resource_group"
            ) from error
        ours = [b for b in listed if t.index_of(str(b.get("name", ""))) is not None]
        # ARM's list leaves out instanceView: read those groups one by one.
        limit = asyncio.Semaphore(self.settings.max_parallel_calls)

        async def detailed(body: dict[str, Any]) -> dict[str, Any] | None:
            if "instanceView" in (body.get("properties") or {}):
                return body
            name = str(body["name"])
            async with limit:
                try:
                    got = await self._arm.call(f"{t}: get {name}", "GET", self._url(name))
                except NotFoundError:
                    return None  # deleted since the list
            return got.body if isinstance(got.body, dict) else None

        now_s = self.clock.now()
        bodies = [b for b in await asyncio.gather(*(detailed(b) for b in ours)) if b is not None]
        seen = {str(b.get("name")): self._first_seen.get(str(b.get("name")), now_s) for b in bodies}
        self._first_seen = seen  # forget groups that are gone
        groups = []
        for body in bodies:
            first_seen_s = seen[str(body.get("name"))]
            group = classify(
                t,
                body,
                now_s=now_s,
                first_seen_s=first_seen_s,
                start_timeout_s=self.settings.start_timeout_s,
                port=self.settings.port,
            )
            if group is not None:
                groups.append(group)
        return sorted(groups, key=lambda g: g.index)

    # --- routing ---

    async def _registered(self) -> set[str]:
        if self.registrar is None:
            return set()
        return {n for n in await self.registrar.current() if self.target.index_of(n) is not None}

    async def _sync_routes(self, groups: Sequence[Group]) -> None:
        if self.registrar is None:
            return
        ready = {
            g.name: g.address
            for g in groups
            if g.phase is Phase.READY and g.address and g.name not in self._draining
        }
        plan = route_plan(ready, await self._registered(), self._routed)
        for name in plan.deregister:
            await self.registrar.deregister(name)
            self._routed.pop(name, None)
        for name, address in plan.register.items():
            await self.registrar.register(name, address)
            self._routed[name] = address
            logger.info("%s: routing to %s at %s", self.target, name, address)

    # --- writing ---

    async def _create(self, indices: Sequence[int]) -> None:
        """PUT the missing groups (a few at a time) and follow their operations to the end."""
        limit = asyncio.Semaphore(self.settings.max_parallel_calls)

        async def create(index: int) -> None:
            name = self.target.group_name(index)
            what = f"{self.target}: create {name}"
            body = group_body(self.target, index, now_s=self.clock.now())
            async with limit:
                response = await self._arm.call(what, "PUT", self._url(name), body=body)
            await self._arm.follow(what, response)

        outcomes = await asyncio.gather(*(create(i) for i in indices), return_exceptions=True)
        errors = [e for e in outcomes if isinstance(e, BaseException)]
        if not errors:
            return
        # One is raised (a permanent one first: a person must act on it); the rest are logged.
        raised = next((e for e in errors if isinstance(e, PermanentError)), errors[0])
        for error in errors:
            if error is not raised:
                logger.warning("%s", error)
        raise raised

    async def _remove(self, victims: Sequence[Group]) -> None:
        """Stop routing to every victim, then, highest index first, drain it and delete it."""
        routed = await self._registered() | set(self._routed)
        took_traffic = {g.name for g in victims if g.phase is Phase.READY or g.name in routed}
        try:
            for group in victims:
                if self.registrar is not None and group.name in routed:
                    self._draining.add(group.name)  # not re-registered by a read meanwhile
                    await self.registrar.deregister(group.name)
                    self._routed.pop(group.name, None)
            for group in victims:
                if group.name in took_traffic:
                    await self._drain(group.name)
                await self._delete(group.name)
        finally:  # a group that is still there after a failure is routed again if ready
            self._draining.difference_update(g.name for g in victims)

    async def _drain(self, name: str) -> None:
        """Wait until `name` has no request in flight, or `drain_timeout_s`. A probe answering
        None (no data) never counts as idle; without a probe the whole drain time passes."""
        s = self.settings
        deadline_s = self.clock.now() + s.drain_timeout_s
        if self._in_flight is None:
            await self.clock.sleep(s.drain_timeout_s)
            return
        while True:
            try:
                count = await self._in_flight(name)
            except Exception as error:  # a broken probe must not keep a group forever
                logger.warning("%s: in-flight probe for %s failed: %s", self.target, name, error)
                count = None
            if count == 0:
                return
            left_s = deadline_s - self.clock.now()
            if left_s <= 0:
                logger.warning(
                    "%s: %s still has %s request(s) in flight after %g s; deleting it anyway",
                    self.target,
                    name,
                    "unknown" if count is None else count,
                    s.drain_timeout_s,
                )
                return
            await self.clock.sleep(min(s.drain_poll_s, left_s))

    async def _delete(self, name: str) -> None:
        what = f"{self.target}: delete {name}"
        try:
            response = await self._arm.call(what, "DELETE", self._url(name))
        except NotFoundError:
            return  # already gone
        if response.status != 204:  # 204: there was nothing to delete
            await self._arm.follow(what, response)
        logger.info("%s: deleted %s", self.target, name)
