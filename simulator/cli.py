"""`replicast simulate`, `replicast compare` and `replicast demo`: the simulator from a shell.

In: a profile name, path or synthetic form; policy specs (inline YAML, a file, or a built-in
name sized for the replica model); a replica model preset or spec file; an SLO. Or, for
`compare --scenario`, a named benchmark scenario (simulator/scenarios.py), which fixes the load,
model, SLO and metrics and adds its clairvoyant and static plans as rows. Out: a summary table
on stdout (rich), PNG plots in `--out`, and exit 0; a bad argument is one line on stderr and
exit 2 (raised as `UsageError`, caught by `policies.cli.main`'s handler).
"""

from __future__ import annotations

import argparse
import difflib
import math
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from policies.explain import ScriptError, load_spec
from policies.registry import available
from simulator import profiles, quality, scenarios
from simulator.engine import run
from simulator.model import ReplicaModel
from simulator.observe import MetricsConfig
from simulator.profile_args import (
    PROFILE_HELP,
    add_profile_arguments,
    load_profile,  # noqa: F401 - moved there; importable here
    profile_from_args,
)
from simulator.result import Result, SloTarget

DEMO_POLICIES = ("hpa", "keda", "knative", "ray", "slo", "predictive")
SCENARIO_POLICIES = ("planner", "hpa")  # `compare --scenario` without --policy
SCENARIO_TARGET = 6.0  # hpa/knative/ray by name in a scenario: 6 requests per replica


class UsageError(ScriptError):
    """A command-line argument the simulator cannot use; the message says which and why."""


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one `UsageError` line (not usage text and a second line)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see --help)")


DEFAULT_SPEC_NAMES = ("hpa", "keda", "knative", "ray", "slo", "predictive", "planner")


def is_policy_name(text: str) -> bool:
    """A bare word (`hpa`, `HPA`, `hpaa`) rather than inline YAML or a spec file."""
    return bool(re.fullmatch(r"[A-Za-z][\w-]*", text)) and not Path(text).exists()


def check_policy_name(name: str) -> None:
    """A UsageError naming the known names unless `name` has a default spec here."""
    if name in DEFAULT_SPEC_NAMES:
        return
    known = ", ".join(DEFAULT_SPEC_NAMES)
    close = difflib.get_close_matches(name.lower(), DEFAULT_SPEC_NAMES, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else ""
    if name in {listing.name for listing in available()}:
        raise UsageError(
            f"--policy {name}: no default spec (known by name: {known}); give a spec, "
            f"e.g. '{{policy: {name}, ...}}'"
        )
    raise UsageError(
        f"--policy {name}: unknown policy {name}; known: {known}{hint} "
        f"(or a spec: inline YAML or a file)"
    )


def default_spec(
    name: str, model: ReplicaModel, slo: SloTarget, max_replicas: int
) -> dict[str, Any]:
    """A built-in policy sized for the model: targets at 75 % of the slots, the SLO as given."""
    slots = model.slots_per_replica
    per = max(1.0, 0.75 * slots)
    target_key = "wait_target_s" if slo.on == "wait" else "latency_target_s"
    sizing = {target_key: slo.threshold_s, "percentile": slo.share, "slots_per_replica": slots}
    specs: dict[str, dict[str, Any]] = {
        "hpa": {"metric": "in_flight", "target_per_replica": per},
        "keda": {"metric": "in_flight", "threshold": per, "min_replicas": 1},
        "knative": {"target_per_replica": slots, "min_replicas": 1},
        "ray": {"target_per_replica": per},
        "slo": sizing,
        "predictive": {**sizing, "reactive": True},
        "planner": sizing,
    }
    check_policy_name(name)
    return {"policy": name, **specs[name], "max_replicas": max_replicas}


def parse_duration_s(text: str) -> float:
    match = re.fullmatch(r"\s*([0-9.]+)\s*(ms|s|m|h|d)?\s*", text)
    if not match:
        raise UsageError(f"{text!r}: not a duration; e.g. 2s, 500ms, 5m")
    scale = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}[match.group(2) or "s"]
    return float(match.group(1)) * scale


def slo_from(args: argparse.Namespace) -> SloTarget:
    if args.slo_wait is not None:
        return SloTarget(parse_duration_s(args.slo_wait), "wait", args.slo_share)
    for q in ("p50", "p90", "p95", "p99"):
        value = getattr(args, f"slo_{q}")
        if value is not None:
            return SloTarget(parse_duration_s(value), "latency", int(q[1:]) / 100)
    return SloTarget(1.0, "wait", 0.99)


