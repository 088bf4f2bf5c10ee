"""What a simulation returns: a summary, a timeline per control interval, the decisions.

In: per-request outcomes folded into fixed-size histograms (memory does not grow with the
number of requests), and one row per control tick. Out: `Result.summary` (SLO attainment,
each stated SLO's own figure, p50/p95/p99 latency and wait, drops, replica-hours, cost, scale
events, direction changes, and why a run missed: `why` and the fields it is made of),
`Result.timeline` (numpy arrays; `to_pandas()`), `Result.records` (DecisionRecords).

An SLO is one `SloTarget` or a tuple of them (`Slo`); a tuple holds only when every target
does (`slo_targets` reads either form).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from policies import DecisionRecord

FloatArray = npt.NDArray[np.float64]


class LogHistogram:
    """Counts of values in log-spaced bins 0.1 % wide from `low` up; 0 and below in bin 0.

    A quantile read at a bin's geometric middle is within 0.05 % of the exact order statistic
    for values in [low, low * 1.001**bins); below `low` it reads 0.
    """

    WIDTH = 1.001

    def __init__(self, low: float = 1e-4, bins: int = 21_000) -> None:  # 1e-4 s .. ~1.3e5 s
        self.low = low
        self.counts = np.zeros(bins + 1, dtype=np.int64)
        self.per_log = 1.0 / math.log(self.WIDTH)

    def add(self, values: FloatArray) -> None:
        """Fold values in; zeros (most waits) are counted without a logarithm."""
        if values.size == 0:
            return
        positive = values[values > 0]
        self.counts[0] += values.size - positive.size
        values = positive
        with np.errstate(divide="ignore", invalid="ignore"):
            index = np.floor(np.log(values / self.low) * self.per_log) + 1
        index = np.clip(np.nan_to_num(index, nan=0.0, neginf=0.0), 0, self.counts.size - 1)
        self.counts += np.bincount(index.astype(np.int64), minlength=self.counts.size)

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def quantile(self, q: float) -> float | None:
        total = self.total
        if total == 0:
            return None
        rank = max(1, math.ceil(q * total))
        b = int(np.searchsorted(np.cumsum(self.counts), rank))
        if b == 0:
            return 0.0
        return float(self.low * self.WIDTH ** (b - 0.5))


@dataclass(frozen=True, slots=True)
class SloTarget:
    """`on` (latency = arrival to completion; wait = arrival to start of service) must be at
    most `threshold_s` for at least `share` of the requests (dropped requests miss)."""

    threshold_s: float
    on: Literal["latency", "wait"] = "latency"
    share: float = 0.95

    def __post_init__(self) -> None:
        if not self.threshold_s > 0:
            raise ValueError(f"slo threshold_s: must be > 0 (got {self.threshold_s})")
        if self.on not in ("latency", "wait"):
            raise ValueError(f"slo on: must be 'latency' or 'wait' (got {self.on!r})")
        if not 0 < self.share <= 1:
            raise ValueError(f"slo share: must be in (0, 1] (got {self.share})")

    @property
    def label(self) -> str:
        return f"{self.on} <= {self.threshold_s:g} s for {self.share:.1%}"

    @property
    def short(self) -> str:
        """A table header: `wait <= 1 s` (its figure: the share within), `p95 <= 2 s` (its
        figure: the percentile)."""
        if self.on == "wait":
            return f"wait <= {self.threshold_s:g} s"
        return f"p{self.share * 100:g} <= {self.threshold_s:g} s"

    @property
    def column(self) -> str:
        """Its metric's timeline column at its share: `wait_p99_s`, `true_latency_p95_s`."""
        metric = "wait" if self.on == "wait" else "true_latency"
        return f"{metric}_p{self.share * 100:g}_s"


Slo: TypeAlias = SloTarget | tuple[SloTarget, ...]


def slo_targets(slo: Slo | None) -> tuple[SloTarget, ...]:
    """The targets of an SLO in either form (none for None)."""
    if slo is None:
        return ()
    return slo if isinstance(slo, tuple) else (slo,)


def slo_label(slo: Slo | None) -> str:
    """`wait <= 1 s for 99.0% and latency <= 2 s for 95.0%`."""
    return " and ".join(t.label for t in slo_targets(slo))


