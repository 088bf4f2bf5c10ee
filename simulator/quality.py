"""Policy quality on the `gpu-llm` scenario (issue 10): the planner against tuned baselines.

In: a `Setting` (days, startup time, seed) and the targets to sweep per baseline. Out: a
`Report` per setting, one `Row` per policy (attainment, end-to-end p95, replica-hours, ratio to
the clairvoyant bound and to tuned HPA, direction changes, scale events, the planner's verdict),
as a rich table, markdown, JSON and a one-day plot. Used by `bench/policy_quality.py` and
`notebooks/policy_quality.ipynb`; the scenario itself lives in `simulator/scenarios.py`.

How a baseline is tuned, as an operator would: every target in `TARGETS` (concurrency per
replica, in service + queued) is simulated, and the cheapest target (fewest replica-hours) that
meets the SLO is kept; when none does, the one with the highest attainment, marked
"(none passes)". The clairvoyant and static rows are the scenario's plans (replica-hours,
scale events and direction changes counted from the plan); the static plan is also simulated,
so its row carries an attainment.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
from rich.table import Table

from simulator.engine import run
from simulator.scenarios import DAY_S, Scenario, gpu_llm

FloatArray = npt.NDArray[np.float64]
K = TypeVar("K")  # what a sweep is keyed by: a target, or a Job
TARGETS = tuple(3.0 + 0.5 * i for i in range(11))  # 3, 3.5, ..., 8 per replica
BASELINES = ("hpa", "knative", "ray")
# The planner's bar (issue 10): attainment >= the SLO share and these three.
MAX_VS_HPA = 0.75  # replica-hours <= 0.75 x tuned HPA's
MAX_VS_CLAIRVOYANT = 1.25  # replica-hours <= 1.25 x the clairvoyant bound
MAX_DIRECTION_SHARE = 1 / 3  # direction changes <= tuned HPA's / 3
# The reactive bound's sweep (simulator/oracle.py): headroom on the true rate x release hold.
REACTIVE_MARGINS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4)
REACTIVE_HOLDS_S = (0.0, 1200.0, 3600.0)
CLAIRVOYANT_RUN = "clairvoyant (simulated)"
REACTIVE = "reactive bound"


@dataclass(frozen=True)
class Setting:
    """One scenario instance: `days` of the series from day 0, `startup_s` cold start."""

    days: float = 1.0
    startup_s: float = 120.0
    seed: int = 1

    def scenario(self) -> Scenario:
        return gpu_llm(days=self.days, startup_s=self.startup_s)

    @property
    def label(self) -> str:
        return f"{self.days:g} d, startup {self.startup_s:g} s, seed {self.seed}"


def baseline_spec(policy: str, target: float, sc: Scenario) -> dict[str, Any]:
    """`target` requests per replica, counting those in service and those queued."""
    keys: dict[str, dict[str, Any]] = {
        "hpa": {"metric": "extra.concurrency", "target_per_replica": target},
        # Knative's `concurrency` metric is in_flight + queue_depth; utilization 1: the target.
        "knative": {
            "metric": "concurrency",
            "target_per_replica": target,
            "target_utilization": 1.0,
        },
        # Ray's ongoing requests default to in_flight + queue_depth.
        "ray": {"target_per_replica": target},
    }
    return {"policy": policy, **keys[policy], **sc.policy_defaults()}


def static_spec(sc: Scenario) -> dict[str, Any]:
    """The static plan as a policy: the peak window's count, held."""
    n = sc.static_replicas()
    bounds = {"min_replicas": n, "max_replicas": n}
    return {"policy": "schedule", "default": bounds, **bounds}


