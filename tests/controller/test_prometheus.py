"""PrometheusSource against a real Prometheus (conftest.py) and against broken ones.

The real one scrapes a vLLM-like exporter with targets llm/llama (2 replicas), llm/mistral and
llm/idle (never any request). Values are compared with what PromQL itself returns for the same
expression at the same evaluation time.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer
from azure.core.credentials import AccessToken

from controller.config import AzureManagedPrometheusAuth, PrometheusConfig, TargetConfig
from controller.prometheus import AzureToken, PrometheusSource, query_range, token_provider_for
from controller.signals import PRESETS, observation_signals
from policies import Observation
from tests.controller.conftest import (
    INSTALL_HINT,
    SETTLE_S,
    RunningPrometheus,
    free_port,
    prometheus_binary,
)

EMPTY_VECTOR = {"status": "success", "data": {"resultType": "vector", "result": []}}


def prometheus_config(url: str, **settings: Any) -> PrometheusConfig:
    return PrometheusConfig.model_validate({"url": url, **settings})


def target(name: str, *, staleness_s: float = 30.0, **overrides: Any) -> TargetConfig:
    spec: dict[str, Any] = {
        "name": name,
        "scale_target": {"kind": "Deployment", "namespace": "llm", "name": name},
        "signals": {"preset": "vllm", "selector": 'namespace="{namespace}"'},
        "policy": {"policy": "hpa", "metric": "in_flight", "target_per_replica": 4},
        "staleness_s": staleness_s,
        "interval_s": min(staleness_s, 15.0),
    }
    spec["policy"]["max_replicas"] = 10
    return TargetConfig.model_validate(spec | overrides)


THREE = ("llama", "mistral", "idle")


class Counting:
    """A ClientSession that records every request it sends."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(self._started)
        self.session = aiohttp.ClientSession(trace_configs=[trace])

    async def _started(self, session: Any, context: Any, params: Any) -> None:
        self.sent.append(f"{params.method} {params.url.path}")


@pytest_asyncio.fixture
async def counting() -> AsyncIterator[Counting]:
    c = Counting()
    async with c.session:
        yield c


async def promql(session: aiohttp.ClientSession, url: str, query: str, time_s: float) -> Any:
    """What Prometheus itself answers, for comparison."""
    form = {"query": query, "time": f"{time_s:.3f}"}
    async with session.post(f"{url}/api/v1/query", data=form) as response:
        body = await response.json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def settled_now_s() -> float:
    """A second ago: every sample stamped before it is written (appends take milliseconds),
    so two queries evaluated at it see the same data."""
    return round(time.time() - SETTLE_S, 3)


# --- the real Prometheus ---------------------------------------------------------------------


@pytest.mark.asyncio
async def test_signals_equal_what_promql_returns_for_each_target(
    prometheus: RunningPrometheus, counting: Counting
) -> None:
    source = PrometheusSource(prometheus_config(prometheus.url), session=counting.session)
    targets = [target(n) for n in THREE]
    now_s = settled_now_s()

    values = await source.read(targets, now_s)

    assert set(values) == set(THREE)
    for t in targets:
        queries = t.signal_queries().queries
        assert set(values[t.name]) == set(queries)  # every configured signal
        for signal, q in queries.items():
            rows = await promql(counting.session, prometheus.url, q.query, now_s)
            mine = [r for r in rows if r["metric"] == {"namespace": "llm", "name": t.name}]
            expected = float(mine[0]["value"][1]) if mine else math.nan
            got = values[t.name][signal]
            if math.isfinite(expected):
                assert got == expected, (t.name, signal)
            else:
                assert got is None, (t.name, signal)  # NaN or absent -> missing, never 0
    # totals over replicas: llama runs 3 + 5 and queues 1 + 0
    assert values["llama"]["in_flight"] == 8
    assert values["llama"]["queue_depth"] == 1
    assert values["mistral"]["in_flight"] == 2
    rate = values["llama"]["request_rate_rps"]
    assert rate is not None and rate > 0  # rate() over the seconds recorded so far
    p95 = values["llama"]["latency_p95_s"]
    assert p95 is not None and 2 < p95 <= 5
    # idle: histogram with no request in the window -> histogram_quantile is NaN -> None
    assert values["idle"]["latency_p95_s"] is None
    assert source.stats.last_missing[("idle", "latency_p95_s")] == "not_finite"
    assert values["idle"]["request_rate_rps"] == 0.0  # a measured zero stays a zero
    assert source.stats.last_errors == []


