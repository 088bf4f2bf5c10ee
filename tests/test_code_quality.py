"""ruff (lint + format) over the tree and mypy --strict over policies/, as part of the suite."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def tool(name: str) -> str:
    found = Path(sys.executable).parent / name
    return str(found) if found.exists() else (shutil.which(name) or name)


def check(*cmd: str) -> None:
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{' '.join(cmd)}\n{result.stdout}{result.stderr}"


def test_ruff_lint() -> None:
    check(tool("ruff"), "check", ".")


def test_ruff_format() -> None:
    check(tool("ruff"), "format", "--check", ".")


def test_mypy_strict_on_policies() -> None:
    check(tool("mypy"), "policies")
