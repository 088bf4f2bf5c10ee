"""The guard pipeline: every policy's raw proposal passes the same guards, in this order.

1. stabilization over raw proposals (HPA `stabilizeRecommendationWithBehaviors`),
2. rate limits (HPA `convertDesiredReplicasWithBehaviorRate` with `selectPolicy`),
3. min/max,
4. starting capacity (no further scale-up while replicas are still starting; off by default),
5. missing data (never scale down while a signal the policy requires is missing),
6. history gap (no scale-down until a hold set by `hold_scale_down` ends: a takeover or a
   restart that cannot see part of the last window's history holds for one window),
7. flap budget (at most N direction changes per window; off by default).

In: the proposal, the current replica count, the observation and `GuardState`. Out: the final
count, one `GuardStep` per guard that changed the value, and the new `GuardState`. Scale events
are recorded by `record_scale` when the shell commits what it applied (policies.protocol.commit),
at the tick's `now_s`, as HPA's `storeScaleEvent` does after a successful scale.
The HPA arithmetic is reproduced including its quirks (strict `After`
cutoffs, reuse of outdated slots); the worked examples live in tests/test_hpa_traces.py.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from policies.observation import Observation
from policies.spec import GuardSpec, HPABehavior, HPAScalingRules

# Kubernetes defaults (k8s.io/kubernetes pkg/apis/autoscaling/v2/defaults.go and the
# controller's --horizontal-pod-autoscaler-downscale-stabilization flag).
DEFAULT_DOWNSCALE_STABILIZATION_S = 300
DEFAULT_SCALE_PERIOD_S = 15


@dataclass(frozen=True, slots=True)
class ScalingPolicy:
    type: str  # "Pods" | "Percent"
    value: int
    period_s: int


@dataclass(frozen=True, slots=True)
class ScalingRules:
    """One direction of a fully defaulted HPA behavior."""

    stabilization_window_s: int
    select_policy: str  # "Max" | "Min" | "Disabled"
    policies: tuple[ScalingPolicy, ...]
    tolerance: float | None = None

    @property
    def longest_period_s(self) -> int:
        return max((p.period_s for p in self.policies), default=0)


@dataclass(frozen=True, slots=True)
class FlapBudget:
    max_changes: int
    window_s: float


@dataclass(frozen=True, slots=True)
class Guards:
    min_replicas: int
    max_replicas: int
    scale_up: ScalingRules | None = None
    scale_down: ScalingRules | None = None
    starting_capacity: bool = False
    flap_budget: FlapBudget | None = None

    @property
    def has_behavior(self) -> bool:
        return self.scale_up is not None and self.scale_down is not None


DEFAULT_SCALE_UP = ScalingRules(
    stabilization_window_s=0,
    select_policy="Max",
    policies=(
        ScalingPolicy("Pods", 4, DEFAULT_SCALE_PERIOD_S),
        ScalingPolicy("Percent", 100, DEFAULT_SCALE_PERIOD_S),
    ),
)
DEFAULT_SCALE_DOWN = ScalingRules(
    stabilization_window_s=DEFAULT_DOWNSCALE_STABILIZATION_S,
    select_policy="Max",
    policies=(ScalingPolicy("Percent", 100, DEFAULT_SCALE_PERIOD_S),),
)


def _rules(given: HPAScalingRules | None, default: ScalingRules) -> ScalingRules:
    """Kubernetes' copyHPAScalingRules: each non-nil field of `given` replaces the default."""
    if given is None:
        return default
    policies = default.policies
    if given.policies is not None:
        policies = tuple(ScalingPolicy(p.type, p.value, p.periodSeconds) for p in given.policies)
    return ScalingRules(
        stabilization_window_s=(
            given.stabilizationWindowSeconds
            if given.stabilizationWindowSeconds is not None
            else default.stabilization_window_s
        ),
        select_policy=given.selectPolicy or default.select_policy,
        policies=policies,
        tolerance=given.tolerance if given.tolerance is not None else default.tolerance,
    )


def resolve_behavior(behavior: HPABehavior) -> tuple[ScalingRules, ScalingRules]:
    return _rules(behavior.scaleUp, DEFAULT_SCALE_UP), _rules(
        behavior.scaleDown, DEFAULT_SCALE_DOWN
    )


