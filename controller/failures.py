"""Failures of a target's reads and scale calls: when it is tried again, and what people see.

In: an actuator error (controller/errors.py) from a tick of one target. Out: the target's next
tick moved per `retry_delays_s` (a `TemporaryError`; the server's Retry-After wins when longer)
and the `ActuatorRetrying` condition; or, for a `PermanentError` (a 403 while RBAC propagates,
a deleted target), the target halted until `permanent_error_retry_s` has passed, the
`ActuatorFailed` condition and a Warning Event on the target (`FailedRescale`,
`FailedGetScale`, as HPA writes), once per failed try. The target keeps deciding meanwhile, so
a fix shows at the next try without a restart.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from controller.clock import Clock
from controller.errors import ActuatorError, PermanentError, TemporaryError
from controller.outcomes import Action, Cond, TickOutcome
from controller.settings import LoopSettings
from controller.target import Halt, TargetRuntime
from policies.text import one_line

log = logging.getLogger("controller.loop")


class Failures:
    def __init__(self, settings: LoopSettings, clock: Clock) -> None:
        self.settings, self.clock = settings, clock

    async def failed(
        self,
        t: TargetRuntime,
        error: ActuatorError,
        now_s: float,
        decision_id: str,
        outcome: TickOutcome | None,
        *,
        reading: bool = False,
    ) -> TickOutcome:
        message = one_line(error)
        base = outcome or TickOutcome(t.name, decision_id, now_s, Action.FAILED)
        base = replace(base, action=Action.FAILED, error=message)
        if isinstance(error, PermanentError):
            await self.permanent(t, error, now_s, reading=reading)
            return replace(base, error_kind="actuator_permanent")
        t.failures += 1
        delays = self.settings.retry_delays_s
        delay_s = delays[min(t.failures, len(delays)) - 1]
        if isinstance(error, TemporaryError) and error.delay_s is not None:
            delay_s = max(delay_s, error.delay_s)
        delay_s = min(delay_s, self.settings.max_retry_delay_s)
        t.next_due_s = self.clock.monotonic() + delay_s  # from the failure (retries took time)
        retry = f"{message}; failure {t.failures} in a row, next try in {delay_s:g} s"
        t.set_condition(Cond.ACTUATOR_RETRYING, type(error).__name__, retry, now_s)
        log.warning("%s: %s", decision_id, retry)
        return replace(base, error_kind="actuator_temporary")

    async def permanent(
        self, t: TargetRuntime, error: PermanentError, now_s: float, *, reading: bool
    ) -> None:
        message = one_line(error)
        retry_s = self.settings.permanent_error_retry_s
        t.healthy = False
        if reading:  # nothing to act on; reads go on every interval, so a fix shows by itself
            hint = "reads go on every interval"
            first = Cond.ACTUATOR_FAILED not in t.conditions
        else:
            failures = 1 if t.halt is None else t.halt.failures + 1
            t.halt = Halt(message, self.clock.monotonic() + retry_s, failures)
            hint = (
                f"not scaling this target; trying again in {retry_s:g} s "
                f"(permanent_error_retry_s), failure {failures}"
            )
            first = True  # one Event per failed try: once per retry period
        t.set_condition(Cond.ACTUATOR_FAILED, type(error).__name__, f"{message}; {hint}", now_s)
        log.error("%s: %s; %s", t.name, message, hint)
        if first:
            await self.warn(
                t, "FailedGetScale" if reading else "FailedRescale", f"{message}; {hint}"
            )

    async def warn(self, t: TargetRuntime, reason: str, message: str) -> None:
        """A Warning Event on the target, when its actuator writes Events (Kubernetes); like
        HPA's FailedRescale / FailedGetScale. A failure to write it is logged, never raised."""
        warn = getattr(t.actuator, "warn", None)
        if warn is None:
            return
        try:
            await warn(reason, message)
        except ActuatorError as failure:
            log.warning("%s: %s Event not written: %s", t.name, reason, one_line(failure))
