"""The controller's metric source: Prometheus HTTP API -> per-target signal values.

In: the `prometheus` config block, the targets (their filled queries, `controller.signals`),
and `now_s`. Out: `read` -> {target: {signal: float | None}}, from ONE `/api/v1/query` per
distinct PromQL text per tick, run with a timeout under a concurrency bound. A value is None
(missing, never 0) when its series is absent, stale, NaN or infinite, or when its query
failed; failures are counted by kind in `stats` (for /metrics) and logged, never raised, so
a Prometheus outage cannot kill the control loop. The loop turns values into an Observation
with `controller.signals.observation_signals`.

Auth: none, a bearer token (a file re-read when it changes, or an environment variable), HTTP
basic auth (the password read the same ways), or Entra ID tokens for Azure Monitor managed
Prometheus (azure-identity, imported only then).
`query_range` is the offline path (`replicast profile from-prometheus`), never the loop's.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from controller import signals as sig
from controller.config import (
    AzureManagedPrometheusAuth,
    BasicAuth,
    BearerAuth,
    NoAuth,
    PrometheusConfig,
    TargetConfig,
)

log = logging.getLogger(__name__)

TokenProvider = Callable[[], Awaitable[str]]
Clock = Callable[[], float]


class PrometheusQueryError(Exception):
    """A query that gave no usable answer; `kind` is one word for counting."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


# --- tokens ----------------------------------------------------------------------------------


class FileToken:
    """A bearer token from a file (a mounted Secret), re-read whenever the file changes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._seen: tuple[int, int, int] | None = None
        self._token = ""

    async def __call__(self) -> str:
        try:
            st = self.path.stat()
            seen = (st.st_ino, st.st_mtime_ns, st.st_size)
            if seen != self._seen:
                self._token, self._seen = self.path.read_text(encoding="utf-8").strip(), seen
        except OSError as error:
            message = f"cannot read token file {self.path}: {error.strerror}"
            raise PrometheusQueryError("auth", message) from None
        if not self._token:
            raise PrometheusQueryError("auth", f"token file {self.path} is empty")
        return self._token


class EnvToken:
    """A bearer token from an environment variable, read at every request."""

    def __init__(self, name: str, *, environ: Mapping[str, str] | None = None) -> None:
        self.name = name
        self._environ = environ if environ is not None else os.environ

    async def __call__(self) -> str:
        token = self._environ.get(self.name, "").strip()
        if not token:
            raise PrometheusQueryError(
                "auth", f"environment variable {self.name} is not set or empty"
            )
        return token


class BasicCredentials:
    """HTTP basic auth: `username` and a password read like a bearer token (file or env)."""

    scheme = "Basic"

    def __init__(self, username: str, password: FileToken | EnvToken) -> None:
        self.username = username
        self._password = password

    async def __call__(self) -> str:
        pair = f"{self.username}:{await self._password()}".encode()
        return base64.b64encode(pair).decode("ascii")


class AsyncCredential(Protocol):
    """azure.identity.aio credentials (DefaultAzureCredential, ManagedIdentityCredential)."""

    async def get_token(self, *scopes: str) -> Any: ...


class AzureToken:
    """Entra ID access tokens for one scope, reused until `refresh_margin_s` before expiry."""

    def __init__(
        self,
        credential: AsyncCredential,
        scope: str,
        *,
        wall_clock: Clock | None = None,
        refresh_margin_s: float = 300.0,
    ) -> None:
        self.credential = credential
        self.scope = scope
        self._wall_clock = wall_clock if wall_clock is not None else time.time
        self._margin_s = refresh_margin_s
        self._token = ""
        self._expires_on_s = -math.inf
        self._refreshing = asyncio.Lock()  # one token request, however many queries wait

    def _fresh(self) -> bool:
        return bool(self._token) and self._wall_clock() < self._expires_on_s - self._margin_s

    async def __call__(self) -> str:
        if self._fresh():
            return self._token
        async with self._refreshing:
            if self._fresh():
                return self._token
            try:
                access = await self.credential.get_token(self.scope)
            except Exception as error:  # azure-identity raises its own ClientAuthenticationError
                message = f"no Entra ID token for {self.scope}: {error}"
                raise PrometheusQueryError("auth", message) from None
            self._token, self._expires_on_s = str(access.token), float(access.expires_on)
        return self._token

    async def aclose(self) -> None:
        close = getattr(self.credential, "close", None)
        if close is not None:
            await close()


def default_azure_credential(managed_identity_client_id: str | None = None) -> AsyncCredential:
    """azure-identity's async DefaultAzureCredential (workload identity, managed identity, CLI)."""
    # imported only when Azure auth is configured: azure-identity is slow to import
    from azure.identity.aio import DefaultAzureCredential  # noqa: PLC0415

    if managed_identity_client_id:
        return DefaultAzureCredential(managed_identity_client_id=managed_identity_client_id)
    return DefaultAzureCredential()


