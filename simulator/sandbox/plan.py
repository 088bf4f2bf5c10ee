"""What one sandbox run is: the profile, the replica model, the policy, and the compression.

In: the command line's choices (`SandboxOptions`). Out: a `SandboxPlan` -- everything in
*profile* seconds (what the simulator replays and the report shows) and, beside it, the same
run compressed m times for wall-clock execution: the policy spec with every duration divided
by m and every rate multiplied by it (`compress_spec`), the controller's config and
Prometheus's, both as dicts ready to be written as YAML.

Time compression m divides every duration: the profile's time (the load generator replays it m
times faster), the replicas' cold start and service times (the emulator's `--time-scale`),
the control interval, the policy's windows and delays (keys ending `_s` or `Seconds`), the
scrape interval and the rate window. Counts (replicas, queue depth, requests in flight) are
unchanged, so a compressed run needs the same replicas as the uncompressed one; rates in the
policy (keys ending `_rps`, and targets of a policy on `rps`) are multiplied by m. A duration
the policy keeps in whole seconds (HPA's periodSeconds, Knative's stable window) must stay
whole: a compression that does not divide it is refused, naming the key.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from policies import autoscaler
from simulator import traces
from simulator.cli.args import UsageError
from simulator.cli.specs import default_spec, is_policy_name
from simulator.explain import load_spec
from simulator.model import PRESETS, ReplicaModel
from simulator.profiles import Profile
from simulator.result import SloTarget

# Named profiles: an embedded Azure trace and its default slice (profile seconds), with the
# replicas ready when the load starts (the service was running before the slice).
PROFILES: Mapping[str, tuple[str, tuple[float, float], int]] = {
    # minutes 20-25 of the conversation trace: the rate climbs from ~5.8 to ~7 req/s
    "azure-conv": ("conv", (1200.0, 1500.0), 3),
    # minutes 13-18 of the code trace: quiet, a burst of ~10 req/s, quiet again
    "azure-code": ("code", (780.0, 1080.0), 1),
}
MODEL = "llama2-70b-a100"  # 16 slots, token-based service times (the traces carry tokens)
POLICIES = ("hpa", "knative", "slo")
# Knative's autoscaler decides every 2 s (its tickInterval); HPA and the rest every 15 s.
INTERVALS_S: Mapping[str, float] = {"knative": 2.0}
DEFAULT_INTERVAL_S = 15.0
# Where controller_config's queries come from: the replicas' own gauge for in_flight, the
# router (which holds the one queue) for the rest.
SIGNAL_JOBS: Mapping[str, str] = {"in_flight": "replicas"}
RATE_WINDOW_S = 60.0  # rate() and histogram windows, as the vllm preset's [1m]
SLO = SloTarget(1.0, "wait", 0.99)  # the demo's: queueing wait <= 1 s for 99 % of requests


@dataclass(frozen=True)
class SandboxOptions:
    """The command line's choices; times in profile seconds."""

    profile: str = "azure-conv"
    slice_s: tuple[float, float] | None = None  # default: the profile's own
    policy: str = "hpa"
    rate_scale: float = 1.0
    time_compression: float = 5.0
    seed: int = 1
    startup_s: float = 60.0  # the replicas' cold start, profile seconds
    tail_s: float | None = None  # quiet after the load; default: long enough to scale down
    initial_replicas: int | None = None  # default: the profile's
    max_replicas: int = 10
    interval_s: float | None = None  # default: the policy's (Knative 2 s, else 15 s)
    python: str = sys.executable


@dataclass(frozen=True)
class SandboxPlan:
    options: SandboxOptions
    profile: Profile  # the slice, rate-scaled, then the quiet tail: profile seconds
    load_s: float  # the part with load (the rest is the tail)
    model_spec: dict[str, Any]  # the replica model (profile seconds)
    spec: dict[str, Any]  # the policy, normalized, profile units
    compressed: dict[str, Any]  # the policy as the controller runs it (wall units)
    interval_s: float
    scrape_interval_s: float
    initial_replicas: int
    notes: list[str] = field(default_factory=list)

    @property
    def m(self) -> float:
        return self.options.time_compression

    @property
    def max_replicas(self) -> int:
        """The policy's cap: the most replica processes (and ports) the run can have."""
        return int(self.spec.get("max_replicas", self.options.max_replicas))

    @property
    def duration_s(self) -> float:
        return self.profile.duration_s

    @property
    def wall_s(self) -> float:
        return self.duration_s / self.m

    def model(self) -> ReplicaModel:
        return ReplicaModel.from_spec(self.model_spec)

    @property
    def signal_jobs(self) -> frozenset[str]:
        """The Prometheus jobs the policy's signals come from (SIGNAL_JOBS)."""
        signals = autoscaler(self.spec).policy.required_signals
        return frozenset(SIGNAL_JOBS.get(s, "router") for s in signals) or frozenset({"router"})


