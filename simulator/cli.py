"""`replicast simulate`, `replicast compare` and `replicast demo`: the simulator from a shell.

In: a profile name, path or synthetic form; policy specs (inline YAML, a file, or a built-in
name sized for the replica model); a replica model preset or spec file; an SLO. Out: a summary
table on stdout (rich), PNG plots in `--out`, and exit 0; a bad argument is one line on stderr
and exit 2 (raised as `UsageError`, caught by `policies.cli.main`'s handler).
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from policies.explain import ScriptError, load_spec
from simulator import profiles, traces
from simulator.engine import run
from simulator.model import ReplicaModel
from simulator.result import Result, SloTarget

DEMO_POLICIES = ("hpa", "keda", "knative", "ray", "slo", "predictive")


class UsageError(ScriptError):
    """A command-line argument the simulator cannot use; the message says which and why."""


def load_profile(text: str) -> profiles.Profile:
    """`azure-conv`, `azure-code`, `servegen-14d`, a trace path, or `kind:arg:arg...`."""
    named: dict[str, Callable[[], profiles.Profile]] = {
        "azure-conv": traces.azure_conv,
        "azure-code": traces.azure_code,
        "servegen-14d": traces.servegen_language_14d,
    }
    if text in named:
        return named[text]()
    synthetic: dict[str, Callable[..., profiles.Profile]] = {
        "constant": profiles.constant, "ramp": profiles.ramp, "step": profiles.step,
        "spike": profiles.spike, "diurnal": profiles.diurnal, "bursty": profiles.bursty,
    }  # fmt: skip
    kind, _, rest = text.partition(":")
    if kind in synthetic and rest:
        try:
            return synthetic[kind](*(float(x) for x in rest.split(":")))
        except (TypeError, ValueError) as error:
            raise UsageError(f"--profile {text}: {error}") from None
    path = Path(text)
    if not path.exists():
        raise UsageError(
            f"--profile {text}: no such file; use azure-conv, azure-code, servegen-14d, a trace "
            "path, or constant:RPS:SECONDS, diurnal:MEAN:AMPLITUDE:SECONDS, step:A:B:AT:SECONDS"
        )
    if path.suffix.lower() == ".json":
        return traces.read_prometheus(path)
    head = path.read_bytes()[:4096]
    if head[:2] == b"\x1f\x8b" or b"timestamp" in head.lower():
        return traces.read_request_log(path)
    return traces.read_rate_series(path)


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
    }
    if name not in specs:
        raise UsageError(
            f"--policy {name}: no default spec; give a spec, e.g. '{{policy: {name}, ...}}'"
        )
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


def _common(parser: argparse.ArgumentParser, *, profile_default: str | None) -> None:
    parser.add_argument(
        "--profile",
        default=profile_default,
        required=profile_default is None,
        help="azure-conv | azure-code | servegen-14d | PATH | constant:RPS:S | "
        "diurnal:MEAN:AMPLITUDE:S | step:A:B:AT:S | bursty:RPS:CV:S",
    )
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


def _prepared(args: argparse.Namespace) -> profiles.Profile:
    profile = load_profile(args.profile)
    if args.slice:
        start, _, end = args.slice.partition(":")
        profile = profile.slice(float(start), float(end) if end else None)
    if args.rate_scale != 1.0:
        profile = profile.rate_scale(args.rate_scale)
    return profile


def _specs(
    given: Sequence[str], model: ReplicaModel, slo: SloTarget, max_replicas: int
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for text in given:
        if re.fullmatch(r"[a-z_]+", text):
            out.append(default_spec(text, model, slo, max_replicas))
        else:
            out.extend(load_spec(text))
    return out


def run_all(
    profile: profiles.Profile, specs: Sequence[dict[str, Any]], model: ReplicaModel, slo: SloTarget,
    args: argparse.Namespace, console: Console,
) -> list[Result]:  # fmt: skip
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
                profile, spec, model, seed=args.seed, interval_s=args.interval, slo=slo,
                initial_replicas=args.initial_replicas, keep_records=False, progress=advance,
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
    parser = argparse.ArgumentParser(prog="replicast simulate", description=cmd_simulate.__doc__)
    _common(parser, profile_default=None)
    parser.add_argument(
        "--policy", required=True, help="a built-in name, inline YAML or a spec file"
    )
    return _compare(parser.parse_args(argv), [parser.parse_args(argv).policy])


def cmd_compare(argv: Sequence[str]) -> int:
    """run several policies on one profile: one row per policy, and plots"""
    parser = argparse.ArgumentParser(prog="replicast compare", description=cmd_compare.__doc__)
    _common(parser, profile_default=None)
    parser.add_argument("--policy", action="append", default=[],
                        help=f"repeatable; default: {', '.join(DEMO_POLICIES)}")  # fmt: skip
    args = parser.parse_args(argv)
    return _compare(args, args.policy or list(DEMO_POLICIES))


def cmd_demo(argv: Sequence[str]) -> int:
    """the built-in policies on the embedded Azure LLM trace with GPU cold starts: table + plots"""
    parser = argparse.ArgumentParser(prog="replicast demo", description=cmd_demo.__doc__)
    _common(parser, profile_default="azure-conv")
    # a warm start: the service was already running when the hour of trace begins
    parser.set_defaults(
        model="llama2-70b-a100", out=Path("replicast-demo"), max_replicas=40, initial_replicas=4
    )
    args = parser.parse_args(argv)
    return _compare(args, list(DEMO_POLICIES))


def _compare(args: argparse.Namespace, policy_args: Sequence[str]) -> int:
    console = Console(width=max(120, Console().width))
    try:
        model = _model(args.model)
        slo = slo_from(args)
        profile = _prepared(args)
    except (ValueError, KeyError) as error:
        raise UsageError(str(error).splitlines()[0]) from None
    specs = _specs(policy_args, model, slo, args.max_replicas)
    began = time.perf_counter()
    results = run_all(profile, specs, model, slo, args, console)
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
