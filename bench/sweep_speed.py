"""Sweep throughput: the same grid at 1 and 2 workers (and on a local Dask cluster), side by side.

    python bench/sweep_speed.py              # 16 cells (hpa x 4 targets x 4 seeds), 6 h each
    python bench/sweep_speed.py --hours 24   # heavier cells
    python bench/sweep_speed.py --dask       # + --executor local-dask at 2 workers

Each configuration runs the whole grid from a cold pool (spawning and warming the workers is
part of its wall time, as it is for a user); the tables must be equal (checked, printed). Figures
are printed, never asserted. Load average beside each: another process on the machine slows
the 2-worker run most.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from simulator import sweeps  # noqa: E402


def grid(hours: float) -> dict[str, object]:
    return {
        "profile": "servegen-14d",
        "model": "gpu-llm",
        "slo": {"wait_s": 1, "share": 0.99},
        "seeds": [1, 2, 3, 4],
        "slice": f"0:{hours * 3600:g}",
        "policies": [
            {"policy": "hpa", "metric": "in_flight", "target_per_replica": [4, 5, 6, 7],
             "max_replicas": 200},
        ],
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=6.0, help="hours of the series a cell")
    parser.add_argument("--dask", action="store_true", help="also on a local Dask cluster")
    args = parser.parse_args()
    _, cells = sweeps.parse_grid(grid(args.hours))
    configs = [("process", 1), ("process", 2)] + ([("local-dask", 2)] if args.dask else [])
    rows, tables = [], []
    for kind, workers in configs:
        load = os.getloadavg()[0]
        began = time.perf_counter()
        with sweeps.executor_for(kind, workers) as executor:
            table = sweeps.sweep(cells, executor=executor)
        wall = time.perf_counter() - began
        assert (table["error"] == "").all(), table["error"].tolist()
        tables.append(table.drop(columns=["wall_s"]))
        rows.append((kind, workers, wall, len(cells) / wall, table["wall_s"].mean(), load))
        requests = int(table["requests"].sum())
    same = all(t.equals(tables[0]) for t in tables[1:])
    out = Table(title=f"{len(cells)} cells, {args.hours:g} h of servegen-14d each, hpa")
    for name in ("executor", "workers", "wall s", "cells/s", "speedup", "s a cell", "load 1 min"):
        out.add_column(name, justify="right")
    base = rows[0][2]
    for kind, workers, wall, rate, per_cell, load in rows:
        out.add_row(
            kind, str(workers), f"{wall:.1f}", f"{rate:.2f}", f"{base / wall:.2f}x",
            f"{per_cell:.2f}", f"{load:.2f}",
        )  # fmt: skip
    console = Console()
    console.print(out)
    console.print(f"{requests:,} requests simulated a configuration; tables equal: {same}")
    print(pd.Timestamp.now(tz="UTC").strftime("measured %Y-%m-%d %H:%M UTC"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
