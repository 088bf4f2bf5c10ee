"""The SKU catalog (simulator.plan.catalog) and its candidates (simulator.plan.candidates).

The shipped catalog holds the sizes Microsoft's size pages give; bad catalogs are one line each
naming file:line:col and the field; candidates follow the packing and memory rules and run.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from simulator.cost import default_prices
from simulator.engine import run
from simulator.plan import (
    PRICINGS,
    Candidate,
    CatalogError,
    candidates,
    default_catalog,
    load_catalog,
    parse_catalog,
)
from simulator.service import TOKEN_PERF
from simulator.traces import azure_conv

# --------------------------------------------------------------------------- the shipped file


def test_the_shipped_catalog_holds_the_sizes_microsofts_pages_give() -> None:
    catalog = default_catalog()
    skus = {sku.name: sku for sku in catalog.skus}
    assert list(skus) == [
        "Standard_NC24ads_A100_v4", "Standard_NC48ads_A100_v4", "Standard_NC96ads_A100_v4",
        "Standard_ND96amsr_A100_v4", "Standard_NC40ads_H100_v5", "Standard_NC80adis_H100_v5",
        "Standard_ND96isr_H100_v5",
    ]  # fmt: skip
    # (gpus, GPU memory per GPU, vCPUs, memory) from each size's learn.microsoft.com page
    expected = {
        "Standard_NC24ads_A100_v4": (1, 80, 24, 220),
        "Standard_NC96ads_A100_v4": (4, 80, 96, 880),
        "Standard_ND96amsr_A100_v4": (8, 80, 96, 1900),
        "Standard_NC80adis_H100_v5": (2, 94, 80, 640),  # H100 NVL, 94 GB each
        "Standard_ND96isr_H100_v5": (8, 80, 96, 1900),
    }
    for name, (gpus, gpu_memory_gb, vcpus, memory_gb) in expected.items():
        sku = skus[name]
        assert (sku.gpus, sku.gpu_memory_gb, sku.vcpus, sku.memory_gb) == (
            gpus, gpu_memory_gb, vcpus, memory_gb
        ), name  # fmt: skip
    for sku in catalog.skus:
        assert sku.docs.startswith("https://learn.microsoft.com/azure/virtual-machines/sizes/")
    assert skus["Standard_NC40ads_H100_v5"].perf_hardware == "h100-80gb"  # NVL: SXM rows stand in
    assert catalog.models["llama2-70b"].weights_gb == 140


def test_the_shipped_prices_are_dated_examples_derived_as_the_file_says() -> None:
    catalog = default_catalog()
    text = resources.files("simulator").joinpath("data", "sku_catalog.yaml").read_text()
    header = text.split("\nas_of:")[0]
    assert "EXAMPLES, NOT QUOTES" in header and "verify" in header.lower()
    assert "2024-06-01" in header and "eastus" in header
    assert (str(catalog.as_of), catalog.region, catalog.currency) == ("2024-06-01", "eastus", "USD")
    assert "Examples, not quotes" in catalog.price_note
    # on_demand is prices.yaml's pay-as-you-go; the others are its stated discounts, rounded
    # to 3 decimals: reserved_1y x 0.60, reserved_3y x 0.40, spot x 0.25.
    shipped = default_prices()
    for sku in catalog.skus:
        prices = sku.usd_per_hour.as_dict()
        assert list(prices) == list(PRICINGS)
        assert prices["on_demand"] == shipped.usd_per_hour(sku.name, "aks")
        for key, factor in (("reserved_1y", 0.60), ("reserved_3y", 0.40), ("spot", 0.25)):
            assert prices[key] == pytest.approx(factor * prices["on_demand"], abs=5.01e-4), key


def test_no_a100_or_h100_sku_bursts_to_aci_which_never_offered_those_gpus() -> None:
    # ACI's GPU container groups (a preview) offered K80, P100 and V100 only.
    for sku in default_catalog().skus:
        assert sku.burst == ("aks",), sku.name


def test_a_catalog_checked_against_a_table_names_the_model_it_lacks() -> None:
    # The shipped table has llama2-70b only; bloom-176b needs the full splitwise CSV.
    with pytest.raises(CatalogError) as error:
        default_catalog(perf_table=TOKEN_PERF)
    (problem,) = error.value.problems
    assert str(problem).startswith(
        "simulator/data/sku_catalog.yaml:142:17: models.bloom-176b.perf_model: 'bloom-176b' "
        "has no rows in the performance table (it has: llama2-70b)"
    )


# --------------------------------------------------------------------------- bad catalogs

GOOD = """\
as_of: 2024-06-01
region: eastus
skus:
  - name: Standard_NC96ads_A100_v4
    gpu: a100-80gb
    gpus: 4
    gpu_memory_gb: 80
    vcpus: 96
    memory_gb: 880
    usd_per_hour: {on_demand: 14.692, reserved_1y: 8.815, spot: 3.673}
    node_provision_s: {median_s: 150, p95_s: 300}
