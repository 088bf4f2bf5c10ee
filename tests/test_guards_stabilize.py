"""stabilize() against a verbatim copy of the scan it replaced (HPA's
stabilizeRecommendationWithBehaviors as ported before the O(1) windows): the same value, reason
and recommendations, slot for slot, at every tick of random runs — equal times, zero windows,
windows that change, a state saved and resumed mid-run, a state stepped twice, a history
shifted by a clock step."""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from policies import guards as g

# --- the implementation before, verbatim ----------------------------------------------------


def reference_stabilize(
    desired: int, current: int, now_s: float, guards: g.Guards, state: g.GuardState
) -> tuple[int, g.GuardState, str]:
    """HPA's two-sided stabilization; returns the value, the new state and a reason."""
    if guards.scale_up is None or guards.scale_down is None:
        return desired, state, ""
    recs = list(state.recommendations or ())
    up_cutoff = now_s - guards.scale_up.stabilization_window_s
    down_cutoff = now_s - guards.scale_down.stabilization_window_s
    up_rec = down_rec = desired
    old_index = -1
    for i, (at_s, rec) in enumerate(recs):
        if at_s > up_cutoff:
            up_rec = min(rec, up_rec)
        if at_s > down_cutoff:
            down_rec = max(rec, down_rec)
        if at_s < up_cutoff and at_s < down_cutoff:
            old_index = i
    value = min(max(current, up_rec), down_rec)
    if old_index >= 0:
        recs[old_index] = (now_s, desired)
    else:
        recs.append((now_s, desired))
    if desired >= current:
        why = "ScaleUpStabilized: recent recommendations were lower; applying the lowest"
    else:
        why = "ScaleDownStabilized: recent recommendations were higher; applying the highest"
    return value, replace(state, recommendations=tuple(recs)), why


def reference_record_initial_recommendation(
    current: int, now_s: float, state: g.GuardState
) -> g.GuardState:
    if state.recommendations is not None:
        return state
    return replace(state, recommendations=((now_s, current),))


# --- helpers --------------------------------------------------------------------------------


def windows(up_s: int, down_s: int) -> g.Guards:
    up = replace(g.DEFAULT_SCALE_UP, stabilization_window_s=up_s)
    down = replace(g.DEFAULT_SCALE_DOWN, stabilization_window_s=down_s)
    return g.Guards(min_replicas=0, max_replicas=50, scale_up=up, scale_down=down)


def same(new: g.GuardState, ref: g.GuardState) -> None:
    assert list(new.recommendations or ()) == list(ref.recommendations or ())
    assert (new.recommendations is None) == (ref.recommendations is None)
    assert new == ref
    assert new.to_json() == ref.to_json()


def replay(rng: random.Random, guards: g.Guards, ticks: int, step_s: float) -> None:
    """One run: the new code and the reference side by side from the same inputs."""
    now_s = rng.choice([0.0, 1_700_000_000.0, 12.25])
    new = g.record_initial_recommendation(rng.randint(0, 50), now_s, g.GuardState())
    ref = reference_record_initial_recommendation(
        new.recommendations[0][1] if new.recommendations else 0, now_s, g.GuardState()
    )
    same(new, ref)
    earlier: list[tuple[g.GuardState, g.GuardState]] = []
    for _ in range(ticks):
        now_s += rng.choice([0.0, step_s, step_s, step_s, 2 * step_s, rng.uniform(0, 4 * step_s)])
        desired, current = rng.randint(0, 50), rng.randint(0, 50)
        roll = rng.random()
        if roll < 0.03:  # saved and resumed (a restart, a leader change)
            new = g.GuardState.from_json(new.to_json())
        elif roll < 0.05:  # a scale event recorded in between (replace() shares derived data)
            new = replace(new, last_direction=1)
            ref = replace(ref, last_direction=1)
        elif roll < 0.07 and earlier:  # an earlier state stepped again (a branch)
            new, ref = rng.choice(earlier)
        elif roll < 0.09:  # the wall clock stepped; the history moves with it
            jump_s = rng.choice([-3600.0, -7.5, 90.0])
            new, ref = g.shift_history(new, jump_s), g.shift_history(ref, jump_s)
            now_s += jump_s
        elif roll < 0.10:  # the windows changed (a config reload)
            guards = windows(rng.choice([0, 5, 60]), rng.choice([0, 30, 300, 600]))
        value, new_next, why = g.stabilize(desired, current, now_s, guards, new)
        ref_value, ref_next, ref_why = reference_stabilize(desired, current, now_s, guards, ref)
        assert (value, why) == (ref_value, ref_why)
        same(new_next, ref_next)
        earlier.append((new, ref))
        new, ref = new_next, ref_next


@settings(max_examples=60, deadline=None)
@given(
    up_s=st.sampled_from([0, 0, 1, 3, 15, 60, 120, 600]) | st.integers(0, 600),
    down_s=st.sampled_from([0, 15, 30, 120, 300, 300, 600]) | st.integers(0, 600),
    step_s=st.sampled_from([0.5, 1.0, 2.0, 5.0, 15.0]),
    ticks=st.integers(1, 250),
    rng=st.randoms(use_true_random=False),
)
def test_stabilize_matches_the_scan_it_replaced(
    up_s: int, down_s: int, step_s: float, ticks: int, rng: random.Random
) -> None:
    replay(rng, windows(up_s, down_s), ticks, step_s)


def test_one_second_ticks_over_the_default_window_overwrite_the_same_slots() -> None:
    # 1 s ticks, scale-down window 300 s: the list grows to 301 and then reuses its oldest slot
    # every tick, as Kubernetes does; 1200 ticks, with equal times and a restart now and then.
    replay(random.Random(7), windows(0, 300), 1200, 1.0)
    replay(random.Random(8), windows(60, 300), 1200, 1.0)


def test_a_state_saved_by_the_scan_resumes_identically() -> None:
    guards, rng = windows(0, 120), random.Random(3)
    ref = reference_record_initial_recommendation(5, 0.0, g.GuardState())
    for t in range(1, 400):  # the old code's run, saved at the end
        _, ref, _ = reference_stabilize(rng.randint(0, 50), 10, float(t), guards, ref)
    new = g.GuardState.from_json(ref.to_json())
    same(new, ref)
    for t in range(400, 800):
        desired = rng.randint(0, 50)
        value, new, why = g.stabilize(desired, 10, float(t), guards, new)
        ref_value, ref, ref_why = reference_stabilize(desired, 10, float(t), guards, ref)
        assert (value, why) == (ref_value, ref_why)
        same(new, ref)


def test_without_behavior_the_state_passes_through() -> None:
    guards = g.Guards(min_replicas=1, max_replicas=10)
    state = g.GuardState()
    assert g.stabilize(3, 5, 0.0, guards, state) == (3, state, "")
    assert g.record_initial_recommendation(5, 0.0, state).recommendations == ((0.0, 5),)
