"""The operations on a profile, each a wrapper around the profile it changes.

In: a `Profile` and the operation's parameters (`Profile.time_scale`, `rate_scale`, `slice`,
`pad`, `loop`, `with_tokens` build these). Out: a `Profile` whose windows map into the inner
one's: re-timed (`_TimeScaled`, `_Sliced`, `_Padded`, `_Looped`) or transformed block by block
with their own keyed randomness (`_Resampled`, `_WithTokens`). `_base` finds the profile under
them all.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from simulator.profiles.arrivals import Arrivals, FloatArray, IntArray, _clamp, _concat, _empty
from simulator.profiles.base import Profile
from simulator.profiles.checks import ProfileError, _positive, _tokens
from simulator.profiles.limits import MAX_REQUESTS_PER_HOUR, Oversize
from simulator.profiles.streams import _Streams


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
class _Padded(Profile):
    """The inner profile, then quiet (no arrival) until `duration_s`."""

    inner: Profile
    duration_s: float

    def _token_kinds(self) -> tuple[bool, bool]:
        return self.inner._token_kinds()

    def _expected_before(self, time_s: FloatArray) -> FloatArray | None:
        return self.inner._expected_before(np.minimum(time_s, self.inner.duration_s))

    def _window(self, streams: _Streams, start_s: float, end_s: float) -> Arrivals:
        inner_end_s = self.inner.duration_s
        part = self.inner._window(streams, min(start_s, inner_end_s), min(end_s, inner_end_s))
        return part._retimed(part.time_s, start_s, end_s)

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


def _base(profile: Profile) -> Profile:
    """The profile under every slice, scale, loop and token wrapper."""
    while isinstance(profile, _TimeScaled | _Sliced | _Looped | _Resampled | _WithTokens):
        profile = profile.inner
    return profile
