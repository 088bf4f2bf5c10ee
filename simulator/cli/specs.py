"""Policies named on the command line: a built-in name becomes a spec sized for the model.

In: `--policy` values (a built-in name, inline YAML or a spec file), the replica model and the
SLO, or a benchmark scenario. Out: the autoscaler specs to run; an unknown name is a
`UsageError` naming the known ones (and the closest).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from policies.registry import available
from simulator import quality, scenarios
from simulator.cli.args import UsageError
from simulator.explain import load_spec
from simulator.model import ReplicaModel
from simulator.result import Slo, slo_targets

SCENARIO_TARGET = 6.0  # hpa/knative/ray by name in a scenario: 6 requests per replica

DEFAULT_SPEC_NAMES = ("hpa", "keda", "knative", "ray", "slo", "predictive", "planner")


def is_policy_name(text: str) -> bool:
    """A bare word (`hpa`, `HPA`, `hpaa`) rather than inline YAML or a spec file."""
    return bool(re.fullmatch(r"[A-Za-z][\w-]*", text)) and not Path(text).exists()


def check_policy_name(name: str) -> None:
    """A UsageError naming the known names unless `name` has a default spec here."""
    if name in DEFAULT_SPEC_NAMES:
        return
    known = ", ".join(DEFAULT_SPEC_NAMES)
    close = difflib.get_close_matches(name.lower(), DEFAULT_SPEC_NAMES, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else ""
    if name in {listing.name for listing in available()}:
        raise UsageError(
            f"--policy {name}: no default spec (known by name: {known}); give a spec, "
            f"e.g. '{{policy: {name}, ...}}'"
        )
    raise UsageError(
        f"--policy {name}: unknown policy {name}; known: {known}{hint} "
        f"(or a spec: inline YAML or a file)"
    )


def default_spec(name: str, model: ReplicaModel, slo: Slo, max_replicas: int) -> dict[str, Any]:
    """A built-in policy sized for the model: targets at 75 % of the slots, the SLO as given
    (a policy takes one target: the first of a combined SLO, the wait when there is one)."""
    slo = slo_targets(slo)[0]
    slots = model.slots_per_replica
    per = max(1.0, 0.75 * slots)
    target_key = "wait_target_s" if slo.on == "wait" else "latency_target_s"
    sizing = {target_key: slo.threshold_s, "percentile": slo.share, "slots_per_replica": slots}
    specs: dict[str, dict[str, Any]] = {
        "hpa": {"metric": "in_flight", "target_per_replica": per},
        "keda": {"metric": "in_flight", "threshold": per, "min_replicas": 1},
        "knative": {"target_per_replica": slots, "min_replicas": 1},
        "ray": {"target_per_replica": per},
        "slo": sizing,
        "predictive": {**sizing, "reactive": True},
        "planner": sizing,
    }
    check_policy_name(name)
    return {"policy": name, **specs[name], "max_replicas": max_replicas}


def _specs(
    given: Sequence[str], model: ReplicaModel, slo: Slo, max_replicas: int
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for text in given:
        if is_policy_name(text):
            out.append(default_spec(text, model, slo, max_replicas))
        else:
            out.extend(load_spec(text))
    return out


def scenario_specs(given: Sequence[str], sc: scenarios.Scenario) -> list[dict[str, Any]]:
    """Names sized for the scenario (`planner` its spec; hpa/knative/ray at 6 per replica of 8
    slots, scaled to its slots, on requests in service + queued); anything else as `_specs`
    reads it, within its bounds."""
    out: list[dict[str, Any]] = []
    for text in given:
        if text == "planner":
            out.append(sc.planner_spec())
        elif text in quality.BASELINES:
            out.append(quality.baseline_spec(text, SCENARIO_TARGET * sc.slots / 8, sc))
        elif is_policy_name(text):
            bounds = sc.policy_defaults()
            spec = default_spec(text, sc.model, sc.slo, bounds["max_replicas"])
            out.append({**spec, **bounds})
        else:
            out.extend(load_spec(text))
    return out