@pytest.mark.asyncio
async def test_one_query_per_template_per_tick_serves_every_target(
    prometheus: RunningPrometheus, counting: Counting
) -> None:
    source = PrometheusSource(prometheus_config(prometheus.url), session=counting.session)
    targets = [target(n) for n in THREE]

    await source.read(targets, settled_now_s())
    assert len(counting.sent) == len(PRESETS["vllm"])  # 3 targets, one query per signal
    assert set(counting.sent) == {"POST /api/v1/query"}
    assert source.stats.queries_total == len(PRESETS["vllm"])

    # a second tick: again one per template
    await source.read(targets, settled_now_s())
    assert len(counting.sent) == 2 * len(PRESETS["vllm"])

    # a target with another selector cannot share: its 8 queries are its own
    llama_0 = target(
        "llama-0",
        labels={"name": "llama"},  # its series carry name="llama"; the selector picks the pod
        signals={"preset": "vllm", "selector": 'pod="llama-0"'},
    )
    counting.sent.clear()
    values = await source.read([*targets, llama_0], settled_now_s())
    assert len(counting.sent) == 2 * len(PRESETS["vllm"])
    assert values["llama-0"]["in_flight"] == 3
    assert values["llama"]["in_flight"] == 8


@pytest.mark.asyncio
async def test_get_reads_the_same_values_as_post(
    prometheus: RunningPrometheus, counting: Counting
) -> None:
    now_s = settled_now_s()
    post = PrometheusSource(prometheus_config(prometheus.url), session=counting.session)
    get = PrometheusSource(
        prometheus_config(prometheus.url, method="GET"), session=counting.session
    )
    targets = [target(n) for n in THREE]
    assert await get.read(targets, now_s) == await post.read(targets, now_s)
    assert "GET /api/v1/query" in counting.sent


@pytest.mark.asyncio
async def test_a_series_older_than_its_staleness_budget_is_missing(
    prometheus: RunningPrometheus, counting: Counting
) -> None:
    source = PrometheusSource(prometheus_config(prometheus.url), session=counting.session)
    # 20 s from now: Prometheus still finds the gauges (5 min lookback), but the newest
    # sample behind each value is ~20 s old.
    later_s = time.time() + 20

    strict = await source.read([target("llama", staleness_s=5)], later_s)
    assert set(strict["llama"].values()) == {None}
    assert source.stats.last_missing[("llama", "in_flight")] == "stale"
    assert source.stats.last_missing[("llama", "request_rate_rps")] == "stale"

    # the same answer within a 60 s budget: the gauges are there, and not zero
    relaxed = await source.read([target("llama", staleness_s=60)], later_s)
    assert relaxed["llama"]["in_flight"] == 8
    assert relaxed["llama"]["queue_depth"] == 1


@pytest.mark.asyncio
async def test_an_empty_result_is_missing_not_zero(
    prometheus: RunningPrometheus, counting: Counting
) -> None:
    source = PrometheusSource(prometheus_config(prometheus.url), session=counting.session)
    values = await source.read([target("ghost"), target("llama")], settled_now_s())
    assert set(values["ghost"].values()) == {None}
    assert source.stats.last_missing[("ghost", "in_flight")] == "empty"
    assert values["llama"]["in_flight"] == 8
    assert source.stats.last_errors == []


