"""The controller config's shape: pydantic models, their field types and ranges, defaults.

In: the parsed YAML mapping. Out: a frozen `Config` (unknown keys are errors everywhere; every
number has a finite range; NaN and infinities are refused). `controller/config.py` loads a
file, turns pydantic's errors into one line per problem with its line and column, and runs the
checks pydantic cannot make (policies build, queries fill, required signals are given).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from controller import signals as sig
from policies.observation import SIGNALS, is_signal_name

API_VERSION = "replicast/v1"
AZURE_PROMETHEUS_SCOPE = "https://prometheus.monitor.azure.com/.default"
DEFAULT_INTERVAL_S = 15.0
DEFAULT_STALENESS_S = 60.0
DEFAULT_GROUP_BY: tuple[str, ...] = ("namespace", "name")
DEFAULT_PERMANENT_ERROR_RETRY_S = 300.0
# Every number in the file has a finite range (NaN and infinities are refused everywhere):
# 0.1 s fits a time-compressed sandbox and a soak at 0.5 s; an hour is the slowest useful loop.
MIN_INTERVAL_S, MAX_INTERVAL_S = 0.1, 3600.0
MAX_STALENESS_S = 86_400.0

Loc = tuple[str | int, ...]

# --- field types with messages a person can act on -------------------------------------------

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_TARGET_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESOURCE_GROUP = re.compile(r"^[-\w.()]{1,90}$")


def _dns_label(value: str) -> str:
    if len(value) > 63 or not _DNS_LABEL.match(value):
        raise ValueError(
            "must be a Kubernetes namespace: at most 63 lowercase letters, digits and '-', "
            f"starting and ending with a letter or digit (got {value!r})"
        )
    return value


def _dns_subdomain(value: str) -> str:
    if len(value) > 253 or not _DNS_SUBDOMAIN.match(value):
        raise ValueError(
            "must be a Kubernetes object name: lowercase letters, digits, '-' and '.', "
            f"starting and ending with a letter or digit (got {value!r})"
        )
    return value


def _target_name(value: str) -> str:
    if not _TARGET_NAME.match(value):
        raise ValueError(
            "must be 1-63 letters, digits, '.', '_' or '-', starting and ending with a letter "
            f"or digit (got {value!r})"
        )
    return value


def _label_name(value: str) -> str:
    if not _LABEL_NAME.match(value):
        raise ValueError(
            f"must be a Prometheus label name such as namespace or model_name (got {value!r})"
        )
    return value


def _signal_name(value: str) -> str:
    if not is_signal_name(value):
        raise ValueError(
            f"not an Observation signal: use one of {', '.join(SIGNALS)} or extra.<name> "
            f"(got {value!r})"
        )
    return value


def _url(value: str) -> str:
    try:
        parts = urllib.parse.urlsplit(value)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        parts, port_ok = urllib.parse.urlsplit(""), False
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "must not hold a user or password (they would be logged with the URL and sent "
            "beside any auth header); drop them and use auth: {type: basic, username: ..., "
            "password_file: ...} or {type: bearer, token_file: ...}"
        )
    if parts.scheme not in {"http", "https"} or not parts.hostname or parts.query or not port_ok:
        raise ValueError(
            "must be an http:// or https:// base URL such as "
            f"http://prometheus.monitoring:9090 (got {value!r})"
        )
    return value.rstrip("/")


def _resource_group(value: str) -> str:
    if not _RESOURCE_GROUP.match(value) or value.endswith("."):
        raise ValueError(
            "must be an Azure resource group name: 1-90 letters, digits, '_', '-', '.', "
            f"'(' or ')', not ending in '.' (got {value!r})"
        )
    return value


def _non_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


DnsLabel = Annotated[str, AfterValidator(_dns_label)]
DnsSubdomain = Annotated[str, AfterValidator(_dns_subdomain)]
LabelName = Annotated[str, AfterValidator(_label_name)]
SignalName = Annotated[str, AfterValidator(_signal_name)]
PromQL = Annotated[str, AfterValidator(_non_blank)]


class Model(BaseModel):
    """Frozen; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# --- prometheus ------------------------------------------------------------------------------


class NoAuth(Model):
    type: Literal["none"] = "none"


