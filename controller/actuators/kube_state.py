"""A Kubernetes target's state, from what the API returned: pure functions, no I/O.

In: the workload's JSON, the namespace's HorizontalPodAutoscalers, KEDA ScaledObjects and
Pending pods (plain dicts), and `now_s`. Out: a `WorkloadState`: replicas, ready, starting, the
pause annotations (`pause_of`), another autoscaler on the same target (`other_autoscalers`),
Pending pods its selector matches (`selector_matches`, Kubernetes' semantics) stuck longer
than `pending_timeout_s` (`capacity_condition`: CapacityExhausted).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from controller.actuators.base import (
    ConditionType,
    WorkloadCondition,
    WorkloadState,
)
from controller.actuators.kube_api import WorkloadRef

logger = logging.getLogger(__name__)


PAUSED_ANNOTATION = "replicast.io/paused"
PAUSED_REPLICAS_ANNOTATION = "replicast.io/paused-replicas"
RESCALE_REASON = "SuccessfulRescale"  # HPA's Event reason, so dashboards and alerts carry over

# --- Reading a target: pure functions of what the API returned. ---


def pause_of(annotations: Mapping[str, str]) -> tuple[WorkloadCondition | None, int | None]:
    """The pause a person set on the target: (condition, held replicas) or (None, None)."""
    if annotations.get(PAUSED_ANNOTATION, "").strip().lower() == "true":
        message = f'annotation {PAUSED_ANNOTATION}: "true": never scaled; remove it to resume'
        return WorkloadCondition(ConditionType.PAUSED, message), None
    held = annotations.get(PAUSED_REPLICAS_ANNOTATION)
    if held is None:
        return None, None
    try:
        replicas = int(held)
    except ValueError:
        replicas = -1
    if replicas < 0:
        message = (
            f"annotation {PAUSED_REPLICAS_ANNOTATION}: must be a whole number >= 0 (got "
            f"{held!r}); not scaled until it is fixed or removed"
        )
        return WorkloadCondition(ConditionType.PAUSED, message), None
    message = f'annotation {PAUSED_REPLICAS_ANNOTATION}: "{replicas}": held at {replicas}'
    return WorkloadCondition(ConditionType.PAUSED, f"{message}; remove it to resume"), replicas


@dataclass(frozen=True, slots=True)
class StuckPod:
    name: str
    pending_s: float
    message: str  # the scheduler's, e.g. "0/3 nodes are available: 3 Insufficient nvidia.com/gpu"


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether `labels` match a LabelSelector (a workload's `spec.selector`), as Kubernetes says.

    metav1.LabelSelectorAsSelector: no selector matches nothing, an empty one everything; else
    every matchLabels pair and every matchExpression must hold. In: the label is set to one of
    `values`; NotIn: it is not set, or set to none of them; Exists / DoesNotExist: it is set /
    not set. An unknown operator, In/NotIn without values or Exists/DoesNotExist with values
    raise ValueError, as Kubernetes refuses them (the API server never stores such a selector).
    Cases: tests/controller/test_kubernetes_actuator.py::test_selector_matches.
    """
    if selector is None:
        return False
    requirements = [
        (str(key), "In", [str(value)]) for key, value in (selector.get("matchLabels") or {}).items()
    ]
    requirements += [_requirement(e) for e in selector.get("matchExpressions") or ()]
    return all(_holds(requirement, labels) for requirement in requirements)


def _requirement(expression: Mapping[str, Any]) -> tuple[str, str, list[str]]:
    key, operator = str(expression.get("key", "")), expression.get("operator")
    values = [str(v) for v in expression.get("values") or ()]
    if operator in ("In", "NotIn") and not values:
        raise ValueError(f"matchExpressions {key} {operator}: values must not be empty")
    if operator in ("Exists", "DoesNotExist") and values:
        raise ValueError(f"matchExpressions {key} {operator}: values must be empty")
    if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
        raise ValueError(f"matchExpressions {key}: {operator!r} is not a label selector operator")
    return key, operator, values


