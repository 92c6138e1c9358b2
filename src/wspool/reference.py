"""``docs/configuration.md``, rendered from the settings declarations of every command.

``python -m wspool.reference > docs/configuration.md`` writes it; a unit test fails when the
committed file and the declarations disagree.
"""

from __future__ import annotations

import sys

from wspool.cli import COMMAND_OPTIONS
from wspool.core.options import Option, default_text

__all__ = ["main", "render"]

_INTRODUCTION = """\
# Configuration reference

Every option of every `wspool` command, as `--help` shows it: each is a flag and an
environment variable; a flag wins over its variable, which wins over the default. A bad
value stops the command before anything listens, with one line naming the flag (and the
variable it came from). Options of the server and the gateway that a `WebSocketPool` sets
are set by the operator on the pods, under the same variables (docs/operator.md).

This file is generated from the declarations in the code (`wspool.core.config`,
`wspool.core.security`, `wspool.operator.model.settings`, `wspool.bench.settings`):
`python -m wspool.reference > docs/configuration.md`.
"""


def _row(option: Option, defaults: object) -> str:
    flag = option.flag if option.switch else f"{option.flag} {option.metavar}"
    env = f"`{option.env}`"
    if option.old_env:
        env += f" (or `{option.old_env}`, deprecated)"
    default = default_text(option, defaults)
    shown = f"`{default}`" if default else ""
    meaning = option.help.replace("|", r"\|")
    return f"| `{flag}` | {env} | {shown} | {meaning} |"


def render() -> str:
    """The whole reference, as Markdown."""
    parts = [_INTRODUCTION]
    for command, (settings, options) in COMMAND_OPTIONS.items():
        defaults = settings()
        parts.append(f"\n## wspool {command}\n\n")
        parts.append("| flag | environment | default | meaning |\n|---|---|---|---|\n")
        parts.extend(_row(option, defaults) + "\n" for option in options)
    return "".join(parts)


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
