"""HPA traces: each test replays a short story and checks every step against Kubernetes' math.

The anchor is k8s.io/kubernetes pkg/controller/podautoscaler (replica_calculator.go and
horizontal.go); numbers in comments are worked by hand from that code.
"""

from __future__ import annotations

from typing import Any

import pytest

from policies import Observation, autoscaler

T0 = 1_700_000_000.0


def hpa(**extra: Any) -> Any:
    spec = {"policy": "hpa", "metric": "in_flight", "target_per_replica": 10, "max_replicas": 20}
    spec.update(extra)
    return autoscaler(spec)


def at(t: float, replicas: int, in_flight: float | None, **kw: Any) -> Observation:
    kw.setdefault("ready_replicas", replicas)
    return Observation(now_s=T0 + t, replicas=replicas, in_flight=in_flight, **kw)


def test_three_replicas_at_200_percent_go_to_six() -> None:
    record = hpa().step(at(0, 3, in_flight=60))  # 20 per replica against 10
    assert (record.proposal, record.replicas) == (6, 6)
    assert record.reason == "in_flight above target"


def test_milli_units_with_integer_division_give_13_not_14() -> None:
    # 130000 milli // 3 = 43333; 43333 / 10000 = 4.3333; ceil(4.3333 * 3) = ceil(12.9999) = 13
    record = hpa().step(at(0, 3, in_flight=130))
    assert record.proposal == 13
    assert record.details["metrics"]["in_flight"]["average"] == pytest.approx(43.333)


@pytest.mark.parametrize(
    ("in_flight", "ratio"),
    [(31.5, 1.05), (33, 1.1), (27, 0.9)],
    ids=["ratio-1.05", "ratio-exactly-1.1", "ratio-exactly-0.9"],
)
def test_ratio_inside_the_tolerance_band_holds(in_flight: float, ratio: float) -> None:
    record = hpa().step(at(0, 3, in_flight=in_flight))
    assert record.details["metrics"]["in_flight"]["ratio"] == pytest.approx(ratio)
    assert record.replicas == 3


def test_ratio_just_outside_the_band_scales() -> None:
    record = hpa().step(at(0, 3, in_flight=33.03))  # 11010 milli per replica: ratio 1.101
    assert record.replicas == 4


def test_scale_up_under_default_behavior_goes_1_5_10_20_at_0_15_30() -> None:
    a = hpa()
    replicas, seen = 1, []
    for t in (0, 15, 30, 45):
        # far more load than 20 replicas can carry; new replicas are ready at once
        record = a.step(at(t, replicas, in_flight=10_000))
        seen.append(record.replicas)
        replicas = record.replicas
    assert seen == [5, 10, 20, 20]  # max(+4 pods, +100 %) per 15 s, then max_replicas


def test_scale_up_within_the_same_period_counts_earlier_events() -> None:
    a = hpa()
    assert a.step(at(0, 1, in_flight=10_000)).replicas == 5
    # 10 s later the +4 event is still inside the 15 s period: the period started at 1 replica
    assert a.step(at(10, 5, in_flight=10_000)).replicas == 5
    # at exactly 15 s it is not ("strictly after now - period")
    assert a.step(at(15, 5, in_flight=10_000)).replicas == 10


def steady(a: Any, replicas: int, load: float, times: range) -> list[int]:
    out = []
    for t in times:
        record = a.step(at(t, replicas, in_flight=load))
        out.append(record.replicas)
        replicas = record.replicas
    return out


def test_dip_is_held_until_old_recommendations_leave_the_window_and_released_exactly_then() -> None:
    a = hpa()
    # ten replicas carry their target load from 0 s to 300 s: every recommendation is 10
    assert steady(a, 10, 100, range(0, 301, 15)) == [10] * 21
    # the load falls to 40 (wants 4): held at 10 while any 10 is inside the 300 s window
    held = steady(a, 10, 40, range(315, 586, 15))
    assert held == [10] * len(held)
    # the last 10 was recommended at 300 s; at 600 s it is no longer strictly after 600-300
    record = a.step(at(600, 10, in_flight=40))
    assert record.replicas == 4
    assert record.guards == ()


def test_pods_1_per_60s_scale_down_steps_10_to_9_and_holds_9_until_60s_later() -> None:
    behavior = {
        "scaleDown": {
            "stabilizationWindowSeconds": 0,
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
        }
    }
    a = hpa(behavior=behavior)
    seen = steady(a, 10, 50, range(0, 61, 15))  # 50 in flight wants 5
    assert seen == [9, 9, 9, 9, 8]


def test_starting_replicas_count_at_zero_usage_on_scale_up() -> None:
    # 3 ready + 3 starting, 90 in flight: ready-only ratio 3.0, with starting 90000 // 6 = 15000
    # -> ratio 1.5 -> ceil(1.5 * 6) = 9
    record = hpa().step(at(0, 6, in_flight=90, ready_replicas=3, starting_replicas=3))
    assert record.proposal == 9


