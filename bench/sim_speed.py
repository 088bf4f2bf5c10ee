"""The simulator's speed as issue 21 measures it: end to end, per control interval, against
SimPy, and against a plain Kiefer-Wolfowitz floor. One process, one thread. Prints only.

    python bench/sim_speed.py            # the full figures (~2 min)
    python bench/sim_speed.py --quick    # shorter durations: a smoke run (~15 s)

The scenario: Poisson arrivals at 100/s, exponential service (mean 2 s), 32 replicas x 8 slots
(utilisation 0.78), `hpa` pinned at min = max = 32, startup 0 s. Every figure is the best
(least wall time) of 3 repetitions, numba compiled and warmed first; the 1-minute load average
is printed beside each. Printed:
1. `simulator.run` end to end (arrival generation, service draws, policy, kernel) on 24 h at
   interval_s=15: simulated requests per second;
2. SimPy on the same queue (one `simpy.Resource` of capacity 256, 200,000 customers, arrays
   drawn before the clock starts): requests per second, and replicast / SimPy;
3. per control interval: 2 h at interval_s=15 and at interval_s=1 (metrics scraped at the
   interval), cost = (wall_1s - wall_15s) / (intervals_1s - intervals_15s); the 24 h run at
   interval_s=1 and the 14-day wall time it extrapolates to;
4. on one pre-drawn set of arrays (5 M requests): a numba Kiefer-Wolfowitz recursion (FCFS,
   256 servers, a heap of server free times) as the floor, the kernel alone (`new_state` +
   `advance` to the end), and the engine (`simulator.engine.simulate`, hpa every 15 s), each in
   ns per request;
5. a markdown table: measure | figure | target | load.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one thread: no BLAS helper threads
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np
import simpy
from numba import njit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from policies import autoscaler  # noqa: E402
from simulator import kernel, profiles  # noqa: E402
from simulator.engine import run, simulate  # noqa: E402

RATE_RPS = 100.0
MEAN_SERVICE_S = 2.0
REPLICAS = 32
SLOTS = 8
HPA = {"policy": "hpa", "metric": "in_flight", "target_per_replica": 6,
       "min_replicas": REPLICAS, "max_replicas": REPLICAS}  # fmt: skip
MODEL = {"slots_per_replica": SLOTS, "startup": {"fixed_s": 0.0},
         "service": {"kind": "exponential", "mean_s": MEAN_SERVICE_S}}  # fmt: skip
REPEATS = 3
DAY_S = 86_400.0


def best_of(measure: Callable[[], Any]) -> tuple[float, Any, float]:
    """(least wall seconds of REPEATS calls, the last call's value, load average after)."""
    walls, value = [], None
    for _ in range(REPEATS):
        began = time.perf_counter()
        value = measure()
        walls.append(time.perf_counter() - began)
    return min(walls), value, os.getloadavg()[0]


# --------------------------------------------------------------------------- end to end


def end_to_end(duration_s: float, interval_s: float) -> tuple[float, int, int, float]:
    """`simulator.run` on the scenario: (best wall s, requests, intervals, load average)."""

    def once() -> int:
        result = run(
            profiles.constant(RATE_RPS, duration_s), HPA, MODEL, seed=1, interval_s=interval_s,
            initial_replicas=REPLICAS, keep_records=False,
        )  # fmt: skip
        return result.summary.requests

    wall_s, requests, load = best_of(once)
    return wall_s, requests, math.floor(duration_s / interval_s + 1e-9), load


# --------------------------------------------------------------------------- SimPy


def simpy_run(arrival_s: list[float], service_s: list[float]) -> int:
    """The same queue in SimPy: one Resource of 256, a process per customer; returns how many
    were served."""
    env = simpy.Environment()
    servers = simpy.Resource(env, capacity=REPLICAS * SLOTS)
    served = [0]

    def customer(service: float) -> Any:
        with servers.request() as request:
            yield request
            yield env.timeout(service)
        served[0] += 1

    def source() -> Any:
        now = 0.0
        for arrival, service in zip(arrival_s, service_s, strict=True):
            yield env.timeout(arrival - now)
            now = arrival
            env.process(customer(service))

    env.process(source())
    env.run()
    return served[0]


# --------------------------------------------------------------------------- the floor


@njit(cache=True)
def kiefer_wolfowitz(arrival_s: np.ndarray, service_s: np.ndarray, servers: int) -> np.ndarray:
    """FCFS on `servers` identical servers: each request starts at max(arrival, the earliest
    free time), kept in a binary min-heap of server free times. Returns the start times."""
    free_s = np.zeros(servers)  # a heap; all free at 0
    start_s = np.empty(arrival_s.size)
    for i in range(arrival_s.size):
        start = max(arrival_s[i], free_s[0])
        start_s[i] = start
        key = start + service_s[i]
        j = 0  # sift the new free time down from the root
        while True:
            child = 2 * j + 1
            if child >= servers:
                break
            if child + 1 < servers and free_s[child + 1] < free_s[child]:
                child += 1
            if free_s[child] >= key:
                break
            free_s[j] = free_s[child]
            j = child
        free_s[j] = key
    return start_s


def kernel_alone(arrival_s: np.ndarray, service_s: np.ndarray) -> np.ndarray:
    """`new_state` + `advance` to past the last completion, as KernelBackend calls them."""
    state = kernel.new_state(arrival_s, service_s, np.zeros(1), slots_per_replica=SLOTS,
                             initial_ready=REPLICAS, max_replicas=REPLICAS)  # fmt: skip
    kernel.advance(state, float(arrival_s[-1]) + 1e5)
    start_s: np.ndarray = state.start_s
    return start_s


def engine_alone(arrival_s: np.ndarray, service_s: np.ndarray) -> int:
    """`simulator.engine.simulate` on the pre-drawn arrays, hpa deciding every 15 s."""
    result = simulate(
        [(arrival_s, service_s)], duration_s=math.ceil(arrival_s[-1]),
        startup_delay_s=np.zeros(64), scaler=autoscaler(HPA),
        options={"slots_per_replica": SLOTS}, initial_replicas=REPLICAS, keep_records=False,
    )  # fmt: skip
    return result.summary.requests


def poisson(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    arrival_s = np.cumsum(rng.standard_exponential(n) / RATE_RPS)
    return arrival_s, rng.exponential(MEAN_SERVICE_S, n)


# --------------------------------------------------------------------------- report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter durations: a smoke run")
    args = parser.parse_args()
    print("$", shlex.join([sys.executable, *sys.argv]))
    print(
        f"numpy {np.__version__}, simpy {simpy.__version__}, one thread, "
        f"{os.cpu_count()} cores on the machine"
    )
    compile_s = kernel.warm_up()
    print(f"numba compile / cache load {compile_s:.2f} s (excluded)")
    day_s = 2 * 3600.0 if args.quick else DAY_S
    short_s = 900.0 if args.quick else 7200.0
    customers = 20_000 if args.quick else 200_000
    n_floor = 500_000 if args.quick else 5_000_000
    rows: list[tuple[str, str, str, float]] = []

    wall_s, requests, _, load = end_to_end(day_s, 15.0)
    e2e_rps = requests / wall_s
    print(
        f"\n1. simulator.run, {day_s / 3600:g} h at interval_s=15: {requests:,} requests in "
        f"{wall_s:.3f} s -> {e2e_rps / 1e6:.2f} M simulated requests/s  (load {load:.2f})"
    )
    rows.append(("end to end, interval_s=15", f"{e2e_rps / 1e6:.2f} M req/s", ">= 20 M/s", load))

    arrival, service = poisson(np.random.default_rng(3), customers)
    arrival_list, service_list = arrival.tolist(), service.tolist()
    simpy_s, served, load = best_of(lambda: simpy_run(arrival_list, service_list))
    simpy_rps = customers / simpy_s
    ratio = e2e_rps / simpy_rps
    print(
        f"\n2. SimPy, Resource(capacity={REPLICAS * SLOTS}), {customers:,} customers "
        f"({served:,} served) in {simpy_s:.3f} s -> {simpy_rps / 1e3:.1f} k requests/s; "
        f"replicast / SimPy = {ratio:,.0f}x  (load {load:.2f})"
    )
    rows.append(("SimPy", f"{simpy_rps / 1e3:.1f} k req/s", "", load))
    rows.append(("replicast / SimPy", f"{ratio:,.0f}x", ">= 200x", load))

    wall_15, _, ticks_15, load_15 = end_to_end(short_s, 15.0)
    wall_1, _, ticks_1, load_1 = end_to_end(short_s, 1.0)
    per_interval_us = (wall_1 - wall_15) / (ticks_1 - ticks_15) * 1e6
    day_1_s, day_requests, _, load_day = end_to_end(day_s, 1.0)
    rps_1 = day_requests / day_1_s
    fortnight_s = day_1_s * 14 * DAY_S / day_s
    print(
        f"\n3. per control interval, {short_s / 3600:g} h: interval_s=15 {wall_15:.3f} s "
        f"({ticks_15:,} intervals, load {load_15:.2f}), interval_s=1 {wall_1:.3f} s "
        f"({ticks_1:,} intervals, load {load_1:.2f}) -> {per_interval_us:.1f} us per interval"
    )
    print(
        f"   {day_s / 3600:g} h at interval_s=1: {day_requests:,} requests in {day_1_s:.3f} s "
        f"-> {rps_1 / 1e6:.2f} M requests/s; 14 days at interval_s=1 extrapolate to "
        f"{fortnight_s:.0f} s  (load {load_day:.2f})"
    )
    rows.append(("per control interval", f"{per_interval_us:.1f} us", "<= 15 us", load_1))
    rows.append(("end to end, interval_s=1", f"{rps_1 / 1e6:.2f} M req/s", ">= 8 M/s", load_day))
    rows.append(("14 days at interval_s=1 (extrapolated)", f"{fortnight_s:.0f} s", "", load_day))

    arrival, service = poisson(np.random.default_rng(4), n_floor)
    kiefer_wolfowitz(arrival[:100], service[:100], REPLICAS * SLOTS)  # compile
    kernel_alone(arrival[:100], service[:100])
    kw_s, kw_start, load_kw = best_of(lambda: kiefer_wolfowitz(arrival, service, REPLICAS * SLOTS))
    kernel_s, kernel_start, load_kernel = best_of(lambda: kernel_alone(arrival, service))
    engine_s, _, load_engine = best_of(lambda: engine_alone(arrival, service))
    same = bool(np.array_equal(kw_start, kernel_start))
    kw_ns, kernel_ns, engine_ns = (1e9 * s / n_floor for s in (kw_s, kernel_s, engine_s))
    print(
        f"\n4. the same {n_floor:,} pre-drawn requests ({arrival[-1] / 3600:.1f} h at "
        f"{RATE_RPS:g}/s, {REPLICAS * SLOTS} slots):\n"
        f"   Kiefer-Wolfowitz floor {kw_ns:.1f} ns/request  (load {load_kw:.2f})\n"
        f"   kernel alone           {kernel_ns:.1f} ns/request  (load {load_kernel:.2f}); "
        f"kernel / floor = {kernel_ns / kw_ns:.2f}x; identical start times: {same}\n"
        f"   engine (simulate)      {engine_ns:.1f} ns/request  (load {load_engine:.2f})"
    )
    rows.append(("Kiefer-Wolfowitz floor", f"{kw_ns:.1f} ns/req", "", load_kw))
    rows.append(("kernel alone", f"{kernel_ns:.1f} ns/req", "", load_kernel))
    rows.append(("kernel / floor", f"{kernel_ns / kw_ns:.2f}x", "<= 3x", load_kernel))
    rows.append(("engine on the arrays", f"{engine_ns:.1f} ns/req", "", load_engine))

    print("\n| measure | figure | target | load |\n|---|---|---|---|")
    for measure, figure, target, load in rows:
        print(f"| {measure} | {figure} | {target} | {load:.2f} |")


if __name__ == "__main__":
    main()
