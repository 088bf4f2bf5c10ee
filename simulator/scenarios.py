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

Two shapes of the same series (issue 19): `shape="step"` (above: the rate constant for 10
minutes and jumping at each boundary, an artifact of the series' resolution, kept as a stress
case) and `shape="realistic"`: the rate piecewise linear between window centres and arrivals as
bursty as the series says (its `interarrival_cv` column, interpolated the same way), generated
by time rescaling (`simulator.profiles.interpolated`). Realistic arrivals are not Poisson, so
their clairvoyant plan is sized per window by simulation (`simulator.clairvoyant`), computed
once per setting and handed to the scenario (`plan=`). `series=PATH` replays any rate series
with the same columns instead of the shipped one.

"azure-code" and "azure-conv": the embedded Azure LLM inference traces (one hour each) replay
their own timestamps and token counts on `llama2-70b-a100` replicas (16 slots, token-based
service times), with the cold start of the setting; their clairvoyant plan is sized by
simulation on 60 s windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from policies.queueing import smallest_servers
from simulator import traces
from simulator.clairvoyant import sized_counts
from simulator.engine import DEFAULT_EPOCH_S
from simulator.model import PRESETS, ReplicaModel
from simulator.observe import MetricsConfig
from simulator.oracle import WindowOracle
from simulator.profiles import Profile, RateProfile, interpolated
from simulator.result import SloTarget
from simulator.traces import Within

FloatArray = npt.NDArray[np.float64]
DAY_S = 86_400.0
SCENARIOS = ("gpu-llm", "azure-code", "azure-conv")
SHAPES = ("step", "realistic")
STARTUP_TIMES_S = (60.0, 120.0, 300.0)
# Every run starts as a service that was already running would: with the clairvoyant plan's
# largest count of the first 20 minutes ready (the same for every policy). From the first
# window's count, the Azure code trace's first burst (3 minutes in) cost every policy 4 % of
# its requests, more than the SLO's whole budget, whatever it did afterwards.
WARM_START_S = 1200.0
# A baseline's targets (requests per replica, in service + queued) per 8 slots: 3, 3.5, .., 12.
TARGETS_PER_8_SLOTS = tuple(3.0 + 0.5 * i for i in range(19))


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
    shape: str = "step"
    sized: tuple[int, ...] | None = None  # the clairvoyant plan sized by simulation
    series: str = "servegen-14d"
    startup_s: float = 0.0  # the replicas' (fixed) cold start

    @property
    def slots(self) -> int:
        return self.model.slots_per_replica

    @property
    def targets(self) -> tuple[float, ...]:
        """The targets a baseline is swept over: 3..12 per 8 slots in halves, scaled."""
        return tuple(t * self.slots / 8 for t in TARGETS_PER_8_SLOTS)

    def clairvoyant_plan(self) -> npt.NDArray[np.int64]:
        """Replicas per window: the fewest whose Erlang-C wait meets the SLO at that rate
        (read-only; computed once per scenario, as the bounds and run options all use it)."""
        return self._plan

    @cached_property
    def _plan(self) -> npt.NDArray[np.int64]:
        plan = self.window_counts() if self.sized is None else np.array(self.sized, np.int64)
        plan.flags.writeable = False
        return plan

    def window_counts(self, margin: float = 0.0) -> npt.NDArray[np.int64]:
        """Per window, the fewest replicas whose Erlang-C wait meets the SLO at that window's
        rate x (1 + `margin`) (at least `min_replicas`); a plan sized by simulation, x (1 +
        `margin`) rounded up."""
        if self.sized is not None:
            return np.ceil(np.array(self.sized, np.float64) * (1 + margin)).astype(np.int64)
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
            "initial_replicas": self.oracle(ahead_s=0.0).count_within(0.0, WARM_START_S),
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
    *,
    days: float = 1.0,
    startup_s: float = 120.0,
    mean_rps: float = 100.0,
    start_day: int = 0,
    shape: str = "step",
    series: str | None = None,
    plan: Sequence[int] | None = None,
) -> Scenario:
    """`days` of the series (the shipped 14-day one, or a rate-series file `series`) from
    `start_day`, cold start `startup_s`, replayed as `shape`; `plan`: the clairvoyant plan
    sized by simulation (`sized_plan`), else the Erlang-C one."""
    if shape not in SHAPES:
        raise ValueError(f"shape: one of {', '.join(SHAPES)} (got {shape!r})")
    whole = _series(series, renewal=shape == "realistic")
    total_days = whole.duration_s / DAY_S
    if (
        not 0 < days <= total_days + 1e-9
        or not start_day >= 0
        or start_day + days > total_days + 1e-9
    ):
        raise ValueError(
            f"days: the series holds {total_days:g} days (got start_day {start_day}, days {days})"
        )
    if not startup_s >= 0:
        raise ValueError(f"startup_s: must be >= 0 (got {startup_s})")
    steps = _window_cut(whole, start_day * DAY_S, (start_day + days) * DAY_S)
    steps = replace(steps, rate_rps=steps.rate_rps * (mean_rps / whole.mean_rps))
    window_s = 600.0
    edges = np.arange(0.0, steps.duration_s, window_s)
    profile: Profile = steps if shape == "step" else interpolated(steps)
    expected = np.array(
        [profile.expected_requests(a, min(a + window_s, steps.duration_s)) for a in edges]
    )
    model = ReplicaModel.from_spec(
        {
            "slots_per_replica": 8,
            "service": {"kind": "exponential", "mean_s": 2.0},
            "startup": {"fixed_s": float(startup_s)},
        }
    )
    name = "gpu-llm" if series is None else Path(series).name
    return _benchmark(
        f"{name} {shape} {days:g} d, startup {startup_s:g} s", profile, model, window_s,
        expected / np.minimum(window_s, steps.duration_s - edges), 2.0, shape, plan,
        "servegen-14d" if series is None else str(series), startup_s,
    )  # fmt: skip


