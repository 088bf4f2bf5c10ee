"""Replayed traces: real load read from files into profiles.

In: a request log CSV, one row per request (the Azure LLM inference trace format
`TIMESTAMP,ContextTokens,GeneratedTokens` and its relatives); a rate series CSV
(`time_s,rate_rps[,interarrival_cv]` at any step); or a Prometheus range-query JSON export of a
rate. Files may be gzip-compressed (detected from the content, not the name).
Out: a `RequestLog` or a `RateProfile` from `simulator.profiles`, ready for its operations.

Readers match header names without regard to case, `_`, `-` or spaces, accept extra columns in
any order, and read times as ISO 8601 (with or without fraction and timezone) or as numbers of
seconds. A bad row raises `TraceError`, one line naming the file, the line, the column and what
is allowed; `on_bad_row="skip"` drops bad rows instead and counts them on the profile
(`skipped_rows`). Nothing is dropped silently.

The copies shipped in `simulator/data` (licences and citations in ATTRIBUTION.md there) load
with `azure_conv()`, `azure_code()` and `servegen_language_14d()`.

Modules, one idea each: `base` (argument types, header aliases, `TraceError`), `files`
(opening, gzip within a budget), `csvrows` (header and rows as text columns), `values`
(numbers and time formats), `csvtime` (the general time-ordered CSV reader with its row checks),
`request_logs`, `rate_series` and `prometheus` (one reader each), `shipped` (the traces in
`simulator/data`). Import from here: `from simulator.traces import read_request_log`.
"""

from __future__ import annotations

from simulator.traces.base import COLUMN_ALIASES, TraceError
from simulator.traces.base import Marks as Marks
from simulator.traces.base import OnBadRow as OnBadRow
from simulator.traces.base import PathArg as PathArg
from simulator.traces.base import TimeUnit as TimeUnit
from simulator.traces.base import TokenSource as TokenSource
from simulator.traces.base import Within as Within
from simulator.traces.csvrows import find_column, read_header
from simulator.traces.prometheus import read_prometheus
from simulator.traces.rate_series import read_rate_series
from simulator.traces.request_logs import read_request_log
from simulator.traces.shipped import (
    azure_code,
    azure_conv,
    servegen_language_14d,
    with_token_source,
)

__all__ = [
    "COLUMN_ALIASES",
    "TraceError",
    "azure_code",
    "azure_conv",
    "find_column",
    "read_header",
    "read_prometheus",
    "read_rate_series",
    "read_request_log",
    "servegen_language_14d",
    "with_token_source",
]
