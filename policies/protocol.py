"""`tick` and `commit`: the two functions both shells call, and the state they share.

One protocol, both shells: `tick` proposes (it records no scale event), the shell acts, and
`commit` records what actually happened (applied, capped, refused, failed) as the scale event
the rate limits, windows and flap budget see. In: an Observation, the saved state, a Policy and
its Guards. Out of `tick`: a DecisionRecord (the final replica count, why, and every guard that
changed it) and the new state, holding the proposal until it is committed. Out of `commit`: the
record completed with what was applied, and the state with the scale event recorded. Neither
reads a clock: `obs.now_s` is the only time they know. `resume` picks the history a new leader
or a restarted controller continues from. The controller (controller/) and the simulator
(simulator/) call `tick`, act, then `commit`, every control interval.

A tick that is never committed (the shell crashed between the steps) records nothing: the next
`tick` drops it, which is the fail-safe reading (no scale event means no rate-limit budget
spent, and the next observation shows the real count).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from policies import guards as g
from policies.observation import Observation
from policies.policy import JSON, Policy, Proposal
from policies.spec import SpecError

STATE_VERSION = 1
# The scale-down hold after a gap in the history, for a policy that declares no window of its
# own (no `behavior`, no `scale_down_window_s`): Kubernetes' default downscale stabilization.
DEFAULT_GAP_HOLD_S = float(g.DEFAULT_DOWNSCALE_STABILIZATION_S)


class Outcome(enum.StrEnum):
    """What the shell did with a decision; `commit` records it."""

    APPLIED = "applied"  # the target has the decided count now (or had it already)
    CAPPED = "capped"  # set, but nearer the current count (a max change per tick, a quota)
    REFUSED = "refused"  # not set: a condition forbids it (another autoscaler, not the leader)
    FAILED = "failed"  # the scale call failed


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """Why the autoscaler chose `replicas` at `now_s`, and (once committed) what was applied.

    JSON-ready through `to_dict`."""

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
    # Set by `commit`: what the shell did, the count the target has now, and why when not
    # applied as decided.
    outcome: str | None = None
    applied_replicas: int | None = None
    outcome_reason: str = ""

    @property
    def changed(self) -> bool:
        return self.replicas != self.current_replicas

    def committed(self, outcome: Outcome, applied: int, why: str = "") -> DecisionRecord:
        # The constructor, not dataclasses.replace: this runs once per control interval.
        return DecisionRecord(
            self.policy, self.now_s, self.inputs, self.current_replicas, self.proposal,
            self.proposal_reason, self.replicas, self.reason, self.guards, self.details,
            self.applies, outcome.value, applied, why,
        )  # fmt: skip

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
            "outcome": self.outcome,
            "applied_replicas": self.applied_replicas,
            "outcome_reason": self.outcome_reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DecisionRecord:
        steps = tuple(g.GuardStep(**step) for step in data.get("guards", ()))
        applied = data.get("applied_replicas")
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
            outcome=data.get("outcome"),
            applied_replicas=None if applied is None else int(applied),
            outcome_reason=str(data.get("outcome_reason", "")),
        )


@dataclass(frozen=True, slots=True)
class Pending:
    """A tick's decision awaiting `commit`: the scale event it would record."""

    now_s: float
    current: int
    rate_event: bool  # False for a direct action (KEDA's 0 <-> 1): not a rate-limit event


@dataclass(frozen=True, slots=True)
class EngineState:
    """Everything `tick` remembers: the policy's state and the guards' history."""

    policy_state: Any
    guards: g.GuardState = field(default_factory=g.GuardState)
    last_now_s: float | None = None
    # Dry-run/shadow autoscalers (applies=False) remember the count they would have set.
    hypothetical_replicas: int | None = None
    # The first tick of the history this state holds without a gap (see `resume`).
    since_s: float | None = None
    # The last tick's decision until it is committed; never saved (an uncommitted decision
    # after a restart is one whose outcome nobody knows, so it records nothing).
    pending: Pending | None = None

    def settled(self) -> EngineState:
        """This state without its pending decision (the constructor, not `replace`: `tick`
        calls it every control interval)."""
        if self.pending is None:
            return self
        return self.recorded(self.guards, self.hypothetical_replicas)

    def recorded(self, guards: g.GuardState, hypothetical_replicas: int | None) -> EngineState:
        """The state once a scale event is recorded: new guard history, nothing pending."""
        return EngineState(
            self.policy_state, guards, self.last_now_s, hypothetical_replicas, self.since_s
        )


def initial_state(policy: Policy) -> EngineState:
    return EngineState(policy_state=policy.initial_state())


