"""Load profiles: when requests arrive, as numpy arrays.

In: profile parameters in named units, and a `numpy.random.Generator` (the only randomness).
Out: `Arrivals` -- arrival times in seconds from the profile start (float64, ascending) and,
when the profile knows them, each request's input and output token counts -- either all at once
(`Profile.arrivals`) or window by window in time order (`Profile.iter_chunks`), so a 14-day
series at 200 req/s (about 240 million arrivals) never sits in memory at once.
`simulator.traces` builds profiles from real traces; the replica model consumes the chunks.

Time-varying rates are non-homogeneous Poisson processes with a piecewise-constant rate
(`RateProfile`): the count in each step is Poisson with the exact integral of the rate over the
step, and the arrivals are spread uniformly inside it (sorted uniforms from exponential spacings,
no sort). Constant, step and spike rates are exactly piecewise-constant; ramp and diurnal are
cut into `resolution_s` steps (1 s and 60 s by default): counts per step stay exact and only the
placement inside one step ignores the slope. `bursty` (and rate series replayed with
`within="renewal"`) use a renewal process with gamma inter-arrival times of the given CV,
started in equilibrium (see `RateProfile`).

Randomness is keyed, not streamed: the caller's generator gives one root number, and every
generation block (`block_s` of profile time, 600 s by default) draws from its own stream derived
from the root and the block's place in the profile tree. So the arrivals never depend on
`chunk_s`, `slice` keeps exactly the original's arrivals inside its window, and the same seed
gives the same arrays.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DEFAULT_CHUNK_S = 3600.0
DEFAULT_BLOCK_S = 600.0
# iter_chunks generates at least this much profile time at once, so tiny chunks stay cheap.
_GENERATION_S = 3600.0
_ROOT_BOUND = 2**63
_NO_TOKENS = (False, False)

# The most one run may ask for; beyond these a profile is refused (`oversize`) before any
# arrival is drawn, since the arrays alone would not fit in memory (an hour at 13,900 req/s
# is ~0.4 GB per array, and iter_chunks draws at least an hour at a time).
MAX_REQUESTS = 2e9  # expected arrivals of one run
MAX_REQUESTS_PER_HOUR = 5e7  # expected arrivals in any one hour of the profile
MAX_DURATION_S = 366 * 86400.0  # a year (a leap year) of profile time
_HOUR_S = 3600.0

__all__ = [
    "DEFAULT_BLOCK_S",
    "DEFAULT_CHUNK_S",
    "MAX_DURATION_S",
    "MAX_REQUESTS",
    "MAX_REQUESTS_PER_HOUR",
    "Arrivals",
    "Oversize",
    "Profile",
    "ProfileError",
    "RateProfile",
    "RequestLog",
    "bursty",
    "constant",
    "diurnal",
    "oversize",
    "ramp",
    "rate_steps",
    "request_log",
    "spike",
    "step",
]


class ProfileError(ValueError):
    """Profile parameters that cannot describe load; the message names the parameter and fix."""


# --------------------------------------------------------------------------- arrivals


@dataclass(frozen=True, slots=True, eq=False)
class Arrivals:
    """The requests arriving in `[start_s, end_s)` of a profile, in time order.

    `time_s` is seconds from the profile start; token arrays (when the profile has them) hold
    one whole number per arrival. Arrays may be read-only views of a replayed log.
    """

    start_s: float
    end_s: float
    time_s: FloatArray
    input_tokens: IntArray | None = None
    output_tokens: IntArray | None = None

    def __len__(self) -> int:
        return int(self.time_s.size)

    @property
    def rate_rps(self) -> float:
        """Mean arrival rate over the window."""
        width_s = self.end_s - self.start_s
        return len(self) / width_s if width_s > 0 else 0.0

    def window(self, start_s: float, end_s: float) -> Arrivals:
        """The arrivals in `[start_s, end_s)`, as views."""
        lo, hi = np.searchsorted(self.time_s, [start_s, end_s], side="left")
        return Arrivals(
            start_s,
            end_s,
            self.time_s[lo:hi],
            None if self.input_tokens is None else self.input_tokens[lo:hi],
            None if self.output_tokens is None else self.output_tokens[lo:hi],
        )

    def _retimed(self, time_s: FloatArray, start_s: float, end_s: float) -> Arrivals:
        """Same requests at new times (kept in order and clamped into the new window)."""
        return Arrivals(
            start_s, end_s, _clamp(time_s, start_s, end_s), self.input_tokens, self.output_tokens
        )

    def _take(self, index: IntArray | npt.NDArray[np.bool_]) -> Arrivals:
        return Arrivals(
            self.start_s,
            self.end_s,
            self.time_s[index],
            None if self.input_tokens is None else self.input_tokens[index],
            None if self.output_tokens is None else self.output_tokens[index],
        )


def _empty(start_s: float, end_s: float, kinds: tuple[bool, bool]) -> Arrivals:
    def tokens(present: bool) -> IntArray | None:
        return np.empty(0, np.int64) if present else None

    return Arrivals(start_s, end_s, np.empty(0), tokens(kinds[0]), tokens(kinds[1]))


def _concat(
    parts: Sequence[Arrivals], start_s: float, end_s: float, kinds: tuple[bool, bool]
) -> Arrivals:
    if not parts:
        return _empty(start_s, end_s, kinds)
    if len(parts) == 1:
        only = parts[0]
        return Arrivals(start_s, end_s, only.time_s, only.input_tokens, only.output_tokens)

    def tokens(arrays: list[IntArray | None]) -> IntArray | None:
        present = [a for a in arrays if a is not None]
        return np.concatenate(present) if present else None

    return Arrivals(
        start_s,
        end_s,
        np.concatenate([p.time_s for p in parts]),
        tokens([p.input_tokens for p in parts]),
        tokens([p.output_tokens for p in parts]),
    )


def _clamp(time_s: FloatArray, start_s: float, end_s: float) -> FloatArray:
    """Keep float rounding from pushing a time out of `[start_s, end_s)` (order is kept)."""
    if time_s.size == 0 or end_s <= start_s:
        return time_s
    return np.clip(time_s, start_s, np.nextafter(end_s, -math.inf))


# --------------------------------------------------------------------------- randomness


@dataclass(frozen=True, slots=True)
class _Streams:
    """Random streams keyed by (root, place in the profile tree, block).

    A leaf calls `rng(block)`; a node with children or its own randomness hands each role a
    distinct `child(tag)`, so no two roles ever share a stream.
    """

    root: int
    path: tuple[int, ...] = ()

    def child(self, tag: int) -> _Streams:
        return _Streams(self.root, (*self.path, tag))

    def rng(self, block: int) -> np.random.Generator:
        seed = np.random.SeedSequence(self.root, spawn_key=(*self.path, block))
        return np.random.Generator(np.random.PCG64(seed))


def _root(rng: np.random.Generator) -> _Streams:
    return _Streams(int(rng.integers(_ROOT_BOUND)))


# --------------------------------------------------------------------------- validation


def _finite(where: str, name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ProfileError(f"{where}: {name} must be a number (got {value!r})")
    number = float(value)
    if not math.isfinite(number):
        raise ProfileError(f"{where}: {name} must be a finite number (got {value!r})")
    return number


def _positive(where: str, name: str, value: float) -> float:
    number = _finite(where, name, value)
    if number <= 0:
        raise ProfileError(f"{where}: {name} must be > 0 (got {value!r})")
    return number


def _non_negative(where: str, name: str, value: float) -> float:
    number = _finite(where, name, value)
    if number < 0:
        raise ProfileError(f"{where}: {name} must be >= 0 (got {value!r})")
    return number


# --------------------------------------------------------------------------- profile


class Profile(ABC):
    """When requests arrive over `[0, duration_s)`; see the module docstring.

    Subclasses implement `_window`; everything else (chunks, operations) is shared.
    """

    __slots__ = ()
    duration_s: float

    @abstractmethod
    def _window(self, streams: _Streams, start_s: float, end_s: float) -> Arrivals:
        """Arrivals in `[start_s, end_s)`, for `0 <= start_s <= end_s <= duration_s`.

        Must not depend on how the profile is cut into windows: the arrivals of `[a, c)` are
        those of `[a, b)` followed by those of `[b, c)`, for the same streams.
        """

    def _token_kinds(self) -> tuple[bool, bool]:
        """Whether arrivals carry (input, output) token counts."""
        return _NO_TOKENS

    @property
    def has_tokens(self) -> bool:
        """Whether arrivals carry input or output token counts (or both)."""
        return any(self._token_kinds())

    @property
    def has_token_pairs(self) -> bool:
        """Whether arrivals carry both input and output token counts."""
        return all(self._token_kinds())

    def expected_requests(self, start_s: float = 0.0, end_s: float | None = None) -> float:
        """The expected number of arrivals in `[start_s, end_s)` (exact for a replayed log).

        NaN for a profile that cannot tell (a subclass without `_expected_before`).
        """
        end = self.duration_s if end_s is None else end_s
        before = self._expected_before(np.array([start_s, end], dtype=np.float64))
        return math.nan if before is None else float(before[1] - before[0])

    def _expected_before(self, time_s: FloatArray) -> FloatArray | None:
        """Expected arrivals in `[0, t)` for each `t` in `[0, duration_s]`; None if unknown."""
        return None

    def arrivals(self, rng: np.random.Generator) -> Arrivals:
        """Every arrival at once; for long profiles prefer `iter_chunks`.

        A profile beyond the caps (`oversize`) raises `ProfileError` before drawing anything.
        """
        _refuse_oversize(self)
        return self._window(_root(rng), 0.0, self.duration_s)

    def iter_chunks(
        self, rng: np.random.Generator, *, chunk_s: float = DEFAULT_CHUNK_S
    ) -> Iterator[Arrivals]:
        """Arrivals window by window: `[0, chunk_s)`, `[chunk_s, 2 chunk_s)`, ... up to the end.

        Every window is yielded, empty or not; concatenated they equal `arrivals(rng)` for a
        generator in the same state, whatever `chunk_s` is. The generator is used (once) now.
        """
        chunk_s = _positive("iter_chunks", "chunk_s", chunk_s)
        _refuse_oversize(self)
        return self._chunks(_root(rng), chunk_s)

    def _chunks(self, streams: _Streams, chunk_s: float) -> Iterator[Arrivals]:
        n_chunks = max(1, math.ceil(self.duration_s / chunk_s))
        per_generation = max(1, math.ceil(_GENERATION_S / chunk_s))
        for first in range(0, n_chunks, per_generation):
            last = min(first + per_generation, n_chunks)
            edges = [min(k * chunk_s, self.duration_s) for k in range(first, last + 1)]
            if last == n_chunks:
                edges[-1] = self.duration_s
            generated = self._window(streams, edges[0], edges[-1])
            for lo, hi in pairwise(edges):
                yield generated.window(lo, hi)

    # ---- operations (each returns a new profile; the original is unchanged)

    def time_scale(self, factor: float) -> Profile:
        """Stretch time by `factor`: 2 lasts twice as long at half the rate, 0.5 is compressed."""
        factor = _positive("time_scale", "factor", factor)
        return _TimeScaled(self, factor, self.duration_s * factor)

    def rate_scale(self, factor: float, *, resolution_s: float = 60.0) -> Profile:
        """`factor` times as many requests (what if traffic doubles), same duration.

        Rate profiles scale their rate exactly. Replayed logs are resampled per `resolution_s`
        window: factor < 1 keeps each request with probability `factor`; factor > 1 keeps every
        request and adds `floor(factor) - 1` copies plus one more with probability
        `factor % 1`, each copy at a uniform random time in its original's window and with
        its tokens (exact duplicates would add simultaneous pairs the trace never had), so the
        added load follows the trace's rate curve at `resolution_s` and is Poisson inside it.
        """
        factor = _positive("rate_scale", "factor", factor)
        resolution_s = _positive("rate_scale", "resolution_s", resolution_s)
        return _Resampled(self, factor, resolution_s, self.duration_s)

    def slice(self, start_s: float, end_s: float | None = None) -> Profile:
        """The part in `[start_s, end_s)`, re-timed to start at 0; same arrivals as the original."""
        start_s = _non_negative("slice", "start_s", start_s)
        end = self.duration_s if end_s is None else _finite("slice", "end_s", end_s)
        if not start_s < end <= self.duration_s:
            raise ProfileError(
                f"slice: need 0 <= start_s < end_s <= duration_s={self.duration_s:g}"
                f" (got start_s={start_s:g}, end_s={end:g})"
            )
        return _Sliced(self, start_s, end - start_s)

    def loop(self, times: int | None = None, *, duration_s: float | None = None) -> Profile:
        """Repeat back to back, `times` times or until `duration_s` (the last may be cut).

        Each repetition is an independent draw: a synthetic profile gets fresh randomness, a
        replayed log repeats its requests exactly.
        """
        if times is not None and duration_s is None:
            if isinstance(times, bool) or not isinstance(times, int) or times < 1:
                raise ProfileError(f"loop: times must be a whole number >= 1 (got {times!r})")
            return _Looped(self, times * self.duration_s)
        if duration_s is not None and times is None:
            return _Looped(self, _positive("loop", "duration_s", duration_s))
        raise ProfileError("loop: give exactly one of times or duration_s")

    def with_tokens(
        self,
        input_tokens: npt.ArrayLike | None,
        output_tokens: npt.ArrayLike | None,
        *,
        resolution_s: float = DEFAULT_BLOCK_S,
    ) -> Profile:
        """Give every arrival an (input, output) pair drawn at random from the given pairs.

        Pairs are drawn jointly (with replacement), so e.g. `constant(...)` can carry the token
        mix of a replayed log: `p.with_tokens(log.input_tokens, log.output_tokens)`.
        """
        pairs = _token_pairs(input_tokens, output_tokens)
        resolution_s = _positive("with_tokens", "resolution_s", resolution_s)
        return _WithTokens(self, pairs[0], pairs[1], resolution_s, self.duration_s)


# --------------------------------------------------------------------------- rate profiles


@dataclass(frozen=True, slots=True, eq=False)
class RateProfile(Profile):
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

    def rate_scale(self, factor: float, *, resolution_s: float = 60.0) -> Profile:
        factor = _positive("rate_scale", "factor", factor)
        _positive("rate_scale", "resolution_s", resolution_s)
        return replace(self, rate_rps=self.rate_rps * factor)

    def _window(self, streams: _Streams, start_s: float, end_s: float) -> Arrivals:
        if end_s <= start_s:
            return _empty(start_s, end_s, _NO_TOKENS)
        n_blocks = max(1, math.ceil(self.duration_s / self.block_s))
        first = min(int(start_s // self.block_s), n_blocks - 1)
        last = min(max(first + 1, math.ceil(end_s / self.block_s)), n_blocks)
        times = [self._block(streams, block) for block in range(first, last)]
        whole = Arrivals(start_s, end_s, np.concatenate(times) if len(times) > 1 else times[0])
        return whole.window(start_s, end_s)

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
        problem = (
            f"about {expected:.2g} requests expected in the {width_s:g} s from t={starts[0]:g} s"
            f" (the cap is {MAX_REQUESTS_PER_HOUR:.0e} per hour); rate {self.rate_rps[peak]:.3g}"
            " req/s"
        )
        fix = "lower the load (rate_scale) or take part of it away from there (slice)"
        raise ProfileError(Oversize("per hour", problem, self.source, line).message(fix))


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


def _as_float_array(where: str, name: str, values: npt.ArrayLike) -> FloatArray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ProfileError(f"{where}: {name} must be an array of numbers") from None
    if array.ndim != 1:
        raise ProfileError(f"{where}: {name} must be one-dimensional (got shape {array.shape})")
    return array


def _first_bad(
    where: str, name: str, array: npt.NDArray[Any], ok: npt.NDArray[np.bool_], need: str
) -> None:
    if not np.all(ok):
        index = int(np.argmin(ok))
        raise ProfileError(f"{where}: {name}[{index}] must be {need} (got {array[index]!r})")


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


# --------------------------------------------------------------------------- replayed logs


@dataclass(frozen=True, slots=True, eq=False)
class RequestLog(Profile):
    """Requests replayed as recorded: no randomness (except in `rate_scale`).

    `start_unix_s` is the Unix time of t = 0 when the source had absolute times; `skipped_rows`
    counts rows a reader dropped because it was asked to (`skipped_examples`: the first few).
    """

    time_s: FloatArray
    input_tokens: IntArray | None
    output_tokens: IntArray | None
    duration_s: float
    start_unix_s: float | None = None
    source: str = ""
    skipped_rows: int = 0
    skipped_examples: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.time_s.size)

    def _token_kinds(self) -> tuple[bool, bool]:
        return (self.input_tokens is not None, self.output_tokens is not None)

    def _expected_before(self, time_s: FloatArray) -> FloatArray:
        return np.searchsorted(self.time_s, time_s, side="left").astype(np.float64)

    def _window(self, streams: _Streams, start_s: float, end_s: float) -> Arrivals:
        whole = Arrivals(0.0, self.duration_s, self.time_s, self.input_tokens, self.output_tokens)
        return whole.window(start_s, end_s)


def _readonly(array: npt.NDArray[np.generic]) -> None:
    array.setflags(write=False)


def _tokens(where: str, name: str, values: npt.ArrayLike | None, n: int) -> IntArray | None:
    if values is None:
        return None
    given = np.asarray(values)
    if given.dtype.kind in "iu" and given.ndim == 1:  # already whole numbers: no float copy
        array: npt.NDArray[Any] = given
        ok = array >= 0
    else:
        array = _as_float_array(where, name, values)
        ok = np.isfinite(array) & (array >= 0) & (array == np.floor(array))
    if array.size != n:
        raise ProfileError(f"{where}: {name} has {array.size} values for {n} requests")
    _first_bad(where, name, array, ok, "a whole number >= 0")
    tokens = array.astype(np.int64)
    _readonly(tokens)
    return tokens


def request_log(
    time_s: npt.ArrayLike,
    *,
    input_tokens: npt.ArrayLike | None = None,
    output_tokens: npt.ArrayLike | None = None,
    duration_s: float | None = None,
    start_unix_s: float | None = None,
    source: str = "",
    skipped_rows: int = 0,
    skipped_examples: tuple[str, ...] = (),
) -> RequestLog:
    """A replayed log from arrival times (seconds >= 0, ascending) and optional token counts.

    `duration_s` defaults to the last arrival plus one mean inter-arrival gap, so that
    `len / duration_s` is the log's own rate and `loop` keeps it.
    """
    where = "request_log"
    times = _as_float_array(where, "time_s", time_s).copy()
    if times.size == 0:
        raise ProfileError(f"{where}: time_s has no requests")
    _first_bad(where, "time_s", times, np.isfinite(times) & (times >= 0), "a time >= 0")
    _first_bad(where, "time_s", times, np.append(True, np.diff(times) >= 0), "in time order")
    span_s = float(times[-1] - times[0])
    if duration_s is None:
        if span_s <= 0:
            raise ProfileError(f"{where}: all requests at one instant; give duration_s")
        duration = float(times[-1]) + span_s / (times.size - 1)
    else:
        duration = _positive(where, "duration_s", duration_s)
        if times[-1] >= duration:
            raise ProfileError(
                f"{where}: duration_s must be after the last request"
                f" (got {duration:g}, last at {times[-1]:g})"
            )
    _readonly(times)
    return RequestLog(
        times,
        _tokens(where, "input_tokens", input_tokens, times.size),
        _tokens(where, "output_tokens", output_tokens, times.size),
        duration,
        start_unix_s,
        source,
        skipped_rows,
        skipped_examples,
    )


# --------------------------------------------------------------------------- operations


def _inner_end(outer_end_s: float, outer: Profile, inner_end_s: float, inner: Profile) -> float:
    """Map a window end into the inner profile; the outer end maps to the inner end exactly."""
    return (
        inner.duration_s if outer_end_s >= outer.duration_s else min(inner_end_s, inner.duration_s)
    )


@dataclass(frozen=True, slots=True, eq=False)
class _TimeScaled(Profile):
    inner: Profile
    factor: float
    duration_s: float

    def _token_kinds(self) -> tuple[bool, bool]:
        return self.inner._token_kinds()

    def _expected_before(self, time_s: FloatArray) -> FloatArray | None:
        return self.inner._expected_before(np.minimum(time_s / self.factor, self.inner.duration_s))

    def _window(self, streams: _Streams, start_s: float, end_s: float) -> Arrivals:
        hi_s = _inner_end(end_s, self, end_s / self.factor, self.inner)
        part = self.inner._window(streams, min(start_s / self.factor, hi_s), hi_s)
        return part._retimed(part.time_s * self.factor, start_s, end_s)

    def rate_scale(self, factor: float, *, resolution_s: float = 60.0) -> Profile:
        scaled = self.inner.rate_scale(factor, resolution_s=resolution_s / self.factor)
        return replace(self, inner=scaled)


@dataclass(frozen=True, slots=True, eq=False)
class _Sliced(Profile):
    inner: Profile
    offset_s: float
    duration_s: float

    def _token_kinds(self) -> tuple[bool, bool]:
        return self.inner._token_kinds()

    def _expected_before(self, time_s: FloatArray) -> FloatArray | None:
        times = np.concatenate(([self.offset_s], self.offset_s + time_s))
        before = self.inner._expected_before(np.minimum(times, self.inner.duration_s))
        return None if before is None else before[1:] - before[0]

    def _window(self, streams: _Streams, start_s: float, end_s: float) -> Arrivals:
        hi_s = self.offset_s + min(end_s, self.duration_s)
        part = self.inner._window(streams, min(self.offset_s + start_s, hi_s), hi_s)
        return part._retimed(part.time_s - self.offset_s, start_s, end_s)

    def rate_scale(self, factor: float, *, resolution_s: float = 60.0) -> Profile:
        return replace(self, inner=self.inner.rate_scale(factor, resolution_s=resolution_s))


@dataclass(frozen=True, slots=True, eq=False)
class _Looped(Profile):
    inner: Profile
    duration_s: float

    def _token_kinds(self) -> tuple[bool, bool]:
        return self.inner._token_kinds()

    def _expected_before(self, time_s: FloatArray) -> FloatArray | None:
        period_s = self.inner.duration_s
        repetitions = np.floor(time_s / period_s)
        within = np.clip(time_s - repetitions * period_s, 0.0, period_s)
        before = self.inner._expected_before(np.append(within, period_s))
        return None if before is None else repetitions * before[-1] + before[:-1]

    def _window(self, streams: _Streams, start_s: float, end_s: float) -> Arrivals:
        period_s = self.inner.duration_s
        first = int(start_s // period_s)
        last = max(first + 1, math.ceil(end_s / period_s))
        parts = []
        for repetition in range(first, last):
            offset_s = repetition * period_s
            lo_s = self._inner_time(start_s - offset_s)
            hi_s = self._inner_time(end_s - offset_s)
            if hi_s > lo_s:
                part = self.inner._window(streams.child(repetition), lo_s, hi_s)
                parts.append(part._retimed(part.time_s + offset_s, start_s, end_s))
        return _concat(parts, start_s, end_s, self._token_kinds())

    def _inner_time(self, time_s: float) -> float:
        """A time within one repetition; a hair short of its end (rounding) is its end."""
        period_s = self.inner.duration_s
        return period_s if time_s >= period_s * (1 - 1e-12) else max(time_s, 0.0)

    def rate_scale(self, factor: float, *, resolution_s: float = 60.0) -> Profile:
        return replace(self, inner=self.inner.rate_scale(factor, resolution_s=resolution_s))


BlockFn = Callable[[Arrivals, np.random.Generator], Arrivals]


def _blockwise(
    owner: Profile,
    inner: Profile,
    streams: _Streams,
    start_s: float,
    end_s: float,
    block_s: float,
    transform: BlockFn,
) -> Arrivals:
    """Apply a random `transform` to whole `block_s` blocks of the inner profile, then cut.

    Keying each block's randomness by its index keeps the result independent of windowing.
    """
    kinds = owner._token_kinds()
    if end_s <= start_s:
        return _empty(start_s, end_s, kinds)
    first = int(start_s // block_s)
    last = max(first + 1, math.ceil(end_s / block_s))
    edges = [min(block * block_s, inner.duration_s) for block in range(first, last + 1)]
    if end_s >= owner.duration_s:
        edges[-1] = inner.duration_s
    whole = inner._window(streams.child(0), edges[0], edges[-1])
    own = streams.child(1)
    parts = [
        transform(whole.window(lo, hi), own.rng(first + i))
        for i, (lo, hi) in enumerate(pairwise(edges))
        if hi > lo
    ]
    return _concat(parts, edges[0], edges[-1], kinds).window(start_s, end_s)


@dataclass(frozen=True, slots=True, eq=False)
class _Resampled(Profile):
    inner: Profile
    factor: float
    resolution_s: float
    duration_s: float

    def _token_kinds(self) -> tuple[bool, bool]:
        return self.inner._token_kinds()

    def _expected_before(self, time_s: FloatArray) -> FloatArray | None:
        before = self.inner._expected_before(time_s)
        return None if before is None else self.factor * before

    def _window(self, streams: _Streams, start_s: float, end_s: float) -> Arrivals:
        return _blockwise(
            self, self.inner, streams, start_s, end_s, self.resolution_s, self._resample
        )

    def _resample(self, block: Arrivals, rng: np.random.Generator) -> Arrivals:
        if self.factor * len(block) > MAX_REQUESTS_PER_HOUR:
            problem = (
                f"rate_scale {self.factor:g} asks for {self.factor * len(block):.2g} requests in"
                f" the {block.end_s - block.start_s:g} s from t={block.start_s:g} s (the cap is"
                f" {MAX_REQUESTS_PER_HOUR:.0e} per hour)"
            )
            raise ProfileError(
                Oversize("per hour", problem, getattr(_base(self), "source", "")).message(
                    "lower the factor"
                )
            )
        whole = math.floor(self.factor)
        instances = whole + (rng.random(len(block)) < self.factor - whole)
        kept = block._take(instances >= 1)
        if whole < 1 or not np.any(instances > 1):
            return kept
        source = np.repeat(np.arange(len(block)), np.maximum(instances - 1, 0))
        copies = block._take(source)
        width_s = block.end_s - block.start_s
        copy_s = _clamp(
            block.start_s + rng.random(source.size) * width_s, block.start_s, block.end_s
        )
        merged = _concat(
            [kept, copies._retimed(copy_s, block.start_s, block.end_s)],
            block.start_s,
            block.end_s,
            self._token_kinds(),
        )
        return merged._take(np.argsort(merged.time_s, kind="stable"))

    def rate_scale(self, factor: float, *, resolution_s: float = 60.0) -> Profile:
        factor = _positive("rate_scale", "factor", factor)
        return replace(self, factor=self.factor * factor)


def _token_pairs(
    input_tokens: npt.ArrayLike | None, output_tokens: npt.ArrayLike | None
) -> tuple[IntArray | None, IntArray | None]:
    where = "with_tokens"
    if input_tokens is None and output_tokens is None:
        raise ProfileError(f"{where}: give input_tokens, output_tokens or both")
    sizes = {np.size(t) for t in (input_tokens, output_tokens) if t is not None}
    if len(sizes) != 1 or 0 in sizes:
        raise ProfileError(f"{where}: token arrays must be non-empty and of equal length")
    n = sizes.pop()
    return (
        _tokens(where, "input_tokens", input_tokens, n),
        _tokens(where, "output_tokens", output_tokens, n),
    )


@dataclass(frozen=True, slots=True, eq=False)
class _WithTokens(Profile):
    inner: Profile
    input_pool: IntArray | None
    output_pool: IntArray | None
    resolution_s: float
    duration_s: float

    def _token_kinds(self) -> tuple[bool, bool]:
        return (self.input_pool is not None, self.output_pool is not None)

    def _expected_before(self, time_s: FloatArray) -> FloatArray | None:
        return self.inner._expected_before(time_s)

    def _window(self, streams: _Streams, start_s: float, end_s: float) -> Arrivals:
        return _blockwise(self, self.inner, streams, start_s, end_s, self.resolution_s, self._draw)

    def _draw(self, block: Arrivals, rng: np.random.Generator) -> Arrivals:
        pool = self.input_pool if self.input_pool is not None else self.output_pool
        assert pool is not None
        pick = rng.integers(0, pool.size, len(block))
        return Arrivals(
            block.start_s,
            block.end_s,
            block.time_s,
            None if self.input_pool is None else self.input_pool[pick],
            None if self.output_pool is None else self.output_pool[pick],
        )

    def rate_scale(self, factor: float, *, resolution_s: float = 60.0) -> Profile:
        return replace(self, inner=self.inner.rate_scale(factor, resolution_s=resolution_s))


# --------------------------------------------------------------------------- size caps


@dataclass(frozen=True, slots=True)
class Oversize:
    """Why a profile is beyond one run's caps, and where it came from (see `oversize`).

    `line` is the file line of the largest rate (or, for a too-long profile, the longest step)
    of a rate series read from a file. `rate_scale` is a factor that brings the expected
    requests under the caps (None when the duration is the problem).
    """

    kind: Literal["duration", "requests", "per hour"]
    problem: str
    source: str = ""
    line: int | None = None
    rate_scale: float | None = None

    def message(self, fix: str) -> str:
        """One line: the file (and line), the problem and `fix` (in the caller's vocabulary)."""
        place = self.source or "profile"
        if self.source and self.line is not None:
            place = f"{self.source}:{self.line}"
        return f"{place}: {self.problem}; {fix}"


def oversize(profile: Profile) -> Oversize | None:
    """Whether `profile` exceeds `MAX_DURATION_S`, `MAX_REQUESTS` or `MAX_REQUESTS_PER_HOUR`.

    Worked from expected counts (rate x duration, through every slice, scale and loop), so
    it costs one small array per hour of profile, whatever the rate: a rate series implying
    10^15 requests is refused without drawing one.
    """
    base = _base(profile)
    steps = base.step_lines if isinstance(base, RateProfile) else None
    source = getattr(base, "source", "")
    if profile.duration_s > MAX_DURATION_S:
        problem = (
            f"the profile lasts {profile.duration_s / 86400:,.0f} days (the cap is"
            f" {MAX_DURATION_S / 86400:.0f} days per run)"
        )
        longest = None
        if isinstance(base, RateProfile):
            step = int(np.argmax(np.diff(base.edges_s)))
            longest = None if steps is None else int(steps[step])
            days = (base.edges_s[step + 1] - base.edges_s[step]) / 86400
            problem += f"; its longest step lasts {days:,.0f} days"
            problem += "" if longest is None else f" from line {longest}"
        return Oversize("duration", problem, source, longest)
    edges = np.append(np.arange(0.0, profile.duration_s, _HOUR_S), profile.duration_s)
    before = profile._expected_before(edges)
    if before is None:
        return None
    with np.errstate(invalid="ignore"):
        per_hour = np.nan_to_num(np.diff(before), nan=math.inf)
    total = float(np.nan_to_num(before[-1], nan=math.inf))
    busiest = int(np.argmax(per_hour))
    kind: Literal["requests", "per hour"]
    if total > MAX_REQUESTS:
        kind = "requests"
        problem = f"about {total:.2g} requests expected (the cap is {MAX_REQUESTS:.0e} per run)"
        scale = MAX_REQUESTS / total
    elif per_hour[busiest] > MAX_REQUESTS_PER_HOUR:
        kind = "per hour"
        problem = (
            f"about {per_hour[busiest]:.2g} requests expected in the hour from t="
            f"{edges[busiest]:g} s (the cap is {MAX_REQUESTS_PER_HOUR:.0e} per hour, about"
            f" {MAX_REQUESTS_PER_HOUR / _HOUR_S:,.0f} req/s)"
        )
        scale = MAX_REQUESTS_PER_HOUR / float(per_hour[busiest])
    else:
        return None
    largest = None
    if isinstance(base, RateProfile) and base.rate_rps.size:
        peak = int(np.argmax(base.rate_rps))
        problem += f"; largest rate {base.rate_rps[peak]:.3g} req/s"
        if steps is not None:
            largest = int(steps[peak])
            problem += f" at line {largest}"
    return Oversize(kind, problem, source, largest, scale)


def _base(profile: Profile) -> Profile:
    """The profile under every slice, scale, loop and token wrapper."""
    while isinstance(profile, _TimeScaled | _Sliced | _Looped | _Resampled | _WithTokens):
        profile = profile.inner
    return profile


def _refuse_oversize(profile: Profile) -> None:
    too_big = oversize(profile)
    if too_big is not None:
        fix = "lower the load (rate_scale) or take part of it (slice)"
        raise ProfileError(too_big.message(fix))