class BearerAuth(Model):
    """A bearer token read at request time, never written in this file."""

    type: Literal["bearer"]
    token_file: str | None = Field(None, description="re-read when it changes (a mounted Secret)")
    token_env: str | None = Field(None, description="name of an environment variable")

    @model_validator(mode="after")
    def _one_source(self) -> BearerAuth:
        if (self.token_file is None) == (self.token_env is None):
            raise ValueError("set exactly one of token_file or token_env")
        return self


class BasicAuth(Model):
    """HTTP basic auth (a reverse proxy in front of Prometheus); the password is never here."""

    type: Literal["basic"]
    username: Annotated[str, AfterValidator(_non_blank)]
    password_file: str | None = Field(None, description="re-read when it changes (a Secret)")
    password_env: str | None = Field(None, description="name of an environment variable")

    @model_validator(mode="after")
    def _one_source(self) -> BasicAuth:
        if (self.password_file is None) == (self.password_env is None):
            raise ValueError("set exactly one of password_file or password_env")
        if ":" in self.username:
            raise ValueError(f"username: must not contain ':' (got {self.username!r})")
        return self


class AzureManagedPrometheusAuth(Model):
    """Entra ID tokens from azure-identity (DefaultAzureCredential: workload/managed identity)."""

    type: Literal["azure_managed_prometheus"]
    scope: str = AZURE_PROMETHEUS_SCOPE
    managed_identity_client_id: str | None = None


Auth = Annotated[
    NoAuth | BearerAuth | BasicAuth | AzureManagedPrometheusAuth, Field(discriminator="type")
]


class PrometheusConfig(Model):
    url: Annotated[str, AfterValidator(_url)] = Field(
        description="base URL; /api/v1/query is appended (Azure: the workspace query endpoint)"
    )
    timeout_s: float = Field(5.0, gt=0, le=300)
    max_concurrency: int = Field(8, ge=1, le=256)
    method: Literal["GET", "POST"] = "POST"
    auth: Auth = Field(default_factory=NoAuth)

    @model_validator(mode="after")
    def _azure_needs_https(self) -> PrometheusConfig:
        if isinstance(self.auth, AzureManagedPrometheusAuth) and not self.url.startswith(
            "https://"
        ):
            raise ValueError(
                f"azure_managed_prometheus needs an https:// query endpoint (got {self.url!r})"
            )
        return self


# --- what to scale ---------------------------------------------------------------------------


class KubernetesTarget(Model):
    kind: Literal["Deployment", "StatefulSet"]
    namespace: DnsLabel
    name: DnsSubdomain


def _container_group(value: dict[str, Any]) -> dict[str, Any]:
    containers = value.get("properties", {}).get("containers") if value else None
    if not isinstance(containers, list) or not containers:
        raise ValueError(
            "must be a container group body with properties.containers: [...] "
            "(the ARM Microsoft.ContainerInstance/containerGroups resource)"
        )
    return value


class FileRegistrarConfig(Model):
    """The routed replicas as {"backends": [{"name", "address"}]} in a file a router watches."""

    type: Literal["file"]
    path: Annotated[str, AfterValidator(_non_blank)]


class HttpRegistrarConfig(Model):
    """A custom router's JSON API: GET/POST {url}, DELETE {url}/{name}."""

    type: Literal["http"]
    url: Annotated[str, AfterValidator(_url)]
    timeout_s: float = Field(5.0, gt=0, le=300)


class AppGatewayRegistrarConfig(Model):
    """One backend pool of an Azure Application Gateway (ACI targets only), through ARM."""

    type: Literal["app_gateway"]
    subscription_id: str | None = Field(None, description="default: the target's subscription")
    resource_group: Annotated[str, AfterValidator(_resource_group)]
    gateway: Annotated[str, AfterValidator(_non_blank)]
    backend_pool: Annotated[str, AfterValidator(_non_blank)]


LocalRegistrar = Annotated[FileRegistrarConfig | HttpRegistrarConfig, Field(discriminator="type")]
RegistrarConfig = FileRegistrarConfig | HttpRegistrarConfig | AppGatewayRegistrarConfig
AnyRegistrar = Annotated[
    FileRegistrarConfig | HttpRegistrarConfig | AppGatewayRegistrarConfig,
    Field(discriminator="type"),
]


