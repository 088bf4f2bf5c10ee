"""The live loop's settings: one frozen value, every number in a documented finite range.

Built by controller/run.py from `replicast run`'s flags and the config's `defaults`; read by
the loop (controller/loop.py), the scheduler, the failure handling and the state store.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LoopSettings:
    # At most this many replicas added or removed per tick, whatever the policy decided.
    max_change_per_tick: int = 10
    # After the n-th TemporaryError in a row the target's next tick comes this long after the
    # failed one (the last delay repeats); the error's own delay_s wins when longer.
    retry_delays_s: tuple[float, ...] = (5.0, 15.0, 30.0, 60.0, 120.0)
    max_retry_delay_s: float = 300.0
    # A PermanentError from a scale call is tried again this long after it (config defaults
    # and `replicast run --permanent-error-retry-s`).
    permanent_error_retry_s: float = 300.0
    # Each state bucket is written at most this often (controller/state_store.py).
    state_write_interval_s: float = 10.0
    records_kept: int = 20  # outcomes per target in /status
    # SIGTERM: scale calls in flight finish, retries give up, the state is saved and the Lease
    # released within this (deploy/deployment.yaml's terminationGracePeriodSeconds is larger).
    shutdown_grace_s: float = 20.0
    # Kubernetes reads and writes of the targets in flight at once (the Lease has its own).
    max_in_flight: int = 16
    # The wall clock moving more than this many intervals away from monotonic time between two
    # ticks is a jump.
    clock_jump_intervals: float = 2.0

    def __post_init__(self) -> None:
        def check(name: str, low: float, high: float) -> None:
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value)) or not (
                low <= value <= high
            ):
                raise ValueError(f"{name}: must be {low:g} to {high:g} (got {value!r})")

        check("max_change_per_tick", 1, 10_000)
        check("max_retry_delay_s", 0, 86_400)
        check("permanent_error_retry_s", 1, 86_400)
        check("state_write_interval_s", 0, 3_600)
        check("records_kept", 1, 1_000)
        check("shutdown_grace_s", 1, 3_600)
        check("max_in_flight", 1, 1_024)
        check("clock_jump_intervals", 1, 100)
        if not self.retry_delays_s or any(
            not (math.isfinite(d) and 0 <= d <= 86_400) for d in self.retry_delays_s
        ):
            raise ValueError(
                f"retry_delays_s: must be delays of 0 to 86400 s (got {self.retry_delays_s})"
            )

    @property
    def release_reserve_s(self) -> float:
        """The part of the grace kept for saving the state and releasing the Lease."""
        return min(5.0, self.shutdown_grace_s / 3)
