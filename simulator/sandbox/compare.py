"""The sandbox against the simulator: the same profile, policy and replica model, side by side.

In: a `SandboxPlan` and what the sandbox `Observed`. Out: `Figures` for the real run and for
`simulator.run` on the same arrivals (same seed) with the measured startup delay, a table of
both (wait and latency p50/p95, SLO attainment, replica-seconds, scale events), one plot with
both timelines, `report.md` / `report.json`, and `decisions.json` (every decision of both
loops with the inputs it saw, to find the first tick where they part).

Everything reported is in profile seconds: wall seconds x the time compression m. Replica-
seconds count every replica process from its start to its exit (or the end of the run), as the
simulator bills a replica from its request to its removal. A request that failed or was
dropped misses the SLO, in both.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simulator.engine import DEFAULT_EPOCH_S, run
from simulator.observe import MetricsConfig
from simulator.result import Result
from simulator.sandbox.live import Observed
from simulator.sandbox.plan import RATE_WINDOW_S, SLO, SandboxPlan

ROWS = (
    ("wait_p50_s", "wait p50 (s)"),
    ("wait_p95_s", "wait p95 (s)"),
    ("latency_p50_s", "latency p50 (s)"),
    ("latency_p95_s", "latency p95 (s)"),
    ("slo_attainment", f"SLO attainment ({SLO.label})"),
    ("replica_seconds", "replica-seconds"),
    ("scale_events", "scale events"),
    ("max_replicas", "most replicas"),
    ("requests", "requests"),
)


@dataclass(frozen=True)
class Figures:
    wait_p50_s: float | None
    wait_p95_s: float | None
    latency_p50_s: float | None
    latency_p95_s: float | None
    slo_attainment: float | None
    replica_seconds: float
    scale_events: int
    max_replicas: int
    requests: int


@dataclass(frozen=True)
class Health:
    """The load generator's own: did it keep its schedule (a slow machine, not a slow policy)?"""

    send_lag_p99_ms: float | None
    send_lag_max_ms: float | None
    cpu_share: float  # of one core, over the run
    sent: int
    completed: int
    failed: int
    dropped: int


@dataclass(frozen=True)
class Startup:
    """Measured: process start to first routed, profile seconds (import, startup, the next
    controller read that registers it)."""

    mean_s: float
    min_s: float
    max_s: float
    count: int


def _q(values: np.ndarray, q: float) -> float | None:
    return float(np.quantile(values, q)) if values.size else None


def observed_figures(plan: SandboxPlan, observed: Observed) -> Figures:
    m = plan.m
    done = [o for o in observed.outcomes if o.latency_s is not None]
    waits = np.array([o.wait_s for o in done if o.wait_s is not None]) * m
    latencies = np.array([o.latency_s for o in done]) * m
    total = len(observed.outcomes)
    within = int(np.sum(waits <= SLO.threshold_s)) if SLO.on == "wait" else 0
    if SLO.on == "latency":
        within = int(np.sum(latencies <= SLO.threshold_s))
    end_s = plan.wall_s  # the profile's end, as the simulator bills (answers may come later)
    replica_s = sum(
        max(0.0, min(r.ended_s if r.ended_s is not None else end_s, end_s) - max(r.started_s, 0.0))
        for r in observed.replicas.values()
    )
    # replicas alive before the load (the initial ones) count from the start of the load
    events = sum(1 for d in observed.decisions if d.get("action") == "scaled")
    counts = [int(d.get("applied_replicas") or 0) for d in observed.decisions]
    return Figures(
        wait_p50_s=_q(waits, 0.5),
        wait_p95_s=_q(waits, 0.95),
        latency_p50_s=_q(latencies, 0.5),
        latency_p95_s=_q(latencies, 0.95),
        slo_attainment=within / total if total else None,
        replica_seconds=replica_s * m,
        scale_events=events,
        max_replicas=max([plan.initial_replicas, *counts]),
        requests=total,
    )


def startup(plan: SandboxPlan, observed: Observed) -> Startup | None:
    delays = [
        (r.routed_s - r.started_s) * plan.m
        for r in observed.replicas.values()
        if r.routed_s is not None and r.started_s >= 0
    ]
    if not delays:
        return None
    return Startup(float(np.mean(delays)), min(delays), max(delays), len(delays))


