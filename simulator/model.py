"""The replica model: what one replica of the scaled service is, for the simulator.

In: a spec mapping (from YAML, JSON or a notebook; snake_case keys with units, unknown keys are
errors) or a named preset. Out: a frozen `ReplicaModel` bundling concurrency slots, a service
time model (`simulator.service`), a cold-start model (`simulator.startup`), request timeout and
queue limit, and the SKU/platform its replica-seconds are priced at (`simulator.cost`). The
engine draws `service_s` per arrival chunk and `startup_delay_s` per replica from it and hands
them, with the `KernelOptions` of `for_kernel()`, to `simulator.kernel.new_state`.

    model = ReplicaModel.from_spec({
        "slots_per_replica": 8,
        "service": {"kind": "exponential", "mean_s": 2.0},
        "startup": {"platform": "aks-warm-node"},
        "sku": "Standard_NC24ads_A100_v4", "platform": "aks",
    })

Service kinds: fixed (service_s), exponential (mean_s), lognormal and gamma (mean_s, cv),
empirical (values_s), llm_tokens (perf: a `TOKEN_PERF` name; batch_size, default
slots_per_replica; overhead_s; any `TokenPerf` coefficient to override). Startup: fixed_s, or a
platform (aks-warm-node, aks-new-gpu-node, aci) with optional provisioning / image_pull /
model_load parts given as {median_s, p95_s}. A spec may start from a preset (`"preset":
"gpu-llm"`) and replace its top-level keys. Errors name the key path, e.g.
`replica model: service.mean_s: must be > 0 (got -1)`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from policies.spec import SpecError, StrictModel, parse
from simulator.cost import PriceError, PriceTable, cost_usd, default_prices
from simulator.kernel_options import KernelOptions
from simulator.profiles import Arrivals
from simulator.service import (
    TOKEN_PERF,
    Empirical,
    Exponential,
    Fixed,
    FloatArray,
    Gamma,
    Lognormal,
    ModelError,
    ServiceModel,
    TokenPerf,
    TokenService,
)
from simulator.startup import FixedStartup, LognormalPart, StartupModel, platform_startup

__all__ = ["PRESETS", "ModelError", "ReplicaModel", "SpecError"]

WHERE = "replica model"


@dataclass(frozen=True, slots=True)
class ReplicaModel:
    """One replica: `slots_per_replica` concurrent requests, each holding a slot for a drawn
    service time; ready a drawn startup delay after creation; priced as `sku` on `platform`.

    `timeout_s` drops a request still queued that long after arriving; `queue_limit` drops an
    arrival that finds that many queued (None: no limit), exactly as `simulator.kernel` does.
    `prices` is the table `cost_usd` reads unless given another.
    """

    slots_per_replica: int
    service: ServiceModel
    startup: StartupModel
    timeout_s: float | None = None
    queue_limit: int | None = None
    sku: str | None = None
    platform: str | None = None
    prices: PriceTable | None = field(default=None, repr=False)  # None: the shipped examples

    def __post_init__(self) -> None:
        if self.slots_per_replica < 1:
            raise ModelError(f"slots_per_replica: must be >= 1 (got {self.slots_per_replica})")
        if self.timeout_s is not None and not self.timeout_s >= 0:
            raise ModelError(f"timeout_s: must be >= 0 or None (got {self.timeout_s})")
        if self.queue_limit is not None and self.queue_limit < 0:
            raise ModelError(f"queue_limit: must be >= 0 or None (got {self.queue_limit})")
        if (self.sku is None) != (self.platform is None):
            raise ModelError("sku, platform: give both (to price replicas) or neither")

    @property
    def needs_tokens(self) -> bool:
        """Whether service times come from each request's token counts (llm_tokens)."""
        return isinstance(self.service, TokenService)

    def draw_service_s(self, arrivals: Arrivals, rng: np.random.Generator) -> FloatArray:
        """One service time per arrival."""
        return self.service.draw(arrivals, rng)

    def draw_startup_delay_s(self, n_replicas: int, rng: np.random.Generator) -> FloatArray:
        """One startup delay per replica, in creation order."""
        return self.startup.draw(n_replicas, rng)

    def for_kernel(self) -> KernelOptions:
        """What this model decides of the kernel's queue: slots, timeout and queue limit."""
        return KernelOptions(
            slots_per_replica=self.slots_per_replica,
            timeout_s=self.timeout_s,
            queue_limit=self.queue_limit,
        )

    def kernel_options(self) -> dict[str, Any]:
        """`for_kernel()` as keyword arguments of `simulator.kernel.new_state`, for code that
        drives the kernel itself."""
        return self.for_kernel().keywords()

    def usd_per_hour(self, *, table: PriceTable | None = None) -> float:
        """The price of one replica-hour (`sku` on `platform` in `table`)."""
        return self.cost_usd(3600.0, table=table)

    def cost_usd(self, replica_seconds: float, *, table: PriceTable | None = None) -> float:
        """What `replica_seconds` of this replica cost."""
        if self.sku is None or self.platform is None:
            raise ModelError("cost: this replica model has no sku/platform; give both in the spec")
        table = table if table is not None else self.prices
        return cost_usd(replica_seconds, self.sku, self.platform, table=table)

    @classmethod
    def from_spec(
        cls,
        spec: Mapping[str, Any],
        *,
        token_perf: Mapping[str, TokenPerf] | None = None,
        prices: PriceTable | None = None,
    ) -> ReplicaModel:
        """Validate a spec (see the module docstring) into a model; raises `SpecError`.

        `token_perf` (default `TOKEN_PERF`) resolves llm_tokens' `perf`; `prices` (default the
        shipped example table) must price `sku` on `platform` when they are given.
        """
        if not isinstance(spec, Mapping):
            raise SpecError(WHERE, [("", f"must be a mapping (got {type(spec).__name__})")])
        top = parse(_ReplicaSpec, _with_preset(spec), WHERE)
        if (top.sku is None) != (top.platform is None):
            given, missing = ("sku", "platform") if top.platform is None else ("platform", "sku")
            problem = f"required with {given} (to price replicas; or give neither)"
            raise SpecError(WHERE, [(missing, problem)])
        token_perf = token_perf if token_perf is not None else TOKEN_PERF
        service = _service(top.service, top.slots_per_replica, token_perf)
        startup = parse(_StartupSpec, top.startup, WHERE, "startup").build()
        if top.sku is not None and top.platform is not None:
            try:
                (prices if prices is not None else default_prices()).price(top.sku, top.platform)
            except PriceError as error:
                raise SpecError(WHERE, [("sku", str(error))]) from None
        return cls(
            top.slots_per_replica,
            service,
            startup,
            top.timeout_s,
            top.queue_limit,
            top.sku,
            top.platform,
            prices,
        )

    @classmethod
    def preset(cls, name: str) -> ReplicaModel:
        """A named example model (`PRESETS`)."""
        return cls.from_spec({"preset": name})


