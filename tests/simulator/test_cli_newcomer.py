"""A newcomer's first hour with `replicast simulate`, `compare` and `demo` (issue 15).

Each story runs the command in-process through `policies.cli.main`, as the console script
does: a bad flag is one line on stderr and exit 2; a traceback would fail the test.
"""

from __future__ import annotations

import pytest

from policies.cli import main

PROFILE = ["--profile", "constant:8:900"]


def one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """`replicast ARGV`: exit 2 and one line on stderr (returned), nothing on stdout."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.out == "", captured
    return captured.err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--interval", "0"], "--interval 0: must be > 0 seconds, e.g. 15"),
        (["--interval", "-5"], "--interval -5: must be > 0 seconds"),
        (["--interval", "abc"], "argument --interval: invalid float value: 'abc'"),
        (["--interval", "1000"], "--interval 1000: longer than the profile (900 s)"),
        (["--initial-replicas", "-1"], "--initial-replicas -1: must be >= 0"),
        (["--seed", "-1"], "--seed -1: must be >= 0"),
        (["--slice", "abc"], "--slice abc: allowed: START:END in seconds"),
    ],
    ids=["interval-0", "interval-negative", "interval-text", "interval-too-long",
         "initial-negative", "seed-negative", "slice-text"],
)  # fmt: skip
def test_a_bad_number_is_one_line_naming_the_flag(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = one_line_error(["simulate", *PROFILE, "--policy", "hpa", *flags], capsys)
    assert err.startswith(f"replicast simulate: {message}")


@pytest.mark.parametrize("name", ["hpaa", "HPA"])
def test_an_unknown_policy_name_lists_the_known_ones_and_the_closest(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = one_line_error(["simulate", *PROFILE, "--policy", name], capsys)
    assert err.startswith(
        f"replicast simulate: --policy {name}: unknown policy {name}; known: hpa, keda, "
        "knative, ray, slo, predictive, planner; did you mean hpa?"
    )


def test_a_policy_without_a_default_spec_asks_for_a_spec(
    capsys: pytest.CaptureFixture[str],
) -> None:
    err = one_line_error(["compare", *PROFILE, "--policy", "hpa", "--policy", "pid"], capsys)
    assert "--policy pid: no default spec" in err and "'{policy: pid, ...}'" in err
