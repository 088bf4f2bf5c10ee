"""`replicast validate`, `replicast schema`, `replicast profile from-prometheus`.

Each is `(argv) -> exit status`, wired into the `replicast` console script through the
`replicast.commands` entry-point group (see `controller.dispatch`). Problems are one line each on
stderr, never a traceback: exit 1 when `validate` finds problems (or `profile` gets no data
from Prometheus), 2 on usage errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TextIO

import aiohttp

from controller import prometheus as prom
from controller.config import check_config, json_schema


class UsageError(ValueError):
    """A command-line value that cannot be used; printed as one line, exit status 2."""


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace | int:
    """argparse without its SystemExit: a usage error is exit status 2, --help is 0."""
    try:
        return parser.parse_args(list(argv))
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 2


# --- validate, schema ------------------------------------------------------------------------


def cmd_validate(argv: Sequence[str]) -> int:
    """check a controller config file and report every problem at once"""
    parser = argparse.ArgumentParser(
        prog="replicast validate",
        description="Check controller config files without touching anything: every problem, "
        "one line each (file:line:column: field: what is wrong).",
    )
    parser.add_argument("configs", nargs="+", type=Path, metavar="CONFIG")
    args = _parse(parser, argv)
    if isinstance(args, int):
        return args
    status = 0
    for path in args.configs:
        config, problems = check_config(path)
        for problem in problems:
            print(problem, file=sys.stderr)
        if config is None:
            status = 1
            continue
        names = ", ".join(t.name for t in config.targets)
        print(f"{path}: OK ({len(config.targets)} target(s): {names})")
    return status


def cmd_schema(argv: Sequence[str]) -> int:
    """print the JSON Schema of the controller config, for editors"""
    parser = argparse.ArgumentParser(
        prog="replicast schema",
        description="Print the JSON Schema of the controller config (for editors: yaml-language-"
        "server's `# yaml-language-server: $schema=replicast.schema.json`).",
    )
    parser.add_argument("--out", type=Path, help="write to this file instead of stdout")
    args = _parse(parser, argv)
    if isinstance(args, int):
        return args
    text = json.dumps(json_schema(), indent=2) + "\n"
    if args.out is None:
        sys.stdout.write(text)
        return 0
    try:
        args.out.write_text(text, encoding="utf-8")
    except OSError as error:
        print(f"replicast schema: cannot write {args.out}: {error.strerror}", file=sys.stderr)
        return 1
    return 0


# --- profile from-prometheus -----------------------------------------------------------------

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration_s(text: str) -> float:
    """Seconds from `90`, `15s`, `1m`, `1h30m` (Prometheus durations)."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise UsageError(f"not a duration: {text!r}; use seconds or e.g. 15s, 1m, 1h30m")
    return sum(float(n) * _UNIT_S[u] for n, u in parts)


def parse_time_s(text: str, now_s: float) -> float:
    """Unix seconds from `1700000000`, RFC 3339 (`2024-05-10T00:00:00Z`), `now`, `now-6h`."""
    text = text.strip()
    if text == "now":
        return now_s
    if text.startswith("now-"):
        return now_s - parse_duration_s(text[4:])
    try:
        return float(text)
    except ValueError:
        pass
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"not a time: {text!r}; use Unix seconds, RFC 3339 "
            "(2024-05-10T00:00:00Z), now or now-6h"
        ) from None
    if stamp.tzinfo is None:
        raise UsageError(f"time {text!r} has no timezone; add Z or +00:00")
    return stamp.timestamp()


def _token_provider(args: argparse.Namespace) -> prom.TokenProvider | None:
    if args.token_file:
        return prom.FileToken(args.token_file)
    if args.token_env:
        return prom.EnvToken(args.token_env)
    if args.azure:
        scope = "https://prometheus.monitor.azure.com/.default"
        return prom.AzureToken(prom.default_azure_credential(args.azure_client_id), scope)
    return None


async def _fetch(
    args: argparse.Namespace, start_s: float, end_s: float, step_s: float
) -> list[tuple[float, float]]:
    token_provider = _token_provider(args)
    try:
        async with aiohttp.ClientSession() as session:
            return await prom.query_range(
                args.url,
                args.query,
                start_s=start_s,
                end_s=end_s,
                step_s=step_s,
                session=session,
                token_provider=token_provider,
                timeout_s=args.timeout_s,
            )
    finally:
        if isinstance(token_provider, prom.AzureToken):
            await token_provider.aclose()