# Example replica models; their startup and prices are examples too (see simulator.startup and
# simulator/data/prices.yaml). llama2-70b: 16 slots decode in a batch of 16 (the model's
# assumption, see `TokenService`): 48 ms per token on A100 TP4, 34 ms on H100 TP8.
PRESETS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "gpu-llm": {
            "slots_per_replica": 8,
            "service": {"kind": "exponential", "mean_s": 2.0},
            "startup": {"fixed_s": 120.0},
            "sku": "Standard_NC24ads_A100_v4",
            "platform": "aks",
        },
        "llama2-70b-a100": {
            "slots_per_replica": 16,
            "service": {"kind": "llm_tokens", "perf": "a100-tp4-llama2-70b"},
            "startup": {"platform": "aks-warm-node"},
            "sku": "Standard_NC96ads_A100_v4",  # 4x A100 80 GB: tensor parallel 4
            "platform": "aks",
        },
        "llama2-70b-h100": {
            "slots_per_replica": 16,
            "service": {"kind": "llm_tokens", "perf": "h100-tp8-llama2-70b"},
            "startup": {"platform": "aks-warm-node"},
            "sku": "Standard_ND96isr_H100_v5",  # 8x H100 80 GB: tensor parallel 8
            "platform": "aks",
        },
        "small-model-aci": {
            "slots_per_replica": 4,
            "service": {"kind": "lognormal", "mean_s": 0.2, "cv": 1.0},
            "startup": {"platform": "aci"},
            "sku": "aci-4vcpu-16gb",
            "platform": "aci",
        },
    }
)


def _with_preset(spec: Mapping[str, Any]) -> dict[str, Any]:
    data = dict(spec)
    name = data.pop("preset", None)
    if name is None:
        return data
    if name not in PRESETS:
        known = ", ".join(sorted(PRESETS))
        raise SpecError(WHERE, [("preset", f"unknown preset {name!r}; use one of {known}")])
    return {**PRESETS[name], **data}


# --------------------------------------------------------------------------- spec models


class _ReplicaSpec(StrictModel):
    slots_per_replica: int = Field(ge=1)
    service: dict[str, Any]
    startup: dict[str, Any]
    timeout_s: float | None = Field(default=None, ge=0)
    queue_limit: int | None = Field(default=None, ge=0)
    sku: str | None = Field(default=None, min_length=1)
    platform: str | None = Field(default=None, min_length=1)


class _Kind(StrictModel, extra="allow"):
    kind: Literal["fixed", "exponential", "lognormal", "gamma", "empirical", "llm_tokens"]


class _FixedSpec(StrictModel):
    kind: Literal["fixed"]
    service_s: float = Field(ge=0, allow_inf_nan=False)


class _ExponentialSpec(StrictModel):
    kind: Literal["exponential"]
    mean_s: float = Field(gt=0, allow_inf_nan=False)


class _MeanCVSpec(StrictModel):
    kind: Literal["lognormal", "gamma"]
    mean_s: float = Field(gt=0, allow_inf_nan=False)
    cv: float = Field(ge=0, allow_inf_nan=False)


