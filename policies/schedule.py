"""`schedule`: replica bounds by time of day and day of week, in an IANA time zone.

Anchor: scheduled scaling as in AWS Auto Scaling scheduled actions (set min/max capacity for a
recurring window) and KEDA's cron scaler (a replica floor during a window); wall-clock time
comes from the stdlib `zoneinfo` database, so DST follows the zone's rules.

In: `obs.now_s` only (`datetime.fromtimestamp(now_s, zone)`; no signal is read). Out: bounds
for this moment, used two ways:
- standalone, a Proposal: the bound when the current count is outside it (`ScheduleMin` /
  `ScheduleMax`), a hold inside it (`WithinSchedule`), as a scheduled min/max capacity does;
- inside `max_of` / `floor` (policies/combinators.py), through `replica_bounds(obs)`: its min
  is a floor and its max a ceiling on what the other members propose. That is its real use,
  e.g. `floor(base=hpa, floor=schedule)`.

Spec keys (default):
- `time_zone` ("UTC"): an IANA name such as "Europe/Amsterdam".
- `default` ({min_replicas: 0}): the bounds when no rule is active; `max_replicas` omitted
  means no ceiling.
- `rules` ([]): each `{days, start, end, min_replicas, max_replicas}`: `days` a list of
  mon..sun (default all seven), `start` and `end` local wall-clock times "HH:MM" (`end` may be
  "24:00"). A rule is active while the local time is in [start, end) on one of its days. When
  end < start the rule spans midnight and `days` names the day it starts: `{days: [fri],
  start: "22:00", end: "06:00"}` runs from Friday 22:00 to Saturday 06:00. A rule sets
  min_replicas, max_replicas or both; an omitted one is the default's.
- Overlapping active rules combine: the max of their mins and the min of their maxes. When
  that min is above that max, the max wins (a ceiling is a cost or capacity limit, as the outer
  `max_replicas` is); `details` shows it.

Time and DST, exactly: a rule compares local wall-clock time, so "08:00" is 07:00 UTC in
winter and 06:00 UTC in summer in Amsterdam. On a spring-forward day a start inside the skipped
hour takes effect at the first wall time after it (02:30 -> at 03:00), and a window across the
night is an hour shorter; on a fall-back day the repeated hour is inside a window on both
passes, so a night window is an hour longer, and a boundary inside the repeated hour is
crossed twice. Tested in tests/test_schedule_traces.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field

from policies.observation import Observation
from policies.params import ParamsFactory, ParamsPolicy
from policies.policy import Proposal, StatelessPolicy
from policies.spec import MAX_REPLICAS, SpecError, StrictModel

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")
_DAY_S = 24 * 3600


class DefaultBounds(StrictModel):
    min_replicas: int = Field(default=0, ge=0, le=MAX_REPLICAS, description="replicas")
    max_replicas: int | None = Field(
        default=None, ge=0, le=MAX_REPLICAS, description="replicas (unset: no ceiling)"
    )


class RuleSpec(StrictModel):
    days: list[Day] = Field(
        default_factory=lambda: list(DAYS), min_length=1,
        description="mon..sun the rule starts on (default: all seven)",
    )  # fmt: skip
    start: str = Field(description="local wall-clock time HH:MM, 00:00..23:59")
    end: str = Field(description="local wall-clock time HH:MM, 00:00..24:00 (< start: next day)")
    min_replicas: int | None = Field(
        default=None, ge=0, le=MAX_REPLICAS, description="replicas (unset: the default's)"
    )
    max_replicas: int | None = Field(
        default=None, ge=0, le=MAX_REPLICAS, description="replicas (unset: the default's)"
    )


class ScheduleParams(StrictModel):
    """`schedule`'s spec keys."""

    time_zone: str = Field(default="UTC", description="an IANA name such as Europe/Amsterdam")
    default: DefaultBounds = Field(
        default_factory=DefaultBounds, description="the bounds when no rule is active"
    )
    rules: list[RuleSpec] = Field(
        default_factory=list, description="recurring windows; active ones combine"
    )


def clock_s(text: str, *, end: bool) -> int | None:
    """ "08:00" -> 28800 seconds after local midnight; None when it is not a valid time."""
    match = _CLOCK.match(text)
    if match is None:
        return None
    seconds = int(match.group(1)) * 3600 + int(match.group(2)) * 60
    limit = _DAY_S if end else _DAY_S - 60
    return seconds if seconds <= limit else None


@dataclass(frozen=True, slots=True)
class Rule:
    label: str  # "rules[0]"
    days: frozenset[int]  # 0 is Monday, as datetime.weekday()
    start_s: int  # seconds after local midnight
    end_s: int
    min_replicas: int  # the default's when the rule omits it
    max_replicas: int | None

    def active(self, weekday: int, second_of_day: float) -> bool:
        if self.start_s < self.end_s:
            return weekday in self.days and self.start_s <= second_of_day < self.end_s
        # Spans midnight: the evening part on a listed day, the morning part on the day after.
        evening = weekday in self.days and second_of_day >= self.start_s
        morning = (weekday - 1) % 7 in self.days and second_of_day < self.end_s
        return evening or morning


