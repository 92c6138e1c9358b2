"""Servers users would otherwise pick, run by ``wspool bench --peer`` for a side by side.

``socketio``: python-socketio with its Redis manager (:mod:`.socketio_server`, needs the
``bench`` extra). ``socketio-node``: Socket.IO on Node.js with its Redis adapter
(``node/server.js``, its npm dependencies pinned with integrity hashes in
``node/package-lock.json``). ``centrifugo`` and ``centrifugo-redis``: Centrifugo v6 with its
memory engine, or its Redis engine (:mod:`.centrifugo`, a pinned ``go install`` build);
``centrifugo-redis-history`` the latter with channel history on, as every node keeps it.

:data:`PEERS` says what the generator needs to know of each (the WebSocket path, the
dialect, whether it uses Redis); :func:`peer_command` gives the command line that starts
one on a port, installing what is missing the first time (``npm ci``, ``go install``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from wspool.bench.peers.centrifugo import centrifugo_config, install_centrifugo
from wspool.core.options import ConfigError

__all__ = ["NODE_PEER_DIR", "PEERS", "Peer", "install_node_peer", "install_peer", "peer_command"]


@dataclass(frozen=True, slots=True)
class Peer:
    """What the generator needs to know of a peer server."""

    path: str  # where clients open their WebSocket
    dialect: str  # what they say over it (wspool.bench.dialects)
    uses_redis: bool = True  # False: no redis-server is started for it
    history: bool = False  # channels keep a history (only Centrifugo's is optional)


PEERS: dict[str, Peer] = {
    "socketio": Peer("/socket.io/", "socketio"),
    "socketio-node": Peer("/socket.io/", "socketio"),
    "centrifugo": Peer("/connection/websocket", "centrifugo", uses_redis=False),
    "centrifugo-redis": Peer("/connection/websocket", "centrifugo"),
    "centrifugo-redis-history": Peer("/connection/websocket", "centrifugo", history=True),
}
NODE_PEER_DIR = Path(__file__).parent / "node"


def install_node_peer(folder: Path = NODE_PEER_DIR) -> str:
    """``npm ci`` in ``folder`` unless its node_modules exists; returns the ``node`` binary.

    Raises :class:`ConfigError` (one line) when node or npm is not installed or npm fails.
    """
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing = " and ".join(n for n, b in (("node", node), ("npm", npm)) if b is None)
        raise ConfigError("--peer", f"socketio-node needs Node.js 18+: {missing} not on PATH")
    if not (folder / "node_modules").is_dir():
        print(
            f"installing the socketio-node peer's dependencies (npm ci in {folder})",
            file=sys.stderr,
        )
        done = subprocess.run(
            [npm, "ci", "--prefix", str(folder), "--no-audit", "--no-fund", "--loglevel=error"],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            lines = [line for line in done.stderr.splitlines() if line.strip()] or ["no output"]
            raise ConfigError("--peer", f"npm ci in {folder} failed: {lines[-1].strip()}")
    return node


def install_peer(peer: str) -> None:
    """Install what ``peer`` needs unless it is there (a missing tool is one line)."""
    if peer == "socketio-node":
        install_node_peer()
    elif PEERS[peer].dialect == "centrifugo":
        install_centrifugo()


def peer_command(peer: str, port: int, redis_url: str, folder: Path, secret: str) -> list[str]:
    """The command that starts one ``peer`` server on 127.0.0.1:``port``.

    ``redis_url`` is the Redis it fans out through; ``folder`` takes its configuration
    file, if it needs one; ``secret`` signs the connection tokens it accepts, if any.
    """
    listen = ["--host", "127.0.0.1", "--port", str(port)]
    if peer == "socketio":
        return [
            *(sys.executable, "-m", "wspool.bench.peers.socketio_server"),
            *("--redis-url", redis_url, *listen),
        ]
    if peer == "socketio-node":
        node = install_node_peer()
        return [node, str(NODE_PEER_DIR / "server.js"), "--redis-url", redis_url, *listen]
    spec = PEERS.get(peer)
    if spec is not None and spec.dialect == "centrifugo":
        binary = install_centrifugo()
        config = centrifugo_config(port, secret, redis_url if spec.uses_redis else "", spec.history)
        path = folder / f"centrifugo-{port}.json"
        path.touch(mode=0o600)  # it holds the token secret
        path.write_text(json.dumps(config, indent=2) + "\n")
        return [str(binary), "--config", str(path)]
    raise ConfigError("--peer", f"must be one of {', '.join(PEERS)}")
