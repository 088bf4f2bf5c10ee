"""The live control loop: per target, every `interval_s`, observe -> decide -> actuate.

In: the config's targets, a metric source (`controller.prometheus.PrometheusSource`: ONE `read`
per round for every target due then, so targets share queries), an actuator per target
(`controller.actuators`), a `Leadership` (the Lease elector of `controller.leader`, or
`SoleInstance` without election) and an injected `Clock`. Out: scale calls, a bounded history
of DecisionRecords and conditions per target (`status()`, served by controller/app.py as
/status and /metrics), one JSON log line per decision keyed by its decision id
(`<target>/<now_s>/<sequence>`), and every policy's state saved on the Lease.

Each round: the targets due read their signals together; then each target, in its own `try`
(one bad target never stops the others), reads its workload, builds an `Observation`, ticks
its acting autoscaler and its shadows (`applies=False`: they decide on the same Observation
and never act), and acts only when this replica is the leader, neither the target nor the
loop is in dry run, no permanent error stopped it, and no workload condition refuses the
change (`WorkloadState.refusal`: another autoscaler, a pause, Pending pods). A change is
capped at `max_change_per_tick` replicas either way.

Fail-safe: a metric that is missing, stale or unreadable reaches the policy as None; the
policies' missing-data guard then blocks scale-down, so only fresh signals can move the count,
and the `MetricsMissing` condition says which signals and why. A `TemporaryError` from the
actuator brings the target's next tick forward or back per `retry_delays_s` (the server's
`delay_s` wins when longer); a `PermanentError` from a scale call stops acting on that target
until a restart (`ActuatorFailed`), while reads keep going so /status stays current.

Stopping: `stop()` lets the round in progress finish (a round is never cancelled inside a
scale call, even when `run` itself is cancelled), saves the state, and `run` returns; the
caller then releases the Lease (controller/app.py stops the tasks in that order).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from controller.actuators.base import (
    Actuator,
    ActuatorError,
    Clock,
    PermanentError,
    ScaleRefusedError,
    SystemClock,
    TemporaryError,
    WorkloadCondition,
    WorkloadState,
)
from controller.config import KubernetesTarget, TargetConfig
from controller.prometheus import SourceStats
from controller.signals import ACTIVATION, TargetQueries, observation_signals
from policies import Autoscaler, DecisionRecord, Observation, Outcome, SpecError, autoscaler

log = logging.getLogger(__name__)

STATE_VERSION = 1
# A decision reason becomes a metric label: its CamelCase head ("ScaleUpLimit"), at most this
# many distinct ones per target; anything else is "Other" (bounded label cardinality).
MAX_REASONS_PER_TARGET = 32
OTHER_REASON = "Other"
_REASON_HEAD = re.compile(r"^([A-Z][A-Za-z0-9]{0,47})(?::|$)")

# Error kinds counted per target (replicast_errors_total{kind}).
ERROR_KINDS = ("actuator_temporary", "actuator_permanent", "scale_refused", "decide", "internal")


class Action:
    """What a tick did with its decision (replicast_decisions_total{action})."""

    SCALED = "scaled"
    HOLD = "hold"  # the decision is the current count
    DRY_RUN = "dry_run"  # recorded only (the target's or the loop's dry run)
    NOT_LEADER = "not_leader"  # another replica acts
    REFUSED = "refused"  # a workload condition forbids the change
    HALTED = "halted"  # a permanent error stopped acting on the target
    FAILED = "failed"  # no decision, or the scale call failed

    ALL = (SCALED, HOLD, DRY_RUN, NOT_LEADER, REFUSED, HALTED, FAILED)


class Cond:
    """The loop's condition types; the workload's own (Conflict, Paused, CapacityExhausted)
    are reported under their names too."""

    METRICS_MISSING = "MetricsMissing"
    SCALE_REFUSED = "ScaleRefused"
    ACTUATOR_RETRYING = "ActuatorRetrying"
    ACTUATOR_FAILED = "ActuatorFailed"
    TICK_FAILED = "TickFailed"
    DRY_RUN = "DryRun"
    NOT_LEADER = "NotLeader"
    WORKLOAD = ("Conflict", "Paused", "CapacityExhausted")

    ALL = (
        METRICS_MISSING,
        SCALE_REFUSED,
        ACTUATOR_RETRYING,
        ACTUATOR_FAILED,
        TICK_FAILED,
        DRY_RUN,
        NOT_LEADER,
        *WORKLOAD,
    )


@dataclass(frozen=True, slots=True)
class LoopSettings:
    # At most this many replicas added or removed per tick, whatever the policy decided.
    max_change_per_tick: int = 10
    # After the n-th TemporaryError in a row the target's next tick comes this long after the
    # failed one (the last delay repeats); the error's own delay_s wins when longer.
    retry_delays_s: tuple[float, ...] = (5.0, 15.0, 30.0, 60.0, 120.0)
    max_retry_delay_s: float = 300.0
    # The policies' state is written to the Lease at most this often (and when stopping).
    state_save_interval_s: float = 30.0
    records_kept: int = 20  # DecisionRecords per target in /status

    def __post_init__(self) -> None:
        if self.max_change_per_tick < 1:
            raise ValueError(
                f"max_change_per_tick: must be >= 1 (got {self.max_change_per_tick}); "
                "use dry run to stop acting"
            )
        if not self.retry_delays_s or any(d < 0 for d in self.retry_delays_s):
            raise ValueError(f"retry_delays_s: must be delays >= 0 (got {self.retry_delays_s})")
        if self.state_save_interval_s < 0 or self.records_kept < 1:
            raise ValueError("state_save_interval_s must be >= 0 and records_kept >= 1")


# --- collaborators ---------------------------------------------------------------------------


class MetricSource(Protocol):
    """`controller.prometheus.PrometheusSource`, or a stub in tests."""

    stats: SourceStats

    async def read(
        self, targets: Sequence[TargetQueries], now_s: float
    ) -> dict[str, dict[str, float | None]]: ...


class Leadership(Protocol):
    """`controller.leader.LeaderElector`: who acts, and where the policies' state lives."""

    @property
    def is_leader(self) -> bool: ...

    async def save_state(self, state: Mapping[str, Any]) -> None: ...

    async def load_state(self) -> dict[str, Any]: ...


