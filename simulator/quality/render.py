"""A `Report` shown: a rich table, markdown with the sweeps, JSON, and the one-day plot.

In: `Report`s (`simulator.quality.report`). Out: text and a matplotlib Figure; nothing here
simulates or chooses.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
from rich.table import Table

from simulator.quality.choice import BAR, BOUNDS_NOTE
from simulator.quality.jobs import CLAIRVOYANT_RUN, REACTIVE, Measured
from simulator.quality.report import Report, Row

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
    "bar (issue 19)",
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
    s = report.setting
    return f"{report.load}, startup {s.startup_s:g} s, seed {s.seed}; SLO {report.slo}"


def rich_table(report: Report) -> Table:
    table = Table(title=title(report), title_justify="left")
    for col in COLUMNS:
        left = col in ("policy", "target", COLUMNS[-1])
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
        "setting": {k: v for k, v in asdict(report.setting).items() if k != "plan"},
        "load": report.load,
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
    reps.step(edges_h[shown], plan, where="post", lw=1.6, color="black", label="clairvoyant plan")
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