def _holds(requirement: tuple[str, str, list[str]], labels: Mapping[str, str]) -> bool:
    key, operator, values = requirement
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    return (key in labels) == (operator == "Exists")


def _timestamp_s(text: Any) -> float | None:
    """Unix seconds of a Kubernetes Time ("2024-01-02T03:04:05Z"), or None."""
    try:
        return datetime.fromisoformat(str(text)).timestamp() if text else None
    except ValueError:
        return None


def stuck_pods(
    pods: Iterable[Mapping[str, Any]], *, now_s: float, pending_timeout_s: float
) -> list[StuckPod]:
    """Pods (dicts, as listed) Pending and Unschedulable for longer than the bound, oldest first."""
    stuck = []
    for pod in pods:
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        if meta.get("deletionTimestamp") is not None or status.get("phase") != "Pending":
            continue
        unschedulable = next(
            (
                c
                for c in status.get("conditions") or ()
                if (c.get("type"), c.get("status"), c.get("reason"))
                == ("PodScheduled", "False", "Unschedulable")
            ),
            None,
        )
        created_s = _timestamp_s(meta.get("creationTimestamp"))
        if unschedulable is None or created_s is None:
            continue
        pending_s = now_s - created_s
        if pending_s > pending_timeout_s:
            message = " ".join(str(unschedulable.get("message") or "").split())
            stuck.append(StuckPod(str(meta.get("name", "")), pending_s, message))
    return sorted(stuck, key=lambda p: -p.pending_s)


def capacity_condition(stuck: list[StuckPod], pending_timeout_s: float) -> WorkloadCondition:
    oldest = stuck[0]
    message = (
        f"{len(stuck)} pod(s) Pending/Unschedulable for more than {pending_timeout_s:g} s "
        f"(oldest {oldest.name}, {oldest.pending_s:.0f} s: {oldest.message or 'no message'}); "
        "scale-up paused until they schedule"
    )
    return WorkloadCondition(ConditionType.CAPACITY_EXHAUSTED, message)


def other_autoscalers(
    target: WorkloadRef,
    hpas: Iterable[Mapping[str, Any]],
    scaled_objects: Iterable[Mapping[str, Any]],
) -> list[str]:
    """Names of the HPAs and KEDA ScaledObjects (dicts, as listed) that scale `target`."""
    names = []
    for hpa in hpas:
        ref = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
        if ref.get("kind") == target.kind and ref.get("name") == target.name:
            names.append(f"HorizontalPodAutoscaler {target.namespace}/{hpa['metadata']['name']}")
    for scaled in scaled_objects:
        ref = (scaled.get("spec") or {}).get("scaleTargetRef") or {}
        if ref.get("name") == target.name and ref.get("kind", "Deployment") == target.kind:
            names.append(f"ScaledObject {target.namespace}/{scaled['metadata']['name']}")
    return names


def workload_state(
    target: WorkloadRef,
    *,
    replicas: int,
    ready_replicas: int,
    annotations: Mapping[str, str],
    stuck: list[StuckPod],
    other_autoscalers: list[str],
    pending_timeout_s: float,
) -> WorkloadState:
    """What one read means: counts for the Observation, conditions for the loop."""
    conditions: list[WorkloadCondition] = []
    if other_autoscalers:
        others = ", ".join(other_autoscalers)
        message = f"also scaled by {others}; delete it, or drop this target from replicast"
        conditions.append(WorkloadCondition(ConditionType.CONFLICT, message))
    paused, held = pause_of(annotations)
    if paused is not None:
        conditions.append(paused)
    if stuck:
        conditions.append(capacity_condition(stuck, pending_timeout_s))
    return WorkloadState(
        target=str(target),
        replicas=replicas,
        ready_replicas=ready_replicas,
        # Asked for and not ready, except pods no node can take: those are not coming.
        starting_replicas=max(0, replicas - ready_replicas - len(stuck)),
        conditions=tuple(conditions),
        unschedulable_replicas=len(stuck),
        held_replicas=held,
    )
