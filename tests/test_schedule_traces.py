"""Schedule traces: bounds by local wall-clock time in Europe/Amsterdam, across both DST changes.

Amsterdam is UTC+1 in winter (CET) and UTC+2 in summer (CEST). In 2024 the clocks went forward
on Sunday 31 March at 02:00 CET (01:00 UTC) and back on Sunday 27 October at 03:00 CEST (01:00
UTC). Every time below is written in UTC with its Amsterdam wall time beside it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from policies import Observation, SpecError, autoscaler
from policies.schedule import FACTORY
from policies.testing import check_policy

SCHEDULE = "policies.schedule:FACTORY"
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]
OFFICE_HOURS = {"days": WEEKDAYS, "start": "08:00", "end": "20:00", "min_replicas": 4}


def schedule(*rules: dict[str, Any], **keys: Any) -> Any:
    spec: dict[str, Any] = {
        "policy": SCHEDULE,
        "time_zone": "Europe/Amsterdam",
        "default": {"min_replicas": 1},
        "rules": list(rules),
        "max_replicas": 100,
    }
    spec.update(keys)
    return autoscaler(spec)


def at(utc: str, replicas: int) -> Observation:
    now_s = datetime.fromisoformat(f"{utc}+00:00").timestamp()
    return Observation(now_s=now_s, replicas=replicas, ready_replicas=replicas)


def bounds(a: Any, utc: str, replicas: int = 2) -> tuple[int, int | None]:
    details = a.step(at(utc, replicas)).details
    return details["min_replicas"], details["max_replicas"]


def test_the_conformance_suite_passes() -> None:
    check_policy(FACTORY)


def test_raises_the_floor_at_0800_on_a_winter_monday_and_releases_it_at_2000() -> None:
    a = schedule(OFFICE_HOURS)
    # Monday 15 January, 07:59 CET: no rule yet; 2 replicas are within the default (min 1)
    record = a.step(at("2024-01-15T06:59:00", 2))
    assert (record.replicas, record.reason.split(":")[0]) == (2, "WithinSchedule")
    # 08:00 CET is 07:00 UTC: the rule's min 4 lifts the target
    record = a.step(at("2024-01-15T07:00:00", 2))
    assert (record.proposal, record.replicas) == (4, 4)
    assert record.reason == "ScheduleMin: rules[0] at mon 08:00 Europe/Amsterdam sets min 4"
    assert record.details["local_time"] == "2024-01-15T08:00:00+01:00"
    # all day the floor is 4; 19:59 CET is the last minute of the window
    assert bounds(a, "2024-01-15T18:59:00") == (4, None)
    # 20:00 CET: the window is [08:00, 20:00), so the default is back
    assert bounds(a, "2024-01-15T19:00:00") == (1, None)


def test_the_same_rule_follows_summer_time_an_hour_earlier_in_utc() -> None:
    a = schedule(OFFICE_HOURS)
    # Monday 1 April, the first Monday of CEST: 08:00 is 06:00 UTC, 20:00 is 18:00 UTC
    assert bounds(a, "2024-04-01T05:59:00") == (1, None)
    assert bounds(a, "2024-04-01T06:00:00") == (4, None)
    assert bounds(a, "2024-04-01T17:59:00") == (4, None)
    assert bounds(a, "2024-04-01T18:00:00") == (1, None)
    # the weekend is not in `days`
    assert bounds(a, "2024-04-06T10:00:00") == (1, None)


def test_spring_forward_a_start_in_the_skipped_hour_begins_at_0300() -> None:
    early = {"start": "02:30", "end": "04:00", "min_replicas": 3}
    a = schedule(early)
    # Sunday 31 March: 00:59 UTC is 01:59 CET; the next minute the wall clock reads 03:00 CEST.
    # 02:30 never happens, so the rule starts at the first wall time after it.
    assert bounds(a, "2024-03-31T00:59:00") == (1, None)
    assert bounds(a, "2024-03-31T01:00:00") == (3, None)
    assert bounds(a, "2024-03-31T01:59:00") == (3, None)  # 03:59 CEST
    assert bounds(a, "2024-03-31T02:00:00") == (1, None)  # 04:00 CEST


def test_spring_forward_night_window_is_seven_hours_long() -> None:
    night = {"start": "22:00", "end": "06:00", "min_replicas": 2, "max_replicas": 5}
    a = schedule(night)
    # Saturday 30 March 22:00 CET (21:00 UTC) to Sunday 06:00 CEST (04:00 UTC): 7 hours
    assert bounds(a, "2024-03-30T20:59:00") == (1, None)
    assert bounds(a, "2024-03-30T21:00:00") == (2, 5)
    assert bounds(a, "2024-03-31T03:59:00") == (2, 5)
    assert bounds(a, "2024-03-31T04:00:00") == (1, None)


def test_fall_back_night_window_is_nine_hours_long() -> None:
    night = {"start": "22:00", "end": "06:00", "min_replicas": 2, "max_replicas": 5}
    a = schedule(night)
    # Saturday 26 October 22:00 CEST (20:00 UTC) to Sunday 06:00 CET (05:00 UTC): 9 hours
    assert bounds(a, "2024-10-26T19:59:00") == (1, None)
    assert bounds(a, "2024-10-26T20:00:00") == (2, 5)
    assert bounds(a, "2024-10-27T04:59:00") == (2, 5)
    assert bounds(a, "2024-10-27T05:00:00") == (1, None)


def test_fall_back_a_boundary_in_the_repeated_hour_is_crossed_twice() -> None:
    a = schedule({"start": "01:00", "end": "02:30", "min_replicas": 3})
    # the wall clock shows 02:00-03:00 twice; a rule ending at 02:30 ends on both passes
    assert bounds(a, "2024-10-27T00:00:00") == (3, None)  # 02:00 CEST
    assert bounds(a, "2024-10-27T00:30:00") == (1, None)  # 02:30 CEST: ended
    assert bounds(a, "2024-10-27T01:00:00") == (3, None)  # 02:00 CET: inside again
    assert bounds(a, "2024-10-27T01:30:00") == (1, None)  # 02:30 CET: ended for good


def test_a_rule_across_midnight_belongs_to_the_day_it_starts() -> None:
    friday_night = {"days": ["fri"], "start": "22:00", "end": "06:00", "min_replicas": 6}
    a = schedule(friday_night)
    assert bounds(a, "2024-01-19T04:00:00") == (1, None)  # Friday 05:00: Thursday's night
    assert bounds(a, "2024-01-19T22:00:00") == (6, None)  # Friday 23:00 CET
    assert bounds(a, "2024-01-20T04:59:00") == (6, None)  # Saturday 05:59 CET, same night
    assert bounds(a, "2024-01-20T05:00:00") == (1, None)  # Saturday 06:00 CET
    assert bounds(a, "2024-01-20T22:00:00") == (1, None)  # Saturday 23:00: not a Friday night


def test_overlapping_rules_take_the_max_of_mins_and_the_min_of_maxes() -> None:
    busy = {"start": "08:00", "end": "20:00", "min_replicas": 4, "max_replicas": 40}
    lunch = {"start": "12:00", "end": "14:00", "min_replicas": 10, "max_replicas": 60}
    budget = {"start": "13:00", "end": "18:00", "max_replicas": 30}
    a = schedule(busy, lunch, budget)
    assert bounds(a, "2024-01-15T10:00:00") == (4, 40)  # 11:00: busy only
    assert bounds(a, "2024-01-15T11:30:00") == (10, 40)  # 12:30: busy + lunch
    assert bounds(a, "2024-01-15T12:30:00") == (10, 30)  # 13:30: all three
    # budget omits min_replicas: it is the default's 1, and max(4, 1) = 4
    assert bounds(a, "2024-01-15T15:00:00") == (4, 30)


def test_a_conflict_between_rules_is_won_by_the_max() -> None:
    a = schedule(
        {"start": "08:00", "end": "20:00", "min_replicas": 12},
        {"start": "10:00", "end": "12:00", "max_replicas": 8},
    )
    record = a.step(at("2024-01-15T10:00:00", 20))  # 11:00 CET: min 12 and max 8 meet
    assert (record.details["min_replicas"], record.details["max_replicas"]) == (8, 8)
    assert record.replicas == 8
    assert "max wins" in record.reason


def test_standalone_it_proposes_the_bound_outside_and_holds_inside() -> None:
    a = schedule({**OFFICE_HOURS, "max_replicas": 40})
    monday_noon = "2024-01-15T11:00:00"
    assert a.step(at(monday_noon, 2)).replicas == 4  # below: raised to the min
    assert a.step(at(monday_noon, 55)).reason.startswith("ScheduleMax")  # above: down to 40
    inside = a.step(at(monday_noon, 17))
    assert (inside.proposal, inside.replicas) == (None, 17)  # inside: a hold, not a 4


def test_spec_and_state_round_trip_through_json() -> None:
    a = schedule(OFFICE_HOURS, {"start": "22:00", "end": "06:00", "max_replicas": 3})
    plain = json.loads(json.dumps(a.spec))
    assert plain["rules"][1] == {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                                 "start": "22:00", "end": "06:00", "max_replicas": 3}  # fmt: skip
    assert autoscaler(plain).spec == a.spec
    assert a.state["policy_state"] is None  # stateless: time is all it needs


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"time_zone": "Europe/Amstredam"},
            "time_zone: must be an IANA time zone such as 'Europe/Amsterdam' "
            "(got 'Europe/Amstredam')",
        ),
        (
            {"rules": [{**OFFICE_HOURS, "start": "8am"}]},
            "rules[0].start: must be a time 'HH:MM' from 00:00 to 23:59 (got '8am')",
        ),
        (
            {"rules": [{**OFFICE_HOURS, "end": "24:30"}]},
            "rules[0].end: must be a time 'HH:MM' from 00:00 to 24:00 (got '24:30')",
        ),
        (
            {"rules": [{**OFFICE_HOURS, "days": ["monday"]}]},
            "rules[0].days[0]: must be one of 'mon', 'tue', 'wed', 'thu', 'fri', 'sat' or "
            "'sun' (got 'monday')",
        ),
        (
            {"rules": [{"start": "08:00", "end": "08:00", "min_replicas": 2}]},
            "rules[0]: start and end are equal; for a whole day use 00:00 to 24:00",
        ),
        (
            {"rules": [{"start": "08:00", "end": "09:00"}]},
            "rules[0]: sets neither min_replicas nor max_replicas",
        ),
        (
            {
                "default": {"min_replicas": 5},
                "rules": [{"start": "08:00", "end": "20:00", "max_replicas": 3}],
            },
            "rules[0]: min_replicas (5) must be <= max_replicas (3), defaults included",
        ),
        ({"rule": []}, "rule: unknown key; allowed keys: default, rules, time_zone"),
    ],
    ids=["zone", "start", "end", "day", "empty", "no-bounds", "min-above-max", "unknown-key"],
)
def test_bad_specs_name_the_key_as_written(change: dict[str, Any], expected: str) -> None:
    spec = {"policy": SCHEDULE, "max_replicas": 9, "rules": [OFFICE_HOURS], **change}
    with pytest.raises(SpecError) as caught:
        autoscaler(spec)
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith("schedule spec: ")
    assert expected in text
