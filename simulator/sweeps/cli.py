"""`replicast sweep GRID.yaml`: every cell of a grid, a table, a CSV and a Pareto plot.

In: the grid file (see `simulator.sweeps.grid`), `--executor process|local-dask|dask://HOST:PORT`,
`--workers`, `--out DIR`, `--resume`. Out: DIR/sweep.csv (one row per cell, written as cells
finish), DIR/sweep.parquet (with the `parquet` extra), DIR/pareto.png, and on stdout the
configurations on the Pareto front of each condition. Exit 0 when every cell ran, 1 when some
failed (their rows say why), 2 for a grid or flag that cannot run (one line per problem).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from policies import yaml_input
from policies.problems import Problem, locate
from simulator.cli.args import _Parser
from simulator.profiles import ProfileError
from simulator.sweeps.cell import model_for, profile_for
from simulator.sweeps.grid import Cell, GridError, parse_grid
from simulator.sweeps.pareto import front, plot_front
from simulator.sweeps.pool import EXECUTORS, ExecutorError, default_workers, executor_for
from simulator.sweeps.table import progress_printer, sweep
from simulator.traces import TraceError


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="replicast sweep", description=cmd_sweep.__doc__)
    parser.add_argument("grid", type=Path, help="the grid YAML file (see README: Sweeps)")
    parser.add_argument("--out", type=Path, default=Path("replicast-sweep"), help="output folder")
    parser.add_argument("--executor", default="process", help=f"{EXECUTORS} (default process)")
    parser.add_argument(
        "--workers", type=int, default=None, help=f"default one per core ({default_workers()})"
    )
    parser.add_argument(
        "--resume", action="store_true", help="keep the cells OUT/sweep.csv holds; run the rest"
    )
    parser.add_argument(
        "--max-cells", type=int, default=None, help="run only the first N cells (a quick look)"
    )
    parser.add_argument(
        "--slice", default=None, metavar="START:END", help="seconds of each profile (replaces "
        "the grid's slice; a quick look at a long trace)",
    )  # fmt: skip
    return parser


def read_grid(path: Path, slice_: str | None = None) -> tuple[Any, list[Cell]]:
    """The grid file parsed and checked (`slice_` replacing its slice); GridError with every
    problem, one line each."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise GridError([Problem(source, "", f"cannot read the file: {reason}")]) from None
    try:
        data, positions = yaml_input.load_located(text, source)
    except yaml_input.DocumentError as error:
        raise GridError(list(error.problems)) from None
    data = _beside(data, path.parent)
    if slice_ is not None and isinstance(data, dict):
        data["slice"] = slice_
    spec, cells = parse_grid(data, source, positions)
    _check_profiles(cells, source, positions)
    return spec, cells


def _beside(data: Any, folder: Path) -> Any:
    """A relative trace or model path that is not found here is looked for beside the grid."""
    if not isinstance(data, dict):
        return data

    def fix(value: Any) -> Any:
        if isinstance(value, str) and not Path(value).exists() and (folder / value).exists():
            return str(folder / value)
        return value

    out = dict(data)
    for key in ("profile", "model"):
        if isinstance(out.get(key), list):
            out[key] = [fix(v) for v in out[key]]
        elif key in out:
            out[key] = fix(out[key])
    return out


def _check_profiles(cells: Sequence[Cell], source: str, positions: Any) -> None:
    """Each profile and model read once here, before any cell runs (a bad trace is one line
    now, not one failed row a cell)."""
    found: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for cell in cells:
        key = (str(cell.profile), json.dumps(cell.model, sort_keys=True, default=str))
        if key in seen:
            continue
        seen.add(key)
        try:
            model = model_for(cell)
        except ValueError as error:
            found.append(locate(source, positions, ("model",), _plain(error)))
            continue
        try:
            profile_for(cell, model)
        except (ProfileError, TraceError, ValueError) as error:
            found.append(locate(source, positions, ("profile",), _plain(error)))
    if found:
        raise GridError(list(dict.fromkeys(found)))


