"""A tiny third-party policy: one replica per `per_replica` queued requests, plus headroom.

It exists to show (and test) the plugin contract: a PolicyFactory with `from_spec`, a frozen
policy with explicit state (an exponentially smoothed queue), registered by entry point.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from policies import Observation, Proposal
from policies.spec import StrictModel, parse


class Params(StrictModel):
    per_replica: float = Field(gt=0)
    smoothing: float = Field(default=0.5, gt=0, le=1)


@dataclass(frozen=True)
class SmoothedQueuePolicy:
    per_replica: float
    smoothing: float
    name: str = "smoothed-queue"
    pauses_at_zero = False
    required_signals = frozenset({"queue_depth"})

    def spec(self) -> dict[str, Any]:
        return {"per_replica": self.per_replica, "smoothing": self.smoothing}

    def initial_state(self) -> float | None:
        return None

    def dump_state(self, state: float | None) -> float | None:
        return state

    def load_state(self, data: Any) -> float | None:
        return None if data is None else float(data)

    def decide(self, obs: Observation, state: float | None) -> tuple[Proposal, float | None]:
        if obs.queue_depth is None:
            return Proposal.hold("queue_depth missing"), state
        smoothed = (
            obs.queue_depth
            if state is None
            else (self.smoothing * obs.queue_depth + (1 - self.smoothing) * state)
        )
        want = math.ceil(smoothed / self.per_replica)
        return Proposal.scale(want, f"smoothed queue {smoothed:.1f}", smoothed=smoothed), smoothed


class SmoothedQueueFactory:
    name = "smoothed-queue"
    summary = "example plugin: smoothed queue depth per replica"
    guard_defaults: Mapping[str, Any] = {}
    example_spec: Mapping[str, Any] = {"per_replica": 4}

    def from_spec(self, spec: Mapping[str, Any]) -> SmoothedQueuePolicy:
        params = parse(Params, spec, "smoothed-queue spec")
        return SmoothedQueuePolicy(params.per_replica, params.smoothing)


FACTORY = SmoothedQueueFactory()


class Broken:
    """Not a factory at all: the registry must say so in one line."""
