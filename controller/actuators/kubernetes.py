"""Kubernetes actuator: a Deployment or StatefulSet, scaled through its `/scale` subresource.

In: a `WorkloadRef` and a kubernetes-asyncio `ApiClient` (`kubernetes_api()`: in-cluster or a
kubeconfig), read once per tick (no watch). Out: a `WorkloadState` built from the workload's
status, its Pending pods, its pause annotations and the other autoscalers in its namespace; on
`scale(n)`, a patched `spec.replicas` and a `SuccessfulRescale` Event on the target, as HPA
emits. The loop decides; this module reads, refuses what a condition forbids, and writes.

RBAC it uses, exactly (deploy/rbac.yaml): deployments, statefulsets `get`; their `/scale` `get`,
`patch`; horizontalpodautoscalers, scaledobjects (keda.sh) `list`; events `create`; pods `list`.
The leader Lease (controller/leader.py) adds leases `get`, `create`, `update`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiohttp
from kubernetes_asyncio import config
from kubernetes_asyncio.client import (
    ApiClient,
    AppsV1Api,
    AutoscalingV2Api,
    Configuration,
    CoreV1Api,
    CoreV1Event,
    CustomObjectsApi,
    V1EventSource,
    V1ObjectMeta,
    V1ObjectReference,
)
from kubernetes_asyncio.client.exceptions import ApiException

from controller.actuators.base import (
    ActuatorError,
    Clock,
    ConditionType,
    PermanentError,
    ScaleRefusedError,
    SystemClock,
    TemporaryError,
    WorkloadCondition,
    WorkloadState,
    retrying,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

PAUSED_ANNOTATION = "replicast.io/paused"
PAUSED_REPLICAS_ANNOTATION = "replicast.io/paused-replicas"
RESCALE_REASON = "SuccessfulRescale"  # HPA's Event reason, so dashboards and alerts carry over
KINDS = ("Deployment", "StatefulSet")


@dataclass(frozen=True, slots=True)
class WorkloadRef:
    """Which workload: `WorkloadRef("Deployment", "default", "web")`."""

    kind: str
    namespace: str
    name: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind: must be one of {', '.join(KINDS)} (got {self.kind!r})")
        for name in ("namespace", "name"):
            if not getattr(self, name):
                raise ValueError(f"{name}: must not be empty (kind {self.kind})")

    def __str__(self) -> str:
        return f"{self.kind.lower()} {self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class KubernetesSettings:
    # Pods Pending/Unschedulable longer than this stop counting as starting; scale-up pauses.
    pending_timeout_s: float = 300.0
    request_timeout_s: float = 10.0
    # One more try per delay after a 429, 5xx or timeout; a Retry-After header wins (capped).
    retry_delays_s: tuple[float, ...] = (1.0, 2.0, 4.0)
    max_retry_after_s: float = 60.0
    event_component: str = "replicast"  # Event source.component and reportingComponent


async def kubernetes_api(*, kubeconfig: str | None = None, context: str | None = None) -> ApiClient:
    """An API client: in-cluster when run in a pod (and no kubeconfig given), else a kubeconfig.

    The caller owns it: `async with await kubernetes_api() as api: ...` closes it.
    """
    configuration = Configuration()
    if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        await config.load_kube_config(
            config_file=kubeconfig,
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
    return ApiClient(configuration=configuration)


# --- Errors: every API failure becomes the actuator vocabulary, in one line. ---


class NotFoundError(PermanentError):
    """404: the target (or a resource kind) does not exist."""


class ConflictError(ActuatorError):
    """409: someone else wrote first (stale resourceVersion) or the object already exists."""


def _status_message(error: ApiException) -> str:
    """The `message` of the Kubernetes Status in the body, else the HTTP reason."""
    try:
        body = json.loads(error.body or "")
        message = body.get("message") if isinstance(body, dict) else None
    except (TypeError, ValueError):
        message = None
    text = str(message or error.reason or "no details")
    return " ".join(text.split())  # one line


def _retry_after_s(error: ApiException) -> float | None:
    value = error.headers.get("Retry-After") if error.headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to the configured backoff


def api_error(what: str, error: BaseException) -> ActuatorError:
    """An API or transport failure of the call `what` ("deployment default/web: get")."""
    if not isinstance(error, ApiException):
        kind = "no answer in time" if isinstance(error, TimeoutError) else type(error).__name__
        return TemporaryError(f"{what}: {kind}: {error}".rstrip(": "))
    status = int(error.status or 0)
    detail = _status_message(error)
    if status == 404:
        return NotFoundError(f"{what}: not found (404): {detail}")
    if status == 409:
        return ConflictError(f"{what}: conflict (409): {detail}")
    if status in (401, 403):
        return PermanentError(
            f"{what}: forbidden ({status}): {detail}; grant it to the controller's "
            "ServiceAccount (deploy/rbac.yaml)"
        )
    if status == 429 or status >= 500:
        return TemporaryError(f"{what}: {status}: {detail}", delay_s=_retry_after_s(error))
    return PermanentError(f"{what}: rejected ({status}): {detail}")


API_FAILURES = (ApiException, aiohttp.ClientError, TimeoutError)


async def call_api(
    what: str,
    call: Callable[[], Awaitable[T]],
    *,
    clock: Clock,
    delays_s: tuple[float, ...],
    max_delay_s: float,
) -> T:
    """`call()` with 429/5xx/timeouts retried per `delays_s`; failures as actuator errors."""

    async def attempt() -> T:
        try:
            return await call()
        except API_FAILURES as error:
            raise api_error(what, error) from error

    return await retrying(attempt, delays_s=delays_s, clock=clock, max_delay_s=max_delay_s)


def rfc3339(now_s: float, *, micro: bool = False) -> str:
    """Kubernetes' Time ("2024-01-02T03:04:05Z") or MicroTime ("...05.123456Z")."""
    moment = datetime.fromtimestamp(now_s, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


# --- Reading a target: pure functions of what the API returned. ---


def pause_of(annotations: Mapping[str, str]) -> tuple[WorkloadCondition | None, int | None]:
    """The pause a person set on the target: (condition, held replicas) or (None, None)."""
    if annotations.get(PAUSED_ANNOTATION, "").strip().lower() == "true":
        message = f'annotation {PAUSED_ANNOTATION}: "true": never scaled; remove it to resume'
        return WorkloadCondition(ConditionType.PAUSED, message), None
    held = annotations.get(PAUSED_REPLICAS_ANNOTATION)
    if held is None:
        return None, None
    try:
        replicas = int(held)
    except ValueError:
        replicas = -1
    if replicas < 0:
        message = (
            f"annotation {PAUSED_REPLICAS_ANNOTATION}: must be a whole number >= 0 (got "
            f"{held!r}); not scaled until it is fixed or removed"
        )
        return WorkloadCondition(ConditionType.PAUSED, message), None
    message = f'annotation {PAUSED_REPLICAS_ANNOTATION}: "{replicas}": held at {replicas}'
    return WorkloadCondition(ConditionType.PAUSED, f"{message}; remove it to resume"), replicas


@dataclass(frozen=True, slots=True)
class StuckPod:
    name: str
    pending_s: float
    message: str  # the scheduler's, e.g. "0/3 nodes are available: 3 Insufficient nvidia.com/gpu"


def stuck_pods(pods: Iterable[Any], *, now_s: float, pending_timeout_s: float) -> list[StuckPod]:
    """Pods (V1Pod) Pending and Unschedulable for longer than the bound, oldest first."""
    stuck = []
    for pod in pods:
        meta, status = pod.metadata, pod.status
        if meta.deletion_timestamp is not None or status is None or status.phase != "Pending":
            continue
        unschedulable = next(
            (
                c
                for c in status.conditions or ()
                if c.type == "PodScheduled" and c.status == "False" and c.reason == "Unschedulable"
            ),
            None,
        )
        if unschedulable is None or meta.creation_timestamp is None:
            continue
        pending_s = now_s - meta.creation_timestamp.timestamp()
        if pending_s > pending_timeout_s:
            stuck.append(
                StuckPod(meta.name, pending_s, " ".join((unschedulable.message or "").split()))
            )
    return sorted(stuck, key=lambda p: -p.pending_s)


def capacity_condition(stuck: list[StuckPod], pending_timeout_s: float) -> WorkloadCondition:
    oldest = stuck[0]
    message = (
        f"{len(stuck)} pod(s) Pending/Unschedulable for more than {pending_timeout_s:g} s "
        f"(oldest {oldest.name}, {oldest.pending_s:.0f} s: {oldest.message or 'no message'}); "
        "scale-up paused until they schedule"
    )
    return WorkloadCondition(ConditionType.CAPACITY_EXHAUSTED, message)


def other_autoscalers(
    target: WorkloadRef, hpas: Iterable[Any], scaled_objects: Iterable[Any]
) -> list[str]:
    """Names of the HPAs (V2HorizontalPodAutoscaler) and KEDA ScaledObjects (dicts) on `target`."""
    names = []
    for hpa in hpas:
        ref = hpa.spec.scale_target_ref
        if ref.kind == target.kind and ref.name == target.name:
            names.append(f"HorizontalPodAutoscaler {target.namespace}/{hpa.metadata.name}")
    for scaled in scaled_objects:
        ref = scaled.get("spec", {}).get("scaleTargetRef", {})
        if ref.get("name") == target.name and ref.get("kind", "Deployment") == target.kind:
            names.append(f"ScaledObject {target.namespace}/{scaled['metadata']['name']}")
    return names


def workload_state(
    target: WorkloadRef,
    *,
    replicas: int,
    ready_replicas: int,
    annotations: Mapping[str, str],
    stuck: list[StuckPod],
    other_autoscalers: list[str],
    pending_timeout_s: float,
) -> WorkloadState:
    """What one read means: counts for the Observation, conditions for the loop."""
    conditions: list[WorkloadCondition] = []
    if other_autoscalers:
        others = ", ".join(other_autoscalers)
        message = f"also scaled by {others}; delete it, or drop this target from replicast"
        conditions.append(WorkloadCondition(ConditionType.CONFLICT, message))
    paused, held = pause_of(annotations)
    if paused is not None:
        conditions.append(paused)
    if stuck:
        conditions.append(capacity_condition(stuck, pending_timeout_s))
    return WorkloadState(
        target=str(target),
        replicas=replicas,
        ready_replicas=ready_replicas,
        # Asked for and not ready, except pods no node can take: those are not coming.
        starting_replicas=max(0, replicas - ready_replicas - len(stuck)),
        conditions=tuple(conditions),
        unschedulable_replicas=len(stuck),
        held_replicas=held,
    )


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
    read_scale: Callable[..., Awaitable[Any]]
    patch_scale: Callable[..., Awaitable[Any]]


def _workload_calls(apps: AppsV1Api, kind: str) -> _WorkloadCalls:
    if kind == "Deployment":
        return _WorkloadCalls(
            apps.read_namespaced_deployment,
            apps.read_namespaced_deployment_scale,
            apps.patch_namespaced_deployment_scale,
        )
    return _WorkloadCalls(
        apps.read_namespaced_stateful_set,
        apps.read_namespaced_stateful_set_scale,
        apps.patch_namespaced_stateful_set_scale,
    )


class KubernetesActuator:
    """`current()` and `scale(n, reason=...)` for one Deployment or StatefulSet."""

    def __init__(
        self,
        target: WorkloadRef,
        *,
        api: ApiClient,
        settings: KubernetesSettings | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.target = target
        self.settings = settings if settings is not None else KubernetesSettings()
        self.clock = clock if clock is not None else SystemClock()
        self._calls = _workload_calls(AppsV1Api(api), target.kind)
        self._core = CoreV1Api(api)
        self._autoscaling = AutoscalingV2Api(api)
        self._custom = CustomObjectsApi(api)
        self._events_sent = 0

    async def current(self) -> WorkloadState:
        return (await self._read()).state

    async def scale(self, replicas: int, *, reason: str) -> None:
        """Set `spec.replicas` unless a condition forbids it; a 409 re-reads and retries once."""
        if replicas < 0:
            raise ValueError(f"{self.target}: replicas must be >= 0 (got {replicas})")
        for attempt in (1, 2):
            read = await self._read()
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

    async def _read(self) -> _Read:
        t = self.target
        timeout = self.settings.request_timeout_s
        try:
            workload = await self._call(
                "get", lambda: self._calls.read(t.name, t.namespace, _request_timeout=timeout)
            )
        except NotFoundError as error:
            raise NotFoundError(f"{error}; check the target's kind, namespace and name") from error
        scale = await self._call(
            "get /scale",
            lambda: self._calls.read_scale(t.name, t.namespace, _request_timeout=timeout),
        )
        pods = await self._pending_pods(scale.status.selector if scale.status else None)
        state = workload_state(
            t,
            replicas=int(scale.spec.replicas or 0),
            ready_replicas=int(workload.status.ready_replicas or 0) if workload.status else 0,
            annotations=workload.metadata.annotations or {},
            stuck=stuck_pods(
                pods, now_s=self.clock.now(), pending_timeout_s=self.settings.pending_timeout_s
            ),
            other_autoscalers=await self._other_autoscalers(),
            pending_timeout_s=self.settings.pending_timeout_s,
        )
        return _Read(state, str(scale.metadata.resource_version or ""), workload.metadata.uid)

    async def _pending_pods(self, selector: str | None) -> list[Any]:
        if not selector:
            return []  # no selector, no pods of its own to judge
        pods = await self._call(
            "list pods",
            lambda: self._core.list_namespaced_pod(
                self.target.namespace,
                label_selector=selector,
                field_selector="status.phase=Pending",
                _request_timeout=self.settings.request_timeout_s,
            ),
        )
        return list(pods.items or ())

    async def _other_autoscalers(self) -> list[str]:
        ns, timeout = self.target.namespace, self.settings.request_timeout_s
        hpas = await self._call(
            "list horizontalpodautoscalers",
            lambda: self._autoscaling.list_namespaced_horizontal_pod_autoscaler(
                ns, _request_timeout=timeout
            ),
        )
        try:
            scaled = await self._call(
                "list scaledobjects.keda.sh",
                lambda: self._custom.list_namespaced_custom_object(
                    "keda.sh", "v1alpha1", ns, "scaledobjects", _request_timeout=timeout
                ),
            )
        except NotFoundError:
            scaled = {}  # KEDA's CRD is not installed: no ScaledObject can target anything
        return other_autoscalers(self.target, hpas.items or (), scaled.get("items") or ())

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
                api_version="apps/v1", kind=t.kind, name=t.name, namespace=t.namespace, uid=read.uid
            ),
            reason=RESCALE_REASON,
            message=f"New size: {replicas}; reason: {reason}",
            type="Normal",
            source=V1EventSource(component=component),
            reporting_component=component,
            first_timestamp=moment,
            last_timestamp=moment,
            count=1,
        )
        try:
            await call_api(
                f"{t}: create event",
                lambda: self._core.create_namespaced_event(
                    t.namespace, event, _request_timeout=self.settings.request_timeout_s
                ),
                clock=self.clock,
                delays_s=(),  # no retries: the scale is done, the tick must not wait for an Event
                max_delay_s=0.0,
            )
        except ActuatorError as error:
            logger.warning("%s (the scale to %d itself succeeded)", error, replicas)

    async def _call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        return await call_api(
            f"{self.target}: {what}",
            call,
            clock=self.clock,
            delays_s=self.settings.retry_delays_s,
            max_delay_s=self.settings.max_retry_after_s,
        )
