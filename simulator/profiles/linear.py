"""`LinearRateProfile`: a piecewise-linear rate, drawn by time rescaling of a renewal process.

In: knots and the rate (and optionally the inter-arrival CV) at each (`linear_rates`, which
checks them), or a step `RateProfile` whose steps become knots at their centres
(`interpolated`: how a rate series file becomes a replay without steps). Out: a `Profile` whose
blocks (`block_s`) each draw from their own keyed stream a unit-rate renewal process in
operational time u = Lambda(t), mapped back through the exact inverse of Lambda (see
`simulator.profiles`). `simulator.profiles.caps` reads its knots to refuse too much load.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from simulator.profiles.arrivals import FloatArray, IntArray, _clamp
from simulator.profiles.base import DEFAULT_BLOCK_S
from simulator.profiles.checks import ProfileError, _as_float_array, _first_bad, _positive
from simulator.profiles.limits import _HOUR_S, MAX_REQUESTS_PER_HOUR
from simulator.profiles.rates import RateProfile, _Blocked, _dense
from simulator.profiles.streams import _Streams

CvAt = Callable[[FloatArray], FloatArray]
# Up to this many pieces with arrivals in a block are inverted one by one (scalar parameters,
# ~4x cheaper per arrival than gathering them); beyond it, a rate series with many knots per
# block, in one gathered pass (a Python loop per piece would cost more).
_LOOP_PIECES = 8


@dataclass(frozen=True, slots=True, eq=False)
class LinearRateProfile(_Blocked):
    """A rate linear between knots: `rate_rps[i]` at `knots_s[i]`, constant beyond the ends.

    Arrivals by time rescaling: a renewal process of unit rate in operational time
    u = Lambda(t) (the expected arrivals before t), mapped through the exact inverse of Lambda,
    so its rate is the linear rate at every instant. Its gaps in u are gamma with mean 1 and
    the CV interpolated the same way from `cv` at the real time of each gap's position
    (None, or 1 everywhere: Poisson; 0: evenly spaced in u with a random phase). Each block
    restarts the process in equilibrium, as `RateProfile` does. `knot_lines` are the file
    lines of the knots' rows when they came from one (`interpolated` of a read series).
    """

    knots_s: FloatArray
    rate_rps: FloatArray
    cv: FloatArray | None
    duration_s: float
    block_s: float = DEFAULT_BLOCK_S
    start_unix_s: float | None = None
    source: str = ""
    knot_lines: IntArray | None = None

    @property
    def mean_rps(self) -> float:
        """Mean rate over the profile: expected arrivals / duration."""
        return self.expected_requests() / self.duration_s

    def rate_rps_at(self, time_s: npt.ArrayLike) -> FloatArray:
        """The linear rate at each time (seconds from the profile start)."""
        rates: FloatArray = np.interp(np.asarray(time_s, np.float64), self.knots_s, self.rate_rps)
        return rates

    def _expected_before(self, time_s: FloatArray) -> FloatArray:
        with np.errstate(over="ignore", invalid="ignore"):  # absurd rates give inf: refused
            pieces = _pieces(self.knots_s, self.rate_rps, 0.0, self.duration_s)
            return pieces.before_at(np.clip(time_s, 0.0, self.duration_s))

    def _block(self, streams: _Streams, block: int) -> FloatArray:
        lo_s = block * self.block_s
        hi_s = min(lo_s + self.block_s, self.duration_s)
        with np.errstate(over="ignore", invalid="ignore"):
            pieces = _pieces(self.knots_s, self.rate_rps, lo_s, hi_s)
        total = float(pieces.before[-1])
        self._refuse_dense_block(total, lo_s, hi_s)
        rng = streams.rng(block)
        times = pieces.time_at(self._unit_arrivals(rng, pieces, total))
        np.maximum.accumulate(times, out=times)  # rounding at knots must not reorder
        return _clamp(times, lo_s, hi_s)

    def _unit_arrivals(self, rng: np.random.Generator, pieces: _Pieces, total: float) -> FloatArray:
        """The block's arrivals in operational time: a unit-rate process on [0, total)."""
        if not total > 0:
            return np.empty(0)
        cv = self.cv
        # cv is linear between knots, and every knot inside the block is a break: the cv of
        # the whole block lies between its values at the breaks.
        at_breaks = None if cv is None else np.interp(pieces.breaks_s, self.knots_s, cv)
        if at_breaks is None or np.all(at_breaks == 1.0):
            return _poisson_unit(rng, total)
        if np.all(at_breaks == 0.0):
            return _even_unit(rng, total)
        if np.all(at_breaks == at_breaks[0]):
            same = float(at_breaks[0])
            return _renewal_unit(rng, total, lambda k: np.full(k.size, same), same)
        assert cv is not None

        def cv_at(position: FloatArray) -> FloatArray:
            # Gap k of the block lies near u = k: its CV is the one at that real time (and
            # the block end's for gaps drawn beyond it).
            inside = int(np.searchsorted(position, total, side="left"))
            cvs = np.full(position.size, at_breaks[-1])
            cvs[:inside] = np.interp(pieces.time_at(position[:inside]), self.knots_s, cv)
            return cvs

        return _renewal_unit(rng, total, cv_at, float(at_breaks.max()))

    def _refuse_dense_block(self, expected: float, lo_s: float, hi_s: float) -> None:
        """The last guard before drawing: a block beyond the hourly cap raises, whatever
        window asked for it (a slice may end next to a block it does not keep)."""
        width_s = hi_s - lo_s
        if expected <= MAX_REQUESTS_PER_HOUR * max(1.0, width_s / _HOUR_S):
            return
        last = self.knots_s.size - 1
        first = min(max(int(np.searchsorted(self.knots_s, lo_s, side="right")) - 1, 0), last)
        after = min(int(np.searchsorted(self.knots_s, hi_s, side="left")), last)
        peak = first + int(np.argmax(self.rate_rps[first : after + 1]))
        line = None if self.knot_lines is None else int(self.knot_lines[peak])
        raise _dense(expected, width_s, lo_s, float(self.rate_rps[peak]), self.source, line)


