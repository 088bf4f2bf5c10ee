"""`max_of` and `floor`: policies made of policies.

In: member specs (each a policy spec without guard keys, resolved by `policies.registry.resolve`,
so a built-in name, an entry point or "module:attr"), and each tick one Observation that every
member sees. Out: one Proposal, with `details.winner` (which member decided) and
`details.members` (each member's proposal or bounds, reason and details). The outer spec's
guards apply once, to the combined proposal; members' own guard defaults do not apply.

Spec forms:
- `{policy: max_of, policies: [<spec>, <spec>, ...], max_replicas: 20}`: at least one member.
- `{policy: floor, base: <spec>, floor: <spec>, max_replicas: 20}`: max(base, floor), e.g. a
  reactive `hpa` base over a `schedule` (or, later, a `predictive` forecast) floor.
Guard keys inside a member are an error naming the path (`policies[1].max_replicas: guard keys
belong to the outer spec`). Guard defaults of both are `{}`: only min/max unless the outer spec
sets `behavior` (`behavior: {}` gives Kubernetes' HPA defaults).

Semantics, the same for both (`floor` is `max_of` with its two members named base and floor):
- every member decides every tick, so its state advances as if it ran alone.
- proposing members: the largest proposal wins; on a tie a proposal through the guarded path
  beats a direct one, then the earlier member.
- holds: a member's hold counts as the current replica count. The combination scales up on the
  others but never down while a member holds (HPA's rule for a metric it cannot read); when
  every proposing member holds, the combination holds. A member with nothing to say that must
  not block scale-down should propose a number (a forecast floor with no history: 0), not hold.
- bounds members: a member with `replica_bounds(obs)` (`schedule`) is not a proposer; its min is
  a floor and its max a ceiling on the winning proposal (several: max of mins, min of maxes, max
  wins a conflict). When every proposer holds, the bounds still move a count outside them.
- direct proposals (KEDA's executor 0 <-> 1): the combined proposal is direct only when the
  winner's is and no bound changed it; then it skips stabilization and rate limits as it would
  alone. A direct scale to 0 therefore happens only when no member wants more and none holds.
- `required_signals`: the union (never scale down while any member's signal is missing, which
  is what the hold rule says too); `pauses_at_zero`: any member's.
- state: `max_of` a JSON list of member states in order, `floor` `{"base": ..., "floor": ...}`.
- `spec()` lists each member as `{"policy": <name as written>, **member.spec()}`.
- inner policies with a `with_guards` hook receive the outer guards (HPA tolerances from
  `behavior`, KEDA's min_replicas, PID's min/max).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

from pydantic import Field

from policies.guards import Guards
from policies.observation import Observation
from policies.params import ParamsFactory
from policies.policy import JSON, Policy, Proposal
from policies.registry import resolve
from policies.spec import GUARD_KEYS, SpecError, StrictModel

GUARD_KEY_ERROR = "guard keys belong to the outer spec"


@runtime_checkable
class BoundsPolicy(Protocol):
    """A member that bounds the others instead of proposing (the `schedule` policy)."""

    def replica_bounds(self, obs: Observation) -> tuple[int, int | None, str]: ...


class MaxOfParams(StrictModel):
    """`max_of`'s spec keys."""

    policies: list[dict[str, Any]] = Field(
        min_length=1, description="member specs (policy keys only); the largest proposal wins"
    )


class FloorParams(StrictModel):
    """`floor`'s spec keys."""

    base: dict[str, Any] = Field(description="the proposing member's spec, e.g. an hpa")
    floor: dict[str, Any] = Field(description="the floor member's spec, e.g. a schedule")


@dataclass(frozen=True, slots=True)
class Member:
    label: str  # where it is in the spec: "policies[1]", "base", "floor"
    ref: str  # the policy name as written
    policy: Policy

    def spec(self) -> dict[str, Any]:
        return {"policy": self.ref, **self.policy.spec()}

    def with_guards(self, guards: Guards) -> Member:
        bind = getattr(self.policy, "with_guards", None)
        if not callable(bind):
            return self
        bound: Policy = bind(guards)
        return replace(self, policy=bound)


def build_member(data: Mapping[str, Any], label: str) -> Member:
    """Resolve and build one member spec, or raise SpecError with paths under `label`."""
    if "policy" not in data:
        raise SpecError("", [(f"{label}.policy", "required key is missing; e.g. policy: hpa")])
    ref = data["policy"]
    if not isinstance(ref, str) or not ref:
        raise SpecError(
            "", [(f"{label}.policy", f"must be a policy name or 'module:attr' (got {ref!r})")]
        )
    guards = sorted(k for k in data if k in GUARD_KEYS)
    if guards:
        raise SpecError("", [(f"{label}.{key}", GUARD_KEY_ERROR) for key in guards])
    try:
        factory = resolve(ref)
        policy = factory.from_spec({k: v for k, v in data.items() if k != "policy"})
    except SpecError as error:
        field = {"policy": f"{label}.policy"}.get(error.where, label)
        raise SpecError(
            "", [(f"{field}.{path}" if path else field, msg) for path, msg in error.problems]
        ) from None
    return Member(label, ref, policy)