def _common(
    parser: argparse.ArgumentParser, *, profile_default: str | None, profile_required: bool = True
) -> None:
    parser.add_argument(
        "--profile",
        default=profile_default,
        required=profile_default is None and profile_required,
        help=PROFILE_HELP,
    )
    add_profile_arguments(parser)
    parser.add_argument(
        "--model",
        default="gpu-llm",
        help="replica model: a preset (gpu-llm, llama2-70b-a100, ...) or a YAML file",
    )
    parser.add_argument(
        "--rate-scale", type=float, default=1.0, help="multiply the load (2 = double)"
    )
    parser.add_argument("--slice", default=None, metavar="START:END", help="seconds of the profile")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--interval", type=float, default=15.0, help="control interval, s")
    parser.add_argument("--max-replicas", type=int, default=100)
    parser.add_argument(
        "--initial-replicas",
        type=int,
        default=None,
        help="replicas ready at the start (default: the policy's min, at least 1)",
    )
    parser.add_argument("--slo-wait", default=None, help="queueing delay target, e.g. 1s")
    parser.add_argument(
        "--slo-share", type=float, default=0.99, help="share that must meet --slo-wait"
    )
    for q in ("p50", "p90", "p95", "p99"):
        parser.add_argument(
            f"--slo-{q}", default=None, help=f"end-to-end latency {q} target, e.g. 2s"
        )
    parser.add_argument("--out", type=Path, default=None, help="directory for PNG plots")


def _model(text: str) -> ReplicaModel:
    path = Path(text)
    if path.exists():
        return ReplicaModel.from_spec(load_spec(str(path))[0])
    return ReplicaModel.preset(text)


def check_numbers(args: argparse.Namespace) -> None:
    """The numeric flags every run takes, each refused in one line naming it."""
    interval = args.interval
    if not (math.isfinite(interval) and interval > 0):
        raise UsageError(f"--interval {interval:g}: must be > 0 seconds, e.g. 15")
    if args.seed < 0:
        raise UsageError(f"--seed {args.seed}: must be >= 0")
    if args.max_replicas is not None and args.max_replicas < 1:
        raise UsageError(f"--max-replicas {args.max_replicas}: must be >= 1")
    if args.initial_replicas is not None and args.initial_replicas < 0:
        raise UsageError(f"--initial-replicas {args.initial_replicas}: must be >= 0")


def metrics_for(interval_s: float) -> MetricsConfig | None:
    """The run's metrics: the default (a scrape per tick, a 60 s rate window), with the rate
    window widened to two ticks when a tick is longer than 60 s (rate() needs two scrapes)."""
    if interval_s <= 60.0:
        return None
    return MetricsConfig(scrape_interval_s=interval_s, rate_window_s=2 * interval_s)


def _prepared(args: argparse.Namespace) -> profiles.Profile:
    profile, notes = profile_from_args(args, _model(args.model))  # read, tokens, slice, scale
    for note in notes:
        print(f"profile: {note}")
    return profile


def _specs(
    given: Sequence[str], model: ReplicaModel, slo: SloTarget, max_replicas: int
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for text in given:
        if is_policy_name(text):
            out.append(default_spec(text, model, slo, max_replicas))
        else:
            out.extend(load_spec(text))
    return out


def run_all(
    profile: profiles.Profile, specs: Sequence[dict[str, Any]], model: ReplicaModel, *,
    seed: int, options: dict[str, Any],
) -> list[Result]:  # fmt: skip
    """Each spec in turn; `options` are `simulator.run`'s keywords (interval, slo, ...)."""
    results = []
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), transient=True, disable=not sys.stderr.isatty(),
    ) as bar:  # fmt: skip
        for spec in specs:
            task = bar.add_task(str(spec["policy"]), total=1.0)

            def advance(done: float, task: TaskID = task) -> None:
                bar.update(task, completed=done)

            result = run(
                profile, spec, model, seed=seed, keep_records=False, progress=advance, **options
            )  # fmt: skip
            results.append(result)
    return results


