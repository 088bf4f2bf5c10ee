"""`replicast import FILE`: an HPA or a KEDA ScaledObject as a replicast target.

In: a YAML file with one or more Kubernetes objects: autoscaling/v2 HorizontalPodAutoscalers
and keda.sh/v1alpha1 ScaledObjects with `prometheus` triggers. Out: on stdout, one target per
object as YAML ready to paste under `targets:` of a replicast/v1 config, with comments (what
to fill in, what was left out). `convert(doc)` is the pure mapping of one object.

    HPA                                     replicast target
    metadata.name / .namespace              name / scale_target.namespace
    scaleTargetRef (Deployment/StatefulSet) scale_target
    minReplicas (1) / maxReplicas           policy.min_replicas / policy.max_replicas
    behavior                                policy.behavior (verbatim)
    metrics[] Pods, AverageValue            policy.metrics[] {type: Pods, target_per_replica}
    metrics[] Object/External, Value        policy.metrics[] {type, target_value}
    metrics[] Object/External, AverageValue policy.metrics[] {type, target_per_replica}
      metric.name                           signal extra.<name>, a TODO query to fill in
    metrics[] Resource/ContainerResource    refused: replicast scales on service signals

    ScaledObject                            replicast target
    scaleTargetRef (kind: Deployment)       scale_target
    minReplicaCount (0) / maxReplicaCount   policy.min_replicas / policy.max_replicas (100)
    pollingInterval (30)                    interval_s
    cooldownPeriod (300)                    policy.cooldown_s
    fallback                                policy.fallback
    advanced.horizontalPodAutoscalerConfig  policy.behavior (verbatim)
    triggers[] type prometheus              policy.triggers[], signal extra.<metricName or i>
      metadata.query                        signals.queries (`or vector(0)` unless
                                            ignoreNullValues: false, as KEDA reads empty as 0)
      metadata.threshold / activationThreshold / metricType  threshold / activation_threshold /
                                            metric_type

Imported targets set `signals.group_by: []`: each query must return ONE series, the total over
the target (what KEDA's query already is). Exit status: 0 converted, 1 an object that cannot be
converted (a Resource metric, a non-prometheus trigger), 2 a file that is not one of these
objects, cannot be read or parsed, or a usage error. Errors are one line each on stderr.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from controller import signals as sig
from policies import SpecError, autoscaler, yaml_input
from policies.spec import parse_quantity
from policies.text import one_line

ACCEPTED = (
    "expected an autoscaling/v2 HorizontalPodAutoscaler or a keda.sh/v1alpha1 ScaledObject "
    "with prometheus triggers"
)
HPA_API_VERSIONS = ("autoscaling/v2", "autoscaling/v2beta2")
KEDA_API_VERSION = "keda.sh/v1alpha1"
SCALE_KINDS = ("Deployment", "StatefulSet")
KEDA_DEFAULTS = {"min": 0, "max": 100, "cooldown_s": 300, "polling_s": 30}
TODO = "TODO replicast import:"
_NOT_SIGNAL_CHAR = re.compile(r"[^A-Za-z0-9_]+")


class UnsupportedError(ValueError):
    """An object that cannot be converted; the message is one line."""


class NotAcceptedError(UnsupportedError):
    """Not an HPA or a ScaledObject at all (exit status 2 rather than 1)."""


# --- helpers ---------------------------------------------------------------------------------


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise UnsupportedError(f"{where} must be a mapping (got {type(value).__name__})")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise UnsupportedError(f"{where} must be a list (got {type(value).__name__})")
    return value


def _quantity(value: Any, where: str) -> float:
    try:
        return parse_quantity(value)
    except ValueError as error:
        raise UnsupportedError(f"{where}: {error}") from None


def _int(value: Any, where: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise UnsupportedError(f"{where} must be a whole number (got {value!r})")
    return value


def _number(value: float) -> int | float:
    return int(value) if value.is_integer() else value


def _signal(name: str, taken: set[str]) -> str:
    """`extra.<name>` with anything but letters, digits and `_` made `_`, unique in `taken`."""
    base = _NOT_SIGNAL_CHAR.sub("_", name).strip("_") or "metric"
    candidate, n = f"extra.{base}", 2
    while candidate in taken:
        candidate, n = f"extra.{base}_{n}", n + 1
    taken.add(candidate)
    return candidate


def _scale_target(ref: Any, namespace: str, default_kind: str | None) -> dict[str, Any]:
    ref = _mapping(ref, "spec.scaleTargetRef")
    kind = ref.get("kind", default_kind)
    if kind not in SCALE_KINDS:
        raise UnsupportedError(
            f"spec.scaleTargetRef.kind must be Deployment or StatefulSet (got {kind!r})"
        )
    name = ref.get("name")
    if not isinstance(name, str) or not name:
        raise UnsupportedError("spec.scaleTargetRef.name is missing")
    return {"kind": kind, "namespace": namespace, "name": name}


def _matchers(selector: Any) -> str:
    labels = _mapping(_mapping(selector, "metric.selector").get("matchLabels"), "matchLabels")
    return ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))


def _check_built(policy: Mapping[str, Any], kind: str) -> None:
    try:
        autoscaler(policy)
    except SpecError as error:
        raise UnsupportedError(f"the {kind} converts to an invalid policy: {error}") from None


# --- HorizontalPodAutoscaler -----------------------------------------------------------------

_HPA_REFUSED = (
    "is not imported: replicast scales on service signals (in_flight, queue_depth), not on "
    "CPU or memory of the pods; use e.g. {policy: hpa, metric: in_flight, target_per_replica: 8}"
)


def _hpa_metric(
    i: int, metric: Mapping[str, Any], taken: set[str]
) -> tuple[dict[str, Any], str, str]:
    """One HPA metric -> (policy metric, its signal, its TODO query)."""
    where = f"spec.metrics[{i}]"
    kind = metric.get("type")
    if kind in ("Resource", "ContainerResource"):
        body = _mapping(metric.get("resource") or metric.get("containerResource"), where)
        raise UnsupportedError(f"{where}: {kind} {body.get('name', '')} {_HPA_REFUSED}")
    if kind not in ("Pods", "Object", "External"):
        raise UnsupportedError(
            f"{where}.type must be Pods, Object or External (Resource is refused) (got {kind!r})"
        )
    body = _mapping(metric.get(kind.lower()), f"{where}.{kind.lower()}")
    source = _mapping(body.get("metric"), f"{where}.{kind.lower()}.metric")
    name = source.get("name")
    if not isinstance(name, str) or not name:
        raise UnsupportedError(f"{where}.{kind.lower()}.metric.name is missing")
    target = _mapping(body.get("target"), f"{where}.{kind.lower()}.target")
    target_type = target.get("type")
    at = f"{where}.{kind.lower()}.target"
    signal = _signal(name, taken)
    out: dict[str, Any] = {"signal": signal, "type": kind}
    if target_type == "AverageValue":
        out["target_per_replica"] = _number(_quantity(target.get("averageValue"), at))
    elif target_type == "Value" and kind != "Pods":
        out["target_value"] = _number(_quantity(target.get("value"), at))
    else:
        allowed = "AverageValue" if kind == "Pods" else "Value or AverageValue"
        raise UnsupportedError(
            f"{at}.type must be {allowed} for a {kind} metric (got {target_type!r})"
        )
    matchers = _matchers(source.get("selector"))
    if kind == "Pods":
        inner = ", ".join(x for x in ('namespace="{namespace}"', 'pod=~"{name}-.*"', matchers) if x)
        example = f"sum({name}{{{inner}}})"
        what = f"the sum of Pods metric {name} over the target's pods"
    else:
        example = f"sum({name}{{{matchers}}})" if matchers else f"sum({name})"
        what = f"the value of {kind} metric {name}"
    query = f"{TODO} PromQL giving ONE series, {what}, e.g. {example}"
    return out, signal, query


def _convert_hpa(
    doc: Mapping[str, Any], meta: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    spec = _mapping(doc.get("spec"), "spec")
    namespace = meta.get("namespace") or "default"
    max_replicas = spec.get("maxReplicas")
    if max_replicas is None:
        raise UnsupportedError("spec.maxReplicas is missing")
    metrics = _list(spec.get("metrics"), "spec.metrics")
    if not metrics:
        raise UnsupportedError(
            f"spec.metrics is empty, which means CPU utilization 80% and {_HPA_REFUSED}"
        )
    taken: set[str] = set()
    rows: list[dict[str, Any]] = []
    queries: dict[str, str] = {}
    notes: list[str] = []
    for i, metric in enumerate(metrics):
        row, signal, query = _hpa_metric(i, _mapping(metric, f"spec.metrics[{i}]"), taken)
        rows.append(row)
        queries[signal] = query
        notes.append(f"TODO: fill in signals.queries.{signal} (now a placeholder)")
    policy: dict[str, Any] = {
        "policy": "hpa",
        "metrics": rows,
        "min_replicas": _int(spec.get("minReplicas"), "spec.minReplicas", 1),
        "max_replicas": _int(max_replicas, "spec.maxReplicas", 0),
    }
    if spec.get("behavior") is not None:
        policy["behavior"] = spec["behavior"]
    _check_built(policy, "HorizontalPodAutoscaler")
    target = {
        "name": meta["name"],
        "scale_target": _scale_target(spec.get("scaleTargetRef"), namespace, None),
        "signals": {"group_by": [], "queries": queries},
        "policy": policy,
    }
    return target, notes


# --- KEDA ScaledObject -----------------------------------------------------------------------

_KEDA_IGNORED = ("serverAddress", "namespace", "authModes", "customHeaders", "queryParameters")


def _keda_trigger(
    i: int, trigger: Mapping[str, Any], taken: set[str], notes: list[str]
) -> tuple[dict[str, Any], str, str]:
    where = f"spec.triggers[{i}]"
    kind = trigger.get("type")
    if kind != "prometheus":
        raise UnsupportedError(
            f"{where}: trigger type {kind!r} is not imported; only prometheus triggers are"
        )
    meta = _mapping(trigger.get("metadata"), f"{where}.metadata")
    query = meta.get("query")
    if not isinstance(query, str) or not query.strip():
        raise UnsupportedError(f"{where}.metadata.query is missing")
    holes = sorted(sig.placeholders(query))
    if holes:
        shown = ", ".join("{" + h + "}" for h in holes)
        raise UnsupportedError(
            f"{where}.metadata.query contains {shown}, which replicast reads as a placeholder"
        )
    name = meta.get("metricName") or trigger.get("name") or f"trigger_{i}"
    signal = _signal(str(name), taken)
    metric_type = trigger.get("metricType", "AverageValue")
    if metric_type not in ("AverageValue", "Value"):
        raise UnsupportedError(
            f"{where}.metricType must be AverageValue or Value (got {metric_type!r})"
        )
    out: dict[str, Any] = {
        "signal": signal,
        "threshold": _number(_quantity(meta.get("threshold"), f"{where}.metadata.threshold")),
    }
    if meta.get("activationThreshold") is not None:
        at = f"{where}.metadata.activationThreshold"
        out["activation_threshold"] = _number(_quantity(meta["activationThreshold"], at))
    out["metric_type"] = metric_type
    query = query.strip()
    if str(meta.get("ignoreNullValues", "true")).lower() != "false":
        query = f"({query}) or vector(0)"
        notes.append(
            f"{signal}: an empty result reads 0 (KEDA ignoreNullValues), hence or vector(0)"
        )
    ignored = [k for k in _KEDA_IGNORED if k in meta] + (
        ["authenticationRef"] if "authenticationRef" in trigger else []
    )
    if ignored:
        notes.append(
            f"{signal}: not imported: {', '.join(ignored)} (replicast reads the config's "
            "prometheus url and auth)"
        )
    return out, signal, query


def _convert_keda(
    doc: Mapping[str, Any], meta: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    spec = _mapping(doc.get("spec"), "spec")
    namespace = meta.get("namespace") or "default"
    if spec.get("idleReplicaCount") is not None:
        raise UnsupportedError("spec.idleReplicaCount is not supported; use minReplicaCount: 0")
    advanced = _mapping(spec.get("advanced"), "spec.advanced")
    if advanced.get("scalingModifiers"):
        raise UnsupportedError("spec.advanced.scalingModifiers (a formula) is not supported")
    triggers = _list(spec.get("triggers"), "spec.triggers")
    if not triggers:
        raise UnsupportedError("spec.triggers is empty")
    taken: set[str] = set()
    rows: list[dict[str, Any]] = []
    queries: dict[str, str] = {}
    notes: list[str] = []
    for i, trigger in enumerate(triggers):
        row, signal, query = _keda_trigger(
            i, _mapping(trigger, f"spec.triggers[{i}]"), taken, notes
        )
        rows.append(row)
        queries[signal] = query
    policy: dict[str, Any] = {
        "policy": "keda",
        "triggers": rows,
        "min_replicas": _int(spec.get("minReplicaCount"), "spec.minReplicaCount", 0),
        "max_replicas": _int(spec.get("maxReplicaCount"), "spec.maxReplicaCount", 100),
        "cooldown_s": _int(spec.get("cooldownPeriod"), "spec.cooldownPeriod", 300),
    }
    fallback = _mapping(spec.get("fallback"), "spec.fallback")
    if fallback:
        if fallback.get("behavior", "static") != "static":
            raise UnsupportedError(
                f"spec.fallback.behavior {fallback['behavior']!r} is not supported; only static"
            )
        policy["fallback"] = {
            "failure_threshold": _int(
                fallback.get("failureThreshold"), "spec.fallback.failureThreshold", 3
            ),
            "replicas": _int(fallback.get("replicas"), "spec.fallback.replicas", 0),
        }
    hpa_config = _mapping(
        advanced.get("horizontalPodAutoscalerConfig"), "spec.advanced.horizontalPodAutoscalerConfig"
    )
    if hpa_config.get("behavior") is not None:
        policy["behavior"] = hpa_config["behavior"]
    _check_built(policy, "ScaledObject")
    target = {
        "name": meta["name"],
        "scale_target": _scale_target(spec.get("scaleTargetRef"), namespace, "Deployment"),
        "interval_s": _int(spec.get("pollingInterval"), "spec.pollingInterval", 30),
        "signals": {"group_by": [], "queries": queries},
        "policy": policy,
    }
    return target, notes


# --- the mapping -----------------------------------------------------------------------------


def describe(doc: Any) -> str:
    """`HorizontalPodAutoscaler llm/llama`, for messages."""
    if not isinstance(doc, Mapping):
        return f"a {type(doc).__name__}"
    meta: Mapping[str, Any] = doc["metadata"] if isinstance(doc.get("metadata"), Mapping) else {}
    return f"{doc.get('kind')} {meta.get('namespace') or 'default'}/{meta.get('name')}"


def convert_with_notes(doc: Any) -> tuple[dict[str, Any], list[str]]:
    """One object -> (the target, comment lines for it); raises UnsupportedError."""
    if not isinstance(doc, Mapping):
        raise NotAcceptedError(f"{ACCEPTED} (got {describe(doc)})")
    api, kind = doc.get("apiVersion"), doc.get("kind")
    is_hpa = kind == "HorizontalPodAutoscaler" and api in HPA_API_VERSIONS
    is_keda = kind == "ScaledObject" and api == KEDA_API_VERSION
    if not (is_hpa or is_keda):
        if kind == "HorizontalPodAutoscaler" and api == "autoscaling/v1":
            raise UnsupportedError(f"autoscaling/v1 scales on CPU utilization and {_HPA_REFUSED}")
        raise NotAcceptedError(f"{ACCEPTED} (got apiVersion {api!r}, kind {kind!r})")
    meta = _mapping(doc.get("metadata"), "metadata")
    if not isinstance(meta.get("name"), str) or not meta["name"]:
        raise UnsupportedError("metadata.name is missing")
    return _convert_hpa(doc, meta) if is_hpa else _convert_keda(doc, meta)


def convert(doc: Any) -> dict[str, Any]:
    """An HPA or a ScaledObject (a parsed YAML mapping) -> a replicast target mapping."""
    return convert_with_notes(doc)[0]


def render(target: Mapping[str, Any], notes: Sequence[str], header: str) -> str:
    """The target as a YAML list item (for under `targets:`), comments first."""
    lines = [f"# {header}", *(f"# {n}" for n in notes)]
    body = yaml.safe_dump([dict(target)], sort_keys=False, width=10_000, allow_unicode=True)
    return "\n".join(lines) + "\n" + body


# --- the command -----------------------------------------------------------------------------


def _load(path: Path) -> list[Any]:
    """The file's documents; raises NotAcceptedError with a one-line reason."""
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise NotAcceptedError(f"cannot read the file: {reason}") from None
    try:
        docs = yaml_input.load_all(text)
    except yaml_input.YamlInputError as error:
        where = f"line {error.line} column {error.column}: " if error.line else ""
        raise NotAcceptedError(f"{where}{error.message}; {ACCEPTED}") from None
    if not docs:
        raise NotAcceptedError(f"no objects in the file; {ACCEPTED}")
    return docs


def cmd_import(argv: Sequence[str]) -> int:
    """turn an HPA or a KEDA ScaledObject (prometheus triggers) into a replicast target"""
    parser = argparse.ArgumentParser(
        prog="replicast import",
        description="Print a replicast target (YAML for under targets:) for each autoscaling/v2 "
        "HorizontalPodAutoscaler or KEDA ScaledObject with prometheus triggers in FILE.",
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="a YAML file, or - for stdin")
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 2
    try:
        docs = _load(args.file)
    except NotAcceptedError as error:
        print(f"replicast import: {args.file}: {error}", file=sys.stderr)
        return 2
    out: list[str] = []
    status = 0
    for n, doc in enumerate(docs, start=1):
        where = f"{args.file}: document {n} ({describe(doc)})" if len(docs) > 1 else args.file
        try:
            target, notes = convert_with_notes(doc)
        except UnsupportedError as error:
            print(f"replicast import: {where}: {one_line(str(error))}", file=sys.stderr)
            status = max(status, 2 if isinstance(error, NotAcceptedError) else 1)
            continue
        out.append(render(target, notes, f"imported from {args.file}: {describe(doc)}"))
    if status:
        return status
    sys.stdout.write("\n".join(out))
    return 0
