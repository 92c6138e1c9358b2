"""How a setting is declared once and read from flags, then the environment, then its default.

A settings class is a frozen dataclass whose fields are declared with :func:`option`: the
field gives the name, the type and the default; the declaration adds the flag, the
environment variable, the help and the :class:`~wspool.core.checks.Check` that validates the
value. A field declared with :func:`section` holds a nested settings object whose options are
included (all of them, or only some groups). :func:`options_of` turns a class into its table
of :class:`Option` (field path filled in), from which the CLI builds its flags and ``--help``,
:func:`load_settings` reads values, the operator names the variables it sets on pods, and
``docs/configuration.md`` is generated (:mod:`wspool.reference`).

A bad value raises :class:`ConfigError` naming the flag (and the variable it came from), as
one line. :class:`Secret` is a value that never shows in a repr or a log.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from wspool.core import checks
from wspool.core.checks import Check, Invalid

__all__ = [
    "LOG_FORMAT",
    "LOG_LEVEL",
    "ConfigError",
    "Option",
    "Secret",
    "default_text",
    "deprecated_variables",
    "load_settings",
    "option",
    "options_of",
    "secret",
    "section",
    "variable",
]

T = TypeVar("T")
SettingsT = TypeVar("SettingsT")

_OPTION = "wspool.option"
_SECTION = "wspool.section"


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

    ``field`` is the field's path in the settings object, dotted for a nested one
    (``security.jwt_secret``); a declaration leaves it empty and :func:`options_of` fills it
    in. ``parse`` turns the text of the flag or the variable into the value, raising
    :class:`~wspool.core.checks.Invalid`. A ``switch`` is a flag without a value
    (``--insecure``); every other option names what its value is in ``metavar``
    (``--ping-interval SECONDS``), which ``--help`` shows. ``old_env`` is a former name of
    the variable, still read (after ``env``) for one release. ``group`` sorts the options of
    a nested settings class, so that a :func:`section` can include some of them.
    """

    field: str
    flag: str
    env: str
    parse: Callable[[str], Any]
    help: str
    switch: bool = False
    metavar: str = ""
    old_env: str = ""
    group: str = ""

    def declare(self, default: T, *, hidden: bool = False) -> T:
        """The dataclass field this option fills, with ``default``; a ``hidden`` one (a
        secret kept as text) stays out of the settings' repr."""
        return dataclasses.field(default=default, repr=not hidden, metadata={_OPTION: self})


def option(
    default: T,
    flag: str,
    env: str,
    check: Check[T],
    meaning: str,
    *,
    metavar: str = "",
    switch: bool = False,
    old_env: str = "",
    group: str = "",
    hidden: bool = False,
) -> T:
    """Declare a settings field: ``name: type = option(default, "--flag", "ENV", check, meaning)``;
    ``meaning`` is the help ``--help`` and the docs show."""
    declared = Option("", flag, env, check.text, meaning, switch, metavar, old_env, group)
    return declared.declare(default, hidden=hidden)


def section(factory: Callable[[], T], *groups: str) -> T:
    """Declare a field holding nested settings (``factory()`` is its default) whose options
    are included: those of ``groups``, or all of them when no group is named."""
    return field(default_factory=factory, metadata={_SECTION: groups})


def options_of(cls: type[Any]) -> tuple[Option, ...]:
    """The options of a settings class, in field order, nested sections included."""
    return _options(cls, "", ())


def _options(cls: type[Any], prefix: str, groups: Sequence[str]) -> tuple[Option, ...]:
    found: list[Option] = []
    for item in dataclasses.fields(cls):
        declared: Option | None = item.metadata.get(_OPTION)
        if declared is not None and (not groups or declared.group in groups):
            found.append(dataclasses.replace(declared, field=prefix + item.name))
        if _SECTION in item.metadata:
            nested = type(cast(Callable[[], Any], item.default_factory)())
            found += _options(nested, f"{prefix}{item.name}.", item.metadata[_SECTION])
    return tuple(found)


def variable(options: Sequence[Option], path: str) -> str:
    """The environment variable of the option that fills ``path`` (``security.jwt_secret``)."""
    for candidate in options:
        if candidate.field == path:
            return candidate.env
    raise KeyError(f"no option fills {path}")


def default_text(option: Option, settings: object) -> str:
    """The default of ``option`` in ``settings`` as ``--help`` and the docs show it, or ""."""
    value = settings
    for name in option.field.split("."):
        value = getattr(value, name)
    if value in ("", None, (), False):
        return ""
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


@dataclass(frozen=True, slots=True)
class Secret:
    """A secret setting: ``repr`` and ``str`` show stars, :meth:`reveal` the value."""

    _value: str = field(repr=False)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__


secret: Check[Secret] = Check(lambda value: Secret(checks.text(value)))
"""A non-empty secret, kept as :class:`Secret`."""

LOG_FORMAT = Option(
    "",
    "--log-format",
    "WSPOOL_LOG_FORMAT",
    checks.choice("json", "text").text,
    "json (one object per line) or text",
    metavar="FORMAT",
)
LOG_LEVEL = Option(
    "",
    "--log-level",
    "WSPOOL_LOG_LEVEL",
    checks.choice("debug", "info", "warning", "error").text,
    "log level",
    metavar="LEVEL",
)
"""How a long-running command logs; every command's settings declare both."""


def deprecated_variables(options: Sequence[Option], environ: Mapping[str, str]) -> list[str]:
    """A line for each old variable name still set, to print before starting."""
    return [
        f"${option.old_env} is deprecated and will be ignored in the next release: "
        f"use ${option.env}"
        for option in options
        if option.old_env and option.old_env in environ
    ]


def _given(
    declared: Option, flags: Mapping[str, str | None], environ: Mapping[str, str]
) -> tuple[str | None, str, bool]:
    """The text given for ``declared``, where it came from, and whether from its old name."""
    text = flags.get(declared.field)
    if text is not None:
        return text, declared.flag, False
    for env in (declared.env, declared.old_env):
        if env and env in environ:
            return environ[env], f"{declared.flag} (from ${env})", env == declared.old_env
    return None, declared.flag, False


def load_settings(
    cls: type[SettingsT],
    options: Sequence[Option],
    flags: Mapping[str, str | None],
    environ: Mapping[str, str] | None = None,
) -> SettingsT:
    """Build ``cls`` from flag values (by field path), then the environment, then defaults."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for declared in options:
        text, source, old = _given(declared, flags, environ)
        if text is None:
            continue
        try:
            value = declared.parse(text)
        except Invalid as error:
            if old:
                # The old name meant a node count to `dev` and URLs to `gateway`: a value
                # for the other command is left alone (deprecated_variables says why).
                continue
            raise ConfigError(source, str(error)) from None
        group, _, name = declared.field.rpartition(".")
        (nested.setdefault(group, {}) if group else values)[name] = value
    for group, fields in nested.items():
        # A nested settings object starts from the default of its field in ``cls``.
        default = getattr(cls(), group)
        values[group] = dataclasses.replace(default, **fields)
    return cls(**values)
