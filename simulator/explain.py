"""`replicast explain`: replay observations through specs and print every decision.

In: a script file (YAML/JSON with `specs` and `observations`) or a CSV of observations, spec
files or inline YAML (`--spec`), or nothing (the built-in demo story). Out: a table per spec
(each tick's inputs, proposal, guards, final count and reason) or the DecisionRecords as JSON.
The files are read here (YAML through `policies.yaml_input`'s limits); the replay itself is
`policies.explain`, pure. Every problem is one line naming the file (and line).
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from policies import DecisionRecord, explain, yaml_input
from policies.observation import SIGNALS


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def demo_script() -> explain.Script:
    text = resources.files("policies").joinpath("examples/demo.yaml").read_text()
    return explain.parse_script(yaml_input.safe_load(text), "demo.yaml")


def load_script(path: Path) -> explain.Script:
    if not path.exists():
        raise explain.ScriptError(f"{path}: no such file")
    if path.suffix.lower() == ".csv":
        return explain.Script([], read_csv(path), explain.DEFAULT_START_S, str(path))
    try:
        data = yaml_input.safe_load(path.read_text())
    except yaml_input.YamlInputError as error:
        where = f"{path}:{error.line}:{error.column}" if error.line else str(path)
        raise explain.ScriptError(f"{where}: {error.message}") from None
    return explain.parse_script(data, str(path))


def read_csv(path: Path) -> list[dict[str, Any]]:
    """Observation rows from a CSV; empty cells are missing signals; `extra.<name>` columns."""
    rows: list[dict[str, Any]] = []
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise explain.ScriptError(
                f"{path}:1: empty file; expected a header such as t_s,in_flight"
            )
        header = [h.strip() for h in header]
        for col, name in enumerate(header, start=1):
            if name not in explain.FIELDS | explain.TIME_KEYS and not name.startswith("extra."):
                raise explain.ScriptError(
                    f"{path}:1:{col}: {name!r} is not an observation field or extra.<name>"
                )
        if not set(header) & explain.TIME_KEYS:
            raise explain.ScriptError(f"{path}:1: needs a now_s or t_s column")
        for line, cells in enumerate(reader, start=2):
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                raise explain.ScriptError(
                    f"{path}:{line}: has {len(cells)} cells, the header has {len(header)}"
                )
            rows.append(_csv_row(path, line, header, cells))
    if not rows:
        raise explain.ScriptError(f"{path}: no observation rows after the header")
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
                raise explain.ScriptError(
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


def load_spec(text_or_path: str) -> list[dict[str, Any]]:
    """A spec from a YAML/JSON file or an inline mapping; a file may hold a list of specs."""
    path = Path(text_or_path)
    source = text_or_path
    try:
        if path.suffix.lower() in {".yaml", ".yml", ".json"} or path.exists():
            if not path.exists():
                raise explain.ScriptError(f"{path}: no such file")
            source = str(path)
            data = yaml_input.safe_load(path.read_text())
        else:
            data = yaml_input.safe_load(text_or_path)
    except yaml_input.YamlInputError as error:
        raise explain.ScriptError(f"{source}: {error}") from None
    if isinstance(data, Mapping) and "specs" in data:
        data = data["specs"]
    items = data if isinstance(data, list) else [data]
    if not items or not all(isinstance(s, Mapping) for s in items):
        raise explain.ScriptError(
            f"{source}: must be a spec mapping (policy: ..., ...) or a list of them"
        )
    return [dict(s) for s in items]


def _signals_used(records: Sequence[DecisionRecord]) -> list[str]:
    used = [s for s in SIGNALS if any(r.inputs.get(s) is not None for r in records)]
    extras = sorted({k for r in records for k in r.inputs.get("extra", {})})
    return used + [f"extra.{k}" for k in extras]


def render(
    spec: dict[str, object], records: Sequence[DecisionRecord], start_s: float, console: Console
) -> None:
    title = ", ".join(f"{k}={v}" for k, v in spec.items() if k != "behavior")
    if "behavior" in spec:
        title += ", behavior=..."
    table = Table(title=title, title_justify="left", show_lines=False)
    signals = _signals_used(records)
    for col in ("t_s", "current", *signals, "proposal", "guards", "final", "reason"):
        table.add_column(col, justify="right" if col not in {"guards", "reason"} else "left")
    for r in records:
        guards = "; ".join(f"{s.name} {s.before}->{s.after}" for s in r.guards) or "-"
        values = [
            r.inputs.get(s) if not s.startswith("extra.") else r.inputs["extra"].get(s[6:])
            for s in signals
        ]
        table.add_row(
            _fmt(r.now_s - start_s), str(r.current_replicas), *(_fmt(v) for v in values),
            _fmt(r.proposal), guards, str(r.replicas), r.reason,
        )  # fmt: skip
    console.print(table)


def cmd_explain(argv: Sequence[str]) -> int:
    """replay observations through specs; print each decision and guard"""
    parser = argparse.ArgumentParser(
        prog="replicast explain",
        description=(
            "Replay observations through policy specs and print every decision with its guards "
            "and reason. With no arguments: the built-in demo (HPA, HPA with a custom behavior, "
            "KEDA on one load story)."
        ),
    )
    parser.add_argument(
        "observations",
        nargs="?",
        type=Path,
        help="YAML/JSON script (specs + observations) or CSV of observations",
    )
    parser.add_argument(
        "--spec",
        action="append",
        default=[],
        metavar="FILE_OR_YAML",
        help="a spec file or inline YAML, e.g. '{policy: hpa, metric: in_flight, "
        "target_per_replica: 10, max_replicas: 20}'; repeatable",
    )
    parser.add_argument(
        "--initial-replicas",
        type=int,
        default=1,
        help="replicas before the first row in a closed loop (default 1)",
    )
    parser.add_argument("--json", action="store_true", help="print the DecisionRecords as JSON")
    args = parser.parse_args(argv)  # fmt: skip

    script = load_script(args.observations) if args.observations else demo_script()
    specs = [s for text in args.spec for s in load_spec(text)] or script.specs
    if not specs:
        raise explain.ScriptError(
            f"{script.source}: no specs; pass --spec or put specs: [...] in the script"
        )
    runs = explain.replay(specs, script, initial_replicas=args.initial_replicas)
    if args.json:
        print(explain.records_json(specs, runs))
        return 0
    console = Console(width=max(160, Console().width))
    for spec, records in zip(specs, runs, strict=True):
        render(spec, records, script.start_s, console)
        console.print()
    return 0