def summary_table(results: Sequence[Result], slo: SloTarget, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    columns = ("policy", "SLO attained", "latency p95", "wait p99", "replica-h", "cost $",
               "scale events", "direction changes", "dropped")  # fmt: skip
    for col in columns:
        table.add_column(col, justify="left" if col == "policy" else "right")
    for r in results:
        s = r.summary
        attained = "-"
        if s.slo_attainment is not None:
            attained = f"{s.slo_attainment:.2%}" + (" ok" if s.slo_met else " MISS")
        table.add_row(
            s.policy,
            attained,
            _seconds(s.latency_p95_s), _seconds(s.wait_p99_s), f"{s.replica_hours:,.1f}",
            "-" if s.cost_usd is None else f"{s.cost_usd:,.0f}",
            str(s.scale_events), str(s.direction_changes), str(s.dropped),
        )  # fmt: skip
    return table


def _seconds(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.3g} s"


def cmd_simulate(argv: Sequence[str]) -> int:
    """simulate one policy on a load profile: a summary table and PNG plots"""
    parser = _Parser(prog="replicast simulate", description=cmd_simulate.__doc__)
    _common(parser, profile_default=None)
    parser.add_argument(
        "--policy", required=True, help="a built-in name, inline YAML or a spec file"
    )
    return _compare(parser.parse_args(argv), [parser.parse_args(argv).policy])


def cmd_compare(argv: Sequence[str]) -> int:
    """run several policies on one profile or scenario: one row per policy, and plots"""
    parser = _Parser(prog="replicast compare", description=cmd_compare.__doc__)
    _common(parser, profile_default=None, profile_required=False)
    parser.add_argument(
        "--policy",
        action="append",
        default=[],
        help=f"repeatable; default: {', '.join(DEMO_POLICIES)} (with --scenario: "
        f"{', '.join(SCENARIO_POLICIES)})",
    )
    parser.add_argument(
        "--scenario",
        default=None,
        help=f"a benchmark scenario ({', '.join(scenarios.SCENARIOS)}) instead of "
        "--profile: it fixes the load, model, SLO and metrics",
    )
    parser.add_argument(
        "--days", type=float, default=None, help="with --scenario: days of its series (default 1)"
    )
    parser.add_argument(
        "--startup", type=float, default=None, help="with --scenario: replica startup, s (120)"
    )
    args = parser.parse_args(argv)
    if args.scenario is not None:
        return _compare_scenario(args, args.policy or list(SCENARIO_POLICIES))
    if args.profile is None:
        raise UsageError("give --profile (a load) or --scenario (a benchmark scenario)")
    if args.days is not None or args.startup is not None:
        raise UsageError("--days and --startup go with --scenario")
    return _compare(args, args.policy or list(DEMO_POLICIES))


def cmd_demo(argv: Sequence[str]) -> int:
    """the built-in policies on the embedded Azure LLM trace with GPU cold starts: table + plots"""
    parser = _Parser(prog="replicast demo", description=cmd_demo.__doc__)
    _common(parser, profile_default="azure-conv")
    # a warm start: the service was already running when the hour of trace begins
    parser.set_defaults(
        model="llama2-70b-a100", out=Path("replicast-demo"), max_replicas=40, initial_replicas=4
    )
    args = parser.parse_args(argv)
    return _compare(args, list(DEMO_POLICIES))


def _compare(args: argparse.Namespace, policy_args: Sequence[str]) -> int:
    console = Console(width=max(120, Console().width))
    check_numbers(args)
    try:
        model = _model(args.model)
        slo = slo_from(args)
        profile = _prepared(args)
    except (ValueError, KeyError) as error:
        raise UsageError(str(error).splitlines()[0]) from None
    if args.interval > profile.duration_s:
        raise UsageError(
            f"--interval {args.interval:g}: longer than the profile ({profile.duration_s:g} s)"
        )
    specs = _specs(policy_args, model, slo, args.max_replicas)
    began = time.perf_counter()
    options = {"interval_s": args.interval, "slo": slo, "initial_replicas": args.initial_replicas,
               "metrics": metrics_for(args.interval)}  # fmt: skip
    results = run_all(profile, specs, model, seed=args.seed, options=options)
    elapsed = time.perf_counter() - began
    hours, requests = profile.duration_s / 3600, results[0].summary.requests
    title = (
        f"{args.profile} x{args.rate_scale:g}, model {args.model}, SLO {slo.label}, "
        f"{hours:.1f} h, {requests:,} requests per run"
    )
    console.print(summary_table(results, slo, title))
    runs = f"{len(results)} run(s) in {elapsed:.1f} s"
    console.print(f"{runs}; costs are examples: verify against your agreement")
    if args.out is not None:
        from simulator.plots import plot_compare  # noqa: PLC0415 - matplotlib only when asked

        written = plot_compare(results, args.out, title=title)
        console.print(f"plots: {', '.join(str(p) for p in written)}")
    return 0


# --- compare --scenario ----------------------------------------------------------------------


def _scenario_conflicts(args: argparse.Namespace) -> list[str]:
    """Flags a scenario fixes itself (the load, model, SLO, interval, replica bounds)."""
    given = {
        "--profile": args.profile is not None,
        "--slice": args.slice is not None,
        "--rate-scale": args.rate_scale != 1.0,
        "--model": args.model != "gpu-llm",
        "--interval": args.interval != 15.0,
        "--max-replicas": args.max_replicas != 100,
        "--initial-replicas": args.initial_replicas is not None,
        "--slo-wait": args.slo_wait is not None,
        **{
            f"--slo-{q}": getattr(args, f"slo_{q}") is not None
            for q in ("p50", "p90", "p95", "p99")
        },
    }
    return [flag for flag, is_set in given.items() if is_set]


def scenario_specs(given: Sequence[str], sc: scenarios.Scenario) -> list[dict[str, Any]]:
    """Names sized for the scenario (`planner` its spec; hpa/knative/ray at 6 per replica, on
    requests in service + queued); anything else as `_specs` reads it, within its bounds."""
    out: list[dict[str, Any]] = []
    for text in given:
        if text == "planner":
            out.append(sc.planner_spec())
        elif text in quality.BASELINES:
            out.append(quality.baseline_spec(text, SCENARIO_TARGET, sc))
        elif is_policy_name(text):
            bounds = sc.policy_defaults()
            spec = default_spec(text, sc.model, sc.slo, bounds["max_replicas"])
            out.append({**spec, **bounds})
        else:
            out.extend(load_spec(text))
    return out


def add_plan_rows(table: Table, sc: scenarios.Scenario) -> None:
    """The clairvoyant bound and the static plan, as `summary_table` rows (no SLO columns)."""
    plan = sc.clairvoyant_plan()
    for name, m in (
        ("clairvoyant plan (bound)", quality.plan_measured(sc, plan)),
        (f"static plan ({sc.static_replicas()} replicas)", quality.static_measured(sc, {})),
    ):
        rh = f"{m.replica_hours:,.1f}"
        table.add_row(
            name, "-", "-", "-", rh, "-", str(m.scale_events), str(m.direction_changes), "-"
        )


def _compare_scenario(args: argparse.Namespace, policy_args: Sequence[str]) -> int:
    check_numbers(args)
    conflicts = _scenario_conflicts(args)
    if conflicts:
        raise UsageError(
            f"--scenario {args.scenario} fixes the load, model, SLO and interval; "
            f"drop {', '.join(conflicts)}"
        )
    if args.scenario not in scenarios.SCENARIOS:
        known = ", ".join(scenarios.SCENARIOS)
        raise UsageError(f"--scenario {args.scenario}: unknown; known: {known}")
    knobs = {"days": args.days or 1.0, "startup_s": 120.0 if args.startup is None else args.startup}
    try:
        sc = scenarios.scenario(args.scenario, **knobs)
    except ValueError as error:
        raise UsageError(f"--scenario {args.scenario}: {error}") from None
    specs = scenario_specs(policy_args, sc)
    console = Console(width=max(120, Console().width))
    began = time.perf_counter()
    results = run_all(sc.profile, specs, sc.model, seed=args.seed, options=sc.run_options())
    elapsed = time.perf_counter() - began
    requests = results[0].summary.requests
    title = f"{sc.name}, SLO {sc.slo.label}, {requests:,} requests per run"
    table = summary_table(results, sc.slo, title)
    add_plan_rows(table, sc)
    console.print(table)
    console.print(
        f"{len(results)} run(s) in {elapsed:.1f} s; hpa, knative and ray by name target "
        f"{SCENARIO_TARGET:g} requests per replica (in service + queued); the plans are not "
        "simulated (the clairvoyant one is ready exactly when needed)"
    )
    if args.out is not None:
        from simulator.plots import plot_compare  # noqa: PLC0415 - matplotlib only when asked

        written = plot_compare(results, args.out, title=title)
        console.print(f"plots: {', '.join(str(p) for p in written)}")
    return 0
