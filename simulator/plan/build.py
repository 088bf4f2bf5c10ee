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

import json
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from simulator.engine import run
from simulator.model import ReplicaModel
from simulator.observe import metrics_for
from simulator.plan.growth import Growth
from simulator.plan.mix import Mix, Part, best_mix
from simulator.plan.needed import (
    WINDOW_S,
    ServiceStats,
    arrival_scv,
    replicas_needed,
    service_stats,
    window_rates,
)
from simulator.plan.split import Split, monthly_cost, splits
from simulator.profiles import Profile
from simulator.result import SloTarget
from simulator.sweeps.pool import map_ordered

FloatArray = npt.NDArray[np.float64]
TARGET_SHARES = (0.5, 0.625, 0.75, 0.875)  # target-based policies: targets as shares of slots
LOWER_SHARES = (0.375, 0.25)  # ... and below, tried when a finalist narrowly missed
RISE_QUANTILES = (0.99,)  # planner: planning for larger rises, likewise
NEAR_MISS = 0.02  # a finalist this close below the SLO's share is tried again, tighter
TIGHTER_ROUNDS = 2
TARGET_POLICIES = ("hpa", "keda", "ray", "knative")
QUEUEING_POLICIES = ("planner", "slo", "predictive")
DEFAULT_POLICIES = ("hpa", "keda", "knative", "ray", "slo", "predictive", "planner")
FINALISTS_PER_SKU = 3
PRUNE = 0.30  # simulate SKUs whose lower bound is within 30 % of the best one's
INTERVAL_S = 15.0
RANK_S = 86400.0  # a profile over 36 hours: finalists ranked, seeds checked, on its busiest day
PROBE_S = 1200.0  # a run starts with the policy's most over its first 20 minutes
MAX_TRIES = 3  # the ranked configurations verified in turn before giving up
NO_GROWTH = Growth(0.0, 3, 0)
METRIC_LAG_S = 60.0  # a reactive policy sees the load through a 60 s rate window
Job = tuple[Profile, dict[str, Any], ReplicaModel, int, SloTarget, int]  # plan_run's


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
    holdout: Profile | None = None  # a part of the load the plan does not see, checked after
    holdout_name: str = ""


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
    """One configuration simulated on the whole profile or a window of it (`window`)."""

    candidate: Any
    spec: dict[str, Any]
    label: str
    summary: dict[str, Any]
    t_s: FloatArray
    replicas: FloatArray  # the most replicas in use in each 10-minute window
    vms: FloatArray
    splits: list[Split]
    screen_usd_month: float
    initial: int  # the replicas it started with (the screen's count in its first window)
    window: str = "whole profile"

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
    rank_window: str = "whole profile"
    tried: list[dict[str, Any]] = field(default_factory=list)  # verified in turn, by cost
    mix: Mix | None = None  # the cheapest SKU mix by the program (simulator.plan.mix)
    mix_runs: list[MixRun] = field(default_factory=list)  # its parts simulated, when it pays


@dataclass
class MixRun:
    """One SKU of a paying mix, simulated on its share of the load."""

    part: Part
    spec: dict[str, Any]
    label: str
    summary: dict[str, Any]
    vms: FloatArray
    usd_per_month: float  # its reserved VMs (the program's) and its burst on demand


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


def tighter(spec: dict[str, Any], slots: int, lead_s: float = 0.0) -> dict[str, Any] | None:
    """The next configuration of the same policy that holds more replicas (None: no further
    rung): a target-based policy's next lower target; the planner planning for a larger share
    of rises, then for a cold start's slow tail (`lead_s`: the sum of its parts' 95th
    percentiles and a minute of metric lag, fixed, where it would learn a typical one); the
    slo policy sizing for half the misses."""
    name = spec["policy"]
    if name in TARGET_POLICIES:
        key = "threshold" if name == "keda" else "target_per_replica"
        lower = [max(1.0, round(x * slots, 2)) for x in (*TARGET_SHARES, *LOWER_SHARES)]
        below = sorted((t for t in lower if t < float(spec[key])), reverse=True)
        return {**spec, key: below[0]} if below else None
    if name == "planner":
        now = float(spec.get("rise_quantile", 0.95))
        above = [q for q in RISE_QUANTILES if q > now]
        if above:
            return {**spec, "rise_quantile": above[0]}
        lead = 60.0 * math.ceil((lead_s + METRIC_LAG_S) / 60.0)
        if lead_s > 0 and float(spec.get("lead_time_s", 0.0)) < lead:
            return {**spec, "lead_time_s": lead}
        return None
    if name == "slo":
        share = float(spec["percentile"])
        tight = round(1.0 - (1.0 - share) / 2.0, 6)
        return {**spec, "percentile": tight} if tight <= 0.9999 and tight > share else None
    return None