# --- one simulation --------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One run: `policy` is "planner", "static", `CLAIRVOYANT_RUN`, a baseline swept at
    `target`, or `REACTIVE` at margin `target` and hold `hold_s`."""

    setting: Setting
    policy: str
    target: float | None = None
    hold_s: float | None = None

    def spec(self, sc: Scenario) -> Any:
        if self.policy == "planner":
            return sc.planner_spec()
        if self.policy == "static":
            return static_spec(sc)
        if self.policy == CLAIRVOYANT_RUN:
            return sc.oracle(ahead_s=self.setting.startup_s)
        assert self.target is not None, f"{self.policy}: needs a target"
        if self.policy == REACTIVE:
            return sc.oracle(ahead_s=0.0, margin=self.target, hold_s=self.hold_s or 0.0)
        return baseline_spec(self.policy, self.target, sc)

    @property
    def swept(self) -> str:
        """How the progress lines and sweeps name the swept knob ("" for single runs)."""
        if self.target is None:
            return ""
        if self.policy == REACTIVE:
            return f"+{self.target:.0%}, hold {(self.hold_s or 0.0) / 60:g} min"
        return f"{self.target:g}"


@dataclass(frozen=True)
class Measured:
    """A run's figures (or a plan's: attainment and latency None)."""

    slo_attainment: float | None
    latency_p95_s: float | None
    wait_p99_s: float | None
    replica_hours: float
    direction_changes: int
    scale_events: int


@dataclass(frozen=True)
class Day:
    """The first day of a run's timeline, for the plot."""

    t_s: FloatArray
    replicas: FloatArray
    arrival_rate_rps: FloatArray


@dataclass(frozen=True)
class Outcome:
    job: Job
    measured: Measured
    day: Day
    wall_s: float


def measure(job: Job) -> Outcome:
    """Simulate one job (top level, so a worker process can run it)."""
    began = time.perf_counter()
    sc = job.setting.scenario()
    options = sc.run_options()
    if job.policy == "static":
        options["initial_replicas"] = sc.static_replicas()
    result = run(
        sc.profile, job.spec(sc), sc.model, seed=job.setting.seed, keep_records=False, **options
    )
    s, tl = result.summary, result.timeline
    measured = Measured(
        s.slo_attainment,
        s.latency_p95_s,
        s.wait_p99_s,
        s.replica_hours,
        s.direction_changes,
        s.scale_events,
    )
    first = tl.t_s < DAY_S
    day = Day(tl.t_s[first], tl.replicas[first], tl.arrival_rate_rps[first])
    return Outcome(job, measured, day, time.perf_counter() - began)


def jobs_for(
    setting: Setting, targets: Mapping[str, Sequence[float]], *, reactive: bool = False
) -> list[Job]:
    """The planner, the static plan, the clairvoyant plan simulated, every baseline at every
    one of its targets, and (`reactive`) the reactive bound's sweep."""
    jobs = [Job(setting, "planner"), Job(setting, "static"), Job(setting, CLAIRVOYANT_RUN)]
    jobs += [Job(setting, policy, float(t)) for policy, ts in targets.items() for t in ts]
    if reactive:
        jobs += [Job(setting, REACTIVE, m, h) for h in REACTIVE_HOLDS_S for m in REACTIVE_MARGINS]
    return jobs


def run_jobs(
    jobs: Sequence[Job],
    *,
    workers: int = 2,
    on_done: Callable[[int, int, Outcome], None] | None = None,
) -> list[Outcome]:
    """Every job, in `workers` spawned processes (1: in this one); outcomes in job order."""
    outcomes: list[Outcome | None] = [None] * len(jobs)

    def done(i: int, outcome: Outcome) -> None:
        outcomes[i] = outcome
        if on_done is not None:
            on_done(sum(o is not None for o in outcomes), len(jobs), outcome)

    if workers <= 1:
        for i, job in enumerate(jobs):
            done(i, measure(job))
    else:
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=spawn) as pool:
            futures = {pool.submit(measure, job): i for i, job in enumerate(jobs)}
            for future in as_completed(futures):
                done(futures[future], future.result())
    return [o for o in outcomes if o is not None]


# --- choosing a target, and the plans' figures -----------------------------------------------


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
    f"planner bar: SLO attained >= the SLO share, replica-h <= {MAX_VS_HPA:g}x tuned HPA and "
    f"<= {MAX_VS_CLAIRVOYANT:g}x the clairvoyant bound, direction changes <= tuned HPA's / 3"
)


