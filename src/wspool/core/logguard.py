"""What never reaches a log line, and what reaches it only once.

Secrets: a client's token and a node's ticket travel in URLs (``?token=…&ticket=…``), in
``Authorization: Bearer …`` headers and in ``bearer.…`` subprotocols, and any library's
error message may quote them. :func:`redact` blanks them in the finished line, whatever
logger wrote it and at whatever level, so no code path has to remember.

Floods: one failure repeated thousands of times a second (a descriptor limit reached, a store
link down) must not bury everything else or cost the CPU that the failure already lacks.
:class:`FloodFilter` lets the first record of a kind through, counts the repeats for a
window, and attaches their number to the next one it lets through.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

__all__ = ["REDACTED", "FloodFilter", "RedactFilter", "redact"]

REDACTED = "[redacted]"

# Query parameters and form fields that carry credentials.
_SECRET_PARAMS = re.compile(
    r"(?i)\b(token|ticket|access_token|id_token|refresh_token|secret|password)=[^&\s'\"<>]+"
)
# A JSON Web Token anywhere (three base64url parts, the first one a JSON object's start).
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# A credential after the Bearer scheme, and in the browser's ``bearer.<token>`` subprotocol
# (long enough not to be a word of a sentence that mentions the scheme).
_BEARER = re.compile(r"(?i)\b(bearer)([ .])[A-Za-z0-9._~+/=-]{16,}")


def redact(text: str) -> str:
    """``text`` with every credential it quotes replaced by :data:`REDACTED`."""
    text = _SECRET_PARAMS.sub(rf"\1={REDACTED}", text)
    text = _BEARER.sub(rf"\1\2{REDACTED}", text)
    return _JWT.sub(REDACTED, text)


class RedactFilter(logging.Filter):
    """Redacts every record of the logger it is attached to, for a library that logs
    through a logger it is given (a client has no say over the application's handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        return True


class FloodFilter(logging.Filter):
    """Lets one record per kind through every ``window`` seconds, with the repeats counted.

    A kind is the logger, the level and the message's format string (not its arguments:
    "accept failed: %s" with a thousand different errors is one flood). Records below
    ``level`` always pass. A record let through after suppressed repeats carries
    ``suppressed`` (how many were dropped) in its context fields.
    """

    def __init__(
        self,
        window: float = 10.0,
        level: int = logging.WARNING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.window = window
        self.level = level
        self._clock = clock
        # kind -> (when the last record of it was let through, repeats dropped since)
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.level:
            return True
        kind = (record.name, record.levelno, str(record.msg))
        now = self._clock()
        shown, dropped = self._seen.get(kind, (float("-inf"), 0))
        if now - shown < self.window:
            self._seen[kind] = (shown, dropped + 1)
            return False
        if dropped:
            record.suppressed = dropped
        self._seen[kind] = (now, 0)
        if len(self._seen) > 10_000:  # kinds are format strings: few, unless one is dynamic
            self._forget(now)
        return True

    def _forget(self, now: float) -> None:
        self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.window}
