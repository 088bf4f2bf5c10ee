"""`KernelOptions`: what a replica model decides of the kernel's queue, as one typed value.

In: a `ReplicaModel` (`simulator.model.ReplicaModel.for_kernel` builds it), or a mapping with
the same keys from a caller of `simulator.engine.simulate` (`KernelOptions.of`). Out: the engine
hands each field by name to `simulator.kernel.new_state`, which stores them as the scalars its
compiled loop reads (`slots_per_replica` becomes `count[C_SLOTS]`, `queue_limit`
`count[C_QUEUE_LIMIT]`, `timeout_s` `clock[F_TIMEOUT_S]`). The kernel checks the values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["KernelOptions"]


@dataclass(frozen=True, slots=True)
class KernelOptions:
    """One replica's queueing, as the kernel simulates it (see `simulator.kernel`)."""

    slots_per_replica: int  # requests one replica serves at once
    timeout_s: float | None = None  # a request still queued this long after arriving is dropped
    queue_limit: int | None = None  # an arrival that finds this many queued is dropped

    @classmethod
    def of(cls, given: KernelOptions | Mapping[str, Any]) -> KernelOptions:
        """`given` itself, or the options a mapping names (an unknown key is a TypeError)."""
        return given if isinstance(given, KernelOptions) else cls(**given)

    def keywords(self) -> dict[str, Any]:
        """The options as keyword arguments of `simulator.kernel.new_state`."""
        return {
            "slots_per_replica": self.slots_per_replica,
            "timeout_s": self.timeout_s,
            "queue_limit": self.queue_limit,
        }