models:
  llama2-70b: {weights_gb: 140, perf_model: llama2-70b, model_load_s: {median_s: 35, p95_s: 80}}
"""
SECOND_SKU = """\
  - name: Standard_NC96ads_A100_v4
    gpu: a100-80gb
    gpus: 4
    gpu_memory_gb: 80
    vcpus: 96
    memory_gb: 880
    usd_per_hour: {on_demand: 14.692}
    node_provision_s: {median_s: 150, p95_s: 300}
"""


def bad(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new)


BAD = [
    ("unknown-key", bad("    vcpus: 96\n", "    vcpus: 96\n    colour: red\n"),
     "cat.yaml:9:5: skus[0].colour: unknown key; allowed keys: burst, docs, gpu, gpu_memory_gb,"),
    ("negative-price", bad("spot: 3.673", "spot: -1"),
     "cat.yaml:10:65: skus[0].usd_per_hour.spot: must be > 0 (got -1)"),
    ("nan-price", bad("spot: 3.673", "spot: .nan"),
     "cat.yaml:10:65: skus[0].usd_per_hour.spot: must be a finite number"),
    ("reserved-above-on-demand", bad("reserved_1y: 8.815", "reserved_1y: 20"),
     "cat.yaml:10:52: skus[0].usd_per_hour.reserved_1y: reserved_1y 20 USD/h is above "
     "on_demand 14.692 USD/h"),
    ("duplicate-names", bad("models:\n", SECOND_SKU + "models:\n"),
     "cat.yaml:12:11: skus[1].name: SKU 'Standard_NC96ads_A100_v4' is listed twice (first "
     "skus[0])"),
    ("model-too-big", bad("weights_gb: 140", "weights_gb: 400"),
     "cat.yaml:13:28: models.llama2-70b.weights_gb: llama2-70b (400 GB) fits no SKU: the "
     "largest replica is 320 GB (Standard_NC96ads_A100_v4, 4 x 80 GB), of which 90% (288 GB) "
     "may hold weights"),
    ("p95-below-median", bad("p95_s: 300", "p95_s: 100"),
     "cat.yaml:11:46: skus[0].node_provision_s.p95_s: must be >= median_s (150) (got 100)"),
    ("missing-key", bad("    gpus: 4\n", ""),
     "cat.yaml:4:5: skus[0].gpus: required key is missing"),
    ("bad-date", bad("as_of: 2024-06-01", "as_of: last june"),
     "cat.yaml:1:8: as_of: must be a date, YYYY-MM-DD (got 'last june')"),
    ("unknown-burst", bad("    vcpus: 96\n", "    vcpus: 96\n    burst: [aks, lambda]\n"),
     "cat.yaml:9:18: skus[0].burst[1]: must be one of 'aks' or 'aci' (got 'lambda')"),
    ("duplicate-yaml-key", bad("region: eastus\n", "region: eastus\nregion: westus\n"),
     "cat.yaml:3:1: region: duplicate key (first on line 2)"),
    ("not-yaml", "skus: [a\nmodels: {", "cat.yaml:2:7: YAML syntax error"),
    ("not-a-mapping", "- just a list\n",
     "cat.yaml:1:1: expected a mapping with as_of, region, skus and models (got a list)"),
    ("empty", "", "cat.yaml:1:1: expected a mapping with as_of, region, skus and models (got "
     "an empty file)"),
    ("too-deep", "skus: " + "[" * 150 + "]" * 150 + "\n",
     "cat.yaml:1:106: nested more than 100 levels deep; flatten it"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_catalog_is_one_line_naming_file_line_column_and_field(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "cat.yaml"
    path.write_text(text)
    with pytest.raises(CatalogError) as error:
        load_catalog(path)
    message = str(error.value).replace(str(tmp_path) + "/", "")
    assert message.startswith(expected), message
    assert len(message.splitlines()) == 1 and len(error.value.problems) == 1


def test_the_good_catalog_the_bad_ones_come_from_loads() -> None:
    catalog = parse_catalog(GOOD, "cat.yaml")
    assert catalog.source == "cat.yaml"
    assert catalog.skus[0].usd_per_hour.as_dict() == {
        "on_demand": 14.692, "reserved_1y": 8.815, "spot": 3.673,
    }  # fmt: skip


def test_every_problem_of_a_catalog_is_listed_in_file_order() -> None:
    text = bad("spot: 3.673", "spot: -1").replace("vcpus: 96", "vcpus: 0")
    with pytest.raises(CatalogError) as error:
        parse_catalog(text, "cat.yaml")
    assert [p.path for p in error.value.problems] == ["skus[0].vcpus", "skus[0].usd_per_hour.spot"]


def test_a_missing_file_is_one_line() -> None:
    with pytest.raises(CatalogError, match=r"^nowhere.yaml: cannot read the file: No such file"):
        load_catalog("nowhere.yaml")


# --------------------------------------------------------------------------- candidates

HPA = {"policy": "hpa", "metric": "in_flight", "target_per_replica": 8, "max_replicas": 20}
SHARED_CSV = Path("/work/shared/data/splitwise_perf_model/perf_model.csv")


def by_label(found: list[Candidate]) -> dict[str, Candidate]:
    return {c.label: c for c in found}


def test_llama2_70b_packs_floor_gpus_over_tensor_parallel_replicas_per_vm() -> None:
    found = by_label(candidates(default_catalog(), "llama2-70b"))
    # 140 GB of weights in at most 90% of a replica's GPU memory: tp 2 on 80 GB GPUs (144 GB)
    # and up; the shipped table measured tp 2, 4 and 8 on a100 and h100.
    assert {label: c.replicas_per_vm for label, c in found.items()} == {
        "Standard_NC48ads_A100_v4 tp2": 1,
        "Standard_NC96ads_A100_v4 tp2": 2,
        "Standard_NC96ads_A100_v4 tp4": 1,
        "Standard_ND96amsr_A100_v4 tp2": 4,
        "Standard_ND96amsr_A100_v4 tp4": 2,
        "Standard_ND96amsr_A100_v4 tp8": 1,
        "Standard_NC80adis_H100_v5 tp2": 1,  # H100 NVL: the h100 rows stand in
        "Standard_ND96isr_H100_v5 tp2": 4,
        "Standard_ND96isr_H100_v5 tp4": 2,
        "Standard_ND96isr_H100_v5 tp8": 1,
    }
    # one GPU (80 or 94 GB) holds no tp 2 replica, and the table has no tp 1
    assert not any(label.startswith(("Standard_NC24ads", "Standard_NC40ads")) for label in found)
    nc96 = found["Standard_NC96ads_A100_v4 tp4"]
    assert (nc96.perf_name, nc96.perf, nc96.slots_per_replica) == (
        "a100-tp4-llama2-70b", TOKEN_PERF["a100-tp4-llama2-70b"], 16
    )  # fmt: skip


def test_a_replica_costs_its_share_of_the_vm_under_every_pricing() -> None:
    for c in candidates(default_catalog(), "llama2-70b"):
        vm = c.sku.usd_per_hour.as_dict()
        assert list(c.usd_per_replica_hour) == list(vm) == list(PRICINGS)
        for pricing, usd in c.usd_per_replica_hour.items():
            assert usd == pytest.approx(vm[pricing] / c.replicas_per_vm), (c.label, pricing)
    nd = by_label(candidates(default_catalog(), "llama2-70b"))["Standard_ND96amsr_A100_v4 tp2"]
    assert nd.usd_per_replica_hour["on_demand"] == pytest.approx(32.77 / 4)


def test_slots_per_replica_stop_at_the_largest_batch_measured() -> None:
    found = by_label(candidates(default_catalog(), "llama2-70b", slots_per_replica=64))
    assert found["Standard_NC96ads_A100_v4 tp2"].slots_per_replica == 32  # tp 2: batch <= 32
    assert found["Standard_NC96ads_A100_v4 tp4"].slots_per_replica == 64


def test_weights_above_90_percent_of_a_replicas_gpu_memory_rule_that_degree_out() -> None:
    # 150 GB: over 144 GB (90% of 2 x 80 GB), under 169.2 GB (90% of 2 x 94 GB).
    catalog = parse_catalog(
        default_text().replace("weights_gb: 140", "weights_gb: 150"), "cat.yaml"
    )
    labels = set(by_label(candidates(catalog, "llama2-70b")))
    assert "Standard_NC96ads_A100_v4 tp2" not in labels
    assert {"Standard_NC96ads_A100_v4 tp4", "Standard_NC80adis_H100_v5 tp2"} <= labels


def test_a_candidates_start_is_the_vms_provisioning_plus_the_models_load() -> None:
    catalog = default_catalog()
    c = by_label(candidates(catalog, "llama2-70b"))["Standard_ND96isr_H100_v5 tp8"]
    load = catalog.models["llama2-70b"].model_load_s
    assert c.startup.platform == "aks-new-gpu-node"
    assert (c.startup.provisioning.median_s, c.startup.provisioning.p95_s) == (150, 300)
    assert (c.startup.model_load.median_s, c.startup.model_load.p95_s) == (load.median_s, 80)
    assert c.warm_startup.platform == "aks-warm-node"  # a node already up: pod start, no node
    assert c.warm_startup.model_load == c.startup.model_load
    assert c.warm_startup.mean_s < c.startup.mean_s


def test_a_candidates_replica_model_runs_a_few_minutes_of_the_azure_conversation_trace() -> None:
    c = by_label(candidates(default_catalog(), "llama2-70b"))["Standard_NC96ads_A100_v4 tp4"]
    model = c.replica_model()
    assert model.needs_tokens and model.slots_per_replica == 16
    assert model.usd_per_hour() == pytest.approx(14.692)
    result = run(azure_conv().slice(0, 300), HPA, model, seed=1, initial_replicas=2)
    summary = result.summary
    assert summary.requests > 1000 and summary.latency_p50_s is not None
    assert summary.latency_p50_s > 1.0  # an LLM request: seconds of decode
    assert summary.cost_usd == pytest.approx(summary.replica_hours * 14.692)
    # the same replica bought spot costs the spot share; warm starts are shorter
    assert c.replica_model(pricing="spot").usd_per_hour() == pytest.approx(3.673)
    assert c.replica_model(warm=True).startup == c.warm_startup


def test_a_pricing_the_catalog_does_not_give_is_one_line() -> None:
    catalog = parse_catalog(GOOD, "cat.yaml")
    (c, *_) = candidates(catalog, "llama2-70b")
    with pytest.raises(CatalogError) as error:
        c.replica_model(pricing="reserved_3y")
    assert str(error.value) == (
        "pricing: no 'reserved_3y' price for Standard_NC96ads_A100_v4 in the catalog (it has: "
        "on_demand, reserved_1y, spot); add usd_per_hour.reserved_3y or use one of those"
    )


def test_a_model_the_catalog_does_not_list_is_one_line_naming_those_it_does() -> None:
    with pytest.raises(CatalogError) as error:
        candidates(default_catalog(), "mixtral")
    assert str(error.value) == (
        "simulator/data/sku_catalog.yaml: model 'mixtral' is not in the catalog; known: "
        "llama2-70b, bloom-176b"
    )


def test_a_model_that_fits_no_sku_names_the_largest_replica() -> None:
    # the shipped 140 GB in 20% of 640 GB (128 GB): nothing holds it
    with pytest.raises(CatalogError) as error:
        candidates(default_catalog(), "llama2-70b", weights_share=0.2)
    assert str(error.value).startswith(
        "simulator/data/sku_catalog.yaml:137:17: models.llama2-70b.weights_gb: llama2-70b "
        "(140 GB) fits no SKU: the largest replica is 640 GB (Standard_ND96amsr_A100_v4, "
        "8 x 80 GB), of which 20% (128 GB) may hold weights"
    )


def test_a_table_without_the_models_rows_names_the_field_and_what_it_has() -> None:
    with pytest.raises(CatalogError) as error:
        candidates(default_catalog(), "bloom-176b")
    assert str(error.value).startswith(
        "simulator/data/sku_catalog.yaml:142:17: models.bloom-176b.perf_model: 'bloom-176b' "
        "has no rows in simulator/data/splitwise_perf.csv (it has: llama2-70b)"
    )


def test_no_rows_for_any_skus_gpu_is_one_line_naming_both_sides() -> None:
    text = GOOD.replace("gpu: a100-80gb", "gpu: mi300x-192gb").replace(
        "gpu_memory_gb: 80", "gpu_memory_gb: 192"
    )
    with pytest.raises(CatalogError) as error:
        candidates(parse_catalog(text, "cat.yaml"), "llama2-70b")
    assert str(error.value) == (
        "cat.yaml:4:3: skus: simulator/data/splitwise_perf.csv has no llama2-70b rows for any "
        "SKU's GPU (the SKUs': mi300x; the table's: a100, h100); add such a SKU, or set a "
        "SKU's perf_gpu to a GPU the table measured"
    )


def test_no_measured_degree_that_fits_the_vms_is_one_line() -> None:
    # a 2-GPU VM and a table with tp 4 and 8 only
    text = GOOD.replace("gpus: 4", "gpus: 2")
    table = {k: v for k, v in TOKEN_PERF.items() if "tp2" not in k}
    with pytest.raises(CatalogError) as error:
        candidates(parse_catalog(text, "cat.yaml"), "llama2-70b", table)
    assert str(error.value).startswith(
        "cat.yaml:13:15: models.llama2-70b: llama2-70b (140 GB): no SKU holds it at a degree "
        "the performance table measured (a100 tp 4, 8; h100 tp 4, 8)"
    )


def test_a_table_given_as_a_mapping_serves_another_model() -> None:
    # bloom-176b (352 GB) on a table that has it at tp 8 only: the two 8-GPU VMs
    table = {"a100-tp8-bloom-176b": TOKEN_PERF["a100-tp8-llama2-70b"],
             "h100-tp8-bloom-176b": TOKEN_PERF["h100-tp8-llama2-70b"]}  # fmt: skip
    found = candidates(default_catalog(), "bloom-176b", table)
    assert [c.label for c in found] == [
        "Standard_ND96amsr_A100_v4 tp8", "Standard_ND96isr_H100_v5 tp8",
    ]  # fmt: skip


@pytest.mark.skipif(not SHARED_CSV.exists(), reason="replicast's shared data is not here")
def test_the_full_splitwise_csv_fits_and_plans_bloom_176b() -> None:
    found = candidates(default_catalog(), "bloom-176b", SHARED_CSV)
    assert [c.label for c in found] == [
        "Standard_ND96amsr_A100_v4 tp8", "Standard_ND96isr_H100_v5 tp8",
    ]  # fmt: skip
    assert found[0].perf_name == "a100-tp8-bloom-176b"


def default_text() -> str:
    return resources.files("simulator").joinpath("data", "sku_catalog.yaml").read_text()
