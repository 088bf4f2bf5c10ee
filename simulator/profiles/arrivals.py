"""The arrivals of one window of a profile, as arrays.

In: arrival times (seconds from the profile start, ascending) and optional token counts.
Out: `Arrivals`, with its window views, and the helpers the profiles build one with
(`_empty`, `_concat`, `_clamp`). Every profile (`simulator.profiles.base`) yields these.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_NO_TOKENS = (False, False)


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
