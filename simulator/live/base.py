"""What the live tools share: a monotonic clock they are given, and the loopback-only rule.

In: nothing (definitions). Out: the `Clock` protocol with the real `MonotonicClock` (tests
inject a fake one), and `is_loopback_host`, which the emulator and the load generator both
check before they touch a socket.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from typing import Protocol


class Clock(Protocol):
    """Monotonic seconds and sleeping (the live simulator measures durations, not dates)."""

    def now(self) -> float: ...

    async def sleep(self, delay_s: float) -> None: ...


class MonotonicClock:
    """The real clock: `time.monotonic` and `asyncio.sleep`."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, delay_s: float) -> None:
        await asyncio.sleep(max(0.0, delay_s))


def is_loopback_host(host: str) -> bool:
    """True for `localhost`, 127.0.0.0/8 and ::1 (brackets allowed): the only hosts we touch."""
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
