"""Ray Serve traces: target ongoing requests, scaling factors, delays in seconds, cold start.

Anchor: ray-project/ray python/ray/serve/autoscaling_policy.py
(`replica_queue_length_autoscaling_policy`, `_calculate_desired_num_replicas`) and the
`AutoscalingConfig` defaults in python/ray/serve/config.py. Ongoing requests are
`in_flight + queue_depth`; running replicas are `ready_replicas`, the current target is
`replicas`. Most stories set `look_back_period_s: 1` so that each tick's total is the current
observation; one story shows the look-back mean. Numbers in comments are worked by hand.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from policies import Autoscaler, DecisionRecord, Observation, SpecError, autoscaler
from policies.ray import FACTORY
from policies.testing import check_policy

T0 = 1_700_000_000.0


def ray(**extra: Any) -> Autoscaler:
    spec = {
        "policy": "policies.ray:FACTORY",
        "target_per_replica": 2,
        "look_back_period_s": 1,
        "max_replicas": 20,
    }
    spec.update(extra)
    return autoscaler(spec)


def at(
    t: float, replicas: int, in_flight: float | None, queue: float | None = 0.0, **kw: Any
) -> Observation:
    kw.setdefault("ready_replicas", replicas)
    return Observation(
        now_s=T0 + t, replicas=replicas, in_flight=in_flight, queue_depth=queue, **kw
    )


def run(
    a: Autoscaler, times: Iterable[float], replicas: int, in_flight: float, queue: float = 0.0
) -> dict[float, DecisionRecord]:
    """A closed loop at constant load: each tick sees the count the previous one chose."""
    out = {}
    for t in times:
        record = a.step(at(t, replicas, in_flight, queue))
        out[t] = record
        replicas = record.replicas
    return out


def changes(records: dict[float, DecisionRecord]) -> list[tuple[float, int]]:
    return [(t, r.replicas) for t, r in records.items() if r.replicas != r.current_replicas]


def test_the_policy_passes_the_conformance_suite() -> None:
    check_policy(FACTORY)


def test_desired_is_total_ongoing_requests_over_target_per_replica() -> None:
    # 6 running + 4 queued = 10 ongoing on 2 replicas at target 2: error ratio 10 / 4 = 2.5,
    # ceil(2 x 2.5) = 5.
    record = ray(upscale_delay_s=0).step(at(0, 2, in_flight=6, queue=4))
    assert record.details["error_ratio"] == 2.5
    assert (record.proposal, record.replicas) == (5, 5)
    assert record.reason.startswith("Upscale: 5 replicas wanted for 0 s")


@pytest.mark.parametrize("interval_s", [2, 10, 15], ids=["2s", "10s", "15s"])
def test_an_upscale_needs_upscale_delay_s_of_consistent_decisions_in_seconds(
    interval_s: int,
) -> None:
    # Ray counts decisions every 0.1 s and acts when the count exceeds int(30 / 0.1) = 300,
    # i.e. 30 s after the first one. Measured in now_s, the delay is 30 s at any interval.
    seen = run(ray(), range(0, 61, interval_s), replicas=2, in_flight=10)
    assert changes(seen) == [(30, 5)]
    just_before = max(t for t in seen if t < 30)
    assert seen[just_before].reason == (
        f"UpscaleDelay: 5 replicas wanted for {just_before} s of upscale_delay_s 30"
    )


def test_a_decision_at_target_ends_the_run_and_the_delay_starts_over() -> None:
    a = ray()
    assert a.step(at(0, 2, in_flight=10)).replicas == 2  # run of upscales starts at 0 s
    assert a.step(at(15, 2, in_flight=10)).reason == (
        "UpscaleDelay: 5 replicas wanted for 15 s of upscale_delay_s 30"
    )
    assert a.step(at(20, 2, in_flight=4)).reason.startswith("AtTarget")  # 4 / 2 = 2 replicas
    assert a.step(at(30, 2, in_flight=10)).replicas == 2  # a new run starts at 30 s
    assert a.step(at(45, 2, in_flight=10)).replicas == 2
    assert a.step(at(60, 2, in_flight=10)).replicas == 5


def test_a_downscale_decision_ends_an_upscale_run() -> None:
    a = ray(downscale_delay_s=600)
    a.step(at(0, 4, in_flight=20))  # up run from 0 s
    assert a.step(at(15, 4, in_flight=2)).reason.startswith("DownscaleDelay")  # down run
    assert a.step(at(30, 4, in_flight=20)).reason.endswith("for 0 s of upscale_delay_s 30")


def test_downscale_waits_downscale_delay_s_and_stops_at_one_then_its_own_delay_to_zero() -> None:
    a = ray(min_replicas=0, downscale_delay_s=60, downscale_to_zero_delay_s=300)
    seen = run(a, range(0, 391, 15), replicas=4, in_flight=0)
    # No traffic wants 0, but a downscale to above zero keeps max(1, 0) = 1: 4 -> 1 after
    # 60 s. The action ends the run; the next decision (75 s) starts the 1 -> 0 run, which
    # waits downscale_to_zero_delay_s 300: 75 + 300 = 375 s.
    assert changes(seen) == [(60, 1), (375, 0)]
    assert seen[360].reason == (
        "DownscaleDelay: 0 replicas wanted for 285 s of downscale_to_zero_delay_s 300"
    )


def test_without_a_to_zero_delay_one_to_zero_waits_the_downscale_delay() -> None:
    seen = run(
        ray(min_replicas=0, downscale_delay_s=60), range(0, 151, 15), replicas=1, in_flight=0
    )
    assert changes(seen) == [(60, 0)]


def test_upscaling_factor_moves_a_share_of_the_way() -> None:
    # 6 ongoing on 2 running at target 1: error ratio 3, raw desire 6; with factor 0.5:
    # ceil(2 x (1 + (3 - 1) x 0.5)) = 4.
    record = ray(target_per_replica=1, upscaling_factor=0.5, upscale_delay_s=0).step(
        at(0, 2, in_flight=6)
    )
    assert record.replicas == 4


def test_downscaling_factor_moves_a_share_of_the_way_and_is_never_stuck() -> None:
    a = ray(target_per_replica=1, downscaling_factor=0.5, downscale_delay_s=0)
    # 2 ongoing on 8 running: ratio 0.25, ceil(8 x (1 - 0.75 x 0.5)) = ceil(5.0) = 5.
    assert a.step(at(0, 8, in_flight=2)).replicas == 5
    stuck = ray(target_per_replica=1, downscaling_factor=0.1, downscale_delay_s=0)
    # 3 ongoing on 4 running: ratio 0.75, ceil(4 x 0.975) = ceil(3.9) = 4 is stuck, although
    # ceil(4 x 0.75) = 3 < 4: Ray takes one replica off.
    assert stuck.step(at(0, 4, in_flight=3)).replicas == 3


def test_smoothing_factor_is_the_fallback_for_both_factors() -> None:
    smoothed = ray(target_per_replica=1, smoothing_factor=0.5, upscale_delay_s=0)
    explicit = ray(target_per_replica=1, upscaling_factor=0.5, upscale_delay_s=0)
    assert smoothed.step(at(0, 2, in_flight=6)).replicas == 4
    assert explicit.step(at(0, 2, in_flight=6)).replicas == 4
    # an explicit factor wins over smoothing_factor
    both = ray(target_per_replica=1, smoothing_factor=0.5, upscaling_factor=1, upscale_delay_s=0)
    assert both.step(at(0, 2, in_flight=6)).replicas == 6


def test_cold_start_from_zero_scales_up_at_once_despite_the_upscale_delay() -> None:
    a = ray(min_replicas=0, upscale_delay_s=300)
    assert a.step(at(0, 0, in_flight=0)).replicas == 0  # nothing ongoing: stay at 0
    # One request waits with no replica running: max(ceil(1 x upscaling_factor 1), 0) = 1.
    record = a.step(at(15, 0, in_flight=0, queue=1))
    assert record.replicas == 1
    assert record.reason.startswith("ColdStart")
    fast = ray(min_replicas=0, upscaling_factor=3)
    assert fast.step(at(0, 0, in_flight=0, queue=1)).replicas == 3  # ceil(1 x 3)


def test_with_replicas_starting_but_none_running_the_target_is_kept() -> None:
    # Ray's fast path looks at running replicas: 2 targeted, 0 running keeps 2 (max(1, 2)).
    a = ray(min_replicas=0)
    assert a.step(at(0, 2, in_flight=0, queue=9, ready_replicas=0)).replicas == 2
    assert a.step(at(15, 2, in_flight=0, queue=0, ready_replicas=0)).replicas == 2


def test_look_back_period_averages_the_observations_of_its_window() -> None:
    a = ray(look_back_period_s=30, upscale_delay_s=0)
    # At 15 s ticks the 30 s look-back holds the observations at t - 15 and t.
    assert a.step(at(0, 1, in_flight=0)).replicas == 1
    record = a.step(at(15, 1, in_flight=20))  # (0 + 20) / 2 = 10 ongoing: 10 / 2 = 5
    assert record.details["total_ongoing_requests"] == 10
    assert record.replicas == 5
    record = a.step(at(30, 5, in_flight=20))  # the 0 s sample is not after 30 - 30
    assert record.details["total_ongoing_requests"] == 20
    assert record.replicas == 10


def test_min_and_max_are_the_shared_guards_not_the_policy() -> None:
    record = ray(upscale_delay_s=0, max_replicas=8).step(at(0, 2, in_flight=40))
    assert (record.proposal, record.replicas) == (20, 8)
    assert [step.name for step in record.guards] == ["bounds"]
    # Ray's default min_replicas is 1: an idle target never goes to zero unless asked.
    idle = run(ray(downscale_delay_s=0), range(0, 61, 15), replicas=1, in_flight=0)
    assert {r.replicas for r in idle.values()} == {1}


def test_a_missing_signal_holds_and_ends_the_run() -> None:
    a = ray()
    a.step(at(0, 2, in_flight=10))
    a.step(at(15, 2, in_flight=10))
    record = a.step(at(30, 2, in_flight=10, queue=None))
    assert (record.proposal, record.replicas) == (None, 2)
    assert record.reason == "MissingSignal: queue_depth missing; holding"
    assert a.step(at(45, 2, in_flight=10)).reason.endswith("for 0 s of upscale_delay_s 30")


def test_spec_errors_are_one_line_naming_the_key() -> None:
    with pytest.raises(SpecError, match=r"^ray spec: upscale_delay_s: must be >= 0 \(got -1\)$"):
        ray(upscale_delay_s=-1)
    with pytest.raises(SpecError, match=r"target_per_replica: must be > 0"):
        ray(target_per_replica=0)
    with pytest.raises(SpecError, match=r"look_back: unknown key"):
        ray(look_back=30)


def test_spec_round_trips_with_defaults_filled_in() -> None:
    a = autoscaler({"policy": "policies.ray:FACTORY", "max_replicas": 5})
    assert a.spec["target_per_replica"] == 2.0
    assert (a.spec["upscale_delay_s"], a.spec["downscale_delay_s"]) == (30.0, 600.0)
    assert a.spec["signals"] == ["in_flight", "queue_depth"]
    assert a.spec["min_replicas"] == 1
    assert "downscale_to_zero_delay_s" not in a.spec
    assert autoscaler(a.spec).spec == a.spec
