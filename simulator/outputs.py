"""What `simulate`, `compare` and `demo` write for scripts: the summary and the timelines.

In: the runs' `Result`s and a header (what was run: profile, model, SLO, bounds). Out: in the
`--out` directory, `summary.json` (`document`: the header and one object per run), `summary.csv`
(one row per run; a combined SLO's targets flattened to `slo1_*`, `slo2_*`), `timeline.csv`
(one row per run and control tick, `run` and `policy` first) and, when pyarrow is installed
(the `parquet` extra), `timeline.parquet` with the same columns. README.md "Outputs" lists the
columns. JSON has no infinity or NaN: those are `null` (an infinite quantile means it fell
among dropped requests; `slo*_quantile_s` says so in the CSV as `inf`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from simulator.result import Result

PER_TARGET = ("slo_targets", "slo_attainments", "slo_quantiles_s", "slo_met_each")
TARGET_COLUMNS = ("target", "attainment", "quantile_s", "met")


def jsonable(value: Any) -> Any:
    """`value` with tuples as lists and non-finite floats as None (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "item"):  # a numpy scalar
        return jsonable(value.item())
    return value


def document(header: Mapping[str, Any], results: Sequence[Result]) -> dict[str, Any]:
    """The header and each run's summary (`Summary.to_dict`), JSON-ready."""
    return jsonable({**header, "runs": [r.summary.to_dict() for r in results]})


def dumps(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, indent=2, allow_nan=False)


def summary_frame(results: Sequence[Result]) -> pd.DataFrame:
    """One row per run: the summary's fields, each SLO target's four as `sloN_...` columns."""
    rows = []
    for r in results:
        row = {k: v for k, v in r.summary.to_dict().items() if k not in PER_TARGET}
        per_target = zip(*(getattr(r.summary, name) for name in PER_TARGET), strict=True)
        for i, values in enumerate(per_target, start=1):
            row.update({f"slo{i}_{col}": v for col, v in zip(TARGET_COLUMNS, values, strict=True)})
        rows.append(row)
    return pd.DataFrame(rows)


COUNTS = ("replicas", "ready_replicas", "starting_replicas", "queue_depth", "in_flight",
          "proposal", "applied_replicas", "requests", "dropped", "missed")  # fmt: skip


def timeline_frame(results: Sequence[Result]) -> pd.DataFrame:
    """Every run's timeline, one row per tick, `run` (1, 2, ...) and `policy` first; counts
    as whole numbers (empty where there is none: no proposal), other values to 6 significant
    figures (`t_s`, `now_s` and the cumulative `replica_seconds` exactly)."""
    frames = []
    for i, r in enumerate(results, start=1):
        frame = r.timeline.to_pandas()
        for name in frame.columns:
            if name in COUNTS:
                frame[name] = frame[name].round().astype("Int64")
            elif name not in ("t_s", "now_s", "replica_seconds"):
                frame[name] = significant(frame[name].to_numpy())
        frame.insert(0, "policy", r.summary.policy)
        frame.insert(0, "run", i)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def significant(values: npt.NDArray[np.float64], digits: int = 6) -> npt.NDArray[np.float64]:
    """Rounded to `digits` significant figures (0, inf and NaN as they are)."""
    out = values.astype(np.float64, copy=True)
    finite = np.isfinite(out) & (out != 0)
    magnitude = np.floor(np.log10(np.abs(out[finite])))
    scale = 10.0 ** (digits - 1 - magnitude)
    out[finite] = np.round(out[finite] * scale) / scale
    return out


def parquet_available() -> bool:
    try:
        import pyarrow  # noqa: F401, PLC0415 - optional: the `parquet` extra
    except ImportError:
        return False
    return True


def write(out: Path, header: Mapping[str, Any], results: Sequence[Result]) -> list[Path]:
    """summary.json, summary.csv, timeline.csv (and timeline.parquet with pyarrow) in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "summary.json", out / "summary.csv", out / "timeline.csv"]
    paths[0].write_text(dumps(document(header, results)) + "\n")
    summary_frame(results).to_csv(paths[1], index=False)
    timeline = timeline_frame(results)
    timeline.to_csv(paths[2], index=False)
    if parquet_available():
        paths.append(out / "timeline.parquet")
        timeline.to_parquet(paths[3], index=False)
    return paths
