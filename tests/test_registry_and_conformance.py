"""Policies come from built-ins, entry points and "module:attr"; all pass check_policy."""

from __future__ import annotations

import time
from typing import ClassVar

import pytest

from policies import Proposal, SpecError, autoscaler
from policies.registry import available, builtins, resolve
from policies.testing import check_policy
from tests.plugins.queue_policy import FACTORY


@pytest.mark.parametrize("name", sorted(builtins()))
def test_every_builtin_passes_the_conformance_suite(name: str) -> None:
    check_policy(builtins()[name])


def test_the_example_plugin_passes_the_conformance_suite() -> None:
    check_policy(FACTORY)


def test_check_policy_catches_a_policy_that_reads_the_wall_clock() -> None:
    class Clocky:
        name = "clocky"
        summary = "reads time.time()"
        guard_defaults: ClassVar[dict[str, object]] = {}
        example_spec: ClassVar[dict[str, object]] = {}

        def from_spec(self, spec: object) -> object:
            outer = self

            class P:
                name = outer.name
                pauses_at_zero = False
                required_signals = frozenset({"in_flight"})

                def spec(self) -> dict[str, object]:
                    return {}

                def initial_state(self) -> None:
                    return None

                def dump_state(self, s: object) -> None:
                    return None

                def load_state(self, d: object) -> None:
                    return None

                def decide(self, obs: object, state: object) -> tuple[Proposal, None]:
                    return Proposal.scale(int(time.time()) % 3, "clock"), None

            return P()

    with pytest.raises(AssertionError, match="wall clock"):
        check_policy(Clocky())  # type: ignore[arg-type]


def test_module_attr_specs_load_a_policy_for_notebooks() -> None:
    a = autoscaler(
        {"policy": "tests.plugins.queue_policy:FACTORY", "per_replica": 4, "max_replicas": 9}
    )
    assert a.name == "smoothed-queue"


def test_entry_point_policies_are_listed_and_resolved(plugin_installed: None) -> None:
    listing = {x.name: x for x in available()}
    assert listing["hpa"].origin == "built-in"
    assert listing["smoothed-queue"].origin == "entry point (replicast-example-plugin)"
    assert listing["broken-plugin"].origin == "error"
    assert "not a policy factory" in listing["broken-plugin"].summary
    assert listing["missing-plugin"].origin == "error"
    a = autoscaler({"policy": "smoothed-queue", "per_replica": 4, "max_replicas": 9})
    assert a.tick.__self__ is a


def test_blocked_plugins_do_not_load(plugin_installed: None) -> None:
    names = {x.name for x in available(blocked={"smoothed-queue"})}
    assert "smoothed-queue" not in names
    with pytest.raises(SpecError, match="unknown policy 'smoothed-queue'"):
        resolve("smoothed-queue", blocked={"smoothed-queue"})


def test_unknown_policy_names_what_is_available() -> None:
    with pytest.raises(SpecError, match=r"unknown policy 'hap'; available: hpa, keda, "):
        autoscaler({"policy": "hap", "max_replicas": 3})


def test_a_module_attr_that_is_not_a_factory_is_one_line() -> None:
    with pytest.raises(SpecError, match="is not a policy factory"):
        autoscaler({"policy": "tests.plugins.queue_policy:Broken", "max_replicas": 3})
    with pytest.raises(SpecError, match=r"cannot load 'nope\.nothing:X'"):
        autoscaler({"policy": "nope.nothing:X", "max_replicas": 3})