def slow_start_s(cand: Any) -> float:
    """A candidate's cold start at its slow tail: the sum of its parts' 95th percentiles."""
    start = cand.startup
    parts = ("provisioning", "image_pull", "model_load")
    return float(sum(getattr(start, p).p95_s for p in parts if hasattr(start, p)))


def _held(
    spec: dict[str, Any], needed: npt.NDArray[np.int64], busy: FloatArray, lag_windows: float
) -> FloatArray:
    """A configuration's replicas in service per window. A target-based policy holds
    ceil(busy slots / target) of the load it saw a cold start and a metric window ago (it reacts:
    what serves at t was asked for at t - lag); a queueing-based one the needed count."""
    if spec["policy"] in QUEUEING_POLICIES:
        return needed.astype(np.float64)
    target = float(spec.get("target_per_replica", spec.get("threshold", 1.0)))
    asked = np.ceil(busy / target - 1e-9)
    if lag_windows <= 0 or asked.size < 2:
        return asked
    index = np.arange(asked.size, dtype=np.float64)
    late = np.interp(index - lag_windows, index, asked)  # asked a lag ago, step by step
    return np.ceil(np.minimum(asked, late) - 1e-9)


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
        lag = (float(model.startup.mean_s) + METRIC_LAG_S) / window_s
        for name in plan_in.policies:
            for spec in policy_configs(name, slots, plan_in.slo):
                held = _held(spec, needed, busy, lag)
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


def plan_run(job: Job) -> dict[str, Any]:
    """One configuration on a profile (top level: a worker process runs it): its summary, the
    replicas it started with and its replicas, the most in use in each 10-minute window.

    It starts as a service already running under the policy would: with the most the policy
    asks for over a probe of the first 20 minutes, at least `initial` (the screen's count), at
    most max_replicas. Started with fewer, a reactive policy ramps up through cold starts
    while the load is already there: a start-up miss a running service would not have."""
    profile, spec, model, seed, slo, initial = job

    def replay(load: Profile, start: int) -> Any:
        return run(
            load,
            spec,
            model,
            seed=seed,
            keep_records=False,
            interval_s=INTERVAL_S,
            slo=slo,
            initial_replicas=start,
            metrics=metrics_for(INTERVAL_S),
        )

    probe = replay(profile.slice(0, min(profile.duration_s, PROBE_S)), initial)
    top = int(spec.get("max_replicas", initial))
    asked = probe.timeline.replicas
    initial = max(initial, min(top, int(asked.max()) if asked.size else initial))
    result = replay(profile, initial)
    tl = result.timeline
    index = np.floor(tl.t_s / WINDOW_S).astype(np.int64)
    n = int(index.max()) + 1 if index.size else 0
    most = np.zeros(n)
    np.maximum.at(most, index, tl.replicas)
    return {"summary": result.summary.to_dict(), "replicas": most, "initial": initial}


def _label(cand: Any, spec: dict[str, Any]) -> str:
    knobs = ("target_per_replica", "threshold", "rise_quantile", "lead_time_s")
    keys = [k for k in knobs if k in spec]
    if spec["policy"] == "slo":
        keys.append("percentile")
    knob = "".join(f" {k}={spec[k]:g}" for k in keys)
    return f"{cand.label}: {spec['policy']}{knob}"


@dataclass(frozen=True)
class Window:
    """A part of the profile a run replays: its name and its first 10-minute window."""

    name: str
    profile: Profile
    first: int  # index of its first 10-minute window in the plan's windows


