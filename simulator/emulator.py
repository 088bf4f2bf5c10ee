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

It listens on loopback only. The load generator that drives it is `simulator.loadgen`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import signal
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from policies import yaml_input
from simulator.model import ReplicaModel
from simulator.profiles import Arrivals, IntArray
from simulator.service import ModelError, TokenService

logger = logging.getLogger("simulator.emulator")  # also when run as __main__

# vLLM v1's request latency buckets (vllm/v1/metrics/loggers.py, `request_latency_buckets`).
LATENCY_BUCKETS_S = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0,
    40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip
LABELS = ("model_name", "engine")
ENGINE = "0"  # one engine per emulated replica
INFER_PATHS = ("/v1/infer", "/generate")


class EmulatorError(ValueError):
    """Arguments the emulator cannot use; the message names the option and the fix."""


class Clock(Protocol):
    """Monotonic seconds and sleeping (the live simulator measures durations, not dates)."""

    def now(self) -> float: ...

    async def sleep(self, delay_s: float) -> None: ...


class MonotonicClock:
    """The real clock: `time.monotonic` and `asyncio.sleep`."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, delay_s: float) -> None:
        await asyncio.sleep(max(0.0, delay_s))


def is_loopback_host(host: str) -> bool:
    """True for `localhost`, 127.0.0.0/8 and ::1 (brackets allowed): the only hosts we touch."""
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --------------------------------------------------------------------------- the slots


class SlotQueue:
    """`slots` concurrency slots and a first-come-first-served queue in front of them."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.running = 0
        self._waiting: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def acquire(self) -> None:
        if self.running < self.slots and not self._waiting:
            self.running += 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            await turn
        except asyncio.CancelledError:  # the client gave up (timeout, disconnect): normal
            if turn.done() and not turn.cancelled():
                self.release()  # handed a slot just as we gave up: pass it on
            elif turn in self._waiting:  # `release` may have skipped it already
                self._waiting.remove(turn)
            raise

    def release(self) -> None:
        """Hand the slot to the longest waiter (the running count stays), or free it."""
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self.running -= 1


# --------------------------------------------------------------------------- metrics


class EmulatorMetrics:
    """vLLM-named series in a registry of their own (never the process-global one)."""

    def __init__(self, model_name: str, queue: SlotQueue) -> None:
        self.registry = r = CollectorRegistry()
        labels = (model_name, ENGINE)
        running = Gauge("vllm:num_requests_running", "Requests holding a slot.", LABELS, registry=r)
        waiting = Gauge("vllm:num_requests_waiting", "Requests queued.", LABELS, registry=r)
        running.labels(*labels).set_function(lambda: queue.running)
        waiting.labels(*labels).set_function(lambda: queue.waiting)

        def histogram(name: str, text: str) -> Any:
            made = Histogram(name, text, LABELS, registry=r, buckets=LATENCY_BUCKETS_S)
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


# --------------------------------------------------------------------------- the server


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
    ) -> None:
        self.model = model
        self.clock = clock if clock is not None else MonotonicClock()
        self.rng = rng if rng is not None else np.random.default_rng()
        if startup_s is None:
            startup_s = float(model.draw_startup_delay_s(1, self.rng)[0])
        if not startup_s >= 0:
            raise EmulatorError(f"startup_s: must be >= 0 (got {startup_s})")
        self.startup_s = startup_s
        self.model_name = model_name
        self.queue = SlotQueue(model.slots_per_replica)
        self.metrics = EmulatorMetrics(model_name, self.queue)
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
        timeout_s = self.model.timeout_s
        if timeout_s is None:
            await self.queue.acquire()
            return True
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
            return float(self.model.draw_service_s(arrival, self.rng)[0])
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


# --------------------------------------------------------------------------- command line

_SERVICE_FORMS = (
    "fixed:SECONDS, exponential:MEAN_S, lognormal:MEAN_S:CV, gamma:MEAN_S:CV, "
    "llm_tokens:PERF[:BATCH]"
)


