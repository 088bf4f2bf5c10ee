"""PromQL per Observation signal: presets, templates, and the per-tick query plan.

In: each target's signal queries (a preset and/or PromQL templates) with the values of its group
labels. Out: `plan_queries` -> one `PlannedQuery` per distinct PromQL text, naming every
(target, signal) it serves, and `split_result`, which turns that query's instant vector back
into one value per target. The HTTP side is `controller.prometheus`; the config side (which
builds `TargetQueries` from YAML) is `controller.config`.

Templates are PromQL with `{placeholder}` holes (a bare `{word}` is never valid PromQL):
`{group_by}` (the target's group labels, comma-separated), `{selector}` (its extra label
matchers), `{target}`, `{namespace}`, `{name}` and any of its `labels`. Each template is a
`sum by ({group_by})` total (Observation's meaning: totals over the target's replicas), so
targets whose filled template is the same text share ONE query per tick, split client-side.

Staleness: an instant query stamps every result with the evaluation time, so the age of the
data behind a value needs `timestamp()`. A query's optional `freshness` template gives, per
group, the newest raw sample time; the plan sends it in the same request as

    (<query>) or label_replace(<freshness>, "replicast_sample", "timestamp", "", "")

and `split_result` drops a value whose newest sample is older than the target's
`staleness_s` (the pipeline for that target has stalled: exporter gone, remote write behind).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from policies.observation import SIGNALS, is_signal_name

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Marks the freshness series in a combined query's result; never a real series label.
SAMPLE_LABEL = "replicast_sample"
# The key under which `read` returns a target's activation signal (the one used at 0 replicas).
ACTIVATION = "activation"

G = "{group_by}"


class TemplateError(ValueError):
    """A template names a placeholder the target has no value for."""


@dataclass(frozen=True, slots=True)
class SignalQuery:
    """One signal's PromQL template and, optionally, its newest-sample-time template."""

    query: str
    freshness: str | None = None


@dataclass(frozen=True, slots=True)
class FilledQuery:
    """A signal's query for one target: templates filled, group label values to split by."""

    query: str
    freshness: str | None
    match: tuple[tuple[str, str], ...]

    @property
    def promql(self) -> str:
        """The text sent to Prometheus: the value query, plus its freshness series if any."""
        if self.freshness is None:
            return self.query
        return (
            f'({self.query}) or label_replace({self.freshness}, "{SAMPLE_LABEL}", '
            '"timestamp", "", "")'
        )


@dataclass(frozen=True, slots=True)
class TargetQueries:
    """Everything the metric source needs about one target."""

    target: str
    staleness_s: float
    queries: Mapping[str, FilledQuery]


# --- templates -------------------------------------------------------------------------------


def placeholders(template: str) -> set[str]:
    return set(PLACEHOLDER.findall(template))


def fill(template: str, variables: Mapping[str, str]) -> str:
    """Replace every `{name}`; TemplateError names the ones `variables` lacks."""
    missing = sorted(placeholders(template) - set(variables))
    if missing:
        known = ", ".join("{" + k + "}" for k in sorted(variables))
        raise TemplateError(
            f"unknown placeholder {', '.join('{' + m + '}' for m in missing)}; known: {known}"
        )
    return PLACEHOLDER.sub(lambda m: variables[m.group(1)], template)


def _selector(metric: str, matchers: str = "") -> str:
    """`metric{<matchers>,{selector}}`: the target's selector joins the preset's matchers."""
    inner = f"{matchers}," if matchers else ""
    return metric + "{" + inner + "{selector}}"


def _newest(selector: str) -> str:
    return f"max by ({G}) (timestamp({selector}))"


def gauge_total(metric: str, matchers: str = "") -> SignalQuery:
    """A gauge summed over the target's replicas (requests running, waiting)."""
    s = _selector(metric, matchers)
    return SignalQuery(f"sum by ({G}) ({s})", _newest(s))


def gauge_mean(metric: str, matchers: str = "") -> SignalQuery:
    """A gauge averaged over replicas (utilizations are averages, not totals)."""
    s = _selector(metric, matchers)
    return SignalQuery(f"avg by ({G}) ({s})", _newest(s))


def counter_rate(metric: str, matchers: str = "", window: str = "1m") -> SignalQuery:
    """Events per second over the target (a counter's rate, summed over replicas)."""
    s = _selector(metric, matchers)
    return SignalQuery(f"sum by ({G}) (rate({s}[{window}]))", _newest(s))


def share(
    metric: str, part_matchers: str, whole_matchers: str = "", window: str = "1m"
) -> SignalQuery:
    """part / whole of a counter's rate, 0 when the part has no series yet (no errors ever)."""
    part = f"sum by ({G}) (rate({_selector(metric, part_matchers)}[{window}]))"
    whole_selector = _selector(metric, whole_matchers)
    whole = f"sum by ({G}) (rate({whole_selector}[{window}]))"
    return SignalQuery(f"({part} or {whole} * 0) / {whole}", _newest(whole_selector))


