"""replicast plan: capacity planning on the simulator -- which Azure GPU SKU, how many, reserved
or burst, at what cost, meeting what SLO (issue 18).

The stages so far: `catalog` reads the SKU catalog a user edits (VM sizes, prices, node
provisioning and model load times; simulator/data/sku_catalog.yaml is the shipped example,
with example prices) into a frozen `Catalog`.
"""

from simulator.plan.catalog import (
    PRICINGS,
    WEIGHTS_SHARE,
    Catalog,
    CatalogError,
    ModelInfo,
    Prices,
    Sku,
    TimeRange,
    default_catalog,
    load_catalog,
    parse_catalog,
)

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
    "load_catalog",
    "parse_catalog",
]
