"""simulator/quality/ without simulating: target choice, the planner's bar, report rows."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.quality import (
    CLAIRVOYANT_RUN,
    REACTIVE,
    REACTIVE_HOLDS_S,
    REACTIVE_MARGINS,
    TARGETS,
    Day,
    Job,
    Measured,
    Outcome,
    Setting,
    baseline_spec,
    build_report,
    choose_target,
    jobs_for,
    markdown,
    plan_moves,
    verdict,
)
from simulator.scenarios import gpu_llm

SHARE = 0.99


def m(attained: float | None, rh: float, changes: int = 10, events: int = 20) -> Measured:
    return Measured(attained, 6.0, 0.5, rh, changes, events)


def test_targets_run_from_3_to_12_in_halves_per_8_slots_and_scale_with_the_slots() -> None:
    assert tuple(3.0 + 0.5 * i for i in range(19)) == TARGETS and TARGETS[-1] == 12.0
    assert gpu_llm().targets == TARGETS  # 8 slots
    assert Setting(name="azure-conv").scenario().targets == tuple(2 * t for t in TARGETS)


def test_the_cheapest_passing_target_is_kept() -> None:
    sweep = [
        (5.0, m(0.997, 1572)),
        (6.0, m(0.9905, 1386)),  # passes and is the cheapest that does
        (6.5, m(0.992, 1390)),  # passes, but a little dearer (noise): not kept
        (7.0, m(0.976, 1301)),  # cheaper still, but misses the SLO
    ]
    choice = choose_target("hpa", sweep, SHARE)
    assert (choice.target, choice.passes) == (6.0, True)
    assert choice.measured.replica_hours == 1386


def test_equal_cost_keeps_the_smaller_target() -> None:
    choice = choose_target("ray", [(6.5, m(0.995, 1400)), (6.0, m(0.995, 1400))], SHARE)
    assert choice.target == 6.0


def test_when_none_passes_the_highest_attainment_is_kept_and_marked() -> None:
    sweep = [(5.0, m(0.985, 1500)), (6.0, m(0.989, 1400)), (7.0, m(0.97, 1300))]
    choice = choose_target("knative", sweep, SHARE)
    assert (choice.target, choice.passes) == (6.0, False)


def test_an_empty_sweep_is_an_error_naming_the_policy() -> None:
    with pytest.raises(ValueError, match=r"^hpa: "):
        choose_target("hpa", [], SHARE)


def test_plan_moves_count_like_the_engine() -> None:
    # 3 -> 4 -> 4 -> 6 (up, up) -> 5 (down: a change) -> 7 (up: a change)
    assert plan_moves(np.array([3, 4, 4, 6, 5, 7])) == (4, 2)
    assert plan_moves(np.array([76, 76, 76])) == (0, 0)


def test_the_planner_passes_when_every_criterion_holds() -> None:
    hpa = m(0.991, 1400, changes=42)
    assert verdict(m(0.992, 1000, changes=14), hpa, True, SHARE) == "PASS"


def test_each_missed_criterion_is_named() -> None:
    hpa = m(0.991, 1400, changes=41)
    # 1300 replica-h: 0.93x HPA (> 0.90x); 221 > 41 / 3
    assert verdict(m(0.953, 1300, changes=221), hpa, True, SHARE) == (
        "MISS: SLO, vs HPA, direction"
    )
    # 15 direction changes against HPA's 41: 41 / 3 = 13.7
    assert verdict(m(0.995, 1000, changes=15), hpa, True, SHARE) == "MISS: direction"
    # exactly on each bar passes: 0.99, 0.90 x 1400 = 1260, 41 / 3 > 13
    assert verdict(m(0.99, 1260, changes=13), hpa, True, SHARE) == "PASS"


def test_where_no_hpa_target_passes_the_bar_is_the_slo_at_the_closest_targets_cost() -> None:
    closest = m(0.9575, 4.5, changes=6)  # HPA's best attainment, at 4.5 replica-h
    assert verdict(m(0.995, 4.5, changes=1), closest, False, SHARE) == "PASS"  # not 0.9x
    assert verdict(m(0.995, 4.6, changes=1), closest, False, SHARE) == "MISS: vs HPA"
    assert verdict(m(0.9586, 4.0, changes=1), closest, False, SHARE) == "MISS: SLO"


def test_baselines_target_requests_in_service_and_queued() -> None:
    sc = gpu_llm()
    assert baseline_spec("hpa", 6, sc)["metric"] == "extra.concurrency"
    knative = baseline_spec("knative", 6, sc)
    assert (knative["metric"], knative["target_utilization"]) == ("concurrency", 1.0)
    assert baseline_spec("ray", 6, sc)["target_per_replica"] == 6
    assert baseline_spec("ray", 6, sc)["max_replicas"] == sc.policy_defaults()["max_replicas"]


def test_report_rows_from_fake_outcomes() -> None:
    setting = Setting(1.0, 120.0, 1)
    day = Day(np.array([0.0, 15.0]), np.array([30.0, 31.0]), np.array([100.0, 101.0]))
    fake = {
        Job(setting, "planner"): m(0.995, 1000, changes=12),
        Job(setting, "static"): m(1.0, 1824, changes=0, events=0),
        Job(setting, "hpa", 5.0): m(0.997, 1572, changes=40),
        Job(setting, "hpa", 6.0): m(0.9905, 1386, changes=41),
        Job(setting, "ray", 6.0): m(0.988, 1423),
    }
    outcomes = [Outcome(job, measured, day, 1.0) for job, measured in fake.items()]
    report = build_report(setting, outcomes)
    rows = {row.policy: row for row in report.rows}
    assert list(rows) == ["planner", "hpa", "ray", "clairvoyant (bound)", "static (peak window)"]
    assert rows["hpa"].target == "6" and rows["ray"].target == "6 (none passes)"
    assert rows["planner"].verdict == "PASS"  # 1000 <= 0.90 x 1386, 12 <= 41 / 3
    assert rows["clairvoyant (bound)"].measured.replica_hours == pytest.approx(891.2, abs=0.1)
    assert rows["clairvoyant (bound)"].vs_clairvoyant == 1.0
    assert rows["static (peak window)"].vs_hpa == pytest.approx(1824 / 1386)
    assert "| planner | - | 99.50% |" in markdown(report)


def test_the_bounds_rows_the_clairvoyant_run_and_the_cheapest_passing_reactive_setting() -> None:
    setting = Setting(1.0, 120.0, 1)
    day = Day(np.array([0.0, 15.0]), np.array([30.0, 31.0]), np.array([100.0, 101.0]))
    fake = {
        Job(setting, "planner"): m(0.995, 1200, changes=15),
        Job(setting, "hpa", 6.5): m(0.991, 1298, changes=39),
        Job(setting, CLAIRVOYANT_RUN): m(0.9988, 901, changes=58),
        Job(setting, REACTIVE, 0.1, 0.0): m(0.93, 978),
        Job(setting, REACTIVE, 0.15, 3600.0): m(0.9918, 1189, changes=16),
        Job(setting, REACTIVE, 0.2, 3600.0): m(0.9941, 1239),
        Job(setting, REACTIVE, 0.4, 0.0): m(0.9862, 1235),
    }
    outcomes = [Outcome(job, measured, day, 1.0) for job, measured in fake.items()]
    report = build_report(setting, outcomes)
    rows = {row.policy: row for row in report.rows}
    assert list(rows) == [
        "planner",
        "hpa",
        CLAIRVOYANT_RUN,
        REACTIVE,
        "clairvoyant (bound)",
        "static (peak window)",
    ]
    assert rows[CLAIRVOYANT_RUN].target == "reads 120 s ahead"
    assert rows[REACTIVE].target == "+15%, hold 60 min"
    assert rows[REACTIVE].vs_hpa == pytest.approx(1189 / 1298)
    assert set(report.sweeps) == {"hpa"}  # the reactive sweep is not a baseline's
    assert REACTIVE in report.days  # plotted
    text = markdown(report)
    assert "reactive reference: reads each window's planned count" in text
    assert "| +15% | - | 99.18%, 1,189 replica-h, 16 dc |" in text  # margin x hold sweep
    # None passes: the highest attainment, marked.
    failing = [o for o in outcomes if o.measured.replica_hours not in (1189, 1239)]
    row = next(r for r in build_report(setting, failing).rows if r.policy == REACTIVE)
    assert row.target == "+40%, hold 0 min (none passes)"


def test_jobs_sweep_the_reactive_bound_only_when_asked() -> None:
    setting = Setting(1.0, 60.0, 1)
    plain = jobs_for(setting, {"hpa": (6.0,)})
    assert [j.policy for j in plain] == ["planner", "static", CLAIRVOYANT_RUN, "hpa"]
    swept = jobs_for(setting, {}, reactive=True)
    reactive = [j for j in swept if j.policy == REACTIVE]
    assert len(reactive) == len(REACTIVE_MARGINS) * len(REACTIVE_HOLDS_S)
    sc = setting.scenario()
    oracle = reactive[-1].spec(sc)
    assert oracle.ahead_s == 0 and oracle.hold_s == REACTIVE_HOLDS_S[-1]
    assert Job(setting, CLAIRVOYANT_RUN).spec(sc).ahead_s == 60.0
