"""A plain request-level discrete-event reference for `simulator.kernel`.

In: the same pre-drawn arrays the kernel takes (arrival times, service times, startup delays)
and the same replica decisions. Out: per request start times, and a `Snapshot` per tick with
the kernel's field names. One event at a time from a heap, Python objects throughout: slow and
obvious, so that `tests/simulator/test_kernel.py` can hold the compiled kernel to it.

Events at one instant run in this order (the kernel's module docstring states the same model):
capacity (a request completing, a replica becoming ready), then timeouts, then arrivals, then
the tick, which the caller runs after `advance`. Capacity events at one instant are applied
together before any queued request is placed, so the slot a request gets depends on how long
slots have been free (ties: lowest replica, then lowest slot), never on the order events were
pushed.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

CAPACITY, TIMEOUT, ARRIVAL = 0, 1, 2


class Snapshot(NamedTuple):
    now_s: float
    arrivals: int
    started: int
    completed: int
    dropped_timeout: int
    dropped_queue_full: int
    queued: int
    in_flight: int
    ready_replicas: int
    starting_replicas: int
    draining_replicas: int
    replica_seconds: float
    wait_sum_s: float
    latency_sum_s: float


@dataclass
class Replica:
    index: int
    seq: int
    created_s: float
    ready_s: float
    slots: int
    status: str = "starting"  # starting -> ready -> draining -> gone; starting -> gone
    gone_s: float = math.inf
    busy: list[int | None] = field(default_factory=list)  # request index per slot
    free_since_s: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.busy = [None] * self.slots
        self.free_since_s = [self.ready_s] * self.slots


class Oracle:
    """One target, simulated one event at a time. The kernel's calls, as methods: `advance`,
    `snapshot`, `set_replicas`; per request `start_s` (+inf not started, NaN dropped)."""

    def __init__(
        self,
        arrival_s: Iterable[float],
        service_s: Iterable[float],
        startup_delay_s: Iterable[float],
        *,
        slots_per_replica: int,
        initial_ready: int,
        max_replicas: int,
        now_s: float = 0.0,
        timeout_s: float | None = None,
        queue_limit: int | None = None,
    ) -> None:
        self.arrival_s = [float(a) for a in arrival_s]
        self.service_s = [float(s) for s in service_s]
        self.startup_delay_s = [float(d) for d in startup_delay_s]
        self.slots = slots_per_replica
        self.max_replicas = max_replicas
        self.timeout_s = timeout_s
        self.queue_limit = queue_limit
        self.now_s = now_s
        self.start_s = [math.inf] * len(self.arrival_s)
        self.replicas: list[Replica | None] = [None] * max_replicas
        self.created = 0
        self.delays_used = 0
        self.queue: deque[int] = deque()
        self.events: list[tuple[float, int, int, Any]] = []
        self.pushed = 0
        self.counts = dict.fromkeys(
            ("arrivals", "started", "completed", "dropped_timeout", "dropped_queue_full"), 0
        )
        self.wait_sum_s = 0.0
        self.latency_sum_s = 0.0
        self.billed: list[Replica] = []  # every replica ever created, for replica-seconds
        self.cancelled = 0  # starting replicas removed (what the tests check was exercised)
        self.drained = 0  # ready replicas removed while serving
        for _ in range(initial_ready):
            self._create(ready_s=now_s)
        for replica in self._alive():
            replica.status = "ready"
        if self.arrival_s:
            self._push(self.arrival_s[0], ARRIVAL, 0)

    # ---------------------------------------------------------------- the event loop

    def advance(self, until_s: float) -> None:
        """Run every event at time <= until_s."""
        while self.events and self.events[0][0] <= until_s:
            time_s, kind, _, payload = heapq.heappop(self.events)
            self.now_s = time_s
            if kind == CAPACITY:
                self._on_capacity(payload)
                next_is_capacity_now = (
                    self.events and self.events[0][0] == time_s and self.events[0][1] == CAPACITY
                )
                if not next_is_capacity_now:
                    self._dispatch()
            elif kind == TIMEOUT:
                self._on_timeout(payload)
            else:
                self._on_arrival(payload)
        self.now_s = until_s

    def _push(self, time_s: float, kind: int, payload: Any) -> None:
        heapq.heappush(self.events, (time_s, kind, self.pushed, payload))
        self.pushed += 1

    def _on_capacity(self, payload: Any) -> None:
        if payload[0] == "ready":
            replica = self.replicas[payload[1]]
            if replica is not None and replica.seq == payload[2] and replica.status == "starting":
                replica.status = "ready"
            return
        _, index, slot, request = payload
        self._complete(index, slot, request)

    def _complete(self, index: int, slot: int, request: int) -> None:
        replica = self.replicas[index]
        assert replica is not None
        replica.busy[slot] = None
        replica.free_since_s[slot] = self.now_s
        latency_s = self.now_s - self.arrival_s[request]
        self.counts["completed"] += 1
        self.latency_sum_s += latency_s
        if replica.status == "draining" and not any(r is not None for r in replica.busy):
            replica.status, replica.gone_s = "gone", self.now_s
            self.replicas[index] = None

    def _on_timeout(self, request: int) -> None:
        if self.queue and self.queue[0] == request:
            self.queue.popleft()
            self.start_s[request] = math.nan
            self.counts["dropped_timeout"] += 1
        else:
            assert self.start_s[request] < math.inf, "a timeout must hit the oldest queued request"

    def _on_arrival(self, request: int) -> None:
        self.counts["arrivals"] += 1
        if request + 1 < len(self.arrival_s):
            self._push(self.arrival_s[request + 1], ARRIVAL, request + 1)
        if not self.queue and self._idle_slot() is not None:
            self._start(request)
        elif self.queue_limit is not None and len(self.queue) >= self.queue_limit:
            self.start_s[request] = math.nan
            self.counts["dropped_queue_full"] += 1
        else:
            self.queue.append(request)
            if self.timeout_s is not None:
                self._push(self.now_s + self.timeout_s, TIMEOUT, request)

    def _dispatch(self) -> None:
        while self.queue and self._idle_slot() is not None:
            self._start(self.queue.popleft())

    def _idle_slot(self) -> tuple[float, int, int] | None:
        """The ready replica's idle slot free the longest (ties: lowest replica, lowest slot)."""
        candidates = [
            (replica.free_since_s[slot], replica.index, slot)
            for replica in self._alive()
            if replica.status == "ready"
            for slot in range(self.slots)
            if replica.busy[slot] is None
        ]
        return min(candidates, default=None)

    def _start(self, request: int) -> None:
        idle = self._idle_slot()
        assert idle is not None
        _, index, slot = idle
        replica = self.replicas[index]
        assert replica is not None
        replica.busy[slot] = request
        self.start_s[request] = self.now_s
        self.counts["started"] += 1
        self.wait_sum_s += self.now_s - self.arrival_s[request]
        end_s = self.now_s + self.service_s[request]
        if end_s == self.now_s:  # done the instant it starts: its slot is free for the next one
            self._complete(index, slot, request)
        else:
            self._push(end_s, CAPACITY, ("done", index, slot, request))

    # ---------------------------------------------------------------- replicas

    def _alive(self) -> list[Replica]:
        return [replica for replica in self.replicas if replica is not None]

    def _create(self, ready_s: float) -> None:
        index = self.replicas.index(None)
        replica = Replica(index, self.created, self.now_s, ready_s, self.slots)
        self.replicas[index] = replica
        self.billed.append(replica)
        self.created += 1
        self._push(ready_s, CAPACITY, ("ready", index, replica.seq))

    def set_replicas(self, desired: int) -> None:
        """Scale to `desired` starting-or-ready replicas now."""
        active = [r for r in self._alive() if r.status in ("starting", "ready")]
        for _ in range(desired - len(active)):
            delay_s = self.startup_delay_s[self.delays_used]
            self.delays_used += 1
            self._create(ready_s=self.now_s + delay_s)
        for _ in range(len(active) - desired):
            starting = [r for r in self._alive() if r.status == "starting"]
            ready = [r for r in self._alive() if r.status == "ready"]
            victim = max(starting or ready, key=lambda r: r.seq)
            if victim.status == "ready" and any(r is not None for r in victim.busy):
                victim.status = "draining"
                self.drained += 1
            else:
                self.cancelled += victim.status == "starting"
                victim.status, victim.gone_s = "gone", self.now_s
                self.replicas[victim.index] = None

    def snapshot(self) -> Snapshot:
        alive = self._alive()
        return Snapshot(
            now_s=self.now_s,
            **self.counts,
            queued=len(self.queue),
            in_flight=sum(r is not None for replica in alive for r in replica.busy),
            ready_replicas=sum(r.status == "ready" for r in alive),
            starting_replicas=sum(r.status == "starting" for r in alive),
            draining_replicas=sum(r.status == "draining" for r in alive),
            replica_seconds=sum(min(r.gone_s, self.now_s) - r.created_s for r in self.billed),
            wait_sum_s=self.wait_sum_s,
            latency_sum_s=self.latency_sum_s,
        )