def guards_from_spec(spec: GuardSpec) -> Guards:
    up = down = None
    if spec.behavior is not None:
        up, down = resolve_behavior(spec.behavior)
    budget = None
    if spec.flap_budget is not None:
        budget = FlapBudget(spec.flap_budget.max_changes, spec.flap_budget.window_s)
    return Guards(
        min_replicas=spec.min_replicas,
        max_replicas=spec.max_replicas,
        scale_up=up,
        scale_down=down,
        starting_capacity=spec.starting_capacity,
        flap_budget=budget,
    )


def behavior_to_spec(up: ScalingRules, down: ScalingRules) -> dict[str, Any]:
    """The fully defaulted behavior block, camelCase, as Kubernetes would show it."""

    def rules(r: ScalingRules) -> dict[str, Any]:
        out: dict[str, Any] = {
            "stabilizationWindowSeconds": r.stabilization_window_s,
            "selectPolicy": r.select_policy,
            "policies": [
                {"type": p.type, "value": p.value, "periodSeconds": p.period_s} for p in r.policies
            ],
        }
        if r.tolerance is not None:
            out["tolerance"] = r.tolerance
        return out

    return {"scaleUp": rules(up), "scaleDown": rules(down)}


def guards_to_spec(guards: Guards) -> dict[str, Any]:
    out: dict[str, Any] = {
        "min_replicas": guards.min_replicas,
        "max_replicas": guards.max_replicas,
    }
    if guards.scale_up is not None and guards.scale_down is not None:
        out["behavior"] = behavior_to_spec(guards.scale_up, guards.scale_down)
    if guards.starting_capacity:
        out["starting_capacity"] = True
    if guards.flap_budget is not None:
        out["flap_budget"] = {
            "max_changes": guards.flap_budget.max_changes,
            "window_s": guards.flap_budget.window_s,
        }
    return out


# --- state ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScaleEvent:
    change: int  # always > 0; the list it is in gives the direction
    at_s: float
    outdated: bool = False


@dataclass(frozen=True, slots=True)
class GuardState:
    # None until the first tick records the initial recommendation (HPA
    # recordInitialRecommendation); afterwards a list that HPA never empties.
    recommendations: tuple[tuple[float, int], ...] | None = None
    up_events: tuple[ScaleEvent, ...] = ()
    down_events: tuple[ScaleEvent, ...] = ()
    last_direction: int = 0  # +1 up, -1 down, 0 no scale event yet
    direction_changes_s: tuple[float, ...] = ()
    # No scale-down before this time (a takeover or restart with part of the history unknown).
    hold_down_until_s: float | None = None
    # Derived, never saved nor compared: what `stabilize` keeps between ticks so that a tick
    # costs O(1) instead of a scan of `recommendations` (see _Windows). A box of at most one,
    # taken with an atomic list.pop: whoever takes it owns it; everyone else scans.
    _windows: list[_Windows] = field(default_factory=list, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        def events(evs: tuple[ScaleEvent, ...]) -> list[list[Any]]:
            return [[e.at_s, e.change, e.outdated] for e in evs]

        return {
            "recommendations": (
                None if self.recommendations is None else [list(r) for r in self.recommendations]
            ),
            "up_events": events(self.up_events),
            "down_events": events(self.down_events),
            "last_direction": self.last_direction,
            "direction_changes_s": list(self.direction_changes_s),
            "hold_down_until_s": self.hold_down_until_s,
        }

    @classmethod
    def from_json(cls, data: Any) -> GuardState:
        def events(rows: Any) -> tuple[ScaleEvent, ...]:
            return tuple(ScaleEvent(int(c), float(t), bool(o)) for t, c, o in rows)

        rows = data.get("recommendations")
        recs = None if rows is None else tuple((float(t), int(r)) for t, r in rows)
        hold = data.get("hold_down_until_s")
        return cls(
            recommendations=recs,
            up_events=events(data.get("up_events", [])),
            down_events=events(data.get("down_events", [])),
            last_direction=int(data.get("last_direction", 0)),
            direction_changes_s=tuple(float(t) for t in data.get("direction_changes_s", [])),
            hold_down_until_s=None if hold is None else float(hold),
            _windows=[] if recs is None else [_Windows(recs)],
        )


@dataclass(frozen=True, slots=True)
class GuardStep:
    """One guard that changed the value: name, before, after, why."""

    name: str
    before: int
    after: int
    why: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "before": self.before, "after": self.after, "why": self.why}