def _check(options: SandboxOptions) -> None:
    o = options
    if o.profile not in PROFILES:
        raise UsageError(f"--profile {o.profile}: known profiles are {', '.join(PROFILES)}")
    checks = (
        ("--rate-scale", o.rate_scale, 0 < o.rate_scale <= 100),
        ("--time-compression", o.time_compression, 1 <= o.time_compression <= 60),
        ("--startup-s", o.startup_s, 0 <= o.startup_s <= 3600),
        ("--max-replicas", o.max_replicas, 1 <= o.max_replicas <= 40),
    )
    for flag, value, ok in checks:
        if not (isinstance(value, int | float) and math.isfinite(value) and ok):
            raise UsageError(f"{flag} {value}: out of range (see replicast sandbox --help)")
    if o.tail_s is not None and not 0 <= o.tail_s <= 7200:
        raise UsageError(f"--tail {o.tail_s:g}: give 0 to 7200 seconds of quiet after the load")
    if o.initial_replicas is not None and not 1 <= o.initial_replicas <= o.max_replicas:
        raise UsageError(
            f"--initial-replicas {o.initial_replicas}: must be 1..--max-replicas ({o.max_replicas})"
        )
    if o.interval_s is not None and not 1 <= o.interval_s <= 300:
        raise UsageError(f"--interval {o.interval_s:g}: give 1 to 300 seconds")


def _profile(options: SandboxOptions) -> tuple[Profile, float]:
    kind, default_slice, _ = PROFILES[options.profile]
    log = traces.azure_code() if kind == "code" else traces.azure_conv()
    start_s, end_s = options.slice_s or default_slice
    if not 0 <= start_s < end_s <= log.duration_s:
        raise UsageError(
            f"--slice {start_s:g}:{end_s:g}: the {options.profile} trace has "
            f"0:{log.duration_s:.0f} seconds"
        )
    if end_s - start_s > 1800:
        raise UsageError(f"--slice {start_s:g}:{end_s:g}: at most 1800 s of load in a sandbox")
    profile = log.slice(start_s, end_s)
    if options.rate_scale != 1.0:
        profile = profile.rate_scale(options.rate_scale)
    return profile, end_s - start_s


def _policy_spec(options: SandboxOptions, model: ReplicaModel) -> dict[str, Any]:
    text = options.policy
    if is_policy_name(text):
        spec = default_spec(text, model, SLO, options.max_replicas)
    else:
        specs = load_spec(text)
        if len(specs) != 1:
            raise UsageError(f"--policy {text}: give one policy spec (got {len(specs)})")
        spec = specs[0]
    try:
        return autoscaler(spec).spec  # normalized: every default written out, so compressible
    except ValueError as error:
        raise UsageError(f"--policy {text}: {str(error).splitlines()[0]}") from None


# The keys that hold a scale-down back: HPA's stabilization, Knative's windows and delay, the
# slo policy's delay and rate window, KEDA's cooldown.
HOLD_KEYS = frozenset(
    {"stabilizationWindowSeconds", "stable_window_s", "scale_down_delay_s", "window_s",
     "cooldown_s", "scale_to_zero_grace_period_s"}
)  # fmt: skip


def _tail_s(spec: Mapping[str, Any], interval_s: float) -> float:
    """Quiet long enough to see the scale-down: the longest hold in the spec (HOLD_KEYS),
    plus two minutes for the queue to drain and a few ticks, rounded up to 30 s."""
    longest = max((v for k, v in _durations(spec) if k in HOLD_KEYS), default=0.0)
    return float(math.ceil((longest + 120.0 + 4 * interval_s) / 30.0) * 30.0)


def _durations(spec: Any, key: str = "") -> list[tuple[str, float]]:
    if isinstance(spec, Mapping):
        return [d for k, v in spec.items() for d in _durations(v, str(k))]
    if isinstance(spec, list):
        return [d for v in spec for d in _durations(v, key)]
    if _is_duration(key) and isinstance(spec, int | float) and not isinstance(spec, bool):
        return [(key, float(spec))]
    return []


def _is_duration(key: str) -> bool:
    return key.endswith(("_s", "Seconds"))


def _is_rate_target(spec: Mapping[str, Any]) -> bool:
    return spec.get("metric") in ("rps", "request_rate_rps") or spec.get("signal") in (
        "rps",
        "request_rate_rps",
    )


def compress_spec(spec: Any, m: float, path: str = "") -> Any:
    """`spec` with every duration divided by m and every rate multiplied by it (module
    docstring); UsageError when a whole-seconds duration would not stay whole."""
    if isinstance(spec, Mapping):
        rate_target = _is_rate_target(spec)
        out = {}
        for key, value in spec.items():
            where = f"{path}.{key}" if path else str(key)
            rate = rate_target and key in ("target_per_replica", "threshold", "target")
            if rate or (key.endswith("_rps") and isinstance(value, int | float)):
                out[key] = value * m
            elif _is_duration(str(key)) and isinstance(value, int | float) and value is not True:
                out[key] = _divided(where, value, m)
            else:
                out[key] = compress_spec(value, m, where)
        return out
    if isinstance(spec, list):
        return [compress_spec(v, m, f"{path}[{i}]") for i, v in enumerate(spec)]
    return spec


