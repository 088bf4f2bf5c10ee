"""What the notebooks share: the fast switch, every built-in policy sized for a load, runs as
picklable jobs, their summaries as one table, and a sweep grid cut down when fast.

In: the names a notebook states (a profile, a replica model preset, policy names or specs, an
SLO) and the environment variable REPLICAST_FAST. Out:
- `fast()`: REPLICAST_FAST is set (and not 0/false/no/off); then `load` and `jobs` cut every
  profile to its first hour and `grid` cuts a sweep to at most 8 cells (the test suite runs the
  notebooks so; without it they run the real thing);
- `load(profile, model)`: the profile as `replicast compare` reads it (token counts attached
  when the model needs them and the profile has none), cached per process;
- `builtin_spec(name, ...)`: `simulator.cli.specs.default_spec` for the seven it knows, and a
  spec here for `pid` (in service + queued per replica at 75 % of the slots) and `schedule` (a
  time-of-day plan written from the trace);
- `jobs(...)` and `run_job(job)`: one `simulator.engine.run` each, bounded by `simulator.sizing`
  as `replicast compare` bounds it; `run_job` is top level, so `simulator.sweeps.map_ordered`
  can run the jobs on a process pool;
- `summary_table(jobs, results)`: one row a run, with the columns `simulator.sweeps.front` and
  `plot_front` read;
- `grid(data)` and `thin(cells)`: `simulator.sweeps.parse_grid`, cut when fast; `pick(table)`:
  the configuration to choose, the cheapest that meets the SLO on every seed;
- `compare_figure(results)` (`simulator.plots.compare_figure`, the title above the panels),
  `seeds_figure(table)` (a sweep's attainment seed by seed) and `png(figure)` (PNG bytes for
  `IPython.display.Image`).
The notebooks (notebooks/) hold no logic of their own; they call these and the simulator.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from simulator import sizing
from simulator.cli.specs import default_spec
from simulator.engine import DEFAULT_EPOCH_S, run
from simulator.model import ReplicaModel
from simulator.observe import metrics_for
from simulator.profile_args import profile_from_args
from simulator.profile_formats import load_profile
from simulator.profiles import Profile
from simulator.result import Result, Slo, SloTarget, slo_label, slo_targets
from simulator.sweeps.grid import Cell, GridSpec, parse_grid

FAST_VARIABLE = "REPLICAST_FAST"
FAST_MAX_S = 3600.0  # a profile's first hour
FAST_MAX_CELLS = 8
FAST_SEEDS = 2  # seeds a configuration keeps in a cut sweep (seeds stay together)
# every built-in policy that runs alone, in `replicast policies` order (max_of and floor combine
# these)
STANDALONE = ("hpa", "keda", "knative", "ray", "slo", "predictive", "planner", "pid", "schedule")
DEFAULT_SLO = SloTarget(1.0, "wait", 0.99)  # the commands' default: wait <= 1 s for 99 %
HOUR_S = 3600.0


def fast(environ: Mapping[str, str] | None = None) -> bool:
    """REPLICAST_FAST is set to something other than "", 0, false, no or off."""
    value = (os.environ if environ is None else environ).get(FAST_VARIABLE, "")
    return value.strip().lower() not in ("", "0", "false", "no", "off")


def workers(is_fast: bool | None = None) -> int | None:
    """For `simulator.sweeps.executor_for("process", ...)`: 1 when fast (in this process: a
    pool's start costs more than a few one-hour runs), else None (one worker per core)."""
    return 1 if (fast() if is_fast is None else is_fast) else None


def max_duration_s(is_fast: bool | None = None) -> float | None:
    """The first hour when fast, else None (all of it)."""
    return FAST_MAX_S if (fast() if is_fast is None else is_fast) else None


def cut(profile: Profile, max_s: float | None) -> Profile:
    """The profile's first `max_s` seconds (all of it when None or shorter)."""
    if max_s is None or profile.duration_s <= max_s:
        return profile
    return profile.slice(0.0, max_s)


@functools.lru_cache(maxsize=8)
def _read(name: str, model: str, max_s: float | None) -> Profile:
    args = argparse.Namespace(profile=name, slice=None, rate_scale=1.0)
    profile, _ = profile_from_args(args, ReplicaModel.preset(model))
    return cut(profile, max_s)


def load(name: str, model: str, *, is_fast: bool | None = None) -> Profile:
    """`name` (an embedded trace, a synthetic form or a trace file) read as the commands read
    it for the `model` preset, cut to its first hour when fast; cached in this process."""
    return _read(name, model, max_duration_s(is_fast))


# --- the built-ins sized for a load ----------------------------------------------------------


def pid_spec(model: ReplicaModel, max_replicas: int) -> dict[str, Any]:
    """`pid` holding requests in service + queued per ready replica at 75 % of the slots (the
    target `default_spec` gives hpa); queued requests count, so an overload shows as an error
    above 0 however full the slots are."""
    per = max(1.0, 0.75 * model.slots_per_replica)
    return {
        "policy": "pid", "signal": "extra.concurrency", "per_replica": True, "target": per,
        "min_replicas": 1, "max_replicas": max_replicas,
    }  # fmt: skip


def schedule_spec(
    profile: Profile, model: ReplicaModel, max_replicas: int, *,
    start_epoch_s: float = DEFAULT_EPOCH_S,
) -> dict[str, Any]:  # fmt: skip
    """`schedule` as an operator who has seen the whole trace would write it: each UTC hour of
    the day holds the replicas that its busiest minute, or the next hour's (over every day),
    keeps 75 % busy, so capacity is ready before a rise. It knows the load in advance: an
    optimistic plan. E.g. a 1-hour trace gets one or two rules, a 14-day series 24."""
    sized = sizing.size(profile, model)
    rates = sizing.window_rates_rps(profile, sizing.PEAK_WINDOW_S)
    width = min(sizing.PEAK_WINDOW_S, profile.duration_s)
    starts = np.arange(len(rates)) * width
    ends = np.minimum(starts + width, profile.duration_s) - 1e-6
    first = ((start_epoch_s + starts) // HOUR_S % 24).astype(int)
    last = ((start_epoch_s + ends) // HOUR_S % 24).astype(int)
    peak_rps = np.zeros(24)
    np.maximum.at(peak_rps, first, rates)
    np.maximum.at(peak_rps, last, rates)  # a window across the hour counts for both
    busy = peak_rps * sized.mean_service_s / model.slots_per_replica
    need = np.ceil(busy / sizing.TARGET_UTILIZATION - 1e-9)
    ahead = np.maximum(need, np.roll(need, -1))
    rules = []
    for hour in sorted(set(first.tolist()) | set(last.tolist())):
        n = int(min(max(ahead[hour], 1), max_replicas))
        end = f"{hour + 1:02d}:00"
        rules.append({"start": f"{hour:02d}:00", "end": end, "min_replicas": n, "max_replicas": n})
    top = max(rule["min_replicas"] for rule in rules)
    return {
        "policy": "schedule", "time_zone": "UTC",
        "default": {"min_replicas": top, "max_replicas": top}, "rules": rules,
        "max_replicas": max_replicas,
    }  # fmt: skip


def builtin_spec(
    name: str, model: ReplicaModel, slo: Slo, max_replicas: int, profile: Profile
) -> dict[str, Any]:
    """A built-in policy (one of `STANDALONE`) sized for the model, the SLO and (`schedule`)
    the load, as `replicast compare` sizes it by name."""
    if name == "pid":
        return pid_spec(model, max_replicas)
    if name == "schedule":
        return schedule_spec(profile, model, max_replicas)
    return default_spec(name, model, slo, max_replicas)


# --- runs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One run: `spec` on the first `max_s` seconds of `profile` (None: all of it); `label`
    (default: the policy's name) names it in tables and plots."""

    profile: str
    model: str  # a preset name
    spec: Mapping[str, Any] = field(hash=False)
    initial_replicas: int
    seed: int = 1
    slo: Slo = DEFAULT_SLO
    max_s: float | None = None
    interval_s: float = 15.0
    label: str = ""


Policies = Sequence[str | Mapping[str, Any]] | Mapping[str, str | Mapping[str, Any]]


def jobs(
    profile: str, model: str, policies: Policies, *, slo: Slo = DEFAULT_SLO, seed: int = 1,
    is_fast: bool | None = None,
) -> list[Job]:  # fmt: skip
    """A job per policy (a built-in name, or a spec mapping; in a mapping, each under its
    label), with the replica bounds `replicast compare` gives: `simulator.sizing` from the
    load, `max_replicas` for every spec that states none."""
    max_s = max_duration_s(is_fast)
    loaded = _read(profile, model, max_s)
    replica_model = ReplicaModel.preset(model)
    sized = sizing.size(loaded, replica_model)
    labelled = policies.items() if isinstance(policies, Mapping) else [("", p) for p in policies]
    out = []
    for label, policy in labelled:
        if isinstance(policy, str):
            spec = builtin_spec(policy, replica_model, slo, sized.max_replicas, loaded)
        else:
            spec = {"max_replicas": sized.max_replicas, **policy}
        initial = min(sized.initial_replicas, int(spec["max_replicas"]))
        out.append(Job(profile, model, spec, initial, seed, slo, max_s, label=label))
    return out


def run_job(job: Job) -> Result:
    """Simulate one job (in whichever process runs it: the profile is read once per process);
    its summary names the job's label when it has one."""
    result = run(
        _read(job.profile, job.model, job.max_s), dict(job.spec), job.model, seed=job.seed,
        interval_s=job.interval_s, slo=job.slo, initial_replicas=job.initial_replicas,
        metrics=metrics_for(job.interval_s), keep_records=False,
    )  # fmt: skip
    if job.label:
        result.summary = replace(result.summary, policy=job.label)
    return result


def summary_table(jobs: Sequence[Job], results: Sequence[Result]) -> Any:
    """A pandas DataFrame, one row a run: the job's profile, model, SLO and seed, `label` (the
    policy), `block` (its place in the list), `error` ("") and every `Summary` figure, so
    `simulator.sweeps.front` and `plot_front` read it as they read a sweep's table."""
    import pandas as pd  # noqa: PLC0415 - heavy; the sim extra

    rows = []
    for i, (job, result) in enumerate(zip(jobs, results, strict=True)):
        figures = result.summary.to_dict()
        for name in ("slo_targets", "slo_attainments", "slo_quantiles_s", "slo_met_each"):
            figures[name] = json.dumps(list(figures[name]))
        rows.append({
            "profile": job.profile, "model": job.model, "slo": slo_label(job.slo),
            "slo_share": slo_targets(job.slo)[0].share, "seed": job.seed,
            "label": figures["policy"], "block": i, "error": "", **figures,
        })  # fmt: skip
    return pd.DataFrame(rows)


# --- sweeps ----------------------------------------------------------------------------------


def grid(data: Mapping[str, Any], *, is_fast: bool | None = None) -> tuple[GridSpec, list[Cell]]:
    """`simulator.sweeps.parse_grid(data)`; when fast, its slice cut to the first hour and
    its cells to at most 8 (`thin`)."""
    if not (fast() if is_fast is None else is_fast):
        return parse_grid(data)
    spec, _ = parse_grid(data)
    lengths_s = [load_profile(name).duration_s for name in spec.profile]
    cut_to = _first_hour(spec.slice, min(lengths_s), max(lengths_s))
    cut_spec, cells = parse_grid({**data, "slice": cut_to})
    return cut_spec, thin(cells)


def _first_hour(slice_: str | None, shortest_s: float, longest_s: float) -> str | None:
    """`START:END` cut to at most an hour and to the shortest profile (a grid's slice is
    every profile's); None when there is none and every profile is an hour or less."""
    if slice_ is None and longest_s <= FAST_MAX_S:
        return None
    start_text, _, end_text = (slice_ or "0:").partition(":")
    start = float(start_text or 0.0)
    end = float(end_text) if end_text.strip() else shortest_s
    end = min(end, start + FAST_MAX_S, shortest_s)
    return f"{start:g}:{math.floor(end * 10) / 10:g}"


def thin(
    cells: Sequence[Cell], max_cells: int = FAST_MAX_CELLS, max_seeds: int = FAST_SEEDS
) -> list[Cell]:
    """At most `max_cells` cells: each configuration with its first `max_seeds` seeds (a
    configuration's seeds stay together), configurations spread evenly over the grid, the
    first and the last kept; renumbered."""
    if len(cells) <= max_cells:
        return list(cells)
    configurations: dict[str, list[Cell]] = {}
    for cell in cells:
        identity = {k: v for k, v in cell.identity().items() if k != "seed"}
        configurations.setdefault(json.dumps(identity, sort_keys=True, default=str), [])
        configurations[json.dumps(identity, sort_keys=True, default=str)].append(cell)
    groups = [sorted(g, key=lambda c: c.seed)[:max_seeds] for g in configurations.values()]
    per = max(len(g) for g in groups)
    count = max(1, min(len(groups), max_cells // per))
    picks = np.unique(np.round(np.linspace(0, len(groups) - 1, count)).astype(int))
    kept = [cell for i in picks for cell in groups[i]][:max_cells]
    return [replace(cell, index=i) for i, cell in enumerate(kept)]


def pick(table: Any) -> Any:
    """The configuration to choose from a sweep's table: the cheapest that meets the SLO on
    every seed (`meets_slo` of `simulator.sweeps.front`), or, when none does, the one whose
    worst seed attains most; its front row (a pandas Series) with `spec` (the policy spec, a
    dict) and `met` (whether it meets the SLO) added. One condition (profile, model, SLO, ...)
    only: pick within each part of a table that has several."""
    from simulator.sweeps import front  # noqa: PLC0415 - pandas

    points = front(table)
    if points.empty:
        raise ValueError("no run succeeded: nothing to pick from")
    meets = points[points["meets_slo"]]
    if len(meets):
        best = meets.sort_values(["cost", "slo_attainment"], ascending=[True, False]).iloc[0]
    else:
        best = points.sort_values(["slo_attainment_min", "cost"], ascending=[False, True]).iloc[0]
    runs = table[(table["label"] == best["label"]) & (table["block"] == best["block"])]
    best = best.copy()
    best["spec"] = json.loads(runs["spec"].iloc[0])
    best["met"] = bool(best["meets_slo"])
    return best


# --- figures ---------------------------------------------------------------------------------


def seeds_figure(table: Any, title: str = "") -> Any:
    """A sweep's SLO attainment seed by seed: a row per configuration (cheapest at the top), a
    dot per seed and the mean, the SLO's share dashed; a matplotlib Figure."""
    from matplotlib.figure import Figure  # noqa: PLC0415 - heavy; the sim extra

    ok = table[table["error"] == ""]
    cost = "cost_usd" if ok["cost_usd"].notna().all() else "replica_hours"
    order = ok.groupby("label", sort=False)[cost].mean().sort_values(ascending=False)
    fig = Figure(figsize=(8.0, 1.2 + 0.34 * len(order)), layout="constrained")
    ax = fig.subplots()
    for y, label in enumerate(order.index):
        runs = ok[ok["label"] == label]
        attained = 100 * runs["slo_attainment"].to_numpy(float)
        ax.scatter(attained, np.full(len(attained), y), s=22, color="C0", alpha=0.7,
                   label="one seed" if y == 0 else None)  # fmt: skip
        ax.scatter([attained.mean()], [y], marker="|", s=200, color="k",
                   label="mean over seeds" if y == 0 else None)  # fmt: skip
    share = float(ok["slo_share"].iloc[0])
    ax.axvline(100 * share, color="C3", ls="--", lw=1, label=f"SLO {100 * share:g} %")
    unit = "USD" if cost == "cost_usd" else "replica-h"
    ax.set_yticks(
        range(len(order)), [f"{name}  ({_amount(order[name])} {unit})" for name in order.index]
    )
    ax.tick_params(axis="y", labelsize=8)
    ax.set_xlabel("SLO attainment (% of requests within the target), each seed")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title(title or "SLO attainment seed by seed (mean cost per configuration)", fontsize=10)
    return fig


def compare_figure(
    results: Sequence[Result], *, title: str = "", slo: Slo | None = None,
    window: tuple[float, float] | None = None,
) -> Any:  # fmt: skip
    """`simulator.plots.compare_figure` with its title above the top panel rather than on it."""
    from simulator import plots  # noqa: PLC0415 - matplotlib, only when drawing

    fig = plots.compare_figure(results, title=title, slo=slo, window=window)
    if title:
        fig.suptitle(title, fontsize=10, y=1.0, va="bottom")
    return fig


def _amount(value: float) -> str:
    """`12,480` or `2.6`: whole numbers once they are large."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def png(figure: Any, dpi: int = 90) -> bytes:
    """`figure` as PNG bytes (for `IPython.display.Image`), then closed: pyplot keeps every
    figure it made (`simulator.plots` draws with it) until it is closed."""
    import matplotlib.pyplot as plt  # noqa: PLC0415 - heavy; the sim extra

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()
