"""`pid`: a PID controller that holds one signal at its target, with replicas as the output.

Anchor: none exact; the textbook PID (Astrom & Hagglund, "Advanced PID Control": anti-windup,
derivative on the measurement). With kp = kd = 0 and ki = 1 / interval_s, its integral step on
a per-replica signal is close to HPA's own rule, desired = current x observed / target.

In: an Observation carrying `signal`. Out: a Proposal in replicas, the controller's terms in
`details` (error, level, p_term, d_term, output, what the integral did); the shared guards
(min/max, rate limits, ...) do the rest. Worked examples: tests/test_pid_traces.py.

Spec keys: `PIDParams` (each key's unit, default and bounds); `signal` and `target` are
required, e.g. `signal: latency_p95_s, target: 2.0` (seconds).

The controller, exactly:
- error: e = m / target - 1, dimensionless (+0.5 is 50 % above target); m is the measurement.
- output: desired = ceil(level x (1 + kp x e + kd x slope / target)), at least 1, and never
  against the error's sign (above target never proposes fewer replicas than now, below target
  never more).
- `level` (replicas, a float in the state) is the integral term. It starts at the current
  count; over a step of dt seconds it becomes level x exp(ki x e x dt).
Why `level x (1 + u)` and not `current x (1 + u)` or `current + u`: a relative output keeps the
gains independent of the fleet size (50 % over target asks for the same relative change at 2
or at 200 replicas; `current + u` needs gains in replicas, retuned per fleet). The base is the
controller's own level, not the current count: multiplying the current count again every tick
integrates the P term (that is HPA's rule: pure integral action), and an I term on top would
integrate twice; a float level also keeps the fraction an integer count rounds away (a 0.5 %
step per tick never moves 10 replicas). The integral is exponential so that it composes over
any split of time: at a steady error, 30 steps of 2 s give the level 4 steps of 15 s give.
Like any PI, a large P step that the integral has not caught up with is partly undone when the
error changes sign; keep kp modest (about ki x dead_time_s) or add scale-down stabilization.
- derivative on the measurement, filtered: slope <- a x slope + (1 - a) x (m - previous m) / dt
  with a = exp(-dt / derivative_filter_s), dt from `now_s` differences; slope starts at 0. A
  step in m then moves the D term by at most kd x step / (derivative_filter_s x target),
  whether ticks are 2 s or 15 s apart, and a ramp gives the same slope for any split of time.
  A changed target (a new spec resuming a saved state) does not kick.
- within the tolerance the level neither integrates nor tracks (no drift while the count holds).
- anti-windup: (1) clamping: the level stays within [max(min_replicas, 1), max_replicas] of the
  outer guards (received through `with_guards`); (2) conditional integration: when the count in
  effect is not the one the policy proposed last (a guard limited it, another member of `max_of`
  won, someone scaled by hand), the level does not integrate further in the direction the count
  did not follow (count below the proposal while e > 0, or above it while e < 0); (3) tracking:
  a level below a count observed to be too small (e > tolerance) rises to that count, and a
  level above a count observed to be too large (e < -tolerance) falls to it, before integrating.
- dead time: when `replicas` differs from the previous tick's (a change by anyone), then while
  now_s < that tick's now_s + dead_time_s the level is frozen (no integration, no tracking: the
  error still shows the old count) and no scale-down is proposed (the current count is, reason
  DeadTime). A scale-up is still proposed: it comes from the P and D terms, which react to the
  present error only, never to an accumulation of stale errors.
- a missing signal holds and leaves the controller as it was; the next sample integrates at
  most `max_step_s`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from pydantic import Field, field_validator

from policies.guards import Guards
from policies.hpa import check_signal
from policies.observation import Observation
from policies.params import ParamsFactory, ParamsPolicy
from policies.policy import JSON, Proposal
from policies.spec import MAX_FACTOR, MAX_QUANTITY, MAX_WINDOW_S, StrictModel

# The level's ceiling when the policy runs without guards (not through `autoscaler`).
UNBOUNDED_LEVEL = 1e6
_ROUNDING_SLACK = 1e-9  # ceil(10.000000001) is 10: float noise is not a replica


class PIDParams(StrictModel):
    """`pid`'s spec keys."""

    signal: str = Field(description="an Observation signal or extra.<name>, e.g. latency_p95_s")
    target: float = Field(gt=0, le=MAX_QUANTITY, description="in the signal's own units")
    per_replica: bool = Field(
        default=False,
        description="measure signal / ready_replicas (for totals such as in_flight); "
        "with no ready replica the policy holds",
    )
    kp: float = Field(
        default=0.2, ge=0, le=MAX_FACTOR, description="proportional gain, dimensionless"
    )
    ki: float = Field(default=0.02, ge=0, le=MAX_FACTOR, description="integral gain, per second")
    kd: float = Field(default=0.0, ge=0, le=MAX_WINDOW_S, description="derivative gain, seconds")
    derivative_filter_s: float = Field(
        default=10.0, ge=0, le=MAX_WINDOW_S,
        description="seconds, the derivative's low-pass time constant (0: no filter)",
    )  # fmt: skip
    dead_time_s: float = Field(
        default=60.0, ge=0, le=MAX_WINDOW_S,
        description="seconds a change of the replica count takes to show in the signal",
    )  # fmt: skip
    tolerance: float = Field(
        default=0.05, ge=0, le=MAX_FACTOR,
        description="an |error| (dimensionless) at or below it proposes the current count",
    )  # fmt: skip
    max_step_s: float = Field(
        default=60.0, gt=0, le=MAX_WINDOW_S,
        description="seconds, the longest step the integral takes at once (restarts, gaps)",
    )  # fmt: skip

    _known_signal = field_validator("signal")(check_signal)