# --- 1. stabilization ----------------------------------------------------------------------


_SCAN_BELOW = 32  # recommendations; below this a plain scan is as fast as the windows

_UP_WHY = "ScaleUpStabilized: recent recommendations were lower; applying the lowest"
_DOWN_WHY = "ScaleDownStabilized: recent recommendations were higher; applying the highest"


class _Windows:
    """`recommendations` (the tuple `owner`) arranged so that one tick is O(1) amortized.

    Exactly HPA's scan, given what `_take_windows` checks: both windows as at the build and
    `now_s` not before any recommendation. Then every cutoff is at or after every earlier one,
    so an entry that left a window never comes back, and a new entry is the latest:
    - `lows` / `highs`: monotonic queues, in time order, of the entries after the scale-up /
      scale-down cutoff that can still be the min / max (an entry with a later or equal time
      and a lower / higher or equal count hides it for good); the front is the answer;
    - `live`: (time, slot) of every entry not yet before both cutoffs, in time order;
      `expired`: a heap of -slot of those that are, so -expired[0] is HPA's "last entry
      older than both cutoffs", the slot the new one overwrites.
    `live is None` is a seed, built on its first tick (after from_json, or a short scan).
    """

    __slots__ = (
        "down_window_s",
        "expired",
        "highs",
        "latest_s",
        "live",
        "lows",
        "owner",
        "up_window_s",
    )
    up_window_s: float
    down_window_s: float
    latest_s: float
    expired: list[int]
    lows: deque[tuple[float, int]]
    highs: deque[tuple[float, int]]

    def __init__(self, owner: tuple[tuple[float, int], ...]) -> None:
        self.owner = owner
        self.live: deque[tuple[float, int]] | None = None

    def build(self, up_window_s: float, down_window_s: float) -> bool:
        """Arrange `owner`; False (and unusable) when a time is NaN or a window not finite."""
        if not (math.isfinite(up_window_s) and math.isfinite(down_window_s)):
            return False
        recs = self.owner
        times = [at_s for at_s, _ in recs]
        if any(map(math.isnan, times)):
            return False
        order = sorted(range(len(recs)), key=times.__getitem__)
        self.up_window_s, self.down_window_s = up_window_s, down_window_s
        self.latest_s = times[order[-1]] if order else -math.inf
        self.live, self.expired = deque((times[i], i) for i in order), []
        # What _push would leave: an entry stays unless a later one is as low / as high.
        lows: list[tuple[float, int]] = []
        highs: list[tuple[float, int]] = []
        for i in reversed(order):
            entry = recs[i]
            if not lows or entry[1] < lows[-1][1]:
                lows.append(entry)
            if not highs or entry[1] > highs[-1][1]:
                highs.append(entry)
        self.lows, self.highs = deque(reversed(lows)), deque(reversed(highs))
        return True

    def _push(self, entry: tuple[float, int]) -> None:
        lows, highs, rec = self.lows, self.highs, entry[1]
        while lows and lows[-1][1] >= rec:
            lows.pop()
        lows.append(entry)
        while highs and highs[-1][1] <= rec:
            highs.pop()
        highs.append(entry)

    def tick(self, desired: int, current: int, now_s: float) -> int:
        """HPA's stabilized value; `owner` becomes the recommendations after this tick."""
        assert self.live is not None
        up_cutoff = now_s - self.up_window_s
        down_cutoff = now_s - self.down_window_s
        lows, highs, live = self.lows, self.highs, self.live
        while lows and lows[0][0] <= up_cutoff:
            lows.popleft()
        while highs and highs[0][0] <= down_cutoff:
            highs.popleft()
        up_rec = desired if not lows or desired < lows[0][1] else lows[0][1]
        down_rec = desired if not highs or desired > highs[0][1] else highs[0][1]
        old_cutoff = up_cutoff if up_cutoff < down_cutoff else down_cutoff
        while live and live[0][0] < old_cutoff:
            heapq.heappush(self.expired, -live.popleft()[1])
        entry = (now_s, desired)
        recs = self.owner
        if self.expired:
            slot = -heapq.heappop(self.expired)
            self.owner = (*recs[:slot], entry, *recs[slot + 1 :])
        else:
            slot = len(recs)
            self.owner = (*recs, entry)
        live.append((now_s, slot))
        self._push(entry)
        self.latest_s = now_s
        return min(max(current, up_rec), down_rec)


