"""Candidates: every way a catalog's SKUs can serve one model, as replicas the simulator runs.

In: a `Catalog` (`simulator.plan.catalog`), a model's name in it, and a performance table
(`TokenPerf` per "gpu-tpN-model" key, `simulator.service.fit_splitwise`; default `TOKEN_PERF`,
fitted from the shipped simulator/data/splitwise_perf.csv). Out: one `Candidate` per SKU x
tensor-parallel degree that the table measured for this model on the SKU's GPU, where

- the degree fits the VM: tensor_parallel <= gpus, and floor(gpus / tensor_parallel) replicas
  share one VM (cost and provisioning follow the VM: a replica costs its share of the VM);
- the weights fit with room for the KV cache: weights_gb <= WEIGHTS_SHARE (90 %) of the
  replica's GPU memory (tensor_parallel x gpu_memory_gb). llama2-70b (140 GB) fits 2 x 80 GB
  (144 GB usable), leaving 20 GB for the KV cache, about what splitwise's tensor-parallel-2
  rows ran in (their batch-64 rows look memory-limited, `simulator.service`);
- slots per replica are the asked-for count, capped at the largest batch the table measured.

Each candidate builds the `simulator.model.ReplicaModel` the simulator runs
(`Candidate.replica_model`). Errors are `CatalogError`s, one line each: an unknown model, a
model that fits no SKU's memory, no performance rows for the model or for any SKU's GPU. The
next stage, the plan (`simulator.plan`), screens and simulates these candidates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from policies.problems import Problem
from policies.spec import MAX_COUNT
from simulator.cost import Price, PriceTable
from simulator.model import ReplicaModel
from simulator.plan.catalog import (
    PRICINGS,
    WEIGHTS_SHARE,
    Catalog,
    CatalogError,
    ModelInfo,
    Sku,
    fits_no_sku,
    gpu_family,
    perf_config,
    perf_models,
)
from simulator.service import SPLITWISE_CSV, TOKEN_PERF, TokenPerf, TokenService, fit_splitwise
from simulator.startup import PartsStartup, platform_startup

__all__ = ["WEIGHTS_SHARE", "Candidate", "candidates", "perf_table_from"]

PLATFORM = "aks"  # a candidate's replicas run on an AKS node pool of its SKU


@dataclass(frozen=True)
class Candidate:
    """One way to serve the model: replicas of `tensor_parallel` GPUs on VMs of `sku`.

    `usd_per_replica_hour` is a replica's share of its VM's price, {pricing: VM price /
    replicas_per_vm}, for each price the catalog gives. `startup` is a replica's start on a new
    node (the SKU's node provisioning, startup.py's image pull on a new node, the model's load);
    `warm_startup` on a node already up (startup.py's pod start and cached image pull, the
    model's load). With several replicas per VM only the first on a new node waits for the
    node; which start applies is the plan's choice (`replica_model(warm=...)`).
    """

    sku: Sku
    tensor_parallel: int
    replicas_per_vm: int
    perf: TokenPerf
    perf_name: str
    slots_per_replica: int
    usd_per_replica_hour: dict[str, float] = field(hash=False)
    startup: PartsStartup
    warm_startup: PartsStartup
    model_name: str = ""
    as_of: dt.date | None = None  # the catalog's price date
    region: str = ""

    @property
    def label(self) -> str:
        """e.g. "Standard_NC96ads_A100_v4 tp4"."""
        return f"{self.sku.name} tp{self.tensor_parallel}"

    @property
    def replica_gpu_memory_gb(self) -> float:
        return self.tensor_parallel * self.sku.gpu_memory_gb

    def replica_model(
        self,
        *,
        pricing: str = "on_demand",
        warm: bool = False,
        timeout_s: float | None = None,
        queue_limit: int | None = None,
        batch_size: int | None = None,
        overhead_s: float = 0.0,
    ) -> ReplicaModel:
        """The replica the simulator runs: `slots_per_replica` slots, llm_tokens service with
        this candidate's perf (decoding in a batch of `batch_size`, default the slots, as the
        preset llama2-70b-a100 does), `startup` (or `warm_startup`), priced per replica-hour
        at `pricing` (one of PRICINGS the catalog gives for this SKU)."""
        if pricing not in self.usd_per_replica_hour:
            given = ", ".join(self.usd_per_replica_hour)
            message = (
                f"pricing: no {pricing!r} price for {self.sku.name} in the catalog (it has: "
                f"{given}); add usd_per_hour.{pricing} or use one of those"
            )
            raise CatalogError([Problem("", "", message)])
        service = TokenService(
            self.perf,
            batch_size if batch_size is not None else self.slots_per_replica,
            overhead_s,
            self.perf_name,
        )
        price = Price(
            self.sku.name,
            PLATFORM,
            self.usd_per_replica_hour[pricing],
            self.as_of or dt.date.min,
            self.region,
            f"{pricing}, 1/{self.replicas_per_vm} of the VM; from the SKU catalog (examples)",
        )
        return ReplicaModel(
            self.slots_per_replica,
            service,
            self.warm_startup if warm else self.startup,
            timeout_s,
            queue_limit,
            self.sku.name,
            PLATFORM,
            PriceTable((price,), f"SKU catalog, {self.label} ({pricing})"),
        )


def perf_table_from(
    table: Mapping[str, TokenPerf] | str | Path | None,
) -> tuple[Mapping[str, TokenPerf], str]:
    """(the table, how to name it): None is `TOKEN_PERF` (the shipped rows, fitted); a path is
    a splitwise-format CSV fitted by `fit_splitwise`; a mapping is used as given.

    The full splitwise perf_model.csv (replicast's shared data) fits, bloom-176b included, but
    `read_splitwise` keys rows by the hardware name up to its first "-", so its h100-80gb-pcap
    (power-capped) rows are pooled with h100-80gb's, and its tensor-parallel-2 batch-64 rows
    (memory-limited, see simulator/data/ATTRIBUTION.md) are fitted too."""
    if table is None:
        return TOKEN_PERF, f"simulator/data/{SPLITWISE_CSV}"
    if isinstance(table, (str, Path)):
        return fit_splitwise(table), str(table)
    return table, "the performance table"


def candidates(
    catalog: Catalog,
    model_name: str,
    perf_table: Mapping[str, TokenPerf] | str | Path | None = None,
    slots_per_replica: int = 16,
    *,
    weights_share: float = WEIGHTS_SHARE,
) -> list[Candidate]:
    """Every SKU x tensor-parallel degree that can serve `model_name` (the module docstring
    has the rules), in catalog order then by degree; CatalogError (one line) when none can."""
    if not 1 <= slots_per_replica <= MAX_COUNT:
        message = f"must be 1..{MAX_COUNT} (got {slots_per_replica})"
        raise CatalogError([Problem("", "slots_per_replica", message)])
    if not 0 < weights_share <= 1:
        message = f"must be > 0 and <= 1 (got {weights_share})"
        raise CatalogError([Problem("", "weights_share", message)])
    info = catalog.model(model_name)
    table, table_name = perf_table_from(perf_table)
    measured = _measured(table, info.perf_model)
    _check(catalog, model_name, info, weights_share, measured, table, table_name)
    found = [
        _candidate(catalog, model_name, info, sku, tp, table, slots_per_replica)
        for sku in catalog.skus
        for tp in sorted(measured.get(gpu_family(sku.perf_hardware), ()))
        if tp <= sku.gpus and info.weights_gb <= weights_share * tp * sku.gpu_memory_gb
    ]
    if not found:
        degrees = "; ".join(
            f"{gpu} tp {', '.join(str(tp) for tp in sorted(tps))}"
            for gpu, tps in sorted(measured.items())
        )
        message = (
            f"{model_name} ({info.weights_gb:g} GB): no SKU holds it at a degree "
            f"{table_name} measured ({degrees}) with the weights in {weights_share:.0%} of "
            "the replica's GPU memory; add a SKU with more GPUs of those types"
        )
        raise CatalogError([catalog.locate(("models", model_name), message)])
    return found


def _measured(table: Mapping[str, TokenPerf], perf_model: str) -> dict[str, set[int]]:
    """{GPU family: the tensor-parallel degrees the table has for `perf_model`}."""
    out: dict[str, set[int]] = {}
    for key in table:
        parsed = perf_config(key)
        if parsed is not None and parsed[2] == perf_model:
            out.setdefault(parsed[0], set()).add(parsed[1])
    return out


def _check(
    catalog: Catalog,
    name: str,
    info: ModelInfo,
    share: float,
    measured: Mapping[str, set[int]],
    table: Mapping[str, TokenPerf],
    table_name: str,
) -> None:
    """The model fits some SKU's memory, the table measured it, and on some SKU's GPU."""
    too_big = fits_no_sku(catalog, name, info, share)
    if too_big is not None:
        raise CatalogError([catalog.locate(("models", name, "weights_gb"), too_big)])
    if not measured:
        has = ", ".join(perf_models(table)) or "no rows at all"
        message = (
            f"{info.perf_model!r} has no rows in {table_name} (it has: {has}); pass a "
            "performance table that measured it"
        )
        raise CatalogError([catalog.locate(("models", name, "perf_model"), message)])
    gpus = sorted({gpu_family(s.perf_hardware) for s in catalog.skus})
    if not set(gpus) & set(measured):
        message = (
            f"{table_name} has no {info.perf_model} rows for any SKU's GPU (the SKUs': "
            f"{', '.join(gpus)}; the table's: {', '.join(sorted(measured))}); add such a "
            "SKU, or set a SKU's perf_gpu to a GPU the table measured"
        )
        raise CatalogError([catalog.locate(("skus",), message)])


def _candidate(
    catalog: Catalog,
    model_name: str,
    info: ModelInfo,
    sku: Sku,
    tp: int,
    table: Mapping[str, TokenPerf],
    slots_per_replica: int,
) -> Candidate:
    perf_name = f"{gpu_family(sku.perf_hardware)}-tp{tp}-{info.perf_model}"
    perf = table[perf_name]
    per_vm = sku.gpus // tp
    prices = sku.usd_per_hour.as_dict()
    share = {key: prices[key] / per_vm for key in PRICINGS if key in prices}
    load = info.model_load_s.part()
    new_node = platform_startup(
        "aks-new-gpu-node", provisioning=sku.node_provision_s.part(), model_load=load
    )
    return Candidate(
        sku=sku,
        tensor_parallel=tp,
        replicas_per_vm=per_vm,
        perf=perf,
        perf_name=perf_name,
        slots_per_replica=min(slots_per_replica, perf.max_batch_size),
        usd_per_replica_hour=share,
        startup=new_node,
        warm_startup=platform_startup("aks-warm-node", model_load=load),
        model_name=model_name,
        as_of=catalog.as_of,
        region=catalog.region,
    )
