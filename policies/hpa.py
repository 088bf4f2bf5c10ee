"""`hpa`: the Kubernetes HorizontalPodAutoscaler v2 replica calculation, exactly, on totals.

In: an Observation whose signals are totals over the target. Out: a Proposal; the behavior
(stabilization, rate limits) is applied by the shared guards with Kubernetes' defaults.

Anchor: k8s.io/kubernetes pkg/controller/podautoscaler/replica_calculator.go and horizontal.go.
- `Pods` metric, `target_per_replica` (AverageValue): per-replica average in milli-units with
  integer division over ready replicas, ratio = average / target, a tolerance band on the
  ratio (inclusive, per direction), desired = ceil(ratio x ready). 130 in flight on 3 replicas
  at target 10: 130000 // 3 = 43333 milli, ratio 4.3333, ceil(12.9999) = 13 (a float division
  would give ceil(13.000000000000002) = 14). On a scale-up, starting replicas count as replicas
  at zero usage and a recomputation that flips direction holds (HPA's unready-pod rule).
- `External`/`Object` metric, `target_per_replica`: desired = ceil(total / target) when the
  ratio total / (target x status replicas) is outside the band (KEDA uses this path).
- `target_value` (Value): ratio = total / target, desired = ceil(ratio x ready); ceil(ratio)
  at zero replicas.
- Several metrics: the max. A missing metric: scale up on the others, never down (HPA returns
  an error and leaves the target alone).
Deliberate differences are listed in README.md ("Differences from the anchors").
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from policies.guards import Guards
from policies.observation import Observation, is_signal_name
from policies.params import ParamsFactory, ParamsPolicy
from policies.policy import Proposal, StatelessPolicy
from policies.spec import MAX_FACTOR, MAX_QUANTITY, StrictModel

DEFAULT_TOLERANCE = 0.1  # kube-controller-manager --horizontal-pod-autoscaler-tolerance


def milli(value: float) -> int:
    """resource.Quantity.MilliValue(): rounds up; the inner round() absorbs float noise, but
    a positive value is at least 1m (a target of 1e-9 is 1m, not a division by zero)."""
    scaled = math.ceil(round(value * 1000.0, 6))
    return 1 if scaled == 0 and value > 0 else scaled


@dataclass(frozen=True, slots=True)
class Tolerances:
    scale_down: float = DEFAULT_TOLERANCE
    scale_up: float = DEFAULT_TOLERANCE

    def within(self, ratio: float) -> bool:
        return (1.0 - self.scale_down) <= ratio <= (1.0 + self.scale_up)

    @classmethod
    def from_guards(cls, tolerance: float, guards: Guards) -> Tolerances:
        """Kubernetes >= 1.33: behavior.scaleUp/scaleDown.tolerance override the flag's value."""
        up = guards.scale_up.tolerance if guards.scale_up is not None else None
        down = guards.scale_down.tolerance if guards.scale_down is not None else None
        return cls(
            scale_down=tolerance if down is None else down,
            scale_up=tolerance if up is None else up,
        )


def check_signal(value: str | None) -> str | None:
    if value is not None and not is_signal_name(value):
        raise ValueError(
            "must be an Observation signal (request_rate_rps, in_flight, queue_depth, "
            "latency_p50_s, latency_p95_s, latency_p99_s, error_rate, gpu_utilization) "
            f"or extra.<name> (got {value!r})"
        )
    return value


# The HPA's tolerance key, also keda's (whose HPA it configures).
HPATolerance = Annotated[
    float,
    Field(
        ge=0, le=MAX_FACTOR,
        description="dimensionless band around ratio 1 that proposes the current count",
    ),
]  # fmt: skip


