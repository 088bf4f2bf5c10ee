"""The policy-quality runs: what is swept, one simulation per `Job`, and running them all.

In: a `Setting` (days, startup time, seed) and the targets to sweep per baseline. Out: one
`Outcome` per job (its `Measured` figures and the first `Day` of its timeline), from this
process or from workers of the sweeps' pool (`run_jobs`: `simulator.sweeps.pool`).
Next: `simulator.quality.report`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from simulator import scenarios
from simulator.engine import run
from simulator.scenarios import DAY_S, TARGETS_PER_8_SLOTS, Scenario
from simulator.sweeps.pool import executor_for, map_ordered

FloatArray = npt.NDArray[np.float64]

TARGETS = TARGETS_PER_8_SLOTS  # 3, 3.5, ..., 12 per replica of 8 slots (Scenario.targets)
BASELINES = ("hpa", "knative", "ray")

# The reactive bound's sweep (simulator/oracle.py): headroom on the true rate x release hold.
REACTIVE_MARGINS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4)
REACTIVE_HOLDS_S = (0.0, 1200.0, 3600.0)
CLAIRVOYANT_RUN = "clairvoyant (simulated)"
REACTIVE = "reactive reference"


@dataclass(frozen=True)
class Setting:
    """One scenario instance: `days` of the series from day 0, `startup_s` cold start; `name`
    a scenario of `simulator.scenarios` ("gpu-llm" replays `series`, the shipped one when
    None, as `shape`); `plan` the clairvoyant plan sized by simulation (`with_plan`)."""

    days: float = 1.0
    startup_s: float = 120.0
    seed: int = 1
    name: str = "gpu-llm"
    shape: str = "step"
    series: str | None = None
    plan: tuple[int, ...] | None = field(default=None, repr=False)

    def knobs(self) -> dict[str, Any]:
        knobs: dict[str, Any] = {"days": self.days}
        if self.name == "gpu-llm":
            knobs |= {"shape": self.shape, "series": self.series}
        return knobs

    def scenario(self) -> Scenario:
        return scenarios.scenario(
            self.name, startup_s=self.startup_s, plan=self.plan, **self.knobs()
        )

    @property
    def needs_plan(self) -> bool:
        return self.plan is None and scenarios.needs_sized_plan(self.name, self.shape)

    def with_plan(self) -> Setting:
        """This setting with its clairvoyant plan sized by simulation when its arrivals are
        not Poisson (the plan does not depend on the cold start)."""
        if not self.needs_plan:
            return self
        return replace(self, plan=scenarios.sized_plan(self.name, **self.knobs()))

    @property
    def load(self) -> str:
        """The load, as a table's title names it."""
        if self.name != "gpu-llm":
            return f"{self.name} (its own timestamps)"
        series = "servegen-14d" if self.series is None else Path(self.series).name
        return f"{series} {self.shape}, {self.days:g} d"

    @property
    def label(self) -> str:
        return f"{self.load}, startup {self.startup_s:g} s, seed {self.seed}"


def with_plans(settings: Sequence[Setting], executor: Executor | None = None) -> list[Setting]:
    """Each setting with its sized plan, each distinct plan computed once (on `executor`)."""
    keys = {s: replace(s, startup_s=0.0) for s in settings if s.needs_plan}
    todo = list(dict.fromkeys(keys.values()))
    if executor is None:
        done = [s.with_plan() for s in todo]
    else:
        done = map_ordered(Setting.with_plan, todo, executor)
    plans = {k: d.plan for k, d in zip(todo, done, strict=True)}
    return [replace(s, plan=plans[keys[s]]) if s in keys else s for s in settings]


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
    setting: Setting, targets: Mapping[str, Sequence[float] | None], *, reactive: bool = False
) -> list[Job]:
    """The planner, the static plan, the clairvoyant plan simulated, every baseline at every
    one of its targets (None: the scenario's `targets`), and (`reactive`) the reactive
    reference's sweep."""
    jobs = [Job(setting, "planner"), Job(setting, "static"), Job(setting, CLAIRVOYANT_RUN)]
    default = setting.scenario().targets if None in targets.values() else ()
    jobs += [
        Job(setting, policy, float(t))
        for policy, ts in targets.items()
        for t in (default if ts is None else ts)
    ]
    if reactive:
        jobs += [Job(setting, REACTIVE, m, h) for h in REACTIVE_HOLDS_S for m in REACTIVE_MARGINS]
    return jobs


def run_jobs(
    jobs: Sequence[Job],
    *,
    workers: int = 2,
    on_done: Callable[[int, int, Outcome], None] | None = None,
    executor: Executor | None = None,
) -> list[Outcome]:
    """Every job, outcomes in job order: on `executor` (any concurrent.futures one, a Dask
    cluster's included), else on the sweeps' local pool of `workers` spawned processes (1: in
    this one)."""
    if executor is not None:
        return map_ordered(measure, jobs, executor, on_done=on_done)
    with executor_for("process", workers) as pool:
        return map_ordered(measure, jobs, pool, on_done=on_done)
