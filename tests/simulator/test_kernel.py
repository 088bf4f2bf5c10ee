"""Stories about the simulator's queueing kernel (simulator/kernel.py).

1. It is exact: driven by the same decisions, the compiled kernel and a plain event-by-event
   reference (oracle.py) agree on every decision, every sampled observation and every request's
   start time -- on the Azure LLM conversation trace and on a synthetic run full of ties; and a
   run fed in chunks (`kernel.carry_over`) equals the same run fed at once.
2. It is faithful: a fixed pool under stationary Poisson load matches Erlang-C.
3. Edge cases, as small traces with hand-checked numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from simulator import erlang, kernel
from simulator.traces import azure_conv
from tests.simulator.oracle import Oracle


def load_azure_trace() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The packaged Azure conversation trace: seconds since the first request, tokens."""
    arrivals = azure_conv().arrivals(np.random.default_rng(0))
    assert arrivals.input_tokens is not None and arrivals.output_tokens is not None
    tokens = arrivals.input_tokens.astype(float), arrivals.output_tokens.astype(float)
    return arrivals.time_s, *tokens


def stand_in_policy(seen: Any) -> int:
    """Six requests (queued or in service) per replica, 1..20 replicas: the same inputs give the
    same decision, which is all these tests need from an autoscaler."""
    return min(20, max(1, math.ceil(int(seen.in_flight + seen.queued) / 6)))


