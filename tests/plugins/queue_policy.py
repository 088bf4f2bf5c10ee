"""A tiny third-party policy: one replica per `per_replica` queued requests, plus headroom.

It exists to show (and test) the plugin contract, in the shape every built-in has: one frozen
parameter model (keys, defaults, units in the descriptions, bounds), a frozen policy holding it
as `params` (so `spec()` is the model) with explicit state (an exponentially smoothed queue),
and a factory naming the model (`params_model`: parsing and the JSON schema derive from it),
registered by entry point. See policies/params.py.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from policies import Observation, Proposal
from policies.params import ParamsFactory, ParamsPolicy
from policies.spec import StrictModel


class Params(StrictModel):
    per_replica: float = Field(gt=0, description="queued requests one replica works off")
    smoothing: float = Field(
        default=0.5, gt=0, le=1, description="weight of the newest queue depth (1: no smoothing)"
    )


@dataclass(frozen=True)
class SmoothedQueuePolicy(ParamsPolicy[Params]):
    params: Params
    name: str = "smoothed-queue"
    pauses_at_zero = False
    required_signals = frozenset({"queue_depth"})

    def initial_state(self) -> float | None:
        return None

    def dump_state(self, state: float | None) -> float | None:
        return state

    def load_state(self, data: Any) -> float | None:
        return None if data is None else float(data)

    def decide(self, obs: Observation, state: float | None) -> tuple[Proposal, float | None]:
        if obs.queue_depth is None:
            return Proposal.hold("queue_depth missing"), state
        weight = self.params.smoothing
        smoothed = (
            obs.queue_depth if state is None else weight * obs.queue_depth + (1 - weight) * state
        )
        want = math.ceil(smoothed / self.params.per_replica)
        return Proposal.scale(want, f"smoothed queue {smoothed:.1f}", smoothed=smoothed), smoothed


class SmoothedQueueFactory(ParamsFactory[Params, SmoothedQueuePolicy]):
    name = "smoothed-queue"
    summary = "example plugin: smoothed queue depth per replica"
    guard_defaults: Mapping[str, Any] = {}
    example_spec: Mapping[str, Any] = {"per_replica": 4}
    params_model, policy_type = Params, SmoothedQueuePolicy


FACTORY = SmoothedQueueFactory()


class Broken:
    """Not a factory at all: the registry must say so in one line."""
