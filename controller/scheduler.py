"""The scheduler: every target on its own task and monotonic schedule, and a bounded stop.

In: a `ControlLoop` (controller/loop.py). Out: one named task per target
(`replicast:target:<name>`) that sleeps on the injected clock's monotonic time until its target
is due, ticks it (`ControlLoop.tick`), and repeats; a task that writes the changed state every
`state_write_interval_s` while this replica leads (`replicast:state-writer`). A target whose
scale call waits out a Retry-After, or whose namespace reads are slow, delays only itself;
targets due at the same moment still share their Prometheus queries (controller/observe.py
`MetricBatcher`). A wall-clock step moves nothing here: schedules are monotonic.

Stopping (`ControlLoop.stop()`, SIGTERM): no tick starts any more; ticks in flight finish their
scale calls, and their retries give up at once (controller/errors.py `RetryBudget`); what is
still running `shutdown_grace_s - 2 x release_reserve_s` after the stop is cancelled; then the
state is written (within `release_reserve_s`), and `run` returns, leaving `release_reserve_s`
for controller/app.py to release the Lease. Being cancelled from outside stops the same way.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from controller.outcomes import RoundResult

if TYPE_CHECKING:
    from controller.loop import ControlLoop
    from controller.target import TargetRuntime

log = logging.getLogger("controller.loop")


class Scheduler:
    def __init__(self, loop: ControlLoop) -> None:
        self.loop = loop

    async def run(self) -> None:
        loop = self.loop
        log.info("control loop started: %d target(s), one task each", len(loop.targets))
        tasks = [
            asyncio.create_task(self._forever(t), name=f"replicast:target:{t.name}")
            for t in loop.targets.values()
        ]
        writer = asyncio.create_task(self._write_state(), name="replicast:state-writer")
        try:
            await loop.stopping.wait()
        except asyncio.CancelledError:
            loop.stop()
            await self._shutdown(tasks, writer)
            raise
        await self._shutdown(tasks, writer)

    async def _sleep(self, delay_s: float) -> None:
        """Sleep `delay_s` of monotonic time, or less when the loop is stopping."""
        sleeping = asyncio.ensure_future(self.loop.clock.sleep(delay_s))
        stopping = asyncio.ensure_future(self.loop.stopping.wait())
        try:
            await asyncio.wait({sleeping, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeping.cancel()
            stopping.cancel()

    async def _wait(
        self, tasks: list[asyncio.Task[None]], timeout_s: float
    ) -> set[asyncio.Task[None]]:
        """Wait for `tasks` at most `timeout_s` on the injected clock; the ones still running."""
        if not tasks:
            return set()
        timer = asyncio.ensure_future(self.loop.clock.sleep(timeout_s))
        everything = asyncio.ensure_future(asyncio.wait(tasks))
        try:
            await asyncio.wait({timer, everything}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            everything.cancel()
        return {t for t in tasks if not t.done()}

    async def _forever(self, t: TargetRuntime) -> None:
        loop = self.loop
        while not loop.stopping.is_set():
            wait_s = t.next_due_s - loop.clock.monotonic()
            if wait_s > 0:
                await self._sleep(wait_s)
                continue  # due now, or stopping: look again
            try:
                outcome = await loop.tick(t)
            except asyncio.CancelledError:
                raise
            except Exception:  # `tick` catches a target's failures; this is a loop bug
                log.exception("%s: tick failed outside its own handling", t.name)
                t.next_due_s = loop.clock.monotonic() + t.config.interval_s
                continue
            queries = loop.batcher.last_queries
            loop.notify(RoundResult(outcome.now_s, (outcome,), queries, outcome.duration_s))

    async def _write_state(self) -> None:
        loop = self.loop
        period_s = max(1.0, loop.settings.state_write_interval_s)
        while not loop.stopping.is_set():
            await self._sleep(period_s)
            if not loop.stopping.is_set():
                await loop.save_state()

    async def _shutdown(self, tasks: list[asyncio.Task[None]], writer: asyncio.Task[None]) -> None:
        loop = self.loop
        settings = loop.settings
        reserve_s = settings.release_reserve_s
        ticks_s = max(0.5, settings.shutdown_grace_s - 2 * reserve_s)
        writer.cancel()
        running = await self._wait(tasks, ticks_s)
        if running:
            names = sorted(t.get_name().removeprefix("replicast:target:") for t in running)
            log.warning(
                "stopping: %d tick(s) still running after %g s, cut: %s",
                len(running), ticks_s, ", ".join(names[:10]),
            )  # fmt: skip
            for task in running:
                task.cancel()
            await asyncio.wait(running)
        saving = asyncio.create_task(loop.save_state(force=True), name="replicast:final-save")
        if await self._wait([saving], reserve_s):
            saving.cancel()
            loop.errors["state_save"] += 1
            log.warning("stopping: the state was not saved within %g s", reserve_s)
        log.info("control loop stopped")
