"""A soak of the live controller: 50 targets deciding every 0.5 s for 20 minutes, real time.

    .venv/bin/python bench/controller_soak.py --minutes 20

Runs tests/controller/soak.py's `soak` (the suite runs a 60 s version in
tests/controller/test_soak.py): `ControlLoop.run()` with leader election, the ConfigMap state
store and its HTTP app scraped every second, against a real Prometheus (the Debian binary, on
127.0.0.1, scraping a vLLM-like exporter every second) and the fake Kubernetes API in a
process of its own. Prints a line a minute, then the slopes (least squares, per minute, after
the warm-up) of resident memory, asyncio tasks and open file descriptors, and what the
controller did. Figures are printed, never asserted; every process is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.controller.conftest import (  # noqa: E402 (the repository root on sys.path)
    _prometheus_yml,
    _wait_until_ready,
    start_exporter,
)
from tests.controller.processes import free_port, start_prometheus, stop  # noqa: E402
from tests.controller.soak import (  # noqa: E402
    Sample,
    slope_per_min,
    soak,
    start_kube,
    wait_ready,
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=20.0)
    p.add_argument("--targets", type=int, default=50)
    p.add_argument("--interval-s", type=float, default=0.5)
    p.add_argument("--warm-up-s", type=float, default=60.0)
    args = p.parse_args(argv)
    print(f"command: .venv/bin/python bench/controller_soak.py --minutes {args.minutes:g} "
          f"--targets {args.targets} --interval-s {args.interval_s:g}")  # fmt: skip
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    home = Path(tempfile.mkdtemp(prefix="replicast-soak-"))
    processes = {}
    try:
        exporter_port, port = free_port(), free_port()
        (home / "prometheus.yml").write_text(_prometheus_yml(exporter_port))
        processes["exporter"] = start_exporter(exporter_port, home / "exporter.log")
        processes["prometheus"] = start_prometheus(binary, home, port)
        url = f"http://127.0.0.1:{port}"
        _wait_until_ready(url, processes, home)
        kube_home = home / "kube"
        kube_home.mkdir()
        processes["kube"] = start_kube(kube_home, args.targets)
        wait_ready(kube_home, processes["kube"], 300)
        started = time.monotonic()

        def progress(s: Sample) -> None:
            if int(s.at_s) % 60 == 0:
                print(f"  {s.at_s / 60:4.0f} min: RSS {s.rss_mb:6.1f} MB, {s.tasks} tasks, "
                      f"{s.fds} descriptors", flush=True)  # fmt: skip

        samples, counts = asyncio.run(
            soak(
                prometheus_url=url,
                kubeconfig=kube_home / "kubeconfig",
                targets=args.targets,
                interval_s=args.interval_s,
                duration_s=args.minutes * 60,
                progress=progress,
            )
        )
        wall_s = time.monotonic() - started
    finally:
        for process in processes.values():
            stop(process)
        shutil.rmtree(home, ignore_errors=True)
    after = [s for s in samples if s.at_s >= args.warm_up_s]
    print(f"\nafter a {args.warm_up_s:g} s warm-up ({len(after)} samples, one a second):")
    for field, unit in (("rss_mb", "MB"), ("tasks", "tasks"), ("fds", "descriptors")):
        values = [getattr(s, field) for s in after]
        print(f"  {field:6s}: slope {slope_per_min(after, field):+.4f} {unit}/min; "
              f"first {values[0]:g}, last {values[-1]:g}, min {min(values):g}, "
              f"max {max(values):g}, median {statistics.median(values):g}")  # fmt: skip
    rate = counts["decisions"] / wall_s
    print(f"decisions: {counts['decisions']:,} ({rate:.0f}/s), scaled {counts['scaled']}, "
          f"failed {counts['failed']}; /metrics + /status scrapes answered: {counts['scrapes']}; "
          f"state bucket writes: {counts['state_writes']}")  # fmt: skip
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
