"""Live load: replay a load profile against a real HTTP endpoint, open-loop, and summarize.

In: a `Profile` (`simulator.profiles`, the same arrivals the simulator replays), a loopback URL
(an emulator from `simulator.live.emulator`, or a local router in front of replicas), limits, and
injected collaborators (aiohttp session, clock, `numpy.random.Generator`). Out: a
`LoadSummary` -- sent, completed, errors, timeouts, drops, latency p50/p95/p99, intended vs
achieved rate, how late sends ran -- and, from `cmd_loadgen`, the same as text or JSON.

Open loop: each request is sent at its arrival time whether or not earlier ones have answered,
so a slow server sees the load a real population of users would send (a closed loop would slow
down with it and hide the queue). In-flight requests are capped: an arrival that finds
`max_in_flight` requests outstanding is dropped and counted, and the schedule goes on.
Latency is measured from the arrival's scheduled time, not from when it was sent, so a late
send counts against the server too (no coordinated omission).

It always stops by itself: at the end of the profile, after `max_requests` arrivals, or after
`max_duration_s` of sending -- whichever comes first -- then waits at most `request_timeout_s`
for answers and cancels what is left (counted as `unfinished`). Only loopback targets
(127.0.0.0/8, ::1, localhost) are allowed.

    replicast loadgen --url http://127.0.0.1:8000/v1/infer --profile diurnal:5:0.5:3600 \
        --speedup 60 --max-duration 90s
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import aiohttp
import numpy as np

from simulator.cli.args import UsageError, parse_duration_s
from simulator.live.base import Clock, MonotonicClock, is_loopback_host
from simulator.profile_args import PROFILE_HELP, add_profile_arguments, profile_from_args
from simulator.profiles import Profile

logger = logging.getLogger("simulator.loadgen")  # its name before it moved to simulator.live

CHUNK_S = 60.0  # seconds of (scaled) profile generated at a time


class LoadgenError(UsageError):
    """Options the load generator refuses; one line naming the option and the fix."""


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """Limits of one run; every run stops by itself (see the module docstring)."""

    max_requests: int = 100_000
    max_duration_s: float = 600.0
    max_in_flight: int = 256
    request_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        checks = (
            ("max_requests", self.max_requests, self.max_requests >= 1),
            ("max_duration_s", self.max_duration_s, 0 < self.max_duration_s < math.inf),
            ("max_in_flight", self.max_in_flight, self.max_in_flight >= 1),
            ("request_timeout_s", self.request_timeout_s, 0 < self.request_timeout_s < math.inf),
        )
        for name, value, ok in checks:
            if not ok:
                raise LoadgenError(f"{name}: must be > 0 and finite (got {value})")


@dataclass(frozen=True, slots=True)
class LoadSummary:
    """What happened. `intended = sent + dropped`; `sent = completed + errors + timeouts +
    unfinished`. Rates are per second of sending; latencies are over completed requests."""

    url: str
    stopped_by: str  # "profile end", "max_requests" or "max_duration"
    intended: int
    sent: int
    dropped: int
    completed: int
    errors: int
    timeouts: int
    unfinished: int
    schedule_s: float  # profile time covered (after time scaling)
    elapsed_s: float  # wall time from the first scheduled arrival to the end of sending
    intended_rate_rps: float
    achieved_rate_rps: float
    latency_p50_s: float | None
    latency_p95_s: float | None
    latency_p99_s: float | None
    send_lag_p99_s: float | None  # how late sends ran behind their schedule
    send_lag_max_s: float | None
    statuses: dict[str, int] = field(default_factory=dict)  # HTTP status or error kind -> count

    def lines(self) -> list[str]:
        """A few human-readable lines."""

        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value * 1000:.1f} ms"

        return [
            f"target {self.url}: stopped by {self.stopped_by} after {self.elapsed_s:.2f} s",
            f"intended {self.intended}, sent {self.sent}, dropped (in-flight cap) {self.dropped}",
            f"completed {self.completed}, errors {self.errors}, timeouts {self.timeouts},"
            f" unfinished {self.unfinished}",
            f"rate: intended {self.intended_rate_rps:.2f}/s,"
            f" achieved {self.achieved_rate_rps:.2f}/s",
            f"latency p50 {ms(self.latency_p50_s)}, p95 {ms(self.latency_p95_s)},"
            f" p99 {ms(self.latency_p99_s)}",
            f"send lag p99 {ms(self.send_lag_p99_s)}, max {ms(self.send_lag_max_s)}",
            "statuses: "
            + (", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items())) or "-"),
        ]


DEFAULTS = LoadOptions()


def check_loopback(url: str) -> str:
    """The URL when its host is loopback and its scheme http(s); LoadgenError otherwise."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise LoadgenError(f"--url {url}: give an http:// URL, e.g. http://127.0.0.1:8000/v1/infer")
    if not is_loopback_host(parsed.hostname):
        raise LoadgenError(
            f"--url {url}: only loopback targets are allowed (127.0.0.0/8, ::1, localhost),"
            f" not {parsed.hostname}"
        )
    return url


