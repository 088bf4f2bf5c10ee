"""Choosing as an operator would, and the plans' figures: the cheapest passing target of a
sweep, the clairvoyant and static plans measured, and the planner's bar (`verdict`).

In: sweeps of (target, `Measured`) and the SLO share; a scenario's plans. Out: a `Choice` per
policy, a plan's `Measured`, and the planner's PASS or MISS with the criteria missed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from simulator.quality.jobs import (
    CLAIRVOYANT_RUN,
    REACTIVE,
    REACTIVE_HOLDS_S,
    REACTIVE_MARGINS,
    Measured,
)
from simulator.scenarios import Scenario

K = TypeVar("K")  # what a sweep is keyed by: a target, or a Job

# The bar (issue 19): attainment >= the SLO share, and against HPA tuned in hindsight:
MAX_VS_HPA = 0.90  # replica-hours <= 0.90 x tuned HPA's (where a target meets the SLO)
MAX_DIRECTION_SHARE = 1 / 3  # direction changes <= tuned HPA's / 3


@dataclass(frozen=True)
class Choice:
    """The target an operator keeps; `passes` False when no swept target met the SLO."""

    policy: str
    target: float
    measured: Measured
    passes: bool


def cheapest_passing(
    sweep: Sequence[tuple[K, Measured]], slo_share: float, tie: Callable[[K], Any] = lambda _: 0
) -> tuple[K, Measured, bool]:
    """The cheapest (key, figures) that meets the SLO (ties: the smaller `tie(key)`), passing;
    else the highest attainment (ties: the cheaper), not passing."""
    passing = [(k, m) for k, m in sweep if (m.slo_attainment or 0.0) >= slo_share]
    if passing:
        key, measured = min(passing, key=lambda km: (km[1].replica_hours, tie(km[0])))
        return key, measured, True
    key, measured = max(sweep, key=lambda km: (km[1].slo_attainment or 0.0, -km[1].replica_hours))
    return key, measured, False


def choose_target(policy: str, sweep: Sequence[tuple[float, Measured]], slo_share: float) -> Choice:
    """The cheapest passing target (ties: the smaller target); else the highest attainment."""
    if not sweep:
        raise ValueError(f"{policy}: an empty sweep has no target to choose")
    target, measured, passes = cheapest_passing(sweep, slo_share, tie=lambda t: t)
    return Choice(policy, target, measured, passes)


def plan_moves(plan: npt.NDArray[np.int64]) -> tuple[int, int]:
    """(scale events, direction changes) of a plan, counted as the engine counts a run's."""
    steps = np.sign(np.diff(plan))
    moves = steps[steps != 0]
    return int(moves.size), int(np.count_nonzero(np.diff(moves)))


def plan_measured(sc: Scenario, plan: npt.NDArray[np.int64]) -> Measured:
    events, changes = plan_moves(plan)
    return Measured(None, None, None, sc.plan_replica_hours(plan), changes, events)


BAR = (
    f"bar: SLO attained >= the SLO share; replica-h <= {MAX_VS_HPA:g}x HPA tuned in hindsight "
    "(where no HPA target meets the SLO: <= the replica-h of the one that came closest); "
    "direction changes <= tuned HPA's / 3"
)


BOUNDS_NOTE = (
    f"{CLAIRVOYANT_RUN}: the clairvoyant plan (each window's fewest replicas meeting the SLO: "
    "Erlang-C for Poisson arrivals, else sized by replaying the window's requests) run in the "
    f"simulator, each window's count asked for one cold start ahead. {REACTIVE}: reads each "
    "window's planned count the instant the window starts (no metric lag, no estimation noise, "
    "but no window before it starts), at its cheapest passing headroom x release hold of "
    f"{', '.join(f'{m:.0%}' for m in REACTIVE_MARGINS)} x "
    f"{', '.join(f'{h / 60:g}' for h in REACTIVE_HOLDS_S)} min: a reference, not a bound"
)


def verdict(planner: Measured, hpa: Measured, hpa_passes: bool, slo_share: float) -> str:
    """PASS, or MISS and each criterion missed, named short (`BAR` in full): "SLO", "vs HPA",
    "direction". The figures behind it are the row's own columns."""
    rh = planner.replica_hours
    limit = MAX_VS_HPA * hpa.replica_hours if hpa_passes else hpa.replica_hours
    checks = {
        "SLO": (planner.slo_attainment or 0.0) >= slo_share,
        "vs HPA": rh <= limit,
        "direction": planner.direction_changes <= MAX_DIRECTION_SHARE * hpa.direction_changes,
    }
    missed = [name for name, ok in checks.items() if not ok]
    return "PASS" if not missed else "MISS: " + ", ".join(missed)