class KernelTarget:
    """The kernel behind the oracle's interface."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state = kernel.new_state(*args, **kwargs)

    def advance(self, until_s: float) -> None:
        kernel.advance(self.state, until_s)

    def snapshot(self) -> kernel.Snapshot:
        return kernel.snapshot(self.state)

    def set_replicas(self, desired: int) -> None:
        kernel.set_replicas(self.state, desired)

    @property
    def start_s(self) -> np.ndarray:
        return self.state.start_s


def drive(
    target: Any,
    *,
    scrape_s: float,
    scrapes_per_tick: int,
    until_s: float,
    policy: Callable[[Any], int] = stand_in_policy,
) -> tuple[list[dict[str, Any]], list[int]]:
    """Sample every scrape_s; every scrapes_per_tick-th sample is a control tick that decides."""
    samples, decisions = [], []
    for k in range(1, math.ceil(until_s / scrape_s) + 1):
        target.advance(k * scrape_s)
        seen = target.snapshot()
        samples.append(seen._asdict())
        if k % scrapes_per_tick == 0:
            decisions.append(policy(seen))
            target.set_replicas(decisions[-1])
    return samples, decisions


def assert_same_requests(kernel_start_s: np.ndarray, oracle_start_s: list[float]) -> None:
    expected = np.asarray(oracle_start_s)
    assert np.array_equal(np.isnan(kernel_start_s), np.isnan(expected)), "dropped requests differ"
    started = np.isfinite(expected)
    assert np.array_equal(np.isfinite(kernel_start_s), started), "started requests differ"
    np.testing.assert_allclose(kernel_start_s[started], expected[started], rtol=0, atol=1e-9)


def assert_same_samples(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert len(got) == len(want)
    for mine, theirs in zip(got, want, strict=True):
        for name, value in mine.items():
            assert value == pytest.approx(theirs[name], rel=1e-9, abs=1e-9), (
                f"{name} at t={mine['now_s']}: kernel {value}, oracle {theirs[name]}"
            )


def run_both(
    arrival_s: np.ndarray,
    service_s: np.ndarray,
    startup_delay_s: np.ndarray,
    *,
    scrape_s: float,
    scrapes_per_tick: int,
    until_s: float,
    **model: Any,
) -> tuple[KernelTarget, Oracle, list[dict[str, Any]], list[int]]:
    """Both simulators on the same arrays; assert they agree; return them for more checks."""
    fast = KernelTarget(arrival_s, service_s, startup_delay_s, **model)
    fast_samples, fast_decisions = drive(
        fast, scrape_s=scrape_s, scrapes_per_tick=scrapes_per_tick, until_s=until_s
    )
    slow = Oracle(arrival_s, service_s, startup_delay_s, **model)
    slow_samples, slow_decisions = drive(
        slow, scrape_s=scrape_s, scrapes_per_tick=scrapes_per_tick, until_s=until_s
    )
    assert fast_decisions == slow_decisions
    assert_same_samples(fast_samples, slow_samples)
    assert_same_requests(fast.start_s, slow.start_s)
    return fast, slow, fast_samples, fast_decisions


def exercised(samples: list[dict[str, Any]], slow: Oracle) -> dict[str, int]:
    last = samples[-1]
    return {
        "timeouts": last["dropped_timeout"],
        "queue_full_drops": last["dropped_queue_full"],
        "drained_replicas": slow.drained,
        "cancelled_starts": slow.cancelled,
        "samples_with_draining": sum(s["draining_replicas"] > 0 for s in samples),
        "samples_with_starting": sum(s["starting_replicas"] > 0 for s in samples),
    }


# --------------------------------------------------------------------------- 1. exactness


def test_kernel_matches_the_reference_on_the_azure_conversation_trace() -> None:
    # One hour of real conversation traffic (19,366 requests, bursty). Service time from the
    # token counts: prefill at 5,000 tokens/s, decode at 40 tokens/s. Replicas start in 10-90 s,
    # so bursts outrun the autoscaler: requests time out after 10 s or find 60 queued.
    arrival_s, context_tokens, generated_tokens = load_azure_trace()
    assert np.all(np.diff(arrival_s) >= 0)
    service_s = context_tokens / 5000.0 + generated_tokens / 40.0
    startup_delay_s = np.random.default_rng(2023).uniform(10.0, 90.0, 2000)
    _, slow, samples, decisions = run_both(
        arrival_s, service_s, startup_delay_s,
        scrape_s=15.0, scrapes_per_tick=1, until_s=arrival_s[-1] + 300.0,
        slots_per_replica=8, initial_ready=2, max_replicas=64, timeout_s=10.0, queue_limit=60,
    )  # fmt: skip
    # The run went through every mechanism the model has, not just the easy path. (Its drains
    # end within one 15 s interval; the synthetic run below has drains that a tick sees.)
    seen = exercised(samples, slow)
    del seen["samples_with_draining"]
    assert all(count > 0 for count in seen.values()), seen
    assert len(set(decisions)) > 5


def tied_synthetic_load(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Poisson arrivals at 3, 25, 2, 40 and 0.5 requests/s in turn, on a 1/16 s grid; service
    exponential (mean 1.5 s, one in ten mean 40 s) on a 1/4 s grid, so many are exactly 0;
    startup delays of 0, 5, 15, 30 or 45 s. Every number is a binary fraction, so arrivals,
    completions, ready times, timeouts and ticks coincide exactly and often."""
    rng = np.random.default_rng(seed)
    arrivals, begin_s = [], 0.0
    for duration_s, rate_rps in ((300, 3.0), (600, 25.0), (600, 2.0), (300, 40.0), (300, 0.5)):
        count = rng.poisson(rate_rps * duration_s)
        arrivals.append(begin_s + np.sort(rng.uniform(0.0, duration_s, count)))
        begin_s += duration_s
    arrival_s = np.floor(np.concatenate(arrivals) * 16) / 16
    long = rng.random(arrival_s.size) < 0.1
    mean_s = np.where(long, 40.0, 1.5)
    service_s = np.round(rng.standard_exponential(arrival_s.size) * mean_s * 4) / 4
    startup_delay_s = rng.choice([0.0, 5.0, 15.0, 30.0, 45.0], 2000)
    return arrival_s, service_s, startup_delay_s


def test_kernel_matches_the_reference_on_synthetic_load_full_of_ties() -> None:
    arrival_s, service_s, startup_delay_s = tied_synthetic_load(seed=1)
    assert np.sum(service_s == 0) > 100
    assert np.sum(np.diff(arrival_s) == 0) > 100
    # Scraped every 5 s, decided every 15 s: the gauges between ticks must agree too.
    _, slow, samples, _ = run_both(
        arrival_s, service_s, startup_delay_s,
        scrape_s=5.0, scrapes_per_tick=3, until_s=2400.0,
        slots_per_replica=8, initial_ready=1, max_replicas=40, timeout_s=10.0, queue_limit=100,
    )  # fmt: skip
    assert all(count > 0 for count in exercised(samples, slow).values()), exercised(samples, slow)


