"""KEDA traces: activation 0 -> 1, cooldown to 0, fallback, then HPA for 1 <-> N.

Anchor: kedacore/keda pkg/scaling/executor/scale_scaledobjects.go and pkg/fallback.
"""

from __future__ import annotations

from typing import Any

from policies import Observation, autoscaler

T0 = 1_700_000_000.0


def keda(**extra: Any) -> Any:
    spec = {
        "policy": "keda",
        "metric": "queue_depth",
        "threshold": 5,
        "activation_threshold": 2,
        "cooldown_s": 60,
        "max_replicas": 20,
    }
    spec.update(extra)
    return autoscaler(spec)


def at(t: float, replicas: int, queue: float | None) -> Observation:
    return Observation(now_s=T0 + t, replicas=replicas, ready_replicas=replicas, queue_depth=queue)


def test_goes_0_to_1_on_activation_and_not_before() -> None:
    a = keda()
    assert a.step(at(0, 0, queue=2)).replicas == 0  # 2 is not above the activation threshold
    record = a.step(at(15, 0, queue=3))
    assert record.replicas == 1
    assert record.reason.startswith("Activated")
    assert record.guards == ()  # the executor acts outside the HPA's behavior


def test_returns_to_0_only_after_the_cooldown() -> None:
    a = keda()
    assert a.step(at(0, 0, queue=30)).replicas == 1
    assert a.step(at(15, 1, queue=30)).replicas == 5  # HPA: ceil(30 / 5) = 6, +4 pods per 15 s
    # load stops: last active at 15 s. The HPA part never goes below 1 while cooling down.
    replicas = 5
    for t in range(30, 76, 15):
        replicas = a.step(at(t, replicas, queue=0)).replicas
        assert replicas >= 1, t
    # 15 + 60 = 75 is not strictly before 75: still cooling down at 75 s; at 90 s it is
    record = a.step(at(90, replicas, queue=0))
    assert record.replicas == 0
    assert record.reason.startswith("Deactivated")


def test_activity_during_cooldown_restarts_it() -> None:
    a = keda()
    a.step(at(0, 0, queue=30))
    a.step(at(15, 1, queue=0))
    a.step(at(60, 1, queue=10))  # active again at 60 s
    assert a.step(at(120, 1, queue=0)).replicas == 1  # 60 + 60 is not before 120
    assert a.step(at(135, 1, queue=0)).replicas == 0


def test_fallback_replicas_after_more_than_failure_threshold_failed_reads() -> None:
    a = keda(fallback={"failure_threshold": 2, "replicas": 6})
    assert a.step(at(0, 2, queue=10)).replicas == 2
    assert a.step(at(15, 2, queue=None)).replicas == 2  # failure 1
    assert a.step(at(30, 2, queue=None)).replicas == 2  # failure 2
    record = a.step(at(45, 2, queue=None))  # failure 3 > 2: reads as 6 x threshold
    assert (record.proposal, record.replicas) == (6, 6)
    assert a.step(at(60, 6, queue=10)).proposal == 2  # a good read ends the fallback


def test_a_failing_trigger_never_scales_to_zero() -> None:
    a = keda()
    assert a.step(at(0, 3, queue=None)).replicas == 3
    assert a.step(at(600, 3, queue=None)).replicas == 3


def test_never_active_target_goes_to_zero_at_once() -> None:
    # KEDA ignores the cooldown when LastActiveTime was never set
    assert keda().step(at(0, 4, queue=0)).replicas == 0


def test_min_replicas_above_zero_never_goes_to_zero() -> None:
    a = keda(min_replicas=2)
    assert a.step(at(0, 0, queue=0)).replicas == 2  # below min: raised at once
    assert a.step(at(600, 2, queue=0)).replicas == 2


def test_value_metric_type_uses_the_ratio_times_ready() -> None:
    a = keda(metric_type="Value", threshold=100)
    a.step(at(0, 0, queue=300))
    assert a.step(at(15, 2, queue=300)).proposal == 6  # ceil(300 / 100 * 2)