@dataclass(frozen=True, slots=True)
class Summary:
    policy: str
    duration_s: float
    requests: int
    dropped: int
    slo: str
    slo_attainment: float | None
    slo_met: bool | None
    latency_p50_s: float | None
    latency_p95_s: float | None
    latency_p99_s: float | None
    wait_p50_s: float | None
    wait_p95_s: float | None
    wait_p99_s: float | None
    replica_hours: float
    mean_replicas: float
    max_replicas: int
    cost_usd: float | None
    scale_events: int
    direction_changes: int
    # each stated target, in order (`slo_attainment`/`slo_met` above are for all of them:
    # the share of requests within every target, and whether every target holds):
    slo_targets: tuple[str, ...] = ()  # `SloTarget.label`s
    slo_attainments: tuple[float, ...] = ()  # share within the target (dropped requests miss)
    slo_quantiles_s: tuple[float, ...] = ()  # its metric at its share (inf: dropped requests)
    slo_met_each: tuple[bool, ...] = ()
    # why a run missed (`why`), from the timeline: each missed request (outside a target or
    # dropped) by what the fleet was doing in the interval it arrived in
    replica_cap: int = 0  # the policy's max_replicas
    at_max_share: float = 0.0  # share of the ticks whose decision was max_replicas
    above_max_share: float = 0.0  # share of the ticks whose policy asked for more (the cap bound)
    proposal_max: int = 0  # the most replicas the policy asked for, before the guards
    initial_replicas: int = 0  # ready at the first tick
    first_asked: int = 0  # the replicas the policy asked for at the first tick (or decided)
    started_cold: bool = False  # the first tick asked for more than were ready
    warmup_s: float = 0.0  # from the start until that many (at most the cap) were ready
    queue_max: int = 0  # the longest queue a tick saw
    missed: int = 0  # requests outside a target, or dropped
    missed_cold_start: int = 0  # arrived during the warm-up
    missed_at_max: int = 0  # arrived while max_replicas was the decision in force
    missed_starting: int = 0  # arrived while replicas asked for were still starting
    missed_other: int = 0  # arrived with every replica asked for ready: too few asked for
    why: str = ""  # `why(self)`: the above in a sentence, for people
    warning: str = ""  # `cap_warning(self)`: the cap bound (the policy asked for more)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pct(part: float, whole: float) -> str:
    """`62%`, `<1%` (some, but under half a percent), `0%`."""
    if not whole or not part:
        return "0%"
    share = part / whole
    return "<1%" if share < 0.005 else f"{share:.0%}"


def why(s: Summary) -> str:
    """Why a run missed its SLO, in one sentence ("" when it met it or had none).

    E.g. "1.40% of requests missed a target: 62% while replicas asked for were starting (cold
    starts in flight), 38% with every replica asked for ready (too few asked for)"; the cap,
    when the policy asked for more, is `cap_warning`'s."""
    if s.slo_met is not False:
        return ""
    parts: list[str] = []
    on_latency = any(label.startswith("latency") for label in s.slo_targets)
    if s.missed and s.requests:
        shares = [
            (s.missed_cold_start, f"in the first {s.warmup_s:.0f} s (started cold: "
             f"{s.initial_replicas} ready, the policy asked for {s.first_asked})"),
            (s.missed_at_max, f"at max_replicas {s.replica_cap}"),
            (s.missed_starting, "while replicas asked for were starting (cold starts in flight)"),
            (s.missed_other, "with every replica asked for ready (too few asked for"
             + (", or service alone too slow)" if on_latency else ")")),
        ]  # fmt: skip
        said = ", ".join(f"{_pct(n, s.missed)} {what}" for n, what in shares if n)
        parts.append(f"{s.missed / s.requests:.2%} of requests missed a target: {said}")
    if s.dropped:
        parts.append(f"{s.dropped:,} dropped (timed out or never served)")
    if s.at_max_share > 0 and s.above_max_share <= 0:
        parts.append(cap_note(s))  # else `cap_warning` says it
    return "; ".join(parts)


def cap_note(s: Summary) -> str:
    """`held max_replicas 100 for 9.5 h (63% of the time; the policy asked for up to 412; the
    run's longest queue: 98,000)`."""
    asked = f"; the policy asked for up to {s.proposal_max:,}" if s.above_max_share > 0 else ""
    held = duration_text(s.at_max_share * s.duration_s)
    return (
        f"held max_replicas {s.replica_cap} for {held} ({share_text(s.at_max_share)} of the "
        f"time{asked}; the run's longest queue: {s.queue_max:,})"
    )


def share_text(share: float) -> str:
    """`63%`, `1.5%`, `0.062%`, `0%`: two significant figures below 10 %."""
    if share <= 0 or share >= 0.1:
        return f"{share:.0%}"
    return f"{share * 100:.2g}%"


