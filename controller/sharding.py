"""Sharding: a fleet larger than one process runs as N controllers, each with its own targets.

`replicast run --shard INDEX/COUNT` keeps the targets whose name hashes to INDEX: `stable_hash`
is the first 8 bytes of SHA-256 of the target's name read big-endian, and a target belongs to
shard `stable_hash(name) % COUNT`. The hash depends on nothing but the name, so every replica
of every shard, on every release, agrees on who owns what, and adding targets moves none of the
others. Each shard elects its own leader on its own Lease (`replicast-<INDEX>-of-<COUNT>`
unless `--lease-name` is given, which then gets the same suffix) and keeps its state in its own
ConfigMaps (controller/state_store.py). deploy/components/sharded runs three shards.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from controller.config import Config

_SHARD = re.compile(r"^(\d{1,4})/(\d{1,4})$")


class ShardError(ValueError):
    """A --shard value that cannot be used."""


def stable_hash(name: str) -> int:
    """The first 8 bytes of SHA-256 of `name`, big-endian: the same in every process."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big")


@dataclass(frozen=True, slots=True)
class Shard:
    index: int
    count: int

    def owns(self, name: str) -> bool:
        return stable_hash(name) % self.count == self.index

    def lease_name(self, base: str) -> str:
        return f"{base}-{self.index}-of-{self.count}"

    def select(self, config: Config) -> Config:
        """`config` with only this shard's targets (a shard may own none: it then idles)."""
        mine = [t for t in config.targets if self.owns(t.name)]
        return config.model_copy(update={"targets": mine})


def parse_shard(text: str) -> Shard:
    """`0/3` -> Shard(0, 3); INDEX from 0 to COUNT - 1."""
    match = _SHARD.match(text.strip())
    if not match:
        raise ShardError(f"--shard: expected INDEX/COUNT such as 0/3 (got {text!r})")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 0 <= index < count:
        raise ShardError(f"--shard {text}: INDEX must be 0 to COUNT - 1, and COUNT >= 1")
    return Shard(index, count)
