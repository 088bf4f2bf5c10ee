"""The `gpu-llm` scenario's bounds, checked against issue 10's reference figures and run in
the simulator (simulator/oracle.py)."""

from __future__ import annotations

import pytest

from policies.observation import Observation
from simulator.engine import run
from simulator.oracle import WindowOracle
from simulator.result import Summary
from simulator.scenarios import Scenario, gpu_llm, scenario


def test_day_one_clairvoyant_plan_is_891_replica_hours() -> None:
    sc = gpu_llm(days=1)
    plan = sc.clairvoyant_plan()
    assert plan.size == 144  # one count per 10-minute window
    assert sc.plan_replica_hours(plan) == pytest.approx(891.2, abs=0.1)


def test_day_one_static_plan_holds_the_peak_window_all_day() -> None:
    sc = gpu_llm(days=1)
    # 76 replicas x 24 h = 1,824 replica-hours (the figure)
    assert sc.static_replicas() == sc.clairvoyant_plan().max()
    assert sc.static_replicas() * 24 == 1824


def test_fourteen_day_clairvoyant_plan_is_about_8891_replica_hours() -> None:
    sc = gpu_llm(days=14)
    assert sc.plan_replica_hours(sc.clairvoyant_plan()) == pytest.approx(8891, abs=1)


def test_the_startup_time_changes_the_model_not_the_bounds() -> None:
    slow, fast = gpu_llm(startup_s=300), gpu_llm(startup_s=60)
    assert slow.name != fast.name
    assert (slow.clairvoyant_plan() == fast.clairvoyant_plan()).all()


@pytest.mark.parametrize(
    "knobs", [{"days": 15}, {"days": 0}, {"days": 2, "start_day": 13}], ids=["15", "0", "past-end"]
)
def test_days_outside_the_series_name_days(knobs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"^days: "):
        gpu_llm(**knobs)  # type: ignore[arg-type]


def test_unknown_scenario_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown 'nope'; known: gpu-llm"):
        scenario("nope")


@pytest.fixture(scope="module")
def quarter_day() -> Scenario:
    return gpu_llm(days=0.25, startup_s=120)


def simulate(sc: Scenario, policy: WindowOracle) -> Summary:
    return run(sc.profile, policy, sc.model, seed=1, keep_records=False, **sc.run_options()).summary


def test_the_clairvoyant_plan_run_in_the_simulator_meets_the_slo_at_its_cost(
    quarter_day: Scenario,
) -> None:
    # The Erlang-C bound and the request-level simulator agree: each window's count, asked for
    # one cold start ahead, meets the SLO and costs the plan plus the cold starts billed.
    sc = quarter_day
    s = simulate(sc, sc.oracle(ahead_s=120))
    plan_rh = sc.plan_replica_hours(sc.clairvoyant_plan())
    assert s.slo_attainment is not None and s.slo_attainment >= 0.99
    assert plan_rh <= s.replica_hours <= 1.02 * plan_rh


def test_reading_each_window_only_as_it_starts_misses_the_slo_at_the_same_cost(
    quarter_day: Scenario,
) -> None:
    # The reactive bound without headroom: the same counts, a cold start late on every rise.
    sc = quarter_day
    s = simulate(sc, sc.oracle(ahead_s=0))
    assert s.slo_attainment is not None and s.slo_attainment < 0.95
    assert s.replica_hours == pytest.approx(sc.plan_replica_hours(sc.clairvoyant_plan()), rel=0.02)
    # Headroom and a release hold buy the SLO back, at a price.
    held = simulate(sc, sc.oracle(ahead_s=0, margin=0.2, hold_s=3600))
    assert held.slo_attainment is not None and held.slo_attainment >= 0.99
    assert held.replica_hours > 1.2 * s.replica_hours
    assert held.direction_changes < s.direction_changes


def test_the_oracle_holds_the_largest_count_of_its_hold_and_reads_ahead() -> None:
    oracle = WindowOracle((2, 5, 3, 1), window_s=600, start_s=0.0, ahead_s=120, hold_s=900)
    state = oracle.initial_state()
    seen = []
    for now_s in (0.0, 479.0, 480.0, 1200.0, 1500.0, 1800.0, 2400.0):
        proposal, state = oracle.decide(Observation(now_s, 3, 3), state)
        seen.append(proposal.replicas)
    # 480 s: window 1 (5) is 120 s ahead; 1200 s: window 2 (3) but 5 is held until 1380 s;
    # 1800 s: window 3 (1), 3 held from 1500 s; 2400 s: past the end, the last window's count.
    assert seen == [2, 2, 5, 5, 3, 3, 1]
    assert oracle.load_state(oracle.dump_state(state)) == state
    with pytest.raises(ValueError, match="oracle: needs counts"):
        WindowOracle((), window_s=600, start_s=0.0)
