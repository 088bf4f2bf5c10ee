"""A takeover or a restart never shortens a stabilization window (issue 14, failure 1).

Two replicas, "a" (the leader) and "b" (the standby), each with its own Lease elector and its
own state store, decide every 5 s on the same signals; the Deployment "web" on the fake API.
HPA on in_flight (2 per replica) with a 30 s scale-down window. 12 in flight hold 6 replicas;
at T = 60 s the load drops to 2 (HPA wants 1). A leader that lives on scales down once every
recommendation of the last 30 s is low: the last high one is at 55 s, so at 85 s (a
recommendation counts while strictly after now - 30). Whoever acts after a's death must not
scale down before that either.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes_asyncio.client import ApiClient

from controller.loop import Action, Cond, ControlLoop, LoopSettings
from tests.controller.fake_kube import FakeClock, FakeKube
from tests.controller.stories import (
    StubSource,
    configmaps,
    control_loop,
    deployment,
    elector,
    only,
    replicas,
    target,
)

pytestmark = pytest.mark.asyncio

T0 = 1_700_000_000.0
WINDOW = {
    "policy": "hpa",
    "metric": "in_flight",
    "target_per_replica": 2,
    "max_replicas": 10,
    "behavior": {"scaleDown": {"stabilizationWindowSeconds": 30}},
}
SETTINGS = LoopSettings(state_write_interval_s=10)


def replica(
    kube: tuple[FakeKube, ApiClient],
    clock: FakeClock,
    source: StubSource,
    who: str,
    settings: LoopSettings = SETTINGS,
) -> tuple[ControlLoop, Any]:
    lease = elector(kube, clock, who)
    loop = control_loop(
        kube, clock, source, [target("web", policy=WINDOW, interval_s=5)],
        leadership=lease, settings=settings,
        store=configmaps(kube, clock, who, write_interval_s=settings.state_write_interval_s),
    )  # fmt: skip
    return loop, lease


async def tick_both(a: tuple[ControlLoop, Any] | None, b: tuple[ControlLoop, Any]) -> None:
    """One 5 s step: every living replica renews (or tries to claim) its Lease and decides."""
    for replica_ in (a, b):
        if replica_ is not None:
            loop, lease = replica_
            await lease.step()
            await loop.round()


async def high_then_drop(
    kube: tuple[FakeKube, ApiClient],
    fake: FakeKube,
    clock: FakeClock,
    source: StubSource,
    settings: LoopSettings = SETTINGS,
) -> tuple[tuple[ControlLoop, Any], tuple[ControlLoop, Any]]:
    """0-55 s at 12 in flight (6 replicas), then the drop at 60 s, seen by both."""
    await deployment(fake, "web")
    a = replica(kube, clock, source, "a", settings)
    b = replica(kube, clock, source, "b", settings)
    source.values["web"] = {"in_flight": 12.0}
    for _ in range(12):  # 0, 5, ..., 55
        await tick_both(a, b)
        await fake.settle()
        clock.advance(5)
    assert replicas(fake, "web") == 6
    source.values["web"] = {"in_flight": 2.0}
    await tick_both(a, b)  # 60 s: both see the drop; the window holds 6
    assert replicas(fake, "web") == 6
    return a, b


async def first_scale_down(run: Any, clock: FakeClock, fake: FakeKube, until_s: float) -> float:
    """Step 5 s at a time until `web` has fewer than 6 replicas; the time it happened."""
    while clock.now() < T0 + until_s:
        clock.advance(5)
        await run()
        if replicas(fake, "web") < 6:
            return clock.now() - T0
    raise AssertionError(f"no scale-down by {until_s} s")


async def test_the_standby_that_takes_over_after_a_kill_keeps_the_window(
    kube: tuple[FakeKube, ApiClient], fake: FakeKube, clock: FakeClock, source: StubSource
) -> None:
    _, b = await high_then_drop(kube, fake, clock, source)
    clock.advance(3)  # a is killed (kill -9) 3 s after the drop: no release, no last save
    # b keeps deciding as a standby; 15 s after a's last renewal it claims the Lease and
    # joins its own history (complete: it saw every tick) with what a saved.
    at = await first_scale_down(lambda: tick_both(None, b), clock, fake, until_s=200)
    assert b[1].is_leader
    assert at >= 85  # never earlier than a would have: the window is whole
    assert at <= 90  # and not held longer than needed (b's own history has no gap)


@pytest.mark.parametrize(
    "write_interval_s", [10, 25], ids=["saved-at-the-drop", "saved-10-s-before"]
)
async def test_a_restart_with_the_same_identity_keeps_the_window(
    kube: tuple[FakeKube, ApiClient],
    fake: FakeKube,
    clock: FakeClock,
    source: StubSource,
    write_interval_s: int,
) -> None:
    settings = LoopSettings(state_write_interval_s=write_interval_s)
    await high_then_drop(kube, fake, clock, source, settings)
    clock.advance(3)
    # a restarts (a new process, same pod name): nothing in memory; the saved state is the
    # last one written: at 60 s (writes every 10 s), or at 50 s (every 25 s: 0, 25, 50).
    again = replica(kube, clock, source, "a", settings)
    await again[1].step()  # the Lease is still a's: it renews at once
    tick = only(await again[0].round(), "web")
    assert tick.action == Action.HOLD
    gap = again[0].targets["web"].conditions.get(Cond.HISTORY_GAP)
    if write_interval_s == 10:
        assert gap is None  # the saved history reaches the drop: nothing is unknown
    else:
        assert gap is not None and "scale-down held for 30 s" in gap.message
    at = await first_scale_down(lambda: tick_both(None, again), clock, fake, until_s=200)
    assert at >= 85


@pytest.mark.parametrize("window_s", [15, 30, 45])
async def test_a_window_is_never_skipped_when_the_saved_state_is_older_than_it(
    kube: tuple[FakeKube, ApiClient],
    fake: FakeKube,
    clock: FakeClock,
    source: StubSource,
    window_s: int,
) -> None:
    # The old leader saved at 0 s and died; a new one starts 60 s later with the load low.
    # Its restored history is older than the whole window, yet the last window before the
    # death is unknown: scale-down waits one full window from the takeover.
    await deployment(fake, "web", replicas=6)
    spec = {**WINDOW, "behavior": {"scaleDown": {"stabilizationWindowSeconds": window_s}}}
    first = control_loop(
        kube, clock, source, [target("web", policy=spec, interval_s=5)],
        leadership=elector(kube, clock, "a"), store=configmaps(kube, clock, "a"),
    )  # fmt: skip
    await first.leadership.step()  # type: ignore[attr-defined]
    source.values["web"] = {"in_flight": 12.0}
    await first.round()
    await first.save_state(force=True)
    clock.advance(60)
    second = control_loop(
        kube, clock, source, [target("web", policy=spec, interval_s=5)],
        leadership=elector(kube, clock, "b"), store=configmaps(kube, clock, "b"),
    )  # fmt: skip
    clock.advance(15)  # a's Lease expires as b watches it
    await second.leadership.step()  # type: ignore[attr-defined]
    clock.advance(15)
    assert await second.leadership.step()  # type: ignore[attr-defined]
    source.values["web"] = {"in_flight": 2.0}
    started = clock.now() - T0
    at = await first_scale_down(
        lambda: tick_both(None, (second, second.leadership)), clock, fake, until_s=400
    )
    assert at - started >= window_s
