"""A newcomer's first live run: `replicast emulate` + `replicast loadgen` as real processes.

The emulator is started on a free loopback port (`--port 0`; it prints its URL) and stopped
with SIGTERM at the end of each test, so nothing outlives it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.live.slots import SlotQueue
from tests.controller.processes import stop

REPLICAST = [sys.executable, "-m", "controller.dispatch"]


@pytest.fixture
def slow_emulator(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """One slot, 1 s per request: every request after the first queues; (process, URL, log).
    It drains for 0.2 s when stopped, then cancels the requests still queued."""
    log = tmp_path / "emulator.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*REPLICAST, "emulate", "--port", "0", "--slots", "1", "--service", "fixed:1.0",
             "--startup-s", "0", "--drain-s", "0.2"],
            stdout=subprocess.PIPE, stderr=sink,
        )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()  # "emulator: model emulator on http://..."
        assert " on http://127.0.0.1:" in line, line
        yield process, line.rsplit(" ", 1)[1].strip(), log
    finally:
        stop(process)


def test_a_load_generator_that_gives_up_leaves_no_traceback_in_the_emulator_log(
    slow_emulator: tuple[subprocess.Popen[bytes], str, Path],
) -> None:
    process, url, log = slow_emulator
    # 40 requests in 2 s against one 1 s slot; each client gives up after 0.3 s
    sent = subprocess.run(
        [*REPLICAST, "loadgen", "--url", f"{url}/v1/infer", "--profile", "constant:20:2",
         "--timeout", "0.3s", "--json"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    assert '"timeouts": ' in sent.stdout and '"timeouts": 0,' not in sent.stdout
    # the abandoned requests are still queued in the emulator; stopping it cancels them
    stop(process)
    assert process.returncode == 0
    text = log.read_text()
    assert "Traceback" not in text and "Error handling request" not in text, text


def test_emulate_help_names_the_replicast_command() -> None:
    shown = subprocess.run(
        [*REPLICAST, "emulate", "--help"], capture_output=True, text=True, check=True
    )
    assert shown.stdout.startswith("usage: replicast emulate ")


@pytest.mark.asyncio
async def test_waiters_cancelled_while_the_slot_is_handed_on_leave_quietly() -> None:
    queue = SlotQueue(1)
    await queue.acquire()  # the one slot is busy
    first, second = (asyncio.ensure_future(queue.acquire()) for _ in range(2))
    await asyncio.sleep(0)  # both wait in line
    first.cancel()
    second.cancel()  # both clients give up at once...
    queue.release()  # ...and the slot frees before they run: it skips both
    outcomes = await asyncio.gather(first, second, return_exceptions=True)
    assert all(isinstance(o, asyncio.CancelledError) for o in outcomes)
    assert (queue.running, queue.waiting) == (0, 0)
