"""A sweep's grid: what varies, as a YAML file or a mapping, expanded into one `Cell` a run.

In: a mapping (`replicast sweep GRID.yaml` reads it through `policies.yaml_input`):

    profile: [azure-conv, servegen-14d]        # any profile the simulator reads; a list = an axis
    model: gpu-llm                             # a preset, a model spec mapping, or a list of them
    slo: {wait_s: 1, share: 0.99}              # or {latency_s: 2, share: 0.95}; a list = an axis
    seeds: [1, 2, 3]
    startup_s: [60, 120]                       # replaces the model's startup (fixed); optional
    interval_s: 15                             # the control interval; optional
    slice: "0:3600"                            # seconds of each profile; optional
    policies:
      - {policy: hpa, metric: in_flight, target_per_replica: [5, 6, 7], max_replicas: 200}
      - {policy: planner, wait_target_s: 1, percentile: 0.99, slots_per_replica: 8}

Out: `Cell`s, the cartesian product of every axis, in a fixed order (profile, model, slo,
startup, interval, policy and its parameters, seed): a list value anywhere inside a policy spec
is an axis of its own. Every expanded spec is validated by the policy itself before anything
runs, and every problem is one line `grid.yaml:line:col: policies[0].key: why (policy hpa)`.
A spec without `max_replicas` gets one sized for its profile (`simulator.sizing`), as
`replicast compare` does.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import Field, ValidationError, field_validator

from policies import SpecError, autoscaler
from policies.problems import Loc, Positions, Problem, locate, parse_path, problems
from policies.spec import MAX_REPLICAS, StrictModel
from simulator.model import ReplicaModel
from simulator.profiles import Profile
from simulator.result import SloTarget

MAX_CELLS = 100_000
SWEPT_KEYS = ("profile", "model", "slo", "seeds", "startup_s", "interval_s", "rate_scale")


class GridError(ValueError):
    """A grid that cannot run: every problem, one line each."""

    def __init__(self, problems_: Sequence[Problem]) -> None:
        self.problems = tuple(problems_)
        super().__init__("\n".join(str(p) for p in self.problems))


class SloSpec(StrictModel):
    """One SLO target: `wait_s` (arrival to start of service) or `latency_s` (arrival to
    completion) at most that long for `share` of the requests."""

    wait_s: float | None = Field(default=None, gt=0, le=86_400)
    latency_s: float | None = Field(default=None, gt=0, le=86_400)
    share: float = Field(default=0.99, gt=0, le=1)

    @field_validator("latency_s")
    @classmethod
    def _one_of(cls, value: float | None, info: Any) -> float | None:
        if value is not None and info.data.get("wait_s") is not None:
            raise ValueError("give wait_s or latency_s, not both")
        return value

    def target(self) -> SloTarget:
        if self.latency_s is not None:
            return SloTarget(self.latency_s, "latency", self.share)
        return SloTarget(1.0 if self.wait_s is None else self.wait_s, "wait", self.share)

    @property
    def label(self) -> str:
        on, threshold = ("latency", self.latency_s) if self.latency_s else ("wait", self.wait_s)
        return f"{on} <= {threshold or 1.0:g} s for {self.share:.1%}"


def _listed(value: Any) -> Any:
    return value if isinstance(value, list) else [value]


class GridSpec(StrictModel):
    """The grid file's keys; each may be one value or a list of them (an axis)."""

    profile: list[str] = Field(min_length=1, max_length=1000)
    model: list[str | dict[str, Any]] = Field(default=["gpu-llm"], min_length=1, max_length=100)
    slo: list[SloSpec] = Field(default=[SloSpec(wait_s=1.0)], min_length=1, max_length=100)
    seeds: list[int] = Field(default=[1], min_length=1, max_length=10_000)
    startup_s: list[float | None] = Field(default=[None], min_length=1, max_length=100)
    interval_s: list[float] = Field(default=[15.0], min_length=1, max_length=100)
    rate_scale: list[float] = Field(default=[1.0], min_length=1, max_length=100)
    slice: str | None = None
    policies: list[dict[str, Any]] = Field(min_length=1, max_length=1000)

    @field_validator(*SWEPT_KEYS, mode="before")
    @classmethod
    def _axis(cls, value: Any) -> Any:
        return _listed(value)

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: list[int]) -> list[int]:
        bad = [s for s in value if not 0 <= s < 2**63]
        if bad:
            raise ValueError(f"a seed must be a whole number >= 0 (got {bad[0]})")
        return value

    @field_validator("startup_s", "interval_s", "rate_scale")
    @classmethod
    def _positive(cls, value: list[float | None]) -> list[float | None]:
        for v in value:
            if v is not None and not (math.isfinite(v) and 0 <= v <= 86_400):
                raise ValueError(f"must be between 0 and 86400 (got {v})")
        return value


