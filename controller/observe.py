"""Observe: Prometheus answers and a workload read -> an Observation, and why each signal is
missing.

In: each target's filled queries (`TargetQueries`), a metric source (controller/prometheus.py:
ONE query per distinct PromQL text for every target read together), the actuator's
`WorkloadState`. Out: a `Reading` per target (values, and per missing signal the reason: empty,
stale, not_finite, or the failure's kind), then the `Observation` the policies see and the
`MetricsMissing` message, returned as data. The next stage is the policy's tick
(controller/loop.py).

`MetricBatcher` keeps Prometheus cheap while every target runs on its own task and schedule:
the reads that arrive together (targets due at the same moment, woken in the same turn of the
event loop) become one source read, so 500 targets on one interval still cost one query per
signal template, not 500; a target whose schedule differs reads on its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Protocol

from controller.actuators.base import WorkloadState
from controller.clock import Clock
from controller.prometheus import SourceStats
from controller.signals import ACTIVATION, Reading, TargetQueries, observation_signals
from policies import Observation

log = logging.getLogger(__name__)


class MetricSource(Protocol):
    """`controller.prometheus.PrometheusSource` (its `observe`), or a stub in tests (`read`,
    then `stats.last_missing`)."""

    stats: SourceStats

    async def read(
        self, targets: Sequence[TargetQueries], now_s: float
    ) -> dict[str, dict[str, float | None]]: ...


async def read_many(
    source: MetricSource, targets: Sequence[TargetQueries], now_s: float
) -> dict[str, Reading]:
    """Every target's Reading from one source read; a source bug is every signal missing."""
    try:
        observe = getattr(source, "observe", None)
        if observe is not None:
            readings: dict[str, Reading] = await observe(targets, now_s)
            return readings
        values = await source.read(targets, now_s)
        why = dict(source.stats.last_missing)
    except Exception:  # the source never raises for Prometheus; a bug must not stop ticks
        log.exception("metric source failed; every signal is missing this time")
        return {
            t.target: Reading(dict.fromkeys(t.queries), dict.fromkeys(t.queries, "internal"))
            for t in targets
        }
    out = {}
    for t in targets:
        got = values.get(t.target, {})
        out[t.target] = Reading(
            {s: got.get(s) for s in t.queries},
            {s: why.get((t.target, s), "empty") for s in t.queries if got.get(s) is None},
        )
    return out


class MetricBatcher:
    """Reads that arrive together share one source read (see the module docstring)."""

    def __init__(self, source: MetricSource, clock: Clock) -> None:
        self.source = source
        self.clock = clock
        self._waiting: list[tuple[TargetQueries, asyncio.Future[tuple[float, Reading]]]] = []
        self._flush: asyncio.Task[None] | None = None
        self.reads = 0  # source reads made (a batch is one)
        self.last_queries = 0  # queries the latest batch sent

    async def read(self, queries: TargetQueries) -> tuple[float, Reading]:
        """(the wall time the signals were read at, this target's Reading)."""
        future: asyncio.Future[tuple[float, Reading]] = asyncio.get_running_loop().create_future()
        self._waiting.append((queries, future))
        if self._flush is None:
            self._flush = asyncio.create_task(self._read_batch(), name="replicast:metrics-read")
        return await asyncio.shield(future)

    async def _read_batch(self) -> None:
        # Two turns of the event loop: the targets woken at the same moment all join.
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        batch, self._waiting, self._flush = self._waiting, [], None
        now_s = self.clock.now()
        self.reads += 1
        before = self.source.stats.queries_total
        try:
            readings = await read_many(self.source, [q for q, _ in batch], now_s)
            self.last_queries = self.source.stats.queries_total - before
        except BaseException as error:  # cancelled at shutdown: the waiters learn it
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            raise
        for q, future in batch:
            if not future.done():
                future.set_result((now_s, readings.get(q.target, Reading())))


def observation(
    state: WorkloadState, reading: Reading, now_s: float, activation_signal: str | None
) -> Observation:
    signals = observation_signals(
        reading.values, replicas=state.replicas, activation_signal=activation_signal
    )
    return Observation(
        now_s=now_s,
        replicas=state.replicas,
        ready_replicas=state.ready_replicas,
        starting_replicas=state.starting_replicas,
        **signals,
    )


def missing_signals(
    obs: Observation, reading: Reading, configured: Sequence[str]
) -> dict[str, str]:
    """signal -> why it is None, for the configured signals the Observation lacks."""
    return {
        s: reading.missing.get(s, "empty")
        for s in configured
        if s != ACTIVATION and obs.signal(s) is None
    }


def missing_message(
    obs: Observation, required: frozenset[str], missing: Mapping[str, str]
) -> str | None:
    """The MetricsMissing condition's message, or None when every required signal is there."""
    lacking = sorted(s for s in required if obs.signal(s) is None)
    if not lacking:
        return None
    listed = ", ".join(f"{s} ({missing.get(s, 'no query')})" for s in lacking)
    return (
        f"{listed}: missing or stale, so no scale-down until they are back; scale-up "
        "only on fresh signals; check Prometheus and the target's exporters"
    )