class MetricSpec(StrictModel):
    signal: str = Field(description="an Observation signal or extra.<name>, a total")
    type: Literal["Pods", "Object", "External"] | None = Field(
        default=None, description="HPA's metric source (unset: Pods for target_per_replica)"
    )
    target_per_replica: float | None = Field(
        default=None, gt=0, le=MAX_QUANTITY, description="AverageValue, signal units per replica"
    )
    target_value: float | None = Field(
        default=None, gt=0, le=MAX_QUANTITY, description="Value, in the signal's units"
    )

    _known_signal = field_validator("signal")(check_signal)

    @model_validator(mode="after")
    def _one_target(self) -> MetricSpec:
        if (self.target_per_replica is None) == (self.target_value is None):
            raise ValueError(
                "set exactly one of target_per_replica (AverageValue) or target_value (Value)"
            )
        if self.type == "Pods" and self.target_value is not None:
            raise ValueError(
                "a Pods metric takes target_per_replica (AverageValue), not target_value"
            )
        return self

    @property
    def kind(self) -> str:
        if self.type is not None:
            return self.type
        return "Pods" if self.target_per_replica is not None else "External"


class HPAParams(StrictModel):
    """`hpa`'s spec keys: `metrics`, or the one-metric shorthand `metric` + a target."""

    metrics: list[MetricSpec] | None = Field(
        default=None, min_length=1, description="HPA's metrics; the largest count wins"
    )
    metric: str | None = Field(default=None, description="shorthand: one metric's signal")
    target_per_replica: float | None = Field(
        default=None, gt=0, le=MAX_QUANTITY, description="shorthand: AverageValue (Pods metric)"
    )
    target_value: float | None = Field(
        default=None, gt=0, le=MAX_QUANTITY, description="shorthand: Value (External metric)"
    )
    tolerance: HPATolerance = DEFAULT_TOLERANCE

    _known_signal = field_validator("metric")(check_signal)

    @model_validator(mode="after")
    def _metrics_or_shorthand(self) -> HPAParams:
        shorthand = (self.metric, self.target_per_replica, self.target_value)
        if self.metrics is not None and any(v is not None for v in shorthand):
            raise ValueError("use either metrics: [...] or metric + target_per_replica, not both")
        if self.metrics is None and self.metric is None:
            raise ValueError("needs metrics: [...] or metric + target_per_replica")
        if self.metric is not None and (self.target_per_replica is None) == (
            self.target_value is None
        ):  # the shorthand's one metric, checked here so it is a SpecError, not at build
            raise ValueError(
                "set exactly one of target_per_replica (AverageValue) or target_value (Value)"
            )
        return self

    def long_form(self) -> HPAParams:
        """The shorthand as a one-item `metrics`, each metric's type filled in (`spec()`)."""
        metrics = [m.model_copy(update={"type": m.kind}) for m in self.metric_list()]
        return HPAParams(metrics=metrics, tolerance=self.tolerance)

    def metric_list(self) -> list[MetricSpec]:
        if self.metrics is not None:
            return list(self.metrics)
        return [
            MetricSpec(
                signal=self.metric or "",
                target_per_replica=self.target_per_replica,
                target_value=self.target_value,
            )
        ]


@dataclass(frozen=True, slots=True)
class Metric:
    signal: str
    kind: str  # Pods | Object | External
    target: float
    average: bool  # AverageValue (target per replica) or Value
    label: str = ""  # the name reasons use, when `signal` is an internal alias

    @property
    def shown(self) -> str:
        return self.label or self.signal


def metric_replicas(
    m: Metric, obs: Observation, tol: Tolerances
) -> tuple[int | None, dict[str, Any]]:
    """One metric's replica count, or None with the reason HPA would fail it."""
    total = obs.signal(m.signal)
    if total is None:
        return None, {"error": f"{m.shown} missing"}
    current, ready = obs.replicas, obs.ready_replicas
    usage, target = milli(total), milli(m.target)
    if m.average and m.kind == "Pods":
        return _pods_replicas(usage, target, current, ready, obs.starting_replicas, tol)
    if m.average:  # External / Object AverageValue: divided by status replicas
        status = ready + obs.starting_replicas
        ratio = usage / (target * status) if status else math.inf
        replicas = status if tol.within(ratio) else math.ceil(usage / target)
        return replicas, {"usage": usage / 1000, "target": target / 1000, "ratio": ratio}
    ratio = usage / target
    if current == 0:
        return math.ceil(ratio), {"usage": usage / 1000, "target": target / 1000, "ratio": ratio}
    if obs.ready_replicas + obs.starting_replicas == 0:
        return None, {"error": "no pods returned by selector while calculating replica count"}
    replicas = current if tol.within(ratio) else math.ceil(ratio * ready)
    return replicas, {"usage": usage / 1000, "target": target / 1000, "ratio": ratio}


