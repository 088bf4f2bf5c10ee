"""`slo`: the fewest replicas whose predicted latency percentile meets the SLO.

In: `request_rate_rps` (required), and for calibration `in_flight`, `queue_depth` and the
latency percentiles. Out: a Proposal with the predicted percentile beside the observed one.

Model (policies/queueing.py): servers = replicas x `slots_per_replica`; waiting time from
Erlang-C (M/M/c) with the Allen-Cunneen factor (ca2 + cs2) / 2 for non-exponential arrivals
and service; the target is on end-to-end latency = wait quantile + mean service time, e.g.
p95 <= 2 s: `percentile: 0.95, latency_target_s: 2`; or on the waiting time alone (the
time-to-first-token-like part a policy controls): `percentile: 0.99, wait_target_s: 1`.

Calibration, online, smoothed exponentially in seconds of now_s (so the tick interval does not
matter): the rate with time constant `window_s` (60), the service time and its variability
with `service_window_s` (600; a property of the model and hardware that changes slowly):
- arrival rate: `request_rate_rps`; sizing uses max(latest, smoothed) so a rise acts at once
  and a fall is believed only as the smoothed value follows it; while requests queue, at
  least in_flight / E[S] (the throughput of the busy slots, which leads the rate() window);
- mean service time E[S]: Little's law on the requests in service, in_flight / rate, or the
  observed p50 latency when in_flight is missing; `service_time_s` pins it. Little's law holds
  in a steady state only, so a sample counts once requests have arrived for `window_s` (at a
  sudden start the rate() window lags the requests already in service: x5 on the Azure
  conversation trace) and little has been queued for 2 E[S] (a drained backlog's requests are
  still in service); until a first sample counts, the newest estimate is used (a first guess
  kept would latch that transient);
- service variability cs2: from the spread of observed latencies while little is queued,
  assuming a lognormal service time: sigma = ln(p95 / p50) / 1.645, cs2 = exp(sigma^2) - 1;
  `service_cv` pins it; 1 (exponential) until learned;
- arrival variability: `arrival_cv` (1 = Poisson);
- a queue is drained within `backlog_drain_s` (60): its depth / backlog_drain_s is added to
  the arrival rate sized for, so a backlog built during a cold start is worked off;
- `scale_down_delay_s` (120): it proposes the largest size of that many past seconds, so a
  scale-down waits until the smaller size has sufficed for the whole delay (no flapping on
  Poisson noise); 0 turns this off.
Parameters: `SloParams` (each key's unit, default and bounds); latency_target_s or
wait_target_s is required.
When no replica count can meet the target (the target is below E[S]), it proposes the count
at which the waiting quantile is zero and says so. The search stops at 10,000 replicas (the
most any spec allows, policies/spec.py): a load that needs more proposes that many at once,
reason `Overload` (the guards then cap it at max_replicas).
Bounds: time keys 0..86,400 s, coefficients of variation <= 100, slots_per_replica <= 10,000.
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
from policies.queueing import smallest_servers
from policies.spec import MAX_COUNT, MAX_FACTOR, MAX_REPLICAS, MAX_WINDOW_S, StrictModel

Z95 = 1.6448536269514722  # standard normal 0.95 quantile, for the lognormal spread
MAX_LOG1P_CV2 = math.log1p(MAX_FACTOR**2)  # cv^2 = expm1(sigma^2) <= MAX_FACTOR^2
MIN_SERVICE_S = 1e-6  # a shorter observed service time is noise, not an estimate


class SloParams(StrictModel):
    """`slo`'s spec keys (also the SLO part of `predictive` and `planner`)."""

    latency_target_s: float | None = Field(
        default=None, gt=0, le=MAX_WINDOW_S,
        description="seconds: the percentile of end-to-end latency (wait + mean service)",
    )  # fmt: skip
    wait_target_s: float | None = Field(
        default=None, ge=0, le=MAX_WINDOW_S,
        description="seconds: the percentile of the queueing wait alone",
    )  # fmt: skip
    percentile: float = Field(
        default=0.95, ge=0.5, le=0.9999, description="the share of requests the target is for"
    )
    slots_per_replica: int = Field(
        default=1, ge=1, le=MAX_COUNT, description="requests one replica serves at once"
    )
    service_time_s: float | None = Field(
        default=None, gt=0, le=MAX_WINDOW_S, description="seconds, mean (unset: learned)"
    )
    service_cv: float | None = Field(
        default=None, ge=0, le=MAX_FACTOR,
        description="service time's coefficient of variation (unset: learned)",
    )  # fmt: skip
    arrival_cv: float = Field(
        default=1.0, ge=0, le=MAX_FACTOR,
        description="inter-arrival coefficient of variation (1: Poisson)",
    )  # fmt: skip
    window_s: float = Field(
        default=60.0, gt=0, le=MAX_WINDOW_S, description="seconds, the rate's time constant"
    )
    service_window_s: float = Field(
        default=600.0, gt=0, le=MAX_WINDOW_S,
        description="seconds, the service time's and its variability's time constant",
    )  # fmt: skip
    backlog_drain_s: float = Field(
        default=60.0, gt=0, le=MAX_WINDOW_S, description="seconds to drain a queue within"
    )
    scale_down_delay_s: float = Field(
        default=120.0, ge=0, le=MAX_WINDOW_S,
        description="seconds a smaller size must suffice before it is proposed (0: off)",
    )  # fmt: skip

    @model_validator(mode="after")
    def _one_target(self) -> SloParams:
        if (self.latency_target_s is None) == (self.wait_target_s is None):
            raise ValueError(
                "set exactly one of latency_target_s (wait + mean service, end to end) or "
                "wait_target_s (queueing delay alone, the time-to-first-token-like part)"
            )
        return self


