"""Servers users would otherwise pick, run by ``wspool bench --peer`` for a side by side.

``socketio``: python-socketio with its Redis manager (:mod:`.socketio_server`, needs the
``bench`` extra). ``socketio-node``: Socket.IO on Node.js with its Redis adapter
(``node/server.js``, its npm dependencies pinned with integrity hashes in
``node/package-lock.json``). :func:`peer_command` gives the command line that starts one
(without ``--host``/``--port``), installing the Node dependencies with ``npm ci`` the first
time they are missing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from wspool.core.options import ConfigError

__all__ = ["NODE_PEER_DIR", "PEERS", "install_node_peer", "peer_command"]

PEERS = ("socketio", "socketio-node")
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


def peer_command(peer: str, redis_url: str) -> list[str]:
    """The command that starts one ``peer`` server on ``redis_url``."""
    if peer == "socketio":
        return [
            sys.executable,
            "-m",
            "wspool.bench.peers.socketio_server",
            "--redis-url",
            redis_url,
        ]
    if peer == "socketio-node":
        node = install_node_peer()
        return [node, str(NODE_PEER_DIR / "server.js"), "--redis-url", redis_url]
    raise ConfigError("--peer", f"must be one of {', '.join(PEERS)}")