@dataclass(frozen=True, slots=True)
class PIDState:
    level: float | None = None  # replicas; None until the first sample
    last_sample_s: float | None = None
    last_value: float | None = None  # the raw measurement m at last_sample_s
    slope: float = 0.0  # the filtered dm/dt, signal units per second
    last_replicas: int | None = None
    last_change_s: float | None = None  # when `replicas` last differed from the tick before
    last_proposal: int | None = None


@dataclass(frozen=True)
class PIDPolicy(ParamsPolicy[PIDParams]):
    params: PIDParams
    min_replicas: int = 0  # from the outer guards, through with_guards
    max_replicas: int | None = None
    name: str = "pid"
    pauses_at_zero = False

    @property
    def required_signals(self) -> frozenset[str]:
        return frozenset({self.params.signal})

    def with_guards(self, guards: Guards) -> PIDPolicy:
        return replace(self, min_replicas=guards.min_replicas, max_replicas=guards.max_replicas)

    def initial_state(self) -> PIDState:
        return PIDState()

    def dump_state(self, state: PIDState) -> JSON:
        return {
            "level": state.level,
            "last_sample_s": state.last_sample_s,
            "last_value": state.last_value,
            "slope": state.slope,
            "last_replicas": state.last_replicas,
            "last_change_s": state.last_change_s,
            "last_proposal": state.last_proposal,
        }

    def load_state(self, data: JSON) -> PIDState:
        def num(key: str) -> float | None:
            return None if data[key] is None else float(data[key])

        def count(key: str) -> int | None:
            return None if data[key] is None else int(data[key])

        return PIDState(
            level=num("level"),
            last_sample_s=num("last_sample_s"),
            last_value=num("last_value"),
            slope=float(data["slope"]),
            last_replicas=count("last_replicas"),
            last_change_s=num("last_change_s"),
            last_proposal=count("last_proposal"),
        )

    def measure(self, obs: Observation) -> tuple[float | None, str]:
        value = obs.signal(self.params.signal)
        if value is None:
            return None, f"MissingSignal: {self.params.signal} missing; holding"
        if not self.params.per_replica:
            return value, ""
        if obs.ready_replicas == 0:
            return None, "NoReadyReplicas: per_replica needs a ready replica; holding"
        return value / obs.ready_replicas, ""

    def decide(self, obs: Observation, state: PIDState) -> tuple[Proposal, PIDState]:
        current, now = obs.replicas, obs.now_s
        changed = state.last_replicas is not None and current != state.last_replicas
        change_s = now if changed else state.last_change_s
        ticked = replace(state, last_replicas=current, last_change_s=change_s, last_proposal=None)
        measured, why = self.measure(obs)
        if measured is None:
            return Proposal.hold(why), ticked

        p = self.params
        error = measured / p.target - 1.0
        dt = 0.0 if state.last_sample_s is None else max(0.0, now - state.last_sample_s)
        dead_until = None if change_s is None else change_s + p.dead_time_s
        in_dead_time = dead_until is not None and now < dead_until
        level, integral = self._level(state, current, error, dt, in_dead_time)

        slope = self._slope(state, measured, dt)
        # A zero gain is no term, even on an infinite error (a target of 1e-300).
        d_term = p.kd * slope / p.target if p.kd else 0.0
        p_term = p.kp * error if p.kp else 0.0
        output = level * (1.0 + p_term + d_term)
        if math.isnan(output):  # P and D both infinite, in opposite directions: no change
            output = level
        bounded = min(max(output, 0.0), UNBOUNDED_LEVEL * 10)
        desired = max(1, math.ceil(bounded - _ROUNDING_SLACK))
        # Never against the error's sign: above target never proposes fewer replicas.
        desired = max(desired, current) if error > 0 else min(desired, current)

        details = {
            "measurement": measured,
            "error": error,
            "level": level,
            "p_term": p_term,
            "d_term": d_term,
            "output": output,
            "integral": integral,
        }
        shown = f"{p.signal}{' per ready replica' if p.per_replica else ''} {measured:.4g}"
        if abs(error) <= p.tolerance:
            reason = f"WithinTolerance: {shown} within {p.tolerance:.0%} of target {p.target:g}"
            desired = current
        elif in_dead_time and desired < current:
            reason = (
                f"DeadTime: replicas changed at {change_s:.3f}; no scale-down before "
                f"{dead_until:.3f} (dead_time_s {p.dead_time_s:g})"
            )
            desired = current
        else:
            side = "above" if error > 0 else "below"
            reason = f"{shown} {side} target {p.target:g} (error {error:+.1%})"
        new_state = replace(
            ticked,
            level=level,
            last_sample_s=now,
            last_value=measured,
            slope=slope,
            last_proposal=desired,
        )
        return Proposal.scale(desired, reason, **details), new_state

    def _slope(self, state: PIDState, measured: float, dt: float) -> float:
        """The filtered derivative of the measurement (signal units per second)."""
        if state.last_value is None or dt <= 0:
            return state.slope
        raw = (measured - state.last_value) / dt
        if not math.isfinite(raw):  # a step over a subnormal dt
            return state.slope
        tf = self.params.derivative_filter_s
        keep = math.exp(-dt / tf) if tf > 0 else 0.0
        return keep * state.slope + (1.0 - keep) * raw

    def _level(
        self, state: PIDState, current: int, error: float, dt: float, frozen: bool
    ) -> tuple[float, str]:
        """The integral term after this step, and what it did (for `details`)."""
        low = float(max(self.min_replicas, 1))
        high = float(self.max_replicas) if self.max_replicas is not None else UNBOUNDED_LEVEL
        if state.level is None:
            return min(max(float(current), low), high), "started at the current count"
        # Clamped on every path: a resumed state may meet a lower max_replicas.
        level = min(max(state.level, low), high)
        tol = self.params.tolerance
        if frozen:
            return level, "frozen: dead time"
        if abs(error) <= tol:
            return level, "held: within tolerance"
        how = "integrating"
        if error > tol and level < current:
            level, how = float(current), "tracked up to the current count, integrating"
        elif error < -tol and level > current:
            # never below the floor: at 0 replicas a level of 0 has no logarithm
            level, how = max(float(current), low), "tracked down to the current count, integrating"
        last = state.last_proposal
        if last is not None and ((current < last and error > 0) or (current > last and error < 0)):
            return min(max(level, low), high), "frozen: the count did not follow the proposal"
        span = min(dt, self.params.max_step_s)
        ki = self.params.ki
        step = ki * error * span if ki and span else 0.0  # 0 x inf would be NaN
        # In log space, so that a huge error cannot overflow exp() before the clamp.
        log_level = min(math.log(level) + step, math.log(high))
        level = max(math.exp(log_level), low)
        if level >= high:
            how = "clamped at max_replicas"
        elif level <= low and step < 0:
            how = "clamped at the minimum"
        return level, how


class PIDFactory(ParamsFactory[PIDParams, PIDPolicy]):
    name = "pid"
    summary = "PID on a normalized error (e.g. latency_p95_s / target - 1), output in replicas"
    guard_defaults: Mapping[str, Any] = {}
    example_spec: Mapping[str, Any] = {
        "signal": "latency_p95_s",
        "target": 1.0,
        "kp": 0.5,
        "ki": 0.02,
        "kd": 5.0,
        "dead_time_s": 30,
    }
    params_model, policy_type = PIDParams, PIDPolicy


FACTORY = PIDFactory()
