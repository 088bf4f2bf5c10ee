"""Running a grid: cells on an executor, rows appended to a CSV as they finish, resumable.

`sweep(grid, executor=..., out=..., resume=...)` returns a tidy pandas DataFrame, one row per
cell in the grid's order. With `out` (a CSV path) every row is appended and flushed as its cell
finishes, so an interrupted sweep loses only the cells in flight; `resume=True` keeps the rows
already there (by each cell's `key`, a digest of what decides its run) and runs the rest
(failed cells run again). The columns are fixed by the grid before anything runs: the cell's
axes, `param_<key>` for every policy key of every block, every Summary figure, `spec`,
`wall_s`, `error`.
"""

from __future__ import annotations

import csv
import io
import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from simulator.sweeps.cell import CELL_COLUMNS, SUMMARY_COLUMNS, TAIL_COLUMNS, cell_columns
from simulator.sweeps.cell import run_cell as _run_cell
from simulator.sweeps.grid import Cell, GridSpec, cells, parse_grid
from simulator.sweeps.pool import map_unordered

OnRow = Callable[[int, int, Mapping[str, Any]], None]


def columns_for(cells: Sequence[Cell]) -> list[str]:
    params: dict[str, None] = {}
    for cell in cells:
        params.update(dict.fromkeys(k for k in cell_columns(cell) if k.startswith("param_")))
    return [*CELL_COLUMNS, *params, *SUMMARY_COLUMNS, *TAIL_COLUMNS]


