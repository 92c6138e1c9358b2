#!/usr/bin/env python3
"""What it costs a proxy on this machine to set up one relayed WebSocket connection, at
the least (docs/benchmarks.md, "What a relayed connection costs any proxy on this
machine").

It starts one ``wspool server`` node (in-memory engine) and opens WebSocket connections
to it, each up to the node's first frame, and holds them: straight to the node, then
through each proxy in turn, fresh processes every time. For each it prints the CPU (user
and kernel, from /proc) that the node and the proxy spent per connection while they were
set up, how long that took, and the median and 95th percentile of the time from a
connection's connect to its first frame. The proxies:

- ``splice``: the least a Python proxy on uvloop can do per connection: accept, read the
  client's request up to its blank line, connect to the node, write the request, and from
  then on copy bytes both ways without looking at them (no parsing, no routing, no
  credentials, no record of the connection);
- ``gateway``: ``wspool gateway`` itself, with the node as its static list and its
  in-memory engine (its defaults otherwise: seamless sessions, least connections);
- ``haproxy``, if installed: HAProxy 2 in HTTP mode, which routes on the upgrade and then
  moves bytes (``apt install haproxy``).

Run from a checkout with its virtualenv: ``.venv/bin/python tools/proxy-floor.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from wspool.bench.ports import free_port

TICKS = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> tuple[float, float]:
    """User and kernel CPU seconds of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def _wait_listening(port: int, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port} after {within:.0f}s")


# The splice proxy (run in its own process) ---------------------------------------------


class _Half(asyncio.Protocol):
    """One side of a spliced pair: what it receives goes to the other side."""

    def __init__(self, upstream: int = 0) -> None:
        self.upstream = upstream
        """The node's port, for the client's side of a pair."""
        self.transport: asyncio.Transport | None = None
        self.peer: _Half | None = None
        self.head = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.write(data)
        else:
            self.head += data
            if b"\r\n\r\n" in self.head:
                asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        _, upstream = await loop.create_connection(_Half, "127.0.0.1", self.upstream)
        upstream.peer, self.peer = self, upstream
        assert upstream.transport is not None
        upstream.transport.write(self.head)
        self.head = b""

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()


def _serve_splice(port: int, upstream: int) -> None:
    import uvloop

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Half(upstream), "127.0.0.1", port)
        await server.serve_forever()

    uvloop.run(main())


# Proxies --------------------------------------------------------------------------------


@contextlib.contextmanager
def _running(command: list[str], port: int) -> Iterator[int]:
    """The pid of ``command`` once something listens on ``port``; stopped on exit."""
    process = subprocess.Popen(command)
    try:
        _wait_listening(port)
        yield process.pid
    finally:
        process.terminate()
        process.wait()


def _splice(port: int, upstream: int) -> contextlib.AbstractContextManager[int]:
    return _running([sys.executable, __file__, "--serve-splice", str(port), str(upstream)], port)


HAPROXY_CONFIG = """
global
    maxconn 8000
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout tunnel 60s
frontend ws
    bind 127.0.0.1:{port}
    default_backend nodes
backend nodes
    server node 127.0.0.1:{upstream}
"""


@contextlib.contextmanager
def _haproxy(port: int, upstream: int) -> Iterator[int]:
    with tempfile.NamedTemporaryFile("w", suffix=".cfg") as config:
        config.write(HAPROXY_CONFIG.format(port=port, upstream=upstream))
        config.flush()
        with _running(["haproxy", "-db", "-f", config.name], port) as pid:
            yield pid


def _node(port: int) -> contextlib.AbstractContextManager[int]:
    command = [sys.executable, "-m", "wspool", "server", "--insecure", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--log-level", "warning"]
    command += ["--connection-attempts-per-ip", "0", "--max-connections-per-ip", "0"]
    return _running(command, port)


@contextlib.contextmanager
def _gateway(port: int, upstream: int) -> Iterator[int]:
    """``wspool gateway`` (in-memory engine, the node as its static list), once it relays."""
    command = [sys.executable, "-m", "wspool", "gateway", "--insecure", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--servers", f"ws://127.0.0.1:{upstream}"]
    command += ["--log-level", "warning"]
    with _running(command, port) as pid:
        deadline = time.monotonic() + 20
        while not asyncio.run(_relays(port)):  # until its health checks found the node
            if time.monotonic() > deadline:
                raise SystemExit("the gateway relays nothing after 20s")
            time.sleep(0.1)
        time.sleep(0.5)  # the connection that proved it, closed
        yield pid


async def _relays(port: int) -> bool:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(_request())
        return (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    finally:
        writer.close()


def _request() -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


# The clients ----------------------------------------------------------------------------


async def _open(
    port: int, count: int, in_flight: int
) -> tuple[list[asyncio.StreamWriter], list[float]]:
    """``count`` WebSocket connections, ``in_flight`` at a time, each until its first frame;
    and how long each took (ms, from its connect to its first frame's header)."""
    held: list[asyncio.StreamWriter] = []
    setups: list[float] = []
    todo = iter(range(count))

    async def one_after_another() -> None:
        for _ in todo:
            began = time.perf_counter()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(_request())
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 101"):
                raise SystemExit(f"refused: {head.splitlines()[0].decode()}")
            await reader.readexactly(2)  # the first frame's header: the node's `connected`
            setups.append((time.perf_counter() - began) * 1000)
            held.append(writer)

    await asyncio.gather(*(one_after_another() for _ in range(in_flight)))
    return held, setups


def _measure(label: str, port: int, pids: dict[str, int], count: int, in_flight: int) -> None:
    before = {name: _cpu(pid) for name, pid in pids.items()}
    started = time.perf_counter()

    async def run() -> None:
        held, setups = await _open(port, count, in_flight)
        took = time.perf_counter() - started
        setups.sort()
        p50, p95 = (setups[int(q * (len(setups) - 1))] for q in (0.50, 0.95))
        for name, pid in pids.items():  # before the connections close
            user, kernel = _cpu(pid)
            user0, kernel0 = before[name]
            user, kernel = (user - user0) * 1000 / count, (kernel - kernel0) * 1000 / count
            print(
                f"{label:<10} {name:<8} {user:>9.3f} {kernel:>9.3f} {user + kernel:>9.3f}"
                f" {took:>7.1f} s {p50:>9.2f} {p95:>9.2f}"
            )
        for writer in held:
            writer.close()

    asyncio.run(run())
    time.sleep(0.5)  # the closes, outside of the next measurement


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--in-flight", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    proxies = {"splice": _splice, "gateway": _gateway}
    if shutil.which("haproxy"):
        proxies["haproxy"] = _haproxy
    else:
        print("(haproxy is not installed: `apt install haproxy` to measure it too)")
    print(f"{args.connections} connections, {args.in_flight} in flight; CPU ms per connection")
    print(
        f"{'route':<10} {'process':<8} {'user':>9} {'kernel':>9} {'in all':>9} {'took':>9}", end=""
    )
    print(f" {'setup p50':>9} {'p95 (ms)':>9}")
    for _ in range(args.rounds):
        node_port = free_port()
        with _node(node_port) as node:
            _measure("direct", node_port, {"node": node}, args.connections, args.in_flight)
        for name, proxy in proxies.items():
            node_port, proxy_port = free_port(), free_port()
            with _node(node_port) as node, proxy(proxy_port, node_port) as pid:
                pids = {"node": node, name: pid}
                _measure(name, proxy_port, pids, args.connections, args.in_flight)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve-splice":
        _serve_splice(int(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
