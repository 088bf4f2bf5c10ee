"""Property tests over the config loader: any file gives a Config or one line per problem,
each naming the file, never a traceback or a hang (issue 14: hypothesis over the loader).

Documents are the minimal valid config with values replaced, keys added and blocks swapped
for hypothesis-drawn YAML values (numbers incl. NaN and infinities, huge ints, strings, lists,
mappings, null), plus arbitrary text. Bugs found are pinned with `@example`.
"""

from __future__ import annotations

import copy
import math
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from controller.config import Config, ConfigError, check_config, load_config

PROPERTY = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

MINIMAL: dict[str, Any] = {
    "apiVersion": "replicast/v1",
    "prometheus": {"url": "http://127.0.0.1:9090"},
    "defaults": {"interval_s": 15, "staleness_s": 60},
    "targets": [
        {
            "name": "llama",
            "scale_target": {"kind": "Deployment", "namespace": "llm", "name": "llama"},
            "signals": {"preset": "vllm"},
            "policy": {
                "policy": "hpa",
                "metric": "in_flight",
                "target_per_replica": 8,
                "max_replicas": 10,
            },
        }
    ],
}
PATHS: list[tuple[str | int, ...]] = [
    ("apiVersion",), ("prometheus",), ("prometheus", "url"), ("prometheus", "timeout_s"),
    ("prometheus", "auth"), ("defaults",), ("defaults", "interval_s"),
    ("defaults", "staleness_s"), ("defaults", "permanent_error_retry_s"), ("targets",),
    ("targets", 0), ("targets", 0, "name"), ("targets", 0, "scale_target"),
    ("targets", 0, "scale_target", "kind"), ("targets", 0, "scale_target", "base_port"),
    ("targets", 0, "scale_target", "registrar"), ("targets", 0, "signals"),
    ("targets", 0, "signals", "queries"), ("targets", 0, "policy"),
    ("targets", 0, "policy", "policy"), ("targets", 0, "policy", "target_per_replica"),
    ("targets", 0, "policy", "max_replicas"), ("targets", 0, "shadow"),
    ("targets", 0, "interval_s"), ("targets", 0, "activation"),
]  # fmt: skip
KEYS = ("kind", "type", "policy", "url", "path", "query", "token", "interval_s", "x", "")

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "Deployment", "local", "aci", "hpa", "http://h:1", "user:pw@h", "{x}"]),
    st.text(max_size=20),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=4),
    ),
    max_leaves=12,
)


def put(doc: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    holder: Any = out
    for part in path[:-1]:
        holder = holder[part]
    holder[path[-1]] = value
    return out


def check_file(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(text, encoding="utf-8")
        config, problems = check_config(path)
        assert (config is None) == bool(problems)
        for problem in problems:
            line = str(problem)
            assert line.startswith(f"{path}") and "\n" not in line, line
            assert "Traceback" not in line
        try:
            assert isinstance(load_config(path), Config)
        except ConfigError as error:
            assert error.problems == tuple(problems)
        if config is not None:  # what validates is finite where it matters
            for target in config.targets:
                assert math.isfinite(target.interval_s) and math.isfinite(target.staleness_s)
                assert 0.1 <= target.interval_s <= target.staleness_s


@PROPERTY
@given(st.sampled_from(PATHS), values)
@example(("defaults", "interval_s"), math.inf)
@example(("defaults", "interval_s"), math.nan)
@example(("targets", 0, "interval_s"), 10**30)
@example(("prometheus", "url"), "http://user:pw@h:9090")
@example(("prometheus", "url"), "http://h:99999999")
@example(("targets", 0, "scale_target"), {"kind": "local", "command": ["x"]})
@example(("prometheus",), {"0\n": None})  # a key with a newline split the line
@example(("targets", 0, "policy", "target_per_replica"), None)  # hpa raised a bare ValidationError
def test_any_value_anywhere_gives_a_config_or_one_line_problems(
    path: tuple[str | int, ...], value: Any
) -> None:
    check_file(yaml.safe_dump(put(MINIMAL, path, value), allow_unicode=True))


@PROPERTY
@given(st.sampled_from(PATHS), st.sampled_from(KEYS), values)
def test_any_extra_key_gives_a_config_or_one_line_problems(
    path: tuple[str | int, ...], key: str, value: Any
) -> None:
    doc = copy.deepcopy(MINIMAL)
    holder: Any = doc
    for part in path:
        try:
            holder = holder[part]
        except (KeyError, IndexError, TypeError):
            return  # a path the minimal config does not have: nothing to add to
    if isinstance(holder, dict):
        holder[key] = value
    check_file(yaml.safe_dump(doc, allow_unicode=True))


@PROPERTY
@given(st.text(max_size=300))
@example("a: &a [*a]\n")
@example("\ufeffapiVersion: replicast/v1\n")
@example("- [" * 200)
@example("apiVersion: replicast/v1\n---\nx: 1\n")
def test_any_text_gives_one_line_problems(text: str) -> None:
    check_file(text)
