"""`replicast simulate`, `replicast compare` and `replicast demo`: the simulator from a shell.

In: a profile name, path or synthetic form; policy specs (inline YAML, a file, or a built-in
name sized for the replica model); a replica model preset or spec file; an SLO. Or, for
`compare --scenario`, a named benchmark scenario (simulator/scenarios.py), which fixes the load,
model, SLO and metrics and adds its clairvoyant and static plans as rows. Out: a summary table
on stdout (rich), PNG plots in `--out`, and exit 0; a bad argument is one line on stderr and
exit 2 (raised as `UsageError`, caught by `controller.dispatch.main`'s handler).
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
from rich.table import Table

from policies.explain import ScriptError
from policies.registry import available
from simulator import outputs, profiles, quality, scenarios, sizing
from simulator.engine import run
from simulator.explain import load_spec
from simulator.model import ReplicaModel
from simulator.observe import MetricsConfig
from simulator.profile_args import (
    PROFILE_HELP,
    add_profile_arguments,
    load_profile,  # noqa: F401 - moved there; importable here
    profile_from_args,
)
from simulator.progress import RunProgress, for_stderr
from simulator.result import (
    Result,
    Slo,
    SloTarget,
    Summary,
    share_text,
    slo_label,
    slo_targets,
)

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


def default_spec(name: str, model: ReplicaModel, slo: Slo, max_replicas: int) -> dict[str, Any]:
    """A built-in policy sized for the model: targets at 75 % of the slots, the SLO as given
    (a policy takes one target: the first of a combined SLO, the wait when there is one)."""
    slo = slo_targets(slo)[0]
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


LATENCY_FLAGS = ("p50", "p90", "p95", "p99")


def _threshold_s(flag: str, text: str) -> float:
    try:
        seconds = parse_duration_s(text)
    except UsageError:
        raise UsageError(f"{flag} {text}: not a duration; e.g. 2s, 500ms, 5m") from None
    if not (math.isfinite(seconds) and seconds > 0):
        raise UsageError(f"{flag} {text}: must be > 0, e.g. 1s")
    return seconds


def slo_from(args: argparse.Namespace) -> Slo:
    """The SLO the flags state, every target given combined (it holds when all of them do):
    `--slo-wait` at `--slo-share` (alone, the share is the default 1 s wait's) and each
    `--slo-pNN` at its own percentile; no flag: wait <= 1 s for 99 %."""
    share = 0.99 if args.slo_share is None else args.slo_share
    if not (math.isfinite(share) and 0 < share <= 1):
        raise UsageError(f"--slo-share {share:g}: must be in (0, 1], e.g. 0.99 (99 % of requests)")
    latency = [
        SloTarget(_threshold_s(f"--slo-{q}", text), "latency", int(q[1:]) / 100)
        for q in LATENCY_FLAGS
        if (text := getattr(args, f"slo_{q}")) is not None
    ]
    if args.slo_share is not None and args.slo_wait is None and latency:
        raise UsageError(
            f"--slo-share {share:g}: is the share for --slo-wait; a latency target's share is "
            f"in its flag (--slo-{LATENCY_FLAGS[2]}: 95 %); add --slo-wait or drop --slo-share"
        )
    targets = latency
    if args.slo_wait is not None or not latency:
        wait_s = 1.0 if args.slo_wait is None else _threshold_s("--slo-wait", args.slo_wait)
        targets = [SloTarget(wait_s, "wait", share), *latency]
    return targets[0] if len(targets) == 1 else tuple(targets)


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
    parser.add_argument(
        "--max-replicas",
        type=int,
        default=None,
        help="the built-in policies' cap (default: 2 x the replicas the busiest minute keeps "
        "busy, + 4; see simulator/sizing.py)",
    )
    parser.add_argument(
        "--initial-replicas",
        type=int,
        default=None,
        help="replicas ready at the start (default: enough for the first 5 minutes at 75 %% busy)",
    )
    parser.add_argument(
        "--slo-wait", default=None, help="queueing delay target, e.g. 1s (default 1s)"
    )
    parser.add_argument(
        "--slo-share",
        type=float,
        default=None,
        help="share of requests that must meet --slo-wait (default 0.99)",
    )
    for q in LATENCY_FLAGS:
        parser.add_argument(
            f"--slo-{q}",
            default=None,
            help=f"end-to-end latency {q} target, e.g. 2s; SLO flags combine (all must hold)",
        )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="directory for the PNG plots and summary.json, summary.csv, timeline.csv "
        "(timeline.parquet with the parquet extra); see README 'Outputs'",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the summary as one JSON document on stdout (the table goes to stderr)",
    )


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


def _prepared(args: argparse.Namespace) -> tuple[profiles.Profile, list[str]]:
    """The profile (read, tokens, slice, scale) and its `profile: ...` notes for the header."""
    profile, notes = profile_from_args(args, _model(args.model))
    return profile, [f"profile: {note}" for note in notes]


def bounds_for(
    args: argparse.Namespace, profile: profiles.Profile, model: ReplicaModel
) -> tuple[int, int, str]:
    """(max_replicas, initial_replicas, how they were chosen): the flags, or sized from the
    load (`simulator.sizing`) when not given."""
    given_max, given_initial = args.max_replicas, args.initial_replicas
    if given_max is not None and given_initial is not None:
        return (
            given_max,
            given_initial,
            f"max_replicas {given_max}, {given_initial} ready at the start",
        )
    sized = sizing.size(profile, model)
    max_replicas = sized.max_replicas if given_max is None else given_max
    initial = min(sized.initial_replicas, max_replicas) if given_initial is None else given_initial
    parts = (
        sized.max_how if given_max is None else f"max_replicas {given_max}",
        sized.initial_how if given_initial is None else f"{initial} ready at the start",
    )
    return max_replicas, initial, ", ".join(parts)


def _specs(
    given: Sequence[str], model: ReplicaModel, slo: Slo, max_replicas: int
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
    seed: int, options: dict[str, Any], progress: RunProgress | None = None,
) -> list[Result]:  # fmt: skip
    """Each spec in turn; `options` are `simulator.run`'s keywords (interval, slo, ...);
    `progress` (default: a bar on a terminal, else a line every few seconds) on stderr."""
    results = []
    with progress if progress is not None else for_stderr() as shown:
        for i, spec in enumerate(specs, start=1):
            shown.start(str(spec["policy"]), i, len(specs), profile.duration_s)
            result = run(
                profile, spec, model, seed=seed, keep_records=False, progress=shown.update,
                **options,
            )  # fmt: skip
            results.append(result)
    return results


def report_console(*, stderr: bool = False) -> Console:
    """Where tables and notes go: a terminal at its width (at least 120), a file or pipe at
    220 columns so rows never wrap."""
    width = Console(stderr=stderr).width if sys.stdout.isatty() else 220
    return Console(width=max(120, width), stderr=stderr)


def summary_table(results: Sequence[Result], slo: Slo, title: str | None = None) -> Table:
    """One row per run. One SLO target: `SLO attained` (share within it, ok or MISS); several:
    a column per target with its own figure (a wait's share within, a latency's percentile)
    and an `SLO` verdict, ok only when every target holds. `at max (cap)`: the share of ticks
    at max_replicas."""
    targets = slo_targets(slo)
    table = Table(title=title, title_justify="left")
    slo_columns = ["SLO attained"] if len(targets) <= 1 else [*(t.short for t in targets), "SLO"]
    columns = ("policy", *slo_columns, "latency p95", "wait p99", "replica-h", "cost $",
               "scale events", "direction changes", "dropped", "at max (cap)")  # fmt: skip
    for col in columns:
        table.add_column(col, justify="left" if col == "policy" else "right")
    for r in results:
        s = r.summary
        table.add_row(
            s.policy,
            *_slo_cells(s, targets),
            _seconds(s.latency_p95_s), _seconds(s.wait_p99_s), f"{s.replica_hours:,.1f}",
            "-" if s.cost_usd is None else f"{s.cost_usd:,.0f}",
            str(s.scale_events), str(s.direction_changes), str(s.dropped),
            f"{share_text(s.at_max_share)} ({s.replica_cap})",
        )  # fmt: skip
    return table


def _verdict(met: bool | None) -> str:
    return " ok" if met else " MISS"


def _slo_cells(s: Summary, targets: Sequence[SloTarget]) -> list[str]:
    if s.slo_attainment is None:
        return ["-"] * (1 if len(targets) <= 1 else len(targets) + 1)
    if len(targets) <= 1:
        return [f"{s.slo_attainment:.2%}" + _verdict(s.slo_met)]
    cells = []
    for target, share, value, met in zip(
        targets, s.slo_attainments, s.slo_quantiles_s, s.slo_met_each, strict=True
    ):
        figure = f"{share:.2%}" if target.on == "wait" else _seconds(value)
        cells.append(figure + _verdict(met))
    return [*cells, "ok" if s.slo_met else "MISS"]


def explanations(results: Sequence[Result]) -> list[str]:
    """A line per run that missed (why) and per run whose cap bound (a warning)."""
    lines = []
    for r in results:
        s = r.summary
        if s.why:
            lines.append(f"why {s.policy} missed: {s.why}")
        if s.warning:
            lines.append(s.warning)
    return lines


def _seconds(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.3g} s"


def cmd_simulate(argv: Sequence[str]) -> int:
    """simulate one policy on a load profile: a summary table and PNG plots"""
    parser = _Parser(prog="replicast simulate", description=cmd_simulate.__doc__)
    _common(parser, profile_default=None)
    parser.set_defaults(command="simulate")
    parser.add_argument(
        "--policy", required=True, help="a built-in name, inline YAML or a spec file"
    )
    return _compare(parser.parse_args(argv), [parser.parse_args(argv).policy])


def cmd_compare(argv: Sequence[str]) -> int:
    """run several policies on one profile or scenario: one row per policy, and plots"""
    parser = _Parser(prog="replicast compare", description=cmd_compare.__doc__)
    _common(parser, profile_default=None, profile_required=False)
    parser.set_defaults(command="compare")
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
        model="llama2-70b-a100", out=Path("replicast-demo"), max_replicas=40, initial_replicas=4,
        command="demo",
    )  # fmt: skip
    args = parser.parse_args(argv)
    return _compare(args, list(DEMO_POLICIES))


def _compare(args: argparse.Namespace, policy_args: Sequence[str]) -> int:
    check_numbers(args)
    try:
        model = _model(args.model)
        slo = slo_from(args)
        profile, notes = _prepared(args)
    except (ValueError, KeyError) as error:
        raise UsageError(str(error).splitlines()[0]) from None
    if args.interval > profile.duration_s:
        raise UsageError(
            f"--interval {args.interval:g}: longer than the profile ({profile.duration_s:g} s)"
        )
    max_replicas, initial, bounds = bounds_for(args, profile, model)
    specs = _specs(policy_args, model, slo, max_replicas)
    began = time.perf_counter()
    options = {"interval_s": args.interval, "slo": slo, "initial_replicas": initial,
               "metrics": metrics_for(args.interval)}  # fmt: skip
    results = run_all(profile, specs, model, seed=args.seed, options=options)
    elapsed = time.perf_counter() - began
    hours, requests = profile.duration_s / 3600, results[0].summary.requests
    title = (
        f"{args.profile} x{args.rate_scale:g}, model {args.model}, SLO {slo_label(slo)}, "
        f"{hours:.1f} h, {requests:,} requests per run"
    )
    header = {
        "command": args.command, "title": title, "profile": args.profile,
        "rate_scale": args.rate_scale, "model": args.model, "seed": args.seed,
        "interval_s": args.interval, "slo": _slo_json(slo), "max_replicas": max_replicas,
        "initial_replicas": initial, "bounds": bounds, "notes": notes,
        "elapsed_s": round(elapsed, 3),
    }  # fmt: skip
    table = summary_table(results, slo)
    runs = f"{len(results)} run(s) in {elapsed:.1f} s"
    footer = f"{runs}; costs are examples: verify against your agreement"
    return report(args, results, slo, header, table, [title, bounds, *notes], footer)


def _slo_json(slo: Slo) -> list[dict[str, Any]]:
    return [
        {"on": t.on, "threshold_s": t.threshold_s, "share": t.share, "label": t.label}
        for t in slo_targets(slo)
    ]


def report(
    args: argparse.Namespace, results: Sequence[Result], slo: Slo, header: dict[str, Any],
    table: Table, lines: Sequence[str], footer: str,
) -> int:  # fmt: skip
    """The header lines, the table, why-lines and the footer (on stdout, or on stderr with
    `--json`); with `--out`, the plots and the files of `simulator.outputs`; with `--json`,
    the one JSON document on stdout (the header, the runs and the files written)."""
    console = report_console(stderr=args.json)
    for line in lines:
        console.print(line, soft_wrap=True, highlight=False)
    console.print(table)
    for line in explanations(results):
        console.print(line, soft_wrap=True, highlight=False)
    console.print(footer, soft_wrap=True, highlight=False)
    written: list[Path] = []
    if args.out is not None:
        from simulator.plots import plot_compare  # noqa: PLC0415 - matplotlib only when asked

        written = outputs.write(args.out, header, results)
        console.print(f"summary and timelines: {', '.join(map(str, written))}", soft_wrap=True)
        plots = plot_compare(results, args.out, title=header["title"], slo=slo)
        console.print(f"plots: {', '.join(map(str, plots))}", soft_wrap=True)
        written += plots
    if args.json:
        doc = outputs.document({**header, "files": [str(p) for p in written]}, results)
        sys.stdout.write(outputs.dumps(doc) + "\n")
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
        "--max-replicas": args.max_replicas is not None,
        "--initial-replicas": args.initial_replicas is not None,
        "--slo-wait": args.slo_wait is not None,
        "--slo-share": args.slo_share is not None,
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
            name, "-", "-", "-", rh, "-", str(m.scale_events), str(m.direction_changes), "-", "-"
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
    began = time.perf_counter()
    results = run_all(sc.profile, specs, sc.model, seed=args.seed, options=sc.run_options())
    elapsed = time.perf_counter() - began
    requests = results[0].summary.requests
    title = f"{sc.name}, SLO {sc.slo.label}, {requests:,} requests per run"
    header = {
        "command": args.command, "title": title, "scenario": sc.name, "seed": args.seed,
        "slo": _slo_json(sc.slo), "elapsed_s": round(elapsed, 3),
    }  # fmt: skip
    table = summary_table(results, sc.slo)
    add_plan_rows(table, sc)
    footer = (
        f"{len(results)} run(s) in {elapsed:.1f} s; hpa, knative and ray by name target "
        f"{SCENARIO_TARGET:g} requests per replica (in service + queued); the plans are not "
        "simulated (the clairvoyant one is ready exactly when needed)"
    )
    return report(args, results, sc.slo, header, table, [title], footer)
