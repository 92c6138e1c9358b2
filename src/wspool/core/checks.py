"""The rules every configured value is checked by, wherever it comes from.

One :class:`Check` serves three sources: a command's flag or environment variable (text,
:meth:`Check.text`), the gateways' ``PoolConfig`` document and a ``WebSocketPool`` spec (JSON,
calling the check). A refused value raises :class:`Invalid`, whose message says what the value
must be and never where it came from: the caller adds that (a flag, ``healthCheck.interval``,
``spec.maxReplicas``) when it turns :class:`Invalid` into its own error type. A JSON ``true``
is not a number, and NaN or an infinity is refused by every number rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

from wspool.core.addresses import parse_networks
from wspool.core.redisurl import parse_redis_url

__all__ = [
    "Check",
    "Invalid",
    "boolean",
    "choice",
    "each",
    "integer",
    "key_prefix",
    "mapping",
    "networks",
    "number",
    "redis_url",
    "seconds",
    "text",
    "url",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Invalid(ValueError):
    """A refused value; the message says what it must be (``must be at least 1``)."""


def _as_is(text: str) -> Any:
    return text


@dataclass(frozen=True, slots=True)
class Check(Generic[T_co]):
    """One rule: ``check(value)`` takes a JSON value, ``check.text(s)`` a flag's text."""

    test: Callable[[Any], T_co]
    read: Callable[[str], Any] = _as_is
    """How the text of a flag or an environment variable becomes the value ``test`` takes."""

    def __call__(self, value: Any) -> T_co:
        return self.test(value)

    def text(self, text: str) -> T_co:
        return self.test(self.read(text))


def _read_integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise Invalid("must be an integer") from None


def integer(low: int, high: int | None = None) -> Check[int]:
    """A whole number within [low, high] (no upper bound without ``high``)."""

    def test(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid("must be an integer")
        if value < low or (high is not None and value > high):
            raise Invalid(
                f"must be between {low} and {high}"
                if high is not None
                else f"must be at least {low}"
            )
        return value

    return Check(test, _read_integer)


def number(
    low: float, high: float | None = None, *, above: bool = False, unit: str = ""
) -> Check[float]:
    """A finite number from ``low`` (or ``above`` it) up to ``high``; ``unit`` names what it
    counts in the messages (``must be a number of seconds``)."""
    what = f"number of {unit}" if unit else "number"

    def read(text: str) -> float:
        try:
            return float(text)
        except ValueError:
            raise Invalid(f"must be a {what}") from None

    def test(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Invalid(f"must be a {what}")
        if not math.isfinite(value):  # NaN passes no comparison below: refuse it first
            raise Invalid(f"must be a finite {what}")
        if value < low or (above and value == low):
            raise Invalid(f"must be greater than {low:g}" if above else f"must be ≥ {low:g}")
        if high is not None and value > high:
            raise Invalid(f"must be at most {high:g}")
        return float(value)

    return Check(test, read)


def seconds(low: float = 0, high: float | None = None, *, above: bool = False) -> Check[float]:
    """A duration: :func:`number` in seconds."""
    return number(low, high, above=above, unit="seconds")


def _read_boolean(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise Invalid("must be true or false")


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid("must be true or false")
    return value


boolean: Check[bool] = Check(_boolean, _read_boolean)


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise Invalid("must not be empty" if value == "" else "must be a non-empty string")
    return value


text: Check[str] = Check(_text)
"""Any non-empty string."""


def choice(*choices: str) -> Check[str]:
    def test(value: Any) -> str:
        if value not in choices:
            raise Invalid(f"must be one of {', '.join(choices)}")
        return str(value)

    return Check(test)


def url(*schemes: str) -> Check[str]:
    """A URL of one of ``schemes`` with a host (``unix://`` names a socket path instead)."""

    def test(value: Any) -> str:
        parts = urlsplit(_text(value))
        place = parts.path if parts.scheme == "unix" else parts.hostname
        if parts.scheme not in schemes or not place:
            raise Invalid(f"must be a {' or '.join(s + '://' for s in schemes)} URL")
        return str(value)

    return Check(test)


def _redis_url(value: Any) -> str:
    try:
        return parse_redis_url(_text(value)).url
    except ValueError as error:
        raise Invalid(str(error)) from None


redis_url: Check[str] = Check(_redis_url)
"""A Redis URL: one server, a cluster's seed nodes or Sentinels (:mod:`wspool.core.redisurl`)."""


def _key_prefix(value: Any) -> str:
    prefix = _text(value)
    if "{" in prefix or "}" in prefix:
        raise Invalid("must not contain braces (on a Redis Cluster they decide a key's slot)")
    return prefix


key_prefix: Check[str] = Check(_key_prefix)
"""A prefix of Redis keys and channels."""


def _read_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _networks(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise Invalid("must be a list of addresses or CIDR blocks")
    try:
        parse_networks(value)
    except ValueError as error:
        raise Invalid(str(error)) from None
    return tuple(value)


networks: Check[tuple[str, ...]] = Check(_networks, _read_list)
"""Addresses or CIDR blocks (``10.0.0.0/8``); as text, comma-separated."""


def each(item: Check[T], what: str) -> Check[tuple[T, ...]]:
    """A list whose every element passes ``item``; as text, comma-separated. ``what`` names
    the elements in the message about a value that is not a list."""

    def test(value: Any) -> tuple[T, ...]:
        if not isinstance(value, list | tuple):
            raise Invalid(f"must be a list of {what}")
        return tuple(item(element) for element in value)

    return Check(test, _read_list)


def _mapping(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise Invalid("must be an object")
    return dict(value)


mapping: Check[Mapping[str, Any]] = Check(_mapping)
"""A JSON object, taken as it is."""
