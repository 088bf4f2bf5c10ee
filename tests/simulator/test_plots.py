"""The plots show the SLO's own metric with its threshold, the cap, and one policy per axis."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from simulator import profiles
from simulator.engine import run
from simulator.plots import compare_figure, plot_compare, timeline_figure
from simulator.result import Result, SloTarget

WAIT_1S = SloTarget(1.0, "wait", 0.99)
LOAD = profiles.constant(40.0, 900.0)  # ~10 replicas busy on gpu-llm


def hpa(max_replicas: int) -> dict[str, object]:
    return {"policy": "hpa", "metric": "in_flight", "target_per_replica": 6,
            "max_replicas": max_replicas}  # fmt: skip


@pytest.fixture(scope="module")
def capped() -> Result:
    return run(LOAD, hpa(6), "gpu-llm", seed=1, slo=WAIT_1S, initial_replicas=1)


def horizontal_lines(ax: Axes) -> dict[str, float]:
    """Label -> y of each horizontal line (axhline) on `ax`."""
    out = {}
    for line in ax.get_lines():
        y = np.asarray(line.get_ydata(), dtype=float)
        if y.size == 2 and y[0] == y[1] and not str(line.get_label()).startswith("_"):
            out[str(line.get_label())] = float(y[0])
    return out


def labelled(fig: Figure, ylabel: str) -> Axes:
    return next(ax for ax in fig.axes if ax.get_ylabel() == ylabel)


def test_a_timeline_plots_the_wait_the_slo_reads_with_its_threshold_and_the_cap(
    capped: Result,
) -> None:
    fig = timeline_figure(capped, title="constant 40 req/s, gpu-llm", slo=WAIT_1S)
    ylabels = [ax.get_ylabel() for ax in fig.axes]
    assert ylabels == ["requests/s", "replicas", "wait p99 per 15 s interval, s",
                       "queued requests"]  # fmt: skip
    wait = labelled(fig, "wait p99 per 15 s interval, s")
    assert horizontal_lines(wait) == {"SLO: wait <= 1 s": 1.0}
    assert horizontal_lines(labelled(fig, "replicas")) == {"max_replicas 6": 6.0}
    title = fig.texts[0].get_text()  # the suptitle: what was run, then the outcome
    assert title.startswith("constant 40 req/s, gpu-llm\nhpa: ") and "MISS" in title
    assert fig.axes[-1].get_xlabel() == "hours from the start"


def test_a_latency_slo_plots_the_latency_percentile_it_names() -> None:
    p95 = SloTarget(20.0, "latency", 0.95)
    result = run(LOAD, hpa(16), "gpu-llm", seed=1, slo=p95, initial_replicas=16)
    fig = timeline_figure(result, slo=p95)
    latency = labelled(fig, "latency p95 per 15 s interval, s")
    assert horizontal_lines(latency) == {"SLO: p95 <= 20 s": 20.0}
    assert "ok" in fig.texts[0].get_text()


def test_compare_gives_each_policy_its_own_axes_with_whole_replica_ticks(
    capped: Result,
) -> None:
    keda = {"policy": "keda", "metric": "in_flight", "threshold": 6, "max_replicas": 6}
    other = run(LOAD, keda, "gpu-llm", seed=1, slo=WAIT_1S, initial_replicas=1)
    fig = compare_figure([capped, other], title="two policies", slo=WAIT_1S)
    replicas = [ax for ax in fig.axes if ax.get_ylabel() == "replicas"]
    assert [ax.get_title(loc="left").split(":")[0] for ax in replicas] == ["hpa", "keda"]
    for ax in replicas:
        assert [str(line.get_label()) for line in ax.get_lines()] == ["desired", "max_replicas 6"]
        assert all(float(tick).is_integer() for tick in ax.get_yticks())
    waits = [ax for ax in fig.axes if ax.get_ylabel().startswith("wait p99")]
    assert len(waits) == 2 and all("SLO: wait <= 1 s" in horizontal_lines(ax) for ax in waits)


def test_a_run_over_two_days_is_drawn_as_envelopes_with_the_busiest_day_zoomed(
    tmp_path: Path,
) -> None:
    # 3 days of 0.5 req/s stepping to 2 req/s on day 2: 17,280 ticks, drawn as 15-min bands
    load = profiles.step(0.5, 2.0, 86_400.0, 3 * 86_400.0)
    result = run(load, hpa(4), "gpu-llm", seed=1, slo=WAIT_1S, initial_replicas=1)
    fig = compare_figure([result], slo=WAIT_1S)
    (replicas,) = [ax for ax in fig.axes if ax.get_ylabel() == "replicas"]
    assert replicas.get_xlabel() == "days from the start"
    (desired,) = [line for line in replicas.get_lines() if "desired" in str(line.get_label())]
    assert str(desired.get_label()) == "desired (mean, min-max band)"
    assert len(desired.get_xdata()) == 3 * 96  # one point per 15 minutes
    written = plot_compare([result], tmp_path, title="3 days", slo=WAIT_1S)
    names = [p.name for p in written]
    assert names == ["compare.png", "compare-busiest-day.png", "timeline-1-hpa.png"]
    assert all(p.stat().st_size > 10_000 for p in written)
