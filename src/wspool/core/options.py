"""What every option table is made of: :class:`Option`, :class:`ConfigError`, the parsers
that several tables share, and :class:`Secret`, a value that never shows in a repr or a log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "LOG_OPTIONS",
    "ConfigError",
    "Option",
    "Secret",
    "parse_boolean",
    "parse_choice",
    "parse_list",
    "parse_non_negative_float",
    "parse_non_negative_int",
    "parse_port",
    "parse_positive_float",
    "parse_positive_int",
    "parse_redis_url",
    "parse_secret",
    "parse_text",
    "parse_url",
]


class ConfigError(Exception):
    """A configuration value that cannot be used; the message names the option."""

    def __init__(self, option: str, problem: str, *, missing: bool = False) -> None:
        super().__init__(
            f"{option} is missing: {problem}" if missing else f"invalid {option}: {problem}"
        )
        self.option = option


@dataclass(frozen=True, slots=True)
class Option:
    """One setting: the settings field it fills, its flag, its environment variable.

    ``field`` may be dotted (``security.jwt_secret``): the value then fills a field of the
    nested settings object. A ``switch`` is a flag without a value (``--insecure``); every
    other option names what its value is in ``metavar`` (``--ping-interval SECONDS``), and
    ``--help`` shows that name. ``old_env`` is a former name of the variable, still read
    (after ``env``) for one release.
    """

    field: str
    flag: str
    env: str
    parse: Callable[[str], Any]
    help: str
    switch: bool = False
    metavar: str = ""
    old_env: str = ""


@dataclass(frozen=True, slots=True)
class Secret:
    """A secret setting: ``repr`` and ``str`` show stars, :meth:`reveal` the value."""

    _value: str = field(repr=False)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__


def parse_secret(text: str) -> Secret:
    if not text:
        raise ValueError("must not be empty")
    return Secret(text)


def parse_boolean(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be true or false")


def parse_non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must be an integer >= 0 (0: no limit)")
    return value


def parse_list(item: Callable[[str], str]) -> Callable[[str], tuple[str, ...]]:
    """A comma-separated list, each element checked by ``item``."""

    def parse(text: str) -> tuple[str, ...]:
        return tuple(item(part.strip()) for part in text.split(",") if part.strip())

    return parse


def parse_text(text: str) -> str:
    if not text:
        raise ValueError("must not be empty")
    return text


def parse_positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def parse_port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError("must be between 0 and 65535")
    return value


def parse_non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise ValueError("must be a finite number >= 0")
    return value


def parse_positive_float(text: str) -> float:
    value = parse_non_negative_float(text)
    if value == 0:
        raise ValueError("must be greater than 0")
    return value


def parse_choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return text

    return parse


def parse_url(*schemes: str) -> Callable[[str], str]:
    """A URL of one of ``schemes`` with a host (``unix://`` names a socket path instead)."""

    def parse(text: str) -> str:
        parts = urlsplit(text)
        has_place = parts.path if parts.scheme == "unix" else parts.hostname
        if parts.scheme not in schemes or not has_place:
            raise ValueError(f"must be a {' or '.join(s + '://' for s in schemes)} URL")
        return text

    return parse


parse_redis_url = parse_url("redis", "rediss", "unix")


LOG_OPTIONS: tuple[Option, ...] = (
    Option(
        "log_format",
        "--log-format",
        "WSPOOL_LOG_FORMAT",
        parse_choice("json", "text"),
        "json (one object per line) or text",
        metavar="FORMAT",
    ),
    Option(
        "log_level",
        "--log-level",
        "WSPOOL_LOG_LEVEL",
        parse_choice("debug", "info", "warning", "error"),
        "log level",
        metavar="LEVEL",
    ),
)
"""How a long-running command logs; every command's table includes them."""
