"""The simulator's act step: a platform that caps at a quota, refuses when it is used up and
fails inside an outage, and the autoscaler's history that counts only what was done."""

from __future__ import annotations

from policies import autoscaler
from simulator import profiles
from simulator.engine import run
from simulator.model import ReplicaModel
from simulator.provision import Platform

MODEL = ReplicaModel.from_spec(
    {
        "slots_per_replica": 4,
        "service": {"kind": "fixed", "service_s": 1.0},
        "startup": {"fixed_s": 0},
    }
)
HPA = {"policy": "hpa", "metric": "in_flight", "target_per_replica": 1, "max_replicas": 40}


def outcomes(result: object) -> list[tuple[str | None, int, int | None]]:
    return [(r.outcome, r.replicas, r.applied_replicas) for r in result.records]  # type: ignore[attr-defined]


def test_a_quota_caps_a_scale_up_then_refuses_the_next_one() -> None:
    # 60 req/s of 1 s requests at 1 in flight a replica want ever more; the quota is 5.
    result = run(
        profiles.constant(60, 120), HPA, MODEL, seed=1, interval_s=15, initial_replicas=2,
        platform=Platform(quota_replicas=5),
    )  # fmt: skip
    seen = outcomes(result)
    assert seen[0] == ("capped", 6, 5)  # 2 -> 6 (HPA's +4) stops at the quota: 5
    assert seen[1:3] == [("refused", 10, 5)] * 2  # then nothing more, every interval
    assert result.summary.max_replicas <= 40  # decisions still say what the policy wanted
    assert max(r.applied_replicas or 0 for r in result.records) == 5


def test_an_outage_fails_every_scale_and_the_rate_limit_budget_is_not_spent() -> None:
    # Scale calls fail for the first 20 s; HPA's +4 pods / 100 % per 15 s is then intact.
    failing = run(
        profiles.constant(60, 60), HPA, MODEL, seed=1, interval_s=15, initial_replicas=2,
        platform=Platform(outages_s=((0.0, 20.0),)),
    )  # fmt: skip
    first, second = failing.records[0], failing.records[1]
    assert (first.outcome, first.applied_replicas) == ("failed", 2)  # at 15 s: still 2
    # at 30 s nothing was recorded for the failed +4: the full scale-up rate is available
    assert (second.outcome, second.current_replicas, second.applied_replicas) == ("applied", 2, 6)


def test_the_engine_commits_every_decision() -> None:
    result = run(profiles.constant(20, 300), HPA, MODEL, seed=2, initial_replicas=1)
    assert result.records and all(r.outcome == "applied" for r in result.records)
    a = autoscaler(HPA)
    assert a.spec["max_replicas"] == 40
