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
    """The sizing alone: no scale-down delay unless a test asks for one."""
    spec = {
        "policy": "slo", "latency_target_s": 2.5, "slots_per_replica": 8, "max_replicas": 50,
        "scale_down_delay_s": 0,
    }  # fmt: skip
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
    record = slo().step(obs)
    assert record.proposal == hand_replicas(rate, 2.0, 8, 0.95, 2.5)
    assert record.details["predicted_latency_s"] <= 2.5
    assert record.details["observed_latency_s"] == pytest.approx(2 * math.log(20))


def test_worked_case_ten_rps_needs_four_replicas() -> None:
    # a = 20 on 24 servers waits: C = 0.298 > 0.05, t95 = ln(0.298/0.05) / 2 = 0.89 s > 0.5 s;
    # 32 servers: C < 0.05 -> no wait at p95
    obs = Observation(now_s=T0, replicas=1, ready_replicas=1, request_rate_rps=10, in_flight=20)
    assert slo(service_cv=1).step(obs).proposal == 4


def test_a_rise_acts_at_once_and_a_fall_follows_the_smoothed_rate() -> None:
    a = slo(service_time_s=2.0, service_cv=1.0, window_s=60)
    base = {"ready_replicas": 4, "in_flight": None}
    assert a.step(Observation(now_s=T0, replicas=4, request_rate_rps=10, **base)).proposal == 4
    up = a.step(Observation(now_s=T0 + 15, replicas=4, request_rate_rps=40, **base))
    assert up.proposal == hand_replicas(40, 2.0, 8, 0.95, 2.5)  # the latest rate, not the mean
    down = a.step(Observation(now_s=T0 + 30, replicas=12, request_rate_rps=10, **base))
    assert down.proposal > 4  # the smoothed rate is still well above 10


def test_infeasible_target_sizes_for_no_waiting_and_says_so() -> None:
    obs = Observation(now_s=T0, replicas=1, ready_replicas=1, request_rate_rps=10, in_flight=20)
    record = slo(latency_target_s=1.0).step(obs)
    assert record.proposal_reason.startswith("SLOInfeasible")
    assert record.proposal == 4


def test_missing_rate_holds_and_blocks_scale_down() -> None:
    record = slo().step(Observation(now_s=T0, replicas=6, ready_replicas=6, in_flight=3))
    assert record.replicas == 6


def test_conformance() -> None:
    check_policy(FACTORY)


def test_a_wait_target_sizes_on_the_queueing_delay_alone() -> None:
    # a = 20 erlangs, 8 slots: 24 servers wait at p99: ln(0.298 / 0.01) / 2 = 1.70 s > 1 s;
    # 32 servers: C(32, 20) = 0.009 <= 0.01 -> no wait at p99
    obs = Observation(now_s=T0, replicas=1, ready_replicas=1, request_rate_rps=10, in_flight=20)
    a = autoscaler(
        {"policy": "slo", "wait_target_s": 1.0, "percentile": 0.99, "slots_per_replica": 8,
         "service_cv": 1.0, "max_replicas": 50, "scale_down_delay_s": 0}
    )  # fmt: skip
    record = a.step(obs)
    assert record.proposal == 4
    assert "wait" in record.proposal_reason


def test_exactly_one_target_is_required() -> None:
    with pytest.raises(ValueError, match="set exactly one of latency_target_s"):
        autoscaler({"policy": "slo", "slots_per_replica": 8, "max_replicas": 5})


def test_a_backlog_is_sized_to_drain_within_backlog_drain_s() -> None:
    # 10 req/s at 2 s needs 4 replicas; 600 queued drained in 60 s adds 10 req/s: 20 req/s
    obs = Observation(
        now_s=T0, replicas=4, ready_replicas=4, request_rate_rps=10, in_flight=20, queue_depth=600
    )
    record = slo(service_time_s=2.0, service_cv=1.0).step(obs)
    assert record.proposal == hand_replicas(20, 2.0, 8, 0.95, 2.5)
    assert record.details["rate_rps"] == 20


def test_a_saturated_target_does_not_teach_it_a_short_service_time() -> None:
    a = slo(service_cv=1.0, window_s=15)
    calm = {"ready_replicas": 4, "request_rate_rps": 10.0, "queue_depth": 0.0}
    a.step(Observation(now_s=T0, replicas=4, in_flight=20.0, **calm))
    a.step(Observation(now_s=T0 + 15, replicas=4, in_flight=20.0, **calm))  # E[S] = 2 s, counted
    # saturated: 32 in service, 400 queued; in_flight / rate = 3.2 s is not E[S] any more
    busy = {"ready_replicas": 4, "request_rate_rps": 10.0, "queue_depth": 400.0}
    record = a.step(Observation(now_s=T0 + 60, replicas=4, in_flight=32.0, **busy))
    assert record.details["service_s"] == 2.0


