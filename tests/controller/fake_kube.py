"""A fake Kubernetes API server for the controller's tests, built on kmock 0.8.

kmock's `KubernetesEmulator` stores objects in memory and serves get/list/create/patch/delete
over real HTTP on 127.0.0.1. `FakeKube` fills the gaps replicast needs (kmock 0.8 lacks them):

- the scale subresource returns an autoscaling/v1 `Scale` (kmock returns the whole object),
  and a PATCH to it changes only `spec.replicas`;
- resourceVersions: every write gets a new one; a write that carries a stale one gets a 409;
- PUT (a Lease renewal is a replace) and `GET /version/` (kubernetes-asyncio's trailing slash);
- list filters `labelSelector` (equality) and `fieldSelector=status.phase=...` (kmock ignores
  both) and answers a proper List envelope;
- RBAC: given the rules of deploy/rbac.yaml, any other request gets a 403, watches included
  (kmock takes `watch=True`, as kubernetes-asyncio spells it, for a plain list);
- a tiny deployment controller (a named asyncio task): pods follow `spec.replicas`, become
  ready `startup_delay_s` later, or stay Pending/Unschedulable while `unschedulable` is set,
  or scheduled but not ready while `hold_startup` is set (a model still loading);
- fault injection (`inject`): a status (409, 404, 429 with Retry-After, 500), a stale
  resourceVersion (a concurrent writer), or a slow answer, for requests a kmock view selects;
- call recording: `calls` holds every resource request served, as the (apiGroup,
  resource[/subresource], verb) an RBAC rule would have to grant (faulted and refused ones too).
Timestamps come from the test's clock (`now`), so Pending ages follow the fake clock.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import kmock
import yaml
from kubernetes_asyncio.client import ApiClient

from controller.actuators.kubernetes import kubernetes_api

REPO = Path(__file__).resolve().parents[2]
RBAC_YAML = REPO / "deploy" / "rbac.yaml"

DEPLOYMENTS = kmock.resource("apps", "v1", "deployments")
STATEFULSETS = kmock.resource("apps", "v1", "statefulsets")
PODS = kmock.resource("", "v1", "pods")
EVENTS = kmock.resource("", "v1", "events")
LEASES = kmock.resource("coordination.k8s.io", "v1", "leases")
CONFIGMAPS = kmock.resource("", "v1", "configmaps")
HPAS = kmock.resource("autoscaling", "v2", "horizontalpodautoscalers")
SCALED_OBJECTS = kmock.resource("keda.sh", "v1alpha1", "scaledobjects")
WORKLOADS = {"Deployment": DEPLOYMENTS, "StatefulSet": STATEFULSETS}

REASONS = {403: "Forbidden", 404: "NotFound", 409: "Conflict", 429: "TooManyRequests"}
NO_CAPACITY = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."

Rule = tuple[str, str, str]  # (apiGroup, resource[/subresource], verb)


class FakeClock:
    """Wall and monotonic seconds that move only when told to; `sleep` records the delay and
    moves both. `step_wall` moves the wall clock alone (an NTP step, a VM restore)."""

    def __init__(self, start_s: float = 1_700_000_000.0, monotonic_s: float = 1_000.0) -> None:
        self.now_s = start_s
        self.mono_s = monotonic_s
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.now_s

    def monotonic(self) -> float:
        return self.mono_s

    async def sleep(self, delay_s: float) -> None:
        self.sleeps.append(delay_s)
        self.advance(max(0.0, delay_s))
        await asyncio.sleep(0)

    def advance(self, delay_s: float) -> None:
        self.now_s += delay_s
        self.mono_s += delay_s

    def step_wall(self, jump_s: float) -> None:
        self.now_s += jump_s


def rbac_rules(path: Path = RBAC_YAML) -> frozenset[Rule]:
    """Every (apiGroup, resource, verb) the Roles in `path` grant."""
    rules: set[Rule] = set()
    for doc in yaml.safe_load_all(path.read_text()):
        if doc and doc.get("kind") in {"Role", "ClusterRole"}:
            for rule in doc.get("rules", []):
                rules.update(itertools.product(rule["apiGroups"], rule["resources"], rule["verbs"]))
    return frozenset(rules)


def stamp(now_s: float) -> str:
    return datetime.fromtimestamp(now_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_response(
    code: int, message: str, *, headers: dict[str, str] | None = None
) -> aiohttp.web.Response:
    """A Kubernetes `Status` failure, as the API server answers."""
    reason = REASONS.get(code, "InternalError" if code >= 500 else "BadRequest")
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "Status", "metadata": {}}
    body |= {"status": "Failure", "code": code, "reason": reason, "message": message}
    return aiohttp.web.json_response(body, status=code, headers=headers)


def failure(code: int, message: str) -> kmock.KubernetesError:
    """An error kmock renders as a Status (raise it from any handler)."""
    return kmock.KubernetesError(status=code, reason=REASONS.get(code), message=message)


def qualified(resource: kmock.resource) -> str:
    return f"{resource.plural}.{resource.group}" if resource.group else str(resource.plural)


def object_key(
    request: kmock.Request, namespace: str | None = None, name: str | None = None
) -> tuple[kmock.resource, str | None, str]:
    """Where kmock keeps the object a request names (or, for a create, its body names)."""
    name = request.name or name
    assert request.resource is not None and name is not None
    return request.resource, request.namespace or namespace, name


@dataclass
class Fault:
    """What to do, `times` times, to requests that `where` (a kmock view) selects."""

    where: kmock.View
    status: int | None = None
    times: int = 1
    retry_after_s: float | None = None
    delay_s: float = 0.0
    stale: bool = False  # a concurrent writer bumps the object's resourceVersion first


@attrs.define(kw_only=True)
class FakeKube(kmock.KubernetesEmulator):
    now: Callable[[], float] = time.time
    rbac: frozenset[Rule] | None = None
    startup_delay_s: float = 0.003
    unschedulable: bool = False  # new pods stay Pending/Unschedulable
    hold_startup: bool = False  # scheduled pods stay not ready (the model is still loading)
    # Every resource request served, in order, as the RBAC rule it needs (discovery excluded).
    calls: list[Rule] = attrs.field(factory=list, init=False)

    _versions: Iterator[int] = attrs.field(factory=lambda: itertools.count(1), init=False)
    _faults: list[Fault] = attrs.field(factory=list, init=False)
    _kicked: asyncio.Event = attrs.field(factory=asyncio.Event, init=False)
    _kicks: int = attrs.field(default=0, init=False)
    _passes: int = attrs.field(default=0, init=False)
    _passed: asyncio.Condition = attrs.field(factory=asyncio.Condition, init=False)
    _controller: asyncio.Task[None] | None = attrs.field(default=None, init=False)
    # (namespace, label, value) -> the live pods carrying it, rebuilt by each `_reconcile`
    _index: dict[tuple[str, str, str], dict[Any, kmock.Object]] = attrs.field(
        factory=dict, init=False
    )

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.fallback["get /version/"] << self._serve_server_version
        for resource, kind in (
            (DEPLOYMENTS, "Deployment"),
            (STATEFULSETS, "StatefulSet"),
            (PODS, "Pod"),
            (EVENTS, "Event"),
            (LEASES, "Lease"),
            (HPAS, "HorizontalPodAutoscaler"),
        ):
            self.resources[resource] = kmock.ResourceInfo(kind=kind, namespaced=True)
        # KEDA is not installed until a ScaledObject is added: its list answers 404.

    async def __aenter__(self) -> FakeKube:
        await super().__aenter__()
        self._controller = asyncio.create_task(self._control(), name="fake deployment controller")
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        if self._controller is not None:
            self._controller.cancel()
            await asyncio.gather(self._controller, return_exceptions=True)
        await super().__aexit__(*exc_info)

    # --- test-side helpers ---

    def add(self, resource: kmock.resource, namespace: str, obj: dict[str, Any]) -> None:
        """Store `obj` as if created through the API (uid, resourceVersion, timestamp)."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta.update(namespace=namespace, uid=str(uuid.uuid4()))
        meta.update(resourceVersion=self._next_version(), creationTimestamp=stamp(self.now()))
        self.objects[resource, namespace, meta["name"]] = obj

    def add_workload(
        self,
        name: str,
        *,
        kind: str = "Deployment",
        namespace: str = "default",
        replicas: int = 1,
        annotations: dict[str, str] | None = None,
    ) -> None:
        labels = {"app": name}
        spec = {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "inference", "image": "example.com/llm:1"}]},
            },
        }
        if kind == "StatefulSet":
            spec["serviceName"] = name
        obj = {"apiVersion": "apps/v1", "kind": kind, "spec": spec, "status": {}}
        obj["metadata"] = {"name": name, "annotations": dict(annotations or {})}
        self.add(WORKLOADS[kind], namespace, obj)
        self.kick()

    def add_hpa(
        self, name: str, *, target: str, kind: str = "Deployment", ns: str = "default"
    ) -> None:
        spec = {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": target},
            "minReplicas": 1,
            "maxReplicas": 10,
        }
        self.add(
            HPAS,
            ns,
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": name},
                "spec": spec,
            },
        )

    def add_scaled_object(self, name: str, *, target: str, ns: str = "default") -> None:
        """A KEDA ScaledObject (this also installs KEDA's resource); kind defaults to Deployment."""
        spec = {"scaleTargetRef": {"name": target}, "triggers": []}
        self.add(
            SCALED_OBJECTS,
            ns,
            {
                "apiVersion": "keda.sh/v1alpha1",
                "kind": "ScaledObject",
                "metadata": {"name": name},
                "spec": spec,
            },
        )

    def workload(
        self, name: str, *, kind: str = "Deployment", ns: str = "default"
    ) -> dict[str, Any]:
        return self.objects[WORKLOADS[kind], ns, name].raw

    def annotate(
        self, name: str, annotations: dict[str, str | None], *, ns: str = "default"
    ) -> None:
        """Set (or, with None, remove) annotations on a Deployment, as `kubectl annotate` would."""
        patch = {"metadata": {"annotations": annotations, "resourceVersion": self._next_version()}}
        self.objects[DEPLOYMENTS, ns, name].patch(patch)

    def live(self, resource: kmock.resource, ns: str = "default") -> list[dict[str, Any]]:
        """The objects of `resource` in `ns` that are not deleted, oldest first."""
        return [
            obj.raw
            for (res, namespace, _), obj in list(self.objects.items())
            if res == resource and namespace == ns and not obj.deleted
        ]

    def lease(self, name: str, *, ns: str = "default") -> dict[str, Any] | None:
        key = (LEASES, ns, name)
        return (
            None if key not in self.objects or self.objects[key].deleted else self.objects[key].raw
        )

    def inject(
        self,
        where: kmock.View,
        *,
        status: int | None = None,
        times: int = 1,
        retry_after_s: float | None = None,
        delay_s: float = 0.0,
        stale: bool = False,
    ) -> Fault:
        fault = Fault(where, status, times, retry_after_s, delay_s, stale)
        self._faults.append(fault)
        return fault

    def kick(self) -> None:
        """Wake the deployment controller."""
        self._kicks += 1
        self._kicked.set()

    async def settle(self, timeout_s: float = 5.0) -> None:
        """Wait until the deployment controller has caught up with everything so far."""
        self.kick()
        wanted = self._kicks
        async with asyncio.timeout(timeout_s), self._passed:
            await self._passed.wait_for(lambda: self._passes >= wanted)

    # --- serving ---

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        if request.resource is not None and request.resource.plural is not None:
            self.calls.append(self._rule(request))
        fault = next((f for f in self._faults if f.times > 0 and request in f.where), None)
        if fault is not None:
            fault.times -= 1
            await asyncio.sleep(fault.delay_s)
            if fault.stale:
                self._touch(request)
            if fault.status is not None:
                retry_after = fault.retry_after_s
                headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
                return status_response(fault.status, f"injected {fault.status}", headers=headers)
        if request.resource is None or request.resource.plural is None:
            return await super()._handle(request)  # discovery, /version
        self._authorize(request)
        if request.method == kmock.method.PUT and request.name is not None:
            return aiohttp.web.json_response(await self._replace(request))
        if request.action in {kmock.action.CREATE, kmock.action.UPDATE}:
            self._check_write(request)
        response = await super()._handle(request)
        if request.action == kmock.action.UPDATE:
            self.kick()
        return response

    def _rule(self, request: kmock.Request) -> Rule:
        """The (apiGroup, resource[/subresource], verb) that RBAC checks for `request`."""
        resource = request.resource
        assert resource is not None and resource.plural is not None
        name = resource.plural + (f"/{request.subresource}" if request.subresource else "")
        return resource.group, name, self._verb(request)

    def _authorize(self, request: kmock.Request) -> None:
        if self.rbac is None:
            return
        resource = request.resource
        assert resource is not None and resource.plural is not None
        name = resource.plural + (f"/{request.subresource}" if request.subresource else "")
        verb = self._verb(request)
        if (resource.group, name, verb) not in self.rbac:
            where = f' in the namespace "{request.namespace}"' if request.namespace else ""
            raise failure(
                403,
                f'{qualified(resource)} is forbidden: User "system:serviceaccount:replicast:'
                f'replicast" cannot {verb} resource "{name}" in API group "{resource.group}"'
                f"{where}",
            )

    @staticmethod
    def _verb(request: kmock.Request) -> str:
        named = request.name is not None
        if request.method == kmock.method.GET:
            if str(request.params.get("watch", "")).lower() in {"true", "1"}:
                return "watch"
            return "get" if named else "list"
        verbs = {"POST": "create", "PUT": "update", "PATCH": "patch"}
        if request.method.value in verbs:
            return verbs[request.method.value]
        return "delete" if named else "deletecollection"

    def _stored(self, request: kmock.Request) -> kmock.Object:
        key = object_key(request)
        if key not in self.objects or self.objects[key].deleted:
            assert request.resource is not None
            raise failure(404, f'{qualified(request.resource)} "{request.name}" not found')
        return self.objects[key]

    def _check_version(
        self, request: kmock.Request, stored: kmock.Object, given: str | None
    ) -> None:
        if given and given != stored["metadata"].get("resourceVersion"):
            assert request.resource is not None
            raise failure(
                409,
                f'Operation cannot be fulfilled on {qualified(request.resource)} "{request.name}": '
                "the object has been modified; please apply your changes to the latest version "
                "and try again",
            )

    def _check_write(self, request: kmock.Request) -> None:
        """Before kmock stores a create or a patch: a JSON body, and a patch's precondition."""
        if not isinstance(request.data, dict):
            raise failure(400, "the body must be a JSON object")
        if request.action == kmock.action.UPDATE:
            given = request.data.get("metadata", {}).get("resourceVersion")
            self._check_version(request, self._stored(request), given)

    async def _replace(self, request: kmock.Request) -> dict[str, Any]:
        """PUT: replace the whole object (kmock 0.8 has no PUT)."""
        async with self._lock:
            stored = self._stored(request)
            new = copy.deepcopy(request.data)
            meta = new.setdefault("metadata", {})
            self._check_version(request, stored, meta.get("resourceVersion"))
            old_meta = stored["metadata"]
            meta.update(
                uid=old_meta.get("uid"), creationTimestamp=old_meta.get("creationTimestamp")
            )
            meta["resourceVersion"] = self._next_version()
            stored.history.append(new)
            return dict(new)

    async def _serve_fetch(self, request: kmock.Request) -> kmock.Payload:
        obj = self._stored(request).raw
        return self._scale_of(obj) if request.subresource == "scale" else obj

    async def _serve_create(self, request: kmock.Request) -> kmock.Payload:
        # kmock stored the body as it came; the API server adds identity and a version.
        meta = request.data.get("metadata", {})
        stored = self.objects[object_key(request, meta.get("namespace"), meta.get("name"))]
        stored.patch(
            {
                "metadata": {
                    "uid": str(uuid.uuid4()),
                    "creationTimestamp": stamp(self.now()),
                    "resourceVersion": self._next_version(),
                }
            }
        )
        return stored.raw

    async def _serve_update(self, request: kmock.Request) -> kmock.Payload:
        stored = self._stored(request)  # kmock merged the patch into it
        stored.patch({"metadata": {"resourceVersion": self._next_version()}})
        return self._scale_of(stored.raw) if request.subresource == "scale" else stored.raw

    async def _serve_list(self, request: kmock.Request) -> kmock.Payload:
        listing = await super()._serve_list(request)  # 404 for an unknown resource (KEDA absent)
        assert isinstance(listing, dict)
        selector = _parse_selector(request.params.get("labelSelector", ""))
        phase = request.params.get("fieldSelector", "").removeprefix("status.phase=") or None
        items = [
            item
            for item in listing["items"]
            if _matches(item.get("metadata", {}).get("labels", {}), selector)
            and (phase is None or item.get("status", {}).get("phase") == phase)
        ]
        return {
            "kind": "List",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": "1"},
            "items": items,
        }

    @staticmethod
    def _scale_of(obj: dict[str, Any]) -> dict[str, Any]:
        meta, spec = obj["metadata"], obj.get("spec", {})
        labels = spec.get("selector", {}).get("matchLabels", {})
        keep = ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
        return {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {key: meta.get(key) for key in keep},
            "spec": {"replicas": spec.get("replicas", 1)},
            "status": {
                "replicas": obj.get("status", {}).get("replicas", 0),
                "selector": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
            },
        }

    def _touch(self, request: kmock.Request) -> None:
        """A concurrent writer: the object's resourceVersion moves on."""
        key = object_key(request)
        if key in self.objects and not self.objects[key].deleted:
            self.objects[key].patch({"metadata": {"resourceVersion": self._next_version()}})

    def _next_version(self) -> str:
        return str(next(self._versions))

    # --- the deployment controller ---

    async def _control(self) -> None:
        while True:
            await self._kicked.wait()
            self._kicked.clear()
            kicks = self._kicks
            self._reconcile(start=False)
            await asyncio.sleep(self.startup_delay_s)  # pods start
            self._reconcile(start=True)
            async with self._passed:
                self._passes = kicks
                self._passed.notify_all()

    def _reconcile(self, *, start: bool) -> None:
        # One pass over the store indexes the live pods by (namespace, label, value), so a pass
        # costs O(objects), not O(workloads x objects) (the 500-target bench's fake stalled).
        self._index = {}
        workloads = []
        for key, obj in list(self.objects.items()):
            if key[0] == PODS and not obj.deleted:
                self._index_pod(key, obj)
            elif key[0] in WORKLOADS.values() and not obj.deleted and key[1] is not None:
                workloads.append((key, obj))
        for (_resource, ns, name), workload in workloads:
            spec = workload["spec"]
            labels = dict(spec["selector"]["matchLabels"])
            pods = self._pods(ns, labels)
            for _ in range(int(spec.get("replicas", 1)) - len(pods)):
                self._create_pod(ns, name, labels)
            # Like a ReplicaSet: remove not-ready pods first, then the youngest.
            extra = len(pods) - int(spec.get("replicas", 1))
            for key, _pod in sorted(pods, key=lambda kp: (_ready(kp[1]), kp[0][2]))[
                : max(0, extra)
            ]:
                self.objects[key].delete()
            if start:
                for key, pod in self._pods(ns, labels):
                    self._start(key, pod)
            pods = self._pods(ns, labels)
            ready = sum(_ready(pod) for _, pod in pods)
            status = {
                "replicas": len(pods),
                "readyReplicas": ready,
                "availableReplicas": ready,
                "updatedReplicas": len(pods),
            }
            if dict(workload.get("status", {})) != status:
                workload.patch(
                    {"status": status, "metadata": {"resourceVersion": self._next_version()}}
                )

    def _index_pod(self, key: Any, obj: kmock.Object) -> None:
        for label in obj["metadata"].get("labels", {}).items():
            self._index.setdefault((key[1], *label), {})[key] = obj

    def _pods(self, ns: str, labels: dict[str, str]) -> list[tuple[Any, kmock.Object]]:
        """The live pods of `ns` that `labels` select (from the index `_reconcile` keeps)."""
        if not labels:
            return []
        first = next(iter(labels.items()))
        return [
            (key, obj)
            for key, obj in list(self._index.get((ns, *first), {}).items())
            if not obj.deleted and _matches(obj["metadata"].get("labels", {}), labels)
        ]

    def _create_pod(self, ns: str, owner: str, labels: dict[str, str]) -> None:
        scheduled = {"type": "PodScheduled", "status": "True"}
        if self.unschedulable:
            scheduled = {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": NO_CAPACITY,
            }
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"{owner}-{uuid.uuid4().hex[:5]}", "labels": labels},
            "spec": {"containers": [{"name": "inference", "image": "example.com/llm:1"}]},
            "status": {"phase": "Pending", "conditions": [scheduled]},
        }
        self.add(PODS, ns, pod)
        name = pod["metadata"]["name"]
        self._index_pod((PODS, ns, name), self.objects[PODS, ns, name])

    def _start(self, key: Any, pod: kmock.Object) -> None:
        if pod["status"]["phase"] != "Pending" or self.unschedulable:
            return
        conditions = [{"type": "PodScheduled", "status": "True"}]
        phase = "Pending"
        if not self.hold_startup:
            conditions.append({"type": "Ready", "status": "True"})
            phase = "Running"
        status = {"phase": phase, "conditions": conditions}
        self.objects[key].patch(
            {"status": status, "metadata": {"resourceVersion": self._next_version()}}
        )


