"""The simulator's exact queueing kernel: one shared FCFS queue in front of replicas with slots.

In: a request stream as arrays -- `arrival_s` (sorted), `service_s` -- and pre-drawn replica
startup delays, bound to a `KernelState` by `new_state`. Between two control ticks `advance`
runs every event up to a time in compiled code; at a tick `snapshot` reads what a policy needs
and `set_replicas` applies the decided replica count. Out: per request `state.start_s`
(completion = start + service; +inf = not started yet, NaN = dropped), a cumulative latency
histogram (`histogram_quantile_s`), and cumulative counters in each `Snapshot`. Next stage:
`simulator/engine.py` turns snapshots into `policies.Observation`s and feeds each decision back
through `set_replicas`; `tests/simulator/oracle.py` is the plain event-by-event reference.

Why this is the one simulator module over 500 lines: its heart is a single compiled loop
(`_advance`) on purpose -- numba reference-counts every array passed to a helper, and in this
loop that cost 5x the simulation itself -- and everything else here (the state's index layout
C_*/F_*/R_*, the winner tree over slots, scaling, the histogram, the checks at the boundary)
exists to feed or read that loop. Cut into modules, a reader would chase one loop's indices
across files.

The model (exact, event by event; the Kiefer-Wolfowitz recursion with a varying server set):
- A replica has `slots_per_replica` slots. A request starts on the eligible slot that has been
  free the longest (ties: lowest replica index, then lowest slot), where "free since" is
  max(end of its last request, replica ready time). Service is FCFS, so starts are in arrival
  order and the queue is an index range of the request arrays.
- Scale-up creates replicas at the tick, each ready after the next pre-drawn startup delay;
  it takes the lowest free replica index. Scale-down cancels the newest starting replicas first,
  then drains the newest ready ones: a draining replica takes no new request and is gone when its
  in-service requests finish. Replica-seconds run from creation to gone (starting, ready and
  draining all cost).
- Optional `timeout_s` (a request still queued `timeout_s` after arrival is dropped then; a
  wait of exactly `timeout_s` still starts) and `queue_limit` (an arrival that cannot start at
  once and finds `queue_limit` requests queued is dropped).
- Events at one instant, in order: slots freeing and replicas becoming ready (with the starts
  they allow), timeouts, arrivals (in index order), then the control tick. So `advance(t)` runs
  every event at time <= t, and a replica removed at tick t serves nothing after t.

A tick, as the engine will run it (`tests/simulator/test_kernel.py` drives exactly this):

    state = new_state(arrival_s, service_s, startup_delay_s, slots_per_replica=8,
                      initial_ready=2, max_replicas=64, now_s=t0)
    for k in range(1, n_ticks + 1):
        advance(state, t0 + k * 15.0)
        seen = snapshot(state)            # cumulative counters: diff two for rates
        set_replicas(state, decide(seen))
"""

from __future__ import annotations

import dataclasses
import math
import operator
import time
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from numba import njit

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# state.count[...] (int64)
C_NEXT = 0  # index of the first arrival not yet seen
C_HEAD = 1  # index of the oldest queued request (valid when C_QUEUED > 0)
C_QUEUED = 2
C_COMPLETED = 3
C_DROPPED_TIMEOUT = 4
C_DROPPED_QUEUE_FULL = 5
C_IN_FLIGHT = 6
C_READY = 7
C_STARTING = 8
C_DRAINING = 9
C_CREATED = 10  # replicas ever created: the creation sequence number of the next one
C_DELAY_CURSOR = 11  # next unused pre-drawn startup delay
C_SLOTS = 12  # slots per replica
C_QUEUE_LIMIT = 13  # -1: none
C_TOP = 14  # 1 + the highest replica index in use: loops over replicas stop there
C_ROOT = 15  # the winner tree's node over the first 2**k >= C_TOP * C_SLOTS slots
C_CARRIED_OFF = 16  # requests of earlier chunks no longer in the arrays (see carry_over)
N_COUNT = 17

# state.clock[...] (float64)
F_NOW_S = 0
F_TIMEOUT_S = 1  # +inf: none
F_REPLICA_S = 2  # cumulative replica-seconds
F_WAIT_SUM_S = 3  # over started requests
F_LATENCY_SUM_S = 4  # over completed requests
N_CLOCK = 5

