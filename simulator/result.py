"""What a simulation returns: a summary, a timeline per control interval, the decisions.

In: per-request outcomes folded into fixed-size histograms (memory does not grow with the
number of requests), and one row per control tick. Out: `Result.summary` (SLO attainment,
p50/p95/p99 latency and wait, drops, replica-hours, cost, scale events, direction changes),
`Result.timeline` (numpy arrays; `to_pandas()`), `Result.records` (DecisionRecords).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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

    @classmethod
    def empty(cls, n: int) -> Timeline:
        return cls(*(np.full(n, np.nan) for _ in range(13)))

    def trim(self, n: int) -> Timeline:
        return Timeline(*(getattr(self, name)[:n] for name in self.columns()))

    @staticmethod
    def columns() -> tuple[str, ...]:
        return tuple(Timeline.__dataclass_fields__)

    def to_pandas(self) -> Any:
        import pandas as pd  # noqa: PLC0415 - optional, heavy

        return pd.DataFrame({name: getattr(self, name) for name in self.columns()})


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
