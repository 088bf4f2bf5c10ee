"""The plan: screen every SKU x policy by the queueing model, simulate the finalists, choose.

In: `PlanInput` (the profile with its notes, the SLO, the candidates of `simulator.plan.candidates`,
the policies, growth, an optional GPU quota, an executor). Steps:
1. **Screen** (`simulator.plan.needed`): replicas needed per 10-minute window for each candidate
   (SKU x tensor parallel), its VMs (floor(GPUs / tp) replicas a VM) and their on-demand cost:
   the lower bound no autoscaler beats. Each policy configuration's steady-state replicas per
   window (a target-based policy holds ceil(busy slots / target); a queueing-based one the
   needed count) is screened the same way: feasible when the windows where it holds at least the
   needed count carry the SLO's share of requests.
2. **Simulate** the finalists through the sweeps' pool (any executor): the three cheapest
   feasible configurations of every SKU (one a policy, each family's cheapest among them)
   whose lower bound is within `prune` of the best SKU's (the others cannot win by the
   screen's own bound; listed with it), on the whole profile with cold starts (node
   provisioning + model load: new nodes for every scale-up).
3. **Choose**: the cheapest simulated configuration that meets the SLO, at its best reserved /
   burst split (simulator.plan.split); replayed on other seeds to check it.
4. **Grow**: each step of the growth horizon by the queueing model: the replicas and VMs the
   chosen SKU needs, the month the chosen max_replicas or the GPU quota stops meeting the SLO.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from simulator.engine import run
from simulator.model import ReplicaModel
from simulator.observe import metrics_for
from simulator.plan.growth import Growth
from simulator.plan.needed import (
    WINDOW_S,
    ServiceStats,
    arrival_scv,
    replicas_needed,
    service_stats,
    window_rates,
)
from simulator.plan.split import Split, splits
from simulator.profiles import Profile
from simulator.result import SloTarget
from simulator.sweeps.pool import map_ordered

FloatArray = npt.NDArray[np.float64]
TARGET_SHARES = (0.5, 0.625, 0.75, 0.875)  # target-based policies: targets as shares of slots
TARGET_POLICIES = ("hpa", "keda", "ray", "knative")
QUEUEING_POLICIES = ("planner", "slo", "predictive")
DEFAULT_POLICIES = ("hpa", "keda", "knative", "ray", "slo", "predictive", "planner")
FINALISTS_PER_SKU = 3
PRUNE = 0.30  # simulate SKUs whose lower bound is within 30 % of the best one's
INTERVAL_S = 15.0
NO_GROWTH = Growth(0.0, 3, 0)


@dataclass(frozen=True)
class PlanInput:
    profile: Profile
    profile_name: str
    model_name: str
    slo: SloTarget
    candidates: Sequence[Any]  # simulator.plan.candidates.Candidate
    policies: Sequence[str] = DEFAULT_POLICIES
    growth: Growth = NO_GROWTH
    quota_gpus: int | None = None
    seed: int = 1
    check_seeds: Sequence[int] = (2, 3)
    prune: float = PRUNE
    notes: Sequence[str] = ()


@dataclass
class Screened:
    """One candidate (SKU x tp) by the queueing model."""

    candidate: Any
    stats: ServiceStats
    needed: npt.NDArray[np.int64]  # replicas per window
    vms: npt.NDArray[np.int64]
    lower_usd_month: float  # on demand, VMs exactly as needed every window
    feasible: bool
    why: str = ""
    configs: list[tuple[dict[str, Any], float, bool]] = field(default_factory=list)
    simulated: bool = False


@dataclass
class Simulated:
    """One finalist simulated on the whole profile."""

    candidate: Any
    spec: dict[str, Any]
    label: str
    summary: dict[str, Any]
    t_s: FloatArray
    replicas: FloatArray  # the most replicas in use in each 10-minute window
    vms: FloatArray
    splits: list[Split]
    screen_usd_month: float

    @property
    def meets(self) -> bool:
        return bool(self.summary.get("slo_met"))

    @property
    def best(self) -> Split:
        return min(self.splits, key=lambda s: s.usd_per_month)

    @property
    def gpu_hours(self) -> float:
        gpus_per_replica = self.candidate.tensor_parallel
        return float(self.summary["replica_hours"]) * gpus_per_replica


@dataclass
class GrowthStep:
    months: int
    factor: float
    peak_rps: float
    peak_replicas: int
    peak_vms: int
    peak_gpus: int
    usd_month_lower: float
    within_max: bool
    within_quota: bool | None


@dataclass
class Plan:
    input: PlanInput
    window_s: float
    starts: FloatArray
    rates: FloatArray
    screened: list[Screened]
    simulated: list[Simulated]
    chosen: Simulated | None
    checks: list[dict[str, Any]]
    growth: list[GrowthStep]
    max_replicas: int
    wall_s: dict[str, float] = field(default_factory=dict)


# --- 1. the screen ---------------------------------------------------------------------------


def _vm_cost(vms: npt.ArrayLike, window_s: float, usd_per_vm_h: float, hours: float) -> float:
    vm_hours = float(np.sum(vms)) * window_s / 3600.0
    return vm_hours * usd_per_vm_h * (730.0 / hours) if hours > 0 else math.nan


def policy_configs(name: str, slots: int, slo: SloTarget) -> list[dict[str, Any]]:
    """The configurations of one policy the plan considers on a SKU with `slots` a replica."""
    target_key = "wait_target_s" if slo.on == "wait" else "latency_target_s"
    sizing = {target_key: slo.threshold_s, "percentile": slo.share, "slots_per_replica": slots}
    if name == "planner":
        return [{"policy": "planner", **sizing}]
    if name == "slo":
        return [{"policy": "slo", **sizing}]
    if name == "predictive":
        return [{"policy": "predictive", **sizing, "reactive": True}]
    out = []
    for share in TARGET_SHARES:
        target = max(1.0, round(share * slots, 2))
        if name == "hpa":
            out.append({"policy": "hpa", "metric": "in_flight", "target_per_replica": target})
        elif name == "keda":
            out.append(
                {"policy": "keda", "metric": "in_flight", "threshold": target, "min_replicas": 1}
            )
        elif name == "ray":
            out.append({"policy": "ray", "target_per_replica": target})
        elif name == "knative":
            out.append({"policy": "knative", "target_per_replica": target, "min_replicas": 1})
    return out


def _held(spec: dict[str, Any], needed: npt.NDArray[np.int64], busy: FloatArray) -> FloatArray:
    """A configuration's steady-state replicas per window."""
    if spec["policy"] in QUEUEING_POLICIES:
        return needed.astype(np.float64)
    target = float(spec.get("target_per_replica", spec.get("threshold", 1.0)))
    return np.ceil(busy / target - 1e-9)


