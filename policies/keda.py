"""`keda`: KEDA's ScaledObject layer (activation, cooldown, fallback) over the HPA algorithm.

In: an Observation with the trigger signals as totals. Out: a Proposal.

Anchor: kedacore/keda pkg/scaling/executor/scale_scaledobjects.go (RequestScale) and
pkg/fallback/fallback.go; the HPA KEDA creates uses External metrics (AverageValue by default).
- 0 -> 1: when any trigger's value is strictly above its `activation_threshold`, the executor
  scales a target at zero to 1 (min_replicas when that is higher) directly, outside the HPA's
  behavior.
- N -> 0: with min_replicas 0, when no trigger is active and the last active time is more than
  `cooldown_s` ago (or there never was one), the executor scales to 0, again outside the
  behavior. Never while a trigger errors.
- 1 <-> N: the HPA algorithm (External metric: ceil(total / threshold) outside the tolerance
  band), with the HPA's minimum of max(min_replicas, 1), and the behavior guards.
- `fallback`: after more than `failure_threshold` consecutive failed reads of a trigger (a
  missing signal is a failed read), it reads as `replicas x threshold`, so the HPA proposes
  `fallback.replicas` (AverageValue triggers only, as in KEDA).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from policies.guards import Guards
from policies.hpa import (
    DEFAULT_TOLERANCE,
    HPATolerance,
    Metric,
    Tolerances,
    check_signal,
    decide_metrics,
)
from policies.observation import Observation
from policies.params import ParamsFactory, ParamsPolicy
from policies.policy import JSON, Proposal
from policies.spec import (
    MAX_COUNT,
    MAX_QUANTITY,
    MAX_REPLICAS,
    MAX_WINDOW_S,
    StrictModel,
    parse,
)

DEFAULT_COOLDOWN_S = 300.0  # KEDA defaultCooldownPeriod


class TriggerSpec(StrictModel):
    signal: str = Field(description="an Observation signal or extra.<name>, a total")
    threshold: float = Field(
        gt=0, le=MAX_QUANTITY, description="the HPA's target, in the signal's units"
    )
    activation_threshold: float = Field(
        default=0.0, ge=0, le=MAX_QUANTITY, description="active above this (signal units)"
    )
    metric_type: Literal["AverageValue", "Value"] = Field(
        default="AverageValue", description="AverageValue: threshold per replica"
    )

    _known_signal = field_validator("signal")(check_signal)


class FallbackSpec(StrictModel):
    failure_threshold: int = Field(
        ge=0, le=MAX_COUNT, description="consecutive failed reads before the fallback"
    )
    replicas: int = Field(ge=0, le=MAX_REPLICAS, description="replicas proposed on fallback")


class KedaParams(StrictModel):
    """`keda`'s spec keys: `triggers`, or the one-trigger shorthand `metric` + `threshold`."""

    triggers: list[TriggerSpec] | None = Field(
        default=None, min_length=1, description="KEDA's triggers; the largest count wins"
    )
    metric: str | None = Field(default=None, description="shorthand: one trigger's signal")
    threshold: float | None = Field(
        default=None, gt=0, le=MAX_QUANTITY, description="shorthand: its threshold"
    )
    activation_threshold: float | None = Field(
        default=None, ge=0, le=MAX_QUANTITY, description="shorthand: its activation threshold"
    )
    metric_type: Literal["AverageValue", "Value"] | None = Field(
        default=None, description="shorthand: its metric type"
    )
    cooldown_s: float = Field(
        default=DEFAULT_COOLDOWN_S, ge=0, le=MAX_WINDOW_S,
        description="seconds with no trigger active before scaling to 0",
    )  # fmt: skip
    fallback: FallbackSpec | None = Field(
        default=None, description="replicas to propose while a trigger cannot be read"
    )
    tolerance: HPATolerance = DEFAULT_TOLERANCE

    _known_signal = field_validator("metric")(check_signal)

    @model_validator(mode="after")
    def _triggers_or_shorthand(self) -> KedaParams:
        shorthand = (self.metric, self.threshold, self.activation_threshold, self.metric_type)
        if self.triggers is not None and any(v is not None for v in shorthand):
            raise ValueError("use either triggers: [...] or metric + threshold, not both")
        if self.triggers is None and (self.metric is None or self.threshold is None):
            raise ValueError("needs triggers: [...] or metric + threshold")
        return self

    def long_form(self) -> KedaParams:
        """The shorthand as a one-item `triggers` (`spec()`)."""
        return KedaParams(
            triggers=self.trigger_list(), cooldown_s=self.cooldown_s, tolerance=self.tolerance,
            fallback=self.fallback,
        )  # fmt: skip

    def trigger_list(self) -> list[TriggerSpec]:
        if self.triggers is not None:
            return list(self.triggers)
        data: dict[str, Any] = {"signal": self.metric, "threshold": self.threshold}
        if self.activation_threshold is not None:
            data["activation_threshold"] = self.activation_threshold
        if self.metric_type is not None:
            data["metric_type"] = self.metric_type
        return [parse(TriggerSpec, data, "keda spec")]


@dataclass(frozen=True, slots=True)
class Trigger:
    signal: str
    threshold: float
    activation_threshold: float
    average: bool


