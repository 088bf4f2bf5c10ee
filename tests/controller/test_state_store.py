"""The policies' state in ConfigMaps: buckets, coalesced writes, takeovers, a fleet that fits.

Against the fake Kubernetes API (RBAC of deploy/rbac.yaml enforced) on a fake clock.
"""

from __future__ import annotations

import json

import pytest
from kubernetes_asyncio.client import ApiClient

from controller.errors import PermanentError, TemporaryError
from controller.state_store import ConfigMapStore, bucket_of
from tests.controller.fake_kube import CONFIGMAPS, FakeClock, FakeKube

pytestmark = pytest.mark.asyncio


def store(
    kube: tuple[FakeKube, ApiClient], clock: FakeClock, who: str, **more: object
) -> ConfigMapStore:
    return ConfigMapStore(
        kube[1],
        namespace="default",
        prefix="replicast",
        identity=who,
        clock=clock,
        **more,  # type: ignore[arg-type]
    )


def busy_hpa_entry(n: int) -> dict[str, object]:
    """About the size of a busy hpa target's entry: 20 recommendations and some events."""
    recs = [[1_700_000_000.0 + 15 * i, 3 + (i + n) % 5] for i in range(20)]
    return {
        "policy": {"version": 1, "policy": "hpa", "guards": {"recommendations": recs}},
        "shadow": {},
    }


async def test_entries_round_trip_and_writes_are_coalesced(
    kube: tuple[FakeKube, ApiClient], fake: FakeKube, clock: FakeClock
) -> None:
    a = store(kube, clock, "a", write_interval_s=10)
    a.put("web", {"policy": {"n": 1}})
    assert await a.flush() == 1  # a first write is never held back
    assert a.put("web", {"policy": {"n": 1}}) is False  # unchanged: nothing to write
    a.put("web", {"policy": {"n": 2}})
    clock.advance(5)
    assert await a.flush() == 0  # changed, but its bucket was written 5 s ago
    clock.advance(5)
    assert await a.flush() == 1  # 10 s: written
    b = store(kube, clock, "b")
    assert (await b.load(["web", "api"])) == {"web": {"version": 2, "policy": {"n": 2}}}
    [cm] = fake.live(CONFIGMAPS)
    assert cm["metadata"]["name"] == f"replicast-state-{bucket_of('web', 16)}"
    assert cm["metadata"]["annotations"]["replicast.io/written-by"] == "a"
    assert json.loads(cm["data"]["web"])["policy"] == {"n": 2}


async def test_five_hundred_busy_targets_fit_and_take_at_most_sixteen_writes(
    kube: tuple[FakeKube, ApiClient], fake: FakeKube, clock: FakeClock
) -> None:
    # One Lease annotation held all of it before: 500 x ~650 B is over its 200,000-byte cap.
    a = store(kube, clock, "a")
    names = [f"model-{i:03d}" for i in range(500)]
    for i, name in enumerate(names):
        a.put(name, busy_hpa_entry(i))
    total = sum(a.sizes().values())
    assert total > 200_000
    assert await a.flush() <= 16
    assert len(fake.live(CONFIGMAPS)) <= 16
    loaded = await store(kube, clock, "b").load(names)
    assert set(loaded) == set(names)


async def test_a_late_write_of_the_old_leader_is_overwritten_while_the_new_one_leads(
    kube: tuple[FakeKube, ApiClient], fake: FakeKube, clock: FakeClock
) -> None:
    old, new = store(kube, clock, "old"), store(kube, clock, "new")
    old.put("web", {"policy": {"by": "old", "n": 1}})
    await old.flush(force=True)
    await new.load(["web"])  # the takeover reads the bucket (its resourceVersion with it)
    old.put("web", {"policy": {"by": "old", "n": 2}})
    await old.flush(force=True)  # the old leader's last save lands after the takeover's read
    new.put("web", {"policy": {"by": "new"}})
    assert await new.flush(force=True) == 1  # 409, re-read, still the leader: written
    assert (await old.load(["web"]))["web"]["policy"] == {"by": "new"}
    # A replica that no longer leads gives up instead: the newer leader's state wins.
    deposed = store(kube, clock, "old", leading=lambda: False)
    await deposed.load(["web"])
    new.put("web", {"policy": {"by": "new", "n": 2}})
    await new.flush(force=True)
    deposed.put("web", {"policy": {"by": "old", "n": 3}})
    with pytest.raises(TemporaryError, match="this replica no longer leads"):
        await deposed.flush(force=True)
    assert (await new.load(["web"]))["web"]["policy"] == {"by": "new", "n": 2}


async def test_a_bucket_over_a_configmaps_size_says_to_shard(
    kube: tuple[FakeKube, ApiClient], clock: FakeClock
) -> None:
    a = store(kube, clock, "a", buckets=1)
    a.put("huge", {"policy": {"blob": "x" * 950_000}})
    with pytest.raises(PermanentError, match=r"shard the targets \(replicast run --shard"):
        await a.flush(force=True)
