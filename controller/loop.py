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
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from controller.act import Acted, Gate, act
from controller.actuators.base import Actuator, WorkloadState
from controller.clock import Clock, SystemClock
from controller.config import TargetConfig
from controller.errors import (
    ActuatorError,
    PermanentError,
    RetryBudget,
    TemporaryError,
    one_line,
    retry_budget,
)
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
from controller.signals import Reading
from controller.state_store import MemoryStore, StateStore
from controller.target import Halt, TargetRuntime
from policies import DecisionRecord, Observation, SpecError

log = logging.getLogger(__name__)

# A resumed history whose newest tick is more than this many intervals old (or with such a gap
# inside the last window) is incomplete: one tick may be missed, two may not.
RESUME_GAP_INTERVALS = 1.5

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


@dataclass(frozen=True, slots=True)
class LoopSettings:
    # At most this many replicas added or removed per tick, whatever the policy decided.
    max_change_per_tick: int = 10
    # After the n-th TemporaryError in a row the target's next tick comes this long after the
    # failed one (the last delay repeats); the error's own delay_s wins when longer.
    retry_delays_s: tuple[float, ...] = (5.0, 15.0, 30.0, 60.0, 120.0)
    max_retry_delay_s: float = 300.0
    # A PermanentError from a scale call is tried again this long after it (config defaults
    # and `replicast run --permanent-error-retry-s`).
    permanent_error_retry_s: float = 300.0
    # Each state bucket is written at most this often (controller/state_store.py).
    state_write_interval_s: float = 10.0
    records_kept: int = 20  # outcomes per target in /status
    # SIGTERM: scale calls in flight finish, retries give up, the state is saved and the Lease
    # released within this (deploy/deployment.yaml's terminationGracePeriodSeconds is larger).
    shutdown_grace_s: float = 20.0
    # Kubernetes reads and writes of the targets in flight at once (the Lease has its own).
    max_in_flight: int = 16
    # The wall clock moving more than this many intervals away from monotonic time between two
    # ticks is a jump.
    clock_jump_intervals: float = 2.0

    def __post_init__(self) -> None:
        def check(name: str, low: float, high: float) -> None:
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value)) or not (
                low <= value <= high
            ):
                raise ValueError(f"{name}: must be {low:g} to {high:g} (got {value!r})")

        check("max_change_per_tick", 1, 10_000)
        check("max_retry_delay_s", 0, 86_400)
        check("permanent_error_retry_s", 1, 86_400)
        check("state_write_interval_s", 0, 3_600)
        check("records_kept", 1, 1_000)
        check("shutdown_grace_s", 1, 3_600)
        check("max_in_flight", 1, 1_024)
        check("clock_jump_intervals", 1, 100)
        if not self.retry_delays_s or any(
            not (math.isfinite(d) and 0 <= d <= 86_400) for d in self.retry_delays_s
        ):
            raise ValueError(
                f"retry_delays_s: must be delays of 0 to 86400 s (got {self.retry_delays_s})"
            )

    @property
    def release_reserve_s(self) -> float:
        """The part of the grace kept for saving the state and releasing the Lease."""
        return min(5.0, self.shutdown_grace_s / 3)


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
        self._was_leader = False
        self._takeover = asyncio.Lock()

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

    # --- leadership and state ---

    async def sync_leadership(self) -> bool:
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
            self._hold(t, Cond.HISTORY_GAP, "TakeoverOrRestart", why, now_s, quiet=True)
        return why

    def _hold(
        self, t: TargetRuntime, type: str, reason: str, why: str, now_s: float, quiet: bool = False
    ) -> None:
        held = t.autoscaler.engine_state.guards.hold_down_until_s
        t.hold_until_s = held
        t.set_condition(type, reason, why, now_s)
        log.log(logging.DEBUG if quiet else logging.WARNING, "%s: %s", t.name, why)

    async def save_state(self, *, force: bool = False) -> None:
        """Write the changed state (at most once per bucket per `state_write_interval_s`
        unless `force`); only the leader writes; a failure is logged and counted."""
        if not self.leadership.is_leader:
            return
        try:
            await self.store.flush(force=force)
        except ActuatorError as error:
            self.errors["state_save"] += 1
            log.warning("policy state not saved: %s", one_line(error))

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
            return await self._failed(t, error, now_s, decision_id, None, reading=True)
        if t.halt is None:
            t.clear(Cond.ACTUATOR_FAILED)  # a read that failed for good works again
        self._workload_conditions(t, state, now_s)
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
        self._mode_conditions(t, leader, dry_run, now_s)
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
            return await self._failed(t, acted.error, now_s, decision_id, outcome)
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
        self._hold(t, Cond.CLOCK_JUMP, "WallClockStep", f"{jump.describe()}: {why}", now_s)

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

    def _workload_conditions(self, t: TargetRuntime, state: WorkloadState, now_s: float) -> None:
        present = {c.type.value: c for c in state.conditions}
        for type in Cond.WORKLOAD:
            found = present.get(type)
            if found is None:
                t.clear(type)
            else:
                t.set_condition(type, type, found.message, now_s)

    def _mode_conditions(
        self, t: TargetRuntime, leader: bool, dry_run: str | None, now_s: float
    ) -> None:
        if leader:
            t.clear(Cond.NOT_LEADER)
        else:
            message = "another replica holds the leader Lease and acts; this one only decides"
            t.set_condition(Cond.NOT_LEADER, "Follower", message, now_s)
        if dry_run == "config":
            message = "dry_run: true in the config: decisions are recorded, never applied"
            t.set_condition(Cond.DRY_RUN, "ConfigDryRun", message, now_s)
        elif dry_run == "controller":
            message = "the controller runs in dry run (--dry-run or POST /dry-run): recording only"
            t.set_condition(Cond.DRY_RUN, "ControllerDryRun", message, now_s)
        else:
            t.clear(Cond.DRY_RUN)

    async def _failed(
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
            await self._permanent(t, error, now_s, reading=reading)
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

    async def _permanent(
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
            await self._warn(
                t, "FailedGetScale" if reading else "FailedRescale", f"{message}; {hint}"
            )

    async def _warn(self, t: TargetRuntime, reason: str, message: str) -> None:
        """A Warning Event on the target, when its actuator writes Events (Kubernetes); like
        HPA's FailedRescale / FailedGetScale. A failure to write it is logged, never raised."""
        warn = getattr(t.actuator, "warn", None)
        if warn is None:
            return
        try:
            await warn(reason, message)
        except ActuatorError as failure:
            log.warning("%s: %s Event not written: %s", t.name, reason, one_line(failure))