def _done_rows(path: Path, columns: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The rows of an earlier run of the same grid that succeeded, by cell key."""
    if not path.exists() or path.stat().st_size == 0:
        return {}
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.endswith("\n"):  # the run was killed while writing its last row
        text = text[: text.rfind("\n") + 1]
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if reader.fieldnames is None or list(reader.fieldnames) != list(columns):
        raise ValueError(
            f"{path}: its columns are not this grid's; resume the grid that wrote it, "
            "or give another --out"
        )
    rows = {}
    for row in reader:
        whole = None not in row and all(v is not None for v in row.values())
        if whole and row.get("key") and not row.get("error"):
            rows[row["key"]] = row
    return rows


def sweep(
    grid: GridSpec | Mapping[str, Any] | Sequence[Cell],
    *,
    executor: Executor | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    on_row: OnRow | None = None,
    run_cell: Callable[[Cell], dict[str, Any]] = _run_cell,
) -> pd.DataFrame:
    """Every cell of `grid` (a grid mapping, a parsed `GridSpec`, or its cells) on `executor`
    (None: in this process); the table, one row per cell, in the grid's order."""
    cells = _cells_of(grid)
    columns = columns_for(cells)
    path = Path(out) if out is not None else None
    kept: dict[str, dict[str, Any]] = {}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        kept = _done_rows(path, columns) if resume else {}
    rows: dict[int, dict[str, Any]] = {}
    todo = []
    for cell in cells:
        if cell.key in kept:
            rows[cell.index] = {**kept[cell.key], "cell": cell.index}
        else:
            todo.append(cell)
    writer_file = None
    try:
        if path is not None:
            writer_file = _rewrite(path, columns, [rows[i] for i in sorted(rows)])
        writer = (
            csv.DictWriter(writer_file, columns, extrasaction="ignore") if writer_file else None
        )
        done = len(rows)
        if on_row is not None and done:
            on_row(done, len(cells), {})
        for i, result in map_unordered(run_cell, todo, executor):
            row = result if isinstance(result, dict) else _failed(todo[i], result)
            rows[todo[i].index] = row
            if writer is not None and writer_file is not None:
                writer.writerow(_csv_ready(row))
                writer_file.flush()
            done += 1
            if on_row is not None:
                on_row(done, len(cells), row)
    finally:
        if writer_file is not None:
            writer_file.close()
    frame = pd.DataFrame([rows[c.index] for c in cells], columns=columns)
    return _typed(frame) if path is None else _typed(_reread(path, frame))


def _cells_of(grid: GridSpec | Mapping[str, Any] | Sequence[Cell]) -> list[Cell]:
    if isinstance(grid, GridSpec):
        return cells(grid)
    if isinstance(grid, Mapping):
        return parse_grid(grid)[1]
    return list(grid)


def _rewrite(path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> Any:
    """The CSV with its header and the rows kept, open for appending."""
    handle = path.open("w", newline="", encoding="utf-8")
    writer = csv.DictWriter(handle, columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(_csv_ready(row))
    handle.flush()
    return handle


def _csv_ready(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: ("" if v is None else v) for k, v in row.items()}


def _failed(cell: Cell, error: BaseException) -> dict[str, Any]:
    """The row of a cell whose worker failed (died, or could not unpickle)."""
    row = cell_columns(cell)
    row["error"] = f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"
    row["wall_s"] = math.nan
    return row


def _reread(path: Path, frame: pd.DataFrame) -> pd.DataFrame:
    """The table as the CSV holds it (so a resumed sweep and a fresh one give the same
    frame), in the grid's cell order."""
    read = pd.read_csv(path, keep_default_na=False, na_values=[""], low_memory=False)
    order = {key: i for i, key in enumerate(frame["key"])}
    read = read[read["key"].isin(order)]
    read = read.drop_duplicates("key", keep="last")
    read = read.assign(cell=read["key"].map(order)).sort_values("cell")
    return read.reset_index(drop=True)


_NUMERIC = {
    "seed",
    "slo_share",
    "startup_s",
    "interval_s",
    "rate_scale",
    "wall_s",
    *SUMMARY_COLUMNS,
}
_TEXT = {"why", "warning", "slo", "slo_targets", "slo_attainments", "slo_quantiles_s"}
_TEXT |= {"slo_met_each", "error", "spec", "label", "policy", "profile", "model", "slice"}


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Numbers as numbers, text as text ("" for none), whether the rows came from a run or a
    CSV: the same table either way."""
    frame = frame.copy()
    for name in frame.columns:
        if name in _TEXT:
            frame[name] = _text(frame[name])
        elif name in _NUMERIC or name.startswith("param_"):
            converted = pd.to_numeric(frame[name], errors="coerce")
            given = frame[name].notna() & (frame[name].astype(str) != "")
            if converted[given].notna().all():
                frame[name] = converted
            else:
                frame[name] = _text(frame[name])
    for name in ("slo_met", "started_cold"):
        if name in frame.columns:
            frame[name] = frame[name].map(_bool)
    return frame


def _text(column: pd.Series) -> pd.Series:
    return column.astype(object).where(column.notna(), "").astype(str)


def _bool(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float) and math.isnan(value):
        return None
    text = str(value)
    return {"True": True, "False": False, "1": True, "0": False, "1.0": True, "0.0": False}.get(
        text
    )


def progress_printer(
    stream: Any = None, every_s: float = 5.0, label: str = "sweep", unit: str = "cells"
) -> tuple[OnRow, Callable[[], None]]:
    """`on_row` for a sweep: a rich bar (cells done / total, ETA) on a terminal, else a line
    every `every_s` seconds; and a function that ends it. `label` and `unit` name the work
    (the plan: "simulating finalists", "runs")."""
    stream = stream or sys.stderr
    if getattr(stream, "isatty", lambda: False)():
        bar = Progress(
            "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
            unit, TimeRemainingColumn(), console=Console(file=stream), transient=True,
        )  # fmt: skip
        bar.start()
        task = bar.add_task(label, total=None)

        def on_bar(done: int, total: int, row: Mapping[str, Any]) -> None:
            bar.update(task, completed=done, total=total)

        return on_bar, bar.stop
    began = time.monotonic()
    last = [-math.inf]
    failed = [0]

    def on_line(done: int, total: int, row: Mapping[str, Any]) -> None:
        failed[0] += bool(row.get("error"))
        now = time.monotonic()
        if now - last[0] < every_s and done < total:
            return
        last[0] = now
        elapsed = now - began
        eta = elapsed / done * (total - done) if done else math.nan
        errors = f", {failed[0]} failed" if failed[0] else ""
        print(
            f"{label}: {done}/{total} {unit}{errors}, {elapsed:.0f} s, ETA {eta:.0f} s",
            file=stream,
            flush=True,
        )

    return on_line, lambda: None