class AciTarget(Model):
    """Azure Container Instances: one container group per replica, made from `template`."""

    kind: Literal["aci"]
    subscription_id: str | None = Field(None, description="default: AZURE_SUBSCRIPTION_ID")
    resource_group: Annotated[str, AfterValidator(_resource_group)]
    name_prefix: DnsLabel = Field(max_length=56)
    location: str | None = None
    template: Annotated[dict[str, Any], AfterValidator(_container_group)]
    registrar: AnyRegistrar | None = Field(
        None, description="who routes traffic to the ready groups (none: the groups' own IPs)"
    )


class LocalTarget(Model):
    """Replica processes on this machine (sandbox, end-to-end tests)."""

    kind: Literal["local"]
    command: list[str] = Field(min_length=1)
    env: dict[str, str] = Field(default_factory=dict)
    workdir: str | None = None
    base_port: int = Field(
        ge=1024, le=65535, description="replica i listens on 127.0.0.1:(base_port + i)"
    )
    registrar: LocalRegistrar | None = Field(
        None, description="a router to tell which replicas are ready (the sandbox's router)"
    )
    replicas: int = Field(
        0,
        ge=0,
        le=1000,
        description="replicas started when the controller starts (a Deployment's spec.replicas)",
    )


ScaleTarget = Annotated[KubernetesTarget | AciTarget | LocalTarget, Field(discriminator="kind")]


# --- signals ---------------------------------------------------------------------------------


def _query_shorthand(value: Any) -> Any:
    return {"query": value} if isinstance(value, str) else value


class QueryConfig(Model):
    """A PromQL template (a plain string is shorthand for {query: ...})."""

    query: PromQL
    freshness: PromQL | None = Field(
        None, description="PromQL giving the newest raw sample time per group (staleness)"
    )


class SignalsConfig(Model):
    preset: Literal["vllm", "triton", "http"] | None = None
    selector: str = Field("", description='extra label matchers, e.g. namespace="{namespace}"')
    group_by: list[LabelName] = Field(default_factory=lambda: list(DEFAULT_GROUP_BY))
    queries: dict[
        Annotated[str, AfterValidator(_signal_name)],
        Annotated[
            QueryConfig,
            BeforeValidator(_query_shorthand, json_schema_input_type=str | QueryConfig),
        ],
    ] = Field(default_factory=dict)

    def templates(self) -> dict[str, sig.SignalQuery]:
        out = dict(sig.PRESETS[self.preset]) if self.preset else {}
        out.update({k: sig.SignalQuery(q.query, q.freshness) for k, q in self.queries.items()})
        return out


class ActivationConfig(Model):
    """The signal read at 0 replicas, when the target itself exports nothing (a gateway's)."""

    signal: SignalName = "request_rate_rps"
    query: PromQL
    freshness: PromQL | None = None
    group_by: list[LabelName] = Field(default_factory=list)


# --- targets ---------------------------------------------------------------------------------


PolicySpec = Annotated[
    dict[str, Any],
    Field(
        json_schema_extra={
            "required": ["policy"],
            "description": "a policies.autoscaler spec",
            "examples": [{"policy": "hpa", "metric": "in_flight", "target_per_replica": 8}],
        }
    ),
]


