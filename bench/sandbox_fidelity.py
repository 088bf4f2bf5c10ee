"""Does the simulator predict a real closed loop? `replicast sandbox` runs, six settings x seeds.

    python bench/sandbox_fidelity.py                 # hpa, knative, slo x azure-conv, azure-code
                                                     # x seeds 1-3: 18 runs, ~55 min
    python bench/sandbox_fidelity.py --seeds 1 --policies hpa --profiles azure-conv   # one run

Each run is `replicast sandbox --policy P --profile F --seed S` (defaults otherwise: a 5-minute
slice, time compression 5, the quiet tail), one after another on a quiet machine, each into
bench-out/sandbox/P-F-S/. Printed (bench/README.md keeps it): per setting, the sandbox's and
the simulator's p95 latency and replica-seconds, as mean and spread (min..max) over the seeds,
and the simulator's difference from the sandbox; the load generator's worst send lag p99 and
the load average beside it, so a slow machine shows. Runs already done (report.json present)
are read, not rerun, unless --fresh. `--resimulate` keeps each run's sandbox side and
measurements (startup, scrape ages) and runs the simulator side again with today's model, so a
model fix is measured against the same real runs (report.json's "simulator" and decisions.json's
"simulator" are replaced; the old figures are kept as "simulator_before").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
REPLICAST = [sys.executable, "-m", "controller.dispatch"]


def run_one(policy: str, profile: str, seed: int, out: Path, fresh: bool) -> dict:
    report = out / "report.json"
    if fresh or not report.exists():
        began = time.monotonic()
        command = [*REPLICAST, "sandbox", "--policy", policy, "--profile", profile,
                   "--seed", str(seed), "--out", str(out), "--no-progress"]  # fmt: skip
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)}: exit {done.returncode}: {done.stderr[-500:]}")
        load = os.getloadavg()[0]
        print(f"  {policy} {profile} seed {seed}: {time.monotonic() - began:.0f} s, "
              f"load {load:.2f}", flush=True)  # fmt: skip
    return json.loads(report.read_text())


def resimulate(policy: str, profile: str, seed: int, out: Path) -> None:
    """The simulator side of a finished run again, on its measured startup and scrape ages."""
    from dataclasses import asdict  # noqa: PLC0415

    from simulator.sandbox import compare  # noqa: PLC0415
    from simulator.sandbox.live import Observed  # noqa: PLC0415
    from simulator.sandbox.plan import SandboxOptions, make_plan  # noqa: PLC0415

    path = out / "report.json"
    report = json.loads(path.read_text())
    plan = make_plan(SandboxOptions(policy=policy, profile=profile, seed=seed))
    ages = {job: age / plan.m for job, age in report["measured_scrape_age_by_job_s"].items()}
    offset = compare.scrape_offset_s(plan, compare.scrape_age_s(plan, Observed(scrape_ages_s=ages)))
    startup = report["measured_startup"]["mean_s"]
    result = compare.simulate(plan, startup, offset)
    report.setdefault("simulator_before", report["simulator"])
    report["simulator"] = asdict(compare.simulated_figures(result))
    path.write_text(json.dumps(report, indent=2))
    decisions = out / "decisions.json"
    if decisions.exists():  # the simulator's side of it again too
        both = json.loads(decisions.read_text())
        records = [r.to_dict() for r in result.records]
        both["simulator"] = compare.decision_rows(records, compare.DEFAULT_EPOCH_S, 1.0)
        decisions.write_text(json.dumps(both, indent=1))


def spread(values: list[float]) -> str:
    a = np.array(values, dtype=float)
    return f"{a.mean():,.1f} ({a.min():,.1f}..{a.max():,.1f})"


def diff(sim: list[float], real: list[float]) -> str:
    d = (np.array(sim) - np.array(real)) / np.array(real) * 100
    return f"{d.mean():+.1f} % ({d.min():+.1f}..{d.max():+.1f})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--policies", nargs="+", default=["hpa", "knative", "slo"])
    p.add_argument("--profiles", nargs="+", default=["azure-conv", "azure-code"])
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    p.add_argument("--out", type=Path, default=ROOT / "bench-out" / "sandbox")
    p.add_argument("--fresh", action="store_true", help="rerun runs already done")
    again = "the simulator side of every finished run again (today's model)"
    p.add_argument("--resimulate", action="store_true", help=again)
    args = p.parse_args()
    if args.resimulate:
        for s in args.seeds:
            for profile in args.profiles:
                for policy in args.policies:
                    run_dir = args.out / f"{policy}-{profile}-{s}"
                    if (run_dir / "report.json").exists():
                        resimulate(policy, profile, s, run_dir)
    done = {  # seed first: every setting is tried early
        (policy, profile, s): run_one(
            policy, profile, s, args.out / f"{policy}-{profile}-{s}", args.fresh
        )
        for s in args.seeds
        for profile in args.profiles
        for policy in args.policies
    }
    rows = []
    for profile in args.profiles:
        for policy in args.policies:
            reports = [done[policy, profile, s] for s in args.seeds]
            real = [r["sandbox"] for r in reports]
            sim = [r["simulator"] for r in reports]
            lat_r, lat_s = [x["latency_p95_s"] for x in real], [x["latency_p95_s"] for x in sim]
            rs_r, rs_s = [x["replica_seconds"] for x in real], [x["replica_seconds"] for x in sim]
            lag = max(r["load_generator"]["send_lag_p99_ms"] or 0.0 for r in reports)
            rows.append((
                policy, profile, spread(lat_r), spread(lat_s), diff(lat_s, lat_r),
                spread(rs_r), spread(rs_s), diff(rs_s, rs_r), f"{lag:.1f}",
            ))  # fmt: skip
    print(f"\nseeds {' '.join(map(str, args.seeds))}; load average now "
          f"{os.getloadavg()[0]:.2f}; mean (min..max) over the seeds\n")  # fmt: skip
    header = (
        "policy", "profile", "latency p95 sandbox (s)", "simulator (s)", "sim vs sandbox",
        "replica-s sandbox", "simulator", "sim vs sandbox", "send lag p99 max (ms)",
    )  # fmt: skip
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
