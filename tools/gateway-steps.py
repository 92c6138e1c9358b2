#!/usr/bin/env python3
"""Where a relayed connection's opening goes in ``wspool gateway``: each step's time, measured
in place (docs/benchmarks.md, "The gateway's steps, timed in place").

It starts one ``wspool server`` node (in-memory engine) and one ``wspool gateway`` in front
of it (the node as its static list, its defaults otherwise), and opens WebSocket connections
through the gateway, each up to the node's first frame. The gateway runs with a clock around
each of its synchronous steps of an opening (``perf_counter_ns`` before and after, summed);
the tool prints, per connection, what each step took where it ran, beside the gateway's CPU
(user and kernel, from /proc) per connection. Nothing of a step waits (each is one stretch
of the event loop's thread), so its time is CPU time, the system calls it makes included.
Indented steps are parts of the step above them.

Then it times one of those steps on its own, in a loop: the client's request parsed with
aiohttp's parser and checked as the gateway checks it, back to back, and again with the
process asleep for a while before each (as the gateway is between the steps of a connection
while the node and the client do theirs): what the same code costs hot, and woken.

Run from a checkout with its virtualenv: ``.venv/bin/python tools/gateway-steps.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import importlib.util
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

STEPS: tuple[tuple[str, str, str, int], ...] = (
    # (module, attribute path, what it is, depth in the table)
    (
        "wspool.gateway.front",
        "ClientConnection.connection_made",
        "accepted: counted, timer armed",
        0,
    ),
    ("wspool.gateway.front", "FrontDoor.route", "the request's head read: route it", 0),
    ("wspool.gateway.front", "FrontDoor._upgrade", "parse (aiohttp's parser) and check it", 1),
    ("wspool.gateway.front", "opens_websocket", "the WebSocket headers' test", 2),
    ("wspool.gateway.model.upgrade", "UpgradeRequest.of", "what the session keeps of it", 2),
    (
        "wspool.gateway.relay",
        "client_handshake",
        "the client's credentials, as a node sees them",
        0,
    ),
    ("wspool.gateway.pool", "PoolManager.select", "choose the node", 0),
    ("wspool.gateway.upstream", "upgrade_request", "the request to the node", 0),
    ("wspool.gateway.upstream", "_Answer", "parse the node's answer", 0),
    ("wspool.gateway.upstream", "websocket_accept", "check its Sec-WebSocket-Accept", 0),
    ("wspool.gateway.upstream", "switching_protocols", "the 101 for the client", 0),
    ("wspool.gateway.relay", "_Session", "the session", 0),
    ("wspool.gateway.relay", "_Session.splice_to", "the splice, and the client's 101 sent", 0),
    ("wspool.gateway.splice", "Splice.from_node", "node to client (the write of the 101)", 1),
)


# In the gateway's process -------------------------------------------------------------


def _timed(spent: dict[str, list[int]], key: str, function: Callable[..., Any]) -> Any:
    clock = time.perf_counter_ns
    tally = spent.setdefault(key, [0, 0])

    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        began = clock()
        try:
            return function(*args, **kwargs)
        finally:
            tally[0] += clock() - began
            tally[1] += 1

    return timed


def _serve_gateway(port: int, upstream: int, report: str) -> None:
    """``wspool gateway`` with a clock around each step; SIGUSR1 writes what they took to
    ``report`` (JSON)."""
    spent: dict[str, list[int]] = {}
    for module_name, path, _, _ in reversed(STEPS):  # a class's methods before the class
        module = importlib.import_module(module_name)
        *owner_path, name = path.split(".")
        owner: Any = module
        for part in owner_path:
            owner = getattr(owner, part)
        setattr(owner, name, _timed(spent, path, getattr(owner, name)))

    collecting = spent.setdefault("gc", [0, 0])
    began = [0]

    def collection(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            began[0] = time.perf_counter_ns()
        else:
            collecting[0] += time.perf_counter_ns() - began[0]
            collecting[1] += 1

    gc.callbacks.append(collection)

    def write(*_: object) -> None:
        Path(report).write_text(json.dumps(spent))

    signal.signal(signal.SIGUSR1, write)
    from wspool.cli import main

    args = ["gateway", "--insecure", "--host", "127.0.0.1", "--port", str(port)]
    args += ["--servers", f"ws://127.0.0.1:{upstream}", "--log-level", "warning"]
    sys.exit(main(args))


# The tool ------------------------------------------------------------------------------


def _proxy_floor() -> Any:
    """tools/proxy-floor.py, for its node, its clients and its CPU readings."""
    spec = importlib.util.spec_from_file_location(
        "proxy_floor", Path(__file__).with_name("proxy-floor.py")
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _measure(floor: Any, connections: int, in_flight: int) -> None:
    node_port, port = floor.free_port(), floor.free_port()
    with tempfile.TemporaryDirectory() as folder, floor._node(node_port):
        report = Path(folder) / "steps.json"
        command = [sys.executable, __file__, "--serve-gateway", str(port), str(node_port)]
        with floor._running([*command, str(report)], port) as pid:
            while not asyncio.run(floor._relays(port)):  # its health checks found the node
                time.sleep(0.1)
            time.sleep(0.5)
            os.kill(pid, signal.SIGUSR1)  # the steps so far: the connections that proved it
            while not report.exists():
                time.sleep(0.05)
            before = json.loads(report.read_text())
            report.unlink()
            user0, kernel0 = floor._cpu(pid)

            async def run() -> None:
                held, _ = await floor._open(port, connections, in_flight)
                user, kernel = floor._cpu(pid)
                os.kill(pid, signal.SIGUSR1)  # before the connections close
                while not report.exists():  # noqa: ASYNC110 (another process writes it)
                    await asyncio.sleep(0.05)
                _print(json.loads(report.read_text()), before, connections, in_flight)
                user, kernel = (
                    (user - user0) * 1e6 / connections,
                    (kernel - kernel0) * 1e6 / connections,
                )
                print(f"{'the gateway CPU per connection, from /proc: user':<62} {user:>8.1f}")
                print(f"{'  kernel':<62} {kernel:>8.1f}")
                for writer in held:
                    writer.close()

            asyncio.run(run())


def _print(
    after: dict[str, list[int]], before: dict[str, list[int]], connections: int, in_flight: int
) -> None:
    print(f"\n{connections} connections, {in_flight} in flight: µs per connection, in place")
    print(f"{'step':<62} {'µs':>8} {'calls':>6}")
    for _, path, what, depth in STEPS:
        took, calls = (a - b for a, b in zip(after[path], before.get(path, [0, 0]), strict=True))
        label = "  " * depth + f"{what} ({path.split('.')[-1]})"
        print(f"{label:<62} {took / 1000 / connections:>8.1f} {calls / connections:>6.1f}")
    took, calls = (a - b for a, b in zip(after["gc"], before["gc"], strict=True))
    label = f"the garbage collector, wherever it ran ({calls} collections)"
    print(f"{label:<62} {took / 1000 / connections:>8.1f}")


def _woken(floor: Any) -> None:
    """The request's parse and checks, hot and after the process slept."""
    from aiohttp.http_parser import HttpRequestParser

    from wspool.gateway.model.upgrade import UpgradeRequest, opens_websocket

    loop = asyncio.new_event_loop()  # the parser's, never run
    head = floor._request()

    def step() -> None:
        parser = HttpRequestParser(None, loop, 2**16, max_line_size=8190)
        messages, _, _ = parser.feed_data(head)
        message = messages[0][0]
        assert message.url.path == "/ws"
        assert opens_websocket(message.headers)
        UpgradeRequest.of(message.headers, message.url.query.items(), "127.0.0.1")

    print("\nthe request parsed and checked, on its own: µs each (median of 2,000)")
    for nap in (0.0, 0.0001, 0.0005, 0.002):
        took = []
        for _ in range(2000):
            if nap:
                time.sleep(nap)
            began = time.perf_counter_ns()
            step()
            took.append(time.perf_counter_ns() - began)
        took.sort()
        label = "back to back" if not nap else f"after sleeping {nap * 1e6:,.0f} µs"
        print(f"{label:<62} {took[len(took) // 2] / 1000:>8.1f}")

    loop.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=4000)
    parser.add_argument("--in-flight", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    floor = _proxy_floor()
    for _ in range(args.rounds):
        for in_flight in args.in_flight:
            _measure(floor, args.connections, in_flight)
    _woken(floor)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--serve-gateway":
        _serve_gateway(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    else:
        main()
