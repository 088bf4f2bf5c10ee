"""One controller, many targets: `ControlLoop.round()` on a real Prometheus and a fake Kubernetes.

    .venv/bin/python bench/controller_scale.py --targets 500 2000 --rounds 20

Each size runs in a child process of its own (so its peak RSS is its own), one after the
other, and a table compares them at the end: round time, CPU per round and its ratio to the
first size's, peak RSS, and the policies' state per target and in total (what the state store
writes: controller/state_store.py).

What runs (loopback only, every process stopped at the end):

- an exporter subprocess serving vLLM-like metrics (the `vllm` preset's names; labels
  namespace/name/pod) for N targets, one replica each, with steady traffic;
- the real Prometheus binary on 127.0.0.1 scraping it every second (temp config and data);
- the fake Kubernetes API (tests/controller/fake_kube.py, kmock, enforcing deploy/rbac.yaml)
  in its own subprocess with N Deployments in `llm`, counting every request it serves;
- in this process: N targets (preset vllm, hpa on in_flight, 2 per replica, interval 15 s),
  the real `PrometheusSource` and one `KubernetesActuator` per target, driven by
  `ControlLoop.round()` `--rounds` times on a fake clock that moves 15 s per round, with
  the heap frozen after setup as `replicast run` does (`controller.run.freeze_heap`) and the
  state kept in the ConfigMap store (16 buckets) on the fake API, as the leader does.

The policies see the fake clock; Prometheus is asked at the wall clock (less one second, so
every scrape is in), because a fake clock 15 s per round ahead would query a future without
samples. Every Prometheus and Kubernetes call is real HTTP on 127.0.0.1. Figures are printed,
never asserted. Every target runs 2 requests (1 replica is right), except one in 50 which runs
3 and scales to 2 replicas in round 1 (PATCH /scale + an Event); every later round holds.
(Half the targets scaling at once overloads the fake, not the controller: its deployment
controller rescans every object on every write.)
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import kmock
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from controller.actuators.kubernetes import (  # noqa: E402 (the repository root on sys.path)
    ClusterReads,
    KubernetesActuator,
    WorkloadRef,
    kubernetes_api,
)
from controller.config import PrometheusConfig, TargetConfig  # noqa: E402
from controller.loop import ControlLoop, SoleInstance  # noqa: E402
from controller.prometheus import PrometheusSource  # noqa: E402
from controller.run import freeze_heap  # noqa: E402
from controller.state_store import ConfigMapStore  # noqa: E402
from tests.controller.fake_kube import (  # noqa: E402
    FakeClock,
    FakeKube,
    rbac_rules,
    write_kubeconfig,
)
from tests.controller.processes import free_port, start_prometheus, stop  # noqa: E402

NAMESPACE = "llm"
INTERVAL_S = 15.0
AIM_ROUND_S = 1.0
AIM_RSS_MB = 150.0  # at 500 targets
AIM_CPU_RATIO = 4.4  # CPU(2,000 targets) / CPU(500)
AIM_CPU_2000_S = 1.0
HPA = {"policy": "hpa", "metric": "in_flight", "target_per_replica": 2, "max_replicas": 10}
# One target in SCALE_EVERY runs 3 requests (wants 2 replicas), the others 2 (1 is right).
SCALE_EVERY = 50
LATENCIES_S = (0.3, 0.7, 1.2, 2.5, 4.0, 0.9, 0.5)


def names(n: int) -> list[str]:
    return [f"model-{i:03d}" for i in range(n)]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


# --- the exporter (a subprocess) -------------------------------------------------------------


async def serve_exporter(port: int, n: int) -> None:
    r = CollectorRegistry()
    labels = ["namespace", "name", "pod"]
    running = Gauge("vllm:num_requests_running", "running", labels, registry=r)
    waiting = Gauge("vllm:num_requests_waiting", "waiting", labels, registry=r)
    kv = Gauge("vllm:kv_cache_usage_perc", "kv cache", labels, registry=r)
    success = Counter("vllm:request_success", "finished", labels, registry=r)
    tokens = Counter("vllm:generation_tokens", "tokens", labels, registry=r)
    latency = Histogram(
        "vllm:e2e_request_latency_seconds", "e2e", labels, registry=r,
        buckets=(0.25, 0.5, 1.0, 2.0, 5.0, 10.0),
    )  # fmt: skip
    children = []
    for i, name in enumerate(names(n)):
        key = (NAMESPACE, name, f"{name}-0")
        running.labels(*key).set(3 if i % SCALE_EVERY == 0 else 2)
        waiting.labels(*key).set(i % 3)
        kv.labels(*key).set(0.5)
        children.append((success.labels(*key), tokens.labels(*key), latency.labels(*key)))

    async def metrics(request: web.Request) -> web.Response:
        body = generate_latest(r)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    cycle = itertools.cycle(LATENCIES_S)
    while True:
        for done, generated, seconds in children:
            done.inc()
            generated.inc(40)
            seconds.observe(next(cycle))
        await asyncio.sleep(0.25)


# --- the fake Kubernetes API (a subprocess) --------------------------------------------------


async def serve_kube(directory: Path, n: int) -> None:
    """FakeKube with `n` Deployments; writes kubeconfig + ready.json (the count port)."""

    @attrs.define(kw_only=True)
    class CountingKube(FakeKube):
        served: int = 0

        async def _handle(self, request: kmock.Request) -> Any:
            self.served += 1
            try:
                return await super()._handle(request)
            finally:
                # kmock keeps every request for assertions and matches each new one against
                # that whole history (O(requests served) per request); forget answered ones.
                self._requests.remove(request)

    fake = CountingKube(rbac=rbac_rules())
    async with fake, kmock.Server(fake):
        for name in names(n):
            fake.add_workload(name, namespace=NAMESPACE)
        await fake.settle(timeout_s=300)
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


# --- process helpers -------------------------------------------------------------------------


def child(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, __file__, *args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )


def instant(url: str, query: str) -> list[Any]:
    data = urllib.parse.urlencode({"query": query, "time": f"{time.time() - 1:.3f}"}).encode()
    with urllib.request.urlopen(f"{url}/api/v1/query", data=data, timeout=5) as response:
        result: list[Any] = json.load(response)["data"]["result"]
        return result


def wait_for(what: str, ready: Any, processes: dict[str, subprocess.Popen[bytes]], home: Path,
             timeout_s: float) -> None:  # fmt: skip
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for name, process in processes.items():
            if process.poll() is not None:
                tail = (home / f"{name}.log").read_text()[-800:]
                raise SystemExit(f"{name} exited ({process.returncode}): {tail}")
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{what}: not ready after {timeout_s:g} s")


def prometheus_yml(exporter_port: int) -> str:
    return (
        "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: exporter\n"
        "    honor_labels: true\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{exporter_port}']}}]\n"
    )


# --- the controller side (this process) ------------------------------------------------------


class WallClockSource:
    """The real PrometheusSource, asked at the wall clock (less 1 s) whatever the fake now is."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    @property
    def stats(self) -> Any:
        return self.inner.stats

    async def read(self, targets: Any, now_s: float) -> dict[str, dict[str, float | None]]:
        result: dict[str, dict[str, float | None]] = await self.inner.read(
            targets, time.time() - 1.0
        )
        return result


