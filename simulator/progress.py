"""Progress of `simulate` / `compare` / `demo` runs on standard error.

In: each run's start (its name, its place among the runs, the simulated duration) and the
engine's `progress(done)` calls (the share simulated, every 256 ticks). Out: on a terminal a
rich bar per run with the percentage and the counts (`hpa (2/6)  37%  5.2/14.0 d simulated`,
elapsed and remaining time); anywhere else (a file, a pipe, CI) one line every `every_s`
seconds of the injected clock, e.g.

    progress: run 2 of 6 (hpa): 37%, 5.2/14.0 d simulated; 3.2 min elapsed, about 6 min left

so a 7-minute `compare` piped to a file is never silent for long. Short runs print nothing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Protocol, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from simulator.result import duration_text

EVERY_S = 5.0


class RunProgress(Protocol):
    def __enter__(self) -> RunProgress: ...
    def __exit__(self, *exc: object) -> None: ...
    def start(self, name: str, index: int, runs: int, duration_s: float) -> None:
        """Run `index` (1-based) of `runs` begins: `name` over `duration_s` simulated."""

    def update(self, done: float) -> None:
        """The current run has simulated the share `done` (0..1)."""


def _simulated(done: float, duration_s: float) -> str:
    """`5.2/14.0 d simulated` (hours below two days)."""
    days = duration_s > 2 * 86_400.0
    scale, unit = (86_400.0, "d") if days else (3600.0, "h")
    return f"{done * duration_s / scale:.1f}/{duration_s / scale:.1f} {unit} simulated"


class LineProgress:
    """A progress line every `every_s` seconds of `clock` (not a terminal)."""

    def __init__(
        self, stream: TextIO | None = None, *, clock: Callable[[], float] = time.monotonic,
        every_s: float = EVERY_S,
    ) -> None:  # fmt: skip
        self.stream = stream
        self.clock = clock
        self.every_s = every_s
        self.began = self.last = clock()
        self.name, self.index, self.runs, self.duration_s = "", 0, 1, 0.0

    def __enter__(self) -> LineProgress:
        self.began = self.last = self.clock()
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def start(self, name: str, index: int, runs: int, duration_s: float) -> None:
        self.name, self.index, self.runs, self.duration_s = name, index, runs, duration_s
        self.update(0.0)

    def update(self, done: float) -> None:
        now = self.clock()
        if now - self.last < self.every_s:
            return
        self.last = now
        elapsed = now - self.began
        overall = (self.index - 1 + done) / self.runs
        left = f", about {duration_text(elapsed / overall - elapsed)} left" if overall > 0 else ""
        line = (
            f"progress: run {self.index} of {self.runs} ({self.name}): {done:.0%}, "
            f"{_simulated(done, self.duration_s)}; {duration_text(elapsed)} elapsed{left}"
        )
        stream = self.stream if self.stream is not None else sys.stderr
        print(line, file=stream, flush=True)


class BarProgress:
    """rich bars on a terminal: the run's name and place, %, simulated counts, times."""

    def __init__(self, console: Console | None = None) -> None:
        self.bar = Progress(
            TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
            TextColumn("{task.fields[counts]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=console if console is not None else Console(stderr=True), transient=True,
        )  # fmt: skip
        self.task: TaskID | None = None
        self.duration_s = 0.0

    def __enter__(self) -> BarProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(None, None, None)

    def start(self, name: str, index: int, runs: int, duration_s: float) -> None:
        if self.task is not None:
            self.bar.update(self.task, visible=False)
        self.duration_s = duration_s
        self.task = self.bar.add_task(
            f"{name} ({index}/{runs})", total=1.0, counts=_simulated(0.0, duration_s)
        )

    def update(self, done: float) -> None:
        if self.task is not None:
            self.bar.update(self.task, completed=done, counts=_simulated(done, self.duration_s))


def for_stderr() -> RunProgress:
    """A bar when standard error is a terminal, else lines."""
    return BarProgress() if sys.stderr.isatty() else LineProgress()
