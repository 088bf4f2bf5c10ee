"""Any mapping given to `policies.autoscaler` builds an Autoscaler or fails with one line.

Hypothesis starts from full specs of every built-in (every key each accepts, nested ones and
the guard keys included) and changes a few values anywhere in them to JSON of any type: NaN,
+/-inf, 1e300, huge and negative whole numbers, empty strings, nested lists and mappings,
unknown keys (replicast issue 14). The promises:
- `autoscaler(spec)` returns, or raises `SpecError` whose text is one line naming the key;
  never another exception, never more than a second;
- a spec that builds ticks on observations with finite (huge and subnormal included), NaN,
  infinite and missing signals and clock steps without raising or stalling, and its spec and
  state rebuild it;
- every number a spec takes has a finite range in its model's JSON schema, and the shared
  bounds are the ones policies/spec.py documents.
Each bug found is pinned with `@example`, with what broke. The "spec-properties" profile keeps
the suite fast (50 examples); SPEC_PROPERTIES_EXAMPLES=5000 searches further.
"""

from __future__ import annotations

import functools
import importlib
import json
import math
import os
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import policies
from policies import Observation, SpecError, autoscaler
from policies import spec as spec_module
from policies.planner import Rises, learn_rise
from policies.predictive import Forecaster, PredictiveParams, forecast_max
from policies.queueing import smallest_servers, wait_quantile
from policies.registry import BUILTIN_MODULES, builtins
from policies.spec import MAX_FACTOR, MAX_REPLICAS, MAX_SEASON_S, StrictModel
from policies.testing import START_S

