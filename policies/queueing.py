"""Queueing formulas the SLO-based policies size with: Erlang-C and its G/G/c correction.

In: arrival rate (req/s), mean service time (s), number of servers (replicas x slots), the
squared coefficients of variation of inter-arrival and service times. Out: the probability of
waiting, mean wait, waiting-time quantiles, and the smallest server count meeting a target.

M/M/c (Erlang-C): with offered load a = lambda * E[S] and c > a servers,
    P(wait > 0) = C(c, a),  P(wait > t) = C(c, a) * exp(-(c/E[S] - lambda) * t),
    E[wait] = C(c, a) * E[S] / (c - a).
G/G/c (Allen-Cunneen): waiting times scale by k = (ca2 + cs2) / 2, so the tail rate is divided
by k and the mean multiplied by it. Exact for M/M/c (k = 1); an approximation otherwise.
Worked example (tests/test_queueing.py): lambda = 10/s, E[S] = 2 s, c = 24: a = 20,
C = 0.29807..., E[wait] = C x 2 / 4 = 0.149 s.
"""

from __future__ import annotations

import math


def erlang_b(servers: int, offered: float) -> float:
    """Blocking probability B(c, a) by the stable recursion B(k) = a B(k-1) / (k + a B(k-1))."""
    if offered <= 0:
        return 0.0
    b = 1.0
    for k in range(1, servers + 1):
        b = offered * b / (k + offered * b)
    return b


def erlang_c(servers: int, offered: float) -> float:
    """P(wait > 0) in M/M/c; 1.0 when the system is not stable (c <= a)."""
    if offered <= 0:
        return 0.0
    if servers <= offered:
        return 1.0
    b = erlang_b(servers, offered)
    rho = offered / servers
    return b / (1 - rho + rho * b)


def _c_from_b(b: float, servers: int, offered: float) -> float:
    if servers <= offered:
        return 1.0
    rho = offered / servers
    return b / (1 - rho + rho * b)


def wait_tail(
    servers: int, arrival_rps: float, service_s: float, t_s: float, variability: float = 1.0
) -> float:
    """P(wait > t) with the Allen-Cunneen factor `variability` = (ca2 + cs2) / 2."""
    offered = arrival_rps * service_s
    if offered <= 0:
        return 0.0
    if servers <= offered:
        return 1.0
    decay = (servers / service_s - arrival_rps) / variability
    return erlang_c(servers, offered) * math.exp(-decay * t_s)


def mean_wait(
    servers: int, arrival_rps: float, service_s: float, variability: float = 1.0
) -> float:
    offered = arrival_rps * service_s
    if offered <= 0:
        return 0.0
    if servers <= offered:
        return math.inf
    return variability * erlang_c(servers, offered) * service_s / (servers - offered)


def wait_quantile_from_c(
    prob_wait: float,
    servers: int,
    arrival_rps: float,
    service_s: float,
    q: float,
    variability: float,
) -> float:
    """The q-quantile of the waiting time given P(wait > 0) = prob_wait."""
    if prob_wait <= 1 - q:
        return 0.0
    rate = (servers / service_s - arrival_rps) / variability
    if rate <= 0:
        return math.inf
    return math.log(prob_wait / (1 - q)) / rate


def wait_quantile(
    servers: int, arrival_rps: float, service_s: float, q: float, variability: float = 1.0
) -> float:
    offered = arrival_rps * service_s
    if offered <= 0:
        return 0.0
    if servers <= offered:
        return math.inf
    c = erlang_c(servers, offered)
    return wait_quantile_from_c(c, servers, arrival_rps, service_s, q, variability)


# Above this offered load the search starts Erlang-B from its series at the first stable count
# (about 9 sqrt(a) terms) instead of carrying the recursion up from one server (a steps).
SERIES_FROM_OFFERED = 10_000.0


def inverse_erlang_b(servers: int, offered: float) -> float:
    """1 / B(c, a) = sum over j = 0..c of c! / ((c - j)! a^j) (the recursion 1/B(k) = 1 +
    (k / a) / B(k - 1) unrolled): positive terms that fall off like exp(-j^2 / 2a) once c > a,
    summed until the next one no longer changes the total."""
    total = term = 1.0
    for j in range(servers):
        term *= (servers - j) / offered
        total += term
        if term < total * 1e-17:
            break
    return total


def smallest_servers(
    arrival_rps: float,
    service_s: float,
    q: float,
    wait_target_s: float,
    *,
    variability: float = 1.0,
    step: int = 1,
    limit: int = 1_000_000,
) -> tuple[int, float]:
    """The fewest servers, in multiples of `step`, whose q-quantile of wait is <= target.

    Returns (servers, predicted wait quantile), never more than `limit` servers (rounded down
    to a multiple of `step`): when that many cannot meet the target it returns them with their
    wait, and at once, with an infinite wait, when the load needs more to be stable at all
    (overload: offered load >= the limit, an infinite rate or service time). Erlang-B is
    carried upward incrementally, so the search costs O(c) in total, O(sqrt(a)) to start
    above SERIES_FROM_OFFERED (tests/test_spec_properties.py).
    """
    offered = arrival_rps * service_s
    if offered <= 0:
        return 0, 0.0
    top = max(step, limit - limit % step)
    if not offered < top:  # NaN and inf included
        return top, math.inf
    servers = step * (math.floor(offered / step) + 1)
    b, k = 1.0, 0
    if offered > SERIES_FROM_OFFERED:
        b, k = 1.0 / inverse_erlang_b(servers, offered), servers
    while True:
        while k < servers:
            k += 1
            b = offered * b / (k + offered * b)
        c = _c_from_b(b, servers, offered)
        w = wait_quantile_from_c(c, servers, arrival_rps, service_s, q, variability)
        if w <= wait_target_s or servers >= top:
            return servers, w
        servers += step
