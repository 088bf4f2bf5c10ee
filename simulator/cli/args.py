"""The simulator commands' flags: their definitions, their checks, and what they resolve to.

In: the command line of `simulate`, `compare` and `demo`. Out: the parser's flags (`_common`),
the SLO they state (`slo_from`), the replica model, the metrics and the replica bounds of a run
(`bounds_for`, sized from the load by `simulator.sizing` when not given); a bad flag is one
`UsageError` line.
"""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path
from typing import NoReturn

from policies.explain import ScriptError
from simulator import profiles, sizing
from simulator.explain import load_spec
from simulator.model import ReplicaModel
from simulator.profile_args import PROFILE_HELP, add_profile_arguments, profile_from_args
from simulator.result import Slo, SloTarget


class UsageError(ScriptError):
    """A command-line argument the simulator cannot use; the message says which and why."""


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one `UsageError` line (not usage text and a second line)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see --help)")


def parse_duration_s(text: str) -> float:
    match = re.fullmatch(r"\s*([0-9.]+)\s*(ms|s|m|h|d)?\s*", text)
    if not match:
        raise UsageError(f"{text!r}: not a duration; e.g. 2s, 500ms, 5m")
    scale = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}[match.group(2) or "s"]
    return float(match.group(1)) * scale


LATENCY_FLAGS = ("p50", "p90", "p95", "p99")


def _threshold_s(flag: str, text: str) -> float:
    try:
        seconds = parse_duration_s(text)
    except UsageError:
        raise UsageError(f"{flag} {text}: not a duration; e.g. 2s, 500ms, 5m") from None
    if not (math.isfinite(seconds) and seconds > 0):
        raise UsageError(f"{flag} {text}: must be > 0, e.g. 1s")
    return seconds


def slo_from(args: argparse.Namespace) -> Slo:
    """The SLO the flags state, every target given combined (it holds when all of them do):
    `--slo-wait` at `--slo-share` (alone, the share is the default 1 s wait's) and each
    `--slo-pNN` at its own percentile; no flag: wait <= 1 s for 99 %."""
    share = 0.99 if args.slo_share is None else args.slo_share
    if not (math.isfinite(share) and 0 < share <= 1):
        raise UsageError(f"--slo-share {share:g}: must be in (0, 1], e.g. 0.99 (99 % of requests)")
    latency = [
        SloTarget(_threshold_s(f"--slo-{q}", text), "latency", int(q[1:]) / 100)
        for q in LATENCY_FLAGS
        if (text := getattr(args, f"slo_{q}")) is not None
    ]
    if args.slo_share is not None and args.slo_wait is None and latency:
        raise UsageError(
            f"--slo-share {share:g}: is the share for --slo-wait; a latency target's share is "
            f"in its flag (--slo-{LATENCY_FLAGS[2]}: 95 %); add --slo-wait or drop --slo-share"
        )
    targets = latency
    if args.slo_wait is not None or not latency:
        wait_s = 1.0 if args.slo_wait is None else _threshold_s("--slo-wait", args.slo_wait)
        targets = [SloTarget(wait_s, "wait", share), *latency]
    return targets[0] if len(targets) == 1 else tuple(targets)


def _common(
    parser: argparse.ArgumentParser, *, profile_default: str | None, profile_required: bool = True
) -> None:
    parser.add_argument(
        "--profile",
        default=profile_default,
        required=profile_default is None and profile_required,
        help=PROFILE_HELP,
    )
    add_profile_arguments(parser)
    parser.add_argument(
        "--model",
        default="gpu-llm",
        help="replica model: a preset (gpu-llm, llama2-70b-a100, ...) or a YAML file",
    )
    parser.add_argument(
        "--rate-scale", type=float, default=1.0, help="multiply the load (2 = double)"
    )
    parser.add_argument("--slice", default=None, metavar="START:END", help="seconds of the profile")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--interval", type=float, default=15.0, help="control interval, s")
    parser.add_argument(
        "--max-replicas",
        type=int,
        default=None,
        help="the built-in policies' cap (default: 2 x the replicas the busiest minute keeps "
        "busy, + 4; see simulator/sizing.py)",
    )
    parser.add_argument(
        "--initial-replicas",
        type=int,
        default=None,
        help="replicas ready at the start (default: enough for the first 5 minutes at 75 %% busy)",
    )
    parser.add_argument(
        "--slo-wait", default=None, help="queueing delay target, e.g. 1s (default 1s)"
    )
    parser.add_argument(
        "--slo-share",
        type=float,
        default=None,
        help="share of requests that must meet --slo-wait (default 0.99)",
    )
    for q in LATENCY_FLAGS:
        parser.add_argument(
            f"--slo-{q}",
            default=None,
            help=f"end-to-end latency {q} target, e.g. 2s; SLO flags combine (all must hold)",
        )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="directory for the PNG plots and summary.json, summary.csv, timeline.csv "
        "(timeline.parquet with the parquet extra); see README 'Outputs'",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the summary as one JSON document on stdout (the table goes to stderr)",
    )


def _model(text: str) -> ReplicaModel:
    path = Path(text)
    if path.exists():
        return ReplicaModel.from_spec(load_spec(str(path))[0])
    return ReplicaModel.preset(text)


def check_numbers(args: argparse.Namespace) -> None:
    """The numeric flags every run takes, each refused in one line naming it."""
    interval = args.interval
    if not (math.isfinite(interval) and interval > 0):
        raise UsageError(f"--interval {interval:g}: must be > 0 seconds, e.g. 15")
    if args.seed < 0:
        raise UsageError(f"--seed {args.seed}: must be >= 0")
    if args.max_replicas is not None and args.max_replicas < 1:
        raise UsageError(f"--max-replicas {args.max_replicas}: must be >= 1")
    if args.initial_replicas is not None and args.initial_replicas < 0:
        raise UsageError(f"--initial-replicas {args.initial_replicas}: must be >= 0")


def _prepared(args: argparse.Namespace) -> tuple[profiles.Profile, list[str]]:
    """The profile (read, tokens, slice, scale) and its `profile: ...` notes for the header."""
    profile, notes = profile_from_args(args, _model(args.model))
    return profile, [f"profile: {note}" for note in notes]


def bounds_for(
    args: argparse.Namespace, profile: profiles.Profile, model: ReplicaModel
) -> tuple[int, int, str]:
    """(max_replicas, initial_replicas, how they were chosen): the flags, or sized from the
    load (`simulator.sizing`) when not given."""
    given_max, given_initial = args.max_replicas, args.initial_replicas
    if given_max is not None and given_initial is not None:
        return (
            given_max,
            given_initial,
            f"max_replicas {given_max}, {given_initial} ready at the start",
        )
    sized = sizing.size(profile, model)
    max_replicas = sized.max_replicas if given_max is None else given_max
    initial = min(sized.initial_replicas, max_replicas) if given_initial is None else given_initial
    parts = (
        sized.max_how if given_max is None else f"max_replicas {given_max}",
        sized.initial_how if given_initial is None else f"{initial} ready at the start",
    )
    return max_replicas, initial, ", ".join(parts)
