"""`replicast sandbox`: watch replicast scale something real, then see the simulator predict it.

One command starts, all on 127.0.0.1: a real Prometheus (from PATH), the router
(`simulator.live.router`, one central FCFS queue), the controller (`replicast run` as a
subprocess, a `local` target whose replicas are emulator processes it starts and stops), and
the open-loop load replay of a slice of an embedded Azure LLM trace. It shows the replicas,
rate and wait live, stops everything at the end (or on Ctrl-C), then runs the simulator on the
same arrivals with the same policy, replica model and the startup delay it measured, and prints
both side by side; `--out` gets report.md, report.json, timeline.png and the processes' logs.

    replicast sandbox                                  # hpa on azure-conv, ~3 minutes
    replicast sandbox --policy knative --profile azure-code --seed 2

Parts: `plan` (profile, policy, compression, configs), `live` (processes, load, poller),
`compare` (figures, simulator, table, plot, report).
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from simulator.cli.args import UsageError, _Parser

__all__ = ["cmd_sandbox"]


def _parser() -> argparse.ArgumentParser:
    from simulator.sandbox.plan import PROFILES  # noqa: PLC0415 - after --help is possible

    p = _Parser(prog="replicast sandbox", description=cmd_sandbox.__doc__)
    p.add_argument("--profile", default="azure-conv", choices=sorted(PROFILES))
    p.add_argument(
        "--slice", default=None, metavar="START:END",
        help="seconds of the trace (default: the profile's 5 minutes)",
    )  # fmt: skip
    p.add_argument(
        "--policy", default="hpa",
        help="hpa, knative, slo (sized for the model) or a spec file / inline YAML",
    )  # fmt: skip
    p.add_argument("--rate-scale", type=float, default=1.0, help="traffic x k (fit the machine)")
    p.add_argument(
        "--time-compression", type=float, default=5.0,
        help="m: every duration / m (profile, startup, service, windows, scrapes)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--startup-s", type=float, default=60.0, help="replica cold start (profile s)")
    p.add_argument(
        "--tail", type=float, default=None,
        help="seconds of quiet after the load (default: enough to scale down)",
    )  # fmt: skip
    p.add_argument("--initial-replicas", type=int, default=None)
    p.add_argument("--max-replicas", type=int, default=10)
    p.add_argument("--interval", type=float, default=None,
                   help="control interval, profile s (default: knative 2, else 15)")  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("replicast-sandbox"))
    p.add_argument("--no-progress", action="store_true", help="no live display")
    return p


def _slice(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        start, end = (float(x) for x in text.split(":"))
    except ValueError:
        raise UsageError(f"--slice {text}: give START:END in seconds, e.g. 1200:1500") from None
    return start, end


def cmd_sandbox(argv: Sequence[str]) -> int:
    """run the controller against real emulated replicas under a trace, then the simulator on it"""
    args = _parser().parse_args(argv)
    from simulator.sandbox import compare  # noqa: PLC0415 - numpy, matplotlib: after parsing
    from simulator.sandbox.live import SandboxError, run_sandbox  # noqa: PLC0415
    from simulator.sandbox.plan import SandboxOptions, make_plan  # noqa: PLC0415
    from simulator.sandbox.progress import Progress  # noqa: PLC0415

    plan = make_plan(
        SandboxOptions(
            profile=args.profile, slice_s=_slice(args.slice), policy=args.policy,
            rate_scale=args.rate_scale, time_compression=args.time_compression, seed=args.seed,
            startup_s=args.startup_s, tail_s=args.tail, initial_replicas=args.initial_replicas,
            max_replicas=args.max_replicas, interval_s=args.interval,
        )
    )  # fmt: skip
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    command = "replicast sandbox " + shlex.join(list(argv))
    print(
        f"sandbox: {plan.options.policy} on {plan.options.profile} x{plan.options.rate_scale:g}, "
        f"{plan.duration_s:.0f} s of profile ({plan.load_s:.0f} s load + "
        f"{plan.duration_s - plan.load_s:.0f} s quiet) in ~{plan.wall_s:.0f} s at time "
        f"compression {plan.m:g}; logs in {out / 'run'}",
        flush=True,
    )
    progress = Progress(plan, enabled=not args.no_progress)
    began = time.monotonic()
    try:
        with progress:
            observed = asyncio.run(run_sandbox(plan, out / "run", on_tick=progress.update))
    except KeyboardInterrupt:
        print("sandbox: interrupted; every process stopped", file=sys.stderr)
        return 130
    except SandboxError as error:
        print(f"replicast sandbox: {error}", file=sys.stderr)
        return 2
    real = compare.observed_figures(plan, observed)
    start = compare.startup(plan, observed)
    startup_s = start.mean_s if start else float(plan.model_spec["startup"]["fixed_s"])
    offset_s = compare.scrape_offset_s(plan, compare.scrape_age_s(plan, observed))
    result = compare.simulate(plan, startup_s, offset_s)
    sim = compare.simulated_figures(result)
    load = compare.health(observed)
    compare.write_report(out, plan, real, sim, load, start, command, observed)
    compare.write_decisions(out, plan, observed, result)
    compare.plot(plan, observed, result, out / "timeline.png")
    progress.summary(compare.table_rows(real, sim), load, start)
    print(f"sandbox: done in {time.monotonic() - began:.0f} s; {out / 'report.md'}, "
          f"{out / 'timeline.png'}")  # fmt: skip
    return 0
