"""The semantics `tick` pins down for every policy: guard order, events, shadow history,
flap budget, missing data, starting capacity, a clock that goes backwards, state."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies import Observation, autoscaler

T0 = 1_700_000_000.0
QUEUE = "tests.plugins.queue_policy:FACTORY"  # a plugin with no guard defaults


def at(t: float, replicas: int, **signals: Any) -> Observation:
    signals.setdefault("ready_replicas", replicas)
    return Observation(now_s=T0 + t, replicas=replicas, **signals)


def queue_policy(**extra: Any) -> Any:
    spec = {"policy": QUEUE, "per_replica": 4, "smoothing": 1, "max_replicas": 10}
    spec.update(extra)
    return autoscaler(spec)


def test_policies_without_guard_defaults_get_only_min_and_max() -> None:
    a = queue_policy()
    assert a.step(at(0, 1, queue_depth=36)).replicas == 9  # no rate limit
    assert a.step(at(15, 9, queue_depth=0)).replicas == 0  # no stabilization, min 0
    assert a.step(at(30, 0, queue_depth=400)).replicas == 10  # max


def test_guards_apply_in_order_and_each_change_is_recorded() -> None:
    behavior = {"scaleUp": {"policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}]}}
    a = queue_policy(behavior=behavior, max_replicas=3)
    record = a.step(at(0, 1, queue_depth=40))  # wants 10
    assert [(s.name, s.before, s.after) for s in record.guards] == [
        ("rate_limit", 10, 3),
        # 1 + 2 pods = 3 is also max_replicas: bounds changes nothing, so it is not listed
    ]
    a = queue_policy(behavior=behavior, max_replicas=2)
    record = a.step(at(0, 1, queue_depth=40))
    assert [(s.name, s.before, s.after) for s in record.guards] == [
        ("rate_limit", 10, 3),
        ("bounds", 3, 2),
    ]
    assert record.reason.startswith("TooManyReplicas")


def test_a_replica_change_the_autoscaler_did_not_make_is_not_an_event() -> None:
    a = autoscaler(
        {"policy": "hpa", "metric": "in_flight", "target_per_replica": 1, "max_replicas": 100}
    )
    assert a.step(at(0, 1, in_flight=1000)).replicas == 5  # event +4 at 0 s
    # someone scales to 10 by hand; 10 s later the +4 is still in the period, the +5 is not ours:
    # period start = 10 - 4 = 6 -> max(6 + 4, 6 * 2) = 12
    assert a.step(at(10, 10, in_flight=1000)).replicas == 12


def test_only_what_was_committed_is_a_scale_event() -> None:
    spec = {"policy": "hpa", "metric": "in_flight", "target_per_replica": 1, "max_replicas": 100}
    refused, capped, failed, applied = (autoscaler(spec) for _ in range(4))
    for a in (refused, capped, failed, applied):
        assert a.tick(at(0, 1, in_flight=1000)).replicas == 5  # HPA's limit: +4 pods per 15 s
    # tick proposed 5 and recorded nothing; each shell reports what really happened:
    assert refused.commit("refused", why="paused").applied_replicas == 1  # a pause kept it at 1
    assert failed.commit("failed", why="500").applied_replicas == 1  # the scale call failed
    assert capped.commit("capped", 3).applied_replicas == 3  # max change per tick let +2 through
    assert applied.commit().outcome == "applied"
    # 10 s later, within the 15 s period: HPA counts only the scales that happened.
    assert refused.step(at(10, 1, in_flight=1000)).replicas == 5  # no +4 in the period
    assert failed.step(at(10, 1, in_flight=1000)).replicas == 5
    # period start = 3 - 2 = 1 -> max(1 + 4, 1 * 2) = 5
    assert capped.step(at(10, 5 - 2, in_flight=1000)).replicas == 5
    # The applied +4 holds it: period start = 5 - 4 = 1 -> max(1 + 4, 1 * 2) = 5
    assert applied.step(at(10, 5, in_flight=1000)).replicas == 5


def test_a_decision_never_committed_records_nothing() -> None:
    spec = {"policy": "hpa", "metric": "in_flight", "target_per_replica": 1, "max_replicas": 100}
    a = autoscaler(spec)
    assert a.tick(at(0, 1, in_flight=1000)).replicas == 5  # the shell crashed before commit
    assert a.tick(at(10, 1, in_flight=1000)).replicas == 5  # no phantom +4 in the period
    with pytest.raises(RuntimeError, match="before tick"):
        autoscaler(spec).commit()


def test_the_committed_record_says_what_was_applied() -> None:
    a = autoscaler(
        {"policy": "hpa", "metric": "in_flight", "target_per_replica": 1, "max_replicas": 9}
    )
    a.tick(at(0, 1, in_flight=1000))
    done = a.commit("capped", 3, why="max_change_per_tick 2").to_dict()
    assert (done["outcome"], done["applied_replicas"], done["outcome_reason"]) == (
        "capped", 3, "max_change_per_tick 2"
    )  # fmt: skip


def test_dry_run_keeps_its_own_hypothetical_history() -> None:
    spec = {"policy": "hpa", "metric": "in_flight", "target_per_replica": 1, "max_replicas": 20}
    shadow = autoscaler(spec, applies=False)
    # the real target never moves (1 replica); the shadow still walks 1 -> 5 -> 10 -> 20
    seen = [shadow.step(at(t, 1, in_flight=1000)) for t in (0, 15, 30, 45)]
    assert [r.replicas for r in seen] == [5, 10, 20, 20]
    assert [r.current_replicas for r in seen] == [1, 5, 10, 20]
    assert not any(r.applies for r in seen)


def test_flap_budget_holds_when_exhausted() -> None:
    a = queue_policy(flap_budget={"max_changes": 1, "window_s": 600})
    assert a.step(at(0, 2, queue_depth=20)).replicas == 5  # up
    assert a.step(at(15, 5, queue_depth=4)).replicas == 1  # down: change 1 of 1
    record = a.step(at(30, 1, queue_depth=20))  # up again would be change 2
    assert record.replicas == 1
    assert record.reason.startswith("FlapBudget")
    assert a.step(at(45, 1, queue_depth=0)).replicas == 0  # same direction is fine
    # once the change at 15 s leaves the window, direction may change again
    assert a.step(at(615, 0, queue_depth=20)).replicas == 5


def test_flap_budget_is_off_by_default() -> None:
    a = queue_policy()
    assert [
        a.step(at(t, r, queue_depth=q)).replicas
        for t, r, q in [(0, 1, 20), (15, 5, 0), (30, 0, 20)]
    ] == [5, 0, 5]


def test_missing_required_signal_blocks_scale_down_only() -> None:
    a = queue_policy(behavior={})  # a hold from the policy is not a scale-down
    assert a.step(at(0, 4, queue_depth=None)).replicas == 4
    assert a.step(at(15, 4, queue_depth=80)).replicas == 8  # up is fine (rate limit +4)


def test_missing_data_guard_blocks_a_scale_down_proposal() -> None:
    # an hpa on in_flight that also requires queue_depth through a second metric: the second
    # metric missing while the first wants fewer replicas must hold
    spec = {
        "policy": "hpa",
        "max_replicas": 20,
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}},
        "metrics": [
            {"signal": "in_flight", "target_per_replica": 10},
            {"signal": "extra.kv_cache_usage", "type": "External", "target_value": 0.8},
        ],
    }
    record = autoscaler(spec).step(at(0, 8, in_flight=10))
    assert record.replicas == 8


def test_starting_capacity_guard_waits_for_starting_replicas() -> None:
    a = queue_policy(starting_capacity=True)
    record = a.step(at(0, 6, ready_replicas=2, starting_replicas=4, queue_depth=40))
    assert record.replicas == 6
    assert record.reason.startswith("StartingCapacity")
    assert a.step(at(15, 6, queue_depth=40)).replicas == 10  # all ready: scale-up resumes


def test_clock_going_backwards_holds_and_does_not_crash() -> None:
    a = queue_policy()
    a.step(at(100, 2, queue_depth=8))
    before = a.state
    record = a.step(at(50, 2, queue_depth=400))
    assert record.replicas == 2
    assert record.reason.startswith("ClockWentBackwards")
    assert a.state == before
    assert a.step(at(115, 2, queue_depth=400)).replicas == 10


def test_nan_and_negative_signals_are_missing_never_zero() -> None:
    obs = at(
        0, 3, in_flight=float("nan"), queue_depth=-1, request_rate_rps=float("inf"), error_rate=1.5
    )
    assert (obs.in_flight, obs.queue_depth, obs.request_rate_rps, obs.error_rate) == (None,) * 4
    a = autoscaler(
        {"policy": "hpa", "metric": "in_flight", "target_per_replica": 10, "max_replicas": 9}
    )
    assert a.step(obs).replicas == 3


def test_state_is_versioned_json_and_resumes_exactly() -> None:
    spec = {"policy": "hpa", "metric": "in_flight", "target_per_replica": 10, "max_replicas": 20}
    straight = autoscaler(spec)
    story = [(t, 8 if t < 200 else 2) for t in range(0, 600, 15)]
    replicas = 8
    expected = []
    for t, per in story:
        r = straight.step(at(t, replicas, in_flight=per * replicas))
        expected.append(r.to_dict())
        replicas = r.replicas
    resumed_state: dict[str, Any] | None = None
    replicas = 8
    for (t, per), want in zip(story, expected, strict=True):
        a = autoscaler(spec, state=resumed_state)
        got = a.step(at(t, replicas, in_flight=per * replicas)).to_dict()
        assert got == want
        resumed_state = json.loads(json.dumps(a.state))
        assert resumed_state["version"] == 1
        replicas = got["replicas"]


def test_state_from_another_policy_is_refused_with_one_line() -> None:
    hpa = autoscaler(
        {"policy": "hpa", "metric": "in_flight", "target_per_replica": 10, "max_replicas": 5}
    )
    keda_spec = {"policy": "keda", "metric": "queue_depth", "threshold": 5, "max_replicas": 5}
    with pytest.raises(ValueError, match="state: policy: was saved by policy 'hpa', not 'keda'"):
        autoscaler(keda_spec, state=hpa.state)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.floats(0, 2000), st.just(float("nan"))),  # in_flight (NaN = broken sample)
            st.booleans(),  # signal missing?
            st.integers(0, 4),  # starting replicas
            st.sampled_from([0, 1, 2, 15, 15, 15, 60]),  # time step
        ),
        min_size=1,
        max_size=40,
    ),
    st.sampled_from(["hpa", "keda", QUEUE]),
)
def test_any_story_stays_in_bounds_and_never_scales_down_blind(steps: list[Any], name: str) -> None:
    specs = {
        "hpa": {
            "policy": "hpa",
            "metric": "in_flight",
            "target_per_replica": 10,
            "min_replicas": 2,
        },
        "keda": {"policy": "keda", "metric": "in_flight", "threshold": 10, "min_replicas": 2},
        QUEUE: {"policy": QUEUE, "per_replica": 10, "min_replicas": 2},
    }
    spec = {**specs[name], "max_replicas": 12}
    a = autoscaler(spec)
    replicas, now = 3, T0
    for load, missing, starting, dt in steps:
        now += dt
        value = None if missing else load
        signals = {"in_flight": value, "queue_depth": value}
        obs = Observation(
            now_s=now, replicas=replicas, ready_replicas=max(0, replicas - starting),
            starting_replicas=min(starting, replicas), **signals,
        )  # fmt: skip
        record = a.step(obs)
        assert 2 <= record.replicas <= 12
        if obs.in_flight is None and obs.queue_depth is None:
            assert record.replicas >= replicas, record
        replicas = record.replicas
