"""controller/QUICKSTART.md's config: `replicast validate` accepts it; it needs no Kubernetes."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.cli import cmd_validate
from controller.config import LocalTarget, check_config
from controller.run import RunOptions, needs_kubernetes

EXAMPLE = Path(__file__).resolve().parents[2] / "controller" / "examples" / "local-dry-run.yaml"


def test_the_quickstart_config_validates(capsys: pytest.CaptureFixture[str]) -> None:
    assert cmd_validate([str(EXAMPLE)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == f"{EXAMPLE}: OK (1 target(s): emulator)"
    assert err == ""


def test_the_quickstart_config_needs_no_kubernetes_without_leader_election() -> None:
    config, problems = check_config(EXAMPLE)
    assert problems == [] and config is not None
    assert all(isinstance(t.scale_target, LocalTarget) for t in config.targets)
    options = RunOptions(leader_election=False, dry_run=True)
    assert not needs_kubernetes(config, options)