def health(observed: Observed) -> Health:
    load = observed.load
    ms = lambda v: None if v is None else v * 1000.0  # noqa: E731
    statuses = [o.status for o in observed.outcomes]
    return Health(
        send_lag_p99_ms=ms(load.send_lag_p99_s) if load else None,
        send_lag_max_ms=ms(load.send_lag_max_s) if load else None,
        cpu_share=observed.cpu_s / observed.wall_s if observed.wall_s > 0 else math.nan,
        sent=load.sent if load else 0,
        completed=sum(s.startswith("2") for s in statuses),
        failed=sum(not s.startswith("2") and s != "dropped" for s in statuses),
        dropped=statuses.count("dropped"),
    )


def scrape_age_s(plan: SandboxPlan, observed: Observed | None) -> float | None:
    """The mean age of the data the policy decides on (wall seconds): over the jobs its
    signals come from (hpa's in_flight from the replicas, slo's rate from the router)."""
    if observed is None:
        return None
    ages = [observed.scrape_ages_s[j] for j in plan.signal_jobs if j in observed.scrape_ages_s]
    return float(np.mean(ages)) if ages else None


def scrape_offset_s(plan: SandboxPlan, age_s: float | None) -> float:
    """The simulator's scrape phase that gives its ticks the data age the sandbox measured
    (wall seconds): a tick at k x interval sees the scrape at offset + j x scrape interval."""
    if age_s is None:
        return 0.0
    scrape = plan.scrape_interval_s
    age = min(max(age_s * plan.m, 0.0), scrape)
    return (scrape - age) % scrape if age > 1e-6 else 0.0


def simulate(plan: SandboxPlan, startup_s: float, offset_s: float = 0.0) -> Result:
    """The simulator on the same arrivals, policy and model, with the measured startup and
    scrape phase."""
    model = {**plan.model_spec, "startup": {"fixed_s": startup_s}}
    metrics = MetricsConfig(
        scrape_interval_s=plan.scrape_interval_s,
        rate_window_s=RATE_WINDOW_S,
        scrape_offset_s=offset_s,
        # Prometheus scraped the idle stack before the load: the first rate windows hold zeros
        idle_before_s=RATE_WINDOW_S + plan.scrape_interval_s,
    )
    return run(
        plan.profile,
        plan.spec,
        model,
        seed=plan.options.seed,
        interval_s=plan.interval_s,
        metrics=metrics,
        slo=SLO,
        initial_replicas=plan.initial_replicas,
        max_alive=plan.max_replicas,
    )


def simulated_figures(result: Result) -> Figures:
    s = result.summary
    return Figures(
        wait_p50_s=s.wait_p50_s,
        wait_p95_s=s.wait_p95_s,
        latency_p50_s=s.latency_p50_s,
        latency_p95_s=s.latency_p95_s,
        slo_attainment=s.slo_attainment,
        replica_seconds=s.replica_hours * 3600.0,
        scale_events=s.scale_events,
        max_replicas=s.max_replicas,
        requests=s.requests,
    )


def difference(real: float | None, sim: float | None, key: str = "") -> str:
    if real is None or sim is None:
        return "-"
    if key.endswith("_s") and max(abs(real), abs(sim)) < 0.05:
        return "both ~0"  # a few ms of HTTP against none: not a relative error
    if real == 0:
        return "0" if sim == 0 else "n/a"
    return f"{(sim - real) / abs(real) * 100:+.1f} %"


def fmt(key: str, value: float | None) -> str:
    if value is None:
        return "-"
    if key == "slo_attainment":
        return f"{value * 100:.2f} %"
    if key in ("scale_events", "max_replicas", "requests"):
        return f"{int(value):,}"
    if key == "replica_seconds":
        return f"{value:,.0f}"
    return f"{value:.3g}"


def table_rows(real: Figures, sim: Figures) -> list[tuple[str, str, str, str]]:
    out = []
    for key, label in ROWS:
        a, b = getattr(real, key), getattr(sim, key)
        out.append((label, fmt(key, a), fmt(key, b), difference(a, b, key)))
    return out


# --- the plot ----------------------------------------------------------------------------------


def _steps(points: list[tuple[float, int]], end_s: float, start: int) -> tuple[list, list]:
    xs, ys, last = [0.0], [start], start
    for t, n in sorted(points):
        if t < 0:
            ys[0] = last = n
            continue
        xs += [t, t]
        ys += [last, n]
        last = n
    xs.append(end_s)
    ys.append(last)
    return xs, ys


