"""The sandbox's terminal: a live line of what is happening, and the closing table.

In: the plan and, every poll, what the sandbox `Observed`. Out: a rich live display (replicas
asked for and routed, the arrival rate, wait p95 over the last 30 s of profile time, the
router's queue), redrawn twice a second; without a terminal (or with `--no-progress`) a plain
line every tenth of the run. At the end, the sandbox-vs-simulator table.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

import numpy as np
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from simulator.sandbox.live import Observed
from simulator.sandbox.plan import SandboxPlan

WINDOW_S = 30.0  # profile seconds the live rate and wait are over


class Progress:
    def __init__(self, plan: SandboxPlan, *, enabled: bool = True) -> None:
        self.plan, self.enabled = plan, enabled
        self.console = Console()
        self.live: Live | None = None
        self._last_draw = 0.0
        self._next_line = 0.0

    def __enter__(self) -> Progress:
        if self.enabled and self.console.is_terminal:
            self.live = Live(
                Text("starting Prometheus, the router and the controller..."),
                console=self.console,
                refresh_per_second=4,
            )
            self.live.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.live is not None:
            self.live.__exit__(kind, error, tb)

    def line(self, observed: Observed) -> str:
        m = self.plan.m
        now = (time.time() - observed.load_start_epoch) * m  # profile seconds
        asked = next(
            (int(d["applied_replicas"]) for d in reversed(observed.decisions)
             if isinstance(d.get("applied_replicas"), int)),
            self.plan.initial_replicas,
        )  # fmt: skip
        routed = observed.routed[-1][1] if observed.routed else self.plan.initial_replicas
        recent = [o for o in observed.outcomes[-5000:] if o.due_s * m >= now - WINDOW_S - 60]
        rate = 0.0  # arrivals at the router over the last WINDOW_S of profile time
        if len(observed.arrived) >= 2:
            t1, n1 = observed.arrived[-1]
            t0, n0 = next(
                (p for p in reversed(observed.arrived) if p[0] <= t1 - WINDOW_S / m),
                observed.arrived[0],
            )
            rate = (n1 - n0) / ((t1 - t0) * m) if t1 > t0 else 0.0
        waits = [o.wait_s * m for o in recent if o.wait_s is not None
                 and o.due_s * m >= now - WINDOW_S - 60]  # fmt: skip
        p95 = f"{np.quantile(waits, 0.95):.2f} s" if waits else "-"
        queue = int(observed.queue[-1][1]) if observed.queue else 0
        phase = "load" if now < self.plan.load_s else "quiet"
        phase = phase if now < self.plan.duration_s else "last answers"
        return (
            f"t {now:5.0f}/{self.plan.duration_s:.0f} s ({phase})  replicas asked {asked:2d} "
            f"routed {routed:2d}  rate {rate:5.1f}/s  wait p95 {p95:>8}  queue {queue:3d}"
        )

    def update(self, observed: Observed) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if self.live is not None:
            if now - self._last_draw >= 0.5:
                self._last_draw = now
                self.live.update(Text(self.line(observed)))
            return
        if now >= self._next_line:
            self._next_line = now + max(5.0, self.plan.wall_s / 10)
            print(self.line(observed), flush=True)

    def summary(self, rows: list[tuple[str, str, str, str]], load: Any, start: Any) -> None:
        table = Table(title="sandbox vs simulator (profile seconds)")
        for name in ("", "sandbox", "simulator", "simulator vs sandbox"):
            table.add_column(name, justify="left" if not name else "right")
        for row in rows:
            table.add_row(*row)
        self.console.print(table)
        lag = "-" if load.send_lag_p99_ms is None else f"{load.send_lag_p99_ms:.1f} ms"
        self.console.print(
            f"load generator: send lag p99 {lag}, CPU {load.cpu_share * 100:.0f} % of a core; "
            f"{load.completed:,} answered, {load.failed:,} failed, {load.dropped:,} dropped"
        )
        if start is not None:
            self.console.print(
                f"startup measured: mean {start.mean_s:.1f} s ({start.min_s:.1f}-"
                f"{start.max_s:.1f} s, {start.count} replicas), used by the simulator"
            )
