"""The controller's error vocabulary, and retries as data (kopf's habit).

`TemporaryError` (retry later, maybe after a delay the server asked for), `PermanentError` (a
person must fix something; the message says what; the loop retries it slowly, every
`permanent_error_retry_s`), `ScaleRefusedError` (a condition forbids this scale now). Every
message is one line naming the target and what to do.

`retrying` turns a sequence of backoff delays into retries, sleeping on the injected clock,
within the `RetryBudget` the loop sets for the tick in progress: a retry that would wait past
the tick's deadline (one interval after the decision: a decision older than that is stale and
is not written), or any retry once the controller is stopping, gives up at once and raises the
last error (tests/controller/test_scheduler.py).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from controller.clock import Clock, monotonic_of, sleep_unless

if TYPE_CHECKING:
    from controller.actuators.base import WorkloadCondition

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ActuatorError(Exception):
    """Base of the vocabulary; the message names the target and what to do."""


class TemporaryError(ActuatorError):
    """Worth retrying: throttling, server errors, timeouts, lost races."""

    def __init__(self, message: str, *, delay_s: float | None = None) -> None:
        super().__init__(message)
        self.delay_s = delay_s  # the server's Retry-After, or the backoff to wait; None: no hint


class PermanentError(ActuatorError):
    """Retrying soon cannot help: a person must change something (config, RBAC, the target)."""


class ScaleRefusedError(ActuatorError):
    """A condition forbids this scale now; it may clear by itself (Pending pods schedule)."""

    def __init__(self, target: str, replicas: int, condition: WorkloadCondition) -> None:
        super().__init__(f"{target}: not scaled to {replicas}: {condition.message}")
        self.condition = condition


@dataclass(frozen=True, slots=True)
class RetryBudget:
    """How long the work in progress may keep retrying: until `deadline_s` (monotonic), and
    not at all once `stopping` is set."""

    deadline_s: float | None = None
    stopping: asyncio.Event | None = None

    def allows(self, wait_s: float, clock: Clock) -> str | None:
        """None when a wait of `wait_s` may start now, else why not."""
        if self.stopping is not None and self.stopping.is_set():
            return "the controller is stopping"
        if self.deadline_s is not None and monotonic_of(clock) + wait_s > self.deadline_s:
            return "a retry would make the decision older than one interval"
        return None


_UNLIMITED = RetryBudget()
_budget: contextvars.ContextVar[RetryBudget | None] = contextvars.ContextVar(
    "replicast_retry_budget", default=None
)


def current_budget() -> RetryBudget:
    return _budget.get() or _UNLIMITED


@contextmanager
def retry_budget(budget: RetryBudget) -> Iterator[None]:
    """Retries inside this block (and in tasks it starts) stay within `budget`."""
    token = _budget.set(budget)
    try:
        yield
    finally:
        _budget.reset(token)


async def _wait(clock: Clock, wait_s: float, stopping: asyncio.Event | None) -> bool:
    """Sleep `wait_s` on `clock`; False when `stopping` was set first."""
    if stopping is None:
        await clock.sleep(wait_s)
        return True
    return await sleep_unless(clock, wait_s, stopping)


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
    should wait before its next try; so is one whose retry the current `RetryBudget` does not
    allow. Other errors pass through at once.
    """
    for delay_s in delays_s:
        try:
            return await attempt()
        except TemporaryError as error:
            wait_s = min(error.delay_s if error.delay_s is not None else delay_s, max_delay_s)
            refused = current_budget().allows(wait_s, clock)
            if refused is not None:
                logger.info("%s; not retrying: %s", error, refused)
                if error.delay_s is None:
                    error.delay_s = wait_s
                raise
            logger.info("%s; retrying in %.3g s", error, wait_s)
            if not await _wait(clock, wait_s, current_budget().stopping):
                logger.info("%s; not retrying: the controller is stopping", error)
                raise

    try:
        return await attempt()
    except TemporaryError as error:
        if error.delay_s is None and delays_s:
            error.delay_s = delays_s[-1]
        if error.delay_s is not None:
            error.delay_s = min(error.delay_s, max_delay_s)
        raise
