"""simulator/experiments.py, the notebooks' helpers: the fast switch, the built-ins sized for a
load, jobs a pool can run, the summary table the Pareto front reads, a sweep cut when fast."""

from __future__ import annotations

import pickle

import pytest

from policies import autoscaler
from policies.registry import builtins
from simulator import experiments, sweeps
from simulator.experiments import FAST_MAX_S, Job
from simulator.model import ReplicaModel
from simulator.profile_formats import load_profile

GPU = ReplicaModel.preset("gpu-llm")  # 8 slots a replica, 2 s a request, ready after 120 s


@pytest.mark.parametrize(
    ("value", "is_fast"),
    [("1", True), ("yes", True), ("true", True), ("", False), ("0", False), ("off", False)],
    ids=["1", "yes", "true", "empty", "0", "off"],
)
def test_replicast_fast_is_read_from_the_environment(value: str, is_fast: bool) -> None:
    assert experiments.fast({"REPLICAST_FAST": value}) is is_fast


def test_without_replicast_fast_the_notebooks_run_the_real_thing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("REPLICAST_FAST", raising=False)
    assert not experiments.fast()
    assert experiments.max_duration_s() is None  # every profile whole
    assert experiments.workers() is None  # a worker per core
    monkeypatch.setenv("REPLICAST_FAST", "1")
    assert experiments.max_duration_s() == FAST_MAX_S
    assert experiments.workers() == 1  # in this process


def test_cut_keeps_the_first_hour_of_a_longer_profile_only() -> None:
    two_hours = load_profile("constant:2:7200")
    assert experiments.cut(two_hours, FAST_MAX_S).duration_s == 3600
    assert experiments.cut(two_hours, None) is two_hours
    short = load_profile("constant:2:600")
    assert experiments.cut(short, FAST_MAX_S) is short


def test_load_attaches_tokens_when_the_model_times_requests_by_them() -> None:
    # servegen-14d is a rate series (no tokens); llama2-70b-a100 times requests by tokens
    profile = experiments.load("servegen-14d", "llama2-70b-a100", is_fast=True)
    assert profile.has_token_pairs
    assert profile.duration_s == FAST_MAX_S
    assert not experiments.load("servegen-14d", "gpu-llm", is_fast=True).has_token_pairs


def test_standalone_is_every_builtin_but_the_combinators() -> None:
    assert set(experiments.STANDALONE) == set(builtins()) - {"max_of", "floor"}


@pytest.mark.parametrize("name", experiments.STANDALONE)
def test_every_builtin_gets_a_spec_its_policy_accepts(name: str) -> None:
    profile = load_profile("diurnal:40:0.5:7200")
    spec = experiments.builtin_spec(name, GPU, experiments.DEFAULT_SLO, 30, profile)
    assert spec["policy"] == name
    assert spec["max_replicas"] == 30
    autoscaler(spec)  # raises SpecError on a key the policy refuses


def test_pid_holds_requests_in_service_and_queued_at_three_quarters_of_the_slots() -> None:
    spec = experiments.pid_spec(GPU, 20)
    assert (spec["signal"], spec["per_replica"], spec["target"]) == ("extra.concurrency", True, 6)


def test_the_schedule_holds_each_hours_busiest_minute_and_the_next_hours_ahead() -> None:
    # 2 h from 22:13:20 UTC (the simulator's epoch): 20 req/s, then 60 req/s from 23:00:00
    # (2800 s in), 2 s a request, 8 slots: 20 x 2 / 8 / 0.75 = 6.7 -> 7; 60 -> 20
    profile = load_profile("step:20:60:2800:7200")
    spec = experiments.schedule_spec(profile, GPU, 50)
    rules = {rule["start"]: rule["min_replicas"] for rule in spec["rules"]}
    assert set(rules) == {"22:00", "23:00", "00:00"}
    assert rules["22:00"] >= 18  # ready before the rise at 23:00 (about 20: service times vary)
    assert rules["22:00"] == rules["23:00"] == rules["00:00"]
    assert all(rule["min_replicas"] == rule["max_replicas"] for rule in spec["rules"])
    quiet = experiments.schedule_spec(load_profile("constant:20:1800"), GPU, 50)
    assert [rule["min_replicas"] for rule in quiet["rules"]] in ([7], [6], [8])


