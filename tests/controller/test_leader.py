"""Leader election on a Lease in the fake API server, with a fake clock (no real waits).

Two electors, "a" and "b", share one Lease `replicast` in `default`; the clock starts at
2023-11-14T22:13:20Z and moves only when a test moves it. Settings: a 15 s lease, a 10 s renew
deadline, a 2 s retry period (client-go's defaults for a controller of this size).
"""

from __future__ import annotations

import asyncio

import pytest
from kubernetes_asyncio.client import ApiClient

from controller.leader import LeaderElector, LeaderSettings
from tests.controller.fake_kube import FakeClock, FakeKube

T0 = "2023-11-14T22:13:20.000000Z"


def elector(kube: tuple[FakeKube, ApiClient], clock: FakeClock, identity: str) -> LeaderElector:
    return LeaderElector(
        api=kube[1], namespace="default", name="replicast", identity=identity, clock=clock
    )


@pytest.fixture
def a(kube: tuple[FakeKube, ApiClient], clock: FakeClock) -> LeaderElector:
    return elector(kube, clock, "a")


@pytest.fixture
def b(kube: tuple[FakeKube, ApiClient], clock: FakeClock) -> LeaderElector:
    return elector(kube, clock, "b")


def spec(fake: FakeKube) -> dict[str, object]:
    lease = fake.lease("replicast")
    assert lease is not None
    return dict(lease["spec"])


@pytest.mark.asyncio
async def test_only_one_of_two_electors_holds_the_lease(
    fake: FakeKube, a: LeaderElector, b: LeaderElector
) -> None:
    assert await a.step() is True  # creates the Lease
    assert await b.step() is False
    assert (a.is_leader, b.is_leader) == (True, False)
    assert spec(fake) == {
        "holderIdentity": "a",
        "leaseDurationSeconds": 15,
        "acquireTime": T0,
        "renewTime": T0,
        "leaseTransitions": 0,
    }


@pytest.mark.asyncio
async def test_the_holder_renews(
    fake: FakeKube, a: LeaderElector, b: LeaderElector, clock: FakeClock
) -> None:
    await a.step()
    await b.step()
    # Two seconds later: a renews, b still waits.
    clock.advance(2)
    assert await a.step() is True
    assert await b.step() is False
    lease = spec(fake)
    assert (lease["holderIdentity"], lease["acquireTime"]) == ("a", T0)
    assert lease["renewTime"] == "2023-11-14T22:13:22.000000Z"
    assert lease["leaseTransitions"] == 0


@pytest.mark.asyncio
async def test_takeover_after_the_lease_expires(
    fake: FakeKube, a: LeaderElector, b: LeaderElector, clock: FakeClock
) -> None:
    await a.step()
    await b.step()  # b first sees the Lease at t=0
    # a stops renewing (hung, partitioned). 9 s later it still acts: within its renew deadline.
    clock.advance(9)
    assert a.is_leader
    # 11 s: a stops acting by itself, but b waits for the full 15 s lease.
    clock.advance(2)
    assert not a.is_leader
    assert await b.step() is False
    # 16 s: the lease has expired on b's clock; b takes over.
    clock.advance(5)
    assert await b.step() is True
    lease = spec(fake)
    assert (lease["holderIdentity"], lease["leaseTransitions"]) == ("b", 1)
    assert lease["acquireTime"] == "2023-11-14T22:13:36.000000Z"
    # a comes back: it sees b and stays a follower.
    assert await a.step() is False
    assert (a.is_leader, b.is_leader) == (False, True)


@pytest.mark.asyncio
async def test_a_renewing_holder_is_never_taken_over(
    a: LeaderElector, b: LeaderElector, clock: FakeClock
) -> None:
    for _ in range(20):  # 40 s of renewals every 2 s
        assert await a.step() is True
        assert await b.step() is False
        clock.advance(2)


