"""`replicast run CONFIG`: the live controller, from its config file to a stopped process.

In: the config file and command-line options. Out: a running controller until SIGTERM or
SIGINT: the Prometheus source (one aiohttp session, the configured token provider), an actuator
per target (`build_actuator`: kubernetes, aci or local by `scale_target.kind`, the last two
imported only when a target needs them), the leader elector on a Lease (or none with
`--no-leader-election`), the control loop (controller/loop.py) and its HTTP app
(controller/app.py) on `--listen`. Logs are JSON lines on stderr.

Exit status: 0 after a clean stop (the round in progress finished, the state saved, the Lease
released); 1 when the config or the environment cannot be used (one line per problem on stderr,
never a traceback); 2 on usage errors. The process writes no file of its own: only a local
target's replica logs (in $TMPDIR) and a kubeconfig's inline certificates (kubernetes-asyncio
writes them to $TMPDIR) ever touch the disk.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import ipaddress
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from kubernetes_asyncio.client import ApiClient, VersionApi

from controller.actuators.base import Actuator, ActuatorError, Clock, SystemClock
from controller.actuators.kubernetes import (
    ClusterReads,
    KubernetesActuator,
    WorkloadRef,
    kubernetes_api,
)
from controller.app import create_app
from controller.config import AciTarget, Config, KubernetesTarget, TargetConfig, check_config
from controller.leader import LeaderElector
from controller.loop import ControlLoop, LoopSettings
from controller.prometheus import PrometheusSource, token_provider_for
from controller.sharding import Shard, ShardError, parse_shard
from controller.state_store import ConfigMapStore, MemoryStore, StateStore

log = logging.getLogger("controller.run")

DEFAULT_LISTEN = "127.0.0.1:8080"
DEFAULT_LEASE_NAME = "replicast"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class StartupError(Exception):
    """Something a person must fix before the controller can start; printed as one line."""


@dataclass(frozen=True, slots=True)
class RunOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    dry_run: bool = False
    admin: bool = False
    kubeconfig: str | None = None
    context: str | None = None
    leader_election: bool = True
    lease_namespace: str = "default"
    lease_name: str = DEFAULT_LEASE_NAME
    identity: str = "replicast"
    settings: LoopSettings = field(default_factory=LoopSettings)
    shard: Shard | None = None


# --- logs ------------------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and a record's `json_fields`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "json_fields", None)
        if isinstance(fields, Mapping):
            line |= fields
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


# --- actuators -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Resources:
    """What actuators share: the HTTP session, the clock, the Kubernetes client (if any) and
    the namespace-wide Kubernetes reads (`build_actuators` makes them when not given)."""

    session: aiohttp.ClientSession
    clock: Clock
    kube: ApiClient | None
    kube_reads: ClusterReads | None = None


def _optional_module(name: str, where: str, kind: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name != name:
            raise
        raise StartupError(
            f"{where}.kind: {kind!r} targets need {name}, which this installation lacks; "
            "upgrade replicast or use another kind"
        ) from None


def build_actuator(target: TargetConfig, index: int, resources: Resources) -> Actuator:
    """The actuator `target.scale_target.kind` names; aci and local are imported only here."""
    st = target.scale_target
    where = f"targets[{index}].scale_target"
    if isinstance(st, KubernetesTarget):
        if resources.kube is None:
            raise StartupError(f"{where}: a Kubernetes target needs a Kubernetes client")
        ref = WorkloadRef(st.kind, st.namespace, st.name)
        return KubernetesActuator(
            ref, api=resources.kube, clock=resources.clock, reads=resources.kube_reads
        )
    if isinstance(st, AciTarget):
        aci = _optional_module("controller.actuators.aci", where, "aci")
        subscription = st.subscription_id or os.environ.get("AZURE_SUBSCRIPTION_ID", "")
        if not subscription:
            raise StartupError(
                f"{where}.subscription_id: not set, and AZURE_SUBSCRIPTION_ID is empty; set one"
            )
        try:
            aci_ref = aci.AciRef(
                subscription_id=subscription,
                resource_group=st.resource_group,
                name_prefix=st.name_prefix,
                template=st.template,
                location=st.location,
            )
        except ValueError as error:
            raise StartupError(f"{where}.{error}") from None
        made: Actuator = aci.AciActuator(aci_ref, session=resources.session, clock=resources.clock)
        return made
    local = _optional_module("controller.actuators.local", where, "local")
    if st.base_port is None:
        raise StartupError(
            f"{where}.base_port: required for local replicas (replica i listens on "
            "base_port + i), e.g. base_port: 18000"
        )
    try:
        made = local.LocalActuator(
            st.command,
            base_port=st.base_port,
            clock=resources.clock,
            session=resources.session,
            name=target.name,
            env={**os.environ, **st.env} if st.env else None,
            cwd=st.workdir,
        )
    except ActuatorError as error:
        raise StartupError(f"{where}: {error}") from None
    return made


def build_actuators(config: Config, resources: Resources) -> dict[str, Actuator]:
    """Every target's actuator, or StartupError listing every target that cannot have one.

    The Kubernetes actuators share one `ClusterReads`: each namespace's HPAs, ScaledObjects
    and Pending pods are listed once per round, not once per target.
    """
    if resources.kube is not None and resources.kube_reads is None:
        resources = replace(
            resources, kube_reads=ClusterReads(resources.kube, clock=resources.clock)
        )
    out: dict[str, Actuator] = {}
    problems: list[str] = []
    for index, target in enumerate(config.targets):
        try:
            out[target.name] = build_actuator(target, index, resources)
        except StartupError as error:
            problems.append(str(error))
    if problems:
        raise StartupError("\n".join(problems))
    return out


async def close_actuators(actuators: Mapping[str, Actuator]) -> None:
    """`aclose()` or `close()` on the actuators that own something (credentials, processes)."""
    for name, actuator in actuators.items():
        close = getattr(actuator, "aclose", None) or getattr(actuator, "close", None)
        if close is None:
            continue
        try:
            await close()
        except Exception as error:
            log.warning("%s: not closed cleanly: %s", name, error)


def needs_kubernetes(config: Config, options: RunOptions) -> bool:
    kube_targets = any(isinstance(t.scale_target, KubernetesTarget) for t in config.targets)
    return options.leader_election or kube_targets


async def kubernetes_client(options: RunOptions, max_connections: int = 16) -> ApiClient:
    """A Kubernetes client with at most `max_connections` requests in flight."""
    if options.kubeconfig is not None and not Path(options.kubeconfig).is_file():
        raise StartupError(f"--kubeconfig {options.kubeconfig}: no such file")
    try:
        return await kubernetes_api(
            kubeconfig=options.kubeconfig, context=options.context, max_connections=max_connections
        )
    except Exception as error:  # kubernetes-asyncio's ConfigException, OSError, YAML errors
        text = " ".join(str(error).split()) or type(error).__name__
        raise StartupError(
            f"cannot configure the Kubernetes client: {text}; pass --kubeconfig, or run in a "
            "pod with a ServiceAccount (deploy/rbac.yaml)"
        ) from None


# --- serving ---------------------------------------------------------------------------------


def install_signal_handlers(stop: asyncio.Event) -> Callable[[], None]:
    """SIGTERM and SIGINT set `stop` (the round in progress finishes); returns the remover."""
    loop = asyncio.get_running_loop()

    def on_signal(signum: signal.Signals) -> None:
        if not stop.is_set():
            log.info("%s: stopping after the round in progress", signum.name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)

    def remove() -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)

    return remove


async def serve(
    config: Config,
    options: RunOptions,
    *,
    stop: asyncio.Event | None = None,
    clock: Clock | None = None,
) -> None:
    """Run until `stop` is set (by SIGTERM/SIGINT), then stop everything in order.

    Refusals come before any action: the listen port is bound, the config and the credentials
    are built before the first decision (StartupError, exit 1). An endpoint that does not
    answer (Prometheus, the API server, Azure) is one log line naming it; the controller then
    runs not-ready, holding every target (no signal, no scale-down) until it answers."""
    stop = stop if stop is not None else asyncio.Event()
    clock = clock if clock is not None else SystemClock()
    if options.shard is not None:
        config = options.shard.select(config)
    listening = _bind(options)  # a busy port is refused before anything else happens
    remove_handlers = install_signal_handlers(stop)
    try:
        async with AsyncExitStack() as stack:
            stack.callback(listening.close)
            session = await stack.enter_async_context(aiohttp.ClientSession())
            kube = lease_kube = None
            if needs_kubernetes(config, options):
                pool = options.settings.max_in_flight
                kube = await stack.enter_async_context(await kubernetes_client(options, pool))
                if options.leader_election:  # its own client: renewals never queue behind reads
                    lease_kube = await stack.enter_async_context(
                        await kubernetes_client(options, 2)
                    )
            actuators = build_actuators(config, Resources(session, clock, kube))
            stack.push_async_callback(close_actuators, actuators)
            token_provider = token_provider_for(config.prometheus.auth)
            close_token = getattr(token_provider, "aclose", None)
            if close_token is not None:
                stack.push_async_callback(close_token)
            source = PrometheusSource(
                config.prometheus, session=session, token_provider=token_provider
            )
            elector = None
            store: StateStore = MemoryStore()
            if options.leader_election and lease_kube is not None and kube is not None:
                elector = LeaderElector(
                    api=lease_kube,
                    namespace=options.lease_namespace,
                    name=options.lease_name,
                    identity=options.identity,
                    clock=clock,
                )
                store = ConfigMapStore(
                    kube,
                    namespace=options.lease_namespace,
                    prefix=options.lease_name,
                    identity=options.identity,
                    clock=clock,
                    write_interval_s=options.settings.state_write_interval_s,
                )
            await preflight(config, source, kube)
            loop = ControlLoop(
                config.targets,
                source=source,
                actuators=actuators,
                leadership=elector,
                store=store,
                clock=clock,
                settings=options.settings,
                dry_run=options.dry_run,
            )
            app = create_app(loop, elector=elector, admin=options.admin)
            freeze_heap()
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await runner.setup()  # the elector's first step, then the loop's task
            stack.push_async_callback(runner.cleanup)  # loop first, then the Lease
            await web.SockSite(runner, listening).start()
            log.info(
                "serving /healthz /readyz /metrics /status%s on http://%s:%d",
                " and POST /dry-run" if options.admin else "",
                options.host,
                options.port,
            )
            await stop.wait()
    finally:
        remove_handlers()
    log.info("stopped")


def freeze_heap() -> None:
    """Take every object alive now (modules, the config, the targets' runtimes: they live as
    long as the process) out of the cyclic collector's walks. Without it each collection
    re-walks a heap that grows with the targets, and a 2,000-target round cost 5.7x a 500-target
    one for 4x the targets (bench/controller_scale.py prints both)."""
    gc.collect()
    gc.freeze()


def _bind(options: RunOptions) -> socket.socket:
    """The listening socket, bound now: a busy or forbidden port is a StartupError."""
    try:
        infos = socket.getaddrinfo(options.host, options.port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
    except OSError as error:
        reason = error.strerror or str(error)
        raise StartupError(
            f"--listen {options.host}:{options.port}: cannot listen: {reason}"
        ) from None
    return sock


async def preflight(config: Config, source: PrometheusSource, kube: ApiClient | None) -> None:
    """One log line for each endpoint that does not answer now (never raises): Prometheus and
    the Kubernetes API server. The controller runs on either way (not ready, holding)."""
    probes = [asyncio.create_task(_probe_prometheus(config, source))]
    if kube is not None:
        probes.append(asyncio.create_task(_probe_kubernetes(kube)))
    for problem in await asyncio.gather(*probes):
        if problem:
            log.error("%s; holding every target (no scale-down) until it answers", problem)


async def _probe_prometheus(config: Config, source: PrometheusSource) -> str | None:
    try:
        await source.query("vector(1)", time.time())
    except Exception as error:
        text = " ".join(str(error).split()) or type(error).__name__
        return f"prometheus {config.prometheus.url}: {text}"
    return None


async def _probe_kubernetes(kube: ApiClient) -> str | None:
    host = kube.configuration.host
    try:
        async with asyncio.timeout(5):
            await VersionApi(kube).get_code()
    except Exception as error:
        text = " ".join(str(error).split()) or type(error).__name__
        return f"kubernetes API server {host}: not answering: {text[:200]}"
    return None


# --- the command -----------------------------------------------------------------------------


class UsageError(ValueError):
    """A command-line value that cannot be used (exit status 2)."""


def parse_listen(text: str) -> tuple[str, int]:
    """`127.0.0.1:8080`, `[::1]:8080`, `0.0.0.0:8080` -> (host, port)."""
    host, sep, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"--listen: expected HOST:PORT such as 127.0.0.1:8080 (got {text!r})")
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def default_namespace() -> str:
    """POD_NAMESPACE, else the pod's ServiceAccount namespace, else default."""
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text(encoding="utf-8").strip() or "default"
    except OSError:
        return "default"


