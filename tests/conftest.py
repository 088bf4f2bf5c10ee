"""Shared fixtures: the example plugin distribution on sys.path (as if pip-installed)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PLUGIN_SITE = Path(__file__).parent / "plugins" / "site"


@pytest.fixture
def plugin_installed() -> Iterator[None]:
    """Entry points of tests/plugins/site/*.dist-info become visible to importlib.metadata."""
    sys.path.insert(0, str(PLUGIN_SITE))
    try:
        yield
    finally:
        sys.path.remove(str(PLUGIN_SITE))
