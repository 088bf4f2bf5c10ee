"""`replicast run --shard INDEX/COUNT`: every target in exactly one shard, stably."""

from __future__ import annotations

import hashlib

import pytest

from controller.config import Config
from controller.options import UsageError, build_parser, options_from
from controller.sharding import Shard, ShardError, parse_shard, stable_hash

HPA = {"policy": "hpa", "metric": "in_flight", "target_per_replica": 8, "max_replicas": 10}


def fleet(n: int) -> Config:
    return Config.model_validate(
        {
            "apiVersion": "replicast/v1",
            "prometheus": {"url": "http://prometheus:9090"},
            "targets": [
                {
                    "name": f"model-{i}",
                    "scale_target": {"kind": "Deployment", "namespace": "llm", "name": f"m{i}"},
                    "signals": {"preset": "vllm"},
                    "policy": HPA,
                }
                for i in range(n)
            ],
        }
    )


def test_the_hash_is_the_documented_one() -> None:
    digest = hashlib.sha256(b"model-7").digest()
    assert stable_hash("model-7") == int.from_bytes(digest[:8], "big")


def test_every_target_lands_in_exactly_one_shard_and_the_shards_are_even() -> None:
    config = fleet(300)
    shards = [Shard(i, 3).select(config) for i in range(3)]
    names = [sorted(t.name for t in s.targets) for s in shards]
    assert sorted(n for group in names for n in group) == sorted(t.name for t in config.targets)
    assert all(70 <= len(group) <= 130 for group in names), [len(g) for g in names]
    # Adding targets moves none of the others: ownership depends on the name alone.
    bigger = [sorted(t.name for t in Shard(i, 3).select(fleet(400)).targets) for i in range(3)]
    assert all(set(old) <= set(new) for old, new in zip(names, bigger, strict=True))


@pytest.mark.parametrize("text", ["3/3", "-1/3", "1", "a/b", "0/0", "1/2/3"])
def test_a_bad_shard_is_one_line(text: str) -> None:
    with pytest.raises(ShardError, match="--shard"):
        parse_shard(text)


def test_each_shard_gets_a_lease_of_its_own() -> None:
    args = build_parser().parse_args(["config.yaml", "--shard", "1/4"])
    assert options_from(args).lease_name == "replicast-1-of-4"
    named = build_parser().parse_args(["config.yaml", "--shard", "1/4", "--lease-name", "llm"])
    assert options_from(named).lease_name == "llm-1-of-4"
    with pytest.raises(UsageError, match="INDEX must be 0 to COUNT - 1"):
        options_from(build_parser().parse_args(["config.yaml", "--shard", "4/4"]))
