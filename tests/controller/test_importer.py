"""`replicast import`: HPA and KEDA ScaledObject -> a target that passes check_config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.config import check_config
from controller.importer import TODO, UnsupportedError, cmd_import, convert
from policies import autoscaler

Capture = pytest.CaptureFixture[str]

HPA = """\
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: llama, namespace: llm}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: StatefulSet, name: llama-sts}
  minReplicas: 2
  maxReplicas: 10
  metrics:
    - type: Pods
      pods:
        metric: {name: "vllm:num_requests_running"}
        target: {type: AverageValue, averageValue: "8"}
    - type: External
      external:
        metric: {name: queue_messages_ready, selector: {matchLabels: {queue: jobs}}}
        target: {type: AverageValue, averageValue: 500m}
    - type: External
      external:
        metric: {name: queue_messages_ready, selector: {matchLabels: {queue: other}}}
        target: {type: Value, value: 1k}
    - type: Object
      object:
        describedObject: {apiVersion: networking.k8s.io/v1, kind: Ingress, name: main}
        metric: {name: requests-per-second}
        target: {type: Value, value: "2"}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 120
      policies: [{type: Pods, value: 1, periodSeconds: 60}]
    scaleUp:
      selectPolicy: Max
      tolerance: 50m
      policies: [{type: Percent, value: 100, periodSeconds: 15}]
"""

KEDA = """\
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: mistral, namespace: llm}
spec:
  scaleTargetRef: {name: mistral}
  pollingInterval: 15
  cooldownPeriod: 120
  maxReplicaCount: 8
  fallback: {failureThreshold: 3, replicas: 4}
  advanced:
    horizontalPodAutoscalerConfig:
      behavior:
        scaleDown:
          stabilizationWindowSeconds: 60
          policies: [{type: Percent, value: 50, periodSeconds: 30}]
  triggers:
    - type: prometheus
      metadata:
        serverAddress: http://prometheus.monitoring:9090
        metricName: waiting
        query: sum(vllm:num_requests_waiting{namespace="llm", model_name="mistral"})
        threshold: "5"
        activationThreshold: "1.5"
    - type: prometheus
      metricType: Value
      metadata:
        query: sum(rate(vllm:request_success_total{namespace="llm"}[1m]))
        threshold: "20"
        ignoreNullValues: "false"
"""

CPU = """\
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 5
  metrics:
    - type: Resource
      resource: {name: cpu, target: {type: Utilization, averageUtilization: 60}}
"""

KAFKA = """\
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: consumer}
spec:
  scaleTargetRef: {name: consumer}
  triggers:
    - type: kafka
      metadata: {topic: jobs, lagThreshold: "10"}
