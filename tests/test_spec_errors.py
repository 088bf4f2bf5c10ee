"""Bad specs fail at `autoscaler()` with one SpecError naming each key as written."""

from __future__ import annotations

from typing import Any

import pytest

from policies import SpecError, autoscaler

HPA = {"policy": "hpa", "metric": "in_flight", "target_per_replica": 10, "max_replicas": 20}


def error_of(spec: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as caught:
        autoscaler(spec)
    text = str(caught.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"target_per_replica": -1}, "hpa spec: target_per_replica: must be > 0 (got -1)"),
        ({"target_per_replica": "ten"}, "target_per_replica: must be a number (got 'ten')"),
        ({"max_replicas": 0}, "max_replicas: must be >= 1 (got 0)"),
        ({"min_replicas": 30}, "min_replicas (30) must be <= max_replicas (20)"),
        ({"target_per_replicas": 3}, "target_per_replicas: unknown key; allowed keys: metric,"),
        ({"metric": "inflight"}, "metric: must be an Observation signal"),
        (
            {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 4000}}},
            "behavior.scaleDown.stabilizationWindowSeconds: must be <= 3600 (got 4000)",
        ),
        (
            {
                "behavior": {
                    "scaleUp": {"policies": [{"type": "Pod", "value": 1, "periodSeconds": 15}]}
                }
            },
            "behavior.scaleUp.policies[0].type: must be one of 'Pods' or 'Percent' (got 'Pod')",
        ),
        (
            {"behavior": {"scale_up": {}}},
            "behavior.scale_up: unknown key; allowed keys: scaleDown, scaleUp",
        ),
        ({"flap_budget": {"max_changes": 2}}, "flap_budget.window_s: required key is missing"),
    ],
    ids=lambda x: str(x)[:40],
)
def test_each_bad_key_is_named_with_its_value_and_what_is_allowed(
    change: dict[str, Any], expected: str
) -> None:
    assert expected in error_of({**HPA, **change})


def test_every_problem_is_reported_at_once() -> None:
    text = error_of({**HPA, "target_per_replica": 0, "max_replicas": -2, "bogus": 1})
    assert "target_per_replica: must be > 0" in text
    assert "max_replicas: must be >= 1" in text
    assert "bogus: unknown key" in text


def test_missing_policy_and_missing_max_are_explained() -> None:
    assert "policy: required key is missing" in error_of({"max_replicas": 3})
    assert "max_replicas: required key is missing" in error_of(
        {"policy": "hpa", "metric": "in_flight", "target_per_replica": 1}
    )


def test_keda_errors_name_keda_keys() -> None:
    text = error_of(
        {
            "policy": "keda",
            "metric": "queue_depth",
            "threshold": 5,
            "max_replicas": 5,
            "cooldown": 30,
        }
    )
    assert text.startswith(
        "keda spec: cooldown: unknown key; allowed keys: activation_threshold, cooldown_s"
    )


def test_behavior_is_accepted_verbatim_with_kubernetes_defaulting() -> None:
    a = autoscaler(
        {
            **HPA,
            "behavior": {
                "scaleDown": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}
            },
        }
    )
    behavior = a.spec["behavior"]
    assert behavior["scaleDown"] == {  # omitted window: 300 s; omitted selectPolicy: Max
        "stabilizationWindowSeconds": 300,
        "selectPolicy": "Max",
        "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
    }
    assert behavior["scaleUp"]["policies"] == [  # omitted scaleUp: the default rules
        {"type": "Pods", "value": 4, "periodSeconds": 15},
        {"type": "Percent", "value": 100, "periodSeconds": 15},
    ]


def test_the_hpa_shorthand_without_a_target_is_one_spec_error_line() -> None:
    """It escaped as a bare pydantic ValidationError (a traceback in `replicast simulate`)."""
    for spec in (
        {"policy": "hpa", "metric": "in_flight", "max_replicas": 4},
        {"policy": "hpa", "metric": "in_flight", "target_per_replica": 1, "target_value": 2,
         "max_replicas": 4},
    ):  # fmt: skip
        with pytest.raises(SpecError) as raised:
            autoscaler(spec)
        assert str(raised.value) == (
            "hpa spec: set exactly one of target_per_replica (AverageValue) or target_value (Value)"
        )