@dataclass(frozen=True)
class SchedulePolicy(ParamsPolicy[ScheduleParams], StatelessPolicy):
    params: ScheduleParams
    zone: ZoneInfo
    rules: tuple[Rule, ...]
    name: str = "schedule"

    @property
    def required_signals(self) -> frozenset[str]:
        return frozenset()

    def local_time(self, now_s: float) -> datetime | None:
        """The local wall-clock time, or None outside the years 1..9999 `datetime` holds."""
        try:
            return datetime.fromtimestamp(now_s, self.zone)
        except (OverflowError, ValueError, OSError):
            return None

    def replica_bounds(self, obs: Observation) -> tuple[int, int | None, str]:
        """(min, max or None, which rules set them and when) at `obs.now_s`."""
        local = self.local_time(obs.now_s)
        if local is None:
            default = self.params.default
            why = f"default: now_s {obs.now_s:g} is no date in years 1..9999"
            return default.min_replicas, default.max_replicas, why
        second = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
        active = [r for r in self.rules if r.active(local.weekday(), second)]
        when = f"{DAYS[local.weekday()]} {local:%H:%M} {self.params.time_zone}"
        if not active:
            default = self.params.default
            return default.min_replicas, default.max_replicas, f"default at {when}"
        low = max(r.min_replicas for r in active)
        ceilings = [r.max_replicas for r in active if r.max_replicas is not None]
        high = min(ceilings) if ceilings else None
        labels = ", ".join(r.label for r in active)
        if high is not None and low > high:
            return high, high, f"{labels} at {when} (their min {low} is above their max: max wins)"
        return low, high, f"{labels} at {when}"

    def decide(self, obs: Observation, state: Any) -> tuple[Proposal, Any]:
        low, high, source = self.replica_bounds(obs)
        local = self.local_time(obs.now_s)
        details = {
            "local_time": None if local is None else local.isoformat(),
            "min_replicas": low,
            "max_replicas": high,
            "source": source,
        }
        current = obs.replicas
        if current < low:
            return Proposal.scale(low, f"ScheduleMin: {source} sets min {low}", **details), state
        if high is not None and current > high:
            return Proposal.scale(high, f"ScheduleMax: {source} sets max {high}", **details), state
        shown = "no max" if high is None else f"max {high}"
        return Proposal.hold(
            f"WithinSchedule: {current} is within min {low}, {shown} ({source})", **details
        ), state


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # "America" is a directory
        return None


def _rules(params: ScheduleParams) -> tuple[tuple[Rule, ...], list[tuple[str, str]]]:
    default = params.default
    problems: list[tuple[str, str]] = []
    if default.max_replicas is not None and default.min_replicas > default.max_replicas:
        problems.append(
            (
                "default",
                f"min_replicas ({default.min_replicas}) must be <= max_replicas "
                f"({default.max_replicas})",
            )
        )
    rules = []
    for i, spec in enumerate(params.rules):
        where = f"rules[{i}]"
        start, end = clock_s(spec.start, end=False), clock_s(spec.end, end=True)
        for key, value, parsed, top in (
            ("start", spec.start, start, "23:59"),
            ("end", spec.end, end, "24:00"),
        ):
            if parsed is None:
                why = f"must be a time 'HH:MM' from 00:00 to {top} (got {value!r})"
                problems.append((f"{where}.{key}", why))
        if start is not None and start == end:
            problems.append((where, "start and end are equal; for a whole day use 00:00 to 24:00"))
        if spec.min_replicas is None and spec.max_replicas is None:
            problems.append((where, "sets neither min_replicas nor max_replicas"))
        low = default.min_replicas if spec.min_replicas is None else spec.min_replicas
        high = default.max_replicas if spec.max_replicas is None else spec.max_replicas
        if high is not None and low > high:
            problems.append(
                (where, f"min_replicas ({low}) must be <= max_replicas ({high}), defaults included")
            )
        days = frozenset(DAYS.index(d) for d in spec.days)
        rules.append(Rule(where, days, start or 0, end or 0, low, high))
    return tuple(rules), problems


class ScheduleFactory(ParamsFactory[ScheduleParams, SchedulePolicy]):
    name = "schedule"
    summary = "min/max replicas by day of week and time of day in an IANA time zone"
    guard_defaults: Mapping[str, Any] = {}
    example_spec: Mapping[str, Any] = {
        "time_zone": "Europe/Amsterdam",
        "default": {"min_replicas": 1},
        "rules": [
            {
                "days": ["mon", "tue", "wed", "thu", "fri"],
                "start": "08:00",
                "end": "20:00",
                "min_replicas": 4,
                "max_replicas": 20,
            },
            {"start": "22:00", "end": "06:00", "min_replicas": 2, "max_replicas": 6},
        ],
    }
    params_model = ScheduleParams

    def build(self, params: ScheduleParams) -> SchedulePolicy:
        """Checks across keys: the time zone exists, each rule's times and bounds."""
        rules, problems = _rules(params)
        zone = _zone(params.time_zone)
        if zone is None:
            problems.insert(
                0,
                (
                    "time_zone",
                    f"must be an IANA time zone such as 'Europe/Amsterdam' "
                    f"(got {params.time_zone!r})",
                ),
            )
        if problems or zone is None:
            raise SpecError(f"{self.name} spec", problems)
        return SchedulePolicy(params, zone, rules)


FACTORY = ScheduleFactory()
