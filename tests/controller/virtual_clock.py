"""Virtual time for tests of long-running tasks: the clocks move only when everyone sleeps.

`VirtualClock(participants=n)`: `n` is the number of long-lived tasks that sleep on it (the
scheduler's target tasks, its state writer, the Lease elector). While fewer than `n` sleep,
the others are working (real HTTP to the fake API server, on 127.0.0.1) and time stands still;
once all `n` sleep, time jumps to the earliest deadline and those sleepers wake, as in a
discrete-event simulation. A story therefore runs minutes of controller time in milliseconds,
in a deterministic order, with real I/O in between. `step_wall` moves the wall clock alone (an
NTP step); `advance` moves both and wakes whoever is due. `run_until(mono_s)` lets the story
run until the monotonic clock reaches `mono_s`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools


class VirtualClock:
    def __init__(
        self,
        *,
        participants: int,
        start_s: float = 1_700_000_000.0,
        monotonic_s: float = 1_000.0,
        poll_s: float = 0.001,
    ) -> None:
        self.now_s = start_s
        self.mono_s = monotonic_s
        self.participants = participants
        self._poll_s = poll_s
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._driver: asyncio.Task[None] | None = None
        self.sleeps: list[float] = []
        self.limit_s = float("inf")  # the driver never moves the monotonic clock past this

    def now(self) -> float:
        return self.now_s

    def monotonic(self) -> float:
        return self.mono_s

    def step_wall(self, jump_s: float) -> None:
        self.now_s += jump_s

    def advance(self, delay_s: float) -> None:
        self.now_s += delay_s
        self.mono_s += delay_s
        self._wake()

    async def sleep(self, delay_s: float) -> None:
        self.sleeps.append(delay_s)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.mono_s + max(0.0, delay_s), next(self._order), future))
        if self._driver is None or self._driver.done():
            self._driver = asyncio.create_task(self._drive(), name="virtual-clock")
        await future

    def sleeping(self) -> int:
        return sum(1 for _, _, f in self._sleepers if not f.done())

    def _wake(self) -> None:
        while self._sleepers and (
            self._sleepers[0][2].done() or self._sleepers[0][0] <= self.mono_s
        ):
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    async def _drive(self) -> None:
        while self._sleepers:
            await asyncio.sleep(self._poll_s)
            self._sleepers = [s for s in self._sleepers if not s[2].done()]
            heapq.heapify(self._sleepers)
            self._wake()  # whoever is due already (a sleep of 0) never waits for the others
            if self._sleepers and len(self._sleepers) >= self.participants:
                deadline = min(self._sleepers[0][0], max(self.mono_s, self.limit_s))
                if deadline > self.mono_s:
                    delta = deadline - self.mono_s
                    self.now_s += delta
                    self.mono_s = deadline
                self._wake()

    async def run_until(self, mono_s: float, *, timeout_s: float = 20.0) -> None:
        """Let the story run until the monotonic clock is at `mono_s` and every participant
        sleeps again (at most `timeout_s` of real time); time stops there until the next
        call (`release()` lets it run free)."""
        self.limit_s = mono_s
        if self._driver is None or self._driver.done():
            self._driver = asyncio.create_task(self._drive(), name="virtual-clock")
        async with asyncio.timeout(timeout_s):
            while self.mono_s < mono_s or self.sleeping() < self.participants:
                await asyncio.sleep(self._poll_s)

    async def run_for(self, delay_s: float, *, timeout_s: float = 20.0) -> None:
        await self.run_until(self.mono_s + delay_s, timeout_s=timeout_s)

    def release(self) -> None:
        self.limit_s = float("inf")

    def close(self) -> None:
        if self._driver is not None:
            self._driver.cancel()