@pytest.mark.asyncio
async def test_nan_and_infinite_values_are_missing(
    prometheus: RunningPrometheus, counting: Counting
) -> None:
    source = PrometheusSource(prometheus_config(prometheus.url), session=counting.session)
    queries = {
        "extra.per_idle_request": "sum by ({group_by}) (vllm:num_requests_running{{selector}}) "
        "/ sum by ({group_by}) (rate(vllm:request_success_total{{selector}}[1m]))",
    }
    idle = target("idle", signals={"selector": 'namespace="llm"', "queries": queries})
    llama = target("llama", signals={"selector": 'namespace="llm"', "queries": queries})
    now_s = settled_now_s()

    values = await source.read([idle, llama], now_s)

    # idle: 0 running / 0 completions per second = NaN
    per_request = idle.signal_queries().queries["extra.per_idle_request"].query
    rows = await promql(counting.session, prometheus.url, per_request, now_s)
    assert [r["value"][1] for r in rows if r["metric"]["name"] == "idle"] == ["NaN"]
    assert values["idle"]["extra.per_idle_request"] is None
    assert source.stats.last_missing[("idle", "extra.per_idle_request")] == "not_finite"
    assert values["llama"]["extra.per_idle_request"] is not None

    divide_by_zero = "sum by ({group_by}) (vllm:num_requests_running{{selector}}) / 0"
    inf = target("llama", signals={"queries": {"extra.inf": divide_by_zero}})
    assert (await source.read([inf], now_s))["llama"]["extra.inf"] is None
    assert source.stats.last_missing[("llama", "extra.inf")] == "not_finite"


@pytest.mark.asyncio
async def test_an_unaggregated_query_is_missing_with_a_hint(
    prometheus: RunningPrometheus, counting: Counting
) -> None:
    source = PrometheusSource(prometheus_config(prometheus.url), session=counting.session)
    raw = target("llama", signals={"queries": {"in_flight": "vllm:num_requests_running"}})
    values = await source.read([raw], settled_now_s())
    assert values["llama"]["in_flight"] is None  # two pods' series: not a total
    why = source.stats.last_missing[("llama", "in_flight")]
    assert why.startswith("ambiguous: 2 series") and "sum by ({group_by})" in why


@pytest.mark.asyncio
async def test_a_bad_query_is_recorded_as_a_prometheus_error(
    prometheus: RunningPrometheus, counting: Counting
) -> None:
    source = PrometheusSource(prometheus_config(prometheus.url), session=counting.session)
    broken = target("llama", signals={"queries": {"in_flight": "sum by ({group_by}) (("}})
    values = await source.read([broken], settled_now_s())
    assert values == {"llama": {"in_flight": None}}
    [error] = source.stats.last_errors
    assert error.kind == "prometheus_error" and "bad_data" in error.message
    assert source.stats.errors_total["prometheus_error"] == 1


# --- broken Prometheus -----------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest_asyncio.fixture
async def fake_prometheus() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    """Start aiohttp servers on 127.0.0.1 answering /api/v1/query with a given handler."""
    servers: list[TestServer] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_route("*", "/api/v1/query", handler)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return str(server.make_url("")).rstrip("/")

    yield start
    for server in servers:
        await server.close()


def llama_only() -> list[TargetConfig]:
    return [target("llama")]


@pytest.mark.asyncio
async def test_prometheus_down_gives_missing_signals_and_connection_errors() -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    async with aiohttp.ClientSession() as session:
        source = PrometheusSource(prometheus_config(closed, timeout_s=2), session=session)
        values = await source.read(llama_only(), time.time())
    assert set(values["llama"].values()) == {None}
    assert source.stats.errors_total == {"connection": len(PRESETS["vllm"])}
    assert source.stats.last_missing[("llama", "in_flight")] == "connection"


@pytest.mark.asyncio
async def test_slow_prometheus_times_out(fake_prometheus: Any) -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response(EMPTY_VECTOR)

    url = await fake_prometheus(slow)
    async with aiohttp.ClientSession() as session:
        source = PrometheusSource(prometheus_config(url, timeout_s=0.2), session=session)
        started = time.monotonic()
        values = await source.read(llama_only(), time.time())
        elapsed_s = time.monotonic() - started
    release.set()
    assert set(values["llama"].values()) == {None}
    assert source.stats.errors_total == {"timeout": len(PRESETS["vllm"])}
    assert elapsed_s < 2  # the queries ran concurrently, each cut at 0.2 s


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (500, "internal error", "http_status"),
        (503, '{"status":"error","errorType":"timeout","error":"query timed out"}',
         "prometheus_error"),
        (422, '{"status":"error","errorType":"execution","error":"many-to-many"}',
         "prometheus_error"),
        (401, "Unauthorized", "auth"),
        (200, "<html>a login page</html>", "bad_response"),
        (200, '{"status":"success","data":{"resultType":"matrix","result":[]}}', "bad_response"),
    ],
    ids=["500", "503-timeout", "422-execution", "401", "html", "matrix"],
)  # fmt: skip
async def test_error_answers_give_missing_signals_with_the_error_kind(
    fake_prometheus: Any, status: int, body: str, kind: str
) -> None:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(status=status, text=body, content_type="application/json")

    url = await fake_prometheus(answer)
    async with aiohttp.ClientSession() as session:
        source = PrometheusSource(prometheus_config(url), session=session)
        values = await source.read(llama_only(), time.time())
    assert set(values["llama"].values()) == {None}
    assert dict(source.stats.errors_total) == {kind: len(PRESETS["vllm"])}