class SoleInstance:
    """No leader election (a sandbox, one replica): always the leader; state kept in memory."""

    identity = "sole-instance"

    def __init__(self) -> None:
        self._state: dict[str, Any] = {}

    @property
    def is_leader(self) -> bool:
        return True

    async def save_state(self, state: Mapping[str, Any]) -> None:
        self._state = dict(state)

    async def load_state(self) -> dict[str, Any]:
        return dict(self._state)


# --- what a tick leaves behind ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Condition:
    type: str
    reason: str
    message: str  # one line a person can act on
    since_s: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "reason": self.reason,
            "message": self.message,
            "since_s": self.since_s,
        }


@dataclass(frozen=True, slots=True)
class TickOutcome:
    """One tick of one target: the decision, what was done with it, and why."""

    target: str
    decision_id: str
    now_s: float
    action: str
    record: DecisionRecord | None = None
    shadows: tuple[tuple[str, DecisionRecord], ...] = ()
    workload: WorkloadState | None = None
    applied_replicas: int | None = None  # set (or, when not acting, that would have been set)
    capped: bool = False
    error_kind: str | None = None
    error: str | None = None
    duration_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "now_s": self.now_s,
            "action": self.action,
            "applied_replicas": self.applied_replicas,
            "capped": self.capped,
            "error": self.error,
            "record": self.record.to_dict() if self.record is not None else None,
            "shadow": {name: r.to_dict() for name, r in self.shadows},
        }


@dataclass(frozen=True, slots=True)
class RoundResult:
    now_s: float
    outcomes: tuple[TickOutcome, ...]
    prometheus_queries: int
    duration_s: float