def token_provider_for(
    auth: NoAuth | BearerAuth | BasicAuth | AzureManagedPrometheusAuth,
    *,
    environ: Mapping[str, str] | None = None,
    credential: AsyncCredential | None = None,
) -> TokenProvider | None:
    """The token provider the `auth` block asks for (None: no Authorization header)."""
    if isinstance(auth, BearerAuth):
        if auth.token_file is not None:
            return FileToken(auth.token_file)
        return EnvToken(auth.token_env or "", environ=environ)
    if isinstance(auth, BasicAuth):
        password = (
            FileToken(auth.password_file)
            if auth.password_file is not None
            else EnvToken(auth.password_env or "", environ=environ)
        )
        return BasicCredentials(auth.username, password)
    if isinstance(auth, AzureManagedPrometheusAuth):
        cred = credential or default_azure_credential(auth.managed_identity_client_id)
        return AzureToken(cred, auth.scope)
    return None


# --- HTTP ------------------------------------------------------------------------------------


def parse_response(status: int, body: bytes) -> list[sig.Sample]:
    """An /api/v1/query answer as samples, or PrometheusQueryError saying what was wrong with it."""
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and doc.get("status") == "error":
        raise PrometheusQueryError(
            "prometheus_error", f"{doc.get('errorType')}: {doc.get('error')} (HTTP {status})"
        )
    if status in (401, 403):
        raise PrometheusQueryError("auth", f"HTTP {status}: the token was refused")
    if status >= 400:
        raise PrometheusQueryError("http_status", f"HTTP {status}: {body[:160]!r}")
    if not isinstance(doc, dict) or doc.get("status") != "success":
        raise PrometheusQueryError("bad_response", f"not a Prometheus API answer: {body[:160]!r}")
    try:
        return sig.samples_of(doc.get("data"))
    except sig.ResultError as error:
        raise PrometheusQueryError("bad_response", str(error)) from None


async def _request(
    session: aiohttp.ClientSession,
    url: str,
    params: Mapping[str, str],
    *,
    method: str,
    timeout_s: float,
    token_provider: TokenProvider | None,
) -> tuple[int, bytes]:
    headers = {"Accept": "application/json"}
    if token_provider is not None:
        scheme = getattr(token_provider, "scheme", "Bearer")
        headers["Authorization"] = f"{scheme} {await token_provider()}"
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        if method == "POST":
            request = session.post(url, data=dict(params), headers=headers, timeout=timeout)
        else:
            request = session.get(url, params=dict(params), headers=headers, timeout=timeout)
        async with request as response:
            return response.status, await response.read()
    except TimeoutError:
        raise PrometheusQueryError("timeout", f"no answer within {timeout_s:g} s") from None
    except aiohttp.ClientError as error:
        raise PrometheusQueryError("connection", f"{type(error).__name__}: {error}") from None


# --- the source ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FailedQuery:
    kind: str
    message: str
    query: str


@dataclass
class SourceStats:
    """What /metrics reports about the source; `last_*` describe the latest read."""

    queries_total: int = 0
    errors_total: Counter[str] = field(default_factory=Counter)
    last_errors: list[FailedQuery] = field(default_factory=list)
    # (target, signal) -> why it is None: empty, stale, not_finite, ambiguous, or an error kind
    last_missing: dict[tuple[str, str], str] = field(default_factory=dict)
    last_read_duration_s: float | None = None


