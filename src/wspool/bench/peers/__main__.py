"""``python -m wspool.bench.peers [PEER...]``: install what the peers need (all by default).

``make peers`` runs it for Centrifugo (``go install`` into the bench cache); the Node.js
peer's ``npm ci`` has its own make rule, run again when its lock file changes.
"""

from __future__ import annotations

import sys

from wspool.bench.peers import PEERS, install_peer
from wspool.core.options import ConfigError


def main(argv: list[str]) -> int:
    for peer in argv or PEERS:
        if peer not in PEERS:
            print(f"unknown peer {peer!r}; one of {', '.join(PEERS)}", file=sys.stderr)
            return 2
        try:
            install_peer(peer)
        except ConfigError as error:
            print(f"wspool bench peers: {error}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