@dataclass(frozen=True, slots=True)
class Calibration:
    """Smoothed estimates; None until first seen."""

    rate_rps: float | None = None
    service_s: float | None = None
    service_cv2: float | None = None
    last_now_s: float | None = None
    recent: tuple[tuple[float, int], ...] = ()  # (now_s, size) within scale_down_delay_s
    service_samples: int = 0  # trusted service-time samples so far
    arriving_since_s: float | None = None  # since when requests arrive (rate > 0)
    calm_since_s: float | None = None  # since when little is queued, requests arriving

    def to_json(self) -> dict[str, Any]:
        return {
            "rate_rps": self.rate_rps,
            "service_s": self.service_s,
            "service_cv2": self.service_cv2,
            "last_now_s": self.last_now_s,
            "recent": [list(x) for x in self.recent],
            "service_samples": self.service_samples,
            "arriving_since_s": self.arriving_since_s,
            "calm_since_s": self.calm_since_s,
        }

    @classmethod
    def from_json(cls, data: Any) -> Calibration:
        def num(key: str) -> float | None:
            value = data.get(key)
            return None if value is None else float(value)

        recent = tuple((float(t), int(n)) for t, n in data.get("recent", []))
        samples = int(data.get("service_samples", 0))
        return cls(
            num("rate_rps"),
            num("service_s"),
            num("service_cv2"),
            num("last_now_s"),
            recent,
            samples,
            num("arriving_since_s"),
            num("calm_since_s"),
        )

    def held_down(self, now_s: float, size: int, delay_s: float) -> tuple[int, Calibration]:
        """The largest size of the last `delay_s` seconds (this one included): a scale-down
        happens only once the smaller size has been enough for the whole delay."""
        recent = (*(x for x in self.recent if x[0] > now_s - delay_s), (now_s, size))
        return max(n for _, n in recent), replace(self, recent=recent)


def _since(since: float | None, now_s: float) -> float:
    return now_s if since is None else since


def _blend(old: float | None, new: float | None, weight: float) -> float | None:
    if new is None:
        return old
    if old is None:
        return new
    return old + weight * (new - old)


def observed_service_s(obs: Observation, servers: int) -> tuple[float | None, bool]:
    """E[S] and whether little is queued: Little's law on requests in service holds with the
    arrival rate only while throughput keeps up (little queued; the caller also waits for a
    steady load); saturated, in_flight / rate under-estimates E[S], a guess at most. A value
    outside 1 us..86,400 s (1e-300 in flight over 2 req/s, 5 in flight over 1e-300 req/s) is
    no estimate."""
    rate = obs.request_rate_rps
    if rate is not None and rate > 0 and obs.in_flight is not None and obs.in_flight > 0:
        queued = obs.queue_depth or 0.0
        service: float | None = obs.in_flight / rate
        trusted = queued <= max(1.0, 0.1 * servers)
    elif obs.queue_depth is not None and obs.queue_depth > 0:
        return None, False  # latency percentiles would include the wait
    else:
        service, trusted = obs.latency_p50_s, obs.latency_p50_s is not None
    if service is None or not MIN_SERVICE_S <= service <= MAX_WINDOW_S:
        return None, False
    return service, trusted


