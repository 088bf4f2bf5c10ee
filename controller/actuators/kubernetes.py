"""Kubernetes actuator: a Deployment or StatefulSet, scaled through its `/scale` subresource.

In: a `WorkloadRef` and a kubernetes-asyncio `ApiClient` (`kubernetes_api()`: in-cluster or a
kubeconfig), read once per tick (no watch). Out: a `WorkloadState` built from the workload's
status, its Pending pods, its pause annotations and the other autoscalers in its namespace; on
`scale(n)`, a patched `spec.replicas` and a `SuccessfulRescale` Event on the target, as HPA
emits. The loop decides; this module reads, refuses what a condition forbids, and writes.

Requests per read: the workload (spec.replicas, status.readyReplicas, annotations,
spec.selector and the resourceVersion the scale patch is conditional on: the `/scale`
subresource carries the workload's own resourceVersion, so it is not read), by one GET of it,
or, where a namespace holds `LIST_FROM` (4) or more targets of one kind, from one LIST of that
namespace's workloads of that kind shared by all of them (2,000 GETs a round cost more CPU
than everything else: bench/README.md); a re-read after a 409 is always a GET. What every
target of a namespace shares comes from a `ClusterReads`: per namespace, one LIST of
HorizontalPodAutoscalers, one of KEDA ScaledObjects (404: KEDA is not installed, so none) and
one of the Pending pods (`status.phase=Pending`, no label selector; each target keeps the pods
its `spec.selector` matches, with Kubernetes' selector semantics: `selector_matches`). Callers
that arrive while a namespace is being read await that same read; a finished read is reused
while younger than `shared_read_max_age_s` (5 s, well below a 15 s interval) on the injected
`Clock`, so each round of the loop reads each namespace once without the loop having to say
when a round starts. controller/run.py (and bench/controller_scale.py) give every actuator one
shared `ClusterReads`; an actuator built without one makes its own with a max age of 0 (a
finished read is never reused), which reads as afresh as it always did. The workload and the
three LISTs are parsed into plain dicts (`_preload_content=False`), not kubernetes-asyncio
models, which cost more CPU than everything else in a 500-target round.

RBAC it uses (deploy/rbac.yaml): deployments, statefulsets `get`, `list`; their `/scale` `patch`;
horizontalpodautoscalers, scaledobjects (keda.sh) `list`; events `create`; pods `list`. The
leader Lease (controller/leader.py) adds leases `get`, `create`, `update`; the state store
(controller/state_store.py) configmaps `get`, `create`, `update`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from kubernetes_asyncio.client import (
    ApiClient,
    AppsV1Api,
    CoreV1Api,
    CoreV1Event,
    V1EventSource,
    V1ObjectMeta,
    V1ObjectReference,
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
from controller.actuators.cluster_reads import LIST_FROM, ClusterReads, relayed
from controller.actuators.kube_api import (
    API_FAILURES,
    KINDS,
    ConflictError,
    KubernetesSettings,
    NotFoundError,
    WorkloadRef,
    api_error,
    call_api,
    json_body,
    kubernetes_api,
    rfc3339,
)
from controller.actuators.kube_state import (
    PAUSED_ANNOTATION,
    PAUSED_REPLICAS_ANNOTATION,
    RESCALE_REASON,
    StuckPod,
    capacity_condition,
    other_autoscalers,
    pause_of,
    selector_matches,
    stuck_pods,
    workload_state,
)

logger = logging.getLogger(__name__)

__all__ = [  # what callers import from here; each lives in the module its name says
    "API_FAILURES",
    "KINDS",
    "LIST_FROM",
    "PAUSED_ANNOTATION",
    "PAUSED_REPLICAS_ANNOTATION",
    "RESCALE_REASON",
    "ClusterReads",
    "ConflictError",
    "KubernetesActuator",
    "KubernetesSettings",
    "NotFoundError",
    "StuckPod",
    "WorkloadRef",
    "api_error",
    "call_api",
    "capacity_condition",
    "json_body",
    "kubernetes_api",
    "other_autoscalers",
    "pause_of",
    "relayed",
    "rfc3339",
    "selector_matches",
    "stuck_pods",
    "workload_state",
]  # fmt: skip


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Read:
    """One read of the target: the state, and what a scale patch and its Event need."""

    state: WorkloadState
    resource_version: str
    uid: str | None


# --- The actuator. ---


@dataclass(slots=True)
class _WorkloadCalls:
    read: Callable[..., Awaitable[Any]]
    patch_scale: Callable[..., Awaitable[Any]]


def _workload_calls(apps: AppsV1Api, kind: str) -> _WorkloadCalls:
    if kind == "Deployment":
        return _WorkloadCalls(
            apps.read_namespaced_deployment, apps.patch_namespaced_deployment_scale
        )
    return _WorkloadCalls(
        apps.read_namespaced_stateful_set, apps.patch_namespaced_stateful_set_scale
    )


class KubernetesActuator:
    """`current()` and `scale(n, reason=...)` for one Deployment or StatefulSet.

    `reads`: the `ClusterReads` the actuators of a controller share (controller/run.py makes
    one); without it the actuator makes its own, which reads its namespace on every read.
    """

    def __init__(
        self,
        target: WorkloadRef,
        *,
        api: ApiClient,
        settings: KubernetesSettings | None = None,
        clock: Clock | None = None,
        reads: ClusterReads | None = None,
    ) -> None:
        self.target = target
        self.settings = settings if settings is not None else KubernetesSettings()
        self.clock = clock if clock is not None else SystemClock()
        self.reads = (
            reads
            if reads is not None
            else ClusterReads(api, settings=self.settings, clock=self.clock, max_age_s=0.0)
        )
        self._calls = _workload_calls(AppsV1Api(api), target.kind)
        self._core = CoreV1Api(api)
        self.reads.register(target)
        self._events_sent = 0
        self._uid: str | None = None  # of the target, from its last read (Events name it)

    async def current(self) -> WorkloadState:
        return (await self._read()).state

    async def scale(self, replicas: int, *, reason: str) -> None:
        """Set `spec.replicas` unless a condition forbids it; a 409 re-reads and retries once."""
        if replicas < 0:
            raise ValueError(f"{self.target}: replicas must be >= 0 (got {replicas})")
        for attempt in (1, 2):
            read = await self._read(fresh=attempt == 2)
            if read.state.replicas == replicas:
                return  # nothing to change, so nothing to refuse
            refusal = read.state.refusal(replicas)
            if refusal is not None:
                raise ScaleRefusedError(str(self.target), replicas, refusal)
            try:
                await self._patch_scale(replicas, read.resource_version)
            except ConflictError as error:
                if attempt == 2:
                    raise TemporaryError(f"{error}; it changed again after a re-read") from error
                logger.info("%s; re-reading and trying once more", error)
                continue
            logger.info(
                "%s: scaled %d -> %d: %s", self.target, read.state.replicas, replicas, reason
            )
            await self._record_event(replicas, reason, read)
            return

    # --- reading ---

    async def _read(self, *, fresh: bool = False) -> _Read:
        """The target as the shared LIST shows it (when its namespace has several targets of
        its kind), else (or when `fresh`: a re-read after a 409) its own GET."""
        t = self.target
        timeout = self.settings.request_timeout_s

        async def get() -> Any:
            response = await self._calls.read(
                t.name, t.namespace, _preload_content=False, _request_timeout=timeout
            )
            return await json_body(response)

        try:
            if self.reads.lists(t) and not fresh:
                try:
                    workload = await self.reads.workload(t)
                except ActuatorError as error:
                    raise relayed(t, error) from error
                if workload is None:
                    raise NotFoundError(f"{t}: not found in the list of its namespace")
            else:
                workload = await self._call("get", get)
        except NotFoundError as error:
            raise NotFoundError(f"{error}; check the target's kind, namespace and name") from error
        try:
            view = await self.reads.namespace(t.namespace)
        except ActuatorError as error:
            raise relayed(t, error) from error
        meta, spec = workload.get("metadata") or {}, workload.get("spec") or {}
        selector = spec.get("selector")
        try:
            pods = view.pods_of(selector)
        except ValueError as error:  # the API server validates selectors: not seen in practice
            raise PermanentError(f"{t}: spec.selector: {error}") from error
        state = workload_state(
            t,
            # The /scale subresource's spec.replicas and resourceVersion are the workload's own.
            replicas=int(spec.get("replicas") or 0),
            ready_replicas=int((workload.get("status") or {}).get("readyReplicas") or 0),
            annotations=meta.get("annotations") or {},
            stuck=stuck_pods(
                pods, now_s=self.clock.now(), pending_timeout_s=self.settings.pending_timeout_s
            ),
            other_autoscalers=other_autoscalers(t, view.hpas, view.scaled_objects),
            pending_timeout_s=self.settings.pending_timeout_s,
        )
        self._uid = meta.get("uid") or self._uid
        return _Read(state, str(meta.get("resourceVersion") or ""), meta.get("uid"))

    # --- writing ---

    async def _patch_scale(self, replicas: int, resource_version: str) -> None:
        t = self.target
        # The resourceVersion makes the patch conditional: a concurrent writer gets us a 409.
        body = {"metadata": {"resourceVersion": resource_version}, "spec": {"replicas": replicas}}
        await self._call(
            "patch /scale",
            lambda: self._calls.patch_scale(
                t.name, t.namespace, body, _request_timeout=self.settings.request_timeout_s
            ),
        )

    async def _record_event(self, replicas: int, reason: str, read: _Read) -> None:
        """A `SuccessfulRescale` Event on the target; a failure is logged, the scale stands."""
        try:
            await self._event("Normal", RESCALE_REASON, f"New size: {replicas}; reason: {reason}")
        except ActuatorError as error:
            logger.warning("%s (the scale to %d itself succeeded)", error, replicas)

    async def warn(self, reason: str, message: str) -> None:
        """A Warning Event on the target (`FailedRescale`, `FailedGetScale`, as HPA writes)."""
        await self._event("Warning", reason, message)

    async def _event(self, kind: str, reason: str, message: str) -> None:
        t, now_s = self.target, self.clock.now()
        self._events_sent += 1
        moment = datetime.fromtimestamp(now_s, tz=UTC)
        component = self.settings.event_component
        event = CoreV1Event(
            # client-go names Events "<object>.<unix nanoseconds in hex>"; +count keeps them unique.
            metadata=V1ObjectMeta(
                name=f"{t.name}.{int(now_s * 1e9) + self._events_sent:x}", namespace=t.namespace
            ),
            involved_object=V1ObjectReference(
                api_version="apps/v1",
                kind=t.kind,
                name=t.name,
                namespace=t.namespace,
                uid=self._uid,
            ),
            reason=reason,
            message=message[:1024],
            type=kind,
            source=V1EventSource(component=component),
            reporting_component=component,
            first_timestamp=moment,
            last_timestamp=moment,
            count=1,
        )
        await call_api(
            f"{t}: create event",
            lambda: self._core.create_namespaced_event(
                t.namespace, event, _request_timeout=self.settings.request_timeout_s
            ),
            clock=self.clock,
            delays_s=(),  # no retries: the tick must not wait for an Event
            max_delay_s=0.0,
        )

    async def _call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        return await call_api(
            f"{self.target}: {what}",
            call,
            clock=self.clock,
            delays_s=self.settings.retry_delays_s,
            max_delay_s=self.settings.max_retry_after_s,
        )