@pytest.mark.asyncio
async def test_queries_in_flight_never_exceed_max_concurrency(fake_prometheus: Any) -> None:
    in_flight, most = 0, 0

    async def busy(request: web.Request) -> web.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.02)
        in_flight -= 1
        return web.json_response(EMPTY_VECTOR)

    url = await fake_prometheus(busy)
    async with aiohttp.ClientSession() as session:
        source = PrometheusSource(prometheus_config(url, max_concurrency=2), session=session)
        await source.read(llama_only(), time.time())
    assert most == 2
    assert source.stats.queries_total == len(PRESETS["vllm"])


# --- auth ------------------------------------------------------------------------------------


def recording(headers: list[str | None]) -> Handler:
    async def answer(request: web.Request) -> web.Response:
        headers.append(request.headers.get("Authorization"))
        return web.json_response(EMPTY_VECTOR)

    return answer


@pytest.mark.asyncio
async def test_bearer_token_from_a_file_is_reread_when_it_changes(
    fake_prometheus: Any, tmp_path: Path
) -> None:
    seen: list[str | None] = []
    url = await fake_prometheus(recording(seen))
    token_file = tmp_path / "token"
    token_file.write_text("first-token\n")
    auth = {"type": "bearer", "token_file": str(token_file)}
    n = len(PRESETS["vllm"])
    async with aiohttp.ClientSession() as session:
        source = PrometheusSource(prometheus_config(url, auth=auth), session=session)
        await source.read(llama_only(), time.time())
        token_file.write_text("rotated-token\n")  # the kubelet updates a mounted Secret
        await source.read(llama_only(), time.time())
    assert seen == ["Bearer first-token"] * n + ["Bearer rotated-token"] * n


@pytest.mark.asyncio
async def test_bearer_token_from_the_environment(fake_prometheus: Any) -> None:
    seen: list[str | None] = []
    url = await fake_prometheus(recording(seen))
    auth = {"type": "bearer", "token_env": "PROM_TOKEN"}
    async with aiohttp.ClientSession() as session:
        source = PrometheusSource(
            prometheus_config(url, auth=auth), session=session, environ={"PROM_TOKEN": "env-tok"}
        )
        await source.read(llama_only(), time.time())
    assert set(seen) == {"Bearer env-tok"}


@pytest.mark.asyncio
async def test_a_missing_token_file_is_an_auth_error_not_a_crash(
    fake_prometheus: Any, tmp_path: Path
) -> None:
    seen: list[str | None] = []
    url = await fake_prometheus(recording(seen))
    auth = {"type": "bearer", "token_file": str(tmp_path / "absent")}
    async with aiohttp.ClientSession() as session:
        source = PrometheusSource(prometheus_config(url, auth=auth), session=session)
        values = await source.read(llama_only(), time.time())
    assert seen == []  # nothing sent without a token
    assert set(values["llama"].values()) == {None}
    assert source.stats.last_errors[0].kind == "auth"
    assert "absent" in source.stats.last_errors[0].message


class FakeCredential:
    """Stands in for azure.identity.aio.DefaultAzureCredential."""

    def __init__(self, lifetime_s: float, now: Callable[[], float]) -> None:
        self.scopes: list[str] = []
        self.lifetime_s = lifetime_s
        self.now = now
        self.closed = False

    async def get_token(self, *scopes: str) -> Any:
        self.scopes.extend(scopes)
        await asyncio.sleep(0.01)  # a token request takes a while: queries wait on it
        return AccessToken(f"token-{len(self.scopes)}", int(self.now() + self.lifetime_s))

    async def close(self) -> None:
        self.closed = True


