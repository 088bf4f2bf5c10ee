"""A real Prometheus (the binary, on 127.0.0.1) scraping an in-test vLLM-like exporter.

The exporter is an aiohttp app serving prometheus-client gauges, counters and histograms with
`namespace`, `name` and `pod` labels for three targets:

- llm/llama: two replicas (running 3 + 5, waiting 1 + 0), steady traffic;
- llm/mistral: one replica (running 2, waiting 4), steady traffic;
- llm/idle: one replica, histogram and counter present but never observed (p95 is NaN).

It runs in its own process for the whole session, so scrapes keep succeeding between tests
and nothing a test patches in this process (policies.testing traps time.monotonic) reaches
it. Prometheus scrapes it every second; the fixture waits (polling /api/v1/query) until rates
exist for the busy replicas, and stops both processes at the end.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from kubernetes_asyncio.client import ApiClient
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from tests.controller.fake_kube import FakeClock, FakeKube, serving
from tests.controller.processes import free_port, start_prometheus, stop
from tests.controller.stories import StubSource

ROOT = Path(__file__).resolve().parents[2]
INSTALL_HINT = "apt-get install -y prometheus"
STARTUP_TIMEOUT_S = 30.0
SETTLE_S = 1.0

# (namespace, name, pod, running, waiting, busy)
REPLICAS = (
    ("llm", "llama", "llama-0", 3, 1, True),
    ("llm", "llama", "llama-1", 5, 0, True),
    ("llm", "mistral", "mistral-0", 2, 4, True),
    ("llm", "idle", "idle-0", 0, 0, False),
)
BUSY_REPLICAS = sum(1 for r in REPLICAS if r[5])
LATENCIES_S = (0.3, 0.7, 1.2, 2.5, 4.0, 0.9, 0.5)


class Exporter:
    """vLLM-like metrics for the replicas in REPLICAS, with steady traffic on the busy ones."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["namespace", "name", "pod"]
        r = self.registry
        self.running = Gauge("vllm:num_requests_running", "running", labels, registry=r)
        self.waiting = Gauge("vllm:num_requests_waiting", "waiting", labels, registry=r)
        self.success = Counter("vllm:request_success", "finished", labels, registry=r)
        self.latency = Histogram(
            "vllm:e2e_request_latency_seconds", "e2e", labels, registry=r,
            buckets=(0.25, 0.5, 1.0, 2.0, 5.0, 10.0),
        )  # fmt: skip
        for namespace, name, pod, running, waiting, _ in REPLICAS:
            self.running.labels(namespace, name, pod).set(running)
            self.waiting.labels(namespace, name, pod).set(waiting)
            self.success.labels(namespace, name, pod)
            self.latency.labels(namespace, name, pod)

    async def metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def serve_traffic(self) -> None:
        latencies = itertools.cycle(LATENCIES_S)
        while True:
            for namespace, name, pod, _, _, busy in REPLICAS:
                if busy:
                    self.success.labels(namespace, name, pod).inc()
                    self.latency.labels(namespace, name, pod).observe(next(latencies))
            await asyncio.sleep(0.05)


async def serve_exporter(port: int) -> None:
    """Serve /metrics on 127.0.0.1:port until the process is terminated."""
    exporter = Exporter()
    app = web.Application()
    app.router.add_get("/metrics", exporter.metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await exporter.serve_traffic()


def start_exporter(port: int, log_path: Path) -> subprocess.Popen[bytes]:
    code = (
        "import asyncio; from tests.controller.conftest import serve_exporter; "
        f"asyncio.run(serve_exporter({port}))"
    )
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-c", code], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )


@dataclass(frozen=True)
class RunningPrometheus:
    url: str
    exporter_url: str
    log_path: Path


def prometheus_binary(environ: dict[str, str] | None = None) -> str:
    """$REPLICAST_PROMETHEUS_BIN, else `prometheus` on $PATH; fails with the install command."""
    env = dict(os.environ) if environ is None else environ
    given = env.get("REPLICAST_PROMETHEUS_BIN")
    found = given if given else shutil.which("prometheus", path=env.get("PATH", os.defpath))
    if found and Path(found).is_file() and os.access(found, os.X_OK):
        return found
    pytest.fail(f"the prometheus binary is not installed; install it with: {INSTALL_HINT}")


def instant(url: str, query: str, time_s: float) -> list[dict[str, object]]:
    """A blocking /api/v1/query (for the fixture's readiness poll only)."""
    data = urllib.parse.urlencode({"query": query, "time": f"{time_s:.3f}"}).encode()
    with urllib.request.urlopen(f"{url}/api/v1/query", data=data, timeout=2) as response:
        result: list[dict[str, object]] = json.load(response)["data"]["result"]
        return result


def _ready(url: str) -> bool:
    """Rates and gauges exist SETTLE_S ago (tests read there: every scrape before it is in)."""
    time_s = time.time() - SETTLE_S
    try:
        rates = instant(url, "count(rate(vllm:request_success_total[1m]) > 0)", time_s)
        gauges = instant(url, "count(vllm:num_requests_running)", time_s)
    except OSError:
        return False
    counts = [int(float(r["value"][1])) for r in (*rates, *gauges)]  # type: ignore[index]
    return counts == [BUSY_REPLICAS, len(REPLICAS)]


def _wait_until_ready(url: str, processes: dict[str, subprocess.Popen[bytes]], home: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        for name, process in processes.items():
            if process.poll() is not None:
                log = (home / f"{name}.log").read_text()[-800:]
                pytest.fail(f"{name} exited ({process.returncode}): {log}")
        if _ready(url):
            return
        time.sleep(0.2)
    log = (home / "prometheus.log").read_text()[-800:]
    pytest.fail(f"no data in prometheus after {STARTUP_TIMEOUT_S:g} s: {log}")


def _prometheus_yml(exporter_port: int) -> str:
    return (
        "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: exporter\n"
        "    honor_labels: true\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{exporter_port}']}}]\n"
    )


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPrometheus]:
    binary = prometheus_binary()
    home = tmp_path_factory.mktemp("prometheus")
    exporter_port, port = free_port(), free_port()
    (home / "prometheus.yml").write_text(_prometheus_yml(exporter_port))
    processes = {"exporter": start_exporter(exporter_port, home / "exporter.log")}
    try:
        processes["prometheus"] = start_prometheus(binary, home, port)
        url = f"http://127.0.0.1:{port}"
        _wait_until_ready(url, processes, home)
        yield RunningPrometheus(url, f"http://127.0.0.1:{exporter_port}", home / "prometheus.log")
    finally:
        for process in processes.values():
            stop(process)


# --- the fake Kubernetes API (tests/controller/fake_kube.py), shared by the controller tests ---


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest_asyncio.fixture
async def kube(clock: FakeClock, tmp_path: Path) -> AsyncIterator[tuple[FakeKube, ApiClient]]:
    async with serving(clock, tmp_path) as served:
        yield served


@pytest.fixture
def fake(kube: tuple[FakeKube, ApiClient]) -> FakeKube:
    return kube[0]


@pytest.fixture
def source() -> StubSource:
    """What Prometheus would answer, set per test (tests/controller/stories.py)."""
    return StubSource()
