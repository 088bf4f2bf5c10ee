"""Per-interval outcomes: what happened to the requests that arrived in each control interval.

In: settled requests chunk by chunk (arrival, service, start; start NaN = dropped) from
`simulator.engine`, and the SLO targets. Out: `ArrivalSlots.per_interval(t_s)`, the timeline's
outcome columns (requests, dropped, missed, wait and latency p50/p95/p99, and each target's
metric at its own share), and `met`, each target's count of requests within it.

Requests are counted by 5 s arrival slot (`SLOT_S`) as they settle, since the engine folds
outcomes long after their interval has passed and does not pass its interval here; a slot goes
to the interval its start falls in, so the columns are exact when the interval is a multiple of
5 s (every preset and the default 15 s). Waits and latencies go into bucket histograms
(`BOUNDS_S`, plus each SLO threshold as a bound) read as Prometheus' `histogram_quantile` reads
one (linear inside a bucket), so a quantile is on the right side of its threshold exactly;
dropped requests count as never served (+Inf). Memory: two int32 histograms of ~22 buckets per
slot, about 45 MB for a 14-day run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from numba import njit

from simulator.result import SloTarget

FloatArray = npt.NDArray[np.float64]
Int32Array = npt.NDArray[np.int32]

SLOT_S = 5.0
# `le` bounds, seconds: zero (no wait), then roughly x2-x3 up to a week (the drain limit)
BOUNDS_S = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
            1800.0, 3600.0, 7200.0, 21_600.0, 86_400.0, 604_800.0)  # fmt: skip
QUANTILES = (0.5, 0.95, 0.99)
C_REQUESTS, C_DROPPED, C_MISSED = 0, 1, 2


# Slot indices are stepped only while exact: a slot edge `j * slot_s` is a float exactly when
# `slot_s` is a whole number and the arrival below 2**50, and then `a // slot_s == j` exactly
# for every `a` in [j * slot_s, (j + 1) * slot_s) (floor division of floats rounds at most once)
_STEP_BELOW_S = 2.0**50


@njit(cache=True, inline="always")
def _bucket(bounds: FloatArray, x: float) -> int:
    """`np.searchsorted(bounds, x)` (side left; NaN after every number, as numpy sorts) by a
    scan from the bottom: most waits are 0 (the first bound) and most latencies a few
    buckets up, so the scan stops within a few predictable branches where a binary search
    takes five unpredictable ones (about 16 vs 24 ns a request)."""
    if math.isnan(x):
        k = bounds.size
        while k > 0 and math.isnan(bounds[k - 1]):
            k -= 1
        return k
    k = 0
    while k < bounds.size and bounds[k] < x:
        k += 1
    return k


@njit(cache=True)
def _fold(
    arrival_s: FloatArray, service_s: FloatArray, start_s: FloatArray, slot_s: float,
    on_wait: npt.NDArray[np.bool_], threshold_s: FloatArray,
    wait_bounds: FloatArray, latency_bounds: FloatArray,
    counts: Int32Array, wait_hist: Int32Array, latency_hist: Int32Array,
    met: npt.NDArray[np.int64],
) -> None:  # fmt: skip
    """One pass: each request into its slot's counts and histograms, and `met` per target.
    The slot is `int(arrival // slot_s)`, divided only when the arrival leaves the last one."""
    top_wait, top_latency = wait_bounds.size, latency_bounds.size
    step = slot_s == math.floor(slot_s) and 1.0 <= slot_s <= 2.0**20
    j, edge_lo, edge_hi = 0, math.inf, -math.inf  # no slot yet: the first arrival divides
    for i in range(arrival_s.size):
        arrival = arrival_s[i]
        if not (edge_lo <= arrival < edge_hi):
            j = int(arrival // slot_s)
            if step and -_STEP_BELOW_S < arrival < _STEP_BELOW_S:
                edge_lo, edge_hi = j * slot_s, (j + 1) * slot_s
            else:
                edge_lo, edge_hi = math.inf, -math.inf
        counts[j, C_REQUESTS] += 1
        start = start_s[i]
        if math.isnan(start):
            counts[j, C_DROPPED] += 1
            counts[j, C_MISSED] += 1
            wait_hist[j, top_wait] += 1
            latency_hist[j, top_latency] += 1
            continue
        wait = start - arrival
        latency = wait + service_s[i]
        within = True
        for t in range(threshold_s.size):
            if (wait if on_wait[t] else latency) <= threshold_s[t]:
                met[t] += 1
            else:
                within = False
        if not within:
            counts[j, C_MISSED] += 1
        wait_hist[j, _bucket(wait_bounds, wait)] += 1
        latency_hist[j, _bucket(latency_bounds, latency)] += 1


def _bounds(targets: Sequence[SloTarget], on: str) -> FloatArray:
    thresholds = [t.threshold_s for t in targets if t.on == on]
    return np.array(sorted({*BOUNDS_S, *thresholds}), dtype=np.float64)


class ArrivalSlots:
    """Counts and histograms per 5 s arrival slot (see the module docstring)."""

    def __init__(self, targets: Sequence[SloTarget]) -> None:
        self.targets = tuple(targets)
        self.on_wait = np.array([t.on == "wait" for t in self.targets], dtype=np.bool_)
        self.threshold_s = np.array([t.threshold_s for t in self.targets], dtype=np.float64)
        self.wait_bounds = _bounds(self.targets, "wait")
        self.latency_bounds = _bounds(self.targets, "latency")
        self.met = np.zeros(len(self.targets), dtype=np.int64)
        self.counts = np.zeros((0, 3), dtype=np.int32)
        self.wait_hist = np.zeros((0, self.wait_bounds.size + 1), dtype=np.int32)
        self.latency_hist = np.zeros((0, self.latency_bounds.size + 1), dtype=np.int32)

    def fold(self, arrival_s: FloatArray, service_s: FloatArray, start_s: FloatArray) -> None:
        """Settled requests, in arrival order (start NaN: dropped)."""
        if arrival_s.size == 0:
            return
        self._reserve(int(arrival_s[-1] // SLOT_S) + 1)
        _fold(
            arrival_s, service_s, start_s, SLOT_S, self.on_wait, self.threshold_s,
            self.wait_bounds, self.latency_bounds,
            self.counts, self.wait_hist, self.latency_hist, self.met,
        )  # fmt: skip

    def _reserve(self, slots: int) -> None:
        have = self.counts.shape[0]
        if slots <= have:
            return
        grown = max(slots, 2 * have, 720)  # an hour of slots at least
        self.counts, self.wait_hist, self.latency_hist = (
            np.concatenate((a, np.zeros((grown - have, a.shape[1]), dtype=a.dtype)))
            for a in (self.counts, self.wait_hist, self.latency_hist)
        )

    def per_interval(self, t_s: FloatArray) -> dict[str, FloatArray]:
        """The timeline's outcome columns for ticks at `t_s` (tick k ends interval k, which
        starts at t_s[0] * k: the engine ticks every t_s[0] seconds from the start)."""
        n = t_s.size
        if n == 0:
            return {}
        interval_s = float(t_s[0])
        slots = self.counts.shape[0]
        tick = np.floor(np.arange(slots) * SLOT_S / interval_s + 1e-9).astype(np.int64)
        counts = _per_tick(self.counts, tick, n)
        waits, latencies = _per_tick(self.wait_hist, tick, n), _per_tick(self.latency_hist, tick, n)
        columns: dict[str, FloatArray] = {
            "requests": counts[:, C_REQUESTS].astype(np.float64),
            "dropped": counts[:, C_DROPPED].astype(np.float64),
            "missed": counts[:, C_MISSED].astype(np.float64),
        }
        shares = sorted({*QUANTILES, *(t.share for t in self.targets)})
        for q in shares:
            name = f"p{q * 100:g}_s"
            columns[f"wait_{name}"] = bucket_quantile(q, self.wait_bounds, waits)
            columns[f"true_latency_{name}"] = bucket_quantile(q, self.latency_bounds, latencies)
        return columns


@njit(cache=True)
def _per_tick(a: Int32Array, tick: npt.NDArray[np.int64], n: int) -> npt.NDArray[np.int64]:
    """Rows of `a` summed by `tick` (one per row) into `n` rows, in int64: a tick with no row
    is 0 and rows at ticks outside [0, n) are left out (`np.add.at` over the rows inside).

    E.g. ticks (0, 0, 2, 3) of rows (1, 2, 4, 8), n 3: (3, 0, 4)."""
    out = np.zeros((n, a.shape[1]), dtype=np.int64)
    for r in range(a.shape[0]):
        k = tick[r]
        if 0 <= k < n:
            for c in range(a.shape[1]):
                out[k, c] += a[r, c]
    return out


def bucket_quantile(q: float, bounds_s: FloatArray, counts: npt.NDArray[np.int64]) -> FloatArray:
    """Row by row, Prometheus' histogram_quantile over buckets `le bounds_s[b]` and +Inf
    (`counts[:, b]` per bucket, not cumulative); inf in the +Inf bucket, NaN for an empty row.

    E.g. bounds (0, 0.5, 1), counts (90, 8, 1, 1), q 0.99: rank 99 falls in (0.5, 1], the
    99th of 99 there: 1.0 s."""
    cumulative = np.cumsum(counts, axis=1)
    total = cumulative[:, -1]
    rank = q * total
    b = np.argmax(cumulative >= rank[:, None], axis=1)
    rows = np.arange(counts.shape[0])
    below = np.where(b > 0, cumulative[rows, np.maximum(b - 1, 0)], 0)
    inside = counts[rows, b]
    top = bounds_s.size
    upper = np.append(bounds_s, math.inf)[b]
    lower = np.where(b > 0, np.append(0.0, bounds_s)[b], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(inside > 0, (rank - below) / inside, 1.0)
        value = np.where(b >= top, math.inf, lower + (upper - lower) * fraction)
    value = np.where(b == 0, bounds_s[0], value)  # the first bucket is `le 0`: no wait
    return np.where(total > 0, value, math.nan)