@dataclass(frozen=True, slots=True)
class RequestOutcome:
    """One request, for a caller that wants each (the sandbox's timeline): `due_s` is its
    scheduled time from the start of the run, `status` the HTTP status ("timeout" or an error
    kind otherwise); `latency_s` from `due_s` to the answer (None unless 2xx); `wait_s` the
    time it queued for a slot (a router's `X-Replicast-Wait-S` plus the server's own
    `queue_s`) and `service_s` the server's, when the answer says."""

    due_s: float
    status: str
    latency_s: float | None = None
    wait_s: float | None = None
    service_s: float | None = None


OnOutcome = Callable[[RequestOutcome], None]


@dataclass
class _Tally:
    """Outcomes as they arrive (one event loop: no locks)."""

    latencies_s: list[float] = field(default_factory=list)
    lags_s: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    intended: int = 0
    errors: int = 0
    timeouts: int = 0
    dropped: int = 0


def _arrivals(
    profile: Profile, rng: np.random.Generator
) -> Iterator[tuple[float, int | None, int | None]]:
    """(time_s, input_tokens, output_tokens) in time order, chunk by chunk."""
    for chunk in profile.iter_chunks(rng, chunk_s=CHUNK_S):
        inputs, outputs = chunk.input_tokens, chunk.output_tokens
        for i, time_s in enumerate(chunk.time_s.tolist()):
            yield (
                time_s,
                None if inputs is None else int(inputs[i]),
                None if outputs is None else int(outputs[i]),
            )


async def run_load(
    profile: Profile,
    url: str,
    *,
    options: LoadOptions | None = None,
    session: aiohttp.ClientSession | None = None,
    clock: Clock | None = None,
    rng: np.random.Generator | None = None,
    on_outcome: OnOutcome | None = None,
) -> LoadSummary:
    """Send `profile`'s arrivals to `url` open-loop (module docstring) and summarize;
    `on_outcome`, when given, is called with each request's `RequestOutcome` as it ends.

    Time scaling is the profile's own (`profile.time_scale(1 / 60)` replays an hour in a
    minute). A session made here allows `max_in_flight` connections; a given one should too,
    or its connection pool, not the schedule, bounds the load.
    """
    check_loopback(url)
    options = options if options is not None else LoadOptions()
    clock = clock if clock is not None else MonotonicClock()
    rng = rng if rng is not None else np.random.default_rng()
    if session is None:
        connector = aiohttp.TCPConnector(limit=options.max_in_flight)
        async with aiohttp.ClientSession(connector=connector) as own:
            return await _run(profile, url, options, own, clock, rng, on_outcome)
    return await _run(profile, url, options, session, clock, rng, on_outcome)


async def _run(
    profile: Profile,
    url: str,
    options: LoadOptions,
    session: aiohttp.ClientSession,
    clock: Clock,
    rng: np.random.Generator,
    on_outcome: OnOutcome | None = None,
) -> LoadSummary:
    sender = _Sender(url, session, clock, options, on_outcome)
    try:
        start_s = clock.now()
        sender.start_s = start_s
        stopped_by, end_s = await _schedule(profile, rng, options, clock, sender, start_s)
        # the schedule's window runs to its end even after its last arrival
        schedule_s = min(end_s, options.max_duration_s)
        await clock.sleep(max(0.0, start_s + schedule_s - clock.now()))
        elapsed_s = clock.now() - start_s
        unfinished = await sender.drain(options.request_timeout_s + 1.0)
    finally:  # cancelled or failed: no request outlives the run
        await sender.cancel_all()
    return _summary(url, sender.tally, stopped_by, unfinished, schedule_s, elapsed_s)


