"""Checks on profile parameters; each failure is one `ProfileError` line naming the parameter.

In: values as given (numbers, array-likes, token counts) and the function they were given to.
Out: the validated number or array, or `ProfileError("where: name must be ... (got ...)")`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from simulator.profiles.arrivals import FloatArray, IntArray


class ProfileError(ValueError):
    """Profile parameters that cannot describe load; the message names the parameter and fix."""


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
