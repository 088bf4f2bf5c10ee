"""`Profile`: when requests arrive over `[0, duration_s)`, and the operations every profile has.

In: a subclass's `_window` (its arrivals in one window, from keyed streams). Out: `arrivals`
and `iter_chunks` for everyone, and the operations (`time_scale`, `rate_scale`, `slice`,
`loop`, `with_tokens`), each a new profile from `simulator.profiles.wrappers`. Before drawing,
a profile beyond one run's caps is refused (`simulator.profiles.caps`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from simulator.profiles.arrivals import _NO_TOKENS, Arrivals, FloatArray
from simulator.profiles.checks import ProfileError, _finite, _non_negative, _positive
from simulator.profiles.streams import _root, _Streams

DEFAULT_CHUNK_S = 3600.0
DEFAULT_BLOCK_S = 600.0
# iter_chunks generates at least this much profile time at once, so tiny chunks stay cheap.
_GENERATION_S = 3600.0


class Profile(ABC):
    """When requests arrive over `[0, duration_s)`; see `simulator.profiles`.

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
        from simulator.profiles.caps import _refuse_oversize  # noqa: PLC0415 - it uses subclasses

        _refuse_oversize(self)
        return self._window(_root(rng), 0.0, self.duration_s)

    def iter_chunks(
        self, rng: np.random.Generator, *, chunk_s: float = DEFAULT_CHUNK_S
    ) -> Iterator[Arrivals]:
        """Arrivals window by window: `[0, chunk_s)`, `[chunk_s, 2 chunk_s)`, ... up to the end.

        Every window is yielded, empty or not; concatenated they equal `arrivals(rng)` for a
        generator in the same state, whatever `chunk_s` is. The generator is used (once) now.
        """
        from simulator.profiles.caps import _refuse_oversize  # noqa: PLC0415 - it uses subclasses

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
        from simulator.profiles.wrappers import _TimeScaled  # noqa: PLC0415 - subclasses

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
        from simulator.profiles.wrappers import _Resampled  # noqa: PLC0415 - subclasses

        factor = _positive("rate_scale", "factor", factor)
        resolution_s = _positive("rate_scale", "resolution_s", resolution_s)
        return _Resampled(self, factor, resolution_s, self.duration_s)

    def slice(self, start_s: float, end_s: float | None = None) -> Profile:
        """The part in `[start_s, end_s)`, re-timed to start at 0; same arrivals as the original."""
        from simulator.profiles.wrappers import _Sliced  # noqa: PLC0415 - subclasses

        start_s = _non_negative("slice", "start_s", start_s)
        end = self.duration_s if end_s is None else _finite("slice", "end_s", end_s)
        if not start_s < end <= self.duration_s:
            raise ProfileError(
                f"slice: need 0 <= start_s < end_s <= duration_s={self.duration_s:g}"
                f" (got start_s={start_s:g}, end_s={end:g})"
            )
        return _Sliced(self, start_s, end - start_s)

    def pad(self, quiet_s: float) -> Profile:
        """The profile followed by `quiet_s` seconds without arrivals (a cooldown, so a run
        shows the scale-down after the load); same arrivals as the original."""
        from simulator.profiles.wrappers import _Padded  # noqa: PLC0415 - subclasses

        quiet_s = _non_negative("pad", "quiet_s", quiet_s)
        return _Padded(self, self.duration_s + quiet_s) if quiet_s > 0 else self

    def loop(self, times: int | None = None, *, duration_s: float | None = None) -> Profile:
        """Repeat back to back, `times` times or until `duration_s` (the last may be cut).

        Each repetition is an independent draw: a synthetic profile gets fresh randomness, a
        replayed log repeats its requests exactly.
        """
        from simulator.profiles.wrappers import _Looped  # noqa: PLC0415 - subclasses

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
        from simulator.profiles.wrappers import _token_pairs, _WithTokens  # noqa: PLC0415 - subclasses

        pairs = _token_pairs(input_tokens, output_tokens)
        resolution_s = _positive("with_tokens", "resolution_s", resolution_s)
        return _WithTokens(self, pairs[0], pairs[1], resolution_s, self.duration_s)
