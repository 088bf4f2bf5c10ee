"""A policy's parameters exist once: one frozen model per policy gives its keys, defaults, units,
bounds and docs; parsing, `spec()` and the JSON schema derive from it (replicast issue 16)."""

from __future__ import annotations

import pytest

from policies.params import ParamsPolicy
from policies.registry import builtins, params_model
from policies.spec import StrictModel
from tests.plugins import queue_policy

FACTORIES = {**builtins(), "smoothed-queue": queue_policy.FACTORY}
COMBINATORS = {"max_of", "floor"}  # their spec() lists the members' normalized specs


def test_every_builtin_and_the_example_plugin_has_a_parameter_model() -> None:
    assert [name for name, f in FACTORIES.items() if params_model(f) is None] == []


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_the_registry_gives_each_policy_its_parameter_model(name: str) -> None:
    factory = FACTORIES[name]
    model = params_model(factory)
    assert model is not None and issubclass(model, StrictModel)
    assert model is factory.params_model  # type: ignore[attr-defined]
    schema = model.model_json_schema()  # what `replicast policies --params NAME` shows
    assert set(schema["properties"]) == set(model.model_fields)
    undocumented = [k for k, f in model.model_fields.items() if not f.description]
    assert not undocumented, f"{model.__name__}: no description for {undocumented}"


@pytest.mark.parametrize("name", sorted(set(FACTORIES) - COMBINATORS))
def test_a_policy_holds_its_parameters_and_its_spec_is_their_model(name: str) -> None:
    factory = FACTORIES[name]
    model = params_model(factory)
    assert model is not None
    policy = factory.from_spec(factory.example_spec)
    assert isinstance(policy, ParamsPolicy) and isinstance(policy.params, model)
    # spec() is the model's keys (defaults that depend on other keys filled in): it parses as
    # the model and rebuilds the same policy
    model.model_validate(policy.spec())
    assert factory.from_spec(policy.spec()).spec() == policy.spec()


def test_a_factory_without_a_parameter_model_gives_none() -> None:
    class Bare:
        name, summary, guard_defaults, example_spec = "bare", "", {}, {}

    assert params_model(Bare()) is None  # type: ignore[arg-type]
