"""What a simulator command shows and writes: the summary table, why runs missed, the files.

In: the runs' `Result`s, the SLO and a header for the outputs. Out: the table and notes on the
console (stdout, or stderr with `--json`), with `--out` the plots and the files of
`simulator.outputs`, with `--json` one JSON document on stdout.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from simulator import outputs, quality, scenarios
from simulator.result import Result, Slo, SloTarget, Summary, share_text, slo_targets


def report_console(*, stderr: bool = False) -> Console:
    """Where tables and notes go: a terminal at its width (at least 120), a file or pipe at
    220 columns so rows never wrap."""
    width = Console(stderr=stderr).width if sys.stdout.isatty() else 220
    return Console(width=max(120, width), stderr=stderr)


def summary_table(results: Sequence[Result], slo: Slo, title: str | None = None) -> Table:
    """One row per run. One SLO target: `SLO attained` (share within it, ok or MISS); several:
    a column per target with its own figure (a wait's share within, a latency's percentile)
    and an `SLO` verdict, ok only when every target holds. `at max (cap)`: the share of ticks
    at max_replicas."""
    targets = slo_targets(slo)
    table = Table(title=title, title_justify="left")
    slo_columns = ["SLO attained"] if len(targets) <= 1 else [*(t.short for t in targets), "SLO"]
    columns = ("policy", *slo_columns, "latency p95", "wait p99", "replica-h", "cost $",
               "scale events", "direction changes", "dropped", "at max (cap)")  # fmt: skip
    for col in columns:
        table.add_column(col, justify="left" if col == "policy" else "right")
    for r in results:
        s = r.summary
        table.add_row(
            s.policy,
            *_slo_cells(s, targets),
            _seconds(s.latency_p95_s), _seconds(s.wait_p99_s), f"{s.replica_hours:,.1f}",
            "-" if s.cost_usd is None else f"{s.cost_usd:,.0f}",
            str(s.scale_events), str(s.direction_changes), str(s.dropped),
            f"{share_text(s.at_max_share)} ({s.replica_cap})",
        )  # fmt: skip
    return table


def _verdict(met: bool | None) -> str:
    return " ok" if met else " MISS"


def _slo_cells(s: Summary, targets: Sequence[SloTarget]) -> list[str]:
    if s.slo_attainment is None:
        return ["-"] * (1 if len(targets) <= 1 else len(targets) + 1)
    if len(targets) <= 1:
        return [f"{s.slo_attainment:.2%}" + _verdict(s.slo_met)]
    cells = []
    for target, share, value, met in zip(
        targets, s.slo_attainments, s.slo_quantiles_s, s.slo_met_each, strict=True
    ):
        figure = f"{share:.2%}" if target.on == "wait" else _seconds(value)
        cells.append(figure + _verdict(met))
    return [*cells, "ok" if s.slo_met else "MISS"]


def explanations(results: Sequence[Result]) -> list[str]:
    """A line per run that missed (why) and per run whose cap bound (a warning)."""
    lines = []
    for r in results:
        s = r.summary
        if s.why:
            lines.append(f"why {s.policy} missed: {s.why}")
        if s.warning:
            lines.append(s.warning)
    return lines


def _seconds(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.3g} s"


def _slo_json(slo: Slo) -> list[dict[str, Any]]:
    return [
        {"on": t.on, "threshold_s": t.threshold_s, "share": t.share, "label": t.label}
        for t in slo_targets(slo)
    ]


def report(
    args: argparse.Namespace, results: Sequence[Result], slo: Slo, header: dict[str, Any],
    table: Table, lines: Sequence[str], footer: str,
) -> int:  # fmt: skip
    """The header lines, the table, why-lines and the footer (on stdout, or on stderr with
    `--json`); with `--out`, the plots and the files of `simulator.outputs`; with `--json`,
    the one JSON document on stdout (the header, the runs and the files written)."""
    console = report_console(stderr=args.json)
    for line in lines:
        console.print(line, soft_wrap=True, highlight=False)
    console.print(table)
    for line in explanations(results):
        console.print(line, soft_wrap=True, highlight=False)
    console.print(footer, soft_wrap=True, highlight=False)
    written: list[Path] = []
    if args.out is not None:
        from simulator.plots import plot_compare  # noqa: PLC0415 - matplotlib only when asked

        written = outputs.write(args.out, header, results)
        console.print(f"summary and timelines: {', '.join(map(str, written))}", soft_wrap=True)
        plots = plot_compare(results, args.out, title=header["title"], slo=slo)
        console.print(f"plots: {', '.join(map(str, plots))}", soft_wrap=True)
        written += plots
    if args.json:
        doc = outputs.document({**header, "files": [str(p) for p in written]}, results)
        sys.stdout.write(outputs.dumps(doc) + "\n")
    return 0


def add_plan_rows(table: Table, sc: scenarios.Scenario) -> None:
    """The clairvoyant bound and the static plan, as `summary_table` rows (no SLO columns)."""
    plan = sc.clairvoyant_plan()
    for name, m in (
        ("clairvoyant plan (bound)", quality.plan_measured(sc, plan)),
        (f"static plan ({sc.static_replicas()} replicas)", quality.static_measured(sc, {})),
    ):
        rh = f"{m.replica_hours:,.1f}"
        table.add_row(
            name, "-", "-", "-", rh, "-", str(m.scale_events), str(m.direction_changes), "-", "-"
        )
