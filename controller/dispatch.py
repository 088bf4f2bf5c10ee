"""`replicast`: the one console script (pyproject's `replicast = "controller.dispatch:main"`).

It lives in controller/ because the container image ships policies/ and controller/ and runs
`replicast run`. `replicast policies` is here; every other command (run, validate, simulate,
explain, ...) registers through the `replicast.commands` entry-point group and is imported only
when it is run, so this module never imports simulator/. Every user error ends as one line on stderr
and exit status 2 (1 for `validate`-style "found problems"), never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import entry_points
from typing import Any

from policies import explain
from policies.registry import available, block_plugins, params_model, resolve
from policies.spec import SpecError

COMMAND_GROUP = "replicast.commands"
BLOCK_PLUGINS_ENV = "REPLICAST_BLOCK_PLUGINS"  # "a,b": keep these policy plugins from loading
Command = Callable[[Sequence[str]], int]


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


BOUND_SIGNS = (("exclusiveMinimum", ">"), ("minimum", ">="), ("exclusiveMaximum", "<"))
BOUND_SIGNS += (("maximum", "<="),)


def _range(prop: Mapping[str, Any]) -> str:
    """A JSON-schema property's bounds, e.g. "> 0, <= 86400" (the first numeric branch)."""
    for branch in [prop, *prop.get("anyOf", ())]:
        bounds = [f"{sign} {branch[key]:.10g}" for key, sign in BOUND_SIGNS if key in branch]
        if bounds:
            return ", ".join(bounds)
    return "-"


def params_table(name: str) -> list[tuple[str, str, str, str]]:
    """(key, default, range, description) for each parameter of policy `name`."""
    model = params_model(resolve(name))
    if model is None:
        raise SpecError("policy", [("", f"{name!r} does not describe its parameters")])
    schema = model.model_json_schema()
    rows = []
    for key, prop in schema.get("properties", {}).items():
        default = _fmt(prop["default"]) if "default" in prop else "required"
        rows.append((key, default, _range(prop), str(prop.get("description", ""))))
    return rows


def cmd_policies(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="replicast policies", description="List every policy a spec can name."
    )
    parser.add_argument(
        "--params", metavar="NAME", help="list NAME's parameters: key, default, range, meaning"
    )
    args = parser.parse_args(argv)
    if args.params:
        rows = params_table(args.params)
        widths = [
            max(len(r[i]) for r in [("key", "default", "range", ""), *rows]) for i in (0, 1, 2)
        ]
        print(f"{'key':<{widths[0]}}  {'default':<{widths[1]}}  {'range':<{widths[2]}}  meaning")
        for key, default, bounds, meaning in rows:
            print(f"{key:<{widths[0]}}  {default:<{widths[1]}}  {bounds:<{widths[2]}}  {meaning}")
        return 0
    listings = available()
    width = max(len(x.name) for x in listings)
    for x in listings:
        print(f"{x.name:<{width}}  {x.origin:<10}  {x.summary}")
    return 0


BUILTIN_COMMANDS: dict[str, tuple[Command, str]] = {
    "policies": (cmd_policies, "list every registered policy, one per line"),
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
    block_plugins(os.environ.get(BLOCK_PLUGINS_ENV, "").split(","))
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
