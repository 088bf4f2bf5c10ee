"""What the controller would see: the metric pipeline between the replica model and a policy.

In: kernel `Snapshot`s and cumulative latency histograms taken at scrape times. Out: one
`policies.Observation` per control tick, built the way the live controller builds it from
Prometheus:
- scrapes run every `scrape_interval_s` from `scrape_offset_s` (a target's scrape phase), and
  before the start for `idle_before_s` of an idle target (none by default);
- a tick at t sees the newest scrape at or before t - `delay_s` (ingestion/evaluation lag);
- `request_rate_rps` is Prometheus' `rate(arrivals[rate_window_s])` evaluated at the tick:
  the scrapes inside the window [t - window, t] (both ends, as Prometheus 2.x selects), their
  increase extrapolated to the window's edges as `extrapolatedRate` does (to each edge when it
  lies within 1.1 average scrape intervals, else half an interval; never before the counter's
  zero), over the window. With 15 s scrapes at their own phase a [1m] window holds four
  scrapes 45 s apart, so at a load step rate() reads increase / 45 s, not increase / 60 s;
- `in_flight` and `queue_depth` are the gauges at that scrape;
- latency percentiles are `histogram_quantile` over the `rate()` of each bucket of a
  Prometheus-style histogram (default: vLLM's e2e latency buckets) in the same window, each
  bucket extrapolated on its own and made monotonic as Prometheus does, interpolated linearly
  inside a bucket; no completion in the window -> None (missing), as Prometheus' NaN is;
- `replicas` is the last decision; `ready_replicas` / `starting_replicas` are the workload's
  status at the tick itself (the controller reads them from the API, not from Prometheus).
The next stage is `simulator.engine`, which hands each Observation to `Autoscaler.tick`.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from policies import Observation
from simulator import kernel

# vllm:e2e_request_latency_seconds buckets (vllm/engine/metrics.py)
VLLM_E2E_BUCKETS_S: tuple[float, ...] = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
    120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """How the simulated controller sees the target."""

    scrape_interval_s: float = 15.0
    rate_window_s: float = 60.0
    delay_s: float = 0.0
    buckets_s: tuple[float, ...] = VLLM_E2E_BUCKETS_S
    # scrapes at offset + j * scrape_interval_s: a real Prometheus scrapes each target at its
    # own phase, so a tick sees data (interval - offset) old on average, not fresh
    scrape_offset_s: float = 0.0
    # scraped idle (no request yet, the initial replicas ready) for this long before the start,
    # so the first rate windows hold those zeros as a real Prometheus's do for a target that
    # was idle before the load; 0: the history begins at the start. rate() does not extrapolate
    # a counter back past its zero, so the two read the same rates (tests/simulator/test_engine)
    idle_before_s: float = 0.0

    def __post_init__(self) -> None:
        if not self.scrape_interval_s > 0:
            raise ValueError(f"scrape_interval_s: must be > 0 (got {self.scrape_interval_s})")
        if not self.rate_window_s >= self.scrape_interval_s:
            raise ValueError(
                f"rate_window_s: must be >= scrape_interval_s {self.scrape_interval_s} "
                f"(got {self.rate_window_s}); rate() needs two samples"
            )
        if not self.delay_s >= 0:
            raise ValueError(f"delay_s: must be >= 0 (got {self.delay_s})")
        if not 0 <= self.scrape_offset_s < self.scrape_interval_s:
            raise ValueError(
                f"scrape_offset_s: must be in [0, scrape_interval_s) (got {self.scrape_offset_s})"
            )
        if not 0 <= self.idle_before_s < math.inf:
            raise ValueError(f"idle_before_s: must be >= 0 seconds (got {self.idle_before_s})")
        if list(self.buckets_s) != sorted(set(self.buckets_s)) or not self.buckets_s:
            raise ValueError("buckets_s: must be increasing upper bounds, e.g. (0.5, 1, 2, 5)")


def metrics_for(interval_s: float) -> MetricsConfig | None:
    """The run's metrics: the default (a scrape per tick, a 60 s rate window), with the rate
    window widened to two ticks when a tick is longer than 60 s (rate() needs two scrapes)."""
    if interval_s <= 60.0:
        return None
    return MetricsConfig(scrape_interval_s=interval_s, rate_window_s=2 * interval_s)


@dataclass(frozen=True, slots=True)
class Scrape:
    at_s: float
    snapshot: kernel.Snapshot
    buckets: npt.NDArray[np.int64]  # cumulative counts per `le` bound, +Inf last


def bucket_index(buckets_s: Sequence[float]) -> npt.NDArray[np.int64]:
    """For each Prometheus `le` bound, how many fine kernel bins lie wholly at or below it."""
    edges = kernel.histogram_edges_s()  # lower edges; bin i spans [edges[i], edges[i + 1])
    upper = np.append(edges[1:], math.inf)
    return np.searchsorted(upper, np.asarray(buckets_s, dtype=np.float64), side="right")


def segment_starts(index: npt.NDArray[np.int64]) -> npt.NDArray[np.int64] | None:
    """`reduceat` segment starts [0, i0, i1, ...], or None when a bound falls below or between
    the fine bins (then `coarse_buckets` takes the slower cumulative sum)."""
    starts = np.concatenate(([0], index)).astype(np.int64)
    if index[0] == 0 or np.any(np.diff(starts) == 0):
        return None
    return starts


def coarse_buckets(
    hist: npt.NDArray[np.int64],
    index: npt.NDArray[np.int64],
    starts: npt.NDArray[np.int64] | None = None,
) -> npt.NDArray[np.int64]:
    """Cumulative counts at each `le` bound and +Inf, from the kernel's fine histogram: one
    `reduceat` over the fine bins (segments [0, i0), [i0, i1), ..., [i_last, end))."""
    if starts is None:
        starts = segment_starts(index)
    if starts is None:
        cumulative = np.cumsum(hist)
        at = np.where(index > 0, cumulative[np.maximum(index - 1, 0)], 0)
        return np.append(at, cumulative[-1])
    return np.add.reduceat(hist, starts).cumsum()


def histogram_quantile(
    q: float,
    bounds_s: Sequence[float],
    counts: Sequence[float] | npt.NDArray[np.int64] | npt.NDArray[np.float64],
) -> float | None:
    """Prometheus' histogram_quantile on cumulative `counts` (one per bound, then +Inf)."""
    cumulative = counts.tolist() if isinstance(counts, np.ndarray) else list(counts)
    return _quantile(q, bounds_s, cumulative)


