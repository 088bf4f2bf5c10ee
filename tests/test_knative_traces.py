"""Knative KPA traces: stable and panic windows, rate limits, scale to zero, 2 s and 15 s ticks.

Anchor: knative/serving pkg/autoscaler/scaling/autoscaler.go (Scale), pkg/autoscaler/aggregation
(1 s buckets, linear and weighted averages) and pkg/reconciler/autoscaling/kpa/scaler.go (scale
to zero). Every test uses target_per_replica 10 at the default utilization 0.7, so one pod
should carry 7 concurrent requests: 70 in flight wants 10 pods. Replicas become ready at once.
Numbers in comments are worked by hand from that code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest

from policies import Autoscaler, DecisionRecord, Observation, SpecError, autoscaler
from policies.knative import FACTORY
from policies.testing import check_policy

T0 = 1_700_000_000.0


def knative(**extra: Any) -> Autoscaler:
    spec = {"policy": "policies.knative:FACTORY", "target_per_replica": 10, "max_replicas": 100}
    spec.update(extra)
    return autoscaler(spec)


def at(t: float, replicas: int, in_flight: float | None, queue: float | None = 0.0) -> Observation:
    return Observation(
        now_s=T0 + t,
        replicas=replicas,
        ready_replicas=replicas,
        in_flight=in_flight,
        queue_depth=queue,
    )


def run(
    a: Autoscaler, load: Callable[[float], float], times: Iterable[float], replicas: int
) -> dict[float, DecisionRecord]:
    """A closed loop: each tick sees the count the previous one chose, all of it ready."""
    out = {}
    for t in times:
        record = a.step(at(t, replicas, load(t)))
        out[t] = record
        replicas = record.replicas
    return out


def test_the_policy_passes_the_conformance_suite() -> None:
    check_policy(FACTORY)


@pytest.mark.parametrize(
    ("spec", "signals", "want"),
    [
        ({"target_per_replica": 10}, {"in_flight": 70}, 10),  # 70 / 7 = 10 exactly
        ({"target_per_replica": 10}, {"in_flight": 71}, 11),  # ceil(10.14)
        ({"target_per_replica": 10}, {"in_flight": 60, "queue_depth": 11}, 11),  # 71 again
        ({"target_per_replica": 10}, {"in_flight": 0.5}, 1),
        ({"target_per_replica": 20}, {"in_flight": 140}, 10),  # 20 x 0.7 = 14 per pod
        ({"target_per_replica": 10, "target_utilization": 1.0}, {"in_flight": 71}, 8),
        ({"metric": "rps"}, {"request_rate_rps": 300}, 3),  # 200 x 0.7 = 140: ceil(2.14)
    ],
    ids=[
        "70-wants-10",
        "71-wants-11",
        "queued-requests-count",
        "half-a-request-wants-1",
        "target-20",
        "utilization-1",
        "rps-default-target-200",
    ],
)
def test_steady_load_wants_ceil_of_load_over_seventy_percent_of_target(
    spec: dict[str, Any], signals: dict[str, float], want: int
) -> None:
    a = autoscaler({"policy": "policies.knative:FACTORY", "max_replicas": 100, **spec})
    signals = {"queue_depth": 0.0, **signals}
    record = a.step(Observation(now_s=T0, replicas=want, ready_replicas=want, **signals))
    assert record.details["desired_stable_pods"] == want
    assert record.replicas == want


def test_ten_pods_at_their_target_stay_ten_through_the_initial_panic_and_after() -> None:
    # A new decider with more than one ready pod starts in panic mode (newAutoscaler): it holds
    # the 10 it found for a stable window, then stable mode asks for 70 / 7 = 10 as well.
    seen = run(knative(), lambda t: 70, range(0, 121, 2), replicas=10)
    assert {r.replicas for r in seen.values()} == {10}
    assert seen[60].details["panicking"]  # 0 + 60 is not before 60: still panicking
    assert not seen[62].details["panicking"]
    assert seen[120].reason.startswith("StableMode: stable concurrency 70 over 60 s")


def test_a_burst_over_twice_capacity_in_the_panic_window_panics_and_scales_up_at_once() -> None:
    seen = run(knative(), lambda t: 70 if t <= 120 else 300, range(0, 129, 2), replicas=10)
    # At 122 s two of the six panic buckets (121, 122) hold 300, four hold 70:
    # (4 x 70 + 2 x 300) / 6 = 146.67, ceil(146.67 / 7) = 21 pods, and 21 / 10 ready >= 200 %.
    burst = seen[122]
    assert burst.details["panic_value"] == pytest.approx(146.666667)
    assert burst.details["panicking"]
    assert burst.replicas == 21  # at once; the stable window alone would want 12:
    assert burst.details["desired_stable_pods"] == 12  # ceil((58 x 70 + 2 x 300) / 60 / 7)
    # The panic window fills: (2 x 70 + 4 x 300) / 6 = 223.3 -> 32, then 300 -> ceil(42.9) = 43.
    assert [seen[t].replicas for t in (124, 126, 128)] == [32, 43, 43]


def test_no_scale_down_while_panicking_until_a_stable_window_after_the_last_burst() -> None:
    # One 2-second spike of 300 at 122 s panics to 21 pods, then the load falls to 7 (one pod).
    seen = run(
        knative(),
        lambda t: 70 if t <= 120 else (300 if t <= 122 else 7),
        range(0, 193, 2),
        replicas=10,
    )
    assert seen[122].replicas == 21
    # From 124 s on, 18 / 21 is below the threshold: the panic time stays at 122 s. A minute
    # passes at 7 in flight (the stable window wants 1 pod by 182 s) - no scale-down in panic.
    held = [seen[t] for t in range(124, 183, 2)]
    assert {r.replicas for r in held} == {21}
    assert held[-1].details["desired_stable_pods"] == 1
    assert all(r.reason.startswith("PanicMode") for r in held)
    # 122 + 60 = 182 is not before 182; at 184 s panic ends and stable mode takes over.
    assert not seen[184].details["panicking"]


def test_max_scale_down_rate_two_halves_at_most_per_decision() -> None:
    seen = run(
        knative(),
        lambda t: 70 if t <= 120 else (300 if t <= 122 else 7),
        range(0, 195, 2),
        replicas=10,
    )
    # The stable window wants 1 pod, but each decision keeps floor(ready / 2): 21 -> 10 -> 5 ->
    # 2 -> 1, and floor(1 / 2) = 0 does not bind because 1 pod is wanted.
    assert [seen[t].replicas for t in range(184, 195, 2)] == [10, 5, 2, 1, 1, 1]
    assert "max_scale_down_rate" in seen[184].reason


def test_max_scale_up_rate_multiplies_ready_pods_at_most_per_decision() -> None:
    a = knative(max_scale_up_rate=2.0)
    # 700 in flight wants 100 pods; from 5 ready pods a decision may ask ceil(2 x 5) = 10.
    assert a.step(at(0, 5, 700)).replicas == 10
    assert a.step(at(2, 10, 700)).replicas == 20


def test_scale_to_zero_only_after_the_stable_window_empties_and_the_grace_period() -> None:
    seen = run(knative(), lambda t: 3 if t < 100 else 0, range(0, 191, 2), replicas=1)
    # The last 3 in flight was observed at 98 s (buckets 97-98). The stable window is all zeros
    # from 158 s (buckets 99..158): desired 0, the revision goes inactive and holds its pod.
    assert seen[156].replicas == 1
    assert seen[156].details["desired_stable_pods"] == 1
    assert seen[158].reason.startswith("ScaleToZeroGracePeriod: inactive for 0 s")
    assert seen[186].replicas == 1  # 28 s of the 30 s grace period
    assert seen[188].replicas == 0  # inactive for 30 s
    assert seen[188].reason.startswith("ScaleToZero")
    assert seen[190].replicas == 0


def test_traffic_during_the_grace_period_keeps_the_pod_and_restarts_it() -> None:
    seen = run(
        knative(),
        lambda t: 3 if t < 100 or t == 170 else 0,
        range(0, 261, 2),
        replicas=1,
    )
    assert seen[168].reason.startswith("ScaleToZeroGracePeriod: inactive for 10 s")
    # 3 in flight at 170 s (buckets 169-170): (2 x 3) / 60 = 0.1 -> 1 pod, active again.
    assert seen[170].replicas == 1
    assert seen[170].reason.startswith("StableMode")
    # The 170 s sample leaves the stable window at 230 s; the grace period starts over there.
    assert seen[228].details["desired_stable_pods"] == 1
    assert seen[230].reason.startswith("ScaleToZeroGracePeriod: inactive for 0 s")
    assert seen[258].replicas == 1
    assert seen[260].replicas == 0


def test_activation_scale_on_the_way_up_from_zero() -> None:
    a = knative(activation_scale=3, initial_scale=0)
    assert a.step(at(0, 0, in_flight=0)).replicas == 0
    assert a.step(at(30, 0, in_flight=0)).replicas == 0
    # One request is buffered (queued; nothing runs at zero): buckets 31-32 hold 1 among the
    # 33 held (0..32 s), 2 / 33 = 0.06 -> ceil(0.06 / 7) = 1 pod, raised to activation_scale 3.
    record = a.step(at(32, 0, in_flight=0, queue=1))
    assert record.details["desired_stable_pods"] == 1
    assert record.replicas == 3
    # Later, a trickle that one pod could carry still gets 3 pods, never 1 or 2.
    assert a.step(at(34, 3, in_flight=1)).replicas == 3


def test_initial_scale_is_a_floor_until_that_many_pods_were_ready() -> None:
    a = knative()  # initial_scale 1, as Knative's config-autoscaler
    record = a.step(at(0, 0, in_flight=0))
    assert (record.replicas, record.reason) == (1, "InitialScale: at least 1 pods")
    assert a.step(at(2, 1, in_flight=0)).replicas == 1  # initialized now: desired 0 from here
    assert a.step(at(4, 1, in_flight=0)).reason.startswith("ScaleToZeroGracePeriod")


def test_scale_down_delay_holds_the_highest_count_of_the_last_delay_seconds() -> None:
    def load(t: float) -> float:
        return 35 if t <= 120 else 7

    plain = run(knative(), load, range(0, 171, 2), replicas=5)
    delayed = run(knative(scale_down_delay_s=20), load, range(0, 171, 2), replicas=5)
    # 35 -> 7 in flight: the stable average falls by 28 / 60 per second, 4 pods are enough at
    # 136 s (avg 27.53), 3 at 150 s (avg 21). The last 5 was wanted at 134 s (2 s bucket 67);
    # it leaves the 10-bucket window at bucket 77 (154 s); the last 4 (148 s) at 168 s.
    assert (plain[136].replicas, plain[150].replicas) == (4, 3)
    assert [delayed[t].replicas for t in (136, 152, 154, 166, 168)] == [5, 5, 4, 4, 3]
    assert delayed[136].reason.startswith("ScaleDownDelay")


def test_weighted_exponential_aggregation_weighs_the_newest_bucket_most() -> None:
    a = knative(aggregation="weighted-exponential")
    # Stable window 60 buckets: 1 - 0.0001 ** (1/60) = 0.142 < 0.2, so c = 0.2; panic window
    # 6 buckets: c = 1 - 0.0001 ** (1/6) = 0.7846. A young window is not renormalized.
    first = a.step(at(0, 12, 100))
    assert first.details["stable_value"] == pytest.approx(20.0)  # 100 x 0.2
    assert first.details["panic_value"] == pytest.approx(78.4557, abs=1e-4)
    second = a.step(at(2, 12, 100))  # buckets 0, 1, 2: 100 x (0.2 + 0.16 + 0.128) = 48.8
    assert second.details["stable_value"] == pytest.approx(48.8)


def test_same_story_at_2_s_and_15_s_ticks_gives_the_same_decisions() -> None:
    # The load changes only at common ticks (multiples of 30 s) and is constant between ticks,
    # so every 1 s bucket holds the same value at both intervals, and no panic or rate limit
    # depends on the tick: Knative's math gives the same count at every common time.
    def load(t: float) -> float:
        return 70 if t <= 120 else (100 if t <= 240 else 50)

    fast = run(knative(), load, range(0, 361, 2), replicas=10)
    slow = run(knative(), load, range(0, 361, 15), replicas=10)
    common = range(0, 361, 30)
    assert [fast[t].replicas for t in common] == [slow[t].replicas for t in common]
    # 150 s: (30 x 70 + 30 x 100) / 60 = 85 -> ceil(12.1) = 13; 180 s: 100 -> 15;
    # 270 s: (30 x 100 + 30 x 50) / 60 = 75 -> 11; 300 s: 50 -> ceil(7.1) = 8.
    assert [slow[t].replicas for t in (150, 180, 270, 300)] == [13, 15, 11, 8]


def test_at_15_s_ticks_panic_is_judged_on_one_observation_and_ends_later() -> None:
    # The documented difference: a burst to 300 on (120, 150], then 7 in flight.
    def load(t: float) -> float:
        return 70 if t <= 120 else (300 if t <= 150 else 7)

    fast = run(knative(), load, range(0, 301, 2), replicas=10)
    slow = run(knative(), load, range(0, 301, 15), replicas=10)
    # 2 s: the 6 s panic window fills over three ticks, 21 -> 32 -> 43 (122, 124, 126 s).
    # 15 s: the panic window holds only the 135 s observation: 300 / 7 -> 43 in one step.
    assert [fast[t].replicas for t in (122, 124, 126)] == [21, 32, 43]
    assert slow[135].replicas == 43
    # Panic ends at the first tick more than 60 s after the last one above threshold:
    # 122 + 60 -> 184 s at 2 s ticks, 135 + 60 -> 210 s at 15 s ticks.
    assert not fast[184].details["panicking"]
    assert slow[195].details["panicking"]
    assert not slow[210].details["panicking"]
    # The scale-down rate is per decision: at 15 s the halving binds for a minute (21, 10, 5,
    # 2, 1) while at 2 s the count had followed the stable average down to 1 by 210 s.
    assert [slow[t].replicas for t in range(210, 271, 15)] == [21, 10, 5, 2, 1]
    assert fast[210].replicas == 1


def test_no_data_holds_and_a_missing_signal_never_scales_down() -> None:
    a = knative()
    record = a.step(at(0, 4, in_flight=None))  # Knative: ErrNoData, the scale is not valid
    assert (record.proposal, record.replicas) == (None, 4)
    assert record.reason.startswith("NoData")
    assert run(a, lambda t: 28, range(2, 121, 2), replicas=4)[120].replicas == 4
    # The signal goes missing after 120 s. At 150 s the stable window still holds buckets
    # 91..120, all 28: the partial window averages them (28 / 7 = 4 pods).
    assert a.step(at(150, 4, in_flight=None)).details["stable_value"] == 28
    # At 180 s the last write is a whole window old: Knative's average is 0 (but the window
    # is not yet "empty"), so the KPA would halve to 2; the shared missing-data guard holds 4.
    record = a.step(at(180, 4, in_flight=None))
    assert (record.proposal, record.replicas) == (2, 4)
    assert [step.name for step in record.guards] == ["missing_data"]
    # At 181 s it is empty: no decision at all.
    assert a.step(at(181, 4, in_flight=None)).reason.startswith("NoData")


def test_spec_errors_are_one_line_naming_the_key() -> None:
    with pytest.raises(SpecError, match=r"^knative spec: stable_window_s: must be a whole number"):
        knative(stable_window_s=61.5)
    with pytest.raises(SpecError, match=r"target_utilization: must be <= 1 \(got 1\.5\)"):
        knative(target_utilization=1.5)
    with pytest.raises(SpecError, match=r"signals: must be an Observation signal"):
        knative(signals=["inflight"])
    with pytest.raises(SpecError, match=r"panic_threshold_percentage: must be >= 110"):
        knative(panic_threshold_percentage=100)


def test_spec_round_trips_with_defaults_filled_in() -> None:
    a = knative(metric="rps")
    assert a.spec["signals"] == ["request_rate_rps"]
    assert a.spec["target_per_replica"] == 10
    assert a.spec["stable_window_s"] == 60
    assert autoscaler(a.spec).spec == a.spec
