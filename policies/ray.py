"""`ray`: Ray Serve's default autoscaling policy (target ongoing requests, factors, delays).

In: an Observation with `in_flight` and `queue_depth` (totals over the target; their sum is
Ray's "total ongoing requests": requests executing or queued at replicas plus those queued at
handles waiting for one), `ready_replicas` (Ray's running replicas) and `replicas` (Ray's current
target). `signals` overrides the summed list. Out: a Proposal; only the shared min/max guards
apply by default (Ray's min_replicas/max_replicas). Next stage: `policies.protocol.tick`.

Anchor: ray-project/ray python/ray/serve/autoscaling_policy.py
`replica_queue_length_autoscaling_policy` and `_calculate_desired_num_replicas` (Ray 2.x; newer
releases split the same steps into `_core_replica_queue_length_policy`,
`_apply_scaling_factors`, `_apply_delay_logic` and `_get_cold_start_scale_up_replicas`), with
the defaults of python/ray/serve/config.py `AutoscalingConfig`.
- total = mean of the observed totals in the last `look_back_period_s` (Ray averages the
  metrics its replicas and handles record over the look-back period).
- Cold start: with 0 running replicas, any ongoing request proposes
  max(ceil(1 x upscaling_factor), current target) at once; no request keeps the target.
- error_ratio = total / (target_per_replica x running); factor = upscaling_factor when
  error_ratio >= 1, else downscaling_factor (each defaults to smoothing_factor);
  desired = ceil(running x (1 + (error_ratio - 1) x factor)), minus 1 when the factor left it
  stuck at `running` although ceil(running x error_ratio) < running.
  6 ongoing on 2 running at target 1 with upscaling_factor 0.5: error_ratio 3,
  ceil(2 x (1 + 2 x 0.5)) = 4 (tests/test_ray_traces.py).
- Delays: Ray counts consecutive decisions of one direction every CONTROL_LOOP_INTERVAL_S
  (0.1 s) and acts when the count exceeds int(delay_s / 0.1), i.e. once the run of consistent
  decisions has lasted `delay_s`. Here the run is measured in `now_s` seconds: the policy acts
  at the first decision at least `upscale_delay_s` (`downscale_delay_s`) after the first
  decision of the run, so a delay means the same time at any control interval (rounded up to
  the next tick). A decision at target, the other direction, or an action ends the run.
  A downscale to a count above 0 never goes below 1; 1 -> 0 waits `downscale_to_zero_delay_s`
  when set, else `downscale_delay_s`.

Parameters: `RayParams` (each key's unit, default = Ray's, and bounds). Ray's min_replicas
(default 1) and max_replicas are the shared guards; a proposal is at most 10,000.

Deliberate differences from the anchor:
- Delays are measured in seconds of `now_s`, not counted in 0.1 s decisions (which would make
  them depend on the control interval); Ray's int(delay / 0.1) rounding is not reproduced.
- min/max are applied by the shared guards after the policy (Ray clamps `desired` before its
  delay logic): a run toward a count beyond the bounds proceeds and its result is clamped, so
  the final counts agree but the proposal and reason show the unclamped wish.
- The look-back mean is over the observations (one per tick), not over Ray's 0.5 s metric
  records; the current observation always counts.
- A missing signal holds and ends the current run of decisions (Ray would average whatever
  metrics it still has).
- Deprecated `upscale_smoothing_factor` / `downscale_smoothing_factor`, `initial_replicas`,
  `metrics_interval_s` and `aggregation_function` (mean only) are not accepted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import Field, field_validator, model_validator

from policies.hpa import check_signal
from policies.observation import Observation
from policies.params import ParamsFactory, ParamsPolicy
from policies.policy import JSON, Proposal
from policies.spec import MAX_FACTOR, MAX_QUANTITY, MAX_REPLICAS, MAX_WINDOW_S, StrictModel

DEFAULT_TARGET_ONGOING_REQUESTS = 2.0  # ray.serve._private.constants


class RayParams(StrictModel):
    """`ray`'s spec keys; defaults are Ray's (python/ray/serve/config.py AutoscalingConfig)."""

    target_per_replica: float = Field(
        default=DEFAULT_TARGET_ONGOING_REQUESTS, gt=0, le=MAX_QUANTITY,
        description="Ray's target_ongoing_requests: ongoing requests per running replica",
    )  # fmt: skip
    signals: list[str] = Field(
        default=["in_flight", "queue_depth"], min_length=1,
        description="Observation signals summed into Ray's total ongoing requests",
    )  # fmt: skip
    look_back_period_s: float = Field(
        default=30.0, gt=0, le=MAX_WINDOW_S,
        description="seconds of observations averaged into the total",
    )  # fmt: skip
    smoothing_factor: float = Field(
        default=1.0, gt=0, le=MAX_FACTOR,
        description="dimensionless; the up and down factors when those are unset",
    )  # fmt: skip
    upscaling_factor: float | None = Field(
        default=None, gt=0, le=MAX_FACTOR,
        description="dimensionless multiplier on a scale-up step (unset: smoothing_factor)",
    )  # fmt: skip
    downscaling_factor: float | None = Field(
        default=None, gt=0, le=MAX_FACTOR,
        description="dimensionless multiplier on a scale-down step (unset: smoothing_factor)",
    )  # fmt: skip
    upscale_delay_s: float = Field(
        default=30.0, ge=0, le=MAX_WINDOW_S,
        description="seconds a run of upscale decisions lasts before it acts",
    )  # fmt: skip
    downscale_delay_s: float = Field(
        default=600.0, ge=0, le=MAX_WINDOW_S,
        description="seconds a run of downscale decisions lasts before it acts",
    )  # fmt: skip
    downscale_to_zero_delay_s: float | None = Field(
        default=None, ge=0, le=MAX_WINDOW_S,
        description="seconds before 1 -> 0 (unset: downscale_delay_s)",
    )  # fmt: skip

    @field_validator("signals")
    @classmethod
    def _known_signals(cls, value: list[str]) -> list[str]:
        for name in value:
            check_signal(name)
        return value

    @model_validator(mode="after")
    def _distinct_signals(self) -> RayParams:
        if len(set(self.signals)) != len(self.signals):
            raise ValueError(f"signals: must not repeat a signal (got {self.signals!r})")
        return self


@dataclass(frozen=True, slots=True)
class RayState:
    samples: tuple[tuple[float, float], ...] = ()  # (now_s, total ongoing) in the look-back
    direction: int = 0  # +1 a run of upscale decisions, -1 of downscale decisions, 0 none
    run_since_s: float | None = None  # now_s of the run's first decision


@dataclass(frozen=True)
class RayPolicy(ParamsPolicy[RayParams]):
    params: RayParams
    name: str = "ray"
    pauses_at_zero = False

    @property
    def scale_down_window_s(self) -> float:
        """One scale-down window (a takeover that lost history holds this long)."""
        return self.params.downscale_delay_s

    @property
    def required_signals(self) -> frozenset[str]:
        return frozenset(self.params.signals)

    @property
    def up_factor(self) -> float:
        """AutoscalingConfig.get_upscaling_factor."""
        return self.params.upscaling_factor or self.params.smoothing_factor

    @property
    def down_factor(self) -> float:
        return self.params.downscaling_factor or self.params.smoothing_factor

    def initial_state(self) -> RayState:
        return RayState()

    def dump_state(self, state: RayState) -> JSON:
        return {
            "samples": [list(s) for s in state.samples],
            "direction": state.direction,
            "run_since_s": state.run_since_s,
        }

    def load_state(self, data: JSON) -> RayState:
        since = data["run_since_s"]
        return RayState(
            samples=tuple((float(t), float(v)) for t, v in data["samples"]),
            direction=int(data["direction"]),
            run_since_s=None if since is None else float(since),
        )

    def decide(self, obs: Observation, state: RayState) -> tuple[Proposal, RayState]:
        signals = self.params.signals
        values = [obs.signal(s) for s in signals]
        if any(v is None for v in values):
            missing = ", ".join(s for s, v in zip(signals, values, strict=True) if v is None)
            return Proposal.hold(f"MissingSignal: {missing} missing; holding"), RayState(
                self._recent(state.samples, obs.now_s)
            )
        now_total = math.fsum(v for v in values if v is not None)
        samples = (*self._recent(state.samples, obs.now_s), (obs.now_s, now_total))
        total = math.fsum(v for _, v in samples) / len(samples)
        state = RayState(samples, state.direction, state.run_since_s)
        running, target = obs.ready_replicas, obs.replicas
        if running == 0:  # the cold-start fast path
            if total > 0:
                up = max(math.ceil(1 * self.up_factor), target)
                why = f"ColdStart: {total:g} ongoing request(s) at 0 running replicas"
                return Proposal.scale(up, why, total_ongoing_requests=total), state
            why = "NoRunningReplicas: no ongoing request; keeping the current target"
            return Proposal.scale(target, why, total_ongoing_requests=total), state
        desired, ratio = self._desired(total, running)
        details = {"total_ongoing_requests": total, "error_ratio": ratio, "desired": desired}
        return self._delay(desired, target, obs.now_s, state, details)

    def _recent(
        self, samples: tuple[tuple[float, float], ...], now_s: float
    ) -> tuple[tuple[float, float], ...]:
        """The samples strictly after now - look_back_period_s (Ray's window_average)."""
        start = now_s - self.params.look_back_period_s
        return tuple(s for s in samples if s[0] > start)

    def _desired(self, total: float, running: int) -> tuple[int, float]:
        """_calculate_desired_num_replicas, without Ray's min/max clamp (the guards do it)."""
        error_ratio = total / (self.params.target_per_replica * running)
        factor = self.up_factor if error_ratio >= 1 else self.down_factor
        smoothed = 1 + (error_ratio - 1) * factor
        # at most MAX_REPLICAS: a target of 1e-300 makes the ratio infinite
        desired = math.ceil(min(running * smoothed, MAX_REPLICAS))
        if error_ratio < 1 and math.ceil(running * error_ratio) < running and desired == running:
            desired -= 1  # stuck by the factor although traffic allows a downscale
        return desired, error_ratio

    def _delay(
        self, desired: int, target: int, now_s: float, state: RayState, details: dict[str, Any]
    ) -> tuple[Proposal, RayState]:
        """Ray's decision counter, with the run measured in seconds of now_s."""
        if desired == target:
            why = f"AtTarget: {desired} replicas wanted, as many as the target"
            return Proposal.scale(target, why, **details), RayState(state.samples)
        direction = 1 if desired > target else -1
        since = state.run_since_s if state.direction == direction else None
        since = now_s if since is None else since
        p = self.params
        if direction > 0:
            key, delay = "upscale_delay_s", p.upscale_delay_s
        elif target == 1 and p.downscale_to_zero_delay_s is not None:
            key, delay = "downscale_to_zero_delay_s", p.downscale_to_zero_delay_s
        else:
            key, delay = "downscale_delay_s", p.downscale_delay_s
        if direction < 0 and target != 1:
            desired = max(1, desired)  # only 1 -> 0 goes to zero
        waited = now_s - since
        word = "Upscale" if direction > 0 else "Downscale"
        if waited >= delay:
            why = f"{word}: {desired} replicas wanted for {waited:g} s (>= {key} {delay:g})"
            return Proposal.scale(desired, why, **details), RayState(state.samples)
        why = f"{word}Delay: {desired} replicas wanted for {waited:g} s of {key} {delay:g}"
        return Proposal.scale(target, why, **details), RayState(state.samples, direction, since)


class RayFactory(ParamsFactory[RayParams, RayPolicy]):
    name = "ray"
    summary = "Ray Serve default policy: target ongoing requests per replica, factors, delays"
    guard_defaults: Mapping[str, Any] = {"min_replicas": 1}
    example_spec: Mapping[str, Any] = {
        "target_per_replica": 5,
        "upscale_delay_s": 30,
        "downscale_delay_s": 120,
        "downscale_to_zero_delay_s": 300,
        "upscaling_factor": 1.5,
        "downscaling_factor": 0.5,
    }
    params_model, policy_type = RayParams, RayPolicy


FACTORY = RayFactory()