BOUNDS_NOTE = (
    f"{CLAIRVOYANT_RUN}: the clairvoyant plan run in the simulator, each window's count asked "
    f"for one cold start ahead. {REACTIVE}: a policy that reads each window's true rate the "
    "instant the window starts (no metric lag, no estimation noise, but no window before it "
    "starts), at its cheapest passing headroom x release hold of "
    f"{', '.join(f'{m:.0%}' for m in REACTIVE_MARGINS)} x "
    f"{', '.join(f'{h / 60:g}' for h in REACTIVE_HOLDS_S)} min: what reacting costs with a "
    "fixed headroom (a learned one can do better)"
)


def verdict(planner: Measured, hpa: Measured, clairvoyant_rh: float, slo_share: float) -> str:
    """PASS, or MISS and each criterion missed, named short (`BAR` in full): "SLO", "vs HPA",
    "vs bound", "direction". The figures behind it are the row's own columns."""
    rh = planner.replica_hours
    checks = {
        "SLO": (planner.slo_attainment or 0.0) >= slo_share,
        "vs HPA": rh <= MAX_VS_HPA * hpa.replica_hours,
        "vs bound": rh <= MAX_VS_CLAIRVOYANT * clairvoyant_rh,
        "direction": planner.direction_changes <= MAX_DIRECTION_SHARE * hpa.direction_changes,
    }
    missed = [name for name, ok in checks.items() if not ok]
    return "PASS" if not missed else "MISS: " + ", ".join(missed)


# --- the report ------------------------------------------------------------------------------


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
    hpa = next((c.measured for c in choices if c.policy == "hpa"), None)

    def row(policy: str, target: str, m: Measured, verdict_text: str = "") -> Row:
        vs_hpa = None if hpa is None else m.replica_hours / hpa.replica_hours
        return Row(policy, target, m, m.replica_hours / bound.replica_hours, vs_hpa, verdict_text)

    rows, days = [], {}
    if "planner" in runs:
        planner = runs["planner"].measured
        text = "-" if hpa is None else verdict(planner, hpa, bound.replica_hours, sc.slo.share)
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


COLUMNS = (
    "policy",
    "target",
    "SLO attained",
    "latency p95",
    "replica-h",
    "vs clairvoyant",
    "vs tuned HPA",
    "direction changes",
    "scale events",
    "planner bar",
)


def row_cells(row: Row) -> list[str]:
    m = row.measured
    return [
        row.policy,
        row.target,
        "-" if m.slo_attainment is None else f"{m.slo_attainment:.2%}",
        "-" if m.latency_p95_s is None else f"{m.latency_p95_s:.3g} s",
        f"{m.replica_hours:,.1f}",
        f"{row.vs_clairvoyant:.2f}x",
        "-" if row.vs_hpa is None else f"{row.vs_hpa:.2f}x",
        str(m.direction_changes),
        str(m.scale_events),
        row.verdict or "-",
    ]


def table_rows(report: Report) -> list[dict[str, str]]:
    """The table as column -> cell dicts (a pandas DataFrame's records)."""
    return [dict(zip(COLUMNS, row_cells(row), strict=True)) for row in report.rows]


def title(report: Report) -> str:
    return f"{report.scenario}, seed {report.setting.seed}; SLO {report.slo}"


def rich_table(report: Report) -> Table:
    table = Table(title=title(report), title_justify="left")
    for col in COLUMNS:
        left = col in ("policy", "target", "planner bar")
        table.add_column(col, justify="left" if left else "right", no_wrap=col == "policy")
    for row in report.rows:
        table.add_row(*row_cells(row))
    return table