def screen(
    plan_in: PlanInput, starts: FloatArray, rates: FloatArray, window_s: float
) -> list[Screened]:
    hours = plan_in.profile.duration_s / 3600.0
    scv = arrival_scv(plan_in.profile, starts)
    out = []
    weights = rates / rates.sum() if rates.sum() > 0 else np.ones_like(rates) / len(rates)
    for cand in plan_in.candidates:
        model: ReplicaModel = cand.replica_model()
        stats = service_stats(plan_in.profile, model, plan_in.slo.share)
        slots = cand.slots_per_replica
        needed = replicas_needed(rates, stats, plan_in.slo, slots, scv)
        impossible = bool(np.any(needed > 100_000))
        vms = np.ceil(needed / cand.replicas_per_vm).astype(np.int64)
        price = float(cand.sku.usd_per_hour.on_demand)
        lower = _vm_cost(vms, window_s, price, hours) if not impossible else math.inf
        why = ""
        if impossible:
            why = (
                f"service time p{100 * plan_in.slo.share:g} {stats.quantile_s:.2f} s leaves no "
                f"room for the {plan_in.slo.label} target"
            )
        s = Screened(cand, stats, needed, vms, lower, not impossible, why)
        busy = rates * stats.mean_s
        for name in plan_in.policies:
            for spec in policy_configs(name, slots, plan_in.slo):
                held = _held(spec, needed, busy)
                share_ok = float(np.sum(weights[held >= needed]))
                cost = _vm_cost(np.ceil(held / cand.replicas_per_vm), window_s, price, hours)
                s.configs.append((spec, cost, share_ok >= plan_in.slo.share and not impossible))
        out.append(s)
    return out


