"""Benchmark of the simulator's queueing kernel: fidelity, speed, histogram error. Prints only.

In: nothing but its flags. Out: printed tables --
1. compile time of the numba kernel (cold, into an empty cache, and loaded from the cache);
2. fidelity: a fixed pool of 4 replicas x 8 slots under stationary Poisson load with exponential
   service, against Erlang-C (mean wait, P(wait > t)), with batch-means 95 % intervals;
3. speed on one core: a 14-day diurnal run with a decision every 15 s (arrival generation
   included), the plain reference (tests/simulator/oracle.py) on the first hours of the same
   run, and their ratio;
4. the largest quantile error of the kernel's latency histogram against a full sort.

Run from the repository root: `.venv/bin/python bench/sim_kernel.py` (`--quick` for a smoke run).
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one core: no BLAS helper threads

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # for tests.simulator.oracle

from simulator import erlang, kernel  # noqa: E402
from tests.simulator.oracle import Oracle  # noqa: E402

BATCHES = 20
T_975_19_DOF = 2.093  # Student t, 97.5 % quantile, 19 degrees of freedom
DAY_S = 86_400.0


# --------------------------------------------------------------------------- compile time


def compile_times_s() -> tuple[float, float]:
    """(cold compile into an empty cache, load from this checkout's cache) in seconds."""
    code = "from simulator import kernel; print(kernel.warm_up())"
    with tempfile.TemporaryDirectory() as cache_dir:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
        cold = subprocess.run(
            [sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True,
            check=True,
        )  # fmt: skip
    return float(cold.stdout.split()[-1]), kernel.warm_up()


# --------------------------------------------------------------------------- fidelity


def poisson_chunks(
    rng: np.random.Generator, rate_rps: float, mean_service_s: float, chunks: int, size: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    last_s = 0.0
    for _ in range(chunks):
        gaps_s = rng.standard_exponential(size)
        gaps_s /= rate_rps
        arrival_s = np.cumsum(gaps_s, out=gaps_s)
        arrival_s += last_s
        last_s = float(arrival_s[-1])
        yield arrival_s, rng.standard_exponential(size) * mean_service_s


def fidelity_row(utilization: float, chunks: int, chunk_size: int, warm_up: int) -> str:
    """One long run, fed in chunks; each chunk's settled requests are one batch's share."""
    servers, mean_service_s = 32, 1.0
    rate_rps = utilization * servers / mean_service_s
    threshold_s = mean_service_s / (servers - rate_rps * mean_service_s)
    rng = np.random.default_rng(20231116)
    sums = np.zeros((chunks, 3))  # per chunk: requests, sum of waits, waits > threshold
    state = None
    began = time.perf_counter()
    for k, (arrival_s, service_s) in enumerate(
        poisson_chunks(rng, rate_rps, mean_service_s, chunks, chunk_size)
    ):
        if state is None:
            state = kernel.new_state(arrival_s, service_s, np.zeros(0), slots_per_replica=8,
                                     initial_ready=4, max_replicas=4)  # fmt: skip
        else:
            state = kernel.carry_over(state, arrival_s, service_s)
        last = k == chunks - 1
        kernel.advance(state, float(arrival_s[-1]) + (3600.0 if last else 0.0))
        settled = kernel.settled(state)
        wait_s = state.start_s[:settled] - state.arrival_s[:settled]
        if k == 0:
            wait_s = wait_s[warm_up:]
        sums[k] = wait_s.size, wait_s.sum(), np.count_nonzero(wait_s > threshold_s)
    elapsed_s = time.perf_counter() - began
    batches = sums.reshape(BATCHES, -1, 3).sum(axis=1)
    cells = [f"{utilization:>5.2f}", f"{int(sums[:, 0].sum()):>12,d}"]
    exact = (
        erlang.mean_wait_s(servers, rate_rps, mean_service_s),
        erlang.wait_exceeds_probability(servers, rate_rps, mean_service_s, threshold_s),
    )
    for column, exact_value in zip((1, 2), exact, strict=True):
        per_batch = batches[:, column] / batches[:, 0]
        mean = float(sums[:, column].sum() / sums[:, 0].sum())
        half = T_975_19_DOF * float(per_batch.std(ddof=1)) / math.sqrt(BATCHES)
        cells.append(
            f"{mean:>11.5g} {exact_value:>11.5g} {100 * (mean / exact_value - 1):>+7.2f}% "
            f"+-{100 * half / exact_value:>5.2f}%"
        )
    cells.append(f"{threshold_s:>7.4f} {elapsed_s:>6.1f}")
    return "  ".join(cells)


# --------------------------------------------------------------------------- speed

TICK_S = 15.0
HOUR_S = 3600.0
TICKS_PER_HOUR = int(HOUR_S / TICK_S)


def hour_of_arrivals_s(rng: np.random.Generator, mean_rps: float, hour: int) -> np.ndarray:
    """One hour of Poisson arrivals at mean_rps * (1 + 0.6 sin(2 pi (t - 8 h) / 1 day)):
    unit-rate points mapped through the inverse of the cumulative rate (time rescaling; the rate
    is piecewise constant on a 60 s grid)."""
    grid_s = np.arange(hour * HOUR_S, (hour + 1) * HOUR_S + 60.0, 60.0)
    rate_rps = mean_rps * (1 + 0.6 * np.sin(2 * np.pi * (grid_s - 8 * 3600.0) / DAY_S))
    cumulative = np.concatenate(([0.0], np.cumsum((rate_rps[1:] + rate_rps[:-1]) / 2 * 60.0)))
    expected = cumulative[-1]
    unit = rng.standard_exponential(int(expected + 8 * math.sqrt(expected) + 100))
    np.cumsum(unit, out=unit)
    arrival_s: np.ndarray = np.interp(unit[: np.searchsorted(unit, expected)], cumulative, grid_s)
    return arrival_s


def stand_in_policy(in_flight: int, queued: int, max_replicas: int) -> int:
    """Six requests per replica (the tests' stand-in for an autoscaler)."""
    return min(max_replicas, max(1, math.ceil((in_flight + queued) / 6)))


class Load(NamedTuple):
    """What the speed runs share: the seeded load of one hour, and the target's shape."""

    mean_rps: float
    seed: int

    @property
    def max_replicas(self) -> int:
        return int(self.mean_rps) + 40

    def hour(self, rng: np.random.Generator, hour: int) -> tuple[np.ndarray, np.ndarray]:
        arrival_s = hour_of_arrivals_s(rng, self.mean_rps, hour)
        service_s = rng.standard_exponential(arrival_s.size)
        service_s *= 2.0
        return arrival_s, service_s

    def model(self) -> dict[str, int]:
        # Twice the policy's maximum: room for replicas still draining.
        return {"slots_per_replica": 8, "initial_ready": 2, "max_replicas": 2 * self.max_replicas}


class Run(NamedTuple):
    requests: int
    ticks: int
    generate_s: float
    simulate_s: float
    latency_s: np.ndarray | None  # every request's, when asked for
    latency_hist: np.ndarray


def kernel_run(load: Load, days: int, keep_latencies: bool) -> Run:
    """Hour by hour (memory bounded by an hour's requests, and reused): generate, then simulate
    with a decision every 15 s. Keeping the latencies for the histogram check is not timed."""
    rng = np.random.default_rng(load.seed)
    startup_delay_s = rng.uniform(30.0, 120.0, 1_000_000)
    generate_s = simulate_s = 0.0
    requests, kept, state = 0, [], None
    for hour in range(days * 24):
        began = time.perf_counter()
        arrival_s, service_s = load.hour(rng, hour)
        generated = time.perf_counter()
        if state is None:
            state = kernel.new_state(arrival_s, service_s, startup_delay_s, **load.model())
        else:
            if keep_latencies:
                untimed = time.perf_counter()
                kept.append(kernel.latency_s(state)[: kernel.settled(state)])
                generated += time.perf_counter() - untimed
            state = kernel.carry_over(state, arrival_s, service_s)
        count = state.count
        for k in range(hour * TICKS_PER_HOUR + 1, (hour + 1) * TICKS_PER_HOUR + 1):
            kernel.advance(state, k * TICK_S)
            desired = stand_in_policy(
                int(count[kernel.C_IN_FLIGHT]), int(count[kernel.C_QUEUED]), load.max_replicas
            )
            kernel.set_replicas(state, desired)
        generate_s += generated - began
        simulate_s += time.perf_counter() - generated
        requests += arrival_s.size
    assert state is not None
    kernel.advance(state, state.now_s + 1e5)  # untimed: let everything finish
    if keep_latencies:
        kept.append(kernel.latency_s(state))
    latency_s = np.concatenate(kept) if keep_latencies else None
    return Run(requests, days * 24 * TICKS_PER_HOUR, generate_s, simulate_s, latency_s,
               state.latency_hist)  # fmt: skip


def oracle_run(load: Load, hours_run: int) -> tuple[int, float]:
    """The reference on the first hours of the same load: (requests, seconds)."""
    rng = np.random.default_rng(load.seed)
    startup_delay_s = rng.uniform(30.0, 120.0, 1_000_000)
    hours = [load.hour(rng, hour) for hour in range(hours_run)]
    arrival_s = np.concatenate([arrival for arrival, _ in hours])
    service_s = np.concatenate([service for _, service in hours])
    began = time.perf_counter()
    oracle = Oracle(arrival_s, service_s, startup_delay_s, **load.model())
    for k in range(1, hours_run * TICKS_PER_HOUR + 1):
        oracle.advance(k * TICK_S)
        seen = oracle.snapshot()
        oracle.set_replicas(stand_in_policy(seen.in_flight, seen.queued, load.max_replicas))
    return arrival_s.size, time.perf_counter() - began


# --------------------------------------------------------------------------- report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    args = parser.parse_args()
    print("$", shlex.join([sys.executable, *sys.argv]))
    print(f"numpy {np.__version__}, one core, {os.cpu_count()} on the machine")

    cold_s, cached_s = compile_times_s()
    print(f"\nJIT compile: {cold_s:.2f} s cold (empty cache), {cached_s:.2f} s from the cache")

    scale = 0.05 if args.quick else 1.0
    print("\nFidelity: 4 replicas x 8 slots, Poisson arrivals, exponential service (mean 1 s);")
    print("mean wait and P(wait > t) at t = 1/(c mu - lambda); 95 % batch-means interval")
    print(f"({BATCHES} batches) relative to Erlang-C; the first 1,000,000 requests warm up.")
    print(
        f"{'util':>5}  {'n':>12}  {'mean wait s':>11} {'Erlang-C':>11} {'error':>8} "
        f"{'CI95':>7}  {'P(w>t)':>11} {'Erlang-C':>11} {'error':>8} {'CI95':>7}  "
        f"{'t s':>7} {'run s':>6}"
    )
    # Waiting is rare at 0.5 (P(wait > 0) = 0.03 %), so it takes 1.2 billion requests there.
    # Chunks of 2 million requests keep each array under glibc's mmap threshold: memory is reused
    # instead of faulted in afresh.
    size = max(100_000, int(2_000_000 * scale))
    for utilization, chunks in ((0.5, 600), (0.8, 20), (0.95, 40)):
        print(fidelity_row(utilization, chunks, size, warm_up=min(1_000_000, size // 2)))

    days = 1 if args.quick else 14
    print(f"\nSpeed, one core: {days} days of diurnal Poisson load (mean +-60 %), exponential")
    print("service (mean 2 s), 8 slots per replica, startup 30-120 s, generated and simulated")
    print("hour by hour; a decision every 15 s: ceil((in_flight + queued) / 6) replicas.")
    print(f"{'mean rps':>8} {'requests':>13} {'decisions':>9} {'generate s':>10} "
          f"{'simulate s':>10} {'M req/s':>8} {'simulating alone':>16}")  # fmt: skip
    runs = {}
    for mean_rps in (10.0, 100.0):
        run = kernel_run(Load(mean_rps, seed=1), days, keep_latencies=mean_rps == 10.0)
        runs[mean_rps] = run
        total_s = run.generate_s + run.simulate_s
        print(
            f"{mean_rps:>8g} {run.requests:>13,d} {run.ticks:>9,d} {run.generate_s:>10.2f} "
            f"{run.simulate_s:>10.2f} {run.requests / total_s / 1e6:>8.2f} "
            f"{run.requests / run.simulate_s / 1e6:>11.2f} M/s"
        )
    print("The reference (tests/simulator/oracle.py) on the first hours of the same loads:")
    for mean_rps, hours_run in ((10.0, 24), (100.0, 2)):
        run = runs[mean_rps]
        kernel_rps = run.requests / (run.generate_s + run.simulate_s)
        oracle_requests, oracle_s = oracle_run(Load(mean_rps, seed=1), hours_run)
        oracle_rps = oracle_requests / oracle_s
        print(
            f"{mean_rps:>8g} rps: oracle {oracle_requests:,} requests ({hours_run} h) in "
            f"{oracle_s:.1f} s -> {oracle_rps:,.0f} requests/s; kernel (generation included) "
            f"/ oracle = {kernel_rps / oracle_rps:,.0f}x"
        )
    headline = runs[10.0]

    assert headline.latency_s is not None
    latency_s = np.sort(headline.latency_s)
    print(f"\nLatency histogram vs a full sort, the {latency_s.size:,} requests of the 10-rps run:")
    worst = 0.0
    for q in (0.5, 0.9, 0.95, 0.99, 0.999, 0.9999):
        exact_s = float(np.quantile(latency_s, q, method="inverted_cdf"))
        estimate_s = kernel.histogram_quantile_s(headline.latency_hist, q)
        error = abs(estimate_s - exact_s) / exact_s
        worst = max(worst, error)
        print(f"  q={q:<7} sort {exact_s:>10.5f} s  histogram {estimate_s:>10.5f} s  "
              f"error {100 * error:.4f} %")  # fmt: skip
    print(
        f"largest relative error {100 * worst:.4f} % (bound "
        f"{100 * kernel.HISTOGRAM_RELATIVE_ERROR:.4f} %)"
    )


if __name__ == "__main__":
    main()
