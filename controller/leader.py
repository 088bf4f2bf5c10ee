"""Leader election with a coordination.k8s.io/v1 Lease.

In: a kubernetes-asyncio `ApiClient` of its own (controller/run.py gives the elector its own
client and connection pool, so renewals never queue behind target reads), the Lease's namespace
and name, this replica's identity (its pod name), an injected `Clock`. Out: `is_leader` (only
the holder acts), a renewal every `retry_period_s` (`step`, or `run` until stopped) and a
release on stop. The loop (controller/loop.py) asks `is_leader` before it actuates; the
policies' state lives in controller/state_store.py, not on the Lease.

Semantics follow client-go's leaderelection. A challenger judges expiry by its own clock, from
when it last saw the Lease change, not from the holder's `renewTime`, so clock skew between nodes
cannot hand the lease over early. The holder stops acting `renew_deadline_s` after its last
successful renewal, before any challenger may take over (`lease_duration_s` > renew deadline).
Both deadlines run on the monotonic clock: a wall-clock step neither ends leadership early nor
stretches it; only the Lease's `renewTime`/`acquireTime` stamps are wall time. Every write
carries the resourceVersion it read: of two racing writers one wins, one gets a 409.

RBAC (deploy/rbac.yaml): leases `get`, `create`, `update`.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio.client import ApiClient, CoordinationV1Api, V1Lease, V1LeaseSpec

from controller.actuators.kube_api import ConflictError, NotFoundError, call_api, rfc3339
from controller.clock import Clock, SystemClock, monotonic_of, sleep_unless
from controller.errors import ActuatorError, TemporaryError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LeaderSettings:
    lease_duration_s: float = 15.0  # a challenger waits this long after the Lease last changed
    renew_deadline_s: float = 10.0  # the holder stops acting this long after its last renewal
    retry_period_s: float = 2.0  # between tries to acquire or renew
    request_timeout_s: float = 5.0
    # Retries of release after a 429, 5xx or timeout (step's retry is its period).
    retry_delays_s: tuple[float, ...] = (0.5, 1.0)

    def __post_init__(self) -> None:
        if not 0 < self.renew_deadline_s < self.lease_duration_s:
            raise ValueError(
                f"renew_deadline_s: must be > 0 and < lease_duration_s "
                f"({self.lease_duration_s:g}), so the old leader stops before a new one starts "
                f"(got {self.renew_deadline_s:g})"
            )


def _micro(moment: Any) -> str | None:
    """A MicroTime as the API server parses it: always six fraction digits, UTC."""
    return None if moment is None else rfc3339(moment.timestamp(), micro=True)


def _spec_dict(spec: V1LeaseSpec | None) -> dict[str, Any]:
    if spec is None:
        return {}
    fields = {
        "holderIdentity": spec.holder_identity,
        "leaseDurationSeconds": spec.lease_duration_seconds,
        "acquireTime": _micro(spec.acquire_time),
        "renewTime": _micro(spec.renew_time),
        "leaseTransitions": spec.lease_transitions,
        "preferredHolder": spec.preferred_holder,
        "strategy": spec.strategy,
    }
    return {key: value for key, value in fields.items() if value is not None}


class LeaderElector:
    """One replica's view of the Lease: acquire, renew, release; and the state on it."""

    def __init__(
        self,
        *,
        api: ApiClient,
        namespace: str,
        name: str,
        identity: str,
        settings: LeaderSettings | None = None,
        clock: Clock | None = None,
    ) -> None:
        if not identity:
            raise ValueError("identity: must not be empty (use the pod name)")
        self.namespace, self.name, self.identity = namespace, name, identity
        self.settings = settings if settings is not None else LeaderSettings()
        self.clock = clock if clock is not None else SystemClock()
        self._api = api
        self._leases = CoordinationV1Api(api)
        self._lease: V1Lease | None = None  # as last read or written by us
        # Monotonic times: our last successful write as the holder; when we first saw the
        # Lease's current resourceVersion.
        self._renewed_at_s: float | None = None
        self._observed: tuple[str, float] | None = None
        # One writer at a time in this process: a renewal racing the release on SIGTERM would
        # make each other's resourceVersion stale and both get 409 from the API server.
        self._writing = asyncio.Lock()
        self.renewals = 0  # successful writes as the holder

    def __str__(self) -> str:
        return f"lease {self.namespace}/{self.name}"

    @property
    def is_leader(self) -> bool:
        """True while this replica holds the Lease and renewed it within the renew deadline."""
        renewed = self._renewed_at_s
        if renewed is None:
            return False
        return monotonic_of(self.clock) < renewed + self.settings.renew_deadline_s

    async def step(self) -> bool:
        """Try once to acquire or renew; True when this replica is the leader afterwards.

        A lost race (409) or a passing API failure is not an error: leadership lasts until the
        renew deadline, and the next step tries again. Missing permissions raise.
        """
        async with self._writing:
            return await self._step()

    async def _step(self) -> bool:
        mono_s = monotonic_of(self.clock)
        try:
            lease = await self._get(retry=False)
            if lease is None:
                await self._write(self._new_lease(), create=True, mono_s=mono_s)
            elif self._may_claim(lease, mono_s):
                await self._write(self._claimed(lease), create=False, mono_s=mono_s)
            else:
                self._lease = lease
                self._lose(f"held by {lease.spec.holder_identity}")
        except ConflictError as error:  # another writer was first; the error names the lease
            logger.info("%s; trying again in %g s", error, self.settings.retry_period_s)
        except TemporaryError as error:
            logger.warning("%s; trying again in %g s", error, self.settings.retry_period_s)
        return self.is_leader

    async def run(self, stopping: asyncio.Event) -> None:
        """Acquire and renew every `retry_period_s` until `stopping` is set; then release."""
        try:
            while not stopping.is_set():
                await self.step()
                await self._pause(stopping)
        finally:
            await self.release()

    async def release(self) -> None:
        """Clear holderIdentity if this replica holds the Lease, so another one takes over now."""
        async with self._writing:
            await self._release()

    async def _release(self) -> None:
        lease = self._lease
        self._renewed_at_s = None
        if lease is None or lease.spec.holder_identity != self.identity:
            return
        spec = _spec_dict(lease.spec)
        spec.pop("holderIdentity", None)
        spec["renewTime"] = rfc3339(self.clock.now(), micro=True)
        try:
            self._lease = await self._replace(self._body(lease, spec), retry=False)
            logger.info("%s: released by %s", self, self.identity)
        except ActuatorError as error:  # someone else wrote it since; nothing of ours to release
            logger.warning("%s; not released", error)

    # --- the Lease record ---

    def _may_claim(self, lease: V1Lease, mono_s: float) -> bool:
        resource_version = str(lease.metadata.resource_version)
        if self._observed is None or self._observed[0] != resource_version:
            self._observed = (resource_version, mono_s)
        holder = lease.spec.holder_identity if lease.spec else None
        if not holder or holder == self.identity:
            return True
        duration_s = (lease.spec.lease_duration_seconds or 0) or self.settings.lease_duration_s
        return mono_s >= self._observed[1] + duration_s

    def _new_lease(self) -> dict[str, Any]:
        stamp = rfc3339(self.clock.now(), micro=True)
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": math.ceil(self.settings.lease_duration_s),
                "acquireTime": stamp,
                "renewTime": stamp,
                "leaseTransitions": 0,
            },
        }

    def _claimed(self, lease: V1Lease) -> dict[str, Any]:
        spec = _spec_dict(lease.spec)
        stamp = rfc3339(self.clock.now(), micro=True)
        if spec.get("holderIdentity") != self.identity:
            spec["acquireTime"] = stamp
            spec["leaseTransitions"] = spec.get("leaseTransitions", 0) + 1
        spec.update(
            holderIdentity=self.identity,
            leaseDurationSeconds=math.ceil(self.settings.lease_duration_s),
            renewTime=stamp,
        )
        return self._body(lease, spec)

    def _body(
        self, lease: V1Lease, spec: dict[str, Any], annotations: dict[str, str] | None = None
    ) -> dict[str, Any]:
        # A dict, not a V1Lease: the model would write MicroTimes with isoformat(), which drops
        # the fraction at whole seconds, and the API server rejects a MicroTime without it.
        metadata = self._api.sanitize_for_serialization(lease.metadata)
        if annotations is not None:
            metadata["annotations"] = annotations
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": spec,
        }

    async def _write(self, body: Any, *, create: bool, mono_s: float) -> None:
        was_leader = self.is_leader
        if create:
            self._lease = await self._call(
                "create",
                lambda: self._leases.create_namespaced_lease(
                    self.namespace, body, _request_timeout=self.settings.request_timeout_s
                ),
                retry=False,
            )
        else:
            self._lease = await self._replace(body, retry=False)
        self._renewed_at_s = mono_s
        self._observed = (str(self._lease.metadata.resource_version), mono_s)
        self.renewals += 1
        if not was_leader:
            logger.info("%s: %s is the leader", self, self.identity)

    def _lose(self, why: str) -> None:
        if self._renewed_at_s is not None:
            logger.warning("%s: %s is no longer the leader: %s", self, self.identity, why)
        self._renewed_at_s = None

    async def _pause(self, stopping: asyncio.Event) -> None:
        """Sleep one retry period on the injected clock, or less if `stopping` is set."""
        await sleep_unless(self.clock, self.settings.retry_period_s, stopping)

    # --- API calls ---

    async def _get(self, *, retry: bool) -> V1Lease | None:
        try:
            return await self._call(
                "get",
                lambda: self._leases.read_namespaced_lease(
                    self.name, self.namespace, _request_timeout=self.settings.request_timeout_s
                ),
                retry=retry,
            )
        except NotFoundError:
            return None

    async def _replace(self, body: Any, *, retry: bool) -> V1Lease:
        return await self._call(
            "update",
            lambda: self._leases.replace_namespaced_lease(
                self.name, self.namespace, body, _request_timeout=self.settings.request_timeout_s
            ),
            retry=retry,
        )

    async def _call(
        self, what: str, call: Callable[[], Awaitable[V1Lease]], *, retry: bool
    ) -> V1Lease:
        return await call_api(
            f"{self}: {what}",
            call,
            clock=self.clock,
            delays_s=self.settings.retry_delays_s if retry else (),
            max_delay_s=self.settings.retry_period_s * 5,
        )