def busiest(plan_in: PlanInput, rates: FloatArray, span_s: float) -> Window:
    """The `span_s` of the profile with the most requests (the whole profile when shorter)."""
    k = round(span_s / WINDOW_S)
    if plan_in.profile.duration_s <= span_s * 1.5 or k < 1 or len(rates) <= k:
        return Window("whole profile", plan_in.profile, 0)
    sums = np.convolve(rates, np.ones(k), mode="valid")
    i = int(np.argmax(sums))
    start = i * WINDOW_S
    what = "day" if span_s == 86400.0 else f"{span_s / 3600:g} h"
    hours = f"busiest {what} (hours {start / 3600:.1f}-{(start + span_s) / 3600:.1f})"
    return Window(hours, plan_in.profile.slice(start, start + span_s), i)


def _initial(s: Screened, first: int, top: int) -> int:
    """The replicas a run starts with: the screen's most over its first windows, as many as a
    cold start spans and one more (a service that was running had them provisioned; fewer would
    fail the start on a scale-up no policy can land in time), within 1 .. max_replicas."""
    span = 1 + math.ceil(float(s.candidate.startup.mean_s) / WINDOW_S)
    head = s.needed[first : first + span]
    count = int(head.max()) if head.size else 1
    return int(min(top, max(1, count)))


def _job(
    plan_in: PlanInput, s: Screened, spec: dict[str, Any], window: Window, seed: int, initial: int
) -> Job:
    return (window.profile, spec, s.candidate.replica_model(), seed, plan_in.slo, initial)


def _simulated(
    s: Screened, spec: dict[str, Any], out: dict[str, Any], screen_cost: float, window: str
) -> Simulated:  # fmt: skip
    cand = s.candidate
    replicas = np.asarray(out["replicas"], dtype=np.float64)
    vms = np.ceil(replicas / cand.replicas_per_vm)
    prices = cand.sku.usd_per_hour.as_dict()
    t_s = np.arange(len(replicas)) * WINDOW_S
    return Simulated(
        cand,
        spec,
        _label(cand, spec),
        out["summary"],
        t_s,
        replicas,
        vms,
        splits(vms, WINDOW_S / 3600.0, prices),
        screen_cost,
        int(out["initial"]),
        window,
    )


def simulate(
    plan_in: PlanInput,
    chosen: list[tuple[Screened, dict[str, Any], float]],
    max_replicas: Callable[[Screened], int],
    executor: Executor | None,
    window: Window,
    on_done: Callable[[int, int, Any], None] | None = None,
) -> list[Simulated]:
    """The finalists on `window`, each starting from the screen's count in its first window."""
    jobs, fulls = [], []
    for s, spec, _ in chosen:
        full = {**spec, "max_replicas": max_replicas(s)}
        initial = _initial(s, window.first, full["max_replicas"])
        fulls.append((full, initial))
        jobs.append(_job(plan_in, s, full, window, plan_in.seed, initial))
    outs = map_unique(jobs, executor, on_done)
    return [
        _simulated(s, full, out, cost, window.name)
        for (s, _, cost), (full, initial), out in zip(chosen, fulls, outs, strict=True)
    ]


PRICE_FIELDS = ("sku", "platform", "prices")  # a replica model's fields no run depends on


def _key(job: Job) -> tuple[Any, ...]:
    profile, spec, model, seed, slo, initial = job
    behaviour = tuple(repr(getattr(model, f.name)) for f in fields(model)
                      if f.name not in PRICE_FIELDS)  # fmt: skip
    return (
        id(profile),
        json.dumps(spec, sort_keys=True, default=str),
        behaviour,
        seed,
        slo,
        initial,
    )


def map_unique(
    jobs: list[Job], executor: Executor | None, on_done: Callable[[int, int, Any], None] | None
) -> list[dict[str, Any]]:
    """`plan_run` on each job, running once the jobs that differ only in price (two VM sizes
    of the same GPU and tensor parallel serve the same: their replicas are the same)."""
    keys = [_key(j) for j in jobs]
    index: dict[tuple[Any, ...], int] = {}
    unique: list[Job] = []
    for key, job in zip(keys, jobs, strict=True):
        if key not in index:
            index[key] = len(unique)
            unique.append(job)
    outs = map_ordered(plan_run, unique, executor, on_done=on_done)
    return [outs[index[key]] for key in keys]


