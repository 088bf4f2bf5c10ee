"""Whether a profile is beyond one run's caps, worked out before any arrival is drawn.

In: any `Profile` (through every wrapper to the profile under it). Out: an `Oversize` naming
the cap, the file and line of the largest rate when the profile was read from one, and a
`rate_scale` factor that fits; `Profile.arrivals` and `iter_chunks` raise it as a
`ProfileError`. Rate series (`RateProfile` steps, `LinearRateProfile` knots) name their lines.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from simulator.profiles.arrivals import IntArray
from simulator.profiles.base import Profile
from simulator.profiles.checks import ProfileError
from simulator.profiles.limits import (
    _HOUR_S,
    MAX_DURATION_S,
    MAX_REQUESTS,
    MAX_REQUESTS_PER_HOUR,
    Oversize,
)
from simulator.profiles.linear import LinearRateProfile
from simulator.profiles.rates import RateProfile
from simulator.profiles.wrappers import _base


def oversize(profile: Profile) -> Oversize | None:
    """Whether `profile` exceeds `MAX_DURATION_S`, `MAX_REQUESTS` or `MAX_REQUESTS_PER_HOUR`.

    Worked from expected counts (rate x duration, through every slice, scale and loop), so
    it costs one small array per hour of profile, whatever the rate: a rate series implying
    10^15 requests is refused without drawing one.
    """
    base = _base(profile)
    lines = _lines(base)
    source = getattr(base, "source", "")
    if profile.duration_s > MAX_DURATION_S:
        problem = (
            f"the profile lasts {profile.duration_s / 86400:,.0f} days (the cap is"
            f" {MAX_DURATION_S / 86400:.0f} days per run)"
        )
        longest = None
        found = _longest(base)
        if found is not None:
            what, index, days = found
            longest = None if lines is None else int(lines[index])
            problem += f"; its longest {what} lasts {days:,.0f} days"
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
    if isinstance(base, RateProfile | LinearRateProfile) and base.rate_rps.size:
        peak = int(np.argmax(base.rate_rps))  # a linear rate peaks at a knot
        problem += f"; largest rate {base.rate_rps[peak]:.3g} req/s"
        if lines is not None:
            largest = int(lines[peak])
            problem += f" at line {largest}"
    return Oversize(kind, problem, source, largest, scale)


def _lines(base: Profile) -> IntArray | None:
    """The file line of each step (or knot) of a rate series read from a file."""
    if isinstance(base, RateProfile):
        return base.step_lines
    if isinstance(base, LinearRateProfile):
        return base.knot_lines
    return None


def _longest(base: Profile) -> tuple[str, int, float] | None:
    """The longest step (or gap between knots): its name, its step (knot) and its days.

    A gap between knots is named by the knot it starts from (the first knot for the gap
    before it), so a row dated decades late is named by the row before it, as for steps.
    """
    if isinstance(base, RateProfile):
        step = int(np.argmax(np.diff(base.edges_s)))
        return "step", step, float(base.edges_s[step + 1] - base.edges_s[step]) / 86400
    if isinstance(base, LinearRateProfile):
        points = np.concatenate(([0.0], base.knots_s, [max(base.duration_s, base.knots_s[-1])]))
        gap = int(np.argmax(np.diff(points)))
        knot = min(max(gap - 1, 0), base.knots_s.size - 1)
        return "gap between knots", knot, float(points[gap + 1] - points[gap]) / 86400
    return None


def _refuse_oversize(profile: Profile) -> None:
    too_big = oversize(profile)
    if too_big is not None:
        fix = "lower the load (rate_scale) or take part of it (slice)"
        raise ProfileError(too_big.message(fix))