def _benchmark(
    name: str, profile: Profile, model: ReplicaModel, window_s: float, window_rps: FloatArray,
    service_s: float, shape: str, plan: Sequence[int] | None, series: str, startup_s: float,
) -> Scenario:  # fmt: skip
    """A scenario with what every benchmark here shares: the SLO (wait <= 1 s for 99 %), a
    15 s control interval and scrapes that land 1 s after they are taken (a tick on a scrape
    instant sees the previous one)."""
    return Scenario(
        name=name,
        profile=profile,
        model=model,
        slo=SloTarget(1.0, "wait", 0.99),
        interval_s=15.0,
        metrics=MetricsConfig(scrape_interval_s=15.0, delay_s=1.0),
        window_s=window_s,
        window_rps=window_rps,
        service_s=service_s,
        shape=shape,
        sized=None if plan is None else tuple(int(n) for n in plan),
        series=series,
        startup_s=float(startup_s),
    )


def _series(series: str | None, *, renewal: bool) -> RateProfile:
    """The shipped series or a user's rate-series file; realistic replays need its CV column
    (a file without one is replayed Poisson within, which its rows cannot contradict)."""
    within: Within = "renewal" if renewal else "poisson"
    if series is None:
        return traces.servegen_language_14d(within=within)
    try:
        return traces.read_rate_series(series, within=within)
    except traces.TraceError as error:
        if not renewal or "CV" not in str(error):
            raise
        return traces.read_rate_series(series, within="poisson")


def azure(
    kind: str, *, startup_s: float = 120.0, plan: Sequence[int] | None = None, days: float = 0.0
) -> Scenario:
    """The embedded Azure LLM trace `kind` ("code" or "conv"): its own timestamps and tokens on
    llama2-70b-a100 replicas that start in `startup_s`. `days` is accepted and ignored (the
    trace is one hour)."""
    del days
    if kind not in ("code", "conv"):
        raise ValueError(f"azure: kind is code or conv (got {kind!r})")
    if not startup_s >= 0:
        raise ValueError(f"startup_s: must be >= 0 (got {startup_s})")
    log = traces.azure_code() if kind == "code" else traces.azure_conv()
    window_s = 60.0
    edges = np.arange(0.0, log.duration_s, window_s)
    widths = np.minimum(window_s, log.duration_s - edges)
    expected = np.array(
        [log.expected_requests(a, a + w) for a, w in zip(edges, widths, strict=True)]
    )
    preset = dict(PRESETS["llama2-70b-a100"])
    preset["startup"] = {"fixed_s": float(startup_s)}
    model = ReplicaModel.from_spec(preset)
    service_s = float(
        np.mean(
            model.draw_service_s(log.arrivals(np.random.default_rng(0)), np.random.default_rng(1))
        )
    )
    return _benchmark(
        f"azure-{kind} 1 h, startup {startup_s:g} s", log, model, window_s, expected / widths,
        service_s, "trace", plan, f"azure-{kind}", startup_s,
    )  # fmt: skip


def scenario(name: str, **knobs: Any) -> Scenario:
    if name == "gpu-llm":
        return gpu_llm(**knobs)
    if name in ("azure-code", "azure-conv"):
        knobs.pop("shape", None)
        return azure(name.removeprefix("azure-"), **knobs)
    raise ValueError(f"scenario: unknown {name!r}; known: {', '.join(SCENARIOS)}")


def needs_sized_plan(name: str, shape: str) -> bool:
    """Whether the scenario's arrivals are not Poisson, so its plan is sized by simulation."""
    return name != "gpu-llm" or shape == "realistic"


def sized_plan(name: str, **knobs: Any) -> tuple[int, ...]:
    """The clairvoyant plan of `scenario(name, **knobs)` sized by simulation, one count per
    window (`simulator.clairvoyant`; about 20 s a day of the realistic series)."""
    sc = scenario(name, **knobs)
    counts = sized_counts(sc.profile, sc.model, sc.slo, sc.window_s, minimum=sc.min_replicas)
    return tuple(int(n) for n in counts)
