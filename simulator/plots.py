"""PNG plots of simulation results (matplotlib, Agg): load, replicas and the SLO's own metric.

In: `Result`s and the SLO they were judged by. Out: `timeline_figure` (one run: load, replicas
with the cap, each SLO target's metric per interval with its threshold, the queue, each on its
own labelled axis) and `compare_figure` (the load, then one row per policy: its replicas and
its SLO metrics, so no line hides another), as matplotlib Figures; `plot_timeline` and
`plot_compare` save them as files and return the paths. Runs longer than two days are drawn as
envelopes (the min-max band and the mean of each bin, e.g. an hour over 14 days; an SLO metric
as the worst interval of each bin), and `plot_compare` adds the busiest day zoomed in. Imported
only when plots are asked for, so the rest of the simulator does not load matplotlib.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from simulator.result import Result, Slo, SloTarget, Summary, duration_text, slo_targets

FloatArray = npt.NDArray[np.float64]
DAY_S = 86_400.0
LONG_S = 2 * DAY_S  # longer runs are drawn as envelopes, in days
MAX_POINTS = 1500  # beyond this many ticks in view (a day at 15 s is 5,760), bins
BINS = 400  # about this many
BIN_CHOICES_S = (60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21_600.0, DAY_S)
CAP_COLOR, SLO_COLOR = "tab:red", "tab:red"


@dataclass(frozen=True)
class _View:
    """A run's ticks in a window, on the x axis's unit."""

    result: Result
    rows: slice
    x: FloatArray
    unit: str  # "hours" or "days"
    bin_s: float  # 0: every tick drawn

    def column(self, name: str) -> FloatArray:
        return np.asarray(self.result.timeline.column(name)[self.rows], dtype=np.float64)


def _view(result: Result, window: tuple[float, float] | None = None) -> _View:
    t = result.timeline.t_s
    start, end = window if window is not None else (0.0, result.summary.duration_s)
    lo, hi = np.searchsorted(t, [start, end], side="right")
    rows = slice(int(lo), int(hi))
    days = end - start > LONG_S
    x = t[rows] / (DAY_S if days else 3600.0)
    ticks = int(hi - lo)
    bin_s = 0.0
    if ticks > MAX_POINTS:
        wanted = (end - start) / BINS
        bin_s = next((b for b in BIN_CHOICES_S if b >= wanted), BIN_CHOICES_S[-1])
    return _View(result, rows, x, "days" if days else "hours", bin_s)


def _binned(view: _View, y: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """(bin middles on x, min, mean, max) of `y` per `view.bin_s` bin (NaN-aware)."""
    scale = DAY_S if view.unit == "days" else 3600.0
    width = view.bin_s / scale
    index = np.floor(view.x / width - 1e-9).astype(np.int64)
    index -= index[0]
    n = int(index.max()) + 1
    finite = np.isfinite(y)
    lo, hi = np.full(n, np.inf), np.full(n, -np.inf)
    np.minimum.at(lo, index[finite], y[finite])
    np.maximum.at(hi, index[finite], y[finite])
    total, count = np.zeros(n), np.zeros(n)
    np.add.at(total, index[finite], y[finite])
    np.add.at(count, index[finite], 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    lo[count == 0], hi[count == 0] = np.nan, np.nan
    first = math.floor(view.x[0] / width - 1e-9)
    return (np.arange(n) + first + 0.5) * width, lo, mean, hi


def _bin_text(view: _View) -> str:
    """`1 h`, `15 min`."""
    return duration_text(view.bin_s)


def _line(ax: Axes, view: _View, y: FloatArray, *, label: str, step: bool = False,
          worst: bool = False, **style: object) -> None:  # fmt: skip
    """`y` over the view: every tick, or each bin's min-max band and mean (`worst`: each
    bin's highest value alone, for a metric that must stay under a threshold)."""
    if view.bin_s and worst:
        middle, _, _, hi = _binned(view, y)
        worst_label = f"{label} (worst interval of each {_bin_text(view)})"
        ax.plot(middle, hi, label=worst_label, **style)  # type: ignore[arg-type]
    elif view.bin_s:
        middle, lo, mean, hi = _binned(view, y)
        (line,) = ax.plot(middle, mean, label=f"{label} (mean, min-max band)", **style)  # type: ignore[arg-type]
        ax.fill_between(middle, lo, hi, color=line.get_color(), alpha=0.25, lw=0)
    elif step:
        ax.step(view.x, y, where="post", label=label, **style)  # type: ignore[arg-type]
    else:
        ax.plot(view.x, y, label=label, **style)  # type: ignore[arg-type]


