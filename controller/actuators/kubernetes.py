"""Kubernetes actuator: a Deployment or StatefulSet, scaled through its `/scale` subresource.

In: a `WorkloadRef` and a kubernetes-asyncio `ApiClient` (`kubernetes_api()`: in-cluster or a
kubeconfig), read once per tick (no watch). Out: a `WorkloadState` built from the workload's
status, its Pending pods, its pause annotations and the other autoscalers in its namespace; on
`scale(n)`, a patched `spec.replicas` and a `SuccessfulRescale` Event on the target, as HPA
emits. The loop decides; this module reads, refuses what a condition forbids, and writes.

Requests per read: one GET of the workload (spec.replicas, status.readyReplicas, annotations,
spec.selector and the resourceVersion the scale patch is conditional on: the `/scale`
subresource carries the workload's own resourceVersion, so it is not read). What every target
of a namespace shares comes from a `ClusterReads`: per namespace, one LIST of
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

RBAC it uses (deploy/rbac.yaml): deployments, statefulsets `get`; their `/scale` `patch`;
horizontalpodautoscalers, scaledobjects (keda.sh) `list`; events `create`; pods `list`. The
leader Lease (controller/leader.py) adds leases `get`, `create`, `update`; the state store
(controller/state_store.py) configmaps `get`, `create`, `update`.
"""

from __future__ import annotations

import asyncio
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
    # A namespace's shared reads (HPAs, ScaledObjects, Pending pods) are reused for at most
    # this long by the actuators sharing a `ClusterReads`: one read per round, as rounds are a
    # target's interval (15 s by default) apart and a round takes about a second.
    shared_read_max_age_s: float = 5.0


async def kubernetes_api(
    *, kubeconfig: str | None = None, context: str | None = None, max_connections: int = 100
) -> ApiClient:
    """An API client: in-cluster when run in a pod (and no kubeconfig given), else a kubeconfig.

    At most `max_connections` requests are in flight at once (its own aiohttp connection
    pool: the rest wait for a connection). The caller owns it: `async with await
    kubernetes_api() as api: ...` closes it.
    """
    configuration = Configuration()
    configuration.connection_pool_maxsize = max_connections
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


