"""Raw column text to values: numbers, whole numbers, and times (numbers in a unit or ISO 8601).

In: one column's text from a chunk (`simulator.traces.csvrows`). Out: numpy arrays of values
and which rows hold one; `_TimeFormat` judges a file's time format from its first rows and
reads every row as nanoseconds.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from simulator.traces.base import BoolArray, FloatArray, IntArray, TextArray, TimeUnit, _decoded

_NS_PER_UNIT = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
_UNIT_NAMES = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}

_MAX_NS = 9.0e18  # int64 nanoseconds reach about year 2262


def _floats(raw: TextArray) -> FloatArray:
    """Numbers, NaN where the text is not one."""
    try:
        return raw.astype(np.float64)
    except ValueError:
        return np.array([_float_or_nan(text) for text in raw.tolist()], dtype=np.float64)


def _float_or_nan(text: str | bytes | float) -> float:
    try:
        return float(text)
    except (ValueError, OverflowError):  # OverflowError: an int beyond float, e.g. 10**400
        return math.nan


def _whole_numbers(raw: TextArray) -> tuple[IntArray, BoolArray]:
    """Whole numbers >= 0 (`12` or `12.0`), and which rows hold one."""
    try:
        values = raw.astype(np.int64)
        return values, values >= 0
    except (ValueError, OverflowError):
        numbers = _floats(raw)
        ok = np.isfinite(numbers) & (numbers >= 0) & (numbers == np.floor(numbers))
        ok &= numbers < 2.0**62
        return np.where(ok, numbers, 0).astype(np.int64), ok


_ISO_START = re.compile(r"\s*\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)?")
_OFFSET = re.compile(r"([+-])(\d{2})(?::?(\d{2}))?")


@dataclass(frozen=True, slots=True)
class _TimeFormat:
    """How one file writes times, judged from its first data row; every row must agree."""

    ns_per_unit: int | None  # numbers of this unit, or None for ISO 8601 text
    suffix_len: int  # ISO: characters of timezone suffix at the end of every row
    unit: TimeUnit = "s"

    @classmethod
    def detect(cls, raw: TextArray, unit: TimeUnit) -> _TimeFormat:
        """From the first of the first rows that looks like a number or an ISO time."""
        texts = [_decoded(value).strip() for value in raw[:100].tolist()]
        for text in texts:
            if not math.isnan(_float_or_nan(text)):
                return cls(_NS_PER_UNIT[unit], 0, unit)
            match = _ISO_START.match(text)
            if match:
                return cls(None, len(text) - match.end(), unit)
        return cls(None, 0, unit)

    def allowed(self) -> str:
        if self.ns_per_unit is not None:
            bound = _MAX_NS / self.ns_per_unit
            unit = _UNIT_NAMES[self.unit]
            return f"a number of {unit} between -{bound:.0e} and {bound:.0e}, as in the first row"
        return (
            "an ISO 8601 date and time such as '2023-11-16 18:15:46.68' or"
            " '2024-05-10T00:00:00+00:00', written the same way on every row"
        )

    def parse(self, raw: TextArray) -> tuple[IntArray, BoolArray]:
        """Nanoseconds (since the Unix epoch for ISO text), and which rows hold a time."""
        if self.ns_per_unit is not None:
            with np.errstate(over="ignore", invalid="ignore"):  # 1e300 s is refused, not warned
                nanoseconds = _floats(raw) * self.ns_per_unit
            ok = np.isfinite(nanoseconds) & (np.abs(nanoseconds) < _MAX_NS)
            return np.where(ok, np.round(nanoseconds), 0).astype(np.int64), ok
        text = np.strings.strip(raw)
        offset_ns = np.zeros(text.size, np.int64)
        ok = np.strings.slice(text, 4, 5) == text.dtype.type("-")  # a year first, not a number
        if self.suffix_len:
            suffixes = np.strings.slice(text, -self.suffix_len, None)
            text = np.strings.slice(text, 0, -self.suffix_len)
            unique, inverse = np.unique(suffixes, return_inverse=True)
            offsets = [_offset_ns(suffix) for suffix in unique.tolist()]
            offset_ns = np.array([o or 0 for o in offsets], np.int64)[inverse]
            ok &= np.array([o is not None for o in offsets], dtype=bool)[inverse]
        stamps = _datetimes(text)
        ok &= ~np.isnat(stamps)
        return np.where(ok, stamps.astype(np.int64) - offset_ns, 0), ok


def _offset_ns(suffix: str | bytes) -> int | None:
    """A timezone suffix ('Z', 'UTC', '+01:00', '-0530', '+02') as nanoseconds east of UTC."""
    text = _decoded(suffix).strip()
    if text in ("Z", "UTC"):
        return 0
    match = _OFFSET.fullmatch(text)
    if match is None:
        return None
    sign = -1 if match[1] == "-" else 1
    return sign * (int(match[2]) * 3600 + int(match[3] or 0) * 60) * 10**9


def _datetimes(text: TextArray) -> npt.NDArray[np.datetime64]:
    """datetime64[ns] per row, NaT where numpy cannot read it (or would guess a timezone)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            return text.astype("datetime64[ns]")
        except (ValueError, OverflowError, Warning):
            return np.array([_datetime_or_nat(value) for value in text.tolist()])


def _datetime_or_nat(value: str | bytes) -> np.datetime64:
    try:
        return np.datetime64(_decoded(value), "ns")
    except (ValueError, OverflowError, Warning):
        return np.datetime64("NaT", "ns")
