"""Combinator traces: `max_of` and `floor` over hpa, keda, schedule and pid members.

Members are written as in a spec (`hpa`, `keda` resolve as built-ins; this repo's own new
policies by "module:attr"). HPA numbers follow tests/test_hpa_traces.py: on `in_flight` with
target_per_replica 10, desired = ceil(in_flight // replicas / 10 x replicas) outside 10 %;
KEDA's External AverageValue on `queue_depth` with threshold 5: desired = ceil(queue / 5).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from policies import Observation, SpecError, autoscaler
from policies.combinators import FLOOR, MAX_OF
from policies.testing import check_policy

MAX_OF_REF = "policies.combinators:MAX_OF"
FLOOR_REF = "policies.combinators:FLOOR"
SCHEDULE = "policies.schedule:FACTORY"
HPA = {"policy": "hpa", "metric": "in_flight", "target_per_replica": 10}
KEDA = {"policy": "keda", "metric": "queue_depth", "threshold": 5, "cooldown_s": 60}
OFFICE_HOURS = {
    "policy": SCHEDULE,
    "time_zone": "Europe/Amsterdam",
    "default": {"min_replicas": 1},
    "rules": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "20:00",
               "min_replicas": 4}],
}  # fmt: skip


def max_of(*members: dict[str, Any], **keys: Any) -> Any:
    return autoscaler({"policy": MAX_OF_REF, "policies": list(members), "max_replicas": 20, **keys})


def floor(base: dict[str, Any], floor: dict[str, Any], **keys: Any) -> Any:
    spec = {"policy": FLOOR_REF, "base": base, "floor": floor, "max_replicas": 20}
    return autoscaler({**spec, **keys})


def at(utc: str, replicas: int, **signals: Any) -> Observation:
    now_s = datetime.fromisoformat(f"{utc}+00:00").timestamp()
    return Observation(now_s=now_s, replicas=replicas, ready_replicas=replicas, **signals)


def test_max_of_passes_the_conformance_suite() -> None:
    check_policy(MAX_OF)


def test_floor_passes_the_conformance_suite() -> None:
    check_policy(FLOOR)


def test_max_of_hpa_and_keda_picks_the_larger() -> None:
    a = max_of(HPA, KEDA)
    # 4 replicas: 60 in flight -> hpa 6; 40 queued -> keda ceil(40 / 5) = 8. keda wins.
    record = a.step(at("2024-01-15T10:00:00", 4, in_flight=60, queue_depth=40))
    assert (record.proposal, record.replicas) == (8, 8)
    assert record.details["winner"] == "policies[1]"
    assert record.proposal_reason == "policies[1] keda wins with 8: queue_depth above target"
    rows = record.details["members"]
    assert [(r["policy"], r["replicas"]) for r in rows] == [("hpa", 6), ("keda", 8)]
    # 15 s later the queue is gone but 150 are in flight: hpa 15 against keda's floor of 1
    record = a.step(at("2024-01-15T10:00:15", 8, in_flight=150, queue_depth=0))
    assert (record.replicas, record.details["winner"]) == (15, "policies[0]")


def test_floor_of_hpa_and_a_schedule_never_goes_below_the_schedule() -> None:
    a = floor(HPA, OFFICE_HOURS)
    # Monday 15 January 07:30 CET: 10 in flight on 2 replicas -> hpa 1; default floor 1
    record = a.step(at("2024-01-15T06:30:00", 2, in_flight=10))
    assert (record.replicas, record.details["winner"]) == (1, "base")
    # 08:00 CET: hpa is content with 1 (ratio 1.0), the schedule's min 4 raises it
    record = a.step(at("2024-01-15T07:00:00", 1, in_flight=10))
    assert (record.replicas, record.details["winner"]) == (4, "floor")
    assert record.proposal_reason == (
        "raised to min 4 by floor schedule (rules[0] at mon 08:00 Europe/Amsterdam)"
    )
    # through the day whatever the load does, hpa decides above 4 and never goes below it
    replicas = 4
    for quarter in range(1, 48):  # 08:15 .. 19:45 CET
        load = [0, 5, 30, 120, 200, 60][quarter % 6]
        utc = f"2024-01-15T{7 + quarter // 4:02d}:{15 * (quarter % 4):02d}:00"
        record = a.step(at(utc, replicas, in_flight=load))
        assert record.replicas >= 4, utc
        replicas = record.replicas
    # 20:00 CET: the window closes; 20 in flight on 4 -> hpa 2, and 2 it is
    record = a.step(at("2024-01-15T19:00:00", 4, in_flight=20))
    assert (record.replicas, record.details["winner"]) == (2, "base")


def test_a_members_hold_counts_as_the_current_count() -> None:
    a = max_of(HPA, KEDA)
    # in_flight is missing, so hpa holds; keda alone would go 6 -> ceil(10 / 5) = 2: holding
    record = a.step(at("2024-01-15T10:00:00", 6, in_flight=None, queue_depth=10))
    assert (record.proposal, record.replicas) == (None, 6)
    assert record.proposal_reason == (
        "policies[0] hpa holds (FailedGetMetrics: in_flight; holding) and the rest would "
        "scale down; holding"
    )
    # the same hold does not stop keda from scaling up: 50 queued -> 10
    record = a.step(at("2024-01-15T10:00:15", 6, in_flight=None, queue_depth=50))
    assert (record.replicas, record.details["winner"]) == (10, "policies[1]")


def test_when_every_member_holds_the_combination_holds() -> None:
    record = max_of(HPA, KEDA).step(at("2024-01-15T10:00:00", 5))
    assert (record.proposal, record.replicas) == (None, 5)
    assert record.proposal_reason.startswith("every member holds: policies[0]: FailedGetMetrics")


def test_a_direct_proposal_stays_direct_only_when_it_wins_unchanged() -> None:
    night = {**OFFICE_HOURS, "default": {"min_replicas": 0},
             "rules": [{"start": "22:00", "end": "06:00", "min_replicas": 2}]}  # fmt: skip
    # Monday 11:00 CET, an idle queue that was never active: KEDA's executor goes 3 -> 0
    # directly, outside the 300 s scale-down window of `behavior: {}`
    day = max_of(KEDA, night, behavior={}).step(at("2024-01-15T10:00:00", 3, queue_depth=0))
    assert (day.replicas, day.guards) == (0, ())
    assert day.proposal_reason.startswith("policies[0] keda wins with 0: Deactivated")
    # 23:00 CET the night rule's min 2 changes it to 2: no longer direct, so the window holds 3
    night_record = max_of(KEDA, night, behavior={}).step(
        at("2024-01-15T22:00:00", 3, queue_depth=0)
    )
    assert night_record.proposal == 2
    assert [g.name for g in night_record.guards] == ["stabilization"]
    assert night_record.replicas == 3


def test_a_tie_between_a_direct_and_a_guarded_proposal_goes_to_the_guarded_one() -> None:
    # idle: hpa proposes ceil(0) = 0 through the guards, keda 0 directly; the window holds 3
    record = max_of(KEDA, HPA, behavior={}).step(
        at("2024-01-15T10:00:00", 3, in_flight=0, queue_depth=0)
    )
    assert record.details["winner"] == "policies[1]"
    assert record.replicas == 3


def test_inner_policies_receive_the_outer_guards() -> None:
    # hpa reads a per-direction tolerance from the outer behavior: 5 % up is enough
    a = max_of(HPA, behavior={"scaleUp": {"tolerance": 0.05}})
    assert a.step(at("2024-01-15T10:00:00", 10, in_flight=106)).proposal == 11
    # keda reads the outer min_replicas: with min 2 it never deactivates to 0
    record = max_of(KEDA, min_replicas=2).step(at("2024-01-15T10:00:00", 3, queue_depth=0))
    assert not record.details["members"][0]["reason"].startswith("Deactivated")
    assert record.replicas == 2
    # pid clamps its integral to the outer bounds
    pid = {"policy": "policies.pid:FACTORY", "signal": "latency_p95_s", "target": 2.0}
    inner = floor(pid, OFFICE_HOURS, min_replicas=1, max_replicas=12).policy.members[0].policy
    assert (inner.min_replicas, inner.max_replicas) == (1, 12)


def test_required_signals_are_the_union_and_any_member_pauses_at_zero() -> None:
    both = max_of(HPA, KEDA).policy
    assert both.required_signals == {"in_flight", "queue_depth"}
    assert both.pauses_at_zero  # hpa leaves a target at zero alone
    assert not floor(KEDA, OFFICE_HOURS).policy.pauses_at_zero


def test_nested_specs_and_states_round_trip_through_json() -> None:
    nested = {"policy": MAX_OF_REF, "policies": [HPA, KEDA]}
    a = floor(nested, OFFICE_HOURS, behavior={})
    spec = json.loads(json.dumps(a.spec))
    assert spec["base"]["policies"][1]["triggers"][0]["signal"] == "queue_depth"
    assert spec["floor"]["rules"][0]["min_replicas"] == 4
    assert autoscaler(spec).spec == a.spec
    # a story ticked straight through and one restarted from JSON state at every tick agree
    story = [(0, 3, 40, 12), (15, 6, 90, 30), (30, 9, None, 0), (45, 9, 10, 0), (400, 9, 10, 0)]
    straight, saved = autoscaler(spec), None
    for t, replicas, in_flight, queue in story:
        obs = at(f"2024-01-15T10:{t // 60:02d}:{t % 60:02d}", replicas, in_flight=in_flight,
                 queue_depth=queue)  # fmt: skip
        resumed = autoscaler(spec, state=saved)
        assert resumed.step(obs).to_dict() == straight.step(obs).to_dict()
        saved = json.loads(json.dumps(resumed.state))
    policy_state = saved["policy_state"]
    assert set(policy_state) == {"base", "floor"}  # floor: keyed by member
    assert isinstance(policy_state["base"], list) and len(policy_state["base"]) == 2  # max_of


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"policies": [HPA, {**KEDA, "max_replicas": 5}]},
            "max_of spec: policies[1].max_replicas: guard keys belong to the outer spec",
        ),
        (
            {"base": HPA, "floor": {**OFFICE_HOURS, "behavior": {}}},
            "floor spec: floor.behavior: guard keys belong to the outer spec",
        ),
        (
            {"policies": [{**HPA, "policy": "hap"}]},
            "max_of spec: policies[0].policy: unknown policy 'hap'; available: hpa",
        ),
        (
            {"policies": [{**HPA, "target_per_replica": -1}]},
            "max_of spec: policies[0].target_per_replica: must be > 0 (got -1)",
        ),
        (
            {"policies": [HPA, {"metric": "in_flight"}]},
            "max_of spec: policies[1].policy: required key is missing; e.g. policy: hpa",
        ),
        ({"policies": [HPA, 3]}, "max_of spec: policies[1]: must be a mapping (got 3)"),
        ({"policies": []}, "max_of spec: policies: must have at least 1 item(s)"),
        ({"base": HPA}, "floor spec: floor: required key is missing"),
        ({"policies": [HPA], "members": []}, "members: unknown key; allowed keys: policies"),
    ],
    ids=[
        "guard-in-list",
        "guard-in-floor",
        "unknown-policy",
        "inner-key",
        "no-policy",
        "not-a-mapping",
        "empty",
        "missing-floor",
        "unknown-key",
    ],
)
def test_bad_member_specs_name_the_path(spec: dict[str, Any], expected: str) -> None:
    ref = FLOOR_REF if "base" in spec else MAX_OF_REF
    with pytest.raises(SpecError) as caught:
        autoscaler({"policy": ref, "max_replicas": 9, **spec})
    assert "\n" not in str(caught.value)
    assert expected in str(caught.value)


def test_every_bad_member_is_reported_at_once() -> None:
    with pytest.raises(SpecError) as caught:
        max_of({**HPA, "min_replicas": 1}, {**KEDA, "threshold": 0})
    text = str(caught.value)
    assert "policies[0].min_replicas: guard keys belong to the outer spec" in text
    assert "policies[1]." in text and "threshold: must be > 0 (got 0)" in text
