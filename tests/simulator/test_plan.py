"""simulator.plan: the queueing screen, the reserved/burst split, growth, by hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from policies.queueing import erlang_c
from simulator.plan.growth import GrowthError, growth
from simulator.plan.needed import ServiceStats, replicas_needed
from simulator.plan.split import best_floor, monthly_cost, splits
from simulator.result import SloTarget


def test_the_screen_matches_a_hand_computed_erlang_c_case() -> None:
    """lambda = 10/s, E[S] = 2 s (exponential), one slot a replica, wait <= 0.5 s for 90 %:
    a = 20. With c servers, P(wait > t) = C(c, a) exp(-(c - a) t / E[S]). By hand (Erlang-C
    by the Erlang-B recursion): c = 23: C = 0.4505, P(W > 0.5) = 0.4505 e^-0.75 = 0.2128;
    c = 24: C = 0.2981, P = 0.2981 e^-1 = 0.1097; c = 25: C = 0.1888, P = 0.1888 e^-1.25 =
    0.0541 <= 0.10. So 25 replicas."""
    assert erlang_c(24, 20.0) == pytest.approx(0.29807, abs=1e-4)
    p25 = erlang_c(25, 20.0) * math.exp(-(25 - 20) * 0.5 / 2.0)
    p24 = erlang_c(24, 20.0) * math.exp(-(24 - 20) * 0.5 / 2.0)
    assert p25 <= 0.10 < p24
    stats = ServiceStats(mean_s=2.0, scv=1.0, quantile_s=4.6, share=0.9)
    needed = replicas_needed(np.array([10.0, 0.0]), stats, SloTarget(0.5, "wait", 0.9), slots=1)
    assert needed.tolist() == [25, 0]
    # 8 slots a replica: the fewest multiples of 8 servers, 32 -> 4 replicas
    assert replicas_needed(np.array([10.0]), stats, SloTarget(0.5, "wait", 0.9), slots=8)[0] == 4


def test_a_latency_target_the_service_alone_exceeds_is_infeasible_at_any_size() -> None:
    stats = ServiceStats(mean_s=2.0, scv=1.0, quantile_s=6.0, share=0.95)
    needed = replicas_needed(np.array([1.0]), stats, SloTarget(5.0, "latency", 0.95), slots=8)
    assert needed[0] > 100_000


def test_the_reserved_floor_is_the_count_busy_at_least_the_break_even_share() -> None:
    # 10 hours: 4 VMs for 3 h, 2 VMs for 5 h, 1 VM for 2 h; reserved at 60 % of on demand
    vms = np.array([4] * 3 + [2] * 5 + [1] * 2, dtype=float)
    # busy shares: >= 1 VM 100 %, >= 2 VMs 80 %, >= 3 VMs 30 %, >= 4 VMs 30 %: floor 2
    assert best_floor(vms, 1.0, reserved_usd_h=0.6, on_demand_usd_h=1.0) == 2
    usd, burst_h = monthly_cost(vms, 1.0, 2, 0.6, 1.0)
    # per 10 h: 2 x 0.6 x 10 reserved + (2 x 3) burst hours x 1.0 = 18; a month is 73 of them
    assert usd == pytest.approx(18 * 73.0)
    assert burst_h == pytest.approx(6 * 73.0)
    options = splits(vms, 1.0, {"on_demand": 1.0, "reserved_1y": 0.6, "reserved_3y": 0.4,
                                "spot": 0.3})  # fmt: skip
    assert [o.term for o in options] == ["on_demand", "reserved_1y", "reserved_3y"]
    assert options[0].usd_per_month == pytest.approx(24 * 73.0)  # 24 VM-hours on demand
    assert options[2].reserved == 2  # >= 3 VMs only 30 % of hours < 40 %
    assert options[1].usd_per_month_spot_burst == pytest.approx((12 + 6 * 0.3) * 73.0)


def test_growth_steps_and_bad_growth_are_one_line() -> None:
    g = growth("30%/quarter", "4q")
    assert [m for m, _ in g.steps()] == [0, 3, 6, 9, 12]
    assert g.steps()[-1][1] == pytest.approx(1.3**4)
    assert growth("5%/month", "6m").steps()[-1] == (6, pytest.approx(1.05**6))
    assert growth(None, None).steps() == [(0, 1.0)]
    for text, horizon, message in [
        ("30", None, "--growth 30: use RATE%/PERIOD"),
        ("30%/fortnight", None, "--growth 30%/fortnight: use RATE%/PERIOD"),
        ("5000%/year", None, "between -90% and 1000%"),
        ("10%/month", "4w", "--horizon 4w: use a count and a unit"),
        ("10%/month", "200m", "at most 10 years"),
    ]:
        with pytest.raises(GrowthError) as caught:
            growth(text, horizon)
        assert message in str(caught.value) and "\n" not in str(caught.value)