def observed_cv2(obs: Observation, servers: int) -> float | None:
    """Service cv^2 from p95/p50 when the queue is too short to distort the latencies."""
    p50, p95 = obs.latency_p50_s, obs.latency_p95_s
    if p50 is None or p95 is None or p50 <= 0 or p95 < p50:
        return None
    if obs.queue_depth is None or obs.queue_depth > 0.05 * max(servers, 1):
        return None
    sigma = math.log(p95 / p50) / Z95
    # at most MAX_FACTOR^2, the cv a spec may pin (p50 1e-300 s with p95 1 s overflows exp)
    return math.expm1(min(sigma * sigma, MAX_LOG1P_CV2))


@dataclass(frozen=True, slots=True)
class Sizing:
    arrivals_rps: float  # max(latest, smoothed)
    in_service_rps: float  # in service / E[S] while requests queue (else 0): the throughput
    backlog_rps: float  # the queue drained within backlog_drain_s
    service_s: float
    service_cv2: float

    @property
    def rate_rps(self) -> float:
        """What `slo` sizes for: the arrivals (at least the busy slots' throughput) plus the
        backlog."""
        return max(self.arrivals_rps, self.in_service_rps) + self.backlog_rps


@dataclass(frozen=True)
class SloPolicy(ParamsPolicy[SloParams]):
    params: SloParams
    name: str = "slo"
    pauses_at_zero = False

    @property
    def scale_down_window_s(self) -> float:
        """One scale-down window (a takeover that lost history holds this long): the scale-down
        delay, or the rate's time constant when that is longer (a fresh estimate needs it)."""
        return max(self.params.scale_down_delay_s, self.params.window_s)

    @property
    def required_signals(self) -> frozenset[str]:
        return frozenset({"request_rate_rps"})

    def initial_state(self) -> Calibration:
        return Calibration()

    def dump_state(self, state: Calibration) -> JSON:
        return state.to_json()

    def load_state(self, data: JSON) -> Calibration:
        return Calibration.from_json(data)

    def calibrate(self, obs: Observation, state: Calibration) -> Calibration:
        p = self.params
        dt = 0.0 if state.last_now_s is None else max(0.0, obs.now_s - state.last_now_s)
        weight = 1.0 - math.exp(-dt / p.window_s)
        # the service time is a slow property: a long average, but a plain mean of the first
        # samples (a bias-corrected EWMA), so an early, transient sample does not linger
        samples = state.service_samples
        slow = max(1.0 - math.exp(-dt / p.service_window_s), 1.0 / (samples + 1))
        servers = obs.ready_replicas * p.slots_per_replica
        service, little_queued = observed_service_s(obs, servers)
        rate = obs.request_rate_rps
        arriving = calm = None
        if rate is not None and rate > 0:
            arriving = _since(state.arriving_since_s, obs.now_s)
            calm = _since(state.calm_since_s, obs.now_s) if little_queued else None
        if service is None:
            service_s = state.service_s
        elif (
            arriving is not None
            and calm is not None
            and obs.now_s - arriving >= p.window_s
            and obs.now_s - calm >= 2.0 * service
        ):
            service_s = _blend(state.service_s, service, slow)
            samples += 1
        else:  # a transient: the newest guess until a steady sample counts
            service_s = service if samples == 0 else state.service_s
        return Calibration(
            rate_rps=_blend(state.rate_rps, obs.request_rate_rps, weight),
            service_s=service_s,
            service_cv2=_blend(state.service_cv2, observed_cv2(obs, servers), slow),
            last_now_s=obs.now_s,
            # like HPA's initial recommendation: no scale-down within the delay of starting
            recent=state.recent if state.last_now_s is not None else ((obs.now_s, obs.replicas),),
            service_samples=samples,
            arriving_since_s=arriving,
            calm_since_s=calm,
        )

    def inputs(self, obs: Observation, cal: Calibration) -> Sizing | Proposal:
        """What to size with now, or the hold that says why it cannot."""
        if obs.request_rate_rps is None or cal.rate_rps is None:
            return Proposal.hold("MissingSignal: request_rate_rps; holding")
        service = self.params.service_time_s or cal.service_s
        if service is None or not service > 0:
            return Proposal.hold("Calibrating: no service time yet (in_flight or latency)")
        # Little's law the other way: the requests in service right now imply at least
        # in_flight / E[S] req/s, a signal that leads the rate() window at a sudden rise; and a
        # backlog is drained within backlog_drain_s on top of the arrivals
        queued = obs.queue_depth or 0.0
        in_service_rps = (obs.in_flight or 0.0) / service if queued > 0 else 0.0
        backlog_rps = queued / self.params.backlog_drain_s
        arrivals = max(obs.request_rate_rps, cal.rate_rps)
        return Sizing(arrivals, in_service_rps, backlog_rps, service, self._cv2(cal))

    def decide(self, obs: Observation, state: Calibration) -> tuple[Proposal, Calibration]:
        cal = self.calibrate(obs, state)
        sizing = self.inputs(obs, cal)
        if isinstance(sizing, Proposal):
            return sizing, cal
        rate, service = sizing.rate_rps, sizing.service_s
        wanted, predicted, note = size(self.params, rate, service, sizing.service_cv2)
        replicas, cal = cal.held_down(obs.now_s, wanted, self.params.scale_down_delay_s)
        if replicas > wanted:
            note = f"ScaleDownDelay: {wanted} would do; holding {replicas} for scale_down_delay_s"
        details = {
            "rate_rps": rate,
            "service_s": service,
            "predicted_latency_s": predicted,
            "observed_latency_s": _observed_percentile(obs, self.params.percentile),
        }
        return Proposal.scale(replicas, note, **details), cal

    def _cv2(self, cal: Calibration) -> float:
        if self.params.service_cv is not None:
            return self.params.service_cv**2
        return 1.0 if cal.service_cv2 is None else cal.service_cv2


