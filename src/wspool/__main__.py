"""The ``wspool`` command (and ``python -m wspool``).

A plain install is the Python client only; each subcommand needs its part's extra. When one is
missing, the command says which extra to install instead of showing a traceback.
"""

from __future__ import annotations

import sys

__all__ = ["main"]

_SUBCOMMANDS = ("server", "gateway", "operator", "dev", "bench", "publish")

_EXTRAS = {"dev": "server,gateway", "publish": "gateway"}
"""The extras of a subcommand that needs more than the one named after it."""


def main() -> int:
    try:
        from wspool.cli import main as run

        return run()
    except ModuleNotFoundError as missing:
        if (missing.name or "wspool").partition(".")[0] == "wspool":
            raise
        command = next((arg for arg in sys.argv[1:] if arg in _SUBCOMMANDS), "")
        extra = _EXTRAS.get(command, command or "all")
        print(
            f"wspool{' ' + command if command else ''}: {missing.name} is not installed; "
            f"install websocket-pool with its [{extra}] extra (pip install '.[{extra}]' in "
            "the source tree)",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
