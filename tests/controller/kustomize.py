"""What `kubectl apply -k` would apply: deploy/ and overlays of it with its components, rendered.

In: a tuple of component names (deploy/components/<name>), in the order an overlay lists them.
Out: the objects `kubectl kustomize` prints, parsed, in its order (Namespace first). The base is
rendered from deploy/ itself; a combination from an overlay written to a temporary directory
(kustomize refuses an overlay inside the base's directory), referring to deploy/ by relative
path as a user's overlay would. Renders are cached for the session: one `kubectl` call each.

kubectl 1.32 carries kustomize v5. Without kubectl the tests that need a render skip, except
under CI=true, where they fail: CI must check what a cluster would be sent.
"""

from __future__ import annotations

import copy
import functools
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.controller.fake_kube import Rule

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
# The optional components, in the order an overlay must list them: sharded makes the
# Deployments that aks patches.
COMPONENTS = ("sharded", "aks", "alerts")
# Every combination, each in that order: (), ("sharded",), ..., ("sharded", "aks", "alerts").
COMBINATIONS = [
    combo
    for size in range(len(COMPONENTS) + 1)
    for combo in itertools.combinations(COMPONENTS, size)
]
KUBECTL_HINT = (
    "install kubectl >= 1.27 (kustomize v5 inside), e.g. from https://dl.k8s.io/release or "
    "`apt-get install kubectl` from the Kubernetes apt repository"
)


def combo_id(components: tuple[str, ...]) -> str:
    return "+".join(components) or "base"


def kubectl(environ: Mapping[str, str] | None = None) -> str:
    """kubectl on $PATH; else skip the test, or fail it when CI=true."""
    env = os.environ if environ is None else environ
    found = shutil.which("kubectl", path=env.get("PATH", os.defpath))
    if found:
        return found
    message = f"kubectl is not installed, so deploy/ is not rendered: {KUBECTL_HINT}"
    if env.get("CI", "").strip().lower() in {"1", "true", "yes"}:
        pytest.fail(f"{message} (CI=true: the kustomize checks must run)")
    pytest.skip(message)


def render(components: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The objects of deploy/ with `components` added; fails with kustomize's message."""
    return copy.deepcopy(list(_render(kubectl(), tuple(components))))


@functools.cache
def _render(binary: str, components: tuple[str, ...]) -> tuple[dict[str, Any], ...]:
    unknown = sorted(set(components) - set(COMPONENTS))
    assert not unknown, f"no such component: {unknown} (deploy/components has {COMPONENTS})"
    with tempfile.TemporaryDirectory(prefix="replicast-overlay-") as directory:
        where = DEPLOY
        if components:
            where = Path(directory)
            overlay = {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(DEPLOY, where)],
                "components": [
                    os.path.relpath(DEPLOY / "components" / name, where) for name in components
                ],
            }
            (where / "kustomization.yaml").write_text(yaml.safe_dump(overlay, sort_keys=False))
        result = subprocess.run(
            [binary, "kustomize", str(where)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 0, (
        f"kubectl kustomize ({combo_id(components)}) failed:\n{result.stderr.strip()}"
    )
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = of_kind(docs, kind)
    assert len(found) == 1, f"{len(found)} objects of kind {kind}, expected one"
    return found[0]


def role_rules(docs: list[dict[str, Any]]) -> frozenset[Rule]:
    """Every (apiGroup, resource, verb) the rendered Roles and ClusterRoles grant."""
    rules: set[Rule] = set()
    for doc in docs:
        if doc["kind"] in {"Role", "ClusterRole"}:
            for rule in doc.get("rules") or []:
                rules.update(itertools.product(rule["apiGroups"], rule["resources"], rule["verbs"]))
    return frozenset(rules)
