"""Succession: who acts, and where a new leader's history comes from.

In: a `Leadership` (the Lease elector of controller/leader.py, or `SoleInstance`), the state
store (controller/state_store.py), the targets' runtimes. Out, on every tick
(`sync`): whether this replica leads; on taking over (or at the first start), every target's
autoscalers resumed from the newer of their own history (a standby decides on the same inputs
all along, without acting) and the saved one, joined (policies.protocol.resume), with scale-down
held for one window where part of the last window is unknown (condition `HistoryGap`).
`save` writes the changed state, only as the leader.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any, Protocol

from controller.clock import Clock
from controller.errors import ActuatorError
from controller.outcomes import Cond
from controller.state_store import StateStore
from controller.target import TargetRuntime
from policies import SpecError
from policies.text import one_line

log = logging.getLogger("controller.loop")

# A resumed history whose newest tick is more than this many intervals old (or with such a gap
# inside the last window) is incomplete: one tick may be missed, two may not.
RESUME_GAP_INTERVALS = 1.5


class Leadership(Protocol):
    """`controller.leader.LeaderElector`, or `SoleInstance`: who acts."""

    @property
    def is_leader(self) -> bool: ...


class SoleInstance:
    """No leader election (a sandbox, one replica): always the leader."""

    identity = "sole-instance"

    @property
    def is_leader(self) -> bool:
        return True


class Succession:
    def __init__(
        self,
        leadership: Leadership,
        store: StateStore,
        targets: Mapping[str, TargetRuntime],
        clock: Clock,
        errors: Counter[str],
    ) -> None:
        self.leadership, self.store, self.targets = leadership, store, targets
        self.clock, self.errors = clock, errors
        self._was_leader = False
        self._takeover = asyncio.Lock()

    async def sync(self) -> bool:
        """Whether this replica leads now; on taking over, resume every target's history."""
        leader = self.leadership.is_leader
        if leader == self._was_leader:
            return leader
        async with self._takeover:
            leader = self.leadership.is_leader
            if leader and not self._was_leader:
                await self._take_over()
            elif self._was_leader and not leader:
                log.warning("no longer the leader: deciding without acting until the Lease is back")
            self._was_leader = leader
        return leader

    async def _take_over(self) -> None:
        names = list(self.targets)
        try:
            saved = await self.store.load(names)
        except ActuatorError as error:
            self.errors["state_load"] += 1
            log.warning("policy state not loaded (%s); resuming from own history", one_line(error))
            saved = {}
        now_s = self.clock.now()
        held: Counter[str] = Counter()
        for name, t in self.targets.items():
            why = self._resume(t, saved.get(name, {}), now_s)
            if why is not None:
                held[why.partition(";")[0]] += 1
        level = logging.WARNING if any("no history to" not in w for w in held) else logging.INFO
        log.log(
            level,
            "leader: acting on %d target(s); %d resumed from saved state; scale-down held for "
            "one window on %d (%s)",
            len(self.targets),
            sum(1 for n in names if n in saved),
            sum(held.values()),
            ", ".join(f"{n}: {w}" for w, n in held.most_common()) or "none",
        )

    def _resume(self, t: TargetRuntime, entry: Mapping[str, Any], now_s: float) -> str | None:
        max_gap_s = RESUME_GAP_INTERVALS * t.config.interval_s
        policy = entry.get("policy") if isinstance(entry, Mapping) else None
        try:
            why = t.autoscaler.resume(policy, now_s=now_s, max_gap_s=max_gap_s)
        except (SpecError, TypeError, ValueError) as error:
            log.warning("%s: saved state does not fit its policy (%s)", t.name, one_line(error))
            why = t.autoscaler.resume(None, now_s=now_s, max_gap_s=max_gap_s)
        shadows = entry.get("shadow") if isinstance(entry, Mapping) else None
        for name, shadow in t.shadows.items():
            state = shadows.get(name) if isinstance(shadows, Mapping) else None
            try:
                shadow.resume(state, now_s=now_s, max_gap_s=max_gap_s)
            except (SpecError, TypeError, ValueError):
                shadow.resume(None, now_s=now_s, max_gap_s=max_gap_s)
        if why is not None:
            t.hold(Cond.HISTORY_GAP, "TakeoverOrRestart", why, now_s, quiet=True)
        return why

    async def save(self, *, force: bool = False) -> None:
        """Write the changed state (at most once per bucket per `state_write_interval_s`
        unless `force`); only the leader writes; a failure is logged and counted."""
        if not self.leadership.is_leader:
            return
        try:
            await self.store.flush(force=force)
        except ActuatorError as error:
            self.errors["state_save"] += 1
            log.warning("policy state not saved: %s", one_line(error))
