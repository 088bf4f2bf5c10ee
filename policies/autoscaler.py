"""`autoscaler(spec)`: validate a spec once, then `tick` observation after observation.

A spec is one mapping: `policy` (a name or "module:attr"), the guard keys (`min_replicas`,
`max_replicas`, `behavior`, `starting_capacity`, `flap_budget`) and the policy's own keys.
Keys a policy omits fall back to its guard defaults (hpa and keda: Kubernetes' HPA behavior).

    >>> a = autoscaler({"policy": "hpa", "metric": "in_flight", "target_per_replica": 10,
    ...                 "max_replicas": 20})
    >>> record = a.tick(Observation(now_s=0, replicas=3, ready_replicas=3, in_flight=130))
    >>> record.proposal, record.replicas  # HPA computes 13; its default scale-up rate allows 7
    (13, 7)

`Autoscaler.state` is a versioned JSON-ready dict; `autoscaler(spec, state=saved)` continues
exactly where the saved one left off.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from policies import engine
from policies import guards as g
from policies.engine import DecisionRecord
from policies.observation import Observation
from policies.policy import Policy, PolicyFactory
from policies.registry import resolve
from policies.spec import GUARD_KEYS, GuardSpec, SpecError, parse


class Autoscaler:
    """A policy, its guards and its state; `tick` is the only thing that changes it."""

    def __init__(
        self,
        factory: PolicyFactory,
        policy: Policy,
        guards: g.Guards,
        state: engine.EngineState,
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
        self._recorded: engine.Recorded | None = None

    @property
    def name(self) -> str:
        return self.policy.name

    @property
    def spec(self) -> dict[str, Any]:
        """The normalized spec: `autoscaler(a.spec)` behaves exactly like `a`."""
        return {"policy": self._policy_ref, **self.policy.spec(), **g.guards_to_spec(self.guards)}

    @property
    def state(self) -> dict[str, Any]:
        return engine.dump_state(self.policy, self._state)

    def tick(self, obs: Observation) -> DecisionRecord:
        record, self._state, self._recorded = engine.tick_recorded(
            obs, self._state, self.policy, self.guards, applies=self.applies
        )
        return record

    def revise(self, applied: int) -> None:
        """The last tick's decision was not carried out as made: the target now has `applied`
        replicas (refused, failed or capped). Its scale event is recorded again with that
        count, as HPA records only successful scales. Once per tick; later calls do nothing."""
        if self._recorded is not None:
            self._state = engine.revise(self._state, self._recorded, applied, self.guards)
            self._recorded = None

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
    saved = engine.initial_state(policy) if state is None else engine.load_state(policy, state)
    return Autoscaler(factory, policy, guards, saved, applies=applies, policy_ref=ref)