def duration_text(seconds: float) -> str:
    """`45 s`, `12 min`, `9.5 h`, `3.2 d`."""
    for unit, size in (("d", 86_400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return (
                f"{seconds / size:.2g} {unit}"
                if seconds < 10 * size
                else f"{seconds / size:.0f} {unit}"
            )
    return f"{seconds:.0f} s"


def cap_warning(s: Summary) -> str:
    """A warning when the cap bound (the policy asked for more than max_replicas), else ""."""
    if s.above_max_share <= 0:
        return ""
    return (
        f"warning: {s.policy}: max_replicas {s.replica_cap} binds: {cap_note(s)}; "
        "raise --max-replicas"
    )


@dataclass
class Timeline:
    """One row per control tick; `t_s` is seconds from the start, `now_s` Unix seconds."""

    t_s: FloatArray
    now_s: FloatArray
    arrival_rate_rps: FloatArray  # what arrived in the interval (the truth)
    observed_rate_rps: FloatArray  # what the policy saw (NaN: missing)
    replicas: FloatArray  # desired after the decision
    ready_replicas: FloatArray
    starting_replicas: FloatArray
    queue_depth: FloatArray
    in_flight: FloatArray
    latency_p50_s: FloatArray
    latency_p95_s: FloatArray
    latency_p99_s: FloatArray
    replica_seconds: FloatArray  # cumulative
    # the decision's parts: what the policy asked for before the guards (NaN: no proposal),
    # and what the platform applied (`simulator.provision`; below `replicas` when capped)
    proposal: FloatArray = field(default_factory=lambda: np.empty(0))
    applied_replicas: FloatArray = field(default_factory=lambda: np.empty(0))
    # The requests that arrived in the interval (ending at t_s), counted by 5 s arrival slots
    # (exact when the interval is a multiple of 5 s; `simulator.intervals`); quantiles from a
    # bucket histogram as Prometheus reads one (an SLO threshold is a bucket bound, so the
    # side of the threshold is exact); dropped requests count as never served (inf).
    requests: FloatArray = field(default_factory=lambda: np.empty(0))
    dropped: FloatArray = field(default_factory=lambda: np.empty(0))
    missed: FloatArray = field(default_factory=lambda: np.empty(0))  # a target, or dropped
    wait_p50_s: FloatArray = field(default_factory=lambda: np.empty(0))
    wait_p95_s: FloatArray = field(default_factory=lambda: np.empty(0))
    wait_p99_s: FloatArray = field(default_factory=lambda: np.empty(0))
    true_latency_p50_s: FloatArray = field(default_factory=lambda: np.empty(0))
    true_latency_p95_s: FloatArray = field(default_factory=lambda: np.empty(0))
    true_latency_p99_s: FloatArray = field(default_factory=lambda: np.empty(0))
    # a target's `column` at any other share (e.g. wait_p97.5_s); shared by `trim`'s views
    extra: dict[str, FloatArray] = field(default_factory=dict)

    @classmethod
    def empty(cls, n: int) -> Timeline:
        return cls(*(np.full(n, np.nan) for _ in cls.columns()))

    def trim(self, n: int) -> Timeline:
        """The first n rows: views of the same arrays (and the same `extra`), so columns the
        engine completes after the loop (`simulator.figures.summarize`) show in every view."""
        return Timeline(*(getattr(self, name)[:n] for name in self.columns()), extra=self.extra)

    @staticmethod
    def columns() -> tuple[str, ...]:
        return tuple(name for name in Timeline.__dataclass_fields__ if name != "extra")

    def column(self, name: str) -> FloatArray:
        """A column by name, `extra` included."""
        return self.extra[name] if name in self.extra else getattr(self, name)  # type: ignore[no-any-return]

    def to_dict(self) -> dict[str, FloatArray]:
        """Every column by name, `extra` last."""
        return {**{name: getattr(self, name) for name in self.columns()}, **self.extra}

    def to_pandas(self) -> Any:
        import pandas as pd  # noqa: PLC0415 - optional, heavy

        return pd.DataFrame(self.to_dict())


@dataclass
class Result:
    summary: Summary
    timeline: Timeline
    records: list[DecisionRecord] = field(default_factory=list)
    start_s: FloatArray | None = None  # per request, when asked for (tests, small runs)
    arrival_s: FloatArray | None = None
    service_s: FloatArray | None = None

    @property
    def latency_s(self) -> FloatArray | None:
        if self.start_s is None or self.arrival_s is None or self.service_s is None:
            return None
        return self.start_s + self.service_s - self.arrival_s
