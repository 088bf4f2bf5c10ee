"""Spec validation: one error type, one line per problem, keys as the user wrote them.

In: a plain mapping (from YAML, JSON, a notebook). Out: frozen, validated pydantic models the
policies and guards read. Validation happens once, in `policies.autoscaler`, never per tick.

Every problem is reported as `<where>: <key path>: <what is wrong> (got <value>)`, e.g.
`hpa spec: metrics[0].target_per_replica: must be > 0 (got -1)`; all problems of a spec are
reported together in one `SpecError`.

Bounds: every number a spec takes has a finite range, shown in its model's JSON schema
(`minimum`/`maximum` of `Model.model_json_schema()`), so that no value makes a policy loop,
allocate or overflow (tests/test_spec_properties.py). NaN and infinities are refused
everywhere ("must be a finite number (got nan)"). The shared upper bounds:
- MAX_REPLICAS 10,000: every replica count (min_replicas, max_replicas, fallback replicas,
  schedule bounds, Knative's activation and initial scale), HPA policy values and Knative's
  scale rates (a rate of 10,000 takes one replica to the cap in one step);
- MAX_WINDOW_S 86,400 (one day): every window, delay, period, lead time and time target;
  MAX_SEASON_S 604,800 (seven days): a forecast season;
- MAX_FACTOR 100: dimensionless factors, gains, tolerances, margins and coefficients of
  variation (ki: per second);
- MAX_COUNT 10,000: other whole counts (flap-budget changes, failure thresholds, slots per
  replica, samples);
- MAX_QUANTITY 1e15: targets and thresholds in a signal's own units (Kubernetes quantities
  stop at 2^63 milli-units, about 9.2e15).
Anchored ranges stay as their anchors have them (HPA `periodSeconds` <= 1800, Knative's
stable window 6..3600 s, percentiles 0.5..0.9999).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from policies import problems

M = TypeVar("M", bound=BaseModel)


class SpecError(ValueError):
    """A spec (or saved state) that cannot be used. `problems` lists `(key path, message)`."""

    def __init__(self, where: str, problems: Sequence[tuple[str, str]]) -> None:
        self.where = where
        self.problems = tuple(problems)
        text = "; ".join(f"{path}: {msg}" if path else msg for path, msg in self.problems)
        super().__init__(f"{where}: {text}" if where else text)

    def __reduce__(self) -> tuple[type[SpecError], tuple[str, tuple[tuple[str, str], ...]]]:
        """Picklable as itself, so a worker process reports it instead of breaking its pool."""
        return (type(self), (self.where, self.problems))


MAX_REPLICAS = 10_000
MAX_WINDOW_S = 86_400.0
MAX_SEASON_S = 7 * 86_400
MAX_FACTOR = 100.0
MAX_COUNT = 10_000
MAX_QUANTITY = 1e15


class StrictModel(BaseModel):
    """Frozen; unknown keys are errors (reported with the keys that are allowed); NaN and
    infinities are refused in every float."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=False, allow_inf_nan=False
    )


def problems_of(
    error: ValidationError, root: type[BaseModel] | None = None, prefix: str = ""
) -> list[tuple[str, str]]:
    """pydantic's errors as `(key path, message)` pairs (`policies.problems` words them)."""
    found = problems.translate(error, root, problems.parse_path(prefix) if prefix else ())
    return [(problems.render_path(loc), message) for loc, message, _ in found]


def parse(model: type[M], data: Any, where: str, prefix: str = "") -> M:
    """Validate `data` as `model` or raise SpecError naming every problem."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise SpecError(where, problems_of(error, model, prefix)) from None


def parse_quantity(value: Any) -> float:
    """A Kubernetes resource.Quantity as a float: 0.1, "0.1", "100m", "2", "1k", "1Ki"."""
    if isinstance(value, bool):
        raise ValueError(
            f"must be a number or a Kubernetes quantity such as '100m' (got {value!r})"
        )
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(
            f"must be a number or a Kubernetes quantity such as '100m' (got {value!r})"
        )
    text = value.strip()
    suffixes = {
        "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
        "Ki": 1024.0, "Mi": 1024.0**2, "Gi": 1024.0**3, "Ti": 1024.0**4,
    }  # fmt: skip
    for suffix in sorted(suffixes, key=len, reverse=True):
        if text.endswith(suffix):
            try:
                return float(text[: -len(suffix)]) * suffixes[suffix]
            except ValueError:
                break
    try:
        return float(text)
    except ValueError:
        raise ValueError(
            f"must be a number or a Kubernetes quantity such as '100m' (got {value!r})"
        ) from None


# The bounds come before the validator, so that the JSON schema shows them as minimum/maximum.
Tolerance = Annotated[float, Field(ge=0, le=MAX_FACTOR), BeforeValidator(parse_quantity)]


# --- Kubernetes HPA `behavior`, accepted verbatim (camelCase, Kubernetes' own validation) ---

SelectPolicy = Literal["Max", "Min", "Disabled"]


class HPAScalingPolicy(StrictModel):
    type: Literal["Pods", "Percent"]
    value: int = Field(gt=0, le=MAX_REPLICAS)  # pods, or percent
    periodSeconds: int = Field(gt=0, le=1800)  # noqa: N815 - Kubernetes' field name


class HPAScalingRules(StrictModel):
    stabilizationWindowSeconds: int | None = Field(default=None, ge=0, le=3600)  # noqa: N815
    selectPolicy: SelectPolicy | None = None  # noqa: N815
    policies: list[HPAScalingPolicy] | None = Field(default=None, min_length=1)
    tolerance: Tolerance | None = None


class HPABehavior(StrictModel):
    scaleUp: HPAScalingRules | None = None  # noqa: N815
    scaleDown: HPAScalingRules | None = None  # noqa: N815


class FlapBudgetSpec(StrictModel):
    max_changes: int = Field(ge=0, le=MAX_COUNT)
    window_s: float = Field(gt=0, le=MAX_WINDOW_S)


class GuardSpec(StrictModel):
    """The guard keys every spec may carry beside `policy` and the policy's own keys."""

    min_replicas: int = Field(default=0, ge=0, le=MAX_REPLICAS)
    max_replicas: int = Field(ge=1, le=MAX_REPLICAS)
    behavior: HPABehavior | None = None
    starting_capacity: bool = False
    flap_budget: FlapBudgetSpec | None = None

    @model_validator(mode="after")
    def _min_not_above_max(self) -> GuardSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas ({self.min_replicas}) must be <= max_replicas ({self.max_replicas})"
            )
        return self


GUARD_KEYS: frozenset[str] = frozenset(GuardSpec.model_fields)
