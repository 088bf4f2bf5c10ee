"""replicast plan: capacity planning on the simulator -- which Azure GPU SKU, how many, reserved
or burst, at what cost, meeting what SLO (issue 18).

The stages so far: `catalog` reads the SKU catalog a user edits (VM sizes, prices, node
provisioning and model load times; simulator/data/sku_catalog.yaml is the shipped example,
with example prices) into a frozen `Catalog`; `candidates` turns a catalog and a model into
every SKU x tensor-parallel `Candidate` that can serve it, each able to build the
`simulator.model.ReplicaModel` the simulator runs.
"""

from simulator.plan.candidates import Candidate, candidates, perf_table_from
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
    "Candidate",
    "Catalog",
    "CatalogError",
    "ModelInfo",
    "Prices",
    "Sku",
    "TimeRange",
    "candidates",
    "default_catalog",
    "load_catalog",
    "parse_catalog",
    "perf_table_from",
]
