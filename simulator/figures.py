"""What a run counts as it goes, and the `Summary` made of it at the end.

In: per-request outcomes as they settle (`Outcomes.fold`: arrival, service and start times),
the replica counts the loop applies (`Moves.note`), and after the loop the kernel's last
snapshot, latency histogram and the timeline. Out: the run's `Summary` (`summarize`): SLO
attainment per target, latency and wait quantiles, replica-hours, scale events, and why
requests missed. The loop that feeds it is `simulator.engine.simulate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from policies import Autoscaler
from simulator import kernel
from simulator.fold import fold_outcomes
from simulator.intervals import ArrivalSlots
from simulator.result import (
    FloatArray,
    LogHistogram,
    Slo,
    SloTarget,
    Summary,
    Timeline,
    cap_warning,
    slo_label,
    slo_targets,
    why,
)


@dataclass
class Outcomes:
    """Per-request results folded as they settle: fixed memory. `met` counts the first SLO
    target; `slots` every target, and the per-interval columns (`simulator.intervals`)."""

    slo: Slo | None
    keep: bool
    wait: LogHistogram
    requests: int = 0
    dropped: int = 0
    met: int = 0
    slots: ArrivalSlots = field(init=False)

    def __post_init__(self) -> None:
        self.slots = ArrivalSlots(slo_targets(self.slo))

    def fold(self, arrival_s: FloatArray, service_s: FloatArray, start_s: FloatArray) -> None:
        first = next(iter(slo_targets(self.slo)), None)
        threshold = math.inf if first is None else first.threshold_s
        on_wait = first is not None and first.on == "wait"
        self.slots.fold(arrival_s, service_s, start_s)
        dropped, within = fold_outcomes(
            arrival_s, service_s, start_s, threshold, on_wait,
            self.wait.counts, self.wait.low, self.wait.per_log,
        )  # fmt: skip
        self.requests += arrival_s.size
        self.dropped += dropped
        self.met += within


@dataclass
class Moves:
    """Scale events and direction changes, counted as the loop applies decisions."""

    events: int = 0
    direction_changes: int = 0
    last_direction: int = 0

    def note(self, current: int, desired: int) -> bool:
        if desired == current:
            return False
        direction = 1 if desired > current else -1
        self.events += 1
        self.direction_changes += self.last_direction not in (0, direction)
        self.last_direction = direction
        return True


def _quantile(hist: Any, q: float) -> float | None:
    """From the kernel's completion histogram (within 0.05 % of the exact order statistic)."""
    return kernel.histogram_quantile_s(hist, q) if int(np.sum(hist)) else None


def summarize(
    scaler: Autoscaler, duration_s: float, outcomes: Outcomes, end: kernel.Snapshot,
    timeline: Timeline, moves: Moves, latency_hist: Any,
) -> Summary:  # fmt: skip
    """The run's figures; completes the timeline's per-interval outcome columns first (the
    arrays `timeline` views are the result's)."""
    for name, column in outcomes.slots.per_interval(timeline.t_s).items():
        if name in Timeline.__dataclass_fields__:
            getattr(timeline, name)[:] = column
        else:
            timeline.extra[name] = column
    targets = slo_targets(outcomes.slo)
    requests = outcomes.requests
    each = [_target_figures(t, i, outcomes, latency_hist) for i, t in enumerate(targets)]
    missed = int(outcomes.slots.counts[:, 2].sum())
    attainment = 1.0 - missed / requests if targets and requests else None
    replica_hours = end.replica_seconds / 3600.0
    summary = Summary(
        policy=scaler.name,
        duration_s=duration_s,
        requests=requests,
        dropped=outcomes.dropped,
        slo=slo_label(outcomes.slo),
        slo_attainment=attainment,
        slo_met=None if attainment is None else all(met for _, _, met in each),
        latency_p50_s=_quantile(latency_hist, 0.5),
        latency_p95_s=_quantile(latency_hist, 0.95),
        latency_p99_s=_quantile(latency_hist, 0.99),
        wait_p50_s=outcomes.wait.quantile(0.5),
        wait_p95_s=outcomes.wait.quantile(0.95),
        wait_p99_s=outcomes.wait.quantile(0.99),
        replica_hours=replica_hours,
        mean_replicas=replica_hours * 3600.0 / duration_s if duration_s > 0 else 0.0,
        max_replicas=int(np.nanmax(timeline.replicas)) if timeline.replicas.size else 0,
        cost_usd=None,
        scale_events=moves.events,
        direction_changes=moves.direction_changes,
        slo_targets=tuple(t.label for t in targets),
        slo_attainments=tuple(a for a, _, _ in each),
        slo_quantiles_s=tuple(q for _, q, _ in each),
        slo_met_each=tuple(met for _, _, met in each),
        missed=missed if targets else 0,
        **_reasons(timeline, scaler.guards.max_replicas, missed if targets else 0),
    )
    return replace(summary, why=why(summary), warning=cap_warning(summary))