def test_recomputation_with_starting_replicas_that_flips_direction_holds() -> None:
    # 2 ready + 4 starting, 30 in flight: ready-only ratio 1.5 (up) but 30000 // 6 -> 0.5 (down)
    record = hpa().step(at(0, 6, in_flight=30, ready_replicas=2, starting_replicas=4))
    assert (record.proposal, record.replicas) == (6, 6)


def test_scale_down_ignores_starting_replicas() -> None:
    # ratio < 1: HPA computes on ready replicas only: 10000 // 4 = 2500 -> ceil(0.25 * 4) = 1
    a = hpa(behavior={"scaleDown": {"stabilizationWindowSeconds": 0}})
    record = a.step(at(0, 6, in_flight=10, ready_replicas=4, starting_replicas=2))
    assert record.proposal == 1


def test_no_ready_replica_is_a_failed_metric_and_holds() -> None:
    record = hpa().step(at(0, 3, in_flight=50, ready_replicas=0, starting_replicas=3))
    assert record.replicas == 3
    assert record.reason.startswith("FailedGetMetrics")


def test_several_metrics_take_the_max_before_stabilization() -> None:
    a = autoscaler(
        {
            "policy": "hpa",
            "max_replicas": 50,
            "metrics": [
                {"signal": "in_flight", "target_per_replica": 10},
                {"signal": "queue_depth", "target_per_replica": 2},
            ],
        }
    )
    record = a.step(at(0, 4, in_flight=50, queue_depth=24))  # wants 5 and 12
    assert (record.proposal, record.replicas) == (12, 8)  # +100 % per 15 s caps it at 8
    assert record.proposal_reason == "queue_depth above target"


def test_a_missing_metric_scales_up_on_the_others_but_never_down() -> None:
    spec = {
        "policy": "hpa",
        "max_replicas": 50,
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}},
        "metrics": [
            {"signal": "in_flight", "target_per_replica": 10},
            {"signal": "queue_depth", "target_per_replica": 2},
        ],
    }
    up = autoscaler(spec).step(at(0, 4, in_flight=80, queue_depth=None))
    assert up.replicas == 8
    down = autoscaler(spec).step(at(0, 4, in_flight=10, queue_depth=None))
    assert down.replicas == 4
    assert down.reason.startswith("InvalidMetrics")


def test_target_at_zero_replicas_is_left_alone_when_min_is_above_zero() -> None:
    record = hpa().step(at(0, 0, in_flight=500))
    assert record.replicas == 0
    assert record.reason.startswith("ScalingDisabled")


def test_replicas_above_max_are_brought_down_at_once_without_rate_limits() -> None:
    record = hpa(max_replicas=5).step(at(0, 40, in_flight=400))
    assert record.replicas == 5
    assert [g.name for g in record.guards] == ["bounds"]


def test_per_direction_tolerance_from_behavior() -> None:
    # Kubernetes 1.33 behavior.scaleUp.tolerance: a 5 % rise already scales up
    a = hpa(behavior={"scaleUp": {"tolerance": "50m"}})
    assert a.step(at(0, 10, in_flight=106)).proposal == 11  # ratio 1.06 > 1.05
    # scale-down keeps the default 10 %: ratio 0.95 holds
    assert (
        hpa(behavior={"scaleUp": {"tolerance": 0.05}}).step(at(0, 10, in_flight=95)).proposal == 10
    )


def test_external_average_value_divides_the_total_by_the_target() -> None:
    # replica_calculator GetExternalPerPodMetricReplicas: ratio 1000 / (150 * 5) = 1.33,
    # outside the band -> ceil(1000 / 150) = 7
    a = autoscaler(
        {
            "policy": "hpa",
            "max_replicas": 50,
            "metrics": [
                {"signal": "request_rate_rps", "type": "External", "target_per_replica": 150}
            ],
        }
    )
    assert a.step(at(0, 5, in_flight=None, request_rate_rps=1000)).proposal == 7


def test_value_target_multiplies_the_ratio_by_ready_replicas() -> None:
    a = autoscaler(
        {"policy": "hpa", "max_replicas": 50, "metric": "queue_depth", "target_value": 100}
    )
    assert a.step(at(0, 2, in_flight=None, queue_depth=250)).proposal == 5  # ceil(2.5 * 2)


def test_select_policy_min_picks_the_smaller_change() -> None:
    behavior = {"scaleUp": {"selectPolicy": "Min"}}
    record = hpa(behavior=behavior).step(at(0, 10, in_flight=1000))
    assert record.replicas == 14  # min(+4 pods, +100 %)


def test_select_policy_disabled_never_scales_that_way() -> None:
    record = hpa(behavior={"scaleUp": {"selectPolicy": "Disabled"}}).step(at(0, 3, in_flight=300))
    assert record.replicas == 3
