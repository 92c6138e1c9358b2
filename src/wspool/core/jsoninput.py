"""The one rule for JSON that comes from outside: size, depth and strictness.

Every JSON document a client or an operator sends is read by :func:`loads`: WebSocket frames
at the node, REST bodies at the gateway, the header and claims of a JSON Web Token. The rule:

- at most ``max_bytes`` of UTF-8 (each caller passes its own limit: ``--max-message-bytes``
  for frames, :data:`MAX_BODY_BYTES` for REST bodies, :data:`MAX_TOKEN_BYTES` for tokens);
- nested at most :data:`MAX_DEPTH` levels (``{}`` is one level, ``{"a":[1]}`` two), checked
  before anything is parsed;
- strict RFC 8259: ``NaN``, ``Infinity`` and numbers beyond a double are refused.

Why a depth limit: what a node accepts it must be able to encode again (orjson encodes at
most 254 levels, and Python's ``json`` runs out of stack near 1,000), and nothing deeper has
a use. 64 levels is what System.Text.Json allows by default.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_DEPTH",
    "MAX_TOKEN_BYTES",
    "JsonInputError",
    "JsonTooLargeError",
    "check",
    "loads",
    "nested_deeper_than",
]

MAX_DEPTH = 64
"""Levels of arrays and objects a JSON input may nest."""

MAX_BODY_BYTES = 64 * 1024
"""Bytes of a REST request body (a pool config with a weight for 1,000 nodes is ~40 KiB)."""

MAX_TOKEN_BYTES = 8 * 1024
"""Bytes of a JSON Web Token: what one HTTP header line holds (aiohttp and websockets)."""


class JsonInputError(ValueError):
    """JSON input that breaks the rule: not JSON, or nested too deep. The message says which."""


class JsonTooLargeError(JsonInputError):
    """JSON input above its size limit."""


# A JSON string, possibly unterminated; possessive, so that it never backtracks and a text of
# many quotes is scanned once.
_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"?', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]++")
_AS_PARENS = str.maketrans("[]{}", "()()")
_NON_FINITE = ("NaN", "Infinity", "-Infinity")


def nested_deeper_than(text: str, limit: int) -> bool:
    """Whether the arrays and objects of ``text`` nest more than ``limit`` levels.

    Runs at C speed: with few brackets it counts them; otherwise strings are cut out and
    the innermost pairs removed ``limit`` times (whatever pair is left was nested deeper),
    stopping early at a run of opening brackets longer than the depth still allowed. Text
    that is not JSON may be answered either way; the parser refuses it next.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text)).translate(_AS_PARENS)
    for removed in range(limit + 1):
        if "(" * (limit - removed + 1) in brackets:
            return "()" in brackets  # unbalanced text is the parser's to refuse
        shorter = brackets.replace("()", "")
        if len(shorter) == len(brackets):
            return False
        brackets = shorter
    return False


def check(text: str | bytes, *, max_bytes: int, what: str = "JSON") -> str:
    """``text`` as a string if its size and depth keep the rule, else :class:`JsonInputError`.

    For callers whose parser is not :func:`loads` (PyJWT parses token claims itself).
    """
    if isinstance(text, bytes):
        if len(text) > max_bytes:
            raise JsonTooLargeError(f"{what} exceeds {max_bytes} bytes")
        try:
            text = text.decode()
        except UnicodeDecodeError:
            raise JsonInputError(f"{what} is not valid JSON: not UTF-8") from None
    # A character is 1-4 UTF-8 bytes: encode only texts that might be over the limit.
    elif len(text) > max_bytes or (len(text) * 4 > max_bytes and len(text.encode()) > max_bytes):
        raise JsonTooLargeError(f"{what} exceeds {max_bytes} bytes")
    if nested_deeper_than(text, MAX_DEPTH):
        raise JsonInputError(f"{what} is nested deeper than {MAX_DEPTH} levels")
    return text


def loads(text: str | bytes, *, max_bytes: int, what: str = "JSON") -> Any:
    """Parse ``text`` under the rule, or raise :class:`JsonInputError` naming ``what``."""
    text = check(text, max_bytes=max_bytes, what=what)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as error:
        hint = (
            "NaN and Infinity are not JSON numbers"
            if text.startswith(_NON_FINITE, error.pos)
            else error.msg
        )
        raise JsonInputError(
            f"{what} is not valid JSON: {hint} (line {error.lineno} column {error.colno})"
        ) from None
