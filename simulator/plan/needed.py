"""Replicas needed over time from the queueing model: the plan's screen and its lower bound.

In: a profile, a replica model (a SKU's), an SLO. Out: per window (10 minutes by default) the
fewest replicas whose wait meets the SLO by Erlang-C with the Allen-Cunneen correction
(`policies.queueing.smallest_servers`: c = replicas x slots servers, mean service time and its
squared coefficient of variation measured on a sample of the profile's own requests, arrivals
Poisson or as bursty as the profile says). A latency SLO (arrival to completion) is met, in this
screen, when the wait meets the threshold minus the service time's quantile at the SLO's share
(conservative: both tails at once); a SKU whose service time alone exceeds the threshold cannot
meet it at any size. Exact for M/M/c; an approximation otherwise, checked by simulation for the
finalists (simulator/plan/build.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from policies.queueing import smallest_servers
from simulator.model import ReplicaModel
from simulator.profiles import Profile
from simulator.result import SloTarget
from simulator.sizing import window_rates_rps

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
WINDOW_S = 600.0
SAMPLE_REQUESTS = 20_000


@dataclass(frozen=True)
class ServiceStats:
    """A replica's service time on this profile's requests: mean, SCV, and the quantile at
    the SLO's share (for a latency SLO)."""

    mean_s: float
    scv: float
    quantile_s: float
    share: float


def service_stats(
    profile: Profile, model: ReplicaModel, share: float, seed: int = 0
) -> ServiceStats:
    """Measured on up to SAMPLE_REQUESTS requests drawn from the profile's first hours."""
    rng = np.random.default_rng(seed)
    mean_rps = profile.expected_requests(0.0, profile.duration_s) / profile.duration_s
    span = min(profile.duration_s, max(3600.0, SAMPLE_REQUESTS / max(mean_rps, 1e-9)))
    arrivals = profile.slice(0.0, span).arrivals(rng)
    if len(arrivals) == 0:
        return ServiceStats(math.nan, math.nan, math.nan, share)
    service = model.draw_service_s(arrivals, rng)[:SAMPLE_REQUESTS]
    mean = float(np.mean(service))
    scv = float(np.var(service) / mean**2) if mean > 0 else 0.0
    return ServiceStats(mean, scv, float(np.quantile(service, share)), share)


def window_rates(profile: Profile, window_s: float = WINDOW_S) -> tuple[FloatArray, FloatArray]:
    """(window starts, expected mean rate in each) over the whole profile."""
    starts = np.arange(0.0, profile.duration_s, min(window_s, profile.duration_s))
    return starts, window_rates_rps(profile, window_s)


def arrival_scv(profile: Profile, starts: FloatArray) -> FloatArray:
    """The squared coefficient of variation of inter-arrival times in each window (1: Poisson;
    a rate series' `interarrival_cv` column where it has one)."""
    cv = getattr(profile, "cv", None)
    edges = getattr(profile, "edges_s", None)
    if cv is None or edges is None:
        return np.ones_like(starts)
    index = np.clip(np.searchsorted(edges, starts, side="right") - 1, 0, len(cv) - 1)
    return np.asarray(cv, dtype=np.float64)[index] ** 2


def wait_target_s(slo: SloTarget, stats: ServiceStats) -> float:
    """The wait the screen holds to: the SLO's, or for a latency SLO what its service leaves."""
    if slo.on == "wait":
        return slo.threshold_s
    return slo.threshold_s - stats.quantile_s


def replicas_needed(
    rates: FloatArray,
    stats: ServiceStats,
    slo: SloTarget,
    slots: int,
    scv_arrivals: FloatArray | None = None,
    limit: int = 100_000,
) -> IntArray:
    """The fewest replicas per window meeting the SLO (`limit` + 1 where none can: a latency
    target the service time alone exceeds, or more than `limit` replicas)."""
    target = wait_target_s(slo, stats)
    out = np.zeros(len(rates), dtype=np.int64)
    if not target > 0 or not math.isfinite(stats.mean_s):
        out[:] = limit + 1
        return out
    scv_a = np.ones_like(rates) if scv_arrivals is None else scv_arrivals
    cache: dict[tuple[float, float], int] = {}
    for i, (rate, ca2) in enumerate(zip(rates, scv_a, strict=True)):
        if not rate > 0:
            continue
        key = (round(float(rate), 3), round(float(ca2), 2))
        if key not in cache:
            variability = (float(ca2) + stats.scv) / 2.0
            servers, wait = smallest_servers(
                float(rate),
                stats.mean_s,
                slo.share,
                target,
                variability=max(variability, 1e-6),
                step=slots,
                limit=limit * slots,
            )
            cache[key] = servers // slots if math.isfinite(wait) and wait <= target else limit + 1
        out[i] = cache[key]
    return out
