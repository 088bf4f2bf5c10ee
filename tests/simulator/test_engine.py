"""`simulator.run` / `simulate`: the policy loop over the exact kernel, held to the oracle,
to Erlang-C, and to its own bookkeeping."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from policies import autoscaler
from simulator import kernel, profiles
from simulator.engine import KernelBackend, _schedule, run, simulate
from simulator.erlang import wait_probability
from simulator.model import ReplicaModel
from simulator.observe import VLLM_E2E_BUCKETS_S, MetricsConfig, histogram_quantile
from simulator.result import SloTarget
from simulator.traces import azure_conv
from tests.simulator.oracle import Oracle

HPA = {"policy": "hpa", "metric": "in_flight", "target_per_replica": 6, "max_replicas": 40}


class OracleBackend:
    """The heap-loop reference behind the engine's Backend protocol (one chunk only)."""

    def new_state(
        self, arrival_s: Any, service_s: Any, startup_delay_s: Any, **options: Any
    ) -> Oracle:
        return Oracle(arrival_s, service_s, startup_delay_s, **options)

    def advance(self, state: Oracle, until_s: float) -> None:
        state.advance(until_s)

    def snapshot(self, state: Oracle) -> Any:
        return state.snapshot()

    def set_replicas(self, state: Oracle, desired: int) -> None:
        state.set_replicas(desired)

    def startup_delays_left(self, state: Oracle) -> int:
        return len(state.startup_delay_s) - state.delays_used

    def add_startup_delays(self, state: Oracle, more: Any) -> Oracle:
        state.startup_delay_s.extend(float(d) for d in more)
        return state

    def carry_over(self, state: Oracle, arrival_s: Any, service_s: Any, **_: Any) -> Oracle:
        raise AssertionError("the oracle takes all requests in one chunk")

    def settled(self, state: Oracle) -> int:
        pending = np.flatnonzero(np.isposinf(np.asarray(state.start_s)))
        return int(pending[0]) if pending.size else len(state.start_s)

    def latency_histogram(self, state: Oracle) -> Any:
        # completed requests binned like the kernel's histogram (latency fields only)
        start = np.asarray(state.start_s)
        done = np.isfinite(start) & (start + np.asarray(state.service_s) <= state.now_s)
        latency = (start + np.asarray(state.service_s) - np.asarray(state.arrival_s))[done]
        edges = kernel.histogram_edges_s()
        hist = np.zeros(edges.size, dtype=np.int64)
        np.add.at(
            hist, np.clip(np.searchsorted(edges, latency, side="right") - 1, 0, edges.size - 1), 1
        )
        return hist

    def start_s(self, state: Oracle) -> Any:
        return np.asarray(state.start_s)


