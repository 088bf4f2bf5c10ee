"""Replay a scripted sequence of observations through one or more specs (pure: no files).

In: a script's parsed content (a mapping with `specs` and `observations`, `parse_script`, or
rows a shell read from a CSV) and specs. Out: one list of DecisionRecords per spec. Rows
without a `replicas` column form a closed loop: each spec sees the count it chose on the tick
before (ready at once); rows with `replicas` feed every spec the same inputs. Time is `now_s`
(Unix seconds) or `t_s` (seconds after the script's `start_s`). Reading script, CSV and spec
files and rendering the table: simulator/explain.py (`replicast explain`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from policies.autoscaler import autoscaler
from policies.observation import Observation, ObservationError
from policies.protocol import DecisionRecord

DEFAULT_START_S = 1_700_000_000.0
FIELDS = {f.name for f in fields(Observation)}
TIME_KEYS = {"now_s", "t_s"}


class ScriptError(ValueError):
    """A script or observation file that cannot be replayed; the message names the place."""


@dataclass(frozen=True, slots=True)
class Script:
    specs: list[dict[str, Any]]
    rows: list[dict[str, Any]]  # observation fields, `t_s` or `now_s`, maybe `replicas`
    start_s: float
    source: str


def parse_script(data: Any, source: str) -> Script:
    if not isinstance(data, Mapping):
        raise ScriptError(f"{source}: must be a mapping with 'observations' (and 'specs')")
    unknown = sorted(set(data) - {"specs", "observations", "start_s"})
    if unknown:
        raise ScriptError(
            f"{source}: {unknown[0]}: unknown key; allowed keys: observations, specs, start_s"
        )
    specs = data.get("specs", [])
    rows = data.get("observations")
    if not isinstance(specs, list) or not all(isinstance(s, Mapping) for s in specs):
        raise ScriptError(f"{source}: specs: must be a list of spec mappings")
    if not isinstance(rows, list) or not rows:
        raise ScriptError(f"{source}: observations: must be a non-empty list of mappings")
    for i, row in enumerate(rows):
        check_row(row, f"{source}: observations[{i}]")
    start = data.get("start_s", DEFAULT_START_S)
    if isinstance(start, bool) or not isinstance(start, int | float):
        raise ScriptError(f"{source}: start_s: must be Unix seconds (got {start!r})")
    return Script([dict(s) for s in specs], [dict(r) for r in rows], float(start), source)


def check_row(row: Any, where: str) -> None:
    if not isinstance(row, Mapping):
        raise ScriptError(f"{where}: must be a mapping of observation fields")
    unknown = sorted(set(row) - FIELDS - TIME_KEYS)
    if unknown:
        known = ", ".join(sorted(FIELDS | TIME_KEYS))
        raise ScriptError(f"{where}: {unknown[0]}: not an observation field; known: {known}")
    if not (set(row) & TIME_KEYS):
        raise ScriptError(f"{where}: needs now_s (Unix seconds) or t_s (seconds from start_s)")


def _observation(row: Mapping[str, Any], start_s: float, replicas: int, where: str) -> Observation:
    data = {k: v for k, v in row.items() if k not in TIME_KEYS}
    now = row["now_s"] if row.get("now_s") is not None else start_s + float(row["t_s"])
    data["now_s"] = now
    data.setdefault("replicas", replicas)
    if data["replicas"] is None:
        data["replicas"] = replicas
    data.setdefault("ready_replicas", data["replicas"])
    if data["ready_replicas"] is None:
        data["ready_replicas"] = data["replicas"]
    try:
        return Observation(**data)
    except (ObservationError, TypeError) as error:
        raise ScriptError(f"{where}: {error}") from None


def replay(
    specs: Sequence[Mapping[str, Any]], script: Script, *, initial_replicas: int = 1
) -> list[list[DecisionRecord]]:
    """Run every spec over the script; SpecError propagates unchanged."""
    out = []
    for spec in specs:
        a = autoscaler(spec)
        replicas = initial_replicas
        records = []
        for i, row in enumerate(script.rows):
            obs = _observation(row, script.start_s, replicas, f"{script.source}: observations[{i}]")
            record = a.step(obs)
            records.append(record)
            replicas = record.replicas
        out.append(records)
    return out


def records_json(
    specs: Sequence[Mapping[str, Any]], runs: Sequence[Sequence[DecisionRecord]]
) -> str:
    payload = [
        {"spec": dict(spec), "records": [r.to_dict() for r in records]}
        for spec, records in zip(specs, runs, strict=True)
    ]
    return json.dumps(payload, indent=2)