def test_a_schedule_never_holds_more_than_max_replicas() -> None:
    spec = experiments.schedule_spec(load_profile("constant:400:1800"), GPU, 12)
    assert max(rule["max_replicas"] for rule in spec["rules"]) == 12


def test_jobs_are_bounded_as_replicast_compare_bounds_them() -> None:
    jobs = experiments.jobs(
        "constant:20:1800", "gpu-llm", ["hpa", {"policy": "ray", "target_per_replica": 5}]
    )
    hpa, ray = jobs
    # sizing: 20 req/s x 2 s / 8 slots = 5 busy replicas; max 2 x 5 + 4; 5 / 0.75 ready
    assert 12 <= hpa.spec["max_replicas"] <= 16
    assert ray.spec["max_replicas"] == hpa.spec["max_replicas"]
    assert 6 <= hpa.initial_replicas <= 8
    own = experiments.jobs("constant:20:1800", "gpu-llm", [{"policy": "ray", "max_replicas": 3}])
    assert own[0].spec["max_replicas"] == 3
    assert own[0].initial_replicas == 3  # never more ready than the policy may keep


def test_labelled_jobs_name_their_runs() -> None:
    jobs = experiments.jobs(
        "constant:2:600", "gpu-llm",
        {"slow ray": {"policy": "ray", "downscale_delay_s": 600}, "plain": "hpa"},
    )  # fmt: skip
    assert [j.label for j in jobs] == ["slow ray", "plain"]
    assert experiments.run_job(jobs[0]).summary.policy == "slow ray"
    assert experiments.summary_table(jobs[:1], [experiments.run_job(jobs[0])])["label"][0] == (
        "slow ray"
    )


def test_a_job_and_run_job_pickle_into_a_spawned_worker() -> None:
    job = experiments.jobs("constant:2:600", "gpu-llm", ["hpa"])[0]
    assert pickle.loads(pickle.dumps(job)) == job
    assert pickle.loads(pickle.dumps(experiments.run_job)) is experiments.run_job


def test_a_fast_job_runs_the_first_hour_and_its_table_has_a_pareto_front() -> None:
    jobs = experiments.jobs("constant:4:7200", "gpu-llm", ["hpa", "ray"], is_fast=True)
    results = sweeps.map_ordered(experiments.run_job, jobs)
    assert all(r.summary.duration_s == FAST_MAX_S for r in results)
    table = experiments.summary_table(jobs, results)
    assert list(table["label"]) == ["hpa", "ray"]
    assert set(table["slo"]) == {"wait <= 1 s for 99.0%"}
    points = sweeps.front(table)
    assert len(points) == 2
    assert points["on_front"].any()


def test_a_sweep_is_whole_unless_fast() -> None:
    data = {
        "profile": "constant:2:7200", "seeds": [1, 2, 3],
        "policies": [{"policy": "hpa", "metric": "in_flight", "target_per_replica": [2, 3, 4, 5]}],
    }  # fmt: skip
    spec, cells = experiments.grid(data, is_fast=False)
    assert (len(cells), spec.slice) == (12, None)
    spec, cells = experiments.grid(data, is_fast=True)
    assert spec.slice == "0:3600"
    assert len(cells) == 8
    assert [c.index for c in cells] == list(range(8))


@pytest.mark.parametrize(
    ("given", "lengths_s", "cut"),
    [
        (None, (7200.0, 7200.0), "0:3600"),
        (None, (1800.0, 3600.0), None),  # every profile is an hour or less: nothing to cut
        (None, (3501.9027, 1e6), "0:3501.9"),  # the shortest profile's end, rounded down
        ("0:86400", (1e6, 1e6), "0:3600"),
        ("7200:", (1e6, 1e6), "7200:10800"),
        ("100:1000", (1e6, 1e6), "100:1000"),
    ],
)
def test_a_fast_slice_is_at_most_the_first_hour_of_the_one_given(
    given: str | None, lengths_s: tuple[float, float], cut: str | None
) -> None:
    assert experiments._first_hour(given, *lengths_s) == cut


