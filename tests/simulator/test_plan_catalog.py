"""The SKU catalog (simulator.plan.catalog) and its candidates (simulator.plan.candidates).

The shipped catalog holds the sizes Microsoft's size pages give; bad catalogs are one line each
naming file:line:col and the field; candidates follow the packing and memory rules and run.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from simulator.cost import default_prices
from simulator.plan import PRICINGS, CatalogError, default_catalog, load_catalog, parse_catalog
from simulator.service import TOKEN_PERF

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
