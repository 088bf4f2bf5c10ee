"""Erlang-C (M/M/c): waiting in one FCFS queue in front of c identical servers.

In: `servers` (c, the total slots: replicas x slots per replica), `arrival_rate_rps` (lambda,
Poisson) and `mean_service_s` (1/mu, exponential), plain Python numbers. Out: the steady-state
chance that a request waits, its mean wait, P(wait > t) and wait quantiles, in seconds. Used by
`tests/simulator/test_kernel.py` and `bench/sim_kernel.py` to check the kernel, and by policy
tests as the queueing anchor of the `slo` policy.

With offered load a = lambda / mu (in erlangs) and a < c:
    P(wait > 0) = C(c, a) = B / (1 - (a / c) (1 - B)),  B = Erlang-B(c, a)
    P(wait > t) = C(c, a) exp(-(c - a) t / mean_service_s)
    E[wait]     = C(c, a) mean_service_s / (c - a)
This module validates the arguments and delegates to `policies.queueing`, the one
implementation the `slo` policy sizes with. Erlang-B comes from its recursion B(0) = 1,
B(k) = a B(k-1) / (k + a B(k-1)), which stays in [0, 1] for any c (no factorials, no overflow).
Example: c = 32, a = 25.6 (utilization 0.8), mean service 1 s: C = 0.16062,
E[wait] = C / 6.4 = 0.025097 s, P(wait > 1/6.4 s) = C / e = 0.059090
(tests/simulator/test_kernel.py checks these numbers).
"""

from __future__ import annotations

import math

from policies import queueing


class ErlangError(ValueError):
    """Parameters outside the steady-state M/M/c model."""


def _offered_load(servers: int, arrival_rate_rps: float, mean_service_s: float) -> float:
    if isinstance(servers, bool) or not isinstance(servers, int) or servers < 1:
        raise ErlangError(f"servers: must be a whole number >= 1 (got {servers!r})")
    if not arrival_rate_rps > 0 or not math.isfinite(arrival_rate_rps):
        raise ErlangError(f"arrival_rate_rps: must be > 0 and finite (got {arrival_rate_rps!r})")
    if not mean_service_s > 0 or not math.isfinite(mean_service_s):
        raise ErlangError(f"mean_service_s: must be > 0 and finite (got {mean_service_s!r})")
    load_erlangs = arrival_rate_rps * mean_service_s
    if load_erlangs >= servers:
        raise ErlangError(
            f"arrival_rate_rps: {arrival_rate_rps} x mean_service_s {mean_service_s} = "
            f"{load_erlangs} erlangs must be < servers={servers} for a steady state"
        )
    return load_erlangs


def utilization(servers: int, arrival_rate_rps: float, mean_service_s: float) -> float:
    """Share of time a server is busy: lambda / (c mu)."""
    return _offered_load(servers, arrival_rate_rps, mean_service_s) / servers


def wait_probability(servers: int, arrival_rate_rps: float, mean_service_s: float) -> float:
    """P(wait > 0): the Erlang-C formula C(c, a)."""
    return queueing.erlang_c(servers, _offered_load(servers, arrival_rate_rps, mean_service_s))


def mean_wait_s(servers: int, arrival_rate_rps: float, mean_service_s: float) -> float:
    """E[wait] over all requests (those that do not wait count as 0)."""
    _offered_load(servers, arrival_rate_rps, mean_service_s)
    return queueing.mean_wait(servers, arrival_rate_rps, mean_service_s)


def wait_exceeds_probability(
    servers: int, arrival_rate_rps: float, mean_service_s: float, wait_s: float
) -> float:
    """P(wait > wait_s), for wait_s >= 0."""
    if not wait_s >= 0:
        raise ErlangError(f"wait_s: must be >= 0 (got {wait_s!r})")
    _offered_load(servers, arrival_rate_rps, mean_service_s)
    return queueing.wait_tail(servers, arrival_rate_rps, mean_service_s, wait_s)


def wait_quantile_s(
    servers: int, arrival_rate_rps: float, mean_service_s: float, q: float
) -> float:
    """The smallest t with P(wait <= t) >= q (0 when fewer than 1 - q of requests wait)."""
    if not 0 <= q < 1:
        raise ErlangError(f"q: must be in [0, 1) (got {q!r})")
    _offered_load(servers, arrival_rate_rps, mean_service_s)
    return queueing.wait_quantile(servers, arrival_rate_rps, mean_service_s, q)
