"""Synthetic load: constant, ramp, step, spike, diurnal and bursty rate profiles.

In: rates and times in named units. Out: a `RateProfile` (`simulator.profiles.rates`); ramp
and diurnal are cut into `resolution_s` steps, each with the exact mean rate over it.
"""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np

from simulator.profiles.arrivals import FloatArray
from simulator.profiles.base import DEFAULT_BLOCK_S
from simulator.profiles.checks import ProfileError, _finite, _non_negative, _positive
from simulator.profiles.rates import RateProfile, rate_steps


def _grid(duration_s: float, resolution_s: float) -> FloatArray:
    n_steps = max(1, math.ceil(duration_s / resolution_s - 1e-9))
    return np.append(np.arange(n_steps) * resolution_s, duration_s)


def constant(rate_rps: float, duration_s: float) -> RateProfile:
    """Poisson arrivals at `rate_rps` for `duration_s`."""
    rate = _non_negative("constant", "rate_rps", rate_rps)
    return rate_steps([0.0, _positive("constant", "duration_s", duration_s)], [rate])


def ramp(
    start_rps: float, end_rps: float, duration_s: float, *, resolution_s: float = 1.0
) -> RateProfile:
    """A rate rising (or falling) linearly from `start_rps` to `end_rps`, Poisson arrivals."""
    start = _non_negative("ramp", "start_rps", start_rps)
    end = _non_negative("ramp", "end_rps", end_rps)
    duration_s = _positive("ramp", "duration_s", duration_s)
    edges = _grid(duration_s, _positive("ramp", "resolution_s", resolution_s))
    # Exact mean of a linear rate over each step: its value at the step's midpoint.
    midpoints = (edges[:-1] + edges[1:]) / 2
    return rate_steps(edges, start + (end - start) * midpoints / duration_s)


def step(before_rps: float, after_rps: float, at_s: float, duration_s: float) -> RateProfile:
    """`before_rps` until `at_s`, then `after_rps`, Poisson arrivals."""
    before = _non_negative("step", "before_rps", before_rps)
    after = _non_negative("step", "after_rps", after_rps)
    duration_s = _positive("step", "duration_s", duration_s)
    at = _non_negative("step", "at_s", at_s)
    return _pieces([(0.0, before), (at, after)], duration_s)


def spike(
    base_rps: float, spike_rps: float, at_s: float, spike_duration_s: float, duration_s: float
) -> RateProfile:
    """`base_rps`, except `spike_rps` (the total rate, not an increment) during the spike."""
    base = _non_negative("spike", "base_rps", base_rps)
    peak = _non_negative("spike", "spike_rps", spike_rps)
    at = _non_negative("spike", "at_s", at_s)
    length = _positive("spike", "spike_duration_s", spike_duration_s)
    duration_s = _positive("spike", "duration_s", duration_s)
    return _pieces([(0.0, base), (at, peak), (at + length, base)], duration_s)


def _pieces(pieces: list[tuple[float, float]], duration_s: float) -> RateProfile:
    """Rates from each (start, rate) until the next start; pieces outside the profile vanish."""
    starts = [min(start, duration_s) for start, _ in pieces] + [duration_s]
    edges, rates = [0.0], []
    for (lo, hi), (_, rate) in zip(pairwise(starts), pieces, strict=True):
        if hi > lo:
            edges.append(hi)
            rates.append(rate)
    return rate_steps(edges, rates)


def diurnal(
    mean_rps: float,
    amplitude: float,
    duration_s: float,
    *,
    period_s: float = 86400.0,
    peak_at_s: float = 14 * 3600.0,
    weekend_factor: float = 1.0,
    weekend_days: tuple[int, ...] = (5, 6),
    start_weekday: int = 0,
    resolution_s: float = 60.0,
) -> RateProfile:
    """A daily wave: `mean_rps * (1 + amplitude * cos(2 pi (t - peak_at_s) / period_s))`.

    Periods are days of a week that starts on `start_weekday` (0 = Monday); on `weekend_days`
    the rate is multiplied by `weekend_factor`, so `mean_rps` is the weekday mean. Poisson
    arrivals; each `resolution_s` step gets the exact mean of the wave over it (with 60 s
    steps the wave moves at most 0.44% of the mean inside one step).
    """
    mean = _non_negative("diurnal", "mean_rps", mean_rps)
    amp = _non_negative("diurnal", "amplitude", amplitude)
    if amp > 1:
        raise ProfileError(f"diurnal: amplitude must be in 0..1 (got {amplitude!r})")
    duration_s = _positive("diurnal", "duration_s", duration_s)
    period_s = _positive("diurnal", "period_s", period_s)
    peak = _finite("diurnal", "peak_at_s", peak_at_s)
    weekend = _non_negative("diurnal", "weekend_factor", weekend_factor)
    if isinstance(start_weekday, bool) or start_weekday not in range(7):
        raise ProfileError(
            f"diurnal: start_weekday must be 0..6, 0 = Monday (got {start_weekday!r})"
        )
    edges = _grid(duration_s, _positive("diurnal", "resolution_s", resolution_s))
    edges = np.union1d(edges, np.arange(0.0, duration_s, period_s))  # no step spans two days
    omega = 2 * math.pi / period_s
    lo, hi = edges[:-1], edges[1:]
    # Mean of cos over [lo, hi]: (sin(w hi) - sin(w lo)) / (w (hi - lo)), written as
    # cos(w mid) * sinc so that very short steps do not cancel catastrophically.
    wave = np.cos(omega * ((lo + hi) / 2 - peak)) * np.sinc((hi - lo) / period_s)
    day = (start_weekday + np.floor(lo / period_s).astype(np.int64)) % 7
    factor = np.where(np.isin(day, weekend_days), weekend, 1.0)
    return rate_steps(edges, mean * (1 + amp * wave) * factor)


def bursty(
    rate_rps: float, cv: float, duration_s: float, *, block_s: float = DEFAULT_BLOCK_S
) -> RateProfile:
    """A renewal process at `rate_rps` whose inter-arrival times are gamma with CV `cv`.

    cv < 1 is more regular than Poisson, cv = 1 is Poisson, cv > 1 is bursty (the Azure code
    trace has cv ~13). Not an MMPP: bursts have no state of their own. See `RateProfile`.
    """
    rate = _non_negative("bursty", "rate_rps", rate_rps)
    cv_value = _non_negative("bursty", "cv", cv)
    return rate_steps(
        [0.0, _positive("bursty", "duration_s", duration_s)], [rate], cv=cv_value, block_s=block_s
    )