async def _schedule(
    profile: Profile,
    rng: np.random.Generator,
    options: LoadOptions,
    clock: Clock,
    sender: _Sender,
    start_s: float,
) -> tuple[str, float]:
    """Launch every arrival at its time until a limit; (what stopped it, profile time covered)."""
    stop_s = start_s + options.max_duration_s
    for time_s, input_tokens, output_tokens in _arrivals(profile, rng):
        if sender.tally.intended >= options.max_requests:
            return "max_requests", time_s  # [0, time_s) held every request sent
        due_s = start_s + time_s
        if due_s >= stop_s or clock.now() >= stop_s:
            return "max_duration", options.max_duration_s
        wait_s = due_s - clock.now()
        if wait_s > 0:
            await clock.sleep(wait_s)
        sender.launch(due_s, _body(input_tokens, output_tokens))
    return "profile end", profile.duration_s


class _Sender:
    """Sends one request per arrival as its own task, under the in-flight cap."""

    def __init__(
        self,
        url: str,
        session: aiohttp.ClientSession,
        clock: Clock,
        options: LoadOptions,
        on_outcome: OnOutcome | None = None,
    ) -> None:
        self.url, self.session, self.clock = url, session, clock
        self.on_outcome = on_outcome
        self.start_s = 0.0
        self.max_in_flight = options.max_in_flight
        self.timeout = aiohttp.ClientTimeout(total=options.request_timeout_s)
        self.tally = _Tally()
        self.in_flight: set[asyncio.Task[None]] = set()

    def launch(self, due_s: float, body: dict[str, int]) -> None:
        """Send now, or count a drop when `max_in_flight` requests are outstanding."""
        self.tally.intended += 1
        if len(self.in_flight) >= self.max_in_flight:
            self.tally.dropped += 1
            self._report(due_s, "dropped")
            return
        self.tally.lags_s.append(max(0.0, self.clock.now() - due_s))
        name = f"loadgen-request-{self.tally.intended}"
        task = asyncio.create_task(self._send(due_s, body), name=name)
        self.in_flight.add(task)
        task.add_done_callback(self.in_flight.discard)

    def _report(self, due_s: float, status: str, **parts: float | None) -> None:
        if self.on_outcome is not None:
            self.on_outcome(RequestOutcome(due_s - self.start_s, status, **parts))

    async def _send(self, due_s: float, body: dict[str, int]) -> None:
        tally = self.tally
        status = "?"
        parts: dict[str, float | None] = {}
        try:
            async with self.session.post(self.url, json=body, timeout=self.timeout) as response:
                payload = await response.read()
                status = str(response.status)
                tally.statuses[status] += 1
                if 200 <= response.status < 300:
                    latency_s = self.clock.now() - due_s
                    tally.latencies_s.append(latency_s)
                    if self.on_outcome is not None:
                        parts = {"latency_s": latency_s, **_parts(response.headers, payload)}
                else:
                    tally.errors += 1
        except TimeoutError:
            status = "timeout"
            tally.statuses[status] += 1
            tally.timeouts += 1
        except (aiohttp.ClientError, OSError) as error:
            status = type(error).__name__
            tally.statuses[status] += 1
            tally.errors += 1
        except Exception as error:  # counted, so the summary adds up, and shown: likely a bug
            logger.warning("%s: request failed unexpectedly: %r", self.url, error)
            status = type(error).__name__
            tally.statuses[status] += 1
            tally.errors += 1
        self._report(due_s, status, **parts)

    async def drain(self, timeout_s: float) -> int:
        """Wait for outstanding requests up to `timeout_s` (each has its own timeout, so this
        is a backstop), then cancel the rest; returns how many were cancelled."""
        timer = asyncio.ensure_future(self.clock.sleep(timeout_s))
        try:
            while self.in_flight and not timer.done():
                waiting: set[asyncio.Future[None]] = {*self.in_flight, timer}
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
        return await self.cancel_all()

    async def cancel_all(self) -> int:
        left = list(self.in_flight)
        cancelled = sum(task.cancel() for task in left)
        await asyncio.gather(*left, return_exceptions=True)
        return cancelled


