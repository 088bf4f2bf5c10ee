"""The controller config: examples validate, and every problem is one line naming the file,
line:column, field path, bad value and what is allowed, all of them at once."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from controller.cli import cmd_schema
from controller.config import (
    DEFAULT_GROUP_BY,
    BearerAuth,
    ConfigError,
    KubernetesTarget,
    NoAuth,
    load_config,
    validate_config,
)
from controller.signals import PRESETS

EXAMPLES = sorted((Path(__file__).parents[2] / "controller" / "examples").glob("*.yaml"))
LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<column>\d+): (?P<path>[^:]+): (?P<msg>.+)$")

MINIMAL = """\
apiVersion: replicast/v1
prometheus: {url: http://127.0.0.1:9090}
targets:
  - name: llama
    scale_target: {kind: Deployment, namespace: llm, name: llama}
    signals: {preset: vllm}
    policy: {policy: hpa, metric: in_flight, target_per_replica: 8, max_replicas: 10}
"""

Write = Callable[[str], Path]


@pytest.fixture
def write(tmp_path: Path) -> Write:
    def write_config(text: str) -> Path:
        path = tmp_path / "config.yaml"
        path.write_text(text)
        return path

    return write_config


def lines(path: Path) -> list[str]:
    return [str(p) for p in validate_config(path)]


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 2


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_shipped_examples_validate_and_fill_their_queries(example: Path) -> None:
    assert validate_config(example) == []
    config = load_config(example)
    for target in config.targets:
        queries = target.signal_queries().queries
        assert queries, target.name
        for q in queries.values():
            assert "{" + "group_by}" not in q.promql and "{selector}" not in q.promql


def test_a_minimal_config_takes_every_default(write: Write) -> None:
    config = load_config(write(MINIMAL))
    assert isinstance(config.prometheus.auth, NoAuth)
    assert config.prometheus.timeout_s == 5 and config.prometheus.method == "POST"
    [target] = config.targets
    assert isinstance(target.scale_target, KubernetesTarget)
    assert (target.interval_s, target.staleness_s, target.dry_run) == (15, 60, False)
    assert tuple(target.signals.group_by) == DEFAULT_GROUP_BY
    assert target.match(target.signals.group_by) == (("namespace", "llm"), ("name", "llama"))
    assert set(target.signal_queries().queries) == set(PRESETS["vllm"])


def test_targets_inherit_defaults_unless_they_set_their_own(write: Write) -> None:
    text = MINIMAL.replace(
        "targets:\n",
        "defaults: {interval_s: 30, staleness_s: 90, dry_run: true, group_by: [namespace, svc]}\n"
        "targets:\n",
    ).replace(
        "    signals: {preset: vllm}\n", "    signals: {preset: vllm}\n    labels: {svc: x}\n"
    )
    text += "    interval_s: 5\n"
    [target] = load_config(write(text)).targets
    assert (target.interval_s, target.staleness_s, target.dry_run) == (5, 90, True)
    assert target.signals.group_by == ["namespace", "svc"]
    assert target.match(target.signals.group_by) == (("namespace", "llm"), ("svc", "x"))


def test_bearer_auth_reads_a_file_or_an_environment_variable(write: Write) -> None:
    text = MINIMAL.replace(
        "{url: http://127.0.0.1:9090}",
        "{url: http://127.0.0.1:9090, auth: {type: bearer, token_file: /var/run/token}}",
    )
    auth = load_config(write(text)).prometheus.auth
    assert isinstance(auth, BearerAuth) and auth.token_file == "/var/run/token"


# --- every problem at once -------------------------------------------------------------------

BROKEN = """\
apiVersion: replicast/v1
prometheus:
  url: prometheus:9090
  timeout_s: -1
  auth: {type: bearer, token: s3cret}
defaults: {interval_s: 0}
targets:
  - name: llama
    scale_target: {kind: Deployment, namespace: LLM, name: llama, replicas: 3}
    signals:
      preset: vlm
    policy: {policy: hpa, metric: in_flight, target_per_replica: -1, max_replicas: 0}
    shadow:
      - {policy: nope}
  - name: mistral
    scale_target: {kind: Pod, name: x}
    policy: {policy: keda, metric: queue_depth, threshold: 3, max_replicas: 2, colldown_s: 3}
    surprise: 1
"""


def test_every_problem_is_reported_at_once_with_line_path_value_and_fix(write: Write) -> None:
    path = write(BROKEN)
    got = lines(path)
    expected = [
        "3:8: prometheus.url: must be an http:// or https:// base URL such as "
        "http://prometheus.monitoring:9090 (got 'prometheus:9090')",
        "4:14: prometheus.timeout_s: must be > 0 (got -1)",
        "5:24: prometheus.auth.token: unknown key; allowed keys: token_env, token_file, type; "
        "keep secrets out of this file: use token_file or token_env",
        "6:24: defaults.interval_s: must be >= 0.1 (got 0)",
        "9:49: targets[0].scale_target.namespace: must be a Kubernetes namespace: at most 63 "
        "lowercase letters, digits and '-', starting and ending with a letter or digit "
        "(got 'LLM')",
        "9:67: targets[0].scale_target.replicas: unknown key; allowed keys: kind, name, namespace",
        "11:15: targets[0].signals.preset: must be one of 'vllm', 'triton' or 'http' (got 'vlm')",
        "12:66: targets[0].policy.target_per_replica: must be > 0 (got -1)",
        "12:84: targets[0].policy.max_replicas: must be >= 1 (got 0)",
        "14:18: targets[0].shadow[0].policy: unknown policy 'nope'; available: ",
        "16:19: targets[1].scale_target: kind must be one of 'Deployment', 'StatefulSet', "
        "'aci', 'local' (got 'Pod')",
        "17:80: targets[1].policy.colldown_s: unknown key; allowed keys: ",
        "18:5: targets[1].surprise: unknown key; allowed keys: activation, dry_run, interval_s, "
        "labels, name, policy, scale_target, shadow, signals, staleness_s",
    ]
    assert len(got) == len(expected), "\n".join(got)
    for line, want in zip(got, expected, strict=True):
        assert line.startswith(f"{path}:{want}"), f"{line}\n!= {path}:{want}"
        assert LINE.match(line), line
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert str(raised.value).splitlines() == got


def test_policy_problems_land_under_the_policy_key_path(write: Write) -> None:
    text = MINIMAL.replace(
        "    policy: {policy: hpa, metric: in_flight, target_per_replica: 8, max_replicas: 10}\n",
        "    policy:\n"
        "      policy: hpa\n"
        "      metrics:\n"
        "        - {signal: in_flight, target_per_replica: -3}\n"
        "      max_replicas: 4\n"
        "    shadow:\n"
        "      - {policy: hpa, metric: in_flight, target_per_replica: 3, max_replicas: 4}\n"
        "      - {policy: slo, max_replicas: 4}\n"
        "      - {metric: in_flight}\n",
    )
    path = write(text)
    assert lines(path) == [
        f"{path}:10:51: targets[0].policy.metrics[0].target_per_replica: must be > 0 (got -3)",
        f"{path}:14:9: targets[0].shadow[1]: set exactly one of latency_target_s (wait + mean "
        "service, end to end) or wait_target_s (queueing delay alone, the time-to-first-token-"
        "like part)",
        f"{path}:15:9: targets[0].shadow[2].policy: required key is missing; e.g. policy: hpa",
    ]


def test_a_policy_needing_a_signal_no_query_gives_is_an_error(write: Write) -> None:
    text = MINIMAL.replace("preset: vllm", "preset: http").replace("in_flight", "queue_depth")
    path = write(text)
    [line] = lines(path)
    assert line.startswith(
        f"{path}:6:14: targets[0].signals: policy 'hpa' requires queue_depth, which no query "
        "gives (given: request_rate_rps, in_flight, latency_p50_s"
    )


def test_unknown_placeholders_and_group_labels_without_values_are_errors(write: Write) -> None:
    text = MINIMAL.replace(
        "    signals: {preset: vllm}\n",
        "    signals:\n"
        "      group_by: [namespace, service]\n"
        "      selector: 'env=\"{env}\"'\n"
        "      queries:\n"
        "        in_flight: 'sum by ({group_by}) (running{{selector}}) / {replicas}'\n",
    )
    path = write(text)
    assert lines(path) == [
        f"{path}:7:17: targets[0].signals.group_by: no value for group label 'service'; "
        "add labels: {service: ...}",
        f"{path}:8:17: targets[0].signals.selector: unknown placeholder {{env}}; "
        "known: name, namespace, target",
        f"{path}:10:20: targets[0].signals.queries.in_flight.query: unknown placeholder "
        "{replicas}; known: group_by, name, namespace, selector, target",
    ]


def test_unknown_keys_everywhere_list_the_allowed_ones(write: Write) -> None:
    text = (
        MINIMAL.replace("apiVersion: replicast/v1\n", "apiVersion: replicast/v1\nkind: Config\n")
        .replace("{preset: vllm}", "{preset: vllm, queries: {in_flight: {query: x, step: 1m}}}")
        .replace("name: llama}", "name: llama, replica: 2}")
    )
    got = [line.split(": ", 1)[1] for line in lines(write(text))]
    assert got == [
        "kind: unknown key; allowed keys: apiVersion, defaults, prometheus, targets",
        "targets[0].scale_target.replica: unknown key; allowed keys: kind, name, namespace",
        "targets[0].signals.queries.in_flight.step: unknown key; allowed keys: freshness, query",
    ]


def test_a_yaml_syntax_error_names_line_and_column(write: Write) -> None:
    path = write("apiVersion: replicast/v1\nprometheus:\n  url: [http://x\ntargets: []\n")
    [line] = lines(path)
    assert line.startswith(f"{path}:4:8: YAML syntax error: ")
    assert "expected ',' or ']'" in line


def test_duplicate_yaml_keys_are_errors_not_silently_the_last_one(write: Write) -> None:
    path = write(MINIMAL + "    interval_s: 10\n    interval_s: 20\n")
    assert lines(path) == [f"{path}:9:5: targets[0].interval_s: duplicate key (first on line 8)"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected a mapping with apiVersion: replicast/v1 (got an empty file)"),
        ("- a\n- b\n", "expected a mapping with apiVersion: replicast/v1 (got a list)"),
    ],
    ids=["empty", "list"],
)
def test_a_file_that_is_not_a_mapping(write: Write, text: str, message: str) -> None:
    path = write(text)
    assert lines(path) == [f"{path}:1:1: {message}"]


def test_a_missing_file_is_one_problem(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    assert lines(path) == [f"{path}: cannot read the file: No such file or directory"]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "{url: http://127.0.0.1:9090}",
            "{url: http://x:9090, auth: {type: azure_managed_prometheus}}",
            "prometheus: azure_managed_prometheus needs an https:// query endpoint "
            "(got 'http://x:9090')",
        ),
        (
            "{url: http://127.0.0.1:9090}",
            "{url: http://x:9090, auth: {type: bearer}}",
            "prometheus.auth: set exactly one of token_file or token_env",
        ),
        (
            "{url: http://127.0.0.1:9090}",
            "{url: http://x:9090, auth: {token_file: /t}}",
            "prometheus.auth: type must be one of 'none', 'bearer', 'basic', "
            "'azure_managed_prometheus'",
        ),
        (
            "scale_target: {kind: Deployment, namespace: llm, name: llama}",
            "scale_target: {kind: aci, resource_group: rg, name_prefix: llama, template: {}}",
            "targets[0].scale_target.template: must be a container group body with "
            "properties.containers: [...]",
        ),
        (
            "scale_target: {kind: Deployment, namespace: llm, name: llama}",
            "scale_target: {kind: local, command: [], base_port: 18000}",
            "targets[0].scale_target.command: must have at least 1 item(s)",
        ),
        (
            "signals: {preset: vllm}",
            "signals: {preset: vllm, queries: {in_fligth: 'x'}}",
            "targets[0].signals.queries.in_fligth: not an Observation signal: use one of "
            "request_rate_rps, in_flight,",
        ),
        (
            "signals: {preset: vllm}",
            "signals: {preset: vllm}\n    activation: {signal: rps, query: 'x'}",
            "targets[0].activation.signal: not an Observation signal",
        ),
    ],
    ids=[
        "azure-needs-https", "bearer-one-source", "auth-without-type", "aci-template",
        "local-command", "misspelled-signal", "activation-signal",
    ],
)  # fmt: skip
def test_shape_errors_say_what_is_allowed(write: Write, old: str, new: str, expected: str) -> None:
    assert old in MINIMAL
    [line] = lines(write(MINIMAL.replace(old, new)))
    assert LINE.match(line), line
    assert line.split(": ", 1)[1].startswith(expected), line


def test_two_targets_with_one_name_or_one_workload_are_errors(write: Write) -> None:
    target = MINIMAL.split("targets:\n", 1)[1]
    path = write(MINIMAL + target)
    assert [line.split(": ", 1)[1] for line in lines(path)] == [
        "targets[1].name: duplicate of targets[0].name",
        "targets[1].scale_target: Deployment llm/llama is already scaled by targets[0]; "
        "two targets would fight",
    ]


# --- JSON Schema -----------------------------------------------------------------------------


def test_schema_is_json_schema_with_the_top_level_properties(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cmd_schema([]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert set(schema["properties"]) == {"apiVersion", "prometheus", "defaults", "targets"}
    assert set(schema["required"]) == {"apiVersion", "prometheus", "targets"}
    target = schema["$defs"]["TargetConfig"]
    scale = target["properties"]["scale_target"]
    assert set(scale["discriminator"]["mapping"]) == {"Deployment", "StatefulSet", "aci", "local"}
    assert target["properties"]["policy"]["required"] == ["policy"]
    # a query is a PromQL string or {query, freshness}: editors must accept both
    queries = schema["$defs"]["SignalsConfig"]["properties"]["queries"]["additionalProperties"]
    assert queries["anyOf"] == [{"type": "string"}, {"$ref": "#/$defs/QueryConfig"}]


def test_schema_can_be_written_to_a_file(tmp_path: Path) -> None:
    out = tmp_path / "replicast.schema.json"
    assert cmd_schema(["--out", str(out)]) == 0
    assert json.loads(out.read_text())["title"] == "Config"
