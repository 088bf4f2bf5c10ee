"""The controller's HTTP surface (aiohttp), and the long-lived tasks it starts and stops.

In: a `ControlLoop` (controller/loop.py) and, with leader election, its `LeaderElector`
(controller/leader.py). Out: an aiohttp `Application` serving

- `GET /healthz`: 200 while the process and its long-lived tasks run; 500 names a task that
  ended on its own (the kubelet then restarts the pod);
- `GET /readyz`: 200 once every target has been tried and at least one can be read and
  scaled (its workload and signals read, no permanent error); 503 naming why otherwise. Alert
  on the per-target `replicast_condition` and `replicast_target_healthy` gauges, not on
  readiness: one broken target of many keeps the controller ready;
- `GET /metrics`: prometheus-client text from the app's own `CollectorRegistry` (never the
  global one): per-target replicas, decisions, errors, conditions, tick durations (see
  `METRIC_NAMES`);
- `GET /status`: JSON: leader, dry run, and per target its conditions and last DecisionRecords;
- `POST /dry-run` `{"dry_run": true|false}`: only when built with `admin=True`. Whoever reaches
  it can stop or restart all scaling, so `replicast run --admin` insists on a loopback
  `--listen` (127.0.0.1 by default): reach it through `kubectl port-forward`, never a Service.

Tasks, from `cleanup_ctx` in this order and stopped in reverse: `replicast:leader` (one
election step before anything else, then renewals), `replicast:loop` (the scheduler: a task per
target). On shutdown the loop lets scale calls in flight finish and saves the state within its
share of the grace, then the Lease is released.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric

from controller.leader import LeaderElector
from controller.loop import ControlLoop
from controller.outcomes import ERROR_KINDS, Action, Cond, RoundResult
from controller.signals import ACTIVATION
from controller.target import TargetRuntime

log = logging.getLogger(__name__)

# The Prometheus source's failure kinds (controller/prometheus.py), exported from 0.
PROMETHEUS_ERROR_KINDS = (
    "auth", "bad_response", "connection", "http_status", "internal", "prometheus_error", "timeout",
)  # fmt: skip
CONTROLLER_ERROR_KINDS = ("metrics_read", "round", "state_load", "state_save")
TICK_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# Every family /metrics exports (names as scraped; counters end in _total).
METRIC_NAMES = (
    "replicast_leader",
    "replicast_dry_run",
    "replicast_ready",
    "replicast_target_healthy",
    "replicast_clock_jumps_total",
    "replicast_target_dry_run",
    "replicast_target_acting",
    "replicast_desired_replicas",
    "replicast_current_replicas",
    "replicast_ready_replicas",
    "replicast_starting_replicas",
    "replicast_unschedulable_replicas",
    "replicast_min_replicas",
    "replicast_max_replicas",
    "replicast_shadow_desired_replicas",
    "replicast_decision_reason",
    "replicast_condition",
    "replicast_signal_missing",
    "replicast_last_decision_timestamp_seconds",
    "replicast_decisions_total",
    "replicast_errors_total",
    "replicast_controller_errors_total",
    "replicast_prometheus_queries_total",
    "replicast_prometheus_errors_total",
    "replicast_prometheus_queries_per_round",
    "replicast_tick_duration_seconds",
    "replicast_round_duration_seconds",
)

LOOP = web.AppKey("loop", ControlLoop)
TASKS = web.AppKey("tasks", dict[str, "asyncio.Task[None]"])
REGISTRY = web.AppKey("registry", CollectorRegistry)


# --- /metrics --------------------------------------------------------------------------------


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


class LoopCollector:
    """Gauges and counters read from the loop at scrape time (one source of truth)."""

    def __init__(self, loop: ControlLoop) -> None:
        self._loop = loop

    def collect(self) -> Iterator[Metric]:
        loop = self._loop
        targets = list(loop.targets.values())
        leader = "1 while this replica holds the leader Lease (only the leader scales)"
        yield _gauge("replicast_leader", leader, loop.is_leader)
        dry_run = "1 while the whole controller only records (--dry-run, POST /dry-run)"
        yield _gauge("replicast_dry_run", dry_run, loop.dry_run)
        ready = "1 while /readyz is 200: every target tried, at least one readable and scalable"
        yield _gauge("replicast_ready", ready, loop.ready)
        jumps = CounterMetricFamily(
            "replicast_clock_jumps",
            "wall-clock steps seen between two ticks of a target (scale-down held a window)",
        )
        jumps.add_metric([], loop.clock_jumps)
        yield jumps
        yield from self._modes(targets)
        yield from self._replicas(targets)
        yield from self._decisions(targets)
        yield from self._errors(targets)

    def _modes(self, targets: list[TargetRuntime]) -> Iterator[Metric]:
        dry = GaugeMetricFamily(
            "replicast_target_dry_run",
            "1 while the target only records (its dry_run or the controller's)",
            labels=["target"],
        )
        acting = GaugeMetricFamily(
            "replicast_target_acting",
            "1 while this replica would scale the target (leader, not dry run, not halted)",
            labels=["target"],
        )
        healthy = GaugeMetricFamily(
            "replicast_target_healthy",
            "1 while the target's latest tick read its workload and its signals and no "
            "permanent error stops its scaling",
            labels=["target"],
        )
        for t in targets:
            dry.add_metric([t.name], float(self._loop.dry_run or t.config.dry_run))
            acting.add_metric([t.name], float(self._loop.acting(t)))
            healthy.add_metric([t.name], float(t.healthy))
        yield from (dry, acting, healthy)

    def _replicas(self, targets: list[TargetRuntime]) -> Iterator[Metric]:
        docs = {
            "desired": "replicas the acting policy decided (before max_change_per_tick)",
            "current": "spec replicas of the target (what was asked for)",
            "ready": "ready replicas of the target",
            "starting": "replicas asked for and still starting (loading a model)",
            "unschedulable": "replicas Pending/Unschedulable past the bound (not coming)",
            "min": "the acting policy's min_replicas",
            "max": "the acting policy's max_replicas",
        }
        families = {
            k: GaugeMetricFamily(f"replicast_{k}_replicas", doc, labels=["target"])
            for k, doc in docs.items()
        }
        shadow = GaugeMetricFamily(
            "replicast_shadow_desired_replicas",
            "replicas a shadow policy decided on the same inputs (never applied)",
            labels=["target", "shadow"],
        )
        for t in targets:
            guards = t.autoscaler.guards
            families["min"].add_metric([t.name], guards.min_replicas)
            families["max"].add_metric([t.name], guards.max_replicas)
            last = next((o for o in reversed(t.history) if o.record is not None), None)
            if last is None or last.record is None or last.workload is None:
                continue
            w = last.workload
            families["desired"].add_metric([t.name], last.record.replicas)
            families["current"].add_metric([t.name], w.replicas)
            families["ready"].add_metric([t.name], w.ready_replicas)
            families["starting"].add_metric([t.name], w.starting_replicas)
            families["unschedulable"].add_metric([t.name], w.unschedulable_replicas)
            for name, record in last.shadows:
                shadow.add_metric([t.name, name], record.replicas)
        yield from families.values()
        yield shadow

    def _decisions(self, targets: list[TargetRuntime]) -> Iterator[Metric]:
        reason = GaugeMetricFamily(
            "replicast_decision_reason",
            "1 for the reason of the target's latest decision (its CamelCase head), 0 for the "
            "others seen; at most 32 per target, then Other",
            labels=["target", "reason"],
        )
        condition = GaugeMetricFamily(
            "replicast_condition",
            "1 while the condition holds for the target (see /status for its message)",
            labels=["target", "type"],
        )
        missing = GaugeMetricFamily(
            "replicast_signal_missing",
            "1 when the signal was missing, stale or unreadable at the target's latest tick",
            labels=["target", "signal"],
        )
        stamp = GaugeMetricFamily(
            "replicast_last_decision_timestamp_seconds",
            "when (Unix seconds) the target last decided",
            labels=["target"],
        )
        decisions = CounterMetricFamily(
            "replicast_decisions",
            "ticks by what was done with the decision",
            labels=["target", "action"],
        )
        for t in targets:
            for label, value in t.reasons.items():
                reason.add_metric([t.name, label], value)
            for type in Cond.ALL:
                condition.add_metric([t.name, type], float(type in t.conditions))
            if t.last is not None:
                for signal in t.queries.queries:
                    if signal != ACTIVATION:
                        missing.add_metric([t.name, signal], float(signal in t.missing))
            decided = next((o for o in reversed(t.history) if o.record is not None), None)
            if decided is not None:
                stamp.add_metric([t.name], decided.now_s)
            for action in Action.ALL:
                decisions.add_metric([t.name, action], t.actions[action])
        yield from (reason, condition, missing, stamp, decisions)

    def _errors(self, targets: list[TargetRuntime]) -> Iterator[Metric]:
        errors = CounterMetricFamily(
            "replicast_errors",
            "failed ticks and refused scales, by kind: actuator_temporary, actuator_permanent, "
            "scale_refused, decide (a policy failed), internal",
            labels=["target", "kind"],
        )
        for t in targets:
            for kind in ERROR_KINDS:
                errors.add_metric([t.name, kind], t.errors[kind])
        controller = CounterMetricFamily(
            "replicast_controller_errors",
            "errors of no one target: state_save, state_load (the Lease), metrics_read, round",
            labels=["kind"],
        )
        for kind in sorted({*CONTROLLER_ERROR_KINDS, *self._loop.errors}):
            controller.add_metric([kind], self._loop.errors[kind])
        stats = self._loop.source.stats
        queries = CounterMetricFamily(
            "replicast_prometheus_queries", "Prometheus /api/v1/query requests sent"
        )
        queries.add_metric([], stats.queries_total)
        failed = CounterMetricFamily(
            "replicast_prometheus_errors",
            "Prometheus queries that gave no usable answer, by kind",
            labels=["kind"],
        )
        for kind in sorted({*PROMETHEUS_ERROR_KINDS, *stats.errors_total}):
            failed.add_metric([kind], stats.errors_total[kind])
        yield from (errors, controller, queries, failed)


class ControllerMetrics:
    """The app's registry: the loop's collector, plus histograms fed after every round."""

    def __init__(self, loop: ControlLoop, *, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.registry.register(LoopCollector(loop))
        self.tick_duration = Histogram(
            "replicast_tick_duration_seconds",
            "one target's tick: workload read, decisions, scale call (the shared metric read "
            "is in the round's)",
            ["target"],
            buckets=TICK_BUCKETS_S,
            registry=self.registry,
        )
        self.round_duration = Histogram(
            "replicast_round_duration_seconds",
            "one round: the metric read for every target due, then their ticks",
            buckets=TICK_BUCKETS_S,
            registry=self.registry,
        )
        self._queries = 0.0

        def queries_per_round() -> float:
            return self._queries

        Gauge(
            "replicast_prometheus_queries_per_round",
            "HTTP requests to Prometheus in the latest round (shared by every target due)",
            registry=self.registry,
        ).set_function(queries_per_round)
        loop.add_observer(self.round_done)

    def round_done(self, result: RoundResult) -> None:
        if not result.outcomes:
            return
        self.round_duration.observe(result.duration_s)
        self._queries = float(result.prometheus_queries)
        for outcome in result.outcomes:
            self.tick_duration.labels(outcome.target).observe(outcome.duration_s)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


# --- handlers --------------------------------------------------------------------------------


async def healthz(request: web.Request) -> web.Response:
    ended = [name for name, task in request.app[TASKS].items() if task.done()]
    if ended:
        return web.Response(status=500, text=f"task(s) ended: {', '.join(ended)}\n")
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    loop = request.app[LOOP]
    if loop.ready:
        return web.Response(text="ready\n")
    return web.Response(status=503, text=f"{loop.not_ready_reason()}\n")


async def metrics(request: web.Request) -> web.Response:
    """The text format a scraper asks for (Accept), the classic 0.0.4 by default."""
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return web.Response(body=encode(request.app[REGISTRY]), headers={"Content-Type": content_type})


async def status(request: web.Request) -> web.Response:
    return web.json_response(request.app[LOOP].status(), dumps=_dumps)


def _dumps(value: Any) -> str:
    return json.dumps(_strict(value), allow_nan=False, default=str)


def _strict(value: Any) -> Any:
    """JSON as every parser reads it: a policy's infinite or NaN number becomes "inf" or "nan"."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _strict(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(item) for item in value]
    return value


