"""An emulated inference server whose latency follows the replica model, over real HTTP.

In: a `ReplicaModel` (`simulator.model`: concurrency slots, service time model, startup model,
queue timeout and limit), an injected clock and `numpy.random.Generator`. Out: an aiohttp app
on a loopback address that behaves like one replica of the scaled service:

- `POST /v1/infer` (or `/generate`): waits for one of `slots` slots in FCFS order, holds it for
  a service time drawn from the model (an LLM token model reads `{"input_tokens": ..,
  "output_tokens": ..}` from the JSON body), and answers JSON with its latency parts. 503
  while starting or when queued longer than the model's `timeout_s`; 429 when `queue_limit`
  requests already wait; 400 for a body it cannot use.
- `GET /readyz`: 503 until the startup delay has passed (and again while draining), then 200.
- `GET /healthz`: 200 while the process serves.
- `GET /metrics`: Prometheus text from this emulator's own registry, with vLLM's names and
  labels (vllm/v1/metrics/loggers.py: `model_name`, `engine`), so the controller's `vllm`
  signal preset reads it unchanged: `vllm:num_requests_running`, `vllm:num_requests_waiting`,
  `vllm:e2e_request_latency_seconds` (vLLM's buckets), `vllm:request_queue_time_seconds`,
  `vllm:request_inference_time_seconds`, `vllm:request_success_total` (+ `finished_reason`),
  `vllm:prompt_tokens_total`, `vllm:generation_tokens_total`; rejections (not a vLLM metric)
  in `replicast_emulator_rejected_total{reason}`.

Run one as a process (what the `local` actuator starts):

    python -m simulator.emulator --port 8001 --slots 8 --service exponential:2.0 --startup-s 5

`time_scale` m (`--time-scale`, the sandbox's time compression) runs the model m times
faster: startup, service times and the queue timeout are divided by m, and so are the latency
histogram's bucket bounds; JSON answers and metrics are in (compressed) wall seconds.

It listens on loopback only. The load generator that drives it is `simulator.live.loadgen`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np
from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from simulator.live.base import Clock, MonotonicClock, is_loopback_host
from simulator.live.metrics import EmulatorMetrics
from simulator.live.slots import SlotQueue
from simulator.model import ReplicaModel
from simulator.profiles import Arrivals, IntArray
from simulator.service import ModelError, TokenService

logger = logging.getLogger("simulator.emulator")  # its name before simulator.live, also as __main__

INFER_PATHS = ("/v1/infer", "/generate")


class EmulatorError(ValueError):
    """Arguments the emulator cannot use; the message names the option and the fix."""


class Emulator:
    """One emulated replica; `app()` is its aiohttp application (see the module docstring).

    The startup delay is `startup_s`, or one draw from the model's startup model; it runs from
    the app's startup (a task named `emulator-startup`, cancelled at cleanup).
    """

    def __init__(
        self,
        model: ReplicaModel,
        *,
        startup_s: float | None = None,
        model_name: str = "emulator",
        clock: Clock | None = None,
        rng: np.random.Generator | None = None,
        time_scale: float = 1.0,
    ) -> None:
        if not (math.isfinite(time_scale) and time_scale > 0):
            raise EmulatorError(f"time_scale: must be > 0 and finite (got {time_scale})")
        self.time_scale = time_scale
        self.model = model
        self.clock = clock if clock is not None else MonotonicClock()
        self.rng = rng if rng is not None else np.random.default_rng()
        if startup_s is None:
            startup_s = float(model.draw_startup_delay_s(1, self.rng)[0])
        if not startup_s >= 0:
            raise EmulatorError(f"startup_s: must be >= 0 (got {startup_s})")
        self.startup_s = startup_s / time_scale
        self.model_name = model_name
        self.queue = SlotQueue(model.slots_per_replica)
        self.metrics = EmulatorMetrics(model_name, self.queue, time_scale=time_scale)
        self.ready = False
        self.draining = False

    def app(self) -> web.Application:
        app = web.Application()
        for path in INFER_PATHS:
            app.router.add_post(path, self.infer)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.metrics_page)
        app.cleanup_ctx.append(self._startup_ctx)
        return app

    async def _startup_ctx(self, app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(self._start_up(), name="emulator-startup")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _start_up(self) -> None:
        await self.clock.sleep(self.startup_s)
        self.ready = True
        logger.info("%s: ready after %.3g s", self.model_name, self.startup_s)

    # ---- handlers

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        if self.ready and not self.draining:
            return web.json_response({"status": "ready"})
        status = "draining" if self.draining else "starting"
        return web.json_response({"status": status}, status=503)

    async def metrics_page(self, request: web.Request) -> web.Response:
        body = self.metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def infer(self, request: web.Request) -> web.Response:
        arrived_s = self.clock.now()
        if not self.ready or self.draining:
            return self._refuse(503, "starting" if not self.ready else "draining")
        try:
            input_tokens, output_tokens = await _tokens(request)
            service_s = self._service_s(input_tokens, output_tokens)
        except EmulatorError as error:
            return self._refuse(400, "bad_request", str(error))
        if self._queue_full():
            limit = self.model.queue_limit
            return self._refuse(429, "queue_full", f"{limit} requests already queued")
        if not await self._acquire(arrived_s):
            return self._refuse(503, "timeout", f"queued longer than {self.model.timeout_s:g} s")
        try:
            started_s = self.clock.now()
            await self.clock.sleep(service_s)
            done_s = self.clock.now()
        finally:
            self.queue.release()
        self._record(done_s - arrived_s, started_s - arrived_s, done_s - started_s)
        if input_tokens is not None:
            self.metrics.prompt_tokens.inc(input_tokens)
        if output_tokens is not None:
            self.metrics.generation_tokens.inc(output_tokens)
        return web.json_response(
            {
                "model": self.model_name,
                "latency_s": done_s - arrived_s,
                "queue_s": started_s - arrived_s,
                "service_s": service_s,
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
            }
        )

    # ---- helpers

    async def _acquire(self, arrived_s: float) -> bool:
        """Wait for a slot; False when the model's `timeout_s` passes first."""
        if self.model.timeout_s is None:
            await self.queue.acquire()
            return True
        timeout_s = self.model.timeout_s / self.time_scale
        waiter = asyncio.ensure_future(self.queue.acquire())
        timer = asyncio.ensure_future(self.clock.sleep(arrived_s + timeout_s - self.clock.now()))
        try:
            await asyncio.wait((waiter, timer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            if not waiter.done():
                waiter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiter
        return waiter.done() and not waiter.cancelled()

    def _queue_full(self) -> bool:
        """An arrival that would queue behind `queue_limit` others is refused (as the kernel)."""
        limit, queue = self.model.queue_limit, self.queue
        return limit is not None and queue.running >= queue.slots and queue.waiting >= limit

    def _service_s(self, input_tokens: int | None, output_tokens: int | None) -> float:
        def one(tokens: int | None) -> IntArray | None:
            return None if tokens is None else np.array([tokens], dtype=np.int64)

        arrival = Arrivals(0.0, 1.0, np.zeros(1), one(input_tokens), one(output_tokens))
        try:
            return float(self.model.draw_service_s(arrival, self.rng)[0]) / self.time_scale
        except ModelError as error:
            if isinstance(self.model.service, TokenService):
                raise EmulatorError(
                    'the service model reads tokens: send {"input_tokens": N, '
                    '"output_tokens": M} in the JSON body'
                ) from error
            raise EmulatorError(str(error)) from error

    def _record(self, e2e_s: float, queue_s: float, inference_s: float) -> None:
        self.metrics.e2e.observe(e2e_s)
        self.metrics.queue_time.observe(queue_s)
        self.metrics.inference_time.observe(inference_s)
        self.metrics.success.inc()

    def _refuse(self, status: int, reason: str, message: str = "") -> web.Response:
        self.metrics.reject(reason)
        return web.json_response({"error": reason, "message": message or reason}, status=status)


async def _tokens(request: web.Request) -> tuple[int | None, int | None]:
    """(input_tokens, output_tokens) from an optional JSON body; EmulatorError if unusable."""
    if not request.can_read_body:
        return None, None
    try:
        body = await request.json()
    except ValueError:
        raise EmulatorError('the body must be JSON, e.g. {"input_tokens": 100}') from None
    if body is None:
        return None, None
    if not isinstance(body, dict):
        raise EmulatorError("the body must be a JSON object")
    found: list[int | None] = []
    for key in ("input_tokens", "output_tokens"):
        value = body.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise EmulatorError(f"{key}: must be a whole number >= 0 (got {value!r})")
        if value is not None and value < 0:
            raise EmulatorError(f"{key}: must be a whole number >= 0 (got {value!r})")
        found.append(value)
    return found[0], found[1]


# --------------------------------------------------------------------------- serving


@dataclass(frozen=True, slots=True)
class Served:
    """A running emulator: its URL (`http://127.0.0.1:PORT`) and the port actually bound."""

    url: str
    port: int
    emulator: Emulator


@contextlib.asynccontextmanager
async def serve(
    emulator: Emulator, *, host: str = "127.0.0.1", port: int = 0, drain_s: float = 5.0
) -> AsyncIterator[Served]:
    """Serve `emulator` on host:port (0: any free port) until the block exits.

    On exit it stops answering ready, stops accepting, lets requests in flight finish for up to
    `drain_s`, then closes.
    """
    if not is_loopback_host(host):
        raise EmulatorError(
            f"--host {host}: the emulator listens on loopback only (127.0.0.1, ::1, localhost)"
        )
    runner = web.AppRunner(emulator.app(), access_log=None, shutdown_timeout=drain_s)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = _bound_port(runner)
        shown = f"[{host.strip('[]')}]" if ":" in host else host
        yield Served(f"http://{shown}:{bound}", bound, emulator)
    finally:
        emulator.draining = True
        await runner.cleanup()


def _bound_port(runner: web.AppRunner) -> int:
    address = runner.addresses[0]
    return int(address[1])
