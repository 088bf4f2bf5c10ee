"""A newcomer's first hour with `replicast simulate`, `compare` and `demo` (issue 15).

Each story runs the command in-process through `controller.dispatch.main`, as the console script
does: a bad flag is one line on stderr and exit 2; a traceback would fail the test.
"""

from __future__ import annotations

import pytest

from controller.dispatch import main

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


# --- SLO flags: honoured or refused, and combined --------------------------------------------


def run_ok(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 0
    return capsys.readouterr().out


def test_slo_share_alone_is_the_default_waits_share_and_the_header_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = run_ok(["simulate", *PROFILE, "--policy", "hpa", "--slo-share", "0.5"], capsys)
    assert "SLO wait <= 1 s for 50.0%," in out


def test_slo_share_with_only_a_latency_target_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    flags = ["--slo-p95", "2s", "--slo-share", "0.5"]
    err = one_line_error(["simulate", *PROFILE, "--policy", "hpa", *flags], capsys)
    assert "--slo-share 0.5: is the share for --slo-wait" in err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--slo-share", "1.5"], "--slo-share 1.5: must be in (0, 1]"),
        (["--slo-wait", "0s"], "--slo-wait 0s: must be > 0"),
        (["--slo-p95", "fast"], "--slo-p95 fast: not a duration"),
    ],
    ids=["share-over-1", "wait-zero", "p95-text"],
)
def test_a_bad_slo_flag_is_one_line_naming_it(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = one_line_error(["simulate", *PROFILE, "--policy", "hpa", *flags], capsys)
    assert message in err


def test_a_wait_and_a_p95_target_combine_each_with_its_own_figure(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # 8 req/s at 2 s mean service, sized warm: no waits, but p95 latency ~6 s is over 2 s
    flags = ["--slo-wait", "1s", "--slo-p95", "2s"]
    out = run_ok(["simulate", *PROFILE, "--policy", "hpa", *flags], capsys)
    assert "SLO wait <= 1 s for 99.0% and latency <= 2 s for 95.0%," in out
    header = next(line for line in out.splitlines() if "policy" in line)
    assert "wait <= 1 s" in header and "p95 <= 2 s" in header and " SLO " in header
    row = next(line for line in out.splitlines() if "│ hpa" in line)
    cells = [cell.strip() for cell in row.split("│")[1:-1]]
    assert cells[1] == "100.00% ok" and cells[2].endswith(" s MISS") and cells[3] == "MISS"
    assert "why hpa missed:" in out


# --- why a run missed, and defaults that make a first run meaningful -------------------------


def test_a_cold_capped_run_says_why_it_missed_and_warns_that_the_cap_binds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # 40 req/s needs ~10 replicas; 1 ready at the start and a cap of 6
    flags = ["--initial-replicas", "1", "--max-replicas", "6"]
    out = run_ok(["simulate", "--profile", "constant:40:900", "--policy", "hpa", *flags], capsys)
    why = next(line for line in out.splitlines() if line.startswith("why hpa missed:"))
    assert "started cold: 1 ready" in why and "at max_replicas 6" in why
    assert "warning: hpa: max_replicas 6 binds: held max_replicas 6 for" in out
    assert "raise --max-replicas" in out


def test_without_bounds_a_run_is_sized_from_the_load_and_starts_warm(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = run_ok(["simulate", "--profile", "constant:40:900", "--policy", "hpa"], capsys)
    # 40 req/s x ~2 s / 8 slots = ~10 busy replicas: a cap of 2 x 10 + 4, 14 ready (75 % busy)
    assert "max_replicas 24 (2 x the busiest minute: 40 req/s x 1.9" in out
    assert "14 ready at the start (the first 5 min at 40 req/s, 75 % busy)" in out
    assert "% ok" in out and "why" not in out and "warning" not in out


def test_the_14_day_trace_is_sized_from_its_peak_on_the_default_model() -> None:
    from simulator import traces  # noqa: PLC0415
    from simulator.model import ReplicaModel  # noqa: PLC0415
    from simulator.sizing import size  # noqa: PLC0415

    sized = size(traces.servegen_language_14d(), ReplicaModel.preset("gpu-llm"))
    assert round(sized.peak_rps) == 583 and sized.initial_replicas == 71
    assert 290 <= sized.max_replicas <= 300  # 2 x 583 x ~2 s / 8 + 4
