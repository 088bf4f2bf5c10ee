"""PNG plots of simulation results (matplotlib, Agg): load vs replicas vs latency over time.

In: `Result`s. Out: files in a directory, their paths returned. Imported only when plots are
asked for, so the rest of the simulator does not load matplotlib.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from simulator.result import Result


def _hours(result: Result) -> np.ndarray:
    return result.timeline.t_s / 3600.0


def plot_timeline(result: Result, path: Path, *, title: str = "") -> Path:
    """Three stacked panels: load, replicas (desired / ready / starting), observed p95."""
    tl, h = result.timeline, _hours(result)
    fig, (load, reps, lat) = plt.subplots(3, 1, figsize=(11, 8), sharex=True)
    load.plot(h, tl.arrival_rate_rps, lw=0.8, label="arrivals (truth)")
    load.plot(h, tl.observed_rate_rps, lw=0.8, label="rate the policy saw")
    load.set_ylabel("req/s")
    load.legend(loc="upper right")
    reps.step(h, tl.replicas, where="post", lw=1.0, label="desired")
    reps.step(h, tl.ready_replicas, where="post", lw=0.8, label="ready")
    reps.step(h, tl.starting_replicas, where="post", lw=0.6, label="starting")
    reps.set_ylabel("replicas")
    reps.legend(loc="upper right")
    lat.plot(h, tl.latency_p95_s, lw=0.8, label="observed p95 latency")
    lat.plot(h, tl.queue_depth, lw=0.6, label="queue depth")
    lat.set_yscale("symlog")
    lat.set_xlabel("hours")
    lat.legend(loc="upper right")
    fig.suptitle(title or result.summary.policy)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_compare(results: Sequence[Result], out: Path, *, title: str = "") -> list[Path]:
    """One overview (load and every policy's replicas) plus one timeline per policy."""
    out.mkdir(parents=True, exist_ok=True)
    fig, (load, reps) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    first = results[0]
    load.plot(_hours(first), first.timeline.arrival_rate_rps, lw=0.8, color="gray")
    load.set_ylabel("req/s")
    for r in results:
        s = r.summary
        label = f"{s.policy} ({s.replica_hours:,.1f} replica-h"
        label += f", SLO {s.slo_attainment:.1%})" if s.slo_attainment is not None else ")"
        reps.step(_hours(r), r.timeline.replicas, where="post", lw=1.0, label=label)
    reps.set_ylabel("replicas (desired)")
    reps.set_xlabel("hours")
    reps.legend(loc="upper right", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    overview = out / "compare.png"
    fig.savefig(overview, dpi=110)
    plt.close(fig)
    paths = [overview]
    for i, r in enumerate(results, start=1):
        paths.append(plot_timeline(r, out / f"timeline-{i}-{r.summary.policy}.png"))
    return paths
