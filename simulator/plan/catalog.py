"""The SKU catalog: which Azure GPU VM sizes a plan may use, at what price, how fast they start.

In: a small YAML file the user edits (simulator/data/sku_catalog.yaml is the shipped example;
its prices are EXAMPLES, dated and regional), read through `policies.yaml_input` within its
limits. Out: a frozen `Catalog` -- `Sku`s (GPU type and count, GPU memory, vCPUs, memory, the
VM's `Prices` per hour, its node provisioning `TimeRange`, where burst capacity comes from) and
a `ModelInfo` per model (weights, the performance table's model name, model load time) -- or a
`CatalogError` listing every problem, one line each:

    my_catalog.yaml:14:12: skus[2].usd_per_hour.spot: must be > 0 (got -1)

Checks pydantic cannot make are made here too: a SKU name given twice, a reserved or spot price
above the pay-as-you-go one (and a 3-year reservation above the 1-year one), a model whose
weights fit no SKU (more than `WEIGHTS_SHARE` of the largest VM's GPU memory), and, when a
performance table is given, a model whose `perf_model` has no rows in it. A loaded catalog
keeps where each key stood, so later stages can point at the line too (`Catalog.locate`).
The next stage, `simulator.plan.candidates`, turns a catalog and a model into the deployments
a plan weighs.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, ValidationError, field_validator

from policies import yaml_input
from policies.problems import Loc, Positions, Problem, locate, problems
from policies.spec import MAX_WINDOW_S, StrictModel
from simulator.cost import iso_date
from simulator.service import TokenPerf
from simulator.startup import LognormalPart

__all__ = [
    "PRICINGS",
    "WEIGHTS_SHARE",
    "Catalog",
    "CatalogError",
    "ModelInfo",
    "Prices",
    "Sku",
    "TimeRange",
    "default_catalog",
    "fits_no_sku",
    "gpu_family",
    "load_catalog",
    "parse_catalog",
    "perf_config",
    "perf_models",
]

SKU_CATALOG_YAML = "sku_catalog.yaml"
PRICINGS = ("on_demand", "reserved_1y", "reserved_3y", "spot")  # keys of `Prices`, cheapest last
WEIGHTS_SHARE = 0.9  # of a replica's GPU memory the weights may fill; the rest: KV cache

# Finite ranges for every number (policies.spec's rule): a value past one is a typo, not a VM.
MAX_USD_PER_HOUR = 10_000.0  # the largest GPU VMs list at about 100 USD/h
MAX_GPUS = 64
MAX_GPU_MEMORY_GB = 1024.0
MAX_VCPUS = 4096
MAX_MEMORY_GB = 65_536.0
MAX_WEIGHTS_GB = 100_000.0
MAX_ITEMS = 1000

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"  # Azure VM sizes, GPU and model names: one plain word
Name = Annotated[str, Field(min_length=1, max_length=100, pattern=_NAME)]
Text = Annotated[str, Field(max_length=2000)]


class CatalogError(ValueError):
    """A catalog that cannot be used, or a request it cannot answer: every problem, one line
    each (`file:line:col: key.path: why`)."""

    def __init__(self, problems_: Sequence[Problem]) -> None:
        self.problems = tuple(problems_)
        super().__init__("\n".join(str(p) for p in self.problems))


class TimeRange(StrictModel):
    """How long something takes: its median and 95th percentile (a lognormal between them,
    as `simulator.startup.LognormalPart`); both 0 is "no time"."""

    median_s: float = Field(ge=0, le=MAX_WINDOW_S)
    p95_s: float = Field(ge=0, le=MAX_WINDOW_S)

    @field_validator("p95_s")
    @classmethod
    def _not_below_median(cls, value: float, info: Any) -> float:
        median = info.data.get("median_s")
        if median is not None and value < median:
            raise ValueError(f"must be >= median_s ({median:g}) (got {value:g})")
        if median == 0 and value > 0:
            raise ValueError(f"must be 0 when median_s is 0 (got {value:g})")
        return value

    def part(self) -> LognormalPart:
        """This range as a part of a replica's start (`simulator.startup`)."""
        return LognormalPart(self.median_s, self.p95_s)


Usd = Annotated[float, Field(gt=0, le=MAX_USD_PER_HOUR)]


class Prices(StrictModel):
    """One VM's price per hour under each way of paying; a missing one is not offered to you
    (or not known). `on_demand` is pay-as-you-go and always required."""

    on_demand: Usd
    reserved_1y: Usd | None = None
    reserved_3y: Usd | None = None
    spot: Usd | None = None

    def as_dict(self) -> dict[str, float]:
        """{pricing: USD per VM-hour} for the prices given, in `PRICINGS` order."""
        given = ((key, getattr(self, key)) for key in PRICINGS)
        return {key: float(value) for key, value in given if value is not None}