settings.register_profile(
    "spec-properties",
    max_examples=int(os.environ.get("SPEC_PROPERTIES_EXAMPLES", "50")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = settings.get_profile("spec-properties")
LIMIT_S = 1.0  # the most one build or one tick may take

# --- the specs hypothesis starts from ---------------------------------------------------------

GUARDS: dict[str, Any] = {
    "min_replicas": 1,
    "max_replicas": 20,
    "behavior": {"scaleUp": {"tolerance": 0.1}, "scaleDown": {"tolerance": "50m"}},
    "starting_capacity": True,
    "flap_budget": {"max_changes": 4, "window_s": 600},
}
# Keys the examples leave unset (optional ones), so that hypothesis can reach them too.
VARIANTS: list[dict[str, Any]] = [
    {
        "policy": "hpa",
        "metrics": [
            {"signal": "in_flight", "type": "Pods", "target_per_replica": 10},
            {"signal": "request_rate_rps", "type": "External", "target_value": 100},
            {"signal": "extra.kv_cache_usage", "type": "Object", "target_per_replica": 0.8},
        ],
    },
    {
        "policy": "keda",
        "triggers": [
            {"signal": "queue_depth", "threshold": 5, "activation_threshold": 1},
            {"signal": "request_rate_rps", "threshold": 50, "metric_type": "Value"},
        ],
        "fallback": {"failure_threshold": 2, "replicas": 3},
    },
    {"policy": "knative", "metric": "rps", "signals": ["request_rate_rps"]},
    {"policy": "knative", "aggregation": "weighted-exponential", "activation_scale": 2},
    {"policy": "ray", "downscale_to_zero_delay_s": 60, "signals": ["in_flight"]},
    {
        "policy": "slo",
        "wait_target_s": 0.5,
        "service_time_s": 0.4,
        "service_cv": 1.5,
        "slots_per_replica": 4,
    },
    {
        "policy": "predictive",
        "latency_target_s": 2.0,
        "lead_time_s": 90,
        "bucket_s": 60,
        "season_s": 600,
        "reactive": False,
    },
    {"policy": "planner", "wait_target_s": 1.0, "margin": 0.2, "lead_time_s": 60},
    {"policy": "pid", "signal": "in_flight", "target": 8, "per_replica": True, "kd": 2.0},
    {
        "policy": "max_of",
        "policies": [
            {"policy": "slo", "latency_target_s": 2.0, "service_time_s": 0.5},
            {"policy": "pid", "signal": "latency_p95_s", "target": 1.0},
            {"policy": "schedule", "default": {"min_replicas": 1, "max_replicas": 15}},
        ],
    },
    {
        "policy": "floor",
        "base": {"policy": "planner", "wait_target_s": 1.0, "bucket_s": 60, "season_s": 600},
        "floor": {"policy": "predictive", "wait_target_s": 1.0, "reactive": False},
    },
]


def full_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The normalized spec (every key with its value), guard keys included."""
    built = autoscaler({**GUARDS, **spec})
    out = json.loads(json.dumps(built.spec))
    out["behavior"]["scaleUp"]["tolerance"] = 0.1
    return out


def base_specs() -> list[dict[str, Any]]:
    examples = [{"policy": name, **f.example_spec} for name, f in builtins().items()]
    return [full_spec(spec) for spec in [*examples, *VARIANTS]]


BASES = base_specs()
NAMES = sorted(builtins())

# --- values of every JSON type ------------------------------------------------------------------

# No ':' anywhere: a policy name with one is imported as "module:attr".
TEXT = st.text(st.characters(blacklist_characters=":", codec="utf-8"), max_size=12)
SPECIAL_FLOATS = [
    math.nan, math.inf, -math.inf, 1e300, -1e300, 1.7976931348623157e308, 5e-324, -0.0, -1.5,
]  # fmt: skip
HUGE_INTS = [10**300, -(10**300), 2**63, 2**31, -1, 0, 10_001, 86_401, 604_801]
SPECIAL_STRINGS = [
    "", " ", "nan", "inf", "-1e400", "1e400", "100m", "1Ki", "a\nb", "America", "a" * 300,
]  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(HUGE_INTS),
    st.floats(),
    st.sampled_from(SPECIAL_FLOATS),
    TEXT,
    st.sampled_from(SPECIAL_STRINGS),
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)
POLICY_VALUES = st.sampled_from([*NAMES, "nope", ""]) | SCALARS.filter(
    lambda v: not isinstance(v, str)
)


@st.composite
def changed(draw: st.DrawFn, value: Any, depth: int = 0, key: str = "") -> Any:
    """`value` with one thing changed somewhere inside it (at the top: always inside)."""
    if key == "policy":
        return draw(POLICY_VALUES)
    inside = depth == 0 or (depth < 5 and draw(st.booleans()))
    if isinstance(value, dict) and value and inside:
        how = draw(st.sampled_from(["child", "child", "child", "drop", "unknown"]))
        name = draw(st.sampled_from(sorted(value)))
        if how == "drop":
            return {k: v for k, v in value.items() if k != name}
        if how == "unknown":
            return {**value, draw(TEXT | st.sampled_from(["a\nb", "x.y", " "])): draw(JSON_VALUES)}
        return {**value, name: draw(changed(value[name], depth + 1, name))}
    if isinstance(value, list) and value and inside:
        i = draw(st.integers(0, len(value) - 1))
        how = draw(st.sampled_from(["child", "child", "drop", "repeat"]))
        if how == "drop":
            return value[:i] + value[i + 1 :]
        if how == "repeat":
            return [*value, value[i]]
        return [*value[:i], draw(changed(value[i], depth + 1)), *value[i + 1 :]]
    return draw(_like(value) | JSON_VALUES)


def _like(value: Any) -> st.SearchStrategy[Any]:
    """Odd values of the same JSON type as `value` (a string for a string, ...)."""
    if isinstance(value, str):
        return st.sampled_from(SPECIAL_STRINGS) | TEXT
    if isinstance(value, int | float) and not isinstance(value, bool):
        return st.sampled_from([*SPECIAL_FLOATS, *HUGE_INTS]) | st.floats() | st.integers()
    return JSON_VALUES


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    spec = draw(st.sampled_from(BASES))
    for _ in range(draw(st.integers(1, 3))):
        spec = draw(changed(spec))
    return spec


# A few numbers changed, to anything within or near their ranges: specs that mostly build,
# for the ticking property.
NUMBERS = st.one_of(
    st.integers(0, 12_000),
    st.floats(0, 1e6),
    st.sampled_from([0, 1, 5e-324, 1e-300, 1e-9, 0.5, 0.9999, 86_400, 604_800, 10_000, 1e15]),
)


def numeric_paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from numeric_paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from numeric_paths(v, (*path, i))
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield path


def with_value(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: with_value(value[head], rest, new)}
    return [with_value(v, rest, new) if i == head else v for i, v in enumerate(value)]


@st.composite
def numbers_changed(draw: st.DrawFn, spec: dict[str, Any]) -> dict[str, Any]:
    paths = list(numeric_paths(spec))
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(paths))
        old = functools.reduce(lambda v, k: v[k], path, spec)
        scaled = st.sampled_from([0, 1e-6, 0.5, 2, 100, 1e6]).map(lambda x, old=old: old * x)
        spec = with_value(spec, path, draw(NUMBERS | scaled))
    return spec


SIGNAL_VALUES = st.one_of(
    st.none(),
    st.floats(),
    st.floats(0, 1e4),
    st.sampled_from([0.0, 5e-324, 1e-300, 1e15, 1e300, 1.7976931348623157e308, math.nan, -1.0]),
)


@st.composite
def observations(draw: st.DrawFn) -> list[Observation]:
    now = draw(st.sampled_from([0.0, START_S, -1e10, 1e10, 1e12, 1e15]))
    out = []
    for _ in range(draw(st.integers(1, 6))):
        now += draw(st.sampled_from([0.0, 1.0, 2.0, 15.0, 60.0, 3_600.0, 8 * 86_400.0, -30.0]))
        replicas = draw(st.integers(0, 30) | st.sampled_from([0, 1, 10_000, 10**6]))
        signals = {name: draw(SIGNAL_VALUES) for name in policies.SIGNALS}
        extra = {"kv_cache_usage": draw(SIGNAL_VALUES)}
        out.append(
            Observation(
                now_s=now,
                replicas=replicas,
                ready_replicas=draw(st.integers(0, replicas + 2)),
                starting_replicas=draw(st.integers(0, 5)),
                extra={k: v for k, v in extra.items() if v is not None},
                **signals,
            )
        )
    return out


# --- the properties -----------------------------------------------------------------------------


def _models(root: type[BaseModel]) -> Iterator[type[BaseModel]]:
    for sub in root.__subclasses__():
        yield sub
        yield from _models(sub)


FIELD_NAMES = {"policy"} | {name for model in _models(StrictModel) for name in model.model_fields}


def built_or_refused(spec: Any) -> policies.Autoscaler | None:
    """The autoscaler, or None after checking that the SpecError keeps its promises."""
    start = time.perf_counter()
    try:
        return autoscaler(spec)
    except SpecError as error:
        text = str(error)
        assert "\n" not in text, text
        assert error.problems, text
        for path, message in error.problems:  # a problem without a path names keys in words
            words = set(message.replace(",", " ").replace("(", " ").split())
            assert path or words & FIELD_NAMES, f"names no key: {text}"
        return None
    finally:
        assert time.perf_counter() - start < LIMIT_S, f"slow to build: {spec!r}"


HPA = {"policy": "hpa", "metric": "in_flight", "target_per_replica": 10, "max_replicas": 20}


@PROFILE
@given(spec=specs())
# An unknown key with a newline in it put the newline into the message (now quoted: ['\n']).
@example(spec={**HPA, "\n": None})
# ZoneInfo raised IsADirectoryError for "America" and OSError for a 300-letter name.
@example(spec={"policy": "schedule", "time_zone": "America", "max_replicas": 3})
@example(spec={"policy": "schedule", "time_zone": "a" * 300, "max_replicas": 3})
def test_any_spec_builds_or_fails_with_one_line_naming_the_key(spec: Any) -> None:
    built_or_refused(spec)


def tick_through(a: policies.Autoscaler, observations: list[Observation]) -> None:
    for i, obs in enumerate(observations):
        start = time.perf_counter()
        record = a.tick(obs)
        a.commit("failed" if i % 3 == 2 else "applied")
        json.dumps(record.to_dict())
        assert time.perf_counter() - start < LIMIT_S, f"slow tick: {obs!r}"


def at(t: float, replicas: int = 1, **signals: Any) -> Observation:
    signals.setdefault("ready_replicas", replicas)
    return Observation(now_s=START_S + t, replicas=replicas, **signals)


SLO = {"policy": "slo", "latency_target_s": 2.0, "max_replicas": 20}
PID = {"policy": "pid", "signal": "in_flight", "target": 1.0, "max_replicas": 20}
KNATIVE = {"policy": "knative", "target_per_replica": 10, "max_replicas": 20}
PREDICTIVE = {**SLO, "policy": "predictive", "bucket_s": 60, "season_s": 600}
DAY_S = 86_400.0


@PROFILE
@given(spec=st.sampled_from(BASES).flatmap(numbers_changed), obs=observations())
# HPA's milli(): ceil(inf) for 1.8e305 in flight (signals above 1e15 now read as missing).
@example(spec=HPA, obs=[at(0, in_flight=1.797693134862316e305)])
# Knative: fsum overflowed on 1e300 + 1.8e308, the window average on 1.8e302 queued.
@example(spec=KNATIVE, obs=[at(0, in_flight=1e300, queue_depth=1.797693124862316e308)])
@example(spec=KNATIVE, obs=[at(0, in_flight=0.0, queue_depth=1.797693134862316e302)])
# slo/predictive: 5e-324 in flight over 2 req/s is a service time of 0: a division by zero.
@example(spec=PREDICTIVE, obs=[at(0, request_rate_rps=2.0, in_flight=5e-324, queue_depth=1.0)])
# slo: p50 1e-300 s with p95 1 s overflowed exp() learning the service variability.
@example(spec=SLO, obs=[at(0, queue_depth=0.0, latency_p50_s=1e-300, latency_p95_s=1.0)])
# slo: a subnormal p50 eight days later blended the service time down to 0.
@example(
    spec=SLO,
    obs=[
        at(0, request_rate_rps=1.0, in_flight=1.0),
        at(8 * DAY_S, latency_p50_s=5e-324),
        at(8 * DAY_S, request_rate_rps=0.0, queue_depth=1.0),
    ],
)
# slo: the Erlang-C search for 1e15 req/s counted servers up from 1 (it never returned).
@example(spec=SLO, obs=[at(0, request_rate_rps=1e15, in_flight=1e15, queue_depth=0.0)])
# schedule: datetime has no year 33658 (now_s 1e12).
@example(spec={"policy": "schedule", "max_replicas": 5}, obs=[Observation(1e12, 1, 1)])
# pid at 0 replicas below target: the level tracked down to 0, and log(0) raised.
@example(
    spec={**PID, "min_replicas": 1, "signal": "latency_p95_s"},
    obs=[at(0, 0, latency_p95_s=0.0), at(0, 0), at(0, 0, latency_p95_s=0.0)],
)
# pid with a target of 1e-300: an infinite D term, ceil(-inf) (and inf - inf = NaN).
@example(
    spec={**PID, "target": 1e-300, "kp": 100, "kd": 86_400},
    obs=[at(0, in_flight=1.0), at(1, in_flight=1e15), at(2, in_flight=0.0)],
)
# ray with a target of 1e-300: an infinite error ratio, ceil(inf).
@example(
    spec={"policy": "ray", "target_per_replica": 1e-300, "max_replicas": 5},
    obs=[at(0, in_flight=1e15, queue_depth=0.0)],
)
# hpa with a target of 1e-12: 0 milli-units, a division by zero (now 1m, as Kubernetes).
@example(spec={**HPA, "target_per_replica": 1e-12}, obs=[at(0, in_flight=3.0)])
def test_a_spec_that_builds_ticks_on_any_observations_and_rebuilds(
    spec: dict[str, Any], obs: list[Observation]
) -> None:
    a = built_or_refused(spec)
    if a is None:
        return
    tick_through(a, obs)
    again = autoscaler(a.spec, state=json.loads(json.dumps(a.state)))
    assert again.spec == a.spec


# --- loops and allocations that follow a parameter return at once -----------------------------


def test_the_erlang_c_search_returns_at_once_under_overload() -> None:
    # 1e15 req/s of 1 s requests need 1e15 servers to be stable: more than the limit allows
    start = time.perf_counter()
    assert smallest_servers(1e15, 1.0, 0.99, 0.5, limit=10_000) == (10_000, math.inf)
    assert smallest_servers(math.inf, 1.0, 0.99, 0.5, step=8, limit=100) == (96, math.inf)
    # just under the limit: the search starts from Erlang-B's series, not from one server
    servers, wait = smallest_servers(9.9e6, 1.0, 0.9999, 0.0, step=1000, limit=10**7)
    assert 9.9e6 < servers < 10**7 and wait == 0.0
    assert time.perf_counter() - start < LIMIT_S


@pytest.mark.parametrize("rate", [10_000.5, 23_456.7, 150_000.3])
def test_the_search_started_from_the_series_finds_the_same_count(rate: float) -> None:
    # `wait_quantile` carries Erlang-B up from one server: the reference
    servers, wait = smallest_servers(rate, 1.0, 0.99, 0.01)
    assert wait <= 0.01
    assert wait == pytest.approx(wait_quantile(servers, rate, 1.0, 0.99), rel=1e-9, abs=1e-12)
    assert wait_quantile(servers - 1, rate, 1.0, 0.99) > 0.01


def test_slo_at_a_rate_no_spec_can_serve_proposes_its_cap_at_once_and_says_so() -> None:
    a = autoscaler({**SLO, "service_time_s": 1.0, "slots_per_replica": 10_000})
    start = time.perf_counter()
    record = a.tick(at(0, request_rate_rps=1e15, in_flight=0.0, queue_depth=0.0))
    assert time.perf_counter() - start < LIMIT_S
    assert record.proposal == MAX_REPLICAS and record.replicas == 20
    assert record.proposal_reason.startswith("Overload: even 10,000 replicas")


def test_a_clock_step_ages_a_day_of_rates_in_one_pass() -> None:
    # a day of rates every 2 s (lead time 86,400 s), then the clock steps a week ahead
    recent = tuple((float(t), float(t % 97)) for t in range(0, 2 * 86_400, 2))
    start = time.perf_counter()
    rises = learn_rise(Rises(recent), 7 * DAY_S, 1.0, DAY_S + 15, DAY_S)
    assert time.perf_counter() - start < LIMIT_S
    assert rises.recent == ((7 * DAY_S, 1.0),)
    assert rises.seen == len(recent) and rises.added(1.0) == 96.0  # the largest rise: 0 -> 96


def test_the_forecast_looks_at_one_week_of_buckets_however_long_the_span() -> None:
    p = PredictiveParams(latency_target_s=2.0, bucket_s=60, season_s=600)
    daily = tuple(float(i) for i in range(10))
    f = Forecaster(level=100.0, daily=daily, weekly=(0.0,) * 70)
    start = time.perf_counter()
    assert forecast_max(f, p, 0.0, 1e15) == 109.0
    assert time.perf_counter() - start < LIMIT_S


def test_a_learned_lead_time_stays_within_a_day_after_a_clock_step() -> None:
    a = autoscaler({**PREDICTIVE, "max_replicas": 20})
    a.step(at(0, 1, request_rate_rps=1.0, in_flight=1.0))
    a.step(at(15, 3, ready_replicas=1, request_rate_rps=1.0, in_flight=1.0))  # 1 -> 3 asked
    a.step(at(1e12, 3, request_rate_rps=1.0, in_flight=1.0))  # ready 3 a long "startup" later
    assert a.state["policy_state"]["lead"]["estimate_s"] == DAY_S


# --- bounds -------------------------------------------------------------------------------------


def spec_models() -> list[type[BaseModel]]:
    """Every StrictModel the built-in policies and the guards define."""
    found: dict[str, type[BaseModel]] = {}
    for name in ("policies.spec", *BUILTIN_MODULES):
        for value in vars(importlib.import_module(name)).values():
            if (
                isinstance(value, type)
                and issubclass(value, StrictModel)
                and value is not StrictModel
            ):
                found[value.__name__] = value
    return [found[k] for k in sorted(found)]


def numeric_keys(model: type[BaseModel]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(key, its JSON schema) for every key that takes a number."""
    for key, prop in model.model_json_schema().get("properties", {}).items():
        for option in prop.get("anyOf", [prop]):
            if option.get("type") in {"integer", "number"}:
                yield key, option


MODELS = spec_models()


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_number_a_spec_takes_has_a_finite_range_in_its_json_schema(
    model: type[BaseModel],
) -> None:
    for key, prop in numeric_keys(model):
        top = prop.get("maximum", prop.get("exclusiveMaximum"))
        bottom = prop.get("minimum", prop.get("exclusiveMinimum"))
        assert top is not None and math.isfinite(top), f"{model.__name__}.{key}: {prop}"
        assert bottom is not None, f"{model.__name__}.{key}: {prop}"


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_replica_counts_windows_and_factors_have_the_documented_bounds(
    model: type[BaseModel],
) -> None:
    for key, prop in numeric_keys(model):
        where = f"{model.__name__}.{key}: {prop}"
        top = prop.get("maximum", prop.get("exclusiveMaximum"))
        if key.endswith(("replicas", "_scale")):
            assert top == MAX_REPLICAS, where
        if key.endswith(("_s", "Seconds")):
            assert top <= MAX_SEASON_S, where
        if key.endswith(("tolerance", "factor", "_cv", "margin", "margin_k")):
            assert top <= MAX_FACTOR, where


def test_the_shared_bounds_are_documented_where_the_spec_errors_are() -> None:
    doc = spec_module.__doc__ or ""
    names = ("MAX_REPLICAS", "MAX_WINDOW_S", "MAX_SEASON_S", "MAX_FACTOR", "MAX_COUNT")
    for name in (*names, "MAX_QUANTITY"):
        found = re.search(rf"\b{name} ([0-9.,e]+)", doc)
        assert found, f"{name} is not in policies/spec.py's docstring"
        assert float(found.group(1).replace(",", "")) == getattr(spec_module, name), name


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"target_per_replica": math.nan}, "target_per_replica: must be a finite number (got nan)"),
        ({"tolerance": -math.inf}, "tolerance: must be a finite number (got -inf)"),
        ({"max_replicas": 10**300}, "max_replicas: must be <= 10000 (got 1000000000"),
        ({"max_replicas": 1e300}, "max_replicas: must be a whole number of at most 19 digits"),
        ({"flap_budget": {"max_changes": 1, "window_s": 1e300}}, "window_s: must be <= 86400"),
        (
            {"behavior": {"scaleUp": {"tolerance": "1e400"}}},
            "behavior.scaleUp.tolerance: must be a finite number (got inf)",
        ),
        ({"x.y": 1}, "hpa spec: ['x.y']: unknown key; allowed keys: metric,"),
    ],
    ids=["nan", "-inf", "10^300", "1e300", "window", "quantity", "dotted key"],
)
def test_out_of_range_values_are_refused_in_one_line(change: dict[str, Any], expected: str) -> None:
    with pytest.raises(SpecError) as caught:
        autoscaler({**HPA, **change})
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_a_spec_error_survives_pickling_so_a_worker_process_can_report_it() -> None:
    import pickle  # noqa: PLC0415

    error = SpecError("planner", [("rise_quantile", "must be <= 0.9999")])
    back = pickle.loads(pickle.dumps(error))
    assert isinstance(back, SpecError) and str(back) == str(error)
    assert back.problems == error.problems and back.where == "planner"