def test_a_run_fed_in_chunks_equals_the_run_fed_at_once() -> None:
    # Memory stays bounded by a chunk: queued requests carry over into the next chunk.
    arrival_s, service_s, startup_delay_s = tied_synthetic_load(seed=2)
    model: dict[str, Any] = {
        "slots_per_replica": 8, "initial_ready": 1, "max_replicas": 40, "timeout_s": 10.0
    }  # fmt: skip
    whole = KernelTarget(arrival_s, service_s, startup_delay_s, **model)
    whole_samples, _ = drive(whole, scrape_s=15.0, scrapes_per_tick=1, until_s=2400.0)

    cuts_s = [450.0, 900.0, 1650.0]  # tick times after which the next chunk is handed over
    pieces = np.split(np.arange(arrival_s.size), np.searchsorted(arrival_s, cuts_s, "right"))
    state = kernel.new_state(arrival_s[pieces[0]], service_s[pieces[0]], startup_delay_s, **model)
    final_start_s, samples = [], []
    for k in range(1, 161):
        kernel.advance(state, k * 15.0)
        samples.append(kernel.snapshot(state)._asdict())
        kernel.set_replicas(state, stand_in_policy(kernel.snapshot(state)))
        if k * 15.0 in cuts_s:
            final_start_s.append(state.start_s[: kernel.settled(state)])
            piece = pieces[1 + cuts_s.index(k * 15.0)]
            state = kernel.carry_over(state, arrival_s[piece], service_s[piece])
    final_start_s.append(state.start_s)

    assert_same_samples(samples, whole_samples)
    chunked_start_s = np.concatenate(final_start_s)
    assert_same_requests(chunked_start_s, list(whole.start_s))


# --------------------------------------------------------------------------- 2. fidelity

BATCHES = 20
T_975_19_DOF = 2.093  # Student t, 97.5 % quantile, BATCHES - 1 degrees of freedom


