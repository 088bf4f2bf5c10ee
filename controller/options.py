"""`replicast run`'s command line: the flags, their checks, and the options they make.

In: argv and the validated config (its `defaults` give `permanent_error_retry_s`). Out: a
frozen `RunOptions` for controller/run.py's `serve`, or a `UsageError` (exit 2) naming the
flag. Settings checks live in `LoopSettings` (controller/settings.py); their messages name the
flag (`--max-in-flight: must be 1 to 1024 (got 0)`).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.config import Config
from controller.settings import LoopSettings
from controller.sharding import Shard, ShardError, parse_shard

DEFAULT_LISTEN = "127.0.0.1:8080"
DEFAULT_LEASE_NAME = "replicast"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


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
    if config is not None:
        tuned["permanent_error_retry_s"] = config.defaults.permanent_error_retry_s
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