@dataclass(frozen=True, slots=True)
class KedaState:
    last_active_s: float | None = None
    failures: tuple[int, ...] = ()


@dataclass(frozen=True)
class KedaPolicy(ParamsPolicy[KedaParams]):
    params: KedaParams
    tolerances: Tolerances = field(default_factory=Tolerances)
    min_replicas: int = 0
    name: str = "keda"
    pauses_at_zero = False
    triggers: tuple[Trigger, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Derived from params once, when the policy is built (where a bad shorthand fails).
        triggers = tuple(
            Trigger(t.signal, t.threshold, t.activation_threshold, t.metric_type == "AverageValue")
            for t in self.params.trigger_list()
        )
        object.__setattr__(self, "triggers", triggers)

    @property
    def required_signals(self) -> frozenset[str]:
        return frozenset(t.signal for t in self.triggers)

    def spec(self) -> dict[str, Any]:
        return self.params.long_form().model_dump(exclude_none=True)

    def with_guards(self, guards: Guards) -> KedaPolicy:
        tolerances = Tolerances.from_guards(self.params.tolerance, guards)
        return replace(self, tolerances=tolerances, min_replicas=guards.min_replicas)

    def initial_state(self) -> KedaState:
        return KedaState(failures=(0,) * len(self.triggers))

    def dump_state(self, state: KedaState) -> JSON:
        return {"last_active_s": state.last_active_s, "failures": list(state.failures)}

    def load_state(self, data: JSON) -> KedaState:
        failures = tuple(int(x) for x in data["failures"])
        if len(failures) != len(self.triggers):
            raise ValueError(f"state has {len(failures)} trigger(s), spec has {len(self.triggers)}")
        last = data["last_active_s"]
        return KedaState(None if last is None else float(last), failures)

    def decide(self, obs: Observation, state: KedaState) -> tuple[Proposal, KedaState]:
        values = [obs.signal(t.signal) for t in self.triggers]
        failures = tuple(
            0 if v is not None else n + 1 for v, n in zip(values, state.failures, strict=True)
        )
        active = [
            t.signal
            for t, v in zip(self.triggers, values, strict=True)
            if v is not None and v > t.activation_threshold
        ]
        errored = any(v is None for v in values)
        last_active = obs.now_s if active else state.last_active_s
        new_state = KedaState(last_active, failures)
        current = obs.replicas

        if active and current == 0:
            target = max(self.min_replicas, 1)
            return Proposal.direct_scale(
                target, f"Activated: {', '.join(active)} above activation threshold"
            ), new_state
        if not active and current == 0:
            return Proposal.hold("Inactive: no trigger above its activation threshold"), new_state
        last = state.last_active_s
        cooldown_s = self.params.cooldown_s
        cooled = last is None or last + cooldown_s < obs.now_s
        if not active and not errored and self.min_replicas == 0 and cooled:
            why = f"Deactivated: no trigger active for more than cooldown_s {cooldown_s:g}"
            return Proposal.direct_scale(0, why), new_state

        metrics, values_seen = self._hpa_inputs(obs, values, failures)
        seen = _with_values(obs, values_seen)
        proposal = decide_metrics(metrics, seen, self.tolerances)
        if proposal.replicas is not None and proposal.replicas < 1:
            # KEDA's HPA has minReplicas max(min_replicas, 1); only the executor goes to 0.
            proposal = Proposal.scale(1, proposal.reason, **proposal.details)
        return proposal, new_state

    def _hpa_inputs(
        self, obs: Observation, values: list[float | None], failures: tuple[int, ...]
    ) -> tuple[tuple[Metric, ...], dict[str, float]]:
        metrics = tuple(
            Metric(f"extra.keda_{i}", "External", t.threshold, t.average, t.signal)
            for i, t in enumerate(self.triggers)
        )
        seen: dict[str, float] = {}
        fallback = self.params.fallback
        for i, (t, v) in enumerate(zip(self.triggers, values, strict=True)):
            value = v
            if value is None and fallback is not None and self._falls_back(t, failures[i]):
                value = fallback.replicas * t.threshold
            if value is not None:
                seen[f"keda_{i}"] = value
        return metrics, seen

    def _falls_back(self, trigger: Trigger, failures: int) -> bool:
        fallback = self.params.fallback
        return fallback is not None and trigger.average and failures > fallback.failure_threshold


def _with_values(obs: Observation, values: dict[str, float]) -> Observation:
    return replace(obs, extra={**obs.extra, **values})


class KedaFactory(ParamsFactory[KedaParams, KedaPolicy]):
    name = "keda"
    summary = "KEDA ScaledObject: activation 0<->1, cooldown to zero, fallback, then HPA for 1<->N"
    guard_defaults: Mapping[str, Any] = {"min_replicas": 0, "behavior": {}}
    example_spec: Mapping[str, Any] = {
        "metric": "queue_depth",
        "threshold": 5,
        "activation_threshold": 1,
        "cooldown_s": 60,
        "fallback": {"failure_threshold": 2, "replicas": 3},
    }
    params_model, policy_type = KedaParams, KedaPolicy


FACTORY = KedaFactory()
