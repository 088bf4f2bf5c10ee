"""The actuator protocol: what a scaled target looks like now, and how to change its size.

In: the control loop's decision for one target (a replica count and its reason). Out: a changed
workload (Kubernetes scale subresource, Azure Container Instances, local processes) and, each
tick, a `WorkloadState`: replicas (spec), ready and starting replicas, and the conditions that
forbid some scales. Actuators never decide: they report conditions and refuse only what a
condition forbids (`WorkloadState.refusal`); the loop and the policies' guards do the rest.

Errors are a small vocabulary, as in kopf: `TemporaryError` (retry later, maybe after a delay
the server asked for), `PermanentError` (a person must fix something; the message says what),
`ScaleRefusedError` (a condition forbids this scale now). `retrying` turns a sequence of backoff
delays from settings into retries, sleeping through the injected `Clock`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Clock(Protocol):
    """Wall time in Unix seconds (UTC) and sleeping; tests pass a fake one."""

    def now(self) -> float: ...

    async def sleep(self, delay_s: float) -> None: ...


class SystemClock:
    """The real clock: `time.time()` and `asyncio.sleep`."""

    def now(self) -> float:
        return time.time()

    async def sleep(self, delay_s: float) -> None:
        await asyncio.sleep(delay_s)


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


class ActuatorError(Exception):
    """Base of the vocabulary; the message names the target and what to do."""


class TemporaryError(ActuatorError):
    """Worth retrying: throttling, server errors, timeouts, lost races."""

    def __init__(self, message: str, *, delay_s: float | None = None) -> None:
        super().__init__(message)
        self.delay_s = delay_s  # the server's Retry-After, or the backoff to wait; None: no hint


class PermanentError(ActuatorError):
    """Retrying cannot help until a person changes something (config, RBAC, the target)."""


class ScaleRefusedError(ActuatorError):
    """A condition forbids this scale now; it may clear by itself (Pending pods schedule)."""

    def __init__(self, target: str, replicas: int, condition: WorkloadCondition) -> None:
        super().__init__(f"{target}: not scaled to {replicas}: {condition.message}")
        self.condition = condition


class Actuator(Protocol):
    """What the loop needs from any actuator."""

    async def current(self) -> WorkloadState: ...

    async def scale(self, replicas: int, *, reason: str) -> None: ...


async def retrying(
    attempt: Callable[[], Awaitable[T]],
    *,
    delays_s: Sequence[float],
    clock: Clock,
    max_delay_s: float = float("inf"),
) -> T:
    """Call `attempt` until it succeeds, sleeping between tries after a `TemporaryError`.

    One try per delay plus the first; the server's delay (Retry-After) wins over the backoff,
    capped at `max_delay_s`. The last `TemporaryError` is re-raised with the delay the caller
    should wait before its next try. Other errors pass through at once.
    """
    for delay_s in delays_s:
        try:
            return await attempt()
        except TemporaryError as error:
            wait_s = min(error.delay_s if error.delay_s is not None else delay_s, max_delay_s)
            logger.info("%s; retrying in %.3g s", error, wait_s)
            await clock.sleep(wait_s)
    try:
        return await attempt()
    except TemporaryError as error:
        if error.delay_s is None and delays_s:
            error.delay_s = delays_s[-1]
        if error.delay_s is not None:
            error.delay_s = min(error.delay_s, max_delay_s)
        raise
