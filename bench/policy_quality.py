"""Policy quality (issues 10, 19): the planner against baselines tuned in hindsight, per load.

    python bench/policy_quality.py                    # day 1 of every shipped series, 3 cold starts
    python bench/policy_quality.py --startup 120      # one startup time
    python bench/policy_quality.py --shape realistic  # the realistic replay only
    python bench/policy_quality.py --series my.csv    # your own rate series (time_s,rate_rps[,cv])
    python bench/policy_quality.py --full             # all 14 days (~70 s a run; progress lines)
    python bench/policy_quality.py --reuse policy-quality/runs.pkl   # keep earlier baseline runs
    python bench/policy_quality.py --reactive-bound   # + the reactive reference's sweep

Loads (`--series`, repeatable): `servegen-14d` (the shipped 10-minute series, replayed as
`--shape step`, the stress case, and `realistic`: the rate linear between window centres and
gamma renewal arrivals of the series' CV, by time rescaling), `azure-code` and `azure-conv`
(the Azure LLM traces' own timestamps and tokens on llama2-70b-a100 replicas), or a path to a
rate series with the shipped one's columns. `hpa`, `knative` and `ray` are each swept over 3..12
requests per replica of 8 slots (scaled to the model's slots) in steps of 0.5, the cheapest
target that meets the SLO kept; the planner runs with its defaults; the clairvoyant plan (sized
by simulation where arrivals are not Poisson) is simulated; the static plan; with
--reactive-bound the reactive reference (simulator/oracle.py). One table per setting (also
written as JSON and markdown to `--out`) and a plot of day 1. Figures are printed, never
asserted; the logic is simulator/quality/.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from concurrent.futures import Executor
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from simulator import quality, sweeps  # noqa: E402 (the repository root on sys.path)
from simulator.scenarios import SHAPES, STARTUP_TIMES_S  # noqa: E402

SHIPPED = ("servegen-14d", "azure-code", "azure-conv")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="all 14 days (default: day 1)")
    parser.add_argument(
        "--startup",
        type=float,
        nargs="+",
        default=list(STARTUP_TIMES_S),
        metavar="S",
        help="replica startup times, s (default: 60 120 300)",
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument(
        "--executor", default="process", help="process | local-dask | dask://HOST:PORT (sweeps)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("policy-quality"),
        help="directory for the PNGs, JSON and markdown",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--series",
        nargs="+",
        default=list(SHIPPED),
        metavar="NAME|PATH",
        help=f"loads: {', '.join(SHIPPED)} or a rate-series CSV (default: all shipped)",
    )
    parser.add_argument(
        "--shape",
        nargs="+",
        choices=SHAPES,
        default=list(SHAPES),
        help="how a rate series is replayed (default: both)",
    )
    parser.add_argument(
        "--reuse",
        type=Path,
        default=None,
        metavar="FILE",
        help="a pickle of earlier runs: baseline and reference runs found there are not run "
        "again (the planner's always are); the new runs are added to it",
    )
    parser.add_argument(
        "--reactive-bound",
        action="store_true",
        help=f"also sweep the reactive bound ({len(quality.REACTIVE_MARGINS)} margins x "
        f"{len(quality.REACTIVE_HOLDS_S)} holds per startup time; simulator/oracle.py)",
    )
    parser.add_argument(
        "--baselines",
        nargs="*",
        choices=quality.BASELINES,
        default=list(quality.BASELINES),
        help="the baselines to sweep (default: all; none when given without names)",
    )
    return parser.parse_args()


def settings_for(args: argparse.Namespace) -> list[quality.Setting]:
    days = 14.0 if args.full else 1.0
    out = []
    for series in args.series:
        for startup in args.startup:
            if series in ("azure-code", "azure-conv"):
                out.append(quality.Setting(1.0, startup, args.seed, name=series))
                continue
            path = None if series == "servegen-14d" else series
            for shape in args.shape:
                out.append(quality.Setting(days, startup, args.seed, shape=shape, series=path))
    return out


def run_all(jobs: list[quality.Job], args: argparse.Namespace) -> list[quality.Outcome]:
    """On the sweeps' executor (`--executor`, `--workers`); with --reuse, earlier runs of
    everything but the planner are kept and only the rest run."""
    kept: dict[tuple[object, ...], quality.Outcome] = {}
    if args.reuse is not None and args.reuse.exists():
        kept = pickle.loads(args.reuse.read_bytes())
    todo = [j for j in jobs if j.policy == "planner" or _key(j) not in kept]
    with sweeps.executor_for(args.executor, args.workers) as executor:
        done = _run_all(todo, args, executor)
    fresh = {_key(o.job): o for o in done}
    if args.reuse is not None:
        args.reuse.parent.mkdir(parents=True, exist_ok=True)
        args.reuse.write_bytes(pickle.dumps(kept | fresh))
    both = kept | fresh
    return [replace(both[_key(j)], job=j) for j in jobs]


def _known_plan(setting: quality.Setting, reuse: Path | None) -> quality.Setting:
    """The setting with the sized plan an earlier run of the same load kept in --reuse (a
    14-day plan takes minutes to size)."""
    if reuse is None or not reuse.exists() or not setting.needs_plan:
        return setting
    load = (setting.name, setting.series, setting.shape, setting.days, setting.seed)
    for outcome in pickle.loads(reuse.read_bytes()).values():
        s = outcome.job.setting
        if s.plan is not None and (s.name, s.series, s.shape, s.days, s.seed) == load:
            return replace(setting, plan=s.plan)
    return setting


def _key(job: quality.Job) -> tuple[object, ...]:
    """What a kept run is found by: its load and policy, and for the runs a plan drives
    (the clairvoyant and reactive references, the static peak) the plan itself."""
    s = job.setting
    planned = job.policy in (quality.CLAIRVOYANT_RUN, quality.REACTIVE, "static")
    return (s.name, s.series, s.shape, s.days, s.startup_s, s.seed, job.policy, job.target,
            job.hold_s, hash(s.plan) if planned else None)  # fmt: skip


def _run_all(
    jobs: list[quality.Job], args: argparse.Namespace, executor: Executor | None
) -> list[quality.Outcome]:
    """A transient bar on a terminal; with --full (or no terminal) one line per finished run."""
    err = Console(stderr=True)
    if args.full or not err.is_terminal:

        def line(done: int, total: int, o: quality.Outcome) -> None:
            target = f" {o.job.swept}" if o.job.swept else ""
            err.print(
                f"[{done:>3}/{total}] {o.job.setting.load}, startup {o.job.setting.startup_s:g} s "
                f"{o.job.policy}{target}: {o.wall_s:.1f} s"
            )

        return quality.run_jobs(jobs, workers=args.workers, executor=executor, on_done=line)
    with Progress(
        TextColumn("runs"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("runs", total=len(jobs))
        return quality.run_jobs(
            jobs,
            workers=args.workers,
            executor=executor,
            on_done=lambda done, _t, _o: bar.update(task, completed=done),
        )


def main() -> int:
    args = parse_args()
    console = Console(width=max(190, Console().width))
    began = time.perf_counter()
    settings = [_known_plan(s, args.reuse) for s in settings_for(args)]
    if any(s.needs_plan for s in settings):
        console.print("sizing the clairvoyant plans by simulation (about 20 s a day of series)")
        with sweeps.executor_for(args.executor, args.workers) as executor:
            settings = quality.with_plans(settings, executor)
    targets: dict[str, None] = dict.fromkeys(args.baselines)
    jobs = [
        job for s in settings for job in quality.jobs_for(s, targets, reactive=args.reactive_bound)
    ]
    console.print(f"{len(jobs)} runs in {len(settings)} settings, {args.workers} worker(s)")
    outcomes = run_all(jobs, args)
    wall_s = time.perf_counter() - began
    reports = [quality.build_report(s, outcomes) for s in settings]
    args.out.mkdir(parents=True, exist_ok=True)
    for report in reports:
        console.print(quality.rich_table(report))
        console.print(quality.BAR)
        console.print(quality.BOUNDS_NOTE)
        load = report.load.split(",")[0].split(" (")[0].replace(" ", "-")
        png = args.out / f"day1-{load}-startup-{report.setting.startup_s:g}s.png"
        quality.day_figure(report).savefig(png, dpi=110)
    mode = "full" if args.full else "quick"
    (args.out / f"policy-quality-{mode}.md").write_text("\n".join(map(quality.markdown, reports)))
    (args.out / f"policy-quality-{mode}.json").write_text(
        quality.to_json(reports, mode=mode, workers=args.workers, wall_s=wall_s)
    )
    simulated_s = sum(r.simulated_s for r in reports)
    console.print(
        f"{len(jobs)} runs in {wall_s:.1f} s wall ({simulated_s:.1f} s of runs, "
        f"{args.workers} workers); tables, plots: {args.out}/"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
