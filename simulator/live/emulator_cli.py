"""The emulator's command line: `python -m simulator.emulator` and `replicast emulate`.

In: arguments (a replica model preset or YAML file, and options on top of it). Out: an
`Emulator` (`simulator.live.emulator`) served on a loopback port until SIGTERM or SIGINT, which
drain it; an unusable argument is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from policies import yaml_input
from simulator.live.emulator import Emulator, EmulatorError, serve
from simulator.model import ReplicaModel

_SERVICE_FORMS = (
    "fixed:SECONDS, exponential:MEAN_S, lognormal:MEAN_S:CV, gamma:MEAN_S:CV, "
    "llm_tokens:PERF[:BATCH]"
)


def service_spec(text: str) -> dict[str, Any]:
    """`exponential:2.0` -> the replica model's service spec ({"kind": ..., "mean_s": 2.0})."""
    kind, *args = text.split(":")
    keys = {
        "fixed": ("service_s",),
        "exponential": ("mean_s",),
        "lognormal": ("mean_s", "cv"),
        "gamma": ("mean_s", "cv"),
    }
    try:
        if kind in keys and len(args) == len(keys[kind]):
            return {"kind": kind, **{k: float(v) for k, v in zip(keys[kind], args, strict=True)}}
        if kind == "llm_tokens" and len(args) in (1, 2):
            spec: dict[str, Any] = {"kind": kind, "perf": args[0]}
            if len(args) == 2:
                spec["batch_size"] = int(args[1])
            return spec
    except ValueError:
        pass
    raise EmulatorError(f"--service {text}: use one of {_SERVICE_FORMS}")


def build_model(args: argparse.Namespace) -> ReplicaModel:
    """The replica model from --model (a preset or YAML file), the other options on top."""
    spec: dict[str, Any] = {
        "slots_per_replica": 8,
        "service": {"kind": "exponential", "mean_s": 2.0},
        "startup": {"fixed_s": 0.0},
    }
    if args.model is not None:
        path = Path(args.model)
        if path.exists():
            try:
                loaded = yaml_input.safe_load(path.read_text())
            except yaml_input.YamlInputError as error:
                raise EmulatorError(f"--model {path}: {error}") from None
            if not isinstance(loaded, dict):
                raise EmulatorError(f"--model {path}: must be a replica model mapping")
            spec = loaded
        else:
            spec = {"preset": args.model}
    if args.slots is not None:
        spec = {**spec, "slots_per_replica": args.slots}
    if args.service is not None:
        spec = {**spec, "service": service_spec(args.service)}
    if args.timeout_s is not None:
        spec = {**spec, "timeout_s": args.timeout_s}
    if args.queue_limit is not None:
        spec = {**spec, "queue_limit": args.queue_limit}
    # prices are not the emulator's business: any sku/platform pair loads
    return ReplicaModel.from_spec({**spec, "sku": None, "platform": None})


def parser(prog: str = "python -m simulator.emulator") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="an emulated inference server whose latency follows a replica model",
    )
    p.add_argument("--port", type=int, default=8000, help="0: any free port (printed)")
    p.add_argument("--host", default="127.0.0.1", help="loopback only: 127.0.0.1, ::1, localhost")
    p.add_argument("--model", default=None, help="replica model preset or YAML file")
    p.add_argument("--slots", type=int, default=None, help="concurrency slots (default 8)")
    p.add_argument("--service", default=None, help=_SERVICE_FORMS)
    p.add_argument(
        "--startup-s",
        type=float,
        default=None,
        help="seconds before /readyz answers 200 (default: one draw from the model's startup)",
    )
    p.add_argument("--timeout-s", type=float, default=None, help="drop requests queued this long")
    p.add_argument("--queue-limit", type=int, default=None, help="refuse (429) beyond this queue")
    p.add_argument("--model-name", default="emulator", help="the model_name metric label")
    p.add_argument("--seed", type=int, default=None, help="seed of the service/startup draws")
    p.add_argument("--drain-s", type=float, default=5.0, help="grace for requests on SIGTERM")
    p.add_argument(
        "--warm-if-exists",
        type=Path,
        default=None,
        metavar="FILE",
        help="ready at once if FILE exists at start (the sandbox's already-running replicas)",
    )
    p.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="run the model this many times faster: startup, service and timeout divided by it",
    )
    return p


async def run_until_stopped(
    emulator: Emulator, *, host: str, port: int, drain_s: float, stop: asyncio.Event
) -> None:
    """Serve until `stop` is set (SIGTERM/SIGINT in `main`), then drain and close."""
    async with serve(emulator, host=host, port=port, drain_s=drain_s) as served:
        print(f"emulator: model {emulator.model_name} on {served.url}", flush=True)
        await stop.wait()


async def _main(args: argparse.Namespace) -> None:
    warm = args.warm_if_exists is not None and args.warm_if_exists.exists()
    emulator = Emulator(
        build_model(args),
        startup_s=0.0 if warm else args.startup_s,
        model_name=args.model_name,
        rng=np.random.default_rng(args.seed),
        time_scale=args.time_scale,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await run_until_stopped(
        emulator, host=args.host, port=args.port, drain_s=args.drain_s, stop=stop
    )


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m simulator.emulator") -> int:
    """The process entry point (`python -m simulator.emulator`, or `replicast emulate` as
    `prog`): errors are one line on stderr and exit code 2; SIGTERM drains and exits 0."""
    args = parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        asyncio.run(_main(args))
    except (ValueError, OSError) as error:  # SpecError, EmulatorError, ModelError, bind errors
        print(f"emulator: {str(error).splitlines()[0]}", file=sys.stderr)
        return 2
    return 0


def cmd_emulate(argv: Sequence[str]) -> int:
    """serve an emulated inference server (vLLM metric names) on a loopback port"""
    return main(argv, prog="replicast emulate")


if __name__ == "__main__":
    sys.exit(main())
