"""The queueing model behind the engine's loop, as a protocol: `simulator.kernel`, or a test's
event-by-event reference (`tests/simulator/oracle.py`).

In: request arrays, startup delays and the replica model's queueing (`KernelOptions`, passed
field by field to `new_state`). Out: a state the loop advances, snapshots, scales and folds.
"""

from __future__ import annotations

from typing import Any, Protocol

from simulator import kernel
from simulator.result import FloatArray


class Backend(Protocol):
    """The queueing model behind the loop: `simulator.kernel`, or the test oracle."""

    def new_state(
        self,
        arrival_s: FloatArray,
        service_s: FloatArray,
        startup_delay_s: FloatArray,
        *,
        slots_per_replica: int,
        initial_ready: int,
        max_replicas: int,
        now_s: float,
        timeout_s: float | None,
        queue_limit: int | None,
    ) -> Any: ...
    def advance(self, state: Any, until_s: float) -> None: ...
    def snapshot(self, state: Any) -> kernel.Snapshot: ...
    def set_replicas(self, state: Any, desired: int) -> None: ...
    def startup_delays_left(self, state: Any) -> int: ...
    def add_startup_delays(self, state: Any, more: FloatArray) -> Any: ...
    def carry_over(
        self, state: Any, arrival_s: FloatArray, service_s: FloatArray, *, check: bool = True
    ) -> Any: ...
    def settled(self, state: Any) -> int: ...
    def latency_histogram(self, state: Any) -> Any: ...
    def start_s(self, state: Any) -> FloatArray: ...


class KernelBackend:
    """`simulator.kernel` behind the Backend protocol."""

    new_state = staticmethod(kernel.new_state)
    advance = staticmethod(kernel.advance)
    snapshot = staticmethod(kernel.snapshot)
    set_replicas = staticmethod(kernel.set_replicas)
    startup_delays_left = staticmethod(kernel.startup_delays_left)
    add_startup_delays = staticmethod(kernel.add_startup_delays)
    carry_over = staticmethod(kernel.carry_over)
    settled = staticmethod(kernel.settled)

    @staticmethod
    def latency_histogram(state: kernel.KernelState) -> Any:
        return state.latency_hist

    @staticmethod
    def start_s(state: kernel.KernelState) -> FloatArray:
        return state.start_s
