"""docs/ARCHITECTURE.md stays a true map: every path it names exists, and every module of
controller/ and controller/actuators/ is on it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "ARCHITECTURE.md").read_text()


def test_every_path_the_map_names_exists() -> None:
    named = set(re.findall(r"`((?:policies|controller|simulator|tests)/[\w/<>.-]+)`", DOC))
    missing = sorted(p for p in named if "<" not in p and not (ROOT / p).exists())
    assert not missing, missing


def test_every_controller_module_is_on_the_map() -> None:
    for folder in ("controller", "controller/actuators"):
        for path in sorted((ROOT / folder).glob("*.py")):
            inside = path.relative_to(ROOT / "controller").as_posix()  # actuators/base.py
            if path.name != "__init__.py":
                assert f"`{path.name}`" in DOC or inside in DOC, path.name


def test_the_readme_links_the_map() -> None:
    assert "docs/ARCHITECTURE.md" in (ROOT / "README.md").read_text()
