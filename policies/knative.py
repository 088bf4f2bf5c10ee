"""`knative`: Knative Serving's KPA (stable and panic windows), exactly, on totals.

In: an Observation whose scaling signal is a total over the target: metric `concurrency` reads
`in_flight + queue_depth` (requests arrived and not finished, which is what Knative's
queue-proxy and activator count: executing plus buffered), metric `rps` reads
`request_rate_rps`; `signals` overrides the list (summed). Out: a Proposal. By default only the
shared min/max guards apply: Knative's rate limits, panic mode, scale-down delay and
scale-to-zero grace period are its own algorithm and live here.
Next stage: `policies.protocol.tick`.

Anchor: knative/serving (read at 98e5ef90).
- pkg/autoscaler/scaling/autoscaler.go `(*autoscaler).Scale` and `newAutoscaler`:
  ready = max(1, ready pods); target = max(0.01, target_per_replica x target_utilization);
  desired stable pods = ceil(stable / target) and desired panic pods = ceil(panic / target)
  (Knative's dspc and dppc), each kept in [floor(ready / max_scale_down_rate),
  ceil(max_scale_up_rate x ready)]; a non-zero count is at least `activation_scale`; panic
  starts (or is extended) at every decision with desired panic pods / ready >= panic
  threshold, and ends at the first decision below it more than a stable window after the last
  one above; while panicking the count is max(stable, panic) and never goes down
  (`maxPanicPods`). A new decider with more than one ready pod starts in panic.
  Worked examples: tests/test_knative_traces.py.
- pkg/autoscaler/aggregation/bucketing.go: 1 s buckets (config.BucketSize) averaged over the
  window, `linear` (TimedFloat64Buckets, partial windows divided by the buckets they hold,
  rounded to 6 digits) or `weighted-exponential` (WeightedFloat64Buckets).
- pkg/autoscaler/aggregation/max/: the scale-down delay window (max over 2 s buckets).
- pkg/autoscaler/config/config.go (defaults), pkg/reconciler/autoscaling/resources/metric.go
  (panic window = round(stable x percentage / 100) s, at least 1 s) and target.go.
- pkg/reconciler/autoscaling/kpa/scaler.go `scale` / `handleScaleToZero`: initial scale is a
  floor until the target first has that many ready pods; a desired 0 is applied only after the
  revision has been inactive (desired 0) for `scale_to_zero_grace_period_s`.

Parameters: `KnativeParams` (each key's unit, default = Knative's config-autoscaler default,
and bounds; policies/spec.py has the shared ones).

Windows live in seconds of `obs.now_s`: an observation stands for every 1 s bucket since the
previous one (Knative scrapes every second; replicast observes once per control interval), so a
signal constant between ticks fills the windows exactly as Knative's scraper would, at any
interval. What a longer interval changes (see the 2 s / 15 s tests): at 15 s the stable window
holds 4 observations and the 6 s panic window only the newest, so panic is judged on one
observation and a burst shorter than the interval is seen only as the shell averages it; panic
can end only at a tick (the first tick more than 60 s after the last one above threshold: +62 s
at 2 s, +75 s at 15 s); the scale rates are per decision, so a halving per decision is a halving
per 15 s instead of per 2 s; delays and the grace period end at the first tick after them.

Deliberate differences from the anchor:
- Signals are totals over the target; Knative scrapes a sample of pods and extrapolates to a
  total (average x ready pods), which is the same number when the sample is the whole target.
- Between two observations the buckets take the newer value (sample-and-hold backwards);
  Knative zero-fills buckets it missed (scrape failures). A gap of a whole stable window still
  resets the window, as in Knative. Two observations in one second: the later replaces the
  bucket (Knative adds them). Window sums are computed afresh, not kept as a running total.
- A missing signal records nothing; the windows keep averaging the buckets they hold (Knative's
  partial window), and with no bucket in the stable window the policy holds ("NoData").
- Scale to zero: after `scale_to_zero_grace_period_s` of desired 0 (Knative's inactive period);
  the activator probe, the SKS proxy-mode fast path, `scale-to-zero-pod-retention-period`,
  the "active for a stable window first" rule and the activation timeout are not modelled;
  `enable-scale-to-zero: false` is `min_replicas: 1`. While waiting, the current count is held.
- The activator's poke (an immediate decision when a request reaches a revision at zero) is
  not modelled: the next tick decides. Target burst capacity, containerConcurrency and the
  unreachable-revision case are not modelled (a revision is always reachable).
- A new decider starts in panic at the first tick's `now_s` (Knative: the wall clock at creation).
- min-scale/max-scale are the shared min_replicas/max_replicas guards.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from policies.hpa import check_signal
from policies.observation import Observation
from policies.params import ParamsFactory, ParamsPolicy
from policies.policy import JSON, Proposal
from policies.spec import MAX_QUANTITY, MAX_REPLICAS, MAX_WINDOW_S, StrictModel

BUCKET_S = 1  # config.BucketSize: the metric windows' granularity
DELAY_BUCKET_S = 2  # multiscaler tickInterval: the scale-down delay window's granularity
TARGET_MIN = 0.01  # autoscaling.TargetMin
WEIGHT_PRECISION = 0.9999  # aggregation.weightPrecision
MIN_EXPONENT = 0.2  # aggregation.minExponent
DEFAULT_TARGETS = {"concurrency": 100.0, "rps": 200.0}  # container-concurrency / rps defaults
DEFAULT_SIGNALS = {"concurrency": ("in_flight", "queue_depth"), "rps": ("request_rate_rps",)}


class KnativeParams(StrictModel):
    """`knative`'s spec keys; defaults are Knative's (config-autoscaler)."""

    metric: Literal["concurrency", "rps"] = Field(
        default="concurrency",
        description="concurrency: in_flight + queue_depth requests; rps: request_rate_rps",
    )
    signals: list[str] | None = Field(
        default=None, min_length=1, description="Observation signals summed (unset: by metric)"
    )
    target_per_replica: float | None = Field(
        default=None, ge=TARGET_MIN, le=MAX_QUANTITY,
        description="requests (concurrency) or req/s (rps) per replica; unset: 100 or 200",
    )  # fmt: skip
    target_utilization: float = Field(
        default=0.7, gt=0, le=1, description="share of target_per_replica aimed at"
    )
    stable_window_s: int = Field(
        default=60, ge=6, le=3600, description="whole seconds averaged for the stable count"
    )
    panic_window_percentage: float = Field(
        default=10.0, ge=1, le=100, description="the panic window, in % of the stable window"
    )
    panic_threshold_percentage: float = Field(
        default=200.0, ge=110, le=1000, description="panic at desired / ready pods >= this, in %"
    )
    max_scale_up_rate: float = Field(
        default=1000.0, gt=1, le=MAX_REPLICAS, description="most ready pods x this per decision"
    )
    max_scale_down_rate: float = Field(
        default=2.0, gt=1, le=MAX_REPLICAS, description="fewest ready pods / this per decision"
    )
    scale_to_zero_grace_period_s: float = Field(
        default=30.0, gt=0, le=MAX_WINDOW_S, description="seconds of desired 0 before 0 applies"
    )
    scale_down_delay_s: int = Field(
        default=0, ge=0, le=3600, description="whole seconds a higher count is held (0: off)"
    )
    activation_scale: int = Field(
        default=1, ge=1, le=MAX_REPLICAS, description="replicas at least, when not 0 (1: off)"
    )
    initial_scale: int = Field(
        default=1, ge=0, le=MAX_REPLICAS, description="replicas at least until first that ready"
    )
    aggregation: Literal["linear", "weighted-exponential"] = Field(
        default="linear", description="how a window's 1 s buckets are averaged"
    )

    @field_validator("signals")
    @classmethod
    def _known_signals(cls, value: list[str] | None) -> list[str] | None:
        for name in value or ():
            check_signal(name)
        return value

    @model_validator(mode="after")
    def _distinct_signals(self) -> KnativeParams:
        if self.signals is not None and len(set(self.signals)) != len(self.signals):
            raise ValueError(f"signals: must not repeat a signal (got {self.signals!r})")
        return self


# --- the metric windows: 1 s buckets kept as runs (first_bucket, last_bucket, value) ---------

Run = tuple[int, int, float]


def record(
    runs: tuple[Run, ...], first: int | None, now_s: float, value: float, window: int
) -> tuple[tuple[Run, ...], int]:
    """Knative's `Record`, with the buckets since the last write taking `value`."""
    bucket = math.floor(now_s / BUCKET_S)
    if not runs or first is None or bucket - runs[-1][1] >= window:
        return ((bucket, bucket, value),), bucket  # first write, or a whole window without data
    start, end, old = runs[-1]
    kept = list(runs[:-1])
    if bucket <= end and old == value:
        kept.append((start, end, old))
    elif bucket <= end:  # the same second again: the later observation replaces the bucket
        if start < end:
            kept.append((start, end - 1, old))
        kept.append((end, end, value))
    elif old == value:
        kept.append((start, bucket, value))
    else:
        kept += [(start, end, old), (end + 1, bucket, value)]
    oldest = bucket - window + 1
    pruned = tuple((max(s, oldest), e, v) for s, e, v in kept if e >= oldest)
    return pruned, first