def histogram_quantile(
    q: float, metric: str, matchers: str = "", window: str = "1m"
) -> SignalQuery:
    """A latency percentile over all of the target's requests, from a histogram's buckets."""
    buckets = _selector(f"{metric}_bucket", matchers)
    return SignalQuery(
        f"histogram_quantile({q:g}, sum by (le, {G}) (rate({buckets}[{window}])))",
        _newest(_selector(f"{metric}_count", matchers)),
    )


# --- presets ---------------------------------------------------------------------------------

_VLLM_LATENCY = "vllm:e2e_request_latency_seconds"
_HTTP_LATENCY = "http_request_duration_seconds"
_TRITON_REQUESTS = '__name__=~"nv_inference_request_(success|failure)"'


def _triton_in_service() -> SignalQuery:
    # Little's law: request-microseconds completed per second = mean requests in the system;
    # minus the queued part = mean requests in service (Triton exports no running gauge).
    total = f"sum by ({G}) (rate({_selector('nv_inference_request_duration_us')}[1m]))"
    queued = f"sum by ({G}) (rate({_selector('nv_inference_queue_duration_us')}[1m]))"
    return SignalQuery(
        f"({total} - {queued}) / 1e6", _newest(_selector("nv_inference_request_duration_us"))
    )


def _triton_mean_latency() -> SignalQuery:
    duration = f"sum by ({G}) (rate({_selector('nv_inference_request_duration_us')}[1m]))"
    success = f"sum by ({G}) (rate({_selector('nv_inference_request_success')}[1m]))"
    return SignalQuery(
        f"{duration} / {success} / 1e6", _newest(_selector("nv_inference_request_success"))
    )


PRESETS: Mapping[str, Mapping[str, SignalQuery]] = {
    # vLLM's /metrics (v0 and v1 engines): completions per second (the arrival rate in steady
    # state), requests running on the GPU, requests waiting, end-to-end latency histogram.
    "vllm": {
        "request_rate_rps": counter_rate("vllm:request_success_total"),
        "in_flight": gauge_total("vllm:num_requests_running"),
        "queue_depth": gauge_total("vllm:num_requests_waiting"),
        "latency_p50_s": histogram_quantile(0.5, _VLLM_LATENCY),
        "latency_p95_s": histogram_quantile(0.95, _VLLM_LATENCY),
        "latency_p99_s": histogram_quantile(0.99, _VLLM_LATENCY),
        # gpu_cache_usage_perc before v0.10, kv_cache_usage_perc after (0..1, despite the name)
        "extra.kv_cache_utilization": gauge_mean("", '__name__=~"vllm:(gpu|kv)_cache_usage_perc"'),
        "extra.generation_tokens_per_s": counter_rate("vllm:generation_tokens_total"),
    },
    # Triton's /metrics: per-model counters of requests and of cumulative microseconds; no
    # latency histogram by default, so no percentiles (a mean is not a percentile).
    "triton": {
        "request_rate_rps": counter_rate("", _TRITON_REQUESTS),
        "in_flight": _triton_in_service(),
        "queue_depth": gauge_total("nv_inference_pending_request_count"),
        "error_rate": share("", '__name__="nv_inference_request_failure"', _TRITON_REQUESTS),
        "gpu_utilization": gauge_mean("nv_gpu_utilization"),
        "extra.latency_mean_s": _triton_mean_latency(),
    },
    # A plain prometheus-client / ASGI server (prometheus-fastapi-instrumentator's names):
    # http_requests_total{status}, http_request_duration_seconds histogram, in-progress gauge.
    "http": {
        "request_rate_rps": counter_rate("http_requests_total"),
        "in_flight": gauge_total("http_requests_inprogress"),
        "error_rate": share("http_requests_total", 'status=~"5.."'),
        "latency_p50_s": histogram_quantile(0.5, _HTTP_LATENCY),
        "latency_p95_s": histogram_quantile(0.95, _HTTP_LATENCY),
        "latency_p99_s": histogram_quantile(0.99, _HTTP_LATENCY),
    },
}


def signal_names(names: Iterable[str]) -> list[str]:
    """Standard signals first in Observation's order, then extras by name."""
    names = set(names)
    return [s for s in SIGNALS if s in names] + sorted(n for n in names if n not in SIGNALS)


# --- the plan --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Member:
    """One (target, signal) a planned query serves, and how to find its series."""

    target: str
    signal: str
    match: tuple[tuple[str, str], ...]
    staleness_s: float


@dataclass(frozen=True, slots=True)
class PlannedQuery:
    promql: str
    members: tuple[Member, ...]


def plan_queries(targets: Sequence[TargetQueries]) -> tuple[PlannedQuery, ...]:
    """One query per distinct PromQL text, in first-seen order."""
    grouped: dict[str, list[Member]] = {}
    for t in targets:
        for signal, q in t.queries.items():
            grouped.setdefault(q.promql, []).append(
                Member(t.target, signal, q.match, t.staleness_s)
            )
    return tuple(PlannedQuery(text, tuple(members)) for text, members in grouped.items())


# --- splitting a result ----------------------------------------------------------------------


class ResultError(ValueError):
    """A response that is not an instant vector or scalar, or series that cannot be split."""


