"""`LinearRateProfile`: a piecewise-linear rate drawn by time rescaling (issue 19).

Statistical checks use fixed seeds, so each always passes or always fails; tolerances are about
four standard errors of the measured quantity (given next to each), as in test_profiles.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from simulator import run
from simulator.profiles import (
    LinearRateProfile,
    ProfileError,
    interpolated,
    linear_rates,
    oversize,
    rate_steps,
)
from simulator.traces import read_rate_series

HPA = {"policy": "hpa", "metric": "in_flight", "target_per_replica": 6, "max_replicas": 40}
DAY_S = 86_400.0


def rng(seed: int = 7) -> np.random.Generator:
    return np.random.default_rng(seed)


def gaps_cv(times_s: np.ndarray) -> float:
    gaps = np.diff(times_s)
    return float(gaps.std() / gaps.mean())


# ---- the rate: counts follow Lambda, bins follow the line


@pytest.mark.parametrize("cv", [1.0, 3.0])
def test_a_day_long_ramp_draws_lambda_arrivals_in_all_and_in_its_first_half(cv: float) -> None:
    # 0.5 -> 10 req/s over a day: Lambda(day) = 453,600, Lambda(half a day) = 124,200.
    profile = linear_rates([0.0, DAY_S], [0.5, 10.0], cv=cv, duration_s=DAY_S)
    assert profile.expected_requests() == pytest.approx(453_600)
    assert profile.expected_requests(0, DAY_S / 2) == pytest.approx(124_200)
    times = profile.arrivals(rng()).time_s
    # A renewal count has variance ~ Lambda cv^2: sd 674 (cv 1) / 2,020 (cv 3) for the day,
    # 352 / 1,057 for the first half.
    assert times.size == pytest.approx(453_600, abs=4 * cv * math.sqrt(453_600))
    first_half = np.count_nonzero(times < DAY_S / 2)
    assert first_half == pytest.approx(124_200, abs=4 * cv * math.sqrt(124_200))


def test_each_minute_of_a_ramp_gets_the_linear_rate_with_no_step_at_the_knots() -> None:
    # Up from 0 to 100 req/s, down to 20, up to 60, knots on minute edges: the count of each
    # minute is Poisson with mean 60 x the rate at its centre (a step replay would be off by
    # up to 25 sd at the knots).
    knots, rates = [0.0, 1200.0, 2400.0, 3600.0], [0.0, 100.0, 20.0, 60.0]
    profile = linear_rates(knots, rates, duration_s=3600.0)
    centres_s = np.arange(60) * 60.0 + 30.0
    expected = 60.0 * np.interp(centres_s, knots, rates)
    np.testing.assert_allclose(profile.rate_rps_at(centres_s), expected / 60.0)
    for minute, want in enumerate(expected):
        lo_s = minute * 60.0
        assert profile.expected_requests(lo_s, lo_s + 60.0) == pytest.approx(want, rel=1e-12)
    counts = np.bincount((profile.arrivals(rng()).time_s // 60).astype(int), minlength=60)
    z = (counts - expected) / np.sqrt(expected)
    assert np.max(np.abs(z)) < 4.5, np.round(z, 1)  # 60 bins: a fair draw exceeds 4.5 ~ 1e-4


def test_many_knots_per_block_place_each_arrival_on_its_own_slope() -> None:
    # A zig-zag 20 -> 80 -> 20 req/s with a knot every 10 s: 60 pieces per 600 s block. Each
    # 2.5 s bin is Poisson with mean Lambda over it (68.75 .. 181.25): the sum of squared z over
    # the 240 bins is chi-square(240), sd 22. Placing arrivals uniformly inside each piece would
    # put 250 instead of 175 and 325 in the halves of a rising one: ~5 sd off in every bin.
    knots = np.arange(61) * 10.0
    profile = linear_rates(knots, np.where(np.arange(61) % 2 == 0, 20.0, 80.0), duration_s=600)
    edges_s = np.arange(241) * 2.5
    expected = np.array([profile.expected_requests(a, b) for a, b in pairwise(edges_s)])
    np.testing.assert_allclose(expected[:4], [68.75, 106.25, 143.75, 181.25])
    counts = np.histogram(profile.arrivals(rng()).time_s, bins=edges_s)[0]
    chi_square = float(np.sum((counts - expected) ** 2 / expected))
    assert chi_square < 240 + 5 * 22


# ---- the burstiness: the CV of the gaps


@pytest.mark.parametrize(
    ("cv", "want"), [(None, 1.0), (1.0, 1.0), (2.0, 2.0), ([1.0, 3.0], 2.0)], ids=str
)
def test_gaps_have_the_cv_at_their_time(cv: float | list[float] | None, want: float) -> None:
    # 100 req/s for 3000 s. The ramp 1 -> 3 is measured over its middle 300 s, where it is
    # 1.8..2.2 (the mix's CV is ~2.005). Sample CV sd: ~0.35% over 3e5 gaps at cv 2, ~0.9%
    # over 3e4 (measured over 40 seeds); the 2% also covers the restart at each block edge.
    profile = linear_rates([0.0, 3000.0], [100.0, 100.0], cv=cv, duration_s=3000.0)
    times = profile.arrivals(rng()).time_s
    if isinstance(cv, list):
        times = times[(times >= 1350) & (times < 1650)]
        assert gaps_cv(times) == pytest.approx(want, rel=0.04)
    else:
        assert gaps_cv(times) == pytest.approx(want, rel=0.02)
    assert times.size == pytest.approx(100 * (3000 if not isinstance(cv, list) else 300), rel=0.05)


def test_cv_zero_is_evenly_spaced_with_a_random_phase_in_each_block() -> None:
    profile = linear_rates([0.0], [4.0], cv=0.0, duration_s=100.0, block_s=1000.0)
    times = profile.arrivals(rng()).time_s
    assert times.size == 400
    np.testing.assert_allclose(np.diff(times), 0.25)
    assert 0.0 <= times[0] < 0.25 and times[0] != profile.arrivals(rng(8)).time_s[0]


def test_blocks_restart_in_equilibrium_so_short_blocks_keep_the_mean_rate() -> None:
    # 5000 one-second blocks at 5 req/s with cv 10: a restart with a fresh arrival would add
    # (cv^2 - 1) / 2 ~ 50 arrivals per block (250,000 in all).
    profile = linear_rates([0.0, 5000.0], [5.0, 5.0], cv=10.0, duration_s=5000.0, block_s=1.0)
    # Expected 25,000; sd about sqrt(25,000 x 100) = 1,600, so 25% is ~4 sd.
    assert len(profile.arrivals(rng())) == pytest.approx(25_000, rel=0.25)


# ---- interpolated: a step series as knots at the step centres


def test_interpolated_steps_ramp_between_their_centres_and_hold_at_the_ends() -> None:
    steps = rate_steps([0.0, 600.0, 1200.0, 1800.0], [10.0, 40.0, 20.0], cv=[1.0, 2.0, 3.0])
    steps = type(steps)(steps.edges_s, steps.rate_rps, steps.cv, 1800.0, 300.0, 1.7e9, "rates.csv")
    linear = interpolated(steps)
    assert isinstance(linear, LinearRateProfile)
    np.testing.assert_array_equal(linear.knots_s, [300.0, 900.0, 1500.0])
    assert (linear.duration_s, linear.block_s) == (1800.0, 300.0)
    assert (linear.start_unix_s, linear.source) == (1.7e9, "rates.csv")
    # At the centres the steps' rates, linear in between, constant before and after.
    at_s = [0.0, 300.0, 600.0, 900.0, 1200.0, 1500.0, 1800.0]
    np.testing.assert_allclose(linear.rate_rps_at(at_s), [10, 10, 25, 40, 30, 20, 20])
    np.testing.assert_allclose(
        np.interp(at_s, linear.knots_s, linear.cv), [1, 1, 1.5, 2, 2.5, 3, 3]
    )
    # Expected arrivals: 300 x 10 + 600 x 25 + 600 x 30 + 300 x 20; and any window is the
    # integral of rate_rps_at (trapezoids on a 0.1 s grid are exact up to ~1e-6 here).
    assert linear.expected_requests() == pytest.approx(42_000)
    assert linear.mean_rps == pytest.approx(42_000 / 1800)
    grid_s = np.linspace(123.4, 987.6, 8643)
    rates = linear.rate_rps_at(grid_s)
    integral = float(np.sum((rates[1:] + rates[:-1]) / 2 * np.diff(grid_s)))
    assert linear.expected_requests(123.4, 987.6) == pytest.approx(integral, rel=1e-6)
    assert len(linear.arrivals(rng())) == pytest.approx(42_000, rel=0.05)  # sd ~1.1% at cv ~2


def test_rate_scale_scales_the_knots_rates_and_keeps_the_rest() -> None:
    profile = linear_rates([0.0, 100.0], [2.0, 8.0], cv=[1.0, 2.0], duration_s=200.0)
    doubled = profile.rate_scale(2.0)
    assert isinstance(doubled, LinearRateProfile)
    np.testing.assert_array_equal(doubled.rate_rps, [4.0, 16.0])
    assert doubled.expected_requests() == pytest.approx(2 * profile.expected_requests())
    np.testing.assert_array_equal(doubled.cv, profile.cv)
    np.testing.assert_array_equal(profile.rate_scale(1.0).arrivals(rng()).time_s,
                                  profile.arrivals(rng()).time_s)  # fmt: skip


# ---- keyed randomness: chunks, slices and seeds


def varied() -> LinearRateProfile:
    """Knots off the block grid, a zero-rate stretch, the CV changing from 0.5 to 4."""
    knots = [0.0, 130.0, 700.0, 900.0, 1100.0, 1651.0]
    return linear_rates(
        knots, [5.0, 40.0, 0.0, 0.0, 25.0, 10.0], cv=[0.5, 1.0, 2.0, 1.0, 4.0, 3.0],
        duration_s=2000.0, block_s=250.0,
    )  # fmt: skip


def test_arrivals_do_not_depend_on_chunks_or_slices_only_on_the_seed() -> None:
    profile = varied()
    whole = profile.arrivals(rng(3)).time_s
    assert np.all(np.diff(whole) >= 0) and whole[0] >= 0 and whole[-1] < 2000.0
    for chunk_s in (7.3, 600.0, 1e9):
        chunks = list(profile.iter_chunks(rng(3), chunk_s=chunk_s))
        assert chunks[0].start_s == 0 and chunks[-1].end_s == 2000.0
        for before, after in pairwise(chunks):
            assert before.end_s == after.start_s
        np.testing.assert_array_equal(np.concatenate([c.time_s for c in chunks]), whole)
    part = profile.slice(1234.5, 1888.0).arrivals(rng(3)).time_s
    inside = whole[(whole >= 1234.5) & (whole < 1888.0)]
    np.testing.assert_allclose(part, inside - 1234.5, atol=1e-9)
    np.testing.assert_array_equal(profile.arrivals(rng(3)).time_s, whole)
    other = profile.arrivals(rng(4)).time_s
    assert other.size != whole.size or not np.array_equal(other, whole)


@pytest.mark.parametrize("cv", [None, 3.0, 0.0])
def test_pieces_of_zero_rate_get_no_arrivals(cv: float | None) -> None:
    # 5 req/s, down to 0 at 100 s, 0 until 200 s, up to 5 at 300 s, down to 0 at 500 s and
    # 0 after the last knot.
    knots = [0.0, 100.0, 200.0, 300.0, 400.0, 500.0]
    profile = linear_rates(knots, [5.0, 0.0, 0.0, 5.0, 5.0, 0.0], cv=cv, duration_s=700.0)
    for seed in range(5):
        times = profile.arrivals(rng(seed)).time_s
        assert not np.any((times > 100.0) & (times < 200.0))
        assert not np.any(times > 500.0)
    assert profile.expected_requests(100.0, 200.0) == 0.0
    assert profile.expected_requests() == pytest.approx(250 + 250 + 500 + 250)
    dead = linear_rates([0.0], [0.0], cv=cv, duration_s=700.0)
    assert len(dead.arrivals(rng())) == 0


# ---- errors a person can act on


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: linear_rates([0, 5, 5], [1, 2, 3], duration_s=10),
         "linear_rates: knots_s[2] must be increasing"),
        (lambda: linear_rates([-1, 5], [1, 2], duration_s=10),
         "linear_rates: knots_s[0] must be a time >= 0"),
        (lambda: linear_rates([0, math.inf], [1, 2], duration_s=10),
         "linear_rates: knots_s[1] must be a time >= 0"),
        (lambda: linear_rates([0, 5], [1, -2], duration_s=10),
         "linear_rates: rate_rps[1] must be a number >= 0"),
        (lambda: linear_rates([0, 5], [math.nan, 1], duration_s=10),
         "linear_rates: rate_rps[0] must be a number >= 0"),
        (lambda: linear_rates([0, 5], [1, 2, 3], duration_s=10),
         "linear_rates: need len(rate_rps) == len(knots_s) >= 1 (got 2 knots, 3 rates)"),
        (lambda: linear_rates([], [], duration_s=10), "linear_rates: need len(rate_rps)"),
        (lambda: linear_rates([0, 5], [1, 2], cv=[1, -1], duration_s=10),
         "linear_rates: cv[1] must be a number >= 0"),
        (lambda: linear_rates([0, 5], [1, 2], cv=[1, 2, 3], duration_s=10),
         "linear_rates: cv needs one value or one per knot (got 3 for 2 knots)"),
        (lambda: linear_rates([0], [1], duration_s=0), "linear_rates: duration_s must be > 0"),
        (lambda: linear_rates([0], [1], duration_s=9, block_s=-1),
         "linear_rates: block_s must be > 0 (got -1)"),
        (lambda: linear_rates([[0]], [1], duration_s=9),
         "linear_rates: knots_s must be one-dimensional"),
        (lambda: interpolated(rate_steps([0, 5], [1]).slice(1, 2)),  # type: ignore[arg-type]
         "interpolated: steps must be a RateProfile (got _Sliced)"),
        (lambda: linear_rates([0], [1], duration_s=9).rate_scale(0),
         "rate_scale: factor must be > 0 (got 0)"),
    ],
)  # fmt: skip
def test_bad_input_raises_one_line_naming_the_field(
    build: Callable[[], object], message: str
) -> None:
    with pytest.raises(ProfileError) as caught:
        build()
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_too_much_load_is_refused_before_drawing_naming_the_knots_line(tmp_path: Path) -> None:
    path = tmp_path / "rates.csv"
    path.write_text("time_s,rate_rps\n0,5\n600,1e12\n1200,5\n")
    linear = interpolated(read_rate_series(path))  # knots at 300, 900, 1500 s
    too_big = oversize(linear)
    assert too_big is not None and too_big.kind == "requests" and too_big.line == 3
    with pytest.raises(ProfileError, match=r"largest rate 1e\+12 req/s at line 3"):
        linear.arrivals(rng())
    # The first 300 s expect 1,500 arrivals, but their block (0-600 s) climbs towards 1e12:
    # the block's own guard refuses it, naming the peak knot's line.
    head = linear.slice(0.0, 300.0)
    assert oversize(head) is None
    with pytest.raises(ProfileError) as caught:
        head.arrivals(rng())
    assert str(caught.value).startswith(f"{path}:3: about ")
    assert "rate 1e+12 req/s" in str(caught.value) and "\n" not in str(caught.value)
    # A knot a billion seconds late: the duration cap names the knot before the long gap.
    late = tmp_path / "late.csv"
    late.write_text("time_s,rate_rps\n0,1\n1e9,2\n")
    too_long = oversize(interpolated(read_rate_series(late)))
    assert too_long is not None and too_long.kind == "duration" and too_long.line == 2
    assert "its longest gap between knots lasts 11,574 days from line 2" in too_long.problem


# ---- end to end


def test_an_hour_of_linear_load_runs_through_the_simulator() -> None:
    # 5 -> 20 -> 8 req/s with bursty gaps: 47,700 expected (cv <= 2: sd < 440).
    profile = linear_rates(
        [0.0, 1800.0, 3600.0], [5.0, 20.0, 8.0], cv=[1.0, 2.0, 1.5], duration_s=3600.0
    )
    assert profile.expected_requests() == pytest.approx(1800 * 12.5 + 1800 * 14)
    result = run(profile, HPA, "gpu-llm", seed=1, keep_requests=True)
    assert result.summary.requests == pytest.approx(47_700, abs=2_000)
    assert np.all(np.diff(result.arrival_s) >= 0)
    # The fleet follows the ramp: more replicas at the peak than in the first minutes.
    replicas = [r.replicas for r in result.records]
    assert max(replicas) > replicas[4]
