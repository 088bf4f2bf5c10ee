"""The policy contract: frozen parameters, `decide(obs, state) -> (Proposal, state)`.

A policy proposes; the guard pipeline in `policies.guards` disposes. Policies never apply
min/max, stabilization, rate limits or the missing-data rule themselves. Their state is
explicit data returned by `decide`, dumped to JSON by `dump_state` and read back by
`load_state`, so a restart or a replay continues identically.

Third-party policies implement `PolicyFactory` (a `from_spec` constructor plus metadata) and
register it in the `replicast.policies` entry-point group or are named as `"module:attr"`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Protocol, runtime_checkable

from policies.observation import Observation

JSON = Any  # a value json.dumps accepts; kept loose on purpose (mypy has no recursive JSON type)

_NO_DETAILS: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Proposal:
    """A raw replica count with its reason, or a hold ("cannot decide"), before any guard.

    `details` carries the numbers behind the proposal (metric ratios, predicted latency, ...)
    into the DecisionRecord; values must be JSON-serializable.
    """

    replicas: int | None
    reason: str
    details: Mapping[str, Any] = field(default_factory=lambda: _NO_DETAILS)
    # A direct action outside the rate-limited path (KEDA's executor going 0 <-> 1): it skips
    # stabilization and rate limits and is not a rate-limit scale event; bounds, the
    # missing-data rule and the flap budget still apply.
    direct: bool = False

    @classmethod
    def scale(cls, replicas: int, reason: str, **details: Any) -> Proposal:
        return cls(
            max(0, int(replicas)), reason, MappingProxyType(details) if details else _NO_DETAILS
        )

    @classmethod
    def direct_scale(cls, replicas: int, reason: str, **details: Any) -> Proposal:
        return cls(
            max(0, int(replicas)),
            reason,
            MappingProxyType(details) if details else _NO_DETAILS,
            True,
        )

    @classmethod
    def hold(cls, reason: str, **details: Any) -> Proposal:
        return cls(None, reason, MappingProxyType(details) if details else _NO_DETAILS)

    @property
    def is_hold(self) -> bool:
        return self.replicas is None


@runtime_checkable
class Policy(Protocol):
    """One configured policy. Implementations are frozen; all they remember is in `state`."""

    @property
    def name(self) -> str: ...

    @property
    def required_signals(self) -> frozenset[str]:
        """Signals without which this policy must never scale down."""
        ...

    @property
    def pauses_at_zero(self) -> bool:
        """True when a target at 0 replicas is left alone (HPA: "ScalingDisabled")."""
        ...

    def spec(self) -> dict[str, JSON]:
        """The policy's own spec keys (no guard keys); `from_spec(spec())` rebuilds it."""
        ...

    def initial_state(self) -> Any: ...

    def decide(self, obs: Observation, state: Any) -> tuple[Proposal, Any]: ...

    def dump_state(self, state: Any) -> JSON: ...

    def load_state(self, data: JSON) -> Any: ...


@runtime_checkable
class PolicyFactory(Protocol):
    """What the registry holds: builds a policy from its spec keys and says what it is."""

    name: str
    summary: str
    # Guard keys filled in when the spec omits them (e.g. HPA's default behavior).
    guard_defaults: Mapping[str, JSON]
    # A spec (policy keys only) that exercises the policy in `check_policy`.
    example_spec: Mapping[str, JSON]

    def from_spec(self, spec: Mapping[str, JSON]) -> Policy: ...


class StatelessPolicy:
    """Base for policies with no memory: state is None and dumps to None."""

    pauses_at_zero: ClassVar[bool] = False

    def initial_state(self) -> None:
        return None

    def dump_state(self, state: Any) -> JSON:
        return None

    def load_state(self, data: JSON) -> None:
        return None
