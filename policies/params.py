"""A policy's parameters exist once: one frozen, validated model per policy.

In: a spec's policy keys (no guard keys). Out: the policy, holding `params: <Name>Params` (a
`policies.spec.StrictModel`: frozen, unknown keys and NaN/inf refused). That model is the single
source of the policy's keys, defaults, units and docs (each `Field` description names its unit)
and bounds; from it derive
- parsing: `ParamsFactory.from_spec` is `policies.spec.parse(params_model, spec, "<name> spec")`,
  so every error is one line naming the key;
- `spec()`: `ParamsPolicy.spec` is `params.model_dump(exclude_none=True)`; a policy whose
  factory fills in defaults that depend on other keys (hpa's metric shorthand, knative's targets
  by metric) holds the filled-in model, so `spec()` rebuilds it;
- the JSON schema: `params_model.model_json_schema()`, also through
  `policies.registry.params_model(factory)` for `replicast policies --params NAME` and a sweep's
  parameter check.

A third party copies the same shape (tests/plugins/queue_policy.py):

    class Params(StrictModel):
        per_replica: float = Field(gt=0, description="queued requests per replica")

    @dataclass(frozen=True)
    class QueuePolicy(ParamsPolicy[Params]):
        params: Params
        ...  # name, required_signals, decide, state

    class QueueFactory(ParamsFactory[Params, QueuePolicy]):
        name, summary, guard_defaults, example_spec = "queue", "...", {}, {"per_replica": 4}
        params_model, policy_type = Params, QueuePolicy
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from policies.spec import StrictModel, parse

P = TypeVar("P", bound=StrictModel)
T = TypeVar("T")


class ParamsPolicy(Generic[P]):
    """Base of a policy that holds its parameters as one model; `spec()` is that model."""

    params: P

    def spec(self) -> dict[str, Any]:
        return self.params.model_dump(exclude_none=True)


class ParamsFactory(Generic[P, T]):
    """Base of a factory whose policy is built from one parameter model (`params_model`)."""

    name: str
    summary: str
    guard_defaults: Mapping[str, Any]
    example_spec: Mapping[str, Any]
    params_model: type[P]
    policy_type: Callable[[P], T]  # the policy class, built as policy_type(params)

    def build(self, params: P) -> T:
        """The policy for validated parameters; a factory whose checks span keys overrides
        this and raises SpecError."""
        return self.policy_type(params)

    def from_spec(self, spec: Mapping[str, Any]) -> T:
        return self.build(parse(self.params_model, spec, f"{self.name} spec"))