@dataclass(frozen=True, slots=True)
class _Pieces:
    """The rate over `[breaks_s[0], breaks_s[-1]]`, linear on each piece between two breaks.

    `before` is the expected count from `breaks_s[0]` to each break (Lambda, exactly: the
    integral of a linear rate is quadratic).
    """

    breaks_s: FloatArray
    rate_rps: FloatArray  # at each break
    slope: FloatArray  # of each piece, req/s per s
    before: FloatArray

    def before_at(self, time_s: FloatArray) -> FloatArray:
        """Lambda(t) - Lambda(breaks_s[0]) for each t in the range."""
        piece = np.clip(
            np.searchsorted(self.breaks_s, time_s, side="right") - 1, 0, self.slope.size - 1
        )
        tau = time_s - self.breaks_s[piece]
        counts: FloatArray = self.before[piece] + tau * (
            self.rate_rps[piece] + self.slope[piece] * tau / 2
        )
        return counts

    def time_at(self, unit: FloatArray) -> FloatArray:
        """The inverse of `before_at`: the real time at which Lambda reaches each `unit`.

        `unit` ascends within [0, total), so each piece's units are one run of it. Per piece,
        solve a tau + b tau^2 / 2 = delta in the form that neither cancels nor divides by a
        zero slope: tau = 2 delta / (a + sqrt(a^2 + 2 b delta)) (from a rate of 0, a = 0 and
        b > 0: sqrt(2 delta / b)). A piece of zero rate has no mass, so no run.
        """
        runs = np.searchsorted(unit, self.before, side="left")  # each piece's first unit
        runs[-1] = unit.size
        held = np.flatnonzero(runs[1:] > runs[:-1])
        if held.size > _LOOP_PIECES:  # many short pieces: one pass with gathered parameters
            return self._times(np.repeat(held, np.diff(runs)[held]), unit)
        times = np.empty_like(unit)
        for piece in held:  # a few long pieces: scalar parameters, no gathers
            lo, hi = runs[piece], runs[piece + 1]
            times[lo:hi] = self._times(piece, unit[lo:hi])
        return times

    def _times(self, piece: IntArray | np.intp, unit: FloatArray) -> FloatArray:
        delta = unit - self.before[piece]
        a = self.rate_rps[piece]
        denominator = a + np.sqrt(np.maximum(a * a + 2.0 * self.slope[piece] * delta, 0.0))
        with np.errstate(invalid="ignore", divide="ignore"):  # 0 / 0 only at a = delta = 0
            tau = np.where(denominator > 0, 2.0 * delta / denominator, 0.0)
        times: FloatArray = np.minimum(self.breaks_s[piece] + tau, self.breaks_s[piece + 1])
        return times


def _pieces(knots_s: FloatArray, rate_rps: FloatArray, lo_s: float, hi_s: float) -> _Pieces:
    """The linear rate on `[lo_s, hi_s]`, broken at every knot inside it."""
    inside = knots_s[
        np.searchsorted(knots_s, lo_s, side="right") : np.searchsorted(knots_s, hi_s, side="left")
    ]
    breaks = np.concatenate(([lo_s], inside, [hi_s]))
    rates = np.interp(breaks, knots_s, rate_rps)
    widths = np.diff(breaks)
    before = np.concatenate(([0.0], np.cumsum(widths * (rates[:-1] + rates[1:]) / 2)))
    return _Pieces(breaks, rates, np.diff(rates) / widths, before)


def _poisson_unit(rng: np.random.Generator, total: float) -> FloatArray:
    """A unit-rate Poisson process on [0, total): a Poisson count, sorted uniform times
    (the same process as exponential gaps, drawn without a loop)."""
    spacings = np.cumsum(rng.standard_exponential(int(rng.poisson(total)) + 1))
    unit: FloatArray = spacings[:-1] / spacings[-1] * total
    return unit


