"""Real ``wspool server`` and ``wspool gateway`` processes for farm tests."""

from __future__ import annotations

import asyncio
import http.client
import json
import resource
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.redis_server import free_port
from tests.support.waiting import eventually

__all__ = [
    "OPEN",
    "TICKET_SECRET",
    "Farm",
    "GatewayProcess",
    "NodeProcess",
    "http_get",
    "http_request",
    "raw_handshake",
    "running_farm",
]

OPEN = (
    "--insecure",
    "--messages-per-second",
    "0",
    "--connection-attempts-per-ip",
    "0",
    "--max-connections-per-ip",
    "0",
)
"""Security flags of test nodes whose tests are about something else: open, unthrottled."""

TICKET_SECRET = "farm-tests-ticket-secret-0123456789abcdef"
"""The secret the test farm's gateways and nodes share."""


def http_request(
    method: str,
    url: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[int, Any]:
    """Send a JSON request; returns the status and the decoded body, also for 4xx/5xx."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def raw_handshake(port: int, path: str, headers: Sequence[tuple[str, str]], upgrade: bool) -> int:
    """Send a WebSocket opening handshake (or a plain GET) with any headers; the status."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        if upgrade:
            for name, value in (
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                ("Sec-WebSocket-Version", "13"),
            ):
                conn.putheader(name, value)
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders()
        return conn.getresponse().status
    finally:
        conn.close()


def http_get(url: str, timeout: float = 2.0) -> tuple[int, dict[str, Any]]:
    """GET a JSON endpoint; returns the status and the decoded body, also for 4xx/5xx."""
    status, body = http_request("GET", url, timeout=timeout)
    return status, body


class _ServiceProcess:
    """A ``wspool`` subcommand in a child process, with its log kept in a file."""

    def __init__(self, name: str, args: list[str]) -> None:
        self.id = name
        self.port = free_port()
        self.log = Path(tempfile.mkstemp(prefix=f"wspool-{name}-", suffix=".log")[1])
        self.args = [sys.executable, "-m", "wspool", *args, "--port", str(self.port)]
        self.process: subprocess.Popen[bytes] | None = None
        self.file_limit: int | None = None
        """When set, the process's limit on open files (soft and hard), as ``ulimit -n``."""

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def ready(self, status: int, body: dict[str, Any]) -> bool:
        raise NotImplementedError

    def start(self, timeout: float = 10.0) -> _ServiceProcess:
        self._spawn()
        deadline = time.monotonic() + timeout
        while not self._is_ready():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.id} did not become ready:\n{self.output()}")
            time.sleep(0.05)
        return self

    async def start_async(self) -> None:
        """:meth:`start` for tests whose event loop must keep running (a proxy in it)."""
        self._spawn()
        try:
            await eventually(lambda: asyncio.to_thread(self._is_ready), within=10.0, interval=0.05)
        except AssertionError:
            raise RuntimeError(f"{self.id} did not become ready:\n{self.output()}") from None

    def _spawn(self) -> None:
        limit = self.file_limit

        def limit_files() -> None:
            if limit is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.args, stdout=log, stderr=subprocess.STDOUT, preexec_fn=limit_files
            )

    def _is_ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.id} exited at start:\n{self.output()}")
        try:
            return self.ready(*http_get(f"{self.http}/health", timeout=0.5))
        except OSError:
            return False

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # in case a test froze it
            self.process.kill()
            self.process.wait(timeout=10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


class NodeProcess(_ServiceProcess):
    """``wspool server``, registered in Redis with a fast heartbeat."""

    def __init__(
        self, node_id: str, redis_url: str, *extra: str, security: Sequence[str] = OPEN
    ) -> None:
        """``security`` flags replace the default :data:`OPEN`."""
        super().__init__(
            node_id,
            [
                "server",
                "--host",
                "127.0.0.1",
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
            ],
        )

    @property
    def health_url(self) -> str:
        return f"{self.http}/health"

    def ready(self, status: int, body: dict[str, Any]) -> bool:
        return status == 200 and body["store"] == "up"

    def start(self, timeout: float = 10.0) -> NodeProcess:
        super().start(timeout)
        return self


class GatewayProcess(_ServiceProcess):
    """``wspool gateway`` finding its nodes in Redis; ready once ``nodes`` are serving."""

    def __init__(
        self,
        name: str,
        redis_url: str,
        *extra: str,
        nodes: int = 1,
        security: Sequence[str] = ("--insecure",),
    ) -> None:
        """``security`` flags replace the default: an open REST API."""
        super().__init__(
            name,
            [
                "gateway",
                *security,
                "--host",
                "127.0.0.1",
                "--id",
                name,
                "--redis-url",
                redis_url,
                "--refresh-interval",
                "0.2",
                "--log-format",
                "json",
                *extra,
            ],
        )
        self.nodes = nodes

    def ready(self, status: int, body: dict[str, Any]) -> bool:
        return status == 200 and body["servers"] >= self.nodes

    def start(self, timeout: float = 10.0) -> GatewayProcess:
        super().start(timeout)
        return self

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return http_request(method, f"{self.http}/api/v1{path}", body)


def _pool_args(prefix: str) -> tuple[str, ...]:
    return ("--ticket-secret", TICKET_SECRET, "--key-prefix", prefix)


@dataclass
class Farm:
    """Nodes and a gateway sharing a ticket secret and a Redis key prefix of their own."""

    redis_url: str
    prefix: str
    nodes: list[NodeProcess]
    gateway: GatewayProcess

    gateway_security: Sequence[str] = ("--insecure",)

    def another_gateway(self, name: str, *extra: str) -> GatewayProcess:
        """One more gateway replica of this pool, with the same security (not started)."""
        args = _pool_args(self.prefix)
        return GatewayProcess(
            name,
            self.redis_url,
            *args,
            *extra,
            nodes=len(self.nodes),
            security=self.gateway_security,
        )


@contextmanager
def running_farm(
    redis_url: str,
    *,
    nodes: int = 3,
    node_args: Sequence[str] = (),
    gateway_args: Sequence[str] = (),
    gateway_id: str = "gw",
    node_security: Sequence[str] = OPEN,
    gateway_security: Sequence[str] = ("--insecure",),
) -> Iterator[Farm]:
    """``nodes`` node processes (``node-1``…) and a gateway in front, stopped on exit."""
    prefix = f"farm-{uuid.uuid4().hex[:8]}:"
    args = _pool_args(prefix)
    farm = Farm(
        redis_url,
        prefix,
        [
            NodeProcess(f"node-{i}", redis_url, *args, *node_args, security=node_security)
            for i in range(1, nodes + 1)
        ],
        GatewayProcess(
            gateway_id, redis_url, *args, *gateway_args, nodes=nodes, security=gateway_security
        ),
        gateway_security,
    )
    try:
        for node in farm.nodes:
            node.start()
        farm.gateway.start()
        yield farm
    finally:
        farm.gateway.stop()
        for node in farm.nodes:
            node.stop()
