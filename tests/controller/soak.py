"""A soak of the live controller: many targets on a short interval, for minutes, in real time.

Shared by tests/controller/test_soak.py (60 s in the suite) and bench/controller_soak.py (20
minutes). What runs: `ControlLoop.run()` (a task per target, the state writer) with leader
election on a Lease (its own Kubernetes client) and the ConfigMap state store, its HTTP app
(/metrics and /status scraped every second, as Prometheus and a dashboard would), a real
Prometheus (the caller's) and the fake Kubernetes API in a process of its own (which forgets
the requests it answered, so its memory is not ours). Every target reads the `llm/llama`
series of the caller's exporter (the target's `labels` say so) and scales a Deployment of its
own. Once a second the soak samples this process: resident memory (/proc/self/statm), asyncio
tasks, open file descriptors.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import kmock
from aiohttp import web

from controller.actuators.kubernetes import (
    ClusterReads,
    KubernetesActuator,
    WorkloadRef,
    kubernetes_api,
)
from controller.app import create_app
from controller.clock import SystemClock
from controller.config import PrometheusConfig, TargetConfig
from controller.leader import LeaderElector
from controller.loop import ControlLoop, LoopSettings
from controller.prometheus import PrometheusSource
from controller.run import freeze_heap
from controller.state_store import ConfigMapStore
from tests.controller.fake_kube import FakeKube, rbac_rules, write_kubeconfig
from tests.controller.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "llm"
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class Sample:
    at_s: float  # since the start
    rss_mb: float
    tasks: int
    fds: int


def sample(started: float) -> Sample:
    with open("/proc/self/statm") as statm:
        resident = int(statm.read().split()[1]) * PAGE / 2**20
    return Sample(
        time.monotonic() - started,
        resident,
        len(asyncio.all_tasks()),
        len(os.listdir("/proc/self/fd")),
    )


def slope_per_min(samples: list[Sample], field: str) -> float:
    xs = [s.at_s for s in samples]
    ys = [float(getattr(s, field)) for s in samples]
    return statistics.linear_regression(xs, ys).slope * 60.0


# --- the fake Kubernetes API, in a process of its own ----------------------------------------


def names(n: int) -> list[str]:
    return [f"soak-{i:03d}" for i in range(n)]


async def serve_kube(directory: Path, n: int, namespace: str = NAMESPACE) -> None:
    """FakeKube with `n` Deployments; writes kubeconfig and ready.json, serves until killed."""

    @attrs.define(kw_only=True)
    class ForgetfulKube(FakeKube):
        served: int = 0

        async def _handle(self, request: kmock.Request) -> Any:
            self.served += 1
            try:
                return await super()._handle(request)
            finally:
                # kmock keeps every request for assertions and matches each new one against
                # that whole history; forget answered ones so a long run stays flat.
                self._requests.remove(request)

    fake = ForgetfulKube(rbac=rbac_rules())
    async with fake, kmock.Server(fake):
        for name in names(n):
            fake.add_workload(name, namespace=namespace)
        await fake.settle(timeout_s=600)
        write_kubeconfig(fake, directory)

        async def count(request: web.Request) -> web.Response:
            return web.json_response({"requests": fake.served})

        app = web.Application()
        app.router.add_get("/count", count)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        (directory / "ready.json").write_text(json.dumps({"count_port": port}))
        await asyncio.Event().wait()


def start_kube(directory: Path, n: int) -> subprocess.Popen[bytes]:
    log = (directory / "kube.log").open("wb")
    code = (
        "import asyncio, pathlib; from tests.controller.soak import serve_kube; "
        f"asyncio.run(serve_kube(pathlib.Path({str(directory)!r}), {n}))"
    )
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=log, stderr=log)


def wait_ready(directory: Path, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not (directory / "ready.json").exists():
        if process.poll() is not None or time.monotonic() > deadline:
            tail = (directory / "kube.log").read_text()[-800:]
            raise RuntimeError(f"the fake Kubernetes API did not start: {tail}")
        time.sleep(0.1)


# --- the soak --------------------------------------------------------------------------------


def soak_targets(n: int, interval_s: float) -> list[TargetConfig]:
    return [
        TargetConfig.model_validate(
            {
                "name": name,
                "scale_target": {"kind": "Deployment", "namespace": NAMESPACE, "name": name},
                "labels": {"name": "llama"},  # every target reads llm/llama's series
                "signals": {"preset": "vllm"},
                "policy": {
                    "policy": "hpa",
                    "metric": "in_flight",
                    "target_per_replica": 2,
                    "max_replicas": 10,
                },
                "interval_s": interval_s,
                "staleness_s": 60,
            }
        )
        for name in names(n)
    ]


async def soak(
    *,
    prometheus_url: str,
    kubeconfig: Path,
    targets: int,
    interval_s: float,
    duration_s: float,
    progress: Any = None,
) -> tuple[list[Sample], dict[str, Any]]:
    """Run the controller for `duration_s`; the samples (one a second) and some counts."""
    clock = SystemClock()
    settings = LoopSettings(state_write_interval_s=2.0)
    config = str(kubeconfig)
    async with (
        aiohttp.ClientSession() as session,
        await kubernetes_api(kubeconfig=config, max_connections=settings.max_in_flight) as api,
        await kubernetes_api(kubeconfig=config, max_connections=2) as lease_api,
    ):
        reads = ClusterReads(api, clock=clock)
        configs = soak_targets(targets, interval_s)
        actuators = {
            t.name: KubernetesActuator(
                WorkloadRef("Deployment", NAMESPACE, t.name), api=api, clock=clock, reads=reads
            )
            for t in configs
        }
        lease = LeaderElector(
            api=lease_api, namespace="default", name="replicast", identity="soak", clock=clock
        )
        store = ConfigMapStore(
            api, namespace="default", prefix="replicast", identity="soak", clock=clock,
            write_interval_s=settings.state_write_interval_s,
        )  # fmt: skip
        source = PrometheusSource(PrometheusConfig(url=prometheus_url), session=session)
        loop = ControlLoop(
            configs, source=source, actuators=actuators, leadership=lease, store=store,
            clock=clock, settings=settings,
        )  # fmt: skip
        runner = web.AppRunner(create_app(loop, elector=lease), access_log=None)
        freeze_heap()
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        samples: list[Sample] = []
        scrapes = 0
        started = time.monotonic()
        try:
            while time.monotonic() - started < duration_s:
                await asyncio.sleep(1.0)
                for path in ("/metrics", "/status"):
                    async with session.get(f"http://127.0.0.1:{port}{path}") as response:
                        await response.read()
                        scrapes += response.status == 200
                samples.append(sample(started))
                if progress is not None:
                    progress(samples[-1])
        finally:
            await runner.cleanup()  # the loop stops, saves, then the Lease is released
        decisions = sum(t.sequence for t in loop.targets.values())
        counts = {
            "decisions": decisions,
            "scrapes": scrapes,
            "leader_lost": 0 if lease.renewals else 1,
            "state_writes": store.writes,
            "scaled": sum(t.actions["scaled"] for t in loop.targets.values()),
            "failed": sum(t.actions["failed"] for t in loop.targets.values()),
        }
        return samples, counts
