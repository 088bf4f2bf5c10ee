"""Stories about the live load generator (simulator/live/loadgen.py), against loopback servers.

A `Recorder` server notes when each request arrives (monotonic time) and how many are in
flight, then answers after a delay of the test's choosing; it runs on 127.0.0.1 (a free port)
and stops at the end of each test. Timings are real but short; tolerances allow lateness only.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import numpy as np
import pytest
from aiohttp import web

import controller.dispatch
from simulator.live.emulator import Emulator, serve
from simulator.live.loadgen import (
    LoadgenError,
    LoadOptions,
    LoadSummary,
    RequestOutcome,
    check_loopback,
    cmd_loadgen,
    run_load,
)
from simulator.model import ReplicaModel
from simulator.profiles import Profile, constant, request_log
from simulator.service import Fixed
from simulator.startup import FixedStartup

LATE_S = 0.06  # how late a send may run on a loaded machine


class Recorder:
    """A server that records arrivals; `delay_s(i)` and `status(i)` shape the i-th answer."""

    def __init__(
        self,
        delay_s: Callable[[int], float] = lambda i: 0.0,
        status: Callable[[int], int] = lambda i: 200,
    ) -> None:
        self.delay_s, self.status = delay_s, status
        self.arrivals_s: list[float] = []
        self.bodies: list[object] = []
        self.in_flight = self.max_in_flight = 0

    async def handle(self, request: web.Request) -> web.Response:
        i = len(self.arrivals_s)
        self.arrivals_s.append(time.monotonic())
        self.bodies.append(await request.json())
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay_s(i))
        finally:
            self.in_flight -= 1
        return web.json_response({}, status=self.status(i))

    def offsets_s(self) -> list[float]:
        return [t - self.arrivals_s[0] for t in self.arrivals_s]


@contextlib.asynccontextmanager
async def recording(recorder: Recorder) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/infer", recorder.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/infer"
    finally:
        await runner.cleanup()


def every(gap_s: float, n: int) -> Profile:
    """n arrivals, one every gap_s, from 0."""
    return request_log(np.arange(n) * gap_s, duration_s=n * gap_s)


def assert_adds_up(summary: LoadSummary) -> None:
    s = summary
    assert s.intended == s.sent + s.dropped
    assert s.sent == s.completed + s.errors + s.timeouts + s.unfinished
    assert sum(s.statuses.values()) == s.completed + s.errors + s.timeouts


async def load(profile: Profile, url: str, **options: float) -> LoadSummary:
    opts = LoadOptions(**options)  # type: ignore[arg-type]
    return await run_load(profile, url, options=opts, rng=np.random.default_rng(7))


@pytest.mark.asyncio
async def test_open_loop_sends_on_schedule_while_a_slow_server_holds_every_request() -> None:
    # ten arrivals 0.1 s apart; each answer takes 1 s, so all ten are outstanding at once
    recorder = Recorder(delay_s=lambda i: 1.0)
    async with recording(recorder) as url:
        summary = await load(every(0.1, 10), url)
    expected = [0.1 * i for i in range(10)]
    for got, want in zip(recorder.offsets_s(), expected, strict=True):
        assert want - 0.01 <= got < want + LATE_S  # sent at its time, not after an answer
    assert recorder.max_in_flight == 10
    assert summary.completed == 10 and summary.stopped_by == "profile end"
    assert summary.latency_p50_s is not None and 1.0 <= summary.latency_p50_s < 1.0 + LATE_S
    assert summary.intended_rate_rps == pytest.approx(10.0)
    assert_adds_up(summary)


@pytest.mark.asyncio
async def test_time_scaling_replays_forty_seconds_in_four_tenths() -> None:
    recorder = Recorder()
    profile = request_log([0.0, 10.0, 20.0, 30.0], duration_s=40.0).time_scale(1 / 100)
    began = time.monotonic()
    async with recording(recorder) as url:
        summary = await load(profile, url)
    took_s = time.monotonic() - began
    for got, want in zip(recorder.offsets_s(), [0.0, 0.1, 0.2, 0.3], strict=True):
        assert want - 0.01 <= got < want + LATE_S
    assert summary.schedule_s == pytest.approx(0.4)
    assert summary.intended_rate_rps == pytest.approx(10.0)
    assert 0.4 <= took_s < 0.4 + 0.3
    assert_adds_up(summary)


@pytest.mark.asyncio
async def test_max_requests_stops_an_hour_long_profile_at_once() -> None:
    recorder = Recorder()
    async with recording(recorder) as url:
        summary = await load(constant(1000.0, 3600.0), url, max_requests=25)
    assert summary.stopped_by == "max_requests"
    assert summary.intended == summary.sent == summary.completed == len(recorder.arrivals_s) == 25
    assert summary.elapsed_s < 0.5
    assert_adds_up(summary)


@pytest.mark.asyncio
async def test_max_duration_stops_sending_after_that_long() -> None:
    recorder = Recorder()
    async with recording(recorder) as url:
        summary = await load(constant(50.0, 3600.0), url, max_duration_s=0.3)
    assert summary.stopped_by == "max_duration"
    assert 0.3 <= summary.elapsed_s < 0.3 + LATE_S
    assert summary.schedule_s == pytest.approx(0.3)
    # Poisson at 50/s for 0.3 s: 15 expected, sd 3.9
    assert 3 <= summary.intended <= 30
    assert all(t < 0.3 + LATE_S for t in recorder.offsets_s())
    assert_adds_up(summary)


@pytest.mark.asyncio
async def test_in_flight_cap_drops_arrivals_and_keeps_the_schedule() -> None:
    # 30 arrivals over 0.3 s; each answer takes 0.5 s; at most 5 outstanding
    recorder = Recorder(delay_s=lambda i: 0.5)
    async with recording(recorder) as url:
        summary = await load(every(0.01, 30), url, max_in_flight=5)
    assert (summary.sent, summary.dropped, summary.completed) == (5, 25, 5)
    assert recorder.max_in_flight == 5
    # the schedule was not held up by the full pipe: sending ended on time
    assert 0.3 <= summary.elapsed_s < 0.3 + LATE_S
    assert summary.achieved_rate_rps < summary.intended_rate_rps
    assert_adds_up(summary)


@pytest.mark.asyncio
async def test_errors_and_timeouts_are_counted_and_the_summary_adds_up() -> None:
    # every 3rd answer is a 500; every 4th takes 2 s against a 0.2 s request timeout
    recorder = Recorder(
        delay_s=lambda i: 2.0 if i % 4 == 3 else 0.0,
        status=lambda i: 500 if i % 3 == 2 else 200,
    )
    began = time.monotonic()
    async with recording(recorder) as url:
        summary = await load(every(0.02, 12), url, request_timeout_s=0.2)
    assert time.monotonic() - began < 1.0  # the slow answers were not waited for
    assert summary.timeouts == 3  # i = 3, 7, 11
    assert summary.errors == 3  # i = 2, 5, 8 (11 timed out first)
    assert summary.completed == 6
    assert summary.statuses == {"200": 6, "500": 3, "timeout": 3}
    assert_adds_up(summary)


@pytest.mark.asyncio
async def test_a_cancelled_run_leaves_no_request_behind() -> None:
    recorder = Recorder(delay_s=lambda i: 5.0)
    async with recording(recorder) as url:
        run = asyncio.ensure_future(load(every(0.01, 100), url))
        await asyncio.sleep(0.1)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        left = [t for t in asyncio.all_tasks() if t.get_name().startswith("loadgen-request")]
        assert left == []


@pytest.mark.asyncio
async def test_token_counts_reach_an_emulator_and_its_metrics() -> None:
    replica = ReplicaModel(4, Fixed(0.01), FixedStartup(0.0))
    profile = request_log(
        [0.0, 0.05, 0.1], input_tokens=[100, 200, 300], output_tokens=[5, 6, 7], duration_s=0.15
    )
    emulator = Emulator(replica, startup_s=0.0)
    async with serve(emulator) as served:
        summary = await load(profile, f"{served.url}/v1/infer")
    assert summary.completed == 3
    exposition = emulator.metrics.exposition().decode()
    assert 'vllm:prompt_tokens_total{engine="0",model_name="emulator"} 600.0' in exposition
    assert 'vllm:generation_tokens_total{engine="0",model_name="emulator"} 18.0' in exposition


@pytest.mark.asyncio
async def test_each_outcome_is_reported_with_its_wait_and_service() -> None:
    # one 0.1 s slot, three arrivals 0.01 s apart and a cap of 2 in flight: the first is served
    # at once, the second waits ~0.09 s in the emulator's queue, the third is dropped; each
    # outcome says when it was due and, when served, its wait and service (sandbox timeline)
    replica = ReplicaModel(1, Fixed(0.1), FixedStartup(0.0))
    seen: list[RequestOutcome] = []
    async with serve(Emulator(replica, startup_s=0.0)) as served:
        summary = await run_load(
            every(0.01, 3), f"{served.url}/v1/infer", options=LoadOptions(max_in_flight=2),
            rng=np.random.default_rng(7), on_outcome=seen.append,
        )  # fmt: skip
    assert summary.completed == 2 and len(seen) == 3
    by_due = sorted(seen, key=lambda o: o.due_s)
    assert [o.status for o in by_due] == ["200", "200", "dropped"]
    assert [o.due_s for o in by_due] == pytest.approx([0.0, 0.01, 0.02])
    first, second, _ = by_due
    assert first.service_s == pytest.approx(0.1) and second.service_s == pytest.approx(0.1)
    assert first.wait_s is not None and first.wait_s < 0.03
    assert second.wait_s is not None and 0.08 <= second.wait_s < 0.09 + LATE_S
    assert second.latency_s is not None and second.latency_s >= second.wait_s + 0.1


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.1:8000/v1/infer", "http://example.com/x", "http://0.0.0.0:80/", "ftp://[::1]/"],
)
def test_non_loopback_targets_are_refused_in_one_line(url: str) -> None:
    with pytest.raises(LoadgenError) as refused:
        cmd_loadgen(["--url", url, "--profile", "constant:1:1"])
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"--url {url}:")


def test_the_replicast_command_reports_a_refused_target_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(controller.dispatch, "_load_command", lambda name: cmd_loadgen)
    argv = ["loadgen", "--url", "http://192.168.1.5:8000/v1/infer", "--profile", "constant:1:1"]
    assert controller.dispatch.main(argv) == 2
    assert capsys.readouterr().err == (
        "replicast loadgen: --url http://192.168.1.5:8000/v1/infer: only loopback targets are"
        " allowed (127.0.0.0/8, ::1, localhost), not 192.168.1.5\n"
    )


def test_loopback_targets_are_accepted() -> None:
    for url in ("http://127.0.0.1:8000/v1/infer", "http://localhost/", "http://[::1]:9/x"):
        assert check_loopback(url) == url


def test_command_line_runs_and_prints_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    async def served_run() -> int:
        emulator = Emulator(ReplicaModel(2, Fixed(0.0), FixedStartup(0.0)), startup_s=0.0)
        async with serve(emulator) as served:
            argv = ["--url", f"{served.url}/v1/infer", "--profile", "constant:20:10"]
            argv += ["--speedup", "20", "--max-requests", "5"]
            return await asyncio.to_thread(cmd_loadgen, argv)

    assert asyncio.run(served_run()) == 0
    out = capsys.readouterr().out
    assert "stopped by max_requests" in out and "sent 5" in out
