"""The live control loop: per target, observe -> tick -> act -> commit, each on its own schedule.

In: the config's targets, a metric source (controller/prometheus.py), an actuator per target
(controller/actuators), a `Leadership` (the Lease elector of controller/leader.py, or
`SoleInstance`), a state store (controller/state_store.py) and an injected `Clock`. Out: scale
calls, per target a bounded history of outcomes and conditions (`status()`, served as /status
and /metrics by controller/app.py), one JSON log line per decision, and the policies' state in
the store.

One tick of one target, in small steps that pass data:
1. observe (controller/observe.py): its signals (read together with every target due at the
   same moment) and its workload -> an Observation, and why each missing signal is missing;
2. tick: the acting autoscaler and its shadows propose on that Observation (policies/);
3. act (controller/act.py): the one gate (leader, dry run, halted, workload refusals, max
   change per tick), then the scale call;
4. commit: the autoscaler records what was done (applied, capped, refused, failed), the
   outcome is logged and kept, and the new state is handed to the store.

Fail-safe: a missing, stale or unreadable signal reaches the policy as None, and the policies'
missing-data guard blocks scale-down. A `TemporaryError` moves that target's next tick per
`retry_delays_s` (a Retry-After wins); retries never run past one interval after the decision,
so no stale decision is written. A `PermanentError` from a scale call (RBAC, a deleted target)
is retried every `permanent_error_retry_s` (a Warning Event and a condition each time) while
the target keeps deciding. A takeover or a restart resumes from the newer of this replica's own
history and the saved one, holding scale-down for one window when part of it is unknown; a
wall-clock jump of more than `clock_jump_intervals` intervals moves the history and holds
scale-down for one window too. The scheduler (controller/scheduler.py) runs every target on its
own task; `round()` ticks every target due now, together (tests and the benchmark use it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from controller.act import Acted, Gate, act
from controller.actuators.base import Actuator, WorkloadState
from controller.clock import Clock, SystemClock
from controller.config import TargetConfig
from controller.errors import (
    ActuatorError,
    RetryBudget,
    retry_budget,
)
from controller.failures import Failures
from controller.observe import (
    MetricBatcher,
    MetricSource,
    missing_message,
    missing_signals,
    observation,
    read_many,
)
from controller.outcomes import (
    ERROR_KINDS,
    Action,
    Cond,
    RoundObserver,
    RoundResult,
    TickOutcome,
    log_outcome,
)
from controller.scheduler import Scheduler
from controller.settings import LoopSettings
from controller.signals import Reading
from controller.state_store import MemoryStore, StateStore
from controller.succession import Leadership, SoleInstance, Succession
from controller.target import TargetRuntime
from policies import DecisionRecord, Observation
from policies.text import one_line

log = logging.getLogger(__name__)

__all__ = [
    "ERROR_KINDS",
    "Action",
    "Cond",
    "ControlLoop",
    "Leadership",
    "LoopSettings",
    "RoundResult",
    "SoleInstance",
    "TargetRuntime",
    "TickOutcome",
]


class ControlLoop:
    """Every target's observe -> tick -> act -> commit, on its own schedule."""

    def __init__(
        self,
        targets: Sequence[TargetConfig],
        *,
        source: MetricSource,
        actuators: Mapping[str, Actuator],
        leadership: Leadership | None = None,
        store: StateStore | None = None,
        clock: Clock | None = None,
        settings: LoopSettings | None = None,
        dry_run: bool = False,
        timer: Callable[[], float] | None = None,
    ) -> None:
        self.source = source
        self.leadership: Leadership = leadership if leadership is not None else SoleInstance()
        self.store: StateStore = store if store is not None else MemoryStore()
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.settings = settings if settings is not None else LoopSettings()
        self.batcher = MetricBatcher(source, self.clock)
        self._timer = timer if timer is not None else time.perf_counter
        self._dry_run = dry_run
        missing = [t.name for t in targets if t.name not in actuators]
        if missing:
            raise ValueError(f"no actuator for target(s) {', '.join(missing)}")
        due = self.clock.monotonic()
        self.targets: dict[str, TargetRuntime] = {
            t.name: TargetRuntime.build(
                t, actuators[t.name], due_s=due, records_kept=self.settings.records_kept
            )
            for t in targets
        }
        self.errors: Counter[str] = Counter()  # not of one target: state_save, state_load, ...
        self.clock_jumps = 0
        self._observers: list[RoundObserver] = []
        self.stopping = asyncio.Event()
        self.succession = Succession(
            self.leadership, self.store, self.targets, self.clock, self.errors
        )
        self.failures = Failures(self.settings, self.clock)

    # --- switches and views ---

    @property
    def dry_run(self) -> bool:
        """The loop-wide dry run (targets with `dry_run: true` record only either way)."""
        return self._dry_run

    def set_dry_run(self, on: bool) -> None:
        if on != self._dry_run:
            log.warning("dry run %s for every target", "ON: recording only" if on else "OFF")
        self._dry_run = on

    @property
    def is_leader(self) -> bool:
        return self.leadership.is_leader

    @property
    def ready(self) -> bool:
        """What /readyz answers: every target has been tried once, and at least one of them
        can be read and scaled (its workload and its signals read, no permanent error)."""
        runtimes = self.targets.values()
        return all(t.tried for t in runtimes) and any(t.healthy for t in runtimes)

    def not_ready_reason(self) -> str:
        waiting = sorted(t.name for t in self.targets.values() if not t.tried)
        if waiting:
            return f"waiting for a first tick: {', '.join(waiting)}"
        return "no target can be read and scaled: " + "; ".join(
            f"{t.name}: {self._unhealthy_why(t)}" for t in list(self.targets.values())[:5]
        )

    @staticmethod
    def _unhealthy_why(t: TargetRuntime) -> str:
        for type in (Cond.ACTUATOR_FAILED, Cond.ACTUATOR_RETRYING, Cond.METRICS_MISSING):
            if type in t.conditions:
                return t.conditions[type].message
        return "see /status"

    def _gate_dry_run(self, target: TargetRuntime) -> str | None:
        if target.config.dry_run:
            return "config"
        return "controller" if self._dry_run else None

    def acting(self, target: TargetRuntime) -> bool:
        """Whether this replica would scale `target` now."""
        halted = target.halt is not None and self.clock.monotonic() < target.halt.retry_at_s
        return self.leadership.is_leader and self._gate_dry_run(target) is None and not halted

    def add_observer(self, observer: RoundObserver) -> None:
        """Called after every tick (one RoundResult per scheduler tick, or per `round()`)."""
        self._observers.append(observer)

    def next_tick_s(self, t: TargetRuntime) -> float:
        """When `t` is next due, as wall time (its schedule runs on monotonic time)."""
        return self.clock.now() + (t.next_due_s - self.clock.monotonic())

    def status(self) -> dict[str, Any]:
        stats = self.source.stats
        return {
            "leader": self.leadership.is_leader,
            "identity": getattr(self.leadership, "identity", None),
            "leader_election": not isinstance(self.leadership, SoleInstance),
            "dry_run": self._dry_run,
            "ready": self.ready,
            "now_s": self.clock.now(),
            "errors": dict(self.errors),
            "clock_jumps": self.clock_jumps,
            "prometheus": {
                "queries_total": stats.queries_total,
                "errors_total": dict(stats.errors_total),
                "last_errors": [
                    {"kind": e.kind, "message": e.message} for e in stats.last_errors[:5]
                ],
            },
            "targets": {
                n: t.status(acting=self.acting(t), next_tick_s=self.next_tick_s(t))
                for n, t in self.targets.items()
            },
        }

    # --- running ---

    async def run(self) -> None:
        """Every target on its own task until `stop()`; then a bounded shutdown."""
        await Scheduler(self).run()

    def stop(self) -> None:
        """SIGTERM: no new ticks; scale calls in flight finish; retries give up; then `run`
        saves the state and returns, within `settings.shutdown_grace_s`."""
        if not self.stopping.is_set():
            log.info("stopping: ticks in flight finish, then the state is saved")
        self.stopping.set()

    async def round(self) -> RoundResult:
        """Tick every target due now together: one metric read for all of them."""
        mono = self.clock.monotonic()
        due = [t for t in self.targets.values() if t.next_due_s <= mono]
        if not due:
            return RoundResult(self.clock.now(), (), 0, 0.0)
        started = self._timer()
        queries_before = self.source.stats.queries_total
        await self.sync_leadership()
        now_s = self.clock.now()
        readings = await read_many(self.source, [t.queries for t in due], now_s)
        outcomes = await asyncio.gather(
            *(self.tick(t, (now_s, readings.get(t.name, Reading()))) for t in due)
        )
        await self.save_state()
        result = RoundResult(
            now_s,
            tuple(outcomes),
            self.source.stats.queries_total - queries_before,
            self._timer() - started,
        )
        self.notify(result)
        return result

    def notify(self, result: RoundResult) -> None:
        for observer in self._observers:
            try:
                observer(result)
            except Exception:
                log.exception("control loop: observer failed")

    # --- leadership and state (controller/succession.py) ---

    async def sync_leadership(self) -> bool:
        """Whether this replica leads now; on taking over, every target's history resumed."""
        return await self.succession.sync()

    async def save_state(self, *, force: bool = False) -> None:
        """Write the changed state (leader only; a failure is logged and counted)."""
        await self.succession.save(force=force)

    # --- one target ---

    async def tick(
        self, t: TargetRuntime, reading: tuple[float, Reading] | None = None
    ) -> TickOutcome:
        """One tick of `t`: observe, decide, act, commit. `reading`: its signals, read already
        (by `round`); else they are read through the batcher."""
        started = self._timer()
        wall, mono = self.clock.now(), self.clock.monotonic()
        t.next_due_s = mono + t.config.interval_s
        self._check_clock(t, wall, mono)
        budget = RetryBudget(deadline_s=mono + t.config.interval_s, stopping=self.stopping)
        with retry_budget(budget):
            leader = await self.sync_leadership()
            now_s, got = reading if reading is not None else await self.batcher.read(t.queries)
            t.sequence += 1
            decision_id = f"{t.name}/{now_s:.3f}/{t.sequence}"
            try:
                outcome = await self._observe_decide_act(t, got, now_s, leader, decision_id)
            except Exception as error:  # a bug with one target must not stop the others
                log.exception("%s: tick failed", decision_id)
                message = f"{type(error).__name__}: {one_line(error)}; see the controller's log"
                t.set_condition(Cond.TICK_FAILED, "InternalError", message, now_s)
                outcome = TickOutcome(
                    t.name, decision_id, now_s, Action.FAILED, error_kind="internal", error=message
                )
                t.healthy = False
        outcome = replace(outcome, duration_s=self._timer() - started)
        t.tried = True
        if outcome.action != Action.FAILED:
            t.ready = True
            t.failures = 0
            t.clear(Cond.TICK_FAILED, Cond.ACTUATOR_RETRYING)
        t.remember(outcome)
        if leader and outcome.record is not None:
            self.store.put(t.name, t.state_entry())
        log_outcome(
            outcome,
            sequence=t.sequence,
            leader=leader,
            dry_run=self._gate_dry_run(t) is not None,
            missing=t.missing,
        )
        return outcome

    async def _observe_decide_act(
        self, t: TargetRuntime, reading: Reading, now_s: float, leader: bool, decision_id: str
    ) -> TickOutcome:
        try:
            state = await t.actuator.current()
        except ActuatorError as error:
            t.healthy = False
            return await self.failures.failed(t, error, now_s, decision_id, None, reading=True)
        if t.halt is None:
            t.clear(Cond.ACTUATOR_FAILED)  # a read that failed for good works again
        t.workload_conditions(state, now_s)
        obs = observation(state, reading, now_s, self._activation(t))
        self._missing(t, obs, reading, now_s)
        t.healthy = not reading.source_failed() and t.halt is None
        dry_run = self._gate_dry_run(t)
        t.autoscaler.applies = dry_run is None  # a follower tracks the real count
        try:
            record = t.autoscaler.tick(obs)
        except Exception as error:  # a policy's bug: no decision this tick
            log.exception("%s: policy %s failed", decision_id, t.autoscaler.name)
            message = f"policy {t.autoscaler.name}: {type(error).__name__}: {one_line(error)}"
            t.set_condition(Cond.TICK_FAILED, "PolicyFailed", message, now_s)
            return TickOutcome(
                t.name, decision_id, now_s, Action.FAILED, workload=state,
                error_kind="decide", error=message,
            )  # fmt: skip
        shadows = self._shadow_ticks(t, obs, decision_id)
        t.mode_conditions(leader, dry_run, now_s)
        halted = t.halt.message if t.halt and self.clock.monotonic() < t.halt.retry_at_s else None
        gate = Gate(follower=not leader, dry_run=dry_run, halted=halted)
        acted = await act(
            record, state, gate, t.actuator,
            max_change=self.settings.max_change_per_tick,
            still_leader=lambda: self.leadership.is_leader,
            decision_id=decision_id,
        )  # fmt: skip
        committed = t.autoscaler.commit(*acted.commit)
        return await self._outcome(t, acted, committed, shadows, state, now_s, decision_id)

    async def _outcome(
        self,
        t: TargetRuntime,
        acted: Acted,
        record: DecisionRecord,
        shadows: tuple[tuple[str, DecisionRecord], ...],
        state: WorkloadState,
        now_s: float,
        decision_id: str,
    ) -> TickOutcome:
        outcome = TickOutcome(
            t.name, decision_id, now_s, acted.action, record, shadows, state,
            applied_replicas=acted.applied, capped=acted.capped,
        )  # fmt: skip
        if acted.action == Action.SCALED and t.halt is not None:
            log.info("%s: scaled again after a permanent error: %s", decision_id, t.halt.message)
            t.halt = None
            t.healthy = True
            t.clear(Cond.ACTUATOR_FAILED)
        if acted.refusal is not None:
            message = (
                f"{state.target}: not scaled {state.replicas} -> {acted.applied}: "
                f"{acted.refusal.message}"
            )
            t.set_condition(Cond.SCALE_REFUSED, acted.refusal.type.value, message, now_s)
            return replace(outcome, error_kind="scale_refused", error=message)
        if acted.action in (Action.SCALED, Action.HOLD):
            t.clear(Cond.SCALE_REFUSED)
        if acted.error is not None:
            return await self.failures.failed(t, acted.error, now_s, decision_id, outcome)
        return outcome

    def _activation(self, t: TargetRuntime) -> str | None:
        return t.config.activation.signal if t.config.activation is not None else None

    def _missing(self, t: TargetRuntime, obs: Observation, reading: Reading, now_s: float) -> None:
        configured = list(t.queries.queries)
        t.missing = missing_signals(obs, reading, configured)
        message = missing_message(obs, t.autoscaler.policy.required_signals, t.missing)
        if message is None:
            t.clear(Cond.METRICS_MISSING)
        else:
            t.set_condition(Cond.METRICS_MISSING, "SignalMissing", message, now_s)

    def _check_clock(self, t: TargetRuntime, now_s: float, mono_s: float) -> None:
        """A wall-clock jump since the last tick (both clocks read together at its start):
        report it, move the history, hold scale-down for one window."""
        tolerance_s = self.settings.clock_jump_intervals * t.config.interval_s
        jump = t.watch.check(now_s, mono_s, tolerance_s)
        if t.hold_until_s is not None and now_s >= t.hold_until_s:
            t.hold_until_s = None
            t.clear(Cond.CLOCK_JUMP, Cond.HISTORY_GAP)
        if jump is None:
            return
        self.clock_jumps += 1
        why = t.autoscaler.rebase(jump_s=jump.jump_s, now_s=now_s)
        for shadow in t.shadows.values():
            shadow.rebase(jump_s=jump.jump_s, now_s=now_s)
        t.hold(Cond.CLOCK_JUMP, "WallClockStep", f"{jump.describe()}: {why}", now_s)

    def _shadow_ticks(
        self, t: TargetRuntime, obs: Observation, decision_id: str
    ) -> tuple[tuple[str, DecisionRecord], ...]:
        out = []
        for name, shadow in t.shadows.items():
            try:
                shadow.tick(obs)
                out.append((name, shadow.commit()))  # its own hypothetical count
            except Exception:  # a shadow's bug never touches the acting decision
                log.exception("%s: shadow policy %s failed", decision_id, name)
                t.errors["decide"] += 1
        return tuple(out)
