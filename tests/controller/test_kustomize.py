"""`kubectl apply -k deploy/` on a fresh cluster: what `kubectl kustomize` renders, checked.

A dry run against a server (`kubectl apply -k deploy --dry-run=server`) needs a cluster, and
`--dry-run=client` still downloads the server's OpenAPI schema, so the check here is offline:
`kubectl kustomize` of the base and of every combination of its components
(tests/controller/kustomize.py), every rendered object validated against the Kubernetes
schema (kubernetes-validate, strict: an unknown field is an error) or, for the PrometheusRule
whose CRD has no schema there, against the CRD's fields by hand; the generated config against
`controller.config.check_config`, every container's args against `replicast run`'s parser.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from controller.config import check_config
from controller.run import build_parser, options_from
from tests.controller.kustomize import (
    COMBINATIONS,
    DEPLOY,
    REPO,
    combo_id,
    kubectl,
    of_kind,
    one,
    render,
)

KUBERNETES_VERSION = "1.30.0"  # the oldest minor AKS still supports as of writing
NAMESPACE = "replicast"
IMAGE = "ghcr.io/replicast/replicast:0.1.0"
SHARDS = 3
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
WITHOUT_SHARDS = [c for c in COMBINATIONS if "sharded" not in c]
WITH_AKS = [c for c in COMBINATIONS if "aks" in c]
ids = combo_id

# prometheus-operator's PrometheusRule CRD (monitoring.coreos.com/v1, as of operator 0.82):
# the fields it allows, by level; `expr` is required, and a rule is an alert or a record.
RULE_GROUP_FIELDS = {"name", "interval", "labels", "limit", "partial_response_strategy",
                     "query_offset", "rules"}  # fmt: skip
RULE_FIELDS = {"alert", "annotations", "expr", "for", "keep_firing_for", "labels", "record"}
DURATION = re.compile(r"^(0|(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?)$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def deployments(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return of_kind(docs, "Deployment")


def container_of(deployment: dict[str, Any]) -> dict[str, Any]:
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


# --- every combination renders a set a fresh cluster accepts ----------------------------------


@pytest.mark.parametrize("components", COMBINATIONS, ids=ids)
def test_it_renders_namespace_first_with_everything_in_that_namespace(
    components: tuple[str, ...],
) -> None:
    docs = render(components)
    # Namespace first: a fresh cluster creates it before anything that lives in it.
    assert docs[0]["kind"] == "Namespace" and docs[0]["metadata"]["name"] == NAMESPACE
    assert [d["kind"] for d in docs].count("Namespace") == 1
    for doc in docs[1:]:
        where = f"{doc['kind']} {doc['metadata']['name']}"
        assert doc["kind"] not in CLUSTER_SCOPED, f"{where}: nothing cluster-wide"
        assert doc["metadata"].get("namespace") == NAMESPACE, where
    keys = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert len(keys) == len(set(keys)), keys


@pytest.mark.parametrize("components", COMBINATIONS, ids=ids)
def test_every_rendered_object_is_valid_against_its_schema(components: tuple[str, ...]) -> None:
    for doc in render(components):
        if doc["kind"] == "PrometheusRule":
            assert prometheus_rule_problems(doc) == []
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            field = ".".join(map(str, error.path)) or "(the object)"
            pytest.fail(f"{doc['kind']} {doc['metadata']['name']}: {field}: {error.message}")


def test_the_base_is_the_controller_and_what_it_needs_nothing_else() -> None:
    docs = render()
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(
        ["Namespace", "ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Deployment",
         "PodDisruptionBudget"]
    )  # fmt: skip
    binding, account = one(docs, "RoleBinding"), one(docs, "ServiceAccount")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": one(docs, "Role")["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": NAMESPACE}
    ]


# --- the config, the image, the args ----------------------------------------------------------


@pytest.mark.parametrize("components", COMBINATIONS, ids=ids)
def test_every_deployment_mounts_the_generated_config_and_it_validates(
    components: tuple[str, ...], tmp_path: Path
) -> None:
    docs = render(components)
    [config_map] = of_kind(docs, "ConfigMap")
    name = config_map["metadata"]["name"]
    # A hash of the content in the name: a changed config rolls the Deployments.
    assert re.fullmatch(r"replicast-config-[a-z0-9]{10}", name), name
    for deployment in deployments(docs):
        volumes = deployment["spec"]["template"]["spec"]["volumes"]
        assert {"name": "config", "configMap": {"name": name}} in volumes
    path = tmp_path / "config.yaml"
    path.write_text(config_map["data"]["config.yaml"])
    config, problems = check_config(path)
    assert problems == [] and config is not None and config.targets


def test_the_base_config_is_config_example_yaml_as_it_is_in_the_repository() -> None:
    [config_map] = of_kind(render(), "ConfigMap")
    assert config_map["data"] == {"config.yaml": (DEPLOY / "config.example.yaml").read_text()}


@pytest.mark.parametrize("components", COMBINATIONS, ids=ids)
def test_every_container_runs_the_image_the_dockerfile_builds(components: tuple[str, ...]) -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert f"docker build -f deploy/Dockerfile -t {IMAGE} ." in dockerfile
    for deployment in deployments(render(components)):
        assert container_of(deployment)["image"] == IMAGE


@pytest.mark.parametrize("components", WITHOUT_SHARDS, ids=ids)
def test_every_container_arg_parses_as_a_leader_elected_controller(
    components: tuple[str, ...],
) -> None:
    for deployment in deployments(render(components)):
        args = container_of(deployment)["args"]
        options = options_from(build_parser().parse_args(args))
        assert options.leader_election and not options.admin and not options.dry_run
        assert (options.host, options.port) == ("0.0.0.0", 8080)


def test_the_sharded_components_args_parse_into_three_shards_with_their_own_leases() -> None:
    shards, leases = set(), set()
    for deployment in deployments(render(("sharded",))):
        options = options_from(build_parser().parse_args(container_of(deployment)["args"]))
        assert options.leader_election and not options.admin and not options.dry_run
        assert options.shard is not None
        shards.add((options.shard.index, options.shard.count))
        leases.add(options.lease_name)
    assert shards == {(0, 3), (1, 3), (2, 3)}
    assert leases == {"replicast-0-of-3", "replicast-1-of-3", "replicast-2-of-3"}


@pytest.mark.parametrize("components", COMBINATIONS, ids=ids)
def test_the_kubelet_waits_longer_than_the_shutdown_grace(components: tuple[str, ...]) -> None:
    # `replicast run --shutdown-grace-s` (default 20 s): the time SIGTERM gives scale calls in
    # flight, the state save and the Lease release. The kubelet's SIGKILL must come later.
    default_grace_s = build_parser().get_default("shutdown_grace_s") or 20.0
    for deployment in deployments(render(components)):
        args = container_of(deployment)["args"]
        given = [a.partition("=")[2] for a in args if a.startswith("--shutdown-grace-s=")]
        grace_s = float(given[-1]) if given else float(default_grace_s)
        period_s = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert period_s >= grace_s + 10, (deployment["metadata"]["name"], period_s, grace_s)


# --- components/sharded -----------------------------------------------------------------------


def shard_of(deployment: dict[str, Any]) -> tuple[int, int]:
    [flag] = [a for a in container_of(deployment)["args"] if a.startswith("--shard")]
    match = re.fullmatch(r"--shard=(\d+)/(\d+)", flag)
    assert match, flag
    return int(match[1]), int(match[2])


@pytest.mark.parametrize("components", [c for c in COMBINATIONS if "sharded" in c], ids=ids)
def test_sharded_runs_three_shards_of_two_replicas_each_on_their_own_lease(
    components: tuple[str, ...],
) -> None:
    docs = render(components)
    shards = {d["metadata"]["name"]: d for d in deployments(docs)}
    assert sorted(shards) == [f"replicast-{i}" for i in range(SHARDS)]  # the base's one is gone
    assert sorted(shard_of(d) for d in shards.values()) == [(i, SHARDS) for i in range(SHARDS)]
    budgets = {b["metadata"]["name"]: b for b in of_kind(docs, "PodDisruptionBudget")}
    assert sorted(budgets) == sorted(shards)
    for name, deployment in shards.items():
        index, _ = shard_of(deployment)
        spec = deployment["spec"]
        # Two replicas for HA within the shard, on the shard's own Lease: the default name
        # replicast-<INDEX>-of-<COUNT>, so no --lease-name that would make them share one.
        assert spec["replicas"] == 2
        args = container_of(deployment)["args"]
        assert not [a for a in args if a.startswith("--lease-name")], args
        selector = spec["selector"]["matchLabels"]
        assert selector == {"app.kubernetes.io/name": "replicast", "replicast.io/shard": str(index)}
        assert spec["template"]["metadata"]["labels"].items() >= selector.items()
        # A drain keeps one replica of every shard; the two replicas prefer different nodes.
        assert budgets[name]["spec"] == {"minAvailable": 1, "selector": {"matchLabels": selector}}
        [term] = spec["template"]["spec"]["affinity"]["podAntiAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"
        ]
        assert term["podAffinityTerm"]["labelSelector"] == {"matchLabels": selector}


def test_each_shard_is_the_base_deployment_but_for_its_name_labels_and_shard_flag() -> None:
    [base] = deployments(render())
    for shard in deployments(render(("sharded",))):
        index, count = shard_of(shard)
        expected = yaml.safe_load(yaml.safe_dump(base))
        expected["metadata"]["name"] = f"replicast-{index}"
        label = {"replicast.io/shard": str(index)}
        expected["metadata"]["labels"] |= label
        spec = expected["spec"]
        spec["selector"]["matchLabels"] |= label
        spec["template"]["metadata"]["labels"] |= label
        [term] = spec["template"]["spec"]["affinity"]["podAntiAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"
        ]
        term["podAffinityTerm"]["labelSelector"]["matchLabels"] |= label
        [container] = spec["template"]["spec"]["containers"]
        container["args"] = [
            f"--shard={index}/{count}" if a == "--lease-name=replicast" else a
            for a in container["args"]
        ]
        assert shard == expected


# --- components/aks ---------------------------------------------------------------------------


@pytest.mark.parametrize("components", WITH_AKS, ids=ids)
def test_aks_gives_every_controller_pod_the_workload_identity_of_its_service_account(
    components: tuple[str, ...], tmp_path: Path
) -> None:
    docs = render(components)
    account = one(docs, "ServiceAccount")
    client_id = account["metadata"]["annotations"]["azure.workload.identity/client-id"]
    assert re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", client_id), client_id
    for deployment in deployments(docs):
        pod = deployment["spec"]["template"]
        # Only pods with this label get the token from the AKS workload identity webhook.
        assert pod["metadata"]["labels"]["azure.workload.identity/use"] == "true"
        assert pod["spec"]["serviceAccountName"] == account["metadata"]["name"]
        # Not in the selector: the label is for the webhook, not for telling pods apart.
        assert "azure.workload.identity/use" not in deployment["spec"]["selector"]["matchLabels"]
    # The config asks azure-identity for tokens, with the client ID from the webhook's
    # AZURE_CLIENT_ID (one place to set it: the ServiceAccount).
    [config_map] = of_kind(docs, "ConfigMap")
    path = tmp_path / "config.yaml"
    path.write_text(config_map["data"]["config.yaml"])
    config, problems = check_config(path)
    assert problems == [] and config is not None
    auth = config.prometheus.auth
    assert auth.type == "azure_managed_prometheus"
    assert getattr(auth, "managed_identity_client_id", None) is None
    assert config.prometheus.url.startswith("https://")
    assert {t.scale_target.kind for t in config.targets} == {"Deployment", "aci"}


# --- components/alerts ------------------------------------------------------------------------


def test_alerts_adds_the_prometheus_rule_of_alerts_yaml_and_nothing_else() -> None:
    base = render()
    with_alerts = render(("alerts",))
    [rule] = [d for d in with_alerts if d not in base]
    assert len(with_alerts) == len(base) + 1
    assert rule == yaml.safe_load((DEPLOY / "components" / "alerts" / "alerts.yaml").read_text())


def prometheus_rule_problems(doc: dict[str, Any]) -> list[str]:
    """What prometheus-operator's PrometheusRule CRD would refuse in `doc`, by field path."""
    problems = []
    where = f"PrometheusRule {doc.get('metadata', {}).get('name')}"
    if (doc.get("apiVersion"), doc.get("kind")) != ("monitoring.coreos.com/v1", "PrometheusRule"):
        problems.append(f"{where}: apiVersion/kind")
    unknown = sorted(set(doc) - {"apiVersion", "kind", "metadata", "spec"})
    problems += [f"{where}: unknown field {k}" for k in unknown]
    name = doc.get("metadata", {}).get("name", "")
    if not DNS_SUBDOMAIN.match(name):
        problems.append(f"{where}: metadata.name {name!r}")
    spec = doc.get("spec")
    if not isinstance(spec, dict) or set(spec) - {"groups"}:
        return [*problems, f"{where}: spec must hold only groups"]
    groups = spec.get("groups") or []
    names = [g.get("name") for g in groups]
    if len(names) != len(set(names)):
        problems.append(f"{where}: spec.groups: names must be unique ({names})")
    for i, group in enumerate(groups):
        at = f"{where}: spec.groups[{i}]"
        problems += [f"{at}: unknown field {k}" for k in sorted(set(group) - RULE_GROUP_FIELDS)]
        if not isinstance(group.get("name"), str) or not group["name"]:
            problems.append(f"{at}.name: required")
        for key in ("interval", "query_offset"):
            if key in group and not DURATION.match(str(group[key])):
                problems.append(f"{at}.{key}: not a duration ({group[key]!r})")
        for j, rule in enumerate(group.get("rules") or []):
            problems += rule_problems(f"{at}.rules[{j}]", rule)
    return problems


