"""`replicast`: the one console script.

`replicast policies` and `replicast explain` live here; the shells add their subcommands
(run, validate, simulate, ...) through the `replicast.commands` entry-point group, so this
module never imports controller/ or simulator/. Every user error ends as one line on stderr
and exit status 2 (1 for `validate`-style "found problems"), never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path

from rich.console import Console
from rich.table import Table

from policies import explain
from policies.engine import DecisionRecord
from policies.observation import SIGNALS
from policies.registry import available
from policies.spec import SpecError

COMMAND_GROUP = "replicast.commands"
Command = Callable[[Sequence[str]], int]


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def cmd_policies(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="replicast policies", description="List every policy a spec can name."
    )
    parser.parse_args(argv)
    listings = available()
    width = max(len(x.name) for x in listings)
    for x in listings:
        print(f"{x.name:<{width}}  {x.origin:<10}  {x.summary}")
    return 0


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

    script = explain.load_script(args.observations) if args.observations else explain.demo_script()
    specs = [s for text in args.spec for s in explain.load_spec(text)] or script.specs
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


BUILTIN_COMMANDS: dict[str, tuple[Command, str]] = {
    "policies": (cmd_policies, "list every registered policy, one per line"),
    "explain": (cmd_explain, "replay observations through specs; print each decision and guard"),
}


def _commands() -> dict[str, tuple[Command | None, str]]:
    out: dict[str, tuple[Command | None, str]] = dict(BUILTIN_COMMANDS)
    for ep in entry_points(group=COMMAND_GROUP):
        if ep.name in out:
            continue
        try:  # help only: a shell's command module may import its I/O libraries
            doc = (ep.load().__doc__ or "").strip().splitlines()
        except Exception as error:  # a broken plugin must not break --help
            doc = [f"(cannot load: {type(error).__name__}: {error})"]
        out[ep.name] = (None, doc[0] if doc else f"(from {ep.value.split(':')[0]})")
    return out


def _load_command(name: str) -> Command | None:
    found = BUILTIN_COMMANDS.get(name)
    if found is not None:
        return found[0]
    for ep in entry_points(group=COMMAND_GROUP, name=name):
        command: Command = ep.load()
        return command
    return None


def _usage() -> str:
    lines = ["usage: replicast COMMAND [ARGS...]", "", "commands:"]
    for name, (_, help_text) in sorted(_commands().items()):
        lines.append(f"  {name:<10} {help_text}")
    lines.append("\n`replicast COMMAND --help` for a command's options.")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    command = _load_command(args[0])
    if command is None:
        print(f"replicast: unknown command {args[0]!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    try:
        return command(args[1:])
    except (SpecError, explain.ScriptError) as error:
        print(f"replicast {args[0]}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