def batch_means(values: np.ndarray) -> tuple[float, float]:
    """Mean and its standard error from BATCHES consecutive batches (batches of a long run are
    nearly independent even though consecutive waits are strongly correlated)."""
    batches = values[: values.size // BATCHES * BATCHES].reshape(BATCHES, -1).mean(axis=1)
    return float(batches.mean()), float(batches.std(ddof=1) / math.sqrt(BATCHES))


@pytest.mark.parametrize(
    ("utilization", "requests"),
    [(0.5, 10_000_000), (0.8, 3_000_000), (0.95, 4_000_000)],
    ids=["utilization=0.5", "utilization=0.8", "utilization=0.95"],
)
def test_a_fixed_pool_under_poisson_load_matches_erlang_c(
    utilization: float, requests: int
) -> None:
    # 4 replicas x 8 slots = 32 servers, exponential service of mean 1 s, no autoscaler. The
    # first 5 % of requests warm the queue up. P(wait > t) is read at t = 1 / (c mu - lambda),
    # the mean wait of those who wait, where it equals P(wait > 0) / e.
    servers, mean_service_s = 32, 1.0
    rate_rps = utilization * servers / mean_service_s
    rng = np.random.default_rng(42)
    arrival_s = np.cumsum(rng.standard_exponential(requests) / rate_rps)
    service_s = rng.standard_exponential(requests) * mean_service_s
    state = kernel.new_state(arrival_s, service_s, np.zeros(0), slots_per_replica=8,
                             initial_ready=4, max_replicas=4)  # fmt: skip
    kernel.advance(state, arrival_s[-1] + 3600.0)
    wait_s = (state.start_s - arrival_s)[requests // 20 :]
    threshold_s = mean_service_s / (servers - rate_rps * mean_service_s)

    for name, values, exact in [
        ("mean wait", wait_s, erlang.mean_wait_s(servers, rate_rps, mean_service_s)),
        ("P(wait > t)", (wait_s > threshold_s).astype(float),
         erlang.wait_exceeds_probability(servers, rate_rps, mean_service_s, threshold_s)),
    ]:  # fmt: skip
        simulated, standard_error = batch_means(values)
        # Within four batch-means standard errors: a right kernel misses that about once in
        # 16,000 seeds; a bias bigger than that is found. The test's size makes the standard
        # error at most 12 % (0.5: waiting is rare), 2 % (0.8) and 3 % (0.95) of the exact
        # value; bench/sim_kernel.py runs long enough for 2 %.
        assert standard_error <= {0.5: 0.12, 0.8: 0.02, 0.95: 0.03}[utilization] * exact
        assert abs(simulated - exact) <= 4 * standard_error, (
            f"{name} at utilization {utilization}: simulated {simulated:.6g} "
            f"+- {T_975_19_DOF * standard_error:.2g} (95 %), Erlang-C {exact:.6g}"
        )


def test_erlang_c_reproduces_the_worked_example() -> None:
    # simulator/erlang.py's docstring: c = 32, a = 25.6 erlangs, mean service 1 s.
    assert erlang.wait_probability(32, 25.6, 1.0) == pytest.approx(0.16062, abs=5e-6)
    assert erlang.mean_wait_s(32, 25.6, 1.0) == pytest.approx(0.16062 / 6.4, rel=1e-4)
    assert erlang.wait_exceeds_probability(32, 25.6, 1.0, 1 / 6.4) == pytest.approx(
        0.16062 / math.e, rel=1e-4
    )
    # M/M/1 at utilization 0.5: half the requests wait, on average 1 s.
    assert erlang.wait_probability(1, 0.5, 1.0) == pytest.approx(0.5)
    assert erlang.mean_wait_s(1, 0.5, 1.0) == pytest.approx(1.0)
    q95_s = erlang.wait_quantile_s(32, 30.4, 1.0, 0.95)
    assert erlang.wait_exceeds_probability(32, 30.4, 1.0, q95_s) == pytest.approx(0.05)
    with pytest.raises(erlang.ErlangError, match="must be < servers=32"):
        erlang.mean_wait_s(32, 32.0, 1.0)


# --------------------------------------------------------------------------- 3. edge cases


def test_with_no_replicas_requests_queue_until_one_is_ready() -> None:
    state = kernel.new_state([1.0, 2.0, 3.0], [10.0, 10.0, 10.0], [10.0],
                             slots_per_replica=8, initial_ready=0, max_replicas=4)  # fmt: skip
    kernel.advance(state, 5.0)  # three arrivals, nowhere to run
    seen = kernel.snapshot(state)
    assert (seen.queued, seen.in_flight, seen.ready_replicas) == (3, 0, 0)
    kernel.set_replicas(state, 1)  # ready at 5 + 10 = 15
    kernel.advance(state, 14.0)
    assert kernel.snapshot(state).starting_replicas == 1
    assert kernel.snapshot(state).queued == 3
    kernel.advance(state, 40.0)  # all three start the moment it is ready
    assert list(state.start_s) == [15.0, 15.0, 15.0]
    assert list(kernel.latency_s(state)) == [24.0, 23.0, 22.0]
    assert kernel.snapshot(state).replica_seconds == 35.0  # billed from 5 s, while starting too


def test_when_every_replica_drains_new_requests_wait_for_a_new_one() -> None:
    state = kernel.new_state([0.0, 0.0, 2.0], [10.0, 20.0, 1.0], [5.0],
                             slots_per_replica=1, initial_ready=2, max_replicas=4)  # fmt: skip
    kernel.advance(state, 1.0)  # request 0 on replica 0, request 1 on replica 1
    kernel.set_replicas(state, 0)  # both drain: no new work, in-flight work finishes
    assert kernel.snapshot(state).draining_replicas == 2
    kernel.advance(state, 15.0)  # replica 0 gone at 10; request 2 (arrived at 2) still waits
    seen = kernel.snapshot(state)
    assert (seen.draining_replicas, seen.queued, seen.in_flight) == (1, 1, 1)
    kernel.set_replicas(state, 1)  # takes the free index 0, ready at 15 + 5 = 20
    kernel.advance(state, 25.0)  # replica 1 gone at 20, request 2 starts at 20
    assert state.start_s[2] == 20.0
    seen = kernel.snapshot(state)
    assert (seen.ready_replicas, seen.draining_replicas, seen.completed) == (1, 0, 3)
    assert seen.replica_seconds == 10.0 + 20.0 + 10.0


def test_a_scale_down_while_requests_queue_takes_no_new_work_on_the_draining_replica() -> None:
    state = kernel.new_state([0.0, 0.0, 1.0], [10.0, 4.0, 1.0], [],
                             slots_per_replica=1, initial_ready=2, max_replicas=2)  # fmt: skip
    kernel.advance(state, 2.0)  # A on replica 0 until 10, B on replica 1 until 4, C queued
    kernel.set_replicas(state, 1)  # replica 1 (the newest) drains
    kernel.advance(state, 5.0)
    seen = kernel.snapshot(state)
    assert (seen.draining_replicas, seen.queued) == (0, 1)  # replica 1 went at 4; C waits
    kernel.advance(state, 20.0)
    assert state.start_s[2] == 10.0  # on replica 0, not on the draining one at 4
    assert kernel.snapshot(state).replica_seconds == 20.0 + 4.0


def test_simultaneous_arrivals_start_in_order_on_the_lowest_replica_first() -> None:
    state = kernel.new_state([1.0] * 5, [5.0, 4.0, 3.0, 2.0, 1.0], [],
                             slots_per_replica=2, initial_ready=2, max_replicas=2)  # fmt: skip
    kernel.advance(state, 1.5)  # requests 0, 1 on replica 0; 2, 3 on replica 1; 4 queued
    assert kernel.snapshot(state).queued == 1
    kernel.set_replicas(state, 1)  # replica 1 drains: its slots free at 3 and 4 are not offered
    kernel.advance(state, 10.0)
    assert list(state.start_s) == [1.0, 1.0, 1.0, 1.0, 5.0]  # 4 waits for replica 0, at 5


def test_zero_service_time_completes_at_once_and_frees_the_slot() -> None:
    state = kernel.new_state([0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 5.0, 0.0], [],
                             slots_per_replica=1, initial_ready=1, max_replicas=1)  # fmt: skip
    kernel.advance(state, 0.0)
    seen = kernel.snapshot(state)
    assert (seen.completed, seen.in_flight, seen.queued) == (2, 1, 1)
    kernel.advance(state, 6.0)
    assert list(state.start_s) == [0.0, 0.0, 0.0, 5.0]
    assert list(kernel.latency_s(state)) == [0.0, 0.0, 5.0, 5.0]
    assert state.latency_hist[0] == 2  # the zero latencies, in the lowest bin


def test_timeouts_and_a_queue_limit_drop_requests_and_count_them() -> None:
    # One slot, busy until 10. Timeout 2 s, at most 1 queued.
    state = kernel.new_state([0.0, 1.0, 1.5, 4.0], [10.0, 1.0, 1.0, 1.0], [],
                             slots_per_replica=1, initial_ready=1, max_replicas=1,
                             timeout_s=2.0, queue_limit=1)  # fmt: skip
    kernel.advance(state, 5.0)  # 1 queues; 1.5 finds the queue full; 1 times out at 3; 4 queues
    seen = kernel.snapshot(state)
    assert (seen.dropped_queue_full, seen.dropped_timeout, seen.queued) == (1, 1, 1)
    kernel.advance(state, 20.0)  # 4 times out at 6, before the slot frees at 10
    assert kernel.snapshot(state).dropped_timeout == 2
    assert np.isnan(state.start_s[1:]).all()


def test_the_latency_histogram_quantiles_are_within_the_stated_error() -> None:
    rng = np.random.default_rng(3)
    arrival_s = np.cumsum(rng.standard_exponential(200_000) / 5.0)
    service_s = rng.lognormal(0.0, 1.5, arrival_s.size)  # 1 ms .. 5 min
    state = kernel.new_state(arrival_s, service_s, [], slots_per_replica=8, initial_ready=4,
                             max_replicas=4)  # fmt: skip
    kernel.advance(state, arrival_s[-1] + 1e5)
    latency_s = np.sort(kernel.latency_s(state))
    for q in (0.0, 0.01, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0):
        exact_s = np.quantile(latency_s, q, method="inverted_cdf")
        estimate_s = kernel.histogram_quantile_s(state.latency_hist, q)
        assert abs(estimate_s - exact_s) <= kernel.HISTOGRAM_RELATIVE_ERROR * exact_s, q


def test_bad_inputs_get_errors_that_name_the_argument() -> None:
    with pytest.raises(kernel.KernelError, match=r"arrival_s\[2\]: must be >= arrival_s\[1\]"):
        kernel.new_state([0.0, 2.0, 1.0], [1.0] * 3, [], slots_per_replica=1,
                         initial_ready=1, max_replicas=1)  # fmt: skip
    with pytest.raises(kernel.KernelError, match=r"service_s\[0\]: must be finite and >= 0"):
        kernel.new_state([0.0], [-1.0], [], slots_per_replica=1, initial_ready=1, max_replicas=1)
    state = kernel.new_state([0.0], [1.0], [30.0], slots_per_replica=1, initial_ready=1,
                             max_replicas=3)  # fmt: skip
    with pytest.raises(kernel.KernelError, match="all 1 pre-drawn delays are used"):
        kernel.set_replicas(state, 3)
    with pytest.raises(kernel.KernelError, match=r"until_s: must be finite and >= the state"):
        kernel.advance(state, -1.0)