def _parts(headers: Mapping[str, str], payload: bytes) -> dict[str, float | None]:
    """wait_s and service_s from an answer: a router's wait header plus the server's JSON."""
    try:
        answer = json.loads(payload)
    except ValueError:
        answer = None
    answer = answer if isinstance(answer, dict) else {}

    def number(value: object) -> float | None:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return float(value) if ok else None  # type: ignore[arg-type]

    try:
        routed = float(headers.get("X-Replicast-Wait-S", "nan"))
    except ValueError:
        routed = math.nan
    queued = number(answer.get("queue_s"))
    waits = [w for w in (routed, queued) if w is not None and math.isfinite(w)]
    return {"wait_s": sum(waits) if waits else None, "service_s": number(answer.get("service_s"))}


def _body(input_tokens: int | None, output_tokens: int | None) -> dict[str, int]:
    """The JSON body: the arrival's token counts, when the profile has them."""
    body = {}
    if input_tokens is not None:
        body["input_tokens"] = input_tokens
    if output_tokens is not None:
        body["output_tokens"] = output_tokens
    return body


def _quantile(values: Sequence[float], q: float) -> float | None:
    return float(np.quantile(values, q)) if values else None


def _summary(
    url: str,
    tally: _Tally,
    stopped_by: str,
    unfinished: int,
    schedule_s: float,
    elapsed_s: float,
) -> LoadSummary:
    intended = tally.intended
    sent = intended - tally.dropped
    return LoadSummary(
        url=url,
        stopped_by=stopped_by,
        intended=intended,
        sent=sent,
        dropped=tally.dropped,
        completed=len(tally.latencies_s),
        errors=tally.errors,
        timeouts=tally.timeouts,
        unfinished=unfinished,
        schedule_s=schedule_s,
        elapsed_s=elapsed_s,
        intended_rate_rps=intended / schedule_s if schedule_s > 0 else 0.0,
        achieved_rate_rps=sent / elapsed_s if elapsed_s > 0 else 0.0,
        latency_p50_s=_quantile(tally.latencies_s, 0.5),
        latency_p95_s=_quantile(tally.latencies_s, 0.95),
        latency_p99_s=_quantile(tally.latencies_s, 0.99),
        send_lag_p99_s=_quantile(tally.lags_s, 0.99),
        send_lag_max_s=max(tally.lags_s) if tally.lags_s else None,
        statuses=dict(tally.statuses),
    )


# --------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="replicast loadgen", description=cmd_loadgen.__doc__)
    p.add_argument(
        "--url", required=True, help="loopback endpoint, e.g. http://127.0.0.1:8000/v1/infer"
    )
    p.add_argument("--profile", required=True, help=PROFILE_HELP)
    add_profile_arguments(p)
    p.add_argument("--speedup", type=float, default=1.0, help="60 replays an hour in a minute")
    p.add_argument("--rate-scale", type=float, default=1.0, help="multiply the load (2 = double)")
    p.add_argument("--slice", default=None, metavar="START:END", help="seconds of the profile")
    p.add_argument("--max-requests", type=int, default=DEFAULTS.max_requests)
    p.add_argument("--max-duration", default="10m", help="stop sending after this, e.g. 90s")
    p.add_argument("--max-in-flight", type=int, default=DEFAULTS.max_in_flight)
    p.add_argument("--timeout", default="30s", help="per-request timeout")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    return p


def _profile(args: argparse.Namespace) -> Profile:
    try:
        profile, _ = profile_from_args(args)  # read, tokens, slice, scale
        if args.speedup != 1.0:
            profile = profile.time_scale(1.0 / args.speedup)
    except ValueError as error:  # ProfileError, TraceError, bad numbers
        raise LoadgenError(str(error).splitlines()[0]) from None
    return profile


def cmd_loadgen(argv: Sequence[str]) -> int:
    """replay a load profile against a loopback HTTP endpoint, open-loop, and summarize"""
    args = _parser().parse_args(argv)
    check_loopback(args.url)
    if not args.speedup > 0:
        raise LoadgenError(f"--speedup: must be > 0 (got {args.speedup})")
    options = LoadOptions(
        max_requests=args.max_requests,
        max_duration_s=parse_duration_s(args.max_duration),
        max_in_flight=args.max_in_flight,
        request_timeout_s=parse_duration_s(args.timeout),
    )
    profile = _profile(args)
    summary = asyncio.run(
        run_load(profile, args.url, options=options, rng=np.random.default_rng(args.seed))
    )
    if args.json:
        print(json.dumps(asdict(summary), indent=2))
    else:
        print("\n".join(summary.lines()))
    return 0
