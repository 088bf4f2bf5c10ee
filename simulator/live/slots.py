"""An emulated replica's concurrency: `slots` slots and a first-come-first-served queue.

In: requests that `acquire` a slot and `release` it when served (or give up while queued).
Out: the `running` and `waiting` counts the emulator's metrics and queue limit read.
"""

from __future__ import annotations

import asyncio
from collections import deque


class SlotQueue:
    """`slots` concurrency slots and a first-come-first-served queue in front of them."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.running = 0
        self._waiting: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def acquire(self) -> None:
        if self.running < self.slots and not self._waiting:
            self.running += 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            await turn
        except asyncio.CancelledError:  # the client gave up (timeout, disconnect): normal
            if turn.done() and not turn.cancelled():
                self.release()  # handed a slot just as we gave up: pass it on
            elif turn in self._waiting:  # `release` may have skipped it already
                self._waiting.remove(turn)
            raise

    def release(self) -> None:
        """Hand the slot to the longest waiter (the running count stays), or free it."""
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self.running -= 1
