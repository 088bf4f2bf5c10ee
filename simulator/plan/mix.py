"""A heterogeneous SKU mix: VMs of several SKUs together carrying the load, by a MILP (HiGHS).

Formulation, for the candidates j (SKU x tensor parallel) the screen found feasible and the
10-minute windows w of the profile:

    minimize    sum_j 730 R_j r_j  +  (730 / H) sum_j sum_w D_j h b_jw
    subject to  sum_j (k_j / n_jw) (r_j + b_jw) >= 1    for every window w with load
                r_j integer >= 0,  b_jw >= 0

r_j are the VMs of j reserved for the month (at j's cheapest reserved price R_j per hour),
b_jw its burst VMs in window w (on demand, D_j; continuous, rounded up afterwards: a burst
count is its peak's ceiling), h the window in hours, H the profile's hours, k_j the replicas a
VM of j packs, n_jw the replicas of j the screen needs to carry all of w's load at the SLO: a
VM of j carries k_j / n_jw of the window's load. That is linear in the VMs, taking each SKU's
queueing economy of scale at its full-load size, so it is optimistic for a part of the load
(a smaller pool needs a little more than its share): the mix is then simulated to check it.

The same program with one candidate allowed is that SKU alone, so the two costs compare like
with like. A mix is offered when it beats every single SKU by more than `PAYS` (5 %).

Simulation: one target per SKU, the load split in proportion to the capacity the program gives
each (an approximation: a router weighting each SKU's Deployment by that share, e.g. a Gateway
API HTTPRoute's backendRefs weights, with each autoscaled on its own part).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix

from simulator.plan.split import HOURS_PER_MONTH

PAYS = 0.05  # a mix is offered when it beats every single SKU by more than 5 %
RESERVED_TERMS = ("reserved_3y", "reserved_1y")


@dataclass(frozen=True)
class Part:
    """One SKU of a mix."""

    screened: Any  # simulator.plan.build.Screened
    reserved: int  # VMs reserved
    reserved_term: str
    burst_peak: int  # the most burst VMs in a window
    share: float  # the share of the requests it carries


@dataclass(frozen=True)
class Mix:
    parts: list[Part]  # the candidates the program uses (more than one: a mix)
    usd_per_month: float
    single_usd_per_month: dict[str, float]  # the program with one candidate allowed, by label

    @property
    def best_single(self) -> tuple[str, float]:
        label = min(self.single_usd_per_month, key=lambda k: self.single_usd_per_month[k])
        return label, self.single_usd_per_month[label]

    @property
    def saving(self) -> float:
        """The mix's saving on the best single SKU, a share (negative: dearer)."""
        best = self.best_single[1]
        return 1.0 - self.usd_per_month / best if best > 0 else 0.0

    @property
    def pays(self) -> bool:
        return len(self.parts) > 1 and self.saving > PAYS


def _reserved_price(prices: dict[str, float]) -> tuple[str, float]:
    options = [(t, prices[t]) for t in RESERVED_TERMS if t in prices]
    return min(options, key=lambda x: x[1]) if options else ("on_demand", prices["on_demand"])


def solve(
    screened: list[Any], rates: npt.NDArray[np.float64], window_s: float, hours: float
) -> tuple[float, list[Part]]:
    """The program over `screened` (feasible candidates): its monthly cost and the parts used."""
    loaded = np.flatnonzero(rates > 0)
    n_w, n_j = len(loaded), len(screened)
    if n_w == 0 or n_j == 0:
        return 0.0, []
    step_h = window_s / 3600.0
    scale = HOURS_PER_MONTH / hours
    # variables: r_0..r_{n_j-1}, then b_jw for j, w (n_j * n_w)
    cost = np.zeros(n_j + n_j * n_w)
    terms = []
    carry = np.zeros((n_j, n_w))
    for j, s in enumerate(screened):
        prices = s.candidate.sku.usd_per_hour.as_dict()
        term, reserved = _reserved_price(prices)
        terms.append(term)
        cost[j] = HOURS_PER_MONTH * reserved
        cost[n_j + j * n_w : n_j + (j + 1) * n_w] = scale * step_h * prices["on_demand"]
        need = np.maximum(s.needed[loaded].astype(np.float64), 1.0)
        carry[j] = s.candidate.replicas_per_vm / need
    rows = np.concatenate([np.tile(np.arange(n_w), n_j), np.tile(np.arange(n_w), n_j)])
    cols = np.concatenate(
        [np.repeat(np.arange(n_j), n_w), n_j + np.arange(n_j * n_w)],
    )
    vals = np.concatenate([carry.ravel(), carry.ravel()])
    a = coo_matrix((vals, (rows, cols)), shape=(n_w, n_j + n_j * n_w)).tocsr()
    integrality = np.ones(n_j + n_j * n_w)
    result = milp(
        cost,
        constraints=LinearConstraint(a, lb=np.ones(n_w), ub=np.inf),
        integrality=integrality,
        bounds=Bounds(0, np.inf),
        options={"time_limit": 60.0, "mip_rel_gap": 1e-4},
    )
    if result.x is None:
        return float("inf"), []
    r = np.round(result.x[:n_j]).astype(np.int64)
    b = np.ceil(result.x[n_j:].reshape(n_j, n_w) - 1e-6)
    carried = carry * (r[:, None] + b)  # share of each window's load, per candidate
    total = carried.sum(axis=0)
    load = rates[loaded]
    shares = (carried / np.maximum(total, 1e-12) * load).sum(axis=1) / load.sum()
    usd = float(cost[:n_j] @ r + cost[n_j:] @ b.ravel())
    parts = [
        Part(screened[j], int(r[j]), terms[j], int(b[j].max()), float(shares[j]))
        for j in range(n_j)
        if r[j] > 0 or b[j].max() > 0
    ]
    return usd, parts


def best_mix(
    screened: list[Any], rates: npt.NDArray[np.float64], window_s: float, hours: float
) -> Mix | None:
    """The cheapest mix of the feasible candidates, and each one alone, by the same program."""
    feasible = [s for s in screened if s.feasible]
    if len(feasible) < 2:
        return None
    singles = {s.candidate.label: solve([s], rates, window_s, hours)[0] for s in feasible}
    usd, parts = solve(feasible, rates, window_s, hours)
    return Mix(parts, usd, singles)
