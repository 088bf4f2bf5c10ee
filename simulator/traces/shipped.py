"""The traces shipped in `simulator/data` (licences and citations in ATTRIBUTION.md there).

In: nothing but options. Out: the Azure LLM inference traces 2023 (`azure_conv`, `azure_code`)
as request logs, ServeGen's 14-day language series as a rate profile, and `with_token_source`,
which gives any profile the Azure traces' token pairs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from simulator.profiles import Profile, RateProfile, RequestLog
from simulator.traces.base import OnBadRow, TokenSource, Within
from simulator.traces.rate_series import read_rate_series
from simulator.traces.request_logs import read_request_log


@contextmanager
def _packaged(name: str) -> Iterator[Path]:
    with resources.as_file(resources.files("simulator").joinpath("data", name)) as path:
        yield path


def azure_conv(*, on_bad_row: OnBadRow = "error") -> RequestLog:
    """Azure LLM inference trace 2023, conversation: 19,366 requests over about an hour."""
    with _packaged("AzureLLMInferenceTrace_conv.csv.gz") as path:
        return read_request_log(path, on_bad_row=on_bad_row)


def azure_code(*, on_bad_row: OnBadRow = "error") -> RequestLog:
    """Azure LLM inference trace 2023, code: 8,819 requests over about an hour (CV ~13)."""
    with _packaged("AzureLLMInferenceTrace_code.csv.gz") as path:
        return read_request_log(path, on_bad_row=on_bad_row)


def servegen_language_14d(*, within: Within = "poisson", cv: float | None = None) -> RateProfile:
    """ServeGen language model M, 14 days of total rate per 10 min (mean ~196 req/s).

    `within="renewal"` uses each window's measured inter-arrival CV (or `cv` for all).
    """
    with _packaged("servegen_language_m_large_10min.csv") as path:
        return read_rate_series(path, within=within, cv=cv)


def with_token_source(profile: Profile, source: TokenSource) -> Profile:
    """`profile` with an (input, output) token pair on every arrival, replacing any it has.

    `"azure-conv"` / `"azure-code"` draw pairs from the embedded Azure trace's rows (its joint
    distribution: a long prompt keeps its own answer length), `(IN, OUT)` gives every arrival
    the same pair. Draws are keyed by the profile's own random streams (`Profile.with_tokens`),
    so the same seed gives the same tokens, and a slice keeps the full run's.
    """
    if isinstance(source, tuple):
        return profile.with_tokens([source[0]], [source[1]])
    readers = {"azure-conv": azure_conv, "azure-code": azure_code}
    if source not in readers:
        raise ValueError(
            f"token source must be azure-conv, azure-code or (IN, OUT) (got {source!r})"
        )
    log = readers[source]()
    return profile.with_tokens(log.input_tokens, log.output_tokens)
