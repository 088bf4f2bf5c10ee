"""Policies that know the load: the bounds a real policy is measured against, simulated.

In: a scenario's true rate per window (`Scenario.window_rps`), how far ahead the policy may
read it, a margin and a hold. Out: a `Policy` for `simulator.run` that never looks at metrics.

Why two of them:
- `ahead_s` = the startup time, margin 0, no hold: the clairvoyant plan *executed* in the
  request-level simulator (each window's count asked for one cold start before the window, and
  kept until the window ends). Its replica-hours and attainment check the Erlang-C bound against
  the simulator: a large gap would be a bug on one side.
- `ahead_s` = 0: the *reactive bound*. The policy reads each window's true rate the instant the
  window starts: no metric lag, no rate() smoothing, no Poisson noise in the estimate; what it
  cannot do is know a window before it starts, so a rise still waits one cold start. Swept over
  a margin (headroom on the rate) and a hold (the largest count of the last `hold_s`, as a
  release window), its cheapest setting that meets the SLO is what reacting costs with a fixed
  headroom and hold, on this load. It is a reference, not a proof of optimality: a headroom
  that varies with the load can do better (the planner does at 300 s), but a policy that
  estimates the rate cannot see more than this one does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from policies.observation import Observation
from policies.policy import JSON, Proposal

Hold = tuple[tuple[float, int], ...]  # (now_s, count) of the last hold_s


@dataclass(frozen=True)
class WindowOracle:
    """Replicas per window known in advance (`counts`, already sized with any margin), read
    from now to now + `ahead_s`; the largest count is asked for, and the largest of the last
    `hold_s` is kept (a release window). `start_s`: Unix seconds where window 0 begins."""

    counts: tuple[int, ...]
    window_s: float
    start_s: float
    ahead_s: float = 0.0
    hold_s: float = 0.0
    name: str = "oracle"
    pauses_at_zero = False

    def __post_init__(self) -> None:
        if not self.counts or self.window_s <= 0 or self.ahead_s < 0 or self.hold_s < 0:
            raise ValueError(
                "oracle: needs counts, window_s > 0, ahead_s >= 0 and hold_s >= 0 (got "
                f"{len(self.counts)} counts, window_s {self.window_s}, ahead_s {self.ahead_s}, "
                f"hold_s {self.hold_s})"
            )

    @property
    def required_signals(self) -> frozenset[str]:
        return frozenset()

    def spec(self) -> dict[str, JSON]:
        return {"window_s": self.window_s, "ahead_s": self.ahead_s, "hold_s": self.hold_s}

    def initial_state(self) -> Hold:
        return ()

    def dump_state(self, state: Hold) -> JSON:
        return [[t, n] for t, n in state]

    def load_state(self, data: Any) -> Hold:
        return tuple((float(t), int(n)) for t, n in data)

    def count_at(self, t_s: float) -> int:
        """The count of the window holding `t_s` seconds from the start (the last window's
        after the end)."""
        window = int(t_s // self.window_s)
        return self.counts[max(0, min(len(self.counts) - 1, window))]

    def count_within(self, t_s: float, ahead_s: float) -> int:
        """The largest count of the windows from `t_s` to `t_s + ahead_s` (windows shorter
        than a cold start: a replica asked for now must cover every window until it is
        ready, not only the one a cold start ahead)."""
        last = len(self.counts) - 1
        first = max(0, min(last, int(t_s // self.window_s)))
        end = max(0, min(last, int((t_s + ahead_s) // self.window_s)))
        return max(self.counts[first : end + 1])

    def decide(self, obs: Observation, state: Hold) -> tuple[Proposal, Hold]:
        wanted = self.count_within(obs.now_s - self.start_s, self.ahead_s)
        kept = tuple(x for x in state if x[0] > obs.now_s - self.hold_s)
        kept += ((obs.now_s, wanted),)
        target = max(n for _, n in kept)
        note = f"window count {wanted} (read {self.ahead_s:g} s ahead), held {target}"
        return Proposal.scale(target, note), kept