@dataclass(frozen=True)
class Cell:
    """One simulation of the sweep. `params` are the policy spec's values (the swept ones and
    the fixed ones), `key` a digest of everything that decides the run (for `--resume`)."""

    index: int
    profile: str | Profile  # a name the simulator reads, or a profile object (the Python API)
    model: str | dict[str, Any] | ReplicaModel  # a preset, a file, a spec, or a model object
    slo: SloSpec
    seed: int
    startup_s: float | None
    interval_s: float
    rate_scale: float
    slice: str | None
    spec: dict[str, Any]
    swept: tuple[str, ...] = ()  # the policy keys that vary in this policy's block
    block: int = 0  # which entry of `policies`
    key: str = field(default="", compare=False)
    names: tuple[str, str] = ("", "")  # labels for a profile and a model given as objects

    @property
    def policy(self) -> str:
        return str(self.spec.get("policy", "?"))

    @property
    def label(self) -> str:
        """`hpa target_per_replica=6` (the policy and the values swept in its block)."""
        parts = [f"{k}={_short(_at(self.spec, k))}" for k in self.swept if _has(self.spec, k)]
        return " ".join([self.policy, *parts])

    @property
    def profile_label(self) -> str:
        return self.profile if isinstance(self.profile, str) else self.names[0] or "profile"

    @property
    def model_label(self) -> str:
        if isinstance(self.model, str):
            return self.model
        if isinstance(self.model, dict):
            return str(self.model.get("preset", "custom"))
        return self.names[1] or "model"

    def identity(self) -> dict[str, Any]:
        return {
            "profile": _identity(self.profile),
            "model": _identity(self.model),
            "slo": self.slo.model_dump(),
            "seed": self.seed,
            "startup_s": self.startup_s,
            "interval_s": self.interval_s,
            "rate_scale": self.rate_scale,
            "slice": self.slice,
            "spec": self.spec,
        }


def _has(spec: Mapping[str, Any], path: str) -> bool:
    try:
        _at(spec, path)
    except (KeyError, TypeError):
        return False
    return True


