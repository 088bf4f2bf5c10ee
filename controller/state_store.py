"""Where the policies' state lives between leaders: ConfigMaps, one per bucket of targets.

In: after every tick the leader `put`s each target's entry (its acting policy's and its
shadows' `Autoscaler.state`); on taking over, a new leader `load`s them. Out: ConfigMaps
`<prefix>-state-<k>` in the controller's namespace (the prefix is the Lease's name, so shards
never share one), labelled `replicast.io/state-of: <prefix>`, one data key per target (its
name) holding its entry as JSON. A target's bucket is `(stable_hash(name) >> 32) % buckets`
(controller/sharding.py `stable_hash`: the same in every replica and every release).

Writes are coalesced: an entry is written only when it changed, and each bucket at most once
per `write_interval_s` (default 10 s, so what a new leader finds is at most one interval older
than what the old one knew); `flush(force=True)` writes every changed bucket now (at shutdown).
Every write carries the resourceVersion it read; a 409 is re-read and written once more while
this replica still leads (`leading`: a late write of the leader before it), and given up when
it does not (a newer leader's state wins).

Why buckets of ConfigMaps: one Lease annotation held every target's state before, and
Kubernetes caps an object's annotations at 256 KiB: at ~650 bytes per busy target, 500
targets did not fit and every save failed. A ConfigMap holds up to 1 MiB; 16 buckets hold
10,000 such targets (~400 KB each) and a write rewrites ~1/16 of the fleet's state, at most 16
writes per interval whatever the number of targets (an object per target would be one write per
target per interval: 130 writes/s for 2,000 targets at 15 s). Beyond that, shard the targets
(`replicast run --shard INDEX/COUNT`): each shard has its own Lease and its own buckets.
RBAC (deploy/rbac.yaml): configmaps `get`, `create`, `update`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from kubernetes_asyncio.client import ApiClient, CoreV1Api

from controller.actuators.kube_api import (
    ConflictError,
    NotFoundError,
    call_api,
    json_body,
    rfc3339,
)
from controller.clock import Clock, SystemClock
from controller.errors import ActuatorError, PermanentError, TemporaryError
from controller.sharding import stable_hash

log = logging.getLogger(__name__)

ENTRY_VERSION = 2
DEFAULT_BUCKETS = 16
DEFAULT_WRITE_INTERVAL_S = 10.0
MAX_BUCKET_BYTES = 900_000  # a ConfigMap holds at most 1 MiB; leave room for the envelope
STATE_OF_LABEL = "replicast.io/state-of"
WRITER_ANNOTATION = "replicast.io/written-by"


def bucket_of(name: str, buckets: int) -> int:
    """The high half of the hash: shards take the whole of it modulo COUNT, so buckets must not
    use the same bits (4 shards would leave 12 of 16 buckets empty)."""
    return (stable_hash(name) >> 32) % buckets


class StateStore(Protocol):
    async def load(self, names: Sequence[str]) -> dict[str, dict[str, Any]]: ...

    def put(self, name: str, entry: Mapping[str, Any]) -> bool: ...

    async def flush(self, *, force: bool = False) -> int: ...

    def sizes(self) -> dict[str, int]: ...


def _text(entry: Mapping[str, Any]) -> str:
    return json.dumps({"version": ENTRY_VERSION, **entry}, sort_keys=True, separators=(",", ":"))


def _entry(text: str, where: str) -> dict[str, Any] | None:
    try:
        entry = json.loads(text)
    except ValueError as error:
        log.warning("%s: not JSON (%s); that target starts from its own history", where, error)
        return None
    if not isinstance(entry, dict) or entry.get("version") != ENTRY_VERSION:
        log.warning("%s: not a version %d entry; ignored", where, ENTRY_VERSION)
        return None
    return entry


class MemoryStore:
    """State kept in this process only (no leader election: a sandbox, one replica)."""

    def __init__(self) -> None:
        self._texts: dict[str, str] = {}

    async def load(self, names: Sequence[str]) -> dict[str, dict[str, Any]]:
        out = {}
        for name in names:
            entry = _entry(self._texts[name], name) if name in self._texts else None
            if entry is not None:
                out[name] = entry
        return out

    def put(self, name: str, entry: Mapping[str, Any]) -> bool:
        text = _text(entry)
        changed = self._texts.get(name) != text
        self._texts[name] = text
        return changed

    async def flush(self, *, force: bool = False) -> int:
        return 0

    def sizes(self) -> dict[str, int]:
        return {name: len(text.encode()) for name, text in self._texts.items()}


class ConfigMapStore:
    """The entries in ConfigMaps `<prefix>-state-<k>` (see the module docstring)."""

    def __init__(
        self,
        api: ApiClient,
        *,
        namespace: str,
        prefix: str,
        identity: str,
        clock: Clock | None = None,
        buckets: int = DEFAULT_BUCKETS,
        write_interval_s: float = DEFAULT_WRITE_INTERVAL_S,
        request_timeout_s: float = 5.0,
        retry_delays_s: tuple[float, ...] = (0.5, 1.0),
        leading: Callable[[], bool] | None = None,
    ) -> None:
        if not 1 <= buckets <= 256:
            raise ValueError(f"buckets: must be 1-256 (got {buckets})")
        self.namespace, self.prefix, self.identity = namespace, prefix, identity
        self.clock = clock if clock is not None else SystemClock()
        self.buckets = buckets
        self.write_interval_s = write_interval_s
        self._timeout = request_timeout_s
        self._delays = retry_delays_s
        self._core = CoreV1Api(api)
        self.leading = leading if leading is not None else (lambda: True)
        self._texts: dict[str, str] = {}  # the newest entry of each target, as JSON
        self._dirty: set[int] = set()
        self._written_at: dict[int, float] = {}  # monotonic
        self._versions: dict[int, str | None] = {}  # resourceVersion as last read or written
        self.writes = 0

    def name_of(self, bucket: int) -> str:
        return f"{self.prefix}-state-{bucket}"

    def __str__(self) -> str:
        return f"state configmaps {self.namespace}/{self.prefix}-state-*"

    # --- reading ---

    async def load(self, names: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The saved entries of `names` (targets not found are absent)."""
        wanted: dict[int, list[str]] = {}
        for name in names:
            wanted.setdefault(bucket_of(name, self.buckets), []).append(name)
        out: dict[str, dict[str, Any]] = {}
        for bucket, members in sorted(wanted.items()):
            body = await self._get(bucket)
            data = (body or {}).get("data") or {}
            for name in members:
                text = data.get(name)
                entry = None if text is None else _entry(text, f"{self.name_of(bucket)}/{name}")
                if entry is not None:
                    out[name] = entry
        return out

    async def _get(self, bucket: int) -> dict[str, Any] | None:
        name = self.name_of(bucket)

        async def get() -> Any:
            response = await self._core.read_namespaced_config_map(
                name, self.namespace, _preload_content=False, _request_timeout=self._timeout
            )
            return await json_body(response)

        try:
            body: dict[str, Any] = await self._call(f"get configmap {name}", get)
        except NotFoundError:
            self._versions[bucket] = None
            return None
        self._versions[bucket] = str((body.get("metadata") or {}).get("resourceVersion") or "")
        return body

    # --- writing ---

    def put(self, name: str, entry: Mapping[str, Any]) -> bool:
        """Keep `entry` as `name`'s newest; True when it differs from the last one put."""
        text = _text(entry)
        if self._texts.get(name) == text:
            return False
        self._texts[name] = text
        self._dirty.add(bucket_of(name, self.buckets))
        return True

    def sizes(self) -> dict[str, int]:
        return {name: len(text.encode()) for name, text in self._texts.items()}

    async def flush(self, *, force: bool = False) -> int:
        """Write the changed buckets whose last write is at least `write_interval_s` old (every
        changed one when `force`); returns the number written. Errors are raised (the first),
        after the other buckets were tried."""
        now = self.clock.monotonic()
        due = [
            b
            for b in sorted(self._dirty)
            if force or now - self._written_at.get(b, -float("inf")) >= self.write_interval_s
        ]
        first: ActuatorError | None = None
        written = 0
        for bucket in due:
            try:
                await self._write(bucket)
            except ActuatorError as error:
                first = first or error
                continue
            self._dirty.discard(bucket)
            self._written_at[bucket] = self.clock.monotonic()
            written += 1
        if first is not None:
            raise first
        return written

    def _body(self, bucket: int) -> dict[str, Any]:
        data = {n: t for n, t in self._texts.items() if bucket_of(n, self.buckets) == bucket}
        size = sum(len(n) + len(t.encode()) for n, t in data.items())
        if size > MAX_BUCKET_BYTES:
            raise PermanentError(
                f"{self.name_of(bucket)}: {size} bytes of state, over {MAX_BUCKET_BYTES} (a "
                "ConfigMap holds 1 MiB); shard the targets (replicast run --shard INDEX/COUNT)"
            )
        metadata: dict[str, Any] = {
            "name": self.name_of(bucket),
            "namespace": self.namespace,
            "labels": {"app.kubernetes.io/managed-by": "replicast", STATE_OF_LABEL: self.prefix},
            "annotations": {
                WRITER_ANNOTATION: self.identity,
                "replicast.io/written-at": rfc3339(self.clock.now()),
            },
        }
        version = self._versions.get(bucket)
        if version:
            metadata["resourceVersion"] = version
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}

    async def _write(self, bucket: int) -> None:
        name = self.name_of(bucket)
        for attempt in (1, 2):
            if bucket not in self._versions:
                await self._get(bucket)
            body = self._body(bucket)
            try:
                if self._versions.get(bucket) is None:
                    answer = await self._call(
                        f"create configmap {name}",
                        lambda body=body: self._core.create_namespaced_config_map(
                            self.namespace, body, _request_timeout=self._timeout
                        ),
                    )
                else:
                    answer = await self._call(
                        f"update configmap {name}",
                        lambda body=body: self._core.replace_namespaced_config_map(
                            name, self.namespace, body, _request_timeout=self._timeout
                        ),
                    )
            except ConflictError as error:
                fresh = await self._get(bucket)
                writer = ((fresh or {}).get("metadata") or {}).get("annotations", {}) or {}
                by = writer.get(WRITER_ANNOTATION)
                if not self.leading():  # a newer leader wrote it: its state wins
                    raise TemporaryError(
                        f"{error}; {by} wrote it since and this replica no longer leads"
                    ) from error
                if attempt == 2:
                    raise TemporaryError(f"{error}; twice in a row") from error
                continue  # still the leader: a late write of the one before; overwrite it
            self._versions[bucket] = str(answer.metadata.resource_version or "")
            self.writes += 1
            return

    async def _call(self, what: str, call: Any) -> Any:
        return await call_api(
            f"{self}: {what}", call, clock=self.clock, delays_s=self._delays, max_delay_s=5.0
        )
