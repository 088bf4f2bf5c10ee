"""The `local` actuator: replica processes on this machine, for the sandbox and end-to-end tests.

In: a command template -- an argv list whose `{port}`, `{index}`, `{host}` and `{name}` are
filled per replica, e.g. `[sys.executable, "-m", "simulator.emulator", "--port", "{port}"]`
(the controller runs whatever command it is given; it imports no server) -- a base port, an
injected clock and optionally an aiohttp session and a `Registrar`. Out: replica `i` is the
process started from the template with port `base_port + i` on 127.0.0.1, named `{name}-{i}`.

- `current()` reaps exited processes and probes each running one's readiness endpoint
  (`GET http://127.0.0.1:{port}/readyz`; 200 is ready): ready, or starting for at most
  `start_timeout_s`. A replica that exits is started again after the next of
  `restart_delays_s`; after that many restarts without ever becoming ready it stays down. Exits
  and stuck starts are reported as a CapacityExhausted condition (their log's last line in the
  message), which forbids scaling up until they recover: a command that exits at once is
  reported, never retried forever.
- `initial_replicas` (the config's `replicas`, like a Deployment's spec.replicas) are started
  by the first read, so a policy that holds at zero (hpa) has something to scale.
- `scale(n)` starts the lowest missing indices and stops the highest first: each victim is
  deregistered, then its process group gets SIGTERM, and SIGKILL after `stop_timeout_s`.
- `addresses()`: the ready replicas as `{name: "127.0.0.1:port"}`, for a router; with a
  registrar, each read also registers the ready replicas and deregisters the others.
- `close()` stops every replica (and anything each started: every replica leads its own
  process group) and waits for them, so no process outlives the actuator. A controller killed
  with SIGKILL cannot do that: its replicas keep their ports, and a new start on one exits
  with the server's bind error (shown in the condition).

Replica output goes to `{log_dir}/{name}-{index}.log` (a temporary directory by default,
removed on close).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import aiohttp

from controller.actuators.base import (
    Clock,
    ConditionType,
    PermanentError,
    ScaleRefusedError,
    SystemClock,
    WorkloadCondition,
    WorkloadState,
)

if TYPE_CHECKING:
    from controller.registrars import Registrar

logger = logging.getLogger(__name__)

PLACEHOLDER = re.compile(r"\{(port|index|host|name)\}")
HOST = "127.0.0.1"  # replicas listen on loopback only


@dataclass(frozen=True, slots=True)
class LocalSettings:
    """Timings of the local actuator, in seconds; retries are this data (STYLE 8)."""

    start_timeout_s: float = 120.0  # not ready by then: reported, no longer counted as starting
    stop_timeout_s: float = 10.0  # SIGTERM, then SIGKILL after this
    probe_timeout_s: float = 1.0
    ready_path: str = "/readyz"
    restart_delays_s: tuple[float, ...] = (1.0, 5.0, 30.0)  # one restart per delay, then down


@dataclass(slots=True)
class _Replica:
    index: int
    name: str
    port: int
    process: asyncio.subprocess.Process
    started_s: float
    ready: bool = False


@dataclass(slots=True)
class _Failure:
    exits: int  # exits since the replica was last ready
    exited_s: float
    message: str


class LocalActuator:
    """`current()` and `scale(n, reason=...)` over local processes; see the module docstring."""

    def __init__(
        self,
        command_template: Sequence[str],
        *,
        base_port: int,
        clock: Clock | None = None,
        session: aiohttp.ClientSession | None = None,
        settings: LocalSettings | None = None,
        name: str = "local",
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        log_dir: str | Path | None = None,
        registrar: Registrar | None = None,
        initial_replicas: int = 0,
    ) -> None:
        self.command_template = tuple(command_template)
        if not any("{port}" in arg for arg in self.command_template):
            raise PermanentError(
                f"local {name}: command_template must contain {{port}} (each replica listens "
                f"on its own port); got {list(self.command_template)}"
            )
        if not 1 <= base_port <= 65535:
            raise PermanentError(f"local {name}: base_port must be 1..65535 (got {base_port})")
        self.base_port = base_port
        self.clock = clock if clock is not None else SystemClock()
        self.settings = settings if settings is not None else LocalSettings()
        self.name = name
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.registrar = registrar
        self._session = session
        self._own_session = session is None
        self._own_log_dir = log_dir is None
        self._log_dir = Path(log_dir) if log_dir is not None else None
        if initial_replicas < 0:
            raise PermanentError(
                f"local {name}: initial_replicas must be >= 0 (got {initial_replicas})"
            )
        self._desired = initial_replicas  # started by the first read
        self._replicas: dict[int, _Replica] = {}
        self._failures: dict[int, _Failure] = {}
        self._routed: dict[str, str] = {}
        self._groups: set[int] = set()  # process groups started and not known gone
        self._lock = asyncio.Lock()  # one read or scale at a time (a status page may read too)

    @property
    def target(self) -> str:
        return f"local {self.name}"

    def replica_name(self, index: int) -> str:
        return f"{self.name}-{index}"

    def addresses(self) -> dict[str, str]:
        """The ready replicas as of the last read: {name: "127.0.0.1:port"}."""
        return {r.name: f"{HOST}:{r.port}" for r in self._sorted() if r.ready}

    def pids(self) -> dict[int, int]:
        """Running replica processes: {index: pid}."""
        return {r.index: r.process.pid for r in self._sorted()}

    # --- the protocol ---

    async def current(self) -> WorkloadState:
        async with self._lock:
            return await self._read()

    async def scale(self, replicas: int, *, reason: str) -> None:
        """Start the missing replicas below `replicas`; stop those above it, highest first."""
        if replicas < 0:
            raise ValueError(f"{self.target}: replicas must be >= 0 (got {replicas})")
        async with self._lock:
            await self._scale(replicas, reason)

    async def _scale(self, replicas: int, reason: str) -> None:
        state = await self._read()
        if replicas == self._desired:
            return
        refusal = state.refusal(replicas)
        if refusal is not None:
            raise ScaleRefusedError(self.target, replicas, refusal)
        logger.info("%s: scaling %d -> %d: %s", self.target, self._desired, replicas, reason)
        self._desired = replicas
        for index in [i for i in self._failures if i >= replicas]:
            del self._failures[index]  # scaled away: forgotten
        await self._stop([r for r in self._sorted(reverse=True) if r.index >= replicas])
        await self._fill()

    async def close(self) -> None:
        """Stop every replica and wait for it; close what this actuator made itself."""
        self._desired = 0
        try:
            async with self._lock:
                await self._stop(self._sorted(reverse=True))
        finally:
            self._kill_groups()
            if self._own_session and self._session is not None:
                await self._session.close()
                self._session = None
            if self._own_log_dir and self._log_dir is not None:
                shutil.rmtree(self._log_dir, ignore_errors=True)
                self._log_dir = None

    aclose = close

    async def __aenter__(self) -> LocalActuator:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- reading ---

    def _sorted(self, *, reverse: bool = False) -> list[_Replica]:
        return sorted(self._replicas.values(), key=lambda r: r.index, reverse=reverse)

    async def _read(self) -> WorkloadState:
        self._reap()
        await self._fill()
        await self._probe()
        await self._sync_routes()
        return self._state()

    def _reap(self) -> None:
        """Forget exited replicas, recording why, and kill whatever they left behind."""
        now_s = self.clock.now()
        for replica in self._sorted():
            code = replica.process.returncode
            if code is None:
                continue
            del self._replicas[replica.index]
            self._signal_group(replica.process.pid, signal.SIGKILL)
            self._groups.discard(replica.process.pid)
            earlier = self._failures.get(replica.index)
            exits = 1 if earlier is None else earlier.exits + 1
            ran_s = now_s - replica.started_s
            message = (
                f"{replica.name} (port {replica.port}) exited with code {code} after "
                f"{ran_s:.3g} s{self._last_line(replica.index)}"
            )
            self._failures[replica.index] = _Failure(exits, now_s, message)
            logger.warning("%s: %s", self.target, message)

    async def _probe(self) -> None:
        if not self._replicas:
            return
        session = self._http()
        timeout = aiohttp.ClientTimeout(total=self.settings.probe_timeout_s)

        async def ready(replica: _Replica) -> None:
            url = f"http://{HOST}:{replica.port}{self.settings.ready_path}"
            try:
                async with session.get(url, timeout=timeout) as response:
                    replica.ready = response.status == 200
            except (aiohttp.ClientError, OSError, TimeoutError):
                replica.ready = False
            if replica.ready:
                self._failures.pop(replica.index, None)  # recovered

        await asyncio.gather(*(ready(r) for r in self._sorted()))

    def _state(self) -> WorkloadState:
        now_s = self.clock.now()
        ready = starting = 0
        problems: list[str] = []
        for replica in self._sorted():
            if replica.ready:
                ready += 1
            elif now_s - replica.started_s < self.settings.start_timeout_s:
                starting += 1
            else:
                problems.append(
                    f"{replica.name} (port {replica.port}) not ready after "
                    f"{self.settings.start_timeout_s:g} s{self._last_line(replica.index)}"
                )
        delays = self.settings.restart_delays_s
        for index, failure in sorted(self._failures.items()):  # until the replica is ready
            if index in self._replicas:
                problems.append(f"{failure.message}; restarted")
            elif failure.exits > len(delays):
                problems.append(f"{failure.message}; gave up after {failure.exits} starts")
            else:
                left_s = failure.exited_s + delays[failure.exits - 1] - now_s
                problems.append(f"{failure.message}; restarting in {max(left_s, 0):.3g} s")
        conditions: tuple[WorkloadCondition, ...] = ()
        if problems:
            text = "; ".join(problems) + "; fix the command or its environment"
            conditions = (WorkloadCondition(ConditionType.CAPACITY_EXHAUSTED, text),)
        return WorkloadState(self.target, self._desired, ready, starting, conditions)

    def _last_line(self, index: int) -> str:
        """`: <the last line of the replica's log>`, or nothing."""
        if self._log_dir is None:
            return ""
        try:
            text = (self._log_dir / f"{self.replica_name(index)}.log").read_text(errors="replace")
        except OSError:
            return ""
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return f": {lines[-1][:300]}" if lines else ""

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    # --- routing ---

    async def _sync_routes(self) -> None:
        if self.registrar is None:
            return
        ready = self.addresses()
        try:
            for name in sorted(set(self._routed) - set(ready)):
                await self.registrar.deregister(name)
                del self._routed[name]
            for name, address in ready.items():
                if self._routed.get(name) != address:
                    await self.registrar.register(name, address)
                    self._routed[name] = address
        except Exception as error:  # the router is not the workload: retried next read
            logger.warning("%s: routes not updated: %s", self.target, error)

    # --- writing ---

    async def _fill(self) -> None:
        """Start each missing replica below the desired count whose restart delay has passed."""
        now_s = self.clock.now()
        delays = self.settings.restart_delays_s
        for index in range(self._desired):
            if index in self._replicas:
                continue
            failure = self._failures.get(index)
            if failure is not None and (
                failure.exits > len(delays) or now_s < failure.exited_s + delays[failure.exits - 1]
            ):
                continue
            await self._start(index)

    def _argv(self, index: int) -> list[str]:
        values = {
            "port": str(self.base_port + index),
            "index": str(index),
            "host": HOST,
            "name": self.replica_name(index),
        }
        return [PLACEHOLDER.sub(lambda m: values[m.group(1)], arg) for arg in self.command_template]

    async def _start(self, index: int) -> None:
        argv, name = self._argv(index), self.replica_name(index)
        if self._log_dir is None:
            self._log_dir = Path(tempfile.mkdtemp(prefix=f"replicast-{self.name}-"))
        self._log_dir.mkdir(parents=True, exist_ok=True)
        with (self._log_dir / f"{name}.log").open("ab") as log:
            try:
                process = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=asyncio.subprocess.STDOUT,
                    env=self.env,
                    cwd=self.cwd,
                    start_new_session=True,  # its own process group: stopped as a whole
                )
            except OSError as error:
                raise PermanentError(
                    f"{self.target}: cannot start {name}: {argv[0]}: "
                    f"{error.strerror or error}; fix command_template"
                ) from None
        self._groups.add(process.pid)
        port = self.base_port + index
        self._replicas[index] = _Replica(index, name, port, process, self.clock.now())
        logger.info("%s: started %s (pid %d, port %d)", self.target, name, process.pid, port)

    async def _stop(self, victims: Sequence[_Replica]) -> None:
        """Deregister, SIGTERM every victim in order, SIGKILL what is left after the timeout."""
        if self.registrar is not None:
            for replica in victims:
                if replica.name in self._routed:
                    with contextlib.suppress(Exception):
                        await self.registrar.deregister(replica.name)
                    self._routed.pop(replica.name, None)
        for replica in victims:
            replica.ready = False
            self._signal_group(replica.process.pid, signal.SIGTERM)
        processes = [r.process for r in victims]
        if not await self._wait(processes, self.settings.stop_timeout_s):
            for replica in victims:
                if replica.process.returncode is None:
                    logger.warning(
                        "%s: %s ignored SIGTERM for %g s; killing it",
                        self.target,
                        replica.name,
                        self.settings.stop_timeout_s,
                    )
                self._signal_group(replica.process.pid, signal.SIGKILL)
            await self._wait(processes, self.settings.stop_timeout_s)
        for replica in victims:
            self._signal_group(replica.process.pid, signal.SIGKILL)  # its leftovers, if any
            self._groups.discard(replica.process.pid)
            self._replicas.pop(replica.index, None)
            logger.info("%s: stopped %s", self.target, replica.name)

    async def _wait(
        self, processes: Sequence[asyncio.subprocess.Process], timeout_s: float
    ) -> bool:
        """Wait until every process has exited, or `timeout_s`; True when all have."""
        if not processes:
            return True
        waits: asyncio.Future[object] = asyncio.ensure_future(
            asyncio.gather(*(p.wait() for p in processes))
        )
        timer: asyncio.Future[object] = asyncio.ensure_future(self.clock.sleep(timeout_s))
        try:
            await asyncio.wait({waits, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            if not waits.done():
                waits.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waits
        return all(p.returncode is not None for p in processes)

    def _signal_group(self, pgid: int, signum: int) -> None:
        """Signal a replica's process group (its leader's pid: Linux never reuses a pid that is
        still a group id, so this cannot reach a stranger)."""
        if pgid not in self._groups:
            return
        try:
            os.killpg(pgid, signum)
        except ProcessLookupError:
            self._groups.discard(pgid)  # the whole group is gone
        except PermissionError:
            logger.warning("%s: not allowed to signal process group %d", self.target, pgid)

    def _kill_groups(self) -> None:
        for pgid in list(self._groups):
            self._signal_group(pgid, signal.SIGKILL)
        self._groups.clear()