def _pods_replicas(
    usage: int, target: int, current: int, ready: int, starting: int, tol: Tolerances
) -> tuple[int | None, dict[str, Any]]:
    if ready == 0:
        return None, {"error": "did not receive metrics for targeted pods (pods might be unready)"}
    average = usage // ready
    ratio = average / target
    detail: dict[str, Any] = {"average": average / 1000, "target": target / 1000, "ratio": ratio}
    if not (starting > 0 and ratio > 1.0):
        return (current if tol.within(ratio) else math.ceil(ratio * ready)), detail
    # Scale-up with unready pods: they count as replicas at zero usage.
    counted = ready + starting
    new_ratio = (usage // counted) / target
    detail["ratio_with_starting"] = new_ratio
    if tol.within(new_ratio) or new_ratio < 1.0:
        return current, detail
    new_replicas = math.ceil(new_ratio * counted)
    return (current if new_replicas < current else new_replicas), detail


@dataclass(frozen=True)
class HPAPolicy(ParamsPolicy[HPAParams], StatelessPolicy):
    params: HPAParams
    tolerances: Tolerances = field(default_factory=Tolerances)
    name: str = "hpa"
    pauses_at_zero = True
    metrics: tuple[Metric, ...] = field(init=False, repr=False, compare=False)
    _required: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Derived from params once, when the policy is built (where a bad shorthand fails);
        # the guards read `required_signals` every control interval.
        metrics = metrics_from(self.params.metric_list())
        object.__setattr__(self, "metrics", metrics)
        object.__setattr__(self, "_required", frozenset(m.signal for m in metrics))

    @property
    def required_signals(self) -> frozenset[str]:
        return self._required

    def spec(self) -> dict[str, Any]:
        return self.params.long_form().model_dump(exclude_none=True)

    def with_guards(self, guards: Guards) -> HPAPolicy:
        """Per-direction tolerances come from `behavior` (see Tolerances.from_guards)."""
        return replace(self, tolerances=Tolerances.from_guards(self.params.tolerance, guards))

    def decide(self, obs: Observation, state: Any) -> tuple[Proposal, Any]:
        return decide_metrics(self.metrics, obs, self.tolerances), state


def decide_metrics(metrics: tuple[Metric, ...], obs: Observation, tol: Tolerances) -> Proposal:
    """HPA computeReplicasForMetrics + the reason strings of reconcileAutoscaler."""
    current = obs.replicas
    best: int | None = None
    best_signal = ""
    details: dict[str, Any] = {}
    invalid: list[str] = []
    for m in metrics:
        replicas, detail = metric_replicas(m, obs, tol)
        details[m.shown] = {**detail, "replicas": replicas}
        if replicas is None:
            invalid.append(m.shown)
        elif best is None or replicas > best:
            best, best_signal = replicas, m.shown
    if best is None:
        return Proposal.hold(f"FailedGetMetrics: {', '.join(invalid)}; holding", metrics=details)
    if invalid and best < current:
        return Proposal.hold(
            f"InvalidMetrics: {', '.join(invalid)} missing and the rest would scale down; holding",
            metrics=details,
        )
    if best > current:
        reason = f"{best_signal} above target"
    elif best < current:
        reason = "All metrics below target"
    else:
        reason = "ReadyForNewScale: recommended size matches current size"
    return Proposal.scale(best, reason, metrics=details)


def metrics_from(params: list[MetricSpec]) -> tuple[Metric, ...]:
    out = []
    for spec in params:
        average = spec.target_per_replica is not None
        target = spec.target_per_replica if average else spec.target_value
        out.append(Metric(spec.signal, spec.kind, float(target or 0.0), average))
    return tuple(out)


class HPAFactory(ParamsFactory[HPAParams, HPAPolicy]):
    name = "hpa"
    summary = "Kubernetes HPA v2 (AverageValue/Value metrics, tolerance, behavior), exactly"
    guard_defaults: Mapping[str, Any] = {"min_replicas": 1, "behavior": {}}
    example_spec: Mapping[str, Any] = {"metric": "in_flight", "target_per_replica": 10}
    params_model, policy_type = HPAParams, HPAPolicy


FACTORY = HPAFactory()