def plot(plan: SandboxPlan, observed: Observed, result: Result, path: Path) -> None:
    import matplotlib  # noqa: PLC0415 - plotting only

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    m, end_s = plan.m, plan.duration_s
    fig, (top, middle, bottom) = plt.subplots(3, 1, figsize=(11, 8.5), sharex=True)
    # replicas: desired (decisions) and ready (routed), real vs simulated
    desired = [
        (d["t_s"] * m, int(d["applied_replicas"]))
        for d in observed.decisions
        if isinstance(d.get("applied_replicas"), int)
    ]
    xs, ys = _steps(desired, end_s, plan.initial_replicas)
    top.plot(xs, ys, color="tab:blue", label="sandbox: replicas asked for")
    xs, ys = _steps([(t * m, n) for t, n in observed.routed], end_s, plan.initial_replicas)
    top.plot(xs, ys, color="tab:blue", linestyle=":", label="sandbox: replicas routed (ready)")
    tl = result.timeline
    top.step(tl.t_s, tl.replicas, where="post", color="tab:orange", label="simulator: asked for")
    top.step(tl.t_s, tl.ready_replicas, where="post", color="tab:orange", linestyle=":",
             label="simulator: ready")  # fmt: skip
    top.set_ylabel("replicas")
    top.legend(loc="upper left", fontsize=8, ncol=2)
    top.axvline(plan.load_s, color="grey", linewidth=0.8)
    top.text(plan.load_s, top.get_ylim()[1], " load ends", va="top", fontsize=8, color="grey")
    # arrival rate, both in the same bins (at least 10 s, at least one decision interval)
    width = max(10.0, plan.interval_s)
    due = np.array([o.due_s for o in observed.outcomes]) * m
    edges = np.arange(0.0, end_s + width, width)
    middle.stairs(np.histogram(due, edges)[0] / width, edges, color="tab:blue",
                  label="sandbox: arrivals")  # fmt: skip
    arrived = np.concatenate(([0.0], np.cumsum(tl.arrival_rate_rps * plan.interval_s)))
    at = np.concatenate(([0.0], tl.t_s))
    middle.stairs(np.diff(np.interp(edges, at, arrived)) / width, edges, color="tab:orange",
                  linestyle="--", label="simulator: arrivals")  # fmt: skip
    middle.set_ylabel(f"requests/s (per {width:g} s)")
    middle.legend(loc="upper right", fontsize=8)
    # queue and wait
    if observed.queue:
        qt, qd = zip(*observed.queue, strict=True)
        bottom.plot(np.array(qt) * m, qd, color="tab:blue", label="sandbox: queue (router)")
    bottom.step(tl.t_s, tl.queue_depth, where="post", color="tab:orange",
                label="simulator: queue")  # fmt: skip
    bottom.set_ylabel("requests queued")
    bottom.set_xlabel("profile time (s)" + (f"; ran {m:g}x faster" if m != 1 else ""))
    bottom.legend(loc="upper right", fontsize=8)
    o = plan.options
    fig.suptitle(
        f"replicast sandbox: {o.policy} on {o.profile} x{o.rate_scale:g}, seed {o.seed}, "
        f"time compression {m:g}",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- the decisions, side by side ----------------------------------------------------------

INPUT_KEYS = ("replicas", "ready_replicas", "request_rate_rps", "in_flight", "queue_depth",
              "latency_p50_s", "latency_p95_s")  # fmt: skip


def _in_profile_units(key: str, value: Any, m: float) -> Any:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return value
    if key.endswith("_rps"):
        return value / m
    if key.endswith("_s"):
        return value * m
    return value


def decision_rows(
    records: list[dict[str, Any]], start_epoch_s: float, m: float
) -> list[dict[str, Any]]:
    """Each decision's time (profile seconds from the load's start), the inputs it saw and
    what it proposed and decided, in profile units (the controller's are wall units)."""
    rows = []
    for record in sorted(records, key=lambda r: float(r.get("now_s", 0.0))):
        inputs = record.get("inputs") or {}
        row: dict[str, Any] = {"t_s": round((float(record["now_s"]) - start_epoch_s) * m, 3)}
        row.update({k: _in_profile_units(k, inputs.get(k), m) for k in INPUT_KEYS})
        row["proposal"] = record.get("proposal")
        row["decided"] = record.get("replicas")
        row["reason"] = record.get("reason")
        row["details"] = {
            k: _in_profile_units(k, v, m) for k, v in (record.get("details") or {}).items()
        }
        rows.append(row)
    return rows


def write_decisions(out: Path, plan: SandboxPlan, observed: Observed, result: Result) -> Path:
    """decisions.json: every decision of the controller and of the simulator with its inputs,
    to see where the two loops part (the first tick whose inputs differ)."""
    real = decision_rows(
        [r for r in observed.records.values() if "now_s" in r], observed.load_start_epoch, plan.m
    )
    real = [row for row in real if row["t_s"] >= -1e-6]  # not the dry run before the load
    sim = decision_rows([r.to_dict() for r in result.records], DEFAULT_EPOCH_S, 1.0)
    path = out / "decisions.json"
    path.write_text(json.dumps({"sandbox": real, "simulator": sim}, indent=1))
    return path


# --- the report ------------------------------------------------------------------------------


def write_report(
    out: Path,
    plan: SandboxPlan,
    real: Figures,
    sim: Figures,
    load: Health,
    start: Startup | None,
    command: str,
    observed: Observed | None = None,
) -> dict[str, Any]:
    o = plan.options
    age_s = scrape_age_s(plan, observed)
    by_job = {} if observed is None else observed.scrape_ages_s
    decisions = [] if observed is None else [
        [round(d["t_s"] * plan.m, 3), d.get("action"), d.get("applied_replicas")]
        for d in observed.decisions
        if d.get("t_s", -1) >= 0
    ]  # fmt: skip
    doc = {
        "command": command,
        "profile": o.profile,
        "slice_s": list(o.slice_s) if o.slice_s else None,
        "load_s": plan.load_s,
        "tail_s": plan.duration_s - plan.load_s,
        "policy": plan.spec,
        "policy_compressed": plan.compressed,
        "rate_scale": o.rate_scale,
        "time_compression": plan.m,
        "seed": o.seed,
        "interval_s": plan.interval_s,
        "scrape_interval_s": plan.scrape_interval_s,
        "initial_replicas": plan.initial_replicas,
        "configured_startup_s": plan.model_spec["startup"]["fixed_s"],
        "measured_startup": asdict(start) if start else None,
        "measured_scrape_age_s": None if age_s is None else age_s * plan.m,
        "measured_scrape_age_by_job_s": {job: age * plan.m for job, age in by_job.items()},
        "sandbox": asdict(real),
        "simulator": asdict(sim),
        "load_generator": asdict(load),
        "notes": plan.notes,
        "decisions": decisions,  # [profile s from the load's start, action, replicas]
        "ports": [] if observed is None else observed.ports,
    }
    (out / "report.json").write_text(json.dumps(doc, indent=2))
    lines = [
        f"# replicast sandbox: {o.policy} on {o.profile}",
        "",
        f"`{command}`",
        "",
        f"- load: {plan.load_s:g} s of {o.profile} x{o.rate_scale:g} (seed {o.seed}), then "
        f"{plan.duration_s - plan.load_s:g} s quiet; {plan.initial_replicas} replica(s) ready "
        "at the start",
        f"- time compression {plan.m:g}: ran in {plan.wall_s:.0f} s of wall time; every figure "
        "below is in profile seconds (wall x m)",
        f"- decisions every {plan.interval_s:g} s, Prometheus scraping every "
        f"{plan.scrape_interval_s:g} s, rate windows {RATE_WINDOW_S:g} s",
    ]
    if start:
        lines.append(
            f"- startup measured (process start to routed): mean {start.mean_s:.1f} s, "
            f"{start.min_s:.1f}-{start.max_s:.1f} s over {start.count} replica(s); configured "
            f"{plan.model_spec['startup']['fixed_s']:g} s; the simulator used the mean"
        )
    if age_s is not None:
        jobs = ", ".join(f"{job} {age * plan.m:.1f} s" for job, age in sorted(by_job.items()))
        lines.append(
            f"- scraped data at a decision: {age_s * plan.m:.1f} s old on average for the "
            f"policy's signals ({jobs}; Prometheus scrapes each target at its own phase); the "
            "simulator scrapes at the phase that gives the same age"
        )
    lines += [
        f"- load generator: send lag p99 {_ms(load.send_lag_p99_ms)}, max "
        f"{_ms(load.send_lag_max_ms)}; CPU {load.cpu_share * 100:.0f} % of a core; "
        f"{load.completed:,} answered, {load.failed:,} failed, {load.dropped:,} dropped",
        *[f"- note: {n}" for n in plan.notes],
        "",
        "| | sandbox | simulator | simulator vs sandbox |",
        "|---|---|---|---|",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in table_rows(real, sim)],
        "",
        "![timelines](timeline.png)",
        "",
        "Every decision of both loops, with the inputs it saw (profile units): `decisions.json`.",
        "",
    ]
    (out / "report.md").write_text("\n".join(lines))
    return doc


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"
