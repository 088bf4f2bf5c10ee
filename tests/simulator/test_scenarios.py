"""The `gpu-llm` scenario's bounds, checked against issue 10's reference figures."""

from __future__ import annotations

import pytest

from simulator.scenarios import gpu_llm, scenario


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