def _metric_label(target: SloTarget, interval_s: float) -> str:
    what = "wait" if target.on == "wait" else "latency"
    return f"{what} p{target.share * 100:g} per {interval_s:g} s interval, s"


def _default_targets(slo: Slo | None) -> tuple[SloTarget, ...]:
    targets = slo_targets(slo)
    return targets if targets else (SloTarget(math.inf, "wait", 0.99),)  # no threshold line


def _draw_metric(ax: Axes, view: _View, target: SloTarget, interval_s: float) -> None:
    """The target's own metric per interval, its threshold, and intervals lost to drops."""
    y = view.column(target.column)
    dropped_all = np.isinf(y)
    shown = np.where(dropped_all, np.nan, y)
    _line(ax, view, shown, label=f"{target.on} p{target.share * 100:g}", lw=0.8, color="tab:blue",
          worst=True)  # fmt: skip
    if math.isfinite(target.threshold_s):
        ax.axhline(target.threshold_s, color=SLO_COLOR, ls="--", lw=1.0,
                   label=f"SLO: {target.short}")  # fmt: skip
        ax.set_yscale("symlog", linthresh=target.threshold_s / 10)
        over = np.isfinite(shown) & (shown > target.threshold_s)
        if over.any() and not view.bin_s:
            ax.fill_between(
                view.x,
                0,
                1,
                where=over,
                step="pre",
                color=SLO_COLOR,
                alpha=0.15,
                transform=ax.get_xaxis_transform(),
                lw=0,
            )  # a row ends its interval
    else:
        ax.set_yscale("symlog", linthresh=0.1)
    if dropped_all.any():
        ax.plot(view.x[dropped_all], np.full(dropped_all.sum(), 1.0), "x", color=SLO_COLOR,
                ms=3, transform=ax.get_xaxis_transform(),
                label="every request dropped")  # fmt: skip
    ax.set_ylabel(_metric_label(target, interval_s), fontsize=8)
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper right", fontsize=7)


def _draw_replicas(ax: Axes, view: _View, *, ready: bool = True) -> float:
    """Draw the replicas; the top of the axis they need (a shared axis takes the largest)."""
    s = view.result.summary
    desired = view.column("replicas")
    _line(ax, view, desired, label="desired", step=True, lw=1.0, color="tab:blue")
    if ready:
        _line(ax, view, view.column("ready_replicas"), label="ready", step=True, lw=0.8,
              color="tab:green")  # fmt: skip
        if not view.bin_s:
            _line(ax, view, view.column("starting_replicas"), label="starting", step=True,
                  lw=0.6, color="tab:orange")  # fmt: skip
    top = max(float(np.nanmax(desired)) if desired.size else 0.0, 1.0)
    cap = s.replica_cap
    if cap and cap <= 1.5 * top:
        ax.axhline(cap, color=CAP_COLOR, ls="--", lw=1.0, label=f"max_replicas {cap}")
        top = max(top, cap)
    elif cap:  # far above: named in the legend rather than squashing the replicas
        ax.plot([], [], ls="none", label=f"max_replicas {cap} (off the top)")
    ax.yaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
    ax.set_ylim(0, top * 1.25 + 0.5)
    ax.set_ylabel("replicas")
    ax.legend(loc="upper right", fontsize=7)
    return top * 1.25 + 0.5


def outcome(s: Summary) -> str:
    """`98.61% within the SLO: MISS, 5.6 replica-h` (each target's share when combined)."""
    if s.slo_attainment is None:
        return f"{s.replica_hours:,.1f} replica-h"
    verdict = "ok" if s.slo_met else "MISS"
    shares = ", ".join(f"{a:.2%}" for a in s.slo_attainments) or f"{s.slo_attainment:.2%}"
    return f"{shares} within the SLO: {verdict}, {s.replica_hours:,.1f} replica-h"


def _interval_s(result: Result) -> float:
    t = result.timeline.t_s
    return float(t[0]) if t.size else 15.0


