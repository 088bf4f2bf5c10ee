"""Per-interval outcome columns read from bucket histograms as Prometheus reads them."""

from __future__ import annotations

import itertools
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.intervals import (
    BOUNDS_S,
    C_DROPPED,
    C_MISSED,
    C_REQUESTS,
    QUANTILES,
    SLOT_S,
    ArrivalSlots,
    bucket_quantile,
)
from simulator.result import SloTarget


def test_a_quantile_is_read_linearly_inside_its_bucket_and_inf_past_the_top() -> None:
    bounds = np.array([0.0, 0.5, 1.0])
    counts = np.array([[90, 8, 1, 1], [0, 0, 0, 0], [0, 0, 0, 5]])
    # rank 99 is the 1st of 1 in (0.5, 1]: its top; an empty row is NaN; all dropped is inf
    got = bucket_quantile(0.99, bounds, counts)
    assert got[0] == 1.0 and math.isnan(got[1]) and got[2] == math.inf


def test_an_slo_threshold_is_a_bucket_bound_so_its_side_is_exact() -> None:
    # 100 requests in the first 15 s interval: 98 with no wait, 2 waiting exactly the 1.25 s
    # target (within it), then one waiting 1.375 s in the second interval
    slots = ArrivalSlots([SloTarget(1.25, "wait", 0.99)])
    arrival = np.concatenate((np.arange(100) * 0.125, [20.0]))
    start = arrival + np.concatenate((np.zeros(98), [1.25, 1.25], [1.375]))
    slots.fold(arrival, np.ones_like(arrival), start)
    columns = slots.per_interval(np.array([15.0, 30.0]))
    assert list(columns["requests"]) == [100.0, 1.0] and list(columns["missed"]) == [0.0, 1.0]
    assert columns["wait_p99_s"][0] <= 1.25 < columns["wait_p99_s"][1]
    assert int(slots.met[0]) == 100


# The kernels against plain numpy: `_fold` steps the slot and scans the buckets, and
# `per_interval` sums slots per tick in one pass; both must equal the division,
# `np.searchsorted` and `np.add.at` they replace, bit for bit. Few examples: the suite runs
# these on every commit (2 shared cores).
PROPERTY = settings(max_examples=80, deadline=None)

EDGES_S = [SLOT_S * k for k in range(0, 41)] + list(BOUNDS_S[:12])
on_edges = st.sampled_from(EDGES_S).flatmap(
    lambda x: st.sampled_from([x, math.nextafter(x, math.inf), math.nextafter(x, -math.inf)])
)
arrivals = st.lists(
    st.one_of(on_edges, st.floats(0.0, 200.0)).filter(lambda x: x >= 0.0), max_size=120
).map(sorted)
waits = st.one_of(
    st.sampled_from([math.nan, 0.0, math.inf, *BOUNDS_S]),
    st.sampled_from(BOUNDS_S).map(lambda x: math.nextafter(x, math.inf)),
    st.floats(0.0, 700_000.0),
)
targets = st.lists(
    st.builds(
        SloTarget,
        st.one_of(st.sampled_from(BOUNDS_S[1:]), st.floats(0.01, 100.0)),
        st.sampled_from(["wait", "latency"]),
        st.sampled_from([0.5, 0.95, 0.99]),
    ),
    max_size=3,
)


def reference(
    arrival: np.ndarray, service: np.ndarray, start: np.ndarray, slots: ArrivalSlots
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Counts, wait and latency histograms per slot and `met`, by whole-array numpy."""
    j = (arrival // SLOT_S).astype(np.int64)
    size = slots.counts.shape[0]
    dropped = np.isnan(start)
    wait, latency = start - arrival, start - arrival + service
    metric = np.where(slots.on_wait[:, None], wait, latency)  # target x request
    within = metric <= slots.threshold_s[:, None]  # NaN (dropped): never within
    counts = np.zeros((size, 3), dtype=np.int64)
    np.add.at(counts[:, C_REQUESTS], j, 1)
    np.add.at(counts[:, C_DROPPED], j, dropped)
    np.add.at(counts[:, C_MISSED], j, dropped | ~within.all(axis=0))
    hists = []
    for bounds, x in ((slots.wait_bounds, wait), (slots.latency_bounds, latency)):
        hist = np.zeros((size, bounds.size + 1), dtype=np.int64)
        np.add.at(hist, (j, np.searchsorted(bounds, x)), 1)  # NaN: the last (+Inf) bucket
        hists.append(hist)
    return counts, hists[0], hists[1], within.sum(axis=1)


@PROPERTY
@given(
    arrival=arrivals,
    data=st.data(),
    target_list=targets,
    interval_s=st.sampled_from([1.0, 2.0, 5.0, 15.0, 7.5]),
)
def test_fold_and_per_interval_equal_plain_numpy(
    arrival: list[float],
    data: st.DataObject,
    target_list: list[SloTarget],
    interval_s: float,
) -> None:
    n = len(arrival)
    arrival_s = np.array(arrival, dtype=np.float64)
    start_s = arrival_s + np.array(data.draw(st.lists(waits, min_size=n, max_size=n)))
    service_s = np.array(
        data.draw(st.lists(st.sampled_from([0.0, 0.1, 1.0, 3.3, math.nan]), min_size=n, max_size=n))
    )
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=3)))  # folded chunk by chunk
    slots = ArrivalSlots(target_list)
    for lo, hi in itertools.pairwise([0, *cuts, n]):
        slots.fold(arrival_s[lo:hi], service_s[lo:hi], start_s[lo:hi])

    counts, wait_hist, latency_hist, met = reference(arrival_s, service_s, start_s, slots)
    used = counts.shape[0]
    assert np.array_equal(slots.counts, counts) and np.array_equal(slots.met, met)
    assert np.array_equal(slots.wait_hist, wait_hist)
    assert np.array_equal(slots.latency_hist, latency_hist)

    # ticks up to past the last slot, or fewer than the slots (the rest left out)
    ticks = data.draw(st.integers(1, int(used * SLOT_S / interval_s) + 3))
    t_s = interval_s * np.arange(1, ticks + 1)
    columns = slots.per_interval(t_s)
    tick = np.floor(np.arange(used) * SLOT_S / interval_s + 1e-9).astype(np.int64)
    inside = tick < ticks

    def per_tick(a: np.ndarray) -> np.ndarray:
        out = np.zeros((ticks, a.shape[1]), dtype=np.int64)
        np.add.at(out, tick[inside], a[inside])
        return out

    summed = per_tick(counts)
    for name, c in (("requests", C_REQUESTS), ("dropped", C_DROPPED), ("missed", C_MISSED)):
        assert np.array_equal(columns[name], summed[:, c].astype(np.float64))
    for kind, bounds, hist in (
        ("wait", slots.wait_bounds, wait_hist),
        ("true_latency", slots.latency_bounds, latency_hist),
    ):
        for q in sorted({*QUANTILES, *(t.share for t in target_list)}):
            want = bucket_quantile(q, bounds, per_tick(hist))
            assert np.array_equal(columns[f"{kind}_p{q * 100:g}_s"], want, equal_nan=True)
