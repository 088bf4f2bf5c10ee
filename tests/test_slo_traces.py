"""`slo`: Erlang-C sizing on the observed rate, calibrated online."""

from __future__ import annotations

import math
from typing import Any

import pytest

from policies import Observation, autoscaler
from policies.slo import FACTORY
from policies.testing import check_policy
from tests.test_queueing import erlang_c_by_sums

T0 = 1_700_000_000.0


def slo(**extra: Any) -> Any:
    spec = {"policy": "slo", "latency_target_s": 2.5, "slots_per_replica": 8, "max_replicas": 50}
    spec.update(extra)
    return autoscaler(spec)


def hand_replicas(rate: float, service: float, slots: int, q: float, target: float) -> int:
    """Smallest n with E[S] + t_q <= target, t_q = ln(C / (1 - q)) / (c / E[S] - rate)."""
    n = 1
    while True:
        c = n * slots
        a = rate * service
        if c > a:
            prob = erlang_c_by_sums(c, a)
            t_q = 0.0 if prob <= 1 - q else math.log(prob / (1 - q)) / (c / service - rate)
            if service + t_q <= target:
                return n
        n += 1


@pytest.mark.parametrize("rate", [1.0, 10.0, 37.0, 80.0])
def test_poisson_exponential_load_gets_the_hand_erlang_c_count(rate: float) -> None:
    # stationary: Little's law gives E[S] = in_flight / rate = 2 s; latencies say exponential
    obs = Observation(
        now_s=T0, replicas=3, ready_replicas=3, request_rate_rps=rate, in_flight=2.0 * rate,
        queue_depth=0, latency_p50_s=2 * math.log(2), latency_p95_s=2 * math.log(20),
    )  # fmt: skip
    record = slo().tick(obs)
    assert record.proposal == hand_replicas(rate, 2.0, 8, 0.95, 2.5)
    assert record.details["predicted_latency_s"] <= 2.5
    assert record.details["observed_latency_s"] == pytest.approx(2 * math.log(20))


def test_worked_case_ten_rps_needs_four_replicas() -> None:
    # a = 20 on 24 servers waits: C = 0.298 > 0.05, t95 = ln(0.298/0.05) / 2 = 0.89 s > 0.5 s;
    # 32 servers: C < 0.05 -> no wait at p95
    obs = Observation(now_s=T0, replicas=1, ready_replicas=1, request_rate_rps=10, in_flight=20)
    assert slo(service_cv=1).tick(obs).proposal == 4


def test_a_rise_acts_at_once_and_a_fall_follows_the_smoothed_rate() -> None:
    a = slo(service_time_s=2.0, service_cv=1.0, window_s=60)
    base = {"ready_replicas": 4, "in_flight": None}
    assert a.tick(Observation(now_s=T0, replicas=4, request_rate_rps=10, **base)).proposal == 4
    up = a.tick(Observation(now_s=T0 + 15, replicas=4, request_rate_rps=40, **base))
    assert up.proposal == hand_replicas(40, 2.0, 8, 0.95, 2.5)  # the latest rate, not the mean
    down = a.tick(Observation(now_s=T0 + 30, replicas=12, request_rate_rps=10, **base))
    assert down.proposal > 4  # the smoothed rate is still well above 10


def test_infeasible_target_sizes_for_no_waiting_and_says_so() -> None:
    obs = Observation(now_s=T0, replicas=1, ready_replicas=1, request_rate_rps=10, in_flight=20)
    record = slo(latency_target_s=1.0).tick(obs)
    assert record.proposal_reason.startswith("SLOInfeasible")
    assert record.proposal == 4


def test_missing_rate_holds_and_blocks_scale_down() -> None:
    record = slo().tick(Observation(now_s=T0, replicas=6, ready_replicas=6, in_flight=3))
    assert record.replicas == 6


def test_conformance() -> None:
    check_policy(FACTORY)


def test_a_wait_target_sizes_on_the_queueing_delay_alone() -> None:
    # a = 20 erlangs, 8 slots: 24 servers wait at p99: ln(0.298 / 0.01) / 2 = 1.70 s > 1 s;
    # 32 servers: C(32, 20) = 0.009 <= 0.01 -> no wait at p99
    obs = Observation(now_s=T0, replicas=1, ready_replicas=1, request_rate_rps=10, in_flight=20)
    a = autoscaler(
        {"policy": "slo", "wait_target_s": 1.0, "percentile": 0.99, "slots_per_replica": 8,
         "service_cv": 1.0, "max_replicas": 50}
    )  # fmt: skip
    record = a.tick(obs)
    assert record.proposal == 4
    assert "wait" in record.proposal_reason


def test_exactly_one_target_is_required() -> None:
    with pytest.raises(ValueError, match="set exactly one of latency_target_s"):
        autoscaler({"policy": "slo", "slots_per_replica": 8, "max_replicas": 5})