RoundObserver = Callable[[RoundResult], None]


def reason_label(record: DecisionRecord) -> str:
    """A bounded label for a decision: its reason's CamelCase head ("ScaleUpLimit: the
    desired..." -> "ScaleUpLimit", as guards and most holds write it), else the direction of
    a policy's own free-text reason ("in_flight above target" -> "PolicyScaleUp")."""
    match = _REASON_HEAD.match(record.reason)
    if match:
        return match.group(1)
    if record.replicas > record.current_replicas:
        return "PolicyScaleUp"
    return "PolicyScaleDown" if record.replicas < record.current_replicas else "PolicyHold"


def capped(desired: int, current: int, max_change: int) -> int:
    """`desired`, at most `max_change` away from `current`."""
    return current + max(-max_change, min(max_change, desired - current))


def describe(target: TargetConfig) -> str:
    st = target.scale_target
    if isinstance(st, KubernetesTarget):
        return f"{st.kind.lower()} {st.namespace}/{st.name}"
    return f"{st.kind} {target.name}"


def _shadow_names(names: Sequence[str]) -> list[str]:
    """Policy names, with "#<n>" after a name used before ("slo", "slo#2")."""
    seen: Counter[str] = Counter()
    out = []
    for name in names:
        seen[name] += 1
        out.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return out


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


@dataclass(eq=False)
class TargetRuntime:
    """The loop's mutable record of one target (read by /status and /metrics)."""

    config: TargetConfig
    actuator: Actuator
    autoscaler: Autoscaler
    shadows: dict[str, Autoscaler]
    queries: TargetQueries
    next_due_s: float
    sequence: int = 0
    failures: int = 0  # TemporaryErrors in a row
    halted: str | None = None  # why acting stopped (a PermanentError from a scale call)
    ready: bool = False  # a tick has decided (and not failed) at least once
    last: TickOutcome | None = None
    history: deque[TickOutcome] = field(default_factory=deque)
    conditions: dict[str, Condition] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)
    missing: dict[str, str] = field(default_factory=dict)  # signal -> why it is None
    reasons: dict[str, float] = field(default_factory=dict)  # reason label -> 1 if current

    @property
    def name(self) -> str:
        return self.config.name

    def set_condition(self, type: str, reason: str, message: str, now_s: float) -> None:
        old = self.conditions.get(type)
        since_s = old.since_s if old is not None and old.reason == reason else now_s
        self.conditions[type] = Condition(type, reason, message, since_s)

    def clear(self, *types: str) -> None:
        for type in types:
            self.conditions.pop(type, None)

    def remember(self, outcome: TickOutcome) -> None:
        self.last = outcome
        self.history.append(outcome)
        self.actions[outcome.action] += 1
        if outcome.error_kind is not None:
            self.errors[outcome.error_kind] += 1
        if outcome.record is not None:
            label = reason_label(outcome.record)
            if label not in self.reasons and len(self.reasons) >= MAX_REASONS_PER_TARGET:
                label = OTHER_REASON
            self.reasons = dict.fromkeys(self.reasons, 0.0) | {label: 1.0}

    def status(self, *, acting: bool) -> dict[str, Any]:
        workload = self.last.workload if self.last is not None else None
        return {
            "scale_target": describe(self.config),
            "policy": self.autoscaler.name,
            "shadow": list(self.shadows),
            "interval_s": self.config.interval_s,
            "dry_run": self.config.dry_run,
            "acting": acting,
            "halted": self.halted,
            "ready": self.ready,
            "next_tick_s": self.next_due_s,
            "conditions": [c.to_dict() for c in self.conditions.values()],
            "workload": None if workload is None else _workload_dict(workload),
            "missing_signals": dict(self.missing),
            "errors": dict(self.errors),
            "records": [o.to_dict() for o in reversed(self.history)],
        }


