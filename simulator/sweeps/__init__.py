"""Sweeps: many simulations at once, on a process pool or a Dask cluster, as one tidy table.

    from simulator import sweeps
    table = sweeps.sweep(grid, executor=...)           # one row per cell, a pandas DataFrame
    sweeps.plot_front(table, "pareto.png")             # cost against SLO attainment

`grid` (a mapping or `GridSpec`; `replicast sweep GRID.yaml` reads one from a file): policies x
parameters x profiles x seeds x cold starts x models x SLOs, each cell one `simulator.run`.
`executor_for("process" | "local-dask" | "dask://HOST:PORT")` makes the executor; any
`concurrent.futures.Executor` works. `map_ordered`/`map_unordered` run any picklable function
over items on the same executors (`replicast compare` and bench/policy_quality.py use them).

Modules: `grid` (the grid file's keys, expansion, validation), `cell` (one cell simulated into
a row), `pool` (executors, mapping), `table` (the run: CSV as it goes, resume, types),
`pareto` (the front and its plot), `cli` (`replicast sweep`).
"""

from simulator.sweeps.cell import run_cell
from simulator.sweeps.grid import Cell, GridError, GridSpec, parse_grid
from simulator.sweeps.pareto import front, plot_front
from simulator.sweeps.pool import (
    ExecutorError,
    default_workers,
    executor_for,
    map_ordered,
    map_unordered,
)
from simulator.sweeps.table import progress_printer, sweep

__all__ = [
    "Cell",
    "ExecutorError",
    "GridError",
    "GridSpec",
    "default_workers",
    "executor_for",
    "front",
    "map_ordered",
    "map_unordered",
    "parse_grid",
    "plot_front",
    "progress_printer",
    "run_cell",
    "sweep",
]
