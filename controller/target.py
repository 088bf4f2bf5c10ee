"""One target's runtime: its autoscalers, schedule, health, conditions and history.

In: a target's config and actuator (controller/run.py builds them). Out: what the loop keeps
between ticks (`TargetRuntime`) and what /status and /metrics read from it (controller/app.py).
The loop (controller/loop.py) is the only writer; the scheduler (controller/scheduler.py) reads
`next_due_s`, a monotonic time.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from controller.actuators.base import Actuator
from controller.clock import ClockWatch
from controller.config import KubernetesTarget, TargetConfig
from controller.outcomes import (
    MAX_REASONS_PER_TARGET,
    OTHER_REASON,
    Condition,
    TickOutcome,
    reason_label,
    workload_dict,
)
from controller.signals import TargetQueries
from policies import Autoscaler, autoscaler


@dataclass(frozen=True, slots=True)
class Halt:
    """A permanent error (a 403, a deleted target) waiting for its slow retry."""

    message: str
    retry_at_s: float  # monotonic
    failures: int


def describe(target: TargetConfig) -> str:
    st = target.scale_target
    if isinstance(st, KubernetesTarget):
        return f"{st.kind.lower()} {st.namespace}/{st.name}"
    return f"{st.kind} {target.name}"


def shadow_names(names: Sequence[str]) -> list[str]:
    """Policy names, with "#<n>" after a name used before ("slo", "slo#2")."""
    seen: Counter[str] = Counter()
    out = []
    for name in names:
        seen[name] += 1
        out.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return out


@dataclass(eq=False)
class TargetRuntime:
    """The loop's mutable record of one target."""

    config: TargetConfig
    actuator: Actuator
    autoscaler: Autoscaler
    shadows: dict[str, Autoscaler]
    queries: TargetQueries
    next_due_s: float  # monotonic
    sequence: int = 0
    failures: int = 0  # TemporaryErrors in a row
    halt: Halt | None = None
    tried: bool = False  # a tick has run at least once
    ready: bool = False  # a tick has decided (and not failed) at least once
    healthy: bool = False  # the latest tick could read the target and its signals
    hold_until_s: float | None = None  # wall time a takeover's or clock jump's hold ends
    last: TickOutcome | None = None
    history: deque[TickOutcome] = field(default_factory=deque)
    conditions: dict[str, Condition] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)
    missing: dict[str, str] = field(default_factory=dict)  # signal -> why it is None
    reasons: dict[str, float] = field(default_factory=dict)  # reason label -> 1 if current
    watch: ClockWatch = field(default_factory=ClockWatch)

    @classmethod
    def build(
        cls, target: TargetConfig, actuator: Actuator, *, due_s: float, records_kept: int
    ) -> TargetRuntime:
        names = shadow_names([autoscaler(dict(s)).name for s in target.shadow])
        shadows = {
            n: autoscaler(dict(s), applies=False) for n, s in zip(names, target.shadow, strict=True)
        }
        return cls(
            config=target,
            actuator=actuator,
            autoscaler=autoscaler(dict(target.policy)),
            shadows=shadows,
            queries=target.signal_queries(),
            next_due_s=due_s,
            history=deque(maxlen=records_kept),
        )

    @property
    def name(self) -> str:
        return self.config.name

    def set_condition(self, type: str, reason: str, message: str, now_s: float) -> None:
        old = self.conditions.get(type)
        since_s = old.since_s if old is not None and old.reason == reason else now_s
        self.conditions[type] = Condition(type, reason, message, since_s)

    def clear(self, *types: str) -> None:
        for type in types:
            self.conditions.pop(type, None)

    def remember(self, outcome: TickOutcome) -> None:
        self.last = outcome
        self.history.append(outcome)
        self.actions[outcome.action] += 1
        if outcome.error_kind is not None:
            self.errors[outcome.error_kind] += 1
        if outcome.record is not None:
            label = reason_label(outcome.record)
            if label not in self.reasons and len(self.reasons) >= MAX_REASONS_PER_TARGET:
                label = OTHER_REASON
            self.reasons = dict.fromkeys(self.reasons, 0.0) | {label: 1.0}

    def state_entry(self) -> dict[str, Any]:
        """What the state store keeps for this target (controller/state_store.py)."""
        return {
            "policy": self.autoscaler.state,
            "shadow": {n: s.state for n, s in self.shadows.items()},
        }

    def status(self, *, acting: bool, next_tick_s: float) -> dict[str, Any]:
        workload = self.last.workload if self.last is not None else None
        return {
            "scale_target": describe(self.config),
            "policy": self.autoscaler.name,
            "shadow": list(self.shadows),
            "interval_s": self.config.interval_s,
            "dry_run": self.config.dry_run,
            "acting": acting,
            "halted": None if self.halt is None else self.halt.message,
            "ready": self.ready,
            "healthy": self.healthy,
            "next_tick_s": next_tick_s,
            "conditions": [c.to_dict() for c in self.conditions.values()],
            "workload": None if workload is None else workload_dict(workload),
            "missing_signals": dict(self.missing),
            "errors": dict(self.errors),
            "records": [o.to_dict() for o in reversed(self.history)],
        }