def _quantile(q: float, bounds_s: Sequence[float], cumulative: list[float]) -> float | None:
    """`histogram_quantile` on a list it may read without copying (the tick path's)."""
    total = float(cumulative[-1])
    if total <= 0:
        return None
    rank = q * total
    b = bisect.bisect_left(cumulative, rank)
    if b >= len(bounds_s):  # in the +Inf bucket: Prometheus answers the highest finite bound
        return float(bounds_s[-1])
    lower = 0.0 if b == 0 else float(bounds_s[b - 1])
    below = 0.0 if b == 0 else float(cumulative[b - 1])
    inside = float(cumulative[b]) - below
    if inside <= 0:
        return float(bounds_s[b])
    return lower + (float(bounds_s[b]) - lower) * (rank - below) / inside


@dataclass(frozen=True, slots=True)
class Window:
    """The scrapes a range selector holds at one evaluation, and Prometheus' extrapolation of a
    counter's increase over them (promql/functions.go `extrapolatedRate`, counters only: the
    simulator's never reset)."""

    first_s: float
    last_s: float
    samples: int  # >= 2
    start_s: float  # the range's edges: [evaluation time - range, evaluation time]
    end_s: float

    def rate(self, first: float, last: float) -> float:
        """The extrapolated increase of one counter (divide by the range for rate())."""
        return self.rates([first], [last])[0]

    def rates(self, first: Sequence[float], last: Sequence[float]) -> list[float]:
        """`rate` of several counters (a histogram's cumulative buckets, in `le` order), made
        monotonic as histogram_quantile makes them (a bucket below the one before it is
        raised to it): the same float operations, in the same order, as Prometheus'."""
        sampled = self.last_s - self.first_s
        average = sampled / (self.samples - 1)
        threshold = 1.1 * average
        to_start = self.first_s - self.start_s
        to_end = self.end_s - self.last_s
        tail = to_end if to_end < threshold else average / 2
        out: list[float] = []
        top = 0.0
        for a, b in zip(first, last, strict=True):
            result = float(b - a)
            head = to_start
            if result > 0 and a >= 0:  # not before the counter's zero point
                head = min(head, sampled * (a / result))
            extended = sampled + (head if head < threshold else average / 2)
            extended += tail
            value = max(result * (extended / sampled), top)
            out.append(value)
            top = value
        return out