def _at(spec: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path (`behavior.scaleDown.stabilizationWindowSeconds`)."""
    value: Any = spec
    for part in path.split("."):
        value = value[part]
    return value


def _identity(value: Any) -> Any:
    """A value as JSON can hold it: an object (a profile, a model) by a digest of its pickle."""
    if isinstance(value, str | dict):
        return value
    return "pickle:" + hashlib.sha256(pickle.dumps(value)).hexdigest()[:16]


def _short(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else json.dumps(value, separators=(",", ":"))


def _digest(data: Mapping[str, Any]) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def expand_spec(spec: Mapping[str, Any]) -> tuple[list[dict[str, Any]], tuple[str, ...]]:
    """Every combination of a policy spec's list values (a list is an axis, at any depth;
    `policies` and `rules`, whose lists are the policy's own, are kept whole), and the swept
    keys as paths (`target_per_replica`, `behavior.scaleDown.stabilizationWindowSeconds`)."""
    axes: list[tuple[Loc, list[Any]]] = []

    def find(value: Any, loc: Loc) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                if str(k) in KEPT_WHOLE:
                    continue
                find(v, (*loc, str(k)))
        elif isinstance(value, list) and loc and value and not isinstance(value[0], Mapping):
            axes.append((loc, value))

    find(spec, ())
    swept = tuple(".".join(str(p) for p in loc) for loc, _ in axes)
    out = []
    for combo in itertools.product(*(values for _, values in axes)):
        expanded = json.loads(json.dumps(spec))
        for (loc, _), chosen in zip(axes, combo, strict=True):
            holder = expanded
            for part in loc[:-1]:
                holder = holder[part]
            holder[loc[-1]] = chosen
        out.append(expanded)
    return out, swept


# lists that are a policy's own values, not axes: combinators' members, schedule rules, a
# KEDA trigger list, HPA's metrics and scaling policies
KEPT_WHOLE = frozenset({"policies", "rules", "triggers", "metrics", "signals"})


def cells(spec: GridSpec) -> list[Cell]:
    """The grid's cells in order (see the module docstring)."""
    out: list[Cell] = []
    blocks = [expand_spec(p) for p in spec.policies]
    outer = itertools.product(
        spec.profile, spec.model, spec.slo, spec.startup_s, spec.interval_s, spec.rate_scale
    )
    for profile, model, slo, startup, interval, scale in outer:
        for block, (specs, swept) in enumerate(blocks):
            for policy_spec in specs:
                for seed in spec.seeds:
                    cell = Cell(
                        len(out), profile, model, slo, seed, startup, interval, scale,
                        spec.slice, policy_spec, swept, block,
                    )  # fmt: skip
                    out.append(_keyed(cell))
    return out


def _keyed(cell: Cell) -> Cell:
    return replace(cell, key=_digest(cell.identity()))


def count_cells(spec: GridSpec) -> int:
    per_block = sum(len(expand_spec(p)[0]) for p in spec.policies)
    outer = len(spec.profile) * len(spec.model) * len(spec.slo) * len(spec.startup_s)
    return outer * len(spec.interval_s) * len(spec.rate_scale) * per_block * len(spec.seeds)


def parse_grid(
    data: Any, source: str = "grid", positions: Positions | None = None
) -> tuple[GridSpec, list[Cell]]:
    """The validated grid and its cells, or GridError listing every problem in one line each
    (`source:line:col: key.path: why`, with the policy named for a policy's key)."""
    if not isinstance(data, Mapping):
        kind = "an empty file" if data is None else f"a {type(data).__name__}"
        raise GridError(
            [
                Problem(
                    source, "", f"expected a mapping with profile and policies (got {kind})", 1, 1
                )
            ]
        )
    try:
        spec = GridSpec.model_validate(data)
    except ValidationError as error:
        raise GridError(_sorted(problems(error, GridSpec, source, positions))) from None
    found: list[Problem] = []
    for i, block in enumerate(spec.policies):
        found += _block_problems(block, i, source, positions)
    n = count_cells(spec)
    if not found and n > MAX_CELLS:
        message = f"{n:,} cells is more than {MAX_CELLS:,}; sweep fewer values"
        found.append(Problem(source, "", message))
    if found:
        raise GridError(_sorted(found))
    return spec, cells(spec)


def _sorted(found: list[Problem]) -> list[Problem]:
    return sorted(found, key=lambda p: (p.line or 0, p.column or 0))


def _block_problems(
    block: Mapping[str, Any], i: int, source: str, positions: Positions | None
) -> list[Problem]:
    """Each combination of the block checked by its policy (a placeholder max_replicas when
    the block has none: the sweep sizes one per profile); each problem once."""
    where: Loc = ("policies", i)
    try:
        specs, _ = expand_spec(block)
    except (TypeError, ValueError) as error:
        return [locate(source, positions, where, str(error))]
    name = block.get("policy", "?")
    seen: dict[tuple[Loc, str], Problem] = {}
    for expanded in specs[:1000]:  # a block's values are checked with its first 1000 combos
        trial = {"max_replicas": MAX_REPLICAS, **expanded}
        try:
            autoscaler(trial)
        except SpecError as error:
            for path, message in error.problems:
                key = parse_path(path) if path else (("policy",) if error.where == "policy" else ())
                loc = (*where, *key)
                text = message if key == ("policy",) else f"{message} (policy {name})"
                at_key = message.startswith("unknown key")
                seen.setdefault((loc, message), locate(source, positions, loc, text, at_key))
        except Exception as error:  # a third-party policy's bug: one line, not a traceback
            text = f"cannot build the policy {name!r}: {type(error).__name__}: {error}"
            seen.setdefault((where, text), locate(source, positions, where, text))
    return list(seen.values())
