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

A piecewise-linear rate (`LinearRateProfile`; `interpolated` turns a step series into one with
knots at the step centres, `linear_rates` builds one from knots) is drawn by time rescaling.
With Lambda(t) the integral of the rate from 0 to t (exactly quadratic between knots), a
renewal process of unit rate in operational time u, mapped through the exact inverse of
Lambda, has rate lambda(t) at every t and, locally, the CV of its unit-rate gaps; conversely
Lambda maps any point process with that intensity to a unit-rate Poisson process (the
time-rescaling theorem: Brown, Barbieri, Ventura, Kass and Frank, "The time-rescaling theorem
and its application to neural spike train data analysis", Neural Computation 14, 2002). The gaps
in u are gamma with mean 1 and the CV interpolated at each gap's real time (shape 1 / cv^2;
cv 1 or none: Poisson, cv 0: evenly spaced in u with a random phase), started in equilibrium
in every block; each piece between knots is inverted in closed form,
tau = 2 Delta / (a + sqrt(a^2 + 2 b Delta)) for rate a + b tau, so pieces of zero rate get no
arrivals and no step appears at a knot or a window boundary.

Randomness is keyed, not streamed: the caller's generator gives one root number, and every
generation block (`block_s` of profile time, 600 s by default) draws from its own stream derived
from the root and the block's place in the profile tree. So the arrivals never depend on
`chunk_s`, `slice` keeps exactly the original's arrivals inside its window, and the same seed
gives the same arrays.

Modules, one idea each: `base` (`Profile` and its operations' signatures), `arrivals` (the
`Arrivals` arrays), `streams` (keyed randomness), `checks` (parameter checks, `ProfileError`),
`rates` (`RateProfile`, `rate_steps`), `linear` (`LinearRateProfile`, `interpolated`,
`linear_rates`), `synthetic` (constant, ramp, step, spike, diurnal,
bursty), `requests` (`RequestLog`, `request_log`), `wrappers` (time scale, rate scale, slice,
loop, tokens), `limits` and `caps` (how much one run may ask for, `oversize`). Import from
here: `from simulator.profiles import constant, Profile`.
"""

from __future__ import annotations

from simulator.profiles.arrivals import Arrivals
from simulator.profiles.arrivals import FloatArray as FloatArray
from simulator.profiles.arrivals import IntArray as IntArray
from simulator.profiles.base import DEFAULT_BLOCK_S, DEFAULT_CHUNK_S, Profile
from simulator.profiles.caps import oversize
from simulator.profiles.checks import ProfileError
from simulator.profiles.limits import MAX_DURATION_S, MAX_REQUESTS, MAX_REQUESTS_PER_HOUR, Oversize
from simulator.profiles.linear import LinearRateProfile, interpolated, linear_rates
from simulator.profiles.rates import RateProfile, rate_steps
from simulator.profiles.requests import RequestLog, request_log
from simulator.profiles.synthetic import bursty, constant, diurnal, ramp, spike, step

__all__ = [
    "DEFAULT_BLOCK_S",
    "DEFAULT_CHUNK_S",
    "MAX_DURATION_S",
    "MAX_REQUESTS",
    "MAX_REQUESTS_PER_HOUR",
    "Arrivals",
    "LinearRateProfile",
    "Oversize",
    "Profile",
    "ProfileError",
    "RateProfile",
    "RequestLog",
    "bursty",
    "constant",
    "diurnal",
    "interpolated",
    "linear_rates",
    "oversize",
    "ramp",
    "rate_steps",
    "request_log",
    "spike",
    "step",
]