@dataclass
class Observer:
    """Keeps the scrapes a rate window needs and turns them into Observations."""

    config: MetricsConfig
    start_epoch_s: float
    _index: npt.NDArray[np.int64] = field(init=False)
    _starts: npt.NDArray[np.int64] | None = field(init=False)
    _scrapes: deque[Scrape] = field(init=False)
    _in_order: bool = field(init=False, default=True)

    def __post_init__(self) -> None:
        self._index = bucket_index(self.config.buckets_s)
        self._starts = segment_starts(self._index)
        keep = (
            math.ceil(
                (self.config.rate_window_s + self.config.delay_s) / self.config.scrape_interval_s
            )
            + 2
        )
        self._scrapes = deque(maxlen=keep)

    def idle_history(self, snapshot: kernel.Snapshot, hist: npt.NDArray[np.int64]) -> None:
        """The scrapes before the start (`idle_before_s`), each of the idle `snapshot`."""
        c = self.config
        k = math.floor((c.idle_before_s + c.scrape_offset_s) / c.scrape_interval_s + 1e-9)
        for j in range(k, 0, -1):  # oldest first, at the target's scrape phase
            self.scrape(c.scrape_offset_s - j * c.scrape_interval_s, snapshot, hist)

    def scrape(self, at_s: float, snapshot: kernel.Snapshot, hist: npt.NDArray[np.int64]) -> None:
        if self._scrapes and at_s < self._scrapes[-1].at_s:
            self._in_order = False
        self._scrapes.append(
            Scrape(at_s, snapshot, coarse_buckets(hist, self._index, self._starts))
        )

    def observe(self, now_s: float, replicas: int, status: kernel.Snapshot) -> Observation:
        """The Observation a controller ticking at `now_s` (seconds from the start) builds."""
        signals = self._signals(now_s)
        return Observation(
            now_s=self.start_epoch_s + now_s,
            replicas=replicas,
            ready_replicas=status.ready_replicas,
            starting_replicas=status.starting_replicas,
            request_rate_rps=signals.get("request_rate_rps"),
            in_flight=signals.get("in_flight"),
            queue_depth=signals.get("queue_depth"),
            latency_p50_s=signals.get("latency_p50_s"),
            latency_p95_s=signals.get("latency_p95_s"),
            latency_p99_s=signals.get("latency_p99_s"),
            error_rate=signals.get("error_rate"),
            extra=_concurrency(signals),
        )

    def _signals(self, now_s: float) -> dict[str, float | None]:
        """The signals a tick at `now_s` sees, queried at t = now_s - delay_s: the gauges of the
        newest scrape at or before t, and rate() over the scrapes in [t - rate_window_s, t]
        (`Window`). rate() depends on t itself (the edges it extrapolates to), so this runs
        every tick."""
        at_s = now_s - self.config.delay_s
        found = self._inside(at_s + 1e-9, at_s - self.config.rate_window_s - 1e-9)
        if found is None:
            return {}
        first, last, samples = found
        signals: dict[str, float | None] = {
            "in_flight": float(last.snapshot.in_flight),
            "queue_depth": float(last.snapshot.queued),
        }
        if samples >= 2:
            window = Window(first.at_s, last.at_s, samples, at_s - self.config.rate_window_s, at_s)
            arrived = window.rate(first.snapshot.arrivals, last.snapshot.arrivals)
            signals["request_rate_rps"] = arrived / self.config.rate_window_s
            done = window.rates(first.buckets.tolist(), last.buckets.tolist())
            bounds_s = self.config.buckets_s
            signals["latency_p50_s"] = _quantile(0.5, bounds_s, done)
            signals["latency_p95_s"] = _quantile(0.95, bounds_s, done)
            signals["latency_p99_s"] = _quantile(0.99, bounds_s, done)
            finished = last.snapshot.completed - first.snapshot.completed
            dropped = (
                last.snapshot.dropped_timeout + last.snapshot.dropped_queue_full
                - first.snapshot.dropped_timeout - first.snapshot.dropped_queue_full
            )  # fmt: skip
            if finished + dropped > 0:
                signals["error_rate"] = dropped / (finished + dropped)
        return signals

    def _inside(self, end_s: float, start_s: float) -> tuple[Scrape, Scrape, int] | None:
        """(first, last, how many) of the scrapes in [start_s, end_s], or None when no scrape
        is at or before end_s (a gauge needs one; rate() two). Scrapes are kept in time order,
        so both ends are found from the deque's ends; out of order, every scrape is read."""
        scrapes = self._scrapes
        if not self._in_order:
            seen = [s for s in scrapes if s.at_s <= end_s]
            if not seen:
                return None
            inside = [s for s in seen if s.at_s >= start_s]
            return (inside[0] if inside else seen[-1]), seen[-1], len(inside)
        n = len(scrapes)
        j = n - 1
        while j >= 0 and scrapes[j].at_s > end_s:
            j -= 1
        if j < 0:
            return None
        i = 0
        while i < j and scrapes[i].at_s < start_s:
            i += 1
        samples = j - i + 1 if scrapes[i].at_s >= start_s else 0
        return scrapes[i], scrapes[j], samples


def _concurrency(signals: dict[str, float | None]) -> dict[str, float]:
    """`extra.concurrency`: requests in service plus queued (HPA's usual custom metric)."""
    in_flight, queued = signals.get("in_flight"), signals.get("queue_depth")
    if in_flight is None or queued is None:
        return {}
    return {"concurrency": in_flight + queued}
