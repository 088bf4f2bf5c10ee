"""replicast simulator: the simulated-time shell around `policies.tick`.

Load profiles (synthetic and replayed traces) flow into a replica model; the same policy and
guard code the live controller runs decides every control interval. See ../DESIGN (shared) and
the module docstrings of `simulator.profiles`, `simulator.traces` and `simulator.kernel`.

Where things are: `profiles/` (when requests arrive) and `traces/` (real load read from files);
`model`, `service`, `startup`, `cost` (what one replica is, with `kernel_options` the queueing
the kernel takes); `kernel` (the compiled queue), `backend`, `engine` (the loop), `observe`,
`provision`, `figures`, `intervals`, `fold`, `result` (what a run shows); `scenarios`, `sizing`,
`erlang`, `oracle`, `clairvoyant`, `quality/` (benchmarks and bounds); `cli/`, `explain`,
`profile_args`, `profile_formats`, `outputs`, `plots`, `progress` (the commands); `sweeps/`
(many runs on a process pool or a Dask cluster: grids, the table, the Pareto front); `plan/`
(capacity plans: the SKU catalog, the queueing screen, the report); `experiments` (what the
notebooks share). `live/` holds the tools that use real time and real sockets (the emulated
inference server and the load generator), apart from all of the above; `emulator` only keeps
`python -m simulator.emulator` working.
"""

from typing import Any

__all__ = ["run", "sweep"]


def __getattr__(name: str) -> Any:
    """`simulator.run` and `simulator.sweep`, imported when first used (they bring numba and
    pandas, which `import simulator.profiles` alone should not)."""
    if name == "run":
        from simulator.engine import run  # noqa: PLC0415 - lazily

        return run
    if name == "sweep":
        from simulator.sweeps import sweep  # noqa: PLC0415 - lazily

        return sweep
    raise AttributeError(f"module 'simulator' has no attribute {name!r}")
