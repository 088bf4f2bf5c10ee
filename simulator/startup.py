"""Cold start: how long a new replica takes from creation to ready, per platform.

In: a count of replicas and a `numpy.random.Generator`. Out: `startup_delay_s`, one float64 per
replica in creation order -- the array `simulator.kernel.new_state` consumes (one delay per
created replica). `simulator.model.ReplicaModel` picks the model from a spec.

A platform's start is three parts drawn independently and added: provisioning (a node, or an
ACI container group), image pull and model load. Each part is lognormal, given by its median and
95th percentile (sigma = ln(p95 / median) / 1.645), so a part's 5th percentile is
median^2 / p95. The platform numbers below are EXAMPLES, not measurements, chosen to match the
ranges reported in public issues and summarised in replicast's data notes: "GPU replica cold
starts reported in public issues range from about 20 s to 2 minutes for the model server, plus
1 to 5 minutes when a new GPU node must be provisioned." Measure your own (image size, model
size, storage) and override the parts.

| platform         | provisioning (median, p95) | image pull   | model load | total p5..p95 |
|------------------|----------------------------|--------------|------------|---------------|
| aks-warm-node    | 2 s, 6 s (pod on a node)   | 8 s, 45 s    | 35 s, 80 s | ~24..108 s    |
| aks-new-gpu-node | 150 s, 300 s (GPU node)    | 45 s, 120 s  | 35 s, 80 s | ~150..410 s   |
| aci              | 30 s, 90 s (group create)  | 60 s, 180 s  | 35 s, 80 s | ~75..275 s    |

(aks-warm-node: the image is usually cached on the node -- seconds -- or a multi-GB pull takes
about a minute; a new node never has it cached; ACI pulls for every container group.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

import numpy as np
import numpy.typing as npt

from simulator.service import ModelError

FloatArray = npt.NDArray[np.float64]

__all__ = [
    "PLATFORM_STARTUP",
    "FixedStartup",
    "LognormalPart",
    "PartsStartup",
    "StartupModel",
    "fixed",
    "platform_startup",
]

_Z95 = 1.6448536269514722  # standard normal 95th percentile


class StartupModel(Protocol):
    """Draws one startup delay per replica (seconds, float64, >= 0)."""

    def draw(self, n: int, rng: np.random.Generator) -> FloatArray: ...


@dataclass(frozen=True, slots=True)
class FixedStartup:
    """Every replica is ready `delay_s` after it is created."""

    delay_s: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.delay_s) and self.delay_s >= 0):
            raise ModelError(f"startup.fixed_s: must be >= 0 (got {self.delay_s!r})")

    def draw(self, n: int, rng: np.random.Generator) -> FloatArray:
        return np.full(n, float(self.delay_s))


def fixed(seconds: float) -> FixedStartup:
    """Ready exactly `seconds` after creation."""
    return FixedStartup(seconds)


@dataclass(frozen=True, slots=True)
class LognormalPart:
    """One part of a start: lognormal with `median_s` and 95th percentile `p95_s`.

    `p95_s == median_s` is a fixed time; `median_s == 0` is a part that takes no time.
    """

    median_s: float
    p95_s: float

    def check(self, where: str) -> None:
        if not (math.isfinite(self.median_s) and self.median_s >= 0):
            raise ModelError(f"{where}.median_s: must be >= 0 (got {self.median_s!r})")
        if not (math.isfinite(self.p95_s) and self.p95_s >= self.median_s):
            raise ModelError(
                f"{where}.p95_s: must be >= median_s={self.median_s:g} (got {self.p95_s!r})"
            )
        if self.median_s == 0 and self.p95_s > 0:
            raise ModelError(f"{where}.p95_s: must be 0 when median_s is 0 (got {self.p95_s!r})")

    @property
    def sigma(self) -> float:
        """The log-scale standard deviation."""
        return math.log(self.p95_s / self.median_s) / _Z95 if self.median_s > 0 else 0.0

    @property
    def mean_s(self) -> float:
        return self.median_s * math.exp(self.sigma**2 / 2)

    def from_normal(self, z: FloatArray) -> FloatArray:
        """The part's times for standard normal draws `z`."""
        return self.median_s * np.exp(self.sigma * z)


_PARTS = ("provisioning", "image_pull", "model_load")


@dataclass(frozen=True, slots=True)
class PartsStartup:
    """A start as provisioning + image pull + model load, each a `LognormalPart`."""

    platform: str
    provisioning: LognormalPart
    image_pull: LognormalPart
    model_load: LognormalPart

    def __post_init__(self) -> None:
        for name in _PARTS:
            getattr(self, name).check(f"startup ({self.platform}).{name}")

    @property
    def mean_s(self) -> float:
        return self.provisioning.mean_s + self.image_pull.mean_s + self.model_load.mean_s

    def draw_parts(self, n: int, rng: np.random.Generator) -> dict[str, FloatArray]:
        """Each part's time per replica; the parts draw from one (3, n) normal block, so
        changing one part's numbers leaves the others' draws unchanged."""
        z = rng.standard_normal((len(_PARTS), n))
        return {name: getattr(self, name).from_normal(z[i]) for i, name in enumerate(_PARTS)}

    def draw(self, n: int, rng: np.random.Generator) -> FloatArray:
        parts = self.draw_parts(n, rng)
        total: FloatArray = parts["provisioning"] + parts["image_pull"] + parts["model_load"]
        return total


_MODEL_LOAD = LognormalPart(35.0, 80.0)  # weights from local or attached storage into GPU memory

PLATFORM_STARTUP: Mapping[str, PartsStartup] = MappingProxyType(
    {
        "aks-warm-node": PartsStartup(
            "aks-warm-node", LognormalPart(2.0, 6.0), LognormalPart(8.0, 45.0), _MODEL_LOAD
        ),
        "aks-new-gpu-node": PartsStartup(
            "aks-new-gpu-node", LognormalPart(150.0, 300.0), LognormalPart(45.0, 120.0), _MODEL_LOAD
        ),
        "aci": PartsStartup(
            "aci", LognormalPart(30.0, 90.0), LognormalPart(60.0, 180.0), _MODEL_LOAD
        ),
    }
)


def platform_startup(
    platform: str,
    *,
    provisioning: LognormalPart | None = None,
    image_pull: LognormalPart | None = None,
    model_load: LognormalPart | None = None,
) -> PartsStartup:
    """A platform's example start (`PLATFORM_STARTUP`), with any part replaced."""
    if platform not in PLATFORM_STARTUP:
        known = ", ".join(sorted(PLATFORM_STARTUP))
        raise ModelError(
            f"startup.platform: unknown platform {platform!r}; use one of {known}, or fixed_s"
        )
    base = PLATFORM_STARTUP[platform]
    return PartsStartup(
        platform,
        provisioning if provisioning is not None else base.provisioning,
        image_pull if image_pull is not None else base.image_pull,
        model_load if model_load is not None else base.model_load,
    )
