"""What every option table is made of: :class:`Option`, :class:`ConfigError`, the parsers
that several tables share, and :class:`Secret`, a value that never shows in a repr or a log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ConfigError",
    "Option",
    "Secret",
    "parse_boolean",
    "parse_list",
    "parse_non_negative_int",
    "parse_secret",
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
    nested settings object. A ``switch`` is a flag without a value (``--insecure``).
    """

    field: str
    flag: str
    env: str
    parse: Callable[[str], Any]
    help: str
    switch: bool = False


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
