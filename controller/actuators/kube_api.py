"""The Kubernetes API as the actuators use it: the client, the target's name, and errors.

In: kubeconfig or in-cluster settings (`kubernetes_api()`), a `WorkloadRef` (kind, namespace,
name). Out: an `ApiClient`; `call_api` runs one request with retries per `KubernetesSettings`
and turns every failure into the actuator vocabulary in one line (`api_error`: 404
`NotFoundError`, 409 `ConflictError`, 429/5xx/timeouts `TemporaryError` with Retry-After, the
rest `PermanentError`); `json_body` reads a `_preload_content=False` answer; `rfc3339` formats
Event times.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiohttp
from kubernetes_asyncio import config
from kubernetes_asyncio.client import (
    ApiClient,
    Configuration,
)
from kubernetes_asyncio.client.exceptions import ApiException

from controller.actuators.base import (
    ActuatorError,
    Clock,
    PermanentError,
    TemporaryError,
    retrying,
)
from policies.text import one_line

logger = logging.getLogger(__name__)


T = TypeVar("T")

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
    return one_line(text)


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