def azure_slice() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Twenty minutes of the real Azure conversation trace, token-priced service times."""
    arrivals = azure_conv().slice(600, 1800).arrivals(np.random.default_rng(0))
    assert arrivals.input_tokens is not None and arrivals.output_tokens is not None
    service_s = arrivals.input_tokens / 5000.0 + arrivals.output_tokens / 40.0
    delays = np.random.default_rng(7).uniform(20.0, 90.0, 500)
    return arrivals.time_s, service_s, delays


def test_the_policy_loop_matches_the_oracle_on_a_real_trace_slice() -> None:
    # The same pre-drawn arrays and the real hpa policy deciding every 15 s on what each model
    # shows it: the decisions and every request's latency agree (to 1e-9 s).
    arrival_s, service_s, delays = azure_slice()
    options = {"slots_per_replica": 8, "timeout_s": 30.0, "queue_limit": 80}

    def once(backend: Any) -> Any:
        return simulate(
            [(arrival_s, service_s)], duration_s=1200.0, startup_delay_s=delays,
            scaler=autoscaler(HPA), options=options, initial_replicas=2, keep_requests=True,
            backend=backend,
        )  # fmt: skip

    fast, slow = once(KernelBackend()), once(OracleBackend())
    assert [r.replicas for r in fast.records] == [r.replicas for r in slow.records]
    assert len({r.replicas for r in fast.records}) > 3  # the policy really scaled
    assert fast.summary.scale_events > 3
    np.testing.assert_array_equal(np.isnan(fast.start_s), np.isnan(slow.start_s))
    np.testing.assert_allclose(fast.latency_s, slow.latency_s, rtol=0, atol=1e-9)
    assert fast.summary.replica_hours == pytest.approx(slow.summary.replica_hours, abs=1e-9)


@pytest.mark.parametrize("backend", [KernelBackend(), OracleBackend()], ids=["kernel", "oracle"])
def test_startup_delays_are_drawn_again_when_a_run_uses_them_up(backend: Any) -> None:
    # Five pre-drawn delays and a policy that scales many times: more are drawn on demand,
    # and the run is the one where all of them were pre-drawn at once.
    arrival_s, service_s, delays = azure_slice()
    options = {"slots_per_replica": 8, "timeout_s": 30.0, "queue_limit": 80}
    rest = iter(np.array_split(delays[5:], 20))

    def once(first: Any, more: Any) -> Any:
        return simulate(
            [(arrival_s, service_s)], duration_s=1200.0, startup_delay_s=first,
            scaler=autoscaler(HPA), options=options, initial_replicas=2, keep_requests=True,
            backend=backend, more_startup_delays=more,
        )  # fmt: skip

    refilled = once(delays[:5].copy(), lambda n: next(rest))
    whole = once(delays.copy(), None)
    assert refilled.summary.scale_events > 3
    assert [r.replicas for r in refilled.records] == [r.replicas for r in whole.records]
    np.testing.assert_array_equal(refilled.latency_s, whole.latency_s)
    with pytest.raises(kernel.KernelError, match="pre-drawn delays are used"):
        simulate(
            [(arrival_s, service_s)], duration_s=1200.0, startup_delay_s=delays[:5].copy(),
            scaler=autoscaler(HPA), options=options, initial_replicas=2,
            backend=KernelBackend(),
        )  # fmt: skip


def test_a_fixed_pool_under_poisson_load_waits_as_erlang_c_says() -> None:
    # 4 replicas x 8 slots, exponential 1 s service, 25.6 req/s: utilization 0.8.
    # P(wait > 0) = C(32, 25.6) = 0.1606; 2 h give ~184k requests, so the share waiting has a
    # standard error near 0.004 (waits are correlated over ~1/(c mu - lambda) = 0.16 s): 6 %
    # is about four standard errors.
    model = ReplicaModel.from_spec(
        {"slots_per_replica": 8, "service": {"kind": "exponential", "mean_s": 1.0},
         "startup": {"fixed_s": 0}}
    )  # fmt: skip
    fixed = {"policy": "hpa", "metric": "in_flight", "target_per_replica": 6,
             "min_replicas": 4, "max_replicas": 4}  # fmt: skip
    result = run(profiles.constant(25.6, 7200), fixed, model, seed=3, initial_replicas=4,
                 keep_requests=True, keep_records=False)  # fmt: skip
    waited = float(np.mean(result.start_s > result.arrival_s))
    assert waited == pytest.approx(wait_probability(32, 25.6, 1.0), rel=0.06)
    assert result.summary.replica_hours == pytest.approx(4 * 2.0)
    assert result.summary.scale_events == 0


def test_changing_the_policy_never_changes_the_load() -> None:
    profile = profiles.step(5, 20, 600, 1800)
    a = run(profile, HPA, "gpu-llm", seed=11, keep_requests=True)
    b = run(profile, {**HPA, "target_per_replica": 3}, "gpu-llm", seed=11, keep_requests=True)
    np.testing.assert_array_equal(a.arrival_s, b.arrival_s)
    np.testing.assert_array_equal(a.service_s, b.service_s)
    assert a.summary.requests == b.summary.requests


def test_chunk_size_does_not_change_anything() -> None:
    profile = profiles.diurnal(20, 0.6, 4 * 3600, period_s=7200)
    big = run(profile, HPA, "gpu-llm", seed=5, chunk_s=3600, keep_requests=True)
    small = run(profile, HPA, "gpu-llm", seed=5, chunk_s=450, keep_requests=True)
    assert [r.replicas for r in big.records] == [r.replicas for r in small.records]
    np.testing.assert_array_equal(big.start_s, small.start_s)
    assert big.summary == small.summary


def test_the_policy_sees_what_prometheus_would_show() -> None:
    # constant 10 req/s, rate() over a 60 s window of 15 s scrapes: the first window holds
    # the scrapes at 0 and 15 s, and a counter starting from 0 is not extrapolated back past
    # its zero (Prometheus' extrapolatedRate), so it reads 15 s of arrivals over 60 s
    result = run(profiles.constant(10, 900), HPA, "gpu-llm", seed=2)
    first, later = result.records[0].inputs, result.records[10].inputs
    arrived = result.timeline.arrival_rate_rps[0] * 15
    assert first["request_rate_rps"] == pytest.approx(arrived / 60)
    assert later["request_rate_rps"] == pytest.approx(10, rel=0.25)
    assert later["in_flight"] == result.timeline.in_flight[10]
    assert later["now_s"] == 1_700_000_000.0 + 15 * 11


def test_a_scrape_phase_makes_each_tick_see_older_data() -> None:
    # Prometheus scrapes each target at its own phase: scrapes at 5, 20, 35 s and ticks at
    # 15, 30 s, so every tick sees data 10 s old (the sandbox measures the phase it had)
    events = list(_schedule(40.0, 15.0, 15.0, 5.0))
    assert [t for t, scrape, _ in events if scrape] == [5.0, 20.0, 35.0]
    assert [t for t, _, tick in events if tick] == [15.0, 30.0]
    lagged = run(profiles.constant(10, 900), HPA, "gpu-llm", seed=2,
                 metrics=MetricsConfig(scrape_interval_s=15.0, scrape_offset_s=5.0))  # fmt: skip
    fresh = run(profiles.constant(10, 900), HPA, "gpu-llm", seed=2)
    assert lagged.summary.requests == fresh.summary.requests  # same load, seen later
    assert [r.inputs["in_flight"] for r in lagged.records] != [
        r.inputs["in_flight"] for r in fresh.records
    ]
    with pytest.raises(ValueError, match="scrape_offset_s"):
        MetricsConfig(scrape_interval_s=15.0, scrape_offset_s=15.0)


def test_a_target_scraped_idle_before_the_start_reads_the_same_rates_as_a_fresh_one() -> None:
    # Prometheus ran before the load (the sandbox): the first 60 s windows hold the zeros
    # before the start, and rate() does not extrapolate a counter back past its zero, so they
    # read what a history that begins at the start reads: a ramp of increase / 60 s
    idle = MetricsConfig(scrape_interval_s=15.0, idle_before_s=75.0)
    before = run(profiles.constant(10, 300), HPA, "gpu-llm", seed=2, metrics=idle)
    seen = run(profiles.constant(10, 300), HPA, "gpu-llm", seed=2)
    first = [r.inputs["request_rate_rps"] for r in before.records[:4]]
    arrived = before.timeline.arrival_rate_rps[0] * 15
    assert first[0] == pytest.approx(arrived / 60)
    assert first == sorted(first) and first[3] == pytest.approx(10, rel=0.25)  # ramps to it
    assert [r.inputs for r in before.records] == [r.inputs for r in seen.records]
    with pytest.raises(ValueError, match="idle_before_s"):
        MetricsConfig(idle_before_s=-1.0)


def test_histogram_quantile_interpolates_inside_a_bucket_as_prometheus_does() -> None:
    # 100 requests: 50 in (0, 0.3], 50 in (0.3, 0.5]: p75 sits halfway into the second bucket
    bounds = VLLM_E2E_BUCKETS_S
    counts = np.array([50] + [100] * (len(bounds) - 1) + [100])
    assert histogram_quantile(0.75, bounds, counts) == pytest.approx(0.4)
    assert histogram_quantile(0.25, bounds, counts) == pytest.approx(0.15)
    assert histogram_quantile(0.5, bounds, np.zeros(len(bounds) + 1, dtype=np.int64)) is None
    over = np.array([0] * len(bounds) + [10])  # all above the highest bound
    assert histogram_quantile(0.5, bounds, over) == bounds[-1]


def test_summary_counts_slo_attainment_and_cost() -> None:
    slo = SloTarget(1.0, "wait", 0.99)
    result = run(profiles.constant(10, 1800), HPA, "gpu-llm", seed=4, slo=slo)
    s = result.summary
    assert s.requests == pytest.approx(18000, rel=0.05)
    assert 0.0 <= (s.slo_attainment or 0.0) <= 1.0
    assert s.slo_met == ((s.slo_attainment or 0.0) >= 0.99)
    hourly = ReplicaModel.preset("gpu-llm").usd_per_hour()
    assert s.cost_usd == pytest.approx(s.replica_hours * hourly)
    assert not math.isnan(result.timeline.to_pandas()["replicas"].iloc[-1])


def test_run_takes_a_spec_an_autoscaler_a_factory_or_a_policy() -> None:
    from policies.slo import FACTORY  # noqa: PLC0415

    profile = profiles.constant(5, 300)
    given = autoscaler(HPA)
    before = given.state
    by_spec = run(profile, HPA, "gpu-llm", seed=1)
    by_autoscaler = run(profile, given, "gpu-llm", seed=1)
    assert given.state == before  # the caller's autoscaler is not advanced
    assert [r.replicas for r in by_spec.records] == [r.replicas for r in by_autoscaler.records]
    assert run(profile, FACTORY, "gpu-llm", seed=1).summary.policy == "slo"
    assert run(profile, given.policy, "gpu-llm", seed=1).summary.policy == "hpa"
    with pytest.raises(TypeError, match="autoscaler: must be a spec mapping"):
        run(profile, 42, "gpu-llm", seed=1)


def test_rate_extrapolates_as_prometheus_does() -> None:
    # promql/functions.go extrapolatedRate on a [1m] range evaluated at t = 60 s
    from simulator.observe import Window  # noqa: PLC0415

    four = Window(first_s=10.0, last_s=55.0, samples=4, start_s=0.0, end_s=60.0)
    assert four.rate(100.0, 190.0) == pytest.approx(90 * 60 / 45)  # to both edges: 10 + 5 s
    assert four.rate(5.0, 95.0) == pytest.approx(90 * 52.5 / 45)  # not past its zero, 2.5 s
    assert four.rate(0.0, 90.0) == pytest.approx(90 * 50 / 45)  # a new counter: from its 0
    gap = Window(first_s=30.0, last_s=55.0, samples=2, start_s=0.0, end_s=60.0)
    assert gap.rate(100.0, 150.0) == pytest.approx(50 * 42.5 / 25)  # start too far: half a gap
    # histogram buckets each on their own, then made monotonic as histogram_quantile does
    assert four.rates([100, 5], [190, 94]) == pytest.approx([120.0, 120.0])
