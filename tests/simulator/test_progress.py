"""Long runs say how far they are: lines when piped, a bar with % and counts on a terminal."""

from __future__ import annotations

import io

from rich.console import Console

from simulator import profiles
from simulator.cli import run_all
from simulator.model import ReplicaModel
from simulator.progress import BarProgress, LineProgress

DAYS_14 = 14 * 86_400.0


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def test_piped_progress_prints_a_line_every_five_seconds_with_the_share_and_the_counts() -> None:
    clock, out = FakeClock(), io.StringIO()
    with LineProgress(out, clock=clock) as progress:
        progress.start("hpa", 2, 6, DAYS_14)
        clock.now_s = 3.0
        progress.update(0.1)  # 3 s since the start: too soon
        clock.now_s = 62.0
        progress.update(0.37)
        clock.now_s = 64.0
        progress.update(0.38)  # 2 s since the last line
    lines = out.getvalue().splitlines()
    # 62 s for 1.37 of 6 runs: about 3.5 min left
    assert lines == [
        "progress: run 2 of 6 (hpa): 37%, 5.2/14.0 d simulated; 1 min elapsed, about 3.5 min left"
    ]


def test_run_all_reports_through_the_injected_progress() -> None:
    # every clock reading is 10 s later: each of the engine's progress calls prints a line
    clock, out = FakeClock(), io.StringIO()

    def later() -> float:
        clock.now_s += 10.0
        return clock.now_s

    load = profiles.constant(2.0, 2 * 3600.0)  # 480 ticks: progress calls at 256 and the end
    spec = {"policy": "hpa", "metric": "in_flight", "target_per_replica": 6, "max_replicas": 4}
    run_all(load, [spec, spec], ReplicaModel.preset("gpu-llm"), seed=1,
            options={"initial_replicas": 1}, progress=LineProgress(out, clock=later))  # fmt: skip
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("progress: run 1 of 2 (hpa): 0%, 0.0/2.0 h simulated")
    assert any(line.startswith("progress: run 2 of 2 (hpa): 100%") for line in lines)


def test_the_terminal_bar_shows_the_percentage_and_the_counts() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    with BarProgress(console) as progress:
        progress.start("keda", 1, 3, DAYS_14)
        progress.update(0.5)
        progress.bar.refresh()
        shown = out.getvalue()
    assert "keda (1/3)" in shown and "50%" in shown and "7.0/14.0 d simulated" in shown