def _take_windows(
    state: GuardState, up_window_s: float, down_window_s: float, now_s: float
) -> _Windows | None:
    """The state's `_Windows`, built if need be, or None: scan (a short list, a state whose
    windows someone else took, a window change, the clock gone back)."""
    try:
        windows = state._windows.pop()
    except IndexError:
        return None
    recs = state.recommendations or ()
    if windows.owner is not recs:
        state._windows.append(windows)  # not this state's: a replace() shared the box
        return None
    if (
        windows.live is None
        or windows.up_window_s != up_window_s
        or windows.down_window_s != down_window_s
        or not now_s >= windows.latest_s
    ):
        if len(recs) < _SCAN_BELOW:
            return None
        windows = _Windows(recs)
        if not windows.build(up_window_s, down_window_s):
            return None
    return windows if now_s >= windows.latest_s else None


def _scan(
    desired: int,
    current: int,
    now_s: float,
    up_window_s: float,
    down_window_s: float,
    recs: tuple[tuple[float, int], ...],
) -> tuple[int, tuple[tuple[float, int], ...]]:
    """HPA's scan as written: min after the up cutoff, max after the down cutoff, and the
    last entry before both overwritten (or one appended)."""
    up_cutoff = now_s - up_window_s
    down_cutoff = now_s - down_window_s
    up_rec = down_rec = desired
    old_index = -1
    for i, (at_s, rec) in enumerate(recs):
        if at_s > up_cutoff and rec < up_rec:
            up_rec = rec
        if at_s > down_cutoff and rec > down_rec:
            down_rec = rec
        if at_s < up_cutoff and at_s < down_cutoff:
            old_index = i
    entry = (now_s, desired)
    if old_index >= 0:
        recs = (*recs[:old_index], entry, *recs[old_index + 1 :])
    else:
        recs = (*recs, entry)
    return min(max(current, up_rec), down_rec), recs


def stabilize(
    desired: int, current: int, now_s: float, guards: Guards, state: GuardState
) -> tuple[int, GuardState, str]:
    """HPA's two-sided stabilization; returns the value, the new state and a reason.

    Kubernetes scans every recommendation each tick (`_scan`); `_Windows` gives the same
    answer and the same slots in O(1) amortized once the list is long. The property test in
    tests/test_guards_stabilize.py holds both to a verbatim copy of the scan.
    """
    if guards.scale_up is None or guards.scale_down is None:
        return desired, state, ""
    up_window_s = guards.scale_up.stabilization_window_s
    down_window_s = guards.scale_down.stabilization_window_s
    windows = _take_windows(state, up_window_s, down_window_s, now_s)
    if windows is None:
        recs = state.recommendations or ()
        value, recs = _scan(desired, current, now_s, up_window_s, down_window_s, recs)
        windows = _Windows(recs)
    else:
        value = windows.tick(desired, current, now_s)
    new_state = GuardState(
        windows.owner,
        state.up_events,
        state.down_events,
        state.last_direction,
        state.direction_changes_s,
        state.hold_down_until_s,
        [windows],
    )
    return value, new_state, _UP_WHY if desired >= current else _DOWN_WHY


def record_initial_recommendation(current: int, now_s: float, state: GuardState) -> GuardState:
    if state.recommendations is not None:
        return state
    recs = ((now_s, current),)
    return GuardState(
        recs,
        state.up_events,
        state.down_events,
        state.last_direction,
        state.direction_changes_s,
        state.hold_down_until_s,
        [_Windows(recs)],
    )


# --- 2. rate limits ------------------------------------------------------------------------


def _change_in_period(events: tuple[ScaleEvent, ...], period_s: int, now_s: float) -> int:
    cutoff = now_s - period_s
    return sum(e.change for e in events if e.at_s > cutoff)


