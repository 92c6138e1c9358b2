"""What the REST API's channel routes accept, and how they answer: pure rules.

- :func:`channel_name`: a channel named in a path or a body follows the wire protocol's rule;
- :func:`publish_payloads`: ``{"payload": …}`` or ``{"messages": [{"payload": …}, …]}``;
- :func:`broadcast_request`: ``{"channels": […], "payload": …}``;
- :func:`history_query`: ``?since=&limit=&reverse=``, and :func:`history_page`, which frames of
  a history read the answer lists;
- :func:`batch_offsets`: every message's offset from the position of a batch's last one.

Each parser raises ``ValueError`` saying what is wrong (the API answers 400 with it), so a
request is refused whole before anything is published.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from wspool.core.history import HistoryRead, StreamPosition
from wspool.core.protocol import CHANNEL_PATTERN

__all__ = [
    "CHANNEL_RULE",
    "DEFAULT_HISTORY_LIMIT",
    "MAX_BATCH",
    "MAX_BROADCAST",
    "MAX_HISTORY_LIMIT",
    "HistoryQuery",
    "batch_offsets",
    "broadcast_request",
    "channel_name",
    "history_page",
    "history_query",
    "publish_payloads",
]

MAX_BATCH = 100
"""Messages one ``POST /channels/{channel}/messages`` may publish."""

MAX_BROADCAST = 100
"""Channels one ``POST /broadcast`` may publish to."""

DEFAULT_HISTORY_LIMIT = 100
MAX_HISTORY_LIMIT = 1000
"""Messages one history read lists at most (``limit``)."""

CHANNEL_RULE = "1-128 characters of letters, digits and . _ - : / @"


def channel_name(value: object) -> str:
    if not isinstance(value, str) or not CHANNEL_PATTERN.fullmatch(value):
        raise ValueError(f"invalid channel name: {CHANNEL_RULE}")
    return value


def _object(body: Any, fields: set[str], what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValueError(f"{what} must be a JSON object")
    unknown = body.keys() - fields
    if unknown:
        raise ValueError(f"{min(unknown)}: unknown field")
    return body


def publish_payloads(body: Any) -> tuple[list[Any], bool]:
    """The payloads to publish, in order, and whether they came as a batch."""
    body = _object(body, {"payload", "messages"}, "body")
    if ("payload" in body) == ("messages" in body):
        raise ValueError('body must have either "payload" or "messages"')
    if "payload" in body:
        return [body["payload"]], False
    messages = body["messages"]
    if not isinstance(messages, list) or not 0 < len(messages) <= MAX_BATCH:
        raise ValueError(f"messages must be a list of 1-{MAX_BATCH} messages")
    payloads = []
    for index, message in enumerate(messages):
        message = _object(message, {"payload"}, f"messages[{index}]")
        if "payload" not in message:
            raise ValueError(f'messages[{index}] needs a "payload"')
        payloads.append(message["payload"])
    return payloads, True


def broadcast_request(body: Any) -> tuple[list[str], Any]:
    """The channels (each once, in the order given) and the payload they all get."""
    body = _object(body, {"channels", "payload"}, "body")
    channels = body.get("channels")
    if not isinstance(channels, list) or not 0 < len(channels) <= MAX_BROADCAST:
        raise ValueError(f"channels must be a list of 1-{MAX_BROADCAST} channel names")
    if "payload" not in body:
        raise ValueError('body needs a "payload"')
    return list(dict.fromkeys(channel_name(c) for c in channels)), body["payload"]


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """A history read: after ``since`` (else the newest messages), at most ``limit``,
    newest first when ``reverse``."""

    since: StreamPosition | None = None
    limit: int = DEFAULT_HISTORY_LIMIT
    reverse: bool = False


def history_query(parameters: Iterable[tuple[str, str]]) -> HistoryQuery:
    values: dict[str, str] = {}
    for name, value in parameters:
        if name not in ("since", "limit", "reverse"):
            raise ValueError(f"{name}: unknown query parameter")
        if name in values:
            raise ValueError(f"{name}: give it once")
        values[name] = value
    since = None
    if "since" in values:
        since = StreamPosition.parse(values["since"])
    limit = DEFAULT_HISTORY_LIMIT
    if "limit" in values:
        text = values["limit"]
        if not text.isascii() or not text.isdigit() or not 0 < int(text) <= MAX_HISTORY_LIMIT:
            raise ValueError(f"limit must be a whole number of 1-{MAX_HISTORY_LIMIT}")
        limit = int(text)
    reverse = values.get("reverse", "false")
    if reverse not in ("true", "false"):
        raise ValueError("reverse must be true or false")
    return HistoryQuery(since, limit, reverse == "true")


def history_page(read: HistoryRead, query: HistoryQuery) -> list[str]:
    """The frames a history read answers: after ``since``, the first ``limit`` (so a reader
    pages forward from the last offset it got), or the last ``limit`` when ``reverse``;
    without ``since``, the newest ``limit``. Newest first when ``reverse``."""
    frames = read.frames or []
    newest = query.since is None or query.reverse
    frames = frames[-query.limit :] if newest else frames[: query.limit]
    return frames[::-1] if query.reverse else frames


def batch_offsets(last: StreamPosition, count: int) -> list[str]:
    """The offsets of a batch of ``count`` messages whose last one is at ``last``."""
    return [StreamPosition(last.epoch, last.offset - count + i).token for i in range(1, count + 1)]
