"""Policy quality (issue 10): the planner against operator-tuned baselines and the bounds.

    python bench/policy_quality.py                    # day 1, startup 60, 120 and 300 s
    python bench/policy_quality.py --startup 120      # one startup time
    python bench/policy_quality.py --full             # all 14 days (~28 s a run; progress lines)
    python bench/policy_quality.py --full --baselines hpa ray   # some baselines only
    python bench/policy_quality.py --reactive-bound   # + true rates, read as each window starts

The `gpu-llm` scenario (simulator/scenarios.py): `hpa`, `knative` and `ray` each swept over a
target of 3..8 requests per replica (in service + queued) in steps of 0.5, the cheapest target
that meets the SLO kept; the planner with its defaults; the clairvoyant bound (as a plan and
simulated), the static plan and, with --reactive-bound, the reactive bound (simulator/oracle.py).
One table per startup time (also written as JSON and markdown to `--out`) and a plot of day 1
per startup time. Figures are printed, never asserted; the logic is simulator/quality/.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import Executor
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from simulator import quality, sweeps  # noqa: E402 (the repository root on sys.path)
from simulator.scenarios import STARTUP_TIMES_S  # noqa: E402


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


def run_all(jobs: list[quality.Job], args: argparse.Namespace) -> list[quality.Outcome]:
    """On the sweeps' executor (`--executor`, `--workers`)."""
    with sweeps.executor_for(args.executor, args.workers) as executor:
        return _run_all(jobs, args, executor)


def _run_all(
    jobs: list[quality.Job], args: argparse.Namespace, executor: Executor | None
) -> list[quality.Outcome]:
    """A transient bar on a terminal; with --full (or no terminal) one line per finished run."""
    err = Console(stderr=True)
    if args.full or not err.is_terminal:

        def line(done: int, total: int, o: quality.Outcome) -> None:
            target = f" {o.job.swept}" if o.job.swept else ""
            err.print(
                f"[{done:>3}/{total}] startup {o.job.setting.startup_s:g} s "
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
    days = 14.0 if args.full else 1.0
    settings = [quality.Setting(days, s, args.seed) for s in args.startup]
    targets = dict.fromkeys(args.baselines, quality.TARGETS)
    jobs = [
        job for s in settings for job in quality.jobs_for(s, targets, reactive=args.reactive_bound)
    ]
    console = Console(width=max(190, Console().width))
    console.print(f"{len(jobs)} runs ({days:g} d each) in {args.workers} worker(s)")
    began = time.perf_counter()
    outcomes = run_all(jobs, args)
    wall_s = time.perf_counter() - began
    reports = [quality.build_report(s, outcomes) for s in settings]
    args.out.mkdir(parents=True, exist_ok=True)
    for report in reports:
        console.print(quality.rich_table(report))
        console.print(quality.BAR)
        console.print(quality.BOUNDS_NOTE)
        png = args.out / f"day1-startup-{report.setting.startup_s:g}s.png"
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
