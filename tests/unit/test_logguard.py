"""What never reaches a log line (credentials) and what reaches it once (a flood)."""

from __future__ import annotations

import json
import logging

from wspool.core.logguard import REDACTED, FloodFilter, redact
from wspool.core.logs import JsonFormatter, TextFormatter

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"


def test_a_url_with_a_token_and_a_ticket_is_logged_without_either() -> None:
    line = redact(f"failed: url='ws://node:8081/ws?clientId=a&token=opaque-secret&ticket={JWT}'")
    assert "opaque-secret" not in line
    assert JWT not in line
    assert f"clientId=a&token={REDACTED}&ticket={REDACTED}" in line


def test_bearer_credentials_and_bare_tokens_are_blanked_but_plain_words_are_kept() -> None:
    assert redact("Authorization: Bearer abcdefghijklmnopqrstuvwxyz") == (
        f"Authorization: Bearer {REDACTED}"
    )
    assert redact(f"offered bearer.{JWT}") == f"offered bearer.{REDACTED}"
    assert redact(f"token was {JWT}!") == f"token was {REDACTED}!"
    assert redact("answered with WWW-Authenticate: Bearer realm") == (
        "answered with WWW-Authenticate: Bearer realm"
    )


def _record(message: str, *args: object, level: int = logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord("wspool.test", level, __file__, 1, message, args, None)


def test_both_formats_redact_the_message_and_its_context_fields() -> None:
    record = _record("connect to %s failed", f"ws://n/ws?token={JWT}")
    record.url = f"ws://n/ws?ticket={JWT}"
    for formatter in (JsonFormatter(), TextFormatter()):
        assert JWT not in formatter.format(record)
    assert json.loads(JsonFormatter().format(record))["url"] == f"ws://n/ws?ticket={REDACTED}"


def test_a_flood_of_one_warning_is_shown_once_per_window_with_the_number_dropped() -> None:
    now = [0.0]
    flood = FloodFilter(window=10.0, clock=lambda: now[0])
    shown = []
    for second in range(25):
        now[0] = float(second)
        for attempt in range(100):
            record = _record("accept failed: %s", f"error {attempt}")
            if flood.filter(record):
                shown.append((second, getattr(record, "suppressed", 0)))
    assert shown == [(0, 0), (10, 999), (20, 999)]


def test_other_messages_and_lower_levels_are_not_held_back_by_a_flood() -> None:
    flood = FloodFilter(window=10.0, clock=lambda: 0.0)
    assert flood.filter(_record("store unreachable"))
    assert not flood.filter(_record("store unreachable"))
    assert flood.filter(_record("node lost"))
    assert all(flood.filter(_record("relayed", level=logging.INFO)) for _ in range(3))
