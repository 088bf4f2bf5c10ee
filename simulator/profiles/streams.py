"""Keyed randomness: one random stream per (root, place in the profile tree, block).

In: the caller's `numpy.random.Generator`, used once for a root number (`_root`). Out:
`_Streams`, whose `rng(block)` depends on nothing but its key, so the arrivals never depend
on how a profile is cut into windows (see `simulator.profiles`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_ROOT_BOUND = 2**63


@dataclass(frozen=True, slots=True)
class _Streams:
    """Random streams keyed by (root, place in the profile tree, block).

    A leaf calls `rng(block)`; a node with children or its own randomness hands each role a
    distinct `child(tag)`, so no two roles ever share a stream.
    """

    root: int
    path: tuple[int, ...] = ()

    def child(self, tag: int) -> _Streams:
        return _Streams(self.root, (*self.path, tag))

    def rng(self, block: int) -> np.random.Generator:
        seed = np.random.SeedSequence(self.root, spawn_key=(*self.path, block))
        return np.random.Generator(np.random.PCG64(seed))


def _root(rng: np.random.Generator) -> _Streams:
    return _Streams(int(rng.integers(_ROOT_BOUND)))
