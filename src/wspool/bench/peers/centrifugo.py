"""The Centrifugo peer: a pinned Centrifugo v6 build, and the configuration the bench gives it.

:func:`install_centrifugo` builds ``github.com/centrifugal/centrifugo/v6`` at
:data:`CENTRIFUGO_VERSION` with ``go install`` into the bench's cache folder
(``$WSPOOL_BENCH_CACHE``, else ``$XDG_CACHE_HOME/wspool-bench``, else
``~/.cache/wspool-bench``), outside git, once; ``make peers`` runs it
(``python -m wspool.bench.peers centrifugo``).

:func:`centrifugo_config` is the configuration of one spawned server (pure): loopback only,
HS256 connection tokens, channels without a namespace open to every connected client for
subscribe and publish (as the scenarios publish from client connections, like with the
other targets), no history unless asked (then the size and ttl a node keeps by default,
so that every publish also goes into a history stream, as on a node), the memory engine or
the Redis engine on the bench's redis-server, Prometheus ``/metrics`` and ``/health`` on the
client port, and no usage statistics sent anywhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from wspool.core.history import HistoryPolicy
from wspool.core.options import ConfigError

__all__ = [
    "CENTRIFUGO_MODULE",
    "CENTRIFUGO_VERSION",
    "centrifugo_binary",
    "centrifugo_config",
    "install_centrifugo",
]

CENTRIFUGO_MODULE = "github.com/centrifugal/centrifugo/v6"
CENTRIFUGO_VERSION = "v6.9.1"
_VERSION_VARIABLE = f"{CENTRIFUGO_MODULE}/internal/build.Version"


def _cache_root() -> Path:
    given = os.environ.get("WSPOOL_BENCH_CACHE")
    if given:
        return Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "wspool-bench"


def centrifugo_binary() -> Path:
    """Where the pinned build lives (it may not be there yet)."""
    return _cache_root() / f"centrifugo-{CENTRIFUGO_VERSION}" / "centrifugo"


def install_centrifugo() -> Path:
    """``go install`` the pinned Centrifugo unless its binary exists; returns its path.

    Raises :class:`ConfigError` (one line) when Go is not installed or the build fails.
    """
    binary = centrifugo_binary()
    if binary.is_file():
        return binary
    go = shutil.which("go")
    if go is None:
        raise ConfigError(
            "--peer",
            f"centrifugo needs its build at {binary} (`make peers`, Go 1.26+): go not on PATH",
        )
    print(
        f"installing the centrifugo peer ({CENTRIFUGO_MODULE}@{CENTRIFUGO_VERSION}, "
        f"go install into {binary.parent}; a few minutes)",
        file=sys.stderr,
    )
    environment = {**os.environ, "GOBIN": str(binary.parent), "CGO_ENABLED": "0"}
    done = subprocess.run(
        [
            *(go, "install", "-trimpath"),
            *("-ldflags", f"-s -w -X {_VERSION_VARIABLE}={CENTRIFUGO_VERSION.removeprefix('v')}"),
            f"{CENTRIFUGO_MODULE}@{CENTRIFUGO_VERSION}",
        ],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 or not binary.is_file():
        lines = [line for line in done.stderr.splitlines() if line.strip()] or ["no output"]
        raise ConfigError("--peer", f"go install of centrifugo failed: {lines[-1].strip()}")
    return binary


def centrifugo_config(
    port: int, secret: str, redis_url: str = "", history: bool = False
) -> dict[str, Any]:
    """One server's configuration: the Redis engine on ``redis_url``, else the memory one;
    with ``history``, every channel keeps what a node's channels keep by default."""
    engine: dict[str, Any] = {"type": "memory"}
    if redis_url:
        engine = {"type": "redis", "redis": {"address": [redis_url]}}
    open_to_clients: dict[str, Any] = {
        "allow_subscribe_for_client": True,
        "allow_publish_for_client": True,
    }
    if history:
        policy = HistoryPolicy()
        open_to_clients["history_size"] = policy.size
        open_to_clients["history_ttl"] = f"{policy.ttl:g}s"
    return {
        "http_server": {"address": "127.0.0.1", "port": port},
        "log": {"level": "warn"},
        "engine": engine,
        "client": {"token": {"hmac_secret_key": secret}},
        "channel": {"without_namespace": open_to_clients},
        "prometheus": {"enabled": True},
        "health": {"enabled": True},
        "usage_stats": {"disabled": True},
        "shutdown": {"timeout": "5s"},
    }
