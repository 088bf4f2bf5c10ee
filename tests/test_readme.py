"""The README's commands and Python example are what a newcomer runs: keep them true."""

from __future__ import annotations

import re
from pathlib import Path

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_readme_opens_with_the_setup_and_test_commands() -> None:
    block = re.search(r"```bash\n(.*?)```", README, re.S)
    assert block is not None
    commands = [line for line in block.group(1).splitlines() if line and not line.startswith("#")]
    setup = "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]'"
    assert commands == [f"{setup} && .venv/bin/replicast demo", ".venv/bin/python -m pytest"]
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert ci.rstrip().endswith(commands[1])


def test_readme_python_example_runs_and_its_comment_is_true() -> None:
    code = re.search(r"```python\n(.*?)```", README, re.S)
    assert code is not None
    scope: dict[str, object] = {}
    exec(code.group(1), scope)
    record = scope["record"]
    assert (record.proposal, record.replicas) == (13, 7)  # type: ignore[attr-defined]
    assert record.reason.startswith("ScaleUpLimit")  # type: ignore[attr-defined]
