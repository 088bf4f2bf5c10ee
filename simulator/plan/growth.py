"""Growth what-if: `--growth 30%/quarter --horizon 4q` as the load factor of each step.

`parse_growth("30%/quarter")` -> (0.30, 3 months); `parse_horizon("4q")` -> 12 months (also
`6m`, `1y`, or a bare number of growth periods). Step k of the horizon (k = 0 .. n) multiplies
every rate by (1 + g)^k, k periods of the growth's length from now. Errors are one line
naming the flag and the form it takes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

PERIOD_MONTHS = {"month": 1, "mo": 1, "m": 1, "quarter": 3, "q": 3, "year": 12, "y": 12}


class GrowthError(ValueError):
    """A --growth or --horizon value that cannot be read."""


@dataclass(frozen=True)
class Growth:
    rate: float  # per period: 0.3 is +30 %
    period_months: int
    horizon_months: int

    def steps(self) -> list[tuple[int, float]]:
        """(months from now, load factor) for now and each period up to the horizon."""
        n = self.horizon_months // self.period_months if self.rate else 0
        return [(k * self.period_months, (1.0 + self.rate) ** k) for k in range(n + 1)]

    @property
    def label(self) -> str:
        if not self.rate:
            return "no growth"
        return (
            f"+{100 * self.rate:g} % per {self.period_months} month(s), "
            f"{self.horizon_months} months ahead"
        )


def parse_growth(text: str | None) -> tuple[float, int]:
    if not text:
        return 0.0, 3
    match = re.fullmatch(r"\s*([+-]?[0-9.]+)\s*%\s*/\s*([a-z]+)\s*", text.lower())
    if not match or match.group(2) not in PERIOD_MONTHS:
        raise GrowthError(
            f"--growth {text}: use RATE%/PERIOD, e.g. 30%/quarter, 5%/month, 50%/year"
        )
    rate = float(match.group(1)) / 100.0
    if not (math.isfinite(rate) and -0.9 <= rate <= 10.0):
        raise GrowthError(f"--growth {text}: the rate must be between -90% and 1000% a period")
    return rate, PERIOD_MONTHS[match.group(2)]


def parse_horizon(text: str | None, period_months: int) -> int:
    if not text:
        return 4 * period_months
    match = re.fullmatch(r"\s*([0-9]+)\s*([a-z]*)\s*", text.lower())
    unit = match.group(2) if match else ""
    if not match or (unit and unit not in PERIOD_MONTHS):
        raise GrowthError(f"--horizon {text}: use a count and a unit, e.g. 4q, 12m, 2y")
    months = int(match.group(1)) * (PERIOD_MONTHS[unit] if unit else period_months)
    if not 0 <= months <= 120:
        raise GrowthError(f"--horizon {text}: at most 10 years (120 months)")
    return months


def growth(text: str | None, horizon: str | None) -> Growth:
    rate, period = parse_growth(text)
    return Growth(rate, period, parse_horizon(horizon, period))
