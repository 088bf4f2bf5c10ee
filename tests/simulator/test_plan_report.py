"""`replicast plan` on a short real trace: its files, its config, its page in Chromium."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from controller.config import validate_config
from simulator.plan.cli import cmd_plan

ARGS = ["--profile", "azure-conv", "--workers", "1", "--growth", "30%/quarter", "--horizon", "4q",
        "--quota-gpus", "64"]  # fmt: skip


@pytest.fixture(scope="module")
def plan_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("plan")
    assert cmd_plan([*ARGS, "--out", str(out)]) == 0
    return out


def test_the_plan_writes_its_files_and_a_config_that_validates(plan_dir: Path) -> None:
    for name in ("plan.html", "plan.md", "plan.json", "controller.yaml", "load.png", "pareto.png",
                 "week.png", "growth.png"):  # fmt: skip
        assert (plan_dir / name).stat().st_size > 500, name
    assert validate_config(plan_dir / "controller.yaml") == []
    data = json.loads((plan_dir / "plan.json").read_text())
    rec = data["recommended"]
    assert rec["slo_met"] and rec["slo_attainment"] >= 0.99
    assert all(c["slo_met"] for c in data["checks"]), "the choice holds on other seeds"
    assert [g["months"] for g in data["growth"]] == [0, 3, 6, 9, 12]
    assert any(s["simulated"] for s in data["screen"]) and len(data["screen"]) >= 5
    split = rec["best_split"]
    assert split["usd_per_month"] <= rec["splits"][0]["usd_per_month"]  # never above on demand
    md = (plan_dir / "plan.md").read_text()
    assert "## Recommendation" in md and "![pareto.png](pareto.png)" in md


def test_the_page_renders_in_chromium_with_every_image_and_the_config(plan_dir: Path) -> None:
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if browser is None or driver is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium and chromium-driver are required in CI (apt-get install)")
        pytest.skip("Debian's chromium and chromium-driver are not installed")
    from selenium import webdriver  # noqa: PLC0415 - only with a browser
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    flags = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run")  # fmt: skip
    for flag in flags:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    try:
        chrome.get((plan_dir / "plan.html").as_uri())
        widths = chrome.execute_script(
            "return Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)"
        )
        assert len(widths) == 4 and all(w > 0 for w in widths), widths
        config = chrome.find_element("id", "config").text
        assert "apiVersion: replicast/v1" in config and "policy:" in config
        assert "Recommendation" in chrome.find_element("tag name", "h2").text
        errors = [e for e in chrome.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
    finally:
        chrome.quit()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--growth", "lots"], "replicast plan: --growth lots: use RATE%/PERIOD"),
        (["--slo-share", "2"], "replicast plan: --slo-share 2: must be in (0, 1]"),
        (["--model", "gpt-9"], "replicast plan: "),
        (["--catalog", "missing.yaml"], "replicast plan: missing.yaml"),
        (["--policies", "hpa,magic"], "replicast plan: --policies hpa,magic: choose from"),
    ],
    ids=["growth", "slo", "model", "catalog", "policies"],
)
def test_bad_plan_inputs_are_one_line(
    args: list[str], expected: str, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    assert cmd_plan(["--profile", "azure-conv", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(expected), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "replicast-plan").exists()
