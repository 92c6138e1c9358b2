"""Structured logs: one JSON object per line in production, readable lines in ``wspool dev``.

Context (connection, node, pool ids) travels in ``extra={...}``; both formats show it, so an
operator can grep for ``connectionId=…`` or filter JSON on ``serverId``. Every finished line
has its credentials redacted, and a flood of one warning is shown once per window with the
number of repeats (:mod:`wspool.core.logguard`).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from wspool.core.logguard import FloodFilter, redact

__all__ = ["JsonFormatter", "TextFormatter", "configure_logging"]

# Attributes every LogRecord has; anything else came in through ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def _context(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the context fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_context(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str))


class TextFormatter(logging.Formatter):
    """``HH:MM:SS level logger: message key=value …`` for people at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        time = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        fields = " ".join(f"{k}={v}" for k, v in _context(record).items())
        line = f"{time} {record.levelname.lower():7} {record.name}: {record.getMessage()}"
        if fields:
            line = f"{line}  {fields}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return redact(line)


def configure_logging(log_format: str, level: str) -> None:
    """Install the chosen formatter on the root logger (stderr)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(FloodFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # websockets logs every failed handshake at INFO; keep those for debugging only.
    logging.getLogger("websockets").setLevel(max(root.level, logging.WARNING))