def rule_problems(at: str, rule: dict[str, Any]) -> list[str]:
    problems = [f"{at}: unknown field {k}" for k in sorted(set(rule) - RULE_FIELDS)]
    if not isinstance(rule.get("expr"), str | int) or rule.get("expr") == "":
        problems.append(f"{at}.expr: required")
    if ("alert" in rule) == ("record" in rule):
        problems.append(f"{at}: set exactly one of alert and record")
    if "record" in rule and "annotations" in rule:
        problems.append(f"{at}.annotations: only for alerting rules")
    for key in ("for", "keep_firing_for"):
        if key in rule and not DURATION.match(str(rule[key])):
            problems.append(f"{at}.{key}: not a duration ({rule[key]!r})")
    for key in ("labels", "annotations"):
        values = rule.get(key, {})
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            problems.append(f"{at}.{key}: must map names to strings")
    return problems


def test_the_prometheus_rule_check_refuses_what_the_crd_refuses() -> None:
    bad = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "replicast"},
        "spec": {
            "groups": [
                {"name": "a", "rules": [{"alert": "A", "expr": "up == 0", "for": "5 minutes"}]},
                {"name": "a", "interval": "1m", "rules": [{"expr": "up", "severity": "page"}]},
            ]
        },
    }
    assert prometheus_rule_problems(bad) == [
        "PrometheusRule replicast: spec.groups: names must be unique (['a', 'a'])",
        "PrometheusRule replicast: spec.groups[0].rules[0].for: not a duration ('5 minutes')",
        "PrometheusRule replicast: spec.groups[1].rules[0]: unknown field severity",
        "PrometheusRule replicast: spec.groups[1].rules[0]: set exactly one of alert and record",
    ]


