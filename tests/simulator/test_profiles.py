"""Synthetic load profiles and the operations on every profile.

Statistical checks use fixed seeds, so each one always passes or always fails; the tolerances
are about four standard errors of the measured quantity (given next to each), so a correct
generator would fail for fewer than 1 in 10,000 seeds, and a biased one is still caught.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import pairwise

import numpy as np
import pytest

from simulator.profiles import (
    Arrivals,
    Profile,
    ProfileError,
    bursty,
    constant,
    diurnal,
    ramp,
    rate_steps,
    request_log,
    spike,
    step,
)


def rng(seed: int = 7) -> np.random.Generator:
    return np.random.default_rng(seed)


def gaps_cv(times_s: np.ndarray) -> float:
    gaps = np.diff(times_s)
    return float(gaps.std() / gaps.mean())


def small_log() -> Profile:
    """Ten requests over 10 s with token counts 0..9 and 100..109."""
    times = np.array([0.0, 0.5, 1.0, 2.0, 3.5, 4.0, 6.0, 7.0, 8.5, 9.0])
    return request_log(
        times, input_tokens=np.arange(10), output_tokens=100 + np.arange(10), duration_s=10.0
    )


def assert_same(a: Arrivals, b: Arrivals) -> None:
    np.testing.assert_array_equal(a.time_s, b.time_s)
    for x, y in ((a.input_tokens, b.input_tokens), (a.output_tokens, b.output_tokens)):
        assert (x is None) == (y is None)
        if x is not None:
            np.testing.assert_array_equal(x, y)


# ---- determinism and chunking


def test_same_seed_gives_identical_arrays_and_another_seed_does_not() -> None:
    profile = diurnal(50, 0.5, 7200, period_s=3600)
    first, again, other = (profile.arrivals(rng(s)) for s in (1, 1, 2))
    assert_same(first, again)
    assert len(first) != len(other) or not np.array_equal(first.time_s, other.time_s)
    assert first.time_s.dtype == np.float64
    assert np.all(np.diff(first.time_s) >= 0)
    assert first.time_s[0] >= 0 and first.time_s[-1] < profile.duration_s


CHUNKED = {
    "diurnal": diurnal(20, 0.8, 5000, period_s=1000, weekend_factor=0.3, resolution_s=7),
    "bursty": bursty(30, 2.5, 2000, block_s=250),
    "stretched steps": step(5, 40, 300, 1000).time_scale(1.7),
    "sliced spike": spike(10, 80, 500, 60, 2000).slice(123.4, 1789.0),
    "looped ramp": ramp(0, 50, 700).loop(duration_s=2500),
    "log doubled": small_log().loop(40).rate_scale(2.3, resolution_s=3.3),
    "log with tokens": constant(25, 1500).with_tokens([1, 2, 3], [9, 8, 7]),
}


@pytest.mark.parametrize("chunk_s", [7.3, 600.0, 3600.0, 1e9])
@pytest.mark.parametrize("name", CHUNKED)
def test_chunks_concatenate_to_the_whole_profile_whatever_the_chunk_size(
    name: str, chunk_s: float
) -> None:
    profile = CHUNKED[name]
    whole = profile.arrivals(rng(3))
    chunks = list(profile.iter_chunks(rng(3), chunk_s=chunk_s))
    # Windows tile [0, duration_s) and each holds only its own arrivals.
    assert chunks[0].start_s == 0 and chunks[-1].end_s == profile.duration_s
    for before, after in pairwise(chunks):
        assert before.end_s == after.start_s
    for chunk in chunks:
        assert np.all((chunk.time_s >= chunk.start_s) & (chunk.time_s < chunk.end_s))
    joined = Arrivals(
        0.0,
        profile.duration_s,
        np.concatenate([c.time_s for c in chunks]),
        None if whole.input_tokens is None else np.concatenate([c.input_tokens for c in chunks]),
        None if whole.output_tokens is None else np.concatenate([c.output_tokens for c in chunks]),
    )
    assert_same(joined, whole)


def test_iter_chunks_takes_its_randomness_when_called_not_when_iterated() -> None:
    generator = rng(5)
    chunks = constant(10, 100).iter_chunks(generator, chunk_s=10)
    generator.random(1000)  # the caller uses its generator for something else first
    expected = constant(10, 100).arrivals(rng(5))
    np.testing.assert_array_equal(np.concatenate([c.time_s for c in chunks]), expected.time_s)


# ---- synthetic profiles


def test_constant_rate_is_a_poisson_process() -> None:
    arrivals = constant(100, 10_000).arrivals(rng())
    # Count: mean 1e6, sd 1e3 -> 4 sd is 0.4%.
    assert len(arrivals) == pytest.approx(1_000_000, rel=0.004)
    # Exponential gaps have CV 1; with 1e6 gaps the sample CV's sd is about 0.1%.
    assert gaps_cv(arrivals.time_s) == pytest.approx(1.0, abs=0.005)
    # Counts per second are Poisson: variance equals mean (sd of the ratio ~0.014 over 1e4 s).
    per_second = np.bincount(arrivals.time_s.astype(int), minlength=10_000)
    assert per_second.var() / per_second.mean() == pytest.approx(1.0, abs=0.06)


def test_ramp_counts_follow_the_integral_of_the_rate() -> None:
    arrivals = ramp(0, 200, 1000).arrivals(rng())
    # Rate 0.2 t: the first half expects 25,000, the second 75,000 (sd 158 and 274).
    first_half = np.count_nonzero(arrivals.time_s < 500)
    assert first_half == pytest.approx(25_000, abs=650)
    assert len(arrivals) - first_half == pytest.approx(75_000, abs=1100)


def test_step_changes_rate_at_the_given_time() -> None:
    arrivals = step(10, 100, 300, 600).arrivals(rng())
    before = np.count_nonzero(arrivals.time_s < 300)
    assert before == pytest.approx(3000, abs=220)  # sd 55
    assert len(arrivals) - before == pytest.approx(30_000, abs=700)  # sd 173


def test_spike_rate_is_the_total_during_the_spike_and_base_outside() -> None:
    profile = spike(5, 500, at_s=100, spike_duration_s=20, duration_s=300)
    arrivals = profile.arrivals(rng())
    inside = np.count_nonzero((arrivals.time_s >= 100) & (arrivals.time_s < 120))
    assert inside == pytest.approx(10_000, abs=400)  # sd 100
    assert len(arrivals) - inside == pytest.approx(5 * 280, abs=150)  # sd 37
    np.testing.assert_array_equal(profile.rate_rps_at([50, 110, 200]), [5, 500, 5])


def test_spike_past_the_end_is_cut_at_the_end() -> None:
    profile = spike(5, 50, at_s=90, spike_duration_s=60, duration_s=100)
    np.testing.assert_array_equal(profile.edges_s, [0, 90, 100])
    np.testing.assert_array_equal(profile.rate_rps, [5, 50])


def test_diurnal_peaks_at_peak_at_s_and_troughs_half_a_period_later() -> None:
    profile = diurnal(100, 0.5, 86_400, peak_at_s=14 * 3600)
    assert profile.mean_rps == pytest.approx(100, rel=1e-9)  # whole days average to the mean
    assert profile.rate_rps_at(14 * 3600) == pytest.approx(150, rel=1e-3)
    assert profile.rate_rps_at(2 * 3600) == pytest.approx(50, rel=1e-3)
    arrivals = profile.slice(13.5 * 3600, 14.5 * 3600).arrivals(rng())
    # Near the peak the hour averages 150 * ... ~149.7 req/s: ~539,000 arrivals, sd ~730.
    assert len(arrivals) / 3600 == pytest.approx(149.7, rel=0.006)


def test_diurnal_weekends_are_scaled_by_weekend_factor() -> None:
    # A compressed week: 7 periods of 600 s starting on Monday; Saturday and Sunday at 40%.
    profile = diurnal(50, 0.0, 7 * 600, period_s=600, weekend_factor=0.4)
    counts = np.bincount((profile.arrivals(rng()).time_s // 600).astype(int), minlength=7)
    weekday, weekend = counts[:5].mean(), counts[5:].mean()
    assert weekday == pytest.approx(30_000, rel=0.02)  # sd of a 5-day mean: 77 (0.26%)
    assert weekend / weekday == pytest.approx(0.4, rel=0.03)


@pytest.mark.parametrize("cv", [0.5, 3.0])
def test_bursty_measured_cv_matches_the_target(cv: float) -> None:
    arrivals = bursty(100, cv, 10_000).arrivals(rng())
    # 1e6 gamma gaps: sd of the sample CV is ~0.1% (cv 0.5) to ~0.4% (cv 3, heavy tail);
    # 3% also covers the restarts at the 16 block edges.
    assert gaps_cv(arrivals.time_s) == pytest.approx(cv, rel=0.03)
    # The count of a renewal process has variance ~ rate * T * cv^2: sd 0.3% at cv 3.
    assert len(arrivals) == pytest.approx(1_000_000, rel=0.015)


def test_bursty_with_cv_zero_is_evenly_spaced() -> None:
    arrivals = bursty(4, 0.0, 100, block_s=1000).arrivals(rng())
    assert len(arrivals) == 400
    np.testing.assert_allclose(np.diff(arrivals.time_s), 0.25)


def test_renewal_steps_start_in_equilibrium_so_short_steps_keep_the_mean_rate() -> None:
    # 5000 one-second blocks at 5 req/s with cv 10. A renewal process restarted with a fresh
    # arrival at each block start would give (cv^2 - 1) / 2 ~ 50 extra arrivals per block.
    arrivals = bursty(5, 10.0, 5000, block_s=1.0).arrivals(rng())
    # Expected 25,000; sd about sqrt(25,000 * 100) = 1,600, so 25% is ~4 sd.
    assert len(arrivals) == pytest.approx(25_000, rel=0.25)


# ---- operations


def test_time_scale_stretches_arrivals_and_duration() -> None:
    profile = step(10, 50, 100, 400)
    stretched = profile.time_scale(2.5)
    assert stretched.duration_s == 1000
    np.testing.assert_allclose(
        stretched.arrivals(rng()).time_s, profile.arrivals(rng()).time_s * 2.5
    )


def test_rate_scale_of_a_rate_profile_multiplies_the_rate_exactly() -> None:
    profile = spike(10, 100, 50, 10, 200)
    doubled = profile.rate_scale(2)
    assert isinstance(doubled, type(profile))
    np.testing.assert_array_equal(doubled.rate_rps, profile.rate_rps * 2)
    assert doubled.duration_s == profile.duration_s
    assert_same(profile.rate_scale(1.0).arrivals(rng()), profile.arrivals(rng()))


def test_rate_scale_reaches_the_rate_through_slices_loops_and_time_scaling() -> None:
    profile = constant(10, 100).loop(3).slice(50, 250).time_scale(2)
    scaled = profile.rate_scale(3)
    count = len(scaled.arrivals(rng()))
    assert count == pytest.approx(3 * 10 * 200, abs=4 * math.sqrt(6000))


def test_rate_scale_of_a_log_thins_deterministically() -> None:
    log = small_log().loop(2000)  # 20,000 requests
    half = log.rate_scale(0.5)
    kept = half.arrivals(rng())
    assert_same(kept, half.arrivals(rng()))
    assert len(kept) == pytest.approx(10_000, abs=300)  # binomial sd 71
    assert set(kept.input_tokens.tolist()) <= set(range(10))
    # Thinning keeps recorded requests only: every kept time is one of the log's.
    assert np.isin(kept.time_s, log.arrivals(rng()).time_s).all()


def test_rate_scale_of_a_log_adds_copies_with_their_tokens_inside_their_window() -> None:
    log = small_log().loop(2000)
    scaled = log.rate_scale(2.5, resolution_s=10.0).arrivals(rng())
    assert len(scaled) == pytest.approx(50_000, abs=300)  # 20,000 x Bernoulli(0.5) extra: sd 71
    assert np.all(np.diff(scaled.time_s) >= 0)
    # Tokens travel in pairs: output = input + 100 for every request of small_log.
    np.testing.assert_array_equal(scaled.output_tokens, scaled.input_tokens + 100)
    # Each 10 s window (one loop of the log) holds its 10 originals and ~15 copies.
    per_window = np.bincount((scaled.time_s // 10).astype(int))
    assert per_window.min() >= 10


def test_slice_keeps_exactly_the_original_arrivals_inside_the_window() -> None:
    profile = bursty(40, 2.0, 3000)
    whole = profile.arrivals(rng())
    part = profile.slice(1234.5, 2222.0).arrivals(rng())
    inside = whole.time_s[(whole.time_s >= 1234.5) & (whole.time_s < 2222.0)]
    np.testing.assert_allclose(part.time_s, inside - 1234.5, atol=1e-9)


def test_pad_adds_a_quiet_tail_and_keeps_every_arrival() -> None:
    # the sandbox's cooldown: the same arrivals (chunked or whole, through rate and time
    # scaling), then nothing until the new end
    log = small_log().loop(200)
    padded = log.rate_scale(1.5).pad(500.0)
    assert padded.duration_s == log.duration_s + 500.0
    assert_same(padded.arrivals(rng()), log.rate_scale(1.5).arrivals(rng()))
    chunks = list(padded.time_scale(0.2).iter_chunks(rng(), chunk_s=7.0))
    assert sum(len(c) for c in chunks) == len(padded.arrivals(rng()))
    assert padded.expected_requests(log.duration_s, padded.duration_s) == 0
    assert log.pad(0) is log
    with pytest.raises(ProfileError, match="pad"):
        log.pad(-1)


def test_loop_repeats_a_log_exactly() -> None:
    log = small_log()
    looped = log.loop(3).arrivals(rng())
    assert len(looped) == 30
    np.testing.assert_array_equal(looped.time_s[10:20], log.arrivals(rng()).time_s + 10)
    np.testing.assert_array_equal(looped.input_tokens, np.tile(np.arange(10), 3))


def test_loop_draws_each_repetition_of_a_synthetic_profile_afresh() -> None:
    looped = constant(50, 100).loop(2).arrivals(rng())
    first, second = looped.window(0, 100), looped.window(100, 200)
    assert not np.array_equal(first.time_s, second.time_s - 100)


def test_loop_by_duration_cuts_the_last_repetition() -> None:
    looped = small_log().loop(duration_s=25)
    assert looped.duration_s == 25
    assert len(looped.arrivals(rng())) == 10 + 10 + 6  # the third pass stops before 25 s


def test_with_tokens_draws_pairs_from_the_given_log() -> None:
    profile = constant(100, 60).with_tokens([10, 20], [1, 2])
    arrivals = profile.arrivals(rng())
    assert profile.has_tokens
    assert set(zip(arrivals.input_tokens, arrivals.output_tokens, strict=True)) == {
        (10, 1),
        (20, 2),
    }


def test_request_log_duration_adds_one_mean_gap_after_the_last_request() -> None:
    log = request_log([0.0, 1.0, 3.0])
    assert log.duration_s == 4.5  # span 3 s over 2 gaps: mean gap 1.5 s
    assert len(log.arrivals(rng())) == 3
    assert not log.time_s.flags.writeable


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: constant(-1, 10), "constant: rate_rps must be >= 0 (got -1)"),
        (lambda: constant(1, 0), "constant: duration_s must be > 0 (got 0)"),
        (lambda: diurnal(1, 1.5, 10), "diurnal: amplitude must be in 0..1 (got 1.5)"),
        (lambda: bursty(1, math.nan, 10), "bursty: cv must be a finite number (got nan)"),
        (lambda: rate_steps([0, 5, 5], [1, 2]), "rate_steps: edges_s[2] must be increasing"),
        (lambda: rate_steps([0, 5], [-2]), "rate_steps: rate_rps[0] must be a number >= 0"),
        (lambda: constant(1, 10).slice(5, 20), "slice: need 0 <= start_s < end_s <= duration_s"),
        (lambda: constant(1, 10).loop(0), "loop: times must be a whole number >= 1 (got 0)"),
        (lambda: constant(1, 10).loop(), "loop: give exactly one of times or duration_s"),
        (lambda: constant(1, 10).time_scale(0), "time_scale: factor must be > 0 (got 0)"),
        (lambda: request_log([0.0, 2.0, 1.0]), "request_log: time_s[2] must be in time order"),
        (lambda: request_log([1.0, 1.0]), "request_log: all requests at one instant"),
    ],
)
def test_bad_parameters_raise_one_line_profile_errors(
    build: Callable[[], object], message: str
) -> None:
    with pytest.raises(ProfileError) as caught:
        build()
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)
