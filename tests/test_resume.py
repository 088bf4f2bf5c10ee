"""Resuming a history (a takeover, a restart) and rebasing it (a wall-clock step), in the core.

`policies.protocol.resume` joins this process's own history with a saved one and holds
scale-down for one window when part of the last window is unknown; `rebase` moves the history
by a clock step and holds too. The controller's stories with real processes' worth of state
are in tests/controller/test_takeover.py and test_clock.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from policies import Observation, autoscaler
from policies.protocol import hold_window_s

T0 = 1_700_000_000.0
HPA = {
    "policy": "hpa",
    "metric": "in_flight",
    "target_per_replica": 2,
    "max_replicas": 10,
    "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}},
}


PLANNER = {"policy": "planner", "wait_target_s": 1, "slots_per_replica": 8, "release_after_s": 1800}


def at(t: float, replicas: int, in_flight: float) -> Observation:
    return Observation(
        now_s=T0 + t, replicas=replicas, ready_replicas=replicas, in_flight=in_flight
    )


@pytest.mark.parametrize(
    ("spec", "window_s"),
    [
        (HPA, 60.0),  # the behavior's scale-down stabilization window
        ({"policy": "ray", "target_per_replica": 2, "downscale_delay_s": 120}, 120.0),
        ({"policy": "knative", "target_per_replica": 8, "stable_window_s": 90}, 90.0),
        (PLANNER, 1800.0),
        ({"policy": "slo", "latency_target_s": 2, "slots_per_replica": 8}, 120.0),  # delay
        ({"policy": "slo", "latency_target_s": 2, "slots_per_replica": 8, "window_s": 240}, 240.0),
    ],
    ids=["hpa", "ray", "knative", "planner", "slo", "slo-window"],
)
def test_the_hold_after_a_gap_is_one_window_of_the_policy(
    spec: dict[str, Any], window_s: float
) -> None:
    scaler = autoscaler({**spec, "max_replicas": 10})
    assert hold_window_s(scaler.policy, scaler.guards) == window_s


def test_a_fresh_start_holds_scale_down_for_one_window() -> None:
    a = autoscaler(HPA)
    why = a.resume(None, now_s=T0, max_gap_s=15)
    assert why == "HistoryGap: no history to continue from; scale-down held for 60 s"
    assert a.step(at(0, 6, 2)).replicas == 6
    record = a.step(at(45, 6, 2))
    assert record.replicas == 6 and record.guards[-1].name in ("stabilization", "history_gap")
    assert a.step(at(75, 6, 2)).replicas == 1  # the window has passed


def test_a_continuous_saved_history_resumes_without_a_hold() -> None:
    leader = autoscaler(HPA)
    for t in range(0, 61, 10):
        leader.step(at(t, 6, 12))  # 12 in flight: 6 replicas
    successor = autoscaler(HPA)
    assert successor.resume(leader.state, now_s=T0 + 65, max_gap_s=15) is None
    # The saved high recommendations hold scale-down until 60 s after the last one.
    assert successor.step(at(70, 6, 2)).replicas == 6
    assert successor.step(at(121, 6, 2)).replicas == 1


def test_own_and_saved_histories_are_joined_and_the_newer_policy_state_kept() -> None:
    leader, standby = autoscaler(HPA), autoscaler(HPA)
    for t in range(0, 61, 10):
        leader.step(at(t, 6, 12))
        standby.tick(at(t + 1, 6, 12))
        standby.commit("refused", why="not the leader")  # a standby records no event
    assert standby.resume(leader.state, now_s=T0 + 70, max_gap_s=15) is None
    recommended = {r[0] for r in standby.state["guards"]["recommendations"]}
    assert {T0 + 60, T0 + 61} <= recommended  # both sides' recommendations
    assert standby.state["guards"]["up_events"] == leader.state["guards"]["up_events"]
    assert standby.state["last_now_s"] == T0 + 61  # the newer one's


def test_a_saved_history_older_than_the_gap_holds_one_window_from_now() -> None:
    leader = autoscaler(HPA)
    leader.step(at(0, 6, 12))
    successor = autoscaler(HPA)
    why = successor.resume(leader.state, now_s=T0 + 100, max_gap_s=15)
    assert why == "HistoryGap: no history for the last 100 s; scale-down held for 60 s"
    assert successor.step(at(100, 6, 2)).replicas == 6
    assert successor.step(at(159, 6, 2)).replicas == 6
    assert successor.step(at(161, 6, 2)).replicas == 1


def test_a_second_takeover_inside_a_hold_adds_no_new_hold() -> None:
    a = autoscaler(HPA)
    a.resume(None, now_s=T0, max_gap_s=15)  # first start: held until 60 s
    for t in range(0, 31, 10):
        a.step(at(t, 6, 12))
    assert a.resume(a.state, now_s=T0 + 35, max_gap_s=15) is None
    assert a.state["guards"]["hold_down_until_s"] == T0 + 60


@pytest.mark.parametrize("jump_s", [-3600.0, 3600.0], ids=["back", "forward"])
def test_a_clock_step_moves_the_history_and_holds_one_window(jump_s: float) -> None:
    a = autoscaler(HPA)
    for t in range(0, 31, 10):
        a.step(at(t, 6, 12))
    why = a.rebase(jump_s=jump_s, now_s=T0 + 40 + jump_s)
    assert why.startswith(f"ClockJump: the wall clock stepped {jump_s:+.0f} s")
    # Decisions go on at once in the new time (no ClockWentBackwards hold for an hour) ...
    record = a.step(at(40 + jump_s, 6, 12))
    assert not record.reason.startswith("ClockWentBackwards")
    # ... and scale-down waits one window from the step.
    assert a.step(at(90 + jump_s, 6, 2)).replicas == 6
    assert a.step(at(101 + jump_s, 6, 2)).replicas == 1
