"""The controller's clock: wall time for what the world reads, monotonic time for schedules.

`now()` is Unix seconds, UTC: Observation.now_s, Prometheus query times, Lease renewTime
stamps, Event timestamps. `monotonic()` never jumps: every schedule (when a target is next due,
a retry's wait) and every deadline (the Lease's renew deadline, a challenger's wait) runs on it,
so a wall-clock step can neither stall the loop nor hand the Lease over early. `sleep(delay_s)`
waits `delay_s` of monotonic time. Tests inject a fake that steps each clock on its own
(tests/controller/fake_kube.py `FakeClock`); nothing in controller/ reads `time` directly.

`ClockWatch` compares how far each clock moved between two readings: a difference of more than
`tolerance_s` (the loop uses two intervals) is a wall-clock jump, which the loop reports and
answers with a scale-down hold (controller/loop.py).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Wall time, Unix seconds (UTC)."""
        ...

    def monotonic(self) -> float:
        """Seconds that only move forward, at the rate of real time."""
        ...

    async def sleep(self, delay_s: float) -> None:
        """Wait `delay_s` seconds of monotonic time."""
        ...


class SystemClock:
    """The real clocks: `time.time()`, `time.monotonic()` and `asyncio.sleep`."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, delay_s: float) -> None:
        await asyncio.sleep(max(0.0, delay_s))


def monotonic_of(clock: object) -> float:
    """`clock.monotonic()`, or its wall time for a clock that has none (an old test fake)."""
    read = getattr(clock, "monotonic", None)
    if read is not None:
        return float(read())
    return float(clock.now())  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Jump:
    """The wall clock moved `jump_s` more (forward) or less (backward) than monotonic time."""

    jump_s: float
    wall_s: float  # wall time after the jump

    def describe(self) -> str:
        direction = "forward" if self.jump_s > 0 else "back"
        return f"the wall clock stepped {direction} {abs(self.jump_s):.0f} s"


class ClockWatch:
    """Both clocks at the last reading; `check` says whether the wall clock jumped since."""

    def __init__(self) -> None:
        self._last: tuple[float, float] | None = None

    def check(self, wall_s: float, mono_s: float, tolerance_s: float) -> Jump | None:
        last, self._last = self._last, (wall_s, mono_s)
        if last is None:
            return None
        jump_s = (wall_s - last[0]) - (mono_s - last[1])
        if abs(jump_s) > tolerance_s:
            return Jump(jump_s, wall_s)
        return None
