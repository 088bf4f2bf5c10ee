"""Service time per request: how long one request holds one concurrency slot.

In: `Arrivals` (`simulator.profiles`; the LLM model reads their token counts) and a
`numpy.random.Generator` (the only randomness). Out: `service_s`, one float64 per request, drawn
all at once -- the array `simulator.kernel.new_state` consumes. `simulator.model.ReplicaModel`
bundles one of these with the startup model (`simulator.startup`) and the price
(`simulator.cost`).

Distributions are parameterised by their mean and coefficient of variation (CV = standard
deviation / mean), the two numbers a queueing model (Erlang-C with a variability correction)
reads. `TokenService` is deterministic given the token counts: an LLM request's time is its
prefill plus one decode step per further output token, with per-SKU coefficients fitted to the
splitwise measurements (`TOKEN_PERF`, `fit_splitwise`; see their docstrings for the rows used and
the fit error).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from itertools import combinations
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

import numpy as np
import numpy.typing as npt

from simulator.profiles import Arrivals

FloatArray = npt.NDArray[np.float64]

__all__ = [
    "TOKEN_PERF",
    "Empirical",
    "Exponential",
    "Fixed",
    "Gamma",
    "Lognormal",
    "ModelError",
    "ServiceModel",
    "SplitwiseRows",
    "TokenPerf",
    "TokenService",
    "fit_decode",
    "fit_prefill",
    "fit_splitwise",
    "read_splitwise",
]


class ModelError(ValueError):
    """Replica-model parameters that cannot be used; the message names the field and the fix."""


class ServiceModel(Protocol):
    """Draws one service time per arrival (seconds, float64, >= 0)."""

    def draw(self, arrivals: Arrivals, rng: np.random.Generator) -> FloatArray: ...


def _check(ok: bool, where: str, problem: str, value: object) -> None:
    if not ok:
        raise ModelError(f"{where}: {problem} (got {value!r})")


def _check_mean_cv(kind: str, mean_s: float, cv: float) -> None:
    _check(math.isfinite(mean_s) and mean_s > 0, f"{kind}.mean_s", "must be > 0", mean_s)
    _check(math.isfinite(cv) and cv >= 0, f"{kind}.cv", "must be >= 0", cv)


# --------------------------------------------------------------------------- distributions


@dataclass(frozen=True, slots=True)
class Fixed:
    """Every request takes `service_s` (CV 0: the M/D/c case)."""

    service_s: float

    def __post_init__(self) -> None:
        ok = math.isfinite(self.service_s) and self.service_s >= 0
        _check(ok, "fixed.service_s", "must be >= 0", self.service_s)

    def draw(self, arrivals: Arrivals, rng: np.random.Generator) -> FloatArray:
        return np.full(len(arrivals), float(self.service_s))


@dataclass(frozen=True, slots=True)
class Exponential:
    """Exponential with mean `mean_s` (CV 1: the M/M/c case Erlang-C is exact for)."""

    mean_s: float

    def __post_init__(self) -> None:
        _check_mean_cv("exponential", self.mean_s, 1.0)

    def draw(self, arrivals: Arrivals, rng: np.random.Generator) -> FloatArray:
        return rng.exponential(self.mean_s, len(arrivals))


@dataclass(frozen=True, slots=True)
class Lognormal:
    """Lognormal with mean `mean_s` and CV `cv`: a long right tail (sigma^2 = ln(1 + cv^2))."""

    mean_s: float
    cv: float

    def __post_init__(self) -> None:
        _check_mean_cv("lognormal", self.mean_s, self.cv)

    def draw(self, arrivals: Arrivals, rng: np.random.Generator) -> FloatArray:
        sigma2 = math.log1p(self.cv**2)
        mu = math.log(self.mean_s) - sigma2 / 2
        return rng.lognormal(mu, math.sqrt(sigma2), len(arrivals))


@dataclass(frozen=True, slots=True)
class Gamma:
    """Gamma with mean `mean_s` and CV `cv` (shape 1/cv^2; cv 1 is exponential, 0 is fixed)."""

    mean_s: float
    cv: float

    def __post_init__(self) -> None:
        _check_mean_cv("gamma", self.mean_s, self.cv)

    def draw(self, arrivals: Arrivals, rng: np.random.Generator) -> FloatArray:
        if self.cv == 0:
            return np.full(len(arrivals), float(self.mean_s))
        shape = 1.0 / self.cv**2
        return rng.gamma(shape, self.mean_s / shape, len(arrivals))


@dataclass(frozen=True, slots=True, eq=False)
class Empirical:
    """Each request takes one of `values_s`, drawn uniformly with replacement."""

    values_s: FloatArray = field(repr=False)

    def __post_init__(self) -> None:
        values = np.array(self.values_s, dtype=np.float64).ravel()
        _check(values.size > 0, "empirical.values_s", "must not be empty", [])
        bad = np.flatnonzero(~(np.isfinite(values) & (values >= 0)))
        if bad.size:
            i = int(bad[0])
            _check(False, f"empirical.values_s[{i}]", "must be a finite number >= 0", values[i])
        values.setflags(write=False)
        object.__setattr__(self, "values_s", values)

    def draw(self, arrivals: Arrivals, rng: np.random.Generator) -> FloatArray:
        return self.values_s[rng.integers(0, self.values_s.size, len(arrivals))]


# --------------------------------------------------------------------------- LLM tokens


@dataclass(frozen=True, slots=True)
class TokenPerf:
    """How fast one replica of one SKU runs one LLM: prefill and decode coefficients.

    prefill_s(n)  = prefill_base_s + prefill_s_per_input_token * n
                    + prefill_s_per_input_token_squared * n^2          (attention grows as n^2)
    decode step_s(b) = decode_s_per_output_token + decode_growth_s_per_sequence * (b - 1)
                    + decode_growth_s_per_sequence_squared * (b - 1)^2  (b: sequences in the batch)

    `max_batch_size` is the largest batch the source measured without running out of memory.
    """

    prefill_base_s: float
    prefill_s_per_input_token: float
    prefill_s_per_input_token_squared: float
    decode_s_per_output_token: float
    decode_growth_s_per_sequence: float
    decode_growth_s_per_sequence_squared: float
    max_batch_size: int
    source: str = ""

    def prefill_s(self, input_tokens: npt.ArrayLike) -> FloatArray:
        n = np.asarray(input_tokens, dtype=np.float64)
        return self.prefill_base_s + n * (
            self.prefill_s_per_input_token + n * self.prefill_s_per_input_token_squared
        )

    def time_per_output_token_s(self, batch_size: npt.ArrayLike) -> FloatArray:
        extra = np.asarray(batch_size, dtype=np.float64) - 1.0
        return self.decode_s_per_output_token + extra * (
            self.decode_growth_s_per_sequence + extra * self.decode_growth_s_per_sequence_squared
        )


_SPLITWISE = "splitwise perf model (Patel et al., ISCA 2024), llama2-70b; simulator/data"

# Fitted by `fit_splitwise()` from simulator/data/splitwise_perf.csv and rounded
# to 4 significant digits (tests/simulator/test_model.py refits and compares). Rows used:
# prefill -- batch 1, 128 output tokens, prompts of 128..8192 tokens; decode -- 512-token
# prompts, 128 output tokens, batch 1..64 (1..32 at tensor parallel 2: the batch-64 rows there
# report a prompt time below batch 2's and an end-to-end time 9x batch 32's, so they are not a
# consistent measurement -- likely memory-limited, 140 GB of fp16 weights in 160 GB).
# Error on every row used: prefill within 27% (21% on the median of each prompt size's repeats;
# the largest misses are 128-256-token prompts of 50-80 ms, whose repeats differ by up to 10%,
# and H100's 4096-token points, above the smooth curve), decode step within 5%.
# Read-only: pass your own mapping (`TokenService.for_perf(..., table=...)`) to override.
TOKEN_PERF: Mapping[str, TokenPerf] = MappingProxyType(
    {
        "a100-tp2-llama2-70b": TokenPerf(
            0.03861, 0.0003084, 7.123e-09, 0.05655, 0.0005482, 0.0, 32, _SPLITWISE
        ),
        "a100-tp4-llama2-70b": TokenPerf(
            0.04306, 0.0001549, 1.539e-08, 0.04498, 9.823e-05, 5.374e-06, 64, _SPLITWISE
        ),
        "a100-tp8-llama2-70b": TokenPerf(
            0.04883, 8.647e-05, 1.244e-08, 0.04493, 0.0002075, 3.232e-06, 64, _SPLITWISE
        ),
        "h100-tp2-llama2-70b": TokenPerf(
            0.02772, 0.0001127, 6.747e-09, 0.03734, 0.0002993, 5.538e-06, 32, _SPLITWISE
        ),
        "h100-tp4-llama2-70b": TokenPerf(
            0.03522, 5.535e-05, 8.06e-09, 0.02972, 0.000145, 3.265e-06, 64, _SPLITWISE
        ),
        "h100-tp8-llama2-70b": TokenPerf(
            0.04467, 2.231e-05, 1.04e-08, 0.02997, 0.0002816, 5.259e-07, 64, _SPLITWISE
        ),
    }
)


@dataclass(frozen=True, slots=True)
class TokenService:
    """An LLM request: overhead + prefill(input tokens) + step(batch) * (output tokens - 1).

    The prefill produces the first output token and each further token takes one decode step
    (splitwise's e2e_time = prompt_time + (token_size - 1) * token_time on its rows). The kernel
    needs every service time before the simulation runs, so the batch is an assumption, not the
    simulated concurrency: every request decodes in a batch of `batch_size` sequences --
    `simulator.model.ReplicaModel` uses `slots_per_replica` (a full replica) unless the spec
    gives a typical batch. At low load that overstates decode time by step(batch) / step(1) - 1
    (a100-tp4-llama2-70b: +2% at 8 slots, +6% at 16, +61% at 64). Not modelled: other requests'
    prefills stalling this request's decode, and decode slowing as the context grows (the
    splitwise batch-1 steps vary by < 7% with prompt length). Prompts above 8192 tokens
    extrapolate the fitted quadratic.
    """

    perf: TokenPerf
    batch_size: int
    overhead_s: float = 0.0
    perf_name: str = ""

    def __post_init__(self) -> None:
        where = f"llm_tokens ({self.perf_name or 'custom perf'})"
        batch, most = self.batch_size, self.perf.max_batch_size
        _check(batch >= 1, f"{where}.batch_size", "must be >= 1", batch)
        problem = (
            f"must be <= {most}, the largest batch measured for this SKU; lower "
            "slots_per_replica or give a smaller service.batch_size"
        )
        _check(batch <= most, f"{where}.batch_size", problem, batch)
        ok = math.isfinite(self.overhead_s) and self.overhead_s >= 0
        _check(ok, f"{where}.overhead_s", "must be >= 0", self.overhead_s)

    @classmethod
    def for_perf(
        cls,
        perf: str,
        batch_size: int,
        *,
        overhead_s: float = 0.0,
        table: Mapping[str, TokenPerf] | None = None,
    ) -> TokenService:
        """The model for one entry of `table` (default `TOKEN_PERF`), e.g. a100-tp4-llama2-70b."""
        table = table if table is not None else TOKEN_PERF
        if perf not in table:
            known = ", ".join(sorted(table))
            raise ModelError(f"llm_tokens.perf: unknown {perf!r}; use one of {known}")
        return cls(table[perf], batch_size, overhead_s, perf)

    @property
    def time_per_output_token_s(self) -> float:
        """The decode step at the assumed batch."""
        return float(self.perf.time_per_output_token_s(self.batch_size))

    def draw(self, arrivals: Arrivals, rng: np.random.Generator) -> FloatArray:
        if arrivals.input_tokens is None or arrivals.output_tokens is None:
            given = (("input", arrivals.input_tokens), ("output", arrivals.output_tokens))
            missing = " or ".join(name for name, tokens in given if tokens is None)
            raise ModelError(
                f"llm_tokens: the arrivals have no {missing} token counts; replay a "
                "token-bearing trace (e.g. simulator.traces.azure_conv()) or add them with "
                "profile.with_tokens(input_tokens, output_tokens)"
            )
        decode_steps = np.maximum(arrivals.output_tokens - 1, 0)
        return (
            self.overhead_s
            + self.perf.prefill_s(arrivals.input_tokens)
            + self.time_per_output_token_s * decode_steps
        )


# --------------------------------------------------------------------------- fitting


def fit_prefill(
    input_tokens: npt.ArrayLike, prefill_s: npt.ArrayLike
) -> tuple[float, float, float]:
    """(base_s, s_per_token, s_per_token_squared) >= 0 minimising the squared relative error."""
    n = np.asarray(input_tokens, dtype=np.float64)
    return _nonnegative_fit(np.column_stack([np.ones_like(n), n, n * n]), prefill_s)


def fit_decode(batch_size: npt.ArrayLike, step_s: npt.ArrayLike) -> tuple[float, float, float]:
    """(s_per_token, growth_s_per_sequence, growth_squared) >= 0, least relative squares.

    Non-negative so the step never shrinks as the batch grows, also past the measured batches.
    """
    extra = np.asarray(batch_size, dtype=np.float64) - 1.0
    return _nonnegative_fit(np.column_stack([np.ones_like(extra), extra, extra * extra]), step_s)


def _nonnegative_fit(design: FloatArray, measured: npt.ArrayLike) -> tuple[float, float, float]:
    """Non-negative least squares on relative error, exactly, by trying every column subset
    (the optimum is the unconstrained fit on its own support); fine for three columns."""
    y = np.asarray(measured, dtype=np.float64)
    weighted, target = design / y[:, None], np.ones_like(y)
    best: tuple[float, FloatArray] | None = None
    n_cols = design.shape[1]
    for size in range(1, n_cols + 1):
        for cols in combinations(range(n_cols), size):
            coef, *_ = np.linalg.lstsq(weighted[:, cols], target, rcond=None)
            if np.all(coef >= 0):
                full = np.zeros(n_cols)
                full[list(cols)] = coef
                residual = float(np.sum((weighted @ full - target) ** 2))
                if best is None or residual < best[0]:
                    best = (residual, full)
    assert best is not None  # one column with positive data always fits with coef >= 0
    base, linear, squared = (float(c) for c in best[1])
    return base, linear, squared


SPLITWISE_CSV = "splitwise_perf.csv"
_NAMES = ("model", "hardware", "tensor_parallel")
_NUMBERS = ("prompt_size", "batch_size", "token_size", "prompt_time", "token_time", "e2e_time")


@dataclass(frozen=True, slots=True, eq=False)
class SplitwiseRows:
    """Splitwise-format measurements, one entry per row, times converted from ms to seconds."""

    config: npt.NDArray[np.str_]  # `<gpu>-tp<n>-<model>`, e.g. a100-tp4-llama2-70b
    prompt_size: FloatArray
    batch_size: FloatArray
    token_size: FloatArray
    prompt_time_s: FloatArray
    token_time_s: FloatArray
    e2e_time_s: FloatArray

    def prefill_rows(self, config: str) -> npt.NDArray[np.bool_]:
        """The rows the prefill fit uses: batch 1, 128 output tokens."""
        rows = (self.config == config) & (self.batch_size == 1) & (self.token_size == 128)
        return np.asarray(rows, dtype=np.bool_)

    def decode_rows(self, config: str) -> npt.NDArray[np.bool_]:
        """The rows the decode fit uses: 512-token prompts, 128 output tokens."""
        rows = (self.config == config) & (self.prompt_size == 512) & (self.token_size == 128)
        return np.asarray(rows, dtype=np.bool_)


def read_splitwise(path: str | Path | None = None) -> SplitwiseRows:
    """Rows in splitwise's perf_model.csv format; default: the subset in simulator/data."""
    if path is None:
        source = f"simulator/data/{SPLITWISE_CSV}"
        text = resources.files("simulator").joinpath("data", SPLITWISE_CSV).read_text()
    else:
        source, text = str(path), Path(path).read_text()
    header, *lines = text.strip().splitlines()
    names = header.split(",")
    missing = [name for name in (*_NAMES, *_NUMBERS) if name not in names]
    if missing:
        raise ModelError(f"{source}: line 1: missing column(s) {', '.join(missing)}")
    cells = np.array([line.split(",") for line in lines], dtype=np.str_).reshape(len(lines), -1)
    model, hardware, tp = (cells[:, names.index(name)] for name in _NAMES)
    gpu = np.array([h.split("-")[0] for h in hardware], dtype=np.str_)
    config = np.char.add(np.char.add(np.char.add(gpu, "-tp"), tp), np.char.add("-", model))
    numbers = [_numbers(source, name, cells[:, names.index(name)]) for name in _NUMBERS]
    sizes, times_ms = numbers[:3], numbers[3:]
    return SplitwiseRows(config, *sizes, *(t / 1e3 for t in times_ms))


