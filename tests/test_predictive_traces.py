"""`predictive`: a seasonal forecast one lead time ahead, as a floor under the SLO sizing."""

from __future__ import annotations

import math
from typing import Any

import pytest

from policies import Observation, autoscaler
from policies.predictive import FACTORY
from policies.testing import check_policy

T0 = 1_700_000_400.0  # a multiple of 1200 s: seasons start on bucket 0
SEASON = 1200  # a 20-minute "day" keeps the stories short; the math does not care


def predictive(**extra: Any) -> Any:
    spec = {
        "policy": "predictive", "latency_target_s": 2.5, "slots_per_replica": 8,
        "service_time_s": 2.0, "service_cv": 1.0, "bucket_s": 60, "season_s": SEASON,
        "weekly": False, "lead_time_s": 120, "max_replicas": 200, "scale_down_delay_s": 0,
    }  # fmt: skip
    spec.update(extra)
    return autoscaler(spec)


def rate_at(t: float) -> float:
    """Quiet at 10 req/s, then a ramp to 60 req/s in the second half of each season."""
    phase = t % SEASON
    return 10.0 if phase < 600 else 10.0 + 50.0 * min(1.0, (phase - 600) / 300)


def replay(a: Any, start: float, end: float, step: float = 15.0) -> list[Any]:
    records, t = [], start
    while t < end:
        rate = rate_at(t)
        obs = Observation(now_s=T0 + t, replicas=10, ready_replicas=10, request_rate_rps=rate)
        records.append(a.step(obs))
        t += step
    return records


def test_defers_to_the_reactive_sizing_until_a_season_of_history_exists() -> None:
    records = replay(predictive(), 0, SEASON - 60)
    assert all(
        r.proposal_reason.startswith(("Deferring", "predicted", "ScaleDown")) for r in records
    )
    assert any(
        "Deferring to reactive: forecast needs a season" in r.proposal_reason for r in records
    )


def test_after_a_season_it_provisions_for_the_ramp_one_lead_time_early() -> None:
    a = predictive()
    replay(a, 0, 2 * SEASON)  # two seasons of history
    # 100 s before the ramp starts, the rate is still 10 req/s; the forecast for the next
    # 120 s already includes the first minutes of the ramp
    before = replay(a, 2 * SEASON, 2 * SEASON + 500)[-1]
    reactive = before.details["reactive_replicas"]
    assert before.details["forecast_rps"] > 15
    assert before.proposal > reactive
    assert before.proposal_reason.startswith("forecast")


def test_the_safety_margin_grows_with_the_forecast_error_seen() -> None:
    steady = predictive()
    replay(steady, 0, 3 * SEASON)
    noisy = predictive()
    t = 0.0
    while t < 3 * SEASON:  # the same pattern with +-30 % bucket-to-bucket noise
        jitter = 1.0 + 0.3 * math.sin(t * 12.9898) * (1 if int(t // 60) % 2 else -1)
        obs = Observation(
            now_s=T0 + t, replicas=10, ready_replicas=10, request_rate_rps=rate_at(t) * jitter
        )
        last = noisy.step(obs)
        t += 15
    margin_steady = replay(steady, 3 * SEASON, 3 * SEASON + 15)[-1].details["margin"]
    assert last.details["margin"] > margin_steady


def test_lead_time_is_learned_from_replicas_becoming_ready() -> None:
    a = predictive(lead_time_s=None, initial_lead_time_s=30)
    rate = {"request_rate_rps": 10.0}
    a.step(Observation(now_s=T0, replicas=2, ready_replicas=2, **rate))
    a.step(Observation(now_s=T0 + 15, replicas=4, ready_replicas=2, **rate))  # asked for 4
    a.step(Observation(now_s=T0 + 75, replicas=4, ready_replicas=3, **rate))
    record = a.step(Observation(now_s=T0 + 135, replicas=4, ready_replicas=4, **rate))
    # decided at T0 (the loop scales right after deciding), ready at T0 + 135: the sample is
    # 135 s; the estimate moves 30 % of the way from 30 s: 30 + 0.3 * 105 = 61.5
    assert record.details["lead_time_s"] == pytest.approx(61.5)


def test_overlapping_rises_are_each_timed_from_their_own_decision() -> None:
    # A ramp: a rise every tick, each ready 120 s after it was decided. Timing the next rise
    # from when the previous one became ready (as before) measured 15 s instead of 120 s.
    a = predictive(lead_time_s=None, initial_lead_time_s=120)
    rate = {"request_rate_rps": 10.0}
    record = None
    for i in range(40):
        t = 15.0 * i
        replicas = 2 + i  # one more each tick, decided at the tick before it shows
        ready = 2 + max(0, i - 7)  # what was decided 8 ticks (120 s) ago is ready now
        obs = Observation(now_s=T0 + t, replicas=replicas, ready_replicas=ready, **rate)
        record = a.step(obs)
    assert record is not None
    assert record.details["lead_time_s"] == pytest.approx(120.0)
    # A rise withdrawn before it is ready teaches nothing.
    b = predictive(lead_time_s=None, initial_lead_time_s=60)
    b.step(Observation(now_s=T0, replicas=2, ready_replicas=2, **rate))
    b.step(Observation(now_s=T0 + 15, replicas=6, ready_replicas=2, **rate))
    b.step(Observation(now_s=T0 + 30, replicas=3, ready_replicas=2, **rate))
    last = b.step(Observation(now_s=T0 + 300, replicas=3, ready_replicas=3, **rate))
    assert last.details["lead_time_s"] == 60.0


def test_conformance() -> None:
    check_policy(FACTORY)


def test_a_state_saved_before_per_rise_timing_still_loads() -> None:
    policy = FACTORY.from_spec({"latency_target_s": 10.0, "slots_per_replica": 8})
    saved = policy.dump_state(policy.initial_state())
    saved["lead"] = {"estimate_s": 95.0, "rise_at_s": 1_700_000_000.0, "rise_to": 7}  # old keys
    state = policy.load_state(saved)
    assert state.lead.estimate_s == 95.0 and state.lead.pending == () and state.lead.last is None
    assert policy.load_state(policy.dump_state(state)) == state
