"""The most one run may ask for, and the record of why a profile asks for more (`Oversize`).

In: nothing (constants). Out: the caps `MAX_*` and `Oversize`, which `simulator.profiles.caps`
fills in for a whole profile and the generators fill in for the one block they refuse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# The most one run may ask for; beyond these a profile is refused (`oversize`) before any
# arrival is drawn, since the arrays alone would not fit in memory (an hour at 13,900 req/s
# is ~0.4 GB per array, and iter_chunks draws at least an hour at a time).
MAX_REQUESTS = 2e9  # expected arrivals of one run
MAX_REQUESTS_PER_HOUR = 5e7  # expected arrivals in any one hour of the profile
MAX_DURATION_S = 366 * 86400.0  # a year (a leap year) of profile time
_HOUR_S = 3600.0


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