"""

SERVICE = """\
apiVersion: v1
kind: Service
metadata: {name: llama}
spec: {ports: [{port: 80}]}
"""


def load(text: str) -> Any:
    return yaml.safe_load(text)


def check_target(tmp_path: Path, target_yaml: str) -> None:
    """The output, pasted under `targets:` of a minimal config, passes check_config."""
    path = tmp_path / "replicast.yaml"
    path.write_text(
        f"apiVersion: replicast/v1\nprometheus: {{url: http://127.0.0.1:9090}}\n"
        f"targets:\n{target_yaml}"
    )
    config, problems = check_config(path)
    assert problems == [], "\n".join(map(str, problems))
    assert config is not None


# --- HPA -------------------------------------------------------------------------------------


def test_hpa_pods_external_object_and_behavior() -> None:
    target = convert(load(HPA))
    assert target["name"] == "llama"
    assert target["scale_target"] == {
        "kind": "StatefulSet",
        "namespace": "llm",
        "name": "llama-sts",
    }
    policy = target["policy"]
    assert policy["policy"] == "hpa"
    assert (policy["min_replicas"], policy["max_replicas"]) == (2, 10)
    assert policy["behavior"] == load(HPA)["spec"]["behavior"]  # verbatim
    assert policy["metrics"] == [
        {"signal": "extra.vllm_num_requests_running", "type": "Pods", "target_per_replica": 8},
        {"signal": "extra.queue_messages_ready", "type": "External", "target_per_replica": 0.5},
        {"signal": "extra.queue_messages_ready_2", "type": "External", "target_value": 1000},
        {"signal": "extra.requests_per_second", "type": "Object", "target_value": 2},
    ]
    queries = target["signals"]["queries"]
    assert set(queries) == {m["signal"] for m in policy["metrics"]}
    assert all(q.startswith(TODO) for q in queries.values())
    assert 'queue="jobs"' in queries["extra.queue_messages_ready"]
    assert target["signals"]["group_by"] == []
    built = autoscaler(policy)
    assert built.name == "hpa"
    assert built.policy.required_signals == frozenset(queries)


def test_hpa_defaults_min_replicas_and_namespace() -> None:
    doc = load(HPA)
    del doc["spec"]["minReplicas"], doc["metadata"]["namespace"], doc["spec"]["behavior"]
    target = convert(doc)
    assert target["policy"]["min_replicas"] == 1
    assert "behavior" not in target["policy"]
    assert target["scale_target"]["namespace"] == "default"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (CPU, ["spec.metrics[0]", "Resource cpu", "in_flight"]),
        (CPU.replace("  metrics:\n", "  metrics: []\n").split("    - type")[0], ["CPU"]),
        (
            "apiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\nmetadata: {name: a}\n",
            ["CPU"],
        ),
    ],
)
def test_hpa_resource_metrics_are_refused(text: str, words: list[str]) -> None:
    with pytest.raises(UnsupportedError) as caught:
        convert(load(text))
    message = str(caught.value)
    assert "\n" not in message
    assert all(w in message for w in words), message


def test_hpa_value_target_on_pods_metric_is_refused() -> None:
    doc = load(HPA)
    doc["spec"]["metrics"][0]["pods"]["target"] = {"type": "Value", "value": "3"}
    with pytest.raises(UnsupportedError, match=r"metrics\[0\].*AverageValue"):
        convert(doc)


def test_hpa_bad_quantity_and_bad_behavior_are_one_line_errors() -> None:
    doc = load(HPA)
    doc["spec"]["metrics"][0]["pods"]["target"]["averageValue"] = "lots"
    with pytest.raises(UnsupportedError, match=r"averageValue|quantity"):
        convert(doc)
    doc = load(HPA)
    doc["spec"]["behavior"]["scaleUp"]["policies"][0]["periodSeconds"] = 4000
    with pytest.raises(UnsupportedError, match="periodSeconds"):
        convert(doc)


# --- KEDA ------------------------------------------------------------------------------------


def test_keda_prometheus_with_fallback_and_behavior() -> None:
    doc = load(KEDA)
    target = convert(doc)
    assert target["scale_target"] == {"kind": "Deployment", "namespace": "llm", "name": "mistral"}
    assert target["interval_s"] == 15
    queries = target["signals"]["queries"]
    first, second = (t["metadata"]["query"] for t in doc["spec"]["triggers"])
    assert queries == {
        "extra.waiting": f"({first}) or vector(0)",  # KEDA's ignoreNullValues default
        "extra.trigger_1": second,
    }
    assert not any(q.startswith(TODO) for q in queries.values())
    policy = target["policy"]
    assert policy == {
        "policy": "keda",
        "triggers": [
            {
                "signal": "extra.waiting",
                "threshold": 5,
                "activation_threshold": 1.5,
                "metric_type": "AverageValue",
            },
            {"signal": "extra.trigger_1", "threshold": 20, "metric_type": "Value"},
        ],
        "min_replicas": 0,
        "max_replicas": 8,
        "cooldown_s": 120,
        "fallback": {"failure_threshold": 3, "replicas": 4},
        "behavior": doc["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"],
    }
    built = autoscaler(policy)
    assert built.name == "keda"
    assert built.policy.required_signals == frozenset(queries)


def test_keda_defaults() -> None:
    doc = load(KEDA)
    spec = doc["spec"]
    for key in ("pollingInterval", "cooldownPeriod", "maxReplicaCount", "fallback", "advanced"):
        del spec[key]
    target = convert(doc)
    policy = target["policy"]
    assert (policy["min_replicas"], policy["max_replicas"], policy["cooldown_s"]) == (0, 100, 300)
    assert target["interval_s"] == 30
    assert "fallback" not in policy
    assert "behavior" not in policy


def test_keda_non_prometheus_trigger_is_refused() -> None:
    with pytest.raises(UnsupportedError, match=r"triggers\[0\].*'kafka'.*prometheus"):
        convert(load(KAFKA))


def test_keda_query_with_a_replicast_placeholder_is_refused() -> None:
    doc = load(KEDA)
    doc["spec"]["triggers"][0]["metadata"]["query"] = 'sum(x{a="{name}"})'
    with pytest.raises(UnsupportedError, match=r"\{name\}"):
        convert(doc)


def test_unknown_kind_is_not_accepted() -> None:
    with pytest.raises(UnsupportedError, match=r"HorizontalPodAutoscaler.*ScaledObject.*'Service'"):
        convert(load(SERVICE))


# --- the output is a valid config target -----------------------------------------------------


@pytest.mark.parametrize("text", [HPA, KEDA, HPA + "---\n" + KEDA], ids=["hpa", "keda", "both"])
def test_output_pasted_under_targets_passes_check_config(
    text: str, tmp_path: Path, capsys: Capture
) -> None:
    source = tmp_path / "in.yaml"
    source.write_text(text)
    assert cmd_import([str(source)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.startswith("# imported from ")
    parsed = yaml.safe_load(out)
    assert isinstance(parsed, list)
    assert len(parsed) == len(list(yaml.safe_load_all(text)))
    for item in parsed:
        autoscaler(item["policy"])
    check_target(tmp_path, out)
    # indented under targets: as well
    check_target(tmp_path, "".join(f"  {line}" for line in out.splitlines(keepends=True)))


def test_hpa_placeholders_are_marked_in_comments(tmp_path: Path, capsys: Capture) -> None:
    source = tmp_path / "hpa.yaml"
    source.write_text(HPA)
    assert cmd_import([str(source)]) == 0
    out = capsys.readouterr().out
    assert "# TODO: fill in signals.queries.extra.vllm_num_requests_running" in out


# --- the command -----------------------------------------------------------------------------


def run(tmp_path: Path, capsys: Capture, text: str) -> tuple[int, str, str]:
    source = tmp_path / "in.yaml"
    source.write_text(text)
    status = cmd_import([str(source)])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize(
    ("text", "status", "words"),
    [
        (CPU, 1, ["Resource cpu", "in_flight"]),
        (KAFKA, 1, ["'kafka'", "prometheus"]),
        (SERVICE, 2, ["'Service'", "HorizontalPodAutoscaler", "ScaledObject"]),
        (HPA + "---\n" + SERVICE, 2, ["document 2", "'Service'"]),
        ("kind: [unclosed\n", 2, ["YAML syntax error", "line 2", "ScaledObject"]),
        ("", 2, ["no objects", "HorizontalPodAutoscaler"]),
        ("- 1\n- 2\n", 2, ["a list", "HorizontalPodAutoscaler"]),
    ],
    ids=["cpu", "kafka", "service", "multi-unknown", "broken", "empty", "list"],
)
def test_cli_errors_are_one_line_with_the_file(
    tmp_path: Path, capsys: Capture, text: str, status: int, words: list[str]
) -> None:
    got, out, err = run(tmp_path, capsys, text)
    assert got == status
    assert out == ""  # nothing half-converted on stdout
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"replicast import: {tmp_path / 'in.yaml'}")
    assert "Traceback" not in err
    assert all(w in lines[0] for w in words), lines[0]


def test_cli_reports_every_refused_document(tmp_path: Path, capsys: Capture) -> None:
    got, out, err = run(tmp_path, capsys, f"{CPU}---\n{KAFKA}---\n{HPA}")
    assert (got, out) == (1, "")
    assert len(err.splitlines()) == 2


def test_cli_missing_file_and_usage(tmp_path: Path, capsys: Capture) -> None:
    assert cmd_import([str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot read" in err
    assert cmd_import([]) == 2
    assert cmd_import(["--help"]) == 0
