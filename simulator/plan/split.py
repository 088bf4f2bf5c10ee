"""The reserved floor and the burst: how many VMs to reserve, and what a month costs.

In: VMs in use over time (equal steps), the VM's hourly prices. A reserved VM is paid every
hour whether used or not; a burst VM only while in use. Reserving one more VM pays off when it
is busy at least the break-even share of hours, reserved / on-demand price: the best floor is
the largest count the fleet uses at least that share of the time (the cost is convex in the
floor, so that count is the minimum; `best_floor` finds it by direct evaluation). Burst on spot
is cheaper still but may be evicted: shown beside, never recommended alone. A month is 730 h.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

HOURS_PER_MONTH = 730.0


@dataclass(frozen=True)
class Split:
    """A month's cost with `reserved` VMs reserved under `term` and the rest on demand."""

    term: str  # "on_demand" (nothing reserved), "reserved_1y", "reserved_3y"
    reserved: int
    break_even_share: float  # reserved price / on-demand price
    usd_per_month: float
    burst_vm_hours_per_month: float
    usd_per_month_spot_burst: float | None  # the same floor, the burst on spot


def monthly_cost(
    vms: npt.ArrayLike, step_h: float, reserved: int, reserved_usd_h: float, on_demand_usd_h: float
) -> tuple[float, float]:
    """(USD per month, burst VM-hours per month) with `reserved` VMs reserved."""
    v = np.asarray(vms, dtype=np.float64)
    hours = len(v) * step_h
    burst_h = float(np.maximum(v - reserved, 0.0).sum() * step_h)
    scale = HOURS_PER_MONTH / hours if hours > 0 else 0.0
    usd = reserved * reserved_usd_h * HOURS_PER_MONTH + burst_h * scale * on_demand_usd_h
    return usd, burst_h * scale


def best_floor(
    vms: npt.ArrayLike, step_h: float, reserved_usd_h: float, on_demand_usd_h: float
) -> int:
    """The reserved count with the lowest monthly cost (0 when reserving never pays)."""
    v = np.asarray(vms, dtype=np.float64)
    if v.size == 0 or not reserved_usd_h < on_demand_usd_h:
        return 0
    top = int(np.ceil(v.max()))
    costs = [monthly_cost(v, step_h, r, reserved_usd_h, on_demand_usd_h)[0] for r in range(top + 1)]
    return int(np.argmin(costs))


def splits(vms: npt.ArrayLike, step_h: float, prices: dict[str, float | None]) -> list[Split]:
    """On demand only, and the best floor under each reserved term the prices give."""
    on_demand = float(prices["on_demand"] or 0.0)
    spot = prices.get("spot")
    out = []
    for term in ("on_demand", "reserved_1y", "reserved_3y"):
        price = on_demand if term == "on_demand" else prices.get(term)
        if price is None:
            continue
        floor = 0 if term == "on_demand" else best_floor(vms, step_h, float(price), on_demand)
        usd, burst_h = monthly_cost(vms, step_h, floor, float(price), on_demand)
        with_spot = None
        if spot is not None:
            with_spot = monthly_cost(vms, step_h, floor, float(price), float(spot))[0]
        share = float(price) / on_demand if on_demand > 0 else float("nan")
        out.append(Split(term, floor, share, usd, burst_h, with_spot))
    return out


def cheapest(options: list[Split]) -> Split:
    return min(options, key=lambda s: s.usd_per_month)
