"""`replicast plan`'s wall time on its two documented runs (issue 18's speed bars).

    python bench/plan_speed.py            # --days 1 (bar 60 s), then the default (bar 300 s)
    python bench/plan_speed.py --only 1d  # just the one-day plan

Each plan runs as a user runs it (`replicast plan ...` in a fresh process, one worker per core,
files to a temporary folder); the table gives the command's wall time, the plan's own stages
(plan.json's wall_s: the screen, simulating the finalists and their near misses, replaying the
cheapest), the runs and the recommendation, side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PLANS = {
    "1d": (["--days", "1"], 60.0),
    "14d": ([], 300.0),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--only", choices=sorted(PLANS), default=None)
    args = parser.parse_args()
    exe = Path(sys.executable).with_name("replicast")
    rows = []
    for name, (extra, bar) in PLANS.items():
        if args.only and name != args.only:
            continue
        with tempfile.TemporaryDirectory() as out:
            began = time.perf_counter()
            done = subprocess.run(
                [str(exe), "plan", *extra, "--out", out],
                check=False,
                capture_output=True,
                text=True,
            )
            wall = time.perf_counter() - began
            if done.returncode not in (0, 1):
                print(done.stderr, file=sys.stderr)
                return done.returncode
            data = json.loads((Path(out) / "plan.json").read_text())
        stages = data["wall_s"]
        rec = data["recommended"]
        rows.append(
            (
                f"replicast plan {' '.join(extra)}".strip(),
                wall,
                bar,
                stages,
                len(data["simulated"]),
                sum(len(t["replays"]) for t in data["tried"]),
                "-" if rec is None else f"{rec['label']} {100 * rec['slo_attainment']:.2f} %",
            )
        )
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the end")
    head = ("command", "wall s", "bar s", "screen s", "simulate s", "replay s", "finalists",
            "replays", "recommended")  # fmt: skip
    print(" | ".join(head))
    for cmd, wall, bar, st, sims, replays, rec in rows:
        print(
            f"{cmd} | {wall:.1f} | {bar:.0f} | {st['screen_s']:.1f} | {st['simulate_s']:.1f} | "
            f"{st['verify_s']:.1f} | {sims} | {replays} | {rec}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