def dump_state(policy: Policy, state: EngineState) -> dict[str, JSON]:
    return {
        "version": STATE_VERSION,
        "policy": policy.name,
        "policy_state": policy.dump_state(state.policy_state),
        "guards": state.guards.to_json(),
        "last_now_s": state.last_now_s,
        "since_s": state.since_s,
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
        last, since = data.get("last_now_s"), data.get("since_s")
        return EngineState(
            policy_state=policy.load_state(data.get("policy_state")),
            guards=g.GuardState.from_json(data.get("guards") or {}),
            last_now_s=None if last is None else float(last),
            hypothetical_replicas=data.get("hypothetical_replicas"),
            # A state saved before `since_s` existed: its history starts at its last tick.
            since_s=float(since) if since is not None else (None if last is None else float(last)),
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


def tick(
    obs: Observation,
    state: EngineState,
    policy: Policy,
    guards: g.Guards,
    *,
    applies: bool = True,
) -> tuple[DecisionRecord, EngineState]:
    """Decide once; record no scale event (`commit` does). Pure: the same inputs always give
    the same record and state."""
    state = state.settled()  # an uncommitted decision records nothing
    if state.last_now_s is not None and obs.now_s < state.last_now_s:
        hold = Proposal.hold(
            f"ClockWentBackwards: now_s {obs.now_s:.3f} is before the last tick "
            f"{state.last_now_s:.3f}; holding"
        )
        current = obs.replicas if applies else (state.hypothetical_replicas or obs.replicas)
        return _finish(policy, obs, current, hold, current, [], applies), state

    current = obs.replicas
    seen = obs
    if not applies:
        if state.hypothetical_replicas is not None:
            current = state.hypothetical_replicas
        # The policy believes it is in charge: it sees its own hypothetical count.
        seen = obs.with_replicas(current)

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

    new_state = EngineState(
        policy_state=policy_state,
        guards=gstate,
        last_now_s=obs.now_s,
        hypothetical_replicas=None if applies else state.hypothetical_replicas,
        since_s=state.since_s if state.since_s is not None else obs.now_s,
        pending=Pending(obs.now_s, current, rate_event=not proposal.direct),
    )
    return _finish(policy, obs, current, proposal, value, steps, applies), new_state


def commit(
    record: DecisionRecord,
    state: EngineState,
    guards: g.Guards,
    outcome: Outcome | str = Outcome.APPLIED,
    replicas: int | None = None,
    why: str = "",
) -> tuple[DecisionRecord, EngineState]:
    """Record what the shell did with `record` (the last `tick`'s): the scale event from the
    count it saw to `replicas`, the count the target has now. `replicas` defaults to the
    decided count when applied and to the current one otherwise; a capped outcome gives the
    count that was set. HPA stores a scale event only once the scale succeeded; so do the
    rate limits, the windows and the flap budget here, or a refused scale-up would eat the
    next real one's budget. A dry-run or shadow autoscaler (applies=False) commits its own
    hypothetical outcome: the count it now believes the target has."""
    kind = outcome if isinstance(outcome, Outcome) else Outcome(outcome)
    if replicas is None:
        replicas = record.replicas if kind is Outcome.APPLIED else record.current_replicas
    done = record.committed(kind, replicas, why)
    pending = state.pending
    if pending is None or pending.now_s != record.now_s:
        return done, state  # a hold that decided nothing (a clock step), or committed already
    gstate = g.record_scale(
        pending.current, replicas, pending.now_s, guards, state.guards,
        rate_event=pending.rate_event,
    )  # fmt: skip
    hypothetical = state.hypothetical_replicas if record.applies else replicas
    return done, state.recorded(gstate, hypothetical)


def hold_window_s(policy: Policy, guards: g.Guards) -> float:
    """One scale-down window of this policy: its behavior's stabilization window, its own
    `scale_down_window_s` (knative's stable window, ray's downscale delay, ...), the longer of
    the two, or `DEFAULT_GAP_HOLD_S` when it declares neither."""
    windows: list[float] = []
    if guards.scale_down is not None:
        windows.append(float(guards.scale_down.stabilization_window_s))
    own = getattr(policy, "scale_down_window_s", None)
    if isinstance(own, int | float):
        windows.append(float(own))
    return max(windows) if windows else DEFAULT_GAP_HOLD_S


def resume(
    policy: Policy,
    guards: g.Guards,
    own: EngineState | None,
    saved: EngineState | None,
    *,
    now_s: float,
    max_gap_s: float,
) -> tuple[EngineState, str | None]:
    """The history a new leader or a restarted controller continues from, and why scale-down
    is held (None when it is not).

    `own` is what this process decided itself (a standby follows the target on the same
    inputs), `saved` what the last leader saved. The newer one's policy state is kept; the
    guards' histories (recommendations, scale events, direction changes) are joined, which can
    only lengthen a window. When the joined history leaves any stretch of more than `max_gap_s`
    unknown within the last scale-down window (a fresh start, a restart, a takeover from a
    state saved long ago), scale-down is held for one window from `now_s`: a takeover or a
    restart never shortens a window (tests/controller/test_takeover.py)."""
    parts = sorted(
        (s for s in (own, saved) if s is not None and s.last_now_s is not None),
        key=lambda s: s.last_now_s or 0.0,
    )
    window_s = hold_window_s(policy, guards)
    if not parts:
        base = initial_state(policy)
    else:
        base = parts[-1]
        for older in parts[:-1]:
            joined = g.join_history(base.guards, older.guards, after_s=now_s - _longest(guards))
            base = replace(base, guards=joined)
    base = replace(base, pending=None)
    since = _chain_start(parts, max_gap_s)
    newest = parts[-1].last_now_s if parts else None
    held_until = base.guards.hold_down_until_s
    covered = since is not None and (
        since <= now_s - window_s + max_gap_s  # the history reaches back a whole window
        # or it begins with a hold that outlasts whatever came before it (a takeover's)
        or (held_until is not None and held_until >= since + window_s - max_gap_s)
    )
    if covered and newest is not None and now_s - newest <= max_gap_s:
        return replace(base, since_s=since), None
    if window_s <= 0:
        return replace(base, since_s=None), None
    until_s = now_s + window_s
    held = g.hold_scale_down(base.guards, until_s)
    if newest is None:
        unknown = "no history to continue from"
    elif now_s - newest > max_gap_s:
        unknown = f"no history for the last {now_s - newest:.0f} s"
    else:
        unknown = "part of the last window's history is unknown"
    why = f"HistoryGap: {unknown}; scale-down held for {window_s:g} s"
    return replace(base, guards=held, since_s=None), why


def rebase(
    policy: Policy, guards: g.Guards, state: EngineState, *, jump_s: float, now_s: float
) -> tuple[EngineState, str]:
    """`state` after the wall clock stepped by `jump_s` (seconds, either way), and why
    scale-down is held. The guards' history moves by the jump, so every window keeps its
    length in the new time; the policy's own state moves by its `shift_state(state, jump_s)`
    when it has one, and starts afresh otherwise (it holds times this module cannot read); and
    scale-down is held for one window from `now_s`, as after any gap in what is known."""
    shift = getattr(policy, "shift_state", None)
    policy_state = shift(state.policy_state, jump_s) if callable(shift) else policy.initial_state()
    window_s = hold_window_s(policy, guards)
    shifted = g.shift_history(state.guards, jump_s)
    if window_s > 0:
        shifted = g.hold_scale_down(shifted, now_s + window_s)

    def moved(t: float | None) -> float | None:
        return None if t is None else t + jump_s

    new = replace(
        state,
        policy_state=policy_state,
        guards=shifted,
        last_now_s=moved(state.last_now_s),
        since_s=moved(state.since_s),
        pending=None,
    )
    kept = "moved with it" if callable(shift) else "started afresh"
    why = (
        f"ClockJump: the wall clock stepped {jump_s:+.0f} s; the history moved with it, the "
        f"policy's own state {kept}; scale-down held for {window_s:g} s"
    )
    return new, why


def _longest(guards: g.Guards) -> float:
    rules = [r for r in (guards.scale_up, guards.scale_down) if r is not None]
    return float(max((r.stabilization_window_s for r in rules), default=0))


def _chain_start(parts: list[EngineState], max_gap_s: float) -> float | None:
    """Where the history that reaches the newest tick without a gap over `max_gap_s` starts
    (None without any history)."""
    spans = sorted(
        (s.since_s if s.since_s is not None else s.last_now_s or 0.0, s.last_now_s or 0.0)
        for s in parts
    )
    start: float | None = None
    end = 0.0
    for begin, last in spans:  # sorted by start: a new chain starts only after a gap
        if start is None or begin > end + max_gap_s:
            start, end = begin, last
        else:
            end = max(end, last)
    return start


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
    now_s = obs.now_s
    # Each guard in turn; one that changes the value is a step of the record. Written out
    # (no closure, no star-call): this runs every control interval.
    if not proposal.direct:
        new, gstate, why = g.stabilize(value, current, now_s, guards, gstate)
        value = _step(steps, "stabilization", value, new, why)
        new, why = g.rate_limit(value, current, now_s, guards, gstate)
        value = _step(steps, "rate_limit", value, new, why)
    new, why = g.clamp(value, guards)
    value = _step(steps, "bounds", value, new, why)
    new, why = g.hold_while_starting(value, current, obs, guards)
    value = _step(steps, "starting_capacity", value, new, why)
    new, why = g.block_scale_down_on_missing(value, current, obs, policy.required_signals)
    value = _step(steps, "missing_data", value, new, why)
    new, why = g.hold_after_gap(value, current, now_s, gstate)
    value = _step(steps, "history_gap", value, new, why)
    new, why = g.flap_guard(value, current, now_s, guards, gstate)
    value = _step(steps, "flap_budget", value, new, why)
    return value, gstate, steps


def _step(steps: list[g.GuardStep], name: str, value: int, new: int, why: str) -> int:
    """`new`, noting guard `name`'s step in `steps` when it changed `value`."""
    if new != value:
        steps.append(g.GuardStep(name, value, new, why))
    return new