def _near_misses(
    plan_in: PlanInput, sims: list[Simulated], screened: list[Screened]
) -> list[tuple[Screened, dict[str, Any], float]]:
    """The next rung (`tighter`) of each simulated configuration that missed the SLO by less
    than NEAR_MISS, cost less than the cheapest that met it, and whose next rung is not
    simulated yet."""
    done = {(id(x.candidate), json.dumps(_bare(x.spec), sort_keys=True)) for x in sims}
    meeting = [x.best.usd_per_month for x in sims if x.meets]
    cheapest = min(meeting) if meeting else math.inf
    out = []
    for sim in sims:
        if sim.meets or sim.summary["slo_attainment"] < plan_in.slo.share - NEAR_MISS:
            continue
        if sim.best.usd_per_month >= cheapest:  # a tighter rung costs more still: cannot win
            continue
        nxt = tighter(_bare(sim.spec), sim.candidate.slots_per_replica, slow_start_s(sim.candidate))
        if nxt is None or (id(sim.candidate), json.dumps(nxt, sort_keys=True)) in done:
            continue
        s = next(x for x in screened if x.candidate is sim.candidate)
        done.add((id(sim.candidate), json.dumps(nxt, sort_keys=True)))
        out.append((s, nxt, sim.screen_usd_month))
    return out


def _bare(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k != "max_replicas"}


def _row(name: str, seed: int, out: dict[str, Any]) -> dict[str, Any]:
    summary = out["summary"]
    return {
        "replay": name,
        "seed": seed,
        "slo_attainment": summary["slo_attainment"],
        "slo_met": bool(summary["slo_met"]),
        "replica_hours": summary["replica_hours"],
        "initial_replicas": int(out["initial"]),
    }


def verify(
    plan_in: PlanInput,
    ranked: list[Simulated],
    screened: list[Screened],
    rank: Window,
    executor: Executor | None,
    on_done: Callable[[int, int, Any], None] | None = None,
) -> tuple[Simulated | None, list[dict[str, Any]], list[Simulated]]:
    """The first of `ranked` (cheapest first) that meets the SLO on every replay: the other
    seeds on the ranking window and the holdout first (short), then the whole profile (when
    ranked on a part of it). A configuration that narrowly misses a replay is followed by its
    next rung (`tighter`, checked on the ranking window with every seed); configurations that
    differ only in price share their replays. At most MAX_TRIES distinct ones are tried.
    Returns the choice (its figures from the whole profile), every configuration tried, and
    the new rungs' runs on the ranking window (beside the finalists)."""
    whole = Window("whole profile", plan_in.profile, 0)
    cache: dict[tuple[Any, ...], dict[str, Any]] = {}
    tried: list[dict[str, Any]] = []
    queue: list[tuple[Simulated, bool]] = [(sim, False) for sim in ranked]  # (sim, needs seed 1)
    behaviours: set[tuple[Any, ...]] = set()
    extra: list[Simulated] = []
    held_load = None  # the holdout's window rates and arrival SCVs, read once
    if plan_in.holdout is not None:
        starts, rates = window_rates(plan_in.holdout, WINDOW_S)
        held_load = (rates, arrival_scv(plan_in.holdout, starts))
    while queue:
        sim, fresh = queue.pop(0)
        s = next(x for x in screened if x.candidate is sim.candidate)
        top = int(sim.spec["max_replicas"])
        first = _initial(s, rank.first, top)
        seeds = ([plan_in.seed] if fresh else []) + list(plan_in.check_seeds)
        short: list[tuple[str, int, Window, int]] = [(rank.name, x, rank, first) for x in seeds]
        if plan_in.holdout is not None and held_load is not None:
            held_out = Window("holdout: " + plan_in.holdout_name, plan_in.holdout, 0)
            first_held = _holdout_initial(plan_in, s, top, held_load)
            short.append((held_out.name, plan_in.seed, held_out, first_held))
        behaviour = _key(_job(plan_in, s, sim.spec, rank, 0, 0))
        if behaviour not in behaviours:
            if len(behaviours) >= MAX_TRIES:
                continue
            behaviours.add(behaviour)
        rows, outs = _replays(plan_in, s, sim.spec, short, cache, executor, on_done)
        if all(r["slo_met"] for r in rows) and rank.name != whole.name:
            long = [(whole.name, plan_in.seed, whole, _initial(s, 0, top))]
            more, outs_whole = _replays(plan_in, s, sim.spec, long, cache, executor, on_done)
            rows, outs = more + rows, outs_whole + outs
        held = all(r["slo_met"] for r in rows)
        tried.append({"label": sim.label, "held": held, "replays": rows})
        if fresh:  # a new rung: its run at the plan's seed on the ranking window joins them
            at = next(i for i, r in enumerate(rows) if r["replay"] == rank.name)
            extra.append(_simulated(s, sim.spec, outs[at], sim.screen_usd_month, rank.name))
        if held and rank.name == whole.name and not fresh:
            return sim, tried, extra
        if held:  # outs[0]: the whole profile at the plan's seed
            return _simulated(s, sim.spec, outs[0], sim.screen_usd_month, whole.name), tried, extra
        missed = min(r["slo_attainment"] for r in rows)
        nxt = tighter(_bare(sim.spec), s.candidate.slots_per_replica, slow_start_s(s.candidate))
        if nxt is not None and missed >= plan_in.slo.share - NEAR_MISS:
            spec = {**nxt, "max_replicas": top}
            queue.insert(0, (replace(sim, spec=spec, label=_label(s.candidate, spec)), True))
    return None, tried, extra