def linear_average(runs: tuple[Run, ...], first: int, now_s: float, window: int) -> float:
    """TimedFloat64Buckets.WindowAverage: the mean of the buckets held in the window."""
    bucket, last = math.floor(now_s / BUCKET_S), runs[-1][1]
    if bucket - last >= window:
        return 0.0
    lo = max(first, bucket - window + 1)
    total = sum(v * (min(e, last) - max(s, lo) + 1) for s, e, v in runs if e >= lo)
    return go_round(total / (last - lo + 1) * 1e6) / 1e6


def smoothing_coefficient(buckets: int) -> float:
    """aggregation.computeSmoothingCoeff."""
    return max(1 - math.pow(1 - WEIGHT_PRECISION, 1 / buckets), MIN_EXPONENT)


def weighted_average(runs: tuple[Run, ...], first: int, now_s: float, window: int) -> float:
    """WeightedFloat64Buckets.WindowAverage: newest bucket weighs c, each older one x (1 - c)."""
    bucket, last = math.floor(now_s / BUCKET_S), runs[-1][1]
    if bucket - last > window:
        return 0.0
    coeff = smoothing_coefficient(window)
    multiplier, count = coeff, window
    if bucket > last:
        multiplier *= math.pow(1 - coeff, bucket - last)
        count -= bucket - last
    values = {b: v for s, e, v in runs for b in range(max(s, last - count + 1), e + 1)}
    out = 0.0
    for i in range(count):
        out += values.get(last - i, 0.0) * multiplier
        multiplier *= 1 - coeff
    return out