def markdown(report: Report) -> str:
    """The table and its bar, then the sweeps: per target, each policy's attainment and
    replica-hours."""
    lines = [f"### {title(report)}", "", "| " + " | ".join(COLUMNS) + " |"]
    lines.append("|" + "---|" * len(COLUMNS))
    lines += ["| " + " | ".join(row_cells(row)) + " |" for row in report.rows]
    lines += ["", BAR + ".", ""]
    if any(row.policy in (CLAIRVOYANT_RUN, REACTIVE) for row in report.rows):
        lines += [BOUNDS_NOTE + ".", ""]
    if report.reactive:
        holds = sorted({h for _, h, _ in report.reactive})
        by_setting = {(mg, h): m for mg, h, m in report.reactive}
        lines += [
            "| reactive headroom | " + " | ".join(f"hold {h / 60:g} min" for h in holds) + " |",
            "|---|" + "---|" * len(holds),
        ]
        for margin in sorted({mg for mg, _, _ in report.reactive}):
            at = [by_setting.get((margin, h)) for h in holds]
            lines.append(f"| +{margin:.0%} | " + " | ".join(map(_reactive_cell, at)) + " |")
        lines.append("")
    if report.sweeps:
        policies = list(report.sweeps)
        lines += ["| target | " + " | ".join(policies) + " |", "|---|" + "---|" * len(policies)]
        cells = {(p, t): m for p, sweep in report.sweeps.items() for t, m in sweep}
        for target in sorted({t for _, t in cells}):
            found = [cells.get((p, target)) for p in policies]
            lines.append(f"| {target:g} | " + " | ".join(map(_sweep_cell, found)) + " |")
    return "\n".join(lines) + "\n"


def _reactive_cell(m: Measured | None) -> str:
    return "-" if m is None else f"{_sweep_cell(m)}, {m.direction_changes} dc"


def _sweep_cell(m: Measured | None) -> str:
    if m is None:
        return "-"
    return f"{m.slo_attainment or 0.0:.2%}, {m.replica_hours:,.0f} replica-h"


def as_dict(report: Report) -> dict[str, Any]:
    return {
        "setting": asdict(report.setting),
        "scenario": report.scenario,
        "slo": report.slo,
        "rows": [
            {
                "policy": r.policy,
                "target": r.target,
                **asdict(r.measured),
                "vs_clairvoyant": r.vs_clairvoyant,
                "vs_hpa": r.vs_hpa,
                "verdict": r.verdict,
            }
            for r in report.rows
        ],
        "sweeps": {p: [{"target": t, **asdict(m)} for t, m in s] for p, s in report.sweeps.items()},
        "clairvoyant_plan": report.plan.tolist(),
        "static_replicas": report.static_replicas,
        "simulated_s": report.simulated_s,
        "reactive": [{"margin": mg, "hold_s": h, **asdict(m)} for mg, h, m in report.reactive],
    }


def to_json(reports: Sequence[Report], **extra: Any) -> str:
    return json.dumps({**extra, "reports": [as_dict(r) for r in reports]}, indent=1)


# --- the one-day plot ------------------------------------------------------------------------


def day_figure(report: Report) -> Any:
    """Load, each policy's replicas and the clairvoyant plan over the first day (a matplotlib
    Figure, made without pyplot so any backend, or none, works)."""
    from matplotlib.figure import Figure  # noqa: PLC0415 - matplotlib only when plotting

    fig = Figure(figsize=(11, 7), layout="constrained")
    load, reps = fig.subplots(2, 1, sharex=True, height_ratios=(1, 2))
    first = next(iter(report.days.values()))
    load.plot(first.t_s / 3600, first.arrival_rate_rps, lw=0.6, color="gray", label="arrivals")
    load.set_ylabel("req/s")
    load.legend(loc="upper right", fontsize=8)
    edges_h = np.arange(report.plan.size + 1) * report.window_s / 3600
    shown = edges_h <= 24 + 1e-9
    plan = np.append(report.plan, report.plan[-1])[shown]
    reps.step(
        edges_h[shown], plan, where="post", lw=1.6, color="black", label="clairvoyant plan (bound)"
    )
    reps.axhline(
        report.static_replicas,
        ls="--",
        lw=0.8,
        color="gray",
        label=f"static ({report.static_replicas})",
    )
    for row in report.rows:
        day = report.days.get(row.policy)
        if day is None:
            continue
        label = row.policy if row.target == "-" else f"{row.policy} @ {row.target}"
        label += f" ({row.measured.replica_hours:,.0f} replica-h)"
        reps.step(day.t_s / 3600, day.replicas, where="post", lw=0.9, label=label)
    reps.set_ylabel("replicas (desired)")
    reps.set_xlabel("hours (day 1)")
    reps.legend(loc="upper left", fontsize=8)
    fig.suptitle(title(report), fontsize=9)
    return fig
