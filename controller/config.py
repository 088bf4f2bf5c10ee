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

import re
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
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
from policies.spec import TYPE_MESSAGES
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


# --- problems --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a config file, printed on one line."""

    file: str
    path: str
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(ValueError):
    """A config that cannot be used; `problems` lists every one."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


_PLAIN_KEY = re.compile(r"[\w-]+")


def render_path(loc: Loc) -> str:
    """("targets", 0, "policy") -> targets[0].policy; an odd key is quoted: prometheus['a b']."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _PLAIN_KEY.fullmatch(str(part)):
            out += f"[{str(part)!r}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _parse_path(text: str) -> Loc:
    """`metrics[0].target_per_replica` -> ("metrics", 0, "target_per_replica")."""
    out: list[str | int] = []
    for token in re.findall(r"\[(\d+)\]|([^.\[\]]+)", text):
        out.append(int(token[0]) if token[0] else token[1])
    return tuple(out)


@dataclass(frozen=True, slots=True)
class _Marks:
    """Line and column (1-based) of every value and every key in the YAML document."""

    values: dict[Loc, tuple[int, int]]
    keys: dict[Loc, tuple[int, int]]

    def find(self, loc: Loc, at_key: bool = False) -> tuple[int, int] | None:
        if at_key and loc in self.keys:
            return self.keys[loc]
        for end in range(len(loc), -1, -1):
            if loc[:end] in self.values:
                return self.values[loc[:end]]
        return None


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _walk_nodes(node: yaml.Node, loc: Loc, marks: _Marks, dupes: list[tuple[Loc, str]]) -> None:
    if len(loc) > 64:  # a recursive YAML alias; the loader reports what it can
        return
    marks.values[loc] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            name = str(key.value)
            if name in seen:
                dupes.append(((*loc, name), f"duplicate key (first on line {seen[name]})"))
            seen.setdefault(name, _mark(key)[0])
            marks.keys[(*loc, name)] = _mark(key)
            _walk_nodes(value, (*loc, name), marks, dupes)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk_nodes(item, (*loc, i), marks, dupes)


# --- pydantic errors -> problems -------------------------------------------------------------


def _strip(annotation: Any) -> Any:
    """Annotated[X, ...] -> X; X | None -> X (unions of several models stay unions)."""
    for _ in range(5):
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation
    return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _union_models(annotation: Any) -> list[type[BaseModel]]:
    if get_origin(annotation) not in (Union, types.UnionType):
        return []
    return [a for a in get_args(annotation) if _is_model(a)]


def _tags(model: type[BaseModel]) -> tuple[str, ...]:
    for name in ("kind", "type"):
        field = model.model_fields.get(name)
        if field is not None and get_origin(field.annotation) is Literal:
            return tuple(str(a) for a in get_args(field.annotation))
    return ()


def _field(model: type[BaseModel], key: str | int) -> Any:
    for name, field in model.model_fields.items():
        if key in (name, field.alias):
            return field.annotation
    return None


def _walk_loc(loc: Sequence[str | int]) -> tuple[Loc, Any]:
    """pydantic's loc -> (the path as the user wrote it, the type found there)."""
    current: Any = Config
    out: list[str | int] = []
    for part in loc:
        if isinstance(part, str) and (part.startswith("function-") or part == "[key]"):
            continue
        current = _strip(current)
        chosen = [m for m in _union_models(current) if part in _tags(m)]
        if chosen:  # the discriminator's tag, which pydantic adds to the loc
            current = chosen[0]
            continue
        out.append(part)
        if _is_model(current):
            current = _field(current, part)
        elif get_origin(current) is list:
            current = get_args(current)[0]
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        else:
            current = None
    return tuple(out), _strip(current)


def _allowed_keys(model: Any) -> str:
    if not _is_model(model):
        return ""
    keys = sorted(f.alias or name for name, f in model.model_fields.items())
    return f"; allowed: {', '.join(keys)}"


