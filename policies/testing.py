"""`check_policy(factory)`: the conformance suite every policy passes, built-in or plugin.

In: a PolicyFactory (and optionally a spec and observations). Out: None, or an AssertionError
naming the first broken promise. It checks that
- the same inputs give the same outputs (two fresh autoscalers agree record for record);
- the spec round-trips (`autoscaler(a.spec)` behaves like `a`);
- the state round-trips through JSON at every step and continues identically;
- every decision is within min/max (a target the policy leaves alone at zero excepted);
- a required signal going missing never causes a scale-down;
- the policy reads no wall clock (time.time & co. raise while it decides).
Run it from a test: `check_policy(MyFactory())`. The observations form a closed loop: each
tick sees the replica count the previous one chose, with load stories (ramp, spike, idle,
outages of each required signal, a clock that steps by 2 s and by 60 s).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from typing import Any

from policies.autoscaler import Autoscaler, autoscaler
from policies.observation import SIGNALS, Observation
from policies.policy import PolicyFactory
from policies.protocol import DecisionRecord

_CLOCKS = ("time.time", "time.time_ns", "time.monotonic", "time.monotonic_ns", "time.perf_counter")
START_S = 1_700_000_000.0  # a fixed epoch: 2023-11-14T22:13:20Z


def _load(step: int) -> float:
    """A load story in arbitrary units: ramp up, spike, plateau, fall to idle, come back."""
    phases: list[tuple[int, Callable[[int], float]]] = [
        (40, lambda i: 2 + i * 1.5),
        (10, lambda i: 200.0),
        (40, lambda i: 60.0),
        (40, lambda i: max(0.0, 60 - i * 3)),
        (30, lambda i: 0.0),
        (20, lambda i: 25.0 + 10 * math.sin(i)),
    ]
    for length, shape in phases:
        if step < length:
            return float(shape(step))
        step -= length
    return 10.0


def _signals(load: float, ready: int) -> dict[str, float]:
    per_replica = load / max(ready, 1)
    return {
        "request_rate_rps": load * 2.0,
        "in_flight": load,
        "queue_depth": max(0.0, load - 8.0 * ready),
        "latency_p50_s": 0.2 + 0.05 * per_replica,
        "latency_p95_s": 0.5 + 0.1 * per_replica,
        "latency_p99_s": 0.8 + 0.15 * per_replica,
        "error_rate": min(1.0, 0.001 * per_replica),
        "gpu_utilization": min(1.0, per_replica / 10.0),
    }


def story(
    required: Sequence[str], steps: int = 200, start_s: float = START_S
) -> Iterator[tuple[float, float, set[str]]]:
    """(now_s, load, signals missing at this step) for a closed-loop run."""
    now = start_s
    for i in range(steps):
        missing: set[str] = set()
        for k, name in enumerate(sorted(required)):
            if 95 + 12 * k <= i < 100 + 12 * k:  # an outage of each required signal
                missing.add(name)
        yield now, _load(i), missing
        now += 2.0 if i % 7 == 0 else (60.0 if i % 23 == 0 else 15.0)


def _observation(now: float, replicas: int, load: float, missing: set[str]) -> Observation:
    values: dict[str, Any] = {
        name: (None if name in missing else value)
        for name, value in _signals(load, replicas).items()
    }
    extra = {"kv_cache_usage": min(1.0, load / 100.0)}
    if "extra.kv_cache_usage" in missing:
        extra = {}
    return Observation(
        now_s=now,
        replicas=replicas,
        ready_replicas=replicas,
        starting_replicas=0,
        extra=extra,
        **values,
    )


def run_closed_loop(a: Autoscaler, *, steps: int = 200, replicas: int = 2) -> list[DecisionRecord]:
    records = []
    for now, load, missing in story(sorted(a.policy.required_signals), steps):
        record = a.step(_observation(now, replicas, load, missing))
        records.append(record)
        replicas = record.replicas
    return records


def _no_wall_clock(watched: set[str]) -> ExitStack:
    """Clocks raise when called from a watched module; any other caller (an event loop in a
    background thread, a logging handler) gets the real clock."""
    # unittest.mock imports asyncio; load it only when a check runs, not with the package.
    import sys  # noqa: PLC0415
    from unittest import mock  # noqa: PLC0415

    stack = ExitStack()
    for target in _CLOCKS:
        module_name, _, attr = target.partition(".")
        real = getattr(sys.modules[module_name], attr)

        def guarded(*args: Any, _target: str = target, _real: Any = real) -> Any:
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if caller in watched:
                raise AssertionError(f"{caller} read the wall clock ({_target}); use obs.now_s")
            return _real(*args)

        stack.enter_context(mock.patch(target, guarded))
    return stack


def _policy_modules(factory: PolicyFactory, spec: Mapping[str, Any]) -> set[str]:
    """The modules whose code decides: the factory's, its policy's and every policies.* one."""
    import sys  # noqa: PLC0415

    names = {type(factory).__module__, type(autoscaler(spec).policy).__module__}
    names.update(n for n in sys.modules if n == "policies" or n.startswith("policies."))
    return {n for n in names if n}


def check_policy(
    factory: PolicyFactory,
    spec: Mapping[str, Any] | None = None,
    *,
    steps: int = 200,
) -> None:
    """Raise AssertionError unless `factory` keeps every promise of the policy contract."""
    for attr in ("name", "summary", "guard_defaults", "example_spec", "from_spec"):
        assert hasattr(factory, attr), f"factory lacks {attr!r} (see policies.policy.PolicyFactory)"
    policy_keys = dict(factory.example_spec if spec is None else spec)
    full: dict[str, Any] = {"policy": factory, "max_replicas": 30, **policy_keys}
    if "min_replicas" not in full and not factory.guard_defaults.get("min_replicas"):
        full["min_replicas"] = 0

    with _no_wall_clock(_policy_modules(factory, full)):
        first = autoscaler(full)
        required = first.policy.required_signals
        assert required <= set(SIGNALS) | {s for s in required if s.startswith("extra.")}, (
            f"required_signals must be signal names, got {sorted(required)}"
        )
        records = run_closed_loop(first, steps=steps)
        again = run_closed_loop(autoscaler(full), steps=steps)
        _same(records, again, "two fresh autoscalers with the same spec disagree")

        plain = {k: v for k, v in first.spec.items() if k != "policy"}
        rebuilt = autoscaler({"policy": factory, **json.loads(json.dumps(plain))})
        _same(records, run_closed_loop(rebuilt, steps=steps), "spec does not round-trip")
        assert rebuilt.spec == first.spec, "spec() changes on a round trip"

        _check_state_round_trip(full, steps)
        _check_bounds(first, records)
        _check_missing(records, required)


def _same(a: list[DecisionRecord], b: list[DecisionRecord], what: str) -> None:
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if x.to_dict() != y.to_dict():
            raise AssertionError(f"{what} at step {i}: {x.to_dict()} != {y.to_dict()}")


def _check_state_round_trip(full: Mapping[str, Any], steps: int) -> None:
    straight = autoscaler(full)
    resumed = autoscaler(full)
    replicas_a = replicas_b = 2
    for i, (now, load, missing) in enumerate(
        story(sorted(straight.policy.required_signals), steps)
    ):
        ra = straight.step(_observation(now, replicas_a, load, missing))
        saved = json.loads(json.dumps(resumed.state))
        resumed = autoscaler(full, state=saved)
        rb = resumed.step(_observation(now, replicas_b, load, missing))
        if ra.to_dict() != rb.to_dict():
            raise AssertionError(f"state does not round-trip through JSON (step {i})")
        json.dumps(ra.to_dict())  # the record itself must be JSON-serializable
        replicas_a, replicas_b = ra.replicas, rb.replicas


def _check_bounds(a: Autoscaler, records: list[DecisionRecord]) -> None:
    lo, hi = a.guards.min_replicas, a.guards.max_replicas
    for r in records:
        paused = r.current_replicas == 0 and a.policy.pauses_at_zero
        assert paused or lo <= r.replicas <= hi, (
            f"replicas {r.replicas} outside [{lo}, {hi}] at now_s {r.now_s}: {r.reason}"
        )


def _check_missing(records: list[DecisionRecord], required: frozenset[str]) -> None:
    for r in records:
        gone = [
            s
            for s in required
            if r.inputs.get(s, r.inputs["extra"].get(s.removeprefix("extra."))) is None
        ]
        if gone and r.current_replicas <= r.replicas:
            continue
        if gone:
            raise AssertionError(
                f"scaled down {r.current_replicas} -> {r.replicas} with {gone} missing"
            )
