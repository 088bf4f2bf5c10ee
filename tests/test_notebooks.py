"""Every notebook in notebooks/ runs top to bottom (nbclient, a fresh kernel each), fast.

The kernel gets REPLICAST_FAST=1 (every profile cut to its first hour, every sweep to at most
8 cells: simulator/experiments.py) and this checkout first on its PYTHONPATH, so it runs the
code under test rather than whichever copy the environment has installed. Each notebook is
stored without outputs (a diff shows the notebook, not its last run).
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_is_a_notebook() -> None:
    assert NOTEBOOKS, "notebooks/ holds no *.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for i, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i}: clear its outputs before committing"
            assert cell.execution_count is None, f"{path.name} cell {i}: execution_count set"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notebook = nbformat.read(path, as_version=4)
    # the kernel inherits this environment: fast mode, and this checkout's code first
    monkeypatch.setenv("REPLICAST_FAST", "1")
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(dict.fromkeys(paths)))
    # the working directory is a scratch one: a notebook that writes files leaves nothing behind
    client = NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    client.execute()  # raises CellExecutionError, naming the cell, on the first error