class PrometheusSource:
    """Reads every target's signals with one query per distinct PromQL text per tick."""

    def __init__(
        self,
        config: PrometheusConfig,
        *,
        session: aiohttp.ClientSession,
        clock: Clock | None = None,
        token_provider: TokenProvider | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self._session = session
        self._clock = clock if clock is not None else time.monotonic
        self._token_provider = (
            token_provider
            if token_provider is not None
            else token_provider_for(config.auth, environ=environ)
        )
        self._owns_token_provider = token_provider is None
        self._limit = asyncio.Semaphore(config.max_concurrency)
        self.stats = SourceStats()

    async def query(self, promql: str, now_s: float) -> list[sig.Sample]:
        """One instant query evaluated at `now_s`; PrometheusQueryError when there is no answer."""
        params = {
            "query": promql,
            "time": f"{now_s:.3f}",
            "timeout": f"{self.config.timeout_s:g}s",
        }
        async with self._limit:
            self.stats.queries_total += 1
            status, body = await _request(
                self._session,
                f"{self.config.url}/api/v1/query",
                params,
                method=self.config.method,
                timeout_s=self.config.timeout_s,
                token_provider=self._token_provider,
            )
        return parse_response(status, body)

    async def _run(self, planned: sig.PlannedQuery, now_s: float) -> list[sig.Sample] | FailedQuery:
        try:
            return await self.query(planned.promql, now_s)
        except PrometheusQueryError as failure:
            return FailedQuery(failure.kind, str(failure), planned.promql)
        except Exception as error:  # a bug here must not stop the control loop; it is logged
            log.exception("prometheus query failed unexpectedly; query: %.200s", planned.promql)
            return FailedQuery("internal", f"{type(error).__name__}: {error}", planned.promql)

    async def observe(
        self, targets: Sequence[TargetConfig | sig.TargetQueries], now_s: float
    ) -> dict[str, sig.Reading]:
        """{target name: Reading} at `now_s` (values, and why each None is None); never
        raises for Prometheus."""
        started = self._clock()
        queries = [t if isinstance(t, sig.TargetQueries) else t.signal_queries() for t in targets]
        plan = sig.plan_queries(queries)
        answers = await asyncio.gather(*(self._run(q, now_s) for q in plan))
        out: dict[str, dict[str, float | None]] = {q.target: {} for q in queries}
        errors: list[FailedQuery] = []
        missing: dict[tuple[str, str], str] = {}
        for planned, answer in zip(plan, answers, strict=True):
            values: dict[tuple[str, str], tuple[float | None, str | None]]
            if isinstance(answer, FailedQuery):
                errors.append(answer)
                values = {(m.target, m.signal): (None, answer.kind) for m in planned.members}
            else:
                values = sig.split_result(answer, planned.members, now_s)
            for (target, signal), (value, why) in values.items():
                out[target][signal] = value
                if why is not None:
                    missing[(target, signal)] = why
        self._record(errors, missing, self._clock() - started)
        readings = {}
        for t, v in out.items():
            ordered = {s: v[s] for s in sig.signal_names(v)}
            why = {s: missing.get((t, s), "empty") for s, value in ordered.items() if value is None}
            readings[t] = sig.Reading(ordered, why)
        return readings

    async def read(
        self, targets: Sequence[TargetConfig | sig.TargetQueries], now_s: float
    ) -> dict[str, dict[str, float | None]]:
        """{target name: {signal: value or None}} at `now_s`; never raises for Prometheus."""
        readings = await self.observe(targets, now_s)
        return {t: dict(r.values) for t, r in readings.items()}

    def _record(
        self, errors: list[FailedQuery], missing: dict[tuple[str, str], str], duration_s: float
    ) -> None:
        kinds = Counter(error.kind for error in errors)
        self.stats.errors_total.update(kinds)
        if errors:
            first = errors[0]
            log.warning(
                "prometheus: %d queries failed (%s); first: %s: %s; query: %.200s",
                len(errors),
                ", ".join(f"{kind}: {n}" for kind, n in sorted(kinds.items())),
                first.kind,
                first.message,
                first.query,
            )
        self.stats.last_errors = errors
        self.stats.last_missing = missing
        self.stats.last_read_duration_s = duration_s

    async def aclose(self) -> None:
        """Close a credential this source made itself (the session belongs to the caller)."""
        close = getattr(self._token_provider, "aclose", None)
        if self._owns_token_provider and close is not None:
            await close()


# --- offline: a rate series for the simulator ------------------------------------------------

MAX_POINTS_PER_QUERY = 10_000  # Prometheus refuses more than 11,000 points per series


async def query_range(
    url: str,
    query: str,
    *,
    start_s: float,
    end_s: float,
    step_s: float,
    session: aiohttp.ClientSession,
    token_provider: TokenProvider | None = None,
    timeout_s: float = 60.0,
    max_points: int = MAX_POINTS_PER_QUERY,
) -> list[tuple[float, float]]:
    """(time_s, value) of a one-series range query, fetched in chunks Prometheus accepts."""
    points: dict[float, float] = {}
    first_s = start_s
    while first_s <= end_s:
        last_s = min(end_s, first_s + step_s * (max_points - 1))
        params = {"query": query, "start": f"{first_s:.3f}", "end": f"{last_s:.3f}"}
        params |= {"step": f"{step_s:g}", "timeout": f"{timeout_s:g}s"}
        status, body = await _request(
            session,
            f"{url.rstrip('/')}/api/v1/query_range",
            params,
            method="POST",
            timeout_s=timeout_s,
            token_provider=token_provider,
        )
        points.update(_matrix_points(status, body))
        first_s = last_s + step_s
    return sorted(points.items())


def _matrix_points(status: int, body: bytes) -> list[tuple[float, float]]:
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if status >= 400 or not isinstance(doc, dict) or doc.get("status") != "success":
        parse_response(status, body)  # raises the precise failure
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, dict) or data.get("resultType") != "matrix":
        raise PrometheusQueryError("bad_response", "expected a range vector (resultType matrix)")
    result = data.get("result")
    if not isinstance(result, list):
        raise PrometheusQueryError("bad_response", "a range vector without a result list")
    if len(result) > 1:
        raise PrometheusQueryError(
            "ambiguous",
            f"the query returned {len(result)} series; wrap it in sum(...) for one rate",
        )
    try:
        return [(float(t), float(v)) for t, v in (result[0]["values"] if result else [])]
    except (KeyError, TypeError, ValueError) as error:
        message = f"malformed range vector: {error!r}"
        raise PrometheusQueryError("bad_response", message) from None