def _numbers(source: str, name: str, column: npt.NDArray[np.str_]) -> FloatArray:
    try:
        return column.astype(np.float64)
    except ValueError:
        line, text = next((i, t) for i, t in enumerate(column, start=2) if not _is_number(t))
        raise ModelError(
            f"{source}: line {line}: {name}: must be a number (got {text!r})"
        ) from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def fit_splitwise(path: str | Path | None = None) -> dict[str, TokenPerf]:
    """Fit a `TokenPerf` per configuration (`SplitwiseRows.config`) on the rows its
    `prefill_rows` and `decode_rows` select; `max_batch_size` is the largest decode batch.
    Default: the rows shipped in simulator/data (which, and why, next to `TOKEN_PERF`).
    """
    rows = read_splitwise(path)
    out: dict[str, TokenPerf] = {}
    for config in (str(c) for c in np.unique(rows.config)):
        pre, dec = rows.prefill_rows(config), rows.decode_rows(config)
        if pre.any() and dec.any():
            out[config] = TokenPerf(
                *fit_prefill(rows.prompt_size[pre], rows.prompt_time_s[pre]),
                *fit_decode(rows.batch_size[dec], rows.token_time_s[dec]),
                max_batch_size=int(rows.batch_size[dec].max()),
                source=f"splitwise perf model, {config}",
            )
    return out
