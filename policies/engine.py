"""`tick`: the one function both shells call, and `Autoscaler`, its stateful convenience.

In: an Observation, the saved state, a Policy and its Guards. Out: a DecisionRecord (the
final replica count, why, and every guard that changed it) and the new state. `tick` reads no
clock: `obs.now_s` is the only time it knows. The controller (controller/) and the simulator
(simulator/) call it every control interval and act on `record.replicas`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from policies import guards as g
from policies.observation import Observation
from policies.policy import JSON, Policy, Proposal
from policies.spec import SpecError

STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """Why the autoscaler chose `replicas` at `now_s`. JSON-ready through `to_dict`."""

    policy: str
    now_s: float
    inputs: Mapping[str, Any]
    current_replicas: int
    proposal: int | None
    proposal_reason: str
    replicas: int
    reason: str
    guards: tuple[g.GuardStep, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)
    applies: bool = True

    @property
    def changed(self) -> bool:
        return self.replicas != self.current_replicas

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "now_s": self.now_s,
            "inputs": dict(self.inputs),
            "current_replicas": self.current_replicas,
            "proposal": self.proposal,
            "proposal_reason": self.proposal_reason,
            "guards": [step.to_dict() for step in self.guards],
            "replicas": self.replicas,
            "reason": self.reason,
            "details": dict(self.details),
            "applies": self.applies,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DecisionRecord:
        steps = tuple(g.GuardStep(**step) for step in data.get("guards", ()))
        return cls(
            policy=data["policy"],
            now_s=float(data["now_s"]),
            inputs=dict(data["inputs"]),
            current_replicas=int(data["current_replicas"]),
            proposal=data["proposal"],
            proposal_reason=data["proposal_reason"],
            replicas=int(data["replicas"]),
            reason=data["reason"],
            guards=steps,
            details=dict(data.get("details", {})),
            applies=bool(data.get("applies", True)),
        )


@dataclass(frozen=True, slots=True)
class EngineState:
    """Everything `tick` remembers: the policy's state and the guards' history."""

    policy_state: Any
    guards: g.GuardState = field(default_factory=g.GuardState)
    last_now_s: float | None = None
    # Dry-run/shadow autoscalers (applies=False) remember the count they would have set.
    hypothetical_replicas: int | None = None


def initial_state(policy: Policy) -> EngineState:
    return EngineState(policy_state=policy.initial_state())


def dump_state(policy: Policy, state: EngineState) -> dict[str, JSON]:
    return {
        "version": STATE_VERSION,
        "policy": policy.name,
        "policy_state": policy.dump_state(state.policy_state),
        "guards": state.guards.to_json(),
        "last_now_s": state.last_now_s,
        "hypothetical_replicas": state.hypothetical_replicas,
    }


def load_state(policy: Policy, data: Mapping[str, Any]) -> EngineState:
    where = "state"
    if not isinstance(data, Mapping):
        raise SpecError(
            where,
            [("", f"must be the mapping Autoscaler.state returned (got {type(data).__name__})")],
        )
    version = data.get("version")
    if version != STATE_VERSION:
        raise SpecError(where, [("version", f"must be {STATE_VERSION} (got {version!r})")])
    if data.get("policy") != policy.name:
        raise SpecError(
            where,
            [("policy", f"was saved by policy {data.get('policy')!r}, not {policy.name!r}")],
        )
    try:
        return EngineState(
            policy_state=policy.load_state(data.get("policy_state")),
            guards=g.GuardState.from_json(data.get("guards") or {}),
            last_now_s=data.get("last_now_s"),
            hypothetical_replicas=data.get("hypothetical_replicas"),
        )
    except (TypeError, ValueError, KeyError) as error:
        raise SpecError(where, [("", f"cannot be read back: {error}")]) from None


def _finish(
    policy: Policy,
    obs: Observation,
    current: int,
    proposal: Proposal,
    replicas: int,
    steps: list[g.GuardStep],
    applies: bool,
) -> DecisionRecord:
    reason = f"{steps[-1].why}" if steps else proposal.reason
    return DecisionRecord(
        policy=policy.name,
        now_s=obs.now_s,
        inputs=obs.to_dict(),
        current_replicas=current,
        proposal=proposal.replicas,
        proposal_reason=proposal.reason,
        replicas=replicas,
        reason=reason,
        guards=tuple(steps),
        details=dict(proposal.details),
        applies=applies,
    )


@dataclass(frozen=True, slots=True)
class Recorded:
    """How a tick recorded its scale event, so `revise` can record what really happened."""

    guards_before: g.GuardState  # the guard state before the event was recorded
    current: int
    now_s: float
    rate_event: bool


def tick(
    obs: Observation,
    state: EngineState,
    policy: Policy,
    guards: g.Guards,
    *,
    applies: bool = True,
) -> tuple[DecisionRecord, EngineState]:
    """Decide once. Pure: the same inputs always give the same record and state."""
    record, new_state, _ = tick_recorded(obs, state, policy, guards, applies=applies)
    return record, new_state


def revise(state: EngineState, recorded: Recorded, applied: int, guards: g.Guards) -> EngineState:
    """`state` as if the last tick had scaled to `applied` (what the actuator really did: the
    current count when a pause, a conflict or an error stopped it, or a capped count). HPA
    records a scale event only once the scale succeeded; so do the behavior rate limits and
    the flap budget here, or a refused scale-up would eat the next real one's budget."""
    if state.hypothetical_replicas is not None:
        return state  # not applying: the policy follows its own count, nothing to revise
    gstate = g.record_scale(
        recorded.current, applied, recorded.now_s, guards, recorded.guards_before,
        rate_event=recorded.rate_event,
    )  # fmt: skip
    return replace(state, guards=gstate)


