"""Erlang-C, checked against the textbook sum formula computed independently here."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies.queueing import erlang_c, mean_wait, smallest_servers, wait_quantile, wait_tail


def erlang_c_by_sums(c: int, a: float) -> float:
    """C(c, a) = [a^c / c! * c / (c - a)] / [sum_{k<c} a^k / k! + a^c / c! * c / (c - a)]."""

    def log_term(k: int) -> float:  # ln(a^k / k!), so large c does not overflow
        return k * math.log(a) - math.lgamma(k + 1)

    scale = log_term(c)
    top = c / (c - a)
    return top / (sum(math.exp(log_term(k) - scale) for k in range(c)) + top)


@pytest.mark.parametrize(("c", "a"), [(1, 0.5), (2, 1.5), (24, 20.0), (32, 20.0), (40, 38.0)])
def test_erlang_c_matches_the_sum_formula(c: int, a: float) -> None:
    assert erlang_c(c, a) == pytest.approx(erlang_c_by_sums(c, a), rel=1e-12)


def test_worked_example_from_the_module_docstring() -> None:
    # lambda = 10/s, E[S] = 2 s, c = 24: a = 20
    assert erlang_c(24, 20.0) == pytest.approx(0.29807, abs=5e-6)
    assert mean_wait(24, 10.0, 2.0) == pytest.approx(0.29807 * 2 / 4, abs=5e-6)


def test_mm1_reduces_to_the_textbook_formulas() -> None:
    # M/M/1, rho = 0.8, E[S] = 1: P(wait > 0) = 0.8, E[wait] = rho / (mu - lambda) = 4
    assert erlang_c(1, 0.8) == pytest.approx(0.8)
    assert mean_wait(1, 0.8, 1.0) == pytest.approx(4.0)
    assert wait_tail(1, 0.8, 1.0, 2.0) == pytest.approx(0.8 * math.exp(-0.2 * 2.0))


def test_unstable_systems_wait_forever() -> None:
    assert erlang_c(4, 4.0) == 1.0
    assert wait_quantile(4, 4.0, 1.0, 0.95) == math.inf


@given(st.floats(0.1, 200), st.floats(0.05, 10), st.floats(0.5, 0.999), st.floats(0, 5))
def test_smallest_servers_is_the_first_count_meeting_the_target(
    rate: float, service: float, q: float, target: float
) -> None:
    servers, wait = smallest_servers(rate, service, q, target)
    assert wait <= target
    assert wait == pytest.approx(wait_quantile(servers, rate, service, q), rel=1e-9, abs=1e-12)
    if servers - 1 > rate * service:
        assert wait_quantile(servers - 1, rate, service, q) > target