def test_thin_keeps_seeds_together_and_spreads_the_configurations() -> None:
    data = {
        "profile": "constant:2:600", "seeds": [1, 2, 3],
        "policies": [
            {"policy": "hpa", "metric": "in_flight", "target_per_replica": [2, 3, 4, 5, 6]},
            {"policy": "ray", "target_per_replica": [2, 3]},
        ],
    }  # fmt: skip
    _, cells = sweeps.parse_grid(data)  # 7 configurations x 3 seeds
    kept = experiments.thin(cells)
    assert len(kept) == 8
    labels = [c.label for c in kept]
    assert labels[0] == "hpa target_per_replica=2"  # the first configuration
    assert labels[-1] == "ray target_per_replica=3"  # and the last
    assert [c.seed for c in kept] == [1, 2] * 4  # two seeds each, together
    assert experiments.thin(cells[:5]) == cells[:5]  # small enough already


def test_figures_become_png_bytes() -> None:
    jobs = [
        Job("constant:2:600", "gpu-llm", {"policy": "hpa", "metric": "in_flight",
            "target_per_replica": 6, "max_replicas": 4}, 1, seed)
        for seed in (1, 2)
    ]  # fmt: skip
    table = experiments.summary_table(jobs, [experiments.run_job(j) for j in jobs])
    figure = experiments.seeds_figure(table)
    assert figure.axes[0].get_xlabel().startswith("SLO attainment (%")
    assert experiments.png(figure).startswith(b"\x89PNG")


def test_compare_shows_every_row_whole_when_the_last_row_asks_for_least() -> None:
    fixed = {"policy": "schedule", "default": {"min_replicas": 2, "max_replicas": 2}}
    jobs = experiments.jobs("constant:20:900", "gpu-llm", ["hpa", {**fixed, "max_replicas": 2}])
    results = [experiments.run_job(j) for j in jobs]
    most = max(results[0].timeline.column("replicas"))
    assert most > 2 * 1.25 + 0.5  # the last row alone would cut the first off
    figure = experiments.compare_figure(results, title="two rows", slo=experiments.DEFAULT_SLO)
    rows = [ax for ax in figure.axes if ax.get_ylabel() == "replicas"]
    assert len(rows) == 2
    assert all(ax.get_ylim()[1] >= most for ax in rows)
    experiments.png(figure)


def sweep_table(rows: list[tuple[str, int, float, float]]) -> object:
    """A sweep's table from (label, seed, attainment, replica-hours) rows, one condition."""
    import pandas as pd  # noqa: PLC0415

    return pd.DataFrame(
        [
            {"profile": "p", "model": "m", "slo": "wait <= 1 s for 99.0%", "label": label,
             "block": 0, "seed": seed, "slo_share": 0.99, "slo_attainment": attained,
             "replica_hours": hours, "cost_usd": None, "error": "",
             "spec": f'{{"policy": "ray", "target_per_replica": {label[-1]}}}'}
            for label, seed, attained, hours in rows
        ]
    )  # fmt: skip


def test_pick_takes_the_cheapest_that_meets_the_slo_on_every_seed() -> None:
    table = sweep_table([
        ("ray t=4", 1, 0.999, 30.0), ("ray t=4", 2, 0.998, 31.0),  # meets, dear
        ("ray t=6", 1, 0.993, 20.0), ("ray t=6", 2, 0.991, 21.0),  # meets, cheapest that does
        ("ray t=7", 1, 0.995, 18.0), ("ray t=7", 2, 0.985, 18.5),  # mean 99 %, one seed misses
    ])  # fmt: skip
    best = experiments.pick(table)
    assert (best["label"], best["met"]) == ("ray t=6", True)
    assert best["spec"] == {"policy": "ray", "target_per_replica": 6}


def test_when_none_meets_the_slo_pick_takes_the_best_worst_seed() -> None:
    table = sweep_table([
        ("ray t=4", 1, 0.98, 30.0), ("ray t=4", 2, 0.97, 31.0),
        ("ray t=6", 1, 0.99, 20.0), ("ray t=6", 2, 0.95, 21.0),
    ])  # fmt: skip
    best = experiments.pick(table)
    assert (best["label"], best["met"]) == ("ray t=4", False)