def _even_unit(rng: np.random.Generator, total: float) -> FloatArray:
    """Unit gaps with a random phase (cv 0): the equilibrium of a deterministic process."""
    unit = rng.random() + np.arange(max(0, math.ceil(total)), dtype=np.float64)
    return unit[unit < total]


def _gamma_gaps(rng: np.random.Generator, cv: FloatArray) -> FloatArray:
    """Gamma gaps of mean 1 and CV `cv` each (shape 1 / cv^2, scale cv^2); cv 0 is a gap of 1."""
    even = cv == 0
    squared = np.where(even, 1.0, cv * cv) if even.any() else cv * cv
    gaps: FloatArray = rng.gamma(1.0 / squared, squared)
    if even.any():
        gaps[even] = 1.0
    return gaps


def _renewal_unit(rng: np.random.Generator, total: float, cv_at: CvAt, cv_max: float) -> FloatArray:
    """A unit-rate gamma renewal process on [0, total), gap k with CV `cv_at(k)`.

    Started in equilibrium like `simulator.profiles.rates._renewal_step`: the first arrival
    comes after U x Gamma(shape + 1) (scaled), the residual life of the length-biased gap
    covering the start, so a block restart adds no arrivals even at cv >> 1.
    """
    start_cv = float(cv_at(np.zeros(1))[0])
    first = rng.random()
    if start_cv > 0:
        first *= rng.gamma(1.0 / start_cv**2 + 1.0, start_cv**2)
    pieces, last, drawn = [np.array([first])], first, 1
    while last < total:
        remaining = total - last
        # Enough gaps for the block at once, usually; more are drawn if not. Capped, since a
        # huge cv would otherwise ask for trillions of gaps that the block never needs.
        batch = int(
            min(remaining + 5.0 * math.sqrt(remaining) * max(cv_max, 1.0) + 16, 2 * remaining + 1e6)
        )
        position = drawn + np.arange(batch, dtype=np.float64)
        unit = last + np.cumsum(_gamma_gaps(rng, cv_at(position)))
        pieces.append(unit)
        last, drawn = float(unit[-1]), drawn + batch
    unit = np.concatenate(pieces)
    return unit[: np.searchsorted(unit, total, side="left")]


def interpolated(steps: RateProfile) -> LinearRateProfile:
    """`steps` without its steps: knots at each step's centre with its rate (and CV).

    Same duration, `block_s`, `start_unix_s` and `source`; the knots keep the steps' file
    lines. The rate ramps between step centres and holds the first (last) step's rate before
    the first (after the last) centre, so a rate series file replays without the jumps at
    every window boundary that a step replay has.
    """
    if not isinstance(steps, RateProfile):
        raise ProfileError(
            f"interpolated: steps must be a RateProfile (got {type(steps).__name__});"
            " interpolate before slicing or scaling time"
        )
    centres = (steps.edges_s[:-1] + steps.edges_s[1:]) / 2
    return LinearRateProfile(
        centres,
        steps.rate_rps.copy(),
        None if steps.cv is None else steps.cv.copy(),
        steps.duration_s,
        steps.block_s,
        steps.start_unix_s,
        steps.source,
        steps.step_lines,
    )


def linear_rates(
    knots_s: npt.ArrayLike,
    rate_rps: npt.ArrayLike,
    *,
    cv: npt.ArrayLike | float | None = None,
    duration_s: float,
    block_s: float = DEFAULT_BLOCK_S,
) -> LinearRateProfile:
    """A piecewise-linear rate profile: `rate_rps[i]` at `knots_s[i]`, linear in between.

    `knots_s` (>= 0) increase strictly; before the first and after the last knot the rate
    is that knot's. `cv` (one per knot, or one for all) makes the arrivals a gamma renewal
    process of that CV (interpolated the same way) instead of Poisson.
    """
    where = "linear_rates"
    knots = _as_float_array(where, "knots_s", knots_s).copy()
    rates = _as_float_array(where, "rate_rps", rate_rps).copy()
    if knots.size < 1 or rates.size != knots.size:
        raise ProfileError(
            f"{where}: need len(rate_rps) == len(knots_s) >= 1"
            f" (got {knots.size} knots, {rates.size} rates)"
        )
    _first_bad(where, "knots_s", knots, np.isfinite(knots) & (knots >= 0), "a time >= 0")
    _first_bad(where, "knots_s", knots, np.append(True, np.diff(knots) > 0), "increasing")
    _first_bad(where, "rate_rps", rates, np.isfinite(rates) & (rates >= 0), "a number >= 0")
    cvs: FloatArray | None = None
    if cv is not None:
        given = _as_float_array(where, "cv", np.atleast_1d(cv))
        if given.size not in (1, knots.size):
            raise ProfileError(
                f"{where}: cv needs one value or one per knot (got {given.size} for"
                f" {knots.size} knots)"
            )
        cvs = np.broadcast_to(given, knots.shape).copy()
        _first_bad(where, "cv", cvs, np.isfinite(cvs) & (cvs >= 0), "a number >= 0")
    duration = _positive(where, "duration_s", duration_s)
    return LinearRateProfile(knots, rates, cvs, duration, _positive(where, "block_s", block_s))
