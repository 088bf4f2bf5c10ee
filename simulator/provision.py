"""What the simulated platform does with a decision: the simulator's "act" between tick and commit.

In: the tick's DecisionRecord and the simulated time (seconds from the start). Out: a
`Provisioned` (outcome, the replica count the target has now, why), which the engine passes to
`Autoscaler.commit`, exactly as the controller passes what its actuator did. The controller's
actuators can cap (max change per tick), refuse (another autoscaler, a pause) or fail (an API
error); so can the simulated platform: `Platform` caps a scale-up at a quota (the GPUs a
subscription may run), refuses one when the quota is used up, and fails every scale call
inside an outage window (the cloud API is down). The default platform has no quota and no
outage: every decision is applied.

The next stage is simulator/engine.py, which sets the kernel's replica count to
`Provisioned.replicas`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from policies import Autoscaler, DecisionRecord, Observation
from policies.protocol import Outcome


@dataclass(frozen=True, slots=True)
class Provisioned:
    outcome: Outcome
    replicas: int  # the count the target has now (asked for)
    why: str = ""


class Provisioner(Protocol):
    """The simulator's actuator: anything with `provision`."""

    def provision(self, record: DecisionRecord, t_s: float) -> Provisioned: ...


@dataclass(frozen=True, slots=True)
class Platform:
    """A quota of replicas and windows in which the scale API fails.

    `quota_replicas`: at most this many replicas exist (None: no quota). `outages_s`:
    (start, end) windows of simulated seconds in which every scale call fails.
    """

    quota_replicas: int | None = None
    outages_s: Sequence[tuple[float, float]] = ()

    def __post_init__(self) -> None:
        if self.quota_replicas is not None and self.quota_replicas < 0:
            raise ValueError(f"quota_replicas: must be >= 0 (got {self.quota_replicas})")
        for start, end in self.outages_s:
            if not start <= end:
                raise ValueError(f"outages_s: ({start}, {end}) must start before it ends")

    def provision(self, record: DecisionRecord, t_s: float) -> Provisioned:
        current, desired = record.current_replicas, record.replicas
        if desired == current:
            return Provisioned(Outcome.APPLIED, current)
        if any(start <= t_s < end for start, end in self.outages_s):
            return Provisioned(Outcome.FAILED, current, "scale API unavailable (outage window)")
        quota = self.quota_replicas
        if quota is not None and desired > current and desired > quota:
            if current >= quota:
                return Provisioned(Outcome.REFUSED, current, f"quota of {quota} replicas in use")
            return Provisioned(Outcome.CAPPED, quota, f"capped at the quota of {quota} replicas")
        return Provisioned(Outcome.APPLIED, desired)


def control_step(
    scaler: Autoscaler, obs: Observation, provisioner: Provisioner, t_s: float
) -> DecisionRecord:
    """One control interval of the simulator: tick -> act -> commit, the controller's three
    steps (controller/loop.py does the same with a real actuator). Returns the committed
    record: `applied_replicas` is the count the platform now runs."""
    record = scaler.tick(obs)
    got = provisioner.provision(record, t_s)
    return scaler.commit(got.outcome, got.replicas, got.why)