class _EmpiricalSpec(StrictModel):
    kind: Literal["empirical"]
    values_s: list[Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(min_length=1)


class _TokensSpec(StrictModel):
    kind: Literal["llm_tokens"]
    perf: str
    batch_size: int | None = Field(default=None, ge=1)
    overhead_s: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    prefill_base_s: float | None = Field(default=None, ge=0)
    prefill_s_per_input_token: float | None = Field(default=None, ge=0)
    prefill_s_per_input_token_squared: float | None = Field(default=None, ge=0)
    decode_s_per_output_token: float | None = Field(default=None, ge=0)
    decode_growth_s_per_sequence: float | None = Field(default=None, ge=0)
    decode_growth_s_per_sequence_squared: float | None = Field(default=None, ge=0)
    max_batch_size: int | None = Field(default=None, ge=1)


_SERVICE_SPECS: dict[str, type[StrictModel]] = {
    "fixed": _FixedSpec,
    "exponential": _ExponentialSpec,
    "lognormal": _MeanCVSpec,
    "gamma": _MeanCVSpec,
    "empirical": _EmpiricalSpec,
    "llm_tokens": _TokensSpec,
}


def _service(
    data: dict[str, Any], slots_per_replica: int, token_perf: Mapping[str, TokenPerf]
) -> ServiceModel:
    kind = parse(_Kind, data, WHERE, "service").kind
    spec = parse(_SERVICE_SPECS[kind], data, WHERE, "service")
    if isinstance(spec, _FixedSpec):
        return Fixed(spec.service_s)
    if isinstance(spec, _ExponentialSpec):
        return Exponential(spec.mean_s)
    if isinstance(spec, _MeanCVSpec):
        return (Lognormal if kind == "lognormal" else Gamma)(spec.mean_s, spec.cv)
    if isinstance(spec, _EmpiricalSpec):
        return Empirical(np.asarray(spec.values_s, dtype=np.float64))
    assert isinstance(spec, _TokensSpec)
    return _token_service(spec, slots_per_replica, token_perf)


def _token_service(
    spec: _TokensSpec, slots_per_replica: int, token_perf: Mapping[str, TokenPerf]
) -> TokenService:
    if spec.perf not in token_perf:
        known = ", ".join(sorted(token_perf))
        raise SpecError(WHERE, [("service.perf", f"unknown {spec.perf!r}; use one of {known}")])
    overrides = {
        f.name: getattr(spec, f.name)
        for f in fields(TokenPerf)
        if f.name in _TokensSpec.model_fields and getattr(spec, f.name) is not None
    }
    perf = token_perf[spec.perf]
    if overrides:
        source = f"{perf.source}; overridden: {', '.join(sorted(overrides))}"
        perf = replace(perf, **overrides, source=source)
    batch = spec.batch_size if spec.batch_size is not None else slots_per_replica
    if batch > perf.max_batch_size:
        key = "service.batch_size" if spec.batch_size is not None else "slots_per_replica"
        problem = (
            f"decode batch {batch} is above {perf.max_batch_size}, the largest measured for "
            f"{spec.perf}; give a smaller service.batch_size (the assumed typical batch) or "
            "slots_per_replica"
        )
        raise SpecError(WHERE, [(key, problem)])
    return TokenService(perf, batch, spec.overhead_s, spec.perf)


class _PartSpec(StrictModel):
    median_s: float = Field(ge=0, allow_inf_nan=False)
    p95_s: float = Field(ge=0, allow_inf_nan=False)

    def part(self, key: str) -> LognormalPart:
        if self.p95_s < self.median_s or (self.median_s == 0 and self.p95_s > 0):
            problem = f"must be >= median_s, and 0 when median_s is 0 (got {self.p95_s:g})"
            raise SpecError(WHERE, [(f"startup.{key}.p95_s", problem)])
        return LognormalPart(self.median_s, self.p95_s)


class _StartupSpec(StrictModel):
    platform: Literal["aks-warm-node", "aks-new-gpu-node", "aci"] | None = None
    fixed_s: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    provisioning: _PartSpec | None = None
    image_pull: _PartSpec | None = None
    model_load: _PartSpec | None = None

    def build(self) -> StartupModel:
        parts = {"provisioning": self.provisioning, "image_pull": self.image_pull,
                 "model_load": self.model_load}  # fmt: skip
        if (self.platform is None) == (self.fixed_s is None):
            raise SpecError(WHERE, [("startup", "give exactly one of platform or fixed_s")])
        if self.fixed_s is not None:
            given = [key for key, part in parts.items() if part is not None]
            if given:
                raise SpecError(WHERE, [(f"startup.{given[0]}", "needs a platform, not fixed_s")])
            return FixedStartup(self.fixed_s)
        assert self.platform is not None
        built = {key: part.part(key) if part else None for key, part in parts.items()}
        return platform_startup(self.platform, **built)