def finalists(
    screened: list[Screened], prune: float
) -> list[tuple[Screened, dict[str, Any], float]]:
    feasible = [s for s in screened if s.feasible]
    if not feasible:
        return []
    best = min(s.lower_usd_month for s in feasible)
    out = []
    for s in sorted(feasible, key=lambda x: x.lower_usd_month):
        if s.lower_usd_month > best * (1.0 + prune):
            continue
        ok = sorted((c for c in s.configs if c[2]), key=lambda c: c[1])
        chosen = _spread(ok) or sorted(s.configs, key=lambda c: c[1])[:1]
        s.simulated = True
        out += [(s, spec, cost) for spec, cost, _ in chosen]
    return out


def _spread(
    ok: list[tuple[dict[str, Any], float, bool]],
) -> list[tuple[dict[str, Any], float, bool]]:
    """The FINALISTS_PER_SKU cheapest feasible configurations, at most one a policy, the
    cheapest of each family first (queueing-based, target-based): the queueing policies tie
    the lower bound in the screen, so without this the target-based ones would never run."""
    order = {name: i for i, name in enumerate(DEFAULT_POLICIES[::-1])}  # ties: planner first
    ok = sorted(ok, key=lambda c: (c[1], order.get(c[0]["policy"], 99)))
    out: list[tuple[dict[str, Any], float, bool]] = []
    for family in (QUEUEING_POLICIES, TARGET_POLICIES):
        first = next((c for c in ok if c[0]["policy"] in family), None)
        if first is not None:
            out.append(first)
    for c in ok:
        if len(out) >= FINALISTS_PER_SKU:
            break
        if all(c[0]["policy"] != o[0]["policy"] for o in out):
            out.append(c)
    return sorted(out[:FINALISTS_PER_SKU], key=lambda c: c[1])


# --- 2. simulation ---------------------------------------------------------------------------


def plan_run(
    job: tuple[Profile, dict[str, Any], ReplicaModel, int, SloTarget, int],
) -> dict[str, Any]:
    """One finalist on the whole profile (top level: a worker process runs it): its summary
    and its replicas, the most in use in each 10-minute window."""
    profile, spec, model, seed, slo, initial = job
    result = run(
        profile,
        spec,
        model,
        seed=seed,
        keep_records=False,
        interval_s=INTERVAL_S,
        slo=slo,
        initial_replicas=initial,
        metrics=metrics_for(INTERVAL_S),
    )
    tl = result.timeline
    index = np.floor(tl.t_s / WINDOW_S).astype(np.int64)
    n = int(index.max()) + 1 if index.size else 0
    most = np.zeros(n)
    np.maximum.at(most, index, tl.replicas)
    return {"summary": result.summary.to_dict(), "replicas": most}


def _label(cand: Any, spec: dict[str, Any]) -> str:
    keys = [k for k in ("target_per_replica", "threshold") if k in spec]
    knob = f" {keys[0]}={spec[keys[0]]:g}" if keys else ""
    return f"{cand.label}: {spec['policy']}{knob}"


def simulate(
    plan_in: PlanInput,
    chosen: list[tuple[Screened, dict[str, Any], float]],
    max_replicas: Callable[[Screened], int],
    executor: Executor | None,
    on_done: Callable[[int, int, Any], None] | None = None,
) -> list[Simulated]:
    jobs = []
    for s, spec, _ in chosen:
        full = {**spec, "max_replicas": max_replicas(s)}
        initial = int(min(full["max_replicas"], max(1, s.needed[0] if len(s.needed) else 1)))
        jobs.append(
            (plan_in.profile, full, s.candidate.replica_model(), plan_in.seed, plan_in.slo, initial)
        )
    outs = map_ordered(plan_run, jobs, executor, on_done=on_done)
    sims = []
    for (s, spec, screen_cost), job, out in zip(chosen, jobs, outs, strict=True):
        cand = s.candidate
        replicas = np.asarray(out["replicas"], dtype=np.float64)
        vms = np.ceil(replicas / cand.replicas_per_vm)
        prices = cand.sku.usd_per_hour.as_dict()
        t_s = np.arange(len(replicas)) * WINDOW_S
        sims.append(
            Simulated(
                cand,
                job[1],
                _label(cand, spec),
                out["summary"],
                t_s,
                replicas,
                vms,
                splits(vms, WINDOW_S / 3600.0, prices),
                screen_cost,
            )
        )
    return sims