class TargetConfig(Model):
    name: Annotated[str, AfterValidator(_target_name)]
    scale_target: ScaleTarget
    labels: dict[LabelName, str] = Field(
        default_factory=dict, description="values of the group labels for this target's series"
    )
    signals: SignalsConfig = Field(default_factory=SignalsConfig)
    policy: PolicySpec
    shadow: list[PolicySpec] = Field(default_factory=list)
    activation: ActivationConfig | None = None
    interval_s: float = Field(
        DEFAULT_INTERVAL_S, ge=MIN_INTERVAL_S, le=MAX_INTERVAL_S, description="default: defaults"
    )
    staleness_s: float = Field(
        DEFAULT_STALENESS_S, gt=0, le=MAX_STALENESS_S, description="default: defaults"
    )
    dry_run: bool = False

    @model_validator(mode="after")
    def _staleness_covers_interval(self) -> TargetConfig:
        _check_staleness(self.interval_s, self.staleness_s)
        return self

    def variables(self) -> dict[str, str]:
        """Template values: target, namespace and name (from scale_target), then labels."""
        out = {"target": self.name, "name": self.name}
        if isinstance(self.scale_target, KubernetesTarget):
            out |= {"namespace": self.scale_target.namespace, "name": self.scale_target.name}
        return out | dict(self.labels)

    def match(self, group_by: Sequence[str]) -> tuple[tuple[str, str], ...]:
        """The label values that pick this target's series out of a grouped result."""
        variables = self.variables()
        missing = [g for g in group_by if g not in variables]
        if missing:
            raise sig.TemplateError(
                f"no value for group label {', '.join(map(repr, missing))}; "
                f"add labels: {{{missing[0]}: ...}}"
            )
        return tuple((g, variables[g]) for g in group_by)

    def _filled(self, q: sig.SignalQuery, group_by: Sequence[str]) -> sig.FilledQuery:
        variables = self.variables()
        variables["selector"] = sig.fill(self.signals.selector, variables)
        variables["group_by"] = ", ".join(group_by)
        freshness = sig.fill(q.freshness, variables) if q.freshness else None
        return sig.FilledQuery(sig.fill(q.query, variables), freshness, self.match(group_by))

    def signal_queries(self) -> sig.TargetQueries:
        """Filled queries per signal (and the activation one); raises TemplateError."""
        group_by = self.signals.group_by
        queries = {k: self._filled(q, group_by) for k, q in self.signals.templates().items()}
        if self.activation is not None:
            a = self.activation
            queries[sig.ACTIVATION] = self._filled(
                sig.SignalQuery(a.query, a.freshness), a.group_by
            )
        return sig.TargetQueries(self.name, self.staleness_s, queries)


def _check_staleness(interval_s: float, staleness_s: float) -> None:
    if staleness_s < interval_s:
        raise ValueError(
            "staleness_s must be >= interval_s: data older than one interval is what a tick "
            f"must be able to call stale (got staleness_s {staleness_s:g}, interval_s "
            f"{interval_s:g})"
        )


class Defaults(Model):
    interval_s: float = Field(DEFAULT_INTERVAL_S, ge=MIN_INTERVAL_S, le=MAX_INTERVAL_S)
    staleness_s: float = Field(DEFAULT_STALENESS_S, gt=0, le=MAX_STALENESS_S)
    dry_run: bool = False
    group_by: list[LabelName] = Field(default_factory=lambda: list(DEFAULT_GROUP_BY))
    permanent_error_retry_s: float = Field(
        DEFAULT_PERMANENT_ERROR_RETRY_S,
        ge=1,
        le=86_400,
        description="how often a target halted by a permanent error (403, 404) is tried again",
    )

    @model_validator(mode="after")
    def _staleness_covers_interval(self) -> Defaults:
        _check_staleness(self.interval_s, self.staleness_s)
        return self


class Config(Model):
    api_version: Literal["replicast/v1"] = Field(alias="apiVersion")
    prometheus: PrometheusConfig
    defaults: Defaults = Field(default_factory=Defaults)
    targets: list[TargetConfig] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _inherit_defaults(cls, data: Any) -> Any:
        return with_defaults(data)


def with_defaults(data: Any) -> Any:
    """Targets take interval_s, staleness_s, dry_run and group_by from valid defaults."""
    if not isinstance(data, Mapping) or not isinstance(data.get("targets"), list):
        return data
    try:
        defaults = Defaults.model_validate(data.get("defaults") or {})
    except ValidationError:
        return data  # reported under defaults.*; do not repeat it for every target
    return {**data, "targets": [_inherit(t, defaults) for t in data["targets"]]}


def _inherit(target: Any, defaults: Defaults) -> Any:
    if not isinstance(target, Mapping):
        return target
    out = dict(target)
    for key in ("interval_s", "staleness_s", "dry_run"):
        out.setdefault(key, getattr(defaults, key))
    signals = out.get("signals", {})
    if isinstance(signals, Mapping) and "group_by" not in signals:
        out["signals"] = {**signals, "group_by": list(defaults.group_by)}
    return out


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the file, for editors (`replicast schema`)."""
    schema = Config.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
