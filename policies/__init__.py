"""replicast policies: the pure decision core both shells (controller, simulator) call.

Public API (shells, notebooks and external checks use exactly this):
`Observation`, `autoscaler(spec, state=None) -> Autoscaler`, `Autoscaler.tick(obs) ->
DecisionRecord` (proposes) and `Autoscaler.commit(outcome, replicas)` (records what the shell
did: an `Outcome`), the pure `tick(obs, state, policy, guards)` and `commit(record, state,
guards, outcome, replicas)` underneath, `SpecError`, and the plugin contract `Policy` /
`PolicyFactory` / `Proposal`. This package reads no clock, does no I/O and
holds no global random state.
"""

from policies.autoscaler import Autoscaler, autoscaler
from policies.guards import Guards, GuardStep
from policies.observation import SIGNALS, Observation, ObservationError
from policies.policy import Policy, PolicyFactory, Proposal, StatelessPolicy
from policies.protocol import DecisionRecord, EngineState, Outcome, commit, tick
from policies.registry import available, resolve
from policies.spec import SpecError

__all__ = [
    "SIGNALS",
    "Autoscaler",
    "DecisionRecord",
    "EngineState",
    "GuardStep",
    "Guards",
    "Observation",
    "ObservationError",
    "Outcome",
    "Policy",
    "PolicyFactory",
    "Proposal",
    "SpecError",
    "StatelessPolicy",
    "autoscaler",
    "available",
    "commit",
    "resolve",
    "tick",
]