def tick_recorded(
    obs: Observation,
    state: EngineState,
    policy: Policy,
    guards: g.Guards,
    *,
    applies: bool = True,
) -> tuple[DecisionRecord, EngineState, Recorded | None]:
    """`tick`, and how it recorded the scale event (None when it decided nothing)."""
    if state.last_now_s is not None and obs.now_s < state.last_now_s:
        hold = Proposal.hold(
            f"ClockWentBackwards: now_s {obs.now_s:.3f} is before the last tick "
            f"{state.last_now_s:.3f}; holding"
        )
        current = obs.replicas if applies else (state.hypothetical_replicas or obs.replicas)
        return _finish(policy, obs, current, hold, current, [], applies), state, None

    current = obs.replicas
    seen = obs
    if not applies:
        if state.hypothetical_replicas is not None:
            current = state.hypothetical_replicas
        # The policy believes it is in charge: it sees its own hypothetical count.
        seen = replace(obs, replicas=current)

    gstate = state.guards
    if guards.has_behavior:
        gstate = g.record_initial_recommendation(current, obs.now_s, gstate)
    proposal, policy_state = policy.decide(seen, state.policy_state)
    steps: list[g.GuardStep] = []

    if current == 0 and policy.pauses_at_zero and guards.min_replicas > 0:
        proposal = Proposal.hold(
            "ScalingDisabled: the target is at zero replicas; scaling is disabled until it is not"
        )
        value = current
    elif current > guards.max_replicas or current < guards.min_replicas:
        # Out-of-range corrections bypass stabilization and rate limits (as in HPA).
        value, why = g.clamp(current, guards)
        steps.append(
            g.GuardStep("bounds", current, value, why.replace("Too", "Current replicas: too", 1))
        )
    elif proposal.replicas is None:
        value = current
    else:
        value, gstate, steps = _pipeline(proposal, current, obs, policy, guards, gstate)

    recorded = Recorded(gstate, current, obs.now_s, not proposal.direct)
    gstate = g.record_scale(
        current, value, obs.now_s, guards, gstate, rate_event=not proposal.direct
    )
    new_state = EngineState(
        policy_state=policy_state,
        guards=gstate,
        last_now_s=obs.now_s,
        hypothetical_replicas=None if applies else value,
    )
    return _finish(policy, obs, current, proposal, value, steps, applies), new_state, recorded


def _pipeline(
    proposal: Proposal,
    current: int,
    obs: Observation,
    policy: Policy,
    guards: g.Guards,
    gstate: g.GuardState,
) -> tuple[int, g.GuardState, list[g.GuardStep]]:
    steps: list[g.GuardStep] = []
    assert proposal.replicas is not None
    value = proposal.replicas

    def apply(name: str, new: int, why: str) -> int:
        if new != value:
            steps.append(g.GuardStep(name, value, new, why))
        return new

    if not proposal.direct:
        stabilized, gstate, why = g.stabilize(value, current, obs.now_s, guards, gstate)
        value = apply("stabilization", stabilized, why)
        value = apply("rate_limit", *g.rate_limit(value, current, obs.now_s, guards, gstate))
    value = apply("bounds", *g.clamp(value, guards))
    value = apply("starting_capacity", *g.hold_while_starting(value, current, obs, guards))
    value = apply(
        "missing_data", *g.block_scale_down_on_missing(value, current, obs, policy.required_signals)
    )
    value = apply("flap_budget", *g.flap_guard(value, current, obs.now_s, guards, gstate))
    return value, gstate, steps
