"""The sandbox's processes and what they are seen to do: Prometheus, the router, the controller
(and through it the replicas), the load, and a poller that writes down the timeline.

In: a `SandboxPlan` and an output folder. Out: `Observed` -- every request's outcome, every
replica process (start and end), every change of the routed set, every decision the controller
logged, the router's queue over time and the load generator's own health -- in wall seconds
from the start of the load. Everything listens on 127.0.0.1; every process is started in its
own process group and stopped (SIGTERM, then SIGKILL) on the way out, whatever happened, so
no process outlives the run and every port is freed.

The controller is `replicast run` as a subprocess (`python -m controller.dispatch run`): the
simulator never imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import resource
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp
import numpy as np
import yaml

from simulator.cli.args import UsageError
from simulator.live.loadgen import LoadOptions, LoadSummary, RequestOutcome, run_load
from simulator.live.router import read_backends
from simulator.sandbox.plan import SandboxPlan, controller_config, prometheus_config

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
POLL_S = 0.1  # wall seconds between looks at the processes, the routed set and the queue
STATUS_S = 1.0  # wall seconds between reads of the controller's /status (20 records)


class SandboxError(UsageError):
    """The sandbox cannot run (a missing binary, a process that did not come up): one line."""


@dataclass
class ReplicaProcess:
    pid: int
    port: int
    started_s: float  # wall, from the start of the load (from /proc: exact to 10 ms)
    ended_s: float | None = None
    routed_s: float | None = None  # first seen in the router's backends file


@dataclass
class Observed:
    """What the sandbox saw, in wall seconds from the start of the load."""

    outcomes: list[RequestOutcome] = field(default_factory=list)
    replicas: dict[int, ReplicaProcess] = field(default_factory=dict)  # by pid
    routed: list[tuple[float, int]] = field(default_factory=list)  # (t, backends routed)
    queue: list[tuple[float, float]] = field(default_factory=list)  # (t, router queue depth)
    arrived: list[tuple[float, float]] = field(default_factory=list)  # (t, router arrivals)
    decisions: list[dict[str, Any]] = field(default_factory=list)  # the controller's log lines
    # the controller's decision records (/status: every input, the proposal), by decision id
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    load: LoadSummary | None = None
    cpu_s: float = 0.0  # the load generator's process (this one), user + system
    wall_s: float = 0.0
    load_start_epoch: float = 0.0
    scrape_ages_s: dict[str, float] = field(default_factory=dict)  # by job, at a tick (wall)
    ports: list[int] = field(default_factory=list)  # every port the run used


def free_ports(n: int) -> int:
    """A base port with `n` consecutive free ports on 127.0.0.1 (each bound once, released)."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        if base + n > 65535:
            continue
        try:
            for port in range(base, base + n):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise SandboxError(f"no run of {n} free ports on 127.0.0.1; stop what holds them")


# --- processes -------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def last_line(self) -> str:
        try:
            lines = [x for x in self.log.read_text(errors="replace").splitlines() if x.strip()]
        except OSError:
            return ""
        return lines[-1][:300] if lines else ""

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM its process group, SIGKILL what is left after `timeout_s`."""
        pgid = self.popen.pid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout_s)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)  # the group's leftovers, if any
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5.0)


def start(name: str, argv: list[str], log_dir: Path, cwd: Path | None = None) -> Proc:
    log = log_dir / f"{name}.log"
    with log.open("wb") as out:
        try:
            popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=cwd, start_new_session=True,
            )  # fmt: skip
        except OSError as error:
            raise SandboxError(f"cannot start {name}: {argv[0]}: {error.strerror}") from None
    return Proc(name, popen, log)


async def wait_http(proc: Proc, url: str, timeout_s: float, *, text: str = "") -> None:
    """Until `url` answers 200 (containing `text`); SandboxError with the log's last line."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1.0)) as session:
        while True:
            if proc.popen.poll() is not None:
                raise SandboxError(
                    f"{proc.name} exited with code {proc.popen.returncode}: {proc.last_line()}"
                    f" (log {proc.log})"
                )
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                async with session.get(url) as answer:
                    if answer.status == 200 and text in await answer.text():
                        return
            if time.monotonic() > deadline:
                raise SandboxError(
                    f"{proc.name} did not answer {url} within {timeout_s:g} s: "
                    f"{proc.last_line()} (log {proc.log})"
                )
            await asyncio.sleep(0.1)


def boot_epoch() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise SandboxError("/proc/stat has no btime: the sandbox needs Linux's /proc")


