"""The clairvoyant plan sized by simulation (simulator/clairvoyant.py) against a plain FCFS
reference, and the oracle that executes a plan with windows shorter than a cold start."""

from __future__ import annotations

import heapq

import numpy as np
import pytest

from simulator import profiles
from simulator.clairvoyant import _misses, sized_counts, smallest_count
from simulator.engine import DEFAULT_EPOCH_S
from simulator.model import ReplicaModel
from simulator.oracle import WindowOracle
from simulator.result import SloTarget

SLO = SloTarget(1.0, "wait", 0.99)


def reference_misses(arrival: np.ndarray, service: np.ndarray, servers: int, t: float) -> int:
    free = [0.0] * servers
    misses = 0
    for a, s in zip(arrival, service, strict=True):
        earliest = heapq.heappop(free)
        start = max(a, earliest)
        misses += start - a > t
        heapq.heappush(free, start + s)
    return misses


@pytest.mark.parametrize("servers", [1, 3, 8, 17])
def test_the_compiled_fcfs_counts_the_waits_a_plain_heap_does(servers: int) -> None:
    rng = np.random.default_rng(servers)
    arrival = np.cumsum(rng.exponential(0.1, 3000))
    service = rng.exponential(0.1 * servers * 0.95, 3000)
    assert _misses(arrival, service, servers, 0.5, True) == reference_misses(
        arrival, service, servers, 0.5
    )


def test_the_smallest_count_is_the_first_that_meets_the_slo() -> None:
    rng = np.random.default_rng(3)
    arrival = np.cumsum(rng.exponential(1 / 50, 30_000))  # 50 req/s x 2 s: 100 busy slots
    service = rng.exponential(2.0, arrival.size)
    n = smallest_count(arrival, service, 8, SLO, guess=40)
    allowed = int(0.01 * arrival.size)
    assert _misses(arrival, service, n * 8, 1.0, True) <= allowed
    assert _misses(arrival, service, (n - 1) * 8, 1.0, True) > allowed
    assert 13 <= n <= 20  # 100 busy slots of 8 a replica, with some headroom
    assert smallest_count(arrival, service, 8, SLO, guess=1) == n  # whatever the guess


def test_bursty_arrivals_need_more_replicas_than_poisson_ones_at_the_same_rate() -> None:
    model = ReplicaModel.from_spec(
        {
            "slots_per_replica": 8,
            "service": {"kind": "exponential", "mean_s": 2.0},
            "startup": {"fixed_s": 0.0},
        }
    )
    poisson = profiles.constant(50.0, 1200.0)
    bursty = profiles.bursty(50.0, 4.0, 1200.0)
    calm, burst = (sized_counts(p, model, SLO, 600.0) for p in (poisson, bursty))
    assert calm.size == burst.size == 2
    assert (burst > calm).all()
    assert (sized_counts(profiles.constant(0.0, 600.0), model, SLO, 600.0) == 1).all()


def test_the_oracle_covers_every_window_until_its_replicas_are_ready() -> None:
    # 60 s windows, a 300 s cold start: at t the plan must hold the largest count of
    # [t, t + 300], not only the count 300 s ahead.
    oracle = WindowOracle((1, 1, 9, 1, 1, 1, 1, 1), 60.0, DEFAULT_EPOCH_S, 300.0)
    assert oracle.count_within(0.0, 300.0) == 9  # window 2 starts within the cold start
    assert oracle.count_within(180.0, 300.0) == 1
    assert oracle.count_within(900.0, 300.0) == 1  # after the end: the last window's
