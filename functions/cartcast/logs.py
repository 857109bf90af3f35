"""Structured logs: one JSON object per line, as Cloud Logging reads them.

`severity` and `message` are the fields Cloud Logging indexes; everything else goes
in as named fields (ids, counts), never tokens, keys, prompts or whole user messages.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback

_configured = False


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["stack_trace"] = "".join(traceback.format_exception(*record.exc_info))
        return json.dumps(entry, default=str)


def get_logger(name: str, level: str = "INFO") -> logging.Logger:
    """Return a logger that writes JSON lines to stderr (configured once)."""
    global _configured
    root = logging.getLogger("cartcast")
    if not _configured:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
        root.propagate = False
        _configured = True
    root.setLevel(level)
    return logging.getLogger(name)


def fields(**values: object) -> dict[str, dict[str, object]]:
    """Attach named fields to a log call: `log.info("done", extra=fields(n=3))`."""
    return {"fields": values}
