"""What the targets of a namespace share: one read of it per round (`ClusterReads`).

In: an `ApiClient`, the injected `Clock`. Out: per namespace, one LIST of
HorizontalPodAutoscalers, one of KEDA ScaledObjects (404: KEDA is not installed, so none), one
of the Pending pods, and, where a namespace holds `LIST_FROM` (4) or more targets of a kind,
one LIST of those workloads. Callers that arrive while a namespace is being read await that
same read; a finished read is reused while younger than `shared_read_max_age_s`. A failed
shared read fails only that namespace's targets, and is not kept.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio.client import (
    ApiClient,
    AppsV1Api,
    AutoscalingV2Api,
    CoreV1Api,
    CustomObjectsApi,
)

from controller.actuators.base import (
    ActuatorError,
    Clock,
    SystemClock,
    TemporaryError,
)
from controller.actuators.kube_api import (
    KubernetesSettings,
    NotFoundError,
    WorkloadRef,
    call_api,
    json_body,
)
from controller.actuators.kube_state import selector_matches

logger = logging.getLogger(__name__)


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


@dataclass(frozen=True, slots=True)
class WorkloadList:
    """One LIST of a namespace's Deployments (or StatefulSets), by name (dicts, as listed)."""

    read_at_s: float
    items: Mapping[str, Mapping[str, Any]]


# A namespace's workloads of one kind are listed once per round, instead of one GET per
# target, from this many targets of that kind there: one LIST of a namespace holding many
# workloads costs less than several GETs, and far less CPU than 2,000 GETs a round.
LIST_FROM = 4


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
        self._apps = AppsV1Api(api)
        self._registered: Counter[tuple[str, str]] = Counter()  # (namespace, kind) -> targets
        self._lists: dict[tuple[str, str], asyncio.Task[WorkloadList]] = {}

    def register(self, target: WorkloadRef) -> None:
        """One more target of this kind in this namespace (the actuators say so when made)."""
        self._registered[target.namespace, target.kind] += 1

    def lists(self, target: WorkloadRef) -> bool:
        """Whether the workloads of `target`'s kind in its namespace are listed (one LIST for
        every target of the round) rather than read one GET each: from `LIST_FROM` targets."""
        return self._registered[target.namespace, target.kind] >= LIST_FROM

    async def workload(self, target: WorkloadRef) -> Mapping[str, Any] | None:
        """`target` as the shared LIST of its namespace's workloads of its kind shows it (None:
        not in the list), joining a read in flight or reusing a fresh one."""
        key = (target.namespace, target.kind)
        listed = self._lists.get(key)
        if listed is None or not self._reusable(listed):
            listed = asyncio.create_task(
                self._list_workloads(*key), name=f"replicast: list {target.kind}s {key[0]}"
            )
            listed.add_done_callback(_retrieve)
            self._lists[key] = listed
        return (await asyncio.shield(listed)).items.get(target.name)

    async def _list_workloads(self, ns: str, kind: str) -> WorkloadList:
        read_at_s = self.clock.now()
        call = (
            self._apps.list_namespaced_deployment
            if kind == "Deployment"
            else self._apps.list_namespaced_stateful_set
        )
        items = await self._list(ns, f"list {kind.lower()}s", call, ns)
        named = {str((i.get("metadata") or {}).get("name")): i for i in items}
        return WorkloadList(read_at_s, named)

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

    def _reusable(self, read: asyncio.Task[Any]) -> bool:
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
