"""Replay a scripted or CSV sequence of observations through one or more specs.

In: a script (YAML/JSON with `specs` and `observations`, or a CSV of observations plus specs
given separately). Out: one list of DecisionRecords per spec. Rows without a `replicas`
column form a closed loop: each spec sees the count it chose on the tick before (ready at
once); rows with `replicas` feed every spec the same inputs. Time is `now_s` (Unix seconds)
or `t_s` (seconds after the script's `start_s`). Rendering lives in `policies.cli`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from policies import yaml_input
from policies.autoscaler import autoscaler
from policies.engine import DecisionRecord
from policies.observation import Observation, ObservationError

DEFAULT_START_S = 1_700_000_000.0
_FIELDS = {f.name for f in fields(Observation)}
_TIME_KEYS = {"now_s", "t_s"}


class ScriptError(ValueError):
    """A script or observation file that cannot be replayed; the message names the place."""


@dataclass(frozen=True, slots=True)
class Script:
    specs: list[dict[str, Any]]
    rows: list[dict[str, Any]]  # observation fields, `t_s` or `now_s`, maybe `replicas`
    start_s: float
    source: str


def demo_script() -> Script:
    text = resources.files("policies").joinpath("examples/demo.yaml").read_text()
    return parse_script(yaml.safe_load(text), "demo.yaml")


def load_script(path: Path) -> Script:
    if not path.exists():
        raise ScriptError(f"{path}: no such file")
    if path.suffix.lower() == ".csv":
        return Script([], read_csv(path), DEFAULT_START_S, str(path))
    try:
        data = yaml_input.safe_load(path.read_text())
    except yaml_input.YamlInputError as error:
        where = f"{path}:{error.line}:{error.column}" if error.line else str(path)
        raise ScriptError(f"{where}: {error.message}") from None
    return parse_script(data, str(path))


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
        _check_row(row, f"{source}: observations[{i}]")
    start = data.get("start_s", DEFAULT_START_S)
    if isinstance(start, bool) or not isinstance(start, int | float):
        raise ScriptError(f"{source}: start_s: must be Unix seconds (got {start!r})")
    return Script([dict(s) for s in specs], [dict(r) for r in rows], float(start), source)


def _check_row(row: Any, where: str) -> None:
    if not isinstance(row, Mapping):
        raise ScriptError(f"{where}: must be a mapping of observation fields")
    unknown = sorted(set(row) - _FIELDS - _TIME_KEYS)
    if unknown:
        known = ", ".join(sorted(_FIELDS | _TIME_KEYS))
        raise ScriptError(f"{where}: {unknown[0]}: not an observation field; known: {known}")
    if not (set(row) & _TIME_KEYS):
        raise ScriptError(f"{where}: needs now_s (Unix seconds) or t_s (seconds from start_s)")


def read_csv(path: Path) -> list[dict[str, Any]]:
    """Observation rows from a CSV; empty cells are missing signals; `extra.<name>` columns."""
    rows: list[dict[str, Any]] = []
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise ScriptError(f"{path}:1: empty file; expected a header such as t_s,in_flight")
        header = [h.strip() for h in header]
        for col, name in enumerate(header, start=1):
            if name not in _FIELDS | _TIME_KEYS and not name.startswith("extra."):
                raise ScriptError(
                    f"{path}:1:{col}: {name!r} is not an observation field or extra.<name>"
                )
        if not set(header) & _TIME_KEYS:
            raise ScriptError(f"{path}:1: needs a now_s or t_s column")
        for line, cells in enumerate(reader, start=2):
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                raise ScriptError(
                    f"{path}:{line}: has {len(cells)} cells, the header has {len(header)}"
                )
            rows.append(_csv_row(path, line, header, cells))
    if not rows:
        raise ScriptError(f"{path}: no observation rows after the header")
    return rows


def _csv_row(path: Path, line: int, header: list[str], cells: list[str]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    extra: dict[str, float] = {}
    for col, (name, cell) in enumerate(zip(header, cells, strict=True), start=1):
        text = cell.strip()
        if text == "":
            value: float | None = None
        else:
            try:
                value = float(text)
            except ValueError:
                raise ScriptError(
                    f"{path}:{line}:{col} ({name}): {text!r} is not a number"
                ) from None
        if name.startswith("extra."):
            if value is not None:
                extra[name.removeprefix("extra.")] = value
        else:
            row[name] = value
    if extra:
        row["extra"] = extra
    return row


def _observation(row: Mapping[str, Any], start_s: float, replicas: int, where: str) -> Observation:
    data = {k: v for k, v in row.items() if k not in _TIME_KEYS}
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


def load_spec(text_or_path: str) -> list[dict[str, Any]]:
    """A spec from a YAML/JSON file or an inline mapping; a file may hold a list of specs."""
    path = Path(text_or_path)
    source = text_or_path
    try:
        if path.suffix.lower() in {".yaml", ".yml", ".json"} or path.exists():
            if not path.exists():
                raise ScriptError(f"{path}: no such file")
            source = str(path)
            data = yaml_input.safe_load(path.read_text())
        else:
            data = yaml_input.safe_load(text_or_path)
    except yaml_input.YamlInputError as error:
        raise ScriptError(f"{source}: {error}") from None
    if isinstance(data, Mapping) and "specs" in data:
        data = data["specs"]
    items = data if isinstance(data, list) else [data]
    if not items or not all(isinstance(s, Mapping) for s in items):
        raise ScriptError(f"{source}: must be a spec mapping (policy: ..., ...) or a list of them")
    return [dict(s) for s in items]


def records_json(
    specs: Sequence[Mapping[str, Any]], runs: Sequence[Sequence[DecisionRecord]]
) -> str:
    payload = [
        {"spec": dict(spec), "records": [r.to_dict() for r in records]}
        for spec, records in zip(specs, runs, strict=True)
    ]
    return json.dumps(payload, indent=2)