# state.replica_s[r, ...] (float64) and state.replica_i[r, ...] (int64)
R_CREATED_S = 0
R_READY_S = 1
R_GONE_S = 2  # +inf while active; cancel time, or end of drain
R_STATUS = 0
R_SEQ = 1
ABSENT, ACTIVE, DRAINING = 0, 1, 2

# Latency histogram: bin by math.frexp(x) = (m, e), m in [0.5, 1): 1024 bins per octave, each
# 2**-11 * 2**e wide, so a bin's width is <= 2**-10 of its lower edge. Octaves e in -13..17
# cover [2**-14, 2**17) s = [61 us, 36.4 h), a superset of [1e-4 s, 1e5 s]. Bin 0 holds
# [0, 2**-14) and the last bin [2**17, inf).
HIST_PER_OCTAVE = 1024
HIST_E_MIN = -13
HIST_E_MAX = 17
HIST_BINS = 2 + (HIST_E_MAX - HIST_E_MIN + 1) * HIST_PER_OCTAVE
HIST_LOW_S = 2.0**-14
HIST_HIGH_S = 2.0**17
# A quantile read at a bin's midpoint is within this share of the exact order statistic (and
# within HIST_LOW_S / 2 absolute below HIST_LOW_S; at or above HIST_HIGH_S it reads HIST_HIGH_S).
HISTOGRAM_RELATIVE_ERROR = 2.0**-11


class KernelError(ValueError):
    """Inputs the kernel cannot simulate; the message names the argument and the fix."""


@dataclass(frozen=True, slots=True)
class KernelState:
    """Everything the kernel mutates, as numpy arrays; build it with `new_state`."""

    arrival_s: FloatArray  # (n,) sorted arrival times
    service_s: FloatArray  # (n,) service times, >= 0
    start_s: FloatArray  # (n,) out: start time; +inf not started yet; NaN dropped
    startup_delay_s: FloatArray  # pre-drawn, consumed in replica creation order
    count: IntArray  # (N_COUNT,) see C_*
    clock: FloatArray  # (N_CLOCK,) see F_*
    replica_s: FloatArray  # (max_replicas, 3) see R_*_S
    replica_i: IntArray  # (max_replicas, 2) status and creation sequence
    slot_free_s: FloatArray  # (max_replicas * slots,) end of the slot's last request
    slot_latency_s: FloatArray  # latency of that request, NaN once counted as completed
    tree_key: FloatArray  # (2 * leaves,) winner tree over slots, see _replay
    tree_slot: IntArray
    latency_hist: IntArray  # (HIST_BINS,) completed requests by latency

    @property
    def now_s(self) -> float:
        return float(self.clock[F_NOW_S])


class Snapshot(NamedTuple):
    """The target at `now_s`. Counters are cumulative (Prometheus-style): diff two snapshots for
    an interval's arrivals, completions, drops and replica-seconds; gauges are at `now_s`."""

    now_s: float
    arrivals: int
    started: int
    completed: int
    dropped_timeout: int
    dropped_queue_full: int
    queued: int  # gauge: waiting for a slot
    in_flight: int  # gauge: in service (queued not included)
    ready_replicas: int  # gauge
    starting_replicas: int  # gauge
    draining_replicas: int  # gauge
    replica_seconds: float
    wait_sum_s: float  # over started requests
    latency_sum_s: float  # over completed requests


# --------------------------------------------------------------------------- compiled core
# The slot a request gets comes from a winner tree (a tournament): leaf `leaves + slot` holds the
# time the slot has been free since (+inf when its replica takes no new requests), each inner
# node the smaller of its two children. A tie goes to the left child, so the lowest slot id wins
# it: the lowest replica, then its lowest slot. The winner is at the root, node C_ROOT, the
# smallest subtree holding every slot of the replica indices in use (node 1 once all are), so a
# start replays log2(slots in use) branch-free matches; a binary heap was 4x slower.


@njit(cache=True)
def _replay(tree_key: FloatArray, tree_slot: IntArray, root: int, slot: int, key_s: float) -> None:
    """Set one leaf and replay the matches on its path up to the root."""
    node = tree_key.shape[0] // 2 + slot
    tree_key[node] = key_s
    node >>= 1
    while node >= root:
        winner = 2 * node + (tree_key[2 * node + 1] < tree_key[2 * node])
        tree_key[node] = tree_key[winner]
        tree_slot[node] = tree_slot[winner]
        node >>= 1


