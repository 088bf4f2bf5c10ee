"""`replicast simulate`, `compare` and `demo`: each command's parser and its run, top to bottom.

In: argv. Out: exit code 0 with the report (`simulator.cli.reporting`); a bad argument raises a
`UsageError`. `compare --scenario` runs a benchmark scenario with its plans as extra rows.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from simulator import profiles, scenarios, traces
from simulator.cli.args import (
    UsageError,
    _common,
    _model,
    _Parser,
    _prepared,
    bounds_for,
    check_numbers,
    slo_from,
)
from simulator.cli.reporting import _slo_json, add_plan_rows, report, summary_table
from simulator.cli.specs import SCENARIO_TARGET, _specs, scenario_specs
from simulator.engine import run
from simulator.model import ReplicaModel
from simulator.observe import metrics_for
from simulator.progress import RunProgress, for_stderr
from simulator.result import Result, slo_label
from simulator.sweeps.pool import EXECUTORS, ExecutorError, executor_for, map_ordered

DEMO_POLICIES = ("hpa", "keda", "knative", "ray", "slo", "predictive", "planner")
SCENARIO_POLICIES = ("planner", "hpa")  # `compare --scenario` without --policy


def run_all(
    profile: profiles.Profile, specs: Sequence[dict[str, Any]], model: ReplicaModel, *,
    seed: int, options: dict[str, Any], progress: RunProgress | None = None,
    executor: Executor | None = None,
) -> list[Result]:  # fmt: skip
    """Each spec; `options` are `simulator.run`'s keywords (interval, slo, ...). In turn in this
    process, `progress` (default: a bar on a terminal, else a line every few seconds) on
    stderr; or on `executor` (the sweeps' pool, a Dask cluster), a line as each run ends."""
    if executor is not None:
        jobs = [(profile, spec, model, seed, options) for spec in specs]
        return map_ordered(run_one, jobs, executor, on_done=_ended)
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


def run_one(
    job: tuple[profiles.Profile, dict[str, Any], ReplicaModel, int, dict[str, Any]],
) -> Result:
    """One of `run_all`'s runs (top level: a worker process runs it)."""
    profile, spec, model, seed, options = job
    return run(profile, spec, model, seed=seed, keep_records=False, **options)


def _ended(done: int, total: int, result: Any) -> None:
    name = result.summary.policy if isinstance(result, Result) else type(result).__name__
    print(f"[{done}/{total}] {name} done", file=sys.stderr, flush=True)


@contextmanager
def _executor(args: argparse.Namespace) -> Iterator[Executor | None]:
    """`--executor`/`--workers` (compare only; 1 worker: in this process)."""
    if not hasattr(args, "workers"):
        yield None
        return
    with ExitStack() as stack:
        try:
            executor = stack.enter_context(executor_for(args.executor, args.workers))
        except ExecutorError as error:
            raise UsageError(str(error)) from None
        yield executor


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
    parser.add_argument(
        "--shape",
        choices=scenarios.SHAPES,
        default=None,
        help="with --scenario gpu-llm: step (the series' 10-minute steps, default) or realistic "
        "(linear between window centres, arrivals as bursty as its CV column)",
    )
    parser.add_argument(
        "--series",
        default=None,
        metavar="PATH",
        help="with --scenario gpu-llm: your rate series (time_s,rate_rps[,interarrival_cv]) "
        "instead of the shipped one",
    )
    parser.add_argument(
        "--workers", type=int, default=1,
        help="run the policies in parallel on N worker processes (default 1: in this process)",
    )  # fmt: skip
    parser.add_argument(
        "--executor", default="process", help=f"with --workers: {EXECUTORS} (default process)"
    )
    args = parser.parse_args(argv)
    if args.scenario is not None:
        return _compare_scenario(args, args.policy or list(SCENARIO_POLICIES))
    if args.profile is None:
        raise UsageError("give --profile (a load) or --scenario (a benchmark scenario)")
    if any(x is not None for x in (args.days, args.startup, args.shape, args.series)):
        raise UsageError("--days, --startup, --shape and --series go with --scenario")
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
    with _executor(args) as executor:
        results = run_all(profile, specs, model, seed=args.seed, options=options, executor=executor)
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
    knobs: dict[str, Any] = {
        "days": args.days or 1.0, "startup_s": 120.0 if args.startup is None else args.startup,
    }  # fmt: skip
    if args.scenario == "gpu-llm":
        knobs |= {"shape": args.shape or "step", "series": args.series}
    elif args.shape is not None or args.series is not None:
        raise UsageError(
            f"--scenario {args.scenario} replays its own requests: drop --shape/--series"
        )
    try:
        sc = scenarios.scenario(args.scenario, **knobs)
        if scenarios.needs_sized_plan(args.scenario, knobs.get("shape", "trace")):
            plan = scenarios.sized_plan(args.scenario, **knobs)
            sc = scenarios.scenario(args.scenario, **knobs, plan=plan)
    except (ValueError, traces.TraceError) as error:
        raise UsageError(f"--scenario {args.scenario}: {str(error).splitlines()[0]}") from None
    specs = scenario_specs(policy_args, sc)
    began = time.perf_counter()
    with _executor(args) as executor:
        options = sc.run_options()
        results = run_all(
            sc.profile, specs, sc.model, seed=args.seed, options=options, executor=executor
        )
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
        f"{SCENARIO_TARGET * sc.slots / 8:g} requests per replica (in service + queued); the "
        "plans are not simulated (the clairvoyant one is ready exactly when needed)"
    )
    return report(args, results, sc.slo, header, table, [title], footer)