def _replays(
    plan_in: PlanInput,
    s: Screened,
    spec: dict[str, Any],
    runs: list[tuple[str, int, Window, int]],
    cache: dict[tuple[Any, ...], dict[str, Any]],
    executor: Executor | None,
    on_done: Callable[[int, int, Any], None] | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows and outputs of `runs` (name, seed, window, initial), each run once per
    behaviour (`_key`) across the whole verification."""
    jobs = [_job(plan_in, s, spec, w, seed, n) for _, seed, w, n in runs]
    todo = [j for j in jobs if _key(j) not in cache]
    for job, out in zip(todo, map_unique(todo, executor, on_done), strict=True):
        cache[_key(job)] = out
    outs = [cache[_key(j)] for j in jobs]
    rows = [_row(name, seed, o) for (name, seed, _, _), o in zip(runs, outs, strict=True)]
    return rows, outs


def _holdout_initial(
    plan_in: PlanInput, s: Screened, top: int, load: tuple[FloatArray, FloatArray]
) -> int:
    """`_initial` on the holdout's own windows (`load`: its rates and arrival SCVs)."""
    rates, scv = load
    needed = replicas_needed(rates, s.stats, plan_in.slo, s.candidate.slots_per_replica, scv)
    return _initial(replace(s, needed=needed), 0, top)


# --- 3 and 4. choose and grow ----------------------------------------------------------------


def simulate_mix(
    plan_in: PlanInput,
    mix: Mix,
    chosen: Simulated | None,
    executor: Executor | None,
    on_done: Callable[[int, int, Any], None] | None = None,
) -> list[MixRun]:
    """A paying mix on the whole profile: one target per SKU, each on its share of the load
    (the profile's rate x share), with the recommended policy (the planner when none), from
    its reserved VMs' replicas (at least the screen's start)."""
    policy = chosen.spec["policy"] if chosen is not None else "planner"
    jobs, specs = [], []
    for part in mix.parts:
        s = part.screened
        slots = s.candidate.slots_per_replica
        spec = {**policy_configs(policy, slots, plan_in.slo)[0]}
        spec["max_replicas"] = max(
            1, math.ceil(max_replicas_for(s, plan_in.quota_gpus) * part.share) + 2
        )
        spec["min_replicas"] = min(
            spec["max_replicas"], part.reserved * s.candidate.replicas_per_vm
        )
        start = max(
            spec["min_replicas"], math.ceil(_initial(s, 0, spec["max_replicas"]) * part.share)
        )
        load = plan_in.profile.rate_scale(part.share)
        jobs.append((load, spec, s.candidate.replica_model(), plan_in.seed, plan_in.slo, start))
        specs.append(spec)
    outs = map_ordered(plan_run, jobs, executor, on_done=on_done)
    runs = []
    for part, spec, out in zip(mix.parts, specs, outs, strict=True):
        cand = part.screened.candidate
        vms = np.ceil(np.asarray(out["replicas"], dtype=np.float64) / cand.replicas_per_vm)
        prices = cand.sku.usd_per_hour.as_dict()
        reserved_usd = prices.get(part.reserved_term, prices["on_demand"])
        usd, _ = monthly_cost(
            vms, WINDOW_S / 3600.0, part.reserved, reserved_usd, prices["on_demand"]
        )
        runs.append(MixRun(part, spec, _label(cand, spec), out["summary"], vms, usd))
    return runs


def mix_attainment(runs: list[MixRun]) -> float:
    """The mix's SLO attainment: its parts', weighted by the requests each served."""
    served = sum(float(r.summary["requests"]) for r in runs)
    if served <= 0:
        return math.nan
    return (
        sum(float(r.summary["slo_attainment"]) * float(r.summary["requests"]) for r in runs)
        / served
    )


def ranked(sims: list[Simulated]) -> list[Simulated]:
    """The simulated configurations that met the SLO, cheapest (at the best split) first."""
    return sorted((s for s in sims if s.meets), key=lambda s: s.best.usd_per_month)


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
    stage: Callable[[str], Callable[[int, int, Any], None] | None] | None = None,
) -> Plan:
    """The plan. `stage(name)`, when given, is called as each simulation stage starts and
    returns that stage's progress callback (done, total, result)."""

    def progress(name: str) -> Callable[[int, int, Any], None] | None:
        return stage(name) if stage is not None else None

    began = time.perf_counter()
    starts, rates = window_rates(plan_in.profile, WINDOW_S)
    screened = screen(plan_in, starts, rates, WINDOW_S)
    t_screen = time.perf_counter() - began
    picks = finalists(screened, plan_in.prune)
    rank = busiest(plan_in, rates, RANK_S)

    def top_of(s: Screened) -> int:
        return max_replicas_for(s, plan_in.quota_gpus)

    sims = simulate(plan_in, picks, top_of, executor, rank, progress("simulating finalists"))
    for _ in range(TIGHTER_ROUNDS):
        again = _near_misses(plan_in, sims, screened)
        if not again:
            break
        sims += simulate(plan_in, again, top_of, executor, rank, progress("near misses, tighter"))
    t_sim = time.perf_counter() - began - t_screen
    chosen, tried, rungs = verify(
        plan_in, ranked(sims), screened, rank, executor, progress("replaying the cheapest")
    )
    sims += rungs
    t_verify = time.perf_counter() - began - t_screen - t_sim
    checks = tried[-1]["replays"] if chosen is not None else []
    steps: list[GrowthStep] = []
    top = 0
    if chosen is not None:
        top = int(chosen.spec["max_replicas"])
        screened_of = next(s for s in screened if s.candidate is chosen.candidate)
        steps = grow(plan_in, screened_of, rates, starts, top, WINDOW_S)
    mix = best_mix(screened, rates, WINDOW_S, plan_in.profile.duration_s / 3600.0)
    mix_runs = []
    if mix is not None and mix.pays:
        mix_runs = simulate_mix(plan_in, mix, chosen, executor, progress("simulating the SKU mix"))
    wall = {
        "screen_s": t_screen,
        "simulate_s": t_sim,
        "verify_s": t_verify,
        "total_s": time.perf_counter() - began,
    }
    return Plan(
        plan_in, WINDOW_S, starts, rates, screened, sims, chosen, checks, steps, top, wall,
        rank.name, tried, mix, mix_runs,
    )  # fmt: skip