def _workload_dict(state: WorkloadState) -> dict[str, Any]:
    return {
        "target": state.target,
        "replicas": state.replicas,
        "ready_replicas": state.ready_replicas,
        "starting_replicas": state.starting_replicas,
        "unschedulable_replicas": state.unschedulable_replicas,
        "held_replicas": state.held_replicas,
        "conditions": [{"type": c.type.value, "message": c.message} for c in state.conditions],
    }


# --- the loop --------------------------------------------------------------------------------


class ControlLoop:
    """Every target's observe -> decide -> actuate, on its own interval, one round at a time."""

    def __init__(
        self,
        targets: Sequence[TargetConfig],
        *,
        source: MetricSource,
        actuators: Mapping[str, Actuator],
        leadership: Leadership | None = None,
        clock: Clock | None = None,
        settings: LoopSettings | None = None,
        dry_run: bool = False,
        timer: Callable[[], float] | None = None,
    ) -> None:
        self.source = source
        self.leadership: Leadership = leadership if leadership is not None else SoleInstance()
        self.clock = clock if clock is not None else SystemClock()
        self.settings = settings if settings is not None else LoopSettings()
        self._timer = timer if timer is not None else time.perf_counter
        self._dry_run = dry_run
        missing = [t.name for t in targets if t.name not in actuators]
        if missing:
            raise ValueError(f"no actuator for target(s) {', '.join(missing)}")
        now_s = self.clock.now()
        self.targets: dict[str, TargetRuntime] = {
            t.name: self._runtime(t, actuators[t.name], now_s) for t in targets
        }
        self.errors: Counter[str] = Counter()  # not of one target: state_save, state_load, round
        self._observers: list[RoundObserver] = []
        self._stopping = asyncio.Event()
        self._was_leader = False
        self._loaded = False
        self._saved_at_s: float | None = None
        self._generation = 0  # successful saves
        self._instance = uuid.uuid4().hex  # tells this loop's saves from a predecessor's

    def _runtime(self, target: TargetConfig, actuator: Actuator, now_s: float) -> TargetRuntime:
        acting = autoscaler(dict(target.policy))
        names = _shadow_names([autoscaler(dict(s)).name for s in target.shadow])
        shadows = {
            n: autoscaler(dict(s), applies=False) for n, s in zip(names, target.shadow, strict=True)
        }
        return TargetRuntime(
            config=target,
            actuator=actuator,
            autoscaler=acting,
            shadows=shadows,
            queries=target.signal_queries(),
            next_due_s=now_s,
            history=deque(maxlen=self.settings.records_kept),
        )

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
        """Every target has decided once (what /readyz answers)."""
        return all(t.ready for t in self.targets.values())

    def acting(self, target: TargetRuntime) -> bool:
        """Whether this replica would scale `target` now."""
        dry = self._dry_run or target.config.dry_run
        return self.leadership.is_leader and not dry and target.halted is None

    def add_observer(self, observer: RoundObserver) -> None:
        """Called after every round (controller/app.py feeds its histograms from it)."""
        self._observers.append(observer)

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
            "prometheus": {
                "queries_total": stats.queries_total,
                "errors_total": dict(stats.errors_total),
                "last_errors": [
                    {"kind": e.kind, "message": e.message} for e in stats.last_errors[:5]
                ],
            },
            "targets": {n: t.status(acting=self.acting(t)) for n, t in self.targets.items()},
        }

    # --- running ---

    async def run(self) -> None:
        """Rounds until `stop()`; a round in progress always finishes; then the state is saved."""
        log.info("control loop started: %d target(s)", len(self.targets))
        try:
            while not self._stopping.is_set():
                await self._uncut_round()
                if not self._stopping.is_set():
                    await self._pause()
        finally:
            await self.save_state(force=True)
            log.info("control loop stopped")

    def stop(self) -> None:
        """Ask `run` to return after the round in progress (SIGTERM)."""
        if not self._stopping.is_set():
            log.info("stopping: finishing the current round first")
        self._stopping.set()

    async def _uncut_round(self) -> None:
        task = asyncio.create_task(self.round(), name="replicast:round")
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            # Cancelled from outside: let the round finish, never cut a scale call.
            await asyncio.wait({task})
            raise
        except Exception:  # a bug in the round itself; the loop must go on
            log.exception("control loop: round failed; next round as scheduled")
            self.errors["round"] += 1

    async def _pause(self) -> None:
        """Sleep on the injected clock until the next target is due, or until `stop()`."""
        wait_s = min(t.next_due_s for t in self.targets.values()) - self.clock.now()
        if wait_s <= 0:
            await asyncio.sleep(0)
            return
        sleeping = asyncio.ensure_future(self.clock.sleep(wait_s))
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({sleeping, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeping.cancel()
            stopping.cancel()

    async def round(self) -> RoundResult:
        """Tick every target due now: one metric read for all of them, then each in its own try."""
        now_s = self.clock.now()
        leader = await self._follow_leadership()
        due = [t for t in self.targets.values() if t.next_due_s <= now_s]
        if not due:
            return RoundResult(now_s, (), 0, 0.0)
        started = self._timer()
        queries_before = self.source.stats.queries_total
        values = await self._read(due, now_s)
        outcomes = await asyncio.gather(
            *(self._tick(t, values.get(t.name, {}), now_s, leader) for t in due)
        )
        if leader:
            await self.save_state()
        result = RoundResult(
            now_s,
            tuple(outcomes),
            self.source.stats.queries_total - queries_before,
            self._timer() - started,
        )
        for observer in self._observers:
            try:
                observer(result)
            except Exception:
                log.exception("control loop: round observer failed")
        return result

    async def _read(self, due: Sequence[TargetRuntime], now_s: float) -> dict[str, Any]:
        try:
            return await self.source.read([t.queries for t in due], now_s)
        except Exception:  # the source never raises for Prometheus; a bug must not stop ticks
            log.exception("metric source failed; every signal is missing this round")
            self.errors["metrics_read"] += 1
            return {}

    # --- one target ---

    async def _tick(
        self, t: TargetRuntime, values: Mapping[str, float | None], now_s: float, leader: bool
    ) -> TickOutcome:
        started = self._timer()
        t.sequence += 1
        decision_id = f"{t.name}/{now_s:.3f}/{t.sequence}"
        t.next_due_s = now_s + t.config.interval_s
        try:
            outcome = await self._observe_decide_act(t, values, now_s, leader, decision_id)
        except Exception as error:  # a bug with one target must not stop the others
            log.exception("%s: tick failed", decision_id)
            message = f"{type(error).__name__}: {_one_line(error)}; see the controller's log"
            t.set_condition(Cond.TICK_FAILED, "InternalError", message, now_s)
            outcome = TickOutcome(
                t.name, decision_id, now_s, Action.FAILED, error_kind="internal", error=message
            )
        outcome = replace(outcome, duration_s=self._timer() - started)
        if outcome.action != Action.FAILED:
            t.ready = True
            t.failures = 0
            t.clear(Cond.TICK_FAILED, Cond.ACTUATOR_RETRYING)
        t.remember(outcome)
        self._log(t, outcome, leader)
        return outcome

    async def _observe_decide_act(
        self,
        t: TargetRuntime,
        values: Mapping[str, float | None],
        now_s: float,
        leader: bool,
        decision_id: str,
    ) -> TickOutcome:
        try:
            state = await t.actuator.current()
        except ActuatorError as error:
            return self._actuator_failed(t, error, now_s, decision_id, None, reading=True)
        if t.halted is None:
            t.clear(Cond.ACTUATOR_FAILED)  # a read that failed for good works again
        self._workload_conditions(t, state, now_s)
        obs = self._observation(t, state, values, now_s)
        acting = leader and not (self._dry_run or t.config.dry_run) and t.halted is None
        t.autoscaler.applies = acting
        try:
            record = t.autoscaler.tick(obs)
        except Exception as error:  # a policy's bug: no decision this tick
            log.exception("%s: policy %s failed", decision_id, t.autoscaler.name)
            message = f"policy {t.autoscaler.name}: {type(error).__name__}: {_one_line(error)}"
            t.set_condition(Cond.TICK_FAILED, "PolicyFailed", message, now_s)
            return TickOutcome(
                t.name, decision_id, now_s, Action.FAILED, workload=state,
                error_kind="decide", error=message,
            )  # fmt: skip
        shadows = self._shadow_ticks(t, obs, decision_id)
        outcome = TickOutcome(t.name, decision_id, now_s, Action.HOLD, record, shadows, state)
        outcome = await self._act(t, outcome, state, record, leader)
        # The policy's guards count the scale the workload really got (a capped count, or the
        # current one when refused or failed), as HPA records only successful scales.
        committed = t.autoscaler.commit(*self._committed(outcome, record, state))
        return replace(outcome, record=committed)

    @staticmethod
    def _committed(
        outcome: TickOutcome, record: DecisionRecord, state: WorkloadState
    ) -> tuple[Outcome, int, str]:
        """What `commit` records for what `_act` did."""
        applied = (
            outcome.applied_replicas if outcome.applied_replicas is not None else state.replicas
        )
        kind = Outcome.CAPPED if outcome.capped else Outcome.APPLIED
        if outcome.action in (Action.SCALED, Action.HOLD):
            return kind, applied, "max_change_per_tick" if outcome.capped else ""
        if not record.applies:  # dry run or not acting: its own hypothetical count
            return kind, applied, outcome.action
        if outcome.action == Action.REFUSED:
            return Outcome.REFUSED, state.replicas, outcome.error or ""
        return Outcome.FAILED, state.replicas, outcome.error or outcome.action

    def _observation(
        self,
        t: TargetRuntime,
        state: WorkloadState,
        values: Mapping[str, float | None],
        now_s: float,
    ) -> Observation:
        activation = t.config.activation.signal if t.config.activation is not None else None
        signals = observation_signals(values, replicas=state.replicas, activation_signal=activation)
        obs = Observation(
            now_s=now_s,
            replicas=state.replicas,
            ready_replicas=state.ready_replicas,
            starting_replicas=state.starting_replicas,
            **signals,
        )
        why = self.source.stats.last_missing
        configured = [s for s in t.queries.queries if s != ACTIVATION]
        t.missing = {s: why.get((t.name, s), "empty") for s in configured if obs.signal(s) is None}
        required = [s for s in t.autoscaler.policy.required_signals if obs.signal(s) is None]
        if required:
            listed = ", ".join(f"{s} ({t.missing.get(s, 'no query')})" for s in required)
            message = (
                f"{listed}: missing or stale, so no scale-down until they are back; scale-up "
                "only on fresh signals; check Prometheus and the target's exporters"
            )
            t.set_condition(Cond.METRICS_MISSING, "SignalMissing", message, now_s)
        else:
            t.clear(Cond.METRICS_MISSING)
        return obs

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

    async def _act(
        self,
        t: TargetRuntime,
        outcome: TickOutcome,
        state: WorkloadState,
        record: DecisionRecord,
        leader: bool,
    ) -> TickOutcome:
        now_s = outcome.now_s
        self._mode_conditions(t, leader, now_s)
        applied = capped(record.replicas, state.replicas, self.settings.max_change_per_tick)
        outcome = replace(outcome, applied_replicas=applied, capped=applied != record.replicas)
        if applied == state.replicas:
            t.clear(Cond.SCALE_REFUSED)
            return outcome  # hold
        if not leader:
            return replace(outcome, action=Action.NOT_LEADER)
        if self._dry_run or t.config.dry_run:
            return replace(outcome, action=Action.DRY_RUN)
        if t.halted is not None:
            return replace(outcome, action=Action.HALTED)
        refusal = state.refusal(applied)
        if refusal is not None:
            return self._refused(t, outcome, state, applied, refusal)
        if not self.leadership.is_leader:  # the renew deadline passed during this tick
            return replace(outcome, action=Action.NOT_LEADER)
        try:
            await t.actuator.scale(applied, reason=f"{record.reason} ({outcome.decision_id})")
        except ScaleRefusedError as error:
            return self._refused(t, outcome, state, applied, error.condition)
        except ActuatorError as error:
            return self._actuator_failed(t, error, now_s, outcome.decision_id, outcome)
        t.clear(Cond.SCALE_REFUSED)
        return replace(outcome, action=Action.SCALED)

    def _mode_conditions(self, t: TargetRuntime, leader: bool, now_s: float) -> None:
        if leader:
            t.clear(Cond.NOT_LEADER)
        else:
            message = "another replica holds the leader Lease and acts; this one only decides"
            t.set_condition(Cond.NOT_LEADER, "Follower", message, now_s)
        if t.config.dry_run:
            message = "dry_run: true in the config: decisions are recorded, never applied"
            t.set_condition(Cond.DRY_RUN, "ConfigDryRun", message, now_s)
        elif self._dry_run:
            message = "the controller runs in dry run (--dry-run or POST /dry-run): recording only"
            t.set_condition(Cond.DRY_RUN, "ControllerDryRun", message, now_s)
        else:
            t.clear(Cond.DRY_RUN)

    def _refused(
        self,
        t: TargetRuntime,
        outcome: TickOutcome,
        state: WorkloadState,
        applied: int,
        refusal: WorkloadCondition,
    ) -> TickOutcome:
        message = f"{state.target}: not scaled {state.replicas} -> {applied}: {refusal.message}"
        t.set_condition(Cond.SCALE_REFUSED, refusal.type.value, message, outcome.now_s)
        return replace(outcome, action=Action.REFUSED, error_kind="scale_refused", error=message)

    def _actuator_failed(
        self,
        t: TargetRuntime,
        error: ActuatorError,
        now_s: float,
        decision_id: str,
        outcome: TickOutcome | None,
        *,
        reading: bool = False,
    ) -> TickOutcome:
        message = _one_line(error)
        base = outcome or TickOutcome(t.name, decision_id, now_s, Action.FAILED)
        if isinstance(error, PermanentError):
            if reading:  # nothing to act on; keep reading so a fix shows up by itself
                hint = "reads go on every interval"
            else:
                t.halted = message
                hint = "not acting on this target until the controller restarts"
            t.set_condition(Cond.ACTUATOR_FAILED, type(error).__name__, f"{message}; {hint}", now_s)
            log.error("%s: %s; %s", decision_id, message, hint)
            return replace(
                base, action=Action.FAILED, error_kind="actuator_permanent", error=message
            )
        t.failures += 1
        delays = self.settings.retry_delays_s
        delay_s = delays[min(t.failures, len(delays)) - 1]
        if isinstance(error, TemporaryError) and error.delay_s is not None:
            delay_s = max(delay_s, error.delay_s)
        delay_s = min(delay_s, self.settings.max_retry_delay_s)
        t.next_due_s = self.clock.now() + delay_s  # from the failure (retries took time)
        retry = f"{message}; failure {t.failures} in a row, next try in {delay_s:g} s"
        t.set_condition(Cond.ACTUATOR_RETRYING, type(error).__name__, retry, now_s)
        log.warning("%s: %s", decision_id, retry)
        return replace(base, action=Action.FAILED, error_kind="actuator_temporary", error=message)

    def _log(self, t: TargetRuntime, outcome: TickOutcome, leader: bool) -> None:
        record = outcome.record
        fields: dict[str, Any] = {
            "event": "decision",
            "decision_id": outcome.decision_id,
            "target": t.name,
            "now_s": outcome.now_s,
            "sequence": t.sequence,
            "action": outcome.action,
            "leader": leader,
            "dry_run": self._dry_run or t.config.dry_run,
        }
        if record is not None:
            fields |= {
                "policy": record.policy,
                "current_replicas": record.current_replicas,
                "desired_replicas": record.replicas,
                "applied_replicas": outcome.applied_replicas,
                "reason": record.reason,
                "shadow": {name: r.replicas for name, r in outcome.shadows},
            }
        if t.missing:
            fields["missing_signals"] = dict(t.missing)
        if outcome.error is not None:
            fields["error"] = outcome.error
        level = logging.WARNING if outcome.action == Action.FAILED else logging.INFO
        summary = (
            f"{record.current_replicas} -> {record.replicas}: {record.reason}"
            if record is not None
            else outcome.error
        )
        log.log(
            level,
            "%s %s: %s",
            outcome.decision_id,
            outcome.action,
            summary,
            extra={"json_fields": fields},
        )

    # --- leadership and state ---

    async def _follow_leadership(self) -> bool:
        """Whether this replica leads now; on taking over (or at start) load the saved state."""
        leader = self.leadership.is_leader
        if (leader and not self._was_leader) or not self._loaded:
            await self._load_state()
            self._loaded = True
        if self._was_leader and not leader:
            log.warning("no longer the leader: deciding in dry run until the Lease is back")
        elif leader and not self._was_leader:
            log.info("leader: acting on %d target(s)", len(self.targets))
        self._was_leader = leader
        return leader

    def state_document(self) -> dict[str, Any]:
        """Every target's policy (and shadow) state, JSON-ready, for the Lease annotation."""
        return {
            "version": STATE_VERSION,
            "saved_by": self._instance,
            "generation": self._generation + 1,
            "targets": {
                name: {
                    "policy": t.autoscaler.state,
                    "shadow": {n: s.state for n, s in t.shadows.items()},
                }
                for name, t in self.targets.items()
            },
        }

    async def save_state(self, *, force: bool = False) -> None:
        """Write `state_document()` through the Leadership (throttled unless `force`); only
        the leader writes, and a failure is logged and counted, never raised."""
        now_s = self.clock.now()
        interval_s = self.settings.state_save_interval_s
        if not force and self._saved_at_s is not None and now_s - self._saved_at_s < interval_s:
            return
        if not self.leadership.is_leader:
            return
        document = self.state_document()
        try:
            await self.leadership.save_state(document)
            self._saved_at_s = now_s
            self._generation += 1
        except ActuatorError as error:
            self.errors["state_save"] += 1
            log.warning("policy state not saved: %s", _one_line(error))

    async def _load_state(self) -> None:
        try:
            document = await self.leadership.load_state()
        except ActuatorError as error:
            self.errors["state_load"] += 1
            log.warning("policy state not loaded (starting fresh): %s", _one_line(error))
            return
        mine = (document.get("saved_by"), document.get("generation"))
        if self._generation and mine == (self._instance, self._generation):
            return  # what this loop saved last: its memory is as new or newer (leadership blip)
        saved = document.get("targets") if document.get("version") == STATE_VERSION else None
        if not isinstance(saved, Mapping):
            if document:
                log.warning("policy state on the Lease is not version %d; ignored", STATE_VERSION)
            return
        for name, t in self.targets.items():
            entry = saved.get(name)
            if isinstance(entry, Mapping):
                self._restore(t, entry)

    def _restore(self, t: TargetRuntime, entry: Mapping[str, Any]) -> None:
        try:
            if "policy" in entry:
                applies = t.autoscaler.applies
                t.autoscaler = autoscaler(dict(t.config.policy), entry["policy"], applies=applies)
        except (SpecError, TypeError, ValueError) as error:
            log.warning(
                "%s: saved state does not fit its policy any more (%s); starting fresh",
                t.name,
                _one_line(error),
            )
        shadows = entry.get("shadow")
        if not isinstance(shadows, Mapping):
            return
        specs = dict(zip(t.shadows, t.config.shadow, strict=True))
        for name, state in shadows.items():
            if name not in specs:
                continue
            try:
                t.shadows[name] = autoscaler(dict(specs[name]), state, applies=False)
            except (SpecError, TypeError, ValueError) as error:
                log.warning("%s: shadow %s starts fresh: %s", t.name, name, _one_line(error))
