"""What a tick leaves behind: its outcome, the target's conditions, and one log line.

In: a target's tick (controller/loop.py): the committed DecisionRecord, the workload read, what
the acting step did (controller/act.py). Out: a `TickOutcome` (kept in /status, counted in
/metrics by `Action` and error kind), `Condition`s a person can act on (each with the time it
began), and one JSON log line per decision keyed by its decision id
(`<target>/<now_s>/<sequence>`). Labels exported as metrics are bounded: a decision reason
becomes its CamelCase head, at most `MAX_REASONS_PER_TARGET` per target, then "Other".
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from controller.actuators.base import WorkloadState
from policies import DecisionRecord

log = logging.getLogger("controller.loop")

MAX_REASONS_PER_TARGET = 32
OTHER_REASON = "Other"
_REASON_HEAD = re.compile(r"^([A-Z][A-Za-z0-9]{0,47})(?::|$)")

# Error kinds counted per target (replicast_errors_total{kind}).
ERROR_KINDS = ("actuator_temporary", "actuator_permanent", "scale_refused", "decide", "internal")


class Action:
    """What a tick did with its decision (replicast_decisions_total{action})."""

    SCALED = "scaled"
    HOLD = "hold"  # the decision is the current count
    DRY_RUN = "dry_run"  # recorded only (the target's or the loop's dry run)
    NOT_LEADER = "not_leader"  # another replica acts
    REFUSED = "refused"  # a workload condition forbids the change
    HALTED = "halted"  # a permanent error stopped acting until its slow retry is due
    FAILED = "failed"  # no decision, or the scale call failed

    ALL = (SCALED, HOLD, DRY_RUN, NOT_LEADER, REFUSED, HALTED, FAILED)


class Cond:
    """The loop's condition types; the workload's own (Conflict, Paused, CapacityExhausted)
    are reported under their names too."""

    METRICS_MISSING = "MetricsMissing"
    SCALE_REFUSED = "ScaleRefused"
    ACTUATOR_RETRYING = "ActuatorRetrying"
    ACTUATOR_FAILED = "ActuatorFailed"
    TICK_FAILED = "TickFailed"
    DRY_RUN = "DryRun"
    NOT_LEADER = "NotLeader"
    CLOCK_JUMP = "ClockJump"
    HISTORY_GAP = "HistoryGap"
    WORKLOAD = ("Conflict", "Paused", "CapacityExhausted")

    ALL = (
        METRICS_MISSING,
        SCALE_REFUSED,
        ACTUATOR_RETRYING,
        ACTUATOR_FAILED,
        TICK_FAILED,
        DRY_RUN,
        NOT_LEADER,
        CLOCK_JUMP,
        HISTORY_GAP,
        *WORKLOAD,
    )


@dataclass(frozen=True, slots=True)
class Condition:
    type: str
    reason: str
    message: str  # one line a person can act on
    since_s: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "reason": self.reason,
            "message": self.message,
            "since_s": self.since_s,
        }


@dataclass(frozen=True, slots=True)
class TickOutcome:
    """One tick of one target: the decision, what was done with it, and why."""

    target: str
    decision_id: str
    now_s: float
    action: str
    record: DecisionRecord | None = None
    shadows: tuple[tuple[str, DecisionRecord], ...] = ()
    workload: WorkloadState | None = None
    applied_replicas: int | None = None  # set (or, when not acting, that would have been set)
    capped: bool = False
    error_kind: str | None = None
    error: str | None = None
    duration_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "now_s": self.now_s,
            "action": self.action,
            "applied_replicas": self.applied_replicas,
            "capped": self.capped,
            "error": self.error,
            "record": self.record.to_dict() if self.record is not None else None,
            "shadow": {name: r.to_dict() for name, r in self.shadows},
        }


@dataclass(frozen=True, slots=True)
class RoundResult:
    """The ticks that ran together (`ControlLoop.round`), or one target's (the scheduler)."""

    now_s: float
    outcomes: tuple[TickOutcome, ...]
    prometheus_queries: int
    duration_s: float


RoundObserver = Callable[[RoundResult], None]


def reason_label(record: DecisionRecord) -> str:
    """A bounded label for a decision: its reason's CamelCase head ("ScaleUpLimit: the
    desired..." -> "ScaleUpLimit", as guards and most holds write it), else the direction of
    a policy's own free-text reason ("in_flight above target" -> "PolicyScaleUp")."""
    match = _REASON_HEAD.match(record.reason)
    if match:
        return match.group(1)
    if record.replicas > record.current_replicas:
        return "PolicyScaleUp"
    return "PolicyScaleDown" if record.replicas < record.current_replicas else "PolicyHold"


def workload_dict(state: WorkloadState) -> dict[str, Any]:
    return {
        "target": state.target,
        "replicas": state.replicas,
        "ready_replicas": state.ready_replicas,
        "starting_replicas": state.starting_replicas,
        "unschedulable_replicas": state.unschedulable_replicas,
        "held_replicas": state.held_replicas,
        "conditions": [{"type": c.type.value, "message": c.message} for c in state.conditions],
    }


def log_outcome(
    outcome: TickOutcome,
    *,
    sequence: int,
    leader: bool,
    dry_run: bool,
    missing: Mapping[str, str],
) -> None:
    """One JSON log line for the decision (JsonFormatter in controller/run.py)."""
    record = outcome.record
    fields: dict[str, Any] = {
        "event": "decision",
        "decision_id": outcome.decision_id,
        "target": outcome.target,
        "now_s": outcome.now_s,
        "sequence": sequence,
        "action": outcome.action,
        "leader": leader,
        "dry_run": dry_run,
    }
    if record is not None:
        fields |= {
            "policy": record.policy,
            "current_replicas": record.current_replicas,
            "desired_replicas": record.replicas,
            "applied_replicas": outcome.applied_replicas,
            "outcome": record.outcome,
            "reason": record.reason,
            "shadow": {name: r.replicas for name, r in outcome.shadows},
        }
    if missing:
        fields["missing_signals"] = dict(missing)
    if outcome.error is not None:
        fields["error"] = outcome.error
    level = logging.WARNING if outcome.action == Action.FAILED else logging.INFO
    summary = (
        f"{record.current_replicas} -> {record.replicas}: {record.reason}"
        if record is not None
        else outcome.error
    )
    log.log(
        level,
        "%s %s: %s",
        outcome.decision_id,
        outcome.action,
        summary,
        extra={"json_fields": fields},
    )