async def json_body(response: Any) -> Any:
    """The JSON of a `_preload_content=False` answer (an aiohttp response), or its ApiException.

    kubernetes-asyncio builds a model object per field of every item it returns; for LISTs
    plain dicts are all this module needs, at a fraction of the cost.
    """
    async with response:
        body = await response.read()
    if not 200 <= response.status <= 299:
        error = ApiException(status=response.status, reason=response.reason)
        error.body = body.decode("utf-8", "replace")  # as kubernetes-asyncio leaves it
        error.headers = response.headers
        raise error
    return json.loads(body)


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


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether `labels` match a LabelSelector (a workload's `spec.selector`), as Kubernetes says.

    metav1.LabelSelectorAsSelector: no selector matches nothing, an empty one everything; else
    every matchLabels pair and every matchExpression must hold. In: the label is set to one of
    `values`; NotIn: it is not set, or set to none of them; Exists / DoesNotExist: it is set /
    not set. An unknown operator, In/NotIn without values or Exists/DoesNotExist with values
    raise ValueError, as Kubernetes refuses them (the API server never stores such a selector).
    Cases: tests/controller/test_kubernetes_actuator.py::test_selector_matches.
    """
    if selector is None:
        return False
    requirements = [
        (str(key), "In", [str(value)]) for key, value in (selector.get("matchLabels") or {}).items()
    ]
    requirements += [_requirement(e) for e in selector.get("matchExpressions") or ()]
    return all(_holds(requirement, labels) for requirement in requirements)


def _requirement(expression: Mapping[str, Any]) -> tuple[str, str, list[str]]:
    key, operator = str(expression.get("key", "")), expression.get("operator")
    values = [str(v) for v in expression.get("values") or ()]
    if operator in ("In", "NotIn") and not values:
        raise ValueError(f"matchExpressions {key} {operator}: values must not be empty")
    if operator in ("Exists", "DoesNotExist") and values:
        raise ValueError(f"matchExpressions {key} {operator}: values must be empty")
    if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
        raise ValueError(f"matchExpressions {key}: {operator!r} is not a label selector operator")
    return key, operator, values


def _holds(requirement: tuple[str, str, list[str]], labels: Mapping[str, str]) -> bool:
    key, operator, values = requirement
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    return (key in labels) == (operator == "Exists")


def _timestamp_s(text: Any) -> float | None:
    """Unix seconds of a Kubernetes Time ("2024-01-02T03:04:05Z"), or None."""
    try:
        return datetime.fromisoformat(str(text)).timestamp() if text else None
    except ValueError:
        return None


def stuck_pods(
    pods: Iterable[Mapping[str, Any]], *, now_s: float, pending_timeout_s: float
) -> list[StuckPod]:
    """Pods (dicts, as listed) Pending and Unschedulable for longer than the bound, oldest first."""
    stuck = []
    for pod in pods:
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        if meta.get("deletionTimestamp") is not None or status.get("phase") != "Pending":
            continue
        unschedulable = next(
            (
                c
                for c in status.get("conditions") or ()
                if (c.get("type"), c.get("status"), c.get("reason"))
                == ("PodScheduled", "False", "Unschedulable")
            ),
            None,
        )
        created_s = _timestamp_s(meta.get("creationTimestamp"))
        if unschedulable is None or created_s is None:
            continue
        pending_s = now_s - created_s
        if pending_s > pending_timeout_s:
            message = " ".join(str(unschedulable.get("message") or "").split())
            stuck.append(StuckPod(str(meta.get("name", "")), pending_s, message))
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
    target: WorkloadRef,
    hpas: Iterable[Mapping[str, Any]],
    scaled_objects: Iterable[Mapping[str, Any]],
) -> list[str]:
    """Names of the HPAs and KEDA ScaledObjects (dicts, as listed) that scale `target`."""
    names = []
    for hpa in hpas:
        ref = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
        if ref.get("kind") == target.kind and ref.get("name") == target.name:
            names.append(f"HorizontalPodAutoscaler {target.namespace}/{hpa['metadata']['name']}")
    for scaled in scaled_objects:
        ref = (scaled.get("spec") or {}).get("scaleTargetRef") or {}
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


# --- What the targets of a namespace share: one read per namespace per round. ---


@dataclass(frozen=True, slots=True)
class NamespaceView:
    """One read of a namespace: its autoscalers and its Pending pods (dicts, as listed)."""

    namespace: str
    read_at_s: float  # on the clock of the `ClusterReads` that read it, when the read began
    hpas: tuple[Mapping[str, Any], ...] = ()
    scaled_objects: tuple[Mapping[str, Any], ...] = ()
    pending_pods: tuple[Mapping[str, Any], ...] = ()

    def pods_of(self, selector: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
        """The Pending pods a workload's `spec.selector` selects."""
        return [
            pod
            for pod in self.pending_pods
            if selector_matches(selector, (pod.get("metadata") or {}).get("labels") or {})
        ]


class ClusterReads:
    """`NamespaceView`s shared by many actuators: one read in flight per namespace, reused
    while younger than `max_age_s` (default `settings.shared_read_max_age_s`; 0: never reused
    once finished). A failed read is not kept: every waiter gets its error, the next caller
    reads again."""

    def __init__(
        self,
        api: ApiClient,
        *,
        settings: KubernetesSettings | None = None,
        clock: Clock | None = None,
        max_age_s: float | None = None,
    ) -> None:
        self.settings = settings if settings is not None else KubernetesSettings()
        self.clock = clock if clock is not None else SystemClock()
        self.max_age_s = max_age_s if max_age_s is not None else self.settings.shared_read_max_age_s
        self._core = CoreV1Api(api)
        self._autoscaling = AutoscalingV2Api(api)
        self._custom = CustomObjectsApi(api)
        self._reads: dict[str, asyncio.Task[NamespaceView]] = {}

    async def namespace(self, namespace: str) -> NamespaceView:
        """The namespace's view: the one being read, a fresh enough one, or a new read."""
        read = self._reads.get(namespace)
        if read is None or not self._reusable(read):
            read = asyncio.create_task(
                self._read(namespace), name=f"replicast: read namespace {namespace}"
            )
            read.add_done_callback(_retrieve)
            self._reads[namespace] = read
        # Shielded: a waiter cancelled (its tick's timeout) must not cancel the others' read.
        return await asyncio.shield(read)

    def _reusable(self, read: asyncio.Task[NamespaceView]) -> bool:
        if not read.done():
            return True  # in flight: join it
        if read.cancelled() or read.exception() is not None:
            return False
        return self.clock.now() - read.result().read_at_s < self.max_age_s

    async def _read(self, ns: str) -> NamespaceView:
        read_at_s = self.clock.now()
        hpas = await self._list(
            ns, "list horizontalpodautoscalers",
            self._autoscaling.list_namespaced_horizontal_pod_autoscaler, ns,
        )  # fmt: skip
        try:
            scaled = await self._list(
                ns, "list scaledobjects.keda.sh",
                self._custom.list_namespaced_custom_object, "keda.sh", "v1alpha1", ns,
                "scaledobjects",
            )  # fmt: skip
        except NotFoundError:
            scaled = []  # KEDA's CRD is not installed: no ScaledObject can target anything
        pods = await self._list(
            ns, "list pods", self._core.list_namespaced_pod, ns,
            field_selector="status.phase=Pending",
        )  # fmt: skip
        return NamespaceView(ns, read_at_s, tuple(hpas), tuple(scaled), tuple(pods))

    async def _list(
        self, ns: str, what: str, call: Callable[..., Awaitable[Any]], *args: Any, **params: Any
    ) -> list[Mapping[str, Any]]:
        async def listed() -> Any:
            response = await call(
                *args,
                _preload_content=False,
                _request_timeout=self.settings.request_timeout_s,
                **params,
            )
            return await json_body(response)

        body = await call_api(
            f"namespace {ns}: {what}",
            listed,
            clock=self.clock,
            delays_s=self.settings.retry_delays_s,
            max_delay_s=self.settings.max_retry_after_s,
        )
        return list(body.get("items") or ())


def _retrieve(read: asyncio.Task[Any]) -> None:
    """Mark a failed read's error as seen: every waiter may have gone (cancelled) first."""
    if not read.cancelled():
        read.exception()


def relayed(target: WorkloadRef, error: ActuatorError) -> ActuatorError:
    """A shared read's error as `target`'s own (a new exception for each of its waiters)."""
    message = f"{target}: {error}"
    if isinstance(error, TemporaryError):
        return TemporaryError(message, delay_s=error.delay_s)
    return type(error)(message)


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
        self._events_sent = 0
        self._uid: str | None = None  # of the target, from its last read (Events name it)

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

        async def get() -> Any:
            response = await self._calls.read(
                t.name, t.namespace, _preload_content=False, _request_timeout=timeout
            )
            return await json_body(response)

        try:
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