def test_little_s_law_counts_only_once_the_load_has_been_calm_for_the_window() -> None:
    # a sudden start: 3 warm replicas take 42 requests while rate() has seen 0.93 req/s of a
    # 6 req/s load (the Azure conversation trace's first tick); 42 / 0.93 = 45 s is the rate
    # window's lag, not E[S] (8.5 s here), and must not outlive the transient in a mean
    a = slo(service_cv=1.0, window_s=60, slots_per_replica=16)
    seen = []
    for t, in_flight, rate in [(15, 42, 0.93), (30, 41, 2.11), (45, 51, 6.0)]:
        obs = Observation(
            now_s=T0 + t, replicas=4, ready_replicas=4, request_rate_rps=rate,
            in_flight=in_flight, queue_depth=0.0,
        )  # fmt: skip
        seen.append(a.step(obs).details["service_s"])
    assert seen == [42 / 0.93, 41 / 2.11, 8.5]  # the newest guess while none counts
    before = a.state["policy_state"]["service_samples"]
    for t in range(60, 90, 15):  # calm since t = 15: counted from t = 75 on
        obs = Observation(
            now_s=T0 + t, replicas=4, ready_replicas=4, request_rate_rps=6.0,
            in_flight=48.0, queue_depth=0.0,
        )  # fmt: skip
        record = a.step(obs)
    assert before == 0 and a.state["policy_state"]["service_samples"] == 1
    assert record.details["service_s"] == 8.0  # the first counted sample, alone


def test_requests_a_drained_backlog_left_in_service_do_not_count() -> None:
    a = slo(service_cv=1.0, window_s=30, slots_per_replica=8)
    steady = {"replicas": 8, "ready_replicas": 8, "request_rate_rps": 10.0}
    for t in range(0, 60, 15):  # calm from t = 0: counted at t = 30 and 45
        a.step(Observation(now_s=T0 + t, in_flight=20.0, queue_depth=0.0, **steady))
    cal = a.state["policy_state"]
    assert cal["service_samples"] == 2 and cal["service_s"] == 2.0
    a.step(Observation(now_s=T0 + 60, in_flight=64.0, queue_depth=300.0, **steady))
    # the backlog moved into service: 60 in flight at 10 req/s is not a 6 s service time
    record = a.step(Observation(now_s=T0 + 75, in_flight=60.0, queue_depth=0.0, **steady))
    assert record.details["service_s"] == 2.0
    assert a.state["policy_state"]["service_samples"] == 2
    # 2 E[S] of calm later the backlog is served, and Little's law counts again
    record = a.step(Observation(now_s=T0 + 90, in_flight=23.0, queue_depth=0.0, **steady))
    assert a.state["policy_state"]["service_samples"] == 3
    assert record.details["service_s"] == pytest.approx(2.0 + (2.3 - 2.0) / 3)


def test_no_scale_down_within_the_delay_of_starting() -> None:
    # like HPA's initial recommendation: the count found at the first tick holds for the delay
    a = slo(service_time_s=2.0, service_cv=1.0, scale_down_delay_s=120)
    low = {"ready_replicas": 9, "request_rate_rps": 1.0}
    assert a.step(Observation(now_s=T0, replicas=9, **low)).proposal == 9
    assert a.step(Observation(now_s=T0 + 105, replicas=9, **low)).proposal == 9
    assert a.step(Observation(now_s=T0 + 120, replicas=9, **low)).proposal == 1


def test_scale_down_waits_until_the_smaller_size_sufficed_for_the_whole_delay() -> None:
    a = slo(service_time_s=2.0, service_cv=1.0, window_s=1e-6, scale_down_delay_s=60)
    seen = []
    for t, rate in [(0, 40.0), (15, 10.0), (30, 10.0), (45, 10.0), (60, 10.0)]:
        obs = Observation(now_s=T0 + t, replicas=11, ready_replicas=11, request_rate_rps=rate)
        seen.append(a.step(obs).proposal)
    high, low = hand_replicas(40, 2.0, 8, 0.95, 2.5), hand_replicas(10, 2.0, 8, 0.95, 2.5)
    # the size for 40 req/s (at 0 s) stays in the 60 s window until 60 s
    assert seen == [high, high, high, high, low]