async def set_dry_run(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        body = None
    on = body.get("dry_run") if isinstance(body, dict) else None
    if not isinstance(on, bool):
        return web.json_response(
            {"error": 'send a JSON object {"dry_run": true} or {"dry_run": false}'}, status=400
        )
    loop = request.app[LOOP]
    log.warning("POST /dry-run from %s: dry run %s", request.remote, "on" if on else "off")
    loop.set_dry_run(on)
    return web.json_response({"dry_run": loop.dry_run})


# --- tasks -----------------------------------------------------------------------------------


def _eternal(
    app: web.Application, name: str, coroutine: Coroutine[Any, Any, None]
) -> asyncio.Task[None]:
    """A named task that should run until told to stop; ending on its own is logged."""
    task = asyncio.create_task(coroutine, name=name)
    app[TASKS][name] = task

    def ended(done: asyncio.Task[None]) -> None:
        if done.cancelled():
            log.error("%s was cancelled", name)
        elif done.exception() is not None:
            log.error("%s failed: %s", name, done.exception(), exc_info=done.exception())

    task.add_done_callback(ended)
    return task


def _leader_context(
    elector: LeaderElector,
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def leader(app: web.Application) -> AsyncIterator[None]:
        await elector.step()  # so the first round already knows whether to act
        stopping = asyncio.Event()
        task = _eternal(app, "replicast:leader", elector.run(stopping))
        yield
        stopping.set()
        await asyncio.wait({task})  # run() releases the Lease on its way out
        app[TASKS].pop("replicast:leader", None)

    return leader


async def _loop_context(app: web.Application) -> AsyncIterator[None]:
    loop = app[LOOP]
    task = _eternal(app, "replicast:loop", loop.run())
    yield
    loop.stop()
    await asyncio.wait({task})  # scale calls in flight finish, within the shutdown grace
    app[TASKS].pop("replicast:loop", None)


def create_app(
    loop: ControlLoop,
    *,
    elector: LeaderElector | None = None,
    admin: bool = False,
    registry: CollectorRegistry | None = None,
) -> web.Application:
    """The app; its cleanup_ctx starts the elector's and the loop's tasks and stops them."""
    app = web.Application()
    app[LOOP] = loop
    app[TASKS] = {}
    app[REGISTRY] = ControllerMetrics(loop, registry=registry).registry
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/status", status)
    if admin:
        app.router.add_post("/dry-run", set_dry_run)
    if elector is not None:
        app.cleanup_ctx.append(_leader_context(elector))
    app.cleanup_ctx.append(_loop_context)
    return app