def timeline_figure(
    result: Result, *, title: str = "", slo: Slo | None = None,
    window: tuple[float, float] | None = None,
) -> Figure:  # fmt: skip
    """One run: load, replicas (desired / ready / starting, the cap), each SLO target's metric
    per interval with its threshold, and the queue, stacked on one time axis."""
    view, s = _view(result, window), result.summary
    targets = _default_targets(slo)
    rows = 3 + len(targets)
    fig, axes = plt.subplots(rows, 1, figsize=(11, 2.1 * rows + 0.8), sharex=True)
    load, reps, *metrics, queue = axes
    _line(load, view, view.column("arrival_rate_rps"), label="arrivals (truth)", lw=0.8)
    _line(load, view, view.column("observed_rate_rps"), label="rate the policy saw", lw=0.8)
    load.set_ylabel("requests/s")
    load.set_ylim(bottom=0)
    load.legend(loc="upper right", fontsize=7)
    _draw_replicas(reps, view)
    for ax, target in zip(metrics, targets, strict=True):
        _draw_metric(ax, view, target, _interval_s(result))
    _line(queue, view, view.column("queue_depth"), label="queued requests", lw=0.8,
          color="tab:purple")  # fmt: skip
    queue.set_yscale("symlog", linthresh=1.0)
    queue.set_ylim(bottom=0)
    queue.set_ylabel("queued requests")
    queue.legend(loc="upper right", fontsize=7)
    queue.set_xlabel(f"{view.unit} from the start")
    head = title or s.policy
    fig.suptitle(f"{head}\n{s.policy}: {outcome(s)}", fontsize=9)
    fig.tight_layout()
    return fig


def compare_figure(
    results: Sequence[Result], *, title: str = "", slo: Slo | None = None,
    window: tuple[float, float] | None = None,
) -> Figure:  # fmt: skip
    """The load, then a row per policy: its replicas (with the cap) and each SLO target's
    metric with its threshold; shared axes per column, so rows compare and no line hides
    another."""
    targets = _default_targets(slo)
    n, columns = len(results), 1 + len(targets)
    fig = plt.figure(figsize=(6 + 4.5 * len(targets), 2.0 + 1.9 * n))
    grid = fig.add_gridspec(n + 1, columns, height_ratios=[1.2] + [1.0] * n)
    first = _view(results[0], window)
    load = fig.add_subplot(grid[0, :])
    _line(load, first, first.column("arrival_rate_rps"), label="arrivals", lw=0.8, color="gray")
    load.set_ylabel("requests/s")
    load.set_ylim(bottom=0)
    load.legend(loc="upper right", fontsize=7)
    load.set_xlabel(f"{first.unit} from the start", fontsize=8)
    below: list[list[Axes]] = []
    tops: list[float] = []
    for i, r in enumerate(results):
        view = _view(r, window)
        row: list[Axes] = []
        for j in range(columns):
            share = below[0][j] if below else None
            ax = fig.add_subplot(grid[i + 1, j], sharex=share if share else load, sharey=share)
            row.append(ax)
        tops.append(_draw_replicas(row[0], view, ready=False))
        for ax, target in zip(row[1:], targets, strict=True):
            _draw_metric(ax, view, target, _interval_s(r))
        row[0].set_title(f"{r.summary.policy}: {outcome(r.summary)}", loc="left", fontsize=8)
        below.append(row)
    if below:  # the replicas axis is shared: fit it to the row that asks for the most
        below[0][0].set_ylim(0, max(tops))
    for ax in below[-1]:
        ax.set_xlabel(f"{first.unit} from the start")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def busiest_day(result: Result) -> tuple[float, float]:
    """The 24 h window, on whole days from the start, with the most arrivals."""
    t, rate = result.timeline.t_s, np.nan_to_num(result.timeline.arrival_rate_rps)
    days = math.ceil(result.summary.duration_s / DAY_S)
    per_day = np.bincount(np.minimum((t // DAY_S).astype(np.int64), days - 1), rate, days)
    day = int(np.argmax(per_day))
    return day * DAY_S, (day + 1) * DAY_S


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_timeline(result: Result, path: Path, *, title: str = "", slo: Slo | None = None) -> Path:
    return _save(timeline_figure(result, title=title, slo=slo), path)


def plot_compare(
    results: Sequence[Result], out: Path, *, title: str = "", slo: Slo | None = None
) -> list[Path]:
    """compare.png (every policy), compare-busiest-day.png for runs over two days, and one
    timeline-N-POLICY.png per run."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [_save(compare_figure(results, title=title, slo=slo), out / "compare.png")]
    if results[0].summary.duration_s > LONG_S:
        window = busiest_day(results[0])
        day = f"{title}\nthe busiest day: day {window[0] / DAY_S + 1:.0f}"
        fig = compare_figure(results, title=day, slo=slo, window=window)
        paths.append(_save(fig, out / "compare-busiest-day.png"))
    for i, r in enumerate(results, start=1):
        path = out / f"timeline-{i}-{r.summary.policy}.png"
        paths.append(plot_timeline(r, path, title=title, slo=slo))
    return paths
