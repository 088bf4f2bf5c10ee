"""Cost: what replica-seconds are worth, by SKU and platform, from an editable price table.

In: replica-seconds (the kernel counts them from creation to gone: starting, ready and draining
replicas all cost), a SKU and a platform, and a `PriceTable` -- by default the example table
shipped in simulator/data/prices.yaml, every row dated and labelled "example; verify against
your agreement". Out: US dollars. Nothing is looked up online; `load_prices(path)` reads your
own table in the same format (see the comments at the top of prices.yaml).

A row prices one replica either per hour (`usd_per_hour`: an AKS node running one replica) or
per second by resources (`vcpu`, `memory_gb`, `gpu` times `usd_per_vcpu_s`,
`usd_per_memory_gb_s`, `usd_per_gpu_s`: an ACI container group).
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from policies import yaml_input
from policies.spec import StrictModel, problems_of

__all__ = [
    "Price",
    "PriceError",
    "PriceTable",
    "cost_usd",
    "default_prices",
    "load_prices",
]

PRICES_YAML = "prices.yaml"
_SECONDS_PER_HOUR = 3600.0


class PriceError(ValueError):
    """A price table that cannot be used, or a SKU it has no price for; names file, row, field."""


@dataclass(frozen=True, slots=True)
class Price:
    """One replica of `sku` on `platform` costs `usd_per_hour` (as of `as_of`)."""

    sku: str
    platform: str
    usd_per_hour: float
    as_of: dt.date
    region: str = ""
    note: str = ""


@dataclass(frozen=True, slots=True)
class PriceTable:
    """Prices by (sku, platform); `source` names the file they came from."""

    prices: tuple[Price, ...]
    source: str = ""

    def price(self, sku: str, platform: str) -> Price:
        for row in self.prices:
            if row.sku == sku and row.platform == platform:
                return row
        known = ", ".join(sorted(row.sku for row in self.prices if row.platform == platform))
        where = self.source or "price table"
        raise PriceError(
            f"{where}: no price for sku {sku!r} on platform {platform!r}; add a row "
            f"or use one of: {known or '(no rows for this platform)'}"
        )

    def usd_per_hour(self, sku: str, platform: str) -> float:
        return self.price(sku, platform).usd_per_hour


def cost_usd(
    replica_seconds: float, sku: str, platform: str, *, table: PriceTable | None = None
) -> float:
    """What `replica_seconds` of `sku` on `platform` cost (3600 replica-seconds = one hour)."""
    table = table if table is not None else default_prices()
    return table.usd_per_hour(sku, platform) * (replica_seconds / _SECONDS_PER_HOUR)


# --------------------------------------------------------------------------- loading


def iso_date(value: Any) -> Any:
    """A YAML date (or its text) as a date; the shared `as_of` validator of price files."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"must be a date, YYYY-MM-DD (got {value!r})") from None


class _Row(StrictModel):
    sku: str = Field(min_length=1)
    platform: str = Field(min_length=1)
    as_of: dt.date
    region: str = ""
    note: str = ""
    usd_per_hour: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    vcpu: float = Field(default=0, ge=0, allow_inf_nan=False)
    memory_gb: float = Field(default=0, ge=0, allow_inf_nan=False)
    gpu: int = Field(default=0, ge=0)
    usd_per_vcpu_s: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    usd_per_memory_gb_s: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    usd_per_gpu_s: float | None = Field(default=None, ge=0, allow_inf_nan=False)

    _as_of = field_validator("as_of", mode="before")(iso_date)

    @model_validator(mode="after")
    def _one_price_form(self) -> _Row:
        amounts = {"usd_per_vcpu_s": ("vcpu", self.vcpu), "usd_per_memory_gb_s":
                   ("memory_gb", self.memory_gb), "usd_per_gpu_s": ("gpu", self.gpu)}  # fmt: skip
        if self.usd_per_hour is not None:
            extra = [k for k in ("vcpu", "memory_gb", "gpu", *amounts) if getattr(self, k)]
            if extra:
                raise ValueError(
                    f"give usd_per_hour or per-second resource prices, not both (got "
                    f"usd_per_hour and {extra[0]})"
                )
            return self
        for unit, (resource, amount) in amounts.items():
            if amount and getattr(self, unit) is None:
                raise ValueError(
                    f"{unit}: required when {resource} > 0 (got {resource}={amount:g})"
                )
        if not (self.vcpu or self.memory_gb or self.gpu):
            raise ValueError(
                "give usd_per_hour, or vcpu/memory_gb/gpu with their per-second prices (got none)"
            )
        return self

    def to_price(self) -> Price:
        if self.usd_per_hour is not None:
            hourly = self.usd_per_hour
        else:
            per_s = (
                self.vcpu * (self.usd_per_vcpu_s or 0.0)
                + self.memory_gb * (self.usd_per_memory_gb_s or 0.0)
                + self.gpu * (self.usd_per_gpu_s or 0.0)
            )
            hourly = per_s * _SECONDS_PER_HOUR
        return Price(self.sku, self.platform, hourly, self.as_of, self.region, self.note)


def load_prices(path: str | Path) -> PriceTable:
    """A price table from a YAML file shaped like simulator/data/prices.yaml."""
    return _parse(Path(path).read_text(), str(path))


@functools.cache
def default_prices() -> PriceTable:
    """The example table shipped in simulator/data/prices.yaml (read once)."""
    text = resources.files("simulator").joinpath("data", PRICES_YAML).read_text()
    return _parse(text, f"simulator/data/{PRICES_YAML}")


def _parse(text: str, source: str) -> PriceTable:
    try:
        document = yaml_input.safe_load(text)
        lines = _row_lines(text)
    except yaml_input.YamlInputError as error:
        raise PriceError(f"{source}: {error}") from None
    rows = document.get("prices") if isinstance(document, dict) else None
    if not isinstance(rows, list):
        raise PriceError(f"{source}: must be a mapping with a 'prices' list (see prices.yaml)")
    prices: list[Price] = []
    seen: set[tuple[str, str]] = set()
    for i, row in enumerate(rows):
        where = (
            f"{source}: line {lines[i]}: prices[{i}]"
            if i < len(lines)
            else f"{source}: prices[{i}]"
        )
        price = _parse_row(row, where)
        if (price.sku, price.platform) in seen:
            raise PriceError(f"{where}: sku {price.sku!r} on {price.platform!r} is priced twice")
        seen.add((price.sku, price.platform))
        prices.append(price)
    return PriceTable(tuple(prices), source)


def _parse_row(row: Any, where: str) -> Price:
    if isinstance(row, dict) and isinstance(row.get("sku"), str):
        where = f"{where} (sku {row['sku']})"
    try:
        return _Row.model_validate(row).to_price()
    except ValidationError as error:
        problems = problems_of(error, _Row)
        text = "; ".join(f"{path}: {msg}" if path else msg for path, msg in problems)
        raise PriceError(f"{where}: {text}") from None


def _row_lines(text: str) -> list[int]:
    """The 1-based line where each item of the top-level `prices` list starts."""
    root = yaml.compose(text)
    if not isinstance(root, yaml.MappingNode):
        return []
    for key, value in root.value:
        if key.value == "prices" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []
