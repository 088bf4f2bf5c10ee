"""Default replica bounds for a command-line run, sized from the load and the replica model.

In: a Profile and a ReplicaModel. Out: `Sizing`: `max_replicas` and `initial_replicas` for
`replicast simulate` / `compare` when the flags are not given, and how they were found (a
sentence for the header). A fixed default (100 replicas, 1 ready) sat at the cap on every
14-day run and started every run cold; these follow the load instead:

    busy(rate)       = rate_rps * mean service time / slots per replica   (replicas kept busy)
    max_replicas     = ceil(2 * busy(the busiest minute's mean rate)) + 4
    initial_replicas = max(1, ceil(busy(the first 5 minutes' mean rate) / 0.75))

Twice the peak (and 4 more, for the relatively larger bursts of a small fleet) leaves room for
a policy's headroom and for queues to drain; 75 % of the slots is where the built-in policies
aim (`simulator.cli.specs.default_spec`). The mean service time is drawn (a fixed seed, apart from
the run's streams) for the 5 minutes from the busiest minute, so token-based models see the
trace's own token counts. E.g. servegen-14d on gpu-llm: a peak of 583 req/s x 2 s / 8 slots =
146 busy replicas, max 295; the first 5 minutes at 213 req/s: 71 ready.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulator.model import ReplicaModel
from simulator.profiles import Profile

PEAK_WINDOW_S = 60.0  # a burst of the Azure code trace is 3x its busiest 5 minutes
WINDOW_S = 300.0
PEAK_FACTOR = 2.0
TARGET_UTILIZATION = 0.75
SPARE_REPLICAS = 4
FALLBACK_MAX_REPLICAS = 100  # when the profile cannot tell its rate (e.g. MMPP bursts)


@dataclass(frozen=True, slots=True)
class Sizing:
    max_replicas: int
    initial_replicas: int
    peak_rps: float
    first_rps: float
    mean_service_s: float

    @property
    def known(self) -> bool:
        return not math.isnan(self.peak_rps)

    @property
    def max_how(self) -> str:
        """`max_replicas 295 (2 x the busiest minute: 583 req/s x 2 s per request, + 4)`."""
        if not self.known:
            return f"max_replicas {self.max_replicas} (the profile cannot tell its peak rate)"
        return (
            f"max_replicas {self.max_replicas} (2 x the busiest minute: {self.peak_rps:.4g} "
            f"req/s x {self.mean_service_s:.3g} s per request, + 4)"
        )

    @property
    def initial_how(self) -> str:
        """`71 ready at the start (the first 5 min at 212.8 req/s, 75 % busy)`."""
        if not self.known:
            return f"{self.initial_replicas} ready at the start"
        return (
            f"{self.initial_replicas} ready at the start (the first 5 min at "
            f"{self.first_rps:.4g} req/s, 75 % busy)"
        )


def window_rates_rps(profile: Profile, window_s: float = WINDOW_S) -> np.ndarray:
    """The expected mean rate of each `window_s` window (NaN where the profile cannot tell)."""
    width = min(window_s, profile.duration_s)
    starts = np.arange(0.0, profile.duration_s, width)
    ends = np.minimum(starts + width, profile.duration_s)
    counts = [profile.expected_requests(a, b) for a, b in zip(starts, ends, strict=True)]
    return np.asarray(counts, dtype=np.float64) / (ends - starts)


def size(profile: Profile, model: ReplicaModel) -> Sizing:
    """The default bounds for `profile` on `model` (see the module docstring)."""
    rates, minutes = window_rates_rps(profile), window_rates_rps(profile, PEAK_WINDOW_S)
    if rates.size == 0 or np.isnan(rates).any() or np.isnan(minutes).any():
        return Sizing(FALLBACK_MAX_REPLICAS, 1, math.nan, math.nan, math.nan)
    peak = int(np.argmax(minutes))
    peak_rps = float(minutes[peak])
    mean_service_s = _mean_service_s(profile, model, peak * min(PEAK_WINDOW_S, profile.duration_s))
    slots = model.slots_per_replica

    def busy(rate_rps: float) -> float:
        return rate_rps * mean_service_s / slots

    max_replicas = math.ceil(PEAK_FACTOR * busy(peak_rps) - 1e-9) + SPARE_REPLICAS
    initial = max(1, math.ceil(busy(float(rates[0])) / TARGET_UTILIZATION - 1e-9))
    return Sizing(
        max_replicas, min(initial, max_replicas), peak_rps, float(rates[0]),
        mean_service_s,
    )  # fmt: skip


def _mean_service_s(profile: Profile, model: ReplicaModel, start_s: float) -> float:
    rng = np.random.default_rng(0)
    start_s = max(0.0, min(start_s, profile.duration_s - WINDOW_S))
    window = profile.slice(start_s, min(profile.duration_s, start_s + WINDOW_S))
    arrivals = window.arrivals(rng)
    if len(arrivals) == 0:
        return 0.0
    return float(np.mean(model.draw_service_s(arrivals, rng)))
