"""PID traces: a closed loop on a small fleet model, with every number worked by hand.

The fleet: `in_flight` is the load (requests in flight over the target); replicas asked for
become ready `startup_s` later; removed ones go at once. With `per_replica: true` and target 10
the PID wants 10 requests in flight per ready replica, so load 300 needs 30 replicas.
Formulas (policies/pid.py): e = m / target - 1; level <- level x exp(ki x e x dt);
desired = ceil(level x (1 + kp x e + kd x slope / target)).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pytest

from policies import Observation, SpecError, autoscaler
from policies.pid import FACTORY
from policies.protocol import DecisionRecord
from policies.testing import check_policy

T0 = 1_700_000_000.0
PID = "policies.pid:FACTORY"


def pid(**keys: Any) -> Any:
    spec: dict[str, Any] = {
        "policy": PID,
        "signal": "in_flight",
        "per_replica": True,
        "target": 10,
        "kp": 0.2,
        "ki": 0.02,
        "dead_time_s": 60,
        "max_replicas": 40,
    }
    spec.update(keys)
    return autoscaler(spec)


class Fleet:
    """Replicas asked for are ready `startup_s` later; the load is all in flight."""

    def __init__(self, replicas: int, startup_s: float = 60) -> None:
        self.replicas = self.ready = replicas
        self.startup_s = startup_s
        self.pending: list[tuple[float, int]] = []  # (ready at t, how many)

    def observe(self, t: float, load: float) -> Observation:
        self.ready += sum(n for at, n in self.pending if at <= t)
        self.pending = [(at, n) for at, n in self.pending if at > t]
        return Observation(
            now_s=T0 + t,
            replicas=self.replicas,
            ready_replicas=self.ready,
            starting_replicas=self.replicas - self.ready,
            in_flight=load,
        )

    def scale(self, t: float, replicas: int) -> None:
        if replicas > self.replicas:
            self.pending.append((t + self.startup_s, replicas - self.replicas))
        else:
            self.ready = min(self.ready, replicas)
        self.replicas = replicas


def run(
    a: Any, fleet: Fleet, load: Callable[[float], float], until_s: float, every_s: float = 15
) -> dict[float, DecisionRecord]:
    records: dict[float, DecisionRecord] = {}
    t = 0.0
    while t <= until_s:
        record = a.step(fleet.observe(t, load(t)))
        fleet.scale(t, record.replicas)
        records[t] = record
        t += every_s
    return records


def step(
    before: float, after: float, at_s: float, back_s: float = math.inf
) -> Callable[[float], float]:
    return lambda t: after if at_s <= t < back_s else before


def test_the_conformance_suite_passes() -> None:
    check_policy(FACTORY)


def test_a_step_in_load_is_met_by_p_at_once_and_finished_by_the_integral() -> None:
    seen = run(pid(), Fleet(10), step(100, 300, at_s=60), until_s=600)
    # 0-45 s: 10 per replica is the target: within tolerance, the level stays at 10
    assert seen[45].replicas == 10 and seen[45].details["level"] == 10
    # 60 s: load triples, e = 30 / 10 - 1 = 2.0.
    # level = 10 x exp(0.02 x 2 x 15) = 18.2212; output = 18.2212 x (1 + 0.2 x 2) = 25.51 -> 26
    assert seen[60].details["level"] == pytest.approx(18.2212, abs=1e-4)
    assert seen[60].replicas == 26
    # 75 s sees the change: dead time until 135 s. The new replicas are ready at 120 s:
    # e = 300 / 26 / 10 - 1 = 0.1538, but the level stays frozen and 26 is not undone
    assert seen[120].details["integral"] == "frozen: dead time"
    assert seen[120].details["level"] == pytest.approx(18.2212, abs=1e-4)
    assert seen[120].replicas == 26
    # 135 s: 26 is observed too small, so the level rises to 26, then integrates:
    # 26 x exp(0.02 x 0.1538 x 15) = 27.2281; output 27.2281 x 1.0308 = 28.07 -> 29
    assert seen[135].details["level"] == pytest.approx(27.2281, abs=1e-4)
    assert seen[135].replicas == 29
    # 195 s: 29 ready, 300 / 29 = 10.34 per replica is within 5 %: it holds 29 from then on
    assert {seen[t].replicas for t in seen if t >= 150} == {29}
    assert seen[600].reason.startswith("WithinTolerance")


def test_saturating_at_max_replicas_does_not_wind_up_the_integral() -> None:
    load = step(100, 300, at_s=60, back_s=660)  # 300 needs 30, but max_replicas is 20
    seen = run(pid(max_replicas=20), Fleet(10), load, until_s=1200)
    # 60 s: the PID asks for 26 (as above); the bounds guard caps it at 20
    assert (seen[60].proposal, seen[60].replicas) == (26, 20)
    # from 135 s the level is held at max_replicas: it would otherwise integrate e = 0.5 for
    # ten minutes, 20 x exp(0.02 x 0.5 x 525) = 3.8e3, and take as long to come back
    levels = [seen[t].details["level"] for t in seen if 135 <= t < 660]
    assert max(levels) == 20.0 and min(levels) == 20.0
    assert seen[300].details["integral"] == "frozen: the count did not follow the proposal"
    # 660 s: the load falls back to 100: e = 100 / 20 / 10 - 1 = -0.5, and the way down starts
    # at once: 20 x exp(-0.02 x 0.5 x 15) = 17.2142; output 17.2142 x (1 - 0.1) = 15.49 -> 16
    assert seen[660].details["level"] == pytest.approx(17.2142, abs=1e-4)
    assert seen[660].replicas == 16
    # and it settles where 100 in flight is 10 per replica, within the 5 % tolerance
    assert seen[1200].replicas == 10


def test_2_s_and_15_s_ticks_integrate_the_same_level() -> None:
    # a signal the replica count does not change, 50 % below target; P off, no dead time, so
    # only the integral moves: after 60 s, level = 20 x exp(0.01 x -0.5 x 60) = 14.8164
    spec = {"signal": "extra.kv_cache_usage", "per_replica": False, "target": 0.8,
            "kp": 0.0, "ki": 0.01, "dead_time_s": 0}  # fmt: skip
    levels = {}
    for every_s in (2, 15):
        a = pid(**spec)
        replicas = 20
        for i in range(60 // every_s + 1):
            obs = Observation(
                now_s=T0 + i * every_s, replicas=replicas, ready_replicas=replicas,
                extra={"kv_cache_usage": 0.4},
            )  # fmt: skip
            record = a.step(obs)
            replicas = record.replicas
        levels[every_s] = record.details["level"]
        assert replicas == 15  # ceil(14.8164)
    assert levels[2] == pytest.approx(20 * math.exp(-0.3), rel=1e-12)
    assert levels[15] == pytest.approx(levels[2], rel=1e-12)


def test_a_ramp_gives_the_same_derivative_at_2_s_and_15_s_ticks() -> None:
    # m rises 0.01 per second; the filtered slope after 60 s is 0.01 x (1 - exp(-60 / 10))
    # for any tick interval, so d_term = kd x slope / target = 20 x 0.009975 / 0.8 = 0.24938
    spec = {"signal": "extra.kv_cache_usage", "per_replica": False, "target": 0.8,
            "kp": 0.0, "ki": 0.0, "kd": 20.0, "derivative_filter_s": 10}  # fmt: skip
    for every_s in (2, 15):
        a = pid(**spec)
        for i in range(60 // every_s + 1):
            t = i * every_s
            obs = Observation(
                now_s=T0 + t, replicas=10, ready_replicas=10,
                extra={"kv_cache_usage": 0.2 + 0.01 * t},
            )  # fmt: skip
            record = a.step(obs)
        assert record.details["d_term"] == pytest.approx(20 * 0.01 * (1 - math.exp(-6)) / 0.8)


def test_a_step_in_the_measurement_kicks_d_by_a_bounded_amount_at_any_tick() -> None:
    # m jumps 0.4 -> 0.6 between two ticks: the filtered slope moves by at most
    # 0.2 / derivative_filter_s, so d_term <= kd x 0.02 / 0.8 = 0.5 however short the tick
    spec = {"signal": "extra.kv_cache_usage", "per_replica": False, "target": 0.8,
            "kp": 0.0, "ki": 0.0, "kd": 20.0, "derivative_filter_s": 10}  # fmt: skip
    for every_s in (0.5, 2, 15):
        a = pid(**spec)
        a.step(Observation(now_s=T0, replicas=10, ready_replicas=10, extra={"kv_cache_usage": 0.4}))
        record = a.step(
            Observation(
                now_s=T0 + every_s, replicas=10, ready_replicas=10, extra={"kv_cache_usage": 0.6}
            )
        )
        # exactly (1 - exp(-dt / 10)) x 0.2 / dt x 20 / 0.8
        kick = (1 - math.exp(-every_s / 10)) * 0.2 / every_s * 20 / 0.8
        assert record.details["d_term"] == pytest.approx(kick)
        assert 0 < kick <= 0.5


def test_dead_time_freezes_the_integral_and_blocks_scale_down_until_it_ends() -> None:
    a = pid(dead_time_s=60)
    a.step(Observation(now_s=T0, replicas=10, ready_replicas=10, in_flight=100))
    # someone scales 10 -> 14 by hand; the load is now 8 per replica (e = -0.2)
    record = a.step(Observation(now_s=T0 + 15, replicas=14, ready_replicas=14, in_flight=112))
    assert record.details["integral"] == "frozen: dead time"
    assert record.replicas == 14 and record.reason.startswith("DeadTime")
    # at 74 s, 59 s after the change: still frozen, still 14
    record = a.step(Observation(now_s=T0 + 74, replicas=14, ready_replicas=14, in_flight=112))
    assert record.replicas == 14 and record.details["level"] == 10
    # at 15 + 60 = 75 s the dead time is over: 14 is too many, the level (10) integrates down:
    # 10 x exp(0.02 x -0.2 x 1) = 9.9601 (1 s since the last sample); output x 0.96 -> 10
    record = a.step(Observation(now_s=T0 + 75, replicas=14, ready_replicas=14, in_flight=112))
    assert record.details["level"] == pytest.approx(9.9601, abs=1e-4)
    assert record.replicas == 10


def test_a_scale_up_is_not_held_by_the_dead_time() -> None:
    a = pid(dead_time_s=300)
    a.step(Observation(now_s=T0, replicas=10, ready_replicas=10, in_flight=100))
    a.step(Observation(now_s=T0 + 15, replicas=12, ready_replicas=12, in_flight=100))  # by hand
    # 30 s later, inside the dead time, the load doubles: P answers the present error at once
    record = a.step(Observation(now_s=T0 + 45, replicas=12, ready_replicas=12, in_flight=240))
    # e = 240 / 12 / 10 - 1 = 1.0; level frozen at 10; output 10 x (1 + 0.2) = 12: no change
    assert record.details["integral"] == "frozen: dead time"
    assert record.replicas == 12
    record = a.step(Observation(now_s=T0 + 60, replicas=12, ready_replicas=12, in_flight=400))
    # e = 400 / 12 / 10 - 1 = 2.3333: output 10 x 1.4667 = 14.67 -> 15, above 12: it goes
    assert record.replicas == 15


def test_a_missing_signal_holds_and_the_gap_integrates_at_most_max_step_s() -> None:
    a = pid(max_step_s=60, kp=0.0, dead_time_s=0)
    a.step(Observation(now_s=T0, replicas=10, ready_replicas=10, in_flight=100))
    held = a.step(Observation(now_s=T0 + 15, replicas=10, ready_replicas=10, in_flight=None))
    assert (held.proposal, held.reason) == (None, "MissingSignal: in_flight missing; holding")
    # back 15 minutes later at e = 0.5: the integral takes 60 s of it, not 900 s:
    # 10 x exp(0.02 x 0.5 x 60) = 18.2212 (900 s would give 81030)
    record = a.step(Observation(now_s=T0 + 900, replicas=10, ready_replicas=10, in_flight=150))
    assert record.details["level"] == pytest.approx(18.2212, abs=1e-4)


def test_per_replica_with_no_ready_replica_holds() -> None:
    record = pid().step(Observation(now_s=T0, replicas=3, ready_replicas=0, in_flight=50))
    assert record.proposal is None
    assert record.reason.startswith("NoReadyReplicas")


def test_a_latency_signal_is_used_as_it_is() -> None:
    a = pid(signal="latency_p95_s", per_replica=False, target=2.0)
    # p95 3 s against 2 s: e = +0.5; first tick: level = current 10, output 10 x 1.1 = 11
    record = a.step(Observation(now_s=T0, replicas=10, ready_replicas=10, latency_p95_s=3.0))
    assert record.details["error"] == pytest.approx(0.5)
    assert record.replicas == 11
    assert a.policy.required_signals == {"latency_p95_s"}


def test_state_resumes_exactly_through_json() -> None:
    load = step(100, 300, at_s=60, back_s=400)
    straight = run(pid(), Fleet(10), load, until_s=900)
    fleet, saved, t = Fleet(10), None, 0.0
    while t <= 900:
        a = pid() if saved is None else autoscaler(pid().spec, state=saved)
        record = a.step(fleet.observe(t, load(t)))
        fleet.scale(t, record.replicas)
        assert record.to_dict() == straight[t].to_dict()
        saved = json.loads(json.dumps(a.state))
        t += 15


def test_spec_round_trips_with_every_default_written_out() -> None:
    a = pid()
    assert {k: v for k, v in a.spec.items() if k not in {"min_replicas", "max_replicas"}} == {
        "policy": PID, "signal": "in_flight", "target": 10.0, "per_replica": True,
        "kp": 0.2, "ki": 0.02, "kd": 0.0, "derivative_filter_s": 10.0, "dead_time_s": 60.0,
        "tolerance": 0.05, "max_step_s": 60.0,
    }  # fmt: skip
    assert autoscaler(json.loads(json.dumps(a.spec))).spec == a.spec


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"target": 0}, "pid spec: target: must be > 0 (got 0)"),
        ({"signal": "p95"}, "signal: must be an Observation signal"),
        ({"ki": -0.1}, "ki: must be >= 0 (got -0.1)"),
        (
            {"dead_time": 30},
            "dead_time: unknown key; allowed keys: dead_time_s, derivative_filter_s",
        ),
    ],
    ids=["target", "signal", "ki", "unknown"],
)
def test_bad_specs_name_the_key_as_written(change: dict[str, Any], expected: str) -> None:
    with pytest.raises(SpecError) as caught:
        pid(**change)
    assert "\n" not in str(caught.value)
    assert expected in str(caught.value)