@pytest.mark.asyncio
async def test_an_injected_token_provider_sets_the_authorization_header(
    fake_prometheus: Any,
) -> None:
    seen: list[str | None] = []
    url = await fake_prometheus(recording(seen))

    async def entra_token() -> str:
        return "entra-access-token"

    async with aiohttp.ClientSession() as session:
        source = PrometheusSource(
            prometheus_config(url), session=session, token_provider=entra_token
        )
        await source.read(llama_only(), time.time())
    assert set(seen) == {"Bearer entra-access-token"}


@pytest.mark.asyncio
async def test_azure_auth_asks_the_credential_for_the_managed_prometheus_scope(
    fake_prometheus: Any,
) -> None:
    seen: list[str | None] = []
    url = await fake_prometheus(recording(seen))
    auth = AzureManagedPrometheusAuth(type="azure_managed_prometheus")
    credential = FakeCredential(lifetime_s=3600, now=time.time)
    provider = token_provider_for(auth, credential=credential)
    async with aiohttp.ClientSession() as session:
        source = PrometheusSource(prometheus_config(url), session=session, token_provider=provider)
        await source.read(llama_only(), time.time())
    assert set(seen) == {"Bearer token-1"}  # one token request, shared by all 8 queries
    assert credential.scopes == ["https://prometheus.monitor.azure.com/.default"]


@pytest.mark.asyncio
async def test_azure_tokens_are_reused_until_five_minutes_before_expiry() -> None:
    now_s = [1_700_000_000.0]
    credential = FakeCredential(lifetime_s=3600, now=lambda: now_s[0])
    provider = AzureToken(
        credential, "https://prometheus.monitor.azure.com/.default", wall_clock=lambda: now_s[0]
    )
    assert await provider() == "token-1"
    now_s[0] += 3000  # 10 minutes left: reuse
    assert await provider() == "token-1"
    now_s[0] += 400  # under 5 minutes left: refresh
    assert await provider() == "token-2"
    assert credential.scopes == ["https://prometheus.monitor.azure.com/.default"] * 2
    await provider.aclose()
    assert credential.closed


# --- from values to an Observation -----------------------------------------------------------


def test_values_become_observation_fields_and_activation_stands_in_at_zero() -> None:
    values = {
        "request_rate_rps": None,
        "in_flight": 3.0,
        "extra.kv_cache_utilization": 0.4,
        "activation": 7.5,
    }
    running = observation_signals(values, replicas=2, activation_signal="request_rate_rps")
    obs = Observation(now_s=0, replicas=2, ready_replicas=2, **running)
    assert obs.request_rate_rps is None and obs.in_flight == 3.0
    assert dict(obs.extra) == {"kv_cache_utilization": 0.4}

    at_zero = observation_signals(values, replicas=0, activation_signal="request_rate_rps")
    assert Observation(now_s=0, replicas=0, ready_replicas=0, **at_zero).request_rate_rps == 7.5


# --- offline: range queries ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_long_range_is_fetched_in_chunks_that_join_exactly(
    prometheus: RunningPrometheus, counting: Counting
) -> None:
    end_s = float(int(time.time()))
    window: dict[str, Any] = {"start_s": end_s - 6, "end_s": end_s, "step_s": 1.0}
    window["session"] = counting.session

    # time() is a series whose every value is its own timestamp: gaps or overlaps would show
    whole = await query_range(prometheus.url, "time()", **window)
    assert whole == [(end_s - 6 + i, end_s - 6 + i) for i in range(7)]
    counting.sent.clear()
    chunked = await query_range(prometheus.url, "time()", max_points=3, **window)
    assert chunked == whole
    assert counting.sent == ["POST /api/v1/query_range"] * 3  # 3 + 3 + 1 points


def test_without_the_prometheus_binary_the_fixture_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match=INSTALL_HINT):
        prometheus_binary({"PATH": str(tmp_path)})