def children_of(pid: int) -> Iterator[tuple[int, list[str], float]]:
    """(pid, argv, start ticks since boot) of each live child of `pid`."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) != pid or fields[0] == "Z":
                continue
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except (OSError, IndexError, ValueError):
            continue
        yield int(entry.name), argv, float(fields[19])


# --- the run ---------------------------------------------------------------------------------


@dataclass
class Ports:
    prometheus: int
    router: int
    controller: int
    replicas: int  # base: replica i on replicas + i

    @classmethod
    def pick(cls, max_replicas: int) -> Ports:
        base = free_ports(max_replicas + 3)
        return cls(base, base + 1, base + 2, base + 3)


class Poller:
    """Looks at the replicas, the routed set, the router's queue and the decision log every
    POLL_S; `Observed` gets what changed."""

    def __init__(
        self,
        observed: Observed,
        controller: Proc,
        backends: Path,
        urls: tuple[str, str],
        m: float,
    ) -> None:
        self.observed, self.controller, self.backends = observed, controller, backends
        (self.router_url, self.controller_url), self.m = urls, m
        self._status_at = 0.0
        self.boot = boot_epoch()
        self._mtime: int | None = None
        self._log: IO[str] | None = None
        self._log_buffer = ""

    def now(self) -> float:
        return time.time() - self.observed.load_start_epoch

    def look(self) -> None:
        o, now = self.observed, self.now()
        seen = set()
        for pid, argv, ticks in children_of(self.controller.popen.pid):
            if "simulator.emulator" not in argv:
                continue
            seen.add(pid)
            if pid not in o.replicas:
                port = int(argv[argv.index("--port") + 1]) if "--port" in argv else -1
                started = self.boot + ticks / CLOCK_TICKS - o.load_start_epoch
                o.replicas[pid] = ReplicaProcess(pid, port, started)
        for pid, replica in o.replicas.items():
            if replica.ended_s is None and pid not in seen:
                replica.ended_s = now
        self._look_backends()
        self._read_log()

    def _look_backends(self) -> None:
        try:
            stat = self.backends.stat()
        except FileNotFoundError:
            return
        if stat.st_mtime_ns == self._mtime:
            return
        self._mtime = stat.st_mtime_ns
        try:
            routed = read_backends(self.backends)
        except (OSError, ValueError):
            return
        at = stat.st_mtime - self.observed.load_start_epoch  # when the controller wrote it
        self.observed.routed.append((at, len(routed)))
        ports = {int(a.rsplit(":", 1)[1]) for a in routed.values()}
        for replica in self.observed.replicas.values():
            if replica.routed_s is None and replica.ended_s is None and replica.port in ports:
                replica.routed_s = at

    def _read_log(self) -> None:
        if self._log is None:
            try:
                self._log = self.controller.log.open(errors="replace")
            except OSError:
                return
        self._log_buffer += self._log.read()
        *lines, self._log_buffer = self._log_buffer.split("\n")
        for line in lines:
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and record.get("event") == "decision":
                    record["t_s"] = float(record["time"]) - self.observed.load_start_epoch
                    self.observed.decisions.append(record)

    async def queue_depth(self, session: aiohttp.ClientSession) -> None:
        with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError, ValueError):
            async with session.get(f"{self.router_url}/metrics") as answer:
                text = await answer.text()
            now = self.now()
            for line in text.splitlines():
                if line.startswith("replicast_router_queue_depth "):
                    self.observed.queue.append((now, float(line.split()[-1])))
                elif line.startswith("replicast_router_requests_total "):
                    self.observed.arrived.append((now, float(line.split()[-1])))

    async def status_records(self, session: aiohttp.ClientSession) -> None:
        """The controller's recent decision records (/status keeps the last 20): read every
        STATUS_S, so every decision's inputs are kept."""
        if time.monotonic() - self._status_at < STATUS_S:
            return
        self._status_at = time.monotonic()
        with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError, ValueError):
            async with session.get(f"{self.controller_url}/status") as answer:
                body = await answer.json()
            for target in body.get("targets", {}).values():
                for entry in target.get("records", []):
                    if isinstance(entry, dict) and isinstance(entry.get("record"), dict):
                        self.observed.records[str(entry.get("decision_id"))] = entry["record"]

    async def run(self, stop: asyncio.Event, on_tick: Callable[[], None] | None) -> None:
        timeout = aiohttp.ClientTimeout(total=1.0)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not stop.is_set():
                self.look()
                await self.queue_depth(session)
                await self.status_records(session)
                if on_tick is not None:
                    on_tick()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), POLL_S)
            self.look()
            self._status_at = 0.0  # the last decisions too
            await self.status_records(session)

    def close(self) -> None:
        if self._log is not None:
            self._log.close()


def find_prometheus() -> str:
    found = shutil.which("prometheus")
    if found is None:
        raise SandboxError(
            "prometheus: not on PATH; install it (Debian: apt-get install -y prometheus)"
        )
    return found


