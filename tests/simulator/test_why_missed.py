"""A run's summary says which SLO targets held and why a run missed (issue 15).

Short constant loads on the `gpu-llm` model (8 slots, 2 s mean service, 120 s cold start):
40 req/s keeps about 10 replicas busy.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator import profiles
from simulator.engine import run
from simulator.result import SloTarget, Summary

WAIT_1S = SloTarget(1.0, "wait", 0.99)
LOAD = profiles.constant(40.0, 900.0)


def hpa(max_replicas: int) -> dict[str, object]:
    return {"policy": "hpa", "metric": "in_flight", "target_per_replica": 6,
            "max_replicas": max_replicas}  # fmt: skip


def test_a_combined_slo_gives_each_target_its_own_figure_and_holds_only_when_all_do() -> None:
    # 16 replicas warm from the start: no wait at all, but the 2 s mean service puts the
    # p95 latency near 6 s, over a 3 s target
    both = (WAIT_1S, SloTarget(3.0, "latency", 0.95))
    s = run(LOAD, hpa(16), "gpu-llm", seed=1, slo=both, initial_replicas=16).summary
    assert s.slo == "wait <= 1 s for 99.0% and latency <= 3 s for 95.0%"
    assert s.slo_targets == ("wait <= 1 s for 99.0%", "latency <= 3 s for 95.0%")
    assert s.slo_met_each == (True, False) and s.slo_met is False
    wait_share, latency_share = s.slo_attainments
    assert wait_share == 1.0 and latency_share < 0.95
    wait_p99, latency_p95 = s.slo_quantiles_s
    assert wait_p99 == 0.0 and 4.0 < latency_p95 < 8.0
    # the combined attainment is the share within both
    assert s.slo_attainment == pytest.approx(latency_share)


def test_one_target_keeps_its_old_figures() -> None:
    s = run(LOAD, hpa(16), "gpu-llm", seed=1, slo=WAIT_1S, initial_replicas=16).summary
    assert s.slo == WAIT_1S.label and s.slo_attainment == 1.0 and s.slo_met is True
    assert s.why == ""


def cold_and_capped() -> Summary:
    # one replica ready, and a cap of 8 where the load needs about 10
    return run(LOAD, hpa(8), "gpu-llm", seed=1, slo=WAIT_1S, initial_replicas=1).summary


def test_a_run_that_started_cold_at_the_cap_says_so() -> None:
    s = cold_and_capped()
    assert s.slo_met is False
    assert s.started_cold and s.initial_replicas == 1 and s.first_asked > 1
    assert 120.0 <= s.warmup_s <= 150.0  # one 120 s cold start, seen at the next tick
    assert s.replica_cap == 8 and s.at_max_share > 0.4 and s.above_max_share > 0.25
    assert s.proposal_max > 8 and s.queue_max > 1000
    parts = (s.missed_cold_start, s.missed_at_max, s.missed_starting, s.missed_other)
    assert sum(parts) == s.missed and s.missed_cold_start > 0 and s.missed_at_max > 0
    assert "started cold: 1 ready" in s.why and "at max_replicas 8" in s.why
    assert s.warning.startswith("warning: hpa: max_replicas 8 binds: held max_replicas 8 for")
    assert f"the policy asked for up to {s.proposal_max}" in s.warning


def test_the_timeline_counts_each_intervals_requests_and_misses() -> None:
    result = run(LOAD, hpa(8), "gpu-llm", seed=1, slo=WAIT_1S, initial_replicas=1)
    tl, s = result.timeline, result.summary
    assert tl.requests.sum() == s.requests and tl.missed.sum() == s.missed
    assert np.all(tl.missed <= tl.requests)
    # the wait the SLO reads, per interval: far over 1 s once the queue has built up
    assert tl.wait_p99_s[-1] > 60.0 and tl.applied_replicas[-1] == 8
    assert tl.proposal[-1] > 8 and not math.isnan(tl.true_latency_p95_s[-1])
