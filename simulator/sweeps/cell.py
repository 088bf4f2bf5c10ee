"""One sweep cell simulated: the row it adds to the table, or its error (never an exception).

In: a `Cell`. Out: a flat dict (the cell's axes, the policy's parameters as `param_<key>`
columns, every `Summary` figure, `wall_s`, `error`), made in whichever process runs it: a
local worker, a Dask worker, or this one. Profiles are read once per process (cached), and
the numba kernel is warmed once per process before the first cell.
"""

from __future__ import annotations

import argparse
import functools
import json
import time
import traceback
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

from simulator import kernel, sizing
from simulator.engine import run
from simulator.explain import load_spec
from simulator.model import ReplicaModel
from simulator.observe import metrics_for
from simulator.profile_args import profile_from_args
from simulator.profiles import Profile
from simulator.result import Summary
from simulator.startup import FixedStartup
from simulator.sweeps.grid import Cell

# a Summary's figures that are a table's columns (the sentences `why`/`warning` stay too)
SUMMARY_COLUMNS = tuple(f.name for f in fields(Summary) if f.name not in ("policy", "slo"))
CELL_COLUMNS = (
    "cell", "key", "label", "policy", "block", "profile", "model", "slo", "slo_share", "seed",
    "startup_s",
    "interval_s", "rate_scale", "slice",
)  # fmt: skip
TAIL_COLUMNS = ("spec", "wall_s", "error")


@functools.cache
def warm() -> float:
    """Compile or load the numba kernel once in this process (a pool's initializer); the
    seconds it took the first time."""
    return kernel.warm_up()


def cell_columns(cell: Cell) -> dict[str, Any]:
    """The cell's own columns (before it runs)."""
    out: dict[str, Any] = {
        "cell": cell.index, "key": cell.key, "label": cell.label, "policy": cell.policy,
        "block": cell.block, "profile": cell.profile_label, "model": cell.model_label,
        "slo": cell.slo.label, "slo_share": cell.slo.share, "seed": cell.seed,
        "startup_s": cell.startup_s, "interval_s": cell.interval_s,
        "rate_scale": cell.rate_scale, "slice": cell.slice,
    }  # fmt: skip
    for key, value in _flat(cell.spec):
        if key != "policy":
            out[f"param_{key}"] = value
    return out


def _flat(spec: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in spec.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out += _flat(value, name + ".")
        elif isinstance(value, list):
            out.append((name, json.dumps(value, separators=(",", ":"))))
        else:
            out.append((name, value))
    return out


def run_cell(cell: Cell) -> dict[str, Any]:
    """Simulate `cell`; its row (with `error` set, and no figures, when it could not run)."""
    began = time.perf_counter()
    row = cell_columns(cell)
    try:
        warm()
        summary = simulate_cell(cell)
        figures = asdict(summary)
        figures.pop("policy", None)
        figures.pop("slo", None)  # the cell's own `slo` column says it
        for name in ("slo_targets", "slo_attainments", "slo_quantiles_s", "slo_met_each"):
            figures[name] = json.dumps(list(figures[name]))
        row.update(figures)
        row["error"] = ""
    except Exception as error:  # a failed cell is a row with its error, never a lost sweep
        last = traceback.extract_tb(error.__traceback__)[-1:] or None
        where = f" ({last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno})" if last else ""
        text = " ".join(str(error).split())[:300]
        row["error"] = f"{type(error).__name__}: {text}{where}"
    row["spec"] = json.dumps(cell.spec, separators=(",", ":"), sort_keys=True)
    row["wall_s"] = round(time.perf_counter() - began, 3)
    return row


@functools.lru_cache(maxsize=32)
def _model_of(model_key: str) -> Any:
    """A preset name, a model file, or a model spec mapping (as JSON text, to be cached)."""
    data = json.loads(model_key)
    if isinstance(data, str):
        is_file = data.endswith((".yaml", ".yml", ".json")) or Path(data).exists()
        return ReplicaModel.from_spec(load_spec(data)[0]) if is_file else ReplicaModel.preset(data)
    return ReplicaModel.from_spec(data)


def model_for(cell: Cell) -> Any:
    """The cell's replica model, its startup replaced by `startup_s` (fixed) when given."""
    if isinstance(cell.model, ReplicaModel):
        model = cell.model
    else:
        model = _model_of(json.dumps(cell.model, sort_keys=True))
    if cell.startup_s is None:
        return model
    return replace(model, startup=FixedStartup(cell.startup_s))


def profile_for(cell: Cell, model: ReplicaModel) -> Profile:
    """The cell's profile: read by name (once per process for each slice, scale and whether
    the model needs token counts), or the object given, sliced and scaled as the cell says."""
    if isinstance(cell.profile, str):
        key = (cell.profile, cell.slice, cell.rate_scale, model.needs_tokens)
        if key not in _PROFILES:
            if len(_PROFILES) >= 8:
                _PROFILES.pop(next(iter(_PROFILES)))
            args = argparse.Namespace(profile=key[0], slice=key[1], rate_scale=key[2])
            _PROFILES[key] = profile_from_args(args, model)[0]
        return _PROFILES[key]
    profile = cell.profile
    if cell.slice:
        start, _, end = cell.slice.partition(":")
        profile = profile.slice(float(start), float(end) if end.strip() else None)
    return profile.rate_scale(cell.rate_scale) if cell.rate_scale != 1.0 else profile


# profiles read by name in this process: (name, slice, rate scale, model needs tokens) -> it
_PROFILES: dict[tuple[str, str | None, float, bool], Profile] = {}


def simulate_cell(cell: Cell) -> Summary:
    model = model_for(cell)
    profile = profile_for(cell, model)
    sized = sizing.size(profile, model)
    spec = dict(cell.spec)
    spec.setdefault("max_replicas", sized.max_replicas)
    initial = min(sized.initial_replicas, int(spec["max_replicas"]))
    result = run(
        profile, spec, model, seed=cell.seed, keep_records=False, interval_s=cell.interval_s,
        slo=cell.slo.target(), initial_replicas=initial, metrics=metrics_for(cell.interval_s),
    )  # fmt: skip
    return result.summary
