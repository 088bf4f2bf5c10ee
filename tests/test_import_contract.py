"""policies/ is pure: no shell, no CLI, no clock, no asyncio, no I/O client, no environment,
no file reads, no global randomness; controller/ and simulator/ never import each other.

importlib.metadata (entry points) and zoneinfo (schedules) stay allowed. One deliberate
exception: policies/yaml_input.py imports yaml. It parses text a shell has read (no file, no
environment) within limits both shells need (an alias bomb, a deep document), and the shells
may not import each other, so the core is the one place both can share it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN_IN_POLICIES = (
    "controller", "simulator", "aiohttp", "kubernetes_asyncio", "azure",
    "time", "asyncio", "random", "rich", "argparse", "yaml", "os", "subprocess",
    "socket", "shutil", "tempfile", "pathlib", "io", "glob", "csv",
)  # fmt: skip
YAML_PARSER = "policies/yaml_input.py"  # the one module allowed yaml (see the docstring)


def imported_modules(package: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        out[str(path.relative_to(ROOT))] = names
    return out


def top(name: str) -> str:
    return name.split(".", maxsplit=1)[0]


def test_policies_imports_nothing_forbidden() -> None:
    for path, names in imported_modules("policies").items():
        allowed = {"yaml"} if path == YAML_PARSER else set()
        bad = sorted(n for n in names if top(n) in FORBIDDEN_IN_POLICIES and top(n) not in allowed)
        assert not bad, f"{path} imports {bad}"


def test_policies_opens_no_file_and_reads_no_environment() -> None:
    for path in sorted((ROOT / "policies").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id != "open", f"{path}:{node.lineno} calls open()"
            if isinstance(node, ast.Attribute) and node.attr in {
                "read_text", "read_bytes", "open", "environ", "getenv", "files",
            }:  # fmt: skip
                raise AssertionError(f"{path}:{node.lineno} reads a file or the environment")


def test_policies_never_calls_datetime_now() -> None:
    for path in (ROOT / "policies").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in {"now", "utcnow", "today"}:
                raise AssertionError(f"{path}:{node.lineno} reads the wall clock ({node.attr})")


def test_shells_do_not_import_each_other() -> None:
    for package, other in (("controller", "simulator"), ("simulator", "controller")):
        for path, names in imported_modules(package).items():
            assert not any(top(n) == other for n in names), f"{path} imports {other}"


def test_importing_policies_loads_no_shell_or_network_module() -> None:
    code = (
        "import sys, policies, policies.testing, policies.explain\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "{'controller','simulator','aiohttp','kubernetes_asyncio','azure','asyncio','rich',"
        "'argparse'}]\n"
        "print(','.join(sorted(bad)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_registrars_and_aci_share_the_arm_client_without_importing_each_other() -> None:
    """controller/arm.py is the ARM client; the ACI actuator and the registrars both use it."""
    modules = imported_modules("controller")
    assert "controller.arm" in modules["controller/registrars.py"]
    assert "controller.arm" in modules["controller/actuators/aci.py"]
    assert not any("aci" in n for n in modules["controller/registrars.py"])
    assert not any(
        "actuators" in n for n in modules["controller/arm.py"] - {"controller.actuators.base"}
    )