def build_members(specs: Sequence[tuple[str, Mapping[str, Any]]], where: str) -> tuple[Member, ...]:
    members: list[Member] = []
    problems: list[tuple[str, str]] = []
    for label, data in specs:
        try:
            members.append(build_member(data, label))
        except SpecError as error:
            problems.extend(error.problems)
    if problems:
        raise SpecError(where, problems)
    return tuple(members)


def _plain(value: Any) -> Any:
    """Details as plain JSON types (members may nest read-only mappings)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class _Bounds:
    low: int = 0
    high: int | None = None
    low_from: str = ""  # the member's label
    high_from: str = ""
    low_why: str = ""  # "floor schedule (rules[0] at mon 08:00 Europe/Amsterdam)"
    high_why: str = ""


def _bounds(rows: list[tuple[Member, tuple[int, int | None, str]]]) -> _Bounds:
    out = _Bounds()
    for member, (low, high, why) in rows:
        shown = f"{member.label} {member.policy.name} ({why})"
        if low > out.low:
            out = replace(out, low=low, low_from=member.label, low_why=shown)
        if high is not None and (out.high is None or high < out.high):
            out = replace(out, high=high, high_from=member.label, high_why=shown)
    if out.high is not None and out.low > out.high:  # the max wins, as inside a schedule
        out = replace(out, low=out.high, low_from=out.high_from, low_why=out.high_why)
    return out


@dataclass(frozen=True, slots=True)
class _Sorted:
    """The members' answers this tick, sorted by kind, and one row per member for details."""

    rows: list[dict[str, Any]]
    bounds: _Bounds
    scaled: list[tuple[int, Member, Proposal]]
    held: list[tuple[Member, Proposal]]


def _sort(members: Sequence[Member], proposals: Sequence[Proposal], obs: Observation) -> _Sorted:
    rows: list[dict[str, Any]] = []
    bounded: list[tuple[Member, tuple[int, int | None, str]]] = []
    scaled: list[tuple[int, Member, Proposal]] = []
    held: list[tuple[Member, Proposal]] = []
    for i, (member, proposal) in enumerate(zip(members, proposals, strict=True)):
        row: dict[str, Any] = {"member": member.label, "policy": member.policy.name}
        if isinstance(member.policy, BoundsPolicy):
            low, high, why = member.policy.replica_bounds(obs)
            bounded.append((member, (low, high, why)))
            row.update(min_replicas=low, max_replicas=high, reason=why)
        else:
            row.update(replicas=proposal.replicas, reason=proposal.reason, direct=proposal.direct)
            row["details"] = _plain(proposal.details)
            if proposal.replicas is None:
                held.append((member, proposal))
            else:
                scaled.append((i, member, proposal))
        rows.append(row)
    return _Sorted(rows, _bounds(bounded), scaled, held)


def _winner(answers: _Sorted, current: int) -> tuple[tuple[Member, Proposal] | None, str]:
    """The winning proposal, or None with the reason the proposers hold."""
    held = answers.held
    if answers.scaled:
        _, member, best = max(
            answers.scaled, key=lambda x: (x[2].replicas or 0, not x[2].direct, -x[0])
        )
        if not held or (best.replicas or 0) >= current:
            return (member, best), ""
        names = ", ".join(f"{m.label} {m.policy.name}" for m, _ in held)
        return None, f"{names} holds ({held[0][1].reason}) and the rest would scale down; holding"
    if held:
        return None, "every member holds: " + "; ".join(f"{m.label}: {p.reason}" for m, p in held)
    return None, "only bounds members"


def combine(members: Sequence[Member], proposals: Sequence[Proposal], obs: Observation) -> Proposal:
    """The combined proposal; the rules are in the module docstring."""
    answers = _sort(members, proposals, obs)
    bounds = answers.bounds
    winner, why = _winner(answers, obs.replicas)

    def out(replicas: int | None, reason: str, who: str, direct: bool = False) -> Proposal:
        details = {"winner": who, "members": answers.rows}
        if replicas is None:
            return Proposal.hold(reason, **details)
        make = Proposal.direct_scale if direct else Proposal.scale
        return make(replicas, reason, **details)

    value = obs.replicas if winner is None else (winner[1].replicas or 0)
    if value < bounds.low:
        return out(bounds.low, f"raised to min {bounds.low} by {bounds.low_why}", bounds.low_from)
    if bounds.high is not None and value > bounds.high:
        why = f"capped at max {bounds.high} by {bounds.high_why}"
        return out(bounds.high, why, bounds.high_from)
    if winner is None:
        if bounds.low_from or bounds.high_from:
            why += f"; within bounds min {bounds.low}, max {bounds.high}"
        return out(None, why, "")
    member, best = winner
    reason = f"{member.label} {member.policy.name} wins with {value}: {best.reason}"
    return out(value, reason, member.label, best.direct)