def default_identity() -> str:
    """POD_NAME (the Downward API), else this host's name."""
    return os.environ.get("POD_NAME") or socket.gethostname() or f"replicast-{os.getpid()}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="replicast run",
        description="Run the live controller: every target's observe -> decide -> scale loop, "
        "with /healthz /readyz /metrics /status on --listen. SIGTERM finishes the round in "
        "progress, saves the policies' state and releases the Lease.",
    )
    p.add_argument("config", type=Path, metavar="CONFIG", help="controller config (YAML)")
    p.add_argument("--listen", default=DEFAULT_LISTEN, help=f"HOST:PORT (default {DEFAULT_LISTEN})")
    p.add_argument("--dry-run", action="store_true", help="decide and record, never scale")
    p.add_argument(
        "--admin",
        action="store_true",
        help="serve POST /dry-run (switch dry run at runtime); needs a loopback --listen",
    )
    p.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, else ~/.kube)")
    p.add_argument("--context", help="kubeconfig context")
    election = p.add_argument_group("leader election (a coordination.k8s.io Lease)")
    election.add_argument(
        "--no-leader-election",
        dest="leader_election",
        action="store_false",
        help="act without a Lease (one replica only: a sandbox, a test)",
    )
    election.add_argument("--lease-namespace", help="default: POD_NAMESPACE or the pod's")
    election.add_argument(
        "--lease-name",
        help=f"default {DEFAULT_LEASE_NAME}; with --shard, -INDEX-of-COUNT is appended",
    )
    election.add_argument("--identity", help="this replica's name (default: POD_NAME or host)")
    election.add_argument(
        "--shard",
        metavar="INDEX/COUNT",
        help="take only the targets whose name hashes to INDEX (SHA-256, controller/sharding.py);"
        " each shard has its own Lease and state",
    )
    tuning = p.add_argument_group("loop settings")
    defaults = LoopSettings()

    def tune(flag: str, kind: type, default: float, text: str) -> None:
        tuning.add_argument(flag, type=kind, default=None, help=f"{text} (default {default:g})")

    tune(
        "--max-change-per-tick",
        int,
        defaults.max_change_per_tick,
        "replicas added or removed per tick at most",
    )
    tune(
        "--state-write-interval-s",
        float,
        defaults.state_write_interval_s,
        "write each bucket of the policies' state at most this often",
    )
    tune(
        "--permanent-error-retry-s",
        float,
        defaults.permanent_error_retry_s,
        "try a scale that failed for good (403, deleted target) again after this long; "
        "overrides defaults.permanent_error_retry_s in the config",
    )
    tune(
        "--shutdown-grace-s",
        float,
        defaults.shutdown_grace_s,
        "SIGTERM: finish scale calls, save the state and release the Lease within this",
    )
    tune(
        "--max-in-flight",
        int,
        defaults.max_in_flight,
        "Kubernetes requests for the targets in flight at once (the Lease has its own client)",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def options_from(args: argparse.Namespace, config: Config | None = None) -> RunOptions:
    host, port = parse_listen(args.listen)
    if args.admin and not is_loopback(host):
        raise UsageError(
            f"--admin: POST /dry-run would be open to anyone who reaches {host}:{port}; "
            "use a loopback --listen (127.0.0.1) and kubectl port-forward"
        )
    tuned: dict[str, Any] = {}
    configured = getattr(config.defaults, "permanent_error_retry_s", None) if config else None
    if configured is not None:
        tuned["permanent_error_retry_s"] = configured
    for name in (
        "max_change_per_tick", "state_write_interval_s", "permanent_error_retry_s",
        "shutdown_grace_s", "max_in_flight",
    ):  # fmt: skip
        value = getattr(args, name, None)
        if value is not None:
            tuned[name] = value
    try:
        shard = parse_shard(args.shard) if args.shard else None
    except ShardError as error:
        raise UsageError(str(error)) from None
    try:
        settings = LoopSettings(**tuned)
    except ValueError as error:  # "max_in_flight: must be ..." -> "--max-in-flight: must be ..."
        name, _, why = str(error).partition(":")
        raise UsageError(f"--{name.replace('_', '-')}:{why}") from None
    lease_name = args.lease_name or DEFAULT_LEASE_NAME
    if shard is not None:
        lease_name = shard.lease_name(lease_name)
    return RunOptions(
        host=host,
        port=port,
        dry_run=args.dry_run,
        admin=args.admin,
        kubeconfig=args.kubeconfig,
        context=args.context,
        leader_election=args.leader_election,
        lease_namespace=args.lease_namespace or default_namespace(),
        lease_name=lease_name,
        identity=args.identity or default_identity(),
        settings=settings,
        shard=shard,
    )


def cmd_run(argv: Sequence[str]) -> int:
    """run the live controller (observe, decide, scale) until SIGTERM"""
    try:
        args = build_parser().parse_args(list(argv))
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 2
    config, problems = check_config(args.config)
    for problem in problems:
        print(problem, file=sys.stderr)
    if config is None:
        return 1
    try:
        options = options_from(args, config)
    except UsageError as error:
        print(f"replicast run: {error}", file=sys.stderr)
        return 2
    configure_logging(args.log_level)
    started = time.monotonic()
    try:
        asyncio.run(serve(config, options))
    except (StartupError, ActuatorError) as error:
        for line in str(error).splitlines():
            print(f"replicast run: {line}", file=sys.stderr)
        return 1
    log.info("exit after %.1f s", time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(cmd_run(sys.argv[1:]))
