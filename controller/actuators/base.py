"""The actuator protocol: what a scaled target looks like now, and how to change its size.

In: the control loop's decision for one target (a replica count and its reason). Out: a changed
workload (Kubernetes scale subresource, Azure Container Instances, local processes) and, each
tick, a `WorkloadState`: replicas (spec), ready and starting replicas, and the conditions that
forbid some scales. Actuators never decide: they report conditions and refuse only what a
condition forbids (`WorkloadState.refusal`); the loop and the policies' guards do the rest.

The error vocabulary (`TemporaryError`, `PermanentError`, `ScaleRefusedError`, `retrying`)
lives in controller/errors.py and the clock in controller/clock.py; both are re-exported here
for the actuators that import them from this module.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from controller.clock import Clock, SystemClock
from controller.errors import (
    ActuatorError,
    PermanentError,
    ScaleRefusedError,
    TemporaryError,
    retrying,
)

__all__ = [
    "Actuator",
    "ActuatorError",
    "Clock",
    "ConditionType",
    "PermanentError",
    "ScaleRefusedError",
    "SystemClock",
    "TemporaryError",
    "WorkloadCondition",
    "WorkloadState",
    "retrying",
]


class ConditionType(enum.StrEnum):
    """Why some scales of a target are forbidden now (reasons in Kubernetes' CamelCase)."""

    # Pods Pending/Unschedulable longer than the bound: scale-up waits until they schedule.
    CAPACITY_EXHAUSTED = "CapacityExhausted"
    # The target is paused by a person (never scale) or held at a fixed replica count.
    PAUSED = "Paused"
    # Another autoscaler (an HPA, a KEDA ScaledObject) scales the same target: never scale.
    CONFLICT = "Conflict"


@dataclass(frozen=True, slots=True)
class WorkloadCondition:
    type: ConditionType
    message: str  # one line a person can act on


@dataclass(frozen=True, slots=True)
class WorkloadState:
    """One read of a target: counts for the `Observation`, conditions for the loop."""

    target: str  # e.g. "deployment default/web", for messages and records
    replicas: int  # spec.replicas: what was asked for
    ready_replicas: int
    starting_replicas: int  # asked for, not ready yet, and still expected to become ready
    conditions: tuple[WorkloadCondition, ...] = ()
    # Pods Pending/Unschedulable for longer than the bound (not counted as starting).
    unschedulable_replicas: int = 0
    # Set when a pause holds the target at a fixed count: the only size `scale` accepts.
    held_replicas: int | None = None

    def condition(self, type: ConditionType) -> WorkloadCondition | None:
        return next((c for c in self.conditions if c.type is type), None)

    def refusal(self, replicas: int) -> WorkloadCondition | None:
        """The condition that forbids scaling to `replicas` now, or None when it is allowed.

        Conflict and pause forbid every change (a hold allows exactly `held_replicas`);
        exhausted capacity forbids only growing, so shrinking can still remove Pending pods.
        """
        conflict = self.condition(ConditionType.CONFLICT)
        if conflict is not None:
            return conflict
        paused = self.condition(ConditionType.PAUSED)
        if paused is not None and replicas != self.held_replicas:
            return paused
        capacity = self.condition(ConditionType.CAPACITY_EXHAUSTED)
        if capacity is not None and replicas > self.replicas:
            return capacity
        return None


class Actuator(Protocol):
    """What the loop needs from any actuator."""

    async def current(self) -> WorkloadState: ...

    async def scale(self, replicas: int, *, reason: str) -> None: ...