@pytest.mark.asyncio
async def test_stopping_releases_the_lease_so_another_takes_over_at_once(
    fake: FakeKube, a: LeaderElector, b: LeaderElector
) -> None:
    stopping = asyncio.Event()
    running = asyncio.create_task(a.run(stopping), name="elector a")
    async with asyncio.timeout(5):
        while len(list(fake["put"])) < 2:  # created, then renewed twice
            await asyncio.sleep(0.001)
    assert a.is_leader
    stopping.set()
    await running
    assert not a.is_leader
    assert "holderIdentity" not in spec(fake)
    # No expiry to wait for: b takes the released lease on its first try.
    assert await b.step() is True
    assert spec(fake)["leaseTransitions"] == 1


@pytest.mark.asyncio
async def test_racing_electors_one_wins_the_other_gets_a_409(
    fake: FakeKube, a: LeaderElector, b: LeaderElector
) -> None:
    await a.step()
    await a.release()
    # Both read the free lease and both write it: the second write carries a stale
    # resourceVersion and gets a 409 (or, if one was quick enough, the other sees its claim).
    outcomes = await asyncio.gather(a.step(), b.step())
    assert sorted(outcomes) == [False, True]
    assert spec(fake)["holderIdentity"] == ("a" if outcomes[0] else "b")


@pytest.mark.asyncio
async def test_a_conflicting_update_is_lost_quietly_and_retried_next_period(
    fake: FakeKube, a: LeaderElector, b: LeaderElector
) -> None:
    await a.step()
    await a.release()
    fake.inject(fake["put"], stale=True)  # someone else wrote the lease first
    assert await b.step() is False  # a 409, not an exception
    assert await b.step() is True


@pytest.mark.asyncio
async def test_failed_renewals_end_leadership_at_the_renew_deadline(
    fake: FakeKube, a: LeaderElector, clock: FakeClock
) -> None:
    await a.step()
    fake.inject(fake["put"], status=500, times=100)
    clock.advance(8)
    assert await a.step() is True  # renewal failed, but the last one is 8 s old
    clock.advance(3)
    assert await a.step() is False  # 11 s: past the 10 s deadline, a stops acting


def test_a_renew_deadline_at_or_past_the_lease_duration_is_rejected() -> None:
    with pytest.raises(ValueError, match="renew_deadline_s: must be > 0 and < lease_duration_s"):
        LeaderSettings(lease_duration_s=10, renew_deadline_s=10)


@pytest.mark.asyncio
async def test_a_wall_clock_step_neither_ends_nor_stretches_leadership(
    fake: FakeKube, a: LeaderElector, b: LeaderElector, clock: FakeClock
) -> None:
    await a.step()
    # The wall clock of a's node steps forward an hour: a's renew deadline is monotonic, so
    # it still leads, and its renewals go on.
    clock.step_wall(3600)
    assert a.is_leader
    clock.advance(2)
    assert await a.step() is True
    # Back two hours: nothing changes either; the deadline is 10 s after the last renewal.
    clock.step_wall(-7200)
    clock.advance(9)
    assert a.is_leader
    clock.advance(2)
    assert not a.is_leader  # 11 s of monotonic time without a renewal


@pytest.mark.asyncio
async def test_a_challenger_whose_wall_clock_jumps_ahead_still_waits_the_lease_out(
    fake: FakeKube, a: LeaderElector, b: LeaderElector, clock: FakeClock
) -> None:
    await a.step()
    assert await b.step() is False  # b sees the Lease now (its monotonic time)
    clock.step_wall(3600)  # the shared fake clock's wall moves; renewTime looks an hour old
    assert await b.step() is False  # b judges expiry by its own monotonic time, not renewTime
    clock.advance(15)
    assert await b.step() is True  # a never renewed: 15 s after b first saw it


@pytest.mark.asyncio
async def test_renewals_and_a_release_never_race_each_other(
    fake: FakeKube, a: LeaderElector
) -> None:
    # The fake clock makes `run` renew back to back; a release while it does never gets a 409.
    stopping = asyncio.Event()
    running = asyncio.create_task(a.run(stopping))
    try:
        async with asyncio.timeout(5):
            while a.renewals < 5:
                await asyncio.sleep(0.001)
    finally:
        stopping.set()
        await running
    assert "holderIdentity" not in spec(fake)