def _plain(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text.replace("--profile ", "", 1).replace("--slice ", "slice ", 1)


def cmd_sweep(argv: Sequence[str]) -> int:
    """run every cell of a grid (policies x parameters x profiles x seeds ...): CSV, Pareto plot"""
    args = _parser().parse_args(argv)
    try:
        _, cells = read_grid(args.grid, args.slice)
    except GridError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return 2
    if args.max_cells is not None:
        if args.max_cells < 1:
            print(f"replicast sweep: --max-cells {args.max_cells}: must be >= 1", file=sys.stderr)
            return 2
        cells = cells[: args.max_cells]
    out: Path = args.out
    csv_path = out / "sweep.csv"
    workers = args.workers
    print(f"{len(cells)} cells from {args.grid}; --executor {args.executor}", file=sys.stderr)
    on_row, stop = progress_printer()
    try:
        with executor_for(args.executor, workers) as executor:
            table = sweep(cells, executor=executor, out=csv_path, resume=args.resume, on_row=on_row)
    except (ExecutorError, ValueError) as error:
        stop()
        print(f"replicast sweep: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    finally:
        stop()
    files = [csv_path, *_extra_files(table, out)]
    _print_front(table)
    failed = table[table["error"] != ""]
    for path in files:
        print(f"wrote {path}")
    if len(failed):
        first = failed.iloc[0]
        print(
            f"{len(failed)} of {len(table)} cells failed; first: cell {first['cell']} "
            f"({first['label']}, {first['profile']}, seed {first['seed']}): {first['error']}",
            file=sys.stderr,
        )
        return 1
    return 0


def _extra_files(table: pd.DataFrame, out: Path) -> list[Path]:
    files = []
    try:
        table.to_parquet(out / "sweep.parquet", index=False)
        files.append(out / "sweep.parquet")
    except ImportError:
        pass  # the parquet extra is not installed: the CSV is the table
    if (table["error"] == "").any():
        files.append(plot_front(table, out / "pareto.png", title="cost against SLO attainment"))
    return files


def _print_front(table: pd.DataFrame) -> None:
    ok = table[table["error"] == ""]
    if ok.empty:
        return
    points = front(ok)
    unit = "USD" if points["cost_of"].iloc[0] == "cost_usd" else "replica-h"
    console = Console(width=max(100, Console().width))
    condition = ["profile", "model", "slo", "startup_s", "interval_s", "rate_scale"]
    for key, part in points.groupby(condition, sort=False, dropna=False):
        profile, model, slo, startup, interval, scale = key
        startup_text = "" if pd.isna(startup) or startup == "-" else f", startup {startup:g} s"
        scale_text = "" if scale == 1 else f", x{scale:g}"
        title = f"{profile}, {model}, {slo}{startup_text}, every {interval:g} s{scale_text}"
        grid = Table(title=f"Pareto front: {title}", title_justify="left")
        columns = ("configuration", "seeds", f"cost ({unit})", "SLO attainment", "worst seed")
        for name in (*columns, "meets SLO"):
            grid.add_column(name, justify="left" if name == "configuration" else "right")
        for _, row in part[part["on_front"]].sort_values("cost").iterrows():
            grid.add_row(
                str(row["label"]), str(row["seeds"]), f"{row['cost']:,.2f}",
                f"{100 * row['slo_attainment']:.2f} %", f"{100 * row['slo_attainment_min']:.2f} %",
                "yes" if row["meets_slo"] else "no",
            )  # fmt: skip
        off = int((~part["on_front"]).sum())
        meeting = part[part["meets_slo"]].sort_values("cost")
        cheapest = (
            f"cheapest meeting the SLO on every seed: {meeting.iloc[0]['label']}"
            if len(meeting)
            else "no configuration meets the SLO on every seed"
        )
        grid.caption = f"{cheapest}; {off} other configuration(s) cost more for no more attainment"
        console.print(grid)