def check_chosen(
    plan_in: PlanInput, chosen: Simulated, executor: Executor | None
) -> list[dict[str, Any]]:
    """The chosen configuration replayed on other seeds."""
    initial = int(
        min(chosen.spec["max_replicas"], max(1, chosen.replicas[0] if len(chosen.replicas) else 1))
    )
    model = chosen.candidate.replica_model()
    jobs = [
        (plan_in.profile, chosen.spec, model, seed, plan_in.slo, initial)
        for seed in plan_in.check_seeds
    ]
    outs = map_ordered(plan_run, jobs, executor)
    return [
        {
            "seed": seed,
            "slo_attainment": o["summary"]["slo_attainment"],
            "slo_met": o["summary"]["slo_met"],
            "replica_hours": o["summary"]["replica_hours"],
        }
        for seed, o in zip(plan_in.check_seeds, outs, strict=True)
    ]


# --- 3 and 4. choose and grow ----------------------------------------------------------------


def choose(sims: list[Simulated]) -> Simulated | None:
    meeting = [s for s in sims if s.meets]
    return min(meeting, key=lambda s: s.best.usd_per_month) if meeting else None


def grow(
    plan_in: PlanInput,
    chosen: Screened,
    rates: FloatArray,
    starts: FloatArray,
    max_replicas: int,
    window_s: float,
) -> list[GrowthStep]:
    cand = chosen.candidate
    scv = arrival_scv(plan_in.profile, starts)
    hours = plan_in.profile.duration_s / 3600.0
    out = []
    for months, factor in plan_in.growth.steps() or [(0, 1.0)]:
        needed = replicas_needed(
            rates * factor, chosen.stats, plan_in.slo, cand.slots_per_replica, scv
        )
        vms = np.ceil(needed / cand.replicas_per_vm)
        peak = int(needed.max()) if needed.size else 0
        peak_vms = int(vms.max()) if vms.size else 0
        gpus = peak_vms * int(cand.sku.gpus)
        quota = None if plan_in.quota_gpus is None else gpus <= plan_in.quota_gpus
        usd = _vm_cost(vms, window_s, float(cand.sku.usd_per_hour.on_demand), hours)
        out.append(
            GrowthStep(
                months,
                factor,
                float(rates.max() * factor),
                peak,
                peak_vms,
                gpus,
                usd,
                peak <= max_replicas,
                quota,
            )
        )
    return out


def max_replicas_for(s: Screened, quota_gpus: int | None) -> int:
    """Room above the peak the screen needs (x1.5 + 2), within the quota."""
    peak = int(s.needed.max()) if s.needed.size else 1
    top = math.ceil(1.5 * peak) + 2
    if quota_gpus is not None:
        per_replica = max(1, int(s.candidate.tensor_parallel))
        top = min(top, max(1, quota_gpus // per_replica))
    return max(1, top)


def build(
    plan_in: PlanInput,
    executor: Executor | None = None,
    on_done: Callable[[int, int, Any], None] | None = None,
) -> Plan:
    began = time.perf_counter()
    starts, rates = window_rates(plan_in.profile, WINDOW_S)
    screened = screen(plan_in, starts, rates, WINDOW_S)
    t_screen = time.perf_counter() - began
    picks = finalists(screened, plan_in.prune)
    sims = simulate(
        plan_in, picks, lambda s: max_replicas_for(s, plan_in.quota_gpus), executor, on_done
    )
    t_sim = time.perf_counter() - began - t_screen
    chosen = choose(sims)
    checks = check_chosen(plan_in, chosen, executor) if chosen is not None else []
    steps: list[GrowthStep] = []
    top = 0
    if chosen is not None:
        top = int(chosen.spec["max_replicas"])
        screened_of = next(s for s in screened if s.candidate is chosen.candidate)
        steps = grow(plan_in, screened_of, rates, starts, top, WINDOW_S)
    wall = {"screen_s": t_screen, "simulate_s": t_sim, "total_s": time.perf_counter() - began}
    return Plan(plan_in, WINDOW_S, starts, rates, screened, sims, chosen, checks, steps, top, wall)