@contextlib.asynccontextmanager
async def processes(plan: SandboxPlan, run_dir: Path) -> AsyncIterator[tuple[Ports, list[Proc]]]:
    """Prometheus, the router and the controller up and answering; all stopped on exit."""
    prometheus = find_prometheus()
    python = plan.options.python
    max_replicas = plan.max_replicas
    ports = Ports.pick(max_replicas)
    backends = run_dir / "backends.json"
    model_file = run_dir / "model.yaml"
    warm_file = run_dir / "warm"  # removed once the initial replicas are routed (run_sandbox)
    warm_file.touch()
    model_file.write_text(yaml.safe_dump({**plan.model_spec, "sku": None, "platform": None}))
    config = controller_config(
        plan,
        prometheus_url=f"http://127.0.0.1:{ports.prometheus}",
        base_port=ports.replicas,
        backends_file=str(backends),
        model_file=str(model_file),
        warm_file=str(warm_file),
    )
    (run_dir / "controller.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    scrape = prometheus_config(
        plan,
        replica_ports=[ports.replicas + i for i in range(max_replicas)],
        router_port=ports.router,
        controller_port=ports.controller,
    )
    (run_dir / "prometheus.yml").write_text(yaml.safe_dump(scrape, sort_keys=False))
    procs: list[Proc] = []
    tsdb = run_dir / "prometheus-data"
    try:
        procs.append(
            start(
                "prometheus",
                [
                    prometheus,
                    f"--config.file={run_dir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tsdb}",
                    f"--web.listen-address=127.0.0.1:{ports.prometheus}",
                    "--log.level=warn",
                ],
                run_dir,
            )
        )
        procs.append(
            start(
                "router",
                [
                    python,
                    "-m",
                    "simulator.live.router",
                    "--backends",
                    str(backends),
                    "--slots",
                    str(plan.model().slots_per_replica),
                    "--port",
                    str(ports.router),
                    "--time-scale",
                    f"{plan.m:g}",
                    "--poll-s",
                    "0.05",
                ],
                run_dir,
            )
        )
        procs.append(
            start(
                "controller",
                [
                    python,
                    "-m",
                    "controller.dispatch",
                    "run",
                    str(run_dir / "controller.yaml"),
                    "--no-leader-election",
                    "--listen",
                    f"127.0.0.1:{ports.controller}",
                    "--shutdown-grace-s",
                    "20",
                    # records without scaling until the load starts (`act`), so a policy that
                    # sees no traffic (knative) does not remove the initial replicas first
                    "--dry-run",
                    "--admin",
                ],
                run_dir,
            )
        )
        prom, router, controller = procs
        await wait_http(prom, f"http://127.0.0.1:{ports.prometheus}/-/ready", 60.0)
        await wait_http(router, f"http://127.0.0.1:{ports.router}/healthz", 30.0)
        await wait_http(controller, f"http://127.0.0.1:{ports.controller}/healthz", 60.0)
        yield ports, procs
    finally:
        for proc in reversed(procs):  # the controller first: it stops its replicas
            proc.stop()
        shutil.rmtree(tsdb, ignore_errors=True)