def _got(value: Any) -> str:
    text = repr(value)
    return f" (got {text if len(text) <= 60 else text[:57] + '...'})"


_MESSAGES = TYPE_MESSAGES


def _message(err: Mapping[str, Any], holder: Any, here: Any) -> str:
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    if kind == "extra_forbidden":
        secret = err["loc"][-1] in {"token", "password", "secret", "client_secret"}
        hint = "; keep secrets out of this file: use token_file or token_env" if secret else ""
        return f"unknown key{_allowed_keys(holder)}{hint}"
    if kind == "missing":
        return _MESSAGES[kind]
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tags = ", ".join(repr(t) for m in _union_models(here) for t in _tags(m))
        key = str(ctx.get("discriminator", "kind")).strip("'")
        got = _got(ctx["tag"]) if "tag" in ctx else ""
        return f"{key} must be one of {tags}{got}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}{_got(value)}"
    bounds = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<"}
    bounds |= {"less_than_equal": "<="}
    if kind in bounds:
        limit = next(iter(ctx.values()))
        return f"must be {bounds[kind]} {limit:g}{_got(value)}"
    if kind in ("too_short", "too_long"):
        word = "at least" if kind == "too_short" else "at most"
        size = ctx.get("min_length", ctx.get("max_length"))
        return f"must have {word} {size} item(s) or character(s){_got(value)}"
    if kind in _MESSAGES:
        return _MESSAGES[kind] + _got(value)
    msg = str(err["msg"]).removeprefix("Value error, ")
    msg = msg[:1].lower() + msg[1:]
    return msg if "(got " in msg else msg + _got(value)


def _pydantic_problems(error: ValidationError) -> list[tuple[Loc, str, bool]]:
    out = []
    for err in error.errors():
        loc, here = _walk_loc(err["loc"])
        _, holder = _walk_loc(err["loc"][:-1])
        out.append((loc, _message(err, holder, here), err["type"] == "extra_forbidden"))
    return out


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
            key = _parse_path(path) if path else (("policy",) if error.where == "policy" else ())
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


def _read_yaml(path: Path, source: str) -> tuple[Any, _Marks, list[Problem]]:
    marks = _Marks({}, {})
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        return None, marks, [Problem(source, "", f"cannot read the file: {reason}")]
    try:
        data, node = yaml_input.load(text)
    except yaml_input.YamlInputError as error:
        return None, marks, [Problem(source, "", error.message, error.line, error.column)]
    dupes: list[tuple[Loc, str]] = []
    if node is not None:
        _walk_nodes(node, (), marks, dupes)
    problems = [_problem(source, marks, loc, msg, at_key=True) for loc, msg in dupes]
    return data, marks, problems


def _problem(source: str, marks: _Marks, loc: Loc, message: str, at_key: bool = False) -> Problem:
    found = marks.find(loc, at_key)
    line, column = found if found else (None, None)
    return Problem(source, render_path(loc), message, line, column)


def check_config(path: str | Path) -> tuple[Config | None, list[Problem]]:
    """The config and every problem with it (the config is None when there are any)."""
    path = Path(path)
    source = str(path)
    data, marks, problems = _read_yaml(path, source)
    if problems and data is None:
        return None, problems
    if not isinstance(data, Mapping):
        kind = "an empty file" if data is None else f"a {type(data).__name__}"
        message = f"expected a mapping with apiVersion: {API_VERSION} (got {kind})"
        return None, [*problems, Problem(source, "", message, 1, 1)]
    config: Config | None = None
    try:
        config = Config.model_validate(data)
    except ValidationError as error:
        for loc, message, at_key in _pydantic_problems(error):
            problems.append(_problem(source, marks, loc, message, at_key))
    for loc, message in _semantic_problems(data):
        problems.append(_problem(source, marks, loc, message, message.startswith("unknown key")))
    if problems:
        return None, sorted(problems, key=lambda p: (p.line or 0, p.column or 0))
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
