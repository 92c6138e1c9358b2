"""Real ``wspool server`` processes for farm tests."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.support.redis_server import free_port

__all__ = ["OPEN", "NodeProcess", "http_get"]

OPEN = ("--insecure", "--messages-per-second", "0")


def http_get(url: str, timeout: float = 2.0) -> tuple[int, dict[str, Any]]:
    """GET a JSON endpoint; returns the status and the decoded body, also for 4xx/5xx."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


class NodeProcess:
    """``wspool server`` in a child process, with its log kept in a file."""

    def __init__(
        self,
        node_id: str,
        redis_url: str,
        *extra: str,
        security: Sequence[str] = OPEN,
    ) -> None:
        """``security`` flags replace the default: open, and no message rate limit."""
        self.id = node_id
        self.port = free_port()
        self.log = Path(tempfile.mkstemp(prefix=f"wspool-{node_id}-", suffix=".log")[1])
        self.args = [
            sys.executable,
            "-m",
            "wspool",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--id",
            node_id,
            "--redis-url",
            redis_url,
            "--heartbeat-interval",
            "0.2",
            "--node-ttl",
            "1",
            "--log-format",
            "json",
            *security,
            *extra,
        ]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/health"

    def start(self, timeout: float = 10.0) -> NodeProcess:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"node {self.id} exited at start:\n{self.output()}")
            try:
                status, body = http_get(self.health_url, timeout=0.5)
                if status == 200 and body["store"] == "up":
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"node {self.id} did not become healthy:\n{self.output()}")

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")