async def wait_routed(proc: Proc, backends: Path, n: int, timeout_s: float) -> None:
    """Until the controller has routed `n` replicas (the initial ones are ready)."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(OSError, ValueError):
            if len(read_backends(backends)) >= n:
                return
        if proc.popen.poll() is not None:
            raise SandboxError(f"the controller exited: {proc.last_line()} (log {proc.log})")
        if time.monotonic() > deadline:
            raise SandboxError(
                f"{n} initial replica(s) not ready within {timeout_s:.0f} s; see the logs in "
                f"{backends.parent} (controller.log: {proc.last_line()})"
            )
        await asyncio.sleep(0.1)


def decisions_in(log: Path) -> list[dict[str, Any]]:
    out = []
    with contextlib.suppress(OSError):
        for line in log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and record.get("event") == "decision":
                    out.append(record)
    return out


async def next_tick(controller: Proc, interval_s: float, timeout_s: float) -> float:
    """The epoch of the controller's next tick, from the ticks it has logged: the load starts
    there, so ticks fall at interval, 2 x interval, ... into it, as in the simulator."""
    deadline = time.monotonic() + timeout_s
    while True:
        ticks = [float(d["now_s"]) for d in decisions_in(controller.log) if "now_s" in d]
        if len(ticks) >= 2:
            last = ticks[-1]
            step = (ticks[-1] - ticks[0]) / (len(ticks) - 1) if len(ticks) > 1 else interval_s
            ahead = max(1, math.ceil((time.time() + 0.05 - last) / step))
            return last + ahead * step
        if time.monotonic() > deadline:
            raise SandboxError(f"the controller logged no decision: {controller.last_line()}")
        await asyncio.sleep(0.05)


async def scrape_ages(prometheus_url: str, ticks: list[float]) -> dict[str, float]:
    """The mean age, at the controller's ticks, of the newest scrape of each job ("router",
    "replicas"; Prometheus scrapes each target at a phase of its own), wall seconds."""
    up = 'up{job=~"router|replicas"}'
    query = f"timestamp({up}) and {up} == 1"  # timestamp() of a raw selector: the scrape's
    ages: dict[str, list[float]] = {}
    timeout = aiohttp.ClientTimeout(total=5.0)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for at in ticks:
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError, ValueError):
                url = f"{prometheus_url}/api/v1/query"
                async with session.get(url, params={"query": query, "time": f"{at:.3f}"}) as r:
                    body = await r.json()
                for series in body.get("data", {}).get("result", []):
                    job = str(series.get("metric", {}).get("job", ""))
                    ages.setdefault(job, []).append(at - float(series["value"][1]))
    good = {job: [a for a in values if a >= -0.01] for job, values in ages.items()}
    return {job: float(np.mean(values)) for job, values in good.items() if values}


async def act(controller_url: str) -> None:
    """Switch the controller's dry run off (POST /dry-run): from now on it scales."""
    timeout = aiohttp.ClientTimeout(total=5.0)
    url = f"{controller_url}/dry-run"
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(url, json={"dry_run": False}) as answer,
    ):
        if answer.status != 200:
            raise SandboxError(f"the controller refused POST /dry-run: {answer.status}")


async def save_status(url: str, path: Path) -> None:
    """The controller's /status (its recent decisions with every input) for the record."""
    with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
        timeout = aiohttp.ClientTimeout(total=5.0)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as answer:
            path.write_bytes(await answer.read())


async def run_sandbox(
    plan: SandboxPlan, run_dir: Path, *, on_tick: Callable[[Observed], None] | None = None
) -> Observed:
    """Start everything, wait for the initial replicas, replay the load, stop everything."""
    run_dir.mkdir(parents=True, exist_ok=True)
    observed = Observed()
    async with processes(plan, run_dir) as (ports, procs):
        max_replicas = plan.max_replicas
        observed.ports = [ports.prometheus, ports.router, ports.controller,
                          *range(ports.replicas, ports.replicas + max_replicas)]  # fmt: skip
        controller = procs[2]
        backends = run_dir / "backends.json"
        startup_wall_s = float(plan.model_spec["startup"]["fixed_s"]) / plan.m
        await wait_routed(controller, backends, plan.initial_replicas, startup_wall_s + 60.0)
        (run_dir / "warm").unlink()  # every replica started from now on starts cold
        router_url = f"http://127.0.0.1:{ports.router}"
        tick = await next_tick(controller, plan.interval_s / plan.m, 30.0)
        await asyncio.sleep(max(0.0, tick - time.time() - 0.01))
        await act(f"http://127.0.0.1:{ports.controller}")
        observed.load_start_epoch = time.time()
        controller_url = f"http://127.0.0.1:{ports.controller}"
        poller = Poller(observed, controller, backends, (router_url, controller_url), plan.m)
        stop = asyncio.Event()
        ticker = None if on_tick is None else (lambda: on_tick(observed))
        watch = asyncio.create_task(poller.run(stop, ticker), name="sandbox-poller")
        wall_s = plan.wall_s
        options = LoadOptions(
            max_requests=5_000_000,
            max_duration_s=wall_s + 1.0,
            max_in_flight=20_000,
            request_timeout_s=max(60.0, 1800.0 / plan.m),
        )
        cpu0 = _cpu_s()
        began = time.monotonic()
        arrivals_rng = np.random.default_rng(plan.options.seed).spawn(3)[0]  # simulator.run's
        try:
            observed.load = await run_load(
                plan.profile.time_scale(1.0 / plan.m),
                f"{router_url}/v1/infer",
                options=options,
                rng=arrivals_rng,
                on_outcome=observed.outcomes.append,
            )
        finally:
            observed.cpu_s = _cpu_s() - cpu0
            observed.wall_s = time.monotonic() - began
            stop.set()
            await watch
            poller.close()
        await save_status(f"http://127.0.0.1:{ports.controller}/status", run_dir / "status.json")
        ticks = [float(d["now_s"]) for d in observed.decisions if "now_s" in d]
        sample = ticks[:: max(1, len(ticks) // 60)]
        observed.scrape_ages_s = await scrape_ages(f"http://127.0.0.1:{ports.prometheus}", sample)
    return observed


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