@dataclass(frozen=True)
class CombinedPolicy:
    """`max_of` (members listed) or `floor` (members named base and floor)."""

    name: str
    members: tuple[Member, ...]
    keyed: bool  # floor: spec and state are keyed by label; max_of: lists

    @property
    def scale_down_window_s(self) -> float | None:
        """The longest window any member declares (None when none declares one)."""
        windows = [getattr(m.policy, "scale_down_window_s", None) for m in self.members]
        found = [float(w) for w in windows if isinstance(w, int | float)]
        return max(found) if found else None

    @property
    def required_signals(self) -> frozenset[str]:
        return frozenset().union(*(m.policy.required_signals for m in self.members))

    @property
    def pauses_at_zero(self) -> bool:
        return any(m.policy.pauses_at_zero for m in self.members)

    def spec(self) -> dict[str, Any]:
        if self.keyed:
            return {m.label: m.spec() for m in self.members}
        return {"policies": [m.spec() for m in self.members]}

    def with_guards(self, guards: Guards) -> CombinedPolicy:
        return replace(self, members=tuple(m.with_guards(guards) for m in self.members))

    def initial_state(self) -> tuple[Any, ...]:
        return tuple(m.policy.initial_state() for m in self.members)

    def dump_state(self, state: tuple[Any, ...]) -> JSON:
        dumped = [m.policy.dump_state(s) for m, s in zip(self.members, state, strict=True)]
        if self.keyed:
            return {m.label: d for m, d in zip(self.members, dumped, strict=True)}
        return dumped

    def load_state(self, data: JSON) -> tuple[Any, ...]:
        if self.keyed:
            if not isinstance(data, Mapping) or set(data) != {m.label for m in self.members}:
                raise ValueError(f"{self.name} state must map {', '.join(self._labels())}")
            items = [data[m.label] for m in self.members]
        else:
            if not isinstance(data, list) or len(data) != len(self.members):
                raise ValueError(f"{self.name} state must list {len(self.members)} member states")
            items = data
        return tuple(m.policy.load_state(d) for m, d in zip(self.members, items, strict=True))

    def _labels(self) -> list[str]:
        return [m.label for m in self.members]

    def decide(self, obs: Observation, state: tuple[Any, ...]) -> tuple[Proposal, tuple[Any, ...]]:
        proposals, states = [], []
        for member, member_state in zip(self.members, state, strict=True):
            proposal, new_state = member.policy.decide(obs, member_state)
            proposals.append(proposal)
            states.append(new_state)
        return combine(self.members, proposals, obs), tuple(states)


_HPA_EXAMPLE = {"policy": "hpa", "metric": "in_flight", "target_per_replica": 10}


class MaxOfFactory(ParamsFactory[MaxOfParams, CombinedPolicy]):
    name = "max_of"
    summary = "the largest proposal of several policies; a member's hold blocks scale-down"
    guard_defaults: Mapping[str, Any] = {}
    example_spec: Mapping[str, Any] = {
        "policies": [
            _HPA_EXAMPLE,
            {"policy": "keda", "metric": "queue_depth", "threshold": 5, "activation_threshold": 1},
        ]
    }

    params_model = MaxOfParams

    def build(self, params: MaxOfParams) -> CombinedPolicy:
        labelled = [(f"policies[{i}]", data) for i, data in enumerate(params.policies)]
        return CombinedPolicy(self.name, build_members(labelled, f"{self.name} spec"), keyed=False)


class FloorFactory(ParamsFactory[FloorParams, CombinedPolicy]):
    name = "floor"
    summary = "max(base, floor): a reactive base over a floor such as a schedule"
    guard_defaults: Mapping[str, Any] = {}
    example_spec: Mapping[str, Any] = {
        "base": _HPA_EXAMPLE,
        "floor": {
            "policy": "schedule",
            "time_zone": "Europe/Amsterdam",
            "rules": [{"start": "22:00", "end": "06:00", "min_replicas": 3}],
        },
    }

    params_model = FloorParams

    def build(self, params: FloorParams) -> CombinedPolicy:
        labelled = [("base", params.base), ("floor", params.floor)]
        return CombinedPolicy(self.name, build_members(labelled, f"{self.name} spec"), keyed=True)


MAX_OF = MaxOfFactory()
FLOOR = FloorFactory()
# The registry lists one FACTORY per built-in module; this module has two.
FACTORIES = (MAX_OF, FLOOR)
