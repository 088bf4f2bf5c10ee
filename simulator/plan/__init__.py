"""replicast plan: capacity planning on the simulator -- which Azure GPU SKU, how many, reserved
or burst, at what cost, meeting what SLO (issue 18).

The command's steps as an API: `plan_input(...)` (the command's options by name, checked as it
checks them), `build_plan(plan_input, executor)` (screen, simulate, replay, choose, grow, the SKU
mix) and `write(plan, out)` (plan.html, plan.md, plan.json, controller.yaml, the plots).
Underneath, `catalog` reads the SKU catalog a user edits (VM sizes, prices, node provisioning
and model load times; simulator/data/sku_catalog.yaml is the shipped example, with example
prices) into a frozen `Catalog`; `candidates` turns a catalog and a model into every SKU x
tensor-parallel `Candidate` that can serve it, each able to build the ReplicaModel the
simulator runs.
"""

from simulator.plan.build import Plan, PlanInput
from simulator.plan.build import build as build_plan  # the name `build` stays the module
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
from simulator.plan.cli import plan_input
from simulator.plan.report import as_json, write

__all__ = [
    "PRICINGS",
    "WEIGHTS_SHARE",
    "Candidate",
    "Catalog",
    "CatalogError",
    "ModelInfo",
    "Plan",
    "PlanInput",
    "Prices",
    "Sku",
    "TimeRange",
    "as_json",
    "build_plan",
    "candidates",
    "default_catalog",
    "load_catalog",
    "parse_catalog",
    "perf_table_from",
    "plan_input",
    "write",
]
