"""The controller's one YAML file: models, loading, and every problem reported at once.

In: a path to YAML (`apiVersion: replicast/v1`, `prometheus`, `defaults`, `targets`). Out: a
frozen `Config` (pydantic v2, unknown keys are errors everywhere), or a list of `Problem`s,
one line each: `file:line:column: targets[0].policy.target_per_replica: must be > 0 (got -1)`.
Shapes are checked by pydantic; then each target's policy (and shadow policies) is built with
`policies.autoscaler`, its PromQL templates are filled, and the signals its policies require
are checked against the ones its queries give. Actuators read `scale_target`; the metric
source (`controller.prometheus`) reads `prometheus` and `TargetConfig.signal_queries()`.

    apiVersion: replicast/v1
    prometheus: {url: http://prometheus.monitoring:9090}
    targets:
      - name: llama
        scale_target: {kind: Deployment, namespace: llm, name: llama}
        signals: {preset: vllm}
        policy: {policy: hpa, metric: in_flight, target_per_replica: 8, max_replicas: 10}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import (
    ValidationError,
)

from controller import signals as sig
from controller.config_models import (
    API_VERSION,
    AZURE_PROMETHEUS_SCOPE,
    DEFAULT_GROUP_BY,
    DEFAULT_INTERVAL_S,
    DEFAULT_PERMANENT_ERROR_RETRY_S,
    DEFAULT_STALENESS_S,
    MAX_INTERVAL_S,
    MAX_STALENESS_S,
    MIN_INTERVAL_S,
    AciTarget,
    ActivationConfig,
    AnyRegistrar,
    AppGatewayRegistrarConfig,
    Auth,
    AzureManagedPrometheusAuth,
    BasicAuth,
    BearerAuth,
    Config,
    Defaults,
    DnsLabel,
    DnsSubdomain,
    FileRegistrarConfig,
    HttpRegistrarConfig,
    KubernetesTarget,
    LabelName,
    Loc,
    LocalRegistrar,
    LocalTarget,
    Model,
    NoAuth,
    PolicySpec,
    PrometheusConfig,
    PromQL,
    QueryConfig,
    RegistrarConfig,
    ScaleTarget,
    SignalName,
    SignalsConfig,
    TargetConfig,
    json_schema,
    with_defaults,
)
from policies import Autoscaler, SpecError, autoscaler, yaml_input
from policies.problems import Positions, Problem, locate, parse_path, problems, render_path
from policies.text import one_line

__all__ = [
    "API_VERSION",
    "AZURE_PROMETHEUS_SCOPE",
    "DEFAULT_GROUP_BY",
    "DEFAULT_INTERVAL_S",
    "DEFAULT_PERMANENT_ERROR_RETRY_S",
    "DEFAULT_STALENESS_S",
    "MAX_INTERVAL_S",
    "MAX_STALENESS_S",
    "MIN_INTERVAL_S",
    "AciTarget",
    "ActivationConfig",
    "AnyRegistrar",
    "AppGatewayRegistrarConfig",
    "Auth",
    "AzureManagedPrometheusAuth",
    "BasicAuth",
    "BearerAuth",
    "Config",
    "ConfigError",
    "Defaults",
    "DnsLabel",
    "DnsSubdomain",
    "FileRegistrarConfig",
    "HttpRegistrarConfig",
    "KubernetesTarget",
    "LabelName",
    "Loc",
    "LocalRegistrar",
    "LocalTarget",
    "Model",
    "NoAuth",
    "PolicySpec",
    "Problem",
    "PromQL",
    "PrometheusConfig",
    "QueryConfig",
    "RegistrarConfig",
    "ScaleTarget",
    "SignalName",
    "SignalsConfig",
    "TargetConfig",
    "check_config",
    "json_schema",
    "load_config",
    "render_path",
    "validate_config",
    "with_defaults",
]


# --- problems: one line each, from `policies.problems` -------------------------------------

# advice beside "unknown key" for a secret written into the file
_SECRET_HINT = "keep secrets out of this file: use token_file or token_env"
_HINTS = dict.fromkeys(("token", "password", "secret", "client_secret"), _SECRET_HINT)


class ConfigError(ValueError):
    """A config that cannot be used; `problems` lists every one."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


# --- checks pydantic cannot make -------------------------------------------------------------


def _policy_problems(
    spec: Mapping[str, Any], loc: Loc
) -> tuple[list[tuple[Loc, str]], Autoscaler | None]:
    """Build the autoscaler; SpecError problems land under `loc` (targets[i].policy.<key>)."""
    try:
        return [], autoscaler(spec)
    except SpecError as error:
        out = []
        for path, message in error.problems:
            key = parse_path(path) if path else (("policy",) if error.where == "policy" else ())
            out.append(((*loc, *key), message))
        return out, None
    except Exception as error:  # a third-party policy's bug must not hide the other problems
        text = one_line(error, 200)
        return [(loc, f"cannot build the policy: {type(error).__name__}: {text}")], None


def _template_problems(target: TargetConfig, loc: Loc) -> list[tuple[Loc, str]]:
    out: list[tuple[Loc, str]] = []
    variables = set(target.variables())
    known = variables | {"group_by", "selector"}
    texts: list[tuple[Loc, str | None]] = []
    for name, q in target.signals.queries.items():
        texts += [((*loc, "signals", "queries", name, "query"), q.query)]
        texts += [((*loc, "signals", "queries", name, "freshness"), q.freshness)]
    if target.activation is not None:
        texts += [((*loc, "activation", "query"), target.activation.query)]
        texts += [((*loc, "activation", "freshness"), target.activation.freshness)]
    selector = ((*loc, "signals", "selector"), target.signals.selector)
    for (where, text), allowed in [(selector, variables), *((t, known) for t in texts)]:
        unknown = sorted(sig.placeholders(text or "") - allowed)
        if unknown:
            shown = ", ".join("{" + u + "}" for u in unknown)
            out.append((where, f"unknown placeholder {shown}; known: {', '.join(sorted(allowed))}"))
    groups = [((*loc, "signals", "group_by"), target.signals.group_by)]
    if target.activation is not None:
        groups.append(((*loc, "activation", "group_by"), target.activation.group_by))
    for where, group_by in groups:
        try:
            target.match(group_by)
        except sig.TemplateError as error:
            out.append((where, str(error)))
    return out