def _target_figures(
    target: SloTarget, i: int, outcomes: Outcomes, latency_hist: Any
) -> tuple[float, float, bool]:
    """(share within, its metric at its share, held) for one target; dropped requests count
    as outside it and as an infinite wait or latency."""
    requests = outcomes.requests
    if not requests:
        return math.nan, math.nan, False
    within = int(outcomes.slots.met[i]) / requests
    if target.on == "wait":
        served = outcomes.wait.total
        q = target.share * requests / served if served else math.inf
        value = (outcomes.wait.quantile(q) if q <= 1.0 else None) if served else None
    else:
        served = int(np.sum(latency_hist))
        q = target.share * requests / served if served else math.inf
        value = _quantile(latency_hist, q) if q <= 1.0 else None
    quantile = math.inf if value is None else value
    return within, quantile, within >= target.share


def _reasons(timeline: Timeline, cap: int, missed: int) -> dict[str, Any]:
    """`Summary`'s why-fields from the timeline (see `Summary`): each row's missed requests
    (those that arrived in its interval) go to the first of: the warm-up (started cold: until
    what the first tick asked for, at most the cap, is ready), max_replicas in force (the
    previous tick's decision), replicas starting (fewer ready than the decision in force), or
    too few asked for. Misses after the last tick (a partial interval) go with the last row."""
    n = timeline.t_s.size
    if n == 0:
        return {"replica_cap": cap}
    desired, ready, proposal = timeline.replicas, timeline.ready_replicas, timeline.proposal
    first_asked = int(desired[0] if np.isnan(proposal[0]) else max(proposal[0], desired[0]))
    started_cold = first_asked > ready[0]
    warm = np.flatnonzero(ready >= min(first_asked, cap))
    warm_rows = (int(warm[0]) + 1 if warm.size else n) if started_cold else 0
    in_force = np.concatenate(([ready[0]], desired[:-1]))
    rows_missed = np.nan_to_num(timeline.missed)
    rows_missed[-1] += max(0.0, missed - rows_missed.sum())
    cold = np.arange(n) < warm_rows
    at_max = ~cold & (in_force >= cap)
    starting = ~cold & ~at_max & ((ready < in_force) | (timeline.starting_replicas > 0))
    other = ~cold & ~at_max & ~starting
    asked = proposal[~np.isnan(proposal)]
    return {
        "replica_cap": cap,
        "at_max_share": float(np.mean(desired >= cap)),
        "above_max_share": float(np.mean(np.nan_to_num(proposal) > cap)),
        "proposal_max": int(asked.max()) if asked.size else 0,
        "initial_replicas": int(ready[0]),
        "first_asked": first_asked,
        "started_cold": started_cold,
        "warmup_s": float(timeline.t_s[warm_rows - 1]) if warm_rows else 0.0,
        "queue_max": int(np.nanmax(timeline.queue_depth)),
        "missed_cold_start": int(rows_missed[cold].sum()),
        "missed_at_max": int(rows_missed[at_max].sum()),
        "missed_starting": int(rows_missed[starting].sum()),
        "missed_other": int(rows_missed[other].sum()),
    }
