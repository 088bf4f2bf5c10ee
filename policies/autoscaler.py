"""`autoscaler(spec)`: validate a spec once, then `tick` observation after observation.

A spec is one mapping: `policy` (a name or "module:attr"), the guard keys (`min_replicas`,
`max_replicas`, `behavior`, `starting_capacity`, `flap_budget`) and the policy's own keys.
Keys a policy omits fall back to its guard defaults (hpa and keda: Kubernetes' HPA behavior).

    >>> a = autoscaler({"policy": "hpa", "metric": "in_flight", "target_per_replica": 10,
    ...                 "max_replicas": 20})
    >>> record = a.tick(Observation(now_s=0, replicas=3, ready_replicas=3, in_flight=130))
    >>> record.proposal, record.replicas  # HPA computes 13; its default scale-up rate allows 7
    (13, 7)
    >>> a.commit("applied").applied_replicas  # the shell scaled to 7: a scale event at t=0
    7

`tick` proposes and `commit` records what the shell did with the proposal (`step` does both,
for replays where every decision is carried out). `Autoscaler.state` is a versioned JSON-ready
dict; `autoscaler(spec, state=saved)` continues exactly where the saved one left off.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from policies import guards as g
from policies import protocol
from policies.observation import Observation
from policies.policy import Policy, PolicyFactory
from policies.protocol import DecisionRecord
from policies.registry import resolve
from policies.spec import GUARD_KEYS, GuardSpec, SpecError, parse


class Autoscaler:
    """A policy, its guards and its state; `tick` proposes, `commit` records what happened."""

    def __init__(
        self,
        factory: PolicyFactory,
        policy: Policy,
        guards: g.Guards,
        state: protocol.EngineState,
        *,
        applies: bool = True,
        policy_ref: str | PolicyFactory | None = None,
    ) -> None:
        self.factory = factory
        self.policy = policy
        self.guards = guards
        self.applies = applies
        self._policy_ref = policy_ref or factory.name
        self._state = state
        self._last: DecisionRecord | None = None

    @property
    def name(self) -> str:
        return self.policy.name

    @property
    def spec(self) -> dict[str, Any]:
        """The normalized spec: `autoscaler(a.spec)` behaves exactly like `a`."""
        return {"policy": self._policy_ref, **self.policy.spec(), **g.guards_to_spec(self.guards)}

    @property
    def state(self) -> dict[str, Any]:
        return protocol.dump_state(self.policy, self._state)

    @property
    def engine_state(self) -> protocol.EngineState:
        return self._state

    def tick(self, obs: Observation) -> DecisionRecord:
        """Propose: the decision for `obs`, with no scale event recorded until `commit`."""
        self._last, self._state = protocol.tick(
            obs, self._state, self.policy, self.guards, applies=self.applies
        )
        return self._last

    def commit(
        self,
        outcome: protocol.Outcome | str = protocol.Outcome.APPLIED,
        replicas: int | None = None,
        why: str = "",
    ) -> DecisionRecord:
        """Record what the shell did with the last tick's decision (applied, capped, refused,
        failed) and return the completed record; see `policies.protocol.commit`."""
        if self._last is None:
            raise RuntimeError("commit() before tick(): there is no decision to commit")
        self._last, self._state = protocol.commit(
            self._last, self._state, self.guards, outcome, replicas, why
        )
        return self._last

    def step(self, obs: Observation) -> DecisionRecord:
        """`tick` then `commit` as applied: for replays where every decision is carried out
        (stories, notebooks, `replicast explain`)."""
        self.tick(obs)
        return self.commit()

    def resume(
        self, saved: Mapping[str, Any] | None, *, now_s: float, max_gap_s: float
    ) -> str | None:
        """Continue from this autoscaler's own history joined with `saved` (another's
        `state`, e.g. the last leader's); returns why scale-down is held, or None. See
        `policies.protocol.resume`. A saved state that does not fit raises SpecError."""
        other = None if saved is None else protocol.load_state(self.policy, saved)
        own = self._state if self._state.last_now_s is not None else None
        self._state, why = protocol.resume(
            self.policy, self.guards, own, other, now_s=now_s, max_gap_s=max_gap_s
        )
        self._last = None
        return why

    def rebase(self, *, jump_s: float, now_s: float) -> str:
        """The wall clock stepped by `jump_s`: move the history with it and hold scale-down
        for one window (see `policies.protocol.rebase`); returns why, for the log."""
        self._state, why = protocol.rebase(
            self.policy, self.guards, self._state, jump_s=jump_s, now_s=now_s
        )
        self._last = None
        return why

    def __repr__(self) -> str:
        return f"Autoscaler({json.dumps(self.spec, sort_keys=True)}, applies={self.applies})"


def _split(spec: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    guard_keys = {k: v for k, v in spec.items() if k in GUARD_KEYS}
    policy_keys = {k: v for k, v in spec.items() if k not in GUARD_KEYS and k != "policy"}
    return guard_keys, policy_keys


def autoscaler(
    spec: Mapping[str, Any] | Autoscaler,
    state: Mapping[str, Any] | None = None,
    *,
    applies: bool = True,
) -> Autoscaler:
    """Validate `spec` now (raising one SpecError naming every bad key) and build it.

    `spec["policy"]` is a registered name, a "module:attr" path, or a PolicyFactory object.
    """
    if isinstance(spec, Autoscaler):
        spec = spec.spec
    if not isinstance(spec, Mapping):
        raise SpecError(
            "spec", [("", f"must be a mapping with a 'policy' key (got {type(spec).__name__})")]
        )
    if "policy" not in spec:
        raise SpecError("spec", [("policy", "required key is missing; e.g. policy: hpa")])
    ref = spec["policy"]
    factory = ref if isinstance(ref, PolicyFactory) else resolve(ref)
    where = f"{factory.name} spec"
    guard_keys, policy_keys = _split(spec)
    merged_guards = {**copy.deepcopy(dict(factory.guard_defaults)), **guard_keys}

    problems: list[tuple[str, str]] = []
    policy: Policy | None = None
    guard_spec: GuardSpec | None = None
    try:
        guard_spec = parse(GuardSpec, merged_guards, where)
    except SpecError as error:
        problems.extend(error.problems)
    try:
        policy = factory.from_spec(policy_keys)
    except SpecError as error:
        problems.extend(error.problems)
    if problems or policy is None or guard_spec is None:
        raise SpecError(where, problems)

    guards = g.guards_from_spec(guard_spec)
    bind = getattr(policy, "with_guards", None)
    if callable(bind):  # optional hook: policies that read the behavior (HPA tolerances)
        policy = bind(guards)
    saved = protocol.initial_state(policy) if state is None else protocol.load_state(policy, state)
    return Autoscaler(factory, policy, guards, saved, applies=applies, policy_ref=ref)