# --- the README's "Deploying" -------------------------------------------------------------------


def test_the_readmes_overlay_renders_shards_with_workload_identity_alerts_and_its_image(
    tmp_path: Path,
) -> None:
    readme = (REPO / "README.md").read_text()
    deploying = readme[readme.index("## Deploying") :]
    assert f"docker build -f deploy/Dockerfile -t {IMAGE} ." in deploying
    assert "kubectl apply -k deploy/" in deploying
    overlay = re.search(r"```yaml\n(# my-replicast/kustomization.yaml.*?)```", deploying, re.S)
    assert overlay, "the overlay example in the README's Deploying"
    # Where the README puts it: my-replicast/ next to a clone named replicast.
    (tmp_path / "replicast").symlink_to(REPO)
    (tmp_path / "my-replicast").mkdir()
    (tmp_path / "my-replicast" / "kustomization.yaml").write_text(overlay[1])
    command = [kubectl(), "kustomize", str(tmp_path / "my-replicast")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    expected = render(("sharded", "aks", "alerts"))
    for deployment in deployments(expected):  # the same objects, with the image of `images:`
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        container["image"] = "myregistry.azurecr.io/replicast:0.1.0"
    assert docs == expected


# --- without kubectl ---------------------------------------------------------------------------


def test_without_kubectl_the_render_checks_skip_but_fail_under_ci(tmp_path: Path) -> None:
    no_kubectl = {"PATH": str(tmp_path)}
    with pytest.raises(pytest.skip.Exception, match="kubectl is not installed"):
        kubectl(no_kubectl)
    with pytest.raises(pytest.fail.Exception, match="CI=true: the kustomize checks must run"):
        kubectl(no_kubectl | {"CI": "true"})