def _ready(pod: kmock.Object) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"]["conditions"])


def _parse_selector(text: str) -> dict[str, str]:
    """Equality selectors only ("app=web,tier=gpu"), which is what a Scale's selector holds."""
    pairs = (part.split("=", 1) for part in text.replace("==", "=").split(",") if part.strip())
    return {key.strip(): value.strip() for key, value in pairs}


def _matches(labels: dict[str, str], selector: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def write_kubeconfig(fake: FakeKube, directory: Path) -> Path:
    """A kubeconfig whose current context points at the fake (token auth, plain HTTP)."""
    server = str(fake.url).rstrip("/")
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": server}}],
        "users": [{"name": "replicast", "user": {"token": "fake-token"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "replicast"}}],
        "current-context": "fake",
    }
    path = directory / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig))
    return path


@asynccontextmanager
async def serving(clock: FakeClock, directory: Path) -> AsyncIterator[tuple[FakeKube, ApiClient]]:
    """The fake on 127.0.0.1 (enforcing deploy/rbac.yaml) and a client from a kubeconfig for it."""
    async with FakeKube(now=clock.now, rbac=rbac_rules()) as fake, kmock.Server(fake):
        api = await kubernetes_api(kubeconfig=str(write_kubeconfig(fake, directory)))
        async with api:
            yield fake, api
