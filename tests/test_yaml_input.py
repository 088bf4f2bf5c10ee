"""Hostile YAML ends within a second with one line naming the file and line, in every reader:
the controller config (`replicast validate`, in a fresh process), `replicast import`, the
price table, policy spec and story files, and the emulator's model file (issue 14, item 7)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from controller.config import validate_config
from controller.importer import NotAcceptedError
from controller.importer import _load as import_documents
from policies import yaml_input
from policies.explain import ScriptError
from simulator.cost import PriceError, load_prices
from simulator.explain import load_script, load_spec
from simulator.live.emulator import EmulatorError
from simulator.live.emulator_cli import build_model

ROOT = Path(__file__).resolve().parent.parent

BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{c}: &{c} [" + ",".join([f"*{p}"] * 9) + "]\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)
HOSTILE = {
    "alias-bomb": (BOMB, "expands to more than 200,000 values through aliases"),
    "deep-flow": ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than 100 levels deep"),
    "deep-block": (
        "".join("  " * i + f"k{i}:\n" for i in range(150)) + "  " * 150 + "v\n",
        "nested more than 100 levels deep",
    ),
    "recursive": ("a: &a [*a]\n", "an alias refers to its own anchor"),
    "alias-chain": (
        "x0: &x0 [1]\n" + "".join(f"x{i}: &x{i} [*x{i - 1}]\n" for i in range(1, 3000)),
        "nested more than 100 levels deep through aliases",
    ),
    "too-many-values": ("a: [" + ",".join(["1"] * 250_000) + "]\n", "more than 200,000 values"),
    "too-big": ("a: '" + "x" * (5 * 1024 * 1024) + "'\n", "more than the 4 MiB"),
}


@pytest.mark.parametrize(("text", "expected"), HOSTILE.values(), ids=HOSTILE.keys())
def test_the_limits_refuse_hostile_text_at_once(text: str, expected: str) -> None:
    started = time.perf_counter()
    with pytest.raises(yaml_input.YamlLimitError) as raised:
        yaml_input.load(text)
    assert time.perf_counter() - started < 2.0
    assert expected in str(raised.value) and "\n" not in str(raised.value)


def test_ordinary_documents_load_as_safe_load_does() -> None:
    text = "a: &x {b: 1, c: [1, 2.5, null, true]}\nd: *x\ne: '2026-01-01'\n"
    value, node = yaml_input.load(text)
    assert value == yaml.safe_load(text)
    assert node is not None and node.start_mark.line == 0
    assert yaml_input.load("") == (None, None)
    assert yaml_input.load_all("a: 1\n---\n---\nb: 2\n") == [{"a": 1}, {"b": 2}]
    with pytest.raises(yaml_input.YamlLimitError, match="expected one YAML document"):
        yaml_input.load("a: 1\n---\nb: 2\n")


def test_a_deep_but_legal_document_loads() -> None:
    text = "a: " + "[" * 90 + "1" + "]" * 90 + "\n"
    assert yaml_input.safe_load(text) is not None


def emulator_model(path: Path) -> None:
    build_model(argparse.Namespace(model=str(path), slots=None, service=None, startup_s=None))


READERS: dict[str, tuple[Callable[[Path], object], type[Exception]]] = {
    "import": (import_documents, NotAcceptedError),
    "prices": (load_prices, PriceError),
    "spec": (lambda p: load_spec(str(p)), ScriptError),
    "story": (load_script, ScriptError),
    "emulator-model": (emulator_model, EmulatorError),
}


@pytest.mark.parametrize("kind", ["alias-bomb", "deep-flow", "recursive", "too-many-values"])
@pytest.mark.parametrize("reader", READERS.keys())
def test_every_yaml_reader_gives_one_line(tmp_path: Path, reader: str, kind: str) -> None:
    read, error = READERS[reader]
    path = tmp_path / "input.yaml"
    path.write_text(HOSTILE[kind][0])
    started = time.perf_counter()
    with pytest.raises(error) as raised:
        read(path)
    assert time.perf_counter() - started < 2.0
    message = str(raised.value)
    assert "\n" not in message, message
    assert reader == "import" or str(path) in message, message  # import names it in its caller


@pytest.mark.parametrize("kind", HOSTILE.keys())
def test_validate_reports_the_file_and_line(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(HOSTILE[kind][0])
    [problem] = validate_config(path)
    assert str(problem).startswith(f"{path}:")
    assert HOSTILE[kind][1].split(" (")[0] in str(problem)


def test_replicast_validate_on_an_alias_bomb_ends_in_a_second_with_one_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    started = time.perf_counter()
    done = subprocess.run(
        [str(Path(sys.executable).with_name("replicast")), "validate", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    elapsed = time.perf_counter() - started
    assert done.returncode == 1, done
    [line] = done.stderr.strip().splitlines() or done.stdout.strip().splitlines()
    assert line.startswith(f"{path}:6:") and "alias bomb" in line, line
    assert "Traceback" not in done.stderr
    assert elapsed < 15  # a fresh interpreter's imports included; the check itself is ~ms