def scale_limit(
    direction: int, current: int, rules: ScalingRules, state: GuardState, now_s: float
) -> int:
    """The furthest the count may move in `direction` (+1 up, -1 down) under `rules`.

    HPA calculateScaleUpLimitWithScalingRules / calculateScaleDownLimitWithBehaviors: each
    policy starts from the count at the start of its period (current, less what was added,
    plus what was removed within it); selectPolicy Max takes the largest change, Min the
    smallest, Disabled none.
    """
    if rules.select_policy == "Disabled":
        return current
    largest_change = rules.select_policy != "Min"
    pick = max if (direction > 0) == largest_change else min
    result: int | None = None
    for p in rules.policies:
        added = _change_in_period(state.up_events, p.period_s, now_s)
        deleted = _change_in_period(state.down_events, p.period_s, now_s)
        start = current - added + deleted
        if p.type == "Pods":
            proposed = start + direction * p.value
        elif direction > 0:  # rounded up, or a small target could never grow
            proposed = math.ceil(start * (1 + p.value / 100))
        else:  # Go's int32(float64) truncates toward zero
            proposed = int(start * (1 - p.value / 100))
        result = proposed if result is None else pick(result, proposed)
    return current if result is None else result


def rate_limit(
    desired: int, current: int, now_s: float, guards: Guards, state: GuardState
) -> tuple[int, str]:
    if desired > current and guards.scale_up is not None:
        limit = max(scale_limit(+1, current, guards.scale_up, state, now_s), current)
        if desired > limit:
            return limit, "ScaleUpLimit: the desired count is increasing faster than the scale rate"
    elif desired < current and guards.scale_down is not None:
        limit = min(scale_limit(-1, current, guards.scale_down, state, now_s), current)
        if desired < limit:
            return (
                limit,
                "ScaleDownLimit: the desired count is decreasing faster than the scale rate",
            )
    return desired, ""


# --- 3.-6. bounds, starting capacity, missing data, flap budget ---------------------------


def clamp(desired: int, guards: Guards) -> tuple[int, str]:
    if desired > guards.max_replicas:
        return guards.max_replicas, f"TooManyReplicas: capped at max_replicas {guards.max_replicas}"
    if desired < guards.min_replicas:
        return guards.min_replicas, f"TooFewReplicas: raised to min_replicas {guards.min_replicas}"
    return desired, ""


def hold_while_starting(
    desired: int, current: int, obs: Observation, guards: Guards
) -> tuple[int, str]:
    if guards.starting_capacity and desired > current and obs.starting_replicas > 0:
        return current, (
            f"StartingCapacity: {obs.starting_replicas} replica(s) still starting; "
            "scale-up waits for them"
        )
    return desired, ""


def block_scale_down_on_missing(
    desired: int, current: int, obs: Observation, required: frozenset[str]
) -> tuple[int, str]:
    if desired >= current:
        return desired, ""
    missing = sorted(s for s in required if obs.signal(s) is None)
    if missing:
        return current, f"MissingSignal: {', '.join(missing)} missing; scale-down blocked"
    return desired, ""


def hold_after_gap(desired: int, current: int, now_s: float, state: GuardState) -> tuple[int, str]:
    until_s = state.hold_down_until_s
    if desired < current and until_s is not None and now_s < until_s:
        return current, (
            f"HistoryGap: part of the last window's history is unknown (a takeover or a "
            f"restart); scale-down held for {until_s - now_s:.0f} s more"
        )
    return desired, ""


def flap_guard(
    desired: int, current: int, now_s: float, guards: Guards, state: GuardState
) -> tuple[int, str]:
    budget = guards.flap_budget
    if budget is None or desired == current:
        return desired, ""
    direction = 1 if desired > current else -1
    if state.last_direction in (0, direction):
        return desired, ""
    recent = [t for t in state.direction_changes_s if t > now_s - budget.window_s]
    if len(recent) >= budget.max_changes:
        return current, (
            f"FlapBudget: {len(recent)} direction change(s) in the last {budget.window_s:g} s "
            f"(budget {budget.max_changes}); holding"
        )
    return desired, ""


# --- events --------------------------------------------------------------------------------