def service_spec(text: str) -> dict[str, Any]:
    """`exponential:2.0` -> the replica model's service spec ({"kind": ..., "mean_s": 2.0})."""
    kind, *args = text.split(":")
    keys = {
        "fixed": ("service_s",),
        "exponential": ("mean_s",),
        "lognormal": ("mean_s", "cv"),
        "gamma": ("mean_s", "cv"),
    }
    try:
        if kind in keys and len(args) == len(keys[kind]):
            return {"kind": kind, **{k: float(v) for k, v in zip(keys[kind], args, strict=True)}}
        if kind == "llm_tokens" and len(args) in (1, 2):
            spec: dict[str, Any] = {"kind": kind, "perf": args[0]}
            if len(args) == 2:
                spec["batch_size"] = int(args[1])
            return spec
    except ValueError:
        pass
    raise EmulatorError(f"--service {text}: use one of {_SERVICE_FORMS}")


def build_model(args: argparse.Namespace) -> ReplicaModel:
    """The replica model from --model (a preset or YAML file), the other options on top."""
    spec: dict[str, Any] = {
        "slots_per_replica": 8,
        "service": {"kind": "exponential", "mean_s": 2.0},
        "startup": {"fixed_s": 0.0},
    }
    if args.model is not None:
        path = Path(args.model)
        if path.exists():
            try:
                loaded = yaml_input.safe_load(path.read_text())
            except yaml_input.YamlInputError as error:
                raise EmulatorError(f"--model {path}: {error}") from None
            if not isinstance(loaded, dict):
                raise EmulatorError(f"--model {path}: must be a replica model mapping")
            spec = loaded
        else:
            spec = {"preset": args.model}
    if args.slots is not None:
        spec = {**spec, "slots_per_replica": args.slots}
    if args.service is not None:
        spec = {**spec, "service": service_spec(args.service)}
    if args.timeout_s is not None:
        spec = {**spec, "timeout_s": args.timeout_s}
    if args.queue_limit is not None:
        spec = {**spec, "queue_limit": args.queue_limit}
    # prices are not the emulator's business: any sku/platform pair loads
    return ReplicaModel.from_spec({**spec, "sku": None, "platform": None})


def parser(prog: str = "python -m simulator.emulator") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="an emulated inference server whose latency follows a replica model",
    )
    p.add_argument("--port", type=int, default=8000, help="0: any free port (printed)")
    p.add_argument("--host", default="127.0.0.1", help="loopback only: 127.0.0.1, ::1, localhost")
    p.add_argument("--model", default=None, help="replica model preset or YAML file")
    p.add_argument("--slots", type=int, default=None, help="concurrency slots (default 8)")
    p.add_argument("--service", default=None, help=_SERVICE_FORMS)
    p.add_argument(
        "--startup-s",
        type=float,
        default=None,
        help="seconds before /readyz answers 200 (default: one draw from the model's startup)",
    )
    p.add_argument("--timeout-s", type=float, default=None, help="drop requests queued this long")
    p.add_argument("--queue-limit", type=int, default=None, help="refuse (429) beyond this queue")
    p.add_argument("--model-name", default="emulator", help="the model_name metric label")
    p.add_argument("--seed", type=int, default=None, help="seed of the service/startup draws")
    p.add_argument("--drain-s", type=float, default=5.0, help="grace for requests on SIGTERM")
    return p


async def run_until_stopped(
    emulator: Emulator, *, host: str, port: int, drain_s: float, stop: asyncio.Event
) -> None:
    """Serve until `stop` is set (SIGTERM/SIGINT in `main`), then drain and close."""
    async with serve(emulator, host=host, port=port, drain_s=drain_s) as served:
        print(f"emulator: model {emulator.model_name} on {served.url}", flush=True)
        await stop.wait()


async def _main(args: argparse.Namespace) -> None:
    emulator = Emulator(
        build_model(args),
        startup_s=args.startup_s,
        model_name=args.model_name,
        rng=np.random.default_rng(args.seed),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await run_until_stopped(
        emulator, host=args.host, port=args.port, drain_s=args.drain_s, stop=stop
    )


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m simulator.emulator") -> int:
    """The process entry point (`python -m simulator.emulator`, or `replicast emulate` as
    `prog`): errors are one line on stderr and exit code 2; SIGTERM drains and exits 0."""
    args = parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        asyncio.run(_main(args))
    except (ValueError, OSError) as error:  # SpecError, EmulatorError, ModelError, bind errors
        print(f"emulator: {str(error).splitlines()[0]}", file=sys.stderr)
        return 2
    return 0


def cmd_emulate(argv: Sequence[str]) -> int:
    """serve an emulated inference server (vLLM metric names) on a loopback port"""
    return main(argv, prog="replicast emulate")


if __name__ == "__main__":
    sys.exit(main())
