"""The sandbox's router: one central FCFS queue in front of local replicas (issue 20).

In: a backends file -- `{"backends": [{"name": .., "address": "127.0.0.1:8001"}, ..]}`, the
document the controller's `FileRegistrar` keeps (controller/registrars.py) as the `local`
actuator starts and stops replicas -- and the slots each replica has. Out: an aiohttp app on a
loopback address:

- `POST /v1/infer` (or `/generate`): queued in arrival order; the head of the queue goes to a
  replica with a free slot (the fewest in flight; ties: the name), forwarded there with its
  body, and the replica's answer is returned as it came. This is the simulator's model: one
  shared FCFS queue, a request starts as soon as any slot is free, so a replica's own queue
  stays empty. No replica at all yet: the request waits (a cold start from zero); a replica
  that cannot be reached: 502, one line.
  The answer carries `X-Replicast-Wait-S`: the seconds it waited here for a slot.
- `GET /healthz`: 200. `GET /metrics`: `replicast_router_queue_depth` (requests waiting
  here), `replicast_router_in_flight`, `replicast_router_backends`,
  `replicast_router_requests_total` (arrivals), `replicast_router_request_duration_seconds`
  (arrival here to answer, a histogram with vLLM's buckets divided by `time_scale`, the
  sandbox's time compression), `replicast_router_queue_wait_seconds`, and per backend
  `replicast_router_dispatched_total{backend}`. The client to the replicas has no connection
  cap (aiohttp's default of 100 would be a second, hidden queue).

The file is re-read when its modification time changes (every `poll_s`): a new name takes
requests at once; a name that left takes no new one and is forgotten when its last request
ends (it drains). The simulator never imports the controller, so the format is read here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from simulator.live.base import is_loopback_host
from simulator.live.emulator import _bound_port
from simulator.live.metrics import scaled_buckets

logger = logging.getLogger(__name__)

INFER_PATHS = ("/v1/infer", "/generate")


class RouterError(ValueError):
    """A router that cannot be set up (a bad slot count, a host that is not loopback)."""


@dataclass
class _Backend:
    address: str
    in_flight: int = 0
    leaving: bool = False


@dataclass
class _Waiting:
    future: asyncio.Future[str] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


def read_backends(path: Path) -> dict[str, str]:
    """name -> address from the backends file ({} while it does not exist or is being
    replaced; a file that is not the document is logged once per change and ignored)."""
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        logger.warning("%s: not a backends document (%s); keeping the last one", path, error)
        raise
    rows = document.get("backends") if isinstance(document, dict) else None
    if not isinstance(rows, list):
        raise ValueError(f"{path}: needs {{'backends': [{{'name', 'address'}}, ...]}}")
    out: dict[str, str] = {}
    for row in rows:
        if isinstance(row, dict) and isinstance(row.get("name"), str):
            address = row.get("address")
            if isinstance(address, str) and address:
                out[row["name"]] = address
    return out


class Router:
    """The central queue and its backends; `app()` serves it (see the module docstring)."""

    def __init__(
        self,
        backends_file: Path | str,
        slots: int,
        *,
        poll_s: float = 0.2,
        time_scale: float = 1.0,
    ) -> None:
        if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
            raise RouterError(f"slots: a whole number >= 1 per replica (got {slots!r})")
        if not time_scale > 0 or time_scale == float("inf"):
            raise RouterError(f"time_scale: must be > 0 and finite (got {time_scale})")
        self.path = Path(backends_file)
        self.slots = slots
        self.poll_s = poll_s
        self.backends: dict[str, _Backend] = {}
        self.queue: deque[_Waiting] = deque()
        self._mtime: float | None = None
        self._session: aiohttp.ClientSession | None = None
        registry = self.registry = CollectorRegistry()
        self._dispatched = Counter(
            "replicast_router_dispatched", "Requests sent to a backend.", ("backend",),
            registry=registry,
        )  # fmt: skip
        self._arrived = Counter(
            "replicast_router_requests", "Requests that arrived.", registry=registry
        )
        buckets = scaled_buckets(time_scale)
        self._latency = Histogram(
            "replicast_router_request_duration_seconds", "Arrival here to answer.",
            registry=registry, buckets=buckets,
        )  # fmt: skip
        self._wait = Histogram(
            "replicast_router_queue_wait_seconds", "Arrival here to a free slot.",
            registry=registry, buckets=buckets,
        )  # fmt: skip
        Gauge(
            "replicast_router_queue_depth", "Requests waiting for a slot.", registry=registry
        ).set_function(lambda: len(self.queue))
        Gauge(
            "replicast_router_in_flight", "Requests at a backend.", registry=registry
        ).set_function(lambda: sum(b.in_flight for b in self.backends.values()))
        Gauge(
            "replicast_router_backends", "Backends taking requests.", registry=registry
        ).set_function(lambda: sum(not b.leaving for b in self.backends.values()))

    # --- backends ----------------------------------------------------------------------------

    def refresh(self) -> None:
        """Re-read the file if it changed: new names join, missing ones drain."""
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if mtime == self._mtime:
            return
        self._mtime = mtime  # a bad file is read (and logged) once per change
        try:
            wanted = read_backends(self.path)
        except (OSError, ValueError):
            return  # keep routing to the last good set
        for name, address in wanted.items():
            backend = self.backends.get(name)
            if backend is None or backend.address != address:
                if backend is not None and backend.in_flight:
                    backend.leaving = True  # the old address drains under a fresh entry below
                self.backends[name] = _Backend(address)
            else:
                backend.leaving = False
        for name, backend in list(self.backends.items()):
            if name not in wanted:
                backend.leaving = True
                if backend.in_flight == 0:
                    del self.backends[name]
        self._pump()

    def _pump(self) -> None:
        """Hand the head of the queue to free slots while there are both."""
        while self.queue:
            free = [
                (b.in_flight, name)
                for name, b in self.backends.items()
                if not b.leaving and b.in_flight < self.slots
            ]
            if not free:
                return
            waiting = self.queue.popleft()
            if waiting.future.done():  # its client went away
                continue
            name = min(free)[1]
            self.backends[name].in_flight += 1
            waiting.future.set_result(name)

    def _release(self, name: str) -> None:
        backend = self.backends.get(name)
        if backend is not None:
            backend.in_flight -= 1
            if backend.leaving and backend.in_flight == 0:
                del self.backends[name]
        self._pump()

    # --- HTTP --------------------------------------------------------------------------------

    async def infer(self, request: web.Request) -> web.Response:
        loop = asyncio.get_running_loop()
        arrived_s = loop.time()
        self._arrived.inc()
        body = await request.read()
        waiting = _Waiting()
        self.queue.append(waiting)
        self._pump()
        try:
            name = await waiting.future
        except asyncio.CancelledError:
            with contextlib.suppress(ValueError):
                self.queue.remove(waiting)
            raise
        wait_s = loop.time() - arrived_s
        self._wait.observe(wait_s)
        backend = self.backends[name]
        self._dispatched.labels(backend=name).inc()
        assert self._session is not None
        headers = {"X-Replicast-Wait-S": f"{wait_s:.6f}"}
        try:
            async with self._session.post(
                f"http://{backend.address}{request.path}",
                data=body,
                headers={"Content-Type": request.content_type or "application/json"},
            ) as answer:
                payload = await answer.read()
                response = web.Response(
                    status=answer.status,
                    body=payload,
                    content_type=answer.content_type,
                    headers=headers,
                )
        except aiohttp.ClientError as error:
            return web.json_response(
                {"error": f"backend {name} at {backend.address}: {error}"},
                status=502,
                headers=headers,
            )
        finally:
            self._release(name)
        self._latency.observe(loop.time() - arrived_s)
        return response

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def metrics_page(self, _request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def _watch(self) -> None:
        while True:
            self.refresh()
            await asyncio.sleep(self.poll_s)

    def app(self) -> web.Application:
        app = web.Application()
        for path in INFER_PATHS:
            app.router.add_post(path, self.infer)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.metrics_page)
        app.cleanup_ctx.append(self._lifetime)
        return app

    async def _lifetime(self, _app: web.Application) -> AsyncIterator[None]:
        # No total timeout: a request waits in the queue as long as the load makes it.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),  # no cap: the queue is this router's
            timeout=aiohttp.ClientTimeout(total=None),
        )
        watcher = asyncio.create_task(self._watch(), name="router-watch")
        try:
            yield
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            for waiting in self.queue:
                waiting.future.cancel()
            await self._session.close()


@dataclass(frozen=True)
class ServedRouter:
    url: str
    port: int
    router: Router


@contextlib.asynccontextmanager
async def serve_router(
    router: Router, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[ServedRouter]:
    """Serve `router` on host:port (0: any free port, loopback only) until the block exits."""
    if not is_loopback_host(host):
        raise RouterError(f"--host {host}: the router listens on loopback only (127.0.0.1, ::1)")
    runner = web.AppRunner(router.app(), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = _bound_port(runner)
        yield ServedRouter(f"http://{host}:{bound}", bound, router)
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    """`python -m simulator.live.router --backends FILE --slots N [--port P]`: serve until
    SIGTERM or SIGINT; an unusable argument is one line on stderr and exit code 2."""
    import argparse  # noqa: PLC0415 - the command line only
    import signal  # noqa: PLC0415
    import sys  # noqa: PLC0415

    p = argparse.ArgumentParser(prog="python -m simulator.live.router", description=__doc__)
    p.add_argument("--backends", required=True, type=Path, help="the FileRegistrar's file")
    p.add_argument("--slots", required=True, type=int, help="concurrency slots per replica")
    p.add_argument("--host", default="127.0.0.1", help="loopback only (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    p.add_argument("--poll-s", type=float, default=0.2, help="how often the file is looked at")
    p.add_argument(
        "--time-scale", type=float, default=1.0, help="latency buckets divided by this (sandbox)"
    )
    args = p.parse_args(argv)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        router = Router(args.backends, args.slots, poll_s=args.poll_s, time_scale=args.time_scale)
        async with serve_router(router, host=args.host, port=args.port) as served:
            print(f"router: {args.slots} slots a replica from {args.backends} on {served.url}",
                  flush=True)  # fmt: skip
            await stop.wait()

    try:
        asyncio.run(run())
    except (ValueError, OSError) as error:  # RouterError, bind errors
        print(f"router: {str(error).splitlines()[0]}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
