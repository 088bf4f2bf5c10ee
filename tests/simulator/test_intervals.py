"""Per-interval outcome columns read from bucket histograms as Prometheus reads them."""

from __future__ import annotations

import math

import numpy as np

from simulator.intervals import ArrivalSlots, bucket_quantile
from simulator.result import SloTarget


def test_a_quantile_is_read_linearly_inside_its_bucket_and_inf_past_the_top() -> None:
    bounds = np.array([0.0, 0.5, 1.0])
    counts = np.array([[90, 8, 1, 1], [0, 0, 0, 0], [0, 0, 0, 5]])
    # rank 99 is the 1st of 1 in (0.5, 1]: its top; an empty row is NaN; all dropped is inf
    got = bucket_quantile(0.99, bounds, counts)
    assert got[0] == 1.0 and math.isnan(got[1]) and got[2] == math.inf


def test_an_slo_threshold_is_a_bucket_bound_so_its_side_is_exact() -> None:
    # 100 requests in the first 15 s interval: 98 with no wait, 2 waiting exactly the 1.25 s
    # target (within it), then one waiting 1.375 s in the second interval
    slots = ArrivalSlots([SloTarget(1.25, "wait", 0.99)])
    arrival = np.concatenate((np.arange(100) * 0.125, [20.0]))
    start = arrival + np.concatenate((np.zeros(98), [1.25, 1.25], [1.375]))
    slots.fold(arrival, np.ones_like(arrival), start)
    columns = slots.per_interval(np.array([15.0, 30.0]))
    assert list(columns["requests"]) == [100.0, 1.0] and list(columns["missed"]) == [0.0, 1.0]
    assert columns["wait_p99_s"][0] <= 1.25 < columns["wait_p99_s"][1]
    assert int(slots.met[0]) == 100
