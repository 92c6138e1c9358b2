"""The ``wspool`` command (and ``python -m wspool``).

A plain install is the Python client only; each subcommand needs its part's extra. When one is
missing, the command says which extra to install instead of showing a traceback.
"""

from __future__ import annotations

import sys

__all__ = ["main"]

_EXTRAS = {
    "server": "server",
    "gateway": "gateway",
    "operator": "operator",
    "dev": "server,gateway",
    "bench": "bench",
}


def main() -> int:
    try:
        from wspool.cli import main as run

        return run()
    except ModuleNotFoundError as missing:
        if (missing.name or "wspool").partition(".")[0] == "wspool":
            raise
        command = next((arg for arg in sys.argv[1:] if arg in _EXTRAS), "")
        extra = _EXTRAS.get(command, "all")
        print(
            f"wspool{' ' + command if command else ''}: {missing.name} is not installed; "
            f"pip install 'websocket-pool[{extra}]'",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
