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
        if isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now):
            raise ObservationError(f"now_s: must be finite Unix seconds (got {now!r})")
        object.__setattr__(self, "now_s", float(now))
        for name in ("replicas", "ready_replicas", "starting_replicas"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:  # fast path: a plain count stays as it is
                object.__setattr__(self, name, _count(name, value))
        for name in SIGNALS:
            value = getattr(self, name)
            # fast path: None, or a finite non-negative float (NaN fails the comparison)
            if value is None:
                continue
            upper = 1 + _SHARE_SLACK if name in _SHARES else MAX_SIGNAL
            if type(value) is float and 0.0 <= value <= upper:
                continue
            object.__setattr__(self, name, _signal(name, value))
        if self.extra is EMPTY_EXTRA or not self.extra:
            object.__setattr__(self, "extra", EMPTY_EXTRA)
            return
        extra = {str(k): _signal(f"extra.{k}", v) for k, v in dict(self.extra).items()}
        cleaned = {k: v for k, v in extra.items() if v is not None}
        object.__setattr__(self, "extra", MappingProxyType(cleaned) if cleaned else EMPTY_EXTRA)

    def signal(self, name: str) -> float | None:
        """A standard signal by name, or a custom one as `extra.<name>` (or bare)."""
        if name in SIGNALS:
            value: float | None = getattr(self, name)
            return value
        key = name.removeprefix("extra.")
        return self.extra.get(key)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with None for missing signals and `extra` as a plain dict."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["extra"] = dict(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Observation:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ObservationError(
                f"{unknown[0]}: not an observation field; known: {', '.join(sorted(known))}"
            )
        return cls(**dict(data))


def is_signal_name(name: str) -> bool:
    """True for a standard signal or an `extra.<name>` custom one."""
    return name in SIGNALS or (name.startswith("extra.") and len(name) > len("extra."))
