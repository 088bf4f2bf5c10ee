"""The Pareto front of a sweep: the configurations no other beats on both cost and SLO.

In: the sweep's table. Configurations are compared within one condition (the same profile,
model, SLO, startup, interval and rate scale: what the world does, not what a user chooses),
each one's figures averaged over its seeds. A configuration is on the front when no other costs
no more and attains no less, and one of the two strictly. Cost is `cost_usd` when every row has
a price, else `replica_hours`. Out: `front(table)` (one row a configuration, with `on_front`)
`meets_slo` True when every seed attains the SLO's share) and `plot_front(table, path)` (a
PNG, one panel per condition, the SLO's share dashed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

CONDITION = ["profile", "model", "slo", "startup_s", "interval_s", "rate_scale"]
CHOICE = ["label", "block"]


def cost_column(table: pd.DataFrame) -> str:
    """`cost_usd` when every run that succeeded is priced, else `replica_hours`."""
    ok = table[table["error"] == ""] if "error" in table else table
    if "cost_usd" in ok and len(ok) and ok["cost_usd"].notna().all():
        return "cost_usd"
    return "replica_hours"


def front(table: pd.DataFrame, cost: str | None = None) -> pd.DataFrame:
    """One row per configuration and condition (means over seeds, `seeds` how many), with
    `on_front` True for the undominated ones; failed runs left out."""
    ok = table[table["error"] == ""].copy() if "error" in table else table.copy()
    cost = cost or cost_column(ok)
    keys = [c for c in CONDITION + CHOICE if c in ok]
    ok[keys] = ok[keys].fillna("-")
    grouped = ok.groupby(keys, sort=False, dropna=False)
    out = grouped.agg(
        cost=(cost, "mean"),
        slo_attainment=("slo_attainment", "mean"),
        slo_attainment_min=("slo_attainment", "min"),
        replica_hours=("replica_hours", "mean"),
        seeds=("seed", "nunique"),
        slo_share=("slo_share", "first"),
    ).reset_index()
    # meets the SLO on every seed (the share of requests within the target, in each run)
    out["meets_slo"] = out["slo_attainment_min"] >= out["slo_share"] - 1e-12
    out["cost_of"] = cost
    out["on_front"] = False
    for _, part in out.groupby([c for c in CONDITION if c in out], sort=False, dropna=False):
        out.loc[part.index, "on_front"] = _undominated(
            part["cost"].to_numpy(float), part["slo_attainment"].to_numpy(float)
        )
    return out


def _undominated(cost: np.ndarray, quality: np.ndarray) -> np.ndarray:
    quality = np.nan_to_num(quality, nan=-np.inf)
    n = len(cost)
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        better_or_equal = (cost <= cost[i]) & (quality >= quality[i])
        strictly = (cost < cost[i]) | (quality > quality[i])
        keep[i] = not np.any(better_or_equal & strictly)
    return keep


def plot_front(table: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """Cost against SLO attainment, a panel per condition, the front joined and labelled."""
    points = front(table)
    path = Path(path)
    conditions = list(points.groupby([c for c in CONDITION if c in points], sort=False))
    if not conditions:
        raise ValueError("no run succeeded: nothing to plot")
    columns = 2 if len(conditions) == 4 else min(3, len(conditions))
    rows = (len(conditions) + columns - 1) // columns
    fig = Figure(figsize=(5.2 * columns, 4.2 * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False)
    unit = "USD" if points["cost_of"].iloc[0] == "cost_usd" else "replica-hours"
    policies = sorted(points["label"].str.split(" ").str[0].unique())
    colors = {p: f"C{i % 10}" for i, p in enumerate(policies)}
    for ax, (condition, part) in zip(axes.flat, conditions, strict=False):
        for policy, group in part.groupby(part["label"].str.split(" ").str[0]):
            ax.scatter(
                group["cost"], 100 * group["slo_attainment"], s=28, color=colors[policy],
                alpha=0.75, label=policy,
            )  # fmt: skip
        share = float(part["slo_share"].iloc[0])
        ax.axhline(100 * share, color="C3", ls="--", lw=1, label=f"SLO {100 * share:g} %")
        best = part[part["on_front"]].sort_values("cost")
        ax.plot(best["cost"], 100 * best["slo_attainment"], "k-", lw=1.2, zorder=0)
        ax.scatter(
            best["cost"], 100 * best["slo_attainment"], s=90, facecolors="none",
            edgecolors="k", lw=1.2, label="Pareto front",
        )  # fmt: skip
        for _, row in best.head(6).iterrows():
            ax.annotate(
                row["label"], (row["cost"], 100 * row["slo_attainment"]), fontsize=7,
                xytext=(4, -10), textcoords="offset points",
            )  # fmt: skip
        names = [c for c in CONDITION if c in part]
        values = dict(
            zip(names, condition if isinstance(condition, tuple) else (condition,), strict=True)
        )
        ax.set_title(_condition_title(values), fontsize=9)
        ax.set_xlabel(f"cost ({unit}, mean over seeds)")
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x:,.6g}"))
        ax.set_ylabel("SLO attainment (% of requests)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    for ax in list(axes.flat)[len(conditions) :]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.savefig(path, dpi=110)
    return path


def _condition_title(values: dict[str, object]) -> str:
    parts = [str(values.get("profile", "")), str(values.get("model", ""))]
    startup = values.get("startup_s")
    if startup not in (None, "-", "") and not (isinstance(startup, float) and np.isnan(startup)):
        parts.append(f"startup {float(str(startup)):g} s")
    interval = values.get("interval_s")
    if interval not in (None, "-", ""):
        parts.append(f"every {float(str(interval)):g} s")
    scale = values.get("rate_scale")
    if scale not in (None, "-", "", 1, 1.0):
        parts.append(f"x{float(str(scale)):g}")
    return ", ".join(parts) + f"\n{values.get('slo', '')}"
