"""`replicast plan`: how many GPUs of which SKU to reserve and to burst, at what cost and SLO.

With no arguments it plans the embedded 14-day production series for llama2-70b on the example
SKU catalog (simulator/data/sku_catalog.yaml) at wait <= 1 s for 99 % of requests, and writes
plan.html, plan.md, plan.json, controller.yaml and the plots to ./replicast-plan.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from simulator.cli.args import UsageError, _Parser
from simulator.plan.build import DEFAULT_POLICIES, PlanInput, build
from simulator.plan.candidates import candidates
from simulator.plan.catalog import CatalogError, default_catalog, load_catalog
from simulator.plan.growth import GrowthError, growth
from simulator.plan.report import write
from simulator.profile_args import profile_from_args
from simulator.profiles import ProfileError
from simulator.result import SloTarget
from simulator.sweeps.pool import EXECUTORS, ExecutorError, executor_for
from simulator.sweeps.table import progress_printer
from simulator.traces import TraceError

DEFAULT_PROFILE = "servegen-14d"
DEFAULT_MODEL = "llama2-70b"


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="replicast plan", description=(__doc__ or "").splitlines()[0])
    p.add_argument(
        "--profile", default=DEFAULT_PROFILE, help="the load (any profile the simulator reads)"
    )
    p.add_argument("--days", type=float, default=None, help="plan on the profile's first N days")
    p.add_argument(
        "--holdout-days",
        type=float,
        default=None,
        help="keep the last N days out of the plan and check the recommendation on them",
    )
    p.add_argument("--rate-scale", type=float, default=1.0, help="scale the load (what-ifs)")
    p.add_argument("--model", default=DEFAULT_MODEL, help="a model of the catalog (llama2-70b)")
    p.add_argument(
        "--catalog", type=Path, default=None, help="a SKU catalog YAML (default: the example)"
    )
    p.add_argument(
        "--perf", type=Path, default=None, help="a performance table in the splitwise format"
    )
    p.add_argument("--slo-wait", type=float, default=None, help="wait threshold, s (default 1)")
    p.add_argument("--slo-latency", type=float, default=None, help="end-to-end threshold, s")
    p.add_argument("--slo-share", type=float, default=0.99, help="share of requests (0.99)")
    p.add_argument("--growth", default=None, help="e.g. 30%%/quarter")
    p.add_argument("--horizon", default=None, help="e.g. 4q, 12m (default 4 growth periods)")
    p.add_argument("--quota-gpus", type=int, default=None, help="a regional GPU quota to check")
    p.add_argument("--policies", default=",".join(DEFAULT_POLICIES), help="comma-separated")
    p.add_argument("--slots", type=int, default=16, help="requests a replica serves at once (16)")
    p.add_argument("--out", type=Path, default=Path("replicast-plan"), help="output folder")
    p.add_argument("--workers", type=int, default=None, help="simulation workers (one per core)")
    p.add_argument("--executor", default="process", help=EXECUTORS)
    p.add_argument("--seed", type=int, default=1)
    return p


def _slo(args: argparse.Namespace) -> SloTarget:
    if args.slo_wait is not None and args.slo_latency is not None:
        raise UsageError("give --slo-wait or --slo-latency, not both")
    if not 0 < args.slo_share <= 1:
        raise UsageError(f"--slo-share {args.slo_share:g}: must be in (0, 1], e.g. 0.99")
    for flag, value in (("--slo-wait", args.slo_wait), ("--slo-latency", args.slo_latency)):
        if value is not None and not 0 < value <= 86_400:
            raise UsageError(f"{flag} {value:g}: must be > 0 seconds, e.g. 1")
    if args.slo_latency is not None:
        return SloTarget(args.slo_latency, "latency", args.slo_share)
    return SloTarget(1.0 if args.slo_wait is None else args.slo_wait, "wait", args.slo_share)


def _inputs(args: argparse.Namespace) -> PlanInput:
    catalog = load_catalog(args.catalog) if args.catalog is not None else default_catalog()
    cands = candidates(catalog, args.model, perf_table=args.perf, slots_per_replica=args.slots)
    slo = _slo(args)
    grown = growth(args.growth, args.horizon)
    if args.days is not None and not 0 < args.days <= 366:
        raise UsageError(f"--days {args.days:g}: must be > 0 and at most 366")
    if args.quota_gpus is not None and args.quota_gpus < 1:
        raise UsageError(f"--quota-gpus {args.quota_gpus}: must be >= 1")
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    unknown = [p for p in policies if p not in DEFAULT_POLICIES]
    if unknown or not policies:
        raise UsageError(f"--policies {args.policies}: choose from {', '.join(DEFAULT_POLICIES)}")
    if not 0 < args.rate_scale <= 1000:
        raise UsageError(f"--rate-scale {args.rate_scale:g}: must be in (0, 1000], e.g. 0.5")
    window = f"0:{args.days * 86400:g}" if args.days is not None else None
    ns = argparse.Namespace(profile=args.profile, slice=window, rate_scale=args.rate_scale)
    profile, notes = profile_from_args(ns, cands[0].replica_model())
    name = args.profile + (f", first {args.days:g} day(s)" if args.days else "")
    if args.rate_scale != 1.0:
        name += f", load x{args.rate_scale:g}"
    holdout, holdout_name = None, ""
    if args.holdout_days is not None:
        keep = args.holdout_days * 86400.0
        if not 0 < keep < profile.duration_s:
            raise UsageError(
                f"--holdout-days {args.holdout_days:g}: must be > 0 and shorter than the "
                f"profile ({profile.duration_s / 86400:.2f} days)"
            )
        end = profile.duration_s - keep
        holdout = profile.slice(end, profile.duration_s)
        holdout_name = f"days {end / 86400:g}-{profile.duration_s / 86400:g}"
        profile = profile.slice(0, end)
        name += f", first {end / 86400:g} day(s) (the last {args.holdout_days:g} held out)"
    notes = [*notes, f"catalog: {catalog.region}, prices as of {catalog.as_of} (examples)"]
    return PlanInput(
        profile,
        name,
        args.model,
        slo,
        cands,
        policies,
        grown,
        args.quota_gpus,
        args.seed,
        notes=notes,
        holdout=holdout,
        holdout_name=holdout_name,
    )


def plan_input(**options: Any) -> PlanInput:
    """The plan's input from the command's options by name, each checked as `replicast plan`
    checks it: profile, days, holdout_days, rate_scale, model, catalog, perf, slo_wait,
    slo_latency, slo_share, growth, horizon, quota_gpus, policies (a list or "a,b"), slots, seed.
    E.g. `plan_input(growth="30%/quarter", horizon="4q", quota_gpus=2000)`."""
    args = _parser().parse_args([])
    allowed = sorted(set(vars(args)) - {"out", "workers", "executor"})
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise UsageError(f"plan_input: unknown option {unknown[0]}; allowed: {', '.join(allowed)}")
    for key, value in options.items():
        setattr(args, key, value)
    if isinstance(args.policies, (list, tuple)):
        args.policies = ",".join(args.policies)
    for key in ("catalog", "perf"):
        if getattr(args, key) is not None:
            setattr(args, key, Path(getattr(args, key)))
    return _inputs(args)


def cmd_plan(argv: Sequence[str]) -> int:
    """capacity plan: which GPU SKU, how many to reserve and burst, monthly cost, SLO, config"""
    console = Console(stderr=True)
    try:
        args = _parser().parse_args(argv)
        plan_in = _inputs(args)
    except (
        UsageError,
        CatalogError,
        GrowthError,
        ProfileError,
        TraceError,
        ValueError,
    ) as error:
        for line in str(error).splitlines() or [type(error).__name__]:
            print(f"replicast plan: {line}", file=sys.stderr)
        return 2
    began = time.perf_counter()
    stages = _Stages()
    console.print(
        f"planning {plan_in.profile_name} for {plan_in.model_name} on "
        f"{len(plan_in.candidates)} SKU x tensor-parallel candidates ..."
    )
    try:
        with executor_for(args.executor, args.workers) as executor:
            plan = build(plan_in, executor, stage=stages)
    except ExecutorError as error:
        print(f"replicast plan: {error}", file=sys.stderr)
        return 2
    finally:
        stages.stop()
    paths = write(plan, args.out)
    _summary(plan, paths, time.perf_counter() - began)
    return 0 if plan.chosen is not None else 1


class _Stages:
    """One progress printer per simulation stage of the plan, each ended as the next starts."""

    def __init__(self) -> None:
        self.stop: Any = lambda: None

    def __call__(self, name: str) -> Any:
        self.stop()
        on_row, self.stop = progress_printer(label=name, unit="runs")
        return lambda done, total, _result: on_row(done, total, {})


def _span(seconds: float) -> str:
    return f"{seconds / 86400:.1f} days" if seconds >= 86400 else f"{seconds / 3600:.1f} hours"


def _summary(plan: Any, paths: dict[str, Path], wall_s: float) -> None:
    console = Console()
    c = plan.chosen
    if c is None:
        console.print(
            "[bold red]no simulated configuration met the SLO on every replay[/]; see the report"
        )
    else:
        b = c.best
        nodes = -(-plan.max_replicas // c.candidate.replicas_per_vm)
        console.print(f"[bold]recommended[/]: {c.label}  ({plan.input.slo.label})")
        console.print(
            f"  SLO attainment {100 * c.summary['slo_attainment']:.2f} %, latency p95 "
            f"{c.summary['latency_p95_s']:.2f} s, {c.summary['replica_hours']:,.0f} "
            f"replica-h, {c.gpu_hours:,.0f} GPU-h over {_span(plan.input.profile.duration_s)}"
        )
        console.print(
            f"  reserve {b.reserved} VM(s) ({b.term.replace('_', ' ')}), burst to {nodes} "
            f"on demand: USD {b.usd_per_month:,.0f} a month (all on demand: "
            f"USD {c.splits[0].usd_per_month:,.0f})"
        )
        held = [
            f"{x['replay']}, seed {x['seed']}: {100 * x['slo_attainment']:.2f} %"
            for x in plan.checks
        ]
        if held:
            console.print(f"  replayed: {'; '.join(held)}")
        passed_over = [t["label"] for t in plan.tried if not t["held"]]
        if passed_over:
            console.print(f"  cheaper but failed a replay: {', '.join(passed_over)}")
        failing = next(
            (g for g in plan.growth if not g.within_max or g.within_quota is False), None
        )
        if plan.growth and len(plan.growth) > 1:
            console.print(
                "  growth: "
                + (
                    f"stops meeting the SLO at month {failing.months}"
                    if failing
                    else "holds over the horizon"
                )
            )
    simulated = len(plan.simulated)
    console.print(
        f"{len(plan.screened)} candidates screened, {simulated} simulated, in {wall_s:.0f} s"
    )
    for kind, path in paths.items():
        console.print(f"wrote {path}" + ("  (open in a browser)" if kind == "html" else ""))