@dataclass(frozen=True, slots=True)
class Sample:
    labels: Mapping[str, str]
    time_s: float
    value: float


def samples_of(data: Any) -> list[Sample]:
    """The `data` of a successful /api/v1/query answer as samples (a scalar is one series)."""
    if not isinstance(data, Mapping):
        raise ResultError(f"'data' is not an object (got {type(data).__name__})")
    kind, result = data.get("resultType"), data.get("result")
    result = [] if result is None else result
    try:
        if kind == "scalar":
            return [Sample({}, float(result[0]), _number(result[1]))]
        if kind == "vector" and isinstance(result, list):
            return [
                Sample(dict(r["metric"]), float(r["value"][0]), _number(r["value"][1]))
                for r in result
            ]
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise ResultError(f"malformed {kind} result: {error!r}") from None
    raise ResultError(f"expected an instant vector or scalar (got resultType {kind!r})")


def _number(text: Any) -> float:
    if not isinstance(text, str):
        raise ValueError(f"sample value {text!r} is not a string")
    return float(text)  # Prometheus writes "NaN", "+Inf", "-Inf" as Python reads them


def _matches(labels: Mapping[str, str], match: tuple[tuple[str, str], ...]) -> bool:
    return all(labels.get(k, "") == v for k, v in match)


def member_value(
    samples: Sequence[Sample], member: Member, now_s: float
) -> tuple[float | None, str | None]:
    """The member's value (None when missing, stale, NaN or infinite) and why it is None.

    Age is judged by the newest raw sample behind the value (the freshness series) when the
    query has one, else by the result's own timestamp (the evaluation time).
    """
    mine = [s for s in samples if _matches(s.labels, member.match)]
    values = [s for s in mine if SAMPLE_LABEL not in s.labels]
    if not values:
        return None, "empty"
    if len(values) > 1:
        where = ", ".join(f"{k}={v!r}" for k, v in member.match) or "no group labels"
        return None, (
            f"ambiguous: {len(values)} series for {where}; aggregate the query with "
            "sum by ({group_by})"
        )
    sample = values[0]
    if not math.isfinite(sample.value):
        return None, "not_finite"
    newest = [s.value for s in mine if SAMPLE_LABEL in s.labels]
    sampled_s = min(sample.time_s, max(newest)) if newest else sample.time_s
    if now_s - sampled_s > member.staleness_s:
        return None, "stale"
    return sample.value, None


def split_result(
    samples: Sequence[Sample], members: Iterable[Member], now_s: float
) -> dict[tuple[str, str], tuple[float | None, str | None]]:
    """(target, signal) -> (value or None, reason when None) for every member of one query.

    The samples are indexed once per set of group labels (a dict from label values to
    series), so splitting one answer among N targets costs O(N + series), not O(N x series):
    at 500 targets the quadratic scan was most of a round's CPU (bench/README.md).
    """
    index: dict[tuple[str, ...], dict[tuple[str, ...], list[Sample]]] = {}
    out: dict[tuple[str, str], tuple[float | None, str | None]] = {}
    for m in members:
        keys = tuple(k for k, _ in m.match)
        by_values = index.get(keys)
        if by_values is None:
            by_values = index[keys] = {}
            for s in samples:
                by_values.setdefault(tuple(s.labels.get(k, "") for k in keys), []).append(s)
        mine = by_values.get(tuple(v for _, v in m.match), [])
        out[m.target, m.signal] = member_value(mine, m, now_s)
    return out


def observation_signals(
    values: Mapping[str, float | None], *, replicas: int, activation_signal: str | None = None
) -> dict[str, Any]:
    """Keyword arguments for `Observation` from one target's values.

    At 0 replicas the target exports nothing, so its activation value (a gateway's request
    rate, a queue's length) stands in for `activation_signal`.
    """
    signals = {k: v for k, v in values.items() if k != ACTIVATION}
    if replicas == 0 and activation_signal is not None and ACTIVATION in values:
        signals[activation_signal] = values[ACTIVATION]
    out: dict[str, Any] = {k: v for k, v in signals.items() if k in SIGNALS}
    extra = {
        k.removeprefix("extra."): v
        for k, v in signals.items()
        if k not in SIGNALS and is_signal_name(k) and v is not None
    }
    if extra:
        out["extra"] = extra
    return out


# Why a signal is None when the source itself failed (not the data): the target cannot be
# observed while all of its signals are missing for one of these.
SOURCE_FAILURES = frozenset(
    {"auth", "bad_response", "connection", "http_status", "internal", "prometheus_error", "timeout"}
)


@dataclass(frozen=True, slots=True)
class Reading:
    """One target's signals: value or None, and for each None, why."""

    values: Mapping[str, float | None] = field(default_factory=dict)
    missing: Mapping[str, str] = field(default_factory=dict)

    def source_failed(self) -> bool:
        """Every signal is missing because the source failed (not because a series is empty)."""
        configured = [s for s in self.values if s != ACTIVATION] or list(self.values)
        return bool(configured) and all(self.missing.get(s) in SOURCE_FAILURES for s in configured)
