"""The emulator's Prometheus metrics, with vLLM's names, labels and latency buckets.

In: a model name, the `SlotQueue` whose gauges it reads, and the time compression (bucket
bounds divided by it, so a compressed latency falls in the bucket its model time would). Out:
`EmulatorMetrics`, a registry of its own (never the process-global one) that the emulator
records into and serves as text.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from simulator.live.slots import SlotQueue

# vLLM v1's request latency buckets (vllm/v1/metrics/loggers.py, `request_latency_buckets`).
LATENCY_BUCKETS_S = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0,
    40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip
LABELS = ("model_name", "engine")


def scaled_buckets(time_scale: float = 1.0) -> tuple[float, ...]:
    """vLLM's buckets for a server running `time_scale` times faster than the model (the
    sandbox's time compression): every bound divided by it."""
    return tuple(b / time_scale for b in LATENCY_BUCKETS_S)


ENGINE = "0"  # one engine per emulated replica


class EmulatorMetrics:
    """vLLM-named series in a registry of their own (never the process-global one)."""

    def __init__(self, model_name: str, queue: SlotQueue, *, time_scale: float = 1.0) -> None:
        self.registry = r = CollectorRegistry()
        labels = (model_name, ENGINE)
        running = Gauge("vllm:num_requests_running", "Requests holding a slot.", LABELS, registry=r)
        waiting = Gauge("vllm:num_requests_waiting", "Requests queued.", LABELS, registry=r)
        running.labels(*labels).set_function(lambda: queue.running)
        waiting.labels(*labels).set_function(lambda: queue.waiting)

        def histogram(name: str, text: str) -> Any:
            made = Histogram(name, text, LABELS, registry=r, buckets=scaled_buckets(time_scale))
            return made.labels(*labels)

        self.e2e = histogram("vllm:e2e_request_latency_seconds", "End-to-end latency.")
        self.queue_time = histogram("vllm:request_queue_time_seconds", "Time queued.")
        self.inference_time = histogram("vllm:request_inference_time_seconds", "Time in a slot.")
        success = Counter(
            "vllm:request_success", "Successful requests.", (*LABELS, "finished_reason"), registry=r
        )
        self.success = success.labels(*labels, "stop")
        self.prompt_tokens = Counter(
            "vllm:prompt_tokens", "Prefill tokens.", LABELS, registry=r
        ).labels(*labels)
        self.generation_tokens = Counter(
            "vllm:generation_tokens", "Generated tokens.", LABELS, registry=r
        ).labels(*labels)
        self.rejected = Counter(
            "replicast_emulator_rejected", "Requests refused.", ("model_name", "reason"), registry=r
        )
        self._model_name = model_name

    def reject(self, reason: str) -> None:
        self.rejected.labels(self._model_name, reason).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
