"""Named benchmark scenarios: a load profile, a replica model, an SLO and the bounds to beat.

In: a scenario name and its knobs (days, startup time). Out: everything a run needs, plus the
clairvoyant lower bound and the static plan, so `bench/policy_quality.py`, `replicast compare
--scenario` and the notebooks measure the same thing.

"gpu-llm" (issue 10, documented in bench/README.md):
- load: the 14-day ServeGen per-10-minute rate series scaled to a mean of 100 req/s, Poisson
  arrivals inside each window; day 1 alone is the quick mode;
- replicas: 8 concurrency slots, FCFS, exponential service time with mean 2 s, ready a fixed
  startup time (120 s; rows for 60 s and 300 s) after they are requested, billed from the
  request until removal; metrics scraped every 15 s and visible 1 s later (a tick, on the
  same 15 s grid, sees the previous scrape), control interval 15 s, min 1 replica;
- SLO: queueing delay (arrival to start of service) <= 1 s for at least 99 % of requests;
- clairvoyant bound: each 10-minute window holds the fewest replicas whose M/M/c (Erlang-C)
  queueing delay meets the SLO at that window's rate, ready exactly when needed;
- static plan: the clairvoyant count of the peak window, all the time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from policies.queueing import smallest_servers
from simulator import traces
from simulator.engine import DEFAULT_EPOCH_S
from simulator.model import ReplicaModel
from simulator.observe import MetricsConfig
from simulator.oracle import WindowOracle
from simulator.profiles import RateProfile
from simulator.result import SloTarget

FloatArray = npt.NDArray[np.float64]
DAY_S = 86_400.0
SCENARIOS = ("gpu-llm",)
STARTUP_TIMES_S = (60.0, 120.0, 300.0)


@dataclass(frozen=True)
class Scenario:
    """One benchmark setting. `window_s`/`window_rps` describe the load as the clairvoyant
    plan sees it (the true rate per window, known in advance)."""

    name: str
    profile: RateProfile
    model: ReplicaModel
    slo: SloTarget
    interval_s: float
    metrics: MetricsConfig
    window_s: float
    window_rps: FloatArray
    service_s: float
    min_replicas: int = 1

    @property
    def slots(self) -> int:
        return self.model.slots_per_replica

    def clairvoyant_plan(self) -> npt.NDArray[np.int64]:
        """Replicas per window: the fewest whose Erlang-C wait meets the SLO at that rate
        (read-only; computed once per scenario, as the bounds and run options all use it)."""
        return self._plan

    @cached_property
    def _plan(self) -> npt.NDArray[np.int64]:
        plan = self.window_counts()
        plan.flags.writeable = False
        return plan

    def window_counts(self, margin: float = 0.0) -> npt.NDArray[np.int64]:
        """Per window, the fewest replicas whose Erlang-C wait meets the SLO at that window's
        rate x (1 + `margin`) (at least `min_replicas`)."""
        return np.array(
            [
                max(
                    self.min_replicas,
                    _replicas_for(r * (1 + margin), self.service_s, self.slo, self.slots),
                )
                for r in self.window_rps
            ],
            dtype=np.int64,
        )

    def plan_replica_hours(self, plan: npt.NDArray[np.int64]) -> float:
        return float(plan.sum() * self.window_s / 3600.0)

    def static_replicas(self) -> int:
        return int(self.clairvoyant_plan().max())

    def policy_defaults(self) -> dict[str, Any]:
        """What every policy spec in the scenario shares: the floor and a generous ceiling."""
        return {"min_replicas": self.min_replicas, "max_replicas": 4 * self.static_replicas()}

    def planner_spec(self) -> dict[str, Any]:
        """The policy issue 10 asks for: `planner` with its documented defaults plus the SLO
        (the same for every trace: nothing here is fitted to the scenario's load)."""
        return {
            "policy": "planner",
            "wait_target_s": self.slo.threshold_s,
            "percentile": self.slo.share,
            "slots_per_replica": self.slots,
            **self.policy_defaults(),
        }

    def oracle(self, *, ahead_s: float, margin: float = 0.0, hold_s: float = 0.0) -> WindowOracle:
        """A policy that reads each window's true rate (x 1 + `margin`) at now and `ahead_s`
        ahead, holding the largest count of the last `hold_s` (simulator/oracle.py):
        `ahead_s` = the startup time runs the clairvoyant plan, 0 the reactive bound."""
        counts = self.clairvoyant_plan() if margin == 0 else self.window_counts(margin)
        return WindowOracle(
            tuple(int(n) for n in counts), self.window_s, DEFAULT_EPOCH_S, ahead_s, hold_s
        )

    def run_options(self) -> dict[str, Any]:
        """Keyword arguments for `simulator.run` (besides profile, spec, model and seed)."""
        return {
            "interval_s": self.interval_s,
            "metrics": self.metrics,
            "slo": self.slo,
            "initial_replicas": int(self.clairvoyant_plan()[0]),
            "max_alive": 4 * self.static_replicas() + 16,
            "start_epoch_s": DEFAULT_EPOCH_S,  # where the oracles' window 0 begins
        }


def _replicas_for(rate_rps: float, service_s: float, slo: SloTarget, slots: int) -> int:
    if rate_rps <= 0:
        return 0
    servers, _ = smallest_servers(rate_rps, service_s, slo.share, slo.threshold_s, step=slots)
    return servers // slots


def _window_cut(profile: RateProfile, start_s: float, end_s: float) -> RateProfile:
    """The steps of `profile` in [start_s, end_s), re-timed to start at 0 (still a RateProfile,
    so the clairvoyant plan can read its rates)."""
    keep = (profile.edges_s[:-1] < end_s - 1e-9) & (profile.edges_s[1:] > start_s + 1e-9)
    index = np.flatnonzero(keep)
    edges = np.clip(profile.edges_s[index[0] : index[-1] + 2], start_s, end_s) - start_s
    start_unix = None if profile.start_unix_s is None else profile.start_unix_s + start_s
    return replace(
        profile,
        edges_s=edges,
        rate_rps=profile.rate_rps[index],
        cv=None if profile.cv is None else profile.cv[index],
        duration_s=end_s - start_s,
        start_unix_s=start_unix,
    )


def gpu_llm(
    *, days: float = 1.0, startup_s: float = 120.0, mean_rps: float = 100.0, start_day: int = 0
) -> Scenario:
    """`days` of the 14-day series from `start_day`, cold start `startup_s`."""
    if not 0 < days <= 14 or not 0 <= start_day < 14 or start_day + days > 14 + 1e-9:
        raise ValueError(f"days: the series holds 14 days (got start_day {start_day}, days {days})")
    if not startup_s >= 0:
        raise ValueError(f"startup_s: must be >= 0 (got {startup_s})")
    whole = traces.servegen_language_14d(within="poisson")
    profile = _window_cut(whole, start_day * DAY_S, (start_day + days) * DAY_S)
    profile = replace(profile, rate_rps=profile.rate_rps * (mean_rps / whole.mean_rps))
    window_s = 600.0
    edges = np.arange(0.0, profile.duration_s, window_s)
    model = ReplicaModel.from_spec(
        {
            "slots_per_replica": 8,
            "service": {"kind": "exponential", "mean_s": 2.0},
            "startup": {"fixed_s": float(startup_s)},
        }
    )
    return Scenario(
        name=f"gpu-llm {days:g} d, startup {startup_s:g} s",
        profile=profile,
        model=model,
        slo=SloTarget(1.0, "wait", 0.99),
        interval_s=15.0,
        # Scrapes land 1 s after they are taken: a tick on a scrape instant sees the previous one.
        metrics=MetricsConfig(scrape_interval_s=15.0, delay_s=1.0),
        window_s=window_s,
        window_rps=profile.rate_rps_at(edges + window_s / 2),
        service_s=2.0,
    )


def scenario(name: str, **knobs: Any) -> Scenario:
    if name == "gpu-llm":
        return gpu_llm(**knobs)
    raise ValueError(f"scenario: unknown {name!r}; known: {', '.join(SCENARIOS)}")
