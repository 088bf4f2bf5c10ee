"""`RateProfile`: a piecewise-constant rate, drawn as Poisson or gamma renewal arrivals.

In: step edges and rates (`rate_steps`, which checks them), optionally a CV per step. Out: a
`Profile` whose blocks (`block_s`) each draw from their own keyed stream: Poisson counts with
the exact integral of the rate and uniform placement inside a step, or a renewal process
started in equilibrium. The generators in `simulator.profiles.synthetic` and the rate series
readers in `simulator.traces` build these.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from simulator.profiles.arrivals import _NO_TOKENS, Arrivals, FloatArray, IntArray, _clamp, _empty
from simulator.profiles.base import DEFAULT_BLOCK_S, Profile
from simulator.profiles.checks import ProfileError, _as_float_array, _first_bad, _positive
from simulator.profiles.limits import _HOUR_S, MAX_REQUESTS_PER_HOUR, Oversize
from simulator.profiles.streams import _Streams


class _Blocked(Profile):
    """A rate drawn block by block: each `block_s` of profile time from its own keyed stream
    (`_block`), whatever window asks for it; scaling multiplies `rate_rps` (the steps' of
    `RateProfile`, the knots' of `LinearRateProfile`)."""

    __slots__ = ()
    block_s: float
    rate_rps: FloatArray

    @abstractmethod
    def _block(self, streams: _Streams, block: int) -> FloatArray:
        """The arrivals of generation block `block`, in time order."""

    def rate_scale(self, factor: float, *, resolution_s: float = 60.0) -> Profile:
        factor = _positive("rate_scale", "factor", factor)
        _positive("rate_scale", "resolution_s", resolution_s)
        return replace(self, rate_rps=self.rate_rps * factor)  # type: ignore[type-var]

    def _window(self, streams: _Streams, start_s: float, end_s: float) -> Arrivals:
        if end_s <= start_s:
            return _empty(start_s, end_s, _NO_TOKENS)
        n_blocks = max(1, math.ceil(self.duration_s / self.block_s))
        first = min(int(start_s // self.block_s), n_blocks - 1)
        last = min(max(first + 1, math.ceil(end_s / self.block_s)), n_blocks)
        times = [self._block(streams, block) for block in range(first, last)]
        whole = Arrivals(start_s, end_s, np.concatenate(times) if len(times) > 1 else times[0])
        return whole.window(start_s, end_s)


@dataclass(frozen=True, slots=True, eq=False)
class RateProfile(_Blocked):
    """A piecewise-constant rate: `rate_rps[i]` over `[edges_s[i], edges_s[i + 1])`.

    Steps without a `cv` (or with cv == 1) are Poisson. A step with `cv[i]` is a renewal process
    whose inter-arrival times are gamma with mean `1 / rate` and that CV (cv 0 is evenly spaced
    with a random phase), started in equilibrium (the first arrival is the residual life of a
    length-biased interval, so counts are unbiased even for cv >> 1). It restarts at every step
    edge and every `block_s` edge: the interval across such an edge is not exactly gamma.
    Profiles read from traces carry their `source`, `start_unix_s` (Unix time of t = 0, when
    known) and the rows the reader was asked to skip.
    """

    edges_s: FloatArray
    rate_rps: FloatArray
    cv: FloatArray | None
    duration_s: float
    block_s: float = DEFAULT_BLOCK_S
    start_unix_s: float | None = None
    source: str = ""
    skipped_rows: int = 0
    skipped_examples: tuple[str, ...] = ()
    step_lines: IntArray | None = None  # the file line of each step's row, when read from one

    @property
    def mean_rps(self) -> float:
        """Mean rate over the profile: expected arrivals / duration."""
        return float(np.dot(self.rate_rps, np.diff(self.edges_s))) / self.duration_s

    def _expected_before(self, time_s: FloatArray) -> FloatArray:
        with np.errstate(over="ignore", invalid="ignore"):  # absurd rates give inf: refused
            steps = self.rate_rps * np.diff(self.edges_s)
            before = np.concatenate(([0.0], np.cumsum(steps)))
            counts: FloatArray = np.interp(time_s, self.edges_s, before)
        return counts

    def rate_rps_at(self, time_s: npt.ArrayLike) -> FloatArray:
        """The rate in force at each time (seconds from the profile start)."""
        index = np.searchsorted(self.edges_s, np.asarray(time_s, np.float64), side="right") - 1
        return self.rate_rps[np.clip(index, 0, self.rate_rps.size - 1)]

    def _block(self, streams: _Streams, block: int) -> FloatArray:
        lo_s = block * self.block_s
        hi_s = min(lo_s + self.block_s, self.duration_s)
        first = int(np.searchsorted(self.edges_s, lo_s, side="right")) - 1
        last = int(np.searchsorted(self.edges_s, hi_s, side="left"))
        starts = np.maximum(self.edges_s[first:last], lo_s)
        ends = np.minimum(self.edges_s[first + 1 : last + 1], hi_s)
        rates = self.rate_rps[first:last]
        self._refuse_dense_block(starts, ends, first, hi_s - lo_s)
        rng = streams.rng(block)
        cvs = None if self.cv is None else self.cv[first:last]
        if cvs is None or np.all(cvs == 1.0):
            times = _poisson_steps(rng, starts, ends, rates)
        else:
            pieces = [
                _poisson_steps(rng, starts[i : i + 1], ends[i : i + 1], rates[i : i + 1])
                if cvs[i] == 1.0
                else _renewal_step(rng, float(starts[i]), float(ends[i]), rates[i], cvs[i])
                for i in range(rates.size)
            ]
            times = np.concatenate(pieces)
        np.maximum.accumulate(times, out=times)  # rounding at step edges must not reorder
        return _clamp(times, lo_s, hi_s)

    def _refuse_dense_block(
        self, starts: FloatArray, ends: FloatArray, first: int, width_s: float
    ) -> None:
        """The last guard before drawing: a block beyond the hourly cap raises, whatever
        window asked for it (a slice may end next to a block it does not keep)."""
        rates = self.rate_rps[first : first + starts.size]
        with np.errstate(over="ignore", invalid="ignore"):
            expected = float(np.dot(rates, ends - starts))
        if expected <= MAX_REQUESTS_PER_HOUR * max(1.0, width_s / _HOUR_S):
            return
        peak = first + int(np.argmax(rates))
        line = None if self.step_lines is None else int(self.step_lines[peak])
        raise _dense(
            expected, width_s, float(starts[0]), float(self.rate_rps[peak]), self.source, line
        )


def _dense(
    expected: float, width_s: float, from_s: float, rate_rps: float, source: str, line: int | None
) -> ProfileError:
    """The one-line refusal of a block beyond the hourly cap, naming the file line of its
    largest rate when the profile was read from one."""
    problem = (
        f"about {expected:.2g} requests expected in the {width_s:g} s from t={from_s:g} s"
        f" (the cap is {MAX_REQUESTS_PER_HOUR:.0e} per hour); rate {rate_rps:.3g} req/s"
    )
    fix = "lower the load (rate_scale) or take part of it away from there (slice)"
    return ProfileError(Oversize("per hour", problem, source, line).message(fix))


def _sorted_uniforms(rng: np.random.Generator, counts: IntArray) -> FloatArray:
    """For each segment, `counts[i]` sorted uniforms in [0, 1), concatenated.

    Exponential spacings: if E_1..E_{n+1} are iid exponential, the partial sums divided by the
    total are the order statistics of n uniforms. O(n), no sort.
    """
    sizes = counts + 1
    spacings = rng.standard_exponential(int(sizes.sum()))
    sums = np.cumsum(spacings)
    ends = np.cumsum(sizes) - 1  # index of each segment's last spacing
    before = np.concatenate(([0.0], sums[ends[:-1]]))
    totals = sums[ends] - before
    keep = np.ones(sums.size, dtype=bool)
    keep[ends] = False
    segment = np.repeat(np.arange(counts.size), counts)
    uniforms: FloatArray = (sums[keep] - before[segment]) / totals[segment]
    return uniforms


def _poisson_steps(
    rng: np.random.Generator, starts: FloatArray, ends: FloatArray, rates: FloatArray
) -> FloatArray:
    widths = ends - starts
    counts = rng.poisson(rates * widths).astype(np.int64)
    if counts.size == 1:
        spacings = np.cumsum(rng.standard_exponential(int(counts[0]) + 1))
        times: FloatArray = starts[0] + spacings[:-1] / spacings[-1] * widths[0]
        return times
    segment = np.repeat(np.arange(counts.size), counts)
    return starts[segment] + _sorted_uniforms(rng, counts) * widths[segment]


def _renewal_step(
    rng: np.random.Generator, start_s: float, end_s: float, rate_rps: float, cv: float
) -> FloatArray:
    """Gamma renewal arrivals in [start_s, end_s), started in equilibrium."""
    width_s = end_s - start_s
    if rate_rps <= 0:
        return np.empty(0)
    if cv == 0:
        phase_s = rng.random() / rate_rps
        even = phase_s + np.arange(math.ceil((width_s - phase_s) * rate_rps)) / rate_rps
        return start_s + even[even < width_s]
    shape = 1.0 / (cv * cv)
    scale_s = 1.0 / (rate_rps * shape)
    # The interval covering the start is length-biased, Gamma(shape + 1), and the start falls
    # uniformly inside it: so the first arrival comes after U * Gamma(shape + 1). Starting
    # with a fresh arrival instead would add (cv^2 - 1) / 2 arrivals per step: ~50 at cv 10
    # (test_renewal_steps_start_in_equilibrium_so_short_steps_keep_the_mean_rate).
    first_s = rng.random() * rng.gamma(shape + 1.0, scale_s)
    expected = rate_rps * width_s
    # Enough gaps for the step at once, usually; more are drawn if not. Capped, since a huge
    # cv would otherwise ask for trillions of gaps that the step never needs.
    batch = int(min(expected + 5.0 * math.sqrt(expected) * max(cv, 1.0) + 16, 2 * expected + 1e6))
    pieces = [np.array([first_s])]
    last_s = first_s
    while last_s < width_s:
        times = last_s + np.cumsum(rng.gamma(shape, scale_s, batch))
        pieces.append(times)
        last_s = float(times[-1])
    times = np.concatenate(pieces)
    return start_s + times[: np.searchsorted(times, width_s, side="left")]


def rate_steps(
    edges_s: npt.ArrayLike,
    rate_rps: npt.ArrayLike,
    *,
    cv: npt.ArrayLike | float | None = None,
    block_s: float = DEFAULT_BLOCK_S,
) -> RateProfile:
    """A piecewise-constant rate profile: `rate_rps[i]` from `edges_s[i]` to `edges_s[i + 1]`.

    `edges_s` starts at 0 and increases strictly; `cv` (one per step, or one for all) makes the
    steps gamma renewal processes instead of Poisson.
    """
    where = "rate_steps"
    edges = _as_float_array(where, "edges_s", edges_s)
    rates = _as_float_array(where, "rate_rps", rate_rps)
    if edges.size < 2 or rates.size != edges.size - 1:
        raise ProfileError(
            f"{where}: need len(edges_s) == len(rate_rps) + 1 >= 2"
            f" (got {edges.size} edges, {rates.size} rates)"
        )
    if edges[0] != 0:
        raise ProfileError(f"{where}: edges_s[0] must be 0 (got {edges[0]!r})")
    _first_bad(where, "edges_s", edges, np.isfinite(edges), "finite")
    _first_bad(where, "edges_s", edges, np.append(True, np.diff(edges) > 0), "increasing")
    _first_bad(where, "rate_rps", rates, np.isfinite(rates) & (rates >= 0), "a number >= 0")
    cvs: FloatArray | None = None
    if cv is not None:
        cvs = np.broadcast_to(_as_float_array(where, "cv", np.atleast_1d(cv)), rates.shape).copy()
        _first_bad(where, "cv", cvs, np.isfinite(cvs) & (cvs >= 0), "a number >= 0")
    block_s = _positive(where, "block_s", block_s)
    return RateProfile(edges, rates, cvs, float(edges[-1]), block_s)