def kube_count(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/count", timeout=60) as response:
        value: int = json.load(response)["requests"]
        return value


async def drive(n: int, rounds: int, prom_url: str, home: Path, count_port: int) -> dict[str, Any]:
    targets = [
        TargetConfig.model_validate(
            {
                "name": name,
                "scale_target": {"kind": "Deployment", "namespace": NAMESPACE, "name": name},
                "signals": {"preset": "vllm", "selector": 'namespace="{namespace}"'},
                "policy": HPA,
                "interval_s": INTERVAL_S,
            }
        )
        for name in names(n)
    ]
    prom_requests = 0

    async def counted(*_: Any) -> None:
        nonlocal prom_requests
        prom_requests += 1

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(counted)
    clock = FakeClock(start_s=time.time())
    durations, cpu, prom_per_round, kube_per_round, actions = [], [], [], [], []
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        api = await kubernetes_api(kubeconfig=str(home / "kubeconfig"))
        async with api:
            source = WallClockSource(
                PrometheusSource(PrometheusConfig(url=prom_url), session=session)
            )
            reads = ClusterReads(api, clock=clock)  # shared, as controller/run.py does
            actuators = {
                t.name: KubernetesActuator(WorkloadRef("Deployment", NAMESPACE, t.name), api=api,
                                           clock=clock, reads=reads)
                for t in targets
            }  # fmt: skip
            store = ConfigMapStore(
                api, namespace=NAMESPACE, prefix="replicast", identity="bench", clock=clock
            )
            loop = ControlLoop(
                targets, source=source, actuators=actuators, clock=clock,
                leadership=SoleInstance(), store=store,
            )  # fmt: skip
            freeze_heap()
            rss_before = rss_mb()
            for _ in range(rounds):
                k0, p0 = await asyncio.to_thread(kube_count, count_port), prom_requests
                started, cpu_started = time.perf_counter(), time.process_time()
                result = await loop.round()
                durations.append(time.perf_counter() - started)
                cpu.append(time.process_time() - cpu_started)
                kube_per_round.append(await asyncio.to_thread(kube_count, count_port) - k0)
                prom_per_round.append(prom_requests - p0)
                tally: dict[str, int] = {}
                for outcome in result.outcomes:
                    tally[outcome.action] = tally.get(outcome.action, 0) + 1
                missing = sum(1 for t in loop.targets.values() if t.missing)
                actions.append((len(result.outcomes), tally, missing))
                clock.advance(INTERVAL_S)
    return {
        "durations": durations,
        "cpu": cpu,
        "prom": prom_per_round,
        "kube": kube_per_round,
        "actions": actions,
        "rss_before": rss_before,
        "rss_peak": rss_mb(),
        "source_errors": dict(source.stats.errors_total),
        "state_bytes": sorted(store.sizes().values()),
        "state_writes": store.writes,
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def report(n: int, figures: dict[str, Any], setup_s: float, wall_s: float) -> dict[str, Any]:
    d, prom, kube = figures["durations"], figures["prom"], figures["kube"]
    p50, p99 = statistics.median(d), percentile(d, 0.99)
    peak = figures["rss_peak"]
    print(f"targets: {n}, rounds: {len(d)}, interval {INTERVAL_S:g} s (fake clock)")
    print(f"setup (exporter, Prometheus, fake Kubernetes with {n} Deployments): {setup_s:.1f} s")
    for i, (ticks, tally, missing) in enumerate(figures["actions"]):
        print(
            f"  round {i + 1:2d}: {d[i]:6.3f} s ({figures['cpu'][i]:.3f} s CPU here), "
            f"{ticks} ticks {tally}, "
            f"{prom[i]} Prometheus requests, {kube[i]} Kubernetes requests, "
            f"{missing} target(s) with missing signals"
        )
    print(f"round duration p50: {p50:.3f} s   p99: {p99:.3f} s   max: {max(d):.3f} s"
          f"   (aim: < {AIM_ROUND_S:g} s)")  # fmt: skip
    cpu = statistics.median(figures["cpu"])
    print(f"controller CPU per round (this process, user+sys): {cpu:.3f} s median; the rest "
          "of a round is waiting on the fake Kubernetes API and Prometheus")  # fmt: skip
    print(f"Prometheus HTTP requests per round: {statistics.median(prom):g} median "
          f"(min {min(prom)}, max {max(prom)})")  # fmt: skip
    print(f"Kubernetes API requests per round: {statistics.median(kube):g} median "
          f"(min {min(kube)}, max {max(kube)}; first round {kube[0]})")  # fmt: skip
    print(f"peak RSS of the controller process: {peak:.0f} MB; "
          f"{figures['rss_before']:.0f} MB before the first round")  # fmt: skip
    sizes = figures["state_bytes"]
    total = sum(sizes)
    print(f"policy state: {statistics.median(sizes):.0f} bytes per target median (max "
          f"{max(sizes)}), {total / 1e3:.0f} kB in all, in 16 ConfigMap buckets "
          f"(~{total / 16 / 1e3:.0f} kB each, limit 1,024 kB); {figures['state_writes']} "
          f"bucket writes in {len(d)} rounds")  # fmt: skip
    print(f"Prometheus query errors: {figures['source_errors'] or 'none'}")
    print(f"whole run: {wall_s:.1f} s")
    return {
        "targets": n, "p50_s": p50, "p99_s": p99, "cpu_s": cpu, "rss_mb": peak,
        "state_median_b": statistics.median(sizes), "state_total_kb": total / 1e3,
    }  # fmt: skip


def compare(rows: list[dict[str, Any]]) -> None:
    """The sizes side by side, with the ratios the issue's aims are stated in."""
    base = rows[0]
    print("\n| targets | round p50 | round p99 | CPU per round | CPU ratio | targets ratio | "
          "peak RSS | state per target | state in all |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['targets']:,} | {row['p50_s']:.3f} s | {row['p99_s']:.3f} s | "
            f"{row['cpu_s']:.3f} s | {row['cpu_s'] / base['cpu_s']:.2f}x | "
            f"{row['targets'] / base['targets']:.0f}x | {row['rss_mb']:.0f} MB | "
            f"{row['state_median_b']:.0f} B | {row['state_total_kb']:.0f} kB |"
        )
    by = {row["targets"]: row for row in rows}
    if 500 in by:
        rss = by[500]["rss_mb"]
        print(f"aim: peak RSS at 500 targets < {AIM_RSS_MB:g} MB: {rss:.0f} MB, "
              f"{'met' if rss < AIM_RSS_MB else 'NOT met'}")  # fmt: skip
    if 500 in by and 2000 in by:
        ratio = by[2000]["cpu_s"] / by[500]["cpu_s"]
        cpu = by[2000]["cpu_s"]
        print(f"aim: CPU(2,000) / CPU(500) <= {AIM_CPU_RATIO:g}: {ratio:.2f}, "
              f"{'met' if ratio <= AIM_CPU_RATIO else 'NOT met'}")  # fmt: skip
        print(f"aim: a 2,000-target round under {AIM_CPU_2000_S:g} s of CPU: {cpu:.3f} s, "
              f"{'met' if cpu < AIM_CPU_2000_S else 'NOT met'}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--targets", type=int, nargs="+", default=[500])
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--one", type=Path, metavar="RESULT", help=argparse.SUPPRESS)
    p.add_argument("--serve-exporter", type=int, metavar="PORT", help=argparse.SUPPRESS)
    p.add_argument("--serve-kube", type=Path, metavar="DIR", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    n = args.targets[0]
    if args.serve_exporter is not None:
        asyncio.run(serve_exporter(args.serve_exporter, n))
        return 0
    if args.serve_kube is not None:
        asyncio.run(serve_kube(args.serve_kube, n))
        return 0
    if args.one is not None:
        args.one.write_text(json.dumps(run_one(n, args.rounds)))
        return 0
    sizes = " ".join(str(t) for t in args.targets)
    print(f"command: .venv/bin/python bench/controller_scale.py --targets {sizes} "
          f"--rounds {args.rounds}")  # fmt: skip
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="replicast-bench-") as scratch:
        for size in args.targets:
            result = Path(scratch) / f"{size}.json"
            print(f"\n--- {size} targets (a process of its own) ---", flush=True)
            subprocess.run(
                [sys.executable, __file__, "--targets", str(size), "--rounds", str(args.rounds),
                 "--one", str(result)],
                cwd=ROOT, check=True,
            )  # fmt: skip
            rows.append(json.loads(result.read_text()))
    compare(rows)
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


def run_one(n: int, rounds: int) -> dict[str, Any]:
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    started = time.monotonic()
    home = Path(tempfile.mkdtemp(prefix="replicast-bench-"))
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        exporter_port, port = free_port(), free_port()
        (home / "prometheus.yml").write_text(prometheus_yml(exporter_port))
        processes["exporter"] = child(
            ["--serve-exporter", str(exporter_port), "--targets", str(n)], home / "exporter.log"
        )
        processes["kube"] = child(
            ["--serve-kube", str(home), "--targets", str(n)], home / "kube.log"
        )
        processes["prometheus"] = start_prometheus(binary, home, port)
        url = f"http://127.0.0.1:{port}"

        def prometheus_ready() -> bool:
            rates = instant(url, "count(rate(vllm:request_success_total[1m]) > 0)")
            return bool(rates) and int(float(rates[0]["value"][1])) == n

        wait_for("prometheus", prometheus_ready, processes, home, 120)
        wait_for("fake kubernetes", (home / "ready.json").exists, processes, home, 600)
        count_port = json.loads((home / "ready.json").read_text())["count_port"]
        setup_s = time.monotonic() - started
        figures = asyncio.run(drive(n, rounds, url, home, count_port))
        return report(n, figures, setup_s, time.monotonic() - started)
    finally:
        for process in processes.values():
            stop(process)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
