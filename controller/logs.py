"""The controller's log: one JSON object per line on stderr, the SDKs' chatter kept out.

`configure_logging(level)` installs `JsonFormatter` on the root logger; a record's
`json_fields` (the decision lines of controller/outcomes.py) become fields of its line.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from typing import Any


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and a record's `json_fields`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "json_fields", None)
        if isinstance(fields, Mapping):
            line |= fields
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The SDKs' own chatter stays out of the default log: replicast says in one line of its own
    # what an endpoint that does not answer means (`preflight`, the targets' conditions).
    quiet = {"aiohttp.access": logging.WARNING, "azure": logging.WARNING,
             "azure.identity": logging.ERROR, "kubernetes_asyncio": logging.WARNING}  # fmt: skip
    for name, floor in quiet.items():
        logging.getLogger(name).setLevel(max(floor, root.level))
