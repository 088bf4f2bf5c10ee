"""One snapshot of one scaled target: what a policy sees each control interval.

In: built by a shell (the controller from Prometheus and the workload status, the simulator
from its replica model). Out: handed to `policies.protocol.tick`, which passes it to a policy.

Signals describe the whole target: `request_rate_rps`, `in_flight` and `queue_depth` are totals
over its replicas, latencies are percentiles over all of its requests, `error_rate` and
`gpu_utilization` are shares in 0..1. A missing signal is None, never 0. Shells judge staleness
and pass stale signals as None; this module also turns values that cannot be measurements
(NaN, infinities, negative counts, shares above 1, anything above MAX_SIGNAL = 1e15, more
than a Kubernetes quantity holds in milli-units) into None, so no policy ever divides by them
or overflows summing them.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

# The standard signals, in the order they appear in tables and records.
SIGNALS: tuple[str, ...] = (
    "request_rate_rps",
    "in_flight",
    "queue_depth",
    "latency_p50_s",
    "latency_p95_s",
    "latency_p99_s",
    "error_rate",
    "gpu_utilization",
)
_SHARES = frozenset({"error_rate", "gpu_utilization"})
# A share measured a hair above 1 (rounding in a rate() ratio) is still a share.
_SHARE_SLACK = 1e-6
MAX_SIGNAL = 1e15  # the spec's MAX_QUANTITY: no target or threshold is larger
_COUNTS = ("replicas", "ready_replicas", "starting_replicas")
# Each signal with the largest value it can hold (the fast path of the checks).
_SIGNAL_UPPER: tuple[tuple[str, float], ...] = tuple(
    (name, 1 + _SHARE_SLACK if name in _SHARES else MAX_SIGNAL) for name in SIGNALS
)

EMPTY_EXTRA: Mapping[str, float] = MappingProxyType({})


class ObservationError(ValueError):
    """An observation that no shell should build: bad replica counts or time."""


def _signal(name: str, value: object) -> float | None:
    """A measurement, or None when the value cannot be one."""
    if value is None or isinstance(value, bool):
        return None
    if not isinstance(value, int | float):
        raise ObservationError(f"{name}: must be a number or None (got {value!r})")
    number = float(value)
    if not 0 <= number <= MAX_SIGNAL:  # NaN and infinities fail too
        return None
    if name in _SHARES and number > 1 + _SHARE_SLACK:
        return None
    return number


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ObservationError(f"{name}: must be a whole number >= 0 (got {value!r})")
    if not math.isfinite(value) or value < 0 or value != int(value):
        raise ObservationError(f"{name}: must be a whole number >= 0 (got {value!r})")
    return int(value)


@dataclass(frozen=True, slots=True)
class Observation:
    """What a policy knows at `now_s` (Unix seconds, UTC) about one target."""

    now_s: float
    replicas: int
    ready_replicas: int
    starting_replicas: int = 0
    request_rate_rps: float | None = None
    in_flight: float | None = None
    queue_depth: float | None = None
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    latency_p99_s: float | None = None
    error_rate: float | None = None
    gpu_utilization: float | None = None
    extra: Mapping[str, float] = field(default_factory=lambda: EMPTY_EXTRA)

    def __post_init__(self) -> None:
        now = self.now_s
        if type(now) is not float or not math.isfinite(now):  # fast path: finite float seconds
            if isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now):
                raise ObservationError(f"now_s: must be finite Unix seconds (got {now!r})")
            object.__setattr__(self, "now_s", float(now))
        for name in _COUNTS:
            value = getattr(self, name)
            if type(value) is not int or value < 0:  # fast path: a plain count stays as it is
                object.__setattr__(self, name, _count(name, value))
        for name, upper in _SIGNAL_UPPER:
            value = getattr(self, name)
            # fast path: None, or a finite non-negative float (NaN fails the comparison)
            if value is None or (type(value) is float and 0.0 <= value <= upper):
                continue
            object.__setattr__(self, name, _signal(name, value))
        extra = self.extra
        if extra is EMPTY_EXTRA or not extra:
            object.__setattr__(self, "extra", EMPTY_EXTRA)
            return
        given = dict(extra)
        if all(
            type(k) is str and type(v) is float and 0.0 <= v <= MAX_SIGNAL for k, v in given.items()
        ):
            # fast path: every value already a measurement (what `_signal` would return)
            object.__setattr__(self, "extra", MappingProxyType(given))
            return
        checked = {str(k): _signal(f"extra.{k}", v) for k, v in given.items()}
        cleaned = {k: v for k, v in checked.items() if v is not None}
        object.__setattr__(self, "extra", MappingProxyType(cleaned) if cleaned else EMPTY_EXTRA)

    def signal(self, name: str) -> float | None:
        """A standard signal by name, or a custom one as `extra.<name>` (or bare)."""
        if name in SIGNALS:
            value: float | None = getattr(self, name)
            return value
        key = name.removeprefix("extra.")
        return self.extra.get(key)

    def with_replicas(self, replicas: int) -> Observation:
        """This observation with another `replicas` (what a dry-run policy believes it runs)."""
        return Observation(
            self.now_s, replicas, self.ready_replicas, self.starting_replicas,
            self.request_rate_rps, self.in_flight, self.queue_depth, self.latency_p50_s,
            self.latency_p95_s, self.latency_p99_s, self.error_rate, self.gpu_utilization,
            self.extra,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with None for missing signals and `extra` as a plain dict."""
        out: dict[str, Any] = dict(zip(FIELDS, _values(self), strict=True))
        out["extra"] = dict(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Observation:
        known = set(FIELDS)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ObservationError(
                f"{unknown[0]}: not an observation field; known: {', '.join(sorted(known))}"
            )
        return cls(**dict(data))


# The field names in declaration order (`to_dict`'s keys), read once: `dataclasses.fields`
# on every record would cost more than building the record's dict.
FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Observation))
_values = operator.attrgetter(*FIELDS)


def is_signal_name(name: str) -> bool:
    """True for a standard signal or an `extra.<name>` custom one."""
    return name in SIGNALS or (name.startswith("extra.") and len(name) > len("extra."))
