"""The plan's plots (matplotlib, readable without the text): load and replicas over time, cost
against SLO attainment for every finalist, the reserved/burst split over the busiest week, and
replicas needed as the load grows."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from simulator.plan.build import Plan, Simulated

DAY_S = 86_400.0


def _days(t_s: np.ndarray) -> np.ndarray:
    return t_s / DAY_S


def load_figure(plan: Plan) -> Figure:
    """The load (req/s) and the replicas: needed by the queueing model, and simulated."""
    fig = Figure(figsize=(11, 4.8), layout="constrained")
    ax = fig.subplots()
    chosen = plan.chosen
    hours = plan.input.profile.duration_s < 2 * DAY_S  # a short profile: hours, not days
    unit, unit_label = (3600.0, "hour") if hours else (DAY_S, "day")
    ax.plot(plan.starts / unit, plan.rates, color="0.55", lw=0.8, label="load (req/s)")
    ax.set_xlabel(f"{unit_label} of the profile")
    ax.set_ylabel("requests per second")
    right = ax.twinx()
    if chosen is not None:
        screened = next(s for s in plan.screened if s.candidate is chosen.candidate)
        right.step(
            plan.starts / unit,
            screened.needed,
            where="post",
            color="C2",
            lw=1,
            label="replicas needed (queueing model)",
        )
        right.step(
            chosen.t_s / unit,
            chosen.replicas,
            where="post",
            color="C0",
            lw=1,
            label=f"replicas in use, simulated ({chosen.label})",
        )
        right.axhline(
            plan.max_replicas, color="C3", ls="--", lw=1, label=f"max_replicas {plan.max_replicas}"
        )
    right.set_ylabel("replicas")
    right.set_ylim(bottom=0)
    lines = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    fig.legend(
        lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="outside lower center", ncol=2
    )  # below the axes: the curves fill the plot
    ax.set_title(f"Load and replicas, {plan.input.profile_name}; SLO {plan.input.slo.label}")
    ax.grid(alpha=0.3)
    return fig


def pareto_figure(plan: Plan) -> Figure:
    """Monthly cost (best reserved split) against SLO attainment, a colour per SKU."""
    fig = Figure(figsize=(9, 5), layout="constrained")
    ax = fig.subplots()
    skus = sorted({s.candidate.label for s in plan.simulated})
    colors = {sku: f"C{i % 10}" for i, sku in enumerate(skus)}
    points = [
        (s.best.usd_per_month, 100 * (s.summary["slo_attainment"] or 0), s) for s in plan.simulated
    ]
    for cost, att, s in points:
        ax.scatter(cost, att, color=colors[s.candidate.label], s=30, alpha=0.8)
    front = _front(points)
    if front:
        xs, ys = zip(*[(c, a) for c, a, _ in front], strict=True)
        ax.plot(xs, ys, "k-", lw=1, zorder=0)
        ax.scatter(xs, ys, s=110, facecolors="none", edgecolors="k", label="Pareto front")
    c = plan.chosen
    mark = None if c is None else _as_finalist(plan, c)
    if c is not None and mark is not None:
        ax.scatter(
            mark.best.usd_per_month,
            100 * mark.summary["slo_attainment"],
            marker="*",
            s=260,
            color="gold",
            edgecolors="k",
            zorder=5,
            label=f"recommended: {c.label}",
        )
    ax.axhline(
        100 * plan.input.slo.share,
        color="C3",
        ls="--",
        lw=1,
        label=f"SLO {100 * plan.input.slo.share:g} %",
    )
    for sku, color in colors.items():
        ax.scatter([], [], color=color, label=sku)
    ax.set_xlabel("USD per month (best reserved floor + on-demand burst)")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x:,.0f}"))
    ax.set_ylabel("SLO attainment (% of requests)")
    where = "" if plan.rank_window == "whole profile" else f", on the {plan.rank_window}"
    ax.set_title(f"Every simulated SKU x policy: cost against SLO attainment{where}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return fig


def _as_finalist(plan: Plan, chosen: Simulated) -> Simulated | None:
    """The recommendation's own point among the finalists (the same window, so the same axes)."""
    same = (s for s in plan.simulated if s.candidate is chosen.candidate and s.spec == chosen.spec)
    return next(same, None)


def _front(points: list[tuple[float, float, Simulated]]) -> list[tuple[float, float, Simulated]]:
    out = []
    for cost, att, s in sorted(points, key=lambda p: (p[0], -p[1])):
        if not out or att > out[-1][1]:
            out.append((cost, att, s))
    return out


def week_figure(plan: Plan) -> Figure:
    """VMs in use over the busiest week, the reserved floor and the burst above it."""
    fig = Figure(figsize=(11, 3.8), layout="constrained")
    ax = fig.subplots()
    c = plan.chosen
    if c is None:
        ax.text(0.5, 0.5, "no configuration met the SLO", ha="center", transform=ax.transAxes)
        return fig
    per_day = int(DAY_S / plan.window_s)
    width = min(len(c.vms), 7 * per_day)
    sums = (
        np.convolve(c.vms, np.ones(width), mode="valid")
        if len(c.vms) >= width
        else np.array([c.vms.sum()])
    )
    start = int(np.argmax(sums))
    t = _days(c.t_s[start : start + width])
    v = c.vms[start : start + width]
    floor = c.best.reserved
    ax.fill_between(
        t,
        0,
        np.minimum(v, floor),
        step="post",
        color="C0",
        alpha=0.5,
        label=f"reserved floor: {floor} VM(s) ({c.best.term.replace('_', ' ')})",
    )
    ax.fill_between(
        t,
        floor,
        np.maximum(v, floor),
        step="post",
        color="C1",
        alpha=0.6,
        label="burst (on demand)",
    )
    ax.step(t, v, where="post", color="k", lw=0.8, label="VMs in use (simulated)")
    ax.set_xlabel("day of the profile (the busiest week)")
    ax.set_ylabel(f"{c.candidate.sku.name} VMs")
    ax.set_title("Reserved floor and burst over the busiest week")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    ax.set_ylim(bottom=0)
    return fig


def growth_figure(plan: Plan) -> Figure:
    fig = Figure(figsize=(8, 3.8), layout="constrained")
    ax = fig.subplots()
    months = [g.months for g in plan.growth]
    ax.plot(months, [g.peak_replicas for g in plan.growth], "o-", label="peak replicas needed")
    ax.axhline(
        plan.max_replicas, color="C3", ls="--", lw=1, label=f"max_replicas {plan.max_replicas}"
    )
    quota = plan.input.quota_gpus
    if quota is not None and plan.chosen is not None:
        per_replica = plan.chosen.candidate.tensor_parallel
        ax.axhline(
            quota // per_replica,
            color="C4",
            ls=":",
            lw=1.2,
            label=f"GPU quota {quota} ({quota // per_replica} replicas)",
        )
    ax.set_xlabel("months from now")
    ax.set_ylabel("replicas")
    ax.set_title(f"Growth: {plan.input.growth.label}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_ylim(bottom=0)
    return fig


FIGURES = {
    "load.png": load_figure,
    "pareto.png": pareto_figure,
    "week.png": week_figure,
    "growth.png": growth_figure,
}
