"""simulator.plan: the queueing screen, the reserved/burst split, growth, by hand-computed cases."""

from __future__ import annotations

import math
from typing import Any

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


def _azure_conv_a100() -> tuple[Any, Any, Any]:
    from simulator.plan.candidates import candidates  # noqa: PLC0415
    from simulator.plan.catalog import default_catalog  # noqa: PLC0415
    from simulator.traces import azure_conv  # noqa: PLC0415

    cands = candidates(default_catalog(), "llama2-70b", slots_per_replica=16)
    a100 = [c for c in cands if c.label.endswith("A100_v4 tp2") and "NC" in c.sku.name]
    return azure_conv(), a100[0], a100[1]


def test_a_run_starts_with_what_its_policy_asks_for_not_from_cold() -> None:
    """Started with 1 replica, the planner would ramp up through cold starts while the load is
    already there; plan_run starts it with its own ask over the first 20 minutes."""
    from simulator.plan.build import plan_run, policy_configs  # noqa: PLC0415

    log, a100, _ = _azure_conv_a100()
    slo = SloTarget(1.0, "wait", 0.99)
    spec = {**policy_configs("planner", 16, slo)[0], "max_replicas": 14}
    out = plan_run((log.slice(0, 1800), spec, a100.replica_model(), 1, slo, 1))
    assert out["initial"] >= 8  # the planner holds 10-11 on this load; the screen says 6-8
    assert out["summary"]["initial_replicas"] == out["initial"]
    assert out["summary"]["slo_met"]


def test_vm_sizes_of_one_gpu_and_tensor_parallel_share_one_run() -> None:
    """NC48ads and NC96ads A100 v4 at tp 2 serve alike (only the VM packing and price differ):
    map_unique runs them once and hands both the same replicas."""
    from simulator.plan.build import map_unique, policy_configs  # noqa: PLC0415

    log, one, two = _azure_conv_a100()
    assert one.sku.name != two.sku.name and one.replicas_per_vm != two.replicas_per_vm
    slo = SloTarget(1.0, "wait", 0.99)
    spec = {**policy_configs("hpa", 16, slo)[0], "max_replicas": 14}
    load = log.slice(0, 900)
    runs: list[int] = []
    jobs = [(load, spec, c.replica_model(), 1, slo, 4) for c in (one, two)]
    outs = map_unique(jobs, None, lambda done, total, _r: runs.append(total))
    assert runs == [1]
    assert outs[0] is outs[1]


def test_the_mix_reserves_the_cheap_to_reserve_sku_and_bursts_on_the_cheap_on_demand_one() -> None:
    """By hand: 100 windows of 10 minutes needing 10 VMs, 5 of them 20 (either SKU, one
    replica a VM). A reserves at 1 USD/h, bursts at 10; B reserves at 5, bursts at 6. A alone:
    reserve 10, burst 10 for 5 % of hours: 10 + 10 x 0.05 x 10 = 15 USD/h (reserving 20 is
    20). B alone: 10 x 5 + 10 x 0.05 x 6 = 53. The mix: A's 10 reserved, the peak on B:
    10 + 10 x 0.05 x 6 = 13 USD/h, 13.3 % below A alone: it pays (> 5 %)."""
    from types import SimpleNamespace as Ns  # noqa: PLC0415

    from simulator.plan.mix import best_mix  # noqa: PLC0415

    def sku(label: str, reserved: float, on_demand: float) -> Any:
        prices = {"on_demand": on_demand, "reserved_3y": reserved}
        usd = Ns(as_dict=lambda: prices)
        needed = np.array([20 if w % 20 == 0 else 10 for w in range(100)])
        cand = Ns(label=label, replicas_per_vm=1, sku=Ns(usd_per_hour=usd))
        return Ns(candidate=cand, needed=needed, feasible=True)

    rates = np.full(100, 5.0)
    mix = best_mix([sku("A", 1.0, 10.0), sku("B", 5.0, 6.0)], rates, 600.0, 100 / 6)
    assert mix is not None
    assert mix.single_usd_per_month == pytest.approx({"A": 730 * 15.0, "B": 730 * 53.0})
    assert mix.usd_per_month == pytest.approx(730 * 13.0)
    assert mix.saving == pytest.approx(2 / 15) and mix.pays
    by = {p.screened.candidate.label: p for p in mix.parts}
    assert (by["A"].reserved, by["A"].burst_peak) == (10, 0)
    assert (by["B"].reserved, by["B"].burst_peak) == (0, 10)
    assert by["A"].share + by["B"].share == pytest.approx(1.0)
    assert by["B"].share == pytest.approx(5 * 0.5 / 100)  # half the load of 5 windows in 100
