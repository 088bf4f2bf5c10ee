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

import asyncio
import importlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from kubernetes_asyncio.client import ApiClient

from controller.actuators.base import Actuator, ActuatorError, Clock, SystemClock
from controller.actuators.kubernetes import (
    ClusterReads,
    KubernetesActuator,
    WorkloadRef,
    kubernetes_api,
)
from controller.app import create_app
from controller.config import (
    AciTarget,
    Config,
    FileRegistrarConfig,
    HttpRegistrarConfig,
    KubernetesTarget,
    RegistrarConfig,
    TargetConfig,
    check_config,
)
from controller.leader import LeaderElector
from controller.logs import configure_logging
from controller.loop import ControlLoop
from controller.options import (
    RunOptions,
    UsageError,
    build_parser,
    options_from,
)
from controller.prometheus import PrometheusSource, token_provider_for
from controller.startup import StartupError, bind, freeze_heap, preflight
from controller.state_store import ConfigMapStore, MemoryStore, StateStore
from policies.text import one_line

if TYPE_CHECKING:
    from controller.registrars import Registrar

log = logging.getLogger("controller.run")

# Its pieces live in controller/options.py (the flags), controller/startup.py (what happens
# before the first decision) and controller/logs.py; the names tests and benches use from here:
__all__ = [
    "Resources",
    "RunOptions",
    "StartupError",
    "UsageError",
    "build_actuator",
    "build_actuators",
    "build_parser",
    "close_actuators",
    "cmd_run",
    "freeze_heap",
    "install_signal_handlers",
    "needs_kubernetes",
    "options_from",
    "serve",
]


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


def build_registrar(
    block: RegistrarConfig | None, subscription: str, resources: Resources
) -> Registrar | None:
    """The router the `registrar:` block names (registrars are imported only when one is)."""
    if block is None:
        return None
    from controller import registrars  # noqa: PLC0415 (App Gateway pulls in azure-identity)

    if isinstance(block, FileRegistrarConfig):
        return registrars.FileRegistrar(block.path)
    if isinstance(block, HttpRegistrarConfig):
        settings = registrars.HttpRegistrarSettings(timeout_s=block.timeout_s)
        return registrars.HttpRegistrar(
            block.url, session=resources.session, clock=resources.clock, settings=settings
        )
    ref = registrars.AppGatewayRef(
        subscription_id=block.subscription_id or subscription,
        resource_group=block.resource_group,
        name=block.gateway,
        backend_pool=block.backend_pool,
    )
    return registrars.AppGatewayRegistrar(ref, session=resources.session, clock=resources.clock)


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
        registrar = build_registrar(st.registrar, subscription, resources)
        made: Actuator = aci.AciActuator(
            aci_ref, session=resources.session, clock=resources.clock, registrar=registrar
        )
        return made
    local = _optional_module("controller.actuators.local", where, "local")
    try:
        made = local.LocalActuator(
            st.command,
            base_port=st.base_port,
            clock=resources.clock,
            session=resources.session,
            name=target.name,
            env={**os.environ, **st.env} if st.env else None,
            cwd=st.workdir,
            registrar=build_registrar(st.registrar, "", resources),
            initial_replicas=st.replicas,
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
        text = one_line(error)
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
    listening = bind(options)  # a busy port is refused before anything else happens
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
                    leading=lambda: elector.is_leader if elector is not None else True,
                )
            await preflight(config, source, kube, actuators)
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