class Sku(StrictModel):
    """One Azure GPU VM size, as its documentation page (`docs`) gives it.

    `gpu` names the GPU type as the performance table does (its `hardware` column, e.g.
    a100-80gb); `perf_gpu` names the table's GPU whose measurements stand in for this one when
    the table has none of its own (an approximation; say so in `note`). `burst` says where extra
    capacity of this GPU can come from: an AKS node pool (`aks`), or ACI (`aci`) only where ACI
    offers this GPU.
    """

    name: Name
    gpu: Name
    perf_gpu: Name | None = None
    gpus: int = Field(ge=1, le=MAX_GPUS)
    gpu_memory_gb: float = Field(gt=0, le=MAX_GPU_MEMORY_GB)  # per GPU
    vcpus: int = Field(ge=1, le=MAX_VCPUS)
    memory_gb: float = Field(gt=0, le=MAX_MEMORY_GB)
    usd_per_hour: Prices  # per VM
    node_provision_s: TimeRange  # a new node of this size becomes Ready
    burst: tuple[Literal["aks", "aci"], ...] = Field(default=("aks",), min_length=1, max_length=2)
    docs: Text = ""
    note: Text = ""

    @field_validator("burst")
    @classmethod
    def _once_each(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError(f"list each of aks, aci at most once (got {list(value)})")
        return value

    @property
    def perf_hardware(self) -> str:
        """The performance table's GPU used for this SKU: `perf_gpu`, else `gpu`."""
        return self.perf_gpu or self.gpu

    @property
    def gpu_memory_total_gb(self) -> float:
        return self.gpus * self.gpu_memory_gb


class ModelInfo(StrictModel):
    """One model a plan may serve: its weights, the performance table's name for it, and how
    long its weights take to load into GPU memory, per replica."""

    weights_gb: float = Field(gt=0, le=MAX_WEIGHTS_GB)
    perf_model: Name  # the `model` column of the performance table
    model_load_s: TimeRange
    note: Text = ""


class Catalog(StrictModel):
    """The catalog file: when and where its prices were taken, the SKUs, the models."""

    as_of: dt.date
    region: Name
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    price_note: Text = ""
    skus: list[Sku] = Field(min_length=1, max_length=MAX_ITEMS)
    models: dict[Name, ModelInfo] = Field(min_length=1, max_length=MAX_ITEMS)
    _source: str = PrivateAttr(default="")
    _positions: Positions | None = PrivateAttr(default=None)

    _as_of = field_validator("as_of", mode="before")(iso_date)

    @property
    def source(self) -> str:
        """The file this catalog was read from ("" when built in code)."""
        return self._source

    def locate(self, loc: Loc, message: str) -> Problem:
        """A problem at `loc` (e.g. ("models", "llama2-70b", "weights_gb")), with the file,
        line and column it was read from when known."""
        return locate(self.source, self._positions, loc, message)

    def largest_sku(self) -> Sku:
        """The SKU with the most GPU memory in one VM (the first of equals)."""
        return max(self.skus, key=lambda s: s.gpu_memory_total_gb)

    def sku(self, name: str) -> Sku:
        """The SKU called `name`, or CatalogError naming the ones there are."""
        for sku in self.skus:
            if sku.name == name:
                return sku
        known = ", ".join(s.name for s in self.skus)
        message = f"SKU {name!r} is not in the catalog; known: {known}"
        raise CatalogError([Problem(self.source, "", message)])

    def model(self, name: str) -> ModelInfo:
        """The model called `name`, or CatalogError naming the ones there are."""
        if name in self.models:
            return self.models[name]
        known = ", ".join(self.models)
        message = f"model {name!r} is not in the catalog; known: {known}"
        raise CatalogError([Problem(self.source, "", message)])


# --------------------------------------------------------------------------- the perf table

_CONFIG = re.compile(r"^(?P<gpu>[^-]+)-tp(?P<tp>[0-9]+)-(?P<model>.+)$")


def perf_config(name: str) -> tuple[str, int, str] | None:
    """A performance table key (`simulator.service.SplitwiseRows.config`) as (GPU family,
    tensor parallel, model): a100-tp4-llama2-70b -> ("a100", 4, "llama2-70b"); None if not one.

    The family is the hardware name up to its first "-" (`read_splitwise` keeps only that), so
    a SKU's `perf_hardware` a100-80gb matches a100."""
    found = _CONFIG.match(name)
    if found is None:
        return None
    return found["gpu"], int(found["tp"]), found["model"]


def gpu_family(hardware: str) -> str:
    """a100-80gb -> a100: the part of a GPU name a performance table key keeps."""
    return hardware.split("-", maxsplit=1)[0]


def perf_models(table: Mapping[str, TokenPerf]) -> list[str]:
    """The models a performance table has rows for, sorted."""
    parsed = (perf_config(key) for key in table)
    return sorted({p[2] for p in parsed if p is not None})


# --------------------------------------------------------------------------- loading


def load_catalog(path: str | Path, *, perf_table: Mapping[str, TokenPerf] | None = None) -> Catalog:
    """The catalog in the YAML file at `path`; with `perf_table`, every model's `perf_model`
    must have rows in it. Raises CatalogError (every problem, one line each)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise CatalogError([Problem(source, "", f"cannot read the file: {reason}")]) from None
    return parse_catalog(text, source, perf_table=perf_table)


def default_catalog(*, perf_table: Mapping[str, TokenPerf] | None = None) -> Catalog:
    """The example catalog shipped in simulator/data/sku_catalog.yaml (its prices are
    examples: see the comment at its top)."""
    text = resources.files("simulator").joinpath("data", SKU_CATALOG_YAML).read_text("utf-8")
    return parse_catalog(text, f"simulator/data/{SKU_CATALOG_YAML}", perf_table=perf_table)


def parse_catalog(
    text: str, source: str = "catalog", *, perf_table: Mapping[str, TokenPerf] | None = None
) -> Catalog:
    """`load_catalog` on text already read; `source` names it in every problem."""
    try:
        data, positions = yaml_input.load_located(text, source)
    except yaml_input.DocumentError as error:
        raise CatalogError(list(error.problems)) from None
    if not isinstance(data, Mapping):
        kind = "an empty file" if data is None else f"a {type(data).__name__}"
        message = f"expected a mapping with as_of, region, skus and models (got {kind})"
        raise CatalogError([Problem(source, "", message, 1, 1)])
    try:
        catalog = Catalog.model_validate(data)
    except ValidationError as error:
        raise CatalogError(_sorted(problems(error, Catalog, source, positions))) from None
    found = [locate(source, positions, loc, message) for loc, message in _semantic(catalog)]
    if perf_table is not None:
        found += [locate(source, positions, loc, m) for loc, m in _perf(catalog, perf_table)]
    if found:
        raise CatalogError(_sorted(found))
    catalog._source, catalog._positions = source, positions
    return catalog


def _sorted(found: Iterable[Problem]) -> list[Problem]:
    return sorted(found, key=lambda p: (p.line or 0, p.column or 0))


def _semantic(catalog: Catalog) -> list[tuple[Loc, str]]:
    """What a valid shape can still get wrong: a name twice, a discount that costs more."""
    out: list[tuple[Loc, str]] = []
    first: dict[str, int] = {}
    for i, sku in enumerate(catalog.skus):
        if sku.name in first:
            j = first[sku.name]
            out.append((("skus", i, "name"), f"SKU {sku.name!r} is listed twice (first skus[{j}])"))
        first.setdefault(sku.name, i)
        out += _price_order(sku.usd_per_hour, ("skus", i, "usd_per_hour"))
    for name, info in catalog.models.items():
        message = fits_no_sku(catalog, name, info)
        if message is not None:
            out.append((("models", name, "weights_gb"), message))
    return out


def fits_no_sku(
    catalog: Catalog, name: str, info: ModelInfo, share: float = WEIGHTS_SHARE
) -> str | None:
    """Why `name`'s weights fit no SKU even on all of a VM's GPUs, or None when one holds them."""
    largest = catalog.largest_sku()
    usable_gb = share * largest.gpu_memory_total_gb
    if info.weights_gb <= usable_gb:
        return None
    return (
        f"{name} ({info.weights_gb:g} GB) fits no SKU: the largest replica is "
        f"{largest.gpu_memory_total_gb:g} GB ({largest.name}, {largest.gpus} x "
        f"{largest.gpu_memory_gb:g} GB), of which {share:.0%} ({usable_gb:g} GB) may hold "
        "weights; add a larger SKU, or give the quantized weights' size"
    )


def _price_order(prices: Prices, loc: Loc) -> list[tuple[Loc, str]]:
    """Each discounted price at most the price it discounts: reserved and spot <= on_demand,
    reserved_3y <= reserved_1y."""
    out: list[tuple[Loc, str]] = []
    pairs = (("reserved_1y", "on_demand"), ("reserved_3y", "on_demand"),
             ("spot", "on_demand"), ("reserved_3y", "reserved_1y"))  # fmt: skip
    for key, above in pairs:
        value, ceiling = getattr(prices, key), getattr(prices, above)
        if value is not None and ceiling is not None and value > ceiling:
            message = (
                f"{key} {value:g} USD/h is above {above} {ceiling:g} USD/h; a discounted price "
                "must not exceed the price it discounts (a typo, or the two swapped?)"
            )
            out.append(((*loc, key), message))
            break  # one line per SKU's prices is enough to find the typo
    return out


def _perf(catalog: Catalog, table: Mapping[str, TokenPerf]) -> list[tuple[Loc, str]]:
    known = perf_models(table)
    out: list[tuple[Loc, str]] = []
    for name, info in catalog.models.items():
        if info.perf_model not in known:
            has = ", ".join(known) or "no rows at all"
            message = f"{info.perf_model!r} has no rows in the performance table (it has: {has})"
            out.append((("models", name, "perf_model"), message))
    return out