def go_round(x: float) -> float:
    """Go's math.Round: half away from zero."""
    whole = math.trunc(x)
    return whole + math.copysign(1.0, x) if abs(x - whole) >= 0.5 else float(whole)


def panic_window_s(stable_window_s: int, percentage: float) -> int:
    """resources.MakeMetric: Duration(stable x pct / 100).Round(time.Second), at least 1 s."""
    nanos = math.trunc(stable_window_s * 1e9 * percentage / 100.0)
    return max(1, (nanos + 500_000_000) // 1_000_000_000)


def delay_record(
    maxima: tuple[tuple[int, int], ...], now_s: float, pods: int, window_s: int
) -> tuple[tuple[int, int], ...]:
    """max.TimeWindow.Record (descending minima over 2 s buckets); maxima[0] is the max."""
    size = math.ceil(window_s / DELAY_BUCKET_S)
    index = math.floor(now_s) // DELAY_BUCKET_S
    kept = list(maxima)
    while kept and pods >= kept[-1][1]:
        kept.pop()
    while kept and index - kept[0][0] >= size:
        kept.pop(0)
    if kept and kept[-1][0] == index:
        pods = max(pods, kept.pop()[1])
    return (*kept, (index, pods))


# --- state -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KnativeState:
    runs: tuple[Run, ...] = ()
    first_bucket: int | None = None  # Knative's firstWrite
    panic_since_s: float | None = None  # panicTime: None when not panicking
    max_panic_pods: int = 0
    delay: tuple[tuple[int, int], ...] = ()  # scale-down delay window maxima (index, pods)
    inactive_since_s: float | None = None  # first decision of the current run of desired 0
    initialized: bool = False  # the target has had initial_scale ready pods
    started: bool = False  # the decider exists (its first tick has run)


@dataclass(frozen=True, slots=True)
class KpaResult:
    """What `Scale` computed, for the proposal and its details."""

    pods: int
    stable: float
    panic: float
    desired_stable_pods: int  # Knative's dspc: ceil(stable / target)
    desired_panic_pods: int  # dppc: ceil(panic / target)
    stable_pods: int  # desired_stable_pods within the rate limits (raised to activation_scale)
    panicking: bool
    delayed: bool  # the scale-down delay window held a higher count


# --- the policy ------------------------------------------------------------------------------


@dataclass(frozen=True)
class KnativePolicy(ParamsPolicy[KnativeParams]):
    params: KnativeParams
    name: str = "knative"
    pauses_at_zero = False

    @property
    def scale_down_window_s(self) -> float:
        """One scale-down window (a takeover that lost history holds this long)."""
        return float(max(self.params.stable_window_s, self.params.scale_down_delay_s))

    @cached_property
    def signals(self) -> tuple[str, ...]:
        """The signals summed (by metric when the spec omits them)."""
        given = self.params.signals
        return DEFAULT_SIGNALS[self.params.metric] if given is None else tuple(given)

    @cached_property
    def target_per_replica(self) -> float:
        """What one replica may carry (Knative's default by metric when the spec omits it)."""
        given = self.params.target_per_replica
        return DEFAULT_TARGETS[self.params.metric] if given is None else given

    @property
    def required_signals(self) -> frozenset[str]:
        return frozenset(self.signals)

    @property
    def target(self) -> float:
        """ResolveMetricTarget: what one replica should carry."""
        return max(TARGET_MIN, self.target_per_replica * self.params.target_utilization)

    @property
    def panic_window(self) -> int:
        return panic_window_s(self.params.stable_window_s, self.params.panic_window_percentage)

    def spec(self) -> dict[str, Any]:
        """The model's keys, with the signals and target the metric implies filled in."""
        filled = {"signals": list(self.signals), "target_per_replica": self.target_per_replica}
        return {**self.params.model_dump(), **filled}

    def initial_state(self) -> KnativeState:
        return KnativeState()

    def dump_state(self, state: KnativeState) -> JSON:
        return {
            "runs": [list(run) for run in state.runs],
            "first_bucket": state.first_bucket,
            "panic_since_s": state.panic_since_s,
            "max_panic_pods": state.max_panic_pods,
            "delay": [list(entry) for entry in state.delay],
            "inactive_since_s": state.inactive_since_s,
            "initialized": state.initialized,
            "started": state.started,
        }

    def load_state(self, data: JSON) -> KnativeState:
        def opt_float(value: Any) -> float | None:
            return None if value is None else float(value)

        first = data["first_bucket"]
        return KnativeState(
            runs=tuple((int(s), int(e), float(v)) for s, e, v in data["runs"]),
            first_bucket=None if first is None else int(first),
            panic_since_s=opt_float(data["panic_since_s"]),
            max_panic_pods=int(data["max_panic_pods"]),
            delay=tuple((int(i), int(p)) for i, p in data["delay"]),
            inactive_since_s=opt_float(data["inactive_since_s"]),
            initialized=bool(data["initialized"]),
            started=bool(data["started"]),
        )

    def decide(self, obs: Observation, state: KnativeState) -> tuple[Proposal, KnativeState]:
        if not state.started:  # newAutoscaler: more than one ready pod starts in panic mode
            panicking = obs.ready_replicas > 1
            state = replace(
                state,
                started=True,
                panic_since_s=obs.now_s if panicking else None,
                max_panic_pods=obs.ready_replicas,
            )
        values = [obs.signal(s) for s in self.signals]
        if all(v is not None for v in values):
            total = math.fsum(v for v in values if v is not None)
            runs, first = record(
                state.runs, state.first_bucket, obs.now_s, total, self.params.stable_window_s
            )
            state = replace(state, runs=runs, first_bucket=first)
        if not self._has_data(obs.now_s, state):
            p = self.params
            why = f"NoData: no {p.metric} sample in the last {p.stable_window_s} s; holding"
            return Proposal.hold(why), state
        kpa, state = self._scale(obs, state)
        return self._reconcile(obs, state, kpa)

    def _has_data(self, now_s: float, state: KnativeState) -> bool:
        """Not `IsEmpty`: a bucket was written within the stable window."""
        if not state.runs:
            return False
        return math.floor(now_s / BUCKET_S) - state.runs[-1][1] <= self.params.stable_window_s

    def _averages(self, now_s: float, state: KnativeState) -> tuple[float, float]:
        average = linear_average if self.params.aggregation == "linear" else weighted_average
        assert state.first_bucket is not None
        return (
            average(state.runs, state.first_bucket, now_s, self.params.stable_window_s),
            average(state.runs, state.first_bucket, now_s, self.panic_window),
        )

    def _scale(self, obs: Observation, state: KnativeState) -> tuple[KpaResult, KnativeState]:
        """autoscaler.Scale, line for line."""
        p = self.params
        stable, panic = self._averages(obs.now_s, state)
        ready = float(max(1, obs.ready_replicas))
        max_up = math.ceil(p.max_scale_up_rate * ready)
        max_down = math.floor(ready / p.max_scale_down_rate)
        desired_stable = math.ceil(stable / self.target)  # Knative's dspc
        desired_panic = math.ceil(panic / self.target)  # dppc
        stable_pods = int(min(max(desired_stable, max_down), max_up))
        panic_pods = int(min(max(desired_panic, max_down), max_up))
        if p.activation_scale > 1:
            if desired_stable > 0 and p.activation_scale > stable_pods:
                stable_pods = p.activation_scale
            if desired_panic > 0 and p.activation_scale > panic_pods:
                panic_pods = p.activation_scale

        over = desired_panic / ready >= p.panic_threshold_percentage / 100.0
        since, max_panic = state.panic_since_s, state.max_panic_pods
        if over:  # begin panicking, or extend the panic
            since = obs.now_s
        elif since is not None and since + p.stable_window_s < obs.now_s:
            since, max_panic = None, 0  # the surge has made its way into the stable metric

        pods = stable_pods
        if since is not None:  # no scale-down while panicking
            max_panic = max(max_panic, stable_pods, panic_pods)
            pods = max_panic
        delay, wanted = state.delay, pods
        if p.scale_down_delay_s > 0:
            delay = delay_record(delay, obs.now_s, pods, p.scale_down_delay_s)
            pods = delay[0][1]
        state = replace(state, panic_since_s=since, max_panic_pods=max_panic, delay=delay)
        panicking, delayed = since is not None, pods != wanted
        kpa = KpaResult(
            pods, stable, panic, desired_stable, desired_panic, stable_pods, panicking, delayed
        )
        return kpa, state

    def _reconcile(
        self, obs: Observation, state: KnativeState, kpa: KpaResult
    ) -> tuple[Proposal, KnativeState]:
        """kpa scaler.scale: the initial-scale floor, then handleScaleToZero."""
        details = {
            "stable_value": kpa.stable,
            "panic_value": kpa.panic,
            "target": self.target,
            "desired_stable_pods": kpa.desired_stable_pods,
            "desired_panic_pods": kpa.desired_panic_pods,
            "panicking": kpa.panicking,
            "max_panic_pods": state.max_panic_pods,
            "kpa_desired": kpa.pods,
        }
        pods, reason, initial = kpa.pods, self._reason(kpa), self.params.initial_scale
        if not state.initialized and pods < initial:
            pods, reason = initial, f"InitialScale: at least {initial} pods"
        initialized = state.initialized or obs.ready_replicas >= initial
        state = replace(state, initialized=initialized)
        if pods > 0:
            return Proposal.scale(pods, reason, **details), replace(state, inactive_since_s=None)
        since = obs.now_s if state.inactive_since_s is None else state.inactive_since_s
        state = replace(state, inactive_since_s=since)
        waited = obs.now_s - since
        if waited >= self.params.scale_to_zero_grace_period_s:
            why = f"ScaleToZero: no traffic, inactive for {waited:g} s"
            return Proposal.scale(0, why, **details), state
        why = (
            f"ScaleToZeroGracePeriod: inactive for {waited:g} s of "
            f"scale_to_zero_grace_period_s {self.params.scale_to_zero_grace_period_s:g}; holding"
        )
        return Proposal.scale(obs.replicas, why, **details), state

    def _reason(self, kpa: KpaResult) -> str:
        if kpa.delayed:
            return (
                f"ScaleDownDelay: holding {kpa.pods}, the highest count wanted in the last "
                f"scale_down_delay_s {self.params.scale_down_delay_s}"
            )
        metric = self.params.metric
        if kpa.panicking:
            return (
                f"PanicMode: panic {metric} {kpa.panic:g} over {self.panic_window} s "
                f"wants {kpa.desired_panic_pods} pods; no scale-down while panicking ({kpa.pods})"
            )
        why = (
            f"StableMode: stable {metric} {kpa.stable:g} over {self.params.stable_window_s} s "
            f"at target {self.target:g} per pod wants {kpa.desired_stable_pods} pods"
        )
        if kpa.stable_pods > kpa.desired_stable_pods:
            why += f"; {kpa.stable_pods} by max_scale_down_rate or activation_scale"
        elif kpa.stable_pods < kpa.desired_stable_pods:
            why += f"; {kpa.stable_pods} by max_scale_up_rate"
        return why


class KnativeFactory(ParamsFactory[KnativeParams, KnativePolicy]):
    name = "knative"
    summary = "Knative KPA: stable/panic windows over 1 s buckets, rate limits, scale to zero"
    guard_defaults: Mapping[str, Any] = {"min_replicas": 0}
    example_spec: Mapping[str, Any] = {
        "metric": "concurrency",
        "target_per_replica": 10,
        "scale_to_zero_grace_period_s": 30,
        "scale_down_delay_s": 10,
    }
    params_model, policy_type = KnativeParams, KnativePolicy


FACTORY = KnativeFactory()
