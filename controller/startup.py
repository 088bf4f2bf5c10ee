"""Before the first decision: the listening socket, the endpoints' first answers, the heap.

`bind` takes the `--listen` port before anything else (a busy port is a `StartupError`: exit
1, one line); `preflight` asks Prometheus, the Kubernetes API server and Azure (for ACI
targets) once and logs one line for each that does not answer (the controller then runs not
ready, holding, until it does); `freeze_heap` takes the long-lived startup objects out of the
collector's walks (bench/controller_scale.py).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import time
from collections.abc import Mapping
from typing import Any

from kubernetes_asyncio.client import ApiClient, VersionApi

from controller.actuators.base import Actuator
from controller.config import Config
from controller.options import RunOptions
from controller.prometheus import PrometheusSource
from policies.text import one_line

log = logging.getLogger("controller.run")

AZURE_ARM_SCOPE = "https://management.azure.com/.default"


class StartupError(Exception):
    """Something a person must fix before the controller can start; printed as one line."""


# The cyclic collector's thresholds once the heap is frozen: a young collection every 10,000
# allocations (Python's 700 is tuned for short scripts) and a full one a tenth as often as by
# default. A full collection walks every tracked object, and the targets' histories grow with
# the fleet: at 2,000 targets the default thresholds cost 0.2-0.4 s of CPU a round, growing
# round by round (bench/README.md). Cycles are rare here (records, states and reads are trees).
GC_THRESHOLDS = (10_000, 10, 100)


def freeze_heap() -> None:
    """Take every object alive now (modules, the config, the targets' runtimes: they live as
    long as the process) out of the cyclic collector's walks, and collect less often
    (`GC_THRESHOLDS`). Without it a 2,000-target round cost 5.7x a 500-target one for 4x the
    targets (bench/controller_scale.py prints both)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def bind(options: RunOptions) -> socket.socket:
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


async def preflight(
    config: Config,
    source: PrometheusSource,
    kube: ApiClient | None,
    actuators: Mapping[str, Actuator] | None = None,
) -> None:
    """One log line for each endpoint that does not answer now (never raises): Prometheus, the
    Kubernetes API server, Azure (an Entra ID token for ARM, for ACI targets). The controller
    runs on either way: not ready, holding every target, until the endpoint answers."""
    probes = [asyncio.create_task(_probe_prometheus(config, source))]
    if kube is not None:
        probes.append(asyncio.create_task(_probe_kubernetes(kube)))
    credentials = {
        id(c): c
        for c in (getattr(a, "credential", None) for a in (actuators or {}).values())
        if c is not None
    }
    probes += [asyncio.create_task(_probe_azure(c)) for c in credentials.values()]
    for problem in await asyncio.gather(*probes):
        if problem:
            log.error("%s; holding every target (no scale-down) until it answers", problem)


async def _probe_prometheus(config: Config, source: PrometheusSource) -> str | None:
    try:
        await source.query("vector(1)", time.time())
    except Exception as error:
        text = one_line(error)
        return f"prometheus {config.prometheus.url}: {text}"
    return None


async def _probe_azure(credential: Any) -> str | None:
    try:
        async with asyncio.timeout(15):
            await credential.get_token(AZURE_ARM_SCOPE)
    except Exception as error:
        text = one_line(error, 300)
        return (
            f"azure: no Entra ID token for {AZURE_ARM_SCOPE}: {text}; give the pod a workload "
            "identity (deploy/components/aks) or set AZURE_CLIENT_ID/AZURE_TENANT_ID"
        )
    return None


async def _probe_kubernetes(kube: ApiClient) -> str | None:
    host = kube.configuration.host
    try:
        async with asyncio.timeout(5):
            await VersionApi(kube).get_code()
    except Exception as error:
        text = one_line(error)
        return f"kubernetes API server {host}: not answering: {text[:200]}"
    return None
