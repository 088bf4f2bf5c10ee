"""Per-request outcomes folded into fixed-size counts in one compiled pass.

In: the settled requests of a chunk (arrival, service, start; start NaN = dropped) and an SLO
threshold. Out: updated counts (requests, dropped, within the SLO) and a log-spaced histogram
of positive waits (`simulator.result.LogHistogram`'s bins). Called by `simulator.engine` before
each carry-over, so memory never grows with the number of requests.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numba import njit

FloatArray = npt.NDArray[np.float64]


@njit(cache=True)
def fold_outcomes(
    arrival_s: FloatArray,
    service_s: FloatArray,
    start_s: FloatArray,
    threshold_s: float,
    on_wait: bool,
    wait_counts: npt.NDArray[np.int64],
    low: float,
    per_log: float,
) -> tuple[int, int]:
    """Add the waits to `wait_counts`; return (dropped, within the threshold)."""
    dropped = 0
    within = 0
    top = wait_counts.size - 1
    for i in range(arrival_s.size):
        start = start_s[i]
        if math.isnan(start):
            dropped += 1
            continue
        wait = start - arrival_s[i]
        measured = wait if on_wait else wait + service_s[i]
        if measured <= threshold_s:
            within += 1
        if wait > 0.0:
            b = math.floor(math.log(wait / low) * per_log) + 1
            wait_counts[min(max(b, 0), top)] += 1
        else:
            wait_counts[0] += 1
    return dropped, within