def _number(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def write_rates_csv(points: Sequence[tuple[float, float]], out: TextIO) -> int:
    """`time_s,rate_rps` rows (Unix seconds, rate at the end of its rate() window)."""
    out.write("time_s,rate_rps\n")
    for time_s, rate in points:
        out.write(f"{_number(time_s)},{rate!r}\n")
    return len(points)


def _profile_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="replicast profile",
        description="Offline: turn recorded traffic into a load profile the simulator reads.",
    )
    sub = parser.add_subparsers(dest="source", required=True, metavar="SOURCE")
    p = sub.add_parser(
        "from-prometheus",
        help="a request rate's history from /api/v1/query_range as time_s,rate_rps CSV",
        description="Pull the history of ONE rate series (e.g. sum(rate(vllm:request_success_"
        "total[1m]))) from Prometheus into a time_s,rate_rps CSV for the simulator.",
    )
    p.add_argument("url", help="Prometheus base URL, e.g. http://127.0.0.1:9090")
    p.add_argument("query", help="PromQL giving one series of requests per second")
    p.add_argument("--start", required=True, help="Unix seconds, RFC 3339, or now-7d")
    p.add_argument("--end", default="now", help="Unix seconds, RFC 3339, or now (default)")
    p.add_argument("--step", default="60s", help="resolution, e.g. 15s or 1m (default 60s)")
    p.add_argument("--out", required=True, help="CSV path, or - for stdout")
    p.add_argument("--timeout-s", type=float, default=60.0, help="per request (default 60)")
    auth = p.add_mutually_exclusive_group()
    auth.add_argument("--token-file", help="bearer token from this file")
    auth.add_argument("--token-env", help="bearer token from this environment variable")
    auth.add_argument("--azure", action="store_true", help="Entra ID token (managed Prometheus)")
    p.add_argument("--azure-client-id", help="client id of a user-assigned managed identity")
    return parser


def _profile_range(args: argparse.Namespace) -> tuple[float, float, float]:
    now_s = time.time()
    start_s, end_s = parse_time_s(args.start, now_s), parse_time_s(args.end, now_s)
    step_s = parse_duration_s(args.step)
    if step_s <= 0:
        raise UsageError(f"--step must be > 0 (got {args.step!r})")
    if end_s <= start_s:
        raise UsageError(f"--end ({args.end}) must be after --start ({args.start})")
    if (end_s - start_s) / step_s > 5_000_000:
        raise UsageError("more than 5,000,000 points; use a longer --step")
    return start_s, end_s, step_s


def _write(points: Sequence[tuple[float, float]], out: str) -> int:
    if out == "-":
        return write_rates_csv(points, sys.stdout)
    with open(out, "w", encoding="utf-8", newline="") as stream:
        return write_rates_csv(points, stream)


def cmd_profile(argv: Sequence[str]) -> int:
    """profile from-prometheus: pull a recorded rate into a simulator rate series (CSV)"""
    args = _parse(_profile_parser(), argv)
    if isinstance(args, int):
        return args
    try:
        start_s, end_s, step_s = _profile_range(args)
    except UsageError as error:
        print(f"replicast profile: {error}", file=sys.stderr)
        return 2
    try:
        points = asyncio.run(_fetch(args, start_s, end_s, step_s))
    except prom.PrometheusQueryError as error:
        print(f"replicast profile: {args.url}: {error.kind}: {error}", file=sys.stderr)
        return 1
    kept = [(t, v) for t, v in points if math.isfinite(v)]
    if not kept:
        print(f"replicast profile: {args.url}: no data for {args.query!r}", file=sys.stderr)
        return 1
    try:
        rows = _write(kept, args.out)
    except OSError as error:
        print(f"replicast profile: cannot write {args.out}: {error.strerror}", file=sys.stderr)
        return 1
    if len(kept) < len(points):
        skipped = len(points) - len(kept)
        print(f"replicast profile: skipped {skipped} NaN or infinite point(s)", file=sys.stderr)
    mean = sum(v for _, v in kept) / len(kept)
    print(
        f"wrote {rows} rows to {args.out} (step {step_s:g} s, mean {mean:.4g} rps)", file=sys.stderr
    )
    return 0