def _signal_problems(
    target: TargetConfig, loc: Loc, built: Sequence[Autoscaler]
) -> list[tuple[Loc, str]]:
    given = set(target.signals.templates())
    out = []
    for a in built:
        missing = sorted(set(a.policy.required_signals) - given)
        if missing:
            have = ", ".join(sig.signal_names(given)) or "none"
            out.append(
                (
                    (*loc, "signals"),
                    f"policy {a.name!r} requires {', '.join(missing)}, which no query gives "
                    f"(given: {have}); add it under signals.queries or choose a preset with it",
                )
            )
    return out


def _policies_of(raw: Mapping[str, Any], loc: Loc) -> tuple[list[tuple[Loc, str]], list[Any]]:
    """Problems of the target's policy and shadow specs, and the autoscalers that built."""
    out: list[tuple[Loc, str]] = []
    built: list[Autoscaler] = []
    specs: list[tuple[Loc, Any]] = [((*loc, "policy"), raw.get("policy"))]
    shadow = raw.get("shadow")
    if isinstance(shadow, list):
        specs += [((*loc, "shadow", j), spec) for j, spec in enumerate(shadow)]
    for where, spec in specs:
        if isinstance(spec, Mapping):  # anything else is a shape error pydantic reports
            problems, a = _policy_problems(spec, where)
            out += problems
            built += [a] if a is not None else []
    return out, built


def _scale_key(target: TargetConfig) -> str:
    st = target.scale_target
    if isinstance(st, KubernetesTarget):
        return f"{st.kind} {st.namespace}/{st.name}"
    if isinstance(st, AciTarget):
        return f"aci {st.resource_group}/{st.name_prefix}-*"
    return f"local {target.name}"


def _duplicate_problems(targets: Sequence[tuple[int, TargetConfig]]) -> list[tuple[Loc, str]]:
    out: list[tuple[Loc, str]] = []
    names: dict[str, int] = {}
    scaled: dict[str, int] = {}
    for i, target in targets:
        if target.name in names:
            out.append((("targets", i, "name"), f"duplicate of targets[{names[target.name]}].name"))
        key = _scale_key(target)
        if key in scaled:
            message = f"{key} is already scaled by targets[{scaled[key]}]; two targets would fight"
            out.append((("targets", i, "scale_target"), message))
        names.setdefault(target.name, i)
        scaled.setdefault(key, i)
    return out


def _semantic_problems(data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    """What pydantic cannot check, for every target, whatever else is wrong in the file."""
    raw_targets = with_defaults(data).get("targets")
    if not isinstance(raw_targets, list):
        return []
    out: list[tuple[Loc, str]] = []
    valid: list[tuple[int, TargetConfig]] = []
    for i, raw in enumerate(raw_targets):
        if not isinstance(raw, Mapping):
            continue
        loc: Loc = ("targets", i)
        problems, built = _policies_of(raw, loc)
        out += problems
        try:
            target = TargetConfig.model_validate(raw)
        except ValidationError:
            continue  # its shape errors come from validating the whole Config
        out += _template_problems(target, loc) + _signal_problems(target, loc, built)
        valid.append((i, target))
    return out + _duplicate_problems(valid)


# --- loading ---------------------------------------------------------------------------------


def _read_yaml(path: Path, source: str) -> tuple[Any, Positions, list[Problem]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        return None, Positions(), [Problem(source, "", f"cannot read the file: {reason}")]
    try:
        data, node = yaml_input.load(text)
    except yaml_input.YamlInputError as error:
        return None, Positions(), [Problem(source, "", error.message, error.line, error.column)]
    marks, dupes = yaml_input.positions(node)
    return data, marks, [locate(source, marks, loc, msg, at_key=True) for loc, msg in dupes]


def check_config(path: str | Path) -> tuple[Config | None, list[Problem]]:
    """The config and every problem with it (the config is None when there are any)."""
    path = Path(path)
    source = str(path)
    data, marks, found = _read_yaml(path, source)
    if found and data is None:
        return None, found
    if not isinstance(data, Mapping):
        kind = "an empty file" if data is None else f"a {type(data).__name__}"
        message = f"expected a mapping with apiVersion: {API_VERSION} (got {kind})"
        return None, [*found, Problem(source, "", message, 1, 1)]
    config: Config | None = None
    try:
        config = Config.model_validate(data)
    except ValidationError as error:
        found += problems(error, Config, source, marks, hints=_HINTS)
    for loc, message in _semantic_problems(data):
        found.append(locate(source, marks, loc, message, message.startswith("unknown key")))
    if found:
        return None, sorted(found, key=lambda p: (p.line or 0, p.column or 0))
    return config, []


def validate_config(path: str | Path) -> list[Problem]:
    """Every problem in the file at once, one line each; [] when it can be used."""
    return check_config(path)[1]


def load_config(path: str | Path) -> Config:
    """The validated config, or ConfigError listing every problem."""
    config, problems = check_config(path)
    if config is None:
        raise ConfigError(problems)
    return config