def _divided(where: str, value: float, m: float) -> float:
    if isinstance(value, float) or value == 0:
        return value / m
    whole = value / m
    if abs(whole - round(whole)) > 1e-9:
        fits = [d for d in range(2, 31) if value % d == 0]
        raise UsageError(
            f"--time-compression {m:g}: the policy's {where} ({value} s) is kept in whole "
            f"seconds and {value} / {m:g} is not whole; use a compression that divides it "
            f"(e.g. {', '.join(map(str, fits[:6])) or 1})"
        )
    return round(whole)


def make_plan(options: SandboxOptions) -> SandboxPlan:
    _check(options)
    model_spec = {**PRESETS[MODEL], "startup": {"fixed_s": float(options.startup_s)}}
    model = ReplicaModel.from_spec(model_spec)
    profile, load_s = _profile(options)
    spec = _policy_spec(options, model)
    name = str(spec["policy"])
    interval_s = options.interval_s or INTERVALS_S.get(name, DEFAULT_INTERVAL_S)
    m = options.time_compression
    compressed = compress_spec(spec, m)
    tail_s = options.tail_s if options.tail_s is not None else _tail_s(spec, interval_s)
    initial = options.initial_replicas or PROFILES[options.profile][2]
    initial = min(initial, int(spec.get("max_replicas", options.max_replicas)))
    notes = []
    if name == "knative":
        notes.append(
            "knative keeps its windows in 1 s buckets (Knative's BucketSize), which do not "
            f"compress: at m = {m:g} a bucket holds {m:g} s of profile time"
        )
    return SandboxPlan(
        options=options,
        profile=profile.pad(tail_s),
        load_s=load_s,
        model_spec=model_spec,
        spec=spec,
        compressed=compressed,
        interval_s=interval_s,
        scrape_interval_s=min(interval_s, 15.0),
        initial_replicas=initial,
        notes=notes,
    )


# --- the configs written for the processes ---------------------------------------------------


def _promql_window(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


def controller_config(
    plan: SandboxPlan,
    *,
    prometheus_url: str,
    base_port: int,
    backends_file: str,
    model_file: str,
    warm_file: str,
) -> dict[str, Any]:
    """The `replicast run` config: one local target whose replicas are emulator processes."""
    m = plan.m
    window = _promql_window(RATE_WINDOW_S / m)
    latency = "replicast_router_request_duration_seconds_bucket"
    queries = {
        "in_flight": "sum(vllm:num_requests_running) or vector(0)",
        # the router holds the queue (one FCFS queue, as the simulator); replicas' own is empty
        "queue_depth": "sum(replicast_router_queue_depth)",
        "request_rate_rps": f"sum(rate(replicast_router_requests_total[{window}]))",
        **{
            f"latency_p{q}_s": f"histogram_quantile(0.{q}, sum by (le) (rate({latency}[{window}])))"
            for q in ("50", "95", "99")
        },
    }
    command = [
        plan.options.python, "-m", "simulator.emulator", "--port", "{port}",
        "--model", model_file, "--model-name", "{name}", "--time-scale", f"{m:g}",
        "--seed", "{index}", "--drain-s", "30",
        # the initial replicas start while this file exists: warm, as the simulator's are
        "--warm-if-exists", warm_file,
    ]  # fmt: skip
    interval = plan.interval_s / m
    return {
        "apiVersion": "replicast/v1",
        "prometheus": {"url": prometheus_url, "timeout_s": max(1.0, min(5.0, 2 * interval))},
        "defaults": {"interval_s": interval, "staleness_s": max(interval, RATE_WINDOW_S / m)},
        "targets": [
            {
                "name": "sandbox",
                "scale_target": {
                    "kind": "local",
                    "command": command,
                    "base_port": base_port,
                    "replicas": plan.initial_replicas,
                    "registrar": {"type": "file", "path": backends_file},
                },
                "signals": {"group_by": [], "queries": queries},
                "policy": plan.compressed,
            }
        ],
    }


def prometheus_config(
    plan: SandboxPlan, *, replica_ports: list[int], router_port: int, controller_port: int
) -> dict[str, Any]:
    scrape = _promql_window(plan.scrape_interval_s / plan.m)
    timeout = _promql_window(min(plan.scrape_interval_s / plan.m, 10.0))

    def job(name: str, ports: list[int]) -> dict[str, Any]:
        return {
            "job_name": name,
            "static_configs": [{"targets": [f"127.0.0.1:{p}" for p in ports]}],
        }

    return {
        "global": {
            "scrape_interval": scrape,
            "scrape_timeout": timeout,
            "evaluation_interval": scrape,
        },
        "scrape_configs": [
            job("replicas", replica_ports),  # every port a replica may take: absent ones are down
            job("router", [router_port]),
            job("controller", [controller_port]),
        ],
    }
