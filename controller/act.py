"""Act: the one gate between a decision and a scale call, and what `commit` then records.

In: the tick's DecisionRecord, the workload read (`WorkloadState`), who may act (`Gate`: the
leader, not in dry run, no permanent error waiting for its retry), the max change per tick,
and the actuator. Out: an `Acted`: the action taken (controller/outcomes.py `Action`), the
count set (or that would have been), and the outcome `policies.Autoscaler.commit` records for
the policy's guards (applied, capped, refused, failed), as HPA records only the scales it made.

The gate, in order: cap the change at `max_change_per_tick`; the current count needs no call
(hold); a follower, a dry run or a halted target never calls; a workload condition refuses
(another autoscaler, a pause, Pending pods); leadership is checked once more just before the
call (the renew deadline may have passed during the tick); then the scale call, whose errors
are the controller's vocabulary (controller/errors.py). The next stage is the commit and the
outcome's bookkeeping in controller/loop.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from controller.actuators.base import Actuator, WorkloadCondition, WorkloadState
from controller.errors import ActuatorError, ScaleRefusedError
from controller.outcomes import Action
from policies import DecisionRecord, Outcome
from policies.text import one_line


@dataclass(frozen=True, slots=True)
class Gate:
    """Why this replica may not scale the target now (None: it may)."""

    follower: bool = False
    dry_run: str | None = None  # "config" or "controller"
    halted: str | None = None  # the permanent error waiting for its slow retry


@dataclass(frozen=True, slots=True)
class Acted:
    action: str
    applied: int  # the count set, or that would have been set when not acting
    capped: bool
    commit: tuple[Outcome, int, str]  # for Autoscaler.commit(outcome, replicas, why)
    refusal: WorkloadCondition | None = None
    error: ActuatorError | None = None


def capped(desired: int, current: int, max_change: int) -> int:
    """`desired`, at most `max_change` away from `current`."""
    return current + max(-max_change, min(max_change, desired - current))


async def act(
    record: DecisionRecord,
    state: WorkloadState,
    gate: Gate,
    actuator: Actuator,
    *,
    max_change: int,
    still_leader: Callable[[], bool],
    decision_id: str,
) -> Acted:
    current = state.replicas
    applied = capped(record.replicas, current, max_change)
    cut = applied != record.replicas
    done = Outcome.CAPPED if cut else Outcome.APPLIED
    why = f"max_change_per_tick {max_change}" if cut else ""

    def kept(
        action: str,
        outcome: Outcome,
        reason: str,
        refusal: WorkloadCondition | None = None,
        error: ActuatorError | None = None,
    ) -> Acted:  # not scaled: the target keeps its current count
        return Acted(action, applied, cut, (outcome, current, reason), refusal, error)

    if applied == current:
        return Acted(Action.HOLD, applied, cut, (Outcome.APPLIED, current, ""))
    if gate.follower:
        return kept(Action.NOT_LEADER, Outcome.REFUSED, "NotLeader: another replica acts")
    if gate.dry_run is not None:  # a dry run follows its own hypothetical count
        return Acted(Action.DRY_RUN, applied, cut, (done, applied, f"dry run ({gate.dry_run})"))
    if gate.halted is not None:
        return kept(Action.HALTED, Outcome.REFUSED, f"halted: {gate.halted}")
    refusal = state.refusal(applied)
    if refusal is not None:
        return kept(Action.REFUSED, Outcome.REFUSED, refusal.message, refusal=refusal)
    if not still_leader():
        return kept(Action.NOT_LEADER, Outcome.REFUSED, "NotLeader: the Lease lapsed")
    try:
        await actuator.scale(applied, reason=f"{record.reason} ({decision_id})")
    except ScaleRefusedError as error:
        return kept(Action.REFUSED, Outcome.REFUSED, one_line(error), refusal=error.condition)
    except ActuatorError as error:  # TemporaryError, PermanentError: the loop tells them apart
        return kept(Action.FAILED, Outcome.FAILED, one_line(error), error=error)
    return Acted(Action.SCALED, applied, cut, (done, applied, why))