def size(
    p: SloParams, rate_rps: float, service_s: float, service_cv2: float
) -> tuple[int, float, str]:
    """(replicas, predicted end-to-end percentile, reason) for a rate and service time."""
    variability = (p.arrival_cv**2 + service_cv2) / 2
    label = f"p{p.percentile * 100:g}"
    if rate_rps <= 0:
        return 0, service_s, f"no traffic: {label} {service_s:.3g} s with any replica"
    if p.wait_target_s is not None:
        wait_budget, target, what = p.wait_target_s, p.wait_target_s, "wait"
    else:
        assert p.latency_target_s is not None
        wait_budget, target, what = p.latency_target_s - service_s, p.latency_target_s, "latency"
    feasible = wait_budget >= 0
    servers, wait = smallest_servers(
        rate_rps, service_s, p.percentile, max(wait_budget, 0.0),
        variability=variability, step=p.slots_per_replica,
        limit=MAX_REPLICAS * p.slots_per_replica,
    )  # fmt: skip
    replicas = servers // p.slots_per_replica
    predicted = service_s + wait
    if wait > max(wait_budget, 0.0):  # only at the limit: no count up to it meets the target
        why = (
            f"Overload: even {replicas:,} replicas (the most any spec allows) predict {label} "
            f"{what} {wait if what == 'wait' else predicted:.3g} s at {rate_rps:.3g} req/s"
        )
        return replicas, predicted, why
    if not feasible:
        why = (
            f"SLOInfeasible: mean service {service_s:.3g} s exceeds the {label} target "
            f"{target:g} s; sized for no waiting"
        )
        return replicas, predicted, why
    shown = wait if what == "wait" else predicted
    why = f"predicted {label} {what} {shown:.3g} s <= {target:g} s at {rate_rps:.3g} req/s"
    return replicas, predicted, why


def _observed_percentile(obs: Observation, q: float) -> float | None:
    if q >= 0.99:
        return obs.latency_p99_s
    if q >= 0.95:
        return obs.latency_p95_s
    return obs.latency_p50_s


class SloFactory(ParamsFactory[SloParams, SloPolicy]):
    name = "slo"
    summary = "fewest replicas whose Erlang-C (Allen-Cunneen) latency percentile meets the SLO"
    guard_defaults: Mapping[str, Any] = {"min_replicas": 1}
    example_spec: Mapping[str, Any] = {"latency_target_s": 2.0, "slots_per_replica": 8}
    params_model, policy_type = SloParams, SloPolicy


FACTORY = SloFactory()
