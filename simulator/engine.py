"""`simulator.run`: replay a load profile through a policy against the exact replica model.

In: a Profile (synthetic or a trace), an autoscaler (spec mapping, `policies.Autoscaler`, a
PolicyFactory or a Policy), a `ReplicaModel` (or a spec/preset name), a seed. Out: a `Result`.

The loop is the controller's, in simulated time: every `interval_s` the same `policies` code
that runs in the live controller decides on an Observation built by `simulator.observe` from
scrapes of the kernel (`tick`), the simulated platform acts on it (`simulator.provision`: it
may cap at a quota, refuse or fail), the autoscaler commits what was done, and that count goes
back to the kernel (`set_replicas`). Requests are
generated and simulated chunk by chunk (`chunk_s`), so memory is bounded by a chunk; their
outcomes are folded into fixed-size histograms as they settle.

Random streams: one `numpy.random.Generator(seed)` spawns three children, for arrivals,
service times and startup delays, so changing the policy never changes the load it sees.
After the last tick the model runs on (no more decisions, no more arrivals) until every
request has settled, so the SLO counts every request; replica-hours stop at the last tick.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from policies import Autoscaler, DecisionRecord, autoscaler
from policies.policy import Policy, PolicyFactory
from simulator import kernel
from simulator.backend import Backend, KernelBackend
from simulator.figures import Moves, Outcomes, summarize
from simulator.kernel_options import KernelOptions
from simulator.model import ReplicaModel
from simulator.observe import MetricsConfig, Observer
from simulator.profiles import Profile
from simulator.provision import Platform, Provisioner, control_step
from simulator.result import FloatArray, LogHistogram, Result, Slo, Summary, Timeline

DEFAULT_EPOCH_S = 1_700_000_000.0  # 2023-11-14T22:13:20Z
STARTUP_DELAYS = 100_000  # pre-drawn per block; a run that creates more draws another
DRAIN_LIMIT_S = 7 * 86_400.0


class _OnePolicy:
    """A PolicyFactory around one Policy object, so `run` accepts a bare policy."""

    summary = "a policy object given to simulator.run"
    guard_defaults: Mapping[str, Any] = {}
    example_spec: Mapping[str, Any] = {}

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.name = policy.name

    def from_spec(self, spec: Mapping[str, Any]) -> Policy:
        return self.policy


def as_autoscaler(given: Any, *, max_replicas: int) -> Autoscaler:
    """A fresh Autoscaler from a spec, an Autoscaler (copied: state included), a factory or a
    policy; the last two get only `max_replicas` as guards."""
    if isinstance(given, Autoscaler):
        return autoscaler(given.spec, state=given.state, applies=given.applies)
    if isinstance(given, Mapping):
        return autoscaler(given)
    if isinstance(given, PolicyFactory):
        return autoscaler({"policy": given, **given.example_spec, "max_replicas": max_replicas})
    if isinstance(given, Policy):
        return autoscaler({"policy": _OnePolicy(given), "max_replicas": max_replicas})
    raise TypeError(
        f"autoscaler: must be a spec mapping, a policies.Autoscaler, a PolicyFactory or a Policy "
        f"(got {type(given).__name__})"
    )


def as_model(given: ReplicaModel | Mapping[str, Any] | str) -> ReplicaModel:
    if isinstance(given, ReplicaModel):
        return given
    if isinstance(given, str):
        return ReplicaModel.preset(given)
    return ReplicaModel.from_spec(given)


def run(
    profile: Profile,
    autoscaler_spec: Any,
    model: ReplicaModel | Mapping[str, Any] | str,
    *,
    seed: int,
    start_epoch_s: float = DEFAULT_EPOCH_S,
    interval_s: float = 15.0,
    metrics: MetricsConfig | None = None,
    slo: Slo | None = None,
    initial_replicas: int | None = None,
    max_alive: int | None = None,
    chunk_s: float = 3600.0,
    keep_records: bool = True,
    keep_requests: bool = False,
    progress: Callable[[float], None] | None = None,
    platform: Provisioner | None = None,
) -> Result:
    """Simulate `profile` with `autoscaler_spec` deciding every `interval_s` on `model`;
    `platform` (default: no quota, no outage) acts on each decision."""
    replica_model = as_model(model)
    scaler = as_autoscaler(autoscaler_spec, max_replicas=max_alive or 100)
    arrivals_rng, service_rng, startup_rng = np.random.default_rng(seed).spawn(3)
    delays = replica_model.draw_startup_delay_s(STARTUP_DELAYS, startup_rng)

    def requests() -> Iterator[tuple[FloatArray, FloatArray]]:
        for chunk in profile.iter_chunks(arrivals_rng, chunk_s=chunk_s):
            yield chunk.time_s, replica_model.draw_service_s(chunk, service_rng)

    result = simulate(
        requests(),
        duration_s=profile.duration_s,
        startup_delay_s=delays,
        more_startup_delays=lambda n: replica_model.draw_startup_delay_s(n, startup_rng),
        scaler=scaler,
        options=replica_model.for_kernel(),
        interval_s=interval_s,
        metrics=metrics or MetricsConfig(scrape_interval_s=interval_s),
        start_epoch_s=start_epoch_s,
        slo=slo,
        initial_replicas=initial_replicas,
        max_alive=max_alive,
        keep_records=keep_records,
        keep_requests=keep_requests,
        progress=progress,
        platform=platform,
    )
    cost = None
    if replica_model.sku is not None and replica_model.platform is not None:
        cost = replica_model.cost_usd(result.summary.replica_hours * 3600.0)
    result.summary = Summary(**{**result.summary.to_dict(), "cost_usd": cost})
    return result


def _schedule(
    duration_s: float, interval_s: float, scrape_s: float, offset_s: float = 0.0
) -> Iterator[tuple[float, bool, bool]]:
    """(time, scrape?, tick?) in time order; at one instant the scrape comes first."""
    ticks = math.floor(duration_s / interval_s + 1e-9)
    scrapes = math.floor((duration_s - offset_s) / scrape_s + 1e-9)
    i = j = 0  # scrape j at offset_s + j * scrape_s, tick i at (i + 1) * interval_s
    while i < ticks or j <= scrapes:
        tick_t = (i + 1) * interval_s if i < ticks else math.inf
        scrape_t = offset_s + j * scrape_s if j <= scrapes else math.inf
        t = min(tick_t, scrape_t)
        is_scrape, is_tick = (
            math.isclose(scrape_t, t, abs_tol=1e-9),
            math.isclose(tick_t, t, abs_tol=1e-9),
        )
        j += is_scrape
        i += is_tick
        yield t, is_scrape, is_tick


def simulate(  # noqa: PLR0915 - one loop, read top to bottom like the controller tick
    requests: Iterable[tuple[FloatArray, FloatArray]],
    *,
    duration_s: float,
    startup_delay_s: FloatArray,
    scaler: Autoscaler,
    options: KernelOptions | Mapping[str, Any],
    interval_s: float = 15.0,
    metrics: MetricsConfig | None = None,
    start_epoch_s: float = DEFAULT_EPOCH_S,
    slo: Slo | None = None,
    initial_replicas: int | None = None,
    max_alive: int | None = None,
    keep_records: bool = True,
    keep_requests: bool = False,
    backend: Backend | None = None,
    progress: Callable[[float], None] | None = None,
    more_startup_delays: Callable[[int], FloatArray] | None = None,
    platform: Provisioner | None = None,
) -> Result:
    """The loop over pre-drawn request arrays (in time-ordered chunks); `run` draws them.

    `options` are the replica model's queueing (`ReplicaModel.for_kernel()`; a mapping with
    the same keys is read into `KernelOptions`), handed to the backend's `new_state` by name.

    `more_startup_delays(n)` draws n more startup delays when a scale-up would outrun the
    pre-drawn ones (a two-week trace under a flapping policy creates over 100,000 replicas);
    without it such a scale-up is a KernelError naming the fix."""
    be: Backend = backend if backend is not None else KernelBackend()
    metrics = metrics or MetricsConfig(scrape_interval_s=interval_s)
    guards = scaler.guards
    replicas = initial_replicas if initial_replicas is not None else max(1, guards.min_replicas)
    alive = max_alive or max(16, 2 * guards.max_replicas + 8)
    # The kernel holds at most `alive` replicas: beyond it the platform caps (a quota).
    platform = platform if platform is not None else Platform(quota_replicas=alive)
    chunks = iter(requests)
    outcomes = Outcomes(slo, keep_requests, LogHistogram())
    kept: list[tuple[FloatArray, FloatArray, FloatArray]] = []

    queueing = KernelOptions.of(options)
    first = next(chunks, (np.empty(0), np.empty(0)))
    state = be.new_state(
        first[0], first[1], startup_delay_s,
        slots_per_replica=queueing.slots_per_replica,
        timeout_s=queueing.timeout_s,
        queue_limit=queueing.queue_limit,
        initial_ready=replicas, max_replicas=alive, now_s=0.0,
    )  # fmt: skip
    pending = next(chunks, None)

    def bind_until(t: float) -> Any:
        """Bind every chunk whose first arrival is at or before `t` (the kernel needs them)."""
        nonlocal state, pending
        while pending is not None and (pending[0].size == 0 or pending[0][0] <= t):
            if pending[0].size:
                _fold_settled(be, state, outcomes, kept)
                state = be.carry_over(state, *pending, check=False)
            pending = next(chunks, None)
        return state

    observer = Observer(metrics, start_epoch_s)
    if metrics.idle_before_s > 0:
        observer.idle_history(be.snapshot(state), be.latency_histogram(state))
    n_ticks = math.floor(duration_s / interval_s + 1e-9)
    timeline = Timeline.empty(n_ticks)
    records: list[DecisionRecord] = []
    last_arrivals, k = 0, 0
    moves = Moves()
    schedule = _schedule(duration_s, interval_s, metrics.scrape_interval_s, metrics.scrape_offset_s)
    for t, is_scrape, is_tick in schedule:
        bind_until(t)
        be.advance(state, t)
        snap = be.snapshot(state)
        if is_scrape:
            observer.scrape(t, snap, be.latency_histogram(state))
        if not is_tick:
            continue
        obs = observer.observe(t, replicas, snap)
        record = control_step(scaler, obs, platform, t)
        applied = record.applied_replicas if record.applied_replicas is not None else replicas
        if moves.note(replicas, applied):
            if more_startup_delays is not None and be.startup_delays_left(state) < applied:
                more = more_startup_delays(max(applied, STARTUP_DELAYS))
                state = be.add_startup_delays(state, more)
            be.set_replicas(state, applied)
            replicas = applied
        if keep_records:
            records.append(record)
        _row(timeline, k, t, obs, record, snap, last_arrivals, interval_s)
        last_arrivals = snap.arrivals
        k += 1
        if progress is not None and k % 256 == 0:
            progress(t / duration_s)
    end = be.snapshot(state)
    state = bind_until(math.inf) or state
    _drain(be, state, end.now_s, outcomes, kept)
    latency_hist = be.latency_histogram(state)
    if progress is not None:
        progress(1.0)
    summary = summarize(scaler, duration_s, outcomes, end, timeline.trim(k), moves, latency_hist)
    result = Result(summary, timeline.trim(k), records)
    if keep_requests and kept:
        result.arrival_s, result.service_s, result.start_s = (
            np.concatenate(x) for x in zip(*kept, strict=True)
        )
    return result


def _drain(be: Backend, state: Any, end_s: float, outcomes: Outcomes, kept: list[Any]) -> None:
    """No more decisions: the rest of the load (bound already) is served by the last count
    until every request has completed or been dropped (at most DRAIN_LIMIT_S), so the latency
    histogram holds them all; then fold the outcomes."""
    horizon = end_s
    while horizon < end_s + DRAIN_LIMIT_S:
        snap = be.snapshot(state)
        if snap.in_flight == 0 and snap.queued == 0 and be.settled(state) == len(be.start_s(state)):
            break
        horizon += 3600.0
        be.advance(state, horizon)
    _fold_settled(be, state, outcomes, kept)
    settled = be.settled(state)
    left = np.asarray(state.arrival_s, dtype=np.float64)[settled:]
    outcomes.slots.fold(left, np.zeros_like(left), np.full_like(left, np.nan))
    never = len(be.start_s(state)) - settled
    outcomes.requests += never  # never served (no replica left): they count as dropped
    outcomes.dropped += never


def _fold_settled(be: Backend, state: Any, outcomes: Outcomes, kept: list[Any]) -> None:
    """Fold the requests of `state` whose outcome is final (started or dropped); each state
    is folded once, right before it is carried over or at the end."""
    k = be.settled(state)
    arrival_s = np.asarray(state.arrival_s, dtype=np.float64)[:k]
    service_s = np.asarray(state.service_s, dtype=np.float64)[:k]
    start_s = np.asarray(be.start_s(state), dtype=np.float64)[:k]
    outcomes.fold(arrival_s, service_s, start_s)
    if outcomes.keep:
        kept.append((arrival_s.copy(), service_s.copy(), start_s.copy()))


def _row(
    timeline: Timeline, k: int, t: float, obs: Any, record: DecisionRecord, snap: kernel.Snapshot,
    last_arrivals: int, interval_s: float,
) -> None:  # fmt: skip
    timeline.t_s[k] = t
    timeline.now_s[k] = obs.now_s
    timeline.arrival_rate_rps[k] = (snap.arrivals - last_arrivals) / interval_s
    timeline.observed_rate_rps[k] = (
        math.nan if obs.request_rate_rps is None else obs.request_rate_rps
    )
    timeline.replicas[k] = record.replicas
    timeline.ready_replicas[k] = snap.ready_replicas
    timeline.starting_replicas[k] = snap.starting_replicas
    timeline.queue_depth[k] = snap.queued
    timeline.in_flight[k] = snap.in_flight
    p50, p95, p99 = obs.latency_p50_s, obs.latency_p95_s, obs.latency_p99_s
    timeline.latency_p50_s[k] = math.nan if p50 is None else p50
    timeline.latency_p95_s[k] = math.nan if p95 is None else p95
    timeline.latency_p99_s[k] = math.nan if p99 is None else p99
    timeline.replica_seconds[k] = snap.replica_seconds
    timeline.proposal[k] = math.nan if record.proposal is None else record.proposal
    applied = record.applied_replicas
    timeline.applied_replicas[k] = record.replicas if applied is None else applied
