"""One `Report` per setting: the planner, each tuned baseline, the bounds and the static plan.

In: a `Setting` and its `Outcome`s (`simulator.quality.jobs`), in any order. Out: a `Report`
of `Row`s with ratios to the clairvoyant bound and to tuned HPA, its sweeps and first days,
ready for `simulator.quality.render`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from simulator.quality.choice import cheapest_passing, choose_target, plan_measured, verdict
from simulator.quality.jobs import CLAIRVOYANT_RUN, REACTIVE, Day, Job, Measured, Outcome, Setting
from simulator.scenarios import Scenario


@dataclass(frozen=True)
class Row:
    policy: str
    target: str  # the chosen target, the static count, or "-"
    measured: Measured
    vs_clairvoyant: float
    vs_hpa: float | None  # None when HPA was not swept
    verdict: str = ""  # the planner row only


@dataclass(frozen=True)
class Report:
    setting: Setting
    scenario: str
    load: str
    slo: str
    rows: tuple[Row, ...]
    sweeps: dict[str, list[tuple[float, Measured]]]
    days: dict[str, Day]  # row policy -> the first day of its run
    plan: npt.NDArray[np.int64]  # the clairvoyant plan, one count per window
    window_s: float
    static_replicas: int
    simulated_s: float = 0.0  # run time summed over the runs (workers overlap)
    reactive: tuple[tuple[float, float, Measured], ...] = ()  # (margin, hold_s, figures)


def sweeps_of(outcomes: Sequence[Outcome]) -> dict[str, list[tuple[float, Measured]]]:
    """Each swept policy's (target, figures), by target."""
    sweeps: dict[str, list[tuple[float, Measured]]] = {}
    for o in sorted(outcomes, key=lambda o: o.job.target or 0.0):
        if o.job.target is not None and o.job.policy != REACTIVE:
            sweeps.setdefault(o.job.policy, []).append((o.job.target, o.measured))
    return sweeps


def static_measured(sc: Scenario, runs: Mapping[str, Outcome]) -> Measured:
    """The static run's figures, or (not simulated) the plan's."""
    if "static" in runs:
        return runs["static"].measured
    plan = np.full_like(sc.clairvoyant_plan(), sc.static_replicas())
    return plan_measured(sc, plan)


def build_report(setting: Setting, outcomes: Sequence[Outcome]) -> Report:
    """The rows for one setting from its outcomes (`jobs_for`'s, in any order): the planner,
    each tuned baseline, the clairvoyant bound, the static plan."""
    sc = setting.scenario()
    mine = [o for o in outcomes if o.job.setting == setting]
    runs = {o.job.policy: o for o in mine if o.job.target is None}
    sweeps = sweeps_of(mine)
    choices = [choose_target(p, s, sc.slo.share) for p, s in sweeps.items()]
    plan = sc.clairvoyant_plan()
    bound = plan_measured(sc, plan)
    hpa_choice = next((c for c in choices if c.policy == "hpa"), None)
    hpa = None if hpa_choice is None else hpa_choice.measured

    def row(policy: str, target: str, m: Measured, verdict_text: str = "") -> Row:
        vs_hpa = None if hpa is None else m.replica_hours / hpa.replica_hours
        return Row(policy, target, m, m.replica_hours / bound.replica_hours, vs_hpa, verdict_text)

    rows, days = [], {}
    if "planner" in runs:
        planner = runs["planner"].measured
        text = (
            "-"
            if hpa_choice is None
            else verdict(planner, hpa_choice.measured, hpa_choice.passes, sc.slo.share)
        )
        rows.append(row("planner", "-", planner, text))
        days["planner"] = runs["planner"].day
    for c in choices:
        target = f"{c.target:g}" + ("" if c.passes else " (none passes)")
        rows.append(row(c.policy, target, c.measured))
        days[c.policy] = next(o.day for o in mine if o.job == Job(setting, c.policy, c.target))
    if CLAIRVOYANT_RUN in runs:
        run = runs[CLAIRVOYANT_RUN]
        rows.append(row(CLAIRVOYANT_RUN, f"reads {setting.startup_s:g} s ahead", run.measured))
    reactive = [(o.job, o.measured) for o in mine if o.job.policy == REACTIVE]
    if reactive:
        job, measured, passes = cheapest_passing(reactive, sc.slo.share)
        rows.append(row(REACTIVE, job.swept + ("" if passes else " (none passes)"), measured))
        days[REACTIVE] = next(o.day for o in mine if o.job == job)
    rows.append(row("clairvoyant (bound)", "-", bound))
    n = sc.static_replicas()
    rows.append(row("static (peak window)", f"{n} replicas", static_measured(sc, runs)))
    simulated_s = math.fsum(o.wall_s for o in mine)
    reactive_sweep = tuple(sorted((j.target or 0.0, j.hold_s or 0.0, m) for j, m in reactive))
    return Report(
        setting,
        sc.name,
        setting.load,
        sc.slo.label,
        tuple(rows),
        sweeps,
        days,
        plan,
        sc.window_s,
        n,
        simulated_s,
        reactive_sweep,
    )