def _store(
    events: tuple[ScaleEvent, ...], change: int, now_s: float, longest_s: int
) -> tuple[ScaleEvent, ...]:
    """HPA storeScaleEvent: mark events older than the longest period, reuse the last one."""
    cutoff = now_s - longest_s
    marked = [replace(e, outdated=True) if e.at_s < cutoff else e for e in events]
    new = ScaleEvent(change, now_s)
    outdated = [i for i, e in enumerate(marked) if e.outdated]
    if outdated:
        marked[outdated[-1]] = new
    else:
        marked.append(new)
    return tuple(marked)


def record_scale(
    previous: int,
    new: int,
    now_s: float,
    guards: Guards,
    state: GuardState,
    *,
    rate_event: bool = True,
) -> GuardState:
    """Record the scale event `tick` made (a no-op when nothing changed).

    `rate_event=False` (a direct action such as KEDA's 0 <-> 1) counts for the flap budget
    but not for the rate limits, as KEDA's executor scales outside the HPA's history.
    """
    if new == previous:
        return state
    direction = 1 if new > previous else -1
    changes = state.direction_changes_s
    if state.last_direction not in (0, direction):
        changes = (*changes, now_s)
    if guards.flap_budget is not None:
        changes = tuple(t for t in changes if t > now_s - guards.flap_budget.window_s)
    else:
        changes = ()
    state = replace(state, last_direction=direction, direction_changes_s=changes)
    if guards.scale_up is None or guards.scale_down is None or not rate_event:
        return state
    if direction > 0:
        ups = _store(state.up_events, new - previous, now_s, guards.scale_up.longest_period_s)
        return replace(state, up_events=ups)
    downs = _store(state.down_events, previous - new, now_s, guards.scale_down.longest_period_s)
    return replace(state, down_events=downs)


# --- joining histories (a takeover, a restart) ---------------------------------------------


def hold_scale_down(state: GuardState, until_s: float) -> GuardState:
    """No scale-down before `until_s` (the later of this and any hold already set)."""
    held = state.hold_down_until_s
    return replace(state, hold_down_until_s=until_s if held is None else max(held, until_s))


def join_history(newer: GuardState, older: GuardState, *, after_s: float) -> GuardState:
    """Both histories at once: every recommendation and scale event of either (an event both
    saw counts once), the newer one's direction. Joining only lengthens windows and tightens
    rate limits, never the reverse: a larger max over the scale-down window holds longer, more
    events in a period leave less of its budget. Recommendations at or before `after_s` (older
    than every window) are dropped, so joins never grow the list without bound."""
    recs: tuple[tuple[float, int], ...] | None = None
    if newer.recommendations is not None or older.recommendations is not None:
        both = {*(newer.recommendations or ()), *(older.recommendations or ())}
        recs = tuple(sorted(r for r in both if r[0] > after_s))

    def events(a: tuple[ScaleEvent, ...], b: tuple[ScaleEvent, ...]) -> tuple[ScaleEvent, ...]:
        seen: dict[tuple[float, int], ScaleEvent] = {}
        for e in (*b, *a):
            seen[(e.at_s, e.change)] = e
        return tuple(sorted(seen.values(), key=lambda e: e.at_s))

    holds = [h for h in (newer.hold_down_until_s, older.hold_down_until_s) if h is not None]
    return GuardState(
        recommendations=recs,
        up_events=events(newer.up_events, older.up_events),
        down_events=events(newer.down_events, older.down_events),
        last_direction=newer.last_direction or older.last_direction,
        direction_changes_s=tuple(sorted({*newer.direction_changes_s, *older.direction_changes_s})),
        hold_down_until_s=max(holds) if holds else None,
    )


def shift_history(state: GuardState, jump_s: float) -> GuardState:
    """Every time in the history moved by `jump_s` (a wall-clock step), so each window keeps
    its length measured in the new time."""

    def events(evs: tuple[ScaleEvent, ...]) -> tuple[ScaleEvent, ...]:
        return tuple(replace(e, at_s=e.at_s + jump_s) for e in evs)

    recs = state.recommendations
    held = state.hold_down_until_s
    return replace(
        state,
        recommendations=None if recs is None else tuple((t + jump_s, r) for t, r in recs),
        up_events=events(state.up_events),
        down_events=events(state.down_events),
        direction_changes_s=tuple(t + jump_s for t in state.direction_changes_s),
        hold_down_until_s=None if held is None else held + jump_s,
    )
