"""`predictive`: a seasonal forecast of the request rate, one startup lead time ahead, sized
by the SLO model and used as a floor under the reactive SLO sizing.

In: `request_rate_rps` (required), the SLO calibration signals, and the replica counts (to
learn the startup lead time). Out: max(reactive size, forecast size) with both in the record.

Forecast: additive double-seasonal Holt-Winters (Taylor, 2003) over `bucket_s` buckets of
the mean rate, aligned to Unix time: level l, daily offsets d (season_s / bucket_s of them)
and, with `weekly`, weekly offsets w (7 x that many). When bucket b closes with mean y:
    forecast  f_b = l + d[b mod m1] + w[b mod m2]
    l  <- alpha (y - d - w) + (1 - alpha) l
    d  <- gamma (y - l - w) + (1 - gamma) d
    w  <- omega (y - l - d) + (1 - omega) w
The first full season initializes l (its mean) and d (each bucket's offset from it). Until
then the policy defers to the reactive sizing and says so in the record. The sized rate is the
largest forecast over the buckets from now to now + lead time, times (1 + margin_k x e),
where e is the running mean absolute relative error of the one-bucket-ahead forecasts, so the
safety margin grows with the error actually seen.

Lead time: `lead_time_s` pins it; by default it is learned as the smoothed time from the tick
that decided a rise of `replicas` (spec) to the first tick with `ready_replicas` reaching it,
each rise timed on its own (a ramp's rises overlap), starting from `initial_lead_time_s`.
Parameters: `PredictiveParams`, the `slo` ones and the forecast's (each key's unit, default
and bounds); `reactive: false` proposes the forecast size alone, as a floor under another policy.
Bounds (policies/spec.py): bucket_s 10..86,400, season_s 60..604,800 and at most 2,880
buckets a season; lead times 0..86,400 s (a learned one too: a clock step is not a startup);
margin_k <= 100. The largest forecast is taken over at most one season (or week) of buckets,
however long the lead time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from pydantic import Field, model_validator

from policies.observation import Observation
from policies.params import ParamsFactory, ParamsPolicy
from policies.policy import JSON, Proposal
from policies.slo import Calibration, SloParams, SloPolicy, size
from policies.spec import MAX_FACTOR, MAX_SEASON_S, MAX_WINDOW_S

# The forecast keeps one offset per bucket of the season (7 x that many with `weekly`): a day
# of 30 s buckets at most, so the state stays small.
MAX_SEASON_BUCKETS = 2_880


class PredictiveParams(SloParams):
    """`predictive`'s spec keys: the `slo` ones and the forecast's."""

    bucket_s: int = Field(
        default=300, ge=10, le=MAX_WINDOW_S, description="whole seconds of rate one bucket means"
    )
    season_s: int = Field(
        default=86_400, ge=60, le=MAX_SEASON_S,
        description="whole seconds of a season, a multiple of bucket_s",
    )  # fmt: skip
    weekly: bool = Field(default=True, description="also learn offsets by day of week")
    alpha: float = Field(default=0.1, gt=0, le=1, description="the level's smoothing, per bucket")
    gamma: float = Field(
        default=0.2, ge=0, le=1, description="the daily offsets' smoothing, per bucket"
    )
    omega: float = Field(
        default=0.2, ge=0, le=1, description="the weekly offsets' smoothing, per bucket"
    )
    margin_k: float = Field(
        default=2.0, ge=0, le=MAX_FACTOR,
        description="dimensionless: the margin is 1 + margin_k x mean relative forecast error",
    )  # fmt: skip
    lead_time_s: float | None = Field(
        default=None, ge=0, le=MAX_WINDOW_S,
        description="seconds from deciding a rise to its replicas ready (unset: learned)",
    )  # fmt: skip
    initial_lead_time_s: float = Field(
        default=120.0, ge=0, le=MAX_WINDOW_S, description="seconds, the learned one's start"
    )
    reactive: bool = Field(
        default=True, description="propose at least the reactive slo size (false: forecast only)"
    )

    @model_validator(mode="after")
    def _season_in_buckets(self) -> PredictiveParams:
        if self.season_s % self.bucket_s:
            raise ValueError(
                f"season_s ({self.season_s}) must be a multiple of bucket_s ({self.bucket_s})"
            )
        if self.season_s // self.bucket_s > MAX_SEASON_BUCKETS:
            raise ValueError(
                f"season_s / bucket_s must be <= {MAX_SEASON_BUCKETS:,} buckets (got "
                f"{self.season_s} / {self.bucket_s} = {self.season_s // self.bucket_s:,})"
            )
        return self


@dataclass(frozen=True, slots=True)
class Forecaster:
    """Holt-Winters state plus the bucket being filled. Plain data; JSON through to_json."""

    bucket: int | None = None  # index of the bucket being filled
    bucket_sum: float = 0.0  # integral of the rate over the bucket so far (requests)
    bucket_time_s: float = 0.0
    warmup: tuple[tuple[int, float], ...] = ()  # (bucket, mean) until a season is covered
    level: float | None = None
    daily: tuple[float, ...] = ()
    weekly: tuple[float, ...] = ()
    error: float = 0.0  # mean absolute relative error of one-bucket-ahead forecasts
    errors_seen: int = 0
    # The same error for persistence (next bucket = this bucket), the forecast's skill bar.
    naive_error: float = 0.0
    last_mean: float | None = None

    @property
    def skilled(self) -> bool:
        """Whether the seasonal forecast has beaten persistence so far (and has a record)."""
        return self.errors_seen >= 10 and self.error < self.naive_error

    @property
    def ready(self) -> bool:
        return self.level is not None


@dataclass(frozen=True, slots=True)
class LeadTime:
    estimate_s: float
    # Each rise of `replicas` not yet ready: (the tick it was decided at, the count asked for).
    pending: tuple[tuple[float, int], ...] = ()
    last: tuple[float, int] | None = None  # (now_s, replicas) of the previous observation


@dataclass(frozen=True, slots=True)
class PredictiveState:
    calibration: Calibration
    forecaster: Forecaster
    lead: LeadTime
    last_rate: float | None = None


def _close_bucket(f: Forecaster, p: PredictiveParams, mean: float) -> Forecaster:
    f = _close_seasonal(f, p, mean)
    if f.level is None or f.errors_seen == 0 or f.last_mean is None:
        return replace(f, last_mean=mean)
    naive = abs(mean - f.last_mean) / max(abs(f.last_mean), abs(mean), 1e-9)
    naive_error = f.naive_error + (naive - f.naive_error) / min(f.errors_seen, 50)
    return replace(f, naive_error=naive_error, last_mean=mean)


def _close_seasonal(f: Forecaster, p: PredictiveParams, mean: float) -> Forecaster:
    m1 = p.season_s // p.bucket_s
    assert f.bucket is not None
    b = f.bucket
    if f.level is None:
        warm = (*f.warmup, (b, mean))
        if b - warm[0][0] + 1 < m1:
            return replace(f, warmup=warm)
        # a season is covered: the level is the mean, each bucket's offset its deviation;
        # buckets the clock skipped start at offset 0 (the level)
        level = sum(y for _, y in warm) / len(warm)
        offsets: dict[int, list[float]] = {}
        for bucket, y in warm:
            offsets.setdefault(bucket % m1, []).append(y - level)
        initial = tuple(sum(v) / len(v) if (v := offsets.get(i)) else 0.0 for i in range(m1))
        weekly0 = (0.0,) * (7 * m1) if p.weekly else ()
        return replace(f, warmup=(), level=level, daily=initial, weekly=weekly0)
    i1 = b % m1
    w_old = f.weekly[b % len(f.weekly)] if f.weekly else 0.0
    forecast = f.level + f.daily[i1] + w_old
    rel = abs(mean - forecast) / max(abs(forecast), abs(mean), 1e-9)
    seen = f.errors_seen + 1
    error = f.error + (rel - f.error) / min(seen, 50)  # running mean, then a 50-bucket EWMA
    level = p.alpha * (mean - f.daily[i1] - w_old) + (1 - p.alpha) * f.level
    new_daily = list(f.daily)
    new_daily[i1] = p.gamma * (mean - level - w_old) + (1 - p.gamma) * new_daily[i1]
    new_weekly = list(f.weekly)
    if new_weekly:
        i2 = b % len(new_weekly)
        new_weekly[i2] = p.omega * (mean - level - new_daily[i1]) + (1 - p.omega) * new_weekly[i2]
    return replace(
        f, level=level, daily=tuple(new_daily), weekly=tuple(new_weekly), error=error,
        errors_seen=seen,
    )  # fmt: skip


def observe_rate(
    f: Forecaster, p: PredictiveParams, now_s: float, last_now_s: float | None, rate: float | None
) -> Forecaster:
    """Integrate the rate into its bucket; close buckets the clock has passed."""
    bucket = math.floor(now_s / p.bucket_s)
    previous = f.bucket
    if previous is None:
        return replace(f, bucket=bucket)
    if rate is not None and last_now_s is not None and now_s > last_now_s:
        f = replace(
            f,
            bucket_sum=f.bucket_sum + rate * (now_s - last_now_s),
            bucket_time_s=f.bucket_time_s + now_s - last_now_s,
        )
    if bucket == previous:
        return f
    if f.bucket_time_s > 0:
        f = _close_bucket(f, p, f.bucket_sum / f.bucket_time_s)
    elif bucket - previous > p.season_s // p.bucket_s:
        f = Forecaster()  # a gap longer than a season: start over
    return replace(f, bucket=bucket, bucket_sum=0.0, bucket_time_s=0.0)


def forecast_max(f: Forecaster, p: PredictiveParams, start_s: float, end_s: float) -> float | None:
    """Largest forecast over the buckets covering [start_s, end_s] (the forecast repeats
    after a season, or a week of them, so no more buckets than that are looked at)."""
    if f.level is None:
        return None
    m1 = len(f.daily)
    first = math.floor(start_s / p.bucket_s)
    count = min(math.floor(end_s / p.bucket_s) - first + 1, len(f.weekly) or m1)
    best = -math.inf
    for b in range(first, first + count):
        w = f.weekly[b % len(f.weekly)] if f.weekly else 0.0
        best = max(best, f.level + f.daily[b % m1] + w)
    return max(best, 0.0)


MAX_PENDING_RISES = 64


def learn_lead(lead: LeadTime, obs: Observation, p: PredictiveParams) -> LeadTime:
    """One sample per rise of `replicas`: from the tick before the rise showed (where it was
    decided: the loop scales right after deciding) to the first tick with that many replicas
    ready. Rises overlap during a ramp, so each is timed on its own; a rise withdrawn (the
    count fell below it before it was ready) gives no sample."""
    if p.lead_time_s is not None:
        return lead
    pending = lead.pending
    if lead.last is not None and obs.replicas > lead.last[1]:
        pending = (*pending, (lead.last[0], obs.replicas))[-MAX_PENDING_RISES:]
    estimate = lead.estimate_s
    waiting = []
    for asked_at_s, count in pending:
        if count > obs.replicas:
            continue  # withdrawn
        if obs.ready_replicas >= count:
            estimate += 0.3 * (obs.now_s - asked_at_s - estimate)
            # a clock step is not a startup: the estimate stays within the spec's range
            estimate = min(max(estimate, 0.0), MAX_WINDOW_S)
        else:
            waiting.append((asked_at_s, count))
    return LeadTime(estimate, tuple(waiting), (obs.now_s, obs.replicas))


@dataclass(frozen=True)
class PredictivePolicy(ParamsPolicy[PredictiveParams]):
    params: PredictiveParams
    name: str = "predictive"
    pauses_at_zero = False

    @property
    def required_signals(self) -> frozenset[str]:
        return frozenset({"request_rate_rps"})

    def initial_state(self) -> PredictiveState:
        return PredictiveState(
            Calibration(), Forecaster(), LeadTime(self.params.initial_lead_time_s)
        )

    def dump_state(self, state: PredictiveState) -> JSON:
        f, lead = state.forecaster, state.lead
        return {
            "calibration": state.calibration.to_json(),
            "forecaster": {
                "bucket": f.bucket, "bucket_sum": f.bucket_sum, "bucket_time_s": f.bucket_time_s,
                "warmup": [list(x) for x in f.warmup], "level": f.level, "daily": list(f.daily),
                "weekly": list(f.weekly), "error": f.error, "errors_seen": f.errors_seen,
                "naive_error": f.naive_error, "last_mean": f.last_mean,
            },
            "lead": {
                "estimate_s": lead.estimate_s, "pending": [list(x) for x in lead.pending],
                "last": None if lead.last is None else list(lead.last),
            },
            "last_rate": state.last_rate,
        }  # fmt: skip

    def load_state(self, data: JSON) -> PredictiveState:
        fd, ld = data["forecaster"], data["lead"]
        f = Forecaster(
            bucket=fd["bucket"], bucket_sum=float(fd["bucket_sum"]),
            bucket_time_s=float(fd["bucket_time_s"]),
            warmup=tuple((int(b), float(y)) for b, y in fd["warmup"]),
            level=None if fd["level"] is None else float(fd["level"]),
            daily=tuple(map(float, fd["daily"])), weekly=tuple(map(float, fd["weekly"])),
            error=float(fd["error"]), errors_seen=int(fd["errors_seen"]),
            naive_error=float(fd.get("naive_error", 0.0)),
            last_mean=None if fd.get("last_mean") is None else float(fd["last_mean"]),
        )  # fmt: skip
        last = ld.get("last")  # states saved before per-rise timing have neither key
        lead = LeadTime(
            float(ld["estimate_s"]),
            tuple((float(t), int(n)) for t, n in ld.get("pending", ())),
            None if last is None else (float(last[0]), int(last[1])),
        )
        return PredictiveState(
            Calibration.from_json(data["calibration"]), f, lead, data["last_rate"]
        )

    def observe(self, obs: Observation, state: PredictiveState) -> PredictiveState:
        """What one observation teaches: calibration, the forecast's buckets, the lead time
        (also the first step of `planner`, which builds on this state)."""
        p = self.params
        cal = SloPolicy(p).calibrate(obs, state.calibration)
        rate_for_bucket = state.last_rate if obs.request_rate_rps is None else obs.request_rate_rps
        last_now = state.calibration.last_now_s
        forecaster = observe_rate(state.forecaster, p, obs.now_s, last_now, rate_for_bucket)
        lead = learn_lead(state.lead, obs, p)
        return PredictiveState(cal, forecaster, lead, obs.request_rate_rps)

    def decide(self, obs: Observation, state: PredictiveState) -> tuple[Proposal, PredictiveState]:
        p = self.params
        slo = SloPolicy(p)
        new_state = self.observe(obs, state)
        cal, forecaster, lead = new_state.calibration, new_state.forecaster, new_state.lead
        sizing = slo.inputs(obs, cal)
        if isinstance(sizing, Proposal):
            return sizing, new_state
        now_rate, service, cv2 = sizing.rate_rps, sizing.service_s, sizing.service_cv2
        lead_s = p.lead_time_s if p.lead_time_s is not None else lead.estimate_s
        reactive, reactive_latency, reactive_note = size(p, now_rate, service, cv2)
        details: dict[str, Any] = {
            "rate_rps": now_rate, "service_s": service, "lead_time_s": lead_s,
            "reactive_replicas": reactive, "predicted_latency_s": reactive_latency,
        }  # fmt: skip
        ahead = forecast_max(forecaster, p, obs.now_s, obs.now_s + lead_s)
        if ahead is None:
            m1 = p.season_s // p.bucket_s
            covered = len(forecaster.warmup)
            note = f"Deferring to reactive: forecast needs a season ({covered}/{m1} buckets)"
            wanted = reactive if p.reactive else 0
        else:
            margin = 1.0 + p.margin_k * forecaster.error
            planned, _, _ = size(p, ahead * margin, service, cv2)
            details.update(forecast_rps=ahead, margin=margin, forecast_replicas=planned)
            if planned > reactive or not p.reactive:
                wanted = planned
                note = (
                    f"forecast {ahead:.3g} req/s x {margin:.2f} in {lead_s:.0f} s needs {planned}"
                )
            else:
                wanted, note = reactive, reactive_note
        held, cal = cal.held_down(obs.now_s, wanted, p.scale_down_delay_s)
        if held > wanted:
            note = f"ScaleDownDelay: {wanted} would do; holding {held} for scale_down_delay_s"
        return Proposal.scale(held, note, **details), replace(new_state, calibration=cal)


class PredictiveFactory(ParamsFactory[PredictiveParams, PredictivePolicy]):
    name = "predictive"
    summary = "seasonal (Holt-Winters) rate forecast one lead time ahead, SLO-sized, as a floor"
    guard_defaults: Mapping[str, Any] = {"min_replicas": 1}
    example_spec: Mapping[str, Any] = {
        "latency_target_s": 2.0, "slots_per_replica": 8, "bucket_s": 60, "season_s": 1200,
    }  # fmt: skip
    params_model, policy_type = PredictiveParams, PredictivePolicy


FACTORY = PredictiveFactory()