@njit(cache=True)
def _build_tree(tree_key: FloatArray, tree_slot: IntArray) -> None:
    """Fill the inner nodes from the leaves."""
    for node in range(tree_key.shape[0] // 2 - 1, 0, -1):
        winner = 2 * node + (tree_key[2 * node + 1] < tree_key[2 * node])
        tree_key[node] = tree_key[winner]
        tree_slot[node] = tree_slot[winner]


@njit(cache=True)
def _hist_bin(latency_s: float) -> int:
    if latency_s < HIST_LOW_S:
        return 0
    if latency_s >= HIST_HIGH_S:
        return HIST_BINS - 1
    mantissa, exponent = math.frexp(latency_s)
    return (
        1
        + (exponent - HIST_E_MIN) * HIST_PER_OCTAVE
        + int((mantissa - 0.5) * (2 * HIST_PER_OCTAVE))
    )


@njit(cache=True)
def _advance(  # noqa: PLR0915 -- one loop on purpose, see the docstring
    until_s: float,
    arrival_s: FloatArray,
    service_s: FloatArray,
    out_start_s: FloatArray,
    count: IntArray,
    clock: FloatArray,
    slot_free_s: FloatArray,
    slot_latency_s: FloatArray,
    tree_key: FloatArray,
    tree_slot: IntArray,
    hist: IntArray,
) -> None:
    """Run arrivals, starts and timeouts up to until_s, in event order.

    One loop and no calls that take arrays: numba reference-counts arrays passed to a function,
    and in this loop that bookkeeping cost 5x the simulation itself. Counters live in locals.
    """
    n = arrival_s.shape[0]
    leaves = tree_key.shape[0] // 2
    root = count[C_ROOT]
    queue_limit = count[C_QUEUE_LIMIT]
    timeout_s = clock[F_TIMEOUT_S]
    i = count[C_NEXT]  # the next arrival
    head = count[C_HEAD]  # the oldest queued request
    queued = count[C_QUEUED]
    completed = count[C_COMPLETED]
    dropped_timeout = count[C_DROPPED_TIMEOUT]
    dropped_queue_full = count[C_DROPPED_QUEUE_FULL]
    latency_sum_s = clock[F_LATENCY_SUM_S]
    wait_sum_s = clock[F_WAIT_SUM_S]
    while True:
        arrival_due_s = arrival_s[i] if i < n and arrival_s[i] <= until_s else math.inf
        request = -1
        start_s = math.inf
        if queued > 0:  # the queue's head starts or times out first if it does by arrival_due_s
            horizon_s = min(arrival_due_s, until_s)
            arrived_s = arrival_s[head]
            start_s = max(arrived_s, tree_key[root])  # +inf: no slot will ever take it
            deadline_s = arrived_s + timeout_s
            times_out = deadline_s < start_s and deadline_s <= horizon_s
            if times_out or start_s <= min(deadline_s, horizon_s):
                request = head
                queued -= 1
                if queued > 0:
                    head += 1
                    while out_start_s[head] != math.inf:  # skip arrivals dropped (queue full)
                        head += 1
                if times_out:
                    out_start_s[request] = math.nan
                    dropped_timeout += 1
                    continue
        if request < 0:  # the next arrival
            if arrival_due_s > until_s:
                break
            request, start_s = i, arrival_due_s
            i += 1
            if queued > 0 or tree_key[root] > start_s:
                if 0 <= queue_limit <= queued:
                    out_start_s[request] = math.nan
                    dropped_queue_full += 1
                else:
                    if queued == 0:
                        head = request
                    queued += 1
                continue
        # `request` starts at start_s on the winning slot, whose last request has completed
        slot = tree_slot[root]
        previous_latency_s = slot_latency_s[slot]
        if not math.isnan(previous_latency_s):  # completed, not counted yet
            hist[_hist_bin(previous_latency_s)] += 1
            completed += 1
            latency_sum_s += previous_latency_s
        end_s = start_s + service_s[request]
        out_start_s[request] = start_s
        slot_free_s[slot] = end_s
        slot_latency_s[slot] = end_s - arrival_s[request]
        wait_sum_s += start_s - arrival_s[request]
        node = leaves + slot  # _replay(tree_key, tree_slot, root, slot, end_s), written out
        tree_key[node] = end_s
        node >>= 1
        while node >= root:
            winner = 2 * node + (tree_key[2 * node + 1] < tree_key[2 * node])
            tree_key[node] = tree_key[winner]
            tree_slot[node] = tree_slot[winner]
            node >>= 1
    count[C_NEXT] = i
    count[C_HEAD] = head
    count[C_QUEUED] = queued
    count[C_COMPLETED] = completed
    count[C_DROPPED_TIMEOUT] = dropped_timeout
    count[C_DROPPED_QUEUE_FULL] = dropped_queue_full
    clock[F_LATENCY_SUM_S] = latency_sum_s
    clock[F_WAIT_SUM_S] = wait_sum_s


@njit(cache=True)
def _settle(
    now_s: float,
    count: IntArray,
    clock: FloatArray,
    replica_s: FloatArray,
    replica_i: IntArray,
    slot_free_s: FloatArray,
    slot_latency_s: FloatArray,
    tree_key: FloatArray,
    tree_slot: IntArray,
    hist: IntArray,
) -> None:
    """At now_s: count completions, bill replica-seconds since the last call, update gauges."""
    slots = count[C_SLOTS]
    since_s = clock[F_NOW_S]
    in_flight = ready = starting = draining = 0
    billed_s = 0.0
    for r in range(count[C_TOP]):
        status = replica_i[r, R_STATUS]
        if status == ABSENT:
            continue
        billed_s += max(
            0.0, min(replica_s[r, R_GONE_S], now_s) - max(replica_s[r, R_CREATED_S], since_s)
        )
        for slot in range(r * slots, (r + 1) * slots):
            if slot_free_s[slot] > now_s:
                in_flight += 1
            elif not math.isnan(slot_latency_s[slot]):
                hist[_hist_bin(slot_latency_s[slot])] += 1
                count[C_COMPLETED] += 1
                clock[F_LATENCY_SUM_S] += slot_latency_s[slot]
                slot_latency_s[slot] = math.nan
        if status == DRAINING:
            if replica_s[r, R_GONE_S] <= now_s:
                replica_i[r, R_STATUS] = ABSENT
            else:
                draining += 1
        elif replica_s[r, R_READY_S] <= now_s:
            ready += 1
        else:
            starting += 1
    clock[F_REPLICA_S] += billed_s
    clock[F_NOW_S] = now_s
    count[C_IN_FLIGHT] = in_flight
    count[C_READY] = ready
    count[C_STARTING] = starting
    count[C_DRAINING] = draining
    _fit_root(count, replica_i, tree_key, tree_slot)


@njit(cache=True)
def _advance_and_settle(
    until_s: float,
    arrival_s: FloatArray,
    service_s: FloatArray,
    out_start_s: FloatArray,
    count: IntArray,
    clock: FloatArray,
    replica_s: FloatArray,
    replica_i: IntArray,
    slot_free_s: FloatArray,
    slot_latency_s: FloatArray,
    tree_key: FloatArray,
    tree_slot: IntArray,
    hist: IntArray,
) -> None:
    """`advance` in one call from Python: each call from Python costs about a microsecond."""
    _advance(
        until_s, arrival_s, service_s, out_start_s, count, clock, slot_free_s, slot_latency_s,
        tree_key, tree_slot, hist,
    )  # fmt: skip
    _settle(
        until_s, count, clock, replica_s, replica_i, slot_free_s, slot_latency_s, tree_key,
        tree_slot, hist,
    )  # fmt: skip


@njit(cache=True)
def _newest(
    replica_s: FloatArray, replica_i: IntArray, top: int, now_s: float, starting: bool
) -> int:
    """Index of the most recently created active replica that is starting (or ready); -1: none."""
    best, best_seq = -1, -1
    for r in range(top):
        if replica_i[r, R_STATUS] != ACTIVE or (replica_s[r, R_READY_S] > now_s) != starting:
            continue
        if replica_i[r, R_SEQ] > best_seq:
            best, best_seq = r, replica_i[r, R_SEQ]
    return best


@njit(cache=True)
def _set_leaves(
    r: int,
    count: IntArray,
    replica_s: FloatArray,
    replica_i: IntArray,
    slot_free_s: FloatArray,
    tree_key: FloatArray,
    tree_slot: IntArray,
) -> None:
    """Replica r's slots take requests from when they are free and the replica ready, if it is
    active; never otherwise."""
    slots = count[C_SLOTS]
    for slot in range(r * slots, (r + 1) * slots):
        key_s = math.inf
        if replica_i[r, R_STATUS] == ACTIVE:
            key_s = max(slot_free_s[slot], replica_s[r, R_READY_S])
        _replay(tree_key, tree_slot, count[C_ROOT], slot, key_s)


@njit(cache=True)
def _fit_root(
    count: IntArray, replica_i: IntArray, tree_key: FloatArray, tree_slot: IntArray
) -> None:
    """Fit C_TOP to the replica indices in use and the root to their slots (a smaller tree is a
    faster one). A root that grows gets its subtree rebuilt: nodes outside it were not kept."""
    top = count[C_TOP]
    while top > 0 and replica_i[top - 1, R_STATUS] == ABSENT:
        top -= 1
    count[C_TOP] = top
    needed = top * count[C_SLOTS]
    leaves = tree_key.shape[0] // 2
    root = count[C_ROOT]
    span = leaves // root  # leaves under the root
    if span >= needed:
        while root < leaves and span // 2 >= needed:
            root, span = 2 * root, span // 2
        count[C_ROOT] = root
        return
    while span < needed:
        root, span = root // 2, span * 2
    count[C_ROOT] = root
    depth = 0
    while (root << depth) < leaves:
        depth += 1
    for level in range(depth - 1, -1, -1):
        first = root << level
        for node in range(first, first + (1 << level)):
            winner = 2 * node + (tree_key[2 * node + 1] < tree_key[2 * node])
            tree_key[node] = tree_key[winner]
            tree_slot[node] = tree_slot[winner]


@njit(cache=True)
def _set_replicas(
    desired: int,
    startup_delay_s: FloatArray,
    count: IntArray,
    clock: FloatArray,
    replica_s: FloatArray,
    replica_i: IntArray,
    slot_free_s: FloatArray,
    tree_key: FloatArray,
    tree_slot: IntArray,
) -> int:
    """Scale to `desired` active replicas at the state's now. Returns 0, or -1 when the startup
    delays run out, or -2 when every replica index is taken; nothing changes on an error."""
    now_s = clock[F_NOW_S]
    active = count[C_READY] + count[C_STARTING]
    slots = count[C_SLOTS]
    if desired > active:
        need = desired - active
        if count[C_DELAY_CURSOR] + need > startup_delay_s.shape[0]:
            return -1
        free = replica_i.shape[0] - count[C_TOP]
        for r in range(count[C_TOP]):
            free += replica_i[r, R_STATUS] == ABSENT
        if free < need:
            return -2
        r = 0
        for _ in range(need):
            while replica_i[r, R_STATUS] != ABSENT:
                r += 1
            replica_i[r, R_STATUS] = ACTIVE
            count[C_TOP] = max(count[C_TOP], r + 1)
            replica_i[r, R_SEQ] = count[C_CREATED]
            count[C_CREATED] += 1
            replica_s[r, R_CREATED_S] = now_s
            replica_s[r, R_READY_S] = now_s + startup_delay_s[count[C_DELAY_CURSOR]]
            replica_s[r, R_GONE_S] = math.inf
            count[C_DELAY_CURSOR] += 1
            _set_leaves(r, count, replica_s, replica_i, slot_free_s, tree_key, tree_slot)
            if replica_s[r, R_READY_S] <= now_s:
                count[C_READY] += 1
            else:
                count[C_STARTING] += 1
    for _ in range(active - desired):
        r = _newest(replica_s, replica_i, count[C_TOP], now_s, True)
        if r >= 0:  # cancel a starting replica: gone at once, it serves nothing
            replica_i[r, R_STATUS] = ABSENT
            replica_s[r, R_GONE_S] = now_s
            count[C_STARTING] -= 1
            _set_leaves(r, count, replica_s, replica_i, slot_free_s, tree_key, tree_slot)
            continue
        r = _newest(replica_s, replica_i, count[C_TOP], now_s, False)
        gone_s = now_s
        for slot in range(r * slots, (r + 1) * slots):
            gone_s = max(gone_s, slot_free_s[slot])
        replica_s[r, R_GONE_S] = gone_s
        replica_i[r, R_STATUS] = DRAINING if gone_s > now_s else ABSENT
        if gone_s > now_s:
            count[C_DRAINING] += 1
        count[C_READY] -= 1
        _set_leaves(r, count, replica_s, replica_i, slot_free_s, tree_key, tree_slot)
    _fit_root(count, replica_i, tree_key, tree_slot)
    return 0


# --------------------------------------------------------------------------- Python API


@njit(cache=True)
def _first_invalid(values: FloatArray, lowest: float) -> int:
    """Index of the first value that is not finite or is below lowest; -1 if none."""
    for i in range(values.shape[0]):
        if not (math.isfinite(values[i]) and values[i] >= lowest):
            return i
    return -1


@njit(cache=True)
def _first_unsorted(values: FloatArray) -> int:
    """Index of the first value below the one before it; -1 if none."""
    for i in range(1, values.shape[0]):
        if values[i] < values[i - 1]:
            return i
    return -1


def _float_array(name: str, values: npt.ArrayLike, lowest: float = 0.0) -> FloatArray:
    """values as a contiguous float64 vector, checked without temporaries as long as the run."""
    array = np.ascontiguousarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise KernelError(f"{name}: must be one-dimensional (got shape {array.shape})")
    i = _first_invalid(array, lowest)
    if i >= 0:
        rule = "finite" if lowest == -math.inf else f"finite and >= {lowest:g}"
        raise KernelError(f"{name}[{i}]: must be {rule} (got {array[i]})")
    return array


def _whole(name: str, value: object, lowest: int) -> int:
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise KernelError(f"{name}: must be a whole number >= {lowest} (got {value!r})") from None
    if number < lowest:
        raise KernelError(f"{name}: must be a whole number >= {lowest} (got {value!r})")
    return number


def _requests(arrival_s: npt.ArrayLike, service_s: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    arrival = _float_array("arrival_s", arrival_s, lowest=-math.inf)
    service = _float_array("service_s", service_s)
    if service.shape != arrival.shape:
        raise KernelError(
            f"service_s: must have one entry per arrival ({arrival.size}, got {service.size})"
        )
    i = _first_unsorted(arrival)
    if i >= 0:
        raise KernelError(f"arrival_s[{i}]: must be >= arrival_s[{i - 1}] (got {arrival[i]})")
    return arrival, service


def new_state(
    arrival_s: npt.ArrayLike,
    service_s: npt.ArrayLike,
    startup_delay_s: npt.ArrayLike,
    *,
    slots_per_replica: int,
    initial_ready: int,
    max_replicas: int,
    now_s: float = 0.0,
    timeout_s: float | None = None,
    queue_limit: int | None = None,
) -> KernelState:
    """A target at `now_s` with `initial_ready` ready replicas and nothing queued.

    The request arrays are bound to the state (the queue is an index range into them) and must
    not change while it runs; `state.start_s` is allocated here, one float per request.
    `startup_delay_s` is consumed one per created replica. `max_replicas` bounds the replicas
    alive at once, draining ones included (size it above the policy's maximum).
    `slots_per_replica`, `timeout_s` and `queue_limit` are the replica model's
    `simulator.kernel_options.KernelOptions`, which the engine passes field by field.
    """
    arrival, service = _requests(arrival_s, service_s)
    delays = _float_array("startup_delay_s", startup_delay_s)
    if not math.isfinite(now_s):
        raise KernelError(f"now_s: must be finite (got {now_s})")
    if arrival.size and arrival[0] < now_s:
        raise KernelError(f"arrival_s[0]: must be >= now_s={now_s} (got {arrival[0]})")
    slots_per_replica = _whole("slots_per_replica", slots_per_replica, 1)
    max_replicas = _whole("max_replicas", max_replicas, 1)
    initial_ready = _whole("initial_ready", initial_ready, 0)
    if initial_ready > max_replicas:
        raise KernelError(
            f"initial_ready: must be in 0..max_replicas={max_replicas} (got {initial_ready})"
        )
    if timeout_s is not None and not timeout_s >= 0:
        raise KernelError(f"timeout_s: must be >= 0 or None (got {timeout_s})")
    if queue_limit is not None:
        queue_limit = _whole("queue_limit", queue_limit, 0)
    n_slots = max_replicas * slots_per_replica
    leaves = 1 << max(0, n_slots - 1).bit_length()
    count = np.zeros(N_COUNT, dtype=np.int64)
    count[C_SLOTS] = slots_per_replica
    count[C_QUEUE_LIMIT] = -1 if queue_limit is None else queue_limit
    count[C_READY] = count[C_CREATED] = count[C_TOP] = initial_ready
    clock = np.zeros(N_CLOCK)
    clock[F_NOW_S] = now_s
    clock[F_TIMEOUT_S] = math.inf if timeout_s is None else timeout_s
    replica_s = np.full((max_replicas, 3), math.inf)
    replica_s[:initial_ready, R_CREATED_S] = now_s
    replica_s[:initial_ready, R_READY_S] = now_s
    replica_i = np.zeros((max_replicas, 2), dtype=np.int64)
    replica_i[:initial_ready, R_STATUS] = ACTIVE
    replica_i[:initial_ready, R_SEQ] = np.arange(initial_ready)
    state = KernelState(
        arrival_s=arrival,
        service_s=service,
        start_s=np.full(arrival.size, math.inf),
        startup_delay_s=delays,
        count=count,
        clock=clock,
        replica_s=replica_s,
        replica_i=replica_i,
        slot_free_s=np.full(n_slots, now_s),
        slot_latency_s=np.full(n_slots, math.nan),
        tree_key=np.full(2 * leaves, math.inf),
        tree_slot=np.concatenate((np.zeros(leaves, np.int64), np.arange(leaves, dtype=np.int64))),
        latency_hist=np.zeros(HIST_BINS, dtype=np.int64),
    )
    state.tree_key[leaves : leaves + initial_ready * slots_per_replica] = now_s
    _build_tree(state.tree_key, state.tree_slot)
    count[C_ROOT] = 1
    _fit_root(count, replica_i, state.tree_key, state.tree_slot)
    return state


def advance(state: KernelState, until_s: float) -> None:
    """Run every event at time <= until_s (arrivals, starts, completions, drops, replicas
    becoming ready or drained). Call it at each tick, and at scrape times to sample between."""
    if not state.clock[F_NOW_S] <= until_s < math.inf:
        raise KernelError(
            f"until_s: must be finite and >= the state's now_s={state.now_s} (got {until_s})"
        )
    _advance_and_settle(
        until_s, state.arrival_s, state.service_s, state.start_s, state.count, state.clock,
        state.replica_s, state.replica_i, state.slot_free_s, state.slot_latency_s,
        state.tree_key, state.tree_slot, state.latency_hist,
    )  # fmt: skip


def set_replicas(state: KernelState, desired: int) -> None:
    """Scale to `desired` starting-or-ready replicas at the state's now (the last `advance`)."""
    count = state.count
    if desired == count[C_READY] + count[C_STARTING]:
        return
    max_replicas = state.replica_i.shape[0]
    desired = _whole("desired", desired, 0)
    if desired > max_replicas:
        raise KernelError(f"desired: must be in 0..max_replicas={max_replicas} (got {desired})")
    status = _set_replicas(
        desired, state.startup_delay_s, count, state.clock, state.replica_s, state.replica_i,
        state.slot_free_s, state.tree_key, state.tree_slot,
    )  # fmt: skip
    if status == -1:
        raise KernelError(
            f"startup_delay_s: all {state.startup_delay_s.size} pre-drawn delays are used "
            f"(scaling to {desired} at t={state.now_s}); draw more"
        )
    if status == -2:
        raise KernelError(
            f"max_replicas: {max_replicas} replica indices are all starting, ready or draining "
            f"(scaling to {desired} at t={state.now_s}); raise max_replicas"
        )


def startup_delays_left(state: KernelState) -> int:
    """Pre-drawn startup delays not used yet (one is used per created replica)."""
    return int(state.startup_delay_s.shape[0] - state.count[C_DELAY_CURSOR])


def add_startup_delays(state: KernelState, more: npt.ArrayLike) -> KernelState:
    """`state` with `more` startup delays after the pre-drawn ones (a new state object over
    the same arrays otherwise: use it from now on, as after `carry_over`)."""
    extra = _float_array("startup_delay_s", more)
    return replace(state, startup_delay_s=np.concatenate((state.startup_delay_s, extra)))


def snapshot(state: KernelState) -> Snapshot:
    """The target as of the last `advance` (or `set_replicas`), in plain Python numbers."""
    count, clock = state.count.tolist(), state.clock.tolist()
    return Snapshot(
        now_s=clock[F_NOW_S],
        arrivals=count[C_NEXT] + count[C_CARRIED_OFF],
        started=count[C_COMPLETED] + count[C_IN_FLIGHT],
        completed=count[C_COMPLETED],
        dropped_timeout=count[C_DROPPED_TIMEOUT],
        dropped_queue_full=count[C_DROPPED_QUEUE_FULL],
        queued=count[C_QUEUED],
        in_flight=count[C_IN_FLIGHT],
        ready_replicas=count[C_READY],
        starting_replicas=count[C_STARTING],
        draining_replicas=count[C_DRAINING],
        replica_seconds=clock[F_REPLICA_S],
        wait_sum_s=clock[F_WAIT_SUM_S],
        latency_sum_s=clock[F_LATENCY_SUM_S],
    )


def carry_over(
    state: KernelState, arrival_s: npt.ArrayLike, service_s: npt.ArrayLike, *, check: bool = True
) -> KernelState:
    """Continue with the next chunk of requests, so memory stays bounded by a chunk's size.

    Requests of this state that are not settled yet (queued, or not reached by `advance`) move to
    the front of the new chunk: `state.start_s[:settled(state)]` is final, and the new state's
    `start_s[k]` belongs to `state.arrival_s[settled(state) + k]` while k < the number carried.
    The slots, replicas, counters and histogram go on unchanged (the same arrays).
    `check=False` skips validating the new arrays (two passes) for callers that made them.
    """
    first = settled(state)
    if check:
        arrival, service = _requests(arrival_s, service_s)
    else:  # the caller vouches: float64, finite, sorted, service >= 0 (simulator.engine's draws)
        arrival = np.ascontiguousarray(arrival_s, dtype=np.float64)
        service = np.ascontiguousarray(service_s, dtype=np.float64)
    if arrival.size and arrival[0] <= state.now_s:
        raise KernelError(
            f"arrival_s[0]: must be after the state's now_s={state.now_s} (got {arrival[0]}); "
            "carry over before advancing past the chunk's first arrival"
        )
    if arrival.size and state.arrival_s.size and arrival[0] < state.arrival_s[-1]:
        raise KernelError(
            f"arrival_s[0]: must be >= the last arrival of the chunk before, "
            f"{state.arrival_s[-1]} (got {arrival[0]})"
        )
    state.count[C_NEXT] -= first
    state.count[C_CARRIED_OFF] += first
    state.count[C_HEAD] = max(0, state.count[C_HEAD] - first)
    return dataclasses.replace(
        state,
        arrival_s=np.concatenate((state.arrival_s[first:], arrival)),
        service_s=np.concatenate((state.service_s[first:], service)),
        start_s=np.concatenate((state.start_s[first:], np.full(arrival.size, math.inf))),
    )


def settled(state: KernelState) -> int:
    """How many requests, from the first, have started or been dropped: their start_s is final."""
    count = state.count
    return int(count[C_HEAD] if count[C_QUEUED] > 0 else count[C_NEXT])


def latency_s(state: KernelState) -> FloatArray:
    """Per request: completion - arrival; NaN for dropped, +inf for not started yet."""
    return state.start_s + state.service_s - state.arrival_s


def histogram_edges_s() -> FloatArray:
    """Lower edges of the latency histogram's bins (bin 0 starts at 0), for plots and reports."""
    k = np.arange(HIST_BINS - 2)
    octave_edges = np.ldexp(0.5 + (k % HIST_PER_OCTAVE) / (2 * HIST_PER_OCTAVE),
                            HIST_E_MIN + k // HIST_PER_OCTAVE)  # fmt: skip
    return np.concatenate(([0.0], octave_edges, [HIST_HIGH_S]))


def histogram_quantile_s(hist: IntArray, q: float) -> float:
    """The q-quantile (the ceil(q*n)-th smallest, numpy's "inverted_cdf") of a latency histogram,
    read at its bin's midpoint: within HISTOGRAM_RELATIVE_ERROR of the exact value (see there)."""
    if not 0.0 <= q <= 1.0:
        raise KernelError(f"q: must be in [0, 1] (got {q})")
    cumulative = np.cumsum(hist)
    total = int(cumulative[-1])
    if total == 0:
        raise KernelError("hist: no completed requests yet, so no quantile")
    rank = max(1, math.ceil(q * total))
    b = int(np.searchsorted(cumulative, rank))
    if b == HIST_BINS - 1:
        return HIST_HIGH_S
    edges = histogram_edges_s()
    return float(edges[b] + edges[b + 1]) / 2.0


def warm_up() -> float:
    """Compile (or load from numba's cache) every kernel function; return the seconds it took."""
    began = time.perf_counter()
    state = new_state(np.array([0.0, 0.5]), np.array([1.0, 0.0]), np.array([0.0]),
                      slots_per_replica=1, initial_ready=1, max_replicas=2,
                      timeout_s=10.0, queue_limit=4)  # fmt: skip
    advance(state, 1.0)
    set_replicas(state, 2)
    set_replicas(state, 0)
    advance(state, 2.0)
    snapshot(state)
    return time.perf_counter() - began
